"""The twin's errors: members of the :class:`~sdr_isac.errors.SdrIsacError` family."""

from __future__ import annotations

from sdr_isac.errors import SdrIsacError

__all__ = ["TwinError", "TwinUnavailableError"]


class TwinError(SdrIsacError):
    """The twin's database cannot be opened, read or written (locked, read-only, corrupt, newer schema)."""


class TwinUnavailableError(TwinError):
    """The twin's PostgreSQL backend needs ``psycopg``, which is not installed."""
