"""Where work runs: in the calling thread, on a local process pool, or on a Dask distributed cluster.

One seam for the fusion host's sensing of captures and the Monte Carlo runner's trials:

>>> from sdr_isac.executors import make_executor
>>> with make_executor("thread") as ex:
...     ex.submit(pow, 2, 10).result()
1024

- ``"thread"``: runs each task at once in the caller's thread (tests, debugging; no parallelism);
- ``"process"``: a ``concurrent.futures.ProcessPoolExecutor`` of ``workers`` processes on this
  machine (started by ``forkserver`` where the platform has it, so that a multi-threaded caller,
  such as a host with its ZeroMQ threads, never forks its own threads; ``fork`` may be asked for
  by a single-threaded caller that wants a fast start);
- ``"dask"``: a Dask distributed ``Client`` of the scheduler at ``scheduler``
  (``tcp://HOST:PORT``, started with ``dask scheduler``; workers join it from any machine with
  ``dask worker tcp://HOST:PORT``), or of a ``LocalCluster`` of ``workers`` single-threaded
  processes when no scheduler is given.  Scaling to N machines is adding Dask workers.

Tasks are module-level functions and picklable arguments (they are sent to other processes by
reference); results come back through futures with ``result()`` and ``done()``.  The same task
gives the same result on every executor.  A new kind registers with :func:`register_executor`.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_all_start_methods, get_context
from typing import Any, Protocol

from sdr_isac.errors import ConfigError, SdrIsacError

__all__ = ["Executor", "TaskFuture", "InlineExecutor", "ProcessExecutor", "DaskExecutor", "make_executor",
           "register_executor", "executor_kinds", "as_completed", "keep_freed_memory"]

#: glibc mallopt parameters (malloc.h) and the values keep_freed_memory sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_BYTES = 32 << 20                  # glibc's largest on 64-bit machines
_TRIM_THRESHOLD_BYTES = 256 << 20
_KEPT: list[bool] = []


def keep_freed_memory() -> bool:
    """Let this process's C allocator keep the memory it frees for the next allocations (glibc only).

    By default glibc gives arrays of more than a few hundred KiB their own fresh pages on every allocation and
    returns freed memory to the system: a loop that makes and drops such arrays (a Monte Carlo trial's
    transforms) faults every page in again, which costs more than the arithmetic on some machines (measured
    here: fig5's trials 19.3 -> 14.6 ms, 974,000 -> 21,000 page faults per 420 trials, the same peak memory).
    Sets ``M_MMAP_THRESHOLD`` to 32 MiB and ``M_TRIM_THRESHOLD`` to 256 MiB, once per process.

    Returns
    -------
    bool
        True where set (Linux with glibc); False elsewhere, where nothing changes.
    """
    if _KEPT:
        return _KEPT[0]
    done = False
    if sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL("libc.so.6").mallopt
        except (OSError, AttributeError):                 # another C library (musl): leave it be
            mallopt = None
        if mallopt is not None:
            done = (mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES) == 1
                    and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES) == 1)
    _KEPT.append(done)
    return done


class TaskFuture(Protocol):
    """What :meth:`Executor.submit` returns: a ``concurrent.futures.Future`` or a Dask future."""

    def result(self, timeout: float | None = None) -> Any: ...

    def done(self) -> bool: ...


class Executor:
    """Base of the executors: ``submit``, ``close`` and use as a context manager."""

    kind = ""

    def __init__(self, workers: int = 1):
        self.workers = workers

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> TaskFuture:
        """Run ``fn(*args)`` (a module-level function) and return its future."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers (pending tasks finish first)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InlineExecutor(Executor):
    """Runs every task at once, in the caller's thread (``"thread"``)."""

    kind = "thread"

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> TaskFuture:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args))
        except Exception as err:                       # noqa: BLE001  delivered through the future, as a pool does
            fut.set_exception(err)
        return fut


def _start_method(requested: str | None) -> str:
    methods = get_all_start_methods()
    if requested is not None:
        if requested not in methods:
            raise ConfigError(f"start_method = {requested!r}: allowed one of {', '.join(methods)} on this platform",
                              key="start_method")
        return requested
    return "forkserver" if "forkserver" in methods else "spawn"


class ProcessExecutor(Executor):
    """A local process pool (``"process"``).

    A worker that dies (killed, out of memory, a crash in native code) breaks a
    ``ProcessPoolExecutor`` for good: the tasks it held fail with
    ``BrokenProcessPool`` (the caller counts them), and the next :meth:`submit`
    starts a fresh pool of ``workers`` processes (counted in ``restarts``), so a
    host keeps sensing.
    """

    kind = "process"

    def __init__(self, workers: int = 1, start_method: str | None = None):
        super().__init__(workers)
        self._context = get_context(_start_method(start_method))
        if self._context.get_start_method() == "forkserver":
            self._context.set_forkserver_preload(["sdr_isac.sensing", "numpy", "scipy.fft"])
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=self._context)
        #: pools started again after a worker died
        self.restarts = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> TaskFuture:
        try:
            return self._pool.submit(fn, *args)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=self._context)
            self.restarts += 1
            return self._pool.submit(fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


class DaskExecutor(Executor):
    """A Dask distributed client (``"dask"``): of ``scheduler``, or of a local cluster of ``workers``."""

    kind = "dask"

    def __init__(self, workers: int = 1, scheduler: str | None = None, connect_timeout_s: float = 10.0):
        super().__init__(workers)
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as err:
            raise SdrIsacError("the dask executor needs dask.distributed: pip install 'sdr_isac[cluster]'") from err
        self._cluster = None
        try:
            if scheduler is None:
                self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                             host="127.0.0.1", dashboard_address=None)
                self.client = Client(self._cluster, timeout=f"{connect_timeout_s}s")
            else:
                self.client = Client(scheduler, timeout=f"{connect_timeout_s}s")
        except (OSError, TimeoutError) as err:
            self.close()
            raise SdrIsacError(f"scheduler {scheduler!r}: cannot connect ({err}); start one with `dask scheduler` "
                               "and workers with `dask worker ADDRESS`, or run locally without a scheduler") from err

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> TaskFuture:
        return self.client.submit(fn, *args, pure=False)

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self._cluster is not None:
            self._cluster.close()


_FACTORIES: dict[str, Callable[..., Executor]] = {}


def register_executor(kind: str, factory: Callable[..., Executor]) -> None:
    """Make ``make_executor(kind, ...)`` call ``factory(workers=..., scheduler=..., **options)``.

    The extension hook for a new place to run work (e.g. a Ray cluster): the factory takes the
    keyword arguments ``workers`` (int) and ``scheduler`` (str or None) and returns an
    :class:`Executor`.
    """
    if not kind or not kind.isidentifier():
        raise ConfigError(f"executor kind {kind!r}: allowed a non-empty identifier", key="executor")
    _FACTORIES[kind] = factory


def executor_kinds() -> tuple[str, ...]:
    """The registered kinds."""
    return tuple(_FACTORIES)


register_executor("thread", lambda workers=1, scheduler=None, **_: InlineExecutor(workers))
register_executor("process", lambda workers=1, scheduler=None, **opts: ProcessExecutor(workers, **opts))
register_executor("dask", lambda workers=1, scheduler=None, **opts: DaskExecutor(workers, scheduler, **opts))


def make_executor(kind: str = "thread", workers: int | None = None, scheduler: str | None = None,
                  **options: Any) -> Executor:
    """An executor of a registered ``kind`` (``thread``, ``process``, ``dask``).

    Parameters
    ----------
    workers : int, optional
        Processes (``process``, a local Dask cluster); default ``os.cpu_count()``.
    scheduler : str, optional
        A Dask scheduler's address, ``tcp://HOST:PORT`` (``dask`` only).
    options
        Passed to the kind's factory (``start_method`` for ``process``, ``connect_timeout_s`` for ``dask``).
    """
    if kind not in _FACTORIES:
        raise ConfigError(f"executor = {kind!r}: allowed one of {', '.join(_FACTORIES)}", key="executor")
    n = (os.cpu_count() or 1) if workers is None else workers
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"workers = {workers!r}: allowed a whole number >= 1", key="workers")
    if scheduler is not None and kind != "dask":
        raise ConfigError(f"scheduler = {scheduler!r} with executor = {kind!r}: a scheduler is for the dask "
                          "executor; set executor = \"dask\" or drop the scheduler", key="scheduler")
    return _FACTORIES[kind](workers=n, scheduler=scheduler, **options)


def as_completed(futures: Sequence[TaskFuture]) -> Iterator[TaskFuture]:
    """The futures of one executor as they finish."""
    pending = list(futures)
    if all(isinstance(f, Future) for f in pending):
        waiting: set[Future[Any]] = set(pending)           # type: ignore[arg-type]
        while waiting:
            finished, waiting = wait(waiting, return_when=FIRST_COMPLETED)
            yield from finished
        return
    from dask.distributed import as_completed as dask_as_completed
    yield from dask_as_completed(pending)
