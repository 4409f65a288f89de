"""Multi-target distances of tracks to the ground truth: OSPA and GOSPA from Stone Soup's metric generators.

OSPA (Schuhmacher et al. 2008) and GOSPA (Rahmathullah et al. 2017) with
cut-off ``c_m`` and order ``p`` on the positions (REFERENCE.md §6), at every
scan time of the tracks or the truth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from stonesoup.measures import Euclidean
from stonesoup.metricgenerator.ospametric import GOSPAMetric, OSPAMetric
from stonesoup.types.array import StateVector
from stonesoup.types.groundtruth import GroundTruthState
from stonesoup.types.state import State

from sdr_isac.errors import InputError
from sdr_isac.fusion.records import Track
from sdr_isac.fusion.tracking.tracker import EPOCH

__all__ = ["position_distances"]


def _states(t_s: NDArray[np.float64], positions_m: NDArray[np.float64], truth: bool) -> list[State]:
    kind = GroundTruthState if truth else State
    return [kind(StateVector(p), timestamp=EPOCH + timedelta(seconds=float(t))) for t, p in zip(t_s, positions_m)]


def position_distances(tracks: Sequence[Track], truths: Mapping[str, tuple[ArrayLike, ArrayLike]], c_m: float,
                       p: float = 1.0) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """OSPA and GOSPA between the tracks' positions and the truth at each time.

    Parameters
    ----------
    tracks : sequence of Track
        Their states (x, y, z first) at their times.
    truths : mapping of str to (t_s, positions_m)
        Each true target's times, shape (T,), s, and positions, shape (T, 3), m.
    c_m : float
        Cut-off distance, m (> 0).
    p : float
        Order, >= 1.

    Returns
    -------
    t_s, ospa_m, gospa_m : ndarray, shape (K,), float64
        Times (every time of a track state or a truth state, increasing), and
        the OSPA and GOSPA distances there (GOSPA with alpha = 2).
    """
    if not (np.isfinite(c_m) and c_m > 0):
        raise InputError(f"c_m = {c_m!r} m: allowed a finite cut-off > 0")
    if not (np.isfinite(p) and p >= 1):
        raise InputError(f"p = {p!r}: allowed a finite order >= 1")
    measured: list[State] = []
    measured_ids: list[int] = []
    for i, track in enumerate(tracks):
        measured += _states(track.t_s, track.states[:, :3], truth=False)
        measured_ids += [i] * track.num_states
    truth_states: list[State] = []
    truth_ids: list[int] = []
    for i, (t_s, pos) in enumerate(truths.values()):
        t = np.asarray(t_s, dtype=np.float64).reshape(-1)
        xyz = np.asarray(pos, dtype=np.float64).reshape(t.size, 3)
        truth_states += _states(t, xyz, truth=True)
        truth_ids += [i] * t.size
    if not measured and not truth_states:
        empty = np.zeros(0)
        return empty, empty.copy(), empty.copy()                # no time at all: no distance
    measure = Euclidean(mapping=(0, 1, 2))
    ospa = OSPAMetric(c=c_m, p=p, measure=measure).compute_over_time(measured, measured_ids, truth_states,
                                                                    truth_ids)
    gospa = GOSPAMetric(c=c_m, p=p, measure=measure).compute_over_time(measured, measured_ids, truth_states,
                                                                      truth_ids)
    per_ospa, per_gospa = _per_time(ospa), _per_time(gospa)
    times = np.array([(m.timestamp - EPOCH).total_seconds() for m in per_ospa])
    ospa_m = np.array([float(m.value) for m in per_ospa])
    by_time = {m.timestamp: m.value for m in per_gospa}
    gospa_m = np.array([float(by_time[m.timestamp]["distance"]) for m in per_ospa])
    return times, ospa_m, gospa_m


def _per_time(metric: Any) -> list[Any]:
    """The per-time results of Stone Soup's ``compute_over_time``: a list of them, except over one time, where it
    gives that time's result itself."""
    return list(metric.value) if isinstance(metric.value, list) else [metric]
