"""Additive white Gaussian noise and a tapped-delay-line channel for link tests."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError
from sdr_isac.units import db_to_linear

__all__ = ["noise_var_for_snr", "add_awgn", "apply_taps"]


def noise_var_for_snr(snr_db: float, re_power: float = 1.0) -> float:
    """Complex noise variance per resource element for an SNR per RE (Es/N0) in dB.

    With unitary OFDM transforms the variance per RE equals the variance per
    time sample, so the result is also the per-sample noise variance to add.

    >>> noise_var_for_snr(10.0)
    0.1
    """
    if not np.isfinite(snr_db):
        raise InputError(f"snr_db = {snr_db}: must be a finite number of dB")
    return float(re_power / db_to_linear(snr_db))


def add_awgn(samples: ArrayLike, noise_var: float, rng: np.random.Generator) -> NDArray[np.complex64]:
    """``samples`` plus circular complex Gaussian noise of variance ``noise_var`` (E|n|**2).

    Parameters
    ----------
    samples : array_like, complex, any shape
    noise_var : float
        >= 0.
    rng : numpy.random.Generator
        Source of the noise (seeded by the caller).
    """
    x = np.asarray(samples)
    if not noise_var >= 0:
        raise InputError(f"noise_var = {noise_var}: must be >= 0")
    scale = np.sqrt(noise_var / 2.0)
    noise = rng.standard_normal((2,) + x.shape, dtype=np.float32)
    return (x + scale * (noise[0] + 1j * noise[1])).astype(np.complex64)


def apply_taps(samples: ArrayLike, delays_samples: ArrayLike, gains: ArrayLike) -> NDArray[np.complex64]:
    """Convolve each row of ``samples`` (shape (C, L)) with a sparse tapped delay line.

    Output sample n is sum_i gains[i] * samples[n - delays_samples[i]]
    (zero before the start), the same length as the input.
    """
    x = np.atleast_2d(np.asarray(samples))
    d = np.asarray(delays_samples, dtype=np.int64).reshape(-1)
    g = np.asarray(gains, dtype=np.complex128).reshape(-1)
    if d.size != g.size or d.size == 0 or d.min() < 0:
        raise InputError(f"delays_samples ({d.size}) and gains ({g.size}): allowed equal, non-empty lists "
                         "with delays >= 0 samples")
    out = np.zeros(x.shape, dtype=np.complex128)
    for delay, gain in zip(d, g):
        if delay < x.shape[1]:
            out[:, delay:] += gain * x[:, : x.shape[1] - delay]
    return out.astype(np.complex64)
