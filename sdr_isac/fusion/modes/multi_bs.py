"""Node-level cooperation, the multi-BS mode: several base stations sensing one target (article §IV).

- :func:`fuse_nodes` — what the fusion host runs live: association of
  several nodes' detections by geometry gating (each node's own range and
  angle estimate, :func:`~sdr_isac.fusion.associate.cluster_fixes`), then
  :func:`~sdr_isac.fusion.locate.locate_robust` and
  :func:`~sdr_isac.fusion.locate.velocity_with_cross`; the bistatic detections
  of receive-only nodes join by range-sum gating
  (:func:`~sdr_isac.fusion.links.passive_links`: referenced to their line of
  sight; :func:`~sdr_isac.fusion.associate.join_bistatic`).
- :func:`symbol_level_refine` — symbol-level fusion: a joint search over
  position and velocity that adds the nodes' normalised periodograms
  (the approach of Wei et al., "Symbol-level ISAC enabled multiple base
  stations cooperative sensing", IEEE TVT 2023), started at the
  estimate-level solution.

Link measurements come from :mod:`~sdr_isac.fusion.links`, positions from
:mod:`~sdr_isac.fusion.locate`, association from
:mod:`~sdr_isac.fusion.associate`.

Geometry: positions in m in a common frame; a target of known height (a UAV
at a reported altitude) is located in the horizontal plane, with level
flight (``v_z = 0``); the measurement rows are those of
:func:`sdr_isac.sensing.crb.measurement_matrix` (REFERENCE.md §3).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.optimize as sp_opt
from numpy.typing import ArrayLike, NDArray

from sdr_isac.config import FusionConfig
from sdr_isac.errors import InputError, SensingError
from sdr_isac.fusion.associate import FixCluster, cluster_fixes, join_bistatic
from sdr_isac.fusion.completion import noise_variance
from sdr_isac.fusion.links import passive_links
from sdr_isac.fusion.locate import SingleFix, _check_nodes, locate_robust, single_fix, velocity_with_cross
from sdr_isac.fusion.modes.base import NodePlace, register_mode
from sdr_isac.fusion.multiband import Band, pilot_block
from sdr_isac.fusion.records import LinkMeasurement, TargetEstimate
from sdr_isac.sensing import Detection
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["fuse_nodes", "symbol_level_refine", "periodogram_terms", "periodogram_sum",
           "periodogram_sum_derivatives", "fuse_multi_bs"]

_UNKNOWN_ANGLE_VAR = 0.01    # rad²: a detection that carries no angle CRB is taken at 0.1 rad
#: how the association's fixes carry their errors (single_fix's ``propagation``): linearised.  Their honest
#: covariances (quadrature) grow to tens of metres near endfire and below a node, and the nearest-neighbour
#: chi-square gate (no likelihood against clutter) then joins ghost detections of two nodes into targets (the
#: urban demo's mecs_a made four phantom tracks); the estimate that rests on one fix reports its quadrature error
_ASSOCIATION_PROPAGATION = "linear"
#: |angle| from broadside beyond which a node's angle may lie at the other end of its array's axis: towards
#: endfire a half-wavelength array's phase step nears ±pi, where noise flips its sign (the CRB, ~1/cos² of the
#: angle, does not cover a wrap), so a target on the axis (a station whose array runs along its street) is seen
#: at either end
ENDFIRE_RAD = math.radians(75.0)
#: a fused velocity with a standard deviation beyond this in some direction is left out of the estimate, m/s:
#: nodes that see the target along one line (the urban grid's stations on its street) hardly determine the
#: velocity across it; such a velocity tells a tracker less than its speed prior, and where the position errs
#: beyond its covariance (a grid's range cell without sub-cell refinement) the solve that gives 1e5 m/s across
#: also moves the other component by tens of m/s (the urban demo's car2: 76 m/s for 12.5, its track flew off)
MAX_VELOCITY_STD_MPS = 100.0


def periodogram_terms(bands: Sequence[Band], cims: Sequence[NDArray[np.complexfloating]]
                      ) -> list[tuple[NDArray[np.complex128], NDArray[np.float64], NDArray[np.float64], float]]:
    """Each CIM's pilot block, column offsets ``k df`` and row phase rates ``f_c t_m``
    (:func:`~sdr_isac.fusion.multiband.pilot_block`), with its normaliser ``n sigma**2`` (pilots times the
    noise variance per RE, :func:`~sdr_isac.fusion.completion.noise_variance`)."""
    out = []
    for band, h in zip(bands, cims, strict=True):
        s2 = noise_variance(np.where(band.pilots, h, 0), band.pilots)
        out.append((*pilot_block(band, h), float(np.count_nonzero(band.pilots)) * s2))
    return out


def periodogram_sum(terms: Sequence[tuple[NDArray[np.complex128], NDArray[np.float64], NDArray[np.float64], float]],
                    offsets_m: Sequence[NDArray[np.float64]], velocity_xy_mps: NDArray[np.float64],
                    c: float = SPEED_OF_LIGHT_MPS) -> float:
    """``sum_i |d_i(nu_i)^T Y_i a_i(tau_i)|**2 / (n_i sigma_i**2)``: the summed normalised periodograms of
    monostatic links (:func:`periodogram_terms`) at a target state.

    ``offsets_m[i]`` (shape (3,), m) is the target's position minus node i's, giving ``tau_i = 2 r_i / c`` and
    ``nu_i = -2 u_i^T v / c`` for the horizontal velocity ``velocity_xy_mps`` (shape (2,), m/s).
    """
    total = 0.0
    for (y, k, t, norm), d in zip(terms, offsets_m, strict=True):
        r = float(np.linalg.norm(d))
        tau, nu = 2.0 * r / c, -2.0 * float(d[:2] @ velocity_xy_mps) / (r * c)
        total += abs(np.exp(-2j * np.pi * t * nu) @ y @ np.exp(2j * np.pi * k * tau)) ** 2 / norm
    return total


def periodogram_sum_derivatives(
        terms: Sequence[tuple[NDArray[np.complex128], NDArray[np.float64], NDArray[np.float64], float]],
        offsets_m: Sequence[NDArray[np.float64]], velocity_xy_mps: NDArray[np.float64],
        c: float = SPEED_OF_LIGHT_MPS) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """:func:`periodogram_sum` with its exact gradient and Hessian in the target state ``(x, y, v_x, v_y)``.

    Each term ``P_i = |z_i|**2 / (n_i sigma_i**2)``, ``z_i = d_i(nu_i)^T Y_i a_i(tau_i)``, is analytic in
    ``(tau_i, nu_i)`` (the derivatives of ``z_i`` are matched filters with ``2 pi j k df`` and ``-2 pi j f_c t_m``
    weights), and ``tau_i = 2 r_i / c``, ``nu_i = -2 u_i^T v / c`` are smooth away from node ``i``; the chain
    rule gives ``grad = J^T g`` and ``Hess = J^T G J + g_tau Hess(tau) + g_nu Hess(nu)``.

    Returns
    -------
    value : float
        The sum (as :func:`periodogram_sum`).
    grad : ndarray, shape (4,), float64
        Per m in ``x, y``, per m/s in ``v_x, v_y``.
    hess : ndarray, shape (4, 4), float64
        Symmetric.
    """
    v = np.asarray(velocity_xy_mps, dtype=np.float64)
    total, grad, hess = 0.0, np.zeros(4), np.zeros((4, 4))
    eye = np.eye(2)
    for (y, k, t, norm), off in zip(terms, offsets_m, strict=True):
        d3 = np.asarray(off, dtype=np.float64)
        r = float(np.linalg.norm(d3))
        u = d3[:2] / r
        g = float(u @ v)                                   # horizontal radial speed: nu = -2 g / c
        tau, nu = 2.0 * r / c, -2.0 * g / c
        wk, wt = 2j * np.pi * k, -2j * np.pi * t
        a, e = np.exp(wk * tau), np.exp(wt * nu)
        ya = y @ np.stack([a, wk * a, wk * wk * a], axis=1)                  # (rows, 3): d^j/dtau^j
        z = np.stack([e, wt * e, wt * wt * e]) @ ya                           # z[i, j] = d^i/dnu^i d^j/dtau^j z
        z0 = z[0, 0]
        zs = np.array([z[0, 1], z[1, 0]])                                     # (dz/dtau, dz/dnu)
        zss = np.array([[z[0, 2], z[1, 1]], [z[1, 1], z[2, 0]]])
        total += abs(z0) ** 2 / norm
        g_s = 2.0 * np.real(np.conj(z0) * zs) / norm
        h_s = 2.0 * np.real(np.conj(zs)[:, None] * zs[None, :] + np.conj(z0) * zss) / norm
        jac = np.zeros((2, 4))
        jac[0, :2] = 2.0 * u / c
        jac[1, :2] = -2.0 * (v - g * u) / (r * c)
        jac[1, 2:] = -2.0 * u / c
        proj = eye - np.outer(u, u)
        h_tau = np.zeros((4, 4))
        h_tau[:2, :2] = 2.0 * proj / (r * c)
        h_nu = np.zeros((4, 4))
        h_nu[:2, :2] = -2.0 * (-(np.outer(v, u) + np.outer(u, v)) - g * eye + 3.0 * g * np.outer(u, u)) / (r * r * c)
        h_nu[:2, 2:] = -2.0 * proj / (r * c)
        h_nu[2:, :2] = h_nu[:2, 2:].T
        grad += jac.T @ g_s
        hess += jac.T @ h_s @ jac + g_s[0] * h_tau + g_s[1] * h_nu
    return total, grad, 0.5 * (hess + hess.T)


def symbol_level_refine(bands: Sequence[Band], cims: Sequence[NDArray[np.complexfloating]], nodes_m: ArrayLike,
                        height_m: float, start_xy: ArrayLike, start_v: ArrayLike, scale: tuple[float, float],
                        c: float = SPEED_OF_LIGHT_MPS) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Symbol-level fusion of monostatic links: maximise the summed normalised periodograms over (x, y, v_x, v_y).

    Node ``i``'s CIM ``cims[i]`` (its ``bands[i]``) predicts delay
    ``2 ||p - b_i|| / c`` and ``nu = -2 u_i^T v / c``; the objective is
    ``sum_i |d_i^T H_i a_i|**2 / (n_i sigma_i**2)`` (independent amplitudes),
    smooth away from the nodes, maximised from the estimate-level start by
    scipy's exact trust-region Newton method (``trust-exact``) with the exact
    gradient and Hessian (:func:`periodogram_sum_derivatives`), in units of
    ``scale = (m, m/s)`` (first trust radius half a unit).
    """
    nodes = _check_nodes(nodes_m)
    terms = periodogram_terms(bands, cims)
    x0 = np.concatenate([np.asarray(start_xy, dtype=float), np.asarray(start_v, dtype=float)])
    step = np.array([scale[0], scale[0], scale[1], scale[1]])
    cache: dict[bytes, tuple[float, NDArray[np.float64], NDArray[np.float64]]] = {}

    def evaluate(q: NDArray[np.float64]) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
        key = q.tobytes()
        if key not in cache:
            x = x0 + q * step
            p = np.array([x[0], x[1], height_m])
            f, g, h = periodogram_sum_derivatives(terms, [p - b for b in nodes], x[2:], c)
            cache.clear()
            cache[key] = (-f / norm, -g * step / norm, -h * np.outer(step, step) / norm)
        return cache[key]

    norm = 1.0
    f0 = -evaluate(np.zeros(4))[0]
    cache.clear()
    norm = f0 if np.isfinite(f0) and f0 > 0 else 1.0         # the objective near -1 at the start
    res = sp_opt.minimize(lambda q: evaluate(q)[0], np.zeros(4), method="trust-exact",
                          jac=lambda q: evaluate(q)[1], hess=lambda q: evaluate(q)[2],
                          options={"initial_trust_radius": 0.5, "gtol": 1e-8, "maxiter": 200})
    x = x0 + res.x * step
    return x[:2], x[2:]


def fuse_nodes(places: Mapping[str, NodePlace], detections: Mapping[str, Sequence[Detection]], height_m: float,
               gate_m: float = 5.0, passive: Mapping[str, str] | None = None, gate_sigma: float = 5.0,
               max_clock_offset_s: float = 1e-7, t_s: float = 0.0, min_nodes: int = 2,
               var_height_m2: float = 0.0) -> list[TargetEstimate]:
    """Associate the detections of several nodes and fuse each associated set (host-side, live).

    Monostatic detections (of nodes that sense their own echoes) are
    associated by their own position estimates (a detection within 15° of
    its array's endfire, :data:`ENDFIRE_RAD`, also by its fix at the other
    end of the axis, taken where it associates more nodes: a half-wavelength
    array's phase step there nears ±pi and noise flips its sign); the bistatic detections of
    receive-only nodes (``passive``) then join those targets by gating
    (:func:`~sdr_isac.fusion.links.passive_links`,
    :func:`~sdr_isac.fusion.associate.join_bistatic`).

    Parameters
    ----------
    places : mapping
        Node id -> its :class:`~sdr_isac.fusion.modes.base.NodePlace`.
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
        the line of sight (:func:`~sdr_isac.fusion.links.passive_links`).
        None or empty: monostatic fusion only.
    gate_sigma : float
        Gate of the association and of :func:`~sdr_isac.fusion.locate.locate_robust`
        (fault exclusion consistent with the CRB covariances), in standard
        deviations.
    max_clock_offset_s : float
        Largest clock offset of a receive-only node against its transmitter,
        s (sets the window in which its line of sight is looked for).
    t_s : float
        Time of the set, s (the estimates' ``t_s``).
    min_nodes : int
        Fewest nodes (monostatic and receive-only) a target must be seen by, >= 1 (``fusion.min_nodes``):
        1 keeps a target that one node alone sees, located by that node's own fix (mode ``single``).
    var_height_m2 : float
        Variance of the targets' heights about ``height_m``, m² (``fusion.target_height_std_m`` squared): an
        estimate of mode ``single`` carries it (its fix's covariance with the height's error propagated, the
        height's variance, their cross terms); 0 (the default): the height is known.  Fits of two or more
        links take the height as known either way.

    Returns
    -------
    list of TargetEstimate
        One per associated target seen by ``min_nodes`` or more nodes, strongest
        first, located in the plane at ``height_m`` (variance 0): ``nodes``
        (monostatic nodes first, then the passive ones), ``single_m`` (each
        monostatic node's own position estimate), ``links`` (the links the
        position rests on after fault exclusion; ``tx`` and ``rx`` index the
        node ids ordered as the monostatic nodes of ``detections``, then the
        passive nodes' transmitters not among them, then the passive nodes),
        the velocity where the radial velocities determine it (``v_z = 0``; its
        standard deviation within :data:`MAX_VELOCITY_STD_MPS` in every direction),
        mode ``single`` where no two links agreed and the strongest node's own
        fix stands.
    """
    if not (np.isfinite(gate_m) and gate_m > 0):
        raise InputError(f"gate_m = {gate_m!r} m: allowed a finite distance > 0")
    if isinstance(min_nodes, bool) or not isinstance(min_nodes, int | np.integer) or min_nodes < 1:
        raise InputError(f"min_nodes = {min_nodes!r}: allowed an integer >= 1 (fusion.min_nodes)")
    passive = {n: tx for n, tx in (passive or {}).items() if n in places and tx in places and n in detections}
    ids = [n for n in detections if n in places and n not in passive]
    ids += [tx for tx in dict.fromkeys(passive.values()) if tx not in ids]
    ids += list(passive)
    positions = np.array([places[n].position_m for n in ids], dtype=np.float64).reshape(-1, 3)
    candidates: list[tuple[int, Detection, SingleFix]] = []
    mirrors: list[tuple[int, tuple[int, Detection, SingleFix]]] = []
    for k, node_id in enumerate(ids):
        if node_id in passive or node_id not in detections:
            continue
        yaw = np.deg2rad(float(places[node_id].yaw_deg))
        axis = np.array([np.sin(yaw), -np.cos(yaw)])        # broadside turned by -90°: locate_single's axis
        for det in detections[node_id]:
            if det.geometry != "monostatic" or det.angle_rad is None:
                continue
            # the association gates on the fixes' linearised covariances (see _ASSOCIATION_PROPAGATION); an
            # estimate that rests on one fix reports its error (single_fix's quadrature) below
            try:
                fix = single_fix(positions, k, axis, float(det.range_m), float(det.range_var_m2),
                                 -float(det.angle_rad), float(det.angle_var_rad2 or _UNKNOWN_ANGLE_VAR), height_m,
                                 propagation=_ASSOCIATION_PROPAGATION)
            except SensingError:
                continue
            if abs(float(det.angle_rad)) >= ENDFIRE_RAD:
                other_rad = -math.copysign(math.pi / 2, float(det.angle_rad))
                other = dataclasses.replace(det, angle_rad=other_rad)
                try:
                    mirror = single_fix(positions, k, axis, float(det.range_m), float(det.range_var_m2),
                                        -other_rad, float(det.angle_var_rad2 or _UNKNOWN_ANGLE_VAR), height_m,
                                        propagation=_ASSOCIATION_PROPAGATION)
                    mirrors.append((len(candidates), (k, other, mirror)))
                except SensingError:
                    pass
            candidates.append((k, det, fix))
    bistatic = {ids.index(n): passive_links(positions, ids.index(tx), ids.index(n), detections[n],
                                            max_clock_offset_s) for n, tx in passive.items()}
    clusters = join_bistatic(_clusters(candidates, mirrors, gate_m, gate_sigma), bistatic, positions, height_m,
                             gate_m, gate_sigma)
    out = []
    for cl in clusters:
        if len(cl.nodes) + len(cl.bistatic) < min_nodes:
            continue
        links = [LinkMeasurement(k, k, float(d.range_m), float(d.velocity_mps), float(d.range_var_m2),
                                 float(d.velocity_var_mps2), 10.0 ** (float(d.snr_db) / 10.0),
                                 **_cone_angle(d, places[ids[k]].yaw_deg))
                 for k, d in zip(cl.nodes, cl.detections, strict=True)]
        # the strongest node's own fix with its error (quadrature): the fit of the links wins over it where its
        # covariance is smaller (a linearised one claimed millimetres below a node and at endfire, where the fix
        # was metres off, and kept the fix against a good two-node fit), and it is the estimate where it stands
        lead = cl.detections[0]
        anchor = dataclasses.replace(cl.lead, cov_m2=single_fix(
            positions, cl.nodes[0], cl.lead.axis_xy, float(lead.range_m), float(lead.range_var_m2),
            -float(lead.angle_rad or 0.0), float(lead.angle_var_rad2 or _UNKNOWN_ANGLE_VAR), height_m).cov_m2)
        xy, cov, links = locate_robust(positions, links + list(cl.bistatic.values()), height_m, cl.lead.xy_m,
                                       gate_sigma, anchor=anchor)
        links = [m.placed(ids, positions, t_s) for m in links]
        members = sorted({m.rx for m in links})
        height_terms = None
        if len(links) < 2 and var_height_m2 > 0 and len(cl.nodes) == 1:
            # one node's fix: at a height off by its spread, the range's horizontal part and the cone's elevation
            # move it (a UAV 60 m up located at 1 m: some 35 m off, inside no covariance without this)
            fix = single_fix(positions, cl.nodes[0], cl.lead.axis_xy, float(lead.range_m), float(lead.range_var_m2),
                             -float(lead.angle_rad or 0.0), float(lead.angle_var_rad2 or _UNKNOWN_ANGLE_VAR),
                             height_m, var_height_m2=var_height_m2)
            cov, height_terms = fix.cov_m2, fix.cov_xy_height_m2
        velocity = {}
        try:
            v, cov_v, cross = velocity_with_cross(positions, links, [xy[0], xy[1], height_m], cov)
            if float(np.linalg.eigvalsh(cov_v)[-1]) <= MAX_VELOCITY_STD_MPS**2:
                velocity = {"velocity_xy_mps": v[:2], "cov_velocity_xy_mps2": cov_v,
                            "cov_position_velocity_xy_m2ps": cross}
        except SensingError:
            pass
        estimate = TargetEstimate.planar(
            xy, cov, height_m, t_s=t_s,
            nodes=[ids[k] for k in cl.nodes if k in members] + [ids[k] for k in members if ids[k] in passive],
            single_m={ids[k]: (float(f.xy_m[0]), float(f.xy_m[1])) for k, f in zip(cl.nodes, cl.fixes, strict=True)},
            links=tuple(links), mode=None if len(links) >= 2 else "single", **velocity)
        if height_terms is not None:
            full = np.array(estimate.cov_position_m2, dtype=np.float64)
            full[:2, 2] = full[2, :2] = height_terms
            full[2, 2] = var_height_m2
            estimate = dataclasses.replace(estimate, cov_position_m2=full)
        out.append(estimate)
    return out


def _clusters(candidates: list[tuple[int, Detection, SingleFix]],
              mirrors: list[tuple[int, tuple[int, Detection, SingleFix]]], gate_m: float,
              gate_sigma: float) -> list[FixCluster]:
    """:func:`~sdr_isac.fusion.associate.cluster_fixes` of the nodes' fixes; then, strongest first, each
    near-endfire detection's mirror (its angle at the other end of the array's axis, :data:`ENDFIRE_RAD`) takes
    its place where that associates strictly more fixes into targets of two or more nodes (else the
    association is the plain one)."""
    best = cluster_fixes(candidates, gate_m, gate_sigma)
    if not mirrors:
        return best
    score = _associated(best)
    current = list(candidates)
    for index, mirror in sorted(mirrors, key=lambda m: -float(m[1][1].snr_db)):
        trial = current.copy()
        trial[index] = mirror
        clusters = cluster_fixes(trial, gate_m, gate_sigma)
        if _associated(clusters) > score:
            current, best, score = trial, clusters, _associated(clusters)
    return best


def _associated(clusters: Sequence[FixCluster]) -> int:
    """Fixes that belong to a cluster of two or more nodes."""
    return sum(len(c.nodes) for c in clusters if len(c.nodes) >= 2)


def _cone_angle(det: Detection, yaw_deg: float) -> dict[str, Any]:
    """A monostatic detection's array angle as the cone angle of a :class:`LinkMeasurement` (empty: none measured).

    The node's horizontal array has its axis at ``(sin yaw, -cos yaw, 0)`` (broadside turned by -90°, the axis of
    :func:`~sdr_isac.fusion.locate.locate_single`); the detection's angle from broadside is ``-alpha``.
    """
    if det.angle_rad is None or not det.angle_var_rad2 or not np.isfinite(det.angle_rad):
        return {}
    yaw = np.deg2rad(float(yaw_deg))
    return {"cone_angle_rad": float(np.clip(-float(det.angle_rad), -np.pi / 2, np.pi / 2)),
            "var_cone_angle_rad2": float(det.angle_var_rad2),
            "array_axis": np.array([np.sin(yaw), -np.cos(yaw), 0.0])}


def fuse_multi_bs(places: Mapping[str, NodePlace], detections: Mapping[str, Sequence[Detection]], cfg: FusionConfig,
                  passive: Mapping[str, str], t_s: float) -> list[TargetEstimate]:
    """Mode ``multi_bs`` (registered): :func:`fuse_nodes` with the ``[fusion]`` height and gate."""
    return fuse_nodes(places, detections, cfg.target_height_m, cfg.gate_m, passive=passive, t_s=t_s,
                      min_nodes=cfg.min_nodes, var_height_m2=cfg.target_height_std_m**2)


register_mode("multi_bs", fuse_multi_bs)
