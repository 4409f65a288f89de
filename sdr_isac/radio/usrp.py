"""USRP backend through UHD's Python API (``import uhd``).

One :class:`UsrpRadio` drives one UHD device (a B200/B210, an X310, an N310,
...) given by its device arguments (``radio.uri = "type=b200"``).  Every
:meth:`~UsrpRadio.rx` call is one timed transmit-and-receive: the transmit
burst and the receive window are scheduled at the same device time ``t0``, so
an echo's delay in the capture is counted from the start of the transmission
(``frame_offset`` is 0).

Sample scaling: TX samples are scaled so that the largest I or Q value is 0.5, half of the ``fc32``
full scale (±1.0, where the ``sc16`` converter clips), as the Pluto backend leaves half of its DAC's
range; an OFDM frame's peaks (some 10 dB above its RMS) then go out unclipped.  RX samples come as
``fc32``, ADC full scale 1.0.

UHD is imported lazily, inside :class:`UsrpRadio`, and only here; a missing
UHD raises :class:`~sdr_isac.errors.RadioUnavailableError` with the way to
install it.  Tests hand in a fake module (``uhd_module=``) with the same names.

The UHD Python API used here (UHD 4.x, ``host/python/uhd`` and the pybind11
bindings in ``host/lib``):

- ``uhd.usrp.MultiUSRP(args)``, ``set_clock_source``/``set_time_source``,
  ``get_clock_sources(mboard)``/``get_time_sources(mboard)``,
  ``set_rx_rate(rate, chan)``, ``set_rx_freq(uhd.types.TuneRequest(f), chan)``,
  ``set_rx_gain(gain, chan)``, ``set_rx_antenna(ant, chan)``,
  ``set_rx_bandwidth(bw, chan)`` and the ``tx`` twins, with the ranges
  ``get_rx_rates``, ``get_rx_freq_range``, ``get_rx_gain_range``,
  ``get_rx_bandwidth_range`` (meta ranges with ``start()``/``stop()``);
- ``get_rx_stream(uhd.usrp.StreamArgs("fc32", "sc16"))`` with ``.channels``;
  ``rx_streamer.recv(array, metadata, timeout)`` fills ``array`` of shape
  (channels, m) and returns the number of samples; ``get_max_num_samps()``;
- ``uhd.types.StreamCMD(uhd.types.StreamMode.num_done)`` with ``num_samps``,
  ``stream_now`` and ``time_spec``; ``issue_stream_cmd``;
- ``uhd.types.RXMetadata`` (``error_code``, ``out_of_sequence``,
  ``has_time_spec``, ``time_spec``, ``strerror()``) and
  ``uhd.types.RXMetadataErrorCode`` (``none``, ``timeout``, ``late``,
  ``broken_chain``, ``overflow``, ``alignment``, ``bad_packet``);
- ``uhd.types.TXMetadata`` (``start_of_burst``, ``end_of_burst``,
  ``has_time_spec``, ``time_spec``), ``tx_streamer.send(array, metadata,
  timeout)``, ``tx_streamer.recv_async_msg(uhd.types.TXAsyncMetadata(),
  timeout)`` with ``uhd.types.TXMetadataEventCode``;
- ``uhd.types.TimeSpec(secs)`` with ``get_real_secs()`` and ``-``;
  ``set_time_now``, ``set_time_unknown_pps``, ``get_time_now``.
"""

from __future__ import annotations

import math
import threading
import time
import types
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sdr_isac.capture import Capture
from sdr_isac.config import FrameConfig, RadioConfig, UsrpRadioConfig
from sdr_isac.errors import ConfigError, RadioError, RadioOverflowError, RadioUnavailableError
from sdr_isac.radio.base import RadioBase
from sdr_isac.radio.registry import register_radio

__all__ = ["UsrpRadio", "UHD_INSTALL_HINT"]

#: Largest I or Q value of a transmitted burst, of the fc32 full scale 1.0 (see the module docstring).
_TX_PEAK = 0.5

#: What to do when ``import uhd`` fails.
UHD_INSTALL_HINT = ("UHD's Python API is not installed: on Debian/Ubuntu `apt install python3-uhd` "
                    "(works with numpy < 2), or conda install -c conda-forge uhd; then use that Python")

_STAT_KEYS = ("overflows", "out_of_sequence", "late", "timeouts", "rx_errors",
              "underflows", "tx_late", "tx_seq_errors")
_TX_EVENT_NAMES = {"underflows": "underflow (U)", "tx_late": "late burst (L)", "tx_seq_errors": "sequence error (S)"}
_MAX_LEAD_S = 2.0
_MAX_GAPS_REPORTED = 32


def _import_uhd() -> types.ModuleType:
    """Import UHD's Python module, or raise RadioUnavailableError with the install hint."""
    try:
        import uhd
    except ImportError as err:
        raise RadioUnavailableError(f"{UHD_INSTALL_HINT} ({err})") from err
    return uhd


def _gaps(got: NDArray[np.bool_]) -> list[list[int]]:
    """[start, stop) index ranges where ``got`` is False."""
    edges = np.diff(np.concatenate(([1], got.view(np.int8), [1])).astype(np.int8))
    starts = np.flatnonzero(edges == -1)
    stops = np.flatnonzero(edges == 1)
    return [[int(a), int(b)] for a, b in zip(starts, stops)]


class UsrpRadio(RadioBase):
    """A USRP driven through UHD's Python API, transmitting and receiving on a common time base.

    Parameters
    ----------
    config : UsrpRadioConfig
        ``uri`` holds the UHD device arguments (``"type=b200"``,
        ``"addr=192.168.40.2"``, ``""`` for the first device found);
        ``rx_channels``/``tx_channels`` the channel indices (``[0, 1]`` for
        a 2x2 B210 or an X310 with two daughterboards); ``clock_source`` and
        ``time_source`` the references (``internal``, ``external``,
        ``gpsdo``); ``rx_antenna``/``tx_antenna`` the port names (empty:
        the device default); ``timeout_s`` the longest wait for the device.
    frame : FrameConfig or None
        Gives the sample rate and carrier when the config leaves them at 0.
    uhd_module : module or None
        The ``uhd`` module to use; None imports UHD.  Tests pass a fake.

    Raises
    ------
    RadioUnavailableError
        UHD's Python API cannot be imported.
    RadioError
        No device answers to the device arguments, the reference clock does
        not lock, or the device rejects a setting.
    ConfigError
        A setting lies outside what the device supports (frequency, rate,
        gains, bandwidth, channels, antennas, clock or time source).

    Notes
    -----
    ``tx(samples, cyclic=True)`` stores the waveform; each ``rx(n)`` then
    transmits it repeated ``ceil(n / len)`` times as one burst starting at
    ``t0 = now + lead_s`` and receives ``n`` samples from the same ``t0``.
    ``tx(samples, cyclic=False)`` sends one burst, with the next ``rx``
    only.  Without a waveform, ``rx`` only receives.

    Every read is checked (UHD's RX metadata ``error_code``, and the TX
    asynchronous events).  A frame with a gap -- an overflow (``O``), an
    out-of-sequence packet (``D``), a timeout or other receive error part way,
    a TX underflow (``U``), late burst (``L``) or sequence error (``S``) -- is
    **dropped, never spliced or zero-filled**: the RX stream is stopped and
    drained, :attr:`frames_dropped_overflow` grows by one, and TX and RX
    restart together from one timed start (a new ``t0`` in the future for
    both the burst and the stream command).  After :attr:`max_restarts`
    such restarts in a row ``rx`` raises :class:`RadioError`.  A late stream
    command is retried once with twice the lead time (kept for later
    captures).  The faults are counted in :attr:`stats` (cumulative) and in
    ``capture.metadata["usrp"]`` (this capture, with the dropped frames'
    ``t0_s``, reason and gaps under ``dropped``).
    """

    kind = "usrp"
    section = UsrpRadioConfig
    config: UsrpRadioConfig
    #: Seconds between "now" on the device clock and the scheduled start of TX and RX.
    lead_s: float = 0.1
    #: Frames with a gap dropped in a row (each followed by a new timed start) before ``rx`` gives up.
    max_restarts: int = 3

    def __init__(self, config: RadioConfig, frame: FrameConfig | None = None, *,
                 uhd_module: types.ModuleType | None = None):
        super().__init__(config, frame)
        self._check_frame_rate(frame)
        self._uhd = uhd_module if uhd_module is not None else _import_uhd()
        self.stats: dict[str, int] = {key: 0 for key in _STAT_KEYS}
        self._waveform: NDArray[np.complex64] | None = None
        self._cyclic = True
        self._usrp = self._open_device()
        self._configure()
        self.device_info = self._read_back()
        #: ``usrp:<motherboard serial>`` as UHD reports it (what keys the calibration), None where it does not
        self.serial = self._motherboard_serial()
        self._rx_streamer = self._make_streamer("rx", config.rx_channels)
        self._tx_streamer = self._make_streamer("tx", config.tx_channels)
        self._spp = max(1, int(self._rx_streamer.get_max_num_samps()))
        self._tx_spp = max(1, int(self._tx_streamer.get_max_num_samps()))

    # ---- set-up -----------------------------------------------------------------
    def calibration_settings(self) -> dict[str, str]:
        """The antenna ports (TX/RX and RX2 are different RF paths), the master clock rate of the device arguments
        (a B2xx's TX-to-RX delay follows it: 46 to 165 samples) and the RF bandwidth."""
        args = dict(part.split("=", 1) for part in str(self.config.uri or "").split(",") if "=" in part)
        clock = args.get("master_clock_rate", "").strip()
        try:
            clock = f"{float(clock):.6g} Hz"
        except ValueError:
            clock = clock or "auto"
        return {"rx_antenna": self.config.rx_antenna or "default", "tx_antenna": self.config.tx_antenna or "default",
                "master_clock_rate": clock, "rf_bandwidth_hz": f"{self.config.rf_bandwidth_hz:.6g}"}

    def _open_device(self) -> Any:
        args = self.config.uri
        try:
            return self._uhd.usrp.MultiUSRP(args)
        except RuntimeError as err:
            raise RadioError(f"no USRP opened with device args radio.uri = {args!r} (UHD: {err}); check the "
                             "cable or network and the args (e.g. 'type=b200', 'addr=192.168.40.2'), and list "
                             "the devices with uhd_find_devices") from err

    def _uhd_call(self, what: str, func: Any, *args: Any, setting: str = "", fix: str = "") -> Any:
        """Call a UHD setter; a UHD failure becomes RadioError naming what was being set: ``setting`` (the
        ``radio.<field> = value unit`` it came from) and ``fix`` (what to do), where given."""
        try:
            return func(*args)
        except RuntimeError as err:
            source = f" for {setting}" if setting else ""
            advice = fix or (f"set {setting.split(' = ')[0]} to a value this device takes (uhd_usrp_probe lists "
                             "its ranges)" if setting else "check the device (uhd_usrp_probe)")
            raise RadioError(f"USRP {self.config.uri!r}: {what}{source} failed (UHD: {err}); {advice}") from err

    def _check_in_range(self, key: str, value: float, rng: Any, unit: str, what: str) -> None:
        low, high = float(rng.start()), float(rng.stop())
        tol = 1e-9 * max(abs(low), abs(high), 1.0)
        if not (low - tol <= value <= high + tol):
            raise ConfigError(f"radio.{key} = {value:.10g} {unit}: allowed {low:.10g} {unit} ... {high:.10g} {unit} "
                              f"on this USRP ({what}); set radio.{key} within that range", key=f"radio.{key}")

    def _check_channels(self) -> None:
        for direction in ("rx", "tx"):
            key = f"{direction}_channels"
            chans = list(getattr(self.config, key))
            count = int(getattr(self._usrp, f"get_{direction}_num_channels")())
            if max(chans) >= count:
                raise ConfigError(f"radio.{key} = {chans}: allowed channel indices 0 ... {count - 1} (this USRP "
                                  f"has {count} {direction.upper()} channel(s)); set radio.{key} to indices below "
                                  f"{count}",
                                  key=f"radio.{key}")

    def _check_source(self, kind: str) -> None:
        key = f"{kind}_source"
        value = getattr(self.config, key)
        allowed = list(getattr(self._usrp, f"get_{kind}_sources")(0))
        if value not in allowed:
            raise ConfigError(f"radio.{key} = {value!r}: allowed {', '.join(map(repr, allowed))} on this USRP; "
                              f"set radio.{key} to one of them (gpsdo needs a GPSDO fitted)", key=f"radio.{key}")

    def _configure(self) -> None:
        """Check every setting against the device's ranges, then apply it."""
        self._check_channels()
        self._check_source("clock")
        self._check_source("time")
        bandwidths = {(d, ch): self._check_channel(d, ch)
                      for d in ("rx", "tx") for ch in getattr(self.config, f"{d}_channels")}
        usrp = self._usrp
        self._uhd_call("set_clock_source", usrp.set_clock_source, self.config.clock_source,
                       setting=f"radio.clock_source = {self.config.clock_source!r}")
        self._uhd_call("set_time_source", usrp.set_time_source, self.config.time_source,
                       setting=f"radio.time_source = {self.config.time_source!r}")
        self._wait_ref_locked()
        for (d, ch), bandwidth_hz in bandwidths.items():
            self._apply_channel(d, ch, bandwidth_hz)
        zero = self._uhd.types.TimeSpec(0.0)
        if self.config.time_source == "internal":
            self._uhd_call("set_time_now", usrp.set_time_now, zero)
        else:   # 0 at the first PPS edge after this call: nodes sharing a PPS share a time base when they open
            # within the same PPS second (docs/lab-guide.md, "Which second")
            self._uhd_call("set_time_unknown_pps", usrp.set_time_unknown_pps, zero,
                           setting=f"radio.time_source = {self.config.time_source!r}",
                           fix="check the PPS input (cable, level; a GPSDO must have a fix), or set "
                               "radio.time_source = 'internal'")

    def _check_channel(self, d: str, ch: int) -> float:
        """Check rate, frequency, gain, bandwidth and antenna of channel ``ch`` (``d`` = rx or tx).

        Returns the analog bandwidth to set, Hz: ``rf_bandwidth_hz``, or when
        that is 0 the sample rate clipped to the filter's range.
        """
        cfg, usrp, where = self.config, self._usrp, f"{d.upper()} channel {ch}"
        # the sample rate is not checked against get_{d}_rates here: on a B2xx that range follows the master
        # clock, which set_{d}_rate itself moves (16 MHz at start: 30.72 Msps would be refused); the rate the
        # device sets is read back instead (_apply_channel)
        self._check_in_range("center_freq_hz", self.center_freq_hz, getattr(usrp, f"get_{d}_freq_range")(ch),
                             "Hz", f"{where}, get_{d}_freq_range")
        self._check_in_range(f"{d}_gain_db", getattr(cfg, f"{d}_gain_db"), getattr(usrp, f"get_{d}_gain_range")(ch),
                             "dB", f"{where}, get_{d}_gain_range")
        antenna = getattr(cfg, f"{d}_antenna")
        if antenna:
            allowed = list(getattr(usrp, f"get_{d}_antennas")(ch))
            if antenna not in allowed:
                raise ConfigError(f"radio.{d}_antenna = {antenna!r}: allowed {', '.join(map(repr, allowed))} on "
                                  f"{where}; set radio.{d}_antenna to one of them (or '' for the default)",
                                  key=f"radio.{d}_antenna")
        bw_range = getattr(usrp, f"get_{d}_bandwidth_range")(ch)
        if cfg.rf_bandwidth_hz > 0:
            self._check_in_range("rf_bandwidth_hz", cfg.rf_bandwidth_hz, bw_range, "Hz",
                                 f"{where}, get_{d}_bandwidth_range")
            return cfg.rf_bandwidth_hz
        return min(max(self.sample_rate_hz, float(bw_range.start())), float(bw_range.stop()))

    def _apply_channel(self, d: str, ch: int, bandwidth_hz: float) -> None:
        """Set channel ``ch`` (``d`` = rx or tx) and check that the device took the sample rate exactly."""
        usrp, rate = self._usrp, self.sample_rate_hz
        gain = getattr(self.config, f"{d}_gain_db")
        self._uhd_call(f"set_{d}_rate", getattr(usrp, f"set_{d}_rate"), rate, ch,
                       setting=f"radio.sample_rate_hz = {rate:.10g} Hz")
        self._uhd_call(f"set_{d}_freq", getattr(usrp, f"set_{d}_freq"),
                       self._uhd.types.TuneRequest(self.center_freq_hz), ch,
                       setting=f"radio.center_freq_hz = {self.center_freq_hz:.10g} Hz")
        self._uhd_call(f"set_{d}_gain", getattr(usrp, f"set_{d}_gain"), gain, ch,
                       setting=f"radio.{d}_gain_db = {gain:g} dB")
        self._uhd_call(f"set_{d}_bandwidth", getattr(usrp, f"set_{d}_bandwidth"), bandwidth_hz, ch,
                       setting=f"radio.rf_bandwidth_hz = {bandwidth_hz:.10g} Hz")
        antenna = getattr(self.config, f"{d}_antenna")
        if antenna:
            self._uhd_call(f"set_{d}_antenna", getattr(usrp, f"set_{d}_antenna"), antenna, ch,
                           setting=f"radio.{d}_antenna = {antenna!r}")
        actual = float(getattr(usrp, f"get_{d}_rate")(ch))
        if abs(actual - rate) > 1e-6 * rate:
            rates = getattr(usrp, f"get_{d}_rates")(ch)
            raise ConfigError(f"radio.sample_rate_hz = {rate:.10g} Hz: this USRP set {actual:.10g} Hz on "
                              f"{d.upper()} channel {ch} (with its master clock now, rates "
                              f"{float(rates.start()):.10g} Hz ... {float(rates.stop()):.10g} Hz, and only some of "
                              f"them exactly); set radio.sample_rate_hz = {actual:.10g} or another rate the device "
                              "reaches exactly", key="radio.sample_rate_hz")

    def _wait_ref_locked(self) -> None:
        """With an external or GPSDO reference, wait until the ``ref_locked`` sensor (when there is one) says so."""
        if self.config.clock_source == "internal":
            return
        usrp = self._usrp
        if "ref_locked" not in list(usrp.get_mboard_sensor_names(0)):
            return
        deadline = time.monotonic() + self.config.timeout_s
        while not usrp.get_mboard_sensor("ref_locked", 0).to_bool():
            if time.monotonic() > deadline:
                raise RadioError(f"USRP {self.config.uri!r}: the {self.config.clock_source} reference did not "
                                 f"lock within radio.timeout_s = {self.config.timeout_s} s; check the 10 MHz "
                                 "reference (cable, level) or set radio.clock_source = 'internal'")
            time.sleep(0.05)

    def _read_back(self) -> dict[str, Any]:
        """The values the device actually uses (frequencies and gains may be coerced)."""
        usrp, info = self._usrp, {}
        for d in ("rx", "tx"):
            chans = list(getattr(self.config, f"{d}_channels"))
            info[f"{d}_freq_hz"] = [float(getattr(usrp, f"get_{d}_freq")(ch)) for ch in chans]
            info[f"{d}_gain_db"] = [float(getattr(usrp, f"get_{d}_gain")(ch)) for ch in chans]
            info[f"{d}_rate_hz"] = [float(getattr(usrp, f"get_{d}_rate")(ch)) for ch in chans]
        return info

    def _motherboard_serial(self) -> str | None:
        """``usrp:<mboard_serial>`` from ``get_usrp_rx_info`` of the receive channels (the serials joined by
        ``+`` where they sit on several motherboards, in channel order); None where UHD gives none."""
        serials: list[str] = []
        try:
            for channel in self.config.rx_channels:
                info = self._usrp.get_usrp_rx_info(channel)
                serial = str(info.get("mboard_serial", "") or "").strip()
                if not serial:
                    return None                                 # one board that cannot say: no serial at all
                if serial not in serials:
                    serials.append(serial)
        except (AttributeError, RuntimeError, TypeError):      # an old UHD, or a device that cannot say
            return None
        return "usrp:" + "+".join(serials) if serials else None

    def _make_streamer(self, direction: str, channels: tuple[int, ...]) -> Any:
        args = self._uhd.usrp.StreamArgs("fc32", "sc16")
        args.channels = list(channels)
        return self._uhd_call(f"get_{direction}_stream", getattr(self._usrp, f"get_{direction}_stream"), args)

    # ---- the protocol -------------------------------------------------------
    def __enter__(self) -> UsrpRadio:
        return self

    def _tx(self, samples: NDArray[np.complex64], cyclic: bool) -> None:
        peak = float(max(np.abs(samples.real).max(), np.abs(samples.imag).max()))
        self._waveform = samples * np.float32(_TX_PEAK / peak) if peak > 0 else samples.copy()
        self._cyclic = bool(cyclic)

    def _rx(self, num_samples: int) -> Capture:
        counts = dict.fromkeys(_STAT_KEYS, 0)
        errors: list[str] = []
        dropped: list[dict[str, Any]] = []
        cyclic, burst = self._cyclic, self._burst(num_samples)
        attempts = lates = 0
        while True:
            attempts += 1
            timeouts_before = counts["timeouts"]
            iq, got, t0, tx_info = self._timed_start(num_samples, burst, counts, errors)
            if t0 is None:                              # the stream command was late: retry with more lead
                lates += 1
                if lates == 2:
                    self._add_stats(counts)
                    raise RadioError(f"USRP {self.config.uri!r}: the stream command reached the device too late "
                                     f"twice (lead up to {self.lead_s:g} s); the host is too slow or busy: raise "
                                     "UsrpRadio.lead_s or lighten the load")
                self.lead_s = min(2.0 * self.lead_s, _MAX_LEAD_S)
                continue
            if not got.any() and counts["timeouts"] > timeouts_before:    # a dead stream, not a gap
                self._add_stats(counts)
                raise RadioError(f"USRP {self.config.uri!r}: no samples received within radio.timeout_s = "
                                 f"{self.config.timeout_s} s ({'; '.join(errors) or 'timeout'}); check the "
                                 "device, its time source and the connection")
            gap = self._frame_gap(got, tx_info)
            if gap is None:
                break
            self._frames_dropped_overflow += 1          # never spliced: drop it, restart TX and RX at one new t0
            dropped.append({"t0_s": t0, "reason": gap, "gaps": _gaps(got)[:_MAX_GAPS_REPORTED]})
            if len(dropped) > self.max_restarts:
                self._add_stats(counts)
                raise RadioOverflowError(f"USRP {self.config.uri!r}: {len(dropped)} frames in a row had gaps ({gap}; "
                                         f"{'; '.join(errors[-3:]) or 'no error text'}) and were dropped; the host "
                                         "does not keep up with radio.sample_rate_hz = "
                                         f"{self.sample_rate_hz:g} Hz: lower the rate or radio.buffer_size, use USB 3 "
                                         "/ 10 GbE, or lighten the host's load")
        if self._waveform is not None and not self._cyclic:
            self._waveform = None                       # a single burst goes out once
        self._add_stats(counts)
        # only a gap-free frame is returned (a gapped one is dropped and listed in `dropped`): no completeness keys
        meta = {**counts, "errors": errors,
                "attempts": attempts, "frames_dropped_overflow": len(dropped), "dropped": dropped,
                "lead_s": self.lead_s, "t0_s": t0, "device_args": self.config.uri,
                "tx": None if burst is None else {**tx_info, "cyclic": cyclic,
                                                  "num_samples": int(burst.shape[1]), "t0_s": t0},
                "device": dict(self.device_info)}
        return self._capture(iq, t0, 0, {"usrp": meta})

    def _timed_start(self, num_samples: int, burst: NDArray[np.complex64] | None, counts: dict[str, int],
                     errors: list[str]) -> tuple[NDArray[np.complex64], NDArray[np.bool_], float | None,
                                                 dict[str, Any]]:
        """One timed start: the TX burst and the RX stream command both at ``t0 = now + lead_s``.

        Returns the samples, the mask of samples received, ``t0`` (None when the
        stream command was late) and the TX report.
        """
        now = self._uhd_call("get_time_now", self._usrp.get_time_now)
        t0 = float(now.get_real_secs()) + self.lead_s
        sender = self._start_tx(burst, t0) if burst is not None else None
        self._issue_rx(num_samples, t0)
        iq, got, late = self._receive(num_samples, t0, counts, errors)
        tx_info = self._finish_tx(sender, counts, errors)
        return iq, got, None if late else t0, tx_info

    @staticmethod
    def _frame_gap(got: NDArray[np.bool_], tx_info: dict[str, Any]) -> str | None:
        """Why this frame cannot be used whole (samples missing on RX, or a TX burst with a hole), or None."""
        if not got.all():
            return f"{int(got.size - np.count_nonzero(got))} of {got.size} RX samples missing"
        if tx_info.get("events"):
            return "TX " + ", ".join(tx_info["events"])
        if tx_info and not tx_info.get("complete", True):
            return "TX burst incomplete"
        return None

    def _close(self) -> None:
        self._rx_streamer = None
        self._tx_streamer = None
        self._usrp = None

    # ---- one timed transmit-and-receive ------------------------------------------
    def _burst(self, num_samples: int) -> NDArray[np.complex64] | None:
        """The samples to transmit for a capture of ``num_samples``: the waveform repeated, or once."""
        wave = self._waveform
        if wave is None:
            return None
        if not self._cyclic:
            return wave
        reps = math.ceil(num_samples / wave.shape[1])
        return np.ascontiguousarray(np.tile(wave, (1, reps)))

    def _start_tx(self, burst: NDArray[np.complex64], t0: float) -> tuple[threading.Thread | None, list[str]]:
        """Send the first packet of the burst (timed at ``t0``) now and the rest from a thread."""
        uhd, streamer = self._uhd, self._tx_streamer
        md = uhd.types.TXMetadata()
        md.start_of_burst = True
        md.has_time_spec = True
        md.time_spec = uhd.types.TimeSpec(t0)
        md.end_of_burst = burst.shape[1] <= self._tx_spp
        problems: list[str] = []
        first = min(burst.shape[1], self._tx_spp)
        timeout = self.lead_s + self.config.timeout_s
        self._send(streamer, burst[:, :first], md, timeout, problems)
        if first == burst.shape[1]:
            return None, problems
        md2 = uhd.types.TXMetadata()
        md2.start_of_burst = False
        md2.has_time_spec = False
        md2.end_of_burst = False
        thread = threading.Thread(target=self._send_rest, args=(streamer, burst, first, md2, timeout, problems),
                                  name="usrp-tx", daemon=True)
        thread.start()
        return thread, problems

    def _send_rest(self, streamer: Any, burst: NDArray[np.complex64], start: int, md: Any, timeout: float,
                   problems: list[str]) -> None:
        n = burst.shape[1]
        for a in range(start, n, self._tx_spp):
            b = min(a + self._tx_spp, n)
            md.end_of_burst = b == n
            if not self._send(streamer, burst[:, a:b], md, timeout, problems):
                md.end_of_burst = True                  # close the burst so the device does not wait
                self._send(streamer, np.zeros((burst.shape[0], 1), np.complex64), md, timeout, problems)
                return

    @staticmethod
    def _send(streamer: Any, chunk: NDArray[np.complex64], md: Any, timeout: float, problems: list[str]) -> bool:
        """Send all of ``chunk``; False (and a note in ``problems``) when the device stops taking samples."""
        chunk = np.ascontiguousarray(chunk)
        done = 0
        try:
            while done < chunk.shape[1]:
                sent = int(streamer.send(chunk[:, done:] if done else chunk, md, timeout))
                if sent == 0:
                    problems.append(f"TX send timed out after {timeout:g} s")
                    return False
                done += sent
        except RuntimeError as err:
            problems.append(f"TX send failed (UHD: {err})")
            return False
        return True

    def _finish_tx(self, sender: tuple[threading.Thread | None, list[str]] | None, counts: dict[str, int],
                   errors: list[str]) -> dict[str, Any]:
        """Wait for the TX thread and count the device's asynchronous TX events."""
        if sender is None:
            return {}
        thread, problems = sender
        if thread is not None:
            thread.join(self.config.timeout_s + self.lead_s)
            if thread.is_alive():
                raise RadioError(f"USRP {self.config.uri!r}: the transmit burst did not finish within "
                                 f"radio.timeout_s = {self.config.timeout_s} s; check the device and lower the "
                                 "sample rate or the burst length")
        errors.extend(problems)
        info: dict[str, Any] = {"complete": not problems, "acknowledged": False}
        uhd = self._uhd
        codes = uhd.types.TXMetadataEventCode
        names = {codes.underflow: "underflows", codes.underflow_in_packet: "underflows",
                 codes.time_error: "tx_late", codes.seq_error: "tx_seq_errors",
                 codes.seq_error_in_packet: "tx_seq_errors"}
        events: list[str] = []
        for _ in range(64):
            amd = uhd.types.TXAsyncMetadata()
            if not self._tx_streamer.recv_async_msg(amd, 0.0 if info["acknowledged"] else 0.1):
                break
            if amd.event_code == codes.burst_ack:
                info["acknowledged"] = True
            elif amd.event_code in names:
                counts[names[amd.event_code]] += 1
                events.append(_TX_EVENT_NAMES[names[amd.event_code]])
        info["events"] = events
        return info

    def _issue_rx(self, num_samples: int, t0: float) -> None:
        uhd = self._uhd
        cmd = uhd.types.StreamCMD(uhd.types.StreamMode.num_done)
        cmd.num_samps = num_samples
        cmd.stream_now = False
        cmd.time_spec = uhd.types.TimeSpec(t0)
        self._uhd_call("issue_stream_cmd", self._rx_streamer.issue_stream_cmd, cmd)

    def _receive(self, num_samples: int, t0: float, counts: dict[str, int],
                 errors: list[str]) -> tuple[NDArray[np.complex64], NDArray[np.bool_], bool]:
        """Receive the scheduled samples, placing each packet by its time stamp.

        Returns the samples (zeros where none came), the mask of samples that
        came, and whether the stream command was late.
        """
        uhd, streamer = self._uhd, self._rx_streamer
        codes = uhd.types.RXMetadataErrorCode
        fs = self.sample_rate_hz
        iq = np.zeros((self.num_rx_channels, num_samples), np.complex64)
        got = np.zeros(num_samples, bool)
        buf = np.zeros((self.num_rx_channels, self._spp), np.complex64)
        md = uhd.types.RXMetadata()
        t0_spec = uhd.types.TimeSpec(t0)
        timeout = self.lead_s + num_samples / fs + self.config.timeout_s
        pos, faulted = 0, False
        while pos < num_samples:
            try:
                k = int(streamer.recv(buf, md, timeout))
            except RuntimeError as err:
                raise RadioError(f"USRP {self.config.uri!r}: receiving failed (UHD: {err})") from err
            code = md.error_code
            if k:
                start = int(round((md.time_spec - t0_spec).get_real_secs() * fs)) if md.has_time_spec else pos
                lo, hi = max(start, 0), min(start + k, num_samples)
                if hi > lo:
                    iq[:, lo:hi] = buf[:, lo - start:hi - start]
                    got[lo:hi] = True
                pos = max(pos, start + k)
            timeout = self.config.timeout_s
            if code == codes.none:
                continue
            if code == codes.overflow:              # 'O' (or 'D' with out_of_sequence): samples were lost
                counts["out_of_sequence" if md.out_of_sequence else "overflows"] += 1
                errors.append("overflow (D)" if md.out_of_sequence else "overflow (O)")
                faulted = True                      # the frame has a gap: stop here, it will be dropped
                break
            if code == codes.late:
                counts["late"] += 1
                errors.append("late stream command")
                return iq, got, True
            if code == codes.timeout:
                counts["timeouts"] += 1
            else:
                counts["rx_errors"] += 1
            errors.append(str(md.strerror()))
            faulted = True
            break
        if faulted or pos < num_samples:
            self._stop_and_drain(buf)
        return iq, got, False

    def _stop_and_drain(self, buf: NDArray[np.complex64]) -> None:
        """Stop a stream that ended early and drop what is still in flight, so the next capture starts clean."""
        uhd = self._uhd
        cmd = uhd.types.StreamCMD(uhd.types.StreamMode.stop_cont)
        cmd.stream_now = True
        self._uhd_call("issue_stream_cmd", self._rx_streamer.issue_stream_cmd, cmd)
        md = uhd.types.RXMetadata()
        for _ in range(1000):
            if not self._rx_streamer.recv(buf, md, 0.01):
                break

    def _add_stats(self, counts: dict[str, int]) -> None:
        for key, value in counts.items():
            self.stats[key] += value


register_radio("usrp", UsrpRadio)
