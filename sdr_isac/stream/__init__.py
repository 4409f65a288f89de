"""ZeroMQ streaming: the wire format, the node agent and the fusion host.

``zmq`` is imported only inside this package (DESIGN.md).
"""

from sdr_isac.stream.host import FusionHost
from sdr_isac.stream.node import NodeAgent

__all__ = ["FusionHost", "NodeAgent"]
