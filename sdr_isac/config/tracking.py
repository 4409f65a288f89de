"""The ``[tracking]`` section: the host's tracker (Stone Soup, :mod:`sdr_isac.fusion.tracking`)."""

from __future__ import annotations

from dataclasses import dataclass

from sdr_isac.config.base import _check_choice, _check_fields

__all__ = ["TrackingConfig"]


@dataclass(frozen=True)
class TrackingConfig:
    """How a host tracks the targets it fuses.

    Parameters
    ----------
    enabled : bool
        Track the fused estimates of each time-aligned set and publish ``tracks``.
    association : str
        ``gnn`` (global nearest neighbour) or ``jpda`` (joint probabilistic data association).
    """

    enabled: bool = False
    association: str = "gnn"

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_choice("tracking.association", self.association, ("gnn", "jpda"))
