"""The ``Radio`` protocol shared by every backend.

A radio transmits samples (once or cyclically) and returns received samples as
:class:`~sdr_isac.capture.Capture` records.  Sensing never learns which
backend produced a capture.

Backends subclass :class:`RadioBase`, which supplies the context manager, the
sequence counter and the checks on what callers pass in.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.capture import HOST_UTC, Capture, utc_stamp
from sdr_isac.config import FrameConfig, RadioConfig, SceneConfig
from sdr_isac.errors import ConfigError, InputError, RadioError

__all__ = ["Radio", "RadioBase"]


@runtime_checkable
class Radio(Protocol):
    """What every radio backend offers."""

    kind: str
    node_id: str

    @property
    def sample_rate_hz(self) -> float: ...

    @property
    def center_freq_hz(self) -> float: ...

    @property
    def num_rx_channels(self) -> int: ...

    def tx(self, samples: ArrayLike, cyclic: bool = True) -> None: ...

    def rx(self, num_samples: int) -> Capture: ...

    def close(self) -> None: ...

    def __enter__(self) -> Radio: ...

    def __exit__(self, *exc: object) -> None: ...


class RadioBase(abc.ABC):
    """Common behaviour of the backends.

    Parameters
    ----------
    config : RadioConfig
        The radio section of the configuration.
    frame : FrameConfig or None
        The waveform this node transmits and expects; gives the default
        sample rate and carrier and is attached to every capture.
    """

    #: The radio kind, stamped on every capture's metadata (``radio``); the kind it is registered under.
    kind = "base"
    #: The ``[radio]`` section this backend reads (a subclass of RadioConfig; see ``register_radio``).
    section: ClassVar[type[RadioConfig]] = RadioConfig

    @classmethod
    def open(cls, config: RadioConfig, frame: FrameConfig | None = None,
             scene: SceneConfig | None = None) -> RadioBase:
        """Open this backend for :func:`sdr_isac.radio.open_radio`.

        Parameters
        ----------
        config : RadioConfig
            The radio section, of this backend's ``section`` type.
        frame : FrameConfig or None
            The waveform (gives the default rate and carrier).
        scene : SceneConfig or None
            The simulated world; only backends that simulate one use it.

        The default is ``cls(config, frame)``; a backend that needs more overrides it.
        """
        return cls(config, frame)

    def __init__(self, config: RadioConfig, frame: FrameConfig | None = None):
        self._check_section(config)
        self.config = config
        self.frame = frame
        self.node_id = config.node_id
        self._seq = 0
        self._closed = False
        self._frames_dropped_overflow = 0
        #: the calibration this radio applies to every capture (:func:`sdr_isac.radio.calibration.attach_calibration`)
        self.calibration: Any = None
        self._correct: Callable[[Capture], Capture] | None = None
        rate = config.sample_rate_hz or (frame.sample_rate_hz if frame is not None else 0.0)
        freq = config.center_freq_hz or (frame.carrier_hz if frame is not None else 0.0)
        if rate <= 0:
            raise InputError("radio.sample_rate_hz = 0 and no frame to take it from: set radio.sample_rate_hz "
                             "or give the frame")
        self._sample_rate_hz = float(rate)
        self._center_freq_hz = float(freq)

    def calibration_settings(self) -> dict[str, str]:
        """Settings besides rate, LO, gains and channels that move the delay, phase or gain a calibration holds
        (a calibration is found for them too: :func:`sdr_isac.radio.calibration.key_of`); none here."""
        return {}

    def _check_frame_rate(self, frame: FrameConfig | None) -> None:
        """Refuse a radio rate other than the frame's (a radio that transmits the frame: its samples would go out
        at the wrong rate, and every capture, which carries the frame, would be refused by sensing later)."""
        rate = self._sample_rate_hz
        if frame is not None and abs(rate - frame.sample_rate_hz) > 1e-9 * frame.sample_rate_hz:
            raise ConfigError(f"radio.sample_rate_hz = {rate:.10g} Hz: the frame runs at {frame.sample_rate_hz:.10g} "
                              f"Hz (fft_size {frame.fft_size} x {frame.subcarrier_spacing_hz:.10g} Hz); set "
                              "radio.sample_rate_hz = 0 (the frame's rate) or to the frame's rate, or change the "
                              "frame's fft_size or numerology", key="radio.sample_rate_hz")

    @classmethod
    def _check_section(cls, config: RadioConfig) -> None:
        """Refuse a radio section of another backend (a ``ConfigError`` naming both kinds)."""
        if not isinstance(config, cls.section):
            raise ConfigError(f"radio.kind = {config.kind!r}: {cls.__name__} reads a {cls.section.__name__} "
                              f"(kind = {cls.kind!r}); open the radio with sdr_isac.radio.open_radio(config), which "
                              "picks the backend of the section's kind", key="radio.kind")

    # ---- properties -----------------------------------------------------------
    @property
    def sample_rate_hz(self) -> float:
        """Sample rate in Hz."""
        return self._sample_rate_hz

    @property
    def center_freq_hz(self) -> float:
        """RF centre frequency in Hz."""
        return self._center_freq_hz

    @property
    def num_rx_channels(self) -> int:
        """Receive channels per capture."""
        return len(self.config.rx_channels)

    @property
    def num_tx_channels(self) -> int:
        """Transmit channels."""
        return len(self.config.tx_channels)

    def capture_length(self, frame_samples: int) -> int:
        """Samples per capture: ``radio.buffer_size``, or by default one frame (two on radios that must
        find the frame in the buffer, so a whole frame always lies inside)."""
        return self.config.buffer_size or frame_samples * self._frames_per_capture

    _frames_per_capture = 1

    @property
    def frames_dropped_overflow(self) -> int:
        """Frames this radio received with a gap (overflow, lost packet, dropped buffer) and dropped, never returned.

        Backends that can detect gaps (``usrp``, ``pluto``) count here; a node reports it to the host
        in its heartbeat stats.  Radios without gaps (``sim``, ``replay``) stay at 0.
        """
        return self._frames_dropped_overflow

    @property
    def can_transmit(self) -> bool:
        """Whether :meth:`tx` is allowed (False for a receive-only node)."""
        return True

    def set_ris_steering(self, ris_id: str, incoming_deg: float, outgoing_deg: float) -> None:
        """Program RIS ``ris_id`` to reflect from ``incoming_deg`` towards ``outgoing_deg`` (its local azimuths).

        Only the simulated radio reaches a (simulated) surface; a real RIS has a
        controller of its own, which this toolkit does not drive.
        """
        raise InputError(f"radio kind {self.config.kind!r} cannot program RIS {ris_id!r}: only the simulated radio "
                         "drives a surface; remove scan_deg from [[scene.ris]] or program the RIS from its own "
                         "controller")

    # ---- the protocol -----------------------------------------------------------
    def tx(self, samples: ArrayLike, cyclic: bool = True) -> None:
        """Transmit ``samples`` (shape (num_tx_channels, n) or (n,)), once or repeated without gaps."""
        self._check_open()
        self._tx(self._check_tx(samples), cyclic)

    def rx(self, num_samples: int) -> Capture:
        """Receive ``num_samples`` samples on every receive channel."""
        self._check_open()
        if int(num_samples) != num_samples or num_samples < 1:
            raise InputError(f"num_samples = {num_samples}: allowed an integer >= 1")
        capture = self._rx(int(num_samples))
        if self._correct is not None:                   # a calibration: range zero, channel gains, leakage
            capture = self._correct(capture)
        self._seq += 1
        return capture

    def close(self) -> None:
        """Release the device; further tx/rx raise RadioError.  Closing twice is harmless."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> RadioBase:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ---- for backends -------------------------------------------------------
    @abc.abstractmethod
    def _tx(self, samples: NDArray[np.complex64], cyclic: bool) -> None: ...

    @abc.abstractmethod
    def _rx(self, num_samples: int) -> Capture: ...

    def _close(self) -> None:  # noqa: B027  (optional hook: most backends have something to release)
        """Release backend resources (default: nothing)."""

    @property
    def seq(self) -> int:
        """Sequence number the next capture will carry."""
        return self._seq

    def _capture(self, iq: NDArray[np.complex64], t0_s: float, frame_offset: int = 0,
                 metadata: dict[str, Any] | None = None) -> Capture:
        """A Capture stamped with this radio's node, rate, frequency, sequence number and frame, and with the host's
        UTC time of its first sample (now, less its length: :data:`~sdr_isac.capture.HOST_UTC`)."""
        meta = {"radio": self.kind, HOST_UTC: utc_stamp(iq.shape[-1] / self.sample_rate_hz), **(metadata or {})}
        return Capture(iq, self.sample_rate_hz, self.center_freq_hz, t0_s, self.node_id, self._seq,
                       self.frame, frame_offset, meta)

    def _check_open(self) -> None:
        if self._closed:
            raise RadioError(f"radio {self.kind!r} of node {self.node_id!r} is closed; open a new one")

    def _check_tx(self, samples: ArrayLike) -> NDArray[np.complex64]:
        x = np.asarray(samples)
        if x.ndim == 1:
            x = x[np.newaxis]
        if x.ndim != 2 or x.dtype.kind not in "cf" or x.shape[1] == 0:
            raise InputError(f"tx samples have shape {x.shape} and dtype {x.dtype}: allowed complex "
                             "(channels, n) or (n,) with n >= 1")
        if x.shape[0] != self.num_tx_channels:
            raise InputError(f"tx samples have {x.shape[0]} channel(s): this radio transmits on "
                             f"{self.num_tx_channels} (radio.tx_channels = {list(self.config.tx_channels)}); "
                             "pass one row per channel")
        if not np.all(np.isfinite(x)):
            raise InputError("tx samples contain NaN or infinity; fix the waveform")
        return np.ascontiguousarray(x, dtype=np.complex64)
