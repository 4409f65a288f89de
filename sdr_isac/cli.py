"""The ``sdr-isac`` command.

Every subcommand has ``--help``.  Errors of the sdr_isac family are printed
as one line (``error: ...``) with exit status 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdr_isac import __version__, config
from sdr_isac.channel import noise_var_for_snr
from sdr_isac.channel.awgn import TAP_DELAYS_SAMPLES, multipath_link
from sdr_isac.errors import SdrIsacError
from sdr_isac.waveform import IsacFrame
from sdr_isac.waveform.receiver import CommReceiver

__all__ = ["main", "build_parser"]


def _load(path: str | None) -> config.Config:
    return config.load(path) if path else config.default()


def _cmd_waveform(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    frame = IsacFrame(cfg.frame)
    print(f"# {cfg.name}: {cfg.description}" if cfg.description else f"# {cfg.name}")
    print(frame.summary())
    return 0




def _cmd_demo(args: argparse.Namespace) -> int:
    from importlib import resources

    from sdr_isac.experiments.demo import table
    from sdr_isac.stream.demo import run_stream_demo

    with resources.as_file(resources.files("sdr_isac").joinpath("demo.toml")) as builtin_path:
        path = Path(args.config) if args.config else builtin_path
        cfg = config.load(path)
        frame = IsacFrame(cfg.frame)
        print(f"# sdr-isac demo: {cfg.name} — {cfg.description}")
        print(frame.summary())
        print(f"\nstreaming: {args.frames} frame(s) per node, each node a process, over ZeroMQ on 127.0.0.1 to a "
              "host process that runs sdr_isac.sensing.process")
        result = run_stream_demo(path, args.out, args.frames, record=True)
        for node_id, summary in result["nodes"].items():
            print(f"\nnode {node_id}:")
            print(table(summary))
            print(f"all targets detected: {summary['all_targets_detected']}; largest |error| / sqrt(CRB): range "
                  f"{summary['max_range_error_over_crb']:.2f}, velocity "
                  f"{summary['max_velocity_error_over_crb']:.2f}")
        print(f"\n{'node':6s} {'sent':>5s} {'received':>8s} {'dropped':>7s} {'lost':>5s} {'latency ms':>10s}")
        for node_id, st in result["stream"]["nodes"].items():
            latency = st["latency_mean_s"] * 1e3 if st["latency_mean_s"] is not None else float("nan")
            print(f"{node_id:6s} {int(st['node_sent'] or 0):5d} {st['received']:8d} "
                  f"{int(st['node_dropped'] or 0):7d} {st['lost']:5d} {latency:10.2f}")
        _fused_table(result.get("fused"))
        print(f"wrote {args.out}/stream_stats.json, fused.json and {args.out}/<node>/summary.json, "
              "range_doppler.png")
        _display_snapshot(Path(args.out), next(iter(result["nodes"]), None), path)
    _link_check(frame, args.snr_db, args.seed)
    return 0


def _fused_table(fused: dict[str, Any] | None) -> None:
    """Print the host's multi-BS fused positions beside each node's own (range + angle) estimate."""
    if not fused or not fused["per_set"]:
        return
    last = fused["per_set"][-1]
    nodes = sorted(last["nodes"])
    print(f"\nmulti-BS fusion on the host ({fused['sets']} time-aligned sets of {', '.join(nodes)}; targets at "
          f"{fused['target_height_m']:g} m height), last set:")
    print(f"{'target':10s} {'truth x,y (m)':>16s} " + " ".join(f"{n + ' err':>9s}" for n in nodes)
          + f" {'fused err':>9s} {'√CRB':>7s} {'v err':>7s} {'√CRB v':>7s}")
    for row in last["targets"]:
        truth = f"{row['truth_m'][0]:7.1f},{row['truth_m'][1]:7.1f}"
        if not row["fused"]:
            print(f"{row['target']:10s} {truth:>16s}   (not seen by two nodes)")
            continue
        singles = " ".join(f"{row['single_error_m'].get(n, float('nan')):9.3f}" for n in nodes)
        print(f"{row['target']:10s} {truth:>16s} {singles} {row['position_error_m']:9.3f} {row['crb_position_m']:7.3f} "
              f"{row.get('velocity_error_mps', float('nan')):7.3f} {row.get('crb_velocity_mps', float('nan')):7.3f}")
    print("errors in m (position, horizontal) and m/s (velocity vector); per node: its own range + angle estimate")


def _display_snapshot(out: Path, node_id: str | None, config_path: Path) -> None:
    """Render the display offscreen for what the host recorded of one node and fused (a separate process: Qt
    stays there): sensed with the host's ``[sensing]``, the scene's nodes, the host's fused estimates."""
    import os
    import subprocess

    recording = out / "recordings" / f"{node_id}.sigmf-meta"
    if node_id is None or not recording.exists():
        return
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    fused = ["--estimates", str(out / "fused.json")] if (out / "fused.json").exists() else []
    done = subprocess.run([sys.executable, "-m", "sdr_isac", "display", "--replay", str(recording), "--config",
                           str(config_path), *fused, "--snapshot", str(out / "display.png")],
                          capture_output=True, text=True, env=env, timeout=120)
    if done.returncode == 0:
        print(f"wrote {out}/display.png (the display of {node_id} as the host sensed it, rendered offscreen; "
              f"{done.stdout.strip().split(': ', 1)[-1]})")
    else:
        print(f"display snapshot skipped: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}")


def _link_check(frame: IsacFrame, snr_db: float, seed: int) -> None:
    """Decode the same frame over a multipath link: the communication half of ISAC."""
    if frame.dmrs is None or not frame.config.data.enabled:
        return
    rx = multipath_link(frame.samples(), snr_db, np.random.default_rng(seed))
    delays = list(TAP_DELAYS_SAMPLES)
    print(f"\ncommunication: {frame.num_ports} x {rx.shape[0]} Rayleigh 3-path channel (delays {delays} "
          f"samples, inside the CP), AWGN at {snr_db:g} dB per RE (noise variance {noise_var_for_snr(snr_db):.3g})")
    print(f"{'equalizer':10s} {'EVM %':>8s} {'EVM dB':>8s} {'BER':>10s} {'noise var est':>14s}")
    # with one layer, ZF and (unbiased) MMSE are the same maximum-ratio combiner
    for equalizer in ("zf", "mmse") if frame.num_layers > 1 else ("mmse",):
        result = CommReceiver(frame, equalizer=equalizer).receive(rx)
        evm = result.evm(frame.data_symbols)
        print(f"{equalizer:10s} {100 * evm:8.2f} {20 * np.log10(evm):8.2f} {result.ber(frame.data_bits):10.2e} "
              f"{result.noise_var:14.3g}")


def _cmd_process(args: argparse.Namespace) -> int:
    import json

    from sdr_isac import sensing
    from sdr_isac.recording import Recording

    cfg = config.load(args.config) if args.config else None
    frame = cfg.frame if cfg is not None else None
    sensing_cfg = cfg.sensing if cfg is not None else config.SensingConfig()
    tx = None
    if args.tx:
        with Recording.open(args.tx, frame) as tx_rec:
            tx = tx_rec.capture(0)
            frame = frame or tx_rec.frame
    results: list[dict[str, Any]] = []
    with Recording.open(args.rx) as probe:              # a recorded isac:frame wins over --config's [frame]
        if probe.frame is not None:
            frame = probe.frame
    with Recording.open(args.rx, frame) as rec:
        indices = range(rec.num_captures) if args.capture is None else [args.capture]
        for i in indices:
            capture = rec.capture(i)
            result = sensing.process(capture, frame or rec.frame, sensing_cfg, tx=tx)
            results.append({"capture": i, "seq": capture.seq, "t0_s": capture.t0_s,
                            "detections": [d.to_dict() for d in result.detections],
                            "noise_var": result.diagnostics.get("noise_var")})
    if args.json:
        print(json.dumps({"rx": str(args.rx), "captures": results}, indent=2))
        return 0
    print(f"{'capture':>7} {'range m':>9} {'velocity m/s':>12} {'Doppler Hz':>11} {'SNR/RE dB':>9} {'angle deg':>9}")
    for r in results:
        if not r["detections"]:
            print(f"{r['capture']:7d} {'(none)':>9}")
        for d in r["detections"]:
            angle = f"{np.degrees(d['angle_rad']):9.2f}" if d["angle_rad"] is not None else f"{'-':>9}"
            print(f"{r['capture']:7d} {d['range_m']:9.3f} {d['velocity_mps']:12.3f} {d['doppler_hz']:11.1f} "
                  f"{d['snr_db']:9.1f} {angle}")
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    from sdr_isac import radio
    from sdr_isac.radio.record import record_frames

    cfg = _load(args.config)
    node = None
    if cfg.scene is not None and cfg.radio.kind == "sim":
        node = dataclasses.asdict(cfg.scene.node(cfg.radio.node_id))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with radio.open_radio(cfg) as r:
        meta = record_frames(r, args.frames, args.out, datatype=args.datatype, overwrite=args.overwrite,
                             description=cfg.description or cfg.name, node=node)
    print(f"wrote {meta} and {meta.with_suffix('.sigmf-data')}: {args.frames} frame(s) from "
          f"{cfg.radio.kind} radio {cfg.radio.node_id!r}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from sdr_isac.recording import describe

    print(describe(args.path, allow_outside=args.allow_outside))
    return 0


def _with_endpoints(cfg: config.Config, args: argparse.Namespace) -> config.Config:
    stream = cfg.stream
    if getattr(args, "endpoint", None):
        stream = dataclasses.replace(stream, host_endpoint=args.endpoint)
    if getattr(args, "publish", None):
        stream = dataclasses.replace(stream, publish_endpoint=args.publish)
    if getattr(args, "frames", None) is not None:
        stream = dataclasses.replace(stream, frames=args.frames)
    return dataclasses.replace(cfg, stream=stream)


def _stop_on_signals() -> Any:
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _cmd_node(args: argparse.Namespace) -> int:
    import json

    from sdr_isac.stream import NodeAgent

    cfg = _with_endpoints(config.load(args.config) if args.config else config.builtin("demo"), args)
    stats = NodeAgent(cfg, node_id=args.node_id).run(_stop_on_signals())
    print(json.dumps(stats))
    return 0


def _cmd_host(args: argparse.Namespace) -> int:
    import time

    from sdr_isac.stream import FusionHost
    from sdr_isac.stream.demo import write_host_outputs

    cfg = _with_endpoints(config.load(args.config) if args.config else config.builtin("demo"), args)
    stop = _stop_on_signals()
    expected = set(args.nodes.split(",")) if args.nodes else set()
    deadline = time.monotonic() + args.timeout if args.timeout else None
    host = FusionHost(cfg, record_dir=args.record).start()
    print(f"host: receiving on {cfg.stream.host_endpoint}, publishing on {cfg.stream.publish_endpoint}", flush=True)
    try:
        while not stop.wait(0.1):
            if deadline is not None and time.monotonic() > deadline:
                break
            if expected and host.finished(expected):
                break
    finally:
        host.stop()
    stats = host.stats()
    print(f"host: {stats['rejected']} message(s) rejected, {stats['errors_total']} error(s), "
          f"{stats['refused']['total']} connection(s) refused ({stats['handshake_failures']} before "
          "authentication); "
          f"receiving thread {'alive' if stats['receiver_alive'] else 'DEAD'}, worker thread "
          f"{'alive' if stats['worker_alive'] else 'DEAD'} at the end", flush=True)
    if args.out:
        write_host_outputs(host, cfg, args.out)
        print(f"host: wrote {args.out}/stream_stats.json and per-node outputs")
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    from sdr_isac.stream.security import create_keys

    public, secret = create_keys(args.out, args.name)
    print(f"wrote {public} (public: give it to the host's stream.curve_allowed (a node), its "
          f"stream.curve_subscribers_allowed (a display or recorder), or the clients' curve_server_public (the "
          f"host's own)) and {secret} (secret: keep it on this machine)")
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    from sdr_isac.experiments.catalog import scenario, scenario_names
    from sdr_isac.experiments.runner import run_experiment

    if args.list or not args.name:
        for name in scenario_names():
            scn = scenario(name)
            print(f"{name:10s} {scn.description} ({scn.default_trials} trials per point by default)")
        return 0
    points = None
    if args.snr_db:
        try:
            snrs = [float(v) for v in args.snr_db.split(",") if v.strip()]
        except ValueError as err:
            raise config.ConfigError(f"--snr-db {args.snr_db!r}: allowed comma-separated numbers of dB, e.g. "
                                     "-20,-10,0", key="snr_db") from err
        base = scenario(args.name).points
        points = [dict(base[0], snr_db=s) for s in snrs]
    out = Path(args.out) if args.out else Path("out") / "experiments" / args.name
    scn = scenario(args.name)
    result = run_experiment(scn, args.trials, out, args.seed, args.workers, args.scheduler,
                            progress=not args.quiet, points=points)
    if scn.table is not None:
        print(scn.table(result.summary))
    where = f"on {args.scheduler}" if args.scheduler else f"with {args.workers or 'all'} local worker(s)"
    print(f"{args.name}: {result.trials} trials per point in {result.seconds:.1f} s {where}, seed {result.seed}")
    for path in result.files:
        print(f"wrote {path}")
    return 0


def _cmd_display(args: argparse.Namespace) -> int:
    from sdr_isac.display.app import run

    return int(run(args))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sdr-isac`` (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="sdr-isac", description="ISAC testbeds on software-defined radios: waveform, radios, sensing, fusion.")
    parser.add_argument("--version", action="version", version=f"sdr-isac {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("waveform", help="print the frame summary of a configuration",
                       description="Build the ISAC frame of a configuration and print its numerology, CP per "
                                   "symbol, sample rate, RE counts per signal and radar figures.")
    p.add_argument("--config", metavar="FILE", help="TOML configuration (default: the built-in default)")
    p.set_defaults(func=_cmd_waveform)

    p = sub.add_parser("demo", help="run the main job on the built-in simulated radios",
                       description="Simulated base stations, each a process, stream their captures over ZeroMQ on "
                                   "loopback to a host process that senses two moving targets; writes "
                                   "OUT/stream_stats.json and OUT/<node>/range_doppler.png and summary.json, prints "
                                   "detections beside truth, then decodes the frame over a multipath link.")
    p.add_argument("--config", metavar="FILE", help="TOML configuration with a sim radio and a scene "
                                                    "(default: the built-in demo scene)")
    p.add_argument("--out", metavar="DIR", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--frames", type=int, default=5, metavar="N", help="frames per node (default 5)")
    p.add_argument("--snr-db", type=float, default=20.0, help="SNR per RE of the communication link (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the link's channel and noise (default 0)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("process", help="sense a SigMF recording and print its detections",
                       description="Run the sensing pipeline on every capture of RX (or one) and print range, "
                                   "velocity, Doppler, SNR and angle of each detection. The waveform comes from the "
                                   "recording's isac:frame, or from --config for foreign recordings; --tx gives a "
                                   "recorded transmit capture as the reference.")
    p.add_argument("--rx", metavar="RX.sigmf-meta", required=True, help="the received recording")
    p.add_argument("--tx", metavar="TX.sigmf-meta", help="a recorded transmit capture to use as the reference")
    p.add_argument("--config", metavar="FILE", help="TOML with [frame] (for foreign recordings) and [sensing]")
    p.add_argument("--capture", type=int, metavar="I", help="process only capture I")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_process)

    p = sub.add_parser("node", help="run a radio node that streams to the fusion host",
                       description="Open the configuration's radio, transmit the frame, capture and stream captures "
                                   "(or local detections, stream.send = 'detections') to the host over ZeroMQ. "
                                   "Stops after stream.frames frames, or on SIGINT/SIGTERM; prints its counters.")
    p.add_argument("--config", metavar="FILE", help="TOML configuration (default: the built-in demo scene)")
    p.add_argument("--node-id", metavar="ID", help="which node of the scene/configuration this is")
    p.add_argument("--endpoint", metavar="URL", help="override stream.host_endpoint (tcp://HOST:PORT)")
    p.add_argument("--frames", type=int, metavar="N", help="override stream.frames")
    p.set_defaults(func=_cmd_node)

    p = sub.add_parser("host", help="run the fusion host that receives from nodes",
                       description="Receive from every node, sense captures off the receiving thread, count loss and "
                                   "latency per node, publish detections; stop on SIGINT/SIGTERM, after --timeout, or "
                                   "when every node of --nodes has sent its last heartbeat.")
    p.add_argument("--config", metavar="FILE", help="TOML configuration (default: the built-in demo scene)")
    p.add_argument("--endpoint", metavar="URL", help="override stream.host_endpoint")
    p.add_argument("--publish", metavar="URL", help="override stream.publish_endpoint")
    p.add_argument("--nodes", metavar="A,B", help="stop when these nodes have finished")
    p.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--record", metavar="DIR", help="record every node's captures to DIR/<node>.sigmf-meta")
    p.add_argument("--out", metavar="DIR", help="write stream_stats.json and per-node summaries and maps here")
    p.set_defaults(func=_cmd_host)

    from sdr_isac.stream.core import add_parser as add_core_parser
    from sdr_isac.twin.cli import add_parser as add_twin_parser

    add_core_parser(sub)
    add_twin_parser(sub)

    from sdr_isac.display.app import add_arguments as display_arguments  # importing it loads no Qt

    p = sub.add_parser("display", help="live range-Doppler display and top view (replay or a running host)",
                       description="Replay a SigMF recording (--replay) or subscribe to a fusion host (--host) and "
                                   "show the range-Doppler map, detections and truth, a top view of nodes, "
                                   "coverage and targets, per-node loss and latency, with controls for CFAR P_fa, "
                                   "guard and training cells and a Record button; --snapshot draws the first frame "
                                   "offscreen to a PNG and exits (QT_QPA_PLATFORM=offscreen on a machine without a "
                                   "screen).")
    display_arguments(p)
    p.set_defaults(func=_cmd_display)

    p = sub.add_parser("experiment", help="run a Monte Carlo experiment (fig5, ...) locally or on Dask",
                       description="Run a named Monte Carlo scenario: seeded trials on local processes, or on a "
                                   "Dask distributed cluster with --scheduler; writes OUT/summary.csv, "
                                   "OUT/trials.csv and the scenario's PNG plots, and prints its table. The same "
                                   "seed gives the same numbers however the trials are distributed.")
    p.add_argument("name", nargs="?", metavar="NAME", help="scenario name (--list shows them)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--trials", type=int, metavar="N", help="trials per point (default: the scenario's)")
    p.add_argument("--out", metavar="DIR", help="output folder (default out/experiments/NAME)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: one per CPU)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on this Dask distributed scheduler")
    p.add_argument("--snr-db", metavar="LIST",
                   help="comma-separated per-RE SNRs in dB instead of the scenario's sweep; write --snr-db=-20,-10 "
                        "when the first is negative")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_experiment)

    p = sub.add_parser("keys", help="create a ZeroMQ CURVE key pair",
                       description="Write NAME.key (public) and NAME.key_secret (secret, mode 0600) into DIR.")
    p.add_argument("--out", metavar="DIR", required=True, help="folder for the key files")
    p.add_argument("--name", default="node", help="base name of the key files (default node)")
    p.set_defaults(func=_cmd_keys)

    p = sub.add_parser("record", help="record frames from a radio into a SigMF recording",
                       description="Open the configuration's radio (sim, replay, pluto, usrp), transmit its frame "
                                   "cyclically and record N frame-long captures, with ground truth for simulated "
                                   "radios, as PATH.sigmf-meta + PATH.sigmf-data.")
    p.add_argument("--config", metavar="FILE", required=True, help="TOML configuration with [frame] and [radio]")
    p.add_argument("--frames", type=int, default=4, metavar="N", help="captures to record (default 4)")
    p.add_argument("--out", metavar="PATH", required=True, help="output base name (suffixes are added)")
    p.add_argument("--datatype", default="cf32_le", choices=("cf32_le", "cf64_le", "ci16_le"),
                   help="sample format on disk (default cf32_le)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing recording")
    p.set_defaults(func=_cmd_record)

    p = sub.add_parser("info", help="summarise and validate a SigMF recording",
                       description="Print a recording's format, rate, frequency, frame, node and the truth of "
                                   "each capture, after validating every metadata field, verifying core:sha512 "
                                   "and reading every capture; exits with status 2 if the recording is malformed.")
    p.add_argument("path", metavar="PATH", help="the .sigmf-meta (or .sigmf-data, or base name)")
    p.add_argument("--allow-outside", action="store_true",
                   help="allow a data file outside the recording's folder (core:dataset with .., an absolute path "
                        "or a link to elsewhere); only for recordings you trust")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sdr-isac``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SdrIsacError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:         # `sdr-isac info x | head`: the reader left; no traceback, the shell's status
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())      # Python flushes stdout at exit: let that go nowhere
        return 141


if __name__ == "__main__":
    sys.exit(main())
