"""Command-line entry of the display.

``python -m sdr_isac.display.app --replay REC [--config FILE] [--snapshot OUT.png]`` replays a recording, sensed
with the ``[sensing]`` of FILE (default settings without one) exactly as ``sdr-isac process --config FILE`` senses
it, and shows FILE's scene nodes and, with ``--estimates FUSED.json``, a host's fused estimates and, with
``--tracks TRACKS.json``, its tracks (ids, history tails, handovers); a ``.sigmf-collection`` takes ``--node ID``;
``python -m sdr_isac.display.app --host tcp://127.0.0.1:5556 [--snapshot OUT.png --timeout S]`` shows what a
fusion host publishes (its ``stream.publish_endpoint``).  With ``--snapshot`` the first frame (sensed from
the first capture, or the first map the host publishes, waiting at most ``--timeout`` seconds) is drawn
offscreen and saved, and the program exits; without it the window runs until closed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdr_isac import config
from sdr_isac.config import SensingConfig
from sdr_isac.errors import SdrIsacError, WireFormatError

if TYPE_CHECKING:
    from sdr_isac.display.sources import HostSource, NodePlace, ReplaySource
    from sdr_isac.stream import wire

__all__ = ["add_arguments", "build_parser", "fused_estimates", "main", "run", "sensing_settings"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the display's options to a parser (``sdr-isac display`` uses this; Qt is not imported)."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--replay", type=Path, metavar="PATH", help="a .sigmf-meta recording, replayed in a loop")
    where.add_argument("--host", metavar="URL",
                       help="a fusion host's stream.publish_endpoint, e.g. tcp://127.0.0.1:5556 (live)")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="with --replay: the configuration whose [sensing] senses the captures (as sdr-isac "
                             "process --config FILE does; the host's own configuration shows what the host "
                             "detected) and whose [scene] places the nodes; with --host: a configuration whose "
                             "[stream] gives the CURVE keys of a CURVE host (curve_client_secret, "
                             "curve_client_public, curve_server_public; the client key must be in the host's "
                             "stream.curve_subscribers_allowed)")
    parser.add_argument("--estimates", type=Path, metavar="FUSED.json",
                        help="with --replay: a host's fused.json (sdr-isac demo, sdr-isac host --out): draw the "
                             "fused estimates of the set that holds the replayed frame")
    parser.add_argument("--tracks", type=Path, metavar="TRACKS.json",
                        help="with --replay: a host's (or the core's) tracks.json: draw its tracks with ids, "
                             "history tails and handovers (a live host publishes its own tracks/)")
    parser.add_argument("--node", metavar="ID",
                        help="with --replay of a .sigmf-collection: the node whose recording to replay "
                             "(needed when the collection has several members)")
    parser.add_argument("--snapshot", type=Path, metavar="OUT.png",
                        help="draw the first frame offscreen, save it as PNG and exit")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S",
                        help="with --host --snapshot: wait at most S seconds for the first frame (30)")
    parser.add_argument("--size", default="1400x700", metavar="WxH", help="window size in pixels (1400x700)")
    parser.add_argument("--pfa", type=float, default=None,
                        help="CFAR false-alarm probability (default: the configuration's, else "
                             f"{SensingConfig().pfa:g})")
    parser.add_argument("--interval", type=float, default=0.0, metavar="S",
                        help="least time between replayed captures, s (0: as fast as sensing goes)")
    parser.add_argument("--record-dir", type=Path, default=Path("sdr_isac_recordings"), metavar="DIR",
                        help="where the Record button writes (./sdr_isac_recordings): SigMF when replaying, "
                             "JSON lines of the received maps and detections when live")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdr-isac display",
                                     description="Live range-Doppler display and top view.")
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


def _timeout(value: float) -> float:
    if not (math.isfinite(value) and 0 < value <= 3600):
        raise config.ConfigError(f"--timeout {value} s: allowed 0 < S <= 3600 s; give the seconds to wait for "
                                 "the host's first frame", key="timeout")
    return value


def sensing_settings(args: argparse.Namespace) -> SensingConfig:
    """The settings the display senses (replay) or re-thresholds (live) with.

    Replay: the ``[sensing]`` of ``--config`` (as ``sdr-isac process --config`` uses it), else the defaults;
    live: the defaults, used only once a CFAR control moves or with ``--pfa`` (until then the host's own
    detections and settings, which come with what it publishes, are shown).  ``--pfa`` overrides P_fa.

    Raises
    ------
    ConfigError
        The configuration cannot be read, or ``--pfa`` is out of range.
    """
    path = getattr(args, "config", None)
    cfg = config.load(path).sensing if args.host is None and path is not None else SensingConfig()
    pfa = getattr(args, "pfa", None)
    return cfg if pfa is None else dataclasses.replace(cfg, pfa=pfa)


def _scene_places(args: argparse.Namespace) -> dict[str, NodePlace]:
    from sdr_isac.display.sources import scene_places

    path = getattr(args, "config", None)
    return scene_places(config.load(path)) if args.host is None and path is not None else {}


def fused_estimates(path: Path, node_id: str, seq: int) -> list[list[float]]:
    """The fused position estimates (m) in a host's ``fused.json`` of the set holding ``node_id``'s frame ``seq``
    (the newest set when none holds it).

    Raises
    ------
    ConfigError
        The file cannot be read or is not a host's fused summary.
    """
    return fused_estimates_of(path)(node_id, seq)


def fused_estimates_of(path: Path) -> Callable[[str, int], list[list[float]]]:
    """A host's ``fused.json`` read once: ``(node_id, seq) ->`` :func:`fused_estimates` (every set checked now).

    Raises
    ------
    ConfigError
        The file cannot be read or is not a host's fused summary.
    """
    def positions(chosen: dict[str, Any]) -> list[list[float]]:
        if "estimates" in chosen:
            return [[float(v) for v in e] for e in chosen["estimates"]]
        return [[float(v) for v in r["position_m"]] for r in chosen["targets"] if r.get("fused")]

    try:
        sets = json.loads(path.read_text())["per_set"]
        table = [(dict(s.get("nodes", {})), positions(s)) for s in sets]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise config.ConfigError(f"--estimates {path}: not a host's fused.json ({err}); give the fused.json that "
                                 "sdr-isac demo or sdr-isac host --out writes", key="estimates") from err

    def lookup(node_id: str, seq: int) -> list[list[float]]:
        chosen = next((est for nodes, est in table if nodes.get(node_id) == seq), table[-1][1] if table else None)
        return [] if chosen is None else chosen
    return lookup


def _source(args: argparse.Namespace, cfg: SensingConfig) -> ReplaySource | HostSource:
    from sdr_isac.display.sources import HostSource, ReplaySource

    if args.host is not None:
        stream = config.load(args.config).stream if getattr(args, "config", None) is not None else None
        source = HostSource(args.host, cfg, stream=stream)
        # without --pfa the display shows what the host detected, with the host's settings, until a control moves
        # (it re-thresholded every map with its own defaults, and showed other detections than the host fused)
        source.follow_host = getattr(args, "pfa", None) is None
        return source
    from sdr_isac.recording import resolve_member

    return ReplaySource(resolve_member(args.replay, getattr(args, "node", None)), cfg, args.interval,
                        places=_scene_places(args))


def _file_tracks(args: argparse.Namespace) -> wire.TrackSet | None:
    """The tracks of ``--tracks`` (a tracks.json, decoded by the wire's own decoder), or None."""
    from sdr_isac.display.tracks import load_tracks

    path = getattr(args, "tracks", None)
    if path is None:
        return None
    try:
        return load_tracks(path)
    except WireFormatError as err:
        raise config.ConfigError(f"--tracks {path}: {err}", key="tracks") from err


def _snapshot(args: argparse.Namespace, cfg: SensingConfig) -> None:
    from sdr_isac.display.window import snapshot

    size = _size(args.size)
    timeout_s = _timeout(args.timeout)
    tracks = _file_tracks(args)
    with _source(args, cfg) as source:
        frame = source.wait(timeout_s=timeout_s)
        if frame is not None and frame.power_db is None and args.host is not None:
            better = source.wait(timeout_s=min(timeout_s, 2.0))   # detections come just before their map
            frame = better or frame
        take_tracks = getattr(source, "take_tracks", None)
        if frame is not None and take_tracks is not None:     # a live host's newest tracks, if it tracks
            tracks = take_tracks()
            deadline = time.monotonic() + min(timeout_s, 0.5)    # tracks follow their set's estimates
            while tracks is None and time.monotonic() < deadline:
                time.sleep(0.02)
                tracks = take_tracks()
    if frame is None:
        if source.error is not None:
            raise source.error
        where = f"the host at {args.host}" if args.host is not None else f"{args.replay}"
        raise SdrIsacError(f"no frame from {where} within --timeout {timeout_s:g} s: check that the host runs "
                           "and publishes on that endpoint (stream.publish_endpoint), or wait longer")
    estimates = None
    if args.host is None and getattr(args, "estimates", None) is not None:
        estimates = fused_estimates(args.estimates, frame.node_id, frame.seq)
    snapshot(frame, args.snapshot, size, sensing_config=cfg, nodes=_scene_places(args), estimates_m=estimates,
             tracks=tracks)
    print(f"wrote {args.snapshot}: node {frame.node_id} seq {frame.seq}, {len(frame.detections)} detections"
          + (f", {len(estimates)} fused estimates" if estimates is not None else "")
          + (f", {len(tracks.tracks)} tracks" if tracks is not None else ""))


def _interactive(args: argparse.Namespace, cfg: SensingConfig) -> int:
    from sdr_isac.display.window import RangeDopplerWindow, ensure_app

    app = ensure_app()
    with _source(args, cfg) as source:
        window = RangeDopplerWindow(cfg, source, record_dir=args.record_dir)
        window.set_nodes(_scene_places(args))
        if args.host is None and getattr(args, "estimates", None) is not None:
            # the set holding each replayed frame, as --snapshot draws it (it showed the newest set throughout)
            source.estimates_for = fused_estimates_of(args.estimates)     # type: ignore[union-attr]
        tracks = _file_tracks(args)
        if tracks is not None:
            window.set_tracks(tracks)
        window.resize(*_size(args.size))
        window.show()
        status = int(app.exec())
        if window.record_button.isChecked():
            window.record_button.setChecked(False)
        return status


def run(args: argparse.Namespace) -> int:
    """Run the display for parsed options; returns the exit status (0 ok, 2 on a configuration, recording,
    sensing or connection error)."""
    try:
        for name in ("tracks", "node"):
            if args.host is not None and getattr(args, name, None) is not None:
                raise config.ConfigError(f"--{name} {getattr(args, name)} with --host {args.host}: allowed only "
                                         "with --replay (a live host publishes its own tracks); leave it out",
                                         key=name)
        if args.host is not None and getattr(args, "estimates", None) is not None:
            raise config.ConfigError(f"--estimates {args.estimates} with --host {args.host}: allowed only with "
                                     "--replay (a live host publishes its own estimates); leave --estimates out",
                                     key="estimates")
        cfg = sensing_settings(args)
        if args.snapshot is not None:
            _snapshot(args, cfg)
            return 0
        return _interactive(args, cfg)
    except SdrIsacError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sdr_isac.display.app``: parse ``argv`` and :func:`run`."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
