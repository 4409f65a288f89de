"""Resource-level cooperation inside one node: space (antennas) and time (frames).

The article's §III-A ("resource perspective") fuses the channel information
that one node gathers on several resources.  This module holds the common
single-target estimator and the space and time cases; reference signals are
in :mod:`sdr_isac.fusion.signals` and code-multiplexed ports in
:mod:`sdr_isac.fusion.codes`.

Model (:mod:`sdr_isac.channel.cim`): channel ``c`` measures on its REs::

    H_c[m, k] = a_c exp(-j 2 pi k df tau) exp(+j 2 pi f_D t_m) + w_c[m, k],  w ~ CN(0, sigma_c**2),

with one delay ``tau`` and Doppler ``f_D`` shared by every channel (the same
target) and a complex amplitude ``a_c`` of its own (antenna steering phase,
frame phase, port).  ``f_D = -2 v f_c / c`` (monostatic): positive radial
velocity, moving away, gives a negative Doppler.

- :func:`estimate_delay_doppler`: maximum-likelihood ``(tau, f_D)`` with the
  ``a_c`` unknown, i.e. the maximum of the summed periodograms
  ``sum_c |d(f)^H H_c a(tau)|**2 / sigma_c**2`` (Stoica & Moses, *Spectral
  Analysis of Signals*, 2005, §4.3 for one channel; independent channels add
  log-likelihoods), found on a zero-padded FFT grid and refined by
  Newton's method (:mod:`sdr_isac.sensing.estimate`).  Its bound is the sum of the channels' Fisher informations
  (:func:`channels_fim`, REFERENCE.md §3: fusing adds Fisher information).
- Space: :func:`coherent_combine` estimates each antenna's phase from the
  data (the complex value of its delay-Doppler map at the fused peak) and
  adds the antennas with maximum-ratio weights: the SNR per RE grows by
  ``10 log10(C)`` dB for C equal antennas (array gain).
  :func:`splice_apertures` joins sub-arrays with unknown initial phases (one
  local oscillator each) into one aperture, estimating each phase offset from
  the elements the sub-apertures share (the overlap element of TDM-MIMO
  virtual arrays) and refining it with the angle (:func:`ml_angle`).
  :func:`sparse_array_cost`: a sparse array's difference co-array resolves
  more sources than elements (:class:`sdr_isac.sensing.doa.CoarrayMusicEstimator`),
  at an SNR cost against the full array of the same aperture (article §III-A-2).
- Time: :func:`accumulate_frames` puts F frames side by side, coherently
  (one long coherent processing interval: the velocity resolution improves F
  times and the velocity variance bound about F**3 times) or non-coherently
  (one amplitude per frame: the periodograms add, the bound improves F times).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft as sp_fft
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError
from sdr_isac.sensing.crb import angle_crb_rad2, crb_from_fim, delay_doppler_fim
from sdr_isac.sensing.doa import difference_coarray
from sdr_isac.sensing.estimate import grid_peak, look, ml_angle, refine, resolvable_steps
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["DelayDopplerEstimate", "as_channels", "delay_doppler_power", "estimate_delay_doppler",
           "refine_delay_doppler", "channel_amplitudes", "channels_fim", "range_velocity_crb", "peak_sidelobe_ratio_db",
           "coherent_combine", "ml_angle", "splice_apertures", "splice_angle_crb_rad2",
           "sparse_array_cost", "FrameAccumulation", "accumulate_frames"]


# ------------------------------------------------------------------ validation


def as_channels(h: ArrayLike, mask: ArrayLike | None = None) -> tuple[NDArray[np.complex128], NDArray[np.bool_]]:
    """``h`` as ``(C, M, K)`` complex128 and ``mask`` as ``(C, M, K)`` bool (default: the non-zero REs).

    Parameters
    ----------
    h : array_like, shape (M, K) or (C, M, K), complex
        CIMs, rows symbols, columns subcarriers.
    mask : array_like, shape (M, K) or (C, M, K), bool, optional
        Measured REs, one mask for every channel or one per channel.
    """
    x = np.asarray(h)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[1] < 1 or x.shape[2] < 2:
        raise InputError(f"h has shape {np.shape(h)}: allowed (M, K) or (C, M, K) CIMs, rows symbols, columns "
                         "subcarriers, K >= 2")
    x = x.astype(np.complex128)
    m = (x != 0) if mask is None else np.asarray(mask)
    if m.dtype != np.bool_ or m.shape not in (x.shape, x.shape[1:]):
        raise InputError(f"mask has shape {m.shape} and dtype {m.dtype}: allowed bool of shape {x.shape[1:]} or "
                         f"{x.shape}, True on the measured REs")
    m = np.broadcast_to(m, x.shape)
    if not np.all(m.any(axis=(1, 2))):
        raise InputError("a channel has no measured RE: allowed at least one True entry of mask per channel")
    if not np.all(np.isfinite(x[m])):
        raise InputError("h has NaN or infinite entries on measured REs: allowed finite complex values")
    return np.where(m, x, 0), m


def _times(symbol_times_s: ArrayLike, num_symbols: int) -> NDArray[np.float64]:
    t = np.asarray(symbol_times_s, dtype=np.float64)
    if t.shape != (num_symbols,) or not np.all(np.isfinite(t)) or (t.size > 1 and np.any(np.diff(t) <= 0)):
        raise InputError(f"symbol_times_s has shape {t.shape}: allowed {num_symbols} increasing finite start times "
                         "in s, one per CIM row; pass e.g. numpy.arange(M) * symbol_period_s")
    return t


def _positive(name: str, value: float, unit: str) -> float:
    v = float(value)
    if not (np.isfinite(v) and v > 0):
        raise InputError(f"{name} = {value!r} {unit}: allowed a finite number > 0")
    return v


def _whole(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise InputError(f"{name} = {value!r}: allowed a whole number >= {minimum}")
    return int(value)


# ------------------------------------------------------------ common estimator


@dataclass(frozen=True)
class DelayDopplerEstimate:
    """One target's round-trip delay (s) and Doppler shift (Hz); range and velocity follow from the carrier."""

    delay_s: float
    doppler_hz: float

    def range_m(self, speed_of_light_mps: float = SPEED_OF_LIGHT_MPS) -> float:
        """Monostatic range ``c tau / 2``, m."""
        return speed_of_light_mps * self.delay_s / 2.0

    def velocity_mps(self, carrier_hz: float, speed_of_light_mps: float = SPEED_OF_LIGHT_MPS) -> float:
        """Monostatic radial velocity ``-c f_D / (2 f_c)``, m/s (positive: moving away)."""
        return -speed_of_light_mps * self.doppler_hz / (2.0 * carrier_hz)


def _row_index(t: NDArray[np.float64]) -> tuple[NDArray[np.int64], float]:
    """Row of each symbol on a uniform time grid of the smallest symbol step (frames with gaps leave empty rows)."""
    if t.size == 1:
        return np.zeros(1, dtype=np.int64), 1.0
    step = float(np.min(np.diff(t)))
    return np.rint((t - t[0]) / step).astype(np.int64), step


def delay_doppler_power(h: ArrayLike, symbol_times_s: ArrayLike, mask: ArrayLike | None = None,
                        oversample: int = 2, noise_vars: ArrayLike | None = None) -> NDArray[np.float64]:
    """Summed periodogram of the channels on a zero-padded delay-Doppler grid.

    The package's one map layout (as :class:`sdr_isac.sensing.rdmap.RangeDopplerMap`
    and :func:`sdr_isac.fusion.multiband.band_map`): rows delay, columns Doppler
    centred.  Cell ``(i, j)``: delay ``tau = i / (L K df)``, Doppler
    ``f_D = (j - floor(L M_u / 2)) / (L M_u T)``, with ``T`` the smallest symbol
    step, ``M_u`` the rows of the uniform time grid and ``L = oversample``.  Each channel's
    periodogram ``|sum_{m,k} H_c exp(-j 2 pi f t_m) exp(+j 2 pi k df tau)|**2``
    is divided by ``n_c sigma_c**2`` (its noise level; ``sigma_c = 1`` when
    ``noise_vars`` is omitted) before the channels are added.

    Returns
    -------
    ndarray, shape (L K, L M_u), float64
    """
    x, m = as_channels(h, mask)
    t = _times(symbol_times_s, x.shape[1])
    lo = _whole("oversample", oversample, 1)
    rows, _ = _row_index(t)
    s2 = _noise_vars(noise_vars, x.shape[0])
    grid = np.zeros((x.shape[0], lo * (int(rows[-1]) + 1), lo * x.shape[2]), dtype=np.complex128)
    grid[:, rows, : x.shape[2]] = x
    spec = sp_fft.fft(sp_fft.ifft(grid, axis=2, norm="forward"), axis=1)
    n = m.sum(axis=(1, 2))
    power = np.sum(np.abs(spec) ** 2 / (n * s2)[:, None, None], axis=0)
    return np.asarray(sp_fft.fftshift(power, axes=0).T, dtype=np.float64)


def _noise_vars(noise_vars: ArrayLike | None, num_channels: int) -> NDArray[np.float64]:
    s2 = np.ones(num_channels) if noise_vars is None else \
        np.broadcast_to(np.asarray(noise_vars, float), (num_channels,))
    if not np.all(np.isfinite(s2)) or np.any(s2 <= 0):
        raise InputError(f"noise_vars = {noise_vars!r}: allowed finite variances > 0 per RE, one per channel")
    return s2


def _grid_peak(power: NDArray[np.float64], m: NDArray[np.bool_], df: float, rows: NDArray[np.int64], step: float,
               max_delay_s: float | None, max_doppler_hz: float | None) -> tuple[float, float, float, float]:
    """(tau0, f0, delay bin, Doppler bin) of the strongest cell in the delay and Doppler ranges the REs resolve.

    REs on every g-th row of the time grid (``rows``: each symbol's row) give a periodogram that repeats every
    ``1 / (g T)`` in Doppler: g equal peaks, of which only ``|f_D| < 1 / (2 g T)`` is searched (as the delay
    axis, for columns ``g_k`` apart); a prior (``max_doppler_hz``) narrows it further.
    """
    n_delay, n_dopp = power.shape
    delay_bin = 1.0 / (n_delay * df)
    dopp_bin = 1.0 / (n_dopp * step)
    limit = 1.0 / (resolvable_steps([m])[1] * df)
    if max_delay_s is not None:
        limit = min(limit, _positive("max_delay_s", max_delay_s, "s") + delay_bin)
    freqs = (np.arange(n_dopp) - n_dopp // 2) * dopp_bin
    max_f = np.inf if max_doppler_hz is None else _positive("max_doppler_hz", max_doppler_hz, "Hz") + dopp_bin
    g_m = int(np.gcd.reduce(np.diff(rows[m.any(axis=(0, 2))]), initial=0))
    if g_m > 1:                                          # the Doppler aliases of REs g_m rows apart
        max_f = min(max_f, (n_dopp / (2.0 * g_m) - 0.5) * dopp_bin)
    j, i = grid_peak(power, np.arange(n_delay) * delay_bin, freqs, limit, max_f)
    return j * delay_bin, float(freqs[i]), delay_bin, dopp_bin


def estimate_delay_doppler(h: ArrayLike, symbol_times_s: ArrayLike, subcarrier_spacing_hz: float,
                           mask: ArrayLike | None = None, noise_vars: ArrayLike | None = None,
                           max_delay_s: float | None = None, oversample: int = 2,
                           refine: bool = True, power: ArrayLike | None = None,
                           max_doppler_hz: float | None = None) -> DelayDopplerEstimate:
    """Maximum-likelihood delay and Doppler of the strongest target seen by one or more channels.

    Peak of :func:`delay_doppler_power` inside the delay range the REs
    resolve (``[0, 1 / (g df))`` for each channel's subcarriers ``g`` apart:
    the summed periodogram repeats with that period; narrowed by
    ``max_delay_s``) and Doppler ``|f_D| < 1 / (2 g T)`` for REs on every
    g-th symbol (likewise; narrowed by ``max_doppler_hz``), then
    :func:`refine_delay_doppler` on the measured REs.

    Parameters
    ----------
    h : array_like, shape (M, K) or (C, M, K), complex
        CIMs; column k is subcarrier offset ``k df``; one amplitude per channel.
    symbol_times_s : array_like, shape (M,)
        Start time of each row's symbol, s, increasing.
    subcarrier_spacing_hz : float
        df, Hz (> 0).
    mask : array_like, shape (M, K) or (C, M, K), bool, optional
        Measured REs; default the non-zero entries.
    noise_vars : array_like, shape (C,), optional
        Noise variance per RE of each channel (weights); default equal.
    max_delay_s : float, optional
        Largest delay searched, s (a prior).
    oversample : int
        Zero-padding factor of the grid (>= 1).
    refine : bool
        Off-grid refinement; False returns the grid peak.
    power : array_like, optional
        A map to take the grid peak from instead of the periodogram of ``h``
        (e.g. of a completed CIM, :mod:`sdr_isac.fusion.signals`), in the
        layout of :func:`delay_doppler_power`.
    max_doppler_hz : float, optional
        Largest ``|f_D|`` searched, Hz (a prior on the speed).

    Returns
    -------
    DelayDopplerEstimate
    """
    x, m = as_channels(h, mask)
    t = _times(symbol_times_s, x.shape[1])
    df = _positive("subcarrier_spacing_hz", subcarrier_spacing_hz, "Hz")
    rows, step = _row_index(t)
    pw = delay_doppler_power(x, t, m, oversample, noise_vars) if power is None else np.asarray(power, float)
    if power is not None:
        k, m_u = x.shape[2], int(rows[-1]) + 1
        lo = pw.shape[0] // k if pw.ndim == 2 else 0
        if pw.ndim != 2 or lo < 1 or pw.shape != (lo * k, lo * m_u):
            raise InputError(f"power has shape {pw.shape}: allowed the layout of delay_doppler_power for these REs, "
                             f"(L * {k} delay bins, L * {m_u} Doppler bins) for a whole L >= 1 (rows delay, columns "
                             "Doppler); a transposed or cropped map would give another delay and Doppler")
    tau0, f0, delay_bin, dopp_bin = _grid_peak(pw, m, df, rows, step, max_delay_s, max_doppler_hz)
    if not refine:
        return DelayDopplerEstimate(float(tau0), float(f0))
    return refine_delay_doppler(x, t, df, DelayDopplerEstimate(tau0, f0), (delay_bin, dopp_bin), m, noise_vars)


def refine_delay_doppler(h: ArrayLike, symbol_times_s: ArrayLike, subcarrier_spacing_hz: float,
                         start: DelayDopplerEstimate, steps: tuple[float, float], mask: ArrayLike | None = None,
                         noise_vars: ArrayLike | None = None) -> DelayDopplerEstimate:
    """Off-grid maximum of ``sum_c |d(f)^H H_c a(tau)|**2 / (n_c sigma_c**2)`` near ``start``.

    :func:`sdr_isac.sensing.estimate.refine` (Newton on the exact derivatives,
    jointly over the channels) within a grid cell ``steps`` = (delay s,
    Doppler Hz) at a time; a result more than 4 cells away is rejected (it
    left the peak's lobe) and ``start`` is returned.
    """
    x, m = as_channels(h, mask)
    t = _times(symbol_times_s, x.shape[1])
    df = _positive("subcarrier_spacing_hz", subcarrier_spacing_hz, "Hz")
    s2 = _noise_vars(noise_vars, x.shape[0])
    s_tau, s_f = (_positive("steps", s, "(s, Hz)") for s in steps)
    k = np.arange(x.shape[2]) * df
    looks = [look(x[c], m[c], k, t, float(s2[c])) for c in range(x.shape[0])]
    tau, f = refine(looks, (start.delay_s, start.doppler_hz), (s_tau, s_f), max_cells=4.0)
    return DelayDopplerEstimate(tau, f)


def channel_amplitudes(h: ArrayLike, symbol_times_s: ArrayLike, subcarrier_spacing_hz: float,
                       est: DelayDopplerEstimate, mask: ArrayLike | None = None) -> NDArray[np.complex128]:
    """Least-squares complex amplitude ``a_c`` of each channel at the estimated delay and Doppler.

    ``a_c = d^H H_c a / n_c``: the matched filter of the measured REs
    (exact least squares for one target).

    Returns
    -------
    ndarray, shape (C,), complex128
    """
    x, m = as_channels(h, mask)
    t = _times(symbol_times_s, x.shape[1])
    k = np.arange(x.shape[2]) * _positive("subcarrier_spacing_hz", subcarrier_spacing_hz, "Hz")
    a = np.exp(2j * np.pi * k * est.delay_s)
    d = np.exp(-2j * np.pi * t * est.doppler_hz)
    return np.asarray(np.einsum("cm,m->c", np.einsum("cmk,k->cm", x, a), d) / m.sum(axis=(1, 2)),
                      dtype=np.complex128)


def channels_fim(snr_re: ArrayLike, masks: ArrayLike, subcarrier_spacing_hz: float,
                 symbol_times_s: ArrayLike) -> NDArray[np.float64]:
    """Fisher information of ``(tau in s, f_D in Hz)`` from channels with independent amplitudes: the sum.

    :func:`sdr_isac.sensing.crb.delay_doppler_fim` of each channel (its own
    unknown complex amplitude eliminated), added (REFERENCE.md §3).

    Parameters
    ----------
    snr_re : float or array_like, shape (C,)
        Per-RE SNR of each channel, linear (> 0).
    masks : array_like, shape (M, K) or (C, M, K), bool
        Measured REs of each channel.
    subcarrier_spacing_hz : float
    symbol_times_s : array_like, shape (M,)

    Returns
    -------
    ndarray, shape (2, 2), float64
    """
    m = np.asarray(masks)
    if m.dtype != np.bool_ or m.ndim not in (2, 3):
        raise InputError(f"masks has shape {m.shape} and dtype {m.dtype}: allowed bool (M, K) or (C, M, K)")
    g = np.atleast_1d(np.asarray(snr_re, dtype=np.float64))
    c = max(g.size, 1 if m.ndim == 2 else m.shape[0])
    m3 = np.broadcast_to(m, (c,) + m.shape[-2:])
    g = np.broadcast_to(g, (c,))
    return np.sum([delay_doppler_fim(float(g[i]), m3[i], subcarrier_spacing_hz, symbol_times_s) for i in range(c)],
                  axis=0)


def range_velocity_crb(fim: ArrayLike, carrier_hz: float,
                       speed_of_light_mps: float = SPEED_OF_LIGHT_MPS) -> tuple[float, float]:
    """(var range m², var velocity (m/s)²) bounds from a ``(tau, f_D)`` Fisher matrix (monostatic)."""
    crb = crb_from_fim(fim)
    fc = _positive("carrier_hz", carrier_hz, "Hz")
    return float(crb[0, 0] * (speed_of_light_mps / 2.0) ** 2), float(crb[1, 1] * (speed_of_light_mps / (2.0 * fc)) ** 2)


def peak_sidelobe_ratio_db(power: ArrayLike, guard: tuple[int, int] = (4, 4)) -> float:
    """Peak sidelobe ratio of a (cyclic) delay-Doppler power map, dB (<= 0; lower is better).

    ``10 log10(max sidelobe / main peak)``: the largest cell outside the
    rectangle of ``guard`` cells around the peak (on each axis, cyclic),
    which should cover the main lobe: one native bin on each side, i.e.
    ``oversample`` cells on a zero-padded map.  A full rectangular grid gives
    the sinc's first sidelobe, -13.26 dB (Harris, Proc. IEEE 66(1), 1978).

    Parameters
    ----------
    power : array_like, shape (A, B), float
        Power map (linear), e.g. :func:`delay_doppler_power`.
    guard : (int, int)
        Half-widths of the main-lobe rectangle in cells, axis 0 and axis 1.
    """
    p = np.asarray(power, dtype=np.float64)
    if p.ndim != 2 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.max() <= 0:
        raise InputError(f"power has shape {p.shape}: allowed a finite non-negative 2-D map with a peak > 0")
    g0, g1 = (_whole("guard", g, 0) for g in guard)
    if 2 * g0 + 1 >= p.shape[0] and 2 * g1 + 1 >= p.shape[1]:
        raise InputError(f"guard = {guard} covers the whole {p.shape} map: allowed a main-lobe rectangle smaller "
                         "than the map")
    i, j = np.unravel_index(int(np.argmax(p)), p.shape)
    d0 = np.abs((np.arange(p.shape[0]) - i + p.shape[0] // 2) % p.shape[0] - p.shape[0] // 2)
    d1 = np.abs((np.arange(p.shape[1]) - j + p.shape[1] // 2) % p.shape[1] - p.shape[1] // 2)
    main = (d0[:, None] <= g0) & (d1[None, :] <= g1)
    side = float(np.max(np.where(main, 0.0, p)))
    return float(10.0 * np.log10(max(side, np.finfo(float).tiny) / p[i, j]))


# ---------------------------------------------------------------------- space


def coherent_combine(cims: ArrayLike, symbol_times_s: ArrayLike, subcarrier_spacing_hz: float,
                     mask: ArrayLike | None = None,
                     weights: ArrayLike | None = None) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
    """Phase-compensate the antennas' CIMs and add them coherently (maximum-ratio combining).

    Without ``weights`` the phase and gain of each antenna are estimated from
    the data: the non-coherent sum of the antennas' periodograms gives the
    target's delay and Doppler (:func:`estimate_delay_doppler`, full
    processing gain ``N M``), and each antenna's complex value there
    (:func:`channel_amplitudes`) is its weight's conjugate.  The combination
    ``sum_c w_c* H_c / ||w||`` keeps the noise variance per RE and multiplies
    the signal power by ``sum_c |a_c|**2 / |a_1|**2``: ``10 log10(C)`` dB
    for C equal antennas (maximum-ratio combining, Brennan, Proc. IRE 47(6),
    1959).  The target's delay and Doppler stay as they were.

    Parameters
    ----------
    cims : array_like, shape (C, M, K), complex
        One CIM per antenna, same REs, equal noise variance per RE.
    symbol_times_s : array_like, shape (M,)
        Symbol start times, s.
    subcarrier_spacing_hz : float
        df, Hz.
    mask : array_like, shape (M, K), bool, optional
        Measured REs (default: non-zero entries of the first antenna).
    weights : array_like, shape (C,), complex, optional
        Known steering vector (calibrated array, known direction) instead of
        the estimate.

    Returns
    -------
    combined : ndarray, shape (M, K), complex128
    weights : ndarray, shape (C,), complex128
        The steering estimate used (unit norm).
    """
    x = np.asarray(cims)
    if x.ndim != 3 or x.shape[0] < 1:
        raise InputError(f"cims has shape {x.shape}: allowed (C, M, K), one CIM per antenna")
    m2 = (x[0] != 0) if mask is None else np.asarray(mask)
    x, m = as_channels(x, m2)
    if weights is None:
        est = estimate_delay_doppler(x, symbol_times_s, subcarrier_spacing_hz, m)
        w = channel_amplitudes(x, symbol_times_s, subcarrier_spacing_hz, est, m)
    else:
        w = np.asarray(weights, dtype=np.complex128)
        if w.shape != (x.shape[0],) or not np.all(np.isfinite(w)):
            raise InputError(f"weights has shape {w.shape}: allowed ({x.shape[0]},) finite complex, one per antenna")
    norm = float(np.linalg.norm(w))
    if norm == 0:
        raise InputError("weights are all zero: allowed a steering vector with at least one non-zero entry")
    w = w / norm
    return np.einsum("c,cmk->mk", w.conj(), x), w


def _positions(name: str, positions_wl: ArrayLike) -> NDArray[np.float64]:
    p = np.atleast_1d(np.asarray(positions_wl, dtype=np.float64))
    if p.ndim != 1 or p.size < 1 or not np.all(np.isfinite(p)):
        raise InputError(f"{name} = {positions_wl!r}: allowed a 1-D array of element positions in wavelengths")
    return p


def _snapshots(name: str, x: ArrayLike, num: int) -> NDArray[np.complex128]:
    s = np.asarray(x, dtype=np.complex128)
    if s.ndim == 1:
        s = s[:, None]
    if s.ndim != 2 or s.shape[0] != num or not np.all(np.isfinite(s)):
        raise InputError(f"{name} has shape {np.shape(x)}: allowed ({num},) or ({num}, K) finite snapshots, one row "
                         "per element")
    return s


def splice_apertures(subarrays: Sequence[ArrayLike], positions_wl: Sequence[ArrayLike],
                     num_refinements: int = 2) -> tuple[NDArray[np.complex128], NDArray[np.float64],
                                                        NDArray[np.float64], float]:
    """Join sub-arrays with unknown initial phases into one aperture.

    Each sub-array ``i`` (its own local oscillator or transmit chain) sees
    ``x_i = exp(j phi_i) s a_i(theta) + n_i`` with an unknown phase
    ``phi_i`` (``phi_0 = 0``).  Initial-phase estimation: each sub-array
    after the first must share at least one element position with the
    sub-arrays before it (overlapping apertures, as the overlap element of a
    TDM-MIMO virtual array, or a switched array moved by less than its
    length); there both see the same field, so
    ``phi_i = arg sum_{shared, k} x_i x_j*`` (plus the phase of the
    reference sub-array).  The phases are then refined with the angle: with
    ``theta`` from the spliced aperture (:func:`ml_angle`),
    ``phi_i = arg(a_i^H x_i (a_0^H x_0)*)`` uses every element, which
    alternates to the joint maximum-likelihood estimate.

    Parameters
    ----------
    subarrays : sequence of array_like, each shape (E_i,) or (E_i, K), complex
        Snapshots of each sub-array (K equal).
    positions_wl : sequence of array_like, each shape (E_i,)
        Element positions of each sub-array, wavelengths, in one frame.
    num_refinements : int
        Angle/phase alternations after the overlap estimate (>= 0).

    Returns
    -------
    snapshots : ndarray, shape (sum E_i, K), complex128
        All elements, phase-compensated.
    positions_wl : ndarray, shape (sum E_i,)
    phases_rad : ndarray, shape (len(subarrays),)
        Estimated initial phase of each sub-array (the first is 0).
    angle_rad : float
        The spliced aperture's maximum-likelihood azimuth.
    """
    if len(subarrays) != len(positions_wl) or not subarrays:
        raise InputError(f"{len(subarrays)} sub-arrays and {len(positions_wl)} position lists: allowed one position "
                         "list per sub-array, at least one")
    pos = [_positions(f"positions_wl[{i}]", p) for i, p in enumerate(positions_wl)]
    xs = [_snapshots(f"subarrays[{i}]", x, p.size) for i, (x, p) in enumerate(zip(subarrays, pos, strict=True))]
    if len({x.shape[1] for x in xs}) != 1:
        raise InputError(f"sub-arrays have {[x.shape[1] for x in xs]} snapshots: allowed the same number in each")
    phases = np.zeros(len(xs))
    for i in range(1, len(xs)):
        acc = 0j
        for j in range(i):
            shared_i, shared_j = np.nonzero(np.isclose(pos[i][:, None], pos[j][None, :], atol=1e-9))
            acc += np.sum(xs[i][shared_i] * np.conj(xs[j][shared_j] * np.exp(-1j * phases[j])))
        if acc == 0:
            raise InputError(f"sub-array {i} shares no element position with sub-arrays 0 ... {i - 1}: allowed "
                             "overlapping apertures (at least one common position) to estimate its initial phase")
        phases[i] = float(np.angle(acc))
    all_pos = np.concatenate(pos)

    def spliced() -> NDArray[np.complex128]:
        return np.concatenate([x * np.exp(-1j * ph) for x, ph in zip(xs, phases, strict=True)])

    theta = ml_angle(spliced(), all_pos)
    for _ in range(_whole("num_refinements", num_refinements, 0)):
        beams = [np.einsum("e,ek->k", np.exp(-2j * np.pi * p * np.sin(theta)), x) for p, x in zip(pos, xs, strict=True)]
        ref = beams[0]
        phases = np.array([0.0] + [float(np.angle(np.sum(b * ref.conj()))) for b in beams[1:]])
        theta = ml_angle(spliced(), all_pos)
    return spliced(), all_pos, phases, theta


def splice_angle_crb_rad2(snr_linear: float, num_snapshots: int, positions_wl: Sequence[ArrayLike],
                          angle_rad: float, phases_known: bool = False) -> float:
    """CRB on the azimuth from sub-arrays with unknown initial phases (nuisance parameters), rad².

    Deterministic model with one complex amplitude per snapshot: the phase of
    element n is ``psi_k + 2 pi p_n sin theta + phi_i(n)``; the Fisher
    information of the phase parameters is ``2 SNR sum_n g_n g_n^T`` with
    ``g_n = (2 pi p_n cos theta, e_i(n), 1)`` per snapshot (Kay 1993, §15.7;
    the amplitude modulus decouples), and the unknown ``phi_1 ...`` are
    eliminated by inverting the full matrix.  ``phases_known=True`` (or one
    sub-array) gives :func:`sdr_isac.sensing.crb.angle_crb_rad2` of all
    elements, ``1 / (2 SNR K (2 pi cos theta)**2 sum (p_n - mean p)**2)``
    (shared positions counted once per sub-array).

    Parameters
    ----------
    snr_linear : float
        SNR per element per snapshot, linear (> 0).
    num_snapshots : int
    positions_wl : sequence of array_like
        Positions of each sub-array, wavelengths.
    angle_rad : float
        True azimuth, |angle| < pi/2.
    phases_known : bool
        Calibrated sub-arrays (no nuisance phases).
    """
    pos = [_positions(f"positions_wl[{i}]", p) for i, p in enumerate(positions_wl)]
    all_pos = np.concatenate(pos)
    snr = _positive("snr_linear", snr_linear, "(linear)")
    k = _whole("num_snapshots", num_snapshots, 1)
    if not abs(angle_rad) < np.pi / 2:
        raise InputError(f"angle_rad = {angle_rad!r}: allowed |angle| < pi/2 rad (the bound diverges at endfire)")
    nuisance = 0 if phases_known else len(pos) - 1
    which = np.concatenate([np.full(p.size, i) for i, p in enumerate(pos)])
    g = np.column_stack([2 * np.pi * all_pos * np.cos(angle_rad)]
                        + [(which == i).astype(float) for i in range(1, 1 + nuisance)] + [np.ones(all_pos.size)])
    return float(crb_from_fim(2.0 * snr * k * g.T @ g)[0, 0])


def sparse_array_cost(positions_wl: ArrayLike, spacing_wl: float = 0.5, snr_linear: float = 1.0,
                      num_snapshots: int = 1, angle_rad: float = 0.0) -> dict[str, float]:
    """What a sparse array gains (sources resolved) and costs (SNR, accuracy) against the full array.

    The full array is the ULA on every grid position of the same aperture
    (``E_full = (p_max - p_min) / spacing + 1`` elements).  With the same
    per-element SNR, the sparse array collects ``E / E_full`` of the energy:
    an array-gain cost of ``10 log10(E_full / E)`` dB.  The single-source
    angle bound (:func:`sdr_isac.sensing.crb.angle_crb_rad2`) scales with
    ``1 / sum (p_n - mean p)**2``; their ratio is the accuracy cost (article
    §III-A-2: sparse arrays trade SNR for degrees of freedom).

    Returns
    -------
    dict
        ``num_elements``, ``num_elements_full``, ``max_sources`` (co-array
        ``U``), ``max_sources_full`` (``E_full - 1``), ``snr_cost_db``,
        ``crb_angle_rad`` and ``crb_angle_full_rad`` (√CRB),
        ``crb_ratio`` (variance ratio sparse / full).
    """
    p = _positions("positions_wl", positions_wl)
    ca = difference_coarray(p, spacing_wl)
    span = int(round((p.max() - p.min()) / spacing_wl))
    full = p.min() + spacing_wl * np.arange(span + 1)
    var_s = float(angle_crb_rad2(snr_linear, num_snapshots, p, angle_rad))
    var_f = float(angle_crb_rad2(snr_linear, num_snapshots, full, angle_rad))
    return {"num_elements": float(p.size), "num_elements_full": float(full.size),
            "max_sources": float(ca.num_virtual_elements - 1), "max_sources_full": float(full.size - 1),
            "snr_cost_db": float(10.0 * np.log10(full.size / p.size)),
            "crb_angle_rad": float(np.sqrt(var_s)), "crb_angle_full_rad": float(np.sqrt(var_f)),
            "crb_ratio": var_s / var_f}


# ----------------------------------------------------------------------- time


@dataclass(frozen=True)
class FrameAccumulation:
    """Frames arranged for :func:`estimate_delay_doppler`.

    Attributes
    ----------
    h : ndarray, shape (C, M', K), complex128
        Coherent: one channel of ``F M`` rows; non-coherent: ``F`` channels of ``M`` rows.
    symbol_times_s : ndarray, shape (M',)
    mask : ndarray, shape (C, M', K), bool
    """

    h: NDArray[np.complex128]
    symbol_times_s: NDArray[np.float64]
    mask: NDArray[np.bool_]


def accumulate_frames(cims: ArrayLike, symbol_times_s: ArrayLike, frame_period_s: float, coherent: bool = True,
                      mask: ArrayLike | None = None) -> FrameAccumulation:
    """Accumulate F frames of one channel, coherently or not.

    Coherent: the frames form one coherent processing interval of ``F M``
    symbols at times ``t_m + f T_F`` (frame ``f``); a target whose phase runs
    on across frames then has a Doppler resolution ``1 / (F M T)`` instead of
    ``1 / (M T)`` (REFERENCE.md §3: ``dv = c / (2 f_c M T_O)`` with M -> F M)
    and, for contiguous frames, a velocity variance bound smaller by about
    ``F**3``.  Non-coherent: the frames stay separate channels with their own
    amplitude (phase not kept across frames, or not trusted); the estimator
    adds their periodograms, the resolution stays ``1 / (M T)`` and the
    bound improves ``F`` times (Fisher informations add).

    Parameters
    ----------
    cims : array_like, shape (F, M, K), complex
        One CIM per frame.
    symbol_times_s : array_like, shape (M,)
        Symbol start times within a frame, s.
    frame_period_s : float
        Time from one frame's start to the next, s (>= the frame's length).
    coherent : bool
    mask : array_like, shape (M, K), bool, optional
        Measured REs of every frame (default: non-zero entries of the first).

    Returns
    -------
    FrameAccumulation
    """
    x = np.asarray(cims)
    if x.ndim != 3 or x.shape[0] < 1:
        raise InputError(f"cims has shape {x.shape}: allowed (F, M, K), one CIM per frame")
    m2 = (x[0] != 0) if mask is None else np.asarray(mask)
    x, m = as_channels(x, m2)
    t = _times(symbol_times_s, x.shape[1])
    tf = _positive("frame_period_s", frame_period_s, "s")
    step = float(np.median(np.diff(t))) if t.size > 1 else tf
    if tf < t[-1] - t[0] + 0.5 * step:
        raise InputError(f"frame_period_s = {frame_period_s!r} s: allowed >= the frame's length "
                         f"{t[-1] - t[0] + step:.6g} s; frames must not overlap")
    if not coherent:
        return FrameAccumulation(x, t, m)
    f = x.shape[0]
    times = (t[None, :] + tf * np.arange(f)[:, None]).reshape(-1)
    return FrameAccumulation(x.reshape(1, f * x.shape[1], x.shape[2]), times,
                             m.reshape(1, f * x.shape[1], x.shape[2]))
