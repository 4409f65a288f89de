"""Track-to-track fusion across MECS hosts (the core host's job, article §V-1; issue 15, item 2).

Each MECS host tracks the targets of its own base stations and reports its tracks' latest states and
covariances.  Two MECS hosts that see one target report two tracks whose errors are correlated in an unknown
way (common process noise, shared base stations at the edge of their areas, the same prior), so fusing them as
if independent is overconfident.  This module

- predicts every reported state to one time with the nearly-constant-velocity (white-noise acceleration)
  model (:func:`predict`);
- associates the tracks of each MECS with the global tracks by gating the Mahalanobis distance of the
  position difference with a chi-square gate (:func:`position_distance2`, :func:`gate_threshold`) and
  solving the assignment of least negative log-likelihood (``d² + ln det S``) with
  :func:`scipy.optimize.linear_sum_assignment` (:func:`assign`);
- fuses the members of a global track by covariance intersection (:func:`covariance_intersection`; Julier
  and Uhlmann 1997), whose covariance is consistent for any cross-correlation: ``P^-1 = w P1^-1 + (1 - w)
  P2^-1``, ``x = P (w P1^-1 x1 + (1 - w) P2^-1 x2)``, ``w`` in [0, 1] minimising the trace or the determinant
  of ``P`` (:func:`scipy.optimize.minimize_scalar`).  :func:`naive_fusion` (the information sum, independence
  assumed) is kept for comparison: it is inconsistent for correlated errors;
- keeps global track ids stable (:class:`TrackToTrackFuser`): a global track keeps its id while any MECS still
  reports a member, a local id that one MECS hands over to another keeps the global id, and a global track
  left without members coasts for ``coast_s``: a new local track (of any MECS) that passes the gate against
  its predicted state takes its id (a target crossing a gap between two MECS hosts' areas, or a tracker that
  lost and restarted it, stays one global track).

The centralised mode fuses the MECS hosts' target estimates instead of their tracks
(:class:`CentralisedFuser`): one tracker (:class:`sdr_isac.fusion.tracking.Tracker`, Stone Soup, imported
only when this mode is used) takes the estimate sets of every MECS host in time order.  Where the MECS hosts'
estimates are independent, this is the optimal (Kalman) fusion of all the measurements, which track-to-track
fusion by covariance intersection can only approach.

States are ``(x, y, z, v_x, v_y, v_z)`` in m and m/s, covariances ``(6, 6)`` in the matching units.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment, minimize_scalar
from scipy.stats import chi2

from sdr_isac.config.tracking import TrackingConfig
from sdr_isac.errors import InputError
from sdr_isac.fusion.records import Handover, TargetEstimate, Track

__all__ = ["CI_CRITERIA", "CiResult", "predict", "covariance_intersection", "naive_fusion", "position_distance2",
           "gate_threshold", "assign", "TrackToTrackFuser", "CentralisedFuser"]

#: What covariance intersection minimises: the trace or the determinant of the fused covariance.
CI_CRITERIA = ("trace", "determinant")
_STATE = 6
_POS = slice(0, 3)
#: longest prediction, s (30 years; the process noise grows as dt**3, which overflows near 1e102 s)
_MAX_PREDICT_S = 1e9


def _square(name: str, value: ArrayLike, size: int) -> NDArray[np.float64]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (size, size) or not np.all(np.isfinite(arr)):
        raise InputError(f"{name} has shape {arr.shape}: allowed finite numbers of shape ({size}, {size})")
    return arr


def _vector(name: str, value: ArrayLike, size: int) -> NDArray[np.float64]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (size,) or not np.all(np.isfinite(arr)):
        raise InputError(f"{name} has shape {arr.shape}: allowed finite numbers of shape ({size},)")
    return arr


def _inverse(name: str, cov: NDArray[np.float64]) -> NDArray[np.float64]:
    """The inverse of a symmetric positive-definite matrix (by Cholesky), or InputError naming it."""
    try:
        low = np.linalg.cholesky((cov + cov.T) / 2)
    except np.linalg.LinAlgError as err:
        raise InputError(f"{name} is not positive definite: allowed a symmetric positive-definite covariance "
                         "(track fusion inverts it); give every state component a positive variance") from err
    inv_low = np.linalg.inv(low)
    out = inv_low.T @ inv_low
    return (out + out.T) / 2


def predict(state: ArrayLike, cov: ArrayLike, dt_s: float, accel_psd_m2ps3: float
            ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Predict a state ``dt_s`` ahead with the nearly-constant-velocity model (white-noise acceleration).

    ``x' = F x``, ``P' = F P F^T + Q`` with ``F = [[I, dt I], [0, I]]`` and
    ``Q = q [[dt^3/3 I, dt^2/2 I], [dt^2/2 I, dt I]]`` (Bar-Shalom, Li, Kirubarajan 2001, §6.2.2).

    Parameters
    ----------
    state : array_like, shape (6,)
        x, y, z (m), v_x, v_y, v_z (m/s).
    cov : array_like, shape (6, 6)
        Its covariance.
    dt_s : float
        How far ahead, s, >= 0.
    accel_psd_m2ps3 : float
        Power spectral density ``q`` of the white acceleration noise, m²/s³, >= 0.

    Returns
    -------
    state : ndarray, shape (6,), float64
    cov : ndarray, shape (6, 6), float64
    """
    x = _vector("state", state, _STATE)
    p = _square("cov", cov, _STATE)
    if not (math.isfinite(dt_s) and 0 <= dt_s <= _MAX_PREDICT_S):
        raise InputError(f"dt_s = {dt_s!r} s: allowed 0 ... {_MAX_PREDICT_S:g} s (its cube must stay finite); "
                         "predict forward only, over times the tracks can share")
    if not (math.isfinite(accel_psd_m2ps3) and accel_psd_m2ps3 >= 0):
        raise InputError(f"accel_psd_m2ps3 = {accel_psd_m2ps3!r} m²/s³: allowed a finite number >= 0")
    eye = np.eye(3)
    f = np.block([[eye, dt_s * eye], [np.zeros((3, 3)), eye]])
    q = accel_psd_m2ps3 * np.block([[dt_s**3 / 3 * eye, dt_s**2 / 2 * eye], [dt_s**2 / 2 * eye, dt_s * eye]])
    out = f @ p @ f.T + q
    return f @ x, (out + out.T) / 2


@dataclass(frozen=True)
class CiResult:
    """The result of :func:`covariance_intersection`.

    Attributes
    ----------
    mean : ndarray, shape (n,), float64
    cov : ndarray, shape (n, n), float64
        Consistent for any cross-correlation of the inputs' errors.
    omegas : tuple of float
        The weight ``w`` of each pairwise step (the running fusion's weight against the next input).
    """

    mean: NDArray[np.float64]
    cov: NDArray[np.float64]
    omegas: tuple[float, ...] = field(default=())


def _ci_pair(x1: NDArray[np.float64], p1: NDArray[np.float64], x2: NDArray[np.float64], p2: NDArray[np.float64],
             criterion: str, names: tuple[str, str] = ("covs[0]", "covs[1]")
             ) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    i1, i2 = _inverse(names[0], p1), _inverse(names[1], p2)

    def fused(w: float) -> NDArray[np.float64]:
        return _inverse("the fused information", w * i1 + (1 - w) * i2)

    def cost(w: float) -> float:
        p = fused(w)
        if criterion == "trace":
            return float(np.trace(p))
        return float(np.linalg.slogdet(p)[1])

    best = minimize_scalar(cost, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-8})
    candidates = [(cost(0.0), 0.0), (cost(1.0), 1.0)]
    if best.success and np.isfinite(best.fun):
        candidates.append((float(best.fun), float(best.x)))
    w = min(candidates)[1]
    p = fused(w)
    x = p @ (w * i1 @ x1 + (1 - w) * i2 @ x2)
    return x, (p + p.T) / 2, w


def covariance_intersection(means: Sequence[ArrayLike], covs: Sequence[ArrayLike],
                            criterion: str = "trace") -> CiResult:
    """Fuse estimates whose errors are correlated in an unknown way, consistently (covariance intersection).

    Two estimates: ``P^-1 = w P1^-1 + (1 - w) P2^-1``, ``x = P (w P1^-1 x1 + (1 - w) P2^-1 x2)`` with ``w``
    in [0, 1] minimising ``trace(P)`` or ``det(P)`` (Julier and Uhlmann, "A non-divergent estimation algorithm
    in the presence of unknown correlations", ACC 1997).  ``P`` bounds the true error covariance whatever the
    cross-covariance of the inputs (if each input's covariance bounds its own error).  More than two are fused
    one after the other in the given order (each step is consistent, so the result is).

    Parameters
    ----------
    means : sequence of array_like, each shape (n,)
    covs : sequence of array_like, each shape (n, n)
        Symmetric positive definite.
    criterion : str
        ``trace`` or ``determinant``.

    Returns
    -------
    CiResult

    Raises
    ------
    InputError
        No input, mismatched shapes, non-finite values, a covariance that is not positive definite, or an
        unknown criterion.
    """
    if criterion not in CI_CRITERIA:
        raise InputError(f"criterion = {criterion!r}: allowed one of {', '.join(CI_CRITERIA)}")
    if len(means) != len(covs) or not means:
        raise InputError(f"means and covs have {len(means)} and {len(covs)} entries: allowed the same number >= 1")
    n = np.asarray(means[0]).shape[0] if np.asarray(means[0]).ndim == 1 else -1
    if n < 1:
        raise InputError(f"means[0] has shape {np.asarray(means[0]).shape}: allowed a vector of shape (n,)")
    x = _vector("means[0]", means[0], n)
    p = _square("covs[0]", covs[0], n)
    if len(means) == 1:
        _inverse("covs[0]", p)                            # one input: it is the result, if it is a covariance
    omegas = []
    for i in range(1, len(means)):
        left = "covs[0]" if i == 1 else f"the fusion of covs[0 ... {i - 1}]"
        x, p, w = _ci_pair(x, p, _vector(f"means[{i}]", means[i], n), _square(f"covs[{i}]", covs[i], n), criterion,
                           (left, f"covs[{i}]"))
        omegas.append(w)
    return CiResult(x, p, tuple(omegas))


def naive_fusion(means: Sequence[ArrayLike], covs: Sequence[ArrayLike]
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The information sum ``P^-1 = sum P_i^-1``, ``x = P sum P_i^-1 x_i``: optimal for independent errors only.

    Kept to show what covariance intersection avoids: for correlated errors its covariance is smaller than
    the true error covariance (overconfident).

    Returns
    -------
    mean : ndarray, shape (n,), float64
    cov : ndarray, shape (n, n), float64
    """
    if len(means) != len(covs) or not means:
        raise InputError(f"means and covs have {len(means)} and {len(covs)} entries: allowed the same number >= 1")
    n = np.asarray(means[0]).shape[0]
    infos = [_inverse(f"covs[{i}]", _square(f"covs[{i}]", c, n)) for i, c in enumerate(covs)]
    p = _inverse("the summed information", np.sum(np.stack(infos), axis=0))
    x = p @ sum(i @ _vector(f"means[{k}]", m, n) for k, (i, m) in enumerate(zip(infos, means)))
    return x, (p + p.T) / 2


def position_distance2(state_a: ArrayLike, cov_a: ArrayLike, state_b: ArrayLike, cov_b: ArrayLike) -> float:
    """Squared Mahalanobis distance of the position difference, ``d^T (P_a + P_b)^-1 d`` (3 dof), unitless.

    The cross-covariance is unknown and left out: with positively correlated errors this overstates the
    spread of the difference, so the gate errs on the side of keeping a pair.
    """
    a, b = _vector("state_a", state_a, _STATE), _vector("state_b", state_b, _STATE)
    s = _square("cov_a", cov_a, _STATE)[_POS, _POS] + _square("cov_b", cov_b, _STATE)[_POS, _POS]
    d = a[_POS] - b[_POS]
    return float(d @ _inverse("the position covariance sum", s) @ d)


def gate_threshold(probability: float, dof: int = 3) -> float:
    """The chi-square gate: the ``probability`` quantile of chi²(``dof``) (a true pair passes with it)."""
    if not (0.0 < probability < 1.0):
        raise InputError(f"gate probability = {probability!r}: allowed 0 < p < 1 (e.g. 0.999)")
    return float(chi2.ppf(probability, dof))


def assign(cost: ArrayLike, gate: float) -> list[tuple[int, int]]:
    """Pairs (row, column) of the least total cost, every pair within ``gate`` (linear_sum_assignment).

    Parameters
    ----------
    cost : array_like, shape (R, C)
        Squared distances; ``inf`` (or anything above ``gate``) forbids a pair.
    gate : float
        Largest cost of a kept pair.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2 or c.size == 0:
        return []
    allowed = np.isfinite(c) & (c <= gate)
    if not allowed.any():
        return []
    big = (float(np.max(c[allowed])) + 1.0) * (min(c.shape) + 1) + gate    # any forbidden pair costs more
    rows, cols = linear_sum_assignment(np.where(allowed, c, big))
    return [(int(r), int(k)) for r, k in zip(rows, cols) if allowed[r, k]]


# ---- global tracks ------------------------------------------------------------------------------------
@dataclass
class _Global:
    gid: str
    members: dict[str, str]                         # MECS id -> local track id
    joined: dict[str, int]                          # MECS id -> the cycle it joined (older keeps the id)
    stations: list[str]
    handovers: list[Handover]
    history: deque[tuple[float, NDArray[np.float64], NDArray[np.float64]]]
    status: str = "tentative"
    owner: str | None = None
    #: MECS id -> the first time of its local track the core has seen (the start of the tail it carried when
    #: it joined), s: the member that has tracked the target longest owns the global track
    started: dict[str, float] = field(default_factory=dict)
    #: MECS id -> the time of the latest state of its local track fused into this global track, s (set at each
    #: fusion, so it still holds a member's last state in the cycle that finds the member gone)
    last_t_s: dict[str, float] = field(default_factory=dict)
    #: MECS id -> the time of the latest state its local track says it measured (``Track.measured``), s; a
    #: member that sends no flags has none here
    last_measured_t_s: dict[str, float] = field(default_factory=dict)
    #: (MECS id, local track id) of every member it lost in the call that left it without members (a coasting
    #: track's: a handover of one of those ids to another MECS takes it up)
    former: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Local:
    mecs: str
    track: Track
    state: NDArray[np.float64]                      # predicted to the fusion time
    cov: NDArray[np.float64]


class TrackToTrackFuser:
    """Global tracks from the tracks of several MECS hosts: association, covariance intersection, stable ids.

    Call :meth:`update` with every live MECS's current tracks; it returns the global tracks.  A MECS whose
    tracks are left out of a call (absent, or silent) no longer contributes; its global tracks live on while
    another MECS reports a member.

    Parameters
    ----------
    gate_probability : float
        Probability that a true pair passes the chi-square gate on the 3-D position difference, 0 < p < 1.
    criterion : str
        ``trace`` or ``determinant``: what covariance intersection minimises.
    accel_psd_m2ps3 : float
        White-acceleration power spectral density, m²/s³, of the prediction to the common time.
    keep_states : int
        States kept in each global track's history, >= 1.
    id_prefix : str
        Global ids are ``f"{id_prefix}{n}"``, n = 1, 2, ... (never reused).
    coast_s : float
        How long a global track left without members is kept, s (finite, >= 0; 0: it ends at once).  While it
        coasts it is not returned (no member to fuse); a local track not yet in a global track, of any MECS,
        whose state passes the gate against the coasting track's last fused state predicted to the fusion time
        takes the coasting track's id, history and handovers (competing with the live global tracks in the
        same assignment), provided that its own latest state is within ``coast_s`` of the fusion time (a local
        track much older, from a MECS host whose messages arrive in a burst behind the others', is predicted so far
        that it gates with anything).  Where the new member is at another MECS than the owner that left, an
        ``owner_left`` handover is logged at the old owner's last measured state; the track keeps its status (a
        confirmed track taken up by a tentative local track stays confirmed).  A coasting track ends when the
        fusion time passes its last fused state by more than ``coast_s``.
    join_within_s : float
        A local track not yet in a global track takes part in a fusion only while its latest state is at most
        this long before the fusion time, s (> 0; default: any age).  An older one (a MECS host far behind the
        fusion time: its track predicted seconds forward gates with other targets' global tracks) waits, counted
        in :attr:`held_back`, until a fusion near its own time; the members of global tracks are fused whatever
        their age.
    """

    def __init__(self, gate_probability: float = 0.999, criterion: str = "trace", accel_psd_m2ps3: float = 1.0,
                 keep_states: int = 100, id_prefix: str = "g", coast_s: float = 0.0,
                 join_within_s: float = math.inf) -> None:
        if criterion not in CI_CRITERIA:
            raise InputError(f"criterion = {criterion!r}: allowed one of {', '.join(CI_CRITERIA)}")
        if not (math.isfinite(accel_psd_m2ps3) and accel_psd_m2ps3 >= 0):
            raise InputError(f"accel_psd_m2ps3 = {accel_psd_m2ps3!r} m²/s³: allowed a finite number >= 0")
        if keep_states < 1:
            raise InputError(f"keep_states = {keep_states!r}: allowed an integer >= 1")
        if not (isinstance(coast_s, (int, float)) and math.isfinite(coast_s) and coast_s >= 0):
            raise InputError(f"coast_s = {coast_s!r} s: allowed a finite time >= 0 (0: a global track without "
                             "members ends at once)")
        self.coast_s = float(coast_s)
        if isinstance(join_within_s, bool) or not isinstance(join_within_s, (int, float)) or not join_within_s > 0:
            raise InputError(f"join_within_s = {join_within_s!r} s: allowed a time > 0 (math.inf: any age)")
        self.join_within_s = float(join_within_s)
        #: local tracks left out of a fusion because they were older than join_within_s and in no global track
        self.held_back = 0
        self.gate = gate_threshold(gate_probability)
        self.criterion = criterion
        self.accel_psd_m2ps3 = accel_psd_m2ps3
        self.keep_states = keep_states
        self.id_prefix = id_prefix
        self._globals: dict[str, _Global] = {}
        self._by_local: dict[tuple[str, str], str] = {}
        self._counter = itertools.count(1)
        self._cycle = 0
        self._now: float | None = None
        self._measured_t_s: Mapping[tuple[str, str], float] = {}     # this update's (see update)
        self._first_t_s: dict[tuple[str, str], float] = {}

    @property
    def members(self) -> dict[str, dict[str, str]]:
        """Global id -> {MECS id: local track id} of the live global tracks (not the coasting ones)."""
        return {gid: dict(g.members) for gid, g in self._globals.items() if g.members}

    @property
    def coasting(self) -> list[str]:
        """The ids of the global tracks left without members that may still be taken up (``coast_s``)."""
        return [gid for gid, g in self._globals.items() if not g.members]

    def update(self, local: Mapping[str, Sequence[Track]], t_s: float | None = None,
               first_t_s: Mapping[tuple[str, str], float] | None = None,
               measured_t_s: Mapping[tuple[str, str], float] | None = None) -> list[Track]:
        """Fuse the current tracks of the MECS hosts in ``local`` (MECS id -> tracks) at time ``t_s``.

        Each local track's latest state is predicted to ``t_s`` (default: the newest local state); the fusion
        time never goes back (a time before the previous call's is raised to it, so that a MECS leaving with
        the newest states does not pull the global tracks back).  Tracks with status ``deleted`` and states
        after the fusion time are left out.  ``first_t_s``: (MECS id, local id) -> the first time known of
        that local track, s (a MECS host's tracks message carries a tail of earlier states; default: the
        track's first ``t_s``); the member whose track started first owns a global track.  ``measured_t_s``:
        (MECS id, local id) -> the time of the newest state of that local track that its MECS host measured, s,
        as seen in every message of that host (the core host records it on arrival: between two fusions a
        host may publish a measured state and then a predicted one); default: the last state flagged measured
        (``Track.measured``) in the tracks given.

        Returns
        -------
        list of Track
            The live global tracks, by id: their fused history (the last ``keep_states`` states), the MECS
            hosts that contributed in the order they joined (``stations``), the members' handovers and the
            core's own (a global track whose owner left, reason ``owner_left``: the owner is the member whose
            local track started first, by the first state time the core saw of it), status
            ``confirmed`` when a member is.

        Notes
        -----
        An ``owner_left`` handover is stamped on the data clock at the time of the leaving owner's last state
        fused into the global track that the owner measured (``Track.measured``; a MECS host's tracker says,
        state by state): where that MECS host's sensing of the target ended.  The states it coasted on
        predictions before deleting its track do not count; where its tracks carry no flags, its last state
        fused does, and so does the last state fused of a member none of whose states fused was measured.  The
        core notices the leaving later, at the fusion time of the first call without that
        local track (after the MECS host's deletion delay and the messages' latency), and that time says
        nothing of the target.  The stamp
        may lie before the new owner's own first state (a member that joined after the old owner's last state:
        the handover then means the old owner's part ended there and the new owner carried the track from its
        first state on); it is never before the global track's previous ``owner_left`` handover (an owner
        whose last state is older than its taking over hands over at that earlier handover's time) and never
        after the fusion time.
        """
        self._cycle += 1
        self._first_t_s = dict(first_t_s or {})
        tracks = {m: [t for t in ts if t.status != "deleted" and t.num_states > 0] for m, ts in local.items()}
        times = [float(t.t_s[-1]) for ts in tracks.values() for t in ts]
        now = t_s if t_s is not None else (max(times) if times else None)
        if now is None:
            self._end_all({})
            return []
        if not math.isfinite(now):
            raise InputError(f"t_s = {now!r} s: allowed a finite time")
        now = max(now, self._now) if self._now is not None else now
        self._now = now
        self._measured_t_s = measured_t_s or {}
        live: dict[tuple[str, str], _Local] = {}
        for mecs in sorted(tracks):
            for t in tracks[mecs]:
                # a track from after the fusion time waits; one older than the longest prediction is no longer
                # a track of this time (a MECS host whose clock is decades off): neither is fused now
                if now - _MAX_PREDICT_S <= float(t.t_s[-1]) <= now:
                    if now - float(t.t_s[-1]) > self.join_within_s and (mecs, t.track_id) not in self._by_local:
                        self.held_back += 1
                        continue
                    x, p = predict(t.states[-1], t.covariances[-1], now - float(t.t_s[-1]), self.accel_psd_m2ps3)
                    live[(mecs, t.track_id)] = _Local(mecs, t, x, p)
        self._end_all(live)
        # before anything may take a coasting track up: one past its coast (or one that lost its members in this
        # call, with coast_s = 0) ends here
        self._expire(now)
        self._inherit_handovers(live)
        self._split_inconsistent(live)
        for mecs in sorted({key[0] for key in live}):
            self._associate(mecs, [key for key in live if key[0] == mecs and key not in self._by_local], live)
        return [self._record(g, live, now) for g in sorted(self._globals.values(), key=lambda g: _id_key(g.gid))
                if g.members]

    # ---- steps of one cycle ---------------------------------------------------------------------
    def _end_all(self, live: Mapping[tuple[str, str], _Local]) -> None:
        """Detach members that are not reported any more; a global track left without members keeps them all as
        its ``former`` members (for a handover across the gap) and coasts, or ends (see :meth:`_expire`)."""
        gone: dict[str, list[tuple[str, str]]] = {}
        for key in [k for k in self._by_local if k not in live]:
            gone.setdefault(self._by_local[key], []).append(key)
            self._detach(key)
        for gid, keys in gone.items():
            g = self._globals.get(gid)
            if g is not None and not g.members:
                g.former = tuple(keys)

    def _detach(self, key: tuple[str, str]) -> None:
        gid = self._by_local.pop(key)
        g = self._globals[gid]
        seen = self._measured_t_s.get(key)                 # a sighting the fusions in between did not see
        if seen is not None:
            g.last_measured_t_s[key[0]] = max(seen, g.last_measured_t_s.get(key[0], seen))
        g.members.pop(key[0], None)
        g.joined.pop(key[0], None)
        g.started.pop(key[0], None)
        if not g.members and not g.history:
            del self._globals[gid]                      # never fused: nothing to coast on

    def _expire(self, now: float) -> None:
        """End the global tracks without members unless ``coast_s`` > 0 and their last fused state is at most
        ``coast_s`` (and the longest prediction) before ``now``."""
        for gid in [gid for gid, g in self._globals.items()
                    if not g.members and not (self.coast_s > 0 and now - g.history[-1][0] <= min(self.coast_s,
                                                                                                  _MAX_PREDICT_S))]:
            del self._globals[gid]

    def _inherit_handovers(self, live: Mapping[tuple[str, str], _Local]) -> None:
        """A new local track that carries handovers and the id of a member at another MECS joins its global (a
        live one, or a coasting one whose last member had that id)."""
        for key, item in live.items():
            if key in self._by_local or not item.track.handovers:
                continue
            owners = list(self._by_local.items()) + [(former, g.gid) for g in self._globals.values() if not g.members
                                                     for former in g.former]
            for (mecs, local_id), gid in owners:
                if local_id == key[1] and mecs != key[0] and key[0] not in self._globals[gid].members:
                    self._attach(key, gid, item.track)
                    break

    def _split_inconsistent(self, live: Mapping[tuple[str, str], _Local]) -> None:
        """Detach the newest member of a global track while a member fails the gate against the others."""
        for g in list(self._globals.values()):
            while len(g.members) >= 2:
                worst = []
                for mecs, local_id in g.members.items():
                    others = [live[(m, lid)] for m, lid in g.members.items() if m != mecs]
                    fused = self._fuse(others)
                    item = live[(mecs, local_id)]
                    if position_distance2(item.state, item.cov, fused.mean, fused.cov) > self.gate:
                        worst.append(mecs)
                if not worst:
                    break
                newest = max(worst, key=lambda m: (g.joined[m], m))
                if newest == g.owner:
                    # the owner's track is split off as another target's: it did not leave this one (an
                    # owner_left handover to the remaining member contradicted its going on under a new id);
                    # the remaining members' own first starter owns the track from here, as if from the start
                    g.owner = None
                self._detach((newest, g.members[newest]))

    def _associate(self, mecs: str, keys: list[tuple[str, str]], live: Mapping[tuple[str, str], _Local]) -> None:
        """Assign the unassigned tracks of one MECS to global tracks it has no member in (live or coasting), or
        start new ones.

        Pairs pass the chi-square gate on the squared Mahalanobis distance ``d²``; among them the assignment
        minimises the sum of ``d² + ln det S`` (the negative log-likelihood of the pair, ``S`` the sum of the
        position covariances): a coasting track's grown covariance widens its gate but does not make it the
        cheaper choice for a track that a live global track with a tight covariance explains as well.
        """
        if not keys:                                      # nothing new of this MECS: no fusion to compute
            return
        candidates = [g for g in self._globals.values() if mecs not in g.members]
        fused = [self._fused(g, live) if g.members else self._coasted(g) for g in candidates]
        d2 = np.full((len(keys), len(candidates)), np.inf)
        logdet = np.zeros_like(d2)
        for r, key in enumerate(keys):
            for c, (mean, cov) in enumerate(fused):
                d2[r, c] = position_distance2(live[key].state, live[key].cov, mean, cov)
                logdet[r, c] = np.linalg.slogdet(live[key].cov[_POS, _POS] + cov[_POS, _POS])[1]
        allowed = d2 <= self.gate
        # a coasting track takes up only a local track whose own latest state is within the coast of the fusion
        # time: one much older (a MECS host's messages arriving in a burst behind the others') is predicted so far
        # that it gates with anything, and took another target's id
        now = self._now if self._now is not None else 0.0
        for c, g in enumerate(candidates):
            if not g.members:
                for r, key in enumerate(keys):
                    if now - float(live[key].track.t_s[-1]) > self.coast_s:
                        allowed[r, c] = False
        taken = set()
        if allowed.any():
            cost = np.where(allowed, d2 + logdet - float(np.min(logdet[allowed])), np.inf)   # >= 0 where allowed
            for r, c in assign(cost, float(np.max(cost[allowed]))):
                self._attach(keys[r], candidates[c].gid, live[keys[r]].track)
                taken.add(r)
        for r, key in enumerate(keys):
            if r not in taken:
                gid = f"{self.id_prefix}{next(self._counter)}"
                self._globals[gid] = _Global(gid, {}, {}, [], [], deque(maxlen=self.keep_states))
                self._attach(key, gid, live[key].track)

    def _attach(self, key: tuple[str, str], gid: str, track: Track) -> None:
        g = self._globals[gid]
        g.members[key[0]] = key[1]
        g.joined[key[0]] = self._cycle
        g.started[key[0]] = float(self._first_t_s.get(key, track.t_s[0]))
        self._by_local[key] = gid
        if key[0] not in g.stations:
            g.stations.append(key[0])

    def _fused(self, g: _Global, live: Mapping[tuple[str, str], _Local]
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        f = self._fuse([live[(m, lid)] for m, lid in g.members.items()])
        return f.mean, f.cov

    def _coasted(self, g: _Global) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """A coasting global track's last fused state and covariance predicted to the fusion time."""
        t_s, mean, cov = g.history[-1]
        now = t_s if self._now is None else self._now                       # (update sets it before)
        return predict(mean, cov, now - t_s, self.accel_psd_m2ps3)

    def _fuse(self, items: Sequence[_Local]) -> CiResult:
        ordered = sorted(items, key=lambda i: i.mecs)
        return covariance_intersection([i.state for i in ordered], [i.cov for i in ordered], self.criterion)

    def _record(self, g: _Global, live: Mapping[tuple[str, str], _Local], now: float) -> Track:
        """Fuse a global track's members at ``now``, append to its history, and make its record."""
        items = [live[(m, lid)] for m, lid in g.members.items()]
        fused = self._fuse(items)
        if g.history and g.history[-1][0] >= now:
            g.history.pop()                                       # the same instant again: the newer fusion
        g.history.append((now, fused.mean, fused.cov))
        # the owner: the member whose local track started first on the data clock (not the first whose message
        # reached the core: which MECS host publishes first is a race of processes and networks)
        owner = min(g.members, key=lambda m: (g.started[m], g.joined[m], m))
        if g.owner is not None and owner != g.owner and g.owner not in g.members:
            g.handovers.append(Handover(_left_at(g, g.owner, now), g.owner, owner, "owner_left"))
        g.owner = owner
        g.last_t_s = {item.mecs: float(item.track.t_s[-1]) for item in items}
        # (after the handover above, which read the leaving owner's times of the previous fusion)
        g.last_measured_t_s = {m: t for m, t in g.last_measured_t_s.items() if m in g.members}
        for item in items:
            seen = _last_measured(item.track, self._measured_t_s.get((item.mecs, item.track.track_id)))
            if seen is not None:
                g.last_measured_t_s[item.mecs] = max(seen, g.last_measured_t_s.get(item.mecs, seen))
        known = {(h.t_s, h.from_station, h.to_station, h.reason) for h in g.handovers}
        for item in items:
            for h in item.track.handovers:
                if (h.t_s, h.from_station, h.to_station, h.reason) not in known and h.t_s <= now:
                    g.handovers.append(h)
                    known.add((h.t_s, h.from_station, h.to_station, h.reason))
        g.handovers.sort(key=lambda h: h.t_s)
        del g.handovers[:-256]
        g.status = "confirmed" if g.status == "confirmed" or any(i.track.status == "confirmed" for i in items) \
            else "tentative"
        t = np.array([h[0] for h in g.history])
        return Track(g.gid, t, np.stack([h[1] for h in g.history]), np.stack([h[2] for h in g.history]),
                     tuple(g.stations), tuple(g.handovers), g.status)


def _last_measured(track: Track, recorded: float | None) -> float | None:
    """The time of the newest measured state of a local track, s: ``recorded`` (what the core saw arrive) or the
    last state flagged measured in ``track``, whichever is later (None where neither says)."""
    flags = track.measured
    own = float(track.t_s[flags][-1]) if flags is not None and flags.any() else None
    times = [t for t in (recorded, own) if t is not None]
    return max(times) if times else None


def _left_at(g: _Global, mecs: str, now: float) -> float:
    """When the owner ``mecs`` of ``g`` left, s: the time of its last state fused into ``g`` that it measured
    (where its sensing ended: a track coasting on predictions before its deletion has stopped seeing the
    target), or of its last state fused where its tracks do not say which were measured; not before the global
    track's previous ``owner_left`` handover (the time ``mecs`` took over, if that is later) and not after
    ``now``."""
    took_over = max((h.t_s for h in g.handovers if h.reason == "owner_left"), default=-math.inf)
    last = g.last_measured_t_s.get(mecs, g.last_t_s.get(mecs, now))
    return min(max(last, took_over), now)


def _id_key(gid: str) -> tuple[int, str]:
    digits = "".join(c for c in gid if c.isdigit())
    return (int(digits) if digits else 0, gid)


# ---- the centralised mode -------------------------------------------------------------------------------
_MIN_STEP_S = 2e-6                                  # scans at one instant are this far apart (the tracker: 1 µs)
_KEEP_ERRORS = 100


@dataclass(order=True)
class _Pending:
    t_s: float
    order: int
    source: str = field(compare=False)
    estimates: tuple[TargetEstimate, ...] = field(compare=False)


class CentralisedFuser:
    """One tracker over the target estimates of several sources (the core host's centralised mode).

    Each source (a MECS host) sends its estimate sets in time order (:meth:`add`).  The sets of all sources are
    tracked in time order, one scan per set, by one :class:`sdr_isac.fusion.tracking.Tracker` (Stone Soup,
    imported when a fuser is made): a set at ``t`` is tracked once every source that is not gone (:meth:`drop`)
    has sent a set at ``t`` or later (no earlier one can still come), or once it lies ``reorder_s`` behind the
    newest set of any source (a source not heard from yet, or slow, is waited for that long).  A set that comes
    after a later set was tracked is dropped and counted (:attr:`late`); sets of one instant are tracked 2 µs
    apart.  Where the sources' estimate errors are independent, this is the Kalman filter of all the
    estimates: no fusion of the sources' own tracks is more accurate.

    Every track is owned by ``station``: the tracker would hand a track over to the sending source at every
    scan of another source (a scan holds one source's set), so the estimates are tracked without their nodes
    and links, and the tracks' ``stations`` and ``handovers`` stay those of the central tracker (none).

    Parameters
    ----------
    tracking : TrackingConfig
        The tracker's filter, association, process noise, gate and M-of-N rules.  A scan is one source's set,
        so a target that one source of ``sources`` sees is missed in the other sources' scans: the scan
        counts ``confirm_window`` and ``delete_misses`` are multiplied by ``sources`` (rounds of the sources,
        at most 100 and 1000), ``confirm_hits`` stays.
    sources : sequence of str
        The sources' ids (MECS host ids), at least one, distinct.
    reorder_s : float
        Longest wait for a slower source's earlier sets, s, on the data clock, 0 ... 60.
    keep_states : int
        States kept per track, >= 1.
    id_prefix : str
        Track ids are ``f"{id_prefix}{n}"``, n = 1, 2, ...
    station : str
        The owner of every track (the core host's id).

    Raises
    ------
    InputError
        A value out of range, or ``tracking`` is not a TrackingConfig.
    """

    def __init__(self, tracking: TrackingConfig, sources: Sequence[str], reorder_s: float = 0.2,
                 keep_states: int = 100, id_prefix: str = "g", station: str = "core") -> None:
        from sdr_isac.fusion.tracking import Tracker  # Stone Soup: slow to import, only this mode needs it

        if not isinstance(tracking, TrackingConfig):
            raise InputError(f"tracking = {type(tracking).__name__}: allowed a TrackingConfig (the [tracking] "
                             "section)")
        if isinstance(sources, str) or not isinstance(sources, Sequence) or not sources \
                or not all(isinstance(x, str) for x in sources) or len(set(sources)) != len(sources):
            raise InputError(f"sources = {sources!r}: allowed a sequence of one or more distinct ids (strings, the "
                             "MECS hosts' ids)")
        if isinstance(reorder_s, bool) or not isinstance(reorder_s, int | float) or not 0 <= reorder_s <= 60:
            raise InputError(f"reorder_s = {reorder_s!r} s: allowed 0 ... 60 s")
        if isinstance(keep_states, bool) or not isinstance(keep_states, int) or keep_states < 1:
            raise InputError(f"keep_states = {keep_states!r}: allowed an integer >= 1")
        num = len(sources)
        cfg = dataclasses.replace(tracking, confirm_window=min(tracking.confirm_window * num, 100),
                                  delete_misses=min(tracking.delete_misses * num, 1000),
                                  keep_states=keep_states, history_states=1)
        self.tracking = cfg
        self.reorder_s = float(reorder_s)
        self.tracker = Tracker(cfg, station=station, id_prefix=id_prefix)
        self._pending: list[_Pending] = []
        self._order = itertools.count()
        self.sources = tuple(sources)
        self._newest: dict[str, float] = {}
        self._gone: set[str] = set()
        self.t_s: float | None = None                    # the tracker's time
        self._data_t_s: float | None = None              # the time of the last set it tracked
        self.sets = 0
        self.late: dict[str, int] = {}
        self.failed = 0
        self.errors: list[str] = []

    @property
    def pending(self) -> int:
        """Sets waiting to be tracked."""
        return len(self._pending)

    def add(self, source: str, t_s: float, estimates: Sequence[TargetEstimate]) -> bool:
        """Queue one set of ``source`` taken at ``t_s`` (s); False (and counted in :attr:`late`) when it is late.

        Parameters
        ----------
        source : str
            The sending source (MECS host id).
        t_s : float
            Time of the set, s, finite; not before the source's previous set.
        estimates : sequence of TargetEstimate
            The set's estimates (possibly none: the source looked and saw nothing).

        Raises
        ------
        InputError
            ``source`` is not one of the sources, ``t_s`` is not a finite number or goes back against the source's
            previous set, or an estimate is not a TargetEstimate.
        """
        if not isinstance(source, str) or source not in self.sources:
            raise InputError(f"source = {source!r}: allowed one of the sources ({', '.join(self.sources)})")
        try:
            t = float(t_s) if not isinstance(t_s, bool) and isinstance(t_s, int | float | np.number) else math.nan
        except OverflowError:                             # an int beyond the floats
            t = math.nan
        if not math.isfinite(t):
            raise InputError(f"t_s = {t_s!r}: allowed a finite time, s")
        if isinstance(estimates, TargetEstimate | str | bytes) or not isinstance(estimates, Sequence):
            raise InputError(f"estimates = {type(estimates).__name__}: allowed a sequence of TargetEstimate")
        for i, est in enumerate(estimates):
            if not isinstance(est, TargetEstimate):
                raise InputError(f"estimates[{i}] = {type(est).__name__}: allowed a TargetEstimate")
        previous = self._newest.get(source)
        if previous is not None and t < previous:
            raise InputError(f"t_s = {t!r} s: goes back from {source}'s previous set at {previous!r} s; allowed a "
                             "time not before it (each source sends its sets in time order)")
        self._newest[source] = t
        self._gone.discard(source)
        if self._data_t_s is not None and t < self._data_t_s:
            self.late[source] = self.late.get(source, 0) + 1
            return False
        heapq.heappush(self._pending, _Pending(t, next(self._order), source, tuple(estimates)))
        return True

    def drop(self, source: str) -> int:
        """A source went silent: its waiting sets are dropped (returned: how many), nobody waits for it until it
        sends again (its next set may be earlier than its last one: a restart)."""
        self._newest.pop(source, None)
        self._gone.add(source)
        kept = [p for p in self._pending if p.source != source]
        dropped = len(self._pending) - len(kept)
        heapq.heapify(kept)
        self._pending = kept
        return dropped

    def update(self, flush: bool = False) -> list[Track]:
        """Track every set that is ready, in time order; return the live tracks (their last ``keep_states``).

        ``flush``: track every waiting set, ready or not (at the end of a run).  A scan that the tracker
        refuses (:class:`~sdr_isac.errors.InputError`, e.g. a time outside its range) is dropped and
        counted in :attr:`failed`, its message kept in :attr:`errors` (the last 100); the others go on.
        """
        while self._pending and (flush or self._ready(self._pending[0].t_s)):
            item = heapq.heappop(self._pending)
            t_s = item.t_s if self.t_s is None else max(item.t_s, self.t_s + _MIN_STEP_S)
            try:
                self.tracker.step(t_s, [dataclasses.replace(e, nodes=(), links=()) for e in item.estimates])
            except InputError as err:
                self.failed += 1
                self.errors = (self.errors + [f"set of {item.source} at {t_s!r} s: {err}"[:500]])[-_KEEP_ERRORS:]
                continue
            self.t_s, self._data_t_s = t_s, item.t_s
            self.sets += 1
        return self.tracker.tracks()

    def _ready(self, t_s: float) -> bool:
        waited = (self._newest.get(s, -math.inf) for s in self.sources if s not in self._gone)
        return all(t >= t_s for t in waited) or t_s <= max(self._newest.values(), default=t_s) - self.reorder_s

    def stats(self) -> dict[str, Any]:
        """Counters: ``sets`` tracked, ``pending`` sets, ``late`` sets per source, ``failed`` sets (refused by
        the tracker), ``t_s`` (the tracker's time, s)."""
        return {"sets": self.sets, "pending": self.pending, "late": dict(self.late),
                "failed": self.failed, "t_s": self.t_s}
