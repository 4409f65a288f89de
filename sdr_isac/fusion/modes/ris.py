"""BS–RIS cooperative sensing of a target the base station cannot see (article §IV, node-level cooperation).

A building blocks the line of sight from the base station (BS) to the
target.  A reconfigurable intelligent surface (RIS) that both can see
carries the echo around it: BS → RIS → target → RIS → BS.  The BS programs
the RIS to reflect the wave arriving from the BS towards outgoing azimuth
``phi_s`` (one frame per steering, ``s = 0 ... S-1``), so the scan of phase
profiles is a scan of angles seen from the RIS.

Model (that of :meth:`sdr_isac.channel.scene.Scene._add_ris_paths`): the RIS
is an ``N_y x N_z`` grid in its local y-z plane with spacing ``d`` (in
wavelengths).  Programmed for incoming cone sine ``sin(phi_in)`` and
outgoing ``sin(phi_s)``, one pass between the BS (local direction cone sine
``u_bs``, the y component of the unit vector) and the target (``u``) has the
array factor ``N_y D(u_bs - sin phi_in + u - sin phi_s) F_z`` with the
Dirichlet kernel ``D(x) = sin(pi N_y d x) / (N_y sin(pi d x))`` and an
elevation factor ``F_z`` the scan does not change.  The BS programs
``sin(phi_in) = u_bs`` (it knows where it is), so the double-pass echo of
steering s has amplitude ``beta g_s(u)`` with

    g_s(u) = D(u - sin(phi_s))**2,   0 <= g_s <= 1,   g_s = 1 when the RIS points at the target

(:func:`scan_gain`); ``u = sin(az) cos(el)`` is the target's cone sine
(azimuth ``az`` in the RIS's local frame, elevation ``el``).  The frames are
taken at different times, so each carries its own carrier phase.

The algorithm (:func:`estimate_ris_target`):

1. **Detection** (:func:`detect_scan`): the S frames' delay-Doppler
   periodograms, each in units of the noise level per cell (noise pooled
   over the scan by the median, :func:`sdr_isac.fusion.completion.noise_variance`);
   the test statistic is the largest cell over the steerings and the window
   of delays an echo through the RIS can have (path lengths from
   ``2 d_BR`` to ``2 d_BR + 2 R_max``, ``d_BR`` the known BS–RIS
   distance), against the threshold of a design false-alarm probability
   for the whole scan (:func:`scan_threshold`).
2. **Range and velocity** from the strongest steering's CIM: off-grid
   maximum likelihood of delay ``tau`` and normalised Doppler ``nu``
   (:func:`sdr_isac.fusion.multiband.refine`).  Range from the RIS
   ``R = (c tau - 2 d_BR) / 2`` (the path is ``2 d_BR + 2 R``; the BS is its
   own clock, so no offset); radial velocity with respect to the (static)
   RIS ``v = -c nu / 2`` (positive moving away: ``f_D = -2 v f_c / c``).
3. **Angle** (:func:`scan_angle`): the echo's complex amplitude ``z_s`` in
   every frame at ``(tau, nu)`` (matched filter); with a phase of its own
   per frame, the maximum-likelihood cone sine maximises
   ``(sum_s |z_s| g_s(u))**2 / sum_s g_s(u)**2`` (the least-squares fit of
   ``beta g_s(u)`` to ``|z_s|``, phases and ``beta`` eliminated).
4. **Position**: with the target's height known (ground traffic, or a
   UAV's reported altitude; default the RIS's own height), the elevation
   is ``asin(dz / R)``, the azimuth ``asin(u / cos el)`` (in front of the
   surface) and the global position ``p = p_RIS + R (cos el rot(yaw)
   [cos az, sin az, 0] + [0, 0, sin el])`` (:func:`ris_position`).

Bounds: range and velocity from :meth:`Band.crb` at the strongest
steering's per-RE SNR; the cone sine from the Fisher information of the
scan model (:func:`scan_angle_crb`), the azimuth by the delta method, the
position by ``J diag(var R, var az) J^T`` (range and angle information
decouple: the per-frame phases absorb the cross terms).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize as sp_opt
import scipy.special as sp_special
from numpy.typing import ArrayLike, NDArray

from sdr_isac.channel.geometry import rotation_z, to_local
from sdr_isac.config import RisConfig
from sdr_isac.errors import InputError
from sdr_isac.fusion.completion import to_delay_doppler
from sdr_isac.fusion.multiband import Band, common_grid, refine
from sdr_isac.sensing.detection import significance_threshold
from sdr_isac.sensing.estimate import resolvable_steps
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["RisGeometry", "ScanDetection", "RisEstimate", "scan_gain", "scan_threshold", "detect_scan",
           "scan_angle", "scan_angle_crb", "ris_position", "position_covariance", "estimate_ris_target"]

_C = SPEED_OF_LIGHT_MPS


def _point(name: str, value: ArrayLike) -> NDArray[np.float64]:
    p = np.asarray(value, dtype=np.float64)
    if p.shape != (3,) or not np.all(np.isfinite(p)):
        raise InputError(f"{name} = {value!r} m: allowed three finite coordinates [x, y, z] in m")
    return p


@dataclass(frozen=True, eq=False)
class RisGeometry:
    """Where the BS and the RIS are, and the RIS's horizontal aperture.

    Attributes
    ----------
    bs_m : ndarray, shape (3,), float64
        BS position, m (global frame).
    ris_m : ndarray, shape (3,), float64
        Centre of the RIS, m.
    ris_yaw_deg : float
        Azimuth of the RIS's normal (its local +x) from global +x, degrees.
    num_elements_y : int
        Elements along the RIS's horizontal (local y) axis, >= 2.
    spacing_wavelengths : float
        Element spacing d / lambda along y, 0 < d <= 1.
    """

    bs_m: NDArray[np.float64]
    ris_m: NDArray[np.float64]
    ris_yaw_deg: float = 0.0
    num_elements_y: int = 16
    spacing_wavelengths: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "bs_m", _point("bs_m", self.bs_m))
        object.__setattr__(self, "ris_m", _point("ris_m", self.ris_m))
        if not np.isfinite(self.ris_yaw_deg):
            raise InputError(f"ris_yaw_deg = {self.ris_yaw_deg!r} deg: allowed a finite azimuth in degrees")
        n = self.num_elements_y
        if isinstance(n, bool) or int(n) != n or n < 2:
            raise InputError(f"num_elements_y = {n!r}: allowed a whole number >= 2 (elements along the RIS's "
                             "horizontal axis)")
        if not (np.isfinite(self.spacing_wavelengths) and 0 < self.spacing_wavelengths <= 1.0):
            raise InputError(f"spacing_wavelengths = {self.spacing_wavelengths!r} wavelengths: allowed 0 < d <= 1 "
                             "(0.5 for a half-wavelength surface)")
        if self.bs_ris_distance_m <= 0:
            raise InputError(f"bs_m = {self.bs_m.tolist()} m equals ris_m: allowed distinct BS and RIS positions")
        if self.local(self.bs_m)[0] <= 0:
            raise InputError(f"bs_m = {self.bs_m.tolist()} m is behind the RIS (yaw {self.ris_yaw_deg} deg): "
                             "allowed a BS in front of the surface; turn the RIS (ris_yaw_deg) to face the BS")

    @classmethod
    def of(cls, ris: RisConfig, bs_m: ArrayLike) -> RisGeometry:
        """The geometry of a scene's ``[[scene.ris]]`` entry seen by the BS at ``bs_m`` (m)."""
        return cls(np.asarray(bs_m, dtype=np.float64), np.asarray(ris.position_m, dtype=np.float64), ris.yaw_deg,
                   max(ris.num_elements[0], 2), ris.spacing_wavelengths)

    @property
    def bs_ris_distance_m(self) -> float:
        """d_BR, m."""
        return float(np.linalg.norm(self.bs_m - self.ris_m))

    def local(self, point_m: ArrayLike) -> NDArray[np.float64]:
        """Unit direction from the RIS centre to ``point_m`` in the RIS's local frame, shape (3,)."""
        d = np.asarray(point_m, dtype=np.float64) - self.ris_m
        return to_local(d / np.linalg.norm(d), self.ris_yaw_deg)

    @property
    def incoming_sine(self) -> float:
        """u_bs: the BS's cone sine (local y component of the direction to it)."""
        return float(self.local(self.bs_m)[1])

    @property
    def incoming_deg(self) -> float:
        """The incoming azimuth to program, ``asin(u_bs)`` in degrees (it removes the BS term exactly)."""
        return math.degrees(math.asin(self.incoming_sine))


def scan_gain(steer_sines: ArrayLike, target_sine: ArrayLike, num_elements_y: int,
              spacing_wavelengths: float) -> NDArray[np.float64]:
    """Double-pass amplitude ``g = D(u - sin phi_s)**2`` of the echo, relative to a RIS steered at the target.

    Parameters
    ----------
    steer_sines : array_like, shape (S,)
        ``sin(phi_s)`` of the programmed outgoing azimuths.
    target_sine : float or array_like
        The target's cone sine u (broadcast against ``steer_sines``).
    num_elements_y, spacing_wavelengths : int, float
        As in :class:`RisGeometry`.

    Returns
    -------
    ndarray, broadcast shape, float64, in [0, 1]
    """
    x = 2.0 * np.pi * spacing_wavelengths * (np.asarray(target_sine, dtype=np.float64)
                                             - np.asarray(steer_sines, dtype=np.float64))
    return np.asarray(sp_special.diric(x, int(num_elements_y)) ** 2, dtype=np.float64)


def _scan_gain_slope(steer_sines: NDArray[np.float64], u: float, n: int, d: float) -> NDArray[np.float64]:
    h = 1e-6 / (n * d)
    return (scan_gain(steer_sines, u + h, n, d) - scan_gain(steer_sines, u - h, n, d)) / (2.0 * h)


def scan_threshold(pfa: float, num_cells: int) -> float:
    """Threshold on the largest of ``num_cells`` noise-normalised periodogram cells for false-alarm probability ``pfa``.

    Noise only, every cell's power over its mean is a unit exponential, and
    with every RE a pilot the cells of the unitary 2-D DFT are independent,
    so ``P(max > eta) = 1 - (1 - exp(-eta))**N``.  Setting it to ``pfa``
    gives the per-cell probability ``1 - (1 - pfa)**(1/N)`` and
    ``eta = -ln`` of it (:func:`sdr_isac.sensing.detection.significance_threshold`
    with one channel), about ``ln(N / pfa)``.

    >>> round(scan_threshold(1e-3, 1000), 2)
    13.82
    """
    if not (np.isfinite(pfa) and 0.0 < pfa < 1.0):
        raise InputError(f"pfa = {pfa!r}: allowed a false-alarm probability 0 < pfa < 1 (e.g. 1e-3)")
    if isinstance(num_cells, bool) or int(num_cells) != num_cells or num_cells < 1:
        raise InputError(f"num_cells = {num_cells!r}: allowed a whole number >= 1")
    per_cell = -math.expm1(math.log1p(-pfa) / int(num_cells))
    return significance_threshold(per_cell, 1)


@dataclass(frozen=True)
class ScanDetection:
    """Outcome of the detection test over a stack of frames (:func:`detect_scan`).

    Attributes
    ----------
    detected : bool
        ``statistic > threshold``.
    statistic, threshold : float
        Largest noise-normalised cell in the window, and the threshold.
    num_cells : int
        Cells the statistic was taken over (frames x delays x Dopplers).
    noise_var : float
        Noise variance per RE (pooled over the frames).
    index : int
        Frame (steering) of the largest cell.
    delay_s, nu : float
        Off-grid ML delay (s) and normalised Doppler ``f_D / f_c`` in that frame (when
        not detected: the cell's grid values, unrefined).
    amplitudes : ndarray, shape (S,), complex128
        Matched-filter amplitude of a path at ``(delay_s, nu)`` in every frame.
    snr_re : float
        ``|amplitudes[index]|**2 / noise_var``: per-RE SNR in the best frame.
    """

    detected: bool
    statistic: float
    threshold: float
    num_cells: int
    noise_var: float
    index: int
    delay_s: float
    nu: float
    amplitudes: NDArray[np.complex128] = field(repr=False)
    snr_re: float


def _check_stack(band: Band, cims: ArrayLike) -> NDArray[np.complex128]:
    h = np.asarray(cims)
    if h.ndim == 2:
        h = h[None]
    if h.ndim != 3 or h.shape[1:] != band.pilots.shape or h.shape[0] < 1:
        raise InputError(f"cims has shape {np.shape(cims)}: allowed (S, {band.num_symbols}, {band.num_subcarriers}), "
                         f"one (symbols, subcarriers) CIM of band {band.name!r} per frame")
    if not np.all(np.isfinite(h)):
        raise InputError("cims has non-finite entries: allowed finite complex values; check the capture")
    return h.astype(np.complex128, copy=False)


def detect_scan(band: Band, cims: ArrayLike, pfa: float = 1e-3, min_delay_s: float = 0.0,
                max_delay_s: float | None = None, noise_var: float | None = None) -> ScanDetection:
    """Detection test over S frames: the largest noise-normalised delay-Doppler cell against :func:`scan_threshold`.

    Parameters
    ----------
    band : Band
        The frames' OFDM parameters and pilots.
    cims : array_like, shape (S, M, K) or (M, K), complex
        One CIM per frame (RIS steering), ``H = Y / X`` on the pilots.
    pfa : float
        Design probability that noise alone crosses the threshold anywhere
        in the window of any frame, 0 < pfa < 1.
    min_delay_s, max_delay_s : float
        Delay window searched, s (default: all delays the pilots resolve).
    noise_var : float, optional
        Noise variance per RE; default estimated by the median of the
        periodogram cells of all frames (robust to a few targets).

    Returns
    -------
    ScanDetection
        With the strongest cell's path (refined off the grid when detected;
        callers report nothing otherwise).
    """
    h = _check_stack(band, cims)
    pilots = band.pilots
    grid = common_grid([band])
    step_m, step_k = resolvable_steps([pilots])
    delays = np.arange(band.num_subcarriers) * grid.delay_bin_s
    nu = grid.nu_axis()
    max_d = np.inf if max_delay_s is None else float(max_delay_s)
    if not (np.isfinite(min_delay_s) and min_delay_s >= 0 and max_d > min_delay_s):
        raise InputError(f"delay window [{min_delay_s!r}, {max_delay_s!r}] s: allowed 0 <= min_delay_s < "
                         "max_delay_s")
    ok_r = (delays >= min_delay_s) & (delays <= max_d) & (np.arange(delays.size) < band.num_subcarriers // step_k)
    n_d = band.num_symbols // step_m                 # the map repeats every n_d Doppler bins: keep one period
    first = band.num_symbols // 2 - n_d // 2
    ok_d = (np.arange(nu.size) >= first) & (np.arange(nu.size) < first + n_d)
    if not ok_r.any():
        raise InputError(f"delay window [{min_delay_s:.4g}, {max_d:.4g}] s holds no delay bin (bin "
                         f"{grid.delay_bin_s:.4g} s, unambiguous up to {delays.size // step_k * grid.delay_bin_s:.4g}"
                         " s): allowed a window of at least one bin inside the unambiguous delays")
    x = np.fft.fftshift(to_delay_doppler(np.where(pilots, h, 0)), axes=-2)        # (S, Doppler, delay)
    cells = np.abs(x) ** 2
    # noise: the median cell of all frames (sdr_isac.fusion.completion.noise_variance, pooled over the scan)
    cell_noise = float(np.median(cells)) / math.log(2.0) if noise_var is None else \
        float(noise_var) * np.count_nonzero(pilots) / pilots.size
    sigma2 = cell_noise * pilots.size / np.count_nonzero(pilots)
    if not (np.isfinite(sigma2) and sigma2 > 0):
        raise InputError(f"noise variance {sigma2!r} per RE: allowed a finite value > 0; are the CIMs all zero?")
    power = cells[:, ok_d][:, :, ok_r] / cell_noise
    num_cells = int(power.size)
    s, d, r = np.unravel_index(int(np.argmax(power)), power.shape)
    statistic = float(power[s, d, r])
    threshold = scan_threshold(pfa, num_cells)
    start = (float(delays[ok_r][r]), float(nu[ok_d][d]))
    detected = statistic > threshold
    if detected:
        tau, nu_hat, amps = _frame_fit(band, h, int(s), sigma2, start)
    else:
        (tau, nu_hat), amps = start, _amplitudes(band, h, *start)
    return ScanDetection(detected, statistic, threshold, num_cells, sigma2, int(s), float(tau),
                         float(nu_hat), amps, float(abs(amps[s]) ** 2 / sigma2))


def _amplitudes(band: Band, h: NDArray[np.complex128], tau: float, nu: float) -> NDArray[np.complex128]:
    """Matched-filter amplitude of a path at ``(tau, nu)`` in every frame, shape (S,)."""
    k_hz = np.arange(band.num_subcarriers) * band.subcarrier_spacing_hz
    model = np.outer(np.exp(2j * np.pi * band.symbol_times_s * band.carrier_hz * nu),
                     np.exp(-2j * np.pi * k_hz * tau)) * band.pilots
    return np.asarray(np.einsum("mk,smk->s", model.conj(), h) / float(np.sum(np.abs(model) ** 2)))


def _frame_fit(band: Band, h: NDArray[np.complex128], s: int, sigma2: float, start: tuple[float, float]
               ) -> tuple[float, float, NDArray[np.complex128]]:
    """``(tau, nu)`` refined off the grid on frame ``s`` from ``start``, and every frame's amplitude there."""
    grid = common_grid([band])
    tau, nu = refine([band], [h[s]], [sigma2], start, (grid.delay_bin_s, grid.nu_bin))
    return float(tau), float(nu), _amplitudes(band, h, tau, nu)


def _steer_sines(steer_deg: ArrayLike, num: int | None = None) -> NDArray[np.float64]:
    a = np.atleast_1d(np.asarray(steer_deg, dtype=np.float64))
    if a.ndim != 1 or a.size < 2 or not np.all(np.isfinite(a)) or np.any(np.abs(a) >= 90.0):
        raise InputError(f"steer_deg = {steer_deg!r} deg: allowed two or more finite outgoing azimuths with |phi| < "
                         "90 deg (in front of the surface)")
    if num is not None and a.size != num:
        raise InputError(f"steer_deg has {a.size} angles and cims {num} frames: allowed one steering per frame")
    return np.sin(np.deg2rad(a))


def scan_angle(amplitudes: ArrayLike, steer_deg: ArrayLike, num_elements_y: int,
               spacing_wavelengths: float) -> tuple[float, float]:
    """Maximum-likelihood cone sine of the target from the echo amplitudes over the scan.

    Model ``z_s = beta exp(j theta_s) g_s(u) + w_s`` (:func:`scan_gain`),
    ``theta_s`` unknown per frame, ``beta > 0``, white Gaussian ``w_s``:
    maximising over ``theta_s`` and ``beta`` leaves
    ``(sum_s |z_s| g_s(u))**2 / sum_s g_s(u)**2``, searched on a grid of
    ``u`` (16 points per null-to-null half width) and refined by a bounded
    scalar search around the best point.

    Parameters
    ----------
    amplitudes : array_like, shape (S,), complex
        ``z_s``, e.g. :attr:`ScanDetection.amplitudes`.
    steer_deg : array_like, shape (S,)
        Outgoing azimuth of each frame's programmed profile, degrees.

    Returns
    -------
    u : float
        Cone sine ``sin(az) cos(el)`` of the target, in [-1, 1].
    beta : float
        Echo amplitude with the RIS steered at the target (same unit as ``z``).
    """
    z = np.abs(np.asarray(amplitudes, dtype=np.complex128)).ravel()
    sines = _steer_sines(steer_deg, z.size)
    if not np.all(np.isfinite(z)):
        raise InputError("amplitudes has non-finite entries: allowed finite complex values")
    n, d = int(num_elements_y), float(spacing_wavelengths)

    def fit(u: float) -> float:
        g = scan_gain(sines, u, n, d)
        den = float(g @ g)
        return float(z @ g) ** 2 / den if den > 0 else 0.0

    step = 1.0 / (16.0 * n * d)
    grid = np.arange(-1.0, 1.0 + step / 2, step)
    g_all = scan_gain(sines[None, :], grid[:, None], n, d)
    den = np.maximum(np.sum(g_all**2, axis=1), 1e-300)
    best = float(grid[int(np.argmax((g_all @ z) ** 2 / den))])
    res = sp_opt.minimize_scalar(lambda u: -fit(u), bounds=(max(-1.0, best - step), min(1.0, best + step)),
                                 method="bounded", options={"xatol": 1e-9})
    u = float(res.x) if -res.fun >= fit(best) else best
    g = scan_gain(sines, u, n, d)
    return u, float(z @ g) / float(g @ g)


def scan_angle_crb(snr_re: float, num_pilots: int, steer_deg: ArrayLike, target_sine: float, num_elements_y: int,
                   spacing_wavelengths: float) -> float:
    """CRB on the cone sine u from the scan's echo amplitudes (dimensionless²).

    ``z_s = beta exp(j theta_s) g_s(u) + w_s`` with ``E|w_s|**2 = sigma**2 / n``
    (the matched filter over ``n`` pilot REs) and ``beta**2 = gamma sigma**2``
    (``gamma``: per-RE SNR with the RIS steered at the target).  The Fisher
    information of ``(u, beta, theta_1 ... theta_S)``,
    ``J = (2 / var w) Re sum_s d mu_s^H d mu_s``, is block diagonal in the
    phases (``Re(j beta**2 g_s g_s') = 0``) and leaves

    ``var(u) >= 1 / (2 gamma n (sum g_s'**2 - (sum g_s g_s')**2 / sum g_s**2))``.

    Parameters
    ----------
    snr_re : float
        gamma, linear (> 0).
    num_pilots : int
        n, pilot REs per frame.
    steer_deg : array_like, shape (S,)
        The scan's outgoing azimuths, degrees.
    target_sine : float
        u at which to evaluate the bound.
    """
    if not (np.isfinite(snr_re) and snr_re > 0):
        raise InputError(f"snr_re = {snr_re!r}: allowed a finite linear SNR > 0")
    if isinstance(num_pilots, bool) or int(num_pilots) != num_pilots or num_pilots < 1:
        raise InputError(f"num_pilots = {num_pilots!r}: allowed a whole number of REs >= 1")
    if not (np.isfinite(target_sine) and abs(target_sine) <= 1.0):
        raise InputError(f"target_sine = {target_sine!r}: allowed a cone sine in [-1, 1]")
    sines = _steer_sines(steer_deg)
    n, d = int(num_elements_y), float(spacing_wavelengths)
    g = scan_gain(sines, target_sine, n, d)
    dg = _scan_gain_slope(sines, float(target_sine), n, d)
    info = float(dg @ dg - (g @ dg) ** 2 / (g @ g)) if float(g @ g) > 0 else 0.0
    if info <= 0:
        return math.inf
    return 1.0 / (2.0 * snr_re * num_pilots * info)


def ris_position(geometry: RisGeometry, range_m: float, target_sine: float,
                 height_m: float | None = None) -> tuple[NDArray[np.float64], float, float]:
    """Global position of a target at range ``range_m`` from the RIS with cone sine ``target_sine``.

    The target is in front of the surface (local x > 0) at height
    ``height_m`` (default the RIS's): ``el = asin(dz / R)``, ``az =
    asin(u / cos el)`` (clipped to +-90 deg when noise pushes ``|u| > cos el``).

    Returns
    -------
    position_m : ndarray, shape (3,), m
    azimuth_rad : float
        In the RIS's local frame, from its normal towards its local +y.
    elevation_rad : float
    """
    dz = 0.0 if height_m is None else float(height_m) - float(geometry.ris_m[2])
    if not (np.isfinite(range_m) and range_m > abs(dz)):
        raise InputError(f"range_m = {range_m!r} m: allowed a range from the RIS greater than the height "
                         f"difference {abs(dz):.3g} m to the target")
    el = math.asin(dz / range_m)
    az = math.asin(float(np.clip(target_sine / math.cos(el), -1.0, 1.0)))
    local = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    return geometry.ris_m + range_m * (rotation_z(geometry.ris_yaw_deg) @ local), az, el


@dataclass(frozen=True)
class RisEstimate:
    """A target found through the RIS: range, radial velocity and azimuth seen from the RIS, global position.

    Attributes
    ----------
    range_m : float
        Distance RIS–target, m.
    velocity_mps : float
        Radial velocity with respect to the RIS, m/s (positive moving away).
    azimuth_rad : float
        Azimuth in the RIS's local frame (from its normal towards local +y), rad.
    cone_sine : float
        ``sin(az) cos(el)``, what the scan measures.
    position_m : ndarray, shape (3,), m
        Global position (its height is the one given).
    index : int
        Frame (steering) the range and velocity come from (the strongest).
    snr_re : float
        Per-RE SNR in that frame (linear).
    snr_re_steered : float
        Per-RE SNR with the RIS steered at the target, ``beta**2 / sigma**2`` (linear).
    var_range_m2, var_velocity_mps2, var_azimuth_rad2 : float
        CRBs at the estimated SNRs (module docstring).
    cov_position_m2 : ndarray, shape (2, 2)
        Horizontal position covariance ``J diag(var R, var az) J^T``, m².
    detection : ScanDetection
    """

    range_m: float
    velocity_mps: float
    azimuth_rad: float
    cone_sine: float
    position_m: NDArray[np.float64]
    index: int
    snr_re: float
    snr_re_steered: float
    var_range_m2: float
    var_velocity_mps2: float
    var_azimuth_rad2: float
    cov_position_m2: NDArray[np.float64] = field(repr=False)
    detection: ScanDetection = field(repr=False)


def position_covariance(geometry: RisGeometry, range_m: float, azimuth_rad: float, elevation_rad: float,
                        var_range_m2: float, var_azimuth_rad2: float) -> NDArray[np.float64]:
    """Horizontal position covariance (2 x 2, m²) of :func:`ris_position` by the delta method.

    What is measured is the range ``R`` and the cone sine ``u = cos el sin az`` (independent errors;
    ``var_azimuth_rad2`` is taken as ``var_u / (cos el cos az)**2``, how it is given).  In the RIS frame
    ``y = u R`` and ``x = sqrt(R**2 - dz**2 - u**2 R**2)``, so ``dy/dR = u``, ``dy/du = R``,
    ``dx/dR = R (1 - u**2) / x``, ``dx/du = -u R**2 / x``: with a height difference ``dz`` the azimuth
    ``asin(u R / sqrt(R**2 - dz**2))`` depends on the range too (a UAV 45 m above the surface had a
    covariance that ignored it: NEES 4 for 2 degrees of freedom).  With ``dz = 0`` this is
    ``dp/dR = e(az)``, ``dp/daz = R e'(az)``.
    """
    cos_el = math.cos(elevation_rad)
    u = cos_el * math.sin(azimuth_rad)
    var_u = var_azimuth_rad2 * (cos_el * math.cos(azimuth_rad)) ** 2
    x = range_m * cos_el * math.cos(azimuth_rad)
    yaw = math.radians(geometry.ris_yaw_deg)
    rot = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
    if x <= 1e-9 * range_m:                          # at the surface's edge (|az| = 90 deg): no depth left
        h = range_m * cos_el
        e = np.array([math.cos(yaw + azimuth_rad), math.sin(yaw + azimuth_rad)])
        jac_az = np.stack([(range_m / max(h, 1e-300)) * e, h * np.array([-e[1], e[0]])], axis=1)
        return np.asarray(jac_az @ np.diag([var_range_m2, var_azimuth_rad2]) @ jac_az.T, dtype=np.float64)
    local = np.array([[range_m * (1.0 - u * u) / x, -u * range_m**2 / x],
                      [u, range_m]])
    jac = rot @ local
    return np.asarray(jac @ np.diag([var_range_m2, var_u]) @ jac.T, dtype=np.float64)


def estimate_ris_target(band: Band, cims: ArrayLike, steer_deg: Sequence[float] | ArrayLike, geometry: RisGeometry,
                        *, pfa: float = 1e-3, max_range_m: float | None = None,
                        height_m: float | None = None) -> RisEstimate | None:
    """Find a target through the RIS scan: detection, range, radial velocity, azimuth, global position.

    Parameters
    ----------
    band : Band
        OFDM parameters and pilots of every frame.
    cims : array_like, shape (S, M, K), complex
        The BS's monostatic CIM in each frame; frame s with the RIS
        programmed for incoming ``geometry.incoming_deg`` and outgoing
        ``steer_deg[s]``.
    steer_deg : array_like, shape (S,)
        Outgoing azimuths of the scan (RIS local frame), degrees, |phi| < 90.
    geometry : RisGeometry
    pfa : float
        Design false-alarm probability of the whole scan (:func:`detect_scan`).
    max_range_m : float, optional
        Largest target range from the RIS searched, m (default: up to the
        end of the unambiguous delays).
    height_m : float, optional
        Target height, m (default the RIS's).

    Returns
    -------
    RisEstimate, or None when the test detects nothing.
    """
    h = _check_stack(band, cims)
    _steer_sines(steer_deg, h.shape[0])            # validates the scan against the frames
    if max_range_m is not None and not (np.isfinite(max_range_m) and max_range_m > 0):
        raise InputError(f"max_range_m = {max_range_m!r} m: allowed a finite range > 0 (or None)")
    d_br = geometry.bs_ris_distance_m
    bin_s = common_grid([band]).delay_bin_s
    min_delay = max(0.0, 2.0 * d_br / _C - bin_s)
    max_delay = None if max_range_m is None else (2.0 * d_br + 2.0 * max_range_m) / _C
    det = detect_scan(band, h, pfa, min_delay, max_delay)
    if not det.detected:
        return None
    n, d = geometry.num_elements_y, geometry.spacing_wavelengths
    u, beta = scan_angle(det.amplitudes, steer_deg, n, d)
    # range, Doppler and SNR from the frame steered best at the fitted angle, not from the frame of the largest
    # cell: that choice favours the frame whose noise helped, and its range came out biased (-0.23 sigma at
    # -20 dB per RE); the angle, fitted on every frame's amplitude, hardly depends on one frame's noise
    best = int(np.argmax(scan_gain(_steer_sines(steer_deg, h.shape[0]), u, n, d)))
    if best != det.index:
        tau, nu_hat, amps = _frame_fit(band, h, best, det.noise_var, (det.delay_s, det.nu))
        det = dataclasses.replace(det, index=best, delay_s=tau, nu=nu_hat, amplitudes=amps,
                                  snr_re=float(abs(amps[best]) ** 2 / det.noise_var))
    range_m = _C * det.delay_s / 2.0 - d_br
    dz = 0.0 if height_m is None else float(height_m) - float(geometry.ris_m[2])
    range_m = max(range_m, abs(dz) + 1e-3)        # a noise-level range inside the height difference
    position, az, el = ris_position(geometry, range_m, u, height_m)
    crb = band.crb(max(det.snr_re, 1e-12))
    gamma = max(beta**2 / det.noise_var, 1e-12)
    var_u = scan_angle_crb(gamma, int(np.count_nonzero(band.pilots)), steer_deg, float(np.clip(u, -1, 1)), n, d)
    cos_prod = abs(math.cos(az) * math.cos(el))
    var_az = var_u / cos_prod**2 if cos_prod > 0 else math.inf
    var_r = (_C / 2.0) ** 2 * float(crb[0, 0])
    cov = position_covariance(geometry, range_m, az, el, var_r, var_az)
    return RisEstimate(range_m, -_C * det.nu / 2.0, az, u, position, det.index, det.snr_re, gamma, var_r,
                       (_C / 2.0) ** 2 * float(crb[1, 1]), var_az, cov, det)
