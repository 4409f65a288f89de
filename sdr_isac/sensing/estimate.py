"""The one delay-Doppler(-angle) estimation core: grid peak, off-grid Newton refinement, angle, noise level.

Every estimator of the package maximises the same likelihood.  A *look* ``b``
(a channel, an antenna, a frame, a band, a code port) measures on its REs::

    Y_b[m, k] = a_b exp(-j 2 pi f_bk tau) exp(+j 2 pi s_bm x) + w_b[m, k],   w_b ~ CN(0, sigma_b**2),

with one delay ``tau`` (s) and one Doppler parameter ``x`` shared by every
look and a complex amplitude ``a_b`` of its own.  ``f_bk`` is the frequency
offset of column k (Hz) and ``s_bm`` the Doppler phase rate of row m: the
symbol time ``t_m`` (s) when ``x`` is the Doppler shift in Hz, or ``f_b t_m``
when ``x`` is the normalised Doppler ``nu = f_D / f_c`` of bands with
different carriers.  With the amplitudes unknown the maximum-likelihood
estimate maximises the summed normalised periodograms (Stoica & Moses,
*Spectral Analysis of Signals*, 2005, §4.3; independent looks add
log-likelihoods)::

    J(tau, x) = sum_b w_b |sum_mk Y_b[m, k] exp(+j 2 pi f_bk tau) exp(-j 2 pi s_bm x)|**2,   w_b = 1 / (n_b sigma_b**2).

- :func:`grid_peak`: the strongest cell of a periodogram map inside the
  region the looks' REs resolve without aliasing (:func:`resolvable_steps`:
  a comb every g-th subcarrier resolves ``1 / g`` of the delays).
- :func:`refine`: the off-grid maximum near a grid peak, by Newton's method
  in delay and Doppler at once on the exact gradient and Hessian of ``J``
  where ``J`` is concave, and otherwise by alternating one-dimensional Newton
  steps on its exact first and second derivatives in delay and in Doppler
  (:func:`maximise_1d`), jointly over all looks.
  The single-node pipeline (:mod:`sdr_isac.sensing.detection`) runs the same
  one-dimensional core on its full-grid products.
- :func:`ml_angle`: the maximum-likelihood direction of one source at a
  linear array of any element positions (a ULA is ``d * arange(N)``).
- :func:`noise_variance`: the noise variance per RE from the median of a
  periodogram map (robust to a few targets).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import gcd
from typing import Any

import numpy as np
import scipy.optimize as sp_opt
import scipy.special as sp_special
import scipy.stats as sp_stats
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError

__all__ = ["Look", "Path", "estimate_paths", "paths_model", "joint_fit_energies", "residual_noise_variance",
           "relax", "in_sigmas", "look", "grid_peak", "resolvable_steps", "refine",
           "objective", "maximise_1d", "newton_peak", "phasor", "ml_angle", "noise_variance", "median_step"]

#: Newton steps before the refinement falls back to the bounded scalar search (it converges in 3 to 5)
_NEWTON_STEPS = 16
#: points over the search interval from whose best Newton restarts when it fails from the grid peak
_RESTART_POINTS = 9
#: _median: subsample size for the bracket, and its half width in standard deviations of a sample quantile
_MEDIAN_SAMPLE = 2048
_MEDIAN_SIGMAS = 4.0
#: refine: alternations of delay and Doppler at most, and the move (in grid steps) below which they stop
_ALTERNATIONS = 8
_SETTLED = 1e-6


# ------------------------------------------------------------------ looks and the likelihood


@dataclass(frozen=True, eq=False)
class Look:
    """One look's measurements, restricted to the rows and columns that hold REs.

    Attributes
    ----------
    data : ndarray, shape (M, K), complex128
        Measurements, zero off the REs.
    delay_rate : ndarray, shape (K,), float64
        ``2 pi f_k``: phase per s of delay of each column (rad/s).
    doppler_rate : ndarray, shape (M,), float64
        ``-2 pi s_m``: phase per unit of the Doppler parameter of each row (conjugated: the matched filter's).
    weight : float
        ``1 / (n sigma**2)``, n the REs, sigma**2 the noise variance per RE.
    """

    data: NDArray[np.complex128]
    delay_rate: NDArray[np.float64]
    doppler_rate: NDArray[np.float64]
    weight: float


def look(data: ArrayLike, mask: ArrayLike, frequencies_hz: ArrayLike, doppler_times: ArrayLike,
         noise_var: float = 1.0) -> Look:
    """A :class:`Look` of ``data`` (M, K) on the REs of ``mask``.

    ``frequencies_hz`` (K,): each column's frequency offset; ``doppler_times`` (M,): each row's Doppler
    phase rate (symbol time in s, or carrier times symbol time for a normalised Doppler); ``noise_var``:
    noise variance per RE (> 0).
    """
    m = np.asarray(mask, dtype=bool)
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        raise InputError("mask selects no RE: allowed at least one True entry per look; check the pilot pattern")
    if not (math.isfinite(noise_var) and noise_var > 0):
        raise InputError(f"noise_var = {noise_var!r} per RE: allowed a finite variance > 0")
    block = np.where(m, np.asarray(data), 0)[np.ix_(rows, cols)].astype(np.complex128)
    freqs = np.asarray(frequencies_hz, dtype=np.float64)[cols]
    times = np.asarray(doppler_times, dtype=np.float64)[rows]
    delay_rate, doppler_rate = 2 * math.pi * freqs, -2 * math.pi * times
    delay_rate.flags.writeable = doppler_rate.flags.writeable = False      # fixed: their uniformity is remembered
    return Look(block, delay_rate, doppler_rate, 1.0 / (float(np.count_nonzero(m)) * noise_var))


def objective(looks: Sequence[Look], delay_s: float, doppler: float) -> float:
    """J(tau, x) of the module docstring."""
    total = 0.0
    for lk in looks:
        total += lk.weight * abs(np.exp(lk.doppler_rate * (1j * doppler)) @ lk.data
                                 @ np.exp(lk.delay_rate * (1j * delay_s))) ** 2
    return total


def _uniform(rate: NDArray[np.float64]) -> bool:
    """Whether ``rate`` is ``n rate_1`` for n = 0 ... N-1 (:func:`phasor`'s fast path applies)."""
    if rate.size < 2 or rate[0] != 0:
        return False
    expected = np.arange(rate.size) * rate[1]
    if not (math.isfinite(float(rate[1])) and math.isfinite(float(rate[-1]))):
        return bool(np.allclose(rate, expected, rtol=1e-12, atol=0))
    # np.allclose's test for finite values, without its overhead (called for every refinement)
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.abs(rate - expected) <= 1e-12 * np.abs(expected)))


def _stack(rows: list[NDArray[np.complex128]], rates: list[NDArray[np.float64]]) -> tuple[NDArray[np.complex128],
                                                                                          NDArray[np.float64]]:
    """Rows with rates of their own as one (B, N) data matrix over the union of the rates.

    Looks that share their rates stack as they are; otherwise each row sits in its own columns of the
    concatenated rates (zero elsewhere), which adds nothing to the other rows' sums.
    """
    if all(r is rates[0] or np.array_equal(r, rates[0]) for r in rates[1:]):
        return np.stack(rows), rates[0]
    rate = np.concatenate(rates)
    out = np.zeros((len(rows), rate.size), dtype=np.complex128)
    start = 0
    for i, row in enumerate(rows):
        out[i, start:start + row.size] = row
        start += row.size
    return out, rate


def refine(looks: Sequence[Look], start: tuple[float, float], steps: tuple[float, float],
           max_cells: float = 2.0) -> tuple[float, float]:
    """Off-grid maximum of J (module docstring) near ``start`` = (delay s, Doppler parameter).

    Newton's method in both parameters at once on the exact gradient and Hessian of J (:class:`_Joint`,
    :func:`_newton_2d`), while J is strictly concave at every iterate and the iterates stay within one grid
    step ``steps`` of ``start``, until a step moves by less than ``1e-6`` of a grid step.  Where it cannot (a
    grid peak outside the concave core of its lobe, a weak or noise peak, a maximum further away), it
    alternates :func:`maximise_1d` in delay (Doppler fixed) and in Doppler (delay fixed), each a Newton
    search within one grid step of the current point with restarts and a bounded scalar search as its
    fallback: one round, which picks the lobe, then the joint step from there, and where that still cannot,
    more rounds until neither moves by ``1e-6`` of a step (at most 8 in all).  Both end on the same maximum
    where both apply (the joint step saves the alternations' many passes).  J never decreases.  A result
    more than ``max_cells`` grid steps from ``start`` left the peak's lobe: ``start`` is returned.
    """
    if not looks:
        raise InputError("looks is empty: allowed one or more Look")
    s_tau, s_x = (float(s) for s in steps)
    if not (s_tau > 0 and s_x > 0 and math.isfinite(s_tau) and math.isfinite(s_x)):
        raise InputError(f"steps = {steps!r} (s, Doppler unit): allowed two finite grid steps > 0")
    joint = _Joint(looks)
    origin = (float(start[0]), float(start[1]))
    found = _newton_2d(joint, *origin, s_tau, s_x)
    if found is None:
        # one round of the one-dimensional searches picks the lobe (as before the joint step), whose concave
        # core the joint step then usually reaches; the rounds go on where it still cannot
        found, settled = _alternate(looks, origin, (s_tau, s_x), 1)
        if not settled:
            joint_found = _newton_2d(joint, *found, s_tau, s_x)
            found = _alternate(looks, found, (s_tau, s_x), _ALTERNATIONS - 1)[0] if joint_found is None else joint_found
    else:
        # the joint step ends on the maximum of the start's own lobe; where a node one step around the start
        # is higher, a higher lobe lies next to it (a noise-ragged peak): the one-dimensional searches, which
        # move a step at a time, go there as they always did, and the higher of the two maxima stands
        nodes = np.array([-1.0, 0.0, 1.0])
        at_found = joint.last        # J one Newton step before the end: J there to ~(1e-6 of a step)**2
        # (a relative margin: J by values() and by the Newton terms agree to a few ulp, not bit for bit)
        if joint.values(origin[0] + s_tau * nodes, origin[1] + s_x * nodes).max() > at_found * (1 + 1e-12):
            walked = _alternate(looks, origin, (s_tau, s_x))[0]
            if float(joint.values(walked[0], walked[1])[0, 0]) > at_found:
                found = walked
    tau, x = found
    if abs(tau - start[0]) > max_cells * s_tau or abs(x - start[1]) > max_cells * s_x:
        return float(start[0]), float(start[1])
    return tau, x


def _alternate(looks: Sequence[Look], start: tuple[float, float], steps: tuple[float, float],
               rounds: int = _ALTERNATIONS) -> tuple[tuple[float, float], bool]:
    """:func:`maximise_1d` in delay and in Doppler in turn from ``start``, each within one step of the current
    point, until neither moves by 1e-6 of a step (then settled: True), ``rounds`` alternations at most:
    :func:`refine`'s fallback.  Returns ((delay, Doppler), settled)."""
    s_tau, s_x = steps
    roots = [math.sqrt(lk.weight) for lk in looks]
    delay_rates = [lk.delay_rate for lk in looks]
    doppler_rates = [lk.doppler_rate for lk in looks]
    tau, x = float(start[0]), float(start[1])
    # whether the stacked rates are uniform depends on the looks only: decided once, not in every alternation
    uniform_tau: bool | None = None
    uniform_x: bool | None = None
    settled = False
    for _ in range(rounds):
        g, rate = _stack([w * (np.exp(lk.doppler_rate * (1j * x)) @ lk.data) for w, lk in zip(roots, looks,
                                                                                               strict=True)],
                         delay_rates)
        uniform_tau = _uniform(rate) if uniform_tau is None else uniform_tau
        tau_new = maximise_1d(lambda v, r=rate: np.exp(r * (1j * v)), g, tau, s_tau, rate, uniform=uniform_tau)
        q, rate = _stack([w * (lk.data @ np.exp(lk.delay_rate * (1j * tau_new))) for w, lk in zip(roots, looks,
                                                                                                  strict=True)],
                         doppler_rates)
        uniform_x = _uniform(rate) if uniform_x is None else uniform_x
        x_new = maximise_1d(lambda v, r=rate: np.exp(r * (1j * v)), q, x, s_x, rate, uniform=uniform_x)
        settled = abs(tau_new - tau) <= _SETTLED * s_tau and abs(x_new - x) <= _SETTLED * s_x
        tau, x = tau_new, x_new
        if settled:
            break
    return (tau, x), settled


class _Joint:
    """J(tau, x) of the module docstring with its gradient and Hessian, from two small products per look.

    Per look, with ``a = exp(j r tau)`` over the columns and ``d = exp(j s x)`` over the rows,
    ``[d, j s d, -s**2 d]^T Y [a, j r a, -r**2 a]`` holds ``A = d^T Y a`` and its derivatives ``A_x, A_xx``
    (rows) by ``A_tau, A_tau_tau`` (columns) and ``A_x_tau``; then ``J = sum w |A|**2``,
    ``J_u = 2 sum w Re(A* A_u)`` and ``J_uv = 2 sum w Re(A_u* A_v + A* A_uv)``.  Looks with the same rates
    are stacked into one product; uniform delay rates (subcarriers) take :func:`phasor`'s progression.
    """

    def __init__(self, looks: Sequence[Look]):
        first = looks[0]
        shared = all((lk.delay_rate is first.delay_rate or np.array_equal(lk.delay_rate, first.delay_rate))
                     and (lk.doppler_rate is first.doppler_rate or np.array_equal(lk.doppler_rate, first.doppler_rate))
                     and lk.data.shape == first.data.shape for lk in looks[1:])
        groups = [list(looks)] if shared else [[lk] for lk in looks]
        self.last = math.nan                                   # J at the last point of terms()
        self._groups = []
        for group in groups:
            r, s = group[0].delay_rate, group[0].doppler_rate
            data = group[0].data[None] if len(group) == 1 else np.stack([lk.data for lk in group])
            self._groups.append((data, r, 1j * r, -(r * r), _uniform_once(r), s, 1j * s, -(s * s),
                                 np.array([lk.weight for lk in group])))

    def values(self, taus: ArrayLike, xs: ArrayLike) -> NDArray[np.float64]:
        """J on the grid of delays ``taus`` (P,) by Doppler values ``xs`` (Q,), shape (P, Q)."""
        t, x = np.atleast_1d(np.asarray(taus, dtype=np.float64)), np.atleast_1d(np.asarray(xs, dtype=np.float64))
        total = np.zeros((t.size, x.size))
        for data, r, _, _, uniform, s, _, _, weights in self._groups:
            sums = np.exp(1j * np.multiply.outer(x, s)) @ data @ phasor(r, t, uniform)      # (B, Q, P)
            total += np.einsum("b,bqp->pq", weights, sums.real**2 + sums.imag**2)
        return total

    def terms(self, tau: float, x: float) -> tuple[float, float, float, float, float, float]:
        """J, J_tau, J_x, J_tau_tau, J_x_x, J_tau_x at (tau, x)."""
        j = g_t = g_x = h_tt = h_xx = h_tx = 0.0
        for data, r, jr, r2, uniform, s, js, s2, weights in self._groups:
            a = phasor(r, tau, uniform)
            d = np.exp(s * (1j * x))
            columns = data @ np.stack((a, jr * a, r2 * a), axis=1)                           # (B, M, 3)
            sums = (np.stack((d, js * d, s2 * d)) @ columns).reshape(-1, 9).tolist()          # [x order][tau]
            for w, (v, v_t, v_tt, v_x, v_xt, _, v_xx, _, _) in zip(weights.tolist(), sums, strict=True):
                j += w * (v.real * v.real + v.imag * v.imag)
                g_t += 2 * w * (v.real * v_t.real + v.imag * v_t.imag)
                g_x += 2 * w * (v.real * v_x.real + v.imag * v_x.imag)
                h_tt += 2 * w * (v_t.real * v_t.real + v_t.imag * v_t.imag + v.real * v_tt.real + v.imag * v_tt.imag)
                h_xx += 2 * w * (v_x.real * v_x.real + v_x.imag * v_x.imag + v.real * v_xx.real + v.imag * v_xx.imag)
                h_tx += 2 * w * (v_t.real * v_x.real + v_t.imag * v_x.imag + v.real * v_xt.real + v.imag * v_xt.imag)
        self.last = j
        return j, g_t, g_x, h_tt, h_xx, h_tx


#: _uniform_once: the last rates asked about and the answer (estimate_paths refines with the same rates again
#: and again); the reference keeps the array, and so its id, alive
_LAST_UNIFORM: list[tuple[NDArray[np.float64], bool]] = []


def _uniform_once(rate: NDArray[np.float64]) -> bool:
    """:func:`_uniform`, remembered for the last read-only array asked about (the same object, whose values
    cannot change: it owns them and is read-only); any other array is decided afresh every time."""
    if rate.flags.writeable or rate.base is not None:
        return _uniform(rate)
    last = _LAST_UNIFORM[-1] if _LAST_UNIFORM else None      # one read: another thread may replace it
    if last is not None and last[0] is rate:
        return last[1]
    answer = _uniform(rate)
    _LAST_UNIFORM[:] = [(rate, answer)]
    return answer


def _newton_2d(joint: _Joint, tau0: float, x0: float, s_tau: float, s_x: float) -> tuple[float, float] | None:
    """The maximum of J near (tau0, x0) by Newton's method in (tau, x) at once, in units of the grid steps.

    It ends when a step moves less than 1e-6 of a grid step in both parameters (quadratic convergence: the
    point is then within ~(1e-6 step)**2 of the peak, where J equals the J just computed to that order), if J
    there is no lower than at the start.  It gives up (None) where an iterate is not strictly concave (the
    Hessian not negative definite: :func:`refine` then takes the one-dimensional searches, which pick the
    lobe as they always did), leaves ``tau0 +- s_tau``, ``x0 +- s_x``, or has not settled after 16 steps.
    """
    u = v = 0.0                                         # offsets from the start, grid steps
    j_start = -math.inf
    for _ in range(_NEWTON_STEPS):
        j, g_u, g_v, h_uu, h_vv, h_uv = _scaled_terms(joint, tau0 + u * s_tau, x0 + v * s_x, s_tau, s_x)
        if j_start == -math.inf:
            j_start = j
        det = h_uu * h_vv - h_uv * h_uv
        if not (h_uu < 0 and h_vv < 0 and det > 0):
            return None
        du = -(h_vv * g_u - h_uv * g_v) / det
        dv = -(h_uu * g_v - h_uv * g_u) / det
        u, v = u + du, v + dv
        if not (abs(u) <= 1.0 and abs(v) <= 1.0):
            return None
        if abs(du) <= _SETTLED and abs(dv) <= _SETTLED:
            return (tau0 + u * s_tau, x0 + v * s_x) if j >= j_start * (1 - 1e-12) else None
    return None


def _scaled_terms(joint: _Joint, tau: float, x: float, s_tau: float,
                  s_x: float) -> tuple[float, float, float, float, float, float]:
    """:meth:`_Joint.terms` with the derivatives in grid steps (``u = tau / s_tau``, ``v = x / s_x``)."""
    j, g_t, g_x, h_tt, h_xx, h_tx = joint.terms(tau, x)
    return j, g_t * s_tau, g_x * s_x, h_tt * s_tau * s_tau, h_xx * s_x * s_x, h_tx * s_tau * s_x


# ------------------------------------------------------------------ several paths: CLEAN + RELAX


@dataclass(frozen=True)
class Path:
    """One path found by :func:`estimate_paths`.

    Attributes
    ----------
    delay_s : float
    doppler : float
        In the looks' Doppler unit (Hz, or normalised).
    amplitudes : ndarray, shape (B,), complex128
        Complex amplitude per look (joint least squares over all paths).
    crb : ndarray, shape (2, 2), float64
        CRB of (delay, Doppler) at the estimated SNR of each look (its Fisher informations added).
    """

    delay_s: float
    doppler: float
    amplitudes: NDArray[np.complex128]
    crb: NDArray[np.float64]


#: RELAX: a path that moves by less than this many standard deviations has settled
_RELAX_MOVE = 0.05


def relax(count: int, coupled: Callable[[int, list[int]], bool], refit: Callable[[int], float],
          num_rounds: int) -> None:
    """The RELAX schedule (Li & Stoica, IEEE TSP 44(2), 1996) over ``count`` fitted paths.

    Each round re-fits path i (``refit(i)`` fits it on the data minus all the others and returns how far it
    moved, in standard deviations) only while another path it is coupled to (``coupled(i, changed)``) has
    changed by 5 % of a standard deviation or more since i's own last fit; the rounds stop once none moves by
    that much, after ``num_rounds`` at most.
    """
    version = list(range(count))                           # when each path was last fitted
    step = count
    for _ in range(num_rounds if count > 1 else 0):
        moved = 0.0
        for i in range(count):
            changed = [j for j in range(count) if j != i and version[j] > version[i]]
            if not changed or not coupled(i, changed):
                continue
            move = refit(i)
            if move >= _RELAX_MOVE:                        # a smaller change leaks less than that into the others
                version[i], step = step, step + 1
            moved = max(moved, move)
        if moved < _RELAX_MOVE:
            break


def in_sigmas(change: float, variance: float) -> float:
    """|change| in standard deviations (inf for a change with no spread, 0 for no change)."""
    if change == 0:
        return 0.0
    return abs(change) / math.sqrt(variance) if variance > 0 else math.inf


def estimate_paths(h: ArrayLike, mask: ArrayLike, frequencies_hz: ArrayLike, doppler_times: ArrayLike,
                   noise_vars: ArrayLike, unit_fims: ArrayLike, num_paths: int,
                   peak: Callable[[NDArray[np.complex128]], tuple[float, float]], steps: tuple[float, float],
                   max_cells: float = 2.0, num_rounds: int = 10, *, accelerate: bool = False) -> list[Path]:
    """The ``num_paths`` strongest paths seen by B looks on one (M, K) grid, strongest first: CLEAN with off-grid
    refinement, then RELAX.

    Each pass takes ``peak(residual)`` (the grid peak of the residual's periodogram), :func:`refine` refines it jointly
    over the looks, fits each look's amplitude by least squares on its REs and subtracts the path.  A path found
    first was refined with the later ones still in the data, whose sidelobes bias it (a bistatic echo beside the
    strong direct path, say, by tens of standard deviations); RELAX rounds (Li & Stoica, IEEE TSP 44(2), 1996)
    re-estimate every path on the data minus all the others -- a path only while another one it is coupled to
    (:func:`_leaks_into`) has changed since its own last fit -- until no delay or Doppler moves by 5 % of its
    standard deviation (at most ``num_rounds`` rounds).  The amplitudes of all paths are finally fitted jointly.

    Paths closer than a resolution cell are strongly coupled: each refit moves them a small part of the way, and
    the rounds stop while still far from the optimum.  With ``accelerate`` every round refits every path and
    the sequence of rounds, which converges linearly, is extrapolated (Aitken's delta-squared on the vector of all
    delays and Dopplers in grid steps, ``rho = <d2, d1> / <d1, d1>``, ``theta + d2 rho / (1 - rho)``), the jump
    kept where the residual energy of the joint least-squares fit is lower; at most ``num_rounds`` rounds, until
    a round moves no delay or Doppler by ``1e-6`` of a grid step.

    Parameters
    ----------
    h : array_like, shape (B, M, K), complex
        Each look's measurements on the common grid.
    mask : array_like, shape (B, M, K) or (M, K), bool
        REs of each look.
    frequencies_hz : array_like, shape (K,)
        Frequency offset of each column, Hz.
    doppler_times : array_like, shape (M,)
        Doppler phase rate of each row (symbol time s, or carrier times symbol time for a normalised Doppler).
    noise_vars : array_like, shape (B,)
        Noise variance per RE of each look (> 0).
    unit_fims : array_like, shape (B, 2, 2)
        Fisher information of (delay, Doppler) of each look's REs at per-RE SNR 1 (linear in the SNR).
    num_paths : int
        >= 1.
    peak : callable
        ``peak(residual of shape (B, M, K)) -> (delay s, Doppler)``: the grid peak to refine.
    steps : (float, float)
        Grid steps of the peak's map (delay s, Doppler); :func:`refine` moves one at a time.
    max_cells : float
        :func:`refine` keeps the grid peak where the optimum lies further than this many steps.
    num_rounds : int
        RELAX rounds at most (>= 0).
    accelerate : bool
        Extrapolate the RELAX rounds (for paths closer than a resolution cell, see below).

    Returns
    -------
    list of Path
    """
    for name, value, low in (("num_paths", num_paths, 1), ("num_rounds", num_rounds, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise InputError(f"{name} = {value!r}: allowed a whole number >= {low}")
    x_full = np.asarray(h, dtype=np.complex128)
    m_full = np.broadcast_to(np.asarray(mask, dtype=bool), x_full.shape)
    counts = m_full.sum(axis=(1, 2))
    fewest = int(counts.min())
    if num_paths > fewest:
        raise InputError(f"num_paths = {num_paths}: allowed at most {fewest}, the REs of the smallest look (each "
                         "path takes at least one); ask for the few strongest paths")
    k_full = np.asarray(frequencies_hz, dtype=np.float64)
    t_full = np.asarray(doppler_times, dtype=np.float64)
    s2 = np.broadcast_to(np.asarray(noise_vars, dtype=np.float64), x_full.shape[:1])
    fims = np.asarray(unit_fims, dtype=np.float64)
    for variance in s2:
        if not (math.isfinite(variance) and variance > 0):
            raise InputError(f"noise_var = {float(variance)!r} per RE: allowed a finite variance > 0")
    # everything below runs on the block of rows and columns that hold an RE of some look (a pilot every 4th
    # symbol: a quarter of the grid); the rest of the grid is zero in every residual and model
    rows = np.flatnonzero(m_full.any(axis=(0, 2)))
    cols = np.flatnonzero(m_full.any(axis=(0, 1)))
    x = x_full[:, rows][:, :, cols]
    m = m_full[:, rows][:, :, cols]
    k, t = k_full[cols], t_full[rows]
    shapes = [_LookShape(m[b], k, t, float(counts[b]) * float(s2[b])) for b in range(x.shape[0])]

    delay_phase = -2 * math.pi * k
    uniform = _uniform(delay_phase)                           # subcarriers from 0: phasor's progression

    def atom(tau: float, f: float) -> NDArray[np.complex128]:
        return np.outer(np.exp(2j * math.pi * t * f), phasor(delay_phase, tau, uniform))

    def fit(data: NDArray[np.complex128], start: tuple[float, float]) -> tuple[float, float, NDArray[np.complex128],
                                                                               NDArray[np.complex128]]:
        tau, f = refine([sh.look(data[b]) for b, sh in enumerate(shapes)], start, steps, max_cells)
        pattern = m * atom(tau, f)[None]                       # |atom| = 1: its squared norm is the RE count
        amps = np.einsum("bmk,bmk->b", pattern.conj(), data) / np.maximum(counts, 1)
        return tau, f, amps, amps[:, None, None] * pattern

    def crb(amps: NDArray[np.complex128]) -> NDArray[np.float64]:
        snr = np.maximum(np.abs(amps) ** 2 / s2, 1e-12)
        return np.asarray(np.linalg.inv(np.einsum("b,bij->ij", snr, fims)), dtype=np.float64)

    def on_grid(block: NDArray[np.complex128]) -> NDArray[np.complex128]:
        if block.shape == x_full.shape:
            return block
        out = np.zeros(x_full.shape, dtype=np.complex128)
        out[:, rows[:, None], cols[None, :]] = block
        return out

    residual = np.where(m, x, 0)
    found: list[tuple[float, float]] = []
    parts: list[NDArray[np.complex128]] = []
    for _ in range(int(num_paths)):
        tau, f, _, part = fit(residual, peak(on_grid(residual)))
        residual = residual - part
        found.append((tau, f))
        parts.append(part)
    k_c, t_c = (k_full - k_full.mean())[cols], (t_full - t_full.mean())[rows]

    def coupled(i: int, changed: list[int]) -> bool:
        return _leaks_into(m * atom(*found[i])[None], [parts[j] for j in changed], k_c, t_c, s2)

    def refit(i: int) -> float:
        nonlocal residual
        tau0, f0 = found[i]
        others_removed = residual + parts[i]                  # the data minus every other path
        tau, f, amps_i, parts[i] = fit(others_removed, (tau0, f0))
        residual = others_removed - parts[i]
        found[i] = (tau, f)
        bound = crb(amps_i)
        return max(in_sigmas(tau - tau0, bound[0, 0]), in_sigmas(f - f0, bound[1, 1]))

    if accelerate and len(found) > 1:
        scale = np.tile(np.asarray(steps, dtype=np.float64), len(found))

        def energy_at(points: list[tuple[float, float]]) -> float:
            return float(np.sum(joint_fit_energies(x, m, k, t, points) / s2))

        history = [np.ravel(found) / scale]
        for _ in range(int(num_rounds)):
            for i in range(len(found)):                       # a RELAX round: every path on the others' residual
                refit(i)
            history.append(np.ravel(found) / scale)
            d1, d2 = history[-2] - history[-3] if len(history) > 2 else None, history[-1] - history[-2]
            if float(np.max(np.abs(d2))) < _SETTLED:
                break
            if d1 is None or not float(d1 @ d1) > 0:
                continue
            rho = float(d2 @ d1) / float(d1 @ d1)
            if not 0.0 < rho < 1.0:
                continue
            jump = (history[-1] + d2 * (rho / (1.0 - rho))) * scale
            points = [(float(jump[2 * i]), float(jump[2 * i + 1])) for i in range(len(found))]
            if energy_at(points) < energy_at(found):
                found[:] = points
                for i in range(len(found)):                   # the amplitudes at the new points, path by path
                    others_removed = residual + parts[i]
                    pattern = m * atom(*found[i])[None]
                    amps = np.einsum("bmk,bmk->b", pattern.conj(), others_removed) / np.maximum(counts, 1)
                    parts[i] = amps[:, None, None] * pattern
                    residual = others_removed - parts[i]
                history = [np.ravel(found) / scale]
    else:
        relax(len(found), coupled, refit, int(num_rounds))
    patterns = [m * atom(tau, f)[None] for tau, f in found]
    amps = np.zeros((x.shape[0], len(found)), dtype=np.complex128)
    for b in range(x.shape[0]):
        basis = np.stack([p[b][m[b]] for p in patterns], axis=1)
        amps[b] = np.linalg.lstsq(basis, x[b][m[b]], rcond=None)[0]
    return [Path(tau, f, amps[:, i], crb(amps[:, i])) for i, (tau, f) in enumerate(found)]


class _LookShape:
    """What the :class:`Look` of one look's REs in a block needs besides the data, computed once per
    :func:`estimate_paths` call: its rows and columns, their rates, its weight, and whether the REs fill them."""

    def __init__(self, mask: NDArray[np.bool_], frequencies_hz: NDArray[np.float64],
                 doppler_times: NDArray[np.float64], count_times_noise: float):
        self.rows, self.cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        self.mask = mask[np.ix_(self.rows, self.cols)]
        self.full = bool(self.mask.all()) and self.rows.size == mask.shape[0] and self.cols.size == mask.shape[1]
        self.delay_rate = 2 * math.pi * frequencies_hz[self.cols]
        self.doppler_rate = -2 * math.pi * doppler_times[self.rows]
        self.delay_rate.flags.writeable = self.doppler_rate.flags.writeable = False
        self.weight = 1.0 / count_times_noise

    def look(self, data: NDArray[np.complex128]) -> Look:
        """The :class:`Look` of :func:`look` on this look's REs of ``data`` (the block's shape)."""
        if self.full:
            return Look(data, self.delay_rate, self.doppler_rate, self.weight)
        return Look(np.where(self.mask, data[np.ix_(self.rows, self.cols)], 0), self.delay_rate, self.doppler_rate,
                    self.weight)


def paths_model(paths: Sequence[Path], frequencies_hz: ArrayLike, doppler_times: ArrayLike) -> NDArray[np.complex128]:
    """The channel the paths explain, per look: ``sum_p a_pb exp(2 pi i t f_p) exp(-2 pi i k tau_p)``.

    Returns
    -------
    ndarray, shape (B, M, K), complex128
        B looks (the paths' amplitudes), M ``doppler_times``, K ``frequencies_hz``.
    """
    k = np.asarray(frequencies_hz, dtype=np.float64)
    t = np.asarray(doppler_times, dtype=np.float64)
    looks = len(paths[0].amplitudes) if paths else 1
    out = np.zeros((looks, t.size, k.size), dtype=np.complex128)
    for p in paths:
        out += p.amplitudes[:, None, None] * np.outer(np.exp(2j * math.pi * t * p.doppler),
                                                      np.exp(-2j * math.pi * k * p.delay_s))[None]
    return out


def joint_fit_energies(data: ArrayLike, mask: ArrayLike, frequencies_hz: ArrayLike, doppler_times: ArrayLike,
                       points: Sequence[tuple[float, float]]) -> NDArray[np.float64]:
    """Residual energy of each look after the joint least-squares fit of paths at ``points``.

    Parameters
    ----------
    data : array_like, shape (B, M, K), complex
    mask : array_like of bool, broadcastable to (B, M, K)
        The REs each look observes.
    frequencies_hz, doppler_times : array_like, shapes (K,), (M,)
    points : sequence of (delay s, Doppler)
        The paths' delays and Dopplers (atoms ``exp(2 pi i t f) exp(-2 pi i k tau)``, as :func:`paths_model`);
        their complex amplitudes are fitted per look.

    Returns
    -------
    ndarray, shape (B,)
        ``||y_b - A_b A_b^+ y_b||**2`` on each look's REs.
    """
    x = np.asarray(data)
    m = np.broadcast_to(np.asarray(mask, dtype=bool), x.shape)
    k = np.asarray(frequencies_hz, dtype=np.float64)
    t = np.asarray(doppler_times, dtype=np.float64)
    atoms = [np.outer(np.exp(2j * math.pi * t * f), np.exp(-2j * math.pi * k * tau)) for tau, f in points]
    out = np.empty(x.shape[0])
    for b in range(x.shape[0]):
        basis = np.stack([a[m[b]] for a in atoms], axis=1)
        y = x[b][m[b]]
        left = y - basis @ np.linalg.lstsq(basis, y, rcond=None)[0]
        out[b] = float(np.vdot(left, left).real)
    return out


def residual_noise_variance(data: ArrayLike, mask: ArrayLike, paths: Sequence[Path], frequencies_hz: ArrayLike,
                            doppler_times: ArrayLike) -> float:
    """Noise variance per RE after the paths are removed: the residual's power on the REs of ``mask`` over its
    degrees of freedom (B looks of n REs, less each path's B complex amplitudes and its delay and Doppler).

    ``data`` has shape (B, M, K) (or (M, K): one look); ``mask`` (M, K) bool.
    """
    x = np.asarray(data, dtype=np.complex128)
    x = x[None] if x.ndim == 2 else x
    m = np.asarray(mask, dtype=bool)
    # the model on the rows and columns that hold REs only: the same REs in the same order
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    model = paths_model(paths, np.asarray(frequencies_hz, dtype=np.float64)[cols],
                        np.asarray(doppler_times, dtype=np.float64)[rows])
    residual = (x[:, rows][:, :, cols] - model)[:, m[np.ix_(rows, cols)]]
    dof = x.shape[0] * int(np.count_nonzero(m)) - len(paths) * (x.shape[0] + 1)
    return float(np.sum(np.abs(residual) ** 2) / max(dof, 1))


def _leaks_into(model: NDArray[np.complex128], others: list[NDArray[np.complex128]], k_centred: NDArray[np.floating],
                t_centred: NDArray[np.floating], noise_vars: NDArray[np.float64]) -> bool:
    """Whether another path moves this one's ML delay or Doppler by more than about 0.14 standard deviations.

    ``model`` (B, M, K) is the path's unit-amplitude pattern on each look, ``others`` the fitted patterns of
    the other paths, ``k_centred`` (K,) and ``t_centred`` (M,) the columns' frequencies and the rows' Doppler
    rates less their means over the whole grid.  To first order a path ``x`` left in the data shifts the
    estimate by ``sqrt(2) |<d model, x>| / (||d model|| sigma)`` standard deviations (``d`` the derivative by
    delay or Doppler, phase rates centred); its leak into the matched filter itself scales alike.  Checked
    per look.
    """
    for b in range(model.shape[0]):
        limit = 0.1 * math.sqrt(float(noise_vars[b]))
        for probe in (model[b], model[b] * k_centred[None, :], model[b] * t_centred[:, None]):
            norm = float(np.linalg.norm(probe))
            if norm > 0 and any(abs(complex(np.vdot(probe, x[b]))) / norm > limit for x in others):
                return True
    return False


# ------------------------------------------------------------------ grid peak


def resolvable_steps(masks: Sequence[ArrayLike]) -> tuple[int, int]:
    """(row step, column step): the gcd of the gaps between the rows (columns) that hold REs, over all masks.

    ``masks``: 2-D (M, K) masks, or (C, M, K) stacks of one mask per look.  Periodograms of REs ``g``
    columns apart repeat every ``1 / g`` of the delay axis (likewise rows and Doppler), so the sum over
    looks resolves ``1 / g`` of each axis without aliasing.  1 for a single row (column).
    """
    g_m, g_k = 0, 0
    for mask in masks:
        for m in np.asarray(mask, dtype=bool).reshape(-1, *np.shape(mask)[-2:]):      # each look on its own
            g_m = gcd(g_m, int(np.gcd.reduce(np.diff(np.flatnonzero(m.any(axis=1))), initial=0)))
            g_k = gcd(g_k, int(np.gcd.reduce(np.diff(np.flatnonzero(m.any(axis=0))), initial=0)))
    return max(g_m, 1), max(g_k, 1)


def grid_peak(power: ArrayLike, delay_axis_s: ArrayLike, doppler_axis: ArrayLike,
              max_delay_s: float = math.inf, max_doppler: float = math.inf) -> tuple[int, int]:
    """(delay index, Doppler index) of the strongest cell of ``power`` with ``delay < max_delay_s`` and
    ``|Doppler| <= max_doppler`` (the resolvable region and any prior, combined by the caller).

    Parameters
    ----------
    power : array_like, shape (R, D), float
        Periodogram, rows delay, columns Doppler.
    delay_axis_s : array_like, shape (R,)
        Delay of each row, s.
    doppler_axis : array_like, shape (D,)
        Doppler (Hz, or normalised) of each column, in the map's column order.
    """
    p = np.asarray(power, dtype=np.float64)
    ok_r = np.asarray(delay_axis_s) < max_delay_s
    ok_d = np.abs(np.asarray(doppler_axis)) <= max_doppler
    if not ok_r.any() or not ok_d.any():
        raise InputError(f"search region is empty (max_delay_s = {max_delay_s!r} s, max_doppler = {max_doppler!r}): "
                         "allowed limits of at least one grid cell")
    r, d = np.unravel_index(int(np.argmax(np.where(ok_r[:, None] & ok_d[None, :], p, -np.inf))), p.shape)
    return int(r), int(d)


# ------------------------------------------------------------------ angle


def ml_angle(snapshots: ArrayLike, positions_wl: ArrayLike, max_sin: float = 1.0) -> float:
    """Maximum-likelihood direction of one source at a linear array: the maximum of ``sum_k |a(u)^H x_k|**2``.

    Steering ``a_n = exp(+j 2 pi p_n u)`` with ``u = sin(theta)`` (theta from broadside, towards the
    positive positions; Stoica & Nehorai, IEEE TASSP 37(5), 1989: deterministic ML for one source): a
    grid of ``u`` eight points per beamwidth ``1 / aperture``, then :func:`maximise_1d` (Newton on the
    exact derivatives) within one grid step of the best point.

    Parameters
    ----------
    snapshots : array_like, shape (E,) or (E, K), complex
        One row per element.
    positions_wl : array_like, shape (E,)
        Element positions, wavelengths (``d * arange(E)`` for a ULA of spacing d).
    max_sin : float
        Search ``|sin theta| <= max_sin`` (0 < max_sin <= 1).

    Returns
    -------
    float
        theta, rad.
    """
    p = np.atleast_1d(np.asarray(positions_wl, dtype=np.float64))
    x = np.asarray(snapshots, dtype=np.complex128)
    x = x[:, None] if x.ndim == 1 else x
    if p.ndim != 1 or p.size < 2 or not np.all(np.isfinite(p)):
        raise InputError(f"positions_wl = {positions_wl!r}: allowed a 1-D array of at least 2 finite element "
                         "positions in wavelengths")
    if x.ndim != 2 or x.shape[0] != p.size or not np.all(np.isfinite(x)):
        raise InputError(f"snapshots has shape {np.shape(snapshots)}: allowed ({p.size},) or ({p.size}, K) finite "
                         "complex values, one row per element")
    if not 0 < max_sin <= 1:
        raise InputError(f"max_sin = {max_sin!r}: allowed 0 < max_sin <= 1")
    aperture = max(float(p.max() - p.min()), 1e-9)
    num = int(math.ceil(16 * max_sin * aperture)) + 1 + 8
    grid = np.linspace(-max_sin, max_sin, num)
    rate = -2 * math.pi * p                                    # matched filter exp(-j 2 pi p u)
    data = x.T                                                 # (K, E)
    power = np.sum(np.abs(data @ np.exp(1j * np.multiply.outer(rate, grid))) ** 2, axis=0)
    best = float(grid[int(np.argmax(power))])
    step = float(grid[1] - grid[0])
    u = maximise_1d(lambda v: np.exp(rate * (1j * v)), data, best, step, rate)
    return float(np.arcsin(np.clip(u, -max_sin, max_sin)))


# ------------------------------------------------------------------ noise level


def noise_variance(power: NDArray[np.floating], cell_gain: float, num_channels: int = 1,
                   column_gain: NDArray[np.float64] | None = None) -> float:
    """Noise variance per RE from the median of a periodogram map (robust to a few targets).

    A noise cell of one channel is exponential with mean ``sigma**2 * cell_gain`` (the map's noise gain: the
    sum of the squared taper weights over the used REs for the pipeline's unnormalised transforms,
    :attr:`~sdr_isac.sensing.rdmap.RangeDopplerMap.noise_gain`; ``n_obs / (M K)`` for a unitary transform of
    ``n_obs`` REs of an (M, K) grid); the sum over C
    channels is Gamma(C) distributed, whose median is known.  The median is taken over a regular
    subsample of about 50 000 cells (all of them below 200 000).

    Parameters
    ----------
    power : ndarray, shape (R, D), float
        The map, summed over ``num_channels`` channels.
    cell_gain : float
        Mean of a noise cell per unit noise variance per RE (> 0).
    num_channels : int
        C >= 1.
    column_gain : ndarray, shape (D,), optional
        The noise gain of each Doppler column where it differs from column to column (H with each subcarrier's
        mean over the symbols removed: :attr:`~sdr_isac.sensing.rdmap.RangeDopplerMap.noise_gain_columns`).
        The map's cells are then a mixture of Gamma(C) cells of different means; the variance is the one
        whose mixture has the map's median (the plain formula reads some 5 % low under the notch).
    """
    if not (math.isfinite(cell_gain) and cell_gain > 0):
        raise InputError(f"cell_gain = {cell_gain!r}: allowed a finite number > 0 (the map's noise gain)")
    step = median_step(power.size)
    cells = power[::step, ::step].flatten()                    # a copy, reordered by _median
    median = _median(cells)
    plain = median / (cell_gain * _gamma_median(num_channels))
    if column_gain is None or not plain > 0 or not math.isfinite(plain):
        return plain
    gains = np.asarray(column_gain, dtype=np.float64)[::step]
    if gains.shape != (power[:, ::step].shape[1],) or not np.all(np.isfinite(gains)) or not gains.max() > 0:
        raise InputError(f"column_gain has shape {np.shape(column_gain)}: allowed one finite gain >= 0 per Doppler "
                         f"column of the map ({power.shape[1]}), not all zero")
    gains = np.maximum(gains, 1e-12 * float(gains.max()))     # a column the notch emptied holds zeros

    def excess(log_variance: float) -> float:                   # mixture CDF at the median, less one half
        return float(np.mean(sp_special.gammainc(num_channels, median / (math.exp(log_variance) * gains)))) - 0.5

    # solved in the logarithm: the bracket spans up to 12 decades where the notch empties a column (no taper)
    low, high = math.log(plain * cell_gain / float(gains.max())), math.log(plain * cell_gain / float(gains.min()))
    if excess(low) <= 0:
        return math.exp(low)
    return math.exp(float(sp_opt.brentq(excess, low, high, xtol=1e-12, rtol=1e-12)))


def median_step(num_cells: int) -> int:
    """The subsampling step of :func:`noise_variance` on a map of ``num_cells`` cells: every ``step``-th row
    and column (1: every cell, below 200 000 cells)."""
    return max(1, int(math.sqrt(num_cells / 50_000)))


def _median(values: NDArray[np.floating]) -> float:
    """``np.median`` of a flat array (the mean of the middle two, in the array's precision, for an even size).

    Partitioning all of a large array costs most of the time; the middle elements are found among those
    between two quantiles of an evenly spaced subsample instead (a few per cent of the array), with
    their rank offset by the count below the bracket.  Where the bracket misses the middle, the whole
    array is partitioned: the value is always exact.  Reorders ``values``.
    """
    n = values.size
    ranks = [n // 2 - 1, n // 2] if n % 2 == 0 else [n // 2]
    middle = _order_statistics(values, ranks)
    return float(middle[0]) if middle.size == 1 else float(np.mean(middle))


def _order_statistics(values: NDArray[np.floating], ranks: list[int]) -> NDArray[np.floating]:
    """Elements of rank ``ranks`` (0-based, ascending) of the flat ``values`` in sorted order; reorders ``values``."""
    n = values.size
    if n >= 8 * _MEDIAN_SAMPLE:
        sample = values[:: n // _MEDIAN_SAMPLE].copy()
        m = sample.size
        half_width = _MEDIAN_SIGMAS * 0.5 / math.sqrt(m)           # sd of a sample quantile <= 0.5 / sqrt(m)
        picks = [max(int((ranks[0] / n - half_width) * m), 0), min(int((ranks[-1] / n + half_width) * m) + 1, m - 1)]
        sample.partition(picks)
        low, high = sample[picks[0]], sample[picks[1]]
        below = int(np.count_nonzero(values < low))
        inside = values[(values >= low) & (values <= high)]
        if below <= ranks[0] and ranks[-1] < below + inside.size:
            local = [r - below for r in ranks]
            inside.partition(local)
            return inside[local]
    values.partition(ranks)
    return values[ranks]


@functools.lru_cache(maxsize=64)
def _gamma_median(num_channels: int) -> float:
    return float(sp_stats.gamma.ppf(0.5, num_channels))


# ------------------------------------------------------------------ one-dimensional Newton core


def phasor(rate: NDArray[np.float64], x: float | NDArray[np.float64], uniform: bool) -> NDArray[np.complex128]:
    """``exp(j rate_n x)``, shape (N,) for a scalar x, (N, P) for P points.

    ``uniform``: the rates are ``n rate_1`` (a range phasor over subcarriers), so the phasor is a
    geometric progression, computed as the outer product of sqrt(N) coarse and sqrt(N) fine steps:
    2 sqrt(N) complex exponentials instead of N, each element within a few ulp of the direct one.
    """
    n = rate.size
    if np.ndim(x) == 0:                                            # the common case, in as few calls as possible
        step = 1j * float(x)
        if not uniform:
            return np.exp(rate * step)
        steps, num_coarse = _progression_steps(n)
        ends = np.exp(steps * (step * _rate_step(rate)))
        return np.multiply.outer(ends[:num_coarse], ends[num_coarse:]).reshape(-1)[:n]
    points = np.asarray(x, dtype=np.float64)
    if not uniform:
        return np.exp(1j * np.multiply.outer(rate, points))
    steps, num_coarse = _progression_steps(n)
    ends = np.exp(1j * np.multiply.outer(steps, points * _rate_step(rate)))           # (coarse + fine, P)
    return np.multiply(ends[:num_coarse, None], ends[None, num_coarse:]).reshape(-1, points.size)[:n]


def _rate_step(rate: NDArray[np.float64]) -> float:
    """``rate_1`` of uniform rates ``n rate_1`` (0 for a single rate)."""
    return float(rate[1]) if rate.size > 1 else 0.0


@functools.lru_cache(maxsize=16)
def _progression_steps(n: int) -> tuple[NDArray[np.float64], int]:
    """Coarse steps 0, m, 2m ... below n followed by fine steps 0 ... m-1 (m = ceil(sqrt(n))), read-only,
    and the number of coarse ones: index a m + b of a progression is coarse step a times fine step b."""
    fine_len = math.isqrt(max(n - 1, 0)) + 1
    coarse = np.arange(0, n, fine_len, dtype=np.float64)
    steps = np.concatenate((coarse, np.arange(fine_len, dtype=np.float64)))
    steps.flags.writeable = False
    return steps, coarse.size


class _Products:
    """``x -> rows @ exp(j rate x)`` for a few rows, as a list of Python complex numbers (rows in C order).

    Fill :attr:`data` (shape ``shape + (N,)``) before calling.  ``uniform`` (see :func:`phasor`): the
    rows sit zero-padded in a (coarse, fine) block layout, so each evaluation is one short exponential
    and two small products, without forming the phasor.
    """

    def __init__(self, shape: tuple[int, ...], rate: NDArray[np.float64], uniform: bool):
        n = rate.size
        self._rate = rate
        self._steps, self._num_coarse = _progression_steps(n) if uniform else (rate, 0)
        self._step = 1j * _rate_step(rate)
        fine_len = self._steps.size - self._num_coarse
        rows = np.zeros((*shape, self._num_coarse * fine_len if uniform else n), dtype=np.complex128)
        self.data = rows[..., :n]
        # uniform: (rows, coarse, fine) blocks; otherwise plain rows
        self._blocks = rows.reshape(-1, self._num_coarse, fine_len) if uniform else rows.reshape(-1, n)

    def __call__(self, x: float) -> list[complex]:
        if not self._num_coarse:
            return (self._blocks @ np.exp(self._rate * (1j * x))).tolist()
        ends = np.exp(self._steps * (self._step * x))
        return ((self._blocks @ ends[self._num_coarse:]) @ ends[:self._num_coarse]).tolist()

    def at(self, points: NDArray[np.float64], count: int) -> NDArray[np.complex128]:
        """The first ``count`` rows times the phasor at each of P points, shape (count, P)."""
        if not self._num_coarse:
            return self._blocks[:count] @ np.exp(1j * np.multiply.outer(self._rate, points))
        ends = np.exp(np.multiply.outer(self._steps, self._step * points))             # (coarse + fine, P)
        inner = self._blocks[:count] @ ends[self._num_coarse:]                           # (count, coarse, P)
        return np.einsum("rap,ap->rp", inner, ends[:self._num_coarse])



def maximise_1d(phasor: Any, data: NDArray[np.complex128], start: float, step: float,
            rate: NDArray[np.float64] | None = None, centred: bool = False, uniform: bool = False) -> float:
    """Maximise sum_c |phasor(x) . data_c|**2 over x in start +- step.

    With ``rate``, ``phasor(x) . data_c`` is ``sum_n data_cn exp(j rate_n x)`` (over the norm of the
    phasor, constant unless ``centred``: the phasor had its mean removed); Newton's method on the
    analytic derivatives finds the peak in a few steps, and the bounded scalar search is the fallback
    when Newton leaves the interval or meets a non-concave stretch.  ``uniform``: the rates are
    ``n rate_1`` (see :func:`phasor`).
    """
    def cost(x: float) -> float:
        return -float(np.sum(np.abs(data @ phasor(x)) ** 2))
    if rate is not None:
        objective = _Objective(data, rate, centred, uniform)
        x = _newton(objective, start, step)
        if x is not None:
            return x
        # a non-concave stretch (a weak or noise peak): restart Newton from the best of a few points (J is
        # -cost up to a constant factor; where the centred phasor vanishes it is 0 / 0 or x / 0, which argmax
        # picks as the cost on the zero phasor did: only at the start itself, which ends in the scalar search)
        grid = start + step * np.linspace(-1.0, 1.0, _RESTART_POINTS)
        best = float(grid[int(np.argmax(objective.values(grid)))])
        x = _newton(objective, best, step / (_RESTART_POINTS - 1)) if best != start else None
        if x is not None and abs(x - start) <= abs(step):
            at_x, at_start = objective.values(np.array([x, start]))
            if at_x >= at_start:
                return x
    res = sp_opt.minimize_scalar(cost, bounds=(start - step, start + step), method="bounded",
                                 options={"xatol": abs(step) * 1e-4})
    return float(res.x) if res.fun <= cost(start) else start


def newton_peak(data: NDArray[np.complex128], rate: NDArray[np.float64], start: float, step: float,
                 centred: bool, uniform: bool = False) -> float | None:
    """Local maximum near ``start`` of J(x) = N(x) / D(x) by Newton's method, or None.

    N(x) = sum_c |A_c(x)|**2 with A_c(x) = sum_n d_cn exp(j rate_n x); D = 1, or with ``centred``
    D(x) = M - |E(x)|**2 / M, E(x) = sum_n exp(j rate_n x) (the squared norm of the phasor with its
    mean removed, M terms; the data are centred the same way, which leaves A unchanged).
    J' = (N' - J D') / D and J'' = (N'' - 2 J' D' - J D'') / D.  ``uniform``: see :func:`phasor`.
    """
    return _newton(_Objective(data, rate, centred, uniform), start, step)


class _Objective:
    """J(x) of :func:`newton_peak` and its first two derivatives, from one product of its rows with the phasor.

    The rows are A, A', A'' per channel, and with ``centred`` E, E', E'' from a row of ones.
    """

    def __init__(self, data: NDArray[np.complex128], rate: NDArray[np.float64], centred: bool, uniform: bool):
        d = data - data.mean(axis=1, keepdims=True) if centred else data
        self.num_channels, self.size = d.shape
        self.centred = centred
        self.lines = self.num_channels + 1 if centred else self.num_channels
        self._products = _Products((3, self.lines), rate, uniform)
        rows = self._products.data
        rows[0, :self.num_channels] = d
        rows[0, self.num_channels:] = 1.0
        np.multiply(rows[0], 1j * rate, out=rows[1])
        np.multiply(rows[0], -(rate * rate), out=rows[2])

    def derivatives(self, x: float) -> tuple[float, float, float] | None:
        """J, J' and J'' at x (None where the centred phasor vanishes)."""
        sums = self._products(x)                                     # a few complex numbers: plain Python
        c_total, lines, m = self.num_channels, self.lines, self.size
        n0 = n1 = n2 = 0.0
        for c in range(c_total):
            a, a1, a2 = sums[c], sums[lines + c], sums[2 * lines + c]
            n0 += a.real * a.real + a.imag * a.imag
            n1 += 2 * (a.real * a1.real + a.imag * a1.imag)
            n2 += 2 * (a1.real * a1.real + a1.imag * a1.imag + a.real * a2.real + a.imag * a2.imag)
        if not self.centred:
            return n0, n1, n2
        e, e1, e2 = sums[c_total], sums[lines + c_total], sums[2 * lines + c_total]
        den = m - (e.real * e.real + e.imag * e.imag) / m
        den1 = -2 * (e.real * e1.real + e.imag * e1.imag) / m
        den2 = -2 * (e1.real * e1.real + e1.imag * e1.imag + e.real * e2.real + e.imag * e2.imag) / m
        if den <= 0:
            return None
        j0 = n0 / den
        j1 = (n1 - j0 * den1) / den
        return j0, j1, (n2 - 2 * j1 * den1 - j0 * den2) / den

    def values(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """J at several points (inf or NaN where the centred phasor vanishes)."""
        sums = self._products.at(points, self.lines)
        power = np.sum(sums[:self.num_channels].real ** 2 + sums[:self.num_channels].imag ** 2, axis=0)
        if not self.centred:
            return power
        ends = sums[self.num_channels]
        with np.errstate(divide="ignore", invalid="ignore"):
            return power / (self.size - (ends.real ** 2 + ends.imag ** 2) / self.size)


def _newton(objective: _Objective, start: float, step: float) -> float | None:
    """:func:`newton_peak` on a prepared objective."""
    x, dx = float(start), math.inf
    scale = abs(step)
    j_start = -math.inf
    for _ in range(_NEWTON_STEPS):
        terms = objective.derivatives(x)
        if terms is None:
            return None
        j0, j1, j2 = terms
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

