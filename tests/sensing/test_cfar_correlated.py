"""Tests of the CA-CFAR threshold on correlated (windowed, oversampled) range-Doppler maps.

Truths used: the cell correlation is checked against the covariance of maps built by
:func:`sdr_isac.sensing.rdmap.range_doppler_map` from unit impulses (linearity of the map); the exact
P_fa against a direct eigen-decomposition written here and against Monte Carlo runs of the scalar test
statistic drawn from the joint Gaussian law; with independent cells against the closed forms of
Richards / the Beta law; and the detector's false-alarm rate on noise maps of the default sensing
configuration against the design, with a bound from the spread of the per-map counts (maps are
independent, the cells of one map are not), which the old threshold (independent cells) fails.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.fft as sp_fft
from hypothesis import given, settings
from hypothesis import strategies as st

from sdr_isac import config as config_mod
from sdr_isac.errors import InputError
from sdr_isac.sensing.cfar import (
    CaCfarDetector,
    OsCfarDetector,
    ca_false_alarm_probability,
    ca_multiplier,
    ca_multiplier_channels,
    cell_correlation,
    correlated_ca_false_alarm_probability,
    correlated_ca_multiplier,
    make_cfar,
)
from sdr_isac.sensing.rdmap import map_weights, range_doppler_map

SENSING = config_mod.default().sensing
K, S = 64, 32                                     # subcarriers, symbols of the test maps (as roc_curve's)
N_R = sp_fft.next_fast_len(K * SENSING.range_oversampling)
N_D = sp_fft.next_fast_len(S * SENSING.doppler_oversampling)
MASK = np.ones((S, K), dtype=bool)
GUARD = tuple(int(g) for g in SENSING.guard_cells)
TRAIN = tuple(int(t) for t in SENSING.training_cells)


def default_rho() -> np.ndarray:
    return cell_correlation(map_weights(MASK, SENSING, N_D)[0], (N_R, N_D))


def noise_map(rng: np.random.Generator, channels: int = 1, k: int = K, s: int = S, sensing=SENSING) -> np.ndarray:
    h = (rng.standard_normal((channels, s, k)) + 1j * rng.standard_normal((channels, s, k))) * math.sqrt(0.5)
    return range_doppler_map(h.astype(np.complex64), np.ones((s, k), bool), 120e3, 1 / 120e3, 24e9, sensing).power


def ring_offsets(guard: tuple[int, int], train: tuple[int, int]) -> np.ndarray:
    hr, hd = guard[0] + train[0], guard[1] + train[1]
    return np.array([(a, b) for a in range(-hr, hr + 1) for b in range(-hd, hd + 1)
                     if not (abs(a) <= guard[0] and abs(b) <= guard[1])])


# ---------------------------------------------------------------------------------------------- correlation


def test_cell_correlation_is_the_covariance_of_real_maps() -> None:
    """rho against the covariance of maps of unit impulses (the map is linear in H, noise white)."""
    k, s = 8, 6
    sensing = SENSING
    n_r, n_d = sp_fft.next_fast_len(k * sensing.range_oversampling), sp_fft.next_fast_len(s * sensing.doppler_oversampling)
    mask = np.ones((s, k), dtype=bool)
    cells = []
    for i in range(s):
        for j in range(k):
            h = np.zeros((1, s, k), np.complex64)
            h[0, i, j] = 1.0
            cells.append(range_doppler_map(h, mask, 120e3, 1 / 120e3, 24e9, sensing).cells[0].astype(np.complex128))
    x = np.stack(cells)                                            # (REs, R, D): map of each unit RE
    cov00 = np.sum(np.abs(x[:, 0, 0]) ** 2)
    rho = cell_correlation(map_weights(mask, sensing, n_d)[0], (n_r, n_d))
    for a, b in [(0, 0), (1, 0), (0, 1), (2, 3), (n_r - 1, n_d - 2), (5, 1)]:
        # E[X(a, b) X*(0, 0)] / E|X|^2 for white unit noise on the REs
        expected = np.sum(x[:, a, b] * np.conj(x[:, 0, 0])) / cov00
        assert abs(rho[a, b] - expected) < 1e-5
    assert rho.shape == (n_r, n_d) and abs(rho[0, 0] - 1) < 1e-12 and np.max(np.abs(rho)) <= 1 + 1e-12


def test_no_window_no_oversampling_means_independent_cells() -> None:
    rho = cell_correlation(np.ones((16, 8)), (16, 8))
    expected = np.zeros((16, 8))
    expected[0, 0] = 1.0
    np.testing.assert_allclose(rho, expected, atol=1e-12)
    # the detector falls back to the closed forms: multipliers identical to the independent detector's
    with_rho = CaCfarDetector(1e-3, (1, 1), (2, 2), cell_correlation=rho)
    assert with_rho.cell_correlation is None
    n = np.arange(4, with_rho.num_ring + 1)
    np.testing.assert_array_equal(with_rho._multipliers(n), ca_multiplier(1e-3, n))


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_independent_cells_give_the_closed_forms(channels: int) -> None:
    delta = np.zeros((32, 16), complex)
    delta[0, 0] = 1.0
    guard, train = (1, 1), (2, 2)
    n = len(ring_offsets(guard, train))
    for pfa in (1e-1, 1e-3, 1e-6):
        expected = ca_multiplier_channels(pfa, n, channels) if channels > 1 else ca_multiplier(pfa, n)
        assert correlated_ca_multiplier(pfa, delta, guard, train, channels) == pytest.approx(float(expected), rel=1e-8)
    assert correlated_ca_false_alarm_probability(3.0, delta, guard, train) == \
        pytest.approx(float(ca_false_alarm_probability(3.0, n)), rel=1e-10)


def eigen_pfa(rho: np.ndarray, guard: tuple[int, int], train: tuple[int, int], alpha: float) -> float:
    """P_fa from the eigenvalues of C^1/2 Q C^1/2 of the joint (CUT, ring) covariance, one channel."""
    offsets = np.vstack([[0, 0], ring_offsets(guard, train)])
    d = offsets[:, None, :] - offsets[None, :, :]
    cov = rho[d[..., 0] % rho.shape[0], d[..., 1] % rho.shape[1]]
    w, v = np.linalg.eigh((cov + cov.conj().T) / 2)
    root = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.conj().T
    q = np.full(len(offsets), -alpha / (len(offsets) - 1))
    q[0] = 1.0
    mu = np.linalg.eigvalsh(root @ np.diag(q) @ root)
    plus = mu.max()
    others = np.delete(mu, np.argmax(mu))
    return float(np.prod(1.0 / (1.0 - others / plus)))


def test_exact_pfa_against_a_direct_eigen_decomposition() -> None:
    rho = default_rho()
    for alpha in (2.0, 7.5, 12.0):
        assert correlated_ca_false_alarm_probability(alpha, rho, GUARD, TRAIN) == \
            pytest.approx(eigen_pfa(rho, GUARD, TRAIN, alpha), rel=1e-6)


@pytest.mark.parametrize("channels", [1, 2])
def test_exact_pfa_against_monte_carlo_of_the_statistic(channels: int) -> None:
    """Draw (CUT, ring) from their joint complex Gaussian law; count CUT > alpha * ring mean."""
    rho = cell_correlation(map_weights(np.ones((12, 16), bool), SENSING, 24)[0], (32, 24))
    guard, train = (1, 1), (2, 2)
    alpha = correlated_ca_multiplier(1e-2, rho, guard, train, channels)
    offsets = np.vstack([[0, 0], ring_offsets(guard, train)])
    d = offsets[:, None, :] - offsets[None, :, :]
    cov = rho[d[..., 0] % 32, d[..., 1] % 24]
    w, v = np.linalg.eigh((cov + cov.conj().T) / 2)
    root = v * np.sqrt(np.clip(w, 0, None))
    rng = np.random.default_rng(7)
    trials = 200_000
    power = np.zeros((trials, len(offsets)))
    for _ in range(channels):
        z = (rng.standard_normal((trials, len(offsets))) + 1j * rng.standard_normal((trials, len(offsets)))) / math.sqrt(2)
        power += np.abs(z @ root.T) ** 2
    hits = int(np.count_nonzero(power[:, 0] > alpha * power[:, 1:].mean(axis=1)))
    sd = math.sqrt(trials * 1e-2 * (1 - 1e-2))
    assert abs(hits - trials * 1e-2) < 4.5 * sd, hits
    # the independent-cells multiplier is measurably wrong here (the test can fail)
    n = len(offsets) - 1
    old = float(ca_multiplier_channels(1e-2, n, channels) if channels > 1 else ca_multiplier(1e-2, n))
    old_hits = int(np.count_nonzero(power[:, 0] > old * power[:, 1:].mean(axis=1)))
    assert abs(old_hits - trials * 1e-2) > 4.5 * sd, old_hits


# ---------------------------------------------------------------------------------------------- detector on maps


def per_map_check(counts: np.ndarray, cells: int, pfa: float) -> tuple[float, bool]:
    """Ratio measured / design and whether it is within 4.5 standard errors, the error from the spread of the
    per-map counts (maps independent; the cells of a map share noise, so their decisions cluster)."""
    mean = counts.mean()
    # floor the spread at twice the binomial one: a sample variance of few events can be small by chance
    spread = max(counts.std(ddof=1), 2 * math.sqrt(cells * pfa))
    return float(mean / (cells * pfa)), bool(abs(mean - cells * pfa) <= 4.5 * spread / math.sqrt(counts.size))


def test_false_alarm_rate_on_default_maps_meets_the_design() -> None:
    """Noise maps of the default sensing configuration (Hann windows, 2x oversampling): measured P_fa on
    design for interior and edge cells; the old threshold (independent cells) is rejected by the same check."""
    rho = default_rho()
    pfa = 1e-3
    new = make_cfar("ca", pfa, GUARD, TRAIN, cell_correlation=rho)
    old = make_cfar("ca", pfa, GUARD, TRAIN)
    rng = np.random.default_rng(2024)
    maps = 150
    counts = np.zeros((3, maps))                   # interior new, edge new, interior old
    for i in range(maps):
        power = noise_map(rng)
        result = new.detect(power)
        interior = result.num_training == new.num_ring
        counts[0, i] = np.count_nonzero(result.mask & interior)
        counts[1, i] = np.count_nonzero(result.mask & ~interior & np.isfinite(result.threshold))
        counts[2, i] = np.count_nonzero(old.detect_mask(power) & interior)
        np.testing.assert_array_equal(new.detect_mask(power), result.mask)
    n_interior = int(np.count_nonzero(interior))
    n_edge = int(np.count_nonzero(~interior & np.isfinite(result.threshold)))
    ratio, ok = per_map_check(counts[0], n_interior, pfa)
    assert ok, ratio
    ratio, ok = per_map_check(counts[1], n_edge, pfa)
    assert ok, ratio
    ratio_old, ok_old = per_map_check(counts[2], n_interior, pfa)
    assert not ok_old and ratio_old > 1.4, ratio_old


def test_strong_target_still_detected_and_few_cells_around_it() -> None:
    rng = np.random.default_rng(3)
    h = (rng.standard_normal((1, S, K)) + 1j * rng.standard_normal((1, S, K))) * math.sqrt(0.5)
    r0, d0 = N_R // 4, N_D // 2 + N_D // 4
    tau, f_d = r0 / (N_R * 120e3), (d0 - N_D // 2) / (N_D / 120e3)
    steer = np.exp(-2j * np.pi * np.arange(K) * 120e3 * tau)[None, :] * np.exp(2j * np.pi * f_d * np.arange(S) / 120e3)[:, None]
    h = h + 0.5 * steer[None]                      # ~ 0.25 K S (window loss aside): some 25 dB in its cell
    power = range_doppler_map(h.astype(np.complex64), MASK, 120e3, 1 / 120e3, 24e9, SENSING).power
    det = make_cfar("ca", 1e-6, GUARD, TRAIN, cell_correlation=default_rho())
    mask = det.detect_mask(power)
    assert mask[r0, d0]
    np.testing.assert_array_equal(mask, det.detect(power).mask)


def test_only_the_ca_kind_uses_the_correlation() -> None:
    rho = default_rho()
    os_det = make_cfar("os", 1e-3, (1, 1), (2, 2), cell_correlation=rho)
    assert isinstance(os_det, OsCfarDetector)
    power = noise_map(np.random.default_rng(5))
    np.testing.assert_array_equal(os_det.detect(power).threshold,
                                  make_cfar("os", 1e-3, (1, 1), (2, 2)).detect(power).threshold)
    ca = make_cfar("ca", 1e-3, (1, 1), (2, 2), cell_correlation=rho)
    assert isinstance(ca, CaCfarDetector) and ca.cell_correlation is not None
    assert ca._multipliers(np.array([ca.num_ring]))[0] == \
        pytest.approx(correlated_ca_multiplier(1e-3, rho, (1, 1), (2, 2)), rel=1e-9)
    # here the guard (1 cell at 2x oversampling) leaves the CUT correlated with its ring, which lowers
    # the multiplier below the independent-cells one; the default ring (4, 2) guard cells raises it
    # (its training mean varies more): both are what the exact law gives (checked by Monte Carlo above)
    assert ca._multipliers(np.array([ca.num_ring]))[0] < ca_multiplier(1e-3, ca.num_ring)
    default = make_cfar("ca", 1e-3, GUARD, TRAIN, cell_correlation=rho)
    assert default._multipliers(np.array([default.num_ring]))[0] > ca_multiplier(1e-3, default.num_ring)


def test_a_kind_that_ignores_correlated_cells_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """GO, SO and OS thresholds assume independent cells: on a correlated map (the default taper and zero padding)
    a warning names the kind, the correlation and the fix; CA, or a map of independent cells, gives none."""
    independent = dataclasses.replace(SENSING, window_range="none", window_doppler="none", range_oversampling=1,
                                      doppler_oversampling=1)
    rho_independent = cell_correlation(map_weights(MASK, independent, S)[0], (K, S))
    with caplog.at_level("WARNING", logger="sdr_isac.sensing.cfar"):
        for kind in ("go", "so", "os"):
            make_cfar(kind, 1e-3, GUARD, TRAIN, cell_correlation=default_rho())
        make_cfar("ca", 1e-3, GUARD, TRAIN, cell_correlation=default_rho())
        make_cfar("so", 1e-3, GUARD, TRAIN, cell_correlation=rho_independent)
        make_cfar("so", 1e-3, GUARD, TRAIN)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    for kind, message in zip(("go", "so", "os"), messages):
        assert f"sensing.cfar = '{kind}'" in message and "its false-alarm rate is not pfa = 0.001" in message
        assert "cfar = 'ca'" in message and "range_oversampling = doppler_oversampling = 1" in message


def test_counts_no_ring_has_get_nan() -> None:
    det = CaCfarDetector(1e-2, (1, 1), (2, 2), cell_correlation=default_rho())
    table = det._alpha_by_count()
    # ring rows at range offsets -3 ... 3: 7 cells outside the guard rows, 4 (the Doppler wings) inside;
    # a range edge cuts 0 ... 3 rows from one side.  Those counts get a finite multiplier, the others NaN
    rows = [7, 7, 4, 4, 4, 7, 7]
    valid = {sum(rows[c:]) for c in range(4)}
    for n in range(det.min_training, det.num_ring + 1):
        assert bool(np.isfinite(table[n])) == (n in valid), n


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_correlation_input_raises() -> None:
    with pytest.raises(InputError, match="cell_correlation"):
        CaCfarDetector(1e-3, (1, 1), (2, 2), cell_correlation=np.full((4, 4), 2.0))
    with pytest.raises(InputError, match="cell_correlation"):
        CaCfarDetector(1e-3, (1, 1), (2, 2), cell_correlation=np.ones(5))
    bad = np.zeros((8, 8), complex)
    bad[0, 0] = 0.5
    with pytest.raises(InputError, match="rho\\[0, 0\\] = 1"):
        CaCfarDetector(1e-3, (1, 1), (2, 2), cell_correlation=bad)
    with pytest.raises(InputError, match="weights are all zero"):
        cell_correlation(np.zeros((4, 4)), (8, 8))
    with pytest.raises(InputError, match="map_shape"):
        cell_correlation(np.ones((4, 4)), (2, 8))
    with pytest.raises(InputError, match="map_shape"):
        cell_correlation(np.ones((4, 4)), (8.0, 8))          # type: ignore[arg-type]
    with pytest.raises(InputError, match="pfa"):
        correlated_ca_multiplier(0.0, default_rho(), (1, 1), (2, 2))


@settings(max_examples=60, deadline=None)
@given(value=st.one_of(st.just(math.nan), st.just(math.inf), st.just(-math.inf), st.just(1e308), st.just(8.3e-159),
                       st.just(5e-324), st.just(0.0), st.floats(allow_nan=True, allow_infinity=True)),
       shape=st.tuples(st.integers(0, 5), st.integers(0, 5)))
def test_cell_correlation_rejects_non_finite_and_empty_weights(value: float, shape: tuple[int, int]) -> None:
    w = np.ones(shape)
    if w.size:
        w.flat[0] = value
    # only the taper's shape matters: any finite taper with a non-zero weight, however large or small its
    # weights (1e308, whose squares overflow; 1e-159, whose squares are subnormal), has a correlation
    if w.size > 0 and np.all(np.isfinite(w)) and np.any(w != 0):
        rho = cell_correlation(w, (max(shape[0], 1) * 2, max(shape[1], 1) * 3))
        assert abs(rho[0, 0] - 1) < 1e-9 and np.all(np.abs(rho) <= 1 + 1e-9)
        assert np.allclose(rho, cell_correlation(w / np.max(np.abs(w)), rho.shape), atol=1e-12)
    else:
        with pytest.raises(InputError):
            cell_correlation(w, (max(shape[0], 1) * 2, max(shape[1], 1) * 3))


@settings(max_examples=40, deadline=None)
@given(bad=st.one_of(st.none(), st.text(max_size=3), st.integers(), st.lists(st.floats(), max_size=3),
                     st.tuples(st.integers(-3, 3), st.integers(-3, 3))))
def test_cell_correlation_rejects_bad_map_shapes(bad: object) -> None:
    ok = (isinstance(bad, tuple) and len(bad) == 2 and all(isinstance(v, int) for v in bad)
          and bad[0] >= 2 and bad[1] >= 2)
    if ok:
        assert cell_correlation(np.ones((2, 2)), bad).shape == bad      # type: ignore[arg-type]
    else:
        with pytest.raises(InputError):
            cell_correlation(np.ones((2, 2)), bad)                       # type: ignore[arg-type]


def test_huge_map_and_single_cell_taper() -> None:
    rho = cell_correlation(np.ones((1, 1)), (2048, 1024))
    assert rho.shape == (2048, 1024) and np.allclose(np.abs(rho), 1.0)     # one RE: every cell the same noise
    # fully correlated cells: the ring tells the CUT's power exactly; P_fa 0 for alpha > 1, 1 for alpha < 1
    assert correlated_ca_false_alarm_probability(1.5, rho, (1, 1), (2, 2)) < 1e-12
    assert correlated_ca_false_alarm_probability(0.5, rho, (1, 1), (2, 2)) == pytest.approx(1.0, rel=1e-9)
    assert correlated_ca_false_alarm_probability(0.0, rho, (1, 1), (2, 2)) == 1.0


def test_too_many_channels_for_the_correlated_threshold_is_a_clear_error() -> None:
    """Beyond MAX_CORRELATED_CHANNELS the Gamma series fails (LinAlgError at 124, OverflowError at 173): refused
    at construction, naming the limit and the ways out; at the limit the threshold is finite and above 1."""
    from sdr_isac.errors import SensingError
    from sdr_isac.sensing.cfar import MAX_CORRELATED_CHANNELS

    with pytest.raises(SensingError, match=rf"num_channels = {MAX_CORRELATED_CHANNELS + 1}: .* 1 \.\.\. "
                                           rf"{MAX_CORRELATED_CHANNELS} summed channels.*beamform first"):
        make_cfar("ca", 1e-6, GUARD, TRAIN, MAX_CORRELATED_CHANNELS + 1, cell_correlation=default_rho())
    det = make_cfar("ca", 1e-6, GUARD, TRAIN, MAX_CORRELATED_CHANNELS, cell_correlation=default_rho())
    alpha = det._multipliers(np.array([det.num_ring]))[0]
    assert math.isfinite(alpha) and alpha > 1.0
    # independent cells keep their closed form at any count
    assert make_cfar("ca", 1e-6, GUARD, TRAIN, 500).num_channels == 500


def test_a_long_computation_of_the_correlated_thresholds_is_announced_once(monkeypatch: pytest.MonkeyPatch,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    """Each ring shape costs an eigendecomposition of its cells' covariance (cubic in its cells): a large training
    window stalled the first capture for minutes without a word.  Where the rings still to come would take longer
    than the limit (here 0 s, so that the default design, 0.1 s, shows it), one warning says how many, how large
    and about how long; the thresholds themselves are unchanged."""
    from sdr_isac.sensing import cfar as cfar_mod

    pfa = 1.234e-5                                          # a design of its own: nothing cached
    reference = CaCfarDetector(pfa, GUARD, TRAIN, cell_correlation=default_rho())
    power = noise_map(np.random.default_rng(7))
    with caplog.at_level("WARNING", logger="sdr_isac.sensing.cfar"):
        expected = reference.detect_mask(power)
    assert not [r for r in caplog.records if "ring shapes" in r.getMessage()]   # 0.1 s: below the 5 s limit
    cfar_mod._CORRELATED_ALPHA.clear()
    monkeypatch.setattr(cfar_mod, "_ANNOUNCE_AFTER_S", 0.0)
    detector = CaCfarDetector(pfa, GUARD, TRAIN, cell_correlation=default_rho())
    caplog.clear()
    with caplog.at_level("WARNING", logger="sdr_isac.sensing.cfar"):
        got = detector.detect_mask(power)
        detector.detect_mask(power)
    said = [r.getMessage() for r in caplog.records if "ring shapes" in r.getMessage()]
    hr, hd = GUARD[0] + TRAIN[0], GUARD[1] + TRAIN[1]
    full = (2 * hr + 1) * (2 * hd + 1) - (2 * GUARD[0] + 1) * (2 * GUARD[1] + 1)
    assert len(said) == 1, said
    assert f"need {hr} more ring shapes of up to {full} cells" in said[0]     # hr + 1 range cuts, one done
    np.testing.assert_array_equal(got, expected)
