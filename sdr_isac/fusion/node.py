"""Node-level cooperation: several base stations sensing one target (article §IV).

- :func:`estimate_paths` — the strongest paths of one link's CIM by CLEAN:
  grid peak, off-grid ML refinement, least-squares amplitude, subtraction.
- :func:`bistatic_measurement` — a bistatic link's range sum and range rate
  with the receiver's clock offset and carrier offset removed through the
  direct (line-of-sight) path, whose length the nodes know.
- :func:`locate` — target position from monostatic ranges and bistatic range
  sums by weighted nonlinear least squares (Gauss–Newton / trust region,
  ``scipy.optimize.least_squares``), weights the inverse CRB variances;
  returns the covariance ``(J^T W J)^-1``.
- :func:`velocity_vector` — the velocity vector from radial velocities and
  bistatic range rates by weighted linear least squares at the position.
- :func:`locate_single` — one node's position estimate from its range and
  the cone angle of its linear array.
- :func:`fuse_detections` — what the fusion host runs live: association of
  several nodes' detections by geometry gating (each node's own range and
  angle estimate), then :func:`locate` and :func:`velocity_vector`; the
  bistatic detections of receive-only nodes join by range-sum gating
  (:func:`passive_links`: referenced to their line of sight).
- :func:`symbol_level_refine` — symbol-level fusion: a joint search over
  position and velocity that adds the nodes' normalised periodograms
  (the approach of Wei et al., "Symbol-level ISAC enabled multiple base
  stations cooperative sensing", IEEE TVT 2023), started at the
  estimate-level solution.

Geometry: positions in m in a common frame; a target of known height (a UAV
at a reported altitude) is located in the horizontal plane, with level
flight (``v_z = 0``); the measurement rows are those of
:func:`sdr_isac.sensing.crb.measurement_matrix` (REFERENCE.md §3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize as sp_opt
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError, SensingError
from sdr_isac.fusion.completion import noise_variance
from sdr_isac.fusion.multiband import Band, band_map, common_grid, grid_peak, pilot_block, refine, reorganise
from sdr_isac.sensing.crb import measurement_matrix
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["PathEstimate", "LinkMeasurement", "estimate_paths", "monostatic_measurement", "array_angle",
           "bistatic_measurement", "locate", "locate_robust", "velocity_vector", "locate_single", "symbol_level_refine",
           "fuse_detections", "passive_links"]


@dataclass(frozen=True)
class PathEstimate:
    """One path of a link: delay (s), normalised Doppler ``nu = f_D / f_c``, amplitude, per-RE SNR and its CRB."""

    delay_s: float
    nu: float
    amplitude: complex
    snr_re: float
    var_delay_s2: float
    var_nu: float


@dataclass(frozen=True)
class LinkMeasurement:
    """A monostatic range or bistatic range sum, and its rate, with variances.

    ``tx == rx`` is monostatic: ``range_m = ||p - b||``, ``rate_mps = u^T v``
    (positive moving away).  Otherwise ``range_m = ||p - b_tx|| + ||p - b_rx||``
    and ``rate_mps`` its time derivative.
    """

    tx: int
    rx: int
    range_m: float
    rate_mps: float
    var_range_m2: float
    var_rate_mps2: float
    snr_re: float


def estimate_paths(band: Band, cim: NDArray[np.complexfloating], num_paths: int = 1,
                   noise_var: float | None = None, num_rounds: int = 10) -> list[PathEstimate]:
    """The ``num_paths`` strongest paths of a CIM, strongest first (CLEAN with off-grid refinement, then RELAX).

    Each pass takes the peak of the residual's periodogram, refines delay and
    Doppler by maximum likelihood (:func:`sdr_isac.fusion.multiband.refine`),
    fits the complex amplitude by least squares on the pilots and subtracts
    the path.  A path found first was refined with the later ones still in
    the data, whose sidelobes bias it (a bistatic echo beside the strong
    direct path, say, by tens of standard deviations); RELAX rounds (Li &
    Stoica, IEEE TSP 44(2), 1996) re-estimate every path on the data minus
    all the others -- a path only while another one it is coupled to
    (:func:`_leaks_into`) has changed since its own last fit -- until no
    delay or Doppler moves by 5 % of its standard deviation (at most
    ``num_rounds`` rounds).
    The per-RE SNR is ``|a|**2 / sigma**2`` with the noise variance the mean
    power of the final residual (unless given), and the variances are the
    CRB of the band's pilots at that SNR.
    """
    for name, value, low in (("num_paths", num_paths, 1), ("num_rounds", num_rounds, 0)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise InputError(f"{name} = {value!r}: allowed a whole number >= {low}")
    grid = common_grid([band])
    residual = np.where(band.pilots, cim, 0).astype(np.complex128)
    sigma2 = noise_variance(residual, band.pilots) if noise_var is None else float(noise_var)
    k = np.arange(band.num_subcarriers) * band.subcarrier_spacing_hz
    t = band.symbol_times_s * band.carrier_hz
    steps = (grid.delay_bin_s, grid.nu_bin)

    def fit(data: NDArray[np.complex128], start: tuple[float, float]) -> tuple[float, float, complex,
                                                                               NDArray[np.complex128]]:
        tau, nu = refine([band], [data], [sigma2], start, steps)
        model = np.outer(np.exp(2j * np.pi * t * nu), np.exp(-2j * np.pi * k * tau)) * band.pilots
        amp = complex(np.vdot(model, data) / np.vdot(model, model).real)
        return tau, nu, amp, amp * model

    found: list[tuple[float, float, complex]] = []
    parts: list[NDArray[np.complex128]] = []
    for _ in range(int(num_paths)):
        hg, mask = reorganise(band, residual, grid)
        power, _ = band_map(hg, mask, "zero", sigma2)
        r, d = grid_peak(power, grid, [mask])
        tau, nu, amp, part = fit(residual, (r * grid.delay_bin_s, float(grid.nu_axis()[d])))
        residual = residual - part
        found.append((tau, nu, amp))
        parts.append(part)
    version = list(range(len(found)))                      # when each path was last fitted
    step = len(found)
    for _ in range(int(num_rounds) if len(found) > 1 else 0):
        moved = 0.0
        for i, (tau0, nu0, amp0) in enumerate(found):
            changed = [parts[j] for j in range(len(found)) if j != i and version[j] > version[i]]
            if not changed or not _leaks_into(parts[i] / amp0, changed, k, t, sigma2):
                continue
            others_removed = residual + parts[i]              # the data minus every other path
            tau, nu, amp, parts[i] = fit(others_removed, (tau0, nu0))
            residual = others_removed - parts[i]
            found[i] = (tau, nu, amp)
            crb = band.crb(max(abs(amp) ** 2 / sigma2, 1e-12))
            move = max(abs(tau - tau0) / np.sqrt(crb[0, 0]), abs(nu - nu0) / np.sqrt(crb[1, 1]))
            if move >= _RELAX_MOVE:                           # a smaller change leaks less than that into others
                version[i], step = step, step + 1
            moved = max(moved, move)
        if moved < _RELAX_MOVE:
            break
    if noise_var is None:
        # after CLEAN the residual is noise: its mean power (4 real parameters removed per path) is a better
        # estimate than the first map's median, which a strong path's sidelobes inflate
        n = int(np.count_nonzero(band.pilots))
        sigma2 = float(np.sum(np.abs(residual) ** 2) / max(n - 2 * len(found), 1))
    out = []
    for tau, nu, amp in found:
        snr = abs(amp) ** 2 / sigma2
        crb = band.crb(max(snr, 1e-12))
        out.append(PathEstimate(tau, nu, amp, snr, float(crb[0, 0]), float(crb[1, 1])))
    return out


_RELAX_MOVE = 0.05          # RELAX: a path that moves by less than this many standard deviations has settled


def _leaks_into(model: NDArray[np.complex128], others: list[NDArray[np.complex128]], k_hz: NDArray[np.floating],
                t_cycles: NDArray[np.floating], noise_var: float) -> bool:
    """Whether another path moves this one's ML delay or Doppler by more than about 0.14 standard deviations.

    ``model`` is the path's unit-amplitude pattern, ``others`` the fitted
    patterns of the other paths.  To first order a path ``x`` left in the
    data shifts the estimate by ``sqrt(2) |<d model, x>| / (||d model||
    sigma)`` standard deviations (``d`` the derivative by delay or Doppler,
    phase rates centred); its leak into the matched filter itself scales
    alike.
    """
    limit = 0.1 * np.sqrt(noise_var)
    k_c, t_c = k_hz - k_hz.mean(), t_cycles - t_cycles.mean()
    for probe in (model, model * k_c[None, :], model * t_c[:, None]):
        norm = float(np.linalg.norm(probe))
        if norm > 0 and any(abs(complex(np.vdot(probe, x))) / norm > limit for x in others):
            return True
    return False


def monostatic_measurement(node: int, path: PathEstimate, c: float = SPEED_OF_LIGHT_MPS) -> LinkMeasurement:
    """Range ``c tau / 2`` and radial velocity ``-c nu / 2`` of a monostatic path."""
    return LinkMeasurement(node, node, c * path.delay_s / 2.0, -c * path.nu / 2.0,
                           (c / 2.0) ** 2 * path.var_delay_s2, (c / 2.0) ** 2 * path.var_nu, path.snr_re)


def bistatic_measurement(tx: int, rx: int, baseline_m: float, direct: PathEstimate, echo: PathEstimate,
                         c: float = SPEED_OF_LIGHT_MPS) -> LinkMeasurement:
    """Range sum and range rate of a bistatic echo, referenced to the direct path.

    The receiver's clock offset ``delta`` and carrier offset ``cfo`` shift
    both paths alike: ``tau_d = L / c + delta``, ``tau_e = S / c + delta``,
    ``nu_d = cfo / f_c``, ``nu_e = -S' / c + cfo / f_c`` (static nodes), so
    ``S = L + c (tau_e - tau_d)`` and ``S' = -c (nu_e - nu_d)``; the
    variances of both paths add.
    """
    if not (np.isfinite(baseline_m) and baseline_m > 0):
        raise InputError(f"baseline_m = {baseline_m!r} m: allowed the distance between the two nodes, > 0")
    return LinkMeasurement(tx, rx, baseline_m + c * (echo.delay_s - direct.delay_s), -c * (echo.nu - direct.nu),
                           c**2 * (echo.var_delay_s2 + direct.var_delay_s2), c**2 * (echo.var_nu + direct.var_nu),
                           echo.snr_re)


def _check_nodes(nodes_m: ArrayLike) -> NDArray[np.float64]:
    b = np.asarray(nodes_m, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 3 or not np.all(np.isfinite(b)):
        raise InputError(f"nodes_m has shape {b.shape}: allowed (B, 3) finite positions in m")
    return b


def _model(nodes: NDArray[np.float64], p: NDArray[np.float64], links: Sequence[LinkMeasurement]) -> NDArray[np.float64]:
    d = np.linalg.norm(p[None, :] - nodes, axis=1)
    return np.array([d[m.tx] if m.tx == m.rx else d[m.tx] + d[m.rx] for m in links])


def locate(nodes_m: ArrayLike, links: Sequence[LinkMeasurement], height_m: float,
           start_xy: ArrayLike | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Horizontal position (x, y) of a target at known height from ranges and range sums.

    Weighted nonlinear least squares, residuals ``(r_i - r_i(p)) / sigma_i``,
    by scipy's trust-region reflective solver (a damped Gauss–Newton),
    started at ``start_xy`` (default: the centroid of the nodes).

    Returns
    -------
    xy : ndarray, shape (2,), m
    cov : ndarray, shape (2, 2), m²
        ``(J^T W J)^-1`` at the solution: the CRB when the variances are.
    """
    nodes = _check_nodes(nodes_m)
    if len(links) < 2:
        raise SensingError(f"{len(links)} range measurement(s): need at least 2 to locate in the plane")
    w = np.array([1.0 / np.sqrt(m.var_range_m2) for m in links])
    meas = np.array([m.range_m for m in links])
    x0 = nodes[:, :2].mean(axis=0) if start_xy is None else np.asarray(start_xy, dtype=float)

    def residuals(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        return (meas - _model(nodes, np.array([xy[0], xy[1], height_m]), links)) * w

    res = sp_opt.least_squares(residuals, x0, method="trf", x_scale="jac")
    p = np.array([res.x[0], res.x[1], height_m])
    h = measurement_matrix(nodes, p, [(m.tx, m.rx) for m in links])[:, :2]
    cov = np.linalg.inv(h.T @ (h * (w**2)[:, None]))
    return res.x, cov


def locate_robust(nodes_m: ArrayLike, links: Sequence[LinkMeasurement], height_m: float,
                  start_xy: ArrayLike | None = None, gate_sigma: float = 5.0,
                  ) -> tuple[NDArray[np.float64], NDArray[np.float64], list[LinkMeasurement]]:
    """:func:`locate` with fault detection and exclusion (the RAIM idea of satellite navigation).

    While the largest normalised residual ``|r_i - r_i(p)| / sigma_i`` of
    the fix exceeds ``gate_sigma`` and more than three measurements remain
    (two unknowns plus one redundant measurement are needed to detect a
    fault), every subset with one measurement left out is solved and the one
    with the smallest weighted residual sum of squares is kept: a weak link
    that picked a noise peak (a range hundreds of cells off) no longer drags
    the fix away.  Returns the position, its covariance and the measurements
    kept.
    """
    if not (np.isfinite(gate_sigma) and gate_sigma > 0):
        raise InputError(f"gate_sigma = {gate_sigma!r}: allowed a finite number of standard deviations > 0")
    nodes = _check_nodes(nodes_m)

    def solve(subset: list[LinkMeasurement]) -> tuple[float, NDArray[np.float64], NDArray[np.float64],
                                                      NDArray[np.float64]]:
        xy, cov = locate(nodes, subset, height_m, start_xy)
        p = np.array([xy[0], xy[1], height_m])
        z = (np.array([m.range_m for m in subset]) - _model(nodes, p, subset)) \
            / np.sqrt([m.var_range_m2 for m in subset])
        return float(z @ z), np.abs(z), xy, cov

    kept = list(links)
    _, z, xy, cov = solve(kept)
    while len(kept) > 3 and float(z.max()) > gate_sigma:
        trials = [(solve(kept[:i] + kept[i + 1:]), i) for i in range(len(kept))]
        (_, z, xy, cov), drop = min(trials, key=lambda item: item[0][0])
        kept.pop(drop)
    return xy, cov, kept


def velocity_vector(nodes_m: ArrayLike, links: Sequence[LinkMeasurement],
                    position_m: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Horizontal velocity (v_x, v_y) of a level-flying target from radial velocities and range rates.

    Weighted linear least squares ``v = (H^T W H)^-1 H^T W r`` with the rows
    of :func:`sdr_isac.sensing.crb.measurement_matrix` at ``position_m``.
    Returns the velocity (m/s) and its covariance ((m/s)²).
    """
    nodes = _check_nodes(nodes_m)
    p = np.asarray(position_m, dtype=np.float64)
    h = measurement_matrix(nodes, p, [(m.tx, m.rx) for m in links])[:, :2]
    w = np.array([1.0 / m.var_rate_mps2 for m in links])
    rates = np.array([m.rate_mps for m in links])
    info = h.T @ (h * w[:, None])
    if np.linalg.matrix_rank(info) < 2:
        raise SensingError("the links do not determine the velocity vector (one direction only): add a node")
    cov = np.linalg.inv(info)
    return cov @ (h.T @ (w * rates)), cov


def locate_single(node_m: ArrayLike, array_axis_xy: ArrayLike, range_m: float, cone_angle_rad: float,
                  height_m: float) -> NDArray[np.float64]:
    """One node's horizontal target position from its range and the cone angle of its horizontal linear array.

    The array (axis ``array_axis_xy`` in the plane, broadside to its left:
    the axis turned by +90°) measures ``sin(alpha) = sin(theta) cos(el)``
    with ``theta`` the azimuth from broadside and ``el`` the elevation, known
    from the range and the height difference.
    """
    b = np.asarray(node_m, dtype=np.float64)
    axis = np.asarray(array_axis_xy, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    dz = height_m - b[2]
    if range_m <= abs(dz):
        raise SensingError(f"range {range_m:.2f} m is shorter than the height difference {abs(dz):.2f} m: the "
                           "target cannot be at that height")
    horizontal = np.sqrt(range_m**2 - dz**2)
    cos_el = horizontal / range_m
    s = float(np.clip(np.sin(cone_angle_rad) / cos_el, -1.0, 1.0))
    broadside = np.array([-axis[1], axis[0]])
    direction = np.sqrt(1.0 - s * s) * broadside + s * axis
    return b[:2] + horizontal * direction


def symbol_level_refine(bands: Sequence[Band], cims: Sequence[NDArray[np.complexfloating]], nodes_m: ArrayLike,
                        height_m: float, start_xy: ArrayLike, start_v: ArrayLike, scale: tuple[float, float],
                        c: float = SPEED_OF_LIGHT_MPS) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Symbol-level fusion of monostatic links: maximise the summed normalised periodograms over (x, y, v_x, v_y).

    Node ``i``'s CIM ``cims[i]`` (its ``bands[i]``) predicts delay
    ``2 ||p - b_i|| / c`` and ``nu = -2 u_i^T v / c``; the objective is
    ``sum_i |d_i^T H_i a_i|**2 / (n_i sigma_i**2)`` (independent amplitudes),
    maximised by Nelder–Mead in units of ``scale = (m, m/s)`` from the
    estimate-level start.
    """
    nodes = _check_nodes(nodes_m)
    prepared = []
    for band, h in zip(bands, cims, strict=True):
        s2 = noise_variance(np.where(band.pilots, h, 0), band.pilots)
        prepared.append((*pilot_block(band, h), float(np.count_nonzero(band.pilots)) * s2))
    x0 = np.concatenate([np.asarray(start_xy, dtype=float), np.asarray(start_v, dtype=float)])
    step = np.array([scale[0], scale[0], scale[1], scale[1]])

    def cost(q: NDArray[np.float64]) -> float:
        x = x0 + q * step
        p = np.array([x[0], x[1], height_m])
        total = 0.0
        for i, (y, k, t, norm) in enumerate(prepared):
            diff = p - nodes[i]
            dist = float(np.linalg.norm(diff))
            tau = 2.0 * dist / c
            nu = -2.0 * float(diff[:2] @ x[2:]) / (dist * c)
            total += abs(np.exp(-2j * np.pi * t * nu) @ y @ np.exp(2j * np.pi * k * tau)) ** 2 / norm
        return -total

    simplex = np.vstack([np.zeros(4), 0.5 * np.eye(4)])
    res = sp_opt.minimize(cost, np.zeros(4), method="Nelder-Mead",
                          options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-9, "maxiter": 800})
    x = x0 + res.x * step
    return x[:2], x[2:]


def array_angle(snapshot: ArrayLike, spacing_wavelengths: float = 0.5) -> float:
    """Cone angle (rad from broadside) of one source from a uniform linear array's matched-filter outputs.

    Maximum likelihood for one source: maximise ``|s(alpha)^H z|**2`` with
    ``s_n = exp(j 2 pi d n sin(alpha))``, on a grid of ``sin(alpha)`` then
    by a bounded scalar search around the best cell.
    """
    z = np.asarray(snapshot, dtype=np.complex128).ravel()
    if z.size < 2 or not np.all(np.isfinite(z)):
        raise InputError(f"snapshot has {z.size} entries: allowed a finite vector of at least 2 elements")
    n = np.arange(z.size)
    grid = np.linspace(-1.0, 1.0, 16 * z.size + 1)
    power = np.abs(np.exp(-2j * np.pi * spacing_wavelengths * np.outer(grid, n)) @ z) ** 2
    best = int(np.argmax(power))
    step = grid[1] - grid[0]

    def cost(u: float) -> float:
        return -float(abs(np.exp(-2j * np.pi * spacing_wavelengths * n * u) @ z) ** 2)

    res = sp_opt.minimize_scalar(cost, bounds=(max(-1.0, grid[best] - step), min(1.0, grid[best] + step)),
                                 method="bounded", options={"xatol": 1e-9})
    return float(np.arcsin(np.clip(res.x, -1.0, 1.0)))


def fuse_detections(nodes: dict[str, dict[str, Any]], detections: dict[str, list[dict[str, Any]]],
                    height_m: float, gate_m: float = 5.0, passive: dict[str, str] | None = None,
                    gate_sigma: float = 5.0, max_clock_offset_s: float = 1e-7) -> list[dict[str, Any]]:
    """Associate the detections of several nodes and fuse each associated set (host-side, live).

    Monostatic detections (of nodes that sense their own echoes) are
    associated by their own position estimates; the bistatic detections of
    receive-only nodes (``passive``) then join those targets by gating
    (:func:`passive_links`, :func:`_join_bistatic`).

    Parameters
    ----------
    nodes : dict
        Node id -> ``{"position_m": [x, y, z], "yaw_deg": boresight}`` (the
        receive array's broadside; a detection's ``angle_rad`` is measured
        from it towards the array's +y end, turned with the node).
    detections : dict
        Node id -> list of :meth:`sdr_isac.sensing.Detection.to_dict`
        objects of one time-aligned set.
    height_m : float
        Height of the targets (ground traffic ~1 m; a UAV its reported altitude).
    gate_m : float
        Association gate: a node's detection joins a target when its own
        position estimate (range and angle) lies within ``gate_m`` of the
        target's, and the target has no detection of that node yet.  A
        bistatic range sum joins a target when it lies within
        ``gate_sigma`` standard deviations plus ``gate_m`` of the range sum
        predicted at the target's position.
    passive : dict, optional
        Receive-only node id -> id of the transmitter it hears (a node of
        ``nodes``).  Their detections are bistatic range sums referenced to
        the line of sight (:func:`passive_links`).  None or empty: monostatic
        fusion only.
    gate_sigma : float
        Gate of the bistatic association and of :func:`locate_robust`, in
        standard deviations.
    max_clock_offset_s : float
        Largest clock offset of a receive-only node against its transmitter,
        s (sets the window in which its line of sight is looked for).

    Returns
    -------
    list of dict
        One per associated target seen by two or more nodes, strongest
        first: ``position_m`` ([x, y, height]), ``cov_position_m2`` (2 x 2,
        from the ranges' CRB variances), ``velocity_mps`` ([v_x, v_y, 0]) and
        ``cov_velocity_mps2`` when the radial velocities determine it,
        ``nodes`` (monostatic nodes first, then the passive ones) and
        ``single_m`` (each monostatic node's own position estimate).
    """
    if not (np.isfinite(gate_m) and gate_m > 0):
        raise InputError(f"gate_m = {gate_m!r} m: allowed a finite distance > 0")
    passive = {n: tx for n, tx in (passive or {}).items() if n in nodes and tx in nodes and n in detections}
    ids = [n for n in detections if n in nodes and n not in passive]
    ids += [tx for tx in dict.fromkeys(passive.values()) if tx not in ids]
    ids += list(passive)
    positions = np.array([nodes[n]["position_m"] for n in ids], dtype=np.float64).reshape(-1, 3)
    candidates = []
    for k, node_id in enumerate(ids):
        if node_id in passive or node_id not in detections:
            continue
        yaw = np.deg2rad(float(nodes[node_id].get("yaw_deg", 0.0)))
        axis = np.array([np.sin(yaw), -np.cos(yaw)])        # broadside turned by -90°: locate_single's axis
        for det in detections[node_id]:
            if det.get("geometry", "monostatic") != "monostatic" or det.get("angle_rad") is None:
                continue
            try:
                xy = locate_single(positions[k], axis, float(det["range_m"]), -float(det["angle_rad"]), height_m)
            except SensingError:
                continue
            candidates.append((float(det.get("snr_db", 0.0)), k, det, xy))
    candidates.sort(key=lambda c: -c[0])
    clusters: list[dict[str, Any]] = []
    for _, k, det, xy in candidates:
        best = None
        for cl in clusters:
            d = float(np.linalg.norm(np.mean(list(cl["single"].values()), axis=0) - xy))
            if k not in cl["single"] and d <= gate_m and (best is None or d < best[0]):
                best = (d, cl)
        if best is None:
            clusters.append({"single": {k: xy}, "dets": {k: det}})
        else:
            best[1]["single"][k] = xy
            best[1]["dets"][k] = det
    bistatic = {ids.index(n): passive_links(positions, ids.index(tx), ids.index(n), detections[n],
                                            max_clock_offset_s) for n, tx in passive.items()}
    _join_bistatic(clusters, bistatic, positions, height_m, gate_m, gate_sigma)
    out = []
    for cl in clusters:
        extra: dict[int, LinkMeasurement] = cl.get("bistatic", {})
        if len(cl["dets"]) + len(extra) < 2:
            continue
        links = [LinkMeasurement(k, k, float(d["range_m"]), float(d["velocity_mps"]), float(d["range_var_m2"]),
                                 float(d["velocity_var_mps2"]), 10.0 ** (float(d.get("snr_db", 0.0)) / 10.0))
                 for k, d in cl["dets"].items()]
        start = np.mean(list(cl["single"].values()), axis=0)
        if extra:
            xy, cov, links = locate_robust(positions, links + list(extra.values()), height_m, start, gate_sigma)
        else:
            xy, cov = locate(positions, links, height_m, start)
        members = sorted({m.rx for m in links})
        est: dict[str, Any] = {"position_m": [float(xy[0]), float(xy[1]), float(height_m)],
                               "cov_position_m2": cov.tolist(),
                               "nodes": [ids[k] for k in cl["dets"] if k in members]
                               + [ids[k] for k in members if ids[k] in passive],
                               "single_m": {ids[k]: [float(v) for v in p] for k, p in cl["single"].items()}}
        try:
            v, cov_v = velocity_vector(positions, links, [xy[0], xy[1], height_m])
            est["velocity_mps"] = [float(v[0]), float(v[1]), 0.0]
            est["cov_velocity_mps2"] = cov_v.tolist()
        except SensingError:
            pass
        out.append(est)
    return out


def passive_links(nodes_m: ArrayLike, tx: int, rx: int, detections: Sequence[dict[str, Any]],
                  max_clock_offset_s: float = 1e-7, c: float = SPEED_OF_LIGHT_MPS) -> list[LinkMeasurement]:
    """A receive-only node's bistatic detections as range sums and range rates, referenced to its line of sight.

    The line of sight is the strongest bistatic detection whose range sum
    lies within ``c * max_clock_offset_s + 3`` m of the baseline
    ``L = ||b_tx - b_rx||`` (the receiver's clock offset shifts every range
    sum alike; 3 m cover a range cell and the nodes' survey).  Every other
    detection gives ``S = L + (R_det - R_los)`` and ``S' = v_det - v_los``
    (clock offset and carrier offset removed, as in
    :func:`bistatic_measurement`); the variances of both add.  No line of
    sight found: no links.

    Parameters
    ----------
    nodes_m : array_like, shape (B, 3)
        Node positions, m.
    tx, rx : int
        Rows of ``nodes_m`` of the transmitter and the receive-only node.
    detections : sequence of dict
        The receive-only node's :meth:`sdr_isac.sensing.Detection.to_dict`
        objects (bistatic geometry: ``range_m`` is ``c`` times the delay).
    max_clock_offset_s : float
        Largest clock offset of the receiver against the transmitter, s (>= 0).
    """
    if not (np.isfinite(max_clock_offset_s) and max_clock_offset_s >= 0):
        raise InputError(f"max_clock_offset_s = {max_clock_offset_s!r} s: allowed a finite time >= 0")
    b = _check_nodes(nodes_m)
    baseline = float(np.linalg.norm(b[tx] - b[rx]))
    dets = [d for d in detections if d.get("geometry") == "bistatic"]
    window = c * max_clock_offset_s + 3.0
    near = [d for d in dets if abs(float(d["range_m"]) - baseline) <= window]
    if baseline <= 0 or not near:
        return []
    los = max(near, key=lambda d: float(d.get("snr_db", 0.0)))
    r0, v0 = float(los["range_m"]), float(los["velocity_mps"])
    out = []
    for d in dets:
        if d is los:
            continue
        s = baseline + float(d["range_m"]) - r0
        if s <= baseline:                                   # shorter than the direct path: not an echo
            continue
        out.append(LinkMeasurement(tx, rx, s, float(d["velocity_mps"]) - v0,
                                   float(d["range_var_m2"]) + float(los["range_var_m2"]),
                                   float(d["velocity_var_mps2"]) + float(los["velocity_var_mps2"]),
                                   10.0 ** (float(d.get("snr_db", 0.0)) / 10.0)))
    return out


def _join_bistatic(clusters: list[dict[str, Any]], bistatic: dict[int, list[LinkMeasurement]],
                   positions: NDArray[np.float64], height_m: float, gate_m: float, gate_sigma: float) -> None:
    """Give each cluster (strongest first) at most one range sum per receive-only node, by gating.

    A range sum ``S`` is consistent with a cluster when
    ``|S - (||p - b_tx|| + ||p - b_rx||)| <= gate_sigma * sigma_S + gate_m``
    at the cluster's position ``p`` (its monostatic fix when it has two or
    more nodes, else its node's own range-and-angle estimate, whose error
    ``gate_m`` bounds); of the consistent ones the strongest joins, and a
    range sum joins one cluster only.
    """
    used: set[tuple[int, int]] = set()
    for cl in clusters:
        cl["bistatic"] = {}
        if not bistatic:
            continue
        xy = np.mean(list(cl["single"].values()), axis=0)
        if len(cl["dets"]) >= 2:
            mono = [LinkMeasurement(k, k, float(d["range_m"]), 0.0, float(d["range_var_m2"]), 1.0, 1.0)
                    for k, d in cl["dets"].items()]
            xy, _ = locate(positions, mono, height_m, xy)
        p = np.array([xy[0], xy[1], height_m])
        for rx, links in bistatic.items():
            gated = [(i, m) for i, m in enumerate(links) if (rx, i) not in used and abs(
                m.range_m - float(_model(positions, p, [m])[0])) <= gate_sigma * np.sqrt(m.var_range_m2) + gate_m]
            if gated:
                i, m = max(gated, key=lambda item: item[1].snr_re)
                used.add((rx, i))
                cl["bistatic"][rx] = m
