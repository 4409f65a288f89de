"""The ISAC frame: numerology, reference signals, data, and its time samples.

Example
-------
>>> from sdr_isac import config
>>> from sdr_isac.waveform import IsacFrame
>>> frame = IsacFrame(config.default().frame)
>>> frame.samples().shape
(1, 30720)
>>> frame.re_counts()["prs"] == 2 * 4 * 612 // 4   # 2 slots x L_PRS 4 x K / K_comb
True
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.config import FrameConfig
from sdr_isac.errors import InputError
from sdr_isac.units import SPEED_OF_LIGHT_MPS
from sdr_isac.waveform.csirs import place_trs
from sdr_isac.waveform.dmrs import DmrsLayout, place_dmrs
from sdr_isac.waveform.grid import ResourceGrid, Signal
from sdr_isac.waveform.modulation import modulate
from sdr_isac.waveform.numerology import frame_cp_lengths
from sdr_isac.waveform.ofdm import OfdmModulator
from sdr_isac.waveform.prs import place_prs
from sdr_isac.waveform.srs import place_srs
from sdr_isac.waveform.ssb import place_ssb

__all__ = ["IsacFrame"]


class IsacFrame:
    """A built frame: resource grid, ownership map, known symbols and time samples.

    Parameters
    ----------
    config : FrameConfig
        What to build.
    data_bits : array_like of 0/1, optional
        Payload, shape (num_layers, bits_per_layer) or flat of the same size
        (layer after layer).  When omitted, random bits from ``config.data.seed``.

    Attributes
    ----------
    config : FrameConfig
    grid : ResourceGrid
        Values (num_ports, num_symbols, num_subcarriers) and owners.
    cp_lengths : ndarray, shape (num_symbols,), int64
        CP of every symbol in samples.
    ofdm : OfdmModulator
        The (de)modulator for this layout.
    dmrs : DmrsLayout or None
        DMRS positions, sequences and cover codes, when the frame has DMRS.
    data_bits : ndarray, shape (num_layers, bits_per_layer), uint8
    data_symbols : ndarray, shape (num_layers, num_data_re), complex64
        QAM symbols, in the order of ``np.nonzero(grid.mask(Signal.DATA))``.

    Raises
    ------
    ConfigError
        Two signals claim the same RE (for example DMRS on a PRS symbol).
    InputError
        ``data_bits`` of the wrong size.
    """

    def __init__(self, config: FrameConfig, data_bits: ArrayLike | None = None):
        if not isinstance(config, FrameConfig):
            raise InputError(f"config is a {type(config).__name__}: allowed a FrameConfig; build one with "
                             "sdr_isac.config.FrameConfig(...) or config.load(path).frame")
        self.config = config
        self.cp_lengths = frame_cp_lengths(config)
        self.ofdm = OfdmModulator(config.num_subcarriers, config.fft_size, self.cp_lengths)
        self.num_layers = len(config.dmrs.ports) if config.dmrs is not None else 1
        num_ports = max(self.num_layers, config.srs.num_ports if config.srs is not None else 1)
        grid = ResourceGrid.empty(num_ports, config.total_symbols, config.num_subcarriers)
        place_prs(grid, config)
        place_trs(grid, config)
        self.dmrs = DmrsLayout(config) if config.dmrs is not None else None
        if self.dmrs is not None:
            place_dmrs(grid, config, self.dmrs)
        place_srs(grid, config)
        place_ssb(grid, config)             # last: the SS/PBCH block punctures the other signals
        self.grid = grid
        self._place_data(data_bits)

    def _place_data(self, data_bits: ArrayLike | None) -> None:
        grid, data = self.grid, self.config.data
        q = data.bits_per_symbol
        if not data.enabled:
            self.data_bits = np.zeros((self.num_layers, 0), dtype=np.uint8)
            self.data_symbols = np.zeros((self.num_layers, 0), dtype=np.complex64)
            return
        free = grid.owner == Signal.EMPTY
        grid.owner[free] = Signal.DATA
        num_re = int(np.count_nonzero(free))
        n_bits = num_re * q
        if data_bits is None:
            rng = np.random.default_rng(data.seed)          # random bytes, unpacked: 8 bits per draw
            raw = rng.integers(0, 256, size=(self.num_layers, -(-n_bits // 8)), dtype=np.uint8)
            bits = np.unpackbits(raw, axis=1, count=n_bits)
        else:
            bits = np.asarray(data_bits)
            if bits.size != self.num_layers * n_bits:
                raise InputError(f"data_bits has {bits.size} bits: this frame carries {self.num_layers} layer(s) x "
                                 f"{num_re} data REs x {q} bits ({data.modulation}) = {self.num_layers * n_bits}; "
                                 "pass exactly that many")
            bits = bits.reshape(self.num_layers, n_bits).astype(np.uint8)
        self.data_bits = bits
        self.data_symbols = modulate(bits.reshape(-1), data.modulation).reshape(self.num_layers, -1)
        for layer in range(self.num_layers):            # boolean-mask writes, row-major RE order
            grid.values[layer][free] = self.data_symbols[layer]

    # ---- shapes and times ---------------------------------------------------
    @property
    def num_ports(self) -> int:
        """Transmit ports (rows of :meth:`samples`)."""
        return self.grid.num_ports

    @property
    def num_symbols(self) -> int:
        """OFDM symbols."""
        return self.grid.num_symbols

    @property
    def num_samples(self) -> int:
        """Samples per port of the whole frame."""
        return self.ofdm.num_samples

    @property
    def sample_rate_hz(self) -> float:
        """N_FFT * Delta f."""
        return self.config.sample_rate_hz

    @property
    def duration_s(self) -> float:
        """Air time of the frame."""
        return self.num_samples / self.sample_rate_hz

    @property
    def symbol_starts(self) -> NDArray[np.int64]:
        """First sample (start of the CP) of every symbol, shape (num_symbols,)."""
        return self.ofdm.symbol_starts

    # ---- what sensing needs ---------------------------------------------------
    @cached_property
    def _samples(self) -> NDArray[np.complex64]:
        out = self.ofdm.modulate(self.grid.values)
        out.setflags(write=False)
        return out

    def samples(self) -> NDArray[np.complex64]:
        """The frame in time, shape (num_ports, num_samples), complex64 (read-only, cached)."""
        return self._samples

    def known_mask(self, *signals: Signal | str) -> NDArray[np.bool_]:
        """REs whose transmitted value a receiver knows.

        Parameters
        ----------
        *signals : Signal or str
            Signals to include (``"prs"``, ``Signal.DMRS``, ...).  None given:
            every non-empty RE (a monostatic node knows its own data too).

        Returns
        -------
        ndarray, shape (num_symbols, num_subcarriers), bool
        """
        chosen = []
        for s in signals:
            try:
                chosen.append(s if isinstance(s, Signal) else Signal[str(s).upper()])
            except KeyError:
                raise InputError(f"signal {s!r}: allowed {', '.join(x.label for x in Signal)}") from None
        return self.grid.mask(*chosen)

    def re_counts(self) -> dict[str, int]:
        """Resource elements per signal (``empty`` included)."""
        return self.grid.counts()

    def summary(self) -> str:
        """A human-readable description: numerology, CP per symbol, rates, RE counts, radar figures."""
        return _summary(self)


def _runs(values: NDArray[np.int64]) -> list[tuple[int, int, int]]:
    """(first, last, value) for each run of equal values."""
    edges = np.nonzero(np.diff(values))[0] + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [values.size])) - 1
    return [(int(a), int(b), int(values[a])) for a, b in zip(starts, ends)]


def _summary(frame: IsacFrame) -> str:
    cfg = frame.config
    scs = cfg.subcarrier_spacing_hz
    fs = cfg.sample_rate_hz
    c = SPEED_OF_LIGHT_MPS
    lines = [
        (f"numerology       mu = {cfg.numerology}, subcarrier spacing {scs / 1e3:g} kHz (TS 38.211 Table 4.2-1)"
         if not cfg.spacing_hz else f"subcarriers      explicit spacing {scs / 1e3:g} kHz (research waveform)"),
        f"bandwidth        {f'{cfg.num_rb} RB = ' if not cfg.subcarriers else ''}{cfg.num_subcarriers} subcarriers = "
        f"{cfg.num_subcarriers * scs / 1e6:.3f} MHz",
        f"sampling         N_FFT = {cfg.fft_size}, sample rate {fs / 1e6:.4f} Msps",
        f"carrier          {cfg.carrier_hz / 1e9:.4f} GHz",
        f"length           {frame.num_symbols} symbols ({_slots(frame.num_symbols / cfg.symbols_per_slot)} of "
        f"{cfg.symbols_per_slot}), {frame.num_samples} samples, {frame.duration_s * 1e3:.4f} ms",
        f"ports            {frame.num_ports} (data layers: {frame.num_layers})",
        f"cyclic prefix    {cfg.cyclic_prefix}; per symbol (samples, us):",
    ]
    runs = _runs(frame.cp_lengths)
    shown = runs if len(runs) <= 12 else runs[:10] + [(-1, -1, -1)] + runs[-1:]
    for first, last, value in shown:
        if first < 0:
            lines.append("                   ...")
            continue
        where = f"{first}" if first == last else f"{first}-{last}"
        lines.append(f"                   symbols {where:>11}: {value:5d} samples = {value / fs * 1e6:.4f} us")
    counts = frame.re_counts()
    total = frame.num_symbols * cfg.num_subcarriers
    lines.append(f"resource elements {total} in all:")
    for name, count in counts.items():
        if count:
            lines.append(f"                   {name:6s} {count:8d} ({100.0 * count / total:5.1f} %)")
    if cfg.data.enabled:
        lines.append(f"data             {cfg.data.modulation}, {frame.data_bits.size} bits")
    t_sym = (cfg.fft_size + frame.cp_lengths.mean()) / fs
    lines += [
        f"sensing          range resolution c/(2 K df) = {c / (2 * cfg.num_subcarriers * scs):.3f} m, "
        f"unambiguous range c/(2 df) = {c / (2 * scs):.1f} m,",
        f"                 ISI-free range c CP_min / 2 = {c * frame.cp_lengths.min() / fs / 2:.1f} m, "
        f"velocity resolution c/(2 f_c M T) = {c / (2 * cfg.carrier_hz * frame.num_symbols * t_sym):.3f} m/s",
    ]
    return "\n".join(lines)


def _slots(count: float) -> str:
    return f"{count:g} slot" + ("" if count == 1 else "s")
