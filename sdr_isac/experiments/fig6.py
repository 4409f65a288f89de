"""The article's Fig. 6: multi-BS cooperative sensing of a UAV against a single BS.

Scene (``hw_configs/sim_multi_bs.toml``): four base stations at the corners
of a 200 m square, 25 m high, 24 GHz, 240 kHz subcarrier spacing, N = 384
subcarriers (92 MHz); a UAV at (90, 110, 60) m flying level at (8, -5, 0) m/s.
Each BS has an 8-element half-wavelength horizontal array whose broadside
faces the square's centre.

Waveform: 56 symbols; BS i transmits a full-band pilot on symbols ``m = i
(mod 4)`` (time-division, 14 symbols each), so the links are orthogonal and
every BS hears every other.  **CP**: the 240 kHz normal CP (0.29 µs) covers
only 44 m; the frame uses an explicit 1.33 µs CP (REFERENCE.md §4), which
keeps every monostatic echo (< 199 m) and every bistatic path (< 399 m,
the 283 m diagonal included) inside the CP: no inter-symbol interference.

Per trial (CIM level, :mod:`sdr_isac.channel.cim`): ``snr_db`` is the per-RE
SNR of BS 0's own echo; the others follow the radar equation (``1 / (R_tx**2
R_rx**2)``).  A bistatic link i → j also carries the direct path, 30 dB above
its echo, and the receiver's clock offset (0, 20, -15, 30 ns per BS) and
carrier offset (0, 800, -500, 300 Hz), which the direct path removes
(:func:`sdr_isac.fusion.links.bistatic_measurement`).

Estimators (the target height is known; position and velocity in the plane):

- ``single``: BS 0 alone — range and radial velocity, position from range
  and the cone angle of its array (channel 0 for range/Doppler, all 8 for
  the angle);
- ``active``: the four monostatic ranges and radial velocities fused by
  weighted least squares (weights: each detection's CRB at its estimated SNR),
  with fault exclusion of a link whose residual exceeds 5 sigma
  (:func:`sdr_isac.fusion.locate.locate_robust`);
- ``symbol``: symbol-level fusion of the four monostatic CIMs (joint search
  over position and velocity that adds the periodograms), from ``active``;
- ``active_passive``: the monostatic and the 12 bistatic measurements.

Metrics: horizontal position error; distance to BS 0 and radial velocity seen
from BS 0 (the "distance" and "velocity" of the symbol-level work the
article cites); velocity-vector error for the fused estimators (a single BS
sees only the radial component).  Each beside its CRB.

The position, distance and radial RMSE of each point are over every trial; the velocity RMSE
(``rmse_vel_*``) is over the trials where a velocity was estimated, i.e. where two links agreed
(``single_fraction_*`` is the share of trials where no two did and BS 0's own fix stood; where
every trial is such, as at -30 dB, the velocity RMSE is NaN).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np

from sdr_isac.channel.cim import bistatic_link_cim, measure_pilots, random_amplitude
from sdr_isac.errors import SensingError
from sdr_isac.experiments.plots import rmse_plot
from sdr_isac.experiments.runner import Metrics, Point, Scenario, rmse
from sdr_isac.fusion import links as fl
from sdr_isac.fusion import locate as nl
from sdr_isac.fusion.modes import multi_bs as nf
from sdr_isac.fusion.multiband import Band, pilot_mask
from sdr_isac.fusion.records import LinkMeasurement
from sdr_isac.sensing.crb import angle_crb_rad2, measurement_matrix
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["fig6_scenario", "trial", "bounds", "NODES_M", "TARGET_M", "VELOCITY_MPS"]

C = SPEED_OF_LIGHT_MPS
NODES_M = np.array([[0.0, 0.0, 25.0], [200.0, 0.0, 25.0], [200.0, 200.0, 25.0], [0.0, 200.0, 25.0]])
TARGET_M = np.array([90.0, 110.0, 60.0])
VELOCITY_MPS = np.array([8.0, -5.0, 0.0])
CARRIER_HZ = 24e9
SCS_HZ = 240e3
CP_S = 1.33e-6
NUM_SUBCARRIERS = 384
NUM_SYMBOLS = 56
NUM_ELEMENTS = 8
ULA_WL = 0.5 * np.arange(NUM_ELEMENTS)   # element positions of BS 0's half-wavelength ULA, wavelengths
CLOCK_OFFSET_S = (0.0, 20e-9, -15e-9, 30e-9)
CFO_HZ = (0.0, 800.0, -500.0, 300.0)
DIRECT_OVER_ECHO_DB = 30.0
DETECTION_PFA = 1e-3      # false-alarm probability of one link's map: weaker paths are noise peaks, not measurements
SNR_DB = (-30.0, -25.0, -20.0, -15.0, -10.0, -5.0, 0.0, 5.0)
METHODS = ("single", "active", "symbol", "active_passive")


def bands() -> list[Band]:
    """BS i's pilots: every subcarrier of symbols i, i + 4, ... (time-division between the four BSs)."""
    return [Band(f"bs{i}", CARRIER_HZ, SCS_HZ, CP_S,
                 pilot_mask(NUM_SYMBOLS, NUM_SUBCARRIERS, symbol_step=4, symbol_offset=i)) for i in range(4)]


def _geometry() -> dict[str, Any]:
    diff = TARGET_M[None, :] - NODES_M
    dist = np.linalg.norm(diff, axis=1)
    u = diff / dist[:, None]
    broadside = -NODES_M[:, :2] + NODES_M[:, :2].mean(axis=0)          # towards the square's centre
    broadside /= np.linalg.norm(broadside, axis=1)[:, None]
    axis = np.stack([broadside[:, 1], -broadside[:, 0]], axis=1)        # broadside = axis turned by +90°
    cone = np.arcsin(u[:, :2] @ axis.T).diagonal()                      # sin(alpha) = u . axis
    return {"dist": dist, "u": u, "axis": axis, "cone": cone, "radial": u @ VELOCITY_MPS}


@functools.lru_cache(maxsize=1)
def _setup() -> tuple[dict[str, Any], list[Band]]:
    """The scene's geometry and the four bands, built once per process (the same in every trial; read only)."""
    geometry = _geometry()
    for value in geometry.values():
        value.flags.writeable = False
    return geometry, bands()


def _link_snr(snr0: float, dist: np.ndarray, i: int, j: int) -> float:
    return snr0 * dist[0] ** 4 / (dist[i] ** 2 * dist[j] ** 2)


def _detected(link: LinkMeasurement) -> bool:
    """Whether a link's path stands above the noise: integrated SNR over the ``DETECTION_PFA`` threshold.

    On noise alone the peak of a map of n unit-exponential cells exceeds ``ln(n / pfa)`` with
    probability ``pfa``; the path's integrated SNR is its per-RE SNR times the n pilot REs.
    """
    n = NUM_SUBCARRIERS * NUM_SYMBOLS // 4
    return link.snr_re * n >= math.log(n / DETECTION_PFA)


def trial(point: Point, rng: np.random.Generator) -> Metrics:
    """One trial at ``point["snr_db"]``: errors of every estimator (m, m/s).

    ``point["passive"] = False`` skips the 12 bistatic links (and the ``active_passive`` estimator).
    """
    g, bs = _setup()
    snr0 = 10.0 ** (point["snr_db"] / 10.0)
    dist = g["dist"]
    height = float(TARGET_M[2])

    mono: list[LinkMeasurement] = []
    mono_cims = []
    for i in range(4):
        paths = [(2 * dist[i] / C, -2 * g["radial"][i] * CARRIER_HZ / C,
                  random_amplitude(_link_snr(snr0, dist, i, i), rng))]
        if i == 0:   # BS 0's array: channel 0 for range/Doppler, all channels for the angle
            phases = np.exp(2j * np.pi * 0.5 * np.arange(NUM_ELEMENTS) * np.sin(g["cone"][0]))
            h_all = measure_pilots(bs[0], paths, rng, channel_phases=phases[:, None] * np.ones((1, len(paths))))
            h = h_all[0]
        else:
            h = measure_pilots(bs[i], paths, rng)
        (path,) = fl.estimate_paths(bs[i], h)
        mono.append(fl.monostatic_measurement(i, path, C))
        mono_cims.append(h)
        if i == 0:
            k = np.arange(NUM_SUBCARRIERS) * SCS_HZ
            t = bs[0].symbol_times_s * CARRIER_HZ
            z = np.exp(-2j * np.pi * t * path.nu) @ h_all @ np.exp(2j * np.pi * k * path.delay_s)
            cone0 = fl.array_angle(z, 0.5)

    bistatic: list[LinkMeasurement] = []
    passive = bool(point.get("passive", True))
    for i in range(4):
        for j in range(4):
            if i == j or not passive:
                continue
            base = float(np.linalg.norm(NODES_M[i] - NODES_M[j]))
            snr = _link_snr(snr0, dist, i, j)
            delta, cfo = CLOCK_OFFSET_S[j] - CLOCK_OFFSET_S[i], CFO_HZ[j] - CFO_HZ[i]
            h = bistatic_link_cim(bs[i], base, dist[i] + dist[j], g["radial"][i] + g["radial"][j], snr, rng,
                                  direct_over_echo_db=DIRECT_OVER_ECHO_DB, clock_s=delta, cfo_hz=cfo, speed_mps=C)
            direct, echo = fl.estimate_paths(bs[i], h, num_paths=2)
            bistatic.append(fl.bistatic_measurement(i, j, base, direct, echo, C))

    truth_xy, truth_v = TARGET_M[:2], VELOCITY_MPS[:2]
    out: Metrics = {}

    def record(name: str, xy: np.ndarray, v_xy: np.ndarray | None, distance: float, radial: float) -> None:
        out[f"pos_err_{name}"] = float(np.linalg.norm(xy - truth_xy))
        out[f"dist_err_{name}"] = distance - dist[0]
        out[f"radial_err_{name}"] = radial - g["radial"][0]
        out[f"vel_err_{name}"] = math.nan if v_xy is None else float(np.linalg.norm(v_xy - truth_v))

    anchor: nl.SingleFix | None = None
    xy_single = NODES_M[0, :2].copy()
    # an outlier range shorter than the height difference, or a noise angle at endfire (|cone| = 90 degrees,
    # where the array's angle bound diverges and angle_crb_rad2 refuses it): no fix, the node's own spot
    if abs(cone0) < math.pi / 2:
        try:
            var_cone = float(angle_crb_rad2(max(mono[0].snr_re, 1e-12), int(bs[0].pilots.sum()), ULA_WL, cone0))
            # the estimate's own error (quadrature) as fault exclusion's anchor: trials.csv unchanged against the
            # linearised anchor at 300 trials x (-20, -10, 0, 10) dB
            anchor = nl.single_fix(NODES_M, 0, g["axis"][0], mono[0].range_m, mono[0].var_range_m2, cone0, var_cone,
                                   height, propagation="quadrature")
            xy_single = anchor.xy_m
        except SensingError:
            pass
    record("single", xy_single, None, mono[0].range_m, mono[0].rate_mps)

    def fused(name: str, links: list[LinkMeasurement]) -> tuple[np.ndarray, np.ndarray | None]:
        links = [m for m in links if _detected(m)]
        try:
            xy, _, kept = nl.locate_robust(NODES_M, links, height, anchor=anchor)
        except SensingError:   # neither two detected links nor BS 0's own fix: BS 0's spot, as for `single`
            xy, kept = xy_single.copy(), []
        p = np.array([xy[0], xy[1], height])
        distance = float(np.linalg.norm(p - NODES_M[0]))
        try:
            v, _ = nl.velocity_vector(NODES_M, kept, p)
        except SensingError:   # the single node's fix stands (no two links agree): its radial velocity only
            record(name, xy, None, distance, mono[0].rate_mps)
            out[f"single_{name}"] = 1.0
            return xy, None
        u0 = (p - NODES_M[0]) / distance
        record(name, xy, v, distance, float(u0[:2] @ v))
        out[f"single_{name}"] = 0.0
        return xy, v

    xy_a, v_a = fused("active", mono)
    if passive:
        fused("active_passive", mono + bistatic)
    if v_a is None:            # no two links agreed: BS 0's own fix stands, there is nothing to fuse at symbol level
        for key in ("pos_err", "dist_err", "radial_err", "vel_err"):
            out[f"{key}_symbol"] = out[f"{key}_active"]
        return out
    xy_s, v_s = nf.symbol_level_refine(bs, mono_cims, NODES_M, height, xy_a, v_a, (0.2, 0.2), C)
    p_s = np.array([xy_s[0], xy_s[1], height])
    u0 = (p_s - NODES_M[0]) / np.linalg.norm(p_s - NODES_M[0])
    record("symbol", xy_s, v_s, float(np.linalg.norm(p_s - NODES_M[0])), float(u0[:2] @ v_s))
    return out


def bounds(snr_db: float) -> dict[str, float]:
    """√CRB of position (√trace, m), distance to BS 0 (m), radial velocity at BS 0 (m/s), velocity (√trace)."""
    g = _geometry()
    bs = bands()
    snr0 = 10.0 ** (snr_db / 10.0)
    dist = g["dist"]
    links_mono = [(i, i) for i in range(4)]
    links_bi = [(i, j) for i in range(4) for j in range(4) if i != j]
    var_r, var_v = {}, {}
    for i, j in links_mono + links_bi:
        snr = _link_snr(snr0, dist, i, j)
        crb = bs[i].crb(snr)
        if i == j:
            var_r[i, j], var_v[i, j] = (C / 2) ** 2 * crb[0, 0], (C / 2) ** 2 * crb[1, 1]
        else:   # the echo and the direct path (30 dB stronger) both add to a bistatic measurement
            crb_d = bs[i].crb(snr * 10 ** (DIRECT_OVER_ECHO_DB / 10))
            var_r[i, j] = C**2 * (crb[0, 0] + crb_d[0, 0])
            var_v[i, j] = C**2 * (crb[1, 1] + crb_d[1, 1])
    g0 = g["u"][0, :2]
    out: dict[str, float] = {}
    for name, links in (("active", links_mono), ("active_passive", links_mono + links_bi)):
        h = measurement_matrix(NODES_M, TARGET_M, links)[:, :2]
        cov_p = np.linalg.inv(h.T @ (h / np.array([var_r[lk] for lk in links])[:, None]))
        cov_v = np.linalg.inv(h.T @ (h / np.array([var_v[lk] for lk in links])[:, None]))
        out[f"crb_pos_{name}"] = math.sqrt(np.trace(cov_p))
        out[f"crb_dist_{name}"] = math.sqrt(g0 @ cov_p @ g0)
        out[f"crb_radial_{name}"] = math.sqrt(g0 @ cov_v @ g0)
        out[f"crb_vel_{name}"] = math.sqrt(np.trace(cov_v))
    # single BS: range and cone angle -> position (the bound carried by the Jacobian, central differences)
    var_cone = float(angle_crb_rad2(snr0, int(bs[0].pilots.sum()), ULA_WL, g["cone"][0]))
    fix = nl.single_fix(NODES_M, 0, g["axis"][0], dist[0], var_r[0, 0], g["cone"][0], var_cone, TARGET_M[2],
                        propagation="linear")       # a bound: the CRB carried to the position
    cov_single = fix.cov_m2
    out["crb_pos_single"] = math.sqrt(np.trace(cov_single))
    out["crb_dist_single"] = math.sqrt(var_r[0, 0])
    out["crb_radial_single"] = math.sqrt(var_v[0, 0])
    return out


def summarise(point: Point, trials: list[Metrics]) -> list[dict[str, Any]]:
    row: dict[str, Any] = {"snr_db": point["snr_db"], "trials": len(trials)}
    for quantity in ("pos", "dist", "radial", "vel"):
        for m in METHODS:
            if quantity == "vel" and m == "single":
                continue
            row[f"rmse_{quantity}_{m}"] = rmse((t[f"{quantity}_err_{m}"] for t in trials), skip_nan=quantity == "vel")
    for m in ("active", "active_passive"):     # trials in which no two links agreed: BS 0's own fix stood
        row[f"single_fraction_{m}"] = float(np.mean([t.get(f"single_{m}", math.nan) for t in trials]))
    row.update(bounds(point["snr_db"]))
    for quantity in ("dist", "radial", "pos"):
        row[f"gain_{quantity}_active_pct"] = 100.0 * (1.0 - row[f"rmse_{quantity}_active"]
                                                      / row[f"rmse_{quantity}_single"])
    return [row]


def plot(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    snr = [r["snr_db"] for r in rows]
    n = rows[0]["trials"]

    def col(key: str) -> list[float]:
        return [r[key] for r in rows]

    files = [
        rmse_plot(out / "fig6a_localisation.png", snr, [
            ("single BS (range + angle)", col("rmse_pos_single"), "C0o-"),
            ("multi-BS active, estimate level", col("rmse_pos_active"), "C2^-"),
            ("multi-BS active, symbol level", col("rmse_pos_symbol"), "C3v-"),
            ("√CRB single BS", col("crb_pos_single"), "C0:"),
            ("√CRB multi-BS active", col("crb_pos_active"), "C2:")],
            "SNR per RE at BS 0 (dB)", "horizontal position RMSE (m)", f"(a) localisation, {n} trials"),
        rmse_plot(out / "fig6b_velocity.png", snr, [
            ("single BS", col("rmse_radial_single"), "C0o-"),
            ("multi-BS active, estimate level", col("rmse_radial_active"), "C2^-"),
            ("multi-BS active, symbol level", col("rmse_radial_symbol"), "C3v-"),
            ("√CRB single BS", col("crb_radial_single"), "C0:"),
            ("√CRB multi-BS active", col("crb_radial_active"), "C2:")],
            "SNR per RE at BS 0 (dB)", "radial velocity RMSE at BS 0 (m/s)", f"(b) velocity, {n} trials"),
        rmse_plot(out / "fig6c_active_passive.png", snr, [
            ("single BS (range + angle)", col("rmse_pos_single"), "C0o-"),
            ("multi-BS active + passive", col("rmse_pos_active_passive"), "C4s-"),
            ("√CRB single BS", col("crb_pos_single"), "C0:"),
            ("√CRB multi-BS active + passive", col("crb_pos_active_passive"), "C4:")],
            "SNR per RE at BS 0 (dB)", "horizontal position RMSE (m)", f"(c) active + passive, {n} trials"),
    ]
    return files


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'SNR':>5s} | {'position RMSE (m)':^44s} | {'dist. to BS0 (m)':^17s} | {'radial v (m/s)':^17s} "
             "| gain dist/vel",
             f"{'dB':>5s} | {'single':>8s} {'active':>8s} {'symbol':>8s} {'act+pas':>8s} {'√CRBact':>8s} | "
             f"{'single':>8s} {'active':>8s} | {'single':>8s} {'active':>8s} |"]
    for r in rows:
        lines.append(
            f"{r['snr_db']:5.0f} | {r['rmse_pos_single']:8.4g} {r['rmse_pos_active']:8.4g} {r['rmse_pos_symbol']:8.4g} "
            f"{r['rmse_pos_active_passive']:8.4g} {r['crb_pos_active']:8.4g} | {r['rmse_dist_single']:8.4g} "
            f"{r['rmse_dist_active']:8.4g} | {r['rmse_radial_single']:8.4g} {r['rmse_radial_active']:8.4g} | "
            f"{r['gain_dist_active_pct']:5.0f}% {r['gain_radial_active_pct']:5.0f}%")
    lines.append("gain: 1 - RMSE(multi-BS active) / RMSE(single BS) for the distance and radial velocity at BS 0")
    return "\n".join(lines)


def fig6_scenario() -> Scenario:
    return Scenario(
        name="fig6",
        description="article Fig. 6: 4-BS active and active+passive sensing of a UAV vs a single BS, 24 GHz, 240 kHz",
        points=tuple({"snr_db": s} for s in SNR_DB),
        trial=trial, summarise=summarise, plot=plot, default_trials=1000, table=table)
