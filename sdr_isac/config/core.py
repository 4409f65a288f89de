"""The ``[core]`` section: a core host over several MECS hosts (:mod:`sdr_isac.stream.core`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sdr_isac.config.base import _check_choice, _check_endpoint, _check_fields, _fail, _num

__all__ = ["CoreConfig", "CORE_MODES"]

#: What the core host fuses: the MECS hosts' tracks (track-to-track fusion by covariance intersection) or
#: their target estimates (one central tracker over all of them)
CORE_MODES = ("tracks", "centralised")

#: A host id as the wire format takes it (``node_id``): 1 ... 64 characters from A-Z a-z 0-9 _ . -
_HOST_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")


def _check_host_id(key: str, value: str) -> None:
    if not _HOST_ID.match(value):
        _fail(key, value, "1 ... 64 characters from A-Z a-z 0-9 _ . - (the host's node_id on the wire)",
              "rename it")


@dataclass(frozen=True)
class CoreConfig:
    """Which MECS hosts a core host subscribes to, how it fuses what they publish, and where it publishes.

    Parameters
    ----------
    mecs_endpoints : tuple of str
        The MECS hosts' publish endpoints (``tcp://HOST:PORT``), where they publish ``tracks/<id>`` and
        ``estimates/<id>``.
    mecs_ids : tuple of str
        The id (``node_id`` of their ``tracks`` or ``estimates`` messages) of each MECS host, one per endpoint,
        distinct, 1 ... 64 characters from ``A-Z a-z 0-9 _ . -``.  Messages from other ids are rejected and
        counted.
    mode : str
        ``tracks`` (default): fuse the MECS hosts' tracks (``tracks/<id>``) by chi-square gating, assignment
        and covariance intersection.  ``centralised``: run one tracker (Stone Soup, the ``[tracking]``
        section's filter, association, process noise and M-of-N rules) over the MECS hosts' target estimates
        (``estimates/<id>``): optimal where the MECS hosts' estimates are independent.
    reorder_s : float
        How long (on the data clock) the core waits for a slower MECS host, 0 ... 60 s (default 0.2 s).
        Centralised mode: an estimate set waits for a slower MECS host's earlier sets at most this long before
        it is tracked anyway; a set that arrives after a later one was tracked is dropped and counted
        (``late``).  Tracks mode: the core fuses each set time once every present MECS host (heard from, or
        still awaited) has published up to it, or once it lies this far behind the newest set of any; a set
        at or before a fusion already made is counted ``late`` and its tracks are predicted forward to the next
        fusion (a track of it not yet in a global track waits while it is older than the fusion time by more
        than ``reorder_s + publish_interval_s``).  The wait costs latency: in real time the fused tracks trail
        the newest set by the spread of the MECS hosts' set times (at most ``reorder_s``), and by all of
        ``reorder_s`` while a configured MECS host has never been heard or is silent but not yet absent.
        0: nobody is waited for (each set fused as soon as it is the newest).  A replay or simulation whose MECS
        hosts run faster than real time, seconds of data apart, needs seconds here.
    publish_endpoint : str
        Where the core host publishes global tracks (``tracks/<node_id>``) and the MECS hosts' state
        (``status/<mecs id>``).
    node_id : str
        The core host's id on the wire.
    absent_after_s : float
        A MECS host silent for longer than this is absent: its tracks leave the fusion, 0.01 ... 3600 s.
    publish_interval_s : float
        The core fuses and publishes this often, 0.001 ... 60 s; tracks mode: it fuses at most once per this much
        data time too (set times closer together are fused once, at the later).
    gate_probability : float
        Tracks mode: probability that a true pair of tracks passes the chi-square gate on their 3-D position
        difference, 0.5 ... 0.999999999.
    ci_criterion : str
        Tracks mode: ``trace`` or ``determinant``: what covariance intersection minimises.
    accel_psd_m2ps3 : float
        Tracks mode: white-acceleration power spectral density of the prediction to a common time, 0 ... 1e6 m²/s³.
    coast_s : float
        Tracks mode: how long a global track whose members have all ended is kept, 0 ... 3600 s (default 2 s).
        A new local track of any MECS host that passes the gate against its predicted state takes its id
        (a target crossing a gap between two MECS hosts' areas, or a MECS host's tracker that lost and
        restarted it, stays one global track); it is not published while it has no member.  0: it ends at once.
    keep_states : int
        Fused states kept per global track, 1 ... 100000.
    tail_states : int
        History positions published with each global track (for displays), 0 ... 64.
    max_message_mb : float
        Largest ``tracks`` or ``estimates`` message taken from a MECS host, 0.001 ... 4096 MiB (ZeroMQ
        applies it to each frame; the whole message is checked once received).
    stats_interval_s : float
        ``core_stats.json`` and ``tracks.json`` are rewritten this often (with ``--out``), 0.01 ... 3600 s.
    """

    mecs_endpoints: tuple[str, ...] = ()
    mecs_ids: tuple[str, ...] = ()
    publish_endpoint: str = "tcp://127.0.0.1:5580"
    node_id: str = "core"
    mode: str = "tracks"
    reorder_s: float = _num(0.2, 0.0, 60.0, "s")
    absent_after_s: float = _num(3.0, 0.01, 3600.0, "s")
    publish_interval_s: float = _num(0.1, 0.001, 60.0, "s")
    gate_probability: float = _num(0.999, 0.5, 0.999999999)
    ci_criterion: str = "trace"
    accel_psd_m2ps3: float = _num(1.0, 0.0, 1e6, "m²/s³")
    coast_s: float = _num(2.0, 0.0, 3600.0, "s")
    keep_states: int = _num(100, 1, 100000, "states")
    tail_states: int = _num(8, 0, 64, "states")
    max_message_mb: float = _num(16.0, 0.001, 4096.0, "MiB")
    stats_interval_s: float = _num(1.0, 0.01, 3600.0, "s")

    def __post_init__(self) -> None:
        _check_fields(self)
        for i, endpoint in enumerate(self.mecs_endpoints):
            _check_endpoint(f"core.mecs_endpoints[{i}]", endpoint)
        _check_endpoint("core.publish_endpoint", self.publish_endpoint)
        if len(self.mecs_ids) != len(self.mecs_endpoints):
            _fail("core.mecs_ids", list(self.mecs_ids), f"one id per entry of core.mecs_endpoints "
                  f"({len(self.mecs_endpoints)})", "list the node_id of each MECS host, in the endpoints' order")
        for i, mecs in enumerate(self.mecs_ids):
            _check_host_id(f"core.mecs_ids[{i}]", mecs)
        if len(set(self.mecs_ids)) != len(self.mecs_ids):
            _fail("core.mecs_ids", list(self.mecs_ids), "distinct ids", "give every MECS host its own node_id")
        _check_host_id("core.node_id", self.node_id)
        if self.node_id in self.mecs_ids:
            _fail("core.node_id", self.node_id, "an id that no MECS host has", "rename the core host")
        _check_choice("core.ci_criterion", self.ci_criterion, ("trace", "determinant"))
        _check_choice("core.mode", self.mode, CORE_MODES, "fuse the MECS hosts' tracks, or their estimates in one "
                      "central tracker")
