"""Live BS-RIS sensing on the host: hw_configs/sim_bs_ris.toml through real sockets and threads.

A building hides the car from bs0.  bs0 programs the RIS frame by frame (a scan of outgoing azimuths); the host
collects the scan and locates the car through the surface.  bs0's own detections never show the car at its
direct range; the RIS estimate's position lies within its covariance of the truth.
"""

from __future__ import annotations

import numpy as np
import pytest

from sdr_isac import config
from sdr_isac.errors import ConfigError
from sdr_isac.stream import NodeAgent
from tests.stream.live_scene import REPO, run_scene


def test_host_locates_a_blocked_target_through_the_ris_scan() -> None:
    cfg = config.load(REPO / "hw_configs/sim_bs_ris.toml")
    assert cfg.scene is not None
    scan = cfg.scene.ris[0].scan_deg
    host = run_scene("sim_bs_ris", frames=len(scan), timeout_s=120.0)
    assert not host.errors, list(host.errors)
    bs = np.array(cfg.scene.node("bs0").position_m)
    car = np.array(cfg.scene.targets[0].position_m)
    direct_m = float(np.linalg.norm(car - bs))
    for item in host.detections_by_node()["bs0"]:           # the building: bs0 never sees the car directly
        assert all(abs(d["range_m"] - direct_m) > 3.0 for d in item["detections"]), item["detections"]
    ris = [item for item in host.estimates if item["estimates"][0].get("mode") == "ris"]
    assert len(ris) == 1, list(host.estimates)
    est = ris[0]["estimates"][0]
    truth = np.array(ris[0]["truth"][0]["position_m"][:2])
    error = float(np.linalg.norm(np.array(est["position_m"][:2]) - truth))
    assert error < 5 * np.sqrt(np.trace(est["cov_position_m2"])) + 0.01, (error, est)
    assert est["nodes"] == ["bs0"] and est["ris"]["id"] == "ris0" and est["ris"]["frames"] == len(scan)
    # radial velocity seen from the RIS: the car's velocity along the RIS -> car direction
    ris_m = np.array(cfg.scene.ris[0].position_m)
    p = np.array(ris[0]["truth"][0]["position_m"])
    v_true = float(np.array(cfg.scene.targets[0].velocity_mps) @ (p - ris_m) / np.linalg.norm(p - ris_m))
    assert abs(est["ris"]["velocity_mps"] - v_true) < 5 * np.sqrt(est["ris"]["var_velocity_mps2"]) + 0.01


def test_ris_plan_points_the_surface_at_its_controller() -> None:
    cfg = config.load(REPO / "hw_configs/sim_bs_ris.toml")
    (plan,) = NodeAgent(cfg, "bs0").ris_plan()
    # the RIS faces -y (yaw -90 deg): its local y axis is (-sin yaw, cos yaw, 0) = +x, so bs0 seen from the
    # surface has cone sine d_x / |d|
    d = np.array([30.0, 35.0, 9.5]) - np.array([50.0, 50.0, 6.0])
    yaw = np.radians(-90.0)
    local_y = np.array([-np.sin(yaw), np.cos(yaw), 0.0])
    assert plan["incoming_deg"] == pytest.approx(np.degrees(np.arcsin(local_y @ d / np.linalg.norm(d))), abs=1e-9)
    assert plan["incoming_deg"] == pytest.approx(np.degrees(np.arcsin(-20.0 / np.linalg.norm(d))), abs=1e-9)
    assert NodeAgent(cfg, "bs0").ris_plan()[0]["scan_deg"][0] == -60.0


def test_ris_scan_config_errors_name_the_field() -> None:
    text = (REPO / "hw_configs/sim_bs_ris.toml").read_text()
    for change, field in ((('controller = "bs0"', 'controller = "bs9"'), "ris.controller"),
                          (('controller = "bs0"', 'controller = ""'), "controller"),
                          (("scan_deg = [-60.0,", "scan_deg = [-95.0,"), "scan_deg")):
        try:
            config.loads(text.replace(*change))
        except ConfigError as err:
            assert field in str(err)
        else:
            raise AssertionError(f"{change} was accepted")
