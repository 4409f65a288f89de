"""Communication receiver: channel estimation, equalisation and BER through the whole OFDM chain."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import erfc

from sdr_isac import config
from sdr_isac.channel import add_awgn, apply_taps, noise_var_for_snr
from sdr_isac.config import DataConfig, DmrsConfig, FrameConfig
from sdr_isac.errors import InputError
from sdr_isac.waveform import IsacFrame
from sdr_isac.waveform.grid import Signal
from sdr_isac.waveform.receiver import CommReceiver, interpolation_matrix


def q_func(x: float) -> float:
    return 0.5 * float(erfc(x / math.sqrt(2.0)))


def theory_ber(scheme: str, esn0_db: float) -> float:
    """Closed-form Gray BER over AWGN at Es/N0 (see test_sequences_modulation for the 16-QAM terms)."""
    es = 10 ** (esn0_db / 10)
    if scheme == "qpsk":
        return q_func(math.sqrt(es))                 # Eb/N0 = Es/N0 / 2, BER = Q(sqrt(2 Eb/N0))
    a = math.sqrt(es / 5)                            # 16-QAM: a**2 = 4 Eb / (5 N0) = Es / (5 N0)
    return 0.25 * (3 * q_func(a) + 2 * q_func(3 * a) - q_func(5 * a))


def test_interpolation_matrix_is_linear_and_held():
    w = interpolation_matrix([1.0, 3.0], [0.0, 1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(w @ np.array([10.0, 30.0]), [10, 10, 20, 30, 30])


def test_noiseless_link_is_perfect():
    frame = IsacFrame(config.default().frame)
    result = CommReceiver(frame).receive(frame.samples(), noise_var=1e-6)
    assert result.ber(frame.data_bits) == 0.0
    assert result.evm(frame.data_symbols) < 1e-4


def test_multipath_channel_estimate_matches_true_response(rng):
    frame = IsacFrame(config.default().frame)
    delays, gains = np.array([0, 4, 9]), np.array([0.8, 0.5j, -0.3])
    rx = add_awgn(apply_taps(frame.samples(), delays, gains), noise_var_for_snr(35.0), rng)
    result = CommReceiver(frame).receive(rx)
    k = np.arange(frame.config.num_subcarriers) - frame.config.num_subcarriers // 2
    n_fft = frame.config.fft_size
    truth = (gains[None, :] * np.exp(-2j * np.pi * k[:, None] * delays[None, :] / n_fft)).sum(axis=1)
    err = result.channel[0, 0] - truth[None, :]
    # LS on 2 REs at 35 dB plus linear interpolation of a 9-sample-long channel: about -30 dB error
    assert np.mean(np.abs(err) ** 2) / np.mean(np.abs(truth) ** 2) < 10 ** (-2.5)
    assert result.ber(frame.data_bits) == 0.0


def test_noise_variance_estimate_is_unbiased(rng):
    frame = IsacFrame(config.default().frame)
    receiver = CommReceiver(frame)
    nv = noise_var_for_snr(15.0)
    estimates = [receiver.receive(add_awgn(frame.samples(), nv, rng)).noise_var for _ in range(8)]
    # 8 frames x 612 residual degrees of freedom: relative std 1.4 %
    assert np.mean(estimates) == pytest.approx(nv, rel=0.06)


@pytest.mark.parametrize("scheme, esn0_db", [("qpsk", 7.0), ("16qam", 14.0)])
def test_ber_through_ofdm_and_dmrs_estimation(scheme, esn0_db, rng):
    """BER of the whole chain sits between the closed form and the closed form 1.2 dB lower.

    The receiver estimates the channel from DMRS: LS over 2 REs (error variance sigma**2 / 2), then
    linear interpolation over 2 DMRS symbols per slot and neighbouring pilots, which leaves an
    estimation error of roughly 0.2 ... 0.33 sigma**2 and so costs 0.8 ... 1.2 dB.  It can never beat
    the known-channel curve beyond statistical error.
    """
    cfg = FrameConfig(numerology=1, num_rb=51, num_slots=2, dmrs=DmrsConfig(additional_positions=1),
                      data=DataConfig(modulation=scheme, seed=3))
    frame = IsacFrame(cfg)
    receiver = CommReceiver(frame)
    errors = bits = 0
    for _ in range(6):
        rx = add_awgn(frame.samples(), noise_var_for_snr(esn0_db), rng)
        result = receiver.receive(rx)
        errors += int(np.sum(result.bits != frame.data_bits))
        bits += frame.data_bits.size
    ber = errors / bits
    best, worst = theory_ber(scheme, esn0_db), theory_ber(scheme, esn0_db - 1.2)
    sigma = math.sqrt(best / bits)
    assert best - 4 * sigma < ber < worst, f"{scheme}: BER {ber:.3e}, closed form {best:.3e} .. {worst:.3e}"


def test_dmrs_overwritten_by_ss_pbch_blocks_is_left_out(rng):
    """SS/PBCH blocks land on DMRS symbols (hw_configs/sim_ssb_passive.toml: DMRS symbols 2 and 11 fall on
    PSS and PBCH symbols): NR maps neither PDSCH nor its DMRS on the block's REs (TS 38.214 §5.1.4), so the
    receiver must not take the PSS, PBCH and the block's zeros for pilots.  It did: BER 0.115 and a noise
    estimate 1500 times too high at 37 dB.  Now the channel is interpolated around the block: the BER and the
    noise estimate are those of the same frame without blocks, over a two-tap channel too."""
    import dataclasses
    from pathlib import Path

    cfg = config.load(Path(__file__).resolve().parents[2] / "hw_configs" / "sim_ssb_passive.toml")
    noise_var = noise_var_for_snr(20.0)
    for ssb in (cfg.frame.ssb, None):
        frame = IsacFrame(dataclasses.replace(cfg.frame, ssb=ssb, num_slots=2))
        if ssb is not None:                                     # the blocks do overwrite DMRS REs here
            lay = frame.dmrs
            assert np.any(frame.grid.owner[lay.symbols][lay.sequence != 0] != Signal.DMRS)
        receiver = CommReceiver(frame)
        estimates, errors = [], 0
        for _ in range(4):
            rx = add_awgn(apply_taps(frame.samples(), [0, 3], [1.0, 0.3 - 0.2j]), noise_var, rng)
            result = receiver.receive(rx)
            estimates.append(result.noise_var)
            errors += int(np.sum(result.bits != frame.data_bits))
        assert errors == 0, (ssb, errors)
        assert np.mean(estimates) == pytest.approx(noise_var, rel=0.15), (ssb, np.mean(estimates), noise_var)


def test_data_under_a_block_without_any_clean_dmrs_is_warned_of(caplog):
    """In sim_ssb_passive.toml every DMRS occasion is cut inside the block's 240 subcarriers: the data REs there
    have their channel interpolated across 20 RB, which a frequency-selective channel punishes; the receiver
    says so once, naming the subcarriers.  Without blocks it says nothing."""
    import dataclasses
    import logging
    from pathlib import Path

    cfg = config.load(Path(__file__).resolve().parents[2] / "hw_configs" / "sim_ssb_passive.toml")
    with caplog.at_level(logging.WARNING, logger="sdr_isac.waveform.receiver"):
        CommReceiver(IsacFrame(dataclasses.replace(cfg.frame, num_slots=2)))
    (record,) = [r for r in caplog.records if "overwrites DMRS" in r.getMessage()]
    # the block: 240 subcarriers centred in 612 (186 ... 425); type-1 DMRS of CDM group 0 sits on the even
    # subcarriers in CDM pairs (4n, 4n + 2): the pairs touched run from (184, 186) to (424, 426)
    first = 4 * ((612 - 240) // 2 // 4)
    last = 4 * ((186 + 239) // 4) + 2
    assert f"subcarriers {first} ... {last}" in record.getMessage() and (first, last) == (184, 426)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sdr_isac.waveform.receiver"):
        CommReceiver(IsacFrame(dataclasses.replace(cfg.frame, num_slots=2, ssb=None)))
    assert not caplog.records


@pytest.mark.parametrize("dmrs", [
    DmrsConfig(config_type=1, ports=(0, 2)),                     # two CDM groups
    DmrsConfig(config_type=2, length=2, ports=(0, 1)),           # one CDM group, split by w_f
], ids=["type1-groups", "type2-occ"])
@pytest.mark.parametrize("equalizer", ["zf", "mmse"])
def test_two_layer_mimo(dmrs, equalizer, rng):
    frame = IsacFrame(FrameConfig(num_rb=24, num_slots=1, dmrs=dmrs, data=DataConfig(modulation="16qam")))
    tx = frame.samples()
    mix = np.array([[1.0, 0.4 - 0.3j], [0.2j, 0.9]])              # flat 2 x 2 channel
    rx = add_awgn(mix @ tx, noise_var_for_snr(30.0), rng)
    result = CommReceiver(frame, equalizer=equalizer).receive(rx)
    assert result.symbols.shape == frame.data_symbols.shape
    np.testing.assert_allclose(result.channel[:, :, 5, 7], mix, atol=0.1)
    assert result.ber(frame.data_bits) == 0.0
    assert result.evm(frame.data_symbols) < 0.1


def test_noise_variance_needs_help_when_every_code_is_used(rng):
    frame = IsacFrame(FrameConfig(num_rb=24, dmrs=DmrsConfig(ports=(0, 1))))     # 2 ports fill CDM group 0
    rx = add_awgn(np.array([[1.0, 0.3], [0.1, 1.0]]) @ frame.samples(), 1e-3, rng)
    with pytest.raises(InputError, match="noise_var cannot be estimated.*pass noise_var"):
        CommReceiver(frame).receive(rx)
    assert CommReceiver(frame).receive(rx, noise_var=1e-3).ber(frame.data_bits) == 0.0


@pytest.mark.parametrize("cfg, kwargs, pattern", [
    (FrameConfig(num_rb=4), {}, r"frame has no DMRS"),
    (FrameConfig(num_rb=4, dmrs=DmrsConfig(), data=DataConfig(enabled=False)), {}, r"frame carries no data"),
    (FrameConfig(num_rb=4, dmrs=DmrsConfig()), {"equalizer": "ml"}, r"equalizer = 'ml': allowed 'mmse' or 'zf'"),
])
def test_receiver_rejects_bad_setup(cfg, kwargs, pattern):
    with pytest.raises(InputError, match=pattern):
        CommReceiver(IsacFrame(cfg), **kwargs)


def test_receiver_rejects_bad_grid_and_noise():
    frame = IsacFrame(FrameConfig(num_rb=4, dmrs=DmrsConfig()))
    receiver = CommReceiver(frame)
    with pytest.raises(InputError, match=r"rx_grid has shape \(1, 3, 48\)"):
        receiver.receive_grid(np.zeros((1, 3, 48), np.complex64))
    with pytest.raises(InputError, match=r"noise_var = -1\.0: must be > 0"):
        receiver.receive(frame.samples(), noise_var=-1.0)
