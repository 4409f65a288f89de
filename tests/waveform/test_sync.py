"""Frame timing by correlation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ---- parabolic_vertex: the package's one 3-point peak interpolation (sync, detection, the map's grid error)

_ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=300, deadline=None)
@given(vertex=st.floats(-0.5, 0.5), curvature=st.floats(1e-150, 1e150), top=st.floats(-1e150, 1e150))
def test_parabolic_vertex_is_the_vertex_of_the_parabola(vertex, curvature, top):
    """Samples of ``top - a (x - x0)**2`` at x = -1, 0, 1 (a > 0): the vertex is x0, from tiny to huge curvatures
    and offsets (to the rounding that the offset ``top`` leaves in the differences of the samples)."""
    from sdr_isac.waveform.sync import parabolic_vertex
    y = [top - curvature * (x - vertex) ** 2 for x in (-1.0, 0.0, 1.0)]
    # each sample carries a rounding of eps |y|; the vertex moves by that over the curvature
    tol = 8 * np.finfo(float).eps * (max(abs(v) for v in y) / curvature + 1.0)
    got = parabolic_vertex(*y)
    assert isinstance(got, float)
    if y[0] - 2 * y[1] + y[2] < 0:                  # the offset did not swallow the curvature
        assert got == pytest.approx(vertex, abs=tol)
        assert abs(got) <= 0.5 * (1 + 4 * np.finfo(float).eps) or max(y) != y[1]   # the centre the peak: half a cell
    else:
        assert got == 0.0


@settings(max_examples=300, deadline=None)
@given(samples=st.lists(st.tuples(_ANY_FLOAT, _ANY_FLOAT, _ANY_FLOAT), min_size=0, max_size=20))
def test_parabolic_vertex_floats_and_arrays_agree(samples):
    """Any floats (0, huge, inf, NaN; float64 and float32 scalars): the array path gives bit for bit what the
    float path gives each triple, and 0 wherever the samples do not bend down."""
    from sdr_isac.waveform.sync import parabolic_vertex
    y = np.array(samples, dtype=np.float64).reshape(-1, 3)
    with np.errstate(all="ignore"):                  # inf - inf, huge * 2: the arithmetic warns, as floats do not
        arrays = parabolic_vertex(y[:, 0], y[:, 1], y[:, 2])
        refused = ~(y[:, 0] - 2 * y[:, 1] + y[:, 2] < 0)
        f32 = y.astype(np.float32)
        arrays32 = parabolic_vertex(f32[:, 0], f32[:, 1], f32[:, 2])
    floats = np.array([parabolic_vertex(*row) for row in y.tolist()], dtype=np.float64)
    assert arrays.shape == (len(samples),) and arrays.dtype == np.float64
    np.testing.assert_array_equal(arrays, floats)
    assert np.all(arrays[refused] == 0.0)
    np.testing.assert_array_equal(arrays32, [parabolic_vertex(*row) for row in f32])   # numpy float32 scalars


def test_parabolic_vertex_slopes_are_its_derivatives():
    """The slopes of the array path are the central differences of the vertex; zero where it is refused."""
    from sdr_isac.waveform.sync import parabolic_vertex, parabolic_vertex_slopes
    rng = np.random.default_rng(3)
    y = rng.uniform(0.5, 1.0, (50, 3))
    y[:, 1] += 1.0                                   # a peak in the middle: the parabola is taken
    y[:5] = [[1.0, 0.0, 1.0]] * 5                    # a valley: refused
    vertex, slopes = parabolic_vertex_slopes(y[:, 0], y[:, 1], y[:, 2])
    np.testing.assert_array_equal(vertex, parabolic_vertex(y[:, 0], y[:, 1], y[:, 2]))
    assert slopes.shape == (50, 3)
    h = 1e-6
    for i in range(3):
        step = np.zeros(3)
        step[i] = h
        up, down = y + step, y - step
        numeric = (parabolic_vertex(up[:, 0], up[:, 1], up[:, 2])
                   - parabolic_vertex(down[:, 0], down[:, 1], down[:, 2])) / (2 * h)
        np.testing.assert_allclose(slopes[:, i], numeric, atol=1e-7)
    assert np.all(slopes[:5] == 0.0)


def test_parabolic_vertex_refuses_what_is_not_a_number():
    from sdr_isac.waveform.sync import parabolic_vertex
    for bad in (None, "peak", [1.0], object()):
        with pytest.raises(InputError, match=r"parabolic_vertex of .*allowed three numbers"):
            parabolic_vertex(bad, 1.0, 0.5)
    assert parabolic_vertex(0.0, 0.0, 0.0) == 0.0 and parabolic_vertex(1.0, 1.0, 1.0) == 0.0      # flat
    assert parabolic_vertex(np.nan, 1.0, 0.5) == 0.0 and parabolic_vertex(np.inf, 1.0, 0.5) == 0.0


def test_parabolic_vertex_of_an_ndarray_subclass_is_elementwise():
    from sdr_isac.waveform.sync import parabolic_vertex

    class Samples(np.ndarray):
        pass

    y = np.array([[1.0, 2.0, 1.5], [1.0, 0.0, 1.0], [0.5, 2.0, 0.25]]).view(Samples)
    got = parabolic_vertex(y[:, 0], y[:, 1], y[:, 2])
    np.testing.assert_array_equal(np.asarray(got), [parabolic_vertex(*row) for row in np.asarray(y).tolist()])
