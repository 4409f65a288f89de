"""Channel information matrices (CIM) of point scatterers, synthesised on a resource grid.

The CIM is what the sensing receiver measures after CP removal, FFT and
division by the known symbols, ``H = Y / X``, on each resource element (RE):
symbol ``m`` (row) and subcarrier ``k`` (column).  For point scatterers
inside the cyclic prefix and without intra-symbol Doppler (the usual OFDM
radar model, e.g. Sturm & Wiesbeck, Proc. IEEE 99(7), 2011, eq. 10)::

    H[m, k] = sum_p a_p exp(-j 2 pi k df tau_p) exp(+j 2 pi f_D,p t_m) + w[m, k],

with ``tau_p`` the round-trip delay, ``f_D,p`` the Doppler shift
(``f_D = -2 v f_c / c`` monostatic: positive radial velocity, moving away,
gives negative Doppler), ``t_m = m T_O`` the symbol start time and ``w``
circular complex Gaussian noise.  Multi-channel receivers add a steering
phase per channel.  Synthesising at this level skips the waveform and is
what Monte Carlo experiments over thousands of trials use; the echo
synthesiser (:mod:`sdr_isac.channel.echo`) produces the same matrix from IQ
samples (``tests/channel/test_cim.py`` checks the two agree).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError
from sdr_isac.units import SPEED_OF_LIGHT_MPS

__all__ = ["point_target_cim", "add_cim_noise", "PilotGrid", "measure_pilots", "random_amplitude",
           "bistatic_link_cim"]


class PilotGrid(Protocol):
    """What the synthesis needs of a band: its grid, its pilot REs and its carrier
    (:class:`sdr_isac.fusion.multiband.Band` is one)."""

    @property
    def carrier_hz(self) -> float:
        """f_c, Hz."""
        ...

    @property
    def subcarrier_spacing_hz(self) -> float:
        """df, Hz."""
        ...

    @property
    def num_subcarriers(self) -> int:
        """K, the columns of the grid."""
        ...

    @property
    def symbol_times_s(self) -> NDArray[np.float64]:
        """Start time of each symbol (row), s, shape (M,)."""
        ...

    @property
    def pilots(self) -> NDArray[np.bool_]:
        """REs that carry known symbols, shape (M, K), bool."""
        ...


def _finite_1d(name: str, values: ArrayLike, unit: str) -> NDArray[np.float64]:
    v = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if v.ndim != 1 or not np.all(np.isfinite(v)):
        raise InputError(f"{name} = {values!r}: allowed a finite number or 1-D array of {unit}")
    return v


def point_target_cim(subcarriers: ArrayLike, symbol_times_s: ArrayLike, subcarrier_spacing_hz: float,
                     delays_s: ArrayLike, dopplers_hz: ArrayLike, amplitudes: ArrayLike = 1.0,
                     channel_phases: ArrayLike | None = None) -> NDArray[np.complex128]:
    """Noise-free CIM of point scatterers.

    Parameters
    ----------
    subcarriers : array_like, shape (K,), int or float
        Subcarrier index of each column (its offset from the band's first
        subcarrier, in units of ``subcarrier_spacing_hz``).
    symbol_times_s : array_like, shape (M,)
        Start time ``t_m`` of each row's symbol, s.
    subcarrier_spacing_hz : float
        df, Hz (> 0).
    delays_s, dopplers_hz : array_like, shape (P,)
        Round-trip delay (s) and Doppler shift (Hz) of each scatterer.
    amplitudes : array_like, shape (P,), complex, optional
        Complex amplitude of each scatterer on the CIM (1: unit power per RE).
    channel_phases : array_like, shape (C, P), complex, optional
        Steering phase of each scatterer on each receive channel; with it the
        result has a leading channel axis.

    Returns
    -------
    ndarray, shape (M, K) or (C, M, K), complex128

    Examples
    --------
    >>> h = point_target_cim(range(4), [0.0, 1e-5], 1e5, [1e-6], [0.0])
    >>> bool(np.allclose(h[0], np.exp(-2j * np.pi * np.arange(4) * 0.1)))
    True
    """
    k = _finite_1d("subcarriers", subcarriers, "subcarrier indices")
    t = _finite_1d("symbol_times_s", symbol_times_s, "s")
    if not (np.isfinite(subcarrier_spacing_hz) and subcarrier_spacing_hz > 0):
        raise InputError(f"subcarrier_spacing_hz = {subcarrier_spacing_hz!r} Hz: allowed a finite number > 0")
    tau = _finite_1d("delays_s", delays_s, "s")
    fd = _finite_1d("dopplers_hz", dopplers_hz, "Hz")
    a = np.broadcast_to(np.asarray(amplitudes, dtype=np.complex128), tau.shape) if np.ndim(amplitudes) == 0 \
        else np.asarray(amplitudes, dtype=np.complex128)
    if fd.shape != tau.shape or a.shape != tau.shape:
        raise InputError(f"delays_s has {tau.size} entries, dopplers_hz {fd.size}, amplitudes {a.size}: allowed "
                         "one of each per scatterer; pass arrays of equal length")
    rng_ph = np.exp(-2j * np.pi * subcarrier_spacing_hz * np.outer(tau, k))       # (P, K)
    dop_ph = np.exp(2j * np.pi * np.outer(t, fd))                                  # (M, P)
    if channel_phases is None:
        return (dop_ph * a[None, :]) @ rng_ph
    ch = np.asarray(channel_phases, dtype=np.complex128)
    if ch.ndim != 2 or ch.shape[1] != tau.size:
        raise InputError(f"channel_phases has shape {ch.shape}: allowed (C, {tau.size}), one phase per channel and "
                         "scatterer")
    return np.einsum("mp,cp,pk->cmk", dop_ph * a[None, :], ch, rng_ph)


def add_cim_noise(h: ArrayLike, noise_var: float, rng: np.random.Generator,
                  mask: ArrayLike | None = None) -> NDArray[np.complex128]:
    """``h`` plus circular complex Gaussian noise of variance ``noise_var`` per RE; zero outside ``mask``.

    Parameters
    ----------
    h : array_like, complex, shape (..., M, K)
    noise_var : float
        E|w|**2 per RE (>= 0); the per-RE SNR is ``|a|**2 / noise_var``.
    rng : numpy.random.Generator
    mask : array_like, shape (M, K), bool, optional
        REs that carry a known symbol; the others are set to zero (not measured).
    """
    x = np.asarray(h, dtype=np.complex128)
    if not (np.isfinite(noise_var) and noise_var >= 0):
        raise InputError(f"noise_var = {noise_var!r}: allowed a finite variance >= 0 per RE")
    scale = np.sqrt(noise_var / 2.0)
    noisy = x + scale * (rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape))
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != x.shape[-2:]:
            raise InputError(f"mask has shape {m.shape}: allowed {x.shape[-2:]}, the (symbols, subcarriers) of h")
        noisy = noisy * m
    return noisy


def measure_pilots(grid: PilotGrid, paths: Sequence[tuple[float, float, complex]], rng: np.random.Generator,
                   noise_var: float = 1.0, channel_phases: ArrayLike | None = None) -> NDArray[np.complex128]:
    """What a band measures of point paths: their CIM plus noise, zero off its pilots.

    Parameters
    ----------
    grid : PilotGrid
        The band (e.g. :class:`sdr_isac.fusion.multiband.Band`).
    paths : sequence of (float, float, complex)
        ``(delay s, Doppler Hz, complex amplitude)`` of each path; with ``noise_var = 1`` an amplitude
        ``sqrt(gamma)`` has per-RE SNR gamma (linear).
    rng : numpy.random.Generator
        Draws the noise.
    noise_var : float
        E|w|**2 per RE, >= 0.
    channel_phases : array_like, shape (C, P), complex, optional
        Steering phase of each path on each channel: adds a leading channel axis
        (:func:`point_target_cim`).

    Returns
    -------
    ndarray, shape (M, K) or (C, M, K), complex128
    """
    taus, fds, amps = zip(*paths, strict=True)
    h = point_target_cim(np.arange(grid.num_subcarriers), grid.symbol_times_s, grid.subcarrier_spacing_hz,
                         list(taus), list(fds), list(amps), channel_phases)
    return add_cim_noise(h, noise_var, rng, grid.pilots)


def random_amplitude(snr: float, rng: np.random.Generator) -> complex:
    """``sqrt(snr) exp(j phi)`` with phi uniform on [0, 2 pi): a path of per-RE SNR ``snr`` (linear) at unit noise."""
    return complex(math.sqrt(snr) * np.exp(2j * np.pi * rng.random()))


def bistatic_link_cim(grid: PilotGrid, baseline_m: float, range_sum_m: float, rate_mps: float, snr: float,
                      rng: np.random.Generator, *, direct_over_echo_db: float, clock_s: float = 0.0,
                      cfo_hz: float = 0.0, speed_mps: float = SPEED_OF_LIGHT_MPS) -> NDArray[np.complex128]:
    """The CIM a receiver measures of a transmitter's pilots over a bistatic link: direct path plus target echo.

    Direct path: delay ``baseline / c + clock``, Doppler ``cfo``, per-RE SNR ``snr`` raised by
    ``direct_over_echo_db``.  Echo: delay ``range_sum / c + clock``, Doppler ``-rate f_c / c + cfo`` (a
    positive bistatic rate, the range sum growing, gives a negative Doppler), per-RE SNR ``snr``.  The
    receiver's clock offset and CFO against the transmitter shift both paths alike.  Amplitudes take random
    phases (direct first, then echo, then the noise: the draws of ``rng`` in that order).

    Parameters
    ----------
    grid : PilotGrid
        The transmitter's band and pilots.
    baseline_m : float
        Transmitter-receiver distance, m.
    range_sum_m : float
        Transmitter-target-receiver path length, m.
    rate_mps : float
        Its rate of change, m/s (the sum of the target's radial velocities seen from both ends).
    snr : float
        Per-RE SNR of the echo, linear, at unit noise variance.
    rng : numpy.random.Generator
        Draws the phases and the noise.
    direct_over_echo_db : float
        Power of the direct path over the echo, dB.
    clock_s, cfo_hz : float
        Receiver clock offset (s) and carrier frequency offset (Hz) against the transmitter.
    speed_mps : float
        Propagation speed c, m/s.

    Returns
    -------
    ndarray, shape (M, K), complex128
        Zero off the pilots.
    """
    paths = [(baseline_m / speed_mps + clock_s, cfo_hz, random_amplitude(snr * 10 ** (direct_over_echo_db / 10), rng)),
             (range_sum_m / speed_mps + clock_s, -rate_mps * grid.carrier_hz / speed_mps + cfo_hz,
              random_amplitude(snr, rng))]
    return measure_pilots(grid, paths, rng)
