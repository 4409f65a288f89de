"""A waypoint target AT its first waypoint moves along the first leg (it was held still there, so every urban
target showed 0 m/s in the first frame, at scene time 0).  Truth by hand from the waypoints, independently of
sdr_isac.channel.geometry.
"""
import dataclasses
import math
from importlib import resources

import numpy as np
import pytest

from sdr_isac import config as config_mod
from sdr_isac import radio, sensing
from sdr_isac.channel.geometry import target_state
from sdr_isac.config.scene import TargetConfig
from sdr_isac.waveform import IsacFrame

LEG = ((0.0, 0.0, 0.0, 1.0), (10.0, 100.0, 0.0, 1.0), (20.0, 100.0, 50.0, 1.0))   # 10 m/s along x, then 5 m/s along y


@pytest.mark.parametrize(("t_s", "position_m", "velocity_mps"), [
    (-1.0, (0.0, 0.0, 1.0), (0.0, 0.0, 0.0)),          # before the first waypoint: still, at the first point
    (0.0, (0.0, 0.0, 1.0), (10.0, 0.0, 0.0)),          # AT the first waypoint: on leg 0 (was (0, 0, 0))
    (1e-9, (1e-8, 0.0, 1.0), (10.0, 0.0, 0.0)),
    (10.0, (100.0, 0.0, 1.0), (0.0, 5.0, 0.0)),        # at an interior waypoint: the outgoing leg (unchanged)
    (20.0, (100.0, 50.0, 1.0), (0.0, 0.0, 0.0)),       # at and after the last: still
    (1e300, (100.0, 50.0, 1.0), (0.0, 0.0, 0.0)),
])
def test_waypoint_state_is_right_continuous(t_s, position_m, velocity_mps):
    pos, vel = target_state(TargetConfig(waypoints=LEG), t_s)
    np.testing.assert_allclose(pos, position_m, atol=1e-12)
    np.testing.assert_allclose(vel, velocity_mps, atol=1e-12)


def test_single_waypoint_target_is_still_at_its_time():
    pos, vel = target_state(TargetConfig(waypoints=((0.0, 1.0, 2.0, 3.0),)), 0.0)
    np.testing.assert_array_equal(vel, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(pos, [1.0, 2.0, 3.0])


def test_urban_first_frame_detects_the_moving_car_at_its_radial_velocity():
    """bs_b2's first frame (scene time 0) of the urban demo: car3, 21.5 m away, moves at -12 m/s along x."""
    text = resources.files("sdr_isac").joinpath("urban.toml").read_text(encoding="utf-8") + \
        "\n[sensing]\nrefine = false\nmax_detections = 8\nmax_range_m = 700.0\n"
    cfg = config_mod.loads(text, "urban")
    cfg = dataclasses.replace(cfg, radio=dataclasses.replace(cfg.radio, node_id="bs_b2"))
    # truth by hand: car3 (460, 450, 1) m -> (-20, 450, 1) m in 40 s; bs_b2 at (450, 450, 20) m
    d = np.array([460.0 - 450.0, 0.0, 1.0 - 20.0])
    v = np.array([-480.0 / 40.0, 0.0, 0.0])
    true_range_m, true_velocity_mps = float(np.linalg.norm(d)), float(v @ d / np.linalg.norm(d))   # 21.47 m, -5.59 m/s
    with radio.open_radio(cfg) as r:
        frame = IsacFrame(r.frame)
        r.tx(frame.samples(), cyclic=True)
        capture = r.rx(r.capture_length(frame.num_samples))            # frame 0, scene time 0
    result = sensing.process(capture, frame, cfg.sensing)
    near = [det for det in result.detections if abs(det.range_m - true_range_m) < 1.0]
    best = max(near, key=lambda det: det.snr_db)
    lam_m = 299_792_458.0 / r.frame.carrier_hz
    bin_mps = lam_m / (2 * frame.duration_s * cfg.sensing.doppler_oversampling)      # 15.3 m/s: the map's grid
    # refine = false: the velocity is interpolated on the map's grid (error ~0.5 m/s here, 3 % of a bin)
    assert abs(best.velocity_mps - true_velocity_mps) < 0.1 * bin_mps, (best.velocity_mps, true_velocity_mps)
    assert math.isclose(best.doppler_hz, -2 * best.velocity_mps / lam_m, rel_tol=1e-9)
