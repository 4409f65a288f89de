"""Live BS-UE cooperation on the host: hw_configs/sim_bs_ue.toml through real sockets and threads.

The car lies inside the BS's sensing coverage (case A: the BS's echo with the UEs' detections and the
UE -> car -> BS uplink reflection); the bike beyond it (case B: the UEs alone).  Errors against the true
positions are judged by each estimate's own covariance.
"""

from __future__ import annotations

from tests.stream.live_scene import by_target, run_scene

NODES = {"bs0", "bs0_ul", "ue1", "ue2"}


def test_host_fuses_bs_and_ue_detections_by_case() -> None:
    host = run_scene("sim_bs_ue")
    assert host.passive_source("bs0_ul") == "ue1"
    full = [item for item in host.estimates if set(item["nodes"]) == NODES]
    assert full, list(host.estimates)
    for item in full:
        found = by_target(item)
        assert set(found) == {"car", "bike"}, item["estimates"]
        assert found["car"]["case"] == "A" and {"bs0", "ue1", "ue2"} <= set(found["car"]["nodes"])
        assert "bs0_ul" in found["car"]["nodes"]               # the uplink reflection joined
        assert found["bike"]["case"] == "B" and "bs0" not in found["bike"]["nodes"]
