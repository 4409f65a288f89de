"""Multi-band fusion: channel information of several bands on one delay-Doppler grid.

Method of Wei, Liu et al. ("Carrier aggregation enabled integrated sensing
and communication signal design and processing", IEEE TVT 2024; the
article's §III-B and Fig. 5; ``REFERENCE.md`` §4):

- Each band ``b`` measures ``H_b[m, k] = a_b exp(-j 2 pi k df_b tau) exp(+j 2 pi nu f_b m T_b)``
  on its pilot REs, with the same delay ``tau`` and *normalised Doppler*
  ``nu = f_D / f_c = -2 v / c`` (monostatic) in every band.
- A common grid with spacing ``df_g`` and symbol step ``(f T)_g`` puts the
  RE ``(m, k)`` of band b at row ``m f_b T_b / (f T)_g`` and column
  ``k df_b / df_g``.  When both are whole numbers the band's entries are a
  subset of the common grid's steering vectors: the low band's comb pilots
  (every K-th subcarrier, ``K = df_H / df_L``) are the first N/K range
  entries of the high band, and with ``f_H T_H = f_L T_L`` the symbols line
  up one to one (:func:`reorganise`).
- The empty entries of each band's matrix are recovered by compressed
  sensing (:func:`sdr_isac.fusion.completion.complete_cim`, on the cells
  of the search prior: :func:`completion_support`) or left at zero,
  each band's periodogram on the common grid is divided by its noise level,
  and the maps are added (:func:`fused_map`); the peak gives the grid
  estimate.
- Off the grid, the maximum-likelihood estimate for independent complex
  amplitudes per band maximises the sum of the bands' normalised
  periodograms of the raw measurements, ``sum_b |d_b(nu)^T H_b a_b(tau)|**2 / (n_b sigma_b**2)``
  (:func:`refine`: Newton on the exact derivatives, :mod:`sdr_isac.sensing.estimate`);
  it reaches the fused Cramér–Rao bound, the sum of the
  bands' Fisher informations (:meth:`Band.crb`).

Delays are in s and Doppler is normalised (``nu``, dimensionless) in the
core; :func:`estimate` converts to range and velocity with the speed of light
it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from sdr_isac.errors import InputError
from sdr_isac.fusion.completion import complete_cim, noise_variance, pilot_noise, to_delay_doppler
from sdr_isac.sensing.crb import crb_from_fim, delay_doppler_fim
from sdr_isac.sensing.estimate import Look, look, median_step, resolvable_steps
from sdr_isac.sensing.estimate import grid_peak as _grid_peak
from sdr_isac.sensing.estimate import refine as refine_joint
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["Band", "CommonGrid", "BandEstimate", "BandWork", "pilot_mask", "common_grid", "reorganise", "band_map",
           "completion_support", "fused_map", "grid_peak", "refine", "band_looks", "estimate", "estimate_level_fusion",
           "article_bands", "pilot_block", "periodic_block"]


def pilot_mask(num_symbols: int, num_subcarriers: int, symbol_step: int = 1, subcarrier_step: int = 1,
               symbol_offset: int = 0, subcarrier_offset: int = 0) -> NDArray[np.bool_]:
    """Pilot REs every ``symbol_step``-th symbol and every ``subcarrier_step``-th subcarrier.

    ``pilot_mask(64, 512, symbol_step=4)`` is a block pilot on every 4th
    symbol; ``pilot_mask(64, 512, subcarrier_step=4)`` a comb on every 4th
    subcarrier.

    >>> int(pilot_mask(8, 12, symbol_step=4).sum()), int(pilot_mask(8, 12, subcarrier_step=4).sum())
    (24, 24)
    """
    for name, value in (("num_symbols", num_symbols), ("num_subcarriers", num_subcarriers),
                        ("symbol_step", symbol_step), ("subcarrier_step", subcarrier_step)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise InputError(f"{name} = {value!r}: allowed a whole number >= 1")
    mask = np.zeros((num_symbols, num_subcarriers), dtype=bool)
    mask[symbol_offset::symbol_step, subcarrier_offset::subcarrier_step] = True
    if not mask.any():
        raise InputError(f"offsets ({symbol_offset}, {subcarrier_offset}) leave no pilot in a "
                         f"{num_symbols} x {num_subcarriers} grid: allowed offsets below the grid size")
    return mask


@dataclass(frozen=True, eq=False)
class Band:
    """One band's OFDM parameters and pilot REs.

    Attributes
    ----------
    name : str
    carrier_hz : float
        f_b, Hz.
    subcarrier_spacing_hz : float
        df_b, Hz.
    cp_s : float
        Cyclic prefix, s; the symbol period is ``T_b = 1 / df_b + cp_s``.
    pilots : ndarray, shape (M, K), bool
        REs carrying known symbols (rows symbols, columns subcarriers).
    """

    name: str
    carrier_hz: float
    subcarrier_spacing_hz: float
    cp_s: float
    pilots: NDArray[np.bool_] = field(repr=False)

    def __post_init__(self) -> None:
        for key in ("carrier_hz", "subcarrier_spacing_hz"):
            value = getattr(self, key)
            if not (np.isfinite(value) and value > 0):
                raise InputError(f"band {self.name!r}: {key} = {value!r} Hz: allowed a finite number > 0")
        if not (np.isfinite(self.cp_s) and self.cp_s >= 0):
            raise InputError(f"band {self.name!r}: cp_s = {self.cp_s!r} s: allowed a finite length >= 0")
        p = np.asarray(self.pilots)
        if p.dtype != bool or p.ndim != 2 or not p.any():
            raise InputError(f"band {self.name!r}: pilots has dtype {p.dtype}, shape {p.shape}: allowed a 2-D "
                             "(symbols, subcarriers) bool mask with at least one pilot")

    @property
    def num_symbols(self) -> int:
        return int(self.pilots.shape[0])

    @property
    def num_subcarriers(self) -> int:
        return int(self.pilots.shape[1])

    @property
    def symbol_period_s(self) -> float:
        """T_b = 1 / df_b + T_CP, s."""
        return 1.0 / self.subcarrier_spacing_hz + self.cp_s

    @property
    def symbol_times_s(self) -> NDArray[np.float64]:
        return np.arange(self.num_symbols, dtype=np.float64) * self.symbol_period_s

    def fim(self, snr_re: float) -> NDArray[np.float64]:
        """Fisher information of ``(tau in s, nu)`` from the pilots at per-RE SNR ``snr_re`` (linear).

        :func:`sdr_isac.sensing.crb.delay_doppler_fim` with the Doppler row
        scaled by ``f_b`` (``f_D = nu f_b``), phase and amplitude eliminated.
        """
        j = delay_doppler_fim(snr_re, self.pilots, self.subcarrier_spacing_hz, self.symbol_times_s)
        scale = np.array([1.0, self.carrier_hz])
        return np.asarray(j * np.outer(scale, scale), dtype=np.float64)

    def crb(self, snr_re: float) -> NDArray[np.float64]:
        """CRB of ``(tau in s, nu)`` (2 x 2): inverse of :meth:`fim`."""
        return crb_from_fim(self.fim(snr_re))


@dataclass(frozen=True)
class CommonGrid:
    """The delay-Doppler grid the bands are reorganised onto.

    Column k stands for subcarrier offset ``k df``; row m for Doppler phase
    ``2 pi nu m fT``.  The periodogram of an ``(M, K)`` matrix has delay
    bins of ``1 / (K df)`` and normalised-Doppler bins of ``1 / (M fT)``.
    """

    subcarrier_spacing_hz: float
    carrier_symbol_product: float       # (f T)_g, dimensionless
    num_symbols: int
    num_subcarriers: int

    @property
    def delay_bin_s(self) -> float:
        return 1.0 / (self.num_subcarriers * self.subcarrier_spacing_hz)

    @property
    def nu_bin(self) -> float:
        return 1.0 / (self.num_symbols * self.carrier_symbol_product)

    def delay_axis_s(self) -> NDArray[np.float64]:
        return np.arange(self.num_subcarriers, dtype=np.float64) * self.delay_bin_s

    def nu_axis(self) -> NDArray[np.float64]:
        """Normalised Doppler of each (fftshifted) Doppler bin."""
        return (np.arange(self.num_symbols, dtype=np.float64) - self.num_symbols // 2) * self.nu_bin


def _whole(values: NDArray[np.floating], what: str, band: str, tol: float) -> NDArray[np.int64]:
    r = np.rint(values)
    worst = float(np.max(np.abs(values - r))) if values.size else 0.0
    if worst > tol:
        raise InputError(f"band {band!r}: its pilot {what} fall {worst:.3g} of a step off the common grid: allowed "
                         f"<= {tol}; choose a reference band whose spacing divides this band's pilot spacing")
    return r.astype(np.int64)


def common_grid(bands: Sequence[Band], reference: int = 0) -> CommonGrid:
    """The common grid of ``bands`` with the spacing and ``f T`` of ``bands[reference]``.

    Its size covers every band's pilots after :func:`reorganise`.
    """
    if not bands:
        raise InputError("bands is empty: allowed one or more Band")
    ref = bands[reference]
    df_g, ft_g = ref.subcarrier_spacing_hz, ref.carrier_hz * ref.symbol_period_s
    rows, cols = 1, 1
    for b in bands:
        m, k = np.nonzero(b.pilots)
        rows = max(rows, int(np.rint(m.max() * b.carrier_hz * b.symbol_period_s / ft_g)) + 1)
        cols = max(cols, int(np.rint(k.max() * b.subcarrier_spacing_hz / df_g)) + 1)
    rows = max(rows, ref.num_symbols)
    cols = max(cols, ref.num_subcarriers)
    return CommonGrid(df_g, ft_g, rows, cols)


def reorganise(band: Band, cim: NDArray[np.complexfloating], grid: CommonGrid,
               tol: float = 0.02) -> tuple[NDArray[np.complex128], NDArray[np.bool_]]:
    """Place a band's measured CIM (its own (M, K) shape) onto the common grid.

    Returns the grid matrix (zero off the band's pilots) and its mask.
    Raises :class:`InputError` when a pilot does not land within ``tol`` of
    a grid node (the spacings are not commensurate).
    """
    h = np.asarray(cim)
    if h.shape != band.pilots.shape:
        raise InputError(f"band {band.name!r}: cim has shape {h.shape}: allowed {band.pilots.shape}, the band's "
                         "(symbols, subcarriers)")
    m, k = np.nonzero(band.pilots)
    rows = _whole(m * band.carrier_hz * band.symbol_period_s / grid.carrier_symbol_product, "symbols", band.name, tol)
    cols = _whole(k * band.subcarrier_spacing_hz / grid.subcarrier_spacing_hz, "subcarriers", band.name, tol)
    if rows.max() >= grid.num_symbols or cols.max() >= grid.num_subcarriers:
        raise InputError(f"band {band.name!r} reaches row {rows.max()}, column {cols.max()}: allowed inside the "
                         f"{grid.num_symbols} x {grid.num_subcarriers} common grid; build it with common_grid()")
    out = np.zeros((grid.num_symbols, grid.num_subcarriers), dtype=np.complex128)
    mask = np.zeros(out.shape, dtype=bool)
    out[rows, cols] = h[m, k]
    mask[rows, cols] = True
    return out, mask


def band_map(h_grid: NDArray[np.complexfloating], mask: NDArray[np.bool_], completion: str = "zero",
             noise_var: float | None = None, support: NDArray[np.bool_] | None = None
             ) -> tuple[NDArray[np.float64], float]:
    """Periodogram of one band on the common grid, in units of its noise level.

    Parameters
    ----------
    h_grid, mask : ndarray, shape (M, K)
        From :func:`reorganise`.
    completion : {"zero", "cs"}
        Leave the empty REs at zero, or recover them by compressed sensing.
    noise_var : float, optional
        Noise variance per RE; default estimated from the data.
    support : ndarray, shape (M, K), bool, optional
        With ``"cs"``: the delay-Doppler cells where targets may be (:func:`completion_support`).

    Returns
    -------
    power : ndarray, shape (K delay bins, M Doppler bins), float64
        Doppler axis fftshifted (as :meth:`CommonGrid.nu_axis`); a noise-only
        cell of the zero-filled map has mean 1.
    noise_var : float
        The noise variance per RE used.
    """
    if completion not in ("zero", "cs"):
        raise InputError(f"completion = {completion!r}: allowed 'zero' (zero-filling) or 'cs' (compressed sensing)")
    sigma2 = noise_variance(h_grid, mask) if noise_var is None else float(noise_var)
    if not (np.isfinite(sigma2) and sigma2 > 0):
        raise InputError(f"noise variance {sigma2!r} per RE: allowed > 0; the band's measurements are all zero?")
    h = complete_cim(h_grid, mask, noise_var=sigma2, support=support) if completion == "cs" \
        else np.where(mask, h_grid, 0)
    x = np.fft.fftshift(to_delay_doppler(h), axes=0)
    cell_noise = sigma2 * np.count_nonzero(mask) / mask.size
    return (np.abs(x.T) ** 2) / cell_noise, sigma2


def completion_support(grid: CommonGrid, max_delay_s: float | None = None,
                       max_nu: float | None = None) -> NDArray[np.bool_] | None:
    """The delay-Doppler cells of the grid inside a prior (delay <= ``max_delay_s``, ``|nu| <= max_nu``), in the
    layout of :func:`sdr_isac.fusion.completion.to_delay_doppler` (M Doppler bins not shifted, K delay bins);
    None without a prior.

    The compressed-sensing completion needs it where a band's pilots alias: the high band's block pilot on
    every 4th symbol fits every Doppler ``nu + j / (4 fT)`` equally, so without a prior its completion spreads
    over the aliases and is zero-filling (its map was the zero-filled one, while the low band's completion
    multiplied its peak, and the fused map followed the low band's coarser range).  A largest speed below the
    alias spacing makes the completion well posed.
    """
    if max_delay_s is None and max_nu is None:
        return None
    m, k = grid.num_symbols, grid.num_subcarriers
    keep_nu = np.ones(m, dtype=bool) if max_nu is None else \
        np.abs(np.fft.fftfreq(m, 1.0 / m) * grid.nu_bin) <= max_nu
    keep_delay = np.ones(k, dtype=bool) if max_delay_s is None else grid.delay_axis_s() <= max_delay_s
    if not (keep_nu.any() and keep_delay.any()):
        raise InputError(f"max_delay_s = {max_delay_s!r} s, max_nu = {max_nu!r}: the prior keeps no cell of the "
                         "common grid; widen it (max_range_m, max_speed_mps)")
    return np.outer(keep_nu, keep_delay)


def periodic_block(mask: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.intp]] | None:
    """(rows, cols) of the REs when they fill every g-th row and every h-th column of the whole grid, else None.

    Such REs (a block pilot on every g-th symbol of all subcarriers, a comb on every h-th subcarrier of all
    symbols) sit on R = M / g rows and C = K / h columns, and the unitary periodogram of the (M, K) grid is
    that of the (R, C) block, repeated g times along Doppler and h times along delay and scaled by
    ``R C / (M K)`` (:func:`sdr_isac.fusion.completion.to_delay_doppler`): the block's transform gives the
    grid's map at a fraction of the cost.  Grids where :func:`sdr_isac.sensing.estimate.noise_variance`
    subsamples the map instead of taking every cell (:func:`~sdr_isac.sensing.estimate.median_step` > 1:
    200 000 cells or more) are left out (None): the block's median would not be the grid's.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2 or median_step(m.size) != 1:
        return None
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        return None
    g_m, g_k = resolvable_steps([m])
    if rows.size * g_m != m.shape[0] or cols.size * g_k != m.shape[1] or not m[np.ix_(rows, cols)].all():
        return None
    return rows, cols


def fused_map(maps: Sequence[NDArray[np.float64]]) -> NDArray[np.float64]:
    """Sum of noise-normalised band maps (the non-coherent fusion of the bands' spectra)."""
    if not maps:
        raise InputError("maps is empty: allowed one or more band maps")
    return np.sum(np.stack(maps), axis=0)


def grid_peak(power: NDArray[np.float64], grid: CommonGrid, masks: Sequence[NDArray[np.bool_]],
              max_delay_s: float | None = None, max_nu: float | None = None) -> tuple[int, int]:
    """(delay bin, shifted Doppler bin) of the strongest cell inside the region the masks resolve.

    The region is the delay interval ``[0, 1 / (g_k df))`` and normalised
    Doppler ``|nu| < 1 / (2 g_m fT)`` where ``g_k`` and ``g_m`` are the
    common steps of the pilots (:func:`sdr_isac.sensing.estimate.resolvable_steps`:
    a comb every 4th subcarrier resolves a quarter of the delays), narrowed
    by ``max_delay_s`` / ``max_nu`` when given.
    """
    g_m, g_k = resolvable_steps(masks)
    n_dopp = grid.num_symbols // g_m
    delay_limit = (grid.num_subcarriers // g_k) * grid.delay_bin_s
    if max_delay_s is not None:
        delay_limit = min(delay_limit, max_delay_s + 0.5 * grid.delay_bin_s)
    nu_limit = (n_dopp / 2.0 - 0.5) * grid.nu_bin
    if max_nu is not None:
        nu_limit = min(nu_limit, max_nu)
    return _grid_peak(power, grid.delay_axis_s(), grid.nu_axis(), delay_limit, nu_limit)


def pilot_block(band: Band, cim: NDArray[np.complexfloating]) -> tuple[NDArray[np.complex128],
                                                                        NDArray[np.float64], NDArray[np.float64]]:
    """The CIM on the symbols and subcarriers that carry pilots (zero on other REs of that block), with each
    column's frequency offset ``k df`` (Hz) and each row's ``f_c t_m`` (the phase rate of ``nu``).

    Matched filters ``d^T Y a`` over this block cost a fraction of the full grid's (and stay below the
    sizes at which BLAS starts threads, which on a loaded machine cost more than they save).
    """
    rows, cols = np.flatnonzero(band.pilots.any(axis=1)), np.flatnonzero(band.pilots.any(axis=0))
    block = np.where(band.pilots, cim, 0)[np.ix_(rows, cols)].astype(np.complex128)
    return (block, cols.astype(np.float64) * band.subcarrier_spacing_hz, band.symbol_times_s[rows] * band.carrier_hz)


def refine(bands: Sequence[Band], cims: Sequence[NDArray[np.complexfloating]], noise_vars: Sequence[float],
           start: tuple[float, float], step: tuple[float, float]) -> tuple[float, float]:
    """Maximum-likelihood ``(tau, nu)`` near ``start``: maximise the summed normalised periodograms.

    :func:`sdr_isac.sensing.estimate.refine` (Newton on the exact
    derivatives, jointly over the bands), one grid bin ``step`` at a time;
    a result more than 2 bins away left the grid peak's lobe and ``start``
    is returned.
    """
    return refine_joint(band_looks(bands, cims, noise_vars), start, step, max_cells=2.0)


def band_looks(bands: Sequence[Band], cims: Sequence[NDArray[np.complexfloating]],
               noise_vars: Sequence[float]) -> list[Look]:
    """Each band's pilots as a :class:`sdr_isac.sensing.estimate.Look` in ``(tau, nu)``: column k at ``k df_b``,
    row m at Doppler phase rate ``f_b t_m``."""
    return [look(h, band.pilots, np.arange(band.num_subcarriers) * band.subcarrier_spacing_hz,
                 band.symbol_times_s * band.carrier_hz, float(s2))
            for band, h, s2 in zip(bands, cims, noise_vars, strict=True)]


@dataclass(frozen=True)
class BandEstimate:
    """Range and velocity of the strongest target from one set of bands."""

    range_m: float
    velocity_mps: float
    delay_s: float
    nu: float


class BandWork:
    """What several estimates from the same measured CIMs share, each computed once.

    Each band's placement on the common grid, its zero-filled transform (which gives both its noise level
    and its zero-filled map), its completed map, its :class:`~sdr_isac.sensing.estimate.Look`, its noise
    level on its own grid, and each refinement from a given start.  Pass one to every :func:`estimate`
    and :func:`estimate_level_fusion` of one set of measurements (a Monte Carlo trial's): the results are
    those of the calls without it, to rounding (the noise levels come from the pilots' blocks where they
    tile the grid: the full grid's to about 1e-15).  It knows bands and CIMs by identity (and keeps them alive while it
    lives): do not change a CIM while it is in use.
    """

    def __init__(self) -> None:
        self._done: dict[tuple[object, ...], object] = {}
        self._held: dict[int, object] = {}         # the keyed objects, so that their ids stay theirs

    def _key(self, *objects: object) -> tuple[int, ...]:
        for o in objects:
            self._held[id(o)] = o
        return tuple(id(o) for o in objects)

    def placed(self, band: Band, cim: NDArray[np.complexfloating], grid: CommonGrid
               ) -> tuple[NDArray[np.complex128], NDArray[np.bool_], float, NDArray[np.float64]]:
        """:func:`reorganise` of the band, its noise variance per RE (:func:`noise_variance`) and its zero-filled
        :func:`band_map`: ``(h_grid, mask, noise_var, power)``, from one transform."""
        key = ("placed", grid, *self._key(band, cim))
        found = self._done.get(key)
        if found is None:
            h_grid, mask = reorganise(band, cim, grid)
            n_obs = int(np.count_nonzero(mask))
            block = periodic_block(mask)
            sigma2, cells = pilot_noise(h_grid, mask, block)
            if block is not None:       # the grid's map: the block's, repeated and scaled (see periodic_block)
                rows, cols = block
                cells = np.tile(cells, (mask.shape[0] // rows.size, mask.shape[1] // cols.size)) * (
                    cells.size / mask.size)
            _check_noise(sigma2)
            power = np.fft.fftshift(cells, axes=0).T / (sigma2 * n_obs / mask.size)
            found = self._done[key] = (h_grid, mask, sigma2, power)
        return found  # type: ignore[return-value]

    def completed_map(self, band: Band, cim: NDArray[np.complexfloating], grid: CommonGrid,
                      support: NDArray[np.bool_] | None = None) -> NDArray[np.float64]:
        """:func:`band_map` with compressed-sensing completion (on ``support``), at the noise level of
        :meth:`placed`."""
        key = ("cs", grid, *self._key(band, cim), None if support is None else np.packbits(support).tobytes())
        found = self._done.get(key)
        if found is None:
            h_grid, mask, sigma2, _ = self.placed(band, cim, grid)
            found = self._done[key] = band_map(h_grid, mask, "cs", sigma2, support)[0]
        return found  # type: ignore[return-value]

    def refined(self, bands: Sequence[Band], cims: Sequence[NDArray[np.complexfloating]], noise_vars: Sequence[float],
                start: tuple[float, float], step: tuple[float, float]) -> tuple[float, float]:
        """:func:`refine`, once per (bands, CIMs, noise levels, start, step)."""
        key = ("refined", *self._key(*bands, *cims), *(float(v) for v in noise_vars), *start, *step)
        found = self._done.get(key)
        if found is None:
            looks = [self._look(b, h, float(v)) for b, h, v in zip(bands, cims, noise_vars, strict=True)]
            found = self._done[key] = refine_joint(looks, start, step, max_cells=2.0)
        return found  # type: ignore[return-value]

    def _look(self, band: Band, cim: NDArray[np.complexfloating], noise_var: float) -> Look:
        key = ("look", *self._key(band, cim), noise_var)
        found = self._done.get(key)
        if found is None:
            found = self._done[key] = band_looks([band], [cim], [noise_var])[0]
        return found  # type: ignore[return-value]

    def own_noise(self, band: Band, cim: NDArray[np.complexfloating]) -> float:
        """:func:`noise_variance` of the band's CIM on its own grid (as :func:`estimate_level_fusion` takes it)."""
        key = ("own", *self._key(band, cim))
        found = self._done.get(key)
        if found is None:
            found = self._done[key] = pilot_noise(np.where(band.pilots, cim, 0), band.pilots,
                                                   periodic_block(band.pilots))[0]
        return found  # type: ignore[return-value]


def _check_noise(sigma2: float) -> None:
    if not (np.isfinite(sigma2) and sigma2 > 0):
        raise InputError(f"noise variance {sigma2!r} per RE: allowed > 0; the band's measurements are all zero?")


def estimate(bands: Sequence[Band], cims: Sequence[NDArray[np.complexfloating]], *, completion: str = "cs",
             refined: bool = True, grid: CommonGrid | None = None, max_range_m: float | None = None,
             max_speed_mps: float | None = None, speed_of_light_mps: float = SPEED_OF_LIGHT_MPS,
             work: BandWork | None = None) -> dict[str, BandEstimate]:
    """Fused estimate of the strongest target from the bands' measured CIMs.

    Parameters
    ----------
    bands, cims : sequences of equal length
        Each band and its measured CIM (band shape; entries off its pilots ignored).
    completion : {"cs", "zero"}
        How each band's empty REs on the common grid are filled (only used
        with two or more bands; a single band is zero-filled, its own
        periodogram).
    refined : bool
        Also return the off-grid maximum-likelihood estimate.
    grid : CommonGrid, optional
        Default :func:`common_grid` of ``bands`` (reference: the first band).
    max_range_m, max_speed_mps : float, optional
        Search limits (a prior); default the region the pilots resolve.  The compressed-sensing completion
        recovers targets inside them only (:func:`completion_support`): a block pilot on every g-th symbol
        is completed only with a largest speed below its alias spacing.
    speed_of_light_mps : float
        c used to convert delay and normalised Doppler (``R = c tau / 2``, ``v = -c nu / 2``).
    work : BandWork, optional
        Work shared with other estimates from the same CIMs (the same results to rounding, computed once).

    Returns
    -------
    dict
        ``"grid"`` (peak of the fused map) and, if ``refined``, ``"refined"``.
    """
    if len(bands) != len(cims) or not bands:
        raise InputError(f"{len(bands)} bands and {len(cims)} CIMs: allowed one CIM per band, at least one")
    g = common_grid(bands) if grid is None else grid
    comp = "zero" if len(bands) == 1 else completion
    if comp not in ("zero", "cs"):
        raise InputError(f"completion = {comp!r}: allowed 'zero' (zero-filling) or 'cs' (compressed sensing)")
    shared = BandWork() if work is None else work
    c = float(speed_of_light_mps)
    max_delay = None if max_range_m is None else 2.0 * max_range_m / c
    max_nu = None if max_speed_mps is None else 2.0 * max_speed_mps / c
    support = completion_support(g, max_delay, max_nu) if comp == "cs" else None
    maps, masks, sigmas = [], [], []
    for band, h in zip(bands, cims, strict=True):
        _, mask, s2, power = shared.placed(band, h, g)
        maps.append(power if comp == "zero" else shared.completed_map(band, h, g, support))
        masks.append(mask)
        sigmas.append(s2)
    r, d = grid_peak(fused_map(maps), g, masks, max_delay, max_nu)
    tau0, nu0 = r * g.delay_bin_s, float(g.nu_axis()[d])
    out = {"grid": BandEstimate(c * tau0 / 2.0, -c * nu0 / 2.0, tau0, nu0)}
    if refined:
        tau, nu = shared.refined(bands, cims, sigmas, (tau0, nu0), (g.delay_bin_s, g.nu_bin))
        out["refined"] = BandEstimate(c * tau / 2.0, -c * nu / 2.0, tau, nu)
    return out


def estimate_level_fusion(bands: Sequence[Band], cims: Sequence[NDArray[np.complexfloating]],
                          per_band: Sequence[BandEstimate],
                          speed_of_light_mps: float = SPEED_OF_LIGHT_MPS, work: BandWork | None = None) -> BandEstimate:
    """Estimate-level fusion: each band's own estimate weighted by the inverse of its CRB at its measured SNR.

    For band b at its estimate ``(tau_b, nu_b)`` the complex amplitude is
    fitted by least squares on the pilots, the per-RE SNR is
    ``|a_b|**2 / sigma_b**2`` (noise from :func:`noise_variance`), and
    ``J_b`` is the Fisher information of its pilots at that SNR
    (:meth:`Band.fim`); the fused estimate is ``(sum J_b)^-1 sum J_b x_b``
    with ``x_b = (tau_b, nu_b)`` — the baseline that symbol-level fusion
    (:func:`estimate`) is compared with.  ``work``: as for :func:`estimate`.
    """
    if not (len(bands) == len(cims) == len(per_band)) or not bands:
        raise InputError(f"{len(bands)} bands, {len(cims)} CIMs, {len(per_band)} estimates: allowed one of each "
                         "per band, at least one")
    info = np.zeros((2, 2))
    weighted = np.zeros(2)
    for band, h, est in zip(bands, cims, per_band, strict=True):
        y, k, t = pilot_block(band, h)
        mask = band.pilots[np.ix_(np.flatnonzero(band.pilots.any(axis=1)), np.flatnonzero(band.pilots.any(axis=0)))]
        model = np.outer(np.exp(2j * np.pi * t * est.nu), np.exp(-2j * np.pi * k * est.delay_s)) * mask
        amp = np.vdot(model, y) / np.vdot(model, model).real
        sigma2 = noise_variance(np.where(band.pilots, h, 0), band.pilots) if work is None else work.own_noise(band, h)
        snr = max(float(abs(amp) ** 2 / sigma2), 1e-12)
        j = band.fim(snr)
        info += j
        weighted += j @ np.array([est.delay_s, est.nu])
    tau, nu = np.linalg.solve(info, weighted)
    c = float(speed_of_light_mps)
    return BandEstimate(c * tau / 2.0, -c * nu / 2.0, float(tau), float(nu))


def article_bands(num_subcarriers: int = 512, num_symbols: int = 64, pilot_step: int = 4) -> tuple[Band, Band]:
    """The article's two bands (REFERENCE.md §4, after Wei, Liu et al. 2024).

    High band: 24 GHz, 120 kHz, CP 1.33 µs, block pilot on every
    ``pilot_step``-th symbol.  Low band: 5.9 GHz, 30 kHz, CP 5.975 µs, comb
    pilot on every ``pilot_step``-th subcarrier.  ``f T`` is 231 919 and
    231 920: the per-symbol Doppler phases agree to 4 ppm.
    """
    high = Band("high", 24e9, 120e3, 1.33e-6, pilot_mask(num_symbols, num_subcarriers, symbol_step=pilot_step))
    low = Band("low", 5.9e9, 30e3, 5.975e-6, pilot_mask(num_symbols, num_subcarriers, subcarrier_step=pilot_step))
    return high, low
