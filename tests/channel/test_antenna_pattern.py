"""Element patterns: the 3GPP TR 38.901 sector element (Table 7.3-1) and its effect on the scene's paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdr_isac import config
from sdr_isac.channel.geometry import element_pattern_db
from sdr_isac.channel.scene import Scene
from sdr_isac.config import FrameConfig, NodeConfig, SceneConfig, TargetConfig
from sdr_isac.errors import ConfigError, InputError


def direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


def table_7_3_1(azimuth_deg: float, elevation_deg: float) -> float:
    """TR 38.901 Table 7.3-1 written out: theta'' = 90 - elevation, phi'' = azimuth, 65 degree beamwidths,
    SLA_V = A_max = 30 dB."""
    zenith = 90.0 - elevation_deg
    a_v = -min(12.0 * ((zenith - 90.0) / 65.0) ** 2, 30.0)
    a_h = -min(12.0 * (azimuth_deg / 65.0) ** 2, 30.0)
    return -min(-(a_v + a_h), 30.0)


@pytest.mark.parametrize(("azimuth_deg", "elevation_deg", "expected_db"), [
    (0.0, 0.0, 0.0),            # boresight
    (65.0, 0.0, -12.0),         # one 3 dB beamwidth off in azimuth: 12 (65/65)**2
    (-65.0, 0.0, -12.0),
    (0.0, 65.0, -12.0),         # and in elevation
    (0.0, -65.0, -12.0),
    (180.0, 0.0, -30.0),        # behind the panel: the front-to-back limit
    (90.0, 0.0, -12.0 * (90 / 65) ** 2),
    (0.0, 90.0, -12.0 * (90 / 65) ** 2),      # straight up: 23 dB, under the side-lobe limit
    (60.0, 50.0, -(12 * (60 / 65) ** 2 + 12 * (50 / 65) ** 2)),     # 10.2 + 7.1 dB: the two add
    (80.0, 70.0, -30.0),        # 18.2 + 13.9 dB: capped at A_max
])
def test_sector_element_follows_the_table(azimuth_deg, elevation_deg, expected_db):
    got = element_pattern_db(direction(azimuth_deg, elevation_deg), "38.901")
    assert got == pytest.approx(expected_db, abs=1e-9)
    assert got == pytest.approx(table_7_3_1(azimuth_deg, elevation_deg), abs=1e-9)


def test_isotropic_is_flat_and_length_does_not_matter():
    rng = np.random.default_rng(1)
    u = rng.standard_normal((50, 3))
    assert np.array_equal(element_pattern_db(u, "isotropic"), np.zeros(50))
    assert element_pattern_db(np.zeros(3), "isotropic") == 0.0
    np.testing.assert_allclose(element_pattern_db(u * 1e-200, "38.901"), element_pattern_db(u * 1e200, "38.901"))


_coordinate = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


@given(st.tuples(_coordinate, _coordinate, _coordinate))
def test_sector_element_is_bounded_and_symmetric(xyz):
    u = np.array(xyz)
    gain = element_pattern_db(u, "38.901")
    assert -30.0 <= gain <= 0.0
    # mirror images across the boresight's vertical and horizontal planes have the same gain
    assert element_pattern_db(u * [1, -1, 1], "38.901") == pytest.approx(gain, abs=1e-9)
    assert element_pattern_db(u * [1, 1, -1], "38.901") == pytest.approx(gain, abs=1e-9)
    if np.all(u == 0):
        assert gain == 0.0                       # a zero vector counts as boresight


@pytest.mark.parametrize("bad", [[np.nan, 0, 0], [np.inf, 1, 0], [0, -np.inf, 0]])
def test_non_finite_direction_is_refused(bad):
    with pytest.raises(InputError, match="direction_local"):
        element_pattern_db(bad, "38.901")


def test_unknown_pattern_and_bad_shape_are_refused():
    with pytest.raises(InputError, match="pattern = 'dipole'.*isotropic, 38.901"):
        element_pattern_db([1, 0, 0], "dipole")
    with pytest.raises(InputError, match=r"shape \(2,\)"):
        element_pattern_db([1, 0], "38.901")


def test_config_names_the_field_and_the_choices():
    with pytest.raises(ConfigError, match="antenna_pattern = .*dipole.*isotropic or 38.901"):
        NodeConfig(antenna_pattern="dipole")
    cfg = config.loads('[scene]\n[[scene.nodes]]\nid = "bs0"\nantenna_pattern = "38.901"\n')
    assert cfg.scene is not None and cfg.scene.nodes[0].antenna_pattern == "38.901"
    assert NodeConfig().antenna_pattern == "isotropic"               # the default leaves old scenes as they were


FRAME = FrameConfig(numerology=1, num_rb=24, fft_size=512, carrier_hz=3.5e9, num_slots=1)


def _paths(pattern: str, yaw_deg: float, targets: list[tuple[float, float, float]], second: bool = False):
    nodes = [NodeConfig(id="bs0", yaw_deg=yaw_deg, antenna_pattern=pattern, antenna_gain_dbi=15.0)]
    if second:
        nodes.append(NodeConfig(id="bs1", position_m=(100.0, 0.0, 0.0), yaw_deg=180.0, antenna_pattern=pattern,
                                antenna_gain_dbi=15.0))
    scene = Scene(SceneConfig(nodes=tuple(nodes), targets=tuple(
        TargetConfig(id=f"t{i}", position_m=p, rcs_m2=10.0) for i, p in enumerate(targets)), noise=False), FRAME)
    return scene


@pytest.mark.parametrize(("yaw_deg", "target", "azimuth_deg", "elevation_deg"), [
    (0.0, (80.0, 0.0, 0.0), 0.0, 0.0),                    # on boresight: no change
    (0.0, (0.0, 80.0, 0.0), 90.0, 0.0),                   # broadside of the panel's edge
    (45.0, (-50.0, 0.0, 0.0), 135.0, 0.0),                # behind a panel turned by 45 degrees
    (90.0, (0.0, 60.0, -20.0), 0.0, -math.degrees(math.atan2(20.0, 60.0))),     # below boresight
])
def test_monostatic_echo_loses_the_pattern_twice(yaw_deg, target, azimuth_deg, elevation_deg):
    rng = np.random.default_rng(0)
    flat = _paths("isotropic", yaw_deg, [target]).paths("bs0", "bs0", 0.0, rng)
    sector = _paths("38.901", yaw_deg, [target]).paths("bs0", "bs0", 0.0, rng)
    (p_flat,), (p_sector,) = [p for p in flat if p.kind == "target"], [p for p in sector if p.kind == "target"]
    loss_db = 10 * math.log10(abs(p_sector.gain) ** 2 / abs(p_flat.gain) ** 2)
    assert loss_db == pytest.approx(2 * table_7_3_1(azimuth_deg, elevation_deg), abs=1e-9)
    assert p_sector.delay_s == p_flat.delay_s and p_sector.doppler_hz == p_flat.doppler_hz


def test_line_of_sight_between_facing_and_turned_nodes():
    rng = np.random.default_rng(0)
    facing = _paths("38.901", 0.0, [], second=True).paths("bs0", "bs1", 0.0, rng)
    flat = _paths("isotropic", 0.0, [], second=True).paths("bs0", "bs1", 0.0, rng)
    turned = _paths("38.901", 180.0, [], second=True).paths("bs0", "bs1", 0.0, rng)     # bs0 faces away
    los = {name: next(p for p in paths if p.kind == "los")
           for name, paths in (("facing", facing), ("flat", flat), ("turned", turned))}
    assert abs(los["facing"].gain) == pytest.approx(abs(los["flat"].gain), rel=1e-12)
    assert 20 * math.log10(abs(los["turned"].gain) / abs(los["flat"].gain)) == pytest.approx(-30.0, abs=1e-9)
