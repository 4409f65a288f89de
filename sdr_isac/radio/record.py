"""Record what a radio receives into a SigMF recording."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sdr_isac.errors import InputError
from sdr_isac.radio.base import RadioBase
from sdr_isac.recording import RecordingWriter
from sdr_isac.recording.append import append_capture
from sdr_isac.waveform import IsacFrame

__all__ = ["record_frames"]


def record_frames(radio: RadioBase, num_frames: int, path: str | Path, *, datatype: str = "cf32_le",
                  description: str = "", node: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Transmit the radio's frame cyclically (if it may) and record ``num_frames`` captures.

    Each capture is :meth:`RadioBase.capture_length` samples long (``radio.buffer_size``, or one frame,
    two on a Pluto).

    Simulated captures carry their ground truth in ``metadata["truth"]``; it is
    stored in the recording's ``truth:`` namespace, the rest in ``isac:metadata``.

    Returns
    -------
    Path
        The ``.sigmf-meta`` file written.
    """
    if num_frames < 1:
        raise InputError(f"num_frames = {num_frames}: allowed >= 1; record at least one frame")
    if radio.frame is None:
        raise InputError("the radio has no frame: give the configuration a [frame] section")
    frame = IsacFrame(radio.frame)
    if radio.can_transmit:
        radio.tx(frame.samples(), cyclic=True)
    radio_info = {k: v for k, v in dataclasses.asdict(radio.config).items()}
    with RecordingWriter(path, sample_rate_hz=radio.sample_rate_hz, center_freq_hz=radio.center_freq_hz,
                         num_channels=radio.num_rx_channels, datatype=datatype, frame=radio.frame,
                         node=node or {"id": radio.node_id}, radio=radio_info, description=description,
                         overwrite=overwrite, calibration=_calibration_of(radio)) as writer:
        for _ in range(num_frames):
            append_capture(writer, radio.rx(radio.capture_length(frame.num_samples)))
        return Path(writer.meta_path)


def _calibration_of(radio: RadioBase) -> dict[str, Any] | None:
    """The reference (id and file hash) of the calibration ``radio`` applies, if any (``isac:calibration``)."""
    cal = radio.calibration
    return dict(cal.reference) if cal is not None else None
