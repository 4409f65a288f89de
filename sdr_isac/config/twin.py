"""The ``[twin]`` section: the digital twin a host writes (:mod:`sdr_isac.twin`)."""

from __future__ import annotations

from dataclasses import dataclass

from sdr_isac.config.base import _check_fields, _fail, _num

__all__ = ["TwinConfig"]


@dataclass(frozen=True)
class TwinConfig:
    """Where a host stores what it sensed, and how the writer behind it behaves.

    Parameters
    ----------
    enabled : bool
        Write detections, link measurements, estimates, tracks and handovers to the twin.
    db : str
        A SQLite file path (relative to the host's output folder) or a PostgreSQL DSN
        (``postgresql://...`` or ``host=... dbname=...``).
    queue_size : int
        Batches the writer thread may hold, 1 ... 1,000,000.  A batch put while the queue is
        full is dropped and counted (the host never waits for the database).
    retention_s : float
        Keep this many seconds of history (by record time, relative to the newest record);
        0 keeps everything.  0 or 1 ... 1e10 s.
    prune_interval_s : float
        How often the writer applies ``retention_s``, 1 ... 86400 s of wall time.
    busy_timeout_s : float
        How long one write waits for a database locked by another connection before it is
        counted as failed, 0 ... 600 s.
    """

    enabled: bool = False
    db: str = "twin.sqlite"
    queue_size: int = _num(1024, 1, 1_000_000, "batches")
    retention_s: float = _num(0.0, 1.0, 1e10, "s", or_zero=True)
    prune_interval_s: float = _num(60.0, 1.0, 86400.0, "s")
    busy_timeout_s: float = _num(5.0, 0.0, 600.0, "s")

    def __post_init__(self) -> None:
        _check_fields(self)
        if not isinstance(self.db, str) or not self.db.strip():
            _fail("twin.db", self.db, "a SQLite file path or a PostgreSQL DSN",
                  "set twin.db = 'twin.sqlite' or 'postgresql://user@host/dbname'")
