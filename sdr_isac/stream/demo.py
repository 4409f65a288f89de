"""``sdr-isac demo`` as separate processes: simulated nodes stream over TCP loopback to a host process.

The demo command starts one host process and one process per simulated base
station of the configuration, all on 127.0.0.1 with free ports; every node
sends its frames, the host senses them and writes, into the output folder,
``stream_stats.json`` (frames sent, received, dropped and lost per node,
latency) and per node ``<node>/summary.json`` and ``<node>/range_doppler.png``
(detections beside the truth, errors over sqrt(CRB)).
"""

from __future__ import annotations

import json
import math
import re
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from sdr_isac import config as config_mod
from sdr_isac.channel.geometry import target_state
from sdr_isac.errors import SdrIsacError
from sdr_isac.fusion.metrics import match_targets
from sdr_isac.recording._atomic import write_json
from sdr_isac.sensing import Detection
from sdr_isac.sensing.plots import plot_range_doppler
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["write_host_outputs", "run_stream_demo", "run_urban_demo", "urban_plan", "urban_handovers", "free_ports"]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on right now.

    The sockets stay open until all are chosen, so the system cannot hand out one port twice.
    """
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _env() -> dict[str, str]:
    """The environment of a host started from another folder (the twin's relative ``twin.db`` lands in its
    output folder): this sdr_isac stays importable."""
    import os

    import sdr_isac

    root = str(Path(sdr_isac.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def _cells(frame: config_mod.FrameConfig, duration_s: float) -> tuple[float, float]:
    range_cell = SPEED_OF_LIGHT_MPS / (2 * frame.num_subcarriers * frame.subcarrier_spacing_hz)
    return range_cell, SPEED_OF_LIGHT_MPS / (2 * frame.carrier_hz * duration_s)


def write_host_outputs(host: Any, cfg: config_mod.Config, out_dir: str | Path) -> dict[str, Any]:
    """Write the host's stream statistics and, per node, the summary and the last map."""
    from sdr_isac.waveform import IsacFrame

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    host.write_stats(out / "stream_stats.json")
    summaries: dict[str, Any] = {}
    for node_id, frames in host.detections_by_node().items():
        known = cfg.scene is not None and any(n.id == node_id for n in cfg.scene.nodes)
        node_frame = cfg.scene.node(node_id).frame if known and cfg.scene is not None else None
        frame_cfg = node_frame or cfg.frame
        range_cell, velocity_cell = _cells(frame_cfg, IsacFrame(frame_cfg).duration_s)
        per_frame = []
        for item in sorted(frames, key=lambda f: f["seq"]):
            dets = [Detection(**d) for d in item["detections"]]
            paths = (item.get("truth") or {}).get("paths", [])
            per_frame.append({"seq": item["seq"], "t0_s": item["t0_s"], "detections": item["detections"],
                              "targets": match_targets(dets, paths, range_cell, velocity_cell)})
        targets = [t for f in per_frame for t in f["targets"]]
        summary = {"node": node_id, "frames": len(per_frame),
                   "all_targets_detected": bool(targets) and all(t["detected"] for t in targets),
                   "max_range_error_over_crb": max((t.get("range_error_over_crb", math.inf) for t in targets),
                                                   default=0.0),
                   "max_velocity_error_over_crb": max((t.get("velocity_error_over_crb", math.inf)
                                                       for t in targets), default=0.0),
                   "per_frame": per_frame}
        node_dir = out / node_id
        node_dir.mkdir(exist_ok=True)
        write_json(node_dir / "summary.json", summary)
        if node_id in host.last_results:
            result, paths = host.last_results[node_id]
            plot_range_doppler(result, paths, node_dir / "range_doppler.png", f"{node_id}: last frame")
        summaries[node_id] = summary
    write_json(out / "fused.json", fused_summary(host, cfg))
    if getattr(host, "_tracker", None) is not None:
        write_json(out / "tracks.json", host.tracks_document())
    return summaries


def fused_summary(host: Any, cfg: config_mod.Config) -> dict[str, Any]:
    """The host's fused estimates beside the truth: per time-aligned set, each truth target with the nearest
    estimate, its position error and the CRB of that estimate (sqrt of the covariance's trace), the velocity
    error (truth: the scene's target velocity at the set's time, on the scene clock of the set's first node),
    and each node's own position estimate (range + angle);
    ``estimates``: the position (m) of every estimate of the set, matched to a target or not (what the display
    draws); ``unmatched``: those farther than 3 ``fusion.gate_m`` from every true target (ghosts, or a target
    placed far off: ``max_position_error_over_crb`` does not see them), counted over all sets in
    ``unmatched_estimates``."""
    scene = cfg.scene
    scene_nodes = {n.id: n for n in scene.nodes} if scene is not None else {}
    sets = []
    for item in list(host.estimates):
        first = next((n for n in item["nodes"] if n in scene_nodes), None)
        scene_t_s = item["t0_s"] - (scene_nodes[first].clock_offset_s if first is not None else 0.0)
        velocities = {t.id: target_state(t, scene_t_s)[1][:2] for t in (scene.targets if scene else ())}
        rows = []
        targets = {p["target"]: np.asarray(p["position_m"], dtype=float) for p in item["truth"]}
        for target, truth in sorted(targets.items()):
            row: dict[str, Any] = {"target": target, "truth_m": truth.tolist(), "fused": False}
            if item["estimates"]:
                errs = [float(np.linalg.norm(np.asarray(e["position_m"][:2]) - truth[:2])) for e in item["estimates"]]
                best = int(np.argmin(errs))
                est = item["estimates"][best]
                if errs[best] <= 3.0 * cfg.fusion.gate_m:
                    row.update(fused=True, position_m=est["position_m"], nodes=est["nodes"],
                               position_error_m=errs[best],
                               crb_position_m=float(np.sqrt(np.trace(np.asarray(est["cov_position_m2"])))),
                               single_error_m={n: float(np.linalg.norm(np.asarray(xy) - truth[:2]))
                                               for n, xy in est.get("single_m", {}).items()})
                    row.update({k: est[k] for k in ("mode", "case", "ris") if k in est})
                    if "velocity_mps" in est and target in velocities:
                        row["velocity_error_mps"] = float(np.linalg.norm(np.asarray(est["velocity_mps"][:2])
                                                                         - velocities[target]))
                        row["crb_velocity_mps"] = float(np.sqrt(np.trace(np.asarray(est["cov_velocity_mps2"]))))
            rows.append(row)
        unmatched = [e["position_m"] for e in item["estimates"]
                     if not any(float(np.linalg.norm(np.asarray(e["position_m"][:2]) - truth[:2]))
                                <= 3.0 * cfg.fusion.gate_m for truth in targets.values())]
        sets.append({"seq": item["seq"], "t0_s": item["t0_s"], "nodes": item["nodes"], "targets": rows,
                     "estimates": [e["position_m"] for e in item["estimates"]], "unmatched": unmatched})
    fused_rows = [r for s in sets for r in s["targets"] if r["fused"]]
    return {"sets": len(sets), "target_height_m": cfg.fusion.target_height_m,
            "max_position_error_over_crb": max((r["position_error_m"] / r["crb_position_m"] for r in fused_rows),
                                               default=None),
            "unmatched_estimates": sum(len(s["unmatched"]) for s in sets),
            "per_set": sets}


def run_stream_demo(config_path: str | Path, out_dir: str | Path, frames: int, timeout_s: float = 120.0,
                    nodes: list[str] | None = None, record: bool = False) -> dict[str, Any]:
    """Start the host and the node processes, wait for them, and return the host's outputs.

    Raises
    ------
    SdrIsacError
        A process failed or did not finish within ``timeout_s``.
    """
    if frames < 1:
        raise SdrIsacError(f"frames = {frames}: the demo needs at least 1 frame per node")
    cfg = config_mod.load(config_path)
    if cfg.scene is None:
        raise SdrIsacError(f"{config_path}: the streaming demo needs a [scene] with simulated nodes")
    node_ids = nodes or [n.id for n in cfg.scene.nodes if n.transmits]
    port, publish_port = free_ports(2)
    endpoint, publish = f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{publish_port}"
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "sdr_isac"]
    host = subprocess.Popen(base + ["host", "--config", str(Path(config_path).resolve()), "--endpoint", endpoint,
                                    "--publish", publish, "--nodes", ",".join(node_ids), "--timeout", str(timeout_s),
                                    "--out", str(out)] + (["--record", str(out / "recordings")] if record else []),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=out, env=_env())
    procs: list[subprocess.Popen[str]] = []
    try:
        _read_line(host, "host:", "the host process")
        procs = [subprocess.Popen(base + ["node", "--config", str(config_path), "--node-id", node_id, "--endpoint",
                                          endpoint, "--frames", str(frames)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for node_id in node_ids]
        deadline = time.monotonic() + timeout_s
        node_stats = {}
        for node_id, proc in zip(node_ids, procs):
            stdout, stderr = proc.communicate(timeout=max(deadline - time.monotonic(), 1.0))
            if proc.returncode != 0:
                raise SdrIsacError(f"node {node_id} failed (exit {proc.returncode}): {stderr.strip()[-500:]}")
            node_stats[node_id] = json.loads(stdout.strip().splitlines()[-1])
        _, host_err = host.communicate(timeout=max(deadline - time.monotonic(), 1.0))
        if host.returncode != 0:
            raise SdrIsacError(f"the host failed (exit {host.returncode}): {host_err.strip()[-500:]}")
    except subprocess.TimeoutExpired as err:
        which = err.cmd[3] if len(err.cmd) > 3 else err.cmd
        raise SdrIsacError(f"the demo did not finish within {timeout_s:g} s ({which}); give fewer frames or a "
                           "longer timeout") from err
    finally:
        _stop([*procs, host])
    stats = json.loads((out / "stream_stats.json").read_text())
    summaries = {n: json.loads((out / n / "summary.json").read_text()) for n in node_ids if (out / n).exists()}
    fused = json.loads((out / "fused.json").read_text()) if (out / "fused.json").exists() else None
    tracks = json.loads((out / "tracks.json").read_text()) if (out / "tracks.json").exists() else None
    return {"stream": stats, "node_stats": node_stats, "nodes": summaries, "fused": fused, "tracks": tracks}


# ---- the urban demo: nodes -> one MECS host per operator -> one core host --------------------------------------

#: MECS host ids are ``mecs_<operator>``; the core's id
CORE_ID = "core"
#: The urban demo's sensing: no sub-cell refinement but for echoes 25 dB above the threshold (see
#: ``sensing.refine``) and at most 8 detections per capture, within the grid (its diagonal is 640 m), so that
#: seven nodes run live on a laptop; ``sdr-isac experiment continuity`` is where accuracy is measured
URBAN_SENSING = "[sensing]\nrefine = false\nmax_detections = 8\nmax_range_m = 700.0\n"
#: The urban demo's default frames per node and their spacing in scene time, s: the traffic (12 m/s) moves
#: 12 m between frames, car2 leaves operator a's streets (bs_a0 and bs_a1 lose sight of it at t = 1 s) while
#: operator b's stations keep it, so the core hands its global track from mecs_a over to mecs_b
URBAN_FRAMES = 5
URBAN_FRAME_INTERVAL_S = 1.0


def _mecs_id(operator: str) -> str:
    return f"mecs_{operator or 'default'}"


def _with_key(text: str, section: str, key: str, value: str) -> str:
    """``text`` with ``key = value`` in its ``[section]`` (added after the header, or as a new section), unless
    the text sets ``key`` itself."""
    if re.search(rf"^\s*{key}\s*=", text, re.M):
        return text
    header = re.search(rf"^\[{section}\][ \t]*(#.*)?$", text, re.M)
    return text[:header.end()] + f"\n{key} = {value}" + text[header.end():] if header else \
        text + f"\n[{section}]\n{key} = {value}\n"


def mecs_config_text(text: str, mecs: str, num_nodes: int, pull: str, pub: str,
                     frame_interval_s: float = 0.0) -> str:
    """The configuration of MECS host ``mecs`` serving ``num_nodes`` nodes: the scene's ``text`` with its host id,
    endpoints and twin; a host of one node (the Wi-Fi access point's) keeps single-node fixes
    (``fusion.min_nodes = 1``: range and array angle) unless the text sets ``min_nodes`` itself; with
    ``frame_interval_s`` > 0 its simulated nodes capture a frame every ``frame_interval_s`` of scene time
    (``radio.frame_interval_s``) unless the text sets it itself."""
    if num_nodes == 1:
        text = _with_key(text, "fusion", "min_nodes", "1")
    if frame_interval_s > 0:
        text = _with_key(text, "radio", "frame_interval_s", repr(float(frame_interval_s)))
    return (text + f'\n[host]\nnode_id = "{mecs}"\n\n[stream]\nhost_endpoint = "{pull}"\n'
            f'publish_endpoint = "{pub}"\nheartbeat_s = 0.2\n\n[twin]\nenabled = true\ndb = "twin.sqlite"\n')


def _read_line(proc: subprocess.Popen[str], prefix: str, what: str, timeout_s: float = 60.0) -> None:
    """Wait up to ``timeout_s`` for a started process's first line (``host: ...``, ``core: ...``): it is listening."""
    line = ""
    if proc.stdout is not None:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if sel.select(timeout_s):
                line = proc.stdout.readline()
            else:
                line = f"(no line in {timeout_s:g} s)"
    if not line.startswith(prefix):
        _stop([proc], 1.0)
        detail = proc.stderr.read() if proc.stderr else ""
        raise SdrIsacError(f"{what} did not start: {line.strip()} {detail.strip()[-500:]}")


def _stop(procs: list[subprocess.Popen[str]], grace_s: float = 5.0) -> None:
    """End the processes this demo started, by their pid: SIGTERM, then SIGKILL after ``grace_s``."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def urban_plan(cfg: config_mod.Config, nodes: list[str] | None = None) -> dict[str, list[str]]:
    """MECS host id -> the transmitting nodes it serves: one MECS host per operator of the scene, in the
    scene's order (``nodes`` keeps only those)."""
    if cfg.scene is None:
        raise SdrIsacError("the urban demo needs a [scene] with simulated nodes")
    plan: dict[str, list[str]] = {}
    for node in cfg.scene.nodes:
        if node.transmits and (nodes is None or node.id in nodes):
            plan.setdefault(_mecs_id(node.operator), []).append(node.id)
    if not plan:
        raise SdrIsacError(f"nodes = {nodes}: none is a transmitting node of the scene; give ids of "
                           f"{', '.join(n.id for n in cfg.scene.nodes)}")
    return plan


def run_urban_demo(out_dir: str | Path, frames: int = URBAN_FRAMES, timeout_s: float = 120.0,
                   nodes: list[str] | None = None, config_text: str | None = None,
                   frame_interval_s: float = URBAN_FRAME_INTERVAL_S) -> dict[str, Any]:
    """Run the urban scene as processes on loopback: nodes -> one MECS host per operator -> one core host.

    Every node of the built-in urban scene (``sdr_isac/urban.toml``, or ``config_text``) streams its
    captures to the MECS host of its operator (``mecs_<operator>``: a fusion host with its own endpoints,
    ``[host] node_id``, tracking, and a twin in its folder); the core host (``sdr-isac core``) subscribes
    to every MECS host's ``tracks/`` and fuses them.  Written under ``out_dir``: ``<mecs id>/`` (the MECS
    host's configuration, ``stream_stats.json``, ``fused.json``, ``tracks.json``, ``twin.sqlite``, per node
    ``<node>/summary.json``) and ``core/`` (its configuration, ``core_stats.json``, ``tracks.json``).
    Every process started is ended by its pid, also on an error.

    Parameters
    ----------
    out_dir : str or Path
    frames : int
        Frames per node, >= 1 (default :data:`URBAN_FRAMES`).
    timeout_s : float
        The whole run's limit, s.
    nodes : list of str, optional
        Run only these nodes (default: every transmitting node of the scene).
    config_text : str, optional
        A TOML configuration with a scene of nodes with operators, without ``[host]``, ``[stream]``,
        ``[twin]`` and ``[core]`` sections (default: the built-in urban scene).
    frame_interval_s : float
        Scene time between a node's frames, s (``radio.frame_interval_s``, rounded to whole frames; the
        targets move between frames): 0 captures back to back (the frames then span milliseconds, in
        which nothing leaves any station's coverage), 0 ... 3600 s (default
        :data:`URBAN_FRAME_INTERVAL_S`).  A ``config_text`` that sets ``frame_interval_s`` keeps its own.

    Returns
    -------
    dict
        ``mecs``: MECS id -> {nodes, stream (its stream_stats.json), tracks (its tracks.json)}; ``core``:
        the core's ``core_stats.json``; ``tracks``: its ``tracks.json``; ``handovers``: every handover of
        the run (also written to ``handovers.json``): ``where`` (the MECS id, or ``core``), ``track_id`` (a
        MECS track's id, or the global track's), ``t_s``, ``from``, ``to``, ``reason``; ``pids``: of every
        process it started (all ended).

    Raises
    ------
    SdrIsacError
        A process failed or did not finish within ``timeout_s``.
    """
    from importlib import resources

    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise SdrIsacError(f"frames = {frames!r}: the urban demo needs at least 1 frame per node")
    if isinstance(frame_interval_s, bool) or not isinstance(frame_interval_s, int | float) \
            or not 0.0 <= frame_interval_s <= 3600.0:
        raise SdrIsacError(f"frame_interval_s = {frame_interval_s!r} s: allowed 0 (back to back) ... 3600 s of "
                           "scene time between a node's frames")
    text = config_text if config_text is not None else \
        resources.files("sdr_isac").joinpath("urban.toml").read_text(encoding="utf-8") + "\n" + URBAN_SENSING
    plan = urban_plan(config_mod.loads(text, "urban scene"), nodes)
    out = Path(out_dir).resolve()
    ports = iter(free_ports(2 * len(plan) + 1))
    base = [sys.executable, "-m", "sdr_isac"]
    procs: list[subprocess.Popen[str]] = []
    endpoints: dict[str, str] = {}
    configs: dict[str, Path] = {}
    for mecs in plan:
        folder = out / mecs
        folder.mkdir(parents=True, exist_ok=True)
        pull, pub = f"tcp://127.0.0.1:{next(ports)}", f"tcp://127.0.0.1:{next(ports)}"
        endpoints[mecs] = pub
        configs[mecs] = folder / "config.toml"
        configs[mecs].write_text(mecs_config_text(text, mecs, len(plan[mecs]), pull, pub, frame_interval_s),
                                 encoding="utf-8")
        config_mod.load(configs[mecs])                   # a clear error here, not in a child process
    core_dir = out / CORE_ID
    core_dir.mkdir(parents=True, exist_ok=True)
    core_cfg = core_dir / "config.toml"
    core_cfg.write_text(
        f'name = "urban-core"\n[core]\nmecs_endpoints = {json.dumps(list(endpoints.values()))}\n'
        f'mecs_ids = {json.dumps(list(endpoints))}\npublish_endpoint = "tcp://127.0.0.1:{next(ports)}"\n'
        f'node_id = "{CORE_ID}"\nabsent_after_s = {max(timeout_s, 10.0):g}\npublish_interval_s = 0.05\n'
        # the MECS hosts run faster than the scene's clock, one ahead of another by seconds of scene time: the core
        # waits for the slowest (on the data clock) as long as the configuration allows
        f'reorder_s = {min(max(frames * frame_interval_s, 1.0), 60.0):g}\n'
        'stats_interval_s = 0.5\n', encoding="utf-8")
    deadline = time.monotonic() + timeout_s
    try:
        core = subprocess.Popen(base + ["core", "--config", str(core_cfg), "--out", str(core_dir), "--timeout",
                                        str(timeout_s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=core_dir, env=_env())
        procs.append(core)
        _read_line(core, "core", "the core host")
        hosts = {}
        for mecs, ids in plan.items():
            hosts[mecs] = subprocess.Popen(
                base + ["host", "--config", str(configs[mecs]), "--nodes", ",".join(ids), "--timeout",
                        str(timeout_s), "--out", str(out / mecs)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=out / mecs, env=_env())
            procs.append(hosts[mecs])
        for mecs, proc in hosts.items():
            _read_line(proc, "host:", f"the MECS host {mecs}")
        time.sleep(0.3)                                   # the core's subscriptions reach the MECS hosts first
        node_procs = {node_id: subprocess.Popen(base + ["node", "--config", str(configs[mecs]), "--node-id",
                                                        node_id, "--frames", str(frames)],
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                      for mecs, ids in plan.items() for node_id in ids}
        procs += list(node_procs.values())
        for node_id, proc in node_procs.items():
            _, err = proc.communicate(timeout=max(deadline - time.monotonic(), 1.0))
            if proc.returncode != 0:
                raise SdrIsacError(f"node {node_id} failed (exit {proc.returncode}): {err.strip()[-500:]}")
        for mecs, proc in hosts.items():
            _, err = proc.communicate(timeout=max(deadline - time.monotonic(), 1.0))
            if proc.returncode != 0:
                raise SdrIsacError(f"the MECS host {mecs} failed (exit {proc.returncode}): {err.strip()[-500:]}")
        time.sleep(0.5)                                   # the core takes the MECS hosts' last track sets
        core.terminate()
        _, err = core.communicate(timeout=max(deadline - time.monotonic(), 5.0))
        if core.returncode != 0:
            raise SdrIsacError(f"the core host failed (exit {core.returncode}): {err.strip()[-500:]}")
    except subprocess.TimeoutExpired as err:
        raise SdrIsacError(f"the urban demo did not finish within {timeout_s:g} s; give fewer frames (--frames) or "
                           "a longer timeout") from err
    finally:
        _stop(procs)

    def read(path: Path) -> Any:
        return json.loads(path.read_text()) if path.exists() else None

    mecs_out = {m: {"nodes": ids, "stream": read(out / m / "stream_stats.json"),
                    "tracks": read(out / m / "tracks.json")} for m, ids in plan.items()}
    core_tracks = read(core_dir / "tracks.json")
    handovers = urban_handovers(mecs_out, core_tracks)
    write_json(out / "handovers.json", {"handovers": handovers})
    return {"mecs": mecs_out, "core": read(core_dir / "core_stats.json"), "tracks": core_tracks,
            "handovers": handovers, "pids": [p.pid for p in procs]}


def urban_handovers(mecs: dict[str, Any], core_tracks: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every handover of an urban run in time order: the MECS hosts' (between their stations, from their
    ``tracks.json``) and the core's own (between MECS hosts: a global track whose longest-standing member
    left, reason ``owner_left``, at the time of that member's last state the core fused; the members'
    handovers it carries are the MECS hosts')."""
    out = [{"where": m, **h} for m, item in mecs.items() for h in ((item.get("tracks") or {}).get("handovers") or [])]
    for track in (core_tracks or {}).get("tracks", []):
        for h in track.get("handovers") or []:
            if h.get("reason") == "owner_left":
                out.append({"where": CORE_ID, "track_id": track["id"], **h})
    return sorted(out, key=lambda h: (h["t_s"], h["where"], h["track_id"]))
