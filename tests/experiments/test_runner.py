"""Monte Carlo runner: seeds independent of the split, local pool and Dask give the same numbers."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from sdr_isac.errors import ConfigError
from sdr_isac.experiments.catalog import scenario, scenario_names
from sdr_isac.experiments.runner import rmse, run_experiment, run_trials, write_csv

POINTS = [{"snr_db": -26.0}, {"snr_db": 0.0}]


def _flat(results: list[list[dict[str, float]]]) -> list[tuple[int, int, str, float]]:
    return [(j, i, k, v) for j, point in enumerate(results) for i, m in enumerate(point) for k, v in sorted(m.items())]


def test_registry_lists_fig5_and_rejects_unknown_names() -> None:
    assert "fig5" in scenario_names()
    with pytest.raises(ConfigError, match="fig5"):
        scenario("fig4")


def test_bad_counts_are_rejected() -> None:
    scn = scenario("fig5")
    with pytest.raises(ConfigError, match="trials"):
        run_trials(scn, 0)
    with pytest.raises(ConfigError, match="seed"):
        run_trials(scn, 1, seed=-1)
    with pytest.raises(ConfigError, match="workers"):
        run_trials(scn, 1, workers=0)


def test_local_pool_and_chunking_do_not_change_the_numbers() -> None:
    scn = scenario("fig5")
    inline = run_trials(scn, 4, seed=7, workers=1, points=POINTS)
    pooled = run_trials(scn, 4, seed=7, workers=2, chunk=3, points=POINTS)
    assert _flat(inline) == _flat(pooled)
    other_seed = run_trials(scn, 4, seed=8, workers=1, points=POINTS)
    assert _flat(inline) != _flat(other_seed)


def test_dask_cluster_gives_the_local_numbers() -> None:
    distributed = pytest.importorskip("dask.distributed")
    scn = scenario("fig5")
    local = run_trials(scn, 3, seed=11, workers=1, points=POINTS)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        remote = run_trials(scn, 3, seed=11, scheduler=cluster.scheduler_address, chunk=2, points=POINTS)
    assert _flat(local) == _flat(remote)


def test_unreachable_scheduler_is_a_clear_error() -> None:
    pytest.importorskip("dask.distributed")
    from sdr_isac.errors import SdrIsacError
    from sdr_isac.stream.demo import free_ports

    (port,) = free_ports(1)
    with pytest.raises(SdrIsacError, match="cannot connect"):
        run_trials(scenario("fig5"), 1, scheduler=f"tcp://127.0.0.1:{port}", points=POINTS[:1],
                   connect_timeout_s=2.0)


def test_write_csv_is_atomic_and_rejects_nothing_to_write(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [{"x": 1.5, "name": "a"}, {"x": 2.0, "name": "b"}])
    rows = list(csv.DictReader(path.open()))
    assert rows == [{"x": "1.5", "name": "a"}, {"x": "2", "name": "b"}]
    with pytest.raises(Exception, match="no rows"):
        write_csv(tmp_path / "b.csv", [])
    assert not (tmp_path / "b.csv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]      # no temporary left behind
    # rows of different columns (a summary whose last row carries calibration columns): every column, once
    path = write_csv(tmp_path / "c.csv", [{"mode": "coop", "x": 1.0}, {"mode": "cal", "x": 2.0, "z": 0.5}])
    assert list(csv.DictReader(path.open())) == [{"mode": "coop", "x": "1", "z": ""},
                                                 {"mode": "cal", "x": "2", "z": "0.5"}]


def test_rmse() -> None:
    assert rmse([3.0, -4.0]) == pytest.approx((12.5) ** 0.5)
    assert np.isnan(rmse([3.0, float("nan")]))
    assert rmse([3.0, float("nan"), -4.0], skip_nan=True) == pytest.approx((12.5) ** 0.5)
    assert np.isnan(rmse([float("nan")], skip_nan=True))


def test_run_experiment_writes_csvs_and_plots(tmp_path: Path) -> None:
    result = run_experiment(scenario("fig5"), trials=2, out_dir=tmp_path, workers=1, points=POINTS)
    names = sorted(p.name for p in result.files)
    assert names == ["fig5_range.png", "fig5_velocity.png", "summary.csv", "trials.csv"]
    summary = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert [float(r["snr_db"]) for r in summary] == [-26.0, 0.0]
    trials = list(csv.DictReader((tmp_path / "trials.csv").open()))
    assert len(trials) == 4
    for png in ("fig5_range.png", "fig5_velocity.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
