"""The wire format: one ZeroMQ multipart message per capture, detection list, map, estimates, tracks, status,
heartbeat or command.

A message is a list of frames ``[topic, header, *buffers]`` (see
``docs/wire-format.md`` for the full specification):

- ``topic``: ``f"{kind}/{node_id}"`` in ASCII, so that SUB sockets can filter
  by prefix;
- ``header``: one JSON object in UTF-8 with the schema version ``v`` (the
  lowest version that defines the message's kind, see :data:`KIND_VERSIONS`), the
  ``kind``, the ``node_id``, the sequence number ``seq``, the timestamps
  ``t0_s`` and ``sent_s``, the dtype and shape of each buffer in ``arrays``,
  and the fields of that kind;
- ``buffers``: the raw bytes of each array, C order, little-endian, sent
  without a copy.

This module works on bytes only (no sockets), so every rule is testable
without ZeroMQ.  :func:`decode` trusts nothing: anything that is not exactly
a message of this schema raises :class:`~sdr_isac.errors.WireFormatError`
naming the field, the value and what is allowed, and no other exception; a
message that decodes is well-formed all the way down (ground truth, RIS
steps, detections, estimates, tracks, counters, status; the buffers' values
too, except for the kinds a caller names in ``consumer_checks`` and checks
itself where it reads them), so the ``decode_<kind>``
helpers and the host's consumers never meet a shape they did not expect.  Nothing received is ever
unpickled or evaluated; the header is JSON and the buffers are numbers.

Example
-------
>>> import numpy as np
>>> from sdr_isac.stream import wire
>>> frames = wire.encode("control", "bs1", 7, arrays=[np.arange(3, dtype=np.int16)], command="stop")
>>> bytes(frames[0])
b'control/bs1'
>>> msg = wire.decode(frames)
>>> msg.kind, msg.node_id, msg.seq, msg.header["command"], msg.arrays[0].tolist()
('control', 'bs1', 7, 'stop', [0, 1, 2])
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeGuard

import numpy as np
from numpy.typing import NDArray

from sdr_isac.capture import Capture, first_nonfinite
from sdr_isac.config import FrameConfig, SensingConfig, from_dict
from sdr_isac.errors import ConfigError, InputError, RecordingError, WireFormatError
from sdr_isac.fusion.records import TRACK_STATUSES, Handover, TargetEstimate, Track
from sdr_isac.recording._format import drop_none, to_json
from sdr_isac.sensing.detection import Detection
from sdr_isac.sensing.pipeline import SensingResult

__all__ = [
    "SCHEMA_VERSION",
    "KINDS",
    "KIND_VERSIONS",
    "DTYPES",
    "DEFAULT_MAX_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_ARRAYS",
    "MAX_NDIM",
    "MAX_DEPTH",
    "Message",
    "RdMap",
    "check_values",
    "encode",
    "decode",
    "encode_capture",
    "decode_capture",
    "encode_detections",
    "decode_detections",
    "map_for_display",
    "encode_rdmap",
    "decode_rdmap",
    "encode_heartbeat",
    "encode_control",
    "NODE_STATES",
    "Outage",
    "NodeStatus",
    "TRUTH_SOURCES",
    "radio_of",
    "checked_truth",
    "encode_status",
    "decode_status",
    "encode_estimates",
    "decode_estimates",
    "estimate_to_dict",
    "ris_details",
    "TrackSet",
    "MAX_TAIL",
    "encode_tracks",
    "decode_tracks",
    "track_to_dict",
]

#: Newest major version of the header schema this code speaks; a receiver accepts 1 ... SCHEMA_VERSION.
SCHEMA_VERSION = 3
#: Message kinds.
KINDS = ("capture", "detections", "estimates", "tracks", "heartbeat", "control", "rdmap", "status")
#: The schema version that introduced each kind; a message is stamped with its kind's version, so that a
#: receiver of an older version still takes the kinds it knows.
KIND_VERSIONS: dict[str, int] = {"capture": 1, "detections": 1, "estimates": 1, "tracks": 1, "heartbeat": 1,
                                 "control": 1, "rdmap": 2, "status": 3}
#: Default limit on the size of one message (all frames together), bytes.
DEFAULT_MAX_BYTES = 256 * 2**20
#: Limit on the JSON header frame, bytes.
MAX_HEADER_BYTES = 4 * 2**20
#: Limit on the number of array buffers in one message.
MAX_ARRAYS = 16
#: Limit on the dimensions of one array.
MAX_NDIM = 8
#: Limit on the nesting of lists and objects in the header.
MAX_DEPTH = 32
#: Limit on the items of a list of records in the header (detections, estimates, truth paths and targets).
MAX_ITEMS = 10000
#: Limit on the bytes one array could span if its zero dimensions were 1 (numpy's own limit is 2**63 - 1).
MAX_ARRAY_BYTES = 2**62
#: Array dtypes allowed on the wire and their (little-endian) layout.
DTYPES: dict[str, np.dtype[Any]] = {
    "complex64": np.dtype("<c8"),
    "complex128": np.dtype("<c16"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "int16": np.dtype("<i2"),
    "int32": np.dtype("<i4"),
    "uint8": np.dtype("u1"),
    "bool": np.dtype("?"),
}

_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_MAX_ID_LEN = 64
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_EXACT_INT = 2**53              # integers up to this magnitude are exact as float64
_COMMON = ("v", "kind", "node_id", "seq", "t0_s", "sent_s", "arrays")
_CAPTURE_FIELDS = ("sample_rate_hz", "center_freq_hz", "frame_offset", "frame", "metadata")
_GEOMETRIES = ("monostatic", "bistatic")
_RDMAP_FIELDS = ("geometry", "num_channels", "max_range_m", "decimation", "detections", "sensing", "node", "stats")


@dataclass(frozen=True, eq=False)
class Message:
    """One decoded message.

    Attributes
    ----------
    topic : bytes
        ``f"{kind}/{node_id}"`` in ASCII.
    header : dict
        The JSON header: ``v``, ``kind``, ``node_id``, ``seq``, ``t0_s``,
        ``sent_s``, ``arrays`` and the fields of the kind.
    arrays : tuple of ndarray
        One read-only array per buffer frame, a view of the received bytes
        with the dtype and shape given in ``header["arrays"]``.
    """

    topic: bytes
    header: dict[str, Any]
    arrays: tuple[NDArray[Any], ...]
    #: what :func:`decode` built while checking the kind's fields (the tracks of a ``tracks`` message), reused by
    #: the ``decode_<kind>`` helper instead of checking everything twice
    _parsed: Any = field(default=None, repr=False, compare=False)

    @property
    def kind(self) -> str:
        """One of :data:`KINDS`."""
        return str(self.header["kind"])

    @property
    def node_id(self) -> str:
        """The sending node."""
        return str(self.header["node_id"])

    @property
    def seq(self) -> int:
        """Sequence number of this message at its node and kind (>= 0)."""
        return int(self.header["seq"])

    @property
    def t0_s(self) -> float:
        """Time of the data (first sample of a capture) on the node's clock, s."""
        return float(self.header["t0_s"])

    @property
    def sent_s(self) -> float:
        """Wall-clock time (Unix epoch) at which the node encoded the message, s."""
        return float(self.header["sent_s"])


# ---- errors and value checks ----------------------------------------------------------------
def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _fail(field: str, value: Any, allowed: str, fix: str = "") -> NoReturn:
    raise WireFormatError(f"{field} = {_short(value)}: allowed {allowed}" + (f"; {fix}" if fix else ""))


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_id(field: str, value: Any) -> str:
    if not (isinstance(value, str) and 0 < len(value) <= _MAX_ID_LEN and set(value) <= _ID_CHARS):
        _fail(field, value, f"a string of 1 ... {_MAX_ID_LEN} characters from A-Z a-z 0-9 _ . -",
              "rename it")
    return value


def _check_number(field: str, value: Any, unit: str, low: float | None = None, *, strict: bool = False) -> float:
    bound = f" {'>' if strict else '>='} {low:g} {unit}" if low is not None else f" in {unit}"
    if not _is_number(value) or not math.isfinite(value) or (
            low is not None and (value <= low if strict else value < low)):
        _fail(field, value, "a finite number" + bound)
    if isinstance(value, int) and abs(value) > _EXACT_INT:
        _fail(field, value, f"a finite number{bound}; an integer beyond 2**53 is not exact as a float",
              "send it as a float")
    return float(value)


def _check_count(field: str, value: Any) -> int:
    if not _is_int(value) or not 0 <= value <= _INT_MAX:
        _fail(field, value, f"an integer 0 ... {_INT_MAX}")
    return int(value)


def _path(field: str, path: tuple[str | int, ...]) -> str:
    return field + "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in path)


def _check_tree(value: Any, field: str) -> None:
    """Check that ``value`` is plain JSON within the limits: types, depth, finite floats, 64-bit ints, UTF-8."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, int):
            if not _INT_MIN <= item <= _INT_MAX:
                _fail(_path(field, path), item, "integers that fit in 64 bits (-2**63 ... 2**63 - 1)")
        elif isinstance(item, float):
            if not math.isfinite(item):
                _fail(_path(field, path), item, "finite numbers (JSON has no NaN or infinity)",
                      "send None or a finite value")
        elif isinstance(item, str):
            _check_text(field, path, item)
        elif isinstance(item, (dict, list)):
            if len(path) >= MAX_DEPTH:
                _fail(_path(field, path), "...", f"lists and objects nested at most {MAX_DEPTH} deep",
                      "flatten the value")
            if isinstance(item, dict):
                for key, sub in item.items():
                    if not isinstance(key, str):
                        _fail(_path(field, path) + " key", key, "string keys")
                    _check_text(field, (*path, key), key)
                    stack.append((sub, (*path, key)))
            else:
                stack.extend((sub, (*path, i)) for i, sub in enumerate(item))
        else:
            _fail(_path(field, path), item, "JSON values (None, bool, int, float, str, list, dict with string keys)")


def _check_text(field: str, path: tuple[str | int, ...], text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        _fail(_path(field, path), text, "valid Unicode text (no lone surrogates)")


def _json_field(name: str, value: Any) -> Any:
    """``value`` made JSON-ready (numpy scalars, tuples, dataclasses converted), or WireFormatError."""
    kind = type(value)                                # a plain scalar that passes comes back as it is
    if value is None or kind is bool or (kind is float and math.isfinite(value)) or (
            kind is int and _INT_MIN <= value <= _INT_MAX):
        return value
    try:
        out = to_json(value, name)
    except RecordingError as err:
        raise WireFormatError(str(err)) from err
    _check_tree(out, name)
    return out


# ---- the header ----------------------------------------------------------------------------
def _check_common(header: dict[str, Any]) -> None:
    """Check ``v``, ``kind``, ``node_id``, ``seq``, ``t0_s``, ``sent_s``; normalise the times to float."""
    version = header.get("v")
    if not _is_int(version) or not 1 <= version <= SCHEMA_VERSION:
        _fail("v", version, f"schema version 1 ... {SCHEMA_VERSION}",
              "the sender speaks a newer major version of the wire format; run the same sdr_isac version on both")
    kind = header.get("kind")
    if kind not in KINDS:
        _fail("kind", kind, ", ".join(KINDS))
    if KIND_VERSIONS[kind] > version:
        known = ", ".join(k for k in KINDS if KIND_VERSIONS[k] <= version)
        _fail("kind", kind, f"the kinds of schema version {version} ({known})",
              f"{kind!r} messages carry v = {KIND_VERSIONS[kind]}")
    _check_id("node_id", header.get("node_id"))
    _check_count("seq", header.get("seq"))
    for name in ("t0_s", "sent_s"):
        header[name] = _check_number(name, header.get(name), "s")


def _check_specs(specs: Any) -> list[tuple[np.dtype[Any], tuple[int, ...]]]:
    """The ``arrays`` entries as ``(dtype, shape)``."""
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        _fail("arrays", specs, f"a list of at most {MAX_ARRAYS} {{\"dtype\", \"shape\"}} objects")
    out = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or set(spec) != {"dtype", "shape"}:
            _fail(f"arrays[{i}]", spec, 'an object with exactly the keys "dtype" and "shape"')
        dtype, shape = spec["dtype"], spec["shape"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            _fail(f"arrays[{i}].dtype", dtype, ", ".join(DTYPES))
        if not (isinstance(shape, list) and len(shape) <= MAX_NDIM and all(_is_int(n) and n >= 0 for n in shape)):
            _fail(f"arrays[{i}].shape", shape, f"a list of at most {MAX_NDIM} non-negative integers")
        out.append((DTYPES[dtype], tuple(shape)))
    return out


def _check_kind(header: dict[str, Any], specs: list[tuple[np.dtype[Any], tuple[int, ...]]] | None = None,
                checked: frozenset[str] = frozenset()) -> Any:
    """Check the fields that the header's kind requires; return what the check built (a ``tracks`` message's
    records), else None.  ``specs``: ``header["arrays"]`` as :func:`_check_specs` gave it, if already checked;
    ``checked``: the fields that :func:`encode` got as :class:`_Checked` values (their kind's checks passed)."""
    kind = header["kind"]
    if kind == "capture":
        _check_capture_fields(header, specs, "metadata" in checked)
    elif kind == "detections":
        _check_detections("detections", header.get("detections"))
        _check_truth("truth", header.get("truth"))
        if header.get("radio") is not None and not isinstance(header["radio"], str):
            _fail("radio", header["radio"], "null or a string (the capture's radio kind: sim, replay, pluto, usrp)")
        _check_node_place(header.get("node"))
        stats = header.get("stats")
        if stats is not None and not isinstance(stats, dict):
            _fail("stats", stats, "null or an object of the node's counters at the host")
    elif kind == "estimates":
        _check_estimates(header.get("estimates"))
    elif kind == "heartbeat":
        _check_heartbeat_stats(header.get("stats"))
    elif kind == "control":
        _check_id("command", header.get("command"))
    elif kind == "rdmap":
        _check_rdmap_fields(header, specs)
    elif kind == "status":
        _status_of(header)
    elif kind == "tracks":
        return _tracks_of(header)
    return None


def _check_detections(field: str, dets: Any) -> None:
    if not isinstance(dets, list) or len(dets) > MAX_ITEMS:
        _fail(field, dets, f"a list of at most {MAX_ITEMS} detection objects")
    for i, det in enumerate(dets):
        _check_detection(f"{field}[{i}]", det)


def _check_optional_text(field: str, parent: dict[str, Any], prefix: str = "") -> None:
    if field in parent and not isinstance(parent[field], str):
        _fail(prefix + field, parent[field], "a string")


def _unit_of(name: str) -> str:
    """The unit a field name ends in (``range_m`` -> m), for messages."""
    for suffix, unit in (("_mps", "m/s"), ("_m", "m"), ("_hz", "Hz"), ("_s", "s"), ("_deg", "degrees"),
                         ("_rad", "rad"), ("_db", "dB"), ("_samples", "samples")):
        if name.endswith(suffix):
            return unit
    return "its unit"


def _check_vector(field: str, value: Any, sizes: tuple[int, ...] = (2, 3), unit: str = "") -> None:
    unit = unit or _unit_of(field)
    if not (isinstance(value, list) and len(value) in sizes):
        _fail(field, value, f"a list of {' or '.join(map(str, sizes))} finite numbers of {unit}")
    for i, item in enumerate(value):
        _check_number(f"{field}[{i}]", item, unit)


# ---- ground truth (simulated or replayed data) ------------------------------------------------
_TRUTH_TEXT = ("kind", "source", "target", "tx", "rx", "ris")
_TRUTH_NUMBERS = ("length_m", "doppler_hz", "delay_s", "delay_samples", "azimuth_deg", "elevation_deg",
                  "snr_per_re_db", "range_m", "range_sum_m", "bistatic_velocity_mps", "isolation_db")


def _check_truth(field: str, truth: Any) -> None:
    """``null``, or an object whose optional ``paths`` and ``targets`` follow the truth schema.

    The schema is what :mod:`sdr_isac.radio.sim` writes (docs/wire-format.md, "Ground truth"): each path an
    object with a ``kind`` and typed fields, a monostatic one (``range_m``) also with a radial ``velocity_mps``
    and ``snr_per_re_db``, a ``target`` path with the ``target`` id and its ``position_m``; each target an
    object with ``id`` and ``position_m``.  Other keys are free.
    """
    if truth is None:
        return
    if not isinstance(truth, dict):
        _fail(field, truth, "null or an object with the lists paths and targets",
              "send the truth as a simulated radio makes it, or none")
    for key, check in (("paths", _check_truth_path), ("targets", _check_truth_target)):
        if key not in truth:
            continue
        items = truth[key]
        if not isinstance(items, list) or len(items) > MAX_ITEMS:
            _fail(f"{field}.{key}", items, f"a list of at most {MAX_ITEMS} objects")
        for i, item in enumerate(items):
            check(f"{field}.{key}[{i}]", item)


def _check_truth_path(field: str, path: Any) -> None:
    if not isinstance(path, dict):
        _fail(field, path, "an object with kind and the fields of one propagation path")
    if not isinstance(path.get("kind"), str):
        _fail(f"{field}.kind", path.get("kind", "missing"), "a string (target, los, clutter, wall, ...)")
    for key in _TRUTH_TEXT:
        _check_optional_text(key, path, f"{field}.")
    for key in _TRUTH_NUMBERS:
        if key in path:
            _check_number(f"{field}.{key}", path[key], _unit_of(key))
    if "position_m" in path:
        _check_vector(f"{field}.position_m", path["position_m"])
    velocity = path.get("velocity_mps")
    if "range_m" in path:                                 # monostatic: radial velocity and SNR, what a matcher uses
        _check_number(f"{field}.velocity_mps", velocity, "m/s (radial, for a path with range_m)")
        _check_number(f"{field}.snr_per_re_db", path.get("snr_per_re_db"), "dB (for a path with range_m)")
    elif velocity is not None and not _is_number(velocity):
        _check_vector(f"{field}.velocity_mps", velocity)
    if path["kind"] == "target":
        if not isinstance(path.get("target"), str):
            _fail(f"{field}.target", path.get("target", "missing"), "the target's id (a string) on a target path")
        if "position_m" not in path:
            _fail(f"{field}.position_m", "missing", "the target's position [x, y(, z)] in m on a target path")


def _check_truth_target(field: str, target: Any) -> None:
    if not isinstance(target, dict):
        _fail(field, target, "an object with id and position_m")
    if not isinstance(target.get("id"), str):
        _fail(f"{field}.id", target.get("id", "missing"), "a string (the target's id)")
    _check_vector(f"{field}.position_m", target.get("position_m", "missing"))
    if target.get("velocity_mps") is not None:
        _check_vector(f"{field}.velocity_mps", target["velocity_mps"])


#: Radios whose ground truth a host publishes: a simulation, or a replayed recording's annotations.  A real
#: radio's capture that carries a ``truth`` (a node that should not) is not echoed out.
TRUTH_SOURCES = ("sim", "replay")


def radio_of(metadata: dict[str, Any]) -> str | None:
    """The radio a capture came from, by its metadata: ``replay`` for a replayed one, else ``radio`` (or None)."""
    if isinstance(metadata.get("replay"), dict):
        return "replay"
    radio = metadata.get("radio")
    return radio if isinstance(radio, str) else None


def checked_truth(truth: Any) -> dict[str, Any] | None:
    """``truth`` made JSON-ready if it follows the truth schema (see :func:`_check_truth`), else None."""
    try:
        value = _json_field("truth", truth)
        _check_truth("truth", value)
    except WireFormatError:
        return None
    return value if isinstance(value, dict) else None


# ---- structured header fields -------------------------------------------------------------------
_NODE_COUNTERS = ("sent", "dropped", "captured", "frames_sent", "frames_dropped", "heartbeats",
                  "frames_dropped_overflow", "rx_failures")


def _check_heartbeat_stats(stats: Any) -> None:
    """A heartbeat's ``stats``: an object; the node counters, ``final`` and the times typed when present."""
    if not isinstance(stats, dict):
        _fail("stats", stats, "an object of node statistics")
    for key in _NODE_COUNTERS:
        if key in stats:
            _check_count(f"stats.{key}", stats[key])
    if "final" in stats and not isinstance(stats["final"], bool):
        _fail("stats.final", stats["final"], "true or false (the node's last heartbeat)")
    for key in ("started_s", "stopped_s"):
        if stats.get(key) is not None:
            _check_number(f"stats.{key}", stats[key], "s")


def _check_node_place(node: Any) -> None:
    """``node``: null or an object with ``position_m`` (2 or 3 numbers, m) and ``yaw_deg`` (degrees)."""
    if node is None:
        return
    if not isinstance(node, dict):
        _fail("node", node, "null or an object with position_m and yaw_deg")
    _check_vector("node.position_m", node.get("position_m"))
    _check_number("node.yaw_deg", node.get("yaw_deg"), "degrees")


def _check_ris_steps(steps: Any) -> None:
    """``metadata.ris``: the RIS steering of a capture (:meth:`sdr_isac.stream.node.NodeAgent.ris_plan`)."""
    if not isinstance(steps, list) or len(steps) > 256:
        _fail("metadata.ris", steps, "a list of at most 256 RIS steps")
    for i, step in enumerate(steps):
        field = f"metadata.ris[{i}]"
        if not isinstance(step, dict):
            _fail(field, step, "an object with id, incoming_deg, steer_deg, scan_index and scan_size")
        if not isinstance(step.get("id"), str):
            _fail(f"{field}.id", step.get("id", "missing"), "a string (the RIS id)")
        for key in ("incoming_deg", "steer_deg"):
            _check_number(f"{field}.{key}", step.get(key), "degrees")
        size = step.get("scan_size")
        if not _is_int(size) or not 1 <= size <= 4096:
            _fail(f"{field}.scan_size", size, "an integer 1 ... 4096 (steps of the scan)")
        index = step.get("scan_index")
        if not _is_int(index) or not 0 <= index < size:
            _fail(f"{field}.scan_index", index, f"an integer 0 ... {size - 1} (below scan_size)")


def _check_metadata(metadata: Any) -> None:
    """A capture's ``metadata``: an object; ``truth``, ``ris``, ``radio``, ``replay``, ``frame_interval_s`` typed
    when present."""
    if not isinstance(metadata, dict):
        _fail("metadata", metadata, "an object")
    for key, check in _METADATA_CHECKS.items():
        if key in metadata:
            check(metadata[key])


def _check_replay(value: Any) -> None:
    if not isinstance(value, dict):
        _fail("metadata.replay", value, "an object (where a replayed capture came from)")


def _check_radio(value: Any) -> None:
    if not isinstance(value, str):
        _fail("metadata.radio", value, "a string (the radio kind: sim, replay, pluto, usrp)")


def _check_frame_interval(value: Any) -> None:
    """``metadata.frame_interval_s``: the scene time from this capture's start to the next one's (a simulated
    radio with ``radio.frame_interval_s``), a finite number > 0 s."""
    _check_number("metadata.frame_interval_s", value, "s", 0.0, strict=True)


_METADATA_CHECKS = {"truth": lambda v: _check_truth("metadata.truth", v), "ris": _check_ris_steps,
                    "radio": _check_radio, "replay": _check_replay, "frame_interval_s": _check_frame_interval}


def _check_capture_fields(header: dict[str, Any], specs: list[tuple[np.dtype[Any], tuple[int, ...]]] | None = None,
                          metadata_checked: bool = False) -> None:
    if specs is None:
        specs = _check_specs(header.get("arrays", "missing"))
    if len(specs) != 1 or specs[0][0] != DTYPES["complex64"] or len(specs[0][1]) != 2 or specs[0][1][0] < 1:
        _fail("arrays", header["arrays"], "one complex64 array of shape [num_channels >= 1, num_samples] "
              "(the iq samples)")
    _check_number("sample_rate_hz", header.get("sample_rate_hz"), "Hz", 0.0, strict=True)
    _check_number("center_freq_hz", header.get("center_freq_hz"), "Hz", 0.0)
    _check_count("frame_offset", header.get("frame_offset"))
    frame = header.get("frame", "missing")
    if frame is not None and not isinstance(frame, dict):
        _fail("frame", frame, "null or an object of FrameConfig fields")
    if not metadata_checked:                          # else _json_metadata ran the same checks on each entry
        _check_metadata(header.get("metadata", "missing"))


def _check_cells(field: str, value: Any, low: int) -> tuple[int, int]:
    if not (isinstance(value, list) and len(value) == 2 and all(_is_int(v) and low <= v <= 1_000_000 for v in value)):
        _fail(field, value, f"a list of 2 integers {low} ... 1000000 (range, Doppler)")
    return int(value[0]), int(value[1])


def _check_rdmap_fields(header: dict[str, Any],
                        specs: list[tuple[np.dtype[Any], tuple[int, ...]]] | None = None) -> None:
    if specs is None:
        specs = _check_specs(header.get("arrays", "missing"))
    shapes = [shape for _, shape in specs]
    if (len(specs) != 3 or specs[0][0] != DTYPES["float32"] or len(shapes[0]) != 2 or min(shapes[0]) < 1
            or specs[1][0] != DTYPES["float64"] or specs[2][0] != DTYPES["float64"]
            or shapes[1] != shapes[0][:1] or shapes[2] != shapes[0][1:]):
        _fail("arrays", header["arrays"], "three arrays: float32 power_db [R >= 1, D >= 1], float64 range_m [R], "
              "float64 velocity_mps [D]")
    if header.get("geometry") not in _GEOMETRIES:
        _fail("geometry", header.get("geometry"), " or ".join(_GEOMETRIES))
    channels = header.get("num_channels")
    if not _is_int(channels) or not 1 <= channels <= 65536:
        _fail("num_channels", channels, "an integer 1 ... 65536 (receive channels summed in the map)")
    _check_number("max_range_m", header.get("max_range_m"), "m", 0.0, strict=True)
    _check_cells("decimation", header.get("decimation"), 1)
    _check_detections("detections", header.get("detections"))
    sensing = header.get("sensing")
    if not isinstance(sensing, dict):
        _fail("sensing", sensing, "an object with pfa, guard_cells and training_cells (the CFAR of detections)")
    pfa = sensing.get("pfa")
    if not _is_number(pfa) or not 0 < pfa < 0.5:
        _fail("sensing.pfa", pfa, "a number 0 < pfa < 0.5")
    _check_cells("sensing.guard_cells", sensing.get("guard_cells"), 0)
    _check_cells("sensing.training_cells", sensing.get("training_cells"), 1)
    _check_node_place(header.get("node"))
    if not isinstance(header.get("stats"), dict):
        _fail("stats", header.get("stats", "missing"), "an object of the node's counters at the host")
    _check_truth("truth", header.get("truth"))


def _detection_types() -> dict[str, tuple[str, bool]]:
    """Detection field -> (base type name, None allowed), from its annotations."""
    out = {}
    for f in dataclasses.fields(Detection):
        annotation = str(f.type)
        out[f.name] = (annotation.split("|")[0].strip(), "None" in annotation)
    return out


_DETECTION_TYPES = _detection_types()
_VARIANCES = ("range_var_m2", "velocity_var_mps2", "angle_var_rad2")


def _check_detection(field: str, det: Any) -> None:
    if not isinstance(det, dict) or set(det) != set(_DETECTION_TYPES):
        _fail(field, det, f"an object with exactly the keys {', '.join(_DETECTION_TYPES)}")
    for name, (base, optional) in _DETECTION_TYPES.items():
        value = det[name]
        if value is None and optional:
            continue
        if base == "float":
            _check_number(f"{field}.{name}", value, "the unit its name ends in")
        elif base == "int" and not _is_int(value):
            _fail(f"{field}.{name}", value, "an integer")
        elif base == "bool" and not isinstance(value, bool):
            _fail(f"{field}.{name}", value, "true or false")
        elif base == "str" and not isinstance(value, str):
            _fail(f"{field}.{name}", value, "a string")
    if det["geometry"] not in _GEOMETRIES:
        _fail(f"{field}.geometry", det["geometry"], " or ".join(_GEOMETRIES))
    for name in _VARIANCES:                   # consumers divide by their square roots (errors over sqrt(CRB))
        if det[name] is not None and not det[name] > 0:
            _fail(f"{field}.{name}", det[name], "a finite number > 0 (a Cramér-Rao variance)")


def _check_finite(i: int, arr: NDArray[Any], fix: str = "") -> None:
    """Raise naming the first NaN or infinite value of an array (:func:`~sdr_isac.capture.first_nonfinite`: one
    pass over the data in the common case)."""
    bad = first_nonfinite(arr)
    if bad is not None:
        _fail(f"arrays[{i}]{list(bad)}", arr[bad].item(), "finite values", fix)


# ---- encode ---------------------------------------------------------------------------------
class _Checked:
    """A header field's value that this module made JSON-ready itself (never a caller's object): :func:`encode`
    takes it without converting it again.

    ``walked``: its tree was checked (:func:`_check_tree`) from the field's root, as :func:`_json_field` does;
    else encode walks it once.  The value is only read (put into the header and serialised), never handed out.
    """

    __slots__ = ("value", "walked")

    def __init__(self, value: Any, *, walked: bool):
        self.value = value
        self.walked = walked


def _checked_field(name: str, field: _Checked) -> Any:
    if not field.walked:
        _check_tree(field.value, name)
    return field.value


def _wire_array(i: int, array: Any, scan: bool = True) -> tuple[dict[str, Any], memoryview]:
    """The header entry and the zero-copy byte view of one array (its values checked finite if ``scan``)."""
    arr = np.asarray(array)
    name = arr.dtype.name
    if name not in DTYPES:
        _fail(f"arrays[{i}].dtype", str(arr.dtype), ", ".join(DTYPES), "convert the array with .astype()")
    if arr.ndim > MAX_NDIM:
        _fail(f"arrays[{i}].shape", list(arr.shape), f"at most {MAX_NDIM} dimensions")
    arr = arr.astype(DTYPES[name], order="C", copy=False)          # a copy only if strided or big-endian
    if scan:
        _check_finite(i, arr, "replace NaN and infinity before sending")
    return {"dtype": name, "shape": list(arr.shape)}, arr.reshape(-1).view(np.uint8).data


def encode(kind: str, node_id: str, seq: int, *, t0_s: float = 0.0, arrays: Sequence[NDArray[Any]] = (),
           **fields: Any) -> list[bytes | memoryview]:
    """Encode one message as ZeroMQ frames.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    node_id : str
        Sending node, 1 ... 64 characters from ``A-Z a-z 0-9 _ . -``.
    seq : int
        Sequence number, 0 ... 2**63 - 1.
    t0_s : float
        Time of the data on the node's clock, s (finite).
    arrays : sequence of ndarray
        At most :data:`MAX_ARRAYS` arrays of a dtype in :data:`DTYPES`, at
        most :data:`MAX_NDIM` dimensions, finite values.  A C-contiguous
        little-endian array is sent without a copy: keep it unchanged until
        the frames are sent.
    **fields
        Further header fields, JSON values (None, bool, int, float, str,
        lists, dicts with string keys; numpy scalars and real arrays, tuples
        and dataclasses are converted).  Floats must be finite, integers fit
        in 64 bits, nesting at most :data:`MAX_DEPTH`.  ``v`` and ``sent_s``
        are reserved.

    Returns
    -------
    list of bytes or memoryview
        ``[topic, header, *buffers]``, ready for ``socket.send_multipart``.

    Raises
    ------
    WireFormatError
        A value that the receiver would reject, naming the field.
    """
    return _encode(kind, node_id, seq, t0_s, arrays, fields, scan=True)


def _encode(kind: str, node_id: str, seq: int, t0_s: float, arrays: Sequence[NDArray[Any]], fields: dict[str, Any],
            *, scan: bool) -> list[bytes | memoryview]:
    """:func:`encode`; ``scan``: check the buffers' values finite here (else only the receiver does)."""
    arrays = list(arrays)
    reserved = sorted(set(fields) & set(_COMMON))
    if reserved:
        _fail(f"field {reserved[0]!r}", fields[reserved[0]], f"any field name except {', '.join(_COMMON)}",
              "rename the field")
    if len(arrays) > MAX_ARRAYS:
        _fail("arrays", f"{len(arrays)} arrays", f"at most {MAX_ARRAYS}")
    specs, buffers = [], []
    for i, array in enumerate(arrays):
        spec, buffer = _wire_array(i, array, scan)
        specs.append(spec)
        buffers.append(buffer)
    header: dict[str, Any] = {"v": KIND_VERSIONS.get(kind, SCHEMA_VERSION), "kind": kind, "node_id": node_id,
                              "seq": _json_field("seq", seq), "t0_s": _json_field("t0_s", t0_s),
                              "sent_s": time.time(), "arrays": specs}
    header.update({name: _checked_field(name, value) if type(value) is _Checked else _json_field(name, value)
                   for name, value in fields.items()})
    _check_common(header)
    _check_kind(header, None, frozenset(name for name, value in fields.items() if type(value) is _Checked))
    try:
        text = json.dumps(header, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as err:
        raise WireFormatError(f"header is not JSON: {err}; pass JSON values only") from err
    if len(text) > MAX_HEADER_BYTES:
        _fail("header size", f"{len(text)} bytes", f"at most {MAX_HEADER_BYTES} bytes", "send the bulk as arrays")
    return [f"{kind}/{node_id}".encode("ascii"), text, *buffers]


# ---- decode ---------------------------------------------------------------------------------
def _frame_bytes(i: int, frame: Any) -> memoryview:
    try:
        view = memoryview(getattr(frame, "buffer", frame))
        if not view.c_contiguous:
            raise ValueError("not contiguous")
        return view if view.format == "B" and view.ndim == 1 else view.cast("B")
    except (TypeError, ValueError, BufferError) as err:
        raise WireFormatError(f"frame {i} is a {type(frame).__name__}: allowed bytes, a memoryview or a "
                              f"zmq.Frame of contiguous bytes ({err})") from err


def _reject_constant(token: str) -> NoReturn:
    _fail("header number", token, "finite numbers (JSON has no NaN or Infinity)")


def _parse_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        _fail("header number", token, "finite numbers (this one overflows a float64)")
    return value


def _parse_int(token: str) -> int:
    if len(token.lstrip("-")) > 19 or not _INT_MIN <= int(token) <= _INT_MAX:
        _fail("header integer", token, "integers that fit in 64 bits (-2**63 ... 2**63 - 1)")
    return int(token)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) < len(pairs):                         # a key twice: name the first one seen again
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                _fail("header key", key, "each key once per object")
            seen.add(key)
    return out


#: The header's parser (made once, not by every ``json.loads``): every number checked as it is read, each
#: object's keys unique.
_STRICT_JSON = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_float, parse_int=_parse_int,
                                object_pairs_hook=_unique_keys)


def _parse_header(raw: memoryview) -> dict[str, Any]:
    if len(raw) > MAX_HEADER_BYTES:
        _fail("header size", f"{len(raw)} bytes", f"at most {MAX_HEADER_BYTES} bytes")
    try:
        text = bytes(raw).decode("utf-8")
        if text.startswith("\ufeff"):                 # what json.loads says of it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        header = _STRICT_JSON.decode(text)
    except WireFormatError:
        raise
    except UnicodeDecodeError as err:
        raise WireFormatError(f"header = {_short(bytes(raw[:80]))}: allowed UTF-8 text ({err.reason} at byte "
                              f"{err.start}); the second frame must be the JSON header") from err
    except (ValueError, RecursionError) as err:
        raise WireFormatError(f"header = {_short(bytes(raw[:80]))}: allowed one JSON object ({err}); the second frame "
                              "must be the JSON header") from err
    if not isinstance(header, dict):
        _fail("header", header, "a JSON object")
    if _tree_needs_walk(text, header):
        _check_tree(header, "header")
    return header


def _tree_needs_walk(text: str, header: dict[str, Any]) -> bool:
    """Whether the header parsed from ``text`` could fail :func:`_check_tree` (which then says why).

    The strict parse already refused what the walk refuses among numbers (NaN, infinities, overflowing
    floats, integers beyond 64 bits); keys are strings and the values plain JSON.  Two things remain: a lone
    surrogate in a string, which only a ``\\u`` escape can make (the UTF-8 decoding refuses encoded ones), and
    nesting deeper than :data:`MAX_DEPTH`: impossible with at most :data:`MAX_DEPTH` brackets in the whole
    text (brackets inside strings only make the count larger), else looked for among the containers alone.
    """
    if "\\u" in text:
        return True
    return text.count("[") + text.count("{") > MAX_DEPTH and _nested_deeper(header, MAX_DEPTH)


def _nested_deeper(value: dict[str, Any] | list[Any], limit: int) -> bool:
    """Whether a list or object of plain JSON holds one at ``limit`` levels below it or deeper (the root is
    level 0), the nesting :func:`_check_tree` refuses; only lists and objects are visited."""
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if level >= limit:
            return True
        for sub in item.values() if type(item) is dict else item:
            if type(sub) is dict or type(sub) is list:
                stack.append((sub, level + 1))
    return False


def _array(i: int, buffer: memoryview, dtype: np.dtype[Any], shape: tuple[int, ...], max_bytes: int,
           values: bool = True) -> NDArray[Any]:
    # Python ints throughout: a shape such as [1, 0, 2**62] holds no bytes, yet numpy refuses to make it, so the
    # shape must fit the size limit as if its zero dimensions were 1 (docs/wire-format.md, Limits)
    span = dtype.itemsize * math.prod(n for n in shape if n)
    limit = min(max_bytes, MAX_ARRAY_BYTES)
    if span > limit:
        _fail(f"arrays[{i}].shape", list(shape),
              f"dimensions whose product without the zeros, times {dtype.itemsize} bytes ({dtype.name}), is at "
              f"most {limit} bytes (the message size limit)", "a zero dimension does not make the others free")
    expected = dtype.itemsize * math.prod(shape)
    if expected != len(buffer):
        _fail(f"frame {i + 2} size", f"{len(buffer)} bytes",
              f"{expected} bytes = {dtype.itemsize} bytes ({dtype.name}) x {math.prod(shape)} items of arrays[{i}]"
              f" shape {list(shape)}")
    arr = np.frombuffer(buffer, dtype=dtype).reshape(shape)
    arr.flags.writeable = False
    if dtype.kind == "b" and np.any(np.frombuffer(buffer, dtype=np.uint8) > 1):
        _fail(f"arrays[{i}]", "bytes other than 0 and 1", "bool bytes 0 or 1")
    if values:
        _check_finite(i, arr)
    return arr


def decode(frames: Sequence[bytes | memoryview | Any], *, max_bytes: int = DEFAULT_MAX_BYTES,
           consumer_checks: Collection[str] = ()) -> Message:
    """Decode and check one message.

    Parameters
    ----------
    frames : sequence
        The frames as received: bytes, memoryviews, or ``zmq.Frame`` objects
        (anything with a ``buffer`` attribute, or exposing the buffer protocol).
    max_bytes : int
        Largest accepted message, all frames together, bytes.
    consumer_checks : collection of str
        Message kinds whose array *values* (NaN, infinities) the caller checks
        where it reads them, so that they are not read twice: a host passes
        ``("capture",)``, since its sensing checks every sample
        (:meth:`sdr_isac.capture.Capture.check_samples`).  Everything else is
        checked for every kind: frames, header, dtypes, shapes, sizes.
        :func:`check_values` runs the skipped check on such a message.

    Returns
    -------
    Message
        Arrays are read-only views of the received buffers (no copy).

    Raises
    ------
    WireFormatError
        Anything that is not a message of this schema, naming the field, the
        value and what is allowed.  No other exception escapes for any input.
    InputError
        ``consumer_checks`` is not a collection of message kinds (a
        programming error, whatever the frames).
    """
    deferred = _kinds_of(consumer_checks)
    try:
        frames = list(frames)
    except TypeError as err:
        raise WireFormatError(f"frames is a {type(frames).__name__}: allowed a sequence of frames") from err
    if not 2 <= len(frames) <= 2 + MAX_ARRAYS:
        _fail("number of frames", len(frames), f"2 ... {2 + MAX_ARRAYS} (topic, JSON header, array buffers)")
    views = [_frame_bytes(i, f) for i, f in enumerate(frames)]
    total = sum(len(v) for v in views)
    if total > max_bytes:
        _fail("message size", f"{total} bytes", f"at most {max_bytes} bytes",
              "send smaller captures or raise the receiver's max_bytes")
    header = _parse_header(views[1])
    _check_common(header)
    topic = f"{header['kind']}/{header['node_id']}".encode("ascii")
    if views[0] != topic:
        _fail("topic", bytes(views[0][:80]), f"{topic!r} (kind/node_id of the header)")
    specs = _check_specs(header.get("arrays", "missing"))
    if len(specs) != len(views) - 2:
        _fail("arrays", f"{len(specs)} entries", f"one entry per buffer frame ({len(views) - 2} buffer frames)")
    values = header["kind"] not in deferred
    arrays = tuple(_array(i, views[i + 2], dtype, shape, max_bytes, values)
                   for i, (dtype, shape) in enumerate(specs))
    parsed = _check_kind(header, specs)
    return Message(topic=topic, header=header, arrays=arrays, _parsed=parsed)


def _kinds_of(kinds: Any) -> frozenset[str]:
    """``decode``'s ``consumer_checks`` as a set of message kinds (a programming error raises InputError)."""
    try:
        out = frozenset(kinds) if not isinstance(kinds, str | bytes) else None
    except TypeError:
        out = None
    if out is None or not all(k in KINDS for k in out):
        raise InputError(f"consumer_checks = {_short(kinds)}: allowed a collection of message kinds "
                         f"({', '.join(KINDS)}), e.g. (\"capture\",)")
    return out


def check_values(msg: Message) -> None:
    """The check of array values that :func:`decode` skipped for a kind in its ``consumer_checks``.

    Raises
    ------
    WireFormatError
        Naming the first NaN or infinite value (``arrays[i][index]``).
    """
    for i, arr in enumerate(msg.arrays):
        _check_finite(i, arr)


# ---- kinds ----------------------------------------------------------------------------------
def _json_metadata(metadata: dict[Any, Any]) -> _Checked:
    """The JSON-able entries of ``metadata``; others, and structured entries (``truth``, ``ris``, ...) that do
    not follow their schema, are left out: a receiver would reject the whole capture for them.

    Each entry is converted and checked here (its tree, and its schema for the structured ones), so
    :func:`encode` neither converts the object again nor checks the entries' schemas again; it walks the tree
    once more from ``metadata`` (nesting is counted from there)."""
    out = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            continue
        try:
            item = _json_field(f"metadata.{key}", value)
            if key in _METADATA_CHECKS:
                _METADATA_CHECKS[key](item)
        except WireFormatError:
            continue
        out[key] = item
    return _Checked(out, walked=False)


def encode_capture(capture: Capture, *, extra: dict[str, Any] | None = None) -> list[bytes | memoryview]:
    """Encode a capture: kind ``capture``, its iq samples as the one buffer (no copy).

    Header fields: ``sample_rate_hz``, ``center_freq_hz``, ``frame_offset``,
    ``frame`` (the FrameConfig's fields, or None) and ``metadata`` (its
    JSON-able entries; an entry that is not, e.g. a complex array, is left
    out), plus the fields in ``extra``.  The samples are not scanned here:
    they are checked once, where they are read (:func:`decode` refuses a
    capture with a NaN or infinite sample, naming it, unless its caller checks
    them itself, as a host's sensing does; either way a host counts it
    rejected).
    """
    kept = type(capture.frame) is FrameConfig
    fields = {
        "sample_rate_hz": capture.sample_rate_hz,
        "center_freq_hz": capture.center_freq_hz,
        "frame_offset": capture.frame_offset,
        "frame": (_frame_json(capture.frame) if kept else dataclasses.asdict(capture.frame))
        if capture.frame is not None else None,
        "metadata": _json_metadata(capture.metadata),
    }
    clash = sorted(set(extra or {}) & set(fields))
    if clash:
        _fail(f"extra field {clash[0]!r}", (extra or {})[clash[0]], f"names other than {', '.join(fields)}")
    # the samples are checked once, where they are read (decode or the host's sensing), and a host counts a capture
    # with a NaN or infinite sample rejected; scanning them here too would read 4 MiB more and stop the node
    return _encode("capture", capture.node_id, capture.seq, capture.t0_s, [capture.iq], {**fields, **(extra or {})},
                   scan=False)


#: Distinct frame descriptions kept by :func:`encode_capture` and :func:`decode_capture` (a node sends one for
#: all its captures; a host hears a few nodes).
_FRAME_CACHE_SIZE = 64
#: FrameConfig object id -> (the object, its checked JSON object): what :func:`encode_capture` sends as
#: ``frame``, made once per FrameConfig a node uses.
_FRAME_JSON: dict[int, tuple[FrameConfig, _Checked]] = {}


def _frame_json(frame: FrameConfig) -> _Checked:
    """``frame``'s fields made JSON-ready and checked (:func:`_json_field`), kept for the object.

    The object is held with its entry, so its id is not reused while the entry lives; FrameConfig is frozen,
    and an instance whose fields are not all hashable (a list given where a tuple is typed, which could
    change) is converted every time instead of kept.  The kept object is only read (put into a header and
    serialised), never handed out.
    """
    hit = _FRAME_JSON.get(id(frame))
    if hit is not None and hit[0] is frame:
        return hit[1]
    value = _Checked(_json_field("frame", dataclasses.asdict(frame)), walked=True)
    try:
        hash(frame)
    except TypeError:
        return value
    if len(_FRAME_JSON) >= _FRAME_CACHE_SIZE:
        _FRAME_JSON.clear()
    _FRAME_JSON[id(frame)] = (frame, value)
    return value


def _expect_kind(msg: Message, kind: str) -> None:
    if msg.header.get("kind") != kind:
        _fail("kind", msg.header.get("kind"), repr(kind), f"pass only {kind} messages")


_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})
_MAX_FRAME_ITEMS = 4096


def _frame_key(fields: Any) -> str | None:
    """The JSON text of a header's ``frame`` object, its key in :func:`_frame_config`; None if it is not plain
    JSON of exactly the JSON types (a subclass such as ``numpy.float64``, a tuple, a key that is not a string,
    NaN, a cycle, more than 4096 items: a hand-made header), which then goes the uncached way.

    Plain JSON values have one text each (types included: ``1`` is not ``1.0`` nor ``true``), and the key is
    taken on every call, so a header changed since an earlier call gives another key, never a stale entry.
    """
    stack, seen = [fields], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > _MAX_FRAME_ITEMS:
            return None
        kind = type(item)
        if kind is dict:
            for key, sub in item.items():
                if type(key) is not str:
                    return None
                stack.append(sub)
        elif kind is list:
            stack.extend(item)
        elif kind not in _PLAIN_TYPES:
            return None
    try:
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:                                # NaN or infinity
        return None


@functools.lru_cache(maxsize=_FRAME_CACHE_SIZE)
def _frame_config(key: str) -> FrameConfig:
    """The FrameConfig of the frame object whose JSON text is ``key`` (:func:`_frame_key`), built and checked
    once per distinct text (a refusal is not kept: it raises again, with the same message, every time).

    FrameConfig is frozen and holds only numbers, strings, tuples and frozen sections, so one instance serves
    every capture with that frame.
    """
    return from_dict(FrameConfig, drop_none(json.loads(key)))


def decode_capture(msg: Message) -> Capture:
    """The :class:`~sdr_isac.capture.Capture` carried by a ``capture`` message.

    Its ``iq`` is a read-only view of the received buffer.

    Raises
    ------
    WireFormatError
        The message is not a capture, or a field is invalid (the frame
        description included), naming the field.
    """
    _expect_kind(msg, "capture")
    _check_capture_fields(msg.header)
    if len(msg.arrays) != 1:
        _fail("arrays", f"{len(msg.arrays)} arrays", "one (the iq samples)")
    h = msg.header
    frame = None
    if h["frame"] is not None:
        try:
            key = _frame_key(h["frame"])
            frame = _frame_config(key) if key is not None else from_dict(FrameConfig, drop_none(h["frame"]))
        except ConfigError as err:
            raise WireFormatError(f"frame.{err.detail} (the capture's frame description)") from err
        except (TypeError, ValueError, ArithmeticError, RecursionError) as err:
            raise WireFormatError(f"frame = {_short(h['frame'])}: allowed the fields of a valid FrameConfig "
                                  f"({type(err).__name__}: {err})") from err
    try:
        return Capture(iq=msg.arrays[0], sample_rate_hz=h["sample_rate_hz"], center_freq_hz=h["center_freq_hz"],
                       t0_s=msg.t0_s, node_id=msg.node_id, seq=msg.seq, frame=frame,
                       frame_offset=h["frame_offset"], metadata=h["metadata"])
    except InputError as err:
        raise WireFormatError(f"capture fields: {err}") from err


def encode_detections(node_id: str, seq: int, t0_s: float, detections: Sequence[Detection],
                      **fields: Any) -> list[bytes | memoryview]:
    """Encode detections: kind ``detections``, ``detections`` a list of :meth:`Detection.to_dict` objects.

    ``t0_s`` is the time of the capture they came from, s; ``fields`` are
    further header fields (for example ``truth``).
    """
    dets = []
    for i, det in enumerate(detections):
        if not isinstance(det, Detection):
            _fail(f"detections[{i}]", det, "a sdr_isac.sensing.Detection")
        dets.append(det.to_dict())
    return encode("detections", node_id, seq, t0_s=t0_s, detections=dets, **fields)


def decode_detections(msg: Message) -> list[Detection]:
    """The :class:`~sdr_isac.sensing.Detection` list of a ``detections`` message."""
    _expect_kind(msg, "detections")
    _check_kind(msg.header)
    return _detections_of(msg.header["detections"])


def _detections_of(items: list[dict[str, Any]]) -> list[Detection]:
    out = []
    for det in items:
        kwargs = dict(det)
        for name, (base, _) in _DETECTION_TYPES.items():
            if base == "float" and kwargs[name] is not None:
                kwargs[name] = float(kwargs[name])
        out.append(Detection(**kwargs))
    return out


def encode_estimates(node_id: str, seq: int, t0_s: float, estimates: Sequence[TargetEstimate],
                     details: Sequence[Mapping[str, Any] | None] | None = None,
                     **fields: Any) -> list[bytes | memoryview]:
    """Encode fused target estimates: kind ``estimates``, ``estimates`` a list of objects.

    Each :class:`~sdr_isac.fusion.records.TargetEstimate` becomes the object of
    :func:`estimate_to_dict`; ``details`` (one JSON object or None per
    estimate) adds what the wire carries beyond the record (``ris``: what a
    RIS saw, :func:`ris_details`).  ``node_id`` is the host's.
    """
    if details is not None and len(details) != len(estimates):
        raise WireFormatError(f"details has {len(details)} entries for {len(estimates)} estimates: allowed one "
                              "per estimate (or none)")
    items = [estimate_to_dict(e, **dict((details or [None] * len(estimates))[i] or {}))
             for i, e in enumerate(estimates)]
    _check_estimates(items)
    return encode("estimates", node_id, seq, t0_s=t0_s, estimates=items, **fields)


def decode_estimates(msg: Message) -> list[TargetEstimate]:
    """The validated :class:`~sdr_isac.fusion.records.TargetEstimate` records of an ``estimates`` message.

    The wire's objects (:func:`estimate_to_dict`) give planar estimates: the
    height ``position_m[2]`` is known (variance 0) unless the object has
    ``cov_position_z_m2`` (the z row of the position covariance), and ``v_z``
    is known.  An object with ``consensus`` false and no ``mode`` gets mode
    ``single``.
    """
    _expect_kind(msg, "estimates")
    items = msg.header.get("estimates")
    _check_estimates(items)
    return [_estimate_of(f"estimates[{i}]", est, msg.t0_s) for i, est in enumerate(items or [])]


def estimate_to_dict(est: TargetEstimate, **details: Any) -> dict[str, Any]:
    """The wire's (and ``fused.json``'s) object of one estimate.

    ``position_m`` ([x, y, z], m), ``cov_position_m2`` (its horizontal 2 x 2
    block, m²), ``cov_position_z_m2`` (the covariance's z row ``[c_xz, c_yz,
    var_z]``, m², only where it is not zero: a height not known), ``nodes``,
    ``single_m`` (node id -> [x, y] m, when known),
    ``consensus`` (false for mode ``single``; absent for ``ris``),
    ``velocity_mps`` ([v_x, v_y, v_z], m/s) and ``cov_velocity_mps2`` (2 x 2,
    (m/s)²) when known, with ``cov_position_velocity_m2ps`` (2 x 2, m²/s: the
    horizontal cross-covariance of position and velocity) where the estimate
    has one, ``mode`` (``micro``, ``macro_micro`` or ``ris``) and
    ``case`` (BS-UE ``A`` or ``B``) when set; ``details`` are added as they are.
    """
    out: dict[str, Any] = {"position_m": [float(v) for v in est.position_m],
                           "cov_position_m2": est.cov_position_m2[:2, :2].tolist(), "nodes": list(est.nodes)}
    if np.any(est.cov_position_m2[2] != 0):              # the height is not known (fusion.target_height_std_m)
        out["cov_position_z_m2"] = [float(v) for v in est.cov_position_m2[2]]
    if est.single_m:
        out["single_m"] = {n: [float(v) for v in xy] for n, xy in est.single_m.items()}
    if est.mode != "ris":
        out["consensus"] = est.mode != "single"
    if est.velocity_mps is not None and est.cov_velocity_mps2 is not None:
        out["velocity_mps"] = [float(v) for v in est.velocity_mps]
        out["cov_velocity_mps2"] = est.cov_velocity_mps2[:2, :2].tolist()
        if est.cov_position_velocity_m2ps is not None:
            out["cov_position_velocity_m2ps"] = est.cov_position_velocity_m2ps[:2, :2].tolist()
    if est.mode is not None and est.mode != "single":
        out["mode"] = est.mode
    if est.case is not None:
        out["case"] = est.case
    out.update(details)
    return out


def ris_details(ris_id: str, found: Any, frames: int) -> dict[str, Any]:
    """What a RIS saw of a target (``details`` of :func:`encode_estimates` for a mode ``ris`` estimate).

    ``found`` is a :class:`sdr_isac.fusion.modes.ris.RisEstimate`: range (m), radial velocity (m/s) and azimuth
    (rad) from the surface with their CRB variances, the steered SNR (dB) and the frames of the scan.
    """
    return {"ris": {"id": ris_id, "range_m": found.range_m, "velocity_mps": found.velocity_mps,
                    "azimuth_rad": found.azimuth_rad, "var_range_m2": found.var_range_m2,
                    "var_velocity_mps2": found.var_velocity_mps2, "var_azimuth_rad2": found.var_azimuth_rad2,
                    "snr_db": 10.0 * math.log10(max(found.snr_re_steered, 1e-30)), "frames": frames}}


def _estimate_of(field: str, est: dict[str, Any], t0_s: float) -> TargetEstimate:
    """The record of one checked wire object (:func:`_check_estimates`)."""
    mode = est.get("mode") or (None if est.get("consensus", True) is not False else "single")
    velocity = {}
    if est.get("velocity_mps") is not None:
        velocity = {"velocity_xy_mps": est["velocity_mps"][:2], "cov_velocity_xy_mps2": est["cov_velocity_mps2"],
                    "cov_position_velocity_xy_m2ps": est.get("cov_position_velocity_m2ps")}
    try:
        found = TargetEstimate.planar(est["position_m"][:2], est["cov_position_m2"], float(est["position_m"][2]),
                                      t_s=t0_s, nodes=tuple(est["nodes"]), mode=mode, case=est.get("case"),
                                      single_m=est.get("single_m") or {}, **velocity)
        row = est.get("cov_position_z_m2")
        if row is None:
            return found
        cov = np.array(found.cov_position_m2)
        cov[2, :] = cov[:, 2] = row
        return dataclasses.replace(found, cov_position_m2=cov)
    except InputError as err:
        _fail(field, est, f"an estimate whose covariances are symmetric positive semi-definite ({err})")


_ESTIMATE_MODES = ("micro", "macro_micro", "ris")   # fusion.modes.macro_micro.fuse_macro_micro; the host's RIS scans
_ESTIMATE_CASES = ("A", "B")                   # sdr_isac.fusion.modes.bs_ue.live_case


def _check_estimates(items: Any) -> None:
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        _fail("estimates", items, f"a list of at most {MAX_ITEMS} objects")
    for i, est in enumerate(items):
        if not isinstance(est, dict):
            _fail(f"estimates[{i}]", est, "an object with position_m, cov_position_m2 and nodes")
        pos = est.get("position_m")
        if not (isinstance(pos, list) and len(pos) == 3 and all(_finite_number(v) for v in pos)):
            _fail(f"estimates[{i}].position_m", pos, "[x, y, z], three finite numbers of m")
        for key, size in (("cov_position_m2", 2), ("cov_velocity_mps2", 2), ("cov_position_velocity_m2ps", 2)):
            cov = est.get(key)
            if cov is None and key != "cov_position_m2":
                continue
            if not (isinstance(cov, list) and len(cov) == size
                    and all(isinstance(r, list) and len(r) == size and all(_finite_number(v) for v in r)
                            for r in cov)):
                _fail(f"estimates[{i}].{key}", cov, f"a {size} x {size} list of finite numbers")
        row = est.get("cov_position_z_m2")
        if row is not None and not (isinstance(row, list) and len(row) == 3 and all(_finite_number(v) for v in row)
                                    and row[2] >= 0):
            _fail(f"estimates[{i}].cov_position_z_m2", row, "[c_xz, c_yz, var_z], three finite numbers of m² "
                  "(var_z >= 0), or absent (a known height)")
        vel = est.get("velocity_mps")
        if (vel is None) != (est.get("cov_velocity_mps2") is None):
            _fail(f"estimates[{i}].velocity_mps", vel, "given with cov_velocity_mps2, or both absent")
        if vel is not None and not (isinstance(vel, list) and len(vel) == 3 and all(_finite_number(v) for v in vel)):
            _fail(f"estimates[{i}].velocity_mps", vel, "[v_x, v_y, v_z], three finite numbers of m/s")
        if vel is None and est.get("cov_position_velocity_m2ps") is not None:
            _fail(f"estimates[{i}].cov_position_velocity_m2ps", est["cov_position_velocity_m2ps"],
                  "absent where velocity_mps is (a cross-covariance of a velocity not given)")
        nodes = est.get("nodes")
        if not (isinstance(nodes, list) and all(isinstance(n, str) for n in nodes)):
            _fail(f"estimates[{i}].nodes", nodes, "a list of node ids")
        for key, allowed in (("mode", _ESTIMATE_MODES), ("case", _ESTIMATE_CASES)):
            if key in est and est[key] not in allowed:
                _fail(f"estimates[{i}].{key}", est[key], " or ".join(repr(a) for a in allowed))
        single = est.get("single_m")
        if single is not None:
            if not isinstance(single, dict):
                _fail(f"estimates[{i}].single_m", single, "an object: node id -> [x, y] in m")
            for node, xy in single.items():
                _check_vector(f"estimates[{i}].single_m.{node}", xy, (2,), "m")
        if "consensus" in est and not isinstance(est["consensus"], bool):
            _fail(f"estimates[{i}].consensus", est["consensus"], "true or false")
        if est.get("ris") is not None and not isinstance(est["ris"], dict):
            _fail(f"estimates[{i}].ris", est["ris"], "an object (what the RIS saw)")


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# ---- status (schema version 3) ---------------------------------------------------------------------
#: States of a node at the host: sending, silent for ``stream.absent_after_heartbeats`` heartbeat intervals, or
#: done (its final heartbeat arrived).
NODE_STATES = ("present", "absent", "finished")
_MISSED_FROM = ("sequence", "rate")


@dataclass(frozen=True)
class Outage:
    """One silence of a node at the host (it sent nothing for ``stream.absent_after_heartbeats`` heartbeats).

    Attributes
    ----------
    start_s : float
        Wall-clock time (Unix epoch) of the node's last message before the silence, s.
    end_s : float or None
        Wall-clock time at which its first message after the silence arrived, s; None while it lasts.
    frames_missed : int or None
        Frames (captures or detection lists) the host did not get: from the sequence numbers when the node
        went on counting (``frames_missed_from = "sequence"``), else (a restarted node starts again at 0)
        estimated from its rate before the silence times the silence (``"rate"``); None while it lasts.
    frames_missed_from : str or None
        ``sequence`` or ``rate``; None while it lasts.
    restarted : bool
        The node's sequence numbers started again (a new process).
    """

    start_s: float
    end_s: float | None = None
    frames_missed: int | None = None
    frames_missed_from: str | None = None
    restarted: bool = False

    @property
    def duration_s(self) -> float | None:
        """``end_s - start_s``, s (None while it lasts)."""
        return None if self.end_s is None else self.end_s - self.start_s

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the wire's and ``stream_stats.json``'s)."""
        return {"start_s": self.start_s, "end_s": self.end_s, "duration_s": self.duration_s,
                "frames_missed": self.frames_missed, "frames_missed_from": self.frames_missed_from,
                "restarted": self.restarted}


@dataclass(frozen=True)
class NodeStatus:
    """What a ``status`` message says of one node: published by the host when the node's state changes.

    Attributes
    ----------
    node_id : str
    seq : int
        The host's count of status messages.
    state : str
        One of :data:`NODE_STATES`.
    last_seen_s : float or None
        Wall-clock time of the node's last message at the host, s (Unix epoch).
    absent_since_s : float or None
        While ``absent``: the start of the silence (the last message), s; else None.
    outage : Outage or None
        The outage going on (``absent``) or the one that just ended (``present`` again); else None.
    outages : int
        Outages of this node so far, the current one included.
    """

    node_id: str
    seq: int
    state: str
    last_seen_s: float | None
    absent_since_s: float | None
    outage: Outage | None
    outages: int


def encode_status(status: NodeStatus) -> list[bytes | memoryview]:
    """Encode a node's state at the host: kind ``status`` (schema version 3), topic ``status/<node>``."""
    return encode("status", status.node_id, status.seq, state=status.state, last_seen_s=status.last_seen_s,
                  absent_since_s=status.absent_since_s,
                  outage=status.outage.to_dict() if status.outage is not None else None, outages=status.outages)


def decode_status(msg: Message) -> NodeStatus:
    """The :class:`NodeStatus` of a ``status`` message."""
    _expect_kind(msg, "status")
    return _status_of(msg.header)


def _optional_time(field: str, value: Any) -> float | None:
    return None if value is None else _check_number(field, value, "s")


def _status_of(header: dict[str, Any]) -> NodeStatus:
    state = header.get("state")
    if state not in NODE_STATES:
        _fail("state", state, " or ".join(NODE_STATES))
    outage = header.get("outage")
    if outage is not None:
        if not isinstance(outage, dict):
            _fail("outage", outage, "null or an object with start_s, end_s, frames_missed, frames_missed_from")
        start = _check_number("outage.start_s", outage.get("start_s"), "s")
        end = _optional_time("outage.end_s", outage.get("end_s"))
        missed, source = outage.get("frames_missed"), outage.get("frames_missed_from")
        if end is not None and end < start:
            _fail("outage.end_s", end, f"a time >= outage.start_s = {start} s")
        if end is None and (missed is not None or source is not None):
            _fail("outage.frames_missed", missed, "null while the outage lasts (end_s null)")
        if end is not None:
            _check_count("outage.frames_missed", missed)
            if source not in _MISSED_FROM:
                _fail("outage.frames_missed_from", source, " or ".join(_MISSED_FROM))
        if not isinstance(outage.get("restarted", False), bool):
            _fail("outage.restarted", outage.get("restarted"), "true or false")
        outage = Outage(start, end, missed, source, bool(outage.get("restarted", False)))
    absent = _optional_time("absent_since_s", header.get("absent_since_s"))
    if (state == "absent") != (absent is not None) or (state == "absent") != (outage is not None and
                                                                           outage.end_s is None):
        _fail("absent_since_s", absent, "a time with an outage going on (end_s null) exactly when state is absent")
    return NodeStatus(str(header["node_id"]), int(header["seq"]), state,
                      _optional_time("last_seen_s", header.get("last_seen_s")), absent, outage,
                      _check_count("outages", header.get("outages")))


def encode_heartbeat(node_id: str, seq: int, stats: dict[str, Any]) -> list[bytes | memoryview]:
    """Encode a heartbeat: kind ``heartbeat``, ``stats`` an object of the node's counters."""
    return encode("heartbeat", node_id, seq, stats=stats)


def encode_control(node_id: str, seq: int, command: str, **fields: Any) -> list[bytes | memoryview]:
    """Encode a command: kind ``control``, ``command`` a name (``A-Z a-z 0-9 _ . -``) and its arguments."""
    return encode("control", node_id, seq, command=command, **fields)


# ---- rdmap ----------------------------------------------------------------------------------
_FLOOR_DB = -30.0           # keeps log10 finite on empty cells


def map_for_display(result: SensingResult, sensing_cfg: SensingConfig, max_cells: int
                    ) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.float64], tuple[int, int], float]:
    """A sensed map made small for a display: dB over noise, velocity ascending, cropped and max-pooled.

    The map is cropped to the reportable range (``sensing.max_range_m``, else half of the map's unambiguous
    span, as the pipeline does) plus the CFAR window, so that a display can run CFAR again on the same cells;
    a map still larger than ``max_cells`` is max-pooled in blocks of range bins (and Doppler bins if one row
    is too many), which keeps every peak but changes the noise statistics (CFAR on it is approximate).

    Returns
    -------
    power_db : ndarray, shape (R, D), float32
        Power over the mean noise power of one cell, dB, floored at -30 dB.
    range_m : ndarray, shape (R,), float64
        Range of each row (the centre of its block of pooled bins), m, ascending.
    velocity_mps : ndarray, shape (D,), float64
        Velocity of each column (the centre of its block), m/s, ascending.
    decimation : tuple of int
        Cells pooled into one, (range, Doppler).
    max_range_m : float
        The reportable range, m.

    Raises
    ------
    InputError
        The result has no map (an all-zero capture), or ``max_cells`` < 1.
    """
    rd = result.map
    if rd is None:
        raise InputError("the sensing result has no range-Doppler map (an all-zero capture): nothing to draw or "
                         "publish; skip it")
    if max_cells < 1:
        raise InputError(f"max_cells = {max_cells} cells: allowed >= 1; give the largest map to keep")
    noise = float(result.diagnostics.get("noise_var", 0.0)) * rd.noise_gain * rd.cells.shape[0]
    scale = 1.0 / noise if noise > 0 else 1.0 / max(float(np.median(rd.power)), 1e-30)
    step_m = float(rd.range_m[1] - rd.range_m[0]) if rd.range_m.size > 1 else 1.0
    span_m = step_m * rd.range_m.size if rd.complete_range else float(rd.range_m[-1]) * 2
    max_range_m = sensing_cfg.max_range_m or span_m / 2
    rows = int(np.searchsorted(rd.range_m, max_range_m, side="right"))
    rows = min(rows + sensing_cfg.guard_cells[0] + sensing_cfg.training_cells[0] + 2, rd.range_m.size)
    power, velocity = rd.power[:rows], rd.velocity_mps
    if velocity.size > 1 and velocity[-1] < velocity[0]:      # v = -f_D lambda / 2 falls along the Doppler axis
        power, velocity = power[:, ::-1], velocity[::-1]
    range_m = rd.range_m[:rows]
    k_d = max(1, math.ceil(velocity.size / max_cells))
    k_r = max(1, math.ceil(rows * math.ceil(velocity.size / k_d) / max_cells))
    if k_r > 1 or k_d > 1:
        power = _max_pool(power, k_r, k_d)
        range_m, velocity = _block_centres(range_m, k_r), _block_centres(velocity, k_d)
    db = 10 * np.log10(np.maximum(power * np.float32(scale), np.float32(10 ** (_FLOOR_DB / 10))))
    return (np.ascontiguousarray(db, dtype=np.float32), np.ascontiguousarray(range_m, dtype=np.float64),
            np.ascontiguousarray(velocity, dtype=np.float64), (k_r, k_d), float(max_range_m))


def _block_centres(axis: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """The centre of each block of ``k`` bins of a uniform axis (a display draws a pooled cell centred there; the
    first bin of the block put every peak (k - 1) / 2 bins off its marker)."""
    if k == 1 or axis.size < 2:
        return axis
    return axis[::k] + 0.5 * (k - 1) * float(axis[1] - axis[0])


def _max_pool(power: NDArray[np.float32], k_r: int, k_d: int) -> NDArray[np.float32]:
    rows, cols = math.ceil(power.shape[0] / k_r), math.ceil(power.shape[1] / k_d)
    padded = np.zeros((rows * k_r, cols * k_d), dtype=np.float32)
    padded[: power.shape[0], : power.shape[1]] = power
    return padded.reshape(rows, k_r, cols, k_d).max(axis=(1, 3))


@dataclass(frozen=True, eq=False)
class RdMap:
    """What an ``rdmap`` message carries: one node's range-Doppler map, its detections and the host's counters.

    Attributes
    ----------
    node_id : str
    seq : int
        Sequence number of the capture at its node.
    t0_s : float
        Time of the capture's first sample on the node's clock, s.
    sent_s : float
        Wall-clock time at which the host encoded the message, s (Unix epoch).
    power_db : ndarray, shape (R, D), float32
        Power of each cell over the mean noise power of one cell, dB (read-only).
    range_m : ndarray, shape (R,), float64
        Range (monostatic) or range sum (bistatic) of each row, m, strictly ascending.
    velocity_mps : ndarray, shape (D,), float64
        Velocity of each column, m/s (positive away), strictly ascending.
    geometry : str
        ``monostatic`` or ``bistatic``.
    num_channels : int
        Receive channels summed non-coherently in each cell (>= 1).
    max_range_m : float
        Largest range the node's detections may report, m (> 0).
    decimation : tuple of int
        Cells of the sensed map max-pooled into one (range, Doppler); (1, 1) when the map is whole.
    detections : list of Detection
        What the host's CFAR found with ``sensing``.
    sensing : dict
        ``pfa``, ``guard_cells``, ``training_cells`` of the host's CFAR (and more, free).
    node : dict or None
        ``position_m`` (2 or 3 numbers, m), ``yaw_deg`` (boresight, degrees from +x towards +y) and
        free fields, from the host's scene; None when the host does not know where the node is.
    stats : dict
        The node's counters at the host (:meth:`~sdr_isac.stream.host.NodeStats.to_dict`).
    truth : dict or None
        Ground truth of a simulated capture (``paths``, ``targets``), else None.
    """

    node_id: str
    seq: int
    t0_s: float
    sent_s: float
    power_db: NDArray[np.float32]
    range_m: NDArray[np.float64]
    velocity_mps: NDArray[np.float64]
    geometry: str
    num_channels: int
    max_range_m: float
    decimation: tuple[int, int]
    detections: list[Detection]
    sensing: dict[str, Any]
    node: dict[str, Any] | None
    stats: dict[str, Any]
    truth: dict[str, Any] | None


def encode_rdmap(node_id: str, seq: int, t0_s: float, power_db: NDArray[np.float32], range_m: NDArray[np.float64],
                 velocity_mps: NDArray[np.float64], detections: Sequence[Detection], *, geometry: str,
                 num_channels: int, max_range_m: float, sensing: dict[str, Any], stats: dict[str, Any],
                 decimation: tuple[int, int] = (1, 1), node: dict[str, Any] | None = None,
                 truth: dict[str, Any] | None = None) -> list[bytes | memoryview]:
    """Encode a map: kind ``rdmap`` (schema version 2), three buffers ``power_db``, ``range_m``, ``velocity_mps``.

    See :class:`RdMap` for the meaning, unit and shape of each argument.  The axes must be strictly ascending.

    Raises
    ------
    WireFormatError
        A value the receiver would reject, naming the field.
    """
    power = np.asarray(power_db, dtype=np.float32)
    axes = [np.asarray(range_m, dtype=np.float64), np.asarray(velocity_mps, dtype=np.float64)]
    _check_axes(axes[0], axes[1])
    dets = []
    for i, det in enumerate(detections):
        if not isinstance(det, Detection):
            _fail(f"detections[{i}]", det, "a sdr_isac.sensing.Detection")
        dets.append(det.to_dict())
    return encode("rdmap", node_id, seq, t0_s=t0_s, arrays=[power, *axes], geometry=geometry,
                  num_channels=num_channels, max_range_m=max_range_m, decimation=list(decimation), detections=dets,
                  sensing=sensing, node=node, stats=stats, truth=truth)


def _check_axes(range_m: NDArray[np.float64], velocity_mps: NDArray[np.float64]) -> None:
    for name, axis in (("range_m", range_m), ("velocity_mps", velocity_mps)):
        if axis.ndim != 1 or (axis.size > 1 and not np.all(np.diff(axis) > 0)):
            _fail(name, axis[:4].tolist(), "a 1-D axis, strictly ascending", "flip the map and its axis together")


def decode_rdmap(msg: Message) -> RdMap:
    """The :class:`RdMap` of an ``rdmap`` message (arrays are read-only views of the received buffers).

    Raises
    ------
    WireFormatError
        The message is not an ``rdmap``, a field is invalid, or an axis is not strictly ascending.
    """
    _expect_kind(msg, "rdmap")
    _check_kind(msg.header)
    if len(msg.arrays) != 3:
        _fail("arrays", f"{len(msg.arrays)} arrays", "three (power_db, range_m, velocity_mps)")
    h = msg.header
    power, range_m, velocity = msg.arrays
    _check_axes(range_m, velocity)
    truth = h.get("truth")
    node = h.get("node")
    return RdMap(node_id=msg.node_id, seq=msg.seq, t0_s=msg.t0_s, sent_s=msg.sent_s, power_db=power,
                 range_m=range_m, velocity_mps=velocity, geometry=h["geometry"], num_channels=h["num_channels"],
                 max_range_m=float(h["max_range_m"]), decimation=_check_cells("decimation", h["decimation"], 1),
                 detections=_detections_of(h["detections"]), sensing=dict(h["sensing"]),
                 node=dict(node) if node is not None else None, stats=dict(h["stats"]),
                 truth=truth if isinstance(truth, dict) else None)


# ---- tracks ---------------------------------------------------------------------------------------
#: Most positions of a track's history tail on the wire (``tail_t_s``, ``tail_position_m``: for displays).
MAX_TAIL = 64
_MAX_TRACK_LIST = 256           # stations and handovers of one track
_MAX_REASON_CHARS = 256
#: A covariance is positive definite on the wire when its smallest eigenvalue exceeds this times its largest
#: (condition number below 1e12: the track fusion inverts it).
_MIN_EIGEN_RATIO = 1e-12
_STATE_NAMES = "[x, y, z, v_x, v_y, v_z] (m, m/s)"


@dataclass(frozen=True, eq=False)
class TrackSet:
    """What a ``tracks`` message carries: the current tracks of one host (a MECS host or the core) at one time.

    Attributes
    ----------
    node_id : str
        The publishing host.
    seq : int
        The host's count of ``tracks`` messages.
    t0_s : float
        Time of the set on the host's data clock, s; no track's ``t_s`` is later.
    sent_s : float
        Wall-clock time at which the host encoded the message, s (Unix epoch).
    tracks : tuple of Track
        One record per track with one state, the latest: ``t_s`` shape (1,), ``states`` shape (1, 6)
        float64 (x, y, z m; v_x, v_y, v_z m/s), ``covariances`` shape (1, 6, 6) float64, symmetric positive
        definite; ``stations``, ``handovers``, ``status`` as sent.
    tails : dict
        Track id -> ``(t_s, position_m)``: the positions before the latest state, oldest first, ``t_s`` shape
        (M,) float64 strictly increasing and before the track's ``t_s``, ``position_m`` shape (M, 3) float64,
        M <= :data:`MAX_TAIL`; only for tracks sent with a tail.
    members : dict
        Track id -> {MECS host id: its local track id}: the local tracks a core host fused into the track;
        only for tracks sent with members.
    """

    node_id: str
    seq: int
    t0_s: float
    sent_s: float
    tracks: tuple[Track, ...]
    tails: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]
    members: dict[str, dict[str, str]]


def track_to_dict(track: Track, tail: int = 0, members: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The wire's (and ``tracks.json``'s) object of one track: its latest state, and its history tail.

    Parameters
    ----------
    track : Track
        At least one state; the last one is sent, its covariance made exactly symmetric
        (``(P + P^T) / 2``).
    tail : int
        Positions of the states before the latest to send as ``tail_t_s`` / ``tail_position_m``,
        0 ... :data:`MAX_TAIL` (fewer when the track has fewer).
    members : mapping, optional
        MECS host id -> local track id (a core host's global track).

    Raises
    ------
    WireFormatError
        ``track`` is not a Track or has no state, or ``tail`` is out of range.
    """
    if not isinstance(track, Track):
        _fail("track", track, "a sdr_isac.fusion.records.Track")
    if track.num_states < 1:
        _fail(f"track {track.track_id!r} states", "0 states", "at least one state (the latest is sent)")
    if not _is_int(tail) or not 0 <= tail <= MAX_TAIL:
        _fail("tail", tail, f"an integer 0 ... {MAX_TAIL} (positions of the history sent with each track)")
    cov = track.covariances[-1]
    out: dict[str, Any] = {
        "id": track.track_id, "status": track.status, "t_s": float(track.t_s[-1]),
        "state": [float(v) for v in track.states[-1]], "covariance": ((cov + cov.T) / 2).tolist(),
        "stations": list(track.stations),
        "handovers": [{"t_s": h.t_s, "from": h.from_station, "to": h.to_station, "reason": h.reason}
                      for h in track.handovers]}
    if tail:
        first = max(track.num_states - 1 - tail, 0)
        out["tail_t_s"] = [float(t) for t in track.t_s[first:-1]]
        out["tail_position_m"] = track.states[first:-1, :3].tolist()
    if members is not None:
        out["members"] = dict(members)
    if track.measured is not None:
        out["measured"] = bool(track.measured[-1])
    return out


def encode_tracks(node_id: str, seq: int, t0_s: float, tracks: Sequence[Track], *, tail: int = 0,
                  members: Mapping[str, Mapping[str, str]] | None = None, **fields: Any) -> list[bytes | memoryview]:
    """Encode the current tracks of one host: kind ``tracks`` (schema version 1), topic ``tracks/<node_id>``.

    Parameters
    ----------
    node_id : str
        The publishing host (a MECS host's id, or ``core``).
    seq : int
        The host's count of ``tracks`` messages, 0 ... 2**63 - 1.
    t0_s : float
        Time of the set on the host's data clock, s: at or after every track's latest state.
    tracks : sequence of Track
        At most :data:`MAX_ITEMS` tracks with distinct ids; each sends its latest state and covariance
        (symmetric positive definite), stations, handovers and status (:func:`track_to_dict`).
    tail : int
        History positions sent with each track (for displays), 0 ... :data:`MAX_TAIL`.
    members : mapping, optional
        Track id -> {MECS host id: local track id}, for the tracks a core host fused.
    **fields
        Further header fields.

    Raises
    ------
    WireFormatError
        A value the receiver would reject (a covariance that is not positive definite, a track time after
        ``t0_s``, ...), naming the field.
    """
    members = members or {}
    items = [track_to_dict(t, tail, members.get(t.track_id) if isinstance(t, Track) else None) for t in tracks]
    return encode("tracks", node_id, seq, t0_s=t0_s, tracks=items, **fields)


def decode_tracks(msg: Message) -> TrackSet:
    """The :class:`TrackSet` of a ``tracks`` message.

    Raises
    ------
    WireFormatError
        The message is not a ``tracks`` message, or a field is invalid, naming the field.
    """
    _expect_kind(msg, "tracks")
    tracks, tails, members = msg._parsed if msg._parsed is not None else _tracks_of(msg.header)
    return TrackSet(node_id=msg.node_id, seq=msg.seq, t0_s=msg.t0_s, sent_s=msg.sent_s, tracks=tuple(tracks),
                    tails=tails, members=members)


def _tracks_of(header: dict[str, Any]) -> tuple[list[Track], dict[str, tuple[NDArray[np.float64],
                                                                              NDArray[np.float64]]],
                                                 dict[str, dict[str, str]]]:
    """Check the ``tracks`` field all the way down and build the records."""
    items = header.get("tracks", "missing")
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        _fail("tracks", items, f"a list of at most {MAX_ITEMS} track objects")
    t0_s = float(header["t0_s"])
    tracks, tails, members = [], {}, {}
    seen: set[str] = set()
    for i, item in enumerate(items):
        field = f"tracks[{i}]"
        if not isinstance(item, dict):
            _fail(field, item, "an object with id, status, t_s, state, covariance, stations and handovers")
        track_id = _check_id(f"{field}.id", item.get("id"))
        if track_id in seen:
            _fail(f"{field}.id", track_id, "ids unique within the message", "send each track once")
        seen.add(track_id)
        if item.get("status") not in TRACK_STATUSES:
            _fail(f"{field}.status", item.get("status", "missing"), " or ".join(TRACK_STATUSES))
        t_s = _check_number(f"{field}.t_s", item.get("t_s"), "s")
        if t_s > t0_s:
            _fail(f"{field}.t_s", t_s, f"a time <= t0_s = {t0_s!r} s (the message's time)",
                  "stamp the message with the time of its newest state")
        state = item.get("state")
        if not (isinstance(state, list) and len(state) == 6):
            _fail(f"{field}.state", state, f"a list of 6 finite numbers {_STATE_NAMES}")
        state_arr = np.array([_check_number(f"{field}.state[{k}]", v, "m or m/s") for k, v in enumerate(state)])
        cov = _check_track_covariance(f"{field}.covariance", item.get("covariance", "missing"))
        stations = _check_ids(f"{field}.stations", item.get("stations", "missing"))
        handovers = _check_handovers(f"{field}.handovers", item.get("handovers", "missing"), t_s)
        tail = _check_tail(field, item, t_s)
        if tail is not None:
            tails[track_id] = tail
        if item.get("members") is not None:
            members[track_id] = _check_members(f"{field}.members", item["members"])
        measured = item.get("measured")
        if measured is not None and not isinstance(measured, bool):
            _fail(f"{field}.measured", measured, "true (the latest state was updated with a measurement), false "
                  "(it was predicted) or null", "send a JSON boolean, or leave the key out")
        try:
            tracks.append(Track(track_id, np.array([t_s]), state_arr[None, :], cov[None, :, :], stations, handovers,
                                item["status"], None if measured is None else np.array([measured])))
        except InputError as err:
            raise WireFormatError(f"{field}: {err}") from err
    return tracks, tails, members


def _check_ids(field: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > _MAX_TRACK_LIST:
        _fail(field, value, f"a list of at most {_MAX_TRACK_LIST} station ids")
    return tuple(_check_id(f"{field}[{k}]", v) for k, v in enumerate(value))


def _check_track_covariance(field: str, value: Any) -> NDArray[np.float64]:
    """A 6 x 6 list of finite numbers, symmetric (within 1e-9 of its largest entry), positive definite."""
    if not (isinstance(value, list) and len(value) == 6 and all(isinstance(r, list) and len(r) == 6 for r in value)):
        _fail(field, value, f"a 6 x 6 list of lists of finite numbers (the covariance of {_STATE_NAMES})")
    cov = np.array([[_check_number(f"{field}[{r}][{c}]", v, "m² or m²/s or m²/s²") for c, v in enumerate(row)]
                    for r, row in enumerate(value)])
    scale = float(np.max(np.abs(cov)))
    if scale == 0.0:
        _fail(field, "all zeros", "a positive-definite covariance", "give every state component its variance")
    unit = cov / scale                                    # entries in [-1, 1]: nothing below overflows
    asym = float(np.max(np.abs(unit - unit.T)))
    if asym > 1e-9:
        _fail(field, f"asymmetry {asym * scale:.3g} (largest |P - P^T| entry)",
              "a symmetric covariance (|P - P^T| <= 1e-9 x its largest entry)", "send (P + P^T) / 2")
    try:
        eig = np.linalg.eigvalsh((unit + unit.T) / 2)
    except np.linalg.LinAlgError as err:
        raise WireFormatError(f"{field}: eigenvalues do not converge ({err}); allowed a positive-definite "
                              "covariance") from err
    if not eig[0] > _MIN_EIGEN_RATIO * eig[-1]:
        _fail(field, f"smallest eigenvalue {eig[0] * scale:.3g}, largest {eig[-1] * scale:.3g}",
              f"a positive-definite covariance (smallest eigenvalue > {_MIN_EIGEN_RATIO:g} x the largest)",
              "give every state component a positive variance")
    return cov


def _check_handovers(field: str, value: Any, t_s: float) -> tuple[Handover, ...]:
    if not isinstance(value, list) or len(value) > _MAX_TRACK_LIST:
        _fail(field, value, f"a list of at most {_MAX_TRACK_LIST} objects with t_s, from, to and reason")
    out: list[Handover] = []
    for k, item in enumerate(value):
        where = f"{field}[{k}]"
        if not isinstance(item, dict):
            _fail(where, item, "an object with t_s, from, to and reason")
        when = _check_number(f"{where}.t_s", item.get("t_s"), "s")
        if out and when < out[-1].t_s:
            _fail(f"{where}.t_s", when, f"a time >= the previous handover's {out[-1].t_s!r} s (in time order)")
        if when > t_s:
            _fail(f"{where}.t_s", when, f"a time <= the track's t_s = {t_s!r} s")
        reason = item.get("reason")
        if not isinstance(reason, str) or len(reason) > _MAX_REASON_CHARS:
            _fail(f"{where}.reason", reason, f"a string of at most {_MAX_REASON_CHARS} characters")
        out.append(Handover(when, _check_id(f"{where}.from", item.get("from")),
                            _check_id(f"{where}.to", item.get("to")), reason))
    return tuple(out)


def _check_tail(field: str, item: dict[str, Any], t_s: float
                ) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    times, positions = item.get("tail_t_s"), item.get("tail_position_m")
    if times is None and positions is None:
        return None
    if not isinstance(times, list) or len(times) > MAX_TAIL:
        _fail(f"{field}.tail_t_s", times, f"a list of at most {MAX_TAIL} times in s, with tail_position_m")
    if not isinstance(positions, list) or len(positions) != len(times):
        _fail(f"{field}.tail_position_m", positions, f"a list of {len(times)} [x, y, z] positions in m "
              "(one per tail_t_s)")
    t = np.array([_check_number(f"{field}.tail_t_s[{k}]", v, "s") for k, v in enumerate(times)], dtype=np.float64)
    for k in range(t.size):
        limit, what = (t[k + 1], "the next tail time") if k + 1 < t.size else (t_s, "the track's t_s")
        if not t[k] < limit:
            _fail(f"{field}.tail_t_s[{k}]", float(t[k]), f"a time < {what} = {float(limit)!r} s (oldest first)")
    pos = np.zeros((t.size, 3))
    for k, p in enumerate(positions):
        _check_vector(f"{field}.tail_position_m[{k}]", p, (3,), "m")
        pos[k] = p
    t.flags.writeable = False
    pos.flags.writeable = False
    return t, pos


def _check_members(field: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > _MAX_TRACK_LIST:
        _fail(field, value, f"an object of at most {_MAX_TRACK_LIST} entries: MECS host id -> local track id")
    return {_check_id(f"{field} key", k): _check_id(f"{field}.{k}", v) for k, v in value.items()}
