"""The node agent: a radio's captures (or its own detections) streamed to the fusion host.

``sdr-isac node --config FILE [--node-id ID]``.  The node transmits its frame
cyclically, captures frame after frame, optionally senses locally, and sends
each result as one wire message on a PUSH socket connected to the host.
Frames the radio received with a gap (an overflow, a lost packet, a dropped
buffer) are dropped by the radio, never sent; the heartbeat's
``frames_dropped_overflow`` says how many.  When several in a row have gaps the
radio gives up on that capture (:class:`~sdr_isac.errors.RadioOverflowError`):
the node counts it in ``rx_failures`` and tries again, and stops with the
error, after a last heartbeat, once ``stream.rx_failures_in_a_row`` captures
in a row failed so.
The socket queues at most ``stream.send_hwm`` messages and only on a live
connection (``ZMQ_IMMEDIATE``): when the host is slow or gone, new messages
are dropped and counted, so memory never grows; ZeroMQ reconnects by itself
when the host comes back.  A heartbeat with the counters goes out every
``stream.heartbeat_s``.

The node watches its handshakes with the host (a ZeroMQ socket monitor): when they keep failing, none
succeeding, for ``max(2 s, stream.absent_after_heartbeats x stream.heartbeat_s)`` (the time after which the
host would report the node absent), or by the end of the run, :meth:`NodeAgent.run` raises a
:class:`~sdr_isac.errors.ConfigError` naming the likely cause (its key not in the host's
``stream.curve_allowed``, the wrong host public key, CURVE on one side only); ``sdr-isac node`` then prints
it and exits with status 2.  A host that is simply not there yet is no failure: the node keeps trying.
"""

from __future__ import annotations

import dataclasses
import logging
import resource
import threading
import time
from typing import Any

import zmq

from sdr_isac import config as config_mod
from sdr_isac import radio, sensing
from sdr_isac.errors import RadioOverflowError
from sdr_isac.executors import keep_freed_memory
from sdr_isac.fusion.modes.ris import RisGeometry
from sdr_isac.stream import wire
from sdr_isac.stream.security import HandshakeWatch, secure_client
from sdr_isac.waveform import IsacFrame

__all__ = ["NodeAgent"]

_log = logging.getLogger(__name__)


class NodeAgent:
    """Streams one node.

    Parameters
    ----------
    cfg : Config
        The whole configuration (radio, frame, scene, sensing, stream).
    node_id : str, optional
        Overrides ``cfg.radio.node_id`` (one file, several simulated nodes).
    context : zmq.Context, optional
        Shared context; by default the agent makes its own and terminates it
        when :meth:`run` returns.  Terminating waits until libzmq has released
        every zero-copy frame still queued (a stalled host leaves some), so no
        release callback fires into an interpreter that is shutting down.
    """

    def __init__(self, cfg: config_mod.Config, node_id: str | None = None, context: zmq.Context | None = None):
        if node_id:
            cfg = dataclasses.replace(cfg, radio=dataclasses.replace(cfg.radio, node_id=node_id))
        self.cfg = cfg
        self.node_id = cfg.radio.node_id
        self._own_context = context is None
        self.context = zmq.Context() if context is None else context
        self.stats: dict[str, Any] = {"node_id": self.node_id, "sent": 0, "dropped": 0, "captured": 0,
                                      "frames_sent": 0, "frames_dropped": 0, "frames_dropped_overflow": 0,
                                      "rx_failures": 0, "heartbeats": 0, "started_s": time.time()}

    def _socket(self) -> tuple[zmq.Socket, HandshakeWatch]:
        stream = self.cfg.stream
        sock = self.context.socket(zmq.PUSH)
        watch = None
        try:
            sock.setsockopt(zmq.SNDHWM, stream.send_hwm)
            sock.setsockopt(zmq.IMMEDIATE, 1)          # queue only on a live connection: no unbounded backlog
            sock.setsockopt(zmq.LINGER, 200)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            secure_client(sock, stream)
            watch = HandshakeWatch(sock, stream, stream.host_endpoint, "node",
                                   max(2.0, stream.absent_after_heartbeats * stream.heartbeat_s))
            sock.connect(stream.host_endpoint)
        except BaseException:
            if watch is not None:
                watch.close()
            sock.close(linger=0)
            raise
        self._watch = watch
        return sock, watch

    def _send(self, sock: zmq.Socket, frames: list[Any]) -> bool:
        self._watch.check()                        # a refused node says so instead of sending into the void
        try:
            sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.stats["dropped"] += 1
            return False
        self.stats["sent"] += 1
        return True

    def run(self, stop: threading.Event | None = None) -> dict[str, Any]:
        """Capture and send until ``stream.frames`` are done or ``stop`` is set; returns the counters."""
        stop = stop or threading.Event()
        cfg = self.cfg
        keep_freed_memory()           # a capture (MiB) per frame, made and freed: its pages are not faulted in anew
        if self._own_context and self.context.closed:      # a second run after the first terminated it
            self.context = zmq.Context()
        try:
            sock, watch = self._socket()
        except BaseException:
            if self._own_context:
                self.context.term()
            raise
        try:
            plan = self.ris_plan()
            with radio.open_radio(cfg) as r:
                frame = IsacFrame(r.frame if r.frame is not None else cfg.frame)
                if r.can_transmit:
                    r.tx(frame.samples(), cyclic=True)
                seq = 0
                # a first heartbeat, waiting (bounded) for the connection, so the first frames are not
                # dropped while TCP / CURVE handshakes are still under way
                self._heartbeat(sock, 0, wait_s=2.0)
                beat_seq = 1
                next_beat = time.monotonic() + cfg.stream.heartbeat_s
                period = 1.0 / cfg.stream.frame_rate_hz if cfg.stream.frame_rate_hz else 0.0
                next_frame = time.monotonic()
                failures = 0                                # captures in a row the radio gave up on
                while not stop.is_set() and (not cfg.stream.frames or seq < cfg.stream.frames):
                    if time.monotonic() >= next_beat:
                        self._heartbeat(sock, beat_seq)
                        beat_seq += 1
                        next_beat = time.monotonic() + cfg.stream.heartbeat_s
                    if period:
                        delay = next_frame - time.monotonic()
                        if delay > 0 and stop.wait(delay):
                            break
                        next_frame += period
                    steering = self._steer_ris(r, plan, seq)
                    try:
                        capture = r.rx(r.capture_length(frame.num_samples))
                    except RadioOverflowError as err:
                        failures += 1
                        self._rx_failed(r, err, failures)
                        if failures >= cfg.stream.rx_failures_in_a_row:
                            self._heartbeat(sock, beat_seq, final=True, wait_s=0.5)
                            raise
                        continue
                    failures = 0
                    # frames the radio received with a gap and dropped (never spliced): reported in heartbeats
                    self.stats["frames_dropped_overflow"] = int(getattr(r, "frames_dropped_overflow", 0))
                    if steering:
                        capture = dataclasses.replace(capture, metadata={**capture.metadata, "ris": steering})
                    self.stats["captured"] += 1
                    if cfg.stream.send == "detections":
                        result = sensing.process(capture, frame, cfg.sensing)
                        frames = wire.encode_detections(self.node_id, seq, capture.t0_s, result.detections,
                                                        truth=wire.checked_truth(capture.metadata.get("truth")),
                                                        radio=wire.radio_of(capture.metadata))
                    else:
                        frames = wire.encode_capture(dataclasses.replace(capture, seq=seq))
                    self.stats["frames_sent" if self._send(sock, frames) else "frames_dropped"] += 1
                    seq += 1
                self._heartbeat(sock, beat_seq, final=True, wait_s=2.0)
            watch.check(final=watch.succeeded == 0)
        finally:
            watch.close()
            sock.close(linger=500)
            if self._own_context:
                self.context.term()
        self.stats["stopped_s"] = time.time()
        self.stats["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB
        return dict(self.stats)

    def _rx_failed(self, r: Any, err: RadioOverflowError, in_a_row: int) -> None:
        """Count a capture the radio gave up on (its dropped frames too) and log it."""
        self.stats["rx_failures"] += 1
        self.stats["frames_dropped_overflow"] = int(getattr(r, "frames_dropped_overflow", 0))
        _log.warning("node %s: capture failed (%d in a row, stream.rx_failures_in_a_row = %d): %s", self.node_id,
                     in_a_row, self.cfg.stream.rx_failures_in_a_row, err)

    def ris_plan(self) -> list[dict[str, Any]]:
        """The RIS scans this node programs: ``id``, ``incoming_deg`` (pointing at this node) and ``scan_deg``.

        From the ``[[scene.ris]]`` entries whose ``controller`` is this node and
        that have a ``scan_deg``; the incoming azimuth is the node's own
        direction seen from the surface (:attr:`sdr_isac.fusion.modes.ris.RisGeometry.incoming_deg`).
        """
        scene = self.cfg.scene
        if scene is None:
            return []
        node = scene.node(self.node_id)
        plan = []
        for ris in scene.ris:
            if ris.controller == self.node_id and ris.scan_deg:
                incoming = RisGeometry.of(ris, node.position_m).incoming_deg
                plan.append({"id": ris.id, "incoming_deg": incoming, "scan_deg": list(ris.scan_deg)})
        return plan

    @staticmethod
    def _steer_ris(r: Any, plan: list[dict[str, Any]], seq: int) -> list[dict[str, Any]]:
        """Program every planned RIS for frame ``seq`` (step ``seq mod S`` of its scan); what the capture records."""
        out = []
        for ris in plan:
            index = seq % len(ris["scan_deg"])
            r.set_ris_steering(ris["id"], ris["incoming_deg"], ris["scan_deg"][index])
            out.append({"id": ris["id"], "incoming_deg": ris["incoming_deg"], "steer_deg": ris["scan_deg"][index],
                        "scan_index": index, "scan_size": len(ris["scan_deg"])})
        return out

    def _heartbeat(self, sock: zmq.Socket, seq: int, final: bool = False, wait_s: float = 0.0) -> bool:
        """Send the counters; ``wait_s`` > 0 waits that long for a connection (the first and the last one)."""
        self.stats["heartbeats"] += 1
        stats = {k: v for k, v in self.stats.items() if k != "node_id"}
        frames = wire.encode_heartbeat(self.node_id, seq, {**stats, "final": final})
        if not wait_s:
            return self._send(sock, frames)
        deadline = time.monotonic() + wait_s
        while True:                                 # until connected (ZMQ_IMMEDIATE) or wait_s, watching handshakes
            try:
                sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self._watch.check()
                if time.monotonic() >= deadline:
                    self.stats["dropped"] += 1
                    return False
                time.sleep(0.01)
                continue
            self.stats["sent"] += 1
            return True
