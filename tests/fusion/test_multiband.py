"""Multi-band fusion on the common grid: reorganisation, CS completion, bounds and estimates.

References are the grid equations of REFERENCE.md §3/§4 and the Cramér–Rao
bound, never numbers the code printed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdr_isac.channel.cim import add_cim_noise, measure_pilots, point_target_cim
from sdr_isac.errors import InputError
from sdr_isac.fusion.completion import complete_cim, noise_variance, pilot_noise, to_delay_doppler
from sdr_isac.fusion.multiband import (
    Band,
    BandWork,
    article_bands,
    common_grid,
    completion_support,
    estimate,
    periodic_block,
    pilot_mask,
    reorganise,
)
from sdr_isac.sensing.crb import range_crb_m2_mask

C = 3.0e8


def _echo(band: Band, range_m: float, velocity_mps: float, snr_db: float | None, rng: np.random.Generator,
          c: float = C) -> np.ndarray:
    h = point_target_cim(np.arange(band.num_subcarriers), band.symbol_times_s, band.subcarrier_spacing_hz,
                         [2 * range_m / c], [-2 * velocity_mps * band.carrier_hz / c], np.exp(2j * np.pi * rng.random()))
    if snr_db is None:
        return np.where(band.pilots, h, 0)
    return add_cim_noise(h, 10 ** (-snr_db / 10), rng, band.pilots)


def test_article_bands_match_reference_section_4() -> None:
    high, low = article_bands()
    # T = 1 / df + CP; REFERENCE rounds T_L to 39.3085 µs (CP 5.975 µs gives 39.30833 µs)
    assert high.symbol_period_s == pytest.approx(9.6633e-6, abs=1e-10)
    assert low.symbol_period_s == pytest.approx(39.3085e-6, abs=2e-10)
    # f_c T equal in both bands (231 920 within 2), so the per-symbol Doppler phases agree to 10 ppm
    assert high.carrier_hz * high.symbol_period_s == pytest.approx(231_920, abs=2.0)
    assert low.carrier_hz * low.symbol_period_s == pytest.approx(231_920, abs=2.0)
    assert high.pilots.sum() == 512 * 16 and high.pilots[::4].all()
    assert low.pilots.sum() == 128 * 64 and low.pilots[:, ::4].all()
    # grid of the article: 2.4414 m and 10.106 m/s with c = 3e8
    grid = common_grid([high, low])
    assert C * grid.delay_bin_s / 2 == pytest.approx(2.4414, abs=1e-4)
    assert C * grid.nu_bin / 2 == pytest.approx(10.106, abs=1e-3)


def test_low_band_comb_is_a_subsequence_of_the_high_band_range_steering_vector(rng: np.random.Generator) -> None:
    high, low = article_bands()
    grid = common_grid([high, low])
    tau, nu = 2 * 117.0 / C, -2 * 30.0 / C
    h_low = _echo(low, 117.0, 30.0, None, rng)
    y, mask = reorganise(low, h_low, grid)
    assert mask.sum() == low.pilots.sum() and mask[:, :128].all() and not mask[:, 128:].any()
    # on the common grid every entry follows the high band's model exp(-j2pi k df_H tau) exp(j2pi nu (fT)_H m)
    m, k = np.nonzero(mask)
    model = np.exp(-2j * np.pi * k * grid.subcarrier_spacing_hz * tau + 2j * np.pi * nu * grid.carrier_symbol_product * m)
    ratio = y[m, k] / model
    assert np.allclose(ratio, ratio[0], atol=1e-3)      # one complex amplitude: phases line up to 4 ppm of f T


def test_reorganise_rejects_incommensurate_spacing() -> None:
    odd = Band("odd", 5.9e9, 45e3, 5.975e-6, pilot_mask(4, 16, subcarrier_step=1))
    high, _ = article_bands(16, 4)
    with pytest.raises(InputError, match="off the common grid"):
        reorganise(odd, np.zeros((4, 16)), common_grid([high]))


def test_band_bounds_follow_the_closed_forms() -> None:
    high, low = article_bands()
    snr = 10 ** (-20 / 10)
    # high band: full rows on 16 symbols: the closed-form range bound over 512 subcarriers x 16 symbols
    n, m = 512, 16
    closed = 3 * C**2 / (8 * math.pi**2 * 120e3**2 * snr * n * m * (n**2 - 1))
    assert high.crb(snr)[0, 0] * (C / 2) ** 2 == pytest.approx(closed, rel=1e-9)
    # low band: the comb bound of the mask helper
    assert low.crb(snr)[0, 0] * (C / 2) ** 2 == pytest.approx(float(range_crb_m2_mask(snr, low.pilots, 30e3) * (C / 299_792_458.0) ** 2), rel=1e-9)
    # REFERENCE §4: full-grid high band √CRB at -20 dB is 0.053 m; a pilot on 1 of 4 symbols doubles it
    assert math.sqrt(high.crb(snr)[0, 0]) * C / 2 == pytest.approx(2 * 0.053, rel=0.02)


def test_noise_variance_estimate_is_unbiased_on_noise(rng: np.random.Generator) -> None:
    mask = pilot_mask(64, 512, subcarrier_step=4)
    h = add_cim_noise(np.zeros((64, 512)), 0.37, rng, mask)
    assert noise_variance(h, mask) == pytest.approx(0.37, rel=0.05)


@pytest.mark.parametrize("steps, offsets", [((1, 4), (0, 1)), ((2, 1), (1, 0)), ((2, 3), (0, 2)), ((1, 1), (0, 0))])
def test_pilot_noise_of_a_periodic_block_is_the_grid_median(steps: tuple[int, int], offsets: tuple[int, int],
                                                             rng: np.random.Generator) -> None:
    """Pilots on every g-th symbol and h-th subcarrier of the whole grid, noise of variance 0.37 and a target:
    the level from the block's own map is the median formula on the whole grid's map
    (``median |X|**2 M K / (n_obs ln 2)``, computed here with np.median), the whole grid's map is the block's
    repeated g x h times and scaled by R C / (M K), both levels are within 10 % of the truth (>= 1536 cells),
    and without the block the helper is noise_variance."""
    mask = pilot_mask(48, 192, *steps, *offsets)
    block = periodic_block(mask)
    assert block is not None
    h = add_cim_noise(np.zeros(mask.shape), 0.37, rng, mask)
    m, k = np.indices(mask.shape)
    h += np.where(mask, 3.0 * np.exp(2j * np.pi * (m * 5 / 48 - k * 11 / 192)), 0)   # one target, on a grid bin
    grid_map = np.abs(to_delay_doppler(np.where(mask, h, 0))) ** 2
    want = float(np.median(grid_map)) * mask.size / (mask.sum() * math.log(2))
    level, power = pilot_noise(h, mask, block)
    rows, cols = block
    assert power.shape == (rows.size, cols.size)
    np.testing.assert_allclose(np.tile(power, (steps[0], steps[1])) * power.size / mask.size, grid_map,
                               rtol=1e-9, atol=1e-12 * grid_map.max())
    assert level == pytest.approx(want, rel=1e-12)
    whole, whole_map = pilot_noise(h, mask)
    assert whole == noise_variance(h, mask) and whole == pytest.approx(want, rel=1e-12)
    np.testing.assert_array_equal(whole_map, grid_map)
    assert level == pytest.approx(0.37, rel=0.1) and whole == pytest.approx(0.37, rel=0.1)


def test_pilot_noise_refuses_an_empty_mask() -> None:
    with pytest.raises(InputError, match="mask selects no RE"):
        pilot_noise(np.ones((4, 8), complex), np.zeros((4, 8), bool))


@pytest.mark.parametrize("pattern", ["random", "block"])
def test_cs_recovers_a_sparse_on_grid_scene(pattern: str, rng: np.random.Generator) -> None:
    """Two on-grid scatterers, high SNR: the completed matrix matches the truth; zero-filling does not.

    ``random``: 30 % of the REs at random (the 2-D solver); ``block``: the first half of the subcarriers on
    every symbol (extrapolation, the split solver).  A regular comb would alias and is not recoverable.
    """
    mask = rng.random((16, 128)) < 0.3 if pattern == "random" else pilot_mask(16, 128) & (np.arange(128) < 64)
    k, sym_t = np.arange(128), np.arange(16) * 10e-6
    taus = np.array([5, 40]) / (128 * 120e3)            # on bins of the full 128 x 16 grid
    fds = np.array([2, -3]) / (16 * 10e-6)
    truth = point_target_cim(k, sym_t, 120e3, taus, fds, [1.0, 0.7j])
    noisy = add_cim_noise(truth, 1e-4, rng, mask)
    # a random mask spreads the targets' leakage like noise over the map, which the median-based noise
    # estimate would count as noise: give the known noise variance
    completed = complete_cim(noisy, mask, noise_var=1e-4, num_iter=300)
    zero = np.where(mask, noisy, 0)
    err_cs = np.linalg.norm(completed - truth) / np.linalg.norm(truth)
    err_zero = np.linalg.norm(zero - truth) / np.linalg.norm(truth)
    assert err_cs < 0.05
    assert err_zero > 0.65


@pytest.mark.parametrize("solver", ["split", "2-D"])
def test_a_block_pilot_is_completed_only_with_a_doppler_prior(solver: str, rng: np.random.Generator) -> None:
    """Pilots on every 4th symbol fit every Doppler alias equally: without a prior the completion is zero-filling
    (the article's high band was never completed); a support of Doppler bins narrower than the alias spacing (a
    largest speed) recovers the missing symbols.  The 2-D solver (a mask that is not a product) behaves alike."""
    m_sym, k_sc = 32, 64
    mask = pilot_mask(m_sym, k_sc, symbol_step=4)
    if solver == "2-D":
        mask = mask & (rng.random(mask.shape) < 0.9)             # a few pilots lost: no fully observed axis
    k, sym_t = np.arange(k_sc), np.arange(m_sym) * 10e-6
    truth = point_target_cim(k, sym_t, 120e3, [7 / (k_sc * 120e3)], [2 / (m_sym * 10e-6)], [1.0])
    noisy = add_cim_noise(truth, 1e-4, rng, mask)
    plain = complete_cim(noisy, mask, noise_var=1e-4, num_iter=300)
    if solver == "split":
        assert np.abs(plain[~mask]).max() < 0.05 * np.abs(truth).max()    # the aliases cancel: zero-filling
    support = np.zeros((m_sym, k_sc), dtype=bool)
    support[np.abs(np.fft.fftfreq(m_sym, 1.0 / m_sym)) <= 3, :] = True  # |Doppler bin| <= 3: below the alias spacing 8
    completed = complete_cim(noisy, mask, noise_var=1e-4, num_iter=300, support=support)
    error = np.linalg.norm(completed - truth) / np.linalg.norm(truth)
    assert error < 0.05 and np.linalg.norm(plain - truth) / np.linalg.norm(truth) > 10 * error
    with pytest.raises(InputError, match="support selects no delay-Doppler cell"):
        complete_cim(noisy, mask, support=np.zeros_like(support))
    with pytest.raises(InputError, match="support has shape"):
        complete_cim(noisy, mask, support=support[:, :3])


def test_the_fused_estimate_completes_both_bands_under_its_speed_prior(rng: np.random.Generator) -> None:
    """estimate(max_speed_mps=...) completes the high band's missing symbols too: its completed map's peak grows
    by about (M / M_pilots)**2 = 16 over the zero-filled one, as the low band's does by extrapolation."""
    high, low = article_bands()
    grid = common_grid([high, low])
    c = 3e8
    work = BandWork()
    h = [measure_pilots(b, [(2 * 117.0 / c, -2 * 30.0 * b.carrier_hz / c, 1.0)], rng, noise_var=1e-3)
         for b in (high, low)]
    estimate([high, low], h, grid=grid, max_speed_mps=80.0, speed_of_light_mps=c, work=work, refined=False)
    support = completion_support(grid, None, 2 * 80.0 / c)
    assert support is not None and support[:, 0].sum() < grid.num_symbols // 4     # narrower than the aliasing
    zero = work.placed(high, h[0], grid)[3].max()
    completed = work.completed_map(high, h[0], grid, support).max()
    assert 10.0 < completed / zero < 17.0
    assert completion_support(grid) is None


def test_cs_on_pure_noise_falls_back_to_zero_filling(rng: np.random.Generator) -> None:
    mask = pilot_mask(64, 512, symbol_step=4)
    noisy = add_cim_noise(np.zeros((64, 512)), 1.0, rng, mask)
    completed = complete_cim(noisy, mask)
    assert np.abs(completed[~mask]).max() < 0.05          # universal threshold: noise recovers to (almost) nothing
    assert np.array_equal(completed[mask], noisy[mask])   # measured entries are kept as measured


def test_split_and_two_dimensional_solvers_agree(rng: np.random.Generator) -> None:
    """The decoupled solver (one fully observed axis) gives the 2-D FISTA's answer."""
    band = Band("b", 24e9, 120e3, 0.0, pilot_mask(16, 64, subcarrier_step=4))
    h = add_cim_noise(point_target_cim(np.arange(64), band.symbol_times_s, 120e3, [3.3 / (64 * 120e3)],
                                       [1.6 / (16 * band.symbol_period_s)]), 0.01, rng, band.pilots)
    split = complete_cim(h, band.pilots, num_iter=500, tol=1e-10)
    # a mask that is not a product forces the 2-D solver; an extra observed RE of value = the split answer's
    # changes the problem, so instead compare through the transform: both minimise the same objective
    from sdr_isac.fusion import completion
    lam = completion.universal_threshold(completion.noise_variance(h, band.pilots), band.pilots)
    m = band.pilots
    x2 = completion._fista(lambda x: np.where(m, completion.from_delay_doppler(x), 0), to_delay_doppler,
                           np.where(m, h, 0), lam, 500, 1e-10)
    full = np.where(m, h, completion.from_delay_doppler(x2))
    assert np.allclose(split, full, atol=1e-6)


@pytest.mark.parametrize("c", [C, 299_792_458.0])
def test_noise_free_estimates_land_on_the_grid_and_refine_to_the_truth(c: float, rng: np.random.Generator) -> None:
    high, low = article_bands()
    grid = common_grid([high, low])
    d_r, d_v = c * grid.delay_bin_s / 2, c * grid.nu_bin / 2
    on_grid_r, on_grid_v = round(117.0 / d_r) * d_r, round(30.0 / d_v) * d_v
    hs = [_echo(b, 117.0, 30.0, None, rng, c) for b in (high, low)]
    for bands, cims in (([high], hs[:1]), ([low], hs[1:]), ([high, low], hs)):
        est = estimate(bands, cims, grid=grid, max_speed_mps=80.0, speed_of_light_mps=c)
        assert est["grid"].range_m == pytest.approx(on_grid_r, abs=1e-9)
        assert est["grid"].velocity_mps == pytest.approx(on_grid_v, abs=1e-9)
        assert est["refined"].range_m == pytest.approx(117.0, abs=1e-3)
        assert est["refined"].velocity_mps == pytest.approx(30.0, abs=1e-3)


def test_estimate_rejects_mismatched_inputs() -> None:
    high, low = article_bands()
    with pytest.raises(InputError, match="one CIM per band"):
        estimate([high, low], [np.zeros(high.pilots.shape)])
    with pytest.raises(InputError, match="allowed 'zero'"):
        estimate([high, low], [np.ones(high.pilots.shape), np.ones(low.pilots.shape)], completion="magic")
    with pytest.raises(InputError, match="cim has shape"):
        estimate([high], [np.ones((3, 3))])
