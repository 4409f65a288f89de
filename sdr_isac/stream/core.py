"""The core host: fuses what several MECS hosts publish into global tracks (article §V-1; issue 15, item 2).

``sdr-isac core --config FILE`` (or ``python -m sdr_isac.stream.core --config FILE``).  One SUB socket is
connected to the publish endpoint of every MECS host of ``[core]`` (``core.mecs_endpoints``) and takes their
``tracks/`` messages.  A receiving thread decodes each strictly (:func:`~sdr_isac.stream.wire.decode` and
:func:`~sdr_isac.stream.wire.decode_tracks`: a malformed message is counted in ``rejected`` and dropped,
never unpickled), refuses and counts publishers that are not configured (``core.mecs_ids``), a message whose
time goes back against that MECS host's previous one (``backwards``) and a track whose time goes back against
its previous report (``tracks_backwards``), and holds every MECS host's sets until they are fused.  Every
``core.publish_interval_s`` it fuses on the data clock (:class:`~sdr_isac.fusion.trackfusion.TrackToTrackFuser`:
chi-square gating, assignment, covariance intersection, stable global ids, a global track kept for
``core.coast_s`` after its members ended so that a target picked up again keeps its id): the set times up to
the newest that every present MECS host has reached (at most ``core.reorder_s`` behind the newest set of any),
in order and at least ``core.publish_interval_s`` of data apart, each with every MECS host's newest set at or
before it; a set at or before a fusion already made is counted ``late`` and its tracks predicted forward; a
set far ahead of every other MECS host's (:data:`MAX_HOST_LEAD_S`) is refused (``ahead``).  It publishes the
global tracks as ``tracks/<core.node_id>`` on ``core.publish_endpoint``, with each track's members (MECS id ->
local id) and ``core.tail_states`` history positions; when it stops it fuses what it still holds.

In the centralised mode (``core.mode = "centralised"``) the SUB socket takes the MECS hosts' ``estimates/``
messages instead (:func:`~sdr_isac.stream.wire.decode_estimates`, same refusals and counters) and one tracker
(:class:`~sdr_isac.fusion.trackfusion.CentralisedFuser`: Stone Soup, the ``[tracking]`` section's settings)
tracks the estimate sets of all MECS hosts in time order; its tracks are the global tracks (published the
same way, without members).  A set that arrives after a later set was tracked is dropped and counted
(``late``); ``core.reorder_s`` bounds the wait for a slower MECS host.

A MECS host silent for more than ``core.absent_after_s`` is absent: its tracks (or waiting estimate sets)
leave the fusion (the global tracks live on from the other MECS hosts), the core publishes ``status/<mecs id>``
(state ``absent``, the outage's start), and when it publishes again it is taken back (``status``
``present`` with the outage's end and duration).  ``core_stats.json`` (counters, every MECS host's state and
outages) and ``tracks.json`` (the global tracks) are written atomically into ``--out`` every
``core.stats_interval_s`` and at the end.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import dataclasses
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from numpy.typing import NDArray

from sdr_isac import config as config_mod
from sdr_isac.errors import ConfigError, SdrIsacError, WireFormatError, number_argument
from sdr_isac.executors import keep_freed_memory
from sdr_isac.fusion.records import TargetEstimate, Track
from sdr_isac.fusion.trackfusion import CentralisedFuser, TrackToTrackFuser
from sdr_isac.recording._atomic import write_json
from sdr_isac.stream import wire
from sdr_isac.stream.host import NodeStats, _log_now

__all__ = ["CoreHost", "add_parser", "run", "main"]

_KEEP_ERRORS = 100
#: newest measured state times kept per MECS host (by track id; the oldest forgotten beyond it)
_KEEP_SIGHTINGS = 4096
_MAX_UNKNOWN_IDS = 256          # distinct unknown publisher ids counted one by one (the rest together)
#: track sets held per MECS host while the fusion waits for the others (the oldest forgotten beyond it)
_KEEP_SETS = 4096
#: fusions at most in one cycle (a burst of sets is fused over several cycles: the core publishes on time)
_MAX_FUSIONS = 256
#: the fusion of what is held when the core stops takes about this long at most, s (then on to the newest set)
_END_BUDGET_S = 2.0
_POLL_MS = 20
#: farthest a track's newest state may lie from its track set's t0_s, s (about 11 days; beyond, the prediction to
#: the fusion time overflows, and no MECS host sends such a track)
MAX_TRACK_SPREAD_S = 1e6
#: farthest a MECS host's set time may lie ahead of the newest set of every other MECS host heard, s: the data
#: clocks of one core's MECS hosts agree far better; a set beyond would drive the fusion time (refused, ``ahead``)
MAX_HOST_LEAD_S = 3600.0
_log = logging.getLogger(__name__)


class _MecsCounters:
    """What the core counts of one MECS host beyond the host's node counters (:class:`NodeStats`)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.backwards = 0
        self.tracks_backwards = 0
        self.tracks_implausible = 0
        self.tracks = 0
        self.estimates = 0
        self.late = 0
        self.ahead = 0
        self.sets_dropped = 0

    def to_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "backwards": self.backwards, "tracks_backwards": self.tracks_backwards,
                "tracks_implausible": self.tracks_implausible, "tracks": self.tracks, "estimates": self.estimates,
                "late": self.late, "ahead": self.ahead, "sets_dropped": self.sets_dropped}


def _first_t_s(track: Track, tail: tuple[NDArray[np.float64], NDArray[np.float64]] | None) -> float:
    """The first time known of a MECS track, s: the start of the tail its message carried, else its state's."""
    return float(min(tail[0][0], track.t_s[0])) if tail is not None and len(tail[0]) else float(track.t_s[0])


class CoreHost:
    """Subscribes to MECS hosts, fuses their tracks (or, centralised, tracks their estimates), publishes global tracks.

    Parameters
    ----------
    cfg : Config
        ``core`` gives the MECS hosts, the endpoints, the mode and the fusion settings; ``tracking`` the
        central tracker's settings in the centralised mode.
    out_dir : str or Path, optional
        Write ``core_stats.json`` and ``tracks.json`` here, every ``core.stats_interval_s`` and at the end.
    context : zmq.Context, optional

    Raises
    ------
    ConfigError
        No MECS host is configured, or ``core.publish_endpoint`` cannot be bound.
    """

    def __init__(self, cfg: config_mod.Config, out_dir: str | Path | None = None,
                 context: zmq.Context | None = None) -> None:
        core = cfg.core
        if not core.mecs_endpoints:
            raise ConfigError("core.mecs_endpoints = []: allowed at least one MECS host's publish endpoint; list "
                              "them with their ids in [core] (mecs_endpoints, mecs_ids)", key="core.mecs_endpoints")
        self.cfg = cfg
        self.core = core
        self.out_dir = Path(out_dir) if out_dir else None
        self.context = context or zmq.Context.instance()
        # a new local track older than the fusion time by more than the wait for slower hosts (and one fusion
        # step) comes from a MECS host far behind: it waits for a fusion near its own time
        self.fuser = TrackToTrackFuser(core.gate_probability, core.ci_criterion, core.accel_psd_m2ps3,
                                       core.keep_states, coast_s=core.coast_s,
                                       join_within_s=core.reorder_s + core.publish_interval_s)
        self.central: CentralisedFuser | None = None
        if core.mode == "centralised":
            self.central = CentralisedFuser(cfg.tracking, core.mecs_ids, core.reorder_s, core.keep_states,
                                            station=core.node_id)
        self._kind = "estimates" if self.central is not None else "tracks"
        self._last_t0: dict[str, float] = {}              # centralised: each MECS host's newest set time
        self.mecs: dict[str, NodeStats] = {m: NodeStats() for m in core.mecs_ids}
        self.counters = {m: _MecsCounters(e) for m, e in zip(core.mecs_ids, core.mecs_endpoints)}
        self.latest: dict[str, wire.TrackSet] = {}
        # every MECS host's sets not yet fused past (oldest first): the core fuses on the data clock, each MECS
        # host's newest set at or before the fusion time (see _plan)
        self._sets: dict[str, collections.deque[wire.TrackSet]] = {}
        self._fused_t_s: float | None = None               # data time of the last fusion
        self._fused_sets: dict[str, wire.TrackSet] = {}   # the sets it fused
        self._track_times: dict[str, dict[str, float]] = {}       # MECS -> track id -> newest t_s taken
        self._measured_times: dict[str, dict[str, float]] = {}    # MECS -> track id -> newest measured t_s
        self.global_tracks: list[Track] = []
        self._members: dict[str, dict[str, str]] = {}
        self.rejected = 0
        self.unknown: dict[str, int] = {}
        self.unknown_total = 0
        self.published = 0
        self.skipped = 0                                  # fusions passed over to catch up (see _cycle)
        self.errors: list[str] = []
        self.errors_total = 0
        self._t0_s = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sub = self.context.socket(zmq.SUB)
        self._pub = self.context.socket(zmq.PUB)
        try:
            self._sub.setsockopt(zmq.LINGER, 0)
            self._sub.setsockopt(zmq.RCVHWM, 1000)
            self._sub.setsockopt(zmq.MAXMSGSIZE, int(core.max_message_mb * 2**20))
            self._sub.setsockopt(zmq.SUBSCRIBE, f"{self._kind}/".encode())
            self._pub.setsockopt(zmq.LINGER, 0)
            self._pub.setsockopt(zmq.SNDHWM, 64)
            try:
                self._pub.bind(core.publish_endpoint)
            except zmq.ZMQError as err:
                raise ConfigError(f"core.publish_endpoint = {core.publish_endpoint!r}: cannot bind ({err.strerror});"
                                  " another program may hold that port, or the address is not one of this "
                                  "machine's: stop it, or choose another endpoint (core.publish_endpoint, or "
                                  "--publish of sdr-isac core)", key="core.publish_endpoint") from err
            for endpoint in core.mecs_endpoints:
                self._sub.connect(endpoint)
        except BaseException:
            self._close_sockets()
            raise
        self._thread = threading.Thread(target=self._loop, name="core-host", daemon=True)
        self._alive_at_stop: bool | None = None

    # ---- life cycle ---------------------------------------------------------------------------
    def start(self) -> CoreHost:
        """Start the receiving and fusing thread (the C allocator keeps the memory that messages free:
        :func:`sdr_isac.executors.keep_freed_memory`)."""
        keep_freed_memory()
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (it fuses what it holds first, in about :data:`_END_BUDGET_S`), write the outputs one
        last time (with ``out_dir``) and close the sockets (not while the thread still runs after ``timeout_s``)."""
        if self._alive_at_stop is None:
            self._alive_at_stop = self._thread.is_alive()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self.out_dir is not None:
            with self._guard("writing the outputs"):
                self.write_outputs(self.out_dir)
        if self._thread.is_alive():             # its sockets are its own until it ends: never closed under it
            _log.warning("the core host's thread did not end within %g s; its sockets are left open", timeout_s)
            return
        self._close_sockets()

    def _close_sockets(self) -> None:
        self._sub.close(linger=0)
        self._pub.close(linger=0)

    def __enter__(self) -> CoreHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- the one guard ------------------------------------------------------------------------
    def _guard(self, where: str) -> _Guard:
        return _Guard(self, where)

    def _count_failure(self, where: str, err: Exception) -> None:
        detail = str(err) if isinstance(err, SdrIsacError) else f"{type(err).__name__}: {err}"
        with self._lock:
            self.errors_total += 1
            count = self.errors_total
            self.errors = (self.errors + [f"{where}: {detail}"[:500]])[-_KEEP_ERRORS:]
        if not isinstance(err, SdrIsacError):
            _log.error("%s: %s", where, detail[:500], exc_info=err if _log_now(count) else None)
        elif _log_now(count):
            _log.warning("%s: %s (%d so far)", where, detail[:500], count)

    # ---- the thread ---------------------------------------------------------------------------
    def _loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sub, zmq.POLLIN)
        next_cycle = next_write = 0.0
        while not self._stop.is_set():
            with self._guard("core loop") as step:
                if dict(poller.poll(_POLL_MS)):
                    for _ in range(1000):                        # drain, but fuse on time under a flood
                        if not self._receive_one():
                            break
                now = time.time()
                if now >= next_cycle:
                    next_cycle = now + self.core.publish_interval_s
                    self._check_presence(now)
                    self._cycle()
                if self.out_dir is not None and now >= next_write:
                    next_write = now + self.core.stats_interval_s
                    self.write_outputs(self.out_dir)
            if step.failed:
                self._stop.wait(0.01)                             # never a hot loop of one recurring failure
        # the end: what is held is fused (no slower MECS host is waited for) and published once more, within
        # about _END_BUDGET_S (then on to the newest: stop() waits for this thread)
        with self._guard("fusing at the end"):
            began = time.monotonic()
            while self._cycle(flush=True, budget_s=max(_END_BUDGET_S - (time.monotonic() - began), 0.0)) \
                    >= _MAX_FUSIONS:
                pass

    def _receive_one(self) -> bool:
        """Take one message (False when none is waiting): decode, check the publisher and times, keep it."""
        try:
            frames = self._sub.recv_multipart(copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        received_s = time.time()
        try:
            msg = wire.decode(frames, max_bytes=int(self.core.max_message_mb * 2**20))
            found = wire.decode_estimates(msg) if self.central is not None else wire.decode_tracks(msg)
        except WireFormatError as err:
            with self._lock:
                self.rejected += 1
                count = self.rejected
                self.errors = (self.errors + [f"rejected message of {len(frames)} frames: {err}"[:500]])[
                    -_KEEP_ERRORS:]
            if _log_now(count):
                _log.warning("rejected a message of %d frames: %s (%d so far)", len(frames), err, count)
            return True
        if msg.node_id not in self.mecs:
            self._count_unknown(msg.node_id)
            return True
        if isinstance(found, wire.TrackSet):
            self._take(msg, found, received_s)
        else:
            self._take_estimates(msg, found, received_s)
        return True

    def _count_unknown(self, node_id: str) -> None:
        with self._lock:
            self.unknown_total += 1
            key = node_id if node_id in self.unknown or len(self.unknown) < _MAX_UNKNOWN_IDS else "(others)"
            self.unknown[key] = self.unknown.get(key, 0) + 1
            count = self.unknown_total
        if _log_now(count):
            _log.warning("%s from %r rejected: not one of core.mecs_ids (%s) (%d so far)", self._kind, node_id,
                         ", ".join(self.core.mecs_ids), count)

    def _take(self, msg: wire.Message, received: wire.TrackSet, received_s: float) -> None:
        """Account a MECS host's track set; keep it unless its time goes back (or lies far ahead of the other MECS
        hosts': :data:`MAX_HOST_LEAD_S`); drop tracks that go back."""
        mecs = received.node_id
        found: wire.TrackSet | None                       # what is kept of it (None: nothing yet)
        with self._lock:
            node, extra, back = self._account(msg, received_s)
            previous = self.latest.get(mecs)
            others = [f.t0_s for m, f in self.latest.items() if m != mecs]
            if previous is not None and received.t0_s < previous.t0_s:
                self._backwards(msg, previous.t0_s)
                found = previous                                  # nothing of it is taken
            elif others and received.t0_s > max(others) + MAX_HOST_LEAD_S:
                extra.ahead += 1
                node.failed += 1
                self.errors = (self.errors + [f"{mecs}/{msg.seq}: t0_s = {received.t0_s!r} s lies more than "
                                              f"{MAX_HOST_LEAD_S:g} s ahead of every other MECS host's newest set "
                                              f"({max(others)!r} s): its data clock is wrong; rejected"]
                               )[-_KEEP_ERRORS:]
                found = previous                                  # nothing of it is taken (None: nothing yet)
            else:
                # the newest time of each track of this MECS, including tracks left out because their time went
                # back (their time is not forgotten: a later, still older state is refused too)
                before = self._track_times.get(mecs, {})
                # a track whose newest state lies farther than MAX_TRACK_SPREAD_S from its set's time cannot be
                # fused with the others (the prediction between them overflows): refused and counted
                plausible = tuple(t for t in received.tracks
                                  if abs(float(t.t_s[-1]) - received.t0_s) <= MAX_TRACK_SPREAD_S)
                extra.tracks_implausible += len(received.tracks) - len(plausible)
                kept = tuple(t for t in plausible if float(t.t_s[-1]) >= before.get(t.track_id, -float("inf")))
                extra.tracks_backwards += len(plausible) - len(kept)
                self._track_times[mecs] = {**{t.track_id: before[t.track_id] for t in received.tracks
                                              if t.track_id in before},
                                           **{t.track_id: float(t.t_s[-1]) for t in kept}}
                # the newest state of each track that the MECS host measured, from every message (a fusion sees
                # only the latest set: a measured state followed by a predicted one before it would be missed)
                # (kept for tracks gone since: one measured, then deleted, between two fusions)
                sighted = dict(self._measured_times.get(mecs, {}))
                for t in kept:
                    if t.measured is not None and bool(t.measured[-1]):
                        sighted[t.track_id] = float(t.t_s[-1])
                if len(sighted) > _KEEP_SIGHTINGS:              # forget the oldest (tracks long deleted)
                    for track_id in sorted(sighted, key=sighted.__getitem__)[: len(sighted) - _KEEP_SIGHTINGS]:
                        del sighted[track_id]
                self._measured_times[mecs] = sighted
                found = dataclasses.replace(received, tracks=kept)
                node.processed += 1
            if found is not None and found is not previous:
                self.latest[mecs] = found
                held = self._sets.setdefault(mecs, collections.deque(maxlen=_KEEP_SETS))
                if len(held) == _KEEP_SETS:
                    extra.sets_dropped += 1              # the oldest, not fused (see _plan: not for long)
                held.append(found)
                if self._fused_t_s is not None and found.t0_s <= self._fused_t_s:
                    extra.late += 1                      # fused past its time: its tracks are predicted forward
            extra.tracks = len(found.tracks) if found is not None else 0
        self._announce_back(back)

    def _take_estimates(self, msg: wire.Message, estimates: list[TargetEstimate], received_s: float) -> None:
        """Centralised: account a MECS host's estimate set; queue it for the central tracker unless it goes back.

        Runs on the core's thread, as does :meth:`_cycle`: the central tracker needs no lock of its own.
        """
        mecs, central = msg.node_id, self.central
        if central is None:
            return
        with self._lock:
            node, extra, back = self._account(msg, received_s)
            previous = self._last_t0.get(mecs)
            if previous is not None and msg.t0_s < previous:
                self._backwards(msg, previous)
            else:
                self._last_t0[mecs] = msg.t0_s
                node.processed += 1
                extra.estimates = len(estimates)
                if not central.add(mecs, msg.t0_s, estimates):
                    extra.late += 1
                    self.errors = (self.errors + [f"{mecs}/{msg.seq}: t0_s = {msg.t0_s!r} s: late, the central "
                                                  f"tracker is at {central.t_s!r} s; dropped (core.reorder_s "
                                                  f"= {self.core.reorder_s} s)"])[-_KEEP_ERRORS:]
        self._announce_back(back)

    def _account(self, msg: wire.Message, received_s: float) -> tuple[NodeStats, _MecsCounters,
                                                                     wire.NodeStatus | None]:
        """Count a message of a configured MECS host (under the lock): its node counters, the end of an outage.

        Returns the MECS host's counters and, when the message ends an outage, its ``present`` status.
        """
        mecs = msg.node_id
        node = self.mecs[mecs]
        ended = node.on_seen(msg, received_s)
        back = node.status(mecs) if ended is not None else None
        node.received += 1
        node.on_seq(msg.seq)
        node.on_latency(max(received_s - msg.sent_s, 0.0))
        node.on_arrival(received_s)
        return node, self.counters[mecs], back

    def _backwards(self, msg: wire.Message, previous_s: float) -> None:
        """Count (under the lock) a set whose time goes back against the MECS host's previous one."""
        self.counters[msg.node_id].backwards += 1
        self.mecs[msg.node_id].failed += 1
        self.errors = (self.errors + [f"{msg.node_id}/{msg.seq}: t0_s = {msg.t0_s!r} s goes back from "
                                      f"{previous_s!r} s: rejected"])[-_KEEP_ERRORS:]

    def _announce_back(self, back: wire.NodeStatus | None) -> None:
        if back is not None:
            duration_s = back.outage.duration_s if back.outage is not None else None
            _log.warning("MECS host %s back after %.3g s", back.node_id, duration_s or 0.0)
            self._send(wire.encode_status(back))

    def _check_presence(self, now_s: float) -> None:
        """Mark MECS hosts silent for more than ``core.absent_after_s`` absent: drop their tracks, publish it."""
        with self._lock:
            gone = [(m, node.status(m)) for m, node in self.mecs.items()
                    if node.check_absent(now_s, self.core.absent_after_s)]
            for mecs, _ in gone:
                self.latest.pop(mecs, None)
                self._sets.pop(mecs, None)
                self._last_t0.pop(mecs, None)
                self.counters[mecs].tracks = 0
                self.counters[mecs].estimates = 0
                if self.central is not None:
                    self.central.drop(mecs)
        for mecs, status in gone:
            _log.warning("MECS host %s absent: nothing heard from it for more than core.absent_after_s = %g s; its "
                         "%s leave the fusion", mecs, self.core.absent_after_s, self._kind)
            self._send(wire.encode_status(status))

    def _cycle(self, flush: bool = False, budget_s: float | None = None) -> int:
        """Fuse the track sets on the data clock (or track the ready estimate sets) and publish the global tracks.

        ``flush``: fuse every set held (the core stops: no slower MECS host is waited for any more).  The fusions
        of one cycle take at most about ``budget_s`` (default ``core.publish_interval_s``) and one more fusion:
        beyond it the fusions between are passed over (counted ``skipped``) for the newest.  Returns the number of
        fusions planned (0 in the centralised mode).
        """
        budget_s = self.core.publish_interval_s if budget_s is None else budget_s
        members: dict[str, dict[str, str]] | None
        plan: list[tuple[float, dict[str, wire.TrackSet]]] = []
        if self.central is not None:
            before = self.central.failed
            tracks, members = self.central.update(flush=flush), None
            new = min(self.central.failed - before, _KEEP_ERRORS)
            if new:
                with self._lock:
                    self.errors = (self.errors + self.central.errors[-new:])[-_KEEP_ERRORS:]
        else:
            with self._lock:
                plan = self._plan(flush)
                sighted = {(m, tid): t for m, times in self._measured_times.items() for tid, t in times.items()}
                tracks, members = self.global_tracks, self._members
            began = time.monotonic()
            for n, (t_s, sets) in enumerate(plan):    # no fusion due: the global tracks of the last are published again
                if n < len(plan) - 1 and time.monotonic() - began > budget_s:
                    with self._lock:
                        self.skipped += 1
                    continue              # behind: on to the newest (it takes every host's newest set up to it)
                local = {m: list(found.tracks) for m, found in sets.items()}
                first = {(m, t.track_id): _first_t_s(t, found.tails.get(t.track_id))
                         for m, found in sets.items() for t in found.tracks}
                # a sighting after the fusion time is not yet of this fusion (its MECS host's later sets wait)
                seen = {key: t for key, t in sighted.items() if t <= t_s}
                tracks = self.fuser.update(local, t_s, first_t_s=first, measured_t_s=seen)
                members = self.fuser.members
        t0_s = max((float(t.t_s[-1]) for t in tracks), default=self._t0_s)
        with self._lock:
            self._t0_s = max(t0_s, self._t0_s)
            seq = self.published
            self.global_tracks = tracks
            self._members = members or {}
        # encoded before it is counted: a set the wire refuses (the guard counts the error) is not "published"
        frames = wire.encode_tracks(self.core.node_id, seq, self._t0_s, tracks, tail=self.core.tail_states,
                                    members=members)
        with self._lock:
            self.published += 1
        self._send(frames)
        return len(plan)

    def _plan(self, flush: bool) -> list[tuple[float, dict[str, wire.TrackSet]]]:
        """The fusions due (under the lock): data times, oldest first, each with every MECS host's newest set at
        or before it; forgets the sets no later fusion needs.

        The fusion time follows the slowest MECS host expected: the newest set time that every present MECS host
        (heard or still awaited) has reached, but at most ``core.reorder_s`` behind the newest set of any (and
        no later than the oldest set of a host whose :data:`_KEEP_SETS` are all held); ``flush``: the newest
        set of any.  The set times up to it not yet fused are fused in turn, at least
        ``core.publish_interval_s`` of data time apart (the newest always; each fusion takes every host's
        newest set at or before its time, so a set passed over is not lost), at most :data:`_MAX_FUSIONS` a
        cycle.  Fusing by arrival instead took a MECS host's burst of sets 18 s ahead of the others as the
        fusion time and predicted the others' tracks 18 s forward, where they gated with other targets' global
        tracks.  A set at or before a fusion already made (a MECS host more than ``core.reorder_s`` behind) is
        counted ``late`` and fused at the next fusion time, its tracks predicted forward to it (a track of it not
        yet in a global track waits while it is older than the fusion time by more than ``core.reorder_s`` and
        ``core.publish_interval_s``: see ``join_within_s`` of
        :class:`~sdr_isac.fusion.trackfusion.TrackToTrackFuser`); where no new set time is due and the sets at
        the last fusion time changed (such a set, or a MECS host gone absent), that time is fused again.
        """
        held = {m: sets for m, sets in self._sets.items() if sets}
        if not held:
            if self._fused_sets and self._fused_t_s is not None:       # every MECS host's tracks left the fusion
                self._fused_sets = {}
                return [(self._fused_t_s, {})]
            return []
        newest = max(sets[-1].t0_s for sets in held.values())
        awaited = [held[m][-1].t0_s if m in held else -float("inf") for m, node in self.mecs.items()
                   if node.state == "present"]
        end = newest if flush else max(min(awaited, default=newest), newest - self.core.reorder_s,
                                       max((sets[0].t0_s for sets in held.values() if len(sets) == _KEEP_SETS),
                                           default=-float("inf")))
        last = self._fused_t_s
        due = sorted({s.t0_s for sets in held.values() for s in sets
                      if s.t0_s <= end and (last is None or s.t0_s > last)})
        times: list[float] = []
        for t_s in reversed(due):                 # the newest, then each at least a publish interval before the next
            if not times or t_s <= times[-1] - self.core.publish_interval_s:
                times.append(t_s)
        times = times[::-1][:_MAX_FUSIONS]
        starts = {m: [s.t0_s for s in sets] for m, sets in held.items()}

        def at(t_s: float) -> dict[str, wire.TrackSet]:
            chosen = {}
            for m, sets in held.items():
                i = bisect.bisect_right(starts[m], t_s)
                if i:
                    chosen[m] = sets[i - 1]
            return chosen

        plan = [(t_s, at(t_s)) for t_s in times]
        if not plan and last is not None:
            again = at(last)
            if {m: id(s) for m, s in again.items()} != {m: id(s) for m, s in self._fused_sets.items()}:
                plan = [(last, again)]
        if plan:
            self._fused_t_s, self._fused_sets = plan[-1][0], plan[-1][1]
            for sets in held.values():            # keep the newest set at or before the fusion time, and later ones
                while len(sets) > 1 and sets[1].t0_s <= self._fused_t_s:
                    sets.popleft()
        return plan

    def _send(self, frames: list[Any]) -> None:
        try:
            self._pub.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            pass                                                  # a slow subscriber loses tracks, never the core

    # ---- outputs ------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters and every MECS host's state.

        ``mode``: ``tracks`` or ``centralised``; ``alive``: the thread runs (after :meth:`stop`: whether it still
        ran then); ``rejected``: messages that did not decode as ``tracks`` (centralised: ``estimates``);
        ``unknown_publishers`` (per id) and ``unknown_total``: sets from ids not in ``core.mecs_ids``;
        ``published``: global track sets sent; ``skipped``: fusions passed over to catch up (a cycle's budget,
        :meth:`_cycle`); ``held_back``: local tracks not in a global track left out of a fusion because they were
        far older than it (a MECS host far behind: ``join_within_s`` of the fuser); ``mecs``: per MECS host its node
        counters (``state`` ``waiting`` before its first message, then ``present`` or ``absent``,
        ``last_seen_s``, ``absent_since_s``, ``outages`` with ``start_s``, ``end_s``, ``duration_s``),
        ``backwards`` (track or estimate sets whose ``t0_s`` went back), ``tracks_backwards`` (tracks dropped
        because their time went back), ``tracks_implausible`` (tracks dropped because their newest state lies
        more than :data:`MAX_TRACK_SPREAD_S` from their set's ``t0_s``), ``tracks`` (in the fusion now),
        ``estimates`` (in its latest set), ``late`` (estimate sets that came after a later set was tracked; in the
        tracks mode, track sets at or before a fusion already made), ``ahead`` (track sets refused because their
        time lay more than :data:`MAX_HOST_LEAD_S` ahead of every other MECS host's), ``sets_dropped`` (track sets
        dropped unfused from a full queue, :data:`_KEEP_SETS`)
        and its ``endpoint``; ``central``
        (centralised mode only): the central tracker's counters
        (:meth:`~sdr_isac.fusion.trackfusion.CentralisedFuser.stats`).
        """
        alive = self._alive_at_stop if self._alive_at_stop is not None else self._thread.is_alive()
        with self._lock:
            mecs = {}
            for m, node in self.mecs.items():
                entry = {**node.to_dict(), **self.counters[m].to_dict()}
                if node.last_seen_s is None:
                    entry["state"] = "waiting"
                mecs[m] = entry
            central = self.central.stats() if self.central is not None else None
            return {"node_id": self.core.node_id, "mode": self.core.mode, "alive": alive,
                    "stopped": self._stop.is_set(),
                    "rejected": self.rejected, "unknown_publishers": dict(self.unknown),
                    "unknown_total": self.unknown_total, "published": self.published, "skipped": self.skipped,
                    "held_back": self.fuser.held_back,
                    "global_tracks": len(self.global_tracks), "errors_total": self.errors_total,
                    "errors": self.errors[-20:], "mecs": mecs,
                    "absent_mecs": sorted(m for m, e in mecs.items() if e["state"] == "absent"),
                    **({"central": central} if central is not None else {})}

    def tracks_document(self) -> dict[str, Any]:
        """The global tracks as ``tracks.json`` holds them: node_id, seq, t0_s and the wire's track objects."""
        with self._lock:
            tracks, members = list(self.global_tracks), dict(self._members)
            seq, t0_s = self.published - 1, self._t0_s
        return {"node_id": self.core.node_id, "seq": seq, "t0_s": t0_s,
                "tracks": [wire.track_to_dict(t, self.core.tail_states, members.get(t.track_id)) for t in tracks]}

    def write_outputs(self, out_dir: str | Path) -> None:
        """Write ``core_stats.json`` and ``tracks.json`` into ``out_dir`` (atomically)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "tracks.json", self.tracks_document())
        write_json(out / "core_stats.json", self.stats())


class _Guard:
    """An exception in one step of the core's thread is counted and logged, never the end of the thread."""

    def __init__(self, host: CoreHost, where: str) -> None:
        self.host, self.where, self.failed = host, where, False

    def __enter__(self) -> _Guard:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: object) -> bool:
        if err is None or not isinstance(err, Exception):
            return False                                          # KeyboardInterrupt, SystemExit: not ours
        self.failed = True
        self.host._count_failure(self.where, err)
        return True


# ---- the command ------------------------------------------------------------------------------------
def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", required=True, help="TOML configuration with a [core] section")
    p.add_argument("--publish", metavar="URL", help="override core.publish_endpoint")
    p.add_argument("--timeout", type=number_argument("s", low=0.0, low_open=True,
                                                     hint="leave --timeout out to run until stopped"),
                   metavar="S", help="stop after S seconds (> 0)")
    p.add_argument("--out", metavar="DIR", help="write core_stats.json and tracks.json here (kept up to date)")


def add_parser(subparsers: Any) -> None:
    """Add the ``core`` command to the ``sdr-isac`` subcommands (``subparsers`` of argparse)."""
    p = subparsers.add_parser("core", help="run the core host that fuses the tracks of several MECS hosts",
                              description="Subscribe to the tracks of every MECS host of [core], fuse them "
                                          "(chi-square gating, assignment, covariance intersection) into global "
                                          "tracks with stable ids, publish them; or, with core.mode = "
                                          "\"centralised\", track the MECS hosts' estimates in one central "
                                          "tracker; report MECS hosts that fall silent; stop on SIGINT/SIGTERM "
                                          "or after --timeout.")
    _add_arguments(p)
    p.set_defaults(func=run)


def _stop_on_signals() -> threading.Event:
    import signal

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def run(args: argparse.Namespace) -> int:
    """Run the core host until SIGINT/SIGTERM or ``args.timeout``; print a summary; 0 when it ran."""
    cfg = config_mod.load(args.config)
    if args.publish:
        cfg = dataclasses.replace(cfg, core=dataclasses.replace(cfg.core, publish_endpoint=args.publish))
    stop = _stop_on_signals()
    deadline = time.monotonic() + args.timeout if args.timeout else None
    host = CoreHost(cfg, out_dir=args.out).start()
    print(f"core ({cfg.core.mode}): subscribed to "
          f"{', '.join(f'{m} at {e}' for m, e in zip(cfg.core.mecs_ids, cfg.core.mecs_endpoints))}"
          f"; publishing on {cfg.core.publish_endpoint}", flush=True)
    try:
        while not stop.wait(0.1):
            if deadline is not None and time.monotonic() > deadline:
                break
    finally:
        host.stop()
    stats = host.stats()
    print(f"core: {stats['published']} track set(s) published, {stats['global_tracks']} global track(s) at the end;"
          f" {stats['rejected']} message(s) rejected, {stats['unknown_total']} from unknown publishers, "
          f"{stats['errors_total']} error(s); thread {'alive' if stats['alive'] else 'DEAD'} at the end", flush=True)
    if args.out:
        print(f"core: wrote {args.out}/core_stats.json and {args.out}/tracks.json", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m sdr_isac.stream.core --config FILE [--out DIR] [--timeout S] [--publish URL]``."""
    parser = argparse.ArgumentParser(prog="python -m sdr_isac.stream.core", description=__doc__.split("\n")[0])
    _add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except SdrIsacError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
