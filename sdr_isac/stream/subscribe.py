"""Subscribing to the fusion host's results (for displays and recorders)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import zmq

from sdr_isac.config import StreamConfig
from sdr_isac.errors import WireFormatError
from sdr_isac.stream import wire
from sdr_isac.stream.security import secure_client

__all__ = ["subscribe"]


def subscribe(endpoint: str, topics: Sequence[str] = ("detections/",), *, stop: threading.Event | None = None,
              timeout_s: float | None = None, stream: StreamConfig | None = None,
              context: zmq.Context | None = None) -> Iterator[wire.Message]:
    """Yield the decoded messages the host publishes on ``endpoint`` whose topic starts with one of ``topics``.

    Malformed messages are skipped (never unpickled).  The iterator ends when ``stop`` is set, or when no
    message arrived for ``timeout_s`` seconds (None: wait forever).

    Parameters
    ----------
    endpoint : str
        The host's ``stream.publish_endpoint``, e.g. ``tcp://127.0.0.1:5556``.
    topics : sequence of str
        Topic prefixes: ``detections/`` (every node), ``detections/bs0`` (one node), ``""`` (everything).
    stream : StreamConfig, optional
        CURVE keys when the host publishes with CURVE (its ``curve_*`` fields).
    """
    ctx = context or zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 16)                  # a slow consumer loses old results, not memory
    if stream is not None:
        secure_client(sock, stream)
    for topic in topics:
        sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
    sock.connect(endpoint)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    idle_ms = 0.0
    try:
        while stop is None or not stop.is_set():
            if not dict(poller.poll(100)):
                idle_ms += 100
                if timeout_s is not None and idle_ms >= timeout_s * 1000:
                    return
                continue
            idle_ms = 0.0
            frames = sock.recv_multipart(copy=False)
            try:
                yield wire.decode(frames)
            except WireFormatError:
                continue
    finally:
        sock.close()
