"""SS/PBCH block: sequences and mapping against golden vectors, burst placement, the frame, cell search.

The golden vectors (golden/ssb_golden.json) come from scripts/make_ssb_golden.py, a standard-library
implementation of TS 38.211 §7.4.2, §7.4.1.4, §7.4.3.1 and TS 38.213 §4.1 written separately from the package
(rerun: ``python scripts/make_ssb_golden.py``); the property tests call that script's functions directly.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdr_isac.channel import add_awgn, apply_taps
from sdr_isac.config import load
from sdr_isac.config.base import from_dict
from sdr_isac.config.frame import DataConfig, DmrsConfig, FrameConfig, PrsConfig, SsbConfig
from sdr_isac.errors import ConfigError, InputError
from sdr_isac.waveform import IsacFrame, Signal
from sdr_isac.waveform.ssb import (
    cell_search,
    pbch_dmrs,
    pbch_dmrs_c_init,
    pbch_dmrs_positions,
    pss,
    ssb_block,
    ssb_blocks,
    ssb_first_bin,
    ssb_first_symbols,
    ssb_l_max,
    ssb_owner_map,
    ssb_subcarrier_offset,
    sss,
)

REPO = Path(__file__).resolve().parents[2]
GOLDEN = json.loads((Path(__file__).parent / "golden" / "ssb_golden.json").read_text(encoding="utf-8"))
_spec = importlib.util.spec_from_file_location("make_ssb_golden", REPO / "scripts" / "make_ssb_golden.py")
assert _spec is not None and _spec.loader is not None
REF = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(REF)


def _signs(values: np.ndarray) -> str:
    return "".join(("+" if v.real > 0 else "-") + ("+" if v.imag > 0 else "-") for v in values)


# --------------------------------------------------------------------------- golden vectors
@pytest.mark.parametrize("n_id2", [0, 1, 2])
def test_pss_matches_golden(n_id2):
    np.testing.assert_array_equal(pss(n_id2), GOLDEN["pss"][str(n_id2)])


@pytest.mark.parametrize("cell", sorted(GOLDEN["sss"], key=int))
def test_sss_matches_golden(cell):
    c = int(cell)
    np.testing.assert_array_equal(sss(c // 3, c % 3), GOLDEN["sss"][cell])


@pytest.mark.parametrize("case", GOLDEN["pbch_dmrs"], ids=lambda c: f"N{c['n_cell_id']}-i{c['i_ssb']}-hf{c['n_hf']}"
                         f"-L{c['l_max']}")
def test_pbch_dmrs_matches_golden(case):
    args = (case["n_cell_id"], case["i_ssb"], case["n_hf"], case["l_max"])
    assert pbch_dmrs_c_init(*args) == case["c_init"]
    r = pbch_dmrs(*args)
    assert r.shape == (144,) and r.dtype == np.complex64
    np.testing.assert_allclose(np.abs(r), 1.0, rtol=1e-6)
    assert _signs(r) == case["signs"]


def test_reference_example_c_init_41217():
    # REFERENCE.md §5: N_ID^cell = 17, i_bar_SSB = 3 -> c_init = 41217 (2**11 * 4 * 5 + 2**6 * 4 + 1)
    assert pbch_dmrs_c_init(17, 3) == 41217 == 2**11 * 4 * 5 + 2**6 * 4 + 1
    assert pbch_dmrs_c_init(17, 3, n_hf=0, l_max=4) == 41217
    assert pbch_dmrs_c_init(17, 11, l_max=64) == 41217          # L_max 64: the three LSBs of the index


@pytest.mark.parametrize("nu", [0, 1, 2, 3])
def test_pbch_dmrs_positions_match_golden(nu):
    sym, sub = pbch_dmrs_positions(nu + 4 * 37)                  # nu = N_ID mod 4
    assert list(zip(sym.tolist(), sub.tolist())) == [tuple(x) for x in GOLDEN["dmrs_res"][str(nu)]]


@pytest.mark.parametrize("key", sorted(GOLDEN["burst"]))
def test_burst_first_symbols_match_golden(key):
    assert ssb_first_symbols(key[0], int(key[1:])).tolist() == GOLDEN["burst"][key]


def test_gold_check_value_of_the_generator():
    # the generator's own Gold sequence reproduces the check value of REFERENCE.md §2
    assert "".join(map(str, REF.gold(1000, 64))) == GOLDEN["gold_check"]["bits"] == \
        "0000110001010100010001100110100010010110101001110001101010000111"


@settings(max_examples=40, deadline=None)
@given(cell=st.integers(0, 1007), index=st.integers(0, 63), n_hf=st.integers(0, 1), l_max=st.sampled_from([4, 8, 64]))
def test_pbch_dmrs_agrees_with_the_independent_generator(cell, index, n_hf, l_max):
    i = index % l_max
    assert pbch_dmrs_c_init(cell, i, n_hf, l_max) == REF.dmrs_c_init(cell, i, n_hf, l_max)
    assert _signs(pbch_dmrs(cell, i, n_hf, l_max)) == REF.dmrs_signs(REF.dmrs_c_init(cell, i, n_hf, l_max))


# --------------------------------------------------------------------------- sequence physics
def test_pss_are_nearly_orthogonal_and_sss_identify_every_cell():
    p = np.stack([pss(n) for n in range(3)]).astype(float)
    gram = p @ p.T
    assert np.all(np.diag(gram) == 127)
    off = gram[~np.eye(3, dtype=bool)]
    assert np.all(off == -1)                  # cyclic shifts of one m-sequence: periodic correlation -1 off the peak
    s = np.stack([sss(c // 3, c % 3) for c in range(1008)]).astype(float)
    assert np.unique(s, axis=0).shape[0] == 1008
    cross = s @ s.T - 127 * np.eye(1008)
    assert np.max(np.abs(cross)) < 127 / 2                         # every other cell's SSS far below the match


def test_block_layout_follows_table_7_4_3_1_1():
    owner = ssb_owner_map(17)                                      # nu = 1
    counts = {Signal(v).label: int(np.count_nonzero(owner == v)) for v in np.unique(owner)}
    assert counts == {"ssb_pss": 127, "ssb_sss": 127, "pbch_dmrs": 144, "pbch": 432, "ssb_guard": (240 - 127) + 8 + 9}
    assert np.all(owner[0, 56:183] == Signal.SSB_PSS) and np.all(owner[2, 56:183] == Signal.SSB_SSS)
    assert np.all(owner[2, 48:56] == Signal.SSB_GUARD) and np.all(owner[2, 183:192] == Signal.SSB_GUARD)
    assert np.all(owner[1, 1::4] == Signal.PBCH_DMRS) and not np.any(owner[1, 0::4] == Signal.PBCH_DMRS)
    block = ssb_block(17, 3, payload=np.full(432, 0.5 + 0.5j))
    np.testing.assert_array_equal(block[0, 56:183].real, GOLDEN["pss"][str(17 % 3)])
    np.testing.assert_array_equal(block[2, 56:183].real, sss(5, 2))
    assert _signs(block[pbch_dmrs_positions(17)]) == GOLDEN["pbch_dmrs"][1]["signs"]
    assert np.all(block[owner == Signal.SSB_GUARD] == 0) and np.all(block[owner == Signal.PBCH] == 0.5 + 0.5j)


def test_l_max_by_case_and_carrier():
    assert ssb_l_max("A", 2e9) == 4 and ssb_l_max("A", 3.5e9) == 8 and ssb_l_max("B", 3e9) == 4
    assert ssb_l_max("C", 2e9, paired=False) == 8 and ssb_l_max("C", 1.8e9, paired=False) == 4
    assert ssb_l_max("D", 28e9) == 64 and ssb_l_max("E", 40e9) == 64


# --------------------------------------------------------------------------- the frame
def _frame(**ssb):
    kw = {"case": "C", "n_cell_id": 17, "period_ms": 5} | ssb
    return FrameConfig(numerology=1, num_rb=51, num_slots=10, ssb=SsbConfig(**kw))


def test_frame_places_every_block_of_the_burst():
    cfg = _frame()
    frame = IsacFrame(cfg)
    blocks = ssb_blocks(cfg)
    assert blocks.first_symbols.tolist() == GOLDEN["burst"]["C8"] and blocks.indices.tolist() == list(range(8))
    k0 = ssb_subcarrier_offset(cfg)
    assert k0 == (612 - 240) // 2
    for first, index in zip(blocks.first_symbols, blocks.indices):
        np.testing.assert_array_equal(frame.grid.values[0, first, k0 + 56: k0 + 183].real, GOLDEN["pss"]["2"])
        sym, sub = pbch_dmrs_positions(17)
        assert _signs(frame.grid.values[0, first + sym, k0 + sub]) == REF.dmrs_signs(REF.dmrs_c_init(17, int(index),
                                                                                                    0, 8))
    counts = frame.re_counts()
    assert counts["ssb_pss"] == counts["ssb_sss"] == 8 * 127 and counts["pbch_dmrs"] == 8 * 144
    assert counts["pbch"] == 8 * 432 and counts["data"] == 140 * 612 - 8 * 960


def test_period_half_frames_and_blocks_cut_by_the_frame():
    # 20 slots = 10 ms: period 5 ms -> bursts in both half frames, period 10 ms -> only the first
    two = ssb_blocks(FrameConfig(numerology=1, num_rb=51, num_slots=20, ssb=SsbConfig(period_ms=5)))
    assert two.first_symbols.tolist() == GOLDEN["burst"]["C8"] + [140 + s for s in GOLDEN["burst"]["C8"]]
    assert two.half_frames.tolist() == [0] * 8 + [1] * 8
    one = ssb_blocks(FrameConfig(numerology=1, num_rb=51, num_slots=20, ssb=SsbConfig(period_ms=10)))
    assert one.first_symbols.tolist() == GOLDEN["burst"]["C8"]
    # a frame of 2 slots starting at slot 1 holds blocks 2, 3 (symbols 16, 22 -> 2, 8) and not the one at 30
    cut = ssb_blocks(FrameConfig(numerology=1, num_rb=51, num_slots=1, first_slot=1, ssb=SsbConfig()))
    assert cut.first_symbols.tolist() == [2, 8] and cut.indices.tolist() == [2, 3]
    chosen = ssb_blocks(FrameConfig(numerology=1, num_rb=51, num_slots=10, ssb=SsbConfig(positions=(5, 1))))
    assert chosen.indices.tolist() == [1, 5]


def test_half_frame_bit_with_l_max_4():
    # case A, 15 kHz, L_max 4: a frame starting at slot 5 is the second half frame: i_bar = i_SSB + 4
    cfg = FrameConfig(numerology=0, num_rb=25, num_slots=2, first_slot=5, carrier_hz=2e9,
                      ssb=SsbConfig(case="A", l_max=4, n_cell_id=503, period_ms=5))
    frame = IsacFrame(cfg)
    blocks = ssb_blocks(cfg)
    assert blocks.first_symbols.tolist() == GOLDEN["burst"]["A4"] and set(blocks.half_frames.tolist()) == {1}
    k0 = ssb_subcarrier_offset(cfg)
    sym, sub = pbch_dmrs_positions(503)
    got = frame.grid.values[0, blocks.first_symbols[2] + sym, k0 + sub]
    assert _signs(got) == REF.dmrs_signs(REF.dmrs_c_init(503, 2, 1, 4))


def test_ssb_punctures_dmrs_and_prs():
    common = {"numerology": 1, "num_rb": 51, "num_slots": 4, "dmrs": DmrsConfig(), "prs": PrsConfig(),
              "data": DataConfig(enabled=False)}
    cfg = FrameConfig(**common, ssb=SsbConfig(subcarrier_offset=0))
    frame = IsacFrame(cfg)
    plain = IsacFrame(FrameConfig(**common))
    block = np.zeros(frame.grid.owner.shape, dtype=bool)
    for first in ssb_blocks(cfg).first_symbols:
        block[first: first + 4, :240] = True
    owner = frame.grid.owner
    assert not np.any(np.isin(owner[block], [Signal.DMRS, Signal.PRS, Signal.DATA]))
    assert np.all(owner[~block] == plain.grid.owner[~block])            # nothing else moved
    assert np.array_equal(frame.grid.values[:, ~block], plain.grid.values[:, ~block])
    assert np.count_nonzero(plain.grid.owner[block] == Signal.DMRS) > 0     # there was DMRS to puncture


@pytest.mark.parametrize(("section", "frame_kw", "match"), [
    ({"case": "C"}, {"numerology": 0}, "ssb.case"),
    ({"case": "D", "l_max": 8}, {"numerology": 3}, "l_max"),
    ({"case": "C", "positions": [8]}, {}, "positions"),
    ({"case": "C", "positions": [1, 1]}, {}, "positions"),
    ({"case": "C", "period_ms": 15}, {}, "period_ms"),
    ({"case": "C", "subcarrier_offset": 400}, {}, "ssb.subcarrier_offset"),
    ({"case": "C"}, {"num_rb": 19}, "num_rb"),
    ({"case": "F"}, {}, "case"),
    ({"case": "C", "n_cell_id": 1008}, {}, "n_cell_id"),
    ({"case": "C", "n_cell_id": 1.5}, {}, "n_cell_id"),
    ({"case": "C", "cell": 3}, {}, "unknown key"),
])
def test_config_refuses_what_the_standard_does_not_allow(section, frame_kw, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(FrameConfig, {"numerology": 1, "num_rb": 51} | frame_kw | {"ssb": section})


@pytest.mark.parametrize(("call", "match"), [
    (lambda: pss(3), "n_id2"), (lambda: pss(True), "n_id2"), (lambda: sss(336, 0), "n_id1"),
    (lambda: sss(0, -1), "n_id2"), (lambda: pbch_dmrs(1008, 0), "n_cell_id"),
    (lambda: pbch_dmrs(0, 8, l_max=8), "i_ssb"), (lambda: pbch_dmrs(0, 0, l_max=16), "l_max"),
    (lambda: pbch_dmrs(0, 0, n_hf=2, l_max=4), "n_hf"), (lambda: ssb_first_symbols("F", 8), "case"),
    (lambda: ssb_first_symbols("D", 8), "l_max"), (lambda: ssb_block(0, 0, payload=np.ones(10)), "payload"),
    (lambda: ssb_l_max("A", math.nan), "carrier_hz"),
])
def test_bad_arguments_raise_input_errors_naming_the_field(call, match):
    with pytest.raises(InputError, match=match):
        call()


@settings(max_examples=60, deadline=None)
@given(value=st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3),
                       st.integers(-2**70, -1), st.integers(1008, 2**70)))
def test_any_non_identity_is_refused(value):
    for call in (lambda: pss(value), lambda: sss(value, 0), lambda: pbch_dmrs(value, 0),
                 lambda: pbch_dmrs_c_init(0, value)):
        with pytest.raises(InputError):
            call()


# --------------------------------------------------------------------------- cell search
def _capture(cfg: FrameConfig, delay: int, cfo_hz: float, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """The frame after ``delay`` samples of silence, through two taps, with a CFO and white noise.

    ``snr_db`` is per RE of the frame (unitary OFDM: the noise variance per sample equals the one per RE).
    """
    frame = IsacFrame(cfg)
    x = np.concatenate((np.zeros(delay, np.complex64), frame.samples()[0], np.zeros(300, np.complex64)))
    y = apply_taps(x[None], [0, 5], [1.0, 0.4j])[0]
    y = y * np.exp(2j * np.pi * cfo_hz * np.arange(y.size) / cfg.sample_rate_hz)
    re_power = float(np.mean(np.abs(frame.grid.values[0]) ** 2))
    return add_awgn(y, re_power * 10 ** (-snr_db / 10), rng)


@pytest.mark.parametrize(("cell", "cfo_fraction"), [(0, 0.0), (17, 0.3), (502, -0.35), (1007, 0.2), (671, -0.1)])
def test_cell_search_finds_identity_timing_and_block(cell, cfo_fraction, rng):
    cfg = FrameConfig(numerology=1, num_rb=51, fft_size=1024, num_slots=4, carrier_hz=3.5e9,
                      ssb=SsbConfig(case="C", n_cell_id=cell, payload_seed=cell))
    delay = int(rng.integers(0, 5000))
    cfo = cfo_fraction * cfg.subcarrier_spacing_hz
    y = _capture(cfg, delay, cfo, -3.0, rng)
    found = cell_search(y, cfg.fft_size, 72, cfg.sample_rate_hz, ssb_first_bin(cfg))
    assert (found.n_cell_id, found.n_id1, found.n_id2) == (cell, cell // 3, cell % 3)
    blocks = ssb_blocks(cfg)
    starts = IsacFrame(cfg).symbol_starts[blocks.first_symbols]
    # the DMRS index names the block the PSS timing found; the PSS spans 127 of 1024 bins, so its correlation
    # lobe is about 8 samples wide and the second tap (5 samples, -8 dB) may pull the peak by a sample or two --
    # well inside the 72-sample CP
    assert abs(found.ssb_start - delay - starts[found.i_ssb_bar]) <= 2
    assert abs(found.cfo_hz - cfo) < 0.05 * cfg.subcarrier_spacing_hz
    assert found.peak_to_median > 5


def test_cell_search_takes_a_numpy_rate_and_refuses_real_samples(rng):
    cfg = FrameConfig(numerology=1, num_rb=51, fft_size=1024, num_slots=4, carrier_hz=3.5e9,
                      ssb=SsbConfig(case="C", n_cell_id=17, payload_seed=1))
    y = _capture(cfg, 100, 0.0, 10.0, rng)
    found = cell_search(y, cfg.fft_size, 72, np.float32(cfg.sample_rate_hz), ssb_first_bin(cfg))
    assert found.n_cell_id == 17
    with pytest.raises(InputError, match=r"dtype float64: allowed \(channels, n\) complex"):
        cell_search(y.real.astype(np.float64), cfg.fft_size, 72, cfg.sample_rate_hz, ssb_first_bin(cfg))
    with pytest.raises(InputError, match=r"sample_rate_hz = True Hz"):
        cell_search(y, cfg.fft_size, 72, True, ssb_first_bin(cfg))


@pytest.mark.parametrize("carrier_hz", [3.5e9, 3.5e9 + 7.5e3, 3.6012e9, 2.1e9 + 3e3])
def test_cell_search_finds_the_cell_of_a_gnb_that_upconverts_per_symbol(carrier_hz, rng):
    """A gNB upconverts each symbol with its own phase reference (TS 38.211 §5.4: exp(j 2 pi f0 (t - t_start,l
    - N_CP,l T_c))), so a receiver whose LO runs on sees symbol l turned by exp(-j 2 pi f0 (t_start,l + N_CP,l
    T_c)): the PSS (symbol 0) and the SSS (symbol 2) are not in phase, and N_ID^(1) must not rest on it."""
    for cell in (0, 17, 502, 1007, 671, 333, 800, 45):
        cfg = FrameConfig(numerology=1, num_rb=51, fft_size=1024, num_slots=4, carrier_hz=carrier_hz,
                          ssb=SsbConfig(case="C", n_cell_id=cell, payload_seed=cell))
        frame = IsacFrame(cfg)
        x = frame.samples()[0].astype(np.complex128)
        fs = cfg.sample_rate_hz
        for start, cp in zip(frame.symbol_starts, frame.cp_lengths, strict=True):   # the frame starts a subframe
            x[start: start + cp + cfg.fft_size] *= np.exp(-2j * np.pi * carrier_hz * (start + cp) / fs)
        y = np.concatenate((np.zeros(500), x, np.zeros(300)))
        re_power = float(np.mean(np.abs(frame.grid.values[0]) ** 2))
        y = add_awgn(y, re_power * 10 ** (3.0 / 10), rng)                      # -3 dB per RE, as above
        found = cell_search(y, cfg.fft_size, 72, fs, ssb_first_bin(cfg))
        assert (found.n_cell_id, found.n_id1, found.n_id2) == (cell, cell // 3, cell % 3), (cell, carrier_hz)


def test_cell_search_reads_the_half_frame_with_l_max_4(rng):
    cfg = FrameConfig(numerology=0, num_rb=25, fft_size=512, num_slots=1, first_slot=5, carrier_hz=2e9,
                      ssb=SsbConfig(case="A", l_max=4, n_cell_id=1001, period_ms=5, positions=(1,)))
    y = np.stack([_capture(cfg, 321, 2e3, 0.0, rng) for _ in range(2)])      # two channels, independent noise
    found = cell_search(y, cfg.fft_size, 36, cfg.sample_rate_hz, ssb_first_bin(cfg))
    assert found.grid.shape == (2, 4, 240)
    assert found.n_cell_id == 1001 and found.i_ssb_bar == 1 + 4               # block 1 of half frame 1
    assert found.ssb_start - 321 == IsacFrame(cfg).symbol_starts[8]


def test_cell_search_on_noise_has_no_clear_peak(rng):
    noise = add_awgn(np.zeros(60_000, np.complex64), 1.0, rng)
    assert cell_search(noise, 1024, 72, 30.72e6).peak_to_median < 4.5


@pytest.mark.parametrize(("args", "match"), [
    ((np.zeros(100, complex), 1024, 72, 30.72e6), "capture more"),
    ((np.zeros(0, complex), 1024, 72, 30.72e6), "capture more"),
    ((np.zeros(5000, int), 1024, 72, 30.72e6), "complex"),
    ((np.full(5000, np.nan, complex), 1024, 72, 30.72e6), "NaN"),
    ((np.zeros(5000, complex), 1023, 72, 30.72e6), "fft_size"),
    ((np.zeros(5000, complex), 1024, 1024, 30.72e6), "cp_samples"),
    ((np.zeros(5000, complex), 1024, 72, -1.0), "sample_rate_hz"),
    ((np.zeros(5000, complex), 1024, 72, 30.72e6, 400), "first_bin"),
])
def test_cell_search_refuses_bad_input(args, match):
    with pytest.raises(InputError, match=match):
        cell_search(*args)


def test_example_config_loads_with_an_ssb():
    cfg = load(REPO / "hw_configs" / "sim_ssb_passive.toml")
    assert cfg.frame.ssb is not None and cfg.frame.ssb.numerology == cfg.frame.numerology
    assert ssb_blocks(cfg.frame).first_symbols.size >= 4


@pytest.mark.parametrize("frame, pattern", [
    # L_max follows the carrier (TS 38.213 §4.1)
    ({"numerology": 0, "carrier_hz": 1e9, "ssb": {"case": "A", "l_max": 8}},
     r"^frame\.ssb\.l_max = 8: allowed 4 for case A at carrier_hz = 1e\+09 Hz"),
    ({"numerology": 0, "carrier_hz": 5e9, "ssb": {"case": "A", "l_max": 4}},
     r"^frame\.ssb\.l_max = 4: allowed 8 for case A at carrier_hz = 5e\+09 Hz"),
    ({"numerology": 1, "carrier_hz": 1.5e9, "ssb": {}},                      # the default case C, L_max 8
     r"^frame\.ssb\.l_max = 8: allowed 4 for case C"),
    # cases A, B, C in FR1, D and E in FR2
    ({"numerology": 3, "carrier_hz": 1e9, "ssb": {"case": "D", "l_max": 64}},
     r"^frame\.ssb\.case = 'D': allowed case D in FR2, above 7\.125 GHz \(carrier_hz = 1e\+09 Hz"),
    ({"numerology": 1, "carrier_hz": 28e9, "ssb": {"case": "C"}},
     r"^frame\.ssb\.case = 'C': allowed case C in FR1, up to 7\.125 GHz"),
    # an explicit spacing is named as the cause, not the numerology
    ({"spacing_hz": 1e4, "cp_samples": 10, "ssb": {}}, r"^frame\.spacing_hz = 10000\.0: allowed unset with an SS/PBCH"),
])
def test_a_block_the_standard_does_not_allow_at_the_carrier_is_refused(frame: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        from_dict(FrameConfig, frame, "frame")


def test_both_l_max_of_case_c_between_1_88_and_3_ghz_are_allowed() -> None:
    """Paired spectrum: 4 up to 3 GHz; unpaired: 8 above 1.88 GHz; the frame does not say which it is."""
    for l_max in (4, 8):
        FrameConfig(numerology=1, carrier_hz=2.5e9, ssb=SsbConfig(case="C", l_max=l_max))
    FrameConfig(numerology=3, carrier_hz=28e9, num_rb=66, ssb=SsbConfig(case="D", l_max=64))


@pytest.mark.parametrize("frame", [dict(num_symbols=3), dict(num_slots=1, first_slot=4),
                                   dict(num_slots=1, first_slot=10, ssb_period_ms=10)])
def test_a_frame_that_holds_no_block_of_its_ssb_section_is_refused(frame: dict) -> None:
    period = frame.pop("ssb_period_ms", 20)
    cfg = FrameConfig(numerology=1, num_rb=51, ssb=SsbConfig(period_ms=period), **frame)
    assert ssb_blocks(cfg).indices.size == 0
    with pytest.raises(ConfigError, match=r"^frame\.ssb\.period_ms = \d+: the frame's \d+ symbols .* hold no whole "
                                          r"SS/PBCH block"):
        IsacFrame(cfg)
