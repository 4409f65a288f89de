"""The article's Fig. 5: range and velocity RMSE of high band, low band and multi-band fusion.

Parameters of ``REFERENCE.md`` §4 (after Wei, Liu et al., IEEE TVT 2024):
high band 24 GHz, 120 kHz, CP 1.33 µs, a block pilot on every 4th symbol;
low band 5.9 GHz, 30 kHz, CP 5.975 µs, a comb pilot on every 4th
subcarrier; N = 512 subcarriers and M = 64 symbols in each band; one target
at R = 117 m moving away at v = 30 m/s, an independent random phase per
band; per-RE SNR ``snr_db`` on the pilot REs of both bands (the CIM model of
:mod:`sdr_isac.channel.cim`).

Each trial estimates with three sets of bands — high alone, low alone, both
fused (:func:`sdr_isac.fusion.multiband.estimate`: compressed-sensing
completion on the common grid, maps added) — and two estimators: the peak of
the map on the grid (``grid``) and the off-grid maximum-likelihood refinement
(``refined``, started at that map's peak).  The estimate-level baseline (``weighted``) combines the two
bands' refined estimates weighted by their CRBs at their measured SNRs
(:func:`sdr_isac.fusion.multiband.estimate_level_fusion`).  The fused map is also formed with zero-filling instead of
compressed sensing (``fused_zero``), the baseline of the completion.  Every
estimator searches ranges up to the common grid's unambiguous range and
speeds up to ``max_speed_mps`` = 80 m/s (a prior on the target, the same for
all; the high band's pilot every 4th symbol aliases at ±80.8 m/s).

The speed of light defaults to 3e8 m/s, the article's value: its grid is
then ``c / (2 N df_H)`` = 2.4414 m and ``c / (2 f_H T_H M)`` = 10.106 m/s,
and the grid-error floors for this target are 0.1875 m and 0.3176 m/s.  The
trial uses the same c to synthesise and to estimate, so the physics does not
depend on it; with c = 299 792 458 m/s the grid becomes 2.4397 m and the
floors 0.105 m and 0.297 m/s (``grid_floor`` computes them either way).

The RMSE of each point is over every trial: the threshold region's outliers are kept, bounded only by the
search region (at -30 dB the range RMSE, some 560 m, is set by it), and no trial is dropped.

The compressed-sensing completion recovers targets inside the speed prior only
(:func:`sdr_isac.fusion.multiband.completion_support`): the high band's pilots on every 4th symbol alias
every 16 Doppler bins, and without the prior its completion was zero-filling while the low band's
extrapolation multiplied its own peak, so the fused map followed the low band's coarser range.  Measured
with the default sweep (``sdr-isac experiment fig5``, 500 trials), grid range RMSE of the CS-fused map
before the prior and with it: -24 dB 0.61 -> 0.33 m, -22 dB 0.37 -> 0.19 m (the floor), -20 dB 0.26 ->
0.19 m; refined, -24 dB 0.22 -> 0.17 m, zero-filling's.  Deeper in the threshold region, where every fused
estimate is set by outliers, it grew (-30 dB 240 -> 265 m, -28 dB 80 -> 87 m; zero-filling 218 and 51 m):
the completed high band amplifies noise peaks inside the prior as well.  Zero-filling stays at or below
compressed sensing at every SNR (at the floor from -26 dB), unlike the article's Fig. 5.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np

from sdr_isac.channel.cim import measure_pilots
from sdr_isac.experiments.plots import rmse_plot
from sdr_isac.experiments.runner import Metrics, Point, Scenario, rmse
from sdr_isac.fusion.multiband import (
    Band,
    BandWork,
    CommonGrid,
    article_bands,
    common_grid,
    estimate,
    estimate_level_fusion,
)
from sdr_isac.sensing.crb import crb_from_fim

__all__ = ["fig5_scenario", "trial", "grid_floor", "bounds", "SNR_DB", "METHODS"]

RANGE_M = 117.0
VELOCITY_MPS = 30.0
C_ARTICLE = 3.0e8
MAX_SPEED_MPS = 80.0
SNR_DB = tuple(float(s) for s in range(-30, 11, 2))
#: estimators: (bands used, completion, which estimate) -> metric name suffix
METHODS = ("high_grid", "low_grid", "fused_grid", "fused_zero_grid", "high_refined", "low_refined",
           "fused_refined", "fused_zero_refined", "weighted_refined")


def synthesise(band: Band, range_m: float, velocity_mps: float, snr_db: float, rng: np.random.Generator,
               c: float) -> np.ndarray:
    """The band's measured CIM: unit-power echo with a random phase plus noise for ``snr_db`` per RE, on its pilots."""
    f_d = -2.0 * velocity_mps * band.carrier_hz / c          # moving away: negative Doppler
    return measure_pilots(band, [(2.0 * range_m / c, f_d, np.exp(2j * np.pi * rng.random()))], rng,
                          noise_var=10.0 ** (-snr_db / 10.0))


def trial(point: Point, rng: np.random.Generator) -> Metrics:
    """One Monte Carlo trial at ``point["snr_db"]``: signed errors of every estimator (m and m/s)."""
    c = float(point.get("c_mps", C_ARTICLE))
    r_true = float(point.get("range_m", RANGE_M))
    v_true = float(point.get("velocity_mps", VELOCITY_MPS))
    high, low, grid = _setup()
    h_high = synthesise(high, r_true, v_true, point["snr_db"], rng, c)
    h_low = synthesise(low, r_true, v_true, point["snr_db"], rng, c)
    # the four estimates and the estimate-level baseline share each band's transforms, noise levels and
    # refinements from equal starts (BandWork: the numbers of separate calls, to rounding, computed once)
    work = BandWork()
    kw: dict[str, Any] = {"grid": grid, "max_speed_mps": MAX_SPEED_MPS, "speed_of_light_mps": c, "work": work}
    results = {
        "high": estimate([high], [h_high], **kw),
        "low": estimate([low], [h_low], **kw),
        "fused": estimate([high, low], [h_high, h_low], completion="cs", **kw),
        "fused_zero": estimate([high, low], [h_high, h_low], completion="zero", **kw),
    }
    results["weighted"] = {"refined": estimate_level_fusion(
        [high, low], [h_high, h_low], [results["high"]["refined"], results["low"]["refined"]], c, work=work)}
    out: Metrics = {}
    for name, est in results.items():
        for kind, e in est.items():
            out[f"range_err_{name}_{kind}"] = e.range_m - r_true
            out[f"velocity_err_{name}_{kind}"] = e.velocity_mps - v_true
    return out


@functools.lru_cache(maxsize=1)
def _setup() -> tuple[Band, Band, CommonGrid]:
    """The article's bands and their common grid, built once per process (the same in every trial)."""
    high, low = article_bands()
    return high, low, common_grid([high, low])


def grid_floor(c: float = C_ARTICLE, range_m: float = RANGE_M,
               velocity_mps: float = VELOCITY_MPS) -> tuple[float, float]:
    """Distance from the target to the nearest node of the common (high-band) grid: (m, m/s).

    ``dR = c / (2 N df_H)``, ``dv = c / (2 f_H T_H M)``: the error of noise-free grid peak picking.
    """
    high, _ = article_bands()
    d_r = c / (2.0 * high.num_subcarriers * high.subcarrier_spacing_hz)
    d_v = c / (2.0 * high.carrier_hz * high.symbol_period_s * high.num_symbols)
    return abs(range_m - round(range_m / d_r) * d_r), abs(velocity_mps - round(velocity_mps / d_v) * d_v)


def bounds(snr_db: float, c: float = C_ARTICLE) -> dict[str, float]:
    """√CRB of range (m) and velocity (m/s) for the high band, the low band and both (Fisher informations added)."""
    high, low = article_bands()
    snr = 10.0 ** (snr_db / 10.0)
    fims = {"high": high.fim(snr), "low": low.fim(snr)}
    fims["fused"] = fims["high"] + fims["low"]
    out = {}
    for name, fim in fims.items():
        crb = crb_from_fim(fim)
        out[f"crb_range_{name}"] = math.sqrt(crb[0, 0]) * c / 2.0        # R = c tau / 2
        out[f"crb_velocity_{name}"] = math.sqrt(crb[1, 1]) * c / 2.0     # v = -c nu / 2
    return out


def summarise(point: Point, trials: list[Metrics]) -> list[dict[str, Any]]:
    c = float(point.get("c_mps", C_ARTICLE))
    row: dict[str, Any] = {"snr_db": point["snr_db"], "trials": len(trials)}
    for m in METHODS:
        row[f"rmse_range_{m}"] = rmse(t[f"range_err_{m}"] for t in trials)
    for m in METHODS:
        row[f"rmse_velocity_{m}"] = rmse(t[f"velocity_err_{m}"] for t in trials)
    row.update(bounds(point["snr_db"], c))
    floor_r, floor_v = grid_floor(c)
    row["grid_floor_range_m"], row["grid_floor_velocity_mps"] = floor_r, floor_v
    return [row]


def plot(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    snr = [r["snr_db"] for r in rows]
    files = []
    for quantity, unit, floor_key in (("range", "m", "grid_floor_range_m"),
                                      ("velocity", "m/s", "grid_floor_velocity_mps")):
        curves = [
            ("high band, grid", [r[f"rmse_{quantity}_high_grid"] for r in rows], "C0o--"),
            ("low band, grid", [r[f"rmse_{quantity}_low_grid"] for r in rows], "C1s--"),
            ("fused (CS), grid", [r[f"rmse_{quantity}_fused_grid"] for r in rows], "C2^--"),
            ("fused (zero-fill), grid", [r[f"rmse_{quantity}_fused_zero_grid"] for r in rows], "C4v:"),
            ("high band, refined", [r[f"rmse_{quantity}_high_refined"] for r in rows], "C0o-"),
            ("low band, refined", [r[f"rmse_{quantity}_low_refined"] for r in rows], "C1s-"),
            ("fused (CS), refined", [r[f"rmse_{quantity}_fused_refined"] for r in rows], "C2^-"),
            ("fused (zero-fill), refined", [r[f"rmse_{quantity}_fused_zero_refined"] for r in rows], "C4v-"),
            ("estimate level (CRB-weighted)", [r[f"rmse_{quantity}_weighted_refined"] for r in rows], "C5d-"),
            ("√CRB high", [r[f"crb_{quantity}_high"] for r in rows], "C0:"),
            ("√CRB low", [r[f"crb_{quantity}_low"] for r in rows], "C1:"),
            ("√CRB fused", [r[f"crb_{quantity}_fused"] for r in rows], "k-"),
        ]
        files.append(rmse_plot(out / f"fig5_{quantity}.png", snr, curves, "SNR per RE (dB)",
                               f"RMSE of {quantity} ({unit})",
                               f"Multi-band {quantity} estimation, {rows[0]['trials']} trials per point",
                               hlines=[(f"grid error {rows[0][floor_key]:.4g} {unit}", rows[0][floor_key])]))
    return files


def table(rows: list[dict[str, Any]]) -> str:
    """RMSE of each estimator and √CRB of the fused bands, per SNR."""
    methods = ("high_grid", "low_grid", "fused_grid", "fused_zero_grid", "fused_refined", "fused_zero_refined")
    names = ("high", "low", "csG", "zeroG", "csR", "zeroR", "√CRB")
    width = 8 * len(names)
    lines = [f"{'SNR':>5s} | {'range RMSE (m)':^{width}s} | {'velocity RMSE (m/s)':^{width}s}",
             f"{'dB':>5s} | " + " ".join(f"{n:>7s}" for n in names) + " | " + " ".join(f"{n:>7s}" for n in names)]
    for r in rows:
        cells = [f"{r['snr_db']:5.0f} |"]
        for q in ("range", "velocity"):
            cells += [f"{r[f'rmse_{q}_{m}']:7.4g}" for m in methods]
            cells += [f"{r[f'crb_{q}_fused']:7.4g}", "|" if q == "range" else ""]
        lines.append(" ".join(cells).rstrip(" |"))
    lines.append("high/low: one band, grid peak; csG/zeroG: fused map (CS completion / zero-filling), grid peak; "
                 "csR/zeroR: joint off-grid refinement from that peak; √CRB of the fused bands")
    return "\n".join(lines)


def fig5_scenario() -> Scenario:
    return Scenario(
        name="fig5",
        description="article Fig. 5: range/velocity RMSE vs per-RE SNR, 24 GHz + 5.9 GHz bands and their fusion",
        points=tuple({"snr_db": s} for s in SNR_DB),
        trial=trial, summarise=summarise, plot=plot, default_trials=500, table=table)
