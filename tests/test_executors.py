"""The executor seam: the same task gives the same result in the caller's thread, a process pool and Dask."""

from __future__ import annotations

import os
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

from sdr_isac import executors
from sdr_isac.errors import ConfigError


def _spectrum_peak(seed: int) -> tuple[int, float]:
    """A small deterministic numeric task (module level: other processes import it by name)."""
    x = np.random.default_rng(seed).standard_normal(4096)
    power = np.abs(np.fft.rfft(x)) ** 2
    return int(power.argmax()), float(power.max())


def _fail(message: str) -> None:
    raise ValueError(message)


def _die() -> None:
    """A worker that dies the hard way (as a crash in native code or the OOM killer would)."""
    os._exit(3)


def _run(kind: str, **kw: object) -> list[tuple[int, float]]:
    with executors.make_executor(kind, workers=2, **kw) as ex:
        futures = [ex.submit(_spectrum_peak, s) for s in range(6)]
        done = list(executors.as_completed(futures))
        assert len(done) == 6
        return [f.result() for f in futures]


def test_thread_and_process_give_identical_results() -> None:
    inline = _run("thread")
    assert inline == [_spectrum_peak(s) for s in range(6)]
    assert _run("process") == inline
    assert _run("process", start_method="fork") == inline


def test_dask_local_cluster_gives_identical_results() -> None:
    pytest.importorskip("dask.distributed")
    assert _run("dask") == [_spectrum_peak(s) for s in range(6)]


def test_an_error_in_a_task_comes_back_through_its_future() -> None:
    with executors.make_executor("thread") as ex:
        fut = ex.submit(_fail, "bad capture")
    with pytest.raises(ValueError, match="bad capture"):
        fut.result()


def test_a_dead_process_worker_is_replaced_and_sensing_goes_on() -> None:
    with executors.make_executor("process", workers=2, start_method="fork") as ex:
        assert isinstance(ex, executors.ProcessExecutor)
        dead = ex.submit(_die)
        with pytest.raises(BrokenProcessPool):
            dead.result(timeout=30)
        futures = [ex.submit(_spectrum_peak, s) for s in range(4)]
        assert [f.result(timeout=30) for f in futures] == [_spectrum_peak(s) for s in range(4)]
        assert ex.restarts == 1


def test_bad_kinds_and_arguments_are_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="executor = 'gpu': allowed one of thread, process, dask"):
        executors.make_executor("gpu")
    with pytest.raises(ConfigError, match="workers"):
        executors.make_executor("process", workers=0)
    with pytest.raises(ConfigError, match="workers"):
        executors.make_executor("process", workers=True)
    with pytest.raises(ConfigError, match="scheduler is for the dask executor"):
        executors.make_executor("process", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ConfigError, match="start_method"):
        executors.make_executor("process", start_method="teleport")


def test_a_new_kind_registers_where_it_is_defined() -> None:
    class Recording(executors.InlineExecutor):
        kind = "recording"

    executors.register_executor("recording", lambda workers=1, scheduler=None, **_: Recording(workers))
    try:
        assert "recording" in executors.executor_kinds()
        with executors.make_executor("recording", workers=1) as ex:
            assert ex.submit(_spectrum_peak, 1).result() == _spectrum_peak(1)
    finally:
        executors._FACTORIES.pop("recording")
    with pytest.raises(ConfigError, match="identifier"):
        executors.register_executor("not a name", Recording)


def _page_faults_of_a_churning_loop(keep: bool) -> tuple[bool, int]:
    """In a fresh process: (keep_freed_memory's answer, minor page faults of 100 allocate-and-drop rounds)."""
    import resource

    done = executors.keep_freed_memory() if keep else False
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(100):
        # 16 live arrays of 512 KiB, then none: glibc hands the freed 8 MiB back to the system (more than twice
        # the largest array it has seen freed), and the next round faults it all in again
        arrays = [np.ones(1 << 16) for _ in range(16)]
        del arrays
    return done, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not os.path.exists("/lib/x86_64-linux-gnu/libc.so.6") and not os.path.exists("/lib64/libc.so.6"),
                    reason="glibc only")
def test_keeping_freed_memory_stops_the_page_faults_of_a_churning_loop() -> None:
    """A loop that makes and drops several arrays at once (a Monte Carlo trial's transforms) faults about 2,000
    pages in per round by default; with keep_freed_memory the freed memory is reused."""
    with executors.make_executor("process", 1, start_method="spawn") as pool:
        kept, faults_kept = pool.submit(_page_faults_of_a_churning_loop, True).result()
    with executors.make_executor("process", 1, start_method="spawn") as pool:
        plain, faults_plain = pool.submit(_page_faults_of_a_churning_loop, False).result()
    assert kept and not plain
    assert faults_plain > 100 * 1000                # ~2048 per round
    assert faults_kept < 0.05 * faults_plain
    assert executors.keep_freed_memory() is executors.keep_freed_memory()
