"""Tests of sdr_isac.sensing.estimate, the one estimation core: joint Newton refinement over looks with their own
carriers and masks (against the CRB), the resolvable region of pilot masks, CLEAN + RELAX, noise level, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdr_isac.errors import InputError
from sdr_isac.sensing import estimate as core
from sdr_isac.sensing.crb import crb_from_fim, delay_doppler_fim

# two bands of different carriers and numerologies, in (tau, nu = f_D / f_c): a block pilot and a comb pilot
BANDS = ((24e9, 120e3, 64, 128, (4, 1)), (5.9e9, 30e3, 64, 128, (1, 4)))


def _band(carrier_hz, df, m, k, steps):
    mask = np.zeros((m, k), dtype=bool)
    mask[:: steps[0], :: steps[1]] = True
    period = 1.0 / df + 1.33e-6
    return mask, np.arange(k) * df, np.arange(m) * period * carrier_hz, delay_doppler_fim(
        1.0, mask, df, np.arange(m) * period) * np.outer([1.0, carrier_hz], [1.0, carrier_hz])


def _measure(rng, tau, nu, snr, mask, freqs, times):
    phase = np.exp(2j * math.pi * rng.random())
    h = math.sqrt(snr) * phase * np.outer(np.exp(2j * math.pi * times * nu), np.exp(-2j * math.pi * freqs * tau))
    noise = (rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape)) / math.sqrt(2)
    return np.where(mask, h + noise, 0)


def test_joint_refinement_over_bands_reaches_the_fused_crb(rng):
    """Two bands with different carriers and masks, refined jointly from half a bin off: RMSE on the fused CRB
    (the sum of the bands' Fisher informations), within [0.75, 1.3] over 150 trials (+-12 % of sampling spread)."""
    snr = 10 ** (-12 / 10)
    bands = [_band(*b) for b in BANDS]
    crb = crb_from_fim(sum(snr * b[3] for b in bands))
    bins = (1.0 / (128 * 120e3), 1.0 / (64 * (1 / 120e3 + 1.33e-6) * 24e9))
    errs = []
    for _ in range(150):
        tau, nu = 300e-9 + rng.uniform(0, bins[0]), -4e-7 + rng.uniform(0, bins[1])
        looks = [core.look(_measure(rng, tau, nu, snr, mask, f, t), mask, f, t) for mask, f, t, _ in bands]
        start = (tau + 0.45 * bins[0] * rng.choice([-1, 1]), nu + 0.45 * bins[1] * rng.choice([-1, 1]))
        got = core.refine(looks, start, bins)
        errs.append((got[0] - tau, got[1] - nu))
    ratio = np.sqrt(np.mean(np.square(errs), axis=0) / np.diag(crb))
    assert np.all((0.75 < ratio) & (ratio < 1.3)), ratio


def test_refinement_lands_on_the_maximum_of_the_likelihood(rng):
    """Noise-free data of one look plus a second look: refine() finds the maximum a dense search finds."""
    bands = [_band(*b) for b in BANDS]
    tau, nu = 412.3e-9, 3.1e-7
    looks = [core.look(_measure(rng, tau, nu, 1.0, mask, f, t), mask, f, t) for mask, f, t, _ in bands]
    bins = (1.0 / (128 * 120e3), 1.0 / (64 * (1 / 120e3 + 1.33e-6) * 24e9))
    got = core.refine(looks, (tau + 0.3 * bins[0], nu - 0.3 * bins[1]), bins)
    dense = [(core.objective(looks, a, b), a, b) for a in tau + bins[0] * np.linspace(-0.05, 0.05, 41)
             for b in nu + bins[1] * np.linspace(-0.05, 0.05, 41)]
    best = max(dense)
    assert core.objective(looks, *got) >= best[0] * (1 - 1e-9)
    assert abs(got[0] - best[1]) < 0.003 * bins[0] and abs(got[1] - best[2]) < 0.003 * bins[1]


def test_refinement_never_leaves_the_lobe_it_started_in():
    """Zero data: J is flat, refine() keeps the start; a start far from the only peak is returned as is when the
    optimum lies beyond max_cells."""
    mask = np.ones((8, 16), dtype=bool)
    freqs, times = np.arange(16) * 1e3, np.arange(8) * 1e-3
    flat = core.look(np.zeros((8, 16)), mask, freqs, times)
    assert core.refine([flat], (1e-5, 3.0), (1 / 16e3, 1 / 8e-3)) == (1e-5, 3.0)


def test_resolvable_steps_are_per_look():
    """Two combs every 4th subcarrier, offset by 2: each look aliases every quarter of the delays, so their sum
    does too (the union would wrongly claim every 2nd)."""
    a = np.zeros((4, 16), dtype=bool)
    b = a.copy()
    a[:, 0::4] = True
    b[:, 2::4] = True
    assert core.resolvable_steps([a, b]) == (1, 4)
    assert core.resolvable_steps([np.stack([a, b])]) == (1, 4)
    c = np.zeros((8, 16), dtype=bool)
    c[::2, 3] = True                                    # one column: no delay aliasing; every 2nd symbol
    assert core.resolvable_steps([c]) == (2, 1)


def test_grid_peak_searches_only_the_allowed_region():
    power = np.zeros((8, 6))
    power[7, 0] = 10.0                                  # beyond the delay limit
    power[2, 3] = 5.0                                   # beyond the Doppler limit (30)
    power[3, 2] = 1.0
    delays, doppler = np.arange(8) * 1.0, np.array([0.0, 1.0, 2.0, 3.0, -2.0, -1.0]) * 10
    assert core.grid_peak(power, delays, doppler) == (7, 0)
    assert core.grid_peak(power, delays, doppler, max_delay_s=7.0, max_doppler=20.0) == (3, 2)
    with pytest.raises(InputError, match="search region is empty"):
        core.grid_peak(power, delays, doppler, max_delay_s=0.0)


def test_clean_relax_separates_two_close_paths_on_two_looks(rng):
    """Two equal paths 3 delay bins apart seen by two looks with their own amplitudes: both paths within 4 CRB
    standard deviations, amplitudes per look recovered."""
    mask, freqs, times, fim = _band(24e9, 120e3, 32, 128, (1, 1))
    bin_s = 1.0 / (128 * 120e3)
    taus, nus = (300e-9, 300e-9 + 3 * bin_s), (2e-7, 2e-7)
    amps = np.array([[3.0, 2.0j], [-2.5, 3.0]])             # (look, path)
    h = np.zeros((2, 32, 128), dtype=complex)
    for b in range(2):
        for p in range(2):
            h[b] += amps[b, p] * np.outer(np.exp(2j * math.pi * times * nus[p]), np.exp(-2j * math.pi * freqs * taus[p]))
    h += (rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape)) / math.sqrt(2)
    power_bins = (bin_s / 2, 1.0 / (2 * 32 * times[1]))

    def peak(residual):
        spec = np.sum(np.abs(np.fft.fft(np.fft.ifft(residual, n=256, axis=2), n=64, axis=1)) ** 2, axis=0)
        m, k = np.unravel_index(int(np.argmax(spec)), spec.shape)
        return k * power_bins[0], (m if m < 32 else m - 64) * power_bins[1]

    paths = core.estimate_paths(h, mask, freqs, times, [1.0, 1.0], [fim, fim], 2, peak, power_bins)
    paths.sort(key=lambda p: p.delay_s)
    for path, tau, nu, a in zip(paths, taus, nus, amps.T, strict=True):
        assert abs(path.delay_s - tau) < 4 * math.sqrt(path.crb[0, 0])
        assert abs(path.doppler - nu) < 4 * math.sqrt(path.crb[1, 1])
        assert np.allclose(path.amplitudes, a, atol=0.1)


@pytest.mark.parametrize(("bad", "allowed"), [(0, "a whole number >= 1"), (-1, "a whole number >= 1"),
                                              (True, "a whole number >= 1"), (2.5, "a whole number >= 1"),
                                              (2.0, "a whole number >= 1"), (None, "a whole number >= 1"),
                                              ("2", "a whole number >= 1"), (2**63, "at most 128"),
                                              (129, "at most 128")])
def test_estimate_paths_names_a_bad_path_count(bad, allowed):
    mask, freqs, times, fim = _band(24e9, 120e3, 8, 16, (1, 1))
    with pytest.raises(InputError, match=f"num_paths = .*allowed {allowed}"):
        core.estimate_paths(np.zeros((1, 8, 16)), mask, freqs, times, [1.0], [fim], bad, lambda r: (0.0, 0.0),
                            (1e-6, 1e-7))


def test_noise_variance_is_unbiased_on_noise_and_robust_to_a_target(rng):
    """Periodogram of white noise of variance 0.37 per RE, with and without a strong target: within 4 %."""
    h = math.sqrt(0.37 / 2) * (rng.standard_normal((3, 64, 256)) + 1j * rng.standard_normal((3, 64, 256)))
    h[:, :, :] += 20 * np.exp(2j * math.pi * 0.1 * np.arange(256))
    power = np.sum(np.abs(np.fft.fft2(h, norm="ortho")) ** 2, axis=0)
    assert core.noise_variance(power, 1.0, 3) == pytest.approx(0.37, rel=0.04)


@pytest.mark.parametrize("gain", [0.0, -1.0, math.nan, math.inf])
def test_noise_variance_names_a_bad_cell_gain(gain):
    with pytest.raises(InputError, match="cell_gain"):
        core.noise_variance(np.ones((4, 4)), gain)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: core.look(np.ones((2, 2)), np.zeros((2, 2), bool), [0, 1], [0, 1]), "mask selects no RE"),
    (lambda: core.look(np.ones((2, 2)), np.ones((2, 2), bool), [0, 1], [0, 1], 0.0), "noise_var = 0.0"),
    (lambda: core.look(np.ones((2, 2)), np.ones((2, 2), bool), [0, 1], [0, 1], math.nan), "noise_var = nan"),
    (lambda: core.look(np.ones((2, 2)), np.ones((2, 2), bool), [0, 1], [0, 1], math.inf), "noise_var = inf"),
    (lambda: core.refine([], (0.0, 0.0), (1.0, 1.0)), "looks is empty"),
    (lambda: core.refine([core.look(np.ones((2, 2)), np.ones((2, 2), bool), [0, 1], [0, 1])], (0.0, 0.0),
                         (0.0, 1.0)), "steps"),
    (lambda: core.refine([core.look(np.ones((2, 2)), np.ones((2, 2), bool), [0, 1], [0, 1])], (0.0, 0.0),
                         (1.0, math.inf)), "steps"),
    (lambda: core.ml_angle([1.0], [0.0]), "positions_wl"),
    (lambda: core.ml_angle([1.0, math.nan], [0.0, 0.5]), "snapshots"),
    (lambda: core.ml_angle([1.0, 1.0, 1.0], [0.0, 0.5]), "snapshots"),
    (lambda: core.ml_angle([1.0, 1.0], [0.0, 0.5], max_sin=0.0), "max_sin"),
    (lambda: core.ml_angle([1.0, 1.0], [0.0, 0.5], max_sin=1.5), "max_sin"),
])
def test_errors_name_the_field_and_what_is_allowed(call, message):
    with pytest.raises(InputError, match=message):
        call()


def test_the_paths_model_and_the_residual_noise_of_known_paths() -> None:
    from sdr_isac.sensing.estimate import Path, paths_model, residual_noise_variance

    rng = np.random.default_rng(3)
    k = np.arange(64) * 30e3
    t = np.arange(32) * 35.7e-6
    paths = [Path(2e-7, 400.0, np.array([1.0 + 0.5j, -0.3j]), np.eye(2)),
             Path(9e-7, -1200.0, np.array([0.2, 0.4 + 0.1j]), np.eye(2))]
    model = paths_model(paths, k, t)
    by_hand = np.zeros((2, 32, 64), dtype=complex)
    for p in paths:
        for b in range(2):
            for m in range(32):
                for n in range(64):
                    by_hand[b, m, n] += p.amplitudes[b] * np.exp(2j * np.pi * (t[m] * p.doppler - k[n] * p.delay_s))
    assert np.allclose(model, by_hand, rtol=0, atol=1e-12)
    sigma2 = 0.05
    mask = rng.random((32, 64)) < 0.5
    noise = np.sqrt(sigma2 / 2) * (rng.standard_normal(model.shape) + 1j * rng.standard_normal(model.shape))
    got = residual_noise_variance(model + noise, mask, paths, k, t)
    n = 2 * int(mask.sum())
    # the true paths leave pure noise: its mean power over n REs, scaled by n / (n - 2 paths x 3 parameters)
    assert abs(got / sigma2 - n / (n - 6)) < 4 * np.sqrt(1.0 / n)
