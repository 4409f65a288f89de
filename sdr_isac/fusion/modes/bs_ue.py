"""BS-UE cooperation (article §IV-C, Fig. 3).

Coverage (radii from link budgets, :mod:`sdr_isac.fusion.coverage`):

- downlink sensing: the BS's own monostatic echo is detected
  (``R_ds``, two-way, ``1 / R**4``);
- uplink communication: a UE's uplink reaches the BS at the lowest MCS
  (``R_ul``, one-way at UE power);
- downlink communication: the BS's downlink reaches a UE (``R_dl``,
  one-way at BS power).

Usually ``R_ds < R_ul < R_dl``.  The case of a target at distance r from the
BS (:func:`classify`):

- **A** (``r <= R_ds``): the BS senses its downlink echo and receives the
  UE's uplink SRS reflected by the target (UE -> target -> BS, a bistatic
  range sum whose UE clock and carrier offsets the direct UE -> BS path
  removes, :func:`sdr_isac.fusion.links.bistatic_measurement`); the BS fuses
  both (:func:`fuse_case_a`);
- **B** (``R_ds < r <= R_ul``): the BS no longer sees the echo; UEs near the
  target sense it (monostatic) and upload their range / radial-velocity
  reports with CRB variances over the uplink; the BS fuses
  (:func:`fuse_case_b`);
- **C** (``R_ul < r <= R_dl``): the UEs cannot upload; the BS only
  allocates resources over the downlink (:func:`allocate_symbols`: each UE
  its own OFDM symbols, so the UEs' signals are orthogonal), and the UEs
  sense monostatically and hear each other's reflections on those symbols
  (UE i -> target -> UE j, referenced to the direct sidelink path); they
  exchange the measurements over the sidelink and each runs the same WLS
  (:func:`fuse_case_c`), no BS measurement.

Live, on the fusion host, the case of a fused estimate follows from who
detected the target (:func:`live_case`): a BS's own echo makes it A (with
the UEs' uplink reflections when a receive-only node at the BS hears a UE),
UEs alone make it B.  Case C never reaches the host: the UEs fuse among
themselves.

Every fusion is the joint WLS of :func:`sdr_isac.fusion.hybrid.fuse`
(ranges, range sums, their rates and array angles, weights the CRB
variances at the measured SNR), which reaches the fused CRB above the
detection threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError
from sdr_isac.fusion import hybrid
from sdr_isac.fusion.coverage import LinkBudget, comm_radius_m, sensing_radius_m
from sdr_isac.fusion.links import PathEstimate, bistatic_measurement, monostatic_measurement
from sdr_isac.fusion.multiband import Band, pilot_mask
from sdr_isac.fusion.records import LinkMeasurement
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["CoverageRadii", "coverage_radii", "classify", "allocate_symbols", "detected", "fuse_case_a",
           "fuse_case_b", "fuse_case_c", "live_case"]


@dataclass(frozen=True)
class CoverageRadii:
    """Downlink sensing, uplink communication and downlink communication radii of a BS, m."""

    downlink_sensing_m: float
    uplink_comm_m: float
    downlink_comm_m: float

    def __post_init__(self) -> None:
        for key in ("downlink_sensing_m", "uplink_comm_m", "downlink_comm_m"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"CoverageRadii.{key} = {value!r} m: allowed a finite radius > 0")


def coverage_radii(bs_sensing: LinkBudget, uplink: LinkBudget, downlink: LinkBudget, rcs_m2: float,
                   num_symbols: int, detection_threshold_db: float = 13.0,
                   min_comm_snr_db: float = -5.0) -> CoverageRadii:
    """The three radii from link budgets.

    Parameters
    ----------
    bs_sensing : LinkBudget
        The BS's transmitter and its own sensing receiver.
    uplink : LinkBudget
        UE transmitter -> BS receiver.
    downlink : LinkBudget
        BS transmitter -> UE receiver.
    rcs_m2 : float
        Target RCS, m².
    num_symbols : int
        Pilot symbols per sensing frame (processing gain ``N M``).
    detection_threshold_db : float
        Post-processing SNR for detection, dB.
    min_comm_snr_db : float
        Per-RE SNR of the lowest MCS, dB.
    """
    return CoverageRadii(sensing_radius_m(bs_sensing, rcs_m2, num_symbols, detection_threshold_db),
                         comm_radius_m(uplink, min_comm_snr_db), comm_radius_m(downlink, min_comm_snr_db))


def classify(target_m: ArrayLike, bs_m: ArrayLike, radii: CoverageRadii) -> str:
    """``"A"``, ``"B"``, ``"C"`` by the target's 3-D distance to the BS (module docstring); ``"none"`` beyond
    ``R_dl``."""
    p, b = np.asarray(target_m, dtype=np.float64), np.asarray(bs_m, dtype=np.float64)
    if p.shape != (3,) or b.shape != (3,) or not (np.all(np.isfinite(p)) and np.all(np.isfinite(b))):
        raise InputError(f"target_m = {target_m!r}, bs_m = {bs_m!r}: allowed two 3-D points with finite "
                         "coordinates in m")
    r = float(np.linalg.norm(p - b))
    if r <= radii.downlink_sensing_m:
        return "A"
    if r <= radii.uplink_comm_m:
        return "B"
    if r <= radii.downlink_comm_m:
        return "C"
    return "none"


def allocate_symbols(num_ues: int, num_symbols: int, num_subcarriers: int) -> list[NDArray[np.bool_]]:
    """The BS's resource allocation for case C: UE i transmits on symbols ``i, i + U, i + 2U, ...`` (all subcarriers).

    Time division keeps the UEs' reference signals orthogonal, so every UE
    measures its own echo and each other UE's reflection without
    interference.  Returns one ``(num_symbols, num_subcarriers)`` mask per UE.
    """
    if not (isinstance(num_ues, int) and 1 <= num_ues <= num_symbols):
        raise InputError(f"num_ues = {num_ues!r}: allowed 1 ... num_symbols = {num_symbols!r}; each UE needs a "
                         "symbol of its own")
    return [pilot_mask(num_symbols, num_subcarriers, symbol_step=num_ues, symbol_offset=i) for i in range(num_ues)]


def detected(path: PathEstimate, band: Band, threshold_db: float = 13.0) -> bool:
    """Whether a path's SNR after the processing gain of the band's pilots, ``snr_re * n_pilots``, reaches
    ``threshold_db``: the BS uses the uplink reflection in case A only then, its own estimate otherwise."""
    return bool(10.0 * np.log10(max(path.snr_re, 1e-30) * int(band.pilots.sum())) >= threshold_db)


def _nodes(nodes_m: ArrayLike, what: str) -> NDArray[np.float64]:
    b = np.asarray(nodes_m, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 3 or not np.all(np.isfinite(b)):
        raise InputError(f"{what} has shape {b.shape}: allowed (N, 3) finite positions in m")
    return b


def fuse_case_a(bs_m: ArrayLike, ue_m: ArrayLike, echo: PathEstimate, srs_direct: PathEstimate,
                srs_echo: PathEstimate, height_m: float, start: ArrayLike,
                bs_angle: hybrid.AngleMeasurement | None = None,
                c: float = SPEED_OF_LIGHT_MPS) -> hybrid.HybridEstimate:
    """Case A at the BS: downlink echo (range, radial velocity) + uplink SRS reflection (range sum, rate).

    Nodes: 0 the BS, 1 the UE.  ``srs_direct`` / ``srs_echo`` are the two
    paths of the BS's uplink SRS CIM (the UE's direct path and the target's
    reflection); the known BS-UE distance turns them into the range sum
    (:func:`sdr_isac.fusion.links.bistatic_measurement`).  ``bs_angle`` is the
    BS array's cone angle of the echo (``node`` 0) when it has an array.
    """
    nodes = _nodes(np.stack([np.asarray(bs_m, dtype=float), np.asarray(ue_m, dtype=float)]), "bs_m, ue_m")
    base = float(np.linalg.norm(nodes[1] - nodes[0]))
    links = [monostatic_measurement(0, echo, c), bistatic_measurement(1, 0, base, srs_direct, srs_echo, c)]
    return hybrid.fuse(nodes, links, height_m, start, [] if bs_angle is None else [bs_angle])


def fuse_case_b(ues_m: ArrayLike, reports: Sequence[LinkMeasurement], height_m: float, start: ArrayLike,
                angles: Sequence[hybrid.AngleMeasurement] = ()) -> hybrid.HybridEstimate:
    """Case B at the BS: the UEs' uploaded monostatic reports (range, radial velocity, CRB variances) and angles.

    ``reports[i].tx == reports[i].rx`` indexes ``ues_m``.
    """
    nodes = _nodes(ues_m, "ues_m")
    if any(r.tx != r.rx or not 0 <= r.tx < nodes.shape[0] for r in reports):
        raise InputError(f"reports from nodes {[(r.tx, r.rx) for r in reports]}: allowed monostatic UE reports, "
                         f"tx == rx in 0 ... {nodes.shape[0] - 1}")
    return hybrid.fuse(nodes, list(reports), height_m, start, angles)


def fuse_case_c(ues_m: ArrayLike, echoes: Sequence[PathEstimate],
                sidelinks: Mapping[tuple[int, int], tuple[PathEstimate, PathEstimate]], height_m: float,
                start: ArrayLike, angles: Sequence[hybrid.AngleMeasurement] = (),
                c: float = SPEED_OF_LIGHT_MPS) -> hybrid.HybridEstimate:
    """Case C among the UEs: own echoes plus UE-to-UE reflections on the BS-allocated symbols.

    ``echoes[i]`` is UE i's monostatic path; ``sidelinks[(i, j)] = (direct,
    echo)`` the two paths UE j measured on UE i's symbols.  Every UE holds
    the same shared measurements after the sidelink exchange and so
    computes this same estimate.
    """
    nodes = _nodes(ues_m, "ues_m")
    if len(echoes) != nodes.shape[0]:
        raise InputError(f"{len(echoes)} echoes for {nodes.shape[0]} UEs: allowed one monostatic path per UE")
    links = [monostatic_measurement(i, e, c) for i, e in enumerate(echoes)]
    for (i, j), (direct, echo) in sidelinks.items():
        if i == j or not (0 <= i < nodes.shape[0] and 0 <= j < nodes.shape[0]):
            raise InputError(f"sidelink ({i}, {j}): allowed two different UE indices 0 ... {nodes.shape[0] - 1}")
        links.append(bistatic_measurement(i, j, float(np.linalg.norm(nodes[i] - nodes[j])), direct, echo, c))
    return hybrid.fuse(nodes, links, height_m, start, angles)


def live_case(members: Sequence[str], roles: Mapping[str, str], passive: Mapping[str, str] | None = None) -> str:
    """The Fig. 3 case of a fused estimate from the nodes that contributed to it.

    Parameters
    ----------
    members : sequence of str
        Ids of the nodes whose detections were fused (an estimate's ``nodes``).
    roles : mapping
        Node id -> role (``bs``, ``ue``, ``rx``).
    passive : mapping, optional
        Receive-only node id -> id of the transmitter it hears.

    Returns
    -------
    str
        ``"A"`` when a BS sensed its own echo (the target is inside its
        downlink sensing coverage); ``"B"`` when only UEs sensed it and
        uploaded; ``""`` when no UE took part (multi-BS sensing, not BS-UE).
        UE -> target -> BS reflections (a receive-only node hearing a UE)
        count as a UE taking part and accompany either case.
    """
    passive = passive or {}
    mono = {roles.get(n, "") for n in members if n not in passive}
    heard = {roles.get(passive[n], "") for n in members if n in passive}
    if "ue" not in mono | heard:
        return ""
    return "A" if "bs" in mono else "B"
