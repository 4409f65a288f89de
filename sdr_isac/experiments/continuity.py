"""``sdr-isac experiment continuity``: tracking across stations and operators in an urban grid (article §V).

The scene is the built-in ``urban`` configuration (``hw_configs/sim_urban.toml``): a 450 m street grid
between 30 m buildings, three base stations of operator ``a``, three of operator ``b`` (another carrier,
another clock, another surveyed frame) and an IEEE 802.11-style access point (network ``wifi``), four
vehicles on the streets and a UAV over the roofs.  Every ``DT_S`` each station measures each target it
sees -- line of sight past the buildings (:func:`sdr_isac.channel.geometry.segment_blocked`) and
detected at the per-RE SNR of the radar equation (:func:`sdr_isac.sensing.crb.snr_per_re_db`, shifted
by the point's ``snr_offset_db``; P_d of a square-law detector at ``PFA``) -- as a monostatic
:class:`~sdr_isac.fusion.records.LinkMeasurement`: range, radial velocity and the cone angle of its
horizontal array, drawn from their Cramér-Rao bounds (the station's own pilot mask,
:func:`sdr_isac.sensing.crb.delay_doppler_crb`, :func:`sdr_isac.sensing.crb.angle_crb_rad2`).  False
alarms are not simulated at this level (the CFAR's are: ``sdr-isac experiment`` roc columns of
:mod:`sdr_isac.fusion.metrics`).

Four ways of tracking the same traffic, each with the Stone Soup tracker of
:mod:`sdr_isac.fusion.tracking`:

- ``single``: one base station (``bs_a0``) tracks alone;
- ``coop``: operator ``a``'s three stations feed one tracker: a target that leaves one station's
  streets is handed over to the next (same track id, :class:`~sdr_isac.fusion.records.Handover`);
- ``multi_uncal``: operator ``b`` and the access point track in their own frames and clocks and pass
  only their tracks to operator ``a`` (never IQ), taken as they are;
- ``multi_cal``: the same, with each foreign network's clock offset, position and yaw bias estimated
  beforehand from common targets of a separate calibration run
  (:func:`sdr_isac.fusion.calibration.estimate_calibration`) and applied to its tracks.

In both ``multi`` modes the networks' tracks are fused as the core host fuses them
(:class:`~sdr_isac.fusion.trackfusion.TrackToTrackFuser`, with the core's default ``coast_s``: a global
track whose members all ended keeps its id for a new track that picks the target up within 2 s).

Columns per target kind and mode: sensing continuity (article §II-B: the fraction of the ``n``
instants with a position error below ``THRESHOLD_M``; an instant without a track counts as a failure),
position RMSE over the instants with a track, track breaks (changes of the track id that follows a
target), handovers, and the mean OSPA distance over all targets.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from sdr_isac import config as config_mod
from sdr_isac.channel.geometry import element_pattern_db, rotation_z, segment_blocked, segments_blocked, target_state
from sdr_isac.errors import ConfigError, InputError, SensingError
from sdr_isac.experiments.plots import pyplot, save_figure
from sdr_isac.experiments.runner import Metrics, Point, Scenario
from sdr_isac.fusion.locate import single_fix
from sdr_isac.fusion.metrics import (
    detection_probability,
    plot_coverage_map,
    rmse,
    sensing_area,
    sensing_continuity,
)
from sdr_isac.fusion.records import LinkMeasurement, TargetEstimate, Track
from sdr_isac.fusion.trackfusion import TrackToTrackFuser
from sdr_isac.sensing import crb
from sdr_isac.units import SPEED_OF_LIGHT_MPS
from sdr_isac.waveform import IsacFrame

__all__ = ["continuity_scenario", "trial", "summarise", "MODES", "FOREIGN_BIAS", "station_links"]

#: time step of the stations' measurements, s, and length of a run, s
DT_S = 0.2
DURATION_S = 40.0
#: continuity threshold: an instant counts when the position error is below it, m
THRESHOLD_M = 2.0
#: OSPA cut-off c (m) and order p
OSPA_C_M = 10.0
OSPA_P = 2
#: false-alarm probability of each station's detector
PFA = 1e-6
#: how long the fusion of the multi-operator modes keeps a global track without members, s (the core host's
#: ``core.coast_s``)
CORE_COAST_S = config_mod.CoreConfig().coast_s
#: the station that tracks alone in mode ``single``
SINGLE_STATION = "bs_a0"
#: the reference operator (its frame and clock are the scene's)
REFERENCE_OPERATOR = "a"
MODES = ("single", "coop", "multi_uncal", "multi_cal")
#: each foreign network's truth: its frame's offset (m), yaw (degrees) against the scene frame; the clock
#: offset comes from its nodes' ``clock_offset_s`` in the scene file
FOREIGN_BIAS: dict[str, tuple[tuple[float, float], float]] = {"b": ((4.0, -3.0), 3.0), "wifi": ((-2.5, 2.0), -2.0)}
SNR_OFFSETS_DB = (0.0, -30.0, -40.0)


@dataclass(frozen=True)
class Station:
    """One sensing station of the scene, as the measurement model needs it.

    A site of ``SECTORS`` sectors, each a horizontal uniform linear array facing ``yaw_rad + k 2 pi /
    SECTORS`` (the node's yaw and the others around it); a target is measured by the sector it lies in,
    within ``pi / SECTORS`` of that sector's boresight, so the array's front/back ambiguity never arises.
    Each sector's panel has the node's ``antenna_pattern`` (``isotropic``, or the TR 38.901 sector element of
    :func:`sdr_isac.channel.geometry.element_pattern_db`) about that sector's boresight: a target near the
    sector's edge or steeply below the panel is measured at a lower SNR, twice the pattern's loss (transmit
    and receive through the same panel).
    ``position_m`` and ``yaw_rad`` are true (scene frame); ``local_position_m`` and ``local_yaw_rad`` are
    what its own network surveyed (its operator's frame).  ``range_var_m2``, ``rate_var_mps2``: the CRB at a
    per-RE SNR of 1 (divide by the SNR); ``angle_positions_wl``: the array's element positions in
    wavelengths.
    """

    node_id: str
    operator: str
    position_m: NDArray[np.float64]
    yaw_rad: float
    local_position_m: NDArray[np.float64]
    local_yaw_rad: float
    clock_offset_s: float
    tx_power_dbm: float
    gain_dbi: float
    noise_figure_db: float
    carrier_hz: float
    sample_rate_hz: float
    fft_size: int
    num_subcarriers: int
    range_var_m2: float
    rate_var_mps2: float
    num_snapshots: int
    angle_positions_wl: NDArray[np.float64]
    antenna_pattern: str = "isotropic"


def to_local(operator: str, position_m: NDArray[np.float64]) -> NDArray[np.float64]:
    """A scene-frame position in ``operator``'s surveyed frame: ``R(yaw)^T (p - b)`` (:data:`FOREIGN_BIAS`)."""
    if operator not in FOREIGN_BIAS:
        return np.asarray(position_m, dtype=np.float64)
    (bx, by), yaw = FOREIGN_BIAS[operator]
    return rotation_z(yaw).T @ (np.asarray(position_m, dtype=np.float64) - np.array([bx, by, 0.0]))


#: sectors of each station (a three-sector site covers the full circle), each a panel of the node's
#: ``antenna_gain_dbi`` at its boresight and the node's ``antenna_pattern`` about it (the live urban demo's
#: simulator has one such panel per node, at the node's yaw)
SECTORS = 3


def _wrap(angle_rad: NDArray[np.float64]) -> NDArray[np.float64]:
    return (angle_rad + math.pi) % (2.0 * math.pi) - math.pi


def panel_gain_db(station: Station, offset_m: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The gain of the sector panel that faces each point, relative to its boresight gain, dB (0 ... -30), and
    that sector's boresight relative to the node's yaw, rad.

    ``offset_m`` (..., 3): points relative to the station.  The facing sector is the one whose boresight
    (``yaw_rad + k 2 pi / SECTORS``) is nearest in azimuth; its panel has the node's ``antenna_pattern``
    (:func:`sdr_isac.channel.geometry.element_pattern_db`).  A monostatic link passes it twice.
    """
    d = np.asarray(offset_m, dtype=np.float64)
    step = 2.0 * math.pi / SECTORS
    az = np.arctan2(d[..., 1], d[..., 0]) - station.yaw_rad
    sector = step * np.round(_wrap(az) / step)
    boresight = station.yaw_rad + sector
    c, s = np.cos(boresight), np.sin(boresight)
    local = np.stack([c * d[..., 0] + s * d[..., 1], c * d[..., 1] - s * d[..., 0], d[..., 2]], axis=-1)
    return np.asarray(element_pattern_db(local, station.antenna_pattern), dtype=np.float64), sector


def _axis(boresight_rad: float) -> NDArray[np.float64]:
    """Unit axis of a horizontal linear array whose boresight is at ``boresight_rad`` (the boresight turned by
    -90°: the axis of :func:`sdr_isac.fusion.locate.locate_single`)."""
    return np.array([math.sin(boresight_rad), -math.cos(boresight_rad), 0.0])


@functools.lru_cache(maxsize=1)
def scene() -> config_mod.Config:
    """The built-in urban scene."""
    return config_mod.builtin("urban")


def _scene_of(cfg: config_mod.Config) -> config_mod.SceneConfig:
    """The ``[scene]`` of the urban configuration (it always has one; a ConfigError names it otherwise)."""
    if cfg.scene is None:
        raise ConfigError("the urban configuration has no [scene]: restore sdr_isac/urban.toml", key="scene")
    return cfg.scene


@functools.lru_cache(maxsize=1)
def stations() -> tuple[Station, ...]:
    """The scene's transmitting nodes as stations (pilot-mask CRBs computed once)."""
    cfg = scene()
    urban = _scene_of(cfg)
    out = []
    for node in urban.nodes:
        if not node.transmits:
            continue
        frame = node.frame or cfg.frame
        built = IsacFrame(frame)
        mask = built.known_mask()
        symbol_s = built.num_samples / (built.num_symbols * built.sample_rate_hz)
        times = np.arange(mask.shape[0]) * symbol_s
        bound = crb.delay_doppler_crb(1.0, mask, frame.subcarrier_spacing_hz, times)
        yaw = math.radians(node.yaw_deg)
        local_yaw = yaw - math.radians(FOREIGN_BIAS[node.operator][1]) if node.operator in FOREIGN_BIAS else yaw
        n_el = int(np.prod(node.rx_array.num_elements))
        out.append(Station(
            node.id, node.operator, np.asarray(node.position_m, dtype=np.float64), yaw,
            to_local(node.operator, np.asarray(node.position_m, dtype=np.float64)), local_yaw,
            float(node.clock_offset_s), float(node.tx_power_dbm), float(node.antenna_gain_dbi),
            float(node.noise_figure_db), float(frame.carrier_hz), float(built.sample_rate_hz), int(frame.fft_size),
            int(frame.num_subcarriers),
            float((SPEED_OF_LIGHT_MPS / 2.0) ** 2 * bound[0, 0]),
            float((SPEED_OF_LIGHT_MPS / (2.0 * frame.carrier_hz)) ** 2 * bound[1, 1]),
            int(mask.sum()), node.rx_array.spacing_wavelengths * np.arange(n_el, dtype=np.float64),
            node.antenna_pattern))
    return tuple(out)


def station_links(station: Station, t_s: float, rng: np.random.Generator, snr_offset_db: float = 0.0
                  ) -> list[tuple[str, LinkMeasurement]]:
    """What ``station`` measures at scene time ``t_s``: (target id, link) per target it detects.

    The links are in the station's own network: positions in its operator's surveyed frame, time on its
    clock (``t_s + clock_offset_s``).
    """
    cfg = scene()
    urban = _scene_of(cfg)
    out = []
    for target in urban.targets:
        p, v = target_state(target, t_s)
        if any(segment_blocked(station.position_m, p, box) for box in urban.blockers):
            continue
        d = p - station.position_m
        r = float(np.linalg.norm(d))
        u = d / r
        pattern, sector_ = panel_gain_db(station, d)
        pattern_db, sector = float(pattern), float(sector_)
        snr_db = crb.snr_per_re_db(station.tx_power_dbm, station.gain_dbi, station.gain_dbi, station.carrier_hz,
                                   target.rcs_m2, r, r, station.noise_figure_db, station.sample_rate_hz,
                                   station.fft_size, station.num_subcarriers) + 2.0 * pattern_db + snr_offset_db
        snr = 10.0 ** (snr_db / 10.0)
        if rng.random() >= detection_probability(snr_db + 10.0 * math.log10(station.num_snapshots), PFA):
            continue
        var_r, var_v = station.range_var_m2 / snr, station.rate_var_mps2 / snr
        axis, local_axis = _axis(station.yaw_rad + sector), _axis(station.local_yaw_rad + sector)
        cone = math.asin(float(np.clip(u @ axis, -1.0, 1.0)))
        var_a = float(crb.angle_crb_rad2(snr, station.num_snapshots, station.angle_positions_wl, cone))
        angle: dict[str, Any] = {"cone_angle_rad": float(np.clip(cone + math.sqrt(var_a) * rng.standard_normal(),
                                                                 -math.pi / 2, math.pi / 2)),
                                 "var_cone_angle_rad2": var_a, "array_axis": local_axis}
        link = LinkMeasurement(
            0, 0, r + math.sqrt(var_r) * rng.standard_normal(), float(u @ v) + math.sqrt(var_v) * rng.standard_normal(),
            var_r, var_v, snr, t_s=t_s + station.clock_offset_s, tx_id=station.node_id, rx_id=station.node_id,
            tx_position_m=station.local_position_m, rx_position_m=station.local_position_m, **angle)
        out.append((target.id, link))
    return out


# ---- one trial -------------------------------------------------------------------------------------


#: the reported altitude of a UAV (Remote ID) is taken with this standard deviation, m; ground traffic is
#: located at the street's height (1 m) like the live host's ``[fusion] target_height_m``
ALTITUDE_STD_M = 1.0
GROUND_HEIGHT_M = 1.0


def _estimate(station: Station, link: LinkMeasurement, kind: str, altitude_m: float) -> TargetEstimate | None:
    """A station's own fix of one detection (range and cone angle at a known height) as a TargetEstimate,
    in the station's network frame and time (:func:`sdr_isac.fusion.locate.single_fix`)."""
    if link.cone_angle_rad is None or link.var_cone_angle_rad2 is None or link.array_axis is None:
        return None
    height, var_z = (altitude_m, ALTITUDE_STD_M**2) if kind == "uav" else (GROUND_HEIGHT_M, 0.0)
    try:
        fix = single_fix(station.local_position_m[None, :], 0, link.array_axis[:2], link.range_m,
                         link.var_range_m2, link.cone_angle_rad, link.var_cone_angle_rad2, height, var_z)
    except SensingError:
        return None
    # the altitude's error moves the fix too (the range's horizontal part, the cone's elevation): its
    # covariance with the height goes with it (without it a UAV's fixes claimed ~3 cm where they were ~1 m off)
    cov = np.zeros((3, 3))
    cov[:2, :2] = fix.cov_m2
    cov[:2, 2] = cov[2, :2] = fix.cov_xy_height_m2
    cov[2, 2] = var_z
    return TargetEstimate(np.array([*fix.xy_m, height]), cov, t_s=link.t_s, nodes=(station.node_id,),
                          links=(link,), mode="single")


def _measure(rng: np.random.Generator, snr_offset_db: float, times: NDArray[np.float64]
             ) -> dict[str, list[list[TargetEstimate]]]:
    """Every station's estimates at every time: station id -> per time, its estimates (own frame and clock)."""
    cfg = scene()
    urban = _scene_of(cfg)
    kinds = {t.id: t.kind for t in urban.targets}
    targets = {t.id: t for t in urban.targets}
    out: dict[str, list[list[TargetEstimate]]] = {s.node_id: [] for s in stations()}
    for t in times:
        for station in stations():
            found = []
            for tid, link in station_links(station, float(t), rng, snr_offset_db):
                altitude = float(target_state(targets[tid], float(t))[0][2]) + ALTITUDE_STD_M * rng.standard_normal()
                est = _estimate(station, link, kinds[tid], altitude)
                if est is not None:
                    found.append(est)
            out[station.node_id].append(found)
    return out


def _tracker(network: str) -> Any:
    from sdr_isac.fusion.tracking import Tracker  # Stone Soup: imported where it is used

    cfg = scene()
    return Tracker(dataclasses.replace(cfg.tracking, target_class="uav"), station=network, id_prefix=f"{network}:")


def _track_network(measured: dict[str, list[list[TargetEstimate]]], node_ids: list[str], network: str,
                   times: NDArray[np.float64], clock_offset_s: float = 0.0) -> tuple[list[list[Track]], Any]:
    """One network's tracker over the run: per time its current tracks (its own frame and clock)."""
    tracker = _tracker(network)
    out = []
    for k, t in enumerate(times):
        scan = [e for n in node_ids for e in measured[n][k]]
        out.append(tracker.step(float(t) + clock_offset_s, scan))
    return out, tracker


def _as_estimate(track: Track) -> TargetEstimate:
    """A track's latest state as an estimate (its whole covariance: position, velocity and their cross term)."""
    x, p = track.states[-1], track.covariances[-1]
    return TargetEstimate(x[:3], p[:3, :3], t_s=float(track.t_s[-1]), velocity_mps=x[3:], cov_velocity_mps2=p[3:, 3:],
                          cov_position_velocity_m2ps=p[:3, 3:])


def _mapped(track: Track, cal: Any | None) -> Track:
    """A foreign network's track in the reference frame and time (``cal``: its calibration; None: as it is)."""
    if cal is None:
        return track.latest()
    est = cal.apply(_as_estimate(track))
    if est.velocity_mps is None or est.cov_velocity_mps2 is None:      # _as_estimate always gives a velocity
        raise InputError(f"track {track.track_id!r}: the calibrated estimate lost its velocity")
    return Track(track.track_id, np.array([est.t_s]), np.concatenate([est.position_m, est.velocity_mps])[None],
                 est.covariance[None], track.stations, track.handovers, track.status,
                 None if track.measured is None else track.measured[-1:])


def _rigid_residual_m(p: NDArray[np.float64], q: NDArray[np.float64]) -> float:
    """RMS distance, m, between points ``p`` and the rotated and shifted points ``q`` that fit them best (the
    2-D Procrustes solution): small when both are one target seen in two frames."""
    pc, qc = p - p.mean(axis=0), q - q.mean(axis=0)
    u, _, vt = np.linalg.svd(qc.T @ pc)
    rot = (u @ vt).T
    if np.linalg.det(rot) < 0:                           # a rotation, not a reflection
        u[:, -1] *= -1
        rot = (u @ vt).T
    return float(np.sqrt(np.mean(np.sum((pc - qc @ rot.T) ** 2, axis=1))))


def _calibrate(reference: list[Track], foreign: list[Track]) -> Any | None:
    """The foreign network's calibration from the tracks both networks kept of common targets (pairs of tracks
    whose positions stay within ``PAIR_GATE_M`` at common instants), or None where the fit is not possible or its
    clock offset ends on the fit's bound (:attr:`~sdr_isac.fusion.calibration.HetNetCalibration.offset_at_bound`)."""
    from sdr_isac.fusion.calibration import estimate_calibration

    ref = {t.track_id: t for t in reference if t.num_states >= 5}
    other = {t.track_id: t for t in foreign if t.num_states >= 5}
    pairs = []
    for fid, ft in other.items():
        for rid, rt in ref.items():
            common = np.intersect1d(np.round(rt.t_s / DT_S).astype(int), np.round(ft.t_s / DT_S).astype(int))
            if common.size < PAIR_MIN_SAMPLES:
                continue
            ri = np.searchsorted(np.round(rt.t_s / DT_S).astype(int), common)
            fi = np.searchsorted(np.round(ft.t_s / DT_S).astype(int), common)
            p, q = rt.states[ri, :2], ft.states[fi, :2]
            d = float(np.median(np.linalg.norm(p - q, axis=1)))
            if d < PAIR_GATE_M and _rigid_residual_m(p, q) < PAIR_SPREAD_M:
                pairs.append((d, rid, fid))
    used_r, used_f, keys = set(), set(), []
    for _d, rid, fid in sorted(pairs):
        if rid not in used_r and fid not in used_f:
            used_r.add(rid)
            used_f.add(fid)
            keys.append((rid, fid))
    if not keys:
        return None
    others = {}
    for rid, fid in keys:
        ft = other[fid]
        others[rid] = [_as_estimate(Track(fid, ft.t_s[i:i + 1], ft.states[i:i + 1], ft.covariances[i:i + 1]))
                       for i in range(ft.num_states)]
    try:
        cal = estimate_calibration({rid: ref[rid] for rid, _ in keys}, others, planar=True)
    except InputError:
        return None
    return None if cal.offset_at_bound else cal        # an offset on its bound is no estimate (logged there)


#: a reference and a foreign track are taken for one target in calibration when they share at least
#: PAIR_MIN_SAMPLES instants, their median distance is below PAIR_GATE_M (m) and their difference moves by
#: less than PAIR_SPREAD_M (m rms) from one rotation and shift over those instants (two frames map a
#: common target rigidly; a lagging track in a turn, or two different targets, do not)
PAIR_GATE_M = 40.0
PAIR_MIN_SAMPLES = 10
PAIR_SPREAD_M = 2.0


def _follow(snapshots: list[list[Track]], truth: NDArray[np.float64]) -> tuple[NDArray[np.float64], list[str]]:
    """Per time, the error of the confirmed track assigned to each target (NaN: none within ``OSPA_C_M``) and the
    id assigned (``""``: none); assignment by least total distance (scipy's linear_sum_assignment)."""
    n_t, n_k = truth.shape[0], truth.shape[1]
    errors = np.full((n_t, n_k), np.nan)
    ids = [["" for _ in range(n_k)] for _ in range(n_t)]
    for i, tracks in enumerate(snapshots):
        live = [t for t in tracks if t.status == "confirmed" and t.num_states]
        if not live:
            continue
        pos = np.array([t.states[-1, :3] for t in live])
        dist = np.linalg.norm(truth[i][:, None, :] - pos[None, :, :], axis=2)
        rows, cols = linear_sum_assignment(np.minimum(dist, OSPA_C_M))
        for r, c_ in zip(rows, cols, strict=True):
            if dist[r, c_] < OSPA_C_M:
                errors[i, r] = dist[r, c_]
                ids[i][r] = live[c_].track_id
    return errors, [",".join(row) for row in ids]


def _ospa(snapshots: list[list[Track]], truth: NDArray[np.float64], times: NDArray[np.float64]) -> float:
    """Mean OSPA (cut-off ``OSPA_C_M``, order ``OSPA_P``) over the run, through Stone Soup's metric generator."""
    from sdr_isac.fusion.tracking import position_distances

    history: dict[str, list[tuple[float, NDArray[np.float64]]]] = {}
    for t, tracks in zip(times, snapshots, strict=True):
        for trk in tracks:
            if trk.status == "confirmed" and trk.num_states:
                history.setdefault(trk.track_id, []).append((float(t), trk.states[-1]))
    records = [Track(tid, np.array([h[0] for h in hist]), np.array([h[1] for h in hist]),
                     np.broadcast_to(np.eye(6), (len(hist), 6, 6)).copy()) for tid, hist in history.items()]
    truths = {str(k): (times, truth[:, k, :]) for k in range(truth.shape[1])}
    _, ospa, _ = position_distances(records, truths, OSPA_C_M, OSPA_P)
    return float(np.mean(ospa))


def trial(point: Point, rng: np.random.Generator) -> Metrics:
    """One run of the urban scene in every mode (and a calibration run before it)."""
    cfg = scene()
    urban = _scene_of(cfg)
    times = np.arange(0.0, DURATION_S, DT_S)
    offset = float(point["snr_offset_db"])
    nets: dict[str, list[str]] = {}
    clocks: dict[str, float] = {}
    for s in stations():
        nets.setdefault(s.operator, []).append(s.node_id)
        clocks[s.operator] = s.clock_offset_s
    foreign = [n for n in nets if n != REFERENCE_OPERATOR]
    cal_rng, run_rng = rng.spawn(2)

    # calibration run: the reference network's and each foreign network's tracks of the same traffic
    cal_meas = _measure(cal_rng, offset, times)
    _, ref_tracker = _track_network(cal_meas, nets[REFERENCE_OPERATOR], REFERENCE_OPERATOR, times)
    cals = {}
    for net in foreign:
        _, tracker = _track_network(cal_meas, nets[net], net, times, clocks[net])
        cals[net] = _calibrate(ref_tracker.tracks(include_deleted=True), tracker.tracks(include_deleted=True))

    meas = _measure(run_rng, offset, times)
    runs = {"single": _track_network(meas, [SINGLE_STATION], "single", times)[0]}
    runs["coop"], coop_tracker = _track_network(meas, nets[REFERENCE_OPERATOR], REFERENCE_OPERATOR, times)
    local = {net: _track_network(meas, nets[net], net, times, clocks[net])[0] for net in foreign}
    for mode, use_cal in (("multi_uncal", False), ("multi_cal", True)):
        fuser = TrackToTrackFuser(id_prefix="g", coast_s=CORE_COAST_S)
        snaps = []
        for k in range(times.size):
            members = {REFERENCE_OPERATOR: runs["coop"][k]}
            for net in foreign:
                cal = cals[net] if use_cal else None
                if use_cal and cal is None:
                    continue                                   # not calibrated: its tracks are not used
                members[net] = [_mapped(trk, cal) for trk in local[net][k] if trk.num_states]
            snaps.append(fuser.update(members))             # at the newest local state (clocks differ)
        runs[mode] = snaps

    truth = np.array([[target_state(tg, float(t))[0] for tg in urban.targets] for t in times])
    out: Metrics = {}
    for mode, snaps in runs.items():
        errors, ids = _follow(snaps, truth)
        for k, tg in enumerate(urban.targets):
            e = errors[:, k]
            out[f"{mode}_{tg.id}_continuity"] = float(sensing_continuity(e, THRESHOLD_M))
            out[f"{mode}_{tg.id}_rmse_m"] = float(rmse(e, skip_nan=True))
            seq = [row.split(",")[k] for row in ids if row.split(",")[k]]
            out[f"{mode}_{tg.id}_breaks"] = float(sum(a != b for a, b in zip(seq, seq[1:])))
        out[f"{mode}_ospa_m"] = _ospa(snaps, truth, times)
    out["coop_handovers"] = float(sum(len(t.handovers) for t in coop_tracker.tracks(include_deleted=True)))
    for net in foreign:
        cal = cals[net]
        out[f"cal_{net}_ok"] = float(cal is not None)
        if cal is not None:
            (bx, by), yaw = FOREIGN_BIAS[net]
            # the foreign clock reads t + c; the calibration's dt maps its time stamps to t: dt = -c
            truth_v = {"offset_s": -clocks[net], "bias_x_m": bx, "bias_y_m": by, "yaw_rad": math.radians(yaw)}
            for name, value, std in zip(cal.parameters, cal.vector, cal.std, strict=True):
                if name in truth_v:
                    out[f"cal_{net}_{name}_z"] = float((value - truth_v[name]) / std) if std > 0 else math.nan
    return out


# ---- sensing area ----------------------------------------------------------------------------------

#: grid of the coverage maps, m (the street grid and a margin)
COVERAGE_AXIS_M = np.arange(-40.0, 491.0, 5.0)
#: RCS and height of the target the coverage maps are drawn for (a car)
COVERAGE_RCS_M2 = 10.0
COVERAGE_HEIGHT_M = GROUND_HEIGHT_M


def coverage_map(node_ids: tuple[str, ...], snr_offset_db: float = 0.0,
                 rcs_m2: float = COVERAGE_RCS_M2) -> NDArray[np.float64]:
    """P_d of a target of ``rcs_m2`` at ``COVERAGE_HEIGHT_M`` over the grid ``COVERAGE_AXIS_M`` x
    ``COVERAGE_AXIS_M`` (shape (ny, nx)), seen by any of the stations ``node_ids``: each station's P_d at its
    radar-equation SNR through its facing sector panel (as :func:`station_links`), zero where a building is
    in the way."""
    urban = _scene_of(scene())
    xx, yy = np.meshgrid(COVERAGE_AXIS_M, COVERAGE_AXIS_M)
    pts = np.column_stack([xx.ravel(), yy.ravel(), np.full(xx.size, COVERAGE_HEIGHT_M)])
    miss = np.ones(xx.size)
    for st in stations():
        if st.node_id not in node_ids:
            continue
        r = np.maximum(np.linalg.norm(pts - st.position_m, axis=1), 1.0)
        snr_db = crb.snr_per_re_db(st.tx_power_dbm, st.gain_dbi, st.gain_dbi, st.carrier_hz, rcs_m2, 1.0, 1.0,
                                   st.noise_figure_db, st.sample_rate_hz, st.fft_size, st.num_subcarriers) \
            - 40.0 * np.log10(r) + 2.0 * panel_gain_db(st, pts - st.position_m)[0] + snr_offset_db  # R^-4
        pd = detection_probability(snr_db + 10.0 * math.log10(st.num_snapshots), PFA)
        miss *= 1.0 - np.where(segments_blocked(st.position_m, pts, urban.blockers), 0.0, pd)
    return (1.0 - miss).reshape(xx.shape)


def mode_stations(mode: str) -> tuple[str, ...]:
    """The stations whose measurements a mode uses."""
    if mode == "single":
        return (SINGLE_STATION,)
    if mode == "coop":
        return tuple(st.node_id for st in stations() if st.operator == REFERENCE_OPERATOR)
    return tuple(st.node_id for st in stations())


# ---- summary -------------------------------------------------------------------------------------


def _targets() -> list[tuple[str, str]]:
    cfg = scene()
    urban = _scene_of(cfg)
    return [(t.id, t.kind) for t in urban.targets]


def summarise(point: Point, trials: list[Metrics]) -> list[dict[str, Any]]:
    """One row per mode: continuity, RMSE, breaks per target kind and over all targets; OSPA; calibration."""
    rows = []
    for mode in MODES:
        row: dict[str, Any] = {"snr_offset_db": point["snr_offset_db"], "mode": mode, "trials": len(trials)}
        pd = coverage_map(mode_stations(mode), float(point["snr_offset_db"]))
        row["sensing_area_m2"] = sensing_area(pd, COVERAGE_AXIS_M, COVERAGE_AXIS_M, 0.9)
        for label, ids in (("all", [t for t, _ in _targets()]), ("vehicles", [t for t, k in _targets() if k != "uav"]),
                           ("uav", [t for t, k in _targets() if k == "uav"])):
            row[f"continuity_{label}"] = float(np.mean([tr[f"{mode}_{t}_continuity"] for tr in trials for t in ids]))
            row[f"rmse_{label}_m"] = float(rmse([tr[f"{mode}_{t}_rmse_m"] for tr in trials for t in ids],
                                                 skip_nan=True))
            row[f"breaks_{label}"] = float(np.mean([tr[f"{mode}_{t}_breaks"] for tr in trials for t in ids]))
        row["ospa_m"] = float(np.mean([tr[f"{mode}_ospa_m"] for tr in trials]))
        row["handovers"] = float(np.mean([tr["coop_handovers"] for tr in trials])) if mode == "coop" else math.nan
        if mode == "multi_cal":
            for net in FOREIGN_BIAS:
                row[f"calibrated_{net}"] = float(np.mean([tr.get(f"cal_{net}_ok", 0.0) for tr in trials]))
                for name in ("offset_s", "bias_x_m", "bias_y_m", "yaw_rad"):
                    z = [tr[f"cal_{net}_{name}_z"] for tr in trials if f"cal_{net}_{name}_z" in tr]
                    row[f"cal_{net}_{name}_rms_z"] = float(np.sqrt(np.mean(np.square(z)))) if z else math.nan
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'SNR off':>7s} {'mode':12s} | {'cont. all':>9s} {'vehicles':>8s} {'UAV':>6s} | {'RMSE m':>7s} | "
             f"{'breaks':>6s} | {'OSPA m':>6s} | {'handovers':>9s} | {'area km²':>8s}"]
    for r in rows:
        lines.append(f"{r['snr_offset_db']:7.0f} {r['mode']:12s} | {r['continuity_all']:9.3f} "
                     f"{r['continuity_vehicles']:8.3f} {r['continuity_uav']:6.3f} | {r['rmse_all_m']:7.3f} | "
                     f"{r['breaks_all']:6.2f} | {r['ospa_m']:6.2f} | {r['handovers']:9.1f} | "
                     f"{r['sensing_area_m2'] / 1e6:8.4f}")
    cal = [r for r in rows if r["mode"] == "multi_cal"]
    for r in cal:
        parts = [f"{net}: calibrated in {r[f'calibrated_{net}']:.0%} of trials, rms z (dt, bx, by, yaw) = "
                 + ", ".join(f"{r[f'cal_{net}_{n}_rms_z']:.2f}"
                             for n in ("offset_s", "bias_x_m", "bias_y_m", "yaw_rad"))
                 for net in FOREIGN_BIAS]
        lines.append(f"calibration at {r['snr_offset_db']:.0f} dB: " + "; ".join(parts))
    lines.append(f"continuity: fraction of the {int(DURATION_S / DT_S)} instants with a confirmed track within "
                 f"{THRESHOLD_M} m of the target (article §II-B); RMSE over the instants with a track; OSPA c = "
                 f"{OSPA_C_M} m, p = {OSPA_P}; area: where a {COVERAGE_RCS_M2:g} m² car has P_d >= 0.9 "
                 "(article §II-B); rms z of a consistent calibration is about 1")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), dpi=100)
    for mode, fmt in zip(MODES, ("C0o-", "C1s-", "C3v--", "C2^-"), strict=True):
        sel = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["snr_offset_db"])
        x = [r["snr_offset_db"] for r in sel]
        axes[0].plot(x, [r["continuity_all"] for r in sel], fmt, label=mode, ms=4)
        axes[1].plot(x, [r["ospa_m"] for r in sel], fmt, label=mode, ms=4)
        axes[2].plot(x, [r["breaks_all"] for r in sel], fmt, label=mode, ms=4)
    for ax, title in zip(axes, (f"sensing continuity (error < {THRESHOLD_M} m)", "mean OSPA (m)",
                                "track breaks per target"), strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("SNR offset (dB)", fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    written = [save_figure(fig, out / "continuity.png")]
    for mode in ("single", "coop", "multi_cal"):
        ids = mode_stations(mode)
        nodes = np.array([st.position_m for st in stations() if st.node_id in ids])
        written.append(plot_coverage_map(out / f"coverage_{mode}.png", coverage_map(ids), COVERAGE_AXIS_M,
                                         COVERAGE_AXIS_M, nodes, 0.9,
                                         title=f"{mode}: P_d of a {COVERAGE_RCS_M2:g} m² car"))
    return written


def continuity_scenario() -> Scenario:
    return Scenario(name="continuity", description="urban tracking: one BS, one operator with handover, two operators "
                    "and an AP with and without HetNet calibration (continuity, OSPA, breaks)",
                    points=tuple({"snr_offset_db": s} for s in SNR_OFFSETS_DB), trial=trial, summarise=summarise,
                    plot=plot, default_trials=20, table=table)
