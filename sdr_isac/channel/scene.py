"""The simulated scene: which propagation paths connect a transmitter to a receiver.

Every path has a delay, a Doppler shift, a complex gain and directions of
departure and arrival.  Gains follow the radar equation for a chain of point
scatterers (K = 0: line of sight; K = 1: a target; K = 3: target seen through
a RIS twice)::

    P_r / P_t = G_t G_r lambda**2 prod(sigma_k) / ((4 pi)**(K + 2) prod(d_i**2))

with d_i the segment lengths (Skolnik, Radar Handbook, ch. 1 and 23; the
K = 1 case is the bistatic radar equation); G_t and G_r are the nodes' boresight gains times their
element patterns towards the path (``antenna_pattern``: isotropic, or the TR 38.901 sector element).
Walls are mirrors (image method) with a power reflection coefficient.  A RIS element of area A acts as
a scatterer of RCS 4 pi A**2 / lambda**2 with its programmed phase, so a
phase-matched surface of N elements has the flat-plate RCS 4 pi (N A)**2 / lambda**2.

Doppler: f_D = -(f_c / c) dL/dt for path length L, so a monostatic target
moving away (positive radial velocity) has negative Doppler, f_D = -2 v f_c / c.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sdr_isac.channel.geometry import (
    azimuth_elevation,
    element_pattern_db,
    element_positions,
    path_attenuation_db,
    rotation_z,
    steering_vector,
    target_state,
    to_local,
)
from sdr_isac.config import FrameConfig, NodeConfig, RisConfig, SceneConfig
from sdr_isac.errors import InputError
from sdr_isac.units import SPEED_OF_LIGHT_MPS, db_to_linear

__all__ = ["Path", "Scene"]

_C = SPEED_OF_LIGHT_MPS
_FOUR_PI = 4.0 * math.pi


@dataclass
class Path:
    """One propagation path from a transmitting node to a receiving node.

    Attributes
    ----------
    kind : str
        ``target``, ``clutter``, ``wall``, ``los``, ``leakage``, ``ris-target``.
    source : str
        Id of the scatterer (target id, ``wall0``, ``ris0/t0``, ...).
    tx, rx : str
        Node ids.
    length_m : float
        Geometric path length L (2 R monostatic, the range sum bistatic).
    delay_s : float
        L / c plus the receiver's timing and clock offsets.
    doppler_hz : float
        -(f_c / c) dL/dt.
    gain : complex
        Field amplitude ratio (sqrt of the power ratio) times the carrier
        phase exp(-j 2 pi f_c L / c) and any RIS/reflection phase.
    departure_local, arrival_local : ndarray, shape (3,)
        Unit directions at the transmitter and receiver in their local frames.
    truth : dict
        What the path represents, for ground-truth records.
    """

    kind: str
    source: str
    tx: str
    rx: str
    length_m: float
    delay_s: float
    doppler_hz: float
    gain: complex
    departure_local: NDArray[np.float64]
    arrival_local: NDArray[np.float64]
    truth: dict[str, Any] = field(default_factory=dict)


class Scene:
    """Nodes, targets and structures of a :class:`~sdr_isac.config.SceneConfig`.

    Parameters
    ----------
    config : SceneConfig
        The scene.
    frame : FrameConfig
        The frame of every node that does not set its own.
    """

    def __init__(self, config: SceneConfig, frame: FrameConfig):
        self.config = config
        self.frame = frame
        self.nodes = {n.id: n for n in config.nodes}
        self._ris_steer = {r.id: tuple(r.steer_deg) for r in config.ris}

    # ---- nodes ------------------------------------------------------------------
    def node(self, node_id: str) -> NodeConfig:
        """The node called ``node_id`` (ConfigError naming the known ids otherwise)."""
        return self.config.node(node_id)

    def node_frame(self, node_id: str) -> FrameConfig:
        """The frame node ``node_id`` transmits."""
        return self.node(node_id).frame or self.frame

    def wavelength_m(self, node_id: str) -> float:
        """Carrier wavelength of a node, m."""
        return _C / self.node_frame(node_id).carrier_hz

    def rx_elements(self, node_id: str) -> NDArray[np.float64]:
        """Receive element positions in the node's local frame, shape (E, 3), m."""
        node = self.node(node_id)
        return element_positions(node.rx_array, self.wavelength_m(node_id))

    def tx_elements(self, node_id: str) -> NDArray[np.float64]:
        """Transmit element positions in the node's local frame, shape (E, 3), m."""
        node = self.node(node_id)
        return element_positions(node.tx_array, self.wavelength_m(node_id))

    def set_ris_steering(self, ris_id: str, incoming_deg: float, outgoing_deg: float) -> None:
        """Program RIS ``ris_id`` to reflect from azimuth ``incoming_deg`` towards ``outgoing_deg`` (local)."""
        if ris_id not in self._ris_steer:
            raise InputError(f"ris_id = {ris_id!r}: allowed {sorted(self._ris_steer)}")
        self._ris_steer[ris_id] = (float(incoming_deg), float(outgoing_deg))

    def target_states(self, time_s: float) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
        """Position and velocity of every target at ``time_s``."""
        return {t.id: target_state(t, time_s) for t in self.config.targets}

    # ---- paths --------------------------------------------------------------------
    def paths(self, tx_id: str, rx_id: str, time_s: float, rng: np.random.Generator) -> list[Path]:
        """All paths from node ``tx_id`` to node ``rx_id`` at scene time ``time_s``.

        Swerling-1 targets draw a new amplitude from ``rng`` on each call
        (one call per frame).
        """
        tx, rx = self.node(tx_id), self.node(rx_id)
        lam = self.wavelength_m(tx_id)
        f_c = self.node_frame(tx_id).carrier_hz
        base = db_to_linear(tx.antenna_gain_dbi + rx.antenna_gain_dbi) * lam**2
        p_tx, p_rx = np.asarray(tx.position_m, float), np.asarray(rx.position_m, float)
        offset = rx.timing_offset_s + (rx.clock_offset_s - tx.clock_offset_s)
        out: list[Path] = []
        blockers = self.config.blockers

        def add(kind: str, source: str, points: list[NDArray[np.float64]], sigma_prod: float, rate: float,
                extra_phase: complex = 1.0, truth: dict[str, Any] | None = None) -> None:
            seg = [float(np.linalg.norm(b - a)) for a, b in zip(points[:-1], points[1:])]
            if min(seg) <= 0:
                return
            k = len(points) - 2
            dep = to_local((points[1] - points[0]) / seg[0], tx.yaw_deg)
            arr = to_local((points[-2] - points[-1]) / seg[-1], rx.yaw_deg)
            power = base * sigma_prod / (_FOUR_PI ** (k + 2) * math.prod(s * s for s in seg))
            # the elements' gains towards the path (TR 38.901 sector elements fall off away from boresight)
            pattern_db = element_pattern_db(dep, tx.antenna_pattern) + element_pattern_db(arr, rx.antenna_pattern)
            power *= db_to_linear(pattern_db - path_attenuation_db(points, blockers))
            if power <= 0 or power < 1e-30 * base:
                return
            length = sum(seg)
            phase = np.exp(-2j * math.pi * length / lam)
            doppler = -f_c * rate / _C
            info = {"kind": kind, "source": source, "tx": tx_id, "rx": rx_id, "length_m": length,
                    "doppler_hz": doppler, **(truth or {})}
            out.append(Path(kind, source, tx_id, rx_id, length, length / _C + offset, doppler,
                            complex(math.sqrt(power) * phase * extra_phase), dep, arr, info))

        if tx_id != rx_id:
            add("los", tx_id, [p_tx, p_rx], 1.0, 0.0)
        states = self.target_states(time_s)
        for target in self.config.targets:
            pos, vel = states[target.id]
            rate = float(vel @ _unit(pos - p_tx) + vel @ _unit(pos - p_rx))
            sigma = target.rcs_m2
            if target.swerling == 1:
                sigma *= rng.exponential()
            truth = {"target": target.id, "position_m": pos.tolist(), "velocity_mps": vel.tolist()}
            n_before = len(out)
            add("target", target.id, [p_tx, pos, p_rx], sigma, rate, truth=truth)
            if target.snr_per_re_db is not None and len(out) > n_before:
                # the override replaces the radar equation's free-space mean (powers, gains, range, mean RCS):
                # what is in the way (blockers) and the RCS fluctuation (Swerling 1) still apply
                out[-1].truth["snr_per_re_db_override"] = (
                    target.snr_per_re_db + 10.0 * math.log10(sigma / target.rcs_m2)
                    - path_attenuation_db([p_tx, pos, p_rx], blockers))
            for ris in self.config.ris:
                self._add_ris_paths(add, ris, target.id, pos, vel, p_tx, p_rx, sigma, lam, truth)
        for i, clutter in enumerate(self.config.clutter):
            add("clutter", f"clutter{i}", [p_tx, np.asarray(clutter.position_m, float), p_rx], clutter.rcs_m2, 0.0)
        for i, wall in enumerate(self.config.walls):
            point = _mirror_point(p_tx, p_rx, np.asarray(wall.point_m, float), np.asarray(wall.normal, float))
            if point is not None:
                # a mirror is a scatterer whose "RCS" makes the chain formula give Friis over the unfolded path
                d1, d2 = float(np.linalg.norm(point - p_tx)), float(np.linalg.norm(p_rx - point))
                sigma = float(db_to_linear(wall.reflection_db)) * _FOUR_PI * (d1 * d2 / (d1 + d2)) ** 2
                add("wall", f"wall{i}", [p_tx, point, p_rx], sigma, 0.0)
        if tx_id == rx_id and tx.transmits and tx.leakage_isolation_db > 0:
            amp = 10 ** (-tx.leakage_isolation_db / 20.0)
            out.append(Path("leakage", tx_id, tx_id, rx_id, 0.0, offset, 0.0, complex(amp),
                            np.array([1.0, 0, 0]), np.array([1.0, 0, 0]),
                            {"kind": "leakage", "source": tx_id, "isolation_db": tx.leakage_isolation_db}))
        return out

    def _add_ris_paths(self, add: Any, ris: RisConfig, target_id: str, pos: NDArray[np.float64],
                       vel: NDArray[np.float64], p_tx: NDArray[np.float64], p_rx: NDArray[np.float64],
                       sigma: float, lam: float, truth: dict[str, Any]) -> None:
        """TX -> RIS -> target -> RIS -> RX, and the mixed one-RIS-pass paths.

        One pass from point a to point b scatters like an object of "RCS" ``G_e A F(a) F(b) |AF(a, b)|**2``
        (Tang et al., IEEE TWC 2021, eq. 21, with the chain formula of this module): ``G_e`` the element gain
        (``element_gain_dbi``), ``A`` the element area (spacing squared), ``F = cos(theta)**q`` the element's
        normalised power pattern at angle ``theta`` from the surface normal (0 behind the surface; ``q = G_e /
        2 - 1``, at least 0, so that the pattern integrates to the element gain), and ``AF`` the array factor
        of the programmed phases, summed over the elements with each element's own distance to a and b
        (spherical waves: exact near a large surface, where a far-field sum would overstate the gain).
        """
        centre = np.asarray(ris.position_m, float)
        ny, nz = ris.num_elements
        d = ris.spacing_wavelengths * lam
        yy, zz = np.meshgrid((np.arange(ny) - (ny - 1) / 2) * d, (np.arange(nz) - (nz - 1) / 2) * d)
        local = np.stack([np.zeros(ny * nz), yy.reshape(-1), zz.reshape(-1)], axis=1)
        elements = centre + local @ rotation_z(ris.yaw_deg).T                     # element positions, global
        gain_area = float(db_to_linear(ris.element_gain_dbi)) * d * d
        q = max(float(db_to_linear(ris.element_gain_dbi)) / 2.0 - 1.0, 0.0)
        inc, outg = (math.radians(a) for a in self._ris_steer[ris.id])
        u_in = np.array([math.cos(inc), math.sin(inc), 0.0])
        u_out = np.array([math.cos(outg), math.sin(outg), 0.0])
        profile = np.exp(-2j * math.pi * (local @ (u_in + u_out)) / lam)        # programmed phases

        def pattern(point: NDArray[np.float64]) -> float:
            cos_theta = float(to_local(_unit(point - centre), ris.yaw_deg)[0])
            return cos_theta**q if cos_theta > 0 else 0.0

        def one_pass(a: NDArray[np.float64], b: NDArray[np.float64]) -> tuple[float, complex]:
            """(RCS of the pass, the array factor), from element distances relative to the centre's."""
            ra, rb = float(np.linalg.norm(a - centre)), float(np.linalg.norm(b - centre))
            ea = np.maximum(np.linalg.norm(a - elements, axis=1), lam / 100)
            eb = np.maximum(np.linalg.norm(b - elements, axis=1), lam / 100)
            spherical = (ra / ea) * (rb / eb) * np.exp(-2j * math.pi * ((ea - ra) + (eb - rb)) / lam)
            af = complex(np.sum(profile * spherical))
            return gain_area * pattern(a) * pattern(b) * abs(af) ** 2, af

        sigma_tx, af_tx = one_pass(p_tx, pos)
        sigma_rx, af_rx = (sigma_tx, af_tx) if np.allclose(p_tx, p_rx) else one_pass(pos, p_rx)
        rate_t_ris = float(vel @ _unit(pos - centre))
        rate_tx, rate_rx = float(vel @ _unit(pos - p_tx)), float(vel @ _unit(pos - p_rx))
        # each RIS pass scatters with its "RCS" (one_pass); the array factor's phase rides along
        add("ris-target", f"{ris.id}/{target_id}", [p_tx, centre, pos, centre, p_rx],
            sigma_tx * sigma * sigma_rx, 2 * rate_t_ris,
            extra_phase=np.exp(1j * (np.angle(af_tx) + np.angle(af_rx))), truth={**truth, "ris": ris.id})
        add("ris-target", f"{ris.id}/{target_id}/tx", [p_tx, centre, pos, p_rx],
            sigma_tx * sigma, rate_t_ris + rate_rx,
            extra_phase=np.exp(1j * np.angle(af_tx)), truth={**truth, "ris": ris.id})
        add("ris-target", f"{ris.id}/{target_id}/rx", [p_tx, pos, centre, p_rx],
            sigma * sigma_rx, rate_tx + rate_t_ris,
            extra_phase=np.exp(1j * np.angle(af_rx)), truth={**truth, "ris": ris.id})


def _unit(v: NDArray[np.float64]) -> NDArray[np.float64]:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else np.zeros(3)


def _mirror_point(a: NDArray[np.float64], b: NDArray[np.float64], point: NDArray[np.float64],
                  normal: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """Specular reflection point on a plane for a path a -> plane -> b, or None if a and b are on opposite sides."""
    n = normal / np.linalg.norm(normal)
    da, db = float((a - point) @ n), float((b - point) @ n)
    if da * db <= 0:
        return None
    image = a - 2 * da * n
    t = (image - point) @ n
    direction = b - image
    denom = direction @ n
    if abs(denom) < 1e-12:
        return None
    s = -t / denom
    return image + s * direction


def azimuth_of(path: Path) -> float:
    """Local azimuth of arrival of a path, radians."""
    return azimuth_elevation(path.arrival_local)[0]


def combined_steering(scene: Scene, path: Path) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
    """Receive and transmit steering vectors of a path (leakage: all ones)."""
    rx_pos, tx_pos = scene.rx_elements(path.rx), scene.tx_elements(path.tx)
    if path.kind == "leakage":
        return np.ones(len(rx_pos), complex), np.ones(len(tx_pos), complex)
    return (steering_vector(rx_pos, path.arrival_local, scene.wavelength_m(path.rx)),
            steering_vector(tx_pos, path.departure_local, scene.wavelength_m(path.tx)))
