"""The twin's writer: a bounded queue that never blocks and counts what it drops, and a thread that counts a
locked, read-only or corrupt database as failed batches and keeps running."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from sdr_isac.errors import InputError
from sdr_isac.fusion.records import Handover
from sdr_isac.twin import TwinError, TwinWriter, open_twin
from tests.twin.factories import detection, track

REPO = Path(__file__).resolve().parents[2]


def _wait(cond, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def _lock(path: Path) -> sqlite3.Connection:
    """Another connection holding the database's write lock until closed."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=0.0)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


def test_batches_are_written_on_both_backends(db, rng):
    with TwinWriter(db, queue_size=16) as w:
        assert all(w.put([detection(rng, "bs0", float(i)), track(rng, "T", t0_s=float(i), n=2)]) for i in range(5))
    st = w.stats()
    assert (st.written_batches, st.written_records, st.dropped_batches, st.failed_batches) == (5, 10, 0, 0)
    with open_twin(db) as store:
        assert len(store.detections()) == 5 and store.track_history("T").num_states == 10


def test_put_never_blocks_and_counts_drops_while_another_connection_locks_the_file(tmp_path, rng):
    path = tmp_path / "twin.sqlite"
    w = TwinWriter(str(path), queue_size=2, busy_timeout_s=2.0)
    w.put([])
    _wait(lambda: w.stats().written_batches == 1)               # opened, schema made
    holder = _lock(path)
    try:
        accepted = []
        for i in range(10):
            accepted.append(w.put([detection(rng, "bs0", float(i))]))
        # put never waited: while the thread waits up to 2 s for the lock, the queue of 2 fills and the rest
        # are dropped at once (a blocking put would have queued them all)
        st = w.stats()
        assert accepted.count(False) == st.dropped_batches == st.dropped_records == w.dropped
        assert st.dropped_batches in (7, 8)                    # 2 queued, and 1 in the thread's hands or not yet
    finally:
        holder.close()
    st = w.close()
    assert st.written_batches + st.failed_batches + st.dropped_batches == 11
    with open_twin(str(path)) as store:
        assert len(store.detections()) == st.written_records


def test_a_locked_database_is_counted_failed_and_the_writer_goes_on(tmp_path, rng):
    path = tmp_path / "locked.sqlite"
    w = TwinWriter(str(path), queue_size=8, busy_timeout_s=0.05)
    w.put([])
    _wait(lambda: w.stats().written_batches == 1)
    holder = _lock(path)
    w.put([detection(rng, "bs0", 1.0), detection(rng, "bs0", 2.0)])
    _wait(lambda: w.stats().failed_batches == 1)
    st = w.stats()
    assert st.failed_records == 2 and str(path) in st.last_error and "locked by another connection" in st.last_error
    holder.close()
    assert w.put([detection(rng, "bs0", 3.0)])
    st = w.close()
    assert (st.written_batches, st.failed_batches) == (2, 1)
    with open_twin(str(path)) as store:
        assert [d.t_s for d in store.detections()] == [3.0]


def test_a_locked_database_is_a_clear_error_for_a_direct_write(tmp_path, rng):
    path = tmp_path / "locked.sqlite"
    with open_twin(str(path), busy_timeout_s=0.05) as store:
        holder = _lock(path)
        try:
            with pytest.raises(TwinError, match=f"{path}: locked by another connection .*could not write 1 records"):
                store.write([detection(rng)])
        finally:
            holder.close()
        assert store.write([detection(rng)]) == 1


def _corrupt_header(path: Path) -> None:
    path.write_bytes(b"this is not a SQLite database, just bytes " * 100)


def test_a_corrupt_file_is_a_clear_error_and_the_writer_goes_on(tmp_path, rng):
    path = tmp_path / "corrupt.sqlite"
    _corrupt_header(path)
    with pytest.raises(TwinError, match=f"{path}: corrupt or not a SQLite database"):
        open_twin(str(path))
    w = TwinWriter(str(path), queue_size=8)
    for i in range(3):
        assert w.put([detection(rng, "bs0", float(i))])
    _wait(lambda: w.stats().failed_batches == 3)
    assert w._thread.is_alive() and "corrupt" in (w.stats().last_error or "")
    path.unlink()                                    # replaced by a good (new) file: the writer re-opens it
    assert w.put([detection(rng, "bs0", 9.0)])
    st = w.close()
    assert (st.failed_batches, st.written_batches) == (3, 1)


def test_a_damaged_page_is_found_by_quick_check(tmp_path, rng):
    path = tmp_path / "damaged.sqlite"
    with open_twin(str(path)) as store:
        store.write([detection(rng, "bs0", float(i)) for i in range(3000)])
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    data = bytearray(path.read_bytes())
    start = page * (pages // 2)                       # a page in the middle of the table's b-tree
    data[start:start + page] = bytes(range(256)) * (page // 256)
    path.write_bytes(bytes(data))
    with pytest.raises(TwinError, match=f"{path}: corrupt"):
        open_twin(str(path))


_READ_ONLY_SCRIPT = """
import dataclasses, json, sys
import numpy as np
from sdr_isac.twin import TwinError, TwinWriter, open_twin
from tests.twin.factories import detection
path = sys.argv[1]
out = {}
try:
    open_twin(path).write([detection(np.random.default_rng(0))])
    out["open"] = "no error"
except TwinError as err:
    out["open"] = str(err)
w = TwinWriter(path, queue_size=4, busy_timeout_s=0.05)
rng = np.random.default_rng(1)
out["put"] = [w.put([detection(rng)]) for _ in range(3)]
import time
deadline = time.monotonic() + 20
while w.stats().failed_batches < 3 and time.monotonic() < deadline:
    time.sleep(0.01)
out["alive"] = w._thread.is_alive()
out["stats"] = dataclasses.asdict(w.close())
print(json.dumps(out))
"""


def _without_write_privilege() -> list[str]:
    """A command prefix under which file permissions hold: root loses CAP_DAC_OVERRIDE (``setpriv``)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux): file permissions cannot be enforced")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.mark.parametrize("folder_writable", [False, True])
def test_a_read_only_file_is_a_clear_error_and_the_writer_goes_on(rng, folder_writable):
    root = Path(tempfile.mkdtemp(prefix="twin_ro_"))
    try:
        path = root / "ro.sqlite"
        with open_twin(str(path)) as store:
            store.write([detection(rng)])
        with sqlite3.connect(path) as conn:                   # back to a rollback journal: only the file matters
            conn.execute("PRAGMA journal_mode = DELETE")
        os.chmod(path, 0o444)
        os.chmod(root, 0o755 if folder_writable else 0o555)
        done = subprocess.run([*_without_write_privilege(), sys.executable, "-c", _READ_ONLY_SCRIPT, str(path)],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout.strip().splitlines()[-1])
        assert out["open"].startswith(f"{path}: read-only") and "writable" in out["open"]
        assert out["put"] == [True, True, True] and out["alive"]
        assert out["stats"]["failed_batches"] == 3 and out["stats"]["written_batches"] == 0
        assert "read-only" in out["stats"]["last_error"]
    finally:
        os.chmod(root, 0o755)
        shutil.rmtree(root, ignore_errors=True)


def test_close_writes_what_is_queued_and_later_puts_are_dropped(tmp_path, rng):
    w = TwinWriter(str(tmp_path / "t.sqlite"), queue_size=100)
    for i in range(50):
        w.put([detection(rng, "bs0", float(i))])
    st = w.close()
    assert (st.written_batches, st.queued, st.dropped_batches) == (50, 0, 0)
    assert not w.put([detection(rng)]) and w.stats().dropped_batches == 1
    assert w.close() == w.stats()


def test_retention_prunes_old_rows(tmp_path, rng):
    with TwinWriter(str(tmp_path / "t.sqlite"), retention_s=5.0, prune_interval_s=0.0) as w:
        for i in range(20):
            w.put([detection(rng, "bs0", float(i))])
    assert w.stats().pruned_rows == 14                 # after the last batch: rows before 19 - 5 = 14 s went
    with open_twin(str(tmp_path / "t.sqlite")) as store:
        assert [d.t_s for d in store.detections()] == [float(t) for t in range(14, 20)]


def test_a_given_store_is_used_and_left_open(tmp_path, rng):
    with open_twin(str(tmp_path / "t.sqlite")) as store:
        w = TwinWriter(store, queue_size=4)
        w.put([detection(rng)])
        w.close()
        assert store.counts()["detections"] == 1


def test_bad_arguments_are_refused_where_they_are_made(tmp_path, rng):
    with pytest.raises(InputError, match="queue_size = 0 batches"):
        TwinWriter(str(tmp_path / "t.sqlite"), queue_size=0)
    with pytest.raises(InputError, match="retention_s = inf"):
        TwinWriter(str(tmp_path / "t.sqlite"), retention_s=float("inf"))
    with pytest.raises(InputError, match="store_or_db = 3"):
        TwinWriter(3)  # type: ignore[arg-type]
    with TwinWriter(str(tmp_path / "t.sqlite")) as w, pytest.raises(InputError, match=r"records\[1\] is a Handover"):
        w.put([detection(rng), Handover(0.0, "a", "b", "c")])


def test_the_queue_is_bounded_in_records_as_well_as_in_batches(tmp_path, rng):
    """1024 batches of 10000 detections each would have been queued behind a stalled database (gigabytes):
    ``queue_records`` bounds the records the queued batches hold together."""
    path = tmp_path / "twin.sqlite"
    w = TwinWriter(str(path), queue_size=100, queue_records=1000, busy_timeout_s=2.0)
    w.put([])
    _wait(lambda: w.stats().written_batches == 1)               # opened, schema made
    batch = [detection(rng, "bs0", float(i)) for i in range(600)]
    holder = _lock(path)
    try:
        assert w.put(batch)                                     # into the empty queue (or the thread's hands)
        _wait(lambda: w.stats().queued == 0)                    # the thread took it and waits for the lock
        assert w.put(batch)                                     # 600 queued
        assert not w.put(batch)                                 # 1200 > 1000: dropped, never waited
        assert w.put(batch[:400])                               # 1000: fits
        assert not w.put(batch[:1])
        st = w.stats()
        assert (st.dropped_batches, st.dropped_records) == (2, 601)
    finally:
        holder.close()
    st = w.close()
    assert st.written_records + st.failed_records == 600 + 600 + 400
    with pytest.raises(InputError, match="queue_records = 0 records"):
        TwinWriter(str(tmp_path / "t.sqlite"), queue_records=0)


def test_many_threads_put_at_once(tmp_path, rng):
    dets = [detection(rng, "bs0", float(i)) for i in range(400)]
    w = TwinWriter(str(tmp_path / "t.sqlite"), queue_size=1000)
    threads = [threading.Thread(target=lambda k=k: [w.put([d]) for d in dets[k::4]]) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    st = w.close()
    assert st.written_records == 400
    with open_twin(str(tmp_path / "t.sqlite")) as store:
        assert sorted(d.t_s for d in store.detections()) == [float(i) for i in range(400)]
