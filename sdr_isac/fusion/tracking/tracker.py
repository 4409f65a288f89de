"""Multi-target tracking of link measurements and target estimates on Stone Soup, with handover.

Stone Soup does the filtering (Kalman predictor, extended or unscented Kalman
updater), the association (GNN by 2-D assignment on the Mahalanobis distance,
or JPDA), the initiation (single-point measurement initiator) and the deletion
(no update in K scans, or position covariance beyond a bound); this module
turns the records into Stone Soup detections, runs one scan, keeps the M-of-N
confirmation and the owning station of each track, and hands back
:class:`~sdr_isac.fusion.records.Track` records.

A scan (:meth:`Tracker.step`) may hold several measurements of one target
(three monostatic links, a bistatic one, estimates of several stations).  A
tracker's association assumes one measurement per target per sensor, so the
scan is split into sensors -- one link (tx, rx) each, one set of estimates per
contributing node set -- and the sensors update the tracks one after another
at the scan time (sequential multi-sensor update; with no motion in between,
the result equals the joint update).  Only estimates start tracks (a link's
range and rate do not locate a target); an estimate that no track takes
starts a tentative track at once, so the next sensor's estimate of the same
target finds it.

JPDA runs as Stone Soup's ``JPDAwithEHM2`` (a :class:`~stonesoup.dataassociator.probability.JPDA`
that computes the same exact marginal association probabilities by efficient
hypothesis management; the plain enumeration is exponential in the number of
tracks) on a ``PDAHypothesiser`` gated at ``gate_probability``.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import chi2
from stonesoup.base import Property
from stonesoup.dataassociator.neighbour import GNNWith2DAssignment
from stonesoup.dataassociator.probability import JPDAwithEHM2
from stonesoup.deleter.error import CovarianceBasedDeleter
from stonesoup.deleter.multi import CompositeDeleter
from stonesoup.deleter.time import UpdateTimeStepsDeleter
from stonesoup.functions import gm_reduce_single
from stonesoup.hypothesiser.distance import DistanceHypothesiser
from stonesoup.hypothesiser.probability import PDAHypothesiser
from stonesoup.initiator.simple import SinglePointMeasurementInitiator
from stonesoup.measures import Mahalanobis
from stonesoup.models.measurement.linear import LinearGaussian
from stonesoup.types.array import StateVector, StateVectors
from stonesoup.types.detection import Detection
from stonesoup.types.state import GaussianState
from stonesoup.types.track import Track as StoneSoupTrack
from stonesoup.types.update import GaussianStateUpdate
from stonesoup.updater.kalman import ExtendedKalmanUpdater, UnscentedKalmanUpdater

from sdr_isac.config.tracking import TrackingConfig
from sdr_isac.errors import InputError
from sdr_isac.fusion.records import Handover, LinkMeasurement, TargetEstimate, Track, measured_flags
from sdr_isac.fusion.tracking.manoeuvre import (
    ManoeuvreExtendedKalmanUpdater,
    ManoeuvrePredictor,
    ManoeuvreUnscentedKalmanUpdater,
)
from sdr_isac.fusion.tracking.models import (
    POSITION,
    VELOCITY,
    estimate_model,
    estimate_vector,
    from_record_order,
    link_model,
    link_vector,
    ncv_transition,
    to_record_order,
)

__all__ = ["Tracker", "EPOCH", "PRIOR_VARIANCE"]

#: Stone Soup's time axis: t_s = 0 is this instant (times resolve to 1 µs)
EPOCH = datetime(2000, 1, 1)
#: prior variance of a measured coordinate at initiation, m² or (m/s)²: large against any estimate, small
#: enough that the Kalman update keeps ~1e-8 relative precision
PRIOR_VARIANCE = 1e8


#: deleted tracks a tracker keeps (for :meth:`Tracker.tracks` with ``include_deleted``); older ones are forgotten
KEEP_DELETED = 1000


@functools.lru_cache(maxsize=64)
def _gate_distance(probability: float, ndim: int) -> float:
    """The Mahalanobis distance (not squared) a true measurement of ``ndim`` dimensions stays within with
    ``probability``: the square root of the chi-square quantile."""
    return math.sqrt(float(chi2.ppf(probability, ndim)))


class _GatedMahalanobis(Mahalanobis):
    """Stone Soup's Mahalanobis distance, infinite beyond the gate of the measurement's own dimension.

    ``DistanceHypothesiser`` keeps a pair only below its one ``missed_distance``; with measurements of
    several dimensions in one scan that distance is the widest gate's, and a smaller measurement would pass
    with a probability above ``gate_probability`` (0.99995 for a 3-D estimate at the 6-D gate of 0.999).
    Inside its gate the distance is Stone Soup's, so assignments among gated pairs are unchanged.
    """

    probability: float = Property(doc="Gate probability of a true measurement (0.5 <= p < 1)")

    def __call__(self, state1: Any, state2: Any) -> float:
        distance = float(super().__call__(state1, state2))
        ndim = int(np.shape(state2.state_vector)[0])
        return distance if distance <= _gate_distance(self.probability, ndim) else math.inf


@dataclass
class _Meta:
    """What the tracker needs to know of one measurement: its station, strength and whether it may start a track."""

    station: str
    strength: tuple[float, float]
    starts: bool


@dataclass
class _Entry:
    """One track: Stone Soup's track, the record history (record order), owners, M-of-N window."""

    track_id: str
    ss: StoneSoupTrack
    window: deque[bool]
    t_s: list[float] = field(default_factory=list)
    states: list[NDArray[np.float64]] = field(default_factory=list)
    covs: list[NDArray[np.float64]] = field(default_factory=list)
    stations: list[str] = field(default_factory=list)
    handovers: list[Handover] = field(default_factory=list)
    status: str = "tentative"
    scans: int = 0
    #: per state: updated with a measurement (True), predicted (False), not known (None: adopted history)
    measured: list[bool | None] = field(default_factory=list)

    def record(self, last: int | None = None) -> Track:
        """The track as a record, with its ``last`` states (all when None)."""
        start = 0 if last is None else max(len(self.t_s) - last, 0)
        flags = self.measured[start:]
        return Track(self.track_id, np.array(self.t_s[start:]), np.array(self.states[start:]),
                     np.array(self.covs[start:]), tuple(self.stations), tuple(self.handovers), self.status,
                     measured_flags(flags))

    def push(self, t_s: float, state: Any, measured: bool, keep_ss: int, keep: int) -> None:
        """Append a Stone Soup state at ``t_s`` (``measured``: an update, not a prediction); keep ``keep_ss``
        Stone Soup states, ``keep`` records (0: all)."""
        self.ss.append(state)
        if len(self.ss) > keep_ss:
            del self.ss[0]
        x, p = to_record_order(state.state_vector, state.covar)
        self.t_s.append(t_s)
        self.states.append(x)
        self.covs.append(p)
        self.measured.append(bool(measured))
        if keep and len(self.t_s) > keep:
            del self.t_s[0], self.states[0], self.covs[0], self.measured[0]

    @property
    def owner(self) -> str:
        return self.stations[-1] if self.stations else ""


class Tracker:
    """A multi-target tracker of link measurements and target estimates, with handover between stations.

    Parameters
    ----------
    cfg : TrackingConfig
        The ``[tracking]`` section: association, filter, process noise and
        manoeuvre acceleration of the target class
        (:mod:`~sdr_isac.fusion.tracking.manoeuvre`), gate, M-of-N confirmation, deletion.
    station : str
        Id of the station (host, operator) this tracker runs at: the owner of
        tracks started from measurements that name no node.
    id_prefix : str
        Track ids are ``f"{id_prefix}{n}"``, n = 1, 2, ...; give each operator
        its own prefix so that ids stay unique after a cross-operator handover.

    Notes
    -----
    A track's owner is the station (the receiving node of a link, the node of
    the strongest link of an estimate) of the strongest measurement that
    updated it in a scan; the owner keeps the track while any of its own
    measurements still updates it.  A change of owner is logged as a
    :class:`~sdr_isac.fusion.records.Handover` with reason ``coverage``;
    :meth:`adopt` takes a track over from another operator's tracker
    (reason ``operator``).  The track id never changes.
    """

    def __init__(self, cfg: TrackingConfig, station: str = "", id_prefix: str = "") -> None:
        if not isinstance(cfg, TrackingConfig):
            raise InputError(f"cfg = {type(cfg).__name__}: allowed a TrackingConfig (the [tracking] section)")
        for name, value in (("station", station), ("id_prefix", id_prefix)):
            if not isinstance(value, str):
                raise InputError(f"{name} = {value!r}: allowed a string")
        self.cfg = cfg
        self.station = station
        self.id_prefix = id_prefix
        self._entries: list[_Entry] = []
        self._ids: set[str] = set()
        self._count = 0
        self._last_t_s = -math.inf
        self._predictor = ManoeuvrePredictor(ncv_transition(cfg.noise_m2ps3), accel_mps2=cfg.manoeuvre_mps2,
                                             weight=cfg.manoeuvre_probability)
        if cfg.filter == "ukf":
            self._updater: ExtendedKalmanUpdater | UnscentedKalmanUpdater = ManoeuvreUnscentedKalmanUpdater(
                force_symmetric_covariance=True)
        else:
            self._updater = ManoeuvreExtendedKalmanUpdater(force_symmetric_covariance=True)
        self._associators: dict[int, Any] = {}
        #: leave out of the association the track-estimate pairs that cannot gate (exact, see ``_pregate``);
        #: False sends every pair through Stone Soup's hypothesiser (for benchmarks)
        self.pregate = True
        self._pregate_chi2 = float(chi2.ppf(cfg.gate_probability, 6))
        init_updater = ExtendedKalmanUpdater(use_joseph_cov=True, force_symmetric_covariance=True)
        pos_only = np.zeros(6)
        pos_only[list(POSITION)] = PRIOR_VARIANCE
        pos_only[list(VELOCITY)] = cfg.init_speed_std_mps ** 2
        self._initiators = {
            3: SinglePointMeasurementInitiator(GaussianState(np.zeros((6, 1)), np.diag(pos_only)),
                                               updater=init_updater),
            6: SinglePointMeasurementInitiator(GaussianState(np.zeros((6, 1)), PRIOR_VARIANCE * np.eye(6)),
                                               updater=init_updater)}
        self._deleter = CompositeDeleter(
            [UpdateTimeStepsDeleter(cfg.delete_misses),
             CovarianceBasedDeleter(cfg.delete_position_var_m2, mapping=list(POSITION))], intersect=False)

    # ---- public API -------------------------------------------------------------
    def step(self, t_s: float, measurements: Sequence[LinkMeasurement | TargetEstimate],
             station: str | None = None) -> list[Track]:
        """Run one scan at time ``t_s`` and return the tentative and confirmed tracks.

        Parameters
        ----------
        t_s : float
            Time of the scan, s (every measurement is taken at this time; their
            own ``t_s`` is not used).  Later than the previous scan by >= 1 µs.
        measurements : sequence of LinkMeasurement or TargetEstimate
            Links must be placed (node positions known, :meth:`LinkMeasurement.placed`).
        station : str, optional
            Owner of measurements that name no node (default: the tracker's station).

        Returns
        -------
        list of Track
            Live tracks (``tentative`` or ``confirmed``), each with its latest
            ``cfg.history_states`` states (record order x, y, z, v_x, v_y, v_z).
        """
        timestamp = self._check_time(t_s)
        if station is not None and not isinstance(station, str):
            raise InputError(f"station = {station!r}: allowed a string or None")
        groups = self._detections(measurements, self.station if station is None else station)
        live = [e for e in self._entries if e.status != "deleted"]
        work = {id(e): e for e in live}
        scratch = {id(e): StoneSoupTrack([e.ss.state]) for e in live}
        hits: dict[str, list[_Meta]] = {}
        entries_before = list(self._entries)
        try:
            for key in sorted(groups):
                detections, meta = groups[key]
                self._scan(detections, meta, timestamp, float(t_s), work, scratch, hits)
        except Exception:
            # a scan that fails part way leaves the tracker as it was (tracks started in it have no state yet;
            # their ids stay taken, never reused); the existing tracks only change in _close below
            self._entries = entries_before
            raise
        for e in list(work.values()):
            self._close(e, scratch[id(e)], timestamp, float(t_s), hits.get(e.track_id, []))
        self._last_t_s = float(t_s)
        self._forget_deleted()
        return [e.record(self.cfg.history_states) for e in self._entries if e.status != "deleted"]

    def _forget_deleted(self) -> None:
        """Keep only the newest ``KEEP_DELETED`` deleted tracks (a long-running host's memory and time per scan
        stay bounded); their ids stay taken, so an id is never reused."""
        deleted = [i for i, e in enumerate(self._entries) if e.status == "deleted"]
        if len(deleted) > KEEP_DELETED:
            drop = set(deleted[:len(deleted) - KEEP_DELETED])
            self._entries = [e for i, e in enumerate(self._entries) if i not in drop]

    def tracks(self, include_deleted: bool = False) -> list[Track]:
        """Every track with its kept history (``cfg.keep_states``); deleted ones too when ``include_deleted``
        (the newest ``KEEP_DELETED`` of them)."""
        return [e.record() for e in self._entries if include_deleted or e.status != "deleted"]

    def adopt(self, track: Track, station: str, t_s: float) -> Track:
        """Take over ``track`` from another operator's tracker at time ``t_s``; it keeps its id and history.

        The track continues from its latest state; a
        :class:`~sdr_isac.fusion.records.Handover` (reason ``operator``) from its
        last owner to ``station`` is appended.  Returns the adopted track.

        Raises
        ------
        InputError
            ``track`` is not a live Track with at least one state, its id is
            already tracked here, ``station`` is not a string, or ``t_s`` is not
            finite or earlier than the track's latest state.
        """
        if not isinstance(track, Track):
            raise InputError(f"track = {type(track).__name__}: allowed a records.Track")
        if not isinstance(station, str):
            raise InputError(f"station = {station!r}: allowed a string (the adopting station's id)")
        if track.num_states == 0 or track.status == "deleted":
            raise InputError(f"track {track.track_id!r} has {track.num_states} states and status "
                             f"{track.status!r}: allowed a tentative or confirmed track with at least one state")
        if track.track_id in self._ids:
            raise InputError(f"track_id = {track.track_id!r}: already tracked here; give each operator's "
                             "tracker its own id_prefix")
        if not (isinstance(t_s, int | float) and math.isfinite(t_s)) or t_s < float(track.t_s[-1]):
            raise InputError(f"t_s = {t_s!r} s: allowed a finite time not before the track's latest state "
                             f"({float(track.t_s[-1])} s)")
        last = float(track.t_s[-1])
        x, p = from_record_order(track.states[-1], track.covariances[-1])
        ss = StoneSoupTrack([GaussianState(StateVector(x), p, timestamp=self._timestamp(last, "track.t_s"))])
        confirmed = track.status == "confirmed"         # a tentative one starts its M-of-N count again
        entry = _Entry(track.track_id, ss, deque([True], maxlen=self.cfg.confirm_window),
                       t_s=[float(t) for t in track.t_s], states=list(track.states), covs=list(track.covariances),
                       stations=list(track.stations), handovers=list(track.handovers), status=track.status,
                       scans=self.cfg.confirm_window if confirmed else 1,
                       measured=[None] * track.num_states if track.measured is None else
                       [bool(f) for f in track.measured])
        entry.handovers.append(Handover(float(t_s), entry.owner, station, "operator"))
        entry.stations.append(station)
        self._entries.append(entry)
        self._ids.add(entry.track_id)
        self._last_t_s = max(self._last_t_s, last)
        return entry.record()

    # ---- one scan -----------------------------------------------------------------
    def _check_time(self, t_s: Any) -> datetime:
        if isinstance(t_s, bool) or not isinstance(t_s, int | float | np.number) or not math.isfinite(t_s):
            raise InputError(f"t_s = {t_s!r}: allowed a finite time, s")
        if t_s <= self._last_t_s:
            raise InputError(f"t_s = {t_s!r} s: time went backwards or stood still (previous scan or adopted state "
                             f"at {self._last_t_s} s); allowed a later time")
        timestamp = self._timestamp(float(t_s), "t_s")
        if self._last_t_s > -math.inf and timestamp <= self._timestamp(self._last_t_s, "t_s"):
            raise InputError(f"t_s = {t_s!r} s: less than 1 µs after the previous scan ({self._last_t_s} s); "
                             "allowed a time at least 1 µs later")
        return timestamp

    @staticmethod
    def _timestamp(t_s: float, name: str) -> datetime:
        try:
            return EPOCH + timedelta(seconds=t_s)
        except OverflowError as err:
            raise InputError(f"{name} = {t_s!r} s: allowed -6e10 ... 2.5e11 s (years 100 ... 9999 after "
                             f"{EPOCH:%Y-%m-%d})") from err

    def _detections(self, measurements: Any, station: str) -> dict[tuple[Any, ...],
                                                                      tuple[list[Detection], dict[int, _Meta]]]:
        """Stone Soup detections of the scan, grouped by sensor (a link, or a set of estimating nodes)."""
        if isinstance(measurements, LinkMeasurement | TargetEstimate | str | bytes) \
                or not isinstance(measurements, Sequence):
            raise InputError(f"measurements = {type(measurements).__name__}: allowed a sequence (list, tuple) of "
                             "LinkMeasurement or TargetEstimate")
        groups: dict[tuple[Any, ...], tuple[list[Detection], dict[int, _Meta]]] = {}
        for i, m in enumerate(measurements):
            if isinstance(m, LinkMeasurement):
                try:
                    model = link_model(m)
                except InputError as err:
                    raise InputError(f"measurements[{i}].{err}") from err
                det = Detection(link_vector(m), measurement_model=model)
                key: tuple[Any, ...] = ("link", m.tx_id, m.rx_id, m.tx, m.rx,
                                        tuple(np.asarray(m.tx_position_m)), tuple(np.asarray(m.rx_position_m)))
                meta = _Meta(m.rx_id or station, (float(m.snr_re), -m.var_range_m2), False)
            elif isinstance(m, TargetEstimate):
                det = Detection(estimate_vector(m), measurement_model=estimate_model(m, self.cfg.variance_floor_m2))
                key = ("estimate", m.nodes)
                best = max(m.links, key=lambda link: link.snr_re, default=None)
                owner = (best.rx_id if best is not None and best.rx_id else (m.nodes[0] if m.nodes else station))
                meta = _Meta(owner, (float(best.snr_re) if best is not None else 0.0,
                                     -float(np.trace(m.cov_position_m2))), True)
            else:
                raise InputError(f"measurements[{i}] = {type(m).__name__}: allowed a LinkMeasurement or a "
                                 "TargetEstimate")
            dets, metas = groups.setdefault(key, ([], {}))
            dets.append(det)
            metas[id(det)] = meta
        return groups

    def _associator(self, ndim: int) -> Any:
        """The data associator for measurements of up to ``ndim`` dimensions.

        GNN: a missed detection costs the gate of ``ndim`` degrees of freedom, and each measurement is gated
        at the ``gate_probability`` quantile of chi-square with its own dimension (:class:`_GatedMahalanobis`),
        so a 3-D estimate scanned with 6-D ones (one node set, with and without velocity) is gated at chi2(3),
        not at the wider chi2(6).
        """
        if ndim not in self._associators:
            cfg = self.cfg
            if cfg.association == "jpda":
                self._associators[ndim] = JPDAwithEHM2(PDAHypothesiser(
                    self._predictor, self._updater, clutter_spatial_density=cfg.clutter_density,
                    prob_detect=cfg.detection_probability, prob_gate=cfg.gate_probability))
            else:
                gate = math.sqrt(chi2.ppf(cfg.gate_probability, ndim))
                self._associators[ndim] = GNNWith2DAssignment(DistanceHypothesiser(
                    self._predictor, self._updater, _GatedMahalanobis(probability=cfg.gate_probability),
                    missed_distance=gate))
        return self._associators[ndim]

    def _scan(self, detections: list[Detection], meta: dict[int, _Meta], timestamp: datetime, t_s: float,
              work: dict[int, _Entry], scratch: dict[int, StoneSoupTrack],
              hits: dict[str, list[_Meta]]) -> None:
        """Associate one sensor's detections with the tracks and update them; start tracks from the rest."""
        for det in detections:
            det.timestamp = timestamp
        ndim = max(d.measurement_model.ndim_meas for d in detections)
        by_scratch = {scratch[key]: work[key] for key in work}
        used: set[int] = set()
        tracks, gated = self._pregate(list(by_scratch), detections, timestamp)
        if tracks and gated:
            associations = self._associator(ndim).associate(set(tracks), set(gated), timestamp)
            for trk, hyp in associations.items():
                posterior, best = self._posterior(hyp, timestamp, used)
                if posterior is not None and best is not None:
                    trk.append(posterior)
                    hits.setdefault(by_scratch[trk].track_id, []).append(meta[id(best)])
        fresh = [d for d in detections if id(d) not in used and meta[id(d)].starts]
        for det in fresh:
            initiator = self._initiators[det.measurement_model.ndim_meas]
            (new,) = initiator.initiate({det}, timestamp)
            if det.measurement_model.ndim_meas == 6:
                _speed_prior(new.states[-1], self.cfg.init_speed_std_mps ** 2)
            entry = self._new_entry(meta[id(det)].station)
            work[id(entry)] = entry
            scratch[id(entry)] = new
            hits.setdefault(entry.track_id, []).append(meta[id(det)])

    def _pregate(self, tracks: list[StoneSoupTrack], detections: list[Detection],
                 timestamp: datetime) -> tuple[list[StoneSoupTrack], list[Detection]]:
        """The tracks and estimates that may lie inside each other's gate (all of them for links).

        Exact: the squared Mahalanobis distance ``eᵀS⁻¹e`` of a linear
        measurement is at least ``|e_pos|² / trace(S)`` and ``trace(S) <=
        trace(P) + trace(R)``; a pair beyond the widest gate (chi-square of 6
        degrees) by this bound is outside Stone Soup's gate too, so leaving it
        out changes no association (GNN or JPDA) and saves its hypothesis.
        """
        if not (self.pregate and tracks and all(isinstance(d.measurement_model, LinearGaussian)
                                                for d in detections)):
            return tracks, detections
        predictions = [self._predictor.predict(trk, timestamp=timestamp) for trk in tracks]   # cached for later
        x = np.array([np.asarray(p.state_vector, dtype=np.float64)[list(POSITION), 0] for p in predictions])
        trace_p = np.array([np.trace(p.covar) for p in predictions])
        z = np.array([np.asarray(d.state_vector, dtype=np.float64)[:3, 0] for d in detections])
        trace_r = np.array([np.trace(d.measurement_model.covar()) for d in detections])
        e2 = np.sum((x[:, None, :] - z[None, :, :]) ** 2, axis=2)
        near = e2 <= self._pregate_chi2 * (trace_p[:, None] + trace_r[None, :])
        return ([t for t, row in zip(tracks, near) if row.any()],
                [d for d, col in zip(detections, near.T) if col.any()])

    def _posterior(self, hyp: Any, timestamp: datetime, used: set[int]) -> tuple[Any, Detection | None]:
        """The updated state of one track's hypothesis (GNN) or hypotheses (JPDA) and its likeliest detection."""
        if self.cfg.association != "jpda":
            if not hyp:
                return None, None
            used.add(id(hyp.measurement))
            return self._updater.update(hyp), hyp.measurement
        detected = [h for h in hyp if h]
        if not detected:
            return None, None
        used.update(id(h.measurement) for h in detected)
        states = [self._updater.update(h) if h else h.prediction for h in hyp]
        weights = np.array([float(h.probability) for h in hyp])
        mean, covar = gm_reduce_single(StateVectors([s.state_vector for s in states]),
                                       np.stack([s.covar for s in states], axis=2), weights)
        best = max(detected, key=lambda h: float(h.probability)).measurement
        return GaussianStateUpdate(mean, covar, hypothesis=hyp, timestamp=timestamp), best

    def _new_entry(self, station: str) -> _Entry:
        while True:
            self._count += 1
            track_id = f"{self.id_prefix}{self._count}"
            if track_id not in self._ids:
                break
        entry = _Entry(track_id, StoneSoupTrack(), deque(maxlen=self.cfg.confirm_window), stations=[station])
        self._entries.append(entry)
        self._ids.add(track_id)
        return entry

    def _close(self, e: _Entry, scratch: StoneSoupTrack, timestamp: datetime, t_s: float,
               metas: list[_Meta]) -> None:
        """End the scan for one track: its state at ``t_s``, owner, M-of-N status, deletion."""
        hit = bool(metas)
        keep_ss = self.cfg.delete_misses + 2            # what the deleters look at
        if hit:
            e.push(t_s, scratch.state, True, keep_ss, self.cfg.keep_states)
        else:
            e.push(t_s, self._predictor.predict(e.ss.state, timestamp=timestamp), False, keep_ss,
                   self.cfg.keep_states)
        e.scans += 1
        e.window.append(hit)
        if hit and e.owner not in {m.station for m in metas}:
            new = max(metas, key=lambda m: m.strength).station
            e.handovers.append(Handover(t_s, e.owner, new, "coverage"))
            e.stations.append(new)
        if e.status == "tentative":
            if sum(e.window) >= self.cfg.confirm_hits:
                e.status = "confirmed"
            elif sum(e.window) + self.cfg.confirm_window - e.scans < self.cfg.confirm_hits:
                e.status = "deleted"                    # M hits in its first N scans are out of reach
        if e.status != "deleted" and self._deleter.check_for_deletion(e.ss):
            e.status = "deleted"


def _speed_prior(state: Any, var_mps2: float) -> None:
    """Fuse a new track's first state with the prior of its velocity, N(0, ``var_mps2`` I), in place.

    Stone Soup's single-point initiator takes a measured velocity's mean as it is and bounds only its
    covariance by the prior; a velocity the geometry hardly determines (nodes that see the target along one
    line: a mean of 10**5 m/s with a variance to match) then started a track that flew off.  The prior as a
    pseudo-measurement of the velocity (z = 0, R = ``var_mps2`` I, one Kalman update) keeps mean and
    covariance consistent, the position's correlation with the velocity included.
    """
    x = np.asarray(state.state_vector, dtype=np.float64).reshape(-1)
    p = np.asarray(state.covar, dtype=np.float64)
    vel = list(VELOCITY)
    gain = p[:, vel] @ np.linalg.inv(p[np.ix_(vel, vel)] + var_mps2 * np.eye(len(vel)))
    state.state_vector[:] = (x - gain @ x[vel]).reshape(-1, 1)
    covar = p - gain @ p[vel, :]
    state.covar[:] = 0.5 * (covar + covar.T)
