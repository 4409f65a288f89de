"""The wire's shortcuts change nothing a peer can see: the one-pass finiteness check, the header walk skipped
when it cannot fail, and the frame descriptions kept per FrameConfig (encode) and per frame text (decode).

Each shortcut is checked against an independent computation: ``numpy.isfinite`` for the finiteness check,
the exhaustive parse-and-walk for the header, ``config.from_dict`` and ``dataclasses.asdict`` for the frame
descriptions; changed, type-shifted, mutated and malformed frames never meet a stale entry.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdr_isac import config
from sdr_isac.capture import Capture
from sdr_isac.errors import ConfigError, WireFormatError
from sdr_isac.stream import wire

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
F32_MAX = float(np.finfo(np.float32).max)
F64_MAX = float(np.finfo(np.float64).max)


def _bytes(frames: list[Any]) -> list[bytes]:
    return [bytes(f) for f in frames]


def _capture(frame: config.FrameConfig | None, seq: int = 0) -> Capture:
    iq = np.arange(8, dtype=np.float32).view(np.complex64).reshape(1, 4)
    return Capture(iq, 30.72e6, 3.5e9, t0_s=1.0, node_id="bs0", seq=seq, frame=frame)


def _carrying(arr: np.ndarray) -> list[bytes]:
    """A message whose one buffer holds ``arr``'s bytes, made without encode's own check (a peer's bytes)."""
    frames = _bytes(wire.encode("tracks", "n", 0, tracks=[], arrays=[np.zeros(arr.shape, arr.dtype)]))
    frames[2] = np.ascontiguousarray(arr).tobytes()
    return frames


def _with_frame(frames: list[bytes], frame: Any) -> list[bytes]:
    out = list(frames)
    header = json.loads(out[1])
    header["frame"] = frame
    out[1] = json.dumps(header).encode()
    return out


# ---- the finiteness check: one pass, exact -----------------------------------------------------------
@pytest.mark.parametrize("dtype, big", [("float32", F32_MAX), ("complex64", F32_MAX), ("float64", F64_MAX),
                                        ("complex128", F64_MAX)])
def test_finite_values_whose_sum_overflows_pass(dtype: str, big: float) -> None:
    """All finite, yet their sum overflows (the one-pass sum is not finite): the exact test lets them through."""
    n = 4096
    arr = np.full(n, big, dtype=dtype)
    arr[1::2] = -big if np.dtype(dtype).kind == "f" else -big - 1j * big   # +inf and -inf partial sums: NaN
    arr[: n // 2] = big                                                     # and a run that overflows alone
    assert np.isfinite(arr).all()
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.einsum("i->", arr.view(arr.real.dtype))
    assert not math.isfinite(total)                                         # the shortcut alone would refuse
    msg = wire.decode(_carrying(arr))
    np.testing.assert_array_equal(msg.arrays[0], arr)
    wire.encode("tracks", "n", 0, tracks=[], arrays=[arr])


bad_or_big = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, 1.0])


@FUZZ
@given(dtype=st.sampled_from(["float32", "float64", "complex64", "complex128"]),
       size=st.integers(0, 300), data=st.data())
def test_one_pass_check_agrees_with_isfinite_at_the_overflow_edge(dtype: str, size: int, data: st.DataObject) -> None:
    """Values at the dtype's largest magnitude (sums overflow), mixed with NaN, infinities, zeros and
    subnormals: accepted exactly when ``numpy.isfinite`` says so, and the first bad element named."""
    real = np.dtype(dtype).kind == "f"
    top = F32_MAX if dtype in ("float32", "complex64") else F64_MAX
    values = st.sampled_from([top, -top]) | bad_or_big
    parts = np.array(data.draw(st.lists(values, min_size=2 * size, max_size=2 * size)), dtype=np.float64)
    if real:
        arr = parts[:size].astype(dtype)
    else:
        arr = np.empty(size, dtype)
        arr.real, arr.imag = parts[:size], parts[size:]
    finite = np.isfinite(arr)
    if finite.all():
        np.testing.assert_array_equal(wire.decode(_carrying(arr)).arrays[0], arr)
        wire.encode("tracks", "n", 0, tracks=[], arrays=[arr])
        return
    first = int(np.flatnonzero(~finite)[0])
    with pytest.raises(WireFormatError, match=rf"^arrays\[0\]\[{first}\] = .*allowed finite values"):
        wire.decode(_carrying(arr))
    with pytest.raises(WireFormatError, match=rf"^arrays\[0\]\[{first}\] = .*replace NaN"):
        wire.encode("tracks", "n", 0, tracks=[], arrays=[arr])


# ---- the header walk, skipped when it cannot fail -------------------------------------------------------
def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise WireFormatError(f"header key = {key!r}: allowed each key once per object")
        out[key] = value
    return out


def _exhaustive(raw: bytes) -> dict[str, Any] | str:
    """The header as decode read it before the shortcuts (``json.loads`` with the checks as hooks, then the
    walk, always), or its refusal's words."""
    try:
        try:
            header = json.loads(raw.decode("utf-8"), parse_constant=wire._reject_constant,
                                parse_float=wire._parse_float, parse_int=wire._parse_int, object_pairs_hook=_unique)
        except WireFormatError:
            raise
        except UnicodeDecodeError as err:
            raise WireFormatError(f"header = {wire._short(raw[:80])}: allowed UTF-8 text ({err.reason} at byte "
                                  f"{err.start}); the second frame must be the JSON header") from err
        except (ValueError, RecursionError) as err:
            raise WireFormatError(f"header = {wire._short(raw[:80])}: allowed one JSON object ({err}); the second "
                                  "frame must be the JSON header") from err
        if not isinstance(header, dict):
            raise WireFormatError(f"header = {wire._short(header)}: allowed a JSON object")
        wire._check_tree(header, "header")
    except WireFormatError as err:
        return str(err)
    return header


def _shortcut(raw: bytes) -> dict[str, Any] | str:
    try:
        return wire._parse_header(memoryview(raw))
    except WireFormatError as err:
        return str(err)


def _nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize("raw, pattern", [
    (b'{"a":"\\ud800"}', r"^header\.a = '\\ud800': allowed valid Unicode text"),
    (b'{"\\udfff":1}', r"^header\.\udfff = '\\udfff': allowed valid Unicode text"),
    (b'{"a":["x","\\uDBFF"]}', r"^header\.a\[1\] = '\\udbff': allowed valid Unicode text"),
    (json.dumps({"a": _nested(32)}).encode(), r"nested at most 32 deep"),
])
def test_header_refusals_of_the_walk_remain(raw: bytes, pattern: str) -> None:
    assert re.search(pattern, str(_exhaustive(raw)))
    with pytest.raises(WireFormatError, match=pattern):
        wire._parse_header(memoryview(raw))


def test_nesting_at_the_limit_passes_with_and_without_the_walk() -> None:
    for depth in (30, 31):                                           # the root object counts as one level
        raw = json.dumps({"a": _nested(depth)}).encode()
        assert _shortcut(raw) == _exhaustive(raw) == json.loads(raw)


@pytest.mark.parametrize("depth", [30, 31, 32, 40])
def test_many_containers_and_one_deep_path(depth: int) -> None:
    """More brackets than the depth limit (a simulated capture's ground truth has dozens): the depth is looked
    for among the containers, and a path at the limit refused in the walk's words."""
    raw = json.dumps({"truth": {"paths": [{"position_m": [1.0, 2.0, 3.0], "kind": "target"}] * 40},
                      "deep": _nested(depth)}).encode()
    assert raw.count(b"[") + raw.count(b"{") > wire.MAX_DEPTH
    expected = _exhaustive(raw)
    assert _shortcut(raw) == expected
    assert isinstance(expected, str) == (depth >= 32)                  # the root object is level 0


json_leaf = (st.none() | st.booleans() | st.integers(-(2**64), 2**64)
             | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=6)
             | st.sampled_from(["\ud800", "a\udfffb", "\U0001f600", "[{", "\\u"]))
json_tree = st.recursive(json_leaf, lambda sub: st.lists(sub, max_size=4)
                         | st.dictionaries(st.text(max_size=4) | st.just("\udc80"), sub, max_size=4), max_leaves=40)


@FUZZ
@given(value=json_tree, ascii_only=st.booleans(), deep=st.integers(0, 40))
def test_the_header_shortcut_equals_the_exhaustive_walk(value: Any, ascii_only: bool, deep: int) -> None:
    """Random JSON (lone surrogates as escapes, NaN, infinities, integers beyond 64 bits, brackets in strings,
    nesting around the limit): the same header or the same refusal, word for word."""
    try:
        raw = json.dumps({"x": value, "deep": _nested(deep)}, ensure_ascii=ascii_only).encode("utf-8")
    except UnicodeEncodeError:
        return                                    # a lone surrogate has no UTF-8 form: only its escape travels
    assert _shortcut(raw) == _exhaustive(raw)


@FUZZ
@given(value=json_tree, cut=st.integers(0, 400), junk=st.sampled_from(["", "\ufeff", "x", "[", "{", " ", ","]),
       twice=st.booleans())
def test_malformed_headers_are_refused_in_the_same_words(value: Any, cut: int, junk: str, twice: bool) -> None:
    """Cut short, prefixed with a byte-order mark or junk, a key given twice, not an object: the same refusal."""
    body = json.dumps({"a": value, "b": 1}, ensure_ascii=True)
    if twice:
        body = body[:-1] + ', "a": 2}'
    raw = (junk + body[: max(cut, 1)]).encode("utf-8")
    assert _shortcut(raw) == _exhaustive(raw)


@pytest.mark.parametrize("raw", [b'{"a":1,"b":2,"a":3}', b'{"x":{"k":1,"k":1}}', b'\xef\xbb\xbf{"a":1}',
                                 b'[1,2]', b'"text"', b'{"a":NaN}', b'{"a":1e999}', b'{"a":99999999999999999999}',
                                 b'{"a":-9223372036854775809}', b'{"a":-9223372036854775808}', b'\xff{}'])
def test_known_header_refusals_are_unchanged(raw: bytes) -> None:
    assert _shortcut(raw) == _exhaustive(raw)


# ---- decode: one FrameConfig per frame text ---------------------------------------------------------------
def test_decoded_frames_follow_each_message() -> None:
    """Frames that differ in one field, alternated: each capture gets its own (from_dict is the oracle)."""
    frames = [config.FrameConfig(), config.FrameConfig(num_rb=25), config.FrameConfig(numerology=0, num_rb=25)]
    for seq in range(9):
        frame = frames[seq % 3]
        back = wire.decode_capture(wire.decode(wire.encode_capture(_capture(frame, seq))))
        expected = config.from_dict(config.FrameConfig, json.loads(json.dumps(dataclasses.asdict(frame))))
        assert back.frame == expected == frame


@pytest.mark.parametrize("good, bad, pattern", [
    ({"num_rb": 51}, {"num_rb": 51.0}, r"^frame\.num_rb = 51\.0: must be an integer"),
    ({"data": {"enabled": True}}, {"data": {"enabled": 1}}, r"^frame\.data\.enabled = 1: must be true or false"),
    ({"carrier_hz": 3.5e9}, {"carrier_hz": "3.5e9"}, r"^frame\.carrier_hz = '3\.5e9': must be"),
])
def test_an_equal_value_of_another_type_meets_no_stale_entry(good: dict[str, Any], bad: dict[str, Any],
                                                             pattern: str) -> None:
    """51 == 51.0 and True == 1 in Python, yet one is a valid frame and the other not."""
    frames = _bytes(wire.encode_capture(_capture(None)))
    assert wire.decode_capture(wire.decode(_with_frame(frames, good))).frame == \
        config.from_dict(config.FrameConfig, good)
    for _ in range(2):                                              # refused every time: refusals are not kept
        with pytest.raises(WireFormatError, match=pattern):
            wire.decode_capture(wire.decode(_with_frame(frames, bad)))


def test_a_header_changed_after_decode_is_read_again() -> None:
    msg = wire.decode(wire.encode_capture(_capture(config.FrameConfig())))
    first = wire.decode_capture(msg).frame
    assert first is not None and first.num_rb == 51
    msg.header["frame"]["num_rb"] = 25                              # a consumer edits the header it was given
    assert wire.decode_capture(msg).frame == config.FrameConfig(num_rb=25, fft_size=1024)   # as sent: 1024
    msg.header["frame"]["num_rb"] = 0
    with pytest.raises(WireFormatError, match=r"^frame\.num_rb = 0: allowed 1 \.\.\. 275"):
        wire.decode_capture(msg)
    assert first.num_rb == 51 and wire.decode_capture(wire.decode(wire.encode_capture(
        _capture(config.FrameConfig())))).frame == config.FrameConfig()


def _uncached(frame: Any) -> config.FrameConfig | str:
    """What decode_capture made of a frame object before the cache: from_dict, with its refusal's words."""
    try:
        return config.from_dict(config.FrameConfig, {k: v for k, v in frame.items() if v is not None})
    except ConfigError as err:
        return f"frame.{err.detail} (the capture's frame description)"


@pytest.mark.parametrize("frame", [
    {"num_rb": np.int64(25)},                       # a numpy integer (not plain JSON): the uncached way
    {"num_rb": 25, "carrier_hz": np.float64(3.5e9)},
    {1: 2},                                         # a key that is not a string (json.dumps would make it "1")
    {"num_rb": 25, "cp_samples": None},
    {"num_rb": float("nan")},
])
def test_a_hand_made_header_takes_the_uncached_way(frame: dict[Any, Any]) -> None:
    msg = wire.decode(wire.encode_capture(_capture(None)))
    msg.header["frame"] = frame
    expected = _uncached(frame)
    if isinstance(expected, str):
        with pytest.raises(WireFormatError) as err:
            wire.decode_capture(msg)
        assert str(err.value) == expected
    else:
        assert wire.decode_capture(msg).frame == expected


def test_a_cyclic_hand_made_frame_is_refused() -> None:
    msg = wire.decode(wire.encode_capture(_capture(None)))
    cyclic: dict[str, Any] = {"num_rb": 25}
    cyclic["data"] = cyclic
    msg.header["frame"] = cyclic
    with pytest.raises(WireFormatError, match=r"^frame = .*allowed the fields of a valid FrameConfig \(Recursion"):
        wire.decode_capture(msg)


def test_the_decode_cache_is_bounded() -> None:
    frames = _bytes(wire.encode_capture(_capture(None)))
    for num_rb in range(1, 2 * wire._FRAME_CACHE_SIZE + 2):
        back = wire.decode_capture(wire.decode(_with_frame(frames, {"num_rb": num_rb})))
        assert back.frame == config.FrameConfig(num_rb=num_rb)
    assert wire._frame_config.cache_info().currsize <= wire._FRAME_CACHE_SIZE


# ---- encode: one JSON object per FrameConfig ------------------------------------------------------------
def _sent_frame(capture: Capture) -> Any:
    return json.loads(bytes(wire.encode_capture(capture)[1]))["frame"]


def test_encoded_frames_follow_each_capture() -> None:
    """Alternating FrameConfigs: each header carries its own frame, as ``dataclasses.asdict`` gives it."""
    frames = [config.FrameConfig(), config.FrameConfig(num_rb=25), None, config.FrameConfig(first_slot=1)]
    for seq in range(8):
        frame = frames[seq % 4]
        expected = None if frame is None else json.loads(json.dumps(dataclasses.asdict(frame)))
        assert _sent_frame(_capture(frame, seq)) == expected


def test_equal_frames_of_other_number_types_keep_their_text() -> None:
    """FrameConfig(carrier_hz=3500000000) == FrameConfig(carrier_hz=3.5e9), but their JSON differs, as before."""
    as_int, as_float = config.FrameConfig(carrier_hz=3500000000), config.FrameConfig(carrier_hz=3.5e9)
    assert as_int == as_float
    for _ in range(2):
        assert b'"carrier_hz":3500000000,' in bytes(wire.encode_capture(_capture(as_int))[1])
        assert b'"carrier_hz":3500000000.0,' in bytes(wire.encode_capture(_capture(as_float))[1])


def test_a_frame_with_a_mutable_field_is_converted_each_time() -> None:
    """A list where a tuple is typed (set behind the frozen dataclass's back): not kept, so a change shows."""
    frame = config.FrameConfig()
    cps: list[int] = [1, 2]
    object.__setattr__(frame, "cp_samples", cps)
    assert _sent_frame(_capture(frame))["cp_samples"] == [1, 2]
    cps.append(3)
    assert _sent_frame(_capture(frame))["cp_samples"] == [1, 2, 3]


def test_the_encode_cache_is_bounded_and_never_handed_out() -> None:
    for num_rb in range(1, 2 * wire._FRAME_CACHE_SIZE + 2):
        assert _sent_frame(_capture(config.FrameConfig(num_rb=num_rb)))["num_rb"] == num_rb
    assert len(wire._FRAME_JSON) <= wire._FRAME_CACHE_SIZE
    msg = wire.decode(wire.encode_capture(_capture(config.FrameConfig())))
    assert all(msg.header["frame"] is not kept.value for _, kept in wire._FRAME_JSON.values())


def test_an_equal_field_given_by_a_caller_is_still_checked() -> None:
    """Only the kept object itself skips the field check: an equal dict from a caller is converted and checked."""
    frame = config.FrameConfig()
    wire.encode_capture(_capture(frame))
    kept = dict(wire._FRAME_JSON[id(frame)][1].value)
    kept["carrier_hz"] = float("nan")
    with pytest.raises(WireFormatError, match=r"frame\[.carrier_hz.\] = nan: allowed finite numbers"):
        wire.encode("capture", "bs0", 0, arrays=[np.zeros((1, 4), np.complex64)], sample_rate_hz=1e6,
                    center_freq_hz=0.0, frame_offset=0, frame=kept, metadata={})


# ---- the receive path: no copy of the samples ---------------------------------------------------------------
def test_a_capture_received_over_tcp_is_a_view_of_zeromq_s_buffer() -> None:
    """recv_multipart(copy=False) -> decode -> decode_capture: the iq is the received buffer itself (Capture
    does not copy it either), aligned for its dtype and read-only."""
    zmq = pytest.importorskip("zmq")
    ctx = zmq.Context()
    try:
        pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push.connect(f"tcp://127.0.0.1:{port}")
        rng = np.random.default_rng(7)
        iq = rng.standard_normal((2, 2**16), dtype=np.float32).view(np.complex64)    # 1 MiB, 2 channels
        push.send_multipart(wire.encode_capture(Capture(iq, 1e6, node_id="bs0", frame=config.FrameConfig())),
                            copy=False)
        assert pull.poll(5000)
        frames = pull.recv_multipart(copy=False)
        back = wire.decode_capture(wire.decode(frames))
        assert np.shares_memory(back.iq, np.frombuffer(frames[2].buffer, np.uint8))
        assert back.iq.flags.aligned and not back.iq.flags.writeable
        np.testing.assert_array_equal(back.iq, iq)
        push.close(linger=0)
        pull.close(linger=0)
    finally:
        ctx.term()


@pytest.mark.parametrize("dtype", ["float64", "complex128", "complex64"])
def test_an_unaligned_buffer_is_read_in_place_and_checked(dtype: str) -> None:
    """A buffer at an odd address (a slice of a larger one): decoded without a copy, its NaN still found."""
    arr = np.arange(12, dtype=dtype)
    frames: list[Any] = _carrying(arr)
    padded = bytearray(1) + bytearray(frames[2])
    frames[2] = memoryview(padded)[1:]
    msg = wire.decode(frames)
    assert np.shares_memory(msg.arrays[0], np.frombuffer(padded, np.uint8))
    np.testing.assert_array_equal(msg.arrays[0], arr)
    arr[5] = np.nan
    padded[1:] = arr.tobytes()
    with pytest.raises(WireFormatError, match=r"^arrays\[0\]\[5\] = \(?nan.*allowed finite values"):
        wire.decode(frames)


# ---- encode: metadata converted and checked once -------------------------------------------------------------
TRUTH = {"paths": [{"kind": "target", "target": f"t{i}", "delay_s": 1e-6 * (i + 1), "range_m": 150.0 * (i + 1),
                    "velocity_mps": -3.5 + i, "snr_per_re_db": 12.0, "position_m": [10.0 * i, -2.5, 1.0]}
                   for i in range(5)],
         "targets": [{"id": f"t{i}", "position_m": [10.0 * i, -2.5, 1.0], "velocity_mps": [1.0, 0.0, 0.0]}
                     for i in range(5)]}


def _generic(metadata: dict[str, Any]) -> list[Any]:
    """A capture message made by the generic encode: every field converted and checked from its root."""
    return wire.encode("capture", "bs0", 0, t0_s=1.0, arrays=[np.zeros((1, 4), np.complex64)],
                       sample_rate_hz=30.72e6, center_freq_hz=3.5e9, frame_offset=0, frame=None, metadata=metadata)


def test_capture_metadata_arrives_as_json_gives_it() -> None:
    meta = {"radio": "sim", "truth": TRUTH, "gains_db": (10, 20.5), "note": "ok", "np": np.float32(0.5)}
    cap = Capture(np.zeros((1, 4), np.complex64), 30.72e6, 3.5e9, t0_s=1.0, node_id="bs0", metadata=meta)
    got = wire.decode_capture(wire.decode(wire.encode_capture(cap))).metadata
    assert got == {"radio": "sim", "truth": json.loads(json.dumps(TRUTH)), "gains_db": [10, 20.5], "note": "ok",
                   "np": 0.5}


@pytest.mark.parametrize("depth", [29, 30, 31, 32])
def test_metadata_nested_at_the_limit_is_refused_as_by_the_generic_encode(depth: int) -> None:
    """An entry that passes its own depth check but not the one counted from ``metadata``: the capture is
    refused in the same words as by the generic encode (which walks ``metadata`` from its root)."""
    meta = {"deep": _nested(depth)}
    cap = Capture(np.zeros((1, 4), np.complex64), 30.72e6, 3.5e9, t0_s=1.0, node_id="bs0", metadata=meta)
    try:
        _generic(meta)
    except WireFormatError as err:
        with pytest.raises(WireFormatError) as got:
            wire.encode_capture(cap)
        assert str(got.value) == str(err)
        assert "nested at most 32 deep" in str(err)
    else:
        assert json.loads(bytes(wire.encode_capture(cap)[1]))["metadata"] == json.loads(json.dumps(meta))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_capture_samples_are_checked_once_by_the_receiver(bad):
    """encode_capture does not scan the samples (the receiver does, once): a capture with a bad sample is sent,
    and decode refuses it, naming the sample; other encodes still refuse such buffers."""
    iq = np.ones((2, 64), np.complex64)
    iq[1, 37] = complex(1.0, bad)
    frames = _bytes(wire.encode_capture(Capture(iq, 30.72e6, 3.5e9, t0_s=1.0, node_id="bs0", seq=0)))
    with pytest.raises(WireFormatError, match=r"arrays\[0\]\[1, 37\]"):
        wire.decode(frames)
    with pytest.raises(WireFormatError, match=r"arrays\[0\]\[1, 37\].*replace NaN and infinity before sending"):
        wire.encode("capture", "bs0", 0, arrays=[iq])
