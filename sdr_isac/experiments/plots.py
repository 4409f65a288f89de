"""Plots of the experiments; the Agg backend and the atomic PNG write are :mod:`sdr_isac.sensing.plots`'s."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sdr_isac.sensing.plots import pyplot, save_figure

__all__ = ["pyplot", "save_figure", "rmse_plot"]


def rmse_plot(path: str | Path, x: Sequence[float], curves: Sequence[tuple[str, Sequence[float], str]],
              xlabel: str, ylabel: str, title: str, hlines: Sequence[tuple[str, float]] = ()) -> Path:
    """RMSE curves on a log axis: ``curves`` are (label, values, matplotlib format) triples."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=110)
    for label, values, fmt in curves:
        ax.semilogy(x, values, fmt, label=label, ms=4)
    for label, value in hlines:
        ax.axhline(value, color="grey", ls=":", lw=1)
        ax.annotate(label, (x[-1], value), textcoords="offset points", xytext=(-4, 3), ha="right",
                    fontsize=8, color="grey")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return save_figure(fig, path)
