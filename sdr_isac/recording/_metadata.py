"""One validation of every field of a recording's metadata, done when the recording is opened.

Private to :mod:`sdr_isac.recording`.  :func:`parse_metadata` either raises :class:`RecordingError` naming
the file, the field (``core:sample_rate``, ``captures[0].core:frequency``, ``annotations[2].isac:seq``),
its value, what is allowed and how to fix it, or returns a :class:`Metadata` whose every value has the type
and range the reader relies on, so that nothing later converts, coerces or fails on a metadata value.

Types are taken exactly as the schemas say: an integer is a JSON integer (``2.0`` counts, as in JSON
Schema; ``2.5``, ``true`` and ``"12"`` do not), a number is an integer or a float (never a bool or a
string), NaN and infinities are refused anywhere in the file (JSON has neither; Python's parser accepts
``NaN`` and ``Infinity`` tokens and turns ``1e999`` into infinity).

The ``isac:`` namespace (schema 1)
----------------------------------
global
    ``isac:schema`` integer 1; ``isac:frame`` object of FrameConfig fields or null (no frame);
    ``isac:node``, ``isac:radio`` objects or null ({}); ``isac:node`` ``id``, if there, a string;
    ``isac:calibration`` null or the calibration the captures were corrected with, ``{"id": string,
    "sha256": 64 hexadecimal digits}`` (:mod:`sdr_isac.radio.calibration`).
annotations
    An annotation with any ``isac:`` or ``truth:`` key is a capture.  ``isac:seq`` integer 0 ... 2**63-1
    (required), ``core:sample_count`` (required), ``isac:t0_s`` number of s, ``|t0_s| <= 1e12`` (default
    ``sample_start / sample_rate``), ``isac:node_id`` string (default ``isac:node`` ``id``),
    ``isac:frame_offset`` integer 0 ... 2**63-1 samples (default 0), ``isac:metadata`` object (default {}),
    ``truth:<key>`` any JSON.
Unknown ``isac:`` keys are refused (with "did you mean ...?"), so that a misspelt key is not ignored.
"""

from __future__ import annotations

import bisect
import datetime
import difflib
import importlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdr_isac.config import FrameConfig, from_dict
from sdr_isac.errors import ConfigError, RecordingError
from sdr_isac.recording._format import (
    DATA_SUFFIX,
    ISAC,
    META_SUFFIX,
    SCHEMA_VERSION,
    TRUTH,
    Datatype,
    datatype_info,
    drop_none,
    sigmf,
)

#: Largest sample index, count or sequence number (SigMF's limit, a signed 64-bit integer).
MAX_INT = 2**63 - 1
#: Largest ``core:num_channels`` sdr_isac opens.
MAX_CHANNELS = 65536
#: Largest ``core:sample_rate`` and ``|core:frequency|``, Hz (SigMF's limit).
MAX_HZ = 1e12
#: Largest ``|isac:t0_s|``, s (about 31,700 years).
MAX_T0_S = 1e12

GLOBAL_ISAC = ("isac:schema", "isac:frame", "isac:node", "isac:radio", "isac:calibration")
ANNOTATION_ISAC = ("isac:seq", "isac:t0_s", "isac:node_id", "isac:frame_offset", "isac:metadata")
_SHA512 = re.compile(r"[0-9a-fA-F]{128}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_ABSENT = object()


@dataclass(frozen=True)
class CaptureFacts:
    """The validated fields of one capture annotation (see the module docstring for defaults)."""

    annotation: int             # index in the metadata's "annotations"
    sample_start: int
    sample_count: int
    seq: int
    t0_s: float | None
    node_id: str | None
    frame_offset: int
    metadata: dict[str, Any]
    truth: dict[str, Any]


@dataclass(frozen=True)
class SegmentFacts:
    """One validated capture segment: where it starts and the centre frequency of its samples.

    ``center_freq_hz`` is the segment's ``core:frequency``, else the first one the file declares, else 0.0.
    """

    index: int                  # index in the metadata's "captures"
    sample_start: int
    center_freq_hz: float
    #: ``core:datetime`` as seconds after the file's first one (None: the segment has none)
    datetime_s: float | None = None
    #: ``core:global_index``: the index of its first sample in the recorder's own sample count (None: none)
    global_index: int | None = None


@dataclass(frozen=True)
class Metadata:
    """A recording's metadata after validation: every value typed and in range.

    ``raw`` is the parsed JSON as it is in the file.
    """

    raw: dict[str, Any]
    dtype: Datatype
    sample_rate_hz: float
    center_freq_hz: float
    num_channels: int
    header_bytes: int
    trailing_bytes: int
    sha512: str | None
    dataset: str | None
    frame: FrameConfig | None
    node: dict[str, Any]
    radio: dict[str, Any]
    description: str
    is_isac: bool
    captures: tuple[CaptureFacts, ...]
    segments: tuple[SegmentFacts, ...]
    segment_starts: tuple[int, ...]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Checker:
    """Typed reads of metadata values; every error names ``meta_path`` and the field."""

    def __init__(self, meta_path: Path) -> None:
        self.meta_path = meta_path

    def error(self, field: str, value: Any, allowed: str, fix: str, unit: str = "") -> RecordingError:
        shown = _show(value) + (unit if isinstance(value, (int, float)) and not isinstance(value, bool) else "")
        return RecordingError(f"{self.meta_path}: {field} = {shown}: allowed {allowed}; {fix}")

    def integer(self, field: str, value: Any, low: int, high: int, fix: str, unit: str = "") -> int:
        """A JSON integer (``2.0`` counts; a bool, ``2.5`` or ``"2"`` does not) in ``low ... high``."""
        allowed = f"an integer {low} ... {high}{unit}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(field, value, allowed, fix, unit)
        if isinstance(value, float):
            if not value.is_integer():
                raise self.error(field, value, allowed, fix, unit)
            value = int(value)
        if not low <= value <= high:
            raise self.error(field, value, allowed, fix, unit)
        return int(value)

    def number(self, field: str, value: Any, low: float, high: float, fix: str, *, unit: str,
               low_open: bool = False) -> float:
        """A finite JSON number (int or float, never a bool or a string) in ``[low, high]`` (or ``(low, high]``)."""
        allowed = f"a number {'>' if low_open else '>='} {low:g}{unit} and <= {high:g}{unit}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(field, value, allowed, fix, unit)
        try:
            number = float(value)
        except OverflowError as err:                         # an integer beyond the float range
            raise self.error(field, value, allowed, fix, unit) from err
        inside = (low < number if low_open else low <= number) and number <= high
        if not (math.isfinite(number) and inside):
            raise self.error(field, value, allowed, fix, unit)
        return number

    def text(self, field: str, value: Any, fix: str) -> str:
        if not isinstance(value, str):
            raise self.error(field, value, "a string", fix)
        return value

    def obj(self, field: str, value: Any, fix: str, *, null: bool = False) -> dict[str, Any] | None:
        """A JSON object; ``null`` too if ``null`` is True (returned as None)."""
        if value is None and null:
            return None
        if not isinstance(value, dict):
            raise self.error(field, value, "a JSON object" + (" or null" if null else ""), fix)
        return value

    def known_keys(self, where: str, obj: dict[str, Any], known: tuple[str, ...]) -> None:
        """Refuse ``isac:`` keys of ``obj`` that are not in ``known``."""
        for key in obj:
            if key.startswith(ISAC) and key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise RecordingError(f"{self.meta_path}: {where}{key} is not a key of the isac: namespace "
                                     f"(schema {SCHEMA_VERSION}): allowed {', '.join(known) or 'none here'}; "
                                     f"{hint}fix or remove the key")


# ---- the file ----------------------------------------------------------------------------
def _load_json(meta_path: Path) -> Any:
    if not meta_path.is_file():
        raise RecordingError(_missing_metadata(meta_path))
    try:
        raw = meta_path.read_bytes()
    except OSError as err:
        raise RecordingError(f"{meta_path}: cannot read the metadata ({err.strerror}); check permissions") from err
    return load_json_bytes(raw, meta_path, "metadata")


def _missing_metadata(meta_path: Path) -> str:
    """Why ``meta_path`` is not there, in the user's terms: a file that is not SigMF, a data file without its
    metadata, or nothing at that path."""
    base = meta_path.with_name(meta_path.name[:-len(META_SUFFIX)]) if meta_path.name.endswith(META_SUFFIX) \
        else meta_path
    data = base.with_name(base.name + DATA_SUFFIX)
    if base.is_file():
        return (f"{base} is a file but not a SigMF recording (no {meta_path.name} beside it): allowed a SigMF "
                "recording, a .sigmf-meta JSON file beside its .sigmf-data samples, or a .sigmf archive; write the "
                "metadata for the raw samples (datatype, sample rate, frequency: SigMF's core fields) or convert "
                "the file")
    if data.is_file():
        return (f"{meta_path}: metadata file not found beside the data file {data.name}: allowed a SigMF "
                f"recording with both files; copy {meta_path.name} with it, or write it for those samples")
    return (f"{meta_path}: metadata file not found; allowed the path of a SigMF recording (base name, .sigmf-meta "
            "or .sigmf-data); check the path")


def load_json_bytes(raw: bytes, path: Path, what: str) -> Any:
    """Parse the JSON text ``raw`` of ``path`` (``what``: "metadata", "collection"); errors name the file.

    Raises
    ------
    RecordingError
        Not UTF-8, not JSON, an integer of > 4300 digits or nesting too deep.
    """
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise RecordingError(f"{path}: {what} is not UTF-8 text ({err.reason}); allowed a SigMF JSON "
                             f"file; check that this is the SigMF {what} file") from err
    except json.JSONDecodeError as err:
        raise RecordingError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno} ({err.msg}); "
                             f"allowed SigMF {what} in JSON; fix or re-create the {what} file") from err
    except (ValueError, RecursionError) as err:          # an integer of > 4300 digits; nesting too deep
        raise RecordingError(f"{path}: the {what} cannot be parsed ({err}); allowed SigMF {what} in "
                             f"JSON with integers of at most 19 digits and moderate nesting; fix or re-create "
                             f"the {what} file") from err


def _check_structure(check: _Checker, metadata: Any) -> None:
    """The top level: an object with a ``global`` object and ``captures``/``annotations`` lists of objects."""
    if not isinstance(metadata, dict) or not isinstance(metadata.get("global"), dict):
        raise RecordingError(f"{check.meta_path}: 'global' object missing: allowed SigMF metadata with "
                             "'global', 'captures' and 'annotations'; fix or re-create the metadata file")
    for key in ("captures", "annotations"):
        items = metadata.get(key)
        if not isinstance(items, list):
            raise check.error(key, items, "a list of objects (SigMF requires it, [] when empty)",
                              f"add \"{key}\": [] or fix the list")
        for i, item in enumerate(items):
            check.obj(f"{key}[{i}]", item, "make each entry an object, as SigMF specifies")


def _check_finite(check: _Checker, metadata: dict[str, Any]) -> None:
    """Refuse NaN and infinities anywhere (JSON has neither), naming where the first one is."""
    stack: list[tuple[str, Any]] = [("", metadata)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise check.error(where.lstrip("."), value, "finite numbers (JSON has no NaN or Infinity; 1e999 "
                              "reads as Infinity)", "write a finite number, or null where the field allows it")
        if isinstance(value, dict):
            stack.extend((f"{where}.{k}" if where not in ("", "global") else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))


def _check_schema(check: _Checker, metadata: dict[str, Any]) -> None:
    """The SigMF schema of the sigmf package, on the metadata as it is in the file, and SigMF's ordering rule.

    This is what ``sigmf.validate.validate`` checks, with the validator built once (that function checks
    the schema itself on every call, 30 ms a recording).
    """
    error = _best_match(_validator().iter_errors(metadata))
    if error is not None:
        path = "/".join(str(p) for p in error.absolute_path)
        raise RecordingError(f"{check.meta_path}: invalid SigMF metadata {f'at {path}: ' if path else ''}"
                             f"{error.message}; allowed metadata following the SigMF "
                             f"{sigmf().__specification__} schema; fix that field") from error
    for key in ("captures", "annotations"):
        starts = [item["core:sample_start"] for item in metadata[key]]
        for i in range(1, len(starts)):
            if starts[i] < starts[i - 1]:
                raise check.error(f"{key}[{i}].core:sample_start", starts[i], f">= {key}[{i - 1}].core:sample_start "
                                  f"= {starts[i - 1]} (SigMF orders {key} by sample_start)", f"sort the {key}")


_VALIDATOR: list[Any] = []


def _validator() -> Any:
    """A jsonschema validator of the sigmf package's metadata schema, built on first use."""
    if not _VALIDATOR:
        validators = importlib.import_module("jsonschema.validators")    # sigmf's own validator library
        schema = sigmf().schema.get_schema()
        _VALIDATOR.append(validators.validator_for(schema)(schema))
    return _VALIDATOR[0]


def _best_match(errors: Any) -> Any:
    return importlib.import_module("jsonschema.exceptions").best_match(errors)


# ---- the fields ---------------------------------------------------------------------------
def _global_fields(check: _Checker, glob: dict[str, Any], with_frame: bool) -> dict[str, Any]:
    where = f"{check.meta_path}: "
    check.known_keys("", glob, GLOBAL_ISAC)
    if "core:sample_rate" not in glob:
        raise RecordingError(f"{where}core:sample_rate is missing: allowed a number > 0 Hz in the global "
                             "object; add it (the sample rate the recording was made at)")
    schema = glob.get(ISAC + "schema", SCHEMA_VERSION)
    if isinstance(schema, int) and not isinstance(schema, bool) and schema > SCHEMA_VERSION:
        raise check.error("isac:schema", schema, f"1 ... {SCHEMA_VERSION}", "the file comes from a newer "
                          "sdr_isac; upgrade sdr_isac")
    check.integer("isac:schema", schema, 1, SCHEMA_VERSION, "write the schema version sdr_isac wrote (1)")
    metadata_only = glob.get("core:metadata_only", False)
    if not isinstance(metadata_only, bool):
        raise check.error("core:metadata_only", metadata_only, "true or false", "fix the value")
    if metadata_only:
        raise RecordingError(f"{where}core:metadata_only = true: allowed recordings with samples; "
                             "this file has no data file to read")
    sha512 = glob.get("core:sha512")
    if sha512 is not None and (not isinstance(sha512, str) or not _SHA512.fullmatch(sha512)):
        raise check.error("core:sha512", sha512, "128 hexadecimal digits (the SHA-512 of the data file)",
                          "fix it or remove the key")
    dataset = glob.get("core:dataset")
    if dataset is not None and (not isinstance(dataset, str) or not dataset):
        raise check.error("core:dataset", dataset, "the file name of the data file", "fix it or remove the key "
                          "to use <base>.sigmf-data")
    node = check.obj("isac:node", glob.get(ISAC + "node"), "write the node description as an object",
                     null=True) or {}
    if "id" in node:
        check.text("isac:node.id", node["id"], "write the node id as a string")
    _calibration(check, glob.get(ISAC + "calibration"))
    return {
        "dtype": datatype_info(glob.get("core:datatype"), where=where),
        "sample_rate_hz": check.number("core:sample_rate", glob["core:sample_rate"], 0.0, MAX_HZ,
                                       "write the sample rate the recording was made at", unit=" Hz",
                                       low_open=True),
        "num_channels": check.integer("core:num_channels", glob.get("core:num_channels", 1), 1, MAX_CHANNELS,
                                      "write the number of interleaved channels, or remove it for 1"),
        "trailing_bytes": check.integer("core:trailing_bytes", glob.get("core:trailing_bytes", 0), 0, MAX_INT,
                                        "fix it or remove it", " bytes"),
        "sha512": sha512.lower() if sha512 is not None else None,
        "dataset": dataset,
        "frame": _frame(check, glob.get(ISAC + "frame")) if with_frame else None,
        "node": node,
        "radio": check.obj("isac:radio", glob.get(ISAC + "radio"), "write the radio description as an object",
                           null=True) or {},
        "description": check.text("core:description", glob.get("core:description", ""), "fix the text"),
        "is_isac": ISAC + "schema" in glob,
    }


def check_calibration_reference(meta_path: Path, stored: Any) -> None:
    """Check an ``isac:calibration`` value before it is written (:class:`RecordingWriter`): the rule of
    :func:`validate_metadata`, raising :class:`RecordingError` that names ``meta_path`` and the field."""
    _calibration(_Checker(meta_path), stored)


def _calibration(check: _Checker, stored: Any) -> None:
    """``isac:calibration``: null, or ``{"id": text, "sha256": 64 hex digits}`` naming the calibration file used."""
    fix = "write the calibration's id and the SHA-256 of its file, or null"
    ref = check.obj("isac:calibration", stored, fix, null=True)
    if ref is None:
        return
    check.text("isac:calibration.id", ref.get("id"), fix)
    digest = ref.get("sha256")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise check.error("isac:calibration.sha256", digest, "64 hexadecimal digits (the SHA-256 of the file)", fix)


def _frame(check: _Checker, stored: Any) -> FrameConfig | None:
    fields = check.obj("isac:frame", stored, "write FrameConfig fields as an object, or pass frame= to "
                       "Recording.open", null=True)
    if fields is None:
        return None
    try:
        return from_dict(FrameConfig, drop_none(fields))
    except ConfigError as err:
        raise RecordingError(f"{check.meta_path}: isac:frame.{err.detail}; or pass frame= to "
                             "Recording.open") from err


def _capture_segments(check: _Checker, captures: list[dict[str, Any]]) -> dict[str, Any]:
    """``core:header_bytes`` (first segment only), the first ``core:frequency`` and every segment's frequency.

    Segments may have different frequencies (a retune); a capture annotation must then stay inside one
    frequency (:func:`_check_retunes`).
    """
    header = 0
    frequencies: list[float | None] = []
    times: list[tuple[datetime.datetime, float] | None] = []
    indices: list[int | None] = []
    for i, segment in enumerate(captures):
        where = f"captures[{i}]."
        check.known_keys(where, segment, ())
        if "core:header_bytes" in segment:
            value = check.integer(where + "core:header_bytes", segment["core:header_bytes"], 0, MAX_INT,
                                  "fix it or remove it", " bytes")
            if i == 0:
                header = value
            elif value:
                raise RecordingError(f"{check.meta_path}: {where}core:header_bytes = {value}: allowed only in "
                                     "the first segment; convert the file to a conforming SigMF dataset")
        frequency = None
        if "core:frequency" in segment:
            frequency = check.number(where + "core:frequency", segment["core:frequency"], 0.0, MAX_HZ,
                                     "write the RF centre frequency (sdr_isac captures have one >= 0 Hz)",
                                     unit=" Hz")
        frequencies.append(frequency)
        times.append(_utc_datetime(check, where + "core:datetime", segment["core:datetime"])
                     if "core:datetime" in segment else None)
        indices.append(check.integer(where + "core:global_index", segment["core:global_index"], 0, MAX_INT,
                                     "fix it or remove it", " samples")
                       if "core:global_index" in segment else None)
    first = next((f for f in frequencies if f is not None), 0.0)
    epoch = next((t for t in times if t is not None), None)
    segments = tuple(SegmentFacts(i, int(seg["core:sample_start"]), first if f is None else f,
                                  None if t is None or epoch is None else
                                  (t[0] - epoch[0]).total_seconds() + (t[1] - epoch[1]), g)
                     for i, (seg, f, t, g) in enumerate(zip(captures, frequencies, times, indices)))
    return {"header_bytes": header, "center_freq_hz": first, "segments": segments,
            "segment_starts": tuple(seg.sample_start for seg in segments)}


_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?Z")


def is_sigmf_datetime(value: Any) -> bool:
    """Whether ``value`` is a valid SigMF ``core:datetime`` (ISO 8601 in UTC ending in ``Z``, a real date)."""
    match = _DATETIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return False
    try:
        datetime.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return False
    return True


def _utc_datetime(check: _Checker, where: str, value: Any) -> tuple[datetime.datetime, float]:
    """A SigMF ``core:datetime`` (ISO 8601 in UTC, ending in ``Z``, any number of fractional digits): its whole
    seconds as a datetime and its fraction apart (so nanoseconds survive)."""
    match = _DATETIME.fullmatch(value) if isinstance(value, str) else None
    try:
        whole = datetime.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S") if match else None
    except ValueError:
        whole = None
    if match is None or whole is None:
        raise RecordingError(f"{check.meta_path}: {where} = {_show(value)}: allowed an ISO 8601 time in UTC ending "
                             "in Z, e.g. '2026-12-07T16:30:00.123456Z' (SigMF core:datetime); fix it or remove it")
    return whole, float(match.group(2) or 0.0)


def check_span(meta_path: Path, what: str, segments: tuple[SegmentFacts, ...], start: int, count: int,
               starts: tuple[int, ...] | None = None) -> int:
    """The segment of samples ``start ... start + count - 1``; refuse a span across a change of frequency.

    ``starts``: the segments' ``sample_start`` (sorted, as the schema check makes them), to skip
    recomputing them; the search is a bisection, so checking every capture of a long recording stays
    O(n log n).

    Returns
    -------
    int
        Index into ``segments`` of the segment holding ``start`` (the first one for samples before it;
        0 without segments).

    Raises
    ------
    RecordingError
        A later segment inside the span has another ``core:frequency`` (the capture straddles a retune).
    """
    if not segments:
        return 0
    starts = tuple(seg.sample_start for seg in segments) if starts is None else starts
    k = max(bisect.bisect_right(starts, start) - 1, 0)
    here = segments[k]
    for j in range(k + 1, len(segments)):
        later = segments[j]
        if later.sample_start >= start + count:
            break
        if later.center_freq_hz != here.center_freq_hz:
            raise RecordingError(
                f"{meta_path}: {what} covers samples {start} ... {start + count - 1}, across a retune at sample "
                f"{later.sample_start} (captures[{here.index}].core:frequency = {here.center_freq_hz:g} Hz, "
                f"captures[{later.index}].core:frequency = {later.center_freq_hz:g} Hz): allowed a capture inside "
                "one centre frequency; end the capture at the retune (one capture per segment) or fix the segments")
    return k


def _capture_facts(check: _Checker, k: int, ann: dict[str, Any]) -> CaptureFacts:
    where = f"annotations[{k}]."
    fix = "fix that annotation"
    check.known_keys(where, ann, ANNOTATION_ISAC)
    for key in ("isac:seq", "core:sample_count"):
        if key not in ann:
            raise RecordingError(f"{check.meta_path}: {where}{key} is missing: allowed capture annotations "
                                 "(those with isac: or truth: keys) with isac:seq and core:sample_count; add it")
    t0_s = ann.get(ISAC + "t0_s", _ABSENT)
    node_id = ann.get(ISAC + "node_id", _ABSENT)
    return CaptureFacts(
        annotation=k,
        sample_start=check.integer(where + "core:sample_start", ann.get("core:sample_start"), 0, MAX_INT, fix),
        sample_count=check.integer(where + "core:sample_count", ann["core:sample_count"], 0, MAX_INT, fix),
        seq=check.integer(where + "isac:seq", ann["isac:seq"], 0, MAX_INT, fix),
        t0_s=None if t0_s is _ABSENT else check.number(where + "isac:t0_s", t0_s, -MAX_T0_S, MAX_T0_S, fix,
                                                       unit=" s"),
        node_id=None if node_id is _ABSENT else check.text(where + "isac:node_id", node_id, fix),
        frame_offset=check.integer(where + "isac:frame_offset", ann.get("isac:frame_offset", 0), 0, MAX_INT, fix,
                                   " samples"),
        metadata=check.obj(where + "isac:metadata", ann.get("isac:metadata", {}), fix) or {},
        truth={key.removeprefix(TRUTH): value for key, value in ann.items() if key.startswith(TRUTH)},
    )


def is_capture_annotation(ann: dict[str, Any]) -> bool:
    """True for an annotation that describes a capture (any ``isac:`` or ``truth:`` key)."""
    return any(isinstance(k, str) and k.startswith((ISAC, TRUTH)) for k in ann)


def check_capture_annotation(meta_path: Path, k: int, ann: dict[str, Any]) -> CaptureFacts:
    """Validate one capture annotation (``k``: its index among all annotations), as :func:`parse_metadata` does.

    Raises
    ------
    RecordingError
        A field has the wrong type or range.
    """
    return _capture_facts(_Checker(meta_path), k, ann)


def validate_metadata(metadata: Any, meta_path: Path, *, with_frame: bool = True) -> Metadata:
    """Validate parsed metadata (``meta_path`` only names the file in messages); see :func:`parse_metadata`."""
    check = _Checker(meta_path)
    _check_structure(check, metadata)
    _check_finite(check, metadata)
    _check_schema(check, metadata)
    fields = _global_fields(check, metadata["global"], with_frame)
    fields.update(_capture_segments(check, metadata["captures"]))
    captures = tuple(_capture_facts(check, k, ann) for k, ann in enumerate(metadata["annotations"])
                     if is_capture_annotation(ann))
    for fact in captures:
        check_span(meta_path, f"annotations[{fact.annotation}] (isac:seq {fact.seq})", fields["segments"],
                   fact.sample_start, fact.sample_count, fields["segment_starts"])
    return Metadata(raw=metadata, captures=captures, **fields)


def parse_metadata(meta_path: Path, *, with_frame: bool = True) -> Metadata:
    """Read, parse and validate a ``.sigmf-meta`` file (``with_frame=False``: ``isac:frame`` is not read).

    Raises
    ------
    RecordingError
        The file is missing, unreadable or not JSON; it does not follow the SigMF schema; or a field has
        the wrong type or range (the message names the field, its value, what is allowed and the fix).
    """
    return validate_metadata(_load_json(meta_path), meta_path, with_frame=with_frame)
