"""AWGN and tapped-delay-line helpers."""

from __future__ import annotations

import numpy as np
import pytest

from sdr_isac.channel import add_awgn, apply_taps, noise_var_for_snr
from sdr_isac.errors import InputError


def test_noise_variance_matches_request(rng):
    x = np.zeros((2, 200_000), dtype=np.complex64)
    y = add_awgn(x, 0.3, rng)
    var = np.mean(np.abs(y) ** 2)
    # sample variance of 400k complex Gaussians: relative std 1/sqrt(4e5) = 0.16 %
    assert var == pytest.approx(0.3, rel=0.01)
    assert np.mean(y.real**2) == pytest.approx(0.15, rel=0.015)   # circular: half in each part
    assert noise_var_for_snr(20.0) == pytest.approx(0.01)


def test_seeded_noise_is_reproducible():
    x = np.zeros(64, dtype=np.complex64)
    a = add_awgn(x, 1.0, np.random.default_rng(5))
    b = add_awgn(x, 1.0, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


def test_taps_delay_and_scale():
    x = np.zeros((1, 10), dtype=np.complex64)
    x[0, 0] = 1.0
    y = apply_taps(x, [0, 3], [1.0, 0.5j])
    expected = np.zeros(10, dtype=np.complex64)
    expected[0], expected[3] = 1.0, 0.5j
    np.testing.assert_array_equal(y[0], expected)


def test_bad_arguments():
    with pytest.raises(InputError, match="noise_var = -1"):
        add_awgn(np.zeros(4), -1.0, np.random.default_rng(0))
    with pytest.raises(InputError, match="delays_samples"):
        apply_taps(np.zeros((1, 4)), [0, -1], [1, 1])
    with pytest.raises(InputError, match="snr_db = nan"):
        noise_var_for_snr(float("nan"))
