"""Macro-micro cooperation: the mode switch against link-budget radii, the fusion against the CRB with offset frames."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as sp_opt

from sdr_isac.channel.cim import add_cim_noise, point_target_cim
from sdr_isac.errors import InputError
from sdr_isac.fusion import hybrid
from sdr_isac.fusion.modes import macro_micro
from sdr_isac.fusion.multiband import Band, pilot_mask
from sdr_isac.sensing.crb import snr_per_re_db
from sdr_isac.units import SPEED_OF_LIGHT_MPS as C
from tests.fusion.modes.test_multi_bs import _detection, _places

MICROS = np.array([[0.0, 0.0, 10.0], [150.0, 0.0, 10.0]])
MACRO = np.array([-250.0, -100.0, 30.0])
MICRO_BAND = Band("micro", 24e9, 120e3, 1.33e-6, pilot_mask(28, 256, symbol_step=2))
MACRO_BAND = Band("macro", 5.9e9, 30e3, 5.975e-6, pilot_mask(28, 256, symbol_step=2))
TARGET = np.array([-40.0, 50.0, 20.0])
VELOCITY = np.array([12.0, -8.0, 0.0])


def _micro_radius() -> float:
    """Where the micro BS's echo after the 14 x 256 processing gain falls to 13 dB (radar equation, bisection)."""
    def margin(r: float) -> float:
        snr = snr_per_re_db(30.0, 20.0, 20.0, 24e9, 0.01, r, r, 7.0, 256 * 120e3, 256, 256) - 16.0
        return snr + 10 * np.log10(14 * 256) - 13.0
    return float(sp_opt.brentq(margin, 1.0, 1e5))


def test_mode_switch_picks_macro_micro_exactly_outside_the_shared_micro_coverage() -> None:
    r = _micro_radius()
    half = np.sqrt(r**2 - 75.0**2 - 10.0**2)            # the lens between the two micro BSs, at height 20 m
    assert macro_micro.select_mode([75.0, 0.0, 20.0], MICROS, [r, r]) == macro_micro.ModeDecision("micro", (0, 1))
    assert macro_micro.select_mode([75.0, 0.98 * half, 20.0], MICROS, [r, r]).mode == "micro"
    assert macro_micro.select_mode([75.0, 1.02 * half, 20.0], MICROS, [r, r]).mode == "macro_micro"
    assert macro_micro.select_mode(TARGET, MICROS, [r, r]) == macro_micro.ModeDecision("macro_micro", (0,))
    assert macro_micro.select_mode([0.0, 5 * r, 20.0], MICROS, [r, r]) == macro_micro.ModeDecision("macro_micro", ())


def test_covering_rejects_bad_radius() -> None:
    with pytest.raises(InputError, match="radii_m"):
        macro_micro.covering(TARGET, MICROS, [0.0, 10.0])


def _node(band: Band, node: np.ndarray, p: np.ndarray, snr: float, rng: np.random.Generator,
          t0: float = 0.0) -> np.ndarray:
    q = p + VELOCITY * t0
    d = q - node
    r = float(np.linalg.norm(d))
    fd = -2 * float(d @ VELOCITY) / r * band.carrier_hz / C
    amp = np.sqrt(snr) * np.exp(2j * np.pi * rng.random())
    h = point_target_cim(np.arange(256), band.symbol_times_s, band.subcarrier_spacing_hz, [2 * r / C], [fd], [amp])
    return add_cim_noise(h, 1.0, rng, band.pilots)


def test_fusion_with_offset_frames_follows_the_crb(rng: np.random.Generator) -> None:
    """The macro frame starts 50 ms late (the target moves 0.72 m): modelled, the fused position follows its CRB;
    treating the frames as simultaneous leaves an error of several CRBs."""
    offset = 50e-3
    r = _micro_radius()
    snr_micro, snr_macro = 10.0, 3.0
    angle_var = 1e-4
    errs, errs_naive = [], []
    for _ in range(40):
        h0 = _node(MICRO_BAND, MICROS[0], TARGET, snr_micro, rng)
        hm = _node(MACRO_BAND, MACRO, TARGET, snr_macro, rng, offset)
        cone = float(np.arcsin((TARGET - MICROS[0]) @ np.array([1.0, 0, 0]) / np.linalg.norm(TARGET - MICROS[0])))
        ang = hybrid.AngleMeasurement(0, (1.0, 0.0), cone + rng.normal(0, np.sqrt(angle_var)), angle_var)
        macro = macro_micro.NodeCim(MACRO, MACRO_BAND, hm, offset)
        micros = [macro_micro.NodeCim(MICROS[0], MICRO_BAND, h0), macro_micro.NodeCim(MICROS[1], MICRO_BAND, h0)]
        start = np.array([TARGET[0] + 0.3, TARGET[1] - 0.3, 0.0, 0.0])
        mode, est = macro_micro.fuse_sites(macro, micros, [r, r], TARGET, 20.0, start, [ang])
        assert mode.mode == "macro_micro"
        errs.append(est.xy_m - TARGET[:2])
        _, naive = macro_micro.fuse_sites(macro, micros, [r, r], TARGET, 20.0, start, [ang], symbol_level=False,
                                          model_frame_times=False)
        errs_naive.append(naive.xy_m - TARGET[:2])
    v0, w0 = np.diag(MICRO_BAND.crb(snr_micro)) * (C / 2) ** 2
    v1, w1 = np.diag(MACRO_BAND.crb(snr_macro)) * (C / 2) ** 2
    crb = hybrid.crb(np.stack([MACRO, MICROS[0]]), TARGET, VELOCITY, [(0, 0), (1, 1)], [v1, v0], [w1, w0],
                     [(1, (1.0, 0.0), angle_var)], [offset, 0.0])
    bound = np.sqrt(np.trace(crb[:2, :2]))
    rmse = np.sqrt(np.mean(np.sum(np.array(errs) ** 2, axis=1)))
    rmse_naive = np.sqrt(np.mean(np.sum(np.array(errs_naive) ** 2, axis=1)))
    assert rmse <= 1.3 * bound
    assert rmse_naive > 3 * bound


def test_fuse_macro_micro_switches_mode_by_which_micro_bss_detect(rng: np.random.Generator) -> None:
    places = _places({"micro1": ((100.0, -40.0, 8.0), 90.0), "micro2": ((100.0, 40.0, 8.0), -90.0),
                      "macro0": ((0.0, 0.0, 25.0), 0.0)})
    targets = {"car": np.array([112.0, 5.0, 1.5]), "truck": np.array([130.0, -35.0, 1.5]),
               "bus": np.array([60.0, 80.0, 1.5])}
    seen_by = {"micro1": ("car", "truck"), "micro2": ("car",), "macro0": ("car", "truck", "bus")}
    sigma = {"micro1": (0.01, 0.005), "micro2": (0.01, 0.005), "macro0": (0.05, 0.01)}
    v = np.array([1.0, 2.0, 0.0])
    dets = {n: [_detection(np.array(places[n].position_m), places[n].yaw_deg, targets[t], *sigma[n], rng, v)
                for t in seen] for n, seen in seen_by.items()}
    est = macro_micro.fuse_macro_micro(places, dets, ["macro0"], height_m=1.5, gate_m=5.0)
    by_target = {min(targets, key=lambda t: np.linalg.norm(e.position_m[:2] - targets[t][:2])): e for e in est}
    assert set(by_target) == {"car", "truck"} and len(est) == 2      # the bus: the macro alone, nothing to fuse
    assert by_target["car"].mode == "micro" and sorted(by_target["car"].nodes) == ["micro1", "micro2"]
    assert by_target["truck"].mode == "macro_micro"
    assert sorted(by_target["truck"].nodes) == ["macro0", "micro1"]
    for name, e in by_target.items():
        assert e.position_m[2] == 1.5 and e.cov_position_m2[2, 2] == 0.0
        assert len(e.links) == len(e.nodes) and all(m.monostatic for m in e.links)
        error = np.linalg.norm(e.position_m[:2] - targets[name][:2])
        assert error < 5 * np.sqrt(np.trace(e.cov_position_m2)), (name, error)
    # without macro BSs every target of two or more nodes is fused from its micro BSs
    assert all(e.mode == "micro" for e in macro_micro.fuse_macro_micro(places, dets, [], height_m=1.5))
