#!/usr/bin/env python3
"""Benchmark: W1 frames per second through the batch path on the CPU and, where CuPy and a GPU exist, on the GPU.

Frame W1 (as ``bench_sensing.py``): 1020 subcarriers in a 1024-point FFT x 112 symbols at 120 kHz, 1 ms air
time, one channel, two moving targets.  Three rows, in the same run:

- ``cpu pipeline``: ``sensing.process`` on the capture, frame by frame (demodulation, CSI, map, CFAR, peaks,
  refinement, SNR, CRB) -- the reference;
- ``cpu batch``: ``sensing.batch.sense_batch`` with the numpy backend on ``--batch`` CSI matrices at once
  (map, CA-CFAR and peak search only: the part the seam moves to a GPU);
- ``gpu batch`` (only with CuPy and a CUDA device): the same function with ``backend = "cupy"``, each batch
  copied host -> device from pinned memory inside the timed loop, synchronised before the clock stops.

The CSI matrices of a batch are the capture's own plus independent complex Gaussian noise per frame (seeded).
Prints frames per second and the multiple of real time (frames per second x air time).  The peaks of the
first frame are checked against the pipeline's grid peaks on every backend.

Usage: python scripts/bench_gpu.py [--batch 32] [--repeat 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
from bench_sensing import TEXT  # the W1 frame (scripts/ is on sys.path when this script runs)

from sdr_isac import config, radio, sensing
from sdr_isac.errors import SensingError
from sdr_isac.sensing import detection, pipeline
from sdr_isac.sensing.backend import array_backend
from sdr_isac.sensing.batch import sense_batch
from sdr_isac.waveform import IsacFrame


def rate(fn, frames: int, repeat: int) -> float:
    """Frames per second: ``frames`` per call of ``fn``, best of ``repeat`` calls after one warm-up call."""
    fn()
    best = min(_timed(fn) for _ in range(repeat))
    return frames / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="frames per batch")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cfg = config.loads(TEXT)
    frame = IsacFrame(cfg.frame)
    with radio.open_radio(cfg) as r:
        r.tx(frame.samples())
        capture = r.rx(frame.num_samples)
    scfg = cfg.sensing
    result = sensing.process(capture, frame, scfg)
    if result.csi is None or result.map is None:
        raise SystemExit("the W1 capture gave no map")
    mask = result.csi.mask
    rng = np.random.default_rng(7)
    shape = (args.batch, *result.csi.h.shape)
    h = (result.csi.h[None] + (rng.standard_normal(shape, np.float32)
                               + 1j * rng.standard_normal(shape, np.float32)) * mask).astype(np.complex64)
    h[0] = result.csi.h
    air_s = frame.duration_s
    # the pipeline's grid peaks of the first frame (before refinement), the check for every backend
    _, reportable, rows = pipeline.search_rows(scfg, cfg.frame)
    hits = pipeline.cfar_detector(scfg, 1, mask=mask, map_shape=result.map.power.shape).detect_mask(
        result.map.power[:rows])                            # the detector process() uses (correlation-aware)
    expected = detection.find_peaks(result.map.power, hits[:reportable], scfg.max_detections + 8, True)

    print(f"W1 frame: {cfg.frame.num_subcarriers} subcarriers x {frame.num_symbols} symbols, air time "
          f"{air_s * 1e3:.3f} ms; batch {args.batch} frames; best of {args.repeat}")
    fps = rate(lambda: sensing.process(capture, frame, scfg), 1, args.repeat * 4)
    print(f"  cpu pipeline (sensing.process, whole chain)  {fps:9.1f} frames/s   {fps * air_s:7.2f} x real time")
    cpu = array_backend("cpu", workers=scfg.fft_workers)
    out = sense_batch(h, mask, cfg.frame, scfg, cpu)
    if out.peaks[0] != expected:
        raise SystemExit(f"cpu batch peaks {out.peaks[0]} != pipeline grid peaks {expected}")
    fps = rate(lambda: sense_batch(h, mask, cfg.frame, scfg, cpu), args.batch, args.repeat)
    print(f"  cpu batch    (map + CFAR + peaks, numpy)     {fps:9.1f} frames/s   {fps * air_s:7.2f} x real time")
    try:
        gpu = array_backend("cupy")
    except SensingError as err:
        print(f"  gpu batch    not run: {err}")
        return
    import cupy
    import cupyx

    pinned = cupyx.empty_pinned(h.shape, h.dtype)             # page-locked host memory: DMA at full speed
    pinned[...] = h
    gcfg = dataclasses.replace(scfg, backend="cupy")
    stream = cupy.cuda.Stream(non_blocking=True)

    def on_gpu() -> None:
        with stream:
            device = cupy.asarray(pinned)                      # host -> device from pinned memory
            res = sense_batch(device, mask, cfg.frame, gcfg, gpu)
            res.power.sum()                                     # nothing left pending
        stream.synchronize()

    with stream:
        first = sense_batch(cupy.asarray(pinned), mask, cfg.frame, gcfg, gpu)
    if first.peaks[0] != expected:
        raise SystemExit(f"gpu batch peaks {first.peaks[0]} != pipeline grid peaks {expected}")
    fps = rate(on_gpu, args.batch, args.repeat)
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    print(f"  gpu batch    (same, CuPy on {name}, incl. H2D from pinned)  {fps:9.1f} frames/s   "
          f"{fps * air_s:7.2f} x real time")


if __name__ == "__main__":
    main()
