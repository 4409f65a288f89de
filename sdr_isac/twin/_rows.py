"""Records <-> table rows: the one place that knows both the records' fields and the tables' columns."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sdr_isac.errors import InputError
from sdr_isac.fusion.records import Handover, LinkMeasurement, TargetEstimate, Track, measured_flags
from sdr_isac.sensing import Detection
from sdr_isac.twin.records import NodeDetection

Row = tuple[Any, ...]

DETECTION_COLUMNS = ("node_id", "t_s", "range_m", "velocity_mps", "doppler_hz", "delay_s", "snr_db", "geometry",
                     "angle_rad", "range_var_m2", "velocity_var_mps2", "angle_var_rad2", "map_snr_db")
LINK_COLUMNS = ("estimate_id", "link_index", "t_s", "tx", "rx", "tx_id", "rx_id", "range_m", "rate_mps",
                "var_range_m2", "var_rate_mps2", "snr_re", "tx_x_m", "tx_y_m", "tx_z_m", "rx_x_m", "rx_y_m",
                "rx_z_m", "cone_angle_rad", "var_cone_angle_rad2", "axis_x", "axis_y", "axis_z")
ESTIMATE_COLUMNS = ("id", "t_s", "x_m", "y_m", "z_m", "cov_position_m2", "vx_mps", "vy_mps", "vz_mps",
                    "cov_velocity_mps2", "nodes", "mode", "bs_ue_case", "single_m", "cov_position_velocity_m2ps")
STATE_COLUMNS = ("track_id", "t_s", "x_m", "y_m", "z_m", "vx_mps", "vy_mps", "vz_mps", "covariance", "status",
                 "station", "measured")
TRACK_COLUMNS = ("track_id", "status", "stations")
HANDOVER_COLUMNS = ("track_id", "t_s", "from_station", "to_station", "reason")

_MAX_INT = 2**63 - 1


def blob(a: NDArray[np.float64]) -> bytes:
    """An array as little-endian float64 bytes, row-major (what the covariance columns hold)."""
    return np.ascontiguousarray(a, dtype="<f8").tobytes()


def unblob(b: bytes | memoryview, shape: tuple[int, ...]) -> NDArray[np.float64]:
    """The inverse of :func:`blob`."""
    return np.frombuffer(bytes(b), dtype="<f8").reshape(shape).astype(np.float64)


def _opt(x: float | None) -> float | None:
    return None if x is None else float(x)


def _node_index(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= int(value) <= _MAX_INT:
        raise InputError(f"LinkMeasurement.{name} = {value!r}: allowed an integer 0 ... 2**63 - 1 (a row of the "
                         "node-position array)")
    return int(value)


def detection_row(d: NodeDetection) -> Row:
    """One row of ``detections``."""
    e = d.detection
    return (d.node_id, d.t_s, float(e.range_m), float(e.velocity_mps), float(e.doppler_hz), float(e.delay_s),
            float(e.snr_db), e.geometry, _opt(e.angle_rad), float(e.range_var_m2), float(e.velocity_var_mps2),
            _opt(e.angle_var_rad2), float(e.map_snr_db))


def detection_of(row: Sequence[Any]) -> NodeDetection:
    """The record of one ``detections`` row (columns :data:`DETECTION_COLUMNS`)."""
    (node_id, t_s, range_m, velocity_mps, doppler_hz, delay_s, snr_db, geometry, angle_rad, range_var_m2,
     velocity_var_mps2, angle_var_rad2, map_snr_db) = row
    det = Detection(range_m=range_m, velocity_mps=velocity_mps, doppler_hz=doppler_hz, delay_s=delay_s,
                    snr_db=snr_db, geometry=geometry, angle_rad=angle_rad, range_var_m2=range_var_m2,
                    velocity_var_mps2=velocity_var_mps2, angle_var_rad2=angle_var_rad2, map_snr_db=map_snr_db)
    return NodeDetection(node_id, t_s, det)


def _xyz(a: NDArray[np.float64] | None) -> tuple[float | None, float | None, float | None]:
    return (None, None, None) if a is None else (float(a[0]), float(a[1]), float(a[2]))


def link_row(m: LinkMeasurement, estimate_id: int | None = None, index: int | None = None) -> Row:
    """One row of ``links``; ``estimate_id``/``index``: the estimate it belongs to and its place there."""
    snr = float(m.snr_re)
    return (estimate_id, index, float(m.t_s), _node_index("tx", m.tx), _node_index("rx", m.rx), m.tx_id, m.rx_id,
            float(m.range_m), float(m.rate_mps), float(m.var_range_m2), float(m.var_rate_mps2),
            None if math.isnan(snr) else snr, *_xyz(m.tx_position_m), *_xyz(m.rx_position_m),
            _opt(m.cone_angle_rad), _opt(m.var_cone_angle_rad2), *_xyz(m.array_axis))


def _vec(x: Any, y: Any, z: Any) -> NDArray[np.float64] | None:
    return None if x is None else np.array([x, y, z], dtype=np.float64)


def link_of(row: Sequence[Any]) -> LinkMeasurement:
    """The record of one ``links`` row (columns :data:`LINK_COLUMNS`); a NULL SNR reads as NaN."""
    (_, _, t_s, tx, rx, tx_id, rx_id, range_m, rate_mps, var_range_m2, var_rate_mps2, snr_re, *rest) = row
    return LinkMeasurement(tx=int(tx), rx=int(rx), range_m=range_m, rate_mps=rate_mps, var_range_m2=var_range_m2,
                           var_rate_mps2=var_rate_mps2, snr_re=math.nan if snr_re is None else snr_re, t_s=t_s,
                           tx_id=tx_id, rx_id=rx_id, tx_position_m=_vec(*rest[0:3]),
                           rx_position_m=_vec(*rest[3:6]), cone_angle_rad=rest[6], var_cone_angle_rad2=rest[7],
                           array_axis=_vec(*rest[8:11]))


def estimate_row(e: TargetEstimate, estimate_id: int) -> Row:
    """One row of ``estimates`` (its links go to ``links`` with :func:`link_row`)."""
    v = e.velocity_mps
    return (estimate_id, float(e.t_s), *_xyz(e.position_m), blob(e.cov_position_m2), *_xyz(v),
            None if e.cov_velocity_mps2 is None else blob(e.cov_velocity_mps2), json.dumps(list(e.nodes)),
            e.mode, e.case, json.dumps({k: list(v) for k, v in e.single_m.items()}),
            None if e.cov_position_velocity_m2ps is None else blob(e.cov_position_velocity_m2ps))


def estimate_of(row: Sequence[Any], links: Sequence[LinkMeasurement]) -> TargetEstimate:
    """The record of one ``estimates`` row (columns :data:`ESTIMATE_COLUMNS`) with its links in order."""
    (_, t_s, x, y, z, cov_p, vx, vy, vz, cov_v, nodes, mode, case, single, cross) = row
    return TargetEstimate(position_m=np.array([x, y, z]), cov_position_m2=unblob(cov_p, (3, 3)), t_s=t_s,
                          nodes=tuple(json.loads(nodes)), velocity_mps=_vec(vx, vy, vz),
                          cov_velocity_mps2=None if cov_v is None else unblob(cov_v, (3, 3)), links=tuple(links),
                          mode=mode, case=case,
                          single_m={k: (float(a), float(b)) for k, (a, b) in json.loads(single).items()},
                          cov_position_velocity_m2ps=None if cross is None else unblob(cross, (3, 3)))


def stations_at(track: Track) -> list[str]:
    """The station that owned ``track`` at each of its states: the first owner, then each handover's ``to``."""
    handovers = sorted(track.handovers, key=lambda h: h.t_s)
    first = handovers[0].from_station if handovers else (track.stations[-1] if track.stations else "")
    owner = np.full(track.num_states, first, dtype=object)
    for h in handovers:
        owner[track.t_s >= h.t_s] = h.to_station
    return [str(s) for s in owner]


def state_rows(track: Track) -> list[Row]:
    """The rows of ``track_states`` of ``track``: one per state."""
    covs = np.ascontiguousarray(track.covariances, dtype="<f8").reshape(track.num_states, 36)
    stations = stations_at(track)
    measured = [None] * track.num_states if track.measured is None else [int(m) for m in track.measured.tolist()]
    return [(track.track_id, t, *s, c.tobytes(), track.status, st, m)
            for t, s, c, st, m in zip(track.t_s.tolist(), track.states.tolist(), covs, stations, measured)]


def track_row(track: Track) -> Row:
    """The row of ``tracks`` of ``track``."""
    return (track.track_id, track.status, json.dumps(list(track.stations)))


def handover_rows(track: Track) -> list[Row]:
    """The rows of ``handovers`` of ``track``."""
    return [(track.track_id, float(h.t_s), h.from_station, h.to_station, h.reason) for h in track.handovers]


def track_of(head: Sequence[Any], states: Sequence[Sequence[Any]], handovers: Sequence[Sequence[Any]]) -> Track:
    """A :class:`Track` from its ``tracks`` row, its ``track_states`` rows (time order) and ``handovers`` rows."""
    track_id, status, stations = head
    n = len(states)
    t = np.array([r[1] for r in states], dtype=np.float64)
    x = np.array([r[2:8] for r in states], dtype=np.float64).reshape(n, 6)
    covs = np.frombuffer(b"".join(bytes(r[8]) for r in states), dtype="<f8").reshape(n, 6, 6).astype(np.float64)
    hos = tuple(Handover(float(r[1]), r[2], r[3], r[4]) for r in handovers)
    flags = [r[11] for r in states]
    return Track(track_id=track_id, t_s=t, states=x, covariances=covs, stations=tuple(json.loads(stations)),
                 handovers=hos, status=status,
                 measured=measured_flags([None if f is None else bool(f) for f in flags]))
