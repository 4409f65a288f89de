"""Live macro-micro cooperation on the host: hw_configs/sim_macro_micro.toml through real sockets and threads.

The car lies in both micro cells: its estimates must come from the two micro BSs alone (mode ``micro``).
A building hides the truck from micro2: the macro BS (5.9 GHz, 30 kHz) joins micro1 (24 GHz, 120 kHz), mode
``macro_micro``.  Errors against the true positions are judged by each estimate's own covariance.
"""

from __future__ import annotations

from sdr_isac import config
from tests.stream.live_scene import REPO, by_target, run_scene


def test_macro_micro_config_names_scene_nodes() -> None:
    cfg = config.load(REPO / "hw_configs/sim_macro_micro.toml")
    assert cfg.fusion.macro_nodes == ("macro0",)


def test_host_switches_between_micro_and_macro_micro_modes() -> None:
    host = run_scene("sim_macro_micro")
    full = [item for item in host.estimates if set(item["nodes"]) == {"micro1", "micro2", "macro0"}]
    assert full, list(host.estimates)
    for item in full:
        found = by_target(item)
        assert set(found) == {"car", "truck"}, item["estimates"]
        assert found["car"]["mode"] == "micro" and sorted(found["car"]["nodes"]) == ["micro1", "micro2"]
        assert found["truck"]["mode"] == "macro_micro" and sorted(found["truck"]["nodes"]) == ["macro0", "micro1"]
        assert "case" not in found["car"]                      # no UE in this scene
