"""Monte Carlo runner: named scenarios, seeded trials, local processes or a Dask cluster.

A :class:`Scenario` (the catalogue of named ones is
:mod:`sdr_isac.experiments.catalog`) is a list of sweep points (e.g. one per SNR), a trial
function ``trial(point, rng) -> {metric: value}`` and a summary that turns
the trials of a point into rows (RMSE, bounds).  Trial ``i`` of point ``j``
draws from ``numpy.random.SeedSequence(seed, spawn_key=(j, i))``, so the
numbers do not depend on how trials are split between processes or machines:
the local pool, a Dask cluster and a single process give the same results for
the same seed.

Trials run in chunks on a local process pool (forked processes) by default,
inline with ``workers=1``, or on a Dask distributed cluster when a scheduler
address is given: the executors of :mod:`sdr_isac.executors`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import get_all_start_methods
from pathlib import Path
from typing import Any

import numpy as np

from sdr_isac.errors import ConfigError, InputError
from sdr_isac.executors import Executor, as_completed, keep_freed_memory, make_executor
from sdr_isac.fusion.metrics import rmse
from sdr_isac.recording._atomic import write_text

__all__ = ["Scenario", "run_trials", "write_csv", "rmse", "ExperimentResult", "run_experiment", "Point", "Metrics"]

Point = dict[str, Any]
Metrics = dict[str, float]


@dataclass(frozen=True)
class Scenario:
    """A named Monte Carlo experiment.

    Attributes
    ----------
    name : str
    description : str
    points : tuple of dict
        Sweep points; each is passed to ``trial`` and copied into the result rows.
    trial : callable
        ``trial(point, rng) -> dict of float`` for one seeded trial; must be
        a module-level function (it is sent to other processes by reference).
    summarise : callable
        ``summarise(point, trials) -> list of dict`` rows for the summary CSV.
    plot : callable, optional
        ``plot(summary_rows, out_dir) -> list of Path`` PNG files.
    default_trials : int
    table : callable, optional
        ``table(summary_rows) -> str`` printed by ``sdr-isac experiment``.
    """

    name: str
    description: str
    points: tuple[Point, ...]
    trial: Callable[[Point, np.random.Generator], Metrics]
    summarise: Callable[[Point, list[Metrics]], list[dict[str, Any]]]
    plot: Callable[[list[dict[str, Any]], Path], list[Path]] | None = None
    default_trials: int = 100
    table: Callable[[list[dict[str, Any]]], str] | None = None


def _seed_rng(seed: int, point_index: int, trial_index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(point_index, trial_index)))


def _run_chunk(trial: Callable[[Point, np.random.Generator], Metrics], point_index: int, point: Point, first: int,
               stop: int, seed: int, local: bool = True) -> list[tuple[int, int, Metrics]]:
    """Trials ``first .. stop - 1`` of one point (runs in a worker; ``trial`` travels by its module and name).

    BLAS runs single-threaded inside (``threadpoolctl``): the runner already
    keeps every core busy with processes, and BLAS threads fighting over the
    same cores cost far more than they gain on the small matrices of a trial.
    On this machine (``local``: the calling process or its own pool, not a
    Dask worker shared with other work) the C allocator keeps the memory the
    trials free (:func:`sdr_isac.executors.keep_freed_memory`).
    """
    from threadpoolctl import threadpool_limits

    if local:
        keep_freed_memory()

    with threadpool_limits(limits=1, user_api="blas"):
        return [(point_index, i, trial(point, _seed_rng(seed, point_index, i))) for i in range(first, stop)]


def _chunks(num_points: int, trials: int, chunk: int) -> list[tuple[int, int, int]]:
    return [(j, i, min(i + chunk, trials)) for j in range(num_points) for i in range(0, trials, chunk)]


class _Progress:
    """tqdm progress bar on stderr when available and wanted; silent otherwise."""

    def __init__(self, total: int, label: str, enabled: bool):
        self._bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:   # tqdm is a dependency; a stripped install still runs, without a bar
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, desc=label, unit="trial", file=sys.stderr, dynamic_ncols=True)

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def run_trials(scn: Scenario, trials: int, seed: int = 0, workers: int | None = None,
               scheduler: str | None = None, chunk: int | None = None, progress: bool = False,
               points: Sequence[Point] | None = None, connect_timeout_s: float = 10.0) -> list[list[Metrics]]:
    """Run ``trials`` seeded trials at every point of ``scn``.

    Parameters
    ----------
    scn : Scenario
        Its trial function must be importable by name (module level).
    trials : int
        Trials per point (>= 1).
    seed : int
        Base seed (>= 0).
    workers : int, optional
        Local processes; default ``os.cpu_count()``; 1 runs inline.
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:port``);
        overrides ``workers``.
    chunk : int, optional
        Trials per task; default a split into about 4 tasks per worker and point.
    progress : bool
        Show a progress bar on stderr.
    points : sequence of dict, optional
        Sweep points instead of the scenario's (seeds follow the position in this list).
    connect_timeout_s : float
        How long to try to reach the Dask scheduler, s.

    Returns
    -------
    list (one per point) of lists (one per trial, in trial order) of metric dicts.
    """
    if isinstance(trials, bool) or int(trials) != trials or trials < 1:
        raise ConfigError(f"trials = {trials!r}: allowed a whole number >= 1", key="trials")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ConfigError(f"seed = {seed!r}: allowed a whole number >= 0", key="seed")
    if getattr(scn.trial, "__qualname__", "").count("<") or not hasattr(scn.trial, "__module__"):
        raise ConfigError(f"scenario {scn.name!r}: its trial function {scn.trial!r} is not a module-level "
                          "function: allowed one that other processes can import by name", key="trial")
    n_workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if n_workers < 1:
        raise ConfigError(f"workers = {workers!r}: allowed a whole number >= 1", key="workers")
    pts = tuple(scn.points if points is None else points)
    if not pts:
        raise ConfigError("points is empty: allowed at least one sweep point", key="points")
    size = chunk or max(1, math.ceil(trials / (4 * n_workers)))
    tasks = [(j, pts[j], a, b) for j, a, b in _chunks(len(pts), int(trials), size)]
    results: list[list[Metrics | None]] = [[None] * trials for _ in pts]
    bar = _Progress(len(pts) * trials, scn.name, progress)
    try:
        if scheduler is not None:
            done = _dask(scn.trial, tasks, seed, scheduler, connect_timeout_s)
        elif n_workers == 1:
            done = (_run_chunk(scn.trial, j, p, a, b, seed) for j, p, a, b in tasks)
        else:
            done = _local(scn.trial, tasks, seed, n_workers)
        for batch in done:
            for j, i, metrics in batch:
                results[j][i] = metrics
            bar.update(len(batch))
    finally:
        bar.close()
    return [[m for m in point if m is not None] for point in results]


def _local(trial: Callable[[Point, np.random.Generator], Metrics], tasks: list[tuple[int, Point, int, int]], seed: int,
           workers: int) -> Iterator[list[tuple[int, int, Metrics]]]:
    # fork where the platform has it: works from scripts without a ``__main__`` guard (the runner has no threads)
    method = "fork" if "fork" in get_all_start_methods() else None
    with make_executor("process", workers, start_method=method) as pool:
        yield from _gather(pool, trial, tasks, seed)


def _dask(trial: Callable[[Point, np.random.Generator], Metrics], tasks: list[tuple[int, Point, int, int]], seed: int,
          scheduler: str, timeout_s: float) -> Iterator[list[tuple[int, int, Metrics]]]:
    with make_executor("dask", scheduler=scheduler, connect_timeout_s=timeout_s) as client:
        yield from _gather(client, trial, tasks, seed, local=False)


def _gather(executor: Executor, trial: Callable[[Point, np.random.Generator], Metrics],
            tasks: list[tuple[int, Point, int, int]], seed: int, local: bool = True
            ) -> Iterator[list[tuple[int, int, Metrics]]]:
    futures = [executor.submit(_run_chunk, trial, j, p, a, b, seed, local) for j, p, a, b in tasks]
    for fut in as_completed(futures):
        yield fut.result()


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write rows as CSV, atomically (through the one atomic writer).

    The columns are every key of any row, in the order first seen; a row without a column leaves it empty.
    """
    if not rows:
        raise InputError(f"no rows to write to {path}: run at least one trial")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(target, text.getvalue())
    return target


@dataclass(frozen=True)
class ExperimentResult:
    """What :func:`run_experiment` produced."""

    scenario: str
    trials: int
    seed: int
    summary: list[dict[str, Any]]
    files: list[Path]
    seconds: float


def run_experiment(scn: Scenario, trials: int | None = None, out_dir: str | Path | None = None, seed: int = 0,
                   workers: int | None = None, scheduler: str | None = None, progress: bool = False,
                   points: Sequence[Point] | None = None) -> ExperimentResult:
    """Run a registered scenario and write ``trials.csv``, ``summary.csv`` and its plots into ``out_dir``.

    ``points`` replaces the scenario's sweep points (e.g. fewer SNRs).
    """
    n = scn.default_trials if trials is None else trials
    pts = tuple(scn.points if points is None else points)
    t0 = time.perf_counter()
    per_point = run_trials(scn, n, seed, workers, scheduler, progress=progress, points=pts)
    seconds = time.perf_counter() - t0
    summary: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    for j, (point, results) in enumerate(zip(pts, per_point, strict=True)):
        summary.extend(scn.summarise(point, results))
        raw.extend({"point": j, **point, "trial": i, **m} for i, m in enumerate(results))
    files: list[Path] = []
    if out_dir is not None:
        out = Path(out_dir)
        files.append(write_csv(out / "summary.csv", summary))
        files.append(write_csv(out / "trials.csv", raw))
        if scn.plot is not None:
            files.extend(scn.plot(summary, out))
    return ExperimentResult(scn.name, n, seed, summary, files, seconds)
