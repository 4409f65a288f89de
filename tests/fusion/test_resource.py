"""Resource-level fusion (space, time, reference signals, codes, multi-domain) against closed forms and CRBs."""

from __future__ import annotations

import numpy as np
import pytest

from sdr_isac.channel.cim import add_cim_noise, point_target_cim
from sdr_isac.config import DataConfig, DmrsConfig, FrameConfig, PrsConfig, SrsConfig, TrsConfig
from sdr_isac.errors import InputError
from sdr_isac.fusion import codes, resource, signals
from sdr_isac.sensing.crb import crb_from_fim, range_crb_m2, velocity_crb_mps2
from sdr_isac.sensing.doa import CoarrayMusicEstimator
from sdr_isac.units import SPEED_OF_LIGHT_MPS
from sdr_isac.waveform import IsacFrame

C = SPEED_OF_LIGHT_MPS
FC = 3.5e9
DF = 30e3
T_SYM = (1.0 / DF) * (1.0 + 144.0 / 2048.0)


def _target(rng: np.random.Generator) -> tuple[float, float, float, float]:
    r, v = 50.0 + 20.0 * rng.random(), 10.0 + 10.0 * rng.random()
    return r, v, 2.0 * r / C, -2.0 * v * FC / C


def _ratio(errors: list[float], crb_var: float) -> float:
    return float(np.sqrt(np.mean(np.square(errors)) / crb_var))


# ---------------------------------------------------------------------- space


def test_coherent_combining_gains_10log10_c_and_follows_the_fused_crb() -> None:
    rng = np.random.default_rng(11)
    k, m, c, snr = 64, 16, 4, 10 ** (-12 / 10)
    t = np.arange(m) * T_SYM
    err_1, err_c, gain = [], [], []
    for _ in range(100):
        r, _, tau, fd = _target(rng)
        a = np.exp(2j * np.pi * (0.5 * np.arange(c) * np.sin(0.3) + rng.random()))
        h = add_cim_noise(point_target_cim(np.arange(k), t, DF, [tau], [fd], 1.0, a[:, None]), 1.0 / snr, rng)
        err_1.append(resource.estimate_delay_doppler(h[0], t, DF).range_m(C) - r)
        combined, w = resource.coherent_combine(h, t, DF)
        gain.append(abs(np.vdot(w, a)) ** 2 / abs(a[0]) ** 2)          # output / input SNR (unit-norm weights)
        err_c.append(resource.estimate_delay_doppler(combined, t, DF).range_m(C) - r)
    crb_1 = range_crb_m2(snr, k, m, DF)
    assert 10 * np.log10(np.mean(gain)) == pytest.approx(10 * np.log10(c), abs=0.2)
    fim_1 = resource.channels_fim(snr, np.ones((m, k), dtype=bool), DF, t)
    fim_c = resource.channels_fim(np.full(c, snr), np.ones((c, m, k), dtype=bool), DF, t)
    np.testing.assert_allclose(fim_c, c * fim_1)
    assert resource.range_velocity_crb(fim_c, FC)[0] == pytest.approx(crb_1 / c, rel=1e-9)
    assert 0.75 <= _ratio(err_1, crb_1) <= 1.3
    assert 0.8 <= _ratio(err_c, crb_1 / c) <= 1.3


def test_coherent_combine_rejects_wrong_weights() -> None:
    h = np.ones((3, 4, 8), dtype=complex)
    with pytest.raises(InputError, match=r"weights has shape \(2,\): allowed \(3,\)"):
        resource.coherent_combine(h, np.arange(4) * T_SYM, DF, weights=np.ones(2))


def test_splicing_estimates_the_initial_phase_and_reaches_the_nuisance_crb() -> None:
    rng = np.random.default_rng(3)
    p0, p1 = 0.5 * np.arange(4), 0.5 * np.arange(3, 7)
    theta, snr = 0.3, 10 ** (15 / 10)
    errs, errs_0, phase_err = [], [], []
    for _ in range(150):
        phi = 2 * np.pi * rng.random()
        s = np.exp(2j * np.pi * rng.random())
        x0 = s * np.exp(2j * np.pi * p0 * np.sin(theta))
        x1 = s * np.exp(1j * phi) * np.exp(2j * np.pi * p1 * np.sin(theta))
        noise = (rng.standard_normal((2, 4)) + 1j * rng.standard_normal((2, 4))) / np.sqrt(2 * snr)
        _, pos, phases, est = resource.splice_apertures([x0 + noise[0], x1 + noise[1]], [p0, p1])
        errs.append(est - theta)
        errs_0.append(resource.ml_angle(x0 + noise[0], p0) - theta)
        phase_err.append(np.angle(np.exp(1j * (phases[1] - phi))))
    assert pos.size == 8
    crb = resource.splice_angle_crb_rad2(snr, 1, [p0, p1], theta)
    crb_0 = resource.splice_angle_crb_rad2(snr, 1, [p0], theta)
    assert crb < crb_0 and crb > resource.splice_angle_crb_rad2(snr, 1, [p0, p1], theta, phases_known=True)
    assert 0.8 <= _ratio(errs, crb) <= 1.3
    assert 0.8 <= _ratio(errs_0, crb_0) <= 1.3
    # the phase's own bound: same Fisher matrix (theta, phi, common phase), entry (1, 1) of its inverse
    allp = np.concatenate([p0, p1])
    g = np.column_stack([2 * np.pi * allp * np.cos(theta), np.r_[np.zeros(4), np.ones(4)], np.ones(8)])
    crb_phi = np.linalg.inv(2 * snr * g.T @ g)[1, 1]
    assert 0.8 <= _ratio(phase_err, crb_phi) <= 1.3


def test_three_chained_sub_arrays_are_spliced_at_the_nuisance_crb() -> None:
    """Sub-array 2 overlaps only sub-array 1: its phase is measured against sub-array 1's compensated field (it
    took phi_2 - 2 phi_1 before, a bias of several degrees without noise)."""
    rng = np.random.default_rng(4)
    p = [0.5 * np.arange(0, 4), 0.5 * np.arange(3, 7), 0.5 * np.arange(6, 10)]
    theta, snr = 0.3, 10 ** (15 / 10)
    errs = []
    for _ in range(150):
        phi = np.r_[0.0, 2 * np.pi * rng.random(2)]
        s = np.exp(2j * np.pi * rng.random())
        xs = [s * np.exp(1j * ph) * np.exp(2j * np.pi * pp * np.sin(theta))
              + (rng.standard_normal(4) + 1j * rng.standard_normal(4)) / np.sqrt(2 * snr) for ph, pp in zip(phi, p)]
        errs.append(resource.splice_apertures(xs, p)[3] - theta)
    assert 0.8 <= _ratio(errs, resource.splice_angle_crb_rad2(snr, 1, p, theta)) <= 1.3
    clean = [np.exp(1j * ph) * np.exp(2j * np.pi * pp * np.sin(theta)) for ph, pp in zip((0.0, 1.0, 2.5), p)]
    _, _, phases, angle = resource.splice_apertures(clean, p, num_refinements=0)
    np.testing.assert_allclose(phases, [0.0, 1.0, 2.5], atol=1e-12)
    assert abs(angle - theta) < 1e-6


def test_splicing_needs_overlapping_apertures() -> None:
    with pytest.raises(InputError, match="sub-array 1 shares no element position"):
        resource.splice_apertures([np.ones(2), np.ones(2)], [[0.0, 0.5], [1.0, 1.5]])


def test_coarray_resolves_more_sources_than_elements_and_reports_its_snr_cost() -> None:
    rng = np.random.default_rng(5)
    pos = 0.5 * np.array([0, 1, 2, 3, 7, 11])                  # 2-level nested array, 6 elements
    truth = np.radians(np.linspace(-50, 50, 8))                 # 8 sources > 6 elements
    n_snap = 4000
    s = (rng.standard_normal((8, n_snap)) + 1j * rng.standard_normal((8, n_snap))) / np.sqrt(2)
    a = np.exp(2j * np.pi * np.outer(pos, np.sin(truth)))
    x = a @ s + (rng.standard_normal((6, n_snap)) + 1j * rng.standard_normal((6, n_snap))) / np.sqrt(2 * 10.0)
    est = CoarrayMusicEstimator(pos, 0.5).estimate(x, 8)
    np.testing.assert_allclose(np.sort(est), truth, atol=np.radians(1.0))
    cost = resource.sparse_array_cost(pos, snr_linear=1.0, num_snapshots=10, angle_rad=0.0)
    full = 0.5 * np.arange(12)
    assert cost["num_elements_full"] == 12 and cost["max_sources"] == 11 > cost["num_elements"]
    assert cost["snr_cost_db"] == pytest.approx(10 * np.log10(2.0))
    spread = lambda p: np.sum((p - p.mean()) ** 2)                                  # noqa: E731
    assert cost["crb_ratio"] == pytest.approx(spread(full) / spread(pos))


# ----------------------------------------------------------------------- time


def _doppler_width(power: np.ndarray) -> int:
    """Cells of the Doppler cut (a row: rows delay, columns Doppler) through the peak above half its power."""
    i, j = np.unravel_index(int(np.argmax(power)), power.shape)
    return int(np.count_nonzero(power[i, :] >= power[i, j] / 2))


def test_coherent_frames_narrow_the_doppler_peak_by_the_number_of_frames() -> None:
    k, m, f = 32, 14, 4
    t = np.arange(m) * T_SYM
    h = point_target_cim(np.arange(k), np.arange(f * m) * T_SYM, DF, [4e-7], [-350.0]).reshape(f, m, k)
    coh = resource.accumulate_frames(h, t, m * T_SYM, coherent=True)
    non = resource.accumulate_frames(h, t, m * T_SYM, coherent=False)
    assert coh.h.shape == (1, f * m, k) and non.h.shape == (f, m, k)
    lo = 32                                                     # Doppler cell = 1 / (lo M T): same cell width
    single = resource.delay_doppler_power(h[0], t, oversample=lo * f)
    width_coh = _doppler_width(resource.delay_doppler_power(coh.h, coh.symbol_times_s, coh.mask, oversample=lo))
    width_1 = _doppler_width(single)
    width_non = _doppler_width(resource.delay_doppler_power(non.h, t, non.mask, oversample=lo * f))
    assert width_1 / width_coh == pytest.approx(f, rel=0.05)
    assert width_non == width_1


def test_frame_accumulation_follows_the_crb() -> None:
    rng = np.random.default_rng(8)
    k, m, f, snr = 64, 14, 4, 10 ** (-10 / 10)
    t = np.arange(m) * T_SYM
    e_coh, e_non = [], []
    for _ in range(80):
        _, v, tau, fd = _target(rng)
        h = point_target_cim(np.arange(k), np.arange(f * m) * T_SYM, DF, [tau], [fd], np.exp(2j * np.pi * rng.random()))
        frames = add_cim_noise(h, 1 / snr, rng).reshape(f, m, k)
        for coherent, errs in ((True, e_coh), (False, e_non)):
            acc = resource.accumulate_frames(frames, t, m * T_SYM, coherent=coherent)
            est = resource.estimate_delay_doppler(acc.h, acc.symbol_times_s, DF, acc.mask)
            errs.append(est.velocity_mps(FC) - v)
    crb_coh = velocity_crb_mps2(snr, k, f * m, FC, T_SYM)       # one interval of F M contiguous symbols
    crb_non = velocity_crb_mps2(snr, k, m, FC, T_SYM) / f       # F independent frames: Fisher information x F
    assert 0.8 <= _ratio(e_coh, crb_coh) <= 1.3
    assert 0.8 <= _ratio(e_non, crb_non) <= 1.3


def test_accumulate_frames_rejects_overlapping_frames() -> None:
    with pytest.raises(InputError, match="frame_period_s = 1e-05 s: allowed >= the frame's length"):
        resource.accumulate_frames(np.ones((2, 14, 8)), np.arange(14) * T_SYM, 1e-5)


# ---------------------------------------------------------- reference signals


def test_psl_of_a_full_grid_is_the_sinc_sidelobe() -> None:
    m, k = 32, 64
    h = point_target_cim(np.arange(k), np.arange(m) * T_SYM, DF, [5 / (k * DF)], [3 / (m * T_SYM)])
    power = resource.delay_doppler_power(h, np.arange(m) * T_SYM, oversample=2)
    # sampled at 1.5 bins: (2 / (3 pi))**2 = -13.46 dB; the continuous sidelobe peak is -13.26 dB
    assert resource.peak_sidelobe_ratio_db(power, (2, 2)) == pytest.approx(-13.46, abs=0.1)


@pytest.fixture(scope="module")
def rs_frame() -> IsacFrame:
    return IsacFrame(FrameConfig(numerology=1, num_rb=12, carrier_hz=FC, num_slots=4,
                                 prs=PrsConfig(comb_size=4, num_symbols=4, start_symbol=9),
                                 dmrs=DmrsConfig(additional_positions=0), trs=TrsConfig(symbols=(4, 8)),
                                 data=DataConfig(enabled=False)))


def _rs_rx(frame: IsacFrame, snr: float, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    t = signals.frame_symbol_times_s(frame)
    x = frame.grid.values.sum(axis=0)
    r, v, tau, fd = _target(rng)
    h = point_target_cim(np.arange(frame.config.num_subcarriers), t, DF, [tau], [fd], np.exp(2j * np.pi * rng.random()))
    return add_cim_noise(h * x, 1 / snr, rng), r, v


def test_compressed_sensing_lowers_the_sidelobes_of_a_staggered_rs_union(rs_frame: IsacFrame) -> None:
    rng = np.random.default_rng(2)
    snr = 10 ** (-5 / 10)
    pslr = {"cs": [], "omp": [], "zero": []}
    for _ in range(4):
        y, _, _ = _rs_rx(rs_frame, snr, rng)
        for comp, out in pslr.items():
            out.append(signals.fuse_reference_signals(rs_frame, y, ("prs", "dmrs", "trs"), comp, 1 / snr).pslr_db)
    assert np.mean(pslr["cs"]) < np.mean(pslr["zero"]) - 6.0
    assert np.mean(pslr["omp"]) < np.mean(pslr["zero"]) - 6.0


def test_rs_fusion_follows_the_union_crb(rs_frame: IsacFrame) -> None:
    rng = np.random.default_rng(4)
    snr = 10 ** (0 / 10)
    e_r, e_v = [], []
    for _ in range(60):
        y, r, v = _rs_rx(rs_frame, snr, rng)
        est = signals.fuse_reference_signals(rs_frame, y, ("prs", "dmrs", "trs"), "zero", 1 / snr).estimate
        e_r.append(est.range_m(C) - r)
        e_v.append(est.velocity_mps(FC) - v)
    union = signals.union_fim(rs_frame, ("prs", "dmrs", "trs"), snr)
    prs = signals.union_fim(rs_frame, ("prs",), snr)
    var_r, var_v = resource.range_velocity_crb(union, FC)
    assert var_r < resource.range_velocity_crb(prs, FC)[0]
    assert 0.8 <= _ratio(e_r, var_r) <= 1.3
    assert 0.8 <= _ratio(e_v, var_v) <= 1.3


@pytest.mark.parametrize("signal", ["dmrs", "trs"])
def test_a_periodic_reference_signal_alone_searches_one_doppler_alias(rs_frame: IsacFrame, signal: str) -> None:
    """DMRS once per slot repeats its periodogram every 1 / (14 T) in Doppler: without a speed prior the grid
    peak was any of its equal aliases (velocity errors of hundreds of m/s at 0 dB); the search now covers the
    aliases' one period around zero, as the delay search covers 1 / (g df)."""
    rng = np.random.default_rng(7)
    snr = 1.0
    errors = []
    for _ in range(20):
        y, _, v = _rs_rx(rs_frame, snr, rng)
        errors.append(signals.fuse_reference_signals(rs_frame, y, (signal,), "zero", 1 / snr).estimate
                      .velocity_mps(FC) - v)
    std_v = np.sqrt(resource.range_velocity_crb(signals.union_fim(rs_frame, (signal,), snr), FC)[1])
    assert np.max(np.abs(errors)) < 6 * std_v, (np.round(errors, 2), std_v)


def test_a_map_in_another_layout_is_refused() -> None:
    """estimate_delay_doppler(power=...) took the bin sizes from the map's shape: a transposed map gave a delay
    of 16.8 us for 0.4 us."""
    t = np.arange(16) * T_SYM
    h = point_target_cim(np.arange(64), t, DF, [4e-7], [-350.0])
    good = resource.delay_doppler_power(h, t, oversample=2)
    assert resource.estimate_delay_doppler(h, t, DF, power=good).delay_s == pytest.approx(4e-7, rel=1e-6)
    assert resource.estimate_delay_doppler(h, t, DF, power=resource.delay_doppler_power(h, t, oversample=3)
                                           ).delay_s == pytest.approx(4e-7, rel=1e-6)
    for bad in (good.T, good[:, :1], good[:-1], good[None]):
        with pytest.raises(InputError, match=r"power has shape .*\(L \* 64 delay bins, L \* 16 Doppler bins\)"):
            resource.estimate_delay_doppler(h, t, DF, power=bad)


def test_rs_fusion_names_a_bad_completion(rs_frame: IsacFrame) -> None:
    y = np.zeros((rs_frame.num_symbols, rs_frame.config.num_subcarriers), dtype=complex)
    with pytest.raises(InputError, match="completion = 'l1': allowed 'cs'"):
        signals.fuse_reference_signals(rs_frame, y + 1, completion="l1")
    with pytest.raises(InputError, match="signal 'pss': allowed"):
        signals.fuse_reference_signals(rs_frame, y, ("pss",))


# ---------------------------------------------------------------------- codes


def _dmrs_frame(ports: tuple[int, ...]) -> IsacFrame:
    return IsacFrame(FrameConfig(numerology=1, num_rb=12, carrier_hz=FC, num_slots=2,
                                 dmrs=DmrsConfig(additional_positions=3, ports=ports), data=DataConfig(enabled=False)))


@pytest.mark.parametrize("num_ports, cyclic_shift", [(2, 0), (4, 0), (4, 7)])
def test_srs_cyclic_shifts_separate_flat_channels_exactly(num_ports: int, cyclic_shift: int) -> None:
    frame = IsacFrame(FrameConfig(numerology=1, num_rb=12, carrier_hz=FC,
                                  srs=SrsConfig(comb_size=4, num_ports=num_ports, num_symbols=4, start_symbol=10,
                                                cyclic_shift=cyclic_shift), data=DataConfig(enabled=False)))
    lay = codes.code_layout(frame, "srs")
    g = np.random.default_rng(0).standard_normal((num_ports, 2)) @ [1, 1j]
    csi = codes.extract_code_csi(np.einsum("p,psk->sk", g, lay.tx), lay)
    for p in range(num_ports):
        np.testing.assert_allclose(csi.h[p, 0][csi.mask[p]], g[p], atol=1e-5)


def test_dmrs_cover_codes_separate_ports_exactly_and_leak_as_sin() -> None:
    frame = _dmrs_frame((0, 1, 2, 3))
    lay = codes.code_layout(frame, "dmrs")
    g = np.random.default_rng(1).standard_normal((4, 2)) @ [1, 1j]
    csi = codes.extract_code_csi(np.einsum("p,psk->sk", g, lay.tx), lay)
    for p in range(4):
        np.testing.assert_allclose(csi.h[p, 0][csi.mask[p]], g[p], atol=1e-5)
        assert csi.gain[p] == pytest.approx(2.0, rel=1e-6)                  # a CDM pair of unit-modulus REs
    # a delay turns the channel across a pair 2 subcarriers wide: own CSI x cos(2 pi df tau), leak |sin(2 pi df tau)|
    tau = 1e-6
    t = signals.frame_symbol_times_s(frame)
    h = point_target_cim(np.arange(frame.config.num_subcarriers), t, DF, [tau], [0.0])
    own = codes.extract_code_csi(h * lay.tx[0], lay)
    s, k = np.nonzero(own.mask[0])
    expect = np.exp(-2j * np.pi * k * DF * tau) * np.cos(2 * np.pi * DF * tau)
    np.testing.assert_allclose(own.h[0, 0][s, k], expect, atol=1e-5)
    np.testing.assert_allclose(np.abs(own.h[1, 0][s, k]), abs(np.sin(2 * np.pi * DF * tau)), atol=1e-5)


def test_dmrs_type_2_and_double_symbol_blocks_separate_and_locate_without_bias() -> None:
    """A DMRS type-2 CDM block is two adjacent subcarriers and a double-symbol block two symbols: its centroid falls
    between REs and extraction always raised, although the offset is one constant phase per port.  Now the
    ports separate exactly and a point target's range and Doppler come out unbiased (noise-free)."""
    for dmrs in (DmrsConfig(config_type=2, ports=(0, 1, 2, 3), additional_positions=3),
                 DmrsConfig(length=2, ports=(0, 1, 4, 5), additional_positions=1)):
        frame = IsacFrame(FrameConfig(numerology=1, num_rb=12, carrier_hz=FC, num_slots=2, dmrs=dmrs,
                                      data=DataConfig(enabled=False)))
        lay = codes.code_layout(frame, "dmrs")
        g = np.random.default_rng(1).standard_normal((lay.num_ports, 2)) @ [1, 1j]
        csi = codes.extract_code_csi(np.einsum("p,psk->sk", g, lay.tx), lay)
        for p in range(lay.num_ports):
            np.testing.assert_allclose(csi.h[p, 0][csi.mask[p]], g[p], atol=1e-5)
        t = signals.frame_symbol_times_s(frame)
        r, v = 61.3, 14.2
        h = point_target_cim(np.arange(frame.config.num_subcarriers), t, DF, [2 * r / C], [-2 * v * FC / C])
        hc, mc = codes.extract_code_csi(np.einsum("psk,sk->sk", lay.tx, h), lay).channels()
        est = resource.estimate_delay_doppler(hc, t, DF, mc, max_doppler_hz=800.0)
        assert est.range_m(C) == pytest.approx(r, abs=1e-3) and est.velocity_mps(FC) == pytest.approx(v, abs=1e-2)


def test_code_fusion_follows_the_fused_crb() -> None:
    frame = _dmrs_frame((0, 1))
    lay = codes.code_layout(frame, "dmrs")
    t = signals.frame_symbol_times_s(frame)
    rng = np.random.default_rng(6)
    snr = 10 ** (-3 / 10)
    errs = []
    for _ in range(60):
        r, _, tau, fd = _target(rng)
        a = np.exp(2j * np.pi * rng.random(2))
        h = point_target_cim(np.arange(frame.config.num_subcarriers), t, DF, [tau], [fd], 1.0, a[:, None])
        csi = codes.extract_code_csi(add_cim_noise(np.einsum("psk,psk->sk", h, lay.tx), 1 / snr, rng), lay)
        hc, mc = csi.channels()
        errs.append(resource.estimate_delay_doppler(hc, t, DF, mc, max_doppler_hz=800.0).range_m(C) - r)
    fused = codes.code_fim(lay, snr, DF, t)
    np.testing.assert_allclose(fused, 2 * codes.code_fim(lay, snr, DF, t, ports=[0]), rtol=1e-9)
    assert 0.8 <= _ratio(errs, crb_from_fim(fused)[0, 0] * (C / 2) ** 2) <= 1.3


def test_code_layout_names_unknown_signal() -> None:
    with pytest.raises(InputError, match="signal = 'prs': allowed 'dmrs'"):
        codes.code_layout(_dmrs_frame((0,)), "prs")


def test_multi_domain_separates_two_echoes_and_their_angles() -> None:
    frame = _dmrs_frame((0, 1, 2, 3))
    lay = codes.code_layout(frame, "dmrs")
    t = signals.frame_symbol_times_s(frame)
    vpos = codes.virtual_positions(np.arange(4.0), [0.0, 0.5])
    np.testing.assert_allclose(np.sort(vpos), 0.5 * np.arange(8))
    taus, fds, angles = [2 * 60 / C, 2 * 120 / C], [-350.0, -160.0], [0.3, -0.4]
    amps = np.stack([np.exp(2j * np.pi * vpos * np.sin(a)) * g for a, g in zip(angles, (1.0, 0.7j))], axis=1)
    y = sum(point_target_cim(np.arange(frame.config.num_subcarriers), t, DF, taus, fds, 1.0,
                             amps.reshape(4, 2, 2)[p]) * lay.tx[p] for p in range(4))
    csi = codes.extract_code_csi(y, lay)
    hc, mc = csi.channels()
    paths = codes.estimate_paths(hc, t, DF, 2, mc, max_doppler_hz=800.0)
    paths.sort(key=lambda p: p[0].delay_s)
    for (est, amp), tau, fd, angle in zip(paths, taus, fds, angles):
        assert est.delay_s == pytest.approx(tau, abs=2e-10)
        assert est.doppler_hz == pytest.approx(fd, abs=2.0)
        assert resource.ml_angle(amp, vpos) == pytest.approx(angle, abs=0.01)
