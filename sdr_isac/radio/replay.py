"""``ReplayRadio``: a SigMF recording played back capture by capture, as if from a radio.

The recording already holds what was received, so transmissions are only
checked against the recorded frame (a waveform of another length is an
error, as it would be on air); they change nothing.  Options: ``loop`` (start
again after the last capture, with sequence numbers and times continuing) and
``pace`` (deliver captures at the spacing of their recorded ``t0``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from sdr_isac.capture import Capture
from sdr_isac.config import FrameConfig, RadioConfig, ReplayRadioConfig, field_bounds
from sdr_isac.errors import ConfigError, InputError, RadioError, RecordingError
from sdr_isac.radio.base import RadioBase
from sdr_isac.radio.registry import register_radio
from sdr_isac.recording import Recording
from sdr_isac.recording._format import file_names
from sdr_isac.waveform import IsacFrame

__all__ = ["ReplayRadio"]


class ReplayRadio(RadioBase):
    """Replays ``config.uri`` (a ``.sigmf-meta`` file).

    Parameters
    ----------
    config : ReplayRadioConfig
        ``uri`` is the recording; ``loop`` and ``pace`` as above.
    frame : FrameConfig, optional
        The waveform, used only for foreign recordings without an
        ``isac:frame`` description (a recorded description wins).
    """

    kind = "replay"
    section = ReplayRadioConfig
    config: ReplayRadioConfig

    def __init__(self, config: RadioConfig, frame: FrameConfig | None = None):
        self._check_section(config)
        meta, data = file_names(config.uri)
        if not (meta.exists() or data.exists() or Path(config.uri).exists()):
            raise ConfigError(f"radio.uri = {config.uri!r}: no recording there (looked for {meta}, relative to the "
                              f"working directory {Path.cwd()}); give the recording's path from where the command "
                              "runs, or an absolute one", key="radio.uri")
        rec = Recording.open(config.uri)
        if rec.frame is None and frame is not None:     # a foreign recording: the user's frame describes it
            rec.close()
            rec = Recording.open(config.uri, frame)
        self._recording = rec
        try:
            self._init(config, rec)
        except Exception:
            rec.close()
            raise

    def _init(self, config: RadioConfig, rec: Recording) -> None:
        if rec.num_captures == 0:
            rec.close()
            raise RadioError(f"{config.uri}: the recording holds no capture; record one first")
        try:
            radio_cfg = dataclasses.replace(config, sample_rate_hz=rec.sample_rate_hz,
                                            center_freq_hz=rec.center_freq_hz)
        except ConfigError as err:      # the recording's rate or frequency, not the user's config, is out of range
            bounds = field_bounds(type(config))
            raise RecordingError(f"{config.uri}: core:sample_rate = {rec.sample_rate_hz:g} Hz, core:frequency = "
                                 f"{rec.center_freq_hz:g} Hz: a radio allows sample rates of "
                                 f"{bounds['sample_rate_hz'].describe()} and centre frequencies of "
                                 f"{bounds['center_freq_hz'].describe()}; the recording cannot be replayed as a "
                                 "radio (check its metadata)") from err
        super().__init__(radio_cfg, rec.frame)
        self._frame = IsacFrame(rec.frame) if rec.frame is not None else None
        if config.node_id != "bs0" or not rec.node:
            self.node_id = config.node_id
        else:
            self.node_id = str(rec.node.get("id", config.node_id))
        self._index = 0
        self._loops = 0
        self._wall_start: float | None = None
        self._t0_first = float(rec.capture_info(0).get("t0_s", 0.0))
        last_start, last_count = rec.capture_span(rec.num_captures - 1)
        last_t0 = float(rec.capture_info(rec.num_captures - 1).get("t0_s", last_start / rec.sample_rate_hz))
        self._span_s = last_t0 + last_count / rec.sample_rate_hz - self._t0_first   # one pass, for looping

    @property
    def recording(self) -> Recording:
        """The open recording."""
        return self._recording

    @property
    def num_rx_channels(self) -> int:
        """Channels of the recording."""
        return self._recording.num_channels

    @property
    def num_tx_channels(self) -> int:
        """Ports of the recorded frame (1 without one)."""
        return self._frame.num_ports if self._frame is not None else 1

    def _tx(self, samples: NDArray[np.complex64], cyclic: bool) -> None:
        if self._frame is not None:
            expected = self._frame.num_samples
            if samples.shape[1] != expected:
                raise InputError(f"tx samples have {samples.shape[1]} samples: the recording was made with a "
                                 f"{expected}-sample frame; transmit that frame")

    def next_capture(self) -> Capture:
        """The next recorded capture, whole."""
        self._check_open()
        capture = self._next()
        self._seq += 1
        return capture

    def _rx(self, num_samples: int) -> Capture:
        capture = self._next()
        if num_samples > capture.num_samples:
            raise InputError(f"num_samples = {num_samples}: recorded captures of {self.config.uri} hold "
                             f"{capture.num_samples} samples; ask for at most that many, or use next_capture()")
        if num_samples == capture.num_samples:
            return capture
        return Capture(capture.iq[:, :num_samples], capture.sample_rate_hz, capture.center_freq_hz, capture.t0_s,
                       capture.node_id, capture.seq, capture.frame, capture.frame_offset, capture.metadata)

    def _next(self) -> Capture:
        rec = self._recording
        if self._index >= rec.num_captures:
            if not self.config.loop:
                raise RadioError(f"{self.config.uri}: end of recording after {rec.num_captures} captures; "
                                 "set radio.loop = true to start again")
            self._index = 0
            self._loops += 1
        i = self._index
        self._index += 1
        stored = rec.capture(i)
        t0 = stored.t0_s + self._loops * self._span_s
        if self.config.pace:
            self._wait_until(t0 - self._t0_first)
        meta = {**stored.metadata, "replay": {"index": i, "loop": self._loops, "path": str(self.config.uri)},
                "truth": rec.truth(i)}
        # the same samples, with the reader's check (Recording.capture checks them once)
        return stored.with_fields(t0_s=t0, seq=self._seq, frame=stored.frame or self.frame, metadata=meta)

    def _wait_until(self, offset_s: float) -> None:
        now = time.monotonic()
        if self._wall_start is None:
            self._wall_start = now - offset_s
        delay = self._wall_start + offset_s - now
        if delay > 0:
            time.sleep(delay)

    def _close(self) -> None:
        self._recording.close()


register_radio("replay", ReplayRadio)
