"""Hybrid node-level fusion: ranges, bistatic range sums, their rates and array cone angles in one WLS.

The state is the target's horizontal position and velocity ``s = (x, y,
v_x, v_y)`` (m, m/s) at the reference time ``t = 0``, at a known height,
flying level.  Each measurement is taken at its node's frame time ``t_b``
(s, on the fusion's time base), when the target is at ``p_b = p + v t_b``:

- monostatic link ``(i, i)``: range ``||p_i - b_i||`` and radial velocity
  ``u_i^T v`` (positive moving away);
- bistatic link ``(tx, rx)``: range sum ``||p - b_tx|| + ||p - b_rx||`` and
  its rate ``(u_tx + u_rx)^T v`` (at the receiver's frame time);
- cone angle of node i's horizontal uniform linear array with unit axis
  ``a``: ``sin(alpha) = u_i^T a`` (alpha from broadside towards the axis).

:func:`fuse` minimises ``sum (z - h(s))**2 / var`` (scipy's trust-region
least squares) and returns ``(J^T W J)^-1``; :func:`crb` evaluates the
same matrix at the true state — the Cramér–Rao bound when the variances are
the measurements' CRBs (REFERENCE.md §3: independent measurements add
Fisher information).  Jacobians by central differences of the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize as sp_opt
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError, SensingError
from sdr_isac.fusion.locate import _check_nodes
from sdr_isac.fusion.records import LinkMeasurement

__all__ = ["AngleMeasurement", "HybridEstimate", "fuse", "crb", "position_crb", "predict"]


@dataclass(frozen=True)
class AngleMeasurement:
    """Cone angle ``angle_rad`` (from broadside) of node ``node``'s horizontal ULA, axis ``axis_xy``, variance rad²."""

    node: int
    axis_xy: tuple[float, float]
    angle_rad: float
    var_rad2: float


@dataclass(frozen=True)
class HybridEstimate:
    """Horizontal position (m) and velocity (m/s) at the reference time, and their joint covariance (4 x 4)."""

    xy_m: NDArray[np.float64]
    v_xy_mps: NDArray[np.float64]
    cov: NDArray[np.float64]


def _times(times_s: ArrayLike | None, num: int) -> NDArray[np.float64]:
    if times_s is None:
        return np.zeros(num)
    t = np.asarray(times_s, dtype=np.float64)
    if t.shape != (num,) or not np.all(np.isfinite(t)):
        raise InputError(f"times_s has shape {t.shape}: allowed ({num},) finite frame times in s, one per node")
    return t


def predict(nodes_m: ArrayLike, state: ArrayLike, height_m: float, links: Sequence[LinkMeasurement],
            angles: Sequence[AngleMeasurement] = (), times_s: ArrayLike | None = None) -> NDArray[np.float64]:
    """Model values ``h(s)``: each link's range (m) then each link's rate (m/s), then each angle (rad)."""
    b = _check_nodes(nodes_m)
    t = _times(times_s, b.shape[0])
    s = np.asarray(state, dtype=np.float64)
    v = np.array([s[2], s[3], 0.0])
    out = []
    rates = []
    for m in links:
        tm = t[m.rx]
        p = np.array([s[0], s[1], height_m]) + v * tm
        d_tx, d_rx = p - b[m.tx], p - b[m.rx]
        r_tx, r_rx = float(np.linalg.norm(d_tx)), float(np.linalg.norm(d_rx))
        if m.tx == m.rx:
            out.append(r_tx)
            rates.append(float(d_tx @ v) / r_tx)
        else:
            out.append(r_tx + r_rx)
            rates.append(float(d_tx @ v) / r_tx + float(d_rx @ v) / r_rx)
    ang = []
    for a in angles:
        p = np.array([s[0], s[1], height_m]) + v * t[a.node]
        d = p - b[a.node]
        axis = np.array([a.axis_xy[0], a.axis_xy[1], 0.0]) / np.hypot(*a.axis_xy)
        ang.append(float(np.arcsin(np.clip(d @ axis / np.linalg.norm(d), -1.0, 1.0))))
    return np.array(out + rates + ang, dtype=np.float64)


def _data(links: Sequence[LinkMeasurement], angles: Sequence[AngleMeasurement]
          ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    z = [m.range_m for m in links] + [m.rate_mps for m in links] + [a.angle_rad for a in angles]
    var = [m.var_range_m2 for m in links] + [m.var_rate_mps2 for m in links] + [a.var_rad2 for a in angles]
    w = np.asarray(var, dtype=np.float64)
    if not np.all(np.isfinite(w) & (w > 0)):
        raise InputError(f"measurement variances {w.tolist()}: allowed finite values > 0 (m², (m/s)², rad²)")
    return np.asarray(z, dtype=np.float64), 1.0 / np.sqrt(w)


def _jacobian(nodes_m: ArrayLike, state: NDArray[np.float64], height_m: float, links: Sequence[LinkMeasurement],
              angles: Sequence[AngleMeasurement], times_s: ArrayLike | None) -> NDArray[np.float64]:
    steps = np.array([1e-4, 1e-4, 1e-4, 1e-4])
    cols = []
    for i, h in enumerate(steps):
        e = np.zeros(4)
        e[i] = h
        cols.append((predict(nodes_m, state + e, height_m, links, angles, times_s)
                     - predict(nodes_m, state - e, height_m, links, angles, times_s)) / (2 * h))
    return np.stack(cols, axis=1)


def _cov(jac: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
    info = jac.T @ (jac * (w**2)[:, None])
    if np.linalg.matrix_rank(info, tol=1e-9 * np.max(np.abs(info))) < 4:
        raise SensingError("the measurements do not determine position and velocity in the plane (rank < 4): "
                           "add a node, a bistatic link or an angle")
    return np.asarray(np.linalg.inv(info), dtype=np.float64)


def fuse(nodes_m: ArrayLike, links: Sequence[LinkMeasurement], height_m: float, start: ArrayLike,
         angles: Sequence[AngleMeasurement] = (), times_s: ArrayLike | None = None) -> HybridEstimate:
    """Joint WLS of ``(x, y, v_x, v_y)`` from links (ranges, range sums, rates) and cone angles.

    Parameters
    ----------
    nodes_m : array_like, shape (B, 3)
        Node positions, m.
    links : sequence of LinkMeasurement
        Monostatic (``tx == rx``) and bistatic links, with CRB variances.
    height_m : float
        Known target height, m.
    start : array_like, shape (4,)
        Starting state (m, m, m/s, m/s), e.g. a single node's range-and-angle fix and zero velocity; it also
        picks the side of a mirror ambiguity when the geometry leaves one.
    angles : sequence of AngleMeasurement
    times_s : array_like, shape (B,), optional
        Each node's frame time on the fusion's time base, s (default all 0: synchronised frames).

    Returns
    -------
    HybridEstimate
    """
    z, w = _data(links, angles)
    if z.size < 4:
        raise SensingError(f"{z.size} measurements: need at least 4 for position and velocity in the plane")
    x0 = np.asarray(start, dtype=np.float64)
    if x0.shape != (4,) or not np.all(np.isfinite(x0)):
        raise InputError(f"start = {start!r}: allowed 4 finite numbers (x m, y m, v_x m/s, v_y m/s)")

    def residuals(s: NDArray[np.float64]) -> NDArray[np.float64]:
        return (z - predict(nodes_m, s, height_m, links, angles, times_s)) * w

    res = sp_opt.least_squares(residuals, x0, method="trf", x_scale="jac")
    cov = _cov(_jacobian(nodes_m, res.x, height_m, links, angles, times_s), w)
    return HybridEstimate(res.x[:2].copy(), res.x[2:].copy(), cov)


def crb(nodes_m: ArrayLike, target_m: ArrayLike, velocity_mps: ArrayLike, link_pairs: Sequence[tuple[int, int]],
        var_range_m2: Sequence[float], var_rate_mps2: Sequence[float],
        angles: Sequence[tuple[int, tuple[float, float], float]] = (),
        times_s: ArrayLike | None = None) -> NDArray[np.float64]:
    """CRB (4 x 4) of ``(x, y, v_x, v_y)`` at the true state.

    ``link_pairs[i] = (tx, rx)`` with the range (sum) and rate variances of
    that link; ``angles`` as ``(node, axis_xy, var_rad2)``.
    """
    p = np.asarray(target_m, dtype=np.float64)
    v = np.asarray(velocity_mps, dtype=np.float64)
    links = [LinkMeasurement(tx, rx, 0.0, 0.0, vr, vv, 1.0)
             for (tx, rx), vr, vv in zip(link_pairs, var_range_m2, var_rate_mps2, strict=True)]
    angs = [AngleMeasurement(n, axis, 0.0, var) for n, axis, var in angles]
    _, w = _data(links, angs)
    state = np.array([p[0], p[1], v[0], v[1]])
    return _cov(_jacobian(nodes_m, state, float(p[2]), links, angs, times_s), w)


def position_crb(nodes_m: ArrayLike, target_m: ArrayLike, link_pairs: Sequence[tuple[int, int]],
                 var_range_m2: Sequence[float],
                 angles: Sequence[tuple[int, tuple[float, float], float]] = ()) -> NDArray[np.float64]:
    """CRB (2 x 2, m²) of the horizontal position from ranges, range sums and cone angles only (no rates).

    What a single node with a range and an array angle reaches, where the
    velocity vector is not determined.
    """
    p = np.asarray(target_m, dtype=np.float64)
    links = [LinkMeasurement(tx, rx, 0.0, 0.0, vr, 1.0, 1.0)
             for (tx, rx), vr in zip(link_pairs, var_range_m2, strict=True)]
    angs = [AngleMeasurement(n, axis, 0.0, var) for n, axis, var in angles]
    _, w = _data(links, angs)
    jac = _jacobian(nodes_m, np.array([p[0], p[1], 0.0, 0.0]), float(p[2]), links, angs, None)
    keep = np.r_[np.arange(len(links)), 2 * len(links) + np.arange(len(angs))]
    j, wk = jac[np.ix_(keep, [0, 1])], w[keep]
    info = j.T @ (j * (wk**2)[:, None])
    if np.linalg.matrix_rank(info) < 2:
        raise SensingError("the ranges and angles do not determine the position in the plane: add a measurement")
    return np.asarray(np.linalg.inv(info), dtype=np.float64)
