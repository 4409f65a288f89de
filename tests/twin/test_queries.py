"""Occupancy maps, lane traffic and exports, against counts and speeds known from how the tracks were made."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sdr_isac.errors import InputError
from sdr_isac.fusion.records import Track
from sdr_isac.twin import LaneSegment, export_csv, export_geojson, heatmap, load_lanes, occupancy, open_twin, traffic
from sdr_isac.twin.queries import MAX_CELLS
from tests.twin.factories import estimate


def straight(track_id: str, start_m, velocity_mps, n: int, dt_s: float = 0.1, t0_s: float = 0.0) -> Track:
    """A track moving at constant velocity in the plane z = 0."""
    t = t0_s + dt_s * np.arange(n)
    v = np.array([*velocity_mps, 0.0])
    pos = np.array([*start_m, 0.0]) + (t - t0_s)[:, None] * v
    states = np.hstack([pos, np.broadcast_to(v, (n, 3))])
    return Track(track_id, t, states, np.broadcast_to(np.eye(6), (n, 6, 6)).copy(), ("mecs-1",), (), "confirmed")


@pytest.fixture
def road(db):
    """Two eastbound lanes (y = 0 and y = 4 m) and one northbound (x = 130 m): four cars of known speed."""
    tracks = [
        straight("car-a", (0.0, 0.0), (10.0, 0.0), 100),        # lane east-1, 10 m/s, x 0 ... 99 m
        straight("car-b", (0.0, 0.3), (20.0, 0.0), 50),         # lane east-1, 20 m/s
        straight("car-c", (0.0, 4.0), (15.0, 0.0), 60),         # lane east-2, 15 m/s
        straight("car-d", (130.0, -50.0), (0.0, 5.0), 40, t0_s=100.0),   # northbound, later
    ]
    with open_twin(db) as store:
        store.write(tracks)
        yield store, tracks


def test_traffic_per_lane_counts_distinct_tracks_and_their_mean_speed(road, tmp_path):
    store, _ = road
    lanes_file = tmp_path / "lanes.toml"
    lanes_file.write_text("""
[[lane]]
name = "east-1"
polyline_m = [[-10.0, 0.0], [50.0, 0.0], [120.0, 0.0]]
width_m = 3.5

[[lane]]
name = "east-2"
rect_m = [-10.0, 2.5, 120.0, 5.5]

[[lane]]
name = "north"
polyline_m = [[130.0, -60.0], [130.0, 60.0]]
width_m = 3.0
""")
    result = {r.name: r for r in traffic(store, load_lanes(lanes_file))}
    assert result["east-1"].track_ids == ("car-a", "car-b")
    assert result["east-1"].mean_speed_mps == pytest.approx((10.0 + 20.0) / 2, rel=1e-12)
    assert result["east-1"].num_states == 150
    assert (result["east-2"].track_ids, result["east-2"].num_states) == (("car-c",), 60)
    assert result["east-2"].mean_speed_mps == pytest.approx(15.0, rel=1e-12)
    assert result["north"].track_ids == ("car-d",) and result["north"].mean_speed_mps == pytest.approx(5.0)
    later = {r.name: r for r in traffic(store, load_lanes(lanes_file), since_s=50.0)}
    assert later["east-1"].num_tracks == 0 and np.isnan(later["east-1"].mean_speed_mps)


def test_lane_membership_is_the_distance_to_the_centre_line():
    lane = LaneSegment("bend", polyline_m=np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]), width_m=2.0)
    pts = np.array([[5.0, 0.99], [5.0, 1.01], [11.0, 5.0], [11.5, 5.0], [10.7, -0.7], [-0.5, 0.0], [-1.5, 0.0]])
    # distances 0.99, 1.01, 1, 1.5, |(0.7, -0.7)| = 0.99, 0.5, 1.5 against a half width of 1 m
    assert lane.contains(pts).tolist() == [True, False, True, False, True, True, False]


def test_occupancy_counts_match_an_independent_binning(road):
    store, tracks = road
    occ = occupancy(store, cell_m=5.0)
    xy = np.vstack([t.states[:, :2] for t in tracks])
    assert occ.counts.sum() == len(xy)
    # independent: cell index by floor division from the lower corner (the upper edge goes to the last cell)
    lo = xy.min(axis=0)
    ij = np.minimum(np.floor((xy - lo) / 5.0).astype(int), np.array(occ.counts.shape) - 1)
    expected = np.zeros(occ.counts.shape, dtype=np.int64)
    np.add.at(expected, (ij[:, 0], ij[:, 1]), 1)
    assert np.array_equal(occ.counts, expected)
    assert occ.x_edges_m[1] - occ.x_edges_m[0] == 5.0


def test_heatmap_writes_a_png_atomically(road, tmp_path):
    store, _ = road
    (tmp_path / "maps").mkdir()
    out = tmp_path / "maps" / "heat.png"
    occ = heatmap(store, out, cell_m=2.0, area_m=(-10, -60, 140, 60))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["heat.png"]           # no temporary file left
    assert occ.counts.shape == (75, 60) and occ.counts.sum() == 250


def test_heatmap_of_estimates(db, rng, tmp_path):
    est = [estimate(rng, float(i)) for i in range(30)]
    with open_twin(db) as store:
        store.write(est)
        occ = heatmap(store, tmp_path / "e.png", cell_m=10.0, source="estimates")
    assert occ.counts.sum() == 30


def test_occupancy_refuses_what_it_cannot_draw(road):
    store, _ = road
    with pytest.raises(InputError, match="cell_m = 0 m: allowed a finite number > 0"):
        occupancy(store, cell_m=0)
    with pytest.raises(InputError, match=f"allowed at most {MAX_CELLS}"):
        occupancy(store, cell_m=1e-3)
    with pytest.raises(InputError, match="no tracks in the window"):
        occupancy(store, since_s=1e9)
    with pytest.raises(InputError, match="source = 'cars'"):
        occupancy(store, source="cars")
    with pytest.raises(InputError, match="area_m"):
        occupancy(store, area_m=(0, 0, -1, 1))


    with pytest.raises(InputError, match=f"allowed at most {MAX_CELLS}"):   # (hi - lo) overflows: a traceback before
        occupancy(store, 1.0, area_m=(-1e308, -1e308, 1e308, 1e308))


@settings(max_examples=200, deadline=None)
@given(xs=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=6), ys=st.lists(st.floats(-1e6, 1e6), min_size=6,
                                                                               max_size=6),
       cell=st.sampled_from([1e-1, 0.3, 1.0, 7.0, 1e3, 1e6]))
@example(xs=[-23.6, -20.0, -15.9], ys=[0.0] * 6, cell=0.1)
def test_occupancy_of_the_positions_extent_counts_every_position(xs, ys, cell):
    """With no area the grid covers the positions' extent: every position is counted (lo + cell * n could round
    just below the largest coordinate and drop it: 14908 of 250000 realistic extents did)."""
    n = len(xs)
    states = np.zeros((n, 6))
    states[:, 0], states[:, 1] = xs, ys[:n]
    with open_twin(":memory:") as store:
        store.write([Track("T", np.arange(n, dtype=float), states, np.tile(np.eye(6), (n, 1, 1)))])
        try:
            occ = occupancy(store, cell_m=cell)
        except InputError as err:
            assert f"allowed at most {MAX_CELLS}" in str(err)
            return
    assert int(occ.counts.sum()) == n


def test_export_csv_holds_every_state_exactly(road, tmp_path):
    store, tracks = road
    out = tmp_path / "states.csv"
    assert export_csv(store, out) == 250
    rows = list(csv.DictReader(out.open()))
    by_id = {t.track_id: t for t in tracks}
    for tid in by_id:
        mine = [r for r in rows if r["track_id"] == tid]
        got = np.array([[float(r[k]) for k in ("x_m", "y_m", "z_m", "vx_mps", "vy_mps", "vz_mps")] for r in mine])
        assert np.array_equal(got, by_id[tid].states)
        assert [float(r["t_s"]) for r in mine] == by_id[tid].t_s.tolist()


def test_export_geojson_says_its_coordinates_are_local_metres(road, tmp_path):
    store, tracks = road
    out = tmp_path / "tracks.geojson"
    assert export_geojson(store, out, until_s=99.0) == 3
    doc = json.loads(out.read_text())
    assert doc["type"] == "FeatureCollection" and "metres in the scene's local frame" in doc["crs"]["properties"]["note"]
    feat = {f["properties"]["track_id"]: f for f in doc["features"]}
    assert set(feat) == {"car-a", "car-b", "car-c"}
    assert feat["car-a"]["geometry"]["type"] == "LineString"
    assert np.array_equal(np.array(feat["car-a"]["geometry"]["coordinates"]), tracks[0].states[:, :3])
    assert feat["car-b"]["properties"]["mean_speed_mps"] == pytest.approx(20.0)
    assert feat["car-a"]["properties"]["frame"] == "scene local, m"


def test_lanes_file_errors_name_the_file_and_the_lane(tmp_path):
    bad = {
        "a.toml": ("[[lane]]\nname = 'x'\nrect_m = [0, 0, 1]\n", "lane 0: lane 'x' rect_m"),
        "b.toml": ("[[lane]]\nname = 'x'\npolyline_m = [[0, 0]]\n", r"polyline_m has shape \(1, 2\)"),
        "c.toml": ("[[lane]]\nname = 'x'\nrect_m = [0, 0, 1, 1]\nspeed = 3\n", "unknown keys"),
        "d.toml": ("[[lane]]\nname = 'x'\n", "give polyline_m"),
        "e.toml": ("[[lane]]\nname = 'x'\nrect_m = [0,0,1,1]\n[[lane]]\nname = 'x'\nrect_m = [0,0,1,1]\n",
                   "distinct names"),
        "f.toml": ("lane = 3\n", "allowed only"),
        "g.toml": ("[[lane]\n", "cannot be read"),
        "h.toml": ("[[lane]]\nname = 'x'\npolyline_m = [[0, 0], [1, 1]]\nwidth_m = -1\n", "width_m = -1"),
    }
    for name, (text, words) in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(InputError, match=words) as info:
            load_lanes(tmp_path / name)
        assert name in str(info.value)
    (tmp_path / "ok.json").write_text(json.dumps({"lane": [{"name": "r", "rect_m": [0, 0, 1, 1]}]}))
    assert load_lanes(tmp_path / "ok.json")[0].rect_m == (0.0, 0.0, 1.0, 1.0)
    with pytest.raises(InputError, match="cannot be read"):
        load_lanes(tmp_path / "missing.toml")


def test_measured_only_counts_what_was_sensed_and_the_exports_carry_the_flags(db, tmp_path):
    """A car measured in its first 30 states, then coasting 20 (predicted, its track flags say so) into the
    second lane; another track without flags.  measured_only counts the 30 sensed states alone, and the coasting
    car never shows in the lane it was only predicted to."""
    import dataclasses

    sensed = dataclasses.replace(straight("car-m", (0.0, 0.0), (10.0, 0.0), 50),
                                 measured=np.array([True] * 30 + [False] * 20))
    unknown = straight("car-u", (0.0, 40.0), (10.0, 0.0), 10)
    lanes_file = tmp_path / "lanes.toml"
    lanes_file.write_text('[[lane]]\nname = "first"\nrect_m = [-1.0, -1.0, 29.5, 1.0]\n\n'
                          '[[lane]]\nname = "second"\nrect_m = [29.5, -1.0, 60.0, 1.0]\n')
    with open_twin(db) as store:
        store.write([sensed, unknown])
        pts = store.track_points()
        assert [m for m, t in zip(pts.measured, pts.track_id) if t == "car-m"] == [True] * 30 + [False] * 20
        assert all(m is None for m, t in zip(pts.measured, pts.track_id) if t == "car-u")
        area = (-5.0, -5.0, 60.0, 45.0)
        assert occupancy(store, 5.0, area_m=area).counts.sum() == 60
        assert occupancy(store, 5.0, area_m=area, measured_only=True).counts.sum() == 30
        lanes = load_lanes(lanes_file)
        every = {r.name: r for r in traffic(store, lanes)}
        sensed_only = {r.name: r for r in traffic(store, lanes, measured_only=True)}
        assert every["second"].track_ids == ("car-m",) and sensed_only["second"].track_ids == ()
        assert sensed_only["first"].num_states == 30
        with pytest.raises(InputError, match="measured_only with source = 'estimates': allowed only with source"):
            occupancy(store, 5.0, source="estimates", area_m=area, measured_only=True)
        export_csv(store, tmp_path / "states.csv")
        rows = list(csv.DictReader((tmp_path / "states.csv").open()))
        assert [r["measured"] for r in rows if r["track_id"] == "car-m"] == ["1"] * 30 + ["0"] * 20
        assert {r["measured"] for r in rows if r["track_id"] == "car-u"} == {""}
        export_geojson(store, tmp_path / "tracks.geojson")
        feats = {f["properties"]["track_id"]: f for f in json.loads((tmp_path / "tracks.geojson").read_text())["features"]}
        assert feats["car-m"]["properties"]["measured"] == [True] * 30 + [False] * 20
        assert feats["car-u"]["properties"]["measured"] == [None] * 10
