"""The benchmark scripts of ``scripts/`` still run and keep their own checks (small settings: these are smoke runs,
the timings they print are not checked). Each script stops with a message where its baseline and the package
disagree (another map, other grid peaks), so a run that ends cleanly says the comparison is still fair."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args", [
    ["bench_sensing.py", "--repeat", "3"],
    ["bench_sensing.py", "--repeat", "3", "--frame", "pluto"],
    ["bench_gpu.py", "--batch", "2", "--repeat", "1"],
    ["bench_stream.py", "--rounds", "1", "--messages", "8", "--capture-mib", "0.25", "--duration-s", "1", "--nodes",
     "2"],
    ["bench_montecarlo.py", "--trials", "4", "--no-dask", "--snr-db", "0"],
])
def test_benchmark_script_runs_and_its_checks_pass(args: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, str(REPO / "scripts" / args[0]), *args[1:]], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "identical numbers from every way: False" not in done.stdout, done.stdout[-2000:]   # bench_montecarlo
    assert any(word in done.stdout for word in ("frames/s", "ratio", "trials/s")), done.stdout[-2000:]
