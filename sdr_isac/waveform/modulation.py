"""Modulation mapping and demapping, TS 38.211 §5.1.

All schemes have unit average power.  Square QAM is Gray-coded per axis:
the even-numbered bits b(0), b(2), ... set the in-phase level and the odd
ones the quadrature level, as in equations 5.1.3-5.1.6, so the demapper works
on each axis separately.

Log-likelihood ratios follow ``LLR = ln P(b = 0 | y) / P(b = 1 | y)``:
positive means 0 is more likely.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.config import MODULATIONS
from sdr_isac.errors import InputError

__all__ = ["bits_per_symbol", "constellation", "modulate", "demodulate_llr", "hard_decision"]


def bits_per_symbol(scheme: str) -> int:
    """Bits per symbol of ``scheme`` (``bpsk`` ... ``256qam``)."""
    if scheme not in MODULATIONS:
        raise InputError(f"modulation = {scheme!r}: allowed {', '.join(MODULATIONS)}")
    return MODULATIONS[scheme]


@cache
def _axis_levels(bits_per_axis: int) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
    """PAM levels of one axis before normalisation, and their bit patterns.

    Level for bits (c0, c1, ..., c_{m-1}) of one axis:
    (1 - 2 c0) [2**(m-1) - (1 - 2 c1) [2**(m-2) - ... [2 - (1 - 2 c_{m-1})]]],
    the nesting of TS 38.211 equations 5.1.4-5.1.6.
    """
    m = bits_per_axis
    patterns = ((np.arange(2**m)[:, None] >> np.arange(m - 1, -1, -1)) & 1).astype(np.uint8)
    signs = 1.0 - 2.0 * patterns
    level = np.ones(2**m)
    for j in range(m - 1, 0, -1):          # innermost bracket first
        level = 2.0 ** (m - j) - signs[:, j] * level
    return (signs[:, 0] * level).astype(np.float64), patterns


def _qam_scale(bits: int) -> float:
    """Normalisation 1/sqrt(2 (M_axis**2 - 1) / 3): 1/sqrt2, 1/sqrt10, 1/sqrt42, 1/sqrt170."""
    m_axis = 2 ** (bits // 2)
    return 1.0 / math.sqrt(2.0 * (m_axis**2 - 1) / 3.0)


@cache
def constellation(scheme: str) -> NDArray[np.complex128]:
    """Every symbol of ``scheme``, indexed by its bits read MSB first (b(0) b(1) ...).

    Returns
    -------
    ndarray, shape (2**Q,), complex128
    """
    q = bits_per_symbol(scheme)
    idx = np.arange(2**q)
    bits = ((idx[:, None] >> np.arange(q - 1, -1, -1)) & 1).astype(np.uint8)
    table = _map(bits.reshape(-1), scheme).astype(np.complex128)
    table.setflags(write=False)
    return table


def _map(bits: NDArray[np.uint8], scheme: str) -> NDArray[np.complex64]:
    q = bits_per_symbol(scheme)
    b = bits.reshape(-1, q)
    if scheme == "bpsk":      # eq. 5.1.2
        s = (1.0 - 2.0 * b[:, 0]) / math.sqrt(2.0)
        return (s + 1j * s).astype(np.complex64)
    half = q // 2
    levels, _ = _axis_levels(half)
    weights = 1 << np.arange(half - 1, -1, -1)
    i_idx = b[:, 0::2] @ weights
    q_idx = b[:, 1::2] @ weights
    scale = _qam_scale(q)
    return (scale * (levels[i_idx] + 1j * levels[q_idx])).astype(np.complex64)


def modulate(bits: ArrayLike, scheme: str) -> NDArray[np.complex64]:
    """Map bits to symbols, TS 38.211 §5.1.

    Parameters
    ----------
    bits : array_like of 0/1, shape (n * Q,)
        Bits in transmission order; the length must be a multiple of the
        bits per symbol Q.
    scheme : str
        ``bpsk``, ``qpsk``, ``16qam``, ``64qam`` or ``256qam``.

    Returns
    -------
    ndarray, shape (n,), complex64

    Examples
    --------
    >>> modulate([0, 0, 1, 1], "qpsk").round(4)
    array([ 0.7071+0.7071j, -0.7071-0.7071j], dtype=complex64)
    """
    q = bits_per_symbol(scheme)
    b = np.asarray(bits).reshape(-1)
    if b.size % q:
        raise InputError(f"bits has {b.size} elements: allowed a multiple of {q} for {scheme}; "
                         "pad or trim the bit stream")
    if b.dtype != np.uint8:
        if b.dtype.kind not in "biuf" or (b.size and not np.all((b == 0) | (b == 1))):
            raise InputError(f"bits (dtype {b.dtype}) holds values other than 0 and 1; pass a 0/1 array")
        b = b.astype(np.uint8)
    elif np.any(b > 1):
        raise InputError("bits holds values other than 0 and 1; pass a 0/1 array")
    groups = b.reshape(-1, q)
    index = np.zeros(groups.shape[0], dtype=np.intp)
    for j in range(q):                                   # b(0) is the most significant bit
        index = (index << 1) | groups[:, j]
    return _table64(scheme)[index]


@cache
def _table64(scheme: str) -> NDArray[np.complex64]:
    table = constellation(scheme).astype(np.complex64)
    table.setflags(write=False)
    return table


def _check_symbols(symbols: ArrayLike) -> NDArray[np.complex128]:
    y = np.asarray(symbols)
    if y.dtype.kind not in "cfiu":
        raise InputError(f"symbols has dtype {y.dtype}: allowed a complex array")
    return y.reshape(-1).astype(np.complex128)


def demodulate_llr(
    symbols: ArrayLike, scheme: str, noise_var: float | ArrayLike, method: str = "maxlog"
) -> NDArray[np.float64]:
    """Soft demapping: bit log-likelihood ratios ``ln P(b=0|y) / P(b=1|y)``.

    Parameters
    ----------
    symbols : array_like, shape (n,), complex
        Equalised symbols.
    scheme : str
        Modulation.
    noise_var : float or array_like, shape (n,)
        Complex noise variance E|n|**2 per symbol (> 0).
    method : str
        ``maxlog`` (max-log approximation) or ``exact`` (log-sum-exp).

    Returns
    -------
    ndarray, shape (n * Q,), float64
    """
    q = bits_per_symbol(scheme)
    if method not in ("maxlog", "exact"):
        raise InputError(f"method = {method!r}: allowed 'maxlog' or 'exact'")
    y = _check_symbols(symbols)
    n0 = np.broadcast_to(np.asarray(noise_var, dtype=float), y.shape)
    if np.any(~(n0 > 0)):
        raise InputError("noise_var must be > 0 (complex noise variance per symbol); estimate it or pass it")
    if scheme == "bpsk":
        proj = (y.real + y.imag) / math.sqrt(2.0)
        return 4.0 * proj / n0
    half = q // 2
    levels, patterns = _axis_levels(half)
    levels = levels * _qam_scale(q)
    out = np.empty((y.size, q))
    for axis, comp in enumerate((y.real, y.imag)):
        metric = -((comp[:, None] - levels[None, :]) ** 2) / n0[:, None]   # (n, levels)
        for j in range(half):
            ones = patterns[:, j] == 1
            if method == "maxlog":
                llr = metric[:, ~ones].max(axis=1) - metric[:, ones].max(axis=1)
            else:
                llr = _logsumexp(metric[:, ~ones]) - _logsumexp(metric[:, ones])
            out[:, 2 * j + axis] = llr
    return out.reshape(-1)


def _logsumexp(a: NDArray[np.float64]) -> NDArray[np.float64]:
    peak = a.max(axis=1, keepdims=True)
    return (peak + np.log(np.exp(a - peak).sum(axis=1, keepdims=True)))[:, 0]


def hard_decision(symbols: ArrayLike, scheme: str) -> NDArray[np.uint8]:
    """Nearest-symbol bits for ``symbols`` (shape (n,)); returns shape (n * Q,), uint8."""
    llr = demodulate_llr(symbols, scheme, 1.0, "maxlog")
    return (llr < 0).astype(np.uint8)
