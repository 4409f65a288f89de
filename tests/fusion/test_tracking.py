"""The Stone Soup tracker: models against finite differences, NEES consistency, OSPA/GOSPA, life cycle, handover."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.stats import chi2

from sdr_isac.config.tracking import TrackingConfig
from sdr_isac.errors import ConfigError, InputError
from sdr_isac.fusion.records import LinkMeasurement, TargetEstimate, Track
from sdr_isac.fusion.tracking import Tracker, link_model
from sdr_isac.fusion.tracking.metrics import position_distances
from sdr_isac.fusion.tracking.models import MIN_DISTANCE_M, from_record_order, to_record_order

IDS = ("bs0", "bs1", "bs2", "bs3")
NODES = np.array([[0.0, -300.0, 10.0], [300.0, 0.0, 25.0], [-250.0, 200.0, 40.0], [100.0, 300.0, 15.0]])


# ---- helpers -------------------------------------------------------------------
def ncv_step(x: np.ndarray, dt: float, q: float, rng: np.random.Generator) -> np.ndarray:
    """One step of nearly-constant-velocity truth (record order x, y, z, vx, vy, vz), noise of density q."""
    cov = q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
    out = x.copy()
    for axis in range(3):
        w = rng.multivariate_normal(np.zeros(2), cov)
        out[axis] = x[axis] + dt * x[axis + 3] + w[0]
        out[axis + 3] = x[axis + 3] + w[1]
    return out


def truth_link(x: np.ndarray, tx: int, rx: int, var: tuple[float, float, float | None], axis: np.ndarray | None,
               rng: np.random.Generator | None, snr: float = 10.0) -> LinkMeasurement:
    """A placed link of the target state ``x`` (record order), noise drawn from its variances (none without rng)."""
    p, v = x[:3], x[3:]
    d_t, d_r = p - NODES[tx], p - NODES[rx]
    u_t, u_r = d_t / np.linalg.norm(d_t), d_r / np.linalg.norm(d_r)
    if tx == rx:
        r, rate = np.linalg.norm(d_r), u_r @ v
    else:
        r, rate = np.linalg.norm(d_t) + np.linalg.norm(d_r), (u_t + u_r) @ v
    angle = None if axis is None else math.asin(float(u_r @ axis))
    noise = rng.normal(0.0, 1.0, 3) if rng is not None else np.zeros(3)
    fields: dict = {}
    if axis is not None:
        assert var[2] is not None and angle is not None
        fields = {"cone_angle_rad": float(np.clip(angle + noise[2] * math.sqrt(var[2]), -math.pi / 2, math.pi / 2)),
                  "var_cone_angle_rad2": var[2], "array_axis": axis}
    link = LinkMeasurement(tx, rx, float(r + noise[0] * math.sqrt(var[0])), float(rate + noise[1] * math.sqrt(var[1])),
                           var[0], var[1], snr, **fields)
    return link.placed(IDS, NODES)


def estimate(x: np.ndarray, sd_m: float, sd_mps: float | None, rng: np.random.Generator,
             nodes: tuple[str, ...] = ("bs0",)) -> TargetEstimate:
    """A target estimate of ``x`` with noise drawn from its (diagonal) covariances."""
    pos = x[:3] + rng.normal(0.0, sd_m, 3)
    if sd_mps is None:
        return TargetEstimate(pos, sd_m**2 * np.eye(3), nodes=nodes)
    return TargetEstimate(pos, sd_m**2 * np.eye(3), nodes=nodes, velocity_mps=x[3:] + rng.normal(0.0, sd_mps, 3),
                          cov_velocity_mps2=sd_mps**2 * np.eye(3))


def central_jacobian(model, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Central finite differences of the model's function at the Stone Soup state ``x`` (6,), steps ``h`` (6,)."""
    cols = []
    for i in range(6):
        e = np.zeros(6)
        e[i] = h[i]
        plus = np.asarray(model.function((x + e)[:, None]), dtype=float).ravel()
        minus = np.asarray(model.function((x - e)[:, None]), dtype=float).ravel()
        cols.append((plus - minus) / (2 * h[i]))
    return np.stack(cols, axis=1)


# ---- measurement models ---------------------------------------------------------
finite = st.floats(-1e3, 1e3, allow_nan=False)
scale = st.sampled_from([1e-2, 1.0, 1e3, 1e6])


@st.composite
def geometries(draw):
    """A target state, a monostatic or bistatic link geometry, maybe an array axis; distances 1e-2 ... 1e6 m."""
    s = draw(scale)
    p = np.array([draw(finite), draw(finite), draw(finite)]) * s / 1e3
    v = np.array([draw(st.sampled_from([0.0, 1.0, 300.0])) * draw(st.floats(-1, 1)) for _ in range(3)])
    tx = np.array([draw(finite), draw(finite), draw(finite)]) * s / 1e3
    rx = tx if draw(st.booleans()) else np.array([draw(finite), draw(finite), draw(finite)]) * s / 1e3
    axis = None
    if draw(st.booleans()):
        raw = np.array([draw(st.floats(-1, 1)), draw(st.floats(-1, 1)), 0.0])
        if np.linalg.norm(raw) > 1e-3:
            axis = raw / np.linalg.norm(raw)
    return p, v, tx, rx, axis


def make_link(p, v, tx, rx, axis, var_angle: float = 1e-4) -> LinkMeasurement:
    nodes = np.vstack([tx, rx])
    mono = bool(np.array_equal(tx, rx))
    fields = {} if axis is None else {"cone_angle_rad": 0.0, "var_cone_angle_rad2": var_angle, "array_axis": axis}
    link = LinkMeasurement(0, 0 if mono else 1, 1.0, 0.0, 1.0, 1.0, 10.0, **fields)
    return link.placed(["t", "r"], nodes)


@settings(max_examples=300, deadline=None)
@given(geometries())
@example((np.zeros(3), np.zeros(3), np.array([0.0, 0.0, -512.54940266]), np.array([0.0, 0.0, 167.625]), None))
def test_link_jacobians_match_central_differences(geometry):
    p, v, tx, rx, axis = geometry
    model = link_model(make_link(p, v, tx, rx, axis))
    d_min = min(np.linalg.norm(p - tx), np.linalg.norm(p - rx))
    # at a node: not differentiable (see the next test).  Near one the step (1e-5 d_min) must stay large against
    # the rounding of the ranges themselves (eps x the geometry's size): within 1e-4 of the size of the geometry
    # a central difference loses more than the tolerance (a target 0.1 mm from tx with rx 1 km away: 2.5e-5)
    if d_min < 1e-4 * max(1.0, np.abs(p).max(), np.abs(tx).max(), np.abs(rx).max()):
        return
    if axis is not None:
        u = (p - rx) / np.linalg.norm(p - rx)
        if abs(u @ axis) > 0.999:
            return                                      # end-fire: the angle's derivative is capped there
    x = np.array([p[0], v[0], p[1], v[1], p[2], v[2]])
    h = np.array([d_min, 1.0, d_min, 1.0, d_min, 1.0]) * 1e-5
    numeric = central_jacobian(model, x, h)
    analytic = model.jacobian(x[:, None])
    assert analytic.shape == (model.ndim_meas, 6)
    # rows: range (dimensionless), rate (1/s and dimensionless), angle (1/m)
    # (a row that is zero, e.g. a range sum's derivative along the baseline between tx and rx, holds only the
    # central difference's rounding, eps x range / step ~ 1e-10: the scale's floor keeps that below the tolerance)
    row_scale = np.maximum(np.abs(numeric).max(axis=1, keepdims=True), 1e-4)
    np.testing.assert_allclose(analytic / row_scale, numeric / row_scale, atol=2e-5)


@pytest.mark.parametrize("bistatic", [False, True])
def test_link_model_finite_at_the_node_and_at_endfire(bistatic):
    tx = np.array([0.0, 0.0, 0.0])
    rx = np.array([10.0, 0.0, 0.0]) if bistatic else tx
    axis = np.array([1.0, 0.0, 0.0])
    model = link_model(make_link(tx, None, tx, rx, axis))
    for p in (tx, rx, rx + np.array([5.0, 0.0, 0.0]), rx + np.array([MIN_DISTANCE_M / 2, 0.0, 0.0])):
        x = np.array([p[0], 3.0, p[1], 0.0, p[2], 0.0])[:, None]
        assert np.all(np.isfinite(np.asarray(model.function(x), dtype=float)))
        assert np.all(np.isfinite(model.jacobian(x)))
    # end-fire: the target on the array axis, angle pi/2
    x = np.array([rx[0] + 50.0, 0.0, 0.0, 0.0, 0.0, 0.0])[:, None]
    assert float(np.asarray(model.function(x))[2, 0]) == pytest.approx(math.pi / 2)


def test_link_model_vectorised_over_sigma_points():
    link = make_link(np.zeros(3), None, NODES[0], NODES[1], np.array([0.0, 1.0, 0.0]))
    model = link_model(link)
    xs = np.random.default_rng(0).normal(0, 50, (6, 5))
    together = np.asarray(model.function(xs), dtype=float)
    one_by_one = np.hstack([np.asarray(model.function(xs[:, [i]]), dtype=float) for i in range(5)])
    np.testing.assert_allclose(together, one_by_one)


def test_link_model_against_geometry():
    x = np.array([50.0, 20.0, 5.0, 3.0, -4.0, 1.0])       # record order
    mono = truth_link(x, 1, 1, (1.0, 1.0, None), None, None)
    bi = truth_link(x, 0, 2, (1.0, 1.0, None), None, None)
    for link in (mono, bi):
        xs, _ = from_record_order(x, np.eye(6))
        np.testing.assert_allclose(np.asarray(link_model(link).function(xs[:, None]), dtype=float).ravel(),
                                   [link.range_m, link.rate_mps], rtol=1e-12)


def test_record_order_round_trip():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(6, 6))
    cov = a @ a.T
    x = rng.normal(size=6)
    y, p = from_record_order(*to_record_order(x, cov))
    np.testing.assert_allclose(y, x)
    np.testing.assert_allclose(p, cov)
    rec, _ = to_record_order(np.arange(6.0), np.eye(6))
    np.testing.assert_array_equal(rec, [0, 2, 4, 1, 3, 5])       # [x, vx, y, vy, z, vz] -> (x, y, z, vx, vy, vz)


# ---- NEES consistency -------------------------------------------------------------
def nees_runs(cfg: TrackingConfig, q_truth: float, num_runs: int, num_steps: int = 100,
              dt: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """NEES at the last step of each run (num_runs,) and the mean over runs at each step (num_steps,)."""
    var_mono, var_bi = (1.0, 0.01, 1e-4), (4.0, 0.04, None)
    axis = np.array([1.0, 0.0, 0.0])
    final = np.zeros(num_runs)
    per_step = np.zeros(num_steps)
    for run in range(num_runs):
        rng = np.random.default_rng(1000 + run)
        x = np.array([20.0, 40.0, 2.0, 5.0, -3.0, 0.5])
        tracker = Tracker(cfg)
        tracker.step(0.0, [estimate(x, 2.0, 1.0, rng)])
        for k in range(1, num_steps + 1):
            x = ncv_step(x, dt, q_truth, rng)
            links = [truth_link(x, 0, 0, var_mono, axis, rng), truth_link(x, 1, 1, var_mono[:2] + (None,), None, rng),
                     truth_link(x, 2, 2, var_mono[:2] + (None,), None, rng), truth_link(x, 3, 1, var_bi, None, rng)]
            out = tracker.step(k * dt, links)
            if not out:                                 # the track was lost: as inconsistent as can be
                nees = per_step[k - 1:] = math.inf
                break
            err = out[0].states[-1] - x
            nees = float(err @ np.linalg.solve(out[0].covariances[-1], err))
            per_step[k - 1] += nees / num_runs
        final[run] = nees
    return final, per_step


def test_nees_consistent_with_three_monostatic_and_one_bistatic_link():
    """NCV truth with the filter's process noise, links with noise from their CRB covariances (REFERENCE.md §6)."""
    cfg = TrackingConfig(noise_vehicle_m2ps3=0.5)
    num_runs = 12
    final, per_step = nees_runs(cfg, cfg.noise_m2ps3, num_runs)
    low, high = chi2.ppf([0.025, 0.975], num_runs * 6) / num_runs
    inside = float(np.mean((per_step > low) & (per_step < high)))
    print(f"NEES: mean over {num_runs} runs at step 100: {final.mean():.3f} (95 % interval {low:.3f} ... "
          f"{high:.3f}); mean over runs and steps {per_step.mean():.3f}; steps inside the interval {inside:.2f}")
    assert low < final.mean() < high
    # every step's mean over the runs: mostly inside (95 % expected; steps are correlated)
    assert inside > 0.85


def test_nees_detects_a_filter_that_underrates_the_motion():
    """The same check fails for a filter whose process noise is 10x too small (so the test above can fail)."""
    num_runs = 4
    final, _ = nees_runs(TrackingConfig(noise_vehicle_m2ps3=0.5), 5.0, num_runs, num_steps=60)
    print(f"NEES of the mistuned filter: {final}")
    assert final.mean() > chi2.ppf(0.975, num_runs * 6) / num_runs


# ---- OSPA / GOSPA -----------------------------------------------------------------------
def two_targets(sd_m: float, seed: int, num_steps: int = 25) -> tuple[list[Track], dict]:
    rng = np.random.default_rng(seed)
    tracker = Tracker(TrackingConfig(), id_prefix="T")
    x0 = [np.array([0.0, 0.0, 1.0, 8.0, 0.0, 0.0]), np.array([0.0, 60.0, 1.0, 8.0, -1.0, 0.0])]
    times = np.arange(num_steps) * 0.5
    truths = {f"t{i}": (times, np.array([x[:3] + x[3:] * t for t in times])) for i, x in enumerate(x0)}
    for t in times:
        states = [np.concatenate([x[:3] + x[3:] * t, x[3:]]) for x in x0]
        tracker.step(float(t), [estimate(s, sd_m, None, rng, nodes=(f"bs{i}",)) for i, s in enumerate(states)])
    return tracker.tracks(include_deleted=True), truths


def test_gospa_decreases_with_the_measurement_noise():
    gospa = []
    for sd in (3.0, 1.0, 0.3):
        values = [position_distances(*two_targets(sd, seed), c_m=20.0, p=2.0)[2][5:].mean() for seed in range(3)]
        gospa.append(float(np.mean(values)))
    print(f"GOSPA (c = 20 m, p = 2) at sd 3, 1, 0.3 m: {gospa}")
    assert gospa[0] > gospa[1] > gospa[2]


def test_position_distances_against_a_direct_computation():
    """Two tracks, two truths, known assignment: OSPA and GOSPA (p = 2, alpha = 2) by hand."""
    t = np.array([0.0, 1.0])
    truths = {"a": (t, np.array([[0.0, 0, 0], [1, 0, 0]])), "b": (t, np.array([[100.0, 0, 0], [101, 0, 0]]))}
    offsets = (np.array([3.0, 4.0, 0.0]), np.array([0.0, 0.0, 1.0]))
    tracks = [Track(f"x{i}", t, np.hstack([truths[k][1] + off, np.zeros((2, 3))]), np.array([np.eye(6)] * 2),
                    status="confirmed") for i, (k, off) in enumerate(zip("ab", offsets))]
    times, ospa, gospa = position_distances(tracks, truths, c_m=10.0, p=2.0)
    np.testing.assert_allclose(times, t)
    np.testing.assert_allclose(gospa, math.sqrt(25.0 + 1.0))
    np.testing.assert_allclose(ospa, math.sqrt((25.0 + 1.0) / 2))
    # one track missing: GOSPA adds c^p / alpha for the missed target, OSPA c^p for the cardinality error
    _, ospa1, gospa1 = position_distances(tracks[:1], truths, c_m=10.0, p=2.0)
    np.testing.assert_allclose(gospa1, math.sqrt(25.0 + 100.0 / 2))
    np.testing.assert_allclose(ospa1, math.sqrt((25.0 + 100.0) / 2))
    with pytest.raises(InputError, match="c_m"):
        position_distances(tracks, truths, c_m=float("nan"))


def test_position_distances_at_one_time_and_at_none():
    """Stone Soup gives one time's result without its list: still one distance per time; nothing at all: none."""
    one = Track("x", np.array([2.0]), np.array([[3.0, 4.0, 0.0, 0, 0, 0]]), np.array([np.eye(6)]), status="confirmed")
    times, ospa, gospa = position_distances([one], {"a": (np.array([2.0]), np.zeros((1, 3)))}, c_m=10.0, p=2.0)
    np.testing.assert_allclose([times, ospa, gospa], [[2.0], [5.0], [5.0]])
    times, ospa, gospa = position_distances([], {}, c_m=10.0)
    assert times.size == ospa.size == gospa.size == 0


# ---- life cycle ------------------------------------------------------------------
def test_track_deleted_after_k_missed_scans():
    cfg = TrackingConfig(delete_misses=4, confirm_hits=2, confirm_window=3)
    tracker = Tracker(cfg)
    rng = np.random.default_rng(5)
    x = np.array([0.0, 0.0, 1.0, 5.0, 0.0, 0.0])
    for k in range(6):
        tracker.step(float(k), [estimate(np.concatenate([x[:3] + k * x[3:], x[3:]]), 0.5, None, rng)])
    for miss in range(1, 6):
        live = tracker.step(6.0 + miss - 1, [])
        if miss < cfg.delete_misses:
            assert [t.status for t in live] == ["confirmed"], miss
        else:
            assert live == []
            break
    (track,) = tracker.tracks(include_deleted=True)
    assert track.status == "deleted" and miss == cfg.delete_misses
    assert tracker.tracks() == []
    # six scans updated with an estimate, then predictions through the misses
    assert track.measured.tolist() == [True] * 6 + [False] * cfg.delete_misses


def test_keep_states_bounds_the_history():
    rng = np.random.default_rng(6)
    tracker = Tracker(TrackingConfig(keep_states=4, history_states=2))
    for k in range(10):
        out = tracker.step(float(k), [estimate(np.array([k * 1.0, 0, 1, 1, 0, 0]), 0.3, None, rng)])
        assert out[0].num_states == min(k + 1, 2)
    (track,) = tracker.tracks()
    np.testing.assert_array_equal(track.t_s, [6.0, 7.0, 8.0, 9.0])
    np.testing.assert_allclose(track.states[-1, :3], [9.0, 0.0, 1.0], atol=1.5)


def test_track_deleted_when_its_position_covariance_grows_past_the_bound():
    """The trace bound, against the covariance propagated by hand (NCV, q per axis)."""
    q, bound = 2.0, 30.0
    cfg = TrackingConfig(noise_vehicle_m2ps3=q, delete_misses=1000, delete_position_var_m2=bound)
    tracker = Tracker(cfg)
    est = TargetEstimate(np.zeros(3), np.eye(3), velocity_mps=np.zeros(3), cov_velocity_mps2=np.eye(3))
    tracker.step(0.0, [est])
    # per axis after t s without updates: var = 1 + t^2 * 1 + q t^3 / 3 (initial pos/vel variances 1, no cross term)
    expected = next(k for k in range(1, 100) if 3 * (1 + k**2 + q * k**3 / 3) > bound)
    for k in range(1, 100):
        if not tracker.step(float(k), []):
            break
    assert k == expected


def test_m_of_n_confirmation_timing():
    cfg = TrackingConfig(confirm_hits=3, confirm_window=5, delete_misses=10)
    tracker = Tracker(cfg)
    rng = np.random.default_rng(2)
    seen = {0, 2, 4}
    statuses = []
    for k in range(5):
        x = np.array([k * 2.0, 0.0, 1.0, 2.0, 0.0, 0.0])
        out = tracker.step(float(k), [estimate(x, 0.3, None, rng)] if k in seen else [])
        statuses.append(out[0].status if out else None)
    assert statuses == ["tentative"] * 4 + ["confirmed"]        # the 3rd hit is in the 5th scan
    # a tentative track is deleted once M hits in its first N scans are out of reach: hit, miss, miss, miss
    tracker = Tracker(TrackingConfig(confirm_hits=3, confirm_window=5, delete_misses=10, init_speed_std_mps=1.0))
    statuses = []
    for k in range(6):
        out = tracker.step(float(k), [estimate(np.array([0.0, 0, 1, 0, 0, 0]), 0.3, None, rng)] if k == 0 else [])
        statuses.append(out[0].status if out else None)
    assert statuses == ["tentative"] * 3 + [None, None, None]


@pytest.mark.parametrize("association", ["gnn", "jpda"])
@pytest.mark.parametrize("flt", ["ekf", "ukf"])
def test_crossing_targets_keep_their_ids(association, flt):
    cfg = TrackingConfig(association=association, filter=flt)
    tracker = Tracker(cfg, id_prefix="X")
    rng = np.random.default_rng(11)
    starts = [np.array([0.0, 0.0, 1.0, 10.0, 2.0, 0.0]), np.array([0.0, 40.0, 1.0, 10.0, -2.0, 0.0])]
    owner: dict[str, int] = {}
    for k in range(30):
        t = 0.5 * k
        xs = [np.concatenate([s[:3] + t * s[3:], s[3:]]) for s in starts]       # cross at t = 10 s
        meas: list = [estimate(x, 1.0, None, rng, nodes=("bs0",)) for x in xs] if k < 3 or k % 4 == 0 else []
        meas += [truth_link(x, i, i, (0.25, 0.01, None), None, rng) for x in xs for i in range(3)]
        out = tracker.step(t, meas)
        if k == 3:
            owner = {tr.track_id: int(np.argmin([np.linalg.norm(tr.states[-1, :3] - x[:3]) for x in xs]))
                     for tr in out}
    assert len(owner) == 2 and sorted(owner.values()) == [0, 1]
    final = {tr.track_id: tr for tr in out}
    assert set(final) == set(owner)
    for tid, i in owner.items():
        assert np.linalg.norm(final[tid].states[-1, :3] - xs[i][:3]) < 3.0, (tid, final[tid].states[-1], xs[i])


@pytest.mark.parametrize("association", ["gnn", "jpda"])
def test_pregate_changes_nothing(association):
    """Leaving out pairs that cannot gate gives the same tracks as sending every pair through Stone Soup."""
    results = []
    for pregate in (True, False):
        rng = np.random.default_rng(21)
        tracker = Tracker(TrackingConfig(association=association, gate_probability=0.9999))
        tracker.pregate = pregate
        # two clusters 100 m apart (pairs across them are left out), 6 m spacing inside (ambiguous pairs)
        starts = [np.array([100.0 * (i // 3) + 6.0 * (i % 3), 0.0, 1.0, 4.0, (-1.0) ** i, 0.0]) for i in range(6)]
        for k in range(12):
            xs = [np.concatenate([s[:3] + k * s[3:], s[3:]]) for s in starts]
            meas = [estimate(x, 2.0, None, rng, nodes=(f"bs{i // 3}",)) for i, x in enumerate(xs) if rng.random() < 0.8]
            tracker.step(float(k), meas)
        results.append(tracker.tracks(include_deleted=True))
    assert [t.track_id for t in results[0]] == [t.track_id for t in results[1]]
    for a, b in zip(*results):
        assert a.status == b.status
        np.testing.assert_allclose(a.states, b.states, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("inside", [False, True])
def test_gnn_gates_each_measurement_at_its_own_dimension(inside):
    """A 3-D estimate scanned beside a 6-D one (one node set) is gated at chi2(3), not at the 6-D gate.

    The estimate is placed at a squared Mahalanobis distance (computed with Stone Soup's own predicted
    measurement covariance) between the two gates' quantiles: outside the 3-D gate it must start its own
    track and leave the track predicted; just inside that gate it must update the track.
    """
    from datetime import timedelta

    from sdr_isac.fusion.tracking.models import estimate_model
    from sdr_isac.fusion.tracking.tracker import EPOCH

    p = 0.999
    tracker = Tracker(TrackingConfig(gate_probability=p))
    rng = np.random.default_rng(4)
    x0 = np.array([0.0, 0.0, 1.0, 5.0, 0.0, 0.0])
    for k in range(4):
        tracker.step(float(k), [estimate(np.concatenate([x0[:3] + k * x0[3:], x0[3:]]), 0.5, 0.5, rng)])
    (entry,) = tracker._entries
    t = 4.0
    truth = np.concatenate([x0[:3] + t * x0[3:], x0[3:]])
    sd = 0.5
    pred = tracker._predictor.predict(entry.ss, timestamp=EPOCH + timedelta(seconds=t))
    model = estimate_model(TargetEstimate(truth[:3], sd**2 * np.eye(3), nodes=("bs0",)), tracker.cfg.variance_floor_m2)
    s_cov = np.asarray(tracker._updater.predict_measurement(pred, model).covar, dtype=float)
    mean = np.asarray(pred.state_vector, dtype=float)[list(model.mapping), 0]
    d2_3, d2_6 = chi2.ppf(p, 3), chi2.ppf(p, 6)
    d2 = 0.98 * d2_3 if inside else 0.5 * (d2_3 + d2_6)
    direction = np.array([1.0, 1.0, 0.0]) / math.sqrt(2.0)
    position = mean + math.sqrt(d2 / (direction @ np.linalg.solve(s_cov, direction))) * direction
    assert float((position - mean) @ np.linalg.solve(s_cov, position - mean)) == pytest.approx(d2, rel=1e-9)
    far = estimate(truth + np.array([500.0, 0.0, 0.0, 0.0, 0.0, 0.0]), sd, sd, rng)   # makes the scan mixed 3-D/6-D
    near = TargetEstimate(position, sd**2 * np.eye(3), nodes=("bs0",))
    tracker.step(t, [far, near])
    track = next(tr for tr in tracker.tracks(include_deleted=True) if tr.track_id == entry.track_id)
    assert bool(track.measured[-1]) is inside
    assert len(tracker.tracks(include_deleted=True)) == (2 if inside else 3)


# ---- handover ----------------------------------------------------------------------
def test_handover_past_three_stations_keeps_one_id():
    stations = {"A": np.array([0.0, 20.0, 10.0]), "B": np.array([100.0, 20.0, 10.0]), "C": np.array([200.0, 20.0, 10.0])}
    reach_m = 70.0
    tracker = Tracker(TrackingConfig(), station="mecs", id_prefix="op1-")
    rng = np.random.default_rng(4)
    v = np.array([10.0, 0.0, 0.0])
    expected = []                                           # (time, from, to) from the coverage geometry
    owner = None
    for k in range(26):
        t = float(k)
        x = np.concatenate([np.array([-20.0, 0.0, 1.0]) + v * t, v])
        seeing = [s for s, b in stations.items() if np.linalg.norm(x[:3] - b) <= reach_m]
        if owner is None:
            owner = seeing[0]
        elif owner not in seeing:
            new = min(seeing, key=lambda s: np.linalg.norm(x[:3] - stations[s]))
            expected.append((t, owner, new))
            owner = new
        meas = [estimate(x, 0.5, 0.2, rng, nodes=(s,)) for s in seeing]
        # strength: the nearer station's estimate rests on a stronger link
        meas = [TargetEstimate(m.position_m, m.cov_position_m2, nodes=m.nodes, velocity_mps=m.velocity_mps,
                               cov_velocity_mps2=m.cov_velocity_mps2,
                               links=(LinkMeasurement(0, 0, 1.0, 0.0, 1.0, 1.0,
                                                      1e4 / np.linalg.norm(x[:3] - stations[m.nodes[0]]) ** 2,
                                                      rx_id=m.nodes[0], tx_id=m.nodes[0]),))
                for m in meas]
        tracker.step(t, meas)
    (track,) = tracker.tracks(include_deleted=True)
    assert track.track_id == "op1-1"
    assert len(expected) == 2
    assert [(h.t_s, h.from_station, h.to_station) for h in track.handovers] == expected
    assert all(h.reason == "coverage" for h in track.handovers)
    assert track.stations == ("A", "B", "C")


def test_adopt_keeps_the_id_and_logs_an_operator_handover():
    rng = np.random.default_rng(8)
    first = Tracker(TrackingConfig(), station="op1", id_prefix="op1-")
    x = np.array([0.0, 0.0, 1.0, 5.0, 0.0, 0.0])
    for k in range(4):
        first.step(float(k), [estimate(np.concatenate([x[:3] + k * x[3:], x[3:]]), 0.5, None, rng,
                                       nodes=("a1",))])
    (track,) = first.tracks()
    second = Tracker(TrackingConfig(), station="op2", id_prefix="op2-")
    adopted = second.adopt(track, "op2-bs7", 3.5)
    assert adopted.track_id == track.track_id and adopted.num_states == track.num_states
    assert adopted.handovers[-1].reason == "operator"
    assert (adopted.handovers[-1].from_station, adopted.handovers[-1].to_station) == ("a1", "op2-bs7")
    # the adopted track goes on with the second operator's measurements, under its id
    for k in range(4, 8):
        out = second.step(float(k), [estimate(np.concatenate([x[:3] + k * x[3:], x[3:]]), 0.5, None, rng,
                                              nodes=("op2-bs7",))])
        assert [o.track_id for o in out] == [track.track_id]
    assert np.linalg.norm(out[0].states[-1, :3] - (x[:3] + 7 * x[3:])) < 2.0
    # the history keeps its flags across the operators; one without flags leaves them unknown where it reaches
    assert second.tracks()[0].measured.tolist() == [True] * 8
    third = Tracker(TrackingConfig(), station="op3", id_prefix="op3-")
    third.adopt(dataclasses.replace(track, measured=None), "op3-bs1", 3.5)
    assert third.tracks()[0].measured is None
    assert third.step(4.0, [])[0].measured.tolist() == [False]       # the records of a scan: its own state only
    with pytest.raises(InputError, match="track_id"):
        second.adopt(track, "op2-bs7", 8.0)
    with pytest.raises(InputError, match="t_s"):
        Tracker(TrackingConfig()).adopt(track, "x", 1.0)


# ---- bad input ----------------------------------------------------------------------
@pytest.mark.parametrize("t_s", [float("nan"), float("inf"), -float("inf"), None, "1.0", True, 1e300])
def test_bad_time_names_the_field(t_s):
    with pytest.raises(InputError, match="t_s"):
        Tracker(TrackingConfig()).step(t_s, [])


def test_time_going_backwards_or_standing_still():
    tracker = Tracker(TrackingConfig())
    tracker.step(5.0, [])
    for t in (4.0, 5.0, 5.0 + 1e-8):
        with pytest.raises(InputError, match="t_s"):
            tracker.step(t, [])
    tracker.step(5.1, [])


def test_link_without_positions_names_the_field():
    link = LinkMeasurement(0, 0, 10.0, 0.0, 1.0, 1.0, 10.0)
    with pytest.raises(InputError, match=r"measurements\[0\]\.tx_position_m"):
        Tracker(TrackingConfig()).step(0.0, [link])


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.none(), st.integers(), st.text(max_size=3), st.floats(allow_nan=True),
                 st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=2)), min_size=1, max_size=3)))
def test_bad_measurements_raise_input_error(bad):
    tracker = Tracker(TrackingConfig())
    with pytest.raises(InputError, match="measurements"):
        tracker.step(0.0, bad)
    assert tracker.tracks(include_deleted=True) == []
    tracker.step(0.0, [])                       # a refused scan does not advance the clock


def test_tracking_section_from_toml():
    from sdr_isac import config

    cfg = config.loads('[tracking]\nenabled = true\nassociation = "jpda"\ntarget_class = "uav"\nconfirm_hits = 3\n'
                       'confirm_window = 4\n').tracking
    assert (cfg.association, cfg.target_class, cfg.confirm_hits, cfg.confirm_window) == ("jpda", "uav", 3, 4)
    with pytest.raises(ConfigError, match="did you mean 'delete_misses'"):
        config.loads("[tracking]\ndelete_miss = 3\n")
    with pytest.raises(ConfigError, match="gate_probability"):
        config.loads("[tracking]\ngate_probability = 1.0\n")


def test_config_bounds():
    with pytest.raises(ConfigError, match="confirm_hits"):
        TrackingConfig(confirm_hits=4, confirm_window=3)
    with pytest.raises(ConfigError, match="noise_uav_m2ps3"):
        TrackingConfig(noise_uav_m2ps3=0.0)
    with pytest.raises(ConfigError, match="tracking.target_class"):
        TrackingConfig(target_class="ship")
    assert TrackingConfig(target_class="uav").noise_m2ps3 > TrackingConfig().noise_m2ps3
    with pytest.raises(InputError, match="cfg"):
        Tracker({"association": "gnn"})


@pytest.mark.parametrize("module", ["sdr_isac.fusion", "sdr_isac.stream.host", "sdr_isac.fusion.records"])
def test_stonesoup_imported_only_by_tracking(module):
    code = f"import sys, {module}; print('stonesoup' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 1e-3, 1.0, 1e4, 1e9]), st.sampled_from([1e-12, 1e-2, 1.0, 1e8]),
                          st.booleans(), st.booleans()), min_size=0, max_size=4),
       st.sampled_from(["gnn", "jpda"]))
def test_extreme_but_valid_measurements_give_valid_tracks(items, association):
    """Positions 0 ... 1e9 m, variances 1e-12 ... 1e8, planar or not, with links at the target itself."""
    tracker = Tracker(TrackingConfig(association=association))
    for k in range(3):
        meas: list = []
        for i, (pos, var, planar, link) in enumerate(items):
            p = np.array([pos, -pos, 0.5 * pos]) + i
            if planar:
                meas.append(TargetEstimate.planar(p[:2], var * np.eye(2), height_m=1.0, nodes=(f"n{i}",)))
            else:
                meas.append(TargetEstimate(p, var * np.eye(3), nodes=(f"n{i}",)))
            if link:
                meas.append(LinkMeasurement(0, 0, 0.0, 0.0, var, var, 1.0).placed(["n"], [p]))
        for track in tracker.step(float(k), meas):
            assert np.all(np.isfinite(track.states)) and np.all(np.isfinite(track.covariances))
    assert all(t.track_id for t in tracker.tracks(include_deleted=True))


def test_a_long_running_tracker_forgets_old_deleted_tracks_but_never_reuses_their_ids(monkeypatch) -> None:
    from sdr_isac.fusion.tracking import tracker as tracker_mod

    monkeypatch.setattr(tracker_mod, "KEEP_DELETED", 3)
    cfg = TrackingConfig(enabled=True, delete_misses=1)
    trk = Tracker(cfg, station="bs0")
    seen: set[str] = set()
    for k in range(12):                    # a new far-away target every other scan; each dies when it is not seen
        t = float(k)
        ests = [TargetEstimate(np.array([1000.0 * k, 0.0, 1.0]), np.eye(3))] if k % 2 == 0 else []
        for track in trk.step(t, ests):
            seen.add(track.track_id)
    deleted = [t for t in trk.tracks(include_deleted=True) if t.status == "deleted"]
    assert len(deleted) <= 3
    assert len(seen) == 6                  # six distinct ids, none reused


def test_a_scan_that_fails_part_way_leaves_the_tracker_usable(monkeypatch) -> None:
    trk = Tracker(TrackingConfig(enabled=True), station="bs0")
    trk.step(0.0, [TargetEstimate(np.array([0.0, 0.0, 1.0]), np.eye(3))])
    calls = {"n": 0}
    real = Tracker._scan

    def failing(self, *args, **kwargs):                    # the second sensor group of the scan fails
        calls["n"] += 1
        if calls["n"] == 2:
            raise FloatingPointError("numerical trouble in the filter")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Tracker, "_scan", failing)
    scan = [TargetEstimate(np.array([500.0, 0.0, 1.0]), np.eye(3), nodes=("a",)),
            TargetEstimate(np.array([900.0, 0.0, 1.0]), np.eye(3), nodes=("b",))]
    with pytest.raises(FloatingPointError):
        trk.step(1.0, scan)
    monkeypatch.setattr(Tracker, "_scan", real)
    tracks = trk.step(2.0, [TargetEstimate(np.array([0.0, 0.0, 1.0]), np.eye(3))])
    assert all(t.num_states >= 1 for t in trk.tracks(include_deleted=True))
    assert [t.track_id for t in tracks] == ["1"]            # the first track lives on; no stateless entry


def test_an_estimates_cross_covariance_reaches_the_measurement_noise():
    """The tracker takes position and velocity as one measurement with the estimate's joint covariance: the
    cross block where the estimate has one (not a block-diagonal noise that treats them as independent)."""
    from sdr_isac.fusion.tracking.models import estimate_model

    cross = np.zeros((3, 3))
    cross[0, 1] = -1.8
    est = TargetEstimate([0.0, 0.0, 1.0], np.diag([4.0, 4.0, 0.0]), nodes=("bs0", "bs1"),
                         velocity_mps=[1.0, 5.0, 0.0], cov_velocity_mps2=np.diag([1.0, 1.0, 0.0]),
                         cov_position_velocity_m2ps=cross)
    noise = np.asarray(estimate_model(est, 1e-6).covar(), dtype=float)
    assert noise[0, 4] == noise[4, 0] == -1.8                          # cov(x, v_y), in the order (x, y, z, v)
    assert noise[2, 2] == noise[5, 5] == 1e-6                          # the known height and v_z floored
    plain = dataclasses.replace(est, cov_position_velocity_m2ps=None)
    assert np.all(np.asarray(estimate_model(plain, 1e-6).covar(), dtype=float)[:3, 3:] == 0.0)
