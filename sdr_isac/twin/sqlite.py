"""The embedded twin: one SQLite file (standard library ``sqlite3``), WAL journal, versioned schema.

WAL lets readers (``sdr-isac twin ... tracks``) query while the host's writer writes; ``synchronous
= NORMAL`` (the usual pairing with WAL) keeps every committed batch across a crash of the process and
loses at most the last batches on a power cut.  A write waits ``busy_timeout_s`` for a lock another
connection holds, then fails with a :class:`~sdr_isac.twin.TwinError` that says so.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sdr_isac.twin._rows import Row
from sdr_isac.twin.errors import TwinError
from sdr_isac.twin.store import TwinStore

__all__ = ["SqliteStore"]


class SqliteStore(TwinStore):
    """A twin in one SQLite file (see :class:`~sdr_isac.twin.TwinStore` for the interface).

    Parameters
    ----------
    path : str
        The file (created with its folder's permissions if absent), or ``:memory:``.
    busy_timeout_s : float
        How long a statement waits for another connection's lock, s.
    check : bool
        Run ``PRAGMA quick_check`` on opening.
    read_only : bool
        Open for queries only; the file must exist.

    Raises
    ------
    TwinError
        Locked, read-only, corrupt, not a SQLite file, a folder that does not exist, another schema
        version; the message names the file.
    """

    _types = {"real": "REAL", "blob": "BLOB", "serial": "INTEGER PRIMARY KEY", "int": "INTEGER"}

    def __init__(self, path: str, *, busy_timeout_s: float = 5.0, check: bool = True, read_only: bool = False):
        super().__init__(path)
        self.busy_timeout_s = float(busy_timeout_s)
        self._read_only = bool(read_only)
        memory = path == ":memory:"
        if read_only and not memory and not Path(path).is_file():
            raise TwinError(f"{path}: no such twin file: give the file a host wrote (twin.db), or write one first")
        target, uri = (path, False)
        if read_only and not memory:
            target, uri = (f"file:{quote(str(Path(path).resolve()))}?mode=ro", True)
        with self._guard("open the database"):
            self._conn = sqlite3.connect(target, uri=uri, timeout=self.busy_timeout_s, isolation_level=None,
                                         check_same_thread=False)
        try:
            with self._guard("open the database"):
                self._conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
                self._conn.execute("PRAGMA foreign_keys = OFF")
                if not memory and not read_only:
                    self._conn.execute("PRAGMA journal_mode = WAL")
                    self._conn.execute("PRAGMA synchronous = NORMAL")
                if check:
                    self._quick_check()
            self._init_schema()
        except BaseException:
            self._conn.close()
            raise

    def _quick_check(self) -> None:
        rows = [r[0] for r in self._conn.execute("PRAGMA quick_check(5)").fetchall()]
        if rows != ["ok"]:
            raise TwinError(f"{self.name}: corrupt (PRAGMA quick_check: {'; '.join(map(str, rows))}): restore it "
                            "from a backup, or give another --db (`sqlite3 FILE .recover` may save some rows)")

    def _error(self, err: sqlite3.Error, what: str) -> TwinError:
        code = getattr(err, "sqlite_errorname", "") or ""
        text = str(err)
        if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
            return TwinError(f"{self.name}: locked by another connection (waited {self.busy_timeout_s:g} s) and "
                             f"could not {what}: retry later, stop the other writer, or raise twin.busy_timeout_s")
        if code.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
            return TwinError(f"{self.name}: read-only, could not {what}: make the file and its folder writable "
                             "(SQLite writes FILE-wal and FILE-shm beside it), or give another --db")
        if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "not a database" in text or "malformed" in text:
            return TwinError(f"{self.name}: corrupt or not a SQLite database ({text}), could not {what}: restore it "
                             "from a backup, or give another --db")
        if code.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
            return TwinError(f"{self.name}: cannot be opened ({text}): check that its folder exists and is "
                             "writable, or give another --db")
        if code.startswith("SQLITE_FULL") or "full" in text:
            return TwinError(f"{self.name}: the disk is full, could not {what}: free space, or prune the twin")
        return TwinError(f"{self.name}: could not {what}: {text} ({code or type(err).__name__})")

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as err:
            raise self._error(err, what) from err

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")          # take the write lock now: no deadlock upgrading a read lock
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            raise
        finally:
            cur.close()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, tuple(params)).fetchall()

    def _bulk_insert(self, cur: Any, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)

    def _allocate_ids(self, cur: Any, n: int) -> list[int]:
        start = int(cur.execute("SELECT COALESCE(MAX(id), 0) FROM estimates").fetchone()[0])
        return list(range(start + 1, start + 1 + n))

    def _table_names(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _close(self) -> None:
        with self._guard("close"):
            self._conn.close()
