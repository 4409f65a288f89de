"""Fusion of several reference signals of one frame (frequency-domain resources).

PRS, DMRS and TRS (and SRS) occupy different resource elements of the same
frame.  Each gives the channel information ``H = Y / X`` on its own REs
(:func:`sdr_isac.sensing.csi.known_symbols`); put together they measure the
same target on the union of their REs (article §III-A, "frequency
resources"; the same idea as the multi-band fusion of
:mod:`sdr_isac.fusion.multiband`, within one band).  The union is irregular
in time (symbols with no reference signal) and in frequency (combs), so its
zero-filled periodogram has high sidelobes; the empty REs are recovered by
compressed sensing before the periodogram:

- ``"cs"``: l1-regularised recovery of a sparse delay-Doppler map by FISTA
  (:func:`sdr_isac.fusion.completion.complete_cim`; Beck & Teboulle 2009);
- ``"omp"``: orthogonal matching pursuit on an oversampled Fourier
  dictionary (:func:`omp_complete`; Tropp & Gilbert, IEEE TIT 53(12), 2007),
  atoms picked by FFT, stopped at the noise level;
- ``"zero"``: zero-filling, the baseline.

The estimate takes its grid peak from the completed map and refines it on
the measured REs only (:func:`sdr_isac.fusion.resource.refine_delay_doppler`:
the completion fills no information in, it only removes sidelobes, so the
bound is the Fisher information of the union of REs with one amplitude,
:func:`union_fim`).  Regular combs alias whatever the completion (a comb
every g subcarriers cannot tell delays ``1 / (g df)`` apart); staggered and
irregular unions are where the completion lowers the peak sidelobe ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError
from sdr_isac.fusion.completion import complete_cim, noise_variance
from sdr_isac.fusion.resource import (
    DelayDopplerEstimate,
    delay_doppler_power,
    estimate_delay_doppler,
    peak_sidelobe_ratio_db,
)
from sdr_isac.sensing.crb import delay_doppler_fim
from sdr_isac.sensing.csi import known_symbols
from sdr_isac.waveform import IsacFrame

__all__ = ["COMPLETIONS", "RsFusion", "frame_symbol_times_s", "reference_cim", "omp_complete", "complete",
           "fuse_reference_signals", "union_fim"]

COMPLETIONS = ("cs", "omp", "zero")


def frame_symbol_times_s(frame: IsacFrame) -> NDArray[np.float64]:
    """Start time of every symbol of ``frame`` (its cyclic prefix), s, shape (num_symbols,)."""
    return np.asarray(frame.symbol_starts, dtype=np.float64) / frame.sample_rate_hz


def reference_cim(frame: IsacFrame, rx_grid: ArrayLike, signals: Sequence[str],
                  channel: int = 0) -> tuple[NDArray[np.complex128], NDArray[np.bool_]]:
    """``H = Y / X`` on the REs of ``signals`` (zero elsewhere) and their mask.

    Parameters
    ----------
    frame : IsacFrame
        The frame that was sent.
    rx_grid : array_like, shape (S, K) or (C, S, K), complex
        Received resource grid (after CP removal and FFT).
    signals : sequence of str
        Reference signals to use, e.g. ``("prs", "dmrs", "trs")``.
    channel : int
        Receive channel of a 3-D grid.

    Returns
    -------
    h : ndarray, shape (S, K), complex128
    mask : ndarray, shape (S, K), bool
    """
    if not signals:
        raise InputError("signals is empty: allowed one or more of 'prs', 'dmrs', 'trs', 'srs'")
    y = np.asarray(rx_grid)
    if y.ndim == 3:
        if not 0 <= channel < y.shape[0]:
            raise InputError(f"channel = {channel!r}: allowed 0 ... {y.shape[0] - 1}")
        y = y[channel]
    shape = (frame.num_symbols, frame.config.num_subcarriers)
    if y.shape != shape:
        raise InputError(f"rx_grid has shape {np.shape(rx_grid)}: allowed {shape} or (C, *{shape}), the frame's "
                         "(symbols, subcarriers)")
    for s in signals:
        if s.lower() not in ("prs", "dmrs", "trs", "srs"):
            raise InputError(f"signal {s!r}: allowed 'prs', 'dmrs', 'trs' or 'srs'")
    x, mask = known_symbols(frame, tuple(s.lower() for s in signals))
    if not mask.any():
        raise InputError(f"signals {tuple(signals)} have no RE in this frame: configure them in [frame.*]")
    h = np.zeros(shape, dtype=np.complex128)
    h[mask] = y[mask] / x[mask]
    return h, mask


def omp_complete(h: ArrayLike, mask: ArrayLike, symbol_times_s: ArrayLike, subcarrier_spacing_hz: float,
                 noise_var: float | None = None, max_atoms: int = 8, oversample: int = 2) -> NDArray[np.complex128]:
    """Fill the unmeasured REs with an orthogonal-matching-pursuit fit of a few delay-Doppler atoms.

    Atom ``(tau, f)``: ``exp(-j 2 pi k df tau) exp(+j 2 pi f t_m)`` on the
    measured REs.  Each step picks the cell of the oversampled periodogram of
    the residual (:func:`sdr_isac.fusion.resource.delay_doppler_power`, an
    FFT in place of the dictionary's correlations), re-fits all picked atoms
    by least squares and stops after ``max_atoms`` atoms or when the
    residual power per measured RE falls to ``noise_var`` (Tropp & Gilbert
    2007, Algorithm 3 with a noise-level stop).

    Parameters
    ----------
    h : array_like, shape (M, K), complex
    mask : array_like, shape (M, K), bool
        Measured REs.
    symbol_times_s : array_like, shape (M,)
    subcarrier_spacing_hz : float
    noise_var : float, optional
        Noise variance per RE; default estimated (:func:`sdr_isac.fusion.completion.noise_variance`).
    max_atoms : int
        >= 1.
    oversample : int
        Dictionary oversampling on each axis (>= 1).

    Returns
    -------
    ndarray, shape (M, K), complex128
        ``h`` on the measured REs, the fitted atoms elsewhere.
    """
    y = np.asarray(h, dtype=np.complex128)
    m = np.asarray(mask)
    if y.ndim != 2 or m.shape != y.shape or m.dtype != np.bool_ or not m.any():
        raise InputError(f"h has shape {y.shape} and mask {m.shape} ({m.dtype}): allowed one 2-D (symbols, "
                         "subcarriers) shape, mask bool with at least one True")
    if isinstance(max_atoms, bool) or int(max_atoms) != max_atoms or max_atoms < 1:
        raise InputError(f"max_atoms = {max_atoms!r}: allowed a whole number >= 1")
    t = np.asarray(symbol_times_s, dtype=np.float64)
    df = float(subcarrier_spacing_hz)
    sigma2 = noise_variance(np.where(m, y, 0), m) if noise_var is None else float(noise_var)
    if not (np.isfinite(sigma2) and sigma2 >= 0):
        raise InputError(f"noise_var = {noise_var!r}: allowed a finite variance >= 0 per RE")
    rows, cols = np.nonzero(m)
    obs = y[m]
    k = np.arange(y.shape[1]) * df
    atoms: list[NDArray[np.complex128]] = []
    full: list[NDArray[np.complex128]] = []
    resid = obs.copy()
    coef = np.zeros(0, dtype=np.complex128)
    for _ in range(int(max_atoms)):
        if float(np.mean(np.abs(resid) ** 2)) <= sigma2:
            break
        r = np.zeros_like(y)
        r[m] = resid
        est = estimate_delay_doppler(r, t, df, m, oversample=oversample, refine=False)
        a = np.outer(np.exp(2j * np.pi * t * est.doppler_hz), np.exp(-2j * np.pi * k * est.delay_s))
        full.append(a)
        atoms.append(a[rows, cols])
        basis = np.stack(atoms, axis=1)
        coef = np.asarray(np.linalg.lstsq(basis, obs, rcond=None)[0], dtype=np.complex128)
        resid = obs - basis @ coef
    if not full:
        return np.where(m, y, 0)
    model = np.tensordot(coef, np.stack(full), axes=1)
    return np.where(m, y, model)


def complete(h: ArrayLike, mask: ArrayLike, symbol_times_s: ArrayLike, subcarrier_spacing_hz: float,
             completion: str = "cs", noise_var: float | None = None) -> NDArray[np.complex128]:
    """The CIM with its empty REs zero-filled (``"zero"``) or recovered (``"cs"`` FISTA, ``"omp"``)."""
    if completion not in COMPLETIONS:
        raise InputError(f"completion = {completion!r}: allowed 'cs' (FISTA), 'omp' or 'zero' (zero-filling)")
    y = np.asarray(h, dtype=np.complex128)
    m = np.asarray(mask, dtype=bool)
    if completion == "zero":
        return np.where(m, y, 0)
    if completion == "omp":
        return omp_complete(y, m, symbol_times_s, subcarrier_spacing_hz, noise_var)
    return complete_cim(y, m, noise_var=noise_var)


@dataclass(frozen=True, eq=False)
class RsFusion:
    """The fused reference signals of one frame.

    Attributes
    ----------
    estimate : DelayDopplerEstimate
        Strongest target: grid peak of the completed map, refined on the measured REs.
    pslr_db : float
        Peak sidelobe ratio of the completed map, dB (:func:`sdr_isac.fusion.resource.peak_sidelobe_ratio_db`).
    power : ndarray, shape (L K, L M), float64
        Periodogram of the completed CIM (layout of :func:`sdr_isac.fusion.resource.delay_doppler_power`).
    filled : ndarray, shape (M, K), complex128
        The completed CIM.
    mask : ndarray, shape (M, K), bool
        Measured REs (the union of the signals').
    """

    estimate: DelayDopplerEstimate
    pslr_db: float
    power: NDArray[np.float64]
    filled: NDArray[np.complex128]
    mask: NDArray[np.bool_]


def fuse_reference_signals(frame: IsacFrame, rx_grid: ArrayLike, signals: Sequence[str] = ("prs", "dmrs", "trs"),
                           completion: str = "cs", noise_var: float | None = None, oversample: int = 2,
                           max_delay_s: float | None = None, channel: int = 0,
                           max_doppler_hz: float | None = None) -> RsFusion:
    """Fuse the channel information of several reference signals and estimate the strongest target.

    Parameters
    ----------
    frame : IsacFrame
        The frame that was sent (gives the REs and symbols of each signal).
    rx_grid : array_like, shape (S, K) or (C, S, K), complex
        Received resource grid.
    signals : sequence of str
        Signals to fuse; one signal alone is the baseline.
    completion : {"cs", "omp", "zero"}
        Recovery of the REs no chosen signal occupies (see module docstring).
    noise_var : float, optional
        Noise variance per RE of ``H``; default estimated from the data.
    oversample : int
        Zero-padding of the map; the PSLR main lobe is ``oversample`` cells
        (one native bin) on each side of the peak.
    max_delay_s : float, optional
        Largest delay searched, s.
    channel : int
        Receive channel of a 3-D grid.
    max_doppler_hz : float, optional
        Largest ``|f_D|`` searched, Hz (a prior on the speed).

    Returns
    -------
    RsFusion
    """
    h, mask = reference_cim(frame, rx_grid, signals, channel)
    t = frame_symbol_times_s(frame)
    df = frame.config.subcarrier_spacing_hz
    filled = complete(h, mask, t, df, completion, noise_var)
    full = np.ones_like(mask)
    power = delay_doppler_power(filled, t, full, oversample)
    est = estimate_delay_doppler(h, t, df, mask, max_delay_s=max_delay_s, oversample=oversample, power=power,
                                 max_doppler_hz=max_doppler_hz)
    return RsFusion(est, peak_sidelobe_ratio_db(power, (oversample, oversample)), power, filled, mask)


def union_fim(frame: IsacFrame, signals: Sequence[str], snr_re: float) -> NDArray[np.float64]:
    """Fisher information of ``(tau in s, f_D in Hz)`` from the union of the signals' REs, one amplitude.

    :func:`sdr_isac.sensing.crb.delay_doppler_fim` on the union mask with
    the frame's symbol times (unit-modulus reference symbols: the SNR of
    ``H`` per RE is ``snr_re``).
    """
    _, mask = known_symbols(frame, tuple(s.lower() for s in signals))
    return delay_doppler_fim(snr_re, mask, frame.config.subcarrier_spacing_hz, frame_symbol_times_s(frame))
