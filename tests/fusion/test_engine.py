"""The fusion engine without sockets: a time-aligned set of simulated captures in, TargetEstimate records out.

Accuracy is checked against the estimates' own CRB covariances (5 sqrt(trace)), never against numbers
the code printed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sdr_isac import config, radio
from sdr_isac.capture import Capture
from sdr_isac.errors import SensingError
from sdr_isac.fusion.engine import FusionEngine, NodeResult, SensingJob, sense_capture
from sdr_isac.fusion.records import TargetEstimate
from sdr_isac.waveform import IsacFrame

REPO = Path(__file__).resolve().parents[2]


def captures_of(name: str, frames: int = 1) -> tuple[config.Config, list[list[Capture]]]:
    """``frames`` simulated captures of every scene node of ``hw_configs/NAME.toml`` (one list per frame)."""
    cfg = config.load(REPO / "hw_configs" / f"{name}.toml")
    assert cfg.scene is not None
    out: list[list[Capture]] = [[] for _ in range(frames)]
    for node in cfg.scene.nodes:
        node_cfg = dataclasses.replace(cfg, radio=dataclasses.replace(cfg.radio, node_id=node.id))
        with radio.open_radio(node_cfg) as r:
            frame = IsacFrame(r.frame if r.frame is not None else cfg.frame)
            if r.can_transmit:
                r.tx(frame.samples(), cyclic=True)
            for k in range(frames):
                out[k].append(dataclasses.replace(r.rx(r.capture_length(frame.num_samples)), seq=k))
    return cfg, out


def _truth_xy(captures: list[Capture]) -> dict[str, np.ndarray]:
    paths = [p for c in captures for p in c.metadata["truth"]["paths"] if p["kind"] == "target"]
    return {p["target"]: np.array(p["position_m"][:2]) for p in paths}


def test_engine_fuses_a_time_aligned_set_of_four_base_stations_within_the_crb() -> None:
    cfg, (captures,) = captures_of("sim_multi_bs")
    engine = FusionEngine(cfg)
    results = {c.node_id: engine.sense(c, c.seq) for c in captures}
    assert all(isinstance(r, NodeResult) and r.detections for r in results.values())
    estimates = engine.fuse(results, t_s=captures[0].t0_s)
    assert estimates and all(isinstance(e, TargetEstimate) for e in estimates)
    truth = _truth_xy(captures)["uav"]
    best = min(estimates, key=lambda e: float(np.linalg.norm(e.position_m[:2] - truth)))
    assert set(best.nodes) == {"bs0", "bs1", "bs2", "bs3"} and best.mode is None
    error = float(np.linalg.norm(best.position_m[:2] - truth))
    assert error < 5.0 * np.sqrt(np.trace(best.cov_position_m2)) + 0.05, (error, best)
    assert best.position_m[2] == cfg.fusion.target_height_m and best.cov_position_m2[2, 2] == 0.0
    assert best.t_s == captures[0].t0_s
    assert best.velocity_mps is not None and best.cov_velocity_mps2 is not None


def test_engine_needs_two_scene_nodes_and_leaves_out_strangers() -> None:
    cfg, (captures,) = captures_of("sim_multi_bs")
    engine = FusionEngine(cfg)
    one = engine.sense(captures[0], 0)
    assert engine.fuse({"bs0": one}, t_s=0.0) == []
    stranger = dataclasses.replace(one, node_id="zz9")
    assert engine.fuse({"bs0": one, "zz9": stranger}, t_s=0.0) == []
    assert engine.node_info("zz9") is None


def test_sensing_jobs_of_a_receive_only_node_are_bistatic_per_transmitter() -> None:
    cfg = config.load(REPO / "hw_configs" / "sim_passive.toml")
    engine = FusionEngine(cfg)
    assert engine.passive_sources("rx1") == ["bs0"] and engine.passive_source("rx1") == "bs0"
    capture = Capture(np.zeros((1, 16), np.complex64), cfg.frame.sample_rate_hz, cfg.frame.carrier_hz,
                      node_id="rx1")
    (job,) = engine.sensing_jobs(capture)
    assert isinstance(job, SensingJob) and job.source == "bs0"
    assert job.config.geometry == "bistatic" and job.config.remove_static is False
    assert job.config.max_range_m == 2.0 * cfg.sensing.max_range_m and job.config.min_range_m == 0.0
    (own,) = engine.sensing_jobs(dataclasses.replace(capture, node_id="bs0"))
    assert own.source is None and own.config == cfg.sensing


def test_a_receive_only_node_of_a_config_without_scene_is_refused() -> None:
    cfg = dataclasses.replace(config.load(REPO / "hw_configs" / "sim_passive.toml"), scene=None)
    with pytest.raises(SensingError, match="node 'rx1': the host's configuration has no scene"):
        FusionEngine(cfg).passive_sources("rx1")


def test_sense_capture_is_the_pipeline_once_per_job_in_order() -> None:
    cfg, (captures,) = captures_of("sim_multi_bs")
    engine = FusionEngine(cfg)
    jobs = engine.sensing_jobs(captures[1])
    (result,) = sense_capture(captures[1], jobs)
    from sdr_isac import sensing

    direct = sensing.process(captures[1], jobs[0].frame, jobs[0].config)
    assert result.detections == direct.detections


def _check_within_crb(estimates: list[TargetEstimate], captures: list[Capture], slack_m: float = 0.05) -> None:
    truth = _truth_xy(captures)
    for est in estimates:
        error = min(float(np.linalg.norm(est.position_m[:2] - xy)) for xy in truth.values())
        assert error < 5.0 * np.sqrt(np.trace(est.cov_position_m2)) + slack_m, (error, est)


@pytest.mark.parametrize(("name", "check"), [
    ("sim_passive", lambda ests: any({"rx1", "rx2"} & set(e.nodes) for e in ests)),
    ("sim_macro_micro", lambda ests: {e.mode for e in ests} <= {"micro", "macro_micro"} and ests),
    ("sim_bs_ue", lambda ests: all(e.case in ("A", "B") for e in ests) and ests),
])
def test_engine_dispatches_the_scene_s_cooperation_mode(name: str, check: Any) -> None:
    """Passive range sums join, macro-micro sets get their mode, BS-UE sets their case: all within the CRB."""
    cfg, (captures,) = captures_of(name)
    engine = FusionEngine(cfg)
    estimates = engine.fuse({c.node_id: engine.sense(c, c.seq) for c in captures}, t_s=captures[0].t0_s)
    assert check(estimates), estimates
    _check_within_crb(estimates, captures)


def test_single_node_fixes_of_isotropic_arrays_are_warned_about(caplog) -> None:
    """fusion.min_nodes = 1 keeps one node's own fix, placed in front of its array; a linear array of isotropic
    elements sees a target behind it too and puts it at its mirror image (the urban AP put the UAV 160 m off).
    The host says so, naming the nodes (the urban base stations are sector panels: not named)."""
    from importlib import resources

    from sdr_isac.stream import demo
    text = resources.files("sdr_isac").joinpath("urban.toml").read_text(encoding="utf-8")
    with caplog.at_level("WARNING", logger="sdr_isac.fusion.engine"):
        FusionEngine(config.loads(text, "urban"))
        assert not caplog.records
        FusionEngine(config.loads(demo.mecs_config_text(text, "mecs_wifi", 1, "tcp://127.0.0.1:1",
                                                        "tcp://127.0.0.1:2"), "urban"))
    (record,) = caplog.records
    assert "fusion.min_nodes = 1: the single-node fixes of ap0 place every target in front" in record.getMessage()


def test_a_receive_only_node_is_not_named_in_the_single_fix_warning(caplog) -> None:
    """A receive-only node's detections are bistatic range sums: it has no single-node fix to mirror."""
    text = ('[fusion]\nmin_nodes = 1\n[scene]\n[[scene.nodes]]\nid = "bs0"\nrx_array = { num_elements = [4] }\n'
            '[[scene.nodes]]\nid = "rx1"\nrole = "rx"\ntransmits = false\nposition_m = [50.0, 0.0, 0.0]\n'
            'rx_array = { num_elements = [4] }\n')
    with caplog.at_level("WARNING", logger="sdr_isac.fusion.engine"):
        FusionEngine(config.loads(text))
    (record,) = caplog.records
    assert "the single-node fixes of bs0 place" in record.getMessage() and "rx1" not in record.getMessage()
