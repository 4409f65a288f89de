"""Two-dimensional CFAR detection on range-Doppler power maps.

A power map holds ``|periodogram|**2``, shape ``(num_range_bins,
num_doppler_bins)``.  Under H0 every cell is exponential with an unknown
mean mu (square-law detected complex Gaussian noise), cells independent when
no window was applied.  Each detector estimates a noise statistic ``Z`` from
the training cells around the cell under test (CUT) and declares a detection
where ``power > alpha * Z``; the multiplier ``alpha`` is the exact solution of
the detector's false-alarm equation for the design ``pfa`` and the number of
training cells the cell actually used, so ``P(power > alpha * Z | H0) = pfa``
whatever mu is.

Window
    The guard box holds the CUT and ``guard = (g_r, g_d)`` cells each side in
    range and Doppler.  The training ring is the rectangle of
    ``(g_r + t_r, g_d + t_d)`` cells each side minus the guard box:
    ``N = (2(g_r+t_r)+1)(2(g_d+t_d)+1) - (2g_r+1)(2g_d+1)`` cells.
Edges
    The Doppler axis is circular when ``wrap_doppler`` (the periodogram is
    periodic in Doppler); the range axis is not, so near the first and last
    range bins the ring is truncated and the cell gets the exact multiplier for
    the cells it has.  Cells with fewer than ``min_training`` training cells
    are not tested: ``mask`` False, ``threshold`` and ``noise`` NaN.

False-alarm equations (exponential noise, statistic of the ring cells)

- CA, mean of N cells: ``pfa = (1 + alpha/N)**(-N)``, so
  ``alpha = N (pfa**(-1/N) - 1)`` (Richards, *Fundamentals of Radar Signal
  Processing*, 2nd ed., sec. 6.5.3).
- OS, k-th smallest of N cells: ``pfa = prod_{i=0}^{k-1} (N-i)/(N-i+alpha)``
  (Rohling, IEEE Trans. AES 19(4), 1983), solved with :func:`scipy.optimize.brentq`.
- GO / SO, greater / smaller of the means of two independent halves of
  ``n1`` and ``n2`` cells (Weiss, IEEE Trans. AES 18(1), 1982; Gandhi &
  Kassam, IEEE Trans. AES 24(4), 1988).  With ``A_i = (1 + alpha/n_i)**(-n_i)``,
  ``s = n1 + n2 + alpha`` and ``I_x(a, b)`` the regularised incomplete beta
  function::

      pfa_SO = A_1 I_{(n1+alpha)/s}(n1, n2) + A_2 I_{(n2+alpha)/s}(n2, n1)
      pfa_GO = A_1 I_{n2/s}(n2, n1)         + A_2 I_{n1/s}(n1, n2)

  (so ``pfa_GO + pfa_SO = A_1 + A_2``).  For ``n1 = n2 = n`` the SO line is
  Weiss's ``2 (2 + alpha/n)**(-n) sum_{k=0}^{n-1} C(n-1+k, k) (2 + alpha/n)**(-k)``.
  Derivation: ``pfa = E[exp(-alpha min(a, b))]`` with ``a ~ Gamma(n1, 1/n1)``
  and ``b ~ Gamma(n2, 1/n2)``; splitting on ``a < b`` and expanding
  ``P(b > a)`` as a Poisson sum gives a negative-binomial sum, which is the
  incomplete beta function.  Solved for alpha with brentq.

Correlated maps (CA)
    A windowed or oversampled map has correlated noise cells: with the default Hann windows and 2x
    oversampling the ring mean varies as that of some 24 independent cells, not 280, and the closed form
    above gives 1.4x (1e-2) to 3x (1e-4) the design P_fa.  Given the map's cell correlation ``rho``
    (:func:`cell_correlation`: the normalised 2-D transform of the squared taper at the cell offsets),
    :class:`CaCfarDetector` solves the exact equation instead: the CUT minus ``alpha`` times the ring mean is
    a Hermitian form of jointly complex-Gaussian cells (the CUT's own correlation with its ring included),
    with one positive eigenvalue ``mu_+`` and negative ones ``mu_j``, so
    ``pfa = prod_j mu_+ / (mu_+ - mu_j)``; whitening the ring (one eigen-decomposition per ring shape)
    leaves a rank-one update of a diagonal matrix, whose ``mu_+`` is the root of a secular equation
    (several summed channels: each eigenvalue repeated, a Gamma form; see :class:`_CorrelatedRing`).  With
    independent cells it is the closed form.  GO, SO and OS keep the independent-cell equations.
GO / SO split
    Leading half: the ring cells at range bins before the CUT (range offsets
    ``-(g_r+t_r) ... -1``, every Doppler offset of the ring); lagging half:
    those after it (offsets ``1 ... g_r+t_r``).  The ring cells in the CUT's own
    range bin (Doppler offsets ``g_d+1 ... g_d+t_d`` either side) belong to
    neither half, so the halves are independent and equal in the interior:
    ``n = t_r (2(g_d+t_d)+1) + g_r 2 t_d`` cells each.  Where the range edge
    leaves one half empty, GO and SO both use the other half alone (exact
    multiplier of a CA detector on that half).
Mask only
    :meth:`CfarDetector.detect_mask` returns ``detect(power).mask`` alone; the
    CA detector then decides most cells from a cheap lower bound on their
    threshold and computes the exact one only for the few cells above it.
Kinds
    Each detector registers its kind where it is defined
    (``register_cfar("ca", CaCfarDetector)``), and ``sensing.cfar = "ca"`` picks
    it (:func:`make_cfar`).  A new kind is a :class:`CfarDetector` subclass
    registered the same way, from any module: :func:`register_cfar` also lets
    the configuration name it.

Examples
--------
>>> import numpy as np
>>> power = np.ones((16, 8))
>>> power[8, 3] = 100.0
>>> result = CaCfarDetector(pfa=1e-3, guard=(1, 1), train=(2, 2)).detect(power)
>>> np.argwhere(result.mask).tolist()
[[8, 3]]
>>> round(float(ca_multiplier(1e-3, 40)), 4)
7.5401
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import numbers
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage, optimize, special
from threadpoolctl import threadpool_limits

from sdr_isac.config import register_cfar_kind, unregister_cfar_kind
from sdr_isac.errors import InputError, SensingError
from sdr_isac.sensing.scratch import work_array

_LOG = logging.getLogger(__name__)
#: most summed channels the correlated CA threshold is computed for (on the default maps its Gamma series is
#: evaluated up to 100 channels; at 124 the eigenvalue solver fails, at 173 the factorials overflow; the threshold
#: is checked by Monte Carlo at 1 and 3 channels)
MAX_CORRELATED_CHANNELS = 100
#: largest noise correlation between two different cells below which a map counts as one of independent cells
_INDEPENDENT_CELLS = 0.05

__all__ = [
    "CfarResult",
    "CfarDetector",
    "CaCfarDetector",
    "GoCfarDetector",
    "SoCfarDetector",
    "OsCfarDetector",
    "ca_multiplier",
    "ca_false_alarm_probability",
    "cell_correlation",
    "correlated_ca_multiplier",
    "correlated_ca_false_alarm_probability",
    "os_multiplier",
    "os_false_alarm_probability",
    "go_multiplier",
    "go_false_alarm_probability",
    "so_multiplier",
    "so_false_alarm_probability",
    "register_cfar",
    "unregister_cfar",
    "cfar_class",
    "registered_cfars",
    "make_cfar",
]

#: Multipliers of correlated CA-CFAR rings, by (pfa, guard, train, cut, channels, correlation digest).
_CORRELATED_ALPHA: dict[tuple[Any, ...], float] = {}
#: Decomposed correlated rings, by (guard, train, cut, correlation digest).
_CORRELATED_RINGS: dict[tuple[Any, ...], _CorrelatedRing] = {}
#: a design whose correlated thresholds still need longer than this is announced in the log, s
_ANNOUNCE_AFTER_S = 5.0
#: Elements gathered per block by the OS detector (bounds its memory, ~32 MB).
_OS_BLOCK_ELEMENTS = 4_000_000


# --------------------------------------------------------------------------- exact false-alarm equations


def ca_false_alarm_probability(multiplier: ArrayLike, num_training: ArrayLike) -> NDArray[np.float64]:
    """P_fa of CA-CFAR: ``(1 + alpha/N)**(-N)``.

    Parameters
    ----------
    multiplier : array_like of float
        alpha >= 0, threshold = alpha * (mean of the training cells).
    num_training : array_like of int
        N >= 1 training cells; broadcasts with ``multiplier``.

    Returns
    -------
    ndarray of float64
        Probability that an exponential CUT exceeds the threshold under H0.
    """
    alpha = np.asarray(multiplier, dtype=float)
    n = np.asarray(num_training, dtype=float)
    return np.exp(-n * np.log1p(alpha / n))


def ca_multiplier(pfa: float, num_training: ArrayLike) -> NDArray[np.float64]:
    """Exact CA-CFAR multiplier ``alpha = N (pfa**(-1/N) - 1)``, vectorised over N.

    Parameters
    ----------
    pfa : float
        Design false-alarm probability, 0 < pfa < 1.
    num_training : array_like of int
        N >= 1 training cells.

    Returns
    -------
    ndarray of float64, shape of ``num_training``
        alpha such that ``ca_false_alarm_probability(alpha, N) == pfa``.
    """
    n = np.asarray(num_training, dtype=float)
    return n * np.expm1(-math.log(pfa) / n)


def ca_multiplier_channels(pfa: float, num_training: ArrayLike, num_channels: int) -> NDArray[np.float64]:
    """Exact CA-CFAR multiplier for a map that sums the power of C independent channels.

    Under noise a cell is Gamma(C, mu) and the sum of N training cells
    Gamma(N C, mu), so T = X / (X + Y) is Beta(C, N C) and
    P_fa = P(X > alpha Y / N) = P(T > t) with t = (alpha / N) / (1 + alpha / N):
    alpha = N t / (1 - t), t = beta.isf(pfa, C, N C).  C = 1 gives
    :func:`ca_multiplier`.
    """
    from scipy import stats

    n = np.asarray(num_training, dtype=float)
    t = stats.beta.isf(pfa, num_channels, n * num_channels)
    return n * t / (1.0 - t)


def os_false_alarm_probability(multiplier: float, num_training: int, rank: int) -> float:
    """P_fa of OS-CFAR: ``prod_{i=0}^{k-1} (N - i) / (N - i + alpha)`` (Rohling 1983).

    Parameters
    ----------
    multiplier : float
        alpha >= 0, threshold = alpha * (k-th smallest training cell).
    num_training : int
        N >= 1 training cells.
    rank : int
        k, 1 <= k <= N.

    Returns
    -------
    float
        Probability that an exponential CUT exceeds the threshold under H0.
    """
    return math.exp(_os_log_pfa(float(multiplier), int(num_training), int(rank)))


def _os_log_pfa(alpha: float, n: int, k: int) -> float:
    m = np.arange(n - k + 1, n + 1, dtype=float)
    return float(np.sum(np.log(m) - np.log(m + alpha)))


@functools.lru_cache(maxsize=4096)
def os_multiplier(pfa: float, num_training: int, rank: int) -> float:
    """Exact OS-CFAR multiplier: root of ``os_false_alarm_probability(alpha, N, k) = pfa``.

    Parameters
    ----------
    pfa : float
        Design false-alarm probability, 0 < pfa < 1.
    num_training : int
        N >= 1 training cells.
    rank : int
        k, 1 <= k <= N.

    Returns
    -------
    float
        alpha > 0.
    """
    return _solve_decreasing(lambda a: _os_log_pfa(a, num_training, rank) - math.log(pfa))


def _halves_terms(alpha: float, n1: int, n2: int) -> tuple[float, float, float, float, float, float]:
    """``A_1, A_2`` and the incomplete-beta weights of the GO/SO equations."""
    a1 = math.exp(-n1 * math.log1p(alpha / n1))
    a2 = math.exp(-n2 * math.log1p(alpha / n2))
    s = n1 + n2 + alpha
    so1 = float(special.betainc(n1, n2, (n1 + alpha) / s))
    so2 = float(special.betainc(n2, n1, (n2 + alpha) / s))
    go1 = float(special.betainc(n2, n1, n2 / s))
    go2 = float(special.betainc(n1, n2, n1 / s))
    return a1, a2, so1, so2, go1, go2


def _check_halves(num_lead: int, num_lag: int) -> None:
    if num_lead < 0 or num_lag < 0 or num_lead + num_lag < 1:
        raise InputError(f"(num_lead, num_lag) = ({num_lead}, {num_lag}): allowed non-negative cell counts, "
                         "at least one of them >= 1")


def so_false_alarm_probability(multiplier: float, num_lead: int, num_lag: int) -> float:
    """P_fa of SO-CFAR: threshold = alpha * min(mean of lead half, mean of lag half).

    ``A_1 I_{(n1+alpha)/s}(n1, n2) + A_2 I_{(n2+alpha)/s}(n2, n1)`` with
    ``A_i = (1 + alpha/n_i)**(-n_i)``, ``s = n1 + n2 + alpha`` (Weiss 1982,
    Gandhi & Kassam 1988, written with the regularised incomplete beta
    function; see the module notes).  An empty half (``n_i = 0``) leaves the
    CA equation of the other half.

    Parameters
    ----------
    multiplier : float
        alpha >= 0, multiplier on the half-mean.
    num_lead, num_lag : int
        n1, n2 >= 0 cells in each half, at least one >= 1.

    Returns
    -------
    float
        Probability that an exponential CUT exceeds the threshold under H0.
    """
    _check_halves(num_lead, num_lag)
    alpha = float(multiplier)
    if num_lead == 0 or num_lag == 0:
        return float(ca_false_alarm_probability(alpha, max(num_lead, num_lag)))
    a1, a2, so1, so2, _, _ = _halves_terms(alpha, num_lead, num_lag)
    return a1 * so1 + a2 * so2


def go_false_alarm_probability(multiplier: float, num_lead: int, num_lag: int) -> float:
    """P_fa of GO-CFAR: threshold = alpha * max(mean of lead half, mean of lag half).

    ``A_1 I_{n2/s}(n2, n1) + A_2 I_{n1/s}(n1, n2)``, which equals
    ``A_1 + A_2 - pfa_SO`` (Weiss 1982, Gandhi & Kassam 1988) without the
    cancellation.  An empty half leaves the CA equation of the other half.

    Parameters
    ----------
    multiplier : float
        alpha >= 0, multiplier on the half-mean.
    num_lead, num_lag : int
        n1, n2 >= 0 cells in each half, at least one >= 1.

    Returns
    -------
    float
        Probability that an exponential CUT exceeds the threshold under H0.
    """
    _check_halves(num_lead, num_lag)
    alpha = float(multiplier)
    if num_lead == 0 or num_lag == 0:
        return float(ca_false_alarm_probability(alpha, max(num_lead, num_lag)))
    a1, a2, _, _, go1, go2 = _halves_terms(alpha, num_lead, num_lag)
    return a1 * go1 + a2 * go2


@functools.lru_cache(maxsize=4096)
def so_multiplier(pfa: float, num_lead: int, num_lag: int) -> float:
    """Exact SO-CFAR multiplier on the half-mean: root of ``so_false_alarm_probability = pfa``.

    Parameters
    ----------
    pfa : float
        Design false-alarm probability, 0 < pfa < 1.
    num_lead, num_lag : int
        Cells in each half (>= 0, at least one >= 1).

    Returns
    -------
    float
        alpha > 0.
    """
    _check_halves(num_lead, num_lag)
    log_pfa = math.log(pfa)
    return _solve_decreasing(lambda a: math.log(so_false_alarm_probability(a, num_lead, num_lag)) - log_pfa)


@functools.lru_cache(maxsize=4096)
def go_multiplier(pfa: float, num_lead: int, num_lag: int) -> float:
    """Exact GO-CFAR multiplier on the half-mean: root of ``go_false_alarm_probability = pfa``.

    Parameters
    ----------
    pfa : float
        Design false-alarm probability, 0 < pfa < 1.
    num_lead, num_lag : int
        Cells in each half (>= 0, at least one >= 1).

    Returns
    -------
    float
        alpha > 0.
    """
    _check_halves(num_lead, num_lag)
    log_pfa = math.log(pfa)
    return _solve_decreasing(lambda a: math.log(go_false_alarm_probability(a, num_lead, num_lag)) - log_pfa)


def _solve_decreasing(f: Any) -> float:
    """Root in alpha > 0 of a decreasing ``f`` with ``f(0) > 0`` (a log P_fa minus log pfa)."""
    hi = 1.0
    while f(hi) > 0.0:
        hi *= 4.0
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-13, rtol=1e-14))


# --------------------------------------------------------------------------- validation


def _check_pfa(pfa: Any) -> float:
    if isinstance(pfa, bool) or not isinstance(pfa, numbers.Real) or not 0.0 < float(pfa) < 1.0:
        raise InputError(f"pfa = {pfa!r}: allowed a design false-alarm probability 0 < pfa < 1; "
                         "pass e.g. pfa=1e-3")
    return float(pfa)


def _check_pair(name: str, value: Any) -> tuple[int, int]:
    ok = (isinstance(value, tuple | list) and len(value) == 2
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= 0 for v in value))
    if not ok:
        raise InputError(f"{name} = {value!r}: allowed a pair (range_cells, doppler_cells) of integers >= 0 "
                         f"(cells each side of the cell under test); pass e.g. {name}=(2, 2)")
    return int(value[0]), int(value[1])


def _check_power(power: ArrayLike, window: tuple[int, int]) -> NDArray[np.float64]:
    arr = np.asarray(power)
    if np.iscomplexobj(arr):
        raise InputError(f"power has complex dtype {arr.dtype}: allowed a real power map |X|**2; "
                         "pass np.abs(x) ** 2 of the range-Doppler periodogram")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"power has dtype {arr.dtype}: allowed a real numeric power map; pass a float array")
    if arr.ndim != 2:
        raise InputError(f"power has shape {arr.shape}: allowed a 2-D map of shape "
                         "(num_range_bins, num_doppler_bins); reshape or pass one map at a time")
    if window[0] > arr.shape[0] or window[1] > arr.shape[1]:
        raise InputError(f"power has shape {arr.shape}, the guard + training window is {window} cells: "
                         "allowed a window no larger than the map; use smaller guard/train or a larger map")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"power[{idx[0]}, {idx[1]}] = {float(arr[idx])!r}: allowed finite values >= 0 "
                         "(a power map |X|**2); remove NaN/inf and negative values")
    return arr


# --------------------------------------------------------------------------- correlated cells (windowed maps)


def cell_correlation(weights: ArrayLike, map_shape: tuple[int, int]) -> NDArray[np.complex128]:
    """Complex correlation between the noise of two map cells, by their (range, Doppler) offset.

    A map cell is ``X(r, d) = sum_kl w_kl n_kl exp(j 2 pi (k r / R - l d / D))`` with ``n_kl`` white
    noise, so ``E[X(r1, d1) X*(r2, d2)] / E|X|**2 = rho(r1 - r2, d1 - d2)`` with
    ``rho(a, b) = sum_kl |w_kl|**2 exp(j 2 pi (k a / R - l b / D)) / sum_kl |w_kl|**2``: the
    normalised 2-D transform of the squared taper at the map's (oversampled) cell offsets.

    Parameters
    ----------
    weights : array_like of float or complex, shape (K, S)
        Taper of the map on its resource elements (subcarriers x symbols; zero where no RE is used), as
        :func:`sdr_isac.sensing.rdmap.map_weights` lays it out (a phase per symbol does not matter).
    map_shape : tuple of (int, int)
        (R, D) = (range, Doppler) length of the zero-padded transforms, R >= K, D >= S.

    Returns
    -------
    ndarray of complex128, shape (R, D)
        ``rho[a % R, b % D]``; ``rho[0, 0] == 1``, ``|rho| <= 1``.  Without a taper and oversampling
        (all-ones weights, R = K, D = S) it is 1 at (0, 0) and 0 elsewhere: independent cells.
    """
    w = np.asarray(weights)
    if w.ndim != 2 or w.size == 0 or w.dtype.kind not in "biufc" or not np.all(np.isfinite(w)):
        raise InputError(f"weights has shape {w.shape} and dtype {w.dtype}: allowed a finite 2-D taper of shape "
                         "(num_subcarriers, num_symbols); pass map_weights(mask, config, n_doppler)[0]")
    ok = (isinstance(map_shape, tuple | list) and len(map_shape) == 2
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in map_shape)
          and map_shape[0] >= w.shape[0] and map_shape[1] >= w.shape[1])
    if not ok:
        raise InputError(f"map_shape = {map_shape!r}: allowed (range_bins, doppler_bins) integers at least the "
                         f"taper's shape {w.shape}; pass the zero-padded transform lengths")
    peak = float(np.max(np.abs(w)))
    if not peak > 0:
        raise InputError("weights are all zero: allowed a taper with at least one non-zero weight")
    # only the taper's shape matters: scaled to a largest weight of 1, its squares neither overflow (1e200) nor
    # vanish below the smallest normal number (1e-159), whose sum would overflow the division below; magnitudes
    # are scaled, not the complex weights (numpy's complex division of 5e-324 by itself is NaN)
    power = (np.abs(w.astype(np.complex128)) / peak) ** 2
    total = float(power.sum())
    n_r, n_d = int(map_shape[0]), int(map_shape[1])
    rho = np.fft.ifft(power, n=n_r, axis=0) * n_r                 # exp(+j 2 pi k a / R)
    rho = np.fft.fft(rho, n=n_d, axis=1)                           # exp(-j 2 pi l b / D)
    return rho / total


def _ring_offsets_of(guard: tuple[int, int], train: tuple[int, int], cut_range: int = 0,
                     cut_doppler: int = 0) -> NDArray[np.int64]:
    """(N, 2) offsets (range, Doppler) of the ring cells, without the ``cut_*`` outermost rows / columns of one
    side (a cell near a map edge)."""
    hr, hd = guard[0] + train[0], guard[1] + train[1]
    dr, dd = np.meshgrid(np.arange(-hr, hr + 1), np.arange(-hd, hd + 1), indexing="ij")
    keep = ~((np.abs(dr) <= guard[0]) & (np.abs(dd) <= guard[1]))
    keep &= (dr >= -hr + cut_range) & (dd >= -hd + cut_doppler)
    return np.stack([dr[keep], dd[keep]], axis=1).astype(np.int64)


def _check_correlation(cell_corr: ArrayLike) -> NDArray[np.complex128]:
    rho = np.asarray(cell_corr)
    if rho.ndim != 2 or rho.size == 0 or rho.dtype.kind not in "biufc" or not np.all(np.isfinite(rho)):
        raise InputError(f"cell_correlation has shape {rho.shape} and dtype {rho.dtype}: allowed a finite 2-D "
                         "array rho[range_offset % R, doppler_offset % D]; pass cell_correlation(weights, shape)")
    rho = rho.astype(np.complex128)
    if not (abs(rho[0, 0].imag) < 1e-9 and abs(rho[0, 0].real - 1.0) < 1e-6
            and float(np.max(np.abs(rho))) <= 1.0 + 1e-6):
        raise InputError(f"cell_correlation[0, 0] = {complex(rho[0, 0])!r}, max |rho| = "
                         f"{float(np.max(np.abs(rho))):.6g}: allowed a normalised correlation (rho[0, 0] = 1, "
                         "|rho| <= 1); divide by rho[0, 0]")
    return rho


class _CorrelatedRing:
    """The joint law of the CUT and its ring cells under H0 for one ring geometry and cell correlation.

    Ring covariance ``R = U diag(lam) U^H`` (N x N), CUT-ring covariance ``b``; whitening the ring,
    ``c = g^H y + sigma e`` with ``y``, ``e`` white, ``g = lam**-1/2 U^H b``, ``sigma**2 = 1 - |g|**2``.
    ``|c|**2 - alpha Z`` (Z the ring mean) is then the quadratic form of ``v v^H - diag(0, alpha lam / N)``,
    ``v = (sigma, g)``, in white noise: one positive eigenvalue mu_+, the others negative.
    """

    def __init__(self, rho: NDArray[np.complex128], offsets: NDArray[np.int64]):
        n_r, n_d = rho.shape
        diff = offsets[:, None, :] - offsets[None, :, :]
        cov = rho[diff[..., 0] % n_r, diff[..., 1] % n_d]           # E[x_i x_j^*] = rho(p_i - p_j)
        cov = 0.5 * (cov + cov.conj().T)
        cross = rho[offsets[:, 0] % n_r, offsets[:, 1] % n_d]       # E[x_i c^*] = rho(p_i - 0)
        lam, u = np.linalg.eigh(cov)
        keep = lam > 1e-10 * max(float(lam[-1]), 1e-300)
        self.num = offsets.shape[0]
        self.lam = lam[keep]
        g = (u[:, keep].conj().T @ cross) / np.sqrt(self.lam)
        self.g2 = np.abs(g) ** 2
        self.sigma2 = max(0.0, 1.0 - float(self.g2.sum()))
        self.v = np.concatenate([[math.sqrt(self.sigma2)], g])
        self.num_effective = float(self.lam.sum() ** 2 / np.sum(self.lam ** 2))

    def log_pfa(self, alpha: float, num_channels: int = 1) -> float:
        """log P(CUT > alpha Z | H0), exact for complex Gaussian noise of this correlation."""
        if not alpha > 0:
            return 0.0
        d = alpha * self.lam / self.num
        if num_channels == 1:
            # mu_+ solves the secular equation 1 = sigma2 / mu + sum g2 / (mu + d); then
            # P = prod_k mu_+ / (mu_+ + d_k) / (mu_+ f'(mu_+)), f' = sigma2 / mu**2 + sum g2 / (mu + d)**2
            def secular(mu: float) -> float:
                return 1.0 - self.sigma2 / mu - float(np.sum(self.g2 / (mu + d)))

            hi = 1.0
            while secular(hi) < 0.0:
                hi *= 2.0
            lo = hi / 2.0
            while secular(lo) > 0.0:
                lo /= 2.0
                if lo < 1e-300:        # no positive eigenvalue: the ring predicts the CUT below its threshold
                    return -math.inf
            mu = float(optimize.brentq(secular, lo, hi, xtol=1e-300, rtol=1e-14))
            slope = self.sigma2 / mu**2 + float(np.sum(self.g2 / (mu + d) ** 2))
            return float(-np.sum(np.log1p(d / mu))) - math.log(mu * slope)
        # several independent channels: each eigenvalue C-fold; P = P(G_+ > sum_j a_j G_j), G ~ Gamma(C, 1),
        # a_j = |mu_j| / mu_+: sum_{m<C} E[T**m e**-T] / m!, the moments from the cumulants of the
        # (positive) Laplace transform prod_j (1 + a_j)**-C by the usual recursion
        # v v^H - diag(0, d): a diagonal unitary makes v real without changing the eigenvalues
        vr = np.abs(self.v)
        m = np.outer(vr, vr)
        m[np.arange(1, m.shape[0]), np.arange(1, m.shape[0])] -= d
        eig = np.linalg.eigvalsh(m)
        mu_plus = float(eig[-1])
        if not mu_plus > 0:
            return -math.inf
        a = np.abs(eig[:-1]) / mu_plus
        x = a / (1.0 + a)
        c = num_channels
        kappa = [c * math.factorial(n - 1) * float(np.sum(x ** n)) for n in range(1, c)]
        moments = [1.0]                                             # E[T**m e**-T] / E[e**-T]
        for order in range(1, c):
            moments.append(sum(math.comb(order - 1, i) * kappa[i] * moments[order - 1 - i] for i in range(order)))
        log_laplace = -c * float(np.sum(np.log1p(a)))
        return log_laplace + math.log(sum(mk / math.factorial(k) for k, mk in enumerate(moments)))

    def multiplier(self, pfa: float, num_channels: int = 1) -> float:
        """alpha with ``exp(log_pfa(alpha)) == pfa``."""
        target = math.log(pfa)

        def f(alpha: float) -> float:
            return self.log_pfa(alpha, num_channels) - target

        guess = float(ca_multiplier_channels(pfa, self.num_effective, num_channels))
        lo, hi = guess / 2.0, guess * 2.0
        while f(lo) < 0.0:
            lo /= 4.0
        while f(hi) > 0.0:
            hi *= 4.0
        return float(optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-12))


def correlated_ca_false_alarm_probability(multiplier: float, cell_correlation: ArrayLike, guard: tuple[int, int],
                                          train: tuple[int, int], num_channels: int = 1) -> float:
    """P_fa of CA-CFAR on a map whose noise cells are correlated (windowed and/or oversampled map).

    Exact for complex Gaussian noise: the CUT minus ``alpha`` times the ring mean is a Hermitian form of
    jointly Gaussian cells (the CUT's correlation with its ring included) with one positive eigenvalue, so
    ``P_fa = prod_{j != +} mu_+ / (mu_+ - mu_j)`` (one channel; several independent channels, each
    eigenvalue repeated, by the Gamma form).  With independent cells it is
    :func:`ca_false_alarm_probability` (and :func:`ca_multiplier_channels`' law).

    Parameters
    ----------
    multiplier : float
        alpha >= 0 on the ring mean.
    cell_correlation : array_like of complex, shape (R, D)
        ``rho[range_offset % R, doppler_offset % D]`` (:func:`cell_correlation`).
    guard, train : tuple of (int, int)
        As :class:`CfarDetector` (an interior cell's full ring).
    num_channels : int
        Independent channels whose power the map sums, >= 1.

    Returns
    -------
    float
    """
    with threadpool_limits(limits=1, user_api="blas"):
        ring = _CorrelatedRing(_check_correlation(cell_correlation),
                               _ring_offsets_of(_check_pair("guard", guard), _check_pair("train", train)))
        return math.exp(ring.log_pfa(float(multiplier), int(num_channels)))


def correlated_ca_multiplier(pfa: float, cell_correlation: ArrayLike, guard: tuple[int, int],
                             train: tuple[int, int], num_channels: int = 1) -> float:
    """CA-CFAR multiplier for an interior cell of a correlated map: the root of
    :func:`correlated_ca_false_alarm_probability` ``= pfa``; parameters as there."""
    pfa = _check_pfa(pfa)
    with threadpool_limits(limits=1, user_api="blas"):
        ring = _CorrelatedRing(_check_correlation(cell_correlation),
                               _ring_offsets_of(_check_pair("guard", guard), _check_pair("train", train)))
        return ring.multiplier(pfa, int(num_channels))


# --------------------------------------------------------------------------- window sums


def _kernel(half: int, offsets: Iterable[int]) -> NDArray[np.float64]:
    """Length 2*half+1 correlation kernel, 1 at the given offsets from the centre."""
    k = np.zeros(2 * half + 1)
    k[[o + half for o in offsets]] = 1.0
    return k


def _corr(x: NDArray[np.float64], kernel: NDArray[np.float64], axis: int, wrap: bool) -> NDArray[np.float64]:
    """``out[i] = sum_o kernel[o] x[i + o]`` along ``axis``; outside cells are 0 or wrapped."""
    return ndimage.correlate1d(x, kernel, axis=axis, mode="wrap" if wrap else "constant", cval=0.0)


def _kth_smallest(block: NDArray[np.float64], kth: NDArray[np.int64]) -> NDArray[np.float64]:
    """``block[i, j]`` partitioned, element ``kth[i, j]`` (0-based) of each last-axis row; sorts ``block``.

    One partition for the commonest ``kth`` (the interior), then a second one
    only for the few edge rows that need another rank.
    """
    values, counts = np.unique(kth, return_counts=True)
    main = int(values[np.argmax(counts)])
    block.partition(main, axis=-1)
    out = block[..., main].copy()
    for kv in values[values != main]:
        cells = kth == kv
        sub = block[cells]
        sub.partition(int(kv), axis=-1)
        out[cells] = sub[:, kv]
    return out


#: CA detect_mask: above this fraction of cells needing the exact test, the full detect() is cheaper
_EXACT_FRACTION = 0.02
#: block shapes (range, Doppler) tried for the lower bound of the ring sum
_BLOCK_SHAPES = ((1, 2), (2, 1), (2, 2), (4, 1), (1, 4), (4, 2), (2, 4), (3, 2), (2, 3))


def _check_power_quick(power: ArrayLike, window: tuple[int, int]) -> tuple[NDArray[np.floating], float]:
    """:func:`_check_power` without the float64 copy: two reductions decide, the full check explains.

    Returns the map and its largest value.
    """
    arr = np.asarray(power)
    if arr.dtype in (np.float32, np.float64) and arr.ndim == 2 and window[0] <= arr.shape[0] \
            and window[1] <= arr.shape[1] and arr.size:
        peak = arr.max()
        if np.isfinite(peak) and arr.min() >= 0:
            return arr, float(peak)
    checked = _check_power(arr, window)
    return checked, float(checked.max())


def _block_offsets(block: int, half: int, guard: int) -> tuple[list[int], list[int]]:
    """Offsets (in blocks) of the blocks inside the window ``-half ... half`` wherever the cell sits in its
    block, and those among them clear of the guard ``-guard ... guard``."""
    inside = [u for u in range(-half, half + 1) if u * block - (block - 1) >= -half and u * block + block - 1 <= half]
    clear = [u for u in inside if u * block + block - 1 < -guard or u * block - (block - 1) > guard]
    return inside, clear


def _runs(offsets: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted offsets as runs of consecutive ones: (first, length) each."""
    runs: list[tuple[int, int]] = []
    for o in sorted(offsets):
        if runs and runs[-1][0] + runs[-1][1] == o:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((o, 1))
    return runs


class _Doubling:
    """Sums over runs of consecutive elements ``stride`` apart in a flat array, by doubling.

    ``p_n[j] = sum_{t < n} x[j + t stride]`` is kept for n = 1, 2, 4, ...; a run of any length adds one
    of them per set bit of its length: a handful of additions of contiguous arrays instead of one
    per element.  All terms are non-negative, so every sum of n terms is within (n - 1) ulp (relative)
    of the exact one.
    """

    def __init__(self, x: NDArray[np.floating], stride: int):
        self._stride = stride
        self._sums: dict[int, NDArray[np.floating]] = {1: x}

    def _sum_of(self, n: int) -> NDArray[np.floating]:
        found = self._sums.get(n)
        if found is None:
            half = self._sum_of(n // 2)
            shift = (n // 2) * self._stride
            found = self._sums[n] = half[: half.size - shift] + half[shift:]
        return found

    def parts(self, start: int, count: int, runs: Iterable[tuple[int, int]]) -> list[NDArray[np.floating]]:
        """Arrays of ``count`` elements whose sum is ``sum over the runs (first, length) of
        x[start + (first + t) stride + i]``."""
        out = []
        for first, length in runs:
            pos = start + first * self._stride
            for bit in reversed(range(length.bit_length())):
                n = 1 << bit
                if length & n:
                    out.append(self._sum_of(n)[pos: pos + count])
                    pos += n * self._stride
        return out


def _total(parts: list[NDArray[np.floating]], dtype: np.dtype[Any], count: int) -> NDArray[np.floating]:
    """The sum of the arrays (a new array; zeros when there are none)."""
    if not parts:
        return np.zeros(count, dtype=dtype)
    out = parts[0].copy() if len(parts) == 1 else np.add(parts[0], parts[1])
    for part in parts[2:]:
        out += part
    return out


@dataclass(frozen=True)
class _RingBound:
    """A lower bound of every cell's ring sum from block sums (see :meth:`CaCfarDetector.detect_mask`).

    The map is padded by the window's half extent (zeros in range, wrapped or zeros in Doppler) and cut
    into blocks; ``range_clear x doppler_inside`` and ``(range_inside - range_clear) x doppler_clear``
    (block offsets) are the blocks inside the ring of every cell of the centre block.
    """

    shape: tuple[int, int]
    block: tuple[int, int]
    half: tuple[int, int]
    wrap: bool
    range_inside: tuple[int, ...]
    range_clear: tuple[int, ...]
    doppler_inside: tuple[int, ...]
    doppler_clear: tuple[int, ...]
    per_cell: float                         # least alpha(N) / N
    ring_rows: NDArray[np.int64]            # (N,) offsets of the full ring
    ring_cols: NDArray[np.int64]

    @classmethod
    def build(cls, shape: tuple[int, int], guard: tuple[int, int], train: tuple[int, int], wrap: bool,
              per_cell: float, num_ring: int) -> _RingBound | None:
        (gr, gd), hr, hd = guard, guard[0] + train[0], guard[1] + train[1]
        if shape[0] < 2 * hr + 1 or shape[1] < 2 * hd + 1 or not per_cell > 0:
            return None
        best: tuple[float, _RingBound] | None = None
        ring = np.ones((2 * hr + 1, 2 * hd + 1), dtype=bool)
        ring[hr - gr: hr + gr + 1, hd - gd: hd + gd + 1] = False
        ring_rows, ring_cols = (np.nonzero(ring)[0] - hr, np.nonzero(ring)[1] - hd)
        for br, bd in _BLOCK_SHAPES:
            ri, rc = _block_offsets(br, hr, gr)
            di, dc = _block_offsets(bd, hd, gd)
            covered = (len(rc) * len(di) + (len(ri) - len(rc)) * len(dc)) * br * bd / num_ring
            if covered < 0.3:
                continue
            # cost in additions of one cell (fitted to timings of candidates()): the block sums touch every
            # cell, about 3 times as slowly with Doppler blocks (strided columns); the window sums by doubling
            # cost a few additions per block; and the exact test of each noise cell above the bound
            # (independent exponential noise: P(power > per_cell * covered * N * mean) = exp(-alpha covered); a
            # windowed map has a few times more) costs as much as some 3000 additions
            cells = shape[0] * shape[1]
            cost = cells * (3.4 if bd > 1 else 1.0) + 3.6 * cells / (br * bd) + \
                2800 * cells * math.exp(-per_cell * num_ring * covered)
            bound = cls(shape, (br, bd), (hr, hd), wrap, tuple(ri), tuple(rc), tuple(di), tuple(dc), per_cell,
                        ring_rows.astype(np.int64), ring_cols.astype(np.int64))
            if best is None or cost < best[0]:
                best = (cost, bound)
        return None if best is None else best[1]

    def candidates(self, power: NDArray[np.floating], peak: float) -> tuple[NDArray[np.int64], NDArray[np.int64],
                                                                            NDArray[np.floating]]:
        """Rows and columns of the cells whose power exceeds the bound on their threshold, and the padded map.

        ``peak``: the largest value of ``power`` (it decides whether float32 sums could overflow).
        """
        (num_r, num_d), (br, bd), (hr, hd) = self.shape, self.block, self.half
        nbr, nbd = -(-(num_r + 2 * hr) // br), -(-(num_d + 2 * hd) // bd)
        padded = work_array(f"cfar.padded.{power.dtype.char}", (nbr * br, nbd * bd), power.dtype)
        padded[:hr] = 0
        padded[hr + num_r:] = 0
        centre = padded[hr: hr + num_r]
        centre[:, hd: hd + num_d] = power
        if self.wrap:
            centre[:, :hd] = power[:, num_d - hd:]
            centre[:, hd + num_d: 2 * hd + num_d] = power[:, :hd]
        else:
            centre[:, :hd] = 0
            centre[:, hd + num_d: 2 * hd + num_d] = 0
        centre[:, 2 * hd + num_d:] = 0
        level = self._level(padded, nbr, nbd, peak)
        above = padded.reshape(nbr, br, nbd, bd) > level[:, None, :, None]
        flat = np.flatnonzero(above)                                            # indices into padded
        rows, cols = np.divmod(flat, padded.shape[1])
        rows -= hr
        cols -= hd
        keep = (rows >= 0) & (rows < num_r) & (cols >= 0) & (cols < num_d)
        return rows[keep], cols[keep], padded

    def _level(self, padded: NDArray[np.floating], nbr: int, nbd: int, peak: float) -> NDArray[np.floating]:
        """Per block: a value no cell of the block can exceed without its power exceeding the bound on its
        threshold, ``per_cell`` times the lower bound of its ring sum, less the rounding of the sums."""
        dtype = padded.dtype
        if peak * self.ring_rows.size >= float(np.finfo(dtype).max) / 4:     # float32 sums could overflow
            dtype = np.dtype(np.float64)
        lower = self._lower_bound(padded, nbr, nbd, dtype)
        # the sums have at most num_ring non-negative terms, each sum within (num_ring - 1) ulp of the exact one:
        # the slack covers that, the scaling and the comparison; `tiny` covers the absolute rounding of a
        # subnormal product, and a cell of power 0 never passes (a level of 0 keeps empty stretches out)
        finfo = np.finfo(dtype)
        slack = 4 * (self.ring_rows.size + 4) * float(finfo.eps)
        level = np.multiply(lower, dtype.type(self.per_cell * (1.0 - slack)))
        level -= finfo.tiny
        return np.maximum(level, 0, out=level)

    def _lower_bound(self, padded: NDArray[np.floating], nbr: int, nbd: int,
                     dtype: np.dtype[Any]) -> NDArray[np.floating]:
        """Sum of the blocks inside the ring of every cell of each block, shape (nbr, nbd), in ``dtype``.

        The block sums sit in a frame of zero blocks, flattened, so that every shift in range and Doppler is
        a shift of one contiguous array (the frame absorbs what crosses a row end).
        """
        (br, bd), ri, di = self.block, self.range_inside, self.doppler_inside
        mr, md = max(abs(u) for u in ri), max(abs(v) for v in di)
        rows, width = nbr + 2 * mr + 2, nbd + 2 * md                 # one more zero row each side: room to shift
        framed = work_array(f"cfar.framed.{dtype.char}", (rows, width), dtype)
        framed[: mr + 1] = 0
        framed[mr + 1 + nbr:] = 0
        framed[:, :md] = 0
        framed[:, md + nbd:] = 0
        # block sums: range neighbours first (whole rows), then Doppler neighbours (strided columns) on the
        # fewer rows left (np.sum over the small axes of a 4-d view is many times slower)
        sums = framed[mr + 1: mr + 1 + nbr, md: md + nbd]
        rows_of = padded.reshape(nbr, br, nbd * bd)
        across = sums if bd == 1 else work_array(f"cfar.across.{dtype.char}", (nbr, nbd * bd), dtype)
        np.copyto(across, rows_of[:, 0])
        for i in range(1, br):
            across += rows_of[:, i]
        if bd > 1:
            np.copyto(sums, across[:, 0::bd])
            for j in range(1, bd):
                sums += across[:, j::bd]
        # Doppler sums on every row but the outer two: framed row i + 1 is row i of `wide` and `narrow`
        doppler, count = _Doubling(framed.reshape(-1), 1), (rows - 2) * width
        wide = _total(doppler.parts(width, count, _runs(di)), dtype, count)
        narrow = _total(doppler.parts(width, count, _runs(self.doppler_clear)), dtype, count)
        # range sums: wide rows clear of the guard, narrow rows (the Doppler wings) inside it
        inner = _runs(u for u in ri if u not in self.range_clear)
        start, count = mr * width, nbr * width
        lower = _total(_Doubling(wide, width).parts(start, count, _runs(self.range_clear))
                       + _Doubling(narrow, width).parts(start, count, inner), dtype, count)
        return lower.reshape(nbr, width)[:, md: md + nbd]

    def ring_sums(self, padded: NDArray[np.floating], rows: NDArray[np.int64],
                  cols: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Exact ring sum (float64) and training count of the given cells, from the padded map."""
        (num_r, num_d), (hr, hd) = self.shape, self.half
        width = padded.shape[1]
        offsets = self.ring_rows * width + self.ring_cols
        base = (rows + hr) * width + (cols + hd)
        flat = padded.reshape(-1)
        total = np.empty(rows.size)
        for i in range(0, rows.size, 256):
            total[i: i + 256] = flat.take(base[i: i + 256, None] + offsets[None, :]).sum(axis=1, dtype=np.float64)
        count = np.full(rows.size, self.ring_rows.size, dtype=np.int64)
        edge = (rows < hr) | (rows >= num_r - hr)
        if not self.wrap:
            edge |= (cols < hd) | (cols >= num_d - hd)
        if np.any(edge):
            rr = rows[edge, None] + self.ring_rows[None, :]
            cc = cols[edge, None] + self.ring_cols[None, :]
            inside = (rr >= 0) & (rr < num_r)
            if not self.wrap:
                inside &= (cc >= 0) & (cc < num_d)
            count[edge] = np.count_nonzero(inside, axis=1)
        return total, count


@dataclass(frozen=True)
class CfarResult:
    """Outcome of one CFAR pass over a power map.

    Attributes
    ----------
    mask : ndarray of bool, shape (num_range_bins, num_doppler_bins)
        True where ``power > threshold`` in a tested cell.
    threshold : ndarray of float64, same shape
        ``alpha * noise`` in the units of the power map; NaN where not tested.
    noise : ndarray of float64, same shape
        The detector's noise statistic Z (CA: mean of the ring; GO/SO: greater /
        smaller half-mean; OS: k-th smallest ring cell); NaN where not tested.
    num_training : ndarray of int64, same shape
        Training cells the statistic used (fewer near the range edges, and the
        Doppler edges without wrap; for GO/SO the two halves together).
    """

    mask: NDArray[np.bool_]
    threshold: NDArray[np.float64]
    noise: NDArray[np.float64]
    num_training: NDArray[np.int64]


class CfarDetector:
    """Common base of the 2-D CFAR detectors.

    Parameters
    ----------
    pfa : float
        Design false-alarm probability per tested cell, 0 < pfa < 1.
    guard : tuple of (int, int)
        Guard cells each side of the CUT in (range, Doppler), >= 0.
    train : tuple of (int, int)
        Training cells each side beyond the guard in (range, Doppler), >= 0.
    wrap_doppler : bool, default True
        Treat the Doppler axis as circular; the range axis never wraps.
    min_training : int, default 4
        Cells with fewer training cells than this are not tested, >= 1.
    """

    #: Short name used in messages.
    method = "CFAR"
    #: Whether the threshold is exact for a map that sums the power of several channels; such a
    #: detector takes a ``num_channels`` keyword (:func:`make_cfar` passes it).
    multichannel = False
    #: Whether the detector takes a ``cell_correlation`` keyword (thresholds exact on correlated maps);
    #: :func:`make_cfar` passes it to such detectors only.
    correlation_aware = False

    def __init__(self, pfa: float, guard: tuple[int, int], train: tuple[int, int], wrap_doppler: bool = True,
                 min_training: int = 4):
        self.pfa = _check_pfa(pfa)
        self.guard = _check_pair("guard", guard)
        self.train = _check_pair("train", train)
        if not isinstance(wrap_doppler, bool | np.bool_):
            raise InputError(f"wrap_doppler = {wrap_doppler!r}: allowed True or False")
        self.wrap_doppler = bool(wrap_doppler)
        if isinstance(min_training, bool) or not isinstance(min_training, numbers.Integral) or int(min_training) < 1:
            raise InputError(f"min_training = {min_training!r}: allowed an integer >= 1; pass e.g. min_training=4")
        self.min_training: int = int(min_training)
        if self.num_training_full < self.min_training:
            raise InputError(f"guard = {self.guard}, train = {self.train} give {self.num_training_full} training "
                             f"cells for {self.method}: allowed at least min_training = {self.min_training}; "
                             "increase train or lower min_training")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(pfa={self.pfa!r}, guard={self.guard}, train={self.train}, "
                f"wrap_doppler={self.wrap_doppler}, min_training={self.min_training})")

    @property
    def window_shape(self) -> tuple[int, int]:
        """(range, Doppler) extent of the guard + training window, cells."""
        return (2 * (self.guard[0] + self.train[0]) + 1, 2 * (self.guard[1] + self.train[1]) + 1)

    @property
    def num_ring(self) -> int:
        """Cells in the full training ring (window minus guard box)."""
        h, w = self.window_shape
        return h * w - (2 * self.guard[0] + 1) * (2 * self.guard[1] + 1)

    @property
    def num_training_full(self) -> int:
        """Training cells used by an interior cell."""
        return self.num_ring

    def detect(self, power: ArrayLike) -> CfarResult:
        """Run the detector over a power map.

        Parameters
        ----------
        power : array_like of float, shape (num_range_bins, num_doppler_bins)
            ``|X|**2`` of the range-Doppler periodogram, finite, >= 0, any
            linear power unit; the window must fit in the map.

        Returns
        -------
        CfarResult
        """
        p = _check_power(power, self.window_shape)
        noise, used, key = self._statistic(p)
        tested = used >= self.min_training
        noise = np.where(tested, noise, np.nan)
        if key.max() < 4 * key.size:           # small key space: a lookup table is faster than np.unique
            table = np.full(int(key.max()) + 1, np.nan)
            present = np.zeros(table.size, dtype=bool)
            present[key[tested]] = True
            keys = np.flatnonzero(present)
            table[keys] = self._multipliers(keys)
            alpha = table[key]
        else:
            keys, inverse = np.unique(key[tested], return_inverse=True)
            alpha = np.full(key.shape, np.nan)
            alpha[tested] = self._multipliers(keys)[inverse]
        threshold = alpha * noise
        with np.errstate(invalid="ignore"):
            mask = p > threshold
        return CfarResult(mask=mask, threshold=threshold, noise=noise, num_training=used)

    def detect_mask(self, power: ArrayLike) -> NDArray[np.bool_]:
        """Only the detection mask: ``detect(power).mask`` (see :meth:`CaCfarDetector.detect_mask`).

        Parameters
        ----------
        power : array_like of float, shape (num_range_bins, num_doppler_bins)
            As :meth:`detect`.

        Returns
        -------
        ndarray of bool, shape of ``power``
        """
        return self.detect(power).mask

    # subclass hooks ---------------------------------------------------------------------------------------
    def _statistic(self, power: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64],
                                                              NDArray[np.int64]]:
        """Noise statistic, training cells used and an integer design key per cell."""
        raise NotImplementedError

    def _multipliers(self, keys: NDArray[np.int64]) -> NDArray[np.float64]:
        """Exact multipliers for the distinct design keys."""
        raise NotImplementedError

    # shared window sums -----------------------------------------------------------------------------------
    def _doppler_sums(self, x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Sums over the whole Doppler extent and over the Doppler wings (|offset| > guard)."""
        gd, td = self.guard[1], self.train[1]
        hd = gd + td
        full = _corr(x, _kernel(hd, range(-hd, hd + 1)), 1, self.wrap_doppler)
        wings = _corr(x, _kernel(hd, [*range(-hd, -gd), *range(gd + 1, hd + 1)]), 1, self.wrap_doppler)
        return full, wings

    def _range_parts(self, offsets_full: list[int], offsets_wings: list[int], full: NDArray[np.float64],
                     wings: NDArray[np.float64]) -> NDArray[np.float64]:
        """Sum of ``full`` rows at ``offsets_full`` and ``wings`` rows at ``offsets_wings`` from each CUT."""
        hr = self.guard[0] + self.train[0]
        out = np.zeros_like(full)
        if offsets_full:
            out += _corr(full, _kernel(hr, offsets_full), 0, False)
        if offsets_wings:
            out += _corr(wings, _kernel(hr, offsets_wings), 0, False)
        return out

    def _ring_offsets(self, side: int) -> tuple[list[int], list[int]]:
        """Range offsets of the full-width rows and of the wing-only rows; side -1, +1 or 0 (both)."""
        gr, hr = self.guard[0], self.guard[0] + self.train[0]
        outer = [o for o in range(-hr, hr + 1) if abs(o) > gr and (side == 0 or np.sign(o) == side)]
        inner = [o for o in range(-gr, gr + 1) if side == 0 or np.sign(o) == side]
        return outer, inner

    def _ring_sum(self, power: NDArray[np.float64], side: int) -> NDArray[np.float64]:
        """Sum of the ring cells on one range side (-1 before, +1 after the CUT) or the whole ring (0)."""
        full, wings = self._doppler_sums(power)
        outer, inner = self._ring_offsets(side)
        return self._range_parts(outer, inner, full, wings)

    def _ring_count(self, shape: tuple[int, int], side: int) -> NDArray[np.int64]:
        """Ring cells inside the map per CUT, for the same selection as :meth:`_ring_sum`."""
        outer, inner = self._ring_offsets(side)
        ones_r = np.ones((shape[0], 1))
        cfull, cwings = self._doppler_sums(np.ones((1, shape[1])))
        count = (self._range_parts(outer, [], ones_r, ones_r) * cfull
                 + self._range_parts([], inner, ones_r, ones_r) * cwings)
        return np.rint(count).astype(np.int64)


class CaCfarDetector(CfarDetector):
    """Cell-averaging CFAR: threshold = alpha(N) * mean of the N ring cells.

    ``alpha(N) = N (pfa**(-1/N) - 1)`` for the N cells each CUT actually has (independent cells).

    Parameters
    ----------
    pfa, guard, train, wrap_doppler, min_training
        As :class:`CfarDetector`.
    num_channels : int, default 1
        Independent channels whose power the map sums (exact Beta law).
    cell_correlation : array_like of complex, shape (R, D), optional
        The map's noise correlation by cell offset, ``rho[dr % R, dd % D]`` (:func:`cell_correlation` of
        its taper and transform lengths).  Then alpha is the exact root of the correlated false-alarm
        equation (module notes) for the ring each CUT has (full, or cut by a map edge).  None, or a
        correlation that vanishes at every offset within the ring: independent cells, the closed forms.
    """

    method = "CA-CFAR"
    multichannel = True
    correlation_aware = True

    def __init__(self, pfa: float, guard: tuple[int, int], train: tuple[int, int], wrap_doppler: bool = True,
                 min_training: int = 4, num_channels: int = 1, cell_correlation: ArrayLike | None = None):
        if isinstance(num_channels, bool) or not isinstance(num_channels, numbers.Integral) or num_channels < 1:
            raise InputError(f"num_channels = {num_channels!r}: allowed an integer >= 1 (channels whose power the "
                             "map sums)")
        self.num_channels: int = int(num_channels)
        super().__init__(pfa, guard, train, wrap_doppler, min_training)
        self.cell_correlation: NDArray[np.complex128] | None = None
        self._correlation_key: bytes = b""
        if cell_correlation is not None:
            rho = _check_correlation(cell_correlation)
            hr, hd = self.guard[0] + self.train[0], self.guard[1] + self.train[1]
            block = rho[np.arange(-2 * hr, 2 * hr + 1)[:, None] % rho.shape[0],
                        np.arange(-2 * hd, 2 * hd + 1)[None, :] % rho.shape[1]]
            off_centre = np.abs(block)
            off_centre[2 * hr, 2 * hd] = 0.0
            if float(off_centre.max()) > 1e-9:               # else independent cells: the closed forms
                if self.num_channels > MAX_CORRELATED_CHANNELS:
                    raise SensingError(f"num_channels = {self.num_channels}: the exact CA-CFAR threshold of a map of "
                                       f"correlated cells is computed for 1 ... {MAX_CORRELATED_CHANNELS} summed "
                                       "channels (its Gamma series fails beyond); sum fewer channels "
                                       "(beamform first, or sense subarrays), or use window_range = window_doppler "
                                       "= 'none' and no oversampling, whose independent cells have a closed form")
                self.cell_correlation = rho
                self._correlation_key = hashlib.sha1(np.round(block, 12).tobytes()).digest()
        self._alpha_table: NDArray[np.float64] | None = None
        self._bounds: dict[tuple[int, int], _RingBound | None] = {}
        self._announced: bool = False                    # a long computation of the thresholds was logged

    def _statistic(self, power: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64],
                                                              NDArray[np.int64]]:
        total, count = self._ring_sum(power, 0), self._ring_count(power.shape, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / count
        return mean, count, count

    def _multipliers(self, keys: NDArray[np.int64]) -> NDArray[np.float64]:
        if self.cell_correlation is not None:
            return self._correlated_multipliers(keys)
        if self.num_channels > 1:
            return ca_multiplier_channels(self.pfa, keys, self.num_channels)
        return ca_multiplier(self.pfa, keys)

    def _correlated_multipliers(self, keys: NDArray[np.int64]) -> NDArray[np.float64]:
        """Exact multipliers on a correlated map for the training counts ``keys`` (NaN where no ring has it).

        A count stands for the rings of that many cells: the full ring and those cut by a range edge (one
        side: the window fits in the map; the correlation is symmetric, so either side) and, without Doppler
        wrap, a Doppler edge.  Where several shapes share a count the largest multiplier is taken (P_fa at
        most the design on each).
        """
        rho = self.cell_correlation
        if rho is None:                                   # only called for a detector made with a correlation
            raise SensingError("the CA-CFAR has no cell correlation: make it with cell_correlation=...")
        hr, hd = self.guard[0] + self.train[0], self.guard[1] + self.train[1]
        cuts: dict[int, list[tuple[int, int]]] = {}
        for cut_r in range(hr + 1):
            for cut_d in range(1 if self.wrap_doppler else hd + 1):
                n = _ring_offsets_of(self.guard, self.train, cut_r, cut_d).shape[0]
                cuts.setdefault(n, []).append((cut_r, cut_d))
        out = np.full(len(keys), np.nan)
        wanted = [(i, int(n), cut) for i, n in enumerate(np.asarray(keys).tolist()) for cut in cuts.get(int(n), [])]
        # the sizes of the rings still to decompose (the time of each grows as the cube of its cells)
        missing = [n for _, n, cut in wanted if (self.pfa, self.guard, self.train, cut, self.num_channels,
                                                  self._correlation_key) not in _CORRELATED_ALPHA]
        for i, n, cut in wanted:
            key = (self.pfa, self.guard, self.train, cut, self.num_channels, self._correlation_key)
            alpha = _CORRELATED_ALPHA.get(key)
            if alpha is None:
                ring_key = (self.guard, self.train, cut, self._correlation_key)
                started = time.perf_counter()
                # small eigen-decompositions: single-threaded BLAS is the faster (and spares a loaded host)
                with threadpool_limits(limits=1, user_api="blas"):
                    ring = _CORRELATED_RINGS.get(ring_key)
                    if ring is None:
                        ring = _CorrelatedRing(rho, _ring_offsets_of(self.guard, self.train, *cut))
                        if len(_CORRELATED_RINGS) > 256:
                            _CORRELATED_RINGS.clear()
                        _CORRELATED_RINGS[ring_key] = ring
                    alpha = ring.multiplier(self.pfa, self.num_channels)
                if missing:
                    missing.remove(n)
                self._announce_cost(time.perf_counter() - started, n, missing)
                if len(_CORRELATED_ALPHA) > 4096:
                    _CORRELATED_ALPHA.clear()
                _CORRELATED_ALPHA[key] = alpha
            out[i] = alpha if not out[i] >= alpha else out[i]
        return out

    def _announce_cost(self, seconds: float, cells: int, remaining: list[int]) -> None:
        """Log once per design when the thresholds still to compute will take a while: ``seconds`` for a ring of
        ``cells`` cells, ``remaining`` the sizes of the rings still to come.

        Each ring shape (the full ring and every one cut by an edge) costs an eigendecomposition of its
        cells' covariance, O(cells**3): a large training window stalls the first capture for minutes.
        """
        if self._announced or not remaining:
            return
        ahead = seconds * sum((n / cells) ** 3 for n in remaining)
        if ahead < _ANNOUNCE_AFTER_S:
            return
        self._announced = True
        _LOG.warning("CA-CFAR on a correlated map (the taper and the zero padding correlate its cells): the exact "
                     "thresholds of guard %s, training %s need %d more ring shapes of up to %d cells, about %.0f s "
                     "before the first map is tested (once per design in this process); a smaller training window "
                     "is much faster (the time grows with the cube of the ring's cells)",
                     list(self.guard), list(self.train), len(remaining), max(remaining), ahead)

    def detect_mask(self, power: ArrayLike) -> NDArray[np.bool_]:
        """Only the detection mask, equal to ``detect(power).mask``, deciding only the cells that can pass.

        A cell passes where ``power > (alpha(N) / N) S``, S the sum of its N ring cells.  ``alpha(N) / N``
        is at least ``c``, its least value over the N that occur; S is at least the sum of the blocks of
        (b_r x b_d) cells that lie inside the ring wherever the cell sits in its block (window sums by
        doubling, a few additions per block in the map's precision; sums of non-negative terms, so their
        rounding is bounded and taken off the bound).  Cells with ``power <= c x`` that bound cannot pass;
        the few others get the exact ring sum and multiplier of :meth:`detect`.  Maps too small for blocks, or
        where more than 2 % of the cells need the exact test, go through :meth:`detect`.

        Parameters
        ----------
        power : array_like of float, shape (num_range_bins, num_doppler_bins)
            As :meth:`detect`.

        Returns
        -------
        ndarray of bool, shape of ``power``
        """
        p, peak = _check_power_quick(power, self.window_shape)
        bound = self._ring_bound(p.shape)
        if bound is None:
            return self.detect(p).mask
        rows, cols, padded = bound.candidates(p, peak)
        if rows.size > _EXACT_FRACTION * p.size:
            return self.detect(p).mask
        mask = np.zeros(p.shape, dtype=bool)
        if rows.size:
            total, count = bound.ring_sums(padded, rows, cols)
            alpha = self._alpha_by_count()[count]
            with np.errstate(invalid="ignore", divide="ignore"):
                threshold = alpha * (total / count)
                mask[rows, cols] = p[rows, cols] > threshold
        return mask

    def _alpha_by_count(self) -> NDArray[np.float64]:
        """Multiplier for every training count 0 ... N (NaN below ``min_training``), computed once."""
        table = self._alpha_table
        if table is None:
            n = np.arange(self.num_ring + 1)
            table = np.full(n.size, np.nan)
            table[self.min_training:] = self._multipliers(n[self.min_training:])
            self._alpha_table = table
        return table

    def _ring_bound(self, shape: tuple[int, int]) -> _RingBound | None:
        """The block lower bound for maps of ``shape`` (None where blocks do not pay), one per shape."""
        cache = self._bounds
        if shape not in cache:
            table = self._alpha_by_count()
            n = np.arange(table.size)
            per_cell = table[self.min_training:] / n[self.min_training:]
            least = float(np.nanmin(per_cell)) if np.any(np.isfinite(per_cell)) else math.nan
            cache[shape] = _RingBound.build(shape, self.guard, self.train, self.wrap_doppler, least, self.num_ring)
        return cache[shape]


class _HalvesCfarDetector(CfarDetector):
    """GO / SO: statistic from the leading and lagging range halves of the ring."""

    def __init__(self, pfa: float, guard: tuple[int, int], train: tuple[int, int], wrap_doppler: bool = True,
                 min_training: int = 4):
        g, t = _check_pair("guard", guard), _check_pair("train", train)
        if t[0] * (2 * (g[1] + t[1]) + 1) + g[0] * 2 * t[1] == 0:
            raise InputError(f"guard = {g}, train = {t}: {self.method} needs training cells before and after "
                             "the cell under test in range; set train[0] >= 1")
        super().__init__(pfa, guard, train, wrap_doppler, min_training)

    @property
    def num_half(self) -> int:
        """Cells in each half of an interior cell's ring."""
        return self.train[0] * self.window_shape[1] + self.guard[0] * 2 * self.train[1]

    @property
    def num_training_full(self) -> int:
        return 2 * self.num_half

    _solve = staticmethod(so_multiplier)      # multiplier for (pfa, n_lead, n_lag); set by each subclass

    def _combine(self, lead: NDArray[np.float64], lag: NDArray[np.float64]) -> NDArray[np.float64]:
        raise NotImplementedError

    def _statistic(self, power: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64],
                                                              NDArray[np.int64]]:
        lead_sum, n_lead = self._ring_sum(power, -1), self._ring_count(power.shape, -1)
        lag_sum, n_lag = self._ring_sum(power, 1), self._ring_count(power.shape, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            stat = self._combine(np.where(n_lead > 0, lead_sum / n_lead, np.nan),
                                 np.where(n_lag > 0, lag_sum / n_lag, np.nan))
        return stat, n_lead + n_lag, n_lead * (self.num_half + 1) + n_lag

    def _multipliers(self, keys: NDArray[np.int64]) -> NDArray[np.float64]:
        base = self.num_half + 1
        return np.array([self._solve(self.pfa, int(k) // base, int(k) % base) for k in keys], dtype=float)


class GoCfarDetector(_HalvesCfarDetector):
    """Greatest-of CFAR: threshold = alpha * max(leading half-mean, lagging half-mean).

    Halves split along range (see the module notes); robust to false alarms at
    clutter edges.  alpha is the exact root of :func:`go_false_alarm_probability`
    for the cells each half has.  Parameters as :class:`CfarDetector`.
    """

    method = "GO-CFAR"
    _solve = staticmethod(go_multiplier)

    def _combine(self, lead: NDArray[np.float64], lag: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.fmax(lead, lag)


class SoCfarDetector(_HalvesCfarDetector):
    """Smallest-of CFAR: threshold = alpha * min(leading half-mean, lagging half-mean).

    Halves split along range (see the module notes); keeps detecting a weak
    target whose training ring runs into a strong return on one side.  alpha is
    the exact root of :func:`so_false_alarm_probability`.  Parameters as
    :class:`CfarDetector`.
    """

    method = "SO-CFAR"
    _solve = staticmethod(so_multiplier)

    def _combine(self, lead: NDArray[np.float64], lag: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.fmin(lead, lag)


class OsCfarDetector(CfarDetector):
    """Ordered-statistic CFAR: threshold = alpha * k-th smallest of the N ring cells.

    Parameters
    ----------
    pfa, guard, train, wrap_doppler, min_training
        As :class:`CfarDetector`.
    rank : int or float, default 0.75
        k as an integer 1 <= k <= N (N the full ring), or a fraction in (0, 1)
        of N.  A cell with fewer cells n (range edges) uses
        ``k_n = clip(ceil(n * k / N), 1, n)``, the same fraction.
    """

    method = "OS-CFAR"

    def __init__(self, pfa: float, guard: tuple[int, int], train: tuple[int, int], wrap_doppler: bool = True,
                 min_training: int = 4, rank: float | int = 0.75):
        super().__init__(pfa, guard, train, wrap_doppler, min_training)
        n = self.num_ring
        if isinstance(rank, numbers.Integral) and not isinstance(rank, bool) and 1 <= int(rank) <= n:
            self.rank_fraction: float = int(rank) / n
        elif isinstance(rank, numbers.Real) and not isinstance(rank, bool | numbers.Integral) and 0 < float(rank) < 1:
            self.rank_fraction = float(rank)
        else:
            raise InputError(f"rank = {rank!r}: allowed an integer 1 ... {n} (the ring has {n} cells) or a "
                             "fraction 0 < rank < 1 of them; pass e.g. rank=0.75")
        self.rank: float | int = rank

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", rank={self.rank!r})"

    def rank_for(self, num_training: ArrayLike) -> NDArray[np.int64]:
        """k used by a cell with ``num_training`` ring cells, ``clip(ceil(n * fraction), 1, n)``."""
        n = np.asarray(num_training, dtype=np.int64)
        k = np.ceil(n * self.rank_fraction - 1e-9).astype(np.int64)
        return np.clip(k, 1, np.maximum(n, 1))

    def _multipliers(self, keys: NDArray[np.int64]) -> NDArray[np.float64]:
        ranks = self.rank_for(keys)
        return np.array([os_multiplier(self.pfa, int(n), int(k)) for n, k in zip(keys, ranks)], dtype=float)

    def _statistic(self, power: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64],
                                                              NDArray[np.int64]]:
        num_r, num_d = power.shape
        hr, hd = self.guard[0] + self.train[0], self.guard[1] + self.train[1]
        # cells outside the map are +inf: they sort after every real cell, so the k-th smallest is unchanged
        padded = np.pad(power, ((hr, hr), (0, 0)), constant_values=np.inf)
        if self.wrap_doppler:
            padded = np.pad(padded, ((0, 0), (hd, hd)), mode="wrap")
        else:
            padded = np.pad(padded, ((0, 0), (hd, hd)), constant_values=np.inf)
        ring = np.ones(self.window_shape, dtype=bool)
        tr, td = self.train
        ring[tr:tr + 2 * self.guard[0] + 1, td:td + 2 * self.guard[1] + 1] = False
        rows, cols = np.nonzero(ring)
        views = sliding_window_view(padded, self.window_shape)           # (R, D, H, W), no copy
        count = self._ring_count(power.shape, 0)
        k = self.rank_for(count)
        out = np.empty(power.shape)
        step = max(1, _OS_BLOCK_ELEMENTS // (num_d * rows.size))
        for r0 in range(0, num_r, step):
            block = views[r0:r0 + step][:, :, rows, cols]                # (step, D, N) copy
            out[r0:r0 + step] = _kth_smallest(block, k[r0:r0 + step] - 1)
        return out, count, count


# ---- kinds -------------------------------------------------------------------------------------
#: Detector classes by kind (``sensing.cfar``), in registration order.
_KINDS: dict[str, type[CfarDetector]] = {}


def register_cfar(name: str, detector: type[CfarDetector], *, replace: bool = False) -> type[CfarDetector]:
    """Register the CFAR detector class ``detector`` as the kind ``name`` (``sensing.cfar = name``).

    Parameters
    ----------
    name : str
        The kind, an identifier (``"ca"``, ``"os"``, ``"toy"``); also registered with
        :func:`sdr_isac.config.register_cfar_kind`, so a configuration may name it.
    detector : type
        A :class:`CfarDetector` subclass, built as ``detector(pfa=, guard=, train=)`` (plus
        ``num_channels=`` when its ``multichannel`` is True).
    replace : bool
        Allow replacing a detector already registered as ``name``.

    Returns
    -------
    type
        ``detector``.

    Raises
    ------
    InputError
        ``detector`` is not a CfarDetector subclass, or ``name`` is taken and ``replace`` is False.
    ConfigError
        ``name`` is not an identifier.
    """
    if not (isinstance(detector, type) and issubclass(detector, CfarDetector)):
        raise InputError(f"CFAR detector {detector!r} for kind {name!r}: allowed a subclass of CfarDetector; derive "
                         "it from sdr_isac.sensing.cfar.CfarDetector")
    held = _KINDS.get(name)
    if held is not None and held is not detector and not replace:
        raise InputError(f"CFAR kind {name!r}: already registered to {held.__name__}; pick another name or pass "
                         "replace=True")
    register_cfar_kind(name)
    _KINDS[name] = detector
    return detector


def unregister_cfar(name: str) -> None:
    """Remove the CFAR kind ``name`` (a test's or plugin's) here and in the configuration; unknown names are ignored."""
    _KINDS.pop(name, None)
    unregister_cfar_kind(name)


def registered_cfars() -> tuple[str, ...]:
    """The registered CFAR kinds, in registration order (``ca``, ``go``, ``so``, ``os``, ...)."""
    return tuple(_KINDS)


def cfar_class(name: str) -> type[CfarDetector]:
    """The detector class registered as the kind ``name``.

    Raises
    ------
    SensingError
        No detector is registered as ``name`` (the message lists the kinds).
    """
    detector = _KINDS.get(name)
    if detector is None:
        raise SensingError(f"sensing.cfar = {name!r}: allowed a registered CFAR kind ({', '.join(_KINDS)}); "
                           "register it with sdr_isac.sensing.cfar.register_cfar")
    return detector


def make_cfar(name: str, pfa: float, guard: tuple[int, int], train: tuple[int, int],
              num_channels: int = 1, *, cell_correlation: ArrayLike | None = None) -> CfarDetector:
    """A detector of the kind ``name`` for a map that sums ``num_channels`` channels.

    Parameters
    ----------
    name : str
        A registered kind (:func:`registered_cfars`).
    pfa, guard, train
        As :class:`CfarDetector`.
    num_channels : int
        Channels whose power the map sums, >= 1; more than one needs a ``multichannel`` kind.
    cell_correlation : array_like of complex, shape (R, D), optional
        Noise correlation between map cells by offset (:func:`cell_correlation` of the map's taper and
        transform lengths).  A ``correlation_aware`` kind (CA) derives its thresholds for it; the GO, SO and
        OS thresholds assume independent cells and do not use it: on a windowed or oversampled map their false
        alarm rate is not ``pfa`` (measured at pfa = 1e-3 on a default 64 x 32 map with the Hann taper and 2x
        zero padding: GO 1.2e-3, OS 1.9e-3, SO 4.6e-3; at pfa = 1e-2 GO 0.96e-2; with a Blackman taper and 4x
        padding GO fell to 0.11 pfa, a detection loss instead), and a warning says so once per design.  None:
        independent cells.

    Raises
    ------
    SensingError
        ``name`` is not registered, or it is a single-channel kind and ``num_channels > 1``.
    """
    detector = cfar_class(name)
    extra: dict[str, Any] = {}
    if cell_correlation is not None and detector.correlation_aware:
        extra["cell_correlation"] = cell_correlation
    elif cell_correlation is not None:
        rho = np.abs(np.asarray(cell_correlation)).ravel()
        if rho.size > 1 and float(rho[1:].max()) > _INDEPENDENT_CELLS:
            _LOG.warning("sensing.cfar = %r: its thresholds assume independent cells, and this map's cells are "
                         "correlated (up to %.2f: its taper and zero padding), so its false-alarm rate is not pfa = %g "
                         "(more false alarms on the default maps, fewer with heavy tapers and padding); use "
                         "sensing.cfar = 'ca' (exact for correlated cells), or window_range = "
                         "window_doppler = 'none' and range_oversampling = doppler_oversampling = 1",
                         name, float(rho[1:].max()), pfa)
    if detector.multichannel:
        return detector(pfa=pfa, guard=guard, train=train, num_channels=num_channels, **extra)  # type: ignore[call-arg]
    if num_channels > 1:
        single = "/".join(k.upper() for k, d in _KINDS.items() if not d.multichannel)
        summed = " or ".join(repr(k) for k, d in _KINDS.items() if d.multichannel)
        raise SensingError(f"sensing.cfar = {name!r} with a {num_channels}-channel capture: the {single} "
                           f"thresholds are derived for one channel; use cfar = {summed} (exact for summed channels) "
                           "or process one channel")
    return detector(pfa=pfa, guard=guard, train=train, **extra)


register_cfar("ca", CaCfarDetector)
register_cfar("go", GoCfarDetector)
register_cfar("so", SoCfarDetector)
register_cfar("os", OsCfarDetector)
