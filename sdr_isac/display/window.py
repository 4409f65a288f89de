"""The range-Doppler window: the map in dB over noise, detections, truth and the CFAR controls.

Velocity runs along x (ascending, m/s, positive away), range along y (m,
0 at the bottom).  Changing a control runs detection again on the current
capture with ``dataclasses.replace`` of the sensing configuration, and the
source uses the new settings from its next capture on.

Headless use (no display)::

    QT_QPA_PLATFORM=offscreen python -m sdr_isac.display.app --replay REC.sigmf-meta --snapshot out.png
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import PyQt6.QtCore  # noqa: F401  (binds pyqtgraph to PyQt6: PySide6 6.12 crashes at interpreter exit)
import pyqtgraph as pg
from numpy.typing import NDArray
from PyQt6 import QtCore, QtWidgets

from sdr_isac.config import SensingConfig
from sdr_isac.display.sources import DisplayFrame, frame_of
from sdr_isac.errors import SdrIsacError
from sdr_isac.sensing.pipeline import SensingResult

__all__ = ["RangeDopplerWindow", "db_over_noise", "ensure_app", "snapshot"]

_FLOOR = 1e-3          # -30 dB: keeps log10 finite on empty cells


class FrameSource(Protocol):
    """What the window polls: :class:`~sdr_isac.display.sources.ReplaySource` and kin."""

    def take(self) -> DisplayFrame | None: ...

    def set_sensing_config(self, sensing_config: SensingConfig) -> None: ...


def db_over_noise(result: SensingResult) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.float64]]:
    """The map in dB over the noise of one cell, with velocity ascending.

    Returns
    -------
    db : ndarray, shape (R, D), float32
        ``10 log10(power / (noise_var noise_gain C))``, floored at -30 dB.
    range_m : ndarray, shape (R,)
        Range of each row, m (ascending).
    velocity_mps : ndarray, shape (D,)
        Velocity of each column, m/s (ascending).

    Raises
    ------
    SdrIsacError
        The result has no map (an all-zero capture).
    """
    rd = result.map
    if rd is None:
        raise SdrIsacError("the sensing result has no range-Doppler map (an all-zero capture): nothing to draw")
    noise = float(result.diagnostics.get("noise_var", 0.0)) * rd.noise_gain * rd.cells.shape[0]
    scale = 1.0 / noise if noise > 0 else 1.0 / max(float(np.median(rd.power)), 1e-30)
    db = (10 * np.log10(np.maximum(rd.power * np.float32(scale), _FLOOR))).astype(np.float32)
    velocity = rd.velocity_mps
    if velocity[-1] < velocity[0]:           # v = -f_D lambda / 2 falls along the Doppler axis
        velocity, db = velocity[::-1], db[:, ::-1]
    return db, rd.range_m, velocity


def _targets(truth_paths: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in truth_paths if p.get("kind") == "target" and "range_m" in p and "velocity_mps" in p]


def ensure_app() -> QtWidgets.QApplication:
    """The running QApplication, or a new one (offscreen unless ``QT_QPA_PLATFORM`` says otherwise)."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = pg.mkQApp("sdr-isac display")
    return app  # type: ignore[return-value]


class RangeDopplerWindow(QtWidgets.QMainWindow):
    """A live range-Doppler display.

    Parameters
    ----------
    sensing_config : SensingConfig, optional
        Settings the controls start from (default ``SensingConfig()``).
    source : FrameSource, optional
        Polled every ``refresh_ms`` for its newest frame; without one, call
        :meth:`show_frame` yourself.
    refresh_ms : int
        Polling period, ms (1 ... 10000).
    """

    def __init__(self, sensing_config: SensingConfig | None = None, source: FrameSource | None = None,
                 refresh_ms: int = 30):
        super().__init__()
        self.setWindowTitle("sdr-isac range-Doppler")
        self.sensing_config = sensing_config or SensingConfig()
        self.source = source
        self.current: DisplayFrame | None = None
        self.paused = False
        self._times: collections.deque[float] = collections.deque(maxlen=30)
        self._fitted = False
        self.status_bar = QtWidgets.QStatusBar()
        self.setStatusBar(self.status_bar)
        self._build_plot()
        self._build_controls()
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.poll)
        if source is not None:
            self.timer.start(max(1, min(int(refresh_ms), 10000)))

    # -- construction -------------------------------------------------------------------------------------------
    def _build_plot(self) -> None:
        self.plot_widget = pg.PlotWidget()
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setLabel("bottom", "radial velocity (m/s, positive away)")
        self.plot.setLabel("left", "range (m)")
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
        self.setCentralWidget(self.plot_widget)

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
        self.pause_button = QtWidgets.QPushButton("pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._pause_toggled)
        form.addRow(self.pause_button)
        fit = QtWidgets.QPushButton("fit view")
        fit.clicked.connect(self.fit_view)
        form.addRow(fit)
        for spin in (self.pfa_spin, *self.guard_spins, *self.training_spins):
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
        """Take the source's newest frame and show it (nothing while paused)."""
        if self.source is None or self.paused:
            return
        try:
            frame = self.source.take()
        except SdrIsacError as err:
            self.timer.stop()
            self.status_bar.showMessage(f"source stopped: {err}")
            return
        if frame is not None:
            self.show_frame(frame)

    def show_frame(self, frame: DisplayFrame) -> None:
        """Show a frame (ignored when another node is selected)."""
        if self.node_combo.findText(frame.node_id) < 0:
            self.node_combo.addItem(frame.node_id)
        if self.node_combo.currentText() not in ("", frame.node_id):
            return
        self._times.append(time.perf_counter())
        self.current = frame
        self._draw(frame)

    def _draw(self, frame: DisplayFrame) -> None:
        result = frame.result
        if result.map is None:
            self._status(frame, "no map (all-zero capture)")
            return
        db, range_m, velocity = db_over_noise(result)
        self.image.setImage(db, autoLevels=False)
        dr = float(range_m[1] - range_m[0]) if range_m.size > 1 else 1.0
        dv = float(velocity[-1] - velocity[0]) / max(velocity.size - 1, 1) or 1.0
        self.image.setRect(QtCore.QRectF(float(velocity[0]) - dv / 2, float(range_m[0]) - dr / 2,
                                         dv * velocity.size, dr * range_m.size))
        dets = result.detections
        self.detection_markers.setData(x=[d.velocity_mps for d in dets], y=[d.range_m for d in dets])
        targets = _targets(frame.truth_paths)
        self.truth_markers.setData(x=[p["velocity_mps"] for p in targets], y=[p["range_m"] for p in targets])
        if not self._fitted:
            self.colorbar.setLevels((0.0, max(30.0, float(db.max()))))
            self.fit_view()
        self._status(frame, f"{len(dets)} detections")

    def _status(self, frame: DisplayFrame, text: str) -> None:
        self.status_bar.showMessage(f"node {frame.node_id}   seq {frame.seq}   {self.frame_rate_hz():.1f} fps   "
                                     f"P_fa {self.sensing_config.pfa:.1e}   {text}")

    def frame_rate_hz(self) -> float:
        """Frames shown per second over the last 30 frames (0 before two)."""
        if len(self._times) < 2 or self._times[-1] <= self._times[0]:
            return 0.0
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])

    def fit_view(self) -> None:
        """Zoom to the detections and truth (as ``experiments.demo`` does), within the map's axes."""
        if self.current is None or self.current.result.map is None:
            return
        _, range_m, velocity = db_over_noise(self.current.result)
        points = [(d.range_m, d.velocity_mps) for d in self.current.result.detections]
        points += [(p["range_m"], p["velocity_mps"]) for p in _targets(self.current.truth_paths)]
        top = min(max([r for r, _ in points] + [10.0]) * 1.5, float(range_m[-1]))
        span = max([abs(v) for _, v in points] + [10.0]) * 3
        self.plot.setXRange(max(-span, float(velocity[0])), min(span, float(velocity[-1])), padding=0)
        self.plot.setYRange(0.0, top, padding=0)
        self._fitted = True

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
            self.source.set_sensing_config(cfg)
        if self.current is not None and self.current.capture is not None:
            try:
                frame = frame_of(self.current.capture, cfg)
            except SdrIsacError as err:
                self.status_bar.showMessage(f"not applied: {err}")
                return
            self.current = frame
            self._draw(frame)

    def _pause_toggled(self, paused: bool) -> None:
        self.paused = paused
        self.pause_button.setText("resume" if paused else "pause")

    def _node_changed(self, node_id: str) -> None:
        self._fitted = False

    # -- pixels -------------------------------------------------------------------------------------------------
    def pixel_of(self, velocity_mps: float, range_m: float) -> tuple[int, int]:
        """Where a (velocity, range) point lies in ``self.grab()``, pixels (x right, y down)."""
        scene = self.plot.vb.mapViewToScene(QtCore.QPointF(velocity_mps, range_m))
        view = self.plot_widget.mapFromScene(scene)
        point = self.plot_widget.viewport().mapTo(self, view)
        ratio = self.devicePixelRatioF()
        return round(point.x() * ratio), round(point.y() * ratio)

    def save_png(self, path: str | Path) -> None:
        """Render the window and write it as PNG, atomically (temporary file, then rename)."""
        path = Path(path)
        pixmap = self.grab()
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".png",
                                         delete=False) as tmp:
            name = tmp.name
        try:
            if not pixmap.save(name, "PNG"):
                raise SdrIsacError(f"could not write {path} as PNG: check the folder exists and is writable")
            os.chmod(name, 0o644)                       # a temporary file is created owner-only
            os.replace(name, path)
        finally:
            if os.path.exists(name):
                os.unlink(name)


def snapshot(result: SensingResult, truth_paths: list[dict[str, Any]], path_png: str | Path,
             size: tuple[int, int] = (1000, 700), *, node_id: str = "", seq: int = 0,
             sensing_config: SensingConfig | None = None) -> list[tuple[int, int]]:
    """Render one result in a window offscreen and save it as PNG.

    Parameters
    ----------
    result : SensingResult
        Map and detections.
    truth_paths : list of dict
        Ground-truth paths (``capture.metadata["truth"]["paths"]``); the
        ``kind == "target"`` ones are drawn as circles.
    path_png : str or Path
        Output file, written atomically.
    size : tuple of int
        Window width and height, pixels.

    Returns
    -------
    list of tuple of int
        Pixel (x, y) of each target of ``truth_paths`` in the PNG.
    """
    app = ensure_app()
    window = RangeDopplerWindow(sensing_config)
    try:
        window.resize(*size)
        window.show()
        window.show_frame(DisplayFrame(node_id, seq, 0.0, result, list(truth_paths)))
        app.processEvents()
        window.fit_view()
        app.processEvents()
        pixels = [window.pixel_of(p["velocity_mps"], p["range_m"]) for p in _targets(truth_paths)]
        window.save_png(path_png)
    finally:
        window.close()
        window.deleteLater()
    return pixels
