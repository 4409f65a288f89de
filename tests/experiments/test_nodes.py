"""``sdr-isac experiment nodes``: every case module's rows, RMSE beside √CRB, through the runner."""

from __future__ import annotations

import math

from sdr_isac.experiments import nodes
from sdr_isac.experiments.catalog import scenario
from sdr_isac.experiments.runner import run_experiment


def test_nodes_experiment_has_a_row_per_case_and_quantity(tmp_path) -> None:
    result = run_experiment(scenario("nodes"), trials=4, out_dir=tmp_path, workers=1, points=[{"snr_db": 0.0}])
    expected = {(case, q) for m in nodes.MODULES for case, (qs, _) in m.CASES.items() for q in qs}
    assert {(r["case"], r["quantity"]) for r in result.summary} == expected
    for row in result.summary:
        # at 0 dB every cooperative estimator reports, and its bound is finite
        assert row["reported_coop"] == 4, row
        assert math.isfinite(row["rmse_coop"]) and math.isfinite(row["crb_coop"]) and row["crb_coop"] > 0, row
    # behind the building the BS alone reports nothing; the RIS finds the target
    ris = [r for r in result.summary if r["case"] == "bs_ris"]
    assert all(r["reported_single"] == 0 and r["detected_coop"] == 1.0 for r in ris)
    assert (tmp_path / "nodes.png").read_bytes()[:4] == b"\x89PNG"
