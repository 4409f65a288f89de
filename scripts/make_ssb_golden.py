#!/usr/bin/env python3
"""Golden vectors of the SS/PBCH block, written from the standard's equations with the standard library only.

Independent of the ``sdr_isac`` package (no import of it, no numpy), so
``tests/waveform/test_ssb.py`` compares two implementations:

- PSS (TS 38.211 §7.4.2.2.1), SSS (§7.4.2.3.1) for a set of cell identities;
- the Gold sequence c(n) (§5.2.1) and the PBCH DMRS c_init and QPSK symbols
  (§7.4.1.4.1), signs of real and imaginary part kept as strings;
- the PBCH DMRS REs within the block (Table 7.4.3.1-1);
- the first symbols of the candidate blocks of cases A ... E (TS 38.213 §4.1).

Run: ``python scripts/make_ssb_golden.py`` (writes tests/waveform/golden/ssb_golden.json).
"""

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "waveform" / "golden" / "ssb_golden.json"
NC = 1600


def m_seq(init_x6_to_x0, taps):
    """x(i+7) = sum of x(i + t) for t in taps, mod 2; init given as [x(6) ... x(0)]."""
    x = list(reversed(init_x6_to_x0))
    while len(x) < 127:
        i = len(x) - 7
        x.append(sum(x[i + t] for t in taps) % 2)
    return x


def pss(n2):
    x = m_seq([1, 1, 1, 0, 1, 1, 0], (4, 0))
    return [1 - 2 * x[(n + 43 * n2) % 127] for n in range(127)]


def sss(n1, n2):
    x0 = m_seq([0, 0, 0, 0, 0, 0, 1], (4, 0))
    x1 = m_seq([0, 0, 0, 0, 0, 0, 1], (1, 0))
    m0 = 15 * (n1 // 112) + 5 * n2
    m1 = n1 % 112
    return [(1 - 2 * x0[(n + m0) % 127]) * (1 - 2 * x1[(n + m1) % 127]) for n in range(127)]


def gold(c_init, length):
    total = length + NC + 31
    x1 = [1] + [0] * 30
    x2 = [(c_init >> i) & 1 for i in range(31)]
    for n in range(total - 31):
        x1.append((x1[n + 3] + x1[n]) % 2)
        x2.append((x2[n + 3] + x2[n + 2] + x2[n + 1] + x2[n]) % 2)
    return [(x1[n + NC] + x2[n + NC]) % 2 for n in range(length)]


def dmrs_c_init(cell, i_ssb, n_hf, l_max):
    i_bar = (i_ssb % 4) + 4 * n_hf if l_max == 4 else i_ssb % 8
    return 2 ** 11 * (i_bar + 1) * (cell // 4 + 1) + 2 ** 6 * (i_bar + 1) + (cell % 4)


def dmrs_signs(c_init):
    """r(m) = [(1 - 2 c(2m)) + j (1 - 2 c(2m+1))] / sqrt(2) as a string of sign pairs: '+-' is (1 - j) / sqrt(2)."""
    c = gold(c_init, 288)
    return "".join(("+" if c[2 * m] == 0 else "-") + ("+" if c[2 * m + 1] == 0 else "-") for m in range(144))


def dmrs_res(cell):
    """(l, k) of PBCH DMRS m = 0 ... 143, increasing k then l (Table 7.4.3.1-1)."""
    nu = cell % 4
    res = [(1, k) for k in range(240) if k % 4 == nu]
    res += [(2, k) for k in range(240) if k % 4 == nu and (k <= 44 + nu or k >= 192 + nu)]
    res += [(3, k) for k in range(240) if k % 4 == nu]
    return res


def burst(case, l_max):
    if case in ("A", "C"):
        ns = range(2) if l_max == 4 else range(4)
        first = [s + 14 * n for n in ns for s in (2, 8)]
    elif case == "B":
        ns = range(1) if l_max == 4 else range(2)
        first = [s + 28 * n for n in ns for s in (4, 8, 16, 20)]
    elif case == "D":
        first = [s + 28 * n for n in (0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18) for s in (4, 8, 16, 20)]
    else:
        first = [s + 56 * n for n in (0, 1, 2, 3, 5, 6, 7, 8) for s in (8, 12, 16, 20, 32, 36, 40, 44)]
    return sorted(first)


def main():
    cells = [0, 1, 2, 3, 17, 111, 335, 336, 337, 500, 671, 1005, 1006, 1007]
    dmrs_cases = [(0, 0, 0, 8), (17, 3, 0, 8), (17, 3, 0, 64), (17, 11, 0, 64), (1007, 7, 0, 8),
                  (503, 2, 1, 4), (503, 2, 0, 4), (42, 63, 0, 64), (1, 0, 1, 4)]
    golden = {
        "pss": {str(n2): pss(n2) for n2 in range(3)},
        "sss": {str(c): sss(c // 3, c % 3) for c in cells},
        "pbch_dmrs": [{"n_cell_id": c, "i_ssb": i, "n_hf": h, "l_max": lm, "c_init": dmrs_c_init(c, i, h, lm),
                       "signs": dmrs_signs(dmrs_c_init(c, i, h, lm))} for c, i, h, lm in dmrs_cases],
        "dmrs_res": {str(nu): dmrs_res(nu) for nu in range(4)},
        "burst": {f"{case}{lm}": burst(case, lm)
                  for case, lms in (("A", (4, 8)), ("B", (4, 8)), ("C", (4, 8)), ("D", (64,)), ("E", (64,)))
                  for lm in lms},
        "gold_check": {"c_init": 1000, "bits": "".join(map(str, gold(1000, 64)))},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(golden, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
