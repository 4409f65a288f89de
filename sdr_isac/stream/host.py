"""The fusion host: receives from many nodes, senses off the receiving thread, publishes results.

``sdr-isac host --config FILE``.  One PULL socket receives every node's
messages; a receiving thread decodes them strictly (a malformed message is
counted in ``rejected`` and dropped, never unpickled), counts loss per node
from sequence gaps, measures latency from the sender's timestamp, and queues
captures for a worker thread that runs the sensing pipeline and publishes
detections on a PUB socket (topic ``detections/<node>``) and, with
``stream.publish_maps`` (the default), the range-Doppler map cropped to the
reportable range with the detections, the node's position and its counters
(topic ``rdmap/<node>``, for displays).  Captures of
different nodes whose ``t0`` fall within ``stream.align_window_s`` form a
time-aligned set (for the fusion stages).  Incoming captures can be recorded
to SigMF, one recording per node.  ``stop()`` (or SIGINT/SIGTERM in the
command) ends both threads and closes the recordings.

Reliability: no message can end a thread.  Every step of handling one message
runs under one guard (:meth:`FusionHost._guard`) that counts what went wrong
(``rejected`` for a message that does not decode, ``errors_total`` and the
last ``errors`` otherwise, ``failed`` of the node for a capture that could not
be sensed), logs it and goes on; :meth:`FusionHost.stats` says whether the
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
import json
import logging
import math
import queue
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import zmq

from sdr_isac import config as config_mod
from sdr_isac import sensing
from sdr_isac.errors import SdrIsacError, SensingError, WireFormatError
from sdr_isac.fusion.bs_ue import live_case
from sdr_isac.fusion.macro_micro import fuse_live
from sdr_isac.fusion.multiband import Band
from sdr_isac.fusion.node import fuse_detections
from sdr_isac.fusion.ris import RisGeometry, estimate_ris_target
from sdr_isac.recording import RecordingWriter
from sdr_isac.sensing.csi import ChannelEstimate, known_reference
from sdr_isac.stream import wire
from sdr_isac.stream.security import Refusals, describe_handshake_failure, secure_server
from sdr_isac.waveform import IsacFrame

__all__ = ["FusionHost", "NodeStats"]


_KEEP_RESULTS = 1000        # results kept per node (older ones are dropped: a long run must not grow memory)
_KEEP_ERRORS = 100
_KEEP_OUTAGES = 100         # outages kept per node (the count goes on)
_MAX_NODES = 1024
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
        self.arrivals: deque[float] = deque(maxlen=_RATE_WINDOW)
        self.heartbeat: dict[str, Any] = {}
        self.detections: deque[dict[str, Any]] = deque(maxlen=_KEEP_RESULTS)
        self.state = "present"
        self.last_seen_s: float | None = None
        self.last_beat_seq: int | None = None
        self.outage: wire.Outage | None = None          # the one going on
        self.outages: deque[wire.Outage] = deque(maxlen=_KEEP_OUTAGES)
        self.outages_total = 0
        self.status_seq = 0

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

    def on_latency(self, latency_s: float) -> None:
        """Add one message's latency (receive time minus the sender's timestamp)."""
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
                "outages": [o.to_dict() for o in self.outages] + ([self.outage.to_dict()] if self.outage else [])}


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
    """

    def __init__(self, cfg: config_mod.Config, record_dir: str | Path | None = None,
                 context: zmq.Context | None = None):
        self.cfg = cfg
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
        self._ris_scans: dict[tuple[str, str], list[dict[str, Any]]] = {}   # (node, RIS) -> steps of the scan so far
        self._sources: dict[str, list[str]] = {}                 # receive-only node -> transmitters it hears
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
            self._pull.bind(cfg.stream.host_endpoint)
            self._pub.bind(cfg.stream.publish_endpoint)
        except BaseException:
            self._close_sockets()
            raise
        self._threads = [threading.Thread(target=self._receive, name="host-receive", daemon=True),
                         threading.Thread(target=self._work, name="host-work", daemon=True)]
        self._alive_at_stop: tuple[bool, bool] | None = None

    # ---- life cycle ---------------------------------------------------------------
    def start(self) -> FusionHost:
        """Start the receiving and processing threads."""
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
        for writer in self._writers.values():
            with self._guard("closing a recording"):
                writer.close()
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
        that did not decode; ``errors_total`` and the last 20 ``errors``: other failures, each logged;
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
                    "absent_nodes": sorted(k for k, v in self.nodes.items() if v.state == "absent")}

    # ---- the guard ----------------------------------------------------------------
    def _guard(self, where: str, node_id: str | None = None, *, rejects: bool = False) -> _Guard:
        """A context that keeps a thread alive through any exception of one step (and counts it).

        ``rejects``: the step decodes a received message, so a failure counts in ``rejected``;
        ``node_id``: the step handles that node's capture, so a failure also counts in its ``failed``.
        """
        return _Guard(self, where, node_id, rejects)

    def _count_failure(self, where: str, err: Exception, node_id: str | None, rejects: bool) -> None:
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
        target = Path(path)
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_text(json.dumps(self.stats(), indent=2))
        tmp.replace(target)

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
            msg = wire.decode(frames, max_bytes=max_bytes)
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
                node.heartbeat = dict(msg.header["stats"])
                return
            node.received += 1
            node.on_seq(msg.seq)
            node.on_latency(max(received_s - msg.sent_s, 0.0))
            node.on_arrival(received_s)
            self._align(msg)
        if msg.kind == "detections":
            truth = msg.header.get("truth") if msg.header.get("radio") in wire.TRUTH_SOURCES else None
            self._publish_detections(msg.node_id, msg.seq, msg.t0_s, msg.header["detections"], truth)
            with self._lock:
                node.processed += 1
                node.detections.append({"seq": msg.seq, "t0_s": msg.t0_s, "detections": msg.header["detections"],
                                        "truth": truth})
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
        while True:                                            # ends at the None that stop() queues
            try:
                msg = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if msg is None:
                break
            with self._guard(f"capture {msg.node_id}/{msg.seq}", msg.node_id):
                self._process(msg)

    def _process(self, msg: wire.Message) -> None:
        """Sense one capture, publish its detections (and map), then the RIS and fusion steps, each guarded."""
        where = f"capture {msg.node_id}/{msg.seq}"
        with self._guard(where, msg.node_id, rejects=True) as decoding:
            capture = wire.decode_capture(msg)
        if decoding.failed:
            return
        self._record(capture)
        sensed = [(source, frame, scfg, sensing.process(capture, frame, scfg))
                  for source, frame, scfg in self._sensing_for(capture)]
        _, frame, sensing_cfg, result = sensed[0]
        by_source = {source: [d.to_dict() for d in r.detections] for source, _, _, r in sensed if source}
        dets = [d for source_dets in by_source.values() for d in source_dets] if by_source else \
            [d.to_dict() for d in result.detections]
        truth = capture.metadata.get("truth") if wire.radio_of(capture.metadata) in wire.TRUTH_SOURCES else None
        self.last_results[capture.node_id] = (result, (truth or {}).get("paths", []))
        self._publish_detections(capture.node_id, msg.seq, capture.t0_s, dets, truth)
        if self.cfg.stream.publish_maps and result.map is not None:
            with self._guard(f"{where}: map not published"):
                self._publish_map(capture.node_id, msg.seq, capture.t0_s, result, truth, sensing_cfg)
        with self._lock:
            node = self.nodes[capture.node_id]
            node.processed += 1
            node.detections.append({"seq": msg.seq, "t0_s": capture.t0_s, "detections": dets, "truth": truth,
                                    "by_source": by_source})
        if capture.metadata.get("ris") and result.csi is not None:
            with self._guard(f"RIS scan at {msg.node_id}/{msg.seq}"):
                self._ris_step(capture, msg.seq, result.csi, frame, truth)
        if self.cfg.fusion.enabled:
            with self._guard(f"fusion after {msg.node_id}/{msg.seq}"):
                self._fuse(capture.node_id, msg.seq, capture.t0_s)

    def _sensing_for(self, capture: Any) -> list[tuple[str | None, Any, config_mod.SensingConfig]]:
        """How to sense a capture of ``capture.node_id``: ``(source, frame, settings)`` per transmitter heard.

        A node that transmits senses its own echoes: one entry, source None,
        with ``sensing`` as it is.  A receive-only node of the scene hears the
        transmitters on its carrier (see :meth:`passive_sources`) and knows
        only their reference signals: its capture is sensed once per
        transmitter, as bistatic (range sums ``c tau``, biased by its clock
        offset) on that transmitter's reference signals, without the
        zero-Doppler notch (the line of sight, the reference of
        :func:`sdr_isac.fusion.node.passive_links`, has zero Doppler) and with
        the range limits doubled (a range sum is about twice a range).
        """
        info = self.node_info(capture.node_id)
        if info is None or info["transmits"]:
            return [(None, capture.frame or self.cfg.frame, self.cfg.sensing)]
        cfg = self.cfg.sensing
        out: list[tuple[str | None, Any, config_mod.SensingConfig]] = []
        for source in self.passive_sources(capture.node_id):
            frame = self._node_frame(source)
            out.append((source, frame, dataclasses.replace(
                cfg, geometry="bistatic", signals=_reference_signals(capture.node_id, source, frame),
                remove_static=False, min_range_m=0.0, max_range_m=2.0 * cfg.max_range_m)))
        return out

    def _node_frame(self, node_id: str) -> config_mod.FrameConfig:
        """The frame a scene node transmits (or, receive-only, is tuned to): its own, else the file's."""
        scene = self.cfg.scene
        node = scene.node(node_id) if scene is not None else None
        return (node.frame if node is not None else None) or self.cfg.frame

    def passive_source(self, node_id: str) -> str:
        """The one transmitting scene node a receive-only node ``node_id`` hears (:meth:`passive_sources`).

        Raises :class:`SensingError` when it hears none or several.
        """
        found = self.passive_sources(node_id)
        if len(found) != 1:
            raise SensingError(f"receive-only node {node_id!r} hears {len(found)} transmitters "
                               f"({', '.join(found)}): use passive_sources")
        return found[0]

    def passive_sources(self, node_id: str) -> list[str]:
        """The transmitting scene nodes a receive-only node ``node_id`` hears, each sensed on its own.

        Those whose frame has the receive-only node's carrier and sample rate.
        Several are told apart by their reference signals, which must then
        occupy disjoint resource elements (e.g. PRS comb offsets 0, 1, 2, 3).
        Raises :class:`SensingError` when none is heard or two share REs (the
        captures of ``node_id`` then fail, counted, and it joins no fusion).
        """
        if node_id in self._sources:
            return self._sources[node_id]
        scene = self.cfg.scene
        if scene is None:
            raise SensingError(f"node {node_id!r}: the host's configuration has no scene")
        own = self._node_frame(node_id)
        found = [n.id for n in scene.nodes if n.transmits and n.id != node_id
                 and self._node_frame(n.id).carrier_hz == own.carrier_hz
                 and self._node_frame(n.id).sample_rate_hz == own.sample_rate_hz]
        if not found:
            raise SensingError(f"receive-only node {node_id!r} hears no transmitting node on its carrier "
                               f"{own.carrier_hz:g} Hz at {own.sample_rate_hz:g} Hz: give it a transmitter's "
                               "carrier and numerology")
        if len(found) > 1:
            masks = {}
            for n in found:
                frame = self._node_frame(n)
                masks[n] = known_reference(IsacFrame(frame), _reference_signals(node_id, n, frame))[1]
            for i, a in enumerate(found):
                for b in found[i + 1:]:
                    if masks[a].shape != masks[b].shape or np.any(masks[a] & masks[b]):
                        raise SensingError(
                            f"receive-only node {node_id!r} hears {', '.join(found)} on carrier {own.carrier_hz:g} "
                            f"Hz, and the reference signals of {a!r} and {b!r} share resource elements: allowed "
                            "transmitters whose reference signals are orthogonal; give them other PRS comb offsets "
                            "(re_offset) or other carriers")
        self._sources[node_id] = found
        return found

    def _fuse(self, node_id: str, seq: int, t0_s: float) -> None:
        """Fuse the result just processed with the other scene nodes' results of the same instant.

        For every other node of the scene, the result whose capture time lies
        within ``stream.align_window_s`` of this one (the closest) joins the
        set; a set of two or more nodes is fused once and published as
        ``estimates/host``.  Receive-only nodes join with the transmitter
        they hear (:meth:`passive_source`): their range sums are fused with
        the monostatic detections.  With ``fusion.macro_nodes`` the
        macro-micro mode switch chooses the nodes of each target
        (:func:`sdr_isac.fusion.macro_micro.fuse_live`, key ``mode``); a set
        with UEs labels each estimate with its BS-UE case
        (:func:`sdr_isac.fusion.bs_ue.live_case`, key ``case``).
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
        places = {n: info for n in [node_id, *members] if (info := self.node_info(n)) is not None}
        if len(places) < 2 or not mine:
            return
        members[node_id] = mine[-1]
        key = tuple(sorted((n, int(members[n]["seq"])) for n in places))
        if key in self._fused_keys:
            return
        self._fused_keys.append(key)
        fusion_cfg = self.cfg.fusion
        places, dets, passive = self._links(places, members)
        if fusion_cfg.macro_nodes:
            estimates = fuse_live(places, dets, fusion_cfg.macro_nodes, fusion_cfg.target_height_m,
                                  fusion_cfg.gate_m, passive=passive)
        else:
            estimates = fuse_detections(places, dets, fusion_cfg.target_height_m, fusion_cfg.gate_m,
                                        passive=passive)
        roles = {n: info["role"] for n, info in places.items()}
        for est in estimates:
            if case := live_case(est["nodes"], roles, passive):
                est["case"] = case
        truth = [p for n in members for p in ((members[n].get("truth") or {}).get("paths") or [])
                 if p.get("kind") == "target" and "position_m" in p]
        with self._lock:
            out_seq = self._estimate_seq
            self._estimate_seq += 1
            self.estimates.append({"seq": out_seq, "t0_s": t0_s, "nodes": dict(key), "estimates": estimates,
                                   "truth": truth})
        self._send(wire.encode_estimates("host", out_seq, t0_s, estimates))

    def _links(self, places: dict[str, dict[str, Any]], members: dict[str, dict[str, Any]]
               ) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]], dict[str, str]]:
        """Places, detections and passive links of a time-aligned set, receive-only nodes split per transmitter.

        A receive-only node that hears one transmitter keeps its id; one that
        hears several gives a link ``"RX<TX"`` per transmitter (at the
        receiver's place, with the detections sensed on that transmitter's
        reference signals).  Transmitters join the places (their positions
        anchor the range sums) even without detections of their own.
        """
        out_places: dict[str, dict[str, Any]] = {}
        dets: dict[str, list[dict[str, Any]]] = {}
        passive: dict[str, str] = {}
        for n, info in places.items():
            if info["transmits"]:
                out_places[n] = info
                dets[n] = members[n]["detections"]
                continue
            by_source = members[n].get("by_source") or {}
            for tx, tx_dets in by_source.items():
                tx_info = places.get(tx) or self.node_info(tx)
                if tx_info is None:
                    continue
                link = n if len(by_source) == 1 else f"{n}<{tx}"
                out_places.setdefault(tx, tx_info)
                out_places[link], dets[link], passive[link] = info, tx_dets, tx
        return out_places, dets, passive

    def _ris_step(self, capture: Any, seq: int, csi: ChannelEstimate, frame: Any, truth: dict[str, Any] | None
                  ) -> None:
        """Keep this frame's CIM for the RIS scan it belongs to; at the scan's last step, locate the target.

        The node records in ``metadata["ris"]`` which outgoing azimuth each RIS
        was programmed for (:meth:`sdr_isac.stream.node.NodeAgent.ris_plan`).
        A scan is the frames of steps ``0 ... S-1`` in order (a lost frame
        drops that scan); its CIMs (first receive channel) go to
        :func:`sdr_isac.fusion.ris.estimate_ris_target`, and a target found is
        published as an estimate with ``mode = "ris"``, its global position,
        covariance and what the RIS saw (``ris``: range, radial velocity and
        azimuth from the surface with their CRB variances).
        """
        info = self.node_info(capture.node_id)
        scene = self.cfg.scene
        if info is None or scene is None:
            return
        for step in capture.metadata["ris"]:
            key = (capture.node_id, str(step["id"]))
            index, size = int(step["scan_index"]), int(step["scan_size"])
            scan = self._ris_scans.setdefault(key, [])
            if index == 0:
                scan.clear()
            if index != len(scan):                           # a step is missing: wait for the next scan
                scan.clear()
                continue
            scan.append({"seq": seq, "t0_s": capture.t0_s, "steer_deg": float(step["steer_deg"]),
                         "cim": np.array(csi.h[0], dtype=np.complex128), "mask": csi.mask.copy(),
                         "truth": (truth or {}).get("targets") or []})
            if len(scan) == size:
                ris = next(r for r in scene.ris if r.id == step["id"])
                self._ris_publish(capture, ris, info, scan, frame)
                scan.clear()

    def _ris_publish(self, capture: Any, ris: config_mod.RisConfig, info: dict[str, Any],
                     scan: list[dict[str, Any]], frame: Any) -> None:
        built = IsacFrame(frame)
        symbol_s = built.num_samples / (built.num_symbols * built.sample_rate_hz)   # mean symbol period
        band = Band(capture.node_id, float(capture.center_freq_hz or frame.carrier_hz), frame.subcarrier_spacing_hz,
                    symbol_s - 1.0 / frame.subcarrier_spacing_hz, scan[0]["mask"])
        geometry = RisGeometry.of(ris, info["position_m"])
        found = estimate_ris_target(band, np.stack([step["cim"] for step in scan]),
                                    [step["steer_deg"] for step in scan], geometry, pfa=self.cfg.sensing.pfa,
                                    max_range_m=self.cfg.sensing.max_range_m or None,
                                    height_m=self.cfg.fusion.target_height_m)
        if found is None:
            return
        est = {"position_m": [float(v) for v in found.position_m], "cov_position_m2": found.cov_position_m2.tolist(),
               "nodes": [capture.node_id], "mode": "ris",
               "ris": {"id": ris.id, "range_m": found.range_m, "velocity_mps": found.velocity_mps,
                       "azimuth_rad": found.azimuth_rad, "var_range_m2": found.var_range_m2,
                       "var_velocity_mps2": found.var_velocity_mps2, "var_azimuth_rad2": found.var_azimuth_rad2,
                       "snr_db": 10.0 * math.log10(max(found.snr_re_steered, 1e-30)), "frames": len(scan)}}
        t0_s, truth = scan[found.index]["t0_s"], scan[found.index]["truth"]      # the frame the range came from
        with self._lock:
            out_seq = self._estimate_seq
            self._estimate_seq += 1
            self.estimates.append({"seq": out_seq, "t0_s": t0_s, "nodes": {capture.node_id: scan[found.index]["seq"]},
                                   "estimates": [est], "truth": [{"target": t["id"], **t} for t in truth]})
        self._send(wire.encode_estimates("host", out_seq, t0_s, [est]))

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
            frames = wire.encode("detections", node_id, seq, t0_s=t0_s, detections=detections,
                                 stats=self._node_stats(node_id))
        self._send(frames)

    def _publish_map(self, node_id: str, seq: int, t0_s: float, result: sensing.SensingResult, truth: Any,
                     cfg: config_mod.SensingConfig | None = None) -> None:
        """Publish ``rdmap/<node>``: the map cropped for a display, its detections, counters, position, truth."""
        cfg, rd = cfg or self.cfg.sensing, result.map
        if rd is None:
            return
        power_db, range_m, velocity, decimation, max_range_m = wire.map_for_display(result, cfg,
                                                                              self.cfg.stream.map_max_cells)
        sensing_fields = {"pfa": cfg.pfa, "guard_cells": list(cfg.guard_cells),
                          "training_cells": list(cfg.training_cells), "cfar": cfg.cfar}
        try:
            frames = wire.encode_rdmap(node_id, seq, t0_s, power_db, range_m, velocity, result.detections,
                                       geometry=rd.geometry, num_channels=int(rd.cells.shape[0]),
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
        """Where the scene of the host's configuration puts ``node_id``: ``id``, ``role``, ``position_m``
        (m), ``yaw_deg`` (boresight, degrees from +x towards +y), ``transmits``; None if it has no such node."""
        scene = self.cfg.scene
        if scene is None or not any(n.id == node_id for n in scene.nodes):
            return None
        node = scene.node(node_id)
        return {"id": node.id, "role": node.role, "position_m": [float(v) for v in node.position_m],
                "yaw_deg": float(node.yaw_deg), "transmits": bool(node.transmits)}

    def _record(self, capture: Any) -> None:
        if self._record_dir is None:
            return
        writer = self._writers.get(capture.node_id)
        if writer is None:
            self._record_dir.mkdir(parents=True, exist_ok=True)
            writer = RecordingWriter(self._record_dir / capture.node_id, sample_rate_hz=capture.sample_rate_hz,
                                     center_freq_hz=capture.center_freq_hz, num_channels=capture.num_channels,
                                     frame=capture.frame, node={"id": capture.node_id}, overwrite=True)
            self._writers[capture.node_id] = writer
        meta = dict(capture.metadata)
        truth = meta.pop("truth", None)
        writer.append(dataclasses.replace(capture, metadata=meta), truth=truth)

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


def _reference_signals(node_id: str, source: str, frame: config_mod.FrameConfig) -> tuple[str, ...]:
    """The reference signals of ``source``'s frame, what a receive-only node knows of it."""
    signals = tuple(s for s in ("prs", "dmrs", "srs", "trs") if getattr(frame, s) is not None)
    if not signals:
        raise SensingError(f"node {node_id!r} is receive-only and the frame of {source!r} it hears carries no "
                           "reference signal (prs, dmrs, srs, trs): give the transmitter's frame one")
    return signals
