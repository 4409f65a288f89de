"""Tests of the array-backend seam and the batch path (sdr_isac.sensing.backend, sdr_isac.sensing.batch).

Every batch result is checked against an independent computation: the map against the periodogram written out
as a double sum and against the single-frame map, the CFAR mask against a brute-force ring average with the
closed-form CA multiplier alpha(N) = N (pfa**(-1/N) - 1), the peaks against a brute-force 3 x 3 maximum
search, and a planted echo against the bin its delay and Doppler put it in.  The numpy backend runs always;
the CuPy backend where CuPy and a GPU exist (skipped otherwise).
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdr_isac.config import FrameConfig, SensingConfig
from sdr_isac.errors import ConfigError, SensingError
from sdr_isac.sensing.backend import array_backend, fft_workers
from sdr_isac.sensing.batch import batch_cfar, batch_maps, batch_peaks, sense_batch
from sdr_isac.sensing.cfar import CaCfarDetector, GoCfarDetector
from sdr_isac.sensing.detection import find_peaks
from sdr_isac.sensing.rdmap import range_doppler_map, window
from sdr_isac.waveform import ofdm


def _backends() -> list[str]:
    """``cpu`` (frame by frame through the single-frame functions), ``numpy-vectorised`` (the GPU's code on
    numpy), ``cupy``."""
    return ["cpu", "numpy-vectorised", "cupy"]


def _backend(name: str):
    if name == "numpy-vectorised":
        return dataclasses.replace(array_backend("cpu"), vectorised=True)
    if name == "cupy":
        pytest.importorskip("cupy")
        try:
            return array_backend("cupy")
        except SensingError as err:                     # CuPy without a GPU
            pytest.skip(str(err))
    return array_backend("cpu")


def _periodogram(h: np.ndarray, weights: np.ndarray, n_range: int, n_doppler: int) -> np.ndarray:
    """sum_c |sum_lk w_lk H_c(l, k) exp(j 2 pi k r / R) exp(-j 2 pi l (d - D//2) / D)|**2 as a double sum."""
    s, k = weights.shape
    rng_k = np.exp(2j * np.pi * np.outer(np.arange(n_range), np.arange(k)) / n_range)          # (R, K)
    dop_l = np.exp(-2j * np.pi * np.outer(np.arange(n_doppler) - n_doppler // 2, np.arange(s)) / n_doppler)
    cells = np.einsum("dl,clk,rk->crd", dop_l, h * weights, rng_k)
    return np.sum(np.abs(cells) ** 2, axis=0)


def _ring_reference(p: np.ndarray, pfa: float, guard: tuple[int, int], train: tuple[int, int], wrap: bool,
                    min_training: int) -> np.ndarray:
    """CA-CFAR by brute force: for each cell, the mean of its ring cells inside the map, times alpha(N)."""
    n_r, n_d = p.shape
    gr, gd = guard
    hr, hd = gr + train[0], gd + train[1]
    out = np.zeros(p.shape, dtype=bool)
    for r in range(n_r):
        for d in range(n_d):
            vals = []
            for dr in range(-hr, hr + 1):
                for dd in range(-hd, hd + 1):
                    if abs(dr) <= gr and abs(dd) <= gd:
                        continue
                    rr, cc = r + dr, d + dd
                    if not 0 <= rr < n_r:
                        continue
                    if wrap:
                        cc %= n_d
                    elif not 0 <= cc < n_d:
                        continue
                    vals.append(p[rr, cc])
            n = len(vals)
            if n >= min_training:
                alpha = n * (pfa ** (-1.0 / n) - 1.0)
                out[r, d] = p[r, d] > alpha * math.fsum(vals) / n
    return out


def _peaks_reference(p: np.ndarray, hits: np.ndarray, max_peaks: int, wrap: bool) -> list[tuple[int, int]]:
    n_r, n_d = p.shape
    found = []
    for r, d in zip(*np.nonzero(hits), strict=True):
        ok = True
        for dr in (-1, 0, 1):
            for dd in (-1, 0, 1):
                rr = (r + dr) % n_r if wrap else min(max(r + dr, 0), n_r - 1)
                ok &= bool(p[r, d] >= p[rr, (d + dd) % n_d])
        if ok:
            found.append((float(p[r, d]), int(r), int(d)))
    found.sort(key=lambda t: -t[0])
    return [(r, d) for _, r, d in found[:max_peaks]]


@pytest.mark.parametrize("name", _backends())
@pytest.mark.parametrize(("frames", "channels", "symbols", "subcarriers", "over_r", "over_d", "win_r", "win_d"), [
    (3, 1, 8, 12, 2, 2, "hann", "hann"),            # even Doppler length: the fftshift is a sign
    (2, 2, 5, 10, 1, 3, "chebyshev", "none"),       # odd Doppler length (15): a complex phase ramp
    (1, 3, 6, 9, 3, 1, "blackman", "hamming"),
])
def test_batch_map_is_the_windowed_periodogram(name, frames, channels, symbols, subcarriers, over_r, over_d, win_r,
                                               win_d, rng):
    be = _backend(name)
    mask = rng.random((symbols, subcarriers)) > 0.25
    h = ((rng.standard_normal((frames, channels, symbols, subcarriers))
          + 1j * rng.standard_normal((frames, channels, symbols, subcarriers))) * mask).astype(np.complex64)
    cfg = SensingConfig(range_oversampling=over_r, doppler_oversampling=over_d, window_range=win_r,
                        window_doppler=win_d)
    power = be.to_host(batch_maps(h, mask, cfg, be))
    weights = window(win_d, symbols)[:, None] * window(win_r, subcarriers)[None, :] * mask
    assert power.dtype == np.float32 and power.shape[0] == frames
    for f in range(frames):
        expected = _periodogram(h[f].astype(complex), weights, *power.shape[1:])
        np.testing.assert_allclose(power[f], expected, rtol=1e-4, atol=1e-5 * expected.max())
        single = range_doppler_map(h[f], mask, 120e3, 9e-6, 24e9, cfg).power      # the pipeline's own map
        np.testing.assert_allclose(power[f], single, rtol=1e-5, atol=1e-6 * single.max())


@pytest.mark.parametrize("name", _backends())
def test_planted_echo_peaks_at_its_bin(name):
    """An echo of delay tau and Doppler f_D lands in range bin tau R df and Doppler bin D/2 + f_D D T."""
    be = _backend(name)
    frame = FrameConfig(numerology=1, num_rb=4, fft_size=128, num_slots=1)
    s, k = 14, frame.num_subcarriers
    cfg = SensingConfig()
    n_range, n_doppler = 96, 28                        # next_fast_len(2 K), next_fast_len(2 S)
    r_true, d_true = 10, 19                            # bins: delay 10 / (R df), Doppler (19 - 14) / (D T)
    l_idx, k_idx = np.arange(s)[:, None], np.arange(k)[None, :]
    phase = (d_true - n_doppler // 2) / n_doppler * l_idx - r_true / n_range * k_idx
    h = np.stack([np.exp(2j * np.pi * phase), 0.5 * np.exp(2j * np.pi * (phase + 0.3))]).astype(np.complex64)
    out = sense_batch(h[:, None], np.ones((s, k), bool), frame, cfg, be)
    assert out.power.shape == (2, n_range, n_doppler)
    assert out.peaks == [[(r_true, d_true)], [(r_true, d_true)]]


@pytest.mark.parametrize("name", _backends())
@pytest.mark.parametrize("wrap", [True, False])
@pytest.mark.parametrize(("guard", "train", "min_training"), [((1, 1), (2, 2), 4), ((0, 2), (3, 1), 4),
                                                            ((2, 0), (1, 3), 30)])
def test_batch_cfar_matches_the_brute_force_ring(name, wrap, guard, train, min_training, rng):
    be = _backend(name)
    p = rng.exponential(size=(3, 14, 11))
    p[0, 5, 4] = 60.0                                   # targets, one at the range edge
    p[1, 0, 10] = 80.0
    p[2] = 0.0                                          # an empty map: nothing passes
    det = CaCfarDetector(1e-2, guard, train, wrap_doppler=wrap, min_training=min_training)
    mask = be.to_host(batch_cfar(be.asarray(p), det, be))
    for f in range(3):
        np.testing.assert_array_equal(mask[f], _ring_reference(p[f], 1e-2, guard, train, wrap, min_training))
        np.testing.assert_array_equal(mask[f], det.detect(p[f]).mask)
    assert mask[0, 5, 4] and not mask[2].any()


@settings(max_examples=40, deadline=None)
@given(frames=st.integers(0, 3), rows=st.integers(5, 12), cols=st.integers(3, 9),
       scale=st.sampled_from([0.0, 1e-300, 1.0, 1e30, 1e300]), seed=st.integers(0, 2**32 - 1),
       max_peaks=st.integers(0, 5), wrap_range=st.booleans(), name=st.sampled_from(["cpu", "numpy-vectorised"]))
def test_batch_cfar_and_peaks_on_any_map(frames, rows, cols, scale, seed, max_peaks, wrap_range, name):
    """Zero frames, all-zero maps, subnormal and huge powers: the batch equals detect() and the brute force."""
    be = _backend(name)
    g = np.random.default_rng(seed)
    p = g.exponential(size=(frames, rows, cols)) * scale
    det = CaCfarDetector(1e-3, (1, 0), (1, 1), min_training=2)
    mask = batch_cfar(p, det, be)
    assert mask.shape == p.shape
    peaks = batch_peaks(p, mask, max_peaks, wrap_range, be)
    assert len(peaks) == frames
    for f in range(frames):
        np.testing.assert_array_equal(mask[f], det.detect(p[f]).mask)
        assert peaks[f] == find_peaks(p[f], mask[f], max_peaks, wrap_range)
        ref = _peaks_reference(p[f], mask[f], max_peaks, wrap_range)
        assert {x for x in peaks[f]} == {x for x in ref} or len(set(p[f].ravel())) < p[f].size  # ties aside


@pytest.mark.parametrize("name", _backends())
def test_batch_peaks_match_brute_force_within_rows(name, rng):
    be = _backend(name)
    p = rng.exponential(size=(2, 20, 8)).astype(np.float32)
    p[0, 3, 2], p[0, 19, 7], p[1, 0, 0] = 50.0, 40.0, 30.0      # one at the wrapped corner
    hits = p > 5.0
    for wrap in (True, False):
        peaks = batch_peaks(be.asarray(p), be.asarray(hits[:, :15]), 4, wrap, be)
        for f in range(2):
            assert peaks[f] == _peaks_reference(p[f], hits[f, :15], 4, wrap)
            assert peaks[f] == find_peaks(p[f], hits[f, :15], 4, wrap)


@pytest.mark.parametrize("name", [n for n in _backends() if n != "cpu"])      # "cpu" is the reference itself
def test_gpu_and_cpu_agree_on_the_pipeline_frame(name, rng):
    """The same frame through the seam on this backend and on numpy: same peaks, maps to float32 rounding."""
    be = _backend(name)
    frame = FrameConfig(numerology=1, num_rb=4, fft_size=128, num_slots=2)
    s, k = 28, frame.num_subcarriers
    l_idx, k_idx = np.arange(s)[:, None], np.arange(k)[None, :]
    h = np.exp(2j * np.pi * (0.2 * l_idx - 0.07 * k_idx)) + 0.1 * (rng.standard_normal((4, 1, s, k))
                                                                  + 1j * rng.standard_normal((4, 1, s, k)))
    h = h.astype(np.complex64)
    cfg = SensingConfig()
    mine, cpu = sense_batch(h, np.ones((s, k), bool), frame, cfg, be), sense_batch(h, np.ones((s, k), bool), frame,
                                                                                   cfg)
    np.testing.assert_allclose(be.to_host(mine.power), cpu.power, rtol=1e-5, atol=1e-6 * float(cpu.power.max()))
    assert mine.peaks == cpu.peaks and all(mine.peaks)


def test_fft_workers_do_not_change_the_map(rng):
    mask = np.ones((8, 12), bool)
    h = (rng.standard_normal((1, 8, 12)) + 1j * rng.standard_normal((1, 8, 12))).astype(np.complex64)
    maps = [range_doppler_map(h, mask, 120e3, 9e-6, 24e9, SensingConfig(fft_workers=w)).power for w in (0, 1, 2)]
    np.testing.assert_array_equal(maps[0], maps[1])
    np.testing.assert_array_equal(maps[0], maps[2])
    assert fft_workers(0) == ofdm.FFT_WORKERS and fft_workers(3) == 3


def test_fft_workers_0_follows_the_process_default(monkeypatch):
    """A host's worker process sets ofdm.FFT_WORKERS = 1 once: every transform of sensing.fft_workers = 0 follows."""
    from sdr_isac.waveform.ofdm import THREADED_FFT_ELEMENTS
    monkeypatch.setattr(ofdm, "FFT_WORKERS", 1)
    assert fft_workers(0) == 1 and fft_workers(0, 10 * THREADED_FFT_ELEMENTS) == 1 and fft_workers(3, 10) == 3


@pytest.mark.parametrize("bad", [-1, 1.5, True, None, "2"])
def test_fft_workers_rejects_non_counts(bad):
    with pytest.raises(SensingError, match=r"^sensing.fft_workers = .*allowed an integer >= 0"):
        fft_workers(bad)


def test_config_backend_is_checked():
    assert SensingConfig().backend == "cpu" and SensingConfig(backend="cupy").backend == "cupy"
    with pytest.raises(ConfigError, match=r"backend = 'gpu': allowed cpu or cupy"):
        SensingConfig(backend="gpu")
    with pytest.raises(ConfigError, match=r"fft_workers = 300: allowed 0 ... 256"):
        SensingConfig(fft_workers=300)
    with pytest.raises(SensingError, match=r"sensing.backend = 'tpu': allowed cpu or cupy"):
        array_backend("tpu")


def test_cupy_backend_names_the_extra_when_missing():
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(SensingError, match=r"needs CuPy: install the gpu extra"):
            array_backend("cupy")
    else:
        pytest.skip("CuPy is installed")


def test_batch_rejects_bad_input(rng):
    det = CaCfarDetector(1e-3, (1, 1), (2, 2))
    with pytest.raises(SensingError, match=r"power has shape \(4, 4\): allowed \(frames, range, Doppler\)"):
        batch_cfar(np.ones((4, 4)), det)
    with pytest.raises(SensingError, match=r"at least 7 x 7 cells"):
        batch_cfar(np.ones((1, 6, 9)), det)
    for bad in (np.nan, np.inf, -1.0):
        p = np.ones((1, 9, 9))
        p[0, 4, 4] = bad
        with pytest.raises(SensingError, match=r"allowed finite values >= 0"):
            batch_cfar(p, det)
    with pytest.raises(SensingError, match=r"runs CA-CFAR only"):
        batch_cfar(np.ones((1, 9, 9)), GoCfarDetector(1e-3, (1, 1), (2, 2)))
    with pytest.raises(SensingError, match=r"h has shape \(2, 3, 4\)"):
        batch_maps(np.ones((2, 3, 4), np.complex64), np.ones((3, 4), bool), SensingConfig())
    with pytest.raises(SensingError, match=r"max_peaks = -1"):
        batch_peaks(np.ones((1, 4, 4)), np.ones((1, 4, 4), bool), -1)
    with pytest.raises(SensingError, match=r"rows <= R"):
        batch_peaks(np.ones((1, 4, 4)), np.ones((1, 5, 4), bool), 3)


def test_small_transforms_run_on_one_thread():
    from sdr_isac.waveform.ofdm import THREADED_FFT_ELEMENTS, fft_threads
    assert fft_workers(0, THREADED_FFT_ELEMENTS - 1) == 1
    assert fft_workers(0, THREADED_FFT_ELEMENTS) == ofdm.FFT_WORKERS == max(1, os.cpu_count() or 1)
    assert fft_workers(2, 10) == 2                        # a configured count is kept whatever the size
    assert fft_threads(100, 4) == 1 and fft_threads(THREADED_FFT_ELEMENTS, 4) == 4
