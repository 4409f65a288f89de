"""The fusion records: shapes, units and validation at construction (never a half-valid record)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdr_isac.errors import InputError
from sdr_isac.fusion.records import Handover, LinkMeasurement, TargetEstimate, Track

EDGES = st.sampled_from([0.0, -0.0, 1e300, -1e300, math.inf, -math.inf, math.nan, 2.0**62, None, "1", [], [1, 2]])


def test_planar_estimate_has_the_known_height_with_zero_variance() -> None:
    est = TargetEstimate.planar([1.0, 2.0], [[0.04, 0.01], [0.01, 0.09]], 1.5, nodes=("bs0", "bs1"),
                                velocity_xy_mps=[3.0, -4.0], cov_velocity_xy_mps2=np.eye(2) * 0.01)
    assert est.position_m.tolist() == [1.0, 2.0, 1.5]
    assert est.cov_position_m2[2].tolist() == [0.0, 0.0, 0.0]
    assert est.velocity_mps is not None and est.velocity_mps.tolist() == [3.0, -4.0, 0.0]
    with pytest.raises(ValueError):              # read-only: a record never changes after it was made
        est.position_m[0] = 5.0


@pytest.mark.parametrize("cov, match", [([[1.0, 0.5, 0], [0.0, 1.0, 0], [0, 0, 0]], "not symmetric"),
                                        ([[1.0, 2.0, 0], [2.0, 1.0, 0], [0, 0, 0]], "negative eigenvalue"),
                                        ([[1.0, 0.0], [0.0, 1.0]], "shape"),
                                        ([[math.nan] * 3] * 3, "finite")])
def test_bad_covariances_are_refused(cov: list, match: str) -> None:
    with pytest.raises(InputError, match=match):
        TargetEstimate(np.zeros(3), cov)


@given(x=EDGES, y=st.one_of(EDGES, st.floats(allow_nan=True, allow_infinity=True)))
def test_position_edges_give_a_record_or_an_input_error(x: object, y: object) -> None:
    try:
        est = TargetEstimate([x, y, 0.0], np.eye(3))
    except InputError:
        return
    assert np.all(np.isfinite(est.position_m))


def test_mode_case_and_velocity_pairs() -> None:
    with pytest.raises(InputError, match="mode"):
        TargetEstimate(np.zeros(3), np.eye(3), mode="bogus")
    with pytest.raises(InputError, match="case"):
        TargetEstimate(np.zeros(3), np.eye(3), case="D")
    with pytest.raises(InputError, match="both or neither"):
        TargetEstimate(np.zeros(3), np.eye(3), velocity_mps=np.zeros(3))
    link = LinkMeasurement(0, 0, 10.0, 1.0, 0.01, 0.01, 100.0)
    assert link.monostatic and not LinkMeasurement(0, 1, 10.0, 1.0, 0.01, 0.01, 1.0).monostatic


def test_track_validates_its_history() -> None:
    t = Track("t1", [0.0, 0.1], np.zeros((2, 6)), np.stack([np.eye(6)] * 2), stations=("bs0",),
              handovers=(Handover(0.1, "bs0", "bs1", "coverage"),), status="confirmed")
    assert t.num_states == 2
    with pytest.raises(InputError, match="increasing"):
        Track("t1", [0.1, 0.0], np.zeros((2, 6)), np.stack([np.eye(6)] * 2))
    with pytest.raises(InputError, match="states"):
        Track("t1", [0.0], np.zeros((2, 6)), np.stack([np.eye(6)]))
    with pytest.raises(InputError, match="status"):
        Track("t1", [0.0], np.zeros((1, 6)), np.stack([np.eye(6)]), status="lost")
    with pytest.raises(InputError, match="track_id"):
        Track("", [0.0], np.zeros((1, 6)), np.stack([np.eye(6)]))
    with pytest.raises(InputError, match="t_s"):
        Handover(math.inf, "a", "b", "x")


def test_a_tracks_measured_flags_are_one_bool_per_state() -> None:
    two = ("t1", [0.0, 0.1], np.zeros((2, 6)), np.stack([np.eye(6)] * 2))
    flags = Track(*two, measured=[True, False]).measured
    assert flags.dtype == np.bool_ and flags.tolist() == [True, False] and not flags.flags.writeable
    assert Track(*two).measured is None                                       # not known
    assert Track("e", [], np.zeros((0, 6)), np.zeros((0, 6, 6)), measured=[]).measured.shape == (0,)
    assert Track(*two, measured=[False, True]).latest().measured.tolist() == [True]
    for bad in ([True], [True, False, True], [1, 0], [1.0, 0.0], ["True", "False"], [None, True], True,
                [[True, False]]):
        with pytest.raises(InputError, match=r"track 't1': measured = .* has dtype .* allowed None or one bool per "
                                             r"state, shape \(2,\) .*pass a list or array of bools"):
            Track(*two, measured=bad)


@pytest.mark.parametrize(("fields", "match"), [
    ({"tx": -1}, "tx = -1"), ({"rx": 1.5}, "rx = 1.5"), ({"tx": True}, "tx = True"),
    ({"snr_re": -0.1}, "snr_re = -0.1"), ({"snr_re": float("inf")}, "snr_re = inf"),
    ({"snr_re": float("-inf")}, "snr_re = -inf"),
    ({"cone_angle_rad": "0.1", "var_cone_angle_rad2": 0.01, "array_axis": [1.0, 0.0, 0.0]}, "cone_angle_rad = '0.1'"),
    ({"var_range_m2": 0.0}, "var_range_m2 = 0.0"), ({"range_m": float("nan")}, "range_m = nan"),
])
def test_a_link_refuses_what_is_no_measurement(fields, match) -> None:
    base = {"tx": 0, "rx": 0, "range_m": 10.0, "rate_mps": 1.0, "var_range_m2": 0.01, "var_rate_mps2": 0.01,
            "snr_re": 10.0}
    with pytest.raises(InputError, match=re.escape(match)):
        LinkMeasurement(**{**base, **fields})
    assert math.isnan(LinkMeasurement(**{**base, "snr_re": float("nan")}).snr_re)     # NaN: SNR not known


def test_placing_a_link_on_rows_that_are_not_there_is_refused() -> None:
    link = LinkMeasurement(0, 2, 10.0, 1.0, 0.01, 0.01, 10.0)
    with pytest.raises(InputError, match="rx = 2"):
        link.placed(["a", "b"], np.zeros((2, 3)))
    placed = link.placed(["a", "b", "c"], np.arange(9.0).reshape(3, 3), t_s=4.0)
    assert (placed.tx_id, placed.rx_id, placed.t_s) == ("a", "c", 4.0)
    assert placed.rx_position_m.tolist() == [6.0, 7.0, 8.0]


def test_a_tracks_latest_state_keeps_its_identity_and_history_of_owners() -> None:
    t = np.array([0.0, 1.0, 2.0])
    states = np.arange(18.0).reshape(3, 6)
    covs = np.broadcast_to(np.eye(6), (3, 6, 6)).copy()
    track = Track("t7", t, states, covs, ("bs0", "bs1"), (Handover(1.0, "bs0", "bs1", "coverage"),), "confirmed")
    last = track.latest()
    assert last.num_states == 1 and last.t_s.tolist() == [2.0] and last.states[0].tolist() == states[2].tolist()
    assert (last.track_id, last.stations, last.handovers, last.status) == ("t7", track.stations, track.handovers,
                                                                          "confirmed")
    assert track.latest("deleted").status == "deleted"
    empty = Track("e", np.zeros(0), np.zeros((0, 6)), np.zeros((0, 6, 6)))
    assert empty.latest() is empty


def test_the_cross_covariance_of_position_and_velocity_is_checked_and_joins_the_state_covariance() -> None:
    joint = np.array([[4.0, 0.0, 1.0, 0.5], [0.0, 4.0, -0.5, 1.0], [1.0, -0.5, 1.0, 0.0], [0.5, 1.0, 0.0, 1.0]])
    est = TargetEstimate.planar([1.0, 2.0], joint[:2, :2], 1.5, velocity_xy_mps=[3.0, -4.0],
                                cov_velocity_xy_mps2=joint[2:, 2:], cov_position_velocity_xy_m2ps=joint[:2, 2:])
    cov = est.covariance
    assert cov.shape == (6, 6) and np.array_equal(cov[[0, 1, 3, 4]][:, [0, 1, 3, 4]], joint)
    assert np.all(cov[2] == 0) and np.all(cov[5] == 0)                 # height and v_z known
    assert est.cov_position_velocity_m2ps is not None and est.cov_position_velocity_m2ps[0, 0] == 1.0
    plain = TargetEstimate.planar([1.0, 2.0], joint[:2, :2], 1.5, velocity_xy_mps=[3.0, -4.0],
                                  cov_velocity_xy_mps2=joint[2:, 2:])
    assert plain.cov_position_velocity_m2ps is None and np.all(plain.covariance[:3, 3:] == 0)
    assert TargetEstimate(np.zeros(3), np.eye(3)).covariance.shape == (3, 3)
    with pytest.raises(InputError, match=r"cov_position_velocity_m2ps: given without velocity_mps"):
        TargetEstimate(np.zeros(3), np.eye(3), cov_position_velocity_m2ps=np.zeros((3, 3)))
    too_strong = np.diag([3.0, 0.0, 0.0])                       # |cov(x, v_x)| > sigma_x sigma_vx = 2
    with pytest.raises(InputError, match=r"cov_position_velocity_m2ps .* joint covariance has a negative eigenvalue"):
        TargetEstimate(np.zeros(3), 4.0 * np.eye(3), velocity_mps=np.zeros(3), cov_velocity_mps2=np.eye(3),
                       cov_position_velocity_m2ps=too_strong)
    for bad in (np.zeros((2, 2)), np.full((3, 3), math.nan), "x"):
        with pytest.raises(InputError, match=r"cov_position_velocity_m2ps"):
            TargetEstimate(np.zeros(3), np.eye(3), velocity_mps=np.zeros(3), cov_velocity_mps2=np.eye(3),
                           cov_position_velocity_m2ps=bad)


@given(entry=st.one_of(EDGES, st.floats(allow_nan=True, allow_infinity=True)))
def test_cross_covariance_edges_give_a_record_or_an_input_error(entry: object) -> None:
    try:
        est = TargetEstimate(np.zeros(3), np.eye(3), velocity_mps=np.zeros(3), cov_velocity_mps2=np.eye(3),
                             cov_position_velocity_m2ps=[[entry, 0, 0], [0, 0, 0], [0, 0, 0]])
    except InputError:
        return
    assert np.all(np.isfinite(est.covariance)) and np.linalg.eigvalsh(est.covariance).min() >= -1e-9


def test_a_cross_covariance_is_judged_by_its_correlation_not_by_the_largest_entry() -> None:
    """Position variance 1e6 m², velocity variance 1e-2 (m/s)²: a cross term of correlation 1.005 gives an
    eigenvalue of -1e-4, which a tolerance of 1e-9 of the largest entry (1e6) let through; 0.999 is fine."""
    for rho, ok in ((1.005, False), (0.999, True)):
        cross = np.diag([rho * math.sqrt(1e6 * 1e-2), 0.0, 0.0])
        make = lambda cross=cross: TargetEstimate(np.zeros(3), 1e6 * np.eye(3), velocity_mps=np.zeros(3),  # noqa: E731
                                                  cov_velocity_mps2=1e-2 * np.eye(3), cov_position_velocity_m2ps=cross)
        if ok:
            make()
        else:
            with pytest.raises(InputError, match=r"negative eigenvalue of its correlation matrix \(-0\.005\)"):
                make()
    with pytest.raises(InputError, match=r"cross term of a variable whose variance is 0"):   # a known height
        TargetEstimate(np.zeros(3), np.diag([1.0, 1.0, 0.0]), velocity_mps=np.zeros(3), cov_velocity_mps2=np.eye(3),
                       cov_position_velocity_m2ps=np.array([[0.0, 0, 0], [0, 0, 0], [0.1, 0, 0]]))
