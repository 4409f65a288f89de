"""Open a twin: a SQLite file or a PostgreSQL DSN -> the matching :class:`~sdr_isac.twin.TwinStore`."""

from __future__ import annotations

from sdr_isac.errors import InputError
from sdr_isac.twin.postgres import PostgresStore
from sdr_isac.twin.sqlite import SqliteStore
from sdr_isac.twin.store import TwinStore

__all__ = ["open_twin", "is_dsn"]


def is_dsn(db: str) -> bool:
    """Whether ``db`` is a PostgreSQL DSN (``postgresql://``/``postgres://`` URL, or ``key=value`` words)."""
    s = db.strip()
    return s.startswith(("postgresql://", "postgres://")) or ("=" in s and any(
        w.split("=", 1)[0] in ("host", "dbname", "user", "port", "service", "hostaddr") for w in s.split()))


def open_twin(db: str, *, busy_timeout_s: float = 5.0, check: bool = True, read_only: bool = False) -> TwinStore:
    """Open (create if new) the twin ``db``: a SQLite file, or a PostgreSQL database given by DSN.

    Parameters
    ----------
    db : str
        A SQLite file path (``:memory:`` for a private in-memory twin), or a DSN
        (``postgresql://user@host/dbname``, ``host=/run/pg dbname=twin``).
    busy_timeout_s : float
        How long a statement waits for a lock another connection holds, s (0 ... 600).
    check : bool
        SQLite: run ``PRAGMA quick_check`` on opening (it reads the whole file; a corrupt file is then
        refused at once instead of at the first damaged page).
    read_only : bool
        Open for queries only (SQLite: the file must exist).

    Raises
    ------
    TwinError
        The database cannot be opened, is corrupt or holds another schema version.
    TwinUnavailableError
        A DSN was given but psycopg is not installed.
    InputError
        ``db`` is empty or ``busy_timeout_s`` is out of range.
    """
    if not isinstance(db, str) or not db.strip():
        raise InputError(f"db = {db!r}: allowed a SQLite file path or a PostgreSQL DSN")
    if isinstance(busy_timeout_s, bool) or not isinstance(busy_timeout_s, int | float) \
            or not 0 <= busy_timeout_s <= 600:
        raise InputError(f"busy_timeout_s = {busy_timeout_s!r} s: allowed 0 ... 600 s")
    if is_dsn(db):
        return PostgresStore(db, busy_timeout_s=busy_timeout_s, read_only=read_only)
    return SqliteStore(db, busy_timeout_s=busy_timeout_s, check=check, read_only=read_only)
