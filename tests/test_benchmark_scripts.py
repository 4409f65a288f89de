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
])
def test_benchmark_script_runs_and_its_checks_pass(args: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, str(REPO / "scripts" / args[0]), *args[1:]], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "frames/s" in done.stdout or "ratio" in done.stdout
