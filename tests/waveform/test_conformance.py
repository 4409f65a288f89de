"""Conformance of sdr_isac.waveform with 3GPP TS 38.211 golden vectors.

The vectors in golden/nr_golden.json come from golden/generate.py, a
standard-library-only implementation of the TS 38.211 equations and tables
(rerun: ``python tests/waveform/golden/generate.py``).
"""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from sdr_isac.waveform import gold_sequence
from sdr_isac.waveform.csirs import csirs_c_init, trs_subcarriers
from sdr_isac.waveform.dmrs import dmrs_c_init, dmrs_port_params, dmrs_subcarriers, dmrs_symbols
from sdr_isac.waveform.modulation import modulate
from sdr_isac.waveform.numerology import cyclic_prefix_lengths
from sdr_isac.waveform.prs import prs_c_init, prs_pattern
from sdr_isac.waveform.srs import srs_comb_offset, srs_cyclic_shift, srs_subcarriers, zc_parameters

GOLDEN = json.loads((Path(__file__).parent / "golden" / "nr_golden.json").read_text(encoding="utf-8"))


def _ids(cases, *keys):
    return ["-".join(f"{k}{c[k]}" for k in keys) for c in cases]


# --------------------------------------------------------------------------- #
# 5.2.1 Gold sequence
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("c_init", sorted(GOLDEN["gold"]["sequences"], key=int))
def test_gold_sequence(c_init):
    expected = np.array([int(ch) for ch in GOLDEN["gold"]["sequences"][c_init]], dtype=np.uint8)
    got = np.asarray(gold_sequence(int(c_init), expected.size))
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.astype(np.uint8), expected)


# --------------------------------------------------------------------------- #
# 5.3.1 Cyclic prefix
# --------------------------------------------------------------------------- #
NORMAL_CP = [
    (int(mu), int(nfft), seq)
    for mu, by_fft in sorted(GOLDEN["cp"]["normal"].items())
    for nfft, seq in sorted(by_fft.items())
]


@pytest.mark.parametrize("mu,nfft,expected", NORMAL_CP, ids=[f"mu{m}-fft{n}" for m, n, _ in NORMAL_CP])
def test_cp_normal_subframe(mu, nfft, expected):
    got = cyclic_prefix_lengths(mu, nfft, len(expected), kind="normal", first_slot=0)
    np.testing.assert_array_equal(np.asarray(got), expected)
    # Two consecutive subframes repeat the pattern.
    got2 = cyclic_prefix_lengths(mu, nfft, 2 * len(expected), kind="normal", first_slot=0)
    np.testing.assert_array_equal(np.asarray(got2), expected + expected)


@pytest.mark.parametrize("mu,nfft,expected", NORMAL_CP, ids=[f"mu{m}-fft{n}" for m, n, _ in NORMAL_CP])
def test_cp_normal_per_slot(mu, nfft, expected):
    slots_per_subframe = 2**mu
    for slot in range(slots_per_subframe + 1):  # includes slot 0 of the next subframe
        s = slot % slots_per_subframe
        got = cyclic_prefix_lengths(mu, nfft, 14, kind="normal", first_slot=slot)
        np.testing.assert_array_equal(np.asarray(got), expected[14 * s : 14 * (s + 1)], err_msg=f"slot {slot}")


EXT_CP = [(int(mu), int(nfft), seq) for mu, by_fft in GOLDEN["cp"]["extended"].items() for nfft, seq in sorted(by_fft.items())]


@pytest.mark.parametrize("mu,nfft,expected", EXT_CP, ids=[f"mu{m}-fft{n}" for m, n, _ in EXT_CP])
def test_cp_extended(mu, nfft, expected):
    got = cyclic_prefix_lengths(mu, nfft, len(expected), kind="extended", first_slot=0)
    np.testing.assert_array_equal(np.asarray(got), expected)


# --------------------------------------------------------------------------- #
# 7.4.1.7 DL PRS
# --------------------------------------------------------------------------- #
PRS_PATTERNS = GOLDEN["prs"]["patterns"]


@pytest.mark.parametrize("case", PRS_PATTERNS, ids=_ids(PRS_PATTERNS, "comb_size", "num_symbols", "re_offset"))
def test_prs_pattern(case):
    n_sc = GOLDEN["prs"]["num_subcarriers"]
    got = np.asarray(prs_pattern(case["comb_size"], case["num_symbols"], case["re_offset"], n_sc))
    assert got.shape == (case["num_symbols"], n_sc)
    for i, expected in enumerate(case["subcarriers"]):
        np.testing.assert_array_equal(np.flatnonzero(got[i]), expected, err_msg=f"PRS symbol {i}")


@pytest.mark.parametrize("case", GOLDEN["prs"]["c_init"], ids=_ids(GOLDEN["prs"]["c_init"], "n_id", "slot", "symbol"))
def test_prs_c_init(case):
    # numerology only bounds the slot number (0 ... 10 * 2**mu - 1); 14 symbols per slot
    assert case["slot"] < 10 * 2 ** case["numerology"]
    assert prs_c_init(case["n_id"], case["slot"], case["symbol"]) == case["c_init"]


@pytest.mark.parametrize("comb", [2, 4, 6, 12])
def test_prs_staggered_full_coverage(comb):
    n_sc = 48
    for re_offset in range(comb):
        got = np.asarray(prs_pattern(comb, comb, re_offset, n_sc)).astype(int)
        np.testing.assert_array_equal(got.sum(axis=0), np.ones(n_sc, dtype=int), err_msg=f"offset {re_offset}")
        np.testing.assert_array_equal(got.sum(axis=1), np.full(comb, n_sc // comb), err_msg=f"offset {re_offset}")


# --------------------------------------------------------------------------- #
# 7.4.1.1 PDSCH DM-RS
# --------------------------------------------------------------------------- #
DMRS_SYMBOLS = GOLDEN["dmrs"]["symbols"]


@pytest.mark.parametrize(
    "case", DMRS_SYMBOLS, ids=_ids(DMRS_SYMBOLS, "length", "duration", "type_a_position", "additional_positions")
)
def test_dmrs_symbols(case):
    got = dmrs_symbols(
        duration=case["duration"],
        type_a_position=case["type_a_position"],
        additional_positions=case["additional_positions"],
        length=case["length"],
    )
    assert tuple(int(x) for x in got) == tuple(case["symbols"])


DMRS_PORTS = [(int(ct), p) for ct, ports in sorted(GOLDEN["dmrs"]["ports"].items()) for p in ports]


@pytest.mark.parametrize("config_type,case", DMRS_PORTS, ids=[f"type{ct}-port{c['antenna_port']}" for ct, c in DMRS_PORTS])
def test_dmrs_port_params(config_type, case):
    cdm_group, delta, wf, wt = dmrs_port_params(config_type, case["port"])
    assert int(cdm_group) == case["cdm_group"]
    assert int(delta) == case["delta"]
    assert tuple(int(x) for x in wf) == tuple(case["wf"])
    assert tuple(int(x) for x in wt) == tuple(case["wt"])


@pytest.mark.parametrize("config_type,case", DMRS_PORTS, ids=[f"type{ct}-port{c['antenna_port']}" for ct, c in DMRS_PORTS])
def test_dmrs_subcarriers(config_type, case):
    got = dmrs_subcarriers(config_type, case["cdm_group"], GOLDEN["dmrs"]["num_subcarriers"])
    np.testing.assert_array_equal(np.asarray(got), case["subcarriers"])


@pytest.mark.parametrize("case", GOLDEN["dmrs"]["c_init"], ids=_ids(GOLDEN["dmrs"]["c_init"], "n_id", "n_scid", "slot", "symbol"))
def test_dmrs_c_init(case):
    assert dmrs_c_init(case["n_id"], case["n_scid"], case["slot"], case["symbol"]) == case["c_init"]


@pytest.mark.parametrize("config_type,num_ports", [(1, 8), (2, 12)])
def test_dmrs_cdm_orthogonality(config_type, num_ports):
    n_sc = 48
    params = {p: dmrs_port_params(config_type, p) for p in range(num_ports)}
    for p, q in itertools.combinations(range(num_ports), 2):
        gp, _, wfp, wtp = params[p]
        gq, _, wfq, wtq = params[q]
        if gp == gq:
            code_p = np.kron(np.asarray(wfp), np.asarray(wtp))
            code_q = np.kron(np.asarray(wfq), np.asarray(wtq))
            assert int(np.dot(code_p, code_q)) == 0, f"ports {p}, {q} share CDM group {gp} with non-orthogonal codes"
        else:
            kp = set(np.asarray(dmrs_subcarriers(config_type, gp, n_sc)).tolist())
            kq = set(np.asarray(dmrs_subcarriers(config_type, gq, n_sc)).tolist())
            assert not kp & kq, f"CDM groups {gp}, {gq} overlap"


# --------------------------------------------------------------------------- #
# 6.4.1.4 SRS, 5.2.2.1 low-PAPR sequence parameters
# --------------------------------------------------------------------------- #
SRS_SC = GOLDEN["srs"]["subcarriers"]


@pytest.mark.parametrize("case", SRS_SC, ids=_ids(SRS_SC, "comb_size", "comb_offset"))
def test_srs_subcarriers(case):
    got = srs_subcarriers(case["comb_size"], case["comb_offset"], GOLDEN["srs"]["num_subcarriers"])
    np.testing.assert_array_equal(np.asarray(got), case["subcarriers"])


SRS_PORTS = GOLDEN["srs"]["ports"]


@pytest.mark.parametrize("case", SRS_PORTS, ids=_ids(SRS_PORTS, "comb_size", "num_ports", "n_cs", "comb_offset"))
def test_srs_ports(case):
    k_tc, n_ap, n_cs = case["comb_size"], case["num_ports"], case["n_cs"]
    shifts = [int(srs_cyclic_shift(k_tc, n_cs, p, n_ap)) for p in range(n_ap)]
    offsets = [int(srs_comb_offset(k_tc, case["comb_offset"], n_cs, p, n_ap)) for p in range(n_ap)]
    assert shifts == case["n_cs_i"]
    assert offsets == case["comb_offset_i"]


ZC = GOLDEN["srs"]["zc"]


@pytest.mark.parametrize("case", ZC, ids=_ids(ZC, "m_zc", "u", "v"))
def test_zc_parameters(case):
    n_zc, q = zc_parameters(case["m_zc"], case["u"], case["v"])
    assert (int(n_zc), int(q)) == (case["n_zc"], case["q"])


# --------------------------------------------------------------------------- #
# 7.4.1.5 CSI-RS / TRS
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("case", GOLDEN["csirs"]["trs"], ids=_ids(GOLDEN["csirs"]["trs"], "k0"))
def test_trs_subcarriers(case):
    got = trs_subcarriers(case["k0"], GOLDEN["csirs"]["num_subcarriers"])
    np.testing.assert_array_equal(np.asarray(got), case["subcarriers"])


@pytest.mark.parametrize("case", GOLDEN["csirs"]["c_init"], ids=_ids(GOLDEN["csirs"]["c_init"], "n_id", "slot", "symbol"))
def test_csirs_c_init(case):
    assert csirs_c_init(case["n_id"], case["slot"], case["symbol"]) == case["c_init"]


# --------------------------------------------------------------------------- #
# 5.1 Modulation mapper
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("scheme", sorted(GOLDEN["qam"]))
def test_qam_mapping(scheme):
    q_m = GOLDEN["qam"][scheme]["bits_per_symbol"]
    expected = np.array([complex(re, im) for re, im in GOLDEN["qam"][scheme]["points"]])
    bits = np.array(
        [(index >> (q_m - 1 - j)) & 1 for index in range(2**q_m) for j in range(q_m)], dtype=np.uint8
    )
    got = np.asarray(modulate(bits, scheme))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
