"""Link measurements from captures: a link's paths by CLEAN, and the monostatic or bistatic measurement they give.

- :func:`estimate_paths` — the strongest paths of one link's CIM by CLEAN:
  grid peak, off-grid ML refinement, least-squares amplitude, subtraction.
- :func:`monostatic_measurement` — range and radial velocity of a monostatic path.
- :func:`bistatic_measurement` — a bistatic link's range sum and range rate
  with the receiver's clock offset and carrier offset removed through the
  direct (line-of-sight) path, whose length the nodes know.
- :func:`passive_links` — a receive-only node's bistatic detections as range
  sums and range rates, referenced to its line of sight.
- :func:`array_angle` — the cone angle of one source from a uniform linear
  array's matched-filter outputs.

The :class:`~sdr_isac.fusion.records.LinkMeasurement` records made here are
what :mod:`~sdr_isac.fusion.locate` and :mod:`~sdr_isac.fusion.associate`
consume.  Geometry: positions in m in a common frame; the measurement rows are
those of :func:`sdr_isac.sensing.crb.measurement_matrix` (REFERENCE.md §3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError
from sdr_isac.fusion.completion import noise_variance
from sdr_isac.fusion.locate import _check_nodes
from sdr_isac.fusion.multiband import Band, band_map, common_grid, grid_peak, reorganise
from sdr_isac.fusion.records import LinkMeasurement
from sdr_isac.sensing import Detection
from sdr_isac.sensing import estimate as core
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["PathEstimate", "estimate_paths", "monostatic_measurement", "bistatic_measurement", "passive_links",
           "array_angle"]


@dataclass(frozen=True)
class PathEstimate:
    """One path of a link: delay (s), normalised Doppler ``nu = f_D / f_c``, amplitude, per-RE SNR and its CRB."""

    delay_s: float
    nu: float
    amplitude: complex
    snr_re: float
    var_delay_s2: float
    var_nu: float


def estimate_paths(band: Band, cim: NDArray[np.complexfloating], num_paths: int = 1,
                   noise_var: float | None = None, num_rounds: int = 10) -> list[PathEstimate]:
    """The ``num_paths`` strongest paths of a CIM, strongest first: :func:`sdr_isac.sensing.estimate.estimate_paths`
    (CLEAN from the peaks of the band's periodogram, Newton refinement, RELAX) on the band's pilots.

    The per-RE SNR is ``|a|**2 / sigma**2`` with the noise variance the mean
    power of the final residual (unless given), and the variances are the
    CRB of the band's pilots at that SNR.
    """
    grid = common_grid([band])
    data = np.where(band.pilots, cim, 0).astype(np.complex128)
    sigma2 = noise_variance(data, band.pilots) if noise_var is None else float(noise_var)

    def peak(residual: NDArray[np.complex128]) -> tuple[float, float]:
        hg, mask = reorganise(band, residual[0], grid)
        r, d = grid_peak(band_map(hg, mask, "zero", sigma2)[0], grid, [mask])
        return r * grid.delay_bin_s, float(grid.nu_axis()[d])

    k = np.arange(band.num_subcarriers) * band.subcarrier_spacing_hz
    t = band.symbol_times_s * band.carrier_hz
    paths = core.estimate_paths(data[None], band.pilots, k, t, [sigma2], band.fim(1.0)[None], num_paths, peak,
                                (grid.delay_bin_s, grid.nu_bin), 2.0, num_rounds)
    if noise_var is None:
        # after CLEAN the residual is noise: its mean power (4 real parameters removed per path) is a better
        # estimate than the first map's median, which a strong path's sidelobes inflate
        model = sum((p.amplitudes[0] * np.outer(np.exp(2j * np.pi * t * p.doppler), np.exp(-2j * np.pi * k * p.delay_s))
                     for p in paths), np.zeros_like(data))
        n = int(np.count_nonzero(band.pilots))
        sigma2 = float(np.sum(np.abs((data - model)[band.pilots]) ** 2) / max(n - 2 * len(paths), 1))
    out = []
    for p in paths:
        amp = complex(p.amplitudes[0])
        snr = abs(amp) ** 2 / sigma2
        crb = band.crb(max(snr, 1e-12))
        out.append(PathEstimate(p.delay_s, p.doppler, amp, snr, float(crb[0, 0]), float(crb[1, 1])))
    return out


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


def array_angle(snapshot: ArrayLike, spacing_wavelengths: float = 0.5) -> float:
    """Cone angle (rad from broadside) of one source from a uniform linear array's matched-filter outputs:
    :func:`sdr_isac.sensing.estimate.ml_angle` with elements ``spacing_wavelengths`` apart."""
    z = np.asarray(snapshot, dtype=np.complex128).ravel()
    if z.size < 2 or not np.all(np.isfinite(z)):
        raise InputError(f"snapshot has {z.size} entries: allowed a finite vector of at least 2 elements")
    return core.ml_angle(z, spacing_wavelengths * np.arange(z.size))


def passive_links(nodes_m: ArrayLike, tx: int, rx: int, detections: Sequence[Detection],
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
    detections : sequence of Detection
        The receive-only node's detections (bistatic geometry: ``range_m`` is
        ``c`` times the delay; monostatic ones are passed over).
    max_clock_offset_s : float
        Largest clock offset of the receiver against the transmitter, s (>= 0).
    """
    if not (np.isfinite(max_clock_offset_s) and max_clock_offset_s >= 0):
        raise InputError(f"max_clock_offset_s = {max_clock_offset_s!r} s: allowed a finite time >= 0")
    b = _check_nodes(nodes_m)
    baseline = float(np.linalg.norm(b[tx] - b[rx]))
    dets = [d for d in detections if d.geometry == "bistatic"]
    window = c * max_clock_offset_s + 3.0
    near = [d for d in dets if abs(float(d.range_m) - baseline) <= window]
    if baseline <= 0 or not near:
        return []
    los = max(near, key=lambda d: float(d.snr_db))
    r0, v0 = float(los.range_m), float(los.velocity_mps)
    out = []
    for d in dets:
        if d is los:
            continue
        s = baseline + float(d.range_m) - r0
        if s <= baseline:                                   # shorter than the direct path: not an echo
            continue
        out.append(LinkMeasurement(tx, rx, s, float(d.velocity_mps) - v0, float(d.range_var_m2)
                                   + float(los.range_var_m2), float(d.velocity_var_mps2) + float(los.velocity_var_mps2),
                                   10.0 ** (float(d.snr_db) / 10.0)))
    return out
