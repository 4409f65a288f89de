"""Read SigMF recordings as captures, memory-mapped.

See :mod:`sdr_isac.recording.sigmf_io` for the on-disk layout.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sdr_isac.capture import Capture
from sdr_isac.config import FrameConfig, from_dict
from sdr_isac.errors import ConfigError, InputError, RecordingError
from sdr_isac.recording._format import (
    ISAC,
    SCHEMA_VERSION,
    TRUTH,
    Datatype,
    check_int,
    datatype_info,
    decode,
    file_names,
    schema_errors,
    sigmf,
)

__all__ = ["Recording", "open_recording"]


def _drop_none(value: Any) -> Any:
    """Remove None entries from dicts (a config's None fields are its defaults)."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _schema_message(err: Exception) -> str:
    path = getattr(err, "absolute_path", None)
    where = "/".join(str(p) for p in path) if path else ""
    text = getattr(err, "message", None) or str(err)
    return f"at {where}: {text}" if where else f"({text})"


def _read_metadata(meta_path: Path) -> dict[str, Any]:
    """Parse and validate the ``.sigmf-meta`` file with the sigmf package."""
    if not meta_path.is_file():
        raise RecordingError(f"{meta_path}: metadata file not found; allowed the path of a SigMF recording "
                             "(base name, .sigmf-meta or .sigmf-data); check the path")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except OSError as err:
        raise RecordingError(f"{meta_path}: cannot read the metadata ({err.strerror}); check permissions") from err
    except UnicodeDecodeError as err:
        raise RecordingError(f"{meta_path}: metadata is not UTF-8 text ({err.reason}); allowed a SigMF JSON "
                             "file; check that this is the .sigmf-meta file") from err
    except json.JSONDecodeError as err:
        raise RecordingError(f"{meta_path}: invalid JSON at line {err.lineno}, column {err.colno} ({err.msg}); "
                             "allowed SigMF metadata in JSON; fix or re-create the metadata file") from err
    if not isinstance(metadata, dict) or not isinstance(metadata.get("global"), dict):
        raise RecordingError(f"{meta_path}: 'global' object missing: allowed SigMF metadata with "
                             "'global', 'captures' and 'annotations'; fix or re-create the metadata file")
    sm = sigmf()
    try:
        meta = sm.SigMFFile(metadata=metadata)
        meta.validate()
    except schema_errors() as err:
        raise RecordingError(f"{meta_path}: invalid SigMF metadata {_schema_message(err)}; allowed metadata "
                             f"following the SigMF {sm.__specification__} schema; fix that field") from err
    return metadata


class Recording:
    """A SigMF recording opened for reading, its samples memory-mapped.

    Open one with :meth:`open` (or :func:`open_recording`).  The data file is
    mapped with :class:`numpy.memmap` and never read whole: :meth:`capture`
    and :meth:`read` copy only the samples asked for.

    Captures are the annotations that carry ``isac:seq`` (one per capture, as
    :class:`~sdr_isac.recording.RecordingWriter` writes them).  A foreign
    recording without them is one capture spanning the file, or consecutive
    blocks of ``samples_per_capture`` samples.

    Samples come back as complex64; ``ci16_le`` and ``ci8`` integers are scaled
    by :attr:`scale` (1/32768 and 1/128) to full scale [-1, 1).

    Attributes
    ----------
    meta_path, data_path : Path
        The two files.
    datatype : str
        ``core:datatype``: ``cf32_le``, ``cf64_le``, ``ci16_le`` or ``ci8``.
    scale : float
        Factor from stored integers to complex64 (1.0 for float types).
    sample_rate_hz : float
        ``core:sample_rate``, Hz.
    center_freq_hz : float
        ``core:frequency`` of the first capture segment, Hz (0.0 if absent).
    num_channels : int
        ``core:num_channels``.
    num_samples : int
        Samples per channel in the data file.
    frame : FrameConfig or None
        The ``frame`` given to :meth:`open`, else ``isac:frame``, else None.
    node, radio : dict
        ``isac:node`` and ``isac:radio`` ({} if absent).
    description : str
        ``core:description`` ("" if absent).
    is_isac : bool
        True if the file carries the ``isac:`` namespace (``isac:schema``).
    """

    def __init__(self, *, meta_path: Path, data_path: Path, metadata: dict[str, Any], dtype: Datatype,
                 data: NDArray[Any], segments: list[tuple[int, int]], frame: FrameConfig | None,
                 capture_annotations: list[dict[str, Any]] | None) -> None:
        glob = metadata["global"]
        self.meta_path = meta_path
        self.data_path = data_path
        self._metadata = metadata
        self._dt = dtype
        self._data: NDArray[Any] | None = data
        self._segments = segments
        self._capture_annotations = capture_annotations
        self.datatype = dtype.name
        self.scale = dtype.scale
        self.sample_rate_hz = float(glob["core:sample_rate"])
        captures = metadata.get("captures") or [{}]
        self.center_freq_hz = float(captures[0].get("core:frequency", 0.0))
        self.num_channels = int(glob.get("core:num_channels", 1))
        self.num_samples = int(data.shape[0])
        self.frame = frame
        self.node: dict[str, Any] = copy.deepcopy(glob.get(ISAC + "node") or {})
        self.radio: dict[str, Any] = copy.deepcopy(glob.get(ISAC + "radio") or {})
        self.description = str(glob.get("core:description", ""))
        self.is_isac = ISAC + "schema" in glob

    # ---- opening -------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, frame: FrameConfig | None = None, *,
             samples_per_capture: int | None = None, verify_checksum: bool = False) -> Recording:
        """Open and validate a recording.

        Parameters
        ----------
        path : str or Path
            Base name, ``.sigmf-meta`` or ``.sigmf-data`` path.
        frame : FrameConfig or None
            The frame to attach to every capture; overrides ``isac:frame``
            (use it for foreign recordings).
        samples_per_capture : int or None
            Cut the file into consecutive captures of this many samples
            (>= 1), ignoring any capture annotations; samples after the last
            whole block are not in any capture.  None: the ``isac:``
            annotations, or the whole file as one capture.
        verify_checksum : bool
            Compare ``core:sha512`` with the data file (reads the whole file
            once, in blocks).

        Returns
        -------
        Recording

        Raises
        ------
        RecordingError
            A file is missing or unreadable; the metadata is not JSON or not
            valid SigMF; the datatype is not supported; ``core:sample_rate``
            is missing; the data file is not a whole number of samples, is
            shorter than the annotations claim or longer than an sdr_isac
            recording's captures; ``isac:frame`` is invalid; the checksum
            differs.  The message names the file and the field.
        InputError
            ``frame`` or ``samples_per_capture`` is of the wrong type or range.
        """
        meta_path, data_path = file_names(path)
        metadata = _read_metadata(meta_path)
        glob = metadata["global"]
        where = f"{meta_path}: "
        dtype = datatype_info(glob.get("core:datatype"), where=where)
        if "core:sample_rate" not in glob:
            raise RecordingError(f"{where}core:sample_rate is missing: allowed a number > 0 Hz in the global "
                                 "object; add it (the sample rate the recording was made at)")
        schema = glob.get(ISAC + "schema", SCHEMA_VERSION)
        if not isinstance(schema, int) or isinstance(schema, bool) or not 1 <= schema <= SCHEMA_VERSION:
            raise RecordingError(f"{where}isac:schema = {schema!r}: allowed 1 ... {SCHEMA_VERSION}; the file comes "
                                 "from a newer sdr_isac; upgrade sdr_isac")
        data_path = _data_file(meta_path, data_path, metadata)
        data = _map_data(data_path, metadata, dtype, verify_checksum)
        frame = _frame(meta_path, glob, frame)
        num_samples = int(data.shape[0])
        annotations = [a for a in metadata.get("annotations", []) if ISAC + "seq" in a]
        if samples_per_capture is not None:
            spc = check_int("samples_per_capture", samples_per_capture, 1)
            segments = [(k * spc, spc) for k in range(num_samples // spc)]
            capture_annotations = None
        elif annotations:
            segments = _annotated_segments(meta_path, data_path, annotations, num_samples, ISAC + "schema" in glob)
            capture_annotations = annotations
        else:
            segments = [(0, num_samples)] if num_samples else []
            capture_annotations = None
        return cls(meta_path=meta_path, data_path=data_path, metadata=metadata, dtype=dtype, data=data,
                   segments=segments, frame=frame, capture_annotations=capture_annotations)

    # ---- access --------------------------------------------------------------
    @property
    def num_captures(self) -> int:
        """Captures in the recording."""
        return len(self._segments)

    @property
    def duration_s(self) -> float:
        """Length of the data file in s (all samples, gaps between captures not counted)."""
        return self.num_samples / self.sample_rate_hz

    @property
    def annotations(self) -> list[dict[str, Any]]:
        """All SigMF annotations (a copy), including foreign ones."""
        return copy.deepcopy(self._metadata.get("annotations", []))

    @property
    def global_info(self) -> dict[str, Any]:
        """The SigMF global object (a copy)."""
        return copy.deepcopy(self._metadata["global"])

    def _index(self, i: int) -> int:
        n = self.num_captures
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -n <= i < n:
            raise InputError(f"capture index = {i!r}: allowed 0 ... {self.num_captures - 1} ({self.meta_path.name} "
                             f"holds {self.num_captures} captures); use an index in range")
        return int(i) % self.num_captures

    def _mapped(self) -> NDArray[Any]:
        if self._data is None:
            raise RecordingError(f"{self.meta_path}: the recording is closed; open it again")
        return self._data

    def capture_span(self, i: int) -> tuple[int, int]:
        """``(sample_start, sample_count)`` of capture ``i`` in the data file, samples per channel."""
        return self._segments[self._index(i)]

    def truth(self, i: int) -> dict[str, Any]:
        """Ground truth of capture ``i``: its ``truth:`` keys without the prefix ({} if none)."""
        i = self._index(i)
        if self._capture_annotations is None:
            return {}
        ann = self._capture_annotations[i]
        return {k.removeprefix(TRUTH): copy.deepcopy(v) for k, v in ann.items() if k.startswith(TRUTH)}

    def capture(self, i: int) -> Capture:
        """Capture ``i`` as a :class:`~sdr_isac.capture.Capture`.

        Returns
        -------
        Capture
            ``iq`` shape (num_channels, sample_count), complex64 (integer
            datatypes scaled by :attr:`scale`), with the recording's rate,
            frequency and frame; ``seq``, ``t0_s``, ``node_id``,
            ``frame_offset`` and ``metadata`` from the annotation (foreign
            files: ``seq = i``, ``t0_s = sample_start / sample_rate_hz``,
            ``node_id`` from ``isac:node`` ``id`` or ``"node0"``).

        Raises
        ------
        RecordingError
            A sample is NaN or infinite, or the annotation holds values a
            Capture does not accept; the recording is closed.
        InputError
            ``i`` is out of range.
        """
        i = self._index(i)
        start, count = self._segments[i]
        iq = decode(self._mapped()[start:start + count], self._dt)
        finite = np.isfinite(iq.view(np.float32))
        if not finite.all():
            ch, k = np.unravel_index(int(np.argmin(finite)), finite.shape)
            k //= 2
            raise RecordingError(f"{self.data_path}: capture {i}: samples[{ch}, {k}] (file sample {start + k}) = "
                                 f"{iq[ch, k]}: allowed finite I/Q values; the data is corrupt, re-record it or "
                                 "skip this capture")
        info = self.capture_info(i)
        metadata = self._annotation(i).get(ISAC + "metadata", {})
        try:
            if not isinstance(metadata, dict):
                raise InputError(f"isac:metadata = {metadata!r}: allowed a JSON object")
            return Capture(iq=iq, sample_rate_hz=self.sample_rate_hz, center_freq_hz=self.center_freq_hz,
                           t0_s=info["t0_s"], node_id=info["node_id"], seq=info["seq"], frame=self.frame,
                           frame_offset=info["frame_offset"], metadata=copy.deepcopy(metadata))
        except InputError as err:
            raise RecordingError(f"{self.meta_path}: annotation of capture {i} (sample_start {start}): {err}; "
                                 "fix the isac: fields of that annotation") from err

    def _annotation(self, i: int) -> dict[str, Any]:
        return self._capture_annotations[i] if self._capture_annotations is not None else {}

    def capture_info(self, i: int) -> dict[str, Any]:
        """Facts of capture ``i`` without reading its samples.

        Returns
        -------
        dict
            ``sample_start``, ``sample_count`` (samples per channel in the
            data file), ``seq``, ``t0_s`` (s), ``node_id``, ``frame_offset``
            (samples); for foreign files ``seq = i``, ``t0_s = sample_start /
            sample_rate_hz``, ``node_id`` from ``isac:node`` or ``"node0"``,
            ``frame_offset = 0``.

        Raises
        ------
        RecordingError
            An ``isac:`` field has the wrong type.
        """
        i = self._index(i)
        start, count = self._segments[i]
        ann = self._annotation(i)
        try:
            return {"sample_start": start, "sample_count": count, "seq": int(ann.get(ISAC + "seq", i)),
                    "t0_s": float(ann.get(ISAC + "t0_s", start / self.sample_rate_hz)),
                    "node_id": str(ann.get(ISAC + "node_id", self.node.get("id", "node0"))),
                    "frame_offset": int(ann.get(ISAC + "frame_offset", 0))}
        except (TypeError, ValueError) as err:
            raise RecordingError(f"{self.meta_path}: annotation of capture {i} (sample_start {start}): {err}; "
                                 "allowed isac:seq and isac:frame_offset integers, isac:t0_s a number; fix "
                                 "that annotation") from err

    def read(self, start: int, count: int) -> NDArray[np.complex64]:
        """Samples ``start ... start + count - 1`` of every channel, across capture boundaries.

        Parameters
        ----------
        start : int
            First sample per channel, 0 ... num_samples.
        count : int
            Samples per channel, 0 ... num_samples - start.

        Returns
        -------
        ndarray, shape (num_channels, count), complex64
            A copy (integer datatypes scaled by :attr:`scale`); not checked
            for NaN.
        """
        check_int("start", start, 0)
        check_int("count", count, 0)
        if start + count > self.num_samples:
            raise InputError(f"start + count = {start} + {count}: allowed <= {self.num_samples} samples "
                             f"(the length of {self.data_path.name}); read less")
        return decode(self._mapped()[start:start + count], self._dt)

    def __len__(self) -> int:
        return self.num_captures

    def __iter__(self) -> Iterator[Capture]:
        for i in range(self.num_captures):
            yield self.capture(i)

    def close(self) -> None:
        """Release the memory map; captures already returned stay valid (they are copies)."""
        self._data = None

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Recording({str(self.meta_path)!r}, {self.num_captures} captures, {self.num_channels} channels, "
                f"{self.datatype}, {self.sample_rate_hz:g} Hz)")


def open_recording(path: str | Path, frame: FrameConfig | None = None, *,
                   samples_per_capture: int | None = None, verify_checksum: bool = False) -> Recording:
    """Open a recording; the same as :meth:`Recording.open`."""
    return Recording.open(path, frame, samples_per_capture=samples_per_capture, verify_checksum=verify_checksum)


# ---- helpers of Recording.open ------------------------------------------------
def _data_file(meta_path: Path, data_path: Path, metadata: dict[str, Any]) -> Path:
    glob = metadata["global"]
    if glob.get("core:metadata_only"):
        raise RecordingError(f"{meta_path}: core:metadata_only = true: allowed recordings with samples; "
                             "this file has no data file to read")
    sm = sigmf()
    try:
        found = sm.sigmffile.get_dataset_filename_from_metadata(meta_path, metadata)
    except sm.error.SigMFFileError as err:
        raise RecordingError(f"{meta_path}: core:dataset = {glob.get('core:dataset')!r}: {err}; "
                             "put the data file beside the metadata") from err
    if found is None:
        raise RecordingError(f"{data_path}: data file not found (needed by {meta_path.name}); allowed a "
                             ".sigmf-data file with the metadata's base name beside it; copy it there")
    return Path(found)


def _map_data(data_path: Path, metadata: dict[str, Any], dtype: Datatype, verify: bool) -> NDArray[Any]:
    """Memory-map the samples: shape (n, C) (float types) or (n, C, 2) (integer types)."""
    glob = metadata["global"]
    captures = metadata.get("captures", [])
    num_channels = int(glob.get("core:num_channels", 1))
    if any(c.get("core:header_bytes", 0) for c in captures[1:]):
        raise RecordingError(f"{data_path}: core:header_bytes in a capture segment after the first: allowed only "
                             "in the first segment; convert the file to a conforming SigMF dataset")
    header = int(captures[0].get("core:header_bytes", 0)) if captures else 0
    trailing = int(glob.get("core:trailing_bytes", 0))
    size = data_path.stat().st_size
    payload = size - header - trailing
    frame_bytes = dtype.sample_size * num_channels
    if payload < 0 or payload % frame_bytes:
        raise RecordingError(
            f"{data_path}: {payload} bytes of samples: allowed a multiple of {frame_bytes} bytes "
            f"({num_channels} channel(s) x {dtype.sample_size} bytes per {dtype.name} sample); the data file is "
            "truncated or core:datatype / core:num_channels is wrong; re-record or fix the metadata")
    if verify:
        _verify_checksum(data_path, glob)
    num_samples = payload // frame_bytes
    shape = (num_samples, num_channels) + ((2,) if dtype.is_int else ())
    if num_samples == 0:
        return np.empty(shape, dtype=dtype.disk)
    try:
        return np.memmap(data_path, dtype=dtype.disk, mode="r", offset=header, shape=shape)
    except OSError as err:
        raise RecordingError(f"{data_path}: cannot map the data file ({err.strerror}); check permissions") from err


def _verify_checksum(data_path: Path, glob: dict[str, Any]) -> None:
    expected = glob.get("core:sha512")
    if expected is None:
        raise RecordingError(f"{data_path}: core:sha512 is missing: allowed a SHA-512 checksum to verify; "
                             "open with verify_checksum=False")
    actual = sigmf().hashing.calculate_sha512(filename=data_path)
    if actual != expected:
        raise RecordingError(f"{data_path}: core:sha512 = {expected[:16]}... but the data file hashes to "
                             f"{actual[:16]}...: allowed matching checksums; the data file is corrupt or belongs "
                             "to another recording")


def _frame(meta_path: Path, glob: dict[str, Any], frame: FrameConfig | None) -> FrameConfig | None:
    if frame is not None:
        if not isinstance(frame, FrameConfig):
            raise InputError(f"frame is a {type(frame).__name__}: allowed a FrameConfig or None; "
                             "build one with sdr_isac.config.FrameConfig")
        return frame
    stored = glob.get(ISAC + "frame")
    if stored is None:
        return None
    if not isinstance(stored, dict):
        raise RecordingError(f"{meta_path}: isac:frame = {stored!r}: allowed a JSON object of FrameConfig "
                             "fields; fix it or pass frame= to Recording.open")
    try:
        return from_dict(FrameConfig, _drop_none(stored))
    except ConfigError as err:
        raise RecordingError(f"{meta_path}: isac:frame.{err.detail}; or pass frame= to Recording.open") from err


def _annotated_segments(meta_path: Path, data_path: Path, annotations: list[dict[str, Any]], num_samples: int,
                        is_isac: bool) -> list[tuple[int, int]]:
    segments = []
    for k, ann in enumerate(annotations):
        if "core:sample_count" not in ann:
            raise RecordingError(f"{meta_path}: annotation {k} (isac:seq {ann.get(ISAC + 'seq')!r}) has no "
                                 "core:sample_count: allowed capture annotations with a sample count; add it")
        start, count = int(ann["core:sample_start"]), int(ann["core:sample_count"])
        if start + count > num_samples:
            raise RecordingError(f"{data_path}: holds {num_samples} samples per channel but capture {k} "
                                 f"(isac:seq {ann.get(ISAC + 'seq')!r}) claims samples {start} ... "
                                 f"{start + count - 1} (core:sample_start + core:sample_count); allowed captures "
                                 "inside the data file; the data file is truncated or belongs to another recording")
        segments.append((start, count))
    end = max(s + c for s, c in segments)
    if is_isac and end != num_samples:
        raise RecordingError(f"{data_path}: holds {num_samples} samples per channel but the captures of "
                             f"{meta_path.name} end at sample {end}: allowed a data file exactly as long as its "
                             "captures; the data and metadata files do not belong together")
    return segments
