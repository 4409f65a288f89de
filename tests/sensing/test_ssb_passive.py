"""Passive bistatic sensing on a gNB's SS/PBCH blocks, without the PBCH payload or the data.

A receive-only node knows, after cell search, the PSS, SSS and PBCH DMRS of the cell (and the PDSCH DMRS when
configured): those REs are its pilots; the PBCH payload and the data are masked out.  It estimates the channel
there (H = Y / X), finds the line of sight and the echo with the package's one estimator
(:func:`sdr_isac.sensing.estimate.estimate_paths`: CLEAN from the periodogram peak, Newton refinement, RELAX)
and references the echo to the line of sight, whose length L it knows: S = L + c (tau_e - tau_d),
S' = -c (f_e - f_d) / f_c (clock offset and CFO cancel).  Accuracy is judged against the CRB of that sparse
mask (:func:`sdr_isac.sensing.crb.delay_doppler_crb`), the variances of both paths added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from sdr_isac import config, radio
from sdr_isac.channel.cim import bistatic_link_cim
from sdr_isac.fusion.resource import delay_doppler_power
from sdr_isac.sensing.crb import delay_doppler_crb, delay_doppler_fim
from sdr_isac.sensing.estimate import estimate_paths, grid_peak, resolvable_steps
from sdr_isac.units import SPEED_OF_LIGHT_MPS as C
from sdr_isac.waveform import IsacFrame, Signal
from sdr_isac.waveform.ssb import cell_search, ssb_blocks, ssb_first_bin, ssb_subcarrier_offset

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "hw_configs" / "sim_ssb_passive.toml"
KNOWN = ("ssb_pss", "ssb_sss", "pbch_dmrs")
_OVERSAMPLE = 2
_ADVANCE = 8            # samples the FFT window starts early inside the CP: the line of sight at a positive delay


@dataclass(frozen=True)
class PassiveGrid:
    """The passive node's pilots: the known REs cropped to the symbols and subcarriers that hold any
    (a :class:`sdr_isac.channel.cim.PilotGrid`)."""

    carrier_hz: float
    subcarrier_spacing_hz: float
    symbol_times_s: NDArray[np.float64]
    pilots: NDArray[np.bool_]
    rows: NDArray[np.int64]
    cols: NDArray[np.int64]

    @property
    def num_subcarriers(self) -> int:
        return int(self.pilots.shape[1])


def passive_grid(frame: IsacFrame, signals: tuple[str, ...] = KNOWN) -> PassiveGrid:
    mask = frame.known_mask(*signals) & (np.abs(frame.grid.values.sum(axis=0)) > 0)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    cols = np.arange(cols[0], cols[-1] + 1)                        # keep the subcarriers contiguous
    times = (frame.symbol_starts + frame.cp_lengths).astype(float) / frame.sample_rate_hz
    cfg = frame.config
    return PassiveGrid(cfg.carrier_hz, cfg.subcarrier_spacing_hz, times[rows], mask[np.ix_(rows, cols)], rows, cols)


def two_paths(grid: PassiveGrid, h: NDArray[np.complexfloating], noise_var: float = 1.0):
    """Line of sight and echo (in that order of delay) by the package's estimator on the grid's pilots."""
    df, t, m = grid.subcarrier_spacing_hz, grid.symbol_times_s, grid.pilots
    num_rows = int(np.rint((t[-1] - t[0]) / np.min(np.diff(t)))) + 1
    n_delay, n_dopp = _OVERSAMPLE * m.shape[1], _OVERSAMPLE * num_rows
    delay_axis = np.arange(n_delay) / (n_delay * df)
    dopp_axis = (np.arange(n_dopp) - n_dopp // 2) / (n_dopp * np.min(np.diff(t)))
    limit = 1.0 / (resolvable_steps([m])[1] * df)

    def peak(residual: NDArray[np.complex128]) -> tuple[float, float]:
        power = delay_doppler_power(residual[0], t, m, _OVERSAMPLE)
        i, j = grid_peak(power, delay_axis, dopp_axis, limit)
        return float(delay_axis[i]), float(dopp_axis[j])

    k_hz = np.arange(m.shape[1]) * df
    fim = delay_doppler_fim(1.0, m, df, t)
    paths = estimate_paths(np.where(m, h, 0)[None], m, k_hz, t, [noise_var], fim[None], 2, peak,
                           (delay_axis[1], dopp_axis[1] - dopp_axis[0]))
    return sorted(paths, key=lambda p: p.delay_s)


def bistatic(grid: PassiveGrid, baseline_m: float, paths) -> tuple[float, float]:
    direct, echo = paths
    return (baseline_m + C * (echo.delay_s - direct.delay_s),
            -C * (echo.doppler - direct.doppler) / grid.carrier_hz)


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
        s, s_rate = bistatic(grid, baseline, two_paths(grid, h))
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


def test_receive_only_node_senses_the_car_from_ssb_bursts_in_the_simulated_scene(cfg, frame):
    """hw_configs/sim_ssb_passive.toml end to end: simulated radio, cell search, H on the SSB REs, two paths."""
    with radio.open_radio(cfg) as rx:
        capture = rx.rx(frame.num_samples + 2048)
    truth = {p["kind"]: p for p in capture.metadata["truth"]["paths"]}
    fc = cfg.frame
    found = cell_search(capture.iq, fc.fft_size, int(frame.cp_lengths[2]), fc.sample_rate_hz, ssb_first_bin(fc))
    assert found.n_cell_id == fc.ssb.n_cell_id
    blocks = ssb_blocks(fc)
    start = found.ssb_start - int(frame.symbol_starts[blocks.first_symbols[list(blocks.indices).index(found.i_ssb_bar)]])
    assert abs(start - truth["los"]["delay_samples"]) < 2                 # frame timing from the PSS
    n = np.arange(capture.iq.shape[1])
    iq = capture.iq * np.exp(-2j * np.pi * found.cfo_hz * n / fc.sample_rate_hz)
    # the transmission is cyclic: a window starting before the capture takes those samples one period later
    # (they fall in the first symbol's CP, which the demodulator drops)
    index = start - _ADVANCE + np.arange(frame.num_samples)
    index[index < 0] += frame.num_samples
    y = frame.ofdm.demodulate(iq[:, index])[0]
    grid = passive_grid(frame)
    x = frame.grid.values.sum(axis=0)[np.ix_(grid.rows, grid.cols)]
    h = np.where(grid.pilots, y[np.ix_(grid.rows, grid.cols)] / np.where(grid.pilots, x, 1), 0)
    paths = two_paths(grid, h)
    s, s_rate = bistatic(grid, 60.0, paths)
    # captures are scaled to unit noise per sample, hence per RE: the truth's SNR per RE is the amplitude squared
    var_s, var_rate = crb_range_sum_rate(grid, 10 ** (truth["target"]["snr_per_re_db"] / 10),
                                         10 ** (truth["los"]["snr_per_re_db"] / 10))
    # the truth is at the capture's start; the car moves on, and a constant-delay fit measures the range sum at
    # the centroid of the pilots' times (0.9 ms here: 2.6 cm at 28 m/s, half a standard deviation)
    centroid_s = float(np.sum(grid.pilots.sum(axis=1) * grid.symbol_times_s) / np.count_nonzero(grid.pilots))
    expected = truth["target"]["range_sum_m"] + truth["target"]["bistatic_velocity_mps"] * centroid_s
    assert abs(s - expected) < 3 * math.sqrt(var_s), (s, expected, math.sqrt(var_s))
    assert abs(s_rate - truth["target"]["bistatic_velocity_mps"]) < 3 * math.sqrt(var_rate), \
        (s_rate, truth["target"], math.sqrt(var_rate))
