"""Live passive (bistatic) fusion: a FusionHost and three NodeAgents (threads) on loopback, hw_configs/sim_passive.toml.

bs0 senses its own echoes; rx1 and rx2 transmit nothing and hear bs0: the host senses their captures as
bistatic and fuses their range sums with bs0's ranges and angles.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np

from sdr_isac import config
from sdr_isac.stream import FusionHost, NodeAgent
from sdr_isac.stream.demo import free_ports

REPO = Path(__file__).resolve().parents[2]
NODES = ("bs0", "rx1", "rx2")


def test_host_fuses_passive_nodes_with_the_monostatic_base_station() -> None:
    cfg = config.load(REPO / "hw_configs/sim_passive.toml")
    port, publish = free_ports(2)
    cfg = dataclasses.replace(cfg, stream=dataclasses.replace(
        cfg.stream, host_endpoint=f"tcp://127.0.0.1:{port}", publish_endpoint=f"tcp://127.0.0.1:{publish}",
        frames=3, heartbeat_s=0.1, publish_maps=False))
    host = FusionHost(cfg).start()
    stop = threading.Event()
    threads = [threading.Thread(target=NodeAgent(cfg, n).run, args=(stop,), daemon=True) for n in NODES]
    try:
        assert host.passive_source("rx1") == "bs0" and host.passive_source("rx2") == "bs0"
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and not host.finished(set(NODES)):
            time.sleep(0.05)
        assert host.finished(set(NODES)), host.stats()
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        host.stop()
    stats = host.stats()
    assert all(stats["nodes"][n]["processed"] == 3 and stats["nodes"][n]["failed"] == 0 for n in NODES), stats
    full = [item for item in host.estimates if set(item["nodes"]) == set(NODES)]
    assert full, list(host.estimates)
    checked = 0
    for item in full:
        truth = {p["target"]: np.array(p["position_m"][:2]) for p in item["truth"]}
        assert set(truth) == {"car", "van"}
        for est in item["estimates"]:
            passive = {"rx1", "rx2"} & set(est["nodes"])
            if not passive:
                continue
            assert est["nodes"][0] == "bs0"
            xy = np.array(est["position_m"][:2])
            error = min(float(np.linalg.norm(xy - p)) for p in truth.values())
            assert error < 5 * np.sqrt(np.trace(est["cov_position_m2"])), (error, est)
            checked += 1
    # every fused set of the three nodes located both cars with at least one passive node's range sum
    assert checked >= 2 * len(full), (checked, full)
