"""Tests of sdr_isac.sensing.rdmap: the map against the periodogram written out as a double sum."""

from __future__ import annotations

import numpy as np
import pytest

from sdr_isac.config import SensingConfig
from sdr_isac.sensing.rdmap import range_doppler_map, window

C = 299_792_458.0


def periodogram(h, weights, n_range, n_doppler):
    """sum_c |sum_lk w_lk H_c(l, k) exp(j 2 pi k r / R) exp(-j 2 pi l (d - D//2) / D)|**2, as (R, D) loops."""
    s, k = weights.shape
    r = np.arange(n_range)[:, None, None, None]
    d = (np.arange(n_doppler) - n_doppler // 2)[None, :, None, None]
    l_idx, k_idx = np.arange(s)[None, None, :, None], np.arange(k)[None, None, None, :]
    kernel = np.exp(2j * np.pi * k_idx * r / n_range) * np.exp(-2j * np.pi * l_idx * d / n_doppler)   # (R, D, S, K)
    cells = np.einsum("rdlk,clk->crd", kernel, h * weights)
    return np.sum(np.abs(cells) ** 2, axis=0), cells


@pytest.mark.parametrize(("channels", "symbols", "subcarriers", "over_r", "over_d", "win_r", "win_d"), [
    (1, 8, 12, 2, 2, "hann", "hann"),            # even Doppler length: the fftshift is a sign flip
    (2, 5, 10, 1, 3, "chebyshev", "none"),       # odd Doppler length (15): a complex phase ramp
    (3, 6, 9, 3, 1, "blackman", "hamming"),
])
def test_map_is_the_windowed_periodogram(channels, symbols, subcarriers, over_r, over_d, win_r, win_d, rng):
    mask = rng.random((symbols, subcarriers)) > 0.25
    h = ((rng.standard_normal((channels, symbols, subcarriers)) + 1j * rng.standard_normal(mask.shape)) * mask
         ).astype(np.complex64)
    cfg = SensingConfig(range_oversampling=over_r, doppler_oversampling=over_d, window_range=win_r,
                        window_doppler=win_d)
    rd = range_doppler_map(h, mask, 120e3, 9e-6, 24e9, cfg)
    weights = window(win_d, symbols)[:, None] * window(win_r, subcarriers)[None, :] * mask
    n_range, n_doppler = rd.power.shape
    power, cells = periodogram(h.astype(complex), weights, n_range, n_doppler)
    np.testing.assert_allclose(rd.power, power, rtol=1e-4, atol=1e-5 * power.max())
    np.testing.assert_allclose(rd.cells, cells, rtol=1e-4, atol=1e-5 * np.abs(cells).max())
    assert rd.noise_gain == pytest.approx(np.sum(weights**2), rel=1e-6)
    assert rd.coherent_gain == pytest.approx(np.sum(weights), rel=1e-6)
    assert rd.range_m[1] == pytest.approx(C / (2 * n_range * 120e3))
    assert rd.doppler_hz[n_doppler // 2] == 0.0 and rd.complete_range
    np.testing.assert_allclose(rd.velocity_mps, -rd.doppler_hz * C / 24e9 / 2)
    top = range_doppler_map(h, mask, 120e3, 9e-6, 24e9, cfg, max_rows=4)
    assert top.power.shape == (4, n_doppler) and not top.complete_range
    np.testing.assert_allclose(top.power, power[:4], rtol=1e-4, atol=1e-5 * power.max())


def test_window_is_a_fresh_array():
    w = window("hann", 16)
    w[:] = 0.0
    assert window("hann", 16).max() == 1.0
