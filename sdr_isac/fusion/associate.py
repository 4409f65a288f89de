"""Association across nodes: which detections of several nodes belong to one target.

- :func:`cluster_fixes` — the nodes' own position fixes (range and array
  cone angle, :func:`~sdr_isac.fusion.locate.single_fix`), strongest first,
  grouped by a chi-square gate on their CRB covariances: at most one fix per
  node in a cluster.
- :func:`join_bistatic` — the range sums of receive-only nodes
  (:func:`~sdr_isac.fusion.links.passive_links`) joined to those clusters by
  range-sum gating: at most one per node and cluster, each to one cluster.

Geometry: positions in m in a common frame; targets in the horizontal plane
at a known height (as in :mod:`~sdr_isac.fusion.locate`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import SensingError
from sdr_isac.fusion.locate import SingleFix, _check_nodes, _pairs, _ranges_and_rows, locate
from sdr_isac.fusion.records import LinkMeasurement
from sdr_isac.sensing import Detection

__all__ = ["FixCluster", "cluster_fixes", "join_bistatic"]


@dataclass(frozen=True, eq=False)
class FixCluster:
    """One target's associated detections: the nodes' own fixes, strongest first, and the range sums that joined.

    ``nodes[i]``, ``detections[i]`` and ``fixes[i]`` belong together (a node's row in the position array, its
    monostatic detection and its own fix); ``fixes[0]`` is the strongest, the cluster's lead.  ``bistatic``
    maps a receive-only node's row to the range sum that joined (:func:`join_bistatic`; empty before).
    """

    nodes: tuple[int, ...]
    detections: tuple[Detection, ...]
    fixes: tuple[SingleFix, ...]
    bistatic: Mapping[int, LinkMeasurement] = field(default_factory=dict)

    @property
    def lead(self) -> SingleFix:
        """The strongest node's own fix."""
        return self.fixes[0]


def cluster_fixes(candidates: Sequence[tuple[int, Detection, SingleFix]], gate_m: float,
                  gate_sigma: float) -> list[FixCluster]:
    """Group the nodes' own fixes into targets by a chi-square gate, strongest first.

    The candidates are taken in order of decreasing ``snr_db`` of their
    detections (ties in the given order).  A fix joins the cluster whose lead
    fix is nearest in the Mahalanobis distance
    ``d2 = diff^T (C_fix + C_lead + (gate_m / gate_sigma)**2 I)^-1 diff``
    among those with ``d2 <= gate_sigma**2`` and no fix of that node yet;
    the added term covers what the CRB does not model (the target's extent,
    its height).  A fix that joins none starts a new cluster.

    Parameters
    ----------
    candidates : sequence of (int, Detection, SingleFix)
        A node's row in the position array, its monostatic detection, and
        the node's own fix from it (``xy_m`` shape (2,) m, ``cov_m2`` shape
        (2, 2) m²).
    gate_m : float
        Association slack, m (> 0).
    gate_sigma : float
        Gate in standard deviations (> 0): the chi-square gate is ``gate_sigma**2`` on the 2-D position
        difference, i.e. with two degrees of freedom: a true pair falls outside with probability
        ``exp(-gate_sigma**2 / 2)`` (3.7e-6 at 5), not the one-dimensional 5.7e-7.

    Returns
    -------
    list of FixCluster
        In order of their leads' strength, each with an empty ``bistatic``.
    """
    gate_chi2 = gate_sigma**2                            # of the 2-D position difference
    slack = (gate_m**2 / gate_chi2) * np.eye(2)
    groups: list[list[tuple[int, Detection, SingleFix]]] = []
    for k, det, fix in sorted(candidates, key=lambda c: -float(c[1].snr_db)):
        best: tuple[float, list[tuple[int, Detection, SingleFix]]] | None = None
        for group in groups:
            if any(k == m[0] for m in group):
                continue
            lead = group[0][2]
            diff = fix.xy_m - lead.xy_m
            d2 = float(diff @ np.linalg.solve(fix.cov_m2 + lead.cov_m2 + slack, diff))
            if d2 <= gate_chi2 and (best is None or d2 < best[0]):
                best = (d2, group)
        if best is None:
            groups.append([(k, det, fix)])
        else:
            best[1].append((k, det, fix))
    return [FixCluster(tuple(m[0] for m in g), tuple(m[1] for m in g), tuple(m[2] for m in g)) for g in groups]


def join_bistatic(clusters: Sequence[FixCluster], bistatic: Mapping[int, Sequence[LinkMeasurement]],
                  nodes_m: ArrayLike, height_m: float, gate_m: float, gate_sigma: float) -> list[FixCluster]:
    """Give each cluster (strongest first) at most one range sum per receive-only node, by gating.

    A range sum ``S`` is consistent with a cluster when
    ``|S - (||p - b_tx|| + ||p - b_rx||)| <= gate_sigma * sqrt(sigma_S**2 + g^T P g) + gate_m``
    at the cluster's position ``p`` (the monostatic fix of its nodes' ranges,
    :func:`~sdr_isac.fusion.locate.locate`, when it has two or more nodes and
    they determine it, else the mean of its nodes' own range-and-angle fixes),
    with ``P`` that position's covariance and ``g`` the gradient of the range
    sum in (x, y): a fix off across the line of sight by ``r sigma_angle``
    moves the predicted sum by more than ``gate_m``, and the true range sum was
    refused.  Of the consistent ones the strongest (``snr_re``) joins, and a
    range sum joins one cluster only.

    Parameters
    ----------
    clusters : sequence of FixCluster
        From :func:`cluster_fixes`, strongest first.
    bistatic : mapping
        Receive-only node's row -> its range sums
        (:func:`~sdr_isac.fusion.links.passive_links`).
    nodes_m : array_like, shape (B, 3)
        Node positions, m.
    height_m : float
        Height of the targets, m.
    gate_m : float
        Slack of the gate, m (> 0).
    gate_sigma : float
        Gate in standard deviations of the range sum (> 0).

    Returns
    -------
    list of FixCluster
        The clusters in the same order, each with ``bistatic`` the range
        sums that joined it (receive-only node's row -> link).
    """
    positions = _check_nodes(nodes_m)
    used: set[tuple[int, int]] = set()
    out = []
    for cl in clusters:
        joined: dict[int, LinkMeasurement] = {}
        if bistatic:
            p, cov_xy = _position(cl, positions, height_m)
            for rx, links in bistatic.items():
                gated = []
                for i, m in enumerate(links):
                    if (rx, i) in used:
                        continue
                    model, rows = _ranges_and_rows(positions, p, *_pairs([m]))
                    g = rows[0, :2]                      # d S / d (x, y): the position's error moves S too
                    var = float(m.var_range_m2) + float(g @ cov_xy @ g)
                    if abs(m.range_m - float(model[0])) <= gate_sigma * np.sqrt(var) + gate_m:
                        gated.append((i, m))
                if gated:
                    i, m = max(gated, key=lambda item: item[1].snr_re)
                    used.add((rx, i))
                    joined[rx] = m
        out.append(dataclasses.replace(cl, bistatic=joined))
    return out


def _position(cl: FixCluster, positions: NDArray[np.float64], height_m: float
              ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Where a cluster's range sums are gated, (3,) m, and the covariance of its (x, y), m² (see
    :func:`join_bistatic`): the nodes' ranges located together, else the mean of the nodes' own fixes."""
    xy = np.mean([f.xy_m for f in cl.fixes], axis=0)
    cov = np.sum([f.cov_m2 for f in cl.fixes], axis=0) / len(cl.fixes) ** 2
    if len(cl.nodes) >= 2:
        mono = [LinkMeasurement(k, k, float(d.range_m), 0.0, float(d.range_var_m2), 1.0, 1.0)
                for k, d in zip(cl.nodes, cl.detections, strict=True)]
        try:
            xy, cov = locate(positions, mono, height_m, xy)
        except SensingError:
            # the ranges alone do not fix the position (a target on the line through the nodes): the nodes'
            # own range + angle fixes do; without this the whole set of targets was lost
            pass
    return np.array([xy[0], xy[1], height_m]), np.asarray(cov, dtype=np.float64)
