"""Macro-micro and BS-UE cases of the nodes experiment: cooperation beats the single node and follows its CRB."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdr_isac.experiments import nodes_mm_ue
from sdr_isac.fusion.modes import bs_ue, macro_micro


def _rmse(trials: list[dict[str, float]], key: str) -> float:
    e = np.array([t[key] for t in trials])
    return float(np.sqrt(np.mean(e[np.isfinite(e)] ** 2)))


@pytest.fixture(scope="module")
def trials() -> list[dict[str, float]]:
    gens = np.random.default_rng(20261127).spawn(80)
    return [nodes_mm_ue.trial({"snr_db": 0.0}, g) for g in gens]


def test_interface_keys(trials: list[dict[str, float]]) -> None:
    b = nodes_mm_ue.bounds(0.0)
    for case, (quantities, _) in nodes_mm_ue.CASES.items():
        for q in quantities:
            for m in ("single", "coop"):
                assert f"{case}_{q}_err_{m}" in trials[0]
                assert f"{case}_crb_{q}_{m}" in b


def test_scene_matches_the_cases() -> None:
    """Each case's target sits where its mode switch / classifier says it should."""
    sc = nodes_mm_ue.scene()
    r = sc["micro_radius_m"]
    assert macro_micro.select_mode(nodes_mm_ue.MM_TARGET_M, nodes_mm_ue.MICROS_M, [r, r]).mode == "macro_micro"
    for key, case in (("a", "A"), ("b", "B"), ("c", "C")):
        assert bs_ue.classify(sc["targets"][key], nodes_mm_ue.BS_M, sc["radii"]) == case
        assert np.all(np.linalg.norm(sc["ues"][key] - sc["targets"][key], axis=1) < sc["ue_radius_m"])


@pytest.mark.parametrize("case", ["macro_micro", "bs_ue_a", "bs_ue_b", "bs_ue_c"])
def test_cooperation_follows_its_crb(trials: list[dict[str, float]], case: str) -> None:
    b = nodes_mm_ue.bounds(0.0)
    # 80 trials of 2-D errors: RMSE / sqrt(CRB) spreads by about 0.06; an RMSE far below the bound would mean a
    # bound too large or an estimator that saw the truth, far above it a biased or inconsistent one
    for q in ("pos", "velocity"):
        assert 0.7 * b[f"{case}_crb_{q}_coop"] <= _rmse(trials, f"{case}_{q}_err_coop") <= 1.3 * b[f"{case}_crb_{q}_coop"]
    assert 0.7 * b[f"{case}_crb_pos_single"] <= _rmse(trials, f"{case}_pos_err_single") <= 1.3 * b[
        f"{case}_crb_pos_single"]
    assert math.isnan(b[f"{case}_crb_velocity_single"])


@pytest.mark.parametrize("case", ["macro_micro", "bs_ue_b", "bs_ue_c"])
def test_cooperation_beats_the_single_node(trials: list[dict[str, float]], case: str) -> None:
    """Where the bound promises a clear gain (√CRB coop < 0.6 √CRB single) the RMSE shows it."""
    b = nodes_mm_ue.bounds(0.0)
    assert b[f"{case}_crb_pos_coop"] < 0.6 * b[f"{case}_crb_pos_single"]
    assert _rmse(trials, f"{case}_pos_err_coop") < 0.7 * _rmse(trials, f"{case}_pos_err_single")


def test_case_a_is_no_worse_than_the_bs_alone(trials: list[dict[str, float]]) -> None:
    """The UE's SRS reflection is 20+ dB weaker than the BS's echo: a small position gain, plus the velocity vector."""
    assert _rmse(trials, "bs_ue_a_pos_err_coop") <= 1.05 * _rmse(trials, "bs_ue_a_pos_err_single")
    assert np.mean([t["bs_ue_a_detected_coop"] for t in trials]) > 0.95
