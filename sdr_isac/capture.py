"""The ``Capture`` record: what a radio returns, a file stores and the wire carries."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sdr_isac.config import FrameConfig
from sdr_isac.errors import InputError

__all__ = ["Capture"]


@dataclass(frozen=True, eq=False)
class Capture:
    """A block of received samples with the facts needed to process it.

    Parameters
    ----------
    iq : ndarray, shape (num_channels, num_samples), complex64
        Baseband samples, one row per receive channel.  A 1-D array is taken
        as one channel.  Other complex or real float dtypes are converted.
    sample_rate_hz : float
        Sample rate in Hz (> 0).
    center_freq_hz : float
        RF centre frequency in Hz (>= 0).
    t0_s : float
        Time of the first sample in s, on the node's clock.
    node_id : str
        Which node captured it.
    seq : int
        Sequence number of the capture at that node (>= 0).
    frame : FrameConfig or None
        The waveform that was transmitted, when known.
    frame_offset : int
        Sample index at which the frame starts within ``iq`` (>= 0).
    metadata : dict
        Free-form extra facts (radio settings, gains, truth for simulated data).
    """

    iq: NDArray[np.complex64]
    sample_rate_hz: float
    center_freq_hz: float = 0.0
    t0_s: float = 0.0
    node_id: str = "node0"
    seq: int = 0
    frame: FrameConfig | None = None
    frame_offset: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        iq = np.asarray(self.iq)
        if iq.dtype.kind not in "cf":
            raise InputError(f"Capture.iq has dtype {iq.dtype}: allowed complex or real floating point "
                             "samples; convert with .astype(np.complex64)")
        if iq.ndim == 1:
            iq = iq[np.newaxis, :]
        if iq.ndim != 2 or iq.shape[0] < 1:
            raise InputError(f"Capture.iq has shape {iq.shape}: allowed (num_channels, num_samples); "
                             "stack channels as rows")
        object.__setattr__(self, "iq", np.ascontiguousarray(iq, dtype=np.complex64))
        for name in ("sample_rate_hz", "center_freq_hz", "t0_s"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise InputError(f"Capture.{name} = {value}: must be finite")
            object.__setattr__(self, name, value)
        if self.sample_rate_hz <= 0:
            raise InputError(f"Capture.sample_rate_hz = {self.sample_rate_hz} Hz: must be > 0 Hz")
        if self.center_freq_hz < 0:
            raise InputError(f"Capture.center_freq_hz = {self.center_freq_hz} Hz: must be >= 0 Hz")
        if self.seq < 0 or self.frame_offset < 0:
            raise InputError(f"Capture.seq = {self.seq}, frame_offset = {self.frame_offset}: both must be >= 0")

    @property
    def num_channels(self) -> int:
        """Receive channels (rows of ``iq``)."""
        return int(self.iq.shape[0])

    @property
    def num_samples(self) -> int:
        """Samples per channel."""
        return int(self.iq.shape[1])

    @property
    def duration_s(self) -> float:
        """Length of the capture in s."""
        return self.num_samples / self.sample_rate_hz
