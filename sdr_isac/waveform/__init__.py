"""5G-NR-like OFDM ISAC waveform (TS 38.211): numerology, sequences, modulation,
reference signals, the SS/PBCH block and cell search, the resource grid, OFDM, the frame builder and the
communication receiver.
"""

from sdr_isac.waveform.frame import IsacFrame
from sdr_isac.waveform.grid import ResourceGrid, Signal
from sdr_isac.waveform.modulation import demodulate_llr, hard_decision, modulate
from sdr_isac.waveform.ofdm import OfdmModulator
from sdr_isac.waveform.sequences import gold_sequence, gold_sequences, low_papr_sequence, qpsk_reference
from sdr_isac.waveform.ssb import CellSearchResult, cell_search, pbch_dmrs, pss, ssb_blocks, ssb_first_symbols, sss

__all__ = [
    "CellSearchResult",
    "IsacFrame",
    "OfdmModulator",
    "ResourceGrid",
    "Signal",
    "cell_search",
    "demodulate_llr",
    "gold_sequence",
    "gold_sequences",
    "hard_decision",
    "low_papr_sequence",
    "modulate",
    "pbch_dmrs",
    "pss",
    "qpsk_reference",
    "ssb_blocks",
    "ssb_first_symbols",
    "sss",
]
