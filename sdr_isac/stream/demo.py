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
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from sdr_isac import config as config_mod
from sdr_isac.errors import SdrIsacError
from sdr_isac.fusion.metrics import match_targets
from sdr_isac.recording._atomic import write_json
from sdr_isac.sensing import Detection
from sdr_isac.sensing.plots import plot_range_doppler
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["write_host_outputs", "run_stream_demo", "free_ports"]


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
    return summaries


def fused_summary(host: Any, cfg: config_mod.Config) -> dict[str, Any]:
    """The host's fused estimates beside the truth: per time-aligned set, each truth target with the nearest
    estimate, its position error and the CRB of that estimate (sqrt of the covariance's trace), the velocity
    error (truth from the scene's constant velocities), and each node's own position estimate (range + angle);
    ``estimates``: the position (m) of every estimate of the set, matched to a target or not (what the display
    draws)."""
    velocities = {t.id: np.asarray(t.velocity_mps, dtype=float)[:2] for t in (cfg.scene.targets if cfg.scene else ())}
    sets = []
    for item in list(host.estimates):
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
        sets.append({"seq": item["seq"], "t0_s": item["t0_s"], "nodes": item["nodes"], "targets": rows,
                     "estimates": [e["position_m"] for e in item["estimates"]]})
    fused_rows = [r for s in sets for r in s["targets"] if r["fused"]]
    return {"sets": len(sets), "target_height_m": cfg.fusion.target_height_m,
            "max_position_error_over_crb": max((r["position_error_m"] / r["crb_position_m"] for r in fused_rows),
                                               default=None),
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
    out = Path(out_dir)
    base = [sys.executable, "-m", "sdr_isac"]
    host = subprocess.Popen(base + ["host", "--config", str(config_path), "--endpoint", endpoint, "--publish",
                                    publish, "--nodes", ",".join(node_ids), "--timeout", str(timeout_s),
                                    "--out", str(out)] + (["--record", str(out / "recordings")] if record else []),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs: list[subprocess.Popen[str]] = []
    try:
        ready = host.stdout.readline() if host.stdout else ""
        if not ready.startswith("host:"):
            detail = host.stderr.read() if host.stderr else ""
            raise SdrIsacError(f"the host process did not start: {ready.strip()} {detail.strip()[-500:]}")
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
        for proc in [*procs, host]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stats = json.loads((out / "stream_stats.json").read_text())
    summaries = {n: json.loads((out / n / "summary.json").read_text()) for n in node_ids if (out / n).exists()}
    fused = json.loads((out / "fused.json").read_text()) if (out / "fused.json").exists() else None
    return {"stream": stats, "node_stats": node_stats, "nodes": summaries, "fused": fused}
