"""The Monte Carlo fast paths (issue #17 item 3) against independent computations.

- the joint Newton refinement's exact derivatives (``estimate._Joint``) against central differences of
  ``estimate.objective``, and its maximum against the alternating one-dimensional search it replaces;
- the periodic-block periodogram (``multiband.periodic_block``) against the full grid's transform and noise level;
- the single-band peak search of ``links.estimate_paths`` against ``multiband.grid_peak`` on the full map;
- ``multiband.BandWork``: estimates with shared work equal estimates without it;
- the block-restricted ``residual_noise_variance`` and the Levenberg-Marquardt call of ``locate`` against the
  full-grid formula and ``scipy.optimize.least_squares``;
- the remembered moments of ``crb.delay_doppler_fim`` against the closed form.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize as sp_opt
from hypothesis import given, settings
from hypothesis import strategies as st

from sdr_isac.channel.cim import measure_pilots
from sdr_isac.errors import InputError
from sdr_isac.experiments import fig5
from sdr_isac.fusion import links as fl
from sdr_isac.fusion import locate as nl
from sdr_isac.fusion import multiband as mb
from sdr_isac.fusion.completion import noise_variance, to_delay_doppler
from sdr_isac.fusion.records import LinkMeasurement
from sdr_isac.sensing import crb
from sdr_isac.sensing import estimate as core


def _random_look(rng: np.random.Generator, rows: int, cols: int, weight: float = 1.0) -> core.Look:
    data = (rng.standard_normal((rows, cols)) + 1j * rng.standard_normal((rows, cols))) / math.sqrt(2)
    return core.Look(data, 2 * math.pi * rng.uniform(-1, 1, cols), -2 * math.pi * rng.uniform(-1, 1, rows), weight)


def _central(looks: list[core.Look], tau: float, x: float, h: float) -> tuple[float, ...]:
    """Gradient and Hessian of ``objective`` by central differences (step h in both parameters)."""
    def j(a: float, b: float) -> float:
        return core.objective(looks, a, b)
    g_t = (j(tau + h, x) - j(tau - h, x)) / (2 * h)
    g_x = (j(tau, x + h) - j(tau, x - h)) / (2 * h)
    h_tt = (j(tau + h, x) - 2 * j(tau, x) + j(tau - h, x)) / h**2
    h_xx = (j(tau, x + h) - 2 * j(tau, x) + j(tau, x - h)) / h**2
    h_tx = (j(tau + h, x + h) - j(tau + h, x - h) - j(tau - h, x + h) + j(tau - h, x - h)) / (4 * h * h)
    return j(tau, x), g_t, g_x, h_tt, h_xx, h_tx


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 9), cols=st.integers(1, 9), looks=st.integers(1, 3),
       shared=st.booleans(), uniform=st.booleans(), tau=st.floats(-3, 3), x=st.floats(-3, 3),
       weight=st.sampled_from([1e-300, 1e-6, 1.0, 1e6]))
def test_joint_derivatives_are_the_central_differences_of_the_objective(seed, rows, cols, looks, shared, uniform, tau,
                                                                        x, weight):
    """J and its exact gradient and Hessian against ``objective`` (the definition) and its central differences,
    for one to three looks of one to nine rows and columns, with rates of their own or shared, uniform delay rates
    (the phasor progression) or not, and weights from tiny to huge."""
    rng = np.random.default_rng(seed)
    group = [_random_look(rng, rows, cols, weight) for _ in range(looks)]
    if uniform:
        group = [core.Look(lk.data, np.arange(cols) * 2 * math.pi * rng.uniform(0.1, 1), lk.doppler_rate, lk.weight)
                 for lk in group]
    if shared:
        group = [core.Look(lk.data, group[0].delay_rate, group[0].doppler_rate, lk.weight) for lk in group]
    exact = core._Joint(group).terms(tau, x)
    numeric = _central(group, tau, x, 1e-4)
    scale = sum(lk.weight * np.abs(lk.data).sum() ** 2 for lk in group) * 40.0   # |J''| <= w (sum |y|)**2 r**2
    assert exact[0] == pytest.approx(core.objective(group, tau, x), rel=1e-12, abs=1e-300)
    for got, want in zip(exact[1:], numeric[1:], strict=True):
        assert abs(got - want) <= 1e-5 * scale + 1e-300


def test_joint_derivatives_vanish_on_zero_data_and_refuse_nothing_there():
    """All-zero data: J and every derivative are 0, and the Newton ascent gives up (no slope) instead of moving."""
    look = core.Look(np.zeros((3, 4), dtype=np.complex128), np.arange(4.0), -np.arange(3.0), 1.0)
    assert core._Joint([look]).terms(0.3, -0.2) == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert core._newton_2d(core._Joint([look]), 0.3, -0.2, 0.1, 0.1) is None
    assert core.refine([look], (0.3, -0.2), (0.1, 0.1)) == (0.3, -0.2)


def _band_case(rng: np.random.Generator, snr_db: float, offset: tuple[float, float]):
    """The article's high band with one echo ``offset`` grid bins off the grid node (120, 3)."""
    high, _ = mb.article_bands()
    grid = mb.common_grid([high])
    tau = (120 + offset[0]) * grid.delay_bin_s
    nu = (3 + offset[1]) * grid.nu_bin
    h = measure_pilots(high, [(tau, nu * high.carrier_hz, 1.0)], rng, noise_var=10 ** (-snr_db / 10))
    looks = mb.band_looks([high], [h], [10 ** (-snr_db / 10)])
    return looks, (120 * grid.delay_bin_s, 3 * grid.nu_bin), (grid.delay_bin_s, grid.nu_bin), (tau, nu)


@pytest.mark.parametrize("snr_db", [-25.0, -15.0, 0.0, 20.0])
def test_joint_newton_finds_the_maximum_of_the_alternating_search(snr_db):
    """From the grid node next to an echo up to half a bin off in both parameters: where the joint Newton step
    applies (a concave start) it ends where the alternating one-dimensional search (the method it replaces, still
    the fallback) ends, to 1e-5 of a bin, and J there is no lower; its gradient there is zero."""
    rng = np.random.default_rng(int(100 + snr_db))
    compared = 0
    for offset in [(0.0, 0.0), (0.3, -0.2), (-0.5, 0.5), (0.45, 0.1), (0.1, 0.2), (-0.2, -0.1)]:
        looks, start, steps, _ = _band_case(rng, snr_db, offset)
        joint = core._newton_2d(core._Joint(looks), *start, *steps)
        alternating = core._alternate(looks, start, steps)[0]
        if joint is None:                        # refine falls back to the alternating search: nothing to compare
            continue
        compared += 1
        assert abs(joint[0] - alternating[0]) <= 1e-5 * steps[0]
        assert abs(joint[1] - alternating[1]) <= 1e-5 * steps[1]
        assert core.objective(looks, *joint) >= core.objective(looks, *alternating) * (1 - 1e-12)
        # the exact derivatives (checked against central differences above), in grid steps: a zero gradient
        _, g_t, g_x, h_tt, h_xx, _ = core._scaled_terms(core._Joint(looks), *joint, *steps)
        assert abs(g_t) <= 1e-5 * abs(h_tt) and abs(g_x) <= 1e-5 * abs(h_xx)
    assert compared >= 3


def test_refine_ends_on_the_maximum_of_the_alternating_search_in_the_threshold_region():
    """fig5's three band sets at -30 ... -20 dB per RE (where grid peaks stray and lobes are ragged), refined from
    their grid peaks: refine and the alternating search alone (the method before the joint step) reach the same
    maximum, to 1e-4 of a bin, in every case, and refine's J is no lower."""
    rng = np.random.default_rng(21)
    high, low, grid = fig5._setup()
    steps = (grid.delay_bin_s, grid.nu_bin)
    for snr_db in (-30.0, -26.0, -24.0, -20.0):
        for _ in range(6):
            h_high = fig5.synthesise(high, 117.0, 30.0, snr_db, rng, 3e8)
            h_low = fig5.synthesise(low, 117.0, 30.0, snr_db, rng, 3e8)
            for bands, cims in (([high], [h_high]), ([low], [h_low]), ([high, low], [h_high, h_low])):
                work = mb.BandWork()
                est = mb.estimate(bands, cims, grid=grid, max_speed_mps=80.0, speed_of_light_mps=3e8, refined=False,
                                  work=work)["grid"]
                looks = mb.band_looks(bands, cims, [work.placed(b, h, grid)[2] for b, h in zip(bands, cims)])
                start = (est.delay_s, est.nu)
                got = core.refine(looks, start, steps)
                want = core._alternate(looks, start, steps)[0]
                if abs(want[0] - start[0]) > 2 * steps[0] or abs(want[1] - start[1]) > 2 * steps[1]:
                    want = start
                # the alternation stops on a move below 1e-6 of a step, which along a slanted ridge (coordinate
                # ascent converges linearly) can be some 1e-5 short of the maximum: the same maximum within 1e-4,
                # and J at the joint step's end no lower
                assert abs(got[0] - want[0]) <= 1e-4 * steps[0] and abs(got[1] - want[1]) <= 1e-4 * steps[1]
                assert core.objective(looks, *got) >= core.objective(looks, *want) * (1 - 1e-12)


def test_a_higher_lobe_next_to_the_start_is_found_as_by_the_alternating_search():
    """fig5's fused bands at -27 dB, trial 0 of the runner's second point: the grid peak of the completed map sits
    on a small lobe of the likelihood, a higher one lies 1.2 bins away.  The joint step alone ends on the small
    lobe; refine sees a higher node one step around the start and takes the alternating search's maximum, the
    higher one (as before the joint step)."""
    rng = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(1, 0)))
    high, low, grid = fig5._setup()
    cims = [fig5.synthesise(high, 117.0, 30.0, -27.0, rng, 3e8), fig5.synthesise(low, 117.0, 30.0, -27.0, rng, 3e8)]
    work = mb.BandWork()
    est = mb.estimate([high, low], cims, grid=grid, max_speed_mps=80.0, speed_of_light_mps=3e8, refined=False,
                      work=work)["grid"]
    looks = mb.band_looks([high, low], cims, [work.placed(b, h, grid)[2] for b, h in zip([high, low], cims)])
    start, steps = (est.delay_s, est.nu), (grid.delay_bin_s, grid.nu_bin)
    small = core._newton_2d(core._Joint(looks), *start, *steps)
    walked = core._alternate(looks, start, steps)[0]
    got = core.refine(looks, start, steps)
    assert small is not None and core.objective(looks, *walked) > 1.2 * core.objective(looks, *small)
    assert got == walked


def test_refine_reaches_the_truth_without_noise_and_the_crb_with_it():
    """Noise-free, the refinement lands on the echo (1e-9 of a bin); at -5 dB per RE its RMSE over 120 trials is
    within [0.75, 1.3] of the CRB of the band's pilots (the sampling spread of 120 trials is about 13 %)."""
    rng = np.random.default_rng(7)
    looks, start, steps, truth = _band_case(rng, 200.0, (0.37, -0.41))
    got = core.refine(looks, start, steps)
    assert abs(got[0] - truth[0]) <= 1e-9 * steps[0] and abs(got[1] - truth[1]) <= 1e-9 * steps[1]
    high, _ = mb.article_bands()
    bound = high.crb(10 ** (-5 / 10))
    errors = []
    for _ in range(120):
        looks, start, steps, truth = _band_case(rng, -5.0, tuple(rng.uniform(-0.5, 0.5, 2)))
        got = core.refine(looks, start, steps)
        errors.append((got[0] - truth[0], got[1] - truth[1]))
    rmse = np.sqrt(np.mean(np.square(errors), axis=0))
    assert 0.75 <= rmse[0] / math.sqrt(bound[0, 0]) <= 1.3
    assert 0.75 <= rmse[1] / math.sqrt(bound[1, 1]) <= 1.3


def test_newton_gives_up_outside_its_box_and_refine_keeps_the_start_beyond_max_cells():
    """With steps of a tenth of a bin, an echo half a bin off lies five steps away: the joint ascent leaves its
    one-step box (None); refine falls back to the alternating search, which walks there step by step, and keeps
    the start with max_cells = 2 but reaches the echo with max_cells = 10."""
    rng = np.random.default_rng(3)
    looks, start, steps, truth = _band_case(rng, 30.0, (0.5, 0.0))
    fine = (0.1 * steps[0], 0.1 * steps[1])
    assert core._newton_2d(core._Joint(looks), *start, *fine) is None
    assert core.refine(looks, start, fine, max_cells=2.0) == start
    far = core.refine(looks, start, fine, max_cells=10.0)
    assert abs(far[0] - truth[0]) <= 0.01 * steps[0] and abs(far[1] - truth[1]) <= 0.01 * steps[1]


# ------------------------------------------------------------------ periodic blocks


@pytest.mark.parametrize("shape, rows, cols", [
    ((64, 512), slice(0, None, 4), slice(None)),       # the article's high band: a block pilot every 4th symbol
    ((64, 512), slice(None), slice(0, None, 4)),       # its low band: a comb every 4th subcarrier
    ((56, 384), slice(3, None, 4), slice(None)),       # fig6's BS 3: every 4th symbol from symbol 3
    ((12, 30), slice(1, None, 3), slice(2, None, 5)),  # both axes, with offsets
    ((8, 8), slice(None), slice(None)),                # the full grid
])
def test_the_periodic_block_gives_the_grid_s_periodogram_and_noise_level(shape, rows, cols):
    """The block's transform, tiled and scaled by R C / (M K), equals the whole grid's unitary periodogram, and
    the noise level from the block's map equals that from the grid's (the median of a tiled map is the median of
    its tile)."""
    rng = np.random.default_rng(11)
    mask = np.zeros(shape, dtype=bool)
    mask[rows, cols] = True
    h = np.where(mask, rng.standard_normal(shape) + 1j * rng.standard_normal(shape), 0)
    block = mb.periodic_block(mask)
    assert block is not None
    b_rows, b_cols = block
    cells = np.abs(to_delay_doppler(h[np.ix_(b_rows, b_cols)])) ** 2
    tiled = np.tile(cells, (shape[0] // b_rows.size, shape[1] // b_cols.size)) * (cells.size / mask.size)
    full = np.abs(to_delay_doppler(h)) ** 2
    np.testing.assert_allclose(tiled, full, rtol=1e-9, atol=1e-12 * full.max())
    assert core.noise_variance(cells, 1.0) == pytest.approx(noise_variance(h, mask), rel=1e-12)


@pytest.mark.parametrize("make", [
    lambda m: m.__setitem__((slice(0, 60, 4), slice(None)), True),        # 15 rows of 64: does not fill the grid
    lambda m: m.__setitem__((slice(None), slice(0, 128)), True),          # contiguous columns: not periodic
    lambda m: (m.__setitem__((slice(0, None, 4), slice(None)), True), m.__setitem__((0, 5), False)),  # a hole
    lambda m: m.__setitem__((slice(None), slice(None)), False),           # no RE at all
])
def test_other_masks_have_no_periodic_block(make):
    mask = np.zeros((64, 512), dtype=bool)
    make(mask)
    assert mb.periodic_block(mask) is None


def test_a_grid_whose_noise_level_is_subsampled_has_no_block():
    """From 200 000 cells the noise level subsamples the map (not a tile): no block, the full path stands."""
    mask = np.zeros((400, 500), dtype=bool)
    mask[::4] = True
    assert mb.periodic_block(mask) is None
    assert mb.periodic_block(mask[:, :499]) is not None


@pytest.mark.parametrize("offset", [0, 1, 3])
def test_the_single_band_peak_search_is_grid_peak_on_the_full_map(offset):
    """links.estimate_paths searches the block's map over the cells multiband.grid_peak searches on the full
    map: on random data (and on data with an echo) the two pick the same cell."""
    rng = np.random.default_rng(5 + offset)
    band = mb.Band("b", 24e9, 240e3, 1.33e-6, mb.pilot_mask(56, 384, symbol_step=4, symbol_offset=offset))
    layout = fl._layout(band)
    assert layout.block is not None
    for trial in range(20):
        echo = [(rng.uniform(0, 1.5e-6), rng.uniform(-2e3, 2e3), 3.0 if trial % 2 else 0.0)]
        h = measure_pilots(band, echo, rng, noise_var=1.0)
        hg, mask = mb.reorganise(band, h, layout.grid)
        want = mb.grid_peak(mb.band_map(hg, mask, "zero", 1.0)[0], layout.grid, [mask])
        power = np.abs(to_delay_doppler(np.where(band.pilots, h, 0)[np.ix_(*layout.block)])) ** 2
        r, d = divmod(int(np.argmax(power.ravel()[layout.region])), layout.region.shape[1])
        assert r == want[0]
        assert layout.region_nu[d] == layout.grid.nu_axis()[want[1]]


# ------------------------------------------------------------------ shared work of one trial


@pytest.mark.parametrize("snr_db", [-28.0, -10.0, 10.0])
def test_band_work_gives_the_estimates_of_separate_calls(snr_db):
    """fig5's four estimates with one BandWork equal the same calls without it (which make their own), and the
    composition without BandWork (full-grid maps and noise levels): the same grid cell, the same refined maximum
    to 1e-9 of a bin; the estimate-level fusion with it equals the one without to 1e-12 (its noise levels come
    from the pilots' blocks)."""
    rng = np.random.default_rng(int(50 + snr_db))
    high, low, grid = fig5._setup()
    h_high = fig5.synthesise(high, 117.0, 30.0, snr_db, rng, 3e8)
    h_low = fig5.synthesise(low, 117.0, 30.0, snr_db, rng, 3e8)
    kw = {"grid": grid, "max_speed_mps": 80.0, "speed_of_light_mps": 3e8}
    work = mb.BandWork()
    calls = [([high], [h_high], "cs"), ([low], [h_low], "cs"), ([high, low], [h_high, h_low], "cs"),
             ([high, low], [h_high, h_low], "zero")]
    for bands, cims, completion in calls:
        alone = mb.estimate(bands, cims, completion=completion, **kw)
        shared = mb.estimate(bands, cims, completion=completion, work=work, **kw)
        assert shared == alone
        # against the composition estimate() had before BandWork (reorganise -> band_map -> grid_peak -> refine):
        # the block's map and median are the full grid's to rounding, so the same grid cell and the same maximum
        maps, masks, sigmas = [], [], []
        for band, h in zip(bands, cims, strict=True):
            hg, mask = mb.reorganise(band, h, grid)
            power, s2 = mb.band_map(hg, mask, "zero" if len(bands) == 1 else completion)
            maps.append(power)
            masks.append(mask)
            sigmas.append(s2)
        r, d = mb.grid_peak(mb.fused_map(maps), grid, masks, None, 2.0 * 80.0 / 3e8)
        tau0, nu0 = r * grid.delay_bin_s, float(grid.nu_axis()[d])
        assert (alone["grid"].delay_s, alone["grid"].nu) == (tau0, nu0)
        tau, nu = mb.refine(bands, cims, sigmas, (tau0, nu0), (grid.delay_bin_s, grid.nu_bin))
        assert abs(alone["refined"].delay_s - tau) < 1e-9 * grid.delay_bin_s
        assert abs(alone["refined"].nu - nu) < 1e-9 * grid.nu_bin
    per_band = [mb.estimate([high], [h_high], **kw)["refined"], mb.estimate([low], [h_low], **kw)["refined"]]
    alone = mb.estimate_level_fusion([high, low], [h_high, h_low], per_band, 3e8)
    shared = mb.estimate_level_fusion([high, low], [h_high, h_low], per_band, 3e8, work=work)
    assert shared.delay_s == pytest.approx(alone.delay_s, rel=1e-12)
    assert shared.nu == pytest.approx(alone.nu, rel=1e-12)


def test_estimate_refuses_as_before():
    high, low, grid = fig5._setup()
    h = np.zeros(high.pilots.shape, dtype=np.complex128)
    with pytest.raises(InputError, match="completion = 'fill'"):
        mb.estimate([high, low], [h, h], completion="fill", grid=grid)
    with pytest.raises(InputError, match="noise variance 0.0 per RE"):
        mb.estimate([high], [h], grid=grid, work=mb.BandWork())


# ------------------------------------------------------------------ residual noise, locate, CRB moments


def test_residual_noise_variance_is_the_full_grid_formula():
    rng = np.random.default_rng(9)
    mask = np.zeros((20, 30), dtype=bool)
    mask[2::5, 1::3] = True
    mask[4, 7] = True
    k, t = np.arange(30) * 1e3, np.arange(20) * 1e-4
    paths = [core.Path(1e-5, 300.0, np.array([1.0 + 2j, -0.5j]), np.eye(2)),
             core.Path(3e-5, -800.0, np.array([0.3, 0.2 + 0.1j]), np.eye(2))]
    data = core.paths_model(paths, k, t) + rng.standard_normal((2, 20, 30)) * 0.1
    full = (data - core.paths_model(paths, k, t))[:, mask]
    dof = 2 * int(mask.sum()) - 2 * 3
    assert core.residual_noise_variance(data, mask, paths, k, t) == float(np.sum(np.abs(full) ** 2) / dof)


def test_locate_is_scipy_least_squares_levenberg_marquardt():
    """locate's MINPACK call gives bit for bit the solution of least_squares(method="lm", x_scale="jac") on the
    same residuals and Jacobian, with and without an angle, from random starts."""
    rng = np.random.default_rng(13)
    nodes = np.array([[0.0, 0.0, 25.0], [200.0, 0.0, 25.0], [200.0, 200.0, 25.0], [0.0, 200.0, 25.0]])
    for trial in range(60):
        p = np.array([*rng.uniform(-50, 250, 2), 60.0])
        links = []
        for i, j in [(0, 0), (1, 1), (2, 2), (0, 1), (2, 3), (3, 1)][: 2 + trial % 5]:
            r = np.linalg.norm(p - nodes[i]) + (np.linalg.norm(p - nodes[j]) if i != j else 0.0)
            sd = 10 ** rng.uniform(-2, 0.5)
            links.append(LinkMeasurement(i, j, r + sd * rng.standard_normal(), 0.0, sd**2, 1.0, 1.0))
        angle = None
        if trial % 3 == 0:
            angle = nl.single_fix(nodes, 0, [0.7071, -0.7071], float(np.linalg.norm(p - nodes[0])), 0.01,
                                  0.2, 4e-4, 60.0)
        start = rng.uniform(0, 200, 2)
        fun, jac = nl.weighted_residuals(nodes, links, 60.0, angle)
        want = sp_opt.least_squares(fun, start, jac=jac, method="lm", x_scale="jac").x
        got, _ = nl.locate(nodes, links, 60.0, start, angle)
        assert np.array_equal(got, want)


def test_locate_refuses_a_start_with_non_finite_residuals():
    nodes = np.array([[0.0, 0.0, 25.0], [200.0, 0.0, 25.0]])
    links = [LinkMeasurement(0, 0, 100.0, 0.0, 1.0, 1.0, 1.0), LinkMeasurement(1, 1, 120.0, 0.0, 1.0, 1.0, 1.0)]
    with pytest.raises(ValueError, match="not finite in the initial point"):
        nl.locate(nodes, links, 60.0, [np.nan, 0.0])


def test_delay_doppler_fim_remembered_moments_are_the_closed_form():
    """Full grid: J = 8 pi**2 gamma diag(df**2 M sum (k - mean)**2, K sum (t - mean)**2); asking twice (the second
    answer from the remembered moments) gives the same matrix, and changing the result does not change the next."""
    df, m, k = 30e3, 14, 50
    t = np.arange(m) * 3.5e-5
    mask = np.ones((m, k), dtype=bool)
    kk = np.arange(k) - (k - 1) / 2
    want = 8 * math.pi**2 * 2.0 * np.diag([df**2 * m * np.sum(kk**2), k * np.sum((t - t.mean()) ** 2)])
    first = crb.delay_doppler_fim(2.0, mask, df, t)
    np.testing.assert_allclose(first, want, rtol=1e-12, atol=1e-9 * np.abs(want).max())
    first[0, 0] = -1.0
    second = crb.delay_doppler_fim(2.0, mask, df, t)
    np.testing.assert_allclose(second, want, rtol=1e-12, atol=1e-9 * np.abs(want).max())
    with pytest.raises(InputError, match="snr_re"):
        crb.delay_doppler_fim(0.0, mask, df, t)


@pytest.mark.parametrize("symbol_step", [1, 4])
def test_all_zero_measurements_are_refused_with_the_hint(symbol_step):
    """A CIM of zeros has no noise level: refused naming the likely cause, on the block path and the full one."""
    band = mb.Band("b", 24e9, 240e3, 1.33e-6, mb.pilot_mask(56, 384, symbol_step=symbol_step))
    with pytest.raises(InputError, match=r"noise variance 0\.0 per RE: allowed > 0; the band's measurements are all "
                                         r"zero\?"):
        fl.estimate_paths(band, np.zeros(band.pilots.shape, dtype=np.complex128))


def test_the_joint_refinement_never_ends_below_the_alternation():
    """On fig5's bands in the threshold region (where the searches can end on different lobes), refine's J is at
    least the old alternation's from the same grid peak, on every seeded case."""
    high, low, grid = fig5._setup()
    rng = np.random.default_rng(2027)
    worse = []
    for trial in range(60):
        snr_db = (-30.0, -27.0, -25.0)[trial % 3]
        cims = [fig5.synthesise(b, 117.0, 30.0, snr_db, rng, 3e8) for b in (high, low)]
        work = mb.BandWork()
        sigmas = [work.placed(b, h, grid)[2] for b, h in zip((high, low), cims, strict=True)]
        looks = mb.band_looks([high, low], cims, sigmas)
        start = (mb.estimate([high, low], cims, completion="zero", grid=grid, refined=False)["grid"].delay_s,
                 mb.estimate([high, low], cims, completion="zero", grid=grid, refined=False)["grid"].nu)
        steps = (grid.delay_bin_s, grid.nu_bin)
        new = core.refine(looks, start, steps, max_cells=2.0)
        old = core._alternate(looks, start, steps)[0]
        if max(abs(old[0] - start[0]) / steps[0], abs(old[1] - start[1]) / steps[1]) > 2.0:
            old = start                                     # the old rule too: a result off the lobe is the start
        if core.objective(looks, *new) < core.objective(looks, *old) * (1 - 1e-9):
            worse.append((trial, new, old))
    assert not worse


def test_a_rate_array_changed_in_place_is_not_taken_for_its_old_self():
    """The uniformity of the last rates is remembered only for read-only arrays that own their values: a
    writable array changed in place between two refinements is decided again."""
    rate = 2 * np.pi * 1e3 * np.arange(16.0)
    assert core._uniform_once(rate)
    rate[5] += 1.0                                          # no longer a progression
    assert not core._uniform_once(rate)
    fixed = 2 * np.pi * 1e3 * np.arange(16.0)
    fixed.flags.writeable = False
    assert core._uniform_once(fixed) and core._uniform_once(fixed)
    view = np.arange(32.0)[::2]
    view.flags.writeable = False                            # read-only, but its base can still change
    assert core._uniform_once(view)
    view.base[10] = 0.0
    assert not core._uniform_once(view)
    lk = core.look(np.ones((4, 8)), np.ones((4, 8), bool), np.arange(8) * 1e3, np.arange(4) * 1e-4)
    assert not lk.delay_rate.flags.writeable and not lk.doppler_rate.flags.writeable


def test_links_estimates_on_the_pilot_block_are_those_of_the_full_grid(monkeypatch):
    """links.estimate_paths end to end: with the periodic block (its map for the first peak search and the noise
    level) and with the full-grid path (periodic_block refused), fig6's bands give the same paths to rounding."""
    from sdr_isac.experiments import fig6

    bands = fig6.bands()
    rng = np.random.default_rng(3)
    real = fl.periodic_block
    for trial in range(24):
        band = bands[trial % len(bands)]
        assert real(band.pilots) is not None                      # the block path is the one fig6 takes
        echo = [(rng.uniform(0.2e-6, 1.0e-6), rng.uniform(-1.5e3, 1.5e3), 10 ** ((-20, -10, 0)[trial % 3] / 20))]
        h = measure_pilots(band, echo, rng, noise_var=1.0)
        fl._layout_of.cache_clear()
        block = fl.estimate_paths(band, h, num_paths=2)
        monkeypatch.setattr(fl, "periodic_block", lambda mask: None)
        fl._layout_of.cache_clear()
        full = fl.estimate_paths(band, h, num_paths=2)
        monkeypatch.setattr(fl, "periodic_block", real)
        fl._layout_of.cache_clear()
        assert len(block) == len(full)
        for a, b in zip(block, full, strict=True):
            assert abs(a.delay_s - b.delay_s) < 1e-9 * (1.0 / (band.num_subcarriers * band.subcarrier_spacing_hz))
            assert a.snr_re == pytest.approx(b.snr_re, rel=1e-9)
