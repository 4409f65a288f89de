"""Frame timing by cross-correlation with the known transmitted frame.

Used wherever TX and RX share no timestamp (a Pluto, a passive receiver): the
strongest copy of the frame in a receive buffer (on a monostatic node, the
TX->RX leakage, i.e. zero range) marks the frame start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal as sp_signal
from numpy.typing import ArrayLike

from sdr_isac.errors import InputError

__all__ = ["FrameTiming", "find_frame_start", "estimate_cfo"]


@dataclass(frozen=True)
class FrameTiming:
    """Where a frame starts in a buffer.

    Attributes
    ----------
    offset : int
        Sample index of the frame start (the first sample of the first CP).
    fractional : float
        Sub-sample refinement in samples, -0.5 ... 0.5 (parabolic fit of the
        correlation magnitude), so the start is ``offset + fractional``.
    peak_to_median : float
        Correlation peak over its median, a detection quality figure (> 10
        means a clear peak).
    """

    offset: int
    fractional: float
    peak_to_median: float


def find_frame_start(samples: ArrayLike, reference: ArrayLike, period: int | None = None) -> FrameTiming:
    """Find the frame ``reference`` in ``samples`` by cross-correlation (all channels summed in power).

    Parameters
    ----------
    samples : array_like, shape (C, n) or (n,), complex
        Receive buffer; ``n >= len(reference)``.
    reference : array_like, shape (L,), complex
        The transmitted frame (one port).
    period : int, optional
        For a cyclic transmission, the repetition period in samples; the
        offset is then reduced modulo ``period``.  A buffer shorter than
        ``len(reference) + period`` is then correlated circularly (its first
        ``period`` samples).

    Returns
    -------
    FrameTiming
    """
    y = np.atleast_2d(np.asarray(samples))
    x = np.asarray(reference).reshape(-1)
    if y.ndim != 2 or x.size < 2 or y.shape[1] < x.size:
        raise InputError(f"samples of shape {y.shape} and a reference of {x.size} samples: the buffer must hold "
                         "at least one whole reference (capture more samples)")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(x))):
        raise InputError("samples or reference contain NaN or infinity")
    circular = bool(period) and int(period or 0) == x.size and y.shape[1] < x.size + int(period or 0)
    if circular:
        # too short for every lag of a linear correlation: a cyclic transmission allows a circular one
        spectrum = np.conj(np.fft.fft(x))
        power = np.sum(np.abs(np.fft.ifft(np.fft.fft(y[:, : x.size], axis=1) * spectrum, axis=1)) ** 2, axis=0)
    else:
        power = np.zeros(y.shape[1] - x.size + 1)
        for row in y:
            power += np.abs(sp_signal.correlate(row, x, mode="valid", method="fft")) ** 2
    k = int(np.argmax(power))
    fractional = 0.0
    if (circular and power.size > 2) or 0 < k < power.size - 1:
        a, b, c = np.sqrt(power[np.array([k - 1, k, k + 1]) % power.size])
        denom = a - 2 * b + c
        fractional = float(0.5 * (a - c) / denom) if denom < 0 else 0.0
    median = float(np.median(np.sqrt(power)))
    ratio = float(np.sqrt(power[k]) / median) if median > 0 else float("inf")
    if period:
        k %= int(period)
    return FrameTiming(k, fractional, ratio)


def estimate_cfo(samples: ArrayLike, cp_lengths: ArrayLike, fft_size: int, sample_rate_hz: float,
                 offset: int = 0) -> float:
    """Carrier frequency offset from the cyclic prefix (van de Beek et al., IEEE TSP 1997).

    The CP repeats the last CP samples of each symbol N_FFT samples later, so
    sum r[n] conj(r[n + N]) over every CP has phase -2 pi f N / f_s.

    Parameters
    ----------
    samples : array_like, shape (C, n) or (n,), complex
        Received samples; channels are combined.
    cp_lengths : array_like of int, shape (S,)
        CP of each symbol in samples.
    fft_size : int
        N_FFT.
    sample_rate_hz : float
        f_s.
    offset : int
        First sample of the frame.

    Returns
    -------
    float
        CFO in Hz, unambiguous within +- f_s / (2 N_FFT) (half a subcarrier).
    """
    y = np.atleast_2d(np.asarray(samples))
    cp = np.asarray(cp_lengths, dtype=np.int64).reshape(-1)
    total = int(np.sum(cp)) + cp.size * fft_size
    if offset < 0 or offset + total > y.shape[1]:
        raise InputError(f"offset = {offset} with {y.shape[1]} samples: the frame needs {total} samples")
    starts = offset + np.concatenate(([0], np.cumsum(cp + fft_size)[:-1]))
    index = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, cp)])
    acc = np.sum(y[:, index] * np.conj(y[:, index + fft_size]))
    return float(-np.angle(acc) * sample_rate_hz / (2 * np.pi * fft_size))
