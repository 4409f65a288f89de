"""Cramér–Rao bounds for OFDM radar, node geometry and the radar link budget.

Model and conventions
---------------------
One point target is seen on an OFDM grid of resource elements (REs), symbol
``l`` (start time ``t_l``) and subcarrier ``k`` (spacing ``df``)::

    H(l, k) = a exp(-j 2 pi k df tau) exp(j 2 pi f_D t_l) + n(l, k),
    n ~ CN(0, sigma**2) white, gamma = |a|**2 / sigma**2 (per-RE SNR, linear),

with the complex amplitude ``a`` unknown.  Monostatic range is
``R = c tau / 2`` and radial velocity ``v = -c f_D / (2 f_c)``; a bistatic
range sum is ``R_1 + R_2 = c tau``.  All variances are in squared SI units
(``m2``, ``s2``, ``hz2``, ``mps2``, ``rad2``).

The bounds on the full N x M grid are those of REFERENCE.md §3.  The
mask-based functions give the same bounds for any set of REs (comb pilots,
staggered PRS, missing symbols); they follow from one result, derived in
:func:`delay_doppler_fim`:

    for y_i = a exp(j 2 pi f x_i) + n_i, i in S, with a unknown (modulus and
    phase), var(f_hat) >= 1 / (8 pi**2 gamma sum_{i in S} (x_i - mean(x))**2).

On the full grid ``sum_k (k - mean k)**2 = N (N**2 - 1) / 12`` per symbol, so
the mask bounds reduce to the grid formulas.

Geometry: the Fisher information of a position (or velocity vector) from
independent range (or radial-velocity) measurements is ``H^T Sigma^-1 H``
with one row of ``H`` per measurement (Kay, *Fundamentals of Statistical
Signal Processing: Estimation Theory*, 1993, §3.9, general Gaussian CRLB
with the mean linearised at the target);
independent measurements add Fisher information matrices.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError
from sdr_isac.units import BOLTZMANN_J_PER_K, REFERENCE_TEMPERATURE_K, SPEED_OF_LIGHT_MPS

__all__ = [
    "paths_delay_doppler_crb",
    "range_crb_m2",
    "delay_crb_s2",
    "velocity_crb_mps2",
    "doppler_crb_hz2",
    "bistatic_range_sum_crb_m2",
    "angle_crb_rad2",
    "element_positions_wl",
    "range_crb_m2_mask",
    "velocity_crb_mps2_mask",
    "delay_doppler_fim",
    "delay_doppler_crb",
    "measurement_matrix",
    "position_fim",
    "position_crb",
    "velocity_vector_crb",
    "gdop",
    "fuse_fim",
    "crb_from_fim",
    "snr_per_re_db",
    "processing_gain_db",
]

_C = SPEED_OF_LIGHT_MPS


# --------------------------------------------------------------------- checks


def _snr(snr: ArrayLike, name: str = "snr_re") -> NDArray[np.float64]:
    g = np.asarray(snr, dtype=float)
    if g.size == 0 or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise InputError(f"{name} = {snr!r} (linear power ratio): allowed finite values > 0; "
                         "convert dB with sdr_isac.units.db_to_linear(snr_db)")
    return g


def _positive(name: str, value: float, unit: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} = {value!r}: allowed a finite number > 0 {unit}; pass a number") from err
    if not np.isfinite(v) or v <= 0:
        raise InputError(f"{name} = {value!r} {unit}: allowed finite values > 0; pass a positive number of {unit}")
    return v


def _finite(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} = {value!r}: allowed a finite number of dB; pass a number") from err
    if not np.isfinite(v):
        raise InputError(f"{name} = {value!r}: allowed a finite number of dB; pass a number")
    return v


def _count(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{name} = {value!r}: allowed an integer >= {minimum}; pass a whole count of at least "
                         f"{minimum}")
    return int(value)


def _out(x: NDArray[np.float64]) -> NDArray[np.float64] | float:
    return float(x) if x.ndim == 0 else x


def _mask(mask: ArrayLike) -> NDArray[np.bool_]:
    m = np.asarray(mask)
    if m.ndim != 2 or m.dtype != np.bool_:
        raise InputError(f"mask has shape {m.shape} and dtype {m.dtype}: allowed a 2-D bool array of shape "
                         "(num_symbols, num_subcarriers); build it with a comparison, e.g. grid != 0")
    return m


def _symbol_times(symbol_times_s: ArrayLike, num_symbols: int) -> NDArray[np.float64]:
    t = np.asarray(symbol_times_s, dtype=float)
    if t.shape != (num_symbols,) or not np.all(np.isfinite(t)):
        raise InputError(f"symbol_times_s has shape {t.shape}: allowed {num_symbols} finite start times in s, one "
                         "per mask row; pass e.g. numpy.arange(num_symbols) * symbol_duration_s")
    return t


# ------------------------------------------------------------ full-grid bounds


def delay_crb_s2(snr_re: ArrayLike, num_subcarriers: int, num_symbols: int,
                 subcarrier_spacing_hz: float) -> NDArray[np.float64] | float:
    """CRB on the round-trip delay, s², full N x M grid.

    ``var(tau) >= 3 / (2 pi**2 df**2 gamma N M (N**2 - 1))``: the frequency
    bound of the module docstring with ``x = k df`` and
    ``sum (k - mean k)**2 = M N (N**2 - 1) / 12``; it is REFERENCE.md §3's
    range bound times ``(2 / c)**2``.

    Parameters
    ----------
    snr_re : float or array_like
        Per-RE SNR gamma, linear (> 0); an array gives one bound per entry.
    num_subcarriers : int
        N, >= 2.
    num_symbols : int
        M, >= 1.
    subcarrier_spacing_hz : float
        df, Hz (> 0).

    Returns
    -------
    float or ndarray, shape of ``snr_re``, float64
        Variance bound, s².
    """
    n = _count("num_subcarriers", num_subcarriers, 2)
    m = _count("num_symbols", num_symbols, 1)
    df = _positive("subcarrier_spacing_hz", subcarrier_spacing_hz, "Hz")
    g = _snr(snr_re)
    return _out(3.0 / (2.0 * np.pi**2 * df**2 * g * n * m * (n**2 - 1)))


def range_crb_m2(snr_re: ArrayLike, num_subcarriers: int, num_symbols: int,
                 subcarrier_spacing_hz: float) -> NDArray[np.float64] | float:
    """CRB on monostatic range, m², full N x M grid (REFERENCE.md §3).

    ``var(R) >= 3 c**2 / (8 pi**2 df**2 gamma N M (N**2 - 1))``, which is
    ``(c / 2)**2`` times :func:`delay_crb_s2` because ``R = c tau / 2``.

    Parameters
    ----------
    snr_re : float or array_like
        Per-RE SNR gamma, linear (> 0).
    num_subcarriers : int
        N, >= 2.
    num_symbols : int
        M, >= 1.
    subcarrier_spacing_hz : float
        df, Hz (> 0).

    Returns
    -------
    float or ndarray, shape of ``snr_re``, float64
        Variance bound, m².

    Examples
    --------
    REFERENCE.md §4, high band at -20 dB per RE:

    >>> round(range_crb_m2(0.01, 512, 64, 120e3) ** 0.5, 3)
    0.053
    """
    return _out(np.asarray(delay_crb_s2(snr_re, num_subcarriers, num_symbols, subcarrier_spacing_hz))
                * (_C / 2.0) ** 2)


def doppler_crb_hz2(snr_re: ArrayLike, num_subcarriers: int, num_symbols: int,
                    symbol_duration_s: float) -> NDArray[np.float64] | float:
    """CRB on the Doppler frequency, Hz², full N x M grid with symbols ``T_O`` apart.

    ``var(f_D) >= 3 / (2 pi**2 T_O**2 gamma N M (M**2 - 1))``: the frequency
    bound of the module docstring with ``x = l T_O`` and
    ``sum (l - mean l)**2 = N M (M**2 - 1) / 12``.

    Parameters
    ----------
    snr_re : float or array_like
        Per-RE SNR gamma, linear (> 0).
    num_subcarriers : int
        N, >= 1.
    num_symbols : int
        M, >= 2.
    symbol_duration_s : float
        T_O = 1 / df + T_CP, s (> 0).

    Returns
    -------
    float or ndarray, shape of ``snr_re``, float64
        Variance bound, Hz².
    """
    n = _count("num_subcarriers", num_subcarriers, 1)
    m = _count("num_symbols", num_symbols, 2)
    t_o = _positive("symbol_duration_s", symbol_duration_s, "s")
    g = _snr(snr_re)
    return _out(3.0 / (2.0 * np.pi**2 * t_o**2 * g * n * m * (m**2 - 1)))


def velocity_crb_mps2(snr_re: ArrayLike, num_subcarriers: int, num_symbols: int, carrier_hz: float,
                      symbol_duration_s: float) -> NDArray[np.float64] | float:
    """CRB on monostatic radial velocity, (m/s)², full N x M grid (REFERENCE.md §3).

    ``var(v) >= 3 c**2 / (8 pi**2 f_c**2 T_O**2 gamma N M (M**2 - 1))``, which
    is ``(c / (2 f_c))**2`` times :func:`doppler_crb_hz2` because
    ``v = -c f_D / (2 f_c)``.

    Parameters
    ----------
    snr_re : float or array_like
        Per-RE SNR gamma, linear (> 0).
    num_subcarriers : int
        N, >= 1.
    num_symbols : int
        M, >= 2.
    carrier_hz : float
        f_c, Hz (> 0).
    symbol_duration_s : float
        T_O = 1 / df + T_CP, s (> 0).

    Returns
    -------
    float or ndarray, shape of ``snr_re``, float64
        Variance bound, (m/s)².

    Examples
    --------
    REFERENCE.md §4, high band at -20 dB per RE:

    >>> round(velocity_crb_mps2(0.01, 512, 64, 24e9, 9.6633e-6) ** 0.5, 3)
    0.218
    """
    fc = _positive("carrier_hz", carrier_hz, "Hz")
    var_f = np.asarray(doppler_crb_hz2(snr_re, num_subcarriers, num_symbols, symbol_duration_s))
    return _out(var_f * (_C / (2.0 * fc)) ** 2)


def bistatic_range_sum_crb_m2(snr_re: ArrayLike, num_subcarriers: int, num_symbols: int,
                              subcarrier_spacing_hz: float) -> NDArray[np.float64] | float:
    """CRB on a bistatic range sum ``R_1 + R_2``, m², full N x M grid (REFERENCE.md §3).

    Four times :func:`range_crb_m2`.  Both bounds come from the same delay
    bound: a monostatic range is ``R = c tau / 2`` (the wave goes out and back
    over R), a bistatic range sum is ``R_1 + R_2 = c tau`` (the path length
    itself), so its standard deviation is twice as large for the same delay
    accuracy, and its variance ``c**2 var(tau) = 4 (c / 2)**2 var(tau)``.

    Parameters
    ----------
    snr_re, num_subcarriers, num_symbols, subcarrier_spacing_hz
        As :func:`range_crb_m2`.

    Returns
    -------
    float or ndarray, shape of ``snr_re``, float64
        Variance bound, m².
    """
    return _out(np.asarray(delay_crb_s2(snr_re, num_subcarriers, num_symbols, subcarrier_spacing_hz)) * _C**2)


def element_positions_wl(positions_wl: ArrayLike, field: str = "positions_wl") -> NDArray[np.float64]:
    """Element positions of an array, checked: shape (E,), float64, E >= 2 distinct finite values, wavelengths.

    Raises
    ------
    InputError
        Not a 1-D list of >= 2 distinct finite numbers (the message names ``field``).
    """
    try:
        p = np.asarray(positions_wl, dtype=float)
    except (TypeError, ValueError) as err:
        raise InputError(f"{field} = {positions_wl!r}: allowed a 1-D list of element positions in "
                         "wavelengths; pass e.g. 0.5 * numpy.arange(8)") from err
    if p.ndim != 1 or p.size < 2 or not np.all(np.isfinite(p)):
        raise InputError(f"{field} = {positions_wl!r}: allowed a 1-D list of >= 2 finite element positions "
                         "in wavelengths; pass e.g. 0.5 * numpy.arange(8)")
    if np.unique(p).size != p.size:
        raise InputError(f"{field} = {p.tolist()} wavelengths: allowed distinct positions; "
                         "remove the repeated element")
    return p


def angle_crb_rad2(snr_linear: ArrayLike, num_snapshots: int, positions_wl: ArrayLike,
                   angle_rad: ArrayLike, model: str = "deterministic") -> NDArray[np.float64] | float:
    """Cramér-Rao bound on the azimuth of one source at a linear array of any element positions, rad².

    ``x_k = s_k a(theta) + n_k`` with unknown complex ``s_k`` and white noise
    of variance ``sigma^2`` per element. With ``SNR`` = mean ``|s_k|^2 /
    sigma^2`` (signal power over noise power per element per snapshot)::

        var(theta) >= 1 / (2 SNR K (2 pi cos theta)^2 sum_n (p_n - mean(p))^2)

    For a ULA of ``N`` elements at spacing ``d`` wavelengths,
    ``sum (p_n - mean p)^2 = d^2 N (N^2 - 1) / 12`` and this is
    REFERENCE.md §3: ``6 / (SNR K N (N^2 - 1) (2 pi d)^2 cos^2 theta)``
    (Stoica & Nehorai, IEEE TASSP 1989). For circular Gaussian signals
    (``model="stochastic"``) the bound is larger by ``1 + 1 / (E SNR)``, ``E``
    elements (Stoica & Nehorai, IEEE TASSP 1990); MUSIC reaches it for one
    source as ``K`` grows.

    Parameters
    ----------
    snr_linear : array_like of float
        SNR per element per snapshot, linear (not dB), > 0.
    num_snapshots : int
        ``K`` >= 1.
    positions_wl : array_like, shape (E,), float
        Element positions, wavelengths.
    angle_rad : array_like of float
        True azimuth, rad, ``|angle| < pi / 2``; broadcasts with ``snr_linear``.
    model : {"deterministic", "stochastic"}
        Unknown deterministic amplitudes ``s_k`` (conditional model, REFERENCE.md
        §3) or circular Gaussian ``s_k`` of power ``SNR sigma^2`` (unconditional).

    Returns
    -------
    float or ndarray
        Variance bound, rad^2.

    Examples
    --------
    >>> round(float(np.degrees(np.sqrt(angle_crb_rad2(1.0, 32, 0.5 * np.arange(8), 0.0)))), 3)
    0.352
    """
    if model not in ("deterministic", "stochastic"):
        raise InputError(f"model = {model!r}: allowed 'deterministic' or 'stochastic'; "
                         "use 'deterministic' for REFERENCE.md §3")
    p = element_positions_wl(positions_wl)
    snr = np.asarray(snr_linear, dtype=float)
    theta = np.asarray(angle_rad, dtype=float)
    if not np.all(np.isfinite(snr)) or not np.all(snr > 0):
        raise InputError(f"snr_linear = {snr_linear!r}: allowed finite values > 0 (linear, not dB); "
                         "convert with 10 ** (snr_db / 10)")
    if isinstance(num_snapshots, bool) or not isinstance(num_snapshots, int | np.integer) or num_snapshots < 1:
        raise InputError(f"num_snapshots = {num_snapshots!r}: allowed an int >= 1")
    if not np.all(np.isfinite(theta)) or not np.all(np.abs(theta) < np.pi / 2):
        raise InputError(f"angle_rad = {angle_rad!r}: allowed |angle| < pi/2 rad (the bound diverges at "
                         "endfire); pass an azimuth inside the array's field of view")
    spread = float(np.sum((p - p.mean()) ** 2))
    out = 1.0 / (2.0 * snr * num_snapshots * (2.0 * np.pi * np.cos(theta)) ** 2 * spread)
    if model == "stochastic":
        out = out * (1.0 + 1.0 / (p.size * snr))
    return float(out) if out.ndim == 0 else out


# ----------------------------------------------------------------- mask bounds


def _centred_sum_sq(x: NDArray[np.float64]) -> float:
    return float(np.sum((x - x.mean()) ** 2))


def range_crb_m2_mask(snr_re: ArrayLike, mask: ArrayLike,
                      subcarrier_spacing_hz: float) -> NDArray[np.float64] | float:
    """CRB on monostatic range from an arbitrary set of REs, m², Doppler known.

    ``var(R) >= (c / 2)**2 / (8 pi**2 gamma df**2 sum_i (k_i - mean k)**2)``
    over the REs ``i`` with ``mask`` true (module docstring, ``x = k df``).
    This is the delay entry of the Fisher matrix alone, i.e. the bound when
    the Doppler is known or does not couple to the delay; it equals the
    joint bound of :func:`delay_doppler_crb` when the mask's subcarrier and
    symbol indices are uncorrelated (a rectangular grid, a comb repeated on
    every symbol).  A comb-K mask on every symbol (N / K subcarriers ``K j``)
    has ``S_kk = M K**2 (N / K) ((N / K)**2 - 1) / 12``: its bound is the full
    grid's times ``K (N**2 - 1) / (N**2 - K**2)``, about K (fewer REs over the
    same aperture).

    Parameters
    ----------
    snr_re : float or array_like
        Per-RE SNR gamma on the used REs, linear (> 0).
    mask : array_like, shape (M, N), bool
        True where the RE is used; rows are symbols, columns subcarriers
        (subcarrier index = column index).
    subcarrier_spacing_hz : float
        df, Hz (> 0).

    Returns
    -------
    float or ndarray, shape of ``snr_re``, float64
        Variance bound, m².

    Raises
    ------
    InputError
        If the mask is not 2-D bool or uses fewer than 2 distinct subcarriers
        (range is then not observable).
    """
    m = _mask(mask)
    df = _positive("subcarrier_spacing_hz", subcarrier_spacing_hz, "Hz")
    g = _snr(snr_re)
    _, k = np.nonzero(m)
    s_kk = _centred_sum_sq(k.astype(float))
    if s_kk == 0.0:
        raise InputError(f"mask uses {np.unique(k).size} distinct subcarrier(s): allowed at least 2 (range is not "
                         "observable from one subcarrier); add REs on other subcarriers")
    return _out((_C / 2.0) ** 2 / (8.0 * np.pi**2 * g * df**2 * s_kk))


def velocity_crb_mps2_mask(snr_re: ArrayLike, mask: ArrayLike, carrier_hz: float,
                           symbol_times_s: ArrayLike) -> NDArray[np.float64] | float:
    """CRB on monostatic radial velocity from an arbitrary set of REs, (m/s)², delay known.

    ``var(v) >= (c / (2 f_c))**2 / (8 pi**2 gamma sum_i (t_i - mean t)**2)``
    over the REs with ``mask`` true, ``t_i`` the start time of the RE's
    symbol (module docstring, ``x = t``).  As for
    :func:`range_crb_m2_mask`, this ignores delay–Doppler coupling; see
    :func:`delay_doppler_crb` for the joint bound.

    Parameters
    ----------
    snr_re : float or array_like
        Per-RE SNR gamma on the used REs, linear (> 0).
    mask : array_like, shape (M, N), bool
        True where the RE is used; rows are symbols, columns subcarriers.
    carrier_hz : float
        f_c, Hz (> 0).
    symbol_times_s : array_like, shape (M,), float
        Start time of each symbol (row of ``mask``), s; any origin.

    Returns
    -------
    float or ndarray, shape of ``snr_re``, float64
        Variance bound, (m/s)².

    Raises
    ------
    InputError
        If the REs span fewer than 2 distinct symbol times.
    """
    m = _mask(mask)
    fc = _positive("carrier_hz", carrier_hz, "Hz")
    t = _symbol_times(symbol_times_s, m.shape[0])
    g = _snr(snr_re)
    rows, _ = np.nonzero(m)
    s_tt = _centred_sum_sq(t[rows])
    if s_tt == 0.0:
        raise InputError(f"mask uses REs at {np.unique(t[rows]).size} distinct symbol time(s): allowed at least 2 "
                         "(Doppler is not observable from one instant); add REs on other symbols")
    return _out((_C / (2.0 * fc)) ** 2 / (8.0 * np.pi**2 * g * s_tt))


def delay_doppler_fim(snr_re: float, mask: ArrayLike, subcarrier_spacing_hz: float,
                      symbol_times_s: ArrayLike) -> NDArray[np.float64]:
    """Joint Fisher information of (delay, Doppler) from an arbitrary set of REs.

    Derivation (Kay 1993, ch. 15, Fisher information of a complex Gaussian
    with known covariance: ``J = (2 / sigma**2) Re{(d mu / d theta)^H (d mu / d theta)}``;
    the full-grid case is Rife & Boorstyn, "Single-tone parameter estimation
    from discrete-time observations", IEEE Trans. IT 20(5), 1974).
    With ``mu_i = |a| exp(j (psi + phi_i))``,
    ``phi_i = 2 pi (-k_i df tau + t_i f_D)`` and parameters
    ``(tau, f_D, psi, |a|)``:

    - ``|a|`` decouples (its derivative is in phase with ``mu``, the others
      in quadrature);
    - ``J_tau_tau = 2 gamma (2 pi df)**2 sum k_i**2``,
      ``J_fD_fD = 2 gamma (2 pi)**2 sum t_i**2``,
      ``J_tau_fD = -2 gamma (2 pi)**2 df sum k_i t_i``,
      ``J_tau_psi = -2 gamma 2 pi df sum k_i``, ``J_fD_psi = 2 gamma 2 pi sum t_i``,
      ``J_psi_psi = 2 gamma |S|``;
    - eliminating the nuisance phase (Schur complement) centres the sums:

    ::

        J = 8 pi**2 gamma [[ df**2 S_kk,  -df S_kt ],
                           [ -df S_kt,        S_tt ]],
        S_kk = sum (k_i - mean k)**2, S_tt = sum (t_i - mean t)**2,
        S_kt = sum (k_i - mean k)(t_i - mean t).

    Delay and Doppler decouple exactly when ``S_kt = 0``, which holds for a
    rectangular (product) index set and for any mask whose subcarrier and
    symbol indices are uncorrelated; a staggered comb (PRS) generally has
    ``S_kt != 0`` and its joint bound exceeds the single-parameter ones.

    Parameters
    ----------
    snr_re : float
        Per-RE SNR gamma on the used REs, linear (> 0).
    mask : array_like, shape (M, N), bool
        True where the RE is used; rows are symbols, columns subcarriers.
    subcarrier_spacing_hz : float
        df, Hz (> 0).
    symbol_times_s : array_like, shape (M,), float
        Start time of each symbol, s.

    Returns
    -------
    ndarray, shape (2, 2), float64
        Fisher information of ``(tau in s, f_D in Hz)``: units 1/s², 1, 1/Hz².
    """
    m = _mask(mask)
    df = _positive("subcarrier_spacing_hz", subcarrier_spacing_hz, "Hz")
    t_sym = _symbol_times(symbol_times_s, m.shape[0])
    g = _snr(snr_re)
    if g.ndim != 0:
        raise InputError(f"snr_re has shape {g.shape}: allowed a scalar here; call once per SNR")
    return 8.0 * np.pi**2 * float(g) * _centred_moments(m, df, t_sym)


def _centred_moments(m: NDArray[np.bool_], df: float, t_sym: NDArray[np.float64]) -> NDArray[np.float64]:
    """``[[df**2 S_kk, -df S_kt], [-df S_kt, S_tt]]`` of :func:`delay_doppler_fim`, remembered per (mask, df, times)
    (a Monte Carlo trial asks for the same pilots again and again); read-only."""
    return _moments_of(m.shape, m.tobytes(), df, t_sym.tobytes())


@functools.lru_cache(maxsize=32)
def _moments_of(shape: tuple[int, ...], mask_bytes: bytes, df: float, times_bytes: bytes) -> NDArray[np.float64]:
    """:func:`_centred_moments` of the mask and symbol times given by their bytes."""
    m = np.frombuffer(mask_bytes, dtype=bool).reshape(shape)
    t_sym = np.frombuffer(times_bytes, dtype=np.float64)
    # centred moments from the row and column counts of the mask (no list of the used REs)
    per_symbol = np.count_nonzero(m, axis=1)                     # REs used on each symbol
    per_subcarrier = np.count_nonzero(m, axis=0)
    used = int(per_symbol.sum())
    s_kk = s_tt = s_kt = 0.0
    if used:
        k = np.arange(m.shape[1], dtype=float)
        kc = k - float(k @ per_subcarrier) / used
        tc = t_sym - float(t_sym @ per_symbol) / used
        s_kk, s_tt = float((kc * kc) @ per_subcarrier), float((tc * tc) @ per_symbol)
        s_kt = float(tc @ np.einsum("lk,k->l", m, kc))          # no threaded BLAS over the whole mask
    moments = np.array([[df**2 * s_kk, -df * s_kt], [-df * s_kt, s_tt]])
    moments.flags.writeable = False
    return moments


def delay_doppler_crb(snr_re: float, mask: ArrayLike, subcarrier_spacing_hz: float,
                      symbol_times_s: ArrayLike) -> NDArray[np.float64]:
    """Joint CRB of (delay, Doppler): the inverse of :func:`delay_doppler_fim`.

    Scale the delay row/column by ``c / 2`` (``c`` bistatic) and the Doppler
    row/column by ``c / (2 f_c)`` (``c / f_c`` bistatic) for range and
    velocity.

    Parameters
    ----------
    snr_re, mask, subcarrier_spacing_hz, symbol_times_s
        As :func:`delay_doppler_fim`.

    Returns
    -------
    ndarray, shape (2, 2), float64
        Covariance bound of ``(tau in s, f_D in Hz)``.

    Raises
    ------
    InputError
        If the Fisher matrix is singular (REs on one subcarrier or one symbol,
        or all on one line of the grid).
    """
    return crb_from_fim(delay_doppler_fim(snr_re, mask, subcarrier_spacing_hz, symbol_times_s))


# -------------------------------------------------------------------- geometry


def paths_delay_doppler_crb(mask: ArrayLike, frequencies_hz: ArrayLike, times_s: ArrayLike, delays_s: ArrayLike,
                            dopplers_hz: ArrayLike, amplitudes: ArrayLike, noise_var: float) -> NDArray[np.float64]:
    """Cramér-Rao bound of the delays and Dopplers of P paths seen together on the REs of ``mask``.

    Slepian-Bangs (Kay 1993, eq. 15.52): ``J = (2 / sigma**2) Re(D^H D)``, D the derivatives of the mean
    ``sum_p a_cp exp(2 pi j (t f_p - k tau_p))`` by every real parameter (each path's delay and Doppler, and the
    real and imaginary part of each path's amplitude on each of the C channels, the nuisances), stacked over
    channels.  Unlike :func:`delay_doppler_crb` (one path) it holds the paths' coupling, which dominates for
    paths closer than a resolution cell.

    Parameters
    ----------
    mask : array_like of bool, shape (S, K)
    frequencies_hz : array_like, shape (K,)
        Subcarrier frequencies, Hz.
    times_s : array_like, shape (S,)
        Symbol times, s.
    delays_s, dopplers_hz : array_like, shape (P,)
    amplitudes : array_like, shape (C, P), complex
        Each path's amplitude per RE on each channel.
    noise_var : float
        Noise variance per RE (> 0).

    Returns
    -------
    ndarray, shape (2P, 2P)
        ``(tau_1, f_1, tau_2, f_2, ...)``: s and Hz.
    """
    m = _mask(mask)
    freq = np.asarray(frequencies_hz, dtype=np.float64)
    times = np.asarray(times_s, dtype=np.float64)
    taus, fds = np.asarray(delays_s, dtype=np.float64).ravel(), np.asarray(dopplers_hz, dtype=np.float64).ravel()
    amps = np.atleast_2d(np.asarray(amplitudes, dtype=np.complex128))
    num_paths = taus.size
    if fds.size != num_paths or amps.shape[1] != num_paths or freq.shape != (m.shape[1],) or \
            times.shape != (m.shape[0],):
        raise InputError(f"{num_paths} delays, {fds.size} Dopplers, amplitudes {amps.shape}, {freq.size} frequencies, "
                         f"{times.size} times for a {m.shape} mask: allowed P delays and Dopplers, (C, P) amplitudes, "
                         "K frequencies and S times")
    _positive("noise_var", noise_var, "per RE")
    # in units of 1 / bandwidth and 1 / duration: the Fisher matrix is then well conditioned
    unit_tau = 1.0 / max(float(np.ptp(freq)), 1e-300)
    unit_f = 1.0 / max(float(np.ptp(times)), 1e-300)
    nuisance = 2 * num_paths
    units = np.tile([unit_tau, unit_f], num_paths)
    used_rows, used_cols = m.any(axis=1), m.any(axis=0)
    if np.count_nonzero(used_rows) * np.count_nonzero(used_cols) == np.count_nonzero(m):
        # a product mask (every RE of the used symbols on the used subcarriers): each column of D is an outer
        # product over (symbol, subcarrier), so every entry of D^H D is a product of a sum over the symbols
        # and a sum over the subcarriers: O(P**2 (S + K)) instead of O(P**2 C**2 S K)
        gram = _separable_gram(times[used_rows], freq[used_cols], taus, fds, amps, unit_tau, unit_f)
    else:
        rows, cols = np.nonzero(m)
        gram = _dense_gram(times[rows], freq[cols], taus, fds, amps, unit_tau, unit_f)
    fim = (2.0 / noise_var) * gram.real
    return np.asarray(crb_from_fim(fim)[:nuisance, :nuisance] * np.outer(units, units), dtype=np.float64)


def _separable_gram(times: NDArray[np.float64], freq: NDArray[np.float64], taus: NDArray[np.float64],
                    fds: NDArray[np.float64], amps: NDArray[np.complex128], unit_tau: float,
                    unit_f: float) -> NDArray[np.complex128]:
    """``D^H D`` of :func:`paths_delay_doppler_crb` on the product of ``times`` (used symbols) and ``freq``
    (used subcarriers), in the columns' order of :func:`_dense_gram`."""
    num_channels, num_paths = amps.shape
    slow = np.exp(2j * np.pi * np.multiply.outer(fds, times))                      # (P, S)
    along = np.exp(-2j * np.pi * np.multiply.outer(taus, freq))                   # (P, K)
    # the three shapes of column per path: delay derivative, Doppler derivative, the pattern itself
    left = np.concatenate([slow, (2j * np.pi * unit_f) * times * slow, slow])                     # (3P, S)
    right = np.concatenate([(-2j * np.pi * unit_tau) * freq * along, along, along])               # (3P, K)
    order = np.ravel(np.column_stack([np.arange(num_paths), num_paths + np.arange(num_paths)]))   # tau_p, f_p
    shapes = np.concatenate([order, 2 * num_paths + np.arange(num_paths)])        # derivatives, then patterns
    g = (left.conj() @ left.T) * (right.conj() @ right.T)                         # (3P, 3P): <shape_i, shape_j>
    g = g[shapes][:, shapes]
    path_of = np.repeat(np.arange(num_paths), 2)                                   # derivative column -> path
    nuisance = 2 * num_paths
    size = nuisance + 2 * num_paths * num_channels
    out = np.empty((size, size), dtype=np.complex128)
    aa = amps.conj().T @ amps                                                      # (P, P): sum_c conj(a_cp) a_cq
    out[:nuisance, :nuisance] = aa[path_of][:, path_of] * g[:nuisance, :nuisance]
    # derivative i against channel c's nuisances (re, im of path q, interleaved): conj(a_c,p(i)) <d_i, b_q> (1, j)
    blocks = amps.conj()[:, path_of][:, :, None] * g[None, :nuisance, nuisance:]   # (C, 2P, P)
    upper = (blocks[..., None] * _RE_IM).reshape(num_channels, nuisance, nuisance)  # (C, 2P, 2P)
    out[:nuisance, nuisance:] = upper.transpose(1, 0, 2).reshape(nuisance, -1)
    out[nuisance:, :nuisance] = out[:nuisance, nuisance:].conj().T
    # a channel's nuisances against its own (others: 0): <b_p, b_q> times (1, j; -j, 1), interleaved
    out[nuisance:, nuisance:] = np.kron(np.eye(num_channels), np.kron(g[nuisance:, nuisance:], _RE_IM_GRAM))
    return out


#: the real and imaginary nuisance columns of an amplitude: b and j b
_RE_IM = np.array([1.0, 1.0j])
#: their inner products: <b, b>, <b, j b>; <j b, b>, <j b, j b> over <b, b>
_RE_IM_GRAM = np.array([[1.0, 1.0j], [-1.0j, 1.0]])


def _dense_gram(t: NDArray[np.float64], k: NDArray[np.float64], taus: NDArray[np.float64],
                fds: NDArray[np.float64], amps: NDArray[np.complex128], unit_tau: float,
                unit_f: float) -> NDArray[np.complex128]:
    """``D^H D`` of :func:`paths_delay_doppler_crb` from the columns of D over the used REs (times ``t`` and
    frequencies ``k`` of each): each path's delay and Doppler derivative (scaled by the units), then the real and
    imaginary part of each channel's amplitude of each path."""
    num_channels, num_paths = amps.shape
    n = t.size
    nuisance = 2 * num_paths
    columns = np.zeros((num_channels * n, nuisance + 2 * num_paths * num_channels), dtype=np.complex128)
    for p in range(num_paths):
        pattern = np.exp(2j * np.pi * (t * fds[p] - k * taus[p]))
        for c in range(num_channels):
            block = slice(c * n, (c + 1) * n)
            a = amps[c, p]
            columns[block, 2 * p] = a * (-2j * np.pi * unit_tau) * k * pattern
            columns[block, 2 * p + 1] = a * (2j * np.pi * unit_f) * t * pattern
            columns[block, nuisance + 2 * num_paths * c + 2 * p] = pattern
            columns[block, nuisance + 2 * num_paths * c + 2 * p + 1] = 1j * pattern
    return np.asarray(columns.conj().T @ columns)


def measurement_matrix(node_positions_m: ArrayLike, target_m: ArrayLike,
                       links: Sequence[tuple[int, int]] | None = None) -> NDArray[np.float64]:
    """Jacobian H of range (or radial-velocity) measurements w.r.t. target position.

    A monostatic link ``(i, i)`` measures ``r = ||p - b_i||`` (row
    ``u_i^T``, ``u_i = (p - b_i) / ||p - b_i||``); a bistatic link
    ``(tx, rx)`` measures the range sum ``||p - b_tx|| + ||p - b_rx||`` (row
    ``(u_tx + u_rx)^T``) (REFERENCE.md §3).  The same rows map a target
    velocity vector to monostatic radial velocities and bistatic range rates
    (static nodes).

    Parameters
    ----------
    node_positions_m : array_like, shape (B, D), float
        Node positions, m; D = 2 or 3.
    target_m : array_like, shape (D,), float
        Target position, m; must differ from every node position used.
    links : sequence of (int, int), optional
        One ``(tx_node, rx_node)`` pair per measurement, node indices into
        ``node_positions_m``; equal indices mean monostatic.  Default: every
        node monostatic, ``[(0, 0), (1, 1), ...]``.

    Returns
    -------
    ndarray, shape (L, D), float64
        One row per link.
    """
    b = np.asarray(node_positions_m, dtype=float)
    p = np.asarray(target_m, dtype=float)
    if b.ndim != 2 or b.shape[1] not in (2, 3) or p.shape != (b.shape[1],) or not (
            np.all(np.isfinite(b)) and np.all(np.isfinite(p))):
        raise InputError(f"node_positions_m has shape {b.shape} and target_m {p.shape}: allowed (B, D) and (D,) "
                         "finite positions in m with D = 2 or 3; pass one row per node")
    pairs = np.array([(i, i) for i in range(b.shape[0])] if links is None else list(links))
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.shape[0] == 0 or not np.issubdtype(pairs.dtype, np.integer) \
            or pairs.min() < 0 or pairs.max() >= b.shape[0]:
        raise InputError(f"links = {links!r}: allowed a non-empty list of (tx_node, rx_node) integer pairs, "
                         f"indices 0 ... {b.shape[0] - 1}; use (i, i) for a monostatic node")
    diff = p[None, :] - b
    dist = np.linalg.norm(diff, axis=1)
    used = np.unique(pairs)
    if np.any(dist[used] == 0):
        raise InputError(f"target_m = {p.tolist()} m coincides with node(s) {used[dist[used] == 0].tolist()}: "
                         "allowed a target away from every node (the direction is undefined there); move it")
    u = diff / np.where(dist == 0, 1.0, dist)[:, None]
    mono = pairs[:, 0] == pairs[:, 1]
    return np.where(mono[:, None], u[pairs[:, 0]], u[pairs[:, 0]] + u[pairs[:, 1]])


def _inv_cov(variances: ArrayLike, num: int, name: str) -> NDArray[np.float64]:
    s = np.asarray(variances, dtype=float)
    if s.ndim == 0:
        s = np.full(num, float(s))
    if s.shape == (num,):
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise InputError(f"{name} = {s.tolist()}: allowed finite variances > 0; pass one per link")
        return np.diag(1.0 / s)
    if s.shape == (num, num) and np.all(np.isfinite(s)) and np.allclose(s, s.T):
        try:
            np.linalg.cholesky(s)
        except np.linalg.LinAlgError as err:
            raise InputError(f"{name} is a ({num}, {num}) matrix that is not positive definite: allowed a "
                             "covariance matrix; check its entries") from err
        return np.linalg.inv(s)
    raise InputError(f"{name} has shape {s.shape}: allowed a scalar, ({num},) variances or a symmetric ({num}, "
                     f"{num}) covariance, one entry per link")


def position_fim(node_positions_m: ArrayLike, target_m: ArrayLike, range_variances_m2: ArrayLike,
                 links: Sequence[tuple[int, int]] | None = None) -> NDArray[np.float64]:
    """Fisher information of the target position from range measurements: ``H^T Sigma^-1 H``.

    Parameters
    ----------
    node_positions_m, target_m, links
        As :func:`measurement_matrix`.
    range_variances_m2 : float or array_like, shape (L,) or (L, L)
        Variance of each measurement (monostatic range or bistatic range
        sum), m², or their covariance Sigma; a scalar applies to every link.

    Returns
    -------
    ndarray, shape (D, D), float64
        Fisher information, 1/m².
    """
    h = measurement_matrix(node_positions_m, target_m, links)
    return h.T @ _inv_cov(range_variances_m2, h.shape[0], "range_variances_m2") @ h


def position_crb(node_positions_m: ArrayLike, target_m: ArrayLike, range_variances_m2: ArrayLike,
                 links: Sequence[tuple[int, int]] | None = None) -> NDArray[np.float64]:
    """CRB of the target position from ranges: ``(H^T Sigma^-1 H)^-1`` (REFERENCE.md §3).

    The bound of the model linearised at ``target_m`` (Kay 1993, §3.9);
    the range variances come from e.g. :func:`range_crb_m2` (monostatic) or
    :func:`bistatic_range_sum_crb_m2`.  For 4 monostatic nodes at equal
    distance on a circle, 90° apart, ``H^T H = 2 I`` (2-D) and the bound is
    ``sigma**2 / 2 I``.

    Parameters
    ----------
    node_positions_m, target_m, range_variances_m2, links
        As :func:`position_fim`.

    Returns
    -------
    ndarray, shape (D, D), float64
        Covariance bound, m².

    Raises
    ------
    InputError
        If the geometry does not determine the position (fewer independent
        rows than dimensions, e.g. collinear nodes and target).

    Examples
    --------
    >>> nodes = [[10.0, 0.0], [0.0, 10.0], [-10.0, 0.0], [0.0, -10.0]]
    >>> position_crb(nodes, [0.0, 0.0], 0.04).round(6).tolist()
    [[0.02, 0.0], [0.0, 0.02]]
    """
    return crb_from_fim(position_fim(node_positions_m, target_m, range_variances_m2, links))


def velocity_vector_crb(node_positions_m: ArrayLike, target_m: ArrayLike, velocity_variances_mps2: ArrayLike,
                        links: Sequence[tuple[int, int]] | None = None) -> NDArray[np.float64]:
    """CRB of the target velocity vector from radial velocities: ``(H^T Sigma^-1 H)^-1``.

    A monostatic radial velocity is ``u_i^T v`` and a bistatic range rate
    ``(u_tx + u_rx)^T v`` for static nodes, so H is
    :func:`measurement_matrix` (REFERENCE.md §3).  The target position is
    taken as known.

    Parameters
    ----------
    node_positions_m, target_m, links
        As :func:`measurement_matrix`.
    velocity_variances_mps2 : float or array_like, shape (L,) or (L, L)
        Variance of each radial velocity (monostatic) or range rate
        (bistatic), (m/s)², or their covariance.

    Returns
    -------
    ndarray, shape (D, D), float64
        Covariance bound, (m/s)².
    """
    h = measurement_matrix(node_positions_m, target_m, links)
    return crb_from_fim(h.T @ _inv_cov(velocity_variances_mps2, h.shape[0], "velocity_variances_mps2") @ h)


def gdop(h: ArrayLike) -> float:
    """Geometric dilution of precision ``sqrt(trace((H^T H)^-1))``.

    Position standard deviation per unit range standard deviation for equal,
    independent range errors (Kaplan & Hegarty, *Understanding GPS*, 2nd ed.,
    ch. 7, dilution of precision).

    Parameters
    ----------
    h : array_like, shape (L, D), float
        Measurement matrix, e.g. from :func:`measurement_matrix`.

    Returns
    -------
    float
        GDOP, dimensionless.
    """
    hm = np.asarray(h, dtype=float)
    if hm.ndim != 2 or not np.all(np.isfinite(hm)):
        raise InputError(f"h has shape {hm.shape}: allowed a finite 2-D (L, D) matrix; build it with "
                         "measurement_matrix")
    return float(np.sqrt(np.trace(crb_from_fim(hm.T @ hm))))


def fuse_fim(*fims: ArrayLike) -> NDArray[np.float64]:
    """Fisher information of independent measurements together: their sum (REFERENCE.md §3).

    Parameters
    ----------
    *fims : array_like, each shape (D, D), float
        Fisher matrices of the same parameters, in the same units.

    Returns
    -------
    ndarray, shape (D, D), float64
        The summed Fisher information.
    """
    mats = [np.asarray(f, dtype=float) for f in fims]
    if not mats or any(f.ndim != 2 or f.shape != mats[0].shape or f.shape[0] != f.shape[1] for f in mats):
        raise InputError(f"fims have shapes {[f.shape for f in mats]}: allowed one or more square matrices of one "
                         "shape (D, D); pass Fisher matrices of the same parameters")
    return np.sum(mats, axis=0)


def crb_from_fim(fim: ArrayLike) -> NDArray[np.float64]:
    """The CRB: the inverse of a Fisher information matrix.

    Parameters
    ----------
    fim : array_like, shape (D, D), float
        Symmetric positive definite Fisher information.

    Returns
    -------
    ndarray, shape (D, D), float64
        Its inverse.

    Raises
    ------
    InputError
        If a diagonal entry is <= 0 or the matrix, scaled to a unit diagonal,
        has a condition number above 1e12: some parameter combination is not
        observable.
    """
    j = np.asarray(fim, dtype=float)
    if j.ndim != 2 or j.shape[0] != j.shape[1] or not np.all(np.isfinite(j)):
        raise InputError(f"fim has shape {j.shape}: allowed a finite square matrix")
    diag = np.diag(j)
    if np.any(diag <= 0):
        raise InputError(f"Fisher matrix has diagonal {diag.tolist()}: allowed entries > 0; parameter(s) "
                         f"{np.flatnonzero(diag <= 0).tolist()} are not observable (e.g. REs on one subcarrier or "
                         "symbol); add measurements that resolve them")
    scale = 1.0 / np.sqrt(diag)
    j_norm = j * np.outer(scale, scale)          # unit diagonal: the condition number ignores units
    cond = np.linalg.cond(j_norm)
    if not np.isfinite(cond) or cond > 1e12:
        raise InputError(f"Fisher matrix has condition number {cond:.3g} (diagonal scaled to 1): allowed <= 1e12; "
                         "some parameter combination is not observable (e.g. collinear nodes, REs on one line of "
                         "the grid); add measurements that resolve it")
    return np.linalg.inv(j_norm) * np.outer(scale, scale)


# ----------------------------------------------------------------- link budget


def snr_per_re_db(tx_power_dbm: float, tx_gain_dbi: float, rx_gain_dbi: float, carrier_hz: float, rcs_m2: float,
                  range_tx_m: float, range_rx_m: float, noise_figure_db: float, sample_rate_hz: float,
                  fft_size: int, num_subcarriers: int) -> float:
    """Per-RE SNR of a point target after the OFDM FFT, dB (bistatic radar equation).

    Received power (bistatic radar equation: N. J. Willis, ch. 23 of Skolnik,
    *Radar Handbook*, 3rd ed., 2008, eq. 23.1, without losses)::

        P_r = P_t G_t G_r lambda**2 sigma / ((4 pi)**3 R_1**2 R_2**2)

    noise in the sampled band ``N = k T0 f_s F``.  With a unitary FFT of size
    N_FFT the noise variance per bin equals the per-sample noise power, and
    the transmit power spread evenly over the K used subcarriers puts
    ``P N_FFT / K`` in each of them, so

    ::

        gamma = P_r (N_FFT / K) / (k T0 f_s F)  (= P_r / (k T0 F K df), f_s = N_FFT df).

    Assumptions: all K subcarriers carry unit-power symbols (``tx_power_dbm``
    is the mean transmit power while the symbols are on the air), the CP is
    ignored (it costs no per-RE SNR: the receiver discards it), losses and
    RCS fluctuation are not modelled.  Monostatic: ``range_tx_m = range_rx_m``.

    Parameters
    ----------
    tx_power_dbm : float
        Mean transmit power P_t, dBm.
    tx_gain_dbi, rx_gain_dbi : float
        Antenna gains towards the target, dBi.
    carrier_hz : float
        f_c, Hz (> 0).
    rcs_m2 : float
        Radar cross section sigma, m² (> 0).
    range_tx_m, range_rx_m : float
        Transmitter-target and target-receiver distances R_1, R_2, m (> 0).
    noise_figure_db : float
        Receiver noise figure F, dB (>= 0).
    sample_rate_hz : float
        f_s, Hz (> 0): the noise bandwidth.
    fft_size : int
        N_FFT, >= 1.
    num_subcarriers : int
        K used subcarriers, 1 ... N_FFT.

    Returns
    -------
    float
        Per-RE SNR gamma, dB.
    """
    pt, gt, gr, nf = (_finite(name, value) for name, value in (
        ("tx_power_dbm", tx_power_dbm), ("tx_gain_dbi", tx_gain_dbi), ("rx_gain_dbi", rx_gain_dbi),
        ("noise_figure_db", noise_figure_db)))
    fc = _positive("carrier_hz", carrier_hz, "Hz")
    rcs = _positive("rcs_m2", rcs_m2, "m2")
    r1 = _positive("range_tx_m", range_tx_m, "m")
    r2 = _positive("range_rx_m", range_rx_m, "m")
    fs = _positive("sample_rate_hz", sample_rate_hz, "Hz")
    if nf < 0:
        raise InputError(f"noise_figure_db = {noise_figure_db!r} dB: allowed finite values >= 0; pass the "
                         "receiver's noise figure")
    n_fft = _count("fft_size", fft_size, 1)
    k = _count("num_subcarriers", num_subcarriers, 1)
    if k > n_fft:
        raise InputError(f"num_subcarriers = {k}: allowed 1 ... fft_size = {n_fft}; use fewer subcarriers or a "
                         "larger FFT")
    lam = _C / fc
    p_r_db = (pt - 30.0 + gt + gr
              + 10.0 * np.log10(lam**2 * rcs / ((4.0 * np.pi) ** 3 * r1**2 * r2**2)))
    noise_db = 10.0 * np.log10(BOLTZMANN_J_PER_K * REFERENCE_TEMPERATURE_K * fs) + nf
    return float(p_r_db + 10.0 * np.log10(n_fft / k) - noise_db)


def processing_gain_db(num_subcarriers: int, num_symbols: int) -> float:
    """Coherent processing gain of an N x M grid, ``10 log10(N M)`` dB (REFERENCE.md §3).

    >>> round(processing_gain_db(512, 64), 2)
    45.15
    """
    n = _count("num_subcarriers", num_subcarriers, 1)
    m = _count("num_symbols", num_symbols, 1)
    return float(10.0 * np.log10(n * m))
