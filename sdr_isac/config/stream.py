"""The ``[stream]`` and ``[host]`` sections: node-to-host streaming and where a host senses captures."""

from __future__ import annotations

from dataclasses import dataclass

from sdr_isac.config.base import _check_choice, _check_endpoint, _check_fields, _fail, _num
from sdr_isac.config.core import _check_host_id

__all__ = ["StreamConfig", "HostConfig"]


@dataclass(frozen=True)
class StreamConfig:
    """How nodes stream to the fusion host over ZeroMQ (see ``docs/wire-format.md``).

    Parameters
    ----------
    host_endpoint : str
        Where the host's PULL socket binds and the nodes' PUSH sockets
        connect, e.g. ``tcp://127.0.0.1:5555``.  Loopback unless told otherwise.
        Checked when the config is read: ``tcp://HOST:PORT`` with HOST an
        IPv4 address, an IPv6 address in brackets (``tcp://[::1]:5555``), a
        hostname or ``*``, and PORT 1 ... 65535; ``ipc://PATH`` (1 ... 107
        bytes); ``inproc://NAME`` (non-empty).
    publish_endpoint : str
        Where the host publishes results (detections, later estimates and
        tracks) for displays and recorders; the same forms.
    send: str
        What a node sends: ``capture`` (IQ) or ``detections`` (it senses locally).
    send_hwm : int
        Messages a node queues before dropping (counted), 1 ... 10000.
    heartbeat_s : float
        Interval of node heartbeats, 0.01 ... 3600 s.
    frames : int
        A node stops after this many frames, 0 ... 10**9 (0: until stopped).
    frame_rate_hz : float
        Captures per second a node paces itself to, 0 ... 1e5 Hz (0: as fast
        as it can).
    rx_failures_in_a_row : int
        A node whose radio gives up on a capture (several frames in a row
        with gaps: :class:`~sdr_isac.errors.RadioOverflowError`) counts it
        in its heartbeat's ``rx_failures`` and tries again; it stops with
        the error after this many such captures in a row, 1 ... 1000.
    align_window_s : float
        Captures of different nodes whose t0 lie within this window are one
        time-aligned set at the host, 0 ... 10 s (default 0.1 ms: well under
        one frame, so frame k of one node never pairs with frame k +- 1 of
        another; simulated nodes capture at identical instants,
        PPS-disciplined radios within microseconds).
    queue_size : int
        Captures waiting for processing at the host before new ones are
        dropped, 1 ... 100000.
    max_message_mb : float
        Largest message accepted, 0.001 ... 4096 MiB.  ZeroMQ applies it
        to each frame as it arrives (``MAXMSGSIZE``); a message's frame
        count and total size are checked once it is received, so a sender
        may still fill the host's receive queue (64 messages) with many
        frames: use CURVE (``curve_server_secret``) on a shared network.
    curve_server_secret, curve_server_public : str
        Host key files (``sdr-isac keys``); empty disables CURVE.
    curve_client_secret, curve_client_public : str
        Node key files.
    curve_allowed : tuple of str
        Public key files of the nodes the host accepts (CURVE only).
    curve_subscribers_allowed : tuple of str
        Public key files of the subscribers (displays, recorders, core hosts)
        that may read the host's PUB socket (CURVE only: with CURVE on, the
        PUB socket is a CURVE server too, and an empty list admits no
        subscriber).
    absent_after_heartbeats : int
        The host marks a node ``absent`` after this many heartbeat intervals
        (``heartbeat_s``) without any message from it, 1 ... 1000.
    publish_maps : bool
        The host also publishes, per sensed capture, the range-Doppler map
        cropped to the reportable range (kind ``rdmap``, for displays).  It
        costs one dB conversion and one message of at most
        ``map_max_cells`` float32 values per capture; false publishes
        detections only.
    map_max_cells : int
        Largest published map, cells (range bins x Doppler bins), 1024 ...
        4194304; a larger map is max-pooled in range blocks to fit.
    """

    host_endpoint: str = "tcp://127.0.0.1:5555"
    publish_endpoint: str = "tcp://127.0.0.1:5556"
    send: str = "capture"
    send_hwm: int = _num(16, 1, 10000, "messages")
    heartbeat_s: float = _num(1.0, 0.01, 3600.0, "s")
    frames: int = _num(0, 0, 10**9, "frames")
    frame_rate_hz: float = _num(0.0, 0.0, 1e5, "Hz")
    rx_failures_in_a_row: int = _num(5, 1, 1000, "captures")
    align_window_s: float = _num(1e-4, 0.0, 10.0, "s")
    queue_size: int = _num(64, 1, 100000, "captures")
    max_message_mb: float = _num(256.0, 0.001, 4096.0, "MiB")
    curve_server_secret: str = ""
    curve_server_public: str = ""
    curve_client_secret: str = ""
    curve_client_public: str = ""
    curve_allowed: tuple[str, ...] = ()
    curve_subscribers_allowed: tuple[str, ...] = ()
    absent_after_heartbeats: int = _num(3, 1, 1000, "heartbeats")
    publish_maps: bool = True
    map_max_cells: int = _num(262144, 1024, 4194304, "cells")

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_endpoint("host_endpoint", self.host_endpoint)
        _check_endpoint("publish_endpoint", self.publish_endpoint)
        _check_choice("send", self.send, ("capture", "detections"))
        if self.curve_server_secret and not self.curve_server_public:
            _fail("curve_server_public", self.curve_server_public, "the host's public key file beside its secret one",
                  "run sdr-isac keys and set both")
        if self.curve_client_secret and not self.curve_server_public:
            _fail("curve_server_public", self.curve_server_public, "the host's public key file on a CURVE node",
                  "copy the host's NAME.key to the node and set curve_server_public")


@dataclass(frozen=True)
class HostConfig:
    """Where a fusion host senses the captures it receives (``sdr_isac.executors``).

    Parameters
    ----------
    executor : str
        ``thread`` (in the host's worker thread: tests, one node), ``process``
        (a local pool of ``workers`` processes) or ``dask`` (a Dask distributed
        cluster: ``scheduler``, or a local cluster of ``workers`` processes).
        Results are identical on every executor.
    workers : int
        Processes of a local pool or local Dask cluster, 1 ... 1024 (0: one per core).
    scheduler : str
        A Dask scheduler's address, ``tcp://HOST:PORT`` (``executor = "dask"`` only;
        empty: a local cluster).  Add machines by starting ``dask worker tcp://HOST:PORT`` on them.
    max_in_flight : int
        Captures being sensed at once before the host waits for the oldest, 1 ... 4096
        (0: twice the workers).
    node_id : str
        The id a (MECS) host publishes its fused estimates and tracks under (``estimates/<node_id>``,
        ``tracks/<node_id>``): a core host lists it in ``core.mecs_ids``.  1 ... 64 characters from
        ``A-Z a-z 0-9 _ . -`` (default ``host``).
    """

    executor: str = "thread"
    workers: int = _num(0, 1, 1024, "processes", or_zero=True)
    scheduler: str = ""
    max_in_flight: int = _num(0, 1, 4096, "captures", or_zero=True)
    node_id: str = "host"

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_choice("executor", self.executor, ("thread", "process", "dask"))
        _check_host_id("host.node_id", self.node_id)
        if self.scheduler:
            if self.executor != "dask":
                _fail("scheduler", self.scheduler, "a scheduler only with executor = \"dask\"",
                      "set executor = \"dask\" or remove scheduler")
            _check_endpoint("scheduler", self.scheduler)
