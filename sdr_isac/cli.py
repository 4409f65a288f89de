"""The ``sdr-isac`` command.

Every subcommand has ``--help``.  Errors of the sdr_isac family are printed
as one line (``error: ...``) with exit status 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdr_isac import __version__, config
from sdr_isac.channel import add_awgn, apply_taps, noise_var_for_snr
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


_TAP_DELAYS = (0, 3, 11)
_TAP_POWERS = (1.0, 0.25, 0.0625)


def _multipath_link(tx: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Every TX port to max(2, ports) RX channels through random 3-tap channels, plus AWGN."""
    ports = tx.shape[0]
    power = np.asarray(_TAP_POWERS) / np.sum(_TAP_POWERS)
    rx = np.zeros((max(2, ports), tx.shape[1]), dtype=np.complex64)
    for c in range(rx.shape[0]):
        for p in range(ports):
            gains = np.sqrt(power / 2) * (rng.standard_normal(power.size) + 1j * rng.standard_normal(power.size))
            rx[c] += apply_taps(tx[p:p + 1], _TAP_DELAYS, gains)[0]
    return add_awgn(rx, noise_var_for_snr(snr_db), rng)


def _cmd_demo(args: argparse.Namespace) -> int:
    from sdr_isac.experiments.demo import run_sensing_demo, table

    cfg = config.load(args.config) if args.config else config.builtin("demo")
    frame = IsacFrame(cfg.frame)
    print(f"# sdr-isac demo: {cfg.name} — {cfg.description}")
    print(frame.summary())
    print(f"\nsensing: {args.frames} frame(s) of node {cfg.radio.node_id!r} through sdr_isac.sensing.process")
    summary = run_sensing_demo(cfg, args.out, args.frames)
    print(table(summary))
    print(f"all targets detected: {summary['all_targets_detected']}; largest |error| / sqrt(CRB): range "
          f"{summary['max_range_error_over_crb']:.2f}, velocity {summary['max_velocity_error_over_crb']:.2f}")
    print(f"wrote {args.out}/range_doppler.png and {args.out}/summary.json")
    _link_check(frame, args.snr_db, args.seed)
    return 0


def _link_check(frame: IsacFrame, snr_db: float, seed: int) -> None:
    """Decode the same frame over a multipath link: the communication half of ISAC."""
    if frame.dmrs is None or not frame.config.data.enabled:
        return
    rx = _multipath_link(frame.samples(), snr_db, np.random.default_rng(seed))
    print(f"\ncommunication: {frame.num_ports} x {rx.shape[0]} Rayleigh 3-path channel (delays {list(_TAP_DELAYS)} "
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

    print(describe(args.path))
    return 0


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
                       description="A simulated base station senses two moving targets over several frames through "
                                   "the sensing pipeline; writes OUT/range_doppler.png and OUT/summary.json, prints "
                                   "detections beside truth, then decodes the same frame over a multipath link.")
    p.add_argument("--config", metavar="FILE", help="TOML configuration with a sim radio and a scene "
                                                    "(default: the built-in demo scene)")
    p.add_argument("--out", metavar="DIR", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--frames", type=int, default=5, metavar="N", help="frames to sense (default 5)")
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
                                   "each capture; exits with status 2 if the recording is malformed.")
    p.add_argument("path", metavar="PATH", help="the .sigmf-meta (or .sigmf-data, or base name)")
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


if __name__ == "__main__":
    sys.exit(main())
