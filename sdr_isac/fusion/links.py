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
- :func:`passive_ssb_paths` / :func:`passive_ssb_measurement` — a receive-only
  node's paths and bistatic measurements from a gNB's SS/PBCH blocks (cell
  search, H on the known REs, CLEAN + RELAX on that sparse mask, its CRB).

The :class:`~sdr_isac.fusion.records.LinkMeasurement` records made here are
what :mod:`~sdr_isac.fusion.locate` and :mod:`~sdr_isac.fusion.associate`
consume.  Geometry: positions in m in a common frame; the measurement rows are
those of :func:`sdr_isac.sensing.crb.measurement_matrix` (REFERENCE.md §3).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.capture import Capture
from sdr_isac.errors import InputError, SensingError
from sdr_isac.fusion.completion import pilot_noise, to_delay_doppler
from sdr_isac.fusion.locate import _check_nodes
from sdr_isac.fusion.multiband import (
    Band,
    CommonGrid,
    _check_noise,
    band_map,
    common_grid,
    grid_peak,
    periodic_block,
    reorganise,
)
from sdr_isac.fusion.records import LinkMeasurement
from sdr_isac.fusion.resource import delay_doppler_power
from sdr_isac.sensing import Detection
from sdr_isac.sensing import estimate as core
from sdr_isac.sensing.crb import delay_doppler_fim
from sdr_isac.units import SPEED_OF_LIGHT_MPS
from sdr_isac.waveform import IsacFrame
from sdr_isac.waveform.ssb import CellSearchResult, cell_search, ssb_blocks, ssb_first_bin

__all__ = ["PathEstimate", "estimate_paths", "monostatic_measurement", "bistatic_measurement", "passive_links",
           "array_angle", "SSB_SIGNALS", "PassiveGrid", "passive_grid", "passive_paths", "PassiveSsbResult",
           "passive_ssb_paths", "passive_ssb_measurement", "path_detection"]


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

    Pilots on every g-th symbol (subcarrier) of the whole grid make a periodogram that repeats g times along
    Doppler (delay): its resolvable part, where the peaks are searched, and the median that gives the first
    noise level are those of the pilots' own block, which is transformed instead of the whole grid (a quarter
    of it for a pilot every 4th symbol).
    """
    layout = _layout(band)
    data = np.where(band.pilots, cim, 0).astype(np.complex128)
    grid = layout.grid
    first_map: list[NDArray[np.float64]] = []
    if layout.block is None and noise_var is not None:
        sigma2 = float(noise_var)
    else:
        level, power = pilot_noise(data, band.pilots, layout.block)
        first_map = [power] if layout.block is not None else []
        sigma2 = level if noise_var is None else float(noise_var)
    if noise_var is None:
        _check_noise(sigma2)                   # all-zero measurements: say so (a given level is checked below)

    def peak(residual: NDArray[np.complex128]) -> tuple[float, float]:
        if layout.block is None:
            hg, mask = reorganise(band, residual[0], grid)
            r, d = grid_peak(band_map(hg, mask, "zero", sigma2)[0], grid, [mask])
            return r * grid.delay_bin_s, float(grid.nu_axis()[d])
        # the first search is on the data themselves, whose map the noise level was taken from
        power = first_map.pop() if first_map else np.abs(to_delay_doppler(residual[0][np.ix_(*layout.block)])) ** 2
        r, d = divmod(int(np.argmax(power.ravel()[layout.region])), layout.region.shape[1])
        return r * grid.delay_bin_s, float(layout.region_nu[d])

    paths = core.estimate_paths(data[None], band.pilots, layout.k_hz, layout.t, [sigma2], layout.unit_fim[None],
                                num_paths, peak, (grid.delay_bin_s, grid.nu_bin), 2.0, num_rounds)
    if noise_var is None:
        # after CLEAN the residual is noise: its mean power (over the REs less each path's parameters) is a better
        # estimate than the first map's median, which a strong path's sidelobes inflate
        sigma2 = core.residual_noise_variance(data, band.pilots, paths, layout.k_hz, layout.t)
    out = []
    for p in paths:
        amp = complex(p.amplitudes[0])
        snr = abs(amp) ** 2 / sigma2
        crb = band.crb(max(snr, 1e-12))
        out.append(PathEstimate(p.delay_s, p.doppler, amp, snr, float(crb[0, 0]), float(crb[1, 1])))
    return out


@dataclass(frozen=True, eq=False)
class _Layout:
    """What :func:`estimate_paths` derives from a band alone (its grid, its axes, its Fisher information at
    per-RE SNR 1 and, where the pilots make a periodic block, that block and the resolvable cells of its map),
    kept per band by :func:`_layout`.

    ``block``: (rows, cols) of the pilots when they fill every g-th row and every h-th column of the whole
    grid (``g R = M``, ``h C = K``): the grid's periodogram is then the block's (R, C) periodogram repeated g
    times along Doppler and h times along delay, scaled by ``R C / (M K)``.  ``region``: shape (C', D'), the
    flat indices into the block's map of the cells :func:`sdr_isac.fusion.multiband.grid_peak` searches,
    delay-major as it does (its first maximum is the same cell); ``region_nu``: their normalised Doppler.
    """

    grid: CommonGrid
    k_hz: NDArray[np.float64]
    t: NDArray[np.float64]
    unit_fim: NDArray[np.float64]
    block: tuple[NDArray[np.intp], NDArray[np.intp]] | None
    region: NDArray[np.intp]
    region_nu: NDArray[np.float64]


def _layout(band: Band) -> _Layout:
    """:class:`_Layout` of ``band``, remembered per band parameters and pilots (bands are rebuilt per trial)."""
    return _layout_of(band.name, band.carrier_hz, band.subcarrier_spacing_hz, band.cp_s, band.pilots.shape,
                      band.pilots.tobytes())


@functools.lru_cache(maxsize=32)
def _layout_of(name: str, carrier_hz: float, subcarrier_spacing_hz: float, cp_s: float, shape: tuple[int, ...],
               pilots: bytes) -> _Layout:
    """:func:`_layout` of the band these values make."""
    band = Band(name, carrier_hz, subcarrier_spacing_hz, cp_s, np.frombuffer(pilots, dtype=bool).reshape(shape))
    grid = common_grid([band])
    k_hz = np.arange(band.num_subcarriers, dtype=np.float64) * band.subcarrier_spacing_hz
    t = band.symbol_times_s * band.carrier_hz
    block = periodic_block(band.pilots)
    region, region_nu = np.zeros((0, 0), dtype=np.intp), np.zeros(0)
    if block is not None and (grid.num_symbols, grid.num_subcarriers) == band.pilots.shape:
        # the cells grid_peak searches: delay bins below K / g_k, Doppler bins within the resolvable half-width
        rows, cols = block
        m_all, k_all = band.pilots.shape
        g_m, g_k = m_all // rows.size, k_all // cols.size
        delay_ok = grid.delay_axis_s() < (k_all // g_k) * grid.delay_bin_s
        nu_axis = grid.nu_axis()
        shifted = np.flatnonzero(np.abs(nu_axis) <= ((m_all // g_m) / 2.0 - 0.5) * grid.nu_bin)
        doppler_rows = (shifted - m_all // 2) % rows.size               # the block map's row of each Doppler bin
        delay_cols = np.flatnonzero(delay_ok) % cols.size
        region = doppler_rows[None, :] * cols.size + delay_cols[:, None]
        region_nu = nu_axis[shifted]
    else:
        block = None
    unit_fim = band.fim(1.0)
    unit_fim.flags.writeable = False
    return _Layout(grid, k_hz, t, unit_fim, block, region, region_nu)


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


#: the line of sight of a receive-only node is the earliest path within this many dB of the strongest near the
#: baseline (a weaker early detection is taken for noise)
LOS_FLOOR_DB = 20.0


def passive_links(nodes_m: ArrayLike, tx: int, rx: int, detections: Sequence[Detection],
                  max_clock_offset_s: float = 1e-7, c: float = SPEED_OF_LIGHT_MPS) -> list[LinkMeasurement]:
    """A receive-only node's bistatic detections as range sums and range rates, referenced to its line of sight.

    The line of sight is the earliest bistatic detection whose range sum
    lies within ``c * max_clock_offset_s + 3`` m of the baseline
    ``L = ||b_tx - b_rx||`` (the receiver's clock offset shifts every range
    sum alike; 3 m cover a range cell and the nodes' survey) and whose SNR is
    within :data:`LOS_FLOOR_DB` of the strongest there: nothing arrives before
    the direct path, but an echo near the baseline may be stronger than it (a
    surveillance antenna facing away from the transmitter).  Every other
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
    strongest = max(float(d.snr_db) for d in near)
    los = min((d for d in near if float(d.snr_db) >= strongest - LOS_FLOOR_DB), key=lambda d: float(d.range_m))
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


# ------------------------------------------------------------------ passive sensing on a gNB's SS/PBCH blocks

#: what a receive-only node knows of a cell's SS/PBCH blocks after cell search (not the PBCH payload)
SSB_SIGNALS = ("ssb_pss", "ssb_sss", "pbch_dmrs")

_PASSIVE_OVERSAMPLE = 2


@dataclass(frozen=True)
class PassiveGrid:
    """A passive node's pilots: the known REs cropped to the symbols and subcarriers that hold any.

    Attributes
    ----------
    carrier_hz, subcarrier_spacing_hz : float
        Hz.
    symbol_times_s : ndarray, shape (M,), float64
        Start of each kept symbol's useful part from the frame start, s (non-uniform: the kept rows).
    pilots : ndarray, shape (M, K), bool
        Known REs of the kept rows and columns (the columns contiguous).
    rows, cols : ndarray, shape (M,) and (K,), int64
        Frame symbols and carrier subcarriers kept.
    values : ndarray, shape (M, K), complex128
        The transmitted symbols on the pilots (0 elsewhere).
    """

    carrier_hz: float
    subcarrier_spacing_hz: float
    symbol_times_s: NDArray[np.float64]
    pilots: NDArray[np.bool_]
    rows: NDArray[np.int64]
    cols: NDArray[np.int64]
    values: NDArray[np.complex128]

    @property
    def num_subcarriers(self) -> int:
        """K, the contiguous subcarriers kept."""
        return int(self.pilots.shape[1])

    @property
    def num_pilots(self) -> int:
        """The known REs."""
        return int(np.count_nonzero(self.pilots))

    @property
    def centroid_s(self) -> float:
        """The pilots' mean time from the frame start, s: where a constant-delay fit measures a moving path."""
        weights = self.pilots.sum(axis=1)
        return float(np.sum(weights * self.symbol_times_s) / max(int(weights.sum()), 1))

    def unit_fim(self) -> NDArray[np.float64]:
        """Fisher information of (delay s, Doppler Hz) of one path on the pilots at per-RE SNR 1, shape (2, 2)."""
        return np.asarray(delay_doppler_fim(1.0, self.pilots, self.subcarrier_spacing_hz, self.symbol_times_s),
                          dtype=np.float64)


def passive_grid(frame: IsacFrame, signals: Sequence[str] = SSB_SIGNALS) -> PassiveGrid:
    """The REs of ``signals`` in ``frame`` that carry a symbol, cropped (columns kept contiguous).

    Raises :class:`InputError` when ``signals`` select no RE of the frame.
    """
    names = tuple(signals)
    x = frame.grid.values.sum(axis=0)
    mask = frame.known_mask(*names) & (np.abs(x) > 0)
    if not mask.any():
        raise InputError(f"signals = {names!r}: no RE of the frame carries them; allowed the reference signals the "
                         "frame has (a [frame.ssb] section for ssb_pss, ssb_sss, pbch_dmrs; [frame.dmrs] for dmrs)")
    rows = np.flatnonzero(mask.any(axis=1))
    used = np.flatnonzero(mask.any(axis=0))
    cols = np.arange(used[0], used[-1] + 1)
    times = (frame.symbol_starts + frame.cp_lengths).astype(np.float64) / frame.sample_rate_hz
    cfg = frame.config
    crop = np.ix_(rows, cols)
    pilots = mask[crop]
    return PassiveGrid(float(cfg.carrier_hz), float(cfg.subcarrier_spacing_hz), times[rows], pilots,
                       rows.astype(np.int64), cols.astype(np.int64),
                       np.where(pilots, x[crop], 0).astype(np.complex128))


def passive_paths(grid: PassiveGrid, h: ArrayLike, num_paths: int = 2,
                  noise_var: float | None = None, carrier_hz: float | None = None) -> list[PathEstimate]:
    """The ``num_paths`` strongest paths of a channel on a sparse passive mask, in order of delay.

    :func:`sdr_isac.sensing.estimate.estimate_paths` (CLEAN from the peak of
    the pilots' periodogram on the uniform grid of the smallest symbol step,
    Newton refinement, RELAX) with each receive channel a look.  Without
    ``noise_var`` the noise variance per RE is the mean power of the residual
    of a first fit (:func:`sdr_isac.sensing.estimate.residual_noise_variance`), and the paths are
    fitted again with it (RELAX stops at 5 % of a standard deviation, which
    needs the noise level).  SNR per RE: ``sum_c |a_c|**2 / sigma**2``;
    variances: the single-path CRB of the mask at that SNR
    (:func:`sdr_isac.sensing.crb.delay_doppler_fim`).

    Parameters
    ----------
    grid : PassiveGrid
    h : array_like, shape (M, K) or (C, M, K), complex
        Channel on the grid's pilots (ignored elsewhere).
    num_paths : int
        >= 1 and at most the pilots.
    noise_var : float, optional
        Noise variance of ``h`` per RE (> 0).
    carrier_hz : float, optional
        Carrier of the normalised Doppler ``nu = f_D / f_c`` (default the grid's).

    Returns
    -------
    list of PathEstimate
        Sorted by delay (``delay_s`` from the grid's time origin).
    """
    m = grid.pilots
    x = np.asarray(h, dtype=np.complex128)
    x = x[None] if x.ndim == 2 else x
    if x.ndim != 3 or x.shape[1:] != m.shape:
        raise InputError(f"h has shape {np.shape(h)}: allowed (M, K) or (C, M, K) with (M, K) = {m.shape}, the "
                         "passive grid's pilots")
    data = np.where(m[None], x, 0)
    if not np.all(np.isfinite(data)):
        raise InputError("h has NaN or infinite values on the pilots: pass a finite channel estimate")
    if noise_var is not None and not (np.isfinite(noise_var) and noise_var > 0):
        raise InputError(f"noise_var = {noise_var!r}: allowed a finite noise variance per RE > 0, or None to "
                         "estimate it")
    fc = float(carrier_hz or grid.carrier_hz)
    df, t = grid.subcarrier_spacing_hz, grid.symbol_times_s
    step_s = float(np.min(np.diff(t))) if t.size > 1 else 1.0 / df
    num_rows = int(np.rint((t[-1] - t[0]) / step_s)) + 1
    n_delay, n_dopp = _PASSIVE_OVERSAMPLE * m.shape[1], _PASSIVE_OVERSAMPLE * num_rows
    delay_axis = np.arange(n_delay) / (n_delay * df)
    dopp_axis = (np.arange(n_dopp) - n_dopp // 2) / (n_dopp * step_s)
    limit_s = 1.0 / (core.resolvable_steps([m])[1] * df)

    def peak(residual: NDArray[np.complex128]) -> tuple[float, float]:
        power = delay_doppler_power(residual, t, m, _PASSIVE_OVERSAMPLE)
        i, j = core.grid_peak(power, delay_axis, dopp_axis, limit_s)
        return float(delay_axis[i]), float(dopp_axis[j])

    k_hz = np.arange(m.shape[1]) * df
    fims = np.broadcast_to(grid.unit_fim(), (x.shape[0], 2, 2))
    steps = (float(delay_axis[1]), float(dopp_axis[1] - dopp_axis[0]))

    def fit(sigma2: float) -> tuple[list[core.Path], float]:
        paths = core.estimate_paths(data, m, k_hz, t, [sigma2] * x.shape[0], fims, num_paths, peak, steps)
        return paths, core.residual_noise_variance(data, m, paths, k_hz, t)

    if noise_var is None:
        # a first fit with the data's mean power as the noise level (RELAX then stops early), then the residual's
        sigma2 = fit(float(np.mean(np.abs(data[:, m]) ** 2)) or 1.0)[1]
        paths, sigma2 = fit(max(sigma2, 1e-30))
    else:
        sigma2 = float(noise_var)
        paths, _ = fit(sigma2)
    out = []
    for p in paths:
        snr = float(np.sum(np.abs(p.amplitudes) ** 2) / sigma2)
        bound = np.linalg.inv(max(snr, 1e-12) * grid.unit_fim())
        out.append(PathEstimate(float(p.delay_s), float(p.doppler) / fc, complex(p.amplitudes[0]), snr,
                                float(bound[0, 0]), float(bound[1, 1]) / fc**2))
    return sorted(out, key=lambda p: p.delay_s)


@dataclass(frozen=True)
class PassiveSsbResult:
    """What :func:`passive_ssb_paths` found in one capture.

    Attributes
    ----------
    cell : CellSearchResult
        Cell identity, block index, block timing, CFO.
    frame_start : int
        Capture sample where the transmitter's frame starts by the PSS timing (may be negative or past the end for
        a cyclic transmission: one frame period away).
    cfo_hz : float
        Carrier offset removed before demodulation, Hz.
    grid : PassiveGrid
        The pilots sensed.
    paths : list of PathEstimate
        In order of delay; ``delay_s`` from the capture's ``frame_offset`` (the node's own frame clock, so its
        clock offset is in every delay), ``nu`` the Doppler left after the CFO removal over the carrier.
    """

    cell: CellSearchResult
    frame_start: int
    cfo_hz: float
    grid: PassiveGrid
    paths: list[PathEstimate]


def _frame_start(cell: CellSearchResult, frame: IsacFrame, frame_offset: int) -> int:
    """The frame start implied by the block cell search found: of the frame's blocks with that PBCH DMRS index,
    the one whose implied start lies nearest the capture's ``frame_offset`` (modulo the frame period)."""
    cfg = frame.config
    blocks = ssb_blocks(cfg)
    l_max = cfg.ssb.l_max if cfg.ssb is not None else 8
    if l_max == 4:
        same = (blocks.indices == cell.i_ssb_bar % 4) & (blocks.half_frames % 2 == cell.i_ssb_bar // 4)
    else:
        same = blocks.indices % 8 == cell.i_ssb_bar
    if not same.any():
        raise SensingError(f"cell search found PBCH DMRS index i_bar = {cell.i_ssb_bar}, which no SS/PBCH block of "
                           f"the configured frame carries (blocks {blocks.indices.tolist()}): give the receive-only "
                           "node the transmitter's [frame.ssb] (case, l_max, positions)")
    period = frame.num_samples
    starts = cell.ssb_start - frame.symbol_starts[blocks.first_symbols[same]].astype(np.int64)
    wrapped = (starts - frame_offset + period // 2) % period - period // 2
    return int(frame_offset + wrapped[int(np.argmin(np.abs(wrapped)))])


def passive_ssb_paths(capture: Capture, frame: IsacFrame, signals: Sequence[str] = SSB_SIGNALS,
                      num_paths: int = 2, noise_var: float | None = None,
                      advance_samples: int = 8, refine_cfo: bool = True) -> PassiveSsbResult:
    """Paths of a gNB-like transmitter heard by a receive-only node on the REs it knows (issue #16 item 4).

    1. :func:`sdr_isac.waveform.ssb.cell_search`: block timing, N_ID^cell
       (checked against ``frame.ssb.n_cell_id``), PBCH DMRS index, CFO.
    2. The CFO is removed; the frame is demodulated from ``advance_samples``
       before the PSS timing (the direct path then lies at a small positive
       delay, inside the cyclic prefix); a cyclic transmission supplies the
       samples that fall outside the capture one frame period away.
    3. ``H = Y / X`` on the known REs of ``signals`` (:func:`passive_grid`),
       every receive channel a look, and :func:`passive_paths`.

    Delays are referred to the capture's ``frame_offset``, as the map
    pipeline's are, so the line of sight lies at ``L / c`` plus the node's
    clock offset and :func:`passive_links` / :func:`bistatic_measurement`
    reference the echoes to it.

    Parameters
    ----------
    capture : Capture
        ``iq`` complex64, shape (C, n), n >= one frame.
    frame : IsacFrame
        The transmitter's frame (with a ``[frame.ssb]`` section).
    signals : sequence of str
        Known signals: ``ssb_pss``, ``ssb_sss``, ``pbch_dmrs`` and, when the
        frame has it, ``dmrs`` (the PDSCH DMRS).
    num_paths : int
        Paths to fit (>= 2: the line of sight and at least one echo).
    noise_var : float, optional
        Noise variance of H per RE; estimated from the residual when omitted.
    advance_samples : int
        0 ... the shortest cyclic prefix, samples.

    Raises
    ------
    SensingError
        No SS/PBCH block in the frame, another cell found, or a capture shorter than a frame.
    """
    cfg = frame.config
    if cfg.ssb is None:
        raise SensingError("the transmitter's frame has no [frame.ssb] section: passive SSB sensing needs the "
                           "SS/PBCH block configuration (case, n_cell_id, l_max, period_ms)")
    shortest_cp = int(np.min(frame.cp_lengths))
    if isinstance(advance_samples, bool) or not isinstance(advance_samples, int | np.integer) \
            or not 0 <= advance_samples <= shortest_cp:
        raise InputError(f"advance_samples = {advance_samples!r} samples: allowed a whole number 0 ... {shortest_cp} "
                         "(the shortest cyclic prefix)")
    period = frame.num_samples
    if capture.num_samples < period:
        raise SensingError(f"capture has {capture.num_samples} samples, the frame {period}: passive SSB sensing "
                           "needs at least one whole frame")
    blocks = ssb_blocks(cfg)
    if blocks.indices.size == 0:
        raise SensingError(f"the frame ({cfg.total_symbols} symbols) holds no whole SS/PBCH block of its burst: give "
                           "it more slots or a shorter ssb.period_ms")
    fs = frame.sample_rate_hz
    cell = cell_search(capture.iq, cfg.fft_size, int(frame.cp_lengths[blocks.first_symbols[0]]), fs,
                       ssb_first_bin(cfg))
    if cell.n_cell_id != cfg.ssb.n_cell_id:
        raise SensingError(f"cell search found N_ID^cell = {cell.n_cell_id}, the frame is configured with "
                           f"ssb.n_cell_id = {cfg.ssb.n_cell_id}: give the node the heard cell's id (or check "
                           f"that the transmitter is on; PSS peak to median {cell.peak_to_median:.1f})")
    start = _frame_start(cell, frame, capture.frame_offset)
    index = start - advance_samples + np.arange(period)
    index = np.where(index < 0, index + period, index)
    index = np.where(index >= capture.num_samples, index - period, index)
    grid = passive_grid(frame, signals)
    crop = np.ix_(grid.rows, grid.cols)
    x = np.where(grid.pilots, grid.values, 1.0)
    carrier = float(capture.center_freq_hz or cfg.carrier_hz)
    cfo_hz = float(cell.cfo_hz)
    passes = 1 + int(refine_cfo)
    for i in range(passes):
        # the PSS's CFO leaves tens of Hz; the direct path (static nodes: its Doppler is the CFO) gives the rest,
        # and a second pass without it removes the inter-carrier interference the strong direct path would leak
        # from the unknown data REs into the pilots (about -60 dB of it for 15 Hz at 30 kHz)
        ramp = np.exp(-2j * np.pi * cfo_hz * index / fs)
        y = frame.ofdm.demodulate((capture.iq[:, index] * ramp).astype(np.complex64))
        h = np.where(grid.pilots[None], y[:, crop[0], crop[1]] / x[None], 0)
        # a pass that only measures the CFO takes the data's mean power as its noise level: one fit, not two
        rough = noise_var if i == passes - 1 else (noise_var or float(np.mean(np.abs(h[:, grid.pilots]) ** 2)))
        paths = passive_paths(grid, h, num_paths, rough, carrier)
        cfo_hz += _line_of_sight(paths).nu * carrier
    cfo_hz -= _line_of_sight(paths).nu * carrier      # the offset the last paths were sensed with
    shift_s = (start - advance_samples - capture.frame_offset) / fs
    paths = [dataclasses.replace(p, delay_s=p.delay_s + shift_s) for p in paths]
    return PassiveSsbResult(cell, start, cfo_hz, grid, paths)


def passive_ssb_measurement(capture: Capture, frame: IsacFrame, baseline_m: float, tx: int = 0, rx: int = 1,
                            signals: Sequence[str] = SSB_SIGNALS, num_paths: int = 2,
                            noise_var: float | None = None) -> list[LinkMeasurement]:
    """A receive-only node's bistatic range sums and range rates from a gNB's SS/PBCH blocks.

    :func:`passive_ssb_paths`; the line of sight is the earliest path within
    :data:`LOS_FLOOR_DB` of the strongest (:func:`passive_links`), and
    every later path gives a :func:`bistatic_measurement` against it (clock
    offset and CFO cancel; variances of both paths' CRBs on the sparse mask
    added).  The range sum is that of the pilots' mean time
    (:attr:`PassiveGrid.centroid_s` after the frame start).

    Parameters
    ----------
    capture, frame, signals, num_paths, noise_var
        As :func:`passive_ssb_paths`.
    baseline_m : float
        Distance transmitter -- receiver, m (> 0).
    tx, rx : int
        Node indices the records carry.

    Returns
    -------
    list of LinkMeasurement
        One per echo, in order of delay.
    """
    if not (np.isfinite(baseline_m) and baseline_m > 0):
        raise InputError(f"baseline_m = {baseline_m!r} m: allowed the distance between the two nodes, > 0")
    paths = passive_ssb_paths(capture, frame, signals, num_paths, noise_var).paths
    direct = _line_of_sight(paths)
    return [bistatic_measurement(tx, rx, baseline_m, direct, p) for p in paths if p.delay_s > direct.delay_s]


def _line_of_sight(paths: Sequence[PathEstimate]) -> PathEstimate:
    """The earliest path within :data:`LOS_FLOOR_DB` of the strongest (nothing arrives before the direct path)."""
    strongest = max(p.snr_re for p in paths)
    return min((p for p in paths if p.snr_re >= strongest * 10.0 ** (-LOS_FLOOR_DB / 10.0)), key=lambda p: p.delay_s)


def path_detection(path: PathEstimate, carrier_hz: float, num_pilots: int,
                   c: float = SPEED_OF_LIGHT_MPS) -> Detection:
    """A bistatic :class:`~sdr_isac.sensing.Detection` of a passive path: range ``c tau``, rate ``-c nu``.

    ``map_snr_db`` is the coherent gain of the pilots times the per-RE SNR
    (the periodogram's peak over its noise level).
    """
    return Detection(range_m=float(c * path.delay_s), velocity_mps=float(-c * path.nu),
                     doppler_hz=float(path.nu * carrier_hz), delay_s=float(path.delay_s),
                     snr_db=10.0 * math.log10(max(path.snr_re, 1e-30)), geometry="bistatic", angle_rad=None,
                     range_var_m2=float(c**2 * path.var_delay_s2), velocity_var_mps2=float(c**2 * path.var_nu),
                     angle_var_rad2=None, map_snr_db=10.0 * math.log10(max(path.snr_re * num_pilots, 1e-30)))
