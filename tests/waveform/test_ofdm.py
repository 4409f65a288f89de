"""OFDM (de)modulation: subcarrier mapping, cyclic prefixes, offsets, energy."""

from __future__ import annotations

import numpy as np
import pytest

from sdr_isac.errors import InputError
from sdr_isac.waveform import OfdmModulator
from sdr_isac.waveform.numerology import cyclic_prefix_lengths


def random_grid(rng, ports, symbols, subcarriers):
    return (rng.standard_normal((ports, symbols, subcarriers))
            + 1j * rng.standard_normal((ports, symbols, subcarriers))).astype(np.complex64)


@pytest.mark.parametrize("cp", [
    cyclic_prefix_lengths(1, 256, 28),                 # normal CP with two long symbols
    np.full(10, 40),                                   # uniform explicit
    np.array([0, 5, 17, 3, 250, 1, 1, 2]),            # anything per symbol
])
def test_round_trip(cp, rng):
    mod = OfdmModulator(240, 256, cp)
    grid = random_grid(rng, 2, cp.size, 240)
    samples = mod.modulate(grid)
    assert samples.shape == (2, int(np.sum(cp)) + 256 * cp.size) and samples.dtype == np.complex64
    np.testing.assert_allclose(mod.demodulate(samples), grid, atol=2e-5)


def test_cyclic_prefix_copies_the_symbol_tail(rng):
    cp = cyclic_prefix_lengths(0, 128, 14)            # 10 samples + 1 on symbols 0 and 7 (REFERENCE.md §1)
    np.testing.assert_array_equal(cp, [10, 9, 9, 9, 9, 9, 9, 10, 9, 9, 9, 9, 9, 9])
    mod = OfdmModulator(72, 128, cp)
    x = mod.modulate(random_grid(rng, 1, 14, 72))[0]
    for start, length in zip(mod.symbol_starts, cp):
        np.testing.assert_array_equal(x[start:start + length], x[start + 128:start + 128 + length])


def test_subcarrier_k_is_at_frequency_k_minus_half(rng):
    n_fft, k_sc = 64, 48
    mod = OfdmModulator(k_sc, n_fft, [0])
    n = np.arange(n_fft)
    for k in (0, 10, 24, 47):
        grid = np.zeros((1, 1, k_sc), dtype=np.complex64)
        grid[0, 0, k] = 1.0
        expected = np.exp(2j * np.pi * (k - k_sc // 2) * n / n_fft) / np.sqrt(n_fft)
        np.testing.assert_allclose(mod.modulate(grid)[0], expected, atol=1e-6)


def test_unitary_transform_keeps_energy(rng):
    mod = OfdmModulator(600, 1024, np.zeros(6, dtype=int))
    grid = random_grid(rng, 1, 6, 600)
    assert np.sum(np.abs(mod.modulate(grid)) ** 2) == pytest.approx(np.sum(np.abs(grid) ** 2), rel=1e-5)


def test_demodulate_at_offset(rng):
    mod = OfdmModulator(120, 128, [9, 10, 9])
    grid = random_grid(rng, 1, 3, 120)
    x = mod.modulate(grid)
    padded = np.concatenate([np.zeros((1, 37), np.complex64), x, np.zeros((1, 5), np.complex64)], axis=1)
    np.testing.assert_allclose(mod.demodulate(padded, offset=37), grid, atol=2e-5)
    with pytest.raises(InputError, match=r"offset = 43 samples with 454 samples: the frame needs 412 samples .* allowed offset 0 \.\.\. 42"):
        mod.demodulate(padded, offset=43)


@pytest.mark.parametrize("args, pattern", [
    ((121, 128, [9]), r"\(num_subcarriers, fft_size\) = \(121, 128\)"),
    ((120, 64, [9]), r"\(num_subcarriers, fft_size\) = \(120, 64\)"),
    ((120, 128, [128]), r"cp_lengths span 128 \.\.\. 128 samples: allowed 0 \.\.\. 127"),
])
def test_bad_layouts(args, pattern):
    with pytest.raises(InputError, match=pattern):
        OfdmModulator(*args)


def test_bad_arrays():
    mod = OfdmModulator(120, 128, [9, 9])
    with pytest.raises(InputError, match=r"grid has shape \(1, 3, 120\): allowed \(ports, 2, 120\)"):
        mod.modulate(np.zeros((1, 3, 120), np.complex64))
    with pytest.raises(InputError, match=r"samples has shape \(2, 3, 4\)"):
        mod.demodulate(np.zeros((2, 3, 4), np.complex64))
    with pytest.raises(InputError, match=r"dtype int64"):
        mod.demodulate(np.zeros((1, 400), np.int64))
