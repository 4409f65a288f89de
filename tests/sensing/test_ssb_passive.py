"""Passive bistatic sensing on a gNB's SS/PBCH blocks, without the PBCH payload or the data.

A receive-only node knows, after cell search, the PSS, SSS and PBCH DMRS of the cell (and the PDSCH DMRS when
configured): those REs are its pilots; the PBCH payload and the data are masked out.  The library
(:func:`sdr_isac.fusion.links.passive_grid`, :func:`~sdr_isac.fusion.links.passive_paths`,
:func:`~sdr_isac.fusion.links.passive_ssb_paths`) estimates the channel there (H = Y / X), finds the line of sight and
the echo with the package's one estimator (:func:`sdr_isac.sensing.estimate.estimate_paths`: CLEAN from the
periodogram peak, Newton refinement, RELAX) and references the echo to the line of sight, whose length L it knows:
S = L + c (tau_e - tau_d), S' = -c (f_e - f_d) / f_c (clock offset and CFO cancel;
:func:`~sdr_isac.fusion.links.bistatic_measurement`).  Accuracy is judged against the CRB of that sparse mask computed
here from the truth's SNRs (:func:`sdr_isac.sensing.crb.delay_doppler_crb`), the variances of both paths added.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sdr_isac import config, radio
from sdr_isac.channel.cim import bistatic_link_cim
from sdr_isac.fusion.links import (
    SSB_SIGNALS,
    PassiveGrid,
    bistatic_measurement,
    passive_grid,
    passive_paths,
    passive_ssb_measurement,
    passive_ssb_paths,
)
from sdr_isac.sensing.crb import delay_doppler_crb
from sdr_isac.units import SPEED_OF_LIGHT_MPS as C
from sdr_isac.waveform import IsacFrame, Signal
from sdr_isac.waveform.ssb import ssb_blocks, ssb_subcarrier_offset

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "hw_configs" / "sim_ssb_passive.toml"
KNOWN = SSB_SIGNALS


def bistatic(grid: PassiveGrid, baseline_m: float, h: np.ndarray, noise_var: float = 1.0) -> tuple[float, float]:
    """Range sum and rate of the later of the two paths the library finds, against the earlier one."""
    direct, echo = passive_paths(grid, h, 2, noise_var)
    link = bistatic_measurement(0, 1, baseline_m, direct, echo)
    return link.range_m, link.rate_mps


def crb_range_sum_rate(grid: PassiveGrid, snr_echo: float, snr_direct: float) -> tuple[float, float]:
    """Variances (m², (m/s)²) of S and S': both paths' single-path CRBs on the mask, added."""
    bound = sum(delay_doppler_crb(s, grid.pilots, grid.subcarrier_spacing_hz, grid.symbol_times_s)
                for s in (snr_echo, snr_direct))
    return C**2 * float(bound[0, 0]), (C / grid.carrier_hz) ** 2 * float(bound[1, 1])


@pytest.fixture(scope="module")
def cfg():
    return config.load(CONFIG)


@pytest.fixture(scope="module")
def frame(cfg):
    return IsacFrame(cfg.frame)


def test_the_passive_mask_holds_only_what_a_receiver_knows(frame):
    grid = passive_grid(frame)
    owner = frame.grid.owner[np.ix_(grid.rows, grid.cols)]
    assert set(np.unique(owner[grid.pilots]).tolist()) == {Signal.SSB_PSS, Signal.SSB_SSS, Signal.PBCH_DMRS}
    blocks = ssb_blocks(frame.config)
    assert np.count_nonzero(grid.pilots) == blocks.indices.size * (127 + 127 + 144)
    k0 = ssb_subcarrier_offset(frame.config)
    assert grid.cols[0] >= k0 and grid.cols[-1] < k0 + 240                # the SS/PBCH block's subcarriers only


@pytest.mark.parametrize("signals", [KNOWN, KNOWN + ("dmrs",)], ids=["ssb", "ssb+pdsch-dmrs"])
def test_range_sum_and_velocity_rmse_on_the_crb(frame, signals):
    """20 seeds of a synthesised bistatic CIM on the pilots: RMSE within 1.5 sqrt(CRB), every trial within 4."""
    grid = passive_grid(frame, signals)
    baseline, range_sum, rate = 60.0, 258.8, 28.1
    snr_echo, direct_db = 10 ** (3 / 10), 20.0
    errors = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        h = bistatic_link_cim(grid, baseline, range_sum, rate, snr_echo, rng, direct_over_echo_db=direct_db,
                              clock_s=2e-8, cfo_hz=700.0)
        s, s_rate = bistatic(grid, baseline, h)
        errors.append((s - range_sum, s_rate - rate))
    err = np.asarray(errors)
    var_s, var_rate = crb_range_sum_rate(grid, snr_echo, snr_echo * 10 ** (direct_db / 10))
    rmse = np.sqrt(np.mean(err**2, axis=0))
    assert rmse[0] < 1.5 * math.sqrt(var_s), (rmse, math.sqrt(var_s))
    assert rmse[1] < 1.5 * math.sqrt(var_rate), (rmse, math.sqrt(var_rate))
    assert np.all(np.abs(err[:, 0]) < 4 * math.sqrt(var_s)) and np.all(np.abs(err[:, 1]) < 4 * math.sqrt(var_rate))


def test_pdsch_dmrs_tightens_the_bound(frame):
    ssb, both = passive_grid(frame), passive_grid(frame, KNOWN + ("dmrs",))
    var_ssb, var_both = crb_range_sum_rate(ssb, 1.0, 100.0), crb_range_sum_rate(both, 1.0, 100.0)
    assert var_both[0] < var_ssb[0] and var_both[1] < var_ssb[1]


@pytest.mark.parametrize("signals", [KNOWN, KNOWN + ("dmrs",)], ids=["ssb", "ssb+pdsch-dmrs"])
def test_receive_only_node_senses_the_car_from_ssb_bursts_in_the_simulated_scene(cfg, frame, signals):
    """hw_configs/sim_ssb_passive.toml end to end through the library: simulated radio, cell search, CFO, H on the
    known REs, two paths, the range sum and rate of the car within 3 sqrt(CRB) of the scene's truth."""
    with radio.open_radio(cfg) as rx:
        capture = rx.rx(frame.num_samples + 2048)
    truth = {p["kind"]: p for p in capture.metadata["truth"]["paths"]}
    found = passive_ssb_paths(capture, frame, signals)
    assert found.cell.n_cell_id == cfg.frame.ssb.n_cell_id
    assert abs(found.frame_start - truth["los"]["delay_samples"]) < 2                # frame timing from the PSS
    assert abs(found.cfo_hz - 700.0) < 5.0                                          # the node's cfo_hz
    (link,) = passive_ssb_measurement(capture, frame, 60.0, signals=signals)
    # captures are scaled to unit noise per sample, hence per RE: the truth's SNR per RE is the amplitude squared
    var_s, var_rate = crb_range_sum_rate(found.grid, 10 ** (truth["target"]["snr_per_re_db"] / 10),
                                         10 ** (truth["los"]["snr_per_re_db"] / 10))
    # the simulated scene holds each path's delay over a capture (sdr_isac/channel/echo.py: the delay at the
    # window's start, the Doppler as a phase ramp), so the range sum to meet is the truth's at the capture's start
    expected = truth["target"]["range_sum_m"]
    assert abs(link.range_m - expected) < 3 * math.sqrt(var_s), (link.range_m, expected, math.sqrt(var_s))
    assert abs(link.rate_mps - truth["target"]["bistatic_velocity_mps"]) < 3 * math.sqrt(var_rate), \
        (link.rate_mps, truth["target"], math.sqrt(var_rate))
    # the reported variances come from the estimated SNR: within a factor 2 of the truth's bound
    assert 0.5 < link.var_range_m2 / var_s < 2.0 and 0.5 < link.var_rate_mps2 / var_rate < 2.0
