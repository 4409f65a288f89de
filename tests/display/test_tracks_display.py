"""Tracks in the display: decoded by the wire's decoder (live and from tracks.json), drawn with ids, tails and
handovers where the states put them; malformed tracks messages rejected and counted; a collection's member."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sdr_isac.display.sources import HostSource
from sdr_isac.display.tracks import load_tracks, track_views
from sdr_isac.display.window import RangeDopplerWindow, snapshot
from sdr_isac.errors import InputError, WireFormatError
from sdr_isac.fusion.records import Handover, Track
from sdr_isac.stream import wire
from sdr_isac.stream.demo import free_ports

REPO = Path(__file__).resolve().parents[2]
OFFLINE = REPO / "offline_data"


def moving_track(track_id: str, start_m: tuple[float, float], velocity_mps: tuple[float, float], n: int,
                 handover_at: int | None = None) -> Track:
    """A track of ``n`` states, 1 s apart, moving at constant velocity; optionally handed from bs0 to bs1."""
    t = np.arange(n, dtype=float)
    xy = np.asarray(start_m) + np.outer(t, velocity_mps)
    states = np.column_stack([xy, np.ones(n), np.tile([*velocity_mps, 0.0], (n, 1))])
    covs = np.stack([np.diag([1.0, 1.0, 0.5, 0.2, 0.2, 0.1])] * n)
    if handover_at is None:
        return Track(track_id, t, states, covs, ("bs0",), (), "confirmed")
    return Track(track_id, t, states, covs, ("bs0", "bs1"),
                 (Handover(float(t[handover_at]), "bs0", "bs1", "coverage"),), "confirmed")


def decoded(tracks: list[Track], t0_s: float, tail: int = 8) -> wire.TrackSet:
    return wire.decode_tracks(wire.decode(wire.encode_tracks("mecs1", 3, t0_s, tracks, tail=tail)))


def test_track_views_put_tails_and_handovers_where_the_states_are() -> None:
    a = moving_track("mecs1-1", (0.0, 0.0), (2.0, 1.0), 12, handover_at=9)
    b = moving_track("mecs1-2", (50.0, -5.0), (-1.0, 0.0), 3)
    views = {v.track_id: v for v in track_views(decoded([a, b], 11.0))}
    # the tail: the 8 states before the latest, then the latest (states 3 ... 11 of a)
    np.testing.assert_allclose(views["mecs1-1"].positions_m, a.states[3:, :3])
    np.testing.assert_allclose(views["mecs1-2"].positions_m, b.states[:, :3])
    (h, at), = views["mecs1-1"].handovers
    assert (h.from_station, h.to_station, h.t_s) == ("bs0", "bs1", 9.0)
    np.testing.assert_allclose(at, [18.0, 9.0, 1.0])      # start + 9 s x (2, 1) m/s
    assert views["mecs1-1"].owner == "bs1" and views["mecs1-2"].handovers == ()
    # Track records draw their whole history
    (whole,) = track_views([a])
    np.testing.assert_allclose(whole.positions_m, a.states[:, :3])
    for bad in ("tracks", [a, "b"], 3, None):
        with pytest.raises(InputError, match="allowed a wire.TrackSet or a sequence"):
            track_views(bad)                                       # type: ignore[arg-type]


def test_window_draws_ids_tails_and_handover_markers(qtbot) -> None:
    window = RangeDopplerWindow()
    qtbot.addWidget(window)
    a = moving_track("mecs1-1", (0.0, 0.0), (2.0, 1.0), 12, handover_at=9)
    window.set_tracks(decoded([a], 11.0))
    x, y = window.track_curves[0].getData()
    np.testing.assert_allclose(np.column_stack([x, y]), a.states[3:, :2])
    texts = sorted(label.toPlainText() for label in window.track_labels)
    assert texts == ["bs0→bs1", "mecs1-1 @bs1"]
    np.testing.assert_allclose(window.handover_points, [[18.0, 9.0]])
    hx, hy = window.handover_markers.getData()
    assert hx.tolist() == [18.0] and hy.tolist() == [9.0]
    window.set_tracks(decoded([], 12.0))                    # an empty set clears tracks, labels and markers
    assert window.track_curves == [] and window.track_labels == [] and len(window.handover_points) == 0


def test_a_coasting_track_is_drawn_dashed_and_labelled(qtbot) -> None:
    """The latest state predicted (the scan missed the target): dashed, "coasting"; measured, or not known: solid."""
    from PyQt6 import QtCore

    window = RangeDopplerWindow()
    qtbot.addWidget(window)
    base = moving_track("c", (0.0, 0.0), (2.0, 1.0), 4)
    flags = {"coasting": [True, True, True, False], "measured": [True, True, False, True], "unknown": None}
    tracks = [dataclasses.replace(base, track_id=name, measured=None if f is None else np.array(f))
              for name, f in flags.items()]
    assert [v.coasting for v in track_views(decoded(tracks, 3.0))] == [True, False, False]
    window.set_tracks(decoded(tracks, 3.0))
    styles = [curve.opts["pen"].style() for curve in window.track_curves]
    assert styles == [QtCore.Qt.PenStyle.DashLine, QtCore.Qt.PenStyle.SolidLine, QtCore.Qt.PenStyle.SolidLine]
    assert sorted(label.toPlainText() for label in window.track_labels) == ["coasting @bs0 coasting",
                                                                             "measured @bs0", "unknown @bs0"]


def test_snapshot_places_tracks_and_handovers_at_their_positions(tmp_path: Path, qapp) -> None:
    from sdr_isac.display.sources import ReplaySource

    with ReplaySource(OFFLINE / "two_targets.sigmf-meta") as source:
        frame = source.wait(timeout_s=60.0)
    assert frame is not None
    a = moving_track("mecs1-1", (10.0, -10.0), (3.0, 2.0), 10, handover_at=7)
    pixels = snapshot(frame, tmp_path / "s.png", (900, 600), tracks=decoded([a], 9.0))
    assert (tmp_path / "s.png").stat().st_size > 10_000
    (track_px,), (handover_px,) = pixels["tracks"], pixels["handovers"]
    # 2 s of motion between the handover (state 7) and the latest state (9): (6, 4) m apart on screen, in the
    # direction of the velocity (screen y grows downwards)
    dx, dy = track_px[0] - handover_px[0], track_px[1] - handover_px[1]
    assert dx > 0 and dy < 0
    assert abs(np.arctan2(-dy, dx) - np.arctan2(4.0, 6.0)) < 0.1


def test_live_tracks_are_decoded_and_malformed_ones_counted(qtbot) -> None:
    import zmq

    (port,) = free_ports(1)
    endpoint = f"tcp://127.0.0.1:{port}"
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(endpoint)
    good = wire.encode_tracks("mecs1", 0, 4.0, [moving_track("mecs1-1", (0.0, 0.0), (1.0, 0.0), 5, 2)], tail=8)
    header = json.loads(bytes(good[1]))
    bad_cov = dict(header, seq=1)
    bad_cov["tracks"] = [dict(header["tracks"][0], covariance=(-np.eye(6)).tolist())]       # not positive definite
    asym = dict(header, seq=2)
    cov = np.eye(6)
    cov[0, 1] = 0.5
    asym["tracks"] = [dict(header["tracks"][0], covariance=cov.tolist())]                   # not symmetric
    late = dict(header, seq=3, t0_s=1.0)                                                    # track after the set
    bad = [[good[0], json.dumps(h).encode()] for h in (bad_cov, asym, late)]
    try:
        with HostSource(endpoint) as source:
            window = RangeDopplerWindow(source=source, refresh_ms=10)
            qtbot.addWidget(window)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and (source.rejected < 3 or not window.tracks):
                for frames in bad:                                      # PUB drops until SUB joins: repeat
                    pub.send_multipart(frames)
                pub.send_multipart(good)
                qtbot.wait(50)
            assert source.rejected >= 3 and source.error is None
            assert list(window.tracks) == ["mecs1-1"] and window.handover_points.tolist() == [[2.0, 0.0]]
            assert all(t.is_alive() for t in source._threads)
    finally:
        pub.close()


def test_tracks_file_is_checked_by_the_wire_decoder(tmp_path: Path) -> None:
    a = moving_track("mecs1-1", (0.0, 0.0), (2.0, 1.0), 4)
    doc = {"node_id": "mecs1", "seq": 7, "t0_s": 3.0, "tracks": [wire.track_to_dict(a, 8)]}
    path = tmp_path / "tracks.json"
    path.write_text(json.dumps(doc))
    ts = load_tracks(path)
    assert (ts.node_id, ts.seq, [t.track_id for t in ts.tracks]) == ("mecs1", 7, ["mecs1-1"])
    doc["tracks"][0]["covariance"] = np.diag([1.0, 1, 1, 1, 1, -1]).tolist()
    path.write_text(json.dumps(doc))
    with pytest.raises(WireFormatError, match=r"tracks\[0\]\.covariance"):
        load_tracks(path)
    path.write_text("{not json")
    with pytest.raises(WireFormatError, match="not JSON"):
        load_tracks(path)
    path.write_text(json.dumps({"tracks": []}))
    with pytest.raises(WireFormatError, match="node_id, seq, t0_s and tracks"):
        load_tracks(path)
    with pytest.raises(WireFormatError, match="cannot read"):
        load_tracks(tmp_path / "missing.json")
    # a host that never tracked writes t0_s null and seq -1: no tracks, no error
    path.write_text(json.dumps({"node_id": "host", "seq": -1, "t0_s": None, "tracks": []}))
    assert load_tracks(path).tracks == ()


def test_replay_of_a_collection_takes_the_node_and_draws_the_tracks_file(tmp_path: Path) -> None:
    import shutil

    from sdr_isac.recording import write_collection

    members = []
    for name, node_id in (("two_targets", "bs0"), ("single_target", "bs7")):
        shutil.copy(OFFLINE / f"{name}.sigmf-data", tmp_path / f"{node_id}.sigmf-data")
        meta = json.loads((OFFLINE / f"{name}.sigmf-meta").read_text())
        meta["global"]["isac:node"]["id"] = node_id
        (tmp_path / f"{node_id}.sigmf-meta").write_text(json.dumps(meta))
        members.append(tmp_path / f"{node_id}.sigmf-meta")
    collection = write_collection(tmp_path / "run", members, overwrite=True, verify_checksum=False)
    a = moving_track("host-1", (20.0, 0.0), (-1.0, 0.5), 6, handover_at=3)
    tracks = tmp_path / "tracks.json"
    tracks.write_text(json.dumps({"node_id": "host", "seq": 0, "t0_s": 5.0, "tracks": [wire.track_to_dict(a, 8)]}))
    node_id = "bs7"
    base = [sys.executable, "-m", "sdr_isac", "display", "--replay", str(collection)]
    done = subprocess.run([*base, "--snapshot", str(tmp_path / "x.png")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--node" not in done.stdout
    assert "node" in done.stderr                                       # several members: say which node ids
    done = subprocess.run([*base, "--node", node_id, "--tracks", str(tracks), "--snapshot", str(tmp_path / "x.png")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # bs7's member is the one-target recording (its captures carry their own node id, bs0): one detection
    assert "seq 0, 1 detections, 1 tracks" in done.stdout, done.stdout
    done = subprocess.run([sys.executable, "-m", "sdr_isac", "display", "--host", "tcp://127.0.0.1:1", "--tracks",
                           str(tracks), "--snapshot", str(tmp_path / "y.png")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "--tracks" in done.stderr and "only with --replay" in done.stderr
