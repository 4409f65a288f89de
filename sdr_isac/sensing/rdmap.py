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

from dataclasses import dataclass

import numpy as np
import scipy.fft as sp_fft
import scipy.signal as sp_signal
from numpy.typing import NDArray

from sdr_isac.config import SensingConfig
from sdr_isac.errors import SensingError
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["RangeDopplerMap", "window", "range_doppler_map"]


def window(name: str, length: int, sidelobe_db: float = 60.0) -> NDArray[np.float64]:
    """A taper of ``length`` points: ``none``, ``hann``, ``hamming``, ``blackman`` or ``chebyshev``.

    The symmetric window of ``length + 2`` points without its end points, so that no symbol or
    subcarrier gets weight zero (a 2-symbol frame keeps both symbols).
    """
    if name == "none" or length <= 2:
        return np.ones(length)
    spec: str | tuple[str, float] = ("chebwin", sidelobe_db) if name == "chebyshev" else name
    w = np.asarray(sp_signal.get_window(spec, length + 2, fftbins=False), dtype=float)[1:-1]
    return w / w.max()


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


def range_doppler_map(h: NDArray[np.complex64], mask: NDArray[np.bool_], subcarrier_spacing_hz: float,
                      symbol_duration_s: float, carrier_hz: float, config: SensingConfig,
                      max_rows: int | None = None) -> RangeDopplerMap:
    """The windowed, zero-padded periodogram of H (shape (C, S, K)) on its mask (shape (S, K)).

    ``max_rows`` keeps only the first range bins (the Doppler transform is then done on those alone).
    """
    c, s, k = h.shape
    w_r = window(config.window_range, k, config.chebyshev_sidelobe_db)
    w_d = window(config.window_doppler, s, config.chebyshev_sidelobe_db)
    weights = (w_d[:, None] * w_r[None, :]) * mask
    if not np.any(weights):
        raise SensingError("no resource element left to build the range-Doppler map from: choose signals the "
                           "frame carries")
    n_range = sp_fft.next_fast_len(k * config.range_oversampling)
    n_doppler = sp_fft.next_fast_len(s * config.doppler_oversampling)
    hw = (h * weights[None].astype(np.float32)).astype(np.complex64)
    # range: inverse transform over subcarriers (delay e^{-j 2 pi k df tau} -> bin tau K df), unnormalised
    profile = sp_fft.ifft(hw, n=n_range, axis=2, workers=-1, norm="forward")
    if max_rows is not None and max_rows < n_range:
        profile = np.ascontiguousarray(profile[:, :, :max_rows])
    # Doppler: forward transform over symbols of e^{+j 2 pi f_D t_l} peaks at bin f_D D T_O
    cells = sp_fft.fft(profile, n=n_doppler, axis=1, workers=-1, overwrite_x=True)      # (C, D, R)
    cells = np.roll(cells, n_doppler // 2, axis=1)                      # fftshift of the Doppler axis
    # power on the contiguous (C, D, R) layout, then one transposing copy to (R, D)
    power = np.ascontiguousarray(np.sum(cells.real**2 + cells.imag**2, axis=0, dtype=np.float32).T)
    cells = cells.transpose(0, 2, 1)                                    # (C, R, D) view
    tau = np.arange(profile.shape[2]) / (n_range * subcarrier_spacing_hz)
    scale = 0.5 if config.geometry == "monostatic" else 1.0
    doppler = (np.arange(n_doppler) - n_doppler // 2) / (n_doppler * symbol_duration_s)
    wavelength = SPEED_OF_LIGHT_MPS / carrier_hz
    velocity = -doppler * wavelength * scale
    return RangeDopplerMap(power, cells.astype(np.complex64, copy=False), SPEED_OF_LIGHT_MPS * tau * scale,
                           velocity, doppler, config.geometry, float(np.sum(weights**2)), float(np.sum(weights)),
                           1.0 / (n_range * subcarrier_spacing_hz), profile.shape[2] == n_range)
