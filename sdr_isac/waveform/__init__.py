"""5G-NR-like OFDM ISAC waveform (TS 38.211): numerology, sequences, modulation,
reference signals, the resource grid, OFDM, the frame builder and the
communication receiver.
"""

from sdr_isac.waveform.frame import IsacFrame
from sdr_isac.waveform.grid import ResourceGrid, Signal
from sdr_isac.waveform.modulation import demodulate_llr, hard_decision, modulate
from sdr_isac.waveform.ofdm import OfdmModulator
from sdr_isac.waveform.sequences import gold_sequence, gold_sequences, low_papr_sequence, qpsk_reference

__all__ = [
    "IsacFrame",
    "OfdmModulator",
    "ResourceGrid",
    "Signal",
    "demodulate_llr",
    "gold_sequence",
    "gold_sequences",
    "hard_decision",
    "low_papr_sequence",
    "modulate",
    "qpsk_reference",
]
