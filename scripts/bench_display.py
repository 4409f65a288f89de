#!/usr/bin/env python3
"""Display updates per second for a 1024 x 256 range-Doppler map with 20 markers, offscreen.

Compares the full window (image, detection and truth markers, colour bar,
top view with node, coverage circle, truth dots and range arcs, status bar,
repaint: what runs on the GUI thread) with a baseline: a bare PlotWidget whose
ImageItem gets the same dB images, repainted the same way.  Target: >= 30
updates per second.  Also prints the rate at which a source's worker thread
prepares such frames (dB conversion, crop), which runs beside the GUI.

Usage: QT_QPA_PLATFORM=offscreen python scripts/bench_display.py [--updates N]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

from sdr_isac.config import SensingConfig  # noqa: E402
from sdr_isac.display.sources import DisplayFrame, NodePlace, frame_of_result  # noqa: E402
from sdr_isac.display.window import RangeDopplerWindow, ensure_app  # noqa: E402
from sdr_isac.sensing.detection import Detection  # noqa: E402
from sdr_isac.sensing.pipeline import SensingResult  # noqa: E402
from sdr_isac.sensing.rdmap import RangeDopplerMap  # noqa: E402

NUM_RANGE, NUM_DOPPLER, NUM_MARKERS = 1024, 256, 20


def synthetic_results(count: int, rng: np.random.Generator) -> list[tuple[SensingResult, list[dict[str, float]]]]:
    """Sensing results of exponential noise with 10 detections each, and 10 truth points."""
    range_m = np.arange(NUM_RANGE, dtype=np.float64) * 0.5
    velocity = np.linspace(40.0, -40.0, NUM_DOPPLER)          # falls along the Doppler axis, as the pipeline's
    frames = []
    for _ in range(count):
        power = rng.exponential(1.0, (NUM_RANGE, NUM_DOPPLER)).astype(np.float32)
        rows, cols = rng.integers(0, NUM_RANGE, NUM_MARKERS // 2), rng.integers(0, NUM_DOPPLER, NUM_MARKERS // 2)
        power[rows, cols] = 1e4
        rd = RangeDopplerMap(power, np.zeros((1, 1, 1), np.complex64), range_m, velocity, -velocity, "monostatic",
                             1.0, 1.0)
        dets = [Detection(range_m=float(range_m[r]), velocity_mps=float(velocity[c]), doppler_hz=0.0, delay_s=0.0,
                          snr_db=40.0, geometry="monostatic", angle_rad=None, range_var_m2=0.0,
                          velocity_var_mps2=0.0, angle_var_rad2=None, map_snr_db=40.0) for r, c in zip(rows, cols)]
        truth = [{"kind": "target", "range_m": float(range_m[r]), "velocity_mps": float(velocity[c])}
                 for r, c in zip(rows, cols)]
        result = SensingResult(rd, dets, None, 0, {"noise_var": 1.0})
        frames.append((result, truth))
    return frames


# the whole map is shown: its reportable range is set to its last row (no crop)
WHOLE = SensingConfig(max_range_m=(NUM_RANGE - 1) * 0.5)


def to_frames(results: list[tuple[SensingResult, list[dict[str, float]]]]) -> list[DisplayFrame]:
    """What a source's worker does to each result (dB over noise, velocity ascending, crop)."""
    targets = [{"id": f"t{i}", "position_m": [20.0 + 10 * i, -30.0 + 6 * i, 1.0]} for i in range(NUM_MARKERS // 2)]
    return [frame_of_result("bench", seq, 0.0, result, truth_paths=truth, truth_targets=targets,
                            node=NodePlace((0.0, 0.0, 5.0), 0.0), sensing_config=WHOLE)
            for seq, (result, truth) in enumerate(results)]


def bench_worker(results: list[tuple[SensingResult, list[dict[str, float]]]], updates: int) -> float:
    start = time.perf_counter()
    for _ in range(max(updates // len(results), 1)):
        to_frames(results)
    return max(updates // len(results), 1) * len(results) / (time.perf_counter() - start)


def bench_window(frames: list[DisplayFrame], updates: int) -> float:
    app = ensure_app()
    window = RangeDopplerWindow()
    window.resize(1400, 700)
    window.show()
    app.processEvents()
    window.show_frame(frames[0])
    start = time.perf_counter()
    for i in range(updates):
        window.show_frame(frames[i % len(frames)])
        window.plot_widget.viewport().repaint()
        window.top_widget.viewport().repaint()
        app.processEvents()
    rate = updates / (time.perf_counter() - start)
    window.close()
    return rate


def bench_baseline(frames: list[DisplayFrame], updates: int) -> float:
    import pyqtgraph as pg

    app = ensure_app()
    widget = pg.PlotWidget()
    image = pg.ImageItem(axisOrder="row-major")
    widget.addItem(image)
    widget.resize(1000, 700)
    widget.show()
    app.processEvents()
    start = time.perf_counter()
    images = [f.power_db for f in frames]
    for i in range(updates):
        image.setImage(images[i % len(images)], autoLevels=False, levels=(0.0, 40.0))
        widget.viewport().repaint()
        app.processEvents()
    rate = updates / (time.perf_counter() - start)
    widget.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=200)
    args = parser.parse_args()
    results = synthetic_results(8, np.random.default_rng(1))
    frames = to_frames(results)
    shape = frames[0].power_db.shape if frames[0].power_db is not None else None
    worker = bench_worker(results, args.updates // 4)
    baseline = bench_baseline(frames, args.updates)
    full = bench_window(frames, args.updates)
    print(f"map {NUM_RANGE} x {NUM_DOPPLER}, {NUM_MARKERS} markers, {args.updates} updates, "
          f"QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']}")
    print(f"window (map + markers + colour bar + top view + status): {full:7.1f} updates/s  (target >= 30)")
    print(f"baseline (bare ImageItem.setImage + repaint):            {baseline:7.1f} updates/s")
    print(f"ratio window / baseline: {full / baseline:.2f}")
    print(f"worker frame preparation (dB, crop; off the GUI thread), map {shape}: {worker:7.1f} frames/s")


if __name__ == "__main__":
    main()
