"""A fake MECS host for the core host's tests: publishes what a MECS host publishes of one known moving target.

Tracks only (the default)::

    python -m tests.stream.fake_mecs --bind tcp://127.0.0.1:PORT --id mecsA --track a7 --origin T0 --seed 1

The target moves at ``--velocity`` (m/s) from ``--start`` (m) since the wall-clock time ``--origin`` (s); every
``1 / --rate`` s the script publishes, as ``tracks/<id>`` (:func:`sdr_isac.stream.wire.encode_tracks`), one
track at the wall-clock time ``t``: the true state plus Gaussian noise (seeded) of standard deviation
``--sigma`` m (position) and ``--sigma / 2`` m/s (velocity), with that covariance.

Estimates and local tracks (``--estimates``), as a MECS host with tracking enabled publishes them::

    python -m tests.stream.fake_mecs --estimates --bind ... --id mecsA --track a --origin T0 --seed 1 \\
        --truth-seed 7 --phase 0 --every 2

The target follows :func:`truth_path` (seed ``--truth-seed``, nearly-constant velocity with white acceleration
of density ``--q`` m²/s³ in the plane, the same path for every fake MECS given the same seed and origin) on a
grid of ``--grid`` s from ``--origin``.  At the grid instants ``k`` with ``k % --every == --phase`` (on the wall
clock) the script measures it: a planar estimate (x, y with independent Gaussian noise of ``--sigma`` m, the
height known; v_x, v_y with noise of ``--sigma-velocity`` m/s) published as ``estimates/<id>``
(:func:`sdr_isac.stream.wire.encode_estimates`), and the track of its own tracker
(:class:`sdr_isac.fusion.tracking.Tracker`, ids ``<--track>1, 2, ...``) published as ``tracks/<id>``, both
stamped with the grid time.  Independent noise in every fake MECS: the centralised core's filter is optimal.

It stops on SIGTERM or after ``--duration`` s.
"""

from __future__ import annotations

import argparse
import math
import signal
import threading
import time

import numpy as np
import zmq

from sdr_isac.config.tracking import TrackingConfig
from sdr_isac.fusion.records import TargetEstimate, Track
from sdr_isac.stream import wire


def truth(origin_s: float, start_m: list[float], velocity_mps: list[float], t_s: float) -> np.ndarray:
    """The target's state (x, y, z m; v_x, v_y, v_z m/s) at wall-clock time ``t_s`` (constant velocity)."""
    v = np.asarray(velocity_mps, dtype=float)
    return np.concatenate([np.asarray(start_m, dtype=float) + v * (t_s - origin_s), v])


def truth_path(seed: int, dt_s: float, num_steps: int, start_m: list[float], velocity_mps: list[float],
               accel_psd_m2ps3: float) -> np.ndarray:
    """A nearly-constant-velocity path in the plane: states at ``k * dt_s``, k = 0 ... num_steps - 1.

    Exact samples of white acceleration of density ``q`` on x and y (Bar-Shalom, Li, Kirubarajan 2001, §6.2.2:
    the step noise of (position, velocity) has covariance ``q [[dt³/3, dt²/2], [dt²/2, dt]]``); z and v_z stay
    as given (v_z should be 0).  Returns shape (num_steps, 6) float64: x, y, z (m), v_x, v_y, v_z (m/s).
    """
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(accel_psd_m2ps3 * np.array([[dt_s**3 / 3, dt_s**2 / 2], [dt_s**2 / 2, dt_s]]))
    noise = rng.standard_normal((num_steps - 1, 2, 2)) @ chol.T          # (step, axis, [position, velocity])
    out = np.tile(np.concatenate([np.asarray(start_m, float), np.asarray(velocity_mps, float)]), (num_steps, 1))
    vel = velocity_mps[0:2] + np.concatenate([np.zeros((1, 2)), np.cumsum(noise[:, :, 1], axis=0)])
    steps = dt_s * vel[:-1] + noise[:, :, 0]
    out[:, 0:2] = np.asarray(start_m[0:2], float) + np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
    out[:, 3:5] = vel
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--bind", required=True)
    p.add_argument("--id", required=True)
    p.add_argument("--track", required=True)
    p.add_argument("--origin", type=float, required=True)
    p.add_argument("--start", type=float, nargs=3, default=[0.0, 0.0, 10.0])
    p.add_argument("--velocity", type=float, nargs=3, default=[5.0, 2.0, 0.0])
    p.add_argument("--sigma", type=float, default=0.5)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--estimates", action="store_true")
    p.add_argument("--truth-seed", type=int, default=7)
    p.add_argument("--grid", type=float, default=0.025)
    p.add_argument("--every", type=int, default=2)
    p.add_argument("--phase", type=int, default=0)
    p.add_argument("--q", type=float, default=0.5)
    p.add_argument("--sigma-velocity", type=float, default=0.25)
    p.add_argument("--first-seq", type=int, default=0,
                   help="sequence number of the first message (a host that has been running a while)")
    return p


def _tracks_only(args: argparse.Namespace, sock: zmq.Socket, stop: threading.Event) -> None:
    rng = np.random.default_rng(args.seed)
    std = np.array([args.sigma] * 3 + [args.sigma / 2] * 3)
    cov = np.diag(std**2)
    seq, end = args.first_seq, time.monotonic() + args.duration
    while not stop.wait(1.0 / args.rate) and time.monotonic() < end:
        t = time.time()
        state = truth(args.origin, args.start, args.velocity, t) + rng.normal(0.0, std)
        track = Track(args.track, [t], [state], [cov], (args.id,), (), "confirmed")
        sock.send_multipart(wire.encode_tracks(args.id, seq, t, [track]))
        seq += 1


def _estimates_and_tracks(args: argparse.Namespace, sock: zmq.Socket, stop: threading.Event) -> None:
    from sdr_isac.fusion.tracking import Tracker

    rng = np.random.default_rng(args.seed)
    end_s = time.time() + args.duration
    path = truth_path(args.truth_seed, args.grid, int(math.ceil((end_s - args.origin) / args.grid)) + 2,
                      args.start, args.velocity, args.q)
    tracker = Tracker(TrackingConfig(enabled=True, noise_vehicle_m2ps3=args.q), args.id, args.track)
    cov_xy, cov_v = np.eye(2) * args.sigma**2, np.eye(2) * args.sigma_velocity**2
    k = max(int(math.ceil((time.time() - args.origin) / args.grid)), 0)
    k += (args.phase - k) % args.every
    seq = args.first_seq
    while k < len(path) and not stop.is_set():
        t_s = args.origin + k * args.grid
        if stop.wait(max(t_s - time.time(), 0.0)):
            break
        x = path[k]
        est = TargetEstimate.planar(x[:2] + rng.multivariate_normal(np.zeros(2), cov_xy), cov_xy, float(x[2]),
                                    t_s=t_s, nodes=(f"{args.id}-bs",),
                                    velocity_xy_mps=x[3:5] + rng.multivariate_normal(np.zeros(2), cov_v),
                                    cov_velocity_xy_mps2=cov_v)
        tracks = tracker.step(t_s, [est])
        sock.send_multipart(wire.encode_estimates(args.id, seq, t_s, [est]))
        sock.send_multipart(wire.encode_tracks(args.id, seq, t_s, tracks))
        seq += 1
        k += args.every


def main() -> None:
    args = _parser().parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sock = zmq.Context.instance().socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(args.bind)
    if args.estimates:
        _estimates_and_tracks(args, sock, stop)
    else:
        _tracks_only(args, sock, stop)
    sock.close()


if __name__ == "__main__":
    main()
