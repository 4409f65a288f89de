"""The twin's writer: a thread behind a bounded queue, so that a host never waits for its database.

``put`` hands a batch to the queue and returns at once.  When the queue is full (the database is slower
than the host, or locked), the batch is dropped and counted: the host's real-time loop keeps its pace and
the twin loses the newest batches, never the host's timing.  A batch the database refuses (locked past
``busy_timeout_s``, read-only, corrupt, server gone) is counted as failed, its error kept in
:attr:`WriterStats.last_error`, and the thread goes on with the next batch (re-opening the database when
the writer opened it).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sdr_isac.errors import InputError, SdrIsacError
from sdr_isac.fusion.records import LinkMeasurement, TargetEstimate, Track
from sdr_isac.twin.connect import open_twin
from sdr_isac.twin.records import NodeDetection
from sdr_isac.twin.store import Record, TwinStore

__all__ = ["TwinWriter", "WriterStats"]

_log = logging.getLogger(__name__)
_RECORD_TYPES = (NodeDetection, LinkMeasurement, TargetEstimate, Track)
_STOP = object()


@dataclass(frozen=True)
class WriterStats:
    """What a :class:`TwinWriter` has done.

    Attributes
    ----------
    queued : int
        Batches waiting now.
    written_batches, written_records : int
        Stored.
    dropped_batches, dropped_records : int
        Refused by ``put`` because the queue was full (or the writer closed).
    failed_batches, failed_records : int
        Refused by the database.
    pruned_rows : int
        Deleted by retention.
    prune_failures : int
        Retention runs the database refused (the batches were written).
    last_error : str or None
        The latest database error, None if there was none.
    """

    queued: int
    written_batches: int
    written_records: int
    dropped_batches: int
    dropped_records: int
    failed_batches: int
    failed_records: int
    pruned_rows: int
    prune_failures: int
    last_error: str | None


class TwinWriter:
    """Write record batches to the twin on a thread of its own, behind a bounded queue.

    Parameters
    ----------
    store_or_db : TwinStore or str
        An open store (the writer uses it and leaves it open), or a database to open (``open_twin``;
        the writer opens it on its thread, re-opens it after a failure, and closes it).
    queue_size : int
        Batches the queue holds, >= 1.
    queue_records : int
        Records the queued batches hold together, >= 1 (default 1e6, some hundreds of MB): a batch that
        would pass it is dropped like one that finds the queue full (a batch is always taken into an empty
        queue), so that a database that stalls behind large batches cannot grow the host's memory without
        bound.
    retention_s : float
        > 0: every ``prune_interval_s`` of wall time, delete rows older than this (record time, relative
        to the newest record); 0: keep everything.
    prune_interval_s : float
        Wall time between prunes, s.
    busy_timeout_s : float
        Passed to :func:`open_twin` when the writer opens the database.

    Examples
    --------
    >>> w = TwinWriter(":memory:", queue_size=8)
    >>> w.put([])
    True
    >>> w.close().written_batches
    1
    """

    def __init__(self, store_or_db: TwinStore | str, queue_size: int = 1024, *, retention_s: float = 0.0,
                 prune_interval_s: float = 60.0, busy_timeout_s: float = 5.0, queue_records: int = 1_000_000):
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise InputError(f"queue_size = {queue_size!r} batches: allowed an integer >= 1")
        if isinstance(queue_records, bool) or not isinstance(queue_records, int) or queue_records < 1:
            raise InputError(f"queue_records = {queue_records!r} records: allowed an integer >= 1")
        for name, value in (("retention_s", retention_s), ("prune_interval_s", prune_interval_s)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
                raise InputError(f"{name} = {value!r} s: allowed a finite time >= 0 s")
        if isinstance(busy_timeout_s, bool) or not isinstance(busy_timeout_s, int | float) \
                or not 0 <= busy_timeout_s <= 600:
            raise InputError(f"busy_timeout_s = {busy_timeout_s!r} s: allowed 0 ... 600 s (how long a write waits "
                             "for a lock)")
        if not isinstance(store_or_db, TwinStore | str):
            raise InputError(f"store_or_db = {store_or_db!r}: allowed a TwinStore or a database (file or DSN)")
        self._db = store_or_db if isinstance(store_or_db, str) else None
        self._store: TwinStore | None = store_or_db if isinstance(store_or_db, TwinStore) else None
        self._busy_timeout_s = busy_timeout_s
        self._retention_s = float(retention_s)
        self._prune_interval_s = float(prune_interval_s)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._queue_records = queue_records
        self._queued_records = 0              # records in the queued batches (under _count_lock)
        self._count_lock = threading.Lock()
        self._counts = dict.fromkeys(("written_batches", "written_records", "dropped_batches", "dropped_records",
                                      "failed_batches", "failed_records", "pruned_rows", "prune_failures"), 0)
        self._last_error: str | None = None
        self._closed = False
        self._last_prune = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="twin-writer", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Batches dropped so far because the queue was full (or the writer closed)."""
        return self._counts["dropped_batches"]

    def _add(self, **counts: int) -> None:
        with self._count_lock:
            for k, v in counts.items():
                self._counts[k] += v

    def put(self, records: Iterable[Record]) -> bool:
        """Queue one batch; returns False (and counts it dropped) when the queue is full (``queue_size``
        batches, or ``queue_records`` records with this batch) or the writer closed.

        Never blocks.  The batch is checked for record types here (the caller's bug is raised where it is
        made); values are stored as the records hold them.

        Raises
        ------
        InputError
            An item is not a NodeDetection, LinkMeasurement, TargetEstimate or Track.
        """
        batch = tuple(records)
        for i, r in enumerate(batch):
            if not isinstance(r, _RECORD_TYPES):
                raise InputError(f"records[{i}] is a {type(r).__name__}: allowed NodeDetection, LinkMeasurement, "
                                 "TargetEstimate or Track")
        if not self._closed:
            with self._count_lock:
                fits = self._queued_records == 0 or self._queued_records + len(batch) <= self._queue_records
                if fits:
                    try:
                        self._queue.put_nowait(batch)
                        self._queued_records += len(batch)
                        return True
                    except queue.Full:
                        pass
        self._add(dropped_batches=1, dropped_records=len(batch))
        return False

    def _fail(self, err: BaseException, batch_len: int) -> None:
        """The one guard: count a failed batch, keep its error, log it (once per distinct message)."""
        message = f"{type(err).__name__}: {err}" if not isinstance(err, SdrIsacError) else str(err)
        if message != self._last_error:
            _log.warning("twin writer: %s", message)
        self._last_error = message
        self._add(failed_batches=1, failed_records=batch_len)
        if self._db is not None and self._store is not None:   # ours: re-open it for the next batch
            self._store.close()
            self._store = None

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is _STOP:
                break
            with self._count_lock:
                self._queued_records -= len(batch)
            try:
                store = self._store
                if store is None:
                    store = self._store = open_twin(str(self._db), busy_timeout_s=self._busy_timeout_s)
                store.write(batch)
            except Exception as err:          # a writer thread must outlive any one batch: counted, logged
                self._fail(err, len(batch))
                continue
            self._add(written_batches=1, written_records=len(batch))
            try:
                self._maybe_prune(store)
            except Exception as err:          # a failed prune is not a failed batch: counted apart, logged
                self._last_error = f"prune failed: {err}"
                _log.warning("twin writer: %s", self._last_error)
                self._add(prune_failures=1)
        if self._db is not None and self._store is not None:
            self._store.close()

    def _maybe_prune(self, store: TwinStore) -> None:
        if self._retention_s > 0 and time.monotonic() - self._last_prune >= self._prune_interval_s:
            self._last_prune = time.monotonic()
            self._add(pruned_rows=sum(store.prune(self._retention_s).values()))

    def stats(self) -> WriterStats:
        """The counters now (see :class:`WriterStats`)."""
        with self._count_lock:
            return WriterStats(queued=self._queue.qsize(), last_error=self._last_error, **self._counts)

    def close(self, timeout_s: float = 30.0) -> WriterStats:
        """Stop taking batches, write those queued (for up to ``timeout_s``), stop the thread; returns the stats.

        Batches still queued when ``timeout_s`` runs out are counted as dropped (the thread, a daemon,
        finishes the batch it is on).
        """
        if not self._closed:
            self._closed = True
            deadline = time.monotonic() + timeout_s
            try:
                self._queue.put(_STOP, timeout=max(timeout_s, 0.0))
            except queue.Full:
                pass
            self._thread.join(max(deadline - time.monotonic(), 0.0))
            if self._thread.is_alive():
                while True:
                    try:
                        left = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if left is not _STOP:
                        with self._count_lock:
                            self._queued_records -= len(left)
                        self._add(dropped_batches=1, dropped_records=len(left))
                self._queue.put_nowait(_STOP)
        return self.stats()

    def __enter__(self) -> TwinWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
