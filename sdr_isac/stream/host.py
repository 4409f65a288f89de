"""The fusion host: receives from many nodes, senses off the receiving thread, publishes results.

``sdr-isac host --config FILE``.  One PULL socket receives every node's
messages; a receiving thread decodes them strictly (a malformed message is
counted in ``rejected`` and dropped, never unpickled), counts loss per node
from sequence gaps, measures latency from the sender's timestamp, and queues
captures for a worker thread that has them sensed on the executor of
``[host]`` (:mod:`sdr_isac.executors`: in that thread, a local process pool or
a Dask cluster, at most ``host.max_in_flight`` at once), takes the results in
the order the captures arrived, and publishes
detections on a PUB socket (topic ``detections/<node>``) and, with
``stream.publish_maps`` (the default), the range-Doppler map cropped to the
reportable range with the detections, the node's position and its counters
(topic ``rdmap/<node>``, for displays).  Captures of
different nodes whose ``t0`` fall within ``stream.align_window_s`` form a
time-aligned set, which the fusion engine
(:class:`sdr_isac.fusion.engine.FusionEngine`: sensing settings per capture,
multi-BS / passive / macro-micro / BS-UE / RIS fusion, no sockets) turns into
:class:`~sdr_isac.fusion.records.TargetEstimate` records, published as
``estimates/<host.node_id>`` (default ``host``).  The host itself only receives, accounts, aligns,
schedules and publishes.

A MECS host (article §V-1): with ``[tracking] enabled`` the worker thread hands each instant's fused set
(the set of the most nodes, once the next instant's set arrives; with ``expected_nodes``, ``sdr-isac host
--nodes``, once every one of them that is not absent is in it, so that a node that lags the others by
frames still counts; the last ones at :meth:`FusionHost.stop`)
to the Stone Soup tracker (:class:`sdr_isac.fusion.tracking.Tracker`, imported only then), keeps the latest
tracks with their last 8 positions, publishes them as ``tracks/<host.node_id>`` (the topic a core host
subscribes to; ``t0_s`` increasing message by message; a track the wire refuses is left out and counted),
logs every handover (they travel in the tracks) and writes ``tracks.json`` at the end (through
``sdr_isac.stream.demo.write_host_outputs``).  With ``[twin] enabled`` a
:class:`~sdr_isac.twin.TwinWriter` (its own thread, a bounded queue: the host never waits for the
database) stores every detection, estimate and track (``twin.db``: a DSN, or a SQLite file in the host's
output folder); its counters (written, dropped, failed, last error) are in :meth:`FusionHost.stats`, and a
locked, read-only or corrupt database only makes them grow.  Sample-time continuity: each node's capture
``t0_s`` must step by its frame period (a simulated radio's ``metadata.frame_interval_s`` where it captures every
so many frames; frames lost on the way accounted); a step back or any other jump is
counted per node (``t0_backwards``, ``t0_gaps``) and logged, never raised.

More machines: set ``[host] executor = "dask"`` and ``scheduler =
"tcp://HOST:8786"``, start ``dask scheduler`` on HOST and ``dask worker
tcp://HOST:8786 --nthreads 1`` on every machine that should sense (each with
sdr_isac installed); captures go to whichever worker is free and come back
in arrival order, so adding workers adds frames per second until the host's
own receiving and publishing is the limit (``scripts/bench_host.py``).  Incoming captures can be recorded
to SigMF, one recording per node.  ``stop()`` (or SIGINT/SIGTERM in the
command) ends both threads and closes the recordings.

Reliability: no message can end a thread.  Every step of handling one message
runs under one guard (:meth:`FusionHost._guard`) that counts what went wrong
(``rejected`` for a message that does not decode, or a capture with a NaN
or infinite sample, found where its sensing reads the samples: the capture
then counts as received and failed too; ``errors_total`` and the last
``errors`` otherwise; ``failed`` of the node for a capture that could not be
sensed), logs it and goes on; :meth:`FusionHost.stats` says whether the
receiving and working threads are alive (``receiver_alive``, ``worker_alive``).
A node silent for ``stream.absent_after_heartbeats`` heartbeat intervals
(``stream.heartbeat_s``) is marked ``absent`` (``absent_since_s``); when it
is heard again, the outage (start, end, frames missed) is kept in its stats
and both changes are published as ``status/<node>`` messages.  With CURVE
on, the PUB socket admits only ``stream.curve_subscribers_allowed``, and every
refused handshake is counted (``refused``) and logged.  Ground truth is
taken only from simulated or replayed sources (:data:`~sdr_isac.stream.wire.TRUTH_SOURCES`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from concurrent.futures import Future, wait
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import zmq

from sdr_isac import config as config_mod
from sdr_isac import sensing
from sdr_isac.capture import Capture
from sdr_isac.errors import ConfigError, InputError, NonFiniteSampleError, SdrIsacError, WireFormatError
from sdr_isac.executors import Executor, TaskFuture, keep_freed_memory, make_executor
from sdr_isac.fusion.engine import FusionEngine, NodeResult, SensingJob, sense_capture
from sdr_isac.fusion.records import Handover, TargetEstimate, Track, measured_flags
from sdr_isac.recording import RecordingWriter, write_collection
from sdr_isac.recording._atomic import write_json
from sdr_isac.recording.append import append_capture
from sdr_isac.stream import wire
from sdr_isac.stream.security import Refusals, describe_handshake_failure, secure_server
from sdr_isac.waveform import ofdm

__all__ = ["FusionHost", "NodeStats"]


_KEEP_RESULTS = 1000        # results kept per node (older ones are dropped: a long run must not grow memory)
_KEEP_DETECTIONS = 20000    # ... and detections in them, in all (a result of 10000 detections keeps some 9 MB)
_KEEP_TRUTH_ITEMS = 20000   # JSON values of a result's truth kept with it (4 MiB of "[{},{},...]": some 100 MB)
_KEEP_HEARTBEAT_KEYS = 256  # scalar counters kept of a heartbeat's stats
_KEEP_ERRORS = 100
_KEEP_HANDOVERS = 1000      # handovers kept for tracks.json (the count goes on)
#: fused sets of later instants a host with ``expected_nodes`` holds while an earlier instant waits for a node
HOLD_INSTANTS = 16
_TAIL = 8                   # history positions published with each track (displays)
_KEEP_OUTAGES = 100         # outages kept per node (the count goes on)
_MAX_NODES = 1024
#: largest |receive time - sent_s| kept as a latency, s (about 11 days: a node clock that far off, or a forged
#: sent_s, is counted in ``latency_implausible`` instead, and the latency statistics stay finite)
MAX_LATENCY_S = 1e6
_RATE_WINDOW = 32           # receive times kept per node for its rate
_PRESENCE_CHECK_S = 0.5     # presence is checked at least this often, even while messages keep coming
_log = logging.getLogger(__name__)


def _log_now(count: int) -> bool:
    """Log the 1st ... 10th of a kind, then the 100th, 1000th, ...: a flood of bad messages cannot flood the log."""
    return count <= 10 or str(count).rstrip("0") == "1"


class NodeStats:
    """Counters of one node at the host (bounded: running latency statistics, the last results only)."""

    def __init__(self) -> None:
        self.received = 0
        self.processed = 0
        self.lost = 0
        self.restarts = 0
        self.failed = 0
        self.overflow = 0
        self.last_seq: int | None = None
        self.latency_sum_s = 0.0
        self.latency_max_s: float | None = None
        self.latency_count = 0
        self.latency_last_s: float | None = None
        self.latency_implausible = 0
        self.arrivals: deque[float] = deque(maxlen=_RATE_WINDOW)
        self.heartbeat: dict[str, Any] = {}
        self.detections: deque[dict[str, Any]] = deque()       # bounded by keep(): results and detections
        self.kept_detections = 0
        self.truth_dropped = 0
        self.state = "present"
        self.last_seen_s: float | None = None
        self.last_beat_seq: int | None = None
        self.outage: wire.Outage | None = None          # the one going on
        self.outages: deque[wire.Outage] = deque(maxlen=_KEEP_OUTAGES)
        self.outages_total = 0
        self.status_seq = 0
        self.t0_backwards = 0
        self.t0_gaps = 0
        self.t0_gap_max_s = 0.0
        self.last_t0_s: float | None = None
        self.period_s: float | None = None              # the node's frame period, s (known or learned)

    def on_seen(self, msg: wire.Message, received_s: float) -> wire.Outage | None:
        """Note a message from the node (before :meth:`on_seq`); returns the outage it ends, if any."""
        ended = None
        if self.state == "absent" and self.outage is not None:
            restarted, missed, source = self._missed(msg, received_s - self.outage.start_s)
            ended = dataclasses.replace(self.outage, end_s=max(received_s, self.outage.start_s),
                                        frames_missed=missed, frames_missed_from=source, restarted=restarted)
            self.outages.append(ended)
            self.outage = None
        if msg.kind == "heartbeat":
            self.last_beat_seq = msg.seq
        self.state = "finished" if msg.kind == "heartbeat" and msg.header["stats"].get("final") is True \
            else "present"
        self.last_seen_s = received_s
        return ended

    def _missed(self, msg: wire.Message, silence_s: float) -> tuple[bool, int, str]:
        """(restarted, frames missed, from what) for the first message after a silence of ``silence_s``."""
        if msg.kind == "heartbeat":
            started = msg.header["stats"].get("started_s")
            restarted = (started is not None and self.heartbeat.get("started_s") not in (None, started)) or \
                (self.last_beat_seq is not None and msg.seq <= self.last_beat_seq)
        else:
            restarted = self.last_seq is not None and msg.seq <= self.last_seq
        if msg.kind != "heartbeat" and not restarted and self.last_seq is not None:
            return False, msg.seq - self.last_seq - 1, "sequence"
        rate = self.rate_hz() or 0.0
        return restarted, int(round(rate * max(silence_s, 0.0))), "rate"

    def check_absent(self, now_s: float, limit_s: float) -> bool:
        """Mark the node absent when it has been silent for more than ``limit_s``; True when it just became so."""
        if self.state != "present" or self.last_seen_s is None or now_s - self.last_seen_s <= limit_s:
            return False
        self.state = "absent"
        self.outage = wire.Outage(start_s=self.last_seen_s)
        self.outages_total += 1
        return True

    def status(self, node_id: str) -> wire.NodeStatus:
        """This node's state, for a ``status`` message (counts the status sequence number)."""
        seq = self.status_seq
        self.status_seq += 1
        outage = self.outage if self.outage is not None else (self.outages[-1] if self.outages else None)
        return wire.NodeStatus(node_id, seq, self.state, self.last_seen_s,
                               self.outage.start_s if self.outage is not None else None,
                               outage if self.state != "finished" else None, self.outages_total)

    def keep(self, result: dict[str, Any]) -> None:
        """Keep one processed result: the last :data:`_KEEP_RESULTS`, and of them no more than
        :data:`_KEEP_DETECTIONS` detections in all (a node that sends 10000 detections a message must not grow
        memory by gigabytes)."""
        self.detections.append(result)
        self.kept_detections += len(result["detections"])
        while len(self.detections) > 1 and (len(self.detections) > _KEEP_RESULTS
                                            or self.kept_detections > _KEEP_DETECTIONS):
            self.kept_detections -= len(self.detections.popleft()["detections"])

    def kept_truth(self, truth: Any) -> Any:
        """``truth`` to keep with a result: None where it is larger than :data:`_KEEP_TRUTH_ITEMS` JSON values
        (counted in ``truth_dropped``; a simulated scene's paths are far fewer)."""
        if truth is None or _json_items(truth, _KEEP_TRUTH_ITEMS) <= _KEEP_TRUTH_ITEMS:
            return truth
        self.truth_dropped += 1
        return None

    def on_latency(self, latency_s: float) -> None:
        """Add one message's latency (receive time minus the sender's timestamp); one beyond
        :data:`MAX_LATENCY_S` (a node clock years off, or a forged ``sent_s``) is not a latency and is not kept,
        so that the counters stay finite."""
        if not (math.isfinite(latency_s) and abs(latency_s) <= MAX_LATENCY_S):
            self.latency_implausible += 1
            return
        self.latency_sum_s += latency_s
        self.latency_count += 1
        self.latency_max_s = latency_s if self.latency_max_s is None else max(self.latency_max_s, latency_s)
        self.latency_last_s = latency_s

    def on_arrival(self, received_s: float) -> None:
        """Note one message's arrival time, s (for :meth:`rate_hz`)."""
        self.arrivals.append(received_s)

    def rate_hz(self) -> float | None:
        """Messages per second over the last 32 arrivals (None before two)."""
        if len(self.arrivals) < 2 or self.arrivals[-1] <= self.arrivals[0]:
            return None
        return (len(self.arrivals) - 1) / (self.arrivals[-1] - self.arrivals[0])

    def on_t0(self, seq: int, t0_s: float, period_s: float | None, contiguous: bool = True) -> str | None:
        """Check sample-time continuity of a capture (or detections) message: its ``t0_s`` against the last.

        Call before :meth:`on_seq`.  ``period_s``: the capture's duration (samples / sample rate), the step
        of a node that captures back to back; None (a detections message) learns it as the smallest step
        per frame seen so far.  With the sequence ``k`` frames on (frames lost on the way are already in
        ``lost``), ``t0_s`` must lie ``k`` periods on within 1 % of a period: a step back counts in
        ``t0_backwards``, any other mismatch (samples missing or overlapping at the radio) in ``t0_gaps``.
        A sequence that goes back (a restart) starts the check again.  ``contiguous`` False (a radio whose
        captures are not back to back on one sample clock: a Pluto stamps buffers with the host clock, a USRP
        starts each capture at a timed command) checks only that ``t0_s`` goes forward.  Returns
        ``"backwards"``, ``"gap"`` or None.
        """
        last_t0, last_seq = self.last_t0_s, self.last_seq
        self.last_t0_s = t0_s
        if period_s is not None and 0 < period_s < math.inf:
            self.period_s = period_s
        if last_t0 is None or last_seq is None or seq <= last_seq:
            return None
        step = t0_s - last_t0
        frames = seq - last_seq
        if step <= 0.0:
            self.t0_backwards += 1
            return "backwards"
        if not contiguous:
            return None
        if period_s is None:                             # learned: the smallest step per frame so far
            per_frame = step / frames
            self.period_s = per_frame if self.period_s is None else min(self.period_s, per_frame)
        period = self.period_s or step / frames
        tolerance_s = 0.01 * period + 8 * np.finfo(np.float64).eps * max(abs(t0_s), 1.0)
        off_s = step - frames * period
        if abs(off_s) > tolerance_s:
            self.t0_gaps += 1
            self.t0_gap_max_s = max(self.t0_gap_max_s, abs(off_s))
            return "gap"
        return None

    def on_seq(self, seq: int) -> None:
        """Count gaps; a sequence that goes back means the node restarted."""
        if self.last_seq is not None:
            if seq > self.last_seq + 1:
                self.lost += seq - self.last_seq - 1
            elif seq <= self.last_seq:
                self.restarts += 1
        self.last_seq = seq

    def settled(self) -> bool:
        """Every received message processed, failed or dropped."""
        return self.processed + self.failed + self.overflow >= self.received

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"received": self.received, "processed": self.processed, "failed": self.failed,
                "dropped_at_host": self.overflow, "lost": self.lost,
                "restarts": self.restarts, "last_seq": self.last_seq,
                "latency_mean_s": self.latency_sum_s / self.latency_count if self.latency_count else None,
                "latency_max_s": self.latency_max_s, "latency_last_s": self.latency_last_s,
                "rate_hz": self.rate_hz(),
                "node_sent": self.heartbeat.get("frames_sent"), "node_dropped": self.heartbeat.get("frames_dropped"),
                "node_captured": self.heartbeat.get("captured"),
                "state": self.state, "last_seen_s": self.last_seen_s,
                "absent_since_s": self.outage.start_s if self.outage is not None else None,
                "outages_total": self.outages_total,
                "t0_backwards": self.t0_backwards, "t0_gaps": self.t0_gaps, "t0_gap_max_s": self.t0_gap_max_s,
                "period_s": self.period_s, "latency_implausible": self.latency_implausible,
                "kept_detections": self.kept_detections, "truth_dropped": self.truth_dropped,
                "outages": [o.to_dict() for o in self.outages] + ([self.outage.to_dict()] if self.outage else [])}



def _json_items(value: Any, budget: int) -> int:
    """How many JSON values ``value`` holds (containers and scalars), counted up to just past ``budget``."""
    count, stack = 0, [value]
    while stack and count <= budget:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return count


def _counters(stats: dict[str, Any]) -> dict[str, Any]:
    """A heartbeat's ``stats`` as kept: its scalar entries, at most :data:`_KEEP_HEARTBEAT_KEYS` of them (a node's
    counters; a nested tree of megabytes is not kept)."""
    kept: dict[str, Any] = {}
    for key, value in stats.items():
        if len(kept) >= _KEEP_HEARTBEAT_KEYS:
            break
        if value is None or isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= 256):
            kept[key] = value
    return kept


def _capture_period_s(msg: wire.Message) -> float | None:
    """A capture message's t0 step, s: its ``metadata.frame_interval_s`` (a simulated radio that captures
    every so many frames, ``radio.frame_interval_s``; the wire checked it), else its duration (samples /
    sample rate: the step of back-to-back captures); None for another kind or a capture without samples."""
    if msg.kind != "capture" or not msg.arrays or not msg.arrays[0].shape:
        return None
    meta = msg.header.get("metadata")
    interval = meta.get("frame_interval_s") if isinstance(meta, dict) else None
    if isinstance(interval, int | float) and not isinstance(interval, bool) and interval > 0:
        return float(interval)
    rate = msg.header.get("sample_rate_hz")
    samples = msg.arrays[0].shape[-1]
    if not (isinstance(rate, int | float) and rate > 0 and samples > 0):
        return None
    period = samples / float(rate)
    return period if math.isfinite(period) else None           # a rate of 5e-324 Hz: no period


def _sample_clock(msg: wire.Message) -> bool:
    """Whether a node's messages stamp ``t0_s`` on one sample clock, back to back (the simulated and the
    replayed radio); a real radio's captures are neither (gaps between them are normal)."""
    meta = msg.header.get("metadata") if msg.kind == "capture" else None
    source = wire.radio_of(meta) if isinstance(meta, dict) else msg.header.get("radio")
    return source in wire.TRUTH_SOURCES


class _Guard:
    """The one guard of every step of the host's threads: an exception in handling one message is counted,
    logged and dropped, never the end of a thread (:meth:`FusionHost._guard` makes one)."""

    def __init__(self, host: FusionHost, where: str, node_id: str | None, rejects: bool) -> None:
        self.host, self.where, self.node_id, self.rejects = host, where, node_id, rejects
        self.failed = False

    def __enter__(self) -> _Guard:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> bool:
        if err is None or not isinstance(err, Exception):
            return False                                  # KeyboardInterrupt, SystemExit: not ours to keep
        self.failed = True
        self.host._count_failure(self.where, err, self.node_id, self.rejects)
        return True


def _loopback(endpoint: str) -> bool:
    """Whether a ZeroMQ endpoint stays on this machine (inproc, ipc, or TCP on a loopback address)."""
    if not endpoint.startswith("tcp://"):
        return True
    address = endpoint[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    return address in ("localhost", "::1") or address.startswith("127.")


def _bind(sock: zmq.Socket, endpoint: str, key: str, flag: str) -> None:
    """Bind ``sock`` to ``endpoint``; a failure (port in use, an address not of this machine) is a ConfigError."""
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as err:
        raise ConfigError(f"stream.{key} = {endpoint!r}: cannot bind ({err.strerror}); another host or program may "
                          f"hold that port, or the address is not one of this machine's: stop it, or choose another "
                          f"endpoint (stream.{key}, or {flag} of sdr-isac host)", key=f"stream.{key}") from err


class FusionHost:
    """Receives, senses and publishes.

    Parameters
    ----------
    cfg : Config
        ``stream`` gives the endpoints and limits; ``sensing`` the processing;
        ``frame`` the waveform of captures that carry none.
    record_dir : str or Path, optional
        Record every node's captures to ``record_dir/<node>.sigmf-meta``.
    context : zmq.Context, optional
    out_dir : str or Path, optional
        The host's output folder: a relative ``twin.db`` (SQLite) is placed here (default: the current folder).
    expected_nodes : iterable of str, optional
        The nodes this host serves (``sdr-isac host --nodes``).  With tracking, an instant's fused set then
        waits for every one of them that is not absent (a node whose process started late, or senses
        slower, lags the others by several frames) before the tracker takes it, up to
        :data:`HOLD_INSTANTS` later instants (a node never heard from is waited for that long, then the
        tracks lag by that many instants); without, the tracker takes an instant's set once a later
        instant's set arrives.
    """

    def __init__(self, cfg: config_mod.Config, record_dir: str | Path | None = None,
                 context: zmq.Context | None = None, out_dir: str | Path | None = None,
                 expected_nodes: Iterable[str] | None = None):
        expected = None if expected_nodes is None or isinstance(expected_nodes, str | bytes) \
            else list(expected_nodes)
        if expected_nodes is not None and (expected is None or not all(isinstance(n, str) and n for n in expected)):
            raise InputError(f"expected_nodes = {expected_nodes!r}: allowed an iterable of node ids (non-empty "
                             "strings), e.g. ['bs_a0', 'bs_a1'], or None")
        self.expected_nodes = frozenset(expected or ())
        self._held_sets: dict[float, tuple[frozenset[str], list[TargetEstimate]]] = {}
        self.cfg = cfg
        self.node_id = cfg.host.node_id
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.context = context or zmq.Context.instance()
        self.nodes: dict[str, NodeStats] = defaultdict(NodeStats)
        self.rejected = 0
        self.overflow = 0
        self.aligned_sets = 0
        self.errors: deque[str] = deque(maxlen=_KEEP_ERRORS)
        self.errors_total = 0
        self.ignored_nodes = 0
        self.refusals = Refusals()
        self.handshake_failures = 0
        self._queue: queue.Queue[wire.Message | None] = queue.Queue(maxsize=cfg.stream.queue_size)
        self._stop = threading.Event()
        self._record_dir = Path(record_dir) if record_dir else None
        self._writers: dict[str, RecordingWriter] = {}
        self._recent_t0: dict[str, float] = {}
        self.last_results: dict[str, tuple[Any, Any]] = {}      # node -> (SensingResult, truth paths)
        self.estimates: deque[dict[str, Any]] = deque(maxlen=1000)  # fused sets: seq, t0_s, nodes, estimates
        self._fused_keys: deque[tuple[tuple[str, int], ...]] = deque(maxlen=1000)
        self._estimate_seq = 0
        self.engine = FusionEngine(cfg)                          # sensing settings, fusion modes: no sockets
        self.tracks: list[Track] = []                            # the latest tracks, each with its tail
        self.handovers: deque[tuple[str, Handover]] = deque(maxlen=_KEEP_HANDOVERS)
        self.tracking: dict[str, Any] = {"steps": 0, "same_t0": 0, "out_of_order": 0, "started": 0, "handovers": 0,
                                         "not_sent": 0, "failed": 0, "t0_s": None}
        self._tracks_seq = 0
        self._tails: dict[str, deque[tuple[float, Any, Any, bool | None]]] = {}
        self._tracker: Any = None
        self._held_set: tuple[float, int, list[TargetEstimate]] | None = None
        if cfg.tracking.enabled:
            from sdr_isac.fusion.tracking import Tracker  # Stone Soup: imported only by a tracking host

            self._tracker = Tracker(cfg.tracking, station=self.node_id, id_prefix=f"{self.node_id}-")
        self._twin: Any = None                                   # a TwinWriter, made by start()
        self.twin_path: str | None = None
        self.twin_skipped = 0                                    # detections the twin cannot hold (not finite)
        self._executor: Executor | None = None                   # made by start(): where captures are sensed
        self._max_in_flight = 1
        self._lock = threading.Lock()
        self._pub_lock = threading.Lock()
        self._pull = self.context.socket(zmq.PULL)
        self._pub = self.context.socket(zmq.PUB)
        self._auth = None
        self._monitors: dict[zmq.Socket, str] = {}
        try:
            self._pull.setsockopt(zmq.LINGER, 0)
            self._pull.setsockopt(zmq.RCVHWM, 64)
            self._pull.setsockopt(zmq.MAXMSGSIZE, int(cfg.stream.max_message_mb * 2**20))
            self._pub.setsockopt(zmq.LINGER, 0)
            self._pub.setsockopt(zmq.SNDHWM, 64)
            self._auth = secure_server(self._pull, self.context, cfg.stream, domain="nodes", refusals=self.refusals)
            secure_server(self._pub, self.context, cfg.stream, domain="subscribers",
                          allowed=cfg.stream.curve_subscribers_allowed, auth=self._auth)
            events = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            self._monitors = {self._pull.get_monitor_socket(events): "nodes",
                              self._pub.get_monitor_socket(events): "subscribers"}
            _bind(self._pull, cfg.stream.host_endpoint, "host_endpoint", "--endpoint")
            if self._auth is None and not _loopback(cfg.stream.host_endpoint):
                _log.warning("stream.host_endpoint = %r without CURVE: anything that reaches it may send; ZeroMQ "
                             "bounds each frame (stream.max_message_mb), not how many frames a message has, "
                             "which the host checks only once it is received: set stream.curve_server_secret "
                             "(sdr-isac keys) on a network others share", cfg.stream.host_endpoint)
            _bind(self._pub, cfg.stream.publish_endpoint, "publish_endpoint", "--publish")
        except BaseException:
            self._close_sockets()
            raise
        self._threads = [threading.Thread(target=self._receive, name="host-receive", daemon=True),
                         threading.Thread(target=self._work, name="host-work", daemon=True)]
        self._alive_at_stop: tuple[bool, bool] | None = None

    # ---- life cycle ---------------------------------------------------------------
    def start(self) -> FusionHost:
        """Start the executor that senses captures (``cfg.host``), then the receiving and processing threads.

        ``host.executor``: ``thread`` senses in the processing thread; ``process`` on a local pool of
        ``host.workers`` processes; ``dask`` on the cluster at ``host.scheduler`` (or a local one of
        ``host.workers``).  At most ``host.max_in_flight`` captures (0: twice the workers) are sensed at
        once; results are taken, published and fused in the order the captures arrived.

        The process's C allocator (and that of the host's own ``process`` pool workers, not of Dask workers)
        then keeps the memory it frees for the next allocations (:func:`sdr_isac.executors.keep_freed_memory`,
        process-wide, glibc only): the resident size stays at its peak instead of faulting each message's
        pages in anew.
        """
        host_cfg = self.cfg.host
        # every capture's message buffer (MiB) and its maps are made and freed anew: without this glibc returns
        # the memory to the system and faults every page in again for the next (about 40-100 page faults per
        # 4 MiB capture received, some 0.1-0.2 ms of CPU; scripts/bench_stream.py)
        keep_freed_memory()
        try:
            self._executor = make_executor(host_cfg.executor, host_cfg.workers or None, host_cfg.scheduler or None)
        except BaseException:
            self._close_sockets()
            raise
        self._max_in_flight = host_cfg.max_in_flight or 2 * self._executor.workers
        if self.cfg.twin.enabled:
            self._start_twin()
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop receiving, process what is already queued, close sockets and finish the recordings."""
        if self._alive_at_stop is None:
            self._alive_at_stop = (self._threads[0].is_alive(), self._threads[1].is_alive())
        self._stop.set()
        receiver, worker = self._threads
        if receiver.is_alive():
            receiver.join(timeout_s)
        if worker.is_alive():
            try:
                self._queue.put(None, timeout=timeout_s)     # behind everything queued: the worker drains first
            except queue.Full:
                pass
            worker.join(timeout_s)
        if self._executor is not None and not worker.is_alive():
            with self._guard("closing the executor"):
                self._executor.close()
            self._executor = None
        if not worker.is_alive():
            self.flush_tracking()
        if self._twin is not None:
            with self._guard("closing the twin"):
                self._twin.close(timeout_s)
        for writer in self._writers.values():
            with self._guard("closing a recording"):
                writer.close()
        metas = [w.meta_path for w in self._writers.values() if w.meta_path.exists()]
        if self._record_dir is not None and metas:
            with self._guard("writing the run's collection"):        # one .sigmf-collection ties the run's nodes
                write_collection(self._record_dir / "run", metas, overwrite=True, verify_checksum=False,
                                 description=f"sdr-isac host run, {len(metas)} node(s)")
        self._close_sockets()

    def _close_sockets(self) -> None:
        for monitor in self._monitors:
            monitor.close(linger=0)
        for sock in (self._pull, self._pub):
            try:
                sock.disable_monitor()
            except zmq.ZMQError:
                pass
            sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()

    def __enter__(self) -> FusionHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        """Counters per node and overall, and whether the host's threads are alive.

        ``receiver_alive`` / ``worker_alive``: the receiving / processing thread runs (after :meth:`stop`:
        whether it still ran when the host was stopped; False while the host runs is a bug); ``rejected``: messages
        that did not decode, and captures with a NaN or infinite sample (found where the samples are read: the
        sensing, or the recorder); ``errors_total`` and the last 20 ``errors``: other failures, each logged;
        ``refused``: every refused or failed handshake (``total``, ``by_client``: per socket, mechanism, client
        key and reason); ``handshake_failures``: of them, those that failed before authentication (the wrong
        host key, CURVE on one side only: no client key known); ``absent_nodes``: nodes silent now.
        """
        alive = self._alive_at_stop or (self._threads[0].is_alive(), self._threads[1].is_alive())
        refused = self.refusals.to_dict()
        with self._lock:
            return {"receiver_alive": alive[0], "worker_alive": alive[1], "stopped": self._stop.is_set(),
                    "nodes": {k: v.to_dict() for k, v in sorted(self.nodes.items())}, "rejected": self.rejected,
                    "queue_overflow": self.overflow, "aligned_sets": self.aligned_sets,
                    "ignored_nodes": self.ignored_nodes, "errors_total": self.errors_total,
                    "errors": list(self.errors)[-20:], "refused": refused,
                    "handshake_failures": self.handshake_failures,
                    "absent_nodes": sorted(k for k, v in self.nodes.items() if v.state == "absent"),
                    "node_id": self.node_id,
                    "t0_backwards": sum(v.t0_backwards for v in self.nodes.values()),
                    "t0_gaps": sum(v.t0_gaps for v in self.nodes.values()),
                    "tracking": ({**self.tracking, "tracks": len(self.tracks),
                                  "confirmed": sum(t.status == "confirmed" for t in self.tracks)}
                                 if self._tracker is not None else None),
                    "twin": self._twin_stats()}

    # ---- the guard ----------------------------------------------------------------
    def _guard(self, where: str, node_id: str | None = None, *, rejects: bool = False) -> _Guard:
        """A context that keeps a thread alive through any exception of one step (and counts it).

        ``rejects``: the step decodes a received message, so a failure counts in ``rejected``;
        ``node_id``: the step handles that node's capture, so a failure also counts in its ``failed``.
        """
        return _Guard(self, where, node_id, rejects)

    def _count_failure(self, where: str, err: Exception, node_id: str | None, rejects: bool) -> None:
        # a capture's samples are checked where they are read (decode leaves them to the sensing): a NaN or an
        # infinity found there is a malformed message too
        rejects = rejects or isinstance(err, NonFiniteSampleError)
        detail = str(err) if isinstance(err, SdrIsacError) else f"{type(err).__name__}: {err}"
        with self._lock:
            if rejects:
                self.rejected += 1
                count = self.rejected
                text = f"rejected {where}: {detail}"
            else:
                self.errors_total += 1
                count = self.errors_total
                text = f"{where}: {detail}"
            if node_id is not None and node_id in self.nodes:
                self.nodes[node_id].failed += 1
            self.errors.append(text[:500])
        if not isinstance(err, SdrIsacError):             # a bug: its traceback goes to the log
            _log.error("%s", text[:500], exc_info=err if _log_now(count) else None)
        elif _log_now(count):
            _log.warning("%s (%d so far)", text[:500], count)

    def write_stats(self, path: str | Path) -> None:
        """Write :meth:`stats` as JSON (atomically)."""
        write_json(Path(path), self.stats())

    # ---- threads ------------------------------------------------------------------
    def _receive(self) -> None:
        poller = zmq.Poller()
        poller.register(self._pull, zmq.POLLIN)
        for monitor in self._monitors:
            poller.register(monitor, zmq.POLLIN)
        max_bytes = int(self.cfg.stream.max_message_mb * 2**20)
        next_check = 0.0
        while not self._stop.is_set():
            with self._guard("receive loop") as step:
                ready = dict(poller.poll(100))
                for monitor, name in self._monitors.items():
                    if monitor in ready:
                        self._on_monitor(monitor, name)
                if self._pull in ready:
                    self._receive_one(max_bytes)
                now = time.time()
                if self._pull not in ready or now >= next_check:   # after draining: a busy host is not a gone node
                    next_check = now + _PRESENCE_CHECK_S
                    self._check_presence(now)
            if step.failed:
                self._stop.wait(0.01)                      # never a hot loop of one recurring failure

    def _receive_one(self, max_bytes: int) -> None:
        """Take one message from the PULL socket: decode it (a failure counts in ``rejected``) and account it."""
        try:
            frames = self._pull.recv_multipart(copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            return
        received_s = time.time()
        with self._guard(f"message of {len(frames)} frames", rejects=True) as decoding:
            # every capture sample is checked once, where it is read: before the recorder writes it when recording,
            # else by the sensing (Capture.check_samples, remembered: see _submit)
            msg = wire.decode(frames, max_bytes=max_bytes, consumer_checks=("capture",))
        if decoding.failed:
            return
        with self._guard(f"{msg.kind} {msg.node_id}/{msg.seq}"):
            self._account(msg, received_s)

    def _on_monitor(self, monitor: zmq.Socket, name: str) -> None:
        """Count a failed handshake on a server socket (those the ZAP handler does not see), and log it."""
        from zmq.utils.monitor import recv_monitor_message

        event = recv_monitor_message(monitor, flags=zmq.NOBLOCK)
        what = describe_handshake_failure(int(event["event"]), int(event["value"]))
        with self._lock:
            self.handshake_failures += 1
        self.refusals.add(name, "handshake", "(unknown: not authenticated)", what)      # counts and logs it

    def _check_presence(self, now_s: float) -> None:
        """Mark nodes silent for ``absent_after_heartbeats`` heartbeat intervals absent, and publish it."""
        limit_s = self.cfg.stream.absent_after_heartbeats * self.cfg.stream.heartbeat_s
        with self._lock:
            gone = [(node_id, node.status(node_id)) for node_id, node in self.nodes.items()
                    if node.check_absent(now_s, limit_s)]
        for node_id, status in gone:
            _log.warning("node %s absent: nothing heard from it for %.3g s (stream.absent_after_heartbeats = %d "
                         "x stream.heartbeat_s = %g s)", node_id, now_s - (status.absent_since_s or now_s),
                         self.cfg.stream.absent_after_heartbeats, self.cfg.stream.heartbeat_s)
            self._send(wire.encode_status(status))

    def _account(self, msg: wire.Message, received_s: float) -> None:
        if msg.kind not in ("capture", "detections", "heartbeat"):
            with self._lock:
                self.errors_total += 1
                self.errors.append(f"{msg.node_id}/{msg.seq}: {msg.kind} messages are not taken by a host")
            return
        with self._lock:
            if msg.node_id not in self.nodes and len(self.nodes) >= _MAX_NODES:
                self.ignored_nodes += 1                  # a flood of made-up node ids must not grow memory
                return
            node = self.nodes[msg.node_id]
            ended = node.on_seen(msg, received_s)
            back = node.status(msg.node_id) if ended is not None else None
        if back is not None and ended is not None:
            _log.warning("node %s back after %.3g s: %d frame(s) missed (from its %s)%s", msg.node_id,
                         ended.duration_s or 0.0, ended.frames_missed or 0, ended.frames_missed_from,
                         ", restarted" if ended.restarted else "")
            self._send(wire.encode_status(back))
        with self._lock:
            if msg.kind == "heartbeat":
                node.heartbeat = _counters(msg.header["stats"])
                return
            node.received += 1
            jump = node.on_t0(msg.seq, msg.t0_s, _capture_period_s(msg), _sample_clock(msg))
            node.on_seq(msg.seq)
            node.on_latency(max(received_s - msg.sent_s, 0.0))
            node.on_arrival(received_s)
            self._align(msg)
        if jump is not None and _log_now(node.t0_backwards if jump == "backwards" else node.t0_gaps):
            _log.warning("node %s: capture time %s at seq %d (t0 = %.9g s; node period %.6g s)", msg.node_id,
                         "went backwards" if jump == "backwards" else "jumped", msg.seq, msg.t0_s,
                         node.period_s or float("nan"))
        if msg.kind == "detections":
            truth = msg.header.get("truth") if msg.header.get("radio") in wire.TRUTH_SOURCES else None
            record = NodeResult(msg.node_id, msg.seq, msg.t0_s, tuple(wire.decode_detections(msg)))
            self._publish_detections(msg.node_id, msg.seq, msg.t0_s, msg.header["detections"], truth)
            self._twin_detections(msg.node_id, msg.t0_s, record.detections)
            with self._lock:
                node.processed += 1
                node.keep({"seq": msg.seq, "t0_s": msg.t0_s, "detections": msg.header["detections"],
                           "truth": node.kept_truth(truth), "record": record})
            return
        if msg.kind == "capture":
            try:
                self._queue.put_nowait(msg)
            except queue.Full:
                with self._lock:
                    self.overflow += 1
                    self.nodes[msg.node_id].overflow += 1

    def _align(self, msg: wire.Message) -> None:
        """Count captures of other nodes within the alignment window of this one (a time-aligned set)."""
        self._recent_t0[msg.node_id] = msg.t0_s
        others = [t for n, t in self._recent_t0.items() if n != msg.node_id]
        if others and all(abs(t - msg.t0_s) <= self.cfg.stream.align_window_s for t in others):
            self.aligned_sets += 1

    def _work(self) -> None:
        """Submit queued captures to the executor and finish them in arrival order (bounded in flight).

        Ends at the None that :meth:`stop` queues, after every capture in flight is finished.
        """
        pending: deque[_Pending] = deque()
        draining = False
        while not (draining and not pending):
            with self._guard("work loop") as step:
                full = len(pending) >= self._max_in_flight
                self._finish_ready(pending, wait=full or draining)
                if not (draining or full):
                    draining = self._take_one(pending)
            if step.failed:
                self._stop.wait(0.01)                      # never a hot loop of one recurring failure

    def _take_one(self, pending: deque[_Pending]) -> bool:
        """Take the next queued capture and submit it; True at the None that :meth:`stop` queues."""
        try:
            msg = self._queue.get(timeout=0.005 if pending else 0.1)
        except queue.Empty:
            return False
        if msg is None:
            return True
        with self._guard(f"capture {msg.node_id}/{msg.seq}", msg.node_id):
            item = self._submit(msg)
            if item is not None:
                pending.append(item)
        return False

    def _submit(self, msg: wire.Message) -> _Pending | None:
        """Decode a capture (a failure counts in ``rejected``), record it and submit its sensing."""
        with self._guard(f"capture {msg.node_id}/{msg.seq}", msg.node_id, rejects=True) as decoding:
            # its iq is a read-only view of the received message, which only this host holds and nothing writes:
            # the samples are read for their check once, by the recorder or the first sensing job, whose result
            # the others take (Capture.checked_once; a worker process gets the result with the pickled copy,
            # or, not recording, checks once there)
            capture = wire.decode_capture(msg).checked_once()
        if decoding.failed:
            return None
        self._record(capture)
        jobs = self.engine.sensing_jobs(capture)
        if self._executor is None:
            raise SdrIsacError("the host's executor is not started: call start() first")
        display_cells = self.cfg.stream.map_max_cells if self.cfg.stream.publish_maps else 0
        return _Pending(msg, capture, jobs, self._executor.submit(
            _sense, capture, jobs, display_cells, self._executor.kind == "thread", self._executor.kind == "process"))

    def _finish_ready(self, pending: deque[_Pending], wait: bool) -> None:
        """Finish the oldest captures whose sensing is done (waiting up to 50 ms for the oldest when ``wait``)."""
        if pending and wait and not pending[0].future.done():
            _wait_for(pending[0].future, 0.05)
        while pending and pending[0].future.done():
            item = pending.popleft()
            with self._guard(f"capture {item.msg.node_id}/{item.msg.seq}", item.msg.node_id):
                self._finish(item)

    def _finish(self, item: _Pending) -> None:
        """Publish a sensed capture's detections (and map), keep its result, then the RIS and fusion steps."""
        msg, capture = item.msg, item.capture
        where = f"capture {msg.node_id}/{msg.seq}"
        sensed: _Sensed = item.future.result()
        result, frame, sensing_cfg = sensed.results[0], item.jobs[0].frame, item.jobs[0].config
        record = self.engine.node_result(capture, msg.seq, item.jobs, sensed.results)
        by_source = {source: [d.to_dict() for d in dets] for source, dets in record.by_source.items()}
        dets = [d.to_dict() for d in record.detections]
        truth = capture.metadata.get("truth") if wire.radio_of(capture.metadata) in wire.TRUTH_SOURCES else None
        self.last_results[capture.node_id] = (result, (truth or {}).get("paths", []))
        self._publish_detections(capture.node_id, msg.seq, capture.t0_s, dets, truth)
        self._twin_detections(capture.node_id, capture.t0_s, record.detections)
        if self.cfg.stream.publish_maps and sensed.num_channels:
            with self._guard(f"{where}: map not published"):
                self._publish_map(capture.node_id, msg.seq, capture.t0_s, sensed, truth, sensing_cfg)
        with self._lock:
            node = self.nodes[capture.node_id]
            node.processed += 1
            node.keep({"seq": msg.seq, "t0_s": capture.t0_s, "detections": dets, "truth": node.kept_truth(truth),
                       "by_source": by_source, "record": record})
        if capture.metadata.get("ris") and result.csi is not None:
            with self._guard(f"RIS scan at {msg.node_id}/{msg.seq}"):
                for sighting in self.engine.ris_step(capture, msg.seq, result.csi, frame, truth):
                    self._publish_estimates(sighting.t0_s, {capture.node_id: sighting.seq}, [sighting.estimate],
                                            sighting.truth,
                                            [wire.ris_details(sighting.ris_id, sighting.found, sighting.frames)])
        if self.cfg.fusion.enabled:
            with self._guard(f"fusion after {msg.node_id}/{msg.seq}"):
                self._fuse(capture.node_id, msg.seq, capture.t0_s)

    def passive_source(self, node_id: str) -> str:
        """The one transmitter a receive-only node hears (:meth:`FusionEngine.passive_source`)."""
        return self.engine.passive_source(node_id)

    def passive_sources(self, node_id: str) -> list[str]:
        """The transmitters a receive-only node hears (:meth:`FusionEngine.passive_sources`)."""
        return self.engine.passive_sources(node_id)

    def _fuse(self, node_id: str, seq: int, t0_s: float) -> None:
        """Fuse the result just processed with the other scene nodes' results of the same instant.

        For every other node of the scene, the result whose capture time lies
        within ``stream.align_window_s`` of this one (the closest) joins the
        set; a set of ``fusion.min_nodes`` (default 2) or more scene nodes is fused once by the engine
        (:meth:`sdr_isac.fusion.engine.FusionEngine.fuse`) and published as
        ``estimates/<[host] node_id>``.
        """
        if self.node_info(node_id) is None:
            return
        window = self.cfg.stream.align_window_s
        members: dict[str, dict[str, Any]] = {}
        with self._lock:
            for other, st in self.nodes.items():
                if other != node_id and st.detections:
                    best = min(st.detections, key=lambda item: abs(item["t0_s"] - t0_s))
                    if abs(best["t0_s"] - t0_s) <= window:
                        members[other] = best
            mine = [item for item in self.nodes[node_id].detections if item["seq"] == seq]
        places = [n for n in [node_id, *members] if self.node_info(n) is not None]
        if len(places) < self.cfg.fusion.min_nodes or not mine:
            return
        members[node_id] = mine[-1]
        key = tuple(sorted((n, int(members[n]["seq"])) for n in places))
        if key in self._fused_keys:
            return
        self._fused_keys.append(key)
        estimates = self.engine.fuse({n: members[n]["record"] for n in places}, t0_s)
        truth = [p for n in members for p in ((members[n].get("truth") or {}).get("paths") or [])
                 if p.get("kind") == "target" and "position_m" in p]
        self._publish_estimates(t0_s, dict(key), estimates, truth)

    def _publish_estimates(self, t0_s: float, nodes: dict[str, int], estimates: list[TargetEstimate],
                           truth: list[dict[str, Any]], details: list[dict[str, Any] | None] | None = None) -> None:
        """Keep a fused set in :attr:`estimates` (records and their wire objects), publish
        ``estimates/<host.node_id>``, hand it to the twin and the tracker."""
        objects = [wire.estimate_to_dict(e, **((details or [None] * len(estimates))[i] or {}))
                   for i, e in enumerate(estimates)]
        with self._lock:
            out_seq = self._estimate_seq
            self._estimate_seq += 1
            self.estimates.append({"seq": out_seq, "t0_s": t0_s, "nodes": nodes, "estimates": objects,
                                   "records": estimates, "truth": truth})
        self._send(wire.encode_estimates(self.node_id, out_seq, t0_s, estimates, details))
        self._twin_put(estimates)
        if self._tracker is not None:
            with self._guard(f"tracking at t0 = {t0_s:.9g} s"):
                if self.expected_nodes:
                    self._to_tracker_expected(t0_s, frozenset(nodes), estimates)
                else:
                    self._to_tracker(t0_s, len(nodes), estimates)

    # ---- tracking and the twin ------------------------------------------------------
    def _to_tracker(self, t0_s: float, num_nodes: int, estimates: list[TargetEstimate]) -> None:
        """Hold a fused set until the next instant: the set of an instant grows as its nodes' captures are
        sensed (nodes a, b, then a, b, c), so the tracker takes, per instant, the set of the most nodes once
        a later instant's set arrives (or at :meth:`stop`): tracks lag the estimates by one set.

        A set earlier than the instant held or tracked (a node's clock, or sets finishing out of order) is
        counted in ``tracking.out_of_order`` and left out; a smaller set of the held instant in
        ``tracking.same_t0``.
        """
        held = self._held_set
        last = self.tracking["t0_s"]
        if (last is not None and t0_s <= last) or (held is not None and t0_s < held[0]):
            with self._lock:
                self.tracking["out_of_order"] += 1
            return
        if held is not None and t0_s == held[0]:
            with self._lock:
                self.tracking["same_t0"] += 1
            if num_nodes >= held[1]:
                self._held_set = (t0_s, num_nodes, estimates)
            return
        self._held_set = (t0_s, num_nodes, estimates)
        if held is not None:
            self._track(held[0], held[2])

    def _to_tracker_expected(self, t0_s: float, nodes: frozenset[str], estimates: list[TargetEstimate]) -> None:
        """Hold a fused set until every expected node that is not absent is in its instant's set (or
        :data:`HOLD_INSTANTS` later instants are held), then track the held instants in time order.

        A set of an instant already tracked is counted in ``tracking.out_of_order`` and left out; a set of
        an instant held in ``tracking.same_t0`` (the larger set is kept).
        """
        last = self.tracking["t0_s"]
        if last is not None and t0_s <= last:
            with self._lock:
                self.tracking["out_of_order"] += 1
            return
        held = self._held_sets.get(t0_s)
        if held is not None:
            with self._lock:
                self.tracking["same_t0"] += 1
            if len(nodes) < len(held[0]):
                return
        self._held_sets[t0_s] = (nodes, estimates)
        with self._lock:
            waiting = {n for n in self.expected_nodes if not (n in self.nodes and self.nodes[n].state == "absent")}
        while self._held_sets:
            first = min(self._held_sets)
            if not waiting <= self._held_sets[first][0] and len(self._held_sets) <= HOLD_INSTANTS:
                break
            self._track(first, self._held_sets.pop(first)[1])

    def flush_tracking(self) -> None:
        """Track the set held back for its instant (:meth:`_to_tracker`; every held instant in time order with
        ``expected_nodes``, :meth:`_to_tracker_expected`); :meth:`stop` calls it."""
        while self._held_sets and self._tracker is not None:
            first = min(self._held_sets)
            _, estimates = self._held_sets.pop(first)
            with self._guard(f"tracking at t0 = {first:.9g} s"):
                self._track(first, estimates)
        held, self._held_set = self._held_set, None
        if held is not None and self._tracker is not None:
            with self._guard(f"tracking at t0 = {held[0]:.9g} s"):
                self._track(held[0], held[2])

    def _track(self, t0_s: float, estimates: list[TargetEstimate]) -> None:
        """Run the tracker on one fused set, keep the tracks (with their tails), publish ``tracks/<node_id>``.

        Runs on the worker thread (or in :meth:`stop`, after it ended).  An error of the tracker is counted
        in ``tracking.failed`` (and the guard's ``errors``).  Handovers of the scan are logged and travel in
        the tracks message.
        """
        try:
            live = self._tracker.step(t0_s, estimates)
        except Exception:
            with self._lock:
                self.tracking["failed"] += 1
            raise
        live_ids = {x.track_id for x in live}
        gone = [t for t in self.tracks if t.track_id not in live_ids]
        tracks = [self._with_tail(t) for t in live]
        for t in gone:
            self._tails.pop(t.track_id, None)
        new_handovers = [(t.track_id, h) for t in live for h in t.handovers if h.t_s == t0_s]
        with self._lock:
            known = {t.track_id for t in self.tracks}
            self.tracking["started"] += len(live_ids - known)
            self.tracking["steps"] += 1
            self.tracking["t0_s"] = t0_s
            self.tracking["handovers"] += len(new_handovers)
            self.handovers.extend(new_handovers)
            self.tracks = tracks
            seq = self._tracks_seq
            self._tracks_seq += 1
        for track_id, h in new_handovers:
            _log.info("track %s handed over at t0 = %.9g s: %s -> %s (%s)", track_id, h.t_s, h.from_station,
                      h.to_station, h.reason)
        self._send(self._encode_tracks(seq, t0_s, tracks))
        ended = [t.latest("deleted") for t in gone if t.num_states]      # the twin learns which tracks ended
        self._twin_put([*[t.latest() for t in tracks if t.num_states], *ended])

    def _with_tail(self, track: Track) -> Track:
        """``track`` (its latest state) with the states of its earlier scans here, up to :data:`_TAIL` + 1."""
        tail = self._tails.setdefault(track.track_id, deque(maxlen=_TAIL + 1))
        t = float(track.t_s[-1])
        measured = None if track.measured is None else bool(track.measured[-1])
        if not tail or tail[-1][0] < t:
            tail.append((t, track.states[-1], track.covariances[-1], measured))
        flags = [x[3] for x in tail]
        return Track(track.track_id, np.array([x[0] for x in tail]), np.array([x[1] for x in tail]),
                     np.array([x[2] for x in tail]), track.stations, track.handovers, track.status,
                     measured_flags(flags))

    def _encode_tracks(self, seq: int, t0_s: float, tracks: list[Track]) -> list[Any]:
        """The ``tracks`` message; a track the wire refuses (a covariance not positive definite, ...) is left
        out, counted in ``tracking.not_sent`` and logged, never the whole message."""
        try:
            return wire.encode_tracks(self.node_id, seq, t0_s, tracks, tail=_TAIL)
        except WireFormatError:
            pass
        good = []
        for t in tracks:
            try:
                wire.encode_tracks(self.node_id, seq, t0_s, [t], tail=_TAIL)
                good.append(t)
            except WireFormatError as err:
                with self._lock:
                    self.tracking["not_sent"] += 1
                    count = self.tracking["not_sent"]
                    self.errors.append(f"track {t.track_id} not published: {err}"[:500])
                if _log_now(count):
                    _log.warning("track %s not published: %s", t.track_id, err)
        return wire.encode_tracks(self.node_id, seq, t0_s, good, tail=_TAIL)

    def tracks_document(self) -> dict[str, Any]:
        """The latest tracks as ``tracks.json`` holds them: the host's id, the last ``tracks`` message's seq and
        t0_s, the wire's track objects (with up to 8 tail positions) and every handover kept (the last 1000)."""
        with self._lock:
            tracks, handovers = list(self.tracks), list(self.handovers)
            seq, t0_s = self._tracks_seq - 1, self.tracking["t0_s"]
        return {"node_id": self.node_id, "seq": seq, "t0_s": t0_s,
                "tracks": [wire.track_to_dict(t, _TAIL) for t in tracks],
                "handovers": [{"track_id": i, "t_s": h.t_s, "from": h.from_station, "to": h.to_station,
                               "reason": h.reason} for i, h in handovers]}

    def _start_twin(self) -> None:
        """Start the twin's writer: ``twin.db`` a DSN, or a SQLite file (relative: in the output folder)."""
        from sdr_isac.twin import TwinWriter
        from sdr_isac.twin.connect import is_dsn

        twin = self.cfg.twin
        db = twin.db
        if not is_dsn(db) and db != ":memory:" and not Path(db).is_absolute():
            base = self.out_dir if self.out_dir is not None else Path.cwd()
            base.mkdir(parents=True, exist_ok=True)
            db = str(base / db)
        self.twin_path = db if not is_dsn(db) else "(PostgreSQL DSN)"
        self._twin = TwinWriter(db, twin.queue_size, retention_s=twin.retention_s,
                                prune_interval_s=twin.prune_interval_s, busy_timeout_s=twin.busy_timeout_s)

    def _twin_put(self, records: list[Any]) -> None:
        """Hand records to the twin's writer (never blocks: a full queue drops the batch, counted there)."""
        if self._twin is not None and records:
            self._twin.put(records)

    def _twin_detections(self, node_id: str, t0_s: float, detections: Any) -> None:
        """Hand one node's detections to the twin (those it cannot hold, a NaN say, are counted, not stored)."""
        if self._twin is None:
            return
        from sdr_isac.twin import NodeDetection

        rows = []
        for d in detections:
            try:
                rows.append(NodeDetection(node_id, t0_s, d))
            except SdrIsacError:
                with self._lock:
                    self.twin_skipped += 1
        self._twin_put(rows)

    def _twin_stats(self) -> dict[str, Any] | None:
        if self._twin is None:
            return None
        st = self._twin.stats()
        return {"db": self.twin_path, "written": st.written_records, "written_batches": st.written_batches,
                "dropped": st.dropped_records, "dropped_batches": st.dropped_batches,
                "failed": st.failed_records, "failed_batches": st.failed_batches, "queued": st.queued,
                "pruned_rows": st.pruned_rows, "prune_failures": st.prune_failures,
                "skipped_detections": self.twin_skipped,
                "last_error": st.last_error}

    def _publish_detections(self, node_id: str, seq: int, t0_s: float, detections: list[dict[str, Any]],
                            truth: Any = None) -> None:
        """Publish ``detections/<node>`` with the node's counters (``stats``), position (``node``) and truth."""
        try:
            frames = wire.encode("detections", node_id, seq, t0_s=t0_s, detections=detections,
                                 stats=self._node_stats(node_id), node=self.node_info(node_id),
                                 truth=truth if isinstance(truth, dict) else None)
        except WireFormatError as err:                    # e.g. truth that is not plain JSON: drop it
            with self._lock:
                self.errors.append(f"{node_id}/{seq}: not published: {err}")
            try:
                frames = wire.encode("detections", node_id, seq, t0_s=t0_s, detections=detections,
                                     stats=self._node_stats(node_id))
            except WireFormatError as again:               # the counters themselves: the detections go out alone
                with self._lock:
                    self.errors.append(f"{node_id}/{seq}: published without stats: {again}")
                frames = wire.encode("detections", node_id, seq, t0_s=t0_s, detections=detections)
        self._send(frames)

    def _publish_map(self, node_id: str, seq: int, t0_s: float, sensed: _Sensed, truth: Any,
                     cfg: config_mod.SensingConfig | None = None) -> None:
        """Publish ``rdmap/<node>``: the map cropped for a display, its detections, counters, position, truth.

        The crop (:func:`~sdr_isac.stream.wire.map_for_display`) was made where the capture was sensed
        (:func:`_sense`); an error there is raised here, under the map's guard.
        """
        cfg = cfg or self.cfg.sensing
        if sensed.display_error is not None:
            raise sensed.display_error
        if sensed.display is None:
            return
        power_db, range_m, velocity, decimation, max_range_m = sensed.display
        result = sensed.results[0]
        sensing_fields = {"pfa": cfg.pfa, "guard_cells": list(cfg.guard_cells),
                          "training_cells": list(cfg.training_cells), "cfar": cfg.cfar}
        try:
            frames = wire.encode_rdmap(node_id, seq, t0_s, power_db, range_m, velocity, result.detections,
                                       geometry=sensed.geometry, num_channels=sensed.num_channels,
                                       max_range_m=max_range_m, decimation=decimation, sensing=sensing_fields,
                                       node=self.node_info(node_id), stats=self._node_stats(node_id),
                                       truth=truth if isinstance(truth, dict) else None)
        except WireFormatError as err:
            with self._lock:
                self.errors.append(f"{node_id}/{seq}: map not published: {err}")
            return
        self._send(frames)

    def _send(self, frames: list[Any]) -> None:
        with self._pub_lock:                              # both threads publish; a ZeroMQ socket is not thread-safe
            try:
                self._pub.send_multipart(frames, flags=zmq.NOBLOCK)
            except zmq.Again:
                pass                                      # a slow subscriber loses results, never the host

    def _node_stats(self, node_id: str) -> dict[str, Any]:
        with self._lock:
            return self.nodes[node_id].to_dict() if node_id in self.nodes else {}

    def node_info(self, node_id: str) -> dict[str, Any] | None:
        """Where the scene of the host's configuration puts ``node_id`` (:meth:`FusionEngine.node_info`)."""
        return self.engine.node_info(node_id)

    def _record(self, capture: Capture) -> None:
        if self._record_dir is None:
            return
        capture.check_samples()       # a NaN or infinity never reaches a recording; remembered for writer and sensing
        writer = self._writers.get(capture.node_id)
        if writer is None:
            self._record_dir.mkdir(parents=True, exist_ok=True)
            node = self.node_info(capture.node_id) or {"id": capture.node_id}
            writer = RecordingWriter(self._record_dir / capture.node_id, sample_rate_hz=capture.sample_rate_hz,
                                     center_freq_hz=capture.center_freq_hz, num_channels=capture.num_channels,
                                     frame=capture.frame, node=node, overwrite=True)
            self._writers[capture.node_id] = writer
        append_capture(writer, capture)

    def aligned(self) -> dict[str, dict[str, Any]]:
        """The newest result of every node whose t0 lies within ``stream.align_window_s`` of the newest one.

        This is the time-aligned set the node-level fusion works on: node id -> {seq, t0_s, detections, truth}.
        """
        with self._lock:
            latest = {n: s.detections[-1] for n, s in self.nodes.items() if s.detections}
        if not latest:
            return {}
        newest = max(item["t0_s"] for item in latest.values())
        return {n: item for n, item in latest.items() if newest - item["t0_s"] <= self.cfg.stream.align_window_s}

    def finished(self, nodes: set[str]) -> bool:
        """Whether every node in ``nodes`` sent its final heartbeat and everything received is processed."""
        with self._lock:
            return all(n in self.nodes and bool(self.nodes[n].heartbeat.get("final")) and self.nodes[n].settled()
                       for n in nodes)

    def detections_by_node(self) -> dict[str, list[dict[str, Any]]]:
        """Every node's latest processed results (the last 1000 per node)."""
        with self._lock:
            return {k: list(v.detections) for k, v in self.nodes.items()}



@dataclasses.dataclass
class _Sensed:
    """What the host's sensing task sends back: the results, the display crop of the first, its map's shape.

    Off the host's process (``keep_arrays`` false) the results carry no map and a CSI only for a RIS
    capture: the host uses the detections, the crop and the RIS scan's CIM, and a map of a W1 frame is
    megabytes to send back.
    """

    results: list[sensing.SensingResult]
    display: tuple[Any, ...] | None = None
    display_error: Exception | None = None
    geometry: str = "monostatic"
    num_channels: int = 0


def _sense(capture: Capture, jobs: list[SensingJob], display_cells: int, keep_arrays: bool,
           own_pool: bool = False) -> _Sensed:
    """The host's task on its executor: :func:`~sdr_isac.fusion.engine.sense_capture`, then the display crop.

    ``display_cells`` > 0: crop the first result's map for ``rdmap`` messages
    (:func:`~sdr_isac.stream.wire.map_for_display`) here, where the map is; ``keep_arrays``: send the
    results back whole (the ``thread`` executor: nothing is copied); ``own_pool``: a worker of the host's own
    process pool, whose C allocator keeps the memory the maps free (not a Dask worker shared with other work).
    """
    if not keep_arrays:                                   # in a worker process: one core's share of the work
        _single_threaded_blas()
    if own_pool:
        keep_freed_memory()
    results = sense_capture(capture, jobs)
    out = _Sensed(results)
    rd = results[0].map
    if rd is not None:
        out.geometry, out.num_channels = rd.geometry, int(rd.cells.shape[0])
        if display_cells:
            try:
                out.display = wire.map_for_display(results[0], jobs[0].config, display_cells)
            except Exception as err:                      # noqa: BLE001  raised again under the host's map guard
                out.display_error = err
    if not keep_arrays:
        ris = bool(capture.metadata.get("ris"))
        out.results = [dataclasses.replace(r, map=None, csi=r.csi if ris and i == 0 else None)
                       for i, r in enumerate(results)]
    return out


_BLAS_LIMITED = False


def _single_threaded_blas() -> None:
    """Keep BLAS and the FFTs single-threaded in a worker process (once per process): several workers share
    the cores, and threaded OpenBLAS (or scipy.fft with every core) over-subscribes them (``PITFALLS.md``)."""
    global _BLAS_LIMITED
    if not _BLAS_LIMITED:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
        ofdm.FFT_WORKERS = 1                              # every FFT whose sensing.fft_workers is 0
        _BLAS_LIMITED = True


class _Pending:
    """A capture whose sensing was submitted: the message, the decoded capture, its jobs and the future."""

    __slots__ = ("msg", "capture", "jobs", "future")

    def __init__(self, msg: wire.Message, capture: Capture, jobs: list[SensingJob], future: TaskFuture) -> None:
        self.msg, self.capture, self.jobs, self.future = msg, capture, jobs, future


def _wait_for(future: TaskFuture, timeout_s: float) -> None:
    """Wait up to ``timeout_s`` for a future to finish; its result (or error) is taken later, under the guard.

    A ``concurrent.futures.Future`` is waited on; another (a Dask future) is polled with ``done()``: its
    ``result(timeout=...)`` goes through the client's event loop, which under load can fail by itself.
    """
    if isinstance(future, Future):
        wait([future], timeout=timeout_s)
        return
    deadline = time.monotonic() + timeout_s
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.002)
