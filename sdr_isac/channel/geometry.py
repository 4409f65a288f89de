"""Geometry helpers: rotations, array element positions, steering vectors, blockage, motion.

Frames of reference: the scene is right-handed, metres.  A node's local frame
has its boresight along +x, rotated about +z by ``yaw_deg``.  A ULA lies along
local +y, a URA in the local y-z plane.  Azimuth is measured in the local x-y
plane from +x towards +y.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.config import ANTENNA_PATTERNS, ArrayConfig, BlockerConfig, TargetConfig
from sdr_isac.errors import InputError

__all__ = [
    "rotation_z",
    "element_positions",
    "steering_vector",
    "to_local",
    "azimuth_elevation",
    "element_pattern_db",
    "segment_blocked",
    "segments_blocked",
    "path_attenuation_db",
    "target_state",
]


def rotation_z(yaw_deg: float) -> NDArray[np.float64]:
    """Rotation matrix about +z by ``yaw_deg`` degrees (local -> global)."""
    a = math.radians(yaw_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def element_positions(array: ArrayConfig, wavelength_m: float) -> NDArray[np.float64]:
    """Element positions in the node's local frame, m.

    Returns
    -------
    ndarray, shape (num_elements, 3)
        ULA: along +y (from ``positions_wavelengths`` for sparse arrays);
        URA: y index fastest, then z.
    """
    d = array.spacing_wavelengths * wavelength_m
    if len(array.num_elements) == 1:
        idx = np.asarray(array.positions_wavelengths or range(array.num_elements[0]), dtype=float)
        return np.stack([np.zeros_like(idx), idx * d, np.zeros_like(idx)], axis=1)
    ny, nz = array.num_elements
    yy, zz = np.meshgrid(np.arange(ny) * d, np.arange(nz) * d, indexing="xy")
    return np.stack([np.zeros(ny * nz), yy.reshape(-1), zz.reshape(-1)], axis=1)


def to_local(direction: ArrayLike, yaw_deg: float) -> NDArray[np.float64]:
    """A global direction vector expressed in a node's local frame."""
    return rotation_z(yaw_deg).T @ np.asarray(direction, dtype=float)


def steering_vector(positions_m: NDArray[np.float64], direction_local: ArrayLike,
                    wavelength_m: float) -> NDArray[np.complex128]:
    """Phase of each element for a plane wave to or from unit direction ``direction_local``.

    a_n = exp(+j 2 pi r_n . u / lambda): an element further along u sees the wave
    earlier (arrival) or launches it earlier (departure).

    Returns
    -------
    ndarray, shape (num_elements,), complex128
    """
    u = np.asarray(direction_local, dtype=float)
    return np.exp(2j * np.pi * (positions_m @ u) / wavelength_m)


def azimuth_elevation(direction_local: ArrayLike) -> tuple[float, float]:
    """(azimuth, elevation) in radians of a local direction (azimuth from +x towards +y)."""
    u = np.asarray(direction_local, dtype=float)
    return math.atan2(u[1], u[0]), math.atan2(u[2], math.hypot(u[0], u[1]))


#: 3GPP TR 38.901 Table 7.3-1, the sector element: 3 dB beamwidth in azimuth and elevation (degrees), side-lobe
#: limit in elevation and front-to-back limit (dB)
_BEAMWIDTH_DEG = 65.0
_SIDE_LOBE_DB = 30.0
_FRONT_TO_BACK_DB = 30.0


def element_pattern_db(direction_local: ArrayLike, pattern: str) -> float | NDArray[np.float64]:
    """Gain of a node's element towards local direction(s) relative to its boresight gain, dB (0 ... -30).

    ``isotropic``: 0 everywhere.  ``38.901``: the sector element of 3GPP TR 38.901 Table 7.3-1 with its
    boresight along local +x (no tilt), with azimuth phi and elevation el = 90 deg - zenith angle::

        A_V = -min(12 (el / 65)**2, 30),  A_H = -min(12 (phi / 65)**2, 30),  A = -min(-(A_V + A_H), 30)

    Parameters
    ----------
    direction_local : array_like, shape (3,) or (..., 3)
        Directions in the node's local frame (any length; a zero vector counts as boresight).
    pattern : str
        One of :data:`sdr_isac.config.ANTENNA_PATTERNS`.

    Returns
    -------
    float, or ndarray of shape (...,) for several directions
    """
    u = np.asarray(direction_local, dtype=float)
    if u.shape[-1:] != (3,):
        raise InputError(f"direction_local has shape {u.shape}: allowed (3,) or (..., 3), local x, y, z; pass "
                         "each direction as its three components in the node's frame")
    if pattern not in ANTENNA_PATTERNS:
        raise InputError(f"pattern = {pattern!r}: allowed {', '.join(ANTENNA_PATTERNS)}; use one of them (a "
                         "node's antenna_pattern)")
    if not np.all(np.isfinite(u)):
        raise InputError("direction_local holds a NaN or an infinity: allowed finite local x, y, z (any length); "
                         "check the positions the direction was computed from")
    if pattern == "isotropic":
        gain = np.zeros(u.shape[:-1])
    else:
        u = u + 0.0                                        # -0.0 -> 0.0: atan2(0, -0.0) would be 180 degrees
        azimuth = np.degrees(np.arctan2(u[..., 1], u[..., 0]))
        elevation = np.degrees(np.arctan2(u[..., 2], np.hypot(u[..., 0], u[..., 1])))
        vertical = -np.minimum(12.0 * (elevation / _BEAMWIDTH_DEG) ** 2, _SIDE_LOBE_DB)
        horizontal = -np.minimum(12.0 * (azimuth / _BEAMWIDTH_DEG) ** 2, _FRONT_TO_BACK_DB)
        gain = -np.minimum(-(vertical + horizontal), _FRONT_TO_BACK_DB) + 0.0          # + 0.0: no -0.0 at boresight
    return float(gain) if gain.ndim == 0 else gain


def segments_blocked(a: ArrayLike, ends: ArrayLike, boxes: Sequence[BlockerConfig]) -> NDArray[np.bool_]:
    """Whether each segment from ``a`` (3,) to a row of ``ends`` (n, 3) passes through any of the boxes (slab test).

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    p0 = np.asarray(a, dtype=float)
    d = np.atleast_2d(np.asarray(ends, dtype=float)) - p0
    blocked = np.zeros(d.shape[0], dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):   # an overflow is the right limit: +-inf
        for box in boxes:
            lo, hi = np.asarray(box.min_m, dtype=float), np.asarray(box.max_m, dtype=float)
            t_min, t_max = np.zeros(d.shape[0]), np.ones(d.shape[0])
            possible = np.ones(d.shape[0], dtype=bool)
            for axis in range(3):
                flat = np.abs(d[:, axis]) < 1e-12               # parallel to the slab: inside it or never
                possible &= ~(flat & ((p0[axis] < lo[axis]) | (p0[axis] > hi[axis])))
                t1, t2 = (lo[axis] - p0[axis]) / d[:, axis], (hi[axis] - p0[axis]) / d[:, axis]
                t_min = np.where(flat, t_min, np.maximum(t_min, np.minimum(t1, t2)))
                t_max = np.where(flat, t_max, np.minimum(t_max, np.maximum(t1, t2)))
            blocked |= possible & (t_min <= t_max)
    return blocked


def segment_blocked(a: ArrayLike, b: ArrayLike, box: BlockerConfig) -> bool:
    """Whether the segment a-b passes through the box (:func:`segments_blocked` of one segment)."""
    return bool(segments_blocked(a, np.asarray(b, dtype=float)[None, :], (box,))[0])


def path_attenuation_db(points: list[NDArray[np.float64]], blockers: tuple[BlockerConfig, ...]) -> float:
    """Total blockage loss in dB along a polyline (sum over blocked segments and boxes)."""
    loss = 0.0
    for a, b in zip(points[:-1], points[1:]):
        for box in blockers:
            if segment_blocked(a, b, box):
                loss += box.attenuation_db
    return loss


def target_state(target: TargetConfig, time_s: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Position (m) and velocity (m/s) of a target at scene time ``time_s``.

    Constant velocity from ``position_m``, or piecewise-linear between
    waypoints (velocity of the current leg, the outgoing one at a waypoint,
    the first at the first; held still before the first and from the last).
    """
    if not target.waypoints:
        v = np.asarray(target.velocity_mps, dtype=float)
        return np.asarray(target.position_m, dtype=float) + v * time_s, v
    wp = np.asarray(target.waypoints, dtype=float)
    times, points = wp[:, 0], wp[:, 1:]
    if time_s < times[0] or len(times) == 1:
        return points[0].copy(), np.zeros(3)
    if time_s >= times[-1]:
        return points[-1].copy(), np.zeros(3)
    leg = int(np.searchsorted(times, time_s, side="right")) - 1
    velocity = (points[leg + 1] - points[leg]) / (times[leg + 1] - times[leg])
    return points[leg] + velocity * (time_s - times[leg]), velocity
