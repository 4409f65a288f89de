"""Property tests of ``wire.decode`` and its helpers on arbitrary frames (issue 13, item 1 and 2).

Every input must end in one of two ways: :class:`WireFormatError`, or a message that the independent
oracle (``tests/stream/wire_oracle.py``) finds consistent with its frames, whose every ``decode_<kind>``
helper raises WireFormatError or returns records that check against the header and that the host's
consumers can use.  The strategies give the edges explicitly (hypothesis draws small values otherwise):
dimensions 0, 1, 2**31, 2**62, 2**63 - 1, -1 and beyond, mixed in one shape; wrong JSON types at every
key of every kind's header, nested ones included; NaN and Infinity tokens; huge integers; truncated,
padded and empty buffers.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sdr_isac.errors import WireFormatError
from sdr_isac.stream import wire
from tests.stream import wire_oracle as oracle

SAMPLES = oracle.sample_messages()
PROPS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Dimensions: the edges of a 64-bit size, zero, one, negatives and beyond 64 bits.
EDGE_DIMS = [0, 1, 2, 3, 7, 2**31 - 1, 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64, -1, -(2**63)]
#: Values that replace a header value: every JSON type, its edges, and the wrong types.
EDGE_VALUES: list[Any] = [None, True, False, 0, 1, -1, 2.5, -2.5, 1e-300, 2**31, 2**62, 2**63 - 1, 2**63,
                          -(2**63) - 1, 2**64, 10**30, 1e308, math.inf, -math.inf, math.nan, "", "x", "1", "2.5",
                          "NaN", "capture", "monostatic", "target", [], [1, 2], [None], [1.0, 2.0, 3.0],
                          ["a", "b"], {}, {"a": 1}, {"paths": 1}, [[[]]], [{"kind": 5}], {"kind": "target"}]
_KEYS = ["paths", "targets", "kind", "target", "position_m", "velocity_mps", "range_m", "snr_per_re_db", "id",
         "scan_index", "scan_size", "steer_deg", "incoming_deg", "start_s", "end_s", "frames_missed",
         "frames_missed_from", "dtype", "shape", "range_var_m2", "geometry", "angle_rad", "nodes", "single_m",
         "cov_position_m2", "final", "captured", "truth", "ris", "radio", "replay"]

dims = st.sampled_from(EDGE_DIMS) | st.integers(0, 40)
odd_dims = st.sampled_from([None, "3", 2.5, True, False, [], {}, math.inf, math.nan, 1.0])
shapes = (st.lists(dims, max_size=4) | st.lists(dims | odd_dims, max_size=10)
          | st.sampled_from([None, "4,16", 3, {}, True, [[1, 2]]]))
dtypes = (st.sampled_from(list(oracle.LAYOUT))
          | st.sampled_from(["float16", "object", "O", "<c8", ">f8", "", None, 3, True, [], {}, "complex64 "]))
buffer_how = st.sampled_from(["exact", "exact", "exact", "truncate", "pad", "empty", "random"])
json_values = st.recursive(
    st.sampled_from(EDGE_VALUES) | st.text(max_size=5) | st.floats() | st.integers(-(2**70), 2**70),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=4), c, max_size=5),
    max_leaves=12)


def _check(frames: list[bytes]) -> None:
    """The property: WireFormatError, or a message consistent with its frames whose helpers behave."""
    try:
        msg = wire.decode(frames)
    except WireFormatError:
        return
    found = oracle.problems(msg, frames) + oracle.helper_problems(msg)
    assert not found, found


def _fix_topic(frames: list[bytes], header: Any) -> None:
    if isinstance(header, dict) and isinstance(header.get("kind"), str) and isinstance(header.get("node_id"), str):
        frames[0] = f"{header['kind']}/{header['node_id']}".encode("utf-8", "surrogatepass")


def _itemsize(dtype: str) -> int:
    import numpy as np

    return np.dtype(oracle.LAYOUT[dtype]).itemsize


# ---- the class of the reproducer, deterministic -----------------------------------------------------
ZERO_AND_HUGE = [[1, 0, 2**62], [0, 2**63 - 1], [2**62, 0], [2**63 - 1, 0, 2**63 - 1], [0, 2**31, 2**31, 2**31],
                 [0] + [2**31 - 1] * 7, [3, 0, 2**40], [0, 2**32]]


@pytest.mark.parametrize("dtype", list(oracle.LAYOUT))
@pytest.mark.parametrize("shape", ZERO_AND_HUGE, ids=str)
def test_a_zero_dimension_does_not_make_huge_ones_free(dtype: str, shape: list[int]) -> None:
    frames = list(SAMPLES["tracks"])
    header = json.loads(frames[1])
    header["arrays"] = [{"dtype": dtype, "shape": shape}]
    frames[1:] = [json.dumps(header).encode(), b""]
    with pytest.raises(WireFormatError, match=r"^arrays\[0\]\.shape = \[.*: allowed dimensions whose product "
                                              r"without the zeros, times \d+ bytes .* is at most \d+ bytes"):
        wire.decode(frames)


@pytest.mark.parametrize("shape", [[0], [5, 0], [0, 3, 1000], [2, 0, 2, 0]], ids=str)
def test_zero_sized_arrays_of_fitting_shapes_still_decode(shape: list[int]) -> None:
    frames = list(SAMPLES["tracks"])
    header = json.loads(frames[1])
    header["arrays"] = [{"dtype": "complex64", "shape": shape}]
    frames[1:] = [json.dumps(header).encode(), b""]
    msg = wire.decode(frames)
    assert list(msg.arrays[0].shape) == shape and msg.arrays[0].size == 0


# ---- arbitrary arrays ---------------------------------------------------------------------------------
@PROPS
@example(kind="tracks", specs=[("complex64", [1, 0, 2**62])], hows=["exact"], seed=0)
@example(kind="capture", specs=[("complex64", [0, 2**63 - 1])], hows=["exact"], seed=0)
@example(kind="rdmap", specs=[("float32", [2**62, 0]), ("float64", [2**62]), ("float64", [0])],
         hows=["empty"] * 3, seed=0)
@given(kind=st.sampled_from(["tracks", "capture", "rdmap", "detections"]),
       specs=st.lists(st.tuples(dtypes, shapes), max_size=4), hows=st.lists(buffer_how, min_size=4, max_size=4),
       seed=st.integers(0, 2**16))
def test_arbitrary_array_specs_and_buffers(kind: str, specs: list[tuple[Any, Any]], hows: list[str],
                                           seed: int) -> None:
    import random

    rnd = random.Random(seed)
    frames = list(SAMPLES[kind])
    header = json.loads(frames[1])
    header["arrays"] = [{"dtype": d, "shape": s} for d, s in specs]
    buffers = []
    for (dtype, shape), how in zip(specs, hows):
        size = None
        if isinstance(dtype, str) and dtype in oracle.LAYOUT and isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape) \
                and math.prod(shape) <= 4096:
            size = math.prod(shape) * _itemsize(dtype)
        if size is None or how == "random":
            size = rnd.randrange(0, 64)
        elif how == "truncate":
            size = max(size - rnd.randrange(1, 9), 0)
        elif how == "pad":
            size += rnd.randrange(1, 9)
        elif how == "empty":
            size = 0
        buffers.append(bytes(rnd.randrange(256) for _ in range(size)) if dtype != "bool" else
                       bytes(rnd.randrange(2) for _ in range(size)))
    frames[1:] = [json.dumps(header).encode(), *buffers]
    _check(frames)


# ---- wrong values at every key of every kind, nested ones included -------------------------------------
def _key_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    if isinstance(value, dict):
        for key, sub in value.items():
            out.append((*prefix, key))
            out.extend(_key_paths(sub, (*prefix, key)))
    elif isinstance(value, list):
        for i, sub in enumerate(value[:4]):
            out.append((*prefix, i))
            out.extend(_key_paths(sub, (*prefix, i)))
    return out


TARGETS = [(name, path) for name in sorted(SAMPLES) for path in _key_paths(json.loads(SAMPLES[name][1]))
           if path[0] != "sent_s" or len(path) > 1]


def _replaced(name: str, path: tuple[Any, ...], value: Any, delete: bool) -> list[bytes]:
    frames = list(SAMPLES[name])
    header = json.loads(frames[1])
    parent = header
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    frames[1] = json.dumps(header).encode()        # NaN / Infinity tokens and huge integers as they come
    _fix_topic(frames, header)
    return frames


@PROPS
@example(target=("detections", ("truth",)), value=[1, 2], delete=False)          # the reproducer of item 2
@example(target=("rdmap", ("truth", "paths", 0)), value=[1, 2], delete=False)
@example(target=("capture", ("metadata", "truth", "targets", 0, "position_m")), value="x", delete=False)
@example(target=("capture", ("metadata", "ris", 0, "scan_size")), value=0, delete=False)
@example(target=("detections", ("truth", "paths", 0, "snr_per_re_db")), value=None, delete=True)
@example(target=("status-back", ("outage", "frames_missed")), value=2.5, delete=False)
@example(target=("heartbeat", ("stats", "final")), value="yes", delete=False)
@example(target=("estimates", ("estimates", 0, "single_m")), value=[1, 2], delete=False)
@example(target=("estimates", ("estimates", 0, "cov_position_m2", 0, 0)), value=2**63 - 1, delete=False)   # records
@given(target=st.sampled_from(TARGETS), value=st.sampled_from(EDGE_VALUES) | json_values, delete=st.booleans())
def test_every_header_key_with_edge_values(target: tuple[str, tuple[Any, ...]], value: Any, delete: bool) -> None:
    name, path = target
    _check(_replaced(name, path, value, delete and not isinstance(path[-1], int)))


STRUCTURED = [("detections", ("truth",)), ("detections", ("detections",)), ("rdmap", ("truth",)),
              ("rdmap", ("node",)), ("rdmap", ("sensing",)), ("capture", ("metadata",)),
              ("capture", ("metadata", "truth")), ("capture", ("metadata", "ris")), ("estimates", ("estimates",)),
              ("status-back", ("outage",)), ("status-absent", ("outage",)), ("heartbeat", ("stats",)),
              ("detections", ("truth", "paths")), ("rdmap", ("truth", "targets")), ("capture", ("frame",))]


@PROPS
@given(target=st.sampled_from(STRUCTURED), value=json_values)
def test_nested_garbage_in_structured_fields(target: tuple[str, tuple[Any, ...]], value: Any) -> None:
    name, path = target
    _check(_replaced(name, path, value, False))


@PROPS
@given(name=st.sampled_from(sorted(SAMPLES)), cut=st.integers(0, 2**16), pad=st.binary(max_size=16),
       how=st.sampled_from(["truncate", "pad", "empty", "flip"]))
def test_truncated_padded_and_flipped_buffers(name: str, cut: int, pad: bytes, how: str) -> None:
    frames = list(SAMPLES[name])
    if len(frames) == 2:                                # no buffer: the header itself
        i = 1
    else:
        i = 2 + cut % (len(frames) - 2)
    data = frames[i]
    if how == "truncate":
        frames[i] = data[:cut % max(len(data), 1)]
    elif how == "pad":
        frames[i] = data + (pad or b"\0")
    elif how == "empty":
        frames[i] = b""
    elif data:
        flipped = bytearray(data)
        flipped[cut % len(data)] ^= 1 + cut % 255
        frames[i] = bytes(flipped)
    _check(frames)
