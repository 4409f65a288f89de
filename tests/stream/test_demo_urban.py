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


def test_urban_nodes_stream_to_their_operators_mecs_hosts_and_those_to_the_core(tmp_path: Path) -> None:
    nodes = ["bs_a0", "bs_a1", "bs_a2", "bs_b0", "bs_b2"]
    frames = 2
    result = run_urban_demo(tmp_path, frames, timeout_s=150.0, nodes=nodes)
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
