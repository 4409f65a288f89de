"""Pseudo-random and Zadoff-Chu sequences of TS 38.211 §5.2.

The Gold sequence is computed for many initialisations at once: ``x1`` does
not depend on ``c_init`` and ``x2`` is linear (over GF(2)) in the 31 bits of
``c_init``, so ``x2`` for any ``c_init`` is the XOR of the basis sequences of
its set bits.  The basis is made once by the recursions of §5.2.1 and cached,
and a whole frame's sequences (one per symbol) come from one matrix product.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError

__all__ = [
    "GOLD_NC",
    "gold_sequence",
    "gold_sequences",
    "qpsk_reference",
    "zc_parameters",
    "low_papr_sequence",
]

#: N_c of TS 38.211 §5.2.1.
GOLD_NC = 1600
_BLOCK = 28  # x(n + 31) needs x(n + 3) at most: 28 new values per step are independent


def _run_recursion(state: NDArray[np.uint8], length: int, taps: tuple[int, ...]) -> NDArray[np.uint8]:
    """Extend rows of ``state`` (shape (rows, 31)) by x(n+31) = XOR of x(n + t) for t in taps."""
    rows = state.shape[0]
    out = np.zeros((rows, length + _BLOCK + 31), dtype=np.uint8)
    out[:, :31] = state
    for n in range(0, length, _BLOCK):
        acc = out[:, n + taps[0]: n + taps[0] + _BLOCK].copy()
        for t in taps[1:]:
            acc ^= out[:, n + t: n + t + _BLOCK]
        out[:, n + 31: n + 31 + _BLOCK] = acc
    return out[:, :length]


@lru_cache(maxsize=8)
def _gold_basis(length: int) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """x1(n + N_c) and the 31 basis rows of x2(n + N_c), n = 0 ... length - 1."""
    total = length + GOLD_NC
    x1_init = np.zeros((1, 31), dtype=np.uint8)
    x1_init[0, 0] = 1
    x1 = _run_recursion(x1_init, total, (0, 3))[0, GOLD_NC:]
    x2_basis = _run_recursion(np.eye(31, dtype=np.uint8), total, (0, 1, 2, 3))[:, GOLD_NC:]
    x1.setflags(write=False)
    return x1, x2_basis.astype(np.float32)


def _basis_length(length: int) -> int:
    return max(256, 1 << math.ceil(math.log2(max(length, 1))))


def _check_c_init(c_init: NDArray[np.int64]) -> None:
    if c_init.size and (c_init.min() < 0 or c_init.max() >= 2**31):
        bad = c_init[(c_init < 0) | (c_init >= 2**31)][0]
        raise InputError(f"c_init = {int(bad)}: allowed 0 ... 2**31 - 1 (TS 38.211 §5.2.1); reduce it mod 2**31")


def gold_sequences(c_init: ArrayLike, length: int) -> NDArray[np.uint8]:
    """Gold sequences c(n) of TS 38.211 §5.2.1 for many initialisations.

    Parameters
    ----------
    c_init : array_like of int, shape (B,)
        Initialisations, each 0 ... 2**31 - 1.
    length : int
        M_PN, number of bits per sequence (>= 0).

    Returns
    -------
    ndarray, shape (B, length), uint8
        Bits 0/1.
    """
    if int(length) != length or length < 0:
        raise InputError(f"length = {length}: allowed an integer >= 0 (bits)")
    inits = np.atleast_1d(np.asarray(c_init, dtype=np.int64))
    if inits.ndim != 1:
        raise InputError(f"c_init has shape {inits.shape}: allowed a scalar or a 1-D array")
    _check_c_init(inits)
    if length == 0:
        return np.zeros((inits.size, 0), dtype=np.uint8)
    x1, basis = _gold_basis(_basis_length(int(length)))
    bits = ((inits[:, None] >> np.arange(31)) & 1).astype(np.float32)
    x2 = (bits @ basis[:, :length]).astype(np.int64) & 1
    return (x2.astype(np.uint8) ^ x1[np.newaxis, :length])


def gold_sequence(c_init: int, length: int) -> NDArray[np.uint8]:
    """Gold sequence c(n), n = 0 ... length - 1, of TS 38.211 §5.2.1.

    Parameters
    ----------
    c_init : int
        Initialisation of x2, 0 ... 2**31 - 1.
    length : int
        Number of bits.

    Returns
    -------
    ndarray, shape (length,), uint8
        Bits 0/1.

    Examples
    --------
    >>> ''.join(map(str, gold_sequence(1000, 16)))
    '0000110001010100'
    """
    return gold_sequences([c_init], length)[0]


def qpsk_reference(c_init: ArrayLike, length: int) -> NDArray[np.complex64]:
    """QPSK reference symbols r(m) = [(1 - 2c(2m)) + j(1 - 2c(2m+1))] / sqrt(2).

    The sequence of TS 38.211 §7.4.1.1.1 (DMRS), §7.4.1.5.2 (CSI-RS) and
    §7.4.1.7.2 (PRS).

    Parameters
    ----------
    c_init : array_like of int, shape (B,)
        Initialisations.
    length : int
        Symbols per sequence.

    Returns
    -------
    ndarray, shape (B, length), complex64
    """
    c = gold_sequences(c_init, 2 * length).astype(np.float32)
    out = np.empty((c.shape[0], length), dtype=np.complex64)
    out.real = (1.0 - 2.0 * c[:, 0::2]) / np.float32(math.sqrt(2.0))
    out.imag = (1.0 - 2.0 * c[:, 1::2]) / np.float32(math.sqrt(2.0))
    return out


def _largest_prime_below(n: int) -> int:
    for candidate in range(n - 1, 1, -1):
        if all(candidate % d for d in range(2, int(math.isqrt(candidate)) + 1)):
            return candidate
    raise InputError(f"M_ZC = {n}: no prime below it; use a length >= 36")


def zc_parameters(m_zc: int, u: int, v: int) -> tuple[int, int]:
    """N_ZC and root q of the base sequence r̄_{u,v}, TS 38.211 §5.2.2.1.

    N_ZC is the largest prime below M_ZC; q̄ = N_ZC (u + 1) / 31 and
    q = floor(q̄ + 1/2) + v (-1)**floor(2 q̄).

    Parameters
    ----------
    m_zc : int
        Sequence length M_ZC >= 36.
    u : int
        Group number 0 ... 29.
    v : int
        Base sequence number 0 or 1.
    """
    if m_zc < 36:
        raise InputError(f"M_ZC = {m_zc}: allowed >= 36 (shorter sequences come from tables in "
                         "TS 38.211 §5.2.2.2); use a longer sequence")
    if not 0 <= u <= 29 or v not in (0, 1):
        raise InputError(f"(u, v) = ({u}, {v}): allowed u in 0 ... 29, v in {{0, 1}}")
    n_zc = _largest_prime_below(m_zc)
    # q̄ = N_ZC (u + 1) / 31 in exact integer arithmetic
    num = n_zc * (u + 1)
    q = (2 * num + 31) // 62 + v * (-1) ** ((2 * num) // 31)
    return n_zc, q


def low_papr_sequence(m_zc: int, u: int, v: int, alpha_rad: float = 0.0) -> NDArray[np.complex64]:
    """Low-PAPR sequence r_{u,v}^{(alpha)}(n) = exp(j alpha n) r̄_{u,v}(n), TS 38.211 §5.2.2.

    For M_ZC >= 36, r̄_{u,v}(n) = x_q(n mod N_ZC) with
    x_q(m) = exp(-j pi q m (m + 1) / N_ZC) (§5.2.2.1).

    Returns
    -------
    ndarray, shape (m_zc,), complex64
        Unit-modulus samples.
    """
    n_zc, q = zc_parameters(m_zc, u, v)
    m = np.arange(m_zc, dtype=np.int64) % n_zc
    phase = -np.pi * ((q * m * (m + 1)) % (2 * n_zc)) / n_zc
    n = np.arange(m_zc)
    return np.exp(1j * (phase + alpha_rad * n)).astype(np.complex64)
