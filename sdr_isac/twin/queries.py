"""What the twin answers beyond windows and histories: occupancy maps, traffic per lane segment, exports.

- :func:`occupancy` / :func:`heatmap`: a 2-D histogram of track states (or estimates) over a grid of
  square cells -> a PNG (matplotlib, Agg, written atomically);
- :func:`traffic`: per lane segment (a polyline with a width, or a rectangle), the distinct tracks
  that were in it and their mean horizontal speed: the closed-loop input a traffic controller reads
  (article §V-3, "large-scale sensing assisted digital twin construction ... to control the traffic
  flow");
- :func:`export_csv`, :func:`export_geojson`: track states as a table, tracks as GeoJSON lines.

Positions are the scene's local frame in metres (x, y, z), as every record holds them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError
from sdr_isac.recording._atomic import write_file, write_text
from sdr_isac.twin.store import TrackPoints, TwinStore

__all__ = ["OccupancyMap", "LaneSegment", "LaneTraffic", "occupancy", "heatmap", "write_heatmap_png", "load_lanes",
           "traffic", "export_csv", "export_geojson", "MAX_CELLS"]

#: most cells an occupancy grid may have (a larger area needs a larger cell)
MAX_CELLS = 4_000_000
_SOURCES = ("tracks", "estimates")


@dataclass(frozen=True)
class OccupancyMap:
    """How many positions fell in each cell of a grid.

    Attributes
    ----------
    counts : ndarray, shape (NX, NY), int64
        ``counts[i, j]``: positions with ``x_edges_m[i] <= x < x_edges_m[i + 1]`` and the same in y
        (the last cell of each axis includes its upper edge).
    x_edges_m, y_edges_m : ndarray, shape (NX + 1,), (NY + 1,), float64
        Cell edges, m.
    cell_m : float
        Cell side, m.
    source : str
        ``tracks`` (track states) or ``estimates``.
    """

    counts: NDArray[np.int64]
    x_edges_m: NDArray[np.float64]
    y_edges_m: NDArray[np.float64]
    cell_m: float
    source: str


def _positive(name: str, value: Any, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not (
            math.isfinite(value) and value > 0):
        raise InputError(f"{name} = {value!r} {unit}: allowed a finite number > 0 {unit}")
    return float(value)


def _positions(store: TwinStore, source: str, since_s: float | None, until_s: float | None,
               measured_only: bool = False) -> NDArray[np.float64]:
    if source not in _SOURCES:
        raise InputError(f"source = {source!r}: allowed 'tracks' or 'estimates'")
    if source == "tracks":
        pts = store.track_points(since_s, until_s)
        return (pts.states[_measured(pts)] if measured_only else pts.states)[:, :2]
    return store.estimate_positions(since_s, until_s)[:, :2]


def _measured(points: TrackPoints) -> NDArray[np.bool_]:
    """The states a measurement updated (predicted ones and those not known are left out)."""
    return np.array([m is True for m in points.measured], dtype=bool).reshape(len(points))


def occupancy(store: TwinStore, cell_m: float = 1.0, source: str = "tracks", since_s: float | None = None,
              until_s: float | None = None, area_m: Sequence[float] | None = None,
              measured_only: bool = False) -> OccupancyMap:
    """Count the positions of a window in square cells of ``cell_m`` metres.

    Parameters
    ----------
    store : TwinStore
    cell_m : float
        Cell side, m, > 0.
    source : str
        ``tracks`` (every stored track state) or ``estimates`` (every target estimate).
    since_s, until_s : float, optional
        The window, s (None: no limit).
    area_m : sequence of 4 floats, optional
        ``(x_min, y_min, x_max, y_max)``, m; None: the extent of the positions.  Positions outside
        are not counted.
    measured_only : bool
        With ``tracks``: count only the states a measurement updated, not those a track coasted through
        on predictions (nor states whose origin is not known): what was sensed, not what was guessed.

    Raises
    ------
    InputError
        A bad cell size, area or source; no positions and no area; more than :data:`MAX_CELLS` cells.
    """
    cell = _positive("cell_m", cell_m, "m")
    if measured_only and source != "tracks":
        raise InputError(f"measured_only with source = {source!r}: allowed only with source 'tracks' (an estimate "
                         "is always a measurement); drop measured_only, or count the tracks")
    xy = _positions(store, source, since_s, until_s, measured_only)
    if area_m is None:
        if xy.shape[0] == 0:
            raise InputError(f"no {source} in the window (since {since_s}, until {until_s}) of {store.name}: "
                             "widen the window, or give the area")
        lo, hi = xy.min(axis=0), xy.max(axis=0)
    else:
        a = np.asarray(area_m, dtype=np.float64).reshape(-1)
        if a.shape != (4,) or not np.all(np.isfinite(a)) or not (a[0] < a[2] and a[1] < a[3]):
            raise InputError(f"area_m = {list(area_m)!r} m: allowed (x_min, y_min, x_max, y_max) finite with "
                             "x_min < x_max and y_min < y_max")
        lo, hi = a[:2], a[2:]
    with np.errstate(over="ignore", invalid="ignore"):
        cells = np.ceil((hi - lo) / cell)
    if not np.all(np.isfinite(cells)) or float(max(cells[0], 1.0)) * float(max(cells[1], 1.0)) > MAX_CELLS:
        raise InputError(f"cell_m = {cell:g} m over the area {lo.tolist()} ... {hi.tolist()} m makes {cells[0]:g} x "
                         f"{cells[1]:g} cells: allowed at most {MAX_CELLS}; give a larger cell_m or a smaller area")
    num = np.maximum(cells.astype(np.int64), 1)
    x_edges = lo[0] + cell * np.arange(num[0] + 1)
    y_edges = lo[1] + cell * np.arange(num[1] + 1)
    # lo + cell * n can round just below hi: the outermost positions would fall outside the last bin
    x_edges[-1] = max(x_edges[-1], hi[0])
    y_edges[-1] = max(y_edges[-1], hi[1])
    counts, _, _ = np.histogram2d(xy[:, 0], xy[:, 1], bins=(x_edges, y_edges))
    return OccupancyMap(counts.astype(np.int64), x_edges, y_edges, cell, source)


def write_heatmap_png(occ: OccupancyMap, out: str | Path, title: str = "") -> Path:
    """Draw ``occ`` (counts per cell, log colour scale) to the PNG ``out``, atomically; returns its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    counts = np.ma.masked_equal(occ.counts.T, 0)
    norm = LogNorm(vmin=1, vmax=max(int(occ.counts.max()), 2))
    mesh = ax.pcolormesh(occ.x_edges_m, occ.y_edges_m, counts, norm=norm, cmap="viridis", shading="flat")
    fig.colorbar(mesh, ax=ax, label=f"{occ.source} positions per {occ.cell_m:g} m cell")
    ax.set_xlabel("x (m, scene frame)")
    ax.set_ylabel("y (m, scene frame)")
    ax.set_aspect("equal")
    ax.set_title(title or f"occupancy: {int(occ.counts.sum())} {occ.source} positions")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    path = Path(out)
    write_file(path, buf.getvalue())
    return path


def heatmap(store: TwinStore, out: str | Path, cell_m: float = 1.0, source: str = "tracks",
            since_s: float | None = None, until_s: float | None = None,
            area_m: Sequence[float] | None = None, measured_only: bool = False) -> OccupancyMap:
    """:func:`occupancy` drawn to the PNG ``out`` (atomically); returns the map."""
    occ = occupancy(store, cell_m, source, since_s, until_s, area_m, measured_only)
    write_heatmap_png(occ, out)
    return occ


# ---- lanes ----------------------------------------------------------------
@dataclass(frozen=True)
class LaneSegment:
    """A lane segment: a polyline (its centre line) with a width, or an axis-aligned rectangle.

    Parameters
    ----------
    name : str
    polyline_m : array_like, shape (K, 2), K >= 2, optional
        Centre line vertices (x, y), m.
    width_m : float
        Lane width, m (> 0; with ``polyline_m``): a point is in the lane within ``width_m / 2`` of the line.
    rect_m : sequence of 4 floats, optional
        ``(x_min, y_min, x_max, y_max)``, m, in place of a polyline.
    """

    name: str
    polyline_m: NDArray[np.float64] | None = None
    width_m: float = 3.5
    rect_m: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InputError(f"lane name = {self.name!r}: allowed a non-empty string")
        if (self.polyline_m is None) == (self.rect_m is None):
            raise InputError(f"lane {self.name!r}: give polyline_m (with width_m) or rect_m, one of the two")
        if self.polyline_m is not None:
            line = _array(f"lane {self.name!r} polyline_m", self.polyline_m)
            if line.ndim != 2 or line.shape[1] != 2 or line.shape[0] < 2:
                raise InputError(f"lane {self.name!r} polyline_m has shape {line.shape}: allowed (K, 2) with K >= 2 "
                                 "points (x, y) in m")
            line.flags.writeable = False
            object.__setattr__(self, "polyline_m", line)
            object.__setattr__(self, "width_m", _positive(f"lane {self.name!r} width_m", self.width_m, "m"))
        if self.rect_m is not None:
            r = _array(f"lane {self.name!r} rect_m", self.rect_m).reshape(-1)
            if r.shape != (4,) or not (r[0] < r[2] and r[1] < r[3]):
                raise InputError(f"lane {self.name!r} rect_m = {list(np.asarray(self.rect_m).reshape(-1))}: allowed "
                                 "(x_min, y_min, x_max, y_max) in m with x_min < x_max and y_min < y_max")
            object.__setattr__(self, "rect_m", tuple(float(v) for v in r))

    def contains(self, xy_m: ArrayLike) -> NDArray[np.bool_]:
        """Which points lie in the segment; ``xy_m`` shape (N, 2) m -> shape (N,) bool."""
        p = np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
        if self.rect_m is not None:
            x0, y0, x1, y1 = self.rect_m
            return (p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)
        line = np.asarray(self.polyline_m)
        a, b = line[:-1], line[1:]                                    # (S, 2) segment ends
        d = b - a
        length2 = np.einsum("sk,sk->s", d, d)
        rel = p[:, None, :] - a[None, :, :]                           # (N, S, 2)
        t = np.clip(np.einsum("nsk,sk->ns", rel, d) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
        dist = np.linalg.norm(rel - t[..., None] * d[None, :, :], axis=2)
        return np.asarray(dist.min(axis=1) <= self.width_m / 2)


def _array(name: str, value: Any) -> NDArray[np.float64]:
    try:
        a = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} = {value!r}: allowed numbers in m") from err
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} = {value!r}: allowed finite numbers in m")
    return a


def load_lanes(path: str | Path) -> list[LaneSegment]:
    """Lane segments from a TOML (``[[lane]]`` tables) or JSON (``{"lane": [...]}``) file.

    Each lane has ``name`` and either ``polyline_m = [[x, y], ...]`` with ``width_m``, or
    ``rect_m = [x_min, y_min, x_max, y_max]``.

    Raises
    ------
    InputError
        The file cannot be read or parsed, a key is unknown, a lane is malformed or names repeat;
        the message names the file and the lane.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data: Mapping[str, Any] = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, ValueError, tomllib.TOMLDecodeError) as err:
        raise InputError(f"lanes file {p}: cannot be read ({err}): give a TOML file with [[lane]] tables") from err
    if not isinstance(data, Mapping) or set(data) != {"lane"} or not isinstance(data["lane"], list):
        found = f"keys found: {sorted(map(str, data))!r}" if isinstance(data, Mapping) else \
            f"found a {type(data).__name__}"
        raise InputError(f"lanes file {p}: allowed only [[lane]] tables ({found})")
    lanes: list[LaneSegment] = []
    for i, entry in enumerate(data["lane"]):
        if not isinstance(entry, Mapping):
            raise InputError(f"lanes file {p}: lane {i} is not a table")
        unknown = set(entry) - {"name", "polyline_m", "width_m", "rect_m"}
        if unknown:
            raise InputError(f"lanes file {p}: lane {i} has unknown keys {sorted(unknown)}: allowed name, "
                             "polyline_m, width_m, rect_m")
        try:
            lanes.append(LaneSegment(**entry))
        except InputError as err:
            raise InputError(f"lanes file {p}: lane {i}: {err}") from err
    names = [lane.name for lane in lanes]
    if len(set(names)) != len(names) or not lanes:
        raise InputError(f"lanes file {p}: lane names {names!r}: allowed one or more lanes with distinct names")
    return lanes


@dataclass(frozen=True)
class LaneTraffic:
    """Traffic in one lane segment over a window.

    Attributes
    ----------
    name : str
    num_tracks : int
        Distinct tracks with at least one state in the segment.
    num_states : int
        Track states in the segment.
    mean_speed_mps : float
        Mean over those tracks of each track's mean horizontal speed ``hypot(v_x, v_y)`` in the
        segment, m/s (each vehicle counts once); NaN when no track was there.
    track_ids : tuple of str
    """

    name: str
    num_tracks: int
    num_states: int
    mean_speed_mps: float
    track_ids: tuple[str, ...]


def lane_traffic(points: TrackPoints, lanes: Sequence[LaneSegment], measured_only: bool = False) -> list[LaneTraffic]:
    """:class:`LaneTraffic` of each lane from track states (see :func:`traffic`)."""
    if measured_only:
        keep = _measured(points)
        points = TrackPoints(points.track_id[keep], points.t_s[keep], points.states[keep], points.status[keep],
                             points.station[keep], points.measured[keep])
    xy = points.states[:, :2]
    speed = np.hypot(points.states[:, 3], points.states[:, 4])
    out = []
    for lane in lanes:
        inside = lane.contains(xy)
        ids, inverse = np.unique(points.track_id[inside].astype(str), return_inverse=True)
        if ids.size:
            per_track = np.bincount(inverse, weights=speed[inside]) / np.bincount(inverse)
            mean = float(per_track.mean())
        else:
            mean = math.nan
        out.append(LaneTraffic(lane.name, int(ids.size), int(inside.sum()), mean, tuple(str(i) for i in ids)))
    return out


def traffic(store: TwinStore, lanes: Sequence[LaneSegment], since_s: float | None = None,
            until_s: float | None = None, measured_only: bool = False) -> list[LaneTraffic]:
    """Distinct tracks and their mean speed in each lane segment over a window (one entry per lane, in order);
    ``measured_only``: from the states a measurement updated only (see :func:`occupancy`)."""
    return lane_traffic(store.track_points(since_s, until_s), lanes, measured_only)


# ---- exports --------------------------------------------------------------
_CSV_COLUMNS = ("track_id", "t_s", "x_m", "y_m", "z_m", "vx_mps", "vy_mps", "vz_mps", "status", "station",
                "measured")


def export_csv(store: TwinStore, out: str | Path, since_s: float | None = None, until_s: float | None = None) -> int:
    """Write the track states of a window to the CSV ``out`` (atomically); returns the number of rows.

    Columns: ``track_id, t_s, x_m, y_m, z_m, vx_mps, vy_mps, vz_mps, status, station, measured`` (scene frame,
    m, m/s; floats written exactly, ``repr``; ``measured`` 1 where a measurement updated the state, 0 where it
    was predicted, empty where not known).
    """
    pts = store.track_points(since_s, until_s)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_CSV_COLUMNS)
    for tid, t, s, status, station, flag in zip(pts.track_id, pts.t_s.tolist(), pts.states.tolist(), pts.status,
                                                pts.station, pts.measured):
        w.writerow([tid, repr(t), *map(repr, s), status, station, "" if flag is None else int(flag)])
    write_text(Path(out), buf.getvalue())
    return len(pts)


#: what the GeoJSON says of its coordinates (RFC 7946 readers otherwise assume longitude, latitude)
FRAME_NOTE = ("coordinates are x, y, z in metres in the scene's local frame (the frame of the node positions), "
              "not longitude/latitude: place the scene's origin on a map to georeference them")


def export_geojson(store: TwinStore, out: str | Path, since_s: float | None = None,
                   until_s: float | None = None) -> int:
    """Write the tracks of a window as GeoJSON (atomically): one LineString (a Point for one state) per track.

    Each feature's properties: ``track_id``, ``status``, ``stations`` (owners in order), ``t_s`` (the time
    of each vertex), ``measured`` (of each vertex: true, false (predicted) or null (not known)),
    ``mean_speed_mps``, ``frame``.  The coordinates are in the scene's local metres,
    stated in the collection's ``crs`` note and each feature's ``frame``.  Returns the number of features.
    """
    pts = store.track_points(since_s, until_s)
    features = []
    ids = pts.track_id.astype(str)
    for tid in dict.fromkeys(ids.tolist()):
        sel = ids == tid
        xyz = pts.states[sel, :3].tolist()
        stations = list(dict.fromkeys(pts.station[sel].tolist()))
        speed = np.hypot(pts.states[sel, 3], pts.states[sel, 4])
        geometry = {"type": "Point", "coordinates": xyz[0]} if len(xyz) == 1 else \
            {"type": "LineString", "coordinates": xyz}
        features.append({"type": "Feature", "geometry": geometry, "properties": {
            "track_id": tid, "status": str(pts.status[sel][-1]), "stations": stations,
            "t_s": pts.t_s[sel].tolist(), "measured": pts.measured[sel].tolist(),
            "mean_speed_mps": float(speed.mean()), "frame": "scene local, m"}})
    doc = {"type": "FeatureCollection",
           "crs": {"type": "name", "properties": {"name": "sdr_isac:scene-local-metres", "note": FRAME_NOTE}},
           "features": features}
    write_text(Path(out), json.dumps(doc, allow_nan=False))
    return len(features)
