"""The core host's centralised mode: one tracker over the MECS hosts' estimates, against track fusion.

- In one process, seeded: :class:`~sdr_isac.fusion.trackfusion.CentralisedFuser` fed two sources' estimate sets
  out of order is, state for state, the Kalman filter of all the estimates in time order (an independent numpy
  filter); over independent Monte Carlo runs its NEES lies in the 95 % chi-square interval, and its error is
  below that of covariance intersection of the two sources' own tracks (:class:`TrackToTrackFuser`).
- Over the wire: two fake MECS processes (``tests/stream/fake_mecs.py --estimates``) measure one target on a
  seeded nearly-constant-velocity path and publish their estimates and their own tracks; a centralised core
  (``python -m sdr_isac.stream.core``, a process) and a track-fusion core (in this process) fuse them.  The
  centralised global track's error against the truth is at most the CI-fused one's over the same instants,
  its NEES is consistent; then one MECS is killed and restarted: the track keeps its id, the gap is reported.
- What the centralised core refuses and counts; the fuser's input checks (hypothesis, to the edges).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.stats import chi2

from sdr_isac import config
from sdr_isac.config.tracking import TrackingConfig
from sdr_isac.errors import ConfigError, InputError
from sdr_isac.fusion.records import TargetEstimate, Track
from sdr_isac.fusion.trackfusion import CentralisedFuser, TrackToTrackFuser
from sdr_isac.stream import wire
from sdr_isac.stream.core import CoreHost
from sdr_isac.stream.demo import free_ports
from tests.stream.fake_mecs import truth_path
from tests.stream.test_core import _end, _env, _stats, _subscriber

REPO = Path(__file__).resolve().parents[2]
Q_M2PS3 = 0.5                     # the truth's white-acceleration density = the trackers' (vehicle, the default)
SIGMA_M, SIGMA_MPS = 0.5, 0.25    # the estimates' noise: position (x, y), velocity (v_x, v_y)
GRID_S = 0.05                     # source A measures at even grid instants, source B at odd ones
START, VELOCITY = [0.0, 0.0, 10.0], [5.0, 2.0, 0.0]
HORIZONTAL = [0, 1, 3, 4]         # x, y, v_x, v_y: the height and v_z are known (planar estimates)


def _estimate(rng: np.random.Generator, x: np.ndarray, t_s: float, node: str) -> TargetEstimate:
    cov_xy, cov_v = np.eye(2) * SIGMA_M**2, np.eye(2) * SIGMA_MPS**2
    return TargetEstimate.planar(x[:2] + rng.normal(0.0, SIGMA_M, 2), cov_xy, float(x[2]), t_s=t_s, nodes=(node,),
                                 velocity_xy_mps=x[3:5] + rng.normal(0.0, SIGMA_MPS, 2), cov_velocity_xy_mps2=cov_v)


def _kalman(estimates: list[TargetEstimate], q_m2ps3: float, prior_var: float = 1e8,
            speed_var: float = TrackingConfig().init_speed_std_mps ** 2) -> tuple[np.ndarray, np.ndarray]:
    """Independent numpy Kalman filter of (x, y, v_x, v_y) over the estimates in time order (white acceleration).

    Prior N(0, diag(prior_var, prior_var, speed_var, speed_var)) -- a vague position, the tracker's speed prior
    (``tracking.init_speed_std_mps``) -- updated by the first estimate, as a tracker starts a track from it.
    """
    x, p, t_prev = np.zeros(4), np.diag([prior_var, prior_var, speed_var, speed_var]), None
    for est in estimates:
        if t_prev is not None:
            dt = est.t_s - t_prev
            f = np.eye(4)
            f[0, 2] = f[1, 3] = dt
            q1 = q_m2ps3 * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
            q = np.zeros((4, 4))
            q[np.ix_([0, 2], [0, 2])] = q[np.ix_([1, 3], [1, 3])] = q1
            x, p = f @ x, f @ p @ f.T + q
        assert est.velocity_mps is not None and est.cov_velocity_mps2 is not None
        z = np.concatenate([est.position_m[:2], est.velocity_mps[:2]])
        r = np.zeros((4, 4))
        r[:2, :2], r[2:, 2:] = est.cov_position_m2[:2, :2], est.cov_velocity_mps2[:2, :2]
        gain = p @ np.linalg.inv(p + r)
        x, p = x + gain @ (z - x), (np.eye(4) - gain) @ p
        t_prev = est.t_s
    return x, p


def _nees(track: Track, x_true: np.ndarray) -> float:
    err = track.states[-1][HORIZONTAL] - x_true[HORIZONTAL]
    return float(err @ np.linalg.solve(track.covariances[-1][np.ix_(HORIZONTAL, HORIZONTAL)], err))


def test_centralised_fuser_is_the_kalman_filter_of_all_estimates_and_beats_track_fusion() -> None:
    runs, per_source = 30, 12
    tracking = TrackingConfig(enabled=True, noise_vehicle_m2ps3=Q_M2PS3)
    nees, err2_central, err2_ci = [], [], []
    for run in range(runs):
        rng = np.random.default_rng(1000 + run)
        path = truth_path(run, GRID_S, 2 * per_source, START, VELOCITY, Q_M2PS3)
        central = CentralisedFuser(tracking, ["A", "B"], reorder_s=1.0)
        from sdr_isac.fusion.tracking import Tracker

        local = {"A": Tracker(tracking, "A", "a"), "B": Tracker(tracking, "B", "b")}
        ci = TrackToTrackFuser(accel_psd_m2ps3=Q_M2PS3)
        sent: list[TargetEstimate] = []
        local_tracks: dict[str, list[Track]] = {}
        for k in range(0, 2 * per_source, 2):
            a = _estimate(rng, path[k], k * GRID_S, "bsA")
            b = _estimate(rng, path[k + 1], (k + 1) * GRID_S, "bsB")
            central.add("B", b.t_s, [b])                     # B's later set first: the fuser must wait for A's
            central.update()
            central.add("A", a.t_s, [a])
            central.update()
            sent += [a, b]
            local_tracks["A"] = local["A"].step(a.t_s, [a])
            local_tracks["B"] = local["B"].step(b.t_s, [b])
        (track,) = central.update(flush=True)
        assert central.late == {} and central.stats()["sets"] == len(sent) and central.pending == 0
        assert track.t_s[-1] == pytest.approx(sent[-1].t_s, abs=1e-6)
        x_kf, p_kf = _kalman(sent, Q_M2PS3)
        np.testing.assert_allclose(track.states[-1][HORIZONTAL], x_kf, rtol=0, atol=1e-6)
        np.testing.assert_allclose(track.covariances[-1][np.ix_(HORIZONTAL, HORIZONTAL)], p_kf, rtol=1e-6, atol=0)
        truth = path[2 * per_source - 1]
        nees.append(_nees(track, truth))
        err2_central.append(float(np.sum((track.states[-1][:2] - truth[:2]) ** 2)))
        (fused,) = ci.update(local_tracks)
        assert fused.t_s[-1] == pytest.approx(track.t_s[-1])
        err2_ci.append(float(np.sum((fused.states[-1][:2] - truth[:2]) ** 2)))
    n = len(HORIZONTAL)
    low, high = chi2.ppf([0.025, 0.975], runs * n) / runs
    assert low <= np.mean(nees) <= high, (np.mean(nees), low, high)
    rmse_central, rmse_ci = math.sqrt(np.mean(err2_central)), math.sqrt(np.mean(err2_ci))
    print(f"\nin-process, {runs} runs: RMSE centralised {rmse_central:.4f} m, CI track fusion {rmse_ci:.4f} m, "
          f"mean NEES {np.mean(nees):.3f} (95 % interval {low:.3f} ... {high:.3f})")
    assert rmse_central <= rmse_ci


# ---- over the wire: two fake MECS processes, a centralised core process and a track-fusion core --------------
SPAN_S = 11.0                     # the comparison's run, on the data clock: ~220 scans of the central tracker
COLLECT_S = 60.0                  # ... unless the machine is so loaded that this much wall-clock time passes
THIN_S = 2.0                      # NEES samples this far apart are nearly independent (the filter's memory: ~1 s)
TRUTH_SEED = 5


def _core_toml(endpoints: list[str], publish: str, **core: Any) -> str:
    fields = {"mecs_endpoints": endpoints, "mecs_ids": ["mecsA", "mecsB"], "publish_endpoint": publish,
              "absent_after_s": 0.5, "publish_interval_s": 0.02, "stats_interval_s": 0.1, "tail_states": 64, **core}
    lines = [f"{k} = {json.dumps(v)}" for k, v in fields.items()]
    return "[core]\n" + "\n".join(lines) + f"\n\n[tracking]\nnoise_vehicle_m2ps3 = {Q_M2PS3}\n"


def _fake(endpoint: str, mecs: str, phase: int, origin_s: float, seed: int,
          first_seq: int = 0) -> subprocess.Popen[Any]:
    return subprocess.Popen([sys.executable, "-m", "tests.stream.fake_mecs", "--estimates", "--bind", endpoint,
                             "--first-seq", str(first_seq),
                             "--id", mecs, "--track", mecs[-1].lower(), "--origin", repr(origin_s),
                             "--seed", str(seed), "--truth-seed", str(TRUTH_SEED), "--phase", str(phase),
                             "--every", "2", "--grid", str(GRID_S), "--q", str(Q_M2PS3), "--sigma", str(SIGMA_M),
                             "--sigma-velocity", str(SIGMA_MPS), "--start", *map(str, START),
                             "--velocity", *map(str, VELOCITY), "--duration", "90"],
                            cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class _Feed:
    """The global tracks and status messages of one core, as they come."""

    def __init__(self, endpoint: str) -> None:
        self.sock = _subscriber(endpoint)

    def poll(self, timeout_s: float) -> wire.Message | None:
        if self.sock.poll(int(timeout_s * 1000)):
            return wire.decode(self.sock.recv_multipart())
        return None

    def wait(self, what: str, done: Callable[[wire.Message], bool], timeout_s: float = 30.0) -> wire.Message:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            msg = self.poll(0.1)
            if msg is not None and done(msg):
                return msg
        raise AssertionError(f"no {what} within {timeout_s} s")


def _confirmed(msg: wire.Message) -> list[Track]:
    return [t for t in wire.decode_tracks(msg).tracks if t.status == "confirmed"] if msg.kind == "tracks" else []


def _collect(feeds: dict[str, _Feed], seconds: float, span_s: float = math.inf
             ) -> tuple[dict[str, dict[float, Track]], dict[str, dict[float, np.ndarray]]]:
    """Each core's confirmed track: its latest states by time, and every position it sent by time.

    The centralised core must hold one confirmed track.  The CI core's track is the one fused from both MECS
    hosts' tracks (two members; where its chi-square gate split them, none is taken from that message).

    A core publishes its latest state every cycle, and the positions of its states before (the tail): the
    positions hold every state the core made (every scan of the central tracker, every fusion of the CI core)
    even where the core made several between two messages.  Stops after ``seconds`` (wall clock) or when
    every core's states span ``span_s`` of the data clock.
    """
    got: dict[str, dict[float, Track]] = {name: {} for name in feeds}
    positions: dict[str, dict[float, np.ndarray]] = {name: {} for name in feeds}
    poller = zmq.Poller()
    for feed in feeds.values():
        poller.register(feed.sock, zmq.POLLIN)
    end = time.monotonic() + seconds
    while time.monotonic() < end and not all(p and max(p) - min(p) >= span_s for p in got.values()):
        for sock, _ in poller.poll(100):
            name = next(n for n, f in feeds.items() if f.sock is sock)
            msg = wire.decode(sock.recv_multipart())
            tracks = _confirmed(msg)
            if name == "ci":
                members = wire.decode_tracks(msg).members
                tracks = [t for t in tracks if len(members.get(t.track_id, {})) == 2]
            assert len(tracks) <= 1, (name, [t.track_id for t in tracks])
            if tracks:
                (track,) = tracks
                got[name][float(track.t_s[-1])] = track
                positions[name][float(track.t_s[-1])] = track.states[-1][:3]
                tail_t, tail_m = wire.decode_tracks(msg).tails.get(track.track_id, ((), ()))
                positions[name].update((float(t), np.asarray(m)) for t, m in zip(tail_t, tail_m))
    return got, positions


def _truth_at(path: np.ndarray, origin_s: float, t_s: float) -> np.ndarray:
    k = round((t_s - origin_s) / GRID_S)
    assert abs(origin_s + k * GRID_S - t_s) < 1e-6 and 0 <= k < len(path), (t_s, k)
    return path[k]


def _follows(track: Track, x_true: np.ndarray) -> bool:
    err = track.states[-1][HORIZONTAL] - x_true[HORIZONTAL]
    return bool(np.all(np.abs(err) < 5 * np.sqrt(np.diag(track.covariances[-1])[HORIZONTAL])))


def test_centralised_core_beats_track_fusion_and_survives_a_mecs_outage(tmp_path: Path) -> None:
    ports = free_ports(4)
    mecs = [f"tcp://127.0.0.1:{p}" for p in ports[:2]]
    central_ep, ci_ep = (f"tcp://127.0.0.1:{p}" for p in ports[2:])
    (tmp_path / "core.toml").write_text(_core_toml(mecs, central_ep, mode="centralised", reorder_s=0.2))
    ci_cfg = config.from_dict(config.Config, {"core": {
        "mecs_endpoints": mecs, "mecs_ids": ["mecsA", "mecsB"], "publish_endpoint": ci_ep, "absent_after_s": 0.5,
        "publish_interval_s": 0.02, "accel_psd_m2ps3": Q_M2PS3, "tail_states": 64}})
    out = tmp_path / "out"
    origin = time.time() + 2.0
    path = truth_path(TRUTH_SEED, GRID_S, int(120 / GRID_S), START, VELOCITY, Q_M2PS3)
    procs: dict[str, subprocess.Popen[Any] | None] = {"core": None, "A": None, "B": None}
    feeds = {"central": _Feed(central_ep), "ci": _Feed(ci_ep)}
    ci_core = None
    try:
        procs["core"] = subprocess.Popen([sys.executable, "-m", "sdr_isac.stream.core", "--config",
                                          str(tmp_path / "core.toml"), "--out", str(out), "--timeout", "120"],
                                         cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ci_core = CoreHost(ci_cfg).start()
        # A's sequence far on: the restarted A's, from 0, stays below it (see test_core.py's outage test)
        procs["A"] = _fake(mecs[0], "mecsA", 0, origin, 11, first_seq=100_000)
        procs["B"] = _fake(mecs[1], "mecsB", 1, origin, 12)
        first = feeds["central"].wait("a confirmed central track", lambda m: bool(_confirmed(m)), 60.0)
        (gid,) = [t.track_id for t in _confirmed(first)]
        feeds["ci"].wait("a confirmed CI-fused track", lambda m: bool(_confirmed(m)), 30.0)

        # ---- the comparison: the same instants, both against the truth ----
        got, positions = _collect(feeds, COLLECT_S, SPAN_S)
        assert {t.track_id for t in got["central"].values()} == {gid}
        start = min(got["central"]) + 1.0                           # both filters past their first second
        common = sorted(t for t in set(positions["central"]) & set(positions["ci"]) if t >= start)
        assert len(common) >= 120, (len(common), len(positions["central"]), len(positions["ci"]))  # enough to decide
        err2 = {name: np.array([np.sum((positions[name][t][:2] - _truth_at(path, origin, t)[:2]) ** 2)
                                for t in common]) for name in positions}
        rmse = {name: float(np.sqrt(np.mean(e))) for name, e in err2.items()}
        times = sorted(t for t in got["central"] if t >= start)
        thinned = [next(t for t in times if t >= times[0] + THIN_S * j)
                   for j in range(int((times[-1] - times[0]) // THIN_S) + 1)]
        nees = [_nees(got["central"][t], _truth_at(path, origin, t)) for t in thinned]
        low, high = chi2.ppf([0.0005, 0.9995], len(nees) * len(HORIZONTAL)) / len(nees)
        all_nees = np.mean([_nees(got["central"][t], _truth_at(path, origin, t)) for t in times])
        print(f"\nover the wire, {len(common)} common instants: RMSE centralised {rmse['central']:.4f} m, CI "
              f"track fusion {rmse['ci']:.4f} m; NEES of {len(nees)} samples {THIN_S} s apart {np.mean(nees):.3f} "
              f"(99.9 % interval {low:.3f} ... {high:.3f}), mean NEES of all {len(times)}: {all_nees:.3f}")
        assert rmse["central"] <= rmse["ci"]
        assert low <= np.mean(nees) <= high
        # the published covariance is the Kalman filter's of the scans the core made (every scan's time is in
        # the tails; the covariance does not depend on the measured values): an independent filter over the
        # collected scans, from a vague prior (forgotten after ~300 scans), agrees within 0.1 %
        end = times[-1]
        scans = [t for t in sorted(positions["central"]) if t <= end]
        assert len(scans) >= 200 and max(np.diff(scans)) <= 2.5 * GRID_S, scans
        dummy = [_estimate(np.random.default_rng(0), np.zeros(6), t, "bs") for t in scans]
        _, p_kf = _kalman(dummy, Q_M2PS3)
        np.testing.assert_allclose(got["central"][end].covariances[-1][np.ix_(HORIZONTAL, HORIZONTAL)], p_kf,
                                   rtol=1e-3, atol=0)

        # ---- MECS A dies: the track lives on from B's estimates, the gap is reported ----
        assert procs["A"] is not None
        os.kill(procs["A"].pid, signal.SIGKILL)
        procs["A"].wait(5)
        killed = time.time()
        absent = feeds["central"].wait("status absent of mecsA", lambda m: m.kind == "status"
                                       and m.node_id == "mecsA" and wire.decode_status(m).state == "absent")
        heard = time.time()
        status = wire.decode_status(absent)
        # the outage starts where the core received A's last message, which may reach it just after the kill: the
        # bound is the core's rule (absent after absent_after_s = 0.5 s of silence, before this test heard it)
        assert status.outage is not None and status.outage.end_s is None
        assert killed - 5.0 <= status.outage.start_s <= heard - 0.5
        then = feeds["central"].wait("the track", lambda m: any(t.track_id == gid for t in _confirmed(m)))
        t_then = max(float(t.t_s[-1]) for t in _confirmed(then))
        alone = feeds["central"].wait("the track from mecsB alone", lambda m: any(
            t.track_id == gid and float(t.t_s[-1]) > t_then + 0.5 for t in _confirmed(m)))
        (track,) = _confirmed(alone)
        assert _follows(track, _truth_at(path, origin, float(track.t_s[-1])))

        # ---- MECS A restarts: taken back, the track keeps its id ----
        procs["A"] = _fake(mecs[0], "mecsA", 0, origin, 13)
        back = feeds["central"].wait("status present of mecsA", lambda m: m.kind == "status"
                                     and m.node_id == "mecsA" and wire.decode_status(m).state == "present")
        outage = wire.decode_status(back).outage
        assert outage is not None and outage.duration_s is not None and outage.duration_s >= 0.5 and outage.restarted
        after = _collect({"central": feeds["central"]}, 1.5)[0]["central"]
        assert after and {t.track_id for t in after.values()} == {gid}
        assert all(_follows(t, _truth_at(path, origin, s)) for s, t in after.items())
        last = after[max(after)]                   # the central tracker owns it: no handover at every scan
        assert last.stations == ("core",) and last.handovers == ()
        deadline = time.monotonic() + 10
        while _stats(out).get("absent_mecs") != [] and time.monotonic() < deadline:
            time.sleep(0.1)
        stats = _stats(out)
        gap = stats["mecs"]["mecsA"]["outages"][-1]
        assert stats["mode"] == "centralised" and stats["mecs"]["mecsA"]["state"] == "present"
        assert gap["end_s"] is not None and gap["duration_s"] == pytest.approx(gap["end_s"] - gap["start_s"])
        assert stats["mecs"]["mecsB"]["outages"] == [] and stats["central"]["failed"] == 0
        assert stats["central"]["sets"] + stats["central"]["pending"] + sum(stats["central"]["late"].values()) \
            == stats["mecs"]["mecsA"]["processed"] + stats["mecs"]["mecsB"]["processed"]
        print(f"central tracker: {stats['central']}")
    finally:
        for feed in feeds.values():
            feed.sock.close()
        if ci_core is not None:
            ci_core.stop()
        for proc in procs.values():
            _end(proc)
    core = procs["core"]
    stdout = core.stdout.read().decode() if core is not None and core.stdout else ""
    assert "thread alive at the end" in stdout, stdout + (core.stderr.read().decode()
                                                          if core is not None and core.stderr else "")


# ---- in one process: what the centralised core refuses and counts ------------------------------------------
def _set(mecs: str, seq: int, t_s: float, xy: tuple[float, float]) -> list[Any]:
    est = TargetEstimate.planar(xy, np.eye(2) * 0.25, 10.0, t_s=t_s, nodes=(f"{mecs}-bs",),
                                velocity_xy_mps=[1.0, 0.0], cov_velocity_xy_mps2=np.eye(2) * 0.0625)
    return wire.encode_estimates(mecs, seq, t_s, [est])


def test_centralised_core_refuses_and_counts_bad_sets(tmp_path: Path) -> None:
    ports = free_ports(3)
    cfg = config.from_dict(config.Config, {"core": {
        "mecs_endpoints": [f"tcp://127.0.0.1:{p}" for p in ports[:2]], "mecs_ids": ["mecsA", "mecsB"],
        "publish_endpoint": f"tcp://127.0.0.1:{ports[2]}", "mode": "centralised", "reorder_s": 0.0,
        "absent_after_s": 30.0, "publish_interval_s": 0.02}})
    ctx = zmq.Context.instance()
    pubs = [ctx.socket(zmq.PUB) for _ in range(2)]
    core = feed = None
    try:
        for pub, port in zip(pubs, ports[:2]):
            pub.setsockopt(zmq.LINGER, 0)
            pub.bind(f"tcp://127.0.0.1:{port}")
        core = CoreHost(cfg, out_dir=tmp_path).start()
        feed = _Feed(cfg.core.publish_endpoint)

        def send(pub: zmq.Socket, frames: list[Any], until: Callable[[dict[str, Any]], bool]) -> None:
            assert core is not None
            deadline = time.monotonic() + 10
            while not until(core.stats()) and time.monotonic() < deadline:       # slow joiner: send until seen
                pub.send_multipart(frames)
                time.sleep(0.05)
            assert until(core.stats()), core.stats()

        a, b = pubs
        send(a, _set("mecsA", 0, 10.0, (1.0, 2.0)), lambda s: s["central"]["sets"] == 1)
        msg = feed.wait("the global track at t = 10 s", lambda m: m.kind == "tracks" and m.t0_s == 10.0
                        and len(wire.decode_tracks(m).tracks) == 1, 10.0)
        got = wire.decode_tracks(msg)
        # a track starts at its first estimate: the update of a vague position prior (1e8 m²) by it gives the
        # estimate's position; its velocity, 1 m/s with variance 0.0625, meets the speed prior N(0, 20**2)
        speed_var = TrackingConfig().init_speed_std_mps ** 2
        np.testing.assert_allclose(got.tracks[0].states[0], [1.0, 2.0, 10.0, speed_var / (speed_var + 0.0625), 0.0,
                                                             0.0], atol=1e-4)
        assert got.node_id == "core" and got.members == {} and got.tracks[0].status == "tentative"
        send(b, _set("intruder", 0, 11.0, (1.0, 2.0)), lambda s: s["unknown_publishers"].get("intruder", 0) >= 1)
        send(b, [b"estimates/mecsB", b"{not json"], lambda s: s["rejected"] >= 1)
        bad = [bytes(f) for f in _set("mecsB", 0, 11.0, (1.0, 2.0))]
        assert b'"cov_position_m2":[[0.25,0.0],[0.0,0.25]]' in bad[1]
        bad[1] = bad[1].replace(b"[[0.25,0.0],[0.0,0.25]]", b"[[0.25,1.0],[1.0,0.25]]")        # not PSD
        send(b, bad, lambda s: s["rejected"] >= 2)
        send(a, wire.encode_tracks("mecsA", 0, 12.0, []), lambda s: True)     # another kind: not subscribed
        send(a, _set("mecsA", 1, 9.5, (1.0, 2.0)), lambda s: s["mecs"]["mecsA"]["backwards"] >= 1)
        send(b, _set("mecsB", 0, 9.8, (1.0, 2.0)), lambda s: s["mecs"]["mecsB"]["late"] >= 1)    # tracker at 10 s
        send(b, _set("mecsB", 1, 1e12, (1.0, 2.0)), lambda s: s["central"]["failed"] >= 1)       # no datetime
        send(a, _set("mecsA", 2, 10.1, (1.5, 2.0)), lambda s: s["central"]["sets"] >= 2)
        stats = core.stats()
        assert stats["mode"] == "centralised" and stats["alive"] and stats["errors_total"] == 0
        assert stats["mecs"]["mecsA"]["state"] == "present" and stats["mecs"]["mecsB"]["state"] == "present"
        assert stats["rejected"] == 2 and stats["central"]["late"] == {"mecsB": 1}
        assert any("goes back" in e for e in stats["errors"]) and any("late" in e for e in stats["errors"])
        assert any("1000000000000.0" in e for e in stats["errors"])
    finally:
        if feed is not None:
            feed.sock.close()
        if core is not None:
            core.stop()
        for pub in pubs:
            pub.close()
    written = json.loads((tmp_path / "core_stats.json").read_text())
    assert written["central"]["sets"] >= 2 and written["unknown_total"] >= 1
    assert [t["id"] for t in json.loads((tmp_path / "tracks.json").read_text())["tracks"]] == ["g1"]


# ---- the fuser's input checks, to the edges ----------------------------------------------------------------
_TRACKING = TrackingConfig(enabled=True)
_ANY = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.integers(), st.floats(allow_nan=True),
                 st.lists(st.integers(), max_size=2))


@settings(max_examples=60, deadline=None)
@given(t_s=_ANY, source=_ANY)
@example(t_s=10**400, source="A").via("an int beyond the floats")
@example(t_s=1e300, source="A").via("beyond the tracker's calendar")
@example(t_s=0, source="A").via("zero")
def test_fuser_add_takes_finite_times_of_known_sources_only(t_s: Any, source: Any) -> None:
    fuser = CentralisedFuser(_TRACKING, ["A"], reorder_s=0.0)
    try:
        ok_time = isinstance(t_s, int | float) and not isinstance(t_s, bool) and math.isfinite(float(t_s))
    except OverflowError:
        ok_time = False
    if ok_time and source == "A":
        assert fuser.add(source, t_s, []) is True
        fuser.update()
        assert fuser.stats()["sets"] + fuser.stats()["failed"] == 1          # tracked, or refused (|t| huge)
    else:
        with pytest.raises(InputError, match=r"^(t_s|source) = "):
            fuser.add(source, t_s, [])


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["A", "B", "C"]),
                                st.one_of(st.just(0.0), st.floats(0.0, 0.2), st.just(1e-7), st.just(5.0))),
                      max_size=40),
       reorder_s=st.sampled_from([0.0, 0.05, 60.0]))
def test_fuser_tracks_every_set_once_in_time_order(steps: list[tuple[str, float]], reorder_s: float) -> None:
    fuser = CentralisedFuser(_TRACKING, ["A", "B", "C"], reorder_s=reorder_s)
    clock = {"A": 0.0, "B": 0.0, "C": 0.0}
    times = []
    for source, dt_s in steps:                   # each source in its own time order, the sources interleaved
        clock[source] += dt_s
        fuser.add(source, clock[source], [])
        fuser.update()
        times.append(fuser.t_s)
    fuser.update(flush=True)
    done = [t for t in times if t is not None]
    assert done == sorted(done)                                            # the tracker never goes back
    stats = fuser.stats()
    assert stats["sets"] + sum(stats["late"].values()) + stats["failed"] == len(steps) and stats["pending"] == 0
    if reorder_s == 60.0 and all(dt == 0.0 for _, dt in steps):
        assert stats["late"] == {}                                         # one instant: one scan, nothing late


def test_fuser_arguments_are_checked() -> None:
    for sources in ([], "AB", [1], ["A", "A"], None):
        with pytest.raises(InputError, match=r"^sources = .*: allowed a sequence of one or more distinct ids"):
            CentralisedFuser(_TRACKING, sources)  # type: ignore[arg-type]
    for reorder_s in (math.nan, -1.0, 61.0, math.inf, True, "1"):
        with pytest.raises(InputError, match=r"^reorder_s = .* s: allowed 0 \.\.\. 60 s"):
            CentralisedFuser(_TRACKING, ["A"], reorder_s=reorder_s)  # type: ignore[arg-type]
    for keep in (0, -1, True, 1.5):
        with pytest.raises(InputError, match=r"^keep_states = "):
            CentralisedFuser(_TRACKING, ["A"], keep_states=keep)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"^tracking = dict: allowed a TrackingConfig"):
        CentralisedFuser({}, ["A"])  # type: ignore[arg-type]
    fuser = CentralisedFuser(_TRACKING, ["A", "B"])
    assert fuser.tracking.confirm_window == 2 * _TRACKING.confirm_window            # scans are per source
    assert fuser.tracking.delete_misses == 2 * _TRACKING.delete_misses
    for bad in ("xy", TargetEstimate.planar([0, 0], np.eye(2), 0.0), [1.0], None):
        with pytest.raises(InputError, match=r"^estimates"):
            fuser.add("A", 1.0, bad)  # type: ignore[arg-type]
    assert fuser.add("A", 2.0, []) and fuser.drop("A") == 1 and fuser.pending == 0
    with pytest.raises(InputError, match=r"^t_s = 1\.0 s: goes back from B's previous set at 3\.0 s"):
        fuser.add("B", 3.0, [])
        fuser.add("B", 1.0, [])


def test_core_mode_is_checked_and_the_shipped_configurations_load() -> None:
    with pytest.raises(ConfigError, match=r"^core\.mode = 'central': allowed tracks or centralised"):
        config.from_dict(config.Config, {"core": {"mode": "central"}})
    with pytest.raises(ConfigError, match=r"^core\.reorder_s = -1\.0: allowed 0 \.\.\. 60 s"):
        config.from_dict(config.Config, {"core": {"reorder_s": -1.0}})
    modes = {config.load(p).core.mode for p in (REPO / "hw_configs").glob("core_*.toml")}
    assert modes == {"tracks", "centralised"}


def test_a_fix_whose_height_is_not_known_reaches_the_central_tracker_with_its_z_variance() -> None:
    """A single node's fix with the targets' height spread (``fusion.target_height_std_m`` = 30 m): z variance
    900 m² and x-z, y-z cross terms.  Through the wire the central tracker took the height as known (the wire
    carried the horizontal block only) and started a track sure of z to a few metres; now the z row travels and
    the track's first covariance is the fix's."""
    cov = np.array([[4.0, 1.0, 3.0], [1.0, 9.0, -6.0], [3.0, -6.0, 900.0]])
    fix = TargetEstimate(np.array([100.0, 50.0, 1.0]), cov, nodes=("ap0",), mode="single")
    (back,) = wire.decode_estimates(wire.decode(wire.encode_estimates("mecs", 0, 0.0, [fix])))
    fuser = CentralisedFuser(_TRACKING, ["A"], reorder_s=0.0)
    fuser.add("A", 0.0, [back])
    (track,) = fuser.update(flush=True)
    np.testing.assert_allclose(track.covariances[-1][:3, :3], cov, rtol=1e-4)     # the initiator's wide prior aside
