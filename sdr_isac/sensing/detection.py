"""Detections: peaks of the range-Doppler map, refined off the grid, with SNR, angle and CRB variances.

Refinement maximises the unwindowed periodogram (the maximum-likelihood
estimator of one target in white noise) around each grid peak:
P(tau, f) = sum_c |sum_kl m_kl H_c(k, l) exp(j 2 pi (k df tau - f t_l))|**2,
alternating one-dimensional bounded searches in delay and Doppler (the two
are nearly decoupled on a full grid).  The amplitude at the optimum gives the
SNR per RE; the noise variance of H comes from the median of the map.  Each
estimate carries its Cramér-Rao variance at that SNR (REFERENCE.md §3; the
joint delay-Doppler Fisher matrix of the RE mask actually used), so fusion can
weight by it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.optimize as sp_opt
import scipy.stats as sp_stats
from numpy.typing import NDArray

from sdr_isac.sensing.crb import angle_crb_rad2, delay_doppler_crb
from sdr_isac.sensing.rdmap import RangeDopplerMap
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["Detection", "detect_all", "find_peaks", "refine", "noise_variance"]


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
    median = float(np.median(rd.power[::step, ::step]))
    return median / (rd.noise_gain * float(sp_stats.gamma.ppf(0.5, num_channels)))


def significance_threshold(pfa: float, num_channels: int) -> float:
    """Threshold on a cell's power over its mean noise power, averaged over C channels, for false-alarm
    probability ``pfa``: the mean of C unit exponentials is Gamma(C, 1/C)."""
    return float(sp_stats.gamma.isf(pfa, num_channels) / num_channels)


def find_peaks(power: NDArray[np.float32], mask: NDArray[np.bool_], max_peaks: int,
               wrap_range: bool = True) -> list[tuple[int, int]]:
    """Local maxima (3 x 3, Doppler circular, range circular if ``wrap_range``) among CFAR hits, strongest first."""
    rows, cols = np.nonzero(mask)
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
    denom = y_m - 2 * y_0 + y_p
    return 0.5 * (y_m - y_p) / denom if denom < 0 else 0.0


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
    r, d = peak
    n_r, n_d = rd.power.shape
    dtau = rd.delay_step_s or 1.0 / (n_r * subcarrier_spacing_hz)
    dfd = float(rd.doppler_hz[1] - rd.doppler_hz[0]) if n_d > 1 else 0.0
    p = rd.power
    tau0 = (r + (_parabolic(p[r - 1, d], p[r, d], p[r + 1, d]) if 0 < r < n_r - 1 else 0.0)) * dtau
    fd0 = rd.doppler_hz[d] + _parabolic(p[r, (d - 1) % n_d], p[r, d], p[r, (d + 1) % n_d]) * dfd
    k = np.arange(h.shape[2])

    def range_phasor(t: float) -> NDArray[np.complex128]:
        return np.exp(2j * math.pi * k * subcarrier_spacing_hz * t)

    def doppler_phasor(f: float) -> NDArray[np.complex128]:
        v = np.exp(2j * math.pi * f * symbol_times_s)            # the echo's slow-time pattern
        if static_removed:
            v = v - v.mean()
        norm = float(np.linalg.norm(v))
        return np.conj(v) / norm if norm > 0 else np.zeros_like(v)

    tau, fd = tau0, fd0
    if do_refine:
        for _ in range(2):
            g = np.matmul(doppler_phasor(fd), h)                     # (C, K): BLAS over the symbols
            tau = _max_1d(range_phasor, g, tau, dtau)
            q = np.matmul(h, range_phasor(tau))                      # (C, S): BLAS over the subcarriers
            fd = _max_1d(doppler_phasor, q, fd, dfd) if dfd else fd
    slow = np.conj(doppler_phasor(fd))                            # unit-norm slow-time pattern
    model = np.outer(slow, np.conj(range_phasor(tau))) * mask     # (S, K): pattern of the echo in H
    energy = float(np.sum(np.abs(model) ** 2))
    if energy == 0:                                               # a zero-Doppler echo after the notch
        amplitude = np.zeros(h.shape[0], dtype=complex)
    else:                                                         # h is zero off the mask
        amplitude = np.matmul(h, range_phasor(tau)) @ np.conj(slow) / energy
    used = int(np.count_nonzero(mask))
    num_channels = h.shape[0]
    # per-RE amplitude: the pattern has norm**2 = energy over `used` REs (1 per RE without the notch)
    per_re = amplitude * math.sqrt(energy / used)
    snr_re = float(np.mean(np.abs(per_re) ** 2) / noise_var) if noise_var > 0 else math.inf
    half = 0.5 if rd.geometry == "monostatic" else 1.0
    wavelength = SPEED_OF_LIGHT_MPS / carrier_hz
    cov = delay_doppler_crb(max(snr_re, 1e-12) * num_channels, mask, subcarrier_spacing_hz, symbol_times_s)
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
    return detection, amplitude, model


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
    work = (h * mask[None]).astype(np.complex128)
    out = []
    threshold = significance_threshold(pfa, h.shape[0])
    for peak in peaks:
        det, amplitude, model = refine(work, mask, rd, peak, subcarrier_spacing_hz, symbol_times_s, carrier_hz,
                                       noise_var, do_refine, angle_spacing_wl, static_removed)
        energy = float(np.sum(np.abs(model) ** 2))
        if energy == 0 or (noise_var > 0 and float(np.mean(np.abs(amplitude) ** 2)) * energy / noise_var < threshold):
            continue
        work -= amplitude[:, None, None] * model[None]
        out.append(det)
    return out, work


def _max_1d(phasor: Any, data: NDArray[np.complex128], start: float, step: float) -> float:
    """Maximise sum_c |phasor(x) . data_c|**2 over x in start +- step."""
    def cost(x: float) -> float:
        return -float(np.sum(np.abs(data @ phasor(x)) ** 2))
    res = sp_opt.minimize_scalar(cost, bounds=(start - step, start + step), method="bounded",
                                 options={"xatol": abs(step) * 1e-4})
    return float(res.x) if res.fun <= cost(start) else start


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
