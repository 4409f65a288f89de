"""Evaluation against the truth: detections matched to simulated target paths."""

from __future__ import annotations

import math

import pytest

from sdr_isac.fusion.metrics import match_targets
from sdr_isac.sensing import Detection


def det(range_m: float, velocity_mps: float, angle_rad: float | None = None) -> Detection:
    return Detection(range_m=range_m, velocity_mps=velocity_mps, doppler_hz=0.0, delay_s=0.0, snr_db=20.0,
                     geometry="monostatic", angle_rad=angle_rad, range_var_m2=0.04, velocity_var_mps2=0.01,
                     angle_var_rad2=None, map_snr_db=25.0)


def path(target: str, range_m: float, velocity_mps: float, **extra: object) -> dict[str, object]:
    return {"kind": "target", "target": target, "range_m": range_m, "velocity_mps": velocity_mps,
            "snr_per_re_db": 5.0, **extra}


def test_each_target_takes_the_nearest_detection_in_cells():
    # cells of 1 m and 0.5 m/s: the first detection is 0.3 cells from "a", the second 0.4 cells from "b"
    rows = match_targets([det(20.3, 1.0, 0.1), det(40.0, -2.2)],
                         [path("a", 20.0, 1.0, azimuth_deg=5.0), path("b", 40.0, -2.0),
                          {"kind": "clutter", "range_m": 33.0, "velocity_mps": 0.0}], 1.0, 0.5)
    assert [r["target"] for r in rows] == ["a", "b"]              # clutter paths are not targets
    a, b = rows
    assert a["detected"] and a["range_error_m"] == pytest.approx(0.3) and a["velocity_error_mps"] == 0.0
    assert a["range_error_over_crb"] == pytest.approx(0.3 / 0.2)  # |dR| / sqrt(var) with var 0.04 m^2
    assert a["angle_deg"] == pytest.approx(math.degrees(0.1)) and a["truth_angle_deg"] == 5.0
    assert b["detected"] and b["velocity_error_over_crb"] == pytest.approx(0.2 / 0.1)
    assert "angle_deg" not in b


def test_a_target_with_no_detection_within_max_cells_is_missed():
    rows = match_targets([det(25.0, 1.0)], [path("a", 20.0, 1.0)], 1.0, 0.5, max_cells=2.0)
    assert rows == [{"target": "a", "truth_range_m": 20.0, "truth_velocity_mps": 1.0, "truth_snr_db": 5.0,
                     "detected": False}]
    assert not match_targets([], [path("a", 20.0, 1.0)], 1.0, 0.5)[0]["detected"]
