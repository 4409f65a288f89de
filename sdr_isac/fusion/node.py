"""Node-level cooperation: several base stations sensing one target (article §IV).

- :func:`estimate_paths` — the strongest paths of one link's CIM by CLEAN:
  grid peak, off-grid ML refinement, least-squares amplitude, subtraction.
- :func:`bistatic_measurement` — a bistatic link's range sum and range rate
  with the receiver's clock offset and carrier offset removed through the
  direct (line-of-sight) path, whose length the nodes know.
- :func:`locate` — target position from monostatic ranges and bistatic range
  sums by weighted nonlinear least squares (Gauss–Newton / trust region,
  ``scipy.optimize.least_squares``), weights the inverse CRB variances;
  returns the covariance ``(J^T W J)^-1``.
- :func:`velocity_vector` — the velocity vector from radial velocities and
  bistatic range rates by weighted linear least squares at the position.
- :func:`locate_single` — one node's position estimate from its range and
  the cone angle of its linear array.
- :func:`fuse_nodes` — what the fusion host runs live: association of
  several nodes' detections by geometry gating (each node's own range and
  angle estimate), then :func:`locate` and :func:`velocity_vector`; the
  bistatic detections of receive-only nodes join by range-sum gating
  (:func:`passive_links`: referenced to their line of sight).
- :func:`symbol_level_refine` — symbol-level fusion: a joint search over
  position and velocity that adds the nodes' normalised periodograms
  (the approach of Wei et al., "Symbol-level ISAC enabled multiple base
  stations cooperative sensing", IEEE TVT 2023), started at the
  estimate-level solution.

Geometry: positions in m in a common frame; a target of known height (a UAV
at a reported altitude) is located in the horizontal plane, with level
flight (``v_z = 0``); the measurement rows are those of
:func:`sdr_isac.sensing.crb.measurement_matrix` (REFERENCE.md §3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize as sp_opt
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError, SensingError
from sdr_isac.fusion.completion import noise_variance
from sdr_isac.fusion.locate import (
    SingleFix,
    _check_nodes,
    _model,
    locate,
    locate_robust,
    locate_single,
    single_fix,
    velocity_vector,
)
from sdr_isac.fusion.multiband import Band, band_map, common_grid, grid_peak, pilot_block, reorganise
from sdr_isac.fusion.records import LinkMeasurement, TargetEstimate
from sdr_isac.sensing import Detection
from sdr_isac.sensing import estimate as core
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["PathEstimate", "LinkMeasurement", "estimate_paths", "monostatic_measurement", "array_angle",
           "bistatic_measurement", "locate", "locate_robust", "velocity_vector", "locate_single", "symbol_level_refine",
           "NodePlace", "fuse_nodes", "passive_links"]

_UNKNOWN_ANGLE_VAR = 0.01    # rad²: a detection that carries no angle CRB is taken at 0.1 rad


@dataclass(frozen=True)
class PathEstimate:
    """One path of a link: delay (s), normalised Doppler ``nu = f_D / f_c``, amplitude, per-RE SNR and its CRB."""

    delay_s: float
    nu: float
    amplitude: complex
    snr_re: float
    var_delay_s2: float
    var_nu: float


def estimate_paths(band: Band, cim: NDArray[np.complexfloating], num_paths: int = 1,
                   noise_var: float | None = None, num_rounds: int = 10) -> list[PathEstimate]:
    """The ``num_paths`` strongest paths of a CIM, strongest first: :func:`sdr_isac.sensing.estimate.estimate_paths`
    (CLEAN from the peaks of the band's periodogram, Newton refinement, RELAX) on the band's pilots.

    The per-RE SNR is ``|a|**2 / sigma**2`` with the noise variance the mean
    power of the final residual (unless given), and the variances are the
    CRB of the band's pilots at that SNR.
    """
    grid = common_grid([band])
    data = np.where(band.pilots, cim, 0).astype(np.complex128)
    sigma2 = noise_variance(data, band.pilots) if noise_var is None else float(noise_var)

    def peak(residual: NDArray[np.complex128]) -> tuple[float, float]:
        hg, mask = reorganise(band, residual[0], grid)
        r, d = grid_peak(band_map(hg, mask, "zero", sigma2)[0], grid, [mask])
        return r * grid.delay_bin_s, float(grid.nu_axis()[d])

    k = np.arange(band.num_subcarriers) * band.subcarrier_spacing_hz
    t = band.symbol_times_s * band.carrier_hz
    paths = core.estimate_paths(data[None], band.pilots, k, t, [sigma2], band.fim(1.0)[None], num_paths, peak,
                                (grid.delay_bin_s, grid.nu_bin), 2.0, num_rounds)
    if noise_var is None:
        # after CLEAN the residual is noise: its mean power (4 real parameters removed per path) is a better
        # estimate than the first map's median, which a strong path's sidelobes inflate
        model = sum((p.amplitudes[0] * np.outer(np.exp(2j * np.pi * t * p.doppler), np.exp(-2j * np.pi * k * p.delay_s))
                     for p in paths), np.zeros_like(data))
        n = int(np.count_nonzero(band.pilots))
        sigma2 = float(np.sum(np.abs((data - model)[band.pilots]) ** 2) / max(n - 2 * len(paths), 1))
    out = []
    for p in paths:
        amp = complex(p.amplitudes[0])
        snr = abs(amp) ** 2 / sigma2
        crb = band.crb(max(snr, 1e-12))
        out.append(PathEstimate(p.delay_s, p.doppler, amp, snr, float(crb[0, 0]), float(crb[1, 1])))
    return out


def monostatic_measurement(node: int, path: PathEstimate, c: float = SPEED_OF_LIGHT_MPS) -> LinkMeasurement:
    """Range ``c tau / 2`` and radial velocity ``-c nu / 2`` of a monostatic path."""
    return LinkMeasurement(node, node, c * path.delay_s / 2.0, -c * path.nu / 2.0,
                           (c / 2.0) ** 2 * path.var_delay_s2, (c / 2.0) ** 2 * path.var_nu, path.snr_re)


def bistatic_measurement(tx: int, rx: int, baseline_m: float, direct: PathEstimate, echo: PathEstimate,
                         c: float = SPEED_OF_LIGHT_MPS) -> LinkMeasurement:
    """Range sum and range rate of a bistatic echo, referenced to the direct path.

    The receiver's clock offset ``delta`` and carrier offset ``cfo`` shift
    both paths alike: ``tau_d = L / c + delta``, ``tau_e = S / c + delta``,
    ``nu_d = cfo / f_c``, ``nu_e = -S' / c + cfo / f_c`` (static nodes), so
    ``S = L + c (tau_e - tau_d)`` and ``S' = -c (nu_e - nu_d)``; the
    variances of both paths add.
    """
    if not (np.isfinite(baseline_m) and baseline_m > 0):
        raise InputError(f"baseline_m = {baseline_m!r} m: allowed the distance between the two nodes, > 0")
    return LinkMeasurement(tx, rx, baseline_m + c * (echo.delay_s - direct.delay_s), -c * (echo.nu - direct.nu),
                           c**2 * (echo.var_delay_s2 + direct.var_delay_s2), c**2 * (echo.var_nu + direct.var_nu),
                           echo.snr_re)


def symbol_level_refine(bands: Sequence[Band], cims: Sequence[NDArray[np.complexfloating]], nodes_m: ArrayLike,
                        height_m: float, start_xy: ArrayLike, start_v: ArrayLike, scale: tuple[float, float],
                        c: float = SPEED_OF_LIGHT_MPS) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Symbol-level fusion of monostatic links: maximise the summed normalised periodograms over (x, y, v_x, v_y).

    Node ``i``'s CIM ``cims[i]`` (its ``bands[i]``) predicts delay
    ``2 ||p - b_i|| / c`` and ``nu = -2 u_i^T v / c``; the objective is
    ``sum_i |d_i^T H_i a_i|**2 / (n_i sigma_i**2)`` (independent amplitudes),
    maximised by Nelder–Mead in units of ``scale = (m, m/s)`` from the
    estimate-level start.
    """
    nodes = _check_nodes(nodes_m)
    prepared = []
    for band, h in zip(bands, cims, strict=True):
        s2 = noise_variance(np.where(band.pilots, h, 0), band.pilots)
        prepared.append((*pilot_block(band, h), float(np.count_nonzero(band.pilots)) * s2))
    x0 = np.concatenate([np.asarray(start_xy, dtype=float), np.asarray(start_v, dtype=float)])
    step = np.array([scale[0], scale[0], scale[1], scale[1]])

    def cost(q: NDArray[np.float64]) -> float:
        x = x0 + q * step
        p = np.array([x[0], x[1], height_m])
        total = 0.0
        for i, (y, k, t, norm) in enumerate(prepared):
            diff = p - nodes[i]
            dist = float(np.linalg.norm(diff))
            tau = 2.0 * dist / c
            nu = -2.0 * float(diff[:2] @ x[2:]) / (dist * c)
            total += abs(np.exp(-2j * np.pi * t * nu) @ y @ np.exp(2j * np.pi * k * tau)) ** 2 / norm
        return -total

    simplex = np.vstack([np.zeros(4), 0.5 * np.eye(4)])
    res = sp_opt.minimize(cost, np.zeros(4), method="Nelder-Mead",
                          options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-9, "maxiter": 800})
    x = x0 + res.x * step
    return x[:2], x[2:]


def array_angle(snapshot: ArrayLike, spacing_wavelengths: float = 0.5) -> float:
    """Cone angle (rad from broadside) of one source from a uniform linear array's matched-filter outputs:
    :func:`sdr_isac.sensing.estimate.ml_angle` with elements ``spacing_wavelengths`` apart."""
    z = np.asarray(snapshot, dtype=np.complex128).ravel()
    if z.size < 2 or not np.all(np.isfinite(z)):
        raise InputError(f"snapshot has {z.size} entries: allowed a finite vector of at least 2 elements")
    return core.ml_angle(z, spacing_wavelengths * np.arange(z.size))


@dataclass(frozen=True)
class NodePlace:
    """Where a node is: its id, position (3,) m, receive-array boresight ``yaw_deg`` (degrees from +x towards +y).

    A detection's ``angle_rad`` is measured from the boresight towards the array's +y end, turned with the node.
    ``role`` (``bs``, ``ue``, ...) and ``transmits`` come from the scene.
    """

    id: str
    position_m: tuple[float, ...]
    yaw_deg: float = 0.0
    role: str = "bs"
    transmits: bool = True


def fuse_nodes(places: Mapping[str, NodePlace], detections: Mapping[str, Sequence[Detection]], height_m: float,
               gate_m: float = 5.0, passive: Mapping[str, str] | None = None, gate_sigma: float = 5.0,
               max_clock_offset_s: float = 1e-7, t_s: float = 0.0) -> list[TargetEstimate]:
    """Associate the detections of several nodes and fuse each associated set (host-side, live).

    Monostatic detections (of nodes that sense their own echoes) are
    associated by their own position estimates; the bistatic detections of
    receive-only nodes (``passive``) then join those targets by gating
    (:func:`passive_links`, :func:`_join_bistatic`).

    Parameters
    ----------
    places : mapping
        Node id -> its :class:`NodePlace`.
    detections : mapping
        Node id -> its :class:`~sdr_isac.sensing.Detection` records of one time-aligned set.
    height_m : float
        Height of the targets (ground traffic ~1 m; a UAV its reported altitude).
    gate_m : float
        Association slack, m: a node's own fix (range and angle,
        :func:`~sdr_isac.fusion.locate.single_fix`) joins a target when its
        difference to the target's strongest fix is within ``gate_sigma``
        in the Mahalanobis distance of the two fixes' CRB covariances plus
        ``(gate_m / gate_sigma)**2 I`` (what the CRB does not model: the
        target's extent, its height), and the target has no detection of
        that node yet.  A bistatic range sum joins a target when it lies
        within ``gate_sigma`` standard deviations plus ``gate_m`` of the
        range sum predicted at the target's position.
    passive : mapping, optional
        Receive-only node id -> id of the transmitter it hears (a node of
        ``places``).  Their detections are bistatic range sums referenced to
        the line of sight (:func:`passive_links`).  None or empty: monostatic
        fusion only.
    gate_sigma : float
        Gate of the association and of :func:`~sdr_isac.fusion.locate.locate_robust`
        (fault exclusion consistent with the CRB covariances), in standard
        deviations.
    max_clock_offset_s : float
        Largest clock offset of a receive-only node against its transmitter,
        s (sets the window in which its line of sight is looked for).
    t_s : float
        Time of the set, s (the estimates' ``t_s``).

    Returns
    -------
    list of TargetEstimate
        One per associated target seen by two or more nodes, strongest
        first, located in the plane at ``height_m`` (variance 0): ``nodes``
        (monostatic nodes first, then the passive ones), ``single_m`` (each
        monostatic node's own position estimate), ``links`` (the links the
        position rests on after fault exclusion; ``tx`` and ``rx`` index the
        node ids ordered as the monostatic nodes of ``detections``, then the
        passive nodes' transmitters not among them, then the passive nodes),
        the velocity where the radial velocities determine it (``v_z = 0``),
        mode ``single`` where no two links agreed and the strongest node's own
        fix stands.
    """
    if not (np.isfinite(gate_m) and gate_m > 0):
        raise InputError(f"gate_m = {gate_m!r} m: allowed a finite distance > 0")
    passive = {n: tx for n, tx in (passive or {}).items() if n in places and tx in places and n in detections}
    ids = [n for n in detections if n in places and n not in passive]
    ids += [tx for tx in dict.fromkeys(passive.values()) if tx not in ids]
    ids += list(passive)
    positions = np.array([places[n].position_m for n in ids], dtype=np.float64).reshape(-1, 3)
    candidates = []
    for k, node_id in enumerate(ids):
        if node_id in passive or node_id not in detections:
            continue
        yaw = np.deg2rad(float(places[node_id].yaw_deg))
        axis = np.array([np.sin(yaw), -np.cos(yaw)])        # broadside turned by -90°: locate_single's axis
        for det in detections[node_id]:
            if det.geometry != "monostatic" or det.angle_rad is None:
                continue
            try:
                fix = single_fix(positions, k, axis, float(det.range_m), float(det.range_var_m2),
                                 -float(det.angle_rad), float(det.angle_var_rad2 or _UNKNOWN_ANGLE_VAR), height_m)
            except SensingError:
                continue
            candidates.append((float(det.snr_db), k, det, fix))
    candidates.sort(key=lambda c: -c[0])
    gate_chi2 = gate_sigma**2                            # of the 2-D position difference: see the docstring
    clusters: list[dict[str, Any]] = []
    for _, k, det, fix in candidates:
        best = None
        for cl in clusters:
            if k in cl["single"]:
                continue
            lead: SingleFix = cl["fixes"][0]
            diff = fix.xy_m - lead.xy_m
            spread = fix.cov_m2 + lead.cov_m2 + (gate_m**2 / gate_chi2) * np.eye(2)
            d2 = float(diff @ np.linalg.solve(spread, diff))
            if d2 <= gate_chi2 and (best is None or d2 < best[0]):
                best = (d2, cl)
        if best is None:
            clusters.append({"single": {k: fix.xy_m}, "dets": {k: det}, "fixes": [fix]})
        else:
            best[1]["single"][k] = fix.xy_m
            best[1]["dets"][k] = det
            best[1]["fixes"].append(fix)
    bistatic = {ids.index(n): passive_links(positions, ids.index(tx), ids.index(n), detections[n],
                                            max_clock_offset_s) for n, tx in passive.items()}
    _join_bistatic(clusters, bistatic, positions, height_m, gate_m, gate_sigma)
    out = []
    for cl in clusters:
        extra: dict[int, LinkMeasurement] = cl.get("bistatic", {})
        if len(cl["dets"]) + len(extra) < 2:
            continue
        links = [LinkMeasurement(k, k, float(d.range_m), float(d.velocity_mps), float(d.range_var_m2),
                                 float(d.velocity_var_mps2), 10.0 ** (float(d.snr_db) / 10.0))
                 for k, d in cl["dets"].items()]
        anchor = cl["fixes"][0]                           # the strongest node's own fix
        xy, cov, links = locate_robust(positions, links + list(extra.values()), height_m, anchor.xy_m, gate_sigma,
                                       anchor=anchor)
        members = sorted({m.rx for m in links})
        velocity = {}
        try:
            v, cov_v = velocity_vector(positions, links, [xy[0], xy[1], height_m])
            velocity = {"velocity_xy_mps": v[:2], "cov_velocity_xy_mps2": cov_v}
        except SensingError:
            pass
        out.append(TargetEstimate.planar(
            xy, cov, height_m, t_s=t_s,
            nodes=[ids[k] for k in cl["dets"] if k in members] + [ids[k] for k in members if ids[k] in passive],
            single_m={ids[k]: (float(p[0]), float(p[1])) for k, p in cl["single"].items()},
            links=tuple(links), mode=None if len(links) >= 2 else "single", **velocity))
    return out


def passive_links(nodes_m: ArrayLike, tx: int, rx: int, detections: Sequence[Detection],
                  max_clock_offset_s: float = 1e-7, c: float = SPEED_OF_LIGHT_MPS) -> list[LinkMeasurement]:
    """A receive-only node's bistatic detections as range sums and range rates, referenced to its line of sight.

    The line of sight is the strongest bistatic detection whose range sum
    lies within ``c * max_clock_offset_s + 3`` m of the baseline
    ``L = ||b_tx - b_rx||`` (the receiver's clock offset shifts every range
    sum alike; 3 m cover a range cell and the nodes' survey).  Every other
    detection gives ``S = L + (R_det - R_los)`` and ``S' = v_det - v_los``
    (clock offset and carrier offset removed, as in
    :func:`bistatic_measurement`); the variances of both add.  No line of
    sight found: no links.

    Parameters
    ----------
    nodes_m : array_like, shape (B, 3)
        Node positions, m.
    tx, rx : int
        Rows of ``nodes_m`` of the transmitter and the receive-only node.
    detections : sequence of Detection
        The receive-only node's detections (bistatic geometry: ``range_m`` is
        ``c`` times the delay; monostatic ones are passed over).
    max_clock_offset_s : float
        Largest clock offset of the receiver against the transmitter, s (>= 0).
    """
    if not (np.isfinite(max_clock_offset_s) and max_clock_offset_s >= 0):
        raise InputError(f"max_clock_offset_s = {max_clock_offset_s!r} s: allowed a finite time >= 0")
    b = _check_nodes(nodes_m)
    baseline = float(np.linalg.norm(b[tx] - b[rx]))
    dets = [d for d in detections if d.geometry == "bistatic"]
    window = c * max_clock_offset_s + 3.0
    near = [d for d in dets if abs(float(d.range_m) - baseline) <= window]
    if baseline <= 0 or not near:
        return []
    los = max(near, key=lambda d: float(d.snr_db))
    r0, v0 = float(los.range_m), float(los.velocity_mps)
    out = []
    for d in dets:
        if d is los:
            continue
        s = baseline + float(d.range_m) - r0
        if s <= baseline:                                   # shorter than the direct path: not an echo
            continue
        out.append(LinkMeasurement(tx, rx, s, float(d.velocity_mps) - v0, float(d.range_var_m2)
                                   + float(los.range_var_m2), float(d.velocity_var_mps2) + float(los.velocity_var_mps2),
                                   10.0 ** (float(d.snr_db) / 10.0)))
    return out


def _join_bistatic(clusters: list[dict[str, Any]], bistatic: dict[int, list[LinkMeasurement]],
                   positions: NDArray[np.float64], height_m: float, gate_m: float, gate_sigma: float) -> None:
    """Give each cluster (strongest first) at most one range sum per receive-only node, by gating.

    A range sum ``S`` is consistent with a cluster when
    ``|S - (||p - b_tx|| + ||p - b_rx||)| <= gate_sigma * sigma_S + gate_m``
    at the cluster's position ``p`` (its monostatic fix when it has two or
    more nodes, else its node's own range-and-angle estimate, whose error
    ``gate_m`` bounds); of the consistent ones the strongest joins, and a
    range sum joins one cluster only.
    """
    used: set[tuple[int, int]] = set()
    for cl in clusters:
        cl["bistatic"] = {}
        if not bistatic:
            continue
        xy = np.mean(list(cl["single"].values()), axis=0)
        if len(cl["dets"]) >= 2:
            mono = [LinkMeasurement(k, k, float(d.range_m), 0.0, float(d.range_var_m2), 1.0, 1.0)
                    for k, d in cl["dets"].items()]
            xy, _ = locate(positions, mono, height_m, xy)
        p = np.array([xy[0], xy[1], height_m])
        for rx, links in bistatic.items():
            gated = [(i, m) for i, m in enumerate(links) if (rx, i) not in used and abs(
                m.range_m - float(_model(positions, p, [m])[0])) <= gate_sigma * np.sqrt(m.var_range_m2) + gate_m]
            if gated:
                i, m = max(gated, key=lambda item: item[1].snr_re)
                used.add((rx, i))
                cl["bistatic"][rx] = m
