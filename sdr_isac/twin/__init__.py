"""The digital twin: what the hosts sensed, stored structurally and queried (article §V-3).

Detections, link measurements, target estimates, tracks (one row per state) and handovers go into
one store, SQLite by default (:func:`open_twin` with a file path) or PostgreSQL (with a DSN), through
one interface (:class:`TwinStore`).  A host writes through :class:`TwinWriter` (a thread behind a
bounded queue: it never waits for the database, and counts what it drops).  The queries: windows of
time, one track's history, occupancy maps (:func:`heatmap`), traffic per lane segment
(:func:`traffic`), CSV and GeoJSON exports, retention (:meth:`TwinStore.prune`).  The command is
``sdr-isac twin`` (:mod:`sdr_isac.twin.cli`); ``docs/twin.md`` describes the schema.
"""

from __future__ import annotations

from sdr_isac.twin.connect import open_twin
from sdr_isac.twin.errors import TwinError, TwinUnavailableError
from sdr_isac.twin.queries import (
    LaneSegment,
    LaneTraffic,
    OccupancyMap,
    export_csv,
    export_geojson,
    heatmap,
    load_lanes,
    occupancy,
    traffic,
)
from sdr_isac.twin.records import NodeDetection
from sdr_isac.twin.store import SCHEMA_VERSION, TrackPoints, TrackSummary, TwinStore
from sdr_isac.twin.writer import TwinWriter, WriterStats

__all__ = ["SCHEMA_VERSION", "LaneSegment", "LaneTraffic", "NodeDetection", "OccupancyMap", "TrackPoints",
           "TrackSummary", "TwinError", "TwinStore", "TwinUnavailableError", "TwinWriter", "WriterStats",
           "export_csv", "export_geojson", "heatmap", "load_lanes", "occupancy", "open_twin", "traffic"]
