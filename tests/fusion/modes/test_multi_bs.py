"""Node-level fusion: bistatic referencing to the direct path, WLS position and velocity against the CRB."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sdr_isac.channel.cim import add_cim_noise, measure_pilots, point_target_cim
from sdr_isac.errors import InputError, SensingError
from sdr_isac.fusion import links as fl
from sdr_isac.fusion import locate as nl
from sdr_isac.fusion.modes import NodePlace
from sdr_isac.fusion.modes import multi_bs as nf
from sdr_isac.fusion.multiband import Band, pilot_mask
from sdr_isac.fusion.records import LinkMeasurement, TargetEstimate
from sdr_isac.sensing import Detection
from sdr_isac.sensing.crb import measurement_matrix, position_crb
from sdr_isac.units import SPEED_OF_LIGHT_MPS as C

NODES = np.array([[0.0, 0.0, 25.0], [200.0, 0.0, 25.0], [200.0, 200.0, 25.0], [0.0, 200.0, 25.0]])
TARGET = np.array([90.0, 110.0, 60.0])
BAND = Band("b", 24e9, 240e3, 1.33e-6, pilot_mask(56, 384, symbol_step=4))


def _link(paths: list[tuple[float, float, float]], rng: np.random.Generator) -> np.ndarray:
    taus, fds, snrs = zip(*paths, strict=True)
    amps = np.sqrt(snrs) * np.exp(2j * np.pi * rng.random(len(paths)))
    h = point_target_cim(np.arange(384), BAND.symbol_times_s, 240e3, taus, fds, amps)
    return add_cim_noise(h, 1.0, rng, BAND.pilots)


def test_bistatic_range_sum_survives_clock_and_carrier_offsets(rng: np.random.Generator) -> None:
    """20 ns of clock offset (6 m of range) and 800 Hz of CFO (5 m/s) are removed through the direct path."""
    base = 200.0
    s_true = float(np.linalg.norm(TARGET - NODES[0]) + np.linalg.norm(TARGET - NODES[1]))
    rate_true = 3.7
    delta, cfo = 20e-9, 800.0
    errs_r, errs_v, var_r, var_v = [], [], [], []
    for _ in range(30):
        h = _link([(base / C + delta, cfo, 1e3), (s_true / C + delta, -rate_true * 24e9 / C + cfo, 1.0)], rng)
        direct, echo = fl.estimate_paths(BAND, h, num_paths=2)
        m = fl.bistatic_measurement(0, 1, base, direct, echo, C)
        errs_r.append(m.range_m - s_true)
        errs_v.append(m.rate_mps - rate_true)
        var_r.append(m.var_range_m2)
        var_v.append(m.var_rate_mps2)
    # unbiased and on the bound: RMSE within [0.7, 1.4] x the CRB the measurement reports (30 trials: +-13 %)
    for errs, var in ((errs_r, var_r), (errs_v, var_v)):
        ratio = np.sqrt(np.mean(np.square(errs)) / np.mean(var))
        assert 0.7 < ratio < 1.4, ratio
    # without the reference the offset would remain: 6 m of range, 10 m/s of range rate
    assert abs(np.mean(errs_r)) < 0.1 and abs(np.mean(errs_v)) < 0.5


def test_relax_removes_the_bias_of_a_close_second_path(rng: np.random.Generator) -> None:
    """Two equal paths 3 delay bins apart at the same Doppler: sequential CLEAN refines the first with the
    second's sidelobes in the data (a bias of tens of standard deviations); RELAX rounds bring both onto the
    CRB (3 bins apart the paths barely share information, so each one's own CRB is the bound)."""
    bin_s = 1.0 / (384 * 240e3)
    taus = (400e-9, 400e-9 + 3.0 * bin_s)
    errs: dict[int, list[float]] = {0: [], 10: []}
    var: list[float] = []
    for _ in range(20):
        phases = np.exp(2j * np.pi * rng.random(2))
        h = measure_pilots(BAND, [(taus[0], 500.0, 10.0 * phases[0]), (taus[1], 500.0, 10.0 * phases[1])], rng)
        for rounds in errs:
            paths = fl.estimate_paths(BAND, h, num_paths=2, num_rounds=rounds)
            got = sorted(p.delay_s for p in paths)
            errs[rounds] += [got[0] - taus[0], got[1] - taus[1]]
            if rounds:
                var += [p.var_delay_s2 for p in paths]
    rmse = {r: float(np.sqrt(np.mean(np.square(e)))) for r, e in errs.items()}
    crb = float(np.sqrt(np.mean(var)))
    assert rmse[0] > 10 * crb, (rmse, crb)               # the bias RELAX is there to remove
    assert rmse[10] < 1.3 * crb, (rmse, crb)             # 40 estimates: the RMSE within +-25 % of the bound


def test_locate_recovers_position_and_its_covariance_is_the_crb(rng: np.random.Generator) -> None:
    sigma = 0.05
    truth_r = np.linalg.norm(TARGET[None] - NODES, axis=1)
    errs = []
    for _ in range(200):
        links = [LinkMeasurement(i, i, float(truth_r[i] + sigma * rng.standard_normal()), 0.0, sigma**2, 1.0, 1.0)
                 for i in range(4)]
        xy, cov = nl.locate(NODES, links, TARGET[2])
        errs.append(xy - TARGET[:2])
    h = measurement_matrix(NODES, TARGET)[:, :2]
    crb = np.linalg.inv(h.T @ h / sigma**2)
    assert np.linalg.norm(cov - crb) < 0.01 * np.linalg.norm(crb)     # evaluated at the estimate, not the truth
    # 3-D CRB of the same ranges restricted to known height agrees with the helper of sensing.crb
    assert np.trace(crb) <= np.trace(position_crb(NODES, TARGET, sigma**2)) + 1e-12
    ratio = np.sqrt(np.mean(np.sum(np.square(errs), axis=1)) / np.trace(crb))
    assert 0.85 < ratio < 1.15, ratio


def test_velocity_vector_from_radial_velocities(rng: np.random.Generator) -> None:
    v = np.array([8.0, -5.0, 0.0])
    u = (TARGET[None] - NODES) / np.linalg.norm(TARGET[None] - NODES, axis=1)[:, None]
    links = [LinkMeasurement(i, i, 0.0, float(u[i] @ v), 1.0, 1e-6, 1.0) for i in range(4)]
    est, cov = nl.velocity_vector(NODES, links, TARGET)
    assert est == pytest.approx(v[:2], abs=1e-9)
    with pytest.raises(SensingError, match="velocity vector"):
        nl.velocity_vector(NODES, links[:1], TARGET)


def test_locate_single_inverts_the_geometry() -> None:
    node, axis = NODES[0], np.array([np.sin(np.pi / 4), -np.cos(np.pi / 4)])
    diff = TARGET - node
    r = float(np.linalg.norm(diff))
    cone = float(np.arcsin(diff[:2] @ axis / r))
    assert nl.locate_single(node, axis, r, cone, TARGET[2]) == pytest.approx(TARGET[:2], abs=1e-9)
    with pytest.raises(SensingError, match="height difference"):
        nl.locate_single(node, axis, 10.0, 0.0, TARGET[2])


def test_array_angle_is_the_ml_estimate() -> None:
    alpha = 0.3
    z = np.exp(2j * np.pi * 0.5 * np.arange(8) * np.sin(alpha))
    assert fl.array_angle(z) == pytest.approx(alpha, abs=1e-7)
    with pytest.raises(InputError):
        fl.array_angle([1.0])


def _record(range_m: float, velocity_mps: float, angle_rad: float | None, range_var_m2: float, snr_db: float,
            geometry: str, velocity_var_mps2: float = 1e-4) -> Detection:
    """A detection record as sensing makes it (delay and Doppler at 24 GHz from the range and the velocity; no
    angle CRB: fusion takes such an angle at 0.1 rad)."""
    path = 2.0 if geometry == "monostatic" else 1.0         # a monostatic range is half the path, a range sum all
    return Detection(range_m=range_m, velocity_mps=velocity_mps, doppler_hz=-path * velocity_mps * 24e9 / C,
                     delay_s=path * range_m / C, snr_db=snr_db, geometry=geometry, angle_rad=angle_rad,
                     range_var_m2=range_var_m2, velocity_var_mps2=velocity_var_mps2, angle_var_rad2=None,
                     map_snr_db=snr_db)


def _detection(node: np.ndarray, yaw_deg: float, target: np.ndarray, sigma_r: float, sigma_a: float,
               rng: np.random.Generator, velocity: np.ndarray) -> Detection:
    """A monostatic detection of ``target`` by a node whose array broadside points along ``yaw_deg``."""
    diff = target - node
    r = float(np.linalg.norm(diff))
    yaw = np.deg2rad(yaw_deg)
    plus_y = np.array([-np.sin(yaw), np.cos(yaw), 0.0])      # the array's +y end, turned with the node
    angle = float(np.arcsin(diff @ plus_y / r))
    range_m = r + sigma_r * rng.standard_normal()
    velocity_mps = float(diff @ velocity / r) + 0.01 * rng.standard_normal()
    return _record(range_m, velocity_mps, angle + sigma_a * rng.standard_normal(), sigma_r**2, 20.0, "monostatic")


def _places(nodes: dict[str, tuple[tuple[float, float, float], float]]) -> dict[str, NodePlace]:
    """Node id -> NodePlace from node id -> (position m, yaw deg)."""
    return {n: NodePlace(n, p, yaw) for n, (p, yaw) in nodes.items()}


def _check_planar(e: TargetEstimate, height_m: float) -> None:
    """An estimate located in the plane at ``height_m``: that height, with variance 0, and one link per node."""
    assert e.position_m.shape == (3,) and e.cov_position_m2.shape == (3, 3)
    assert e.position_m[2] == height_m and not np.any(e.cov_position_m2[2])
    assert e.mode is None and len(e.links) == len(e.nodes)


def test_fuse_nodes_associates_by_geometry_and_reaches_the_crb(rng: np.random.Generator) -> None:
    places = _places({"bs0": ((0.0, 0.0, 10.0), 0.0), "bs1": ((60.0, 30.0, 10.0), -105.0)})
    targets = {"car": np.array([42.0, 10.0, 1.0]), "cyclist": np.array([65.0, -20.0, 1.0])}
    vel = {"car": np.array([-14.0, 2.0, 0.0]), "cyclist": np.array([5.0, 4.0, 0.0])}
    sigma_r, sigma_a = 0.02, 0.005
    errs, traces = [], []
    for _ in range(60):
        dets = {n: [_detection(np.array(p.position_m), p.yaw_deg, targets[t], sigma_r, sigma_a, rng, vel[t])
                    for t in ("cyclist", "car")] for n, p in places.items()}
        est = nf.fuse_nodes(places, dets, height_m=1.0, gate_m=5.0)
        assert len(est) == 2 and all(sorted(e.nodes) == ["bs0", "bs1"] for e in est)
        for e in est:
            _check_planar(e, 1.0)
            assert sorted(m.rx for m in e.links) == [0, 1] and all(m.monostatic for m in e.links)
            name = min(targets, key=lambda t: np.linalg.norm(e.position_m[:2] - targets[t][:2]))
            errs.append(e.position_m[:2] - targets[name][:2])
            traces.append(np.trace(e.cov_position_m2))
            assert e.velocity_mps is not None and e.velocity_mps[2] == 0.0
            assert np.linalg.norm(e.velocity_mps[:2] - vel[name][:2]) < 0.5
    ratio = np.sqrt(np.mean(np.sum(np.square(errs), axis=1)) / np.mean(traces))
    assert 0.8 < ratio < 1.25, ratio
    # a detection whose own position lies outside the gate of the other node's is not associated
    far = {"bs0": [_detection(np.array([0.0, 0.0, 10.0]), 0.0, targets["car"], sigma_r, sigma_a, rng, vel["car"])],
           "bs1": [_detection(np.array([60.0, 30.0, 10.0]), -105.0, targets["cyclist"], sigma_r, sigma_a, rng,
                              vel["cyclist"])]}
    assert nf.fuse_nodes(places, far, height_m=1.0, gate_m=5.0) == []
    with pytest.raises(InputError, match="gate_m"):
        nf.fuse_nodes(places, far, height_m=1.0, gate_m=0.0)


def test_min_nodes_1_keeps_a_target_one_node_sees_with_a_consistent_covariance(rng: np.random.Generator) -> None:
    """fusion.min_nodes = 1: a target only one node sees is located from that node's range and array angle,
    mode ``single``; its errors are consistent with its covariance (NEES of a 2-D fix: mean 2)."""
    places = _places({"bs0": ((0.0, 0.0, 10.0), 0.0), "bs1": ((300.0, 300.0, 10.0), 180.0)})
    target = np.array([60.0, 50.0, 1.0])                     # 40 degrees off bs0's broadside, 78 m away
    sigma_r, sigma_a = 0.05, 0.01
    nees = []
    for _ in range(200):
        det = dataclasses.replace(_detection(np.array([0.0, 0.0, 10.0]), 0.0, target, sigma_r, sigma_a, rng,
                                             np.array([3.0, -2.0, 0.0])), angle_var_rad2=sigma_a**2)
        assert nf.fuse_nodes(places, {"bs0": [det], "bs1": []}, height_m=1.0, gate_m=5.0) == []   # default 2
        est = nf.fuse_nodes(places, {"bs0": [det], "bs1": []}, height_m=1.0, gate_m=5.0, min_nodes=1)
        assert len(est) == 1 and est[0].mode == "single" and est[0].nodes == ("bs0",)
        err = est[0].position_m[:2] - target[:2]
        nees.append(float(err @ np.linalg.solve(est[0].cov_position_m2[:2, :2], err)))
    assert 1.6 < np.mean(nees) < 2.5, np.mean(nees)          # chi-square(2): mean 2, sd of the mean 0.14
    for bad in (0, -1, 1.5, True, None):
        with pytest.raises(InputError, match=r"min_nodes = .*allowed an integer >= 1"):
            nf.fuse_nodes(places, {"bs0": [det]}, height_m=1.0, gate_m=5.0, min_nodes=bad)


def test_locate_robust_excludes_a_link_that_picked_a_noise_peak(rng: np.random.Generator) -> None:
    sigma = 0.05
    truth_r = np.linalg.norm(TARGET[None] - NODES, axis=1)
    links = [LinkMeasurement(i, i, float(truth_r[i] + sigma * rng.standard_normal()), 0.0, sigma**2, 1.0, 1.0)
             for i in range(4)]
    links[2] = dataclasses.replace(links[2], range_m=links[2].range_m + 180.0)      # a noise peak 180 m off
    plain, _ = nl.locate(NODES, links, TARGET[2])
    robust, _, kept = nl.locate_robust(NODES, links, TARGET[2])
    assert np.linalg.norm(plain - TARGET[:2]) > 10.0
    assert np.linalg.norm(robust - TARGET[:2]) < 5 * sigma
    assert [m.tx for m in kept] == [0, 1, 3]
    # with all four consistent, nothing is dropped
    good = [dataclasses.replace(m, range_m=float(truth_r[m.tx])) for m in links]
    assert len(nl.locate_robust(NODES, good, TARGET[2])[2]) == 4


def _bistatic_detections(tx: np.ndarray, rx: np.ndarray, targets: dict[str, np.ndarray],
                         velocities: dict[str, np.ndarray], clock_offset_s: float, cfo_mps: float, sigma_r: float,
                         rng: np.random.Generator) -> list[Detection]:
    """A passive node's detections: its line of sight and each target's echo, as c times the delay
    (its clock offset included) and the bistatic velocity (its carrier offset included)."""
    def det(range_m: float, rate: float, snr_db: float = 15.0) -> Detection:
        noisy_range = range_m + C * clock_offset_s + sigma_r * rng.standard_normal()
        return _record(noisy_range, rate + cfo_mps + 0.01 * rng.standard_normal(), None, sigma_r**2, snr_db,
                       "bistatic")

    out = [det(float(np.linalg.norm(tx - rx)), 0.0, 40.0)]
    for name, p in targets.items():
        u_tx, u_rx = (p - tx) / np.linalg.norm(p - tx), (p - rx) / np.linalg.norm(p - rx)
        out.append(det(float(np.linalg.norm(p - tx) + np.linalg.norm(p - rx)),
                       float((u_tx + u_rx) @ velocities[name])))
    return out


def test_fuse_nodes_adds_passive_range_sums_and_shrinks_the_covariance(rng: np.random.Generator) -> None:
    places = _places({"bs0": ((0.0, 0.0, 10.0), 0.0), "bs1": ((60.0, 30.0, 10.0), -105.0),
                      "rx1": ((10.0, -60.0, 5.0), 0.0), "rx2": ((20.0, 55.0, 5.0), 0.0)})
    targets = {"car": np.array([42.0, 10.0, 1.0]), "cyclist": np.array([65.0, -20.0, 1.0])}
    vel = {"car": np.array([-14.0, 2.0, 0.0]), "cyclist": np.array([5.0, 4.0, 0.0])}
    offsets = {"rx1": (3e-8, -2.5), "rx2": (-4.5e-8, 1.7)}          # clock offset s, CFO as m/s of Doppler
    sigma_r, sigma_a = 0.02, 0.005
    errs, traces, mono_traces = [], [], []
    for _ in range(100):
        dets = {n: [_detection(np.array(places[n].position_m), places[n].yaw_deg, targets[t], sigma_r, sigma_a,
                               rng, vel[t]) for t in ("cyclist", "car")] for n in ("bs0", "bs1")}
        for n, (offset, cfo) in offsets.items():
            dets[n] = _bistatic_detections(np.array(places["bs0"].position_m), np.array(places[n].position_m),
                                           targets, vel, offset, cfo, sigma_r, rng)
        est = nf.fuse_nodes(places, dets, height_m=1.0, gate_m=5.0, passive={"rx1": "bs0", "rx2": "bs0"})
        mono = nf.fuse_nodes(places, dets, height_m=1.0, gate_m=5.0)
        assert len(est) == 2 and all(sorted(e.nodes) == ["bs0", "bs1", "rx1", "rx2"] for e in est)
        for e in est:
            _check_planar(e, 1.0)
            assert sum(not m.monostatic for m in e.links) == 2             # one range sum per passive node
            name = min(targets, key=lambda t: np.linalg.norm(e.position_m[:2] - targets[t][:2]))
            errs.append(e.position_m[:2] - targets[name][:2])
            traces.append(np.trace(e.cov_position_m2))
            assert e.velocity_mps is not None and np.linalg.norm(e.velocity_mps[:2] - vel[name][:2]) < 0.1
            same = min(mono, key=lambda m: np.linalg.norm(m.position_m - e.position_m))
            mono_traces.append(np.trace(same.cov_position_m2))
    ratio = np.sqrt(np.mean(np.sum(np.square(errs), axis=1)) / np.mean(traces))
    assert ratio < 1.3, ratio
    assert np.mean(traces) < 0.7 * np.mean(mono_traces)


def test_passive_links_reference_the_line_of_sight() -> None:
    nodes = np.array([[0.0, 0.0, 5.0], [60.0, 0.0, 5.0]])
    bias = C * 5e-8                                                   # 15 m of clock offset
    dets = [_record(60.0 + bias, 2.0, None, 1e-4, 35.0, "bistatic"),
            _record(90.0 + bias, 5.0, None, 4e-4, 10.0, "bistatic", velocity_var_mps2=2e-4)]
    (link,) = fl.passive_links(nodes, 0, 1, dets)
    assert (link.tx, link.rx) == (0, 1)
    assert link.range_m == pytest.approx(90.0) and link.rate_mps == pytest.approx(3.0)
    assert link.var_range_m2 == pytest.approx(5e-4) and link.var_rate_mps2 == pytest.approx(3e-4)
    # no line of sight within the clock-offset window: no reference, no links
    assert fl.passive_links(nodes, 0, 1, dets, max_clock_offset_s=1e-8) == []
    with pytest.raises(InputError, match="max_clock_offset_s"):
        fl.passive_links(nodes, 0, 1, dets, max_clock_offset_s=-1.0)


def test_an_echo_near_the_baseline_stronger_than_the_direct_path_is_not_the_reference() -> None:
    """The line of sight is the earliest detection near the baseline, not the strongest: a target echo 12 m beyond
    it and 4 dB stronger (an antenna facing away from the transmitter) was taken for it, the direct path dropped
    as 'shorter than direct' and every range sum shifted by 12 m.  A noise detection 30 dB down is not taken."""
    nodes = np.array([[0.0, 0.0, 10.0], [100.0, 0.0, 10.0]])
    clock = 4.0                                                       # 13 ns of clock offset, in m
    dets = [_record(100.0 + clock, 0.0, None, 1e-4, 20.0, "bistatic"),
            _record(112.0 + clock, 6.0, None, 1e-4, 24.0, "bistatic"),
            _record(160.0 + clock, -3.0, None, 1e-4, 12.0, "bistatic"),
            _record(95.0 + clock, 1.0, None, 1e-4, -6.5, "bistatic")]   # earlier, but 30.5 dB below the strongest
    links = fl.passive_links(nodes, 0, 1, dets)
    assert [(round(m.range_m, 6), round(m.rate_mps, 6)) for m in links] == [(112.0, 6.0), (160.0, -3.0)]


def test_symbol_level_refine_reaches_the_range_crb_of_the_nodes(rng: np.random.Generator) -> None:
    """Three monostatic CIMs of one target at per-RE SNR 1: refinements from a start 0.5 m and 0.7 m/s off reach
    the position CRB of the nodes' range bounds (RMSE over 24 trials within its sampling spread of the bound)."""
    nodes, v = NODES[:3], np.array([8.0, -5.0])
    d = TARGET[None] - nodes
    r = np.linalg.norm(d, axis=1)
    taus, fds = 2.0 * r / C, -2.0 * (d[:, :2] @ v) / r * BAND.carrier_hz / C
    var_r = (C / 2.0) ** 2 * float(BAND.crb(1.0)[0, 0])
    h = measurement_matrix(nodes, TARGET)[:, :2]
    crb = np.linalg.inv(h.T @ h / var_r)
    errs = []
    for _ in range(24):
        cims = [_link([(float(t), float(f), 1.0)], rng) for t, f in zip(taus, fds, strict=True)]
        terms = nf.periodogram_terms([BAND] * 3, cims)
        at_truth = nf.periodogram_sum(terms, list(d), v)
        assert at_truth > nf.periodogram_sum(terms, list(d + [1.0, 0.0, 0.0]), v)   # 1 m off in x
        xy, vel = nf.symbol_level_refine([BAND] * 3, cims, nodes, TARGET[2], TARGET[:2] + [0.4, -0.3], v + 0.5,
                                         (0.1, 0.1))
        errs.append(xy - TARGET[:2])
    rmse = float(np.sqrt(np.mean(np.sum(np.square(errs), axis=1))))
    assert 0.6 < rmse / np.sqrt(np.trace(crb)) < 1.6, (rmse, np.sqrt(np.trace(crb)))


def test_periodogram_sum_derivatives_are_those_of_the_sum(rng: np.random.Generator) -> None:
    """The objective of the symbol-level refinement is smooth away from the nodes: its exact gradient and
    Hessian equal central differences of :func:`periodogram_sum` near the peak, far down its side, straight
    above a node (zero horizontal offset), at zero and at a large velocity."""
    nodes, v = NODES[:3].copy(), np.array([8.0, -5.0])
    d = TARGET[None] - nodes
    r = np.linalg.norm(d, axis=1)
    taus, fds = 2.0 * r / C, -2.0 * (d[:, :2] @ v) / r * BAND.carrier_hz / C
    cims = [_link([(float(t), float(f), 1.0)], rng) for t, f in zip(taus, fds, strict=True)]
    terms = nf.periodogram_terms([BAND] * 3, cims)

    def total(x: np.ndarray) -> float:
        p = np.array([x[0], x[1], TARGET[2]])
        return nf.periodogram_sum(terms, [p - b for b in nodes], x[2:])

    eps = np.array([1e-4, 1e-4, 1e-3, 1e-3])
    steps = np.diag(eps)
    states = [np.r_[TARGET[:2] + [0.03, -0.02], v + 0.1], np.r_[TARGET[:2] + [1.3, 0.7], v - 2.0],
              np.r_[nodes[0, :2], v], np.r_[TARGET[:2], 0.0, 0.0], np.r_[TARGET[:2], 300.0, -250.0]]
    for x in states:
        p = np.array([x[0], x[1], TARGET[2]])
        f, g, h = nf.periodogram_sum_derivatives(terms, [p - b for b in nodes], x[2:])
        assert f == pytest.approx(total(x), rel=1e-12)
        g_num = np.array([(total(x + e) - total(x - e)) / (2 * s) for e, s in zip(steps, eps, strict=True)])
        h_num = np.array([[(total(x + ei + ej) - total(x + ei - ej) - total(x - ei + ej) + total(x - ei - ej))
                           / (4 * si * sj) for ej, sj in zip(steps, eps, strict=True)]
                          for ei, si in zip(steps, eps, strict=True)])
        scale_g, scale_h = np.abs(g_num).max() + 1e-3 * f, np.abs(h_num).max()
        np.testing.assert_allclose(g, g_num, atol=1e-5 * scale_g)
        np.testing.assert_allclose(h, h_num, atol=1e-4 * scale_h)
        np.testing.assert_array_equal(h, h.T)


def test_symbol_level_refine_stops_at_a_maximum_of_the_objective(rng: np.random.Generator) -> None:
    """From a start 1 m and 1.5 m/s off, the refinement ends where the gradient of the summed periodograms
    vanishes and the Hessian is negative definite (a maximum, checked on the objective itself), above the
    value at the start and at the truth."""
    nodes, v = NODES[:3], np.array([8.0, -5.0])
    d = TARGET[None] - nodes
    r = np.linalg.norm(d, axis=1)
    taus, fds = 2.0 * r / C, -2.0 * (d[:, :2] @ v) / r * BAND.carrier_hz / C
    cims = [_link([(float(t), float(f), 3.0)], rng) for t, f in zip(taus, fds, strict=True)]
    terms = nf.periodogram_terms([BAND] * 3, cims)
    start_xy, start_v = TARGET[:2] + [0.8, -0.6], v + [1.0, 1.1]
    xy, vel = nf.symbol_level_refine([BAND] * 3, cims, nodes, TARGET[2], start_xy, start_v, (0.2, 0.2))
    p = np.array([xy[0], xy[1], TARGET[2]])
    f, g, h = nf.periodogram_sum_derivatives(terms, [p - b for b in nodes], vel)
    assert np.all(np.linalg.eigvalsh(h) < 0)
    # Newton step to the stationary point: well below a millimetre and a mm/s
    assert np.abs(np.linalg.solve(h, g)).max() < 1e-4
    p0 = np.array([*start_xy, TARGET[2]])
    assert f > nf.periodogram_sum(terms, [p0 - b for b in nodes], start_v)
    assert f >= nf.periodogram_sum(terms, list(d), v)
    assert np.linalg.norm(xy - TARGET[:2]) < 0.3


@pytest.mark.parametrize("flip", [False, True])
def test_a_target_on_a_node_s_array_axis_is_fused_from_either_end_of_the_axis(rng: np.random.Generator,
                                                                             flip: bool) -> None:
    """The urban grid's bs_b0 (yaw 180°: its array runs along the street x = 450 m) sees car2 on that street at
    endfire, where a half-wavelength array's phase step is ±pi and its sign is lost: the detection may say the
    other end of the axis (its own fix then lies 277 m north of the car).  The fix at the other end joins bs_b2's
    (45° off its broadside): one target at the truth, as with the right end (before, no target at all)."""
    places = _places({"bs_b0": ((450.0, 150.0, 20.0), 180.0), "bs_b2": ((450.0, 450.0, 20.0), -135.0)})
    target, velocity = np.array([450.0, 12.5, 1.0]), np.array([0.0, 12.5, 0.0])
    sigma_r, sigma_a = 0.05, 1e-3
    dets = {n: [dataclasses.replace(_detection(np.array(p.position_m), p.yaw_deg, target, sigma_r, sigma_a, rng,
                                               velocity), angle_var_rad2=sigma_a**2)] for n, p in places.items()}
    angle = dets["bs_b0"][0].angle_rad
    assert abs(angle) > nf.ENDFIRE_RAD           # 82°: on the axis, 19 m below the array
    if flip:          # the phase step u = pi sin(angle) wrapped by 2 pi: sin = sin(angle) - 2 sign, clipped at -1
        wrapped = float(np.arcsin(np.clip(np.sin(angle) - 2 * np.sign(angle), -1.0, 1.0)))
        dets["bs_b0"] = [dataclasses.replace(dets["bs_b0"][0], angle_rad=wrapped)]
    est = nf.fuse_nodes(places, dets, height_m=1.0, gate_m=5.0)
    # within 3 m: across the axis the endfire angle hardly locates (a 1e-3 rad error moves b0's fix 1.5 m)
    near = [e for e in est if np.linalg.norm(e.position_m[:2] - target[:2]) < 3.0]
    assert len(near) == 1 and "bs_b0" in near[0].nodes, [(e.position_m, e.nodes) for e in est]
    assert len(est) == 1                                 # and no estimate at the other end


def test_a_velocity_the_links_hardly_determine_is_left_out(rng: np.random.Generator,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """An estimate carries the fused velocity only where its standard deviation is within MAX_VELOCITY_STD_MPS in
    every direction (the velocity solve is replaced here by one that returns the given covariance)."""
    places = _places({"bs0": ((0.0, 0.0, 10.0), 0.0), "bs1": ((60.0, 30.0, 10.0), -105.0)})
    target, velocity = np.array([42.0, 10.0, 1.0]), np.array([-14.0, 2.0, 0.0])
    dets = {n: [_detection(np.array(p.position_m), p.yaw_deg, target, 0.02, 0.005, rng, velocity)]
            for n, p in places.items()}
    for std_mps, kept in ((nf.MAX_VELOCITY_STD_MPS * 0.99, True), (nf.MAX_VELOCITY_STD_MPS * 1.01, False),
                          (1e6, False)):
        cov = np.diag([1.0, std_mps**2])
        monkeypatch.setattr(nf, "velocity_with_cross",
                            lambda *args, cov=cov: (velocity[:2].copy(), cov, np.zeros((2, 2))))
        (est,) = nf.fuse_nodes(places, dets, height_m=1.0, gate_m=5.0)
        assert (est.velocity_mps is not None) == kept, std_mps


def test_a_target_on_the_line_through_two_stations_does_not_lose_the_set() -> None:
    """A car on the street through two base stations, a receive-only node beside it: the range sums are gated
    at the cluster's position, whose two ranges alone are rank 1 there; locate's SensingError lost every target
    of the set (the bike too).  Now the nodes' own fixes place the cluster and both targets come out."""
    places = {"bs0": NodePlace("bs0", (0.0, 0.0, 10.0), 90.0), "bs1": NodePlace("bs1", (100.0, 0.0, 10.0), 90.0),
              "rx": NodePlace("rx", (50.0, 80.0, 10.0), 0.0, role="rx", transmits=False)}

    def mono(node: tuple[float, float, float], yaw: float, target: np.ndarray, vel: np.ndarray) -> Detection:
        b = np.array(node)
        d = target - b
        r = float(np.linalg.norm(d))
        ang = float(np.arcsin(d @ np.array([-np.sin(np.deg2rad(yaw)), np.cos(np.deg2rad(yaw)), 0.0]) / r))
        return Detection(r, float(d @ vel / r), 0.0, 2 * r / C, 20.0, "monostatic", ang, 0.01, 0.01, 1e-4, 20.0)

    car, bike = np.array([30.0, 0.0, 1.0]), np.array([60.0, 40.0, 1.0])
    moves = ((car, np.array([12.0, 0.0, 0.0])), (bike, np.array([0.0, 3.0, 0.0])))
    dets = {n: [mono(places[n].position_m, places[n].yaw_deg, t, v) for t, v in moves] for n in ("bs0", "bs1")}
    tx, rx = np.array(places["bs0"].position_m), np.array(places["rx"].position_m)
    baseline = float(np.linalg.norm(tx - rx))
    dets["rx"] = [Detection(baseline, 0, 0, baseline / C, 40.0, "bistatic", None, 0.01, 0.01, None, 40.0)] + [
        Detection(float(np.linalg.norm(t - tx) + np.linalg.norm(t - rx)), 0, 0, 0, 15.0, "bistatic", None, 0.01,
                  0.01, None, 15.0) for t in (car, bike)]
    out = nf.fuse_nodes(places, dets, height_m=1.0, passive={"rx": "bs0"})
    found = sorted((tuple(np.round(e.position_m[:2], 1)), e.nodes) for e in out)
    assert found == [((30.0, 0.0), ("bs0", "bs1", "rx")), ((60.0, 40.0), ("bs0", "bs1", "rx"))]


def test_the_range_sum_gate_allows_for_the_uncertainty_of_the_position_it_is_gated_at() -> None:
    """One BS and a receive-only node: the range sum was gated at the BS's own range + angle fix with a slack of
    gate_m only, so a fix 8 m off across the line of sight (0.05 rad at 160 m) refused the true range sum in half
    the trials, and with min_nodes = 2 the target was lost.  The gate now adds the fix's covariance along the
    range sum's gradient."""
    bs, rx = np.array([0.0, 0.0, 10.0]), np.array([0.0, 200.0, 10.0])
    target, vel = np.array([150.0, 60.0, 1.5]), np.array([5.0, 3.0, 0.0])
    places = {"bs": NodePlace("bs", tuple(bs), 0.0), "rx": NodePlace("rx", tuple(rx), 0.0, role="rx",
                                                                    transmits=False)}
    rng = np.random.default_rng(3)
    sigma_r, sigma_a = 0.05, 0.05
    d = target - bs
    r = float(np.linalg.norm(d))
    baseline = float(np.linalg.norm(rx - bs))
    s = r + float(np.linalg.norm(target - rx))
    joined = 0
    for _ in range(60):
        mono = Detection(r + sigma_r * rng.standard_normal(), float(d @ vel / r), 0.0, 2 * r / C, 25.0, "monostatic",
                         float(np.arcsin(d[1] / r)) + sigma_a * rng.standard_normal(), sigma_r**2, sigma_r**2,
                         sigma_a**2, 25.0)
        los = Detection(baseline, 0.0, 0.0, baseline / C, 40.0, "bistatic", None, 0.01, 0.01, None, 40.0)
        echo = Detection(s + 0.1 * rng.standard_normal(), 0.0, 0.0, s / C, 15.0, "bistatic", None, 0.01, 0.01, None,
                         15.0)
        est = nf.fuse_nodes(places, {"bs": [mono], "rx": [los, echo]}, height_m=1.5, passive={"rx": "bs"})
        joined += bool(est) and "rx" in est[0].nodes
    assert joined >= 58


def test_fused_position_and_velocity_are_consistent_as_one_state(rng: np.random.Generator) -> None:
    """Two stations 40 m apart, a car 120 m ahead: the velocity across their lines of sight rests on the
    directions at the fused position, so its error follows the position's (correlation -0.6 between y and
    v_x).  The estimate's joint covariance (with ``cov_position_velocity_m2ps``) is consistent: 4-D NEES
    mean 4, and NEES 1 along the joint state's most and least affected directions, where the block-diagonal
    covariance gives 0.36 and 1.6 (overconfident along one)."""
    import scipy.linalg

    places = _places({"bs0": ((0.0, 0.0, 10.0), 0.0), "bs1": ((0.0, 40.0, 10.0), 0.0)})
    target, vel = np.array([120.0, 20.0, 1.0]), np.array([-8.0, 3.0, 0.0])
    errors, covs = [], []
    for _ in range(400):
        dets = {n: [_detection(np.array(p.position_m), p.yaw_deg, target, 0.05, 0.01, rng, vel)]
                for n, p in places.items()}
        (est,) = nf.fuse_nodes(places, dets, height_m=1.0, gate_m=5.0)
        assert est.velocity_mps is not None and est.cov_position_velocity_m2ps is not None
        errors.append(np.r_[est.position_m[:2] - target[:2], est.velocity_mps[:2] - vel[:2]])
        covs.append(est.covariance[np.ix_([0, 1, 3, 4], [0, 1, 3, 4])])
    err, joint = np.array(errors), np.array(covs)
    nees = np.einsum("ni,ni->n", err, np.linalg.solve(joint, err[:, :, None])[:, :, 0])
    assert 3.6 < nees.mean() < 4.4, nees.mean()                  # chi-square(4) over 400: sd of the mean 0.14
    block = joint * np.kron(np.eye(2), np.ones((2, 2)))
    _, directions = scipy.linalg.eigh(joint.mean(axis=0), block.mean(axis=0))
    for d, low, high in ((directions[:, 0], 0.15, 0.6), (directions[:, -1], 1.3, 2.0)):
        along = np.mean((err @ d) ** 2 / np.einsum("i,nij,j->n", d, joint, d))
        along_block = np.mean((err @ d) ** 2 / np.einsum("i,nij,j->n", d, block, d))
        assert 0.8 < along < 1.2, along                           # chi-square(1) over 400: sd of the mean 0.07
        assert low < along_block < high, along_block


def test_a_single_fix_carries_the_spread_of_the_target_height() -> None:
    """One node (the urban AP: 6 m up, facing -y) sees a UAV 60 m up while targets are located at 1 m: its fix is
    some 35 m off.  With the height known (the default) its covariance claims a few metres; with
    ``var_height_m2`` (fusion.target_height_std_m = 30 m, squared) the estimate's covariance holds the error
    (position and height), whose height part is the given spread."""
    place = NodePlace("ap0", (150.0, 150.0, 6.0), -90.0)
    uav = np.array([80.0, 133.3, 60.0])
    d = uav - np.array(place.position_m)
    r = float(np.linalg.norm(d))
    axis = np.array([np.sin(np.deg2rad(-90.0)), -np.cos(np.deg2rad(-90.0)), 0.0])     # the array's axis
    angle = -float(np.arcsin(d @ axis / r))                                          # from broadside
    det = Detection(r, 0.0, 0.0, 2 * r / C, 20.0, "monostatic", angle, 0.04, 0.01, 1e-4, 30.0)
    known, spread = (nf.fuse_nodes({"ap0": place}, {"ap0": [det]}, 1.0, min_nodes=1, var_height_m2=v)[0]
                     for v in (0.0, 30.0**2))
    assert known.mode == spread.mode == "single"
    np.testing.assert_allclose(known.position_m[:2], spread.position_m[:2])
    error = known.position_m - np.array([*uav[:2], 1.0])
    assert float(np.linalg.norm(error[:2])) > 20.0                                   # the height's doing
    assert float(error[:2] @ np.linalg.solve(known.cov_position_m2[:2, :2], error[:2])) > 100.0
    # horizontally within 3 standard deviations (5.3 here: the UAV is 2 spreads up, and the fix bends with the
    # height: its slope at 1 m, below the node, has the other sign than at 60 m, so no cross term helps)
    truth_error = spread.position_m[:2] - uav[:2]
    assert float(truth_error @ np.linalg.solve(spread.cov_position_m2[:2, :2], truth_error)) < 3.0**2
    assert spread.cov_position_m2[2, 2] == pytest.approx(900.0)
    assert np.all(np.linalg.eigvalsh(spread.cov_position_m2) > 0)
