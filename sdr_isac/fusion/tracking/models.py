"""Stone Soup models of the tracker: motion, link measurements, estimates as linear measurements.

The state is Stone Soup's order ``[x, v_x, y, v_y, z, v_z]`` (m, m/s): position
rows :data:`POSITION` = (0, 2, 4), velocity rows :data:`VELOCITY` = (1, 3, 5).
:func:`to_record_order` / :func:`from_record_order` convert to and from the
``(x, y, z, v_x, v_y, v_z)`` order of :class:`~sdr_isac.fusion.records.Track`.

Measurement functions (``../shared/REFERENCE.md`` §6), ``p`` the target's
position, ``v`` its velocity, ``s`` a monostatic node, ``t``/``r`` a bistatic
transmitter/receiver, ``a`` the receiving array's unit axis:

- monostatic: range ``||p - s||``, radial velocity ``(p - s)ᵀv / ||p - s||``
  (positive moving away), cone angle ``asin(aᵀ(p - s)/||p - s||)``;
- bistatic: range sum ``||p - t|| + ||p - r||``, its rate
  ``vᵀ[(p - t)/||p - t|| + (p - r)/||p - r||]``, cone angle at the receiver
  ``asin(aᵀ(p - r)/||p - r||)``.

The Jacobians are analytic.  At a node's own position (distance below
:data:`MIN_DISTANCE_M`) the unit vector is taken as 0, and at end-fire
(``|sin(alpha)| -> 1``) the cone angle's derivative is capped at
``1/sqrt(1 - MAX_SIN**2)``: both are points where the measurement is not
differentiable, and the caps keep the filter finite there.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from stonesoup.base import Property
from stonesoup.models.measurement.linear import LinearGaussian
from stonesoup.models.measurement.nonlinear import NonLinearGaussianMeasurement
from stonesoup.models.transition.linear import CombinedLinearGaussianTransitionModel, ConstantVelocity
from stonesoup.types.array import StateVector, StateVectors

from sdr_isac.errors import InputError
from sdr_isac.fusion.records import LinkMeasurement, TargetEstimate

__all__ = ["POSITION", "VELOCITY", "MIN_DISTANCE_M", "MAX_SIN", "MonostaticLinkModel", "BistaticLinkModel",
           "CachedTransitionModel", "ncv_transition", "link_model", "link_vector", "estimate_model", "estimate_vector",
           "to_record_order", "from_record_order"]

#: rows of the position and velocity in Stone Soup's state order
POSITION = (0, 2, 4)
VELOCITY = (1, 3, 5)
#: below this distance from a node, m, the unit vector towards the target is taken as 0
MIN_DISTANCE_M = 1e-9
#: largest |sin(alpha)| used in the cone angle's derivative (end-fire cap)
MAX_SIN = 1.0 - 1e-12
_RECORD_ORDER = np.array([0, 2, 4, 1, 3, 5])          # Stone Soup row of record element i
_STONESOUP_ORDER = np.argsort(_RECORD_ORDER)          # record row of Stone Soup element i


class CachedTransitionModel(CombinedLinearGaussianTransitionModel):
    """A combined linear Gaussian transition whose F and Q are kept per time interval.

    Scans come at a steady rate and a multi-sensor scan predicts each track
    several times over the same intervals (0 between sensors): Stone Soup's
    combined model rebuilds both block-diagonal matrices at every call.
    Callers get copies, so the kept ones never change.
    """

    def _kept(self, kind: str, kwargs: dict[str, Any]) -> Any:
        base = super().matrix if kind == "F" else super().covar
        # the constant-velocity F and Q depend on the time interval alone (Stone Soup's predictor also passes the
        # prior, which they ignore); other arguments: computed, not kept
        if "time_interval" not in kwargs or not set(kwargs) <= {"time_interval", "prior"}:
            return base(**kwargs)
        cache: dict[tuple[str, Any], Any] = self.__dict__.setdefault("_sdr_isac_cache", {})
        key = (kind, kwargs["time_interval"])
        if key not in cache:
            if len(cache) > 64:
                cache.clear()
            cache[key] = base(**kwargs)
        return cache[key].copy()

    def matrix(self, **kwargs: Any) -> NDArray[np.float64]:
        """Transition matrix F for ``time_interval``, shape (6, 6)."""
        return typing.cast(NDArray[np.float64], self._kept("F", kwargs))

    def covar(self, **kwargs: Any) -> Any:
        """Process-noise covariance Q for ``time_interval``, shape (6, 6)."""
        return self._kept("Q", kwargs)


def ncv_transition(noise_m2ps3: float) -> CombinedLinearGaussianTransitionModel:
    """Nearly-constant-velocity motion on x, y and z with acceleration density ``noise_m2ps3`` (m²/s³) each.

    A :class:`CachedTransitionModel` of three ``ConstantVelocity`` models; per axis
    ``Q = q [[dt³/3, dt²/2], [dt²/2, dt]]``.
    """
    return CachedTransitionModel([ConstantVelocity(noise_m2ps3) for _ in range(3)])


def to_record_order(vector: NDArray[np.float64], covar: NDArray[np.float64]) -> tuple[NDArray[np.float64],
                                                                                      NDArray[np.float64]]:
    """Stone Soup ``[x, vx, y, vy, z, vz]`` -> record ``(x, y, z, vx, vy, vz)``: shapes (6,), (6, 6), float64."""
    x = np.asarray(vector, dtype=np.float64).reshape(6)[_RECORD_ORDER]
    p = np.asarray(covar, dtype=np.float64)[np.ix_(_RECORD_ORDER, _RECORD_ORDER)]
    return x, 0.5 * (p + p.T)


def from_record_order(vector: NDArray[np.float64], covar: NDArray[np.float64]) -> tuple[NDArray[np.float64],
                                                                                        NDArray[np.float64]]:
    """Record ``(x, y, z, vx, vy, vz)`` -> Stone Soup ``[x, vx, y, vy, z, vz]``: shapes (6,), (6, 6), float64."""
    x = np.asarray(vector, dtype=np.float64).reshape(6)[_STONESOUP_ORDER]
    p = np.asarray(covar, dtype=np.float64)[np.ix_(_STONESOUP_ORDER, _STONESOUP_ORDER)]
    return x, p


def _columns(state: Any) -> NDArray[np.float64]:
    """The state vector(s) of ``state`` as float64, shape (6, n)."""
    sv = getattr(state, "state_vector", state)
    return np.asarray(sv, dtype=np.float64).reshape(6, -1)


def _unit(d: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Unit vectors (3, n) of the columns of ``d`` (0 where shorter than MIN_DISTANCE_M) and their lengths (n,)."""
    dist = np.sqrt(np.sum(d * d, axis=0))
    safe = np.where(dist > MIN_DISTANCE_M, dist, np.inf)
    return d / safe, dist


def _unit_jacobian(u: NDArray[np.float64], dist: float) -> NDArray[np.float64]:
    """d u / d p for u = d/||d||: (I - u uᵀ)/||d||, shape (3, 3) (0 at the node itself)."""
    if dist <= MIN_DISTANCE_M:
        return np.zeros((3, 3))
    return (np.eye(3) - np.outer(u, u)) / dist


class _LinkModel(NonLinearGaussianMeasurement):
    """Common part of the link models: state size 6, mapping of the position, noise, optional cone angle."""

    ndim_state: int = Property(default=6, doc="Number of state dimensions (6)")
    mapping: Sequence[int] = Property(default=POSITION, doc="Rows of the position in the state")
    array_axis: StateVector | None = Property(default=None, doc="Unit axis of the receiving array, shape (3, 1)")

    @property
    def ndim_meas(self) -> int:
        """2 (range, rate) or 3 (range, rate, cone angle)."""
        return 2 if self.array_axis is None else 3

    def _geometry(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        raise NotImplementedError

    def function(self, state: Any, noise: Any = False, **kwargs: Any) -> StateVector | StateVectors:
        """The noise-free (or noisy) measurement of the state(s), shape (ndim_meas, n)."""
        out = self._geometry(_columns(state))
        if isinstance(noise, bool) or noise is None:
            if noise:
                out = out + np.asarray(self.rvs(num_samples=out.shape[1], **kwargs)).reshape(out.shape)
        else:
            out = out + np.asarray(noise, dtype=np.float64).reshape(out.shape[0], -1)
        return StateVector(out) if out.shape[1] == 1 else StateVectors(out)

    def _angle(self, u_r: NDArray[np.float64]) -> NDArray[np.float64]:
        """Cone angle asin(aᵀu) of the unit vectors ``u_r`` (3, n) from the receiver, shape (1, n), rad."""
        axis = np.asarray(self.array_axis, dtype=np.float64).reshape(3)
        return np.arcsin(np.clip(axis @ u_r, -1.0, 1.0))[None, :]

    def _angle_row(self, u_r: NDArray[np.float64], dist_r: float) -> NDArray[np.float64]:
        """d alpha / d p, shape (3,): aᵀ (I - u uᵀ)/||d|| / cos(alpha), end-fire capped."""
        axis = np.asarray(self.array_axis, dtype=np.float64).reshape(3)
        s = float(np.clip(axis @ u_r, -MAX_SIN, MAX_SIN))
        return (axis @ _unit_jacobian(u_r, dist_r)) / np.sqrt(1.0 - s * s)


class MonostaticLinkModel(_LinkModel):
    """A monostatic link at ``node_position``: range, radial velocity (positive away) and, with an axis, cone angle.

    Measurement shape (2, 1) or (3, 1): m, m/s, rad.  Noise: ``noise_covar``
    (the link's CRB, :attr:`LinkMeasurement.covariance`).
    """

    node_position: StateVector = Property(doc="Position of the node, m, shape (3, 1)")

    def _geometry(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        d = x[POSITION, :] - np.asarray(self.node_position, dtype=np.float64).reshape(3, 1)
        u, dist = _unit(d)
        rows = [dist[None, :], np.sum(u * x[VELOCITY, :], axis=0)[None, :]]
        if self.array_axis is not None:
            rows.append(self._angle(u))
        return np.vstack(rows)

    def jacobian(self, state: Any, **kwargs: Any) -> NDArray[np.float64]:
        """d h / d state at the state, shape (ndim_meas, 6), Stone Soup order."""
        x = _columns(state)[:, 0]
        p, v = x[list(POSITION)], x[list(VELOCITY)]
        d = p - np.asarray(self.node_position, dtype=np.float64).reshape(3)
        u3, dist3 = _unit(d[:, None])
        u, dist = u3[:, 0], float(dist3[0])
        jac = np.zeros((self.ndim_meas, 6))
        jac[0, list(POSITION)] = u
        jac[1, list(POSITION)] = v @ _unit_jacobian(u, dist)
        jac[1, list(VELOCITY)] = u
        if self.array_axis is not None:
            jac[2, list(POSITION)] = self._angle_row(u, dist)
        return jac


class BistaticLinkModel(_LinkModel):
    """A bistatic link ``tx_position`` -> target -> ``rx_position``: range sum, its rate, cone angle at the receiver.

    Measurement shape (2, 1) or (3, 1): m, m/s, rad.  The range sum is the
    geometric one (a measured sum carrying a tx-rx clock offset must be
    referenced to the direct path first, REFERENCE.md §6).
    """

    tx_position: StateVector = Property(doc="Position of the transmitter, m, shape (3, 1)")
    rx_position: StateVector = Property(doc="Position of the receiver, m, shape (3, 1)")

    def _geometry(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        p, v = x[POSITION, :], x[VELOCITY, :]
        d_t = p - np.asarray(self.tx_position, dtype=np.float64).reshape(3, 1)
        d_r = p - np.asarray(self.rx_position, dtype=np.float64).reshape(3, 1)
        u_t, dist_t = _unit(d_t)
        u_r, dist_r = _unit(d_r)
        rows = [(dist_t + dist_r)[None, :], np.sum((u_t + u_r) * v, axis=0)[None, :]]
        if self.array_axis is not None:
            rows.append(self._angle(u_r))
        return np.vstack(rows)

    def jacobian(self, state: Any, **kwargs: Any) -> NDArray[np.float64]:
        """d h / d state at the state, shape (ndim_meas, 6), Stone Soup order."""
        x = _columns(state)[:, 0]
        p, v = x[list(POSITION)], x[list(VELOCITY)]
        d_t = p - np.asarray(self.tx_position, dtype=np.float64).reshape(3)
        d_r = p - np.asarray(self.rx_position, dtype=np.float64).reshape(3)
        ut3, dt3 = _unit(d_t[:, None])
        ur3, dr3 = _unit(d_r[:, None])
        u_t, dist_t, u_r, dist_r = ut3[:, 0], float(dt3[0]), ur3[:, 0], float(dr3[0])
        jac = np.zeros((self.ndim_meas, 6))
        jac[0, list(POSITION)] = u_t + u_r
        jac[1, list(POSITION)] = v @ (_unit_jacobian(u_t, dist_t) + _unit_jacobian(u_r, dist_r))
        jac[1, list(VELOCITY)] = u_t + u_r
        if self.array_axis is not None:
            jac[2, list(POSITION)] = self._angle_row(u_r, dist_r)
        return jac


def link_model(link: LinkMeasurement) -> MonostaticLinkModel | BistaticLinkModel:
    """The measurement model of a placed link, its noise the link's CRB covariance (2, 2) or (3, 3).

    Raises
    ------
    InputError
        The link has no node positions (``tx_position_m``/``rx_position_m``
        None): place it first with :meth:`LinkMeasurement.placed`.
    """
    if not isinstance(link, LinkMeasurement):
        raise InputError(f"link = {type(link).__name__}: allowed a LinkMeasurement")
    if link.tx_position_m is None or link.rx_position_m is None:
        missing = "tx_position_m" if link.tx_position_m is None else "rx_position_m"
        raise InputError(f"{missing} = None (link tx={link.tx} rx={link.rx}): allowed a node position, shape (3,) m; "
                         "place the link with LinkMeasurement.placed(ids, positions_m) before tracking")
    axis = None if link.array_axis is None else StateVector(link.array_axis)
    if link.monostatic:
        return MonostaticLinkModel(noise_covar=link.covariance, node_position=StateVector(link.rx_position_m),
                                   array_axis=axis)
    return BistaticLinkModel(noise_covar=link.covariance, tx_position=StateVector(link.tx_position_m),
                             rx_position=StateVector(link.rx_position_m), array_axis=axis)


def link_vector(link: LinkMeasurement) -> StateVector:
    """The link's measurement vector (range, rate[, cone angle]), shape (2, 1) or (3, 1)."""
    values = [link.range_m, link.rate_mps]
    if link.cone_angle_rad is not None:
        values.append(link.cone_angle_rad)
    return StateVector(values)


def _floored(cov: NDArray[np.float64], floor: float) -> NDArray[np.float64]:
    """``cov`` with each diagonal entry raised to at least ``floor`` (adds a PSD diagonal)."""
    diag = np.diag(cov)
    return cov + np.diag(np.maximum(floor - diag, 0.0))


def estimate_model(estimate: TargetEstimate, variance_floor: float) -> LinearGaussian:
    """A linear measurement of position (and velocity, where the estimate has one), Stone Soup order mapping.

    Noise: the estimate's :attr:`~sdr_isac.fusion.records.TargetEstimate.covariance` (position, and velocity
    with the cross-covariance of the two where the estimate has them), each diagonal entry floored at
    ``variance_floor`` (m², read (m/s)² for the velocity): a planar estimate's height has variance 0 and would
    make the innovation covariance singular.
    """
    cov = _floored(estimate.covariance, variance_floor)
    mapping = POSITION if cov.shape == (3, 3) else POSITION + VELOCITY
    return LinearGaussian(ndim_state=6, mapping=mapping, noise_covar=cov)


def estimate_vector(estimate: TargetEstimate) -> StateVector:
    """Position (and velocity) of the estimate, shape (3, 1) or (6, 1), matching :func:`estimate_model`."""
    if estimate.velocity_mps is None:
        return StateVector(estimate.position_m)
    return StateVector(np.concatenate([estimate.position_m, estimate.velocity_mps]))
