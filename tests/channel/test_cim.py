"""CIM synthesis of point paths on a band's pilots, bistatic links, and the random multipath link."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from sdr_isac.channel.awgn import multipath_link
from sdr_isac.channel.cim import bistatic_link_cim, measure_pilots, point_target_cim, random_amplitude

C = 3e8                     # a round speed of light: the delays below fall exactly on the bins
K, M, DF = 64, 16, 30e3     # subcarriers, symbols, spacing (Hz); no CP: T = 1 / df
DELAY_BIN_S = 1 / (K * DF)
DOPPLER_BIN_HZ = DF / M


@dataclass(frozen=True)
class Grid:
    """A full-pilot band (every RE a pilot): on-bin paths are orthogonal."""

    carrier_hz: float = 3.5e9
    subcarrier_spacing_hz: float = DF
    num_subcarriers: int = K
    pilots: np.ndarray = field(default_factory=lambda: np.ones((M, K), dtype=bool))

    @property
    def symbol_times_s(self) -> np.ndarray:
        return np.arange(M) / DF


def matched(h: np.ndarray, delay_s: float, doppler_hz: float) -> complex:
    """The amplitude estimate of a path at (delay, Doppler): mean of h times the conjugate steering."""
    steer = np.exp(2j * np.pi * np.outer(Grid().symbol_times_s, [doppler_hz])) * \
        np.exp(-2j * np.pi * DF * delay_s * np.arange(K))[None, :]
    return complex(np.mean(h * np.conj(steer)))


def test_measure_pilots_is_the_cim_on_the_pilots_plus_noise_of_the_asked_variance(rng):
    comb = np.zeros((M, K), dtype=bool)
    comb[::2, ::4] = True
    grid = Grid(pilots=comb)
    paths = [(3 * DELAY_BIN_S, 2 * DOPPLER_BIN_HZ, 2.0 + 1.0j)]
    clean = point_target_cim(np.arange(K), grid.symbol_times_s, DF, [paths[0][0]], [paths[0][1]], [paths[0][2]])
    h = measure_pilots(grid, paths, np.random.default_rng(1), noise_var=0.0)
    np.testing.assert_allclose(h, clean * comb)
    assert not h[~comb].any()
    noisy = measure_pilots(grid, paths, rng, noise_var=0.25)
    residual = (noisy - clean)[comb]
    # 128 complex Gaussian samples: the sample variance is within 4 standard deviations (1/sqrt(128)) of 0.25
    assert np.mean(np.abs(residual) ** 2) == pytest.approx(0.25, rel=4 / math.sqrt(residual.size))
    assert not noisy[~comb].any()


def test_random_amplitude_has_the_power_of_its_snr(rng):
    a = [random_amplitude(4.0, rng) for _ in range(200)]
    np.testing.assert_allclose(np.abs(a), 2.0)
    phases = np.angle(a)
    assert phases.min() < -2.5 and phases.max() > 2.5           # spread over the circle, not one phase


@pytest.mark.parametrize(("clock_bins", "cfo_bins"), [(0, 0), (2, -3)])
def test_bistatic_link_puts_direct_path_and_echo_where_the_geometry_says(rng, clock_bins, cfo_bins):
    baseline_m, range_sum_m = 3 * C * DELAY_BIN_S, 7 * C * DELAY_BIN_S
    rate_mps = -2 * DOPPLER_BIN_HZ * C / Grid().carrier_hz       # closing: f_D = -rate f_c / c = +2 bins
    snr, over_db = 4.0, 10.0
    clock_s, cfo_hz = clock_bins * DELAY_BIN_S, cfo_bins * DOPPLER_BIN_HZ
    h = bistatic_link_cim(Grid(), baseline_m, range_sum_m, rate_mps, snr, rng, direct_over_echo_db=over_db,
                          clock_s=clock_s, cfo_hz=cfo_hz, speed_mps=C)
    noise = 5 / math.sqrt(M * K)                                  # 5 sigma of a matched filter on unit noise
    echo = matched(h, range_sum_m / C + clock_s, 2 * DOPPLER_BIN_HZ + cfo_hz)
    direct = matched(h, baseline_m / C + clock_s, cfo_hz)
    assert abs(abs(echo) - math.sqrt(snr)) < noise
    assert abs(abs(direct) - math.sqrt(snr * 10 ** (over_db / 10))) < noise
    # nothing where neither path is (the echo without the clock offset or CFO, when they are not zero)
    if clock_bins or cfo_bins:
        assert abs(matched(h, range_sum_m / C, 2 * DOPPLER_BIN_HZ)) < noise


def test_multipath_link_is_seeded_and_one_tap_is_a_gain_per_channel():
    tx = np.exp(2j * np.pi * np.random.default_rng(3).random((1, 256))).astype(np.complex64)
    a = multipath_link(tx, 20.0, np.random.default_rng(9))
    np.testing.assert_array_equal(a, multipath_link(tx, 20.0, np.random.default_rng(9)))
    assert a.shape == (2, 256) and a.dtype == np.complex64      # one port: two receive channels
    flat = multipath_link(tx, 300.0, np.random.default_rng(9), delays_samples=(0,), powers=(1.0,))
    ratio = flat / tx
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones((1, 256)), rtol=1e-5)
