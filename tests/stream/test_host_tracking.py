"""The MECS host tracks its fused estimates, publishes tracks/<its id>, writes tracks.json and the twin, and checks
sample-time continuity per node; bad input (malformed tracks messages, a corrupt twin, time going back) is counted,
never a crash."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from sdr_isac import config
from sdr_isac.errors import InputError
from sdr_isac.stream import FusionHost, wire
from sdr_isac.stream.demo import free_ports, write_host_outputs
from sdr_isac.stream.host import NodeStats
from tests.stream.test_streaming import SMALL, node_process, wait_for

REPO = Path(__file__).resolve().parents[2]

TRACKING = """
[host]
node_id = "mecs7"
[tracking]
enabled = true
[twin]
enabled = true
db = "{db}"
"""


def small_config(tmp_path: Path, extra: str = "", db: str = "twin.sqlite") -> tuple[Path, config.Config]:
    port, publish_port = free_ports(2)
    text = SMALL.format(endpoint=f"tcp://127.0.0.1:{port}", publish=f"tcp://127.0.0.1:{publish_port}", extra=extra)
    path = tmp_path / "cfg.toml"
    path.write_text(text + TRACKING.format(db=db))
    return path, config.load(path)


def demo_config(tmp_path: Path) -> tuple[Path, config.Config]:
    """The demo scene (two BSs with 4-element arrays: they fuse), tracking and the twin as the demo has them."""
    port, publish_port = free_ports(2)
    text = (REPO / "sdr_isac" / "demo.toml").read_text() + (
        f'\n[stream]\nhost_endpoint = "tcp://127.0.0.1:{port}"\npublish_endpoint = "tcp://127.0.0.1:{publish_port}"\n'
        'heartbeat_s = 0.2\n[host]\nnode_id = "mecs7"\n')
    path = tmp_path / "demo.toml"
    path.write_text(text)
    return path, config.load(path)


def listen(endpoint: str) -> tuple[zmq.Socket, list[wire.Message]]:
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    for topic in (b"tracks/", b"estimates/"):
        sub.setsockopt(zmq.SUBSCRIBE, topic)
    sub.connect(endpoint)
    return sub, []


def drain(sub: zmq.Socket, into: list[wire.Message]) -> None:
    while sub.poll(0):
        into.append(wire.decode(sub.recv_multipart()))


# ---- sample-time continuity -----------------------------------------------------------------------------------
def test_continuity_counts_steps_back_and_gaps_against_the_frame_period() -> None:
    node = NodeStats()
    period = 1e-3
    t0 = 1.7e9                                          # a Unix-epoch clock: 1 ms steps near float64's resolution
    seq_t = [(0, t0), (1, t0 + period), (2, t0 + 2 * period),
             (4, t0 + 4 * period),                      # one frame lost on the way (seq 3): no sample-time gap
             (5, t0 + 5.5 * period),                    # half a frame of samples missing at the radio: a gap
             (6, t0 + 5.2 * period),                    # t0 went back
             (7, t0 + 7 * period)]                      # against 5.2 ms: 1.8 periods for one frame: a gap
    results = []
    for seq, t in seq_t:
        results.append(node.on_t0(seq, t, period))
        node.on_seq(seq)
    assert results == [None, None, None, None, "gap", "backwards", "gap"]
    assert (node.t0_backwards, node.t0_gaps, node.lost) == (1, 2, 1)
    assert node.t0_gap_max_s == pytest.approx(0.8 * period, rel=1e-4)
    assert node.to_dict()["t0_gaps"] == 2 and node.to_dict()["t0_backwards"] == 1
    # a restart (sequence back to 0) starts the check again, uncounted
    assert node.on_t0(0, 0.0, period) is None and node.t0_backwards == 1


@settings(max_examples=150, deadline=None)
@given(period=st.floats(1e-9, 1e3), start=st.floats(-1e9, 1e9),
       events=st.lists(st.sampled_from(["ok", "lost", "gap", "back", "same"]), min_size=0, max_size=40))
def test_continuity_counts_exactly_the_injected_faults(period: float, start: float, events: list[str]) -> None:
    """Frames back to back at ``period``; each injected fault is counted once, in its counter."""
    node = NodeStats()
    seq, t = 0, start
    node.on_t0(seq, t, period)
    node.on_seq(seq)
    want_back = want_gap = 0
    for e in events:
        frames = 2 if e == "lost" else 1
        seq += frames
        if e == "back":
            t -= period
            want_back += 1
        elif e == "same":
            want_back += 1                              # t0 stood still: not a later capture
        else:
            t += frames * period + (0.5 * period if e == "gap" else 0.0)
            want_gap += e == "gap"
        if abs(t) > 1e9 * period:                       # beyond float64's resolution of one period: not a test
            return
        node.on_t0(seq, t, period)
        node.on_seq(seq)
    assert (node.t0_backwards, node.t0_gaps) == (want_back, want_gap)


def test_continuity_of_detections_learns_the_period() -> None:
    node = NodeStats()
    for seq, t in enumerate([0.0, 0.01, 0.02, 0.03, 0.05, 0.06, 0.055]):
        node.on_t0(seq, t, None)
        node.on_seq(seq)
    assert node.period_s == pytest.approx(0.01)
    assert (node.t0_gaps, node.t0_backwards) == (1, 1)


def test_host_counts_time_going_back_and_malformed_tracks_without_stopping(tmp_path: Path) -> None:
    _, cfg = small_config(tmp_path)
    with FusionHost(cfg, out_dir=tmp_path) as host:
        push = zmq.Context.instance().socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(cfg.stream.host_endpoint)
        for seq, t0 in enumerate([1.0, 1.1, 1.2, 1.15, 1.5, 1.6]):      # back at seq 3, then 3.5 periods
            push.send_multipart(wire.encode_detections("x", seq, t0, [], radio="sim"))
            # a real radio's captures are not back to back: the same times are only checked for going back
            push.send_multipart(wire.encode_detections("y", seq, t0, [], radio="pluto"))
        good = wire.encode_tracks("mecs9", 0, 2.0, [])
        header = json.loads(bytes(good[1]))
        cov = np.eye(6)
        cov[0, 0] = -1.0
        item = {"id": "m-1", "status": "confirmed", "t_s": 2.0, "state": [0.0] * 6, "covariance": cov.tolist(),
                "stations": ["bs0"], "handovers": []}
        late = dict(item, covariance=np.eye(6).tolist(), t_s=3.0)
        for tracks in ([item], [late]):
            push.send_multipart([good[0], json.dumps(dict(header, tracks=tracks)).encode()])
        assert wait_for(lambda: host.stats()["rejected"] >= 2 and host.stats()["nodes"].get("x", {})
                        .get("received") == 6 and host.stats()["nodes"].get("y", {}).get("received") == 6, 10)
        stats = host.stats()
        push.close()
    assert stats["nodes"]["x"]["t0_backwards"] == 1 and stats["nodes"]["x"]["t0_gaps"] == 1   # 1.15 -> 1.5
    assert stats["nodes"]["y"]["t0_backwards"] == 1 and stats["nodes"]["y"]["t0_gaps"] == 0
    assert stats["t0_backwards"] == 2 and stats["receiver_alive"] and stats["worker_alive"]
    assert any("covariance" in e for e in stats["errors"]) and any("t_s" in e for e in stats["errors"])


# ---- tracking, publishing, tracks.json and the twin ---------------------------------------------------------------
def test_host_tracks_its_estimates_publishes_and_stores_them(tmp_path: Path) -> None:
    from sdr_isac.display.tracks import load_tracks
    from sdr_isac.twin import open_twin

    path, cfg = demo_config(tmp_path)
    assert cfg.tracking.enabled and cfg.twin.enabled and cfg.twin.db == "twin.sqlite"
    frames = 4
    with FusionHost(cfg, out_dir=tmp_path) as host:
        sub, got = listen(cfg.stream.publish_endpoint)
        time.sleep(0.3)                                  # the subscription reaches the publisher first
        procs = [node_process(path, n, frames) for n in ("bs0", "bs1")]
        try:
            for p in procs:
                _, err = p.communicate(timeout=90)
                assert p.returncode == 0, err
            assert wait_for(lambda: host.finished({"bs0", "bs1"}), 60)
            drain(sub, got)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    time.sleep(0.1)
    drain(sub, got)
    sub.close()
    stats = host.stats()
    write_host_outputs(host, cfg, tmp_path / "out")
    # estimates and tracks come out under the host's own id, tracks in time order
    kinds = {(m.kind, m.node_id) for m in got}
    assert kinds == {("estimates", "mecs7"), ("tracks", "mecs7")}, kinds
    sets = [wire.decode_tracks(m) for m in got if m.kind == "tracks"]
    assert sets and [s.t0_s for s in sets] == sorted(s.t0_s for s in sets)
    tracking = stats["tracking"]
    # one set per frame (bs0's frame k with bs1's frame k), each tracked once (the last one by stop())
    assert tracking["steps"] == frames and tracking["failed"] == 0 and tracking["not_sent"] == 0
    assert tracking["out_of_order"] == 0
    # the demo's frames: 8 slots of numerology 3 back to back, 1 ms each; no sample-time gap
    for node in ("bs0", "bs1"):
        assert stats["nodes"][node]["period_s"] == pytest.approx(1e-3, rel=0.01)
        assert stats["nodes"][node]["t0_gaps"] == 0 and stats["nodes"][node]["t0_backwards"] == 0
    # the tracks against the truth of the scene: the car from (42, 10) m at (-14, 2) m/s, the cyclist from
    # (65, -20) m at (5, 4) m/s: each truth has a confirmed track within 5 sigma (+ 5 cm) at the last time
    confirmed = [t for t in host.tracks if t.status == "confirmed"]
    assert len(confirmed) == 2, host.tracks
    for start, velocity in (((42.0, 10.0), (-14.0, 2.0)), ((65.0, -20.0), (5.0, 4.0))):
        t = float(confirmed[0].t_s[-1])
        truth = np.asarray(start) + t * np.asarray(velocity)
        best = min(confirmed, key=lambda tr: float(np.linalg.norm(tr.states[-1, :2] - truth)))
        err = best.states[-1, :2] - truth
        sigma = np.sqrt(np.diag(best.covariances[-1])[:2])
        assert np.all(np.abs(err) < 5 * sigma + 0.05), (err, sigma)
        assert 2 <= best.num_states <= 9                 # its latest state and up to 8 before it (the tail)
    # tracks.json holds the same tracks, readable by the display through the wire's decoder
    doc = json.loads((tmp_path / "out" / "tracks.json").read_text())
    assert doc["node_id"] == "mecs7" and {d["id"] for d in doc["tracks"]} == {t.track_id for t in host.tracks}
    assert {t.track_id for t in load_tracks(tmp_path / "out" / "tracks.json").tracks} == \
        {t.track_id for t in host.tracks}
    # the twin in the output folder: every detection of both nodes, every estimate, the tracks' states
    twin = stats["twin"]
    assert twin["db"] == str(tmp_path / "twin.sqlite") and twin["dropped"] == 0 and twin["failed"] == 0
    assert twin["prune_failures"] == 0 and twin["pruned_rows"] == 0          # no retention configured
    with open_twin(str(tmp_path / "twin.sqlite"), read_only=True) as store:
        stored = {tr.track_id: tr for tr in store.tracks(0.0, 1.0)}
        counts = store.counts()
    n_dets = sum(len(item["detections"]) for n in ("bs0", "bs1") for item in host.detections_by_node()[n])
    assert counts["detections"] == n_dets
    assert counts["estimates"] == sum(len(s["records"]) for s in host.estimates)
    for tr in confirmed:
        assert stored[tr.track_id].num_states == tr.num_states      # every scan's state, one row each
        np.testing.assert_allclose(stored[tr.track_id].states[-1], tr.states[-1])


def test_a_corrupt_twin_never_stops_the_host(tmp_path: Path) -> None:
    bad = tmp_path / "broken.sqlite"
    bad.write_bytes(b"this is not a SQLite database" * 100)
    path, cfg = small_config(tmp_path, db=str(bad))
    with FusionHost(cfg, out_dir=tmp_path) as host:
        proc = node_process(path, "a", 3)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert wait_for(lambda: host.finished({"a"}), 30)
        assert wait_for(lambda: host.stats()["twin"]["failed_batches"] >= 1, 10)
    stats = host.stats()
    assert stats["nodes"]["a"]["processed"] == 3 and stats["receiver_alive"] and stats["worker_alive"]
    assert stats["twin"]["written"] == 0 and str(bad) in stats["twin"]["last_error"]
    assert "corrupt" in stats["twin"]["last_error"] or "not a database" in stats["twin"]["last_error"]


def test_tracking_host_module_does_not_import_stonesoup_until_it_tracks() -> None:
    import subprocess
    import sys

    code = ("import sys, sdr_isac.stream.host, sdr_isac.stream.demo, sdr_isac.display.tracks; "
            "print('stonesoup' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_host_node_id_is_checked() -> None:
    with pytest.raises(config.ConfigError, match=r"host.node_id = 'a b'.*A-Z a-z 0-9"):
        config.loads('[host]\nnode_id = "a b"')
    assert config.loads("").host.node_id == "host"


def test_a_handover_between_stations_is_counted_published_and_kept(tmp_path: Path) -> None:
    """Estimates of one target moving at (4, 0) m/s, from bs0 for 5 scans, then from bs1: the track keeps its id,
    and the handover (bs0 -> bs1, coverage) at the first bs1 scan is logged in the stats, tracks.json and the
    published tracks."""
    from sdr_isac.fusion.records import TargetEstimate

    _, cfg = small_config(tmp_path, db=":memory:")
    host = FusionHost(cfg)
    sub, got = listen(cfg.stream.publish_endpoint)
    time.sleep(0.3)
    try:
        for k in range(10):
            t = 0.1 * k
            est = TargetEstimate(np.array([4.0 * t, 2.0, 1.0]), np.diag([0.01, 0.01, 0.01]), t_s=t,
                                 nodes=("bs0",) if k < 5 else ("bs1",), velocity_mps=np.array([4.0, 0.0, 0.0]),
                                 cov_velocity_mps2=np.diag([0.01, 0.01, 0.01]))
            host._publish_estimates(t, {"bs0" if k < 5 else "bs1": k}, [est], [])
    finally:
        host.stop()
    time.sleep(0.1)
    drain(sub, got)
    sub.close()
    stats = host.stats()["tracking"]
    assert stats["steps"] == 10 and stats["started"] == 1 and stats["handovers"] == 1
    (track,) = host.tracks
    (track_id, h), = host.handovers
    assert track_id == track.track_id == "mecs7-1" and track.stations == ("bs0", "bs1")
    assert (h.from_station, h.to_station, h.reason) == ("bs0", "bs1", "coverage") and h.t_s == pytest.approx(0.5)
    doc = host.tracks_document()
    assert doc["handovers"] == [{"track_id": "mecs7-1", "t_s": h.t_s, "from": "bs0", "to": "bs1",
                                 "reason": "coverage"}]
    last = wire.decode_tracks([m for m in got if m.kind == "tracks"][-1])
    assert [x.handovers for x in last.tracks] == [(h,)]
    # the tail on the wire: the 8 states before the latest, along the truth x = 4 t
    tail_t, tail_m = last.tails["mecs7-1"]
    np.testing.assert_allclose(tail_t, 0.1 * np.arange(1, 9), atol=1e-9)
    np.testing.assert_allclose(tail_m[:, 0], 4.0 * tail_t, atol=0.2)


def test_a_host_of_one_node_with_min_nodes_1_tracks_its_single_node_fixes(tmp_path: Path) -> None:
    """fusion.min_nodes = 1 (a MECS host serving one node, as the urban demo's Wi-Fi access point): the node's own
    fixes (range and array angle) are published as estimates (mode single) and tracked; with the default 2 the
    same host publishes nothing."""
    import dataclasses

    frames = 4
    for min_nodes in (1, 2):
        (tmp_path / str(min_nodes)).mkdir()
        path, cfg = demo_config(tmp_path / str(min_nodes))              # fresh ports for each host
        one = dataclasses.replace(cfg, fusion=dataclasses.replace(cfg.fusion, min_nodes=min_nodes))
        with FusionHost(one, out_dir=tmp_path / str(min_nodes)) as host:
            proc = node_process(path, "bs0", frames)
            try:
                _, err = proc.communicate(timeout=90)
                assert proc.returncode == 0, err
                assert wait_for(lambda: host.finished({"bs0"}), 60)
            finally:
                proc.kill()
                proc.wait()
        stats = host.stats()
        records = [e for s in host.estimates for e in s["records"]]
        if min_nodes == 2:
            assert records == [] and stats["tracking"]["steps"] == 0
            continue
        assert records and all(e.mode == "single" and e.nodes == ("bs0",) for e in records)
        assert stats["tracking"]["steps"] == frames and stats["tracking"]["failed"] == 0
        confirmed = [t for t in host.tracks if t.status == "confirmed"]
        assert confirmed, host.tracks
        # each confirmed track lies on a target of the scene within 5 sigma (+ 5 cm) of its own covariance
        for track in confirmed:
            t = float(track.t_s[-1])
            truths = [np.asarray(p) + t * np.asarray(v) for p, v in (((42.0, 10.0), (-14.0, 2.0)),
                                                                     ((65.0, -20.0), (5.0, 4.0)))]
            err = min((track.states[-1, :2] - x for x in truths), key=lambda e: float(np.linalg.norm(e)))
            sigma = np.sqrt(np.diag(track.covariances[-1])[:2])
            assert np.all(np.abs(err) < 5 * sigma + 0.05), (err, sigma)


def test_a_host_with_expected_nodes_tracks_an_instant_once_every_node_is_in_it(tmp_path: Path) -> None:
    """A node that lags (its process started late): the sets of bs0 and bs1 at t = 0.1, 0.2 come before bs2's set
    at t = 0; with expected_nodes the tracker waits for bs2 and takes every instant, in time order, with all
    three nodes (without, the late instant would be left out as out of order)."""
    from sdr_isac.fusion.records import TargetEstimate

    def est(t: float) -> list[TargetEstimate]:
        return [TargetEstimate(np.array([4.0 * t, 2.0, 1.0]), np.diag([0.01, 0.01, 0.01]), t_s=t,
                               nodes=("bs0", "bs1"))]

    order = [(0.0, ("bs0", "bs1")), (0.1, ("bs0", "bs1")), (0.2, ("bs0", "bs1")), (0.0, ("bs0", "bs1", "bs2")),
             (0.1, ("bs0", "bs1", "bs2")), (0.2, ("bs0", "bs1", "bs2"))]
    counts = {}
    for expected in (("bs0", "bs1", "bs2"), None):
        _, cfg = small_config(tmp_path, db=":memory:")
        host = FusionHost(cfg, expected_nodes=expected)
        tracked: list[float] = []
        real_track = host._track

        def track(t0: float, ests: list[TargetEstimate], real=real_track, into=tracked) -> None:
            into.append(t0)
            real(t0, ests)

        host._track = track  # type: ignore[method-assign]
        try:
            for t, nodes in order:
                host._publish_estimates(t, dict.fromkeys(nodes, int(t * 10)), est(t), [])
        finally:
            host.stop()
        counts[expected is not None] = (tracked, host.stats()["tracking"])
    tracked, stats = counts[True]
    assert tracked == [0.0, 0.1, 0.2] and stats["out_of_order"] == 0 and stats["same_t0"] == 3
    tracked, stats = counts[False]        # the old rule: bs2's sets at 0.0 and 0.1 come too late and are left out
    assert stats["out_of_order"] == 2
    with pytest.raises(InputError, match="expected_nodes"):
        FusionHost(small_config(tmp_path)[1], expected_nodes="bs0")
    # a node never heard from: each instant waits for it until HOLD_INSTANTS later ones are held, and stop() tracks
    # the rest in time order
    from sdr_isac.stream.host import HOLD_INSTANTS

    _, cfg = small_config(tmp_path, db=":memory:")
    host = FusionHost(cfg, expected_nodes=("bs0", "bs1", "bs9"))
    try:
        for k in range(HOLD_INSTANTS + 5):
            host._publish_estimates(0.1 * k, {"bs0": k, "bs1": k}, est(0.1 * k), [])
        assert host.stats()["tracking"]["steps"] == 5                 # (HOLD_INSTANTS + 5) - HOLD_INSTANTS
    finally:
        host.stop()
    assert host.stats()["tracking"]["steps"] == HOLD_INSTANTS + 5 and host.stats()["tracking"]["out_of_order"] == 0
