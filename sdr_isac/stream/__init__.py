"""ZeroMQ streaming: the wire format, the node agent, the (MECS) fusion host and the core host.

``zmq`` is imported only inside this package (DESIGN.md).  The package imports its modules on first
use (``sdr_isac.stream.FusionHost``), so that a command which needs one of them does not pay for all.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FusionHost", "NodeAgent", "CoreHost"]

_WHERE = {"FusionHost": "sdr_isac.stream.host", "NodeAgent": "sdr_isac.stream.node", "CoreHost": "sdr_isac.stream.core"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'sdr_isac.stream' has no attribute {name!r}")
