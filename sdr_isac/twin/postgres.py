"""The twin on PostgreSQL, through ``psycopg`` 3 (imported here only, when a DSN is given).

The same tables as the SQLite twin (``DOUBLE PRECISION`` for REAL, ``BYTEA`` for the covariances);
plain inserts go through ``COPY ... FROM STDIN``, upserts through ``executemany`` (pipelined by
psycopg).  Estimate ids come from the sequence ``estimate_ids``.  A statement waits
``busy_timeout_s`` for a lock (``lock_timeout``) before it fails.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

from sdr_isac.twin._rows import Row
from sdr_isac.twin.errors import TwinError, TwinUnavailableError
from sdr_isac.twin.store import TwinStore, _upsert

__all__ = ["PostgresStore", "redact"]

_TEXT = {"node_id", "geometry", "tx_id", "rx_id", "nodes", "mode", "bs_ue_case", "single_m", "track_id", "status",
         "station", "stations", "from_station", "to_station", "reason"}
_BYTES = {"cov_position_m2", "cov_velocity_mps2", "cov_position_velocity_m2ps", "covariance"}
_INT8 = {"id", "estimate_id", "tx", "rx", "measured"}


def _pg_type(column: str) -> str:
    """The PostgreSQL type of a twin column (for binary COPY)."""
    if column in _TEXT:
        return "text"
    if column in _BYTES:
        return "bytea"
    if column in _INT8:
        return "int8"
    return "int4" if column == "link_index" else "float8"


#: the advisory lock that serialises creating the tables (an arbitrary constant: "sdr_isac twin")
_CREATE_LOCK = 0x5D415C


def redact(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***`` (for messages)."""
    dsn = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn)


class PostgresStore(TwinStore):
    """A twin in a PostgreSQL database (see :class:`~sdr_isac.twin.TwinStore` for the interface).

    Parameters
    ----------
    dsn : str
        ``postgresql://user:password@host:port/dbname`` or ``host=... dbname=...``.
    busy_timeout_s : float
        ``lock_timeout``: how long a statement waits for another session's lock, s.
    read_only : bool
        Open a read-only session (``default_transaction_read_only``).

    Raises
    ------
    TwinUnavailableError
        psycopg is not installed.
    TwinError
        The server cannot be reached or refuses; the message names the DSN (without password).
    """

    _mark = "%s"
    _types = {"real": "DOUBLE PRECISION", "blob": "BYTEA", "serial": "BIGSERIAL PRIMARY KEY", "int": "BIGINT"}

    def __init__(self, dsn: str, *, busy_timeout_s: float = 5.0, read_only: bool = False):
        try:
            import psycopg
        except ImportError as err:
            raise TwinUnavailableError(f"twin.db = {redact(dsn)!r} is a PostgreSQL DSN, which needs psycopg 3: "
                                       "pip install 'sdr_isac[twin]', or give a SQLite file path") from err
        super().__init__(redact(dsn))
        self.busy_timeout_s = float(busy_timeout_s)
        self._read_only = bool(read_only)
        self._pg = psycopg
        options = f"-c lock_timeout={int(self.busy_timeout_s * 1000)}"
        if read_only:
            options += " -c default_transaction_read_only=on"
        with self._guard("connect"):
            params = psycopg.conninfo.conninfo_to_dict(dsn)
            params["options"] = f"{params.get('options') or ''} {options}".strip()    # keep the DSN's own options
            params.setdefault("connect_timeout", 10)
            self._conn = psycopg.connect(psycopg.conninfo.make_conninfo("", **params), autocommit=True)
        try:
            self._init_schema()
        except BaseException:
            self._conn.close()
            raise

    def _error(self, err: Exception, what: str) -> TwinError:
        errors = self._pg.errors
        if isinstance(err, errors.LockNotAvailable | errors.DeadlockDetected):
            return TwinError(f"{self.name}: locked by another session (waited {self.busy_timeout_s:g} s) and "
                             f"could not {what}: retry later, or raise twin.busy_timeout_s")
        if isinstance(err, errors.ReadOnlySqlTransaction):
            return TwinError(f"{self.name}: read-only, could not {what}: connect to a writable server (not a "
                             "standby) as a user that may write")
        if isinstance(err, errors.InsufficientPrivilege):
            if what.startswith("upgrade the schema"):                  # ALTER TABLE needs the tables' owner
                return TwinError(f"{self.name}: permission denied, could not {what} (it adds columns to the "
                                 "twin's tables, which only the tables' owner may): open the twin once for "
                                 f"writing as that owner, then as this user ({str(err).strip()})")
            return TwinError(f"{self.name}: permission denied, could not {what}: grant the user rights on the "
                             f"twin's tables, or give another DSN ({str(err).strip()})")
        if isinstance(err, errors.DataCorrupted | errors.IndexCorrupted):
            return TwinError(f"{self.name}: corrupt ({str(err).strip()}), could not {what}: repair the database")
        if isinstance(err, self._pg.OperationalError):
            return TwinError(f"{self.name}: cannot reach the server, could not {what}: {str(err).strip()}")
        return TwinError(f"{self.name}: could not {what}: {str(err).strip()} ({type(err).__name__})")

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except self._pg.Error as err:
            raise self._error(err, what) from err

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._conn.transaction(), self._conn.cursor() as cur:
            yield cur

    def _create(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
        if "schema_version" in self._table_names():
            return
        super()._create(cur)
        cur.execute("CREATE SEQUENCE estimate_ids")

    def _migrate(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))     # one process upgrades, others wait
        super()._migrate(cur)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(sql, tuple(params))
            return cur.fetchall()

    def _bulk_insert(self, cur: Any, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([_pg_type(c) for c in columns])
            for row in rows:
                copy.write_row(row)

    def _bulk_upsert(self, cur: Any, table: str, columns: Sequence[str], key: Sequence[str],
                     rows: Sequence[Row]) -> None:
        """COPY into a temporary table (emptied at commit), then one ``INSERT ... SELECT ... ON CONFLICT``."""
        if len(rows) < 64:                                      # a few rows: not worth the temporary table
            cur.executemany(self._sql(_upsert(table, columns, key)), rows)
            return
        tmp = f"twin_tmp_{table}"
        cur.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {tmp} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE "
                    "ROWS")
        cur.execute(f"TRUNCATE {tmp}")
        self._bulk_insert(cur, tmp, columns, rows)
        keys = ", ".join(key)
        # one row per key (the last one written, as executemany would leave it): a command may not update a row twice
        latest = f"SELECT DISTINCT ON ({keys}) {', '.join(columns)} FROM {tmp} ORDER BY {keys}, ctid DESC"
        cur.execute(_upsert(table, columns, key, latest))

    def _allocate_ids(self, cur: Any, n: int) -> list[int]:
        cur.execute("SELECT nextval('estimate_ids') FROM generate_series(1, %s)", (n,))
        return [int(r[0]) for r in cur.fetchall()]

    def _table_names(self) -> set[str]:
        return {r[0] for r in self._query("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                                          "current_schema()")}

    def _close(self) -> None:
        with self._guard("close"):
            self._conn.close()
