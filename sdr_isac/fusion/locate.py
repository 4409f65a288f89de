"""Locating a target from link measurements: weighted least squares, fault exclusion, velocity vectors.

- :func:`locate` — target position from monostatic ranges and bistatic range
  sums by weighted nonlinear least squares (Levenberg–Marquardt with the analytic Jacobian,
  MINPACK ``lmder``), weights the inverse CRB variances;
  returns the covariance ``(J^T W J)^-1``.
- :func:`locate_robust` — :func:`locate` on the largest set of links that
  agree with each other within their CRB covariances (consensus over
  hypotheses, chi-square gates); where no such set exists, the best single
  node's own fix (range and angle) stands.  Cooperation is then never far
  worse than its best member.
- :func:`velocity_vector` — the velocity vector from radial velocities and
  bistatic range rates by weighted linear least squares at the position.
- :func:`locate_single`, :func:`single_fix` — one node's position from its
  range and the cone angle of its linear array, with its covariance.

Geometry: positions in m in a common frame; a target of known height (a UAV
at a reported altitude) is located in the horizontal plane, with level
flight (``v_z = 0``); the measurement rows are those of
:func:`sdr_isac.sensing.crb.measurement_matrix` (REFERENCE.md §3).
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.optimize as sp_opt
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError, SensingError
from sdr_isac.fusion.records import LinkMeasurement, _covariance_problem
from sdr_isac.sensing.crb import measurement_matrix

__all__ = ["SingleFix", "locate", "weighted_residuals", "locate_robust", "velocity_vector", "velocity_with_cross",
           "locate_single", "single_fix"]


def _check_nodes(nodes_m: ArrayLike) -> NDArray[np.float64]:
    b = np.asarray(nodes_m, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 3 or not np.all(np.isfinite(b)):
        raise InputError(f"nodes_m has shape {b.shape}: allowed (B, 3) finite positions in m")
    return b


def _pairs(links: Sequence[LinkMeasurement]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    return np.array([m.tx for m in links], dtype=np.intp), np.array([m.rx for m in links], dtype=np.intp)


def _node_offsets(corners: list[list[float]], x: float, y: float, z: float) -> list[tuple[float, float, float, float]]:
    """``(distance, dx, dy, dz)`` from each node ``(bx, by, bz)`` of ``corners`` to ``(x, y, z)``, m.

    Plain floats: a handful of nodes and links cost a fraction of numpy's per-call overhead (this runs in the
    inner loop of every least-squares fit).  The squares are summed in the order numpy's ``einsum`` sums a
    row of three, ``(dx² + dz²) + dy²``, the order of the vectorised model this replaced.
    """
    out = []
    for bx, by, bz in corners:
        dx, dy, dz = x - bx, y - by, z - bz
        out.append((math.sqrt((dx * dx + dz * dz) + dy * dy), dx, dy, dz))
    return out


def _link_ranges(offsets: list[tuple[float, float, float, float]], pairs: list[tuple[int, int]]) -> list[float]:
    """The range model: link ``(i, j)`` measures the range ``d_i`` (``i == j``) or the range sum ``d_i + d_j``
    (``offsets`` of :func:`_node_offsets`)."""
    return [offsets[i][0] if i == j else offsets[i][0] + offsets[j][0] for i, j in pairs]


def _link_gradients(offsets: list[tuple[float, float, float, float]], pairs: list[tuple[int, int]]
                    ) -> list[tuple[float, float, float]]:
    """Gradients of :func:`_link_ranges` in the target's position: ``u_i`` (``i == j``) or ``u_i + u_j``, ``u``
    the unit vector from the node to the target, taken as the offset itself (zero) at the node, where the range
    has no derivative."""
    u = [(dx / dist, dy / dist, dz / dist) if dist != 0 else (dx / 1.0, dy / 1.0, dz / 1.0)
         for dist, dx, dy, dz in offsets]
    return [u[i] if i == j else (u[i][0] + u[j][0], u[i][1] + u[j][1], u[i][2] + u[j][2]) for i, j in pairs]


def _ranges_and_rows(nodes: NDArray[np.float64], p: NDArray[np.float64], tx: NDArray[np.intp], rx: NDArray[np.intp]
                     ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Ranges / range sums at ``p`` (shape (L,), m) and their gradients in ``p`` (shape (L, 3)): the rows of
    :func:`sdr_isac.sensing.crb.measurement_matrix`, zero towards a node that ``p`` coincides with (no checks):
    :func:`_link_ranges` and :func:`_link_gradients` as arrays."""
    offsets = _node_offsets(nodes.tolist(), float(p[0]), float(p[1]), float(p[2]))
    pairs = list(zip(tx.tolist(), rx.tolist(), strict=True))
    return (np.array(_link_ranges(offsets, pairs), dtype=np.float64),
            np.array(_link_gradients(offsets, pairs), dtype=np.float64).reshape(len(pairs), 3))


def _model(nodes: NDArray[np.float64], p: NDArray[np.float64], links: Sequence[LinkMeasurement]) -> NDArray[np.float64]:
    return _ranges_and_rows(nodes, p, *_pairs(links))[0]


def weighted_residuals(nodes_m: ArrayLike, links: Sequence[LinkMeasurement], height_m: float,
                       angle: SingleFix | None = None,
                       ) -> tuple[Callable[[NDArray[np.float64]], NDArray[np.float64]],
                                  Callable[[NDArray[np.float64]], NDArray[np.float64]]]:
    """The residuals that :func:`locate` minimises and their analytic Jacobian, as functions of ``xy`` (m).

    Residual ``i`` is ``(r_i - r_i(p)) / sigma_i`` with ``r_i(p)`` the range
    (``tx == rx``) or range sum ``||p - b_tx|| + ||p - b_rx||`` at
    ``p = (x, y, height_m)``; with ``angle`` one more,
    ``(alpha - alpha(p)) / sigma_alpha`` (:meth:`SingleFix.angle_at`).  The
    Jacobian rows are ``-(u_tx + u_rx)_xy / sigma_i`` (``-u_xy / sigma_i``
    monostatic; ``u`` the unit vector from the node to ``p``, taken zero at
    the node itself, where the range has no derivative) and
    ``-grad alpha / sigma_alpha``.

    Returns
    -------
    residuals : callable, ``xy`` shape (2,) -> shape (L,) or (L + 1,), float64
    jacobian : callable, ``xy`` shape (2,) -> shape (L, 2) or (L + 1, 2), float64, 1/m (m/m for ranges)
    """
    nodes = _check_nodes(nodes_m)
    tx, rx = _pairs(links)
    if tx.size and (tx.min() < 0 or max(tx.max(), rx.max()) >= nodes.shape[0] or rx.min() < 0):
        raise InputError(f"link nodes tx = {tx.tolist()}, rx = {rx.tolist()}: allowed indices 0 ... "
                         f"{nodes.shape[0] - 1} into nodes_m; pass the links of these nodes")
    w_angle = 0.0 if angle is None else 1.0 / math.sqrt(angle.var_angle_rad2)
    pairs = list(zip(tx.tolist(), rx.tolist(), strict=True))
    measured = [m.range_m for m in links]
    weights = [1.0 / math.sqrt(m.var_range_m2) for m in links]
    corners = nodes.tolist()
    height = float(height_m)

    def residuals(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        model = _link_ranges(_node_offsets(corners, float(xy[0]), float(xy[1]), height), pairs)
        r = [(meas - at) * w for meas, at, w in zip(measured, model, weights)]      # one length: no check
        if angle is not None:
            r.append((angle.angle_rad - angle.angle_at(xy)[0]) * w_angle)
        return np.array(r, dtype=np.float64)

    def jacobian(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        grads = _link_gradients(_node_offsets(corners, float(xy[0]), float(xy[1]), height), pairs)
        rows = [[g[0] * -w, g[1] * -w] for g, w in zip(grads, weights)]
        if angle is not None:
            grad = angle.angle_at(xy)[1]
            rows.append([-w_angle * float(grad[0]), -w_angle * float(grad[1])])
        return np.array(rows, dtype=np.float64).reshape(len(rows), 2)

    return residuals, jacobian


def _levenberg_marquardt(residuals: Callable[[NDArray[np.float64]], NDArray[np.float64]],
                         jacobian: Callable[[NDArray[np.float64]], NDArray[np.float64]],
                         x0: NDArray[np.float64]) -> NDArray[np.float64]:
    """MINPACK's ``lmder`` as ``scipy.optimize.least_squares(method="lm", x_scale="jac")`` calls it (tolerances
    1e-8, at most 100 n evaluations, step bound factor 100, scaling from the Jacobian), through
    ``scipy.optimize.leastsq``, which wraps it in a fraction of the time: on the same residuals, the same
    iterates and the same solution as ``least_squares`` (tested bit for bit).

    Raises ``ValueError`` where ``least_squares`` does: residuals not finite at ``x0``.
    """
    x = np.atleast_1d(np.asarray(x0, dtype=np.float64)).ravel()
    if not np.all(np.isfinite(residuals(x))):
        raise ValueError("Residuals are not finite in the initial point.")
    return np.asarray(sp_opt.leastsq(residuals, x, Dfun=jacobian, full_output=True, ftol=1e-8, xtol=1e-8,
                                     gtol=1e-8, maxfev=100 * x.size, factor=100.0)[0], dtype=np.float64)


def locate(nodes_m: ArrayLike, links: Sequence[LinkMeasurement], height_m: float,
           start_xy: ArrayLike | None = None, angle: SingleFix | None = None,
           ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Horizontal position (x, y) of a target at known height from ranges and range sums (and one cone angle).

    Weighted nonlinear least squares, residuals ``(r_i - r_i(p)) / sigma_i``,
    by scipy's Levenberg–Marquardt solver (MINPACK, a damped Gauss–Newton),
    started at ``start_xy`` (default: the centroid of the nodes).  ``angle``
    adds the cone angle of one node's array (:class:`SingleFix`) as one more
    residual ``(alpha - alpha(p)) / sigma_alpha``.  The Jacobian is the
    analytic one of :func:`weighted_residuals`.

    Returns
    -------
    xy : ndarray, shape (2,), m
    cov : ndarray, shape (2, 2), m²
        ``(J^T W J)^-1`` at the solution: the CRB when the variances are.
    """
    nodes = _check_nodes(nodes_m)
    if len(links) + (angle is not None) < 2:
        raise SensingError(f"{len(links)} range measurement(s): need at least 2 to locate in the plane")
    x0 = nodes[:, :2].mean(axis=0) if start_xy is None else np.asarray(start_xy, dtype=float)
    residuals, jacobian = weighted_residuals(nodes, links, height_m, angle)
    xy = _levenberg_marquardt(residuals, jacobian, x0)
    if links:      # a fix on a node has no direction there: measurement_matrix refuses it (InputError)
        measurement_matrix(nodes, np.array([xy[0], xy[1], height_m]), [(m.tx, m.rx) for m in links])
    h = jacobian(xy)
    info = h.T @ h
    if np.linalg.matrix_rank(info) < 2:
        raise SensingError("the measurements do not determine the position (one direction only): add a node")
    return xy, np.asarray(np.linalg.inv(info), dtype=np.float64)


def locate_robust(nodes_m: ArrayLike, links: Sequence[LinkMeasurement], height_m: float,
                  start_xy: ArrayLike | None = None, gate_sigma: float = 5.0, anchor: SingleFix | None = None,
                  max_hypothesis_links: int = 6,
                  ) -> tuple[NDArray[np.float64], NDArray[np.float64], list[LinkMeasurement]]:
    """:func:`locate` on the largest set of links that agree within their covariances (fault exclusion).

    A link whose estimator locked on a noise peak (a range hundreds of cells
    off) must not drag the fix away, and several of them must not outvote the
    good ones.  Hypotheses of the position are the ``anchor`` (a single
    node's own fix from range and angle, if given) and the WLS fix of every
    pair of the ``max_hypothesis_links`` strongest links.  At a hypothesis
    ``p`` with covariance ``P``, link ``i`` agrees when its normalised
    residual ``|r_i - r_i(p)| / sqrt(var_i + h_i P h_i^T)`` is at most
    ``gate_sigma`` (a chi-square gate with one degree of freedom; 5 sigma:
    false exclusion probability 6e-7 for a link the hypothesis did not use;
    a link fitted into it has the smaller residual variance ``var_i - h_i P
    h_i^T``, so for it the gate is wider and excludes less).  The hypothesis with the most
    agreeing measurements wins (the anchor's angle counts as one; ties: the
    smaller sum of squared normalised residuals), the agreeing links are
    re-fitted and the gate applied again at the fit until the set is stable.

    Two links always "agree" (two circles meet), so a consensus needs a
    redundant measurement: at least three agreeing measurements.  Where none
    has three, or the consensus fix is less precise than the anchor
    (``trace(cov)`` larger), the anchor stands: the position is the single
    node's fix with its covariance, and the links kept are those of that
    node that agree with it (fewer than two: callers label the estimate
    ``single``).  Without an anchor and without a consensus, the WLS fix of
    all links is returned (nothing can be excluded).

    Returns
    -------
    xy : ndarray, shape (2,), m
    cov : ndarray, shape (2, 2), m²
    kept : list of LinkMeasurement
        The links the position rests on.
    """
    if not (np.isfinite(gate_sigma) and gate_sigma > 0):
        raise InputError(f"gate_sigma = {gate_sigma!r}: allowed a finite number of standard deviations > 0")
    nodes = _check_nodes(nodes_m)
    links = list(links)
    if anchor is None and len(links) < 2:
        raise SensingError(f"{len(links)} range measurement(s): need at least 2 to locate in the plane")
    meas = np.array([m.range_m for m in links])
    var = np.array([m.var_range_m2 for m in links])
    tx, rx = _pairs(links)
    start = None if start_xy is None else np.asarray(start_xy, dtype=float)
    if start is None and anchor is not None:
        start = anchor.xy_m

    def agreeing(xy: NDArray[np.float64], cov: NDArray[np.float64]) -> tuple[list[int], float, bool]:
        model, rows = _ranges_and_rows(nodes, np.array([xy[0], xy[1], height_m]), tx, rx)
        h = rows[:, :2]
        spread = var + np.einsum("ij,jk,ik->i", h, cov, h)
        z2 = (meas - model) ** 2 / spread
        inside = [i for i in range(len(links)) if z2[i] <= gate_sigma**2]
        angle_ok = anchor is not None and anchor.agrees(xy, cov, gate_sigma)
        return inside, float(z2[inside].sum()), angle_ok

    def fit(subset: list[int], from_xy: NDArray[np.float64] | None,
            with_angle: bool = False) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return locate(nodes, [links[i] for i in subset], height_m, from_xy, anchor if with_angle else None)

    hypotheses: list[tuple[NDArray[np.float64], NDArray[np.float64]]] = []
    if anchor is not None:
        hypotheses.append((anchor.xy_m, anchor.cov_m2))
    strongest = sorted(range(len(links)), key=lambda i: -links[i].snr_re)[:max_hypothesis_links]
    for i, j in itertools.combinations(sorted(strongest), 2):
        try:
            hypotheses.append(fit([i, j], start))
        except (SensingError, np.linalg.LinAlgError, ValueError):
            continue                                   # a degenerate pair (parallel rows): no hypothesis
    def converge(xy: NDArray[np.float64], cov: NDArray[np.float64]
                 ) -> tuple[int, float, list[int], NDArray[np.float64], NDArray[np.float64]] | None:
        """Gate at the hypothesis, re-fit what agrees (the anchor's angle too), gate again ... until stable."""
        state: tuple[list[int], bool] | None = None
        for _ in range(4):
            inside, _, angle_ok = agreeing(xy, cov)
            if len(inside) + int(angle_ok) < 2:
                return None
            if (inside, angle_ok) == state:
                break
            state = (inside, angle_ok)
            try:
                xy, cov = fit(inside, xy, angle_ok)
            except (SensingError, np.linalg.LinAlgError, ValueError):
                return None
        inside, chi2, angle_ok = agreeing(xy, cov)
        return len(inside) + int(angle_ok), chi2, inside, xy, cov

    best = None
    for xy0, cov0 in hypotheses:
        got = converge(xy0, cov0)
        if got is not None and (best is None or got[0] > best[0] or (got[0] == best[0] and got[1] < best[1])):
            best = got
    if best is not None and best[0] >= 3 and len(best[2]) >= 2:
        _, _, subset, xy, cov = best
        if anchor is None or float(np.trace(cov)) <= float(np.trace(anchor.cov_m2)):
            return xy, cov, [links[i] for i in subset]
    if anchor is not None:
        inside = set(agreeing(anchor.xy_m, anchor.cov_m2)[0])
        own = [m for i, m in enumerate(links) if m.tx == m.rx == anchor.node and i in inside]
        return anchor.xy_m.copy(), anchor.cov_m2.copy(), own
    xy, cov = locate(nodes, links, height_m, start)
    return xy, cov, links


def velocity_vector(nodes_m: ArrayLike, links: Sequence[LinkMeasurement], position_m: ArrayLike,
                    cov_position_m2: ArrayLike | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Horizontal velocity (v_x, v_y) of a level-flying target from radial velocities and range rates.

    Weighted linear least squares ``v = (H^T W H)^-1 H^T W r`` with the rows
    of :func:`sdr_isac.sensing.crb.measurement_matrix` at ``position_m``.
    Returns the velocity (m/s) and its covariance ((m/s)²): that of the rates,
    plus, given the position's horizontal covariance ``cov_position_m2``
    (2, 2), what the position's error does to the directions H (``J P J^T``,
    J the derivative of v in the position by central differences): NEES
    14.5 -> 2.0 for three nodes and a position known to 5 m.  Where the
    nodes see the target along nearly one line the velocity across it rests
    on the small differences of the directions, which the position's error
    moves; there it stays heavy-tailed (500 m out along two nodes' line:
    44 m/s rms error against 13 m/s claimed), so a tracker should not take
    it at face value (:class:`~sdr_isac.fusion.tracking.Tracker` fuses a new
    track's velocity with its speed prior).  :func:`velocity_with_cross` also
    gives the cross-covariance of the position's and the velocity's errors.
    """
    v, cov, _ = velocity_with_cross(nodes_m, links, position_m, cov_position_m2)
    return v, cov


def velocity_with_cross(nodes_m: ArrayLike, links: Sequence[LinkMeasurement], position_m: ArrayLike,
                        cov_position_m2: ArrayLike | None = None
                        ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """:func:`velocity_vector` and the horizontal cross-covariance of the position and velocity errors.

    The velocity is solved at the estimated position, so its error holds ``J (p_hat - p)`` besides the rates'
    noise (independent of the ranges' in the CRB of a symmetric window: the delay-Doppler information has no
    cross term): ``E[(p_hat - p)(v_hat - v)^T] = P J^T``, m²/s, shape (2, 2) (zero without
    ``cov_position_m2``).  A tracker that takes position and velocity as one measurement needs it: without it
    a velocity correlated with the position at 0.8 to 0.9 is fused as if independent.
    """
    nodes = _check_nodes(nodes_m)
    if len(links) < 2:
        raise SensingError(f"{len(links)} rate measurement(s): need at least 2 for the velocity vector in the plane")
    p = np.asarray(position_m, dtype=np.float64)
    pairs = [(m.tx, m.rx) for m in links]
    w = np.array([1.0 / m.var_rate_mps2 for m in links])
    rates = np.array([m.rate_mps for m in links])

    def solve(at: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        h = measurement_matrix(nodes, at, pairs)[:, :2]
        info = h.T @ (h * w[:, None])
        if np.linalg.matrix_rank(info) < 2:
            raise SensingError("the links do not determine the velocity vector (one direction only): add a node")
        cov = np.linalg.inv(info)
        return cov @ (h.T @ (w * rates)), cov

    v, cov = solve(p)
    cross = np.zeros((2, 2))
    if cov_position_m2 is not None:
        cov_p = _horizontal_covariance(cov_position_m2)
        jac = np.zeros((2, 2))
        for axis in range(2):
            step = np.zeros_like(p)
            # a thousandth of the position's standard deviation, within 1 um ... 1 m (the rows change on the scale
            # of the node distances: a step beyond that, from an absurd covariance, would leave the geometry)
            step[axis] = min(max(1e-3 * math.sqrt(max(float(cov_p[axis, axis]), 0.0)), 1e-6), 1.0)
            jac[:, axis] = (solve(p + step)[0] - solve(p - step)[0]) / (2.0 * step[axis])
        with np.errstate(over="ignore", invalid="ignore"):
            cov = cov + jac @ cov_p @ jac.T
            cross = cov_p @ jac.T
        if not (np.all(np.isfinite(cov)) and np.all(np.isfinite(cross))):
            raise SensingError(f"cov_position_m2 (largest variance {float(np.max(np.diag(cov_p))):.3g} m²) makes the "
                               "velocity's covariance overflow: the position says nothing of the geometry; locate "
                               "the target first")
    return v, cov, cross


def _horizontal_covariance(cov_position_m2: ArrayLike) -> NDArray[np.float64]:
    """The horizontal (2, 2) block of a position covariance (2, 2) or (3, 3), m², checked finite, symmetric, PSD."""
    c = np.asarray(cov_position_m2, dtype=np.float64)
    ok = c.shape in ((2, 2), (3, 3)) and bool(np.all(np.isfinite(c)))
    if ok:
        c = c[:2, :2]
        ok = _covariance_problem(c) is None                      # the records' check (TargetEstimate's)
    if not ok:
        shown = str(np.asarray(cov_position_m2).tolist())
        raise InputError(f"cov_position_m2 = {shown[:120]} m²: allowed a finite, symmetric, positive semi-definite "
                         "(2, 2) or (3, 3) covariance, or None")
    return 0.5 * c + 0.5 * c.T                                   # (c + c.T) could overflow


def locate_single(node_m: ArrayLike, array_axis_xy: ArrayLike, range_m: float, cone_angle_rad: float,
                  height_m: float) -> NDArray[np.float64]:
    """One node's horizontal target position from its range and the cone angle of its horizontal linear array.

    The array (axis ``array_axis_xy`` in the plane, broadside to its left:
    the axis turned by +90°) measures ``sin(alpha) = sin(theta) cos(el)``
    with ``theta`` the azimuth from broadside and ``el`` the elevation, known
    from the range and the height difference.
    """
    b = np.asarray(node_m, dtype=np.float64)
    axis = np.asarray(array_axis_xy, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    dz = height_m - b[2]
    if range_m <= abs(dz):
        raise SensingError(f"range {range_m:.2f} m is shorter than the height difference {abs(dz):.2f} m: the "
                           "target cannot be at that height")
    return _fix_positions(b, axis, np.float64(range_m), np.float64(cone_angle_rad), np.float64(height_m))


def _fix_positions(b: NDArray[np.float64], axis: NDArray[np.float64], range_m: NDArray[np.float64] | np.float64,
                   cone_angle_rad: NDArray[np.float64] | np.float64,
                   height_m: NDArray[np.float64] | np.float64) -> NDArray[np.float64]:
    """:func:`locate_single` for arrays of ranges, cone angles and heights (broadcast together; shape ``(...,
    2)`` out) without its refusal: a range shorter than the height difference gives the point below the node
    and a cone angle beyond the one its elevation allows gives endfire (the nearest positions there are)."""
    dz = height_m - b[2]
    horizontal = np.sqrt(np.maximum(range_m**2 - dz**2, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        cos_el = horizontal / range_m
        s = np.clip(np.sin(cone_angle_rad) / cos_el, -1.0, 1.0)
    s = np.where(horizontal > 0, s, 0.0)
    broadside = np.array([-axis[1], axis[0]])
    direction = np.sqrt(1.0 - s * s)[..., None] * broadside + s[..., None] * axis
    return b[:2] + horizontal[..., None] * direction


@dataclass(frozen=True)
class SingleFix:
    """One node's own position estimate from its range and array cone angle, with its covariance.

    ``node`` is the node's row in the position array; ``xy_m`` shape (2,), m; ``cov_m2`` shape (2, 2),
    m²; ``angle_rad``/``var_angle_rad2`` the cone angle it rests on (``sin(alpha) = u . axis`` with
    ``u`` the 3-D unit vector from the node to the target, see :func:`locate_single`);
    ``origin_m`` (3,) the node's position, ``axis_xy`` (2,) its array's unit axis, ``height_m`` the
    target's height; ``cov_xy_height_m2`` (2,) the covariance of the fix with that height (zero unless the
    height is uncertain: ``var_height_m2`` of :func:`single_fix`).
    """

    node: int
    xy_m: NDArray[np.float64]
    cov_m2: NDArray[np.float64]
    angle_rad: float
    var_angle_rad2: float
    origin_m: NDArray[np.float64]
    axis_xy: NDArray[np.float64]
    height_m: float
    cov_xy_height_m2: NDArray[np.float64] = field(default_factory=lambda: np.zeros(2))

    def angle_at(self, xy: ArrayLike) -> tuple[float, NDArray[np.float64]]:
        """The cone angle (rad) towards a target at ``xy`` (m) and its gradient in x, y (rad/m, shape (2,))."""
        # three-vectors in plain floats: this runs inside every least-squares fit that carries the angle
        ox, oy, oz = (float(v) for v in self.origin_m)
        at = np.asarray(xy, dtype=np.float64)
        dx, dy, dz = float(at[0]) - ox, float(at[1]) - oy, self.height_m - oz
        dist = math.sqrt(dx * dx + dy * dy + dz * dz)
        if dist == 0:
            return 0.0, np.zeros(2)
        ux, uy = dx / dist, dy / dist
        ax, ay = float(self.axis_xy[0]), float(self.axis_xy[1])
        s = min(max(ux * ax + uy * ay, -1.0), 1.0)
        alpha = math.asin(s)
        scale = dist * max(math.cos(alpha), 1e-9)
        return alpha, np.array([(ax - s * ux) / scale, (ay - s * uy) / scale])

    def agrees(self, xy: ArrayLike, cov: ArrayLike, gate_sigma: float) -> bool:
        """Whether the cone angle towards ``xy`` (covariance ``cov``, m²) lies within ``gate_sigma`` of this one."""
        alpha, grad = self.angle_at(xy)
        spread = self.var_angle_rad2 + float(grad @ np.asarray(cov, dtype=np.float64) @ grad)
        return (alpha - self.angle_rad) ** 2 <= gate_sigma**2 * spread


#: Gauss-Hermite points per measured quantity in :func:`single_fix`'s covariance (the rule is exact for
#: polynomials of degree 17 in the measurement errors)
FIX_QUADRATURE_POINTS = 9
#: how :func:`single_fix` carries the measurement errors to the fix
FIX_PROPAGATIONS = ("quadrature", "linear")


def single_fix(nodes_m: ArrayLike, node: int, array_axis_xy: ArrayLike, range_m: float, var_range_m2: float,
               cone_angle_rad: float, var_angle_rad2: float, height_m: float,
               var_height_m2: float = 0.0, propagation: str = "quadrature") -> SingleFix:
    """:func:`locate_single` with the covariance of its error and its covariance with the height.

    ``propagation`` says how the errors of the range, the cone angle and (``var_height_m2`` > 0) the height
    reach the fix:

    - ``"quadrature"`` (default): the mean squared error of the fix about itself,
      ``E[(f(z + n) - f(z)) (f(z + n) - f(z))^T]`` with ``n`` Gaussian of the given variances, by a
      Gauss-Hermite rule of :data:`FIX_QUADRATURE_POINTS` points per measured quantity.  The fix is a strongly
      nonlinear function of its measurements where the angle error moves the target along a circle (its
      range-ward error ``r delta**2 / 2`` is not Gaussian, and only a second-order term), near endfire
      (``d theta / d alpha`` grows without bound at the cone's edge, where the fix stops) and near the point
      below the node (``d rho / d r = r / rho``): a linearised covariance claimed millimetres there where the
      fix was metres off (mean NEES 277 at 80 m with 0.05 rad, singular below the node and at endfire; now
      about 2, its chi-square mean, on broadside, tested).  A sample beyond what the geometry allows (a
      range shorter than the height difference, a cone angle beyond endfire) counts at the nearest position
      there is, as :func:`locate_single`'s boundary; beyond the edge the angle's points centre on the edge.
      The fix is not de-biased: on the range circle it lies some ``rho (1 - exp(-var_angle / 2))`` inside the
      mean of its errors (0.1 m at 80 m with 0.05 rad), and the mean squared error includes that bias.  The
      error is taken at the measurement, not at the truth, so where the map bends sharply within the errors
      the NEES mean still exceeds 2 (2.7 three metres from the point below the node, 3 to 4 five degrees
      from endfire; tested).
    - ``"linear"``: ``J diag(var_range, var_angle, var_height) J^T`` with J by central differences at the
      measurements, the propagation of a Cramér-Rao bound to the position (a bound, not an estimate's
      error where the map bends within the errors).

    ``var_height_m2``: a target whose height is itself measured (a UAV's reported altitude; 0: known).  Its
    error moves the fix (the range's horizontal part, the cone's elevation): without it a UAV's fixes claimed
    some 3 cm where they were about 1 m off (NEES in the thousands).

    Raises
    ------
    SensingError
        The range is shorter than the height difference.
    InputError
        A variance that is not a finite number >= 0, or another ``propagation``.
    """
    for name, value, unit in (("var_range_m2", var_range_m2, "m²"), ("var_angle_rad2", var_angle_rad2, "rad²"),
                              ("var_height_m2", var_height_m2, "m²")):
        if not (_real(value) and math.isfinite(value) and value >= 0):
            raise InputError(f"{name} = {value!r} {unit}: allowed a finite variance >= 0 ("
                             + ("0: a known height" if name == "var_height_m2" else "the estimator's CRB variance")
                             + ")")
    for name, value, unit in (("range_m", range_m, "m"), ("cone_angle_rad", cone_angle_rad, "rad"),
                              ("height_m", height_m, "m")):
        if not (_real(value) and math.isfinite(value)):
            raise InputError(f"{name} = {value!r} {unit}: allowed a finite number; pass the detection's measured "
                             "value")
    if propagation not in FIX_PROPAGATIONS:
        raise InputError(f"propagation = {propagation!r}: allowed {' or '.join(map(repr, FIX_PROPAGATIONS))} "
                         "(quadrature: the fix's error; linear: a bound's propagation)")
    b = _check_nodes(nodes_m)[node]
    axis = np.asarray(array_axis_xy, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    xy = locate_single(b, axis, range_m, cone_angle_rad, height_m)
    if propagation == "quadrature":
        cov, cross = _fix_moments(b, axis, (range_m, cone_angle_rad, height_m),
                                  (var_range_m2, var_angle_rad2, var_height_m2))
        return SingleFix(node, xy, cov, float(cone_angle_rad), float(var_angle_rad2), b.copy(), axis,
                         float(height_m), cross)
    eps_r = max(1e-6, 1e-7 * range_m)
    eps_a = 1e-7
    eps_h = max(1e-6, 1e-7 * abs(height_m))

    def at(r: float, a: float, h: float = height_m) -> NDArray[np.float64]:
        try:
            return locate_single(b, axis, r, a, h)
        except SensingError:                              # at the edge of the height: one-sided difference
            return xy
    columns = [(at(range_m + eps_r, cone_angle_rad) - at(range_m - eps_r, cone_angle_rad)) / (2 * eps_r),
               (at(range_m, cone_angle_rad + eps_a) - at(range_m, cone_angle_rad - eps_a)) / (2 * eps_a)]
    variances = [var_range_m2, var_angle_rad2]
    if var_height_m2 > 0:
        columns.append((at(range_m, cone_angle_rad, height_m + eps_h) - at(range_m, cone_angle_rad, height_m - eps_h))
                       / (2 * eps_h))
        variances.append(var_height_m2)
    jac = np.stack(columns, axis=1)
    cov = jac @ np.diag(variances) @ jac.T
    cross = jac[:, 2] * var_height_m2 if var_height_m2 > 0 else np.zeros(2)
    return SingleFix(node, xy, cov, float(cone_angle_rad), float(var_angle_rad2), b.copy(), axis, float(height_m),
                     cross)


def _real(value: Any) -> bool:
    """A real number: a Python or numpy scalar, or a 0-d array of one (not a bool)."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in "iuf"
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


@functools.lru_cache(maxsize=4)
def _hermite_rule(points: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Nodes and weights (summing to 1) of the ``points``-point Gauss-Hermite rule for a standard normal."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(points)
    return nodes, weights / weights.sum()


def _fix_moments(b: NDArray[np.float64], axis: NDArray[np.float64], measured: tuple[float, float, float],
                 variances: tuple[float, float, float]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean squared error of the fix at ``measured`` about itself (2, 2) and its covariance with the height (2,), over
    Gaussian errors of (range, cone angle, height) with ``variances``, by a tensor Gauss-Hermite rule (a
    quantity of variance 0 keeps its one value)."""
    nodes, weights = _hermite_rule(FIX_QUADRATURE_POINTS)
    # the angle's points centre on the angle the fix stands on: a measured cone angle beyond the one its
    # elevation allows (a mirror at exactly +-90 degrees, noise past the edge) is the edge, and points centred
    # on the measurement would all stop there, leaving no error across the line of sight
    r0, a0, h0 = measured
    horizontal = math.sqrt(max(r0 * r0 - (h0 - float(b[2])) ** 2, 0.0))
    if horizontal > 0 and abs(math.sin(a0)) * r0 > horizontal:
        a0 = math.copysign(math.asin(horizontal / r0), math.sin(a0))
    axes, axis_weights = [], []
    for value, var in zip((r0, a0, h0), variances):
        if var > 0:
            axes.append(value + math.sqrt(var) * nodes)
            axis_weights.append(weights)
        else:
            axes.append(np.array([float(value)]))
            axis_weights.append(np.ones(1))
    # the rule's points, then the fix itself from the measured values (last: exactly locate_single's point)
    r, a, h = (np.append(g.reshape(-1), value) for g, value in zip(np.meshgrid(*axes, indexing="ij"), measured))
    w = np.einsum("i,j,k->ijk", *axis_weights).reshape(-1)
    points = _fix_positions(b, axis, np.maximum(r, 0.0), a, h)
    d = points[:-1] - points[-1]          # about the fix (computed as its points are: an exact 0 without errors)
    cov = (w[:, None] * d).T @ d
    cross = (w * (h[:-1] - measured[2])) @ d if variances[2] > 0 else np.zeros(2)
    return 0.5 * (cov + cov.T), cross
