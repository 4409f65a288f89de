"""HetNet space and time calibration (article §V-1) against simulated truth, and the Wi-Fi AP config.

Four targets drive on circles of different centres (turning: their velocities take every direction, so a
clock offset cannot hide in a bias).  The reference network reports them at 50 Hz, the other network at
10 Hz on its own clock and in its own frame, each with noise drawn from the covariance it reports.  The
truth of the offset, bias and yaw is drawn per seed (up to 3 ms, 5 m, 5 degrees).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sdr_isac import config, radio
from sdr_isac.errors import InputError
from sdr_isac.fusion.calibration import HetNetCalibration, estimate_calibration, rotation_z
from sdr_isac.fusion.records import TargetEstimate, Track
from sdr_isac.waveform import IsacFrame

REPO = Path(__file__).resolve().parents[2]
SIGMA_REF_M, SIGMA_REF_MPS = 0.1, 0.1          # reference network: position and velocity noise per axis


def circle(centre, radius_m, speed_mps, phase_rad):
    """Position and velocity (shape (n, 3) each) of a target on a circle, at times t (s)."""
    omega = speed_mps / radius_m

    def at(t):
        a = phase_rad + omega * np.asarray(t, float)
        pos = np.column_stack([centre[0] + radius_m * np.cos(a), centre[1] + radius_m * np.sin(a), np.ones(a.size)])
        vel = np.column_stack([-speed_mps * np.sin(a), speed_mps * np.cos(a), np.zeros(a.size)])
        return pos, vel
    return at


TARGETS = {"car0": circle((60.0, 40.0), 40.0, 22.0, 0.0), "car1": circle((-80.0, 120.0), 60.0, 25.0, 2.0),
           "car2": circle((150.0, -60.0), 50.0, 18.0, 4.0), "car3": circle((20.0, -150.0), 70.0, 28.0, 1.0)}


def random_cov(rng, sigma_lo, sigma_hi):
    """A 2-D covariance with random axes and standard deviations in [sigma_lo, sigma_hi], m²."""
    s = rng.uniform(sigma_lo, sigma_hi, 2)
    r = rotation_z(rng.uniform(0, math.pi))[:2, :2]
    return r @ np.diag(s**2) @ r.T


def reference_estimates(rng, at, times):
    pos, vel = at(times)
    out = []
    for t, p, v in zip(times, pos, vel):
        out.append(TargetEstimate.planar(p[:2] + rng.normal(0, SIGMA_REF_M, 2), np.eye(2) * SIGMA_REF_M**2, 1.0,
                                         t_s=float(t), velocity_xy_mps=v[:2] + rng.normal(0, SIGMA_REF_MPS, 2),
                                         cov_velocity_xy_mps2=np.eye(2) * SIGMA_REF_MPS**2))
    return out


def other_estimates(rng, at, own_times, dt, bias, yaw):
    """Reports p_o = R^T (p(t + dt) - b) + n, n ~ N(0, C_o), in the other network's frame and clock."""
    pos, vel = at(own_times + dt)
    rot = rotation_z(yaw)
    out = []
    for t, p, v in zip(own_times, pos, vel):
        cov = random_cov(rng, 0.1, 0.25)
        xy = (rot.T @ (p - bias))[:2] + rng.multivariate_normal(np.zeros(2), cov)
        out.append(TargetEstimate.planar(xy, cov, 1.0, t_s=float(t), velocity_xy_mps=(rot.T @ v)[:2],
                                         cov_velocity_xy_mps2=np.eye(2) * 0.04))
    return out


def scenario(seed, duration_s=6.0):
    rng = np.random.default_rng(seed)
    dt = rng.uniform(-3e-3, 3e-3)
    bias = np.array([*rng.uniform(-5.0, 5.0, 2), 0.0])
    yaw = math.radians(rng.uniform(-5.0, 5.0))
    ref_times = np.arange(0.0, duration_s, 0.02)
    own_times = np.arange(0.0137, duration_s, 0.1)
    ref = {k: reference_estimates(rng, at, ref_times) for k, at in TARGETS.items()}
    oth = {k: other_estimates(rng, at, own_times, dt, bias, yaw) for k, at in TARGETS.items()}
    return rng, (dt, bias, yaw), ref, oth


def truth_vector(dt, bias, yaw):
    return np.array([dt, bias[0], bias[1], yaw])


def test_offsets_are_within_three_sigma_and_the_normalised_errors_are_chi_square():
    nees = []
    for seed in range(8):
        _, (dt, bias, yaw), ref, oth = scenario(seed)
        cal = estimate_calibration(ref, oth)
        err = cal.vector - truth_vector(dt, bias, yaw)
        z = err / cal.std
        assert np.all(np.abs(z) < 3.0), (seed, z)
        nees.append(float(err @ np.linalg.solve(cal.covariance, err)))
        # the residuals of a right model with right covariances are chi-square with dof degrees of freedom
        assert stats.chi2.ppf(0.001, cal.dof) < cal.chi_square < stats.chi2.ppf(0.999, cal.dof)
        assert cal.dof == 2 * cal.num_samples - 4
        assert cal.std[0] < 1e-3                               # the offset is resolved below a millisecond
        assert not cal.offset_at_bound
    total = sum(nees)                                          # 8 seeds x 4 parameters: chi-square(32)
    assert stats.chi2.ppf(0.001, 32) < total < stats.chi2.ppf(0.999, 32), nees


def fuse(p1, c1, p2, c2):
    """Information-weighted fusion of two independent estimates (x, y)."""
    i1, i2 = np.linalg.inv(c1), np.linalg.inv(c2)
    cov = np.linalg.inv(i1 + i2)
    return cov @ (i1 @ p1 + i2 @ p2), cov


def test_fused_rmse_with_calibration_is_near_the_crb_and_better_than_without():
    """Calibrate on 6 s, then fuse fresh reports of the next 2 s with fresh reference estimates of the same
    instants: the RMSE against the truth matches sqrt(mean trace) of the fused covariance (the reports'
    CRB-level covariances plus the calibration's propagated uncertainty)."""
    sq_with, sq_without, expected = [], [], []
    for seed in range(6):
        rng, (dt, bias, yaw), ref, oth = scenario(100 + seed)
        cal = estimate_calibration(ref, oth)
        own_times = np.arange(6.05, 8.0, 0.1)
        for at in TARGETS.values():
            for report in other_estimates(rng, at, own_times, dt, bias, yaw):
                truth, _ = at(np.array([report.t_s + dt]))
                ref_now = truth[0, :2] + rng.normal(0, SIGMA_REF_M, 2)
                c_ref = np.eye(2) * SIGMA_REF_M**2
                mapped = cal.apply(report)
                assert mapped.t_s == pytest.approx(report.t_s + cal.offset_s)
                p_with, c_with = fuse(ref_now, c_ref, mapped.position_m[:2], mapped.cov_position_m2[:2, :2])
                p_without, _ = fuse(ref_now, c_ref, report.position_m[:2], report.cov_position_m2[:2, :2])
                sq_with.append(float(np.sum((p_with - truth[0, :2]) ** 2)))
                sq_without.append(float(np.sum((p_without - truth[0, :2]) ** 2)))
                expected.append(float(np.trace(c_with)))
    rmse_with, rmse_without = math.sqrt(np.mean(sq_with)), math.sqrt(np.mean(sq_without))
    crb = math.sqrt(np.mean(expected))
    # 6 seeds x 4 targets x 20 reports x 2 axes: the RMSE's relative standard error is about 3 %
    assert 0.85 < rmse_with / crb < 1.15, (rmse_with, crb)
    assert rmse_without > 5 * rmse_with, (rmse_without, rmse_with)


def test_apply_maps_into_the_reference_frame_and_propagates_the_uncertainty():
    cov = np.diag([1e-8, 0.01, 0.04, 0.0004])
    cal = HetNetCalibration(offset_s=2e-3, bias_m=np.array([3.0, -4.0, 0.0]), yaw_rad=math.radians(30.0),
                            covariance=cov, planar=True, chi_square=0.0, dof=1, num_samples=3)
    est = TargetEstimate.planar([100.0, 0.0], np.diag([0.25, 0.25]), 1.0, t_s=5.0, velocity_xy_mps=[10.0, 0.0],
                                cov_velocity_xy_mps2=np.eye(2) * 0.01)
    out = cal.apply(est)
    c, s = math.cos(math.radians(30.0)), math.sin(math.radians(30.0))
    assert out.position_m[:2] == pytest.approx([100 * c + 3.0, 100 * s - 4.0])
    assert out.position_m[2] == 1.0 and out.t_s == pytest.approx(5.002)
    assert out.velocity_mps[:2] == pytest.approx([10 * c, 10 * s])
    # a 0.02 rad yaw error at 100 m moves the point 2 m across its bearing: variance 100**2 * 0.0004 = 4 m²
    # across, on top of 0.25 m² of the report and the bias variance along that direction
    across = np.array([-s, c, 0.0])
    bias_cov = np.diag([0.01, 0.04, 0.0])
    assert across @ out.cov_position_m2 @ across == pytest.approx(0.25 + 4.0 + across @ bias_cov @ across + 1e-8 *
                                                                  (across @ out.velocity_mps) ** 2)
    assert out.cov_position_m2[2, 2] == 0.0                     # the height stays known
    with pytest.raises(InputError, match="TargetEstimate"):
        cal.apply("not an estimate")                            # type: ignore[arg-type]


def test_an_offset_beyond_the_bound_is_flagged_and_logged(caplog):
    """The fit stops on the bound; the result says so (its covariance is the unconstrained one there)."""
    _, (dt, _, _), ref, oth = scenario(3)
    assert abs(dt) > 2e-3
    bound = 0.5 * abs(dt)
    with caplog.at_level("WARNING", logger="sdr_isac.fusion.calibration"):
        cal = estimate_calibration(ref, oth, max_offset_s=bound)
    assert cal.offset_at_bound
    assert abs(cal.offset_s) == pytest.approx(bound, rel=1e-9, abs=0) and np.sign(cal.offset_s) == np.sign(dt)
    assert "max_offset_s" in caplog.text and "lies on its bound" in caplog.text


def test_one_static_target_is_not_observable():
    rng = np.random.default_rng(7)
    times = np.arange(0.0, 4.0, 0.02)
    still = [TargetEstimate.planar(np.array([50.0, 20.0]) + rng.normal(0, 0.1, 2), np.eye(2) * 0.01, 1.0,
                                   t_s=float(t), velocity_xy_mps=rng.normal(0, 0.1, 2),
                                   cov_velocity_xy_mps2=np.eye(2) * 0.01) for t in times]
    reports = [TargetEstimate.planar(np.array([45.0, 22.0]) + rng.normal(0, 0.1, 2), np.eye(2) * 0.01, 1.0,
                                     t_s=float(t)) for t in np.arange(0.05, 3.9, 0.1)]
    with pytest.raises(InputError, match="clock offset is not observable"):
        estimate_calibration({"a": still}, {"a": reports})


def test_targets_moving_with_one_velocity_cannot_tell_the_offset_from_a_bias():
    rng, _, _, _ = scenario(3)
    line = lambda t: (np.column_stack([10 + 20 * np.asarray(t), np.full(np.size(t), 5.0), np.ones(np.size(t))]),  # noqa: E731
                      np.tile([20.0, 0.0, 0.0], (np.size(t), 1)))
    ref = {"a": reference_estimates(rng, line, np.arange(0.0, 4.0, 0.02))}
    oth = {"a": other_estimates(rng, line, np.arange(0.013, 4.0, 0.1), 1e-3, np.zeros(3), 0.0)}
    with pytest.raises(InputError, match="clock offset is not observable.*different directions"):
        estimate_calibration(ref, oth)


def test_a_track_serves_as_the_reference_and_bad_input_is_named():
    _, (dt, bias, yaw), ref, oth = scenario(21)
    tracks = {}
    for k, ests in ref.items():
        states = np.array([[*e.position_m, *e.velocity_mps] for e in ests])
        covs = np.zeros((len(ests), 6, 6))
        covs[:, :3, :3] = [e.cov_position_m2 for e in ests]
        covs[:, 3:, 3:] = [e.cov_velocity_mps2 for e in ests]
        tracks[k] = Track(k, [e.t_s for e in ests], states, covs)
    cal = estimate_calibration(tracks, oth)
    assert np.all(np.abs(cal.vector - truth_vector(dt, bias, yaw)) < 4 * cal.std)
    with pytest.raises(InputError, match="share no target"):
        estimate_calibration({"x": ref["car0"]}, {"y": oth["car0"]})
    with pytest.raises(InputError, match="max_offset_s"):
        estimate_calibration(ref, oth, max_offset_s=-1.0)
    with pytest.raises(InputError, match="at least 2"):
        estimate_calibration({"car0": ref["car0"][:1]}, {"car0": oth["car0"]})
    with pytest.raises(InputError, match="not positive definite"):
        estimate_calibration(ref, oth, planar=False)          # planar estimates: no variance in z
    with pytest.raises(InputError, match="mapping"):
        estimate_calibration(None, oth)                       # type: ignore[arg-type]
    with pytest.raises(InputError, match="TargetEstimates"):
        estimate_calibration(ref, {"car0": [1.0, 2.0]})       # type: ignore[dict-item]
    with pytest.raises(InputError, match="planar"):
        estimate_calibration(ref, oth, planar="yes")          # type: ignore[arg-type]
    with pytest.raises(InputError, match="samples"):
        estimate_calibration(ref, {k: v[:1] for k, v in oth.items() if k == "car0"})


finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(st.floats(-1e3, 1e3), finite, finite, st.tuples(finite, finite), st.tuples(finite, finite),
       st.floats(-1.0, 1.0))
def test_apply_is_a_rigid_motion_of_the_plane(yaw, bx, by, p1, p2, dt):
    cal = HetNetCalibration(offset_s=dt, bias_m=np.array([bx, by, 0.0]), yaw_rad=yaw, covariance=np.zeros((4, 4)),
                            planar=True, chi_square=0.0, dof=0, num_samples=0)
    a, b = (TargetEstimate.planar(p, np.eye(2), 2.0, t_s=1.0) for p in (p1, p2))
    ma, mb = cal.apply(a), cal.apply(b)
    d_before = np.linalg.norm(a.position_m - b.position_m)
    assert np.linalg.norm(ma.position_m - mb.position_m) == pytest.approx(d_before, rel=1e-9, abs=1e-6)
    assert ma.cov_position_m2[:2, :2] == pytest.approx(np.eye(2), abs=1e-9)      # isotropic: unchanged
    assert ma.t_s == 1.0 + dt and ma.position_m[2] == 2.0


# ---------------------------------------------------------------------------- the 802.11-style access point

def test_wifi_ap_config_has_the_80211_numerology_and_makes_a_frame():
    cfg = config.load(REPO / "hw_configs/wifi_ap.toml")
    frame = cfg.frame
    # IEEE 802.11a/g/n 20 MHz OFDM (IEEE 802.11-2020, 17.3.2.5 and Table 17-5): 64-point FFT,
    # delta_f = 20 MHz / 64 = 312.5 kHz, T_FFT = 3.2 us, T_GI = 0.8 us, T_SYM = 4 us, 52 used subcarriers
    assert frame.subcarrier_spacing_hz == 312.5e3
    assert frame.fft_size == 64 and frame.num_subcarriers == 52
    assert frame.sample_rate_hz == 20e6
    assert frame.fft_size / frame.sample_rate_hz == pytest.approx(3.2e-6)
    assert frame.explicit_cp_samples() == (16,)                   # 0.8 us at 20 Msps
    assert frame.carrier_hz == 5.8e9
    built = IsacFrame(frame)
    assert built.num_samples == frame.total_symbols * 80         # 4 us = 80 samples per symbol
    with radio.open_radio(cfg) as r:
        r.tx(built.samples())
        capture = r.rx(built.num_samples)
    assert capture.iq.shape[-1] == built.num_samples and capture.sample_rate_hz == 20e6
    assert np.all(np.isfinite(capture.iq)) and np.any(capture.iq != 0)


def test_a_reference_without_velocities_uses_the_difference_of_its_positions():
    """Positions only, 100 times more precise than the other network's: the central difference carries them."""
    rng = np.random.default_rng(5)
    dt, bias, yaw = 2e-3, np.array([-3.0, 4.0, 0.0]), math.radians(-4.0)
    times = np.arange(0.0, 6.0, 0.02)
    ref = {k: [TargetEstimate.planar(p[:2] + rng.normal(0, 1e-3, 2), np.eye(2) * 1e-6, 1.0, t_s=float(t))
               for t, p in zip(times, at(times)[0])] for k, at in TARGETS.items()}
    oth = {k: other_estimates(rng, at, np.arange(0.0137, 6.0, 0.1), dt, bias, yaw) for k, at in TARGETS.items()}
    cal = estimate_calibration(ref, oth)
    assert np.all(np.abs(cal.vector - truth_vector(dt, bias, yaw)) < 3 * cal.std), \
        (cal.vector - truth_vector(dt, bias, yaw)) / cal.std
    assert stats.chi2.ppf(0.001, cal.dof) < cal.chi_square < stats.chi2.ppf(0.999, cal.dof)


def test_the_model_is_evaluated_once_per_point_the_solver_asks_for(monkeypatch):
    """least_squares asks for the residuals and then the Jacobian at the same point: one evaluation serves both,
    and the fit is the same as with every call evaluated afresh."""
    from sdr_isac.fusion import calibration as cal_mod
    _, _, ref, oth = scenario(3)
    points: list[tuple[int, bytes]] = []
    real = cal_mod._system

    def counted(x, *args, **kwargs):
        # a point of one system: the whitening is fixed for one least-squares run (each pass has its own)
        points.append((id(kwargs.get("whiten", args[-1] if args else None)), np.asarray(x, np.float64).tobytes()))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(cal_mod, "_system", counted)
    cached = estimate_calibration(ref, oth)
    assert len(points) == len(set(points))          # no point of a system evaluated twice
    evaluations = len(points)
    monkeypatch.setattr(cal_mod, "_LastPoint", _Fresh)
    fresh = estimate_calibration(ref, oth)
    assert len(points) - evaluations > 1.5 * evaluations      # afresh: residuals and Jacobian apart
    np.testing.assert_array_equal(cached.vector, fresh.vector)
    np.testing.assert_array_equal(cached.covariance, fresh.covariance)


class _Fresh:
    """_LastPoint without its memory: every call evaluates the system."""

    def __init__(self, system):
        self._system = system

    def residual(self, x):
        return self._system(x)[0]

    def jacobian(self, x):
        return self._system(x)[1]


def test_apply_gives_the_joint_covariance_the_perturbed_transforms_show():
    """Position and velocity through the calibration as one state: draw the calibration's parameters from its
    covariance and the estimate's state from its joint covariance (with a cross term), map each draw with the
    exact transform, and compare the empirical covariance of the mapped states with what ``apply`` reports:
    its cross block too, which the calibration creates (the yaw turns position and velocity together) even
    for an estimate without one."""
    rng = np.random.default_rng(8)
    cov_cal = np.diag([1e-6, 0.04, 0.09, 0.0009])                   # dt, bx, by, yaw
    truth_cal = np.array([2e-3, 3.0, -4.0, math.radians(30.0)])
    cal = HetNetCalibration(offset_s=truth_cal[0], bias_m=np.array([*truth_cal[1:3], 0.0]), yaw_rad=truth_cal[3],
                            covariance=cov_cal, planar=True, chi_square=0.0, dof=1, num_samples=3)
    for cross in (np.array([[0.3, 0.1], [-0.2, 0.4]]), None):
        est = TargetEstimate.planar([100.0, 20.0], [[1.0, 0.2], [0.2, 0.5]], 1.0, t_s=5.0,
                                    velocity_xy_mps=[10.0, -3.0], cov_velocity_xy_mps2=[[0.5, 0.0], [0.0, 0.8]],
                                    cov_position_velocity_xy_m2ps=cross)
        out = cal.apply(est)
        joint = est.covariance[[0, 1, 3, 4]][:, [0, 1, 3, 4]]
        n = 20000
        dt, bx, by, yaw = rng.multivariate_normal(truth_cal, cov_cal, n).T
        x = rng.multivariate_normal(np.r_[est.position_m[:2], est.velocity_mps[:2]], joint, n)
        rot = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]).transpose(2, 0, 1)
        v = np.einsum("nij,nj->ni", rot, x[:, 2:])
        # the reported instant is off by the clock error: the target is where it was dt - offset earlier
        p = np.einsum("nij,nj->ni", rot, x[:, :2]) + np.c_[bx, by] - v * (dt - truth_cal[0])[:, None]
        empirical = np.cov(np.c_[p, v].T)
        reported = out.covariance[[0, 1, 3, 4]][:, [0, 1, 3, 4]]
        scale = np.sqrt(np.outer(np.diag(reported), np.diag(reported)))
        # 20000 draws: each normalised entry has a standard error of about 0.01
        assert np.max(np.abs(empirical - reported) / scale) < 0.05, (empirical, reported)
        assert np.max(np.abs(reported[:2, 2:]) / scale[:2, 2:]) > 0.1           # a cross term that matters
