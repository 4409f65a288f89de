"""BS–RIS sensing: the scan model against the scene, the detection threshold, the angle estimator against its CRB."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdr_isac.channel.cim import add_cim_noise, point_target_cim
from sdr_isac.channel.scene import Scene
from sdr_isac.config import FrameConfig, NodeConfig, RisConfig, SceneConfig, TargetConfig
from sdr_isac.errors import InputError
from sdr_isac.fusion.modes import ris as fr
from sdr_isac.fusion.multiband import Band, pilot_mask

C = 299_792_458.0
BS = np.array([0.0, 30.0, 10.0])
RIS = np.array([50.0, 50.0, 6.0])
TARGET = np.array([90.0, 5.0, 1.5])
STEER = np.arange(-60.0, 60.1, 4.0)


def geometry() -> fr.RisGeometry:
    return fr.RisGeometry(BS, RIS, -90.0, 16, 0.5)


def small_band(num_symbols: int = 16, num_subcarriers: int = 64) -> Band:
    return Band("t", 24e9, 120e3, 1.33e-6, pilot_mask(num_symbols, num_subcarriers))


def test_scan_gain_is_the_scenes_array_factor():
    """The scene (channel layer) computes the RIS path from its element grid; the scan model must match it."""
    g = geometry()
    cfg = SceneConfig(noise=False, nodes=(NodeConfig(id="bs0", position_m=tuple(BS)),),
                      targets=(TargetConfig(id="t0", position_m=tuple(TARGET), rcs_m2=10.0),),
                      ris=(RisConfig(id="ris0", position_m=tuple(RIS), yaw_deg=-90.0, num_elements=(16, 8)),))
    scene = Scene(cfg, FrameConfig(numerology=3, num_rb=21, carrier_hz=24e9))
    u_t = float(g.local(TARGET)[1])
    rng = np.random.default_rng(0)

    def double_pass(phi_deg: float) -> complex:
        scene.set_ris_steering("ris0", g.incoming_deg, phi_deg)
        # (the scene drops a path whose array factor is exactly zero)
        return next((p.gain for p in scene.paths("bs0", "bs0", 0.0, rng) if p.source == "ris0/t0"), 0j)

    ref = double_pass(math.degrees(math.asin(u_t)))
    ratio = np.array([double_pass(phi) for phi in STEER]) / ref
    model = fr.scan_gain(np.sin(np.deg2rad(STEER)), u_t, 16, 0.5)
    # the scene sums spherical waves over the elements, the scan model is their far-field limit: 50 m from a
    # 16 x 8 surface at 24 GHz (far field beyond 2 D^2 / lambda = 1.6 m) they differ by < 1e-5 of the main lobe
    np.testing.assert_allclose(np.abs(ratio), model, atol=1e-5)      # (and paths below its power floor)
    assert float(np.max(model)) < 1.0 and float(np.min(model)) >= 0.0


def test_threshold_holds_the_design_false_alarm_rate():
    """Noise only: the fraction of scans that cross the threshold is the design pfa (binomial 3-sigma)."""
    band, pfa, trials = small_band(), 0.2, 400
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(trials):
        cims = add_cim_noise(np.zeros((6, band.num_symbols, band.num_subcarriers)), 2.5, rng)
        det = fr.detect_scan(band, cims, pfa, 0.0, 40.5 / (64 * 120e3))
        hits += det.detected
        assert det.num_cells == 6 * 16 * 41
    assert abs(hits / trials - pfa) < 3 * math.sqrt(pfa * (1 - pfa) / trials)
    assert fr.scan_threshold(1e-3, 1) == pytest.approx(-math.log(1e-3))
    assert fr.scan_threshold(1e-3, 10**6) == pytest.approx(math.log(1e9), rel=1e-3)


def test_scan_angle_is_exact_without_noise():
    u_true, beta = 0.6625, 0.37
    sines = np.sin(np.deg2rad(STEER))
    phases = np.exp(2j * np.pi * np.random.default_rng(2).random(STEER.size))
    u, b = fr.scan_angle(beta * fr.scan_gain(sines, u_true, 16, 0.5) * phases, STEER, 16, 0.5)
    assert u == pytest.approx(u_true, abs=1e-7)
    assert b == pytest.approx(beta, rel=1e-6)


@pytest.mark.parametrize("snr_db", [-20.0, -5.0])
def test_scan_angle_reaches_its_crb(snr_db):
    """z_s = beta e^{j theta_s} g_s(u) + w: the ML cone sine's RMSE is the CRB of scan_angle_crb (n: 56 x 256 REs)."""
    u_true, n, trials = 0.30, 56 * 256, 400
    gamma = 10 ** (snr_db / 10)
    sines = np.sin(np.deg2rad(STEER))
    rng = np.random.default_rng(3)
    clean = math.sqrt(gamma) * fr.scan_gain(sines, u_true, 16, 0.5)
    errors = []
    for _ in range(trials):
        w = (rng.standard_normal(STEER.size) + 1j * rng.standard_normal(STEER.size)) * math.sqrt(0.5 / n)
        z = clean * np.exp(2j * np.pi * rng.random(STEER.size)) + w
        errors.append(fr.scan_angle(z, STEER, 16, 0.5)[0] - u_true)
    rmse = float(np.sqrt(np.mean(np.square(errors))))
    bound = math.sqrt(fr.scan_angle_crb(gamma, n, STEER, u_true, 16, 0.5))
    assert 0.85 * bound < rmse < 1.2 * bound


def test_ris_position_inverts_the_geometry():
    g = geometry()
    r = float(np.linalg.norm(TARGET - RIS))
    p, az, el = fr.ris_position(g, r, float(g.local(TARGET)[1]), TARGET[2])
    np.testing.assert_allclose(p, TARGET, atol=1e-9)
    assert el == pytest.approx(math.asin((TARGET[2] - RIS[2]) / r))
    local = g.local(TARGET)
    assert az == pytest.approx(math.atan2(local[1], local[0]))


@pytest.mark.parametrize("dz", [-4.5, 0.0, 45.0])
def test_position_covariance_matches_the_spread_of_the_position_it_describes(dz):
    """Range and cone sine with Gaussian errors through ris_position, against the delta method: with a height
    difference the azimuth depends on the range too, which the covariance ignored (a UAV 45 m above the surface:
    sqrt of the larger eigenvalue 0.454 m claimed, 0.513 m spread; NEES 4 for 2 dof)."""
    g = fr.RisGeometry(np.array([0.0, 30.0, 10.0]), np.array([50.0, 50.0, 6.0]), -90.0, 16, 0.5)
    rng = np.random.default_rng(0)
    r, az_true, sigma_r, sigma_u = 60.0, math.radians(41.6), 0.3, 0.002
    u = math.sin(az_true) * math.cos(math.asin(dz / r))
    _, az, el = fr.ris_position(g, r, u, 6.0 + dz)
    cov = fr.position_covariance(g, r, az, el, sigma_r**2, sigma_u**2 / (math.cos(az) * math.cos(el)) ** 2)
    pts = np.array([fr.ris_position(g, r + sigma_r * rng.standard_normal(), u + sigma_u * rng.standard_normal(),
                                    6.0 + dz)[0][:2] for _ in range(4000)])
    d = pts - pts.mean(axis=0)
    nees = float(np.mean(np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d)))
    assert 1.85 < nees < 2.15                                    # chi-square(2) mean, 4000 draws: sd 0.03
    np.testing.assert_allclose(np.sqrt(np.linalg.eigvalsh(cov)), np.sqrt(np.linalg.eigvalsh(np.cov(pts.T))),
                               rtol=0.05)


def test_estimate_through_the_ris_end_to_end():
    """A synthetic scan: the path BS-RIS-target-RIS-BS with the array factor of each steering, in noise."""
    g = geometry()
    band = Band("t", 24e9, 120e3, 1.33e-6, pilot_mask(28, 256))
    r_t = float(np.linalg.norm(TARGET - RIS))
    u_t = float(g.local(TARGET)[1])
    v_r = -7.5
    tau = (2 * g.bs_ris_distance_m + 2 * r_t) / C
    f_d = -2 * v_r * band.carrier_hz / C
    gains = fr.scan_gain(np.sin(np.deg2rad(STEER)), u_t, 16, 0.5)
    rng = np.random.default_rng(4)
    gamma = 10 ** (-10 / 10)
    cims = np.stack([point_target_cim(np.arange(256), band.symbol_times_s, 120e3, [tau], [f_d],
                                      [math.sqrt(gamma) * gk * np.exp(2j * np.pi * rng.random())]) for gk in gains])
    cims = add_cim_noise(cims, 1.0, rng)
    est = fr.estimate_ris_target(band, cims, STEER, g, max_range_m=140.0, height_m=TARGET[2])
    assert est is not None and gains[est.index] > 0.7          # the strongest steering or its neighbour
    assert abs(est.range_m - r_t) < 4 * math.sqrt(est.var_range_m2)
    assert abs(est.velocity_mps - v_r) < 4 * math.sqrt(est.var_velocity_mps2)
    local = g.local(TARGET)
    assert abs(est.azimuth_rad - math.atan2(local[1], local[0])) < 4 * math.sqrt(est.var_azimuth_rad2)
    assert np.linalg.norm(est.position_m - TARGET) < 4 * math.sqrt(np.trace(est.cov_position_m2))
    assert 10 * math.log10(est.snr_re_steered) == pytest.approx(-10.0, abs=1.0)
    # nothing there: no report (the design pfa is 1e-3)
    assert fr.estimate_ris_target(band, add_cim_noise(np.zeros_like(cims), 1.0, rng), STEER, g,
                                  max_range_m=140.0) is None


def test_bad_inputs_say_what_is_wrong():
    band = small_band()
    with pytest.raises(InputError, match=r"behind the RIS.*ris_yaw_deg"):
        fr.RisGeometry(BS, RIS, 90.0)
    with pytest.raises(InputError, match=r"spacing_wavelengths = 2.0 wavelengths: allowed 0 < d <= 1"):
        fr.RisGeometry(BS, RIS, -90.0, 16, 2.0)
    with pytest.raises(InputError, match=r"num_elements_y = 1: allowed a whole number >= 2"):
        fr.RisGeometry(BS, RIS, -90.0, 1)
    with pytest.raises(InputError, match=r"bs_m = .* m: allowed three finite coordinates"):
        fr.RisGeometry(np.array([0.0, 1.0]), RIS)
    with pytest.raises(InputError, match=r"cims has shape \(3, 8, 64\): allowed \(S, 16, 64\)"):
        fr.detect_scan(band, np.zeros((3, 8, 64), complex))
    with pytest.raises(InputError, match=r"pfa = 1.5: allowed a false-alarm probability 0 < pfa < 1"):
        fr.scan_threshold(1.5, 10)
    with pytest.raises(InputError, match=r"delay window .* holds no delay bin"):
        fr.detect_scan(band, np.ones((2, 16, 64), complex), 1e-3, 1.0, 2.0)
    with pytest.raises(InputError, match=r"steer_deg has 31 angles and cims 2 frames"):
        fr.estimate_ris_target(band, np.ones((2, 16, 64), complex), STEER, geometry())
    with pytest.raises(InputError, match=r"steer_deg = .* deg: allowed two or more finite outgoing azimuths"):
        fr.scan_angle(np.ones(2), [0.0, 95.0], 16, 0.5)
    with pytest.raises(InputError, match=r"snr_re = -1.0: allowed a finite linear SNR > 0"):
        fr.scan_angle_crb(-1.0, 100, STEER, 0.3, 16, 0.5)
    with pytest.raises(InputError, match=r"range_m = 1.0 m: allowed a range from the RIS greater than"):
        fr.ris_position(geometry(), 1.0, 0.3, height_m=1.5)
    with pytest.raises(InputError, match=r"max_range_m = -5.0 m: allowed a finite range > 0"):
        fr.estimate_ris_target(band, np.ones((31, 16, 64), complex), STEER, geometry(), max_range_m=-5.0)
