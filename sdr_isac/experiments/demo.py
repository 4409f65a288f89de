"""Outputs of ``sdr-isac demo``: the per-node table, the range-Doppler PNG and atomic JSON files.

The demo itself runs as separate processes (:mod:`sdr_isac.stream.demo`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sdr_isac import sensing
from sdr_isac.experiments.plots import pyplot, save_figure

__all__ = ["table", "plot_range_doppler", "write_json_atomic"]


def table(summary: dict[str, Any]) -> str:
    """The per-frame, per-target table that ``sdr-isac demo`` prints."""
    lines = [f"{'frame':>5} {'target':10s} {'R true':>8s} {'R est':>8s} {'dR/crb':>7s} {'v true':>8s} "
             f"{'v est':>8s} {'dv/crb':>7s} {'SNR/RE':>7s} {'angle':>7s}",
             f"{'':5} {'':10s} {'m':>8s} {'m':>8s} {'':>7s} {'m/s':>8s} {'m/s':>8s} {'':>7s} {'dB':>7s} {'deg':>7s}"]
    for f in summary["per_frame"]:
        for t in f["targets"]:
            if not t["detected"]:
                lines.append(f"{f['seq']:5d} {t['target']:10s} {t['truth_range_m']:8.2f} {'missed':>8s}")
                continue
            angle = f"{t['angle_deg']:7.1f}" if "angle_deg" in t else f"{'-':>7s}"
            lines.append(f"{f['seq']:5d} {t['target']:10s} {t['truth_range_m']:8.2f} {t['range_m']:8.2f} "
                         f"{t['range_error_over_crb']:7.2f} {t['truth_velocity_mps']:8.2f} {t['velocity_mps']:8.2f} "
                         f"{t['velocity_error_over_crb']:7.2f} {t['snr_db']:7.1f} {angle}")
    return "\n".join(lines)


def plot_range_doppler(result: sensing.SensingResult, truth: list[dict[str, Any]], path: Path, title: str) -> None:
    """Save the map in dB with axes in m and m/s, detections (x) and truth (o)."""
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


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON through a temporary file and a rename: never a half-written file."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".json", delete=False) as tmp:
        json.dump(data, tmp, indent=2)
    os.chmod(tmp.name, 0o644)
    Path(tmp.name).replace(path)
