"""Range-Doppler map: 2-D periodogram of the channel information matrix.

For a target at delay tau and Doppler f_D, H(k, l) = a exp(-j 2 pi k df tau)
exp(j 2 pi f_D t_l).  The map is |sum_kl w_k v_l H(k, l) exp(j 2 pi (k df
tau_r - f_d t_l))|**2 on a grid: an inverse FFT over subcarriers (range) and
an FFT over symbols (Doppler), zero-padded by the oversampling factors.  Axes
come with the map:

- range: monostatic ``c tau / 2``, bistatic range sum ``c tau``;
  unambiguous up to c / (2 df) (monostatic);
- Doppler: f_d = (d - D/2) / (D T_O) with T_O the mean symbol length;
  radial velocity ``v = -f_D c / (2 f_c)`` (monostatic; positive = moving
  away, negative Doppler — DESIGN.md's convention), bistatic velocity (rate of
  the range sum) ``-f_D c / f_c``.

The symbol grid is taken as uniform with the mean symbol length; the longer
CP of two symbols per subframe shifts their times by at most 16 * 2**mu *
N_FFT / 2048 samples, which this approximation ignores.
"""

from __future__ import annotations

import collections
import functools
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.fft as sp_fft
import scipy.signal as sp_signal
from numpy.typing import NDArray

from sdr_isac.config import SensingConfig
from sdr_isac.errors import SensingError
from sdr_isac.sensing.backend import fft_workers
from sdr_isac.units import SPEED_OF_LIGHT_MPS
from sdr_isac.waveform.sync import parabolic_vertex_slopes

__all__ = ["RangeDopplerMap", "main_lobe_bins", "map_weights", "notched_noise_gain", "power_of", "range_doppler_map",
           "taper_response", "window"]


def window(name: str, length: int, sidelobe_db: float = 60.0) -> NDArray[np.float64]:
    """A taper of ``length`` points: ``none``, ``hann``, ``hamming``, ``blackman`` or ``chebyshev``.

    The symmetric window of ``length + 2`` points without its end points, so that no symbol or
    subcarrier gets weight zero (a 2-symbol frame keeps both symbols).
    """
    return _window(name, int(length), float(sidelobe_db)).copy()


def taper_response(name: str, length: int, sidelobe_db: float, transform_length: int) -> NDArray[np.float64]:
    """The power response of the ``length``-point taper on a ``transform_length``-point transform (the zero
    padding included), per bin from the peak (bin 0, normalised to 1; the transform's circular order)."""
    w = _window(name, int(length), float(sidelobe_db))
    power = np.abs(sp_fft.fft(w, n=max(int(transform_length), w.size))) ** 2
    return power / power[0]


@functools.lru_cache(maxsize=32)
def main_lobe_bins(name: str, length: int, sidelobe_db: float, transform_length: int) -> int:
    """Bins from the peak to the first null of the taper's response on a ``transform_length``-point transform of
    ``length`` points (the zero padding included): 2 x the oversampling for Hann, 1 x for no taper.  The
    last bin before it is the main lobe's edge."""
    response = taper_response(name, length, sidelobe_db, transform_length)[: max(int(transform_length), 2) // 2 + 1]
    rising = np.flatnonzero(np.diff(response) > 0)
    return int(rising[0]) if rising.size else int(response.size - 1)


@functools.lru_cache(maxsize=32)
def _window(name: str, length: int, sidelobe_db: float) -> NDArray[np.float64]:
    """:func:`window`, computed once per (name, length, sidelobe level); read-only."""
    if name == "none" or length <= 2:
        w = np.ones(length)
    else:
        spec: str | tuple[str, float] = ("chebwin", sidelobe_db) if name == "chebyshev" else name
        w = np.asarray(sp_signal.get_window(spec, length + 2, fftbins=False), dtype=float)[1:-1]
        w = w / w.max()
    w.flags.writeable = False
    return w


@dataclass(frozen=True, eq=False)
class RangeDopplerMap:
    """A range-Doppler map with its axes.

    Attributes
    ----------
    power : ndarray, shape (R, D), float32
        Power summed over channels (non-coherent).
    cells : ndarray, shape (C, R, D), complex64
        Complex map per channel (for angle estimation).
    range_m : ndarray, shape (R,)
        Range (monostatic) or range sum (bistatic) of each row, m.
    velocity_mps : ndarray, shape (D,)
        Radial (monostatic) or bistatic velocity of each column, m/s.
    doppler_hz : ndarray, shape (D,)
        Doppler of each column, Hz.
    geometry : str
        ``monostatic`` or ``bistatic``.
    noise_gain : float
        Sum of squared window weights over the used REs: the mean noise power
        of a cell is ``noise_gain`` times the noise variance of H.
    coherent_gain : float
        Sum of window weights over the used REs: a target of amplitude a in
        H peaks at |a|**2 coherent_gain**2.
    delay_step_s : float
        Delay between adjacent range bins, s (1 / (zero-padded length x df)).
    complete_range : bool
        False when only the first range bins were kept (then the range axis
        does not wrap around).
    grid_error : tuple of float or None
        ``(kappa_delay, bias_var_delay_s2, kappa_doppler, bias_var_doppler_hz2)``, given: an unrefined
        estimate (the grid peak with 3-point parabolic interpolation of the power) has variance
        ``kappa x CRB + bias_var`` on each axis (:func:`grid_error`).  None (what
        :func:`range_doppler_map` leaves): computed from the map's design where it is first asked for,
        by :meth:`unrefined_error`, whatever ``sensing.refine`` says.
    noise_gain_columns : ndarray, shape (D,), or None
        With ``sensing.remove_static``: each Doppler column's noise gain (:func:`notched_noise_gain`; a third of
        ``noise_gain`` at zero Doppler with a Hann taper); None where it is ``noise_gain`` everywhere.
    """

    power: NDArray[np.float32]
    cells: NDArray[np.complex64]
    range_m: NDArray[np.float64]
    velocity_mps: NDArray[np.float64]
    doppler_hz: NDArray[np.float64]
    geometry: str
    noise_gain: float
    coherent_gain: float
    delay_step_s: float = 0.0
    complete_range: bool = True
    grid_error: tuple[float, float, float, float] | None = None
    #: the arguments of :func:`grid_error` for this map: (mask, config, n_range, n_doppler, symbol duration s,
    #: subcarrier spacing Hz)
    design: tuple[Any, ...] | None = field(default=None, repr=False)
    #: with ``sensing.remove_static``: the noise gain of each Doppler column (the notch takes each subcarrier's
    #: mean over the symbols out, and with it the noise near zero Doppler); None: ``noise_gain`` everywhere
    noise_gain_columns: NDArray[np.float64] | None = field(default=None, repr=False)

    def unrefined_error(self) -> tuple[float, float, float, float]:
        """``(kappa_delay, bias_var_delay_s2, kappa_doppler, bias_var_doppler_hz2)`` of an unrefined estimate on
        this map: ``grid_error`` where given, else :func:`grid_error` of the map's design (computed once per
        design: the default ``refine = true`` pipeline never asks), else ``(1, 0, 1, 0)`` (a map built by hand
        without its design: the Cramér-Rao bound alone)."""
        if self.grid_error is not None:
            return self.grid_error
        if self.design is None:
            return _NEUTRAL
        return grid_error(*self.design)


def range_doppler_map(h: NDArray[np.complex64], mask: NDArray[np.bool_], subcarrier_spacing_hz: float,
                      symbol_duration_s: float, carrier_hz: float, config: SensingConfig,
                      max_rows: int | None = None) -> RangeDopplerMap:
    """The windowed, zero-padded periodogram of H (shape (C, S, K)) on its mask (shape (S, K)).

    ``max_rows`` keeps only the first range bins.
    """
    c, s, k = h.shape
    n_range, n_doppler = config.map_shape(k, s)
    weights, coherent_gain, noise_gain = _weights(mask, config, n_doppler)
    workers = fft_workers(config.fft_workers, c * n_range * n_doppler)  # sensing.fft_workers (0: every core)
    # the transforms run in place in the returned array, laid out (C, R, D): the Doppler transform
    # first, along the contiguous last axis of the first K rows, then the range transform down the
    # columns, which fills the zero-padded rows; no intermediate array, no transposing copy
    cells = np.empty((c, n_range, n_doppler), dtype=np.complex64)
    slow = cells[:, :k, :]                                              # (C, K, D) view
    np.multiply(h.transpose(0, 2, 1), weights, out=slow[:, :, :s])
    slow[:, :, s:] = 0
    # Doppler: forward transform over symbols of e^{+j 2 pi f_D t_l} peaks at bin f_D D T_O
    _in_place(sp_fft.fft(slow, axis=2, workers=workers, overwrite_x=True), slow)
    cells[:, k:, :] = 0
    # range: inverse transform over subcarriers (delay e^{-j 2 pi k df tau} -> bin tau K df), unnormalised
    _in_place(sp_fft.ifft(cells, axis=1, workers=workers, norm="forward", overwrite_x=True), cells)
    if max_rows is not None and max_rows < n_range:
        cells = np.ascontiguousarray(cells[:, :max_rows])
    rows = cells.shape[1]
    tau = np.arange(rows) / (n_range * subcarrier_spacing_hz)
    scale = 0.5 if config.geometry == "monostatic" else 1.0
    doppler = (np.arange(n_doppler) - n_doppler // 2) / (n_doppler * symbol_duration_s)
    wavelength = SPEED_OF_LIGHT_MPS / carrier_hz
    velocity = -doppler * wavelength * scale
    return RangeDopplerMap(power_of(cells), cells, SPEED_OF_LIGHT_MPS * tau * scale, velocity, doppler,
                           config.geometry, noise_gain, coherent_gain, 1.0 / (n_range * subcarrier_spacing_hz),
                           rows == n_range, None,
                           (mask, config, n_range, n_doppler, symbol_duration_s, subcarrier_spacing_hz),
                           notched_noise_gain(weights, mask, noise_gain, n_doppler) if config.remove_static else None)


#: notched column gains per cached weights array (held, so that its id stays unique), most recent last
_NOTCHED: collections.OrderedDict[tuple[int, int], tuple[NDArray[np.generic], NDArray[np.float64]]] = \
    collections.OrderedDict()


def notched_noise_gain(weights: NDArray[np.generic], mask: NDArray[np.bool_], noise_gain: float,
                       n_doppler: int) -> NDArray[np.float64]:
    """The noise gain of each Doppler column of a map of H with each subcarrier's mean over its symbols removed.

    White noise n of variance sigma**2 on subcarrier k becomes n - mean(n) (over its S_k symbols); its tapered
    Doppler transform at column d has variance ``sigma**2 (sum_l w_kl**2 - |W_k(d)|**2 / S_k)``, W_k the same
    transform of the taper w_k (the cross term takes twice what the mean's own variance adds).  Subcarriers are
    independent and the range transform has unit-modulus phasors, so a cell's gain is the sum over k:
    ``noise_gain - sum_k |W_k(d)|**2 / S_k``.  Near zero Doppler it is a third of ``noise_gain`` with a Hann
    taper; a few bins away, ``noise_gain``.

    ``weights``: the map's taper on the mask, (K, S), with the Doppler fftshift folded in (:func:`map_weights`).
    """
    key = (id(weights), n_doppler)
    with _WEIGHTS_LOCK:
        cached = _NOTCHED.get(key)
        if cached is not None and cached[0] is weights:
            return cached[1]
    counts = np.count_nonzero(mask, axis=0).astype(np.float64)                      # S_k
    spectrum = sp_fft.fft(np.asarray(weights), n=n_doppler, axis=1)                # (K, D)
    removed = (np.abs(spectrum) ** 2 / np.maximum(counts, 1.0)[:, None]).sum(axis=0)
    gains = np.maximum(noise_gain - removed, 0.0)
    gains.flags.writeable = False
    if not weights.flags.writeable:
        with _WEIGHTS_LOCK:
            _NOTCHED[key] = (weights, gains)
            while len(_NOTCHED) > 8:
                _NOTCHED.popitem(last=False)
    return gains


#: the grid error of a map without its design: the bound alone
_NEUTRAL = (1.0, 0.0, 1.0, 0.0)


def grid_error(mask: NDArray[np.bool_], config: SensingConfig, n_range: int, n_doppler: int,
               symbol_duration_s: float, subcarrier_spacing_hz: float) -> tuple[float, float, float, float]:
    """Error of the unrefined estimate on a map of ``mask`` (S, K): ``(kappa_delay, bias_var_delay_s2,
    kappa_doppler, bias_var_doppler_hz2)``.

    The unrefined estimate is the grid peak moved by a 3-point parabola through the power.  On each
    axis, from the map's own 1-D response (taper x mask, summed over the other axis), over 64 sub-bin
    offsets of a noise-free echo: ``bias_var`` is the mean squared bias, ``kappa`` the mean variance of the
    parabola's vertex under noise (linearised: the power of cell m moves by 2 Re(s_m* n_m), the cells'
    noise correlated through the taper) over the unwindowed 1-D Cramér-Rao bound.  The estimate's
    variance is then ``kappa x CRB + bias_var`` (its mean over the offset within a bin).
    """
    s, k = mask.shape
    if not (symbol_duration_s > 0 and subcarrier_spacing_hz > 0
            and math.isfinite(symbol_duration_s * subcarrier_spacing_hz)):
        return (1.0, 0.0, 1.0, 0.0)                  # no physical axes (maps of the batch path's shape checks)
    return _grid_error(np.packbits(mask).tobytes(), s, k, config.window_range, config.window_doppler,
                       float(config.chebyshev_sidelobe_db), int(n_range), int(n_doppler), float(symbol_duration_s),
                       float(subcarrier_spacing_hz))


@functools.lru_cache(maxsize=16)
def _grid_error(packed: bytes, s: int, k: int, window_range: str, window_doppler: str, sidelobe_db: float,
                n_range: int, n_doppler: int, symbol_duration_s: float,
                subcarrier_spacing_hz: float) -> tuple[float, float, float, float]:
    """:func:`grid_error` of a packed mask, computed once per design."""
    m = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=s * k).reshape(s, k).astype(np.float64)
    w_l, w_k = _window(window_doppler, s, sidelobe_db), _window(window_range, k, sidelobe_db)
    kappa_d, bias_d = _parabola_error(w_l * (m @ w_k), w_l**2 * (m @ w_k**2), m.sum(axis=1),
                                      np.arange(s, dtype=np.float64) * symbol_duration_s,
                                      1.0 / (n_doppler * symbol_duration_s))
    kappa_r, bias_r = _parabola_error(w_k * (w_l @ m), w_k**2 * (w_l**2 @ m), m.sum(axis=0),
                                      np.arange(k, dtype=np.float64) * -subcarrier_spacing_hz,
                                      1.0 / (n_range * subcarrier_spacing_hz))
    return kappa_r, bias_r, kappa_d, bias_d


def _parabola_error(u: NDArray[np.float64], q: NDArray[np.float64], used: NDArray[np.float64],
                    x: NDArray[np.float64], step: float) -> tuple[float, float]:
    """``(kappa, bias_var)`` of the parabolic vertex on one axis (see :func:`grid_error`).

    ``u`` (N,): signal weight of each position (taper x REs used), ``q``: noise weight (squared taper x REs
    used), ``used``: REs used (the unwindowed Fisher information), ``x``: positions (the phase of position n
    at grid coordinate y is 2 pi y x_n), ``step``: the grid step in y.  Bias in units of y squared.
    """
    offsets = (np.arange(64) + 0.5) / 64 - 0.5
    cells = np.arange(-1, 2)[None, :] - offsets[:, None]                         # (64, 3): cell - echo, in steps
    phase = np.exp((2j * np.pi * step) * cells[..., None] * x)                   # (64, 3, N)
    sig = phase @ u                                                              # (64, 3): cells -1, 0, 1
    y = sig.real**2 + sig.imag**2
    # the vertex and d vertex / d y_m (0 where the parabola is refused: the vertex is then 0 whatever the noise)
    vertex, grad = parabolic_vertex_slopes(y[:, 0], y[:, 1], y[:, 2])
    bias_var = float(np.mean((vertex - offsets) ** 2)) * step**2
    cov = (phase * q) @ np.conj(phase).transpose(0, 2, 1)                        # (64, 3, 3) cell noise / sigma^2
    cov_y = 2 * np.real(np.conj(sig)[:, :, None] * sig[:, None, :] * cov)       # power noise, |a| = 1
    var = np.einsum("oi,oij,oj->o", grad, cov_y, grad) * step**2
    mean_x = float(used @ x) / max(float(used.sum()), 1.0)
    fim = 2 * (2 * np.pi) ** 2 * float(used @ (x - mean_x) ** 2)
    kappa = float(np.mean(var)) * fim if fim > 0 else 1.0
    return max(kappa, 1.0), bias_var


#: weights per (read-only mask, windows, Doppler length), most recent last; see _weights
_WEIGHTS: collections.OrderedDict[tuple[object, ...], tuple[NDArray[np.bool_], NDArray[np.generic], float, float]] = \
    collections.OrderedDict()
_WEIGHTS_LOCK = threading.Lock()


def _weights(mask: NDArray[np.bool_], config: SensingConfig,
             n_doppler: int) -> tuple[NDArray[np.generic], float, float]:
    """Taper x taper on the mask, shape (K, S) (the layout of the Doppler transform), and its gains.

    The fftshift of the Doppler axis is folded in: bin d of the output is bin d - D/2 of the plain
    transform, i.e. symbol l multiplied by exp(j 2 pi (D//2) l / D), +-1 for even D (float32 weights),
    a phase ramp for odd D (complex64).  Kept for the last few read-only masks that own their data (a
    frame's cached mask: the same on every capture), computed afresh for others.

    Returns
    -------
    weights : ndarray, shape (K, S), float32 or complex64
    coherent_gain, noise_gain : float
        Sum of the taper weights and of their squares over the mask.
    """
    key = (id(mask), mask.shape, config.window_range, config.window_doppler, config.chebyshev_sidelobe_db, n_doppler)
    with _WEIGHTS_LOCK:
        cached = _WEIGHTS.get(key)
        if cached is not None and cached[0] is mask:
            _WEIGHTS.move_to_end(key)
            return cached[1], cached[2], cached[3]
    s, k = mask.shape
    taper = np.multiply.outer(_window(config.window_range, k, config.chebyshev_sidelobe_db),
                              _window(config.window_doppler, s, config.chebyshev_sidelobe_db)) * mask.T
    coherent_gain, noise_gain = float(np.sum(taper)), float(np.sum(taper**2))
    if coherent_gain == 0.0:
        raise SensingError("no resource element left to build the range-Doppler map from: choose signals the "
                           "frame carries")
    weights: NDArray[np.generic]
    if n_doppler % 2 == 0:
        weights = (taper * np.where(np.arange(s) % 2, -1.0, 1.0)).astype(np.float32)
    else:
        weights = (taper * np.exp(2j * np.pi * (n_doppler // 2) * np.arange(s) / n_doppler)).astype(np.complex64)
    if not mask.flags.writeable and mask.base is None:                   # nothing can change it
        weights.flags.writeable = False
        with _WEIGHTS_LOCK:
            _WEIGHTS[key] = (mask, weights, coherent_gain, noise_gain)      # holds the mask: its id stays unique
            while len(_WEIGHTS) > 8:
                _WEIGHTS.popitem(last=False)
    return weights, coherent_gain, noise_gain


def map_weights(mask: NDArray[np.bool_], config: SensingConfig,
                n_doppler: int) -> tuple[NDArray[np.generic], float, float]:
    """The taper of :func:`range_doppler_map` on ``mask`` (S, K), laid out (K, S), with its coherent and noise gains.

    Float32 (complex64 for an odd Doppler length): the fftshift of the Doppler axis is folded in.  Cached
    and read-only for a frame's read-only mask; the batch path (:mod:`sdr_isac.sensing.batch`) uses it so
    that its maps are this module's.
    """
    return _weights(mask, config, n_doppler)


def power_of(cells: NDArray[np.complex64]) -> NDArray[np.float32]:
    """Power summed over channels, ``sum_c |cells[c]|**2``.

    Parameters
    ----------
    cells : ndarray, shape (C, R, D), complex64

    Returns
    -------
    ndarray, shape (R, D), float32
    """
    power: NDArray[np.float32] = cells[0].real ** 2
    power += cells[0].imag ** 2
    for channel in cells[1:]:
        power += channel.real ** 2
        power += channel.imag ** 2
    return power


def _in_place(result: NDArray[np.complex64], target: NDArray[np.complex64]) -> None:
    """Make sure a transform asked to overwrite its input did (copy otherwise)."""
    if not np.shares_memory(result, target):
        target[...] = result
