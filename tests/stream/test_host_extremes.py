"""Messages the wire accepts but whose values are extreme (finite, in the wire's ranges): the host keeps sensing
the node, and its counters stay finite (a single infinity in them stopped every later message of the node)."""

from __future__ import annotations

import itertools
import json
import math
import time

import numpy as np
import pytest
import zmq

from sdr_isac import config
from sdr_isac.capture import Capture
from sdr_isac.sensing.detection import Detection
from sdr_isac.stream import FusionHost, wire

_names = itertools.count()
DETECTION = Detection(10.0, 1.0, 100.0, 1e-7, 10.0, "monostatic", None, 1.0, 1.0, None, 10.0)


@pytest.fixture
def host_and_push():
    k = next(_names)
    cfg = config.loads(f"""
[frame]
numerology = 3
num_rb = 10
fft_size = 128
carrier_hz = 24e9
num_slots = 1
[radio]
node_id = "a"
[stream]
host_endpoint = "inproc://extremes-host-{k}"
publish_endpoint = "inproc://extremes-pub-{k}"
heartbeat_s = 0.1
""")
    ctx = zmq.Context.instance()
    host = FusionHost(cfg, context=ctx).start()
    push = ctx.socket(zmq.PUSH)
    push.connect(cfg.stream.host_endpoint)
    try:
        yield host, push
    finally:
        host.stop()
        push.close(0)


def _send_detections(push, seq: int, sent_s: float | None = None) -> None:
    frames = wire.encode_detections("a", seq, seq * 1e-3, [DETECTION])
    if sent_s is not None:
        header = json.loads(bytes(frames[1]))
        header["sent_s"] = sent_s
        frames[1] = json.dumps(header).encode()
    push.send_multipart(frames)


def _wait_processed(host, count: int) -> dict:
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        node = host.stats()["nodes"].get("a", {})
        if node.get("processed", 0) + node.get("failed", 0) >= count:
            break
        time.sleep(0.02)
    return host.stats()


def _all_finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_all_finite(v) for v in value)
    return True


def test_a_capture_at_a_tiny_sample_rate_does_not_stop_the_nodes_detections(host_and_push):
    host, push = host_and_push
    capture = Capture(iq=np.ones((1, 4), np.complex64), sample_rate_hz=5e-324, center_freq_hz=0.0, t0_s=0.0,
                      node_id="a", seq=0, metadata={})
    push.send_multipart(wire.encode_capture(capture))       # 4 samples at 5e-324 Hz: a period of 8e323 s
    for seq in range(1, 6):
        _send_detections(push, seq)
    stats = _wait_processed(host, 6)
    node = stats["nodes"]["a"]
    assert node["processed"] >= 5 and len(host.detections_by_node()["a"]) == 5
    assert _all_finite(stats)


def test_forged_send_times_are_not_latencies(host_and_push):
    host, push = host_and_push
    _send_detections(push, 0)
    _send_detections(push, 1, sent_s=-1.7e308)              # two of them would sum to infinity
    _send_detections(push, 2, sent_s=-1.7e308)
    for seq in range(3, 8):
        _send_detections(push, seq)
    stats = _wait_processed(host, 8)
    node = stats["nodes"]["a"]
    assert node["processed"] == 8 and node["latency_implausible"] == 2
    assert 0.0 <= node["latency_mean_s"] < 10.0 and _all_finite(stats)


def test_what_a_node_keeps_at_the_host_is_bounded(host_and_push):
    """Valid but huge messages: 10000 detections each, a truth of 10000 paths with extra keys, a heartbeat with a nested
    tree. The host keeps at most 20000 detections of a node, no truth beyond 20000 JSON values, and a heartbeat's
    scalar counters only; the newest results stay."""
    from sdr_isac.stream import host as host_module

    host, push = host_and_push
    many = [DETECTION] * wire.MAX_ITEMS
    for seq in range(4):
        push.send_multipart(wire.encode_detections("a", seq, seq * 1e-3, many))
    big_truth = {"paths": [{"kind": "los", "x": 0} for _ in range(wire.MAX_ITEMS)]}      # 30001 JSON values
    push.send_multipart(wire.encode_detections("a", 4, 4e-3, [DETECTION], radio="sim", truth=big_truth))
    push.send_multipart(wire.encode_detections("a", 5, 5e-3, [DETECTION], radio="sim", truth={"paths": [{"kind": "los"}]}))
    push.send_multipart(wire.encode_heartbeat("a", 0, {"captured": 7, "tree": {"x": [1] * 1000}, "note": "ok"}))
    stats = _wait_processed(host, 6)
    node = stats["nodes"]["a"]
    kept = host.detections_by_node()["a"]
    assert node["processed"] == 6 and node["truth_dropped"] == 1
    assert node["kept_detections"] == sum(len(r["detections"]) for r in kept) <= host_module._KEEP_DETECTIONS
    assert [r["seq"] for r in kept] == [3, 4, 5]                        # the newest, within the budget
    assert kept[1]["truth"] is None and kept[2]["truth"] == {"paths": [{"kind": "los"}]}
    deadline = time.monotonic() + 5.0
    while host.nodes["a"].heartbeat.get("captured") != 7 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert host.nodes["a"].heartbeat == {"captured": 7, "note": "ok"} and node["node_captured"] in (None, 7)


def test_a_host_open_to_the_network_without_curve_says_so(caplog):
    from sdr_isac.stream.demo import free_ports
    from sdr_isac.stream.host import _loopback

    assert all(_loopback(e) for e in ("inproc://x", "ipc:///tmp/x", "tcp://127.0.0.1:5", "tcp://localhost:5",
                                      "tcp://[::1]:5"))
    assert not any(_loopback(e) for e in ("tcp://0.0.0.0:5", "tcp://*:5", "tcp://192.168.2.10:5"))
    port, pub = free_ports(2)
    cfg = config.loads(f"[stream]\nhost_endpoint = \"tcp://0.0.0.0:{port}\"\n"
                       f"publish_endpoint = \"tcp://127.0.0.1:{pub}\"\n")
    with caplog.at_level("WARNING", logger="sdr_isac.stream.host"):
        host = FusionHost(cfg, context=zmq.Context.instance())
        host.stop()
    assert any("without CURVE" in r.getMessage() and "curve_server_secret" in r.getMessage() for r in caplog.records)
