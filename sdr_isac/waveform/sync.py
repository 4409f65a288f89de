"""Frame timing by cross-correlation with the known transmitted frame.

Used wherever TX and RX share no timestamp (a Pluto, a passive receiver): the
strongest copy of the frame in a receive buffer (on a monostatic node, the
TX->RX leakage, i.e. zero range) marks the frame start.

:func:`parabolic_vertex` (with :func:`parabolic_vertex_slopes`) is the package's one 3-point peak
interpolation: the sub-sample frame start here, the off-grid start of every detection
(:mod:`sdr_isac.sensing.detection`) and the grid error of the range-Doppler map (:mod:`sdr_isac.sensing.rdmap`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import scipy.signal as sp_signal
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError

__all__ = ["FrameTiming", "find_frame_start", "estimate_cfo", "parabolic_vertex", "parabolic_vertex_slopes"]

_NDARRAY = np.ndarray          # bound once: parabolic_vertex's type test is on the hot path of every detection


@overload
def parabolic_vertex(y_m: NDArray[np.floating[Any]], y_0: NDArray[np.floating[Any]], y_p: NDArray[np.floating[Any]]
                     ) -> NDArray[np.float64]: ...
@overload
def parabolic_vertex(y_m: float | np.floating[Any], y_0: float | np.floating[Any], y_p: float | np.floating[Any]
                     ) -> float: ...
def parabolic_vertex(y_m: Any, y_0: Any, y_p: Any) -> Any:
    """Offset of the vertex of the parabola through ``(-1, y_m)``, ``(0, y_0)``, ``(1, y_p)``, in cells.

    ``0.5 (y_m - y_p) / (y_m - 2 y_0 + y_p)`` where the denominator is negative (the parabola has a
    maximum), else 0 (a flat or upturned triple, NaN included: the centre cell stands).  Within
    ``[-0.5, 0.5]`` (to rounding) when ``y_0`` is the largest of the three.

    Parameters
    ----------
    y_m, y_0, y_p : float or ndarray
        Samples (power or magnitude) at cells -1, 0 and +1.  Scalars (Python or numpy, any float dtype)
        are taken as float64 and give a ``float`` without a numpy call (the path of every detection);
        arrays, of one shape, give an array of that shape, float64 (:func:`parabolic_vertex_slopes`; an
        ndarray subclass of one element is taken as a scalar).

    Raises
    ------
    InputError
        A scalar sample that is not a number.

    Returns
    -------
    float or ndarray
        The vertex offset, cells.

    Examples
    --------
    >>> parabolic_vertex(1.0, 2.0, 1.5)
    0.16666666666666666
    >>> parabolic_vertex(1.0, 1.0, 1.0)
    0.0
    """
    if type(y_m) is _NDARRAY:                                     # not isinstance: 20 ns less per float call
        return parabolic_vertex_slopes(y_m, y_0, y_p)[0]
    try:
        y_m, y_0, y_p = float(y_m), float(y_0), float(y_p)        # float64, not a map's float32
    except (TypeError, ValueError) as err:
        if isinstance(y_m, _NDARRAY):                             # a subclass of ndarray (memmap, masked)
            return parabolic_vertex_slopes(y_m, y_0, y_p)[0]
        raise InputError(f"parabolic_vertex of ({y_m!r}, {y_0!r}, {y_p!r}): allowed three numbers, or three "
                         "arrays of one shape; pass the samples at cells -1, 0 and +1") from err
    denom = y_m - 2 * y_0 + y_p
    return 0.5 * (y_m - y_p) / denom if denom < 0 else 0.0


def parabolic_vertex_slopes(y_m: ArrayLike, y_0: ArrayLike, y_p: ArrayLike
                            ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """:func:`parabolic_vertex` of arrays, elementwise, with its derivatives in the three samples.

    Parameters
    ----------
    y_m, y_0, y_p : array_like, shape (...,), float
        Samples at cells -1, 0 and +1, of one shape (taken as float64).

    Returns
    -------
    vertex : ndarray, shape (...,), float64
        The vertex offset, cells (0 where the denominator is not negative).
    slopes : ndarray, shape (..., 3), float64
        ``d vertex / d (y_m, y_0, y_p)``, cells per unit of the samples: 0 where the parabola is refused
        (the vertex is 0 there whatever the samples).
    """
    y_m, y_0, y_p = (np.asarray(y, dtype=np.float64) for y in (y_m, y_0, y_p))
    den = y_m - 2 * y_0 + y_p
    ok = den < 0
    safe = np.where(ok, den, -1.0)
    vertex = np.where(ok, 0.5 * (y_m - y_p) / safe, 0.0)
    slopes = np.where(ok[..., None], np.stack([0.5 / safe - vertex / safe, 2 * vertex / safe,
                                               -0.5 / safe - vertex / safe], axis=-1), 0.0)
    return vertex, slopes


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
        fractional = parabolic_vertex(a, b, c)
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
