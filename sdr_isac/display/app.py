"""Command-line entry of the display: ``python -m sdr_isac.display.app --replay REC [--snapshot OUT.png]``.

With ``--snapshot`` the first capture is sensed, drawn offscreen and saved,
and the program exits; without it the window runs until closed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sdr_isac import config
from sdr_isac.config import SensingConfig
from sdr_isac.errors import SdrIsacError
from sdr_isac.radio.replay import ReplayRadio

__all__ = ["add_arguments", "build_parser", "main", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the display's options to a parser (``sdr-isac display`` uses this; Qt is not imported)."""
    parser.add_argument("--replay", type=Path, required=True, metavar="PATH",
                        help="a .sigmf-meta recording, replayed in a loop")
    parser.add_argument("--snapshot", type=Path, metavar="OUT.png",
                        help="draw the first capture offscreen, save it as PNG and exit")
    parser.add_argument("--size", default="1000x700", metavar="WxH", help="window size in pixels (1000x700)")
    parser.add_argument("--pfa", type=float, default=SensingConfig().pfa, help="CFAR false-alarm probability")
    parser.add_argument("--interval", type=float, default=0.0, metavar="S",
                        help="least time between replayed captures, s (0: as fast as sensing goes)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdr-isac display", description="Live range-Doppler display.")
    add_arguments(parser)
    return parser


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise config.ConfigError(f"--size {text!r}: give WIDTHxHEIGHT in pixels, e.g. 1000x700",
                                 key="size") from err
    if not (100 <= width <= 10000 and 100 <= height <= 10000):
        raise config.ConfigError(f"--size {text!r}: width and height must lie in 100 ... 10000 pixels", key="size")
    return width, height


def _snapshot(args: argparse.Namespace, cfg: SensingConfig) -> None:
    from sdr_isac.display.sources import frame_of
    from sdr_isac.display.window import snapshot

    replay = ReplayRadio(config.RadioConfig(kind="replay", uri=str(args.replay)))
    try:
        frame = frame_of(replay.next_capture(), cfg)
    finally:
        replay.close()
    snapshot(frame.result, frame.truth_paths, args.snapshot, _size(args.size), node_id=frame.node_id,
             seq=frame.seq, sensing_config=cfg)
    print(f"wrote {args.snapshot}: node {frame.node_id} seq {frame.seq}, {len(frame.result.detections)} detections")


def _interactive(args: argparse.Namespace, cfg: SensingConfig) -> int:
    from sdr_isac.display.sources import ReplaySource
    from sdr_isac.display.window import RangeDopplerWindow, ensure_app

    app = ensure_app()
    with ReplaySource(args.replay, cfg, args.interval) as source:
        window = RangeDopplerWindow(cfg, source)
        window.resize(*_size(args.size))
        window.show()
        return int(app.exec())


def run(args: argparse.Namespace) -> int:
    """Run the display for parsed options; returns the exit status (0 ok, 2 on a configuration, recording or
    sensing error)."""
    try:
        cfg = SensingConfig(pfa=args.pfa)
        if args.snapshot is not None:
            _snapshot(args, cfg)
            return 0
        return _interactive(args, cfg)
    except SdrIsacError as err:
        print(f"sdr-isac display: {err}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sdr_isac.display.app``: parse ``argv`` and :func:`run`."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
