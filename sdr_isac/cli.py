"""The ``sdr-isac`` command.

Every subcommand has ``--help``.  Errors of the sdr_isac family are printed
as one line (``error: ...``) with exit status 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sdr_isac import __version__, config
from sdr_isac.capture import Capture
from sdr_isac.channel import noise_var_for_snr
from sdr_isac.channel.awgn import TAP_DELAYS_SAMPLES, multipath_link
from sdr_isac.errors import InputError, exit_status, joined_list_values, number_argument
from sdr_isac.waveform import IsacFrame
from sdr_isac.waveform.receiver import CommReceiver

if TYPE_CHECKING:
    from sdr_isac.recording import Recording

__all__ = ["main", "build_parser"]


def _load(path: str | None) -> config.Config:
    return config.load(path) if path else config.default()


def _cmd_waveform(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    frame = IsacFrame(cfg.frame)
    print(f"# {cfg.name}: {cfg.description}" if cfg.description else f"# {cfg.name}")
    print(frame.summary())
    return 0




def _sweep_key(points: Any) -> str | None:
    """The SNR key of a scenario's points (``snr_db``), or None where it sweeps something else."""
    return "snr_db" if points and all("snr_db" in p for p in points) else None


def _cmd_demo(args: argparse.Namespace) -> int:
    from importlib import resources

    from sdr_isac.experiments.demo import table
    from sdr_isac.stream.demo import run_stream_demo

    if args.scene == "urban":
        return _urban_demo(args)
    args.out = args.out or "out/demo"
    args.frames = args.frames if args.frames is not None else 5
    args.snr_db = 20.0 if args.snr_db is None else args.snr_db
    args.seed = 0 if args.seed is None else args.seed
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


def _urban_demo(args: argparse.Namespace) -> int:
    """``sdr-isac demo --scene urban``: nodes -> one MECS host per operator -> the core host, as processes."""
    from sdr_isac.experiments.demo import urban_table
    from sdr_isac.stream.demo import URBAN_FRAME_INTERVAL_S, URBAN_FRAMES, run_urban_demo

    if args.config:
        raise config.ConfigError(f"--config {args.config} with --scene urban: the urban demo runs the built-in "
                                 "urban scene; leave --config out", key="config")
    ignored = [f"--{name.replace('_', '-')}" for name in ("snr_db", "seed") if getattr(args, name) is not None]
    if ignored:
        raise config.ConfigError(f"{', '.join(ignored)} with --scene urban: the urban demo has no link check; "
                                 "leave them out", key="scene")
    out = args.out or "out/demo_urban"
    frames = args.frames if args.frames is not None else URBAN_FRAMES
    interval_s = args.frame_interval if args.frame_interval is not None else URBAN_FRAME_INTERVAL_S
    print(f"# sdr-isac demo --scene urban: {frames} frame(s) per node of the built-in urban scene, "
          f"{interval_s:g} s of scene time apart; each node, each operator's MECS host and the core host a process, "
          "over ZeroMQ on 127.0.0.1")
    result = run_urban_demo(out, frames, timeout_s=args.timeout, frame_interval_s=interval_s)
    print(urban_table(result))
    print(f"wrote {out}/<mecs id>/ (stream_stats.json, fused.json, tracks.json, twin.sqlite), {out}/core/ "
          f"(core_stats.json, tracks.json) and {out}/handovers.json")
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
    fused += ["--tracks", str(out / "tracks.json")] if (out / "tracks.json").exists() else []
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


# ---- sdr-isac process ------------------------------------------------------------------------------------
_FRAME_EXAMPLE = """\
    [frame]                  # the transmitted OFDM frame (a complete example: hw_configs/foreign_ofdm.toml)
    subcarriers = 100        # occupied subcarriers (even), centred on DC
    spacing_hz = 250e3       # subcarrier spacing, Hz (sample rate = fft_size * spacing_hz)
    fft_size = 128           # FFT points
    cp_samples = 16          # cyclic prefix, samples (one value, or one per symbol)
    num_symbols = 40         # OFDM symbols per frame
    carrier_hz = 5.8e9       # centre frequency, Hz"""


def _process_config(path: str | None) -> tuple[config.Config | None, dict[str, Any]]:
    """The validated configuration and its ``[frame]`` table as written ({} when the file has none)."""
    if not path:
        return None, {}
    cfg, table = config.load_with_table(path)
    raw = table.get("frame", {})
    return cfg, raw if isinstance(raw, dict) else {}


def _cp_fit(iq: np.ndarray, fft_size: int, cps: np.ndarray) -> float:
    """Correlation coefficient 0 ... 1 of every cyclic prefix with the tail of its symbol (1: the layout fits).

    ``iq`` shape (n,) complex; the layout (FFT size, CP per symbol) starts at sample 0.  NaN when the layout
    has no CP or does not fit in ``iq``.
    """
    starts = np.concatenate(([0], np.cumsum(fft_size + cps)[:-1]))
    if cps.sum() == 0 or starts[-1] + fft_size + cps[-1] > iq.size:
        return float("nan")
    head = np.concatenate([iq[s:s + c] for s, c in zip(starts, cps)])
    tail = np.concatenate([iq[s + fft_size:s + fft_size + c] for s, c in zip(starts, cps)])
    power = float(np.sqrt(np.vdot(head, head).real * np.vdot(tail, tail).real))
    return abs(complex(np.vdot(tail, head))) / power if power > 0.0 else float("nan")


def _length_problem(frame: IsacFrame, n: int, what: str, iq: np.ndarray) -> str:
    """Why ``n`` samples are not a whole number of ``frame``s, and which of CP, symbols or FFT size would fit."""
    cfg, cps = frame.config, frame.cp_lengths
    n_fft, m, length = cfg.fft_size, frame.num_symbols, frame.num_samples
    cp_text = f"CP {cps[0]}" if np.all(cps == cps[0]) else f"CP {cps.min()} ... {cps.max()}"
    text = (f"{what} holds {n} samples, not a whole number of frames of {length} samples ({m} symbols x "
            f"(FFT {n_fft} + {cp_text}))")
    if not np.all(cps == cps[0]):
        return text + ": check the [frame] against the transmitter's settings (numerology, num_rb, num_slots)"
    cp = int(cps[0])
    k = max(1, round(n / length))                              # the frame count that explains n best
    per = n // k
    options: list[tuple[str, str, int, np.ndarray]] = []      # (what is off, the fix, FFT, CPs) of each fit
    if n % k == 0:
        if per % m == 0 and 0 <= per // m - n_fft < n_fft and per // m - n_fft != cp:
            options.append(("the CP", f"cp_samples = {per // m - n_fft}", n_fft, np.full(m, per // m - n_fft)))
        if per % (n_fft + cp) == 0 and per // (n_fft + cp) != m:
            options.append(("the symbol count", f"num_symbols = {per // (n_fft + cp)}", n_fft,
                            np.full(per // (n_fft + cp), cp)))
        if per % m == 0 and cfg.num_subcarriers <= per // m - cp != n_fft and per // m - cp > cp:
            fft = per // m - cp
            options.append(("the FFT size", f"fft_size = {fft} (with spacing_hz = "
                            f"{frame.sample_rate_hz / fft:g} Hz to keep the sample rate)", fft, np.full(m, cp)))
    samples = iq.ravel()[:per]
    own = _cp_fit(samples, n_fft, cps)
    scored = [(off, fix, _cp_fit(samples, fft, c)) for off, fix, fft, c in options]
    fits = [(off, fix, rho) for off, fix, rho in scored if rho >= 0.9]
    if not options:
        return text + (f"; no single change of cp_samples, num_symbols or fft_size makes {k} frame(s) of it: "
                       "check the [frame] against the transmitter's settings")
    listed = "; ".join(f"{off}: {fix} makes {k} frame(s)" + ("" if np.isnan(rho) else
                       f" (cyclic-prefix correlation {rho:.2f})") for off, fix, rho in scored)
    own_text = "" if np.isnan(own) else f" (the [frame]'s layout: cyclic-prefix correlation {own:.2f})"
    if len(fits) == 1:
        return text + f"{own_text}: {fits[0][0]} is off: set {fits[0][1]} [{listed}]"
    return text + f"{own_text}: one of CP, symbols or FFT size is off; candidates: {listed}"


def _frame_units(rec: Recording, built: IsacFrame, what: str, drop_tail: bool) -> list[tuple[int, int]]:
    """``(capture, sample offset in it)`` of every frame: one per capture of an sdr_isac recording; else one per
    annotation exactly one frame long (frames with gaps between them, marked by the other tool); else the
    captures cut into whole frames (a remainder is refused, or dropped with ``drop_tail``)."""
    if rec.is_isac:
        return [(i, -1) for i in range(rec.num_captures)]          # -1: the capture as recorded (frame_offset)
    length, units = built.num_samples, []
    marked = sorted(a["core:sample_start"] for a in rec.annotations if a.get("core:sample_count") == length)
    if marked:
        spans = [rec.capture_span(i) for i in range(rec.num_captures)]
        for start in marked:
            inside = [i for i, (first, count) in enumerate(spans) if first <= start and start + length <= first + count]
            if not inside:
                raise InputError(f"{what}: the annotation at core:sample_start = {start} (core:sample_count = "
                                 f"{length}, one frame) is not inside one capture segment: allowed frames inside "
                                 "the data and one segment; fix the annotation")
            units.append((inside[0], start - spans[inside[0]][0]))
        return units
    for i in range(rec.num_captures):
        start, count = rec.capture_span(i)
        whole, rest = divmod(count, length)
        if rest and not (drop_tail and whole):
            where = f"{what} capture {i}" if rec.num_captures > 1 else what
            raise InputError(_length_problem(built, count, where, rec.read(start, min(count, 4 * length))[0]) +
                             ("" if whole == 0 or what.startswith("TX") else
                              f"; if the capture merely ends in a partial frame, pass --drop-tail to sense the "
                              f"{whole} whole frame(s)"))
        units += [(i, j * length) for j in range(whole)]
    return units


def _unit_capture(rec: Recording, unit: tuple[int, int], built: IsacFrame, carrier_hz: float | None) -> Capture:
    """The capture of one frame unit, its carrier replaced when ``carrier_hz`` is given.

    ``unit`` is ``(capture, offset)``: offset -1 is the recorded capture (with its ``frame_offset``), else only
    the frame's samples from that offset are read (a foreign capture of many frames is never read whole).
    """
    if unit[1] < 0:
        capture = rec.capture(unit[0])
    else:
        info = rec.capture_info(unit[0])
        capture = Capture(rec.read(info["sample_start"] + unit[1], built.num_samples), rec.sample_rate_hz,
                          info["center_freq_hz"], t0_s=info["t0_s"] + unit[1] / rec.sample_rate_hz,
                          node_id=info["node_id"], seq=info["seq"], frame=rec.frame)
    return capture if carrier_hz is None else capture.with_fields(center_freq_hz=carrier_hz)


def _process_frame(args: argparse.Namespace, cfg: config.Config | None, raw: dict[str, Any],
                   rx_frame: config.FrameConfig | None, rx_source: str) -> tuple[config.FrameConfig, str]:
    """The waveform to sense with and where it came from: RX's own description, [frame] of --config, TX's."""
    from sdr_isac.recording import Recording
    from sdr_isac.recording.reader import waveform_description

    if rx_frame is not None:
        if raw and cfg is not None and cfg.frame != rx_frame:
            print(f"note: the waveform is RX's {rx_source} description; the [frame] of {args.config} differs and "
                  "is not used", file=sys.stderr)
        return rx_frame, f"RX's {rx_source} description"
    if raw and cfg is not None:
        return cfg.frame, f"[frame] of {args.config}"
    if args.tx:
        with Recording.open(args.tx) as tx_rec:
            tx_frame, tx_source = waveform_description(tx_rec)
        if tx_frame is not None:
            return tx_frame, f"TX's {tx_source} description"
    given = f"{args.config} has no [frame] section" if args.config else "no --config was given"
    raise InputError(f"{args.rx}: the recording carries no waveform description (no isac:frame, no ofdm: keys) "
                     f"and {given}: pass --config FILE with a [frame] section that describes the transmitted OFDM "
                     f"frame, for example\n{_FRAME_EXAMPLE}\n(for a 3GPP NR frame give numerology, num_rb and "
                     "num_slots instead; sdr-isac waveform --config FILE prints the frame it describes)")


def _process_carrier(args: argparse.Namespace, raw: dict[str, Any], frame: config.FrameConfig, source: str,
                     rx: Recording) -> float | None:
    """The carrier to sense with where it must replace the recording's ``core:frequency`` (None: keep that).

    ``raw`` is the ``[frame]`` table as written when the frame comes from ``--config`` ({} otherwise: then the
    frame's carrier is the recording's own description).
    """
    recorded = sorted({f for f in rx.frequencies_hz if f > 0.0})
    from_config = source.startswith("[frame]")
    given = float(frame.carrier_hz) if ("carrier_hz" in raw or not from_config) else None
    where = f"the [frame] of {args.config}" if from_config else source
    if args.carrier_from == "config":
        if given is None:
            raise InputError(f"--carrier-from config, but {where} has no carrier_hz: allowed with a carrier_hz "
                             "in the [frame]; add it")
        return given
    if args.carrier_from == "recording":
        if not recorded:
            raise InputError(f"--carrier-from recording, but {args.rx} has no core:frequency: allowed with a "
                             "recorded frequency; give carrier_hz in the [frame] and --carrier-from config")
        return None
    if given is None:
        if not recorded:
            raise InputError(f"{args.rx} has no core:frequency and {where} no carrier_hz: the carrier (which "
                             "scales Doppler to velocity) is unknown; add carrier_hz to the [frame]")
        return None
    differs = [f for f in recorded if abs(f - given) > 1e-9 * given]
    if differs:
        raise InputError(f"carrier_hz = {given:g} Hz in {where}, but {args.rx} has core:frequency = "
                         f"{differs[0]:g} Hz: allowed one carrier (it scales Doppler to velocity); pass "
                         "--carrier-from config to use carrier_hz, --carrier-from recording to use core:frequency, "
                         "or fix the one that is wrong")
    return None if recorded else given


def _check_rate(rec: Recording, built: IsacFrame, what: str, source: str) -> None:
    """Refuse a recording whose ``core:sample_rate`` is not the frame's FFT size x subcarrier spacing."""
    cfg, rate = built.config, rec.sample_rate_hz
    if abs(rate - built.sample_rate_hz) > 1e-6 * built.sample_rate_hz:
        raise InputError(f"{what}: core:sample_rate = {rate:g} Hz, but the frame's sample rate (fft_size "
                         f"{cfg.fft_size} x {cfg.subcarrier_spacing_hz:g} Hz, {source}) is {built.sample_rate_hz:g} "
                         f"Hz: allowed equal rates; set spacing_hz = {rate / cfg.fft_size:g} Hz, or the "
                         "transmitter's fft_size")


def _cmd_process(args: argparse.Namespace) -> int:
    import json

    from sdr_isac import sensing
    from sdr_isac.recording import Recording
    from sdr_isac.recording.reader import waveform_description

    cfg, raw = _process_config(args.config)
    sensing_cfg = cfg.sensing if cfg is not None else config.SensingConfig()
    if args.tx and args.reference == "frame":
        raise InputError("--reference frame and --tx: allowed one reference; drop --tx to use the frame's own "
                         "symbols, or drop --reference frame to use the TX recording")
    if args.reference == "tx" and not args.tx:
        raise InputError("--reference tx without --tx: allowed with a TX recording; pass --tx TX.sigmf-meta")
    with Recording.open(args.rx, verify_checksum=False) as probe:     # the real open below checks the hash
        rx_frame, rx_source = waveform_description(probe)
    frame, source = _process_frame(args, cfg, raw, rx_frame, rx_source)
    if not args.tx and rx_source != "isac:frame" and args.reference != "frame":
        raise InputError(f"{args.rx}: no reference for a recording of another tool (its waveform comes from "
                         f"{source}, which gives the layout, not the payload): pass --tx TX.sigmf-meta, the "
                         "recording of what was transmitted; or, only if the transmitter sent exactly the frame "
                         "sdr_isac builds from this description (its reference signals and the data of "
                         f"data.seed = {frame.data.seed}), pass --reference frame. Without either, the frame's "
                         "own seeded payload would be the reference and the map would show false targets")
    built = IsacFrame(frame)
    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        rec = stack.enter_context(Recording.open(args.rx, frame))
        _check_rate(rec, built, f"RX {args.rx}", source)
        carrier = _process_carrier(args, raw if source.startswith("[frame]") else {}, frame, source, rec)
        tx_rec, tx_units = None, []
        if args.tx:                             # what was sent is exact: checked first, never cut short
            tx_rec = stack.enter_context(Recording.open(args.tx, frame))
            _check_rate(tx_rec, built, f"TX {args.tx}", source)
            tx_units = _frame_units(tx_rec, built, f"TX {args.tx}", False)
        units = _frame_units(rec, built, f"RX {args.rx}", args.drop_tail)
        if tx_rec is not None:
            if len(tx_units) not in (1, len(units)):
                raise InputError(f"TX {args.tx} holds {len(tx_units)} frames, RX {args.rx} {len(units)}: allowed "
                                 "as many TX frames as RX frames (the i-th RX frame is sensed against the i-th TX "
                                 "frame) or one (a cyclic transmission); record both for the same time")
            first = _unit_capture(tx_rec, tx_units[0], built, None)
            fit = _cp_fit(first.iq[0, first.frame_offset:], frame.fft_size, built.cp_lengths)
            if fit < 0.5:
                raise InputError(f"TX {args.tx}: its cyclic prefixes do not match the frame ({source}): "
                                 f"correlation of CP and symbol tail {fit:.2f}, allowed >= 0.5; check cp_samples, "
                                 "fft_size and num_symbols against the transmitter")
        if args.capture is not None:
            rec.capture_info(args.capture)                  # an index out of range: the reader's InputError
        only = None if args.capture is None else args.capture % max(rec.num_captures, 1)
        for k, unit in enumerate(units):
            if only is not None and unit[0] != only:
                continue
            capture = _unit_capture(rec, unit, built, carrier)
            tx = None
            if tx_rec is not None:
                tx = first if len(tx_units) == 1 else _unit_capture(tx_rec, tx_units[k], built, None)
            result = sensing.process(capture, built, sensing_cfg, tx=tx)
            results.append({"capture": unit[0], "frame": k, "seq": capture.seq, "t0_s": capture.t0_s,
                            "detections": [d.to_dict() for d in result.detections],
                            "noise_var": result.diagnostics.get("noise_var")})
    reference = ("TX recording" + (" (its one frame for every RX frame: a cyclic transmission)"
                                   if len(tx_units) == 1 and len(units) > 1 else ", frame i for RX frame i")
                 if tx_units else f"the frame's own symbols ({source})")
    if args.json:
        print(json.dumps({"rx": str(args.rx), "waveform": source, "reference": reference,
                          "frames_sensed": len(results), "captures": results}, indent=2))
        return 0
    print(f"{'capture':>7} {'frame':>5} {'range m':>9} {'velocity m/s':>12} {'Doppler Hz':>11} {'SNR/RE dB':>9} "
          f"{'angle deg':>9}")
    for r in results:
        if not r["detections"]:
            print(f"{r['capture']:7d} {r['frame']:5d} {'(none)':>9}")
        for d in r["detections"]:
            angle = f"{np.degrees(d['angle_rad']):9.2f}" if d["angle_rad"] is not None else f"{'-':>9}"
            print(f"{r['capture']:7d} {r['frame']:5d} {d['range_m']:9.3f} {d['velocity_mps']:12.3f} "
                  f"{d['doppler_hz']:11.1f} {d['snr_db']:9.1f} {angle}")
    print(f"sensed {len(results)} frame(s) of {args.rx}; waveform: {source}; reference: {reference}")
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    from sdr_isac import radio
    from sdr_isac.radio.record import record_frames

    cfg = _load(args.config)
    node = None
    if cfg.scene is not None and cfg.radio.kind == "sim":
        node = dataclasses.asdict(cfg.scene.node(cfg.radio.node_id))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    from sdr_isac.recording._format import file_names

    existing = [p for p in file_names(args.out) if p.exists()]
    if existing and not args.overwrite:
        raise config.ConfigError(f"{existing[0]}: the recording already exists; add --overwrite to replace it, or "
                                 "choose another --out", key="out")
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
    host = FusionHost(cfg, record_dir=args.record, out_dir=args.out, expected_nodes=expected or None).start()
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
        key = _sweep_key(base)
        if key is None:
            raise config.ConfigError(f"--snr-db with experiment {args.name}: its points sweep "
                                     f"{', '.join(sorted({k for p in base for k in p}))}, not snr_db; leave "
                                     "--snr-db out", key="snr_db")
        variants = list({tuple(sorted((k, v) for k, v in p.items() if k != key)): None for p in base})
        points = [dict(v, **{key: s}) for v in variants for s in snrs]
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
    p.add_argument("--out", metavar="DIR", help="output folder (default out/demo; out/demo_urban with --scene urban)")
    p.add_argument("--frames", type=_count, metavar="N", help="frames per node (default 5, also with --scene urban)")
    p.add_argument("--snr-db", type=number_argument("dB"),
                   help="SNR per RE of the communication link (default 20)")
    p.add_argument("--seed", type=int, help="seed of the link's channel and noise (default 0)")
    p.add_argument("--scene", choices=("demo", "urban"), default="demo",
                   help="demo: the two-BS demo scene (default); urban: the built-in urban street grid, its nodes "
                        "streaming to one MECS host per operator and those to a core host, all processes "
                        "(--out default out/demo_urban, --frames default 5)")
    p.add_argument("--timeout", type=number_argument("s", low=0.0, low_open=True),
                   default=180.0, metavar="S", help="with --scene urban: the whole run's limit, s (default 180)")
    p.add_argument("--frame-interval", type=number_argument("s", low=0.0, high=3600.0),
                   metavar="S",
                   help="with --scene urban: scene time between a node's frames, s (default 1; 0: back to back, "
                        "the frames then span milliseconds and no target leaves any coverage)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("process", help="sense a SigMF recording and print its detections",
                       description="Run the sensing pipeline on every frame of RX (or of one capture) and print "
                                   "range, velocity, Doppler, SNR and angle of each detection, and how many frames "
                                   "were sensed. The waveform comes from the recording (isac:frame, or ofdm: keys), "
                                   "else from the [frame] of --config (hw_configs/foreign_ofdm.toml shows a non-NR "
                                   "frame). A foreign recording is cut into frames of the frame's length (or taken "
                                   "from its annotations one frame long); --tx gives "
                                   "the recording of what was sent, and the i-th RX frame is sensed against its i-th "
                                   "frame (or its only frame, a cyclic transmission). Without --tx a foreign "
                                   "recording needs --reference frame.")
    p.add_argument("--rx", metavar="RX.sigmf-meta", required=True, help="the received recording")
    p.add_argument("--tx", metavar="TX.sigmf-meta", help="a recorded transmit capture to use as the reference")
    p.add_argument("--config", metavar="FILE", help="TOML with [frame] (for foreign recordings) and [sensing]")
    p.add_argument("--capture", type=_index, metavar="I", help="process only capture I (0, 1, ...)")
    p.add_argument("--reference", choices=("tx", "frame"),
                   help="the reference symbols: tx (the --tx recording, the default with --tx) or frame (the "
                        "frame sdr_isac builds from the waveform description, payload from data.seed: only right "
                        "when the transmitter sent exactly that frame; needed for a foreign recording without --tx)")
    p.add_argument("--carrier-from", choices=("config", "recording"),
                   help="which carrier wins when carrier_hz of the [frame] and the recording's core:frequency "
                        "differ (default: refuse)")
    p.add_argument("--drop-tail", action="store_true",
                   help="foreign RX: sense the whole frames of a capture that ends in a partial frame")
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
    p.add_argument("--nodes", metavar="A,B", help="stop when these nodes have finished; with tracking, the tracker "
                   "takes an instant's fused set once every one of them (not absent) is in it")
    p.add_argument("--timeout", type=_seconds, metavar="S", help="stop after S seconds (> 0)")
    p.add_argument("--record", metavar="DIR", help="record every node's captures to DIR/<node>.sigmf-meta")
    p.add_argument("--out", metavar="DIR", help="write stream_stats.json and per-node summaries and maps here")
    p.set_defaults(func=_cmd_host)

    from sdr_isac.radio.calibrate_cli import add_parser as add_calibrate_parser
    from sdr_isac.stream.core import add_parser as add_core_parser
    from sdr_isac.twin.cli import add_parser as add_twin_parser

    add_core_parser(sub)
    add_twin_parser(sub)
    add_calibrate_parser(sub)

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
                        "when the first is negative. A point's trials are seeded by its position in the list "
                        "(and --seed): one SNR alone draws other trials than the same SNR inside a sweep")
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
    p.add_argument("--frames", type=_count, default=4, metavar="N", help="captures to record (default 4)")
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


def _integer_from(low: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``; ``what`` says what it counts in the refusal."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r}: allowed an integer >= {low} ({what})")
        return value
    return parse


_index = _integer_from(0, "sdr-isac info lists the captures")
_count = _integer_from(1, "frames")


_seconds = number_argument("s", low=0.0, low_open=True,
                                  hint="leave --timeout out to run until stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sdr-isac``; returns the exit status."""
    args = build_parser().parse_args(joined_list_values(sys.argv[1:] if argv is None else list(argv)))
    try:
        return exit_status(lambda: args.func(args))
    except BrokenPipeError:         # `sdr-isac info x | head`: the reader left; no traceback, the shell's status
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())      # Python flushes stdout at exit: let that go nowhere
        return 141


if __name__ == "__main__":
    sys.exit(main())
