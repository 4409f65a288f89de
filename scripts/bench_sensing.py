#!/usr/bin/env python3
"""Benchmark: the whole sensing pipeline against a bare scipy.fft periodogram of the same capture.

Frame: 1020 subcarriers in a 1024-point FFT x 112 symbols at 120 kHz (1 ms air time), one
channel, two moving targets.  Pipeline (``sensing.process`` with the default ``SensingConfig``):
CP removal -> FFT -> CSI -> windowed range-Doppler map (2x zero padding on both axes, to
``next_fast_len``) -> CA-CFAR -> peak grouping -> off-grid refinement, SNR and CRB.
Baseline, in the same process: the same map written directly with numpy/scipy.fft -- CP removal
by indexing, FFT, subcarrier extraction, division by the known symbols, the same Hann windows
(with the Doppler fftshift folded into the symbol window as a sign), the same zero-padded
transform sizes, |.|**2 -- and no noise estimate, CFAR, peak search or refinement.  The script
checks that both maps agree.  Prints both times (median and best of the repeats), their ratio,
the air time, the peak memory of each (tracemalloc) and the page faults per call: on machines
where a fresh page costs microseconds, arrays allocated anew on every call weigh on both.

``--frame pluto`` runs a Pluto-class frame instead (N_FFT 512, 288 subcarriers, 30 kHz, 15.36 Msps, 28
symbols = 1 ms at 2.4 GHz, the same two targets); the target there is an absolute one, at most 0.5 ms per
1 ms of air time (the "pipeline / air time" figure).

Usage: python scripts/bench_sensing.py [--repeat 30] [--frame w1|pluto]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import scipy.fft as sp_fft
import scipy.signal as sp_signal

from sdr_isac import config, radio, sensing
from sdr_isac.waveform import IsacFrame

TEXT = """
[frame]
numerology = 3
num_rb = 85
fft_size = 1024
carrier_hz = 24e9
num_slots = 8
[radio]
node_id = "bs0"
[scene]
seed = 3
[[scene.nodes]]
id = "bs0"
[[scene.targets]]
id = "a"
position_m = [40.0, 0.0, 0.0]
velocity_mps = [-15.0, 0.0, 0.0]
snr_per_re_db = -10.0
[[scene.targets]]
id = "b"
position_m = [75.0, 5.0, 0.0]
velocity_mps = [8.0, 0.0, 0.0]
snr_per_re_db = -15.0
"""


PLUTO = TEXT.replace("numerology = 3", "numerology = 1").replace("num_rb = 85", "num_rb = 24") \
    .replace("fft_size = 1024", "fft_size = 512").replace("carrier_hz = 24e9", "carrier_hz = 2.4e9") \
    .replace("num_slots = 8", "num_slots = 2")


def timings_s(fn, repeat: int) -> tuple[float, float]:
    """Median and best time of ``repeat`` calls, after three warm-up calls (caches, allocator)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times))


def faults_per_call(fn, repeat: int) -> float:
    """Minor page faults per call (0 where the platform does not count them)."""
    try:
        import resource
    except ImportError:
        return 0.0
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeat):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / repeat


def peak_bytes(fn) -> int:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--frame", choices=("w1", "pluto"), default="w1")
    args = parser.parse_args()
    cfg = config.loads(TEXT if args.frame == "w1" else PLUTO)
    frame = IsacFrame(cfg.frame)
    with radio.open_radio(cfg) as r:
        r.tx(frame.samples())
        capture = r.rx(frame.num_samples)
    scfg = cfg.sensing
    x, mask = sensing.known_symbols(frame, scfg.signals)
    if not mask.all():
        raise SystemExit("the baseline assumes every RE is known (a monostatic frame without empty REs)")
    n_fft, k_sc, n_sym = cfg.frame.fft_size, cfg.frame.num_subcarriers, frame.num_symbols
    n_range = sp_fft.next_fast_len(k_sc * scfg.range_oversampling)       # the pipeline's transform sizes
    n_doppler = sp_fft.next_fast_len(n_sym * scfg.doppler_oversampling)
    index = (frame.symbol_starts + frame.cp_lengths)[:, None] + np.arange(n_fft)[None, :]
    iq = capture.iq[0]
    # Hann tapers as the pipeline's (symmetric, end points dropped); (-1)**l shifts zero Doppler to the centre
    w_d = sp_signal.get_window("hann", n_sym + 2, fftbins=False)[1:-1] * (-1.0) ** np.arange(n_sym)
    w_r = sp_signal.get_window("hann", k_sc + 2, fftbins=False)[1:-1]
    weights = ((w_d / np.abs(w_d).max())[:, None] * (w_r / w_r.max())[None, :]).astype(np.float32)

    def bare() -> np.ndarray:
        spectrum = sp_fft.fft(iq[index], axis=1, norm="ortho", workers=-1, overwrite_x=True)
        h = np.concatenate((spectrum[:, n_fft - k_sc // 2:], spectrum[:, : k_sc // 2]), axis=1)
        h /= x
        h *= weights
        profile = sp_fft.ifft(h, n=n_range, axis=1, norm="forward", workers=-1, overwrite_x=True)
        rd = sp_fft.fft(profile, n=n_doppler, axis=0, workers=-1, overwrite_x=True)          # (D, R)
        return rd.real**2 + rd.imag**2

    def pipeline() -> sensing.SensingResult:
        return sensing.process(capture, frame, scfg)

    pipeline()
    result = pipeline()
    assert result.map is not None
    reference = bare().T
    mismatch = float(np.max(np.abs(result.map.power - reference)) / np.max(reference))
    if mismatch > 1e-4:
        raise SystemExit(f"the baseline computes another map than the pipeline (max difference {mismatch:.2g} of "
                         "the peak): fix the baseline")
    # alternate the two so that both see the same allocator state and machine load
    runs = [(timings_s(pipeline, args.repeat // 3 + 1), timings_s(bare, args.repeat // 3 + 1)) for _ in range(3)]
    t_pipe, best_pipe = float(np.median([r[0][0] for r in runs])), min(r[0][1] for r in runs)
    t_bare, best_bare = float(np.median([r[1][0] for r in runs])), min(r[1][1] for r in runs)
    m_pipe, m_bare = peak_bytes(pipeline), peak_bytes(bare)
    f_pipe, f_bare = faults_per_call(pipeline, args.repeat), faults_per_call(bare, args.repeat)
    print(f"frame {k_sc} subcarriers (N_FFT {n_fft}) x {n_sym} symbols, 1 channel, air time "
          f"{frame.duration_s * 1e3:.3f} ms; map {n_range} x {n_doppler}; median (best) of 3 x {args.repeat // 3 + 1}, "
          "alternating")
    print(f"pipeline   {t_pipe * 1e3:8.2f} ms ({best_pipe * 1e3:6.2f})   peak memory {m_pipe / 2**20:6.1f} MiB   "
          f"{f_pipe:6.0f} page faults/call   ({len(result.detections)} detections: " + ", ".join(
              f"{d.range_m:.2f} m {d.velocity_mps:+.2f} m/s" for d in result.detections) + ")")
    print(f"bare chain {t_bare * 1e3:8.2f} ms ({best_bare * 1e3:6.2f})   peak memory {m_bare / 2**20:6.1f} MiB   "
          f"{f_bare:6.0f} page faults/call   (same map: max difference {mismatch:.1e} of the peak)")
    print(f"ratio      {t_pipe / t_bare:8.2f}            (pipeline / air time {t_pipe / frame.duration_s:.2f})")
    calls = [pipeline().diagnostics["timings"] for _ in range(args.repeat)]
    stages = {k: float(np.median([c[k] for c in calls])) for k in calls[0]}
    print("pipeline stages (cumulative, median ms): " + ", ".join(f"{k[:-2]} {v * 1e3:.2f}"
                                                               for k, v in stages.items()))


if __name__ == "__main__":
    main()
