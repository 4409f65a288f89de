"""Live passive (bistatic) fusion: a FusionHost and three NodeAgents (threads) on loopback, hw_configs/sim_passive.toml.

bs0 senses its own echoes; rx1 and rx2 transmit nothing and hear bs0: the host senses their captures as
bistatic and fuses their range sums with bs0's ranges and angles.  Both passive nodes run on their own
clocks and oscillators (clock offsets of 30 / -20 ns, carrier offsets of 1500 / -900 Hz): referencing every
echo to the line of sight removes both, so positions and velocities come out right.
"""

from __future__ import annotations

import numpy as np

from tests.stream.live_scene import run_scene

NODES = ("bs0", "rx1", "rx2")


def test_host_fuses_passive_nodes_with_the_monostatic_base_station() -> None:
    host = run_scene("sim_passive")
    assert host.passive_source("rx1") == "bs0" and host.passive_source("rx2") == "bs0"
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
            v_true = {"car": [-8.0, 2.0], "van": [3.0, 4.0]}[min(truth, key=lambda t: np.linalg.norm(xy - truth[t]))]
            assert np.linalg.norm(np.array(est["velocity_mps"][:2]) - v_true) < 5 * np.sqrt(
                np.trace(est["cov_velocity_mps2"])) + 0.05, est
            checked += 1
    # every fused set of the three nodes located both cars with at least one passive node's range sum
    assert checked >= 2 * len(full), (checked, full)
