#!/usr/bin/env python3
"""Benchmark: captures through ``stream.wire`` over ZeroMQ TCP loopback, beside raw pyzmq of the same buffers.

Two parts, each with the senders in separate processes (``multiprocessing``, spawn) and the receiver
(the "host") in this process:

1. **Throughput, wire vs raw.**  One sender process pushes ``--messages`` captures of ``--capture-mib``
   MiB (complex64, one channel) over PUSH -> PULL on ``tcp://127.0.0.1``.  ``wire`` mode:
   ``wire.encode_capture`` in the sender (every check, the finiteness check over every sample
   included: one pass over the data at each end), ``recv_multipart(copy=False)`` -> ``wire.decode`` ->
   ``wire.decode_capture`` in the receiver.  ``raw`` mode: the same buffers sent as ``[topic, header, buffer]`` with
   ``copy=False``, received with ``copy=False`` and wrapped by ``numpy.frombuffer``, with no check.
   The two modes alternate ``--rounds`` times in the same run; the receiver times the messages after
   the first (no connection set-up).  Prints MB/s of each, the ratio wire / raw (target >= 0.9), the
   ratio of each round, and the CPU time per message that ``wire`` adds at each end.
2. **Sustained streaming.**  ``--nodes`` node processes (default 4), each producing complex64 captures
   of ``--capture-mib`` MiB at ``--rate-msps`` (default 30.72 Msps, so one capture per 17.07 ms at
   4 MiB), paced to the sample clock for ``--duration-s`` s, encoded with ``wire.encode_capture`` and
   sent like ``stream.node``'s agent sends (PUSH, ``SNDHWM``, ``NOBLOCK``: a full queue drops the
   capture and counts it).  The host decodes every message (``wire.decode`` + ``decode_capture``).
   Loss = captures the nodes dropped + sequence gaps seen by the host + captures never received.
   Latency per capture: host time after ``decode_capture`` minus the capture's ``t0_s`` (its first
   sample), median and p99; the same minus the capture's duration (the part the network and the
   host add once the last sample exists).

Usage: python scripts/bench_stream.py [--duration-s 5] [--nodes 4] [--rate-msps 30.72] [--capture-mib 4]
       [--messages 150] [--rounds 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from typing import Any

import numpy as np

SAMPLES_PER_MIB = 2**20 // 8            # complex64 samples per MiB


def _noise(num_samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    iq = rng.standard_normal((1, 2 * num_samples), dtype=np.float32).view(np.complex64)
    return np.ascontiguousarray(iq)


def _throughput_sender(mode: str, endpoint: str, messages: int, num_samples: int, result: Any) -> None:
    import zmq

    from sdr_isac.capture import Capture
    from sdr_isac.stream import wire

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, 8)
    sock.setsockopt(zmq.LINGER, -1)
    sock.connect(endpoint)
    iq = _noise(num_samples, 1)
    capture = Capture(iq=iq, sample_rate_hz=30.72e6, center_freq_hz=3.5e9, node_id="bs0")
    raw_header = b'{"kind":"capture","dtype":"complex64"}'
    cpu0 = time.process_time()
    for seq in range(messages):
        if mode == "wire":
            frames: list[Any] = wire.encode_capture(capture, extra={"bench_seq": seq})
        else:
            frames = [b"capture/bs0", raw_header, iq.data]
        sock.send_multipart(frames, copy=False)
    sock.close()            # LINGER -1: waits until everything is sent
    ctx.term()
    result.put(time.process_time() - cpu0)


def _throughput(mode: str, messages: int, num_samples: int) -> tuple[float, float, float]:
    """Bytes per second of iq received in ``mode`` (``wire`` or ``raw``), timed after the first message, and the
    CPU seconds per message of the sender and of the receiver (all their threads, ZeroMQ's I/O included)."""
    import zmq

    from sdr_isac.stream import wire

    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVHWM, 8)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    spawn = mp.get_context("spawn")
    queue = spawn.Queue()
    proc = spawn.Process(target=_throughput_sender, args=(mode, f"tcp://127.0.0.1:{port}", messages, num_samples,
                                                          queue))
    proc.start()
    nbytes, start = 0, 0.0
    cpu0 = time.process_time()
    try:
        for i in range(messages):
            frames = sock.recv_multipart(copy=False)
            if mode == "wire":
                capture = wire.decode_capture(wire.decode(frames))
                size = capture.iq.nbytes
            else:
                size = np.frombuffer(frames[2].buffer, dtype=np.complex64).nbytes
            if i == 0:
                start = time.perf_counter()
            else:
                nbytes += size
        elapsed = time.perf_counter() - start
        cpu_rx = (time.process_time() - cpu0) / messages
        cpu_tx = queue.get(timeout=30) / messages
    finally:
        proc.join(timeout=30)
        sock.close()
    return nbytes / elapsed, cpu_tx, cpu_rx


def _node(node_id: str, endpoint: str, rate_hz: float, num_samples: int, duration_s: float, ready: Any, go: Any,
          start: Any, result: Any) -> None:
    """One node: captures paced to a ``rate_hz`` sample clock, sent as ``stream.node`` does (NOBLOCK, HWM)."""
    import zmq

    from sdr_isac.capture import Capture
    from sdr_isac.stream import wire

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, 4)
    sock.setsockopt(zmq.LINGER, 2000)
    sock.connect(endpoint)
    pool = [_noise(num_samples, seed) for seed in range(4)]      # a few distinct buffers, drawn once
    period_s = num_samples / rate_hz
    count = int(duration_s / period_s)
    dropped = late = 0
    ready.put(node_id)                                    # imported, connected, buffers drawn
    go.wait()
    start_at = start.value
    while time.time() < start_at:
        time.sleep(0.001)
    for seq in range(count):
        t0_s = start_at + seq * period_s                  # first sample of this capture on the node's clock
        ready_s = t0_s + period_s                         # its last sample exists from here on
        wait = ready_s - time.time()
        if wait > 0:
            time.sleep(wait)
        elif wait < -period_s:
            late += 1                                     # more than one capture behind the sample clock
        capture = Capture(iq=pool[seq % len(pool)], sample_rate_hz=rate_hz, center_freq_hz=3.5e9, t0_s=t0_s,
                          node_id=node_id, seq=seq)
        try:
            sock.send_multipart(wire.encode_capture(capture), flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            dropped += 1
    sock.close()
    ctx.term()
    result.put((node_id, count, dropped, late))


def _sustained(nodes: int, rate_hz: float, num_samples: int, duration_s: float) -> dict[str, Any]:
    import zmq

    from sdr_isac.stream import wire

    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVHWM, 16)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    spawn = mp.get_context("spawn")
    queue, ready, go, start = spawn.Queue(), spawn.Queue(), spawn.Event(), spawn.Value("d", 0.0)
    procs = [spawn.Process(target=_node, args=(f"bs{i}", f"tcp://127.0.0.1:{port}", rate_hz, num_samples,
                                               duration_s, ready, go, start, queue)) for i in range(nodes)]
    for p in procs:
        p.start()
    for _ in procs:                                       # every node started (imports take seconds when loaded)
        ready.get(timeout=120)
    start_at = start.value = time.time() + 0.5            # the common sample clock starts here
    go.set()
    last_seq: dict[str, int] = {}
    received, gaps = 0, 0
    latency_s: list[float] = []
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    end = start_at + duration_s + 5.0
    period_s = num_samples / rate_hz
    while time.time() < end:
        if not poller.poll(200):
            if all(not p.is_alive() for p in procs):
                break
            continue
        frames = sock.recv_multipart(copy=False)
        capture = wire.decode_capture(wire.decode(frames))
        latency_s.append(time.time() - capture.t0_s)
        received += 1
        previous = last_seq.get(capture.node_id, -1)
        gaps += max(capture.seq - previous - 1, 0)
        last_seq[capture.node_id] = capture.seq
    for p in procs:
        p.join(timeout=10)
    sent = dropped = late = 0
    while not queue.empty():
        _, count, drop, lt = queue.get()
        sent, dropped, late = sent + count, dropped + drop, late + lt
    sock.close()
    lat = np.array(latency_s) if latency_s else np.array([np.nan])
    return {"produced": sent, "received": received, "dropped_at_nodes": dropped, "seq_gaps": gaps,
            "lost": sent - received, "late": late, "latency_median_s": float(np.median(lat)),
            "latency_p99_s": float(np.percentile(lat, 99)), "period_s": period_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration-s", type=float, default=5.0, help="sustained part, s (default 5)")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--rate-msps", type=float, default=30.72, help="each node's sample rate, Msps")
    parser.add_argument("--capture-mib", type=float, default=4.0, help="one capture, MiB of complex64")
    parser.add_argument("--messages", type=int, default=150, help="messages per throughput round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating wire/raw rounds")
    parser.add_argument("--skip-sustained", action="store_true")
    args = parser.parse_args()
    num_samples = int(args.capture_mib * SAMPLES_PER_MIB)
    rates: dict[str, list[float]] = {"wire": [], "raw": []}
    cpu: dict[str, list[tuple[float, float]]] = {"wire": [], "raw": []}
    for _ in range(args.rounds):
        for mode in ("raw", "wire"):
            bps, cpu_tx, cpu_rx = _throughput(mode, args.messages, num_samples)
            rates[mode].append(bps)
            cpu[mode].append((cpu_tx, cpu_rx))
    wire_bps, raw_bps = float(np.median(rates["wire"])), float(np.median(rates["raw"]))
    print(f"throughput, {args.capture_mib:g} MiB captures, tcp loopback, {args.messages} messages x "
          f"{args.rounds} rounds alternating (median of rounds)")
    for mode, label in (("raw", "raw pyzmq copy=False"), ("wire", "wire encode/decode  ")):
        tx, rx = (float(np.median([c[i] for c in cpu[mode]])) * 1e3 for i in (0, 1))
        print(f"  {label}   {float(np.median(rates[mode])) / 1e6:8.0f} MB/s   CPU per message: sender "
              f"{tx:5.2f} ms, receiver {rx:5.2f} ms   rounds (MB/s): "
              + ", ".join(f"{r / 1e6:.0f}" for r in rates[mode]))
    print(f"  ratio wire / raw       {wire_bps / raw_bps:8.2f}   (target >= 0.9; on a loaded machine the rounds "
          "scatter: the CPU per message is the steadier figure)")
    pairs = [w / r for w, r in zip(rates["wire"], rates["raw"])]
    extra = [float(np.median([c[i] for c in cpu["wire"]]) - np.median([c[i] for c in cpu["raw"]])) * 1e3
             for i in (0, 1)]
    print("  ratio of each round    " + ", ".join(f"{q:.2f}" for q in pairs)
          + f"   wire's extra CPU per message: sender {extra[0]:+.2f} ms, receiver {extra[1]:+.2f} ms")
    if args.skip_sustained:
        return
    rate_hz = args.rate_msps * 1e6
    s = _sustained(args.nodes, rate_hz, num_samples, args.duration_s)
    need = args.nodes * rate_hz * 8 / 1e6
    print(f"sustained: {args.nodes} nodes x {args.rate_msps:g} Msps complex64 ({need:.0f} MB/s), "
          f"{args.duration_s:g} s, one {args.capture_mib:g} MiB capture per {s['period_s'] * 1e3:.2f} ms per node")
    print(f"  produced {s['produced']}, received {s['received']}, lost {s['lost']} (dropped at nodes "
          f"{s['dropped_at_nodes']}, sequence gaps {s['seq_gaps']}); sends more than one capture late: {s['late']}")
    med, p99, period = s["latency_median_s"] * 1e3, s["latency_p99_s"] * 1e3, s["period_s"] * 1e3
    print(f"  latency t0 -> decoded at host: median {med:.1f} ms, p99 {p99:.1f} ms (minus the capture's own "
          f"{period:.2f} ms: median {med - period:.1f} ms, p99 {p99 - period:.1f} ms)")


if __name__ == "__main__":
    main()
