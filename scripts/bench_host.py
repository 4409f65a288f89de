#!/usr/bin/env python3
"""Benchmark: frames per second of a fusion host serving four nodes of W1 frames, on each executor.

W1 frame (as ``scripts/bench_sensing.py``): 1020 subcarriers in a 1024-point FFT x 112 symbols at
120 kHz (1 ms air time), one channel, two moving targets; four monostatic base stations of one scene
(simulated radio, one capture per node and frame).  The captures are made once, then pushed through
each host's real receive path: a ZeroMQ PUSH socket on loopback -> the host's PULL socket, strict
decoding, accounting and queueing -> sensing on the executor of ``[host]`` -> detections (and, with
``--maps``, the range-Doppler maps) published on its PUB socket -> node-level fusion of every
time-aligned set (the nodes here have one receive channel, so no angle and no fused estimate: node-level
fusion costs well under a millisecond per set and is not what limits a host).  The task on the executor
returns the detections (and the display crop of the map), not the megabytes of the map itself; BLAS is
single-threaded in worker processes.  Each host first gets one warm-up frame per node (pool start, per-process caches),
then ``--frames`` frames per node are timed from the first send to the last capture processed.

Hosts: ``thread`` (sensing in the host's worker thread), ``process`` with 1 and 2 workers, and a Dask
``LocalCluster`` of 2 workers; beside them, in the same run, the bare ``sensing.process`` loop over the
same captures in this process.  Prints frames per second (captures of all nodes per second) of each
and the ratio process 2 workers / 1 worker.  Nothing here asserts on time.

Each host gets ``--repeat`` timed batches; the medians are compared.  The machine's load average is
printed: on a shared 2-core machine, other work takes cores from the workers.

Usage: python scripts/bench_host.py [--frames 8] [--repeat 5] [--maps] [--no-dask]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import zmq

from sdr_isac import config, radio, sensing
from sdr_isac.capture import Capture
from sdr_isac.stream import FusionHost, wire
from sdr_isac.stream.demo import free_ports
from sdr_isac.waveform import IsacFrame

NODES = (("bs0", (0.0, 0.0)), ("bs1", (120.0, 0.0)), ("bs2", (120.0, 120.0)), ("bs3", (0.0, 120.0)))
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
{nodes}
[[scene.targets]]
id = "a"
position_m = [40.0, 30.0, 0.0]
velocity_mps = [-15.0, 0.0, 0.0]
snr_per_re_db = -10.0
[[scene.targets]]
id = "b"
position_m = [75.0, 65.0, 0.0]
velocity_mps = [8.0, 0.0, 0.0]
snr_per_re_db = -15.0
[fusion]
target_height_m = 0.0
"""


def scene_config() -> config.Config:
    nodes = "\n".join(f'[[scene.nodes]]\nid = "{n}"\nposition_m = [{x}, {y}, 0.0]' for n, (x, y) in NODES)
    return config.loads(TEXT.format(nodes=nodes))


def make_captures(cfg: config.Config, frames: int) -> list[list[Capture]]:
    """``frames`` + 1 frames (the first for warm-up), each a list of one capture per node."""
    out: list[list[Capture]] = [[] for _ in range(frames + 1)]
    for node_id, _ in NODES:
        node_cfg = dataclasses.replace(cfg, radio=dataclasses.replace(cfg.radio, node_id=node_id))
        with radio.open_radio(node_cfg) as r:
            frame = IsacFrame(r.frame if r.frame is not None else cfg.frame)
            r.tx(frame.samples(), cyclic=True)
            for k in range(frames + 1):
                out[k].append(dataclasses.replace(r.rx(r.capture_length(frame.num_samples)), seq=k))
    return out


def bare_fps(cfg: config.Config, batches: list[list[Capture]], repeat: int) -> list[float]:
    """Captures per second of ``sensing.process`` in a loop, in this process (after one warm-up frame)."""
    for capture in batches[0]:
        sensing.process(capture, capture.frame or cfg.frame, cfg.sensing)
    timed = [c for batch in batches[1:] for c in batch]
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        for capture in timed:
            sensing.process(capture, capture.frame or cfg.frame, cfg.sensing)
        rates.append(len(timed) / (time.perf_counter() - start))
    return rates


def host_fps(cfg: config.Config, batches: list[list[Capture]], host_cfg: config.HostConfig, maps: bool,
             repeat: int, timeout_s: float = 600.0) -> list[float]:
    """Captures per second of a host with ``host_cfg``, fed through its PULL socket: one rate per repeat of the
    timed frames (after a warm-up frame)."""
    port, publish = free_ports(2)
    total = len(batches[0]) + repeat * sum(len(b) for b in batches[1:])
    cfg = dataclasses.replace(cfg, host=host_cfg, stream=dataclasses.replace(
        cfg.stream, host_endpoint=f"tcp://127.0.0.1:{port}", publish_endpoint=f"tcp://127.0.0.1:{publish}",
        publish_maps=maps, queue_size=max(cfg.stream.queue_size, total)))
    encoded = [[wire.encode_capture(c) for c in batch] for batch in batches]
    host = FusionHost(cfg).start()
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    try:
        push.connect(cfg.stream.host_endpoint)

        def feed(messages: list[list[bytes | memoryview]], processed: int) -> float:
            start = time.perf_counter()
            for frames in messages:
                push.send_multipart(frames, copy=False)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                stats = host.stats()["nodes"]
                if all(stats.get(n, {}).get("processed", 0) + stats.get(n, {}).get("failed", 0) >= processed
                       for n, _ in NODES):
                    return time.perf_counter() - start
                time.sleep(0.002)
            raise TimeoutError(f"host {host_cfg} did not process {processed} frames per node in {timeout_s} s")

        feed(encoded[0], 1)
        timed = [m for batch in encoded[1:] for m in batch]
        rates = [len(timed) / feed(timed, 1 + (k + 1) * (len(batches) - 1)) for k in range(repeat)]
        stats = host.stats()
        if stats["errors_total"] or stats["queue_overflow"]:
            raise RuntimeError(f"host {host_cfg}: {stats['errors_total']} errors, {stats['queue_overflow']} dropped: "
                               f"{stats['errors'][-3:]}")
    finally:
        push.close(linger=0)
        context.term()
        host.stop(timeout_s=60.0)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=8, help="timed frames per node (default 8)")
    parser.add_argument("--maps", action="store_true", help="publish range-Doppler maps (stream.publish_maps)")
    parser.add_argument("--no-dask", action="store_true", help="leave out the Dask LocalCluster")
    parser.add_argument("--repeat", type=int, default=5, help="timed batches per host (default 5)")
    args = parser.parse_args()
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    cfg = scene_config()
    batches = make_captures(cfg, args.frames)
    built = IsacFrame(cfg.frame)
    print(f"W1: N_FFT {cfg.frame.fft_size} x {built.num_symbols} symbols at "
          f"{cfg.frame.subcarrier_spacing_hz / 1e3:g} kHz, {len(NODES)} nodes, {args.frames} timed frames per node, "
          f"maps {'published' if args.maps else 'off'}; fed through the host's PULL socket (loopback)")
    rows = [("bare sensing.process loop", bare_fps(cfg, batches, args.repeat))]
    hosts = [("host, thread", config.HostConfig(executor="thread")),
             ("host, process x1", config.HostConfig(executor="process", workers=1)),
             ("host, process x2", config.HostConfig(executor="process", workers=2))]
    if not args.no_dask:
        hosts.append(("host, dask LocalCluster x2", config.HostConfig(executor="dask", workers=2)))
    for name, host_cfg in hosts:
        rows.append((name, host_fps(cfg, batches, host_cfg, args.maps, args.repeat)))
    print(f"{'':30s} {'median':>8s} {'best':>8s}  frames/s over {args.repeat} repeats")
    for name, rates in rows:
        print(f"{name:30s} {statistics.median(rates):8.2f} {max(rates):8.2f}")
    fps = {name: statistics.median(rates) for name, rates in rows}
    print(f"ratio process x2 / x1 (medians): {fps['host, process x2'] / fps['host, process x1']:.2f} (target >= 1.6)")
    if "host, dask LocalCluster x2" in fps:
        print(f"ratio dask x2 / process x1 (medians): "
              f"{fps['host, dask LocalCluster x2'] / fps['host, process x1']:.2f}")
    print(f"cores: {os.cpu_count()}; load average before the run: {load}")


if __name__ == "__main__":
    main()
