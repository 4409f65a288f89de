"""Tests of sdr_isac.sensing.cfar.

False-alarm rates are checked against the design P_fa with a two-sided
binomial acceptance region at the 4-sigma level (probability 6.3e-5 of
rejecting a correct rate), on noise-only exponential maps from seeded
generators; the closed forms are checked against Monte Carlo runs of the
scalar test statistic and against Weiss's sum; the window geometry against a
cell-by-cell reference written here with loops.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from sdr_isac.errors import InputError, SensingError
from sdr_isac.sensing.cfar import (
    _BLOCK_SHAPES,
    CaCfarDetector,
    CfarDetector,
    CfarResult,
    GoCfarDetector,
    OsCfarDetector,
    SoCfarDetector,
    _block_offsets,
    _check_power_quick,
    _Doubling,
    _runs,
    _total,
    ca_multiplier,
    cfar_class,
    go_false_alarm_probability,
    go_multiplier,
    make_cfar,
    os_false_alarm_probability,
    os_multiplier,
    register_cfar,
    registered_cfars,
    so_false_alarm_probability,
    so_multiplier,
    unregister_cfar,
)

DETECTORS = [CaCfarDetector, GoCfarDetector, SoCfarDetector, OsCfarDetector]
GUARD, TRAIN = (1, 1), (2, 2)
LEVEL = 6.3e-5          # two-sided 4-sigma


def rate_ok(count: int, trials: int, pfa: float) -> bool:
    """``count`` false alarms in ``trials`` cells is consistent with ``pfa`` (exact binomial region)."""
    lo, hi = stats.binom.interval(1.0 - LEVEL, trials, pfa)
    return bool(lo <= count <= hi)


def check_rate_per_training_count(detector: CfarDetector, power: np.ndarray) -> int:
    """Assert the false-alarm rate of every group of cells with one training count; return the groups."""
    result = detector.detect(power)
    tested = np.isfinite(result.threshold)
    assert tested.all()
    groups = np.unique(result.num_training)
    for n in groups:
        cells = result.num_training == n
        count, trials = int(result.mask[cells].sum()), int(cells.sum())
        assert rate_ok(count, trials, detector.pfa), (n, count, trials * detector.pfa)
    assert rate_ok(int(result.mask.sum()), result.mask.size, detector.pfa)
    return groups.size


# --------------------------------------------------------------------------- false-alarm rate on noise maps


@pytest.mark.parametrize("cls", DETECTORS)
def test_false_alarm_rate_matches_design(cls, rng):
    # 16 x 32768 cells at pfa 1e-3: ~524 false alarms expected; rows 0-2 and 13-15 are range-edge cells
    power = rng.exponential(3.7, size=(16, 2**15))
    assert check_rate_per_training_count(cls(1e-3, GUARD, TRAIN), power) == 4


@pytest.mark.parametrize("cls", DETECTORS)
@pytest.mark.parametrize(("shape", "wrap"), [((8, 2**14), True), ((2**14, 8), False)], ids=["range-edges",
                                                                                           "doppler-edges"])
def test_false_alarm_rate_at_edges_uses_exact_alpha_per_count(cls, shape, wrap, rng):
    # 3 of 4 row (or column) pairs are edge cells with their own N: ~328 expected false alarms per group at 1e-2
    power = rng.exponential(0.2, size=shape)
    assert check_rate_per_training_count(cls(1e-2, GUARD, TRAIN, wrap_doppler=wrap), power) >= 4


def test_rate_check_rejects_the_full_ring_alpha_at_the_edge(rng):
    # range bins 0 and 7 have N = 22 ring cells instead of 40: the N = 40 multiplier gives pfa 1.22e-2
    pfa = 1e-2
    power = rng.exponential(size=(8, 2**16))
    result = CaCfarDetector(pfa, GUARD, TRAIN).detect(power)
    edge = result.num_training == 22
    assert np.array_equal(np.flatnonzero(edge.any(axis=1)), [0, 7])
    trials = int(edge.sum())
    assert rate_ok(int(result.mask[edge].sum()), trials, pfa)
    wrong = power[edge] > ca_multiplier(pfa, 40) * result.noise[edge]
    assert not rate_ok(int(wrong.sum()), trials, pfa)


def test_design_pfa_1e2_and_1e3_give_distinguishable_rates(rng):
    power = rng.exponential(size=(64, 2**12))
    result = CaCfarDetector(1e-2, GUARD, TRAIN).detect(power)
    assert rate_ok(int(result.mask.sum()), power.size, 1e-2)
    assert not rate_ok(int(result.mask.sum()), power.size, 1e-3)


# --------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("n", [1, 4, 16, 60])
def test_so_and_go_equal_halves_match_weiss_sum(n):
    for alpha in (0.0, 0.3, 5.0, 40.0):
        x = 2.0 + alpha / n
        weiss_so = 2.0 * x**-n * sum(math.comb(n - 1 + k, k) * x**-k for k in range(n))
        assert so_false_alarm_probability(alpha, n, n) == pytest.approx(weiss_so, rel=1e-12)
        weiss_go = 2.0 * (1.0 + alpha / n) ** -n - weiss_so
        assert go_false_alarm_probability(alpha, n, n) == pytest.approx(weiss_go, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("num_lead", "num_lag"), [(7, 7), (3, 11), (0, 5)])
@pytest.mark.parametrize("method", ["go", "so"])
def test_go_so_multiplier_against_monte_carlo_of_the_statistic(method, num_lead, num_lag, rng):
    # 4e5 trials at pfa 1e-2: 4000 expected exceedances, 4 sigma = 6 %
    pfa, trials = 1e-2, 400_000
    solve, combine = (go_multiplier, np.fmax) if method == "go" else (so_multiplier, np.fmin)
    alpha = solve(pfa, num_lead, num_lag)
    lead = rng.gamma(num_lead, size=trials) / num_lead if num_lead else np.full(trials, np.nan)
    lag = rng.gamma(num_lag, size=trials) / num_lag
    cut = rng.exponential(size=trials)
    stat = combine(lead, lag)
    assert rate_ok(int((cut > alpha * stat).sum()), trials, pfa)
    if num_lead:   # the CA multiplier for the same cells would be wrong for this statistic
        wrong = ca_multiplier(pfa, num_lead + num_lag)
        assert not rate_ok(int((cut > wrong * stat).sum()), trials, pfa)


@pytest.mark.parametrize(("num_training", "rank"), [(40, 30), (16, 1), (9, 9)])
def test_os_multiplier_against_monte_carlo_of_the_statistic(num_training, rank, rng):
    # 2e5 trials at pfa 1e-2: 2000 expected exceedances, 4 sigma = 9 %
    pfa, trials = 1e-2, 200_000
    alpha = os_multiplier(pfa, num_training, rank)
    assert os_false_alarm_probability(alpha, num_training, rank) == pytest.approx(pfa, rel=1e-10)
    cells = rng.exponential(size=(trials, num_training))
    kth = np.partition(cells, rank - 1, axis=1)[:, rank - 1]
    cut = rng.exponential(size=trials)
    assert rate_ok(int((cut > alpha * kth).sum()), trials, pfa)


def test_os_rank_one_has_closed_form():
    # k = 1: pfa = N / (N + alpha)
    assert os_multiplier(1e-3, 16, 1) == pytest.approx(16 * (1e3 - 1), rel=1e-12)


def test_multipliers_solve_their_equations():
    for n1, n2 in [(1, 1), (2, 9), (100, 100), (0, 3)]:
        for pfa in (1e-1, 1e-3, 1e-8):
            assert go_false_alarm_probability(go_multiplier(pfa, n1, n2), n1, n2) == pytest.approx(pfa, rel=1e-9)
            assert so_false_alarm_probability(so_multiplier(pfa, n1, n2), n1, n2) == pytest.approx(pfa, rel=1e-9)
    n = np.array([1, 5, 40])
    assert np.allclose((1 + ca_multiplier(1e-4, n) / n) ** -n, 1e-4, rtol=1e-12)


# --------------------------------------------------------------------------- window geometry


def reference_statistic(power, r, d, detector):
    """Noise statistic and training count of one cell, by listing the ring cells."""
    (gr, gd), (tr, td) = detector.guard, detector.train
    num_r, num_d = power.shape
    lead, lag, centre = [], [], []
    for dr in range(-(gr + tr), gr + tr + 1):
        for dd in range(-(gd + td), gd + td + 1):
            rr, cc = r + dr, d + dd
            if (abs(dr) <= gr and abs(dd) <= gd) or not 0 <= rr < num_r:
                continue
            if detector.wrap_doppler:
                cc %= num_d
            elif not 0 <= cc < num_d:
                continue
            (lead if dr < 0 else lag if dr > 0 else centre).append(power[rr, cc])
    ring = lead + lag + centre
    if isinstance(detector, CaCfarDetector):
        return np.mean(ring), len(ring), ca_multiplier(detector.pfa, len(ring))
    if isinstance(detector, OsCfarDetector):
        k = int(detector.rank_for(len(ring)))
        return np.sort(ring)[k - 1], len(ring), os_multiplier(detector.pfa, len(ring), k)
    means = [np.mean(h) for h in (lead, lag) if h]
    stat = max(means) if isinstance(detector, GoCfarDetector) else min(means)
    solve = go_multiplier if isinstance(detector, GoCfarDetector) else so_multiplier
    return stat, len(lead) + len(lag), solve(detector.pfa, len(lead), len(lag))


@pytest.mark.parametrize("cls", DETECTORS)
@pytest.mark.parametrize("wrap", [True, False])
@pytest.mark.parametrize(("guard", "train", "min_training"), [((1, 1), (2, 2), 4), ((0, 2), (3, 1), 4),
                                                               ((0, 0), (4, 5), 60)])
def test_statistic_matches_cell_by_cell_reference(cls, wrap, guard, train, min_training, rng):
    power = rng.exponential(size=(9, 11))
    power[4, 5] = 1e4
    detector = cls(0.05, guard, train, wrap_doppler=wrap, min_training=min_training)
    result = detector.detect(power)
    for r in range(power.shape[0]):
        for d in range(power.shape[1]):
            stat, count, alpha = reference_statistic(power, r, d, detector)
            assert result.num_training[r, d] == count
            if count >= detector.min_training:
                assert result.noise[r, d] == pytest.approx(stat, rel=1e-12)
                assert result.threshold[r, d] == pytest.approx(alpha * stat, rel=1e-9)
                assert result.mask[r, d] == (power[r, d] > result.threshold[r, d])
            else:
                assert np.isnan(result.threshold[r, d]) and not result.mask[r, d]


@pytest.mark.parametrize("cls", DETECTORS)
def test_target_20db_detected_and_guard_cells_not_in_training(cls, rng):
    power = rng.exponential(size=(64, 32))
    detector = cls(1e-3, GUARD, TRAIN)
    quiet = detector.detect(power)
    power[30, 0] = 100.0                      # 20 dB above the noise mean, on the Doppler wrap
    power[[29, 31, 30, 30, 29, 31], [0, 0, 1, 31, 1, 31]] = 1e6    # target spread over its whole guard box
    loud = detector.detect(power)
    assert loud.mask[30, 0]
    assert loud.noise[30, 0] == pytest.approx(quiet.noise[30, 0], rel=1e-12)
    assert loud.num_training[30, 0] == detector.num_training_full
    power[28, 0] = 1e3                        # just outside the guard box: in the ring
    assert detector.detect(power).noise[30, 0] > quiet.noise[30, 0]


def test_smallest_of_detects_target_beside_clutter_edge_where_cell_averaging_misses(rng):
    power = rng.exponential(size=(64, 64))
    power[:32] *= 1e3                         # clutter 30 dB above noise in range bins 0-31
    power[33, ::8] = 100.0                    # 8 targets 20 dB above noise, one bin beyond the guard
    so = SoCfarDetector(1e-3, GUARD, TRAIN).detect(power)
    ca = CaCfarDetector(1e-3, GUARD, TRAIN).detect(power)
    assert so.mask[33, ::8].all()
    assert not ca.mask[33, ::8].any()


def test_min_training_leaves_edge_cells_untested(rng):
    power = rng.exponential(size=(16, 8))
    detector = CaCfarDetector(1e-3, GUARD, TRAIN, min_training=40)
    result = detector.detect(power)
    tested = np.isfinite(result.threshold)
    assert np.array_equal(tested.all(axis=1), np.r_[[False] * 3, [True] * 10, [False] * 3])
    assert not result.mask[~tested].any() and np.isnan(result.noise[~tested]).all()
    assert result.mask.dtype == bool and result.num_training.dtype == np.int64
    assert result.threshold.shape == result.noise.shape == power.shape


def test_os_integer_rank_equals_fraction():
    power = np.random.default_rng(5).exponential(size=(16, 16))
    by_int = OsCfarDetector(1e-3, GUARD, TRAIN, rank=30).detect(power)
    by_fraction = OsCfarDetector(1e-3, GUARD, TRAIN, rank=0.75).detect(power)
    assert np.array_equal(by_int.threshold, by_fraction.threshold)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("power", "match"), [
    (np.ones(64), r"shape \(64,\).*2-D"),
    (np.ones((16, 16), dtype=complex), "complex.*np.abs"),
    (np.full((16, 16), -1.0), r"power\[0, 0\] = -1.0.*>= 0"),
    (np.where(np.eye(16) > 0, np.nan, 1.0), r"power\[0, 0\] = nan.*finite"),
    (np.ones((6, 16)), r"shape \(6, 16\).*window is \(7, 7\)"),
    (np.ones((16, 6)), r"shape \(16, 6\).*window is \(7, 7\)"),
    (np.array([["a"] * 16] * 16), "dtype <U1"),
])
def test_bad_power_raises(power, match):
    with pytest.raises(InputError, match=match):
        CaCfarDetector(1e-3, GUARD, TRAIN).detect(power)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"pfa": 0.0}, r"pfa = 0.0: allowed .* 0 < pfa < 1"),
    ({"pfa": 1.0}, "pfa = 1.0"),
    ({"pfa": True}, "pfa = True"),
    ({"guard": (-1, 1)}, r"guard = \(-1, 1\): allowed .* >= 0"),
    ({"train": (2, 2, 2)}, r"train = \(2, 2, 2\)"),
    ({"train": (2.0, 2)}, r"train = \(2.0, 2\)"),
    ({"wrap_doppler": "yes"}, "wrap_doppler = 'yes'"),
    ({"min_training": 0}, "min_training = 0"),
    ({"guard": (0, 0), "train": (0, 1)}, "give 2 training cells .* min_training = 4"),
])
def test_bad_constructor_arguments_raise(kwargs, match):
    args = {"pfa": 1e-3, "guard": GUARD, "train": TRAIN} | kwargs
    with pytest.raises(InputError, match=match):
        CaCfarDetector(**args)


@pytest.mark.parametrize("rank", [0, 41, 0.0, 1.0, 1.5, True, "half"])
def test_os_bad_rank_raises(rank):
    with pytest.raises(InputError, match=rf"rank = {rank!r}: allowed an integer 1 \.\.\. 40"):
        OsCfarDetector(1e-3, GUARD, TRAIN, rank=rank)


@pytest.mark.parametrize("cls", [GoCfarDetector, SoCfarDetector])
def test_go_so_need_training_cells_on_both_range_sides(cls):
    with pytest.raises(InputError, match=r"needs training cells before and after .* train\[0\] >= 1"):
        cls(1e-3, (0, 1), (0, 4))


def test_halves_need_a_cell():
    with pytest.raises(InputError, match=r"\(num_lead, num_lag\) = \(0, 0\)"):
        so_multiplier(1e-3, 0, 0)


@pytest.mark.parametrize("channels", [1, 4, 8])
def test_ca_false_alarms_on_multichannel_maps(channels):
    """A map summing C channels' power is Gamma(C) distributed; the Beta-based multiplier keeps the design P_fa."""
    from sdr_isac.sensing.cfar import CaCfarDetector
    rng = np.random.default_rng(50 + channels)
    pfa = 1e-3
    power = rng.standard_gamma(channels, size=(4, 512, 256)).astype(np.float64)
    det = CaCfarDetector(pfa, guard=(1, 1), train=(2, 2), num_channels=channels)
    hits = sum(int(det.detect(p).mask.sum()) for p in power)
    cells = power.size
    sigma = np.sqrt(cells * pfa * (1 - pfa))
    assert abs(hits - cells * pfa) < 4 * sigma, (hits, cells * pfa)
    if channels > 1:   # the single-channel multiplier on the same maps is far too conservative
        single = CaCfarDetector(pfa, guard=(1, 1), train=(2, 2))
        assert sum(int(single.detect(p).mask.sum()) for p in power) < 0.3 * cells * pfa


# --------------------------------------------------------------------------- mask-only path


@pytest.mark.parametrize(("guard", "train"), [((4, 2), (8, 4)), ((1, 1), (2, 2)), ((0, 2), (3, 1)), ((2, 1), (10, 5))])
@pytest.mark.parametrize("wrap", [True, False])
@pytest.mark.parametrize("channels", [1, 3])
def test_detect_mask_equals_the_mask_of_detect(guard, train, wrap, channels, rng):
    """The CA shortcut (a block lower bound on every ring sum, exact test above it) decides every cell alike."""
    detector = CaCfarDetector(1e-4, guard, train, wrap_doppler=wrap, num_channels=channels)
    power = rng.standard_gamma(channels, size=(300, 96))
    power[150, 40] = 1e7                                          # a strong target, its sidelobes and a cluster
    power[150, 30:50] += 1e3
    power[10:14, 0:3] = 500.0                                     # near the range edge and the Doppler wrap
    power[297, 94] = 80.0
    power[200:220] = 0.0                                          # an empty stretch: a zero lower bound
    for p in (power, power.astype(np.float32)):
        assert np.array_equal(detector.detect_mask(p), detector.detect(p).mask)
    assert detector.detect_mask(power)[150, 40]


@pytest.mark.parametrize("cls", [GoCfarDetector, SoCfarDetector, OsCfarDetector])
def test_detect_mask_of_other_detectors_is_their_mask(cls, rng):
    power = rng.exponential(size=(40, 24))
    power[20, 5] = 1e3
    detector = cls(1e-3, GUARD, TRAIN)
    assert np.array_equal(detector.detect_mask(power), detector.detect(power).mask)


def test_detect_mask_false_alarm_rate_matches_design(rng):
    # the pipeline's window on 8 noise maps of 512 x 256 cells at pfa 1e-4: ~105 false alarms expected
    detector = CaCfarDetector(1e-4, (4, 2), (8, 4))
    power = rng.exponential(2.5, size=(8, 512, 256)).astype(np.float32)
    hits = sum(int(detector.detect_mask(p).sum()) for p in power)
    assert rate_ok(hits, power.size, 1e-4), (hits, power.size * 1e-4)


@pytest.mark.parametrize(("power", "match"), [
    (np.full((16, 16), -1.0), r"power\[0, 0\] = -1.0.*>= 0"),
    (np.where(np.eye(16) > 0, np.inf, 1.0), r"power\[0, 0\] = inf.*finite"),
    (np.ones((6, 16)), r"shape \(6, 16\).*window is \(7, 7\)"),
])
def test_detect_mask_bad_power_raises(power, match):
    with pytest.raises(InputError, match=match):
        CaCfarDetector(1e-3, GUARD, TRAIN).detect_mask(power)


def test_runs_split_offsets_into_consecutive_stretches():
    assert _runs([]) == []
    assert _runs([3, -6, -5, 4, -4, 5, -3, 6]) == [(-6, 4), (3, 4)]
    assert _runs(range(-6, 7)) == [(-6, 13)]
    assert _runs([-2, 0, 2]) == [(-2, 1), (0, 1), (2, 1)]


@pytest.mark.parametrize("stride", [1, 7])
def test_doubling_sums_runs_exactly_as_a_loop(stride, rng):
    x = rng.integers(0, 1000, size=400).astype(np.float64)        # integers: every sum is exact
    runs = [(-6, 4), (3, 5), (9, 1), (-2, 13)]
    start, count = 6 * stride, 400 - 30 * stride
    total = _total(_Doubling(x, stride).parts(start, count, runs), x.dtype, count)
    expected = np.zeros(count)
    for first, length in runs:
        for t in range(length):
            expected += x[start + (first + t) * stride: start + (first + t) * stride + count]
    assert np.array_equal(total, expected)
    assert np.array_equal(_total([], x.dtype, 5), np.zeros(5))


@pytest.mark.parametrize(("guard", "train"), [((4, 2), (8, 4)), ((1, 1), (2, 2)), ((2, 1), (10, 5))])
@pytest.mark.parametrize("wrap", [True, False])
def test_every_block_shape_keeps_every_detection_a_candidate(guard, train, wrap, rng):
    """The block lower bound is a lower bound for each block shape, Doppler blocks included (not only the
    shape the cost model picks): every cell detect() declares is among the candidates."""
    detector = CaCfarDetector(1e-3, guard, train, wrap_doppler=wrap)
    power = rng.exponential(size=(200, 64)).astype(np.float32)
    power[100, 30] = 1e6
    power[40:44, 0:3] = 60.0
    power[150:160] = 0.0
    expected = set(map(tuple, np.argwhere(detector.detect(power).mask)))
    chosen = detector._ring_bound(power.shape)
    assert chosen is not None
    (gr, gd), (hr, hd) = guard, chosen.half
    for br, bd in _BLOCK_SHAPES:
        ri, rc = _block_offsets(br, hr, gr)
        di, dc = _block_offsets(bd, hd, gd)
        if not ri or not di:
            continue
        bound = dataclasses.replace(chosen, block=(br, bd), range_inside=tuple(ri), range_clear=tuple(rc),
                                    doppler_inside=tuple(di), doppler_clear=tuple(dc))
        rows, cols, _ = bound.candidates(power, float(power.max()))
        assert expected <= set(zip(rows.tolist(), cols.tolist())), (br, bd)


@pytest.mark.parametrize("scale", [1e-42, 2e-39, 1e-30, 1.0, 1e30, 3e36])
def test_detect_mask_equals_detect_at_any_scale(scale, rng):
    """Float32 maps near the subnormal range and near overflow (sums then taken in float64)."""
    detector = CaCfarDetector(1e-4, (4, 2), (8, 4))
    power = (rng.exponential(size=(300, 96)) * scale).astype(np.float32)
    power[150, 40] = np.float32(min(scale * 1e3, 3e38))
    power[200:220] = 0.0
    assert np.array_equal(detector.detect_mask(power), detector.detect(power).mask)


def test_quick_check_returns_the_peak():
    power = np.arange(24, dtype=np.float32).reshape(4, 6)
    checked, peak = _check_power_quick(power, (3, 3))
    assert checked is power and peak == 23.0
    checked, peak = _check_power_quick(power.astype(np.int64), (3, 3))          # converted by the full check
    assert checked.dtype == np.float64 and peak == 23.0


# ---- kinds register where they are defined; the pipeline picks by name ---------------------------------
class NeverCfarDetector(CfarDetector):
    """A toy kind that never detects: its threshold is infinite (one channel only)."""

    method = "NEVER-CFAR"

    def detect(self, power):
        p = np.asarray(power, dtype=float)
        inf = np.full(p.shape, np.inf)
        return CfarResult(mask=np.zeros(p.shape, dtype=bool), threshold=inf, noise=inf,
                          num_training=np.full(p.shape, self.num_ring, dtype=np.int64))


SCENE = """
[frame]
num_rb = 24
fft_size = 512
num_slots = 2
[radio]
node_id = "bs0"
[scene]
seed = 3
[[scene.nodes]]
id = "bs0"
[[scene.targets]]
position_m = [30.0, 0.0, 0.0]
velocity_mps = [5.0, 0.0, 0.0]
snr_per_re_db = 0
"""


@pytest.fixture
def never_kind():
    register_cfar("never", NeverCfarDetector)
    try:
        yield
    finally:
        unregister_cfar("never")


def _capture():
    from sdr_isac import config, radio
    from sdr_isac.waveform import IsacFrame
    cfg = config.loads(SCENE)
    frame = IsacFrame(cfg.frame)
    with radio.open_radio(cfg) as r:
        r.tx(frame.samples())
        return r.rx(frame.num_samples), cfg.frame


def test_the_pipeline_picks_a_registered_cfar_kind_by_name(never_kind):
    from sdr_isac import sensing
    from sdr_isac.config import SensingConfig
    from sdr_isac.sensing.pipeline import cfar_detector
    capture, frame = _capture()
    found = sensing.process(capture, frame, SensingConfig(cfar="ca")).detections
    assert found and abs(found[0].range_m - 30.0) < 1.0                     # the built-in CA kind sees the target
    assert sensing.process(capture, frame, SensingConfig(cfar="never")).detections == []
    assert type(cfar_detector(SensingConfig(cfar="never"))) is NeverCfarDetector
    assert registered_cfars()[:4] == ("ca", "go", "so", "os") and "never" in registered_cfars()
    with pytest.raises(SensingError, match=r"sensing\.cfar = 'never' with a 2-channel capture: the GO/SO/OS/NEVER "
                                           r"thresholds are derived for one channel; use cfar = 'ca'"):
        cfar_detector(SensingConfig(cfar="never"), 2)


def test_a_cfar_kind_leaves_no_trace_once_unregistered():
    from sdr_isac.config import SensingConfig
    from sdr_isac.errors import ConfigError
    from sdr_isac.sensing.pipeline import cfar_detector
    register_cfar("never", NeverCfarDetector)
    try:
        assert type(cfar_detector(SensingConfig(cfar="never"))) is NeverCfarDetector
    finally:
        unregister_cfar("never")
    assert "never" not in registered_cfars()
    with pytest.raises(ConfigError, match=r"cfar = 'never': allowed ca, go, so or os; set cfar to one of them"):
        SensingConfig(cfar="never")
    with pytest.raises(SensingError, match=r"sensing\.cfar = 'never': allowed a registered CFAR kind \(ca, go, so, "
                                           r"os\)"):
        make_cfar("never", 1e-3, (1, 1), (2, 2))


def test_built_in_kinds_and_bad_registrations():
    assert [type(make_cfar(k, 1e-3, (1, 1), (2, 2))) for k in ("ca", "go", "so", "os")] == \
        [CaCfarDetector, GoCfarDetector, SoCfarDetector, OsCfarDetector]
    assert make_cfar("ca", 1e-3, (1, 1), (2, 2), num_channels=3).num_channels == 3
    with pytest.raises(InputError, match=r"CFAR kind 'ca': already registered to CaCfarDetector"):
        register_cfar("ca", NeverCfarDetector)
    with pytest.raises(InputError, match=r"allowed a subclass of CfarDetector"):
        register_cfar("bad", dict)                                        # type: ignore[arg-type]
    assert "bad" not in registered_cfars() and cfar_class("ca") is CaCfarDetector
