"""Evaluation against the ground truth of simulated data, and the sensing metrics of the article's §II-B.

- :func:`match_targets`: one node's detections beside the truth paths of a simulated capture;
- accuracy: :func:`rmse`, :func:`nmse`;
- continuity: :func:`sensing_continuity` (the fraction of n continuous instants with an accurate estimate);
- detection accuracy: :func:`detection_rates` (P_d, P_fa against the truth), :func:`detection_probability`
  (the square-law detector's theoretical P_d), :func:`roc_curve` (the project's CFAR on simulated maps);
- sensing area: :func:`detection_probability_map` (P_d over a grid from the link budget),
  :func:`sensing_area` (the area with P_d >= 0.9) and :func:`plot_coverage_map` (the one function here that
  writes a file: a PNG through the atomic writer, matplotlib imported lazily).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import integrate, stats

from sdr_isac.config import SensingConfig
from sdr_isac.errors import InputError
from sdr_isac.fusion.coverage import LinkBudget, echo_snr_db
from sdr_isac.sensing import Detection
from sdr_isac.sensing.cfar import ca_multiplier
from sdr_isac.sensing.pipeline import cfar_detector
from sdr_isac.sensing.rdmap import range_doppler_map

__all__ = ["match_targets", "sensing_continuity", "rmse", "nmse", "DetectionRates", "detection_rates",
           "detection_probability", "RocCurve", "roc_curve", "detection_probability_map", "sensing_area",
           "plot_coverage_map"]


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


# ============================================================================ §II-B metrics
# The article's sensing metrics (§II-B): accuracy (RMSE, NMSE), continuity, detection accuracy (P_d, P_fa,
# ROC) and the sensing area.

def _finite_number(name: str, value: object, unit: str, *, positive: bool = False, low: float | None = None,
                   high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise InputError(f"{name} = {value!r} {unit}: allowed a finite number; pass e.g. {name}=1.0")
    v = float(value)
    if positive and not v > 0:
        raise InputError(f"{name} = {v!r} {unit}: allowed a number > 0")
    if (low is not None and v < low) or (high is not None and v > high):
        raise InputError(f"{name} = {v!r} {unit}: allowed {low} ... {high}")
    return v


def _real_array(name: str, value: ArrayLike, *, allow_complex: bool = False) -> NDArray[Any]:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} = {value!r}: allowed an array of numbers") from err
    kinds = "biufc" if allow_complex else "biuf"
    if arr.dtype.kind not in kinds:
        what = "real or complex" if allow_complex else "real"
        raise InputError(f"{name} has dtype {arr.dtype}: allowed an array of {what} numbers (NaN for a missing "
                         "value)")
    return arr.astype(np.complex128 if arr.dtype.kind == "c" else np.float64, copy=False)


def sensing_continuity(errors_m: ArrayLike, threshold_m: float) -> float | NDArray[np.float64]:
    """Sensing continuity (article §II-B): the fraction of n continuous time instants with an accurate estimate.

    "When detecting the target in n continuous time instants, the fraction of the time instants with sensing
    accuracy higher than a threshold to n": an instant counts as a success when its Euclidean position error
    is at most ``threshold_m``.  An instant without an estimate (error NaN, or +inf) counts as a failure, so
    a missed detection lowers the continuity exactly as a gross error does.

    Parameters
    ----------
    errors_m : array_like of float, shape (..., n)
        Euclidean position errors ``||p_hat(t_i) - p(t_i)||``, m, >= 0 or NaN (no estimate at that instant),
        of n >= 1 consecutive instants along the last axis; leading axes are tracks, trials, ...
    threshold_m : float
        Accuracy threshold, m, finite and >= 0.

    Returns
    -------
    float or ndarray of float64, shape (...)
        The fraction in [0, 1]: a float for 1-D ``errors_m``, else one value per leading index.

    Raises
    ------
    InputError
        Negative errors, no instants (n = 0), a 0-d array, non-numeric input or a bad threshold.

    Examples
    --------
    >>> sensing_continuity([0.2, 0.4, float("nan"), 1.5], threshold_m=0.5)
    0.5
    """
    threshold = _finite_number("threshold_m", threshold_m, "m", low=0.0, high=math.inf)
    e = _real_array("errors_m", errors_m)
    if e.ndim == 0 or e.shape[-1] == 0:
        raise InputError(f"errors_m has shape {e.shape}: allowed shape (..., n) with n >= 1 time instants")
    if np.any(e < 0):                                   # NaN compares False: missing instants pass this check
        raise InputError(f"errors_m holds {float(e[e < 0][0])!r} m: allowed Euclidean errors >= 0 (NaN for an "
                         "instant without an estimate); pass the norm of the position error")
    with np.errstate(invalid="ignore"):
        ok = e <= threshold                             # NaN -> False: a failure
    frac = np.mean(ok, axis=-1)
    return float(frac) if frac.ndim == 0 else np.asarray(frac, dtype=np.float64)


def rmse(errors: ArrayLike | Iterable[float], axis: int | tuple[int, ...] | None = None,
         skip_nan: bool = False) -> float | NDArray[np.float64]:
    """Root-mean-square error ``sqrt(mean(|e|**2))`` over ``axis`` (all elements by default).

    Parameters
    ----------
    errors : array_like of float or complex, any shape, or an iterator of numbers
        Scalar errors (for position errors pass their Euclidean norms).  NaN marks a trial without an
        estimate.
    axis : int or tuple of int, optional
        Axes to average over; None: all.
    skip_nan : bool
        False (default): a NaN makes the result NaN (a missed estimate is not hidden).  True: NaN errors are
        left out (count them separately, e.g. as missed detections); an all-NaN slice gives NaN.

    Returns
    -------
    float or ndarray of float64
        The RMSE, in the unit of ``errors``; NaN for an empty set.
    """
    values: Any = list(errors) if isinstance(errors, Iterator) else errors   # a generator (the experiments' summaries)
    e = _real_array("errors", values, allow_complex=True)
    a = np.abs(e)
    scale = _scale(a)                                            # no overflow of the squares of huge errors
    sq = (a / scale) ** 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)          # empty or all-NaN slices -> NaN
        mean = np.nanmean(sq, axis=axis) if skip_nan else np.mean(sq, axis=axis)
    out = scale * np.sqrt(mean)
    return float(out) if np.ndim(out) == 0 else np.asarray(out, dtype=np.float64)


def _scale(magnitudes: NDArray[np.float64]) -> float:
    """The largest finite magnitude (1 when there is none or it is 0): divides before squaring."""
    finite = magnitudes[np.isfinite(magnitudes)]
    peak = float(finite.max()) if finite.size else 0.0
    return peak if peak > 0 else 1.0


def nmse(estimates: ArrayLike, truth: ArrayLike, axis: int | tuple[int, ...] | None = None,
         skip_nan: bool = False) -> float | NDArray[np.float64]:
    """Normalised mean-square error ``sum |x_hat - x|**2 / sum |x|**2`` over ``axis`` (linear, not dB).

    Parameters
    ----------
    estimates, truth : array_like of float or complex, broadcastable shapes
        Estimates (NaN: no estimate) and the true values.
    axis : int or tuple of int, optional
        Axes to sum over; None: all.
    skip_nan : bool
        False: a NaN estimate makes the result NaN.  True: elements whose estimate is NaN are left out of
        both sums.

    Returns
    -------
    float or ndarray of float64
        The NMSE (0 for a perfect estimate; 1 for estimating 0); NaN where every element was left out.

    Raises
    ------
    InputError
        The truth has zero energy over a slice (the NMSE is undefined there), or the shapes do not broadcast.
    """
    x_hat = _real_array("estimates", estimates, allow_complex=True)
    x = _real_array("truth", truth, allow_complex=True)
    if not np.all(np.isfinite(x)):
        raise InputError("truth holds NaN or inf: allowed finite true values")
    try:
        x_hat, x = np.broadcast_arrays(x_hat, x)
    except ValueError as err:
        raise InputError(f"estimates has shape {x_hat.shape}, truth {x.shape}: allowed broadcastable shapes") \
            from err
    scale = max(_scale(np.abs(x_hat)), _scale(np.abs(x)))        # no overflow of the squares
    err2 = np.abs(x_hat / scale - x / scale) ** 2
    energy = np.abs(x / scale) ** 2
    if skip_nan:
        keep = ~np.isnan(err2)
        err2, energy = np.where(keep, err2, 0.0), np.where(keep, energy, 0.0)
        kept = np.sum(keep, axis=axis)
    num, den = np.sum(err2, axis=axis), np.sum(energy, axis=axis)
    if skip_nan:
        num = np.where(kept > 0, num, np.nan)
        den = np.where(kept > 0, den, np.nan)
    if np.any(den == 0):
        raise InputError("truth has zero energy over a slice: the NMSE (error energy over true energy) is "
                         "undefined there; use rmse() for values that are 0")
    out = num / den
    return float(out) if np.ndim(out) == 0 else np.asarray(out, dtype=np.float64)


# ---------------------------------------------------------------------------- detection accuracy

@dataclass(frozen=True)
class DetectionRates:
    """P_d and P_fa counted over frames (:func:`detection_rates`).

    Attributes
    ----------
    pd : float
        Detected targets over targets (NaN without targets).
    pfa : float
        False alarms over the cells tested that hold no target (NaN when none was tested).
    num_targets, num_detected : int
        True targets, and those with at least one detection inside their gate.
    num_detections, num_false : int
        Detections, and those inside no target's gate (false alarms).
    num_cells : int
        Cells tested that hold no target, summed over the frames.
    """

    pd: float
    pfa: float
    num_targets: int
    num_detected: int
    num_detections: int
    num_false: int
    num_cells: int


def _points(name: str, frame: int, value: Any, dim: int | None) -> NDArray[np.float64]:
    items = list(value) if not isinstance(value, np.ndarray) else value
    if len(items) and all(isinstance(d, Detection) for d in items):
        items = [(d.range_m, d.velocity_mps) for d in items]
    arr = _real_array(f"{name}[{frame}]", items)
    if arr.size == 0:
        return np.zeros((0, dim or 0))
    if arr.ndim == 1 and dim is not None and arr.size == dim:
        arr = arr[None, :]
    if arr.ndim != 2 or (dim is not None and arr.shape[1] != dim) or not np.all(np.isfinite(arr)):
        raise InputError(f"{name}[{frame}] has shape {arr.shape}: allowed finite points of shape (n, d) with "
                         f"the same d (coordinates) as the gate ({dim})")
    return arr


def detection_rates(detections: Sequence[Any], truth: Sequence[Any], gate: float | ArrayLike,
                    num_cells: int | Sequence[int]) -> DetectionRates:
    """P_d and P_fa of detections against the truth, frame by frame (article §II-B, detection accuracy).

    In each frame a target is detected when a detection lies inside its gate, ``sqrt(sum(((x - y) /
    gate)**2)) <= 1`` (one detection may serve two close targets); a detection inside no target's gate is a
    false alarm.  ``P_d = detected / targets``; ``P_fa = false alarms / num_cells``, the cells tested that
    hold no target.

    Parameters
    ----------
    detections : sequence of array_like, one per frame
        Each shape (n_det, d): points in the coordinates of the gate, e.g. (range_m, velocity_mps) or
        (range bin, Doppler bin); a list of :class:`~sdr_isac.sensing.Detection` is taken as its
        (range_m, velocity_mps).
    truth : sequence of array_like, one per frame
        Each shape (n_tgt, d): the true targets, same coordinates.
    gate : float or array_like, shape (d,)
        Gate half-width per coordinate (> 0, finite), in its unit (m, m/s, cells).
    num_cells : int or sequence of int
        Cells tested per frame that hold no target (the CFAR-tested cells outside the targets' gates), >= 0;
        one value for every frame or one per frame.

    Returns
    -------
    DetectionRates

    Examples
    --------
    >>> r = detection_rates([[[10.0, 1.0], [30.0, 0.0]]], [[[10.2, 1.1]]], gate=[0.5, 0.5], num_cells=1000)
    >>> r.pd, r.pfa
    (1.0, 0.001)
    """
    if isinstance(detections, np.ndarray | str) or isinstance(truth, np.ndarray | str) \
            or not isinstance(detections, Sequence) or not isinstance(truth, Sequence):
        raise InputError("detections and truth: allowed sequences (one entry per frame) of point arrays")
    if len(detections) != len(truth):
        raise InputError(f"detections has {len(detections)} frames, truth {len(truth)}: allowed one entry per "
                         "frame in both")
    g = _real_array("gate", gate).reshape(-1)
    if g.size == 0 or not np.all(np.isfinite(g) & (g > 0)):
        raise InputError(f"gate = {gate!r}: allowed finite half-widths > 0 (one, or one per coordinate)")
    cells = np.broadcast_to(np.asarray(num_cells), (len(truth),)) if np.ndim(num_cells) == 0 \
        else np.asarray(num_cells)
    if cells.shape != (len(truth),) or cells.dtype.kind not in "iu" or np.any(cells < 0):
        raise InputError(f"num_cells = {num_cells!r}: allowed a whole number >= 0 of tested cells, or one per "
                         f"frame ({len(truth)})")
    dim = g.size if g.size > 1 else None
    targets = detected = dets_total = false = 0
    for f, (dets, tgts) in enumerate(zip(detections, truth)):
        y = _points("truth", f, tgts, dim)
        x = _points("detections", f, dets, dim if dim is not None else (y.shape[1] if y.size else None))
        targets += y.shape[0]
        dets_total += x.shape[0]
        if x.shape[0] == 0:
            continue
        if y.shape[0] == 0:
            false += x.shape[0]
            continue
        if x.shape[1] != y.shape[1]:
            raise InputError(f"detections[{f}] has {x.shape[1]} coordinates, truth[{f}] {y.shape[1]}: allowed "
                             "the same coordinates")
        inside = np.sqrt(np.sum(((x[:, None, :] - y[None, :, :]) / g) ** 2, axis=-1)) <= 1.0     # (n_det, n_tgt)
        detected += int(np.count_nonzero(inside.any(axis=0)))
        false += int(np.count_nonzero(~inside.any(axis=1)))
    total_cells = int(cells.sum())
    return DetectionRates(pd=detected / targets if targets else math.nan,
                          pfa=false / total_cells if total_cells else math.nan, num_targets=targets,
                          num_detected=detected, num_detections=dets_total, num_false=false, num_cells=total_cells)


def detection_probability(snr_db: ArrayLike, pfa: float, num_training: int | None = None) -> NDArray[np.float64]:
    """P_d of a square-law detector for a non-fluctuating (Swerling 0) target in complex Gaussian noise.

    The cell's power over the mean noise power, times 2, is non-central chi-square with 2 degrees of freedom
    and non-centrality ``2 SNR`` (Richards, *Fundamentals of Radar Signal Processing*, 2nd ed., sec. 6.3;
    the Marcum Q function ``Q_1(sqrt(2 SNR), sqrt(2 T))``):

    - known noise (``num_training`` None): threshold ``T = -ln(pfa)``, ``P_d = ncx2.sf(2 T, 2, 2 SNR)``;
    - CA-CFAR with N training cells: threshold ``alpha Z``, Z the mean of N noise cells (Gamma(N, 1/N) in
      units of the noise power), ``alpha = N (pfa**(-1/N) - 1)``; ``P_d = E_Z[ncx2.sf(2 alpha Z, 2, 2 SNR)]``,
      integrated by :func:`scipy.integrate.quad_vec` over all but 2e-15 of Z's distribution.

    Parameters
    ----------
    snr_db : array_like of float, any shape
        SNR of the cell under test (signal power over mean noise power, after the range-Doppler processing
        gain), dB; -inf (no signal) gives P_d = P_fa.
    pfa : float
        False-alarm probability per cell, 0 < pfa < 1.
    num_training : int, optional
        CA-CFAR training cells N >= 1; None: the noise power is known.

    Returns
    -------
    ndarray of float64, shape of ``snr_db``
    """
    pfa = _finite_number("pfa", pfa, "", low=0.0, high=1.0)
    if not 0.0 < pfa < 1.0:
        raise InputError(f"pfa = {pfa!r}: allowed 0 < pfa < 1 (false-alarm probability per cell)")
    snr = 10.0 ** (_real_array("snr_db", snr_db) / 10.0)
    if np.any(np.isnan(snr)):
        raise InputError("snr_db holds NaN: allowed SNRs in dB (-inf for no signal)")
    nc = 2.0 * np.minimum(snr, 1e12)
    if num_training is None:
        return np.asarray(stats.ncx2.sf(-2.0 * math.log(pfa), 2.0, nc), dtype=np.float64)
    if isinstance(num_training, bool) or not isinstance(num_training, numbers.Integral) or num_training < 1:
        raise InputError(f"num_training = {num_training!r}: allowed a whole number >= 1 of CA-CFAR training "
                         "cells, or None for a known noise power")
    n = int(num_training)
    alpha = float(ca_multiplier(pfa, n))
    lo, hi = stats.gamma.ppf([1e-15, 1.0 - 1e-15], n, scale=1.0 / n)     # Z / noise power: all but 2e-15 of it

    def integrand(z: float) -> NDArray[np.float64]:
        return np.asarray(stats.ncx2.sf(2.0 * alpha * z, 2.0, nc) * stats.gamma.pdf(z, n, scale=1.0 / n))

    pd, _ = integrate.quad_vec(integrand, float(lo), float(hi), epsabs=1e-12, epsrel=1e-9)
    return np.asarray(pd, dtype=np.float64)


@dataclass(frozen=True)
class RocCurve:
    """Measured P_d / P_fa pairs of a CFAR detector over a sweep of design P_fa (:func:`roc_curve`).

    Attributes
    ----------
    pfa_design : ndarray of float64, shape (P,)
        The configured false-alarm probabilities.
    pd, pfa : ndarray of float64, shape (P,)
        Measured detection and false-alarm probabilities.
    num_trials : int
        Maps simulated (each holds one target).
    num_detected, num_false, num_cells : ndarray of int64, shape (P,)
        Detected targets, false alarms, and the noise-only tested cells the P_fa counts over.
    snr_db : float
        The target's SNR in its map cell, dB.
    num_training : int
        Training cells of an interior cell of the detector.
    """

    pfa_design: NDArray[np.float64]
    pd: NDArray[np.float64]
    pfa: NDArray[np.float64]
    num_trials: int
    num_detected: NDArray[np.int64]
    num_false: NDArray[np.int64]
    num_cells: NDArray[np.int64]
    snr_db: float
    num_training: int


def roc_curve(snr_db: float, pfa_values: Sequence[float], config: SensingConfig, rng: np.random.Generator, *,
              num_trials: int = 200, num_subcarriers: int = 64, num_symbols: int = 32) -> RocCurve:
    """Run the configured CFAR (``config.cfar``, guard and training cells) on simulated range-Doppler maps.

    Each trial builds a channel matrix H of ``num_symbols x num_subcarriers`` REs (unit-variance complex
    Gaussian noise per RE, every RE a pilot) holding one non-fluctuating target on a bin of the map, turns it
    into a map with :func:`sdr_isac.sensing.rdmap.range_doppler_map` (the config's windows and oversampling)
    and runs the detector of :func:`sdr_isac.sensing.pipeline.cfar_detector` at each design P_fa.  The target's
    amplitude makes its map cell's SNR ``snr_db`` (``|a|**2 coherent_gain**2 / noise_gain``).  P_d counts the
    trials whose target cell was detected; P_fa the detections among the tested cells whose CFAR window
    (guard and training box) does not reach the target, so their noise statistic is noise alone.

    With no window and no oversampling the cells are independent and exponential under noise, as the CFAR
    thresholds assume: the measured P_fa is then the design P_fa, and P_d that of
    :func:`detection_probability` with the detector's training cells (CA-CFAR).  The P_d trials are
    independent (binomial); the false-alarm decisions of neighbouring cells share training cells, so their
    count varies more than a binomial one (about 1.7 times the variance for a 7 x 7 window).

    Parameters
    ----------
    snr_db : float
        SNR of the target's map cell, dB (finite).
    pfa_values : sequence of float
        Design false-alarm probabilities, each 0 < pfa < 1.
    config : SensingConfig
        ``cfar``, ``guard_cells``, ``training_cells``, windows and oversampling (its ``pfa`` is not used).
    rng : numpy.random.Generator
        Source of the noise.
    num_trials : int
        Maps, >= 1 (each gives one P_d trial and about ``cells`` P_fa trials).
    num_subcarriers, num_symbols : int
        Size of H, >= 2 each; the map must hold the CFAR window.

    Returns
    -------
    RocCurve
    """
    snr = _finite_number("snr_db", snr_db, "dB")
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"rng = {rng!r}: allowed a numpy.random.Generator; pass np.random.default_rng(seed)")
    for name, value, low in (("num_trials", num_trials, 1), ("num_subcarriers", num_subcarriers, 2),
                             ("num_symbols", num_symbols, 2)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise InputError(f"{name} = {value!r}: allowed a whole number >= {low}")
    pfas = [float(p) for p in pfa_values]
    if not pfas or not all(0.0 < p < 1.0 for p in pfas):
        raise InputError(f"pfa_values = {pfa_values!r}: allowed one or more probabilities 0 < pfa < 1")
    guard = (int(config.guard_cells[0]), int(config.guard_cells[1]))
    train = (int(config.training_cells[0]), int(config.training_cells[1]))
    k, s = int(num_subcarriers), int(num_symbols)
    mask = np.ones((s, k), dtype=bool)
    spacing_hz, symbol_s = 120e3, 1.0 / 120e3
    n_range, n_doppler = config.map_shape(k, s)
    # the pipeline's detectors (correlation-aware, built once per design and kept across calls)
    detectors = [cfar_detector(dataclasses.replace(config, pfa=p), mask=mask, map_shape=(n_range, n_doppler))
                 for p in pfas]
    r0, d0 = n_range // 4, n_doppler // 2 + n_doppler // 4           # target bins, clear of the range edges
    tau = r0 / (n_range * spacing_hz)
    f_d = (d0 - n_doppler // 2) / (n_doppler * symbol_s)
    steering = np.exp(-2j * np.pi * np.arange(k) * spacing_hz * tau)[None, :] \
        * np.exp(2j * np.pi * f_d * np.arange(s) * symbol_s)[:, None]                        # (S, K)
    hr, hd = guard[0] + train[0], guard[1] + train[1]
    near = np.zeros((n_range, n_doppler), dtype=bool)
    near[max(r0 - hr, 0): r0 + hr + 1, :] = True
    near &= np.isin(np.arange(n_doppler), (d0 + np.arange(-hd, hd + 1)) % n_doppler)[None, :]
    amplitude = None
    detected = np.zeros(len(pfas), dtype=np.int64)
    false = np.zeros(len(pfas), dtype=np.int64)
    cells = np.zeros(len(pfas), dtype=np.int64)
    for _ in range(int(num_trials)):
        noise = (rng.standard_normal((s, k)) + 1j * rng.standard_normal((s, k))) * math.sqrt(0.5)
        if amplitude is None:
            gains = range_doppler_map(np.zeros((1, s, k), np.complex64), mask, spacing_hz, symbol_s, 24e9, config)
            amplitude = math.sqrt(10.0 ** (snr / 10.0) * gains.noise_gain) / gains.coherent_gain
        h = (amplitude * steering + noise).astype(np.complex64)[None]
        power = range_doppler_map(h, mask, spacing_hz, symbol_s, 24e9, config).power
        for i, detector in enumerate(detectors):
            result = detector.detect(power)
            clear = np.isfinite(result.threshold) & ~near
            rates = detection_rates([np.argwhere(result.mask & (clear | _cell(near.shape, r0, d0)))],
                                    [np.array([[r0, d0]])], gate=0.5, num_cells=int(np.count_nonzero(clear)))
            detected[i] += rates.num_detected
            false[i] += rates.num_false
            cells[i] += rates.num_cells
    return RocCurve(pfa_design=np.array(pfas), pd=detected / int(num_trials), pfa=false / cells,
                    num_trials=int(num_trials), num_detected=detected, num_false=false, num_cells=cells,
                    snr_db=snr, num_training=detectors[0].num_training_full)


def _cell(shape: tuple[int, int], r: int, d: int) -> NDArray[np.bool_]:
    out = np.zeros(shape, dtype=bool)
    out[r, d] = True
    return out


# ---------------------------------------------------------------------------- sensing area

def _axis(name: str, value: ArrayLike) -> tuple[NDArray[np.float64], float]:
    a = _real_array(name, value).reshape(-1) if np.ndim(value) <= 1 else None
    if a is None or a.size < 2 or not np.all(np.isfinite(a)):
        raise InputError(f"{name}: allowed a 1-D grid axis of at least 2 finite coordinates, m")
    step = np.diff(a)
    if not (np.all(step > 0) and np.allclose(step, step[0], rtol=1e-6, atol=0.0)):
        raise InputError(f"{name}: allowed a uniform, increasing grid axis, m (use numpy.linspace)")
    return a, float(step[0])


def detection_probability_map(budget: LinkBudget, nodes_m: ArrayLike, x_m: ArrayLike, y_m: ArrayLike,
                              rcs_m2: float, num_symbols: int, pfa: float, *, num_training: int | None = None,
                              target_height_m: float = 0.0, num_subcarriers: int | None = None) -> NDArray[np.float64]:
    """P_d of a target at each point of an (x, y) grid, seen monostatically by any of the nodes.

    Each node's echo SNR at distance R is the link budget's per-RE SNR at 1 m less ``40 log10(R / 1 m)``
    (free space, :mod:`sdr_isac.fusion.coverage`) plus the ``10 log10(N M)`` processing gain of the map, the
    same model as :func:`~sdr_isac.fusion.coverage.sensing_radius_m`; its P_d is
    :func:`detection_probability` at that SNR.  The nodes look independently and a detection by any of them
    counts: ``P_d = 1 - prod_i (1 - P_d,i)``.

    Parameters
    ----------
    budget : LinkBudget
        Every node's transmitter and receiver.
    nodes_m : array_like, shape (n, 3) or (n, 2)
        Node positions, m (2-D: at height 0).
    x_m, y_m : array_like, shape (nx,) and (ny,)
        Uniform grid axes, m.
    rcs_m2 : float
        Target RCS, m² (> 0).
    num_symbols : int
        Pilot symbols M per frame (>= 1).
    pfa : float
        False-alarm probability per cell.
    num_training : int, optional
        CA-CFAR training cells (None: known noise power).
    target_height_m : float
        Height of the target plane, m.
    num_subcarriers : int, optional
        Pilot subcarriers N (default the budget's used subcarriers).

    Returns
    -------
    ndarray of float64, shape (ny, nx)
        P_d at ``(x_m[j], y_m[i])`` in row i, column j.
    """
    rcs = _finite_number("rcs_m2", rcs_m2, "m²", positive=True)
    height = _finite_number("target_height_m", target_height_m, "m")
    if isinstance(num_symbols, bool) or not isinstance(num_symbols, numbers.Integral) or num_symbols < 1:
        raise InputError(f"num_symbols = {num_symbols!r}: allowed a whole number >= 1 of pilot symbols")
    nodes = _real_array("nodes_m", nodes_m)
    if nodes.ndim == 1:
        nodes = nodes[None, :]
    if nodes.ndim != 2 or nodes.shape[0] < 1 or nodes.shape[1] not in (2, 3) or not np.all(np.isfinite(nodes)):
        raise InputError(f"nodes_m has shape {nodes.shape}: allowed finite positions of shape (n, 3) or (n, 2), m")
    if nodes.shape[1] == 2:
        nodes = np.column_stack([nodes, np.zeros(nodes.shape[0])])
    x, _ = _axis("x_m", x_m)
    y, _ = _axis("y_m", y_m)
    n = budget.num_subcarriers if num_subcarriers is None else int(num_subcarriers)
    snr_1m_db = echo_snr_db(budget, rcs, 1.0, 1.0) + 10.0 * math.log10(n * int(num_symbols))
    gx, gy = np.meshgrid(x, y)
    miss = np.ones(gx.shape)
    for node in nodes:
        dist = np.sqrt((gx - node[0]) ** 2 + (gy - node[1]) ** 2 + (height - node[2]) ** 2)
        snr = snr_1m_db - 40.0 * np.log10(np.maximum(dist, 1e-6))
        miss *= 1.0 - _pd_table(snr, pfa, num_training)
    return 1.0 - miss


def _pd_table(snr_db: NDArray[np.float64], pfa: float, num_training: int | None) -> NDArray[np.float64]:
    """:func:`detection_probability` through a table 0.01 dB fine over the SNRs where P_d is not 0 or 1."""
    lo, hi = float(np.min(snr_db)), float(np.max(snr_db))
    lo, hi = max(lo, -40.0), min(max(hi, -40.0), 60.0)
    grid = np.linspace(lo, hi, max(2, int((hi - lo) / 0.01) + 2))
    table = detection_probability(grid, pfa, num_training)
    return np.interp(np.clip(snr_db, lo, hi), grid, table)


def sensing_area(pd_map: ArrayLike, x_m: ArrayLike, y_m: ArrayLike, min_pd: float = 0.9) -> float:
    """Sensing area (article §II-B), m²: the grid area where ``P_d >= min_pd``.

    Parameters
    ----------
    pd_map : array_like of float, shape (ny, nx)
        P_d at ``(x_m[j], y_m[i])`` (:func:`detection_probability_map`), in [0, 1].
    x_m, y_m : array_like, shape (nx,) and (ny,)
        Uniform grid axes, m; each point stands for a cell of ``dx x dy``.
    min_pd : float
        Required detection probability, 0 < min_pd <= 1 (0.9 by default).

    Returns
    -------
    float
        ``count(P_d >= min_pd) dx dy``, m² (resolution: the cells along the boundary).
    """
    threshold = _finite_number("min_pd", min_pd, "")
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"min_pd = {min_pd!r}: allowed a probability 0 < min_pd <= 1")
    _, dx = _axis("x_m", x_m)
    _, dy = _axis("y_m", y_m)
    pd = _real_array("pd_map", pd_map)
    nx, ny = np.size(x_m), np.size(y_m)
    if pd.shape != (ny, nx):
        raise InputError(f"pd_map has shape {pd.shape}: allowed (ny, nx) = ({ny}, {nx}), rows along y_m")
    if not np.all((pd >= 0) & (pd <= 1)):
        raise InputError("pd_map holds values outside [0, 1] or NaN: allowed detection probabilities")
    return float(np.count_nonzero(pd >= threshold) * dx * dy)


def plot_coverage_map(path: str | Path, pd_map: ArrayLike, x_m: ArrayLike, y_m: ArrayLike,
                      nodes_m: ArrayLike | None = None, min_pd: float = 0.9, title: str = "") -> Path:
    """Write a coverage map PNG: P_d over the grid, the ``P_d = min_pd`` contour, the nodes, the area.

    matplotlib (Agg) is imported here only; the file is written atomically
    (:func:`sdr_isac.sensing.plots.save_figure`).

    Parameters
    ----------
    path : str or Path
        The PNG to write (folders are made).
    pd_map, x_m, y_m, min_pd
        As :func:`sensing_area`.
    nodes_m : array_like, shape (n, 2) or (n, 3), optional
        Node positions to mark, m.
    title : str
        Figure title (the area is appended).

    Returns
    -------
    Path
        The written file.
    """
    from sdr_isac.sensing.plots import pyplot, save_figure

    area = sensing_area(pd_map, x_m, y_m, min_pd)
    x, y, pd = np.asarray(x_m, float), np.asarray(y_m, float), np.asarray(pd_map, float)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    mesh = ax.pcolormesh(x, y, pd, vmin=0.0, vmax=1.0, shading="nearest", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="P_d")
    if float(pd.min()) < min_pd <= float(pd.max()):
        ax.contour(x, y, pd, levels=[min_pd], colors="w", linewidths=1.0)
    if nodes_m is not None:
        nodes = np.atleast_2d(np.asarray(nodes_m, float))
        ax.plot(nodes[:, 0], nodes[:, 1], "r^", ms=7, label="nodes")
        ax.legend(loc="upper right")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_aspect("equal")
    ax.set_title(f"{title + ': ' if title else ''}area with P_d >= {min_pd:g}: {area:.4g} m²")
    return save_figure(fig, path)
