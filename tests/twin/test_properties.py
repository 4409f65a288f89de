"""Property tests: records at the edges of their ranges come back from the twin exactly as written, and what the
records refuse (NaN, infinities, wrong types) never reaches the database."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdr_isac.errors import InputError
from sdr_isac.fusion.records import TRACK_STATUSES, Handover, LinkMeasurement, TargetEstimate, Track
from sdr_isac.sensing import Detection
from sdr_isac.twin import NodeDetection, TwinStore, open_twin
from sdr_isac.twin.store import TABLES
from tests.twin.factories import detection, same

FINITE = st.floats(allow_nan=False, allow_infinity=False)               # 0, -0, subnormals, +-1.8e308
POSITIVE = st.floats(min_value=5e-324, max_value=1.7976931348623157e308)
NON_NEGATIVE = st.floats(min_value=0.0, max_value=1.7976931348623157e308)
TEXT = st.text(alphabet=st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=20)
IDS = st.text(alphabet=st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), min_size=1, max_size=20)
VEC = st.lists(FINITE, min_size=3, max_size=3).map(np.array)
# diagonal covariances from 0 to 1e300 (the records check symmetry and positive semi-definiteness themselves)
COV3 = st.lists(st.floats(0.0, 1e300), min_size=3, max_size=3).map(np.diag)


@st.composite
def node_detections(draw):
    angle = draw(st.booleans())
    det = Detection(range_m=draw(FINITE), velocity_mps=draw(FINITE), doppler_hz=draw(FINITE), delay_s=draw(FINITE),
                    snr_db=draw(FINITE), geometry=draw(st.sampled_from(["monostatic", "bistatic"])),
                    angle_rad=draw(FINITE) if angle else None, range_var_m2=draw(NON_NEGATIVE),
                    velocity_var_mps2=draw(NON_NEGATIVE), angle_var_rad2=draw(FINITE) if angle else None,
                    map_snr_db=draw(FINITE))
    return NodeDetection(draw(IDS), draw(FINITE), det)


@st.composite
def links(draw):
    angle = draw(st.booleans())
    axis = draw(st.sampled_from([np.array([1.0, 0.0, 0.0]), np.array([0.0, -1.0, 0.0]), np.array([0.6, 0.8, 0.0])]))
    return LinkMeasurement(
        tx=draw(st.integers(0, 2**63 - 1)), rx=draw(st.integers(0, 2**63 - 1)), range_m=draw(FINITE),
        rate_mps=draw(FINITE), var_range_m2=draw(POSITIVE), var_rate_mps2=draw(POSITIVE),
        snr_re=draw(st.floats(min_value=0.0, allow_infinity=False) | st.just(math.nan)), t_s=draw(FINITE), tx_id=draw(TEXT),
        rx_id=draw(TEXT), tx_position_m=draw(st.none() | VEC), rx_position_m=draw(st.none() | VEC),
        cone_angle_rad=draw(st.floats(-math.pi / 2, math.pi / 2)) if angle else None,
        var_cone_angle_rad2=draw(POSITIVE) if angle else None, array_axis=axis if angle else None)


@st.composite
def estimates(draw):
    velocity = draw(st.booleans())
    return TargetEstimate(
        position_m=draw(VEC), cov_position_m2=draw(COV3), t_s=draw(FINITE), nodes=tuple(draw(st.lists(TEXT, max_size=3))),
        velocity_mps=draw(VEC) if velocity else None, cov_velocity_mps2=draw(COV3) if velocity else None,
        links=tuple(draw(st.lists(links(), max_size=3))), mode=draw(st.sampled_from([None, "micro", "ris", "single"])),
        case=draw(st.sampled_from([None, "A", "C"])),
        single_m=draw(st.dictionaries(TEXT, st.tuples(FINITE, FINITE), max_size=2)))


@st.composite
def tracks(draw):
    n = draw(st.sampled_from([0, 1, 2, 7]))
    t = np.sort(np.array(draw(st.lists(FINITE, min_size=n, max_size=n, unique=True)), dtype=np.float64))
    states = np.array(draw(st.lists(st.lists(FINITE, min_size=6, max_size=6), min_size=n, max_size=n)),
                      dtype=np.float64).reshape(n, 6)
    covs = np.array([np.diag(draw(st.lists(st.floats(0.0, 1e300), min_size=6, max_size=6))) for _ in range(n)],
                    dtype=np.float64).reshape(n, 6, 6)
    hos = tuple(Handover(draw(FINITE), draw(TEXT), draw(TEXT), draw(TEXT)) for _ in range(draw(st.integers(0, 2))))
    measured = draw(st.one_of(st.none(), st.lists(st.booleans(), min_size=n, max_size=n)))
    return Track(draw(IDS), t, states, covs, tuple(draw(st.lists(TEXT, max_size=3))), hos,
                 draw(st.sampled_from(TRACK_STATUSES)), None if measured is None or n == 0 else np.array(measured))


RECORDS = st.lists(st.one_of(node_detections(), links(), estimates()), max_size=6)


def _check_round_trip(store: TwinStore, records: list, track: Track) -> None:
    store.write([*records, track])
    dets = sorted((r for r in records if isinstance(r, NodeDetection)), key=lambda r: r.t_s)
    got = store.detections()
    assert sorted(d.t_s for d in got) == [d.t_s for d in dets]
    assert all(any(same(g, d) for g in got) for d in dets)
    lone = [r for r in records if isinstance(r, LinkMeasurement)]
    got_l = store.links()
    assert len(got_l) == len(lone) and all(any(same(g, m) for g in got_l) for m in lone)
    ests = [r for r in records if isinstance(r, TargetEstimate)]
    got_e = store.estimates()
    assert len(got_e) == len(ests) and all(any(same(g, e) for g in got_e) for e in ests)
    # handovers of one track are unique on (t, from, to): a repeat is one row
    keys = {(h.t_s, h.from_station, h.to_station) for h in track.handovers}
    if len(keys) == len(track.handovers):
        back = store.track_history(track.track_id)
        assert same(back.states, track.states) and same(back.covariances, track.covariances)
        assert same(back.t_s, track.t_s) and back.stations == track.stations and back.status == track.status
        assert same(back.measured, track.measured)
        # in time order (numerically: a time of -0.0 may come back as 0.0, the same time, whose repr sorts
        # elsewhere)
        order = lambda h: (h.t_s, h.from_station, h.to_station, h.reason)      # noqa: E731
        assert sorted(back.handovers, key=order) == sorted(track.handovers, key=order)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=RECORDS, track=tracks())
def test_edge_values_round_trip_on_sqlite(records, track):
    with open_twin(":memory:") as store:
        _check_round_trip(store, records, track)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=RECORDS, track=tracks())
def test_edge_values_round_trip_on_postgres(pg_server, records, track):
    with open_twin(pg_server) as store:
        _empty(store)                                     # an empty twin for each example
        _check_round_trip(store, records, track)
        _empty(store)


def _empty(store: TwinStore) -> None:
    """Delete every row (the test's own SQL: prune refuses an infinite 'now', and a row may sit at 1.8e308 s)."""
    with store._transaction() as cur:                    # noqa: SLF001  (a test helper, on the test's server)
        for table in TABLES:
            cur.execute(f"DELETE FROM {table}")


BAD = st.sampled_from([math.nan, math.inf, -math.inf])


@given(bad=BAD, field=st.sampled_from(["range_m", "velocity_mps", "snr_db", "range_var_m2", "map_snr_db"]))
def test_detections_refuse_nan_and_infinity(bad, field):
    good = detection(np.random.default_rng(0)).detection
    with pytest.raises(InputError, match=f"detection.{field} = "):
        NodeDetection("bs0", 0.0, Detection(**{**good.__dict__, field: bad}))
    with pytest.raises(InputError, match="t_s = "):
        NodeDetection("bs0", bad, good)


@given(bad=BAD, field=st.sampled_from(["range_m", "rate_mps", "t_s", "var_range_m2", "var_rate_mps2"]))
def test_links_refuse_nan_and_infinity(bad, field):
    args = dict(tx=0, rx=0, range_m=1.0, rate_mps=0.0, var_range_m2=1.0, var_rate_mps2=1.0, snr_re=1.0)
    with pytest.raises(InputError, match=field):
        LinkMeasurement(**{**args, field: bad})


@given(bad=BAD)
def test_estimates_and_tracks_refuse_nan_and_infinity(bad):
    with pytest.raises(InputError, match="position_m"):
        TargetEstimate(np.array([0.0, bad, 0.0]), np.eye(3))
    with pytest.raises(InputError, match="states"):
        Track("T", np.array([0.0]), np.array([[0.0, 0, 0, bad, 0, 0]]), np.eye(6)[None])


@pytest.mark.parametrize("node_id, t_s, det, words", [
    (None, 0.0, "ok", "node_id = None"), ("", 0.0, "ok", "node_id = ''"), (3, 0.0, "ok", "node_id = 3"),
    ("bs0", "1", "ok", "t_s = '1'"), ("bs0", True, "ok", "t_s = True"), ("bs0", 0.0, None, "detection = None"),
])
def test_node_detections_refuse_wrong_types(node_id, t_s, det, words):
    good = detection(np.random.default_rng(0)).detection
    with pytest.raises(InputError, match=words):
        NodeDetection(node_id, t_s, good if det == "ok" else det)


@pytest.mark.parametrize("tx", [-1, 1.5, "0", True])
def test_link_node_indices_that_are_no_row_are_refused_by_the_record(tx):
    with pytest.raises(InputError, match="tx = "):
        LinkMeasurement(tx=tx, rx=0, range_m=1.0, rate_mps=0.0, var_range_m2=1.0, var_rate_mps2=1.0, snr_re=1.0)


def test_link_node_indices_a_database_cannot_hold_are_refused():
    m = LinkMeasurement(tx=2**63, rx=0, range_m=1.0, rate_mps=0.0, var_range_m2=1.0, var_rate_mps2=1.0, snr_re=1.0)
    with open_twin(":memory:") as store:
        with pytest.raises(InputError, match="LinkMeasurement.tx = "):
            store.write([m])
        assert store.counts()["links"] == 0


def test_zero_and_large_batches(rng):
    with open_twin(":memory:") as store:
        assert store.write([]) == 0 and store.write(iter(())) == 0
        many = [detection(rng, "bs0", float(i)) for i in range(20000)]
        assert store.write(many) == 20000
        assert store.counts()["detections"] == 20000
        long = Track("long", np.arange(5000.0), np.zeros((5000, 6)), np.zeros((5000, 6, 6)))
        store.write([long])
        assert same(store.track_history("long"), long)
