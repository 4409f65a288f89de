"""``sdr-isac experiment nodes``: each node-level cooperation mode against its single-node baseline.

The cases live in case modules (:mod:`sdr_isac.experiments.nodes_ris`,
:mod:`sdr_isac.experiments.nodes_mm_ue`), each exporting

- ``CASES``: ``{case: (quantities, description)}``, quantities such as
  ``("pos", "range", "velocity")`` with units in ``UNITS``;
- ``trial(point, rng) -> Metrics`` with, for every case and quantity, the
  errors ``f"{case}_{quantity}_err_single"`` and ``..._err_coop`` (NaN when
  the estimator had nothing to report), and optionally
  ``f"{case}_detected_single"`` / ``..._coop`` (1.0 or 0.0);
- ``bounds(snr_db) -> dict`` with ``f"{case}_crb_{quantity}_single"`` and
  ``..._coop`` (√CRB, same unit as the error).

This module runs every case module in one trial and turns the trials into
one summary row per case and quantity: RMSE over the trials that reported
(and how many did), √CRB, detection rates, the gain of cooperation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from sdr_isac.experiments import nodes_mm_ue, nodes_ris
from sdr_isac.experiments.plots import pyplot, save_figure
from sdr_isac.experiments.runner import Metrics, Point, Scenario, rmse

__all__ = ["nodes_scenario", "trial", "summarise", "MODULES", "UNITS"]

MODULES = (nodes_mm_ue, nodes_ris)
UNITS = {"pos": "m", "range": "m", "velocity": "m/s", "angle": "rad", "speed": "m/s"}
SNR_DB = (-20.0, -10.0, 0.0)


def trial(point: Point, rng: np.random.Generator) -> Metrics:
    """One trial of every case module, each on its own stream of the trial's generator."""
    out: Metrics = {}
    for module, seed in zip(MODULES, rng.spawn(len(MODULES)), strict=True):
        out.update(module.trial(point, seed))
    return out


def summarise(point: Point, trials: list[Metrics]) -> list[dict[str, Any]]:
    rows = []
    for module in MODULES:
        crb = module.bounds(point["snr_db"])
        for case, (quantities, description) in module.CASES.items():
            for quantity in quantities:
                row: dict[str, Any] = {"snr_db": point["snr_db"], "case": case, "quantity": quantity,
                                       "unit": UNITS.get(quantity, ""), "description": description}
                for method in ("single", "coop"):
                    errs = [t.get(f"{case}_{quantity}_err_{method}", math.nan) for t in trials]
                    row[f"rmse_{method}"] = rmse(errs, skip_nan=True)
                    row[f"reported_{method}"] = sum(math.isfinite(e) for e in errs)
                    row[f"crb_{method}"] = crb.get(f"{case}_crb_{quantity}_{method}", math.nan)
                    det = [t[f"{case}_detected_{method}"] for t in trials if f"{case}_detected_{method}" in t]
                    row[f"detected_{method}"] = float(np.mean(det)) if det else math.nan
                row["trials"] = len(trials)
                ok = row["rmse_single"] > 0 and math.isfinite(row["rmse_single"]) and math.isfinite(row["rmse_coop"])
                row["gain_db"] = 20 * math.log10(row["rmse_single"] / row["rmse_coop"]) if ok else math.nan
                rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'SNR':>5s} {'case':14s} {'qty':8s} {'unit':4s} | {'RMSE single':>11s} {'√CRB single':>11s} "
             f"{'det':>5s} | {'RMSE coop':>10s} {'√CRB coop':>10s} {'det':>5s} | {'gain dB':>7s}"]
    for r in rows:
        lines.append(f"{r['snr_db']:5.0f} {r['case']:14s} {r['quantity']:8s} {r['unit']:4s} | "
                     f"{r['rmse_single']:11.4g} {r['crb_single']:11.4g} {r['detected_single']:5.2f} | "
                     f"{r['rmse_coop']:10.4g} {r['crb_coop']:10.4g} {r['detected_coop']:5.2f} | {r['gain_db']:7.2f}")
    lines.append("RMSE over the trials that reported an estimate; det: fraction of trials with the target detected "
                 "(nan where the case has no detection step)")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    plt = pyplot()
    keys = sorted({(r["case"], r["quantity"]) for r in rows})
    cols = 3
    fig, axes = plt.subplots(math.ceil(len(keys) / cols), cols, figsize=(12, 3.2 * math.ceil(len(keys) / cols)),
                             dpi=100, squeeze=False)
    for ax, (case, quantity) in zip(axes.ravel(), keys, strict=False):
        sel = sorted((r for r in rows if r["case"] == case and r["quantity"] == quantity), key=lambda r: r["snr_db"])
        snr = [r["snr_db"] for r in sel]
        for method, fmt in (("single", "C0o-"), ("coop", "C2^-")):
            ax.semilogy(snr, [r[f"rmse_{method}"] for r in sel], fmt, label=f"{method} RMSE", ms=4)
            ax.semilogy(snr, [r[f"crb_{method}"] for r in sel], fmt[:2] + ":", label=f"{method} √CRB")
        ax.set_title(f"{case}: {quantity} ({UNITS.get(quantity, '')})", fontsize=9)
        ax.set_xlabel("SNR per RE (dB)", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes.ravel()[len(keys):]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    return [save_figure(fig, out / "nodes.png")]


def nodes_scenario() -> Scenario:
    cases = [c for m in MODULES for c in m.CASES]
    return Scenario(name="nodes", description=f"node-level cooperation vs single node: {', '.join(cases)}",
                    points=tuple({"snr_db": s} for s in SNR_DB), trial=trial, summarise=summarise, plot=plot,
                    default_trials=200, table=table)
