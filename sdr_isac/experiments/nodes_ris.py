"""Node-level case ``bs_ris``: a BS senses a target behind a building through a RIS, against the BS alone.

Scene (global frame, m; :class:`sdr_isac.channel.scene.Scene`, which also
decides what the building blocks):

- BS at (0, 30, 10), its beam along azimuth -15.5 deg (towards the street
  behind the building);
- building: the box x 40 ... 60, y -20 ... 15, z 0 ... 25 (200 dB: the
  paths crossing it are removed);
- target at (90, 5, 1.5) m moving at (-6, 8, 0) m/s (RCS 10 m², height
  known: ground traffic); the BS's line of sight crosses the building;
- RIS at (50, 50, 6) facing -y (yaw -90 deg), 16 x 8 half-wavelength
  elements; it sees both the BS (54 m away, azimuth -67.8 deg in its frame)
  and the target (60.4 m, azimuth 41.6 deg, 26 deg from the specular
  direction of the BS's wave: a plain mirror would miss it).

Without the building the BS's direct echo would be 77.6 dB above the echo
through the steered RIS, and the one-pass paths BS–RIS–target–BS 38.8 dB:
the building removes all of them, and leaves the double pass.

Waveform: the article's high band (REFERENCE.md §4): 24 GHz, 120 kHz, CP
1.33 µs (every path up to 399 m is ISI-free), here N = 256 subcarriers x
M = 56 symbols (four slots), every RE a pilot; one frame per RIS steering, frames back
to back (frame s starts at ``s M T_O``), 31 steerings from -60 to +60 deg
(4 deg apart).  CIM level (:mod:`sdr_isac.channel.cim`) with each frame's
paths from the scene at its start time.

``snr_db``: the per-RE SNR of the BS–RIS–target–RIS–BS echo at the BS with
the RIS steered exactly at the target.  The other steerings scale it by
the RIS's array factor (what the scene computes), and every other path the
scene yields for the BS (none: the direct echo is blocked) keeps its
radar-equation ratio to it.  The noise per RE is 1.

Estimators (:mod:`sdr_isac.fusion.modes.ris`, design false-alarm probability
``PFA`` per scan for both):

- ``single``: the BS alone, its beam on the target's street, the same S
  frames without the RIS; the same detection test on the direct echo's
  delays (range 0 ... 199 m, the CP).  Behind the building it has nothing
  to detect; a false alarm reports its range, radial velocity, its beam
  direction as angle and the position they give (errors against the truth
  seen from the BS).
- ``coop``: :func:`sdr_isac.fusion.modes.ris.estimate_ris_target`; errors of the
  range, radial velocity and azimuth seen from the RIS, and of the global
  position, at the start of the frame the range came from.

Bounds: ``coop`` as in :mod:`sdr_isac.fusion.modes.ris` at the true geometry and
``snr_db`` (the strongest steering for range and velocity); ``single``:
NaN — behind 200 dB of building the BS alone has no Fisher information
(the bound is infinite).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sdr_isac.channel.cim import add_cim_noise, point_target_cim
from sdr_isac.channel.geometry import rotation_z, target_state
from sdr_isac.channel.scene import Scene
from sdr_isac.config import BlockerConfig, FrameConfig, NodeConfig, RisConfig, SceneConfig, TargetConfig
from sdr_isac.experiments.runner import Metrics, Point
from sdr_isac.fusion.modes import ris as fr
from sdr_isac.fusion.multiband import Band, pilot_mask
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["CASES", "trial", "bounds", "scan_deg", "band", "geometry", "truth", "PFA"]

C = SPEED_OF_LIGHT_MPS
CASES = {"bs_ris": (("pos", "range", "velocity", "angle"), "BS-RIS behind a building vs the BS alone")}
CARRIER_HZ = 24e9
SCS_HZ = 120e3
CP_S = 1.33e-6
NUM_SUBCARRIERS = 256
NUM_SYMBOLS = 56
PFA = 1e-3
BS_M = (0.0, 30.0, 10.0)
BS_BEAM_DEG = -15.5
RIS_M = (50.0, 50.0, 6.0)
RIS_YAW_DEG = -90.0
RIS_ELEMENTS = (16, 8)
TARGET_M = (90.0, 5.0, 1.5)
VELOCITY_MPS = (-6.0, 8.0, 0.0)
BUILDING = BlockerConfig(min_m=(40.0, -20.0, 0.0), max_m=(60.0, 15.0, 25.0), attenuation_db=200.0)
MAX_RANGE_RIS_M = 140.0


def band() -> Band:
    """The frames' band: every RE a pilot."""
    return Band("fr2", CARRIER_HZ, SCS_HZ, CP_S, pilot_mask(NUM_SYMBOLS, NUM_SUBCARRIERS))


def scan_deg() -> NDArray[np.float64]:
    """The scan's outgoing azimuths (RIS local frame), degrees, shape (31,)."""
    return np.arange(-60.0, 60.1, 4.0)


def geometry() -> fr.RisGeometry:
    return fr.RisGeometry(np.array(BS_M), np.array(RIS_M), RIS_YAW_DEG, RIS_ELEMENTS[0], 0.5)


def frame_times_s() -> NDArray[np.float64]:
    """Start time of each steering's frame, s."""
    b = band()
    return np.arange(scan_deg().size, dtype=np.float64) * float(b.num_symbols * b.symbol_period_s)


def _scene(with_ris: bool) -> Scene:
    g = geometry()
    cfg = SceneConfig(
        noise=False,
        nodes=(NodeConfig(id="bs0", position_m=BS_M, yaw_deg=BS_BEAM_DEG),),
        targets=(TargetConfig(id="t0", position_m=TARGET_M, velocity_mps=VELOCITY_MPS, rcs_m2=10.0),),
        blockers=(BUILDING,),
        ris=(RisConfig(id="ris0", position_m=RIS_M, yaw_deg=RIS_YAW_DEG, num_elements=RIS_ELEMENTS,
                       steer_deg=(g.incoming_deg, 0.0)),) if with_ris else ())
    return Scene(cfg, FrameConfig(numerology=3, num_rb=21, carrier_hz=CARRIER_HZ))


def _target() -> TargetConfig:
    return TargetConfig(id="t0", position_m=TARGET_M, velocity_mps=VELOCITY_MPS)


def truth(time_s: float) -> dict[str, Any]:
    """Target position and velocity at ``time_s``, and what the RIS and the BS see of it."""
    pos, vel = target_state(_target(), time_s)
    g = geometry()
    out: dict[str, Any] = {"position_m": pos, "velocity_mps": vel}
    for name, origin, yaw in (("ris", g.ris_m, RIS_YAW_DEG), ("bs", g.bs_m, BS_BEAM_DEG)):
        d = pos - origin
        r = float(np.linalg.norm(d))
        local = rotation_z(yaw).T @ (d / r)
        out[f"{name}_range_m"] = r
        out[f"{name}_velocity_mps"] = float(vel @ d / r)
        out[f"{name}_azimuth_rad"] = math.atan2(local[1], local[0])
        out[f"{name}_cone_sine"] = float(local[1])
    return out


@functools.cache
def _paths() -> tuple[list[tuple[NDArray[np.float64], ...]], list[tuple[NDArray[np.float64], ...]]]:
    """(delays s, Dopplers Hz, amplitudes) of every frame with the RIS and without, amplitude 1 = ``snr_db`` 0 dB."""
    rng = np.random.default_rng(0)              # unused by the Swerling-0 target
    g = geometry()
    with_ris, alone = _scene(True), _scene(False)
    # reference: the RIS steered exactly at the target (frame 0)
    with_ris.set_ris_steering("ris0", g.incoming_deg, math.degrees(math.asin(truth(0.0)["ris_cone_sine"])))
    ref = [p for p in with_ris.paths("bs0", "bs0", 0.0, rng) if p.kind == "ris-target" and p.source == "ris0/t0"]
    scale = 1.0 / abs(ref[0].gain)

    def table(scene: Scene, t: float) -> tuple[NDArray[np.float64], ...]:
        ps = scene.paths("bs0", "bs0", t, rng)
        return (np.array([p.delay_s for p in ps]), np.array([p.doppler_hz for p in ps]),
                np.array([p.gain * scale for p in ps], dtype=np.complex128))

    coop, single = [], []
    for phi, t in zip(scan_deg(), frame_times_s(), strict=True):
        with_ris.set_ris_steering("ris0", g.incoming_deg, float(phi))
        coop.append(table(with_ris, float(t)))
        single.append(table(alone, float(t)))
    return coop, single


def _cims(tables: list[tuple[NDArray[np.float64], ...]], snr: float, rng: np.random.Generator) -> NDArray[Any]:
    b = band()
    k = np.arange(b.num_subcarriers)
    h = np.zeros((len(tables), b.num_symbols, b.num_subcarriers), dtype=np.complex128)
    for s, (tau, fd, amp) in enumerate(tables):
        if tau.size:
            h[s] = point_target_cim(k, b.symbol_times_s, b.subcarrier_spacing_hz, tau, fd, amp * math.sqrt(snr))
    return add_cim_noise(h, 1.0, rng)


def _single(cims: NDArray[Any]) -> dict[str, float] | None:
    """The BS alone: same test on its own echo's delays; None when it detects nothing."""
    det = fr.detect_scan(band(), cims, PFA, 0.0, CP_S)
    if not det.detected:
        return None
    truth_t = truth(float(frame_times_s()[det.index]))
    rng_m = C * det.delay_s / 2.0
    dz = TARGET_M[2] - BS_M[2]
    horiz = math.sqrt(max(rng_m**2 - dz**2, 0.0))
    beam = math.radians(BS_BEAM_DEG)
    pos = np.array([BS_M[0] + horiz * math.cos(beam), BS_M[1] + horiz * math.sin(beam), TARGET_M[2]])
    return {"range": rng_m - truth_t["bs_range_m"], "velocity": -C * det.nu / 2.0 - truth_t["bs_velocity_mps"],
            "angle": 0.0 - truth_t["bs_azimuth_rad"],
            "pos": float(np.linalg.norm(pos - truth_t["position_m"]))}


def _coop(cims: NDArray[Any]) -> dict[str, float] | None:
    est = fr.estimate_ris_target(band(), cims, scan_deg(), geometry(), pfa=PFA, max_range_m=MAX_RANGE_RIS_M,
                                 height_m=TARGET_M[2])
    if est is None:
        return None
    truth_t = truth(float(frame_times_s()[est.index]))
    return {"range": est.range_m - truth_t["ris_range_m"], "velocity": est.velocity_mps - truth_t["ris_velocity_mps"],
            "angle": est.azimuth_rad - truth_t["ris_azimuth_rad"],
            "pos": float(np.linalg.norm(est.position_m - truth_t["position_m"]))}


def trial(point: Point, rng: np.random.Generator) -> Metrics:
    """One scan with the RIS and the same airtime for the BS alone, at ``point["snr_db"]`` (module docstring)."""
    snr = 10.0 ** (float(point["snr_db"]) / 10.0)
    coop_tables, single_tables = _paths()
    out: Metrics = {}
    for method, result in (("single", _single(_cims(single_tables, snr, rng))),
                           ("coop", _coop(_cims(coop_tables, snr, rng)))):
        out[f"bs_ris_detected_{method}"] = 0.0 if result is None else 1.0
        for q in CASES["bs_ris"][0]:
            out[f"bs_ris_{q}_err_{method}"] = math.nan if result is None else float(result[q])
    return out


def bounds(snr_db: float) -> dict[str, float]:
    """√CRB of range, radial velocity, azimuth (from the RIS) and position with the RIS; NaN for the BS alone."""
    snr = 10.0 ** (float(snr_db) / 10.0)
    b, g, steer = band(), geometry(), scan_deg()
    gains = fr.scan_gain(np.sin(np.deg2rad(steer)), truth(0.0)["ris_cone_sine"], g.num_elements_y,
                         g.spacing_wavelengths)
    best = int(np.argmax(gains))
    t = truth(float(frame_times_s()[best]))
    crb = b.crb(snr * gains[best] ** 2)
    var_r, var_v = (C / 2.0) ** 2 * float(crb[0, 0]), (C / 2.0) ** 2 * float(crb[1, 1])
    var_u = fr.scan_angle_crb(snr, int(b.pilots.sum()), steer, t["ris_cone_sine"], g.num_elements_y,
                              g.spacing_wavelengths)
    el = math.asin((TARGET_M[2] - RIS_M[2]) / t["ris_range_m"])
    az = t["ris_azimuth_rad"]
    var_az = var_u / (math.cos(az) * math.cos(el)) ** 2
    cov = fr.position_covariance(g, t["ris_range_m"], az, el, var_r, var_az)
    out = {"bs_ris_crb_range_coop": math.sqrt(var_r), "bs_ris_crb_velocity_coop": math.sqrt(var_v),
           "bs_ris_crb_angle_coop": math.sqrt(var_az), "bs_ris_crb_pos_coop": math.sqrt(float(np.trace(cov)))}
    out.update({f"bs_ris_crb_{q}_single": math.nan for q in CASES["bs_ris"][0]})
    return out
