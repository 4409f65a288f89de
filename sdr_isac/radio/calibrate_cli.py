"""``sdr-isac calibrate``: measure a radio's system delay, channel gains and leakage, and save the calibration file.

``add_parser(subparsers)`` adds the subcommand to the ``sdr-isac`` parser and ``run(args)`` runs it::

    sdr-isac calibrate --config hw_configs/sim_single_bs.toml --method loopback [--out calibration]
    sdr-isac calibrate --config hw_configs/pluto.toml --method reflector --distance-m 5.0

The radio opens uncalibrated, transmits its frame cyclically, and the coherent mean of ``--frames``
captures is measured (:mod:`sdr_isac.sensing.calibration`); the file is written into ``--out``
(:mod:`sdr_isac.radio.calibration`).  Radios opened later with that folder (``open_radio(...,
calibration_dir=DIR)`` or ``SDR_ISAC_CALIBRATION_DIR=DIR``) load it.
"""

from __future__ import annotations

import argparse
import math
import shlex
from typing import Any

import numpy as np

from sdr_isac import config
from sdr_isac.errors import InputError, RadioError
from sdr_isac.radio import open_radio
from sdr_isac.radio.calibration import DEFAULT_FOLDER, ENV_FOLDER, Calibration, key_of, save_calibration
from sdr_isac.sensing.calibration import average_frames, measure_loopback, measure_reflector
from sdr_isac.units import SPEED_OF_LIGHT_MPS
from sdr_isac.waveform import IsacFrame

__all__ = ["add_parser", "run", "DEFAULT_FOLDER"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``calibrate`` to the ``sdr-isac`` subcommands (``subparsers`` from ``add_subparsers``)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "calibrate", help="measure range zero, channel gains and leakage; save the calibration file",
        description="Open the configuration's radio uncalibrated, transmit its frame cyclically and measure, on the "
                    "mean of --frames captures, the system delay (range zero, integer + fractional samples), the "
                    "complex gain of each receive channel relative to channel 0, and the static TX->RX leakage. "
                    "loopback: TX cabled to every RX through an attenuator (and a splitter), or a front end whose "
                    "own coupling is the strongest path; reflector: a reflector on boresight at --distance-m. "
                    f"Writes OUT/<device>_<setting>_<time>.json; radios opened with that folder "
                    f"(open_radio(..., calibration_dir=OUT) or {ENV_FOLDER}=OUT) use it.")
    p.add_argument("--config", metavar="FILE", required=True, help="TOML configuration with [frame] and [radio]")
    p.add_argument("--method", choices=("loopback", "reflector"), required=True, help="the known path")
    p.add_argument("--distance-m", type=float, metavar="D", help="reflector distance from the antennas, m")
    p.add_argument("--out", metavar="DIR", default=DEFAULT_FOLDER,
                   help=f"folder of calibration files (default {DEFAULT_FOLDER})")
    p.add_argument("--frames", type=int, default=4, metavar="N", help="captures averaged (default 4)")
    p.add_argument("--leakage", choices=("store", "skip"), default=None,
                   help="store the static TX->RX leakage profile for subtraction, or not (default: skip for "
                        "loopback -- a cable's path is not there in operation; store for reflector)")
    p.set_defaults(func=run)
    return p


def _command(args: argparse.Namespace) -> str:
    words = ["sdr-isac", "calibrate", "--config", str(args.config), "--method", args.method]
    if args.distance_m is not None:
        words += ["--distance-m", f"{args.distance_m:g}"]
    return " ".join(shlex.quote(w) for w in words)


def run(args: argparse.Namespace) -> int:
    """Run ``sdr-isac calibrate``; returns the exit status (0).

    Raises
    ------
    InputError
        ``--frames`` < 1, ``--distance-m`` missing for ``reflector`` or given for ``loopback``.
    RadioError
        The radio cannot transmit.
    SensingError
        No usable calibration path (see :func:`~sdr_isac.sensing.calibration.measure_loopback`).
    """
    if args.frames < 1:
        raise InputError(f"--frames = {args.frames}: allowed >= 1; average at least one capture")
    if args.method == "reflector" and args.distance_m is None:
        raise InputError("--method reflector needs --distance-m D: the reflector's distance from the antennas in m")
    if args.method == "loopback" and args.distance_m is not None:
        raise InputError(f"--distance-m = {args.distance_m} m with --method loopback: a loopback has no distance; "
                         "remove --distance-m or use --method reflector")
    cfg = config.load(args.config)
    if getattr(cfg.radio, "remove_leakage", False):
        raise InputError(f"{args.config}: radio.remove_leakage = true would subtract the path being calibrated "
                         "before it is measured: set remove_leakage = false to calibrate")
    with open_radio(cfg, calibration_dir=False) as radio:
        if radio.frame is None:
            raise InputError(f"{args.config}: no [frame] section: calibration transmits the frame; add one")
        if not radio.can_transmit:
            raise RadioError(f"node {radio.node_id!r} cannot transmit: calibration needs the radio's own "
                             "transmission; calibrate a transmitting node (transmits = true)")
        frame = IsacFrame(radio.frame)
        radio.tx(frame.samples(), cyclic=True)
        length = radio.capture_length(frame.num_samples)
        captures = [radio.rx(length) for _ in range(args.frames)]
        key = key_of(radio)
    capture = average_frames(captures, frame)
    if args.method == "loopback":
        measured = measure_loopback(capture, frame)
    else:
        measured = measure_reflector(capture, args.distance_m, frame)
    store_leakage = (args.leakage or ("skip" if args.method == "loopback" else "store")) == "store"
    corr = measured.correction(leakage=store_leakage)
    cal = Calibration(key, corr, args.method, args.distance_m, math.sqrt(measured.delay_crb_samples2),
                      tuple(float(v) for v in np.sqrt(measured.phase_crb_rad2)), command=_command(args),
                      quality={"snr_re_db": measured.snr_re_db.tolist(), "frames": args.frames,
                               "doppler_hz": measured.path.doppler_hz})
    cal = save_calibration(cal, args.out)
    fs = key.sample_rate_hz
    print(f"wrote {cal.path} (id {cal.id}, sha256 {cal.sha256[:16]}...)")
    print(f"device {key.device_serial} ({key.radio_kind}), {fs:g} Hz, LO {key.center_freq_hz:g} Hz, "
          f"rx channels {list(key.rx_channels)}")
    print(f"system delay {corr.delay_samples:.4f} samples = {corr.integer_delay_samples} "
          f"{corr.fractional_delay_samples:+.4f} (CRB std {cal.delay_std_samples:.2g} samples), "
          f"range offset {corr.delay_samples / fs * SPEED_OF_LIGHT_MPS / 2:.3f} m")
    for c, g in enumerate(corr.channel_gains):
        phase_deg = math.degrees(math.atan2(g.imag, g.real))
        print(f"channel {c}: gain {20 * math.log10(abs(g)):+.3f} dB, phase {phase_deg:+.3f} deg"
              f" (CRB std {math.degrees(cal.phase_std_rad[c]):.2g} deg), SNR/RE {measured.snr_re_db[c]:.1f} dB")
    print(f"leakage paths {corr.leakage_delays_samples.size}")
    print(f"use it: open_radio(config, calibration_dir={str(args.out)!r}) or {ENV_FOLDER}={args.out}")
    return 0
