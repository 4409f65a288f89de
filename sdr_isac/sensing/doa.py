"""Direction of arrival (azimuth) for linear arrays: beamforming, subspace methods, model order, co-array.

Array convention (the same as :mod:`sdr_isac.channel.geometry`): the array lies
along the node's local +y axis, element ``n`` at ``positions_wl[n]``
wavelengths; azimuth ``theta`` (rad) is measured from boresight +x towards +y,
and the steering vector is::

    a_n(theta) = exp(+j 2 pi p_n sin(theta))

A scene :class:`~sdr_isac.config.ArrayConfig` gives element *indices* in
``positions_wavelengths``; the positions in wavelengths are
``spacing_wavelengths * indices``.

Snapshots ``X`` have shape ``(num_elements, num_snapshots)``, complex: one
column per snapshot (a time sample, a resource element, a range-Doppler cell).

Methods
-------
* :class:`BartlettEstimator` -- conventional beamformer (Rayleigh-limited).
* :class:`MusicEstimator` -- MUSIC spectral search plus local refinement
  (Schmidt, IEEE TAP 1986); any linear array.
* :class:`RootMusicEstimator` -- root-MUSIC (Barabell 1983); ULA only.
* :class:`EspritEstimator` -- TLS-ESPRIT (Roy & Kailath, IEEE TASSP 1989); ULA only.
* :class:`CoarrayMusicEstimator` -- MUSIC on the virtual ULA of the difference
  co-array of a sparse array (Pal & Vaidyanathan, IEEE TSP 2010), the article's
  "hybrid cross-multiplication among antennas" (seed §III-A-2): the products
  x_i x_j^* of element signals are virtual elements at lags p_i - p_j, so a
  nested or coprime array of N elements resolves O(N^2) uncorrelated sources.
* :func:`spatial_smoothing` -- decorrelates coherent sources on a ULA
  (Shan, Wax & Kailath, IEEE TASSP 1985; forward-backward: Pillai & Kwon 1989).
* :func:`mdl_order`, :func:`aic_order`, :func:`estimate_num_sources` --
  number of sources (Wax & Kailath, IEEE TASSP 1985).
* :func:`angle_crb_rad2` -- single-source Cramér-Rao bound (re-exported from :mod:`sdr_isac.sensing.crb`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError
from sdr_isac.sensing.crb import angle_crb_rad2, element_positions_wl

__all__ = [
    "steering_matrix",
    "sample_covariance",
    "spatial_smoothing",
    "DifferenceCoarray",
    "difference_coarray",
    "coarray_covariance",
    "mdl_order",
    "aic_order",
    "estimate_num_sources",
    "angle_crb_rad2",
    "BartlettEstimator",
    "MusicEstimator",
    "RootMusicEstimator",
    "EspritEstimator",
    "CoarrayMusicEstimator",
]

_REL_TOL = 1e-6  # tolerance, relative to the spacing, for "uniform" and "on the grid"


# ---- validation ----------------------------------------------------------------
def _ula_spacing(p: NDArray[np.float64], what: str) -> float:
    """The signed spacing (wavelengths) of a uniform array, or InputError naming ``what``."""
    step = np.diff(p)
    d = float(step[0])
    if not np.allclose(step, d, rtol=0.0, atol=_REL_TOL * abs(d)):
        raise InputError(f"positions_wl = {p.tolist()} wavelengths: {what} needs a uniform linear array "
                         "(equal steps between consecutive elements); use MusicEstimator or "
                         "CoarrayMusicEstimator for sparse arrays")
    return d


def _snapshots(X: ArrayLike, num_elements: int) -> NDArray[np.complex128]:
    """Snapshots as a complex (num_elements, K) array with K >= 1, all finite."""
    x = np.asarray(X)
    if x.ndim != 2 or x.shape[0] != num_elements or x.shape[1] < 1:
        raise InputError(f"X.shape = {x.shape}: allowed (num_elements, num_snapshots) = ({num_elements}, K) "
                         "with K >= 1; put one snapshot per column (X[:, None] for a single one)")
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise InputError(f"X (dtype {x.dtype}): allowed finite complex numbers; remove NaN/inf samples")
    return x.astype(np.complex128, copy=False)


def _covariance_matrix(R: ArrayLike, field: str = "R") -> NDArray[np.complex128]:
    """A square, finite complex matrix of size >= 2."""
    r = np.asarray(R)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] < 2:
        raise InputError(f"{field}.shape = {r.shape}: allowed a square (M, M) covariance with M >= 2; "
                         "pass sample_covariance(X)")
    if not np.issubdtype(r.dtype, np.number) or not np.all(np.isfinite(r)):
        raise InputError(f"{field} (dtype {r.dtype}): allowed finite complex numbers; remove NaN/inf entries")
    return r.astype(np.complex128, copy=False)


def _num_sources(num_sources: int, limit: int, what: str) -> int:
    """``num_sources`` as an int in 1 ... limit - 1."""
    if isinstance(num_sources, bool) or not isinstance(num_sources, int | np.integer) \
            or not 1 <= num_sources < limit:
        raise InputError(f"num_sources = {num_sources!r}: allowed 1 ... {limit - 1} (fewer than the {limit} "
                         f"{what}); pass fewer sources, a larger array or a larger smoothing_subarray")
    return int(num_sources)


def _check_forward_backward(p: NDArray[np.float64]) -> None:
    """Forward-backward averaging needs a centro-symmetric array listed in order."""
    s = p + p[::-1]
    if not np.allclose(s, s[0], rtol=0.0, atol=_REL_TOL * np.ptp(p)):
        raise InputError(f"forward_backward = True with positions_wl = {p.tolist()} wavelengths: allowed only "
                         "for arrays symmetric about their centre (p[n] + p[-1-n] constant); "
                         "set forward_backward = False")


def _smoothing_size(size: int | None, num_elements: int) -> int | None:
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not 2 <= size <= num_elements:
        raise InputError(f"smoothing_subarray = {size!r}: allowed None or 2 ... {num_elements} elements; "
                         "a subarray of about 2/3 of the array suits most cases")
    return int(size)


# ---- array model ------------------------------------------------------------------
def steering_matrix(positions_wl: ArrayLike, angles_rad: ArrayLike) -> NDArray[np.complex128]:
    """Steering vectors of a linear array, one column per angle.

    ``A[n, i] = exp(+j 2 pi positions_wl[n] sin(angles_rad[i]))``, the same
    convention as :func:`sdr_isac.channel.geometry.steering_vector`.

    Parameters
    ----------
    positions_wl : array_like, shape (E,), float
        Element positions along local +y, wavelengths.
    angles_rad : array_like, shape (A,) or scalar, float
        Azimuths from boresight towards +y, rad.

    Returns
    -------
    ndarray, shape (E, A), complex128

    Examples
    --------
    >>> A = steering_matrix([0.0, 0.5], [0.0, np.pi / 2])
    >>> np.round(A, 6)
    array([[ 1.+0.j,  1.+0.j],
           [ 1.+0.j, -1.+0.j]])
    """
    p = element_positions_wl(positions_wl)
    theta = np.atleast_1d(np.asarray(angles_rad, dtype=float))
    if theta.ndim != 1 or not np.all(np.isfinite(theta)):
        raise InputError(f"angles_rad with shape {theta.shape}: allowed a 1-D list of finite angles in rad; "
                         "flatten the array of angles")
    return np.exp(2j * np.pi * np.outer(p, np.sin(theta)))


def _fb_average(R: NDArray[np.complex128]) -> NDArray[np.complex128]:
    """(R + J R* J) / 2 with J the exchange matrix."""
    return 0.5 * (R + R[::-1, ::-1].conj())


def sample_covariance(X: ArrayLike, forward_backward: bool = False) -> NDArray[np.complex128]:
    """Sample spatial covariance ``X X^H / K``.

    Parameters
    ----------
    X : array_like, shape (E, K), complex
        Snapshots, one per column.
    forward_backward : bool
        Average with the reversed, conjugated covariance ``J R* J``. Valid
        only for arrays symmetric about their centre (a ULA); it doubles the
        effective number of snapshots and decorrelates pairs of sources.

    Returns
    -------
    ndarray, shape (E, E), complex128
        Hermitian, in units of |X|^2.
    """
    x = np.asarray(X)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise InputError(f"X.shape = {x.shape}: allowed (num_elements, num_snapshots) with >= 2 elements "
                         "and >= 1 snapshot; put one snapshot per column")
    x = _snapshots(x, x.shape[0])
    R = (x @ x.conj().T) / x.shape[1]
    return _fb_average(R) if forward_backward else R


def spatial_smoothing(R: ArrayLike, subarray_size: int, forward_backward: bool = True) -> NDArray[np.complex128]:
    """Spatially smoothed covariance of a ULA (decorrelates coherent sources).

    Averages the ``P = M - L + 1`` overlapping ``L x L`` diagonal blocks of
    ``R`` (Shan, Wax & Kailath 1985), then optionally forward-backward
    (Pillai & Kwon 1989). Forward smoothing handles up to ``P`` coherent
    sources, forward-backward up to ``2 P``; the subarray must keep
    ``L > num_sources``.

    Parameters
    ----------
    R : array_like, shape (M, M), complex
        Covariance of a ULA, elements in order along the array.
    subarray_size : int
        ``L``, 2 ... M.
    forward_backward : bool
        Also average with ``J R_f* J``.

    Returns
    -------
    ndarray, shape (L, L), complex128
        Covariance of the subarray made of the first ``L`` elements.
    """
    r = _covariance_matrix(R)
    m = r.shape[0]
    size = _smoothing_size(subarray_size, m)
    if size is None:
        raise InputError(f"subarray_size = None: allowed 2 ... {m} elements; pass an int")
    num_sub = m - size + 1
    Rs = sum(r[i:i + size, i:i + size] for i in range(num_sub)) / num_sub
    return _fb_average(Rs) if forward_backward else Rs


# ---- co-array ---------------------------------------------------------------------
@dataclass(frozen=True)
class DifferenceCoarray:
    """The difference co-array ``{p_i - p_j}`` of a linear array on a grid of ``spacing_wl``.

    Attributes
    ----------
    lags : ndarray, shape (D,), int64
        Every distinct difference, in units of ``spacing_wl``, ascending
        (symmetric about 0).
    weights : ndarray, shape (D,), int64
        How many element pairs (i, j) give each lag.
    contiguous_lags : ndarray, shape (2U + 1,), int64
        The largest run ``-U ... U`` of consecutive lags around 0.
    spacing_wl : float
        The grid step, wavelengths.
    """

    lags: NDArray[np.int64]
    weights: NDArray[np.int64]
    contiguous_lags: NDArray[np.int64]
    spacing_wl: float

    @property
    def num_virtual_elements(self) -> int:
        """Elements ``U + 1`` of the virtual ULA (lags 0 ... U); it resolves up to ``U`` sources."""
        return int(self.contiguous_lags[-1]) + 1


def _grid_indices(positions_wl: ArrayLike, spacing_wl: float) -> NDArray[np.int64]:
    p = element_positions_wl(positions_wl)
    if not (np.isfinite(spacing_wl) and spacing_wl > 0):
        raise InputError(f"spacing_wl = {spacing_wl!r} wavelengths: allowed > 0; e.g. 0.5")
    n = (p - p.min()) / spacing_wl
    idx = np.round(n)
    if not np.allclose(n, idx, rtol=0.0, atol=_REL_TOL):
        raise InputError(f"positions_wl = {p.tolist()} wavelengths with spacing_wl = {spacing_wl}: allowed "
                         "positions on a grid of spacing_wl; pass the array's grid step as spacing_wl")
    return idx.astype(np.int64)


def difference_coarray(positions_wl: ArrayLike, spacing_wl: float = 0.5) -> DifferenceCoarray:
    """Difference co-array of a sparse linear array.

    Parameters
    ----------
    positions_wl : array_like, shape (E,), float
        Element positions, wavelengths, each an integer multiple of
        ``spacing_wl`` from the first.
    spacing_wl : float
        Grid step, wavelengths (0.5 keeps the virtual ULA free of grating lobes).

    Returns
    -------
    DifferenceCoarray

    Examples
    --------
    A 2-level nested array with 3 + 3 elements fills lags -11 ... 11:

    >>> ca = difference_coarray(0.5 * np.array([0, 1, 2, 3, 7, 11]))
    >>> ca.num_virtual_elements
    12
    """
    n = _grid_indices(positions_wl, spacing_wl)
    diff = (n[:, None] - n[None, :]).ravel()
    lags, weights = np.unique(diff, return_counts=True)
    present = set(lags.tolist())
    u = 0
    while u + 1 in present:
        u += 1
    return DifferenceCoarray(lags=lags.astype(np.int64), weights=weights.astype(np.int64),
                             contiguous_lags=np.arange(-u, u + 1, dtype=np.int64), spacing_wl=float(spacing_wl))


def coarray_covariance(R: ArrayLike, positions_wl: ArrayLike, spacing_wl: float = 0.5) -> NDArray[np.complex128]:
    """Covariance of the virtual ULA on the contiguous part of the difference co-array.

    Each entry ``R[i, j] = E[x_i x_j^*]`` is the cross-multiplication of two
    element signals and behaves like a virtual element at lag
    ``p_i - p_j``; redundant lags are averaged, and the lags ``0 ... U`` fill
    a Hermitian Toeplitz matrix (direct augmentation, Pillai 1985). Its
    eigenvectors equal those of the spatially smoothed co-array covariance
    (Pal & Vaidyanathan 2010), so MUSIC on it resolves up to ``U`` sources.
    Valid for uncorrelated sources.

    Parameters
    ----------
    R : array_like, shape (E, E), complex
        Covariance of the physical array (:func:`sample_covariance`).
    positions_wl : array_like, shape (E,), float
        Element positions, wavelengths, on a grid of ``spacing_wl``.
    spacing_wl : float
        Grid step, wavelengths.

    Returns
    -------
    ndarray, shape (U + 1, U + 1), complex128
        Covariance of a virtual ULA at ``spacing_wl * arange(U + 1)``.
    """
    n = _grid_indices(positions_wl, spacing_wl)
    r = _covariance_matrix(R)
    if r.shape[0] != n.size:
        raise InputError(f"R.shape = {r.shape}: allowed ({n.size}, {n.size}) for the {n.size} positions; "
                         "pass the covariance of this array")
    lag = (n[:, None] - n[None, :]).ravel()
    offset = int(n.max())
    counts = np.bincount(lag + offset, minlength=2 * offset + 1)
    sums = np.bincount(lag + offset, weights=r.real.ravel(), minlength=2 * offset + 1) \
        + 1j * np.bincount(lag + offset, weights=r.imag.ravel(), minlength=2 * offset + 1)
    u = difference_coarray(positions_wl, spacing_wl).num_virtual_elements - 1
    # R[i, j] ~ exp(+j 2 pi (p_i - p_j) sin) so the virtual element at lag m has r(m) = mean R[i, j], p_i - p_j = m
    r_lag = sums[offset:offset + u + 1] / counts[offset:offset + u + 1]
    return scipy.linalg.toeplitz(r_lag)


# ---- model order ------------------------------------------------------------------
def _order_criterion(eigenvalues: ArrayLike, num_snapshots: int, penalty: str) -> int:
    try:
        lam = np.asarray(eigenvalues, dtype=float)
    except (TypeError, ValueError) as err:
        raise InputError(f"eigenvalues = {eigenvalues!r}: allowed real covariance eigenvalues; "
                         "pass numpy.linalg.eigvalsh(R)") from err
    if lam.ndim != 1 or lam.size < 2 or not np.all(np.isfinite(lam)) or lam.min() <= 0:
        raise InputError(f"eigenvalues = {np.asarray(eigenvalues).tolist()}: allowed >= 2 finite values > 0; "
                         "use at least as many snapshots as elements so the covariance has full rank")
    if isinstance(num_snapshots, bool) or not isinstance(num_snapshots, int | np.integer) or num_snapshots < 1:
        raise InputError(f"num_snapshots = {num_snapshots!r}: allowed an int >= 1; pass X.shape[1]")
    lam = np.sort(lam)[::-1]
    p, n = lam.size, int(num_snapshots)
    k = np.arange(p)
    # mean of log and log of mean of the p - k smallest eigenvalues, for each k
    tail_log = np.cumsum(np.log(lam[::-1]))[::-1] / (p - k)
    tail_mean = np.cumsum(lam[::-1])[::-1] / (p - k)
    log_likelihood = n * (p - k) * (tail_log - np.log(tail_mean))   # <= 0
    free = k * (2 * p - k)
    if penalty == "mdl":
        score = -log_likelihood + 0.5 * free * np.log(n)
    else:
        score = -2.0 * log_likelihood + 2.0 * free
    return int(np.argmin(score))


def mdl_order(eigenvalues: ArrayLike, num_snapshots: int) -> int:
    """Number of sources by minimum description length (Wax & Kailath 1985, eq. 16).

    ``MDL(k) = -K (p - k) log(g_k / a_k) + k (2p - k) log(K) / 2``, with
    ``g_k``, ``a_k`` the geometric and arithmetic means of the ``p - k``
    smallest eigenvalues. Consistent as ``K`` grows.

    Parameters
    ----------
    eigenvalues : array_like, shape (p,), float
        Eigenvalues of the sample covariance, any order, all > 0.
    num_snapshots : int
        ``K``, the snapshots behind the covariance.

    Returns
    -------
    int
        The estimated number of sources, 0 ... p - 1.

    Examples
    --------
    >>> mdl_order([10.0, 1.01, 1.0, 0.99], num_snapshots=100)
    1
    """
    return _order_criterion(eigenvalues, num_snapshots, "mdl")


def aic_order(eigenvalues: ArrayLike, num_snapshots: int) -> int:
    """Number of sources by Akaike's criterion (Wax & Kailath 1985, eq. 15).

    ``AIC(k) = -2 K (p - k) log(g_k / a_k) + 2 k (2p - k)``; not consistent:
    it over-estimates with a small probability even at high SNR.
    Parameters and return as :func:`mdl_order`.
    """
    return _order_criterion(eigenvalues, num_snapshots, "aic")


def estimate_num_sources(X: ArrayLike, method: str = "mdl") -> int:
    """Number of sources in snapshots ``X`` from the eigenvalues of their covariance.

    Parameters
    ----------
    X : array_like, shape (E, K), complex
        Snapshots; ``K >= E`` so the covariance has full rank. White noise,
        the same power on every element.
    method : {"mdl", "aic"}

    Returns
    -------
    int
        0 ... E - 1.
    """
    if method not in ("mdl", "aic"):
        raise InputError(f"method = {method!r}: allowed 'mdl' or 'aic'; use 'mdl' (consistent)")
    x = np.asarray(X)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < x.shape[0]:
        raise InputError(f"X.shape = {x.shape}: allowed (E, K) with E >= 2 elements and K >= E snapshots; "
                         "collect more snapshots")
    lam = np.linalg.eigvalsh(sample_covariance(x))
    return _order_criterion(lam, x.shape[1], method)


# ---- estimators -------------------------------------------------------------------
def _local_maxima(values: NDArray[np.float64]) -> NDArray[np.int64]:
    """Indices of local maxima (plateaus counted once, the ends included), strongest first."""
    padded = np.concatenate(([-np.inf], values, [-np.inf]))
    mid = padded[1:-1]
    idx = np.flatnonzero((mid > padded[:-2]) & (mid >= padded[2:]))
    return idx[np.argsort(values[idx])[::-1]]


def _pick(angles: list[float], num_sources: int) -> NDArray[np.float64]:
    """Sorted angles, NaN-padded at the end to ``num_sources``."""
    out = np.full(num_sources, np.nan)
    out[:len(angles)] = np.sort(angles)
    return out


class _GridSearch:
    """Grid search over azimuth with bounded local refinement (shared by the spectral estimators)."""

    def __init__(self, angle_range_rad: tuple[float, float], grid_step_rad: float):
        try:
            lo, hi = (float(v) for v in angle_range_rad)
        except (TypeError, ValueError) as err:
            raise InputError(f"angle_range_rad = {angle_range_rad!r}: allowed (low, high) in rad; "
                             "e.g. (-pi/2, pi/2)") from err
        if not (-np.pi / 2 <= lo < hi <= np.pi / 2):
            raise InputError(f"angle_range_rad = {angle_range_rad!r}: allowed -pi/2 <= low < high <= pi/2 rad; "
                             "e.g. (-pi/2, pi/2)")
        if not (np.isfinite(grid_step_rad) and 0 < grid_step_rad <= (hi - lo) / 4):
            raise InputError(f"grid_step_rad = {grid_step_rad!r} rad: allowed 0 < step <= (high - low) / 4; "
                             "use a step well below the beamwidth, e.g. numpy.radians(0.1)")
        self.angle_range_rad = (lo, hi)
        self.grid_step_rad = float(grid_step_rad)
        self.grid_rad = np.linspace(lo, hi, int(np.ceil((hi - lo) / grid_step_rad)) + 1)

    def search(self, objective_grid: NDArray[np.float64],
               objective: Callable[[NDArray[np.float64]], NDArray[np.float64]],
               num_sources: int) -> NDArray[np.float64]:
        """Minimise ``objective`` (vectorised on angles) around the deepest grid minima."""
        lo, hi = self.angle_range_rad
        peaks = _local_maxima(-objective_grid)[:num_sources]
        found = []
        for i in peaks:
            a0 = self.grid_rad[i]
            res = scipy.optimize.minimize_scalar(
                lambda t: float(objective(np.array([t]))[0]), method="bounded",
                bounds=(max(lo, a0 - self.grid_step_rad), min(hi, a0 + self.grid_step_rad)),
                options={"xatol": 1e-10})
            found.append(float(res.x) if res.fun <= objective_grid[i] else float(a0))
        return _pick(found, num_sources)


class BartlettEstimator:
    """Conventional (Bartlett / delay-and-sum) beamformer.

    ``P(theta) = a^H R a / (a^H a)``; resolution is the Rayleigh limit, about
    ``1 / aperture`` in ``sin(theta)``.

    Parameters
    ----------
    positions_wl : array_like, shape (E,), float
        Element positions along local +y, wavelengths.
    angle_range_rad : (float, float)
        Search interval, rad, within [-pi/2, pi/2].
    grid_step_rad : float
        Search grid step, rad; peaks are then refined to ~1e-10 rad.
    forward_backward : bool
        Forward-backward covariance (centro-symmetric arrays only).
    """

    def __init__(self, positions_wl: ArrayLike, *, angle_range_rad: tuple[float, float] = (-np.pi / 2, np.pi / 2),
                 grid_step_rad: float = np.radians(0.1), forward_backward: bool = False):
        self.positions_wl = element_positions_wl(positions_wl)
        if forward_backward:
            _check_forward_backward(self.positions_wl)
        self.forward_backward = bool(forward_backward)
        self._grid = _GridSearch(angle_range_rad, grid_step_rad)

    def _power(self, R: NDArray[np.complex128], angles: NDArray[np.float64]) -> NDArray[np.float64]:
        A = steering_matrix(self.positions_wl, angles)
        return np.real(np.einsum("ea,ef,fa->a", A.conj(), R, A)) / self.positions_wl.size

    def spectrum(self, X: ArrayLike, angles_rad: ArrayLike, num_sources: int | None = None) -> NDArray[np.float64]:
        """Beamformer output power at each angle.

        Parameters
        ----------
        X : array_like, shape (E, K), complex
            Snapshots.
        angles_rad : array_like, shape (A,), float
            Azimuths, rad.
        num_sources : int, optional
            Ignored (the interface is shared with :class:`MusicEstimator`).

        Returns
        -------
        ndarray, shape (A,), float64
            Power in units of |X|^2 (a unit-power source at ``theta`` gives E).
        """
        R = sample_covariance(_snapshots(X, self.positions_wl.size), self.forward_backward)
        return self._power(R, np.atleast_1d(np.asarray(angles_rad, dtype=float)))

    def estimate(self, X: ArrayLike, num_sources: int) -> NDArray[np.float64]:
        """Azimuths of the ``num_sources`` strongest beamformer peaks.

        Returns
        -------
        ndarray, shape (num_sources,), float64
            Rad, ascending; NaN at the end where the spectrum has fewer peaks.
        """
        k = _num_sources(num_sources, self.positions_wl.size, "array elements")
        R = sample_covariance(_snapshots(X, self.positions_wl.size), self.forward_backward)
        return self._grid.search(-self._power(R, self._grid.grid_rad), lambda t: -self._power(R, t), k)


class _SubspaceEstimator:
    """Holds the array, forward-backward and smoothing options, and builds the covariance."""

    _needs_ula = False
    _name = ""

    def __init__(self, positions_wl: ArrayLike, *, forward_backward: bool = False,
                 smoothing_subarray: int | None = None):
        self.positions_wl = element_positions_wl(positions_wl)
        self.smoothing_subarray = _smoothing_size(smoothing_subarray, self.positions_wl.size)
        self.spacing_wl: float | None = None
        if self._needs_ula or self.smoothing_subarray is not None:
            what = self._name if self._needs_ula else "smoothing_subarray"
            self.spacing_wl = _ula_spacing(self.positions_wl, what)
        if forward_backward:
            _check_forward_backward(self.positions_wl)
        self.forward_backward = bool(forward_backward)
        size = self.smoothing_subarray or self.positions_wl.size
        #: positions of the (sub)array the covariance belongs to, wavelengths
        self.working_positions_wl = self.positions_wl[:size]

    def _covariance(self, X: ArrayLike) -> NDArray[np.complex128]:
        x = _snapshots(X, self.positions_wl.size)
        if self.smoothing_subarray is None:
            return sample_covariance(x, self.forward_backward)
        return spatial_smoothing(sample_covariance(x), self.smoothing_subarray, self.forward_backward)

    def _noise_subspace(self, R: NDArray[np.complex128], num_sources: int) -> NDArray[np.complex128]:
        k = _num_sources(num_sources, R.shape[0], "elements of the (sub)array")
        _, vecs = np.linalg.eigh(R)                   # ascending eigenvalues
        return vecs[:, :R.shape[0] - k]

    def _signal_subspace(self, R: NDArray[np.complex128], num_sources: int) -> NDArray[np.complex128]:
        k = _num_sources(num_sources, R.shape[0], "elements of the (sub)array")
        _, vecs = np.linalg.eigh(R)
        return vecs[:, R.shape[0] - k:]


def _music_null(positions: ArrayLike, En: NDArray[np.complex128],
                angles: NDArray[np.float64]) -> NDArray[np.float64]:
    """MUSIC null spectrum ``|En^H a|^2 / |a|^2``, shape (A,): 0 at the sources, <= 1."""
    proj = En.conj().T @ steering_matrix(positions, angles)
    return np.sum(np.abs(proj) ** 2, axis=0) / np.size(positions)


class MusicEstimator(_SubspaceEstimator):
    """MUSIC (Schmidt 1986) for any linear array: grid search, then bounded local refinement.

    Parameters
    ----------
    positions_wl : array_like, shape (E,), float
        Element positions along local +y, wavelengths (any linear array).
    angle_range_rad : (float, float)
        Search interval, rad, within [-pi/2, pi/2].
    grid_step_rad : float
        Search grid step, rad; keep it well below the separation to resolve.
    forward_backward : bool
        Forward-backward covariance (centro-symmetric arrays only).
    smoothing_subarray : int, optional
        Spatial smoothing with subarrays of this many elements (ULA only),
        needed for coherent sources (multipath); forward-only smoothing, or
        forward-backward smoothing when ``forward_backward`` is True.

    Examples
    --------
    >>> p = 0.5 * np.arange(8)
    >>> X = steering_matrix(p, [np.radians(30.0)]) @ np.exp(2j * np.pi * np.arange(16) / 7)[None, :]
    >>> X = X + 0.01 * np.exp(1j * np.arange(8 * 16)).reshape(8, 16)
    >>> round(float(np.degrees(MusicEstimator(p).estimate(X, 1)[0])), 1)
    30.0
    """

    _name = "MUSIC"

    def __init__(self, positions_wl: ArrayLike, *, angle_range_rad: tuple[float, float] = (-np.pi / 2, np.pi / 2),
                 grid_step_rad: float = np.radians(0.1), forward_backward: bool = False,
                 smoothing_subarray: int | None = None):
        super().__init__(positions_wl, forward_backward=forward_backward, smoothing_subarray=smoothing_subarray)
        self._grid = _GridSearch(angle_range_rad, grid_step_rad)

    def spectrum(self, X: ArrayLike, angles_rad: ArrayLike, num_sources: int) -> NDArray[np.float64]:
        """MUSIC pseudo-spectrum ``|a|^2 / |En^H a|^2`` (dimensionless, >= 1).

        Parameters
        ----------
        X : array_like, shape (E, K), complex
            Snapshots.
        angles_rad : array_like, shape (A,), float
            Azimuths, rad.
        num_sources : int
            Dimension of the signal subspace, 1 ... (sub)array size - 1.

        Returns
        -------
        ndarray, shape (A,), float64
        """
        En = self._noise_subspace(self._covariance(X), num_sources)
        angles = np.atleast_1d(np.asarray(angles_rad, dtype=float))
        return 1.0 / np.maximum(_music_null(self.working_positions_wl, En, angles), 1e-300)

    def estimate(self, X: ArrayLike, num_sources: int) -> NDArray[np.float64]:
        """Azimuths of the ``num_sources`` highest MUSIC peaks, refined off the grid.

        Returns
        -------
        ndarray, shape (num_sources,), float64
            Rad, ascending; NaN at the end where the spectrum has fewer peaks.
        """
        En = self._noise_subspace(self._covariance(X), num_sources)
        p = self.working_positions_wl
        grid = self._grid.grid_rad
        return self._grid.search(_music_null(p, En, grid),
                                 lambda t: _music_null(p, En, t), int(num_sources))


def _phases_to_angles(phases: NDArray[np.float64], spacing_wl: float) -> NDArray[np.float64]:
    """Azimuths from the inter-element phase steps ``2 pi d sin(theta)`` (principal branch)."""
    return np.arcsin(np.clip(phases / (2.0 * np.pi * spacing_wl), -1.0, 1.0))


class RootMusicEstimator(_SubspaceEstimator):
    """Root-MUSIC (Barabell 1983) for a uniform linear array.

    The MUSIC null spectrum of a ULA is a polynomial in
    ``z = exp(j 2 pi d sin(theta))``; the ``num_sources`` roots inside the
    unit circle closest to it give the angles. For spacing ``d > 0.5``
    wavelengths the angle is ambiguous and the principal branch is returned.

    Parameters
    ----------
    positions_wl : array_like, shape (E,), float
        Uniformly spaced positions, wavelengths.
    forward_backward : bool
        Forward-backward covariance.
    smoothing_subarray : int, optional
        Spatial smoothing with subarrays of this many elements (forward-backward
        when ``forward_backward`` is True), for coherent sources.
    """

    _needs_ula = True
    _name = "root-MUSIC"

    def estimate(self, X: ArrayLike, num_sources: int) -> NDArray[np.float64]:
        """Azimuths from the polynomial roots.

        Parameters
        ----------
        X : array_like, shape (E, K), complex
            Snapshots.
        num_sources : int
            1 ... (sub)array size - 1.

        Returns
        -------
        ndarray, shape (num_sources,), float64
            Rad, ascending; NaN at the end when too few roots lie in the
            visible region.
        """
        En = self._noise_subspace(self._covariance(X), num_sources)
        C = En @ En.conj().T
        m = C.shape[0]
        # coefficient of z^l in a(1/z)^T C a(z) is the sum of C's l-th diagonal; highest power first
        coeffs = np.array([np.trace(C, offset=lag) for lag in range(m - 1, -m, -1)])
        roots = np.roots(coeffs)
        d = float(self.spacing_wl)  # type: ignore[arg-type]
        u = np.angle(roots) / (2.0 * np.pi * d)
        keep = (np.abs(roots) < 1.0) & (np.abs(u) <= 1.0)
        roots, u = roots[keep], u[keep]
        best = np.argsort(np.abs(np.abs(roots) - 1.0))[:int(num_sources)]
        return _pick(np.arcsin(u[best]).tolist(), int(num_sources))


class EspritEstimator(_SubspaceEstimator):
    """TLS-ESPRIT (Roy & Kailath 1989) for a uniform linear array.

    Uses the shift invariance between the first and last ``M - 1`` elements
    of the (sub)array; the eigenvalues of the total-least-squares rotation
    are ``exp(j 2 pi d sin(theta))``.

    Parameters
    ----------
    positions_wl : array_like, shape (E,), float
        Uniformly spaced positions, wavelengths.
    forward_backward : bool
        Forward-backward covariance.
    smoothing_subarray : int, optional
        Spatial smoothing with subarrays of this many elements (forward-backward
        when ``forward_backward`` is True), for coherent sources.
    """

    _needs_ula = True
    _name = "ESPRIT"

    def estimate(self, X: ArrayLike, num_sources: int) -> NDArray[np.float64]:
        """Azimuths from the rotational invariance of the signal subspace.

        Parameters
        ----------
        X : array_like, shape (E, K), complex
            Snapshots.
        num_sources : int
            1 ... (sub)array size - 1.

        Returns
        -------
        ndarray, shape (num_sources,), float64
            Rad, ascending (clipped to +-pi/2 when noise pushes a phase
            outside the visible region).
        """
        Es = self._signal_subspace(self._covariance(X), num_sources)
        k = Es.shape[1]
        # TLS: right singular vectors of [E1 E2] for the k smallest singular values
        _, _, vh = np.linalg.svd(np.hstack([Es[:-1], Es[1:]]))
        V = vh.conj().T[:, k:]
        psi = -V[:k] @ np.linalg.inv(V[k:])
        phases = np.angle(np.linalg.eigvals(psi))
        return np.sort(_phases_to_angles(phases, float(self.spacing_wl)))  # type: ignore[arg-type]


class CoarrayMusicEstimator:
    """MUSIC on the difference co-array of a sparse linear array (more sources than elements).

    Builds :func:`coarray_covariance` (the cross-products of element signals
    as virtual elements, seed §III-A-2) and runs MUSIC on the virtual ULA of
    ``U + 1`` elements, resolving up to ``U`` uncorrelated sources. The
    cross-products cost SNR: the virtual array gains less than a filled
    array of the same aperture would.

    Parameters
    ----------
    positions_wl : array_like, shape (E,), float
        Element positions, wavelengths, on a grid of ``spacing_wl``
        (nested: ``0.5 * [0, 1, 2, 3, 7, 11]``; coprime arrays).
    spacing_wl : float
        Grid step, wavelengths; 0.5 avoids grating lobes.
    angle_range_rad, grid_step_rad
        As :class:`MusicEstimator`.
    """

    def __init__(self, positions_wl: ArrayLike, spacing_wl: float = 0.5, *,
                 angle_range_rad: tuple[float, float] = (-np.pi / 2, np.pi / 2),
                 grid_step_rad: float = np.radians(0.1)):
        self.positions_wl = element_positions_wl(positions_wl)
        self.coarray = difference_coarray(self.positions_wl, spacing_wl)
        self.spacing_wl = float(spacing_wl)
        #: positions of the virtual ULA, wavelengths
        self.virtual_positions_wl = self.spacing_wl * np.arange(self.coarray.num_virtual_elements)
        self._grid = _GridSearch(angle_range_rad, grid_step_rad)

    def _noise_subspace(self, X: ArrayLike, num_sources: int) -> NDArray[np.complex128]:
        m = self.coarray.num_virtual_elements
        k = _num_sources(num_sources, m, "virtual elements of the co-array")
        R = coarray_covariance(sample_covariance(_snapshots(X, self.positions_wl.size)), self.positions_wl,
                               self.spacing_wl)
        _, vecs = np.linalg.eigh(R)
        return vecs[:, :m - k]

    def spectrum(self, X: ArrayLike, angles_rad: ArrayLike, num_sources: int) -> NDArray[np.float64]:
        """MUSIC pseudo-spectrum on the virtual ULA, shape (A,), float64 (see :meth:`MusicEstimator.spectrum`)."""
        En = self._noise_subspace(X, num_sources)
        angles = np.atleast_1d(np.asarray(angles_rad, dtype=float))
        return 1.0 / np.maximum(_music_null(self.virtual_positions_wl, En, angles), 1e-300)

    def estimate(self, X: ArrayLike, num_sources: int) -> NDArray[np.float64]:
        """Azimuths of the ``num_sources`` highest co-array MUSIC peaks.

        Parameters
        ----------
        X : array_like, shape (E, K), complex
            Snapshots of the physical array.
        num_sources : int
            1 ... U (may exceed E).

        Returns
        -------
        ndarray, shape (num_sources,), float64
            Rad, ascending; NaN at the end where the spectrum has fewer peaks.
        """
        En = self._noise_subspace(X, num_sources)
        p = self.virtual_positions_wl
        return self._grid.search(_music_null(p, En, self._grid.grid_rad),
                                 lambda t: _music_null(p, En, t), int(num_sources))
