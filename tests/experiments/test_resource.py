"""``sdr-isac experiment resource``: trials, summary against the CRBs, table and plot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sdr_isac.experiments import catalog, resource
from sdr_isac.experiments.runner import run_experiment


def test_catalogued() -> None:
    scn = catalog.scenario("resource")
    assert scn.name == "resource" and all("snr_db" in p for p in scn.points)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory):
    scn = resource.resource_scenario()
    out = tmp_path_factory.mktemp("resource")
    return run_experiment(scn, trials=24, out_dir=out, workers=1, points=[{"snr_db": -5.0}]), out


def test_every_case_has_a_row_with_rmse_and_crb(result) -> None:
    res, out = result
    rows = {(r["case"], r["quantity"]): r for r in res.summary}
    assert set(rows) == {(c, q) for c, q, _ in resource.CASES}
    assert {p.name for p in res.files} == {"summary.csv", "trials.csv", "resource.png"}
    assert (Path(out) / "resource.png").stat().st_size > 10_000
    table = resource.table(res.summary)
    assert "rs-cs" in table and "√CRB fused" in table


def test_bounds_follow_the_closed_forms() -> None:
    b = resource.bounds(-5.0)
    ten_log_c = 10 * math.log10(resource.NUM_ANTENNAS)               # C antennas: Fisher information x C
    for key in (("space", "range"), ("space", "velocity"), ("time-noncoh", "velocity")):
        assert 20 * math.log10(b[key][0] / b[key][1]) == pytest.approx(ten_log_c, abs=1e-6)
    m, f = 14, resource.NUM_FRAMES                                    # coherent: M (M**2 - 1) -> F M ((F M)**2 - 1)
    want = 10 * math.log10(f * m * ((f * m) ** 2 - 1) / (m * (m**2 - 1)))
    assert 20 * math.log10(b[("time-coh", "velocity")][0] / b[("time-coh", "velocity")][1]) == pytest.approx(want)
    assert 20 * math.log10(b[("code", "range")][0] / b[("code", "range")][1]) == pytest.approx(10 * math.log10(2))


def test_fusion_beats_the_baseline_and_tracks_its_crb(result) -> None:
    rows = {(r["case"], r["quantity"]): r for r in result[0].summary}
    for key in (("space", "range"), ("time-coh", "velocity"), ("code", "range"), ("multi", "range"),
                ("multi", "angle"), ("multi", "angle2"), ("splice", "angle")):
        r = rows[key]
        assert r["rmse_fused"] < r["rmse_base"], key
        assert 0.6 <= r["rmse_fused"] / r["crb_fused"] <= 1.5, key          # 24 trials: loose but deciding
    assert rows[("rs-cs", "range")]["pslr_fused_db"] < rows[("rs-zero", "range")]["pslr_fused_db"] - 6.0
    assert np.isnan(rows[("space", "range")]["pslr_base_db"])
