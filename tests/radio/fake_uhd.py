"""A fake ``uhd`` module: the part of UHD's Python API that ``sdr_isac.radio.usrp`` uses.

:func:`make_fake_uhd` builds a module object with ``uhd.usrp.MultiUSRP``,
``uhd.usrp.StreamArgs`` and ``uhd.types.{TuneRequest, TimeSpec, StreamCMD,
StreamMode, RXMetadata, RXMetadataErrorCode, TXMetadata, TXAsyncMetadata,
TXMetadataEventCode}`` with UHD 4.x's names and semantics:

- the device has a clock (``get_time_now``) that advances with the samples it
  streams and with the time spent waiting in ``recv``;
- ``tx_streamer.send`` records bursts (start/end of burst, time spec); a burst
  timed in the past is dropped and reported as ``time_error`` ('L'), every
  finished burst is acknowledged (``burst_ack``) through ``recv_async_msg``;
- ``rx_streamer.recv`` serves ``num_done`` stream commands in packets of at
  most ``max_num_samps`` samples, each stamped with the time of its first
  sample; a command timed in the past yields ``late``; nothing to deliver
  yields ``timeout``;
- what is received comes from ``echo(tx, rx_start_time_s, tx_start_time_s,
  num_samples, sample_rate_hz)``, called once per stream command with the
  most recent transmitted burst (shape (num_tx_channels, n), or None);
- faults can be injected: overflow ('O', samples dropped) at a chosen
  ``recv`` call or at a chosen sample of the stream, out-of-sequence ('D'),
  late stream command, a stream that stalls (timeout), TX underflow.

The state of the fake is reachable as ``uhd.fake`` (a :class:`FakeState`):
the devices made, with every setting they received, their bursts and their
stream commands.
"""

from __future__ import annotations

import enum
import math
import threading
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Echo = Callable[[np.ndarray | None, float, float | None, int, float], np.ndarray]

#: B210-like ranges: (start, stop, step) per quantity; a step > 0 coerces to a multiple of it.
B210_RANGES: dict[str, tuple[float, float, float]] = {
    "rate": (62.5e3, 61.44e6, 0.0),
    "freq": (70e6, 6e9, 0.0),
    "rx_gain": (0.0, 76.0, 1.0),
    "tx_gain": (0.0, 89.75, 0.25),
    "bandwidth": (200e3, 56e6, 0.0),
}

_ALL = 2**64 - 1    # UHD's ALL_CHANS / ALL_MBOARDS
_MAX_DECIMATION = 512


def delayed_echo(delay_samples: int, gain: complex = 0.5, channel_gains: Sequence[complex] = (1.0,)) -> Echo:
    """A channel that returns ``gain`` times the sum of the TX channels, ``delay_samples`` after transmission.

    Receive channel ``r`` gets ``channel_gains[r]`` times that echo.  The
    delay is counted from the TX burst's start time, whatever the RX start.
    """
    rows = np.asarray(channel_gains, np.complex64)[:, np.newaxis]

    def echo(tx: np.ndarray | None, rx_start_time_s: float, tx_start_time_s: float | None,
             num_samples: int, sample_rate_hz: float) -> np.ndarray:
        out = np.zeros(num_samples, np.complex64)
        if tx is not None and tx_start_time_s is not None:
            x = tx.sum(axis=0)
            offset = round((rx_start_time_s - tx_start_time_s) * sample_rate_hz)
            idx = offset + np.arange(num_samples) - delay_samples
            ok = (idx >= 0) & (idx < x.size)
            out[ok] = gain * x[idx[ok]]
        return (rows * out).astype(np.complex64)

    return echo


# ---- types -------------------------------------------------------------------------------
class TimeSpec:
    """uhd.types.TimeSpec: a device time in seconds."""

    def __init__(self, secs: float = 0.0):
        self._secs = float(secs)

    def get_real_secs(self) -> float:
        return self._secs

    def get_full_secs(self) -> int:
        return int(math.floor(self._secs))

    def get_frac_secs(self) -> float:
        return self._secs - math.floor(self._secs)

    def __add__(self, other: TimeSpec | float) -> TimeSpec:
        return TimeSpec(self._secs + _secs(other))

    def __sub__(self, other: TimeSpec | float) -> TimeSpec:
        return TimeSpec(self._secs - _secs(other))

    def __lt__(self, other: TimeSpec) -> bool:
        return self._secs < other._secs

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimeSpec) and self._secs == other._secs

    def __hash__(self) -> int:
        return hash(self._secs)

    def __repr__(self) -> str:
        return f"TimeSpec({self._secs!r})"


def _secs(value: TimeSpec | float) -> float:
    return value.get_real_secs() if isinstance(value, TimeSpec) else float(value)


class StreamMode(enum.Enum):
    start_cont = "start_cont"
    stop_cont = "stop_cont"
    num_done = "num_done"
    num_more = "num_more"


class StreamCMD:
    """uhd.types.StreamCMD."""

    def __init__(self, mode: StreamMode):
        self.mode = mode
        self.num_samps = 0
        self.stream_now = True
        self.time_spec = TimeSpec(0.0)


class RXMetadataErrorCode(enum.Enum):
    none = 0x0
    timeout = 0x1
    late = 0x2
    broken_chain = 0x4
    overflow = 0x8
    alignment = 0xC
    bad_packet = 0xF


class RXMetadata:
    """uhd.types.RXMetadata (the fields are read-only in UHD; the fake streamer sets them)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.has_time_spec = False
        self.time_spec = TimeSpec(0.0)
        self.more_fragments = False
        self.start_of_burst = False
        self.end_of_burst = False
        self.error_code = RXMetadataErrorCode.none
        self.out_of_sequence = False

    def strerror(self) -> str:
        return f"ERROR_CODE_{self.error_code.name.upper()}"


class TXMetadata:
    """uhd.types.TXMetadata."""

    def __init__(self) -> None:
        self.has_time_spec = False
        self.time_spec = TimeSpec(0.0)
        self.start_of_burst = False
        self.end_of_burst = False


class TXMetadataEventCode(enum.Enum):
    burst_ack = 0x1
    underflow = 0x2
    seq_error = 0x4
    time_error = 0x8
    underflow_in_packet = 0x10
    seq_error_in_packet = 0x20
    user_payload = 0x40


class TXAsyncMetadata:
    """uhd.types.TXAsyncMetadata."""

    def __init__(self) -> None:
        self.channel = 0
        self.has_time_spec = False
        self.time_spec = TimeSpec(0.0)
        self.event_code = TXMetadataEventCode.burst_ack


class TuneRequest:
    """uhd.types.TuneRequest."""

    def __init__(self, target_freq: float, lo_off: float = 0.0):
        self.target_freq = float(target_freq)
        self.lo_off = float(lo_off)


class MetaRange:
    """uhd.types.MetaRange: start, stop, step and clip."""

    def __init__(self, start: float, stop: float, step: float = 0.0):
        self._start, self._stop, self._step = float(start), float(stop), float(step)

    def start(self) -> float:
        return self._start

    def stop(self) -> float:
        return self._stop

    def step(self) -> float:
        return self._step

    def clip(self, value: float, clip_step: bool = False) -> float:
        v = min(max(float(value), self._start), self._stop)
        if clip_step and self._step > 0:
            v = self._start + round((v - self._start) / self._step) * self._step
        return v


class SensorValue:
    def __init__(self, name: str, value: bool):
        self.name, self.value = name, value

    def to_bool(self) -> bool:
        return bool(self.value)


class StreamArgs:
    """uhd.usrp.StreamArgs."""

    def __init__(self, cpu_format: str, otw_format: str):
        self.cpu_format = cpu_format
        self.otw_format = otw_format
        self.args = ""
        self.channels: list[int] = []


# ---- the device --------------------------------------------------------------------------
@dataclass
class Burst:
    """One transmitted burst: its start time and its samples, shape (num_tx_channels, n)."""

    time_s: float
    samples: np.ndarray


@dataclass
class _RxCommand:
    time_s: float
    num_samps: int
    late: bool
    pos: int = 0
    response: np.ndarray | None = None
    recv_calls: int = 0
    base: int = 0          # samples the device had streamed (delivered or lost) before this command


@dataclass
class FakeState:
    """What the fake UHD saw: devices opened, and the faults to inject."""

    echo: Echo | None
    ranges: dict[str, tuple[float, float, float]]
    num_channels: int
    max_num_samps: int
    antennas: dict[str, tuple[str, ...]]
    clock_sources: tuple[str, ...]
    time_sources: tuple[str, ...]
    ref_locked: bool
    fail_open: Exception | None
    inject_overflow_at: set[int]
    overflow_drop_samples: int | None
    inject_out_of_sequence_at: set[int]
    inject_late_at: set[int]
    stall_after: int | None
    inject_underflow: bool
    overflow_at_samples: set[int] = field(default_factory=set)
    overflows_fired: list[tuple[int, float]] = field(default_factory=list)
    mboard_serial: str = ""
    #: a B2xx's automatic master clock (Hz; None: the rates of ``ranges`` whatever was set)
    master_clock_hz: float | None = None
    tx_clipped: int = 0               # I or Q values the sc16 conversion clipped to +-1
    devices: list[FakeMultiUSRP] = field(default_factory=list)

    @property
    def device(self) -> FakeMultiUSRP:
        """The last device opened."""
        return self.devices[-1]


class FakeMultiUSRP:
    """uhd.usrp.MultiUSRP: records every setting, keeps a clock, connects TX to RX through ``echo``."""

    def __init__(self, state: FakeState, args: str = ""):
        if state.fail_open is not None:
            raise state.fail_open
        self.state = state
        self.args = args
        self.settings: dict[tuple[str, int], Any] = {}
        self.clock_source = "internal"
        self.time_source = "internal"
        self.time_set: tuple[str, float] | None = None
        self.clock = 0.0
        self.cond = threading.Condition()
        self.bursts: list[Burst] = []
        self.open_burst: list[Any] | None = None       # [time_s, [chunks], dropped]
        self.async_msgs: list[TXAsyncMetadata] = []
        self.stream_cmds: list[StreamCMD] = []
        self.rx_cmd: _RxCommand | None = None
        self.recv_calls = 0
        self.rx_streamed = 0          # RX samples streamed over the device's life (delivered or lost)
        state.devices.append(self)

    # -- ranges and settings
    def _range(self, name: str) -> MetaRange:
        return MetaRange(*self.state.ranges[name])

    def _chan(self, chan: int) -> int:
        if not 0 <= chan < self.state.num_channels:
            raise RuntimeError(f"fake uhd: channel {chan} out of range")
        return chan

    def get_rx_num_channels(self) -> int:
        return self.state.num_channels

    def get_tx_num_channels(self) -> int:
        return self.state.num_channels

    def get_rx_rates(self, chan: int = 0) -> MetaRange:
        master = self.state.master_clock_hz
        if master is None:
            return self._range("rate")
        return MetaRange(master / _MAX_DECIMATION, master)      # a B2xx: what its DSP reaches from this clock

    def _coerce_rate(self, rate: float) -> float:
        """A B2xx's set_rx_rate: the master clock moves to the largest power-of-two multiple of the rate that
        the AD9361 allows, then the rate is the clock over a whole decimation."""
        top = self._range("rate").stop()
        if self.state.master_clock_hz is not None:
            master = min(float(rate), top)
            while 2 * master <= top:
                master *= 2
            self.state.master_clock_hz = master
            rate = master / max(1, round(master / float(rate)))
        return self._range("rate").clip(rate, True)

    get_tx_rates = get_rx_rates

    def get_rx_freq_range(self, chan: int = 0) -> MetaRange:
        return self._range("freq")

    get_tx_freq_range = get_rx_freq_range

    def get_rx_gain_range(self, chan: int = 0) -> MetaRange:
        return self._range("rx_gain")

    def get_tx_gain_range(self, chan: int = 0) -> MetaRange:
        return self._range("tx_gain")

    def get_rx_bandwidth_range(self, chan: int = 0) -> MetaRange:
        return self._range("bandwidth")

    get_tx_bandwidth_range = get_rx_bandwidth_range

    def get_rx_antennas(self, chan: int = 0) -> list[str]:
        return list(self.state.antennas["rx"])

    def get_tx_antennas(self, chan: int = 0) -> list[str]:
        return list(self.state.antennas["tx"])

    def _set(self, key: str, chan: int, value: Any) -> None:
        self.settings[(key, self._chan(chan))] = value

    def _get(self, key: str, chan: int) -> Any:
        return self.settings[(key, chan)]

    def set_rx_rate(self, rate: float, chan: int = _ALL) -> None:
        self._set("rx_rate", chan, self._coerce_rate(rate))

    def set_tx_rate(self, rate: float, chan: int = _ALL) -> None:
        self._set("tx_rate", chan, self._coerce_rate(rate))

    def get_rx_rate(self, chan: int = 0) -> float:
        return self._get("rx_rate", chan)

    def get_tx_rate(self, chan: int = 0) -> float:
        return self._get("tx_rate", chan)

    def set_rx_freq(self, tune_request: TuneRequest, chan: int = 0) -> types.SimpleNamespace:
        self._set("rx_freq", chan, self._range("freq").clip(tune_request.target_freq))
        return types.SimpleNamespace(actual_rf_freq=self._get("rx_freq", chan))

    def set_tx_freq(self, tune_request: TuneRequest, chan: int = 0) -> types.SimpleNamespace:
        self._set("tx_freq", chan, self._range("freq").clip(tune_request.target_freq))
        return types.SimpleNamespace(actual_rf_freq=self._get("tx_freq", chan))

    def get_rx_freq(self, chan: int = 0) -> float:
        return self._get("rx_freq", chan)

    def get_tx_freq(self, chan: int = 0) -> float:
        return self._get("tx_freq", chan)

    def set_rx_gain(self, gain: float, chan: int = 0) -> None:
        self._set("rx_gain", chan, self._range("rx_gain").clip(gain, True))

    def set_tx_gain(self, gain: float, chan: int = 0) -> None:
        self._set("tx_gain", chan, self._range("tx_gain").clip(gain, True))

    def get_rx_gain(self, chan: int = 0) -> float:
        return self._get("rx_gain", chan)

    def get_tx_gain(self, chan: int = 0) -> float:
        return self._get("tx_gain", chan)

    def set_rx_bandwidth(self, bandwidth: float, chan: int = 0) -> None:
        self._set("rx_bandwidth", chan, self._range("bandwidth").clip(bandwidth))

    def set_tx_bandwidth(self, bandwidth: float, chan: int = 0) -> None:
        self._set("tx_bandwidth", chan, self._range("bandwidth").clip(bandwidth))

    def set_rx_antenna(self, ant: str, chan: int = 0) -> None:
        if ant not in self.state.antennas["rx"]:
            raise RuntimeError(f"fake uhd: invalid RX antenna {ant!r}")
        self._set("rx_antenna", chan, ant)

    def set_tx_antenna(self, ant: str, chan: int = 0) -> None:
        if ant not in self.state.antennas["tx"]:
            raise RuntimeError(f"fake uhd: invalid TX antenna {ant!r}")
        self._set("tx_antenna", chan, ant)

    def get_clock_sources(self, mboard: int) -> list[str]:
        return list(self.state.clock_sources)

    def get_time_sources(self, mboard: int) -> list[str]:
        return list(self.state.time_sources)

    def set_clock_source(self, source: str, mboard: int = _ALL) -> None:
        if source not in self.state.clock_sources:
            raise RuntimeError(f"fake uhd: invalid clock source {source!r}")
        self.clock_source = source

    def set_time_source(self, source: str, mboard: int = _ALL) -> None:
        if source not in self.state.time_sources:
            raise RuntimeError(f"fake uhd: invalid time source {source!r}")
        self.time_source = source

    def get_usrp_rx_info(self, chan: int = 0) -> dict[str, str]:
        """What UHD's ``get_usrp_rx_info`` gives for a B210 (a dict of strings; no serial key if none)."""
        self._chan(chan)
        info = {"mboard_id": "B210", "mboard_name": "B210", "rx_id": "FE-RX2", "rx_antenna": "RX2"}
        if self.state.mboard_serial:
            info["mboard_serial"] = self.state.mboard_serial
        return info

    def get_mboard_sensor_names(self, mboard: int = 0) -> list[str]:
        return ["ref_locked"]

    def get_mboard_sensor(self, name: str, mboard: int = 0) -> SensorValue:
        if name != "ref_locked":
            raise RuntimeError(f"fake uhd: no sensor {name!r}")
        return SensorValue(name, self.clock_source == "internal" or self.state.ref_locked)

    # -- time
    def get_time_now(self, mboard: int = 0) -> TimeSpec:
        with self.cond:
            return TimeSpec(self.clock)

    def set_time_now(self, time_spec: TimeSpec, mboard: int = _ALL) -> None:
        with self.cond:
            self.clock = time_spec.get_real_secs()
            self.time_set = ("now", self.clock)

    def set_time_unknown_pps(self, time_spec: TimeSpec) -> None:
        with self.cond:
            self.clock = time_spec.get_real_secs()
            self.time_set = ("unknown_pps", self.clock)

    # -- streams
    def _stream_channels(self, args: StreamArgs) -> list[int]:
        if args.cpu_format != "fc32":
            raise RuntimeError(f"fake uhd: cpu format {args.cpu_format!r} not supported (only fc32)")
        chans = list(args.channels) or [0]
        for c in chans:
            self._chan(c)
        return chans

    def get_rx_stream(self, args: StreamArgs) -> FakeRxStreamer:
        return FakeRxStreamer(self, self._stream_channels(args))

    def get_tx_stream(self, args: StreamArgs) -> FakeTxStreamer:
        return FakeTxStreamer(self, self._stream_channels(args))


class FakeTxStreamer:
    """uhd.usrp.TXStreamer: ``send`` records bursts; ``recv_async_msg`` reports their events."""

    def __init__(self, device: FakeMultiUSRP, channels: list[int]):
        self.device, self.channels = device, channels

    def get_num_channels(self) -> int:
        return len(self.channels)

    def get_max_num_samps(self) -> int:
        return self.device.state.max_num_samps

    def send(self, np_array: np.ndarray, metadata: TXMetadata, timeout: float = 0.1) -> int:
        x = np.asarray(np_array)
        if x.ndim == 1:
            x = x[np.newaxis]
        if x.shape[0] < len(self.channels) or x.dtype != np.complex64:
            raise RuntimeError(f"fake uhd: TX array {x.shape} {x.dtype} for {len(self.channels)} channel(s)")
        dev = self.device
        # fc32 -> sc16 on the way to the device: I and Q beyond full scale (+-1.0) are clipped
        over = int(np.count_nonzero(np.abs(x.real) > 1.0) + np.count_nonzero(np.abs(x.imag) > 1.0))
        if over:
            dev.state.tx_clipped += over
            x = (np.clip(x.real, -1.0, 1.0) + 1j * np.clip(x.imag, -1.0, 1.0)).astype(np.complex64)
        with dev.cond:
            if metadata.start_of_burst or dev.open_burst is None:
                t = metadata.time_spec.get_real_secs() if metadata.has_time_spec else dev.clock
                late = metadata.has_time_spec and t < dev.clock
                if late:
                    dev.async_msgs.append(_event(TXMetadataEventCode.time_error, t))
                dev.open_burst = [t, [], late]
            dev.open_burst[1].append(x[: len(self.channels)].copy())
            if metadata.end_of_burst:
                t, chunks, dropped = dev.open_burst
                dev.open_burst = None
                if not dropped:
                    dev.bursts.append(Burst(t, np.concatenate(chunks, axis=1)))
                    if dev.state.inject_underflow:
                        dev.async_msgs.append(_event(TXMetadataEventCode.underflow, t))
                    dev.async_msgs.append(_event(TXMetadataEventCode.burst_ack, t))
                dev.cond.notify_all()
        return x.shape[1]

    def recv_async_msg(self, async_metadata: TXAsyncMetadata, timeout: float = 0.1) -> bool:
        with self.device.cond:
            if not self.device.async_msgs:
                return False
            msg = self.device.async_msgs.pop(0)
        async_metadata.channel = msg.channel
        async_metadata.has_time_spec = msg.has_time_spec
        async_metadata.time_spec = msg.time_spec
        async_metadata.event_code = msg.event_code
        return True


def _event(code: TXMetadataEventCode, t: float) -> TXAsyncMetadata:
    md = TXAsyncMetadata()
    md.event_code, md.has_time_spec, md.time_spec = code, True, TimeSpec(t)
    return md


class FakeRxStreamer:
    """uhd.usrp.RXStreamer: serves num_done stream commands in packets, with the injected faults."""

    def __init__(self, device: FakeMultiUSRP, channels: list[int]):
        self.device, self.channels = device, channels

    def get_num_channels(self) -> int:
        return len(self.channels)

    def get_max_num_samps(self) -> int:
        return self.device.state.max_num_samps

    def issue_stream_cmd(self, cmd: StreamCMD) -> None:
        dev = self.device
        with dev.cond:
            index = len(dev.stream_cmds)
            dev.stream_cmds.append(cmd)
            if cmd.mode is StreamMode.stop_cont:
                dev.rx_cmd = None
                return
            if cmd.mode is not StreamMode.num_done:
                raise RuntimeError(f"fake uhd: stream mode {cmd.mode} not supported")
            t = dev.clock if cmd.stream_now else cmd.time_spec.get_real_secs()
            if index in dev.state.inject_late_at:       # the host was slow: the device clock passed t
                dev.clock = max(dev.clock, t + 0.01)
            dev.rx_cmd = _RxCommand(t, int(cmd.num_samps), late=t < dev.clock, base=dev.rx_streamed)

    def _rate(self) -> float:
        return float(self.device.get_rx_rate(self.channels[0]))

    def _respond(self, cmd: _RxCommand) -> np.ndarray:
        dev, fs, n = self.device, self._rate(), cmd.num_samps
        burst = dev.bursts[-1] if dev.bursts else None
        if dev.state.echo is None:
            return np.zeros((len(self.channels), n), np.complex64)
        out = np.asarray(dev.state.echo(None if burst is None else burst.samples, cmd.time_s,
                                        None if burst is None else burst.time_s, n, fs))
        out = np.atleast_2d(out).astype(np.complex64)
        if out.shape[1] != n or out.shape[0] not in (1, len(self.channels)):
            raise RuntimeError(f"fake uhd: echo returned shape {out.shape}, expected ({len(self.channels)}, {n})")
        return np.broadcast_to(out, (len(self.channels), n))

    def recv(self, np_array: np.ndarray, metadata: RXMetadata, timeout: float = 0.1) -> int:
        dev, st = self.device, self.device.state
        if np_array.ndim != 2 or np_array.shape[0] < len(self.channels) or np_array.dtype != np.complex64:
            raise RuntimeError(f"fake uhd: RX array {np_array.shape} {np_array.dtype} for "
                               f"{len(self.channels)} channel(s)")
        metadata.reset()
        with dev.cond:
            call = dev.recv_calls
            dev.recv_calls += 1
            cmd = dev.rx_cmd
            if cmd is None:
                return self._timeout(metadata, timeout)
            if cmd.late:
                dev.rx_cmd = None
                metadata.error_code = RXMetadataErrorCode.late
                return 0
            if cmd.response is None:
                if not dev.cond.wait_for(lambda: dev.open_burst is None, timeout=2.0):
                    raise RuntimeError("fake uhd: a TX burst was started but never ended (no end_of_burst)")
                cmd.response = self._respond(cmd)
            fs = self._rate()
            here = cmd.base + cmd.pos
            if here in st.overflow_at_samples:           # an overflow at a chosen sample of the stream
                st.overflow_at_samples.discard(here)
                st.overflows_fired.append((here, cmd.time_s + cmd.pos / fs))
                metadata.error_code = RXMetadataErrorCode.overflow
                metadata.has_time_spec = True
                metadata.time_spec = TimeSpec(cmd.time_s + cmd.pos / fs)
                cmd.pos = min(cmd.num_samps, cmd.pos + (st.overflow_drop_samples or st.max_num_samps))
                self._advance(cmd, fs)
                return 0
            if call in st.inject_overflow_at or call in st.inject_out_of_sequence_at:
                metadata.error_code = RXMetadataErrorCode.overflow
                metadata.out_of_sequence = call in st.inject_out_of_sequence_at
                metadata.has_time_spec = True
                metadata.time_spec = TimeSpec(cmd.time_s + cmd.pos / fs)
                cmd.pos = min(cmd.num_samps, cmd.pos + (st.overflow_drop_samples or st.max_num_samps))
                self._advance(cmd, fs)
                return 0
            if st.stall_after is not None and cmd.pos >= st.stall_after:
                return self._timeout(metadata, timeout)
            m = min(np_array.shape[1], st.max_num_samps, cmd.num_samps - cmd.pos)
            ahead = [k - here for k in st.overflow_at_samples if here < k < here + m]
            if ahead:                                    # the packet ends where the overflow strikes
                m = min(ahead)
            if st.stall_after is not None:
                m = min(m, st.stall_after - cmd.pos)
            np_array[: len(self.channels), :m] = cmd.response[:, cmd.pos:cmd.pos + m]
            metadata.has_time_spec = True
            metadata.time_spec = TimeSpec(cmd.time_s + cmd.pos / fs)
            metadata.start_of_burst = cmd.pos == 0
            cmd.pos += m
            metadata.end_of_burst = cmd.pos == cmd.num_samps
            self._advance(cmd, fs)
            return m

    def _advance(self, cmd: _RxCommand, fs: float) -> None:
        dev = self.device
        dev.rx_streamed = cmd.base + cmd.pos
        dev.clock = max(dev.clock, cmd.time_s + cmd.pos / fs)
        if cmd.pos >= cmd.num_samps:
            dev.rx_cmd = None

    def _timeout(self, metadata: RXMetadata, timeout: float) -> int:
        self.device.clock += float(timeout)
        metadata.error_code = RXMetadataErrorCode.timeout
        return 0


# ---- the module ----------------------------------------------------------------------------
def _as_set(value: int | Iterable[int] | None) -> set[int]:
    if value is None:
        return set()
    if isinstance(value, int):
        return {value}
    return set(value)


def make_fake_uhd(echo: Echo | None = None, *, device_ranges: dict[str, tuple[float, float, float]] | None = None,
                  num_channels: int = 2, max_num_samps: int = 2000,
                  antennas: dict[str, tuple[str, ...]] | None = None,
                  clock_sources: tuple[str, ...] = ("internal", "external", "gpsdo"),
                  time_sources: tuple[str, ...] = ("internal", "external", "gpsdo"),
                  ref_locked: bool = True, fail_open: Exception | None = None, mboard_serial: str = "31ABCDE",
                  inject_overflow_at: int | Iterable[int] | None = None,
                  overflow_at_samples: int | Iterable[int] | None = None,
                  overflow_drop_samples: int | None = None,
                  inject_out_of_sequence_at: int | Iterable[int] | None = None,
                  inject_late_at: int | Iterable[int] | None = None,
                  stall_after: int | None = None, inject_underflow: bool = False,
                  master_clock_hz: float | None = None) -> types.ModuleType:
    """A module object standing in for ``uhd``.

    Parameters
    ----------
    echo : callable or None
        ``echo(tx, rx_start_time_s, tx_start_time_s, num_samples,
        sample_rate_hz) -> (num_rx_channels or 1, num_samples) complex64``:
        what the receiver sees for a stream command starting at
        ``rx_start_time_s``, given the last transmitted burst ``tx`` (shape
        (num_tx_channels, n), or None) that started at ``tx_start_time_s``.
        None receives zeros.
    device_ranges : dict or None
        ``rate``, ``freq``, ``rx_gain``, ``tx_gain``, ``bandwidth`` as
        (start, stop, step) replacing those of :data:`B210_RANGES`.
    num_channels : int
        RX and TX channels of the device (2 for a B210).
    max_num_samps : int
        Samples per packet of both streamers.
    antennas : dict or None
        ``{"rx": (...), "tx": (...)}`` port names.
    clock_sources, time_sources : tuple of str
        What ``get_clock_sources``/``get_time_sources`` return.
    ref_locked : bool
        The ``ref_locked`` sensor with a non-internal clock source.
    fail_open : Exception or None
        Raised by ``MultiUSRP(args)`` (no device found).
    mboard_serial : str
        The ``mboard_serial`` of ``get_usrp_rx_info`` (as a B210 reports it; empty: none reported).
    inject_overflow_at, inject_out_of_sequence_at : int or iterable of int
        0-based indices (over the device's life) of ``recv`` calls that
        return 0 samples with ``error_code = overflow`` (``out_of_sequence``
        set for the second) and drop ``overflow_drop_samples`` samples
        (default ``max_num_samps``) of the stream command.
    overflow_at_samples : int or iterable of int
        Overflows at chosen samples: 0-based indices into everything the
        device has streamed for stream commands over its life (delivered or
        lost; a stream stopped early streams no more).  The packet before
        ends at that sample; the next ``recv`` returns 0 samples with
        ``error_code = overflow`` and the stream loses
        ``overflow_drop_samples`` samples (default ``max_num_samps``).  Each
        fires once; ``uhd.fake.overflows_fired`` lists ``(sample, device
        time s)`` of those that did.
    inject_late_at : int or iterable of int
        0-based indices of stream commands before which the device clock
        jumps past their time, so that they are late.
    stall_after : int or None
        Each stream command delivers at most this many samples, then ``recv``
        times out.
    inject_underflow : bool
        Every finished TX burst also reports an underflow ('U').
    master_clock_hz : float or None
        A B2xx's automatic master clock at start (16e6 as UHD sets it): ``get_rx_rates`` then spans what the
        DSP reaches from the current clock, and ``set_rx_rate`` moves the clock first.  None: the rates of
        ``device_ranges`` whatever is set.
    """
    ranges = dict(B210_RANGES)
    ranges.update(device_ranges or {})
    state = FakeState(
        echo=echo, ranges=ranges, num_channels=num_channels, max_num_samps=max_num_samps,
        antennas=antennas or {"rx": ("TX/RX", "RX2"), "tx": ("TX/RX",)},
        clock_sources=tuple(clock_sources), time_sources=tuple(time_sources), ref_locked=ref_locked,
        fail_open=fail_open, inject_overflow_at=_as_set(inject_overflow_at),
        overflow_drop_samples=overflow_drop_samples, inject_out_of_sequence_at=_as_set(inject_out_of_sequence_at),
        inject_late_at=_as_set(inject_late_at), stall_after=stall_after, inject_underflow=inject_underflow,
        overflow_at_samples=_as_set(overflow_at_samples), mboard_serial=mboard_serial,
        master_clock_hz=master_clock_hz)

    usrp = _UsrpModule("uhd.usrp")
    usrp.MultiUSRP = lambda args="": FakeMultiUSRP(state, args)
    usrp.StreamArgs = StreamArgs
    uhd = _UhdModule("uhd")
    uhd.usrp = usrp
    uhd.types = _TypesModule("uhd.types")
    uhd.fake = state
    return uhd


class _UsrpModule(types.ModuleType):
    MultiUSRP: Callable[..., FakeMultiUSRP]
    StreamArgs: type[StreamArgs]


class _TypesModule(types.ModuleType):
    TimeSpec = TimeSpec
    StreamCMD = StreamCMD
    StreamMode = StreamMode
    RXMetadata = RXMetadata
    RXMetadataErrorCode = RXMetadataErrorCode
    TXMetadata = TXMetadata
    TXAsyncMetadata = TXAsyncMetadata
    TXMetadataEventCode = TXMetadataEventCode
    TuneRequest = TuneRequest
    MetaRange = GainRange = FreqRange = MetaRange


class _UhdModule(types.ModuleType):
    usrp: _UsrpModule
    types: _TypesModule
    fake: FakeState
