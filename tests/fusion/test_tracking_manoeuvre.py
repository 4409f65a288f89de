"""A manoeuvring UAV keeps one track through sharp turns, with errors consistent with its covariance.

Truth from kinematics: constant speed, straight legs joined by coordinated
turns at a constant lateral acceleration (arcs of radius v²/a), integrated in
closed form.  Measurements: position estimates with a known covariance, drawn
with a seeded generator.  Consistency: the position NEES against the
chi-square distribution of 3 degrees of freedom (Bar-Shalom et al. 2001, §5.4).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2

from sdr_isac.config.tracking import TrackingConfig
from sdr_isac.errors import ConfigError
from sdr_isac.fusion.records import LinkMeasurement, TargetEstimate
from sdr_isac.fusion.tracking import Tracker

DT_S = 0.2
SPEED_MPS = 20.0
LATERAL_MPS2 = 10.0                 # a 1 g coordinated turn: radius 40 m at 20 m/s
ALTITUDE_M = 60.0
#: (straight leg s, then turn rad; positive: left)
LEGS = ((4.0, math.pi / 2), (3.0, -2.0 * math.pi / 3), (3.0, math.pi / 2), (4.0, 0.0))
#: the estimates' covariance, m²: 0.5 m horizontal, correlated, 1 m vertical
COV_M2 = np.array([[0.25, 0.10, 0.0], [0.10, 0.25, 0.0], [0.0, 0.0, 1.0]])


def flight(dt_s: float = DT_S) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times (T,), positions (T, 3) m and velocities (T, 3) m/s of the waypoint flight (closed-form arcs)."""
    rate = LATERAL_MPS2 / SPEED_MPS                                    # turn rate, rad/s
    segments = []
    for straight_s, turn_rad in LEGS:
        segments.append((straight_s, 0.0))
        if turn_rad:
            segments.append((abs(turn_rad) / rate, math.copysign(rate, turn_rad)))
    t_s = np.arange(0.0, sum(s for s, _ in segments), dt_s)
    pos, vel = np.zeros((t_s.size, 3)), np.zeros((t_s.size, 3))
    for i, t in enumerate(t_s):
        x = y = heading = 0.0
        left = float(t)
        for dur, om in segments:
            s = min(left, dur)
            if om == 0.0:
                x, y = x + SPEED_MPS * s * math.cos(heading), y + SPEED_MPS * s * math.sin(heading)
            else:
                x += SPEED_MPS / om * (math.sin(heading + om * s) - math.sin(heading))
                y -= SPEED_MPS / om * (math.cos(heading + om * s) - math.cos(heading))
                heading += om * s
            left -= s
            if left <= 0.0:
                break
        pos[i] = (x, y, ALTITUDE_M)
        vel[i] = (SPEED_MPS * math.cos(heading), SPEED_MPS * math.sin(heading), 0.0)
    return t_s, pos, vel


def test_the_truth_is_the_physics_it_claims():
    """Speed constant; the acceleration (second differences) is 0 on the legs and the lateral 1 g in the turns."""
    t, pos, vel = flight(0.01)
    np.testing.assert_allclose(np.linalg.norm(vel, axis=1), SPEED_MPS, rtol=1e-12)
    np.testing.assert_allclose(np.diff(pos, axis=0) / 0.01, 0.5 * (vel[1:] + vel[:-1]), atol=0.01)
    acc = np.linalg.norm(np.diff(pos, 2, axis=0), axis=1) / 0.01**2
    assert acc.max() == pytest.approx(LATERAL_MPS2, rel=0.01)
    assert np.mean(acc > 0.5 * LATERAL_MPS2) > 0.3                     # sharp turns, a good part of the flight


def fly(cfg: TrackingConfig, num_runs: int) -> tuple[list[set[str]], np.ndarray, int]:
    """Per run the ids of the confirmed track nearest the truth; per step the run-mean position NEES; gaps."""
    t_s, pos, _ = flight()
    chol = np.linalg.cholesky(COV_M2)
    ids: list[set[str]] = []
    nees = np.zeros(t_s.size)
    gaps = 0
    for run in range(num_runs):
        rng = np.random.default_rng(500 + run)
        tracker = Tracker(cfg)
        seen: set[str] = set()
        for k, t in enumerate(t_s):
            z = pos[k] + chol @ rng.standard_normal(3)
            out = [trk for trk in tracker.step(float(t), [TargetEstimate(z, COV_M2, t_s=float(t))])
                   if trk.status == "confirmed"]
            if not out:
                gaps += k >= 2                                        # confirmed at the 2nd scan (2 of 3)
                nees[k] = math.inf if k >= 2 else nees[k]
                continue
            trk = min(out, key=lambda o: float(np.linalg.norm(o.states[-1, :3] - pos[k])))
            seen.add(trk.track_id)
            err = trk.states[-1, :3] - pos[k]
            nees[k] += float(err @ np.linalg.solve(trk.covariances[-1][:3, :3], err)) / num_runs
        ids.append(seen)
    return ids, nees, gaps


def check_flight(cfg: TrackingConfig) -> None:
    num_runs = 10
    ids, nees, gaps = fly(cfg, num_runs)
    steps = nees[5:]                                                  # after the start-up transient
    low, high = chi2.ppf([0.005, 0.995], 3 * num_runs) / num_runs
    inside = float(np.mean((steps > low) & (steps < high)))
    print(f"ids per run {[len(s) for s in ids]}; gaps {gaps}; run-mean NEES over steps {np.mean(steps):.2f} "
          f"(99 % interval of one step {low:.2f} ... {high:.2f}); steps inside {inside:.2f}")
    assert [len(s) for s in ids] == [1] * num_runs, "one track id through every turn"
    assert gaps == 0, "never without a confirmed track"
    # each step's mean over the runs: mostly inside its 99 % chi-square interval (steps are correlated)
    assert inside > 0.9
    assert low < float(np.mean(steps)) < high


@pytest.mark.parametrize("association, flt", [("gnn", "ekf"), ("jpda", "ekf"), ("gnn", "ukf")])
def test_a_uav_keeps_one_track_through_1g_turns_with_consistent_errors(association, flt):
    """A manoeuvre acceleration of 2 g: one id, no gap, NEES within the chi-square bound through 1 g turns."""
    check_flight(TrackingConfig(target_class="uav", association=association, filter=flt, manoeuvre_uav_mps2=20.0))


def test_without_the_manoeuvre_component_the_same_flight_fragments():
    """The plain NCV filter (the default, and the tracker before the manoeuvre model) loses the track in the
    turns."""
    assert TrackingConfig().manoeuvre_uav_mps2 == 0.0
    ids, _, gaps = fly(TrackingConfig(target_class="uav"), 10)
    assert max(len(run) for run in ids) > 1 or gaps > 0, ids          # a second id, or a moment without a track


def test_manoeuvre_off_is_the_plain_filter_bit_for_bit():
    """Acceleration 0 or weight 0: the same states and covariances as a tracker whose predictor and updater are
    Stone Soup's own plain ones (the component is skipped, not zeroed), for each association and filter."""
    from stonesoup.predictor.kalman import KalmanPredictor
    from stonesoup.updater.kalman import ExtendedKalmanUpdater, UnscentedKalmanUpdater

    from sdr_isac.fusion.tracking.models import ncv_transition

    t_s, pos, _ = flight()
    for association, flt in (("gnn", "ekf"), ("jpda", "ekf"), ("gnn", "ukf")):
        outs = []
        for cfg, plain in ((TrackingConfig(target_class="uav", association=association, filter=flt), True),
                           (TrackingConfig(target_class="uav", association=association, filter=flt,
                                           manoeuvre_uav_mps2=20.0, manoeuvre_probability=0.0), False),
                           (TrackingConfig(target_class="uav", association=association, filter=flt), False)):
            tracker = Tracker(cfg)
            if plain:
                tracker._predictor = KalmanPredictor(ncv_transition(cfg.noise_m2ps3))
                tracker._updater = (UnscentedKalmanUpdater if flt == "ukf" else ExtendedKalmanUpdater)(
                    force_symmetric_covariance=True)
            rng = np.random.default_rng(7)
            for k in range(40):
                tracker.step(float(t_s[k]), [TargetEstimate(pos[k] + rng.normal(0, 0.5, 3), COV_M2,
                                                            t_s=float(t_s[k]))])
            outs.append(tracker.tracks())
        for other in outs[1:]:
            assert len(other) == len(outs[0]) >= 1
            for a, b in zip(outs[0], other, strict=True):
                np.testing.assert_array_equal(a.states, b.states)
                np.testing.assert_array_equal(a.covariances, b.covariances)


@pytest.mark.parametrize("field, value", [("manoeuvre_uav_mps2", -1.0), ("manoeuvre_vehicle_mps2", math.inf),
                                          ("manoeuvre_uav_mps2", math.nan), ("manoeuvre_probability", 1.0),
                                          ("manoeuvre_probability", -0.1), ("manoeuvre_uav_mps2", 1e5)])
def test_manoeuvre_config_bounds_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        TrackingConfig(**{field: value})


def test_manoeuvre_acceleration_of_the_class():
    cfg = TrackingConfig(manoeuvre_vehicle_mps2=3.0, manoeuvre_uav_mps2=15.0)
    assert cfg.manoeuvre_mps2 == 3.0
    assert TrackingConfig(target_class="uav", manoeuvre_uav_mps2=15.0).manoeuvre_mps2 == 15.0


def test_one_scan_of_the_mixture_against_numpy():
    """Second scan of a track: predict both components, update, weigh by likelihood, moment-match (numpy)."""
    q, a, w, dt = 5.0, 20.0, 0.3, 0.2
    cfg = TrackingConfig(target_class="uav", noise_uav_m2ps3=q, manoeuvre_uav_mps2=a, manoeuvre_probability=w)
    tracker = Tracker(cfg)
    first = tracker.step(0.0, [TargetEstimate(np.array([10.0, -5.0, 60.0]), COV_M2, t_s=0.0)])[0]
    z = np.array([11.5, -4.0, 60.5])                      # 1.8 m off: the manoeuvre component matters
    second = tracker.step(dt, [TargetEstimate(z, COV_M2, t_s=dt)])[0]
    x, p = first.states[-1], first.covariances[-1]        # record order (x, y, z, vx, vy, vz)
    eye = np.eye(3)
    f = np.block([[eye, dt * eye], [0 * eye, eye]])
    q_unit = np.block([[dt**3 / 3 * eye, dt**2 / 2 * eye], [dt**2 / 2 * eye, dt * eye]])
    h = np.hstack([eye, 0 * eye])
    p0 = f @ p @ f.T + q * q_unit
    means, covs, logs = [], [], []
    for weight, pk in ((1 - w, p0), (w, p0 + a**2 * dt * q_unit)):
        s = h @ pk @ h.T + COV_M2
        k = pk @ h.T @ np.linalg.inv(s)
        nu = z - h @ f @ x
        means.append(f @ x + k @ nu)
        covs.append(pk - k @ s @ k.T)
        logs.append(math.log(weight) - 0.5 * (nu @ np.linalg.solve(s, nu) + np.linalg.slogdet(2 * np.pi * s)[1]))
    prob = np.exp(np.array(logs) - max(logs))
    prob /= prob.sum()
    mean = prob[0] * means[0] + prob[1] * means[1]
    cov = sum(pr * (c + np.outer(m - mean, m - mean)) for pr, m, c in zip(prob, means, covs, strict=True))
    assert 0.05 < prob[1] < 0.95                           # both components carry weight here
    np.testing.assert_allclose(second.states[-1], mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(second.covariances[-1], cov, rtol=1e-7, atol=1e-9)


LINK_IDS = ("n0", "n1", "n2")
LINK_NODES = np.array([[-100.0, -100.0, 20.0], [250.0, -50.0, 25.0], [100.0, 250.0, 30.0]])
#: range (m²), radial velocity ((m/s)²) and, at n0, cone angle (rad²) variances of the monostatic links
LINK_VAR = (0.25, 0.01, 1e-5)


def link_of(p: np.ndarray, v: np.ndarray, node: int, rng: np.random.Generator) -> LinkMeasurement:
    """A monostatic link at ``node`` of the target at ``p`` moving at ``v``, noise drawn from its variances."""
    d = p - LINK_NODES[node]
    u = d / np.linalg.norm(d)
    n = rng.standard_normal(3)
    extra: dict = {}
    if node == 0:
        axis = np.array([0.0, 1.0, 0.0])
        extra = {"cone_angle_rad": math.asin(float(u @ axis)) + n[2] * math.sqrt(LINK_VAR[2]),
                 "var_cone_angle_rad2": LINK_VAR[2], "array_axis": axis}
    return LinkMeasurement(node, node, float(np.linalg.norm(d) + n[0] * math.sqrt(LINK_VAR[0])),
                           float(u @ v + n[1] * math.sqrt(LINK_VAR[1])), LINK_VAR[0], LINK_VAR[1], 10.0,
                           **extra).placed(LINK_IDS, LINK_NODES)


def test_links_follow_the_turns_with_one_track_and_consistent_errors():
    """The non-linear (EKF) update of both components: three monostatic links per scan after a first estimate."""
    t_s, pos, vel = flight()
    num_runs = 6
    nees = np.zeros(t_s.size)
    for run in range(num_runs):
        rng = np.random.default_rng(900 + run)
        tracker = Tracker(TrackingConfig(target_class="uav", manoeuvre_uav_mps2=20.0))
        tracker.step(0.0, [TargetEstimate(pos[0] + rng.normal(0.0, 0.5, 3), 0.25 * np.eye(3), t_s=0.0,
                                          velocity_mps=vel[0] + rng.normal(0.0, 1.0, 3),
                                          cov_velocity_mps2=np.eye(3))])
        for k in range(1, t_s.size):
            out = tracker.step(float(t_s[k]), [link_of(pos[k], vel[k], n, rng) for n in range(3)])
            assert [trk.track_id for trk in out] == ["1"], f"run {run}, t = {t_s[k]:.1f} s: {len(out)} tracks"
            err = np.concatenate([out[0].states[-1, :3] - pos[k]])
            nees[k] += float(err @ np.linalg.solve(out[0].covariances[-1][:3, :3], err)) / num_runs
    # upper bounds only: on the straight legs the truth has no acceleration at all, so any process noise makes
    # the filter conservative there (the plain NCV filter's NEES is as low); what must not happen is an error
    # larger than the covariance claims
    steps = nees[5:]
    high = chi2.ppf(0.995, 3 * num_runs) / num_runs
    below = float(np.mean(steps < high))
    print(f"links: run-mean NEES over steps {np.mean(steps):.2f} (99.5 % bound of one step {high:.2f}); "
          f"steps below {below:.2f}")
    assert below > 0.95
    assert float(np.mean(steps)) < chi2.ppf(0.995, 3 * num_runs * steps.size) / (num_runs * steps.size)


@pytest.mark.parametrize("node", [0, 1])
def test_the_ekf_shortcut_equals_stone_soups_update_of_each_component(node):
    """The extended Kalman updater's numpy path (h and H once) against Stone Soup's own update per component."""
    from datetime import datetime, timedelta

    from stonesoup.types.array import StateVector
    from stonesoup.types.detection import Detection
    from stonesoup.types.hypothesis import SingleHypothesis
    from stonesoup.types.state import GaussianState

    from sdr_isac.fusion.tracking.manoeuvre import ManoeuvreExtendedKalmanUpdater, ManoeuvrePredictor, _MixtureUpdate
    from sdr_isac.fusion.tracking.models import link_model, link_vector, ncv_transition

    t0 = datetime(2000, 1, 1)
    rng = np.random.default_rng(3)
    prior = GaussianState(StateVector([30.0, 15.0, 40.0, -10.0, 60.0, 0.5]), np.diag([0.3, 2.0, 0.3, 2.0, 1.0, 0.5]),
                          timestamp=t0)
    pred = ManoeuvrePredictor(ncv_transition(5.0), accel_mps2=20.0, weight=0.3).predict(
        prior, timestamp=t0 + timedelta(seconds=0.2))
    truth = np.array([33.5, 38.5, 60.2]), np.array([17.0, -8.0, 0.4])
    link = link_of(*truth, node, rng)
    det = Detection(link_vector(link), timestamp=pred.timestamp, measurement_model=link_model(link))
    upd = ManoeuvreExtendedKalmanUpdater(force_symmetric_covariance=True)
    dq = np.asarray(pred.manoeuvre_covar)
    covs = [np.asarray(pred.covar) - 0.3 * dq, np.asarray(pred.covar) + 0.7 * dq]
    fast = upd._components(pred, covs, det)
    slow = _MixtureUpdate._components(upd, pred, covs, det)
    for f, s in zip(fast, slow, strict=True):
        for a, b in zip(f, s, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    merged = upd.update(SingleHypothesis(pred, det))
    assert np.all(np.linalg.eigvalsh(np.asarray(merged.covar)) > 0)
