#!/usr/bin/env python3
"""Monte Carlo throughput of ``sdr-isac experiment fig5`` and ``fig6``: trials per second, locally and on Dask.

For each experiment, four ways to run the same seeded trials (one SNR point):

1. bare loop: ``trial(point, rng)`` called in a plain for-loop in this
   process, BLAS single-threaded as in the runner (the baseline: no runner
   at all);
2. the runner inline (``workers=1``);
3. the runner on a local process pool (``--workers``, default 2);
4. the runner on a Dask ``LocalCluster`` on 127.0.0.1 with ``--workers``
   single-threaded worker processes (cluster start-up and the workers' first
   imports are timed separately / warmed up; the local pool's process start
   is counted); ``--no-dask`` skips it.

Prints trials/s of each, the speed-up over the bare loop, whether all ways
produced the same numbers, and what the pool's rate makes of the issue's
full-size runs (fig6: 1,000 trials at one SNR; fig5: 500 trials x 21 SNRs; the
low-SNR and high-SNR points of fig5 cost differently: time a few SNRs with
``--snr-db`` to see the spread).

Usage: python scripts/bench_montecarlo.py [--experiments fig5,fig6] [--trials 200] [--workers 2]
       [--snr-db -20] [--no-dask]
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from sdr_isac.experiments.catalog import scenario
from sdr_isac.experiments.runner import run_trials

#: each experiment's default SNR point (dB per RE) and its full-size run of the issue: (trials, points)
DEFAULTS = {"fig5": (-20.0, 500, 21), "fig6": (-5.0, 1000, 1)}


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Equal trial metrics, NaN equal to NaN (fig6's single-node velocity vector is NaN by design)."""
    def key(trials: list[dict[str, Any]]) -> list[list[tuple[str, Any]]]:
        return [[(k, "nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in t.items()] for t in trials]
    return key(a) == key(b)


def bench(name: str, trials: int, workers: int, snr_db: float, dask: bool) -> None:
    point = {"snr_db": snr_db}
    scn = scenario(name)
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}

    scn.trial(point, np.random.default_rng(12345))          # warm-up: lazy imports and per-process caches
    with threadpool_limits(limits=1, user_api="blas"):
        t0 = time.perf_counter()
        bare = []
        for i in range(trials):
            rng = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(0, i)))
            bare.append(scn.trial(point, rng))
        timings["bare loop"] = time.perf_counter() - t0
    results["bare loop"] = bare

    t0 = time.perf_counter()
    results["runner, inline"] = run_trials(scn, trials, 0, workers=1, points=[point])[0]
    timings["runner, inline"] = time.perf_counter() - t0

    pool = f"runner, {workers} processes"
    t0 = time.perf_counter()
    results[pool] = run_trials(scn, trials, 0, workers=workers, points=[point])[0]
    timings[pool] = time.perf_counter() - t0

    LocalCluster = None
    if dask:
        try:
            from dask.distributed import LocalCluster
        except ImportError:
            print("dask.distributed is not installed: pip install 'sdr_isac[cluster]' to bench the cluster")
    if LocalCluster is not None:
        t0 = time.perf_counter()
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster:
            start_s = time.perf_counter() - t0
            # warm-up: each worker imports numpy, scipy and sdr_isac on its first task
            run_trials(scn, 2 * workers, 1, scheduler=cluster.scheduler_address, chunk=1, points=[point])
            t0 = time.perf_counter()
            key = f"Dask LocalCluster, {workers} workers"
            results[key] = run_trials(scn, trials, 0, scheduler=cluster.scheduler_address, points=[point])[0]
            timings[key] = time.perf_counter() - t0
        print(f"Dask LocalCluster start-up: {start_s:.1f} s (not counted below)")

    base = trials / timings["bare loop"]
    print(f"{name} at {snr_db:g} dB per RE, {trials} trials")
    print(f"{'how':34s} {'s':>7s} {'trials/s':>9s} {'vs bare':>8s}")
    for key, seconds in timings.items():
        rate = trials / seconds
        print(f"{key:34s} {seconds:7.2f} {rate:9.1f} {rate / base:7.2f}x")
    same = all(_same(results[k], results["bare loop"]) for k in results)
    print(f"identical numbers from every way: {same}")
    _, full_trials, full_points = DEFAULTS[name]
    rate = trials / timings[pool]
    print(f"at this rate the issue's {full_trials} trials x {full_points} SNR point(s) take "
          f"{full_trials * full_points / rate:.0f} s with {workers} processes (the pool's start-up counted once "
          "per run here: use a few hundred trials)\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiments", default="fig5,fig6", help="comma-separated: fig5, fig6")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--snr-db", type=float, default=None, help="default: -20 for fig5, -5 for fig6")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster")
    args = ap.parse_args()
    for name in args.experiments.split(","):
        if name not in DEFAULTS:
            ap.error(f"--experiments: {name!r} is not one of {', '.join(DEFAULTS)}")
        snr = DEFAULTS[name][0] if args.snr_db is None else args.snr_db
        bench(name, args.trials, args.workers, snr, not args.no_dask)


if __name__ == "__main__":
    main()
