"""A manoeuvre-aware motion model: two-component Gaussian-sum process noise on the nearly-constant-velocity model.

A target flies nearly straight most of the time (white-noise acceleration of
density ``q``, m²/s³, :func:`~sdr_isac.fusion.tracking.models.ncv_transition`)
and, with prior probability ``w`` in any scan interval, manoeuvres: it then
accelerates at up to ``a`` (m/s², the target class's manoeuvre acceleration).
Over an interval ``dt`` the manoeuvre changes the velocity by about ``a dt``,
which a white-noise acceleration of density ``a² dt`` reproduces (its
velocity variance over ``dt`` is ``(a dt)²``; the rule that the velocity
changes by about ``√(q dt)`` over ``dt``: Bar-Shalom, Li & Kirubarajan,
*Estimation with Applications to Tracking and Navigation*, 2001, ch. 6).
So the predicted state is a two-component Gaussian mixture with one mean
(both models share the transition matrix ``F``)::

    P_0 = F P Fᵀ + Q(q),    P_1 = P_0 + ΔQ,    ΔQ = Q(a² dt)    (Q per axis q [[dt³/3, dt²/2], [dt²/2, dt]])

weighted ``1 - w`` and ``w``.  This is a multiple-model filter whose mode is
drawn afresh each scan (a jump-Markov chain with identical rows: the
interacting multiple model's mixing then hands every model the merged
posterior, so the IMM reduces to this filter; no mode probability is carried
from scan to scan, and a track stays a single Gaussian, which the association,
deletion and :class:`~sdr_isac.fusion.records.Track` records need).

- :class:`ManoeuvrePredictor` predicts the moment-matched Gaussian
  ``P_0 + w ΔQ`` (the gate of the association is the mixture's) and carries
  ``ΔQ`` and ``w`` in a :class:`ManoeuvrePrediction`;
- :class:`ManoeuvreExtendedKalmanUpdater` / :class:`ManoeuvreUnscentedKalmanUpdater`
  update each component with the measurement, weigh them by prior weight times
  the measurement's likelihood, and merge them by moment matching.

With ``w = 0`` or ``a = 0`` the predictor returns Stone Soup's own prediction
and the updaters Stone Soup's own update: bit-identical to the plain NCV filter.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray
from stonesoup.base import Base, Property
from stonesoup.predictor._utils import predict_lru_cache
from stonesoup.predictor.kalman import KalmanPredictor
from stonesoup.types.array import CovarianceMatrix, StateVector
from stonesoup.types.hypothesis import SingleHypothesis
from stonesoup.types.prediction import GaussianStatePrediction
from stonesoup.types.update import GaussianStateUpdate
from stonesoup.updater.kalman import ExtendedKalmanUpdater, UnscentedKalmanUpdater

from sdr_isac.fusion.tracking.models import ncv_transition

__all__ = ["ManoeuvrePrediction", "ManoeuvrePredictor", "ManoeuvreExtendedKalmanUpdater",
           "ManoeuvreUnscentedKalmanUpdater", "manoeuvre_covar"]


#: the NCV model with q = 1 m²/s³ (its Q, kept per interval, scaled by a² dt)
_UNIT_NCV = ncv_transition(1.0)


class _ManoeuvreComponent(Base):
    """The manoeuvre component of a prediction (a second base that is not a State: Stone Soup's
    ``from_state`` keeps mapping Gaussian states to its own ``GaussianStatePrediction``)."""

    manoeuvre_covar: CovarianceMatrix = Property(default=None, doc="ΔQ, the manoeuvre's extra process noise, "
                                                                   "shape (6, 6), Stone Soup order")
    manoeuvre_weight: float = Property(default=0.0, doc="w, prior probability of the manoeuvre in the interval")


class ManoeuvrePrediction(GaussianStatePrediction, _ManoeuvreComponent):
    """A predicted Gaussian ``P_0 + w ΔQ`` that remembers its manoeuvre component (``ΔQ``, ``w``).

    ``covar`` is the moment-matched covariance of the two-component mixture,
    shape (6, 6); ``P_0 = covar - w ΔQ`` and ``P_1 = P_0 + ΔQ``.
    """


def manoeuvre_covar(accel_mps2: float, dt_s: float) -> CovarianceMatrix:
    """ΔQ of a manoeuvre at ``accel_mps2`` (m/s²) over ``dt_s`` (s): NCV process noise of density a² dt, (6, 6)."""
    return CovarianceMatrix(_UNIT_NCV.covar(time_interval=timedelta(seconds=dt_s)) * (accel_mps2 ** 2 * dt_s))


class ManoeuvrePredictor(KalmanPredictor):
    """Kalman predictor of the nearly-constant-velocity model with a manoeuvre component (module docstring)."""

    accel_mps2: float = Property(default=0.0, doc="Manoeuvre acceleration a of the target class, m/s² (>= 0)")
    weight: float = Property(default=0.0, doc="Prior probability w of a manoeuvre in a scan interval (0 ... < 1)")

    @predict_lru_cache()
    def predict(self, prior: Any, timestamp: Any = None, control_input: Any = None,
                **kwargs: Any) -> GaussianStatePrediction:
        """The moment-matched prediction at ``timestamp`` (a :class:`ManoeuvrePrediction` when it manoeuvres)."""
        nominal = super().predict(prior, timestamp=timestamp, control_input=control_input, **kwargs)
        if self.weight <= 0 or self.accel_mps2 <= 0 or timestamp is None or prior.timestamp is None:
            return nominal
        dt_s = (timestamp - prior.timestamp).total_seconds()
        if dt_s <= 0:
            return nominal
        dq = manoeuvre_covar(self.accel_mps2, dt_s)
        return ManoeuvrePrediction(nominal.state_vector, CovarianceMatrix(nominal.covar + self.weight * dq),
                                   timestamp=timestamp, transition_model=self.transition_model, prior=prior,
                                   manoeuvre_covar=dq, manoeuvre_weight=self.weight)


class _MixtureUpdate:
    """Update of a :class:`ManoeuvrePrediction`: both components, weighted by their likelihoods, moment-matched."""

    def _components(self, pred: ManoeuvrePrediction, covs: list[NDArray[np.float64]], measurement: Any,
                    **kwargs: Any) -> list[tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                                             NDArray[np.float64]]]:
        """Per component with covariance ``covs[i]``: posterior mean (6, 1), covariance (6, 6), innovation (m,)
        and innovation covariance (m, m), by Stone Soup's own update (any Kalman updater)."""
        out = []
        for cov in covs:
            comp = GaussianStatePrediction(pred.state_vector, CovarianceMatrix(cov), timestamp=pred.timestamp,
                                           transition_model=pred.transition_model)
            mp = self.predict_measurement(comp, measurement_model=measurement.measurement_model)  # type: ignore[attr-defined]
            upd = super().update(SingleHypothesis(comp, measurement, measurement_prediction=mp),  # type: ignore[misc]
                                 **kwargs)
            nu = (np.asarray(measurement.state_vector, dtype=np.float64)
                  - np.asarray(mp.state_vector, dtype=np.float64)).reshape(-1)
            out.append((np.asarray(upd.state_vector, dtype=np.float64), np.asarray(upd.covar, dtype=np.float64),
                        nu, np.asarray(mp.covar, dtype=np.float64)))
        return out

    def update(self, hypothesis: Any, **kwargs: Any) -> Any:
        """The merged posterior of the hypothesis (Stone Soup's own update for a plain prediction)."""
        pred = hypothesis.prediction
        if not isinstance(pred, ManoeuvrePrediction) or pred.manoeuvre_weight <= 0:
            return super().update(hypothesis, **kwargs)  # type: ignore[misc]
        w = float(pred.manoeuvre_weight)
        dq = np.asarray(pred.manoeuvre_covar, dtype=np.float64)
        base = np.asarray(pred.covar, dtype=np.float64) - w * dq
        comps = self._components(pred, [base, base + dq], hypothesis.measurement, **kwargs)
        log_w = []
        for weight, (_, _, nu, s) in zip((1.0 - w, w), comps, strict=True):
            _, logdet = np.linalg.slogdet(2.0 * np.pi * s)
            log_w.append(math.log(weight) - 0.5 * (float(nu @ np.linalg.solve(s, nu)) + logdet))
        lw = np.array(log_w)
        probs = np.exp(lw - lw.max())
        probs /= probs.sum()
        # moment matching, as Stone Soup's gm_reduce_single (which costs 20x more on StateVectors)
        mean = probs[0] * comps[0][0] + probs[1] * comps[1][0]
        covar = np.zeros_like(comps[0][1])
        for prob, (m, c, _, _) in zip(probs, comps, strict=True):
            d = m - mean
            covar += prob * (c + d @ d.T)
        covar = 0.5 * (covar + covar.T)
        return GaussianStateUpdate(StateVector(mean), CovarianceMatrix(covar), hypothesis=hypothesis,
                                   timestamp=pred.timestamp)


class ManoeuvreExtendedKalmanUpdater(_MixtureUpdate, ExtendedKalmanUpdater):
    """Stone Soup's extended Kalman updater that also updates a :class:`ManoeuvrePrediction` (both components).

    Both components share the mean, so the predicted measurement ``h(x)`` and
    the Jacobian ``H`` are computed once; each component's update is then
    the extended Kalman filter's own arithmetic (``S = H P Hᵀ + R``,
    ``K = P Hᵀ S⁻¹``, ``P - K S Kᵀ``, symmetrised as the updater's
    ``force_symmetric_covariance``), without Stone Soup's objects per component.
    """

    def _components(self, pred: ManoeuvrePrediction, covs: list[NDArray[np.float64]], measurement: Any,
                    **kwargs: Any) -> list[tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                                             NDArray[np.float64]]]:
        if self.use_joseph_cov or kwargs:
            return super()._components(pred, covs, measurement, **kwargs)
        model = self._check_measurement_model(measurement.measurement_model)
        h = np.asarray(self._measurement_matrix(pred, model), dtype=np.float64)
        z_pred = np.asarray(model.function(pred), dtype=np.float64)
        nu = (np.asarray(measurement.state_vector, dtype=np.float64) - z_pred).reshape(-1)
        r = np.asarray(model.covar(), dtype=np.float64)
        x = np.asarray(pred.state_vector, dtype=np.float64)
        out = []
        for p in covs:
            cross = p @ h.T
            s = h @ cross + r
            gain = cross @ np.linalg.inv(s)
            post = p - gain @ s @ gain.T
            if self.force_symmetric_covariance:
                post = (post + post.T) / 2
            out.append((x + gain @ nu[:, None], post, nu, s))
        return out


class ManoeuvreUnscentedKalmanUpdater(_MixtureUpdate, UnscentedKalmanUpdater):
    """Stone Soup's unscented Kalman updater that also updates a :class:`ManoeuvrePrediction` (both components)."""
