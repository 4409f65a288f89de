#!/usr/bin/env python3
"""Benchmark: captures through ``stream.wire`` over ZeroMQ TCP loopback, beside raw pyzmq of the same buffers.

Two parts, each with the senders in separate processes (``multiprocessing``, spawn) and the receiver
(the "host") in this process:

1. **Throughput, wire vs raw.**  One sender process pushes ``--messages`` captures of ``--capture-mib``
   MiB (complex64, one channel) over PUSH -> PULL on ``tcp://127.0.0.1``.  ``wire`` mode:
   ``wire.encode_capture`` in the sender (header, metadata and frame checked; the samples are not
   scanned there), ``recv_multipart(copy=False)`` -> ``wire.decode(..., consumer_checks=("capture",))`` ->
   ``wire.decode_capture`` in the receiver, as ``FusionHost`` decodes: every check of frames, header,
   dtype, shape and size, and the samples' values left to the consumer that reads them (the host's
   sensing runs ``Capture.check_samples`` on every capture before it demodulates it, and counts a NaN
   or infinity ``rejected``; ``scripts/bench_sensing.py`` times that pass with the sensing).
   ``wire-scan`` mode: the same, but ``wire.decode`` also checks every sample value (a receiver
   without such a consumer; one more pass over the 4 MiB, read cold).  ``raw`` mode: the same
   buffers sent as ``[topic, header, buffer]`` with ``copy=False``, received with ``copy=False`` and
   wrapped by ``numpy.frombuffer``, with no check.  The modes alternate ``--rounds`` times in the same
   run; the receiver times the messages after the first (no connection set-up).  Prints MB/s of
   each, the ratios wire / raw (target >= 0.9) and wire-scan / raw (the median of the rounds'
   ratios: a round runs the modes back to back, in an order that rotates from round to round, so
   each ratio pairs them under the same machine load; the ratio of the modes' medians beside it),
   the ratio of each round, the CPU time per message that each adds at each end, and wire's own
   work per message (encode, decode) timed in this process without a socket.
2. **Sustained streaming.**  ``--nodes`` node processes (default 4), each producing complex64 captures
   of ``--capture-mib`` MiB at ``--rate-msps`` (default 30.72 Msps, so one capture per 17.07 ms at
   4 MiB), paced to the sample clock for ``--duration-s`` s, encoded with ``wire.encode_capture`` and
   sent like ``stream.node``'s agent sends (PUSH, ``SNDHWM``, ``NOBLOCK``: a full queue drops the
   capture and counts it).  The host decodes every message as ``FusionHost`` does and checks every
   sample as its sensing does (``wire.decode`` + ``decode_capture`` + ``Capture.check_samples``).
   Loss = captures the nodes dropped + sequence gaps seen by the host + captures never received.
   Latency per capture: host time after ``decode_capture`` minus the capture's ``t0_s`` (its first
   sample), median and p99; the same minus the capture's duration (the part the network and the
   host add once the last sample exists).

Every process keeps the memory it frees for its next allocations (:func:`sdr_isac.executors.keep_freed_memory`),
as ``FusionHost``, the core host and the node agents do: with glibc's defaults each 4 MiB message buffer and the
receiver's own small allocations fault their pages in anew (some 40 page faults per message raw and 100 as the
host decodes, measured here), which cost the receiver more than the decode itself.  ``--default-allocator`` runs
the throughput rounds without it at either end.

Usage: python scripts/bench_stream.py [--duration-s 5] [--nodes 4] [--rate-msps 30.72] [--capture-mib 4]
       [--messages 150] [--rounds 3] [--default-allocator]
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


def _throughput_sender(mode: str, endpoint: str, messages: int, num_samples: int, result: Any,
                       keep: bool = True) -> None:
    import zmq

    from sdr_isac.capture import Capture
    from sdr_isac.executors import keep_freed_memory
    from sdr_isac.stream import wire

    if keep:
        keep_freed_memory()                 # as a node agent (stream.node) does, in every mode

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
        if mode != "raw":
            frames: list[Any] = wire.encode_capture(capture, extra={"bench_seq": seq})
        else:
            frames = [b"capture/bs0", raw_header, iq.data]
        sock.send_multipart(frames, copy=False)
    sock.close()            # LINGER -1: waits until everything is sent
    ctx.term()
    result.put(time.process_time() - cpu0)


#: what decode leaves to the consumer in each mode: the host's way, and a receiver that checks every value itself
HOST_CHECKS = {"wire": ("capture",), "wire-scan": ()}


def _throughput(mode: str, messages: int, num_samples: int, keep: bool = True) -> tuple[float, float, float]:
    """Bytes per second of iq received in ``mode`` (``wire``, ``wire-scan`` or ``raw``), timed after the first
    message, and the CPU seconds per message of the sender and of the receiver (all their threads, ZeroMQ's I/O
    included)."""
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
                                                          queue, keep))
    proc.start()
    nbytes, start = 0, 0.0
    cpu0 = time.process_time()
    try:
        for i in range(messages):
            frames = sock.recv_multipart(copy=False)
            if mode != "raw":
                capture = wire.decode_capture(wire.decode(frames, consumer_checks=HOST_CHECKS[mode]))
                size = capture.iq.nbytes
            else:
                # held until the next message, as the capture of the wire modes is (its buffer stays in use)
                samples = np.frombuffer(frames[2].buffer, dtype=np.complex64)
                size = samples.nbytes
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


def _own_work_s(num_samples: int, repeat: int = 200) -> tuple[float, float]:
    """Median seconds of ``encode_capture`` and of ``decode`` + ``decode_capture`` (as the host) on one capture."""
    from sdr_isac.capture import Capture
    from sdr_isac.stream import wire

    capture = Capture(iq=_noise(num_samples, 1), sample_rate_hz=30.72e6, center_freq_hz=3.5e9, node_id="bs0")
    frames = [bytes(f) if i < 2 else f for i, f in enumerate(wire.encode_capture(capture, extra={"bench_seq": 0}))]
    times: dict[str, list[float]] = {"encode": [], "decode": []}
    for _ in range(repeat):
        t = time.perf_counter()
        wire.encode_capture(capture, extra={"bench_seq": 0})
        times["encode"].append(time.perf_counter() - t)
        t = time.perf_counter()
        wire.decode_capture(wire.decode(frames, consumer_checks=HOST_CHECKS["wire"]))
        times["decode"].append(time.perf_counter() - t)
    return float(np.median(times["encode"])), float(np.median(times["decode"]))


def _node(node_id: str, endpoint: str, rate_hz: float, num_samples: int, duration_s: float, ready: Any, go: Any,
          start: Any, result: Any) -> None:
    """One node: captures paced to a ``rate_hz`` sample clock, sent as ``stream.node`` does (NOBLOCK, HWM)."""
    import zmq

    from sdr_isac.capture import Capture
    from sdr_isac.executors import keep_freed_memory
    from sdr_isac.stream import wire

    keep_freed_memory()                     # as a node agent does
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
        capture = wire.decode_capture(wire.decode(frames, consumer_checks=HOST_CHECKS["wire"]))
        capture.check_samples()                           # the host's sensing checks every sample
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
    parser.add_argument("--rounds", type=int, default=3, help="alternating raw/wire/wire-scan rounds")
    parser.add_argument("--skip-sustained", action="store_true")
    parser.add_argument("--default-allocator", action="store_true",
                        help="throughput rounds without keep_freed_memory at either end (glibc's defaults)")
    args = parser.parse_args()
    keep = not args.default_allocator
    if keep:
        from sdr_isac.executors import keep_freed_memory

        keep_freed_memory()                 # as FusionHost.start does: the receiver of every mode
    num_samples = int(args.capture_mib * SAMPLES_PER_MIB)
    modes = ("raw", "wire", "wire-scan")
    rates: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    for r in range(args.rounds):
        for mode in modes[r % 3:] + modes[:r % 3]:          # each mode first, second and third in turn
            bps, cpu_tx, cpu_rx = _throughput(mode, args.messages, num_samples, keep)
            rates[mode].append(bps)
            cpu[mode].append((cpu_tx, cpu_rx))
    raw_bps = float(np.median(rates["raw"]))
    print(f"throughput, {args.capture_mib:g} MiB captures, tcp loopback, {args.messages} messages x "
          f"{args.rounds} rounds alternating (median of rounds); "
          + ("both ends keep freed memory, as the host and node agents do" if keep else
             "glibc's default allocator at both ends (--default-allocator)"))
    labels = {"raw": "raw pyzmq copy=False       ", "wire": "wire, as the host decodes  ",
              "wire-scan": "wire, decode scans values  "}
    for mode in modes:
        tx, rx = (float(np.median([c[i] for c in cpu[mode]])) * 1e3 for i in (0, 1))
        print(f"  {labels[mode]} {float(np.median(rates[mode])) / 1e6:8.0f} MB/s   CPU per message: sender "
              f"{tx:5.2f} ms, receiver {rx:5.2f} ms   rounds (MB/s): "
              + ", ".join(f"{r / 1e6:.0f}" for r in rates[mode]))
    for mode in ("wire", "wire-scan"):
        pairs = [w / r for w, r in zip(rates[mode], rates["raw"])]
        extra = [float(np.median([c[i] for c in cpu[mode]]) - np.median([c[i] for c in cpu["raw"]])) * 1e3
                 for i in (0, 1)]
        target = "(target >= 0.9)" if mode == "wire" else "(for comparison)"
        print(f"  ratio {mode:9s} / raw  {float(np.median(pairs)):5.2f} {target:16s} (median of the rounds' ratios; "
              f"of the medians {float(np.median(rates[mode])) / raw_bps:.2f}) rounds: "
              + ", ".join(f"{q:.2f}" for q in pairs)
              + f"; extra CPU per message: sender {extra[0]:+.2f} ms, receiver {extra[1]:+.2f} ms")
    encode_s, decode_s = _own_work_s(num_samples)
    print(f"  wire's own work per message, in this process without a socket: encode {encode_s * 1e6:.0f} us, "
          f"decode + decode_capture {decode_s * 1e6:.0f} us (as the host decodes; "
          f"{(encode_s + decode_s) / (float(np.median([sum(c) for c in cpu['raw']])) or 1.0) * 100:.1f} % of raw's "
          "CPU per message at both ends)")
    print("  (each round's modes run back to back, their order rotating, so the rounds' ratios pair them under the "
          "same load; on a loaded machine the rounds still scatter)")
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
    print(f"  latency t0 -> decoded and checked at host: median {med:.1f} ms, p99 {p99:.1f} ms (minus the "
          f"capture's own {period:.2f} ms: median {med - period:.1f} ms, p99 {p99 - period:.1f} ms)")


if __name__ == "__main__":
    main()
