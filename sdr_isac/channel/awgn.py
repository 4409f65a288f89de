"""Additive white Gaussian noise, a tapped-delay-line channel and a random multipath link for link tests."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError
from sdr_isac.units import db_to_linear

__all__ = ["noise_var_for_snr", "add_awgn", "apply_taps", "multipath_link", "TAP_DELAYS_SAMPLES", "TAP_POWERS"]

#: Delays (samples, inside the cyclic prefix) and mean powers (linear) of the taps of :func:`multipath_link`.
TAP_DELAYS_SAMPLES = (0, 3, 11)
TAP_POWERS = (1.0, 0.25, 0.0625)


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


def multipath_link(tx: ArrayLike, snr_db: float, rng: np.random.Generator,
                   delays_samples: tuple[int, ...] = TAP_DELAYS_SAMPLES,
                   powers: tuple[float, ...] = TAP_POWERS) -> NDArray[np.complex64]:
    """Every TX port to ``max(2, ports)`` RX channels through independent Rayleigh tapped delay lines, plus AWGN.

    Each (RX channel, TX port) pair draws complex Gaussian tap gains of mean powers ``powers`` (normalised to a
    total of 1) at ``delays_samples``; the sum over ports gets white noise for ``snr_db`` per RE
    (:func:`noise_var_for_snr`).

    Parameters
    ----------
    tx : array_like, shape (ports, N), complex
        Transmitted samples of each port.
    snr_db : float
        SNR per resource element, dB.
    rng : numpy.random.Generator
        Draws the gains (channel by channel, port by port), then the noise.
    delays_samples, powers : tuple
        Tap delays (samples, >= 0) and mean powers (linear, >= 0), one per tap.

    Returns
    -------
    ndarray, shape (max(2, ports), N), complex64
    """
    x = np.asarray(tx)
    ports = x.shape[0]
    power = np.asarray(powers) / np.sum(powers)
    rx = np.zeros((max(2, ports), x.shape[1]), dtype=np.complex64)
    for c in range(rx.shape[0]):
        for p in range(ports):
            gains = np.sqrt(power / 2) * (rng.standard_normal(power.size) + 1j * rng.standard_normal(power.size))
            rx[c] += apply_taps(x[p:p + 1], delays_samples, gains)[0]
    return add_awgn(rx, noise_var_for_snr(snr_db), rng)
