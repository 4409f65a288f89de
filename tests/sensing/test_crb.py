"""Tests of sdr_isac.sensing.crb against REFERENCE.md §3–§4 and closed-form theory."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdr_isac.errors import InputError
from sdr_isac.sensing import crb

C = 299_792_458.0
SNR_M20DB = 0.01  # -20 dB per RE, REFERENCE.md §4


# --------------------------------------------------------------- REFERENCE §4

def test_reference_high_band_range_and_velocity() -> None:
    # REFERENCE.md §4: N = 512, M = 64, 120 kHz, 24 GHz, T_H = 9.6633 us: 0.053 m, 0.218 m/s
    sd_r = math.sqrt(crb.range_crb_m2(SNR_M20DB, 512, 64, 120e3))
    sd_v = math.sqrt(crb.velocity_crb_mps2(SNR_M20DB, 512, 64, 24e9, 9.6633e-6))
    assert abs(sd_r - 0.053) < 0.0005
    assert abs(sd_v - 0.218) < 0.0005


def test_reference_low_band_range() -> None:
    # REFERENCE.md §4: low band 30 kHz, N = 512, M = 64: 0.210 m
    assert abs(math.sqrt(crb.range_crb_m2(SNR_M20DB, 512, 64, 30e3)) - 0.210) < 0.0005


def test_equal_fc_times_symbol_length_gives_equal_velocity_bound() -> None:
    # REFERENCE.md §4: f_c T_O = 231 920 in both bands, so the velocity bounds agree
    high = crb.velocity_crb_mps2(SNR_M20DB, 512, 64, 24e9, 1 / 120e3 + 1.33e-6)
    low = crb.velocity_crb_mps2(SNR_M20DB, 512, 64, 5.9e9, 1 / 30e3 + 5.975e-6)
    assert high == pytest.approx(low, rel=1e-4)


def test_bounds_scale_inversely_with_snr_and_accept_arrays() -> None:
    snr = np.array([0.01, 0.1, 1.0])
    var = crb.range_crb_m2(snr, 64, 8, 30e3)
    assert var.shape == (3,)
    np.testing.assert_allclose(var * snr, var[0] * snr[0], rtol=1e-12)


def test_range_and_velocity_are_scaled_delay_and_doppler() -> None:
    # R = c tau / 2, v = c f_D / (2 f_c)
    assert crb.range_crb_m2(0.5, 100, 10, 60e3) == pytest.approx((C / 2) ** 2 * crb.delay_crb_s2(0.5, 100, 10, 60e3))
    assert crb.velocity_crb_mps2(0.5, 100, 10, 3.5e9, 20e-6) == pytest.approx(
        (C / (2 * 3.5e9)) ** 2 * crb.doppler_crb_hz2(0.5, 100, 10, 20e-6))


def test_bistatic_range_sum_is_four_times_monostatic() -> None:
    # R1 + R2 = c tau, R = c tau / 2: same delay bound, (c / (c/2))**2 = 4
    mono = crb.range_crb_m2(0.2, 256, 14, 30e3)
    assert crb.bistatic_range_sum_crb_m2(0.2, 256, 14, 30e3) == pytest.approx(4 * mono, rel=1e-12)
    assert crb.bistatic_range_sum_crb_m2(0.2, 256, 14, 30e3) == pytest.approx(C**2 * crb.delay_crb_s2(0.2, 256, 14, 30e3))


def test_angle_bound_hand_value_and_frequency_form() -> None:
    # N_a = 4, K = 1, d = lambda / 2, broadside, gamma = 1: 6 / (4 * 15 * pi**2) = 1 / (10 pi**2)
    assert crb.angle_crb_rad2(1.0, 1, 0.5 * np.arange(4), 0.0) == pytest.approx(1 / (10 * math.pi**2), rel=1e-12)
    # the spatial frequency u = (d/lambda) sin(theta) is a complex exponential over elements:
    # var(u) = 1 / (8 pi**2 gamma K sum (n - mean n)**2), var(theta) = var(u) / ((d/lambda) cos theta)**2
    na, k, d, theta, g = 8, 16, 0.5, 0.4, 0.3
    n = np.arange(na)
    var_u = 1 / (8 * math.pi**2 * g * k * np.sum((n - n.mean()) ** 2))
    assert crb.angle_crb_rad2(g, k, d * n, theta) == pytest.approx(var_u / (d * math.cos(theta)) ** 2, rel=1e-12)


def test_processing_gain() -> None:
    # 512 * 64 = 2**15: 15 * 10 log10(2) dB
    assert crb.processing_gain_db(512, 64) == pytest.approx(15 * 10 * math.log10(2), abs=1e-12)


# ----------------------------------------------------------------- mask bounds

def test_centred_index_sum_over_the_grid() -> None:
    # sum over the N x M grid of (k - mean k)**2 = M N (N**2 - 1) / 12
    n, m = 37, 5
    k = np.tile(np.arange(n), m)
    assert np.sum((k - k.mean()) ** 2) == pytest.approx(m * n * (n**2 - 1) / 12, rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 300), m=st.integers(2, 40), snr_db=st.floats(-40, 30))
def test_full_mask_reduces_to_grid_formulas(n: int, m: int, snr_db: float) -> None:
    g = 10 ** (snr_db / 10)
    mask = np.ones((m, n), dtype=bool)
    t_o = 1 / 30e3 + 2.34e-6
    assert crb.range_crb_m2_mask(g, mask, 30e3) == pytest.approx(crb.range_crb_m2(g, n, m, 30e3), rel=1e-9)
    assert crb.velocity_crb_mps2_mask(g, mask, 3.5e9, np.arange(m) * t_o) == pytest.approx(
        crb.velocity_crb_mps2(g, n, m, 3.5e9, t_o), rel=1e-9)


def test_comb4_mask_range_bound_against_full_grid() -> None:
    n, m, comb = 512, 4, 4
    mask = np.zeros((m, n), dtype=bool)
    mask[:, ::comb] = True
    k_full = np.tile(np.arange(n), m)
    k_comb = np.tile(np.arange(0, n, comb), m)
    ratio_sums = np.sum((k_full - k_full.mean()) ** 2) / np.sum((k_comb - k_comb.mean()) ** 2)
    ratio = crb.range_crb_m2_mask(0.1, mask, 120e3) / crb.range_crb_m2(0.1, n, m, 120e3)
    assert ratio == pytest.approx(ratio_sums, rel=1e-12)
    assert ratio == pytest.approx(comb * (n**2 - 1) / (n**2 - comb**2), rel=1e-12)


def test_mask_bound_matches_monte_carlo_ml_estimator() -> None:
    """The derived 1 / (8 pi**2 gamma sum (x - mean x)**2) is met by ML at high SNR."""
    rng = np.random.default_rng(7)
    n, gamma, trials = 64, 10.0, 1000
    x = np.sort(rng.choice(n, size=24, replace=False)).astype(float)   # an irregular RE set
    f0 = 0.2137                                                        # cycles per index
    noise = (rng.standard_normal((trials, x.size)) + 1j * rng.standard_normal((trials, x.size))) / math.sqrt(2)
    phase = rng.uniform(0, 2 * np.pi, (trials, 1))
    y = math.sqrt(gamma) * np.exp(1j * (phase + 2 * np.pi * f0 * x)) + noise

    def power(f: np.ndarray) -> np.ndarray:
        return np.abs(np.sum(y * np.exp(-2j * np.pi * f[:, None] * x), axis=1))

    lo, hi = np.full(trials, f0 - 0.01), np.full(trials, f0 + 0.01)          # golden-section ML search in the main lobe
    r = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = hi - r * (hi - lo), lo + r * (hi - lo)
        left = power(a) > power(b)
        hi = np.where(left, b, hi)
        lo = np.where(left, lo, a)
    f_hat = (lo + hi) / 2
    mask = np.zeros((1, n), dtype=bool)
    mask[0, x.astype(int)] = True
    bound = crb.range_crb_m2_mask(gamma, mask, 1.0) / (C / 2) ** 2      # tau in index units = -f
    ratio = np.mean((f_hat - f0) ** 2) / bound
    assert 0.85 < ratio < 1.15    # 1000 trials: the variance estimate has a 4.5 % standard deviation


def test_joint_fim_full_grid_is_diagonal_and_inverts_to_grid_bounds() -> None:
    n, m, df, t_o, g = 48, 12, 30e3, 1 / 30e3 + 2.34e-6, 0.05
    mask = np.ones((m, n), dtype=bool)
    fim = crb.delay_doppler_fim(g, mask, df, np.arange(m) * t_o)
    assert abs(fim[0, 1]) <= 1e-12 * math.sqrt(fim[0, 0] * fim[1, 1])
    cov = crb.delay_doppler_crb(g, mask, df, np.arange(m) * t_o)
    assert cov[0, 0] == pytest.approx(crb.delay_crb_s2(g, n, m, df), rel=1e-9)
    assert cov[1, 1] == pytest.approx(crb.doppler_crb_hz2(g, n, m, t_o), rel=1e-9)


def test_staggered_comb_couples_delay_and_doppler() -> None:
    # PRS comb-4 over 4 symbols with k' = 0, 2, 1, 3 (REFERENCE.md §2), N = 8: k = 4 j + k'(l), j = 0, 1.
    # S_kt = T * sum_l (l - 1.5) * sum_j (4 j + k'_l - 3.5) = 2 T sum_l (l - 1.5) k'_l = 8 T
    n, t_o, df, g = 8, 1e-4, 15e3, 2.0
    offsets = [0, 2, 1, 3]
    mask = np.zeros((4, n), dtype=bool)
    for l, o in enumerate(offsets):
        mask[l, o::4] = True
    fim = crb.delay_doppler_fim(g, mask, df, np.arange(4) * t_o)
    assert fim[0, 1] == pytest.approx(-8 * math.pi**2 * g * df * 8 * t_o, rel=1e-12)
    joint = crb.delay_doppler_crb(g, mask, df, np.arange(4) * t_o)
    single = crb.range_crb_m2_mask(g, mask, df) / (C / 2) ** 2
    assert joint[0, 0] > single * (1 + 1e-6)   # an unknown, coupled Doppler costs delay accuracy


def test_comb_on_every_symbol_decouples() -> None:
    n, m, df, t_o, g = 64, 8, 30e3, 3.6e-5, 0.3
    mask = np.zeros((m, n), dtype=bool)
    mask[:, 1::4] = True
    joint = crb.delay_doppler_crb(g, mask, df, np.arange(m) * t_o)
    assert joint[0, 0] * (C / 2) ** 2 == pytest.approx(crb.range_crb_m2_mask(g, mask, df), rel=1e-9)
    assert joint[1, 1] * (C / (2 * 5e9)) ** 2 == pytest.approx(
        crb.velocity_crb_mps2_mask(g, mask, 5e9, np.arange(m) * t_o), rel=1e-9)


# -------------------------------------------------------------------- geometry

RING = np.array([[10.0, 0.0], [0.0, 10.0], [-10.0, 0.0], [0.0, -10.0]])


def test_monostatic_ring_position_bound() -> None:
    # rows +-e_x, +-e_y: H^T H = 2 I, CRB = sigma**2 / 2 I
    np.testing.assert_allclose(crb.position_crb(RING, [0.0, 0.0], 0.09), 0.045 * np.eye(2), atol=1e-15)
    h = crb.measurement_matrix(RING, [0.0, 0.0])
    np.testing.assert_allclose(h.T @ h, 2 * np.eye(2), atol=1e-15)
    assert crb.gdop(h) == pytest.approx(1.0)


def test_monostatic_octahedron_3d() -> None:
    nodes = np.vstack([np.eye(3) * 50, -np.eye(3) * 50])
    np.testing.assert_allclose(crb.position_crb(nodes, np.zeros(3), 0.01), 0.005 * np.eye(3), atol=1e-15)


def test_bistatic_ring_position_bound() -> None:
    # rows u_tx + u_rx = (-1,-1), (1,-1), (1,1), (-1,1): H^T H = 4 I, CRB = sigma**2 / 4 I
    links = [(0, 1), (1, 2), (2, 3), (3, 0)]
    np.testing.assert_allclose(crb.position_crb(RING, [0.0, 0.0], 0.2, links), 0.05 * np.eye(2), atol=1e-15)


def test_orthogonal_pair_with_unequal_variances() -> None:
    # nodes along +x and +y from the target: H = -I, CRB = diag(var_x, var_y)
    nodes = [[103.0, 40.0], [3.0, 90.0]]
    cov = crb.position_crb(nodes, [3.0, 40.0], [0.3, 0.7])
    np.testing.assert_allclose(cov, np.diag([0.3, 0.7]), atol=1e-14)
    np.testing.assert_allclose(crb.position_crb(nodes, [3.0, 40.0], np.diag([0.3, 0.7])), cov, atol=1e-14)


def test_velocity_vector_uses_the_same_rows() -> None:
    np.testing.assert_allclose(crb.velocity_vector_crb(RING, [0.0, 0.0], 0.04), 0.02 * np.eye(2), atol=1e-15)


def test_fusing_fims_equals_stacking_measurements() -> None:
    target = [12.0, -7.0]
    mono = crb.position_fim(RING, target, 0.01)
    bi = crb.position_fim(RING, target, 0.04, [(0, 2), (1, 3)])
    both = crb.position_fim(RING, target, [0.01] * 4 + [0.04] * 2, [(0, 0), (1, 1), (2, 2), (3, 3), (0, 2), (1, 3)])
    np.testing.assert_allclose(crb.fuse_fim(mono, bi), both, rtol=1e-12)
    assert np.trace(crb.crb_from_fim(crb.fuse_fim(mono, bi))) < np.trace(crb.crb_from_fim(mono))


def test_collinear_geometry_is_rejected() -> None:
    with pytest.raises(InputError, match="condition number .* not observable"):
        crb.position_crb([[1.0, 1.0], [5.0, 5.0]], [0.0, 0.0], 1.0)
    with pytest.raises(InputError, match="parameter\\(s\\) \\[1\\] are not observable"):
        crb.position_crb([[1.0, 0.0], [5.0, 0.0]], [0.0, 0.0], 1.0)


# ----------------------------------------------------------------- link budget

def test_link_budget_hand_calculation() -> None:
    # P_t 30 dBm, G_t = G_r = 20 dBi, 24 GHz (lambda = 12.491 mm), sigma = 1 m2, R1 = R2 = 100 m:
    #   P_r = 30 + 40 + 20 log10(0.0124914) - 30 log10(4 pi) - 40 - 40
    #       = 30 + 40 - 38.068 - 32.976 - 80 = -81.044 dBm
    # noise: k T0 = -173.975 dBm/Hz, f_s = 122.88 MHz (+80.895 dB), NF 7 dB: -86.080 dBm
    # N_FFT / K = 1024 / 792: +1.116 dB
    # SNR per RE = -81.044 + 86.080 + 1.116 = 6.152 dB
    snr = crb.snr_per_re_db(30.0, 20.0, 20.0, 24e9, 1.0, 100.0, 100.0, 7.0, 122.88e6, 1024, 792)
    assert snr == pytest.approx(6.152, abs=0.002)


def test_link_budget_is_received_power_over_noise_in_k_subcarriers() -> None:
    # gamma = P_r / (k T0 F K df) with f_s = N_FFT df; R1 != R2 enter as R1**2 R2**2 (40 dB per decade each)
    base = crb.snr_per_re_db(20.0, 10.0, 12.0, 5.9e9, 10.0, 200.0, 300.0, 5.0, 30.72e6, 1024, 624)
    farther = crb.snr_per_re_db(20.0, 10.0, 12.0, 5.9e9, 10.0, 2000.0, 300.0, 5.0, 30.72e6, 1024, 624)
    assert base - farther == pytest.approx(20.0, abs=1e-9)
    half_k = crb.snr_per_re_db(20.0, 10.0, 12.0, 5.9e9, 10.0, 200.0, 300.0, 5.0, 30.72e6, 1024, 312)
    assert half_k - base == pytest.approx(10 * math.log10(2), abs=1e-9)


# ------------------------------------------------------------------ bad inputs

@pytest.mark.parametrize(("call", "match"), [
    (lambda: crb.range_crb_m2(0.0, 512, 64, 120e3), "snr_re = 0.0"),
    (lambda: crb.range_crb_m2(-1.0, 512, 64, 120e3), "db_to_linear"),
    (lambda: crb.range_crb_m2(0.1, 1, 64, 120e3), "num_subcarriers = 1: allowed an integer >= 2"),
    (lambda: crb.range_crb_m2(0.1, 512.0, 64, 120e3), "num_subcarriers = 512.0"),
    (lambda: crb.range_crb_m2(0.1, 512, 64, -5.0), "subcarrier_spacing_hz = -5.0 Hz"),
    (lambda: crb.velocity_crb_mps2(0.1, 512, 1, 24e9, 1e-5), "num_symbols = 1: allowed an integer >= 2"),
    (lambda: crb.velocity_crb_mps2(0.1, 512, 64, 0.0, 1e-5), "carrier_hz = 0.0 Hz"),
    (lambda: crb.angle_crb_rad2(1.0, 1, 0.5 * np.arange(4), math.pi / 2), "allowed \\|angle\\| < pi/2"),
    (lambda: crb.angle_crb_rad2(1.0, 1, [0.0], 0.0), "allowed a 1-D list of >= 2 finite element positions"),
    (lambda: crb.range_crb_m2_mask(0.1, np.ones((4, 8)), 30e3), "2-D bool array"),
    (lambda: crb.range_crb_m2_mask(0.1, np.eye(4, dtype=bool)[:, :1], 30e3), "1 distinct subcarrier"),
    (lambda: crb.velocity_crb_mps2_mask(0.1, np.ones((4, 8), bool), 5e9, [0.0, 1e-5]), "allowed 4 finite start"),
    (lambda: crb.velocity_crb_mps2_mask(0.1, np.ones((1, 8), bool), 5e9, [0.0]), "1 distinct symbol time"),
    (lambda: crb.delay_doppler_crb(0.1, np.ones((1, 8), bool), 30e3, [0.0]), "not observable"),
    (lambda: crb.delay_doppler_fim([0.1, 1.0], np.ones((2, 8), bool), 30e3, [0.0, 1.0]), "allowed a scalar"),
    (lambda: crb.position_crb(RING, [0.0, 0.0], 0.1, [(0, 4)]), "indices 0 ... 3"),
    (lambda: crb.position_crb(RING, [10.0, 0.0], 0.1), "coincides with node"),
    (lambda: crb.position_crb(RING, [0.0, 0.0, 0.0], 0.1), "allowed \\(B, D\\) and \\(D,\\)"),
    (lambda: crb.position_crb(RING, [1.0, 2.0], [0.1, 0.1]), "allowed a scalar, \\(4,\\) variances"),
    (lambda: crb.position_crb(RING, [1.0, 2.0], [0.1, 0.1, -1.0, 0.1]), "allowed finite variances > 0"),
    (lambda: crb.fuse_fim(np.eye(2), np.eye(3)), "of one shape"),
    (lambda: crb.snr_per_re_db(30, 0, 0, 24e9, 1, 100, 100, 7, 122.88e6, 1024, 2000), "num_subcarriers = 2000"),
    (lambda: crb.snr_per_re_db(30, 0, 0, 24e9, 1, 100, 100, -1, 122.88e6, 1024, 792), "noise_figure_db = -1"),
    (lambda: crb.snr_per_re_db(30, 0, 0, 24e9, 0.0, 100, 100, 7, 122.88e6, 1024, 792), "rcs_m2 = 0.0"),
])
def test_bad_inputs_raise_input_error(call, match) -> None:
    with pytest.raises(InputError, match=match):
        call()
