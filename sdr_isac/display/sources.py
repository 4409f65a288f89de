"""Where the display's frames come from: worker threads that keep only the newest result per node.

Nothing here imports Qt: a source produces :class:`DisplayFrame` objects on
its own threads and the window takes the newest ones on a timer, so a slow
GUI drops stale frames instead of queueing them.  Everything costly happens
on those threads: sensing a replayed capture, converting a map to dB, running
CFAR again when the window's controls change, writing recordings.

- :class:`ReplaySource` replays a SigMF recording and senses each capture.
- :class:`HostSource` subscribes to a fusion host's PUB socket (through
  :func:`sdr_isac.stream.subscribe.subscribe`) and takes its ``rdmap``
  (map, detections, the node's counters and position) and ``detections``
  messages, plus ``estimates`` and ``tracks`` when a host publishes them.

>>> holder = LatestValue()
>>> holder.put(1); holder.put(2)
>>> holder.take(), holder.take(), holder.dropped
(2, None, 1)
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from sdr_isac import config, sensing
from sdr_isac.capture import Capture
from sdr_isac.config import SensingConfig, StreamConfig
from sdr_isac.display.record import JsonLinesRecorder, SigmfRecorder
from sdr_isac.errors import ConfigError, InputError, RecordingError, SdrIsacError, SensingError, WireFormatError
from sdr_isac.radio.replay import ReplayRadio
from sdr_isac.sensing.detection import Detection, find_peaks
from sdr_isac.sensing.pipeline import SensingResult, cfar_detector
from sdr_isac.stream import wire

__all__ = ["DisplayFrame", "GridDetection", "HostSource", "LatestByKey", "LatestValue", "LinkStats", "NodePlace",
           "ReplaySource", "db_over_noise", "frame_of", "frame_of_result", "rethreshold", "scene_places"]

T = TypeVar("T")
_WHOLE_MAP = 1 << 22            # cells: a replayed map is cropped to the reportable range, never pooled
_MAX_NODES = 64                 # nodes a source keeps (a flood of made-up ids must not grow memory)


@dataclass(frozen=True)
class NodePlace:
    """Where a node stands (from ``isac:node`` of a recording or the host's ``[scene]``).

    Attributes
    ----------
    position_m : tuple of float
        (x, y, z), m; z = 0 when only (x, y) is known.
    yaw_deg : float
        Boresight, degrees from +x towards +y (``sdr_isac.channel.geometry``).
    """

    position_m: tuple[float, float, float]
    yaw_deg: float = 0.0

    @classmethod
    def from_dict(cls, data: Any) -> NodePlace | None:
        """From ``{"position_m": [x, y(, z)], "yaw_deg": a}``; None when it holds no usable position."""
        if not isinstance(data, dict):
            return None
        pos = data.get("position_m")
        if not (isinstance(pos, (list, tuple)) and len(pos) in (2, 3)
                and all(isinstance(v, (int, float)) and math.isfinite(v) for v in pos)):
            return None
        yaw = data.get("yaw_deg", 0.0)
        yaw = float(yaw) if isinstance(yaw, (int, float)) and math.isfinite(yaw) else 0.0
        x, y, *z = (float(v) for v in pos)
        return cls((x, y, z[0] if z else 0.0), yaw)


@dataclass(frozen=True)
class GridDetection:
    """A CFAR hit on a published map, at the map's grid (the display's own CFAR; no off-grid refinement).

    Attributes
    ----------
    range_m : float
        Range (or range sum) of the cell, m.
    velocity_mps : float
        Velocity of the cell, m/s, positive away.
    map_snr_db : float
        The cell's power over the noise of one cell, dB.
    geometry : str
        ``monostatic`` or ``bistatic``.
    angle_rad : None
        No angle: a map carries none.
    """

    range_m: float
    velocity_mps: float
    map_snr_db: float
    geometry: str = "monostatic"
    angle_rad: float | None = None


@dataclass(frozen=True)
class LinkStats:
    """What the status bar says about one node.

    Attributes
    ----------
    node_id : str
    frame_rate_hz : float or None
        Frames per second: received at the host (live), sensed here (replay).
    received, lost : int
        Frames received and lost (sequence gaps at the host); a replay loses none.
    latency_s : float or None
        Live: mean node-to-host latency from the host's counters, s; replay: None (no link).
    publish_latency_s : float or None
        Live: host-to-display latency of the newest message (receive time minus the host's ``sent_s``), s.
    processing_s : float or None
        Replay: time this display took to sense the newest capture, s.
    """

    node_id: str
    frame_rate_hz: float | None = None
    received: int = 0
    lost: int = 0
    latency_s: float | None = None
    publish_latency_s: float | None = None
    processing_s: float | None = None

    def text(self) -> str:
        """E.g. ``bs0 19.8 fps, loss 0 (0.0 %), latency 2.1 ms (+0.4 ms to display)``."""
        rate = f"{self.frame_rate_hz:.1f} fps" if self.frame_rate_hz is not None else "-- fps"
        total = self.received + self.lost
        loss = f"loss {self.lost} ({100.0 * self.lost / total:.1f} %)" if total else f"loss {self.lost}"
        if self.latency_s is not None:
            latency = f"latency {1e3 * self.latency_s:.1f} ms"
            if self.publish_latency_s is not None:
                latency += f" (+{1e3 * self.publish_latency_s:.1f} ms to display)"
        else:
            latency = "latency n/a"
            if self.processing_s is not None:
                latency += f" (sensing {1e3 * self.processing_s:.0f} ms)"
        return f"{self.node_id} {rate}, {loss}, {latency}"


@dataclass(eq=False)
class DisplayFrame:
    """One node's result, ready to draw (the dB conversion is done on the source's thread).

    Attributes
    ----------
    node_id : str
    seq : int
        The capture's sequence number.
    t0_s : float
        Capture start time, s.
    power_db : ndarray, shape (R, D), float32, or None
        Map over the noise of one cell, dB; None when only detections are known.
    range_m : ndarray, shape (R,), or None
        Range of each row, m, ascending.
    velocity_mps : ndarray, shape (D,), or None
        Velocity of each column, m/s, ascending, positive away.
    detections : list of Detection or GridDetection
        What CFAR found with :attr:`sensing_config` (``range_m``, ``velocity_mps``, ``angle_rad``).
    truth_paths : list of dict
        Ground-truth paths of simulated data (``kind``, ``range_m``, ``velocity_mps``, ...).
    truth_targets : list of dict
        Ground-truth targets (``id``, ``position_m``), for the top view.
    node : NodePlace or None
        Where the node stands; None when unknown.
    max_range_m : float or None
        Largest range the detections may report, m (the coverage circle).
    geometry : str
        ``monostatic`` or ``bistatic``.
    sensing_config : SensingConfig or None
        The CFAR settings the detections come from (None: the host's, unknown here).
    result : SensingResult or None
        The full sensing result (replay only).
    capture : Capture or None
        The capture (replay only).
    reprocessed : bool
        Detection was run again on an earlier frame because the settings changed.
    """

    node_id: str
    seq: int
    t0_s: float
    power_db: NDArray[np.float32] | None
    range_m: NDArray[np.float64] | None
    velocity_mps: NDArray[np.float64] | None
    detections: list[Detection | GridDetection] = field(default_factory=list)
    truth_paths: list[dict[str, Any]] = field(default_factory=list)
    truth_targets: list[dict[str, Any]] = field(default_factory=list)
    node: NodePlace | None = None
    max_range_m: float | None = None
    geometry: str = "monostatic"
    sensing_config: SensingConfig | None = None
    result: SensingResult | None = None
    capture: Capture | None = None
    reprocessed: bool = False


def db_over_noise(result: SensingResult) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.float64]]:
    """The whole map in dB over the noise of one cell, with velocity ascending.

    Returns
    -------
    db : ndarray, shape (R, D), float32
        ``10 log10(power / (noise_var noise_gain C))``, floored at -30 dB.
    range_m : ndarray, shape (R,)
    velocity_mps : ndarray, shape (D,), ascending

    Raises
    ------
    InputError
        The result has no map (an all-zero capture).
    """
    db, range_m, velocity, _, _ = _display_map(result, SensingConfig(max_range_m=0.0), whole=True)
    return db, range_m, velocity


def _display_map(result: SensingResult, cfg: SensingConfig, whole: bool = False
                 ) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.float64], tuple[int, int], float]:
    if whole and result.map is not None:                       # no crop: as large as the map
        span = float(result.map.range_m[-1]) + 1.0
        cfg = dataclasses.replace(cfg, max_range_m=span, min_range_m=0.0)
    return wire.map_for_display(result, cfg, _WHOLE_MAP)


def _truth(metadata: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    truth = metadata.get("truth") or {}
    if not isinstance(truth, dict):
        return [], []
    paths, targets = truth.get("paths") or [], truth.get("targets") or []
    return ([p for p in paths if isinstance(p, dict)] if isinstance(paths, list) else [],
            [t for t in targets if isinstance(t, dict)] if isinstance(targets, list) else [])


def scene_places(cfg: config.Config) -> dict[str, NodePlace]:
    """Where the nodes of a configuration's ``[scene]`` stand: node id -> :class:`NodePlace` (empty: no scene)."""
    if cfg.scene is None:
        return {}
    return {n.id: NodePlace((float(n.position_m[0]), float(n.position_m[1]), float(n.position_m[2])),
                            float(n.yaw_deg)) for n in cfg.scene.nodes}


def frame_of_result(node_id: str, seq: int, t0_s: float, result: SensingResult, *,
                    truth_paths: list[dict[str, Any]] | None = None,
                    truth_targets: list[dict[str, Any]] | None = None, node: NodePlace | None = None,
                    sensing_config: SensingConfig | None = None, capture: Capture | None = None) -> DisplayFrame:
    """Wrap a sensing result for display: the map in dB over noise, cropped to the reportable range.

    Without a map (an all-zero capture) the frame has ``power_db`` None and no detections to draw on it.
    """
    cfg = sensing_config or SensingConfig()
    db: NDArray[np.float32] | None = None
    range_m: NDArray[np.float64] | None = None
    velocity: NDArray[np.float64] | None = None
    max_range_m: float | None = None
    geometry = cfg.geometry
    if result.map is not None:
        db, range_m, velocity, _, max_range_m = _display_map(result, cfg)
        geometry = result.map.geometry
    return DisplayFrame(node_id, seq, t0_s, db, range_m, velocity, list(result.detections), list(truth_paths or []),
                        list(truth_targets or []), node, max_range_m, geometry, cfg, result, capture)


def frame_of(capture: Capture, sensing_config: SensingConfig | None = None,
             node: NodePlace | None = None) -> DisplayFrame:
    """Sense one capture and wrap it for display.

    Raises
    ------
    SensingError
        As :func:`sdr_isac.sensing.process`.
    """
    cfg = sensing_config or SensingConfig()
    result = sensing.process(capture, None, cfg)
    paths, targets = _truth(capture.metadata)
    return frame_of_result(capture.node_id, capture.seq, capture.t0_s, result, truth_paths=paths,
                           truth_targets=targets, node=node, sensing_config=cfg, capture=capture)


def rethreshold(rdmap: wire.RdMap, sensing_config: SensingConfig) -> list[GridDetection]:
    """Run the display's CFAR on a published map: hits, then local maxima, strongest first.

    The power of each cell is ``10 ** (power_db / 10)`` (noise-normalised); CFAR uses
    ``sensing_config.cfar``, ``pfa``, ``guard_cells`` and ``training_cells`` for ``rdmap.num_channels``
    channels, then keeps cells within ``min_range_m ... max_range_m`` (the map's reportable range unless
    the config sets one), at most ``max_detections``.  On a max-pooled map (``decimation`` > 1) the
    noise statistics differ from the model: the false-alarm rate is only approximate.

    Raises
    ------
    SensingError, ConfigError
        The CFAR settings do not fit the map (e.g. a window larger than the map).
    """
    power = np.power(10.0, rdmap.power_db.astype(np.float64) / 10.0)
    detector = cfar_detector(sensing_config, rdmap.num_channels)
    hits = detector.detect(power).mask
    peaks = find_peaks(power.astype(np.float32), hits, sensing_config.max_detections + 8, wrap_range=False)
    upper = sensing_config.max_range_m or rdmap.max_range_m
    out = [GridDetection(float(rdmap.range_m[r]), float(rdmap.velocity_mps[d]), float(rdmap.power_db[r, d]),
                         rdmap.geometry) for r, d in peaks]
    return [d for d in out if sensing_config.min_range_m <= d.range_m <= upper][: sensing_config.max_detections]


class LatestValue(Generic[T]):
    """A one-slot, thread-safe holder: ``put`` replaces, ``take`` empties; ``dropped`` counts overwritten values."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: T | None = None
        self.dropped = 0

    def put(self, value: T) -> None:
        with self._lock:
            if self._value is not None:
                self.dropped += 1
            self._value = value

    def take(self) -> T | None:
        with self._lock:
            value, self._value = self._value, None
            return value


class LatestByKey(Generic[T]):
    """One :class:`LatestValue` slot per key (a node), at most ``max_keys`` keys (new keys beyond are ignored)."""

    def __init__(self, max_keys: int = _MAX_NODES) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, T] = {}
        self._order: list[str] = []
        self.max_keys = max_keys
        self.dropped = 0
        self.ignored = 0

    def put(self, key: str, value: T) -> None:
        with self._lock:
            if key not in self._order:
                if len(self._order) >= self.max_keys:
                    self.ignored += 1
                    return
                self._order.append(key)
            if key in self._values:
                self.dropped += 1
            self._values[key] = value

    def take_all(self) -> list[T]:
        """The newest value of every key that has one, in the order keys first appeared; empties the slots."""
        with self._lock:
            out = [self._values[k] for k in self._order if k in self._values]
            self._values.clear()
            return out


class _WorkerSource:
    """What both sources share: the newest frames per node, the error of a worker, pause, settings, recording."""

    def __init__(self, sensing_config: SensingConfig | None) -> None:
        self.sensing_config = sensing_config or SensingConfig()
        self.latest: LatestByKey[DisplayFrame] = LatestByKey()
        self.error: SdrIsacError | None = None
        self.paused = False
        self.recorder: SigmfRecorder | JsonLinesRecorder | None = None
        self.record_error: SdrIsacError | None = None
        #: recordings closed off the GUI thread (:meth:`stop_recording_async`): (files, error) each
        self._closed: queue.SimpleQueue[tuple[list[Path], SdrIsacError | None]] = queue.SimpleQueue()
        self._closers: list[threading.Thread] = []
        self.warning = ""                    # why the newest settings could not be applied ("" when they were)
        self._lock = threading.Lock()
        self._new = threading.Event()
        self._wake = threading.Event()
        self._reconfigure = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- what the window calls ---------------------------------------------------------------------
    def set_sensing_config(self, sensing_config: SensingConfig) -> None:
        """Use other CFAR settings: the worker runs detection again on the newest frame of every node, then
        goes on with them (never on the caller's thread)."""
        with self._lock:
            self.sensing_config = sensing_config
        self._reconfigure.set()
        self._wake.set()

    def set_paused(self, paused: bool) -> None:
        """Hold the current frames (settings changes still show); False goes on."""
        self.paused = bool(paused)
        self._wake.set()

    def take_all(self) -> list[DisplayFrame]:
        """The newest frame of every node not yet taken.

        Raises
        ------
        SdrIsacError
            A worker stopped on this error.
        """
        frames = self.latest.take_all()
        if frames:                  # the frames sensed before a worker stopped are shown first, the error next
            return frames
        if self.error is not None:
            raise self.error
        return frames

    def take(self) -> DisplayFrame | None:
        """The newest frame not yet taken, of any node (the last one of :meth:`take_all`), or None."""
        frames = self.take_all()
        return frames[-1] if frames else None

    def wait(self, timeout_s: float = 10.0) -> DisplayFrame | None:
        """Block until a frame arrives (or ``timeout_s`` passes) and take it."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._new.wait(max(deadline - time.monotonic(), 0.0))
            self._new.clear()
            frame = self.take()
            if frame is not None or self.error is not None or time.monotonic() >= deadline:
                return frame

    def cfar_unavailable(self) -> str | None:
        """Why the CFAR controls cannot apply here, or None when they can."""
        return None

    def start_recording(self, directory: str | Path) -> str:
        """Start recording into ``directory``; returns what is written (for the status bar).

        Raises
        ------
        RecordingError
            The folder cannot be created or written.
        """
        recorder = self._new_recorder(directory)
        with self._lock:
            old, self.recorder, self.record_error = self.recorder, recorder, None
        if old is not None:
            old.close()
        return f"recording {self._record_what()} to {recorder.directory}"

    def _take_recorder(self) -> SigmfRecorder | JsonLinesRecorder | None:
        with self._lock:
            recorder, self.recorder = self.recorder, None
        return recorder

    def stop_recording(self) -> list[Path]:
        """Stop recording; returns the files written (complete, renamed into place)."""
        recorder = self._take_recorder()
        return recorder.close() if recorder is not None else []

    def stop_recording_async(self) -> bool:
        """Stop recording and close the files on a thread of their own (a close syncs and renames: seconds for a
        large recording, which would freeze a GUI); :meth:`take_closed_recording` hands over what it wrote.
        Returns whether a recording was running.  The thread is not a daemon: a process that exits waits for it,
        and :meth:`stop` joins it."""
        recorder = self._take_recorder()
        if recorder is None:
            return False

        def close() -> None:
            try:
                self._closed.put((recorder.close(), None))
            except SdrIsacError as err:
                self._closed.put(([], err))

        closer = threading.Thread(target=close, name="close recording")
        self._closers = [t for t in self._closers if t.is_alive()] + [closer]
        closer.start()
        return True

    def take_closed_recording(self) -> tuple[list[Path], SdrIsacError | None] | None:
        """(files written, error or None) of a recording closed by :meth:`stop_recording_async`, or None."""
        try:
            return self._closed.get_nowait()
        except queue.Empty:
            return None

    def start(self) -> _WorkerSource:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Stop the threads and finish a recording."""
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout=5.0)
        self.stop_recording()
        for t in self._closers:
            t.join()

    def __enter__(self) -> _WorkerSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- for the subclasses ------------------------------------------------------------------------
    def _new_recorder(self, directory: str | Path) -> SigmfRecorder | JsonLinesRecorder:
        raise NotImplementedError

    def _record_what(self) -> str:
        raise NotImplementedError

    def _record(self, item: Any) -> None:
        """Write ``item`` with the current recorder (on a worker thread); a failure stops the recording."""
        recorder = self.recorder
        if recorder is None:
            return
        try:
            recorder.write(item)
        except SdrIsacError as err:
            self.record_error = err
            with self._lock:
                if self.recorder is recorder:
                    self.recorder = None
            try:
                recorder.close()
            except SdrIsacError:
                pass

    def _emit(self, frame: DisplayFrame) -> None:
        self.latest.put(frame.node_id, frame)
        self._new.set()

    def _fail(self, err: SdrIsacError) -> None:
        self.error = err
        self._new.set()


class ReplaySource(_WorkerSource):
    """Replays a SigMF recording in a loop, sensing each capture on a background thread.

    Parameters
    ----------
    path : str or Path
        A ``.sigmf-meta`` file written by ``sdr-isac record`` or the simulator.
    sensing_config : SensingConfig, optional
        Processing settings (default ``SensingConfig()``; ``sdr-isac display --replay REC --config FILE``
        gives the ``[sensing]`` of FILE, as ``sdr-isac process`` does); change them later
        with :meth:`set_sensing_config` (the worker senses the current capture
        again with them).
    interval_s : float
        Least time between captures, s (0: as fast as sensing goes), >= 0.
    places : mapping of str to NodePlace, optional
        Where the nodes stand, for a recording whose ``isac:node`` does not say (a host's recording holds only
        the node id): e.g. the configuration's scene (:func:`scene_places`).

    Raises
    ------
    RecordingError, RadioError
        The recording cannot be opened.
    ConfigError
        ``interval_s`` < 0.

    Notes
    -----
    :meth:`link_stats` gives loss 0 (nothing is lost reading a file) and no
    latency; it gives the measured sensing time per capture instead.  The
    Record button writes the captures shown, to SigMF.

    Examples
    --------
    >>> with ReplaySource("offline_data/two_targets.sigmf-meta") as src:
    ...     frame = src.wait(timeout_s=30.0)
    >>> frame.node_id, len(frame.detections) >= 2, frame.node.position_m
    ('bs0', True, (0.0, 0.0, 5.0))
    """

    def __init__(self, path: str | Path, sensing_config: SensingConfig | None = None, interval_s: float = 0.0,
                 places: Mapping[str, NodePlace] | None = None):
        if not (interval_s >= 0 and math.isfinite(interval_s)):
            raise ConfigError(f"interval_s = {interval_s} s: must be a finite number >= 0 (0 runs as fast as "
                              "sensing goes)", key="interval_s")
        super().__init__(sensing_config)
        self._radio = ReplayRadio(config.RadioConfig(kind="replay", uri=str(path), loop=True))
        self.interval_s = interval_s
        self.node_description: dict[str, Any] = dict(self._radio.recording.node)
        self.node = NodePlace.from_dict(self.node_description) or (places or {}).get(self._radio.node_id)
        self._last: Capture | None = None
        self.skipped = 0                     # captures that could not be read (skipped, with a warning)
        self._bad_in_a_row = 0
        #: (node id, seq) -> the fused position estimates (m) of the set holding that frame, or None: the
        #: estimates shown with each replayed frame (``sdr-isac display --replay --estimates fused.json``)
        self.estimates_for: Callable[[str, int], list[list[float]]] | None = None
        self._estimates: LatestValue[NDArray[np.float64]] = LatestValue()
        self._done: deque[float] = deque(maxlen=30)
        self._processing_s: float | None = None
        self._threads = [threading.Thread(target=self._run, name=f"replay {Path(path).name}", daemon=True)]

    def start(self) -> ReplaySource:
        super().start()
        return self

    def __enter__(self) -> ReplaySource:
        return self.start()

    def stop(self) -> None:
        """Stop the thread, finish a recording and close the file."""
        super().stop()
        self._radio.close()

    def _emit(self, frame: DisplayFrame) -> None:
        if self.estimates_for is not None and not frame.reprocessed:
            self._estimates.put(np.asarray(self.estimates_for(frame.node_id, frame.seq), dtype=np.float64))
        super()._emit(frame)

    def take_estimates(self) -> NDArray[np.float64] | None:
        """The fused estimates of the set holding the newest replayed frame (:attr:`estimates_for`), or None if
        no frame came since the last call."""
        return self._estimates.take()

    def link_stats(self) -> dict[str, LinkStats]:
        """The replayed node: sensing rate, loss 0, latency n/a, sensing time per capture."""
        times = list(self._done)
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None
        node_id = self._radio.node_id
        return {node_id: LinkStats(node_id, rate, len(times), 0, None, None, self._processing_s)}

    def _new_recorder(self, directory: str | Path) -> SigmfRecorder:
        nodes = {self._radio.node_id: self.node_description} if self.node_description else {}
        return SigmfRecorder(directory, nodes)

    def _record_what(self) -> str:
        return "the replayed captures (SigMF)"

    def _sense(self, capture: Capture, reprocessed: bool = False) -> None:
        """Sense and emit; settings that do not fit the capture leave a :attr:`warning`, not a stopped source."""
        with self._lock:
            cfg = self.sensing_config
        start = time.perf_counter()
        try:
            frame = frame_of(capture, cfg, self.node)
        except (SensingError, ConfigError, InputError) as err:
            self.warning = f"settings not applied to {capture.node_id}/{capture.seq}: {err}"
            return
        self.warning = ""
        self._processing_s = time.perf_counter() - start
        frame.reprocessed = reprocessed
        self._emit(frame)

    def _run(self) -> None:
        due = 0.0
        try:
            while not self._stop.is_set():
                if self._reconfigure.is_set():
                    self._reconfigure.clear()
                    if self._last is not None:
                        self._sense(self._last, reprocessed=True)
                    continue
                wait_s = due - time.monotonic()
                if self.paused or wait_s > 0:
                    self._wake.wait(min(wait_s, 0.1) if wait_s > 0 else 0.1)
                    self._wake.clear()
                    continue
                try:
                    capture = self._radio.next_capture()
                except RecordingError as err:
                    # one unreadable capture (a NaN sample, a short segment): skip it, say so, go on with the
                    # next; a recording with nothing readable in a whole pass stops the replay
                    self.skipped += 1
                    self._bad_in_a_row += 1
                    self.warning = f"capture skipped: {err}"
                    if self._bad_in_a_row >= max(self._radio.recording.num_captures, 1):
                        raise
                    continue
                self._bad_in_a_row = 0
                self._last = capture
                self._sense(capture)
                self._done.append(time.monotonic())
                self._record(capture)
                due = time.monotonic() + self.interval_s
        except SdrIsacError as err:
            self._fail(err)


@dataclass(eq=False)
class _Received:
    """One message from the host, parsed (on the receiving thread)."""

    node_id: str
    seq: int
    t0_s: float
    received_s: float
    sent_s: float
    detections: list[Detection]
    stats: dict[str, Any]
    node: NodePlace | None
    truth: dict[str, Any] | None
    rdmap: wire.RdMap | None = None


def _header_dict(header: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = header.get(name)
    return value if isinstance(value, dict) else None


class HostSource(_WorkerSource):
    """Subscribes to a fusion host's results: maps, detections, counters, positions (and fused results).

    A receiving thread runs :func:`~sdr_isac.stream.subscribe.subscribe` on a SUB socket (receive
    high-water mark ``rcvhwm``: a slow display loses old messages, never memory), decodes strictly
    (a malformed message is counted in :attr:`rejected` and dropped) and keeps the newest message per
    node.  A processing thread turns the newest one into a :class:`DisplayFrame`, running the display's
    CFAR on the published map (:func:`rethreshold`) when the window's settings differ from the host's.

    Parameters
    ----------
    endpoint : str
        The host's ``stream.publish_endpoint``, e.g. ``tcp://127.0.0.1:5556``.
    sensing_config : SensingConfig, optional
        The display's CFAR settings (default ``SensingConfig()``).
    stream : StreamConfig, optional
        CURVE keys, when the host publishes with CURVE.
    rcvhwm : int
        Messages queued on the SUB socket, 1 ... 10000.

    Notes
    -----
    Topics taken: ``rdmap/`` and ``detections/`` (a node whose maps arrive is drawn from them; its
    ``detections`` messages are then redundant and skipped), ``estimates/`` (a header list ``estimates``
    of objects with ``position_m``, drawn in the top view) and ``tracks/`` (decoded by
    :func:`~sdr_isac.stream.wire.decode_tracks`: each track's latest state, history tail and handovers; a
    malformed one is counted in :attr:`rejected` like any other message).  The Record button writes the
    received messages as JSON lines (:class:`~sdr_isac.display.record.JsonLinesRecorder`): a host publishes no IQ.
    """

    def __init__(self, endpoint: str, sensing_config: SensingConfig | None = None, *,
                 stream: StreamConfig | None = None, rcvhwm: int = 4):
        if not endpoint.startswith(("tcp://", "ipc://", "inproc://")):
            raise ConfigError(f"--host {endpoint!r}: allowed a ZeroMQ endpoint tcp://HOST:PORT, ipc://PATH or "
                              "inproc://NAME; give the host's stream.publish_endpoint, e.g. tcp://127.0.0.1:5556",
                              key="host")
        if not 1 <= rcvhwm <= 10000:
            raise ConfigError(f"rcvhwm = {rcvhwm} messages: allowed 1 ... 10000", key="rcvhwm")
        super().__init__(sensing_config)
        #: show the host's own detections with the host's CFAR settings until the user changes them
        #: (:meth:`set_sensing_config`); False re-thresholds every map with ``sensing_config`` from the start
        self.follow_host = False
        self.endpoint = endpoint
        self.stream = stream
        self.rcvhwm = rcvhwm
        self.rejected = 0
        self.last_reject: str = ""
        self.received = 0
        self._pending: LatestByKey[_Received] = LatestByKey()
        self._shown: dict[str, _Received] = {}
        self._has_maps: set[str] = set()
        self._links: dict[str, LinkStats] = {}
        self._estimates: LatestValue[NDArray[np.float64]] = LatestValue()
        self._tracks: LatestValue[wire.TrackSet] = LatestValue()
        self.tracks_received = 0
        self._threads = [threading.Thread(target=self._receive, name="display-receive", daemon=True),
                         threading.Thread(target=self._process, name="display-process", daemon=True)]

    def start(self) -> HostSource:
        super().start()
        return self

    def __enter__(self) -> HostSource:
        return self.start()

    def link_stats(self) -> dict[str, LinkStats]:
        """Per node, from the host's counters in the newest message: rate, received, lost, latency."""
        with self._lock:
            return dict(self._links)

    def cfar_unavailable(self) -> str | None:
        """A reason when nodes arrive but none with a map (the host publishes detections only)."""
        with self._lock:
            nodes, maps = set(self._links), set(self._has_maps)
        if nodes and not maps:
            return ("the host publishes no range-Doppler maps (stream.publish_maps = false, or the nodes send "
                    "detections): CFAR runs at the host, its settings apply there")
        return None

    def set_sensing_config(self, sensing_config: SensingConfig) -> None:
        """The user's CFAR settings: from now on every map is re-thresholded with them (not the host's)."""
        self.follow_host = False
        super().set_sensing_config(sensing_config)

    def take_estimates(self) -> NDArray[np.float64] | None:
        """Newest fused position estimates, shape (N, 2) x/y m, or None if none arrived since the last call."""
        return self._estimates.take()

    def take_tracks(self) -> wire.TrackSet | None:
        """The newest ``tracks`` message (decoded by :func:`~sdr_isac.stream.wire.decode_tracks`: latest states,
        tails, handovers), or None if none arrived since the last call."""
        return self._tracks.take()

    def _new_recorder(self, directory: str | Path) -> JsonLinesRecorder:
        return JsonLinesRecorder(directory)

    def _record_what(self) -> str:
        return "the received maps and detections (JSON lines; the host publishes no IQ)"

    # -- receiving thread ----------------------------------------------------------------------------
    def _on_reject(self, err: WireFormatError) -> None:
        with self._lock:
            self.rejected += 1
            self.last_reject = str(err)[:200]

    def _receive(self) -> None:
        from sdr_isac.stream.subscribe import subscribe  # zmq lives in sdr_isac.stream

        topics = ("rdmap/", "detections/", "estimates/", "tracks/")
        try:
            for msg in subscribe(self.endpoint, topics, stop=self._stop, stream=self.stream, rcvhwm=self.rcvhwm,
                                 on_reject=self._on_reject):
                received_s = time.time()
                try:
                    self._take(msg, received_s)
                except WireFormatError as err:
                    self._on_reject(err)
        except SdrIsacError as err:
            self._fail(err)
        except Exception as err:                           # noqa: BLE001  e.g. zmq.ZMQError on a bad endpoint
            self._fail(SdrIsacError(f"--host {self.endpoint}: cannot subscribe ({type(err).__name__}: {err}); "
                                    "check the endpoint"))

    def _take(self, msg: wire.Message, received_s: float) -> None:
        if msg.kind == "estimates":
            estimates = wire.decode_estimates(msg)              # records, validated by the wire's decoder
            self._estimates.put(np.array([e.position_m[:2] for e in estimates], dtype=np.float64).reshape(-1, 2))
            return
        if msg.kind == "tracks":
            self._tracks.put(wire.decode_tracks(msg))          # a malformed message: WireFormatError, counted
            with self._lock:
                self.tracks_received += 1
            return
        h = msg.header
        if msg.kind == "rdmap":
            rd = wire.decode_rdmap(msg)
            item = _Received(rd.node_id, rd.seq, rd.t0_s, received_s, rd.sent_s, rd.detections, rd.stats,
                             NodePlace.from_dict(rd.node), rd.truth, rd)
            with self._lock:
                self._has_maps.add(rd.node_id)
        else:
            with self._lock:
                if msg.node_id in self._has_maps:
                    return                                  # the same detections came with the map
            item = _Received(msg.node_id, msg.seq, msg.t0_s, received_s, msg.sent_s, wire.decode_detections(msg),
                             _header_dict(h, "stats") or {}, NodePlace.from_dict(h.get("node")),
                             _header_dict(h, "truth"))
        self.received += 1
        self._update_link(item)
        self._pending.put(item.node_id, item)
        self._record(_record_of(msg, item))
        self._wake.set()

    def _update_link(self, item: _Received) -> None:
        s = item.stats

        def number(key: str) -> float | None:
            value = s.get(key)
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        with self._lock:
            if item.node_id not in self._links and len(self._links) >= _MAX_NODES:
                return
            self._links[item.node_id] = LinkStats(
                item.node_id, number("rate_hz"), int(number("received") or 0), int(number("lost") or 0),
                number("latency_mean_s"), max(item.received_s - item.sent_s, 0.0), None)

    # -- processing thread ---------------------------------------------------------------------------
    def _process(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(0.1)
                self._wake.clear()
                if self._reconfigure.is_set():
                    self._reconfigure.clear()
                    for item in list(self._shown.values()):
                        self._emit(self._frame(item, reprocessed=True))
                if self.paused:
                    continue
                for item in self._pending.take_all():
                    self._shown[item.node_id] = item
                    self._emit(self._frame(item))
        except SdrIsacError as err:
            self._fail(err)

    def _frame(self, item: _Received, reprocessed: bool = False) -> DisplayFrame:
        with self._lock:
            cfg = self.sensing_config
        truth = item.truth or {}
        paths, targets = _truth({"truth": truth})
        rd = item.rdmap
        if rd is None:
            return DisplayFrame(item.node_id, item.seq, item.t0_s, None, None, None, list(item.detections), paths,
                                targets, item.node, None, item.detections[0].geometry if item.detections else
                                "monostatic", None, reprocessed=reprocessed)
        detections: list[Detection | GridDetection] = []
        if self.follow_host:
            cfg = _host_cfar(cfg, rd.sensing)
        if self.follow_host or _same_cfar(cfg, rd.sensing):
            detections = list(rd.detections)
            self.warning = ""
        else:
            try:
                detections = list(rethreshold(rd, cfg))
                self.warning = ""
            except (SensingError, ConfigError, InputError) as err:
                self.warning = f"CFAR settings not applied to the map of {rd.node_id}: {err}"
        return DisplayFrame(item.node_id, item.seq, item.t0_s, rd.power_db, rd.range_m, rd.velocity_mps, detections,
                            paths, targets, item.node, rd.max_range_m, rd.geometry, cfg, reprocessed=reprocessed)


def _host_cfar(cfg: SensingConfig, host: dict[str, Any]) -> SensingConfig:
    """``cfg`` with the host's CFAR settings (as its rdmap header gives them), or ``cfg`` if they do not fit."""
    try:
        return dataclasses.replace(cfg, pfa=float(host["pfa"]), guard_cells=tuple(host["guard_cells"]),
                                   training_cells=tuple(host["training_cells"]), cfar=str(host.get("cfar", cfg.cfar)))
    except (KeyError, TypeError, ValueError, SdrIsacError):
        return cfg


def _same_cfar(cfg: SensingConfig, host: dict[str, Any]) -> bool:
    """Whether the display's CFAR settings are those the host's detections came from."""
    return (math.isclose(cfg.pfa, float(host.get("pfa", -1.0)), rel_tol=1e-9)
            and list(cfg.guard_cells) == list(host.get("guard_cells", []))
            and list(cfg.training_cells) == list(host.get("training_cells", []))
            and cfg.cfar == host.get("cfar", "ca")
            and cfg.max_range_m == 0.0 and cfg.min_range_m == 0.0)


def _record_of(msg: wire.Message, item: _Received) -> dict[str, Any]:
    """A JSON-lines record of one received message (header fields, and the map for an rdmap)."""
    record = {k: v for k, v in msg.header.items() if k not in ("arrays",)}
    record["received_s"] = item.received_s
    if item.rdmap is not None:
        record["map"] = {"power_db": item.rdmap.power_db, "range_m": item.rdmap.range_m,
                         "velocity_mps": item.rdmap.velocity_mps}
    return record
