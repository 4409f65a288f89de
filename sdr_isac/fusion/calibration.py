"""HetNet space and time calibration (article §V-1): another network's clock offset, frame bias and yaw.

A second operator's base stations, or an IEEE 802.11-style access point, sense the same targets as the
reference network, but on their own clock and in their own surveyed frame.  Over a window of common
targets, :func:`estimate_calibration` finds, by joint weighted least squares, the parameters of the model

.. math::

    p_o(t) = R(\\psi)^T \\left(p(t + \\Delta t) - b\\right) + n, \\qquad n \\sim N(0, C_o)

- ``t``: the other network's time stamp (its own clock), s; ``t + dt`` the same instant on the reference clock
  (``offset_s`` = dt: the reference clock reads dt more);
- ``p(.)``: the target's position in the reference frame, m; ``b``: the origin of the other network's frame in
  the reference frame (``bias_m``), m; ``R(psi)``: the rotation about z by the yaw ``psi`` of its axes
  (``yaw_rad``; its x axis points along ``(cos psi, sin psi, 0)`` of the reference frame);
- ``p_o(t)``, ``C_o``: what the other network reports, in its frame, with its covariance.

The reference trajectory is carried to ``t + dt`` from the reference estimate nearest to ``t`` through its
velocity (and the acceleration of the neighbouring velocities; the central difference of the neighbouring
positions where no velocity is known), its covariance through the same weights.  Each residual
``p_o - R^T (p_ref(t + dt) - b)`` is whitened by ``C_o + R^T C_ref R``; the weights are refreshed at the
solution and the fit repeated until the parameters settle.  :class:`HetNetCalibration` holds the estimate,
its covariance (the inverse of the whitened Jacobian's Gram matrix at the solution, i.e. the CRB of the
model at the measurement covariances) and the residual chi-square with its degrees of freedom, and
:meth:`HetNetCalibration.apply` maps the other network's estimates into the reference frame and time.

Approximations (documented where they matter): the reference epoch each sample is carried from is taken
independent of those of other samples (exact when the reference is sampled more densely than the other
network, so no epoch serves two samples; its neighbours' velocities enter only through the small
acceleration term); the dependence of the weights on the parameters is left out of the Jacobian
(Gauss-Newton on fixed weights, refreshed between passes).

Observability.  The clock offset moves each report along its target's velocity, so it is confounded with
the bias unless the velocities differ (several targets in different directions, or a turning one); the yaw
is confounded with the bias unless the positions spread.  :func:`estimate_calibration` raises
:class:`~sdr_isac.errors.InputError` when the reference velocities (or positions) of the samples vary no more
than their own noise would make them, or when the whitened Jacobian is rank-deficient; a set-up that is
observable only weakly returns a large covariance, which says so.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import linalg, optimize
from scipy.spatial.transform import Rotation

from sdr_isac.channel import geometry
from sdr_isac.errors import InputError
from sdr_isac.fusion.records import TargetEstimate, Track

__all__ = ["HetNetCalibration", "estimate_calibration", "rotation_z"]

_log = logging.getLogger(__name__)

#: a set-up is unobservable below this ratio of signal variation to noise variation
_MIN_VARIATION_RATIO = 10.0
#: and when the column-scaled whitened Jacobian has a condition number above this
_MAX_CONDITION = 1e10


def rotation_z(yaw_rad: float) -> NDArray[np.float64]:
    """The rotation about z by ``yaw_rad`` (rad), shape (3, 3): :func:`sdr_isac.channel.geometry.rotation_z`."""
    return geometry.rotation_z(math.degrees(yaw_rad))


def _rotation_z_derivative(yaw_rad: float) -> NDArray[np.float64]:
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    return np.array([[-s, -c, 0.0], [c, -s, 0.0], [0.0, 0.0, 0.0]])


@dataclass(frozen=True)
class HetNetCalibration:
    """Clock offset, frame bias and yaw of another network against the reference, with their covariance.

    Attributes
    ----------
    offset_s : float
        dt, s: the reference clock reads ``t + dt`` when the other network's reads ``t``.
    bias_m : ndarray, shape (3,), float64
        Origin of the other network's frame in the reference frame, m (z = 0 when ``planar``).
    yaw_rad : float
        Rotation of its axes about z, rad.
    covariance : ndarray, shape (P, P), float64
        Covariance of ``parameters`` (s², m², rad² and their products), P = 4 (planar) or 5.
    planar : bool
        Whether only (x, y) were fitted (the bias has z = 0 and no variance in z).
    chi_square : float
        Sum of the squared whitened residuals at the solution; chi-square with ``dof`` degrees of freedom
        when the model and the covariances hold.
    dof : int
        Residuals less parameters.
    num_samples : int
        The other network's estimates used.
    offset_at_bound : bool
        The fitted offset lies on the bound ``max_offset_s`` of :func:`estimate_calibration` (the constraint
        is active): the data ask for a larger offset or the model does not hold.  The covariance is then the
        unconstrained one at that point, which describes no estimate (the offset is not free); refit with a
        wider bound (and longer windows) or do not use the calibration.
    """

    offset_s: float
    bias_m: NDArray[np.float64]
    yaw_rad: float
    covariance: NDArray[np.float64]
    planar: bool
    chi_square: float
    dof: int
    num_samples: int
    offset_at_bound: bool = False

    def __post_init__(self) -> None:
        bias = np.array(self.bias_m, dtype=np.float64).reshape(-1)
        cov = np.array(self.covariance, dtype=np.float64)
        p = 4 if self.planar else 5
        if bias.shape != (3,) or cov.shape != (p, p) or not (math.isfinite(self.offset_s)
                                                               and math.isfinite(self.yaw_rad)):
            raise InputError(f"HetNetCalibration: bias_m shape {bias.shape}, covariance shape {cov.shape}: allowed "
                             f"(3,) and ({p}, {p}) with finite offset_s and yaw_rad")
        bias.flags.writeable = False
        cov.flags.writeable = False
        object.__setattr__(self, "bias_m", bias)
        object.__setattr__(self, "covariance", cov)

    @property
    def parameters(self) -> tuple[str, ...]:
        """Names of the rows of :attr:`covariance`: offset_s, bias_x_m, bias_y_m[, bias_z_m], yaw_rad."""
        return ("offset_s", "bias_x_m", "bias_y_m") + (() if self.planar else ("bias_z_m",)) + ("yaw_rad",)

    @property
    def vector(self) -> NDArray[np.float64]:
        """The estimate in the order of :attr:`parameters`, shape (P,)."""
        b = self.bias_m[:2] if self.planar else self.bias_m
        return np.array([self.offset_s, *b, self.yaw_rad])

    @property
    def std(self) -> NDArray[np.float64]:
        """Standard deviations in the order of :attr:`parameters`, shape (P,)."""
        return np.sqrt(np.diag(self.covariance))

    def apply(self, estimate: TargetEstimate) -> TargetEstimate:
        """The other network's ``estimate`` in the reference frame and on the reference clock.

        ``position = R p_o + b``, ``velocity = R v_o``, ``t_s = t_o + dt``.  The covariances add the
        calibration's uncertainty to the rotated ones: ``R C R^T + J Sigma J^T`` (position and velocity as one
        state, their cross-covariance included) with, for the position,
        ``J = [-v, I, dR/dpsi p_o]`` (a clock error dt shifts the instant, so the target moves ``v dt``;
        without a velocity that term is left out) and, for the velocity, ``J = [0, 0, dR/dpsi v_o]`` (the
        acceleration over dt is left out).  Links and other fields are kept as they are (the links stay in
        the other network's frame).
        """
        if not isinstance(estimate, TargetEstimate):
            raise InputError(f"estimate = {estimate!r}: allowed a TargetEstimate of the other network")
        rot, d_rot = rotation_z(self.yaw_rad), _rotation_z_derivative(self.yaw_rad)
        dims = 2 if self.planar else 3
        jac = np.zeros((3, self.covariance.shape[0]))
        jac[:dims, 1:1 + dims] = np.eye(dims)
        jac[:, -1] = d_rot @ estimate.position_m
        if estimate.velocity_mps is None or estimate.cov_velocity_mps2 is None:
            cov = _symmetric(rot @ estimate.cov_position_m2 @ rot.T + jac @ self.covariance @ jac.T)
            return replace(estimate, position_m=rot @ estimate.position_m + self.bias_m, cov_position_m2=cov,
                           t_s=estimate.t_s + self.offset_s)
        # position and velocity as one state: the calibration's errors move both (the yaw turns both, the clock
        # shifts the position along the velocity), so the result has a cross-covariance even where the estimate
        # had none
        velocity = rot @ estimate.velocity_mps
        jac[:, 0] = -velocity
        jac_v = np.zeros_like(jac)
        jac_v[:, -1] = d_rot @ estimate.velocity_mps
        turn, both = np.zeros((6, 6)), np.vstack([jac, jac_v])
        turn[:3, :3] = turn[3:, 3:] = rot
        cov = _symmetric(turn @ estimate.covariance @ turn.T + both @ self.covariance @ both.T)
        return replace(estimate, position_m=rot @ estimate.position_m + self.bias_m, cov_position_m2=cov[:3, :3],
                       t_s=estimate.t_s + self.offset_s, velocity_mps=velocity, cov_velocity_mps2=cov[3:, 3:],
                       cov_position_velocity_m2ps=cov[:3, 3:])


def _symmetric(a: NDArray[np.float64]) -> NDArray[np.float64]:
    return 0.5 * (a + a.T)


# ---------------------------------------------------------------------------- reference trajectories

@dataclass(frozen=True)
class _Trajectory:
    """One target's reference estimates: times (N,), positions (N, 3), velocities (N, 3) or None, covariance
    (N, 6, 6) of (position, velocity) or (N, 3, 3) of the position."""

    t_s: NDArray[np.float64]
    position_m: NDArray[np.float64]
    velocity_mps: NDArray[np.float64] | None
    cov: NDArray[np.float64]

    def at(self, t_s: NDArray[np.float64], anchor_s: NDArray[np.float64]) -> tuple[
            NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Position (n, 3), its time derivative (n, 3) and covariance (n, 3, 3) at ``t_s``, carried from the
        reference epoch j nearest to ``anchor_s`` (the sample's own time stamp, so j does not change with dt).

        With velocities: ``p_j + d v_j + d**2 / 2 a_j`` (d = t - t_j, ``a_j`` the central difference of the
        neighbouring velocities), rate ``v_j + d a_j``; without: ``p_j + d u_j`` with ``u_j`` the central
        difference of the neighbouring positions (one-sided at the ends).  The covariance follows the same
        weights, epochs independent.  Carrying one epoch through its velocity keeps the noise of the point
        nearly uncorrelated with its time derivative, so the offset is not pulled towards the times where an
        interpolant's variance is least (a bias of interpolating between two noisy epochs).
        """
        last = self.t_s.size - 1
        j = np.clip(np.searchsorted(self.t_s, anchor_s), 1, last)
        j = np.where(np.abs(anchor_s - self.t_s[j - 1]) <= np.abs(self.t_s[j] - anchor_s), j - 1, j)
        lo, hi = np.maximum(j - 1, 0), np.minimum(j + 1, last)
        span = (self.t_s[hi] - self.t_s[lo])[:, None]
        d = (t_s - self.t_s[j])[:, None]
        cov_j = self.cov[j]
        if self.velocity_mps is None:
            u = (self.position_m[hi] - self.position_m[lo]) / span
            pos = self.position_m[j] + d * u
            w = (d / span)[:, :, None]
            # p_j enters the difference too at the ends: fold it in through (1 -+ w)
            w_j = 1.0 + np.where((lo == j)[:, None, None], -w, 0.0) + np.where((hi == j)[:, None, None], w, 0.0)
            cov = w_j**2 * cov_j + np.where((hi != j)[:, None, None], w**2 * self.cov[hi], 0.0) \
                + np.where((lo != j)[:, None, None], w**2 * self.cov[lo], 0.0)
            return pos, u, cov
        accel = (self.velocity_mps[hi] - self.velocity_mps[lo]) / span
        pos = self.position_m[j] + d * self.velocity_mps[j] + 0.5 * d**2 * accel
        rate = self.velocity_mps[j] + d * accel
        eye = np.eye(3)
        a = np.concatenate([np.broadcast_to(eye, (j.size, 3, 3)), d[:, :, None] * eye], axis=2)      # (n, 3, 6)
        cov = a @ cov_j @ a.transpose(0, 2, 1)
        w = (0.5 * d**2 / span)[:, :, None] ** 2
        cov = cov + w * (np.where((hi != j)[:, None, None], self.cov[hi, 3:, 3:], 0.0)
                         + np.where((lo != j)[:, None, None], self.cov[lo, 3:, 3:], 0.0))
        return pos, rate, cov


def _trajectory(key: str, value: Any) -> _Trajectory:
    if isinstance(value, Track):
        if value.num_states < 2:
            raise InputError(f"reference[{key!r}] has {value.num_states} states: allowed a track of at least 2")
        return _Trajectory(value.t_s, value.states[:, :3], value.states[:, 3:], value.covariances)
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else None
    if items is None or len(items) < 2 or not all(isinstance(e, TargetEstimate) for e in items):
        raise InputError(f"reference[{key!r}]: allowed a Track or a sequence of at least 2 TargetEstimates in "
                         "time order")
    t = np.array([e.t_s for e in items])
    if not np.all(np.diff(t) > 0):
        raise InputError(f"reference[{key!r}]: times t_s must increase strictly; sort the estimates by time")
    pos = np.array([e.position_m for e in items])
    if all(e.velocity_mps is not None for e in items):
        vel = np.array([e.velocity_mps for e in items])
        return _Trajectory(t, pos, vel, np.array([e.covariance for e in items]))
    return _Trajectory(t, pos, None, np.array([e.cov_position_m2 for e in items]))


def _keyed(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return {str(i): v for i, v in enumerate(value)}
    raise InputError(f"{name}: allowed a mapping target id -> estimates (or a sequence aligned by index)")


# ---------------------------------------------------------------------------- the fit

@dataclass(frozen=True)
class _Samples:
    target: NDArray[np.int64]           # (n,) index into the trajectories
    t_s: NDArray[np.float64]            # (n,) the other network's time stamps
    position_m: NDArray[np.float64]     # (n, 3) in its frame
    cov_m2: NDArray[np.float64]         # (n, 3, 3)


def _unpack(theta: NDArray[np.float64], planar: bool) -> tuple[float, NDArray[np.float64], float]:
    bias = np.zeros(3)
    bias[: 2 if planar else 3] = theta[1:-1]
    return float(theta[0]), bias, float(theta[-1])


def _predict(theta: NDArray[np.float64], samples: _Samples, trajectories: list[_Trajectory],
             planar: bool) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                                    NDArray[np.float64]]:
    """Reference positions q (n, 3), rates q' (n, 3) and covariances (n, 3, 3) at t + dt; residuals (n, 3)."""
    dt, bias, yaw = _unpack(theta, planar)
    n = samples.t_s.size
    q, rate, cov = np.empty((n, 3)), np.empty((n, 3)), np.empty((n, 3, 3))
    for k, traj in enumerate(trajectories):
        sel = samples.target == k
        if np.any(sel):
            q[sel], rate[sel], cov[sel] = traj.at(samples.t_s[sel] + dt, samples.t_s[sel])
    rot = rotation_z(yaw)
    residual = samples.position_m - (q - bias) @ rot          # row-wise R^T (q - b)
    return q, rate, cov, residual


def _whiteners(theta: NDArray[np.float64], samples: _Samples, trajectories: list[_Trajectory], planar: bool,
               dims: int) -> NDArray[np.float64]:
    """W_i with W_i S_i W_i^T = I, S_i = C_o + R^T C_ref R (the selected dims), shape (n, d, d)."""
    _, _, cov_ref, _ = _predict(theta, samples, trajectories, planar)
    rot = rotation_z(float(theta[-1]))
    total = samples.cov_m2 + rot.T @ cov_ref @ rot
    total = total[:, :dims, :dims]
    try:
        chol = np.linalg.cholesky(total)
    except np.linalg.LinAlgError as err:
        raise InputError("a combined covariance C_o + R^T C_ref R is not positive definite in the fitted "
                         f"coordinates ({'x, y' if planar else 'x, y, z'}): give estimates with variance > 0 "
                         "there, or fit planar=True for estimates located in the plane") from err
    return np.linalg.inv(chol)


def _system(theta: NDArray[np.float64], samples: _Samples, trajectories: list[_Trajectory], planar: bool,
            dims: int, whiten: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Whitened residuals (n d,) and Jacobian (n d, P) on the fixed whiteners."""
    _, bias, yaw = _unpack(theta, planar)
    q, rate, _, residual = _predict(theta, samples, trajectories, planar)
    rot, d_rot = rotation_z(yaw), _rotation_z_derivative(yaw)
    n = samples.t_s.size
    jac = np.zeros((n, 3, theta.size))
    jac[:, :, 0] = -rate @ rot                                # d/d dt of -R^T q(t + dt)
    jac[:, :, 1:1 + dims] = np.broadcast_to(rot.T[:, :dims], (n, 3, dims))   # d/db of R^T b
    jac[:, :, -1] = -(q - bias) @ d_rot                       # d/dpsi of -R^T (q - b)
    r = np.einsum("nij,nj->ni", whiten, residual[:, :dims]).reshape(-1)
    j = np.einsum("nij,njp->nip", whiten, jac[:, :dims, :]).reshape(n * dims, theta.size)
    return r, j


def _check_variation(samples: _Samples, trajectories: list[_Trajectory], dims: int) -> None:
    """Raise when the reference velocities or positions of the samples vary no more than their noise."""
    rates, rate_noise, pos, pos_noise = [], [], [], []
    for k, traj in enumerate(trajectories):
        sel = samples.target == k
        if not np.any(sel):
            continue
        q, rate, cov = traj.at(samples.t_s[sel], samples.t_s[sel])
        pos.append(q[:, :dims])
        pos_noise.append(np.trace(cov[:, :dims, :dims], axis1=1, axis2=2))
        rates.append(rate[:, :dims])
        if traj.velocity_mps is not None:
            j = np.clip(np.searchsorted(traj.t_s, samples.t_s[sel], side="right") - 1, 0, traj.t_s.size - 2)
            rate_noise.append(np.trace(traj.cov[j, 3:3 + dims, 3:3 + dims], axis1=1, axis2=2))
        else:
            step = float(np.median(np.diff(traj.t_s)))
            rate_noise.append(2 * np.trace(traj.cov[:1, :dims, :dims], axis1=1, axis2=2).repeat(sel.sum()) / step**2)
    v, p = np.concatenate(rates), np.concatenate(pos)
    v_spread = float(np.sum((v - v.mean(axis=0)) ** 2))
    p_spread = float(np.sum((p - p.mean(axis=0)) ** 2))
    v_noise, p_noise = float(np.sum(np.concatenate(rate_noise))), float(np.sum(np.concatenate(pos_noise)))
    if not v_spread > _MIN_VARIATION_RATIO * v_noise:
        raise InputError(f"the clock offset is not observable: the reference velocities of the {v.shape[0]} samples "
                         f"vary by {math.sqrt(v_spread / v.shape[0]):.3g} m/s rms, no more than their noise "
                         f"({math.sqrt(v_noise / v.shape[0]):.3g} m/s): a static target, or targets that all move "
                         "with one velocity, cannot tell a clock offset from a bias along the velocity; use "
                         "several targets moving in different directions, or turning ones")
    if not p_spread > _MIN_VARIATION_RATIO * p_noise:
        raise InputError(f"the yaw is not observable: the reference positions of the {p.shape[0]} samples spread "
                         f"by {math.sqrt(p_spread / p.shape[0]):.3g} m rms, no more than their noise "
                         f"({math.sqrt(p_noise / p.shape[0]):.3g} m); use targets spread over the area")


def _initial(samples: _Samples, trajectories: list[_Trajectory], planar: bool, dims: int) -> NDArray[np.float64]:
    """dt = 0 and the least-squares rotation and translation (Kabsch) of the reports onto the reference."""
    zero = np.zeros(2 + dims)
    q, _, _, _ = _predict(zero, samples, trajectories, planar)
    a = samples.position_m - samples.position_m.mean(axis=0)
    b = q - q.mean(axis=0)
    a[:, 2] = b[:, 2] = 0.0                                    # the yaw turns about z only
    yaw = 0.0
    if np.any(a) and np.any(b):
        rot, _ = Rotation.align_vectors(b, a)
        yaw = float(rot.as_euler("zyx")[0])
    bias = q.mean(axis=0) - rotation_z(yaw) @ samples.position_m.mean(axis=0)
    return np.array([0.0, *bias[:dims], yaw])


def estimate_calibration(reference: Mapping[str, Track | Sequence[TargetEstimate]] | Sequence[Any],
                         other: Mapping[str, Sequence[TargetEstimate]] | Sequence[Sequence[TargetEstimate]], *,
                         planar: bool = True, max_offset_s: float = 0.01,
                         max_passes: int = 5) -> HetNetCalibration:
    """Clock offset, frame bias and yaw of another network from common targets (weighted least squares).

    Model and method: see the module docstring (``p_o(t) = R(psi)^T (p(t + dt) - b) + n``).  The fit uses the
    targets present in both ``reference`` and ``other`` (same key, or same index for sequences), and the
    samples of ``other`` whose time stamp lies at least ``max_offset_s`` inside its reference trajectory's
    span (so that ``t + dt`` stays inside for every admissible dt).

    Parameters
    ----------
    reference : mapping of str to Track or sequence of TargetEstimate (or a sequence of them)
        Each common target's trajectory from the reference network: a :class:`Track` (states and 6 x 6
        covariances) or its estimates in time order (with velocities, best; without, the velocity is the
        difference of neighbouring positions, whose noise biases the offset unless the reference positions
        are much more precise than the other network's).
    other : mapping of str to sequence of TargetEstimate (or a sequence of them)
        The other network's estimates of the same targets, in its frame and time.
    planar : bool
        Fit (x, y) only: dt, b_x, b_y, psi (estimates located in a plane have no variance in z).  False fits
        b_z too, from the z coordinates.
    max_offset_s : float
        Largest admissible |dt|, s (> 0): the fit is bounded to it.  A fit that ends on the bound is flagged
        (:attr:`HetNetCalibration.offset_at_bound`) and logged as a warning.
    max_passes : int
        Fits on refreshed weights, >= 1; stops earlier when the parameters move less than 1e-3 of their
        standard deviation.

    Returns
    -------
    HetNetCalibration

    Raises
    ------
    InputError
        Bad input; no common target or fewer samples than parameters; an unobservable set-up (a single static
        target, targets that all move with one velocity, positions that do not spread, or a rank-deficient
        Jacobian): the message says which parameter cannot be determined and what to give instead.
    """
    if not isinstance(planar, bool):
        raise InputError(f"planar = {planar!r}: allowed True (fit x, y) or False (fit x, y, z)")
    if isinstance(max_offset_s, bool) or not isinstance(max_offset_s, numbers.Real) \
            or not (math.isfinite(max_offset_s) and max_offset_s > 0):
        raise InputError(f"max_offset_s = {max_offset_s!r} s: allowed a finite bound > 0 on the clock offset")
    if isinstance(max_passes, bool) or not isinstance(max_passes, numbers.Integral) or max_passes < 1:
        raise InputError(f"max_passes = {max_passes!r}: allowed a whole number >= 1")
    ref, oth = _keyed("reference", reference), _keyed("other", other)
    common = [k for k in ref if k in oth]
    if not common:
        raise InputError(f"reference ({', '.join(ref) or 'none'}) and other ({', '.join(oth) or 'none'}) share no "
                         "target: key both by the same target ids")
    trajectories, rows = [], []
    for k in common:
        traj = _trajectory(k, ref[k])
        trajectories.append(traj)
        for e in oth[k]:
            if not isinstance(e, TargetEstimate):
                raise InputError(f"other[{k!r}] holds {e!r}: allowed TargetEstimates")
            if traj.t_s[0] + max_offset_s <= e.t_s <= traj.t_s[-1] - max_offset_s:
                rows.append((len(trajectories) - 1, e.t_s, e.position_m, e.cov_position_m2))
    dims = 2 if planar else 3
    num_params = 2 + dims
    if len(rows) * dims <= num_params:
        raise InputError(f"{len(rows)} samples of the other network fall inside the reference trajectories (less "
                         f"max_offset_s = {max_offset_s} s at each end): allowed more than {num_params} residuals; "
                         "give longer overlapping windows")
    samples = _Samples(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                       np.array([r[2] for r in rows]), np.array([r[3] for r in rows]))
    _check_variation(samples, trajectories, dims)
    theta = _initial(samples, trajectories, planar, dims)
    theta[0] = 0.0
    lower = np.full(num_params, -np.inf)
    upper = np.full(num_params, np.inf)
    lower[0], upper[0] = -max_offset_s, max_offset_s
    cov = np.eye(num_params)
    at_bound = False
    for _ in range(int(max_passes)):
        whiten = _whiteners(theta, samples, trajectories, planar, dims)
        system = _LastPoint(functools.partial(_system, samples=samples, trajectories=trajectories, planar=planar,
                                              dims=dims, whiten=whiten))
        fit = optimize.least_squares(system.residual, theta, jac=system.jacobian, bounds=(lower, upper),
                                     x_scale="jac", method="trf", xtol=1e-12, ftol=1e-12)
        step = fit.x - theta
        theta = fit.x
        at_bound = bool(fit.active_mask[0] != 0)
        cov = _covariance(fit.jac)
        if np.all(np.abs(step) <= 1e-3 * np.sqrt(np.diag(cov))):
            break
    whiten = _whiteners(theta, samples, trajectories, planar, dims)
    residual, jac = _system(theta, samples, trajectories, planar, dims, whiten)
    cov = _covariance(jac)
    dt, bias, yaw = _unpack(theta, planar)
    if at_bound:
        _log.warning("calibration: the clock offset %.6g s lies on its bound max_offset_s = %g s (the data ask "
                     "for a larger offset, or the model does not hold); its covariance describes no estimate: "
                     "refit with a wider max_offset_s and longer windows, or do not use it", dt, max_offset_s)
    return HetNetCalibration(offset_s=dt, bias_m=bias, yaw_rad=yaw, covariance=cov, planar=planar,
                             chi_square=float(residual @ residual), dof=residual.size - num_params,
                             num_samples=samples.t_s.size, offset_at_bound=at_bound)


class _LastPoint:
    """Residuals and Jacobian from one evaluation of ``system(x) -> (residual, jacobian)`` per point.

    ``least_squares`` asks for the residuals and then the Jacobian at the same point: the second call reuses
    the first's evaluation (a copy of the point is the key).
    """

    def __init__(self, system: Callable[[NDArray[np.float64]], tuple[NDArray[np.float64], NDArray[np.float64]]]):
        self._system = system
        self._x: NDArray[np.float64] | None = None
        self._value: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None

    def _at(self, x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        if self._value is None or self._x is None or not np.array_equal(self._x, x):
            self._value = self._system(x)
            self._x = np.array(x, dtype=np.float64)
        return self._value

    def residual(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._at(x)[0].copy()                 # copies: the solver may scale what it is given in place

    def jacobian(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._at(x)[1].copy()


def _covariance(jac: NDArray[np.float64]) -> NDArray[np.float64]:
    """(J^T J)^-1 of the whitened Jacobian; raises where its columns are (numerically) dependent."""
    names = ("offset_s", "bias_x_m", "bias_y_m", "bias_z_m", "yaw_rad")
    names = names[:3] + names[3:4] * (jac.shape[1] == 5) + names[4:]
    scale = np.linalg.norm(jac, axis=0)
    if np.any(scale == 0):
        raise InputError(f"{', '.join(n for n, s in zip(names, scale) if s == 0)}: not observable (no residual "
                         "depends on it); give moving targets spread over the area")
    _, sv, vt = linalg.svd(jac / scale, full_matrices=False)
    if sv[-1] <= sv[0] / _MAX_CONDITION:
        null = vt[-1]
        which = [n for n, c in zip(names, null) if abs(c) > 0.2]
        raise InputError(f"the calibration is not observable: the combination of {', '.join(which)} is undetermined "
                         f"(condition number {sv[0] / max(sv[-1], 1e-300):.3g}); give several targets, moving in "
                         "different directions and spread over the area")
    inv_gram = (vt.T / sv**2) @ vt
    return np.asarray(_symmetric(inv_gram / np.outer(scale, scale)), dtype=np.float64)
