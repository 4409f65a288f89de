#!/usr/bin/env python3
"""Benchmark: build and demodulate a 1024-point x 112-symbol frame against bare scipy.fft.

The frame is ``hw_configs/nr_fr2_120khz.toml``: 120 kHz, N_FFT 1024 (1020 occupied
subcarriers), 112 symbols = 1 ms, normal CP, PRS + DMRS + 64-QAM.  The baseline is
a bare ``scipy.fft.ifft`` / ``fft`` of a (112, 1024) complex64 array with the same
worker count, run in the same process.  Prints medians and the ratios
(target: OFDM modulation and demodulation <= 1.5 x the bare transform).

Usage: python scripts/bench_waveform.py [--repeat N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scipy.fft as sp_fft

from sdr_isac import config
from sdr_isac.waveform import IsacFrame
from sdr_isac.waveform.ofdm import FFT_WORKERS

CONFIG = Path(__file__).resolve().parent.parent / "hw_configs" / "nr_fr2_120khz.toml"


def median_ms(fn, repeat: int) -> float:
    fn()                                            # warm caches and plans
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()

    cfg = config.load(CONFIG).frame
    frame = IsacFrame(cfg)
    grid = frame.grid.values
    samples = np.array(frame.samples())
    bare_in = np.zeros((1, frame.num_symbols, cfg.fft_size), dtype=np.complex64)
    bare_in[..., : cfg.num_subcarriers] = grid[:, :, :]

    rows = [
        ("OFDM modulate (grid -> samples, CP)", lambda: frame.ofdm.modulate(grid),
         "bare ifft", lambda: sp_fft.ifft(bare_in, axis=-1, norm="ortho", workers=FFT_WORKERS)),
        ("OFDM demodulate (samples -> grid)", lambda: frame.ofdm.demodulate(samples),
         "bare fft", lambda: sp_fft.fft(bare_in, axis=-1, norm="ortho", workers=FFT_WORKERS)),
        ("frame build (sequences, QAM, OFDM)", lambda: IsacFrame(cfg).samples(),
         "bare ifft", lambda: sp_fft.ifft(bare_in, axis=-1, norm="ortho", workers=FFT_WORKERS)),
    ]
    print(f"frame: {cfg.num_subcarriers} subcarriers in N_FFT {cfg.fft_size}, {frame.num_symbols} symbols, "
          f"{frame.num_samples} samples ({frame.duration_s * 1e3:.3f} ms air time); scipy.fft workers = "
          f"{FFT_WORKERS}; median of {args.repeat}")
    print(f"{'operation':38s} {'ms':>8s}   {'baseline':10s} {'ms':>8s} {'ratio':>7s}")
    for name, fn, base_name, base_fn in rows:
        ours = median_ms(fn, args.repeat)
        base = median_ms(base_fn, args.repeat)
        print(f"{name:38s} {ours:8.3f}   {base_name:10s} {base:8.3f} {ours / base:7.2f}")


if __name__ == "__main__":
    main()
