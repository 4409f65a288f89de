"""The fusion engine: the captures or detections of one time-aligned set in, :class:`TargetEstimate` records out.

The engine is what a fusion host does beyond its network: it knows which
sensing settings apply to which capture (a node that transmits senses its own
echoes; a receive-only node hears the transmitters on its carrier, each on its
own reference signals, as bistatic range sums), it senses one capture
(:func:`sense_capture`, a module-level task that any executor of
:mod:`sdr_isac.executors` can run in another process or on another machine),
and it fuses the node results of one time-aligned set by the scene's
cooperation mode, looked up by name in the registry of
:mod:`sdr_isac.fusion.modes` (:meth:`FusionEngine.mode`): multi-BS (active and
passive, :func:`~sdr_isac.fusion.modes.multi_bs.fuse_nodes`), macro-micro
(:func:`~sdr_isac.fusion.modes.macro_micro.fuse_macro_micro`); BS-UE labels
the estimates (:func:`~sdr_isac.fusion.modes.bs_ue.live_case`) and BS-RIS runs
on its scans (:meth:`FusionEngine.ris_step`).  It knows nothing of sockets, threads,
counters or time alignment: :class:`sdr_isac.stream.host.FusionHost` receives,
accounts, aligns, schedules and publishes around it.

>>> from sdr_isac import config
>>> engine = FusionEngine(config.load("hw_configs/sim_multi_bs.toml"))   # doctest: +SKIP
>>> results = {c.node_id: engine.sense(c, seq) for seq, c in enumerate(captures)}   # doctest: +SKIP
>>> engine.fuse(results, t_s=0.0)                                         # doctest: +SKIP
[TargetEstimate(position_m=array([...]), ...)]
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sdr_isac import config as config_mod
from sdr_isac import sensing
from sdr_isac.capture import Capture
from sdr_isac.errors import InputError, SensingError
from sdr_isac.fusion import links
from sdr_isac.fusion.modes import NodePlace, mode_fusion
from sdr_isac.fusion.modes.bs_ue import live_case
from sdr_isac.fusion.modes.ris import RisEstimate, RisGeometry, estimate_ris_target
from sdr_isac.fusion.multiband import Band
from sdr_isac.fusion.records import TargetEstimate
from sdr_isac.sensing import Detection
from sdr_isac.sensing.csi import ChannelEstimate, known_reference
from sdr_isac.sensing.detection import significance_threshold
from sdr_isac.sensing.pipeline import built_frame
from sdr_isac.waveform import IsacFrame

_log = logging.getLogger(__name__)

__all__ = ["SENSING_METHODS", "SensingJob", "NodeResult", "RisSighting", "FusionEngine", "sense_capture",
           "sense_passive_ssb", "reference_signals"]


#: how a job senses: the range-Doppler map pipeline (:func:`sdr_isac.sensing.process`), or a receive-only node's
#: paths on a gNB's SS/PBCH blocks (:func:`sdr_isac.fusion.links.passive_ssb_paths`)
SENSING_METHODS = ("map", "passive_ssb")


@dataclass(frozen=True)
class SensingJob:
    """How to sense a capture once: the transmitter heard (None: the node's own echoes), its frame, the settings.

    Attributes
    ----------
    source : str or None
    frame : FrameConfig
    config : SensingConfig
    method : str
        One of :data:`SENSING_METHODS`.
    num_paths : int
        ``passive_ssb``: paths fitted (the line of sight and ``num_paths - 1`` echoes at most), >= 2.
    """

    source: str | None
    frame: config_mod.FrameConfig
    config: config_mod.SensingConfig
    method: str = "map"
    num_paths: int = 2

    def __post_init__(self) -> None:
        if self.method not in SENSING_METHODS:
            raise InputError(f"method = {self.method!r}: allowed one of {', '.join(SENSING_METHODS)}")
        if isinstance(self.num_paths, bool) or not isinstance(self.num_paths, int) or self.num_paths < 2:
            raise InputError(f"num_paths = {self.num_paths!r}: allowed a whole number >= 2 (the line of sight and "
                             "at least one echo)")


def sense_capture(capture: Capture, jobs: Sequence[SensingJob]) -> list[sensing.SensingResult]:
    """Sense ``capture`` once per job, in order (the task an executor runs; module-level, picklable arguments).

    Parameters
    ----------
    capture : Capture
        ``iq`` complex64, shape (C, n).
    jobs : sequence of SensingJob
        From :meth:`FusionEngine.sensing_jobs`.

    Returns
    -------
    list of SensingResult
        One per job, in the order of ``jobs``.

    Raises
    ------
    SensingError
        As :func:`sdr_isac.sensing.process` (or :func:`sense_passive_ssb`) raises it for the first job that fails;
        :class:`~sdr_isac.errors.NonFiniteSampleError` for a NaN or infinite sample, found by the first job's
        check (the samples are read for it once, whatever the number of jobs).
    """
    # the jobs only read the samples, so the first job's check of them (in its usual place) holds for the others:
    # a receive-only node's k jobs read them once, not k times (Capture.checked_once: a copy made here never
    # leaves the function; a capture that already checks once, a host's, is its holder's promise)
    capture = capture.checked_once()
    return [sense_passive_ssb(capture, job) if job.method == "passive_ssb" else
            sensing.process(capture, job.frame, job.config) for job in jobs]


def sense_passive_ssb(capture: Capture, job: SensingJob) -> sensing.SensingResult:
    """A receive-only node's capture sensed on the SS/PBCH blocks (and PDSCH DMRS) of ``job.source``.

    Why not the map pipeline: on this sparse mask it reported only the line of
    sight, at the CFO's velocity (-60 m/s for 700 Hz), and no echo.  The
    node's CFO (2.3 % of a subcarrier) leaks the strong direct path from the
    unknown data REs into the pilots (inter-carrier interference ~38 dB over
    the noise per RE), the map's median noise level is inflated by the direct
    path's sidelobes on a mask with 4-symbol blocks (the echo's SNR and CRB
    come out 40 dB wrong), and the SSB-only map's CFAR, whose guard cells are
    narrower than the mainlobe of a 240-of-612-subcarrier mask, passes a comb
    replica at 2.56 km.  Here: cell search (timing, cell id, CFO), the direct
    path's Doppler as the rest of the CFO, CLEAN + RELAX on the known REs,
    the noise level from the residual and each path's CRB on that mask
    (:func:`sdr_isac.fusion.links.passive_ssb_paths`).

    Detections are bistatic, delays from the capture's ``frame_offset`` (as
    the pipeline's; :func:`sdr_isac.fusion.links.passive_links` references
    them to the line of sight).  Kept: the strongest path (the line of sight)
    and every path whose periodogram peak over the noise
    (``map_snr_db``) passes ``job.config.pfa`` and that lies outside the
    resolution cell (``1 / bandwidth`` in delay, ``1 / span`` in Doppler) of
    a stronger kept path: a residual there is the stronger path's model
    error, not a target.  ``diagnostics``: cell id, block index, CFO (Hz),
    noise variance, pilots, timings.

    Parameters
    ----------
    capture : Capture
        ``iq`` complex64, shape (C, n), n >= one frame.
    job : SensingJob
        ``method = "passive_ssb"``.

    Returns
    -------
    SensingResult
        ``map`` and ``csi`` None.
    """
    start = time.perf_counter()
    capture.check_samples()                   # NaN or infinity: NonFiniteSampleError (a host counts it rejected)
    frame = built_frame(job.frame)
    found = links.passive_ssb_paths(capture, frame, job.config.signals, job.num_paths)
    carrier = float(capture.center_freq_hz or job.frame.carrier_hz)
    grid = found.grid
    dets = sorted((links.path_detection(p, carrier, grid.num_pilots) for p in found.paths),
                  key=lambda d: d.map_snr_db, reverse=True)
    threshold_db = 10 * math.log10(significance_threshold(job.config.pfa, capture.num_channels))
    bandwidth_hz = grid.num_subcarriers * grid.subcarrier_spacing_hz
    span_s = float(grid.symbol_times_s[-1] - grid.symbol_times_s[0]) + 1.0 / grid.subcarrier_spacing_hz
    kept: list[Detection] = []
    for d in dets:
        if kept and d.map_snr_db < threshold_db:
            continue
        if any(abs(d.delay_s - k.delay_s) < 1.0 / bandwidth_hz and abs(d.doppler_hz - k.doppler_hz) < 1.0 / span_s
               for k in kept):
            continue
        kept.append(d)
    diagnostics = {"method": "passive_ssb", "n_cell_id": found.cell.n_cell_id, "i_ssb_bar": found.cell.i_ssb_bar,
                   "cfo_hz": found.cfo_hz, "frame_start": found.frame_start, "used_res": grid.num_pilots,
                   "paths": len(found.paths), "timings": {"detect_s": time.perf_counter() - start}}
    return sensing.SensingResult(None, kept, None, found.frame_start, diagnostics)


@dataclass(frozen=True)
class NodeResult:
    """What one node's capture (or detections message) of a time-aligned set gave.

    Attributes
    ----------
    node_id : str
    seq : int
        The node's sequence number of the capture.
    t0_s : float
        Capture time, s.
    detections : tuple of Detection
        Every detection (a receive-only node: those of every transmitter heard, in the order of its sources).
    by_source : dict
        Receive-only node: transmitter id -> its detections (bistatic range sums); empty otherwise.
    """

    node_id: str
    seq: int
    t0_s: float
    detections: tuple[Detection, ...] = ()
    by_source: Mapping[str, tuple[Detection, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class RisSighting:
    """A target found by a whole RIS scan: the estimate (mode ``ris``) and what the RIS saw.

    Attributes
    ----------
    estimate : TargetEstimate
        Global position at the target height, its covariance, ``mode = "ris"``.
    ris_id : str
    found : RisEstimate
        Range, radial velocity and azimuth from the surface with their CRB variances.
    frames : int
        Frames of the scan.
    seq : int
        Sequence number of the frame the range came from (the strongest step).
    t0_s : float
        Its capture time, s.
    truth : list of dict
        The truth targets of that frame (simulated or replayed sources), as the node sent them.
    """

    estimate: TargetEstimate
    ris_id: str
    found: RisEstimate
    frames: int
    seq: int
    t0_s: float
    truth: list[dict[str, Any]] = field(default_factory=list)


def reference_signals(node_id: str, source: str, frame: config_mod.FrameConfig) -> tuple[str, ...]:
    """The reference signals of ``source``'s frame, what a receive-only node ``node_id`` knows of it.

    Raises :class:`SensingError` when the frame carries none.
    """
    signals = tuple(s for s in ("prs", "dmrs", "srs", "trs") if getattr(frame, s) is not None)
    if frame.ssb is not None:                       # PSS, SSS and the PBCH DMRS: known without the MIB payload
        signals += ("ssb_pss", "ssb_sss", "pbch_dmrs")
    if not signals:
        raise SensingError(f"node {node_id!r} is receive-only and the frame of {source!r} it hears carries no "
                           "reference signal (prs, dmrs, srs, trs, ssb): give the transmitter's frame one")
    return signals


class FusionEngine:
    """Sensing settings per capture, per-node sensing, and the fusion of a time-aligned set (no network).

    Parameters
    ----------
    cfg : Config
        ``scene`` places the nodes; ``sensing`` the processing; ``frame`` the
        waveform of captures that carry none; ``fusion`` the modes and gates.
    passive_ssb_paths : int
        Paths a receive-only node fits on a transmitter's SS/PBCH blocks (the
        line of sight and up to ``passive_ssb_paths - 1`` echoes), >= 2; each
        one costs a CLEAN pass and RELAX refits.
    """

    def __init__(self, cfg: config_mod.Config, passive_ssb_paths: int = 2):
        if isinstance(passive_ssb_paths, bool) or not isinstance(passive_ssb_paths, int) or passive_ssb_paths < 2:
            raise InputError(f"passive_ssb_paths = {passive_ssb_paths!r}: allowed a whole number >= 2 (the line of "
                             "sight and at least one echo)")
        self.cfg = cfg
        self.passive_ssb_paths = passive_ssb_paths
        self._sources: dict[str, list[str]] = {}                 # receive-only node -> transmitters it hears
        if cfg.fusion.min_nodes == 1 and cfg.scene is not None:
            # (a receive-only node's detections are bistatic: it has no single-node fix)
            blind = [n.id for n in cfg.scene.nodes
                     if n.antenna_pattern == "isotropic" and n.rx_array.size > 1 and n.transmits]
            if blind:
                # a linear array's steering is the same for a target and its mirror image across the array's axis
                _log.warning("fusion.min_nodes = 1: the single-node fixes of %s place every target in front of the "
                             "receive array (the half-plane its yaw_deg points to); with isotropic elements a target "
                             "behind is seen as well and placed at its mirror image, far outside its covariance. "
                             "Set scene.nodes.antenna_pattern = '38.901' for a directional panel, point yaw_deg at "
                             "the area sensed, or keep fusion.min_nodes >= 2", ", ".join(blind))
        self._ris_scans: dict[tuple[str, str], list[dict[str, Any]]] = {}   # (node, RIS) -> steps so far

    # ---- the scene --------------------------------------------------------------------------------
    def place(self, node_id: str) -> NodePlace | None:
        """Where the scene puts ``node_id`` (position, boresight, role, whether it transmits); None if it has
        no such node."""
        scene = self.cfg.scene
        if scene is None or not any(n.id == node_id for n in scene.nodes):
            return None
        node = scene.node(node_id)
        return NodePlace(node.id, tuple(float(v) for v in node.position_m), float(node.yaw_deg), node.role,
                         bool(node.transmits))

    def node_info(self, node_id: str) -> dict[str, Any] | None:
        """:meth:`place` as the JSON object messages carry (``node`` of ``detections`` and ``rdmap``): ``id``,
        ``role``, ``position_m`` (m), ``yaw_deg`` (degrees from +x towards +y), ``transmits``; None if none."""
        place = self.place(node_id)
        if place is None:
            return None
        return {"id": place.id, "role": place.role, "position_m": list(place.position_m), "yaw_deg": place.yaw_deg,
                "transmits": place.transmits}

    def node_frame(self, node_id: str) -> config_mod.FrameConfig:
        """The frame a scene node transmits (or, receive-only, is tuned to): its own, else the file's."""
        scene = self.cfg.scene
        node = scene.node(node_id) if scene is not None and any(n.id == node_id for n in scene.nodes) else None
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
        own = self.node_frame(node_id)
        found = [n.id for n in scene.nodes if n.transmits and n.id != node_id
                 and self.node_frame(n.id).carrier_hz == own.carrier_hz
                 and self.node_frame(n.id).sample_rate_hz == own.sample_rate_hz]
        if not found:
            raise SensingError(f"receive-only node {node_id!r} hears no transmitting node on its carrier "
                               f"{own.carrier_hz:g} Hz at {own.sample_rate_hz:g} Hz: give it a transmitter's "
                               "carrier and numerology")
        if len(found) > 1:
            masks = {}
            for n in found:
                frame = self.node_frame(n)
                masks[n] = known_reference(IsacFrame(frame), reference_signals(node_id, n, frame))[1]
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

    # ---- sensing ----------------------------------------------------------------------------------
    def sensing_jobs(self, capture: Capture) -> list[SensingJob]:
        """How to sense a capture of ``capture.node_id``: one :class:`SensingJob` per transmitter heard.

        A node that transmits senses its own echoes: one job, source None,
        with ``sensing`` as it is.  A receive-only node of the scene hears the
        transmitters on its carrier (see :meth:`passive_sources`) and knows
        only their reference signals: its capture is sensed once per
        transmitter, as bistatic (range sums ``c tau``, biased by its clock
        offset) on that transmitter's reference signals, without the
        zero-Doppler notch (the line of sight, the reference of
        :func:`sdr_isac.fusion.links.passive_links`, has zero Doppler) and with
        the range limits doubled (a range sum is about twice a range).  A
        transmitter whose frame carries SS/PBCH blocks is sensed by
        :func:`sense_passive_ssb` (method ``passive_ssb``, ``passive_ssb_paths``
        paths) instead of the map pipeline, which fails on that sparse mask.
        """
        place = self.place(capture.node_id)
        if place is None or place.transmits:
            return [SensingJob(None, capture.frame or self.cfg.frame, self.cfg.sensing)]
        cfg = self.cfg.sensing
        out = []
        for source in self.passive_sources(capture.node_id):
            frame = self.node_frame(source)
            method = "passive_ssb" if frame.ssb is not None else "map"
            out.append(SensingJob(source, frame, dataclasses.replace(
                cfg, geometry="bistatic", signals=reference_signals(capture.node_id, source, frame),
                remove_static=False, min_range_m=0.0, max_range_m=2.0 * cfg.max_range_m), method,
                self.passive_ssb_paths))
        return out

    def node_result(self, capture: Capture, seq: int, jobs: Sequence[SensingJob],
                    results: Sequence[sensing.SensingResult]) -> NodeResult:
        """The :class:`NodeResult` of a capture sensed with ``jobs`` (``results`` in their order)."""
        by_source = {job.source: tuple(r.detections) for job, r in zip(jobs, results, strict=True)
                     if job.source is not None}
        dets = tuple(d for source_dets in by_source.values() for d in source_dets) if by_source else \
            tuple(results[0].detections)
        return NodeResult(capture.node_id, seq, float(capture.t0_s), dets, by_source)

    def sense(self, capture: Capture, seq: int = 0) -> NodeResult:
        """Sense one capture here, in the caller's thread (:func:`sense_capture` with :meth:`sensing_jobs`)."""
        jobs = self.sensing_jobs(capture)
        return self.node_result(capture, seq, jobs, sense_capture(capture, jobs))

    # ---- node-level fusion ------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """The registered set-level mode the ``[fusion]`` section selects: ``macro_micro`` with macro nodes,
        ``multi_bs`` otherwise (:func:`sdr_isac.fusion.modes.mode_fusion`)."""
        return "macro_micro" if self.cfg.fusion.macro_nodes else "multi_bs"

    def fuse(self, members: Mapping[str, NodeResult], t_s: float) -> list[TargetEstimate]:
        """Fuse the node results of one time-aligned set into target estimates.

        Nodes outside the scene are left out; fewer than ``fusion.min_nodes``
        scene nodes (default 2) give no estimate.  Receive-only nodes join with the transmitters they hear
        (their range sums are fused with the monostatic detections).  With
        ``fusion.macro_nodes`` the macro-micro mode switch chooses the nodes of
        each target (mode ``micro`` or ``macro_micro``); a set with UEs labels
        each estimate with its BS-UE case.  An estimate where no two links
        agreed (the strongest node's own fix stands) has mode ``single``.

        Parameters
        ----------
        members : mapping
            Node id -> its :class:`NodeResult` of the set.
        t_s : float
            Time of the set, s (the estimates' ``t_s``).

        Returns
        -------
        list of TargetEstimate
            Strongest first (as :func:`~sdr_isac.fusion.modes.multi_bs.fuse_nodes`).
        """
        places = {n: place for n in members if (place := self.place(n)) is not None}
        if len(places) < self.cfg.fusion.min_nodes:
            return []
        places, dets, passive = self._links(places, members)
        found = mode_fusion(self.mode)(places, dets, self.cfg.fusion, passive, t_s)
        roles = {n: place.role for n, place in places.items()}
        return [dataclasses.replace(est, case=case) if (case := live_case(est.nodes, roles, passive)) else est
                for est in found]

    def _links(self, places: dict[str, NodePlace], members: Mapping[str, NodeResult]
               ) -> tuple[dict[str, NodePlace], dict[str, tuple[Detection, ...]], dict[str, str]]:
        """Places, detections and passive links of a time-aligned set, receive-only nodes split per transmitter.

        A receive-only node that hears one transmitter keeps its id; one that
        hears several gives a link ``"RX<TX"`` per transmitter (at the
        receiver's place, with the detections sensed on that transmitter's
        reference signals).  Transmitters join the places (their positions
        anchor the range sums) even without detections of their own.
        """
        out_places: dict[str, NodePlace] = {}
        dets: dict[str, tuple[Detection, ...]] = {}
        passive: dict[str, str] = {}
        for n, place in places.items():
            if place.transmits:
                out_places[n] = place
                dets[n] = members[n].detections
                continue
            by_source = members[n].by_source
            for tx, tx_dets in by_source.items():
                tx_place = places.get(tx) or self.place(tx)
                if tx_place is None:
                    continue
                link = n if len(by_source) == 1 else f"{n}<{tx}"
                out_places.setdefault(tx, tx_place)
                out_places[link], dets[link], passive[link] = place, tx_dets, tx
        return out_places, dets, passive

    # ---- BS-RIS -----------------------------------------------------------------------------------
    def ris_step(self, capture: Capture, seq: int, csi: ChannelEstimate, frame: config_mod.FrameConfig,
                 truth: dict[str, Any] | None = None) -> list[RisSighting]:
        """Keep this frame's CIM for the RIS scan it belongs to; at a scan's last step, locate the target.

        The node records in ``metadata["ris"]`` which outgoing azimuth each RIS
        was programmed for (:meth:`sdr_isac.stream.node.NodeAgent.ris_plan`).
        A scan is the frames of steps ``0 ... S-1`` in order (a lost frame
        drops that scan); its CIMs (first receive channel) go to
        :func:`sdr_isac.fusion.modes.ris.estimate_ris_target`.

        Parameters
        ----------
        capture : Capture
            With ``metadata["ris"]``: a list of ``{id, scan_index, scan_size, steer_deg}``.
        seq : int
        csi : ChannelEstimate
            The capture's channel estimate (``h`` shape (C, M, K) complex).
        frame : FrameConfig
            The frame the capture was sensed with.
        truth : dict, optional
            The capture's ground truth (``targets``), kept with the sighting.

        Returns
        -------
        list of RisSighting
            The targets found by the scans this frame completed (usually none or one).
        """
        place = self.place(capture.node_id)
        scene = self.cfg.scene
        if place is None or scene is None:
            return []
        out = []
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
                sighting = self._ris_locate(capture, ris, place, scan, frame)
                scan.clear()
                if sighting is not None:
                    out.append(sighting)
        return out

    def _ris_locate(self, capture: Capture, ris: config_mod.RisConfig, place: NodePlace,
                    scan: list[dict[str, Any]], frame: config_mod.FrameConfig) -> RisSighting | None:
        built = IsacFrame(frame)
        symbol_s = built.num_samples / (built.num_symbols * built.sample_rate_hz)   # mean symbol period
        band = Band(capture.node_id, float(capture.center_freq_hz or frame.carrier_hz), frame.subcarrier_spacing_hz,
                    symbol_s - 1.0 / frame.subcarrier_spacing_hz, scan[0]["mask"])
        geometry = RisGeometry.of(ris, place.position_m)
        found = estimate_ris_target(band, np.stack([step["cim"] for step in scan]),
                                    [step["steer_deg"] for step in scan], geometry, pfa=self.cfg.sensing.pfa,
                                    max_range_m=self.cfg.sensing.max_range_m or None,
                                    height_m=self.cfg.fusion.target_height_m)
        if found is None:
            return None
        step = scan[found.index]                              # the frame the range came from
        estimate = TargetEstimate.planar(found.position_m[:2], found.cov_position_m2, float(found.position_m[2]),
                                         t_s=float(step["t0_s"]), nodes=(capture.node_id,), mode="ris")
        return RisSighting(estimate, ris.id, found, len(scan), int(step["seq"]), float(step["t0_s"]),
                           [{"target": t["id"], **t} for t in step["truth"]])

