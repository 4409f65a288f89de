"""The ``[scene]`` section: the simulated world (nodes and their arrays, targets, walls, clutter, blockers, RIS)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sdr_isac.config.base import _MAX_SEED, _check_choice, _check_fields, _fail, _num
from sdr_isac.config.frame import FrameConfig
from sdr_isac.errors import ConfigError

#: the element patterns a node may have (:func:`sdr_isac.channel.geometry.element_pattern_db`)
ANTENNA_PATTERNS = ("isotropic", "38.901")

__all__ = ["ANTENNA_PATTERNS", "ArrayConfig", "NodeConfig", "TargetConfig", "WallConfig", "ClutterConfig",
           "BlockerConfig", "RisConfig", "SceneConfig"]

#: Largest coordinate of a position, m: the Earth's scale (ECEF coordinates reach 6.4e6 m; 1e7 m also
#: covers aircraft and low orbits), so geocentric and local coordinates both fit.
_MAX_POSITION_M = 1e7
#: Largest velocity component, m/s: a low-orbit satellite moves at 7.8 km/s.
_MAX_SPEED_MPS = 1e4
#: Largest clock or timing offset of a node, s: 1 ms is a loose (NTP-level) synchronisation; GPS- or
#: PTP-disciplined radios are within a microsecond, and beyond 1 ms every echo lies many frames away.
_MAX_CLOCK_OFFSET_S = 1e-3
#: target classes (the tracker's motion model)
TARGET_KINDS = ("vehicle", "uav")


def _check_vector(key: str, value: tuple[float, ...], length: int = 3, unit: str = "m") -> None:
    if len(value) != length:
        _fail(key, value, f"{length} numbers [x, y, z] in {unit}", f"give {length} coordinates")


@dataclass(frozen=True)
class ArrayConfig:
    """An antenna array in the node's local frame (boresight +x, ULA along +y, URA in the y-z plane).

    Parameters
    ----------
    num_elements : tuple of int
        ``[n]`` for a ULA, ``[ny, nz]`` for a URA; 1 ... 1024 elements.
    spacing_wavelengths : float
        Element spacing in wavelengths of the node's carrier, 0.01 ... 100.
    positions_wavelengths : tuple of int
        For sparse / non-uniform linear arrays: element indices along +y in
        units of the spacing (``[0, 1, 4, 6]``), each 0 ... 10000; empty
        means 0 ... n - 1.
    """

    num_elements: tuple[int, ...] = _num((1,), 1, 1024, "elements")
    spacing_wavelengths: float = _num(0.5, 0.01, 100.0, "wavelengths")
    positions_wavelengths: tuple[int, ...] = _num((), 0, 10000, "spacings")

    def __post_init__(self) -> None:
        _check_fields(self)
        if len(self.num_elements) not in (1, 2) or math.prod(self.num_elements) > 1024:
            _fail("num_elements", self.num_elements, "[n] (ULA) or [ny, nz] (URA), 1 ... 1024 elements",
                  "e.g. num_elements = [4]")
        if self.positions_wavelengths:
            if len(self.num_elements) != 1 or len(self.positions_wavelengths) != self.num_elements[0] \
                    or len(set(self.positions_wavelengths)) != len(self.positions_wavelengths):
                _fail("positions_wavelengths", self.positions_wavelengths,
                      f"{self.num_elements[0]} distinct indices >= 0 for a linear array",
                      "list one index per element")

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.num_elements)


@dataclass(frozen=True)
class NodeConfig:
    """A radio node in the scene: base station, UE or a passive receiver.

    Parameters
    ----------
    id : str
        Unique name.
    role : str
        ``bs``, ``ue`` or ``rx`` (receive only).
    position_m : tuple of float
        [x, y, z] in m, each -1e7 ... 1e7 m (the Earth's scale).
    yaw_deg : float
        Rotation of the array's boresight about +z from +x, -360 ... 360 degrees.
    transmits : bool
        Whether the node transmits its frame continuously (cyclically).
    tx_power_dbm : float
        Transmit power (mean over the frame), dBm, -50 ... 80.
    antenna_gain_dbi : float
        Gain of each element at boresight, dBi, -20 ... 40.
    antenna_pattern : str
        How that gain falls off away from boresight (local +x): ``isotropic`` (the same in every
        direction, the default) or ``38.901``, the sector element of 3GPP TR 38.901 Table 7.3-1
        (65 degree 3 dB beamwidths, 30 dB side-lobe and front-to-back limits; no tilt): a station
        mounted on a wall or a mast sees little behind its panel.
    noise_figure_db : float
        Receiver noise figure, dB, 0 ... 30.
    rx_array, tx_array : ArrayConfig
        Receive and transmit arrays; frame port p uses TX element p.
    clock_offset_s : float
        Offset of the node's clock from scene time, s (bistatic delay bias),
        -1e-3 ... 1e-3 s (a loose, NTP-level sync; GPS / PTP: about 1e-6 s).
    cfo_hz : float
        Carrier frequency offset of the receiver against the transmitter, Hz,
        -1e7 ... 1e7 (100 ppm at 100 GHz).
    sfo_ppm : float
        Sample clock offset of the node against scene time, ppm, -1000 ...
        1000.  A link between two nodes drifts by the difference of theirs (a
        timing drift that grows from frame to frame); a node's own echoes, on
        one clock, do not drift.
    timing_offset_s : float
        Extra receive delay of every path (fractional samples allowed), s,
        0 ... 1e-3.
    leakage_isolation_db : float
        TX -> RX isolation of a transmitting node in dB, 0 ... 200; 0 disables leakage.
    phase_noise_linewidth_hz : float
        Oscillator linewidth (Wiener phase noise), Hz, 0 ... 1e6; 0 disables it.
    rx_channel_phases_deg, rx_channel_gains_db : tuple of float
        Phase (degrees, -360 ... 360) and gain (dB, -60 ... 60) of each receive channel's chain after the
        antenna (a USRP's LO phases, unequal cables), one per receive element; empty: all 0.  What
        ``sdr-isac calibrate`` measures and equalises.
    frame : FrameConfig or None
        This node's own frame (another band, say); None uses the file's [frame].
    operator : str
        The network the node belongs to (an operator, or an access-point network): nodes of one
        operator share a clock and a surveyed frame and fuse at the node level; between operators
        only tracks cross (article §V).  Empty: the one network of the file.
    """

    id: str = "bs0"
    role: str = "bs"
    position_m: tuple[float, ...] = _num((0.0, 0.0, 0.0), -_MAX_POSITION_M, _MAX_POSITION_M, "m")
    yaw_deg: float = _num(0.0, -360.0, 360.0, "degrees")
    transmits: bool = True
    tx_power_dbm: float = _num(20.0, -50.0, 80.0, "dBm")
    antenna_gain_dbi: float = _num(0.0, -20.0, 40.0, "dBi")
    antenna_pattern: str = "isotropic"
    noise_figure_db: float = _num(7.0, 0.0, 30.0, "dB")
    rx_array: ArrayConfig = field(default_factory=ArrayConfig)
    tx_array: ArrayConfig = field(default_factory=ArrayConfig)
    clock_offset_s: float = _num(0.0, -_MAX_CLOCK_OFFSET_S, _MAX_CLOCK_OFFSET_S, "s")
    cfo_hz: float = _num(0.0, -1e7, 1e7, "Hz")
    sfo_ppm: float = _num(0.0, -1000.0, 1000.0, "ppm")
    timing_offset_s: float = _num(0.0, 0.0, _MAX_CLOCK_OFFSET_S, "s")
    leakage_isolation_db: float = _num(0.0, 0.0, 200.0, "dB")
    phase_noise_linewidth_hz: float = _num(0.0, 0.0, 1e6, "Hz")
    rx_channel_phases_deg: tuple[float, ...] = _num((), -360.0, 360.0, "degrees")
    rx_channel_gains_db: tuple[float, ...] = _num((), -60.0, 60.0, "dB")
    frame: FrameConfig | None = None
    operator: str = ""

    def __post_init__(self) -> None:
        _check_fields(self)
        if not self.id:
            _fail("id", self.id, "a non-empty name", "name the node")
        _check_choice("role", self.role, ("bs", "ue", "rx"))
        _check_choice("antenna_pattern", self.antenna_pattern, ANTENNA_PATTERNS,
                      "isotropic: the same gain everywhere; 38.901: a sector element")
        _check_vector("position_m", self.position_m)
        for key in ("rx_channel_phases_deg", "rx_channel_gains_db"):
            values = getattr(self, key)
            if values and len(values) != self.rx_array.size:
                _fail(key, values, f"one value per receive element ({self.rx_array.size}) or none",
                      f"give {self.rx_array.size} values or remove {key}")


@dataclass(frozen=True)
class TargetConfig:
    """A point target.

    Parameters
    ----------
    id : str
        Name (for truth records).
    position_m : tuple of float
        [x, y, z] at scene time 0, m, each -1e7 ... 1e7 m (ignored when
        waypoints are given).
    velocity_mps : tuple of float
        Constant velocity [vx, vy, vz], m/s, each -1e4 ... 1e4 m/s (a low
        orbit is 7.8 km/s).
    waypoints : tuple of tuple of float
        ``[[t_s, x, y, z], ...]`` with increasing t_s: piecewise-linear motion,
        held at the ends; every number -1e7 ... 1e7 (s for t_s, m for x, y, z).
    rcs_m2 : float
        Mean radar cross section, m², > 0 ... 1e6 (a large ship is about
        1e5 m²; a tiny value such as 1e-30 makes a target that is not there).
    swerling : int
        0 (constant RCS) or 1 (exponential RCS, independent per frame).
    snr_per_re_db : float or None
        For paper experiments: fix the monostatic per-RE SNR of this target
        (dB, -100 ... 100) instead of the radar equation's free-space mean
        (powers, antenna gains and their patterns, range, RCS).  Blockers on
        the path still attenuate it, and a Swerling-1 target still
        fluctuates about it (the value is then its mean).
    kind : str
        ``vehicle`` (ground traffic, gentle manoeuvres) or ``uav`` (manoeuvres in 3-D): selects the
        tracker's motion model (process noise).
    """

    id: str = "t0"
    position_m: tuple[float, ...] = _num((100.0, 0.0, 0.0), -_MAX_POSITION_M, _MAX_POSITION_M, "m")
    velocity_mps: tuple[float, ...] = _num((0.0, 0.0, 0.0), -_MAX_SPEED_MPS, _MAX_SPEED_MPS, "m/s")
    waypoints: tuple[tuple[float, ...], ...] = _num((), -_MAX_POSITION_M, _MAX_POSITION_M, "(s or m)")
    rcs_m2: float = _num(1.0, 0.0, 1e6, "m²", low_open=True)
    swerling: int = _num(0, 0, 1)
    snr_per_re_db: float | None = _num(None, -100.0, 100.0, "dB")
    kind: str = "vehicle"

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_vector("position_m", self.position_m)
        _check_vector("velocity_mps", self.velocity_mps, unit="m/s")
        if self.waypoints:
            if any(len(w) != 4 for w in self.waypoints) or \
                    any(b[0] <= a[0] for a, b in zip(self.waypoints, self.waypoints[1:])):
                _fail("waypoints", self.waypoints, "[[t_s, x_m, y_m, z_m], ...] with increasing t_s",
                      "give four numbers per waypoint in time order")
        _check_choice("swerling", self.swerling, (0, 1))
        _check_choice("kind", self.kind, TARGET_KINDS)


@dataclass(frozen=True)
class WallConfig:
    """A flat reflecting wall (infinite plane), specular by the image method.

    Parameters
    ----------
    point_m : tuple of float
        A point on the plane, m, each coordinate -1e7 ... 1e7 m.
    normal : tuple of float
        Normal vector (need not be unit length), each component -1e6 ... 1e6,
        of length >= 1e-6.
    reflection_db : float
        Power reflection coefficient in dB, -100 ... 0.
    """

    point_m: tuple[float, ...] = _num((0.0, 50.0, 0.0), -_MAX_POSITION_M, _MAX_POSITION_M, "m")
    normal: tuple[float, ...] = _num((0.0, 1.0, 0.0), -1e6, 1e6)
    reflection_db: float = _num(-6.0, -100.0, 0.0, "dB")

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_vector("point_m", self.point_m)
        _check_vector("normal", self.normal, unit="(direction)")
        if not math.hypot(*self.normal) >= 1e-6:
            _fail("normal", self.normal, "a non-zero vector (length >= 1e-6)", "give the wall's normal direction")


@dataclass(frozen=True)
class ClutterConfig:
    """A static point scatterer (a pole, a building corner).

    Parameters
    ----------
    position_m : tuple of float
        [x, y, z], m, each -1e7 ... 1e7 m.
    rcs_m2 : float
        Radar cross section, m², > 0 ... 1e6.
    """

    position_m: tuple[float, ...] = _num((30.0, 10.0, 0.0), -_MAX_POSITION_M, _MAX_POSITION_M, "m")
    rcs_m2: float = _num(10.0, 0.0, 1e6, "m²", low_open=True)

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_vector("position_m", self.position_m)


@dataclass(frozen=True)
class BlockerConfig:
    """An axis-aligned box that blocks any path crossing it (a building).

    Parameters
    ----------
    min_m, max_m : tuple of float
        Opposite corners, m, with min < max on every axis; each -1e7 ... 1e7 m.
    attenuation_db : float
        Loss of a blocked path, dB, 0 ... 1000; at or above 200 dB the path
        is removed.
    """

    min_m: tuple[float, ...] = _num((40.0, -5.0, 0.0), -_MAX_POSITION_M, _MAX_POSITION_M, "m")
    max_m: tuple[float, ...] = _num((50.0, 5.0, 30.0), -_MAX_POSITION_M, _MAX_POSITION_M, "m")
    attenuation_db: float = _num(200.0, 0.0, 1000.0, "dB")

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_vector("min_m", self.min_m)
        _check_vector("max_m", self.max_m)
        if any(a >= b for a, b in zip(self.min_m, self.max_m)):
            _fail("max_m", self.max_m, f"greater than min_m = {self.min_m} on every axis", "swap the corners")


@dataclass(frozen=True)
class RisConfig:
    """A reconfigurable intelligent surface: a planar grid of phase-shifting elements.

    Parameters
    ----------
    id : str
        Name.
    position_m : tuple of float
        Centre of the surface, m, each coordinate -1e7 ... 1e7 m.
    yaw_deg : float
        Direction of the surface normal about +z from +x, -360 ... 360 degrees.
    num_elements : tuple of int
        [ny, nz] elements (the surface lies in its local y-z plane), 1 ...
        65536 elements in all.
    spacing_wavelengths : float
        Element spacing, wavelengths, 0.01 ... 100.
    steer_deg : tuple of float
        The phase profile reflects a wave from ``steer_deg[0]`` (azimuth of
        the incoming direction, local) towards ``steer_deg[1]`` (outgoing),
        each -180 ... 180 degrees.
    element_gain_dbi : float
        Gain of one element, dBi, -20 ... 40 (default 5: about pi, a half-
        wavelength cell's 4 pi A / lambda**2).  With the element area it sets a
        pass's scattering (Tang et al. 2021); its pattern is cos(theta)**q off
        the surface normal, q = G / 2 - 1, and nothing behind the surface
        (:meth:`sdr_isac.channel.scene.Scene.paths`).
    controller : str
        Id of the base station that programs the surface ("" for none).
    scan_deg : tuple of float
        Outgoing azimuths (local, degrees, |phi| < 90) the controller steps
        through, one per frame, the incoming azimuth pointing at itself: a
        scan of angles seen from the RIS, which the fusion host turns into a
        target's range, velocity, angle and global position
        (:func:`sdr_isac.fusion.modes.ris.estimate_ris_target`).  Empty: the
        surface keeps ``steer_deg``.
    """

    id: str = "ris0"
    position_m: tuple[float, ...] = _num((50.0, 20.0, 0.0), -_MAX_POSITION_M, _MAX_POSITION_M, "m")
    yaw_deg: float = _num(0.0, -360.0, 360.0, "degrees")
    num_elements: tuple[int, ...] = _num((16, 16), 1, 65536, "elements")
    spacing_wavelengths: float = _num(0.5, 0.01, 100.0, "wavelengths")
    steer_deg: tuple[float, ...] = _num((0.0, 0.0), -180.0, 180.0, "degrees")
    element_gain_dbi: float = _num(5.0, -20.0, 40.0, "dBi")
    controller: str = ""
    scan_deg: tuple[float, ...] = _num((), -90.0, 90.0, "degrees", low_open=True, high_open=True)

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_vector("position_m", self.position_m)
        if self.scan_deg and not self.controller:
            _fail("controller", self.controller, "the id of the base station that programs the scan",
                  "set controller = \"bs0\" (say) or remove scan_deg")
        if len(self.scan_deg) == 1 or any(not (-90.0 < a < 90.0) for a in self.scan_deg):
            _fail("scan_deg", self.scan_deg, "two or more outgoing azimuths, each -90 < phi < 90 degrees",
                  "e.g. scan_deg = [-60.0, -56.0, ..., 60.0]")
        if len(self.num_elements) != 2 or math.prod(self.num_elements) > 65536:
            _fail("num_elements", self.num_elements, "[ny, nz], 1 ... 65536 elements", "e.g. [16, 16]")
        if len(self.steer_deg) != 2:
            _fail("steer_deg", self.steer_deg, "[incoming_az_deg, outgoing_az_deg]", "give two angles")


@dataclass(frozen=True)
class SceneConfig:
    """The simulated world: nodes, targets, walls, clutter, blockers, RIS.

    Parameters
    ----------
    seed : int
        Seed of every random draw in the scene (noise, Swerling, phase noise),
        0 ... 2**63 - 1.
    noise : bool
        False removes thermal noise (for checks of the geometry).
    nodes, targets, walls, clutter, blockers, ris : tuple of sections
        The scene's objects (see each section's class).
    """

    seed: int = _num(0, 0, _MAX_SEED)
    noise: bool = True
    nodes: tuple[NodeConfig, ...] = (NodeConfig(),)
    targets: tuple[TargetConfig, ...] = ()
    walls: tuple[WallConfig, ...] = ()
    clutter: tuple[ClutterConfig, ...] = ()
    blockers: tuple[BlockerConfig, ...] = ()
    ris: tuple[RisConfig, ...] = ()

    def __post_init__(self) -> None:
        _check_fields(self)
        ids = [n.id for n in self.nodes]
        if not ids or len(set(ids)) != len(ids):
            _fail("nodes", ids, "one or more nodes with distinct ids", "rename the repeated node")
        tids = [t.id for t in self.targets]
        if len(set(tids)) != len(tids):
            _fail("targets", tids, "distinct target ids", "rename the repeated target")
        for r in self.ris:
            if r.controller and r.controller not in ids:
                _fail("ris.controller", r.controller, f"a node of the scene ({', '.join(ids)})",
                      "name the base station that programs the surface")

    def node(self, node_id: str) -> NodeConfig:
        """The node called ``node_id``."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise ConfigError(f"node_id = {node_id!r}: allowed one of the scene's nodes "
                          f"({', '.join(n.id for n in self.nodes)}); fix radio.node_id (--node-id of sdr-isac "
                          "node) or add the node",
                          key="radio.node_id")
