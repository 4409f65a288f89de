"""Detections: peaks of the range-Doppler map, refined off the grid, with SNR, angle and CRB variances.

Refinement maximises the unwindowed periodogram (the maximum-likelihood
estimator of one target in white noise) around each grid peak:
P(tau, f) = sum_c |sum_kl m_kl H_c(k, l) exp(j 2 pi (k df tau - f t_l))|**2,
alternating one-dimensional searches in delay and Doppler (the two are nearly
decoupled on a full grid): Newton's method on the analytic derivatives of the
periodogram, restarted from the best of a few points, and a bounded scalar
search where neither finds a concave peak (:func:`sdr_isac.sensing.estimate.maximise_1d`,
the core every estimator of the package shares; RELAX is scheduled by
:func:`sdr_isac.sensing.estimate.relax`).  The amplitude at the optimum gives the
SNR per RE; the noise variance of H comes from the median of the map
(:func:`sdr_isac.sensing.estimate.noise_variance`).  Each
estimate carries its Cramér-Rao variance at that SNR (REFERENCE.md §3; the
joint delay-Doppler Fisher matrix of the RE mask actually used), so fusion can
weight by it.

Two echoes closer than a resolution cell make one peak, which one refined echo
would fit between them (biased by many standard deviations, its residual passing
as ghost echoes).  After each refined echo a model-order test
(:func:`_split_unresolved`) looks at its residual; where that is significant it
fits two paths with the package's estimator
(:func:`sdr_isac.sensing.estimate.estimate_paths`) and keeps them where the
likelihood ratio passes a chi-square test at the pipeline's pfa, each with the
joint two-path Cramér-Rao variance.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.stats as sp_stats
from numpy.typing import NDArray

from sdr_isac.errors import InputError
from sdr_isac.sensing.crb import angle_crb_rad2, crb_from_fim, delay_doppler_fim, paths_delay_doppler_crb
from sdr_isac.sensing.estimate import (
    estimate_paths,
    in_sigmas,
    joint_fit_energies,
    maximise_1d,
    ml_angle,
    paths_model,
    phasor,
    relax,
)
from sdr_isac.sensing.rdmap import RangeDopplerMap
from sdr_isac.sensing.scratch import work_array
from sdr_isac.units import SPEED_OF_LIGHT_MPS
from sdr_isac.waveform.sync import parabolic_vertex

__all__ = ["Cleaned", "Detection", "Echo", "clean", "detect_all", "find_peaks", "refine", "refit_jointly",
           "subtract"]

#: OpenBLAS runs a matrix-vector product of this many elements or more on several threads; on a busy
#: machine those threads wait for each other for milliseconds.  The refinement's products over H go as
#: stacks of smaller products instead (one thread each; the same time on an idle machine).
_BLAS_THREADED_ELEMENTS = 4096

#: largest angle from broadside at which a detection's angle CRB is evaluated (89.5°: ~13,000 x the
#: broadside variance, i.e. no angle information; the exact bound is infinite at endfire)
_ENDFIRE_RAD = math.radians(89.5)


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
        Estimated SNR per resource element per channel, dB: that of H = Y / X, the one
        the variances below use.  With QAM data it lies below the echo's SNR per RE by
        the mean noise gain of the division, 10 log10 E[1/|X|**2] (2.8 dB for 16-QAM;
        :mod:`sdr_isac.sensing.csi`).
    geometry : str
        ``monostatic`` or ``bistatic``.
    angle_rad : float or None
        Angle from broadside of the receive ULA, towards its +y end, rad:
        asin of the direction's component along the array axis (the azimuth
        for a target in the array's horizontal plane; a ULA measures a cone
        angle).  Assumes a uniform array with ``element_spacing_wavelengths``.
    range_var_m2, velocity_var_mps2 : float
        Variances of the estimates, m² and (m/s)²: the Cramér-Rao bounds at
        the estimated SNR for a refined estimate; for an unrefined one
        (``sensing.refine = false``, echoes less than 25 dB above the
        threshold) ``kappa x CRB + bias**2`` of the interpolated grid peak
        (:func:`sdr_isac.sensing.rdmap.grid_error`).
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


def _slow_time_pattern(doppler_rate: NDArray[np.float64], doppler_hz: float,
                       centred: bool) -> NDArray[np.complex128]:
    """Conjugate of an echo's slow-time pattern ``exp(j 2 pi f_D t_l)``, unit norm (mean removed if ``centred``).

    ``doppler_rate`` is ``-2 pi t_l``, so the conjugate is ``exp(j doppler_rate f_D)``; an all-zero vector
    where the centred pattern vanishes.
    """
    w = np.exp(doppler_rate * (1j * doppler_hz))
    if centred:
        w -= w.mean()
    norm = math.sqrt(float(np.vdot(w, w).real))
    return w / norm if norm > 0 else np.zeros_like(w)


@dataclass(frozen=True, eq=False)
class _MaskStats:
    """What the refinement needs of the RE mask, computed once per mask."""

    per_symbol: NDArray[np.float64]        # (S,) REs used on each symbol
    per_subcarrier: NDArray[np.bool_]      # (K,) subcarriers used on some symbol
    used: int
    full: bool                             # every RE used
    unit_fim: NDArray[np.float64]          # delay-Doppler Fisher information at SNR 1 (linear in the SNR)
    unit_crb: NDArray[np.float64] | None   # its inverse (None where crb_from_fim refuses it)
    range_rate: NDArray[np.float64]        # (K,) phase of subcarrier k per s of delay, 2 pi df k
    doppler_rate: NDArray[np.float64]      # (S,) phase of symbol l per Hz of Doppler, conjugated: -2 pi t_l

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
        unit_fim = delay_doppler_fim(1.0, mask, subcarrier_spacing_hz, times)
        try:
            unit_crb: NDArray[np.float64] | None = crb_from_fim(unit_fim)
        except InputError:                  # an unobservable mask: crb() raises it again for each detection
            unit_crb = None
        range_rate = (2 * math.pi * subcarrier_spacing_hz) * np.arange(mask.shape[1], dtype=np.float64)
        stats = cls(per_symbol, np.asarray(mask.any(axis=0), dtype=bool), used, used == mask.size, unit_fim,
                    unit_crb, range_rate, (-2 * math.pi) * times)
        if not mask.flags.writeable and mask.base is None:
            _LAST_STATS["stats"] = (mask, subcarrier_spacing_hz, times.copy(), stats)
        return stats

    @functools.cached_property
    def cells(self) -> tuple[float, float]:
        """The resolution cells of the mask's REs: 1 / (the span of their subcarriers, Hz), s, and 1 / (the span
        of their symbol times, s), Hz (0 for a single symbol)."""
        cols, rows = np.flatnonzero(self.per_subcarrier), np.flatnonzero(self.per_symbol)
        span_hz = float(self.range_rate[cols[-1]] - self.range_rate[cols[0]]) / (2 * math.pi) if cols.size else 0.0
        span_s = float(self.doppler_rate[rows[0]] - self.doppler_rate[rows[-1]]) / (2 * math.pi) if rows.size else 0.0
        return (1.0 / span_hz if span_hz > 0 else math.inf), (1.0 / span_s if span_s > 0 else 0.0)

    @functools.cached_property
    def offset_phasors(self) -> tuple[NDArray[np.float64], NDArray[np.complex128], NDArray[np.complex128]]:
        """The model-order test's offsets (cells) and the phasors of those offsets: over the subcarriers (K, P),
        ``exp(j range_rate u cell_tau)``, and over the symbols (P, S), ``exp(j doppler_rate u cell_f)``."""
        count = int(2 * _PAIR_SPAN_CELLS * _PAIR_POINTS_PER_CELL) + 1
        offsets = np.linspace(-_PAIR_SPAN_CELLS, _PAIR_SPAN_CELLS, count)
        cell_tau, cell_f = self.cells
        step_tau = cell_tau if math.isfinite(cell_tau) else 0.0
        delay = np.exp(1j * np.multiply.outer(self.range_rate, offsets * step_tau))
        doppler = np.exp(1j * np.multiply.outer(offsets * cell_f, self.doppler_rate))
        return offsets, delay, doppler

    @functools.cached_property
    def _along_gram(self) -> NDArray[np.complex128]:
        """``[z, dz]^H [z, dz]`` over the used subcarriers (z: the range phasor, dz its delay derivative; it does
        not depend on the delay)."""
        rate = self.range_rate[self.per_subcarrier]
        return np.array([[rate.size, -1j * rate.sum()], [1j * rate.sum(), float(rate @ rate)]])

    def notched_crb(self, doppler_hz: float, snr: float) -> NDArray[np.float64]:
        """The (delay, Doppler) bound of an echo in data whose mean over the symbols was removed on every
        subcarrier (``sensing.remove_static``), ``snr`` the per-RE SNR the refinement measures there.

        The notch projects the slow-time pattern s(f) (and its derivative) onto the complement of the constant:
        the data are ``a (P s) x z(tau)`` in noise of covariance ``sigma**2 P x I``, whose Fisher information on
        the range of the projection is ``(2 / sigma**2) Re{D^H D}`` with the projected derivatives (Kay 1993,
        ch. 15).  A complex amplitude per channel is a nuisance (Schur complement); the mask is a product set
        (every used subcarrier on every symbol, which :func:`~sdr_isac.sensing.pipeline.process` checks), so every
        inner product is a product of a symbol sum and a subcarrier sum.  Near zero Doppler P s is small and its
        shape differs from s: the bound there is many times the unnotched one at the same measured SNR.
        """
        t = self.doppler_rate / (-2 * math.pi)
        slow = np.exp(2j * math.pi * doppler_hz * t)
        d_slow = 2j * math.pi * t * slow
        slow -= slow.mean()
        d_slow -= d_slow.mean()
        # the measured SNR is of the projected echo: a per-RE amplitude |a| ||P s|| / sqrt(S) of the raw one
        kept = float(np.vdot(slow, slow).real) / slow.size
        unknown = np.diag([math.inf, math.inf])                     # the notch left nothing of the echo
        if not kept > 0 or not snr > 0:
            return unknown
        gamma = snr / kept
        symbols = np.stack([slow, d_slow], axis=1)
        g_slow = symbols.conj().T @ symbols                         # (2, 2)
        g_along = self._along_gram
        # parameters (tau, f_D, phase, |a|): (symbol factor, subcarrier factor, coefficient) of each derivative
        factors = ((0, 1, 1.0), (1, 0, 1.0), (0, 0, 1j), (0, 0, 1.0 / math.sqrt(gamma)))
        fim = np.empty((4, 4))
        for m, (sm, zm, cm) in enumerate(factors):
            for n, (sn, zn, cn) in enumerate(factors):
                fim[m, n] = 2 * gamma * (np.conj(cm) * cn * g_slow[sm, sn] * g_along[zm, zn]).real
        try:
            return crb_from_fim(fim)[:2, :2]
        except InputError:
            return unknown

    def crb(self, snr: float) -> NDArray[np.float64]:
        """``crb_from_fim(snr * unit_fim)``: the unit bound over ``snr`` (the inverse of a scaled matrix)."""
        if self.unit_crb is None or not math.isfinite(snr * float(self.unit_fim.max())):
            return crb_from_fim(snr * self.unit_fim)       # the errors (or overflow) of the direct inverse
        return self.unit_crb / snr


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
            static_removed: bool, pending: list[Echo] | None = None,
            start: tuple[float, float] | None = None,
            products: dict[str, Any] | None = None) -> tuple[Detection, NDArray[np.complex128],
                                                             NDArray[np.complex128], NDArray[np.complex128]]:
    """:func:`refine` returning the echo's pattern as its two factors: model = outer(slow, along) * mask.

    ``pending``: echoes not yet subtracted from ``h`` (full masks only), taken out of its products.
    ``start``: (delay s, Doppler Hz) to start from instead of the peak's interpolated position.
    ``products``: where refined, receives the last products over H (``g``, (C, K), over the symbols with the
    conjugate slow-time pattern of ``fd``, the Doppler before the last update; ``q``, (C, S), over the
    subcarriers with the final range phasor), for :func:`_residual_peak`.
    """
    r, d = peak
    n_r, n_d = rd.power.shape
    dtau, dfd = _bins(rd, subcarrier_spacing_hz)
    p = rd.power
    if start is None:
        tau0 = (r + (parabolic_vertex(p[r - 1, d], p[r, d], p[r + 1, d]) if 0 < r < n_r - 1 else 0.0)) * dtau
        fd0 = rd.doppler_hz[d] + parabolic_vertex(p[r, (d - 1) % n_d], p[r, d], p[r, (d + 1) % n_d]) * dfd
    else:
        tau0, fd0 = start
    range_rate, doppler_rate = stats.range_rate, stats.doppler_rate

    def range_phasor(t: float) -> NDArray[np.complex128]:
        return phasor(range_rate, t, True)

    def doppler_phasor(f: float) -> NDArray[np.complex128]:
        return _slow_time_pattern(doppler_rate, f, static_removed)

    tau, fd = float(tau0), float(fd0)                             # plain floats in the Detection, refined or not
    z: NDArray[np.complex128] | None = None                       # range phasor at tau, once computed
    q: NDArray[np.complex128] | None = None
    if do_refine:
        for _ in range(2):
            g = _over_symbols(doppler_phasor(fd), h, pending)        # (C, K): BLAS over the symbols
            tau = maximise_1d(range_phasor, g, tau, dtau, range_rate, False, uniform=True)
            z = range_phasor(tau)
            q = _over_subcarriers(h, z, pending)                     # (C, S): BLAS over the subcarriers
            if products is not None:
                products.update(g=g, fd=fd, q=q)
            fd = maximise_1d(doppler_phasor, q, fd, dfd, doppler_rate, static_removed) if dfd else fd
    if dfd:
        # Doppler is ambiguous by the symbol rate: an echo just below +F/2 peaks in the map's first column and its
        # refinement walks to just below -F/2 (a velocity of the wrong sign, 1200 m/s off at 24 GHz); report the
        # maximum in the principal interval [-F/2, F/2) (the longer CPs make the two aliases differ slightly, so
        # Newton starts again from the wrapped value)
        span = n_d * dfd
        if not -span / 2 <= fd < span / 2:
            wrapped = fd - span * math.floor(fd / span + 0.5)
            if do_refine and q is not None:
                again = maximise_1d(doppler_phasor, q, wrapped, dfd, doppler_rate, static_removed)
                wrapped = again if -span / 2 <= again < span / 2 else wrapped
            fd = wrapped
    if z is None:
        z = range_phasor(tau)
    slow = np.conj(doppler_phasor(fd))                            # unit-norm slow-time pattern
    along = np.conj(z)                                            # model = outer(slow, along) * mask
    # energy of the pattern on the mask: |along_k| = 1, so sum_l |slow_l|**2 (REs used on symbol l)
    energy = float((slow.real**2 + slow.imag**2) @ stats.per_symbol)
    if energy == 0:                                               # a zero-Doppler echo after the notch
        amplitude = np.zeros(h.shape[0], dtype=complex)
    else:                                                         # h is zero off the mask
        if q is None:
            q = _over_subcarriers(h, z, pending)
        amplitude = q @ np.conj(slow) / energy
    used = stats.used
    num_channels = h.shape[0]
    # per-RE amplitude: the pattern has norm**2 = energy over `used` REs (1 per RE without the notch)
    per_re = amplitude * math.sqrt(energy / used)
    snr_re = float(np.mean(np.abs(per_re) ** 2) / noise_var) if noise_var > 0 else math.inf
    half = 0.5 if rd.geometry == "monostatic" else 1.0
    wavelength = SPEED_OF_LIGHT_MPS / carrier_hz
    cov = stats.notched_crb(fd, max(snr_re, 1e-12) * num_channels) if static_removed else \
        stats.crb(max(snr_re, 1e-12) * num_channels)
    var_tau, var_fd = float(cov[0, 0]), float(cov[1, 1])
    if not do_refine and start is None:
        # the interpolated grid peak: its noise variance is kappa x the bound, and it is biased by up to a few
        # hundredths of a bin (rdmap.grid_error)
        kappa_tau, bias_tau, kappa_fd, bias_fd = rd.unrefined_error()
        var_tau, var_fd = kappa_tau * var_tau + bias_tau, kappa_fd * var_fd + bias_fd
    angle = angle_var = None
    if angle_spacing_wl is not None and num_channels > 1:
        positions = angle_spacing_wl * np.arange(num_channels)
        angle = ml_angle(amplitude, positions)
        # the bound diverges at endfire, where the search may end: evaluate it at most _ENDFIRE_RAD off broadside
        angle_var = float(angle_crb_rad2(max(snr_re, 1e-12), used, positions,
                                         math.copysign(min(abs(angle), _ENDFIRE_RAD), angle)))
    noise_cell = noise_var * rd.noise_gain * num_channels
    detection = Detection(
        range_m=SPEED_OF_LIGHT_MPS * tau * half, velocity_mps=-fd * wavelength * half + 0.0, doppler_hz=float(fd),
        delay_s=float(tau), snr_db=10 * math.log10(max(snr_re, 1e-30)), geometry=rd.geometry, angle_rad=angle,
        range_var_m2=var_tau * (SPEED_OF_LIGHT_MPS * half) ** 2,
        velocity_var_mps2=var_fd * (wavelength * half) ** 2, angle_var_rad2=angle_var,
        map_snr_db=10 * math.log10(max(float(p[r, d]) / noise_cell, 1e-30)))
    return detection, amplitude, slow, along


def _bins(rd: RangeDopplerMap, subcarrier_spacing_hz: float) -> tuple[float, float]:
    """The map's delay bin (s) and Doppler bin (Hz; 0 with a single Doppler column)."""
    n_r, n_d = rd.power.shape
    dtau = rd.delay_step_s or 1.0 / (n_r * subcarrier_spacing_hz)
    return dtau, (float(rd.doppler_hz[1] - rd.doppler_hz[0]) if n_d > 1 else 0.0)


@functools.lru_cache(maxsize=64)
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


# a refined echo: its grid peak (range bin, Doppler bin), its detection, its pattern in H
Found = tuple[tuple[int, int], Detection, Echo]


@dataclass(frozen=True)
class Cleaned:
    """What :func:`clean` found on one map: the echoes, strongest first, and the unresolved pairs among them."""

    found: list[Found]
    pairs: list[tuple[int, int]]            # indices into found of the two echoes split from one peak
    full: bool                              # a full mask: the echoes were listed, not subtracted from the data
    residue: int = 0                        # echoes of later passes not reported (see refit_jointly)

    @property
    def detections(self) -> list[Detection]:
        return [det for _, det, _ in self.found]

    @property
    def echoes(self) -> list[Echo]:
        """The echoes still to subtract from the data (full masks; on others :func:`clean` subtracted them)."""
        return [echo for _, _, echo in self.found] if self.full else []


def refit_jointly(work: NDArray[np.complexfloating], mask: NDArray[np.bool_], rd: RangeDopplerMap,
                  passes: list[Cleaned], subcarrier_spacing_hz: float, symbol_times_s: NDArray[np.float64],
                  carrier_hz: float, noise_var: float, pfa: float, angle_spacing_wl: float | None,
                  static_removed: bool = False) -> Cleaned:
    """RELAX over the echoes of several CLEAN passes together (Li & Stoica, IEEE TSP 44(2), 1996).

    An echo found in an early pass was refined with the echoes of later passes still in its data (they were
    masked: that is why a later pass found them); their sidelobes bias it, by many standard deviations where a
    weaker echo a few cells away is 6 dB down.  Each echo is refined again on the data less all the others, the
    pairs are decided again and echoes no longer significant are dropped, as within one pass.

    ``work``: on a full mask, H itself (nothing subtracted); on other masks, the data with every pass's echoes
    subtracted (as :func:`clean` leaves it), changed in place to the new residual.  ``rd``: any of the passes'
    maps (their axes are the same).

    An echo of a later pass within one resolution cell of an earlier pass's echo and more than
    :data:`PAIR_MODEL_FLOOR_DB` below its map peak is that echo's residue (its model error, or a second path in
    its cell below the floor of the model-order test, which does not split such paths off): it is not reported
    (``Cleaned.residue`` counts them).  Such a second path, if real, is lost, and the stronger echo keeps the
    bias it causes (hundreds of standard deviations for one 45 dB down 0.6 cells away): below the floor the
    single-path model, and its bound, are assumed.
    """
    stats = _MaskStats.of(mask, subcarrier_spacing_hz, symbol_times_s)
    cell_tau, cell_f = stats.cells
    found: list[Found] = []
    pairs: list[tuple[int, int]] = []
    residue: list[Echo] = []
    for cleaned in passes:
        earlier, index = list(found), {}
        for n, item in enumerate(cleaned.found):
            det = item[1]
            if any(d.map_snr_db + PAIR_MODEL_FLOOR_DB > det.map_snr_db
                   and ((det.delay_s - d.delay_s) / cell_tau) ** 2
                   + (((det.doppler_hz - d.doppler_hz) / cell_f) ** 2 if cell_f else 0.0) < 1.0
                   for _, d, _ in earlier):
                residue.append(item[2])
            else:
                index[n] = len(found)
                found.append(item)
        pairs += [(index[i], index[j]) for i, j in cleaned.pairs if i in index and j in index]
    if residue and not stats.full:                      # back into the data: not echoes of their own
        subtract(work, mask, [Echo(-e.amplitude, e.slow, e.along) for e in residue])
    if len(found) > 1:
        found, pairs = _settle(work, mask, stats, rd, found, pairs, subcarrier_spacing_hz, symbol_times_s,
                               carrier_hz, noise_var, pfa, angle_spacing_wl, static_removed)
    return Cleaned(found, pairs, stats.full, len(residue))


def _over_subcarriers(h: NDArray[np.complexfloating], z: NDArray[np.complex128],
                      pending: list[Echo] | None = None) -> NDArray[np.complex128]:
    """``(h - pending echoes) @ z``: (C, S, K) by (K,) -> (C, S), as a stack of products of b symbols."""
    c, s, k = h.shape
    b = _serial_block(s, k)
    z = z.astype(h.dtype, copy=False)               # complex64 H: a single-precision product, a complex128 result
    out = np.matmul(h, z) if not b else np.matmul(h.reshape(c, s // b, b, k), z).reshape(c, s)
    out = out.astype(np.complex128, copy=False)
    for echo in pending or ():
        out -= np.outer(echo.amplitude, echo.slow * complex(echo.along @ z))
    return out


def _over_symbols(v: NDArray[np.complex128], h: NDArray[np.complexfloating],
                  pending: list[Echo] | None = None) -> NDArray[np.complex128]:
    """``v @ (h - pending echoes)``: (S,) by (C, S, K) -> (C, K), as a stack of products of b subcarriers."""
    c, s, k = h.shape
    b = _serial_block(k, s)
    v = v.astype(h.dtype, copy=False)
    out = np.matmul(v, h) if not b else np.matmul(v, h.reshape(c, s, k // b, b).transpose(0, 2, 1, 3)).reshape(c, k)
    out = out.astype(np.complex128, copy=False)
    for echo in pending or ():
        out -= np.outer(echo.amplitude, echo.along * complex(v @ echo.slow))
    return out


def subtract(work: NDArray[np.complexfloating], mask: NDArray[np.bool_], echoes: list[Echo]) -> None:
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
    cleaned = clean(work, mask, rd, peaks, subcarrier_spacing_hz, symbol_times_s, carrier_hz, noise_var, pfa,
                    do_refine, angle_spacing_wl, static_removed)
    subtract(work, mask, cleaned.echoes)
    return cleaned.detections, work


def clean(work: NDArray[np.complexfloating], mask: NDArray[np.bool_], rd: RangeDopplerMap, peaks: list[tuple[int, int]],
          subcarrier_spacing_hz: float, symbol_times_s: NDArray[np.float64], carrier_hz: float, noise_var: float,
          pfa: float, do_refine: bool, angle_spacing_wl: float | None,
          static_removed: bool = False) -> Cleaned:
    """:func:`detect_all` on ``work`` (zero off the mask), leaving some subtractions to the caller.

    ``work`` is complex128, or complex64 on a full mask (nothing is subtracted from it then): the products
    over H run in its precision (single precision moves the estimates by some 1e-5 of their standard
    deviation), everything after them in double precision.

    On a full mask an echo's products with the phasors of later peaks are known in closed form, so
    the echoes are only listed, and :func:`subtract` applies them if a further pass needs the
    residual; on other masks they are subtracted from ``work`` as they are found (the list is empty).

    Returns
    -------
    Cleaned
        The echoes found (``detections``; ``echoes``: those still to subtract from ``work``).
    """
    stats = _MaskStats.of(mask, subcarrier_spacing_hz, symbol_times_s)
    if not peaks:
        return Cleaned([], [], stats.full)
    threshold = significance_threshold(pfa, work.shape[0])

    def significant(amplitude: NDArray[np.complex128], slow: NDArray[np.complex128], factor: float = 1.0) -> bool:
        return _significant(stats, noise_var, threshold, amplitude, slow, factor)

    found: list[Found] = []
    pending: list[Echo] = []
    pairs: list[tuple[int, int]] = []           # indices in found of the echoes split from one peak
    # the model-order test needs a refined echo: every one with refine, the strong ones without (below)
    can_test = not static_removed and noise_var > 0
    test_order = do_refine and can_test
    products: dict[str, Any] = {}
    deferred: list[int] = []                    # indices in found of echoes whose model-order test waits (below)
    noise_cell = noise_var * rd.noise_gain * work.shape[0]
    for n_peak, peak in enumerate(peaks):
        products.clear()
        det, amplitude, slow, along = _refine(work, mask, stats, rd, peak, subcarrier_spacing_hz, symbol_times_s,
                                              carrier_hz, noise_var, do_refine, angle_spacing_wl, static_removed,
                                              pending, None, products if test_order else None)
        if not do_refine and significant(amplitude, slow, _GRID_RESIDUAL):
            # unrefined, the echo would be subtracted at its interpolated grid position, up to some 3 % of a
            # bin off: a residual about 28 dB below it, significant here, whose sidelobes (a pedestal 16 dB
            # down where the slow time has slot gaps) would pass as echoes at other Dopplers: refine it, and
            # test it for a second echo in its cell as refine = true does (an unresolved pair refined as one
            # echo lies between the two, biased by many standard deviations: a car and a UAV in one cell of the
            # urban demo's bs_a0 put the car 36 standard deviations off in angle)
            det, amplitude, slow, along = _refine(work, mask, stats, rd, peak, subcarrier_spacing_hz,
                                                  symbol_times_s, carrier_hz, noise_var, True, angle_spacing_wl,
                                                  static_removed, pending, None, products if can_test else None)
        if not significant(amplitude, slow):
            continue
        items = [(peak, det, Echo(amplitude, slow, along))]
        if can_test and products and _crowded(peak, peaks[n_peak + 1:], rd, stats, subcarrier_spacing_hz,
                                              noise_cell, significance_threshold(pfa, work.shape[0])):
            # a weaker peak still in the data puts its sidelobes into the test's window: tested once every
            # echo of the pass is out of the data (a strong echo 5 cells away was fitted as a second path beside
            # this one, 200 rounds of a two-path fit that never converged: 2.3 s per W1 capture)
            deferred.append(len(found))
        elif can_test and products:
            # the model-order test, before weaker peaks are taken: a biased single echo's residual would
            # pass as echoes of its own and corrupt the two-path fit
            items = _split_unresolved(work, mask, stats, rd, items[0], pending if stats.full else None, products,
                                      subcarrier_spacing_hz, symbol_times_s, carrier_hz, noise_var, pfa,
                                      angle_spacing_wl)
        if len(items) == 2:
            pairs.append((len(found), len(found) + 1))
        for item in items:
            if stats.full:
                pending.append(item[2])
            else:
                subtract(work, mask, [item[2]])
            found.append(item)
    if deferred:
        waiting = {found[i][0] for i in deferred}                 # by grid peak: RELAX replaces the echoes
        if do_refine and len(found) > 1:                          # the echoes near it as RELAX leaves them
            found, pairs = _settle(work, mask, stats, rd, found, pairs, subcarrier_spacing_hz, symbol_times_s,
                                   carrier_hz, noise_var, pfa, angle_spacing_wl, static_removed)
        found, pairs = _deferred_tests(work, mask, stats, rd, found, pairs,
                                       [n for n, item in enumerate(found) if item[0] in waiting],
                                       subcarrier_spacing_hz, symbol_times_s, carrier_hz, noise_var, pfa,
                                       angle_spacing_wl)
    if do_refine and len(found) > 1:
        found, pairs = _settle(work, mask, stats, rd, found, pairs, subcarrier_spacing_hz, symbol_times_s, carrier_hz,
                               noise_var, pfa, angle_spacing_wl, static_removed)
    return Cleaned(found, pairs, stats.full)


#: a later peak at least this many resolution cells beyond the model-order test's window defers the test
_CROWD_FROM_CELLS = 1.5


def _crowded(peak: tuple[int, int], later: list[tuple[int, int]], rd: RangeDopplerMap, stats: _MaskStats,
             subcarrier_spacing_hz: float, noise_cell: float, threshold: float) -> bool:
    """Whether a later (weaker) CFAR peak of the pass, still in the data, leaks sidelobes into the model-order
    test's window around ``peak`` above the significance threshold.

    The test reads the residual of H itself (no taper): an echo ``x`` resolution cells away along one axis (within
    a cell on the other) leaks about ``P / (pi (x - 1))**2`` of its map SNR ``P`` into the window's edge (the
    sinc's sidelobe envelope); ten times that above ``threshold`` counts, to be safe.  Echoes closer than
    ``_PAIR_SPAN_CELLS + _CROWD_FROM_CELLS`` cells do not count: the test's two-path fit finds them.  Doppler is
    circular.  An echo the CFAR masked (found in a later pass, if at all) is not seen here: its sidelobes still
    start a two-path fit.
    """
    if not later:
        return False
    cell_tau, cell_f = stats.cells
    dtau, dfd = _bins(rd, subcarrier_spacing_hz)
    span_f = rd.power.shape[1] * dfd
    r0, d0 = peak
    r, d = np.array(later, dtype=np.int64).T
    along_tau = np.abs(r - r0) * (dtau / cell_tau) if math.isfinite(cell_tau) else np.zeros(r.size)
    gap = np.abs(rd.doppler_hz[d] - rd.doppler_hz[d0]) % span_f if span_f else np.zeros(r.size)
    along_f = np.minimum(gap, span_f - gap) / cell_f if cell_f else np.zeros(r.size)
    near, far = np.minimum(along_tau, along_f), np.maximum(along_tau, along_f)
    counted = (near < 1.0) & (far >= _PAIR_SPAN_CELLS + _CROWD_FROM_CELLS)     # off both axes: two envelopes
    leak = rd.power[r[counted], d[counted]] / noise_cell / (math.pi * (far[counted] - _PAIR_SPAN_CELLS)) ** 2
    return bool(np.any(10.0 * leak > threshold))


def _deferred_tests(work: NDArray[np.complexfloating], mask: NDArray[np.bool_], stats: _MaskStats,
                    rd: RangeDopplerMap, found: list[Found], pairs: list[tuple[int, int]], deferred: list[int],
                    subcarrier_spacing_hz: float, symbol_times_s: NDArray[np.float64], carrier_hz: float,
                    noise_var: float, pfa: float,
                    angle_spacing_wl: float | None) -> tuple[list[Found], list[tuple[int, int]]]:
    """The model-order test of the echoes in ``deferred`` (indices into ``found``), strongest first, each refitted
    on the data less every other echo of the pass (full masks: they are taken out of its products; other masks:
    ``work`` has them subtracted, the echo is put back while it is tested).  Returns the echoes, a split one
    replaced by its pair, and the pairs (indices into the returned list)."""
    out: list[list[Found]] = [[item] for item in found]
    products: dict[str, Any] = {}
    for i in deferred:
        peak, det, echo = found[i]
        others = [e for j, items in enumerate(out) if j != i for _, _, e in items] if stats.full else None
        if not stats.full:
            subtract(work, mask, [Echo(-echo.amplitude, echo.slow, echo.along)])          # put it back
        products.clear()
        det2, amplitude, slow, along = _refine(work, mask, stats, rd, peak, subcarrier_spacing_hz, symbol_times_s,
                                               carrier_hz, noise_var, True, angle_spacing_wl, False, others,
                                               (det.delay_s, det.doppler_hz), products)
        item = (peak, dataclasses.replace(det2, map_snr_db=det.map_snr_db), Echo(amplitude, slow, along))
        out[i] = _split_unresolved(work, mask, stats, rd, item, others, products, subcarrier_spacing_hz,
                                   symbol_times_s, carrier_hz, noise_var, pfa, angle_spacing_wl)
        if not stats.full:
            subtract(work, mask, [e for _, _, e in out[i]])
    start = list(itertools.accumulate([0] + [len(items) for items in out]))     # each entry's first index now
    remapped = [(start[i], start[j]) for i, j in pairs]   # a pair of the loop: its two entries kept, in order
    remapped += [(start[i], start[i] + 1) for i in deferred if len(out[i]) == 2]
    return [item for items in out for item in items], remapped


def _significant(stats: _MaskStats, noise_var: float, threshold: float, amplitude: NDArray[np.complex128],
                 slow: NDArray[np.complex128], factor: float = 1.0) -> bool:
    """Whether an echo's energy on the mask passes ``threshold * factor`` (always, without a noise level)."""
    energy = float((slow.real**2 + slow.imag**2) @ stats.per_symbol)
    return energy > 0 and not (noise_var > 0 and float(np.mean(np.abs(amplitude) ** 2)) * energy / noise_var
                               < threshold * factor)


def _settle(work: NDArray[np.complexfloating], mask: NDArray[np.bool_], stats: _MaskStats, rd: RangeDopplerMap,
            found: list[Found], pairs: list[tuple[int, int]], subcarrier_spacing_hz: float,
            symbol_times_s: NDArray[np.float64], carrier_hz: float, noise_var: float, pfa: float,
            angle_spacing_wl: float | None, static_removed: bool) -> tuple[list[Found], list[tuple[int, int]]]:
    """RELAX over the refined echoes ``found``, the pairs decided again, the echoes no longer significant dropped.

    ``work``: on a full mask, the data with none of ``found`` subtracted (they are taken out of its products in
    closed form); on other masks, the data with all of them subtracted (each is put back while it is refitted).
    Returns the echoes and the pairs kept (indices into the returned list).
    """
    found = list(found)
    threshold = significance_threshold(pfa, work.shape[0])

    def significant(amplitude: NDArray[np.complex128], slow: NDArray[np.complex128]) -> bool:
        return _significant(stats, noise_var, threshold, amplitude, slow)

    # RELAX (Li & Stoica, IEEE TSP 44(2), 1996): an echo refined first had the later ones in its data,
    # whose sidelobes biased it; refine each again on the data minus all the others, while an echo it is
    # coupled to has changed since its own last refinement
    def coupled(i: int, changed: list[int]) -> bool:
        return _coupled(found[i][2], [found[j][2] for j in changed], stats, noise_var)

    def refit(i: int) -> float:
        peak, det, echo = found[i]
        others = [e for j, (_, _, e) in enumerate(found) if j != i] if stats.full else None
        if not stats.full:
            subtract(work, mask, [Echo(-echo.amplitude, echo.slow, echo.along)])      # put it back
        det2, amplitude, slow, along = _refine(work, mask, stats, rd, peak, subcarrier_spacing_hz, symbol_times_s,
                                               carrier_hz, noise_var, True, angle_spacing_wl, static_removed,
                                               others, (det.delay_s, det.doppler_hz))
        found[i] = (peak, dataclasses.replace(det2, map_snr_db=det.map_snr_db), Echo(amplitude, slow, along))
        if not stats.full:
            subtract(work, mask, [found[i][2]])
        return max(in_sigmas(det2.range_m - det.range_m, det2.range_var_m2),
                   in_sigmas(det2.velocity_mps - det.velocity_mps, det2.velocity_var_mps2))

    relax(len(found), coupled, refit, _RELAX_ROUNDS)
    merged_away: set[int] = set()
    for i, j in pairs:
        # the split was decided with the weaker echoes, and a stronger one's biased subtraction, still in the
        # data: decided again on the data less every other echo, now refined; the one echo where it fails
        others = [e for n, (_, _, e) in enumerate(found) if n not in (i, j)]
        merged = _merged_unless_significant(work, mask, stats, rd, found[i], found[j], others if stats.full
                                            else None, subcarrier_spacing_hz, symbol_times_s, carrier_hz,
                                            noise_var, pfa, angle_spacing_wl)
        if merged is not None:
            if not stats.full:
                subtract(work, mask, [Echo(-found[i][2].amplitude, found[i][2].slow, found[i][2].along),
                                      Echo(-found[j][2].amplitude, found[j][2].slow, found[j][2].along),
                                      merged[2]])
            found[i] = merged
            merged_away.add(j)
    position = {n: k for k, n in enumerate(n for n in range(len(found)) if n not in merged_away)}
    kept = [(position[i], position[j]) for i, j in pairs if j not in merged_away]
    found = [item for n, item in enumerate(found) if n not in merged_away]
    if merged_away and len(found) > 1:
        # a merged echo was refined from the stronger one's position with its neighbours as the rounds left them,
        # and they had been refitted with the pair (two nearly collinear paths, far from converged) in the data:
        # RELAX again without it, every echo refitted once first (a merged pair 2 cells from another echo left
        # both 5 to 8 standard deviations off, and their residual passed as a ghost in the next pass)
        for i in range(len(found)):
            refit(i)
        relax(len(found), coupled, refit, _RELAX_ROUNDS)
    for i, j in kept:       # a refit reports the single-path bound: the pair's is the joint one
        found[i], found[j] = _pair_bound(found[i], found[j], mask, subcarrier_spacing_hz, symbol_times_s,
                                         carrier_hz, noise_var)
    kept_pairs = [(found[i][2], found[j][2]) for i, j in kept]
    # an echo that was only the residue of another's biased subtraction is no longer significant
    dropped = [echo for _, _, echo in found if not significant(echo.amplitude, echo.slow)]
    if dropped:
        if not stats.full:                             # put them back: they are not echoes of their own
            subtract(work, mask, [Echo(-e.amplitude, e.slow, e.along) for e in dropped])
        found = [item for item in found if all(item[2] is not e for e in dropped)]
    found = _joint_bounds(found, mask, stats, subcarrier_spacing_hz, symbol_times_s, carrier_hz, noise_var,
                          rd.power.shape[1] * _bins(rd, subcarrier_spacing_hz)[1])
    index = {id(echo): n for n, (_, _, echo) in enumerate(found)}
    return found, [(index[id(a)], index[id(b)]) for a, b in kept_pairs if id(a) in index and id(b) in index]


#: echoes closer than this many resolution cells (:attr:`_MaskStats.cells`, delay and Doppler together) to another
#: are reported with the bound of their group's paths together: on a full grid two equal echoes in phase 1.2
#: cells apart in delay have 1.9 times the delay variance of one alone, 1.5 cells apart in quadrature 1.5 times,
#: 2 cells apart 1.1 times, 3 cells apart 1.04 times
_JOINT_BOUND_CELLS = 3.0
#: the largest group given a joint bound
_JOINT_BOUND_MAX_PATHS = 8


def _joint_bounds(found: list[Found], mask: NDArray[np.bool_], stats: _MaskStats, subcarrier_spacing_hz: float,
                  symbol_times_s: NDArray[np.float64], carrier_hz: float, noise_var: float,
                  doppler_span_hz: float = 0.0) -> list[Found]:
    """The echoes with the joint bound of every group of echoes within :data:`_JOINT_BOUND_CELLS` of each other.

    Each echo is refined with the others taken out of its data, and reports the bound of one path alone; but
    its neighbours' parameters are estimated from the same data, and near them the joint Fisher information
    (:func:`~sdr_isac.sensing.crb.paths_delay_doppler_crb`) couples them: the bound of each is the diagonal of
    the group's joint bound, larger than the single-path one.  A variance already larger (an unrefined echo's
    grid error, the notch of ``remove_static``) is kept: each variance is the larger of the two.  Range and
    velocity only: the angle keeps its single-path bound.  ``doppler_span_hz``: the map's unambiguous Doppler
    span (distances wrap around it; 0: no wrap).  A group of more than :data:`_JOINT_BOUND_MAX_PATHS` echoes
    (a chain of close ones) keeps its single-path bounds: its joint bound would cost seconds on a large mask
    that is not a product of symbols and subcarriers.
    """
    if len(found) < 2 or not noise_var > 0:
        return found
    cell_tau, cell_f = stats.cells
    parent = list(range(len(found)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (_, a, _) in enumerate(found):
        for j in range(i + 1, len(found)):
            b = found[j][1]
            d2 = ((a.delay_s - b.delay_s) / cell_tau) ** 2 if math.isfinite(cell_tau) else 0.0
            gap = abs(a.doppler_hz - b.doppler_hz) % doppler_span_hz if doppler_span_hz > 0 else \
                abs(a.doppler_hz - b.doppler_hz)
            gap = min(gap, doppler_span_hz - gap) if doppler_span_hz > 0 else gap
            d2 += (gap / cell_f) ** 2 if cell_f else 0.0
            if d2 < _JOINT_BOUND_CELLS ** 2:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(found)):
        groups.setdefault(root(i), []).append(i)
    out = list(found)
    frequencies = subcarrier_spacing_hz * np.arange(mask.shape[1], dtype=np.float64)
    times = np.asarray(symbol_times_s, dtype=np.float64)
    for members in (g for g in groups.values() if 1 < len(g) <= _JOINT_BOUND_MAX_PATHS):
        dets, echoes = [found[i][1] for i in members], [found[i][2] for i in members]
        # an Echo's slow-time pattern has unit norm over the S symbols: the amplitude per RE is amplitude / sqrt(S)
        amplitudes = np.stack([e.amplitude for e in echoes], axis=1) / math.sqrt(echoes[0].slow.size)
        try:
            bound = paths_delay_doppler_crb(mask, frequencies, times, [d.delay_s for d in dets],
                                            [d.doppler_hz for d in dets], amplitudes, noise_var)
        except InputError:
            continue
        half = 0.5 if dets[0].geometry == "monostatic" else 1.0
        wavelength = SPEED_OF_LIGHT_MPS / carrier_hz
        for p, i in enumerate(members):
            peak, det, echo = found[i]
            out[i] = (peak, dataclasses.replace(
                det, range_var_m2=max(det.range_var_m2, float(bound[2 * p, 2 * p]) * (SPEED_OF_LIGHT_MPS * half) ** 2),
                velocity_var_mps2=max(det.velocity_var_mps2,
                                      float(bound[2 * p + 1, 2 * p + 1]) * (wavelength * half) ** 2)), echo)
    return out


#: without refinement, an echo whose test statistic exceeds the significance threshold by this factor (25 dB)
#: is refined all the same: subtracted at its grid position it would leave a significant residual (see clean)
_GRID_RESIDUAL = 10 ** 2.5

_RELAX_ROUNDS = 10          # re-refinement rounds at most


def _coupled(echo: Echo, others: list[Echo], stats: _MaskStats, noise_var: float) -> bool:
    """Whether another echo moves this one's estimate by more than about 0.14 of its standard deviation.

    The ML estimate of delay (Doppler) solves ``d|y|**2 = 0`` for the
    matched filter ``y`` of the echo's pattern ``p``; another echo ``a_j p_j``
    left in the data shifts it by ``sqrt(2) |a_j <d p, p_j>| / (||d p||
    sigma)`` standard deviations (first order), and its leak into ``y``
    itself scales the same way.  On a full mask the patterns are separable,
    ``outer(slow, along)``, so every inner product is a product of a symbol
    sum and a subcarrier sum (cheap); the derivatives use the centred phase
    rates.  Other masks, or no noise level: always coupled.
    """
    if not stats.full or noise_var <= 0:
        return True
    floor = 0.1 * math.sqrt(noise_var)
    rate_k = stats.range_rate - stats.range_rate.mean()
    rate_l = stats.doppler_rate - stats.doppler_rate.mean()
    slow, along = echo.slow, echo.along
    d_slow, d_along = slow * rate_l, along * rate_k
    norms = (float(np.linalg.norm(slow)) * math.sqrt(along.size), float(np.linalg.norm(slow)) *
             float(np.linalg.norm(rate_k)), float(np.linalg.norm(d_slow)) * math.sqrt(along.size))
    for other in others:
        s0, s1 = complex(np.vdot(slow, other.slow)), complex(np.vdot(d_slow, other.slow))
        l0, l1 = complex(np.vdot(along, other.along)), complex(np.vdot(d_along, other.along))
        amplitude = float(np.sqrt(np.mean(np.abs(other.amplitude) ** 2)))
        leaks = (abs(s0 * l0), abs(s0 * l1), abs(s1 * l0))
        if any(n > 0 and amplitude * leak / n > floor for leak, n in zip(leaks, norms, strict=True)):
            return True
    return False


#: model-order test: the residual of a refined echo is searched for a second echo this many resolution cells
#: (:attr:`_MaskStats.cells`) either side of it, in delay at the echo's Doppler and in Doppler at its delay,
#: at this many points a cell
_PAIR_SPAN_CELLS = 1.0
_PAIR_POINTS_PER_CELL = 4


def _residual_peak(mask: NDArray[np.bool_], stats: _MaskStats, echo: Echo, det: Detection,
                   products: dict[str, Any], noise_var: float) -> tuple[float, tuple[float, float]]:
    """The largest normalised periodogram of the residual (H less the echo and the earlier echoes) near ``echo``.

    Two cuts through the echo, ``_PAIR_SPAN_CELLS`` resolution cells (:attr:`_MaskStats.cells`) either side: in delay at
    the Doppler of the refinement's last product over the symbols, and in Doppler at the echo's delay.  Both
    come from the refinement's own last products over H (``products``, see :func:`_refine`), the echo's share
    taken out exactly on the mask: no further product over H.  The statistic is
    ``mean_c |<p, r_c>|**2 / (||p||**2 sigma**2)`` for the pattern ``p`` of a path at the point, the map's cell
    statistic (Gamma(C, 1/C) for noise alone: compare with :func:`significance_threshold`).

    Returns
    -------
    statistic : float
    point : (float, float)
        (delay s, Doppler Hz) where it peaks.
    """
    cell_tau, cell_f = stats.cells
    offsets, delay_phasors, doppler_phasors = stats.offset_phasors
    g, q = products["g"], products["q"]
    v = _slow_time_pattern(stats.doppler_rate, products["fd"], False)
    # delay cut: g = v @ (H less earlier echoes), (C, K); the echo's share is a_c along_k sum_l v_l slow_l m_lk;
    # the range phasor at the echo's delay plus an offset is conj(along) times the offset's phasor
    overlap = v * echo.slow
    share = overlap.sum() if stats.full else overlap @ mask
    g = g * np.conj(echo.along) - np.outer(echo.amplitude, share)
    energy = float((v.real**2 + v.imag**2) @ stats.per_symbol)
    cut = g @ delay_phasors                                                          # (C, P)
    stat_tau = np.mean(cut.real**2 + cut.imag**2, axis=0) / (energy * noise_var)
    best_i = int(np.argmax(stat_tau))
    best, point = float(stat_tau[best_i]), (det.delay_s + float(offsets[best_i]) * cell_tau, det.doppler_hz)
    if cell_f:                   # Doppler cut: q = (H less earlier echoes) @ z, (C, S); the echo's share a_c slow_l n_l
        q = (q - np.outer(echo.amplitude, echo.slow * stats.per_symbol)) * \
            np.exp(stats.doppler_rate * (1j * det.doppler_hz))
        cut = q @ doppler_phasors.T
        stat_f = np.mean(cut.real**2 + cut.imag**2, axis=0) / (stats.used * noise_var)
        best_j = int(np.argmax(stat_f))
        if stat_f[best_j] > best:
            best, point = float(stat_f[best_j]), (det.delay_s, det.doppler_hz + float(offsets[best_j]) * cell_f)
    return best, point


#: the two-path fit of an unresolved pair: RELAX rounds at most (extrapolated: see estimate_paths)
_PAIR_RELAX_ROUNDS = 200
#: a residual this far below its echo's map peak, dB, is taken for the echo model's own error, not a second echo:
#: Doppler within a symbol (ICI: -31 dB at 1.9 kHz in 120 kHz), phase noise and I/Q imbalance of a real front end
#: leave residuals some 30 to 60 dB below a strong echo (the 95 dB leakage of sim_single_bs: -65 dB), which the
#: two-path fit then split into a spurious pair, at seconds per echo
PAIR_MODEL_FLOOR_DB = -40.0


def _split_unresolved(work: NDArray[np.complexfloating], mask: NDArray[np.bool_], stats: _MaskStats,
                      rd: RangeDopplerMap, item: tuple[tuple[int, int], Detection, Echo], pending: list[Echo] | None,
                      products: dict[str, Any], subcarrier_spacing_hz: float, symbol_times_s: NDArray[np.float64],
                      carrier_hz: float, noise_var: float, pfa: float,
                      angle_spacing_wl: float | None) -> list[tuple[tuple[int, int], Detection, Echo]]:
    """The model-order test: split a refined echo into two where its residual holds a second, unresolved one.

    Two echoes closer than a resolution cell make one peak; refined as one echo, the estimate lies between
    them, biased by many standard deviations, and the residual (the two minus the one) is strong enough for
    its sidelobes to pass as echoes elsewhere.  ``work`` holds the echo (``item``) and the weaker echoes not yet
    found; ``pending`` (full masks) the stronger echoes found before it, not yet subtracted from ``work``.

    1. the residual's periodogram near the echo (:func:`_residual_peak`) is compared with the significance
       threshold of the map cells, :func:`significance_threshold` (pfa, C), and with the echo's own map peak
       less :data:`PAIR_MODEL_FLOOR_DB` (the echo model's own error); below either (a lone echo, almost
       always) the echo is returned as it is;
    2. otherwise the data less the stronger echoes are fitted with two paths by the package's estimator
       (:func:`sdr_isac.sensing.estimate.estimate_paths`: refinement and RELAX, :func:`_fit_pair`), seeded at
       the echo's estimate and the residual's peak;
    3. the two are kept where the generalised likelihood ratio is significant, ``2 (E_1 - E_2) / sigma**2 >``
       the chi-square quantile at ``pfa`` on the 2 C + 2 added real parameters (a complex amplitude per
       channel, a delay and a Doppler; ``E`` the residual energies of the one- and two-path fits), their
       separation exceeds the chi-square(2) quantile at ``pfa`` in the joint two-path Cramér-Rao bound
       (:func:`~sdr_isac.sensing.crb.paths_delay_doppler_crb`), and each path alone passes the significance
       threshold; otherwise the one echo stays.

    A kept pair reports the joint two-path bound as its variances (far above the single-path bound inside a
    cell).  Returns the echo, or the two, as ``(peak, detection, echo)``; ``work`` is not changed.
    """
    peak, det, echo = item
    num_channels = work.shape[0]
    threshold = significance_threshold(pfa, num_channels)
    stat, seed = _residual_peak(mask, stats, echo, det, products, noise_var)
    if not stat > max(threshold, 10.0 ** ((det.map_snr_db + PAIR_MODEL_FLOOR_DB) / 10.0)):
        return [item]
    _, k_size = mask.shape
    frequencies = subcarrier_spacing_hz * np.arange(k_size, dtype=np.float64)
    times = np.asarray(symbol_times_s, dtype=np.float64)
    dtau, dfd = _bins(rd, subcarrier_spacing_hz)
    # the data of this echo: H less the stronger echoes
    data = np.array(work, dtype=np.complex128)
    subtract(data, mask, pending or [])
    single = data.copy()
    subtract(single, mask, [echo])
    energy_one = float(np.sum(single.real**2 + single.imag**2))
    seeds = iter([(det.delay_s, det.doppler_hz), seed])
    try:
        paths = estimate_paths(data, mask, frequencies, times, np.full(num_channels, noise_var),
                               np.broadcast_to(stats.unit_fim, (num_channels, 2, 2)), 2,
                               lambda _residual: next(seeds), (dtau, dfd or 1.0), num_rounds=_PAIR_RELAX_ROUNDS,
                               accelerate=True)
    except InputError:
        return [item]
    two = data - paths_model(paths, frequencies, times) * mask
    energy_two = float(np.sum(two.real**2 + two.imag**2))
    if not _second_path_significant(energy_one, energy_two, noise_var, pfa, num_channels):
        return [item]
    amplitudes = np.stack([p.amplitudes for p in paths], axis=1)                     # (C, 2)
    try:
        bound = paths_delay_doppler_crb(mask, frequencies, times, (paths[0].delay_s, paths[1].delay_s),
                          (paths[0].doppler, paths[1].doppler), amplitudes, noise_var)
        diff = np.array([paths[0].delay_s - paths[1].delay_s, paths[0].doppler - paths[1].doppler])
        spread = bound[:2, :2] + bound[2:, 2:] - bound[:2, 2:] - bound[2:, :2]
        separation = float(diff @ np.linalg.solve(spread, diff))
    except (InputError, np.linalg.LinAlgError):
        return [item]
    if not separation > sp_stats.chi2.isf(pfa, 2):
        return [item]
    # an unresolved pair lies within one resolution cell; a second path further out was drawn by another,
    # resolved echo's sidelobes (CLEAN finds that echo by itself, and RELAX takes its sidelobes out)
    cell_tau, cell_f = stats.cells
    if (diff[0] / cell_tau) ** 2 + ((diff[1] / cell_f) ** 2 if cell_f else 0.0) >= 1.0:
        return [item]
    pair = []
    for p, path in enumerate(paths):
        # each path on the data less its partner (at the joint fit's amplitudes): its amplitude, SNR, angle
        alone = data - paths_model([paths[1 - p]], frequencies, times) * mask
        det_p, amplitude, slow, along = _refine(alone, mask, stats, rd, peak, subcarrier_spacing_hz, times,
                                                carrier_hz, noise_var, False, angle_spacing_wl, False, None,
                                                (path.delay_s, path.doppler))
        energy = float((slow.real**2 + slow.imag**2) @ stats.per_symbol)
        if not float(np.mean(np.abs(amplitude) ** 2)) * energy / noise_var > threshold:
            return [item]
        pair.append((peak, dataclasses.replace(det_p, map_snr_db=det.map_snr_db + det_p.snr_db - det.snr_db),
                     Echo(amplitude, slow, along)))
    return list(_pair_bound(pair[0], pair[1], mask, subcarrier_spacing_hz, times, carrier_hz, noise_var))


def _second_path_significant(energy_one: float, energy_two: float, noise_var: float, pfa: float,
                             num_channels: int) -> bool:
    """The generalised likelihood-ratio test of a second path: ``2 (E_1 - E_2) / sigma**2`` above the chi-square
    quantile at ``pfa`` on the 2 C + 2 real parameters it adds (an amplitude per channel, a delay, a Doppler)."""
    return 2 * (energy_one - energy_two) / noise_var > sp_stats.chi2.isf(pfa, 2 * num_channels + 2)


def _pair_bound(first: tuple[tuple[int, int], Detection, Echo], second: tuple[tuple[int, int], Detection, Echo],
                mask: NDArray[np.bool_], subcarrier_spacing_hz: float, symbol_times_s: NDArray[np.float64],
                carrier_hz: float, noise_var: float) -> tuple[tuple[tuple[int, int], Detection, Echo],
                                                              tuple[tuple[int, int], Detection, Echo]]:
    """The two echoes of a pair with the joint two-path bound
    (:func:`~sdr_isac.sensing.crb.paths_delay_doppler_crb`) as their variances."""
    frequencies = subcarrier_spacing_hz * np.arange(mask.shape[1], dtype=np.float64)
    times = np.asarray(symbol_times_s, dtype=np.float64)
    (_, det_a, echo_a), (_, det_b, echo_b) = first, second
    # an Echo's slow-time pattern is exp(2 pi j t f) / sqrt(S): the amplitude per RE is amplitude / sqrt(S)
    amplitudes = np.stack([echo_a.amplitude, echo_b.amplitude], axis=1) / math.sqrt(echo_a.slow.size)
    try:
        bound = paths_delay_doppler_crb(mask, frequencies, times, (det_a.delay_s, det_b.delay_s),
                          (det_a.doppler_hz, det_b.doppler_hz), amplitudes, noise_var)
    except InputError:
        return first, second
    half = 0.5 if det_a.geometry == "monostatic" else 1.0
    wavelength = SPEED_OF_LIGHT_MPS / carrier_hz
    out = []
    for p, (peak, det, echo) in enumerate((first, second)):
        out.append((peak, dataclasses.replace(
            det, range_var_m2=float(bound[2 * p, 2 * p]) * (SPEED_OF_LIGHT_MPS * half) ** 2,
            velocity_var_mps2=float(bound[2 * p + 1, 2 * p + 1]) * (wavelength * half) ** 2), echo))
    return out[0], out[1]


def _merged_unless_significant(work: NDArray[np.complexfloating], mask: NDArray[np.bool_], stats: _MaskStats,
                               rd: RangeDopplerMap, first: tuple[tuple[int, int], Detection, Echo],
                               second: tuple[tuple[int, int], Detection, Echo], others: list[Echo] | None,
                               subcarrier_spacing_hz: float, symbol_times_s: NDArray[np.float64], carrier_hz: float,
                               noise_var: float, pfa: float,
                               angle_spacing_wl: float | None) -> tuple[tuple[int, int], Detection, Echo] | None:
    """None where the pair ``first``, ``second`` still beats one echo (the likelihood-ratio test of
    :func:`_split_unresolved`) on H less the ``others`` (full masks; otherwise ``work`` has every echo
    subtracted); else the one echo refined there from the stronger one's position."""
    data = np.array(work, dtype=np.complex128)
    if others is None:
        subtract(data, mask, [Echo(-e.amplitude, e.slow, e.along) for e in (first[2], second[2])])
    else:
        subtract(data, mask, others)
    times = np.asarray(symbol_times_s, dtype=np.float64)
    frequencies = subcarrier_spacing_hz * np.arange(mask.shape[1], dtype=np.float64)
    num_channels = data.shape[0]
    energy_two = float(np.sum(joint_fit_energies(data, mask, frequencies, times,
                                                 [(d.delay_s, d.doppler_hz) for d in (first[1], second[1])])))
    strong = first if first[1].snr_db >= second[1].snr_db else second
    det, amplitude, slow, along = _refine(data, mask, stats, rd, strong[0], subcarrier_spacing_hz, times, carrier_hz,
                                          noise_var, True, angle_spacing_wl, False, None,
                                          (strong[1].delay_s, strong[1].doppler_hz))
    one = Echo(amplitude, slow, along)
    single = data.copy()
    subtract(single, mask, [one])
    energy_one = float(np.sum(single.real**2 + single.imag**2))
    if _second_path_significant(energy_one, energy_two, noise_var, pfa, num_channels):
        return None
    return strong[0], dataclasses.replace(det, map_snr_db=max(first[1].map_snr_db, second[1].map_snr_db)), one
