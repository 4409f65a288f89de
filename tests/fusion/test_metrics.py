"""Evaluation against the truth: detections matched to simulated target paths, and the §II-B metrics
(continuity, RMSE/NMSE, P_d/P_fa and the CFAR ROC against the detector's theory, the sensing area)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import integrate, optimize, stats

from sdr_isac.config import SensingConfig
from sdr_isac.errors import InputError
from sdr_isac.fusion.coverage import LinkBudget, sensing_radius_m
from sdr_isac.fusion.metrics import (
    detection_probability,
    detection_probability_map,
    detection_rates,
    match_targets,
    nmse,
    plot_coverage_map,
    rmse,
    roc_curve,
    sensing_area,
    sensing_continuity,
)
from sdr_isac.sensing import Detection


def det(range_m: float, velocity_mps: float, angle_rad: float | None = None) -> Detection:
    return Detection(range_m=range_m, velocity_mps=velocity_mps, doppler_hz=0.0, delay_s=0.0, snr_db=20.0,
                     geometry="monostatic", angle_rad=angle_rad, range_var_m2=0.04, velocity_var_mps2=0.01,
                     angle_var_rad2=None, map_snr_db=25.0)


def path(target: str, range_m: float, velocity_mps: float, **extra: object) -> dict[str, object]:
    return {"kind": "target", "target": target, "range_m": range_m, "velocity_mps": velocity_mps,
            "snr_per_re_db": 5.0, **extra}


def test_each_target_takes_the_nearest_detection_in_cells():
    # cells of 1 m and 0.5 m/s: the first detection is 0.3 cells from "a", the second 0.4 cells from "b"
    rows = match_targets([det(20.3, 1.0, 0.1), det(40.0, -2.2)],
                         [path("a", 20.0, 1.0, azimuth_deg=5.0), path("b", 40.0, -2.0),
                          {"kind": "clutter", "range_m": 33.0, "velocity_mps": 0.0}], 1.0, 0.5)
    assert [r["target"] for r in rows] == ["a", "b"]              # clutter paths are not targets
    a, b = rows
    assert a["detected"] and a["range_error_m"] == pytest.approx(0.3) and a["velocity_error_mps"] == 0.0
    assert a["range_error_over_crb"] == pytest.approx(0.3 / 0.2)  # |dR| / sqrt(var) with var 0.04 m^2
    assert a["angle_deg"] == pytest.approx(math.degrees(0.1)) and a["truth_angle_deg"] == 5.0
    assert b["detected"] and b["velocity_error_over_crb"] == pytest.approx(0.2 / 0.1)
    assert "angle_deg" not in b


def test_a_target_with_no_detection_within_max_cells_is_missed():
    rows = match_targets([det(25.0, 1.0)], [path("a", 20.0, 1.0)], 1.0, 0.5, max_cells=2.0)
    assert rows == [{"target": "a", "truth_range_m": 20.0, "truth_velocity_mps": 1.0, "truth_snr_db": 5.0,
                     "detected": False}]
    assert not match_targets([], [path("a", 20.0, 1.0)], 1.0, 0.5)[0]["detected"]


# ============================================================================ §II-B metrics

# ---- continuity

def test_continuity_is_the_fraction_of_accurate_instants_and_a_missing_estimate_fails():
    # 10 instants: 6 within 0.5 m, one exactly at it (counts), two beyond, one without an estimate
    errors = [0.1, 0.2, 0.49, 0.5, 0.3, 0.0, 0.45, 0.8, 3.0, float("nan")]
    assert sensing_continuity(errors, 0.5) == pytest.approx(7 / 10)
    assert sensing_continuity(errors, 10.0) == pytest.approx(9 / 10)        # the NaN instant still fails
    assert sensing_continuity([float("inf"), 0.1], 1.0) == 0.5


def test_continuity_batch_form_gives_one_value_per_track():
    errors = np.array([[0.1, 0.2, 2.0, 0.3], [np.nan, np.nan, 0.1, 0.1], [5.0, 5.0, 5.0, 5.0]])
    out = sensing_continuity(errors, 1.0)
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    assert out.tolist() == [0.75, 0.5, 0.0]
    assert sensing_continuity(errors[None], 1.0).shape == (1, 3)


@pytest.mark.parametrize("errors, threshold, match", [
    ([], 1.0, "n >= 1"), (np.zeros((3, 0)), 1.0, "n >= 1"), (0.3, 1.0, "shape"), ([0.1, -0.2], 1.0, "-0.2 m"),
    (["a", "b"], 1.0, "dtype"), ([0.1], float("nan"), "threshold_m"), ([0.1], -1.0, "threshold_m"),
    ([0.1], None, "threshold_m"), ([0.1], True, "threshold_m"),
])
def test_continuity_rejects_bad_input(errors, threshold, match):
    with pytest.raises(InputError, match=match):
        sensing_continuity(errors, threshold)


errors_strategy = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=40),
                             elements=st.one_of(st.floats(0.0, 1e300), st.just(np.inf), st.just(np.nan)))


@settings(max_examples=200, deadline=None)
@given(errors_strategy, st.floats(0.0, 1e308))
def test_continuity_properties(errors, threshold):
    out = np.asarray(sensing_continuity(errors, threshold))
    assert out.shape == errors.shape[:-1]
    assert np.all((out >= 0) & (out <= 1))
    # counting by hand, instant by instant: each accurate instant adds 1/n
    n = errors.shape[-1]
    flat = errors.reshape(-1, n)
    expected = [sum(1 for e in row if not math.isnan(e) and e <= threshold) / n for row in flat]
    assert np.allclose(out.reshape(-1), expected)
    # reversing time changes nothing; raising the threshold never lowers it
    assert np.allclose(sensing_continuity(errors[..., ::-1], threshold), out)
    assert np.all(np.asarray(sensing_continuity(errors, min(threshold * 2 + 1, 1e308))) >= out)


def test_continuity_of_a_long_run():
    rng = np.random.default_rng(0)
    e = rng.rayleigh(1.0, 200_000)                    # Rayleigh(1): P(e <= r) = 1 - exp(-r**2 / 2)
    assert sensing_continuity(e, 1.5) == pytest.approx(1 - math.exp(-1.125), abs=4e-3)


# ---- rmse, nmse

def test_rmse_and_nmse_on_known_values():
    assert rmse([3.0, -4.0]) == pytest.approx(math.sqrt(12.5))
    assert rmse([3j, 4.0]) == pytest.approx(math.sqrt(12.5))
    assert math.isnan(rmse([1.0, float("nan")]))
    assert rmse([1.0, float("nan"), -1.0], skip_nan=True) == 1.0
    assert math.isnan(rmse([float("nan")], skip_nan=True)) and math.isnan(rmse([]))
    assert rmse([[1.0, 1.0], [2.0, 2.0]], axis=1).tolist() == [1.0, 2.0]
    assert nmse([0.0, 0.0], [1.0, -2.0]) == 1.0                       # estimating 0: all the energy is error
    assert nmse([1.0, -2.0], [1.0, -2.0]) == 0.0
    assert nmse([1.1, 2.0], [1.0, 2.0]) == pytest.approx(0.01 / 5.0)
    assert nmse([1.1, np.nan], [1.0, 2.0], skip_nan=True) == pytest.approx(0.01)
    assert math.isnan(nmse([1.1, np.nan], [1.0, 2.0]))
    assert nmse([[1.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [2.0, 0.0]], axis=1).tolist() == [0.5, 1.0]
    with pytest.raises(InputError, match="zero energy"):
        nmse([1.0], [0.0])
    with pytest.raises(InputError, match="broadcastable"):
        nmse([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(InputError, match="finite"):
        nmse([1.0], [np.inf])
    with pytest.raises(InputError, match="dtype"):
        rmse(["x"])


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=50),
                  elements=st.floats(-1e150, 1e150)), st.floats(-1e100, 1e100))
def test_rmse_properties(e, k):
    r = rmse(e)
    assert r == pytest.approx(float(np.linalg.norm(e.astype(float))) / math.sqrt(e.size), rel=1e-9)
    assert rmse(k * e) == pytest.approx(abs(k) * r, rel=1e-9, abs=1e-300)
    assert rmse(np.full(e.shape, k)) == pytest.approx(abs(k), rel=1e-12)


# ---- detection accuracy

def test_detection_rates_count_targets_in_their_gates_and_the_false_alarms():
    frames_det = [np.array([[10.0, 1.0], [10.3, 1.2], [50.0, 0.0]]),   # two near target a, one false
                  np.zeros((0, 2)),                                       # target missed
                  [det(70.0, -3.0), det(20.0, 0.0)]]                     # Detection records: one hit, one false
    frames_truth = [np.array([[10.1, 1.1], [30.0, 2.0]]), np.array([[15.0, 0.0]]), np.array([[70.2, -3.1]])]
    r = detection_rates(frames_det, frames_truth, gate=[1.0, 0.5], num_cells=1000)
    assert (r.num_targets, r.num_detected, r.num_detections, r.num_false, r.num_cells) == (4, 2, 5, 2, 3000)
    assert r.pd == 0.5 and r.pfa == pytest.approx(2 / 3000)
    # per-axis gate: 0.4 m/s off in velocity is outside a 0.3 m/s gate
    assert detection_rates([[[10.0, 1.5]]], [[[10.0, 1.1]]], gate=[1.0, 0.3], num_cells=10).pd == 0.0
    none = detection_rates([[[1.0, 1.0]]], [np.zeros((0, 2))], gate=1.0, num_cells=[100])
    assert math.isnan(none.pd) and none.pfa == 0.01


@pytest.mark.parametrize("kwargs, match", [
    ({"detections": [[]], "truth": [[], []]}, "frames"),
    ({"gate": 0.0}, "gate"), ({"gate": [1.0, float("nan")]}, "gate"),
    ({"num_cells": -1}, "num_cells"), ({"num_cells": 1.5}, "num_cells"), ({"num_cells": [1, 2]}, "num_cells"),
    ({"detections": "abc"}, "sequences"), ({"detections": [[[1.0, 2.0, 3.0]]]}, "shape"),
])
def test_detection_rates_reject_bad_input(kwargs, match):
    args = {"detections": [[[1.0, 1.0]]], "truth": [[[1.0, 1.0]]], "gate": [1.0, 1.0], "num_cells": 10}
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        detection_rates(**args)


points = hnp.arrays(np.float64, st.tuples(st.integers(0, 30), st.just(2)), elements=st.floats(-1e6, 1e6))


@settings(max_examples=100, deadline=None)
@given(points, st.integers(0, 10**12))
def test_detection_rates_properties(pts, cells):
    # the detections are the truth: every target detected, no false alarm
    same = detection_rates([pts], [pts], gate=1e-9, num_cells=cells)
    assert same.num_false == 0 and (math.isnan(same.pd) if len(pts) == 0 else same.pd == 1.0)
    # the truth far from every detection: every detection is a false alarm
    far = detection_rates([pts], [pts + 1e7], gate=1.0, num_cells=cells)
    assert far.num_false == len(pts) and far.num_detected == 0
    assert (math.isnan(far.pfa) if cells == 0 else far.pfa == pytest.approx(len(pts) / cells))


def marcum_pd(snr_db, pfa):
    """Square-law detector, known noise, Swerling 0: Q_1(sqrt(2 SNR), sqrt(-2 ln pfa)) (Richards eq. 6.27)."""
    return stats.ncx2.sf(-2.0 * math.log(pfa), 2, 2 * 10 ** (snr_db / 10))


def ca_cfar_pd(snr_db, pfa, n):
    """CA-CFAR of n cells, Swerling 0: the known-noise P_d averaged over Z ~ Gamma(n, 1/n) by plain quad."""
    alpha = n * (pfa ** (-1.0 / n) - 1.0)
    snr = 10 ** (snr_db / 10)
    return integrate.quad(lambda z: stats.ncx2.sf(2 * alpha * z, 2, 2 * snr) * stats.gamma.pdf(z, n, scale=1 / n),
                          0, np.inf, limit=200)[0]


def test_detection_probability_matches_the_textbook_detector():
    # Swerling 0, one look, P_fa = 1e-6: P_d = 0.9 needs 13.2 dB (Richards Fig. 6.7; Albersheim: 13.1 dB)
    assert detection_probability(13.2, 1e-6) == pytest.approx(0.9, abs=0.01)
    assert float(detection_probability(-np.inf, 1e-3)) == pytest.approx(1e-3)            # no signal: P_d = P_fa
    assert detection_probability([5.0, 10.0, 15.0], 1e-4) == pytest.approx([marcum_pd(s, 1e-4) for s in
                                                                          (5.0, 10.0, 15.0)])
    for n in (4, 16, 100):
        assert float(detection_probability(12.0, 1e-4, n)) == pytest.approx(ca_cfar_pd(12.0, 1e-4, n), rel=1e-5)
    # the CFAR loss: fewer training cells cost SNR; with many it tends to the known-noise detector
    assert detection_probability(12.0, 1e-4, 8) < detection_probability(12.0, 1e-4, 64) \
        < detection_probability(12.0, 1e-4)
    assert float(detection_probability(12.0, 1e-4, 100_000)) == pytest.approx(marcum_pd(12.0, 1e-4), abs=1e-3)
    with pytest.raises(InputError, match="pfa"):
        detection_probability(10.0, 1.0)
    with pytest.raises(InputError, match="num_training"):
        detection_probability(10.0, 1e-3, 0)
    with pytest.raises(InputError, match="NaN"):
        detection_probability(np.nan, 1e-3)


PLAIN = SensingConfig(window_range="none", window_doppler="none", range_oversampling=1, doppler_oversampling=1,
                      guard_cells=(1, 1), training_cells=(2, 2))


def binomial_ok(count, trials, p, inflation=1.0, confidence=0.999):
    """count within the two-sided binomial interval, its variance inflated by ``inflation``."""
    mean, sd = trials * p, math.sqrt(inflation * trials * p * (1 - p))
    z = stats.norm.isf((1 - confidence) / 2)
    lo, hi = stats.binom.interval(confidence, trials, p)
    return min(lo, mean - z * sd) <= count <= max(hi, mean + z * sd)


def test_roc_of_ca_cfar_follows_the_design_pfa_and_the_theoretical_pd():
    """1000 maps of 64 x 32 cells, CA-CFAR with 40 training cells, target at 9 dB in its cell.

    P_d trials (one target per map) are independent: binomial bounds.  The false-alarm decisions of
    neighbouring cells share training cells, which makes their count over-dispersed (its variance about
    1.7 times the binomial one for this window); the bounds allow twice the binomial variance.
    """
    pfas = [1e-2, 1e-3, 1e-4]
    roc = roc_curve(9.0, pfas, PLAIN, np.random.default_rng(11), num_trials=1000)
    assert roc.num_training == 40                          # 7 x 7 window less the 3 x 3 guard box
    assert roc.num_cells.min() > 1000 * 64 * 32 * 0.9
    for i, pfa in enumerate(pfas):
        assert binomial_ok(roc.num_false[i], roc.num_cells[i], pfa, inflation=2.0), (pfa, roc.pfa[i])
        theory = ca_cfar_pd(9.0, pfa, 40)
        assert binomial_ok(roc.num_detected[i], roc.num_trials, theory), (pfa, roc.pd[i], theory)
    assert np.all(np.diff(roc.pd) < 0)                          # a lower P_fa costs P_d
    # the known-noise detector would promise more: the measurement resolves the CFAR loss
    for i in (1, 2):
        assert roc.pd[i] < marcum_pd(9.0, pfas[i])
        assert not binomial_ok(roc.num_detected[i], roc.num_trials, marcum_pd(9.0, pfas[i]))


def test_roc_of_os_cfar_keeps_its_false_alarm_rate():
    cfg = SensingConfig(window_range="none", window_doppler="none", range_oversampling=1, doppler_oversampling=1,
                        guard_cells=(1, 1), training_cells=(2, 2), cfar="os")
    roc = roc_curve(8.0, [1e-2], cfg, np.random.default_rng(3), num_trials=300)
    assert binomial_ok(roc.num_false[0], roc.num_cells[0], 1e-2, inflation=2.0), roc.pfa


def test_roc_rejects_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="pfa_values"):
        roc_curve(10.0, [0.0], PLAIN, rng)
    with pytest.raises(InputError, match="pfa_values"):
        roc_curve(10.0, [], PLAIN, rng)
    with pytest.raises(InputError, match="snr_db"):
        roc_curve(float("inf"), [1e-3], PLAIN, rng)
    with pytest.raises(InputError, match="Generator"):
        roc_curve(10.0, [1e-3], PLAIN, 5)                                   # type: ignore[arg-type]
    with pytest.raises(InputError, match="num_trials"):
        roc_curve(10.0, [1e-3], PLAIN, rng, num_trials=0)


# ---- sensing area

BUDGET = LinkBudget(tx_power_dbm=20.0, tx_gain_dbi=10.0, rx_gain_dbi=10.0, carrier_hz=24e9,
                    subcarrier_spacing_hz=120e3, num_subcarriers=792, fft_size=1024, noise_figure_db=8.0)


def snr_for_pd(pd, pfa):
    """The SNR (dB) at which the known-noise detector reaches ``pd``: root of the Marcum Q expression."""
    return optimize.brentq(lambda s: marcum_pd(s, pfa) - pd, -10.0, 40.0, xtol=1e-10)


def test_one_node_in_free_space_covers_a_disc_of_the_sensing_radius(tmp_path):
    pfa, rcs, symbols = 1e-6, 1.0, 112
    radius = sensing_radius_m(BUDGET, rcs, symbols, detection_threshold_db=snr_for_pd(0.9, pfa))
    step = radius / 100
    x = np.arange(-1.3 * radius, 1.3 * radius, step)
    y = np.arange(-1.2 * radius, 1.2 * radius, step)
    pd = detection_probability_map(BUDGET, [[0.0, 0.0, 0.0]], x, y, rcs, symbols, pfa)
    area = sensing_area(pd, x, y)
    # the grid decides the cells along the circle: at most its perimeter times a cell diagonal
    assert abs(area - math.pi * radius**2) <= 2 * math.pi * radius * step * math.sqrt(2)
    assert abs(area - math.pi * radius**2) / (math.pi * radius**2) < 0.01
    # two nodes far apart: twice the area; CA-CFAR (CFAR loss) covers less than the known-noise detector
    two = detection_probability_map(BUDGET, [[-radius * 1.1, 0.0], [radius * 1.1, 0.0]],
                                    np.arange(-2.3 * radius, 2.3 * radius, step), y, rcs, symbols, pfa)
    assert sensing_area(two, np.arange(-2.3 * radius, 2.3 * radius, step), y) == pytest.approx(2 * area, rel=0.02)
    cfar = detection_probability_map(BUDGET, [[0.0, 0.0, 0.0]], x, y, rcs, symbols, pfa, num_training=16)
    assert sensing_area(cfar, x, y) < 0.8 * area
    out = plot_coverage_map(tmp_path / "maps" / "coverage.png", pd, x, y, nodes_m=[[0.0, 0.0]], title="one BS")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["coverage.png"]    # no temporary left


def test_sensing_area_rejects_bad_grids():
    x = np.linspace(0, 10, 11)
    with pytest.raises(InputError, match="uniform"):
        sensing_area(np.zeros((11, 11)), np.r_[0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11.0], x)
    with pytest.raises(InputError, match="shape"):
        sensing_area(np.zeros((10, 11)), x, x)
    with pytest.raises(InputError, match="outside"):
        sensing_area(np.full((11, 11), 1.5), x, x)
    with pytest.raises(InputError, match="min_pd"):
        sensing_area(np.zeros((11, 11)), x, x, min_pd=0.0)
    with pytest.raises(InputError, match="nodes_m"):
        detection_probability_map(BUDGET, [[0.0]], x, x, 1.0, 10, 1e-6)
    with pytest.raises(InputError, match="rcs_m2"):
        detection_probability_map(BUDGET, [[0.0, 0.0]], x, x, 0.0, 10, 1e-6)
