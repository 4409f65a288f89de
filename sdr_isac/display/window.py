"""The display window: the range-Doppler map with detections and truth, a top view, CFAR controls, Record.

Left, the selected node's map in dB over noise: velocity along x (ascending,
m/s, positive away), range along y (m, 0 at the bottom), detections as red
squares, monostatic truth as white circles.  Right, the top view (x/y, m):
every node's position (yellow triangle) with its boresight and its coverage
(a grey circle of the largest range its detections may report), truth targets
(cyan dots), each detection as an estimate (a red cross at its range along
the node's boresight turned by its angle, or, without an angle, a red range
arc over the half-plane in front of the node; slant range is drawn as
horizontal distance; bistatic range sums are not drawn), fused estimates
(magenta diamonds) and tracks (green polylines of their history tails with the id and owner at the
newest point, handovers as orange stars labelled ``from→to``: :meth:`set_tracks`).

Nothing costly runs on the GUI thread: a control change hands the new
:class:`~sdr_isac.config.SensingConfig` to the source, whose worker runs
detection again and sends the new frame; Record makes the source's worker
write what it shows.

Headless use (no display)::

    QT_QPA_PLATFORM=offscreen python -m sdr_isac.display.app --replay REC.sigmf-meta --snapshot out.png
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import PyQt6.QtCore  # noqa: F401  (binds pyqtgraph to PyQt6: PySide6 6.12 crashes at interpreter exit)
import pyqtgraph as pg
from numpy.typing import ArrayLike, NDArray
from PyQt6 import QtCore, QtWidgets

from sdr_isac.config import SensingConfig
from sdr_isac.display.sources import DisplayFrame, LinkStats, NodePlace, db_over_noise
from sdr_isac.display.tracks import track_views
from sdr_isac.errors import SdrIsacError
from sdr_isac.fusion.records import Handover, Track
from sdr_isac.recording._atomic import write_file
from sdr_isac.stream import wire

__all__ = ["RangeDopplerWindow", "db_over_noise", "ensure_app", "snapshot"]

_ARC_HALF_WIDTH_RAD = math.pi / 2      # a range arc without angle: the half-plane in front of the node
_ARC_POINTS = 61
_CIRCLE_POINTS = 121


class FrameSource(Protocol):
    """What the window polls: :class:`~sdr_isac.display.sources.ReplaySource`, ``HostSource``."""

    def take_all(self) -> list[DisplayFrame]: ...

    def set_sensing_config(self, sensing_config: SensingConfig) -> None: ...

    def set_paused(self, paused: bool) -> None: ...

    def link_stats(self) -> dict[str, LinkStats]: ...

    def cfar_unavailable(self) -> str | None: ...

    def start_recording(self, directory: str | Path) -> str: ...

    def stop_recording(self) -> list[Path]: ...


def _targets(truth_paths: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Monostatic target paths (bistatic paths carry range sums, not ranges)."""
    return [p for p in truth_paths if p.get("kind") == "target" and "range_m" in p and "velocity_mps" in p
            and p.get("tx", p.get("rx")) == p.get("rx")]


def _xy(items: list[dict[str, Any]]) -> NDArray[np.float64]:
    points = [e["position_m"][:2] for e in items if isinstance(e.get("position_m"), (list, tuple))
              and len(e["position_m"]) >= 2]
    return np.array(points, dtype=np.float64).reshape(-1, 2)


def ensure_app() -> QtWidgets.QApplication:
    """The running QApplication, or a new one (offscreen unless ``QT_QPA_PLATFORM`` says otherwise)."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = pg.mkQApp("sdr-isac display")
    return app  # type: ignore[return-value]


def detection_geometry(frame: DisplayFrame) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Where the frame's detections lie in the top view.

    Returns
    -------
    points : ndarray, shape (P, 2)
        x/y, m, of monostatic detections with an angle: node + range (cos, sin)(yaw + angle).
    arcs : ndarray, shape (Q, 2)
        x/y, m, of range arcs (monostatic detections without an angle: +-90 deg about the boresight),
        one polyline per detection separated by NaN rows.
    """
    empty = np.zeros((0, 2))
    if frame.node is None:
        return empty, empty
    x0, y0, _ = frame.node.position_m
    yaw = math.radians(frame.node.yaw_deg)
    points, arcs = [], []
    span = np.linspace(-_ARC_HALF_WIDTH_RAD, _ARC_HALF_WIDTH_RAD, _ARC_POINTS)
    for det in frame.detections:
        if det.geometry != "monostatic":
            continue
        if det.angle_rad is not None:
            bearing = yaw + det.angle_rad
            points.append((x0 + det.range_m * math.cos(bearing), y0 + det.range_m * math.sin(bearing)))
        else:
            arc = np.column_stack([x0 + det.range_m * np.cos(yaw + span), y0 + det.range_m * np.sin(yaw + span)])
            arcs.extend([arc, np.full((1, 2), np.nan)])
    return (np.array(points, dtype=np.float64).reshape(-1, 2),
            np.concatenate(arcs) if arcs else empty)


class RangeDopplerWindow(QtWidgets.QMainWindow):
    """A live range-Doppler display with a top view.

    Parameters
    ----------
    sensing_config : SensingConfig, optional
        Settings the controls start from (default ``SensingConfig()``).
    source : FrameSource, optional
        Polled every ``refresh_ms`` for its newest frames; without one, call
        :meth:`show_frame` yourself (the controls then change only the settings).
    refresh_ms : int
        Polling period, ms (1 ... 10000).
    record_dir : str or Path, optional
        Where Record writes (default ``./sdr_isac_recordings``).
    """

    def __init__(self, sensing_config: SensingConfig | None = None, source: FrameSource | None = None,
                 refresh_ms: int = 30, record_dir: str | Path | None = None):
        super().__init__()
        self.setWindowTitle("sdr-isac range-Doppler")
        self.sensing_config = sensing_config or SensingConfig()
        self.source = source
        self.record_dir = Path(record_dir) if record_dir is not None else Path.cwd() / "sdr_isac_recordings"
        self.current: DisplayFrame | None = None
        self.frames: dict[str, DisplayFrame] = {}
        self.estimates = np.zeros((0, 2))
        self.tracks: dict[str, NDArray[np.float64]] = {}
        self.scene_nodes: dict[str, NodePlace] = {}     # nodes known without a frame (a configuration's scene)
        self.recorded: list[Path] = []
        self.paused = False
        self._times: collections.deque[float] = collections.deque(maxlen=30)
        self._fitted = False
        self._top_fitted = False
        self._top_follow = True             # autorange the top view until the user zooms or pans it
        self._top_fitting = False
        self._note = ""
        self.status_bar = QtWidgets.QStatusBar()
        self.setStatusBar(self.status_bar)
        self._build_plot()
        self._build_top_view()
        splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        splitter.addWidget(self.plot_widget)
        splitter.addWidget(self.top_widget)
        splitter.setSizes([600, 400])
        self.setCentralWidget(splitter)
        self._build_controls()
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.poll)
        if source is not None:
            self.timer.start(max(1, min(int(refresh_ms), 10000)))

    # -- construction -------------------------------------------------------------------------------------------
    def _build_plot(self) -> None:
        self.plot_widget = pg.PlotWidget()
        self.plot = self.plot_widget.getPlotItem()
        self._axis_geometry = ""
        self._label_axes("monostatic")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(values=(0.0, 40.0), colorMap="viridis", label="power over noise (dB)",
                                        limits=(-30.0, 200.0))
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        self.plot.addLegend(offset=(-10, 10))         # named items below join it
        self.detection_markers = pg.ScatterPlotItem(symbol="s", size=16, pen=pg.mkPen("r", width=2),
                                                    brush=pg.mkBrush(0, 0, 0, 0), name="detections")
        self.truth_markers = pg.ScatterPlotItem(symbol="o", size=24, pen=pg.mkPen("w", width=1.5),
                                                brush=pg.mkBrush(0, 0, 0, 0), name="truth")
        for item in (self.detection_markers, self.truth_markers):
            item.setZValue(10)
            self.plot.addItem(item)

    def _build_top_view(self) -> None:
        self.top_widget = pg.PlotWidget()
        self.top = self.top_widget.getPlotItem()
        self.top.setLabel("bottom", "x (m)")
        self.top.setLabel("left", "y (m)")
        self.top.setAspectLocked(True)
        self.top.vb.sigRangeChangedManually.connect(self._top_moved_by_hand)
        self.top.addLegend(offset=(10, 10))
        self.coverage_curve = pg.PlotDataItem(pen=pg.mkPen((130, 130, 130), width=1, style=QtCore.Qt.PenStyle.DashLine),
                                              connect="finite", name="coverage")
        self.boresight_curve = pg.PlotDataItem(pen=pg.mkPen((200, 200, 0), width=1), connect="finite")
        self.arc_curve = pg.PlotDataItem(pen=pg.mkPen((255, 60, 60), width=1.5), connect="finite",
                                         name="detection (range arc)")
        self.node_markers = pg.ScatterPlotItem(symbol="t1", size=16, pen=pg.mkPen("k"),
                                               brush=pg.mkBrush(255, 230, 0), name="nodes")
        # truth: a cyan ring, so that the detections and fused estimates within centimetres of it stay visible
        self.top_truth_markers = pg.ScatterPlotItem(symbol="o", size=24, pen=pg.mkPen((0, 230, 255), width=3),
                                                    brush=pg.mkBrush(0, 0, 0, 0), name="truth")
        self.estimate_markers = pg.ScatterPlotItem(symbol="x", size=14, pen=pg.mkPen((255, 60, 60), width=2),
                                                   brush=pg.mkBrush(255, 60, 60), name="detection")
        self.fused_markers = pg.ScatterPlotItem(symbol="d", size=11, pen=pg.mkPen("k"),
                                                brush=pg.mkBrush(255, 0, 255), name="fused")
        for z, item in enumerate((self.coverage_curve, self.boresight_curve, self.arc_curve, self.top_truth_markers,
                                  self.estimate_markers, self.fused_markers, self.node_markers)):
            item.setZValue(z)
            self.top.addItem(item)
        self.node_labels: dict[str, pg.TextItem] = {}
        self.track_curves: list[pg.PlotDataItem] = []
        self.track_labels: list[pg.TextItem] = []
        self.handover_markers = pg.ScatterPlotItem(symbol="star", size=18, pen=pg.mkPen("k"),
                                                   brush=pg.mkBrush(255, 140, 0), name="handover")
        self.handover_markers.setZValue(8)
        self.top.addItem(self.handover_markers)
        self.handover_points = np.zeros((0, 2))

    def _build_controls(self) -> None:
        panel = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(panel)
        self.node_combo = QtWidgets.QComboBox()
        self.node_combo.currentTextChanged.connect(self._node_changed)
        form.addRow("node", self.node_combo)
        cfg = self.sensing_config
        self.pfa_spin = QtWidgets.QDoubleSpinBox()
        self.pfa_spin.setRange(-40.0, math.log10(0.49))
        self.pfa_spin.setSingleStep(0.5)
        self.pfa_spin.setDecimals(1)
        self.pfa_spin.setValue(math.log10(cfg.pfa))
        form.addRow("CFAR log10 P_fa", self.pfa_spin)
        self.guard_spins = self._cell_spins(form, "guard", cfg.guard_cells, 0)
        self.training_spins = self._cell_spins(form, "training", cfg.training_cells, 1)
        self.cfar_controls: tuple[QtWidgets.QAbstractSpinBox, ...] = (self.pfa_spin, *self.guard_spins,
                                                                      *self.training_spins)
        self.pause_button = QtWidgets.QPushButton("pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._pause_toggled)
        form.addRow(self.pause_button)
        fit = QtWidgets.QPushButton("fit view")
        fit.clicked.connect(self.fit_view)
        form.addRow(fit)
        self.record_button = QtWidgets.QPushButton("record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip(f"write what is shown into {self.record_dir}")
        self.record_button.setEnabled(self.source is not None)
        self.record_button.toggled.connect(self._record_toggled)
        form.addRow(self.record_button)
        for spin in self.cfar_controls:
            spin.valueChanged.connect(self._controls_changed)
        dock = QtWidgets.QDockWidget("sensing", self)
        dock.setObjectName("sensing")
        dock.setWidget(panel)
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)

    @staticmethod
    def _cell_spins(form: QtWidgets.QFormLayout, name: str, cells: tuple[int, ...],
                    low: int) -> tuple[QtWidgets.QSpinBox, QtWidgets.QSpinBox]:
        spins = []
        for axis, value in zip(("range", "Doppler"), cells):
            spin = QtWidgets.QSpinBox()
            spin.setRange(low, 256)
            spin.setValue(int(value))
            form.addRow(f"{name} cells, {axis}", spin)
            spins.append(spin)
        return spins[0], spins[1]

    # -- frames -------------------------------------------------------------------------------------------------
    def poll(self) -> None:
        """Take the source's newest frames, fused estimates, tracks and counters, and show them."""
        if self.source is None:
            return
        try:
            frames = self.source.take_all()
        except SdrIsacError as err:
            self.timer.stop()
            self.status_bar.showMessage(f"source stopped: {err}")
            return
        for frame in frames:
            if not self.paused or frame.reprocessed:
                self.show_frame(frame)
        take_estimates = getattr(self.source, "take_estimates", None)
        estimates = take_estimates() if take_estimates is not None else None
        if estimates is not None:
            self.set_estimates(estimates)
        take_tracks = getattr(self.source, "take_tracks", None)
        tracks = take_tracks() if take_tracks is not None else None
        if tracks is not None:
            self.set_tracks(tracks)
        self._update_cfar_enabled()
        take_closed = getattr(self.source, "take_closed_recording", None)
        closed = take_closed() if take_closed is not None else None
        if closed is not None:
            self._recording_closed(*closed)
        record_error = getattr(self.source, "record_error", None)
        if record_error is not None and self.record_button.isChecked():
            self._note = f"recording stopped: {record_error}"
            self.record_button.setChecked(False)
        if self.current is not None:
            self._status(self.current)

    def show_frame(self, frame: DisplayFrame) -> None:
        """Show a frame: in the top view always, in the map when its node is selected."""
        if self.node_combo.findText(frame.node_id) < 0:
            self.node_combo.addItem(frame.node_id)
        self.frames[frame.node_id] = frame
        self._draw_top()
        if self.node_combo.currentText() not in ("", frame.node_id):
            return
        if not frame.reprocessed:
            self._times.append(time.perf_counter())
        self.current = frame
        self._draw(frame)

    def _label_axes(self, geometry: str) -> None:
        """Axis labels of the map's geometry: a bistatic map's rows are range sums ``c tau``, its columns range
        rates ``-c nu`` (of both legs), not a range and a radial velocity."""
        if geometry == self._axis_geometry:
            return
        self._axis_geometry = geometry
        if geometry == "bistatic":
            self.plot.setLabel("bottom", "bistatic range rate (m/s, positive: range sum growing)")
            self.plot.setLabel("left", "range sum c·tau (m)")
        else:
            self.plot.setLabel("bottom", "radial velocity (m/s, positive away)")
            self.plot.setLabel("left", "range (m)")

    def _draw(self, frame: DisplayFrame) -> None:
        self._label_axes(frame.geometry)
        dets = frame.detections
        self.detection_markers.setData(x=[d.velocity_mps for d in dets], y=[d.range_m for d in dets])
        targets = _targets(frame.truth_paths)
        self.truth_markers.setData(x=[p["velocity_mps"] for p in targets], y=[p["range_m"] for p in targets])
        if frame.power_db is None or frame.range_m is None or frame.velocity_mps is None:
            self.image.clear()
            self._status(frame)
            return
        db, range_m, velocity = frame.power_db, frame.range_m, frame.velocity_mps
        self.image.setImage(db, autoLevels=False)
        dr = float(range_m[1] - range_m[0]) if range_m.size > 1 else 1.0
        dv = float(velocity[-1] - velocity[0]) / max(velocity.size - 1, 1) or 1.0
        self.image.setRect(QtCore.QRectF(float(velocity[0]) - dv / 2, float(range_m[0]) - dr / 2,
                                         dv * velocity.size, dr * range_m.size))
        if not self._fitted:
            self.colorbar.setLevels((0.0, max(30.0, float(db.max()))))
            self.fit_view()
        self._status(frame)

    def node_places(self) -> dict[str, NodePlace]:
        """Every node the top view shows: those of :meth:`set_nodes`, then those of the frames (which win)."""
        places = dict(self.scene_nodes)
        places.update({f.node_id: f.node for f in self.frames.values() if f.node is not None})
        return places

    def set_nodes(self, nodes: Mapping[str, NodePlace]) -> None:
        """Show these nodes in the top view even before (or without) a frame of theirs, e.g. a scene's.

        Parameters
        ----------
        nodes : mapping of str to NodePlace
            Node id -> where it stands (m) and its boresight.
        """
        self.scene_nodes = dict(nodes)
        self._draw_top()

    def _draw_top(self) -> None:
        frames = list(self.frames.values())
        placed = [f for f in frames if f.node is not None]
        places = self.node_places()
        xy = np.array([n.position_m[:2] for n in places.values()], dtype=np.float64).reshape(-1, 2)
        self.node_markers.setData(x=xy[:, 0], y=xy[:, 1])
        for node_id, node in places.items():
            label = self.node_labels.get(node_id)
            if label is None:
                label = pg.TextItem(node_id, color=(255, 230, 0), anchor=(0.5, -0.4))
                label.setZValue(20)
                self.top.addItem(label)
                self.node_labels[node_id] = label
            label.setPos(node.position_m[0], node.position_m[1])
        circles, rays = [], []
        ring = np.linspace(0.0, 2 * math.pi, _CIRCLE_POINTS)
        for f in placed:
            if f.node is None:
                continue
            x0, y0, _ = f.node.position_m
            if f.max_range_m:
                circles += [np.column_stack([x0 + f.max_range_m * np.cos(ring), y0 + f.max_range_m * np.sin(ring)]),
                            np.full((1, 2), np.nan)]
            yaw = math.radians(f.node.yaw_deg)
            reach = min(f.max_range_m or 20.0, 20.0)
            rays += [np.array([[x0, y0], [x0 + reach * math.cos(yaw), y0 + reach * math.sin(yaw)]]),
                     np.full((1, 2), np.nan)]
        self._set_curve(self.coverage_curve, circles)
        self._set_curve(self.boresight_curve, rays)
        truth: dict[str, dict[str, Any]] = {}
        for f in frames:                               # one dot per target, from whichever node saw it last
            for t in f.truth_targets:
                if isinstance(t.get("position_m"), (list, tuple)):
                    truth[str(t.get("id", len(truth)))] = t
        txy = _xy(list(truth.values()))
        self.top_truth_markers.setData(x=txy[:, 0], y=txy[:, 1])
        points, arcs = [], []
        for f in frames:
            p, a = detection_geometry(f)
            points.append(p)
            arcs.append(a)
        pxy = np.concatenate(points) if points else np.zeros((0, 2))
        self.estimate_markers.setData(x=pxy[:, 0], y=pxy[:, 1])
        self._set_curve(self.arc_curve, arcs)
        self._autorange_top()

    @staticmethod
    def _set_curve(curve: pg.PlotDataItem, parts: list[NDArray[np.float64]]) -> None:
        data = np.concatenate(parts) if parts else np.zeros((0, 2))
        if len(data):
            curve.setData(x=data[:, 0], y=data[:, 1])
        else:
            curve.setData(x=[], y=[])

    def set_estimates(self, positions_m: ArrayLike) -> None:
        """Draw fused position estimates in the top view (magenta diamonds).

        Parameters
        ----------
        positions_m : array_like, shape (N, 2) or (N, 3)
            x, y (, z), m.
        """
        xy = np.asarray(positions_m, dtype=np.float64)
        xy = xy.reshape(-1, xy.shape[-1])[:, :2] if xy.size else np.zeros((0, 2))
        self.estimates = xy
        self.fused_markers.setData(x=xy[:, 0], y=xy[:, 1])
        self._autorange_top()

    def set_tracks(self, tracks: wire.TrackSet | Sequence[Track] | Mapping[str, ArrayLike]) -> None:
        """Draw tracks in the top view: each a green polyline of its history tail to its latest position (a
        tentative one paler; dashed, its label ending in "coasting", where its latest state was predicted, not
        measured), its id (and owner) at the newest point, and its handovers (orange stars labelled ``from→to``
        at the track's position at the handover's time).

        Parameters
        ----------
        tracks : wire.TrackSet, sequence of Track, or mapping of str to array_like
            A decoded ``tracks`` message (:func:`~sdr_isac.stream.wire.decode_tracks`, or
            :func:`~sdr_isac.display.tracks.load_tracks` of a ``tracks.json``); Track records; or track id ->
            positions, shape (N, 2) or (N, 3), m, oldest first (no handovers).  Replaces what was drawn.
        """
        for item in [*self.track_curves, *self.track_labels]:
            self.top.removeItem(item)
        self.track_curves, self.track_labels = [], []
        self.tracks = {}
        views: list[tuple[str, NDArray[np.float64], str, str, tuple[tuple[Handover, NDArray[np.float64]], ...], bool]]
        if isinstance(tracks, Mapping):
            views = [(str(k), np.asarray(v, dtype=np.float64), "confirmed", "", (), False) for k, v in tracks.items()]
        else:
            views = [(v.track_id, v.positions_m, v.status, v.owner, v.handovers, v.coasting)
                     for v in track_views(tracks)]
        handovers: list[tuple[float, float, str]] = []
        for track_id, xy, status, owner, moves, coasting in views:
            if xy.ndim != 2 or xy.shape[0] == 0 or xy.shape[1] < 2 or not np.all(np.isfinite(xy[:, :2])):
                continue
            xy = xy[:, :2]
            self.tracks[track_id] = xy
            color = (0, 220, 0) if status == "confirmed" else (120, 170, 120)
            style = QtCore.Qt.PenStyle.DashLine if coasting else QtCore.Qt.PenStyle.SolidLine
            pen = pg.mkPen(color, width=2, style=style)
            curve = pg.PlotDataItem(x=xy[:, 0], y=xy[:, 1], pen=pen, symbol="o",
                                    symbolSize=4, symbolBrush=color, name=None if self.track_curves else "tracks")
            curve.setZValue(4)
            label = pg.TextItem(track_id + (f" @{owner}" if owner else "") + (" coasting" if coasting else ""),
                                color=color, anchor=(0.0, 1.2))
            label.setPos(float(xy[-1, 0]), float(xy[-1, 1]))
            label.setZValue(21)
            for item in (curve, label):
                self.top.addItem(item)
            self.track_curves.append(curve)
            self.track_labels.append(label)
            handovers += [(float(p[0]), float(p[1]), f"{h.from_station}→{h.to_station}") for h, p in moves]
        self.handover_points = np.array([h[:2] for h in handovers], dtype=np.float64).reshape(-1, 2)
        self.handover_markers.setData(x=self.handover_points[:, 0], y=self.handover_points[:, 1])
        for x, y, text in handovers:
            label = pg.TextItem(text, color=(255, 140, 0), anchor=(0.5, -0.6))
            label.setPos(x, y)
            label.setZValue(21)
            self.top.addItem(label)
            self.track_labels.append(label)
        self._autorange_top()

    def _status(self, frame: DisplayFrame) -> None:
        parts = [f"node {frame.node_id}   seq {frame.seq}   display {self.frame_rate_hz():.1f} fps",
                 f"P_fa {self.sensing_config.pfa:.1e}", f"{len(frame.detections)} detections"]
        if frame.power_db is None:
            parts.append("no map")
        links = self.source.link_stats() if self.source is not None else {}
        parts += [link.text() for _, link in sorted(links.items())]
        warning = getattr(self.source, "warning", "")
        if warning:
            parts.append(warning)
        rejected = getattr(self.source, "rejected", 0)
        if rejected:
            parts.append(f"{rejected} malformed messages rejected")
        if self._note:
            parts.append(self._note)
        self.status_bar.showMessage("   |   ".join(parts))

    def frame_rate_hz(self) -> float:
        """Frames of the selected node shown per second over the last 30 (0 before two)."""
        if len(self._times) < 2 or self._times[-1] <= self._times[0]:
            return 0.0
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])

    def fit_view(self) -> None:
        """Zoom the map to the detections and truth (as ``experiments.demo`` does), and the top view to the scene."""
        self.fit_top_view()
        frame = self.current
        if frame is None or frame.range_m is None or frame.velocity_mps is None:
            return
        range_m, velocity = frame.range_m, frame.velocity_mps
        points = [(d.range_m, d.velocity_mps) for d in frame.detections]
        points += [(p["range_m"], p["velocity_mps"]) for p in _targets(frame.truth_paths)]
        top = min(max([r for r, _ in points] + [10.0]) * 1.5, float(range_m[-1]))
        span = max([abs(v) for _, v in points] + [10.0]) * 3
        self.plot.setXRange(max(-span, float(velocity[0])), min(span, float(velocity[-1])), padding=0)
        self.plot.setYRange(0.0, top, padding=0)
        self._fitted = True

    def top_points(self) -> NDArray[np.float64]:
        """What the top view fits: x/y (m), shape (P, 2), of the nodes, truth targets, detections (points and
        range arcs) and fused estimates; not the coverage circles."""
        parts = [np.array([n.position_m[:2]]) for n in self.node_places().values()]
        for f in self.frames.values():
            parts.append(_xy(f.truth_targets))
            points, arcs = detection_geometry(f)
            parts += [points, arcs[np.isfinite(arcs[:, 0])] if len(arcs) else arcs]
        parts.append(self.estimates)
        parts += list(self.tracks.values())
        return np.concatenate([p.reshape(-1, 2) for p in parts]) if parts else np.zeros((0, 2))

    def fit_top_view(self) -> None:
        """Zoom the top view to :meth:`top_points` and follow them again (after a manual zoom or pan)."""
        xy = self.top_points()
        self._top_follow = True
        if not len(xy):
            return
        low, high = xy.min(axis=0), xy.max(axis=0)
        pad = np.maximum((high - low) * 0.15, 10.0)
        self._top_fitting = True
        try:
            # both at once: with the aspect locked, the view box widens whichever axis must grow to hold both
            self.top.vb.setRange(xRange=(float(low[0] - pad[0]), float(high[0] + pad[0])),
                                 yRange=(float(low[1] - pad[1]), float(high[1] + pad[1])), padding=0)
        finally:
            self._top_fitting = False
        self._top_fitted = True

    def _autorange_top(self) -> None:
        """Fit the top view again when something it shows lies outside it, unless the user zoomed or panned."""
        if not self._top_follow:
            return
        xy = self.top_points()
        if not len(xy):
            return
        if not self._top_fitted:
            self.fit_top_view()
            return
        (x0, x1), (y0, y1) = self.top.vb.viewRange()
        inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
        if not inside.all():
            self.fit_top_view()

    def _top_moved_by_hand(self, *_: object) -> None:
        if not self._top_fitting:
            self._top_follow = False

    # -- controls -----------------------------------------------------------------------------------------------
    def _controls_changed(self) -> None:
        try:
            cfg = dataclasses.replace(self.sensing_config, pfa=10.0 ** self.pfa_spin.value(),
                                      guard_cells=tuple(s.value() for s in self.guard_spins),
                                      training_cells=tuple(s.value() for s in self.training_spins))
        except SdrIsacError as err:
            self.status_bar.showMessage(f"not applied: {err}")
            return
        self.sensing_config = cfg
        if self.source is not None:
            self.source.set_sensing_config(cfg)       # the source's worker detects again: not this thread

    def _update_cfar_enabled(self) -> None:
        reason = self.source.cfar_unavailable() if self.source is not None else None
        for spin in self.cfar_controls:
            spin.setEnabled(reason is None)
            spin.setToolTip(reason or "")

    def _pause_toggled(self, paused: bool) -> None:
        self.paused = paused
        self.pause_button.setText("resume" if paused else "pause")
        if self.source is not None:
            self.source.set_paused(paused)

    def _record_toggled(self, on: bool) -> None:
        if self.source is None:
            return
        if on:
            try:
                self._note = self.source.start_recording(self.record_dir)
            except SdrIsacError as err:
                self._note = f"not recording: {err}"
                self.record_button.blockSignals(True)
                self.record_button.setChecked(False)
                self.record_button.blockSignals(False)
            self.record_button.setText("stop recording" if self.record_button.isChecked() else "record")
        else:
            stop_async = getattr(self.source, "stop_recording_async", None)
            if stop_async is not None:      # the files are synced and renamed off the GUI thread (poll reports)
                if stop_async():
                    self._note = "finishing the recording ..."
            else:
                try:
                    self._recording_closed(self.source.stop_recording(), None)
                except SdrIsacError as err:
                    self._recording_closed([], err)
            self.record_button.setText("record")
        self.status_bar.showMessage(self._note)

    def _recording_closed(self, paths: list[Path], error: SdrIsacError | None) -> None:
        if error is not None:
            self._note = f"recording failed: {error}"
        self.recorded += paths
        if paths:
            self._note = "wrote " + ", ".join(str(p) for p in paths)

    def _node_changed(self, node_id: str) -> None:
        self._fitted = False
        frame = self.frames.get(node_id)
        if frame is not None:
            self.current = frame
            self._draw(frame)

    # -- pixels -------------------------------------------------------------------------------------------------
    def pixel_of(self, velocity_mps: float, range_m: float) -> tuple[int, int]:
        """Where a (velocity, range) point of the map lies in ``self.grab()``, pixels (x right, y down)."""
        return self._pixel(self.plot, self.plot_widget, velocity_mps, range_m)

    def top_pixel_of(self, x_m: float, y_m: float) -> tuple[int, int]:
        """Where a point (x, y) of the top view lies in ``self.grab()``, pixels (x right, y down)."""
        return self._pixel(self.top, self.top_widget, x_m, y_m)

    def _pixel(self, plot: pg.PlotItem, widget: pg.PlotWidget, x: float, y: float) -> tuple[int, int]:
        scene = plot.vb.mapViewToScene(QtCore.QPointF(x, y))
        view = widget.mapFromScene(scene)
        point = widget.viewport().mapTo(self, view)
        ratio = self.devicePixelRatioF()
        return round(point.x() * ratio), round(point.y() * ratio)

    def save_png(self, path: str | Path) -> None:
        """Render the window and write it as PNG, atomically (through the one atomic writer).

        Raises
        ------
        SdrIsacError
            Qt cannot encode the PNG, or the folder does not exist or is not writable.
        """
        path = Path(path)
        data = QtCore.QByteArray()
        buffer = QtCore.QBuffer(data)
        buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
        if not self.grab().save(buffer, "PNG"):
            raise SdrIsacError(f"could not encode the window of {path} as PNG; check the Qt image plugins")
        try:
            write_file(path, bytes(data.data()))
        except OSError as err:
            raise SdrIsacError(f"could not write {path} ({err.strerror}): check the folder exists and is "
                               "writable") from err


def snapshot(frame: DisplayFrame, path_png: str | Path, size: tuple[int, int] = (1000, 700), *,
             sensing_config: SensingConfig | None = None, nodes: Mapping[str, NodePlace] | None = None,
             estimates_m: ArrayLike | None = None,
             tracks: wire.TrackSet | Sequence[Track] | None = None) -> dict[str, list[tuple[int, int]]]:
    """Render one frame in a window offscreen and save it as PNG.

    Parameters
    ----------
    frame : DisplayFrame
        What to draw (``truth_paths`` with ``kind == "target"`` are drawn as circles on the map,
        ``truth_targets`` as dots in the top view).
    path_png : str or Path
        Output file, written atomically.
    size : tuple of int
        Window width and height, pixels.
    sensing_config : SensingConfig, optional
        The settings the controls show (those the frame was sensed with).
    nodes : mapping of str to NodePlace, optional
        Further nodes for the top view (a scene's), beside the frame's own.
    estimates_m : array_like, shape (N, 2) or (N, 3), optional
        Fused position estimates, m, drawn as diamonds in the top view (e.g. a host's ``fused.json``).
    tracks : wire.TrackSet or sequence of Track, optional
        Tracks drawn in the top view with ids, tails and handovers (:meth:`RangeDopplerWindow.set_tracks`;
        e.g. a host's ``tracks.json`` through :func:`~sdr_isac.display.tracks.load_tracks`).

    Returns
    -------
    dict
        ``"map"``: pixel (x, y) of each monostatic truth path on the map; ``"top"``: of each truth target
        in the top view; ``"nodes"``: of each node shown (the frame's first); ``"estimates"``: of each fused
        estimate; ``"detections"``: of each detection with an angle in the top view; ``"tracks"``: of each
        track's latest position; ``"handovers"``: of each handover marker.
    """
    app = ensure_app()
    window = RangeDopplerWindow(sensing_config)
    try:
        window.resize(*size)
        window.show()
        if nodes:
            window.set_nodes(nodes)
        if estimates_m is not None:
            window.set_estimates(estimates_m)
        if tracks is not None:
            window.set_tracks(tracks)
        window.show_frame(frame)
        app.processEvents()
        window.fit_view()
        app.processEvents()
        places = window.node_places()
        order = sorted(places, key=lambda n: n != frame.node_id)
        points, _ = detection_geometry(frame)
        pixels = {"map": [window.pixel_of(p["velocity_mps"], p["range_m"]) for p in _targets(frame.truth_paths)],
                  "top": [window.top_pixel_of(*p) for p in _xy(frame.truth_targets).tolist()],
                  "nodes": [window.top_pixel_of(*places[n].position_m[:2]) for n in order],
                  "estimates": [window.top_pixel_of(*p) for p in window.estimates.tolist()],
                  "detections": [window.top_pixel_of(*p) for p in points.tolist()],
                  "tracks": [window.top_pixel_of(*xy[-1]) for xy in window.tracks.values()],
                  "handovers": [window.top_pixel_of(*p) for p in window.handover_points.tolist()]}
        window.save_png(path_png)
    finally:
        window.close()
        window.deleteLater()
    return pixels
