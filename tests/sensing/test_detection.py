"""Tests of sdr_isac.sensing.detection: the one-dimensional maximisation behind the off-grid refinement."""

from __future__ import annotations

import numpy as np
import pytest

from sdr_isac.sensing.detection import _max_1d, _newton_peak


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
