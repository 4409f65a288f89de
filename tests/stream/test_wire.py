"""The wire format: round trips, zero copy, strict rejection, fuzzing, and no unpickling."""

from __future__ import annotations

import ast
import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sdr_isac import config
from sdr_isac.capture import Capture
from sdr_isac.errors import WireFormatError
from sdr_isac.fusion.records import TargetEstimate
from sdr_isac.sensing.detection import Detection
from sdr_isac.stream import wire

REPO = Path(__file__).resolve().parents[2]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- helpers --------------------------------------------------------------------------------
def _frame(name: str) -> config.FrameConfig:
    if name == "default":
        return config.default().frame
    return config.load(REPO / "hw_configs" / f"{name}.toml").frame


def _capture(num_channels: int = 4, num_samples: int = 256, frame: config.FrameConfig | None = None,
             seed: int = 0) -> Capture:
    rng = np.random.default_rng(seed)
    iq = (rng.standard_normal((num_channels, num_samples))
          + 1j * rng.standard_normal((num_channels, num_samples))).astype(np.complex64)
    truth = {"paths": [{"kind": "target", "target": "car", "delay_s": 1.25e-6, "range_m": 187.4,
                        "velocity_mps": -3.5, "snr_per_re_db": 12.0, "position_m": [10.0, -2.5, 1.0]}],
             "targets": [{"id": "car", "position_m": [10.0, -2.5, 1.0], "velocity_mps": [1.0, 0.0, 0.0]}]}
    meta = {"radio": "sim", "noise_power_dbm": -101.5, "gains": [10, 20], "ok": True, "none": None, "truth": truth}
    return Capture(iq, 30.72e6, 3.5e9, t0_s=12.5, node_id="bs-1.a_b", seq=42, frame=frame, frame_offset=17,
                   metadata=meta)


def _detection(**over: Any) -> Detection:
    base = dict(range_m=120.5, velocity_mps=-4.25, doppler_hz=99.2, delay_s=8.04e-7, snr_db=17.5,
                geometry="monostatic", angle_rad=0.31, range_var_m2=0.04, velocity_var_mps2=0.01,
                angle_var_rad2=1e-4, map_snr_db=35.0)
    base.update(over)
    return Detection(**base)   # type: ignore[arg-type]


def _bytes(frames: list[Any]) -> list[bytes]:
    return [bytes(f) for f in frames]


def _with_header(frames: list[Any], change: Any, *, topic: bytes | None = None) -> list[bytes]:
    """The frames with the header rewritten by ``change(header)`` (and the topic, if given)."""
    out = _bytes(frames)
    header = json.loads(out[1])
    change(header)
    out[1] = json.dumps(header).encode()
    if topic is not None:
        out[0] = topic
    return out


ESTIMATE = TargetEstimate.planar([41.9, 10.0], [[1e-4, 0.0], [0.0, 2e-4]], 1.0, nodes=("bs0", "bs1"),
                              velocity_xy_mps=[-14.0, 2.0], cov_velocity_xy_mps2=[[1e-3, 0.0], [0.0, 1e-3]],
                              single_m={"bs0": (41.9, 10.1)}, mode="macro_micro", case="A")


def _samples() -> dict[str, list[Any]]:
    """Valid encoded messages of every kind."""
    arrays = [np.arange(6, dtype=np.float64).reshape(2, 3), np.array([True, False]), np.zeros((0, 3), np.int16)]
    return {
        "capture1": wire.encode_capture(_capture(1, 32, _frame("default"))),
        "capture4": wire.encode_capture(_capture(4, 16, None)),
        "detections": wire.encode_detections("bs1", 3, 1.5, [_detection(), _detection(angle_rad=None,
                                                                                     angle_var_rad2=None)],
                                             truth={"paths": []}),
        "heartbeat": wire.encode_heartbeat("bs1", 9, {"captured": 10, "final": False, "rate_hz": 2.5}),
        "control": wire.encode_control("host", 1, "set_gain", gain_db=30.0),
        "tracks": wire.encode("tracks", "host", 5, tracks=[], t0_s=2.0, arrays=arrays, nodes=["bs1", "bs2"]),
        "estimates": wire.encode_estimates("host", 6, 2.0, [ESTIMATE]),
        "status": wire.encode_status(wire.NodeStatus("bs1", 3, "present", 1.7e9, None,
                                                     wire.Outage(1.7e9 - 5.0, 1.7e9, 40, "rate", True), 2)),
        "rdmap": _rdmap_frames(),
    }


def _rdmap_frames(**over: Any) -> list[Any]:
    power = np.arange(12, dtype=np.float32).reshape(4, 3)
    kwargs: dict[str, Any] = dict(
        geometry="monostatic", num_channels=2, max_range_m=30.0, decimation=(2, 1),
        sensing={"pfa": 1e-6, "guard_cells": [4, 2], "training_cells": [8, 4], "cfar": "ca"},
        node={"id": "bs1", "position_m": [1.0, 2.0, 5.0], "yaw_deg": 90.0},
        stats={"received": 3, "lost": 1, "latency_mean_s": 0.002}, truth={"paths": [], "targets": []})
    kwargs.update(over)
    return wire.encode_rdmap("bs1", 7, 0.25, power, np.array([0.0, 10.0, 20.0, 30.0]), np.array([-5.0, 0.0, 5.0]),
                             [_detection()], **kwargs)


SAMPLES = _samples()


def _assert_same(msg: wire.Message, frames: list[Any]) -> None:
    """``msg`` is exactly the message ``frames`` encode."""
    ref = wire.decode(_bytes(frames))
    assert msg.topic == ref.topic and msg.header == ref.header and len(msg.arrays) == len(ref.arrays)
    for a, b in zip(msg.arrays, ref.arrays):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _assert_consistent(msg: wire.Message, frames: list[bytes]) -> None:
    """An accepted message satisfies every rule of the format."""
    assert msg.kind in wire.KINDS and msg.topic == f"{msg.kind}/{msg.node_id}".encode() == frames[0]
    assert wire.KIND_VERSIONS[msg.kind] <= msg.header["v"] <= wire.SCHEMA_VERSION and msg.seq >= 0
    assert len(msg.arrays) == len(msg.header["arrays"]) == len(frames) - 2
    for arr, spec, buf in zip(msg.arrays, msg.header["arrays"], frames[2:]):
        assert arr.dtype.name == spec["dtype"] and list(arr.shape) == spec["shape"] and arr.nbytes == len(buf)
        assert not arr.flags.writeable
        if arr.dtype.kind in "fc":
            assert np.all(np.isfinite(arr))
    json.dumps(msg.header, allow_nan=False)


# ---- round trips ----------------------------------------------------------------------------
@pytest.mark.parametrize("num_channels", [1, 4])
@pytest.mark.parametrize("frame_name", ["default", "all_reference_signals", "research_explicit_cp", None])
def test_capture_round_trip(num_channels: int, frame_name: str | None) -> None:
    frame = _frame(frame_name) if frame_name else None
    cap = _capture(num_channels, 300, frame)
    frames = wire.encode_capture(cap)
    assert bytes(frames[0]) == b"capture/bs-1.a_b" and len(frames) == 3
    msg = wire.decode(frames)
    assert (msg.kind, msg.node_id, msg.seq, msg.t0_s) == ("capture", "bs-1.a_b", 42, 12.5)
    back = wire.decode_capture(msg)
    assert back.iq.dtype == np.complex64 and back.iq.shape == (num_channels, 300)
    assert back.iq.tobytes() == cap.iq.tobytes()
    assert not back.iq.flags.writeable
    assert back.frame == cap.frame
    assert back.metadata == cap.metadata and back.metadata["truth"] == cap.metadata["truth"]
    for name in ("sample_rate_hz", "center_freq_hz", "t0_s", "node_id", "seq", "frame_offset"):
        assert getattr(back, name) == getattr(cap, name)


def test_capture_metadata_keeps_json_and_drops_the_rest() -> None:
    metadata: dict[Any, Any] = {
        "gain": np.float32(20.0), "count": np.int64(3), "pos": (1.0, 2.0), "arr": np.arange(3),
        "cplx": 1 + 2j, "iqs": np.ones(2, np.complex64), "obj": object(), 7: "int key", "nan": float("nan"),
        "deep": {"x": [{"y": np.float64(0.5)}]}}
    cap = dataclasses.replace(_capture(1, 8), metadata=metadata)
    back = wire.decode_capture(wire.decode(wire.encode_capture(cap)))
    assert back.metadata == {"gain": 20.0, "count": 3, "pos": [1.0, 2.0], "arr": [0, 1, 2],
                             "deep": {"x": [{"y": 0.5}]}}


def test_capture_extra_fields() -> None:
    frames = wire.encode_capture(_capture(1, 8), extra={"band": "n78", "gain_db": 30})
    msg = wire.decode(frames)
    assert msg.header["band"] == "n78" and msg.header["gain_db"] == 30
    with pytest.raises(WireFormatError, match=r"extra field 'metadata'.*allowed names other than"):
        wire.encode_capture(_capture(1, 8), extra={"metadata": {}})


def test_detections_round_trip() -> None:
    dets = [_detection(), _detection(geometry="bistatic", angle_rad=None, angle_var_rad2=None, range_m=3)]
    truth = {"paths": [{"kind": "target", "target": "car", "position_m": [120.0, 0.0], "range_m": 120.0,
                        "velocity_mps": 1.5, "snr_per_re_db": 3.0}]}
    frames = wire.encode_detections("ue_7", 11, 0.125, dets, truth=truth)
    assert len(frames) == 2 and bytes(frames[0]) == b"detections/ue_7"
    msg = wire.decode(frames)
    assert wire.decode_detections(msg) == dets
    assert msg.header["detections"] == [d.to_dict() for d in dets]
    assert msg.header["truth"] == truth and msg.t0_s == 0.125
    assert wire.decode_detections(wire.decode(wire.encode_detections("n", 0, 0.0, []))) == []


def test_heartbeat_and_control_round_trip() -> None:
    stats = {"captured": 12, "sent": 11, "final": True, "started_s": 1.7e9, "note": None}
    msg = wire.decode(wire.encode_heartbeat("bs2", 4, stats))
    assert (msg.kind, msg.node_id, msg.seq, msg.header["stats"], msg.arrays) == ("heartbeat", "bs2", 4, stats, ())
    msg = wire.decode(wire.encode_control("host", 8, "stop", after_s=2.5, nodes=["bs1"]))
    assert (msg.kind, msg.header["command"], msg.header["after_s"], msg.header["nodes"]) == \
        ("control", "stop", 2.5, ["bs1"])


@pytest.mark.parametrize("dtype", list(wire.DTYPES))
@pytest.mark.parametrize("shape", [(), (0,), (5,), (2, 3), (2, 0, 4)])
def test_every_dtype_round_trips(dtype: str, shape: tuple[int, ...]) -> None:
    arr = (np.arange(int(np.prod(shape))) % 2 if dtype == "bool" else np.arange(int(np.prod(shape))))
    arr = arr.astype(dtype).reshape(shape)
    msg = wire.decode(wire.encode("tracks", "host", 0, tracks=[], arrays=[arr, arr.T]))
    for got, want in zip(msg.arrays, (arr, arr.T)):
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)
        assert not got.flags.writeable


def test_sent_s_is_wall_clock_and_t0_s_is_given() -> None:
    import time
    before = time.time()
    msg = wire.decode(wire.encode("tracks", "n1", 0, tracks=[], t0_s=7))
    assert before <= msg.sent_s <= time.time() and msg.t0_s == 7.0 and isinstance(msg.header["t0_s"], float)


def test_big_endian_and_strided_arrays_are_sent_little_endian() -> None:
    arr = np.arange(12, dtype=">f4").reshape(3, 4)[:, ::2]
    msg = wire.decode(wire.encode("tracks", "n1", 0, tracks=[], arrays=[arr]))
    assert msg.arrays[0].dtype == np.dtype("<f4") and np.array_equal(msg.arrays[0], arr)


# ---- zero copy ------------------------------------------------------------------------------
def test_encode_shares_the_capture_buffer() -> None:
    cap = _capture(4, 128)
    frames = wire.encode_capture(cap)
    buf = frames[2]
    assert isinstance(buf, memoryview) and len(buf) == cap.iq.nbytes
    assert np.shares_memory(np.asarray(buf), cap.iq)


def test_decode_views_the_received_buffer() -> None:
    frames = [memoryview(bytearray(bytes(f))) for f in wire.encode_capture(_capture(2, 64))]
    msg = wire.decode(frames)
    assert np.shares_memory(msg.arrays[0], np.asarray(frames[2]))
    assert not msg.arrays[0].flags.writeable


class _FakeFrame:
    """What zmq.Frame exposes: a ``buffer`` memoryview (and no buffer protocol of its own)."""

    def __init__(self, data: Any):
        self.buffer = memoryview(bytearray(bytes(data)))


def test_decode_from_frame_like_objects() -> None:
    cap = _capture(4, 64, _frame("default"))
    frames = [_FakeFrame(f) for f in wire.encode_capture(cap)]
    back = wire.decode_capture(wire.decode(frames))
    assert back.iq.tobytes() == cap.iq.tobytes() and back.frame == cap.frame
    assert np.shares_memory(back.iq, np.asarray(frames[2].buffer))


def test_decode_from_real_zmq_frames_over_inproc() -> None:
    zmq = pytest.importorskip("zmq")
    ctx = zmq.Context()
    try:
        a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        a.bind("inproc://wire-test")
        b.connect("inproc://wire-test")
        cap = _capture(4, 1024)
        a.send_multipart(wire.encode_capture(cap), copy=False)
        assert b.poll(2000)
        received = b.recv_multipart(copy=False)
        assert all(isinstance(f, zmq.Frame) for f in received)
        back = wire.decode_capture(wire.decode(received))
        assert back.iq.tobytes() == cap.iq.tobytes() and back.metadata == cap.metadata
        a.close(linger=0)
        b.close(linger=0)
    finally:
        ctx.term()


# ---- rejections -----------------------------------------------------------------------------
CAP = SAMPLES["capture4"]
DET = SAMPLES["detections"]


def _set(key: str, value: Any) -> Any:
    return lambda h: h.__setitem__(key, value)


def _drop(key: str) -> Any:
    return lambda h: h.pop(key)


HEADER_CASES = [
    ("v4", _set("v", 4), r"^v = 4: allowed schema version 1 \.\.\. 3; the sender speaks a newer"),
    ("v0", _set("v", 0), r"^v = 0: allowed schema version 1 \.\.\. 3"),
    ("v-str", _set("v", "1"), r"^v = '1': allowed schema version 1"),
    ("v-missing", _drop("v"), r"^v = None: allowed"),
    ("v-bool", _set("v", True), r"^v = True"),
    ("kind", _set("kind", "bogus"), r"^kind = 'bogus': allowed capture, detections, estimates"),
    ("kind-missing", _drop("kind"), r"^kind = None"),
    ("node-long", _set("node_id", "n" * 65), r"^node_id = 'nnn.*allowed a string of 1 \.\.\. 64 characters"),
    ("node-chars", _set("node_id", "bs 1/x"), r"^node_id = 'bs 1/x': allowed"),
    ("node-empty", _set("node_id", ""), r"^node_id = ''"),
    ("node-int", _set("node_id", 5), r"^node_id = 5"),
    ("seq-neg", _set("seq", -1), r"^seq = -1: allowed an integer 0 \.\.\. "),
    ("seq-float", _set("seq", 1.0), r"^seq = 1\.0: allowed an integer"),
    ("seq-bool", _set("seq", True), r"^seq = True"),
    ("seq-str", _set("seq", "3"), r"^seq = '3'"),
    ("seq-missing", _drop("seq"), r"^seq = None"),
    ("t0-str", _set("t0_s", "now"), r"^t0_s = 'now': allowed a finite number in s"),
    ("t0-missing", _drop("t0_s"), r"^t0_s = None"),
    ("sent-missing", _drop("sent_s"), r"^sent_s = None"),
    ("sent-list", _set("sent_s", [1]), r"^sent_s = \[1\]"),
    ("arrays-missing", _drop("arrays"), r"^arrays = 'missing'"),
    ("arrays-dict", _set("arrays", {}), r"^arrays = \{\}: allowed a list"),
    ("dtype-object", lambda h: h["arrays"][0].__setitem__("dtype", "object"),
     r"^arrays\[0\]\.dtype = 'object': allowed complex64, complex128, float32, float64, int16, int32, uint8, bool"),
    ("dtype-float16", lambda h: h["arrays"][0].__setitem__("dtype", "float16"), r"arrays\[0\]\.dtype = 'float16'"),
    ("dtype-pickle", lambda h: h["arrays"][0].__setitem__("dtype", "O"), r"arrays\[0\]\.dtype = 'O'"),
    ("shape-neg", lambda h: h["arrays"][0].__setitem__("shape", [-4, -16]),
     r"^arrays\[0\]\.shape = \[-4, -16\]: allowed a list of at most 8 non-negative integers"),
    ("shape-float", lambda h: h["arrays"][0].__setitem__("shape", [4.0, 16]), r"arrays\[0\]\.shape = \[4\.0, 16\]"),
    ("shape-bool", lambda h: h["arrays"][0].__setitem__("shape", [True, 64]), r"arrays\[0\]\.shape"),
    ("shape-str", lambda h: h["arrays"][0].__setitem__("shape", "4,16"), r"arrays\[0\]\.shape = '4,16'"),
    ("shape-ndim", lambda h: h["arrays"][0].__setitem__("shape", [1] * 9), r"arrays\[0\]\.shape"),
    ("spec-extra-key", lambda h: h["arrays"][0].__setitem__("order", "F"), r"exactly the keys"),
    ("size", lambda h: h["arrays"][0].__setitem__("shape", [4, 17]),
     r"^frame 2 size = '512 bytes': allowed 544 bytes = 8 bytes \(complex64\) x 68 items"),
    ("count", lambda h: h["arrays"].append({"dtype": "uint8", "shape": [0]}),
     r"^arrays = '2 entries': allowed one entry per buffer frame \(1 buffer frames\)"),
    ("rate-zero", _set("sample_rate_hz", 0), r"^sample_rate_hz = 0: allowed a finite number > 0 Hz"),
    ("rate-missing", _drop("sample_rate_hz"), r"^sample_rate_hz = None"),
    ("fc-neg", _set("center_freq_hz", -1.0), r"^center_freq_hz = -1\.0: allowed a finite number >= 0 Hz"),
    ("offset", _set("frame_offset", -3), r"^frame_offset = -3"),
    ("frame-list", _set("frame", [1]), r"^frame = \[1\]: allowed null or an object"),
    ("metadata-list", _set("metadata", []), r"^metadata = \[\]: allowed an object"),
    ("deep", _set("metadata", json.loads("[" * 40 + "]" * 40)), r"nested at most 32 deep"),
]


@pytest.mark.parametrize("change, pattern", [c[1:] for c in HEADER_CASES], ids=[c[0] for c in HEADER_CASES])
def test_capture_header_rejections(change: Any, pattern: str) -> None:
    frames = _with_header(CAP, change)
    header = json.loads(frames[1])
    if isinstance(header.get("kind"), str) and isinstance(header.get("node_id"), str):
        frames[0] = f"{header['kind']}/{header['node_id']}".encode()     # test the field, not the topic
    with pytest.raises(WireFormatError, match=pattern):
        wire.decode(frames)


def test_capture_with_wrong_array_is_rejected() -> None:
    frames = wire.encode("capture", "bs1", 0, arrays=[np.ones((2, 4), np.complex64)], sample_rate_hz=1e6,
                         center_freq_hz=0.0, frame_offset=0, frame=None, metadata={})
    wire.decode(frames)
    bad = _with_header(frames, lambda h: h["arrays"][0].update(dtype="float64"))
    with pytest.raises(WireFormatError, match=r"^arrays = .*allowed one complex64 array of shape \[num_channels"):
        wire.decode(bad)
    with pytest.raises(WireFormatError, match=r"allowed one complex64 array"):
        wire.encode("capture", "bs1", 0, arrays=[np.ones(4, np.complex64)], sample_rate_hz=1e6,
                    center_freq_hz=0.0, frame_offset=0, frame=None, metadata={})


@pytest.mark.parametrize("frame_change, pattern", [
    ({"num_rb": 999}, r"^frame\.num_rb = 999: allowed 1 .*275"),
    ({"bogus": 1}, r"^frame\.bogus: unknown key"),
    ({"prs": {"comb_size": 5}}, r"^frame\.prs\.comb_size = 5: allowed 2, 4, 6 or 12"),
    ({"num_rb": "51"}, r"^frame\.num_rb = '51': must be an integer"),
    ({"cp_duration_s": 1e308, "cyclic_prefix": "explicit"}, r"^frame\.cp_duration_s = 1e\+308: allowed 0"),
])
def test_decode_capture_rejects_a_bad_frame(frame_change: dict[str, Any], pattern: str) -> None:
    frames = _with_header(SAMPLES["capture1"], lambda h: h["frame"].update(frame_change))
    msg = wire.decode(frames)
    with pytest.raises(WireFormatError, match=pattern):
        wire.decode_capture(msg)


def test_decode_capture_and_detections_check_the_kind() -> None:
    with pytest.raises(WireFormatError, match=r"^kind = 'detections': allowed 'capture'"):
        wire.decode_capture(wire.decode(DET))
    with pytest.raises(WireFormatError, match=r"^kind = 'capture': allowed 'detections'"):
        wire.decode_detections(wire.decode(CAP))


DETECTION_CASES = [
    ("not-list", _set("detections", {"range_m": 1}), r"^detections = \{'range_m': 1\}: allowed a list"),
    ("missing", _drop("detections"), r"^detections = None"),
    ("missing-key", lambda h: h["detections"][0].pop("snr_db"), r"^detections\[0\] = .*allowed an object with exactly"),
    ("extra-key", lambda h: h["detections"][1].__setitem__("x", 1), r"^detections\[1\] = "),
    ("str-value", lambda h: h["detections"][0].__setitem__("range_m", "far"),
     r"^detections\[0\]\.range_m = 'far': allowed a finite number"),
    ("null-range", lambda h: h["detections"][0].__setitem__("range_m", None), r"^detections\[0\]\.range_m = None"),
    ("geometry", lambda h: h["detections"][0].__setitem__("geometry", "multistatic"),
     r"^detections\[0\]\.geometry = 'multistatic': allowed monostatic or bistatic"),
    ("negative-variance", lambda h: h["detections"][0].__setitem__("velocity_var_mps2", -0.02),
     r"^detections\[0\]\.velocity_var_mps2 = -0\.02: allowed a finite number > 0 \(a Cram.r-Rao variance\)"),
    ("zero-variance", lambda h: h["detections"][1].__setitem__("range_var_m2", 0), r"^detections\[1\]\.range_var_m2 = 0"),
    ("too-many", lambda h: h.__setitem__("detections", h["detections"] * 5001), r"^detections = .*at most 10000"),
]


@pytest.mark.parametrize("change, pattern", [c[1:] for c in DETECTION_CASES], ids=[c[0] for c in DETECTION_CASES])
def test_detection_rejections(change: Any, pattern: str) -> None:
    with pytest.raises(WireFormatError, match=pattern):
        wire.decode(_with_header(DET, change))


def test_heartbeat_and_control_fields_are_checked() -> None:
    with pytest.raises(WireFormatError, match=r"^stats = \[1, 2\]: allowed an object"):
        wire.decode(_with_header(SAMPLES["heartbeat"], _set("stats", [1, 2])))
    with pytest.raises(WireFormatError, match=r"^command = 'rm -rf': allowed a string of 1"):
        wire.decode(_with_header(SAMPLES["control"], _set("command", "rm -rf")))
    with pytest.raises(WireFormatError, match=r"^command = "):
        wire.encode_control("host", 0, "")


def test_topic_must_match_the_header() -> None:
    with pytest.raises(WireFormatError, match=r"^topic = b'capture/other': allowed b'capture/bs-1.a_b'"):
        wire.decode(_with_header(CAP, lambda h: None, topic=b"capture/other"))
    with pytest.raises(WireFormatError, match=r"^topic = b'detections/bs-1.a_b'"):
        wire.decode(_with_header(CAP, lambda h: None, topic=b"detections/bs-1.a_b"))


@pytest.mark.parametrize("text, pattern", [
    (b"\xff\xfe{}", r"^header = .*allowed UTF-8 text"),
    (b"not json", r"^header = b'not json': allowed one JSON object"),
    (b"[1, 2]", r"^header = \[1, 2\]: allowed a JSON object"),
    (b'"x"', r"^header = 'x': allowed a JSON object"),
    (b"", r"^header = b'': allowed one JSON object"),
    (b'{"v": NaN}', r"^header number = 'NaN': allowed finite numbers"),
    (b'{"v": Infinity}', r"^header number = 'Infinity'"),
    (b'{"v": -Infinity}', r"^header number = '-Infinity'"),
    (b'{"v": 1e999}', r"^header number = '1e999': allowed finite numbers"),
    (b'{"v": 123456789012345678901234567890}', r"^header integer = '1234.*allowed integers that fit in 64 bits"),
    (b'{"v": 1, "v": 1}', r"^header key = 'v': allowed each key once per object"),
    (b'{"v": "\\ud800"}', r"^header\.v = '\\ud800': allowed valid Unicode text"),
    (b"[" * 100_000 + b"]" * 100_000, r"^header = .*allowed one JSON object"),
])
def test_header_text_rejections(text: bytes, pattern: str) -> None:
    with pytest.raises(WireFormatError, match=pattern):
        wire.decode([b"capture/bs1", text])


def test_non_finite_header_values_in_nested_fields_are_rejected() -> None:
    frames = _bytes(DET)
    frames[1] = frames[1].replace(b'"truth":{"paths":[]}', b'"truth":{"paths":[NaN]}')
    with pytest.raises(WireFormatError, match=r"'NaN'"):
        wire.decode(frames)


@pytest.mark.parametrize("frames, pattern", [
    ([], r"^number of frames = 0: allowed 2 \.\.\. 18"),
    ([b"capture/bs1"], r"^number of frames = 1"),
    ([b"x"] * 19, r"^number of frames = 19"),
    (["capture/bs1", b"{}"], r"^frame 0 is a str: allowed bytes, a memoryview or a zmq\.Frame"),
    ([b"t", 5], r"^frame 1 is a int"),
    ([b"t", memoryview(b"{}{}")[::2]], r"^frame 1 is a memoryview.*not contiguous"),
    (42, r"^frames is a int: allowed a sequence"),
])
def test_frame_list_rejections(frames: Any, pattern: str) -> None:
    with pytest.raises(WireFormatError, match=pattern):
        wire.decode(frames)


def test_buffer_frame_count_and_size() -> None:
    frames = _bytes(CAP)
    with pytest.raises(WireFormatError, match=r"^arrays = '1 entries': allowed one entry per buffer frame \(0"):
        wire.decode(frames[:2])
    with pytest.raises(WireFormatError, match=r"\(2 buffer frames\)"):
        wire.decode(frames + [frames[2]])
    with pytest.raises(WireFormatError, match=r"^frame 2 size = '511 bytes': allowed 512 bytes"):
        wire.decode(frames[:2] + [frames[2][:-1]])


def test_max_bytes() -> None:
    frames = _bytes(CAP)
    total = sum(len(f) for f in frames)
    wire.decode(frames, max_bytes=total)
    with pytest.raises(WireFormatError, match=rf"^message size = '{total} bytes': allowed at most {total - 1} bytes"):
        wire.decode(frames, max_bytes=total - 1)


def test_header_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "MAX_HEADER_BYTES", 100)
    with pytest.raises(WireFormatError, match=r"^header size = '\d+ bytes': allowed at most 100 bytes"):
        wire.decode(_bytes(CAP))
    with pytest.raises(WireFormatError, match=r"^header size"):
        wire.encode("tracks", "n", 0, tracks=[], note="x" * 200)


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_arrays_are_rejected(dtype: str, bad: float) -> None:
    arr = np.zeros((2, 3), dtype)
    frames = _bytes(wire.encode("tracks", "n", 0, tracks=[], arrays=[arr]))
    arr[1, 2] = bad
    frames[2] = arr.tobytes()
    with pytest.raises(WireFormatError, match=r"^arrays\[0\]\[1, 2\] = .*allowed finite values"):
        wire.decode(frames)
    with pytest.raises(WireFormatError, match=r"^arrays\[0\]\[1, 2\] = .*allowed finite values; replace NaN"):
        wire.encode("tracks", "n", 0, tracks=[], arrays=[arr])


def test_bool_bytes_must_be_0_or_1() -> None:
    frames = _bytes(wire.encode("tracks", "n", 0, tracks=[], arrays=[np.zeros(4, bool)]))
    frames[2] = b"\x00\x01\x02\x00"
    with pytest.raises(WireFormatError, match=r"^arrays\[0\] = 'bytes other than 0 and 1'"):
        wire.decode(frames)


@pytest.mark.parametrize("call, pattern", [
    (lambda: wire.encode("bogus", "n", 0), r"^kind = 'bogus'"),
    (lambda: wire.encode("tracks", "bad id", 0, tracks=[]), r"^node_id = 'bad id'"),
    (lambda: wire.encode("tracks", "n", -1, tracks=[]), r"^seq = -1"),
    (lambda: wire.encode("tracks", "n", 0, tracks=[], t0_s=float("nan")), r"^t0_s = nan: allowed finite numbers"),
    (lambda: wire.encode("tracks", "n", 0, tracks=[], v=2), r"^field 'v' = 2: allowed any field name except"),
    (lambda: wire.encode("tracks", "n", 0, tracks=[], sent_s=2.0), r"^field 'sent_s'"),
    (lambda: wire.encode("tracks", "n", 0, tracks=[], x=object()), r"^x = <object.*allowed JSON values"),
    (lambda: wire.encode("tracks", "n", 0, tracks=[], x={"a": [float("inf")]}), r"^x\['a'\]\[0\] = inf: allowed finite"),
    (lambda: wire.encode("tracks", "n", 0, tracks=[], x={1: 2}), r"^x has key 1 of type int: allowed string keys"),
    (lambda: wire.encode("tracks", "n", 0, tracks=[], x=2**64), r"^x = 18446744073709551616: allowed integers that fit"),
    (lambda: wire.encode("tracks", "n", 0, tracks=[], arrays=[np.zeros(2, np.float16)]),
     r"^arrays\[0\]\.dtype = 'float16': allowed complex64, .*; convert the array"),
    (lambda: wire.encode("tracks", "n", 0, tracks=[], arrays=[np.array(["a"])]), r"^arrays\[0\]\.dtype = '<U1'"),
    (lambda: wire.encode("tracks", "n", 0, tracks=[], arrays=[np.zeros((1,) * 9)]), r"^arrays\[0\]\.shape"),
    (lambda: wire.encode("tracks", "n", 0, tracks=[], arrays=[np.zeros(1)] * 17), r"^arrays = '17 arrays': allowed at most 16"),
    (lambda: wire.encode_detections("n", 0, 0.0, [{"range_m": 1.0}]),  # type: ignore[list-item]
     r"^detections\[0\] = .*allowed a sdr_isac"),
    (lambda: wire.encode_detections("n", 0, 0.0, [_detection(snr_db=float("inf"))]), r"snr_db'\] = inf"),
])
def test_encode_rejects_what_decode_would(call: Any, pattern: str) -> None:
    with pytest.raises(WireFormatError, match=pattern):
        call()


# ---- fuzzing --------------------------------------------------------------------------------
def _decode_or_reject(frames: list[Any]) -> wire.Message | None:
    try:
        return wire.decode(frames)
    except WireFormatError:
        return None


@FUZZ
@given(st.lists(st.binary(max_size=80), min_size=1, max_size=5))
def test_random_frames_raise_only_wire_format_error(frames: list[bytes]) -> None:
    msg = _decode_or_reject(frames)
    if msg is not None:
        _assert_consistent(msg, frames)


_json_leaf = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
              | st.sampled_from(list(wire.KINDS) + list(wire.DTYPES) + ["bs1", "capture/bs1"]))
_json = st.recursive(_json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                     max_leaves=8)
_keys = st.sampled_from(["v", "kind", "node_id", "seq", "t0_s", "sent_s", "arrays", "sample_rate_hz", "frame",
                         "metadata", "frame_offset", "center_freq_hz", "detections", "stats", "command", "x"])


@FUZZ
@given(st.sampled_from(sorted(SAMPLES)), st.dictionaries(_keys, _json, max_size=3), st.booleans())
def test_random_header_values_raise_only_wire_format_error(name: str, changes: dict[str, Any],
                                                           fix_topic: bool) -> None:
    frames = _bytes(SAMPLES[name])
    header = json.loads(frames[1])
    header.update(changes)
    frames[1] = json.dumps(header).encode()       # may hold NaN and Infinity tokens: they must be rejected
    if fix_topic and isinstance(header.get("kind"), str) and isinstance(header.get("node_id"), str):
        frames[0] = f"{header['kind']}/{header['node_id']}".encode(errors="surrogatepass")
    msg = _decode_or_reject(frames)
    if msg is not None:
        _assert_consistent(msg, frames)
        for decoder in (wire.decode_capture, wire.decode_detections):
            try:
                decoder(msg)
            except WireFormatError:
                pass


@FUZZ
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_a_mutated_header_byte_is_rejected_or_harmless(name: str, data: st.DataObject) -> None:
    frames = _bytes(SAMPLES[name])
    header = bytearray(frames[1])
    i = data.draw(st.integers(0, len(header) - 1))
    header[i] ^= data.draw(st.integers(1, 255))
    mutated = [frames[0], bytes(header), *frames[2:]]
    msg = _decode_or_reject(mutated)
    if msg is not None:                     # e.g. a digit of sent_s changed: a different, valid message
        _assert_consistent(msg, mutated)
        ref = wire.decode(frames)
        # the same bytes; a flipped digit of a shape may legitimately reread them as another shape of the
        # same size (there is no checksum: docs/wire-format.md)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(msg.arrays, ref.arrays))
        if msg.kind == "capture":
            try:                            # the frame description is checked by decode_capture
                wire.decode_capture(msg)
            except WireFormatError:
                assert msg.header["frame"] is not None


_structural = st.sampled_from(["truncate", "extend", "drop", "duplicate", "swap"])


@FUZZ
@given(st.sampled_from(sorted(SAMPLES)), _structural, st.data())
def test_structural_mutations_are_always_rejected(name: str, how: str, data: st.DataObject) -> None:
    frames = _bytes(SAMPLES[name])
    buffers = [i for i in range(2, len(frames)) if frames[i]]
    if how in ("truncate", "extend") and not buffers:
        how = "drop"
    if how == "truncate":
        i = data.draw(st.sampled_from(buffers))
        frames[i] = frames[i][:data.draw(st.integers(0, len(frames[i]) - 1))]
    elif how == "extend":
        i = data.draw(st.sampled_from(buffers))
        frames[i] = frames[i] + data.draw(st.binary(min_size=1, max_size=16))
    elif how == "drop":
        del frames[data.draw(st.integers(0, len(frames) - 1))]
    elif how == "duplicate":
        i = data.draw(st.integers(0, len(frames) - 1))
        frames.insert(i, frames[i])
    else:
        frames[0], frames[1] = frames[1], frames[0]
    with pytest.raises(WireFormatError):
        wire.decode(frames)


@FUZZ
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_changed_dtype_or_shape_is_rejected_or_consistent(name: str, data: st.DataObject) -> None:
    frames = _bytes(SAMPLES[name])
    header = json.loads(frames[1])
    if not header["arrays"]:
        header["arrays"].append({"dtype": "uint8", "shape": [0]})
    spec = header["arrays"][data.draw(st.integers(0, len(header["arrays"]) - 1))]
    if data.draw(st.booleans()):
        spec["dtype"] = data.draw(st.sampled_from(list(wire.DTYPES) + ["float16", "object", "<c8", 3, None, [1], {"a": 1}]))
    else:
        spec["shape"] = data.draw(st.lists(st.integers(-2, 600), max_size=4) | _json)
    frames[1] = json.dumps(header).encode()
    msg = _decode_or_reject(frames)
    if msg is not None:        # the same bytes read another way (e.g. 4 x 16 -> 8 x 8): consistent, not corrupt
        _assert_consistent(msg, frames)


@FUZZ
@given(
    arrays=st.lists(
        st.sampled_from(list(wire.DTYPES)).flatmap(lambda d: hnp.arrays(
            np.dtype(d), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
            elements={"allow_nan": False, "allow_infinity": False} if np.dtype(d).kind in "fc" else None)),
        max_size=3),
    fields=st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True).filter(lambda k: k not in ("v", "sent_s", "tracks")),
                           st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1)
                                        | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
                                        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                                            max_size=3),
                                        max_leaves=10),
                           max_size=4),
    seq=st.integers(0, 2**63 - 1),
    t0_s=st.floats(allow_nan=False, allow_infinity=False),
)
def test_whatever_encode_accepts_decodes_identically(arrays: list[np.ndarray], fields: dict[str, Any], seq: int,
                                                     t0_s: float) -> None:
    frames = wire.encode("tracks", "node-0", seq, tracks=[], t0_s=t0_s, arrays=arrays, **fields)
    msg = wire.decode(frames)
    _assert_consistent(msg, _bytes(frames))
    assert msg.seq == seq and msg.t0_s == t0_s
    assert {k: msg.header[k] for k in fields} == fields
    for got, want in zip(msg.arrays, arrays):
        assert got.shape == want.shape and got.dtype.name == want.dtype.name and np.array_equal(got, want)


# ---- nothing is unpickled -------------------------------------------------------------------
class _Evil:
    """Unpickling this creates the file at ``path``."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (self.path, "w")


@settings(max_examples=30, deadline=None)
@given(protocol=st.integers(0, pickle.HIGHEST_PROTOCOL), where=st.sampled_from(["header", "buffer", "field"]))
def test_pickles_are_never_loaded(tmp_path_factory: pytest.TempPathFactory, protocol: int, where: str) -> None:
    target = tmp_path_factory.mktemp("pickle") / "pwned"
    payload = pickle.dumps(_Evil(str(target)), protocol=protocol)
    frames = _bytes(CAP)
    if where == "header":
        frames[1] = payload
        with pytest.raises(WireFormatError):
            wire.decode(frames)
    elif where == "buffer":
        frames[2] = payload
        with pytest.raises(WireFormatError, match=r"^frame 2 size"):
            wire.decode(frames)
        # even declared as raw bytes, a pickle stays bytes
        frames = _with_header(CAP, lambda h: h["arrays"][0].update(dtype="uint8", shape=[len(payload)]))
        frames[2] = payload
        with pytest.raises(WireFormatError, match=r"^arrays = .*allowed one complex64 array"):
            wire.decode(frames)
        msg = wire.decode(wire.encode("tracks", "n", 0, tracks=[], arrays=[np.frombuffer(payload, np.uint8)]))
        assert msg.arrays[0].tobytes() == payload
    else:
        msg = wire.decode(wire.encode("tracks", "n", 0, tracks=[], blob=payload.decode("latin-1")))
        assert msg.header["blob"] == payload.decode("latin-1")
    assert not target.exists()


def test_the_module_has_no_way_to_unpickle_or_eval() -> None:
    source = Path(wire.__file__).read_text()
    tree = ast.parse(source)
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib", "zmq"}
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert not called & {"eval", "exec", "compile", "__import__"}
    assert "allow_pickle" not in source and "np.load(" not in source and "recv_pyobj" not in source


# ---- rdmap (schema version 2) ------------------------------------------------------------------
def test_rdmap_round_trip_and_versions() -> None:
    frames = SAMPLES["rdmap"]
    msg = wire.decode(frames)
    assert msg.topic == b"rdmap/bs1" and msg.header["v"] == 2
    rd = wire.decode_rdmap(msg)
    assert rd.power_db.dtype == np.float32 and rd.power_db.shape == (4, 3) and rd.power_db[3, 2] == 11.0
    assert rd.range_m.tolist() == [0.0, 10.0, 20.0, 30.0] and rd.velocity_mps.tolist() == [-5.0, 0.0, 5.0]
    assert (rd.node_id, rd.seq, rd.t0_s, rd.geometry, rd.num_channels, rd.max_range_m, rd.decimation) == \
        ("bs1", 7, 0.25, "monostatic", 2, 30.0, (2, 1))
    assert rd.detections == [_detection()] and rd.node is not None and rd.node["yaw_deg"] == 90.0
    assert rd.stats["lost"] == 1 and rd.sensing["pfa"] == 1e-6 and rd.truth == {"paths": [], "targets": []}
    # the kinds of version 1 still go out as v = 1, so a version-1 receiver takes them
    assert wire.decode(SAMPLES["detections"]).header["v"] == 1
    # an rdmap claiming version 1 is rejected: version 1 had no such kind
    with pytest.raises(WireFormatError, match=r"^kind = 'rdmap': allowed the kinds of schema version 1 \(capture"):
        wire.decode(_with_header(frames, _set("v", 1)))


RDMAP_CASES = [
    ("no-node", _drop("node"), None),
    ("two-arrays", lambda h: h["arrays"].pop(), r"^arrays = .2 entries.: allowed one entry per buffer frame"),
    ("axis-dtype", lambda h: h["arrays"][1].update(dtype="float32", shape=[8]), r"^arrays = .*allowed three arrays"),
    ("geometry", _set("geometry", "quasistatic"), r"^geometry = 'quasistatic': allowed monostatic or bistatic"),
    ("channels", _set("num_channels", 0), r"^num_channels = 0: allowed an integer 1 \.\.\. 65536"),
    ("max-range", _set("max_range_m", -1.0), r"^max_range_m = -1\.0: allowed a finite number > 0 m"),
    ("decimation", _set("decimation", [0, 1]), r"^decimation = \[0, 1\]: allowed a list of 2 integers 1"),
    ("dets", _set("detections", [{"range_m": 1.0}]), r"^detections\[0\] = .*allowed an object with exactly"),
    ("pfa", lambda h: h["sensing"].__setitem__("pfa", 0.7), r"^sensing\.pfa = 0\.7: allowed a number 0 < pfa < 0\.5"),
    ("guard", lambda h: h["sensing"].__setitem__("guard_cells", [1]), r"^sensing\.guard_cells = \[1\]"),
    ("node-pos", lambda h: h["node"].__setitem__("position_m", [1.0]), r"^node\.position_m = \[1\.0\]: allowed"),
    ("node-yaw", lambda h: h["node"].pop("yaw_deg"), r"^node\.yaw_deg = None: allowed a finite number"),
    ("stats", _drop("stats"), r"^stats = 'missing': allowed an object"),
]


@pytest.mark.parametrize("name, change, pattern", RDMAP_CASES, ids=[c[0] for c in RDMAP_CASES])
def test_rdmap_fields_are_checked(name: str, change: Any, pattern: str | None) -> None:
    frames = _with_header(SAMPLES["rdmap"], change)
    if pattern is None:                                    # node is optional: unknown position
        assert wire.decode_rdmap(wire.decode(frames)).node is None
        return
    with pytest.raises(WireFormatError, match=pattern):
        wire.decode(frames)


def test_rdmap_axes_must_ascend() -> None:
    power = np.zeros((2, 3), np.float32)
    with pytest.raises(WireFormatError, match=r"^velocity_mps = \[5\.0, 0\.0, -5\.0\]: allowed a 1-D axis, strictly"):
        wire.encode_rdmap("bs1", 0, 0.0, power, np.array([0.0, 1.0]), np.array([5.0, 0.0, -5.0]), [],
                          geometry="monostatic", num_channels=1, max_range_m=1.0, sensing=SAMPLES_SENSING, stats={})
    # a sender that does not check: the receiver does
    frames = _bytes(SAMPLES["rdmap"])
    frames[3] = np.array([0.0, 10.0, 10.0, 30.0]).tobytes()
    with pytest.raises(WireFormatError, match=r"^range_m = \[0\.0, 10\.0, 10\.0, 30\.0\]"):
        wire.decode_rdmap(wire.decode(frames))
    with pytest.raises(WireFormatError, match=r"^kind = 'detections': allowed 'rdmap'"):
        wire.decode_rdmap(wire.decode(DET))


SAMPLES_SENSING = {"pfa": 1e-6, "guard_cells": [4, 2], "training_cells": [8, 4]}


def test_estimates_round_trip_as_records_and_malformed_ones_are_rejected() -> None:
    msg = wire.decode(_bytes(wire.encode_estimates("host", 3, 1.5, [ESTIMATE])))
    (back,) = wire.decode_estimates(msg)
    assert isinstance(back, TargetEstimate) and back.t_s == 1.5
    for name in ("position_m", "cov_position_m2", "velocity_mps", "cov_velocity_mps2"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ESTIMATE, name))
    assert (back.nodes, back.single_m, back.mode, back.case) == (ESTIMATE.nodes, ESTIMATE.single_m, "macro_micro", "A")
    obj = msg.header["estimates"][0]                       # the wire's object: 2 x 2 horizontal covariances
    assert obj["cov_position_m2"] == [[1e-4, 0.0], [0.0, 2e-4]] and obj["consensus"] is True
    single = dataclasses.replace(ESTIMATE, mode="single")
    obj = wire.decode(_bytes(wire.encode_estimates("host", 4, 1.5, [single]))).header["estimates"][0]
    assert obj["consensus"] is False and "mode" not in obj
    (back,) = wire.decode_estimates(wire.decode(_bytes(wire.encode_estimates("host", 4, 1.5, [single]))))
    assert back.mode == "single"
    good = wire.estimate_to_dict(ESTIMATE)
    for field, bad in (("position_m", [1.0, float("nan"), 0.0]), ("position_m", [1.0, 2.0]),
                       ("cov_position_m2", [[1.0, 0.0]]), ("velocity_mps", "fast"), ("nodes", "bs0"),
                       ("mode", "macro"), ("case", "C"), ("consensus", "yes"), ("cov_velocity_mps2", None)):
        with pytest.raises(WireFormatError, match=field):
            wire.decode_estimates(wire.decode(_bytes(wire.encode("estimates", "host", 0, t0_s=0.0,
                                                                 estimates=[{**good, field: bad}]))))
    with pytest.raises(WireFormatError, match=r"estimates\[0\] = .*positive semi-definite"):
        wire.decode_estimates(wire.decode(_bytes(wire.encode("estimates", "host", 0, t0_s=0.0, estimates=[
            {**good, "cov_position_m2": [[1.0, 0.0], [0.0, -1.0]]}]))))
    with pytest.raises(WireFormatError, match="details has 2 entries for 1 estimates"):
        wire.encode_estimates("host", 0, 0.0, [ESTIMATE], details=[None, None])


def test_an_estimates_cross_covariance_travels_and_a_bad_one_is_rejected() -> None:
    crossed = dataclasses.replace(ESTIMATE, cov_position_velocity_m2ps=np.array([[5e-5, -2e-5, 0.0], [1e-5, 1e-4, 0.0],
                                                                                  [0.0, 0.0, 0.0]]))
    msg = wire.decode(_bytes(wire.encode_estimates("host", 3, 1.5, [crossed, ESTIMATE])))
    obj, plain = msg.header["estimates"]
    assert obj["cov_position_velocity_m2ps"] == [[5e-5, -2e-5], [1e-5, 1e-4]]
    assert "cov_position_velocity_m2ps" not in plain                  # not known: not sent
    back, back_plain = wire.decode_estimates(msg)
    np.testing.assert_array_equal(back.covariance, crossed.covariance)
    assert back_plain.cov_position_velocity_m2ps is None
    good = wire.estimate_to_dict(crossed)
    no_velocity = {k: v for k, v in good.items() if k not in ("velocity_mps", "cov_velocity_mps2")}
    for obj, pattern in (({**good, "cov_position_velocity_m2ps": [[1.0, 0.0]]},
                          r"estimates\[0\]\.cov_position_velocity_m2ps = \[\[1\.0, 0\.0\]\]: allowed a 2 x 2"),
                         ({**good, "cov_position_velocity_m2ps": [[1.0, "0"], [0.0, 1.0]]},
                          r"estimates\[0\]\.cov_position_velocity_m2ps"),
                         ({**good, "cov_position_velocity_m2ps": {"xx": 1.0}},
                          r"estimates\[0\]\.cov_position_velocity_m2ps"),
                         (no_velocity, r"estimates\[0\]\.cov_position_velocity_m2ps = .*absent where velocity_mps is"),
                         ({**good, "cov_position_velocity_m2ps": [[1.0, 0.0], [0.0, 1.0]]},   # beyond the variances
                          r"estimates\[0\] = .*joint covariance has a negative eigenvalue")):
        with pytest.raises(WireFormatError, match=pattern):
            wire.decode_estimates(wire.decode(_bytes(wire.encode("estimates", "host", 0, t0_s=0.0, estimates=[obj]))))


def test_an_estimates_unknown_height_travels_and_a_bad_one_is_rejected() -> None:
    """A single node's fix with the targets' height spread (``fusion.target_height_std_m``) has a z variance and
    x-z, y-z cross terms; the wire carried only the horizontal block, and a receiver (the centralised core's
    tracker) took the height as known.  Now the z row travels as ``cov_position_z_m2`` (absent where the height
    is known, so older receivers see what they saw)."""
    cov = np.array([[4.0, 1.0, 3.0], [1.0, 9.0, -6.0], [3.0, -6.0, 900.0]])
    tall = dataclasses.replace(ESTIMATE, cov_position_m2=cov)
    msg = wire.decode(_bytes(wire.encode_estimates("host", 3, 1.5, [tall, ESTIMATE])))
    obj, plain = msg.header["estimates"]
    assert obj["cov_position_m2"] == [[4.0, 1.0], [1.0, 9.0]] and obj["cov_position_z_m2"] == [3.0, -6.0, 900.0]
    assert "cov_position_z_m2" not in plain
    back, back_plain = wire.decode_estimates(msg)
    np.testing.assert_array_equal(back.cov_position_m2, cov)
    np.testing.assert_array_equal(back.covariance[:3, :3], cov)
    np.testing.assert_array_equal(back_plain.cov_position_m2, ESTIMATE.cov_position_m2)
    good = wire.estimate_to_dict(tall)
    for bad, pattern in (([3.0, -6.0], r"cov_position_z_m2 = \[3\.0, -6\.0\]: allowed \[c_xz, c_yz, var_z\]"),
                         ([3.0, -6.0, -1.0], r"cov_position_z_m2 = \[3\.0, -6\.0, -1\.0\]: allowed"),
                         ([3.0, "x", 900.0], r"cov_position_z_m2"), ([3.0, True, 900.0], r"cov_position_z_m2"),
                         ([float("inf"), 0.0, 1.0], r"cov_position_z_m2"), ({"zz": 1.0}, r"cov_position_z_m2"),
                         ("900", r"cov_position_z_m2"), ([[3.0], [-6.0], [900.0]], r"cov_position_z_m2"),
                         ([300.0, 0.0, 1.0], r"estimates\[0\] = .*positive semi-definite")):   # beyond the variances
        with pytest.raises(WireFormatError, match=pattern):
            wire.decode_estimates(wire.decode(_bytes(wire.encode("estimates", "host", 0, t0_s=0.0,
                                                                 estimates=[{**good, "cov_position_z_m2": bad}]))))
    (known,) = wire.decode_estimates(wire.decode(_bytes(wire.encode("estimates", "host", 0, t0_s=0.0, estimates=[
        {**good, "cov_position_z_m2": None}]))))                      # null: absent, the height known
    assert known.cov_position_m2[2, 2] == 0.0


# ---- truth (issue 13, item 2): every wrong JSON type, nested ones too --------------------------------
TRUTH_CASES = [
    ("list", [1, 2], r"^truth = \[1, 2\]: allowed null or an object with the lists paths and targets"),
    ("number", 3, r"^truth = 3: allowed null or an object"),
    ("string", "paths", r"^truth = 'paths': allowed null or an object"),
    ("bool", True, r"^truth = True: allowed null or an object"),
    ("paths-object", {"paths": {"kind": "target"}}, r"^truth\.paths = \{'kind': 'target'\}: allowed a list"),
    ("paths-null", {"paths": None}, r"^truth\.paths = None: allowed a list"),
    ("path-number", {"paths": [1]}, r"^truth\.paths\[0\] = 1: allowed an object with kind"),
    ("path-no-kind", {"paths": [{"range_m": 1.0}]}, r"^truth\.paths\[0\]\.kind = 'missing': allowed a string"),
    ("range-string", {"paths": [{"kind": "los", "range_m": "far"}]},
     r"^truth\.paths\[0\]\.range_m = 'far': allowed a finite number in m"),
    ("range-bool", {"paths": [{"kind": "los", "range_m": True}]}, r"^truth\.paths\[0\]\.range_m = True"),
    ("monostatic-without-snr", {"paths": [{"kind": "los", "range_m": 1.0, "velocity_mps": 0.0}]},
     r"^truth\.paths\[0\]\.snr_per_re_db = None: allowed a finite number in dB"),
    ("monostatic-vector-velocity", {"paths": [{"kind": "los", "range_m": 1.0, "velocity_mps": [1.0, 0.0],
                                               "snr_per_re_db": 3.0}]}, r"^truth\.paths\[0\]\.velocity_mps = \[1"),
    ("target-without-id", {"paths": [{"kind": "target", "position_m": [1.0, 2.0]}]},
     r"^truth\.paths\[0\]\.target = 'missing': allowed the target's id"),
    ("target-without-position", {"paths": [{"kind": "target", "target": "car"}]},
     r"^truth\.paths\[0\]\.position_m = 'missing'"),
    ("position-nested", {"paths": [{"kind": "los", "position_m": [[1.0], 2.0]}]},
     r"^truth\.paths\[0\]\.position_m\[0\] = \[1\.0\]: allowed a finite number in m"),
    ("targets-object", {"targets": {"id": "car"}}, r"^truth\.targets = .*allowed a list"),
    ("target-id-number", {"targets": [{"id": 1, "position_m": [0.0, 0.0]}]}, r"^truth\.targets\[0\]\.id = 1"),
    ("target-position-string", {"targets": [{"id": "car", "position_m": "here"}]},
     r"^truth\.targets\[0\]\.position_m = 'here': allowed a list of 2 or 3 finite numbers of m"),
    ("target-velocity-4", {"targets": [{"id": "car", "position_m": [0.0, 0.0], "velocity_mps": [1, 2, 3, 4]}]},
     r"^truth\.targets\[0\]\.velocity_mps = \[1, 2, 3, 4\]"),
]


@pytest.mark.parametrize("kind", ["detections", "rdmap", "capture"])
@pytest.mark.parametrize("truth, pattern", [c[1:] for c in TRUTH_CASES], ids=[c[0] for c in TRUTH_CASES])
def test_truth_of_every_wrong_type_is_rejected(kind: str, truth: Any, pattern: str) -> None:
    if kind == "capture":
        frames = _with_header(CAP, lambda h: h["metadata"].__setitem__("truth", truth))
        pattern = pattern.replace("^truth", "^metadata\\.truth")
    else:
        frames = _with_header(SAMPLES[kind] if kind == "rdmap" else DET, _set("truth", truth))
    with pytest.raises(WireFormatError, match=pattern):
        wire.decode(frames)


def test_a_sender_leaves_out_a_capture_truth_that_breaks_the_schema() -> None:
    cap = dataclasses.replace(_capture(1, 8), metadata={"truth": [1, 2], "radio": "sim", "ris": [{"id": 3}]})
    back = wire.decode_capture(wire.decode(wire.encode_capture(cap)))
    assert back.metadata == {"radio": "sim"}
    assert wire.checked_truth([1, 2]) is None and wire.checked_truth({"paths": []}) == {"paths": []}
    assert wire.radio_of({"radio": "pluto", "replay": {"index": 0}}) == "replay"
    assert wire.radio_of({"radio": "usrp"}) == "usrp" and wire.radio_of({"radio": 5}) is None


# ---- status (schema version 3) ------------------------------------------------------------------
def test_status_round_trip() -> None:
    absent = wire.NodeStatus("bs1", 0, "absent", 100.0, 100.0, wire.Outage(100.0), 1)
    back = wire.NodeStatus("bs1", 1, "present", 103.5, None, wire.Outage(100.0, 103.5, 70, "rate", True), 1)
    for status in (absent, back, wire.NodeStatus("bs1", 2, "finished", 104.0, None, None, 1)):
        msg = wire.decode(wire.encode_status(status))
        assert msg.topic == b"status/bs1" and msg.header["v"] == 3
        assert wire.decode_status(msg) == status
    assert back.outage is not None and back.outage.duration_s == 3.5
    assert wire.decode(wire.encode_status(back)).header["outage"]["duration_s"] == 3.5
    with pytest.raises(WireFormatError, match=r"^kind = 'status': allowed the kinds of schema version 2"):
        wire.decode(_with_header(SAMPLES["status"], _set("v", 2)))


STATUS_CASES = [
    ("state", _set("state", "gone"), r"^state = 'gone': allowed present or absent or finished"),
    ("absent-without-since", _set("state", "absent"), r"^absent_since_s = None: allowed a time with an outage"),
    ("since-while-present", _set("absent_since_s", 5.0), r"^absent_since_s = 5\.0"),
    ("missed-float", lambda h: h["outage"].__setitem__("frames_missed", 2.5), r"^outage\.frames_missed = 2\.5"),
    ("missed-negative", lambda h: h["outage"].__setitem__("frames_missed", -1), r"^outage\.frames_missed = -1"),
    ("from", lambda h: h["outage"].__setitem__("frames_missed_from", "guess"), r"^outage\.frames_missed_from"),
    ("end-before-start", lambda h: h["outage"].__setitem__("end_s", 0.0), r"^outage\.end_s = 0\.0: allowed a time >="),
    ("outage-list", _set("outage", [1]), r"^outage = \[1\]: allowed null or an object"),
    ("outages-bool", _set("outages", True), r"^outages = True: allowed an integer"),
    ("restarted", lambda h: h["outage"].__setitem__("restarted", "yes"), r"^outage\.restarted = 'yes'"),
]


@pytest.mark.parametrize("change, pattern", [c[1:] for c in STATUS_CASES], ids=[c[0] for c in STATUS_CASES])
def test_status_fields_are_checked(change: Any, pattern: str) -> None:
    with pytest.raises(WireFormatError, match=pattern):
        wire.decode(_with_header(SAMPLES["status"], change))


def test_heartbeat_counters_are_typed() -> None:
    for key, value, pattern in (("captured", 2.5, r"^stats\.captured = 2\.5: allowed an integer 0"),
                                ("sent", -1, r"^stats\.sent = -1"), ("final", "yes", r"^stats\.final = 'yes'"),
                                ("started_s", "now", r"^stats\.started_s = 'now': allowed a finite number")):
        with pytest.raises(WireFormatError, match=pattern):
            wire.decode(_with_header(SAMPLES["heartbeat"], lambda h, k=key, v=value: h["stats"].__setitem__(k, v)))


def test_ris_steps_of_a_capture_are_checked() -> None:
    good = {"id": "ris0", "incoming_deg": 30.0, "steer_deg": -10.0, "scan_index": 1, "scan_size": 4}
    for change, pattern in (({"scan_index": 4}, r"^metadata\.ris\[0\]\.scan_index = 4: allowed an integer 0 \.\.\. 3"),
                            ({"scan_size": 0}, r"^metadata\.ris\[0\]\.scan_size = 0"),
                            ({"id": None}, r"^metadata\.ris\[0\]\.id = None"),
                            ({"steer_deg": "up"}, r"^metadata\.ris\[0\]\.steer_deg = 'up'")):
        frames = _with_header(CAP, lambda h, c=change: h["metadata"].__setitem__("ris", [{**good, **c}]))
        with pytest.raises(WireFormatError, match=pattern):
            wire.decode(frames)
    assert wire.decode(_with_header(CAP, lambda h: h["metadata"].__setitem__("ris", [good]))).header["metadata"]["ris"]


@pytest.mark.parametrize("value, kept", [(0.5, True), (7, True), (0.0, False), (-1.0, False), (float("inf"), False),
                                         (float("nan"), False), ("0.5", False), (True, False), (None, False)])
def test_capture_metadata_frame_interval_is_a_positive_finite_number(value: Any, kept: bool) -> None:
    """``metadata.frame_interval_s`` (a simulated radio's spacing of captures in scene time): a sender leaves a bad
    one out, a receiver refuses a message that carries one."""
    cap = dataclasses.replace(_capture(1, 8), metadata={"frame_interval_s": value})
    frames = wire.encode_capture(cap)
    back = wire.decode_capture(wire.decode(frames))
    assert ("frame_interval_s" in back.metadata) == kept and (not kept or back.metadata["frame_interval_s"] == value)
    if not kept and value is not None and not (isinstance(value, float) and not np.isfinite(value)):
        header = json.loads(bytes(frames[1]))
        header["metadata"]["frame_interval_s"] = value
        forged = [frames[0], json.dumps(header).encode(), *frames[2:]]
        with pytest.raises(WireFormatError, match="metadata.frame_interval_s"):
            wire.decode_capture(wire.decode(forged))
