"""ADALM-Pluto backend through pyadi-iio (``import adi``), on libiio.

One :class:`PlutoRadio` drives one Pluto (``adi.Pluto`` for one channel pair,
``adi.ad9361`` for a 2R2T Rev C/D board).  The frame is sent from a cyclic TX
buffer; each :meth:`~PlutoRadio.rx` returns one RX buffer.  A Pluto has no
common TX/RX timestamp, so every capture is aligned by correlating it with the
transmitted frame: the strongest copy (the TX->RX leakage or cable, i.e. zero
range) marks the frame start, recorded as ``capture.frame_offset`` with the
sub-sample part and quality in ``metadata["pluto"]["alignment"]``.  On
request (``radio.remove_leakage``) the static part of the echo (leakage and
clutter) is measured once, as the mean of several aligned buffers, and
subtracted from every later capture.

Sample scaling: TX samples are scaled so that the largest I or Q value is
2**14 (half of the 16-bit full scale, as pyadi-iio's examples do, leaving room
for the DAC's 12 bits); RX samples, 12-bit values sign-extended to 16 bits,
are divided by 2**11 so that ADC full scale is 1.0.

``adi``/``iio`` are imported lazily and only here; a missing pyadi-iio raises
:class:`~sdr_isac.errors.RadioUnavailableError` with what to install.
"""

from __future__ import annotations

import time
import types
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sdr_isac.capture import Capture
from sdr_isac.config import FrameConfig, PlutoRadioConfig, RadioConfig
from sdr_isac.errors import ConfigError, RadioError, RadioUnavailableError
from sdr_isac.radio.base import RadioBase
from sdr_isac.radio.registry import register_radio
from sdr_isac.waveform.sync import find_frame_start

__all__ = ["PlutoRadio", "PLUTO_INSTALL_HINT", "AD936X_LIMITS"]

#: What to do when ``import adi`` fails.
PLUTO_INSTALL_HINT = ("pyadi-iio is not installed: pip install 'sdr_isac[pluto]' (pyadi-iio with pylibiio==0.25) "
                      "and the C library: apt install libiio0 (libiio 0.24/0.25)")

#: AD9363/AD9364 ranges (ADI AD9361 reference manual UG-570; Pluto firmware in AD9364 mode for 70 MHz ... 6 GHz).
AD936X_LIMITS = {
    "center_freq_hz": (70e6, 6e9, "Hz (AD9364 mode; a stock AD9363 Pluto tunes 325 MHz ... 3.8 GHz)"),
    "sample_rate_hz": (521e3, 61.44e6, "Hz (pyadi-iio's lowest rate with the FPGA decimation filter)"),
    "rf_bandwidth_hz": (200e3, 56e6, "Hz"),
    "rx_gain_db": (-3.0, 71.0, "dB (manual gain; the top end falls above 4 GHz)"),
    "tx_attenuation_db": (0.0, 89.75, "dB in 0.25 dB steps"),
}
_TX_PEAK = 2.0**14
_RX_FULL_SCALE = 2.0**11
_LEAKAGE_BUFFERS = 8


def _import_adi() -> types.ModuleType:
    try:
        import adi
    except (ImportError, OSError) as err:     # OSError: pylibiio found no libiio shared library
        raise RadioUnavailableError(f"{PLUTO_INSTALL_HINT} ({err})") from err
    return adi


class PlutoRadio(RadioBase):
    """An ADALM-Pluto (or another AD936x board pyadi-iio drives as ``ad9361``).

    Parameters
    ----------
    config : PlutoRadioConfig
        ``uri`` (``ip:192.168.2.1``, ``usb:1.2.5``), rates, LO, gains,
        ``rx_channels``/``tx_channels`` ([0] or [0, 1]), ``buffer_size``,
        ``remove_leakage``.
    frame : FrameConfig, optional
        The frame; gives default rate and LO.
    adi_module : module, optional
        Stand-in for ``adi`` (tests); by default pyadi-iio is imported.
    """

    kind = "pluto"
    section = PlutoRadioConfig
    config: PlutoRadioConfig
    _frames_per_capture = 2          # no common TX/RX time: a whole frame must lie inside every buffer

    def __init__(self, config: RadioConfig, frame: FrameConfig | None = None, *,
                 adi_module: types.ModuleType | None = None):
        super().__init__(config, frame)
        self._check_limits()
        adi = adi_module or _import_adi()
        uri = config.uri or "ip:192.168.2.1"
        two = max(max(config.rx_channels), max(config.tx_channels)) > 0
        try:
            self._dev = adi.ad9361(uri=uri) if two else adi.Pluto(uri=uri)
        except Exception as err:  # pyadi-iio raises bare Exception and OSError alike
            raise RadioError(f"radio.uri = {uri!r}: cannot open the Pluto ({err}); check the address "
                             "(iio_info -s lists devices) and that the board is powered") from err
        self.uri = uri
        self._reference: NDArray[np.complex64] | None = None
        self._cyclic = False
        self._static: NDArray[np.complex64] | None = None
        self._rx_size = 0
        self._opened_at = time.monotonic()
        try:
            self._configure()
        except Exception:
            self._close()                    # do not keep a half-configured device open
            raise

    # ---- set-up ----------------------------------------------------------------------
    def _check_limits(self) -> None:
        values = {
            "center_freq_hz": self.center_freq_hz,
            "sample_rate_hz": self.sample_rate_hz,
            "rf_bandwidth_hz": self.config.rf_bandwidth_hz or min(max(self.sample_rate_hz, 200e3), 56e6),
            "rx_gain_db": self.config.rx_gain_db,
            "tx_attenuation_db": self.config.tx_attenuation_db,
        }
        for key, value in values.items():
            low, high, unit = AD936X_LIMITS[key]
            if not low <= value <= high:
                raise ConfigError(f"radio.{key} = {value:g}: allowed {low:g} ... {high:g} {unit} on an AD936x; "
                                  f"set radio.{key} within that range", key=f"radio.{key}")
        if abs(self.config.tx_attenuation_db * 4 - round(self.config.tx_attenuation_db * 4)) > 1e-9:
            raise ConfigError(f"radio.tx_attenuation_db = {self.config.tx_attenuation_db}: allowed multiples of "
                              "0.25 dB; round it", key="radio.tx_attenuation_db")
        for key in ("rx_channels", "tx_channels"):
            chans = getattr(self.config, key)
            if max(chans) > 1:
                raise ConfigError(f"radio.{key} = {list(chans)}: allowed [0], [1] or [0, 1] (an AD936x has two "
                                  "channels; a Rev B Pluto has one)", key=f"radio.{key}")

    def _set(self, attr: str, value: Any) -> None:
        try:
            setattr(self._dev, attr, value)
        except Exception as err:
            raise RadioError(f"{self.uri}: setting {attr} = {value!r} failed ({err})") from err

    def _configure(self) -> None:
        cfg = self.config
        bandwidth = cfg.rf_bandwidth_hz or min(max(self.sample_rate_hz, 200e3), 56e6)
        self._set("sample_rate", int(round(self.sample_rate_hz)))
        self._set("rx_rf_bandwidth", int(round(bandwidth)))
        self._set("tx_rf_bandwidth", int(round(bandwidth)))
        self._set("rx_lo", int(round(self.center_freq_hz)))
        self._set("tx_lo", int(round(self.center_freq_hz)))
        for ch in sorted(set(cfg.rx_channels)):
            self._set(f"gain_control_mode_chan{ch}", cfg.gain_mode)
            if cfg.gain_mode == "manual":
                self._set(f"rx_hardwaregain_chan{ch}", float(cfg.rx_gain_db))
        for ch in sorted(set(cfg.tx_channels)):
            self._set(f"tx_hardwaregain_chan{ch}", -float(cfg.tx_attenuation_db))
        self._set("rx_enabled_channels", list(cfg.rx_channels))
        self._set("tx_enabled_channels", list(cfg.tx_channels))
        actual = float(self._dev.sample_rate)
        if abs(actual - self.sample_rate_hz) > 1.0:
            raise ConfigError(f"radio.sample_rate_hz = {self.sample_rate_hz:g}: the Pluto set {actual:g} Hz; use a "
                              "rate the AD936x clock chain reaches (e.g. N_FFT x subcarrier spacing <= 61.44 Msps)",
                              key="radio.sample_rate_hz")

    def settings(self) -> dict[str, Any]:
        """What the device reports now (LOs, rate, bandwidths, gains)."""
        dev = self._dev
        out: dict[str, Any] = {"uri": self.uri, "sample_rate_hz": float(dev.sample_rate),
                               "rx_lo_hz": float(dev.rx_lo), "tx_lo_hz": float(dev.tx_lo),
                               "rx_rf_bandwidth_hz": float(dev.rx_rf_bandwidth)}
        for ch in self.config.rx_channels:
            out[f"gain_control_mode_chan{ch}"] = getattr(dev, f"gain_control_mode_chan{ch}")
            out[f"rx_hardwaregain_chan{ch}_db"] = float(getattr(dev, f"rx_hardwaregain_chan{ch}"))
        for ch in self.config.tx_channels:
            out[f"tx_hardwaregain_chan{ch}_db"] = float(getattr(dev, f"tx_hardwaregain_chan{ch}"))
        return out

    # ---- streaming ---------------------------------------------------------------------
    def _tx(self, samples: NDArray[np.complex64], cyclic: bool) -> None:
        peak = float(max(np.abs(samples.real).max(), np.abs(samples.imag).max()))
        if peak == 0:
            raise RadioError("tx samples are all zero: nothing to transmit")
        scaled = samples.astype(np.complex128) * (_TX_PEAK / peak)
        try:
            self._dev.tx_destroy_buffer()
            self._dev.tx_cyclic_buffer = bool(cyclic)
            self._dev.tx(scaled[0] if scaled.shape[0] == 1 else [row for row in scaled])
        except Exception as err:
            raise RadioError(f"{self.uri}: transmitting failed ({err})") from err
        self._reference = samples[0].copy()
        self._cyclic = cyclic
        self._static = None
        if cyclic and self.config.remove_leakage:
            self._static = self._measure_static()

    def _buffer(self, num_samples: int) -> NDArray[np.complex64]:
        """One RX buffer of ``num_samples`` per channel, scaled to ADC full scale."""
        try:
            if num_samples != self._rx_size:
                self._dev.rx_destroy_buffer()
                self._dev.rx_buffer_size = int(num_samples)
                self._rx_size = num_samples
            data = self._dev.rx()
        except Exception as err:
            raise RadioError(f"{self.uri}: receiving failed ({err})") from err
        rows = data if isinstance(data, list) else [data]
        iq = np.stack([np.asarray(r, dtype=np.complex64) for r in rows]) / np.float32(_RX_FULL_SCALE)
        if iq.shape != (self.num_rx_channels, num_samples):
            raise RadioError(f"{self.uri}: the driver returned shape {iq.shape}, expected "
                             f"({self.num_rx_channels}, {num_samples})")
        return iq

    def _align(self, iq: NDArray[np.complex64]) -> dict[str, Any] | None:
        ref = self._reference
        if ref is None or not self._cyclic or iq.shape[1] < ref.size:
            return None
        timing = find_frame_start(iq, ref, period=ref.size)
        return {"offset": timing.offset, "fractional": timing.fractional, "peak_to_median": timing.peak_to_median}

    def _measure_static(self) -> NDArray[np.complex64]:
        """Mean of aligned buffers over one frame period: the leakage and static clutter."""
        ref = self._reference
        if ref is None:
            raise RadioError("no cyclic transmission to measure leakage against")
        period = ref.size
        total = np.zeros((self.num_rx_channels, period), dtype=np.complex128)
        for _ in range(_LEAKAGE_BUFFERS):
            iq = self._buffer(2 * period)
            align = self._align(iq)
            offset = align["offset"] if align else 0
            total += iq[:, offset:offset + period]
        return (total / _LEAKAGE_BUFFERS).astype(np.complex64)

    def _rx(self, num_samples: int) -> Capture:
        iq = self._buffer(num_samples)
        align = self._align(iq)
        offset = align["offset"] if align else 0
        if self._static is not None:
            period = self._static.shape[1]
            index = (np.arange(num_samples) - offset) % period
            iq = iq - self._static[:, index]
        meta = {"pluto": {"uri": self.uri, "alignment": align, "leakage_removed": self._static is not None,
                          "rx_full_scale": _RX_FULL_SCALE}}
        # Pluto buffers are not contiguous in time: stamp with the host clock at the end of the refill
        # (approximate, to a few ms), not with a sample count
        meta["pluto"]["t0_source"] = "host monotonic clock at buffer return, minus the buffer length"
        t0 = time.monotonic() - self._opened_at - num_samples / self.sample_rate_hz
        return self._capture(iq, t0, offset, meta)

    def _close(self) -> None:
        for method in ("tx_destroy_buffer", "rx_destroy_buffer"):
            try:
                getattr(self._dev, method)()
            except Exception:  # noqa: BLE001  (closing: a failed release must not hide the caller's error)
                pass
        self._dev = None


register_radio("pluto", PlutoRadio)
