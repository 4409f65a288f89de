"""The host senses captures on any executor with identical results: in its thread, a process pool, Dask.

The same simulated captures (hw_configs/sim_multi_bs.toml, four base stations, two frames) are pushed
through a host's real receive path (a PUSH socket on loopback, then each node's final heartbeat) with
``[host] executor`` = ``thread``, ``process`` (2 workers) and ``dask`` (a LocalCluster of 2 workers); the
detections of every capture and the fused estimates of every set must be identical.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import Future
from typing import Any

import pytest
import zmq

from sdr_isac import config
from sdr_isac.capture import Capture
from sdr_isac.executors import Executor
from sdr_isac.stream import FusionHost, wire
from sdr_isac.stream.demo import free_ports
from tests.fusion.test_engine import captures_of


def serve(cfg: config.Config, captures: list[Capture], host_cfg: config.HostConfig,
          timeout_s: float = 120.0) -> FusionHost:
    """Push ``captures`` (in order) and every node's final heartbeat to a host with ``host_cfg``; return it stopped."""
    port, publish = free_ports(2)
    cfg = dataclasses.replace(cfg, host=host_cfg, stream=dataclasses.replace(
        cfg.stream, host_endpoint=f"tcp://127.0.0.1:{port}", publish_endpoint=f"tcp://127.0.0.1:{publish}",
        publish_maps=False, queue_size=max(cfg.stream.queue_size, len(captures))))
    nodes = sorted({c.node_id for c in captures})
    host = FusionHost(cfg).start()
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    try:
        push.connect(cfg.stream.host_endpoint)
        for capture in captures:
            push.send_multipart(wire.encode_capture(capture), copy=False)
        for node in nodes:
            push.send_multipart(wire.encode_heartbeat(node, 1, {"final": True}))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not host.finished(set(nodes)):
            time.sleep(0.05)
        assert host.finished(set(nodes)), host.stats()
    finally:
        push.close(linger=1000)
        context.term()
        host.stop(timeout_s=30.0)
    return host


def outputs(host: FusionHost) -> tuple[dict[str, Any], list[Any]]:
    """What must not depend on the executor: every node's detections, the fused sets and their estimates."""
    dets = {n: [(d["seq"], d["t0_s"], d["detections"]) for d in items]
            for n, items in sorted(host.detections_by_node().items())}
    sets = [(item["nodes"], item["estimates"]) for item in host.estimates]
    return dets, sets


@pytest.fixture(scope="module")
def sim_captures() -> tuple[config.Config, list[Capture]]:
    cfg, frames = captures_of("sim_multi_bs", frames=2)
    return cfg, [c for frame in frames for c in frame]


def test_thread_process_and_dask_executors_give_identical_results(sim_captures: Any) -> None:
    cfg, captures = sim_captures
    reference = serve(cfg, captures, config.HostConfig(executor="thread"))
    stats = reference.stats()
    assert stats["errors_total"] == 0 and all(n["failed"] == 0 for n in stats["nodes"].values()), stats
    want = outputs(reference)
    assert want[1] and all(sets for _, sets in want[1])          # fused sets with estimates: a real comparison
    pytest.importorskip("dask.distributed")
    for host_cfg in (config.HostConfig(executor="process", workers=2),
                     config.HostConfig(executor="dask", workers=2, max_in_flight=3)):
        host = serve(cfg, captures, host_cfg)
        stats = host.stats()
        assert stats["errors_total"] == 0 and stats["worker_alive"] and stats["receiver_alive"], stats
        got = outputs(host)
        assert got == want, host_cfg


def test_a_capture_that_fails_on_a_worker_is_counted_and_the_rest_go_on(sim_captures: Any) -> None:
    cfg, captures = sim_captures
    broken = dataclasses.replace(captures[0], sample_rate_hz=captures[0].sample_rate_hz / 2)   # frame disagrees
    host = serve(cfg, [broken, *captures[1:]], config.HostConfig(executor="process", workers=2))
    stats = host.stats()
    assert stats["nodes"]["bs0"]["failed"] == 1 and stats["worker_alive"], stats
    assert stats["nodes"]["bs0"]["processed"] == 1 and stats["nodes"]["bs1"]["processed"] == 2, stats
    assert any("capture bs0/0" in e for e in stats["errors"]), stats["errors"]


def test_a_ris_scan_sensed_on_worker_processes_gives_the_same_estimate() -> None:
    """The RIS step needs each frame's CIM: off the host's process it comes back with the detections."""
    from tests.stream.live_scene import REPO, run_scene

    frames = len(config.load(REPO / "hw_configs/sim_bs_ris.toml").scene.ris[0].scan_deg)   # type: ignore[union-attr]
    found = []
    for host_cfg in (config.HostConfig(executor="thread"), config.HostConfig(executor="process", workers=2)):
        host = run_scene("sim_bs_ris", frames=frames, timeout_s=120.0, host_cfg=host_cfg)
        assert not host.errors, list(host.errors)
        found.append([(item["nodes"], item["estimates"]) for item in host.estimates
                      if item["estimates"][0].get("mode") == "ris"])
    assert len(found[0]) == 1 and found[1] == found[0]


class _ReversingExecutor(Executor):
    """Holds submitted tasks and runs them, newest first, from its own thread every 20 ms: results come back
    out of order, and it counts the most tasks it ever held (the host's work in flight)."""

    kind = "reversing"

    def __init__(self) -> None:
        super().__init__(workers=1)
        self.held: list[tuple[Future[Any], Any, tuple[Any, ...]]] = []
        self.most_held = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def submit(self, fn: Any, /, *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        with self.lock:
            self.held.append((fut, fn, args))
            self.most_held = max(self.most_held, len(self.held))
        return fut

    def _run(self) -> None:
        while not self.stop.wait(0.02):
            with self.lock:
                batch, self.held = self.held, []
            for fut, fn, args in reversed(batch):
                fut.set_result(fn(*args))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def test_work_in_flight_is_bounded_and_results_are_taken_in_arrival_order(sim_captures: Any,
                                                                          monkeypatch: Any) -> None:
    from sdr_isac.stream import host as host_mod

    cfg, captures = sim_captures
    reference = serve(cfg, captures, config.HostConfig(executor="thread"))
    fake = _ReversingExecutor()
    monkeypatch.setattr(host_mod, "make_executor", lambda *args, **kwargs: fake)
    host = serve(cfg, captures, config.HostConfig(executor="process", workers=1, max_in_flight=3))
    assert 1 < fake.most_held <= 3, fake.most_held
    assert host.stats()["errors_total"] == 0
    assert outputs(host) == outputs(reference)              # out-of-order completion, the same results
