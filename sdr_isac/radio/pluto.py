"""ADALM-Pluto backend through pyadi-iio (``import adi``), on libiio.

One :class:`PlutoRadio` drives one Pluto (``adi.Pluto`` for one channel pair,
``adi.ad9361`` for a 2R2T Rev C/D board).  The frame is sent from a cyclic TX
buffer; each :meth:`~PlutoRadio.rx` returns one RX buffer.

Frame alignment (``metadata["pluto"]["alignment"]``, ``source``):

* ``tdd`` -- where the firmware has the TDD engine (``iio-axi-tdd-0``,
  firmware >= 0.39, pyadi-iio's ``adi.tddn``) and ``radio.tdd`` is ``auto``
  or ``on``: the engine gates the TX DMA (cyclic buffer, restarted every TDD
  frame) and the RX DMA (one kernel buffer) from the same frame start, so
  every RX buffer begins at the same point of the transmission.  The
  system delay (converters, filters, cable) is measured once after each
  start, by correlation over several buffers that must agree to the sample,
  and then used for every capture.  A non-cyclic burst stops the engine and
  is aligned by correlation; the next cyclic frame starts it again.  Stopping
  (and closing) gives the two DMA gates back as they were before the first
  start and runs the engine once so that the idle level latches: the RX DMA
  waits for its gate before every transfer, and a gate left low after the
  engine stops would block every later capture until the board is power-cycled;
* ``correlation`` -- without the engine: a Pluto has no common TX/RX
  timestamp, so every capture is aligned by correlating it with the
  transmitted frame; the strongest copy (the TX->RX leakage or cable, i.e.
  zero range) marks the frame start.

The frame start is ``capture.frame_offset``, with the sub-sample part and the
quality in the alignment record.  On request (``radio.remove_leakage``) the
static part of the echo (leakage and clutter) is measured once, as the mean
of several aligned buffers, and subtracted from every later capture.

Fresh buffers: the RX DMA keeps one kernel buffer (libiio's default is 4), so
every capture is sampled during its own :meth:`~PlutoRadio.rx` call -- after
the last :meth:`~PlutoRadio.tx`, and at the time its ``t0_s`` says -- never a
buffer that waited in the queue since before a new waveform or a pause.

Stream integrity is not checked from the ADC core's DMA status register
(``0x80000088``, bit 2 "overflow", what libiio's ``iio_adi_xflow_check``
reads while streaming without pause): the DMA raises that bit on every sample
it is not transferring (HDL ``axi_dmac``: ``overflow <= en & ~ready``), so it
is raised by the wait between two captures (one DMA transfer each) as much as
by a loss, and cannot say which.  A capture is one DMA transfer; a loss inside
one would take a DDR stall longer than the DMA's FIFO, which this backend
cannot detect.

Sample scaling: TX samples are scaled so that the largest I or Q value is
2**14 (half of the 16-bit full scale, as pyadi-iio's examples do, leaving room
for the DAC's 12 bits); RX samples, 12-bit values sign-extended to 16 bits,
are divided by 2**11 so that ADC full scale is 1.0.

``adi``/``iio`` are imported lazily and only here; a missing pyadi-iio raises
:class:`~sdr_isac.errors.RadioUnavailableError` with what to install.
"""

from __future__ import annotations

import logging
import time
import types
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sdr_isac.capture import Capture
from sdr_isac.config import FrameConfig, PlutoRadioConfig, RadioConfig
from sdr_isac.errors import ConfigError, InputError, RadioError, RadioUnavailableError
from sdr_isac.radio.base import RadioBase
from sdr_isac.radio.registry import register_radio
from sdr_isac.waveform.sync import find_frame_start

__all__ = ["PlutoRadio", "PLUTO_INSTALL_HINT", "AD936X_LIMITS"]

_LOG = logging.getLogger(__name__)

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
_TDD_DEVICE = "iio-axi-tdd-0"
_TDD_RX_GATE, _TDD_TX_GATE = "channel1", "channel2"     # Pluto's TDD engine: RX DMA sync, TX DMA sync
#: kernel buffers of the RX DMA: one, so that a refill returns samples taken during it (libiio's default 4 queue
#: up buffers taken before a new waveform or a pause)
_KERNEL_BUFFERS = 1
#: what a TDD gate's settings are read and given back as (see _start_tdd / _release_tdd)
_GATE_SETTINGS = ("on_raw", "off_raw", "polarity", "enable")
_TDD_GATE_RAW = 10                    # gate pulse length, engine clock cycles (as ADI's pluto_tddn example)
_TDD_SETTLE_BUFFERS = 4


def _context_serial(dev: Any) -> str | None:
    """``pluto:<hw_serial>`` from the context attributes of an open pyadi-iio device (Pluto firmware lists
    ``hw_serial`` among them), or None where there is none."""
    ctx = getattr(dev, "_ctx", None)
    try:
        attrs = dict(ctx.attrs) if ctx is not None else {}
    except (AttributeError, OSError, TypeError):     # a stand-in or a binding without context attributes
        return None
    serial = str(attrs.get("hw_serial") or "").strip()
    return f"pluto:{serial}" if serial else None


#: what each pyadi-iio attribute set in _configure comes from: (radio field, unit, what to do when refused)
_FIELDS = {
    "sample_rate": ("radio.sample_rate_hz", "Hz", "set a rate the AD936x reaches (521 kHz ... 61.44 Msps)"),
    "rf_bandwidth": ("radio.rf_bandwidth_hz", "Hz", "set radio.rf_bandwidth_hz within 200 kHz ... 56 MHz (20 MHz on a "
                     "stock AD9363), or 0 for the sample rate"),
    "lo": ("radio.center_freq_hz", "Hz", "set radio.center_freq_hz within this board's range (iio_attr -c ad9361-phy "
           "altvoltage0 frequency_available): a stock AD9363 Pluto tunes 325 MHz ... 3.8 GHz; in AD9364 mode "
           "(on its shell: fw_setenv attr_name compatible; fw_setenv attr_val ad9364; reboot) 70 MHz ... 6 GHz"),
    "rx_hardwaregain": ("radio.rx_gain_db", "dB", "set radio.rx_gain_db within this LO's range (iio_attr -c "
                        "ad9361-phy voltage0 hardwaregain_available; the top falls above 4 GHz)"),
    "tx_hardwaregain": ("radio.tx_attenuation_db", "dB", "set radio.tx_attenuation_db within 0 ... 89.75 dB in "
                        "0.25 dB steps"),
    "gain_control_mode": ("radio.gain_mode", "", "set radio.gain_mode to manual, slow_attack or fast_attack"),
}


def _refusal(attr: str, value: Any) -> tuple[str, str, str]:
    """(radio field, value with its unit, what to do) for a pyadi-iio attribute the device refused."""
    for key, (field, unit, advice) in _FIELDS.items():
        if key in attr:
            shown = -value if key == "tx_hardwaregain" else value          # attenuation = -hardware gain
            return field, f"{shown:.10g} {unit}" if unit else repr(shown), advice
    return attr, repr(value), "check the value against the board (iio_info lists its attributes)"


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
        self._check_frame_rate(frame)
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
        #: ``pluto:<hw_serial>`` from the IIO context (what keys its calibration: two boards at the default
        #: address ip:192.168.2.1 are two devices), None where the firmware does not report one
        self.serial = _context_serial(self._dev)
        self._reference: NDArray[np.complex64] | None = None
        self._cyclic = False
        self._static: NDArray[np.complex64] | None = None
        self._rx_size = 0
        self._opened_at = time.monotonic()
        self._tdd: Any = None
        self._tdd_running = False                  # the engine gates the DMAs (a cyclic frame started it)
        self._tdd_alignment: dict[str, Any] | None = None
        self._tdd_frame_samples = 0
        self._tdd_gates_before: dict[str, dict[str, Any]] | None = None   # the gates as found, given back
        try:
            self._configure()
            self._tdd = self._open_tdd(adi, uri)
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
            field, shown, advice = _refusal(attr, value)
            raise RadioError(f"{self.uri}: the Pluto refused {field} = {shown} (pyadi-iio {attr}: {err}); "
                             f"{advice}") from err

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
        try:
            self._dev._rxadc.set_kernel_buffers_count(_KERNEL_BUFFERS)     # fresh buffers (module docstring)
        except Exception as err:
            raise RadioError(f"{self.uri}: setting the RX DMA to {_KERNEL_BUFFERS} kernel buffer failed ({err}); "
                             "pyadi-iio >= 0.0.16 with pylibiio 0.25 has set_kernel_buffers_count") from err
        #: the analog filters' bandwidths the device set, Hz: the driver clamps without an error where the chip
        #: cannot (a stock AD9363 Pluto: at most 20 MHz), so they are read back and a narrower one is reported
        self.rf_bandwidth_hz = {d: float(getattr(self._dev, f"{d}_rf_bandwidth")) for d in ("rx", "tx")}
        for d, got in self.rf_bandwidth_hz.items():
            if abs(got - bandwidth) > 0.01 * bandwidth:
                _LOG.warning("%s: %s RF bandwidth %.6g Hz asked (radio.rf_bandwidth_hz, or the sample rate), the Pluto "
                             "set %.6g Hz: the frame's outer subcarriers are attenuated; lower the sample rate or "
                             "num_rb (a stock AD9363 Pluto filters at most 20 MHz)", self.uri, d.upper(), bandwidth,
                             got)
        actual = float(self._dev.sample_rate)
        if abs(actual - self.sample_rate_hz) > 1.0:
            raise ConfigError(f"radio.sample_rate_hz = {self.sample_rate_hz:g}: the Pluto set {actual:g} Hz; use a "
                              "rate the AD936x clock chain reaches (e.g. N_FFT x subcarrier spacing <= 61.44 Msps)",
                              key="radio.sample_rate_hz")

    def calibration_settings(self) -> dict[str, str]:
        """The AGC mode (under an AGC the gains a calibration measured do not hold), the frame alignment (the TDD
        engine's frame start or the correlation's) and the RF bandwidths read back (the filters' group delay)."""
        bw = self.rf_bandwidth_hz
        return {"gain_mode": str(self.config.gain_mode), "frame_alignment": "tdd" if self._tdd is not None else
                "correlation", "rf_bandwidth_hz": f"rx {bw['rx']:.6g}, tx {bw['tx']:.6g}"}

    def _open_tdd(self, adi: types.ModuleType, uri: str) -> Any:
        """The TDD engine (``adi.tddn``) when ``radio.tdd`` allows it and the device has one, else None."""
        mode = self.config.tdd
        if mode == "off":
            return None
        ctx = getattr(self._dev, "_ctx", None)
        present = ctx is not None and ctx.find_device(_TDD_DEVICE) is not None and hasattr(adi, "tddn")
        if not present:
            if mode == "on":
                raise ConfigError(f"radio.tdd = 'on': the Pluto at {uri} has no TDD engine ({_TDD_DEVICE!r}; "
                                  "Pluto firmware >= 0.39 with pyadi-iio >= 0.0.18 has it); update the firmware "
                                  "(and pyadi-iio), or set radio.tdd = 'auto' to align frames by correlation with "
                                  "the leakage", key="radio.tdd")
            return None
        try:
            return adi.tddn(uri)
        except Exception as err:  # pyadi-iio raises bare Exception and OSError alike
            raise RadioError(f"{uri}: opening the TDD engine {_TDD_DEVICE!r} failed ({err}); set radio.tdd = "
                             "'off' to align by correlation instead") from err

    @property
    def sync(self) -> str:
        """How captures are aligned to the transmission: ``tdd`` (the TDD engine) or ``correlation``."""
        return "tdd" if self._tdd_alignment is not None else "correlation"

    def _tdd_gates(self) -> dict[str, Any]:
        """This engine's channels by name (pyadi-iio's ``tddn.channel`` is a list shared by all instances)."""
        ctrl = self._tdd._ctrl
        return {ch.name: ch for ch in self._tdd.channel if ch._ctrl is ctrl}

    def _start_tdd(self, frame_samples: int) -> None:
        """Program the engine for frames of ``frame_samples``, both DMAs gated from the frame start."""
        tdd, fs = self._tdd, self.sample_rate_hz
        gates = self._tdd_gates()
        try:
            if self._tdd_gates_before is None:         # as found at the first start: what _release_tdd gives back
                self._tdd_gates_before = {name: {a: getattr(gates[name], a) for a in _GATE_SETTINGS}
                                          for name in (_TDD_RX_GATE, _TDD_TX_GATE)}
            tdd.enable = False
            tdd.startup_delay_ms = 0
            tdd.frame_length_ms = frame_samples / fs * 1e3
            tdd.burst_count = 0                       # repeat until disabled
            for name in (_TDD_RX_GATE, _TDD_TX_GATE):
                gate = gates[name]
                gate.on_raw = 0
                gate.off_raw = _TDD_GATE_RAW
                gate.polarity = 0
                gate.enable = 1
            tdd.sync_external = True
            tdd.enable = True
            self._tdd_running = True
            self._dev.rx_destroy_buffer()
            self._rx_size = 0
        except Exception as err:
            raise RadioError(f"{self.uri}: programming the TDD engine failed ({err}); set radio.tdd = 'off' to "
                             "align by correlation instead") from err

    def _release_tdd(self) -> None:
        """The engine off and the two DMA gates as :meth:`_start_tdd` found them, latched.

        A gate's output while the engine is off is the level latched while it last ran; the RX DMA waits for
        its gate before every transfer.  So the gates' settings are given back with the engine off, the engine
        runs once (enable, disable: as ADI's ``pluto_tddn`` example ends) so that their idle level latches,
        and the DMAs run free again.
        """
        tdd = self._tdd
        tdd.enable = False
        if self._tdd_gates_before is not None:
            gates = self._tdd_gates()
            for name, found in self._tdd_gates_before.items():
                for attr in _GATE_SETTINGS:
                    setattr(gates[name], attr, found[attr])
            tdd.enable = True
            tdd.enable = False
        self._tdd_running = False

    def _stop_tdd(self) -> None:
        """Undo :meth:`_start_tdd` (:meth:`_release_tdd`), so that a non-cyclic burst is not gated."""
        try:
            self._release_tdd()
            self._dev.rx_destroy_buffer()
            self._rx_size = 0
        except Exception as err:
            raise RadioError(f"{self.uri}: stopping the TDD engine for a non-cyclic transmission failed ({err}); "
                             "set radio.tdd = 'off' where the radio sends bursts") from err

    def _measure_tdd_delay(self) -> dict[str, Any] | None:
        """The system delay under TDD: the frame start of several buffers, which must agree to the sample."""
        ref = self._reference
        if ref is None:
            return None
        timings = [find_frame_start(self._buffer(self._tdd_frame_samples), ref, period=ref.size)
                   for _ in range(_TDD_SETTLE_BUFFERS)]
        offsets = {t.offset for t in timings}
        if len(offsets) != 1:
            return None                               # not aligned by the engine: correlate per capture
        return {"source": "tdd", "offset": timings[0].offset,
                "fractional": float(np.mean([t.fractional for t in timings])),
                "peak_to_median": float(min(t.peak_to_median for t in timings)),
                "buffers_measured": len(timings), "frame_samples": self._tdd_frame_samples}

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
        use_tdd = self._tdd is not None and cyclic
        self._tdd_alignment = None
        if self._tdd_running and not use_tdd:
            self._stop_tdd()      # a burst after a cyclic frame: ungated, RX free-running as without the engine
        if use_tdd:       # the TX buffer fills one TDD frame: whole frames, at least one capture long
            period = samples.shape[1]
            reps = -(-self.capture_length(period) // period)
            self._tdd_frame_samples = reps * period
            scaled = np.tile(scaled, (1, reps))
            self._start_tdd(self._tdd_frame_samples)
        try:
            self._dev.tx_destroy_buffer()
            self._dev.tx_cyclic_buffer = bool(cyclic)
            self._dev.tx(scaled[0] if scaled.shape[0] == 1 else [row for row in scaled])
            if use_tdd:
                self._tdd.sync_soft = 1                # start: TX and RX gated from the same frame start
        except Exception as err:
            raise RadioError(f"{self.uri}: transmitting failed ({err})") from err
        self._reference = samples[0].copy()
        self._cyclic = cyclic
        self._static = None
        if use_tdd:
            self._tdd_alignment = self._measure_tdd_delay()
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
        if self._tdd_alignment is not None:
            return dict(self._tdd_alignment)
        ref = self._reference
        if ref is None or not self._cyclic or iq.shape[1] < ref.size:
            return None
        timing = find_frame_start(iq, ref, period=ref.size)
        return {"source": "correlation", "offset": timing.offset, "fractional": timing.fractional,
                "peak_to_median": timing.peak_to_median}

    def _measure_static(self) -> NDArray[np.complex64]:
        """Mean of aligned buffers over one frame period: the leakage and static clutter."""
        ref = self._reference
        if ref is None:
            raise RadioError("no cyclic transmission to measure leakage against")
        period = ref.size
        total = np.zeros((self.num_rx_channels, period), dtype=np.complex128)
        for _ in range(_LEAKAGE_BUFFERS):
            iq = self._buffer(self._tdd_frame_samples if self._tdd_alignment else 2 * period)
            align = self._align(iq)
            offset = align["offset"] if align else 0
            total += iq[:, offset:offset + period]
        return (total / _LEAKAGE_BUFFERS).astype(np.complex64)

    def _rx(self, num_samples: int) -> Capture:
        if self._tdd_alignment is not None and num_samples > self._tdd_frame_samples:
            raise InputError(f"num_samples = {num_samples}: with the TDD engine a capture is at most one TDD "
                             f"frame, {self._tdd_frame_samples} samples (radio.buffer_size or two frames); ask "
                             "for fewer samples or raise radio.buffer_size before tx()")
        iq = self._buffer(num_samples)
        align = self._align(iq)
        offset = align["offset"] if align else 0
        if self._static is not None:
            period = self._static.shape[1]
            index = (np.arange(num_samples) - offset) % period
            iq = iq - self._static[:, index]
        meta = {"pluto": {"uri": self.uri, "alignment": align, "leakage_removed": self._static is not None,
                          "rx_full_scale": _RX_FULL_SCALE, "sync": self.sync,
                          "tdd_engine": self._tdd is not None, "kernel_buffers": _KERNEL_BUFFERS,
                          "rf_bandwidth_hz": self.rf_bandwidth_hz}}
        # Pluto buffers are not contiguous in time: stamp with the host clock at the end of the refill
        # (approximate, to a few ms), not with a sample count
        meta["pluto"]["t0_source"] = "host monotonic clock at buffer return, minus the buffer length"
        t0 = time.monotonic() - self._opened_at - num_samples / self.sample_rate_hz
        return self._capture(iq, t0, offset, meta)

    def _close(self) -> None:
        if self._tdd is not None:
            try:
                self._release_tdd()          # the gates as found: the next session's RX DMA is not blocked
            except Exception:  # noqa: BLE001  (closing: a failed release must not hide the caller's error)
                pass
            self._tdd = None
        for method in ("tx_destroy_buffer", "rx_destroy_buffer"):
            try:
                getattr(self._dev, method)()
            except Exception:  # noqa: BLE001  (closing: a failed release must not hide the caller's error)
                pass
        self._dev = None


register_radio("pluto", PlutoRadio)
