"""Write captures to a SigMF recording, atomically.

See :mod:`sdr_isac.recording.sigmf_io` for the on-disk layout.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import numpy as np

from sdr_isac.capture import HOST_UTC, Capture, first_nonfinite
from sdr_isac.config import FrameConfig
from sdr_isac.errors import InputError, NonFiniteSampleError, RecordingError
from sdr_isac.recording._atomic import finish_temp, link_or_copy, open_temp, remove_stale_temps, write_file
from sdr_isac.recording._format import (
    EXTENSION_VERSION,
    ISAC,
    SCHEMA_VERSION,
    TRUTH,
    check_int,
    datatype_info,
    encode,
    file_names,
    sigmf,
    to_json,
)
from sdr_isac.recording._metadata import (
    MAX_CHANNELS,
    MAX_HZ,
    check_calibration_reference,
    check_capture_annotation,
    is_sigmf_datetime,
    validate_metadata,
)

__all__ = ["RecordingWriter", "write_captures"]


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _hw_text(radio: dict[str, Any] | None) -> str:
    """``core:hw``: the radio's ``hw`` entry, else its kind and URI."""
    if not radio:
        return ""
    if isinstance(radio.get("hw"), str):
        return str(radio["hw"])
    return " ".join(str(radio[k]) for k in ("kind", "uri") if radio.get(k))


def _json_object(value: Any, name: str) -> dict[str, Any] | None:
    """``value`` (a dict or a dataclass) as a JSON object, or None."""
    if value is None:
        return None
    out = to_json(value, name)
    if not isinstance(out, dict):
        raise InputError(f"{name} is a {type(value).__name__}: allowed a dict (or a config dataclass) or None; "
                         f"describe the {name} as a dict")
    return out


class RecordingWriter:
    """Write :class:`~sdr_isac.capture.Capture` objects to a SigMF recording.

    Each appended capture becomes one block of consecutive samples, one SigMF
    capture segment (a time discontinuity) and one annotation carrying its
    ``isac:`` facts and ``truth:``.  Samples of several channels are
    interleaved per sample, as SigMF specifies for ``core:num_channels > 1``
    (``s0c0 s0c1 ... s1c0 s1c1 ...``).

    Writing is atomic: samples go to a hidden temporary file next to the
    target, and :meth:`close` commits the recording with one rename of a
    metadata file (see there): at every instant the target is the complete
    old recording (or none) or the complete new one, even if the process is
    killed.  An exception inside ``with`` removes the temporary files (see
    :meth:`abort`); a killed process can leave a hidden
    ``.<name>.sigmf-data.<hex>.part`` file, which the next writer of the same
    target removes.

    Parameters
    ----------
    path : str or Path
        Base name of the recording, with or without ``.sigmf-meta`` or
        ``.sigmf-data``; both files share it.
    sample_rate_hz : float
        Sample rate in Hz (> 0); every capture must have it.
    center_freq_hz : float
        RF centre frequency in Hz (>= 0); every capture must have it, unless
        ``allow_retune``.
    num_channels : int
        Receive channels (>= 1); every capture must have that many rows.
    datatype : str
        ``cf32_le`` (default, exact) or any complex SigMF datatype of
        :data:`~sdr_isac.recording.DATATYPES` (``cf64_le``, ``ci16_le``,
        ``ci8``, ``cu8``, ``cf32_be``, ...).  Signed integer types store full
        scale +-1.0 as +-2**(bits-1) (clipped to the largest integer);
        unsigned ones as ``(2**bits - 1) / 2 * (1 +- 1.0)`` (cu8: 0 ... 255,
        0.0 as 127.5 rounded); samples beyond +-1.0 raise
        :class:`RecordingError` rather than clip.
    frame : FrameConfig or None
        The transmitted frame, stored as ``isac:frame``; None takes the first
        capture's ``frame``, if any.
    node, radio : dict or None
        Descriptions of the node and its radio (JSON values or config
        dataclasses), stored as ``isac:node`` and ``isac:radio``; ``radio``
        also gives ``core:hw`` (its ``hw`` entry, else ``kind`` and ``uri``).
    description : str
        ``core:description``.
    calibration : dict or None
        The calibration the captures were corrected with, ``{"id": ..., "sha256": ...}``
        (:attr:`sdr_isac.radio.calibration.Calibration.reference`), stored as ``isac:calibration``.
    allow_retune : bool
        Accept captures of another centre frequency than ``center_freq_hz``:
        each capture is its own capture segment with its own
        ``core:frequency`` (a retune), read back as such.  False (default)
        refuses them.
    overwrite : bool
        Replace an existing recording at ``path`` on a successful
        :meth:`close` (a failed write leaves it untouched).  False (default)
        raises :class:`RecordingError` if either file exists.

    Raises
    ------
    InputError
        A parameter is out of range or the datatype is not supported.
    RecordingError
        The directory does not exist or is not writable, or the recording
        exists and ``overwrite`` is False.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from sdr_isac import Capture
    >>> from sdr_isac.recording import RecordingWriter, Recording
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run1"
    >>> with RecordingWriter(path, sample_rate_hz=1e6, center_freq_hz=2.4e9, num_channels=1) as w:
    ...     _ = w.append(Capture(np.ones((1, 8), np.complex64), 1e6, 2.4e9, seq=7),
    ...                  truth={"targets": [{"id": "t0", "range_m": 50.0}]})
    >>> with Recording.open(path) as rec:
    ...     rec.num_captures, rec.capture(0).seq, rec.truth(0)["targets"][0]["range_m"]
    (1, 7, 50.0)
    >>> import shutil; shutil.rmtree(path.parent)
    """

    def __init__(self, path: str | Path, *, sample_rate_hz: float, center_freq_hz: float, num_channels: int,
                 datatype: str = "cf32_le", frame: FrameConfig | None = None,
                 node: dict[str, Any] | None = None, radio: dict[str, Any] | None = None,
                 description: str = "", overwrite: bool = False, allow_retune: bool = False,
                 calibration: dict[str, Any] | None = None) -> None:
        self.meta_path, self.data_path = file_names(path)
        self.sample_rate_hz = float(sample_rate_hz)
        self.center_freq_hz = float(center_freq_hz)
        if not (math.isfinite(self.sample_rate_hz) and 0 < self.sample_rate_hz <= MAX_HZ):
            raise InputError(f"sample_rate_hz = {sample_rate_hz!r} Hz: allowed a finite number > 0 Hz and "
                             f"<= {MAX_HZ:g} Hz; give the capture's sample rate")
        if not (math.isfinite(self.center_freq_hz) and 0 <= self.center_freq_hz <= MAX_HZ):
            raise InputError(f"center_freq_hz = {center_freq_hz!r} Hz: allowed a finite number >= 0 Hz and "
                             f"<= {MAX_HZ:g} Hz; give the RF centre frequency")
        self.num_channels = check_int("num_channels", num_channels, 1)
        if self.num_channels > MAX_CHANNELS:
            raise InputError(f"num_channels = {num_channels}: allowed 1 ... {MAX_CHANNELS}; record fewer channels "
                             "per recording")
        self._dt = datatype_info(datatype, where="datatype: ", error=InputError)
        self.datatype = self._dt.name
        if frame is not None and not isinstance(frame, FrameConfig):
            raise InputError(f"frame is a {type(frame).__name__}: allowed a FrameConfig or None; "
                             "build one with sdr_isac.config.FrameConfig or config.from_dict")
        self.frame = frame
        self._node = _json_object(node, "node")
        self._radio = _json_object(radio, "radio")
        self._calibration = _json_object(calibration, "calibration")
        check_calibration_reference(self.meta_path, self._calibration)     # refused now, not at close()
        if self._node is not None and not isinstance(self._node.get("id", ""), str):
            raise InputError(f"node['id'] = {self._node['id']!r}: allowed a string; give the node id as text")
        self.description = str(description)
        self._overwrite = bool(overwrite)
        self._allow_retune = bool(allow_retune)
        self._captures: list[dict[str, Any]] = []
        self._annotations: list[dict[str, Any]] = []
        self._num_samples = 0
        self._hash = hashlib.sha512()
        self._closed = False
        if not overwrite:
            for p in (self.meta_path, self.data_path):
                if p.exists():
                    raise RecordingError(f"{p}: the recording already exists; pass overwrite=True "
                                         "or choose another name")
        remove_stale_temps((self.meta_path, self.data_path), keep=_referenced_temp(self.meta_path))
        try:
            self._tmp_data, self._fh = open_temp(self.data_path)
        except OSError as err:
            raise RecordingError(f"{self.data_path.parent}: cannot write the recording there ({err.strerror}); "
                                 "create the directory or choose a writable one") from err

    # ---- public ------------------------------------------------------------
    @property
    def num_captures(self) -> int:
        """Captures appended so far."""
        return len(self._annotations)

    @property
    def num_samples(self) -> int:
        """Samples per channel written so far."""
        return self._num_samples

    @property
    def closed(self) -> bool:
        """True after :meth:`close` or :meth:`abort`."""
        return self._closed

    def append(self, capture: Capture, truth: dict[str, Any] | None = None) -> int:
        """Write one capture as the next block of samples.

        Parameters
        ----------
        capture : Capture
            ``iq`` shape (num_channels, n), complex64, with the recording's
            sample rate, centre frequency and channel count, finite samples,
            and JSON-able ``metadata``.
        truth : dict or None
            Ground truth of this capture, stored under ``truth:<key>``, e.g.
            ``{"targets": [{"id": "t0", "range_m": 50.0, "velocity_mps": 3.0}]}``.

        Returns
        -------
        int
            Index of the capture in the recording.

        Raises
        ------
        RecordingError
            The writer is closed; the capture's rate, frequency, channel
            count or frame differs from the recording's; its samples are not
            finite or exceed full scale for an integer datatype; its metadata
            or truth is not JSON-able; or the write fails (disk full).
        """
        if self._closed:
            raise RecordingError(f"{self.meta_path}: append after close; open a new RecordingWriter")
        if not isinstance(capture, Capture):
            raise InputError(f"capture is a {type(capture).__name__}: allowed sdr_isac.Capture; wrap the samples "
                             "in a Capture")
        self._check_capture(capture)
        annotation = self._annotation(capture, truth)
        raw = encode(capture.iq, self._dt).reshape(-1).view(np.uint8).data      # bytes in SigMF order
        try:
            self._fh.write(raw)
        except OSError as err:
            raise RecordingError(f"{self._tmp_data}: writing capture seq {capture.seq} failed ({err.strerror}); "
                                 "free disk space or write elsewhere") from err
        self._hash.update(raw)
        frequency = capture.center_freq_hz if self._allow_retune else self.center_freq_hz
        segment: dict[str, Any] = {"core:sample_start": self._num_samples, "core:frequency": float(frequency)}
        when = capture.metadata.get(HOST_UTC)
        if is_sigmf_datetime(when):      # the host clock's time of the capture's first sample (see Capture)
            segment["core:datetime"] = when
        self._captures.append(segment)
        self._annotations.append(annotation)
        self._num_samples += capture.num_samples
        return len(self._annotations) - 1

    def _check_capture(self, capture: Capture) -> None:
        where = f"{self.meta_path}: capture seq {capture.seq}"
        checks = [("sample_rate_hz", self.sample_rate_hz, capture.sample_rate_hz, " Hz"),
                  ("num_channels", self.num_channels, capture.num_channels, "")]
        if not self._allow_retune:
            checks.insert(1, ("center_freq_hz", self.center_freq_hz, capture.center_freq_hz, " Hz"))
        elif not (math.isfinite(capture.center_freq_hz) and 0 <= capture.center_freq_hz <= MAX_HZ):
            raise RecordingError(f"{where}: center_freq_hz = {capture.center_freq_hz!r} Hz: allowed a finite number "
                                 f">= 0 Hz and <= {MAX_HZ:g} Hz; fix the capture's centre frequency")
        for name, mine, theirs, unit in checks:
            if not _same(mine, theirs):
                raise RecordingError(f"{where}: {name} = {theirs:g}{unit} but the recording has {name} = "
                                     f"{mine:g}{unit}; allowed only the recording's value; resample or retune, "
                                     "or start another recording (or pass allow_retune=True to record a retune "
                                     "as a new capture segment)")
        if capture.frame is not None:
            if self.frame is None:
                self.frame = capture.frame
            elif capture.frame != self.frame:
                raise RecordingError(f"{where}: frame = {capture.frame} differs from the recording's frame = "
                                     f"{self.frame}; allowed one frame per recording; start another recording")
        if self._dt.is_int and capture.num_samples:
            # both checks from the smallest and largest value, two reductions without a temporary (a NaN
            # propagates through them, an infinity is an extreme): 0.10 ms for 4 MiB where the finiteness pass
            # and a peak of |I|, |Q| took 0.22 ms
            parts = capture.iq.reshape(-1).view(np.float32)           # C-contiguous complex64: no copy
            low, high = float(parts.min()), float(parts.max())
            if not (math.isfinite(low) and math.isfinite(high)):
                bad = cast(tuple[int, int], first_nonfinite(capture.iq))
                raise RecordingError(f"{where}: samples[{bad[0]}, {bad[1]}] = {capture.iq[bad]}: allowed finite "
                                     "samples; remove NaN or infinite values before recording")
            peak = max(-low, high)
            if peak > 1.0:
                raise RecordingError(f"{where}: |I| or |Q| reaches {peak:.6g}: allowed <= 1.0 (full scale) for "
                                     f"{self.datatype}; scale the samples or use datatype='cf32_le' (sdr-isac record "
                                     "--datatype cf32_le)")
            return
        try:
            # one pass; none where the capture checks once (Capture.checked_once) and was checked (a host's)
            capture.check_samples()
        except NonFiniteSampleError as err:
            # it raised, so there is one: read again (a refused capture only) to name it as the recorder does
            bad = cast(tuple[int, int], first_nonfinite(capture.iq))
            raise RecordingError(f"{where}: samples[{bad[0]}, {bad[1]}] = {capture.iq[bad]}: allowed finite "
                                 "samples; remove NaN or infinite values before recording") from err

    def _annotation(self, capture: Capture, truth: dict[str, Any] | None) -> dict[str, Any]:
        where = f"capture seq {capture.seq}"
        annotation: dict[str, Any] = {
            "core:sample_start": self._num_samples,
            "core:sample_count": capture.num_samples,
            "core:label": f"seq {capture.seq}",
            ISAC + "seq": to_json(capture.seq, f"{where}: seq"),
            ISAC + "t0_s": capture.t0_s,
            ISAC + "node_id": str(capture.node_id),
            ISAC + "frame_offset": to_json(capture.frame_offset, f"{where}: frame_offset"),
            ISAC + "metadata": to_json(dict(capture.metadata), f"{where}: metadata"),
        }
        if truth is not None:
            if not isinstance(truth, dict):
                raise InputError(f"truth is a {type(truth).__name__}: allowed a dict such as "
                                 "{'targets': [...]} or None")
            for key, value in truth.items():
                name = str(key).removeprefix(TRUTH)
                annotation[TRUTH + name] = to_json(value, f"{where}: truth[{key!r}]")
        facts = check_capture_annotation(self.meta_path, len(self._annotations), annotation)   # as the reader will
        annotation.update({ISAC + "seq": facts.seq, ISAC + "frame_offset": facts.frame_offset})
        return annotation

    def _global(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "core:datatype": self.datatype,
            "core:sample_rate": self.sample_rate_hz,
            "core:num_channels": self.num_channels,
            "core:description": self.description,
            "core:recorder": "sdr_isac",
            "core:sha512": self._hash.hexdigest(),
            "core:extensions": [
                {"name": "isac", "version": EXTENSION_VERSION, "optional": True},
                {"name": "truth", "version": EXTENSION_VERSION, "optional": True},
            ],
            ISAC + "schema": SCHEMA_VERSION,
        }
        hw = _hw_text(self._radio)
        if hw:
            info["core:hw"] = hw
        if self.frame is not None:
            info[ISAC + "frame"] = to_json(self.frame, "frame")
        if self._node is not None:
            info[ISAC + "node"] = self._node
        if self._radio is not None:
            info[ISAC + "radio"] = self._radio
        if self._calibration is not None:
            info[ISAC + "calibration"] = self._calibration
        return info

    def _metadata_text(self, dataset: str | None) -> str:
        sm = sigmf()
        info = self._global()
        if dataset is not None:
            info["core:dataset"] = dataset
        meta = sm.SigMFFile(global_info=info)
        for segment in self._captures:
            meta.add_capture(segment["core:sample_start"], metadata=dict(segment))
        for annotation in self._annotations:
            meta.add_annotation(annotation["core:sample_start"], annotation["core:sample_count"],
                                metadata=dict(annotation))
        text = str(meta.dumps(pretty=True)) + "\n"
        try:                             # what the reader will check, so that every recording written opens
            validate_metadata(json.loads(text), self.meta_path)
        except RecordingError as err:    # a bug here, not a user error
            raise RecordingError(f"{err}; the metadata sdr_isac wrote fails its own validation: report this as a "
                                 "bug in sdr_isac.recording") from err
        return text

    def close(self) -> None:
        """Finalise the recording atomically; closing twice does nothing.

        The data and metadata files cannot be renamed together, so one
        rename of a metadata file is the commit, and the metadata always
        names a data file that is complete and stays put:

        1. the samples are in a hidden temporary file ``T``
           (``.<name>.sigmf-data.<hex>.part``), flushed to the disk;
        2. **commit**: a metadata file naming ``T`` in ``core:dataset``
           replaces ``<name>.sigmf-meta`` (one rename).  Before it, readers
           see the old recording (or none); from it on, the new one, read
           from ``T``;
        3. a hard link to ``T`` (a copy where the file system has none)
           replaces ``<name>.sigmf-data`` (one rename); the old data is no
           longer named by any metadata;
        4. the final metadata, without ``core:dataset``, replaces the
           committed one (one rename): a conforming SigMF pair;
        5. ``T`` is removed, and so are ``.part`` files that killed writers
           left for this target.

        Renaming the data file first and the metadata second (the obvious
        order) has a moment where the old metadata describes the new data
        (other sample counts, checksum, truth), and a kill then loses the
        old recording; removing the old metadata first loses it as well.
        Here a kill before step 2 leaves the old recording intact (plus a
        ``.part`` file that the next write removes), and a kill after it
        leaves the complete new recording, read through ``core:dataset``
        (the next write keeps that ``T`` until its own commit).  Both
        metadata files carry ``core:sha512`` of the samples, which the
        reader verifies.

        Raises
        ------
        RecordingError
            A file cannot be written or renamed.  Before the commit, the
            temporary files are removed and the target is as it was; after
            it, the message says the new recording is complete.
        """
        if self._closed:
            return
        self._closed = True
        committed = False
        try:
            finish_temp(self._fh)
            commit_text = self._metadata_text(dataset=self._tmp_data.name).encode("utf-8")
            final_text = self._metadata_text(dataset=None).encode("utf-8")
            if not self._overwrite and (self.meta_path.exists() or self.data_path.exists()):
                raise FileExistsError(17, "the recording appeared while writing")
            write_file(self.meta_path, commit_text)
            committed = True
            link_or_copy(self._tmp_data, self.data_path)
            write_file(self.meta_path, final_text)
            self._tmp_data.unlink()
        except OSError as err:
            if committed:
                raise RecordingError(f"{self.meta_path}: the recording is complete but still reads its samples "
                                     f"from {self._tmp_data.name} (core:dataset): renaming failed ({err}); it opens "
                                     "as it is; check the disk and the directory's permissions") from err
            raise RecordingError(f"{self.meta_path}: finishing the recording failed ({err}); "
                                 "check the disk and the directory's permissions") from err
        finally:
            self._fh.close()
            # any failure, an interrupt included: leave no temporary file, unless the metadata on disk reads it
            # (an interrupt that came right after the commit's rename)
            if not committed and self._tmp_data.name not in _referenced_temp(self.meta_path):
                self._tmp_data.unlink(missing_ok=True)
        remove_stale_temps((self.meta_path, self.data_path))

    def abort(self) -> None:
        """Stop writing and remove the temporary files; nothing appears at the target."""
        if self._closed:
            return
        self._closed = True
        self._fh.close()
        self._tmp_data.unlink(missing_ok=True)

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"RecordingWriter({str(self.meta_path)!r}, {self.num_captures} captures, "
                f"{self.num_samples} samples, {self.datatype}, {state})")


def _referenced_temp(meta_path: Path) -> frozenset[str]:
    """The ``core:dataset`` of the metadata now at ``meta_path`` (a commit that a killed writer left), if any."""
    try:
        dataset = json.loads(meta_path.read_text(encoding="utf-8"))["global"]["core:dataset"]
    except (OSError, ValueError, TypeError, KeyError, RecursionError):   # no file, no field, not JSON: none
        return frozenset()
    return frozenset({dataset}) if isinstance(dataset, str) else frozenset()


def write_captures(path: str | Path, captures: Iterable[Capture],
                   truths: Sequence[dict[str, Any] | None] | None = None, **kw: Any) -> Path:
    """Write captures to a new recording in one call.

    Parameters
    ----------
    path : str or Path
        Base name, with or without a SigMF suffix.
    captures : iterable of Capture
        The captures, in order.
    truths : sequence of dict or None, optional
        One truth dict (or None) per capture.
    **kw
        Passed to :class:`RecordingWriter`; ``sample_rate_hz``,
        ``center_freq_hz``, ``num_channels`` and ``frame`` default to the first
        capture's.

    Returns
    -------
    Path
        The ``.sigmf-meta`` file written.

    Raises
    ------
    InputError
        No captures and no ``sample_rate_hz``; or ``truths`` has a different
        length from ``captures``.
    RecordingError
        As :class:`RecordingWriter` and :meth:`RecordingWriter.append`.
    """
    items = list(captures)
    if truths is not None and len(truths) != len(items):
        raise InputError(f"truths has {len(truths)} entries for {len(items)} captures: allowed one per capture "
                         "(None where there is no truth); fix the list")
    if items:
        first = items[0]
        kw.setdefault("sample_rate_hz", first.sample_rate_hz)
        kw.setdefault("center_freq_hz", first.center_freq_hz)
        kw.setdefault("num_channels", first.num_channels)
        kw.setdefault("frame", first.frame)
    elif "sample_rate_hz" not in kw:
        raise InputError("captures is empty and sample_rate_hz is not given: allowed at least one capture, or "
                         "sample_rate_hz, center_freq_hz and num_channels; pass them to write an empty recording")
    with RecordingWriter(path, **kw) as writer:
        for i, capture in enumerate(items):
            writer.append(capture, None if truths is None else truths[i])
    return writer.meta_path
