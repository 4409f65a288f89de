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

__all__ = ["FrameTiming", "find_frame_start"]


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
        offset is then reduced modulo ``period``.

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
    power = np.zeros(y.shape[1] - x.size + 1)
    for row in y:
        power += np.abs(sp_signal.correlate(row, x, mode="valid", method="fft")) ** 2
    k = int(np.argmax(power))
    fractional = 0.0
    if 0 < k < power.size - 1:
        a, b, c = np.sqrt(power[k - 1: k + 2])
        denom = a - 2 * b + c
        fractional = float(0.5 * (a - c) / denom) if denom < 0 else 0.0
    median = float(np.median(np.sqrt(power)))
    ratio = float(np.sqrt(power[k]) / median) if median > 0 else float("inf")
    if period:
        k %= int(period)
    return FrameTiming(k, fractional, ratio)
