#!/usr/bin/env python3
"""Time per scan of ``Tracker.step`` against a bare Stone Soup GNN tracker with the same models.

50 targets (nearly-constant velocity) over a 1 km square seen by 8 base stations;
each scan every target gets one position estimate (TargetEstimate, 1 m standard
deviation) from its nearest station.  ``Tracker.step`` takes the records (its
glue: records -> detections, per-station sequential association, M-of-N,
handover, Track records out); the bare tracker is Stone Soup's
``MultiTargetTracker`` built here from stonesoup classes (KalmanPredictor on
the same NCV model, ExtendedKalmanUpdater, GNNWith2DAssignment +
DistanceHypothesiser(Mahalanobis), SinglePointMeasurementInitiator, the same
deleters) fed the same numbers as Stone Soup detections, built inside its
timed section too.  ``Tracker.step`` runs twice: as configured, and with its
exact pre-gate off (every track-estimate pair through Stone Soup's
hypothesiser, as the bare tracker does), which shows the glue's own overhead.
All run in this process, interleaved scan by scan.

Usage: python scripts/bench_tracking.py [--targets 50] [--stations 8] [--scans 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import time
from datetime import timedelta

import numpy as np
from scipy.stats import chi2
from stonesoup.dataassociator.neighbour import GNNWith2DAssignment
from stonesoup.deleter.error import CovarianceBasedDeleter
from stonesoup.deleter.multi import CompositeDeleter
from stonesoup.deleter.time import UpdateTimeStepsDeleter
from stonesoup.hypothesiser.distance import DistanceHypothesiser
from stonesoup.initiator.simple import SinglePointMeasurementInitiator
from stonesoup.measures import Mahalanobis
from stonesoup.models.measurement.linear import LinearGaussian
from stonesoup.models.transition.linear import CombinedLinearGaussianTransitionModel, ConstantVelocity
from stonesoup.predictor.kalman import KalmanPredictor
from stonesoup.tracker.simple import MultiTargetTracker
from stonesoup.types.array import StateVector
from stonesoup.types.detection import Detection
from stonesoup.types.state import GaussianState
from stonesoup.updater.kalman import ExtendedKalmanUpdater

from sdr_isac.config.tracking import TrackingConfig
from sdr_isac.fusion.records import TargetEstimate
from sdr_isac.fusion.tracking import Tracker
from sdr_isac.fusion.tracking.tracker import EPOCH, PRIOR_VARIANCE

SD_M = 1.0
DT_S = 0.5


def scenario(num_targets: int, num_stations: int, num_scans: int, seed: int):
    """Per scan: positions (T, 3) of the truth plus estimate noise, and each estimate's nearest station."""
    rng = np.random.default_rng(seed)
    side = math.ceil(math.sqrt(num_stations))
    stations = np.array([[(i % side + 0.5) * 1000 / side, (i // side + 0.5) * 1000 / side, 20.0]
                         for i in range(num_stations)])
    grid = math.ceil(math.sqrt(num_targets))              # targets start on a grid, >= 100 m apart
    start = np.array([[(i % grid + 0.5) * 1000 / grid, (i // grid + 0.5) * 1000 / grid, 1.0]
                      for i in range(num_targets)])
    heading = rng.uniform(0, 2 * np.pi, num_targets)
    vel = np.stack([10 * np.cos(heading), 10 * np.sin(heading), np.zeros(num_targets)], axis=1)
    scans = []
    for k in range(num_scans):
        pos = start + vel * k * DT_S + rng.normal(0, SD_M, (num_targets, 3))
        nearest = np.argmin(np.linalg.norm(pos[:, None, :] - stations[None], axis=2), axis=1)
        scans.append((k * DT_S, pos, nearest))
    return scans


def bare_tracker(cfg: TrackingConfig) -> MultiTargetTracker:
    """Stone Soup alone: the same transition, updater, gate, initiator prior and deleters as Tracker."""
    predictor = KalmanPredictor(CombinedLinearGaussianTransitionModel([ConstantVelocity(cfg.noise_m2ps3)] * 3))
    updater = ExtendedKalmanUpdater(force_symmetric_covariance=True)
    gate = math.sqrt(chi2.ppf(cfg.gate_probability, 3))
    associator = GNNWith2DAssignment(DistanceHypothesiser(predictor, updater, Mahalanobis(), missed_distance=gate))
    prior_var = np.array([PRIOR_VARIANCE, cfg.init_speed_std_mps**2] * 3)
    initiator = SinglePointMeasurementInitiator(
        GaussianState(np.zeros((6, 1)), np.diag(prior_var)),
        updater=ExtendedKalmanUpdater(use_joseph_cov=True, force_symmetric_covariance=True))
    deleter = CompositeDeleter([UpdateTimeStepsDeleter(cfg.delete_misses),
                                CovarianceBasedDeleter(cfg.delete_position_var_m2, mapping=[0, 2, 4])],
                               intersect=False)
    return MultiTargetTracker(initiator=initiator, deleter=deleter, detector=[], data_associator=associator,
                              updater=updater)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--stations", type=int, default=8)
    parser.add_argument("--scans", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    cfg = TrackingConfig()
    scans = scenario(args.targets, args.stations, args.scans, args.seed)
    ids = [f"bs{i}" for i in range(args.stations)]
    cov = SD_M**2 * np.eye(3)
    ours = Tracker(cfg, station="mecs")
    every_pair = Tracker(cfg, station="mecs")
    every_pair.pregate = False
    bare = bare_tracker(cfg)
    t_ours, t_every, t_bare = [], [], []
    for t_s, pos, nearest in scans:
        records = [TargetEstimate(p, cov, nodes=(ids[n],)) for p, n in zip(pos, nearest)]
        start = time.perf_counter()
        out = ours.step(t_s, records)
        t_ours.append(time.perf_counter() - start)

        start = time.perf_counter()
        out_every = every_pair.step(t_s, records)
        t_every.append(time.perf_counter() - start)

        start = time.perf_counter()
        when = EPOCH + timedelta(seconds=t_s)
        detections = {Detection(StateVector(p), timestamp=when,
                                measurement_model=LinearGaussian(ndim_state=6, mapping=(0, 2, 4), noise_covar=cov))
                      for p in pos}
        bare.detector_iter = iter([(when, detections)])
        _, bare_tracks = next(bare)
        t_bare.append(time.perf_counter() - start)
    skip = min(3, len(scans) - 1)                          # the first scans only initiate
    mean_ours, mean_bare = float(np.mean(t_ours[skip:])), float(np.mean(t_bare[skip:]))
    mean_every = float(np.mean(t_every[skip:]))
    confirmed = sum(o.status == "confirmed" for o in out)
    same = [o.track_id for o in out] == [o.track_id for o in out_every] and all(
        np.allclose(a.states, b.states) for a, b in zip(out, out_every))
    print(f"{args.targets} targets, {args.stations} stations, {args.scans} scans (timed from scan {skip})")
    print(f"Tracker.step                    : {1e3 * mean_ours:8.2f} ms/scan ({confirmed} confirmed, "
          f"{len(out)} live tracks)")
    print(f"Tracker.step, pre-gate off      : {1e3 * mean_every:8.2f} ms/scan (same tracks: {same})")
    print(f"bare Stone Soup GNN             : {1e3 * mean_bare:8.2f} ms/scan ({len(bare_tracks)} tracks)")
    print(f"ratio Tracker / bare            : {mean_ours / mean_bare:8.3f} (target <= 1.2)")
    print(f"ratio pre-gate off / bare       : {mean_every / mean_bare:8.3f} (the glue's own overhead)")


if __name__ == "__main__":
    main()
