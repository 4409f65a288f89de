"""NR numerology and cyclic prefix lengths, TS 38.211 §4.2, §4.3 and §5.3.1."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

from sdr_isac.config import FrameConfig
from sdr_isac.errors import InputError

__all__ = [
    "subcarrier_spacing_hz",
    "slots_per_subframe",
    "cyclic_prefix_lengths",
    "frame_cp_lengths",
]


def subcarrier_spacing_hz(numerology: int) -> float:
    """Delta f = 15 kHz * 2**mu, TS 38.211 §4.2 Table 4.2-1."""
    _check_numerology(numerology)
    return 15e3 * 2**numerology


def slots_per_subframe(numerology: int) -> int:
    """N_slot^subframe,mu = 2**mu, TS 38.211 §4.3.2."""
    _check_numerology(numerology)
    return 2**numerology


def _check_numerology(numerology: int) -> None:
    if numerology not in (0, 1, 2, 3, 4):
        raise InputError(f"numerology = {numerology}: allowed 0 ... 4 (TS 38.211 Table 4.2-1)")


def _whole_samples(value: Fraction, what: str, fft_size: int) -> int:
    if value.denominator != 1:
        raise InputError(f"fft_size = {fft_size}: the {what} is {float(value)} samples, not whole; "
                         "use an fft_size that is a multiple of 128, or an explicit CP")
    return int(value)


def cyclic_prefix_lengths(
    numerology: int, fft_size: int, num_symbols: int, kind: str = "normal", first_slot: int = 0
) -> NDArray[np.int64]:
    """Cyclic prefix of each symbol in samples at f_s = N_FFT * Delta f, TS 38.211 §5.3.1.

    In units of T_c = 1 / (480 kHz * 4096), kappa = 64:

    - normal CP: N_CP,l = 144 kappa 2**-mu, plus 16 kappa for l = 0 and
      l = 7 * 2**mu of every subframe (the first symbol of each half subframe);
    - extended CP: N_CP,l = 512 kappa 2**-mu.

    At N_FFT samples per useful symbol that is 144 N_FFT / 2048 (+ 16 * 2**mu
    N_FFT / 2048) and 512 N_FFT / 2048 samples.

    Parameters
    ----------
    numerology : int
        mu, 0 ... 4.
    fft_size : int
        N_FFT.
    num_symbols : int
        Consecutive symbols, starting at symbol 0 of slot ``first_slot``.
    kind : str
        ``normal`` or ``extended`` (mu = 2 only).
    first_slot : int
        Slot number n_s,f of the first symbol (>= 0).

    Returns
    -------
    ndarray, shape (num_symbols,), int64
    """
    _check_numerology(numerology)
    if kind not in ("normal", "extended"):
        raise InputError(f"kind = {kind!r}: allowed 'normal' or 'extended'")
    if kind == "extended" and numerology != 2:
        raise InputError(f"kind = 'extended' with numerology = {numerology}: extended CP exists "
                         "only for numerology 2 (60 kHz)")
    if num_symbols < 0 or first_slot < 0:
        raise InputError(f"num_symbols = {num_symbols}, first_slot = {first_slot}: both must be >= 0")
    if kind == "extended":
        cp = _whole_samples(Fraction(512 * fft_size, 2048), "extended CP", fft_size)
        return np.full(num_symbols, cp, dtype=np.int64)
    base = _whole_samples(Fraction(144 * fft_size, 2048), "normal CP", fft_size)
    extra = _whole_samples(Fraction(16 * 2**numerology * fft_size, 2048), "long-CP extension", fft_size)
    symbol = first_slot * 14 + np.arange(num_symbols, dtype=np.int64)
    long_cp = symbol % (7 * 2**numerology) == 0
    return base + extra * long_cp.astype(np.int64)


def frame_cp_lengths(frame: FrameConfig) -> NDArray[np.int64]:
    """The CP of every symbol of ``frame`` in samples (standard or explicit).

    Returns
    -------
    ndarray, shape (frame.total_symbols,), int64
    """
    n = frame.total_symbols
    if frame.cyclic_prefix in ("normal", "extended"):
        return cyclic_prefix_lengths(frame.numerology, frame.fft_size, n, frame.cyclic_prefix, frame.first_slot)
    values = np.asarray(frame.explicit_cp_samples(), dtype=np.int64)
    if values.size == 1 or values.size == n:
        return np.broadcast_to(values, (n,)).copy()
    return np.resize(values, n)  # one slot's pattern, repeated
