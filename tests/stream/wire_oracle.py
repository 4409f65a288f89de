"""An oracle of the wire format, independent of ``sdr_isac.stream.wire``'s own checks.

Given the frames that went into :func:`wire.decode` and the message that came out, :func:`problems` lists
everything that does not match what the frames say (``docs/wire-format.md``): the topic and header, each
array's dtype, shape, bytes and read-only flag.  :func:`helper_problems` runs every ``decode_<kind>`` helper:
each must raise :class:`~sdr_isac.errors.WireFormatError` or return records that match the header, and the
records must be usable by the code that consumes them (the truth matcher of the host's outputs, the fused
summary, the RIS scan): "well-formed all the way down".  An empty list means consistent.

Used by ``tests/reliability/test_wire_props.py`` and ``scripts/fuzz_stream.py``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from sdr_isac.capture import Capture
from sdr_isac.errors import WireFormatError
from sdr_isac.fusion.records import Handover, TargetEstimate, Track
from sdr_isac.sensing.detection import Detection
from sdr_isac.stream import wire

__all__ = ["LAYOUT", "problems", "helper_problems", "raw_frames", "sample_messages", "TRUTH"]

#: The dtypes of the specification and their byte layout (written out here, not taken from the module).
LAYOUT = {"complex64": "<c8", "complex128": "<c16", "float32": "<f4", "float64": "<f8", "int16": "<i2",
          "int32": "<i4", "uint8": "u1", "bool": "?"}
_KINDS = ("capture", "detections", "estimates", "tracks", "heartbeat", "control", "rdmap", "status")
_DETECTION_FLOATS = ("range_m", "velocity_mps", "doppler_hz", "delay_s", "snr_db", "range_var_m2",
                     "velocity_var_mps2", "map_snr_db")


def raw_frames(frames: list[Any]) -> list[bytes]:
    """The frames as bytes (bytes, memoryviews, zmq.Frame-like objects)."""
    return [bytes(memoryview(getattr(f, "buffer", f)).cast("B")) for f in frames]


def _same_json(a: Any, b: Any) -> bool:
    """Equal JSON values, with 1 == 1.0 only between numbers of the same value (bool is never a number)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def problems(msg: wire.Message, frames: list[Any]) -> list[str]:
    """What of the decoded ``msg`` does not match the ``frames`` it was decoded from."""
    raw = raw_frames(frames)
    out: list[str] = []
    try:
        header = json.loads(raw[1])
    except ValueError as err:
        return [f"accepted a header that is not JSON: {err}"]
    if not isinstance(header, dict):
        return ["accepted a header that is not an object"]
    if msg.topic != raw[0] or msg.topic != f"{header.get('kind')}/{header.get('node_id')}".encode():
        out.append(f"topic {msg.topic!r} vs frame {raw[0]!r} and header {header.get('kind')}/{header.get('node_id')}")
    if not _same_json(msg.header, header):
        out.append("the decoded header differs from the header frame")
    kind, version = header.get("kind"), header.get("v")
    if kind not in _KINDS or type(version) is not int or not 1 <= version <= 3:
        out.append(f"accepted kind {kind!r} with v {version!r}")
    for key in ("seq",):
        if type(header.get(key)) is not int or not 0 <= header[key] < 2**63:
            out.append(f"accepted {key} = {header.get(key)!r}")
    for key in ("t0_s", "sent_s"):
        value = header.get(key)
        if type(value) not in (int, float) or not math.isfinite(value):
            out.append(f"accepted {key} = {value!r}")
    specs = header.get("arrays")
    if not isinstance(specs, list) or len(specs) != len(raw) - 2 or len(msg.arrays) != len(raw) - 2:
        return out + [f"{len(msg.arrays)} arrays for {len(raw) - 2} buffer frames and spec {specs!r}"[:300]]
    for i, (arr, spec, buf) in enumerate(zip(msg.arrays, specs, raw[2:])):
        name = spec.get("dtype") if isinstance(spec, dict) else None
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if not isinstance(name, str) or name not in LAYOUT or arr.dtype != np.dtype(LAYOUT[name]):
            out.append(f"arrays[{i}]: dtype {arr.dtype} for declared {name!r}")
        if not isinstance(shape, list) or any(type(n) is not int for n in shape) or list(arr.shape) != shape:
            out.append(f"arrays[{i}]: shape {arr.shape} for declared {shape!r}")
        if arr.tobytes() != buf:
            out.append(f"arrays[{i}]: bytes differ from its buffer frame")
        if arr.flags.writeable:
            out.append(f"arrays[{i}] is writeable")
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            out.append(f"arrays[{i}] holds non-finite values")
        if arr.dtype.kind == "b" and any(b > 1 for b in buf):
            out.append(f"arrays[{i}]: bool bytes other than 0 and 1")
    return out


# ---- the helpers and the consumers of their records ----------------------------------------------
def _detection_problems(dets: Any, items: Any, where: str) -> list[str]:
    if not isinstance(dets, list) or not isinstance(items, list) or len(dets) != len(items):
        return [f"{where}: {type(dets).__name__} of detections for header {str(items)[:80]}"]
    out = []
    for i, (det, item) in enumerate(zip(dets, items)):
        if not isinstance(det, Detection) or not isinstance(item, dict):
            out.append(f"{where}[{i}]: not a Detection")
            continue
        for name in _DETECTION_FLOATS:
            value = getattr(det, name)
            if type(value) is not float or not math.isfinite(value) or value != item.get(name):
                out.append(f"{where}[{i}].{name} = {value!r} for header {item.get(name)!r}")
        for name in ("angle_rad", "angle_var_rad2"):
            value = getattr(det, name)
            if not (value is None and item.get(name) is None) and not (
                    type(value) is float and math.isfinite(value) and value == item.get(name)):
                out.append(f"{where}[{i}].{name} = {value!r} for header {item.get(name)!r}")
        if det.geometry not in ("monostatic", "bistatic") or det.geometry != item.get("geometry"):
            out.append(f"{where}[{i}].geometry = {det.geometry!r}")
    return out


def _truth_problems(truth: Any, dets: list[Detection], where: str) -> list[str]:
    """Run the consumers of a truth object: the host's outputs (match_targets, the fused summary), the RIS."""
    from sdr_isac.fusion.metrics import match_targets

    if truth is None:
        return []
    try:
        paths = (truth or {}).get("paths", [])
        match_targets(dets, paths, 1.0, 1.0)
        for p in paths:                                       # the fused summary and the host's fusion
            if p.get("kind") == "target" and "position_m" in p:
                str(p["target"])
                if np.asarray(p["position_m"], dtype=float).shape not in ((2,), (3,)):
                    return [f"{where}: a target path's position_m is not 2 or 3 numbers"]
        for t in (truth or {}).get("targets") or []:          # the RIS scan and the display
            {"target": t["id"], **t}                          # noqa: B018
            if np.asarray(t["position_m"], dtype=float).shape not in ((2,), (3,)):
                return [f"{where}: a target's position_m is not 2 or 3 numbers"]
    except Exception as err:                                  # noqa: BLE001  any failure is the finding
        return [f"{where}: a consumer of the truth fails ({type(err).__name__}: {err})"[:300]]
    return []


def _capture_problems(msg: wire.Message, cap: Any) -> list[str]:
    h = msg.header
    if not isinstance(cap, Capture):
        return ["decode_capture returned no Capture"]
    out = []
    if cap.iq.dtype != np.complex64 or cap.iq.ndim != 2 or cap.iq.shape[0] < 1 or \
            cap.iq.tobytes() != msg.arrays[0].tobytes() or cap.iq.shape != msg.arrays[0].shape:
        out.append(f"capture iq {cap.iq.dtype} {cap.iq.shape} differs from the buffer")
    for name in ("sample_rate_hz", "center_freq_hz"):
        value = getattr(cap, name)
        if not math.isfinite(value) or value != h.get(name) or value < 0 or (name == "sample_rate_hz" and value == 0):
            out.append(f"capture {name} = {value!r} for header {h.get(name)!r}")
    if cap.frame_offset != h.get("frame_offset") or type(h.get("frame_offset")) is not int:
        out.append(f"capture frame_offset = {cap.frame_offset!r}")
    if (cap.frame is None) != (h.get("frame") is None):
        out.append("capture frame present/absent differs from the header")
    if cap.node_id != h.get("node_id") or cap.seq != h.get("seq") or cap.t0_s != h.get("t0_s"):
        out.append("capture node_id / seq / t0_s differ from the header")
    if not _same_json(cap.metadata, h.get("metadata")):
        out.append("capture metadata differs from the header")
    meta = cap.metadata if isinstance(cap.metadata, dict) else {}
    out += _truth_problems(meta.get("truth"), [], "metadata.truth")
    try:                                                      # the host's RIS scan
        for step in meta.get("ris") or []:
            str(step["id"]), float(step["steer_deg"]), float(step["incoming_deg"])
            if not 0 <= int(step["scan_index"]) < int(step["scan_size"]):
                out.append(f"metadata.ris step {step} out of its scan")
    except Exception as err:                                  # noqa: BLE001
        out.append(f"metadata.ris: the RIS scan fails ({type(err).__name__}: {err})"[:300])
    return out


def _vector(value: Any, sizes: tuple[int, ...]) -> bool:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return False
    return arr.ndim == 1 and arr.size in sizes and bool(np.all(np.isfinite(arr)))


def _estimate_problems(msg: wire.Message, records: Any) -> list[str]:
    items = msg.header.get("estimates")
    if not isinstance(items, list) or len(records) != len(items):
        return ["decode_estimates differs from the header"]
    out = []
    for i, (record, est) in enumerate(zip(records, items)):
        if not isinstance(est, dict):
            out.append(f"estimates[{i}] is not an object")
            continue
        same = (_vector(est.get("position_m"), (3,))                  # numbers as floats (2**63 - 1 included)
                and np.array_equal(record.position_m, np.asarray(est["position_m"], dtype=float))
                and isinstance(est.get("cov_position_m2"), list)
                and np.array_equal(record.cov_position_m2[:2, :2], np.asarray(est["cov_position_m2"], dtype=float))
                and list(record.nodes) == est.get("nodes") and record.case == est.get("case")
                and (record.mode == est.get("mode") or (record.mode == "single" and est.get("consensus") is False
                                                        and "mode" not in est)))
        if not same:
            out.append(f"estimates[{i}]: the record differs from the header")
        if not _vector(est.get("position_m"), (3,)):
            out.append(f"estimates[{i}].position_m unusable")
        cov = np.asarray(est.get("cov_position_m2"), dtype=float) if isinstance(est.get("cov_position_m2"), list) \
            else None
        if cov is None or cov.shape != (2, 2) or not np.all(np.isfinite(cov)):
            out.append(f"estimates[{i}].cov_position_m2 unusable")
        row = est.get("cov_position_z_m2")                   # the z row; absent or null: a known height
        if row is None:
            if np.any(record.cov_position_m2[2] != 0):
                out.append(f"estimates[{i}]: a known height decoded with a z variance")
        elif not (_vector(row, (3,)) and float(row[2]) >= 0 and not any(isinstance(v, bool) for v in row)
                  and np.array_equal(record.cov_position_m2[2], np.asarray(row, dtype=float))
                  and np.array_equal(record.cov_position_m2[:, 2], np.asarray(row, dtype=float))):
            out.append(f"estimates[{i}].cov_position_z_m2 = {row!r} accepted or decoded otherwise")
        if np.linalg.eigvalsh(record.cov_position_m2).min() < -1e-9 * max(float(np.abs(record.cov_position_m2).max()),
                                                                            1e-300):
            out.append(f"estimates[{i}]: a position covariance that is not positive semi-definite accepted")
        if not all(isinstance(n, str) for n in est.get("nodes", [None])):
            out.append(f"estimates[{i}].nodes unusable")
        for node, xy in (est.get("single_m") or {}).items():
            if not _vector(xy, (2,)):
                out.append(f"estimates[{i}].single_m.{node} unusable")
    return out


def _rdmap_problems(msg: wire.Message, rd: Any) -> list[str]:
    h = msg.header
    if not isinstance(rd, wire.RdMap):
        return ["decode_rdmap returned no RdMap"]
    out = []
    for arr, got in zip(msg.arrays, (rd.power_db, rd.range_m, rd.velocity_mps)):
        if got is not arr and got.tobytes() != arr.tobytes():
            out.append("rdmap arrays differ from the buffers")
    if rd.power_db.shape != (rd.range_m.size, rd.velocity_mps.size) or rd.power_db.dtype != np.float32:
        out.append(f"rdmap power_db {rd.power_db.shape} does not fit its axes")
    for axis in (rd.range_m, rd.velocity_mps):
        if axis.size > 1 and not np.all(np.diff(axis) > 0):
            out.append("rdmap axis not strictly ascending")
    if rd.geometry not in ("monostatic", "bistatic") or type(rd.num_channels) is not int or rd.num_channels < 1:
        out.append("rdmap geometry / num_channels")
    if not (math.isfinite(rd.max_range_m) and rd.max_range_m > 0):
        out.append(f"rdmap max_range_m = {rd.max_range_m}")
    if len(rd.decimation) != 2 or any(type(k) is not int or k < 1 for k in rd.decimation):
        out.append(f"rdmap decimation = {rd.decimation}")
    out += _detection_problems(rd.detections, h.get("detections"), "rdmap.detections")
    out += _truth_problems(rd.truth, rd.detections, "rdmap.truth")
    if rd.node is not None and not _vector(rd.node.get("position_m"), (2, 3)):
        out.append("rdmap node.position_m unusable")
    if not isinstance(rd.stats, dict):
        out.append("rdmap stats not an object")
    return out


def _status_problems(msg: wire.Message, status: Any) -> list[str]:
    if not isinstance(status, wire.NodeStatus):
        return ["decode_status returned no NodeStatus"]
    out = []
    if status.state not in wire.NODE_STATES or status.node_id != msg.node_id or status.seq != msg.seq:
        out.append(f"status state {status.state!r}")
    if (status.state == "absent") != (status.absent_since_s is not None):
        out.append("status absent_since_s does not go with its state")
    outage = status.outage
    if outage is not None:
        if outage.end_s is None:
            if status.state != "absent" or outage.frames_missed is not None:
                out.append("an outage going on outside the absent state")
        elif (type(outage.frames_missed) is not int or outage.frames_missed < 0
              or outage.frames_missed_from not in ("sequence", "rate") or (outage.duration_s or 0.0) < 0):
            out.append(f"an ended outage with frames_missed {outage.frames_missed!r}")
    if type(status.outages) is not int or status.outages < 0:
        out.append(f"status outages = {status.outages!r}")
    return out


def _heartbeat_problems(msg: wire.Message) -> list[str]:
    """What the host takes of a heartbeat: ``stats`` an object, counters int >= 0, ``final`` a bool."""
    stats = msg.header.get("stats")
    if not isinstance(stats, dict):
        return ["heartbeat stats is not an object"]
    out = []
    for key in ("sent", "dropped", "captured", "frames_sent", "frames_dropped", "heartbeats", "frames_dropped_overflow",
                "rx_failures"):
        if key in stats and (type(stats[key]) is not int or stats[key] < 0):
            out.append(f"heartbeat stats.{key} = {stats[key]!r}")
    if "final" in stats and type(stats["final"]) is not bool:
        out.append(f"heartbeat stats.final = {stats['final']!r}")
    return out


def _tracks_problems(msg: wire.Message, found: Any) -> list[str]:
    """The records of a ``tracks`` message against its header, and what the core host's fusion needs of them:
    a covariance it can factor (Cholesky), times that do not go backwards, distinct ids."""
    items = msg.header.get("tracks")
    if not isinstance(found, wire.TrackSet) or not isinstance(items, list) or len(found.tracks) != len(items):
        return ["decode_tracks differs from the header"]
    out = []
    t0 = msg.header.get("t0_s")
    if len({t.track_id for t in found.tracks}) != len(found.tracks):
        out.append("tracks: duplicate ids accepted")
    for i, (track, item) in enumerate(zip(found.tracks, items)):
        where = f"tracks[{i}]"
        if not isinstance(track, Track) or not isinstance(item, dict):
            out.append(f"{where}: not a Track")
            continue
        if track.track_id != item.get("id") or track.status != item.get("status") or \
                track.status not in ("tentative", "confirmed", "deleted"):
            out.append(f"{where}: id / status differ from the header")
        if track.t_s.shape != (1,) or track.t_s[0] != item.get("t_s") or not track.t_s[0] <= t0:
            out.append(f"{where}.t_s = {track.t_s} for header {item.get('t_s')!r}, message t0_s {t0!r}")
        if track.states.shape != (1, 6) or not np.array_equal(track.states[0], np.asarray(item.get("state"), float)):
            out.append(f"{where}.state differs from the header")
        cov = track.covariances[0] if track.covariances.shape == (1, 6, 6) else None
        if cov is None or not np.array_equal(cov, np.asarray(item.get("covariance"), float)):
            out.append(f"{where}.covariance differs from the header")
            continue
        try:                                                  # the core host's fusion inverts it
            scale = float(np.max(np.abs(cov)))
            np.linalg.cholesky((cov + cov.T) / (2 * scale))
        except Exception as err:                              # noqa: BLE001  any failure is the finding
            out.append(f"{where}.covariance is not positive definite ({type(err).__name__})")
        hands = item.get("handovers")
        if not isinstance(hands, list) or len(track.handovers) != len(hands):
            out.append(f"{where}.handovers differ from the header")
        else:
            times = [h.t_s for h in track.handovers]
            if times != sorted(times) or any(t > track.t_s[0] for t in times) or any(
                    not isinstance(h, Handover) or h.from_station != w.get("from") or h.to_station != w.get("to")
                    or h.reason != w.get("reason") for h, w in zip(track.handovers, hands)):
                out.append(f"{where}.handovers out of order or differ from the header")
        if list(track.stations) != item.get("stations") or not all(isinstance(s, str) and s for s in track.stations):
            out.append(f"{where}.stations differ from the header")
        tail = found.tails.get(track.track_id)
        if ("tail_t_s" in item) != (tail is not None):
            out.append(f"{where}: tail present/absent differs from the header")
        elif tail is not None:
            t, pos = tail
            if pos.shape != (t.size, 3) or t.size > 64 or (t.size and not (np.all(np.diff(t) > 0)
                                                                          and t[-1] < track.t_s[0])):
                out.append(f"{where}: tail times not increasing before the track's t_s, or shapes differ")
        members = found.members.get(track.track_id)
        if members is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in members.items()):
            out.append(f"{where}.members unusable")
        flag = item.get("measured")                            # a JSON boolean, null or absent
        if flag is not None and not isinstance(flag, bool):
            out.append(f"{where}.measured = {flag!r} accepted: only true, false or null")
        elif (track.measured is None) != (flag is None) or (
                flag is not None and (track.measured.dtype != np.bool_ or track.measured.tolist() != [flag])):
            out.append(f"{where}.measured = {track.measured!r} for header {flag!r}")
    return out


def helper_problems(msg: wire.Message) -> list[str]:
    """Every ``decode_<kind>`` helper on ``msg``: WireFormatError, or records that check against the header.

    A helper of another kind must refuse the message; the helper of its kind may refuse it only with a
    WireFormatError (a frame description that ``config.from_dict`` rejects, an axis that does not ascend).
    """
    helpers = {"capture": (wire.decode_capture, _capture_problems),
               "detections": (wire.decode_detections,
                              lambda m, r: _detection_problems(r, m.header.get("detections"), "detections")
                              + _truth_problems(m.header.get("truth"), r, "truth")),
               "estimates": (wire.decode_estimates, _estimate_problems),
               "rdmap": (wire.decode_rdmap, _rdmap_problems),
               "status": (wire.decode_status, _status_problems),
               "tracks": (wire.decode_tracks, _tracks_problems)}
    out = _heartbeat_problems(msg) if msg.kind == "heartbeat" else []
    for kind, (helper, check) in helpers.items():
        try:
            record = helper(msg)
        except WireFormatError:
            continue
        except Exception as err:                              # noqa: BLE001  any other exception is the finding
            out.append(f"decode_{kind} raised {type(err).__name__}: {err}"[:300])
            continue
        if kind != msg.kind:
            out.append(f"decode_{kind} accepted a {msg.kind} message")
        else:
            out += check(msg, record)
    return out


# ---- valid messages of every kind, with every nested structure -------------------------------------
#: Ground truth as the simulated radio writes it: a monostatic target path, a bistatic one, a leakage path.
TRUTH: dict[str, Any] = {
    "paths": [{"kind": "target", "source": "car", "tx": "bs0", "rx": "bs0", "target": "car", "length_m": 100.0,
               "doppler_hz": -1200.0, "position_m": [42.0, 10.0, 1.0], "delay_s": 3.3e-7, "delay_samples": 40.6,
               "azimuth_deg": 13.4, "elevation_deg": 0.0, "snr_per_re_db": 12.5, "range_m": 50.0,
               "velocity_mps": -7.5},
              {"kind": "target", "source": "car", "tx": "bs1", "rx": "bs0", "target": "car", "length_m": 120.0,
               "doppler_hz": 300.0, "position_m": [42.0, 10.0, 1.0], "velocity_mps": [-14.0, 2.0, 0.0],
               "range_sum_m": 120.0, "bistatic_velocity_mps": -3.75, "snr_per_re_db": 3.0},
              {"kind": "leakage", "source": "bs0", "isolation_db": 60.0, "delay_s": 0.0}],
    "targets": [{"id": "car", "position_m": [42.0, 10.0, 1.0], "velocity_mps": [-14.0, 2.0, 0.0]}]}
_DETECTION = Detection(range_m=50.1, velocity_mps=-7.4, doppler_hz=1183.0, delay_s=3.34e-7, snr_db=12.0,
                       geometry="monostatic", angle_rad=0.23, range_var_m2=0.01, velocity_var_mps2=0.02,
                       angle_var_rad2=1e-4, map_snr_db=30.0)
_ESTIMATE = TargetEstimate.planar([41.9, 10.0], [[1e-4, 0.0], [0.0, 2e-4]], 1.0, nodes=("bs0", "bs1"),
                               velocity_xy_mps=[-14.0, 2.0], cov_velocity_xy_mps2=[[1e-3, 0.0], [0.0, 1e-3]],
                               single_m={"bs0": (41.9, 10.1)}, mode="macro_micro", case="A")

_TRACK = Track("t1", [1.0, 2.0, 3.0], [[0.0, 0.0, 1.0, 1.0, 0.5, 0.0], [1.0, 0.5, 1.0, 1.0, 0.5, 0.0],
                                       [2.0, 1.0, 1.0, 1.0, 0.5, 0.0]],
               np.stack([np.diag([1.0, 1.0, 0.5, 0.1, 0.1, 0.05]) + 0.01] * 3), ("bs0", "bs1"),
               (Handover(2.0, "bs0", "bs1", "coverage"),), "confirmed")


def sample_messages() -> dict[str, list[bytes]]:
    """Valid encoded messages of every kind (as bytes), with nested truth, RIS steps and outages."""
    from sdr_isac import config

    rng = np.random.default_rng(1)
    iq = (rng.standard_normal((2, 64)) + 1j * rng.standard_normal((2, 64))).astype(np.complex64)
    ris = [{"id": "ris0", "incoming_deg": 30.0, "steer_deg": -10.0, "scan_index": 1, "scan_size": 4}]
    capture = Capture(iq, 30.72e6, 3.5e9, t0_s=0.25, node_id="bs0", seq=7, frame=config.default().frame,
                      frame_offset=3, metadata={"radio": "sim", "truth": TRUTH, "ris": ris, "scene_time_s": 0.25})
    power = np.arange(12, dtype=np.float32).reshape(4, 3)
    messages = {
        "capture": wire.encode_capture(capture),
        "capture-no-frame": wire.encode_capture(Capture(iq[:1], 1e6, 0.0, t0_s=0.0, node_id="n", seq=0,
                                                        metadata={"replay": {"index": 0}})),
        "detections": wire.encode_detections("bs0", 3, 1.5, [_DETECTION], truth=TRUTH, radio="sim"),
        "estimates": wire.encode_estimates("host", 6, 2.0, [_ESTIMATE]),
        "rdmap": wire.encode_rdmap("bs0", 7, 0.25, power, np.array([0.0, 10.0, 20.0, 30.0]),
                                   np.array([-5.0, 0.0, 5.0]), [_DETECTION], geometry="monostatic", num_channels=2,
                                   max_range_m=30.0, decimation=(2, 1),
                                   sensing={"pfa": 1e-6, "guard_cells": [4, 2], "training_cells": [8, 4]},
                                   node={"id": "bs0", "position_m": [1.0, 2.0, 5.0], "yaw_deg": 90.0},
                                   stats={"received": 3, "lost": 1}, truth=TRUTH),
        "status-absent": wire.encode_status(wire.NodeStatus("bs0", 2, "absent", 1.7e9, 1.7e9, wire.Outage(1.7e9),
                                                            1)),
        "status-back": wire.encode_status(wire.NodeStatus("bs0", 3, "present", 1.7e9 + 5, None,
                                                          wire.Outage(1.7e9, 1.7e9 + 5, 40, "rate", True), 1)),
        "heartbeat": wire.encode_heartbeat("bs0", 9, {"captured": 10, "sent": 10, "final": False,
                                                      "started_s": 1.7e9}),
        "control": wire.encode_control("host", 1, "stop", after_s=2.5),
        "tracks": wire.encode("tracks", "mecs1", 5, t0_s=3.0, arrays=[np.zeros((0, 3), np.int16), np.ones(2, bool)],
                              tracks=[wire.track_to_dict(_TRACK, 2, {"mecs1": "t1"}),
                                      wire.track_to_dict(Track("t2", [2.5], [[0.0] * 6], [np.eye(6)]))]),
    }
    out = {}
    for i, (name, frames) in enumerate(sorted(messages.items())):
        raw = raw_frames(frames)
        header = json.loads(raw[1])
        header["sent_s"] = 1.7e9 + i                     # not the clock: the same bytes every run (seeded fuzzing)
        raw[1] = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
        out[name] = raw
    return out
