"""The ISAC frame builder: ownership map, reference-signal values, data, clashes, long frames."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdr_isac import config
from sdr_isac.config import DataConfig, DmrsConfig, FrameConfig, PrsConfig, SrsConfig, TrsConfig
from sdr_isac.errors import ConfigError, InputError
from sdr_isac.waveform import IsacFrame, Signal, gold_sequence, modulate
from sdr_isac.waveform.prs import prs_pattern


def qpsk_from_gold(c_init: int, length: int) -> np.ndarray:
    """r(m) of TS 38.211 §7.4.1.7.2 written out from the Gold bits."""
    c = gold_sequence(c_init, 2 * length).astype(float)
    return ((1 - 2 * c[0::2]) + 1j * (1 - 2 * c[1::2])) / math.sqrt(2)


def test_default_frame_counts_follow_the_configuration():
    frame = IsacFrame(config.default().frame)
    cfg = frame.config
    counts = frame.re_counts()
    k_sc = cfg.num_subcarriers
    slots = 2
    assert counts["prs"] == slots * cfg.prs.num_symbols * k_sc // cfg.prs.comb_size
    assert counts["dmrs"] == slots * 2 * k_sc // 2          # symbols 2 and 11, CDM group 0 (every other RE)
    assert sum(counts.values()) == frame.num_symbols * k_sc
    assert counts["data"] == frame.data_symbols.shape[1]
    assert frame.samples().shape == (1, frame.num_samples)
    assert frame.num_samples == 28 * 1024 + 26 * 72 + 2 * 88       # 1 ms at 30.72 Msps
    assert frame.duration_s == pytest.approx(1e-3)


def test_prs_values_and_positions_follow_the_standard():
    prs = PrsConfig(comb_size=4, num_symbols=4, start_symbol=5, re_offset=1, n_id=1500)
    frame = IsacFrame(FrameConfig(num_rb=10, num_slots=2, first_slot=3, prs=prs))
    mask = frame.known_mask("prs")
    pattern = prs_pattern(4, 4, 1, 120)
    for slot in range(2):
        n_sf = 3 + slot
        for i in range(4):
            l = 5 + i
            row = mask[slot * 14 + l]
            np.testing.assert_array_equal(row, pattern[i])
            c_init = (2**22 * (1500 // 1024) + 2**10 * (14 * n_sf + l + 1) * (2 * (1500 % 1024) + 1)
                      + 1500 % 1024) % 2**31
            values = frame.grid.values[0, slot * 14 + l, row]
            np.testing.assert_allclose(values, qpsk_from_gold(c_init, 30), atol=1e-6)
    assert not mask[[0, 1, 2, 3, 4, 9, 10, 11, 12, 13]].any()


def test_prs_periodicity_selects_slots():
    prs = PrsConfig(comb_size=2, num_symbols=2, start_symbol=0, period_slots=4, slot_offset=1,
                    repetition_factor=2, time_gap_slots=1)
    frame = IsacFrame(FrameConfig(num_rb=4, num_slots=8, prs=prs))
    slots_with_prs = sorted({int(s) // 14 for s in np.nonzero(frame.known_mask("prs").any(axis=1))[0]})
    assert slots_with_prs == [1, 2, 5, 6]      # (n - 1) mod 4 in {0, 1}


def test_dmrs_values_carry_cover_codes():
    dmrs = DmrsConfig(config_type=2, length=2, ports=(0, 1), n_id=7)
    frame = IsacFrame(FrameConfig(num_rb=4, dmrs=dmrs, data=DataConfig(enabled=False)))
    assert frame.num_ports == 2
    v = frame.grid.values
    # group 0 of type 2: subcarriers 6n and 6n + 1, both symbols 2 and 3 (l0 = 2, double symbol)
    k0, k1 = np.arange(0, 48, 6), np.arange(1, 48, 6)
    for l in (2, 3):
        c_init = (2**17 * (l + 1) * (2 * 7 + 1) + 2 * 7) % 2**31
        r = qpsk_from_gold(c_init, 16)
        np.testing.assert_allclose(v[0, l, k0], r[0::2], atol=1e-6)      # port 1000: w_f = (+1, +1)
        np.testing.assert_allclose(v[0, l, k1], r[1::2], atol=1e-6)
        np.testing.assert_allclose(v[1, l, k0], r[0::2], atol=1e-6)      # port 1001: w_f = (+1, -1)
        np.testing.assert_allclose(v[1, l, k1], -r[1::2], atol=1e-6)
    # the two ports are orthogonal over each CDM block
    block = v[:, 2:4][:, :, np.r_[0, 1]].reshape(2, -1) / np.conj(v[0, 2:4][:, np.r_[0, 1]]).reshape(1, -1)
    assert abs(np.vdot(block[0], block[1])) < 1e-6
    # other CDM groups on DMRS symbols stay empty (no data was asked for)
    assert np.all(frame.grid.owner[2:4, 2::6] == Signal.EMPTY)


def test_srs_ports_are_code_multiplexed():
    srs = SrsConfig(comb_size=2, comb_offset=1, num_ports=2, num_symbols=2, start_symbol=12, cyclic_shift=1,
                    sequence_id=3)
    frame = IsacFrame(FrameConfig(num_rb=24, srs=srs))
    mask = frame.known_mask(Signal.SRS)
    assert mask[12].sum() == 24 * 12 // 2 and mask[12, 1::2].all()
    p0, p1 = frame.grid.values[0, 12, mask[12]], frame.grid.values[1, 12, mask[12]]
    assert np.allclose(np.abs(p0), 1 / math.sqrt(2))
    assert abs(np.vdot(p0, p1)) < 1e-4 * np.vdot(p0, p0).real      # cyclic shifts n_cs and n_cs + 4 of 8


def test_trs_positions():
    frame = IsacFrame(FrameConfig(num_rb=4, trs=TrsConfig(symbols=(5, 9), subcarrier_offset=3)))
    mask = frame.known_mask("trs")
    assert set(np.nonzero(mask.any(axis=1))[0]) == {5, 9}
    np.testing.assert_array_equal(np.nonzero(mask[5])[0], np.arange(3, 48, 4))


def test_dmrs_clash_with_prs_is_reported():
    cfg = FrameConfig(num_rb=4, prs=PrsConfig(comb_size=2, num_symbols=2, start_symbol=2), dmrs=DmrsConfig())
    with pytest.raises(ConfigError, match=r"frame\.dmrs clashes with frame\.prs at symbol 2, subcarrier 0"):
        IsacFrame(cfg)


def test_given_data_bits_are_sent(rng):
    cfg = FrameConfig(num_rb=4, dmrs=DmrsConfig(), data=DataConfig(modulation="64qam"))
    probe = IsacFrame(cfg)
    bits = rng.integers(0, 2, probe.data_bits.size).astype(np.uint8)
    frame = IsacFrame(cfg, data_bits=bits)
    data_re = frame.known_mask("data")
    np.testing.assert_allclose(frame.grid.values[0][data_re], modulate(bits, "64qam"), atol=1e-7)
    with pytest.raises(InputError, match=rf"data_bits has 5 bits: this frame carries 1 layer\(s\) x "
                                         rf"{data_re.sum()} data REs x 6 bits \(64qam\)"):
        IsacFrame(cfg, data_bits=np.ones(5))


def test_seeded_payload_is_reproducible():
    cfg = config.default().frame
    np.testing.assert_array_equal(IsacFrame(cfg).samples(), IsacFrame(cfg).samples())


def test_long_frame_has_prs_in_every_slot_and_standard_cp():
    cfg = config.load(_repo_file("hw_configs/nr_fr2_120khz.toml")).frame
    frame = IsacFrame(cfg)
    assert frame.num_symbols == 112
    per_slot = frame.known_mask("prs").reshape(8, 14, -1).any(axis=2)
    assert per_slot[:, 12:].all() and not per_slot[:, :12].any()
    long_cp = np.nonzero(frame.cp_lengths != frame.cp_lengths[1])[0]
    np.testing.assert_array_equal(long_cp, [0, 56])                   # l = 0 and 7 * 2**3 in the subframe
    assert frame.cp_lengths[1] == 144 * 1024 // 2048 and frame.cp_lengths[0] == 72 + 16 * 8 * 1024 // 2048


def test_known_mask_and_samples_guard():
    frame = IsacFrame(config.default().frame)
    assert frame.known_mask().all()                   # a monostatic node knows every RE it sent
    with pytest.raises(InputError, match=r"signal 'pss': allowed empty, data, prs"):
        frame.known_mask("pss")
    with pytest.raises(ValueError):
        frame.samples()[0, 0] = 0                     # cached samples are read-only
    with pytest.raises(InputError, match="config is a dict"):
        IsacFrame({})  # type: ignore[arg-type]


def test_summary_lists_cp_per_symbol_and_counts():
    text = IsacFrame(config.default().frame).summary()
    assert "subcarrier spacing 30 kHz" in text
    assert "symbols           0:    88 samples" in text and "symbols        1-13:    72 samples" in text
    assert "prs" in text and "dmrs" in text


def _repo_file(name: str):
    from pathlib import Path
    return Path(__file__).resolve().parents[2] / name
