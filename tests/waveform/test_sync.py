"""Frame timing by correlation."""

from __future__ import annotations

import numpy as np
import pytest

from sdr_isac.channel import add_awgn
from sdr_isac.config import FrameConfig
from sdr_isac.errors import InputError
from sdr_isac.waveform import IsacFrame
from sdr_isac.waveform.sync import find_frame_start


@pytest.mark.parametrize("start", [0, 1, 777, 4000])
def test_finds_the_start_of_a_cyclic_frame(start, rng):
    x = IsacFrame(FrameConfig(num_rb=24, fft_size=512)).samples()[0]
    period = x.size
    buffer = np.roll(np.tile(x, 2), start)[: 2 * period]              # frame begins at `start`
    rx = add_awgn(0.05 * buffer, 0.05**2 * 1e-1, rng)[None]           # 10 dB below the signal per sample
    timing = find_frame_start(rx, x, period=period)
    assert timing.offset == start % period and abs(timing.fractional) < 0.1
    assert timing.peak_to_median > 10


def test_fractional_part_points_at_the_true_start():
    x = IsacFrame(FrameConfig(num_rb=24, fft_size=512)).samples()[0]
    n = np.arange(2 * x.size)
    spectrum = np.fft.fft(np.tile(x, 2))
    k = np.fft.fftfreq(n.size, 1 / n.size)
    delayed = np.fft.ifft(spectrum * np.exp(-2j * np.pi * k * 100.3 / n.size))   # 100.3 samples late
    timing = find_frame_start(delayed, x, period=x.size)
    assert timing.offset == 100 and 0.1 < timing.fractional < 0.5


def test_rejects_short_buffers():
    with pytest.raises(InputError, match="must hold at least one whole reference"):
        find_frame_start(np.zeros(10, complex), np.ones(20, complex))


@pytest.mark.parametrize("cfo_hz", [-7000.0, 0.0, 1234.5, 14000.0])
def test_cfo_from_cyclic_prefix(cfo_hz, rng):
    from sdr_isac.waveform.sync import estimate_cfo
    frame = IsacFrame(FrameConfig(num_rb=24, fft_size=512, num_slots=2))          # 30 kHz: +-15 kHz range
    x = frame.samples()
    n = np.arange(x.shape[1])
    rx = add_awgn(x * np.exp(2j * np.pi * cfo_hz * n / frame.sample_rate_hz), 1e-3, rng)
    estimate = estimate_cfo(rx, frame.cp_lengths, 512, frame.sample_rate_hz)
    assert estimate == pytest.approx(cfo_hz, abs=20.0)        # 28 symbols of CP at 30 dB: a few Hz
