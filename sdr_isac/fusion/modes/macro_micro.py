"""Macro-micro BS cooperation (article §IV-B, Fig. 2(d)).

Micro BSs work on a high band (e.g. 24 GHz, 120 kHz) with small coverage;
a macro BS on a low band (e.g. 5.9 GHz, 30 kHz) covers them all.  While the
target is inside the coverage of two or more micro BSs, those micro BSs
sense it together (multi-BS active sensing, the accurate scheme); when it
leaves their shared coverage, the macro BS joins the micro BS(s) that still
see it (:func:`select_mode`, :func:`fuse_sites`).

**Fusing channel information of different numerologies.**  Each node's CIM
is ``H_b[m, k] = a_b exp(-j 2 pi k df_b tau_b) exp(+j 2 pi nu_b f_b t_m)``
with its own spacing ``df_b``, carrier ``f_b`` and symbol times.  As in the
multi-band fusion (:mod:`sdr_isac.fusion.multiband`), every band is brought
onto common physical axes — delay in s and normalised Doppler ``nu = f_D /
f_c`` — so a low-band and a high-band matrix describe the same target
parameters; because the nodes stand at different places, the common
parameters are not one ``(tau, nu)`` but the target state ``(x, y, v_x,
v_y)``, which predicts ``tau_b = 2 ||p_b - b|| / c`` and ``nu_b = -2 u_b^T v
/ c`` for every node.  Two stages:

1. per node, the strongest path by CLEAN with off-grid ML
   (:func:`sdr_isac.fusion.links.estimate_paths`) gives range, radial
   velocity and their CRB variances in that node's numerology; the fusion
   centre solves the joint WLS (:func:`sdr_isac.fusion.hybrid.fuse`),
   adding the micro BS's array angle when it has one;
2. symbol level (:func:`joint_refine`): maximise the sum of the nodes'
   normalised periodograms ``sum_b |d_b(nu_b)^T H_b a_b(tau_b)|**2 / (n_b
   sigma_b**2)``, each with its own band's steering vectors (the ML for
   independent amplitudes), plus the angles' Gaussian log-likelihood, over
   ``(x, y, v_x, v_y)`` from the WLS solution.

**Low synchronisation accuracy.**  Every link is monostatic: a node
transmits and receives on its own clock, so the macro-micro clock offset and
carrier offset do not enter any delay or Doppler, and the independent
complex amplitude per node needs no phase coherence across nodes.  What is
left is that the nodes' frames start at different times ``t_b`` (offsets of
milliseconds without tight synchronisation): the target moves by ``v t_b``
in between.  The fusion models each node's measurement at the target's
position at that node's frame time (``p_b = p + v t_b``, position and
velocity estimated jointly), so the frame offset is removed with the
velocity; an error ``e_b`` in the reported frame time leaves a bias of at
most ``|v| |e_b|`` (30 m/s and 10 µs: 0.3 mm).

**Live, on the fusion host** (:func:`fuse_macro_micro`): the host sees detections,
not a tracker's prediction, so the micro BSs' shared coverage is where two
or more of them *detect* the target (the operational form of the
link-budget radii of :func:`select_mode`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize as sp_opt
from numpy.typing import ArrayLike, NDArray

from sdr_isac.config import FusionConfig
from sdr_isac.errors import InputError, SensingError
from sdr_isac.fusion import hybrid
from sdr_isac.fusion.links import estimate_paths, monostatic_measurement
from sdr_isac.fusion.modes.base import NodePlace, register_mode
from sdr_isac.fusion.modes.multi_bs import fuse_nodes, periodogram_sum, periodogram_terms
from sdr_isac.fusion.multiband import Band
from sdr_isac.fusion.records import LinkMeasurement, TargetEstimate
from sdr_isac.sensing import Detection
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["NodeCim", "ModeDecision", "covering", "select_mode", "node_links", "joint_refine", "fuse_sites",
           "fuse_macro_micro", "fuse_macro_micro_set"]


@dataclass(frozen=True, eq=False)
class NodeCim:
    """One BS's monostatic CIM.

    Attributes
    ----------
    position_m : ndarray, shape (3,)
        The BS's position, m.
    band : Band
        Its numerology and pilots.
    cim : ndarray, shape (M, K), complex
        The measured CIM (the band's shape).
    frame_time_s : float
        Start of its frame on the fusion's time base, s, as the BS reports it.
    """

    position_m: NDArray[np.float64]
    band: Band
    cim: NDArray[np.complex128]
    frame_time_s: float = 0.0

    def __post_init__(self) -> None:
        p = np.asarray(self.position_m, dtype=np.float64)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            raise InputError(f"NodeCim.position_m = {self.position_m!r}: allowed 3 finite coordinates in m")
        if np.shape(self.cim) != self.band.pilots.shape:
            raise InputError(f"NodeCim.cim has shape {np.shape(self.cim)}: allowed {self.band.pilots.shape}, the "
                             f"(symbols, subcarriers) of band {self.band.name!r}")
        if not np.isfinite(self.frame_time_s):
            raise InputError(f"NodeCim.frame_time_s = {self.frame_time_s!r} s: allowed a finite time")


@dataclass(frozen=True)
class ModeDecision:
    """``mode`` is ``"micro"`` (two or more micro BSs share the target) or ``"macro_micro"``; ``micros`` the
    indices of the micro BSs whose coverage holds the target."""

    mode: str
    micros: tuple[int, ...]


def covering(target_m: ArrayLike, sites_m: ArrayLike, radii_m: ArrayLike) -> tuple[int, ...]:
    """Indices of the sites whose coverage radius (m, 3-D distance) holds the target."""
    p = np.asarray(target_m, dtype=np.float64)
    b = np.asarray(sites_m, dtype=np.float64).reshape(-1, 3)
    r = np.broadcast_to(np.asarray(radii_m, dtype=np.float64), (b.shape[0],))
    if p.shape != (3,) or not (np.all(np.isfinite(p)) and np.all(np.isfinite(b))):
        raise InputError(f"target_m = {target_m!r}, sites_m shape {b.shape}: allowed a 3-D point and (B, 3) sites, m")
    if not np.all(r > 0):
        raise InputError(f"radii_m = {r.tolist()} m: allowed coverage radii > 0 (from coverage.sensing_radius_m)")
    return tuple(int(i) for i in np.flatnonzero(np.linalg.norm(b - p[None, :], axis=1) <= r))


def select_mode(target_m: ArrayLike, micro_sites_m: ArrayLike, micro_radii_m: ArrayLike) -> ModeDecision:
    """Micro-only multi-BS sensing inside the shared coverage of >= 2 micro BSs, macro-micro otherwise.

    ``target_m`` is where the target is expected (the tracker's prediction), m.
    """
    inside = covering(target_m, micro_sites_m, micro_radii_m)
    return ModeDecision("micro" if len(inside) >= 2 else "macro_micro", inside)


def node_links(nodes: Sequence[NodeCim], c: float = SPEED_OF_LIGHT_MPS) -> list[LinkMeasurement]:
    """Each node's monostatic range and radial velocity with CRB variances (node i is index i)."""
    return [monostatic_measurement(i, estimate_paths(n.band, n.cim)[0], c) for i, n in enumerate(nodes)]


def joint_refine(nodes: Sequence[NodeCim], height_m: float, start: hybrid.HybridEstimate,
                 angles: Sequence[hybrid.AngleMeasurement] = (), model_frame_times: bool = True,
                 c: float = SPEED_OF_LIGHT_MPS) -> NDArray[np.float64]:
    """Symbol-level ML of ``(x, y, v_x, v_y)`` across the nodes' CIMs, each in its own numerology.

    Maximises ``sum_b |d_b^T Y_b a_b|**2 / (n_b sigma_b**2) - sum_a (alpha_a - alpha_a(s))**2 / (2 var_a)``
    (the concentrated log-likelihood with independent amplitudes, plus the
    angles') by Nelder–Mead in units of the WLS standard deviations, from
    ``start``.  Returns the state (m, m, m/s, m/s).
    """
    terms = periodogram_terms([n.band for n in nodes], [n.cim for n in nodes])
    b = np.array([n.position_m for n in nodes], dtype=np.float64)
    t = np.array([n.frame_time_s if model_frame_times else 0.0 for n in nodes])
    x0 = np.concatenate([start.xy_m, start.v_xy_mps])
    step = np.sqrt(np.maximum(np.diag(start.cov), 1e-12))

    def loglik(q: NDArray[np.float64]) -> float:
        s = x0 + q * step
        v = np.array([s[2], s[3], 0.0])
        p = np.array([s[0], s[1], height_m])
        total = periodogram_sum(terms, [p + v * t[i] - b[i] for i in range(len(nodes))], s[2:4], c)
        for a, alpha in zip(angles, hybrid.predict(b, s, height_m, [], angles, t), strict=True):
            total -= (a.angle_rad - float(alpha)) ** 2 / (2.0 * a.var_rad2)
        return -total

    simplex = np.vstack([np.zeros(4), np.eye(4)])
    res = sp_opt.minimize(loglik, np.zeros(4), method="Nelder-Mead",
                          options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-6, "maxiter": 600})
    q = res.x if np.all(np.abs(res.x) <= 6.0) else np.zeros(4)      # stay on the WLS solution's lobe
    return np.asarray(x0 + q * step, dtype=np.float64)


def fuse_sites(macro: NodeCim, micros: Sequence[NodeCim], micro_radii_m: ArrayLike, prior_m: ArrayLike,
               height_m: float, start: ArrayLike, micro_angles: Sequence[hybrid.AngleMeasurement] = (),
               symbol_level: bool = True, model_frame_times: bool = True,
               c: float = SPEED_OF_LIGHT_MPS) -> tuple[ModeDecision, hybrid.HybridEstimate]:
    """Choose the mode from the prior position and fuse the chosen nodes.

    Parameters
    ----------
    macro : NodeCim
        The macro BS (low band).
    micros : sequence of NodeCim
        The micro BSs (high band); ``micro_radii_m`` their sensing radii, m.
    prior_m : array_like, shape (3,)
        Expected target position (m) for the mode switch.
    height_m : float
        Known target height, m.
    start : array_like, shape (4,)
        Starting state (m, m/s), e.g. a micro BS's range-and-angle fix.
    micro_angles : sequence of AngleMeasurement
        Cone angles of micro BSs' arrays, ``node`` indexing ``micros``.
    symbol_level : bool
        Refine the WLS solution by :func:`joint_refine`.
    model_frame_times : bool
        Model each node's frame time (False: treat the frames as simultaneous).

    Returns
    -------
    (ModeDecision, HybridEstimate)
        In ``"micro"`` mode the covering micro BSs alone; in ``"macro_micro"``
        the macro BS and every covering micro BS.
    """
    sites = np.array([m.position_m for m in micros], dtype=np.float64).reshape(-1, 3)
    decision = select_mode(prior_m, sites, micro_radii_m)
    chosen = [micros[i] for i in decision.micros]
    index = {m: j for j, m in enumerate(decision.micros)}
    if decision.mode == "macro_micro":
        chosen = [macro, *chosen]
        index = {m: j + 1 for m, j in index.items()}
    angles = [hybrid.AngleMeasurement(index[a.node], a.axis_xy, a.angle_rad, a.var_rad2)
              for a in micro_angles if a.node in index]
    if len(chosen) < 2:
        raise SensingError(f"mode {decision.mode!r} has {len(chosen)} node(s): the target is outside every micro "
                           "BS's coverage; macro-micro needs at least one micro BS that sees it")
    nodes_m = np.array([n.position_m for n in chosen])
    times = np.array([n.frame_time_s for n in chosen]) if model_frame_times else None
    est = hybrid.fuse(nodes_m, node_links(chosen, c), height_m, start, angles, times)
    if symbol_level:
        s = joint_refine(chosen, height_m, est, angles, model_frame_times, c)
        est = hybrid.HybridEstimate(s[:2], s[2:], est.cov)
    return decision, est


def fuse_macro_micro(places: Mapping[str, NodePlace], detections: Mapping[str, Sequence[Detection]],
                     macro_ids: Sequence[str], height_m: float, gate_m: float = 5.0,
                     passive: Mapping[str, str] | None = None, t_s: float = 0.0) -> list[TargetEstimate]:
    """Macro-micro cooperation on one time-aligned set of detections (what the fusion host runs).

    Targets that two or more micro BSs (every monostatic node not in
    ``macro_ids``) detect lie in the micro BSs' shared coverage: they are
    fused from the micro BSs alone, mode ``"micro"`` (the high band's
    accuracy; the macro's ranges, with variances larger by the square of
    the bandwidth ratio, would add little, and its resources stay free).
    Every other target that the macro BS and at least one micro BS detect
    is fused from all of them, mode ``"macro_micro"``.  Each node's
    detections carry their own CRB variances in their own numerology, so
    the bands need no common grid at the estimate level.

    Parameters and estimates as in :func:`sdr_isac.fusion.modes.multi_bs.fuse_nodes`,
    plus ``macro_ids`` (ids of the macro BSs); each estimate has its mode.
    A macro-micro estimate within ``gate_m`` of a micro-mode one is the
    same target and is left out.
    """
    macro = set(macro_ids)
    passive = dict(passive or {})
    micro_dets = {n: d for n, d in detections.items() if n not in macro}
    out = [dataclasses.replace(est, mode="micro")
           for est in fuse_nodes(places, micro_dets, height_m, gate_m, passive, t_s=t_s)
           if sum(1 for n in est.nodes if n not in passive) >= 2]
    if not macro:
        return out
    for est in fuse_nodes(places, detections, height_m, gate_m, passive, t_s=t_s):
        if not macro & set(est.nodes):
            continue
        if any(np.linalg.norm(est.position_m[:2] - o.position_m[:2]) <= gate_m for o in out):
            continue
        out.append(dataclasses.replace(est, mode="macro_micro"))
    return out


def fuse_macro_micro_set(places: Mapping[str, NodePlace], detections: Mapping[str, Sequence[Detection]],
                         cfg: FusionConfig, passive: Mapping[str, str], t_s: float) -> list[TargetEstimate]:
    """Mode ``macro_micro`` (registered): :func:`fuse_macro_micro` with the ``[fusion]`` macro nodes, height, gate."""
    return fuse_macro_micro(places, detections, cfg.macro_nodes, cfg.target_height_m, cfg.gate_m, passive=passive,
                            t_s=t_s)


register_mode("macro_micro", fuse_macro_micro_set)
