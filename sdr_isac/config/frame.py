"""The ``[frame]`` section: numerology, bandwidth, cyclic prefix and the reference signals (TS 38.211)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sdr_isac.config.base import _MAX_SEED, _check_choice, _check_fields, _check_range, _fail, _num
from sdr_isac.errors import InputError

__all__ = ["MODULATIONS", "SRS_MAX_CYCLIC_SHIFTS", "SSB_CASES", "FR1_MAX_HZ", "ssb_l_max", "PrsConfig", "DmrsConfig",
           "SrsConfig", "TrsConfig", "SsbConfig", "DataConfig", "FrameConfig", "symbols_per_slot"]

#: Modulation schemes of TS 38.211 §5.1 and their bits per symbol.
MODULATIONS: dict[str, int] = {"bpsk": 1, "qpsk": 2, "16qam": 4, "64qam": 6, "256qam": 8}

_PRS_COMBS = (2, 4, 6, 12)
_PRS_LENGTHS = (2, 4, 6, 12)
_SRS_COMBS = (2, 4, 8)
_SRS_PORTS = (1, 2, 4)
_SRS_SYMBOLS = (1, 2, 4, 8, 10, 12, 14)
#: n_SRS^cs,max per comb size, TS 38.211 §6.4.1.4.2.
SRS_MAX_CYCLIC_SHIFTS = {2: 8, 4: 12, 8: 6}
_MAX_NUM_RB = 275
#: SS/PBCH block cases of TS 38.213 §4.1: numerology mu and the allowed L_max of each.
SSB_CASES: dict[str, tuple[int, tuple[int, ...]]] = {
    "A": (0, (4, 8)), "B": (1, (4, 8)), "C": (1, (4, 8)), "D": (3, (64,)), "E": (4, (64,))}
#: upper edge of frequency range 1, Hz (TS 38.104 §5.1: 410 MHz ... 7.125 GHz): SS/PBCH cases A, B and C are
#: FR1 cases, D and E FR2 cases (TS 38.213 §4.1)
FR1_MAX_HZ = 7.125e9


def ssb_l_max(case: str, carrier_hz: float, paired: bool = True) -> int:
    """L_max of a case at a carrier frequency, TS 38.213 §4.1 (no shared spectrum).

    Cases A and B and case C on paired spectrum: 4 up to 3 GHz, else 8; case C on unpaired spectrum: 4 up to
    1.88 GHz, else 8; cases D and E: 64.
    """
    if case not in SSB_CASES:
        raise InputError(f"case = {case!r}: allowed 'A', 'B', 'C', 'D' or 'E' (TS 38.213 §4.1)")
    if not (isinstance(carrier_hz, int | float) and math.isfinite(carrier_hz) and carrier_hz > 0):
        raise InputError(f"carrier_hz = {carrier_hz!r} Hz: allowed a finite frequency > 0")
    if case in ("D", "E"):
        return 64
    limit = 1.88e9 if case == "C" and not paired else 3e9
    return 4 if carrier_hz <= limit else 8
#: Subcarriers of an SS/PBCH block (20 RB, TS 38.211 §7.4.3.1).
_SSB_SUBCARRIERS = 240


def symbols_per_slot(cyclic_prefix: str) -> int:
    """OFDM symbols per slot: 14 for normal CP, 12 for extended CP (TS 38.211 §4.3.2)."""
    return 12 if cyclic_prefix == "extended" else 14


@dataclass(frozen=True)
class PrsConfig:
    """Downlink positioning reference signal, TS 38.211 §7.4.1.7.

    Parameters
    ----------
    comb_size : int
        K_comb^PRS, 2, 4, 6 or 12.
    num_symbols : int
        L_PRS, 2, 4, 6 or 12 consecutive symbols, ``num_symbols >= comb_size``.
    start_symbol : int
        l_start^PRS, first PRS symbol within the slot, 0 ... 13.
    re_offset : int
        k_offset^PRS, resource-element offset, 0 ... comb_size - 1.
    n_id : int
        n_ID,seq^PRS, sequence identity, 0 ... 4095.
    period_slots, slot_offset, repetition_factor, time_gap_slots : int
        T_per^PRS, T_offset^PRS, T_rep^PRS and T_gap^PRS of §7.4.1.7.4, in slots.
        The defaults put PRS in every slot, which suits sensing frames; the
        standard's periods are 4 ... 10240 slots times 2**mu.  Allowed:
        period_slots 1 ... 163840 (10240 * 2**4), slot_offset 0 ...
        period_slots - 1, repetition_factor 1, 2, 4, 6, 8, 16 or 32,
        time_gap_slots 1, 2, 4, 8, 16 or 32.
    """

    comb_size: int = _num(4, 2, 12)
    num_symbols: int = _num(4, 2, 12, "symbols")
    start_symbol: int = _num(3, 0, 13)
    re_offset: int = _num(0, 0, 11)
    n_id: int = _num(0, 0, 4095)
    period_slots: int = _num(1, 1, 10240 * 16, "slots")
    slot_offset: int = _num(0, 0, 10240 * 16 - 1, "slots")
    repetition_factor: int = _num(1, 1, 32)
    time_gap_slots: int = _num(1, 1, 32, "slots")

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_choice("comb_size", self.comb_size, _PRS_COMBS, "TS 38.211 §7.4.1.7.3")
        _check_choice("num_symbols", self.num_symbols, _PRS_LENGTHS, "L_PRS, TS 38.211 §7.4.1.7.3")
        if self.num_symbols < self.comb_size or self.num_symbols % self.comb_size:
            allowed = ", ".join(str(n) for n in _PRS_LENGTHS if n >= self.comb_size and n % self.comb_size == 0)
            _fail("num_symbols", self.num_symbols,
                  f"{allowed} with comb_size = {self.comb_size} (L_PRS a multiple of K_comb, TS 38.211 §7.4.1.7.3)",
                  "change num_symbols or comb_size")
        _check_range("re_offset", self.re_offset, 0, self.comb_size - 1)
        _check_range("slot_offset", self.slot_offset, 0, self.period_slots - 1, "slots")
        _check_choice("repetition_factor", self.repetition_factor, (1, 2, 4, 6, 8, 16, 32))
        _check_choice("time_gap_slots", self.time_gap_slots, (1, 2, 4, 8, 16, 32))
        if self.repetition_factor * self.time_gap_slots > self.period_slots and self.repetition_factor > 1:
            _fail("repetition_factor", self.repetition_factor,
                  f"repetition_factor * time_gap_slots <= period_slots = {self.period_slots}",
                  "lower the repetition or raise period_slots")


@dataclass(frozen=True)
class DmrsConfig:
    """PDSCH demodulation reference signal, mapping type A, TS 38.211 §7.4.1.1.

    Parameters
    ----------
    config_type : int
        1 (comb-2, 2 CDM groups) or 2 (2 adjacent REs x 2 per RB, 3 CDM groups).
    length : int
        1 (single-symbol) or 2 (double-symbol) DMRS.
    additional_positions : int
        dmrs-AdditionalPosition, 0 ... 3 (0 ... 1 for double-symbol).
    type_a_position : int
        dmrs-TypeA-Position l_0, 2 or 3.
    duration_symbols : int
        PDSCH duration l_d in symbols (Table 7.4.1.1.2-3), 3 ... 14.
    ports : tuple of int
        0-based antenna ports (0 is port 1000); 0 ... 3 (type 1) or 0 ... 5
        (type 2) for single-symbol, twice that for double-symbol.
    n_id : int
        N_ID^{n_SCID}, scrambling identity 0 ... 65535.
    n_scid : int
        n_SCID, 0 or 1.
    """

    config_type: int = _num(1, 1, 2)
    length: int = _num(1, 1, 2, "symbols")
    additional_positions: int = _num(1, 0, 3)
    type_a_position: int = _num(2, 2, 3)
    duration_symbols: int = _num(14, 3, 14, "symbols")
    ports: tuple[int, ...] = _num((0,), 0, 11)
    n_id: int = _num(0, 0, 65535)
    n_scid: int = _num(0, 0, 1)

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_choice("config_type", self.config_type, (1, 2), "DMRS configuration type")
        _check_choice("length", self.length, (1, 2), "single- or double-symbol DMRS")
        _check_choice("type_a_position", self.type_a_position, (2, 3), "dmrs-TypeA-Position")
        max_add = 3 if self.length == 1 else 1
        _check_range("additional_positions", self.additional_positions, 0, max_add)
        if self.additional_positions == 3 and self.type_a_position != 2:
            _fail("additional_positions", 3, "3 only with type_a_position = 2 (TS 38.211 §7.4.1.1.2)",
                  "set type_a_position = 2 or fewer additional positions")
        _check_range("duration_symbols", self.duration_symbols, 3 if self.length == 1 else 4, 14, "symbols")
        if self.duration_symbols == 2 + self.length and self.type_a_position != 2:
            _fail("duration_symbols", self.duration_symbols,
                  f"{self.duration_symbols} symbols only with type_a_position = 2 (TS 38.211 §7.4.1.1.2)",
                  "set type_a_position = 2 or a longer duration")
        groups = 2 if self.config_type == 1 else 3
        max_port = 2 * groups * self.length - 1
        if not self.ports:
            _fail("ports", self.ports, "at least one port", "list the DMRS ports, e.g. ports = [0]")
        for p in self.ports:
            _check_range("ports", p, 0, max_port)
        if len(set(self.ports)) != len(self.ports):
            _fail("ports", self.ports, "distinct ports", "remove the repeated port")
        _check_choice("n_scid", self.n_scid, (0, 1))


@dataclass(frozen=True)
class SrsConfig:
    """Sounding reference signal, TS 38.211 §6.4.1.4.

    Parameters
    ----------
    comb_size : int
        K_TC, 2, 4 or 8.
    comb_offset : int
        k̄_TC, 0 ... comb_size - 1.
    num_ports : int
        N_ap^SRS, 1, 2 or 4.
    num_symbols : int
        N_symb^SRS, 1, 2, 4, 8, 10, 12 or 14.
    start_symbol : int
        l_0, first SRS symbol within the slot, 0 ... 13.
    cyclic_shift : int
        n_SRS^cs, 0 ... n_SRS^cs,max - 1 (8, 12, 6 for comb 2, 4, 8).
    sequence_id : int
        n_ID^SRS, 0 ... 1023; group u = n_ID mod 30 (no hopping).
    num_rb : int or None
        m_SRS, bandwidth in RBs, a multiple of 4, 4 ... 272; None takes the
        largest multiple of 4 that fits the carrier from ``start_rb``.
    start_rb : int
        First RB of the SRS, 0 ... 274.
    """

    comb_size: int = _num(4, 2, 8)
    comb_offset: int = _num(0, 0, 7)
    num_ports: int = _num(1, 1, 4, "ports")
    num_symbols: int = _num(1, 1, 14, "symbols")
    start_symbol: int = _num(13, 0, 13)
    cyclic_shift: int = _num(0, 0, 11)
    sequence_id: int = _num(0, 0, 1023)
    num_rb: int | None = _num(None, 4, 272, "RB")
    start_rb: int = _num(0, 0, _MAX_NUM_RB - 1, "RB")

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_choice("comb_size", self.comb_size, _SRS_COMBS, "K_TC, TS 38.211 §6.4.1.4.3")
        _check_range("comb_offset", self.comb_offset, 0, self.comb_size - 1)
        _check_choice("num_ports", self.num_ports, _SRS_PORTS)
        if self.comb_size == 8 and self.num_ports == 4:
            _fail("num_ports", 4, "1 or 2 with comb_size = 8 (n_cs,max = 6 cyclic shifts do not split "
                  "evenly over 4 ports, TS 38.211 §6.4.1.4.2)", "use comb_size 2 or 4, or fewer ports")
        _check_choice("num_symbols", self.num_symbols, _SRS_SYMBOLS)
        _check_range("cyclic_shift", self.cyclic_shift, 0, SRS_MAX_CYCLIC_SHIFTS[self.comb_size] - 1)
        if self.num_rb is not None and self.num_rb % 4:
            _fail("num_rb", self.num_rb, "a multiple of 4 RBs (m_SRS, TS 38.211 Table 6.4.1.4.3-1)",
                  "round num_rb to a multiple of 4")


@dataclass(frozen=True)
class TrsConfig:
    """CSI-RS for tracking (TRS), TS 38.211 §7.4.1.5: one port, density 3.

    Parameters
    ----------
    symbols : tuple of int
        Symbols within the slot carrying TRS; two symbols four apart
        ((4, 8), (5, 9) or (6, 10)) as in TS 38.214 §5.1.6.1.1.
    subcarrier_offset : int
        k_0 of Table 7.4.1.5.3-1 row 1, 0 ... 3; REs k = 4 j + k_0.
    n_id : int
        Scrambling identity, 0 ... 1023.
    """

    symbols: tuple[int, ...] = _num((4, 8), 0, 13)
    subcarrier_offset: int = _num(0, 0, 3)
    n_id: int = _num(0, 0, 1023)

    def __post_init__(self) -> None:
        _check_fields(self)
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            _fail("symbols", self.symbols, "one or more distinct symbol indices", "list e.g. symbols = [4, 8]")


@dataclass(frozen=True)
class SsbConfig:
    """SS/PBCH block bursts of a gNB, TS 38.211 §7.4.2, §7.4.3 and TS 38.213 §4.1.

    The frame's first symbol is the first symbol of slot ``first_slot`` of a
    radio frame with SFN 0; half frame h (5 ms each, counted from there)
    carries a burst when ``5 h`` is a multiple of ``period_ms``, its blocks
    at the first symbols of ``case`` (TS 38.213 §4.1).  A block that does
    not fit wholly inside the frame is left out.  Other reference signals are
    not transmitted on the block's REs (the SSB punctures them, as PDSCH is
    rate-matched around it).

    Parameters
    ----------
    case : str
        ``A`` (15 kHz), ``B`` or ``C`` (30 kHz), ``D`` (120 kHz) or ``E``
        (240 kHz); the frame's numerology must be the case's, and its
        ``carrier_hz`` in the case's range (A, B, C up to 7.125 GHz, FR1; D, E
        above).
    n_cell_id : int
        N_ID^cell = 3 N_ID^(1) + N_ID^(2), 0 ... 1007.
    l_max : int
        Candidate blocks per half frame, as TS 38.213 §4.1 gives it for the
        frame's ``carrier_hz``: cases A, B, C 4 up to 3 GHz and 8 above
        (case C on unpaired spectrum: 4 up to 1.88 GHz; between 1.88 and
        3 GHz both are accepted), D and E 64 (:func:`ssb_l_max`).
    positions : tuple of int
        Candidate indices (0 ... l_max - 1) actually transmitted
        (ssb-PositionsInBurst); empty (default) transmits all of them.
    subcarrier_offset : int or None
        Carrier subcarrier of the block's subcarrier 0, 0 ... num_subcarriers
        - 240; None centres the block on the carrier.
    period_ms : int
        Burst periodicity, 5, 10, 20, 40, 80 or 160 ms (TS 38.213 §4.1).
    payload_seed : int
        Seed of the random QPSK standing in for the coded PBCH payload (a
        passive receiver does not know it), 0 ... 2**63 - 1.
    """

    case: str = "C"
    n_cell_id: int = _num(0, 0, 1007)
    l_max: int = _num(8, 4, 64)
    positions: tuple[int, ...] = _num((), 0, 63)
    subcarrier_offset: int | None = _num(None, 0, 12 * _MAX_NUM_RB - _SSB_SUBCARRIERS)
    period_ms: int = _num(20, 5, 160, "ms")
    payload_seed: int = _num(0, 0, _MAX_SEED)

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_choice("case", self.case, tuple(SSB_CASES), "SS/PBCH block case, TS 38.213 §4.1")
        _check_choice("l_max", self.l_max, SSB_CASES[self.case][1], f"L_max of case {self.case}, TS 38.213 §4.1")
        for i, p in enumerate(self.positions):
            _check_range(f"positions[{i}]", p, 0, self.l_max - 1)
        if len(set(self.positions)) != len(self.positions):
            _fail("positions", self.positions, "distinct candidate indices", "remove the repeated index")
        _check_choice("period_ms", self.period_ms, (5, 10, 20, 40, 80, 160), "ms, TS 38.213 §4.1")

    @property
    def numerology(self) -> int:
        """mu of the case: 0 (A), 1 (B, C), 3 (D), 4 (E)."""
        return SSB_CASES[self.case][0]

    @property
    def transmitted(self) -> tuple[int, ...]:
        """Candidate indices transmitted in each burst, increasing."""
        return tuple(sorted(self.positions)) if self.positions else tuple(range(self.l_max))


@dataclass(frozen=True)
class DataConfig:
    """Data resource elements: every RE that no reference signal owns.

    Parameters
    ----------
    modulation : str
        ``bpsk``, ``qpsk``, ``16qam``, ``64qam`` or ``256qam`` (TS 38.211 §5.1).
    seed : int
        Seed of the random payload bits, 0 ... 2**63 - 1 (a 64-bit integer,
        as numpy and JSON readers carry it).
    enabled : bool
        False leaves the free REs empty (zero).
    """

    modulation: str = "qpsk"
    seed: int = _num(0, 0, _MAX_SEED)
    enabled: bool = True

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_choice("modulation", self.modulation, tuple(MODULATIONS))

    @property
    def bits_per_symbol(self) -> int:
        """Bits carried by one data RE."""
        return MODULATIONS[self.modulation]


@dataclass(frozen=True)
class FrameConfig:
    """An ISAC OFDM frame: numerology, bandwidth, cyclic prefix, signals.

    Parameters
    ----------
    numerology : int
        mu, 0 ... 4; subcarrier spacing 15 kHz * 2**mu (TS 38.211 §4.2).
    num_rb : int
        Resource blocks, 1 ... 275, 12 subcarriers each.
    fft_size : int
        N_FFT >= 12 * num_rb, at most 65536; 0 (the default) takes the
        smallest power of two that fits (at least 128).
        The sample rate is N_FFT * subcarrier spacing.
    carrier_hz : float
        Carrier (centre) frequency in Hz, 1 MHz ... 300 GHz.
    cyclic_prefix : str
        ``normal`` (TS 38.211 §5.3.1, longer first symbol of each half
        subframe), ``extended`` (mu = 2 only) or ``explicit``.  Empty means
        ``explicit`` when ``cp_samples`` or ``cp_duration_s`` is set, else
        ``normal``.
    cp_samples : int or tuple of int or None
        Explicit CP length in samples: one value for every symbol, or one per
        symbol of the frame, or one per symbol of a slot (repeated); each
        0 ... 65536 and shorter than ``fft_size``.
    cp_duration_s : float or tuple of float or None
        Explicit CP length in seconds (rounded to whole samples), same forms;
        each 0 ... 1 s and shorter than the useful symbol.
    num_slots, num_symbols : int or None
        Frame length, 1 ... 10000 slots or 1 ... 140000 symbols; give at most
        one.  Neither means one slot.
    first_slot : int
        n_s,f of the first slot (sets sequence initialisation and the long
        CP positions), 0 ... 10 * 2**mu - 1.
    subcarriers : int
        Research / foreign waveforms: an explicit number of occupied
        subcarriers (even, <= fft_size) instead of 12 * num_rb; 0 (default)
        keeps 12 * num_rb.  Such a frame carries data only (no reference signals).
    spacing_hz : float
        Research / foreign waveforms: an explicit subcarrier spacing in Hz
        (100 Hz ... 10 MHz) instead of 15 kHz * 2**mu; needs an explicit CP.
        0 (default) keeps the numerology's spacing.
    prs, dmrs, srs, trs : section or None
        The reference signals; None leaves a signal out.
    ssb : SsbConfig or None
        SS/PBCH block bursts (PSS, SSS, PBCH and its DMRS); None leaves them out.
    data : DataConfig
        Payload on the remaining REs.
    """

    numerology: int = _num(1, 0, 4)
    num_rb: int = _num(51, 1, _MAX_NUM_RB, "RB")
    fft_size: int = _num(0, 2, 65536, or_zero=True)
    carrier_hz: float = _num(3.5e9, 1e6, 300e9, "Hz")
    cyclic_prefix: str = ""
    cp_samples: int | tuple[int, ...] | None = _num(None, 0, 65536, "samples")
    cp_duration_s: float | tuple[float, ...] | None = _num(None, 0.0, 1.0, "s")
    num_slots: int | None = _num(None, 1, 10_000, "slots")
    num_symbols: int | None = _num(None, 1, 140_000, "symbols")
    first_slot: int = _num(0, 0, 159)
    subcarriers: int = _num(0, 2, 65536, or_zero=True)
    spacing_hz: float = _num(0.0, 100.0, 10e6, "Hz", or_zero=True)
    prs: PrsConfig | None = None
    dmrs: DmrsConfig | None = None
    srs: SrsConfig | None = None
    trs: TrsConfig | None = None
    ssb: SsbConfig | None = None
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        _check_fields(self)
        if self.subcarriers % 2:
            _fail("subcarriers", self.subcarriers, "0 (12 * num_rb) or an even count 2 ... 65536",
                  "give an even number of occupied subcarriers")
        occupied = self.num_subcarriers
        if self.fft_size == 0:
            object.__setattr__(self, "fft_size", 1 << max(7, math.ceil(math.log2(occupied))))
        elif self.fft_size < occupied:
            _fail("fft_size", self.fft_size, f">= {occupied} (the occupied subcarriers)",
                  "raise fft_size or lower num_rb")
        self._resolve_cyclic_prefix()
        if self.num_slots is not None and self.num_symbols is not None:
            _fail("num_symbols", self.num_symbols, "either num_slots or num_symbols, not both",
                  "remove one of them")
        _check_range("first_slot", self.first_slot, 0, 10 * 2**self.numerology - 1)
        self._check_cp_lengths()
        self._check_signal_symbols()

    def _resolve_cyclic_prefix(self) -> None:
        explicit = self.cp_samples is not None or self.cp_duration_s is not None
        kind = self.cyclic_prefix or ("explicit" if explicit else "normal")
        _check_choice("cyclic_prefix", kind, ("normal", "extended", "explicit"))
        if kind == "extended" and self.numerology != 2:
            _fail("cyclic_prefix", kind, "extended CP only with numerology = 2 (60 kHz, TS 38.211 §4.2)",
                  "use cyclic_prefix = 'normal' or numerology = 2")
        if kind == "explicit" and (self.cp_samples is None) == (self.cp_duration_s is None):
            _fail("cp_samples", self.cp_samples,
                  "with cyclic_prefix = 'explicit', exactly one of cp_samples or cp_duration_s",
                  "give the CP length in samples or in seconds, not both")
        if kind != "explicit" and explicit:
            _fail("cyclic_prefix", kind, "'explicit' when cp_samples or cp_duration_s is set",
                  "remove cyclic_prefix or the explicit CP length")
        object.__setattr__(self, "cyclic_prefix", kind)

    def _check_cp_lengths(self) -> None:
        explicit = self.cp_samples if self.cp_samples is not None else self.cp_duration_s
        if explicit is None:
            if self.cyclic_prefix == "normal" and self.fft_size % 128:
                _fail("fft_size", self.fft_size,
                      "a multiple of 128 with the normal CP (144 * N_FFT / 2048 samples must be whole)",
                      "use fft_size = k * 128 or an explicit CP")
            if self.cyclic_prefix == "extended" and self.fft_size % 4:
                _fail("fft_size", self.fft_size, "a multiple of 4 with the extended CP",
                      "use fft_size = k * 4")
            return
        key = "cp_samples" if self.cp_samples is not None else "cp_duration_s"
        values = explicit if isinstance(explicit, tuple) else (explicit,)
        n_sym, per_slot = self.total_symbols, symbols_per_slot(self.cyclic_prefix)
        if len(values) not in (1, n_sym, per_slot):
            counts = f"1 value, {per_slot} (one slot) or {n_sym} (every symbol)" if n_sym != per_slot else \
                f"1 value or {per_slot} (every symbol of the one slot)"
            _fail(key, explicit, f"{counts} values", "give one CP per symbol or a single CP")
        samples = self.explicit_cp_samples()
        useful_s = self.fft_size / self.sample_rate_hz
        for i, (v, n) in enumerate(zip(values, samples)):
            if n < 0 or n >= self.fft_size:
                name = f"{key}[{i}]" if isinstance(explicit, tuple) else key
                limit = f"{self.fft_size - 1} samples" if key == "cp_samples" else \
                    f"{(self.fft_size - 1) / self.sample_rate_hz:.6g} s ({self.fft_size - 1} samples)"
                _fail(name, v, f"0 ... {limit}, shorter than the useful symbol ({useful_s * 1e6:.4g} us, "
                      f"{self.fft_size} samples at {self.sample_rate_hz / 1e6:g} Msps)", "shorten the cyclic prefix")

    def _check_signal_symbols(self) -> None:
        if self.spacing_hz and self.cyclic_prefix != "explicit":
            _fail("spacing_hz", self.spacing_hz, "an explicit CP (cp_samples or cp_duration_s) with an explicit "
                  "spacing: the 3GPP CP patterns belong to the numerologies", "give cp_samples or cp_duration_s")
        if self.subcarriers and any(x is not None for x in (self.prs, self.dmrs, self.srs, self.trs, self.ssb)):
            _fail("subcarriers", self.subcarriers, "0 (12 * num_rb) when the frame has reference signals "
                  "(their patterns follow the 3GPP resource blocks)", "set num_rb instead, or use data only")
        per_slot = symbols_per_slot(self.cyclic_prefix)
        if self.prs is not None and self.prs.start_symbol + self.prs.num_symbols > per_slot:
            _fail("prs.start_symbol", self.prs.start_symbol,
                  f"start_symbol + num_symbols <= {per_slot} symbols per slot",
                  f"start PRS at symbol <= {per_slot - self.prs.num_symbols}")
        if self.srs is not None:
            if self.srs.start_symbol + self.srs.num_symbols > per_slot:
                _fail("srs.start_symbol", self.srs.start_symbol,
                      f"start_symbol + num_symbols <= {per_slot} symbols per slot",
                      f"start SRS at symbol <= {per_slot - self.srs.num_symbols}")
            num_rb = self.srs_num_rb
            if num_rb < 4 or self.srs.start_rb + num_rb > self.num_rb:
                _fail("srs.num_rb", self.srs.num_rb,
                      f"a multiple of 4 RBs with start_rb + num_rb <= carrier num_rb = {self.num_rb}",
                      "lower srs.num_rb or srs.start_rb")
            if 12 * num_rb // self.srs.comb_size < 36:
                _fail("srs.num_rb", num_rb,
                      f"12 * num_rb / comb_size >= 36 (Zadoff-Chu sequences of length >= 36; "
                      f"comb_size = {self.srs.comb_size})", "use more RBs or a smaller comb")
        if self.dmrs is not None and self.dmrs.duration_symbols > per_slot:
            _fail("dmrs.duration_symbols", self.dmrs.duration_symbols, f"<= {per_slot}", "shorten it")
        if self.trs is not None and max(self.trs.symbols) >= per_slot:
            _fail("trs.symbols", self.trs.symbols, f"0 ... {per_slot - 1}", "move the TRS symbols")
        if self.ssb is not None:
            self._check_ssb(self.ssb)

    def _check_ssb(self, ssb: SsbConfig) -> None:
        if self.spacing_hz:
            _fail("spacing_hz", self.spacing_hz, f"unset with an SS/PBCH block (its case {ssb.case} has "
                  f"{15 * 2**ssb.numerology} kHz, a numerology of TS 38.211, not an explicit spacing)",
                  "remove spacing_hz (and the explicit cyclic prefix) and set numerology, or remove [frame.ssb]")
        if self.numerology != ssb.numerology:
            _fail("ssb.case", ssb.case, f"a case of the frame's numerology {self.numerology} (case {ssb.case} is "
                  f"mu = {ssb.numerology}, {15 * 2**ssb.numerology} kHz; TS 38.213 §4.1)",
                  f"set numerology = {ssb.numerology} or choose the case of mu = {self.numerology}")
        fr2 = ssb.case in ("D", "E")
        if fr2 != (self.carrier_hz > FR1_MAX_HZ):
            _fail("ssb.case", ssb.case, f"case {ssb.case} in {'FR2, above' if fr2 else 'FR1, up to'} "
                  f"{FR1_MAX_HZ / 1e9:g} GHz (carrier_hz = {self.carrier_hz:g} Hz; TS 38.213 §4.1: A, B, C in FR1, "
                  "D, E in FR2)", "choose a case of the carrier's frequency range, or move carrier_hz")
        # L_max follows the carrier (TS 38.213 §4.1); between 1.88 and 3 GHz case C's depends on paired or
        # unpaired spectrum, which the frame does not say: both are allowed there
        allowed = sorted({ssb_l_max(ssb.case, self.carrier_hz, paired) for paired in (True, False)})
        if ssb.l_max not in allowed:
            _fail("ssb.l_max", ssb.l_max, f"{' or '.join(str(a) for a in allowed)} for case {ssb.case} at carrier_hz "
                  f"= {self.carrier_hz:g} Hz (TS 38.213 §4.1: 4 up to 3 GHz, 8 above; case C unpaired: 4 up to "
                  "1.88 GHz; D, E: 64)", f"set ssb.l_max = {allowed[-1]}")
        if self.cyclic_prefix == "extended":
            _fail("cyclic_prefix", self.cyclic_prefix, "normal or explicit with an SS/PBCH block (the burst "
                  "patterns of TS 38.213 §4.1 count 14 symbols per slot)", "use the normal CP")
        room = self.num_subcarriers - _SSB_SUBCARRIERS
        if room < 0:
            _fail("num_rb", self.num_rb, f">= 20 RB with an SS/PBCH block ({_SSB_SUBCARRIERS} subcarriers)",
                  "raise num_rb or remove [frame.ssb]")
        if ssb.subcarrier_offset is not None and ssb.subcarrier_offset > room:
            _fail("ssb.subcarrier_offset", ssb.subcarrier_offset,
                  f"0 ... {room} (the block's {_SSB_SUBCARRIERS} subcarriers inside the carrier's "
                  f"{self.num_subcarriers})", "lower it or leave it out to centre the block")

    # ---- derived quantities -------------------------------------------------
    @property
    def subcarrier_spacing_hz(self) -> float:
        """Delta f = 15 kHz * 2**mu (TS 38.211 §4.2), or the explicit ``spacing_hz``."""
        return self.spacing_hz or 15e3 * 2**self.numerology

    @property
    def num_subcarriers(self) -> int:
        """Occupied subcarriers: 12 * num_rb, or the explicit ``subcarriers``."""
        return self.subcarriers or 12 * self.num_rb

    @property
    def sample_rate_hz(self) -> float:
        """f_s = N_FFT * Delta f."""
        return float(self.fft_size) * self.subcarrier_spacing_hz

    @property
    def symbols_per_slot(self) -> int:
        """14 (normal or explicit CP) or 12 (extended CP)."""
        return symbols_per_slot(self.cyclic_prefix)

    @property
    def total_symbols(self) -> int:
        """OFDM symbols in the frame."""
        if self.num_symbols is not None:
            return self.num_symbols
        return (self.num_slots or 1) * self.symbols_per_slot

    @property
    def srs_num_rb(self) -> int:
        """SRS bandwidth in RBs (0 without SRS)."""
        if self.srs is None:
            return 0
        if self.srs.num_rb is not None:
            return self.srs.num_rb
        return (self.num_rb - self.srs.start_rb) // 4 * 4

    def explicit_cp_samples(self) -> tuple[int, ...]:
        """The explicit CP in whole samples, as given (1, per-slot or per-symbol values)."""
        if self.cp_samples is not None:
            vals = self.cp_samples if isinstance(self.cp_samples, tuple) else (self.cp_samples,)
            return tuple(int(v) for v in vals)
        if self.cp_duration_s is not None:
            vals_s = self.cp_duration_s if isinstance(self.cp_duration_s, tuple) else (self.cp_duration_s,)
            return tuple(int(round(v * self.sample_rate_hz)) for v in vals_s)
        return ()
