"""Matplotlib helpers shared by the experiments (Agg backend, atomic PNG writes)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["pyplot", "save_figure", "rmse_plot"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save a figure as PNG through a temporary file and a rename (never a half-written file), and close it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".png", delete=False) as tmp:
        fig.savefig(tmp.name)
    pyplot().close(fig)
    os.chmod(tmp.name, 0o644)                          # a temporary file is created owner-only
    Path(tmp.name).replace(target)
    return target


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
