"""Echo synthesis: what a node's receive array hears from every transmission in the scene.

For each path (see :mod:`sdr_isac.channel.scene`) the transmitted envelope is
delayed exactly — a fractional delay applied as a linear phase across the
spectrum of the whole (periodic) transmission, so off-grid ranges are not
rounded to a sample — then given the path's Doppler as a phase ramp across
the whole receive window, its complex gain, and the receive (AoA) and transmit
(AoD) array phases.  Thermal noise k T0 B F (B = sample rate) is added and the
result is scaled so that the noise has unit variance per sample: the squared
magnitude of a resource element is then its SNR.

Impairments per receiving node: timing offset and clock offsets (in the path
delays), sample-clock offset as a delay drift from window to window, carrier
frequency offset and Wiener phase noise (common LO for its own echoes, so
they see phi(t) - phi(t - tau); transmitter phase noise of other nodes is not
modelled), TX->RX leakage (a path in the scene).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.fft as sp_fft
from numpy.typing import NDArray

from sdr_isac.channel.geometry import azimuth_elevation, steering_vector
from sdr_isac.channel.scene import Path, Scene
from sdr_isac.errors import InputError
from sdr_isac.units import BOLTZMANN_J_PER_K, REFERENCE_TEMPERATURE_K, SPEED_OF_LIGHT_MPS, db_to_linear

__all__ = ["Transmission", "EchoSynthesizer", "ReceiveWindow"]

_PHASE_HISTORY = 1 << 16        # samples of LO phase kept for phi(t - tau) of own echoes


@dataclass(eq=False)
class Transmission:
    """Samples a node puts on the air.

    Attributes
    ----------
    node_id : str
    samples : ndarray, shape (P, L), complex64
        One row per transmit port, in sqrt(W) (mean power over the frame,
        summed over ports, equals the node's transmit power).
    cyclic : bool
        Repeated without gaps from ``start_time_s`` on, or sent once.
    start_time_s : float
        Scene time of the first sample.
    re_power_w : float
        Mean power of an occupied resource element (summed over ports), W;
        used for per-RE SNR overrides and truth.
    """

    node_id: str
    samples: NDArray[np.complex64]
    cyclic: bool
    start_time_s: float
    re_power_w: float
    _spectra: dict[int, NDArray[np.complex128]] = field(default_factory=dict, repr=False)

    def spectrum(self, length: int) -> NDArray[np.complex128]:
        """FFT of the samples zero-padded to ``length`` (cached), shape (P, length)."""
        if length in self._spectra:
            return self._spectra[length]
        spectrum = sp_fft.fft(self.samples, n=length, axis=1, workers=-1)
        if self.cyclic:                      # one length forever; a burst's padded length changes with delay
            self._spectra[length] = spectrum
        return spectrum


@dataclass
class ReceiveWindow:
    """One synthesised receive window.

    Attributes
    ----------
    iq : ndarray, shape (E, n), complex64
        Receive-element samples, scaled to unit noise variance per sample.
    noise_power_w : float
        Thermal noise power per sample before scaling, W.
    truth : list of dict
        One entry per path: kind, source, delay, Doppler, range, velocity,
        angles, SNR per RE per element.
    """

    iq: NDArray[np.complex64]
    noise_power_w: float
    truth: list[dict[str, Any]]


class EchoSynthesizer:
    """Synthesises what node ``rx_id`` receives, window after window.

    Parameters
    ----------
    scene : Scene
    rx_id : str
        The receiving node.
    rng : numpy.random.Generator
        Source of noise, Swerling draws and phase noise.
    """

    def __init__(self, scene: Scene, rx_id: str, rng: np.random.Generator):
        self.scene = scene
        self.rx_id = rx_id
        self.node = scene.node(rx_id)
        self.rng = rng
        frame = scene.node_frame(rx_id)
        self.sample_rate_hz = frame.sample_rate_hz
        self.carrier_hz = frame.carrier_hz
        self.rx_elements = scene.rx_elements(rx_id)
        self.noise_power_w = (BOLTZMANN_J_PER_K * REFERENCE_TEMPERATURE_K * self.sample_rate_hz
                              * float(db_to_linear(self.node.noise_figure_db)))
        self._phase_history = np.zeros(_PHASE_HISTORY)

    @property
    def num_channels(self) -> int:
        """Receive elements."""
        return len(self.rx_elements)

    def receive(self, t0_s: float, num_samples: int, transmissions: list[Transmission]) -> ReceiveWindow:
        """The window of ``num_samples`` samples starting at scene time ``t0_s``."""
        if num_samples < 1:
            raise InputError(f"num_samples = {num_samples}: allowed >= 1")
        fs = self.sample_rate_hz
        n = np.arange(num_samples)
        out = np.zeros((self.num_channels, num_samples), dtype=np.complex128)
        phase_noise = self._advance_phase_noise(num_samples)
        truth: list[dict[str, Any]] = []
        for tx in transmissions:
            tx_frame = self.scene.node_frame(tx.node_id)
            if tx_frame.sample_rate_hz != fs or abs(tx_frame.carrier_hz - self.carrier_hz) > 1.0:
                continue                                   # another band: this receiver cannot hear it
            own = tx.node_id == self.rx_id
            tx_elements = self.scene.tx_elements(tx.node_id)
            ports = tx.samples.shape[0]
            if ports > len(tx_elements):
                raise InputError(f"node {tx.node_id!r} transmits {ports} ports with {len(tx_elements)} TX "
                                 "element(s): give tx_array at least one element per port")
            for path in self.scene.paths(tx.node_id, self.rx_id, t0_s, self.rng):
                gain = self._gain(path, tx)
                # the sample clocks' drift between transmitter and receiver: none on a node's own echoes (one clock)
                drift_ppm = self.node.sfo_ppm - self.scene.node(tx.node_id).sfo_ppm
                delay_s = path.delay_s + drift_ppm * 1e-6 * t0_s
                envelope = self._delayed(tx, delay_s, t0_s, num_samples, tx_elements, path)
                ramp = np.exp(2j * math.pi * path.doppler_hz * n / fs)
                if not own and self.node.cfo_hz:
                    ramp = ramp * np.exp(2j * math.pi * self.node.cfo_hz * (t0_s + n / fs))
                if phase_noise is not None:
                    lag = min(max(int(round(delay_s * fs)), 0), _PHASE_HISTORY - 1)
                    ramp = ramp * np.exp(1j * self._pn_difference(phase_noise, lag, num_samples, own))
                a_rx = (np.ones(self.num_channels) if path.kind == "leakage" else
                        steering_vector(self.rx_elements, path.arrival_local, SPEED_OF_LIGHT_MPS / self.carrier_hz))
                out += np.outer(gain * a_rx, ramp * envelope)
                truth.append(self._truth(path, gain, tx, delay_s))
        if self.scene.config.noise:
            scale = math.sqrt(self.noise_power_w / 2.0)
            out += scale * (self.rng.standard_normal(out.shape) + 1j * self.rng.standard_normal(out.shape))
        out /= math.sqrt(self.noise_power_w)
        return ReceiveWindow(out.astype(np.complex64), self.noise_power_w, truth)

    # ---- pieces -----------------------------------------------------------------
    def _gain(self, path: Path, tx: Transmission) -> complex:
        snr_db = path.truth.get("snr_per_re_db_override")
        if snr_db is None:
            return path.gain
        magnitude = math.sqrt(db_to_linear(snr_db) * self.noise_power_w / tx.re_power_w)
        return magnitude * path.gain / abs(path.gain)

    def _delayed(self, tx: Transmission, delay_s: float, t0_s: float, num_samples: int,
                 tx_elements: NDArray[np.float64], path: Path) -> NDArray[np.complex128]:
        """Envelope sum_p a_tx[p] x_p(t - delay) on the window, exact fractional delay."""
        fs = self.sample_rate_hz
        ports, period = tx.samples.shape
        shift = (delay_s + tx.start_time_s - t0_s) * fs           # delay in samples, relative to the window
        if tx.cyclic:
            length = period
        else:
            length = sp_fft.next_fast_len(period + num_samples + max(0, int(math.ceil(shift))) + 1)
        a_tx = (np.ones(ports) if path.kind == "leakage" else
                steering_vector(tx_elements[:ports], path.departure_local, SPEED_OF_LIGHT_MPS / self.carrier_hz))
        spectrum = a_tx @ tx.spectrum(length)
        k = sp_fft.fftfreq(length, 1.0 / length)                  # signed bin index: band-limited interpolation
        y = sp_fft.ifft(spectrum * np.exp(-2j * math.pi * k * shift / length), workers=-1)
        if not tx.cyclic and shift < -period:
            return np.zeros(num_samples, complex)
        reps = -(-num_samples // length)
        return np.tile(y, reps)[:num_samples] if reps > 1 else y[:num_samples]

    def _advance_phase_noise(self, num_samples: int) -> NDArray[np.float64] | None:
        """LO phase over [history | new window] (radians), or None without phase noise."""
        beta = self.node.phase_noise_linewidth_hz
        if beta <= 0:
            return None
        steps = self.rng.normal(0.0, math.sqrt(2 * math.pi * beta / self.sample_rate_hz), num_samples)
        new = self._phase_history[-1] + np.cumsum(steps)
        full = np.concatenate((self._phase_history, new))
        self._phase_history = full[-_PHASE_HISTORY:]
        return full

    @staticmethod
    def _pn_difference(full: NDArray[np.float64], lag: int, num_samples: int, own: bool) -> NDArray[np.float64]:
        current = full[_PHASE_HISTORY:_PHASE_HISTORY + num_samples]
        if not own:
            return current
        start = _PHASE_HISTORY - lag
        return current - full[start:start + num_samples]

    def _truth(self, path: Path, gain: complex, tx: Transmission, delay_s: float) -> dict[str, Any]:
        lam = SPEED_OF_LIGHT_MPS / self.carrier_hz
        az, el = azimuth_elevation(path.arrival_local)
        record = dict(path.truth)
        record.pop("snr_per_re_db_override", None)
        record.update({
            "delay_s": delay_s,
            "delay_samples": delay_s * self.sample_rate_hz,
            "azimuth_deg": math.degrees(az),
            "elevation_deg": math.degrees(el),
            "snr_per_re_db": 10 * math.log10(max(abs(gain) ** 2 * tx.re_power_w / self.noise_power_w, 1e-300)),
        })
        if path.tx == path.rx:
            record["range_m"] = path.length_m / 2
            record["velocity_mps"] = -path.doppler_hz * lam / 2 + 0.0  # radial, positive away (no -0.0)
        else:
            record["range_sum_m"] = path.length_m
            record["bistatic_velocity_mps"] = -path.doppler_hz * lam + 0.0  # d(range sum)/dt
        return record
