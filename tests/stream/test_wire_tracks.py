"""The ``tracks`` kind of the wire format: round trips, strict decoding, fuzzing at the edges (issue 15, item 3).

Every malformed input must end in a :class:`WireFormatError` naming the field; every accepted one must agree
with the independent oracle (``tests/stream/wire_oracle.py``), which also checks what the core host needs of
the records (a covariance that a Cholesky factorisation takes, times that do not go backwards).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sdr_isac.errors import WireFormatError
from sdr_isac.fusion.records import Handover, TargetEstimate, Track
from sdr_isac.stream import wire
from tests.stream import wire_oracle as oracle

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _spd(rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    a = rng.standard_normal((6, 6)) * scale
    return a @ a.T + 0.1 * scale**2 * np.eye(6)


def _track(rng: np.random.Generator, track_id: str, n: int = 3, t_end: float = 10.0, **kw: Any) -> Track:
    t = t_end - np.arange(n)[::-1] * 0.5
    return Track(track_id, t, rng.standard_normal((n, 6)) * 100, np.stack([_spd(rng) for _ in range(n)]), **kw)


def _frames(header_change: Callable[[dict[str, Any]], None], tracks: list[Track] | None = None,
            t0_s: float = 10.0) -> list[bytes]:
    rng = np.random.default_rng(5)
    tracks = tracks if tracks is not None else [_track(rng, "a", stations=("bs1",)), _track(rng, "b")]
    raw = oracle.raw_frames(wire.encode_tracks("mecs1", 4, t0_s, tracks, tail=2))
    header = json.loads(raw[1])
    header_change(header)
    raw[1] = json.dumps(header).encode()               # NaN / Infinity tokens as they come
    return raw


def _check(frames: list[bytes]) -> None:
    """WireFormatError, or a message the oracle finds consistent (and whose decode_tracks behaves)."""
    try:
        msg = wire.decode(frames)
    except WireFormatError:
        return
    found = oracle.problems(msg, frames) + oracle.helper_problems(msg)
    assert not found, found


# ---- round trips ------------------------------------------------------------------------------------
def test_a_track_set_round_trips_exactly() -> None:
    rng = np.random.default_rng(1)
    hand = (Handover(9.0, "bs1", "bs2", "coverage"), Handover(9.5, "bs2", "bs3", "snr"))
    tracks = [_track(rng, "t1", n=5, stations=("bs1", "bs2", "bs3"), handovers=hand, status="confirmed"),
              _track(rng, "t-2", n=1, t_end=8.0, status="tentative"),
              _track(rng, "t3", n=2, t_end=9.0, status="deleted")]
    frames = wire.encode_tracks("mecs1", 17, 10.0, tracks, tail=3, members={"t1": {"mecsA": "7", "mecsB": "b.1"}})
    assert bytes(frames[0]) == b"tracks/mecs1"
    msg = wire.decode(frames)
    assert msg.header["v"] == 1 and not oracle.problems(msg, frames) and not oracle.helper_problems(msg)
    got = wire.decode_tracks(msg)
    assert (got.node_id, got.seq, got.t0_s) == ("mecs1", 17, 10.0)
    for want, have in zip(tracks, got.tracks):
        assert have.track_id == want.track_id and have.status == want.status
        assert have.stations == want.stations and have.handovers == want.handovers
        assert have.t_s.tolist() == [want.t_s[-1]] and np.array_equal(have.states[0], want.states[-1])
        p = want.covariances[-1]
        assert np.array_equal(have.covariances[0], (p + p.T) / 2)
    t, pos = got.tails["t1"]
    assert np.array_equal(t, tracks[0].t_s[-4:-1]) and np.array_equal(pos, tracks[0].states[-4:-1, :3])
    assert got.tails["t-2"][0].size == 0 and got.tails["t3"][1].shape == (1, 3)
    assert got.members == {"t1": {"mecsA": "7", "mecsB": "b.1"}}


def test_measured_travels_with_the_latest_state_and_only_as_a_boolean() -> None:
    rng = np.random.default_rng(3)
    base = _track(rng, "m1", n=3, status="confirmed")
    sent = [dataclasses.replace(base, measured=np.array([True, True, False])),
            dataclasses.replace(base, track_id="m2", measured=np.array([False, False, True])),
            dataclasses.replace(base, track_id="m3")]
    frames = wire.encode_tracks("mecs1", 0, 10.0, sent)
    header = json.loads(frames[1])
    assert [t.get("measured", "absent") for t in header["tracks"]] == [False, True, "absent"]
    got = wire.decode_tracks(wire.decode(frames)).tracks
    assert [None if t.measured is None else t.measured.tolist() for t in got] == [[False], [True], None]
    header["tracks"][2]["measured"] = None                       # null: not known, as absent
    assert wire.decode_tracks(wire.decode([frames[0], json.dumps(header).encode(), *frames[2:]])).tracks[2] \
        .measured is None
    for bad in (1, 0, "true", [], {}, 1.0):
        header["tracks"][0]["measured"] = bad
        with pytest.raises(WireFormatError, match=r"tracks\[0\]\.measured = .*allowed true .* false .* or null"):
            wire.decode([frames[0], json.dumps(header).encode(), *frames[2:]])


@PROPS
@example(num_tracks=0, tail=0, scale=1.0, seed=0)
@example(num_tracks=300, tail=wire.MAX_TAIL, scale=1e-6, seed=1)
@example(num_tracks=2, tail=1, scale=1e150, seed=2)
@given(num_tracks=st.integers(0, 40), tail=st.integers(0, wire.MAX_TAIL),
       scale=st.sampled_from([1e-150, 1e-6, 1.0, 1e3, 1e150]), seed=st.integers(0, 2**32 - 1))
def test_any_valid_track_set_round_trips(num_tracks: int, tail: int, scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    tracks = [Track(f"t{i}", [1.0, 2.0], rng.standard_normal((2, 6)) * scale, [_spd(rng, scale)] * 2)
              for i in range(num_tracks)]
    got = wire.decode_tracks(wire.decode(wire.encode_tracks("m", 0, 2.0, tracks, tail=tail)))
    assert [t.track_id for t in got.tracks] == [f"t{i}" for i in range(num_tracks)]
    for want, have in zip(tracks, got.tracks):
        assert np.array_equal(have.states[0], want.states[-1])
        assert np.allclose(have.covariances[0], want.covariances[-1], rtol=1e-15, atol=0)
        assert got.tails[want.track_id][0].size == 1 if tail else want.track_id not in got.tails


def test_many_tracks_up_to_the_item_limit_and_not_beyond() -> None:
    rng = np.random.default_rng(2)
    one = _track(rng, "x", n=1)
    tracks = [Track(f"t{i}", one.t_s, one.states, one.covariances) for i in range(2000)]
    assert len(wire.decode_tracks(wire.decode(wire.encode_tracks("m", 0, 10.0, tracks))).tracks) == 2000
    with pytest.raises(WireFormatError, match=r"^tracks = \[0, 0, .*allowed a list of at most 10000 track objects"):
        wire.decode(_frames(lambda h: h.__setitem__("tracks", [0] * (wire.MAX_ITEMS + 1))))


# ---- strict decoding: the field is named ------------------------------------------------------------------
def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(header: dict[str, Any]) -> None:
        parent = header
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = value
    return change


def _drop(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def change(header: dict[str, Any]) -> None:
        parent = header
        for step in path[:-1]:
            parent = parent[step]
        del parent[path[-1]]
    return change


_NOT_SYMMETRIC = [[1.0 if r == c else 0.0 for c in range(6)] for r in range(6)]
_NOT_SYMMETRIC[0][1] = 0.5
_NEGATIVE = [[(-1.0 if r == 2 else 1.0) if r == c else 0.0 for c in range(6)] for r in range(6)]
_SINGULAR = [[(0.0 if r == 2 else 1.0) if r == c else 0.0 for c in range(6)] for r in range(6)]

BAD = {
    "tracks missing": (_drop(("tracks",)), r"^tracks = 'missing': allowed a list"),
    "tracks None": (_set(("tracks",), None), r"^tracks = None: allowed a list"),
    "tracks an object": (_set(("tracks",), {"a": 1}), r"^tracks = \{'a': 1\}: allowed a list"),
    "a track None": (_set(("tracks", 0), None), r"^tracks\[0\] = None: allowed an object"),
    "id an integer": (_set(("tracks", 1, "id"), 7), r"^tracks\[1\]\.id = 7: allowed a string"),
    "id empty": (_set(("tracks", 1, "id"), ""), r"^tracks\[1\]\.id = '': allowed a string"),
    "duplicate id": (_set(("tracks", 1, "id"), "a"), r"^tracks\[1\]\.id = 'a': allowed ids unique"),
    "unknown status": (_set(("tracks", 0, "status"), "lost"), r"^tracks\[0\]\.status = 'lost': allowed tentative"),
    "status None": (_set(("tracks", 0, "status"), None), r"^tracks\[0\]\.status = None"),
    "t_s a string": (_set(("tracks", 0, "t_s"), "10"), r"^tracks\[0\]\.t_s = '10': allowed a finite number"),
    "t_s NaN": (_set(("tracks", 0, "t_s"), math.nan), r"^header number = 'NaN': allowed finite numbers"),
    "state infinite": (_set(("tracks", 0, "state", 3), math.inf), r"^header number = 'Infinity'"),
    "state 1e999": (lambda h: h["tracks"][0]["state"].__setitem__(0, 1e300), None),   # valid: changed below
    "state 5 numbers": (_set(("tracks", 0, "state"), [0.0] * 5), r"^tracks\[0\]\.state = \[0\.0.*allowed a list "
                                                                  r"of 6 finite numbers"),
    "state a bool": (_set(("tracks", 0, "state", 2), True), r"^tracks\[0\]\.state\[2\] = True"),
    "state None": (_set(("tracks", 0, "state", 2), None), r"^tracks\[0\]\.state\[2\] = None"),
    "covariance 6 x 5": (_set(("tracks", 0, "covariance", 4), [1.0] * 5), r"^tracks\[0\]\.covariance = .*allowed a "
                                                                          r"6 x 6 list"),
    "covariance a string entry": (_set(("tracks", 0, "covariance", 4, 4), "1"),
                                  r"^tracks\[0\]\.covariance\[4\]\[4\] = '1'"),
    "covariance not symmetric": (_set(("tracks", 0, "covariance"), _NOT_SYMMETRIC),
                                 r"^tracks\[0\]\.covariance = 'asymmetry 0\.5 .*allowed a symmetric"),
    "covariance indefinite": (_set(("tracks", 0, "covariance"), _NEGATIVE),
                              r"^tracks\[0\]\.covariance = 'smallest eigenvalue -1.*allowed a positive-definite"),
    "covariance singular": (_set(("tracks", 0, "covariance"), _SINGULAR),
                            r"^tracks\[0\]\.covariance = 'smallest eigenvalue 0.*allowed a positive-definite"),
    "covariance zero": (_set(("tracks", 0, "covariance"), [[0] * 6] * 6),
                        r"^tracks\[0\]\.covariance = 'all zeros'"),
    "a track after the message time": (_set(("tracks", 1, "t_s"), 10.5),
                                       r"^tracks\[1\]\.t_s = 10\.5: allowed a time <= t0_s = 10\.0 s"),
    "stations a string": (_set(("tracks", 0, "stations"), "bs1"), r"^tracks\[0\]\.stations = 'bs1'"),
    "a station None": (_set(("tracks", 0, "stations", 0), None), r"^tracks\[0\]\.stations\[0\] = None"),
    "handovers missing": (_drop(("tracks", 0, "handovers")), r"^tracks\[0\]\.handovers = 'missing'"),
    "handovers backwards": (_set(("tracks", 0, "handovers"),
                                 [{"t_s": 9.0, "from": "a", "to": "b", "reason": "r"},
                                  {"t_s": 8.0, "from": "b", "to": "c", "reason": "r"}]),
                            r"^tracks\[0\]\.handovers\[1\]\.t_s = 8\.0: allowed a time >= the previous"),
    "a handover after the track": (_set(("tracks", 0, "handovers"),
                                        [{"t_s": 11.0, "from": "a", "to": "b", "reason": "r"}]),
                                   r"^tracks\[0\]\.handovers\[0\]\.t_s = 11\.0: allowed a time <= the track's"),
    "a handover without to": (_set(("tracks", 0, "handovers"), [{"t_s": 1.0, "from": "a", "reason": "r"}]),
                              r"^tracks\[0\]\.handovers\[0\]\.to = None"),
    "a handover reason a number": (_set(("tracks", 0, "handovers"),
                                        [{"t_s": 1.0, "from": "a", "to": "b", "reason": 3}]),
                                   r"^tracks\[0\]\.handovers\[0\]\.reason = 3"),
    "tail times backwards": (_set(("tracks", 0, "tail_t_s"), [9.5, 9.0]),
                             r"^tracks\[0\]\.tail_t_s\[0\] = 9\.5: allowed a time < the next tail time"),
    "tail at the track's time": (_set(("tracks", 0, "tail_t_s"), [9.0, 10.0]),
                                 r"^tracks\[0\]\.tail_t_s\[1\] = 10\.0: allowed a time < the track's t_s"),
    "tail without positions": (_drop(("tracks", 0, "tail_position_m")),
                               r"^tracks\[0\]\.tail_position_m = None: allowed a list of 2"),
    "tail positions 2-D": (_set(("tracks", 0, "tail_position_m", 1), [1.0, 2.0]),
                           r"^tracks\[0\]\.tail_position_m\[1\] = \[1\.0, 2\.0\]"),
    "tail too long": (_set(("tracks", 0, "tail_t_s"), list(range(65))), r"^tracks\[0\]\.tail_t_s = .*at most 64"),
    "members a list": (_set(("tracks", 0, "members"), ["a"]), r"^tracks\[0\]\.members = \['a'\]"),
    "a member id None": (_set(("tracks", 0, "members"), {"m1": None}), r"^tracks\[0\]\.members\.m1 = None"),
}
BAD.pop("state 1e999")


@pytest.mark.parametrize("name", list(BAD))
def test_malformed_tracks_are_rejected_naming_the_field(name: str) -> None:
    change, pattern = BAD[name]
    frames = _frames(change)
    with pytest.raises(WireFormatError, match=pattern):
        wire.decode(frames)


def test_a_number_that_overflows_a_float_is_rejected() -> None:
    frames = _frames(lambda h: None)
    frames[1] = frames[1].replace(b'"t_s":', b'"t_s":1e999,"x":', 1)
    with pytest.raises(WireFormatError, match=r"^header number = '1e999'"):
        wire.decode(frames)


def test_decode_tracks_takes_only_tracks_messages() -> None:
    msg = wire.decode(wire.encode_control("core", 0, "stop"))
    with pytest.raises(WireFormatError, match=r"^kind = 'control': allowed 'tracks'"):
        wire.decode_tracks(msg)


def test_encode_refuses_what_a_receiver_would_refuse() -> None:
    rng = np.random.default_rng(3)
    flat = Track("z0", [1.0], [[0.0] * 6], [np.diag([1.0, 1.0, 0.0, 1.0, 1.0, 0.0])])    # a PSD record: z known
    with pytest.raises(WireFormatError, match=r"^tracks\[0\]\.covariance = 'smallest eigenvalue 0"):
        wire.encode_tracks("m", 0, 1.0, [flat])
    with pytest.raises(WireFormatError, match=r"^tracks\[0\]\.t_s = 10\.0: allowed a time <= t0_s = 5\.0 s"):
        wire.encode_tracks("m", 0, 5.0, [_track(rng, "a")])
    with pytest.raises(WireFormatError, match=r"^tracks\[1\]\.id = 'a': allowed ids unique"):
        wire.encode_tracks("m", 0, 10.0, [_track(rng, "a"), _track(rng, "a")])
    with pytest.raises(WireFormatError, match=r"^track = \{'id': 'a'\}: allowed a sdr_isac.fusion.records.Track"):
        wire.encode_tracks("m", 0, 10.0, [{"id": "a"}])                       # type: ignore[list-item]
    with pytest.raises(WireFormatError, match=r"^tail = 65: allowed an integer 0 \.\.\. 64"):
        wire.encode_tracks("m", 0, 10.0, [_track(rng, "a")], tail=65)
    with pytest.raises(WireFormatError, match=r"^tracks\[0\]\.id = 'a b': allowed a string of 1 \.\.\. 64"):
        wire.encode_tracks("m", 0, 10.0, [_track(rng, "a b")])
    with pytest.raises(WireFormatError, match=r"^track 'e' states = '0 states'"):
        wire.encode_tracks("m", 0, 10.0, [Track("e", np.zeros(0), np.zeros((0, 6)), np.zeros((0, 6, 6)))])


# ---- fuzzing: every key of a tracks header, with the edges -------------------------------------------------
EDGE_VALUES: list[Any] = [None, True, False, 0, 1, -1, 2.5, 1e-300, 1e308, -1e308, 2**53 + 1, 2**63 - 1, 2**63,
                          -(2**63) - 1, math.inf, -math.inf, math.nan, "", "x", "confirmed", "a b", [], [None],
                          [1.0] * 6, [[1.0] * 6] * 6, [[0.0] * 6] * 6, [[1.0] * 6] * 5, {}, {"t_s": 1.0},
                          [{"t_s": 1.0, "from": "a", "to": "b", "reason": "r"}], ["bs1"], [[1.0, 2.0, 3.0]]]
json_values = st.recursive(st.sampled_from(EDGE_VALUES) | st.text(max_size=4) | st.floats()
                           | st.integers(-(2**70), 2**70),
                           lambda c: st.lists(c, max_size=7) | st.dictionaries(
                               st.sampled_from(["t_s", "from", "to", "reason", "id"]) | st.text(max_size=3), c,
                               max_size=4), max_leaves=40)
SAMPLE = _frames(lambda h: h["tracks"][0].__setitem__("members", {"m1": "a"}),
                 [Track("a", [9.0, 10.0], np.ones((2, 6)), [np.eye(6)] * 2, ("bs1", "bs2"),
                        (Handover(9.5, "bs1", "bs2", "coverage"),), "confirmed", [True, False]),
                  Track("b", [8.0], np.zeros((1, 6)), [np.eye(6) * 4.0])])


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    if isinstance(value, dict):
        for key, sub in value.items():
            out += [(*prefix, key), *_paths(sub, (*prefix, key))]
    elif isinstance(value, list):
        for i, sub in enumerate(value[:7]):
            out += [(*prefix, i), *_paths(sub, (*prefix, i))]
    return out


TARGETS = [p for p in _paths(json.loads(SAMPLE[1])) if p[0] not in ("sent_s", "v", "kind", "node_id")]


def _changed(frames: list[bytes], path: tuple[Any, ...], value: Any, delete: bool) -> list[bytes]:
    """The frames with the header's entry at ``path`` set to ``value`` (or deleted, where it is a key)."""
    header = json.loads(frames[1])
    parent = header
    for step in path[:-1]:
        parent = parent[step]
    if delete and not isinstance(path[-1], int):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return [frames[0], json.dumps(header).encode(), *frames[2:]]     # NaN / Infinity tokens as they come


@PROPS
@example(path=("tracks", 0, "covariance", 2, 2), value=0.0, delete=False)
@example(path=("tracks", 0, "covariance", 0, 1), value=1e-300, delete=False)
@example(path=("tracks", 0, "covariance", 0, 0), value=1e308, delete=False)
@example(path=("tracks", 1, "t_s"), value=10.0, delete=False)
@example(path=("tracks", 0, "tail_t_s"), value=None, delete=True)
@example(path=("t0_s",), value=8.5, delete=False)
@given(path=st.sampled_from(TARGETS), value=json_values, delete=st.booleans())
def test_every_key_of_a_tracks_header_with_edge_values(path: tuple[Any, ...], value: Any, delete: bool) -> None:
    _check(_changed(SAMPLE, path, value, delete))


ESTIMATES = oracle.raw_frames(wire.encode_estimates("mecs1", 2, 10.0, [dataclasses.replace(
    TargetEstimate.planar([41.9, 10.0], [[4.0, 1.0], [1.0, 9.0]], 1.0, nodes=("bs0",), mode="single",
                          velocity_xy_mps=[-14.0, 2.0], cov_velocity_xy_mps2=[[1e-3, 0.0], [0.0, 1e-3]],
                          single_m={"bs0": (41.9, 10.1)}),
    cov_position_m2=[[4.0, 1.0, 3.0], [1.0, 9.0, -6.0], [3.0, -6.0, 900.0]])]))
ESTIMATE_TARGETS = [p for p in _paths(json.loads(ESTIMATES[1])) if p[0] == "estimates"]


@PROPS
@example(path=("estimates", 0, "cov_position_z_m2", 2), value=0.0, delete=False)
@example(path=("estimates", 0, "cov_position_z_m2", 0), value=1e308, delete=False)
@example(path=("estimates", 0, "cov_position_z_m2", 2), value=-1e-300, delete=False)
@example(path=("estimates", 0, "cov_position_z_m2"), value=None, delete=True)
@given(path=st.sampled_from(ESTIMATE_TARGETS), value=json_values, delete=st.booleans())
def test_every_key_of_an_estimate_with_an_unknown_height_with_edge_values(path: tuple[Any, ...], value: Any,
                                                                        delete: bool) -> None:
    """A single node's fix with a z row (``cov_position_z_m2``): WireFormatError or a record the oracle agrees
    with (its z row as sent, a positive semi-definite position covariance)."""
    _check(_changed(ESTIMATES, path, value, delete))


@PROPS
@given(tracks=json_values | st.lists(json_values, max_size=3))
def test_garbage_track_lists(tracks: Any) -> None:
    frames = list(SAMPLE)
    header = json.loads(frames[1])
    header["tracks"] = tracks
    frames[1] = json.dumps(header).encode()
    _check(frames)


@PROPS
@given(seed=st.integers(0, 2**32 - 1), size=st.sampled_from([1e-300, 1e-8, 1.0, 1e8, 1e300]),
       defect=st.sampled_from(["none", "asymmetric", "rank", "negative", "tiny"]))
def test_covariances_near_the_edge_of_positive_definite(seed: int, size: float, defect: str) -> None:
    """Only what a Cholesky factorisation takes (checked by the oracle) is accepted, at every scale."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((6, 6))
    cov = a @ a.T
    if defect == "asymmetric":
        cov[0, 5] += 1e-3 * np.abs(cov).max()
    elif defect in ("rank", "negative", "tiny"):
        w, v = np.linalg.eigh(cov)
        w[0] = {"rank": 0.0, "negative": -1e-3 * w[-1], "tiny": 1e-14 * w[-1]}[defect]
        cov = (v * w) @ v.T
        cov = (cov + cov.T) / 2
    _check(_frames(_set(("tracks", 0, "covariance"), (cov * size).tolist())))
    if defect == "none" and np.linalg.eigvalsh(cov)[0] > 1e-10 * np.linalg.eigvalsh(cov)[-1]:
        assert wire.decode_tracks(wire.decode(_frames(_set(("tracks", 0, "covariance"), (cov * size).tolist()))))
