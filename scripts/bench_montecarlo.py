#!/usr/bin/env python3
"""Monte Carlo throughput of ``sdr-isac experiment fig5``: trials per second, locally and on Dask.

Four ways to run the same seeded fig5 trials (one SNR point):

1. bare loop: ``fig5.trial(point, rng)`` called in a plain for-loop in this
   process (the baseline: no runner at all);
2. the runner inline (``workers=1``);
3. the runner on a local process pool (``--workers``, default 2);
4. the runner on a Dask ``LocalCluster`` on 127.0.0.1 with ``--workers``
   single-threaded worker processes (cluster start-up and the workers' first
   imports are timed separately / warmed up; the local pool's process start
   is counted).

Prints trials/s of each, the speed-up over the bare loop, and checks that
all four produced the same numbers.

Usage: python scripts/bench_montecarlo.py [--trials 200] [--workers 2] [--snr-db -20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sdr_isac.experiments import fig5
from sdr_isac.experiments.catalog import scenario
from sdr_isac.experiments.runner import run_trials


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--snr-db", type=float, default=-20.0)
    args = ap.parse_args()
    point = {"snr_db": args.snr_db}
    scn = scenario("fig5")
    results = {}
    timings = {}

    t0 = time.perf_counter()
    bare = []
    for i in range(args.trials):
        rng = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(0, i)))
        bare.append(fig5.trial(point, rng))
    timings["bare loop"] = time.perf_counter() - t0
    results["bare loop"] = bare

    t0 = time.perf_counter()
    results["runner, inline"] = run_trials(scn, args.trials, 0, workers=1, points=[point])[0]
    timings["runner, inline"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    results[f"runner, {args.workers} processes"] = run_trials(scn, args.trials, 0, workers=args.workers,
                                                              points=[point])[0]
    timings[f"runner, {args.workers} processes"] = time.perf_counter() - t0

    try:
        from dask.distributed import LocalCluster
    except ImportError:
        LocalCluster = None
    if LocalCluster is not None:
        t0 = time.perf_counter()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster:
            start_s = time.perf_counter() - t0
            # warm-up: each worker imports numpy, scipy and sdr_isac on its first task
            run_trials(scn, 2 * args.workers, 1, scheduler=cluster.scheduler_address, chunk=1, points=[point])
            t0 = time.perf_counter()
            key = f"Dask LocalCluster, {args.workers} workers"
            results[key] = run_trials(scn, args.trials, 0, scheduler=cluster.scheduler_address, points=[point])[0]
            timings[key] = time.perf_counter() - t0
        print(f"Dask LocalCluster start-up: {start_s:.1f} s (not counted below)")
    else:
        print("dask.distributed is not installed: pip install 'sdr_isac[cluster]' to bench the cluster")

    base = args.trials / timings["bare loop"]
    print(f"fig5 at {args.snr_db:g} dB per RE, {args.trials} trials (two 512 x 64 bands, four estimators each)")
    print(f"{'how':34s} {'s':>7s} {'trials/s':>9s} {'vs bare':>8s}")
    for key, seconds in timings.items():
        rate = args.trials / seconds
        print(f"{key:34s} {seconds:7.2f} {rate:9.1f} {rate / base:7.2f}x")
    same = all(results[k] == results["bare loop"] for k in results)
    print(f"identical numbers from every way: {same}")


if __name__ == "__main__":
    main()
