"""Tests of sdr_isac.sensing.detection: the one-dimensional maximisation behind the off-grid refinement, and the
helpers that make it and the noise estimate fast."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdr_isac.errors import InputError
from sdr_isac.sensing.crb import crb_from_fim
from sdr_isac.sensing.detection import _MaskStats, _slow_time_pattern
from sdr_isac.sensing.estimate import _median, _Objective, _Products, ml_angle
from sdr_isac.sensing.estimate import maximise_1d as _max_1d
from sdr_isac.sensing.estimate import newton_peak as _newton_peak
from sdr_isac.sensing.estimate import phasor as _phasor


def cost_on(data, rate, x, centred):
    """sum_c |sum_n data_cn exp(j rate_n x)|**2 over the squared norm of the phasor (mean removed if centred)."""
    z = np.exp(1j * rate * x)
    if centred:
        z = z - z.mean()
    return float(np.sum(np.abs(data @ z) ** 2) / np.sum(np.abs(z) ** 2))


@pytest.mark.parametrize("centred", [False, True])
@pytest.mark.parametrize("channels", [1, 4])
def test_newton_finds_the_peak_a_dense_search_finds(centred, channels, rng):
    n, step = 64, 1.0 / 128                                 # 2x oversampled grid of a unit-spaced rate
    rate = 2 * np.pi * np.arange(n) + 0.3                   # an offset: the centred phasor is not trivial
    truth = 0.2371
    data = (np.exp(-1j * rate * truth)[None, :] * (1 + rng.random((channels, 1)))
            + 0.3 * (rng.standard_normal((channels, n)) + 1j * rng.standard_normal((channels, n))))
    grid = np.linspace(truth - 2 * step, truth + 2 * step, 4001)
    best = grid[np.argmax([cost_on(data, rate, x, centred) for x in grid])]
    start = best + 0.4 * step                               # where a parabolic grid estimate might land
    found = _newton_peak(data, rate, start, step, centred)
    assert found is not None
    assert found == pytest.approx(best, abs=2e-3 * step)
    # the gradient vanishes there, to far better than the grid spacing of the dense search
    h = 1e-6 * step
    slope = (cost_on(data, rate, found + h, centred) - cost_on(data, rate, found - h, centred)) / (2 * h)
    assert abs(slope) * step < 1e-6 * cost_on(data, rate, found, centred)


def test_newton_gives_up_outside_the_main_lobe_and_restarts_from_the_best_point():
    n, step = 32, 1.0 / 64
    rate = 2 * np.pi * np.arange(n)
    data = np.exp(-1j * rate * 0.5)[None, :]
    start = 0.5 + 0.45 / n                                   # near the first null: not concave
    assert _newton_peak(data, rate, start, step, False) is None

    def phasor(x):
        return np.exp(1j * rate * x)
    found = _max_1d(phasor, data, start, 2 * step / 0.9, rate, False)
    assert found == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize("n", [1, 2, 3, 16, 17, 64, 1020])
def test_uniform_phasor_is_the_exponential(n):
    rate = 2 * np.pi * 120e3 * np.arange(n)
    for x in (2.6e-7, -4.1e-6, np.array([1e-7, 3e-7, -4e-6])):
        direct = np.exp(1j * np.multiply.outer(rate, x))
        for uniform in (False, True):
            found = _phasor(rate, x, uniform)
            assert found.shape == direct.shape
            # a few ulp of the phase, which reaches n * 0.3 rad here
            assert np.max(np.abs(found - direct)) < 1e-14 * max(n, 16)


@pytest.mark.parametrize("uniform", [False, True])
def test_products_are_rows_times_the_phasor(uniform, rng):
    n = 1020
    rate = 2 * np.pi * 120e3 * np.arange(n) if uniform else np.sort(rng.uniform(-5e4, 5e4, n))
    products = _Products((3, 2), rate, uniform)
    rows = rng.standard_normal((3, 2, n)) + 1j * rng.standard_normal((3, 2, n))
    products.data[...] = rows
    for x in (3.1e-7, -2e-6):
        expected = rows.reshape(6, n) @ np.exp(1j * rate * x)
        assert np.allclose(products(x), expected, rtol=0, atol=1e-12 * np.sum(np.abs(rows)))


@pytest.mark.parametrize("uniform", [False, True])
@pytest.mark.parametrize("centred", [False, True])
def test_objective_values_are_the_normalised_periodogram(centred, uniform, rng):
    n = 112
    rate = 2 * np.pi * np.arange(n) if uniform else -2 * np.pi * np.cumsum(rng.uniform(0.9, 1.1, n))
    data = rng.standard_normal((3, n)) + 1j * rng.standard_normal((3, n))
    points = np.array([-0.013, 0.0021, 0.25, 0.0])
    found = _Objective(data, rate, centred, uniform).values(points)
    for x, value in zip(points, found):
        if centred and x == 0.0:                           # the centred phasor vanishes: 0 / 0 or x / 0
            assert not np.isfinite(value)
            continue
        z = np.exp(1j * rate * x)
        if centred:
            z = z - z.mean()
        expected = np.sum(np.abs(data @ z) ** 2) / (np.sum(np.abs(z) ** 2) if centred else 1.0)
        assert value == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("centred", [False, True])
def test_newton_on_a_geometric_progression_finds_the_same_peak(centred, rng):
    n, step = 1020, 1.0 / (2 * 1020)
    rate = 2 * np.pi * np.arange(n)
    data = np.exp(-1j * rate * 0.3137)[None, :] + 0.3 * (rng.standard_normal((2, n)) + 1j * rng.standard_normal((2, n)))
    general = _newton_peak(data, rate, 0.3137 + 0.3 * step, step, centred)
    fast = _newton_peak(data, rate, 0.3137 + 0.3 * step, step, centred, uniform=True)
    assert general is not None and fast is not None
    assert fast == pytest.approx(general, abs=1e-9 * step)


@pytest.mark.parametrize("n", [1, 2, 5, 16383, 16384, 51225, 51226])
def test_median_is_numpys(n, rng):
    cases = [rng.exponential(size=n).astype(np.float32), np.sort(rng.exponential(size=n)),
             rng.integers(0, 3, n).astype(np.float32),                                    # ties everywhere
             np.where(np.arange(n) % 7 == 0, 0.0, rng.exponential(size=n))]
    # a subsample that misleads: every element it picks is huge, so the bracket misses the middle
    misleading = rng.exponential(size=n)
    misleading[:: max(n // 2048, 1)] = 1e9
    for values in [*cases, misleading]:
        assert _median(values.copy()) == float(np.median(values))


def test_slow_time_pattern_is_the_unit_conjugate():
    times = np.arange(14) * 8.9e-6 + np.where(np.arange(14) > 6, 0.5e-6, 0.0)      # one longer cyclic prefix
    rate = -2 * np.pi * times
    for f in (0.0, 2400.0, -1.3e4):
        plain = _slow_time_pattern(rate, f, False)
        assert np.allclose(plain, np.conj(np.exp(2j * np.pi * f * times)) / math.sqrt(times.size), atol=1e-15)
        centred = _slow_time_pattern(rate, f, True)
        v = np.exp(2j * np.pi * f * times)
        v -= v.mean()
        expected = np.conj(v) / np.linalg.norm(v) if f else np.zeros_like(v)   # zero Doppler: nothing left
        assert np.allclose(centred, expected, atol=1e-12)


def test_mask_statistics_scale_the_unit_bound():
    mask = np.ones((14, 24), dtype=bool)
    mask[::3, ::2] = False
    mask.flags.writeable = False
    times = np.arange(14) * 8.9e-6
    stats = _MaskStats.of(mask, 120e3, times)
    for snr in (1e-12, 0.3, 4.0, 1e9):
        assert np.allclose(stats.crb(snr), crb_from_fim(snr * stats.unit_fim), rtol=1e-12, atol=0)
    with pytest.raises(InputError):                 # what the direct inverse says of an infinite SNR
        stats.crb(math.inf)
    one_symbol = np.zeros((14, 24), dtype=bool)
    one_symbol[3] = True                            # no Doppler information: the bound does not exist
    with pytest.raises(InputError, match="not observable"):
        _MaskStats.of(one_symbol, 120e3, times).crb(1.0)


@pytest.mark.parametrize("positions", [0.5 * np.arange(4), np.array([0.0, 0.5, 2.0, 3.5]), 0.5 * np.arange(16)])
def test_ml_angle_is_the_maximum_of_a_dense_search(positions, rng):
    """ml_angle (grid + Newton) lands on the maximum of sum_k |a(u)^H x_k|**2 that a dense search finds."""
    for _ in range(5):
        x = rng.normal(size=(positions.size, 3)) + 1j * rng.normal(size=(positions.size, 3))
        x += 3 * np.exp(2j * math.pi * positions * math.sin(rng.uniform(-1.2, 1.2)))[:, None]
        u = np.linspace(-1, 1, 400_001)
        power = np.sum(np.abs(np.exp(-2j * math.pi * np.multiply.outer(u, positions)) @ x) ** 2, axis=1)
        assert math.sin(ml_angle(x, positions)) == pytest.approx(u[int(np.argmax(power))], abs=2e-5)
