"""Run a FusionHost and one NodeAgent thread per scene node on loopback, for the live fusion tests."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from sdr_isac import config
from sdr_isac.stream import FusionHost, NodeAgent
from sdr_isac.stream.demo import free_ports

REPO = Path(__file__).resolve().parents[2]


def run_scene(name: str, frames: int = 3, timeout_s: float = 90.0,
              host_cfg: config.HostConfig | None = None) -> FusionHost:
    """Load ``hw_configs/NAME.toml`` (or the file NAME), stream ``frames`` captures of every scene node to a host, return it stopped.

    ``host_cfg``: where the host senses (default: the file's ``[host]``).

    Asserts that every node's captures were all processed without failure.
    """
    cfg = config.load(name if name.endswith(".toml") else REPO / "hw_configs" / f"{name}.toml")
    assert cfg.scene is not None
    nodes = tuple(n.id for n in cfg.scene.nodes)
    port, publish = free_ports(2)
    cfg = dataclasses.replace(cfg, stream=dataclasses.replace(
        cfg.stream, host_endpoint=f"tcp://127.0.0.1:{port}", publish_endpoint=f"tcp://127.0.0.1:{publish}",
        frames=frames, heartbeat_s=0.1, publish_maps=False), host=host_cfg or cfg.host)
    host = FusionHost(cfg).start()
    stop = threading.Event()
    threads = [threading.Thread(target=NodeAgent(cfg, n).run, args=(stop,), daemon=True) for n in nodes]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not host.finished(set(nodes)):
            time.sleep(0.05)
        assert host.finished(set(nodes)), host.stats()
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        host.stop()
    stats = host.stats()
    assert all(stats["nodes"][n]["processed"] == frames and stats["nodes"][n]["failed"] == 0 for n in nodes), stats
    return host


def by_target(item: dict[str, Any], slack_m: float = 0.05) -> dict[str, dict[str, Any]]:
    """A fused set's estimates by the nearest true target, each checked within 5 sqrt(trace(cov)) + slack of it."""
    truth = {p["target"]: np.array(p["position_m"][:2]) for p in item["truth"]}
    found = {}
    for est in item["estimates"]:
        xy = np.array(est["position_m"][:2])
        name = min(truth, key=lambda t: float(np.linalg.norm(xy - truth[t])))
        error = float(np.linalg.norm(xy - truth[name]))
        assert error < 5 * np.sqrt(np.trace(est["cov_position_m2"])) + slack_m, (name, error, est)
        found[name] = est
    return found
