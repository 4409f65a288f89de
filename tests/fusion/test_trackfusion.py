"""Track-to-track fusion: covariance intersection against the true error covariance, NEES, association, ids.

The truths here are independent of the module: the error covariance of a linear combination of correlated
estimates (``E = W Sigma W^T`` with the joint covariance ``Sigma``), the chi-square bounds of the NEES
(REFERENCE.md §6), the scalar case of covariance intersection (it picks the smaller variance), and scenes whose
correct pairing is known by construction.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy.stats import chi2

from sdr_isac.errors import InputError
from sdr_isac.fusion.records import Handover, Track
from sdr_isac.fusion.trackfusion import (
    TrackToTrackFuser,
    assign,
    covariance_intersection,
    gate_threshold,
    naive_fusion,
    position_distance2,
    predict,
)

PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _joint(rng: np.random.Generator, n: int, rho: float, scale: float, cond: float,
           aligned: bool = False) -> np.ndarray:
    """A joint covariance [[P1, P12], [P21, P2]] of two n-dim errors, correlation strength ``rho`` in [-1, 1].

    ``P12 = L1 C L2^T`` with ``C = rho Q`` (``Q`` a random rotation; ``aligned``: ``Q = I``, the errors'
    whitened components move together, as common process noise makes them) and ``L`` the Cholesky factors.
    """
    def spd() -> np.ndarray:
        q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        return (q * np.geomspace(1.0, cond, n)) @ q.T * scale
    p1, p2 = spd(), spd()
    l1, l2 = np.linalg.cholesky(p1), np.linalg.cholesky(p2)
    q = np.eye(n) if aligned else np.linalg.qr(rng.standard_normal((n, n)))[0]
    c = rho * q                                         # ||c|| <= 1: the joint stays PSD
    p12 = l1 @ c @ l2.T
    return np.block([[p1, p12], [p12.T, p2]])


def _ci_error_cov(joint: np.ndarray, p: np.ndarray, p1: np.ndarray, p2: np.ndarray, w: float) -> np.ndarray:
    """The true error covariance of x = W1 x1 + W2 x2 with W1 = w P P1^-1, W2 = (1 - w) P P2^-1."""
    weights = np.hstack([w * p @ np.linalg.inv(p1), (1 - w) * p @ np.linalg.inv(p2)])
    return weights @ joint @ weights.T


@PROPS
@example(seed=0, n=6, rho=1.0, scale=1.0, cond=1.0, criterion="trace", aligned=True)     # identical errors
@example(seed=1, n=6, rho=-1.0, scale=1e-6, cond=1e3, criterion="determinant", aligned=False)
@example(seed=2, n=3, rho=0.0, scale=1e6, cond=1e6, criterion="trace", aligned=False)
@example(seed=3, n=1, rho=0.99, scale=1.0, cond=1.0, criterion="determinant", aligned=True)
@example(seed=4, n=6, rho=1.0, scale=1e-6, cond=1e6, criterion="determinant", aligned=True)
@given(seed=st.integers(0, 2**32 - 1), n=st.sampled_from([1, 2, 3, 6]), rho=st.floats(-1.0, 1.0),
       scale=st.sampled_from([1e-6, 1e-2, 1.0, 1e4, 1e6]), cond=st.sampled_from([1.0, 10.0, 1e3, 1e6]),
       criterion=st.sampled_from(["trace", "determinant"]), aligned=st.booleans())
def test_ci_covariance_bounds_the_true_error_covariance(seed: int, n: int, rho: float, scale: float, cond: float,
                                                       criterion: str, aligned: bool) -> None:
    rng = np.random.default_rng(seed)
    joint = _joint(rng, n, rho, scale, cond, aligned)
    p1, p2 = joint[:n, :n], joint[n:, n:]
    res = covariance_intersection([np.zeros(n), np.zeros(n)], [p1, p2], criterion)
    (w,) = res.omegas
    assert 0.0 <= w <= 1.0
    true = _ci_error_cov(joint, res.cov, p1, p2, w)
    gap = np.linalg.eigvalsh(res.cov - true)
    assert gap[0] >= -1e-9 * np.abs(res.cov).max(), (gap, w)
    # the optimum is no worse than either input alone (w = 0 or 1)
    measure = np.trace if criterion == "trace" else np.linalg.det
    assert measure(res.cov) <= min(measure(p1), measure(p2)) * (1 + 1e-9)


def test_naive_fusion_is_overconfident_for_correlated_errors() -> None:
    rng = np.random.default_rng(4)
    for rho in (0.5, 0.9, 1.0):
        joint = _joint(rng, 6, rho, 1.0, 10.0, aligned=True)
        p1, p2 = joint[:6, :6], joint[6:, 6:]
        _, p = naive_fusion([np.zeros(6)] * 2, [p1, p2])
        i1, i2 = np.linalg.inv(p1), np.linalg.inv(p2)
        weights = np.hstack([p @ i1, p @ i2])
        true = weights @ joint @ weights.T
        assert np.linalg.eigvalsh(p - true)[0] < -0.01 * np.abs(p).max()      # p is smaller than the truth


def test_ci_of_isotropic_estimates_picks_the_smaller_one() -> None:
    """For P1 = a I and P2 = b I the fused trace 1 / (w / a + (1 - w) / b) is least at an end: min(a, b)."""
    res = covariance_intersection([np.full(3, 1.0), np.full(3, 5.0)], [4.0 * np.eye(3), 1.0 * np.eye(3)])
    assert np.allclose(res.cov, np.eye(3), rtol=1e-6) and np.allclose(res.mean, 5.0, atol=1e-6)


def _nees(errors: np.ndarray, covs: np.ndarray) -> np.ndarray:
    return np.einsum("ri,rij,rj->r", errors, np.linalg.inv(covs), errors)


def test_monte_carlo_nees_ci_consistent_naive_not() -> None:
    """Errors of two tracks with correlation 0.8: the mean NEES of the CI estimate stays below the upper 95 %
    bound of chi²(N n) / N; the naive fusion's lies far above it (REFERENCE.md §6)."""
    rng = np.random.default_rng(7)
    n, runs = 6, 400
    joint = _joint(rng, n, 0.8, 1.0, 10.0, aligned=True)
    p1, p2 = joint[:n, :n], joint[n:, n:]
    truth = rng.standard_normal(n) * 10
    draws = rng.multivariate_normal(np.zeros(2 * n), joint, size=runs)
    ci_err, naive_err = [], []
    for d in draws:
        x1, x2 = truth + d[:n], truth + d[n:]
        res = covariance_intersection([x1, x2], [p1, p2])
        ci_err.append(res.mean - truth)
        x_n, p_naive = naive_fusion([x1, x2], [p1, p2])
        naive_err.append(x_n - truth)
    upper = chi2.ppf(0.975, runs * n) / runs
    ci = _nees(np.array(ci_err), np.repeat(res.cov[None], runs, 0)).mean()
    naive = _nees(np.array(naive_err), np.repeat(p_naive[None], runs, 0)).mean()
    assert ci <= upper
    assert naive > upper                               # outside the 95 % interval: overconfident


def test_ci_with_more_than_two_and_bad_inputs() -> None:
    rng = np.random.default_rng(8)
    joint = _joint(rng, 9, 0.5, 1.0, 5.0)             # three 3-dim errors, correlated
    covs = [joint[i:i + 3, i:i + 3] for i in (0, 3, 6)]
    res = covariance_intersection([np.zeros(3)] * 3, covs)
    assert len(res.omegas) == 2
    assert np.trace(res.cov) <= min(np.trace(c) for c in covs) * (1 + 1e-9)
    with pytest.raises(InputError, match=r"covs\[1\] is not positive definite"):
        covariance_intersection([np.zeros(2)] * 2, [np.eye(2), np.diag([1.0, -1.0])])
    with pytest.raises(InputError, match=r"criterion = 'max'"):
        covariance_intersection([np.zeros(2)] * 2, [np.eye(2)] * 2, "max")
    with pytest.raises(InputError, match=r"means and covs have 0 and 0 entries"):
        covariance_intersection([], [])
    with pytest.raises(InputError, match=r"means\[1\] has shape \(3,\)"):
        covariance_intersection([np.zeros(2), np.zeros(3)], [np.eye(2)] * 2)
    with pytest.raises(InputError, match=r"covs\[0\] has shape \(2, 2\): allowed finite"):
        covariance_intersection([np.zeros(2)] * 2, [np.array([[np.nan, 0], [0, 1]]), np.eye(2)])


def test_prediction_matches_the_white_acceleration_model() -> None:
    """Against a fine Euler integration of dP/dt = A P + P A^T + G q G^T (the continuous model)."""
    p0 = np.diag([4.0, 4.0, 1.0, 1.0, 1.0, 0.25])
    x, p = predict(np.array([0.0, 0, 0, 1.0, -2.0, 0]), p0, 2.0, 0.5)
    assert np.allclose(x, [2.0, -4.0, 0, 1.0, -2.0, 0])
    a = np.block([[np.zeros((3, 3)), np.eye(3)], [np.zeros((3, 3)), np.zeros((3, 3))]])
    gqg = np.block([[np.zeros((3, 3)), np.zeros((3, 3))], [np.zeros((3, 3)), 0.5 * np.eye(3)]])
    q, dt = p0.copy(), 1e-4
    for _ in range(20000):
        q = q + dt * (a @ q + q @ a.T + gqg)
    assert np.allclose(p, q, rtol=1e-3)
    with pytest.raises(InputError, match=r"dt_s = -1\.0 s"):
        predict(np.zeros(6), np.eye(6), -1.0, 1.0)


def test_assignment_beats_greedy_nearest() -> None:
    """Greedy takes the closest pair (0, 0) and leaves row 1 without a partner; the optimum pairs both."""
    cost = np.array([[1.0, 2.0], [1.5, 50.0]])
    assert sorted(assign(cost, gate=10.0)) == [(0, 1), (1, 0)]
    assert assign(np.array([[20.0]]), gate=10.0) == []
    assert assign(np.zeros((0, 3)), gate=1.0) == []
    assert assign(np.array([[np.inf, 3.0], [np.inf, np.inf]]), gate=10.0) == [(0, 1)]


def test_gate_is_the_chi_square_quantile() -> None:
    rng = np.random.default_rng(9)
    gate = gate_threshold(0.99)
    cov = np.diag([4.0, 1.0, 0.25, 1, 1, 1])
    inside = 0
    for _ in range(4000):
        a = rng.multivariate_normal(np.zeros(6), cov)
        b = rng.multivariate_normal(np.zeros(6), cov)
        inside += position_distance2(a, cov, b, cov) <= gate
    assert 0.985 <= inside / 4000 <= 0.995
    with pytest.raises(InputError, match=r"gate probability = 1\.0"):
        gate_threshold(1.0)


# ---- global tracks -------------------------------------------------------------------------------------
COV = np.diag([1.0, 1.0, 1.0, 0.25, 0.25, 0.25])


def _local(track_id: str, t_s: float, pos: list[float], vel: list[float] = (0.0, 0.0, 0.0),
           status: str = "confirmed", handovers: tuple[Handover, ...] = ()) -> Track:
    return Track(track_id, [t_s], [[*pos, *vel]], [COV], ("bs",), handovers, status)


def test_global_ids_are_stable_through_absence_return_and_handover() -> None:
    fuser = TrackToTrackFuser()
    out = fuser.update({"A": [_local("a1", 0.0, [0, 0, 0]), _local("a2", 0.0, [500, 0, 0])],
                        "B": [_local("b9", 0.0, [0.5, 0, 0])]})
    ids = {round(t.states[-1, 0]): t.track_id for t in out}
    assert len(out) == 2 and fuser.members[ids[0]] == {"A": "a1", "B": "b9"}
    # A falls silent: the global track of the target both saw lives on from B alone, same id
    out = fuser.update({"B": [_local("b9", 1.0, [0.5, 0, 0])]})
    assert [t.track_id for t in out] == [ids[0]] and fuser.members[ids[0]] == {"B": "b9"}
    # A comes back with a new local id: it joins the same global track through the gate
    out = fuser.update({"A": [_local("a7", 2.0, [0.2, 0, 0])], "B": [_local("b9", 2.0, [0.5, 0, 0])]})
    assert [t.track_id for t in out] == [ids[0]] and fuser.members[ids[0]] == {"A": "a7", "B": "b9"}
    # B hands its track over to C under the same local id; C's report lies between this target and another
    # one of B (b5 at 3 m), nearer the other: the handover, not the gate, decides, and the id stays
    fuser.update({"A": [_local("a7", 3.0, [0.2, 0, 0])],
                  "B": [_local("b9", 3.0, [0.5, 0, 0]), _local("b5", 3.0, [3.0, 0, 0])]})
    hand = (Handover(3.5, "B", "C", "coverage"),)
    fuser.update({"A": [_local("a7", 3.5, [0.2, 0, 0])],
                  "B": [_local("b9", 3.5, [0.5, 0, 0]), _local("b5", 3.5, [3.0, 0, 0])],
                  "C": [_local("b9", 3.5, [1.9, 0, 0], handovers=hand)]})
    assert fuser.members[ids[0]] == {"A": "a7", "B": "b9", "C": "b9"}
    out = fuser.update({"B": [_local("b5", 4.0, [3.0, 0, 0])], "C": [_local("b9", 4.0, [0.4, 0, 0], handovers=hand)]})
    (mine,) = [t for t in out if t.track_id == ids[0]]
    assert fuser.members[ids[0]] == {"C": "b9"} and hand[0] in mine.handovers
    assert mine.stations == ("A", "B", "C")
    assert fuser.update({"B": [_local("b5", 4.5, [3.0, 0, 0])]})[0].track_id != ids[0]
    # everyone stops: the global track ends; a new target later gets a fresh id
    assert fuser.update({}) == []
    out = fuser.update({"A": [_local("a8", 5.0, [0.0, 0, 0])]})
    assert len(out) == 1 and out[0].track_id not in ids.values()


def test_two_crossing_targets_keep_their_ids() -> None:
    """Two targets at 3 m/s towards each other, seen by A and B with noise: every global id keeps one target."""
    rng = np.random.default_rng(11)
    fuser = TrackToTrackFuser()
    owner: dict[str, int] = {}
    for k in range(40):
        t = 0.1 * k
        truths = [np.array([-6 + 3 * t, 2.0, 0.0]), np.array([6 - 3 * t, -2.0, 0.0])]
        vel = [[3.0, 0, 0], [-3.0, 0, 0]]
        local = {m: [_local(f"{m}{i}", t, list(p + rng.normal(0, 0.3, 3)), vel[i]) for i, p in enumerate(truths)]
                 for m in ("A", "B")}
        for track in fuser.update(local):
            nearest = int(np.argmin([np.linalg.norm(track.states[-1, :3] - p) for p in truths]))
            assert owner.setdefault(track.track_id, nearest) == nearest
    assert len(owner) == 2


def test_reports_at_different_times_are_predicted_to_one_time() -> None:
    """A reports 0.5 s later than B for a target at 20 m/s: without prediction they would be 10 m apart."""
    fuser = TrackToTrackFuser(accel_psd_m2ps3=0.1)
    out = fuser.update({"A": [_local("a", 10.5, [110.0, 0, 0], [20.0, 0, 0])],
                        "B": [_local("b", 10.0, [100.0, 0, 0], [20.0, 0, 0])]})
    assert len(out) == 1 and out[0].t_s[-1] == 10.5
    assert abs(out[0].states[-1, 0] - 110.0) < 3 * np.sqrt(out[0].covariances[-1, 0, 0])


def test_a_member_that_leaves_the_gate_is_split_off() -> None:
    fuser = TrackToTrackFuser()
    fuser.update({"A": [_local("a", 0.0, [0, 0, 0])], "B": [_local("b", 0.0, [0.3, 0, 0])]})
    (gid,) = fuser.members
    out = fuser.update({"A": [_local("a", 1.0, [0, 0, 0])], "B": [_local("b", 1.0, [80.0, 0, 0])]})
    assert len(out) == 2 and fuser.members[gid] == {"A": "a"}           # the older member keeps the id


def test_deleted_tracks_are_not_fused_and_bad_settings_are_refused() -> None:
    fuser = TrackToTrackFuser()
    assert fuser.update({"A": [_local("a", 0.0, [0, 0, 0], status="deleted")]}) == []
    with pytest.raises(InputError, match=r"criterion = 'x'"):
        TrackToTrackFuser(criterion="x")
    with pytest.raises(InputError, match=r"gate probability = 0"):
        TrackToTrackFuser(gate_probability=0)


@pytest.mark.parametrize("first_t_s", [None, {("A", "a1"): 0.0}])
def test_the_member_whose_track_started_first_owns_it_and_its_leaving_is_a_handover(first_t_s) -> None:
    """B's track of a target reaches the fuser first (its message came first), A's a cycle later though A has
    tracked the target since t = 0 (its tail, ``first_t_s``, or its own first state): A owns the global track,
    and when A stops reporting it (the target left A's coverage) the track goes on under its id with B, and the
    core logs the handover A -> B (owner_left).  By arrival, B would own it and nothing would be logged."""
    fuser = TrackToTrackFuser()
    (g,) = fuser.update({"B": [_local("b1", 1.0, [12.0, 0, 0], [12.0, 0, 0])]})
    a1 = Track("a1", [0.0, 1.0], [[0, 0, 0, 12.0, 0, 0], [12.0, 0, 0, 12.0, 0, 0]], [COV, COV], ("bs",), (),
               "confirmed") if first_t_s is None else _local("a1", 1.0, [12.0, 0, 0], [12.0, 0, 0])
    (g2,) = fuser.update({"A": [a1], "B": [_local("b1", 1.0, [12.0, 0, 0], [12.0, 0, 0])]}, first_t_s=first_t_s)
    assert g2.track_id == g.track_id and set(g2.stations) == {"A", "B"} and not g2.handovers
    (g3,) = fuser.update({"B": [_local("b1", 2.0, [24.0, 0, 0], [12.0, 0, 0])]})
    assert g3.track_id == g.track_id
    # stamped at A's last state (1 s), where its contribution ended, not at the fusion time that noticed it (2 s)
    last_a = float(a1.t_s[-1])
    assert [(h.from_station, h.to_station, h.reason, h.t_s) for h in g3.handovers] == [("A", "B", "owner_left",
                                                                                         last_a)]


def _moving(track_id: str, t_s: float, offset_m: float = 0.0, first_t_s: float | None = None) -> Track:
    """A local track of the target at x = 12 m/s * t (``offset_m`` off it in y): its state at ``t_s``, and one
    at ``first_t_s`` before it when given."""
    times = [t_s] if first_t_s is None else [first_t_s, t_s]
    return Track(track_id, times, [[12.0 * t, offset_m, 0, 12.0, 0, 0] for t in times], [COV] * len(times), ("bs",),
                 (), "confirmed")


def _owner_left(track: Track) -> list[tuple[str, str, float]]:
    return [(h.from_station, h.to_station, h.t_s) for h in track.handovers if h.reason == "owner_left"]


def test_an_owner_that_leaves_is_handed_over_at_its_last_state_not_when_the_core_notices() -> None:
    """A (tracking since 0 s: the owner) and B (since 0.5 s) co-track a target.  A's local track has its last
    state at 1 s; its MECS host keeps reporting that state (it coasts, or its messages lag) at the fusions at 2 s
    and 3 s, and leaves it out at 4 s.  The handover A -> B is stamped at 1 s, where A's contribution ended; it
    is noticed (appears) at the fusion at 4 s."""
    a_last_s, gone_s = 1.0, 4.0
    fuser = TrackToTrackFuser()
    out = fuser.update({"A": [_moving("a", 0.0)], "B": [_moving("b", 0.5, 0.3)]}, t_s=0.5)
    (gid,) = [t.track_id for t in out]
    fuser.update({"A": [_moving("a", a_last_s, first_t_s=0.0)], "B": [_moving("b", 1.5, 0.3)]}, t_s=1.5)
    for now in (2.0, 3.0):
        (g,) = fuser.update({"A": [_moving("a", a_last_s)], "B": [_moving("b", now, 0.3)]}, t_s=now)
        assert fuser.members[gid] == {"A": "a", "B": "b"} and _owner_left(g) == []
    (g,) = fuser.update({"B": [_moving("b", gone_s, 0.3)]}, t_s=gone_s)
    assert g.track_id == gid and fuser.members[gid] == {"B": "b"}
    assert _owner_left(g) == [("A", "B", a_last_s)]
    assert g.t_s[-1] == gone_s                                          # the global track goes on at the fusion time


def test_an_owner_that_coasts_before_it_leaves_is_handed_over_at_its_last_measured_state() -> None:
    """A (the owner) measures the target at 0 s and 1 s, then coasts on predictions at 2 s and 3 s (its
    tracks say so: ``measured`` False) and is gone at 4 s: the handover A -> B is stamped at 1 s, A's last sight,
    not at 3 s, its last (predicted) state.  B's flags play no part.  Without flags (the test above) the last state
    fused counts."""
    fuser = TrackToTrackFuser()

    def a(t_s: float, measured: bool) -> Track:
        return dataclasses.replace(_moving("a", t_s), measured=np.array([measured]))

    def b(t_s: float) -> Track:
        return dataclasses.replace(_moving("b", t_s, 0.3), measured=np.array([False]))

    (g,) = fuser.update({"A": [dataclasses.replace(_moving("a", 0.0))], "B": [_moving("b", 0.5, 0.3)]}, t_s=0.5)
    gid = g.track_id
    for now, seen in ((1.0, True), (2.0, False), (3.0, False)):
        (g,) = fuser.update({"A": [a(now, seen)], "B": [b(now)]}, t_s=now)
        assert fuser.members[gid] == {"A": "a", "B": "b"} and _owner_left(g) == []
    (g,) = fuser.update({"B": [b(4.0)]}, t_s=4.0)
    assert g.track_id == gid and _owner_left(g) == [("A", "B", 1.0)]


def test_an_owner_that_never_says_it_measured_is_handed_over_at_its_last_state() -> None:
    """Flags that never say measured (a track that coasted from the core's first sight of it): the last state."""
    fuser = TrackToTrackFuser()
    coasting = {t: dataclasses.replace(_moving("a", t), measured=np.array([False])) for t in (0.0, 1.0, 2.0)}
    fuser.update({"A": [coasting[0.0]], "B": [_moving("b", 0.5, 0.3)]}, t_s=0.5)
    for now in (1.0, 2.0):
        fuser.update({"A": [coasting[now]], "B": [_moving("b", now, 0.3)]}, t_s=now)
    (g,) = fuser.update({"B": [_moving("b", 3.0, 0.3)]}, t_s=3.0)
    assert _owner_left(g) == [("A", "B", 2.0)]


def test_the_sightings_given_and_a_history_of_flags_count_too() -> None:
    """``measured_t_s`` (what a core host recorded on arrival) moves the stamp to a sighting the fusions did not
    see; a member's track given with its history counts its last state flagged measured, not only the latest."""
    fuser = TrackToTrackFuser()
    fuser.update({"A": [_moving("a", 0.0)], "B": [_moving("b", 0.5, 0.3)]}, t_s=0.5)
    coast = dataclasses.replace(_moving("a", 2.0, first_t_s=1.5), measured=np.array([True, False]))
    fuser.update({"A": [coast], "B": [_moving("b", 2.0, 0.3)]}, t_s=2.0, measured_t_s={("A", "a"): 1.0})
    (g,) = fuser.update({"B": [_moving("b", 3.0, 0.3)]}, t_s=3.0)
    assert _owner_left(g) == [("A", "B", 1.5)]                       # the later of 1.0 (given) and 1.5 (flagged)


def test_an_owner_seen_in_one_cycle_only_is_handed_over_at_its_one_state() -> None:
    """B tracks a target from 1 s; A joins at the fusion at 2 s with the state of that time and a track that
    started at 0 s (its tail: ``first_t_s``), so A owns it; at 3 s A is gone: the handover is at A's one state."""
    fuser = TrackToTrackFuser()
    fuser.update({"B": [_moving("b", 1.0, 0.3)]})
    (g,) = fuser.update({"A": [_moving("a", 2.0)], "B": [_moving("b", 2.0, 0.3)]}, first_t_s={("A", "a"): 0.0})
    assert fuser.members[g.track_id] == {"A": "a", "B": "b"} and _owner_left(g) == []
    (g,) = fuser.update({"B": [_moving("b", 3.0, 0.3)]})
    assert _owner_left(g) == [("A", "B", 2.0)]


def test_an_owner_leaving_with_another_member_hands_over_to_the_one_left_at_its_own_last_state() -> None:
    """A (the owner), B and C co-track; A's last state is at 1 s, B's at 2 s, and both are gone at the fusion at
    3 s: one handover, A -> C, at A's last state (B never owned the track; its later state does not count)."""
    fuser = TrackToTrackFuser()
    first = {("A", "a"): 0.0, ("B", "b"): 0.2, ("C", "c"): 0.4}
    (g,) = fuser.update({"A": [_moving("a", 1.0)], "B": [_moving("b", 1.0, 0.3)], "C": [_moving("c", 1.0, -0.3)]},
                        first_t_s=first)
    (g,) = fuser.update({"A": [_moving("a", 1.0)], "B": [_moving("b", 2.0, 0.3)], "C": [_moving("c", 2.0, -0.3)]})
    assert fuser.members[g.track_id] == {"A": "a", "B": "b", "C": "c"}
    (g,) = fuser.update({"C": [_moving("c", 3.0, -0.3)]})
    assert fuser.members[g.track_id] == {"C": "c"} and _owner_left(g) == [("A", "C", 1.0)]


def test_an_owner_whose_last_state_is_older_than_its_taking_over_hands_over_at_that_time() -> None:
    """A owns the track, B (lagging: its state stays at 1.5 s) and C co-track.  A leaves after its state at 2 s:
    A -> B at 2 s.  Then B leaves: its last state (1.5 s) is older than its taking over, so B -> C is stamped at
    2 s too, and the core's handovers stay in the order they happened, none after the fusion time."""
    fuser = TrackToTrackFuser()
    first = {("A", "a"): 0.0, ("B", "b"): 0.5, ("C", "c"): 1.0}
    b = _moving("b", 1.5, 0.3)
    fuser.update({"A": [_moving("a", 2.0)], "B": [b], "C": [_moving("c", 2.0, -0.3)]}, first_t_s=first)
    (g,) = fuser.update({"B": [b], "C": [_moving("c", 3.0, -0.3)]})
    assert _owner_left(g) == [("A", "B", 2.0)]
    (g,) = fuser.update({"C": [_moving("c", 4.0, -0.3)]})
    assert _owner_left(g) == [("A", "B", 2.0), ("B", "C", 2.0)]
    assert all(h.t_s <= g.t_s[-1] for h in g.handovers)


def test_an_owner_split_off_as_another_target_did_not_leave_the_track() -> None:
    """B's track started first (so B owned g1), then diverged and was split off to a new global track: the core
    logged an 'owner_left' handover B -> A on g1 although B went on reporting (under g2)."""
    cov = np.eye(6)

    def local(track_id: str, t: float, x: float, start: float | None = None) -> Track:
        ts = np.array([t]) if start is None else np.array([start, t])
        return Track(track_id, ts, np.tile(np.r_[x, 0.0, 0.0, 0.0, 0.0, 0.0], (ts.size, 1)),
                     np.tile(cov, (ts.size, 1, 1)), status="confirmed")

    fuser = TrackToTrackFuser()
    fuser.update({"A": [local("a1", 0.0, 0.0)]})
    fuser.update({"A": [local("a1", 1.0, 0.0)], "B": [local("b1", 1.0, 0.5, start=-5.0)]})
    out = fuser.update({"A": [local("a1", 2.0, 0.0)], "B": [local("b1", 2.0, 50.0, start=-5.0)]})
    assert fuser.members == {"g1": {"A": "a1"}, "g2": {"B": "b1"}}
    assert {t.track_id: t.handovers for t in out} == {"g1": (), "g2": ()}


# ---- coasting global tracks (core.coast_s) ----------------------------------------------------------------
def _along_x(track_id: str, t_s: float, x0: float = 0.0, v: float = 10.0, status: str = "confirmed") -> Track:
    """A local track of a target at x = x0 + v t along the x axis (m, m/s)."""
    return _local(track_id, t_s, [x0 + v * t_s, 0.0, 0.0], [v, 0.0, 0.0], status=status)


def _across_a_gap(coast_s: float, gap_s: float
                  ) -> tuple[TrackToTrackFuser, list[list[Track]], list[str], dict[str, dict[str, str]]]:
    """A target at 10 m/s tracked by A until t = 2 s; nothing reports it for ``gap_s``; then B's new track.
    Returns the fuser, its outputs and its coasting ids and members in the middle of the gap."""
    fuser = TrackToTrackFuser(coast_s=coast_s)
    outs = [fuser.update({"A": [_along_x("a1", t)]}, t_s=t) for t in (0.0, 1.0, 2.0)]
    outs.append(fuser.update({}, t_s=2.0 + gap_s / 2))          # A's track ended; B not yet
    in_gap = fuser.coasting, fuser.members
    t_b = 2.0 + gap_s
    outs.append(fuser.update({"B": [_along_x("b1", t_b, status="tentative")]}, t_s=t_b))
    return fuser, outs, *in_gap


def test_a_target_crossing_a_gap_between_two_mecs_keeps_its_global_id() -> None:
    fuser, outs, coasting, members = _across_a_gap(coast_s=2.0, gap_s=1.5)
    assert outs[3] == [] and coasting == ["g1"] and members == {}     # coasting: not published
    (g,) = outs[4]
    assert g.track_id == "g1" and fuser.members == {"g1": {"B": "b1"}} and fuser.coasting == []
    assert g.stations == ("A", "B") and g.status == "confirmed"      # the id's history, not the newcomer's
    assert [(h.from_station, h.to_station, h.reason, h.t_s) for h in g.handovers] == [("A", "B", "owner_left",
                                                                                        2.0)]
    assert list(g.t_s) == [0.0, 1.0, 2.0, 3.5]
    # without coasting, B's track is a new target
    fuser, outs, coasting, _ = _across_a_gap(coast_s=0.0, gap_s=1.5)
    assert coasting == [] and [t.track_id for t in outs[4]] == ["g2"] and outs[4][0].handovers == ()


def test_a_coasting_track_ends_after_coast_s_and_its_id_is_not_reused() -> None:
    fuser, outs, coasting, _ = _across_a_gap(coast_s=1.0, gap_s=1.5)  # B starts 1.5 s after A's last state
    assert coasting == ["g1"] and [t.track_id for t in outs[4]] == ["g2"] and fuser.coasting == []
    # a track of the same MECS restarted within coast_s takes the id back, no handover (the owner did not change)
    fuser = TrackToTrackFuser(coast_s=1.0)
    fuser.update({"A": [_along_x("a1", 0.0)]}, t_s=0.0)
    fuser.update({"A": []}, t_s=0.5)
    (g,) = fuser.update({"A": [_along_x("a2", 1.0)]}, t_s=1.0)
    assert g.track_id == "g1" and fuser.members == {"g1": {"A": "a2"}} and g.handovers == ()


def test_the_coast_is_gated_on_the_predicted_state() -> None:
    """The coasting track is predicted at 10 m/s: B's track where the target went joins it, one where the
    target was when A lost it (15 m behind) does not."""
    assert _across_a_gap(coast_s=2.0, gap_s=1.5)[1][4][0].track_id == "g1"
    fuser = TrackToTrackFuser(coast_s=2.0)
    for t in (0.0, 1.0, 2.0):
        fuser.update({"A": [_along_x("a1", t)]}, t_s=t)
    (g,) = fuser.update({"B": [_local("b1", 3.5, [20.0, 0.0, 0.0])]}, t_s=3.5)
    assert g.track_id == "g2" and fuser.coasting == ["g1"]


def test_a_coasting_track_does_not_take_a_track_a_live_one_explains_as_well() -> None:
    """Target X (A) lost at x = 0 m and coasting for 4.5 s (position variance about 36 m² per axis); target Y
    tracked live by A at x = 3 m (1 m²).  B's report of Y at 4.5 m is nearer X in Mahalanobis distance
    (d² 0.54 against 1.13) but Y explains it with a far tighter covariance: the likelihood cost d² + ln det S
    (11.4 against 3.2) joins it to Y.  B's later report of X at 0.2 m joins the coasting X."""
    fuser = TrackToTrackFuser(coast_s=10.0, accel_psd_m2ps3=1.0)
    fuser.update({"A": [_local("x", 0.0, [0.0, 0, 0]), _local("y", 0.0, [3.0, 0, 0])]}, t_s=0.0)
    fuser.update({"A": [_local("y", 4.0, [3.0, 0, 0])]}, t_s=4.0)
    assert fuser.coasting == ["g1"] and fuser.members == {"g2": {"A": "y"}}
    fuser.update({"A": [_local("y", 4.5, [3.0, 0, 0])], "B": [_local("by", 4.5, [4.5, 0, 0])]}, t_s=4.5)
    assert fuser.members == {"g2": {"A": "y", "B": "by"}} and fuser.coasting == ["g1"]
    fuser.update({"A": [_local("y", 5.0, [3.0, 0, 0])], "B": [_local("by", 5.0, [4.5, 0, 0]),
                                                                 _local("bx", 5.0, [0.2, 0, 0])]}, t_s=5.0)
    assert fuser.members == {"g1": {"B": "bx"}, "g2": {"A": "y", "B": "by"}}


def test_coast_s_is_checked() -> None:
    for bad in (-1.0, math.nan, math.inf, "2"):
        with pytest.raises(InputError, match=r"coast_s = .* s: allowed a finite time >= 0"):
            TrackToTrackFuser(coast_s=bad)  # type: ignore[arg-type]


def test_a_handover_across_a_gap_keeps_the_id_even_outside_the_gate() -> None:
    """B hands its local track b9 over to C (C's track carries the id and the handover); C reports it only
    after B has stopped, and 40 m from where the coasting track predicts it: the handover, not the gate,
    decides (as it does between two live members)."""
    fuser = TrackToTrackFuser(coast_s=2.0)
    fuser.update({"B": [_local("b9", 0.0, [0.0, 0, 0])]}, t_s=0.0)
    fuser.update({"B": []}, t_s=0.5)
    assert fuser.coasting == ["g1"]
    hand = (Handover(0.8, "B", "C", "coverage"),)
    (g,) = fuser.update({"C": [_local("b9", 1.0, [40.0, 0, 0], handovers=hand)]}, t_s=1.0)
    assert g.track_id == "g1" and fuser.members == {"g1": {"C": "b9"}} and hand[0] in g.handovers
    # without the handover's id the report is a new target
    fuser = TrackToTrackFuser(coast_s=2.0)
    fuser.update({"B": [_local("b9", 0.0, [0.0, 0, 0])]}, t_s=0.0)
    fuser.update({"B": []}, t_s=0.5)
    assert fuser.update({"C": [_local("c1", 1.0, [40.0, 0, 0], handovers=hand)]}, t_s=1.0)[0].track_id == "g2"


def test_a_track_ended_in_this_call_is_taken_up_only_within_its_coast() -> None:
    """A's track ends in the same call in which B's starts beside it: with coast_s = 0 B's track is a new global
    track (no coasting at all); 10 s after the last fusion with coast_s = 2 too."""
    fuser = TrackToTrackFuser(coast_s=0.0)
    fuser.update({"A": [_local("a1", 0.0, [0.0, 0, 0])]})
    (g,) = fuser.update({"B": [_local("b1", 0.1, [1.0, 0, 0])]})
    assert g.track_id == "g2" and g.handovers == ()
    fuser = TrackToTrackFuser(coast_s=2.0)
    fuser.update({"A": [_local("a1", 0.0, [0.0, 0, 0])]})
    (g,) = fuser.update({"B": [_local("b1", 10.0, [0.0, 0, 0])]})
    assert g.track_id == "g2" and fuser.coasting == []
    fuser = TrackToTrackFuser(coast_s=2.0)
    fuser.update({"A": [_local("a1", 0.0, [0.0, 0, 0])]})
    assert fuser.update({"B": [_local("b1", 1.5, [0.0, 0, 0])]})[0].track_id == "g1"


def test_a_mecs_clock_decades_ahead_does_not_break_the_fusion() -> None:
    """B's clock is 60 years off: its track sets the fusion time, A's track (0.1 s) is too old to fuse and its
    global track ends; nothing is predicted over 2e9 s (which raised)."""
    fuser = TrackToTrackFuser(coast_s=2.0)
    fuser.update({"A": [_local("a1", 0.0, [0.0, 0, 0])]})
    out = fuser.update({"A": [_local("a1", 0.1, [0.0, 0, 0])], "B": [_local("b1", 2e9, [0.0, 0, 0])]})
    assert [t.track_id for t in out] == ["g2"] and fuser.coasting == []


def test_every_member_lost_in_one_call_may_hand_the_track_over() -> None:
    fuser = TrackToTrackFuser(coast_s=2.0)
    fuser.update({"A": [_local("A-1", 0.0, [0.0, 0, 0])], "B": [_local("B-7", 0.0, [0.3, 0, 0])]})
    assert fuser.members == {"g1": {"A": "A-1", "B": "B-7"}}
    fuser.update({}, t_s=0.5)
    hand = (Handover(0.8, "A", "C", "coverage"),)
    (g,) = fuser.update({"C": [_local("A-1", 1.0, [60.0, 0, 0], handovers=hand)]})
    assert g.track_id == "g1" and fuser.members == {"g1": {"C": "A-1"}}


def test_a_coasting_track_does_not_take_up_a_stale_local_track() -> None:
    """MECS hosts' messages reached the core in bursts (the urban demo over 22 frames: all of the Wi-Fi host's up
    to t = 18 s first, then operator b's from t = 0): b's car2 track of t = 0, predicted 18 s forward, gated with
    a coasting global track of car1 and took its id.  A local track whose own latest state is more than coast_s
    behind the fusion time does not take a coasting track up (it starts its own); one within it does."""
    fuser = TrackToTrackFuser(coast_s=2.0, accel_psd_m2ps3=1.0)
    for t in (16.0, 17.0, 18.0):
        fuser.update({"A": [_along_x("a1", t)]}, t_s=t)
    fuser.update({"A": []}, t_s=18.5)
    assert fuser.coasting == ["g1"]
    (g,) = fuser.update({"B": [_local("b1", 0.0, [0.0, 0.0, 0.0], [10.0, 0.0, 0.0])]}, t_s=18.5)
    assert g.track_id == "g2" and fuser.coasting == ["g1"]
    fresh = fuser.update({"B": [_local("b1", 0.0, [0.0, 0.0, 0.0], [10.0, 0.0, 0.0]),
                                _along_x("b2", 18.5)]}, t_s=18.5)
    assert {t.track_id for t in fresh} == {"g1", "g2"} and fuser.members["g1"] == {"B": "b2"}
