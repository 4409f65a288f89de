"""``sdr-isac twin``: query the digital twin a host wrote.

``add_parser(subparsers)`` adds the ``twin`` command to ``sdr-isac``'s sub-commands; ``run(args)`` runs
it.  Sub-commands: ``tracks``, ``history``, ``heatmap``, ``traffic``, ``export``, ``prune``.  Errors of
the sdr_isac family propagate to ``sdr-isac``'s ``main`` (one line, exit status 2).  Until ``cli.py``
wires it, ``python -m sdr_isac.twin.cli --db FILE tracks --since 0`` runs the same command.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdr_isac.errors import InputError, exit_status, joined_list_values
from sdr_isac.twin.connect import is_dsn, open_twin
from sdr_isac.twin.errors import TwinError
from sdr_isac.twin.queries import export_csv, export_geojson, heatmap, load_lanes, traffic
from sdr_isac.twin.store import TwinStore

__all__ = ["add_parser", "run", "main"]


def _area(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"--area {text!r}: allowed X_MIN,Y_MIN,X_MAX,Y_MAX in m")
    return values[0], values[1], values[2], values[3]


def _window(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--since", type=float, required=required, metavar="T",
                   help="from record time T, s" + ("" if required else " (default: the beginning)"))
    p.add_argument("--until", type=float, metavar="T", help="to record time T, s (default: the end)")


def add_parser(subparsers: Any) -> None:
    """Add ``twin`` and its sub-commands to ``sdr-isac``'s sub-parsers (``parser.add_subparsers()``)."""
    p = subparsers.add_parser(
        "twin", help="query the digital twin (tracks, history, heat map, lane traffic, export, prune)",
        description="Query the digital twin a host writes ([twin] db): a SQLite file or a PostgreSQL DSN. Times are "
                    "record (capture) times in s; positions are the scene's local frame in m.")
    p.add_argument("--db", required=True, metavar="FILE|DSN",
                   help="the twin: a SQLite file, or a PostgreSQL DSN (postgresql://... or 'host=... dbname=...')")
    sub = p.add_subparsers(dest="twin_command", metavar="QUERY", required=True)

    q = sub.add_parser("tracks", help="list the tracks with states in a time window",
                       description="One line per track with states in [--since, --until]: id, status, owning "
                                   "stations, states, first and last time.")
    _window(q, required=True)
    q.add_argument("--json", action="store_true", help="print JSON lines instead of a table")

    q = sub.add_parser("history", help="print one track's whole history",
                       description="Every stored state of TRACK_ID (time, position, velocity, owning station) and its "
                                   "handovers.")
    q.add_argument("track_id", metavar="TRACK_ID")

    q = sub.add_parser("heatmap", help="occupancy heat map of an area -> PNG",
                       description="Count track states (or estimates) per square cell and draw the counts to a PNG.")
    q.add_argument("--out", required=True, metavar="PNG", help="the PNG to write (atomically)")
    q.add_argument("--cell-m", type=float, default=1.0, metavar="X", help="cell side, m (default 1)")
    q.add_argument("--source", choices=("tracks", "estimates"), default="tracks",
                   help="count track states (default) or target estimates")
    q.add_argument("--area", type=_area, metavar="X0,Y0,X1,Y1",
                   help="the area, m (default: the positions' extent); write --area=-50,-50,50,50 when X0 is negative")
    q.add_argument("--measured-only", action="store_true",
                   help="count only track states a measurement updated (not those a coasting track predicted)")
    _window(q)

    q = sub.add_parser("traffic", help="distinct tracks and mean speed per lane segment",
                       description="For each lane segment of FILE ([[lane]] tables with name and polyline_m + width_m, "
                                   "or rect_m), the distinct tracks in it and their mean horizontal speed.")
    q.add_argument("--lanes", required=True, metavar="FILE", help="TOML (or .json) lane segments")
    q.add_argument("--measured-only", action="store_true",
                   help="only track states a measurement updated (not those a coasting track predicted)")
    _window(q)

    q = sub.add_parser("export", help="export the track states as CSV or the tracks as GeoJSON",
                       description="Write track states to a CSV table, or tracks to GeoJSON lines (coordinates in the "
                                   "scene's local metres, as the file's crs note says).")
    group = q.add_mutually_exclusive_group(required=True)
    group.add_argument("--csv", metavar="F", help="CSV file to write")
    group.add_argument("--geojson", metavar="F", help="GeoJSON file to write")
    _window(q)

    q = sub.add_parser("prune", help="delete rows older than an age",
                       description="Delete every row with record time older than S seconds before the newest record "
                                   "(or before --now).")
    q.add_argument("--older-than", type=float, required=True, metavar="S", help="age limit, s")
    q.add_argument("--now", type=float, metavar="T", help="the present on the records' clock (default: newest record)")
    p.set_defaults(func=run)


def _fmt(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else "-"


def _tracks(store: TwinStore, args: argparse.Namespace) -> int:
    rows = store.track_summaries(args.since, args.until)
    if args.json:
        import json

        for r in rows:
            print(json.dumps({"track_id": r.track_id, "status": r.status, "stations": list(r.stations),
                              "num_states": r.num_states, "first_t_s": r.first_t_s, "last_t_s": r.last_t_s}))
        return 0
    print(f"{'track':<16} {'status':<10} {'states':>7} {'first_s':>12} {'last_s':>12}  stations")
    for r in rows:
        print(f"{r.track_id:<16} {r.status:<10} {r.num_states:>7} {_fmt(r.first_t_s):>12} {_fmt(r.last_t_s):>12}  "
              f"{' -> '.join(r.stations) or '-'}")
    print(f"{len(rows)} tracks")
    return 0


def _history(store: TwinStore, args: argparse.Namespace) -> int:
    from sdr_isac.twin._rows import stations_at

    track = store.track_history(args.track_id)
    print(f"track {track.track_id}: {track.status}, {track.num_states} states, stations "
          f"{' -> '.join(track.stations) or '-'}")
    print(f"{'t_s':>12} {'x_m':>10} {'y_m':>10} {'z_m':>8} {'vx_mps':>8} {'vy_mps':>8} {'vz_mps':>8}  station")
    for t, s, st in zip(track.t_s.tolist(), track.states.tolist(), stations_at(track)):
        print(f"{t:>12.3f} {s[0]:>10.2f} {s[1]:>10.2f} {s[2]:>8.2f} {s[3]:>8.2f} {s[4]:>8.2f} {s[5]:>8.2f}  {st}")
    for h in track.handovers:
        print(f"handover at {h.t_s:.3f} s: {h.from_station} -> {h.to_station} ({h.reason})")
    return 0


def _heatmap(store: TwinStore, args: argparse.Namespace) -> int:
    occ = heatmap(store, args.out, args.cell_m, args.source, args.since, args.until, args.area, args.measured_only)
    nx, ny = occ.counts.shape
    print(f"{int(occ.counts.sum())} {args.source.removesuffix('s')} positions in {nx} x {ny} cells of {occ.cell_m:g} m "
          f"(x {occ.x_edges_m[0]:g} ... {occ.x_edges_m[-1]:g} m, y {occ.y_edges_m[0]:g} ... {occ.y_edges_m[-1]:g} m)")
    print(f"wrote {args.out}")
    return 0


def _traffic(store: TwinStore, args: argparse.Namespace) -> int:
    result = traffic(store, load_lanes(args.lanes), args.since, args.until, args.measured_only)
    print(f"{'lane':<20} {'tracks':>7} {'states':>8} {'mean_speed_mps':>15}")
    for r in result:
        print(f"{r.name:<20} {r.num_tracks:>7} {r.num_states:>8} {_fmt(r.mean_speed_mps):>15}")
    return 0


def _export(store: TwinStore, args: argparse.Namespace) -> int:
    if args.csv:
        print(f"wrote {export_csv(store, args.csv, args.since, args.until)} track states to {args.csv}")
    else:
        print(f"wrote {export_geojson(store, args.geojson, args.since, args.until)} tracks to {args.geojson}")
    return 0


def _prune(store: TwinStore, args: argparse.Namespace) -> int:
    for flag, value in (("--older-than", args.older_than), ("--now", args.now)):   # worded in the CLI's terms
        if value is not None and not (math.isfinite(value) and (flag == "--now" or value >= 0)):
            raise InputError(f"{flag} {value} s: allowed a finite " + ("age >= 0 s" if flag == "--older-than"
                                                                          else "time, s"))
    deleted = store.prune(args.older_than, args.now)
    print("deleted " + ", ".join(f"{n} {t}" for t, n in deleted.items()))
    return 0


_COMMANDS = {"tracks": _tracks, "history": _history, "heatmap": _heatmap, "traffic": _traffic, "export": _export,
             "prune": _prune}


def run(args: argparse.Namespace) -> int:
    """Run ``sdr-isac twin`` with parsed ``args``; returns the exit status.

    Raises
    ------
    SdrIsacError
        The database cannot be opened or read (TwinError), or an argument is out of range (InputError).
    """
    read_only = args.twin_command != "prune"
    if not read_only and not is_dsn(args.db) and args.db != ":memory:" and not Path(args.db).is_file():
        # prune opens for writing, which would make a new, empty twin at a mistyped path and report success
        raise TwinError(f"{args.db}: no such twin file: give the file a host wrote (twin.db); prune deletes from an "
                        "existing twin only")
    with open_twin(args.db, read_only=read_only) as store:
        return _COMMANDS[args.twin_command](store, args)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sdr_isac.twin.cli``: the ``twin`` command alone, reported as ``sdr-isac`` reports errors."""
    parser = argparse.ArgumentParser(prog="sdr-isac")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(joined_list_values(sys.argv[1:] if argv is None else list(argv)))
    return exit_status(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
