"""What the display's Record button writes: SigMF for replayed captures, JSON lines for what a host publishes.

No Qt here: the sources call these on their worker threads, so disk I/O never
runs on the GUI thread.  Both writers are atomic per file: until
:meth:`close` nothing complete-looking exists at the final name (SigMF through
:class:`~sdr_isac.recording.RecordingWriter`, JSON lines through a hidden
``.<name>.<hex>.part`` file of :mod:`sdr_isac.recording._atomic` renamed at the end).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from sdr_isac.capture import Capture
from sdr_isac.errors import RecordingError
from sdr_isac.recording import RecordingWriter
from sdr_isac.recording._atomic import commit_temp, open_temp
from sdr_isac.recording.append import append_capture

__all__ = ["JsonLinesRecorder", "SigmfRecorder", "record_folder"]


def record_folder(directory: str | Path) -> Path:
    """``directory``, created if missing.

    Raises
    ------
    RecordingError
        It cannot be created (a file of that name, no permission).
    """
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RecordingError(f"record_dir = {str(path)!r}: cannot create the folder ({err.strerror}); "
                             "choose a writable folder with --record-dir") from err
    return path


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000_000 // 1_000_000:03d}"


class SigmfRecorder:
    """Writes captures to ``<directory>/<node>_<time>.sigmf-meta``, one recording per node.

    Parameters
    ----------
    directory : str or Path
        Created if missing.
    nodes : dict, optional
        Node id -> node description (``isac:node``: ``position_m``, ``yaw_deg``, ...).

    Raises
    ------
    RecordingError
        The folder cannot be created.
    """

    def __init__(self, directory: str | Path, nodes: dict[str, dict[str, Any]] | None = None):
        self.directory = record_folder(directory)
        self._nodes = dict(nodes or {})
        self._stamp = _stamp()
        self._writers: dict[str, RecordingWriter] = {}
        self._lock = threading.Lock()
        self.num_written = 0

    def write(self, capture: Capture) -> None:
        """Append one capture (its ``truth`` metadata goes to the ``truth:`` namespace).

        Raises
        ------
        RecordingError, InputError
            The capture does not fit the recording (another sample rate, channel count) or the disk fails.
        """
        with self._lock:
            writer = self._writers.get(capture.node_id)
            if writer is None:
                writer = RecordingWriter(self.directory / f"{capture.node_id}_{self._stamp}",
                                         sample_rate_hz=capture.sample_rate_hz,
                                         center_freq_hz=capture.center_freq_hz, num_channels=capture.num_channels,
                                         frame=capture.frame, node=self._nodes.get(capture.node_id),
                                         description="recorded by sdr-isac display")
                self._writers[capture.node_id] = writer
            append_capture(writer, capture, drop=("replay",))
            self.num_written += 1

    def close(self) -> list[Path]:
        """Finish every recording; returns their ``.sigmf-meta`` paths."""
        with self._lock:
            paths = []
            for writer in self._writers.values():
                writer.close()
                paths.append(writer.meta_path)
            self._writers.clear()
            return paths


class JsonLinesRecorder:
    """Writes one JSON object per line to ``<directory>/live_<time>.jsonl`` (for a host that publishes no IQ).

    Each line is one received message: ``kind``, ``node_id``, ``seq``, ``t0_s``, ``sent_s``, ``received_s``,
    the header's fields (``detections``, ``stats``, ``node``, ``truth``, ...) and, for an ``rdmap``,
    ``map`` = {``power_db`` (list of rows, dB rounded to 0.01), ``range_m``, ``velocity_mps``}.  Lines go to a
    hidden ``.live_<time>.jsonl.<hex>.part`` that :meth:`close` renames, so the file appears whole or not at all.

    Raises
    ------
    RecordingError
        The folder cannot be created or the file cannot be opened.
    """

    def __init__(self, directory: str | Path):
        self.directory = record_folder(directory)
        self.path = self.directory / f"live_{_stamp()}.jsonl"
        self._lock = threading.Lock()
        self.num_written = 0
        try:
            self._tmp, fh = open_temp(self.path)
        except OSError as err:
            raise RecordingError(f"{self.path}: cannot open for writing ({err.strerror}); choose a writable "
                                 "folder with --record-dir") from err
        self._fh: IO[bytes] | None = fh

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (numpy arrays become lists; floats of a map are rounded to 0.01)."""
        try:
            line = json.dumps(record, default=_plain, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as err:
            raise RecordingError(f"record of {record.get('kind')}/{record.get('node_id')}: not JSON ({err}); "
                                 "it is left out") from err
        with self._lock:
            if self._fh is None:
                return
            try:
                self._fh.write(line.encode("utf-8") + b"\n")
            except OSError as err:
                raise RecordingError(f"{self._tmp}: write failed ({err.strerror}); free disk space") from err
            self.num_written += 1

    def close(self) -> list[Path]:
        """Flush, rename into place; returns ``[path]``."""
        with self._lock:
            if self._fh is None:
                return [self.path]
            fh, self._fh = self._fh, None
            try:
                commit_temp(self._tmp, fh, self.path)
            except OSError as err:
                raise RecordingError(f"{self.path}: cannot finish the file ({err.strerror}); free disk space"
                                     ) from err
            return [self.path]


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return np.round(value.astype(np.float64), 2).tolist() if value.dtype.kind == "f" else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
