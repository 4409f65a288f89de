"""``sdr-isac experiment roc``: detection accuracy as P_d / P_fa of the configured CFAR (article §II-B).

Each trial draws range-Doppler maps of one on-grid target at the point's SNR in its map cell and runs the
project's CFAR (:func:`sdr_isac.fusion.metrics.roc_curve`, the detector of ``[sensing]`` of the built-in
default configuration) at every design false-alarm probability of ``PFA_DESIGN``, on two kinds of map:
``independent`` (no window, no oversampling: noise cells independent and exponential) and ``default``
(the default's Hann windows and 2x oversampling: neighbouring cells, and so the training cells, are
correlated; the CA-CFAR's threshold accounts for that correlation, :func:`sdr_isac.sensing.cfar.cell_correlation`,
so the measured P_fa stays on the design on both).  The summary row of a
(SNR, P_fa) pair holds the measured P_d and P_fa over all trials and, beside them, the theory: P_d of a
square-law detector of a non-fluctuating target behind a CA-CFAR of the detector's training cells
(:func:`sdr_isac.fusion.metrics.detection_probability`) and the design P_fa.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sp_stats

from sdr_isac import config as config_mod
from sdr_isac.errors import InputError
from sdr_isac.experiments.plots import pyplot, save_figure
from sdr_isac.experiments.runner import Metrics, Point, Scenario
from sdr_isac.fusion.metrics import detection_probability, roc_curve

__all__ = ["roc_scenario", "trial", "summarise", "PFA_DESIGN", "SNR_DB"]

#: design false-alarm probabilities of the sweep
PFA_DESIGN = (1e-1, 1e-2, 1e-3, 1e-4)
#: SNR of the target in its map cell, dB
SNR_DB = (3.0, 6.0, 9.0, 12.0, 15.0)
#: maps per trial
MAPS_PER_TRIAL = 10
#: the kinds of map: independent cells (no window, no oversampling) and the default sensing maps
MAP_KINDS = ("independent", "default")


def trial(point: Point, rng: np.random.Generator) -> Metrics:
    """``MAPS_PER_TRIAL`` maps at the point's SNR: detections, false alarms and tested cells per design P_fa."""
    maps = point.get("maps")
    if maps not in MAP_KINDS:
        raise InputError(f"maps = {maps!r}: allowed {' or '.join(MAP_KINDS)} (the kind of range-Doppler map the "
                         "CFAR runs on); give the point a maps key")
    sensing = config_mod.default().sensing
    if maps == "independent":
        sensing = dataclasses.replace(sensing, window_range="none", window_doppler="none", range_oversampling=1,
                                      doppler_oversampling=1)
    roc = roc_curve(float(point["snr_db"]), PFA_DESIGN, sensing, rng, num_trials=MAPS_PER_TRIAL)
    out: Metrics = {"num_training": float(roc.num_training), "maps": float(roc.num_trials)}
    for i, pfa in enumerate(PFA_DESIGN):
        out[f"detected_{pfa:g}"] = float(roc.num_detected[i])
        out[f"false_{pfa:g}"] = float(roc.num_false[i])
        out[f"cells_{pfa:g}"] = float(roc.num_cells[i])
    return out


def summarise(point: Point, trials: list[Metrics]) -> list[dict[str, Any]]:
    rows = []
    maps = sum(t["maps"] for t in trials)
    training = int(trials[0]["num_training"]) if trials else 0
    for pfa in PFA_DESIGN:
        detected = sum(t[f"detected_{pfa:g}"] for t in trials)
        false = sum(t[f"false_{pfa:g}"] for t in trials)
        cells = sum(t[f"cells_{pfa:g}"] for t in trials)
        theory = float(detection_probability(float(point["snr_db"]), pfa, training)) if training else math.nan
        low, high = _clopper_pearson(int(round(detected)), int(maps))
        rows.append({"maps": point["maps"], "snr_db": point["snr_db"], "pfa_design": pfa,
                     "pd": detected / maps if maps else math.nan, "pd_low": low, "pd_high": high,
                     "pd_theory": theory,
                     "pfa": false / cells if cells else math.nan, "num_maps": maps, "cells": cells,
                     "num_training": training})
    return rows


def _clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) ``confidence`` interval of a binomial proportion of ``k`` in ``n``."""
    if n <= 0:
        return math.nan, math.nan
    alpha = 1.0 - confidence
    low = float(sp_stats.beta.ppf(alpha / 2, k, n - k + 1)) if k > 0 else 0.0
    high = float(sp_stats.beta.ppf(1 - alpha / 2, k + 1, n - k)) if k < n else 1.0
    return low, high


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'maps':11s} {'SNR dB':>6s} {'P_fa design':>11s} | {'P_fa measured':>13s} | {'P_d':>6s} "
             f"{'95 % interval':>13s} {'P_d theory':>10s} | maps"]
    for r in rows:
        lines.append(f"{r['maps']:11s} {r['snr_db']:6.1f} {r['pfa_design']:11.0e} | {r['pfa']:13.3e} | {r['pd']:6.3f} "
                     f"{r['pd_low']:6.3f}-{r['pd_high']:.3f} {r['pd_theory']:10.3f} | {int(r['num_maps'])}")
    training = rows[0]["num_training"] if rows else 0
    lines.append(f"theory: square-law detector, non-fluctuating target, CA-CFAR of {training} training cells "
                 "(fusion.metrics.detection_probability), exact for independent cells only: the default maps' "
                 "cells are correlated (taper, zero padding), and their P_d lies below it; interval: Clopper-Pearson")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    plt = pyplot()
    kinds = sorted({r["maps"] for r in rows})
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4.2), dpi=100, squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for i, snr in enumerate(sorted({r["snr_db"] for r in rows})):
            sel = sorted((r for r in rows if r["snr_db"] == snr and r["maps"] == kind), key=lambda r: r["pfa_design"])
            ax.errorbar([r["pfa"] for r in sel], [r["pd"] for r in sel],
                        yerr=[[r["pd"] - r["pd_low"] for r in sel], [r["pd_high"] - r["pd"] for r in sel]],
                        fmt=f"C{i}o", ms=4, capsize=2, label=f"{snr:g} dB")
            ax.set_xscale("log")
            ax.semilogx([r["pfa_design"] for r in sel], [r["pd_theory"] for r in sel], f"C{i}-", lw=1)
        ax.set_xlabel("P_fa (dots: measured; lines: theory at the design P_fa)")
        ax.set_ylabel("P_d")
        ax.set_title(f"ROC of the CFAR, {kind} maps" + ("" if kind == "independent" else
                                                          " (theory: independent cells)"), fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return [save_figure(fig, out / "roc.png")]


def roc_scenario() -> Scenario:
    return Scenario(name="roc", description="detection accuracy: P_d / P_fa of the CFAR over a P_fa sweep, with theory",
                    points=tuple({"maps": m, "snr_db": s} for m in MAP_KINDS for s in SNR_DB), trial=trial,
                    summarise=summarise, plot=plot, default_trials=20, table=table)
