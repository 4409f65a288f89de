"""A fake MECS host for the core host's tests: publishes ``tracks`` of one known moving target.

``python -m tests.stream.fake_mecs --bind tcp://127.0.0.1:PORT --id mecsA --track a7 --origin T0 --seed 1``

The target moves at ``--velocity`` (m/s) from ``--start`` (m) since the wall-clock time ``--origin`` (s); every
``1 / --rate`` s the script publishes, as ``tracks/<id>`` (:func:`sdr_isac.stream.wire.encode_tracks`), one
track at the wall-clock time ``t``: the true state plus Gaussian noise (seeded) of standard deviation
``--sigma`` m (position) and ``--sigma / 2`` m/s (velocity), with that covariance.  It stops on SIGTERM or
after ``--duration`` s.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time

import numpy as np
import zmq

from sdr_isac.fusion.records import Track
from sdr_isac.stream import wire


def truth(origin_s: float, start_m: list[float], velocity_mps: list[float], t_s: float) -> np.ndarray:
    """The target's state (x, y, z m; v_x, v_y, v_z m/s) at wall-clock time ``t_s``."""
    v = np.asarray(velocity_mps, dtype=float)
    return np.concatenate([np.asarray(start_m, dtype=float) + v * (t_s - origin_s), v])


def main() -> None:
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
    args = p.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    rng = np.random.default_rng(args.seed)
    std = np.array([args.sigma] * 3 + [args.sigma / 2] * 3)
    cov = np.diag(std**2)
    sock = zmq.Context.instance().socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(args.bind)
    seq, end = 0, time.monotonic() + args.duration
    while not stop.wait(1.0 / args.rate) and time.monotonic() < end:
        t = time.time()
        state = truth(args.origin, args.start, args.velocity, t) + rng.normal(0.0, std)
        track = Track(args.track, [t], [state], [cov], (args.id,), (), "confirmed")
        sock.send_multipart(wire.encode_tracks(args.id, seq, t, [track]))
        seq += 1
    sock.close()


if __name__ == "__main__":
    main()
