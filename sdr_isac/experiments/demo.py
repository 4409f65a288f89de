"""The main job of ``sdr-isac demo``: a simulated base station senses moving targets, frame by frame.

Writes ``range_doppler.png`` (the last frame's map with detections and truth)
and ``summary.json`` (detections beside truth, errors and errors over the
Cramér-Rao bound) into the output folder, and returns the printed table.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sdr_isac import config as config_mod
from sdr_isac import radio, sensing
from sdr_isac.errors import ConfigError
from sdr_isac.experiments.truth import match_targets
from sdr_isac.units import SPEED_OF_LIGHT_MPS
from sdr_isac.waveform import IsacFrame

__all__ = ["run_sensing_demo", "plot_range_doppler"]


def run_sensing_demo(cfg: config_mod.Config, out_dir: str | Path, num_frames: int = 5) -> dict[str, Any]:
    """Run ``num_frames`` frames of ``cfg``'s simulated node through the sensing pipeline.

    Returns
    -------
    dict
        The summary written to ``summary.json``.
    """
    if cfg.scene is None or cfg.radio.kind != "sim":
        raise ConfigError("the demo needs a simulated radio: radio.kind = 'sim' and a [scene] section",
                          key="radio.kind")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = IsacFrame(cfg.frame)
    fcfg = cfg.frame
    range_cell = SPEED_OF_LIGHT_MPS / (2 * fcfg.num_subcarriers * fcfg.subcarrier_spacing_hz)
    velocity_cell = SPEED_OF_LIGHT_MPS / (2 * fcfg.carrier_hz * frame.duration_s)
    frames: list[dict[str, Any]] = []
    result = None
    truth_paths: list[dict[str, Any]] = []
    with radio.open_radio(cfg) as r:
        r.tx(frame.samples(), cyclic=True)
        for _ in range(num_frames):
            capture = r.rx(frame.num_samples)
            result = sensing.process(capture, frame, cfg.sensing)
            truth_paths = capture.metadata["truth"]["paths"]
            matches = match_targets(result.detections, truth_paths, range_cell, velocity_cell)
            frames.append({"seq": capture.seq, "t0_s": capture.t0_s,
                           "detections": [d.to_dict() for d in result.detections], "targets": matches,
                           "processing_s": result.diagnostics["timings"]["detect_s"]})
    targets = [t for f in frames for t in f["targets"]]
    summary = {
        "config": cfg.name, "frames": num_frames, "range_cell_m": range_cell, "velocity_cell_mps": velocity_cell,
        "all_targets_detected": all(t["detected"] for t in targets),
        "max_range_error_over_crb": max((t.get("range_error_over_crb", math.inf) for t in targets), default=0.0),
        "max_velocity_error_over_crb": max((t.get("velocity_error_over_crb", math.inf) for t in targets),
                                           default=0.0),
        "per_frame": frames,
    }
    _atomic_json(out / "summary.json", summary)
    if result is not None and result.map is not None:
        plot_range_doppler(result, truth_paths, out / "range_doppler.png", f"{cfg.name}: frame {num_frames - 1}")
    return summary


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
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as tmp:
        fig.savefig(tmp.name)
    plt.close(fig)
    os.chmod(tmp.name, 0o644)                          # a temporary file is created owner-only
    Path(tmp.name).replace(path)


def _atomic_json(path: Path, data: Any) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".json", delete=False) as tmp:
        json.dump(data, tmp, indent=2)
    os.chmod(tmp.name, 0o644)
    Path(tmp.name).replace(path)
