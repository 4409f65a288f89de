"""Subscribing to the fusion host's results (for displays and recorders)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

import zmq

from sdr_isac.config import StreamConfig
from sdr_isac.errors import ConfigError, WireFormatError
from sdr_isac.stream import wire
from sdr_isac.stream.security import HandshakeWatch, secure_client

__all__ = ["subscribe"]


def subscribe(endpoint: str, topics: Sequence[str] = ("detections/",), *, stop: threading.Event | None = None,
              timeout_s: float | None = None, stream: StreamConfig | None = None,
              context: zmq.Context | None = None, rcvhwm: int = 16,
              on_reject: Callable[[WireFormatError], None] | None = None,
              max_bytes: int = wire.DEFAULT_MAX_BYTES, auth_timeout_s: float = 5.0) -> Iterator[wire.Message]:
    """Yield the decoded messages the host publishes on ``endpoint`` whose topic starts with one of ``topics``.

    Malformed messages are skipped (never unpickled) and handed to ``on_reject``.  The iterator ends when
    ``stop`` is set, or when no message arrived for ``timeout_s`` seconds (None: wait forever).

    Parameters
    ----------
    endpoint : str
        The host's ``stream.publish_endpoint``, e.g. ``tcp://127.0.0.1:5556``.
    topics : sequence of str
        Topic prefixes: ``detections/`` (every node), ``detections/bs0`` (one node), ``""`` (everything).
    stream : StreamConfig, optional
        CURVE keys when the host publishes with CURVE (its ``curve_*`` fields).
    rcvhwm : int
        Messages ZeroMQ queues for a slow consumer before dropping new ones, 1 ... 10000 (bounded memory).
    on_reject : callable, optional
        Called with the :class:`~sdr_isac.errors.WireFormatError` of each malformed message (to count them).
    max_bytes : int
        Largest accepted frame, bytes (ZeroMQ's ``MAXMSGSIZE``: it drops the connection of a sender whose
        frame exceeds it; a message of many frames is checked only once received).
    auth_timeout_s : float
        Seconds of failing handshakes with the host, none succeeding, before giving up with an error.

    Raises
    ------
    ConfigError
        ``rcvhwm`` or ``max_bytes`` out of range; or the host refused this subscriber (with CURVE on at the
        host: a key that is not in its ``stream.curve_subscribers_allowed``, the wrong host public key, or no
        CURVE here), naming the likely cause.
    """
    if not 1 <= rcvhwm <= 10000:
        raise ConfigError(f"rcvhwm = {rcvhwm} messages: allowed 1 ... 10000; a small value bounds memory",
                          key="rcvhwm")
    if max_bytes < 1024:
        raise ConfigError(f"max_bytes = {max_bytes} bytes: allowed >= 1024 bytes; raise it", key="max_bytes")
    ctx = context or zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)              # a slow consumer loses results, not memory
    sock.setsockopt(zmq.MAXMSGSIZE, max_bytes)
    watch = None
    try:
        if stream is not None:
            secure_client(sock, stream)
        for topic in topics:
            sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        watch = HandshakeWatch(sock, stream, endpoint, "subscriber", auth_timeout_s)
        sock.connect(endpoint)
    except BaseException:
        if watch is not None:
            watch.close()
        sock.close()
        raise
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    idle_ms = 0.0
    try:
        while stop is None or not stop.is_set():
            if not dict(poller.poll(100)):
                idle_ms += 100
                watch.check()
                if timeout_s is not None and idle_ms >= timeout_s * 1000:
                    watch.check(final=watch.succeeded == 0)
                    return
                continue
            idle_ms = 0.0
            frames = sock.recv_multipart(copy=False)
            try:
                msg = wire.decode(frames, max_bytes=max_bytes)
            except WireFormatError as err:
                if on_reject is not None:
                    on_reject(err)
                continue
            yield msg
    finally:
        watch.close()
        sock.close()
