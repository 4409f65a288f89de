#!/usr/bin/env python3
"""Benchmarks of the radio layer, each beside a bare numpy/scipy baseline in the same process.

1. Replay throughput: ReplayRadio delivering every capture of a recording
   (1024 x 112 frames at 120 kHz, one channel) against a raw ``np.memmap`` read
   of the same captures into complex64 arrays.
2. Echo synthesis: one 1024 x 112 frame, 10 moving targets, 4 receive channels,
   through EchoSynthesizer (paths, exact fractional delay, Doppler, array
   phases, noise) against a bare scipy.fft version of the same arithmetic.

Usage: python scripts/bench_radio.py [--frames 40] [--repeat 5]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.fft as sp_fft

from sdr_isac import config, radio
from sdr_isac.channel.echo import EchoSynthesizer, Transmission
from sdr_isac.channel.scene import Scene
from sdr_isac.config import RadioConfig
from sdr_isac.radio.record import record_frames
from sdr_isac.waveform import IsacFrame

FRAME = """
[frame]
numerology = 3
num_rb = 85
fft_size = 1024
carrier_hz = 24e9
num_slots = 8
"""


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_replay(frames: int, repeat: int) -> None:
    cfg = config.loads(FRAME + '[radio]\nnode_id = "bs0"\n[scene]\nnoise = false\n[[scene.nodes]]\nid = "bs0"\n')
    with tempfile.TemporaryDirectory() as tmp:
        with radio.open_radio(cfg) as r:
            meta = record_frames(r, frames, Path(tmp) / "bench")
        data = meta.with_suffix(".sigmf-data")
        n = IsacFrame(cfg.frame).num_samples

        t_open = best_of(lambda: radio.open_radio(RadioConfig(kind="replay", uri=str(meta))).close(), repeat)
        player = radio.open_radio(RadioConfig(kind="replay", uri=str(meta), loop=True))

        def replay() -> None:                      # steady state: the recording is open (opening: t_open)
            for _ in range(frames):
                player.next_capture()

        def raw() -> None:
            mm = np.memmap(data, dtype=np.complex64, mode="r")
            for i in range(frames):
                np.array(mm[i * n:(i + 1) * n]).reshape(1, n)

        total = frames * n
        t_replay, t_raw = best_of(replay, repeat), best_of(raw, repeat)
        print(f"replay   {frames} x {n} samples: ReplayRadio {total / t_replay / 1e6:8.1f} Msps, raw memmap "
              f"{total / t_raw / 1e6:8.1f} Msps, time ratio {t_replay / t_raw:5.2f}; opening (SigMF validation) "
              f"{t_open * 1e3:.1f} ms once")
        player.close()


def bench_echo(repeat: int) -> None:
    targets = "".join(f"""
[[scene.targets]]
id = "t{i}"
position_m = [{20 + 6 * i}.0, {(-1) ** i * 3 * i}.0, 0.0]
velocity_mps = [{-15 + 3 * i}.0, 1.0, 0.0]
rcs_m2 = 1.0
""" for i in range(10))
    cfg = config.loads(FRAME + '[scene]\nseed = 1\n[[scene.nodes]]\nid = "bs0"\nrx_array = {num_elements = [4]}\n'
                       + targets)
    scene = Scene(cfg.scene, cfg.frame)
    frame = IsacFrame(cfg.frame)
    x = frame.samples()
    scale = math.sqrt(0.1 / np.mean(np.abs(x) ** 2))
    tx = Transmission("bs0", (x * scale).astype(np.complex64), True, 0.0, 0.1)
    synth = EchoSynthesizer(scene, "bs0", np.random.default_rng(0))
    n = frame.num_samples
    paths = scene.paths("bs0", "bs0", 0.0, np.random.default_rng(0))
    delays = np.array([p.delay_s for p in paths]) * frame.sample_rate_hz
    dopplers = np.array([p.doppler_hz for p in paths])
    gains = np.array([p.gain for p in paths])
    steer = np.exp(1j * np.pi * np.outer(np.arange(4), np.sin([math.atan2(p.arrival_local[1], p.arrival_local[0])
                                                                for p in paths])))
    rng = np.random.default_rng(1)

    def bare() -> None:
        spectrum = sp_fft.fft(tx.samples[0], workers=-1)
        k = sp_fft.fftfreq(n, 1.0 / n)
        t = np.arange(n) / frame.sample_rate_hz
        out = np.zeros((4, n), np.complex128)
        for d, f_d, g, a in zip(delays, dopplers, gains, steer.T):
            y = sp_fft.ifft(spectrum * np.exp(-2j * np.pi * k * d / n), workers=-1)
            out += np.outer(g * a, y * np.exp(2j * np.pi * f_d * t))
        out += rng.standard_normal(out.shape) + 1j * rng.standard_normal(out.shape)
        out.astype(np.complex64)

    t_synth = best_of(lambda: synth.receive(0.0, n, [tx]), repeat)
    t_bare = best_of(bare, repeat)
    print(f"echo     1024 x 112 frame ({n} samples), {len(paths)} targets, 4 channels: EchoSynthesizer "
          f"{t_synth * 1e3:7.1f} ms, bare scipy {t_bare * 1e3:7.1f} ms, ratio {t_synth / t_bare:5.2f} "
          f"(air time {frame.duration_s * 1e3:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    bench_replay(args.frames, args.repeat)
    bench_echo(args.repeat)


if __name__ == "__main__":
    main()
