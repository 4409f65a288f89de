"""The records that fusion makes and consumes (see ``../shared/DESIGN.md``, "The data that flows").

``Capture -> Detection -> LinkMeasurement -> TargetEstimate -> Track``:

- :class:`LinkMeasurement`: one link's range (monostatic) or range sum (bistatic) and its rate,
  with their variances (the CRB at the link's estimated SNR);
- :class:`TargetEstimate`: a target's position and velocity fused from one time-aligned set of
  links, with covariances, the links it rests on and the labels of the cooperation mode;
- :class:`Handover` and :class:`Track`: a target's state history across stations (filled by the
  tracker).

Records are frozen dataclasses with units in their field names; arrays are copied and made
read-only on construction, so a record never changes after it was made.  They become dicts only
in ``stream/wire.py`` and in JSON outputs.  Construction validates shapes and values and raises
:class:`~sdr_isac.errors.InputError` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError

__all__ = ["LinkMeasurement", "TargetEstimate", "Handover", "Track", "measured_flags", "TRACK_STATUSES",
           "ESTIMATE_MODES", "ESTIMATE_CASES"]

#: cooperation modes an estimate may carry (``None``: plain multi-BS fusion)
ESTIMATE_MODES = ("micro", "macro_micro", "ris", "single")
#: BS-UE cases (article §IV-C)
ESTIMATE_CASES = ("A", "B", "C")
#: life cycle of a track
TRACK_STATUSES = ("tentative", "confirmed", "deleted")


@dataclass(frozen=True)
class LinkMeasurement:
    """One link's range (monostatic) or range sum (bistatic), its rate, the angle where measured, with variances.

    ``tx == rx`` is monostatic: ``range_m = ||p - b||``, ``rate_mps = u^T v``
    (positive moving away).  Otherwise ``range_m = ||p - b_tx|| + ||p - b_rx||``
    and ``rate_mps`` its time derivative.  ``tx`` and ``rx`` are rows of the
    node-position array the locators are given; ``snr_re`` is the per-RE SNR
    (linear) of the echo.  The variances are the CRB at the link's estimated
    SNR; the measurement errors of one link are uncorrelated (diagonal
    covariance, :attr:`covariance`).

    The link's geometry travels with it once it is known (:meth:`placed`):
    ``tx_id``/``rx_id`` the node ids, ``tx_position_m``/``rx_position_m``
    shape (3,) m in the scene frame, ``t_s`` the capture time, s.  A receiver
    with a horizontal uniform linear array measures the cone angle
    ``cone_angle_rad`` (``sin(alpha) = u . array_axis``, ``u`` the unit vector
    from the receiver to the target, ``array_axis`` shape (3,) the array's
    unit axis in the scene frame) with variance ``var_cone_angle_rad2``
    (rad²); None where no angle was measured.
    """

    tx: int
    rx: int
    range_m: float
    rate_mps: float
    var_range_m2: float
    var_rate_mps2: float
    snr_re: float
    t_s: float = 0.0
    tx_id: str = ""
    rx_id: str = ""
    tx_position_m: NDArray[np.float64] | None = None
    rx_position_m: NDArray[np.float64] | None = None
    cone_angle_rad: float | None = None
    var_cone_angle_rad2: float | None = None
    array_axis: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("tx", "rx"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise InputError(f"{name} = {value!r}: allowed a row index >= 0 of the node positions")
        if not isinstance(self.snr_re, int | float | np.number) or isinstance(self.snr_re, bool) \
                or not (math.isnan(self.snr_re) or 0 <= self.snr_re < math.inf):
            raise InputError(f"snr_re = {self.snr_re!r}: allowed a linear SNR >= 0 (NaN: not known)")
        for name in ("range_m", "rate_mps", "t_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float | np.number) and math.isfinite(value)):
                raise InputError(f"{name} = {value!r}: allowed a finite number ({_UNITS[name]})")
        for name in ("var_range_m2", "var_rate_mps2"):
            value = getattr(self, name)
            if not (isinstance(value, int | float | np.number) and math.isfinite(value) and value > 0):
                raise InputError(f"{name} = {value!r} {_UNITS[name]}: allowed a finite variance > 0")
        for name in ("tx_position_m", "rx_position_m"):
            if getattr(self, name) is not None:
                set_(self, name, _frozen(name, getattr(self, name), (3,)))
        set_(self, "tx_id", str(self.tx_id))
        set_(self, "rx_id", str(self.rx_id))
        angle_rad, var_angle, axis_in = self.cone_angle_rad, self.var_cone_angle_rad2, self.array_axis
        if angle_rad is not None or var_angle is not None or axis_in is not None:
            if angle_rad is None or var_angle is None or axis_in is None:
                raise InputError("cone_angle_rad, var_cone_angle_rad2 and array_axis: give all three or none")
            for name, value in (("cone_angle_rad", angle_rad), ("var_cone_angle_rad2", var_angle)):
                if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                    raise InputError(f"{name} = {value!r}: allowed a number (rad or rad²)")
            if not (math.isfinite(angle_rad) and abs(angle_rad) <= math.pi / 2):
                raise InputError(f"cone_angle_rad = {angle_rad!r} rad: allowed a finite angle in [-pi/2, pi/2]")
            if not (math.isfinite(var_angle) and var_angle > 0):
                raise InputError(f"var_cone_angle_rad2 = {var_angle!r} rad²: allowed a finite variance > 0")
            axis = _frozen("array_axis", axis_in, (3,))
            norm = float(np.linalg.norm(axis))
            if not abs(norm - 1.0) < 1e-6:
                raise InputError(f"array_axis has length {norm:.6g}: allowed a unit vector")
            set_(self, "array_axis", axis)
            set_(self, "cone_angle_rad", float(angle_rad))
            set_(self, "var_cone_angle_rad2", float(var_angle))

    @property
    def monostatic(self) -> bool:
        """Whether the link is monostatic (``tx == rx``)."""
        return self.tx == self.rx

    @property
    def has_angle(self) -> bool:
        """Whether the link carries a cone angle."""
        return self.cone_angle_rad is not None

    @property
    def placed_ok(self) -> bool:
        """Whether the link's node positions are known (:meth:`placed`)."""
        return self.tx_position_m is not None and self.rx_position_m is not None

    @property
    def covariance(self) -> NDArray[np.float64]:
        """Covariance of (range, rate[, cone angle]): diagonal, shape (2, 2) or (3, 3), units m², (m/s)², rad²."""
        var = [self.var_range_m2, self.var_rate_mps2]
        if self.var_cone_angle_rad2 is not None:
            var.append(self.var_cone_angle_rad2)
        return np.diag(var)

    def placed(self, ids: Sequence[str], positions_m: ArrayLike, t_s: float | None = None) -> LinkMeasurement:
        """This link with its nodes' ids and positions (rows ``tx``/``rx`` of ``ids`` and ``positions_m``) and time."""
        b = np.asarray(positions_m, dtype=np.float64)
        if max(self.tx, self.rx) >= min(len(ids), b.shape[0] if b.ndim == 2 else 0):
            raise InputError(f"link rows tx = {self.tx}, rx = {self.rx}: allowed rows of the {len(ids)} node ids "
                             f"and {b.shape[0] if b.ndim == 2 else 0} positions given")
        fields: dict[str, Any] = {"tx_id": ids[self.tx], "rx_id": ids[self.rx], "tx_position_m": b[self.tx],
                                  "rx_position_m": b[self.rx]}
        if t_s is not None:
            fields["t_s"] = float(t_s)
        return replace(self, **fields)


_UNITS = {"range_m": "m", "rate_mps": "m/s", "t_s": "s", "var_range_m2": "m²", "var_rate_mps2": "(m/s)²"}


def _frozen(name: str, value: ArrayLike, shape: tuple[int, ...]) -> NDArray[np.float64]:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} = {value!r}: allowed an array of numbers of shape {shape}") from err
    if arr.shape != shape or not np.all(np.isfinite(arr)):
        raise InputError(f"{name} has shape {arr.shape}: allowed finite numbers of shape {shape}")
    arr.flags.writeable = False
    return arr


def _covariance(name: str, value: ArrayLike, size: int) -> NDArray[np.float64]:
    """A symmetric positive semi-definite matrix (within rounding), read-only."""
    cov = _frozen(name, value, (size, size))
    problem = _covariance_problem(cov)
    if problem is not None:
        raise InputError(f"{name} {problem}")
    return cov


def _covariance_problem(cov: NDArray[np.float64]) -> str | None:
    """Why a finite square matrix is no covariance (not symmetric, or not positive semi-definite, beyond a
    rounding of 1e-9 of its largest entry), as the end of a message after its name; None where it is one."""
    scale = float(np.max(np.abs(cov))) or 1.0
    if not np.allclose(cov, cov.T, rtol=0.0, atol=1e-9 * scale):
        asymmetry = float(np.max(np.abs(cov - cov.T)))
        return f"is not symmetric (largest asymmetry {asymmetry:.3g}): allowed a covariance matrix"
    lowest = float(np.linalg.eigvalsh(cov).min())
    if lowest < -1e-9 * scale:
        return f"has a negative eigenvalue ({lowest:.3g}): allowed a positive semi-definite covariance"
    return None


def _correlation_problem(cov: NDArray[np.float64]) -> str | None:
    """:func:`_covariance_problem` of a covariance of mixed units, judged on its correlations: a tolerance relative
    to its largest entry (a position variance of 1e6 m² beside a velocity variance of 1e-2 (m/s)²) would pass a
    correlation above 1.  A variable of variance 0 (a known height) may not correlate with any other."""
    d = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    known = d == 0
    if np.any(np.abs(cov[known]) > 1e-12 * float(np.max(np.abs(cov)))):
        return "has a cross term of a variable whose variance is 0: allowed a positive semi-definite covariance"
    keep = ~known
    scaled = cov[np.ix_(keep, keep)] / np.outer(d[keep], d[keep])
    problem = _covariance_problem(scaled)
    return None if problem is None else problem.replace("a negative eigenvalue", "a negative eigenvalue of its "
                                                        "correlation matrix")


@dataclass(frozen=True)
class TargetEstimate:
    """One target's position and velocity fused from one time-aligned set of links.

    Parameters
    ----------
    position_m : array_like, shape (3,)
        Position (x, y, z), m, in the scene's frame.
    cov_position_m2 : array_like, shape (3, 3)
        Its covariance, m² (the CRB of the links where the fusion is
        efficient).  A known coordinate (the height of a target located in
        the plane) has variance 0.
    t_s : float
        Time of the set, s (the capture time of its reference node).
    nodes : tuple of str
        Ids of the nodes whose links it rests on.
    velocity_mps, cov_velocity_mps2 : array_like, optional
        Velocity (v_x, v_y, v_z), m/s, and its covariance (3, 3), (m/s)²;
        None where the links do not determine it.
    links : tuple of LinkMeasurement
        The links the position rests on (after fault exclusion).
    mode : str, optional
        One of :data:`ESTIMATE_MODES` (``"single"``: no two links agreed and
        the strongest node's own fix stands).
    case : str, optional
        BS-UE case, one of :data:`ESTIMATE_CASES`.
    single_m : dict, optional
        Node id -> that node's own (x, y) fix, m.
    cov_position_velocity_m2ps : array_like, shape (3, 3), optional
        Cross-covariance of the position and velocity errors, ``E[(p - p_true)(v - v_true)^T]``, m²/s; only
        with a velocity.  None: not known, taken as zero.  A velocity solved from radial velocities at the
        estimated position inherits the position's error through the directions (``P J^T``,
        :func:`sdr_isac.fusion.locate.velocity_with_cross`): correlations of 0.8 to 0.9 where the nodes see
        the target from nearby directions.  With it :attr:`covariance` must be positive semi-definite.
    """

    position_m: NDArray[np.float64]
    cov_position_m2: NDArray[np.float64]
    t_s: float = 0.0
    nodes: tuple[str, ...] = ()
    velocity_mps: NDArray[np.float64] | None = None
    cov_velocity_mps2: NDArray[np.float64] | None = None
    links: tuple[LinkMeasurement, ...] = ()
    mode: str | None = None
    case: str | None = None
    single_m: dict[str, tuple[float, float]] = field(default_factory=dict)
    cov_position_velocity_m2ps: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "position_m", _frozen("position_m", self.position_m, (3,)))
        set_(self, "cov_position_m2", _covariance("cov_position_m2", self.cov_position_m2, 3))
        if (self.velocity_mps is None) != (self.cov_velocity_mps2 is None):
            raise InputError("velocity_mps and cov_velocity_mps2: give both or neither")
        if self.velocity_mps is not None and self.cov_velocity_mps2 is not None:
            set_(self, "velocity_mps", _frozen("velocity_mps", self.velocity_mps, (3,)))
            set_(self, "cov_velocity_mps2", _covariance("cov_velocity_mps2", self.cov_velocity_mps2, 3))
        if not math.isfinite(self.t_s):
            raise InputError(f"t_s = {self.t_s!r} s: allowed a finite time")
        set_(self, "nodes", tuple(str(n) for n in self.nodes))
        set_(self, "links", tuple(self.links))
        if self.mode is not None and self.mode not in ESTIMATE_MODES:
            raise InputError(f"mode = {self.mode!r}: allowed None or one of {', '.join(ESTIMATE_MODES)}")
        if self.case is not None and self.case not in ESTIMATE_CASES:
            raise InputError(f"case = {self.case!r}: allowed None or one of {', '.join(ESTIMATE_CASES)}")
        set_(self, "single_m", {str(k): (float(v[0]), float(v[1])) for k, v in dict(self.single_m).items()})
        if self.cov_position_velocity_m2ps is not None:
            if self.velocity_mps is None:
                raise InputError("cov_position_velocity_m2ps: given without velocity_mps; give the velocity and its "
                                 "covariance too, or leave it out")
            set_(self, "cov_position_velocity_m2ps",
                 _frozen("cov_position_velocity_m2ps", self.cov_position_velocity_m2ps, (3, 3)))
            problem = _correlation_problem(self.covariance)
            if problem is not None:
                raise InputError(f"cov_position_velocity_m2ps with cov_position_m2 and cov_velocity_mps2: the joint "
                                 f"covariance {problem} (a cross-covariance larger than the variances allow)")

    @property
    def covariance(self) -> NDArray[np.float64]:
        """The state's covariance: (6, 6) in the order (x, y, z, v_x, v_y, v_z) where the estimate has a
        velocity (off-diagonal blocks :attr:`cov_position_velocity_m2ps`, zero where not known), else
        :attr:`cov_position_m2` (3, 3); m², m²/s, (m/s)²."""
        if self.velocity_mps is None or self.cov_velocity_mps2 is None:
            return np.array(self.cov_position_m2)
        cov = np.zeros((6, 6))
        cov[:3, :3], cov[3:, 3:] = self.cov_position_m2, self.cov_velocity_mps2
        if self.cov_position_velocity_m2ps is not None:
            cov[:3, 3:] = self.cov_position_velocity_m2ps
            cov[3:, :3] = self.cov_position_velocity_m2ps.T
        return cov

    @classmethod
    def planar(cls, xy_m: ArrayLike, cov_xy_m2: ArrayLike, height_m: float, **fields: Any) -> TargetEstimate:
        """An estimate located in the plane at a known height: z = ``height_m`` with variance 0.

        ``velocity_xy_mps`` and ``cov_velocity_xy_mps2`` (level flight, v_z = 0 known) may be given in
        ``fields`` in place of the 3-D ones, and with them ``cov_position_velocity_xy_m2ps`` (2, 2): the
        horizontal cross-covariance.
        """
        xy = np.asarray(xy_m, dtype=np.float64)
        cov = np.zeros((3, 3))
        cov[:2, :2] = np.asarray(cov_xy_m2, dtype=np.float64)
        v_xy = fields.pop("velocity_xy_mps", None)
        cov_v_xy = fields.pop("cov_velocity_xy_mps2", None)
        cross_xy = fields.pop("cov_position_velocity_xy_m2ps", None)
        if v_xy is not None and cov_v_xy is not None:
            cov_v = np.zeros((3, 3))
            cov_v[:2, :2] = np.asarray(cov_v_xy, dtype=np.float64)
            fields["velocity_mps"] = np.array([*np.asarray(v_xy, dtype=np.float64)[:2], 0.0])
            fields["cov_velocity_mps2"] = cov_v
        if cross_xy is not None:
            cross = np.zeros((3, 3))
            cross[:2, :2] = np.asarray(cross_xy, dtype=np.float64)
            fields["cov_position_velocity_m2ps"] = cross
        return cls(np.array([*xy[:2], height_m]), cov, **fields)


@dataclass(frozen=True)
class Handover:
    """A track passed from one station (or operator) to another: time (s), from, to and why."""

    t_s: float
    from_station: str
    to_station: str
    reason: str

    def __post_init__(self) -> None:
        if not math.isfinite(self.t_s):
            raise InputError(f"t_s = {self.t_s!r} s: allowed a finite time")


def measured_flags(values: Sequence[bool | None]) -> NDArray[np.bool_] | None:
    """:attr:`Track.measured` from per-state flags that may not be known: the flags as a bool array, None where
    there are none or one is not known (None)."""
    return None if not values or any(v is None for v in values) else np.array(values, dtype=bool)


@dataclass(frozen=True)
class Track:
    """A target's state history: id, times, states (x, y, z, v_x, v_y, v_z) and covariances, owners.

    Parameters
    ----------
    track_id : str
        Stable across stations and operators (a handover keeps it).
    t_s : array_like, shape (N,)
        Times of the states, s, increasing.
    states : array_like, shape (N, 6)
        Position (m) and velocity (m/s) at each time.
    covariances : array_like, shape (N, 6, 6)
        Their covariances.
    stations : tuple of str
        Stations that have owned the track, in order (the last owns it now).
    handovers : tuple of Handover
    status : str
        One of :data:`TRACK_STATUSES`.
    measured : array_like of bool, shape (N,), or None
        Whether each state was updated with a measurement (True) or only predicted, the track coasting
        through a scan that did not detect it (False); None where the source does not say (a core host's
        fused global tracks, a track read from an older twin).
    """

    track_id: str
    t_s: NDArray[np.float64]
    states: NDArray[np.float64]
    covariances: NDArray[np.float64]
    stations: tuple[str, ...] = ()
    handovers: tuple[Handover, ...] = ()
    status: str = "tentative"
    measured: NDArray[np.bool_] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.track_id, str) or not self.track_id:
            raise InputError(f"track_id = {self.track_id!r}: allowed a non-empty string")
        t = np.array(self.t_s, dtype=np.float64).reshape(-1)
        n = t.size
        set_(self, "t_s", _frozen("t_s", t, (n,)))
        if n > 1 and not np.all(np.diff(t) > 0):
            raise InputError("t_s: allowed strictly increasing times, s")
        set_(self, "states", _frozen("states", self.states, (n, 6)))
        covs = _frozen("covariances", self.covariances, (n, 6, 6))
        if n:                                                  # all states at once; the first bad one is named
            scale = np.max(np.abs(covs), axis=(1, 2))
            scale[scale == 0] = 1.0                              # the rule of _covariance, per state
            bad = ~np.all(np.isclose(covs, np.swapaxes(covs, 1, 2), rtol=0.0, atol=1e-9 * scale[:, None, None]),
                          axis=(1, 2))
            if not bad.any():
                bad = np.linalg.eigvalsh(covs).min(axis=1) < -1e-9 * scale
            if bad.any():
                i = int(np.argmax(bad))
                _covariance(f"covariances[{i}]", covs[i], 6)
        set_(self, "covariances", covs)
        set_(self, "stations", tuple(str(s) for s in self.stations))
        set_(self, "handovers", tuple(self.handovers))
        if self.status not in TRACK_STATUSES:
            raise InputError(f"status = {self.status!r}: allowed one of {', '.join(TRACK_STATUSES)}")
        if self.measured is not None:
            flags = np.array(self.measured)
            if flags.shape == (0,):                            # an empty list has no bool dtype of its own
                flags = flags.astype(np.bool_)
            if flags.dtype != np.bool_ or flags.shape != (n,):
                shown = repr(self.measured) if flags.size <= 8 else f"{flags.size} values"
                raise InputError(f"track {self.track_id!r}: measured = {shown} has dtype {flags.dtype} and shape "
                                 f"{flags.shape}: allowed None or one bool per state, shape ({n},) (True: updated "
                                 "with a measurement, False: predicted); pass a list or array of bools, or None")
            flags.flags.writeable = False
            set_(self, "measured", flags)

    @property
    def num_states(self) -> int:
        """Number of states in the history."""
        return int(self.t_s.size)

    def latest(self, status: str | None = None) -> Track:
        """This track with its latest state only (and ``status`` if given); a track without states as it is."""
        status = self.status if status is None else status
        if self.num_states <= 1 and status == self.status:
            return self
        return Track(self.track_id, self.t_s[-1:], self.states[-1:], self.covariances[-1:], self.stations,
                     self.handovers, status, None if self.measured is None else self.measured[-1:])
