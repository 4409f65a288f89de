"""Sounding reference signal (SRS), TS 38.211 §6.4.1.4.

Ports share the same REs and are told apart by cyclic shifts of one
low-PAPR Zadoff-Chu base sequence (code domain), except that with four ports
and a cyclic shift in the upper half, ports 1001 and 1003 move to the other
half of the comb (§6.4.1.4.3).  Group and sequence hopping are off: u =
n_ID^SRS mod 30, v = 0.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from sdr_isac.config import SRS_MAX_CYCLIC_SHIFTS, FrameConfig
from sdr_isac.errors import InputError
from sdr_isac.waveform.grid import ResourceGrid, Signal
from sdr_isac.waveform.sequences import low_papr_sequence, zc_parameters

__all__ = ["srs_subcarriers", "srs_cyclic_shift", "srs_comb_offset", "srs_sequences", "place_srs",
           "zc_parameters"]


def _check(comb_size: int, port: int, num_ports: int) -> None:
    if comb_size not in SRS_MAX_CYCLIC_SHIFTS or num_ports not in (1, 2, 4) or not 0 <= port < num_ports \
            or (comb_size == 8 and num_ports == 4):
        raise InputError(f"(comb_size, port, num_ports) = ({comb_size}, {port}, {num_ports}): allowed comb "
                         "2, 4 or 8; 1, 2 or 4 ports (at most 2 with comb 8); port 0 ... num_ports - 1 "
                         "(port 0 is 1000)")


def srs_subcarriers(comb_size: int, comb_offset: int, num_subcarriers: int) -> NDArray[np.int64]:
    """SRS subcarriers k = K_TC k' + k_TC within ``num_subcarriers``, §6.4.1.4.3."""
    if comb_size not in SRS_MAX_CYCLIC_SHIFTS or not 0 <= comb_offset < comb_size:
        raise InputError(f"(comb_size, comb_offset) = ({comb_size}, {comb_offset}): allowed comb 2, 4 or 8 "
                         "and offset 0 ... comb_size - 1")
    return np.arange(comb_offset, num_subcarriers, comb_size, dtype=np.int64)


def srs_cyclic_shift(comb_size: int, n_cs: int, port: int, num_ports: int) -> int:
    """n_SRS^cs,i = (n_SRS^cs + n_SRS^cs,max (p_i - 1000) / N_ap) mod n_SRS^cs,max, §6.4.1.4.2."""
    _check(comb_size, port, num_ports)
    n_max = SRS_MAX_CYCLIC_SHIFTS[comb_size]
    return (n_cs + n_max * port // num_ports) % n_max


def srs_comb_offset(comb_size: int, comb_offset: int, n_cs: int, port: int, num_ports: int) -> int:
    """k_TC^(p_i) of §6.4.1.4.3: shifted by K_TC / 2 for ports 1001/1003 of 4 when n_cs >= n_max / 2."""
    _check(comb_size, port, num_ports)
    n_max = SRS_MAX_CYCLIC_SHIFTS[comb_size]
    if num_ports == 4 and port in (1, 3) and n_cs >= n_max // 2:
        return (comb_offset + comb_size // 2) % comb_size
    return comb_offset


def srs_sequences(frame: FrameConfig) -> tuple[NDArray[np.int64], NDArray[np.complex64]]:
    """Subcarriers and values of each SRS port on one SRS symbol.

    Returns
    -------
    subcarriers : ndarray, shape (num_ports, M_sc), int64
    values : ndarray, shape (num_ports, M_sc), complex64
        (1 / sqrt(N_ap)) exp(j alpha_i n) r̄_{u,v}(n), §6.4.1.4.2-3.
    """
    srs = frame.srs
    if srs is None:
        raise InputError("frame has no SRS: add a [frame.srs] section")
    m_sc = frame.srs_num_rb * 12 // srs.comb_size
    n_max = SRS_MAX_CYCLIC_SHIFTS[srs.comb_size]
    first = 12 * srs.start_rb
    subs, vals = [], []
    for p in range(srs.num_ports):
        alpha = 2.0 * math.pi * srs_cyclic_shift(srs.comb_size, srs.cyclic_shift, p, srs.num_ports) / n_max
        k_tc = srs_comb_offset(srs.comb_size, srs.comb_offset, srs.cyclic_shift, p, srs.num_ports)
        subs.append(first + k_tc + srs.comb_size * np.arange(m_sc, dtype=np.int64))
        vals.append(low_papr_sequence(m_sc, srs.sequence_id % 30, 0, alpha) / np.float32(math.sqrt(srs.num_ports)))
    return np.stack(subs), np.stack(vals).astype(np.complex64)


def place_srs(grid: ResourceGrid, frame: FrameConfig) -> None:
    """Write the frame's SRS (port i on grid port i) in every slot and claim its REs."""
    srs = frame.srs
    if srs is None:
        return
    per_slot = frame.symbols_per_slot
    num_slots = -(-frame.total_symbols // per_slot)
    symbols = (np.arange(num_slots)[:, None] * per_slot + srs.start_symbol
               + np.arange(srs.num_symbols)[None, :]).reshape(-1)
    symbols = symbols[symbols < frame.total_symbols]
    if symbols.size == 0:
        return
    subs, vals = srs_sequences(frame)
    union = np.unique(subs)
    sym = np.broadcast_to(symbols[:, None], (symbols.size, union.size))
    grid.claim(Signal.SRS, sym, np.broadcast_to(union, sym.shape))
    for p in range(srs.num_ports):
        grid.values[p][np.ix_(symbols, subs[p])] = vals[p][None, :]
