"""The ``[tracking]`` section: the host's tracker (Stone Soup, :mod:`sdr_isac.fusion.tracking`)."""

from __future__ import annotations

from dataclasses import dataclass

from sdr_isac.config.base import _check_choice, _check_fields, _fail, _num

__all__ = ["TrackingConfig", "TARGET_CLASSES", "ASSOCIATIONS", "FILTERS"]

#: target classes with a process-noise density of their own
TARGET_CLASSES = ("vehicle", "uav")
#: data association methods
ASSOCIATIONS = ("gnn", "jpda")
#: Kalman filters for the non-linear link measurements
FILTERS = ("ekf", "ukf")


@dataclass(frozen=True)
class TrackingConfig:
    """How a host tracks the targets it fuses.

    The state is position and velocity in the scene frame; the motion model is
    nearly-constant velocity (white-noise acceleration) on each axis with the
    process-noise density of the target class, plus, where the class has a
    manoeuvre acceleration, a manoeuvre component (``manoeuvre_*``).

    Parameters
    ----------
    enabled : bool
        Track the fused estimates of each time-aligned set and publish ``tracks``.
    association : str
        ``gnn`` (global nearest neighbour, 2-D assignment on Mahalanobis
        distance) or ``jpda`` (joint probabilistic data association).
    filter : str
        ``ekf`` (extended Kalman filter, analytic Jacobians) or ``ukf``
        (unscented) for the non-linear link measurements.
    target_class : str
        ``vehicle`` or ``uav``: which process-noise density the tracker uses.
    noise_vehicle_m2ps3, noise_uav_m2ps3 : float
        Process-noise (acceleration) density q of each class, m²/s³, per
        axis: the velocity random walk gains q·dt (m/s)² in dt s.
        > 0 ... 1e6.
    manoeuvre_vehicle_mps2, manoeuvre_uav_mps2 : float
        Manoeuvre acceleration a of each class, m/s²: besides the
        nearly-constant velocity of density q, the motion model has a
        manoeuvre component whose process noise has density a²·dt over a scan
        interval dt (a velocity change of about a·dt), taken with prior
        probability :attr:`manoeuvre_probability` in every interval
        (:mod:`sdr_isac.fusion.tracking.manoeuvre`).  A track then follows a
        turn of up to about a (m/s² of lateral acceleration) with one id
        instead of losing its gate.  0 turns the component off (the plain
        NCV filter, bit for bit, the default).  For UAVs that turn (a
        multirotor's or small fixed-wing's turn of 1 to 2 g) set about
        20 m/s²: the manoeuvre filter then keeps one id through 1 g turns
        where the plain filter made 1 to 4
        (``tests/fusion/test_tracking_manoeuvre.py``).  Off by
        default because in ``sdr-isac experiment continuity`` (whose waypoint
        turns are instantaneous, some 13 g, which no model bridges) 20 m/s²
        changed nothing at 0 dB and cost at -30 dB (multi_cal breaks 1.33 ->
        1.90, OSPA 1.73 -> 2.42 m, 6 trials).  Vehicles: q covers a car's
        manoeuvres at the street scale of a scan.  0 ... 1e4.
    manoeuvre_probability : float
        Prior probability w of a manoeuvre in a scan interval (the mixture
        weight of the manoeuvre component).  0 ... < 1 (0: off).
    gate_probability : float
        Probability that a target's own measurement falls inside the gate
        (chi-square gate on the Mahalanobis distance of the measurement's
        dimension).  0.5 ... < 1.
    detection_probability : float
        Probability that a target is measured in a scan (JPDA only).  > 0 ... 1.
    clutter_density : float
        False measurements per unit measurement volume (JPDA only).  > 0 ... 1e6.
    confirm_hits, confirm_window : int
        M-of-N confirmation: a tentative track is confirmed once it was
        updated in ``confirm_hits`` (M) of its last ``confirm_window`` (N)
        scans, and deleted as soon as its first N scans can no longer hold M
        hits.  1 ... 100, M <= N.
    delete_misses : int
        A track is deleted after this many scans in a row without an update
        (K).  1 ... 1000.
    delete_position_var_m2 : float
        ... or when the trace of its position covariance exceeds this, m².
        > 0 ... 1e12.
    init_speed_std_mps : float
        Prior standard deviation of each velocity component of a new track,
        m/s: its velocity where the first estimate has none; a measured one
        is fused with it (a well-measured velocity barely moves; one the
        geometry hardly determines, with a huge variance, stays physical).
        > 0 ... 1e4.
    variance_floor_m2 : float
        Smallest variance of a position coordinate of an estimate, m² (a
        planar estimate claims its height exactly, variance 0; the floor keeps
        the innovation covariance invertible).  The same number, read in
        (m/s)², floors the velocity variances.  > 0 ... 1e6.
    history_states : int
        States each :class:`~sdr_isac.fusion.records.Track` returned by
        ``Tracker.step`` carries (the latest ones); ``Tracker.tracks``
        returns whole histories.  1 ... 100000.
    keep_states : int
        States the tracker keeps per track, the oldest dropped first (a
        long-running host bounds its memory this way: about 0.4 kB a state);
        0 keeps all.  0 or 1 ... 1e7.
    """

    enabled: bool = False
    association: str = "gnn"
    filter: str = "ekf"
    target_class: str = "vehicle"
    noise_vehicle_m2ps3: float = _num(0.5, 0.0, 1e6, "m²/s³", low_open=True)
    noise_uav_m2ps3: float = _num(5.0, 0.0, 1e6, "m²/s³", low_open=True)
    manoeuvre_vehicle_mps2: float = _num(0.0, 0.0, 1e4, "m/s²")
    manoeuvre_uav_mps2: float = _num(0.0, 0.0, 1e4, "m/s²")
    manoeuvre_probability: float = _num(0.3, 0.0, 1.0, high_open=True)
    gate_probability: float = _num(0.999, 0.5, 1.0, high_open=True)
    detection_probability: float = _num(0.9, 0.0, 1.0, low_open=True)
    clutter_density: float = _num(1e-6, 0.0, 1e6, low_open=True)
    confirm_hits: int = _num(2, 1, 100)
    confirm_window: int = _num(3, 1, 100)
    delete_misses: int = _num(3, 1, 1000)
    delete_position_var_m2: float = _num(1e4, 0.0, 1e12, "m²", low_open=True)
    init_speed_std_mps: float = _num(20.0, 0.0, 1e4, "m/s", low_open=True)
    variance_floor_m2: float = _num(0.01, 0.0, 1e6, "m²", low_open=True)
    history_states: int = _num(1, 1, 100000)
    keep_states: int = _num(0, 1, 10_000_000, or_zero=True)

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_choice("tracking.association", self.association, ASSOCIATIONS)
        _check_choice("tracking.filter", self.filter, FILTERS)
        _check_choice("tracking.target_class", self.target_class, TARGET_CLASSES)
        if self.confirm_hits > self.confirm_window:
            _fail("tracking.confirm_hits", self.confirm_hits,
                  f"at most confirm_window = {self.confirm_window} (M of N scans)",
                  "lower confirm_hits or raise confirm_window")

    @property
    def noise_m2ps3(self) -> float:
        """The process-noise density of :attr:`target_class`, m²/s³."""
        return self.noise_uav_m2ps3 if self.target_class == "uav" else self.noise_vehicle_m2ps3

    @property
    def manoeuvre_mps2(self) -> float:
        """The manoeuvre acceleration of :attr:`target_class`, m/s² (0: no manoeuvre component)."""
        return self.manoeuvre_uav_mps2 if self.target_class == "uav" else self.manoeuvre_vehicle_mps2
