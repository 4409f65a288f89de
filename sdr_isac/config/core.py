"""The ``[core]`` section: a core host over several MECS hosts (:mod:`sdr_isac.stream.core`)."""

from __future__ import annotations

from dataclasses import dataclass

from sdr_isac.config.base import _check_endpoint, _check_fields

__all__ = ["CoreConfig"]


@dataclass(frozen=True)
class CoreConfig:
    """Which MECS hosts a core host subscribes to and where it publishes global tracks.

    Parameters
    ----------
    mecs_endpoints : tuple of str
        The MECS hosts' publish endpoints (``tcp://HOST:PORT``).
    publish_endpoint : str
        Where the core host publishes global tracks.
    """

    mecs_endpoints: tuple[str, ...] = ()
    publish_endpoint: str = "tcp://127.0.0.1:5580"

    def __post_init__(self) -> None:
        _check_fields(self)
        for i, endpoint in enumerate(self.mecs_endpoints):
            _check_endpoint(f"core.mecs_endpoints[{i}]", endpoint)
        _check_endpoint("core.publish_endpoint", self.publish_endpoint)
