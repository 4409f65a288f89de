"""Read SigMF recordings as captures, memory-mapped.

See :mod:`sdr_isac.recording.sigmf_io` for the on-disk layout.
"""

from __future__ import annotations

import bisect
import copy
import hashlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from sdr_isac.capture import Capture, first_nonfinite
from sdr_isac.config import FrameConfig, from_dict
from sdr_isac.errors import ConfigError, InputError, NonFiniteSampleError, RecordingError
from sdr_isac.recording._format import archive_suffix, check_int, decode, file_names, is_collection
from sdr_isac.recording._metadata import (
    CaptureFacts,
    Metadata,
    SegmentFacts,
    check_span,
    load_json_bytes,
    parse_metadata,
    validate_metadata,
)
from sdr_isac.recording._tar import find_recording

__all__ = ["OFDM_KEYS", "Recording", "open_recording", "waveform_description"]


class Recording:
    """A SigMF recording opened for reading, its samples memory-mapped.

    Open one with :meth:`open` (or :func:`open_recording`).  The data file is
    mapped with :class:`numpy.memmap` and never read whole: :meth:`capture`
    and :meth:`read` copy only the samples asked for.

    Captures are the annotations that carry ``isac:`` or ``truth:`` keys (one
    per capture, as :class:`~sdr_isac.recording.RecordingWriter` writes
    them).  A foreign recording without them is one capture spanning the
    file, or consecutive blocks of ``samples_per_capture`` samples.

    Every metadata field is validated once, by :meth:`open` (types exactly as
    the schema says, finite and in range; see
    :mod:`sdr_isac.recording._metadata`): a recording that opens reads, and
    one that cannot be read does not open.

    Samples come back as complex64 whatever the stored datatype (every complex
    SigMF type, either byte order): signed integers are scaled by
    :attr:`scale` (1/32768 for ci16, 1/128 for ci8) to full scale [-1, 1),
    unsigned ones (offset binary, as RTL-SDR's cu8) less their midpoint
    (127.5 for cu8) by 1/127.5 (cu8) to [-1, 1].

    A recording may be a ``.sigmf-meta``/``.sigmf-data`` pair or an archive
    (``.sigmf``, ``.sigmf.gz``, ``.sigmf.xz``), read in place: never
    extracted.  Capture segments with different ``core:frequency`` (a
    retune) give captures with their own centre frequency; a capture must not
    straddle a retune.

    Attributes
    ----------
    meta_path, data_path : Path
        The two files (for an archive: ``<archive>/<member>``, names only).
    archive_path : Path or None
        The archive the recording was read from, None for a file pair.
    data_size_bytes : int
        Bytes of the data file (or member).
    datatype : str
        ``core:datatype``, one of :data:`~sdr_isac.recording.DATATYPES`.
    scale : float
        Factor from stored integers to complex64 (1.0 for float types).
    sample_rate_hz : float
        ``core:sample_rate``, Hz.
    center_freq_hz : float
        The first ``core:frequency`` of the capture segments, Hz (0.0 if
        absent); each capture has its own (:attr:`frequencies_hz`).
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

    def __init__(self, *, meta_path: Path, data_path: Path, meta: Metadata, data: NDArray[Any],
                 segments: list[tuple[int, int]], frame: FrameConfig | None,
                 facts: tuple[CaptureFacts, ...] | None, frequencies: list[float],
                 archive_path: Path | None = None, data_size_bytes: int = 0) -> None:
        self.meta_path = meta_path
        self.data_path = data_path
        self.archive_path = archive_path
        self.data_size_bytes = data_size_bytes
        self._frequencies = frequencies
        self._meta = meta
        self._dt = meta.dtype
        self._data: NDArray[Any] | None = data
        self._segments = segments
        self._facts = facts
        self._segment_times: list[float] | None = None
        self.datatype = meta.dtype.name
        self.scale = meta.dtype.scale
        self.sample_rate_hz = meta.sample_rate_hz
        self.center_freq_hz = meta.center_freq_hz
        self.num_channels = meta.num_channels
        self.num_samples = int(data.shape[0])
        self.frame = frame
        self.node: dict[str, Any] = copy.deepcopy(meta.node)
        self.radio: dict[str, Any] = copy.deepcopy(meta.radio)
        self.description = meta.description
        self.is_isac = meta.is_isac

    # ---- opening -------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, frame: FrameConfig | None = None, *, samples_per_capture: int | None = None,
             verify_checksum: bool = True, allow_outside: bool = False, member: str | None = None) -> Recording:
        """Open and validate a recording.

        Parameters
        ----------
        path : str or Path
            Base name, ``.sigmf-meta`` or ``.sigmf-data`` path, or an archive
            (``.sigmf``, ``.sigmf.gz``, ``.sigmf.xz``; see
            :mod:`sdr_isac.recording.archive`).  A ``.sigmf-collection`` is
            refused: open it with :func:`~sdr_isac.recording.open_collection`.
        frame : FrameConfig or None
            The frame to attach to every capture; replaces ``isac:frame``,
            which is then not read (use it for foreign recordings, or for a
            recording whose stored frame is invalid).
        samples_per_capture : int or None
            Cut the file into consecutive captures of this many samples
            (>= 1), ignoring any capture annotations; samples after the last
            whole block are not in any capture; a block must not straddle a
            retune.  None: the ``isac:`` annotations, or (foreign files) one
            capture per capture segment, or the whole file as one capture.
        verify_checksum : bool
            Compare ``core:sha512``, when the metadata has one, with the data
            file (default).  This reads the whole data file once (about
            1 s per GB); pass False to skip it for a big recording you trust.
        allow_outside : bool
            Allow a data file outside the folder of the ``.sigmf-meta``
            (``core:dataset`` with ``..`` or an absolute path, a symbolic
            link that resolves elsewhere).  False (default) refuses it: a
            recording from elsewhere could otherwise make you read any file.
            (Inside an archive, only members of the archive are read.)
        member : str or None
            Base name of the recording to open in an archive that holds
            several (None: the archive must hold one).

        Returns
        -------
        Recording

        Raises
        ------
        RecordingError
            A file is missing or unreadable; the metadata is not JSON or not
            valid SigMF; a field has the wrong type or range (a bool or 2.5
            where an integer belongs, a string where a number belongs, NaN,
            a negative frequency, ...); the datatype is not supported; the
            data file is outside the recording's folder, not a whole number
            of samples, shorter than the annotations claim or longer than an
            sdr_isac recording's captures; ``isac:frame`` is invalid; the
            checksum differs; a capture straddles a change of
            ``core:frequency``; an archive member has a traversal name
            (``..``, absolute), is a link or a device, or runs past the end
            of the archive.  The message names the file and the field.
        InputError
            ``frame`` or ``samples_per_capture`` is of the wrong type or range.
        """
        if is_collection(path):
            raise RecordingError(f"{path}: a SigMF collection (several recordings): allowed one recording here; "
                                 "open it with sdr_isac.recording.open_collection, or name one of its members "
                                 "(sdr-isac info lists them)")
        if str(path).lower().endswith(".sigmf.zip"):
            raise RecordingError(f"{path}: a zip SigMF archive: allowed tar archives (.sigmf, .sigmf.gz, .sigmf.xz) "
                                 "and .sigmf-meta recordings; unzip it and open the .sigmf-meta inside")
        if frame is not None and not isinstance(frame, FrameConfig):
            raise InputError(f"frame is a {type(frame).__name__}: allowed a FrameConfig or None; "
                             "build one with sdr_isac.config.FrameConfig")
        spc = None if samples_per_capture is None else check_int("samples_per_capture", samples_per_capture, 1)
        archive_path = None
        if archive_suffix(path) is not None:
            archive_path = Path(path)
            found = find_recording(archive_path, member)
            meta_path, data_path = found.meta_path, found.data_path
            meta = validate_metadata(load_json_bytes(found.meta_bytes, meta_path, "metadata"), meta_path,
                                     with_frame=frame is None)
            size = found.data_size_bytes
            data = _map_data(data_path, meta, size, found.sha512 if verify_checksum else None, found.map_data)
        else:
            meta_path, data_path = file_names(path)
            meta = parse_metadata(meta_path, with_frame=frame is None)     # a frame given replaces isac:frame
            data_path = _data_file(meta_path, data_path, meta, allow_outside)
            size = _file_size(data_path)
            data = _map_data(data_path, meta, size, (lambda: _file_sha512(data_path)) if verify_checksum else None,
                             _file_mapper(data_path))
        num_samples = int(data.shape[0])
        facts: tuple[CaptureFacts, ...] | None = None
        if spc is not None:
            segments = [(k * spc, spc) for k in range(num_samples // spc)]
        elif meta.captures:
            segments = _annotated_segments(meta_path, data_path, meta, num_samples)
            facts = meta.captures
        elif meta.is_isac and num_samples:
            raise RecordingError(f"{data_path}: holds {num_samples} samples per channel but {meta_path.name} has "
                                 "no capture annotation (isac:seq): allowed a data file exactly as long as its "
                                 "captures; the data and metadata files do not belong together")
        else:
            segments = _foreign_segments(meta_path, meta, num_samples)
        what = "capture" if spc is None else f"block (samples_per_capture = {spc})"
        frequencies = [_frequency(meta_path, meta, f"{what} {k}", start, count)
                       for k, (start, count) in enumerate(segments)]
        return cls(meta_path=meta_path, data_path=data_path, meta=meta, data=data, segments=segments,
                   frame=frame if frame is not None else meta.frame, facts=facts, frequencies=frequencies,
                   archive_path=archive_path, data_size_bytes=size)

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
        return copy.deepcopy(self._meta.raw["annotations"])

    @property
    def metadata(self) -> dict[str, Any]:
        """The whole SigMF metadata, ``global``, ``captures`` and ``annotations`` (a copy)."""
        return copy.deepcopy(self._meta.raw)

    @property
    def global_info(self) -> dict[str, Any]:
        """The SigMF global object (a copy)."""
        return copy.deepcopy(self._meta.raw["global"])

    @property
    def capture_segments(self) -> list[dict[str, Any]]:
        """The SigMF capture segments: ``index``, ``sample_start``, ``sample_count`` (to the next segment or
        the end of the data), ``center_freq_hz`` (Hz; the first declared one where a segment has none)."""
        segments = self._meta.segments
        ends = [seg.sample_start for seg in segments[1:]] + [self.num_samples]
        return [{"index": seg.index, "sample_start": seg.sample_start,
                 "sample_count": max(end - seg.sample_start, 0), "center_freq_hz": seg.center_freq_hz}
                for seg, end in zip(segments, ends)]

    @property
    def frequencies_hz(self) -> list[float]:
        """Centre frequency of each capture, Hz (several after a retune)."""
        return list(self._frequencies)

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
        return {} if self._facts is None else copy.deepcopy(self._facts[i].truth)

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
            ``iq`` is read-only (copy it to change it) and checked here: the
            capture comes from :meth:`~sdr_isac.capture.Capture.checked_once`,
            so the sensing's check of it reads nothing again.

        Raises
        ------
        RecordingError
            A sample is NaN or infinite; the recording is closed.
        InputError
            ``i`` is out of range.
        """
        i = self._index(i)
        start, count = self._segments[i]
        iq = decode(self._mapped()[start:start + count], self._dt)
        # read-only (a view of the read-only file map already is): nothing writes these samples, so the capture
        # checks them once here and its later checks (the sensing's, a writer's) take this one's result
        iq.flags.writeable = False
        info = self.capture_info(i)
        metadata = self._facts[i].metadata if self._facts is not None else {}
        try:
            capture = Capture(iq=iq, sample_rate_hz=self.sample_rate_hz, center_freq_hz=self._frequencies[i],
                              t0_s=info["t0_s"], node_id=info["node_id"], seq=info["seq"], frame=self.frame,
                              frame_offset=info["frame_offset"], metadata=copy.deepcopy(metadata)).checked_once()
        except InputError as err:        # open() validated every field: this is a bug, named as such
            raise RecordingError(f"{self.meta_path}: capture {i} (sample_start {start}): {err}; report this as "
                                 "a bug in sdr_isac.recording (open() should have refused it)") from err
        try:
            capture.check_samples()
        except NonFiniteSampleError as err:
            # it raised, so there is one: read again (a refused capture only) to name it by its file sample
            ch, k = cast(tuple[int, int], first_nonfinite(iq))
            raise RecordingError(f"{self.data_path}: capture {i}: samples[{ch}, {k}] (file sample {start + k}) = "
                                 f"{iq[ch, k]}: allowed finite I/Q values; the data is corrupt, re-record it or "
                                 "skip this capture") from err
        return capture

    def capture_info(self, i: int) -> dict[str, Any]:
        """Facts of capture ``i`` without reading its samples.

        Returns
        -------
        dict
            ``sample_start``, ``sample_count`` (samples per channel in the
            data file), ``seq``, ``t0_s`` (s), ``node_id``, ``frame_offset``
            (samples), ``center_freq_hz`` (Hz, of the capture segment that
            holds the capture); for foreign files ``seq = i``, ``t0_s = sample_start /
            sample_rate_hz``, ``node_id`` from ``isac:node`` or ``"node0"``,
            ``frame_offset = 0``; where its capture segments carry ``core:datetime``
            (or ``core:global_index``), ``t0_s`` follows them, so a pause between
            segments stays one.

        Raises
        ------
        InputError
            ``i`` is out of range.
        """
        i = self._index(i)
        start, count = self._segments[i]
        fact = self._facts[i] if self._facts is not None else None
        freq = self._frequencies[i]
        if fact is None:
            return {"sample_start": start, "sample_count": count, "seq": i, "t0_s": self._foreign_time_s(start),
                    "node_id": self._node_id(), "frame_offset": 0, "center_freq_hz": freq}
        return {"sample_start": start, "sample_count": count, "seq": fact.seq,
                "t0_s": start / self.sample_rate_hz if fact.t0_s is None else fact.t0_s,
                "node_id": self._node_id() if fact.node_id is None else fact.node_id,
                "frame_offset": fact.frame_offset, "center_freq_hz": freq}

    def _foreign_time_s(self, start: int) -> float:
        """Time of file sample ``start`` of a foreign recording, s after sample 0: across a capture segment with
        ``core:datetime`` (or else ``core:global_index``) the segment's own time, so that a gap in time between
        segments (a recorder that paused) stays one; samples without either follow on from the segment before."""
        segments, fs = self._meta.segments, self.sample_rate_hz
        k = bisect.bisect_right(self._meta.segment_starts, start) - 1
        if k < 0:
            return start / fs
        if self._segment_times is None:
            self._segment_times = _segment_times(segments, fs)
        return self._segment_times[k] + (start - segments[k].sample_start) / fs

    def _node_id(self) -> str:
        node_id = self.node.get("id", "node0")            # a string: checked by open()
        return str(node_id)

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


def open_recording(path: str | Path, frame: FrameConfig | None = None, *, samples_per_capture: int | None = None,
                   verify_checksum: bool = True, allow_outside: bool = False, member: str | None = None) -> Recording:
    """Open a recording (a ``.sigmf-meta``/``.sigmf-data`` pair or an archive); the same as :meth:`Recording.open`."""
    return Recording.open(path, frame, samples_per_capture=samples_per_capture, verify_checksum=verify_checksum,
                          allow_outside=allow_outside, member=member)


# ---- helpers of Recording.open ------------------------------------------------
def _data_file(meta_path: Path, data_path: Path, meta: Metadata, allow_outside: bool) -> Path:
    """The data file: ``core:dataset`` if given, else ``<base>.sigmf-data``, inside the meta's folder."""
    if meta.dataset is not None:
        field = f"core:dataset = {meta.dataset!r}"
        data_path = meta_path.parent / meta.dataset
    else:
        field = f"the data file {data_path.name}"
    try:
        folder = meta_path.parent.resolve()
        resolved = data_path.resolve()
    except (OSError, RuntimeError) as err:               # RuntimeError: a loop of symbolic links
        raise RecordingError(f"{meta_path}: {field} cannot be resolved ({err}); allowed a data file beside the "
                             "metadata; fix the links or core:dataset") from err
    if not allow_outside and (Path(meta.dataset or "").is_absolute() or not resolved.is_relative_to(folder)):
        raise RecordingError(f"{meta_path}: {field} resolves to {resolved}, outside the recording's folder "
                             f"{folder}: allowed a data file inside that folder; put the data file beside the "
                             "metadata, or pass allow_outside=True (sdr-isac info --allow-outside) if you trust "
                             "this recording")
    if resolved == meta_path.resolve():
        raise RecordingError(f"{meta_path}: {field} is the metadata file itself: allowed the file of samples; "
                             "fix core:dataset")
    if not data_path.is_file():
        what = "is not a regular file" if data_path.exists() else "not found"
        raise RecordingError(f"{data_path}: data file {what} (needed by {meta_path.name}, {field}); allowed a "
                             "file of samples beside the metadata; copy it there or fix core:dataset")
    return data_path


def _file_size(data_path: Path) -> int:
    try:
        return data_path.stat().st_size
    except OSError as err:
        raise RecordingError(f"{data_path}: cannot read the data file ({err.strerror}); check it") from err


def _file_mapper(data_path: Path) -> Callable[[np.dtype[Any], int, tuple[int, ...]], NDArray[Any]]:
    def map_data(dtype: np.dtype[Any], offset: int, shape: tuple[int, ...]) -> NDArray[Any]:
        return np.memmap(data_path, dtype=dtype, mode="r", offset=offset, shape=shape)
    return map_data


def _map_data(data_path: Path, meta: Metadata, size: int, sha512: Callable[[], str] | None,
              mapper: Callable[[np.dtype[Any], int, tuple[int, ...]], NDArray[Any]]) -> NDArray[Any]:
    """Map the samples (``size`` bytes, through ``mapper``): shape (n, C) (float types) or (n, C, 2) (integer types).

    ``sha512``: the data's checksum, computed when called; None skips the check.
    """
    dtype = meta.dtype
    payload = size - meta.header_bytes - meta.trailing_bytes
    frame_bytes = dtype.sample_size * meta.num_channels
    if payload < 0 or payload % frame_bytes:
        raise RecordingError(
            f"{data_path}: {payload} bytes of samples: allowed a multiple of {frame_bytes} bytes "
            f"({meta.num_channels} channel(s) x {dtype.sample_size} bytes per {dtype.name} sample; the file's "
            f"{size} bytes less {meta.header_bytes} header and {meta.trailing_bytes} trailing bytes); the data "
            "file is truncated or "
            "core:datatype / core:num_channels / core:header_bytes is wrong; re-record or fix the metadata")
    if sha512 is not None and meta.sha512 is not None:
        _verify_checksum(data_path, meta.sha512, sha512)
    num_samples = payload // frame_bytes
    shape = (num_samples, meta.num_channels) + ((2,) if dtype.is_int else ())
    if num_samples == 0:
        return np.empty(shape, dtype=dtype.disk)
    try:
        return mapper(dtype.disk, meta.header_bytes, shape)
    except (OSError, ValueError) as err:
        raise RecordingError(f"{data_path}: cannot map the data file ({err}); check permissions") from err


def file_sha512(path: Path) -> str:
    """SHA-512 of a whole file, lower-case hex (what SigMF's ``core:sha512`` holds)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha512").hexdigest()


def _file_sha512(data_path: Path) -> str:
    try:
        return file_sha512(data_path)
    except OSError as err:
        raise RecordingError(f"{data_path}: cannot read the data file ({err.strerror}); check it") from err


def _verify_checksum(data_path: Path, expected: str, sha512: Callable[[], str]) -> None:
    actual = sha512()
    if actual != expected:
        raise RecordingError(f"{data_path}: core:sha512 = {expected[:16]}... but the data file hashes to "
                             f"{actual[:16]}...: allowed matching checksums; the data file is corrupt or belongs "
                             "to another recording (open with verify_checksum=False to read it anyway)")


def _frequency(meta_path: Path, meta: Metadata, what: str, start: int, count: int) -> float:
    """Centre frequency of the samples ``start ... start + count - 1``, which must not straddle a retune."""
    if not meta.segments:
        return meta.center_freq_hz
    return meta.segments[check_span(meta_path, what, meta.segments, start, count, meta.segment_starts)].center_freq_hz


def _segment_times(segments: Sequence[SegmentFacts], fs: float) -> list[float]:
    """Each capture segment's first sample in time, s after file sample 0 (see :meth:`Recording._foreign_time_s`):
    from ``core:datetime`` relative to the first segment that has one (whose sample_start / fs it keeps), else
    from ``core:global_index`` likewise, else continuous with the segment before."""
    by_date = next((g for g in segments if g.datetime_s is not None), None)
    by_index = next((g for g in segments if g.global_index is not None), None)
    out: list[float] = []
    for k, seg in enumerate(segments):
        if seg.datetime_s is not None and by_date is not None:
            t = seg.datetime_s + by_date.sample_start / fs
        elif seg.global_index is not None and by_index is not None and by_index.global_index is not None:
            t = (seg.global_index - by_index.global_index + by_index.sample_start) / fs
        elif k:
            t = out[-1] + (seg.sample_start - segments[k - 1].sample_start) / fs
        else:
            t = seg.sample_start / fs
        out.append(t)
    return out


def _foreign_segments(meta_path: Path, meta: Metadata, num_samples: int) -> list[tuple[int, int]]:
    """A foreign file's captures: one per capture segment (a retune or a time discontinuity), else the file."""
    if len(meta.segments) <= 1:
        return [(0, num_samples)] if num_samples else []
    starts = [seg.sample_start for seg in meta.segments]
    last = meta.segments[-1]
    if last.sample_start > num_samples:
        raise RecordingError(f"{meta_path}: captures[{last.index}].core:sample_start = {last.sample_start}: allowed "
                             f"at most {num_samples}, the samples per channel in the data file; the data file is "
                             "truncated or the segments are wrong")
    ends = starts[1:] + [num_samples]
    spans = [(0, starts[0])] if starts[0] > 0 else []           # samples before the first segment
    return spans + [(a, b - a) for a, b in zip(starts, ends) if b > a]


def _annotated_segments(meta_path: Path, data_path: Path, meta: Metadata, num_samples: int) -> list[tuple[int, int]]:
    segments = []
    for k, fact in enumerate(meta.captures):
        start, count = fact.sample_start, fact.sample_count
        if start + count > num_samples:
            raise RecordingError(f"{data_path}: holds {num_samples} samples per channel but capture {k} "
                                 f"(isac:seq {fact.seq}) claims samples {start} ... "
                                 f"{start + count - 1} (core:sample_start + core:sample_count); allowed captures "
                                 "inside the data file; the data file is truncated or belongs to another recording")
        segments.append((start, count))
    end = max(s + c for s, c in segments)
    if meta.is_isac and end != num_samples:
        raise RecordingError(f"{data_path}: holds {num_samples} samples per channel but the captures of "
                             f"{meta_path.name} end at sample {end}: allowed a data file exactly as long as its "
                             "captures; the data and metadata files do not belong together")
    return segments


# ---- the waveform a recording describes ---------------------------------------------
#: Keys of a non-NR OFDM frame a foreign recording may carry in its global object, as ``ofdm:<key>``
#: (the ``[frame]`` keys of the same name, :class:`~sdr_isac.config.FrameConfig`).
OFDM_KEYS = ("subcarriers", "fft_size", "spacing_hz", "cp_samples", "num_symbols", "carrier_hz")


def waveform_description(rec: Recording) -> tuple[FrameConfig | None, str]:
    """The transmitted waveform a recording describes, and where the description was found.

    Parameters
    ----------
    rec : Recording
        An open recording (opened without a ``frame``, so that its own
        ``isac:frame`` is read).

    Returns
    -------
    frame : FrameConfig or None
        ``isac:frame``; else a non-NR OFDM frame from the global keys
        ``ofdm:subcarriers``, ``ofdm:fft_size``, ``ofdm:cp_samples``,
        ``ofdm:num_symbols`` (required), ``ofdm:spacing_hz`` (default
        ``core:sample_rate / ofdm:fft_size``) and ``ofdm:carrier_hz``
        (default the first ``core:frequency``); else None.
    source : str
        ``"isac:frame"``, ``"ofdm:"`` or ``""`` (no description).

    Raises
    ------
    RecordingError
        An ``ofdm:`` key is unknown, missing or out of range (the message
        names the file and the key), or no carrier is known.
    """
    if rec.frame is not None:
        return rec.frame, "isac:frame"
    found = {k[len("ofdm:"):]: v for k, v in rec.global_info.items() if k.startswith("ofdm:")}
    if not found:
        return None, ""
    where = rec.meta_path
    unknown = sorted(set(found) - set(OFDM_KEYS))
    if unknown:
        raise RecordingError(f"{where}: ofdm:{unknown[0]}: allowed the keys "
                             f"{', '.join('ofdm:' + k for k in OFDM_KEYS)}; fix the key")
    missing = [k for k in ("subcarriers", "fft_size", "cp_samples", "num_symbols") if k not in found]
    if missing:
        raise RecordingError(f"{where}: the OFDM description (ofdm: keys) lacks ofdm:{missing[0]}: allowed a "
                             "description with ofdm:subcarriers, ofdm:fft_size, ofdm:cp_samples and "
                             "ofdm:num_symbols; add it, or remove the ofdm: keys and pass a [frame] instead")
    fields = dict(found)
    if isinstance(fields["fft_size"], int) and not isinstance(fields["fft_size"], bool) and fields["fft_size"] > 0:
        fields.setdefault("spacing_hz", rec.sample_rate_hz / fields["fft_size"])
    if "carrier_hz" not in fields:
        if rec.center_freq_hz <= 0.0:
            raise RecordingError(f"{where}: the OFDM description has no ofdm:carrier_hz and core:frequency is "
                                 "absent: allowed a carrier from either; add core:frequency to the capture segment")
        fields["carrier_hz"] = rec.center_freq_hz
    try:
        return from_dict(FrameConfig, fields), "ofdm:"
    except ConfigError as err:
        raise RecordingError(f"{where}: the OFDM description (ofdm: keys): {err}") from err
