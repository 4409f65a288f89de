"""The twin's store: one interface (:class:`TwinStore`), two backends (SQLite, PostgreSQL), :func:`open_twin`.

What a host senses is stored structurally, one table per record, each indexed on time (and on node or
track id where it has one), so that a window of time or one target's history is an index range scan:

- ``detections``: one row per :class:`~sdr_isac.twin.NodeDetection`; indexes ``t_s``; ``node_id, t_s``.
- ``links``: one per :class:`LinkMeasurement` (alone, or one of an estimate's links: ``estimate_id``,
  ``link_index``); indexes ``t_s``; ``tx_id, t_s``; ``rx_id, t_s``; ``estimate_id``.
- ``estimates``: one per :class:`TargetEstimate`; index ``t_s``.
- ``tracks``: one per track: id, status, stations (JSON); key ``track_id``.
- ``track_states``: one per state of a :class:`Track`: time, x y z, vx vy vz, covariance, status, owning
  station and ``measured`` (1: updated with a measurement, 0: predicted, NULL: not known); key
  ``track_id, t_s``; index ``t_s``.
- ``handovers``: one per :class:`Handover` of a track; key ``track_id, t_s, from, to``; index ``t_s``.
- ``schema_version``: the one row: the schema's version (3; a version-1 twin, without ``measured``, and a
  version-2 twin, without ``estimates.cov_position_velocity_m2ps`` (the cross-covariance of an estimate's
  position and velocity), gain the columns, NULL in their old rows, when a writer of this version opens them;
  a reader of an older twin takes them as NULL).

Covariances are little-endian float64 bytes, row-major (3 x 3 or 6 x 6): exact, and read back with
``numpy.frombuffer``.  Writing a :class:`Track` again (a tracker republishes its growing history)
updates the states it already holds (an upsert on ``track_id, t_s``) instead of duplicating them.
Every write of one batch is one transaction with one bulk insert per table.
"""

from __future__ import annotations

import abc
import contextlib
import json
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sdr_isac.errors import InputError
from sdr_isac.fusion.records import Handover, LinkMeasurement, TargetEstimate, Track
from sdr_isac.twin import _rows
from sdr_isac.twin.errors import TwinError
from sdr_isac.twin.records import NodeDetection

__all__ = ["SCHEMA_VERSION", "TwinStore", "TrackPoints", "TrackSummary", "TABLES"]

#: version of the tables this code reads and writes (``schema_version``)
SCHEMA_VERSION = 3

#: what takes a twin of each older version to the next one (version 1 -> 2: track states say whether measured;
#: 2 -> 3: estimates carry the cross-covariance of position and velocity)
_MIGRATIONS = {1: ("ALTER TABLE track_states ADD COLUMN measured {int}",),
               2: ("ALTER TABLE estimates ADD COLUMN cov_position_velocity_m2ps {blob}",)}
#: the columns each migration adds: what a reader of an older twin opened read-only reads as NULL
_ADDED = {1: ("measured",), 2: ("cov_position_velocity_m2ps",)}

#: the tables of the twin, in the order a prune visits them
TABLES = ("detections", "links", "estimates", "track_states", "handovers", "tracks")

Record = NodeDetection | LinkMeasurement | TargetEstimate | Track

# {real}: a float64 column, {blob}: bytes, {serial}: an auto-numbered key, {int}: a 64-bit integer
_SCHEMA = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE detections (id {serial}, node_id TEXT NOT NULL, t_s {real} NOT NULL, range_m {real} NOT NULL,
       velocity_mps {real} NOT NULL, doppler_hz {real} NOT NULL, delay_s {real} NOT NULL, snr_db {real} NOT NULL,
       geometry TEXT NOT NULL, angle_rad {real}, range_var_m2 {real} NOT NULL, velocity_var_mps2 {real} NOT NULL,
       angle_var_rad2 {real}, map_snr_db {real} NOT NULL)""",
    "CREATE INDEX detections_t ON detections (t_s)",
    "CREATE INDEX detections_node_t ON detections (node_id, t_s)",
    """CREATE TABLE links (id {serial}, estimate_id {int}, link_index INTEGER, t_s {real} NOT NULL,
       tx {int} NOT NULL, rx {int} NOT NULL, tx_id TEXT NOT NULL, rx_id TEXT NOT NULL, range_m {real} NOT NULL,
       rate_mps {real} NOT NULL, var_range_m2 {real} NOT NULL, var_rate_mps2 {real} NOT NULL, snr_re {real},
       tx_x_m {real}, tx_y_m {real}, tx_z_m {real}, rx_x_m {real}, rx_y_m {real}, rx_z_m {real},
       cone_angle_rad {real}, var_cone_angle_rad2 {real}, axis_x {real}, axis_y {real}, axis_z {real})""",
    "CREATE INDEX links_t ON links (t_s)",
    "CREATE INDEX links_tx_t ON links (tx_id, t_s)",
    "CREATE INDEX links_rx_t ON links (rx_id, t_s)",
    "CREATE INDEX links_estimate ON links (estimate_id)",
    """CREATE TABLE estimates (id {int} PRIMARY KEY, t_s {real} NOT NULL, x_m {real} NOT NULL, y_m {real} NOT NULL,
       z_m {real} NOT NULL, cov_position_m2 {blob} NOT NULL, vx_mps {real}, vy_mps {real}, vz_mps {real},
       cov_velocity_mps2 {blob}, nodes TEXT NOT NULL, mode TEXT, bs_ue_case TEXT, single_m TEXT NOT NULL,
       cov_position_velocity_m2ps {blob})""",
    "CREATE INDEX estimates_t ON estimates (t_s)",
    "CREATE TABLE tracks (track_id TEXT PRIMARY KEY, status TEXT NOT NULL, stations TEXT NOT NULL)",
    """CREATE TABLE track_states (track_id TEXT NOT NULL, t_s {real} NOT NULL, x_m {real} NOT NULL,
       y_m {real} NOT NULL, z_m {real} NOT NULL, vx_mps {real} NOT NULL, vy_mps {real} NOT NULL,
       vz_mps {real} NOT NULL, covariance {blob} NOT NULL, status TEXT NOT NULL, station TEXT NOT NULL,
       measured {int}, PRIMARY KEY (track_id, t_s))""",
    "CREATE INDEX track_states_t ON track_states (t_s)",
    """CREATE TABLE handovers (track_id TEXT NOT NULL, t_s {real} NOT NULL, from_station TEXT NOT NULL,
       to_station TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (track_id, t_s, from_station, to_station))""",
    "CREATE INDEX handovers_t ON handovers (t_s)",
)


def _upsert(table: str, columns: Sequence[str], key: Sequence[str], source: str | None = None) -> str:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` of the other columns (SQLite >= 3.24 and PostgreSQL).

    ``source``: a ``SELECT`` giving the rows; None: ``VALUES`` with one placeholder per column.
    """
    rest = [c for c in columns if c not in key]
    action = ("DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in rest)) if rest else "DO NOTHING"
    rows = source or f"VALUES ({', '.join('?' * len(columns))})"
    return f"INSERT INTO {table} ({', '.join(columns)}) {rows} ON CONFLICT ({', '.join(key)}) {action}"


@dataclass(frozen=True)
class TrackPoints:
    """The track states of a window as arrays (for maps, lane counts and exports), ordered by track, then time.

    Attributes
    ----------
    track_id : ndarray, shape (N,), object (str)
    t_s : ndarray, shape (N,), float64
        Times, s.
    states : ndarray, shape (N, 6), float64
        x, y, z (m) and v_x, v_y, v_z (m/s) in the scene's frame.
    status, station : ndarray, shape (N,), object (str)
        The track's status when the state was written, and the station that owned it then.
    measured : ndarray, shape (N,), object
        True where a measurement updated the state, False where it was predicted (the track coasting), None
        where not known (a track without flags, a version-1 twin).
    """

    track_id: NDArray[np.object_]
    t_s: NDArray[np.float64]
    states: NDArray[np.float64]
    status: NDArray[np.object_]
    station: NDArray[np.object_]
    measured: NDArray[np.object_]

    def __len__(self) -> int:
        return int(self.t_s.size)


@dataclass(frozen=True)
class TrackSummary:
    """One track in a window: id, status, stations (in order), number of states, first and last time (s)."""

    track_id: str
    status: str
    stations: tuple[str, ...]
    num_states: int
    first_t_s: float
    last_t_s: float


def _window(since_s: float | None, until_s: float | None) -> tuple[float, float]:
    lo = -np.inf if since_s is None else since_s
    hi = np.inf if until_s is None else until_s
    for name, v in (("since_s", lo), ("until_s", hi)):
        if isinstance(v, bool) or not isinstance(v, int | float | np.number) or np.isnan(v):
            raise InputError(f"{name} = {v!r} s: allowed a time in s (or None for no limit)")
    if lo > hi:
        raise InputError(f"since_s = {lo!r} s is after until_s = {hi!r} s: give since_s <= until_s")
    return float(lo), float(hi)


class TwinStore(abc.ABC):
    """The digital twin's store: write batches of records, query windows and histories, prune by age.

    One interface, two backends (:class:`~sdr_isac.twin.sqlite.SqliteStore`,
    :class:`~sdr_isac.twin.postgres.PostgresStore`); :func:`open_twin` picks one.  A store may be
    used from several threads (calls are serialised).  Use it as a context manager, or call
    :meth:`close`.

    Raises
    ------
    TwinError
        Any method: the database is locked, read-only, corrupt, gone, or holds a schema this code does not
        know; the message names the database.
    """

    #: the placeholder of the driver's parameter style
    _mark = "?"

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.RLock()
        self._closed = False
        #: the newest cutoff this store pruned at, s: track states and handovers older than it are not written
        #: again (a host re-sends a track's handovers with every scan)
        self._pruned_before = -math.inf

    # ---- backend hooks ---------------------------------------------------
    @abc.abstractmethod
    def _transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A write transaction; yields a cursor; commits on success, rolls back on error."""

    @abc.abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only statement."""

    @abc.abstractmethod
    def _bulk_insert(self, cur: Any, table: str, columns: Sequence[str], rows: Sequence[_rows.Row]) -> None:
        """Insert ``rows`` into ``table`` in one go (executemany, COPY)."""

    def _bulk_upsert(self, cur: Any, table: str, columns: Sequence[str], key: Sequence[str],
                     rows: Sequence[_rows.Row]) -> None:
        """Insert ``rows``, updating the rows whose ``key`` columns already exist (``ON CONFLICT``)."""
        cur.executemany(self._sql(_upsert(table, columns, key)), rows)

    @abc.abstractmethod
    def _allocate_ids(self, cur: Any, n: int) -> list[int]:
        """``n`` fresh estimate ids, inside the write transaction ``cur`` belongs to."""

    @abc.abstractmethod
    def _guard(self, what: str) -> contextlib.AbstractContextManager[None]:
        """Map the driver's errors raised inside to :class:`TwinError` naming the database and ``what``."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Close the connection."""

    @abc.abstractmethod
    def _table_names(self) -> set[str]:
        """Names of the tables the database holds."""

    _types: dict[str, str] = {}
    #: opened read-only (a backend sets it before checking the schema): an older schema is read, not upgraded
    _read_only = False
    #: the columns an older twin opened read-only lacks (read as NULL; see :data:`_ADDED`)
    _absent: frozenset[str] = frozenset()

    def _columns(self, columns: Sequence[str]) -> str:
        """``columns`` for a SELECT, each one this twin lacks as ``NULL AS`` it."""
        return ", ".join(f"NULL AS {c}" if c in self._absent else c for c in columns)

    # ---- schema ----------------------------------------------------------
    def _init_schema(self) -> None:
        """Create the tables in a new database; check the version of an existing one."""
        with self._guard("read the schema"):
            tables = self._table_names()
        if "schema_version" in tables:
            self._check_version()
            return
        ours = set(TABLES) & tables
        if ours:
            raise TwinError(f"{self.name}: holds twin tables ({', '.join(sorted(ours))}) but no schema_version "
                            "table; it was not made by sdr_isac (or is damaged): give another --db")
        with self._guard("create the tables"), self._transaction() as cur:
            self._create(cur)

    def _create(self, cur: Any) -> None:
        if "schema_version" in self._table_names():    # another process made them meanwhile
            return
        for stmt in _SCHEMA:
            cur.execute(stmt.format(**self._types))
        cur.execute(self._sql("INSERT INTO schema_version (version) VALUES (?)"), (SCHEMA_VERSION,))

    def _check_version(self) -> None:
        with self._guard("read the schema version"):
            rows = self._query("SELECT version FROM schema_version")
        versions = sorted({int(r[0]) for r in rows})
        if len(versions) != 1:
            raise TwinError(f"{self.name}: schema_version holds {versions or 'no version'}: allowed one version; "
                            "the database is damaged: give another --db")
        version = versions[0]
        if version > SCHEMA_VERSION:
            raise TwinError(f"{self.name}: schema version {version} is newer than this sdr_isac reads "
                            f"({SCHEMA_VERSION}): upgrade sdr_isac, or give another --db")
        if version in _MIGRATIONS:
            if self._read_only:     # read as it is: what later versions added is not known (NULL)
                self._absent = frozenset(c for v, cols in _ADDED.items() if v >= version for c in cols)
                return
            with self._guard(f"upgrade the schema from version {version}"), self._transaction() as cur:
                self._migrate(cur)
            return
        if version != SCHEMA_VERSION:
            raise TwinError(f"{self.name}: schema version {version} is unknown (this sdr_isac reads "
                            f"{SCHEMA_VERSION}): give another --db")

    def _migrate(self, cur: Any) -> None:
        """Take the tables to :data:`SCHEMA_VERSION` in the open transaction, one version at a time (the
        version is read again inside it: another process may have upgraded them meanwhile)."""
        cur.execute("SELECT version FROM schema_version")
        version = int(cur.fetchone()[0])
        while version in _MIGRATIONS:
            for stmt in _MIGRATIONS[version]:
                cur.execute(stmt.format(**self._types))
            version += 1
            cur.execute(self._sql("UPDATE schema_version SET version = ?"), (version,))

    def schema_version(self) -> int:
        """The schema version the database holds."""
        with self._lock, self._guard("read the schema version"):
            return int(self._query("SELECT version FROM schema_version")[0][0])

    def _sql(self, sql: str) -> str:
        return sql if self._mark == "?" else sql.replace("?", self._mark)

    # ---- writing ---------------------------------------------------------
    def write(self, records: Iterable[Record]) -> int:
        """Store a batch of records in one transaction; returns how many records were stored.

        Parameters
        ----------
        records : iterable of NodeDetection, LinkMeasurement, TargetEstimate or Track
            In any mix.  An estimate's links are stored with it; a track's states (one row each) and
            handovers are upserted, so writing a growing track again does not duplicate it.

        Raises
        ------
        InputError
            A record of another type, or a link whose ``tx``/``rx`` is not an integer 0 ... 2**63 - 1
            (nothing is written).
        TwinError
            The database refused the write (nothing is written).
        """
        dets: list[_rows.Row] = []
        links: list[_rows.Row] = []
        estimates: list[TargetEstimate] = []
        tracks: list[Track] = []
        count = 0
        for r in records:
            count += 1
            if isinstance(r, NodeDetection):
                dets.append(_rows.detection_row(r))
            elif isinstance(r, LinkMeasurement):
                links.append(_rows.link_row(r))
            elif isinstance(r, TargetEstimate):
                estimates.append(r)
            elif isinstance(r, Track):
                tracks.append(r)
            else:
                raise InputError(f"record {count - 1} is a {type(r).__name__}: allowed NodeDetection, "
                                 "LinkMeasurement, TargetEstimate or Track (a Handover goes in its Track)")
        est_links = [[_rows.link_row(m) for m in e.links] for e in estimates]    # validate before writing
        # a track is written whole each time (a host sends every handover with each scan's state): what this store
        # has pruned stays pruned (time is the rows' second column)
        states = [row for t in tracks for row in _rows.state_rows(t) if row[1] >= self._pruned_before]
        kept = {row[0] for row in states}
        tracks = [t for t in tracks if t.num_states == 0 or t.track_id in kept]   # not a track that is all pruned
        with self._lock, self._guard(f"write {count} records"), self._transaction() as cur:
            if dets:
                self._bulk_insert(cur, "detections", _rows.DETECTION_COLUMNS, dets)
            if estimates:
                ids = self._allocate_ids(cur, len(estimates))
                self._bulk_insert(cur, "estimates", _rows.ESTIMATE_COLUMNS,
                                  [_rows.estimate_row(e, i) for e, i in zip(estimates, ids)])
                links += [(i, k, *row[2:]) for i, rows in zip(ids, est_links) for k, row in enumerate(rows)]
            if links:
                self._bulk_insert(cur, "links", _rows.LINK_COLUMNS, links)
            if tracks:
                self._bulk_upsert(cur, "tracks", _rows.TRACK_COLUMNS, ("track_id",),
                                  [_rows.track_row(t) for t in tracks])
                if states:
                    self._bulk_upsert(cur, "track_states", _rows.STATE_COLUMNS, ("track_id", "t_s"), states)
                hos = [row for t in tracks for row in _rows.handover_rows(t) if row[1] >= self._pruned_before]
                if hos:
                    self._bulk_upsert(cur, "handovers", _rows.HANDOVER_COLUMNS, _rows.HANDOVER_COLUMNS[:4], hos)
        return count

    # ---- reading ---------------------------------------------------------
    def _read(self, what: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock, self._guard(what):
            return self._query(self._sql(sql), params)

    def detections(self, since_s: float | None = None, until_s: float | None = None,
                   node_id: str | None = None) -> list[NodeDetection]:
        """Detections with ``since_s <= t_s <= until_s`` (None: no limit), of one node or all, in time order."""
        lo, hi = _window(since_s, until_s)
        cols = ", ".join(_rows.DETECTION_COLUMNS)
        if node_id is None:
            rows = self._read("read detections", f"SELECT {cols} FROM detections WHERE t_s BETWEEN ? AND ? "
                              "ORDER BY t_s, id", (lo, hi))
        else:
            rows = self._read("read detections", f"SELECT {cols} FROM detections WHERE node_id = ? AND t_s "
                              "BETWEEN ? AND ? ORDER BY t_s, id", (node_id, lo, hi))
        return [_rows.detection_of(r) for r in rows]

    def links(self, since_s: float | None = None, until_s: float | None = None) -> list[LinkMeasurement]:
        """Link measurements written on their own (not an estimate's) in the window, in time order."""
        lo, hi = _window(since_s, until_s)
        rows = self._read("read links", f"SELECT {', '.join(_rows.LINK_COLUMNS)} FROM links WHERE estimate_id IS "
                          "NULL AND t_s BETWEEN ? AND ? ORDER BY t_s, id", (lo, hi))
        return [_rows.link_of(r) for r in rows]

    def estimates(self, since_s: float | None = None, until_s: float | None = None) -> list[TargetEstimate]:
        """Target estimates in the window, in time order, each with its links."""
        lo, hi = _window(since_s, until_s)
        rows = self._read("read estimates", f"SELECT {self._columns(_rows.ESTIMATE_COLUMNS)} FROM estimates WHERE t_s "
                          "BETWEEN ? AND ? ORDER BY t_s, id", (lo, hi))
        links: dict[int, list[LinkMeasurement]] = {}
        if rows:
            cols = ", ".join(f"l.{c}" for c in _rows.LINK_COLUMNS)
            for r in self._read("read estimate links", f"SELECT {cols} FROM links l JOIN estimates e ON "
                                "l.estimate_id = e.id WHERE e.t_s BETWEEN ? AND ? ORDER BY l.estimate_id, "
                                "l.link_index", (lo, hi)):
                links.setdefault(int(r[0]), []).append(_rows.link_of(r))
        return [_rows.estimate_of(r, links.get(int(r[0]), [])) for r in rows]

    def estimate_positions(self, since_s: float | None = None, until_s: float | None = None) -> NDArray[np.float64]:
        """Positions of the estimates in the window, shape (N, 3), float64, m."""
        lo, hi = _window(since_s, until_s)
        rows = self._read("read estimates", "SELECT x_m, y_m, z_m FROM estimates WHERE t_s BETWEEN ? AND ?",
                          (lo, hi))
        return np.array(rows, dtype=np.float64).reshape(-1, 3)

    def _tracks(self, head_where: str, where: str, params: Sequence[Any], what: str) -> list[Track]:
        """Tracks whose ``tracks`` row matches ``head_where``, with their states and handovers matching ``where``."""
        with self._lock:
            heads = self._read(what, f"SELECT track_id, status, stations FROM tracks WHERE {head_where} "
                               "ORDER BY track_id", params)
            columns = self._columns(_rows.STATE_COLUMNS)
            states = self._read(what, f"SELECT {columns} FROM track_states WHERE {where} "
                                "ORDER BY track_id, t_s", params)
            hos = self._read(what, f"SELECT {', '.join(_rows.HANDOVER_COLUMNS)} FROM handovers WHERE {where} "
                             "ORDER BY track_id, t_s", params)
        by_track: dict[str, list[Any]] = {}
        for r in states:
            by_track.setdefault(r[0], []).append(r)
        ho_by: dict[str, list[Any]] = {}
        for r in hos:
            ho_by.setdefault(r[0], []).append(r)
        return [_rows.track_of(h, by_track.get(h[0], []), ho_by.get(h[0], [])) for h in heads]

    def tracks(self, since_s: float | None = None, until_s: float | None = None) -> list[Track]:
        """The tracks with states in the window, each cut to its states (and handovers) in it; by track id.

        A track with no state in the window (an empty track included) is not listed:
        :meth:`track_history` reads one whole.
        """
        lo, hi = _window(since_s, until_s)
        return self._tracks("track_id IN (SELECT track_id FROM track_states WHERE t_s BETWEEN ? AND ?)",
                            "t_s BETWEEN ? AND ?", (lo, hi), "read tracks")

    def track_history(self, track_id: str) -> Track:
        """The whole stored history of one track (every state, handover, its stations and status).

        Raises
        ------
        InputError
            No track ``track_id`` in the twin.
        """
        found = self._tracks("track_id = ?", "track_id = ?", (track_id,), f"read track {track_id!r}")
        if not found:
            known = [r[0] for r in self._read("read tracks", "SELECT track_id FROM tracks ORDER BY track_id "
                                              "LIMIT 5")]
            raise InputError(f"track_id = {track_id!r}: no such track in {self.name} (some that are: "
                             f"{', '.join(known) or 'none'}); `tracks --since T` lists them")
        return found[0]

    def track_summaries(self, since_s: float | None = None, until_s: float | None = None) -> list[TrackSummary]:
        """One :class:`TrackSummary` per track with states in the window (computed by the database), by id."""
        lo, hi = _window(since_s, until_s)
        rows = self._read("read tracks", "SELECT s.track_id, t.status, t.stations, COUNT(*), MIN(s.t_s), "
                          "MAX(s.t_s) FROM track_states s JOIN tracks t ON s.track_id = t.track_id WHERE s.t_s "
                          "BETWEEN ? AND ? GROUP BY s.track_id, t.status, t.stations ORDER BY s.track_id", (lo, hi))
        return [TrackSummary(r[0], r[1], tuple(json.loads(r[2])), int(r[3]), float(r[4]), float(r[5])) for r in rows]

    def track_points(self, since_s: float | None = None, until_s: float | None = None) -> TrackPoints:
        """Every track state in the window as arrays (no covariances): see :class:`TrackPoints`."""
        lo, hi = _window(since_s, until_s)
        rows = self._read("read track states", "SELECT track_id, t_s, x_m, y_m, z_m, vx_mps, vy_mps, vz_mps, "
                          f"status, station, {self._columns(['measured'])} FROM track_states WHERE t_s BETWEEN ? AND ? "
                          "ORDER BY track_id, t_s", (lo, hi))
        n = len(rows)
        col = list(zip(*rows)) if rows else [()] * 11
        flags = np.empty(n, dtype=object)
        flags[:] = [None if f is None else bool(f) for f in col[10]]
        return TrackPoints(track_id=np.array(col[0], dtype=object).reshape(n),
                           t_s=np.array(col[1], dtype=np.float64).reshape(n),
                           states=np.array(col[2:8], dtype=np.float64).reshape(6, n).T.copy(),
                           status=np.array(col[8], dtype=object).reshape(n),
                           station=np.array(col[9], dtype=object).reshape(n), measured=flags)

    def handovers(self, since_s: float | None = None, until_s: float | None = None) -> list[tuple[str, Handover]]:
        """(track id, handover) of every handover in the window, in time order."""
        lo, hi = _window(since_s, until_s)
        rows = self._read("read handovers", f"SELECT {', '.join(_rows.HANDOVER_COLUMNS)} FROM handovers WHERE t_s "
                          "BETWEEN ? AND ? ORDER BY t_s, track_id", (lo, hi))
        return [(r[0], Handover(float(r[1]), r[2], r[3], r[4])) for r in rows]

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        with self._lock:
            return {t: int(self._read(f"count {t}", f"SELECT COUNT(*) FROM {t}")[0][0]) for t in TABLES}

    def newest_t_s(self) -> float | None:
        """The latest record time in the twin, s (None when it holds no timed row)."""
        union = " UNION ALL ".join(f"SELECT MAX(t_s) FROM {t}" for t in TABLES if t != "tracks")
        found = [r[0] for r in self._read("read times", union) if r[0] is not None]
        return float(max(found)) if found else None

    # ---- retention -------------------------------------------------------
    def prune(self, older_than_s: float, now_s: float | None = None) -> dict[str, int]:
        """Delete every row older than ``older_than_s`` before ``now_s``; returns rows deleted per table.

        Parameters
        ----------
        older_than_s : float
            Age limit, s, >= 0: rows with ``t_s < now_s - older_than_s`` go.
        now_s : float, optional
            The present, s, on the records' clock; None: the newest record time in the twin (record
            times are capture times, which need not be wall-clock times).

        An estimate goes with its links (by the estimate's time: a link captured a moment before its estimate stays
        while the estimate does); a track whose states all went goes too (an empty track as well).  Later writes
        through this store leave out track states and handovers older than the cutoff (a host sends a track's
        whole handover list with each scan: they came back after every prune).
        """
        if isinstance(older_than_s, bool) or not isinstance(older_than_s, int | float) or not older_than_s >= 0 \
                or not np.isfinite(older_than_s):
            raise InputError(f"older_than_s = {older_than_s!r} s: allowed a finite age >= 0 s")
        if now_s is not None and (isinstance(now_s, bool) or not isinstance(now_s, int | float | np.number)
                                  or not np.isfinite(now_s)):
            raise InputError(f"now_s = {now_s!r} s: allowed a finite time (s, on the records' clock) or None for "
                             "the newest record time; an infinite 'now' would delete everything")
        with self._lock:
            if now_s is None:
                now_s = self.newest_t_s()
                if now_s is None:
                    return {t: 0 for t in TABLES}
            cutoff = float(now_s) - float(older_than_s)
            self._pruned_before = max(self._pruned_before, cutoff)
            deleted: dict[str, int] = {}
            with self._guard(f"prune rows before t = {cutoff:g} s"), self._transaction() as cur:
                for stmt, table in (
                        ("DELETE FROM links WHERE (estimate_id IS NULL AND t_s < ?) OR estimate_id IN (SELECT id FROM "
                         "estimates WHERE t_s < ?)", "links"),        # an estimate's links go with it, by its time
                        ("DELETE FROM estimates WHERE t_s < ?", "estimates"),
                        ("DELETE FROM detections WHERE t_s < ?", "detections"),
                        ("DELETE FROM track_states WHERE t_s < ?", "track_states"),
                        ("DELETE FROM handovers WHERE t_s < ?", "handovers"),
                        ("DELETE FROM tracks WHERE track_id NOT IN (SELECT DISTINCT track_id FROM track_states)",
                         "tracks")):
                    params = (cutoff,) * stmt.count("?")
                    cur.execute(self._sql(stmt), params)
                    deleted[table] = max(int(cur.rowcount), 0)
            return deleted

    # ---- life cycle ------------------------------------------------------
    def close(self) -> None:
        """Close the connection (again: nothing)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                with contextlib.suppress(TwinError):
                    self._close()

    def __enter__(self) -> TwinStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
