"""CSI reference signal for tracking (TRS), TS 38.211 §7.4.1.5.

TRS is the one-port, density-3 CSI-RS of Table 7.4.1.5.3-1 row 1: REs
k = 12 n + k_0 + {0, 4, 8}, i.e. every 4th subcarrier from k_0, on each TRS
symbol.  Its sequence index is m' = floor(n alpha) + k' + floor(k̄ rho / 12)
with alpha = rho = 3, k' = 0, which for k_0 < 4 is the RE's rank j in k = 4 j + k_0.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sdr_isac.config import FrameConfig
from sdr_isac.errors import InputError
from sdr_isac.waveform.grid import ResourceGrid, Signal
from sdr_isac.waveform.sequences import qpsk_reference

__all__ = ["trs_subcarriers", "csirs_c_init", "place_trs"]


def trs_subcarriers(k0: int, num_subcarriers: int) -> NDArray[np.int64]:
    """TRS subcarriers k = 12 n + k_0 + {0, 4, 8} (k_0 = 0 ... 3)."""
    if not 0 <= k0 <= 3:
        raise InputError(f"k0 = {k0}: allowed 0 ... 3 (TS 38.211 Table 7.4.1.5.3-1 row 1)")
    return np.arange(k0, num_subcarriers, 4, dtype=np.int64)


def csirs_c_init(n_id: int, slot: int, symbol: int, symbols_per_slot: int = 14) -> int:
    """c_init = (2**10 (N_symb^slot n_s,f + l + 1)(2 n_ID + 1) + n_ID) mod 2**31, §7.4.1.5.2."""
    return (2**10 * (symbols_per_slot * slot + symbol + 1) * (2 * n_id + 1) + n_id) % 2**31


def place_trs(grid: ResourceGrid, frame: FrameConfig) -> None:
    """Write the frame's TRS (port 0) in every slot and claim its REs."""
    trs = frame.trs
    if trs is None:
        return
    per_slot = frame.symbols_per_slot
    num_slots = -(-frame.total_symbols // per_slot)
    symbols = (np.arange(num_slots)[:, None] * per_slot + np.asarray(trs.symbols)[None, :]).reshape(-1)
    symbols = np.sort(symbols[symbols < frame.total_symbols])
    if symbols.size == 0:
        return
    subs = trs_subcarriers(trs.subcarrier_offset, frame.num_subcarriers)
    slot_number = (frame.first_slot + symbols // per_slot) % (10 * 2**frame.numerology)
    c_init = [csirs_c_init(trs.n_id, int(n), int(l), per_slot) for n, l in zip(slot_number, symbols % per_slot)]
    seq = qpsk_reference(c_init, subs.size)
    sym = np.broadcast_to(symbols[:, None], seq.shape)
    sub = np.broadcast_to(subs, seq.shape)
    grid.claim(Signal.TRS, sym, sub)
    grid.values[0, sym, sub] = seq
