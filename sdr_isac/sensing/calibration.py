"""Receiver calibration of captures: measure the system delay, channel gains and leakage; apply them.

A radio adds three things of its own to every capture, which a calibration measures once on a known path
and removes from every later capture before sensing:

- the **system delay** ``d`` (range zero): the TX -> RX latency of the chains, in samples, integer plus
  fraction (a B210 shows 46 ... 165 samples depending on clock and rate).  Every echo then appears
  ``d / f_s`` late, so every range is biased by ``c d / (2 f_s)``;
- the **complex gain of each receive chain** ``g_c`` relative to channel 0 (unequal cables, LO phases that
  jump by multiples of 90 degrees after a USRP restart), which bends every angle estimate;
- the **static TX -> RX leakage** (the direct coupling of a monostatic front end), a few paths near range
  zero whose sidelobes hide weak echoes.

Model of a measurement (the one likelihood of :mod:`sdr_isac.sensing.estimate`): on the known REs of the
frame, channel ``c`` sees ``H_c[m, k] = Y / X = sum_p a_cp exp(-j 2 pi f_k tau_p) exp(+j 2 pi t_m f_p)``
with ``f_k = (k - K/2) df`` the baseband frequency of subcarrier k (TS 38.211 §5.3.1) and ``t_m`` the
start of symbol m's useful part.  :func:`measure_paths` fits the strongest paths jointly over the channels
(:func:`sdr_isac.sensing.estimate.estimate_paths`: each channel a look with its own amplitude) after a
coarse integer alignment by correlation (:func:`sdr_isac.waveform.sync.find_frame_start`), so delays
beyond the cyclic prefix are measured without inter-symbol interference.

- :func:`measure_loopback`: the strongest static path is the cable (through an attenuator) or the direct
  coupling: its delay is ``d``, its amplitudes give ``g_c = a_c / a_0`` (a common source), and it is the
  leakage profile.
- :func:`measure_reflector`: a reflector at a known distance ``D`` on the array's boresight: the strongest
  static path no earlier than ``2 D / c`` gives ``d = tau - 2 D / c`` and the gains; static paths at the
  calibrated range zero are the leakage.
- :func:`apply_calibration`: the correction of a capture (see there).

Accuracy (CRB, Kay 1993 ch. 15): the delay variance is the (0, 0) entry of the inverse of
``sum_c snr_c J_1``, ``J_1`` the unit-SNR Fisher information of (delay, Doppler) of the frame's REs
(:func:`sdr_isac.sensing.crb.delay_doppler_fim`); the relative phase of channel c has variance
``1 / (2 N snr_c) + 1 / (2 N snr_0)`` over N REs (frequencies centred on DC, so the common delay error
cancels in the ratio).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.fft as sp_fft
from numpy.typing import ArrayLike, NDArray

from sdr_isac.capture import Capture
from sdr_isac.config import FrameConfig
from sdr_isac.errors import InputError, SensingError
from sdr_isac.sensing.crb import delay_doppler_fim
from sdr_isac.sensing.csi import known_reference
from sdr_isac.sensing.estimate import estimate_paths, paths_model, resolvable_steps
from sdr_isac.sensing.pipeline import built_frame
from sdr_isac.units import SPEED_OF_LIGHT_MPS
from sdr_isac.waveform import IsacFrame
from sdr_isac.waveform.sync import find_frame_start

__all__ = ["RxCorrection", "MeasuredPath", "SystemMeasurement", "measure_paths", "measure_loopback",
           "measure_reflector", "apply_calibration", "advance", "average_frames"]

#: Zero padding of the coarse delay-Doppler periodogram (grid peaks for the refinement).
_PAD = 2
#: RELAX rounds of the joint fit (the calibration path is the strongest: it settles in two or three).
_RELAX_ROUNDS = 3
#: Smallest per-RE SNR of a path that a calibration accepts, dB (below it the delay is not worth storing).
MIN_SNR_RE_DB = 10.0
#: A path is static when its Doppler lies within this fraction of the Doppler resolution (or 4 sigma) of 0.
STATIC_FRACTION = 0.05
#: Leakage paths: static paths within this many samples of the calibrated range zero.
LEAKAGE_WINDOW_SAMPLES = 1.0


@dataclass(frozen=True, eq=False)
class RxCorrection:
    """What a calibration removes from a capture (see :func:`apply_calibration`).

    Parameters
    ----------
    delay_samples : float
        System delay in samples at ``sample_rate_hz``, measured from the frame start a capture marks
        (``frame_offset``); finite, ``|d| < 2**24``.
    channel_gains : array_like, shape (C,), complex
        Gain of each receive chain relative to channel 0 (``g_0 = 1``); finite and non-zero.
    leakage_delays_samples : array_like, shape (P,), float
        Delays of the static leakage paths after the system delay is removed, samples (P may be 0).
    leakage_amplitudes : array_like, shape (C, P), complex
        Amplitude of each leakage path on each channel, on the scale of ``H = Y / X`` (before equalisation).
    sample_rate_hz : float
        The rate the delays are counted at, Hz (> 0).
    label : mapping
        What a corrected capture records in ``metadata["calibration"]`` (the calibration's ``id`` and the
        ``sha256`` of its file).
    """

    delay_samples: float
    channel_gains: NDArray[np.complex128]
    leakage_delays_samples: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    leakage_amplitudes: NDArray[np.complex128] = field(default_factory=lambda: np.zeros((1, 0), complex))
    sample_rate_hz: float = 1.0
    label: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        d = _finite_float("delay_samples", self.delay_samples, "samples")
        if abs(d) >= 2**24:
            raise InputError(f"delay_samples = {d} samples: allowed |d| < 2**24; measure the delay again")
        gains = np.asarray(self.channel_gains, dtype=np.complex128).reshape(-1)
        if gains.size == 0 or not np.all(np.isfinite(gains)) or np.any(gains == 0):
            raise InputError(f"channel_gains = {gains.tolist()}: allowed one finite non-zero complex gain per "
                             "receive channel; measure them again")
        delays = np.asarray(self.leakage_delays_samples, dtype=np.float64).reshape(-1)
        amps = np.asarray(self.leakage_amplitudes, dtype=np.complex128)
        if amps.size == 0:
            amps = np.zeros((gains.size, delays.size), complex)
        if amps.shape != (gains.size, delays.size) or not (np.all(np.isfinite(delays)) and np.all(np.isfinite(amps))):
            raise InputError(f"leakage_amplitudes has shape {amps.shape} for {delays.size} leakage delay(s) and "
                             f"{gains.size} channel(s): allowed finite values of shape (channels, paths)")
        rate = _finite_float("sample_rate_hz", self.sample_rate_hz, "Hz")
        if rate <= 0:
            raise InputError(f"sample_rate_hz = {rate} Hz: allowed > 0 Hz")
        for name, value in (("delay_samples", d), ("channel_gains", gains), ("leakage_delays_samples", delays),
                            ("leakage_amplitudes", amps), ("sample_rate_hz", rate), ("label", dict(self.label))):
            object.__setattr__(self, name, value)

    @property
    def num_channels(self) -> int:
        """Receive channels the correction is for."""
        return int(self.channel_gains.size)

    @property
    def integer_delay_samples(self) -> int:
        """The whole-sample part of the system delay (``round(delay_samples)``)."""
        return int(np.floor(self.delay_samples + 0.5))

    @property
    def fractional_delay_samples(self) -> float:
        """The rest, -0.5 ... 0.5 samples."""
        return self.delay_samples - self.integer_delay_samples


class _HasCorrection(Protocol):
    @property
    def correction(self) -> RxCorrection: ...


@dataclass(frozen=True, eq=False)
class MeasuredPath:
    """One path of a calibration capture (:func:`measure_paths`).

    Attributes
    ----------
    delay_samples : float
        Delay from the capture's frame start (``frame_offset``), samples.
    doppler_hz : float
        Doppler shift, Hz.
    amplitudes : ndarray, shape (C,), complex128
        Amplitude on each channel (``H = Y / X`` scale, frequencies centred on DC).
    snr_re : ndarray, shape (C,), float64
        Per-RE SNR on each channel, linear (residual noise of the fit).
    delay_crb_samples2 : float
        CRB of the delay at those SNRs, samples².
    num_res : int
        REs per channel the fit used.
    doppler_crb_hz2 : float
        CRB of the Doppler shift, Hz².
    """

    delay_samples: float
    doppler_hz: float
    amplitudes: NDArray[np.complex128]
    snr_re: NDArray[np.float64]
    delay_crb_samples2: float
    num_res: int
    doppler_crb_hz2: float = math.inf

    @property
    def power(self) -> float:
        """Sum over channels of ``|a_c|**2``."""
        return float(np.sum(np.abs(self.amplitudes) ** 2))

    def relative_phase_crb_rad2(self) -> NDArray[np.float64]:
        """CRB of ``arg(a_c / a_0)`` for each channel, rad² (0 for channel 0), shape (C,)."""
        per = 1.0 / (2.0 * self.num_res * np.maximum(self.snr_re, 1e-300))
        out = per + per[0]
        out[0] = 0.0
        return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class SystemMeasurement:
    """What :func:`measure_loopback` or :func:`measure_reflector` found.

    Attributes
    ----------
    delay_samples : float
        System delay from the frame start, samples.
    delay_crb_samples2 : float
        Its CRB, samples².
    channel_gains : ndarray, shape (C,), complex128
        ``a_c / a_0`` of the calibration path.
    phase_crb_rad2 : ndarray, shape (C,), float64
        CRB of each relative phase, rad².
    leakage_delays_samples : ndarray, shape (P,), float64
        Leakage paths' delays after removing the system delay, samples.
    leakage_amplitudes : ndarray, shape (C, P), complex128
    snr_re_db : ndarray, shape (C,), float64
        Per-RE SNR of the calibration path on each channel, dB.
    sample_rate_hz : float
    path : MeasuredPath
        The calibration path itself.
    """

    delay_samples: float
    delay_crb_samples2: float
    channel_gains: NDArray[np.complex128]
    phase_crb_rad2: NDArray[np.float64]
    leakage_delays_samples: NDArray[np.float64]
    leakage_amplitudes: NDArray[np.complex128]
    snr_re_db: NDArray[np.float64]
    sample_rate_hz: float
    path: MeasuredPath

    def correction(self, label: Mapping[str, Any] | None = None, leakage: bool = True) -> RxCorrection:
        """The :class:`RxCorrection` of this measurement (``leakage=False``: no leakage subtraction)."""
        delays = self.leakage_delays_samples if leakage else np.zeros(0)
        amps = self.leakage_amplitudes if leakage else np.zeros((self.channel_gains.size, 0), complex)
        return RxCorrection(self.delay_samples, self.channel_gains, delays, amps, self.sample_rate_hz,
                            dict(label or {}))


# ---------------------------------------------------------------------------------------------- helpers
def _finite_float(name: str, value: Any, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InputError(f"{name} = {value!r}: allowed a finite number of {unit}")
    out = float(value)
    if not math.isfinite(out):
        raise InputError(f"{name} = {out} {unit}: allowed a finite number of {unit}")
    return out


def _frame_of(capture: Capture, frame: FrameConfig | IsacFrame | None) -> IsacFrame:
    if isinstance(frame, IsacFrame):
        return frame
    cfg = frame or capture.frame
    if cfg is None:
        raise SensingError(f"capture {capture.node_id}/{capture.seq} carries no frame and none was given: a "
                           "calibration needs the transmitted frame; pass frame= (a FrameConfig or IsacFrame)")
    return built_frame(cfg)


def _check_capture(capture: Capture, built: IsacFrame) -> None:
    if not isinstance(capture, Capture):
        raise InputError(f"capture is a {type(capture).__name__}: allowed a sdr_isac.Capture")
    if abs(capture.sample_rate_hz - built.sample_rate_hz) > 1e-6 * built.sample_rate_hz:
        raise SensingError(f"capture sample rate {capture.sample_rate_hz:g} Hz != frame sample rate "
                           f"{built.sample_rate_hz:g} Hz: calibrate with the frame the radio transmits")
    if capture.frame_offset + built.num_samples > capture.num_samples:
        raise SensingError(f"capture has {capture.num_samples} samples, the frame needs {built.num_samples} from "
                           f"frame_offset {capture.frame_offset}: capture at least one whole frame")
    capture.check_samples()                   # NaN or infinity: NonFiniteSampleError (a SensingError), naming it


def advance(iq: ArrayLike, delay_samples: float) -> NDArray[np.complex64]:
    """``y[n + d]`` of each row: the integer part by a circular shift, the fraction by a linear phase.

    Parameters
    ----------
    iq : array_like, shape (C, N), complex
    delay_samples : float
        ``d``, samples (finite).  The shift is circular: exact for a capture of whole periods of a cyclic
        transmission; otherwise the last ``ceil(d)`` samples come from the capture's start.

    Returns
    -------
    ndarray, shape (C, N), complex64
    """
    d = _finite_float("delay_samples", delay_samples, "samples")
    x = np.atleast_2d(np.asarray(iq))
    whole = int(np.floor(d + 0.5))
    frac = d - whole
    out = np.roll(x, -whole, axis=1) if whole else x
    if frac and x.shape[1] > 1:
        nu = sp_fft.fftfreq(x.shape[1], 1.0 / x.shape[1])
        out = sp_fft.ifft(sp_fft.fft(out, axis=1) * np.exp(2j * math.pi * nu * frac / x.shape[1]), axis=1)
    return np.ascontiguousarray(out, dtype=np.complex64)


def average_frames(captures: list[Capture], frame: FrameConfig | IsacFrame | None = None) -> Capture:
    """The coherent mean of one frame period of each capture (aligned at its ``frame_offset``).

    Static paths (cable, leakage, a reflector) add up; noise falls by the number of captures, moving echoes
    blur.  The result is one frame long with ``frame_offset = 0``, the metadata of the first capture.

    Raises
    ------
    InputError
        No capture, or captures of different rates or channel counts.
    """
    if not captures:
        raise InputError("captures is empty: allowed one or more captures of a cyclic transmission")
    first = captures[0]
    built = _frame_of(first, frame)
    total = np.zeros((first.num_channels, built.num_samples), dtype=np.complex128)
    for cap in captures:
        _check_capture(cap, built)
        if cap.num_channels != first.num_channels:
            raise InputError(f"capture seq {cap.seq} has {cap.num_channels} channels, the first "
                             f"{first.num_channels}: average captures of one radio")
        total += cap.iq[:, cap.frame_offset: cap.frame_offset + built.num_samples]
    return dataclasses.replace(first, iq=(total / len(captures)).astype(np.complex64), frame_offset=0,
                               frame=first.frame if frame is None or isinstance(frame, IsacFrame) else frame)


# ---------------------------------------------------------------------------------------------- measuring
def measure_paths(capture: Capture, frame: FrameConfig | IsacFrame | None = None,
                  num_paths: int = 4) -> list[MeasuredPath]:
    """The ``num_paths`` strongest paths of a capture of the cyclic frame, strongest first.

    Parameters
    ----------
    capture : Capture
        ``iq`` shape (C, n), complex64, holding one whole frame from ``frame_offset`` on.
    frame : FrameConfig or IsacFrame, optional
        The transmitted frame (default: the capture's).
    num_paths : int
        Paths to fit jointly (>= 1).

    Returns
    -------
    list of MeasuredPath
        Delays from the frame start, ``-L/2 < delay <= L/2`` samples for a frame of L samples.
    """
    built = _frame_of(capture, frame)
    _check_capture(capture, built)
    period = built.num_samples
    reference = np.asarray(built.samples(), dtype=np.complex128).sum(axis=0)
    window = capture.iq[:, capture.frame_offset:]
    timing = find_frame_start(window, reference, period=period)
    coarse = int(timing.offset)
    if coarse > period // 2:
        coarse -= period
    iq = advance(capture.iq[:, capture.frame_offset: capture.frame_offset + period], coarse)
    x, mask, inverse = known_reference(built, ())
    h = built.ofdm.demodulate(iq, 0) * inverse[None]
    fcfg = built.config
    df = fcfg.subcarrier_spacing_hz
    num_sym, num_sc = mask.shape
    freqs = (np.arange(num_sc) - num_sc // 2) * df
    times = (built.symbol_starts + built.cp_lengths).astype(np.float64) / built.sample_rate_hz
    symbol_s = period / (num_sym * built.sample_rate_hz)
    n_delay, n_doppler = _PAD * num_sc, _PAD * num_sym
    step_k = resolvable_steps([mask])[1]
    unambiguous_s = 1.0 / (step_k * df)
    steps = (1.0 / (n_delay * df), 1.0 / (n_doppler * symbol_s))

    def peak(residual: NDArray[np.complex128]) -> tuple[float, float]:
        profile = sp_fft.ifft(residual, n=n_delay, axis=2)
        power = np.sum(np.abs(sp_fft.fft(profile, n=n_doppler, axis=1)) ** 2, axis=0)       # (Doppler, delay)
        delay_s = sp_fft.fftfreq(n_delay, df)
        doppler = sp_fft.fftfreq(n_doppler, symbol_s)
        power[:, np.abs(delay_s) >= unambiguous_s / 2] = -1.0
        q, r = np.unravel_index(int(np.argmax(power)), power.shape)
        return float(delay_s[r]), float(doppler[q])

    unit_fim = delay_doppler_fim(1.0, mask, df, times)
    found = estimate_paths(h, mask, freqs, times, np.ones(h.shape[0]), np.broadcast_to(unit_fim, (h.shape[0], 2, 2)),
                           int(num_paths), peak, steps, num_rounds=_RELAX_ROUNDS)
    model = paths_model(found, freqs, times)
    used = int(np.count_nonzero(mask))
    noise = np.sum(np.abs(np.where(mask[None], h - model, 0)) ** 2, axis=(1, 2)) / max(used, 1)
    noise = np.maximum(noise, 1e-30)
    fs = built.sample_rate_hz
    out = []
    for p in found:
        snr = np.abs(p.amplitudes) ** 2 / noise
        fim = unit_fim * float(np.sum(snr))
        try:
            bound = np.linalg.inv(fim)
            crb, crb_doppler = float(bound[0, 0]) * fs**2, float(bound[1, 1])
        except np.linalg.LinAlgError:
            crb = crb_doppler = math.inf
        out.append(MeasuredPath(coarse + p.delay_s * fs, float(p.doppler), np.asarray(p.amplitudes), snr, crb, used,
                                crb_doppler))
    return sorted(out, key=lambda p: p.power, reverse=True)


def _static(path: MeasuredPath, built: IsacFrame) -> bool:
    """Doppler within 4 standard deviations (CRB) of zero, or 5 % of the Doppler resolution (1 / frame)."""
    resolution_hz = built.sample_rate_hz / built.num_samples
    return abs(path.doppler_hz) <= max(4 * math.sqrt(path.doppler_crb_hz2), STATIC_FRACTION * resolution_hz)


def _measurement(path: MeasuredPath, delay: float, leakage: list[MeasuredPath], fs: float) -> SystemMeasurement:
    snr_db = 10 * np.log10(np.maximum(path.snr_re, 1e-30))
    if float(np.min(snr_db)) < MIN_SNR_RE_DB:
        raise SensingError(f"the calibration path has a per-RE SNR of {float(np.min(snr_db)):.1f} dB on its weakest "
                           f"channel: allowed >= {MIN_SNR_RE_DB:g} dB; connect TX to RX (cable and attenuator), "
                           "raise the transmit power or the gain, or move the reflector closer")
    gains = path.amplitudes / path.amplitudes[0]
    lk_delays = np.array([p.delay_samples - delay for p in leakage], dtype=np.float64)
    lk_amps = (np.stack([p.amplitudes for p in leakage], axis=1) if leakage
               else np.zeros((gains.size, 0), complex))
    return SystemMeasurement(float(delay), path.delay_crb_samples2, gains, path.relative_phase_crb_rad2(), lk_delays,
                             lk_amps, snr_db, fs, path)


def measure_loopback(capture: Capture, frame: FrameConfig | IsacFrame | None = None,
                     num_paths: int = 2) -> SystemMeasurement:
    """System delay, channel gains and leakage from a loopback capture: the strongest path is the TX -> RX one.

    Parameters
    ----------
    capture : Capture
        A capture (best: :func:`average_frames` of several) of the radio's cyclic frame with TX connected to
        every RX channel through a cable, attenuator and splitter, or with the front end's own coupling
        far above every echo.
    frame : FrameConfig or IsacFrame, optional
        The transmitted frame (default: the capture's).
    num_paths : int
        Paths fitted (the loopback path and the strongest others, so that their sidelobes do not bias it).

    Raises
    ------
    SensingError
        The strongest path moves (not a loopback) or is too weak (< 10 dB per RE).
    """
    built = _frame_of(capture, frame)
    paths = measure_paths(capture, built, num_paths)
    strongest = paths[0]
    if not _static(strongest, built):
        raise SensingError(f"the strongest path has a Doppler shift of {strongest.doppler_hz:.1f} Hz: a loopback "
                           "path is static; connect TX to RX with a cable (through an attenuator) or use "
                           "--method reflector")
    return _measurement(strongest, strongest.delay_samples, [strongest], built.sample_rate_hz)


def measure_reflector(capture: Capture, distance_m: float, frame: FrameConfig | IsacFrame | None = None,
                      num_paths: int = 4) -> SystemMeasurement:
    """System delay and channel gains from a reflector at ``distance_m`` on the array's boresight.

    The reflector is the strongest static path ``2 D / c`` behind another static path (the TX->RX leakage
    at the system delay), or, where no leakage shows, the strongest static path no earlier than ``2 D / c``
    (less one sample): the system delay is its delay less ``2 D / c``.  Its amplitudes give the channel gains (a
    reflector on boresight reaches every element in phase).  Static paths within one sample of the
    calibrated range zero are the leakage.

    Parameters
    ----------
    capture : Capture
        As :func:`measure_loopback`, with the reflector the strongest static echo beyond the leakage.
    distance_m : float
        Distance of the reflector from the antennas, m, > 0 and less than half the frame's unambiguous range.
    frame, num_paths
        As :func:`measure_loopback`.

    Raises
    ------
    InputError
        ``distance_m`` is not a finite number > 0 m.
    SensingError
        No static path at or beyond ``2 D / c``, or it is too weak.
    """
    d_m = _finite_float("distance_m", distance_m, "m")
    if d_m <= 0:
        raise InputError(f"distance_m = {d_m} m: allowed > 0 m, the reflector's distance from the antennas")
    built = _frame_of(capture, frame)
    fs = built.sample_rate_hz
    geometric = 2 * d_m / SPEED_OF_LIGHT_MPS * fs
    if geometric < 2.0:
        raise InputError(f"distance_m = {d_m} m puts the reflector {geometric:.2f} samples behind range zero: "
                         "allowed at least 2 samples, or the reflector cannot be told from the TX->RX leakage; "
                         "move it further away")
    paths = [p for p in measure_paths(capture, built, num_paths) if _static(p, built)]
    # with leakage (a static path at the system delay itself) the reflector is the static path 2 D / c behind
    # another one; the delays include the unknown system delay, so "at least 2 D / c" alone would also take the
    # leakage.  Without a visible leakage it is the strongest static path at or beyond 2 D / c.
    behind = [p for p in paths if any(q is not p and abs(p.delay_samples - q.delay_samples - geometric) <= 1.0
                                      for q in paths)]
    candidates = behind or [p for p in paths if p.delay_samples >= geometric - 1.0]
    if not candidates:
        raise SensingError(f"no static echo at or beyond the reflector's delay 2 D / c = {geometric:.2f} samples "
                           f"(distance_m = {d_m} m): check the distance and that the reflector is in the beam")
    reflector = candidates[0]                                    # paths come strongest first
    delay = reflector.delay_samples - geometric
    leakage = [p for p in paths if p is not reflector and abs(p.delay_samples - delay) <= LEAKAGE_WINDOW_SAMPLES]
    return _measurement(reflector, delay, leakage, fs)


# ---------------------------------------------------------------------------------------------- applying
@functools.lru_cache(maxsize=4)
def _leakage_waveform(cfg: FrameConfig, correction: RxCorrection) -> NDArray[np.complex64]:
    """The leakage over one frame period, shape (C, L): each path's delayed frame times its amplitudes."""
    built = built_frame(cfg)
    x = np.asarray(built.samples(), dtype=np.complex128).sum(axis=0)
    spectrum = sp_fft.fft(x)
    nu = sp_fft.fftfreq(x.size, 1.0 / x.size)
    delayed = np.stack([sp_fft.ifft(spectrum * np.exp(-2j * math.pi * nu * d / x.size))
                        for d in correction.leakage_delays_samples])                  # (P, L)
    return np.asarray(correction.leakage_amplitudes @ delayed, dtype=np.complex64)


def apply_calibration(capture: Capture, cal: RxCorrection | _HasCorrection,
                      frame: FrameConfig | None = None) -> Capture:
    """The capture as a calibrated radio delivers it: system delay removed, leakage subtracted, channels equalised.

    1. ``y[n] <- y[n + d]``, so that the frame start marked by ``frame_offset`` is range zero: where the frame
       still lies wholly in the capture after moving its start by the integer part, ``frame_offset`` moves by
       it (no sample wraps); otherwise the integer part is a circular shift (:func:`advance`: exact for a
       capture of whole periods of the cyclic frame and for static paths; a moving echo sees a phase jump
       over the last ``ceil(d)`` samples, about -40 dB under it).  The fraction is a linear phase over the
       capture's spectrum;
    2. the leakage paths (their delayed frame times their amplitudes, periodic with the frame from
       ``frame_offset``) are subtracted;
    3. row c is divided by ``g_c``.

    ``metadata["calibration"]`` names the calibration (its label: ``id``, ``sha256``) and the delay removed.

    Parameters
    ----------
    capture : Capture
        ``iq`` shape (C, n), complex64, at the calibration's sample rate and channel count.
    cal : RxCorrection, or an object with a ``correction`` attribute (a radio Calibration)
    frame : FrameConfig, optional
        The transmitted frame for the leakage (default: the capture's); not needed without leakage paths.

    Returns
    -------
    Capture
        A new capture (the input is unchanged), ``iq`` complex64 of the same shape.

    Raises
    ------
    InputError
        ``cal`` is not a correction, or the capture's rate or channel count differ from it.
    SensingError
        Leakage to subtract and no frame.
    """
    corr = cal if isinstance(cal, RxCorrection) else getattr(cal, "correction", None)
    if not isinstance(corr, RxCorrection):
        raise InputError(f"cal is a {type(cal).__name__}: allowed an RxCorrection or a Calibration (with a "
                         "correction); load one with sdr_isac.radio.calibration.load_calibration")
    if not isinstance(capture, Capture):
        raise InputError(f"capture is a {type(capture).__name__}: allowed a sdr_isac.Capture")
    if abs(capture.sample_rate_hz - corr.sample_rate_hz) > 1e-6 * corr.sample_rate_hz:
        raise InputError(f"capture sample rate {capture.sample_rate_hz:g} Hz: the calibration was made at "
                         f"{corr.sample_rate_hz:g} Hz; calibrate again at this rate (sdr-isac calibrate)")
    if capture.num_channels != corr.num_channels:
        raise InputError(f"capture has {capture.num_channels} channel(s): the calibration has "
                         f"{corr.num_channels}; calibrate again with this channel set (sdr-isac calibrate)")
    offset = capture.frame_offset
    whole = corr.integer_delay_samples
    built = built_frame(capture.frame) if capture.frame is not None else None
    if built is not None and 0 <= offset + whole and offset + whole + built.num_samples <= capture.num_samples:
        offset += whole                                  # the frame lies in the capture: move its start, no wrap
        iq = advance(capture.iq, corr.fractional_delay_samples)
    else:
        iq = advance(capture.iq, corr.delay_samples)
    if corr.leakage_delays_samples.size:
        cfg = frame or capture.frame
        if cfg is None:
            raise SensingError(f"capture {capture.node_id}/{capture.seq} carries no frame: subtracting the "
                               "calibration's leakage needs the transmitted frame; pass frame=")
        leak = _leakage_waveform(cfg, corr)
        index = (np.arange(capture.num_samples) - offset) % leak.shape[1]
        iq = iq - leak[:, index]
    iq = (iq / corr.channel_gains[:, None].astype(np.complex64)).astype(np.complex64)
    meta = {**capture.metadata, "calibration": {**corr.label, "delay_samples": corr.delay_samples,
                                                "leakage_paths": int(corr.leakage_delays_samples.size)}}
    return dataclasses.replace(capture, iq=iq, frame_offset=offset, metadata=meta)
