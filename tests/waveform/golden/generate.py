#!/usr/bin/env python3
"""Generate 3GPP TS 38.211 golden vectors for the sdr_isac waveform conformance tests.

This script is deliberately independent of ``sdr_isac`` and of numpy: it uses
only the Python standard library and evaluates the equations and tables of
TS 38.211 (Rel-15/16 text) one value at a time, with exact integer/Fraction
arithmetic where the standard is exact.  Its output, ``nr_golden.json`` next to
this file, is what ``tests/waveform/test_conformance.py`` compares the package
against.

Sections of the output and where they come from:

``gold``        Sec. 5.2.1  Pseudo-random (length-31 Gold) sequence, N_c = 1600,
                x1/x2 recursions computed bit by bit; 256 bits for each c_init.
                Self-check: c_init = 1000 must reproduce the check value in
                ../shared/REFERENCE.md (first 64 bits).
``cp``          Sec. 5.3.1  Cyclic-prefix lengths in samples, from T_c = 1/(480e3*4096),
                kappa = 64, N_CP = 144*kappa*2^-mu (+16*kappa at l = 0 and
                l = 7*2^mu of the subframe), extended CP 512*kappa*2^-mu,
                converted exactly to samples at f_s = N_FFT * 15 kHz * 2^mu.
``prs``         Sec. 7.4.1.7.2 / 7.4.1.7.3  DL-PRS c_init and RE pattern
                k = m*K_comb + ((k_offset + k'(l - l_start)) mod K_comb),
                k' from Table 7.4.1.7.3-1.  Valid (K_comb, L_PRS) pairs are the
                entries of that table: L_PRS >= K_comb and L_PRS a multiple of
                K_comb (so (4, 6) is not a valid pair).
``dmrs``        Sec. 7.4.1.1.1 / 7.4.1.1.2  PDSCH DM-RS c_init (Rel-15 form),
                symbol positions for mapping type A from Tables 7.4.1.1.2-3
                (single symbol, l1 = 11) and 7.4.1.1.2-4 (double symbol,
                both symbols l-bar and l-bar+1 listed), port parameters from
                Tables 7.4.1.1.2-1 (type 1) and 7.4.1.1.2-2 (type 2), and
                subcarriers k = 4n + 2k' + Delta (type 1), 6n + k' + Delta (type 2).
``srs``         Sec. 6.4.1.4.2 / 6.4.1.4.3  SRS comb subcarriers k = K_TC*k' + k_TC,
                per-port cyclic shift n_cs^i and per-port comb offset (4-port
                rule), and Sec. 5.2.2.1 low-PAPR base-sequence parameters
                (N_ZC, q) for M_ZC >= 36.
``csirs``       Sec. 7.4.1.5.2 / 7.4.1.5.3  CSI-RS c_init and the TRS RE pattern
                (Table 7.4.1.5.3-1 row 1: 1 port, density 3, k-bar = k0, k0+4, k0+8).
``qam``         Sec. 5.1.2 - 5.1.6  BPSK, QPSK, 16QAM, 64QAM, 256QAM: the complex
                symbol for every bit pattern, pattern index = bits b(i), b(i+1), ...
                read MSB first; [re, im] rounded to 12 significant digits.

Rerun (from the repository root) after changing anything here:

    python tests/waveform/golden/generate.py

The output is deterministic (sorted keys, fixed formatting); running it twice
gives byte-identical files.
"""

import json
import math
import os
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_PATH = os.path.join(HERE, "nr_golden.json")

N_SC = 48  # 4 resource blocks, used for all frequency-domain patterns
N_SYMB_SLOT = 14  # normal cyclic prefix

# Check value from ../shared/REFERENCE.md section 2 (c_init = 1000, first 64 bits).
GOLD_CHECK_C_INIT = 1000
GOLD_CHECK_BITS = "0000110001010100010001100110100010010110101001110001101010000111"


# --------------------------------------------------------------------------- #
# 5.2.1 Pseudo-random sequence
# --------------------------------------------------------------------------- #
def gold_sequence(c_init, length):
    """c(n), n = 0..length-1, straight from the x1/x2 recursions of Sec. 5.2.1."""
    n_c = 1600
    total = n_c + length + 31
    x1 = [0] * total
    x2 = [0] * total
    x1[0] = 1  # x1(0) = 1, x1(n) = 0 for n = 1..30
    for i in range(31):  # c_init = sum_i x2(i) 2^i
        x2[i] = (c_init >> i) & 1
    for n in range(total - 31):
        x1[n + 31] = (x1[n + 3] + x1[n]) % 2
        x2[n + 31] = (x2[n + 3] + x2[n + 2] + x2[n + 1] + x2[n]) % 2
    return [(x1[n + n_c] + x2[n + n_c]) % 2 for n in range(length)]


def bits_to_str(bits):
    return "".join("1" if b else "0" for b in bits)


def section_gold():
    check = bits_to_str(gold_sequence(GOLD_CHECK_C_INIT, 64))
    if check != GOLD_CHECK_BITS:
        raise SystemExit("Gold sequence self-check failed: %s != %s" % (check, GOLD_CHECK_BITS))
    out = {}
    for c_init in (1, 1000, 12345, 2**31 - 1, 0x5A5A5A5):
        out[str(c_init)] = bits_to_str(gold_sequence(c_init, 256))
    return {"length": 256, "sequences": out}


# --------------------------------------------------------------------------- #
# 5.3.1 OFDM baseband signal generation: cyclic prefix
# --------------------------------------------------------------------------- #
T_C = Fraction(1, 480000 * 4096)  # seconds
KAPPA = 64


def cp_samples(n_cp_tc, mu, n_fft):
    """Convert a CP length in units of T_c to samples at f_s = N_FFT * 15 kHz * 2^mu."""
    f_s = n_fft * 15000 * 2**mu
    samples = Fraction(n_cp_tc) * T_C * f_s
    if samples.denominator != 1:
        raise SystemExit("non-integer CP length %s for mu=%d N_FFT=%d" % (samples, mu, n_fft))
    return int(samples)


def cp_subframe_normal(mu, n_fft):
    """Per-symbol CP (samples) for the 14*2^mu symbols of one subframe, normal CP."""
    out = []
    for l in range(14 * 2**mu):
        n_cp = Fraction(144 * KAPPA, 2**mu)
        if l == 0 or l == 7 * 2**mu:
            n_cp += 16 * KAPPA
        out.append(cp_samples(n_cp, mu, n_fft))
    return out


def cp_subframe_extended(mu, n_fft):
    """Per-symbol CP (samples) for the 12*2^mu symbols of one subframe, extended CP."""
    return [cp_samples(Fraction(512 * KAPPA, 2**mu), mu, n_fft) for _ in range(12 * 2**mu)]


def section_cp():
    normal = {}
    for mu in range(5):
        normal[str(mu)] = {str(n_fft): cp_subframe_normal(mu, n_fft) for n_fft in (2048, 4096)}
    extended = {"2": {str(n_fft): cp_subframe_extended(2, n_fft) for n_fft in (2048, 4096)}}
    return {
        "normal": normal,
        "extended": extended,
        "note": "one subframe per list, starting at symbol 0 of slot 0; key order mu -> N_FFT",
        "symbols_per_slot": {"normal": 14, "extended": 12},
    }


# --------------------------------------------------------------------------- #
# 7.4.1.7 DL PRS
# --------------------------------------------------------------------------- #
# Table 7.4.1.7.3-1: k' as a function of l - l_start (columns 0..11), per K_comb.
PRS_K_PRIME = {
    2: [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
    4: [0, 2, 1, 3, 0, 2, 1, 3, 0, 2, 1, 3],
    6: [0, 3, 1, 4, 2, 5, 0, 3, 1, 4, 2, 5],
    12: [0, 6, 3, 9, 1, 7, 4, 10, 2, 8, 5, 11],
}
# Entries defined in Table 7.4.1.7.3-1 (K_comb -> allowed L_PRS).
PRS_VALID = {2: (2, 4, 6, 12), 4: (4, 12), 6: (6, 12), 12: (12,)}


def prs_c_init(n_id, slot, symbol):
    return (
        2**22 * (n_id // 1024)
        + 2**10 * (N_SYMB_SLOT * slot + symbol + 1) * (2 * (n_id % 1024) + 1)
        + (n_id % 1024)
    ) % 2**31


def section_prs():
    patterns = []
    for k_comb in sorted(PRS_VALID):
        for l_prs in PRS_VALID[k_comb]:
            for k_offset in (0, 1):
                if k_offset >= k_comb:
                    continue
                rows = []
                for i in range(l_prs):
                    k_prime = PRS_K_PRIME[k_comb][i]
                    row = []
                    m = 0
                    while True:
                        k = m * k_comb + (k_offset + k_prime) % k_comb
                        if k >= N_SC:
                            break
                        row.append(k)
                        m += 1
                    rows.append(row)
                patterns.append(
                    {"comb_size": k_comb, "num_symbols": l_prs, "re_offset": k_offset, "subcarriers": rows}
                )
    c_init = []
    for n_id, slot, symbol, mu in (
        (0, 0, 0, 0),
        (1, 0, 0, 0),
        (1023, 9, 13, 0),
        (1024, 3, 5, 1),
        (2047, 19, 7, 1),
        (3000, 33, 2, 2),
        (4095, 79, 12, 3),
        (4095, 159, 13, 4),
    ):
        c_init.append(
            {"n_id": n_id, "slot": slot, "symbol": symbol, "numerology": mu, "c_init": prs_c_init(n_id, slot, symbol)}
        )
    return {"num_subcarriers": N_SC, "patterns": patterns, "c_init": c_init}


# --------------------------------------------------------------------------- #
# 7.4.1.1 PDSCH DM-RS
# --------------------------------------------------------------------------- #
# Table 7.4.1.1.2-3, PDSCH mapping type A, single-symbol DM-RS.  "l0" is the
# dmrs-TypeA-Position; l1 = 11 (the l1 = 12 exception needs lte-CRS-ToMatchAround
# and is not modelled).  Columns: dmrs-AdditionalPosition pos0..pos3.
DMRS_SINGLE_TYPE_A = {
    3: (["l0"], ["l0"], ["l0"], ["l0"]),
    4: (["l0"], ["l0"], ["l0"], ["l0"]),
    5: (["l0"], ["l0"], ["l0"], ["l0"]),
    6: (["l0"], ["l0"], ["l0"], ["l0"]),
    7: (["l0"], ["l0"], ["l0"], ["l0"]),
    8: (["l0"], ["l0", 7], ["l0", 7], ["l0", 7]),
    9: (["l0"], ["l0", 7], ["l0", 7], ["l0", 7]),
    10: (["l0"], ["l0", 9], ["l0", 6, 9], ["l0", 6, 9]),
    11: (["l0"], ["l0", 9], ["l0", 6, 9], ["l0", 6, 9]),
    12: (["l0"], ["l0", 9], ["l0", 6, 9], ["l0", 5, 8, 11]),
    13: (["l0"], ["l0", "l1"], ["l0", 7, 11], ["l0", 5, 8, 11]),
    14: (["l0"], ["l0", "l1"], ["l0", 7, 11], ["l0", 5, 8, 11]),
}
# Table 7.4.1.1.2-4, PDSCH mapping type A, double-symbol DM-RS (pos0, pos1).
DMRS_DOUBLE_TYPE_A = {
    4: (["l0"], ["l0"]),
    5: (["l0"], ["l0"]),
    6: (["l0"], ["l0"]),
    7: (["l0"], ["l0"]),
    8: (["l0"], ["l0"]),
    9: (["l0"], ["l0"]),
    10: (["l0"], ["l0", 8]),
    11: (["l0"], ["l0", 8]),
    12: (["l0"], ["l0", 8]),
    13: (["l0"], ["l0", 10]),
    14: (["l0"], ["l0", 10]),
}

# Table 7.4.1.1.2-1 (type 1) and 7.4.1.1.2-2 (type 2):
# port offset p - 1000 -> (CDM group lambda, Delta, [w_f(0), w_f(1)], [w_t(0), w_t(1)]).
DMRS_PORTS = {
    1: {
        0: (0, 0, [1, 1], [1, 1]),
        1: (0, 0, [1, -1], [1, 1]),
        2: (1, 1, [1, 1], [1, 1]),
        3: (1, 1, [1, -1], [1, 1]),
        4: (0, 0, [1, 1], [1, -1]),
        5: (0, 0, [1, -1], [1, -1]),
        6: (1, 1, [1, 1], [1, -1]),
        7: (1, 1, [1, -1], [1, -1]),
    },
    2: {
        0: (0, 0, [1, 1], [1, 1]),
        1: (0, 0, [1, -1], [1, 1]),
        2: (1, 2, [1, 1], [1, 1]),
        3: (1, 2, [1, -1], [1, 1]),
        4: (2, 4, [1, 1], [1, 1]),
        5: (2, 4, [1, -1], [1, 1]),
        6: (0, 0, [1, 1], [1, -1]),
        7: (0, 0, [1, -1], [1, -1]),
        8: (1, 2, [1, 1], [1, -1]),
        9: (1, 2, [1, -1], [1, -1]),
        10: (2, 4, [1, 1], [1, -1]),
        11: (2, 4, [1, -1], [1, -1]),
    },
}


def dmrs_positions(ld, l0, addpos, length):
    """l-bar of Tables 7.4.1.1.2-3/-4 resolved to slot symbol indices (type A)."""
    table = DMRS_SINGLE_TYPE_A if length == 1 else DMRS_DOUBLE_TYPE_A
    entry = table[ld][addpos]
    l_bar = []
    for e in entry:
        if e == "l0":
            l_bar.append(l0)
        elif e == "l1":
            l_bar.append(11)
        else:
            l_bar.append(e)
    symbols = []
    for lb in l_bar:
        for l_prime in range(length):  # l' = 0 (single), 0 and 1 (double)
            symbols.append(lb + l_prime)
    return sorted(symbols)


def dmrs_subcarriers(config_type, delta):
    out = []
    n = 0
    while True:
        base = 4 * n if config_type == 1 else 6 * n
        if base >= N_SC:
            break
        for k_prime in (0, 1):
            k = base + 2 * k_prime + delta if config_type == 1 else base + k_prime + delta
            if k < N_SC:
                out.append(k)
        n += 1
    return sorted(out)


def dmrs_c_init(n_id, n_scid, slot, symbol):
    return (2**17 * (N_SYMB_SLOT * slot + symbol + 1) * (2 * n_id + 1) + 2 * n_id + n_scid) % 2**31


def section_dmrs():
    symbols = []
    for length, table, max_add in ((1, DMRS_SINGLE_TYPE_A, 3), (2, DMRS_DOUBLE_TYPE_A, 1)):
        for ld in sorted(table):
            for l0 in (2, 3):
                # ld = 3 (single) / ld = 4 (double) only with dmrs-TypeA-Position = pos2.
                if l0 == 3 and ld == (3 if length == 1 else 4):
                    continue
                for addpos in range(max_add + 1):
                    # pos3 only supported with dmrs-TypeA-Position = pos2.
                    if addpos == 3 and l0 != 2:
                        continue
                    symbols.append(
                        {
                            "duration": ld,
                            "type_a_position": l0,
                            "additional_positions": addpos,
                            "length": length,
                            "symbols": dmrs_positions(ld, l0, addpos, length),
                        }
                    )
    ports = {}
    for config_type in (1, 2):
        entries = []
        for port in sorted(DMRS_PORTS[config_type]):
            lam, delta, wf, wt = DMRS_PORTS[config_type][port]
            entries.append(
                {
                    "port": port,
                    "antenna_port": 1000 + port,
                    "cdm_group": lam,
                    "delta": delta,
                    "wf": wf,
                    "wt": wt,
                    "subcarriers": dmrs_subcarriers(config_type, delta),
                }
            )
        ports[str(config_type)] = entries
    c_init = []
    for n_id, n_scid, slot, symbol in (
        (0, 0, 0, 2),
        (0, 1, 0, 2),
        (1, 0, 1, 3),
        (500, 1, 7, 11),
        (1007, 0, 19, 2),
        (12345, 1, 39, 13),
        (65535, 0, 79, 0),
        (65535, 1, 159, 12),
    ):
        c_init.append(
            {"n_id": n_id, "n_scid": n_scid, "slot": slot, "symbol": symbol,
             "c_init": dmrs_c_init(n_id, n_scid, slot, symbol)}
        )
    return {"num_subcarriers": N_SC, "symbols": symbols, "ports": ports, "c_init": c_init}


# --------------------------------------------------------------------------- #
# 6.4.1.4 SRS and 5.2.2.1 low-PAPR base sequences
# --------------------------------------------------------------------------- #
SRS_N_CS_MAX = {2: 8, 4: 12, 8: 6}
# Port counts checked per comb: with K_TC = 8 (n_cs_max = 6) and 4 ports the
# shift n_cs_max*(p-1000)/N_ap is not an integer; K_TC = 8 is the positioning
# SRS comb, kept here to a single port.
SRS_PORT_COUNTS = {2: (1, 2, 4), 4: (1, 2, 4), 8: (1,)}


def srs_cyclic_shift(k_tc, n_cs, port, n_ap):
    n_cs_max = SRS_N_CS_MAX[k_tc]
    shift = Fraction(n_cs_max * port, n_ap)
    if shift.denominator != 1:
        raise SystemExit("non-integer SRS cyclic shift")
    return (n_cs + int(shift)) % n_cs_max


def srs_comb_offset(k_tc, k_tc_bar, n_cs, port, n_ap):
    n_cs_max = SRS_N_CS_MAX[k_tc]
    if n_ap == 4 and port in (1, 3) and n_cs_max // 2 <= n_cs <= n_cs_max - 1:
        return (k_tc_bar + k_tc // 2) % k_tc
    return k_tc_bar


def is_prime(n):
    if n < 2:
        return False
    d = 2
    while d * d <= n:
        if n % d == 0:
            return False
        d += 1
    return True


def zc_parameters(m_zc, u, v):
    n_zc = m_zc - 1
    while not is_prime(n_zc):  # largest prime such that N_ZC < M_ZC
        n_zc -= 1
    q_bar = Fraction(n_zc * (u + 1), 31)
    q = math.floor(q_bar + Fraction(1, 2)) + v * (-1) ** math.floor(2 * q_bar)
    return n_zc, q


def section_srs():
    subcarriers = []
    for k_tc in (2, 4, 8):
        for k_off in range(k_tc):
            subcarriers.append(
                {"comb_size": k_tc, "comb_offset": k_off,
                 "subcarriers": [k_tc * kp + k_off for kp in range(N_SC // k_tc)]}
            )
    ports = []
    for k_tc in (2, 4, 8):
        n_cs_max = SRS_N_CS_MAX[k_tc]
        for n_ap in SRS_PORT_COUNTS[k_tc]:
            for n_cs in range(n_cs_max):
                for k_off in sorted({0, k_tc - 1}):
                    ports.append(
                        {
                            "comb_size": k_tc,
                            "n_cs_max": n_cs_max,
                            "num_ports": n_ap,
                            "n_cs": n_cs,
                            "comb_offset": k_off,
                            "n_cs_i": [srs_cyclic_shift(k_tc, n_cs, p, n_ap) for p in range(n_ap)],
                            "comb_offset_i": [srs_comb_offset(k_tc, k_off, n_cs, p, n_ap) for p in range(n_ap)],
                        }
                    )
    zc = []
    for m_zc in (36, 48, 96, 144, 288):
        for u in (0, 7, 29):
            for v in (0, 1):
                n_zc, q = zc_parameters(m_zc, u, v)
                zc.append({"m_zc": m_zc, "u": u, "v": v, "n_zc": n_zc, "q": q})
    return {"num_subcarriers": N_SC, "subcarriers": subcarriers, "ports": ports, "zc": zc}


# --------------------------------------------------------------------------- #
# 7.4.1.5 CSI-RS / TRS
# --------------------------------------------------------------------------- #
def csirs_c_init(n_id, slot, symbol):
    return (2**10 * (N_SYMB_SLOT * slot + symbol + 1) * (2 * n_id + 1) + n_id) % 2**31


def section_csirs():
    trs = []
    for k0 in range(4):
        ks = []
        for n in range(N_SC // 12):  # resource blocks
            for k_bar in (k0, k0 + 4, k0 + 8):  # Table 7.4.1.5.3-1 row 1
                ks.append(12 * n + k_bar)
        trs.append({"k0": k0, "subcarriers": sorted(ks)})
    c_init = []
    for n_id, slot, symbol in (
        (0, 0, 0),
        (1, 0, 4),
        (0, 1, 8),
        (500, 7, 4),
        (1023, 19, 8),
        (1023, 79, 13),
        (777, 159, 5),
    ):
        c_init.append({"n_id": n_id, "slot": slot, "symbol": symbol, "c_init": csirs_c_init(n_id, slot, symbol)})
    return {"num_subcarriers": N_SC, "trs": trs, "c_init": c_init}


# --------------------------------------------------------------------------- #
# 5.1 Modulation mapper
# --------------------------------------------------------------------------- #
def qam_point(scheme, b):
    """Complex symbol for bits b[0], b[1], ... per equations of Sec. 5.1.2 - 5.1.6."""
    s = [1 - 2 * x for x in b]  # (1 - 2 b(i))
    if scheme == "bpsk":
        re, im, norm = s[0], s[0], 2
    elif scheme == "qpsk":
        re, im, norm = s[0], s[1], 2
    elif scheme == "16qam":
        re = s[0] * (2 - s[2])
        im = s[1] * (2 - s[3])
        norm = 10
    elif scheme == "64qam":
        re = s[0] * (4 - s[2] * (2 - s[4]))
        im = s[1] * (4 - s[3] * (2 - s[5]))
        norm = 42
    elif scheme == "256qam":
        re = s[0] * (8 - s[2] * (4 - s[4] * (2 - s[6])))
        im = s[1] * (8 - s[3] * (4 - s[5] * (2 - s[7])))
        norm = 170
    else:
        raise ValueError(scheme)
    scale = 1.0 / math.sqrt(norm)
    return [float("%.12g" % (re * scale)), float("%.12g" % (im * scale))]


QAM_BITS = {"bpsk": 1, "qpsk": 2, "16qam": 4, "64qam": 6, "256qam": 8}


def section_qam():
    out = {}
    for scheme, q_m in QAM_BITS.items():
        points = []
        for index in range(2**q_m):
            bits = [(index >> (q_m - 1 - j)) & 1 for j in range(q_m)]  # MSB first = b(i)
            points.append(qam_point(scheme, bits))
        out[scheme] = {"bits_per_symbol": q_m, "points": points}
    return out


def main():
    golden = {
        "source": "3GPP TS 38.211; generated by tests/waveform/golden/generate.py",
        "gold": section_gold(),
        "cp": section_cp(),
        "prs": section_prs(),
        "dmrs": section_dmrs(),
        "srs": section_srs(),
        "csirs": section_csirs(),
        "qam": section_qam(),
    }
    text = json.dumps(golden, sort_keys=True, indent=1, separators=(",", ": "))
    with open(OUT_PATH, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text + "\n")
    print("wrote %s (%d bytes)" % (OUT_PATH, len(text) + 1))


if __name__ == "__main__":
    main()
