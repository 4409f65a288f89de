"""Fixtures of the twin tests: a throwaway PostgreSQL server (Unix socket only), a fresh schema per test,
the database of each backend."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from sdr_isac.twin.pg_local import find_bin, local_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The DSN of a PostgreSQL server started for this session (initdb in a temporary folder, no TCP port)."""
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'sdr_isac[twin]')")
    if find_bin() is None:
        pytest.skip("PostgreSQL server programs (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or PATH")
    with local_server(fsync=False) as dsn:
        yield dsn


@pytest.fixture
def pg_dsn(pg_server: str) -> Iterator[str]:
    """A DSN whose search path is a fresh, empty schema of the session's server (dropped afterwards)."""
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{pg_server} options='-c search_path={schema}'"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh twin database of each backend: a SQLite file, a PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "twin.sqlite")
    return str(request.getfixturevalue("pg_dsn"))
