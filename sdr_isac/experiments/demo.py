"""The per-node table that ``sdr-isac demo`` prints.

The demo itself runs as separate processes (:mod:`sdr_isac.stream.demo`), which writes the outputs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["table", "urban_table"]


def table(summary: dict[str, Any]) -> str:
    """The per-frame, per-target table that ``sdr-isac demo`` prints."""
    lines = [f"{'frame':>5} {'target':10s} {'R true':>8s} {'R est':>8s} {'dR/crb':>7s} {'v true':>8s} "
             f"{'v est':>8s} {'dv/crb':>7s} {'SNR/RE':>7s} {'angle':>7s}",
             f"{'':5} {'':10s} {'m':>8s} {'m':>8s} {'':>7s} {'m/s':>8s} {'m/s':>8s} {'':>7s} {'dB':>7s} {'deg':>7s}"]
    for f in summary["per_frame"]:
        for t in f["targets"]:
            if not t["detected"]:
                lines.append(f"{f['seq']:5d} {t['target']:10s} {t['truth_range_m']:8.2f} {'missed':>8s}")
                continue
            angle = f"{t['angle_deg']:7.1f}" if "angle_deg" in t else f"{'-':>7s}"
            lines.append(f"{f['seq']:5d} {t['target']:10s} {t['truth_range_m']:8.2f} {t['range_m']:8.2f} "
                         f"{t['range_error_over_crb']:7.2f} {t['truth_velocity_mps']:8.2f} {t['velocity_mps']:8.2f} "
                         f"{t['velocity_error_over_crb']:7.2f} {t['snr_db']:7.1f} {angle}")
    return "\n".join(lines)


def urban_table(result: dict[str, Any]) -> str:
    """The table ``sdr-isac demo --scene urban`` prints: per MECS host its nodes, frames, fused sets, tracks
    and twin rows; then the core's global tracks with the MECS tracks they fuse; then every handover
    (``result["handovers"]``: between a MECS host's stations, or the core's between MECS hosts)."""
    lines = [f"{'host':12s} {'nodes':24s} {'frames':>6s} {'lost':>4s} {'t0 gaps':>7s} {'tracks':>6s} "
             f"{'confirmed':>9s} {'handovers':>9s} {'twin rows':>9s} {'twin drops':>10s}"]
    for mecs, item in result["mecs"].items():
        stream = item.get("stream") or {}
        nodes = stream.get("nodes", {})
        tracking = stream.get("tracking") or {}
        twin = stream.get("twin") or {}
        lines.append(f"{mecs:12s} {','.join(item['nodes']):24s} "
                     f"{sum(n.get('processed', 0) for n in nodes.values()):6d} "
                     f"{sum(n.get('lost', 0) for n in nodes.values()):4d} {stream.get('t0_gaps', 0):7d} "
                     f"{tracking.get('tracks', 0):6d} {tracking.get('confirmed', 0):9d} "
                     f"{tracking.get('handovers', 0):9d} {twin.get('written', 0):9d} {twin.get('dropped', 0):10d}")
    core = result.get("core") or {}
    tracks = (result.get("tracks") or {}).get("tracks", [])
    lines.append(f"core: {core.get('published', 0)} track set(s) published, {len(tracks)} global track(s), "
                 f"{core.get('rejected', 0)} message(s) rejected")
    for t in tracks:
        x, y, z = t["state"][:3]
        members = ", ".join(f"{m}:{local}" for m, local in (t.get("members") or {}).items())
        lines.append(f"  {t['id']:8s} {t['status']:10s} x,y,z = {x:8.1f},{y:8.1f},{z:6.1f} m  from {members}")
    handovers = result.get("handovers") or []
    lines.append(f"handovers: {len(handovers)}" + (" (none: no target left a station's coverage in the frames' "
                                                   "span)" if not handovers else ""))
    for h in handovers:
        lines.append(f"  t = {h['t_s']:7.3f} s  {h['where']:10s} track {h['track_id']:10s} {h['from']} -> {h['to']} "
                     f"({h['reason']})")
    return "\n".join(lines)
