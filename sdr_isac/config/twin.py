"""The ``[twin]`` section: the digital twin a host writes (:mod:`sdr_isac.twin`)."""

from __future__ import annotations

from dataclasses import dataclass

from sdr_isac.config.base import _check_fields

__all__ = ["TwinConfig"]


@dataclass(frozen=True)
class TwinConfig:
    """Where a host stores what it sensed.

    Parameters
    ----------
    enabled : bool
        Write detections, link measurements, estimates, tracks and handovers to the twin.
    db : str
        A SQLite file path (relative to the host's output folder) or a PostgreSQL DSN
        (``postgresql://...`` or ``host=... dbname=...``).
    """

    enabled: bool = False
    db: str = "twin.sqlite"

    def __post_init__(self) -> None:
        _check_fields(self)
