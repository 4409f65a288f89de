"""``sdr-isac demo --scene urban``: nodes -> one MECS host per operator -> the core host, all processes on
loopback; and ``sdr-isac demo`` tracks and writes a twin that ``sdr-isac twin`` lists."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from sdr_isac import config
from sdr_isac.errors import SdrIsacError
from sdr_isac.stream.demo import run_urban_demo, urban_plan


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_urban_plan_is_one_mecs_host_per_operator() -> None:
    cfg = config.builtin("urban")
    plan = urban_plan(cfg)
    assert plan == {"mecs_a": ["bs_a0", "bs_a1", "bs_a2"], "mecs_b": ["bs_b0", "bs_b1", "bs_b2"],
                    "mecs_wifi": ["ap0"]}
    assert urban_plan(cfg, ["bs_b1", "ap0"]) == {"mecs_b": ["bs_b1"], "mecs_wifi": ["ap0"]}
    with pytest.raises(SdrIsacError, match="none is a transmitting node"):
        urban_plan(cfg, ["nope"])
    with pytest.raises(SdrIsacError, match="at least 1 frame"):
        run_urban_demo("unused", 0)
    for bad in (-1.0, 3601.0, float("nan"), True, "1"):
        with pytest.raises(SdrIsacError, match="frame_interval_s"):
            run_urban_demo("unused", 1, frame_interval_s=bad)  # type: ignore[arg-type]


def test_urban_nodes_stream_to_their_operators_mecs_hosts_and_those_to_the_core(tmp_path: Path) -> None:
    nodes = ["bs_a0", "bs_a1", "bs_a2", "bs_b0", "bs_b2"]
    frames = 2
    # back to back (frame_interval_s = 0): the streaming and the MECS -> core path; the default 1 s spacing is
    # the handover test's below
    result = run_urban_demo(tmp_path, frames, timeout_s=150.0, nodes=nodes, frame_interval_s=0.0)
    assert all(_gone(pid) for pid in result["pids"])      # every process it started has ended
    assert set(result["mecs"]) == {"mecs_a", "mecs_b"}
    truth_all = []
    for mecs, item in result["mecs"].items():
        stream = item["stream"]
        assert stream["node_id"] == mecs and stream["rejected"] == 0 and stream["errors_total"] == 0
        for node_id in item["nodes"]:
            st = stream["nodes"][node_id]
            assert st["received"] == st["processed"] == frames and st["lost"] == 0
            assert st["t0_gaps"] == 0 and st["t0_backwards"] == 0        # simulated captures are back to back
        assert stream["twin"]["failed"] == 0 and stream["twin"]["dropped"] == 0 and stream["twin"]["written"] > 0
        assert (tmp_path / mecs / "twin.sqlite").exists() and (tmp_path / mecs / "fused.json").exists()
        # the core took every tracks message each MECS host published (loopback; subscribed before the first)
        core_side = result["core"]["mecs"][mecs]
        assert core_side["received"] == stream["tracking"]["steps"] > 0, (core_side, stream["tracking"])
        assert core_side["backwards"] == 0 and core_side["tracks_backwards"] == 0
        fused = json.loads((tmp_path / mecs / "fused.json").read_text())
        truth_all += [r["truth_m"] for s in fused["per_set"] for r in s["targets"]]
        # each MECS track lies near a target of the scene (a range cell is 3.9 m / 7.6 m, angles of 8 elements)
        for t in item["tracks"]["tracks"]:
            gap = min(float(np.linalg.norm(np.asarray(t["state"][:2]) - np.asarray(p[:2]))) for p in truth_all)
            assert gap < 20.0, (mecs, t["id"], t["state"][:3])
    assert result["core"]["rejected"] == 0 and result["core"]["unknown_total"] == 0
    # the core's global tracks are made of the MECS hosts' local tracks
    local = {(m, t["id"]) for m, item in result["mecs"].items() for t in item["tracks"]["tracks"]}
    members = {(m, lid) for g in result["tracks"]["tracks"] for m, lid in (g.get("members") or {}).items()}
    assert members and members <= local, (members, local)


def test_urban_demo_hands_a_car_over_from_operator_a_to_operator_b_as_it_leaves_a_s_streets(tmp_path: Path) -> None:
    """Frames 1 s apart in scene time (the default): car2 drives north on x = 450 m; at t = 0 bs_a0 and bs_a1 see it
    down the street y = 0, from t = 1 s the buildings hide it from both (operator a's MECS host, min_nodes = 2, has
    no fix of it) while bs_b0 and bs_b2 see it along x = 450 m.  The core's global track of car2 keeps its id and
    passes from mecs_a to mecs_b (a Handover, owner_left, at operator a's last measured state of car2); checked against the
    scene's geometry and operator a's own record, not the code's numbers."""
    from sdr_isac.channel.geometry import segment_blocked, target_state
    from sdr_isac.twin import open_twin

    nodes = ["bs_a0", "bs_a1", "bs_b0", "bs_b2"]
    result = run_urban_demo(tmp_path, timeout_s=150.0, nodes=nodes)
    assert all(_gone(pid) for pid in result["pids"])
    # the frames are 1 s apart in scene time (1000 frames of 1 ms: 2 slots at 30 kHz): no gap in t0 at the hosts
    for item in result["mecs"].values():
        for st in item["stream"]["nodes"].values():
            assert st["received"] == 5 and st["t0_gaps"] == 0 and st["period_s"] == pytest.approx(1.0, abs=1e-9)
    assert json.loads((tmp_path / "handovers.json").read_text())["handovers"] == result["handovers"]
    scene = config.builtin("urban").scene
    assert scene is not None
    car2 = next(t for t in scene.targets if t.id == "car2")
    position = {n.id: np.asarray(n.position_m, dtype=float) for n in scene.nodes}

    def seen_by(t_s: float) -> set[str]:
        p, _ = target_state(car2, t_s)
        return {n for n in nodes if not any(segment_blocked(position[n], p, b) for b in scene.blockers)}

    # car2's global track: both operators' hosts contributed, operator a's member left, the id went on
    both = [t for t in result["tracks"]["tracks"] if set(t["stations"]) == {"mecs_a", "mecs_b"}]
    assert len(both) == 1, result["tracks"]["tracks"]
    (track,) = both
    assert list(track["members"]) == ["mecs_b"]
    # operator a's track started first (t = 0; b's at 0.8 ms on its clock): a owned it, and its leaving is a handover
    (h,) = [h for h in result["handovers"] if h["where"] == "core" and h["track_id"] == track["id"]]
    assert (h["from"], h["to"], h["reason"]) == ("mecs_a", "mecs_b", "owner_left")
    # stamped where operator a's sensing of car2 ended: the last state of a's track of car2 that a's tracker updated
    # with a measurement (its twin's rows say which: the states after it, to the track's deletion, are
    # predictions), not a later predicted state, nor when the core noticed that a's track was gone
    with open_twin(str(tmp_path / "mecs_a" / "twin.sqlite"), read_only=True) as store:
        points = store.track_points()
        near = [i for i in range(len(points)) if float(np.linalg.norm(
            points.states[i, :2] - target_state(car2, float(points.t_s[i]))[0][:2])) < 20.0]
        histories = [store.track_history(tid) for tid in sorted({points.track_id[i] for i in near})]
    assert histories, "operator a's twin holds no track of car2"
    assert all(t.measured is not None for t in histories)
    a_sight = max(float(t.t_s[t.measured].max()) for t in histories if t.measured.any())
    a_last = max(float(t.t_s[-1]) for t in histories)
    assert h["t_s"] == pytest.approx(a_sight, abs=1e-9) and h["t_s"] < track["t_s"]
    # at t = 1 s the buildings hide car2 from bs_a0 and bs_a1: a's state there, if any, is a prediction
    assert not seen_by(1.0) & {"bs_a0", "bs_a1"} and a_sight < 1.0 <= a_last + 1e-9
    # the global track is car2's: within a few range cells of its truth at the track's time (operator b's clock)
    t_scene = track["t_s"] - 8e-4
    truth, _ = target_state(car2, t_scene)
    assert float(np.linalg.norm(np.asarray(track["state"][:2]) - truth[:2])) < 10.0, (track["state"], truth)
    # truth: both of operator a's stations saw car2 at the first frame, neither (so no fix of a's host) when
    # operator a's track had gone, and operator b's two stations saw it all along
    assert {"bs_a0", "bs_a1"} <= seen_by(0.0)
    assert all(not seen_by(t) & {"bs_a0", "bs_a1"} for t in np.arange(1.0, track["t_s"], 0.25))
    assert all({"bs_b0", "bs_b2"} <= seen_by(t) for t in np.arange(0.0, track["t_s"], 0.25))
