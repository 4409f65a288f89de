"""Downlink positioning reference signal (DL-PRS), TS 38.211 §7.4.1.7."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sdr_isac.config import FrameConfig, PrsConfig
from sdr_isac.errors import InputError
from sdr_isac.waveform.grid import ResourceGrid, Signal
from sdr_isac.waveform.sequences import qpsk_reference

__all__ = ["PRS_K_PRIME", "prs_pattern", "prs_c_init", "prs_slots", "place_prs"]

#: k' of TS 38.211 Table 7.4.1.7.3-1 for symbol l - l_start = 0 ... 11, per comb size.
PRS_K_PRIME: dict[int, tuple[int, ...]] = {
    2: (0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1),
    4: (0, 2, 1, 3, 0, 2, 1, 3, 0, 2, 1, 3),
    6: (0, 3, 1, 4, 2, 5, 0, 3, 1, 4, 2, 5),
    12: (0, 6, 3, 9, 1, 7, 4, 10, 2, 8, 5, 11),
}


def prs_pattern(comb_size: int, num_symbols: int, re_offset: int, num_subcarriers: int) -> NDArray[np.bool_]:
    """PRS REs per PRS symbol, TS 38.211 §7.4.1.7.3.

    k = m K_comb + ((k_offset + k') mod K_comb) on symbol l_start + i, with k'
    from Table 7.4.1.7.3-1.

    Parameters
    ----------
    comb_size : int
        K_comb, 2, 4, 6 or 12.
    num_symbols : int
        L_PRS (1 ... 12 rows are returned).
    re_offset : int
        k_offset, 0 ... K_comb - 1.
    num_subcarriers : int
        Subcarriers of the grid (a multiple of K_comb).

    Returns
    -------
    ndarray, shape (num_symbols, num_subcarriers), bool
        Row i is PRS symbol l_start + i.
    """
    if comb_size not in PRS_K_PRIME:
        raise InputError(f"comb_size = {comb_size}: allowed 2, 4, 6 or 12")
    if not 1 <= num_symbols <= 12 or not 0 <= re_offset < comb_size or num_subcarriers % comb_size:
        raise InputError(f"(num_symbols, re_offset, num_subcarriers) = ({num_symbols}, {re_offset}, "
                         f"{num_subcarriers}): allowed 1 ... 12, 0 ... {comb_size - 1}, a multiple of {comb_size}")
    shift = (re_offset + np.asarray(PRS_K_PRIME[comb_size][:num_symbols])) % comb_size
    k = np.arange(num_subcarriers)
    return (k[None, :] % comb_size) == shift[:, None]


def prs_c_init(n_id: int, slot: int, symbol: int, symbols_per_slot: int = 14) -> int:
    """c_init of the PRS sequence, TS 38.211 §7.4.1.7.2.

    c_init = (2**22 floor(n_ID / 1024) + 2**10 (N_symb^slot n_s,f + l + 1)
    (2 (n_ID mod 1024) + 1) + (n_ID mod 1024)) mod 2**31.
    """
    low = n_id % 1024
    return (2**22 * (n_id // 1024) + 2**10 * (symbols_per_slot * slot + symbol + 1) * (2 * low + 1) + low) % 2**31


def prs_slots(prs: PrsConfig, slots: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Which slot numbers carry PRS, TS 38.211 §7.4.1.7.4.

    A slot n carries PRS when (n - T_offset) mod T_per = i T_gap for some
    i = 0 ... T_rep - 1.
    """
    phase = (slots - prs.slot_offset) % prs.period_slots
    return (phase % prs.time_gap_slots == 0) & (phase // prs.time_gap_slots < prs.repetition_factor)


def place_prs(grid: ResourceGrid, frame: FrameConfig) -> None:
    """Write the frame's PRS (port 0) into ``grid`` and claim its REs."""
    prs = frame.prs
    if prs is None:
        return
    per_slot = frame.symbols_per_slot
    num_slots = -(-frame.total_symbols // per_slot)
    slot = np.arange(num_slots, dtype=np.int64)
    slot = slot[prs_slots(prs, frame.first_slot + slot)]
    offset = np.arange(prs.num_symbols, dtype=np.int64)
    symbol = (slot[:, None] * per_slot + prs.start_symbol + offset[None, :]).reshape(-1)
    row = np.tile(offset, slot.size)
    keep = symbol < frame.total_symbols
    symbol, row = symbol[keep], row[keep]
    if symbol.size == 0:
        return
    slot_number = (frame.first_slot + symbol // per_slot) % (10 * 2**frame.numerology)
    c_init = [prs_c_init(prs.n_id, int(n), int(l), per_slot) for n, l in zip(slot_number, symbol % per_slot)]
    k_sc = frame.num_subcarriers
    seq = qpsk_reference(c_init, k_sc // prs.comb_size)                       # (n_sym, K / comb)
    pattern = prs_pattern(prs.comb_size, prs.num_symbols, prs.re_offset, k_sc)
    sub = np.nonzero(pattern)[1].reshape(prs.num_symbols, -1)[row]            # (n_sym, K / comb)
    sym = np.broadcast_to(symbol[:, None], sub.shape)
    grid.claim(Signal.PRS, sym, sub)
    grid.values[0, sym, sub] = seq
