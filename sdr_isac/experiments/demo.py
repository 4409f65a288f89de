"""The per-node table that ``sdr-isac demo`` prints.

The demo itself runs as separate processes (:mod:`sdr_isac.stream.demo`), which writes the outputs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["table"]


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
