"""Detections: peaks of the range-Doppler map, refined off the grid, with SNR, angle and CRB variances.

Refinement maximises the unwindowed periodogram (the maximum-likelihood
estimator of one target in white noise) around each grid peak:
P(tau, f) = sum_c |sum_kl m_kl H_c(k, l) exp(j 2 pi (k df tau - f t_l))|**2,
alternating one-dimensional searches in delay and Doppler (the two are nearly
decoupled on a full grid): Newton's method on the analytic derivatives of the
periodogram, restarted from the best of a few points, and a bounded scalar
search where neither finds a concave peak.  The amplitude at the optimum gives the
SNR per RE; the noise variance of H comes from the median of the map.  Each
estimate carries its Cramér-Rao variance at that SNR (REFERENCE.md §3; the
joint delay-Doppler Fisher matrix of the RE mask actually used), so fusion can
weight by it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.optimize as sp_opt
import scipy.stats as sp_stats
from numpy.typing import NDArray

from sdr_isac.sensing.crb import angle_crb_rad2, crb_from_fim, delay_doppler_fim
from sdr_isac.sensing.rdmap import RangeDopplerMap
from sdr_isac.sensing.scratch import work_array
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["Detection", "Echo", "clean", "detect_all", "find_peaks", "refine", "noise_variance", "subtract"]

#: Newton steps before the refinement falls back to the bounded scalar search (it converges in 3 to 5)
_NEWTON_STEPS = 16
#: points over the search interval from whose best Newton restarts when it fails from the grid peak
_RESTART_POINTS = 9
#: OpenBLAS runs a matrix-vector product of this many elements or more on several threads; on a busy
#: machine those threads wait for each other for milliseconds.  The refinement's products over H go as
#: stacks of smaller products instead (one thread each; the same time on an idle machine).
_BLAS_THREADED_ELEMENTS = 4096


@dataclass(frozen=True)
class Detection:
    """One detected echo.

    Attributes
    ----------
    range_m : float
        Monostatic range, or bistatic range sum (see ``geometry``), m.
    velocity_mps : float
        Radial velocity (positive away) or rate of the range sum, m/s.
    doppler_hz : float
        Doppler shift, Hz (monostatic: f_D = -2 v f_c / c).
    delay_s : float
        Round-trip (or bistatic) delay, s.
    snr_db : float
        Estimated SNR per resource element per channel, dB.
    geometry : str
        ``monostatic`` or ``bistatic``.
    angle_rad : float or None
        Angle from broadside of the receive ULA, towards its +y end, rad:
        asin of the direction's component along the array axis (the azimuth
        for a target in the array's horizontal plane; a ULA measures a cone
        angle).  Assumes a uniform array with ``element_spacing_wavelengths``.
    range_var_m2, velocity_var_mps2 : float
        Cramér-Rao variances at the estimated SNR, m² and (m/s)².
    angle_var_rad2 : float or None
        Cramér-Rao variance of the angle, rad².
    map_snr_db : float
        Peak power over the mean noise power of the map, dB.
    """

    range_m: float
    velocity_mps: float
    doppler_hz: float
    delay_s: float
    snr_db: float
    geometry: str
    angle_rad: float | None
    range_var_m2: float
    velocity_var_mps2: float
    angle_var_rad2: float | None
    map_snr_db: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)


def noise_variance(rd: RangeDopplerMap, num_channels: int) -> float:
    """Noise variance of H per RE from the median of the map (robust to a few targets).

    A noise cell of one channel is exponential with mean sigma**2 * noise_gain;
    the sum over C channels is Gamma(C) distributed, whose median is known.
    The median is taken over a regular subsample of about 50 000 cells.
    """
    step = max(1, int(math.sqrt(rd.power.size / 50_000)))
    cells = rd.power[::step, ::step].flatten()                 # a copy, partitioned in place
    half = cells.size // 2
    if cells.size % 2:
        cells.partition(half)
        median = float(cells[half])
    else:                                                      # np.median: the mean of the middle two
        cells.partition((half - 1, half))
        median = float(np.mean(cells[half - 1: half + 1]))
    return median / (rd.noise_gain * _gamma_median(num_channels))


@functools.lru_cache(maxsize=64)
def _gamma_median(num_channels: int) -> float:
    return float(sp_stats.gamma.ppf(0.5, num_channels))


@functools.lru_cache(maxsize=256)
def significance_threshold(pfa: float, num_channels: int) -> float:
    """Threshold on a cell's power over its mean noise power, averaged over C channels, for false-alarm
    probability ``pfa``: the mean of C unit exponentials is Gamma(C, 1/C)."""
    return float(sp_stats.gamma.isf(pfa, num_channels) / num_channels)


def find_peaks(power: NDArray[np.float32], mask: NDArray[np.bool_], max_peaks: int,
               wrap_range: bool = True) -> list[tuple[int, int]]:
    """Local maxima (3 x 3, Doppler circular, range circular if ``wrap_range``) among CFAR hits, strongest first.

    ``mask`` (the CFAR hits) may cover only the first rows of ``power``.
    """
    rows, cols = np.divmod(np.flatnonzero(mask), mask.shape[1])       # (2-D nonzero is many times slower)
    if rows.size == 0:
        return []
    n_r, n_d = power.shape
    value = power[rows, cols]
    is_max = np.ones(rows.size, dtype=bool)
    for dr in (-1, 0, 1):
        for dd in (-1, 0, 1):
            if dr or dd:        # both axes circular: delay wraps at 1 / df like Doppler at 1 / T
                r_n = (rows + dr) % n_r if wrap_range else np.clip(rows + dr, 0, n_r - 1)
                neighbour = power[r_n, (cols + dd) % n_d]
                is_max &= value >= neighbour
    keep = np.nonzero(is_max)[0]
    order = keep[np.argsort(value[keep])[::-1][:max_peaks]]
    return [(int(rows[i]), int(cols[i])) for i in order]


def _parabolic(y_m: float, y_0: float, y_p: float) -> float:
    y_m, y_0, y_p = float(y_m), float(y_0), float(y_p)            # float64, not the map's float32
    denom = y_m - 2 * y_0 + y_p
    return 0.5 * (y_m - y_p) / denom if denom < 0 else 0.0


@dataclass(frozen=True, eq=False)
class _MaskStats:
    """What the refinement needs of the RE mask, computed once per mask."""

    per_symbol: NDArray[np.float64]        # (S,) REs used on each symbol
    used: int
    full: bool                             # every RE used
    unit_fim: NDArray[np.float64]          # delay-Doppler Fisher information at SNR 1 (linear in the SNR)

    @classmethod
    def of(cls, mask: NDArray[np.bool_], subcarrier_spacing_hz: float,
           symbol_times_s: NDArray[np.float64]) -> _MaskStats:
        """The statistics of ``mask``; kept for the last read-only mask that owns its data (a frame's)."""
        times = np.asarray(symbol_times_s, dtype=np.float64)
        last = _LAST_STATS.get("stats")
        if last is not None and last[0] is mask and last[1] == subcarrier_spacing_hz and \
                np.array_equal(last[2], times):
            return last[3]
        per_symbol = np.count_nonzero(mask, axis=1).astype(float)
        used = int(per_symbol.sum())
        stats = cls(per_symbol, used, used == mask.size, delay_doppler_fim(1.0, mask, subcarrier_spacing_hz, times))
        if not mask.flags.writeable and mask.base is None:
            _LAST_STATS["stats"] = (mask, subcarrier_spacing_hz, times.copy(), stats)
        return stats


#: the last mask's statistics (holding the mask keeps its identity unique)
_LAST_STATS: dict[str, tuple[NDArray[np.bool_], float, NDArray[np.float64], _MaskStats]] = {}


def refine(h: NDArray[np.complexfloating], mask: NDArray[np.bool_], rd: RangeDopplerMap, peak: tuple[int, int],
           subcarrier_spacing_hz: float, symbol_times_s: NDArray[np.float64], carrier_hz: float,
           noise_var: float, do_refine: bool, angle_spacing_wl: float | None,
           static_removed: bool = False) -> tuple[Detection, NDArray[np.complex128], NDArray[np.complex128]]:
    """Refine one grid peak into a :class:`Detection` (see the module docstring).

    Parameters
    ----------
    h : ndarray, shape (C, S, K), complex128
        Channel information matrix, zero off the mask (earlier, stronger
        detections may already have been subtracted from it).
    static_removed : bool
        H had each subcarrier's mean over the symbols removed: the Doppler
        model is projected the same way (ML for the notched data).

    Returns
    -------
    detection : Detection
    amplitude : ndarray, shape (C,), complex128
        Per-channel complex amplitude of the echo in H.
    model : ndarray, shape (S, K), complex128
        The echo's unit-amplitude pattern on the mask (to subtract it).
    """
    stats = _MaskStats.of(mask, subcarrier_spacing_hz, symbol_times_s)
    det, amplitude, slow, along = _refine(h, mask, stats, rd, peak, subcarrier_spacing_hz, symbol_times_s, carrier_hz,
                                          noise_var, do_refine, angle_spacing_wl, static_removed)
    return det, amplitude, np.outer(slow, along) * mask


def _refine(h: NDArray[np.complexfloating], mask: NDArray[np.bool_], stats: _MaskStats, rd: RangeDopplerMap,
            peak: tuple[int, int], subcarrier_spacing_hz: float, symbol_times_s: NDArray[np.float64],
            carrier_hz: float, noise_var: float, do_refine: bool, angle_spacing_wl: float | None,
            static_removed: bool, pending: list[Echo] | None = None) -> tuple[Detection, NDArray[np.complex128],
                                                                              NDArray[np.complex128],
                                                                              NDArray[np.complex128]]:
    """:func:`refine` returning the echo's pattern as its two factors: model = outer(slow, along) * mask.

    ``pending``: echoes not yet subtracted from ``h`` (full masks only), taken out of its products.
    """
    r, d = peak
    n_r, n_d = rd.power.shape
    dtau = rd.delay_step_s or 1.0 / (n_r * subcarrier_spacing_hz)
    dfd = float(rd.doppler_hz[1] - rd.doppler_hz[0]) if n_d > 1 else 0.0
    p = rd.power
    tau0 = (r + (_parabolic(p[r - 1, d], p[r, d], p[r + 1, d]) if 0 < r < n_r - 1 else 0.0)) * dtau
    fd0 = rd.doppler_hz[d] + _parabolic(p[r, (d - 1) % n_d], p[r, d], p[r, (d + 1) % n_d]) * dfd
    k = np.arange(h.shape[2])
    range_rate = (2 * math.pi * subcarrier_spacing_hz) * k.astype(np.float64)   # phase of subcarrier k per s
    doppler_rate = (-2 * math.pi) * np.asarray(symbol_times_s, dtype=np.float64)  # phase of symbol l per Hz, conj.

    def range_phasor(t: float) -> NDArray[np.complex128]:
        return np.exp(1j * range_rate * t)

    def doppler_phasor(f: float) -> NDArray[np.complex128]:
        v = np.exp(2j * math.pi * f * symbol_times_s)            # the echo's slow-time pattern
        if static_removed:
            v = v - v.mean()
        norm = float(np.linalg.norm(v))
        return np.conj(v) / norm if norm > 0 else np.zeros_like(v)

    tau, fd = tau0, fd0
    q: NDArray[np.complex128] | None = None
    if do_refine:
        for _ in range(2):
            g = _over_symbols(doppler_phasor(fd), h, pending)        # (C, K): BLAS over the symbols
            tau = _max_1d(range_phasor, g, tau, dtau, range_rate, False)
            q = _over_subcarriers(h, range_phasor(tau), pending)     # (C, S): BLAS over the subcarriers
            fd = _max_1d(doppler_phasor, q, fd, dfd, doppler_rate, static_removed) if dfd else fd
    slow = np.conj(doppler_phasor(fd))                            # unit-norm slow-time pattern
    along = np.conj(range_phasor(tau))                            # model = outer(slow, along) * mask
    # energy of the pattern on the mask: |along_k| = 1, so sum_l |slow_l|**2 (REs used on symbol l)
    energy = float((slow.real**2 + slow.imag**2) @ stats.per_symbol)
    if energy == 0:                                               # a zero-Doppler echo after the notch
        amplitude = np.zeros(h.shape[0], dtype=complex)
    else:                                                         # h is zero off the mask
        if q is None:
            q = _over_subcarriers(h, range_phasor(tau), pending)
        amplitude = q @ np.conj(slow) / energy
    used = stats.used
    num_channels = h.shape[0]
    # per-RE amplitude: the pattern has norm**2 = energy over `used` REs (1 per RE without the notch)
    per_re = amplitude * math.sqrt(energy / used)
    snr_re = float(np.mean(np.abs(per_re) ** 2) / noise_var) if noise_var > 0 else math.inf
    half = 0.5 if rd.geometry == "monostatic" else 1.0
    wavelength = SPEED_OF_LIGHT_MPS / carrier_hz
    cov = crb_from_fim(max(snr_re, 1e-12) * num_channels * stats.unit_fim)
    angle = angle_var = None
    if angle_spacing_wl is not None and num_channels > 1:
        angle = _ml_angle(amplitude, angle_spacing_wl)
        angle_var = float(angle_crb_rad2(max(snr_re, 1e-12), num_channels, used, angle_spacing_wl, angle))
    noise_cell = noise_var * rd.noise_gain * num_channels
    detection = Detection(
        range_m=SPEED_OF_LIGHT_MPS * tau * half, velocity_mps=-fd * wavelength * half + 0.0, doppler_hz=float(fd),
        delay_s=float(tau), snr_db=10 * math.log10(max(snr_re, 1e-30)), geometry=rd.geometry, angle_rad=angle,
        range_var_m2=float(cov[0, 0]) * (SPEED_OF_LIGHT_MPS * half) ** 2,
        velocity_var_mps2=float(cov[1, 1]) * (wavelength * half) ** 2, angle_var_rad2=angle_var,
        map_snr_db=10 * math.log10(max(float(p[r, d]) / noise_cell, 1e-30)))
    return detection, amplitude, slow, along


def _serial_block(n: int, other: int) -> int:
    """Largest divisor b of ``n`` with ``b * other`` below the threaded size (0: no such block worth it)."""
    limit = (_BLAS_THREADED_ELEMENTS - 1) // other
    for b in range(min(n, limit), 0, -1):
        if n % b == 0:
            return b if b * other >= _BLAS_THREADED_ELEMENTS // 4 else 0
    return 0


@dataclass(frozen=True, eq=False)
class Echo:
    """A detected echo in H on a full mask: ``amplitude[c] * outer(slow, along)``."""

    amplitude: NDArray[np.complex128]      # (C,)
    slow: NDArray[np.complex128]           # (S,)
    along: NDArray[np.complex128]          # (K,)


def _over_subcarriers(h: NDArray[np.complexfloating], z: NDArray[np.complex128],
                      pending: list[Echo] | None = None) -> NDArray[np.complex128]:
    """``(h - pending echoes) @ z``: (C, S, K) by (K,) -> (C, S), as a stack of products of b symbols."""
    c, s, k = h.shape
    b = _serial_block(s, k)
    out = np.matmul(h, z) if not b else np.matmul(h.reshape(c, s // b, b, k), z).reshape(c, s)
    for echo in pending or ():
        out -= np.outer(echo.amplitude, echo.slow * complex(echo.along @ z))
    return out


def _over_symbols(v: NDArray[np.complex128], h: NDArray[np.complexfloating],
                  pending: list[Echo] | None = None) -> NDArray[np.complex128]:
    """``v @ (h - pending echoes)``: (S,) by (C, S, K) -> (C, K), as a stack of products of b subcarriers."""
    c, s, k = h.shape
    b = _serial_block(k, s)
    out = np.matmul(v, h) if not b else np.matmul(v, h.reshape(c, s, k // b, b).transpose(0, 2, 1, 3)).reshape(c, k)
    for echo in pending or ():
        out -= np.outer(echo.amplitude, echo.along * complex(v @ echo.slow))
    return out


def subtract(work: NDArray[np.complex128], mask: NDArray[np.bool_], echoes: list[Echo]) -> None:
    """``work[c] -= amplitude_c * outer(slow, along) * mask`` for every echo, in place, without temporaries."""
    if not echoes:
        return
    pattern = work_array("detection.pattern", mask.shape, np.complex128)
    full = bool(mask.all())
    for echo in echoes:
        for c, a in enumerate(echo.amplitude):
            np.multiply.outer(a * echo.slow, echo.along, out=pattern)
            if not full:
                np.multiply(pattern, mask, out=pattern)
            work[c] -= pattern


def detect_all(h: NDArray[np.complexfloating], mask: NDArray[np.bool_], rd: RangeDopplerMap,
               peaks: list[tuple[int, int]], subcarrier_spacing_hz: float, symbol_times_s: NDArray[np.float64],
               carrier_hz: float, noise_var: float, pfa: float, do_refine: bool, angle_spacing_wl: float | None,
               static_removed: bool = False) -> tuple[list[Detection], NDArray[np.complex128]]:
    """Refine the peaks strongest first, subtracting each echo before the next (CLEAN).

    Returns the detections and H with their echoes subtracted (for a further pass).

    A strong echo's sidelobes would bias the maximisation for weaker ones;
    after subtraction, a peak whose energy is no longer above the
    exponential threshold -ln(pfa) (it was a sidelobe) is dropped.
    """
    work = np.empty(h.shape, dtype=np.complex128)
    np.multiply(h, mask[None], out=work)
    found, echoes = clean(work, mask, rd, peaks, subcarrier_spacing_hz, symbol_times_s, carrier_hz, noise_var, pfa,
                          do_refine, angle_spacing_wl, static_removed)
    subtract(work, mask, echoes)
    return found, work


def clean(work: NDArray[np.complex128], mask: NDArray[np.bool_], rd: RangeDopplerMap, peaks: list[tuple[int, int]],
          subcarrier_spacing_hz: float, symbol_times_s: NDArray[np.float64], carrier_hz: float, noise_var: float,
          pfa: float, do_refine: bool, angle_spacing_wl: float | None,
          static_removed: bool = False) -> tuple[list[Detection], list[Echo]]:
    """:func:`detect_all` on ``work`` (complex128, zero off the mask), leaving some subtractions to the caller.

    On a full mask an echo's products with the phasors of later peaks are known in closed form, so
    the echoes are only listed, and :func:`subtract` applies them if a further pass needs the
    residual; on other masks they are subtracted from ``work`` as they are found (the list is empty).

    Returns
    -------
    detections : list of Detection
    echoes : list of Echo
        Echoes still to subtract from ``work``.
    """
    out: list[Detection] = []
    pending: list[Echo] = []
    if not peaks:
        return out, pending
    stats = _MaskStats.of(mask, subcarrier_spacing_hz, symbol_times_s)
    threshold = significance_threshold(pfa, work.shape[0])
    for peak in peaks:
        det, amplitude, slow, along = _refine(work, mask, stats, rd, peak, subcarrier_spacing_hz, symbol_times_s,
                                              carrier_hz, noise_var, do_refine, angle_spacing_wl, static_removed,
                                              pending)
        energy = float((slow.real**2 + slow.imag**2) @ stats.per_symbol)
        if energy == 0 or (noise_var > 0 and float(np.mean(np.abs(amplitude) ** 2)) * energy / noise_var < threshold):
            continue
        echo = Echo(amplitude, slow, along)
        if stats.full:
            pending.append(echo)
        else:
            subtract(work, mask, [echo])
        out.append(det)
    return out, pending


def _max_1d(phasor: Any, data: NDArray[np.complex128], start: float, step: float,
            rate: NDArray[np.float64] | None = None, centred: bool = False) -> float:
    """Maximise sum_c |phasor(x) . data_c|**2 over x in start +- step.

    With ``rate``, ``phasor(x) . data_c`` is ``sum_n data_cn exp(j rate_n x)`` (over the norm of the
    phasor, constant unless ``centred``: the phasor had its mean removed); Newton's method on the
    analytic derivatives finds the peak in a few steps, and the bounded scalar search is the fallback
    when Newton leaves the interval or meets a non-concave stretch.
    """
    def cost(x: float) -> float:
        return -float(np.sum(np.abs(data @ phasor(x)) ** 2))
    if rate is not None:
        x = _newton_peak(data, rate, start, step, centred)
        if x is not None:
            return x
        # a non-concave stretch (a weak or noise peak): restart Newton from the best of a few points
        grid = start + step * np.linspace(-1.0, 1.0, _RESTART_POINTS)
        phasors = np.exp(1j * rate[:, None] * grid[None, :])                  # (n, points)
        if centred:
            phasors -= phasors.mean(axis=0)
        sums = np.einsum("cn,np->cp", data, phasors)                          # small: no threaded BLAS
        gain = np.sum(sums.real**2 + sums.imag**2, axis=0) / np.sum(phasors.real**2 + phasors.imag**2, axis=0)
        best = float(grid[int(np.argmax(gain))])
        x = _newton_peak(data, rate, best, step / (_RESTART_POINTS - 1), centred) if best != start else None
        if x is not None and abs(x - start) <= abs(step) and cost(x) <= cost(start):
            return x
    res = sp_opt.minimize_scalar(cost, bounds=(start - step, start + step), method="bounded",
                                 options={"xatol": abs(step) * 1e-4})
    return float(res.x) if res.fun <= cost(start) else start


def _newton_peak(data: NDArray[np.complex128], rate: NDArray[np.float64], start: float, step: float,
                 centred: bool) -> float | None:
    """Local maximum near ``start`` of J(x) = N(x) / D(x) by Newton's method, or None.

    N(x) = sum_c |A_c(x)|**2 with A_c(x) = sum_n d_cn exp(j rate_n x); D = 1, or with ``centred``
    D(x) = M - |E(x)|**2 / M, E(x) = sum_n exp(j rate_n x) (the squared norm of the phasor with its
    mean removed, M terms; the data are centred the same way, which leaves A unchanged).
    J' = (N' - J D') / D and J'' = (N'' - 2 J' D' - J D'') / D.
    """
    d = data - data.mean(axis=1, keepdims=True) if centred else data
    i_rate, rate2 = 1j * rate, -(rate * rate)
    stacked = np.stack((d, d * i_rate, d * rate2)).reshape(3 * d.shape[0], -1)   # rows: A, A', A'' per channel
    ends = np.stack((np.ones_like(rate), i_rate, rate2)) if centred else None      # E, E', E''
    num_channels, m = d.shape[0], rate.size
    x, dx = float(start), math.inf
    scale = abs(step)
    j_start = -math.inf
    for _ in range(_NEWTON_STEPS):
        z = np.exp(i_rate * x)
        sums = (stacked @ z).tolist()                                # a few complex numbers: plain Python
        n0 = n1 = n2 = 0.0
        for c in range(num_channels):
            a, a1, a2 = sums[c], sums[num_channels + c], sums[2 * num_channels + c]
            n0 += a.real * a.real + a.imag * a.imag
            n1 += 2 * (a.real * a1.real + a.imag * a1.imag)
            n2 += 2 * (a1.real * a1.real + a1.imag * a1.imag + a.real * a2.real + a.imag * a2.imag)
        if ends is not None:
            e, e1, e2 = (ends @ z).tolist()
            den = m - (e.real * e.real + e.imag * e.imag) / m
            den1 = -2 * (e.real * e1.real + e.imag * e1.imag) / m
            den2 = -2 * (e1.real * e1.real + e1.imag * e1.imag + e.real * e2.real + e.imag * e2.imag) / m
            if den <= 0:
                return None
            j0 = n0 / den
            j1 = (n1 - j0 * den1) / den
            j2 = (n2 - 2 * j1 * den1 - j0 * den2) / den
        else:
            j0, j1, j2 = n0, n1, n2
        if j_start == -math.inf:
            j_start = j0
        if not j2 < 0:
            return None
        dx = -j1 / j2
        x += dx
        if not abs(x - start) <= scale:
            return None
        if abs(dx) <= 1e-6 * scale:
            # quadratic convergence: x is now within ~(1e-6 step)**2 of the peak, and J(x) equals the J
            # just computed to that order; accept it if it is no worse than the start
            return x if j0 >= j_start * (1 - 1e-12) else None
    return None


def _ml_angle(amplitude: NDArray[np.complex128], spacing_wl: float) -> float:
    """Azimuth maximising |a(theta)^H x|**2 for a ULA along +y (a_n = exp(j 2 pi n d sin theta))."""
    n = np.arange(amplitude.size)

    def cost(theta: float) -> float:
        return -abs(np.vdot(np.exp(2j * math.pi * n * spacing_wl * math.sin(theta)), amplitude)) ** 2

    grid = np.linspace(-math.pi / 2, math.pi / 2, 361)
    start = grid[int(np.argmin([cost(t) for t in grid]))]
    step = grid[1] - grid[0]
    res = sp_opt.minimize_scalar(cost, bounds=(max(start - step, -math.pi / 2), min(start + step, math.pi / 2)),
                                 method="bounded")
    return float(res.x)
