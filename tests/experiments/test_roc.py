"""``experiment roc``: the CFAR's P_d / P_fa sweep as an experiment (the detector itself: tests/fusion/test_metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from sdr_isac.errors import InputError
from sdr_isac.experiments import roc
from sdr_isac.experiments.catalog import scenario


def test_independent_maps_follow_the_design_pfa_and_the_detector_theory() -> None:
    point = {"maps": "independent", "snr_db": 9.0}
    trials = [roc.trial(point, np.random.default_rng(s)) for s in range(6)]
    rows = roc.summarise(point, trials)
    assert [r["pfa_design"] for r in rows] == list(roc.PFA_DESIGN)
    for r in rows:
        n = int(r["num_maps"])
        detected = round(r["pd"] * n)
        lo, hi = binom.ppf(0.0005, n, r["pd_theory"]), binom.ppf(0.9995, n, r["pd_theory"])
        assert lo <= detected <= hi, r                           # P_d of the CA-CFAR theory at this SNR
        if r["pfa_design"] >= 1e-3:                              # enough noise cells to decide (~2x binomial spread)
            cells = r["cells"]
            sd = np.sqrt(2.0 * cells * r["pfa_design"])
            assert abs(r["pfa"] * cells - r["pfa_design"] * cells) < 4 * sd, r


def test_the_scenario_sweeps_both_kinds_of_map() -> None:
    scn = scenario("roc")
    assert {p["maps"] for p in scn.points} == {"independent", "default"}
    assert scn.table is not None and "P_d theory" in scn.table(
        roc.summarise({"maps": "default", "snr_db": 3.0}, [roc.trial({"maps": "default", "snr_db": 3.0},
                                                                     np.random.default_rng(0))]))
    for bad in ({"snr_db": 3.0}, {"maps": "indepedent", "snr_db": 3.0}):
        with pytest.raises(InputError, match="maps = "):
            roc.trial(bad, np.random.default_rng(0))


def test_the_clopper_pearson_interval_matches_its_definition() -> None:
    """The interval's ends are where the binomial tail probabilities are 2.5 % (Clopper & Pearson 1934)."""
    for k, n in ((0, 10), (3, 10), (10, 10), (37, 200)):
        low, high = roc._clopper_pearson(k, n)
        assert 0.0 <= low <= k / n <= high <= 1.0
        if k > 0:
            assert binom.sf(k - 1, n, low) == pytest.approx(0.025, rel=1e-6, abs=0)
        if k < n:
            assert binom.cdf(k, n, high) == pytest.approx(0.025, rel=1e-6, abs=0)
