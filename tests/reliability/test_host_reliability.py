"""The fusion host keeps running through anything a peer sends (issue 13, items 1, 2 and 9).

Malformed messages go through a real ZeroMQ socket to a running FusionHost (threads, in this process)
while a simulated node streams: each is counted in ``rejected``, the threads stay alive, and every frame
of the node arrives.  An exception in any step of the host is counted and logged by its one guard, and
the threads go on.  ``sdr-isac host --out`` survives a detections message with a malformed truth.
Ground truth is published only for simulated or replayed captures.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from sdr_isac import config, radio
from sdr_isac.errors import WireFormatError
from sdr_isac.stream import FusionHost, NodeAgent, wire
from sdr_isac.stream.demo import free_ports
from sdr_isac.waveform import IsacFrame
from tests.stream import wire_oracle as oracle

CONFIG = """
name = "reliability"
[frame]
numerology = 3
num_rb = 10
fft_size = 128
carrier_hz = 24e9
num_slots = 1
[radio]
node_id = "a"
[scene]
seed = 1
[[scene.nodes]]
id = "a"
[[scene.targets]]
id = "t"
position_m = [50.0, 5.0, 0.0]
velocity_mps = [-10.0, 0.0, 0.0]
snr_per_re_db = 5
[stream]
host_endpoint = "tcp://127.0.0.1:{port}"
publish_endpoint = "tcp://127.0.0.1:{publish}"
heartbeat_s = 0.1
absent_after_heartbeats = 20
frame_rate_hz = {rate}
frames = {frames}
"""


def make_config(tmp_path: Path, rate: float = 20.0, frames: int = 20) -> tuple[Path, config.Config]:
    port, publish = free_ports(2)
    path = tmp_path / "host.toml"
    path.write_text(CONFIG.format(port=port, publish=publish, rate=rate, frames=frames))
    return path, config.load(path)


def wait_for(predicate: Any, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def with_header(frames: list[bytes], change: Any, buffers: list[bytes] | None = None) -> list[bytes]:
    header = json.loads(frames[1])
    change(header)
    return [f"{header.get('kind')}/{header.get('node_id')}".encode(), json.dumps(header).encode(),
            *(frames[2:] if buffers is None else buffers)]


def set_arrays(shape: list[int], dtype: str = "complex64") -> Any:
    return lambda h: h.__setitem__("arrays", [{"dtype": dtype, "shape": shape}])


SAMPLES = oracle.sample_messages()
MALFORMED = {
    "zero and huge dimensions (the reproducer)": with_header(SAMPLES["capture"], set_arrays([1, 0, 2**62]), [b""]),
    "zero and 2**63 - 1": with_header(SAMPLES["tracks"], lambda h: h.__setitem__(
        "arrays", [{"dtype": "uint8", "shape": [0, 2**63 - 1]}, {"dtype": "bool", "shape": [2]}])),
    "truth a list (item 2)": with_header(SAMPLES["detections"], lambda h: h.__setitem__("truth", [1, 2])),
    "a truth path without kind": with_header(SAMPLES["detections"],
                                             lambda h: h["truth"]["paths"][0].pop("kind")),
    "a RIS step beyond its scan": with_header(SAMPLES["capture"],
                                              lambda h: h["metadata"]["ris"][0].__setitem__("scan_index", 9)),
    "heartbeat stats a list": with_header(SAMPLES["heartbeat"], lambda h: h.__setitem__("stats", [1])),
    "final a string": with_header(SAMPLES["heartbeat"], lambda h: h["stats"].__setitem__("final", "yes")),
    "a truncated buffer": SAMPLES["capture"][:2] + [SAMPLES["capture"][2][:-1]],
    "not JSON": [b"capture/a", b"{not json"],
    "a NaN token": [b"capture/a", SAMPLES["capture"][1].replace(b'"t0_s":0.25', b'"t0_s":NaN')],
    "one frame": [b"capture/a"],
}


def _push(endpoint: str, messages: list[list[bytes]]) -> None:
    context = zmq.Context.instance()
    push = context.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 2000)
    try:
        push.connect(endpoint)
        for frames in messages:
            push.send_multipart(frames)
    finally:
        push.close()


def test_the_malformed_messages_are_what_they_claim() -> None:
    """Each MALFORMED message is refused by decode alone (so the host's counts below are of these)."""
    for frames in MALFORMED.values():
        with pytest.raises(WireFormatError):
            wire.decode(frames)


def test_malformed_messages_are_rejected_while_a_node_streams(tmp_path: Path) -> None:
    _, cfg = make_config(tmp_path, rate=20.0, frames=20)
    with FusionHost(cfg) as host:
        node = NodeAgent(cfg)
        result: dict[str, Any] = {}
        streaming = threading.Thread(target=lambda: result.update(node.run()), daemon=True)
        streaming.start()
        assert wait_for(lambda: host.stats()["nodes"].get("a", {}).get("received", 0) >= 3, 30)
        _push(cfg.stream.host_endpoint, list(MALFORMED.values()))
        streaming.join(60)
        assert not streaming.is_alive() and result["frames_sent"] == 20
        assert wait_for(lambda: host.finished({"a"}), 60)
        stats = host.stats()
    assert stats["rejected"] == len(MALFORMED), stats["errors"]
    assert stats["receiver_alive"] and stats["worker_alive"] and stats["errors_total"] == 0, stats["errors"]
    node_stats = stats["nodes"]["a"]
    assert node_stats["received"] == 20 and node_stats["processed"] == 20 and node_stats["lost"] == 0
    assert any("zero dimension does not make the others free" in e for e in stats["errors"])


def _captures(cfg: config.Config, count: int) -> list[Any]:
    with radio.open_radio(cfg) as r:
        frame = IsacFrame(cfg.frame)
        r.tx(frame.samples(), cyclic=True)
        return [r.rx(r.capture_length(frame.num_samples)) for _ in range(count)]


def test_an_exception_in_any_step_is_counted_and_the_threads_go_on(tmp_path: Path, monkeypatch: Any) -> None:
    """The one guard: a bug in accounting, sensing, publishing a map or checking presence ends nothing."""
    from sdr_isac.stream import host as host_mod

    _, cfg = make_config(tmp_path)
    captures = _captures(cfg, 6)
    failures = {"account": 1, "sense": 1, "map": 1, "presence": 1}

    def once(key: str, real: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if failures[key]:
                failures[key] -= 1
                raise RuntimeError(f"injected failure in {key}")
            return real(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(FusionHost, "_account", once("account", FusionHost._account))
    monkeypatch.setattr(FusionHost, "_publish_map", once("map", FusionHost._publish_map))
    monkeypatch.setattr(FusionHost, "_check_presence", once("presence", FusionHost._check_presence))
    monkeypatch.setattr(host_mod.sensing, "process", once("sense", host_mod.sensing.process))
    with FusionHost(cfg) as host:
        _push(cfg.stream.host_endpoint, [wire.encode_capture(c) for c in captures]
              + [wire.encode_heartbeat("a", 0, {"final": True})])
        assert wait_for(lambda: host.finished({"a"}) and not any(failures.values()), 60)
        stats = host.stats()
    assert stats["receiver_alive"] and stats["worker_alive"]
    assert stats["errors_total"] == 4 and stats["rejected"] == 0
    assert sum("injected failure" in e for e in stats["errors"]) == 4
    node_stats = stats["nodes"]["a"]
    # the first capture was lost to the accounting failure, the next one failed in sensing; the rest made it
    assert node_stats["received"] == 5 and node_stats["failed"] == 1 and node_stats["processed"] == 4


def test_host_command_survives_a_malformed_truth_and_writes_its_outputs(tmp_path: Path) -> None:
    """Item 2: ``sdr-isac host --out`` after a detections message whose truth is [1, 2] (exit 1 before)."""
    path, cfg = make_config(tmp_path)
    out = tmp_path / "out"
    host = subprocess.Popen([sys.executable, "-m", "sdr_isac", "host", "--config", str(path), "--nodes", "a",
                             "--timeout", "60", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert host.stdout is not None and host.stdout.readline().startswith("host:")
        good = wire.encode_detections("a", 0, 0.0, [], truth=oracle.TRUTH, radio="sim")
        _push(cfg.stream.host_endpoint, [MALFORMED["truth a list (item 2)"], good,
                                         wire.encode_heartbeat("a", 0, {"final": True})])
        stdout, stderr = host.communicate(timeout=60)
    finally:
        host.kill()
        host.wait(10)
    assert host.returncode == 0 and "Traceback" not in stderr, stderr
    stats = json.loads((out / "stream_stats.json").read_text())
    assert stats["rejected"] == 1 and stats["nodes"]["a"]["processed"] == 1 and stats["receiver_alive"]
    summary = json.loads((out / "a" / "summary.json").read_text())
    assert summary["frames"] == 1 and summary["per_frame"][0]["targets"][0]["target"] == "car"


@pytest.mark.parametrize("metadata, echoed", [({"radio": "sim"}, True), ({"radio": "pluto"}, False),
                                              ({"radio": "usrp"}, False), ({}, False),
                                              ({"radio": "pluto", "replay": {"index": 0}}, True)])
def test_truth_is_published_only_for_simulated_or_replayed_captures(tmp_path: Path, metadata: dict[str, Any],
                                                                     echoed: bool) -> None:
    from sdr_isac.stream.subscribe import subscribe

    _, cfg = make_config(tmp_path)
    (capture,) = _captures(cfg, 1)
    meta = {k: v for k, v in capture.metadata.items() if k != "radio"}
    capture = dataclasses.replace(capture, metadata={**meta, **metadata})
    assert capture.metadata["truth"]["targets"]
    with FusionHost(cfg):
        received = []
        messages = subscribe(cfg.stream.publish_endpoint, ("detections/", "rdmap/"), timeout_s=20)
        pusher = threading.Timer(0.5, _push, (cfg.stream.host_endpoint, [wire.encode_capture(capture)]))
        pusher.start()
        for msg in messages:
            received.append(msg)
            if len(received) == 2:
                break
        messages.close()
        pusher.join()
    assert {m.kind for m in received} == {"detections", "rdmap"}
    for msg in received:
        assert (msg.header.get("truth") is not None) == echoed, msg.header.get("truth")
    assert (wire.decode_rdmap(next(m for m in received if m.kind == "rdmap")).truth is not None) == echoed


def test_detections_from_a_real_radio_carry_no_truth_out(tmp_path: Path) -> None:
    from sdr_isac.stream.subscribe import subscribe

    _, cfg = make_config(tmp_path)
    with FusionHost(cfg):
        received = []
        messages = subscribe(cfg.stream.publish_endpoint, ("detections/",), timeout_s=20)
        batch = [wire.encode_detections("a", i, 0.0, [], truth=oracle.TRUTH, radio=radio_kind)
                 for i, radio_kind in enumerate(("pluto", "sim", "replay"))]
        pusher = threading.Timer(0.5, _push, (cfg.stream.host_endpoint, batch))
        pusher.start()
        for msg in messages:
            received.append(msg)
            if len(received) == 3:
                break
        messages.close()
        pusher.join()
    assert [m.header.get("truth") is not None for m in sorted(received, key=lambda m: m.seq)] == [False, True, True]
