"""``sdr-isac experiment resource``: the gain of resource-level fusion inside one node (article §III-A).

Every trial draws one target (range 50 ... 70 m, moving away at 10 ... 20 m/s,
random phase) on a 30 kHz / 3.5 GHz NR-like numerology and measures it with
each kind of resource, alone (the baseline) and fused
(:mod:`sdr_isac.fusion.resource`, :mod:`sdr_isac.fusion.signals`,
:mod:`sdr_isac.fusion.codes`), at the per-RE SNR ``snr_db`` of the point:

``space``
    C = 4 antennas (ULA, λ/2, target at 0.3 rad), 128 subcarriers x 16
    symbols; antenna 0 alone vs coherent combining with phases estimated from
    the data.  Bound: one antenna's Fisher information, and C times it.
``splice``
    Angle from a 4-element sub-array vs the 7-λ/2 aperture spliced from two
    overlapping 4-element sub-arrays with an unknown initial phase (snapshots:
    each element's amplitude at the target's delay-Doppler cell, SNR
    ``gamma N M``).  Bound: the spliced array's with the phase as a nuisance.
``time-coh``, ``time-noncoh``
    F = 4 contiguous one-slot frames (14 symbols, 128 subcarriers); frame 0
    vs the frames accumulated coherently (one 56-symbol interval) or
    non-coherently (periodograms added).
``rs-cs``, ``rs-zero``
    A 4-slot, 12-RB frame with PRS (comb 4, symbols 9-12), DMRS (symbol 2)
    and TRS (symbols 4, 8); PRS alone vs the union of the three with the
    empty REs recovered by FISTA (``cs``) or zero-filled.  Peak sidelobe
    ratios of the maps are reported.  Every estimator searches |v| < 40 m/s
    (PRS every 14 symbols aliases at ±42.9 m/s); so do ``code`` and ``multi``
    (DMRS on symbols 2, 5, 8, 11 of each slot has strong Doppler grating lobes).
``code``
    Two DMRS ports of one CDM group (orthogonal cover codes, two transmit
    antennas with their own phases) on the same REs; port 0's extracted CSI
    vs both ports fused.
``multi``
    Four DMRS ports (2 CDM groups x 2 cover codes, all overlapping in
    time-frequency) on 4 transmit antennas 1 λ apart, 2 receive antennas
    λ/2 apart: an 8-element virtual array.  Two echoes (the target, and a
    multipath echo 60 m further, 8 m/s slower, amplitude 0.7, at -0.4 rad);
    one (port, antenna) channel vs all eight: range of the target, angle of
    the target and of the multipath echo (baseline for angles: port 0 with
    the 2 receive antennas).

Every bound is the inverse of a Fisher information (fusion adds Fisher
information, REFERENCE.md §3); ``gain_db`` is ``20 log10(RMSE_base / RMSE_fused)``
and ``crb_gain_db`` the same for the √CRBs.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from sdr_isac.channel.cim import add_cim_noise, point_target_cim
from sdr_isac.config import DataConfig, DmrsConfig, FrameConfig, PrsConfig, TrsConfig
from sdr_isac.experiments.plots import pyplot, save_figure
from sdr_isac.experiments.runner import Metrics, Point, Scenario, rmse
from sdr_isac.fusion.codes import code_fim, code_layout, estimate_paths, extract_code_csi, virtual_positions
from sdr_isac.fusion.resource import (
    DelayDopplerEstimate,
    accumulate_frames,
    channel_amplitudes,
    channels_fim,
    coherent_combine,
    estimate_delay_doppler,
    ml_angle,
    range_velocity_crb,
    splice_angle_crb_rad2,
    splice_apertures,
)
from sdr_isac.fusion.signals import frame_symbol_times_s, fuse_reference_signals, union_fim
from sdr_isac.sensing.crb import angle_crb_rad2
from sdr_isac.units import SPEED_OF_LIGHT_MPS
from sdr_isac.waveform import IsacFrame

__all__ = ["resource_scenario", "trial", "summarise", "table", "plot", "bounds", "rs_frame", "code_frame",
           "SNR_DB", "CASES"]

C_MPS = SPEED_OF_LIGHT_MPS
CARRIER_HZ = 3.5e9
SCS_HZ = 30e3
SYMBOL_S = (1.0 / SCS_HZ) * (1.0 + 144.0 / 2048.0)        # normal CP: T_O = (2048 + 144) / (2048 df)
SNR_DB = (-20.0, -15.0, -10.0, -5.0)
ANGLE_RAD = 0.3
NUM_ANTENNAS = 4
NUM_FRAMES = 4
MAX_SPEED_MPS = 40.0
SUB0_WL = 0.5 * np.arange(4)                               # sub-array 0: elements 0..3 at λ/2
SUB1_WL = 0.5 * np.arange(3, 7)                            # sub-array 1: elements 3..6 (element 3 shared)
MULTI_TX_WL = np.arange(4.0)                               # 4 transmit ports, 1 λ apart
MULTI_RX_WL = np.array([0.0, 0.5])                         # 2 receive antennas, λ/2 apart
MULTI_PATH = {"extra_range_m": 60.0, "velocity_offset_mps": -8.0, "amplitude": 0.7, "angle_rad": -0.4}
#: (case, quantity, unit) of every summary row, in table order
CASES = (("space", "range", "m"), ("space", "velocity", "m/s"), ("splice", "angle", "rad"),
         ("time-coh", "velocity", "m/s"), ("time-noncoh", "velocity", "m/s"), ("time-coh", "range", "m"),
         ("rs-cs", "range", "m"), ("rs-cs", "velocity", "m/s"), ("rs-zero", "range", "m"),
         ("rs-zero", "velocity", "m/s"), ("code", "range", "m"), ("code", "velocity", "m/s"),
         ("multi", "range", "m"), ("multi", "angle", "rad"), ("multi", "angle2", "rad"))


@lru_cache(maxsize=1)
def rs_frame() -> IsacFrame:
    """4 slots, 12 RB, 30 kHz: PRS comb 4 on symbols 9-12, DMRS type 1 on symbol 2, TRS on symbols 4 and 8."""
    return IsacFrame(FrameConfig(numerology=1, num_rb=12, carrier_hz=CARRIER_HZ, num_slots=4,
                                 prs=PrsConfig(comb_size=4, num_symbols=4, start_symbol=9),
                                 dmrs=DmrsConfig(additional_positions=0), trs=TrsConfig(symbols=(4, 8)),
                                 data=DataConfig(enabled=False)))


@lru_cache(maxsize=2)
def code_frame(num_ports: int) -> IsacFrame:
    """2 slots, 12 RB, 30 kHz: single-symbol DMRS type 1 on symbols 2, 5, 8, 11 with ports 0 ... num_ports - 1."""
    return IsacFrame(FrameConfig(numerology=1, num_rb=12, carrier_hz=CARRIER_HZ, num_slots=2,
                                 dmrs=DmrsConfig(additional_positions=3, ports=tuple(range(num_ports))),
                                 data=DataConfig(enabled=False)))


def _target(rng: np.random.Generator) -> tuple[float, float]:
    return 50.0 + 20.0 * float(rng.random()), 10.0 + 10.0 * float(rng.random())


def _delay_doppler(range_m: float, velocity_mps: float) -> tuple[float, float]:
    return 2.0 * range_m / C_MPS, -2.0 * velocity_mps * CARRIER_HZ / C_MPS    # moving away: negative Doppler


def _errors(out: Metrics, case: str, which: str, est: DelayDopplerEstimate, r: float, v: float) -> None:
    out[f"{case}_range_{which}"] = est.range_m(C_MPS) - r
    out[f"{case}_velocity_{which}"] = est.velocity_mps(CARRIER_HZ, C_MPS) - v


def _steering(positions_wl: np.ndarray, angle_rad: float) -> np.ndarray:
    return np.exp(2j * np.pi * positions_wl * math.sin(angle_rad))


def _space(out: Metrics, snr: float, rng: np.random.Generator) -> None:
    k, m = 128, 16
    t = np.arange(m) * SYMBOL_S
    r, v = _target(rng)
    tau, fd = _delay_doppler(r, v)
    phase = np.exp(2j * np.pi * rng.random())
    steer = _steering(0.5 * np.arange(NUM_ANTENNAS), ANGLE_RAD)[:, None] * phase
    h = add_cim_noise(point_target_cim(np.arange(k), t, SCS_HZ, [tau], [fd], 1.0, steer), 1.0 / snr, rng)
    _errors(out, "space", "base", estimate_delay_doppler(h[0], t, SCS_HZ), r, v)
    combined, _ = coherent_combine(h, t, SCS_HZ)
    _errors(out, "space", "fused", estimate_delay_doppler(combined, t, SCS_HZ), r, v)
    # aperture splicing: 2 sub-arrays sharing element 3, sub-array 1 with an unknown initial phase
    pos = np.concatenate([SUB0_WL, SUB1_WL])
    chans = _steering(pos, ANGLE_RAD) * phase
    chans[SUB0_WL.size:] *= np.exp(2j * np.pi * rng.random())
    hs = add_cim_noise(point_target_cim(np.arange(k), t, SCS_HZ, [tau], [fd], 1.0, chans[:, None]), 1.0 / snr, rng)
    est = estimate_delay_doppler(hs, t, SCS_HZ)
    amps = channel_amplitudes(hs, t, SCS_HZ, est)
    out["splice_angle_base"] = ml_angle(amps[: SUB0_WL.size], SUB0_WL) - ANGLE_RAD
    out["splice_angle_fused"] = splice_apertures([amps[: SUB0_WL.size], amps[SUB0_WL.size:]],
                                                 [SUB0_WL, SUB1_WL])[3] - ANGLE_RAD


def _time(out: Metrics, snr: float, rng: np.random.Generator) -> None:
    k, m = 128, 14
    t = np.arange(m) * SYMBOL_S
    r, v = _target(rng)
    tau, fd = _delay_doppler(r, v)
    t_all = np.arange(NUM_FRAMES * m) * SYMBOL_S
    h = point_target_cim(np.arange(k), t_all, SCS_HZ, [tau], [fd], np.exp(2j * np.pi * rng.random()))
    frames = add_cim_noise(h, 1.0 / snr, rng).reshape(NUM_FRAMES, m, k)
    _errors(out, "time", "base", estimate_delay_doppler(frames[0], t, SCS_HZ), r, v)
    for name, coherent in (("coh", True), ("noncoh", False)):
        acc = accumulate_frames(frames, t, m * SYMBOL_S, coherent=coherent)
        _errors(out, f"time-{name}", "fused", estimate_delay_doppler(acc.h, acc.symbol_times_s, SCS_HZ, acc.mask),
                r, v)


def _rs(out: Metrics, snr: float, rng: np.random.Generator) -> None:
    frame = rs_frame()
    t = frame_symbol_times_s(frame)
    x = np.asarray(frame.grid.values.sum(axis=0), dtype=np.complex128)
    r, v = _target(rng)
    tau, fd = _delay_doppler(r, v)
    h = point_target_cim(np.arange(frame.config.num_subcarriers), t, SCS_HZ, [tau], [fd],
                         np.exp(2j * np.pi * rng.random()))
    y = add_cim_noise(h * x, 1.0 / snr, rng)
    max_fd = 2.0 * MAX_SPEED_MPS * CARRIER_HZ / C_MPS
    for which, signals, completion in (("base", ("prs",), "zero"), ("cs", ("prs", "dmrs", "trs"), "cs"),
                                       ("zero", ("prs", "dmrs", "trs"), "zero")):
        fused = fuse_reference_signals(frame, y, signals, completion, noise_var=1.0 / snr, max_doppler_hz=max_fd)
        _errors(out, "rs", which, fused.estimate, r, v)
        out[f"rs_pslr_{which}"] = fused.pslr_db


def _code(out: Metrics, snr: float, rng: np.random.Generator) -> None:
    frame = code_frame(2)
    lay = code_layout(frame, "dmrs")
    t = frame_symbol_times_s(frame)
    r, v = _target(rng)
    tau, fd = _delay_doppler(r, v)
    gains = np.exp(2j * np.pi * rng.random(2))                        # two transmit antennas, own phases
    h = point_target_cim(np.arange(frame.config.num_subcarriers), t, SCS_HZ, [tau], [fd], 1.0, gains[:, None])
    y = add_cim_noise(np.einsum("psk,psk->sk", h, lay.tx), 1.0 / snr, rng)
    csi = extract_code_csi(y, lay)
    max_fd = 2.0 * MAX_SPEED_MPS * CARRIER_HZ / C_MPS
    _errors(out, "code", "base", estimate_delay_doppler(csi.h[0, 0], t, SCS_HZ, csi.mask[0], max_doppler_hz=max_fd),
            r, v)
    hc, mc = csi.channels()
    _errors(out, "code", "fused", estimate_delay_doppler(hc, t, SCS_HZ, mc, max_doppler_hz=max_fd), r, v)


def _multi(out: Metrics, snr: float, rng: np.random.Generator) -> None:
    frame = code_frame(4)
    lay = code_layout(frame, "dmrs")
    t = frame_symbol_times_s(frame)
    r, v = _target(rng)
    r2, v2 = r + MULTI_PATH["extra_range_m"], v + MULTI_PATH["velocity_offset_mps"]
    (tau1, fd1), (tau2, fd2) = _delay_doppler(r, v), _delay_doppler(r2, v2)
    vpos = virtual_positions(MULTI_TX_WL, MULTI_RX_WL)
    a1 = np.exp(2j * np.pi * rng.random()) * _steering(vpos, ANGLE_RAD)
    a2 = MULTI_PATH["amplitude"] * np.exp(2j * np.pi * rng.random()) * _steering(vpos, MULTI_PATH["angle_rad"])
    amps = np.stack([a1, a2], axis=1).reshape(MULTI_TX_WL.size, MULTI_RX_WL.size, 2)
    k = frame.config.num_subcarriers
    y = np.zeros((MULTI_RX_WL.size, frame.num_symbols, k), dtype=np.complex128)
    for p in range(MULTI_TX_WL.size):
        hp = point_target_cim(np.arange(k), t, SCS_HZ, [tau1, tau2], [fd1, fd2], 1.0, amps[p])   # (R, S, K)
        y += hp * lay.tx[p][None]
    y = add_cim_noise(y, 1.0 / snr, rng)
    csi = extract_code_csi(y, lay)
    hc, mc = csi.channels()                                           # (8, S, K): port-major, as vpos
    max_fd = 2.0 * MAX_SPEED_MPS * CARRIER_HZ / C_MPS
    single = estimate_paths(hc[:1], t, SCS_HZ, 2, mc[:1], max_doppler_hz=max_fd)
    fused = estimate_paths(hc, t, SCS_HZ, 2, mc, max_doppler_hz=max_fd)
    _errors(out, "multi", "base", _closest(single, tau1), r, v)
    _errors(out, "multi", "fused", _closest(fused, tau1), r, v)
    for q, tau_q, angle in (("angle", tau1, ANGLE_RAD), ("angle2", tau2, MULTI_PATH["angle_rad"])):
        amp_f = _closest_amp(fused, tau_q)
        out[f"multi_{q}_fused"] = ml_angle(amp_f, vpos) - angle
        out[f"multi_{q}_base"] = ml_angle(amp_f[: MULTI_RX_WL.size], MULTI_RX_WL) - angle


def _closest(paths: list[tuple[DelayDopplerEstimate, np.ndarray]], tau: float) -> DelayDopplerEstimate:
    return min(paths, key=lambda p: abs(p[0].delay_s - tau))[0]


def _closest_amp(paths: list[tuple[DelayDopplerEstimate, np.ndarray]], tau: float) -> np.ndarray:
    return min(paths, key=lambda p: abs(p[0].delay_s - tau))[1]


def trial(point: Point, rng: np.random.Generator) -> Metrics:
    """One trial of every case at ``point["snr_db"]`` (per RE): signed errors (m, m/s, rad) and PSLRs (dB)."""
    snr = 10.0 ** (float(point["snr_db"]) / 10.0)
    out: Metrics = {}
    for case in (_space, _time, _rs, _code, _multi):
        case(out, snr, rng)
    return out


def bounds(snr_db: float) -> dict[tuple[str, str], tuple[float, float]]:
    """(√CRB baseline, √CRB fused) of every (case, quantity), in m, m/s or rad."""
    snr = 10.0 ** (snr_db / 10.0)
    out: dict[tuple[str, str], tuple[float, float]] = {}

    def rv(case: str, base: np.ndarray, fused: np.ndarray) -> None:
        (rb, vb), (rf, vf) = range_velocity_crb(base, CARRIER_HZ, C_MPS), range_velocity_crb(fused, CARRIER_HZ, C_MPS)
        out[(case, "range")] = (math.sqrt(rb), math.sqrt(rf))
        out[(case, "velocity")] = (math.sqrt(vb), math.sqrt(vf))

    t16 = np.arange(16) * SYMBOL_S
    one = channels_fim(snr, np.ones((16, 128), dtype=bool), SCS_HZ, t16)
    rv("space", one, NUM_ANTENNAS * one)
    snap = snr * 128 * 16                                             # amplitude SNR at the delay-Doppler cell
    out[("splice", "angle")] = (math.sqrt(angle_crb_rad2(snap, 1, SUB0_WL, ANGLE_RAD)),
                                math.sqrt(splice_angle_crb_rad2(snap, 1, [SUB0_WL, SUB1_WL], ANGLE_RAD)))
    t14 = np.arange(14) * SYMBOL_S
    frame1 = channels_fim(snr, np.ones((14, 128), dtype=bool), SCS_HZ, t14)
    coh = channels_fim(snr, np.ones((14 * NUM_FRAMES, 128), dtype=bool), SCS_HZ, np.arange(14 * NUM_FRAMES) * SYMBOL_S)
    rv("time-coh", frame1, coh)
    rv("time-noncoh", frame1, NUM_FRAMES * frame1)
    frame = rs_frame()
    prs, union = union_fim(frame, ("prs",), snr), union_fim(frame, ("prs", "dmrs", "trs"), snr)
    rv("rs-cs", prs, union)
    rv("rs-zero", prs, union)
    cf = code_frame(2)
    lay, t = code_layout(cf, "dmrs"), frame_symbol_times_s(cf)
    rv("code", code_fim(lay, snr, SCS_HZ, t, ports=[0]), code_fim(lay, snr, SCS_HZ, t))
    mf = code_frame(4)
    lay4, t4 = code_layout(mf, "dmrs"), frame_symbol_times_s(mf)
    rv("multi", code_fim(lay4, snr, SCS_HZ, t4, ports=[0]), code_fim(lay4, snr, SCS_HZ, t4, num_rx=2))
    n_re = float(np.count_nonzero(lay4.port_masks()[0]))              # REs of one port: amplitude SNR gamma n
    vpos = virtual_positions(MULTI_TX_WL, MULTI_RX_WL)
    for q, amp, angle in (("angle", 1.0, ANGLE_RAD),
                          ("angle2", MULTI_PATH["amplitude"], MULTI_PATH["angle_rad"])):
        s = snr * amp**2 * n_re
        out[("multi", q)] = (math.sqrt(angle_crb_rad2(s, 1, MULTI_RX_WL, angle)),
                             math.sqrt(angle_crb_rad2(s, 1, vpos, angle)))
    return out


def summarise(point: Point, trials: list[Metrics]) -> list[dict[str, Any]]:
    """One row per (case, quantity): RMSE and √CRB of the baseline and of the fusion, gains in dB, PSLRs."""
    snr_db = float(point["snr_db"])
    crb = bounds(snr_db)
    rows = []
    for case, quantity, unit in CASES:
        prefix = case.split("-")[0] if case.startswith("rs") or case.startswith("time") else case
        fused_name = case.split("-")[1] if case.startswith("rs") else "fused"
        base_col = f"{prefix}_{quantity}_base"
        fused_col = f"{case}_{quantity}_fused" if case.startswith("time") else f"{prefix}_{quantity}_{fused_name}"
        rb, rf = rmse(t[base_col] for t in trials), rmse(t[fused_col] for t in trials)
        cb, cf = crb[(case, quantity)]
        pslr_b = pslr_f = math.nan
        if case.startswith("rs"):
            pslr_b = float(np.mean([t["rs_pslr_base"] for t in trials]))
            pslr_f = float(np.mean([t[f"rs_pslr_{fused_name}"] for t in trials]))
        rows.append({"snr_db": snr_db, "case": case, "quantity": quantity, "unit": unit, "trials": len(trials),
                     "rmse_base": rb, "crb_base": cb, "rmse_fused": rf, "crb_fused": cf,
                     "gain_db": 20.0 * math.log10(rb / rf) if rf > 0 else math.nan,
                     "crb_gain_db": 20.0 * math.log10(cb / cf),
                     "pslr_base_db": pslr_b, "pslr_fused_db": pslr_f})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """RMSE beside √CRB for baseline and fusion, and the gains, per SNR."""
    head = (f"{'SNR':>4s} {'case':11s} {'quantity':8s} {'unit':4s} | {'RMSE base':>9s} {'√CRB base':>9s} | "
            f"{'RMSE fused':>10s} {'√CRB fused':>10s} | {'gain dB':>7s} {'CRB dB':>6s} | {'PSLR b/f dB':>12s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        pslr = "" if math.isnan(r["pslr_base_db"]) else f"{r['pslr_base_db']:5.1f}/{r['pslr_fused_db']:5.1f}"
        lines.append(f"{r['snr_db']:4.0f} {r['case']:11s} {r['quantity']:8s} {r['unit']:4s} | "
                     f"{r['rmse_base']:9.3g} {r['crb_base']:9.3g} | {r['rmse_fused']:10.3g} {r['crb_fused']:10.3g} | "
                     f"{r['gain_db']:7.2f} {r['crb_gain_db']:6.2f} | {pslr:>12s}")
    lines.append("gain dB = 20 log10(RMSE base / RMSE fused); CRB dB = the same for the √CRBs; PSLR: mean peak "
                 "sidelobe ratio of the maps (rs: PRS alone / union)")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """``resource.png``: RMSE (markers) and √CRB (lines) of baseline and fusion vs SNR, one panel per case."""
    plt = pyplot()
    panels = list(dict.fromkeys((r["case"], r["quantity"], r["unit"]) for r in rows))
    ncol = 4
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), dpi=100, squeeze=False)
    for ax, (case, quantity, unit) in zip(axes.ravel(), panels):
        sel = [r for r in rows if r["case"] == case and r["quantity"] == quantity]
        snr = [r["snr_db"] for r in sel]
        ax.semilogy(snr, [r["rmse_base"] for r in sel], "C0o", ms=4, label="baseline RMSE")
        ax.semilogy(snr, [r["crb_base"] for r in sel], "C0-", lw=1, label="baseline √CRB")
        ax.semilogy(snr, [r["rmse_fused"] for r in sel], "C3s", ms=4, label="fused RMSE")
        ax.semilogy(snr, [r["crb_fused"] for r in sel], "C3-", lw=1, label="fused √CRB")
        ax.set_title(f"{case}: {quantity}", fontsize=9)
        ax.set_xlabel("SNR per RE (dB)", fontsize=8)
        ax.set_ylabel(unit, fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle(f"Resource-level fusion vs single resource, {rows[0]['trials']} trials per point", fontsize=10)
    fig.tight_layout()
    return [save_figure(fig, Path(out) / "resource.png")]


def resource_scenario() -> Scenario:
    return Scenario(
        name="resource",
        description="resource-level fusion in one node (space, time, reference signals, codes, multi-domain) "
                    "vs one resource, each beside its CRB",
        points=tuple({"snr_db": s} for s in SNR_DB),
        trial=trial, summarise=summarise, plot=plot, default_trials=100, table=table)
