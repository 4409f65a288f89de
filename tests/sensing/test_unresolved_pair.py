"""Two echoes closer than one resolution cell: the model-order test of the detection stage.

Two echoes 0.5 to 0.8 of a delay resolution cell (c / 2B) apart make one peak.  Refined as one echo, the
estimate lay between them (range NEES ~1e5 against its bound) and its residual, some 50 dB above the noise,
passed as ghost echoes at other ranges and Dopplers.  After each refined echo the pipeline now tests its
residual against the map's significance threshold, fits two paths with the package's estimator where it is
significant, and keeps them where the likelihood ratio passes a chi-square test at the design pfa.

The captures are synthesised from the model itself: H = sum of two delay-Doppler exponentials plus white
noise of unit variance per RE, on the REs of a gapped PRS frame (comb 4, slot gaps), modulated into a
time-domain capture that the whole pipeline then processes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdr_isac import config, sensing
from sdr_isac.capture import Capture
from sdr_isac.config import SensingConfig
from sdr_isac.errors import InputError
from sdr_isac.sensing import detection
from sdr_isac.sensing.crb import delay_doppler_crb, delay_doppler_fim, paths_delay_doppler_crb
from sdr_isac.sensing.csi import known_reference
from sdr_isac.sensing.estimate import estimate_paths
from sdr_isac.waveform import IsacFrame

C = 299_792_458.0

FRAME = """
[frame]
numerology = 1
num_rb = 24
fft_size = 512
carrier_hz = 3.5e9
num_slots = 2
prs = { comb_size = 4, num_symbols = 12, start_symbol = 1, re_offset = 0, n_id = 0 }
data = { enabled = false }
"""

_FRAME = IsacFrame(config.loads(FRAME).frame)
_X, _MASK, _ = known_reference(_FRAME, ())
_S, _K = _MASK.shape
_DF = _FRAME.config.subcarrier_spacing_hz
_FC = _FRAME.config.carrier_hz
_TIMES = (_FRAME.symbol_starts + _FRAME.cp_lengths) / _FRAME.sample_rate_hz
#: range resolution cell c / (2 K df), m (17.3 m here)
CELL_M = C / (2 * _K * _DF)
#: Doppler resolution cell as a velocity, m/s (1 / frame duration)
CELL_MPS = C / _FC / 2 / (_FRAME.num_samples / _FRAME.sample_rate_hz)
CFG = SensingConfig(max_detections=8, max_range_m=700.0)


def _capture(rng: np.random.Generator, echoes: list[tuple[float, float, float]]) -> Capture:
    """A capture of ``echoes`` (range m, velocity m/s, SNR per RE dB) with unit noise variance per RE of H."""
    h = np.zeros((_S, _K), dtype=complex)
    for range_m, velocity_mps, snr_db in echoes:
        amplitude = 10 ** (snr_db / 20) * np.exp(2j * np.pi * rng.uniform())
        doppler_hz = -2 * velocity_mps * _FC / C
        h += amplitude * np.outer(np.exp(2j * np.pi * doppler_hz * _TIMES),
                                  np.exp(-2j * np.pi * _DF * np.arange(_K) * (2 * range_m / C)))
    noise = (rng.standard_normal((_S, _K)) + 1j * rng.standard_normal((_S, _K))) / math.sqrt(2)
    grid = np.where(_MASK, (h + noise) * _X, 0).astype(np.complex64)
    iq = np.asarray(_FRAME.ofdm.modulate(grid)).reshape(1, -1)
    return Capture(iq, _FRAME.sample_rate_hz, _FC, frame=_FRAME.config)


def _match(dets, echoes):
    """Per true echo: the detection nearest it (in cells) if within 0.1 cell and 2 m/s, else None."""
    out = []
    for range_m, velocity_mps, _ in echoes:
        near = min(dets, key=lambda d: ((d.range_m - range_m) / CELL_M) ** 2 +
                   ((d.velocity_mps - velocity_mps) / CELL_MPS) ** 2, default=None)
        ok = near is not None and abs(near.range_m - range_m) < 0.1 * CELL_M and \
            abs(near.velocity_mps - velocity_mps) < 2.0
        out.append(near if ok else None)
    return out


def _pair(rng: np.random.Generator) -> list[tuple[float, float, float]]:
    separation = rng.uniform(0.5, 0.8) * CELL_M
    range_m, velocity_mps = 40.0 + rng.uniform(0.0, 1.0), rng.uniform(-20.0, 20.0)
    dv = rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0])            # 1 to 5 % of a Doppler cell
    snr_a, snr_b = rng.uniform(30.0, 40.0, 2)
    return [(range_m, velocity_mps, snr_a), (range_m + separation, velocity_mps + dv, snr_b)]


def _pair_trials(cfg: SensingConfig, rng: np.random.Generator, trials: int) -> tuple[list[float], list[float], int]:
    """Sense ``trials`` unresolved pairs: both echoes must be found (each by its own detection); returns the
    range and velocity NEES of every echo and the count of other detections (ghosts)."""
    nees_r, nees_v, ghosts = [], [], 0
    for _ in range(trials):
        echoes = _pair(rng)
        dets = sensing.process(_capture(rng, echoes), _FRAME, cfg).detections
        matched = _match(dets, echoes)
        assert all(m is not None for m in matched), (echoes, [(d.range_m, d.velocity_mps) for d in dets])
        assert matched[0] is not matched[1]
        ghosts += len(dets) - 2
        for d, (range_m, velocity_mps, _) in zip(matched, echoes, strict=True):
            nees_r.append((d.range_m - range_m) ** 2 / d.range_var_m2)
            nees_v.append((d.velocity_mps - velocity_mps) ** 2 / d.velocity_var_mps2)
    return nees_r, nees_v, ghosts


def test_the_pairs_are_closer_than_a_resolution_cell():
    # the premise: the frame resolves 17 m; the pairs are 8.7 to 13.9 m apart, and the velocity differs by
    # under 5 % of a Doppler cell (~43 m/s)
    assert 17.0 < CELL_M < 17.7
    assert CELL_MPS > 40.0
    rng = np.random.default_rng(0)
    for _ in range(50):
        (r1, v1, _), (r2, v2, _) = _pair(rng)
        assert 0.5 * CELL_M <= r2 - r1 <= 0.8 * CELL_M and abs(v2 - v1) < 0.05 * CELL_MPS


def test_both_echoes_of_an_unresolved_pair_are_found_within_their_bound():
    # 100 pairs, 30-40 dB per RE: both found in every trial, nothing else detected anywhere in the 700 m and
    # the whole Doppler axis, and the reported variances (the joint two-path Cramér-Rao bound) honest: the
    # mean NEES of 200 one-dimensional errors has a standard error near 0.1.  The code before the test
    # found one echo between the two (NEES ~1e5) and ~3 ghosts per trial.
    nees_r, nees_v, ghosts = _pair_trials(CFG, np.random.default_rng(11), 100)
    assert ghosts == 0
    assert 0.6 < np.mean(nees_r) < 1.4, np.mean(nees_r)
    assert 0.6 < np.mean(nees_v) < 1.4, np.mean(nees_v)
    # no outlier: P(chi2_1 > 20) = 8e-6
    assert max(nees_r) < 20.0 and max(nees_v) < 20.0


def test_a_lone_echo_never_splits():
    # the control: one echo, 30-40 dB per RE, 300 trials.  The split is decided at the design pfa (1e-6);
    # any split over 300 trials would be a false-split rate far above it.  The lone echo's estimate and its
    # single-path bound are what they were (NEES ~1).
    rng = np.random.default_rng(12)
    nees_r, nees_v = [], []
    for _ in range(300):
        echoes = _pair(rng)[:1]
        dets = sensing.process(_capture(rng, echoes), _FRAME, CFG).detections
        assert len(dets) == 1, [(d.range_m, d.velocity_mps) for d in dets]
        (d,) = _match(dets, echoes)
        assert d is not None
        nees_r.append((d.range_m - echoes[0][0]) ** 2 / d.range_var_m2)
        nees_v.append((d.velocity_mps - echoes[0][1]) ** 2 / d.velocity_var_mps2)
    assert 0.7 < np.mean(nees_r) < 1.3 and 0.7 < np.mean(nees_v) < 1.3


def test_the_residual_statistic_of_a_lone_echo_follows_its_design_distribution():
    # the gate: the residual periodogram of a refined lone echo, the largest over the two cuts, exceeds the
    # map's significance threshold at pfa 0.01 in about the searched number of independent cells x 0.01 of
    # the trials (two cuts of three cells: at most ~6 %, and far from never: it is a noise statistic)
    rng = np.random.default_rng(13)
    fired, trials = 0, 200
    threshold = detection.significance_threshold(0.01, 1)
    seen = []
    original = detection._residual_peak

    def spy(*args, **kwargs):
        result = original(*args, **kwargs)
        seen.append(result[0])
        return result

    detection._residual_peak = spy
    try:
        for _ in range(trials):
            sensing.process(_capture(rng, _pair(rng)[:1]), _FRAME, CFG)
    finally:
        detection._residual_peak = original
    assert len(seen) == trials                   # one refined echo per capture, tested once
    fired = sum(value > threshold for value in seen)
    assert 0.002 * trials <= fired <= 0.08 * trials, fired


@pytest.mark.parametrize("separation_cells", [3.0, 6.0])
def test_the_joint_bound_of_two_separated_paths_is_the_single_path_bound(separation_cells):
    # independent check of the two-path bound: paths several cells apart decouple, and each one's bound is the
    # single-path bound of crb.delay_doppler_crb at its own SNR (to the sidelobe coupling, ~1 %)
    freqs = _DF * np.arange(_K)
    taus = (2 * 40.0 / C, 2 * (40.0 + separation_cells * CELL_M) / C)
    amplitudes = np.array([[10.0 * np.exp(0.3j), 30.0 * np.exp(-1.1j)]])
    bound = paths_delay_doppler_crb(_MASK, freqs, _TIMES, taus, (100.0, -250.0), amplitudes, 1.0)
    for p in range(2):
        single = delay_doppler_crb(abs(amplitudes[0, p]) ** 2, _MASK, _DF, _TIMES)
        assert bound[2 * p, 2 * p] == pytest.approx(single[0, 0], rel=0.03)
        assert bound[2 * p + 1, 2 * p + 1] == pytest.approx(single[1, 1], rel=0.03)



@pytest.mark.parametrize("accelerate", [False, True])
def test_relax_reaches_a_pair_inside_a_cell_only_when_extrapolated(accelerate):
    # noise-free data of two paths 0.6 cell apart: the likelihood's maximum is the truth.  Plain RELAX stops
    # while the paths still move (each round moves them a small part of the way) and ends standard deviations
    # off; the extrapolated rounds end within a fraction of one (0.26 here: the refinement's own tolerance,
    # ~1e-6 of a grid step, divided by the slow contraction of the rounds, 1 - rho ~ 1e-3)
    taus = np.array([2 * 40.0 / C, 2 * (40.0 + 0.6 * CELL_M) / C])
    fds = np.array([-150.0, -160.0])
    amps = np.array([10 ** 1.75, 10 ** 1.7 * np.exp(2.0j)])
    freqs = _DF * np.arange(_K)
    h = sum(a * np.outer(np.exp(2j * np.pi * f * _TIMES), np.exp(-2j * np.pi * freqs * t))
            for a, t, f in zip(amps, taus, fds, strict=True)) * _MASK
    seeds = iter([(float(taus.mean()), float(fds.mean())), (float(taus[1] + 0.4 * (taus[1] - taus[0])), -170.0)])
    steps = (1.0 / (_K * _DF), 1.0 / (_TIMES[-1] - _TIMES[0]))
    paths = estimate_paths(h[None], _MASK, freqs, _TIMES, np.ones(1), delay_doppler_fim(1.0, _MASK, _DF, _TIMES)[None],
                           2, lambda _r: next(seeds), steps, num_rounds=200, accelerate=accelerate)
    found = sorted((p.delay_s, p.doppler) for p in paths)
    # the joint bound at unit noise: the error scale the test compares with
    bound = paths_delay_doppler_crb(_MASK, freqs, _TIMES, tuple(taus), tuple(fds), amps[None], 1.0)
    errors = [abs(found[i][0] - taus[i]) / math.sqrt(bound[2 * i, 2 * i]) for i in range(2)]
    if accelerate:
        assert max(errors) < 0.4, errors
    else:
        assert max(errors) > 5.0, errors                 # 27-29 standard deviations


def test_the_paths_bound_of_one_path_is_the_single_path_bound() -> None:
    """One path (P = 1) on one channel: the Slepian-Bangs bound equals delay_doppler_crb at SNR |a|**2 / sigma**2
    (an independent derivation: the closed-form moments of the mask); two channels halve it."""
    freqs = _DF * np.arange(_K)
    one = paths_delay_doppler_crb(_MASK, freqs, _TIMES, [1e-6], [300.0], [[2.0 + 1.0j]], 0.5)
    np.testing.assert_allclose(one, delay_doppler_crb(5.0 / 0.5, _MASK, _DF, _TIMES), rtol=1e-6)
    two = paths_delay_doppler_crb(_MASK, freqs, _TIMES, [1e-6], [300.0], [[2.0 + 1.0j], [1.0 - 2.0j]], 0.5)
    np.testing.assert_allclose(two, one / 2, rtol=1e-6)
    with pytest.raises(InputError, match="allowed P delays and Dopplers"):
        paths_delay_doppler_crb(_MASK, freqs, _TIMES, [1e-6, 2e-6], [300.0], [[1.0, 1.0]], 0.5)
    with pytest.raises(InputError, match="noise_var"):
        paths_delay_doppler_crb(_MASK, freqs, _TIMES, [1e-6], [300.0], [[1.0]], 0.0)


def test_refine_false_tests_the_echoes_it_refines_for_a_second_one():
    # refine = false still refines an echo 25 dB above the threshold (subtracted at its grid position it would
    # leave a significant residual); such an echo now gets the model-order test too.  The pairs here (30-40 dB
    # per RE) are all that strong: both echoes found, at their joint bound, no ghost; the code before found one
    # echo between the two, tens to hundreds of its standard deviations off (the urban demo's bs_a0 saw a car
    # and a UAV in one cell: the car 36 standard deviations off in angle, a fused position 67 times its CRB).
    cfg = SensingConfig(refine=False, max_detections=8, max_range_m=700.0)
    rng = np.random.default_rng(21)
    nees_r, nees_v, ghosts = _pair_trials(cfg, rng, 40)
    assert ghosts == 0
    assert 0.5 < np.mean(nees_r) < 1.6, np.mean(nees_r)        # 80 one-dimensional errors: s.e. ~0.16
    assert 0.5 < np.mean(nees_v) < 1.6, np.mean(nees_v)
    assert max(nees_r) < 20.0 and max(nees_v) < 20.0
    # the control: a lone echo under refine = false never splits (100 trials)
    for _ in range(100):
        echoes = _pair(rng)[:1]
        dets = sensing.process(_capture(rng, echoes), _FRAME, cfg).detections
        assert len(dets) == 1 and _match(dets, echoes)[0] is not None, [(d.range_m, d.velocity_mps) for d in dets]


@pytest.mark.parametrize("below_db", [45.0, 60.0])
def test_a_second_path_below_the_model_floor_is_not_split_off(below_db):
    """An echo at 70 dB per RE with a second path 45 or 60 dB weaker in its cell, as a front end's own model error
    leaves (ICI, phase noise, I/Q imbalance: residuals 30 to 60 dB down): one echo, at the strong path, not a
    pair -- the two-path fit ran for seconds on such residuals and split them into spurious pairs.  Nor does the
    further CLEAN pass behind the strong echo report that residue as echoes of their own (it did: two ghosts 0.8
    and 0.95 cells either side of the strong echo, 53 and 60 dB below it, outside the 0.75 cell this test looked at
    then)."""
    rng = np.random.default_rng(11)
    strong = (120.0, 5.0, 70.0)
    weak = (120.0 + 0.6 * CELL_M, 5.0, 70.0 - below_db)
    result = sensing.process(_capture(rng, [strong, weak]), _FRAME, CFG)
    near = [d for d in result.detections if abs(d.range_m - strong[0]) < 1.2 * CELL_M]     # (a pair: 0.6 cell)
    assert result.diagnostics["passes"] >= 2 and result.diagnostics["residue_dropped"] >= 1
    assert len(near) == 1
    assert abs(near[0].range_m - strong[0]) < 0.05 * CELL_M


@pytest.mark.parametrize("product", [True, False])
def test_the_paths_bound_is_the_inverse_fisher_information_of_the_mean_by_finite_differences(product: bool) -> None:
    """Three paths on two channels, on a product mask (every 3rd subcarrier of every 2nd symbol: the separable
    sums) and on a staggered comb (not a product: the per-RE columns).  Truth: the Fisher information
    ``(2 / sigma**2) Re(J^H J)`` with J the central-difference Jacobian of the mean over every real parameter
    (delays, Dopplers, real and imaginary amplitudes), written here, inverted."""
    s, k, df, ts = 14, 36, 30e3, 35.7e-6
    rows, cols = np.arange(s)[:, None], np.arange(k)[None, :]
    mask = ((rows % 2 == 0) & (cols % 3 == 0)) if product else ((cols + rows) % 3 == 0)
    freqs, times = df * np.arange(k), ts * np.arange(s)
    taus, fds = np.array([1.0e-6, 1.9e-6, 2.3e-6]), np.array([150.0, -400.0, 900.0])
    amps = np.array([[1.0 + 0.5j, 0.4 - 0.9j, 0.7j], [0.3 - 0.2j, 1.1 + 0.1j, -0.6 + 0.2j]])
    sigma2 = 0.3
    r, c = np.nonzero(mask)

    def mean(x: np.ndarray) -> np.ndarray:
        tau, fd = x[0:6:2], x[1:6:2]
        a = (x[6::2] + 1j * x[7::2]).reshape(2, 3)          # channel-major, as the bound orders its nuisances
        phase = np.exp(2j * np.pi * (np.outer(times[r], fd) - np.outer(freqs[c], tau)))      # (n, P)
        return (phase @ a.T).T.ravel()                      # (C n,)

    x0 = np.concatenate([np.column_stack([taus, fds]).ravel(),
                         np.column_stack([amps.real.ravel(), amps.imag.ravel()]).ravel()])
    steps = np.where(np.arange(x0.size) < 6, np.tile([1e-11, 1e-3], 3).tolist() + [0.0] * (x0.size - 6), 1e-6)
    jac = np.column_stack([(mean(x0 + e) - mean(x0 - e)) / (2 * e.sum()) for e in np.diag(steps)])
    bound = np.linalg.inv((2 / sigma2) * (jac.conj().T @ jac).real)[:6, :6]
    got = paths_delay_doppler_crb(mask, freqs, times, taus, fds, amps, sigma2)
    scale = np.sqrt(np.outer(np.diag(bound), np.diag(bound)))          # entries in units of the standard deviations
    assert np.max(np.abs(got - bound) / scale) < 1e-5, np.max(np.abs(got - bound) / scale)


_FULL = IsacFrame(config.loads(FRAME.replace("num_rb = 24", "num_rb = 12").replace("fft_size = 512", "fft_size = 256")
                               .replace("num_slots = 2", "num_slots = 1").split("prs =")[0]).frame)
_FULL_X, _FULL_MASK, _ = known_reference(_FULL, ())
_FULL_TIMES = (_FULL.symbol_starts + _FULL.cp_lengths) / _FULL.sample_rate_hz


@pytest.mark.parametrize(("cells", "phase"), [(1.2, 0.0), (1.5, math.pi / 2), (3.0, 0.0)])
def test_echoes_a_cell_or_two_apart_report_their_joint_bound(cells: float, phase: float) -> None:
    """Two echoes 1.2 cells apart in phase, or 1.5 cells apart in quadrature, each 20 dB per RE, on a full grid
    (every RE known): two peaks, each refined with the other taken out, each reported with the bound of one path
    alone: the first echo's range NEES over 150 captures was 1.7 and 1.4 (the joint bound of the two paths,
    :func:`paths_delay_doppler_crb`, is 1.9 and 1.5 times the single one there).  Reported with the joint bound,
    its mean lies in the chi-square interval of a consistent variance.  At 3 cells in phase the model-order
    test split the first echo (the second, still in the data, lay in its search) and the pair was merged back
    after rounds that never converged, leaving both echoes biased: a ghost in the next pass in 7 % of the
    captures and a NEES of 1.9; refitted after the merge, two echoes and none other, on their bound."""
    from scipy.stats import chi2

    assert _FULL_MASK.all()
    s, k = _FULL_MASK.shape
    df, fc = _FULL.config.subcarrier_spacing_hz, _FULL.config.carrier_hz
    cell_m = C / (2 * k * df)
    truth = (60.0, 60.0 + cells * cell_m)
    cfg = SensingConfig(max_detections=8, max_range_m=0.45 * C / (2 * df))
    rng = np.random.default_rng(11)
    along = [np.exp(-2j * np.pi * df * np.arange(k) * (2 * r / C)) for r in truth]
    nees = []
    trials = 150 if cells < 3 else 60          # chi-square(60): [0.6, 1.5], the old 1.9 outside it
    for _ in range(trials):
        common = np.exp(2j * np.pi * rng.uniform())
        h = 10.0 * common * (np.outer(np.ones(s), along[0]) + np.exp(1j * phase) * np.outer(np.ones(s), along[1]))
        noise = (rng.standard_normal((s, k)) + 1j * rng.standard_normal((s, k))) / math.sqrt(2)
        iq = np.asarray(_FULL.ofdm.modulate(((h + noise) * _FULL_X).astype(np.complex64))).reshape(1, -1)
        dets = sensing.process(Capture(iq, _FULL.sample_rate_hz, fc, frame=_FULL.config), _FULL, cfg).detections
        first = min(dets, key=lambda d: abs(d.range_m - truth[0]))
        assert abs(first.range_m - truth[0]) < 0.3 * cell_m and len(dets) == 2 and \
            any(abs(d.range_m - truth[1]) < 0.3 * cell_m for d in dets), dets
        nees.append((first.range_m - truth[0]) ** 2 / first.range_var_m2)
    low, high = chi2.ppf([0.005, 0.995], trials) / trials
    assert low <= np.mean(nees) <= high, (np.mean(nees), low, high)


W1_PAIR = """
[frame]
numerology = 3
num_rb = 85
fft_size = 1024
carrier_hz = 24e9
num_slots = 8
[radio]
node_id = "bs0"
[scene]
seed = 3
[[scene.nodes]]
id = "bs0"
[[scene.targets]]
id = "a"
position_m = [40.0, 0.0, 0.0]
velocity_mps = [-15.0, 0.0, 0.0]
snr_per_re_db = -10.0
[[scene.targets]]
id = "b"
position_m = [RANGE, 0.0, 0.0]
velocity_mps = [-15.0, 0.0, 0.0]
snr_per_re_db = -10.0
"""


@pytest.mark.parametrize("cells", [3.0, 5.0])
def test_a_strong_echo_a_few_cells_away_does_not_start_a_two_path_fit(monkeypatch: pytest.MonkeyPatch,
                                                                      cells: float) -> None:
    """Two equal echoes 3 or 5 range cells apart at one velocity, on the W1 frame (1020 subcarriers, 112 symbols).
    The first echo's model-order test ran with the second still in the data: its sidelobes (the test reads H
    without a taper) passed as a second path in the window, and a two-path fit of 200 rounds that never
    converged took 2.2 to 2.6 s per capture before the ratio test rejected it.  The test now waits until the
    pass's echoes are out of the data: no two-path fit, the same two echoes, each on its bound."""
    from sdr_isac import radio
    from sdr_isac.sensing import estimate

    frame_text = W1_PAIR.replace("RANGE", repr(40.0 + cells * C / (2 * 1020 * 120e3)))
    cfg = config.loads(frame_text)
    frame = IsacFrame(cfg.frame)
    with radio.open_radio(cfg) as r:
        r.tx(frame.samples())
        capture = r.rx(frame.num_samples)
    truth = sorted(p["range_m"] for p in capture.metadata["truth"]["paths"] if p["kind"] == "target")
    fits: list[int] = []
    real = estimate.estimate_paths
    monkeypatch.setattr(estimate, "estimate_paths", lambda *a, **k: fits.append(1) or real(*a, **k))
    monkeypatch.setattr(detection, "estimate_paths", lambda *a, **k: fits.append(1) or real(*a, **k))
    found = sorted(sensing.process(capture, frame, cfg.sensing).detections, key=lambda d: d.range_m)
    assert fits == [] and len(found) == 2, (fits, found)
    for d, t in zip(found, truth, strict=True):
        assert abs(d.range_m - t) < 4.0 * math.sqrt(d.range_var_m2), (d.range_m, t, math.sqrt(d.range_var_m2))


def test_a_peak_across_the_doppler_wrap_is_as_near_as_one_on_the_same_side() -> None:
    """The Doppler axis is circular: a weaker peak 3.25 Doppler cells away across +-F/2 leaks into the model-order
    test's window as one 3.25 cells away on the same side does (it was taken as 20 cells away).  A map of ones
    (noise 1 per cell) with the echo and one weaker peak; threshold 13.8 (pfa 1e-6)."""
    import types

    s, k, df = 14, 144, 30e3
    times = np.arange(s) * 35.7e-6
    stats = detection._MaskStats.of(np.ones((s, k), bool), df, times)
    n_r, n_d = 2 * k, 2 * s
    step = 1 / (n_d * 35.7e-6)
    power = np.ones((n_r, n_d), np.float32)
    power[10, 1] = 1e6
    rd = types.SimpleNamespace(power=power, doppler_hz=(np.arange(n_d) - n_d // 2) * step, delay_step_s=1 / (n_r * df))
    assert 7 * step / stats.cells[1] == pytest.approx(3.25, abs=0.01)
    for later in ((10, n_d - 6), (10, 8)):                 # 7 bins across the wrap; 7 bins on the same side
        power[later] = 300.0
        assert detection._crowded((10, 1), [later], rd, stats, df, 1.0, 13.8)
        power[later] = 1.0
    assert not detection._crowded((10, 1), [(10, 8)], rd, stats, df, 1.0, 13.8)     # a noise cell: no leak
