"""Where the display's frames come from: a background thread that keeps only the newest result.

Nothing here imports Qt: a source produces :class:`DisplayFrame` objects on
its own thread and the window takes the newest one on a timer, so a slow GUI
drops stale frames instead of queueing them.

>>> holder = LatestValue()
>>> holder.put(1); holder.put(2)
>>> holder.take(), holder.take(), holder.dropped
(2, None, 1)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from sdr_isac import config, sensing
from sdr_isac.capture import Capture
from sdr_isac.config import SensingConfig
from sdr_isac.errors import ConfigError, SdrIsacError
from sdr_isac.radio.replay import ReplayRadio
from sdr_isac.sensing.pipeline import SensingResult

__all__ = ["DisplayFrame", "LatestValue", "ReplaySource", "frame_of"]

T = TypeVar("T")


@dataclass(eq=False)
class DisplayFrame:
    """One thing to draw.

    Attributes
    ----------
    node_id : str
        The node that captured it.
    seq : int
        The capture's sequence number.
    t0_s : float
        Capture start time, s.
    result : SensingResult
        Map and detections.
    truth_paths : list of dict
        Ground-truth paths of a simulated or replayed capture (``kind``,
        ``range_m``, ``velocity_mps``, ...); empty for a live radio.
    capture : Capture or None
        The capture itself, kept so the window can run detection again with
        other settings.
    """

    node_id: str
    seq: int
    t0_s: float
    result: SensingResult
    truth_paths: list[dict[str, Any]] = field(default_factory=list)
    capture: Capture | None = None


def frame_of(capture: Capture, sensing_config: SensingConfig | None = None) -> DisplayFrame:
    """Sense one capture and wrap it for display.

    Raises
    ------
    SensingError
        As :func:`sdr_isac.sensing.process`.
    """
    result = sensing.process(capture, None, sensing_config)
    truth = list((capture.metadata.get("truth") or {}).get("paths", []))
    return DisplayFrame(capture.node_id, capture.seq, capture.t0_s, result, truth, capture)


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


class ReplaySource:
    """Replays a SigMF recording in a loop, sensing each capture on a background thread.

    Parameters
    ----------
    path : str or Path
        A ``.sigmf-meta`` file written by ``sdr-isac record`` or the simulator.
    sensing_config : SensingConfig, optional
        Processing settings (default ``SensingConfig()``); change them later
        with :meth:`set_sensing_config`.
    interval_s : float
        Least time between captures, s (0: as fast as sensing goes), >= 0.

    Raises
    ------
    RecordingError, RadioError
        The recording cannot be opened.

    Examples
    --------
    >>> with ReplaySource("offline_data/two_targets.sigmf-meta") as src:
    ...     frame = src.wait(timeout_s=30.0)
    >>> frame.node_id, len(frame.result.detections) >= 2
    ('bs0', True)
    """

    def __init__(self, path: str | Path, sensing_config: SensingConfig | None = None, interval_s: float = 0.0):
        if interval_s < 0:
            raise ConfigError(f"interval_s = {interval_s} s: must be >= 0 (0 runs as fast as sensing goes)",
                                     key="interval_s")
        self._radio = ReplayRadio(config.RadioConfig(kind="replay", uri=str(path), loop=True))
        self.sensing_config = sensing_config or SensingConfig()
        self.interval_s = interval_s
        self.latest: LatestValue[DisplayFrame] = LatestValue()
        self.error: SdrIsacError | None = None
        self._new = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"replay {Path(path).name}", daemon=True)

    def set_sensing_config(self, sensing_config: SensingConfig) -> None:
        """Use other settings from the next capture on."""
        self.sensing_config = sensing_config

    def start(self) -> ReplaySource:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close the recording."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self._radio.close()

    def take(self) -> DisplayFrame | None:
        """The newest frame not yet taken, or None.

        Raises
        ------
        SdrIsacError
            The background thread stopped on this error.
        """
        if self.error is not None:
            raise self.error
        return self.latest.take()

    def wait(self, timeout_s: float = 10.0) -> DisplayFrame | None:
        """Block until a frame arrives (or ``timeout_s`` passes) and take it."""
        self._new.wait(timeout_s)
        self._new.clear()
        return self.take()

    def __enter__(self) -> ReplaySource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                capture = self._radio.next_capture()
                self.latest.put(frame_of(capture, self.sensing_config))
                self._new.set()
                if self.interval_s:
                    self._stop.wait(self.interval_s)
        except SdrIsacError as err:
            self.error = err
            self._new.set()
