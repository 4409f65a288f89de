"""PDSCH demodulation reference signal (DMRS), mapping type A, TS 38.211 §7.4.1.1."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sdr_isac.config import DmrsConfig, FrameConfig
from sdr_isac.errors import InputError
from sdr_isac.waveform.grid import ResourceGrid, Signal
from sdr_isac.waveform.sequences import qpsk_reference

__all__ = [
    "dmrs_symbols",
    "dmrs_port_params",
    "dmrs_subcarriers",
    "dmrs_c_init",
    "dmrs_layout",
    "place_dmrs",
    "DmrsLayout",
]

# Table 7.4.1.1.2-3 (single-symbol DMRS), mapping type A: positions after l0
# for l_d -> per dmrs-AdditionalPosition 0 ... 3.
_SINGLE: dict[int, tuple[tuple[int, ...], ...]] = {
    **{ld: ((), (), (), ()) for ld in range(3, 8)},
    8: ((), (7,), (7,), (7,)),
    9: ((), (7,), (7,), (7,)),
    10: ((), (9,), (6, 9), (6, 9)),
    11: ((), (9,), (6, 9), (6, 9)),
    12: ((), (9,), (6, 9), (5, 8, 11)),
    13: ((), (11,), (7, 11), (5, 8, 11)),
    14: ((), (11,), (7, 11), (5, 8, 11)),
}
# Table 7.4.1.1.2-4 (double-symbol DMRS), mapping type A, additional position 0 ... 1.
_DOUBLE: dict[int, tuple[tuple[int, ...], ...]] = {
    **{ld: ((), ()) for ld in range(4, 10)},
    10: ((), (8,)),
    11: ((), (8,)),
    12: ((), (8,)),
    13: ((), (10,)),
    14: ((), (10,)),
}

# Tables 7.4.1.1.2-1 (type 1) and 7.4.1.1.2-2 (type 2): port index (0 = port 1000)
# -> CDM group lambda, w_f(k'), w_t(l').  Delta = 2 lambda (type 2) or lambda (type 1).
_PLUS, _MINUS = (1, 1), (1, -1)


def dmrs_symbols(duration: int = 14, type_a_position: int = 2, additional_positions: int = 0,
                 length: int = 1) -> tuple[int, ...]:
    """DMRS symbols within the slot, TS 38.211 §7.4.1.1.2, Tables 7.4.1.1.2-3/-4 (type A).

    Parameters
    ----------
    duration : int
        l_d, symbols from the start of the slot to the end of the PDSCH.
    type_a_position : int
        l_0, 2 or 3.
    additional_positions : int
        dmrs-AdditionalPosition, 0 ... 3 (single) or 0 ... 1 (double).
    length : int
        1 (single-symbol) or 2 (double-symbol, both symbols listed).

    Returns
    -------
    tuple of int
        Sorted symbol indices l = l̄ + l'.
    """
    table = _SINGLE if length == 1 else _DOUBLE
    if length not in (1, 2) or type_a_position not in (2, 3) or duration not in table \
            or not 0 <= additional_positions < len(table[duration]) \
            or (duration == 2 + length and type_a_position != 2) \
            or (additional_positions == 3 and type_a_position != 2):
        raise InputError(
            f"(duration, type_a_position, additional_positions, length) = ({duration}, {type_a_position}, "
            f"{additional_positions}, {length}): allowed l_d in {min(table)} ... 14, l0 in {{2, 3}}, "
            f"additional positions 0 ... {3 if length == 1 else 1} (3 only with l0 = 2), "
            f"length 1 or 2; l_d = {2 + length} only with l0 = 2 (TS 38.211 Tables 7.4.1.1.2-3/-4)")
    starts = (type_a_position,) + table[duration][additional_positions]
    return tuple(sorted(s + lp for s in starts for lp in range(length)))


def dmrs_port_params(config_type: int, port: int) -> tuple[int, int, tuple[int, int], tuple[int, int]]:
    """CDM group, Delta, w_f(k') and w_t(l') of a port, TS 38.211 Tables 7.4.1.1.2-1/-2.

    Parameters
    ----------
    config_type : int
        1 or 2.
    port : int
        0-based antenna port (0 is port 1000): 0 ... 7 (type 1), 0 ... 11 (type 2).

    Returns
    -------
    (cdm_group, delta, wf, wt)
    """
    groups = 2 if config_type == 1 else 3
    if config_type not in (1, 2) or not 0 <= port < 4 * groups:
        raise InputError(f"(config_type, port) = ({config_type}, {port}): allowed type 1 with ports 0 ... 7, "
                         "type 2 with ports 0 ... 11 (port 0 is antenna port 1000)")
    within = port % (2 * groups)          # ports 0 .. 2*groups-1 use w_t = (+1, +1)
    group = within // 2
    wf = _PLUS if within % 2 == 0 else _MINUS
    wt = _PLUS if port < 2 * groups else _MINUS
    delta = group if config_type == 1 else 2 * group
    return group, delta, wf, wt


def dmrs_subcarriers(config_type: int, cdm_group: int, num_subcarriers: int) -> NDArray[np.int64]:
    """Subcarriers of a CDM group: k = 4n + 2k' + Delta (type 1) or 6n + k' + Delta (type 2).

    Returns
    -------
    ndarray, shape (num_subcarriers / 2 or / 3,), int64, sorted
    """
    _, delta, _, _ = dmrs_port_params(config_type, 2 * cdm_group)
    k = np.arange(num_subcarriers, dtype=np.int64)
    if config_type == 1:
        return k[k % 2 == delta]
    return k[(k % 6 == delta) | (k % 6 == delta + 1)]


def dmrs_c_init(n_id: int, n_scid: int, slot: int, symbol: int, symbols_per_slot: int = 14) -> int:
    """c_init of the DMRS sequence, TS 38.211 §7.4.1.1.1 (Rel-15 form).

    c_init = (2**17 (N_symb^slot n_s,f + l + 1)(2 N_ID + 1) + 2 N_ID + n_SCID) mod 2**31.
    """
    return (2**17 * (symbols_per_slot * slot + symbol + 1) * (2 * n_id + 1) + 2 * n_id + n_scid) % 2**31


class DmrsLayout:
    """Where the DMRS of a frame is and what it carries, for the transmitter and the receiver.

    Attributes
    ----------
    symbols : ndarray, shape (D,), int64
        Frame symbols carrying DMRS.
    groups : tuple of int
        CDM groups in use.
    ports : tuple of int
        0-based antenna ports in frame layer order (grid port j carries ``ports[j]``).
    sequence : ndarray, shape (D, num_subcarriers), complex64
        r(2n + k') at every RE of every CDM group (before cover codes).
    cover : ndarray, shape (num_layers, D, num_subcarriers), float32
        w_f(k') w_t(l') of each layer on its CDM group's REs, 0 elsewhere.
    occasion : ndarray, shape (D,), int64
        Index of the DMRS occasion (single or double symbol pair) of each symbol.
    """

    def __init__(self, frame: FrameConfig):
        dmrs = frame.dmrs
        if dmrs is None:
            raise InputError("frame has no DMRS: add a [frame.dmrs] section")
        self.config: DmrsConfig = dmrs
        per_slot = frame.symbols_per_slot
        in_slot = np.asarray(dmrs_symbols(dmrs.duration_symbols, dmrs.type_a_position,
                                          dmrs.additional_positions, dmrs.length), dtype=np.int64)
        num_slots = -(-frame.total_symbols // per_slot)
        symbols = (np.arange(num_slots)[:, None] * per_slot + in_slot[None, :]).reshape(-1)
        keep = symbols < frame.total_symbols
        self.symbols = symbols[keep]
        self.occasion = (np.arange(symbols.size) // dmrs.length)[keep]
        self.ports = tuple(dmrs.ports)
        params = [dmrs_port_params(dmrs.config_type, p) for p in self.ports]
        self.groups = tuple(sorted({g for g, _, _, _ in params}))
        k_sc = frame.num_subcarriers
        slot_number = (frame.first_slot + self.symbols // per_slot) % (10 * 2**frame.numerology)
        c_init = [dmrs_c_init(dmrs.n_id, dmrs.n_scid, int(n), int(l), per_slot)
                  for n, l in zip(slot_number, self.symbols % per_slot)]
        r = qpsk_reference(c_init, k_sc // 2)                         # r(m), m = 0 ... K/2 - 1
        k = np.arange(k_sc)
        if dmrs.config_type == 1:                                     # k = 4n + 2k' + Delta
            m_index, k_prime = 2 * (k // 4) + (k % 4) // 2, (k % 4) // 2
            group_of_k = k % 2
        else:                                                         # k = 6n + k' + Delta
            m_index, k_prime = 2 * (k // 6) + (k % 2), k % 2
            group_of_k = (k % 6) // 2
        self.sequence = r[:, m_index]
        self.group_of_subcarrier = group_of_k
        self.k_prime = k_prime
        # l' = 1 on the second symbol of a double-symbol DMRS (in_slot is sorted pairs)
        l_prime = np.isin(self.symbols % per_slot, in_slot[1::2]).astype(np.int64) if dmrs.length == 2 \
            else np.zeros_like(self.symbols)
        self.l_prime = l_prime
        cover = np.zeros((len(self.ports), self.symbols.size, k_sc), dtype=np.float32)
        for j, (group, _, wf, wt) in enumerate(params):
            wf_k = np.where(k_prime == 0, wf[0], wf[1]) * (group_of_k == group)
            wt_l = np.where(l_prime == 0, wt[0], wt[1])
            cover[j] = wt_l[:, None] * wf_k[None, :]
        self.cover = cover
        self.re_mask = np.isin(group_of_k, self.groups)               # (K,) REs of used CDM groups


def dmrs_layout(frame: FrameConfig) -> DmrsLayout:
    """The :class:`DmrsLayout` of ``frame``."""
    return DmrsLayout(frame)


def place_dmrs(grid: ResourceGrid, frame: FrameConfig, layout: DmrsLayout | None = None) -> None:
    """Write the frame's DMRS into ``grid`` (layer j on grid port j) and claim its REs.

    REs of every CDM group in use are reserved on all ports (TS 38.214: no
    data in CDM groups with DMRS), so ports of another group see zero there.
    """
    if frame.dmrs is None:
        return
    lay = layout or DmrsLayout(frame)
    sub = np.nonzero(lay.re_mask)[0]
    sym = np.broadcast_to(lay.symbols[:, None], (lay.symbols.size, sub.size))
    grid.claim(Signal.DMRS, sym, np.broadcast_to(sub, sym.shape))
    values = lay.cover * lay.sequence[None, :, :]                     # (layers, D, K)
    grid.values[: len(lay.ports), lay.symbols, :] += values.astype(np.complex64)
