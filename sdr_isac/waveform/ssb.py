"""SS/PBCH block: PSS, SSS, PBCH DMRS, the block's resource map, burst positions and cell search.

- :func:`pss`, :func:`sss` — the synchronisation sequences of TS 38.211 §7.4.2;
- :func:`pbch_dmrs` — the 144 QPSK symbols of the PBCH DMRS, §7.4.1.4.1;
- :func:`ssb_owner_map`, :func:`ssb_block` — the 4 x 240 block of §7.4.3.1
  (Table 7.4.3.1-1): PSS on symbol 0, SSS on symbol 2 (subcarriers 56 ... 182),
  PBCH on symbols 1 ... 3 with its DMRS every 4th subcarrier from
  nu = N_ID^cell mod 4;
- :func:`ssb_first_symbols` — first symbols of the candidate blocks of a half
  frame, cases A ... E of TS 38.213 §4.1; :func:`ssb_blocks` and
  :func:`place_ssb` put a frame's bursts on its grid;
- :func:`cell_search` — what a receiver does first: PSS timing by
  correlation (and N_ID^(2)), the CFO from the PSS halves, N_ID^(1) from the
  SSS, the DMRS index i_SSB from the PBCH DMRS.

Every symbol is sent at unit amplitude (beta_PSS = beta_SSS = beta_PBCH = 1).
The PBCH payload (the coded, scrambled MIB) is a random QPSK stand-in drawn
from ``SsbConfig.payload_seed``: a passive receiver does not know it.

Example
-------
>>> pbch_dmrs_c_init(17, 3)
41217
>>> [int(v) for v in pss(0)[:7]]
[1, -1, -1, 1, -1, -1, -1]
>>> ssb_first_symbols("C", 8).tolist()
[2, 8, 16, 22, 30, 36, 44, 50]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.config import FrameConfig
from sdr_isac.config.frame import SSB_CASES, ssb_l_max
from sdr_isac.errors import ConfigError, InputError
from sdr_isac.waveform.grid import ResourceGrid, Signal
from sdr_isac.waveform.modulation import modulate
from sdr_isac.waveform.sequences import qpsk_reference

__all__ = ["SSB_NUM_SUBCARRIERS", "SSB_NUM_SYMBOLS", "SsbBlocks", "CellSearchResult", "pss", "sss",
           "pbch_dmrs_c_init", "pbch_dmrs", "pbch_dmrs_positions", "ssb_owner_map", "ssb_block",
           "ssb_first_symbols", "ssb_l_max", "ssb_blocks", "ssb_subcarrier_offset", "ssb_first_bin", "place_ssb",
           "cell_search"]

#: Subcarriers (20 RB) and symbols of an SS/PBCH block, TS 38.211 §7.4.3.1.
SSB_NUM_SUBCARRIERS = 240
SSB_NUM_SYMBOLS = 4
#: First subcarrier of the PSS and SSS within the block; both are 127 long.
_SYNC_START = 56
_SYNC_LENGTH = 127
#: Per case: first symbols of a group and the group period in symbols (TS 38.213 §4.1).
_BURST_BASE: dict[str, tuple[tuple[int, ...], int]] = {
    "A": ((2, 8), 14), "B": ((4, 8, 16, 20), 28), "C": ((2, 8), 14),
    "D": ((4, 8, 16, 20), 28), "E": ((8, 12, 16, 20, 32, 36, 40, 44), 56)}
_N_D = (0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18)
_N_E = (0, 1, 2, 3, 5, 6, 7, 8)


def _whole(name: str, value: object, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not low <= int(value) <= high:
        raise InputError(f"{name} = {value!r}: allowed a whole number {low} ... {high} ({what}); "
                         f"pass {name} within that range")
    return int(value)


def _m_sequence(taps: tuple[int, int], init: tuple[int, ...]) -> NDArray[np.int64]:
    """x(i + 7) = (x(i + taps[0]) + x(i + taps[1])) mod 2, i = 0 ... 119, from x(0) ... x(6) = init."""
    x = list(init)
    for i in range(_SYNC_LENGTH - 7):
        x.append((x[i + taps[0]] + x[i + taps[1]]) % 2)
    return np.asarray(x, dtype=np.int64)


@lru_cache(maxsize=1)
def _sync_bits() -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """The m-sequences x (PSS), x0 and x1 (SSS) of TS 38.211 §7.4.2.2.1 and §7.4.2.3.1."""
    x_pss = _m_sequence((4, 0), (0, 1, 1, 0, 1, 1, 1))          # [x(6) ... x(0)] = [1 1 1 0 1 1 0]
    x0 = _m_sequence((4, 0), (1, 0, 0, 0, 0, 0, 0))             # [x(6) ... x(0)] = [0 0 0 0 0 0 1]
    x1 = _m_sequence((1, 0), (1, 0, 0, 0, 0, 0, 0))
    for a in (x_pss, x0, x1):
        a.setflags(write=False)
    return x_pss, x0, x1


def pss(n_id2: int) -> NDArray[np.int8]:
    """Primary synchronisation signal d_PSS(n), TS 38.211 §7.4.2.2.1.

    d(n) = 1 - 2 x(m), m = (n + 43 N_ID^(2)) mod 127, n = 0 ... 126.

    Parameters
    ----------
    n_id2 : int
        N_ID^(2), 0 ... 2.

    Returns
    -------
    ndarray, shape (127,), int8
        +1 / -1.
    """
    n2 = _whole("n_id2", n_id2, 0, 2, "N_ID^(2), TS 38.211 §7.4.2.1")
    m = (np.arange(_SYNC_LENGTH) + 43 * n2) % _SYNC_LENGTH
    return (1 - 2 * _sync_bits()[0][m]).astype(np.int8)


def sss(n_id1: int, n_id2: int) -> NDArray[np.int8]:
    """Secondary synchronisation signal d_SSS(n), TS 38.211 §7.4.2.3.1.

    d(n) = [1 - 2 x0((n + m0) mod 127)] [1 - 2 x1((n + m1) mod 127)],
    m0 = 15 floor(N_ID^(1) / 112) + 5 N_ID^(2), m1 = N_ID^(1) mod 112.

    Parameters
    ----------
    n_id1 : int
        N_ID^(1), 0 ... 335.
    n_id2 : int
        N_ID^(2), 0 ... 2.

    Returns
    -------
    ndarray, shape (127,), int8
        +1 / -1.
    """
    n1 = _whole("n_id1", n_id1, 0, 335, "N_ID^(1), TS 38.211 §7.4.2.1")
    n2 = _whole("n_id2", n_id2, 0, 2, "N_ID^(2), TS 38.211 §7.4.2.1")
    _, x0, x1 = _sync_bits()
    n = np.arange(_SYNC_LENGTH)
    m0, m1 = 15 * (n1 // 112) + 5 * n2, n1 % 112
    return ((1 - 2 * x0[(n + m0) % _SYNC_LENGTH]) * (1 - 2 * x1[(n + m1) % _SYNC_LENGTH])).astype(np.int8)


@lru_cache(maxsize=3)
def _sss_table(n_id2: int) -> NDArray[np.float64]:
    """d_SSS of every N_ID^(1) for one N_ID^(2), shape (336, 127)."""
    table = np.stack([sss(n1, n_id2) for n1 in range(336)]).astype(np.float64)
    table.setflags(write=False)
    return table


def _i_ssb_bar(i_ssb: int, n_hf: int, l_max: int) -> int:
    lm = _whole("l_max", l_max, 4, 64, "L_max")
    if lm not in (4, 8, 64):
        raise InputError(f"l_max = {l_max}: allowed 4, 8 or 64 (TS 38.213 §4.1); pass the burst's L_max")
    i = _whole("i_ssb", i_ssb, 0, lm - 1, f"candidate SS/PBCH block index with L_max = {lm}")
    hf = _whole("n_hf", n_hf, 0, 1, "half frame of the block")
    return i % 4 + 4 * hf if lm == 4 else i % 8


def pbch_dmrs_c_init(n_cell_id: int, i_ssb: int, n_hf: int = 0, l_max: int = 8) -> int:
    """c_init of the PBCH DMRS, TS 38.211 §7.4.1.4.1.

    c_init = 2**11 (i_bar + 1) (floor(N_ID^cell / 4) + 1) + 2**6 (i_bar + 1)
    + (N_ID^cell mod 4), with i_bar = i_SSB + 4 n_hf for L_max = 4 (i_SSB the
    two least significant bits of the block index) and the three least
    significant bits of the block index for L_max = 8 or 64.

    Parameters
    ----------
    n_cell_id : int
        N_ID^cell, 0 ... 1007.
    i_ssb : int
        Candidate block index, 0 ... l_max - 1.
    n_hf : int
        Half frame of the block (0 first, 1 second); used with L_max = 4 only.
    l_max : int
        4, 8 or 64.
    """
    cell = _whole("n_cell_id", n_cell_id, 0, 1007, "N_ID^cell, TS 38.211 §7.4.2.1")
    bar = _i_ssb_bar(i_ssb, n_hf, l_max)
    return 2**11 * (bar + 1) * (cell // 4 + 1) + 2**6 * (bar + 1) + cell % 4


def pbch_dmrs(n_cell_id: int, i_ssb: int, n_hf: int = 0, l_max: int = 8) -> NDArray[np.complex64]:
    """PBCH DMRS r(m), m = 0 ... 143: QPSK of the Gold sequence (TS 38.211 §7.4.1.4.1, §5.2.1).

    Parameters as :func:`pbch_dmrs_c_init`.

    Returns
    -------
    ndarray, shape (144,), complex64
        In the order of the mapping (:func:`pbch_dmrs_positions`).
    """
    return qpsk_reference([pbch_dmrs_c_init(n_cell_id, i_ssb, n_hf, l_max)], 144)[0]


def pbch_dmrs_positions(n_cell_id: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(symbol, subcarrier) within the block of PBCH DMRS symbol m = 0 ... 143, TS 38.211 Table 7.4.3.1-1.

    Symbols 1 and 3: k = nu, nu + 4, ..., 236 + nu; symbol 2: k = nu ... 44 + nu and 192 + nu ... 236 + nu,
    nu = N_ID^cell mod 4; in increasing order of k, then l.

    Returns
    -------
    symbols, subcarriers : ndarray, shape (144,), int64
    """
    nu = _whole("n_cell_id", n_cell_id, 0, 1007, "N_ID^cell, TS 38.211 §7.4.2.1") % 4
    full = nu + 4 * np.arange(60)
    edge = np.concatenate((nu + 4 * np.arange(12), 192 + nu + 4 * np.arange(12)))
    sub = np.concatenate((full, edge, full)).astype(np.int64)
    sym = np.repeat(np.array([1, 2, 3], dtype=np.int64), (60, 24, 60))
    return sym, sub


def ssb_owner_map(n_cell_id: int) -> NDArray[np.uint8]:
    """Owner of each RE of an SS/PBCH block (TS 38.211 Table 7.4.3.1-1).

    Returns
    -------
    ndarray, shape (4, 240), uint8
        :class:`~sdr_isac.waveform.grid.Signal` codes: SSB_PSS, SSB_SSS, PBCH, PBCH_DMRS and
        SSB_GUARD (the REs set to zero: symbol 0 outside 56 ... 182, symbol 2 on
        48 ... 55 and 183 ... 191).
    """
    owner = np.full((SSB_NUM_SYMBOLS, SSB_NUM_SUBCARRIERS), Signal.PBCH, dtype=np.uint8)
    sync = slice(_SYNC_START, _SYNC_START + _SYNC_LENGTH)
    owner[0] = Signal.SSB_GUARD
    owner[0, sync] = Signal.SSB_PSS
    owner[2, 48:192] = Signal.SSB_GUARD
    owner[2, sync] = Signal.SSB_SSS
    owner[pbch_dmrs_positions(n_cell_id)] = Signal.PBCH_DMRS
    return owner


def ssb_block(n_cell_id: int, i_ssb: int, n_hf: int = 0, l_max: int = 8,
              payload: ArrayLike | None = None) -> NDArray[np.complex64]:
    """The values of one SS/PBCH block (beta = 1), TS 38.211 §7.4.3.1.

    Parameters
    ----------
    n_cell_id, i_ssb, n_hf, l_max
        As :func:`pbch_dmrs_c_init`.
    payload : array_like, shape (432,), complex, optional
        The PBCH symbols d_PBCH(0 ... 431), mapped in increasing k then l;
        zero when omitted.

    Returns
    -------
    ndarray, shape (4, 240), complex64
    """
    cell = _whole("n_cell_id", n_cell_id, 0, 1007, "N_ID^cell, TS 38.211 §7.4.2.1")
    block = np.zeros((SSB_NUM_SYMBOLS, SSB_NUM_SUBCARRIERS), dtype=np.complex64)
    owner = ssb_owner_map(cell)
    block[0, owner[0] == Signal.SSB_PSS] = pss(cell % 3)
    block[2, owner[2] == Signal.SSB_SSS] = sss(cell // 3, cell % 3)
    block[pbch_dmrs_positions(cell)] = pbch_dmrs(cell, i_ssb, n_hf, l_max)
    if payload is not None:
        data = np.asarray(payload).reshape(-1)
        if data.size != 432 or not np.all(np.isfinite(data)):
            raise InputError(f"payload has {data.size} values: allowed 432 finite PBCH symbols (TS 38.212 E = 864 "
                             "bits, QPSK); pass the whole PBCH")
        block[owner == Signal.PBCH] = data
    return block


def ssb_first_symbols(case: str, l_max: int) -> NDArray[np.int64]:
    """First symbol of each candidate SS/PBCH block in a half frame, TS 38.213 §4.1.

    Symbol 0 is the first symbol of the half frame's first slot.

    - Case A (15 kHz): {2, 8} + 14 n, n = 0, 1 (L_max 4) or 0 ... 3 (L_max 8).
    - Case B (30 kHz): {4, 8, 16, 20} + 28 n, n = 0 (L_max 4) or 0, 1 (L_max 8).
    - Case C (30 kHz): {2, 8} + 14 n, n = 0, 1 (L_max 4) or 0 ... 3 (L_max 8).
    - Case D (120 kHz): {4, 8, 16, 20} + 28 n, n = 0-3, 5-8, 10-13, 15-18 (L_max 64).
    - Case E (240 kHz): {8, 12, 16, 20, 32, 36, 40, 44} + 56 n, n = 0-3, 5-8 (L_max 64).

    Parameters
    ----------
    case : str
        ``A`` ... ``E``.
    l_max : int
        4 or 8 (cases A, B, C), 64 (D, E).

    Returns
    -------
    ndarray, shape (l_max,), int64
        Increasing; entry i is candidate block i.
    """
    if case not in _BURST_BASE:
        raise InputError(f"case = {case!r}: allowed 'A', 'B', 'C', 'D' or 'E' (TS 38.213 §4.1)")
    allowed = SSB_CASES[case][1]
    if isinstance(l_max, bool) or l_max not in allowed:
        raise InputError(f"l_max = {l_max!r}: allowed {' or '.join(map(str, allowed))} with case {case} "
                         "(TS 38.213 §4.1)")
    base, period = _BURST_BASE[case]
    if case == "D":
        groups: tuple[int, ...] = _N_D
    elif case == "E":
        groups = _N_E
    else:
        groups = tuple(range(l_max // len(base)))
    first = (np.asarray(groups)[:, None] * period + np.asarray(base)[None, :]).reshape(-1)
    return np.sort(first).astype(np.int64)


@dataclass(frozen=True)
class SsbBlocks:
    """The SS/PBCH blocks inside a frame.

    Attributes
    ----------
    first_symbols : ndarray, shape (B,), int64
        Frame symbol of each block's symbol 0 (its PSS).
    indices : ndarray, shape (B,), int64
        Candidate block index i_SSB, 0 ... L_max - 1.
    half_frames : ndarray, shape (B,), int64
        Half frame number counted from the start of SFN 0 (n_hf is its parity).
    """

    first_symbols: NDArray[np.int64]
    indices: NDArray[np.int64]
    half_frames: NDArray[np.int64]


def ssb_blocks(frame: FrameConfig) -> SsbBlocks:
    """Where the frame's SS/PBCH blocks are (none without ``frame.ssb``); see :class:`~sdr_isac.config.SsbConfig`.

    Half frame h (70 * 2**mu symbols each, counted from SFN 0, whose slot 0 is
    ``first_slot`` slots before the frame) carries a burst when 5 h ms is a
    multiple of ``period_ms``; blocks that do not fit wholly in the frame are
    left out.
    """
    ssb = frame.ssb
    empty = np.zeros(0, dtype=np.int64)
    if ssb is None:
        return SsbBlocks(empty, empty, empty)
    per_half = 70 * 2**frame.numerology
    start = frame.first_slot * frame.symbols_per_slot
    end = start + frame.total_symbols
    halves = np.arange(start // per_half, -(-end // per_half), dtype=np.int64)
    halves = halves[(5 * halves) % ssb.period_ms == 0]
    chosen = np.asarray(ssb.transmitted, dtype=np.int64)
    first = ssb_first_symbols(ssb.case, ssb.l_max)[chosen]
    absolute = (halves[:, None] * per_half + first[None, :]).reshape(-1)
    index = np.tile(chosen, halves.size)
    half = np.repeat(halves, chosen.size)
    keep = (absolute >= start) & (absolute + SSB_NUM_SYMBOLS <= end)
    return SsbBlocks(absolute[keep] - start, index[keep], half[keep])


def ssb_subcarrier_offset(frame: FrameConfig) -> int:
    """Carrier subcarrier of the block's subcarrier 0: ``ssb.subcarrier_offset``, or the block centred."""
    if frame.ssb is None:
        raise InputError("frame has no [frame.ssb] section: add one to place SS/PBCH blocks")
    if frame.ssb.subcarrier_offset is not None:
        return frame.ssb.subcarrier_offset
    return (frame.num_subcarriers - SSB_NUM_SUBCARRIERS) // 2


def ssb_first_bin(frame: FrameConfig) -> int:
    """Baseband subcarrier (0 at DC, negative below) of the block's subcarrier 0, for :func:`cell_search`.

    Carrier subcarrier k sits at (k - K / 2) df (:mod:`sdr_isac.waveform.ofdm`).
    """
    return ssb_subcarrier_offset(frame) - frame.num_subcarriers // 2


def place_ssb(grid: ResourceGrid, frame: FrameConfig) -> None:
    """Write the frame's SS/PBCH blocks (port 0) into ``grid`` and own their REs.

    Call after the other reference signals: the block punctures them (their
    values on its REs are set to zero on every port and its owner replaces
    theirs), as PDSCH and its DMRS are rate-matched around the SS/PBCH block.
    """
    ssb = frame.ssb
    if ssb is None:
        return
    blocks = ssb_blocks(frame)
    if blocks.indices.size == 0:
        raise ConfigError(f"frame.ssb.period_ms = {ssb.period_ms}: the frame's {frame.total_symbols} symbols (from "
                          f"slot {frame.first_slot}) hold no whole SS/PBCH block of the burst (candidates "
                          f"{list(ssb.transmitted)} of case {ssb.case}, a burst every {ssb.period_ms} ms from SFN 0); "
                          "lengthen the frame, move first_slot onto a burst's half frame, shorten period_ms or "
                          "remove [frame.ssb]", key="frame.ssb.period_ms")
    offset = ssb_subcarrier_offset(frame)
    owner = ssb_owner_map(ssb.n_cell_id)
    is_pbch = owner == Signal.PBCH
    sub = offset + np.arange(SSB_NUM_SUBCARRIERS)
    for first, index, half in zip(blocks.first_symbols, blocks.indices, blocks.half_frames):
        rng = np.random.default_rng([ssb.payload_seed, int(half), int(index)])
        bits = rng.integers(0, 2, size=2 * int(np.count_nonzero(is_pbch)), dtype=np.uint8)
        values = ssb_block(ssb.n_cell_id, int(index), int(half) % 2, ssb.l_max, modulate(bits, "qpsk"))
        sym = (int(first) + np.arange(SSB_NUM_SYMBOLS))[:, None]
        grid.values[:, sym, sub] = 0
        grid.owner[sym, sub] = owner
        grid.values[0, sym, sub] = values


# ------------------------------------------------------------------ cell search


@dataclass(frozen=True)
class CellSearchResult:
    """What :func:`cell_search` found.

    Attributes
    ----------
    n_cell_id : int
        N_ID^cell = 3 N_ID^(1) + N_ID^(2).
    n_id1, n_id2 : int
    i_ssb_bar : int
        The PBCH DMRS index i_bar, 0 ... 7: for L_max = 4 the block index
        plus 4 times the half frame; for L_max 8 or 64 the block index's three
        least significant bits.
    ssb_start : int
        Sample of the block's first sample (the start of its PSS symbol's CP).
    cfo_hz : float
        Carrier frequency offset, Hz, from the phase between the two halves of
        the PSS correlation (unambiguous within one subcarrier spacing).
    peak_to_median : float
        PSS correlation peak over its median (amplitudes): a detection figure.
    grid : ndarray, shape (C, 4, 240), complex64
        The block's received REs after CFO removal.
    """

    n_cell_id: int
    n_id1: int
    n_id2: int
    i_ssb_bar: int
    ssb_start: int
    cfo_hz: float
    peak_to_median: float
    grid: NDArray[np.complex64]


def _pss_halves(n_id2: int, fft_size: int, first_bin: int) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
    """The two halves of the PSS symbol's useful part in time (unitary IFFT)."""
    spectrum = np.zeros(fft_size, dtype=np.complex128)
    spectrum[(first_bin + _SYNC_START + np.arange(_SYNC_LENGTH)) % fft_size] = pss(n_id2)
    td = np.fft.ifft(spectrum, norm="ortho")
    half = fft_size // 2
    return td[:half], td[half:]


def _refine_timing(y: NDArray[np.complexfloating], start: int, lags: int, cp: int, replica: NDArray[np.complex128],
                   cfo_cycles: float) -> int:
    """The lag within 2 samples of ``start`` where the whole PSS symbol, CFO removed, correlates best.

    The two-half search tolerates a CFO by giving up coherence between the halves, which can move
    its peak by a sample; with the CFO known the full-symbol correlation is coherent again.
    """
    n_fft = replica.size
    candidates = np.arange(max(start - 2, 0), min(start + 3, lags))
    phase = np.exp(-2j * math.pi * cfo_cycles * np.arange(n_fft))
    scores = [float(np.sum(np.abs(y[:, c + cp: c + cp + n_fft] @ (phase * replica.conj())) ** 2)) for c in candidates]
    return int(candidates[int(np.argmax(scores))])


def cell_search(samples: ArrayLike, fft_size: int, cp_samples: int, sample_rate_hz: float,
                first_bin: int = -SSB_NUM_SUBCARRIERS // 2) -> CellSearchResult:
    """Find the strongest SS/PBCH block in a receive buffer and read its cell identity and block index.

    1. PSS: correlate the buffer with each N_ID^(2)'s PSS symbol, in two
       halves whose powers add (tolerant of a CFO up to about half a
       subcarrier spacing), all channels summed; the strongest (lag, N_ID^(2))
       gives the timing.  The phase between the halves gives the CFO, which is
       removed.
    2. SSS: the block's symbols are demodulated; the PSS REs give the channel
       on subcarriers 56 ... 182 and N_ID^(1) maximises the magnitude of the
       SSS correlation against that channel (336 hypotheses): coherent across
       subcarriers, but not in phase with the PSS, since a gNB upconverts each
       symbol with its own phase reference (TS 38.211 §5.4).
    3. PBCH DMRS: the 8 i_bar hypotheses are scored by the differential
       correlation of neighbouring DMRS REs (robust to a residual delay and a
       frequency-selective channel).

    Parameters
    ----------
    samples : array_like, shape (C, n) or (n,), complex
        Receive buffer, at least one block long.
    fft_size : int
        N_FFT of the SSB's numerology at ``sample_rate_hz``.
    cp_samples : int
        Cyclic prefix of the block's symbols, samples (0 ... fft_size - 1).
    sample_rate_hz : float
        f_s = N_FFT * subcarrier spacing, Hz.
    first_bin : int
        Baseband subcarrier of the block's subcarrier 0 (default -120: the
        receiver tuned to the block's centre); see :func:`ssb_first_bin`.

    Returns
    -------
    CellSearchResult
    """
    import scipy.signal as sp_signal  # lazily: half a second at import of sdr_isac.waveform
    y = np.atleast_2d(np.asarray(samples))
    n_fft = _whole("fft_size", fft_size, 256, 65536, "FFT size, >= 256 for the 240 subcarriers of a block")
    if n_fft % 2:
        raise InputError(f"fft_size = {fft_size}: allowed an even FFT size; pass the frame's N_FFT")
    cp = _whole("cp_samples", cp_samples, 0, n_fft - 1, "samples, shorter than the useful symbol")
    fb = _whole("first_bin", first_bin, -n_fft // 2, n_fft // 2 - SSB_NUM_SUBCARRIERS,
                "baseband subcarrier of the block's subcarrier 0, the whole block inside the FFT")
    if not (isinstance(sample_rate_hz, int | float | np.integer | np.floating) and not isinstance(sample_rate_hz, bool)
            and math.isfinite(sample_rate_hz) and sample_rate_hz > 0):
        raise InputError(f"sample_rate_hz = {sample_rate_hz!r} Hz: allowed a finite rate > 0")
    block_len = SSB_NUM_SYMBOLS * (n_fft + cp)
    if y.ndim != 2 or y.dtype.kind != "c" or y.shape[1] < block_len:      # real samples hold no baseband block
        raise InputError(f"samples of shape {y.shape}, dtype {y.dtype}: allowed (channels, n) complex with n >= "
                         f"{block_len} (one SS/PBCH block); capture more samples")
    if not np.all(np.isfinite(y)):
        raise InputError("samples contain NaN or infinity: pass a finite capture")
    lags = y.shape[1] - block_len + 1                          # PSS useful part at lag + cp, the block fits
    half = n_fft // 2
    best = (-1.0, 0, 0)
    metrics = []
    for n2 in range(3):
        p1, p2 = _pss_halves(n2, n_fft, fb)
        metric = np.zeros(lags)
        for row in y:
            c1 = sp_signal.correlate(row[cp: cp + lags - 1 + half], p1, mode="valid", method="fft")
            c2 = sp_signal.correlate(row[cp + half: cp + half + lags - 1 + half], p2, mode="valid", method="fft")
            metric += np.abs(c1) ** 2 + np.abs(c2) ** 2
        metrics.append(metric)
        k = int(np.argmax(metric))
        if metric[k] > best[0]:
            best = (float(metric[k]), k, n2)
    _, start, n_id2 = best
    median = float(np.median(np.sqrt(np.concatenate(metrics))))
    ratio = math.sqrt(best[0]) / median if median > 0 else math.inf
    p1, p2 = _pss_halves(n_id2, n_fft, fb)
    head = y[:, start + cp: start + cp + half] @ p1.conj()
    tail = y[:, start + cp + half: start + cp + n_fft] @ p2.conj()
    cfo_hz = float(np.angle(np.sum(tail * head.conj())) * sample_rate_hz / (2 * math.pi * half))
    start = _refine_timing(y, start, lags, cp, np.concatenate((p1, p2)), cfo_hz / sample_rate_hz)
    n = np.arange(start, start + block_len)
    block = y[:, start: start + block_len] * np.exp(-2j * math.pi * cfo_hz * n / sample_rate_hz)
    useful = block.reshape(y.shape[0], SSB_NUM_SYMBOLS, n_fft + cp)[..., cp:]
    spectrum = np.fft.fft(useful, axis=-1, norm="ortho")
    grid = spectrum[..., (fb + np.arange(SSB_NUM_SUBCARRIERS)) % n_fft].astype(np.complex64)
    sync = slice(_SYNC_START, _SYNC_START + _SYNC_LENGTH)
    channel = grid[:, 0, sync] * pss(n_id2)                                    # (C, 127)
    matched = np.sum(grid[:, 2, sync] * channel.conj(), axis=0)                 # (127,)
    # the magnitude, not the real part: a gNB upconverts each symbol with its own phase reference (TS 38.211
    # 5.4), so behind a receiver whose LO runs on the SSS is turned against the PSS by a phase of the carrier
    n_id1 = int(np.argmax(np.abs(_sss_table(n_id2) @ matched)))
    cell = 3 * n_id1 + n_id2
    sym, sub = pbch_dmrs_positions(cell)
    received = grid[:, sym, sub]                                                # (C, 144)
    pairs = np.ones(143, dtype=bool)
    pairs[[59, 71, 83]] = False                                                 # no pair across groups
    scores = []
    for bar in range(8):
        z = received * qpsk_reference([pbch_dmrs_c_init(cell, bar % 4, bar // 4, 4)], 144)[0].conj()
        scores.append(abs(np.sum((z[:, 1:] * z[:, :-1].conj())[:, pairs])))
    return CellSearchResult(cell, n_id1, n_id2, int(np.argmax(scores)), int(start), cfo_hz, ratio, grid)
