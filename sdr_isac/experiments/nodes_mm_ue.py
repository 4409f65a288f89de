"""Node-level cases of ``sdr-isac experiment nodes``: macro-micro and BS-UE cooperation (article §IV-B, §IV-C).

CIM-level Monte Carlo (:mod:`sdr_isac.channel.cim`), 256 subcarriers x 28
symbols per frame, a small UAV (RCS 0.01 m²) at a known height flying level;
every node's geometry is fixed, each trial draws noise and path phases.
Coverage radii come from the link budgets below
(:mod:`sdr_isac.fusion.coverage`).  ``point["snr_db"]`` is the per-RE SNR
of the **single-node baseline's own echo**; every other link's SNR is that
plus the difference of the two links' link budgets
(:func:`sdr_isac.fusion.coverage.echo_snr_db`: powers, gains, bandwidths,
``1 / (R_tx**2 R_rx**2)``).  A bistatic link also carries the direct path,
30 dB above its echo, and the receiver's clock (ns) and carrier (Hz)
offsets, which the direct path removes.  Arrays: half-wavelength horizontal
ULAs, broadside towards the target's area; the cone angle's ML estimate
(:func:`sdr_isac.fusion.links.array_angle`) with its CRB as variance.

Cases (quantities: ``pos`` horizontal position error, m; ``velocity``
horizontal velocity-vector error, m/s — NaN for a single node, which sees
only the radial component):

- ``macro_micro``: micro BSs (24 GHz, 120 kHz, 4-element array) at (0, 0, 10)
  and (150, 0, 10) m, a macro BS (5.9 GHz, 30 kHz, CP 5.975 µs: ``f T`` equal to
  the micro band's) at (-250, -100, 30) m; the target (-40, 50, 20) m is inside
  micro BS 0's coverage only, so :func:`~sdr_isac.fusion.modes.macro_micro.select_mode`
  picks macro-micro.  The macro frame starts 3.7 ms after the micro frames
  (low synchronisation).  single: micro BS 0 (range + array angle); coop:
  macro + micro 0, joint WLS then symbol-level refinement with the frame
  times modelled.
- ``bs_ue_a``: BS (3.5 GHz, 30 kHz, 4-element array) at (0, 0, 25) m, target
  inside its downlink sensing radius; downlink PRS on the even symbols, a
  UE's uplink SRS on the odd ones.  single: the BS alone (range + angle);
  coop: + the SRS reflection UE -> target -> BS (range sum), fused at the BS.
- ``bs_ue_b``: target between the downlink sensing and uplink communication
  radii; three UEs (23 dBm, 2-element arrays) near it sense monostatically
  on their own frames and upload.  single: UE 0 alone (range + angle);
  coop: the three uploads (ranges, radial velocities, angles) fused at the BS.
- ``bs_ue_c``: target between the uplink and downlink communication radii;
  the BS allocates every third symbol to each of three UEs (downlink
  control only); each UE senses its echo on its symbols, and the UEs
  exchange their measurements over the sidelink and fuse them themselves.
  single: UE 0 alone on its symbols (range + angle); coop: the three UEs'
  ranges, radial velocities and angles.  UE -> target -> UE reflections are
  left out: with UEs about 25 m from the target the reflection's range sum
  exceeds the 30 dB stronger direct sidelink path by less than one range
  cell at 7.68 MHz, and CLEAN cannot separate them (biased range sums).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sdr_isac.channel.cim import bistatic_link_cim, measure_pilots, random_amplitude
from sdr_isac.errors import SensingError
from sdr_isac.experiments.runner import Metrics, Point
from sdr_isac.fusion import hybrid
from sdr_isac.fusion import links as fl
from sdr_isac.fusion.coverage import LinkBudget, echo_snr_db, sensing_radius_m
from sdr_isac.fusion.locate import locate_single
from sdr_isac.fusion.modes import bs_ue, macro_micro
from sdr_isac.fusion.multiband import Band, pilot_mask
from sdr_isac.sensing.crb import angle_crb_rad2
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["CASES", "trial", "bounds", "scene"]

C = SPEED_OF_LIGHT_MPS
CASES = {
    "macro_micro": (("pos", "velocity"), "macro (5.9 GHz) + micro (24 GHz) BS outside the micros' shared coverage, "
                    "vs the micro BS alone"),
    "bs_ue_a": (("pos", "velocity"), "case A: BS downlink echo + UE uplink SRS reflection fused at the BS, "
                "vs the BS alone"),
    "bs_ue_b": (("pos", "velocity"), "case B: three UEs sense and upload, the BS fuses, vs one UE alone"),
    "bs_ue_c": (("pos", "velocity"), "case C: three UEs on BS-allocated symbols fuse among themselves, vs one UE"),
}
N_SC, N_SYM = 256, 28
RCS_M2 = 0.01
DIRECT_OVER_ECHO_DB = 30.0
DETECTION_DB = 13.0

# macro-micro scene
MICRO_BUDGET = LinkBudget(30.0, 20.0, 20.0, 24e9, 120e3, N_SC, N_SC, 7.0, loss_db=16.0)
MACRO_BUDGET = LinkBudget(46.0, 17.0, 17.0, 5.9e9, 30e3, N_SC, N_SC, 5.0, loss_db=16.0)
MICRO_BAND = Band("micro", 24e9, 120e3, 1.33e-6, pilot_mask(N_SYM, N_SC, symbol_step=2))
MACRO_BAND = Band("macro", 5.9e9, 30e3, 5.975e-6, pilot_mask(N_SYM, N_SC, symbol_step=2))
MICROS_M = np.array([[0.0, 0.0, 10.0], [150.0, 0.0, 10.0]])
MACRO_M = np.array([-250.0, -100.0, 30.0])
MICRO_AXIS = (1.0, 0.0)                      # broadside +y, towards the micros' area
MICRO_ELEMENTS = 4
MM_TARGET_M = np.array([-40.0, 50.0, 20.0])
MM_VELOCITY_MPS = np.array([12.0, -8.0, 0.0])
MACRO_FRAME_S = 3.7e-3

# BS-UE scene
BS_SENSE = LinkBudget(43.0, 17.0, 17.0, 3.5e9, 30e3, N_SC, N_SC, 5.0, loss_db=20.0)
UE_SENSE = LinkBudget(23.0, 5.0, 5.0, 3.5e9, 30e3, N_SC, N_SC, 7.0, loss_db=20.0)     # UE's own echo
UE_TO_BS_SENSE = LinkBudget(23.0, 5.0, 17.0, 3.5e9, 30e3, N_SC, N_SC, 5.0, loss_db=20.0)
UPLINK = LinkBudget(23.0, 0.0, 17.0, 3.5e9, 30e3, N_SC, N_SC, 5.0, loss_db=44.0)
DOWNLINK = LinkBudget(43.0, 17.0, 0.0, 3.5e9, 30e3, N_SC, N_SC, 7.0, loss_db=50.0)
UE_BAND_CARRIER_HZ = 3.5e9
BS_M = np.array([0.0, 0.0, 25.0])
BS_AXIS = (1.0, 0.0)
BS_ELEMENTS, UE_ELEMENTS = 4, 2
UE_OFFSETS_M = np.array([[-15.0, -12.0], [12.0, -14.0], [2.0, -18.0]])     # UEs relative to the target (x, y)
UE_AXIS = (1.0, 0.0)                                                         # UEs' broadside +y, towards the target
UE_HEIGHT_M = 1.5
UE_CLOCK_S = (0.0, 25e-9, -40e-9)
UE_CFO_HZ = (0.0, 400.0, -650.0)
BSUE_HEIGHT_M = 15.0
BSUE_VELOCITY_MPS = np.array([9.0, 6.0, 0.0])
DL_BAND = Band("dl", 3.5e9, 30e3, 2.34e-6, pilot_mask(N_SYM, N_SC, symbol_step=2))
UL_BAND = Band("srs", 3.5e9, 30e3, 2.34e-6, pilot_mask(N_SYM, N_SC, symbol_step=2, symbol_offset=1))
UE_BAND = Band("ue", 3.5e9, 30e3, 2.34e-6, pilot_mask(N_SYM, N_SC, symbol_step=2))
UE_TDM_BANDS = [Band(f"ue{i}", 3.5e9, 30e3, 2.34e-6, m) for i, m in enumerate(bs_ue.allocate_symbols(3, N_SYM, N_SC))]


def _radii() -> bs_ue.CoverageRadii:
    return bs_ue.coverage_radii(BS_SENSE, UPLINK, DOWNLINK, RCS_M2, N_SYM // 2, DETECTION_DB)


def scene() -> dict[str, Any]:
    """Geometry of every case (m), with the coverage radii it was placed by."""
    r = _radii()
    micro_r = sensing_radius_m(MICRO_BUDGET, RCS_M2, N_SYM, DETECTION_DB)
    r_ue = sensing_radius_m(UE_SENSE, RCS_M2, N_SYM // 3, DETECTION_DB)
    # case targets along the BS's broadside (+y): A at 0.6 R_ds, B and C half way between the radii
    ys = {"a": 0.6 * r.downlink_sensing_m, "b": 0.5 * (r.downlink_sensing_m + r.uplink_comm_m),
          "c": 0.5 * (r.uplink_comm_m + r.downlink_comm_m)}
    targets = {k: np.array([0.0, math.sqrt(y**2 - (BSUE_HEIGHT_M - BS_M[2]) ** 2), BSUE_HEIGHT_M])
               for k, y in ys.items()}
    ues = {k: np.column_stack([t[0] + UE_OFFSETS_M[:, 0], t[1] + UE_OFFSETS_M[:, 1],
                               np.full(3, UE_HEIGHT_M)]) for k, t in targets.items()}
    # the SRS UE in case A, beside and in front of the target: its reflection's range sum exceeds the direct path
    # by 66 m (1.7 range cells at 7.68 MHz), so CLEAN separates the echo from the 30 dB stronger direct path, and
    # its bistatic rate sees the velocity across the BS's line of sight
    ue_a = targets["a"] + np.array([35.0, -25.0, UE_HEIGHT_M - BSUE_HEIGHT_M])
    return {"radii": r, "micro_radius_m": micro_r, "ue_radius_m": r_ue, "targets": targets, "ues": ues,
            "ue_a": ue_a}


def _unit(d: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(d / np.linalg.norm(d), dtype=np.float64)


def _cone(node: NDArray[np.float64], axis: tuple[float, float], p: NDArray[np.float64]) -> float:
    return float(np.arcsin(_unit(p - node) @ np.array([axis[0], axis[1], 0.0])))


def _echo(band: Band, node: NDArray[np.float64], target: NDArray[np.float64], velocity: NDArray[np.float64],
          snr: float, rng: np.random.Generator) -> list[tuple[float, float, complex]]:
    d = target - node
    r = float(np.linalg.norm(d))
    return [(2 * r / C, -2 * float(d @ velocity) / r * band.carrier_hz / C, random_amplitude(snr, rng))]


def _mono(band: Band, node: NDArray[np.float64], target: NDArray[np.float64], velocity: NDArray[np.float64],
          snr: float, rng: np.random.Generator) -> tuple[NDArray[np.complex128], fl.PathEstimate]:
    """A monostatic echo's CIM and its path (single antenna)."""
    h = measure_pilots(band, _echo(band, node, target, velocity, snr, rng), rng)
    return h, fl.estimate_paths(band, h)[0]


def _mono_array(band: Band, node: NDArray[np.float64], target: NDArray[np.float64], velocity: NDArray[np.float64],
                snr: float, rng: np.random.Generator, axis: tuple[float, float], elements: int
                ) -> tuple[NDArray[np.complex128], fl.PathEstimate, tuple[float, float]]:
    """A monostatic echo on a ULA: channel 0's CIM, its path, and the cone angle with its CRB variance."""
    paths = _echo(band, node, target, velocity, snr, rng)
    phases = np.exp(2j * np.pi * 0.5 * np.arange(elements) * np.sin(_cone(node, axis, target)))
    h_all = measure_pilots(band, paths, rng, channel_phases=phases[:, None])
    (path,) = fl.estimate_paths(band, h_all[0])
    k = np.arange(band.num_subcarriers) * band.subcarrier_spacing_hz
    t = band.symbol_times_s * band.carrier_hz
    z = np.einsum("cmk,m,k->c", h_all, np.exp(-2j * np.pi * t * path.nu), np.exp(2j * np.pi * k * path.delay_s))
    cone = fl.array_angle(z, 0.5)
    var = float(angle_crb_rad2(max(path.snr_re, 1e-6), int(band.pilots.sum()), 0.5 * np.arange(elements),
                               float(np.clip(cone, -1.4, 1.4))))
    return h_all[0], path, (cone, var)


def _bistatic_paths(band: Band, tx: NDArray[np.float64], rx: NDArray[np.float64], target: NDArray[np.float64],
                    velocity: NDArray[np.float64], snr: float, clock_s: float, cfo_hz: float,
                    rng: np.random.Generator) -> tuple[fl.PathEstimate, fl.PathEstimate]:
    base = float(np.linalg.norm(tx - rx))
    d_tx, d_rx = target - tx, target - rx
    s = float(np.linalg.norm(d_tx) + np.linalg.norm(d_rx))
    rate = float(_unit(d_tx) @ velocity + _unit(d_rx) @ velocity)
    h = bistatic_link_cim(band, base, s, rate, snr, rng, direct_over_echo_db=DIRECT_OVER_ECHO_DB, clock_s=clock_s,
                          cfo_hz=cfo_hz, speed_mps=C)
    direct, echo = fl.estimate_paths(band, h, num_paths=2)
    if echo.snr_re > direct.snr_re:          # CLEAN returns the strongest first; the direct path is the strong one
        direct, echo = echo, direct
    return direct, echo


def _single_xy(node: NDArray[np.float64], axis: tuple[float, float], path: fl.PathEstimate, cone: float,
               height: float) -> NDArray[np.float64]:
    try:
        return locate_single(node, axis, C * path.delay_s / 2, cone, height)
    except SensingError:            # an outlier range shorter than the height difference: the node's own spot
        return np.asarray(node[:2], dtype=np.float64).copy()


def _errors(out: Metrics, case: str, truth: NDArray[np.float64], velocity: NDArray[np.float64],
            single_xy: NDArray[np.float64], coop: hybrid.HybridEstimate | None) -> None:
    out[f"{case}_pos_err_single"] = float(np.linalg.norm(single_xy - truth[:2]))
    out[f"{case}_velocity_err_single"] = math.nan
    out[f"{case}_pos_err_coop"] = math.nan if coop is None else float(np.linalg.norm(coop.xy_m - truth[:2]))
    out[f"{case}_velocity_err_coop"] = math.nan if coop is None else float(
        np.linalg.norm(coop.v_xy_mps - velocity[:2]))


def _rel_db(budget: LinkBudget, tx: NDArray[np.float64], rx: NDArray[np.float64], p: NDArray[np.float64],
            base: tuple[LinkBudget, NDArray[np.float64], NDArray[np.float64]]) -> float:
    """Link budget of tx -> p -> rx relative to the baseline echo's, dB."""
    b_budget, b_tx, b_rx = base
    return (echo_snr_db(budget, RCS_M2, float(np.linalg.norm(p - tx)), float(np.linalg.norm(p - rx)))
            - echo_snr_db(b_budget, RCS_M2, float(np.linalg.norm(p - b_tx)), float(np.linalg.norm(p - b_rx))))


def _lin(db: float) -> float:
    return float(10.0 ** (db / 10.0))


# ------------------------------------------------------------------------------------------------- trials

def _trial_macro_micro(snr0: float, rng: np.random.Generator, out: Metrics) -> None:
    p, v = MM_TARGET_M, MM_VELOCITY_MPS
    micro_r = sensing_radius_m(MICRO_BUDGET, RCS_M2, N_SYM, DETECTION_DB)
    base = (MICRO_BUDGET, MICROS_M[0], MICROS_M[0])
    h_micro, path, ang = _mono_array(MICRO_BAND, MICROS_M[0], p, v, snr0, rng, MICRO_AXIS, MICRO_ELEMENTS)
    single = _single_xy(MICROS_M[0], MICRO_AXIS, path, ang[0], float(p[2]))
    p_macro = p + v * MACRO_FRAME_S                           # where the target is when the macro frame starts
    snr_macro = snr0 * _lin(_rel_db(MACRO_BUDGET, MACRO_M, MACRO_M, p, base))
    h_macro, _ = _mono(MACRO_BAND, MACRO_M, p_macro, v, snr_macro, rng)
    macro = macro_micro.NodeCim(MACRO_M, MACRO_BAND, h_macro, MACRO_FRAME_S)
    micros = [macro_micro.NodeCim(MICROS_M[0], MICRO_BAND, h_micro, 0.0),
              macro_micro.NodeCim(MICROS_M[1], MICRO_BAND, np.zeros_like(h_micro), 0.0)]
    angle = hybrid.AngleMeasurement(0, MICRO_AXIS, ang[0], ang[1])
    try:
        _, est = macro_micro.fuse_sites(macro, micros, [micro_r, micro_r], np.array([*single, p[2]]), float(p[2]),
                                        np.array([*single, 0.0, 0.0]), [angle])
    except SensingError:
        est = None
    _errors(out, "macro_micro", p, v, single, est)


def _trial_bs_ue_a(snr0: float, rng: np.random.Generator, out: Metrics, sc: dict[str, Any]) -> None:
    p, v, ue = sc["targets"]["a"], BSUE_VELOCITY_MPS, sc["ue_a"]
    _, echo, ang = _mono_array(DL_BAND, BS_M, p, v, snr0, rng, BS_AXIS, BS_ELEMENTS)
    single = _single_xy(BS_M, BS_AXIS, echo, ang[0], float(p[2]))
    snr_srs = snr0 * _lin(_rel_db(UE_TO_BS_SENSE, ue, BS_M, p, (BS_SENSE, BS_M, BS_M)))
    direct, srs = _bistatic_paths(UL_BAND, ue, BS_M, p, v, snr_srs, UE_CLOCK_S[1], UE_CFO_HZ[1], rng)
    detected = bs_ue.detected(srs, UL_BAND, DETECTION_DB)
    out["bs_ue_a_detected_coop"] = float(detected)
    if not detected:            # the SRS reflection is below the detection threshold: the BS's own estimate
        _errors(out, "bs_ue_a", p, v, single, None)
        out["bs_ue_a_pos_err_coop"] = out["bs_ue_a_pos_err_single"]
        return
    try:
        est = bs_ue.fuse_case_a(BS_M, ue, echo, direct, srs, float(p[2]), np.array([*single, 0.0, 0.0]),
                                hybrid.AngleMeasurement(0, BS_AXIS, ang[0], ang[1]), C)
    except SensingError:
        est = None
    _errors(out, "bs_ue_a", p, v, single, est)


def _trial_ues(case: str, snr0: float, rng: np.random.Generator, out: Metrics, sc: dict[str, Any]) -> None:
    key = case[-1]
    p, v, ues = sc["targets"][key], BSUE_VELOCITY_MPS, sc["ues"][key]
    base = (UE_SENSE, ues[0], ues[0])
    bands = [UE_BAND] * 3 if key == "b" else UE_TDM_BANDS
    paths, angles = [], []
    for i in range(3):
        snr = snr0 * _lin(_rel_db(UE_SENSE, ues[i], ues[i], p, base))
        _, path, ang = _mono_array(bands[i], ues[i], p, v, snr, rng, UE_AXIS, UE_ELEMENTS)
        paths.append(path)
        angles.append(hybrid.AngleMeasurement(i, UE_AXIS, ang[0], ang[1]))
    single = _single_xy(ues[0], UE_AXIS, paths[0], angles[0].angle_rad, float(p[2]))
    start = np.array([*single, 0.0, 0.0])
    try:
        if key == "b":
            reports = [fl.monostatic_measurement(i, q, C) for i, q in enumerate(paths)]
            est = bs_ue.fuse_case_b(ues, reports, float(p[2]), start, angles)
        else:
            est = bs_ue.fuse_case_c(ues, paths, {}, float(p[2]), start, angles, C)
    except SensingError:
        est = None
    _errors(out, case, p, v, single, est)


def trial(point: Point, rng: np.random.Generator) -> Metrics:
    """One trial of the four cases at ``point["snr_db"]`` (per-RE SNR of each case's single-node echo, dB)."""
    snr0 = _lin(float(point["snr_db"]))
    sc = scene()
    out: Metrics = {}
    streams = rng.spawn(4)
    _trial_macro_micro(snr0, streams[0], out)
    _trial_bs_ue_a(snr0, streams[1], out, sc)
    _trial_ues("bs_ue_b", snr0, streams[2], out, sc)
    _trial_ues("bs_ue_c", snr0, streams[3], out, sc)
    return out


# ------------------------------------------------------------------------------------------------- bounds

def _mono_var(band: Band, snr: float) -> tuple[float, float]:
    crb = band.crb(snr)
    return (C / 2) ** 2 * float(crb[0, 0]), (C / 2) ** 2 * float(crb[1, 1])


def _bi_var(band: Band, snr: float) -> tuple[float, float]:
    crb = band.crb(snr) + band.crb(snr * 10 ** (DIRECT_OVER_ECHO_DB / 10))
    return C**2 * float(crb[0, 0]), C**2 * float(crb[1, 1])


def _angle_var(band: Band, snr: float, elements: int, node: NDArray[np.float64], axis: tuple[float, float],
               p: NDArray[np.float64]) -> float:
    return float(angle_crb_rad2(snr, int(band.pilots.sum()), 0.5 * np.arange(elements), _cone(node, axis, p)))


def _record_bounds(out: dict[str, float], case: str, nodes: NDArray[np.float64], p: NDArray[np.float64],
                   v: NDArray[np.float64], links: list[tuple[int, int]], var_r: list[float], var_v: list[float],
                   angles: list[tuple[int, tuple[float, float], float]], times: NDArray[np.float64] | None) -> None:
    """Single: node 0's range (link 0) and angle (angle 0); coop: every link and angle."""
    single = hybrid.position_crb(nodes[:1], p, [(0, 0)], var_r[:1], angles[:1])
    coop = hybrid.crb(nodes, p, v, links, var_r, var_v, angles, times)
    out[f"{case}_crb_pos_single"] = math.sqrt(float(np.trace(single)))
    out[f"{case}_crb_velocity_single"] = math.nan
    out[f"{case}_crb_pos_coop"] = math.sqrt(float(np.trace(coop[:2, :2])))
    out[f"{case}_crb_velocity_coop"] = math.sqrt(float(np.trace(coop[2:, 2:])))


def bounds(snr_db: float) -> dict[str, float]:
    """√CRB of every case (position √trace, m; velocity vector √trace, m/s); NaN where the single node has none."""
    snr0 = _lin(snr_db)
    sc = scene()
    out: dict[str, float] = {}
    # macro-micro: micro 0 (node 0) and the macro (node 1), the macro's frame 3.7 ms later
    p, v = MM_TARGET_M, MM_VELOCITY_MPS
    nodes = np.stack([MICROS_M[0], MACRO_M])
    snr_macro = snr0 * _lin(_rel_db(MACRO_BUDGET, MACRO_M, MACRO_M, p, (MICRO_BUDGET, MICROS_M[0], MICROS_M[0])))
    (r0, v0), (r1, v1) = _mono_var(MICRO_BAND, snr0), _mono_var(MACRO_BAND, snr_macro)
    ang = [(0, MICRO_AXIS, _angle_var(MICRO_BAND, snr0, MICRO_ELEMENTS, MICROS_M[0], MICRO_AXIS, p))]
    _record_bounds(out, "macro_micro", nodes, p, v, [(0, 0), (1, 1)], [r0, r1], [v0, v1], ang,
                   np.array([0.0, MACRO_FRAME_S]))
    # case A: BS (node 0) and the SRS UE (node 1)
    p, v, ue = sc["targets"]["a"], BSUE_VELOCITY_MPS, sc["ue_a"]
    nodes = np.stack([BS_M, ue])
    snr_srs = snr0 * _lin(_rel_db(UE_TO_BS_SENSE, ue, BS_M, p, (BS_SENSE, BS_M, BS_M)))
    (r0, v0), (r1, v1) = _mono_var(DL_BAND, snr0), _bi_var(UL_BAND, snr_srs)
    ang = [(0, BS_AXIS, _angle_var(DL_BAND, snr0, BS_ELEMENTS, BS_M, BS_AXIS, p))]
    _record_bounds(out, "bs_ue_a", nodes, p, v, [(0, 0), (1, 0)], [r0, r1], [v0, v1], ang, None)
    # cases B and C: three UEs
    for key, bands in (("b", [UE_BAND] * 3), ("c", UE_TDM_BANDS)):
        p, ues = sc["targets"][key], sc["ues"][key]
        base = (UE_SENSE, ues[0], ues[0])
        links, var_r, var_v, ang = [], [], [], []
        for i in range(3):
            snr = snr0 * _lin(_rel_db(UE_SENSE, ues[i], ues[i], p, base))
            r_i, v_i = _mono_var(bands[i], snr)
            links.append((i, i))
            var_r.append(r_i)
            var_v.append(v_i)
            ang.append((i, UE_AXIS, _angle_var(bands[i], snr, UE_ELEMENTS, ues[i], UE_AXIS, p)))
        _record_bounds(out, f"bs_ue_{key}", ues, p, v, links, var_r, var_v, ang, None)
    return out
