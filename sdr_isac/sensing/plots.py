"""Figures of sensing results: matplotlib on the Agg backend, written atomically.

``matplotlib`` is imported lazily, by :func:`pyplot`; nothing here loads it at import.  The experiments
(:mod:`sdr_isac.experiments.plots`) and the demo host outputs (:mod:`sdr_isac.stream.demo`) draw with these.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from sdr_isac.recording._atomic import write_file
from sdr_isac.sensing.pipeline import SensingResult

__all__ = ["pyplot", "save_figure", "plot_range_doppler"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save a figure as PNG atomically (never a half-written file, folders made as needed), and close it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    png = io.BytesIO()
    fig.savefig(png, format="png")
    pyplot().close(fig)
    write_file(target, png.getvalue())
    return target


def plot_range_doppler(result: SensingResult, truth: list[dict[str, Any]], path: Path, title: str) -> None:
    """Save the map in dB over noise with axes in m and m/s, the detections (x) and the truth (o).

    Parameters
    ----------
    result : SensingResult
        With its ``map`` (nothing is drawn without one) and ``diagnostics["noise_var"]``.
    truth : list of dict
        Truth paths; the monostatic targets (``kind = "target"`` with ``range_m``, ``velocity_mps``) are marked.
    path : Path
        The PNG file.
    title : str
        Figure title.
    """
    plt = pyplot()
    rd = result.map
    if rd is None:
        return
    noise = result.diagnostics["noise_var"] * rd.noise_gain * rd.cells.shape[0]
    db = 10 * np.log10(np.maximum(rd.power / noise, 1e-3))
    velocity = rd.velocity_mps
    if velocity[-1] < velocity[0]:                       # v = -f_D lambda / 2 falls along the Doppler axis
        velocity, db = velocity[::-1], db[:, ::-1]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    extent = (velocity[0], velocity[-1], rd.range_m[0], rd.range_m[-1])
    image = ax.imshow(db, origin="lower", aspect="auto", extent=extent, vmin=0, vmax=max(30.0, float(db.max())),
                      cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="power over noise (dB)")
    for det in result.detections:
        ax.plot(det.velocity_mps, det.range_m, "x", color="red", ms=10, mew=2)
    # the node's own (monostatic) target echoes; bistatic paths from other nodes carry range sums instead
    targets = [p for p in truth if p.get("kind") == "target" and "range_m" in p]
    for p in targets:
        ax.plot(p["velocity_mps"], p["range_m"], "o", mfc="none", mec="white", ms=14, mew=1.5)
    ax.set_xlabel("radial velocity (m/s, positive away)")
    ax.set_ylabel("range (m)")
    top = max([p["range_m"] for p in targets] + [10.0]) * 1.5
    ax.set_ylim(0, min(top, rd.range_m[-1]))
    span = max([abs(p["velocity_mps"]) for p in targets] + [10.0]) * 3
    ax.set_xlim(max(-span, velocity[0]), min(span, velocity[-1]))
    ax.set_title(f"{title} — x detections, o truth")
    fig.tight_layout()
    save_figure(fig, path)
