"""The urban demo's outputs and configurations.

``fused.json``'s velocity error compares with the waypoint target's velocity at the set's time (it took 0 m/s:
the targets' constant-velocity field, unused with waypoints); truth by hand from sdr_isac/urban.toml's waypoints.
A MECS host of one node (the Wi-Fi access point's) keeps single-node fixes (``fusion.min_nodes = 1``).
"""
from importlib import resources
from types import SimpleNamespace

import numpy as np
import pytest

from sdr_isac import config as config_mod
from sdr_isac.stream import demo


@pytest.mark.parametrize(("node", "t0_s", "velocity_mps"), [
    ("bs_a0", 0.001, (12.5, 0.0)),            # car0: (-40, 0) -> (460, 0) m in 40 s; operator a: clock = scene time
    ("bs_b0", 0.0008 + 0.002, (12.5, 0.0)),   # operator b's clock runs 0.8 ms ahead of the scene
    ("bs_a0", 20.0, (12.5, 0.0)),
])
def test_velocity_error_is_against_the_waypoint_velocity(node, t0_s, velocity_mps):
    text = resources.files("sdr_isac").joinpath("urban.toml").read_text(encoding="utf-8")
    cfg = config_mod.loads(text, "urban")
    scene_t_s = t0_s - cfg.scene.node(node).clock_offset_s
    truth_m = [-40.0 + 12.5 * scene_t_s, 0.0, 1.0]
    estimate = {"position_m": truth_m, "nodes": [node], "cov_position_m2": np.eye(3).tolist(),
                "velocity_mps": [*velocity_mps, 0.0], "cov_velocity_mps2": np.eye(3).tolist()}
    host = SimpleNamespace(estimates=[{"seq": 0, "t0_s": t0_s, "nodes": {node: 1}, "estimates": [estimate],
                                       "truth": [{"target": "car0", "position_m": truth_m}]}])
    row = demo.fused_summary(host, cfg)["per_set"][0]["targets"][0]
    assert row["fused"]
    assert row["velocity_error_mps"] == pytest.approx(0.0, abs=1e-9)      # was 12.5 m/s (truth taken as 0)


def test_an_estimate_far_from_every_target_is_counted_unmatched() -> None:
    """A ghost (an estimate 160 m from the nearest target, as the Wi-Fi AP's mirrored UAV was) matched nothing and
    was left out of fused.json's figures without a trace; now it is listed per set and counted."""
    cfg = config_mod.loads(resources.files("sdr_isac").joinpath("urban.toml").read_text(encoding="utf-8"), "urban")
    truth_m = [-40.0, 0.0, 1.0]

    def estimate(xy: tuple[float, float]) -> dict:
        return {"position_m": [*xy, 1.0], "nodes": ["bs_a0"], "cov_position_m2": np.eye(3).tolist()}

    host = SimpleNamespace(estimates=[{"seq": 0, "t0_s": 0.001, "nodes": {"bs_a0": 1},
                                       "estimates": [estimate((-40.5, 0.0)), estimate((120.0, 0.0))],
                                       "truth": [{"target": "car0", "position_m": truth_m}]}])
    summary = demo.fused_summary(host, cfg)
    assert summary["unmatched_estimates"] == 1 and summary["per_set"][0]["unmatched"] == [[120.0, 0.0, 1.0]]
    assert summary["per_set"][0]["targets"][0]["fused"]


def _urban_text() -> str:
    return resources.files("sdr_isac").joinpath("urban.toml").read_text(encoding="utf-8") + "\n" + demo.URBAN_SENSING


def test_a_mecs_host_of_one_node_keeps_single_node_fixes() -> None:
    text = _urban_text()
    one = config_mod.loads(demo.mecs_config_text(text, "mecs_wifi", 1, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2"))
    three = config_mod.loads(demo.mecs_config_text(text, "mecs_a", 3, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2"))
    assert one.fusion.min_nodes == 1 and three.fusion.min_nodes == 2
    assert one.fusion.gate_m == three.fusion.gate_m == config_mod.loads(text).fusion.gate_m   # the rest kept
    assert one.host.node_id == "mecs_wifi" and one.stream.host_endpoint == "tcp://127.0.0.1:1" and one.twin.enabled
    # a text without [fusion] gets one; a text that sets min_nodes keeps its own
    bare = config_mod.loads(demo.mecs_config_text("", "m", 1, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2"))
    assert bare.fusion.min_nodes == 1
    own = text.replace("[fusion]\n", "[fusion]\nmin_nodes = 3\n")
    assert config_mod.loads(demo.mecs_config_text(own, "m", 1, "tcp://127.0.0.1:1",
                                                  "tcp://127.0.0.1:2")).fusion.min_nodes == 3


def test_a_mecs_configuration_spaces_its_sim_nodes_frames_unless_the_text_does() -> None:
    text = _urban_text()
    spaced = config_mod.loads(demo.mecs_config_text(text, "mecs_a", 3, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2",
                                                    frame_interval_s=1.0))
    assert spaced.radio.frame_interval_s == 1.0 and spaced.radio.node_id == "bs_a0"   # the rest of [radio] kept
    back_to_back = config_mod.loads(demo.mecs_config_text(text, "mecs_a", 3, "tcp://127.0.0.1:1",
                                                          "tcp://127.0.0.1:2"))
    assert back_to_back.radio.frame_interval_s == 0.0
    own = text.replace("[radio]\n", "[radio]\nframe_interval_s = 0.25\n")
    assert config_mod.loads(demo.mecs_config_text(own, "m", 3, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2",
                                                  frame_interval_s=1.0)).radio.frame_interval_s == 0.25


def test_urban_handovers_and_table_list_the_hosts_and_the_core_s_in_time_order() -> None:
    from sdr_isac.experiments.demo import urban_table

    mecs = {"mecs_a": {"nodes": ["bs_a0"], "tracks": {"handovers": [
        {"track_id": "mecs_a-1", "t_s": 3.0, "from": "bs_a0", "to": "bs_a2", "reason": "coverage"}]}},
        "mecs_b": {"nodes": ["bs_b0"], "tracks": None}}
    core = {"tracks": [{"id": "g4", "state": [450.0, 50.0, 1.0], "status": "confirmed", "members": {"mecs_b": "b-2"},
                        "handovers": [{"t_s": 3.0, "from": "bs_a0", "to": "bs_a2", "reason": "coverage"},
                                      {"t_s": 2.0, "from": "mecs_a", "to": "mecs_b", "reason": "owner_left"}]}]}
    handovers = demo.urban_handovers(mecs, core)
    # the core's own (owner_left) once; the members' handovers it carries are the MECS host's, listed there
    assert [(h["where"], h["track_id"], h["from"], h["to"]) for h in handovers] == \
        [("core", "g4", "mecs_a", "mecs_b"), ("mecs_a", "mecs_a-1", "bs_a0", "bs_a2")]
    table = urban_table({"mecs": mecs, "core": {}, "tracks": core, "handovers": handovers})
    assert "handovers: 2" in table and "core       track g4         mecs_a -> mecs_b (owner_left)" in table
    assert "handovers: 0 (none" in urban_table({"mecs": {}, "core": {}, "tracks": None, "handovers": []})
