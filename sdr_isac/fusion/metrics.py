"""Evaluation against the ground truth of simulated data: detections and estimates beside what was there.

No figures and no files here: the experiments, the demo host outputs and the tests all compare with these.
"""

from __future__ import annotations

import math
from typing import Any

from sdr_isac.sensing import Detection

__all__ = ["match_targets"]


def match_targets(detections: list[Detection], paths: list[dict[str, Any]], range_cell_m: float,
                  velocity_cell_mps: float, max_cells: float = 2.0) -> list[dict[str, Any]]:
    """Pair each monostatic target path of the truth with the nearest detection.

    Distance is measured in resolution cells, sqrt((dR / cell_R)**2 + (dv / cell_v)**2);
    a path with no detection within ``max_cells`` is reported as missed.

    Parameters
    ----------
    detections : list of Detection
        One node's detections of one frame.
    paths : list of dict
        Truth paths (``kind``, ``range_m`` m, ``velocity_mps`` m/s, ``snr_per_re_db`` dB, ``target``); only
        ``kind = "target"`` paths with a ``range_m`` (monostatic) are matched.
    range_cell_m, velocity_cell_mps : float
        Resolution cells, m and m/s, > 0.
    max_cells : float
        Largest distance, in cells, that still counts as detected.

    Returns
    -------
    list of dict
        One per target path: ``target``, truth range/velocity/SNR, and (when
        detected) the estimate, its errors and errors over sqrt(CRB).
    """
    out = []
    for path in paths:
        if path.get("kind") != "target" or "range_m" not in path:
            continue
        best, best_d = None, math.inf
        for det in detections:
            d = math.hypot((det.range_m - path["range_m"]) / range_cell_m,
                           (det.velocity_mps - path["velocity_mps"]) / velocity_cell_mps)
            if d < best_d:
                best, best_d = det, d
        row: dict[str, Any] = {"target": path.get("target", path.get("source")), "truth_range_m": path["range_m"],
                               "truth_velocity_mps": path["velocity_mps"], "truth_snr_db": path["snr_per_re_db"],
                               "detected": best is not None and best_d <= max_cells}
        if row["detected"] and best is not None:
            dr, dv = best.range_m - path["range_m"], best.velocity_mps - path["velocity_mps"]
            row.update({
                "range_m": best.range_m, "velocity_mps": best.velocity_mps, "snr_db": best.snr_db,
                "range_error_m": dr, "velocity_error_mps": dv,
                "range_crb_m": math.sqrt(best.range_var_m2), "velocity_crb_mps": math.sqrt(best.velocity_var_mps2),
                "range_error_over_crb": abs(dr) / math.sqrt(best.range_var_m2),
                "velocity_error_over_crb": abs(dv) / math.sqrt(best.velocity_var_mps2),
            })
            if best.angle_rad is not None:
                row["angle_deg"] = math.degrees(best.angle_rad)
                row["truth_angle_deg"] = path.get("azimuth_deg")
        out.append(row)
    return out
