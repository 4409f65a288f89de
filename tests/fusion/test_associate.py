"""Association across nodes: the nodes' own fixes by a chi-square gate, range sums by range-sum gating."""

from __future__ import annotations

import numpy as np

from sdr_isac.fusion.associate import FixCluster, cluster_fixes, join_bistatic
from sdr_isac.fusion.locate import SingleFix
from sdr_isac.fusion.records import LinkMeasurement
from sdr_isac.sensing import Detection
from tests.fusion.modes.test_multi_bs import _record

NODES = np.array([[0.0, 0.0, 1.0], [50.0, 0.0, 1.0], [0.0, 50.0, 1.0]])


def _fix(node: int, xy: tuple[float, float], var_m2: float = 0.01) -> SingleFix:
    return SingleFix(node, np.array(xy), var_m2 * np.eye(2), 0.0, 1e-4, NODES[node], np.array([1.0, 0.0]), 1.0)


def _candidate(node: int, xy: tuple[float, float], snr_db: float) -> tuple[int, Detection, SingleFix]:
    r = float(np.linalg.norm(np.array([*xy, 1.0]) - NODES[node]))
    return node, _record(r, 0.0, 0.0, 1e-4, snr_db, "monostatic"), _fix(node, xy)


def test_cluster_fixes_groups_by_the_gate_strongest_first_one_fix_per_node() -> None:
    candidates = [_candidate(0, (10.0, 10.0), 20.0), _candidate(1, (10.3, 9.9), 15.0),
                  _candidate(1, (40.0, 0.0), 25.0), _candidate(0, (40.2, 0.1), 10.0),
                  _candidate(0, (10.1, 10.0), 5.0)]              # node 0 again: not in the cluster it already has
    clusters = cluster_fixes(candidates, gate_m=5.0, gate_sigma=5.0)
    assert [c.nodes for c in clusters] == [(1, 0), (0, 1), (0,)]
    assert [c.detections[0].snr_db for c in clusters] == [25.0, 20.0, 5.0]
    assert clusters[0].lead is clusters[0].fixes[0] and clusters[0].lead.xy_m[0] == 40.0
    assert all(c.bistatic == {} for c in clusters)
    # outside the gate (chi-square of the 2-D difference, slack gate_m): separate targets
    apart = cluster_fixes([_candidate(0, (10.0, 10.0), 20.0), _candidate(1, (17.0, 10.0), 15.0)], 5.0, 5.0)
    assert [c.nodes for c in apart] == [(0,), (1,)]
    assert cluster_fixes([], 5.0, 5.0) == []


def test_join_bistatic_gives_each_range_sum_to_one_cluster() -> None:
    targets = [(20.0, 15.0), (35.0, -10.0)]
    clusters = [FixCluster((0,), (_candidate(0, t, 20.0)[1],), (_fix(0, t),)) for t in targets]
    clusters.append(FixCluster((0,), (_candidate(0, targets[0], 10.0)[1],), (_fix(0, targets[0]),)))

    def range_sum(xy: tuple[float, float], snr: float) -> LinkMeasurement:
        p = np.array([*xy, 1.0])
        s = float(np.linalg.norm(p - NODES[1]) + np.linalg.norm(p - NODES[2]))
        return LinkMeasurement(1, 2, s + 0.3, 0.0, 0.01, 1.0, snr)

    sums = [range_sum(targets[1], 50.0), range_sum(targets[0], 40.0), range_sum((5.0, 45.0), 90.0)]
    joined = join_bistatic(clusters, {2: sums}, NODES, 1.0, gate_m=1.0, gate_sigma=5.0)
    assert [c.nodes for c in joined] == [c.nodes for c in clusters]
    assert joined[0].bistatic == {2: sums[1]} and joined[1].bistatic == {2: sums[0]}
    assert joined[2].bistatic == {}                         # the same place, but its range sum is taken
    assert all(c.bistatic == {} for c in join_bistatic(clusters, {}, NODES, 1.0, 1.0, 5.0))
