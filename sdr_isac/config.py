"""Typed, validated configuration.

Configuration lives in TOML files (``hw_configs/``) and is parsed once, at the
edge, into frozen dataclasses.  :func:`from_dict` rejects unknown keys and
checks every value against its field's annotation (a bool is not a number,
2.5 is not an int, NaN and infinities are refused); every numeric field
declares its documented range (:class:`Bounds`, :func:`field_bounds`), which
``__post_init__`` enforces, so a config built in code is checked like one
read from a file.  Every problem raises :class:`~sdr_isac.errors.ConfigError`
naming the file, the dotted key (``scene.nodes[1].position_m[0]``), the value
(with its unit), what is allowed and how to fix it.

Example
-------
>>> from sdr_isac import config
>>> cfg = config.default()
>>> cfg.frame.subcarrier_spacing_hz
30000.0
>>> config.PrsConfig(comb_size=5)
Traceback (most recent call last):
...
sdr_isac.errors.ConfigError: comb_size = 5: allowed 2, 4, 6 or 12 (TS 38.211 §7.4.1.7.3); set comb_size to one of them
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import numbers
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from sdr_isac.errors import ConfigError

__all__ = [
    "MODULATIONS",
    "PrsConfig",
    "DmrsConfig",
    "SrsConfig",
    "TrsConfig",
    "DataConfig",
    "FrameConfig",
    "Config",
    "FusionConfig",
    "HostConfig",
    "RADIO_KINDS",
    "RadioConfig",
    "ArrayConfig",
    "NodeConfig",
    "TargetConfig",
    "WallConfig",
    "ClutterConfig",
    "BlockerConfig",
    "RisConfig",
    "SceneConfig",
    "SensingConfig",
    "StreamConfig",
    "Bounds",
    "field_bounds",
    "from_dict",
    "load",
    "loads",
    "default",
    "builtin",
    "symbols_per_slot",
]

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
_MAX_SEED = 2**63 - 1


def _fail(key: str, value: Any, allowed: str, fix: str) -> typing.NoReturn:
    raise ConfigError(f"{key} = {_show(value)}: allowed {allowed}; {fix}", key=key)


def _check_choice(key: str, value: Any, choices: typing.Sequence[Any], what: str = "") -> None:
    if value not in choices:
        listed = ", ".join(str(c) for c in choices[:-1]) + f" or {choices[-1]}"
        _fail(key, value, listed + (f" ({what})" if what else ""), f"set {key} to one of them")


def _check_range(key: str, value: float, low: float, high: float, unit: str = "") -> None:
    if not (low <= value <= high):
        u = f" {unit}" if unit else ""
        _fail(key, value, f"{low}{u} ... {high}{u}", f"set {key} within that range")


# ---- declared ranges of numeric fields -------------------------------------
@dataclass(frozen=True)
class Bounds:
    """The documented range of a numeric config field (of each number in it, for a list).

    Every ``int`` or ``float`` field of every config dataclass declares one
    (see :func:`field_bounds`); ``__post_init__`` refuses a value outside it,
    a NaN, an infinity, a boolean, a string, or a float where an int belongs.

    Parameters
    ----------
    low, high : float
        Smallest and largest allowed value, in ``unit``.
    unit : str
        Unit for messages (``Hz``, ``m``, ``dB``, ...).
    or_zero : bool
        0 is allowed too (it means "take the default", e.g. the frame's rate).
    low_open, high_open : bool
        ``low`` / ``high`` itself is excluded.
    """

    low: float
    high: float
    unit: str = ""
    or_zero: bool = False
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        """Whether ``value`` (a finite real number) lies in the range."""
        if self.or_zero and value == 0:
            return True
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self) -> str:
        """The range in words, e.g. ``0 or 1000 ... 1e+10 Hz``."""
        u = f" {self.unit}" if self.unit else ""
        low, high = _format_limit(self.low), _format_limit(self.high)
        if self.low_open or self.high_open:
            text = f"{'>' if self.low_open else '>='} {low} and {'<' if self.high_open else '<='} {high}{u}"
        else:
            text = f"{low} ... {high}{u}"
        return ("0 or " if self.or_zero else "") + text


def _format_limit(x: float) -> str:
    """A limit for messages: ``1e+06``, ``0.001``, ``275``, ``2**27``, ``2**63 - 1``."""
    if isinstance(x, float):
        return f"{x:g}"
    if x >= 2**20 and x & (x - 1) == 0:
        return f"2**{x.bit_length() - 1}"
    if x >= 2**20 and x & (x + 1) == 0:
        return f"2**{x.bit_length()} - 1"
    return str(x)


def _num(default: Any, low: float, high: float, unit: str = "", **flags: bool) -> Any:
    """A dataclass field with ``default`` whose numbers must lie in ``Bounds(low, high, unit, **flags)``."""
    return field(default=default, metadata={"bounds": Bounds(low, high, unit, **flags)})


def field_bounds(cls: type) -> dict[str, Bounds]:
    """The declared :class:`Bounds` of every numeric field of the config dataclass ``cls``."""
    return {f.name: f.metadata["bounds"] for f in dataclasses.fields(cls) if "bounds" in f.metadata}


_HINTS: dict[type, dict[str, Any]] = {}
_NUMERIC_FIELDS: dict[type, tuple[tuple[str, type, Bounds | None], ...]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)``, cached (it evaluates every annotation string each time)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _numeric_fields(cls: type) -> tuple[tuple[str, type, Bounds | None], ...]:
    """(name, int or float, bounds) of every field whose annotation holds an int or a float (cached)."""
    if cls not in _NUMERIC_FIELDS:
        hints = _hints(cls)
        found = ((f.name, _scalar_kind(hints[f.name]), f.metadata.get("bounds")) for f in dataclasses.fields(cls))
        _NUMERIC_FIELDS[cls] = tuple((name, kind, b) for name, kind, b in found if kind is not None)
    return _NUMERIC_FIELDS[cls]


def _scalar_kind(tp: Any) -> type | None:
    """``int`` or ``float`` when the annotation ``tp`` holds numbers (also inside tuples / unions), else None."""
    if tp in (int, float):
        return typing.cast(type, tp)
    for arg in typing.get_args(tp):
        kind = _scalar_kind(arg)
        if kind is not None:
            return kind
    return None


def _check_number(key: str, value: Any, kind: type, bounds: Bounds | None) -> None:
    """Refuse a value that is not a finite ``kind`` within ``bounds`` (NaN, inf, bool, str, 2.5 for an int)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(key, value, "an integer" if kind is int else "a number", f"write {key} as a plain number")
    if kind is int and not isinstance(value, numbers.Integral):
        _fail(key, value, "a whole number (an integer)", f"write {key} without a fractional part")
    if not isinstance(value, numbers.Integral) and not math.isfinite(value):
        _fail(key, value, "a finite number" + (f", {bounds.describe()}" if bounds else ""), f"give a finite {key}")
    if bounds is not None and not bounds.contains(typing.cast(float, value)):
        _fail(key, value, bounds.describe(), f"set {key} within that range")


def _check_fields(obj: Any) -> None:
    """Check every number in every numeric field of the config ``obj`` against its type and :class:`Bounds`.

    Called first in each ``__post_init__``, so constructing a config directly
    is checked like reading one from a file.
    """
    for name, kind, bounds in _numeric_fields(type(obj)):
        value = getattr(obj, name)
        if value is None:
            continue                                    # an optional field left out (its type allows None)
        if isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                if isinstance(item, (tuple, list)):     # waypoints: a list of lists of numbers
                    for j, inner in enumerate(item):
                        _check_number(f"{name}[{i}][{j}]", inner, kind, bounds)
                else:
                    _check_number(f"{name}[{i}]", item, kind, bounds)
        else:
            _check_number(name, value, kind, bounds)


# ---- ZeroMQ endpoints ----------------------------------------------------------
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_PORT = re.compile(r"[1-9][0-9]{0,4}\Z")
_SCOPE = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
#: Longest ipc:// path: a Unix socket address holds 107 bytes and a NUL (Linux sun_path).
_MAX_IPC_PATH_BYTES = 107


def _valid_host(host: str) -> bool:
    """``*``, an IPv4 literal, ``[IPv6 literal]`` (``%scope`` allowed) or a DNS hostname / interface name (RFC 1123)."""
    if host == "*":
        return True
    if host.startswith("[") and host.endswith("]"):
        address, percent, scope = host[1:-1].partition("%")
        if percent and not _SCOPE.match(scope):
            return False
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return False
        return True
    labels = host.split(".")
    if all(label.isascii() and label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return len(host) <= 253 and all(_HOST_LABEL.match(label) for label in labels) \
        and not labels[-1].isdigit()


def _check_endpoint(key: str, value: str) -> None:
    """Refuse anything but ``tcp://HOST:PORT`` (PORT 1 ... 65535), ``ipc://PATH`` or ``inproc://NAME``."""
    allowed = ("a ZeroMQ endpoint tcp://HOST:PORT (HOST an IPv4 address, [IPv6 address], a hostname or *; "
               "PORT 1 ... 65535), ipc://PATH or inproc://NAME")
    fix = "e.g. tcp://127.0.0.1:5555"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        _fail(key, value, allowed + " without control characters", fix)
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("tcp", "ipc", "inproc"):
        _fail(key, value, allowed, fix)
    if scheme == "ipc":
        if not rest or len(rest.encode("utf-8")) > _MAX_IPC_PATH_BYTES:
            _fail(key, value, f"ipc://PATH with a path of 1 ... {_MAX_IPC_PATH_BYTES} bytes (a Unix socket address)",
                  "give a short path, e.g. ipc:///tmp/sdr-isac.sock")
        return
    if scheme == "inproc":
        if not rest:
            _fail(key, value, "inproc://NAME with a non-empty NAME", "e.g. inproc://host")
        return
    host, sep, port = rest.rpartition(":")
    if not sep or not _valid_host(host):
        _fail(key, value, allowed, fix + " (write an IPv6 address in brackets: tcp://[::1]:5555)")
    if not _PORT.match(port) or not 1 <= int(port) <= 65535:
        _fail(key, value, "a port 1 ... 65535 (decimal, no leading zero) after the host (tcp://HOST:PORT)",
              "e.g. tcp://127.0.0.1:5555")


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
            _fail(key, explicit, f"1 value, {per_slot} (one slot) or {n_sym} (every symbol) values",
                  "give one CP per symbol or a single CP")
        samples = self.explicit_cp_samples()
        useful_s = self.fft_size / self.sample_rate_hz
        for v, n in zip(values, samples):
            if n < 0 or n >= self.fft_size:
                unit = "samples" if key == "cp_samples" else "s"
                _fail(key, v, f"0 ... {self.fft_size - 1} samples (shorter than the useful symbol "
                      f"{useful_s * 1e6:.4g} us at {self.sample_rate_hz / 1e6:g} Msps) [{unit}]",
                      "shorten the cyclic prefix")

    def _check_signal_symbols(self) -> None:
        if self.spacing_hz and self.cyclic_prefix != "explicit":
            _fail("spacing_hz", self.spacing_hz, "an explicit CP (cp_samples or cp_duration_s) with an explicit "
                  "spacing: the 3GPP CP patterns belong to the numerologies", "give cp_samples or cp_duration_s")
        if self.subcarriers and any(x is not None for x in (self.prs, self.dmrs, self.srs, self.trs)):
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


# ---- radios ------------------------------------------------------------------
RADIO_KINDS = ("sim", "replay", "pluto", "usrp")

#: Largest coordinate of a position, m: the Earth's scale (ECEF coordinates reach 6.4e6 m; 1e7 m also
#: covers aircraft and low orbits), so geocentric and local coordinates both fit.
_MAX_POSITION_M = 1e7
#: Largest velocity component, m/s: a low-orbit satellite moves at 7.8 km/s.
_MAX_SPEED_MPS = 1e4
#: Largest clock or timing offset of a node, s: 1 ms is a loose (NTP-level) synchronisation; GPS- or
#: PTP-disciplined radios are within a microsecond, and beyond 1 ms every echo lies many frames away.
_MAX_CLOCK_OFFSET_S = 1e-3


def _check_vector(key: str, value: tuple[float, ...], length: int = 3, unit: str = "m") -> None:
    if len(value) != length:
        _fail(key, value, f"{length} numbers [x, y, z] in {unit}", f"give {length} coordinates")


@dataclass(frozen=True)
class RadioConfig:
    """Which radio a node uses and how it is set up.

    Device limits (LO range, gain range, sample rates) are checked by each
    backend, which knows them; this section only checks what holds for all.

    Parameters
    ----------
    kind : str
        ``sim`` (simulated scene), ``replay`` (SigMF recording), ``pluto``
        (ADALM-Pluto through pyadi-iio) or ``usrp`` (UHD).
    node_id : str
        The node this radio belongs to (a scene node for ``sim``).
    uri : str
        ``pluto``: libiio URI (``ip:192.168.2.1``, ``usb:1.2.5``);
        ``usrp``: UHD device arguments (``type=b200``);
        ``replay``: path of the ``.sigmf-meta`` file.
    sample_rate_hz : float
        0 takes the frame's sample rate; else 1 kHz ... 10 GHz.
    center_freq_hz : float
        0 takes the frame's carrier; else 1 MHz ... 300 GHz (as ``carrier_hz``).
    rf_bandwidth_hz : float
        Analog filter bandwidth; 0 takes the sample rate; else 1 kHz ... 10 GHz.
    rx_channels, tx_channels : tuple of int
        Channel indices, each 0 ... 63 (``[0, 1]`` for a 2R2T Pluto or a B210).
    rx_gain_db : float
        Receive gain in dB (manual gain mode), -30 ... 100 dB.
    gain_mode : str
        ``manual``, ``slow_attack``, ``fast_attack`` or ``hybrid`` (AD936x AGC).
    tx_gain_db : float
        USRP transmit gain in dB, -30 ... 100 dB.
    tx_attenuation_db : float
        Pluto transmit attenuation in dB, 0 ... 100 here (the Pluto itself
        takes 0 ... 89.75 in 0.25 dB steps; its backend checks that).
    buffer_size : int
        Samples per capture when recording or streaming; 0 takes one frame
        (two on a Pluto, which must find a whole frame in every buffer);
        else 1 ... 2**27 (1 GiB of complex64 per channel).
    clock_source, time_source : str
        USRP references: ``internal``, ``external`` or ``gpsdo``.
    rx_antenna, tx_antenna : str
        USRP antenna port names (empty: the device default).
    loop, pace : bool
        ``replay``: start again at the end; deliver captures at the recorded rate.
    timeout_s : float
        Longest wait for a device, 1 ms ... 3600 s.
    remove_leakage : bool
        Pluto: measure the static TX->RX leakage/clutter once and subtract it.
    """

    kind: str = "sim"
    node_id: str = "bs0"
    uri: str = ""
    sample_rate_hz: float = _num(0.0, 1e3, 10e9, "Hz", or_zero=True)
    center_freq_hz: float = _num(0.0, 1e6, 300e9, "Hz", or_zero=True)
    rf_bandwidth_hz: float = _num(0.0, 1e3, 10e9, "Hz", or_zero=True)
    rx_channels: tuple[int, ...] = _num((0,), 0, 63)
    tx_channels: tuple[int, ...] = _num((0,), 0, 63)
    rx_gain_db: float = _num(30.0, -30.0, 100.0, "dB")
    gain_mode: str = "manual"
    tx_gain_db: float = _num(0.0, -30.0, 100.0, "dB")
    tx_attenuation_db: float = _num(10.0, 0.0, 100.0, "dB")
    buffer_size: int = _num(0, 1, 2**27, "samples", or_zero=True)
    clock_source: str = "internal"
    time_source: str = "internal"
    rx_antenna: str = ""
    tx_antenna: str = ""
    loop: bool = False
    pace: bool = False
    timeout_s: float = _num(5.0, 1e-3, 3600.0, "s")
    remove_leakage: bool = False

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_choice("kind", self.kind, RADIO_KINDS)
        if not self.node_id:
            _fail("node_id", self.node_id, "a non-empty name", "name the node, e.g. node_id = 'bs0'")
        for key in ("rx_channels", "tx_channels"):
            chans = getattr(self, key)
            if not chans or len(set(chans)) != len(chans):
                _fail(key, chans, "a non-empty list of distinct channel indices >= 0", "e.g. [0] or [0, 1]")
        _check_choice("gain_mode", self.gain_mode, ("manual", "slow_attack", "fast_attack", "hybrid"))
        _check_choice("clock_source", self.clock_source, ("internal", "external", "gpsdo"))
        _check_choice("time_source", self.time_source, ("internal", "external", "gpsdo"))
        if self.kind == "replay" and not self.uri:
            _fail("uri", self.uri, "the path of a .sigmf-meta file for kind = 'replay'", "set uri = 'path.sigmf-meta'")


# ---- scene -------------------------------------------------------------------
@dataclass(frozen=True)
class ArrayConfig:
    """An antenna array in the node's local frame (boresight +x, ULA along +y, URA in the y-z plane).

    Parameters
    ----------
    num_elements : tuple of int
        ``[n]`` for a ULA, ``[ny, nz]`` for a URA; 1 ... 1024 elements.
    spacing_wavelengths : float
        Element spacing in wavelengths of the node's carrier, 0.01 ... 100.
    positions_wavelengths : tuple of int
        For sparse / non-uniform linear arrays: element indices along +y in
        units of the spacing (``[0, 1, 4, 6]``), each 0 ... 10000; empty
        means 0 ... n - 1.
    """

    num_elements: tuple[int, ...] = _num((1,), 1, 1024, "elements")
    spacing_wavelengths: float = _num(0.5, 0.01, 100.0, "wavelengths")
    positions_wavelengths: tuple[int, ...] = _num((), 0, 10000, "spacings")

    def __post_init__(self) -> None:
        _check_fields(self)
        if len(self.num_elements) not in (1, 2) or math.prod(self.num_elements) > 1024:
            _fail("num_elements", self.num_elements, "[n] (ULA) or [ny, nz] (URA), 1 ... 1024 elements",
                  "e.g. num_elements = [4]")
        if self.positions_wavelengths:
            if len(self.num_elements) != 1 or len(self.positions_wavelengths) != self.num_elements[0] \
                    or len(set(self.positions_wavelengths)) != len(self.positions_wavelengths):
                _fail("positions_wavelengths", self.positions_wavelengths,
                      f"{self.num_elements[0]} distinct indices >= 0 for a linear array",
                      "list one index per element")

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.num_elements)


@dataclass(frozen=True)
class NodeConfig:
    """A radio node in the scene: base station, UE or a passive receiver.

    Parameters
    ----------
    id : str
        Unique name.
    role : str
        ``bs``, ``ue`` or ``rx`` (receive only).
    position_m : tuple of float
        [x, y, z] in m, each -1e7 ... 1e7 m (the Earth's scale).
    yaw_deg : float
        Rotation of the array's boresight about +z from +x, -360 ... 360 degrees.
    transmits : bool
        Whether the node transmits its frame continuously (cyclically).
    tx_power_dbm : float
        Transmit power (mean over the frame), dBm, -50 ... 80.
    antenna_gain_dbi : float
        Gain of each element, dBi, -20 ... 40.
    noise_figure_db : float
        Receiver noise figure, dB, 0 ... 30.
    rx_array, tx_array : ArrayConfig
        Receive and transmit arrays; frame port p uses TX element p.
    clock_offset_s : float
        Offset of the node's clock from scene time, s (bistatic delay bias),
        -1e-3 ... 1e-3 s (a loose, NTP-level sync; GPS / PTP: about 1e-6 s).
    cfo_hz : float
        Carrier frequency offset of the receiver against the transmitter, Hz,
        -1e7 ... 1e7 (100 ppm at 100 GHz).
    sfo_ppm : float
        Sample clock offset, ppm (a timing drift that grows from frame to
        frame), -1000 ... 1000.
    timing_offset_s : float
        Extra receive delay of every path (fractional samples allowed), s,
        0 ... 1e-3.
    leakage_isolation_db : float
        TX -> RX isolation of a transmitting node in dB, 0 ... 200; 0 disables leakage.
    phase_noise_linewidth_hz : float
        Oscillator linewidth (Wiener phase noise), Hz, 0 ... 1e6; 0 disables it.
    frame : FrameConfig or None
        This node's own frame (another band, say); None uses the file's [frame].
    """

    id: str = "bs0"
    role: str = "bs"
    position_m: tuple[float, ...] = _num((0.0, 0.0, 0.0), -_MAX_POSITION_M, _MAX_POSITION_M, "m")
    yaw_deg: float = _num(0.0, -360.0, 360.0, "degrees")
    transmits: bool = True
    tx_power_dbm: float = _num(20.0, -50.0, 80.0, "dBm")
    antenna_gain_dbi: float = _num(0.0, -20.0, 40.0, "dBi")
    noise_figure_db: float = _num(7.0, 0.0, 30.0, "dB")
    rx_array: ArrayConfig = field(default_factory=ArrayConfig)
    tx_array: ArrayConfig = field(default_factory=ArrayConfig)
    clock_offset_s: float = _num(0.0, -_MAX_CLOCK_OFFSET_S, _MAX_CLOCK_OFFSET_S, "s")
    cfo_hz: float = _num(0.0, -1e7, 1e7, "Hz")
    sfo_ppm: float = _num(0.0, -1000.0, 1000.0, "ppm")
    timing_offset_s: float = _num(0.0, 0.0, _MAX_CLOCK_OFFSET_S, "s")
    leakage_isolation_db: float = _num(0.0, 0.0, 200.0, "dB")
    phase_noise_linewidth_hz: float = _num(0.0, 0.0, 1e6, "Hz")
    frame: FrameConfig | None = None

    def __post_init__(self) -> None:
        _check_fields(self)
        if not self.id:
            _fail("id", self.id, "a non-empty name", "name the node")
        _check_choice("role", self.role, ("bs", "ue", "rx"))
        _check_vector("position_m", self.position_m)


@dataclass(frozen=True)
class TargetConfig:
    """A point target.

    Parameters
    ----------
    id : str
        Name (for truth records).
    position_m : tuple of float
        [x, y, z] at scene time 0, m, each -1e7 ... 1e7 m (ignored when
        waypoints are given).
    velocity_mps : tuple of float
        Constant velocity [vx, vy, vz], m/s, each -1e4 ... 1e4 m/s (a low
        orbit is 7.8 km/s).
    waypoints : tuple of tuple of float
        ``[[t_s, x, y, z], ...]`` with increasing t_s: piecewise-linear motion,
        held at the ends; every number -1e7 ... 1e7 (s for t_s, m for x, y, z).
    rcs_m2 : float
        Mean radar cross section, m², > 0 ... 1e6 (a large ship is about
        1e5 m²; a tiny value such as 1e-30 makes a target that is not there).
    swerling : int
        0 (constant RCS) or 1 (exponential RCS, independent per frame).
    snr_per_re_db : float or None
        For paper experiments: fix the monostatic per-RE SNR of this target
        (dB, -100 ... 100) instead of the radar equation.
    """

    id: str = "t0"
    position_m: tuple[float, ...] = _num((100.0, 0.0, 0.0), -_MAX_POSITION_M, _MAX_POSITION_M, "m")
    velocity_mps: tuple[float, ...] = _num((0.0, 0.0, 0.0), -_MAX_SPEED_MPS, _MAX_SPEED_MPS, "m/s")
    waypoints: tuple[tuple[float, ...], ...] = _num((), -_MAX_POSITION_M, _MAX_POSITION_M, "(s or m)")
    rcs_m2: float = _num(1.0, 0.0, 1e6, "m²", low_open=True)
    swerling: int = _num(0, 0, 1)
    snr_per_re_db: float | None = _num(None, -100.0, 100.0, "dB")

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_vector("position_m", self.position_m)
        _check_vector("velocity_mps", self.velocity_mps, unit="m/s")
        if self.waypoints:
            if any(len(w) != 4 for w in self.waypoints) or \
                    any(b[0] <= a[0] for a, b in zip(self.waypoints, self.waypoints[1:])):
                _fail("waypoints", self.waypoints, "[[t_s, x_m, y_m, z_m], ...] with increasing t_s",
                      "give four numbers per waypoint in time order")
        _check_choice("swerling", self.swerling, (0, 1))


@dataclass(frozen=True)
class WallConfig:
    """A flat reflecting wall (infinite plane), specular by the image method.

    Parameters
    ----------
    point_m : tuple of float
        A point on the plane, m, each coordinate -1e7 ... 1e7 m.
    normal : tuple of float
        Normal vector (need not be unit length), each component -1e6 ... 1e6,
        of length >= 1e-6.
    reflection_db : float
        Power reflection coefficient in dB, -100 ... 0.
    """

    point_m: tuple[float, ...] = _num((0.0, 50.0, 0.0), -_MAX_POSITION_M, _MAX_POSITION_M, "m")
    normal: tuple[float, ...] = _num((0.0, 1.0, 0.0), -1e6, 1e6)
    reflection_db: float = _num(-6.0, -100.0, 0.0, "dB")

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_vector("point_m", self.point_m)
        _check_vector("normal", self.normal, unit="(direction)")
        if not math.hypot(*self.normal) >= 1e-6:
            _fail("normal", self.normal, "a non-zero vector (length >= 1e-6)", "give the wall's normal direction")


@dataclass(frozen=True)
class ClutterConfig:
    """A static point scatterer (a pole, a building corner).

    Parameters
    ----------
    position_m : tuple of float
        [x, y, z], m, each -1e7 ... 1e7 m.
    rcs_m2 : float
        Radar cross section, m², > 0 ... 1e6.
    """

    position_m: tuple[float, ...] = _num((30.0, 10.0, 0.0), -_MAX_POSITION_M, _MAX_POSITION_M, "m")
    rcs_m2: float = _num(10.0, 0.0, 1e6, "m²", low_open=True)

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_vector("position_m", self.position_m)


@dataclass(frozen=True)
class BlockerConfig:
    """An axis-aligned box that blocks any path crossing it (a building).

    Parameters
    ----------
    min_m, max_m : tuple of float
        Opposite corners, m, with min < max on every axis; each -1e7 ... 1e7 m.
    attenuation_db : float
        Loss of a blocked path, dB, 0 ... 1000; at or above 200 dB the path
        is removed.
    """

    min_m: tuple[float, ...] = _num((40.0, -5.0, 0.0), -_MAX_POSITION_M, _MAX_POSITION_M, "m")
    max_m: tuple[float, ...] = _num((50.0, 5.0, 30.0), -_MAX_POSITION_M, _MAX_POSITION_M, "m")
    attenuation_db: float = _num(200.0, 0.0, 1000.0, "dB")

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_vector("min_m", self.min_m)
        _check_vector("max_m", self.max_m)
        if any(a >= b for a, b in zip(self.min_m, self.max_m)):
            _fail("max_m", self.max_m, f"greater than min_m = {self.min_m} on every axis", "swap the corners")


@dataclass(frozen=True)
class RisConfig:
    """A reconfigurable intelligent surface: a planar grid of phase-shifting elements.

    Parameters
    ----------
    id : str
        Name.
    position_m : tuple of float
        Centre of the surface, m, each coordinate -1e7 ... 1e7 m.
    yaw_deg : float
        Direction of the surface normal about +z from +x, -360 ... 360 degrees.
    num_elements : tuple of int
        [ny, nz] elements (the surface lies in its local y-z plane), 1 ...
        65536 elements in all.
    spacing_wavelengths : float
        Element spacing, wavelengths, 0.01 ... 100.
    steer_deg : tuple of float
        The phase profile reflects a wave from ``steer_deg[0]`` (azimuth of
        the incoming direction, local) towards ``steer_deg[1]`` (outgoing),
        each -180 ... 180 degrees.
    element_gain_dbi : float
        Gain of one element, dBi, -20 ... 40.
    controller : str
        Id of the base station that programs the surface ("" for none).
    scan_deg : tuple of float
        Outgoing azimuths (local, degrees, |phi| < 90) the controller steps
        through, one per frame, the incoming azimuth pointing at itself: a
        scan of angles seen from the RIS, which the fusion host turns into a
        target's range, velocity, angle and global position
        (:func:`sdr_isac.fusion.ris.estimate_ris_target`).  Empty: the
        surface keeps ``steer_deg``.
    """

    id: str = "ris0"
    position_m: tuple[float, ...] = _num((50.0, 20.0, 0.0), -_MAX_POSITION_M, _MAX_POSITION_M, "m")
    yaw_deg: float = _num(0.0, -360.0, 360.0, "degrees")
    num_elements: tuple[int, ...] = _num((16, 16), 1, 65536, "elements")
    spacing_wavelengths: float = _num(0.5, 0.01, 100.0, "wavelengths")
    steer_deg: tuple[float, ...] = _num((0.0, 0.0), -180.0, 180.0, "degrees")
    element_gain_dbi: float = _num(5.0, -20.0, 40.0, "dBi")
    controller: str = ""
    scan_deg: tuple[float, ...] = _num((), -90.0, 90.0, "degrees", low_open=True, high_open=True)

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_vector("position_m", self.position_m)
        if self.scan_deg and not self.controller:
            _fail("controller", self.controller, "the id of the base station that programs the scan",
                  "set controller = \"bs0\" (say) or remove scan_deg")
        if len(self.scan_deg) == 1 or any(not (-90.0 < a < 90.0) for a in self.scan_deg):
            _fail("scan_deg", self.scan_deg, "two or more outgoing azimuths, each -90 < phi < 90 degrees",
                  "e.g. scan_deg = [-60.0, -56.0, ..., 60.0]")
        if len(self.num_elements) != 2 or math.prod(self.num_elements) > 65536:
            _fail("num_elements", self.num_elements, "[ny, nz], 1 ... 65536 elements", "e.g. [16, 16]")
        if len(self.steer_deg) != 2:
            _fail("steer_deg", self.steer_deg, "[incoming_az_deg, outgoing_az_deg]", "give two angles")


@dataclass(frozen=True)
class SceneConfig:
    """The simulated world: nodes, targets, walls, clutter, blockers, RIS.

    Parameters
    ----------
    seed : int
        Seed of every random draw in the scene (noise, Swerling, phase noise),
        0 ... 2**63 - 1.
    noise : bool
        False removes thermal noise (for checks of the geometry).
    nodes, targets, walls, clutter, blockers, ris : tuple of sections
        The scene's objects (see each section's class).
    """

    seed: int = _num(0, 0, _MAX_SEED)
    noise: bool = True
    nodes: tuple[NodeConfig, ...] = (NodeConfig(),)
    targets: tuple[TargetConfig, ...] = ()
    walls: tuple[WallConfig, ...] = ()
    clutter: tuple[ClutterConfig, ...] = ()
    blockers: tuple[BlockerConfig, ...] = ()
    ris: tuple[RisConfig, ...] = ()

    def __post_init__(self) -> None:
        _check_fields(self)
        ids = [n.id for n in self.nodes]
        if not ids or len(set(ids)) != len(ids):
            _fail("nodes", ids, "one or more nodes with distinct ids", "rename the repeated node")
        tids = [t.id for t in self.targets]
        if len(set(tids)) != len(tids):
            _fail("targets", tids, "distinct target ids", "rename the repeated target")
        for r in self.ris:
            if r.controller and r.controller not in ids:
                _fail("ris.controller", r.controller, f"a node of the scene ({', '.join(ids)})",
                      "name the base station that programs the surface")

    def node(self, node_id: str) -> NodeConfig:
        """The node called ``node_id``."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise ConfigError(f"node_id = {node_id!r}: allowed one of the scene's nodes "
                          f"({', '.join(n.id for n in self.nodes)}); fix radio.node_id or add the node",
                          key="radio.node_id")


# ---- sensing -----------------------------------------------------------------
_WINDOWS = ("none", "hann", "hamming", "blackman", "chebyshev")


@dataclass(frozen=True)
class SensingConfig:
    """How a node turns a capture into a range-Doppler map and detections.

    Parameters
    ----------
    signals : tuple of str
        Reference signals whose REs are used (``prs``, ``dmrs``, ``srs``,
        ``trs``, ``data``); empty uses every RE the node sent (monostatic).
    geometry : str
        ``monostatic`` (range = c tau / 2) or ``bistatic`` (range sum = c tau).
    window_range, window_doppler : str
        ``none``, ``hann``, ``hamming``, ``blackman`` or ``chebyshev``.
    chebyshev_sidelobe_db : float
        Sidelobe level of the Chebyshev window, dB (20 ... 200).
    range_oversampling, doppler_oversampling : int
        Zero-padding factors of the range and Doppler transforms, 1 ... 16.
    cfar : str
        ``ca``, ``go``, ``so`` or ``os``.
    pfa : float
        Design false-alarm probability per cell, 1e-40 <= pfa < 0.5.
    guard_cells, training_cells : tuple of int
        CFAR guard and training cells each side, (range, Doppler), each
        0 ... 1000 (training at least 1).
    max_detections : int
        Most detections reported per capture (strongest first), 1 ... 10000.
    refine : bool
        Off-grid refinement (local maximisation of the periodogram).
    angle : bool
        Estimate the azimuth of each detection when the capture has several
        channels (a ULA along +y with ``element_spacing_wavelengths``).
    element_spacing_wavelengths : float
        Spacing of the receive ULA, wavelengths, 0.01 ... 100.
    min_range_m : float
        Detections nearer than this are dropped (e.g. the TX->RX leakage at
        0 m), 0 ... 1e8 m (range sums between Earth-scale positions).
    max_range_m : float
        Detections farther than this are dropped (0: no limit), 0 ... 1e8 m
        and above ``min_range_m``.  The top of the
        range axis holds negative delays wrapped around (sidelobes of a
        leakage peak), and echoes beyond c CP / 2 suffer inter-symbol
        interference.
    remove_static : bool
        Subtract each subcarrier's mean over the symbols from H before the
        map: removes zero-Doppler echoes (leakage, walls, clutter) and keeps
        moving targets.
    sync : str
        ``capture`` (trust ``capture.frame_offset``) or ``correlate`` (find
        the frame by correlation with the known part of the transmitted frame:
        the chosen ``signals``, e.g. the PRS for a passive receiver).
    correct_cfo : bool
        Estimate the carrier frequency offset from the cyclic prefix and
        remove it before demodulation (bistatic / passive receivers).
    """

    signals: tuple[str, ...] = ()
    geometry: str = "monostatic"
    window_range: str = "hann"
    window_doppler: str = "hann"
    chebyshev_sidelobe_db: float = _num(60.0, 20.0, 200.0, "dB")
    range_oversampling: int = _num(2, 1, 16)
    doppler_oversampling: int = _num(2, 1, 16)
    cfar: str = "ca"
    pfa: float = _num(1e-6, 1e-40, 0.5, high_open=True)
    guard_cells: tuple[int, ...] = _num((4, 2), 0, 1000, "cells")
    training_cells: tuple[int, ...] = _num((8, 4), 0, 1000, "cells")
    max_detections: int = _num(32, 1, 10000)
    refine: bool = True
    angle: bool = True
    element_spacing_wavelengths: float = _num(0.5, 0.01, 100.0, "wavelengths")
    min_range_m: float = _num(0.0, 0.0, 1e8, "m")
    max_range_m: float = _num(0.0, 0.0, 1e8, "m")
    remove_static: bool = False
    sync: str = "capture"
    correct_cfo: bool = False

    def __post_init__(self) -> None:
        _check_fields(self)
        for s in self.signals:
            _check_choice("signals", s, ("prs", "dmrs", "srs", "trs", "data"))
        _check_choice("geometry", self.geometry, ("monostatic", "bistatic"))
        _check_choice("window_range", self.window_range, _WINDOWS)
        _check_choice("window_doppler", self.window_doppler, _WINDOWS)
        _check_choice("cfar", self.cfar, ("ca", "go", "so", "os"))
        for key in ("guard_cells", "training_cells"):
            value = getattr(self, key)
            if len(value) != 2:
                _fail(key, value, "[range, doppler] cells >= 0", "e.g. [4, 2]")
        if min(self.training_cells) < 1:
            _fail("training_cells", self.training_cells, "at least 1 cell each side on both axes", "e.g. [8, 4]")
        if self.max_range_m and self.max_range_m <= self.min_range_m:
            _fail("max_range_m", self.max_range_m, f"0 (no limit) or > min_range_m = {self.min_range_m} m",
                  "raise max_range_m or set it to 0")
        _check_choice("sync", self.sync, ("capture", "correlate"))


# ---- streaming -----------------------------------------------------------------
@dataclass(frozen=True)
class StreamConfig:
    """How nodes stream to the fusion host over ZeroMQ (see ``docs/wire-format.md``).

    Parameters
    ----------
    host_endpoint : str
        Where the host's PULL socket binds and the nodes' PUSH sockets
        connect, e.g. ``tcp://127.0.0.1:5555``.  Loopback unless told otherwise.
        Checked when the config is read: ``tcp://HOST:PORT`` with HOST an
        IPv4 address, an IPv6 address in brackets (``tcp://[::1]:5555``), a
        hostname or ``*``, and PORT 1 ... 65535; ``ipc://PATH`` (1 ... 107
        bytes); ``inproc://NAME`` (non-empty).
    publish_endpoint : str
        Where the host publishes results (detections, later estimates and
        tracks) for displays and recorders; the same forms.
    send: str
        What a node sends: ``capture`` (IQ) or ``detections`` (it senses locally).
    send_hwm : int
        Messages a node queues before dropping (counted), 1 ... 10000.
    heartbeat_s : float
        Interval of node heartbeats, 0.01 ... 3600 s.
    frames : int
        A node stops after this many frames, 0 ... 10**9 (0: until stopped).
    frame_rate_hz : float
        Captures per second a node paces itself to, 0 ... 1e5 Hz (0: as fast
        as it can).
    align_window_s : float
        Captures of different nodes whose t0 lie within this window are one
        time-aligned set at the host, 0 ... 10 s (default 0.1 ms: well under
        one frame, so frame k of one node never pairs with frame k +- 1 of
        another; simulated nodes capture at identical instants,
        PPS-disciplined radios within microseconds).
    queue_size : int
        Captures waiting for processing at the host before new ones are
        dropped, 1 ... 100000.
    max_message_mb : float
        Largest message accepted, 0.001 ... 4096 MiB.
    curve_server_secret, curve_server_public : str
        Host key files (``sdr-isac keys``); empty disables CURVE.
    curve_client_secret, curve_client_public : str
        Node key files.
    curve_allowed : tuple of str
        Public key files of the nodes the host accepts (CURVE only).
    curve_subscribers_allowed : tuple of str
        Public key files of the subscribers (displays, recorders, core hosts)
        that may read the host's PUB socket (CURVE only: with CURVE on, the
        PUB socket is a CURVE server too, and an empty list admits no
        subscriber).
    absent_after_heartbeats : int
        The host marks a node ``absent`` after this many heartbeat intervals
        (``heartbeat_s``) without any message from it, 1 ... 1000.
    publish_maps : bool
        The host also publishes, per sensed capture, the range-Doppler map
        cropped to the reportable range (kind ``rdmap``, for displays).  It
        costs one dB conversion and one message of at most
        ``map_max_cells`` float32 values per capture; false publishes
        detections only.
    map_max_cells : int
        Largest published map, cells (range bins x Doppler bins), 1024 ...
        4194304; a larger map is max-pooled in range blocks to fit.
    """

    host_endpoint: str = "tcp://127.0.0.1:5555"
    publish_endpoint: str = "tcp://127.0.0.1:5556"
    send: str = "capture"
    send_hwm: int = _num(16, 1, 10000, "messages")
    heartbeat_s: float = _num(1.0, 0.01, 3600.0, "s")
    frames: int = _num(0, 0, 10**9, "frames")
    frame_rate_hz: float = _num(0.0, 0.0, 1e5, "Hz")
    align_window_s: float = _num(1e-4, 0.0, 10.0, "s")
    queue_size: int = _num(64, 1, 100000, "captures")
    max_message_mb: float = _num(256.0, 0.001, 4096.0, "MiB")
    curve_server_secret: str = ""
    curve_server_public: str = ""
    curve_client_secret: str = ""
    curve_client_public: str = ""
    curve_allowed: tuple[str, ...] = ()
    curve_subscribers_allowed: tuple[str, ...] = ()
    absent_after_heartbeats: int = _num(3, 1, 1000, "heartbeats")
    publish_maps: bool = True
    map_max_cells: int = _num(262144, 1024, 4194304, "cells")

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_endpoint("host_endpoint", self.host_endpoint)
        _check_endpoint("publish_endpoint", self.publish_endpoint)
        _check_choice("send", self.send, ("capture", "detections"))
        if self.curve_server_secret and not self.curve_server_public:
            _fail("curve_server_public", self.curve_server_public, "the host's public key file beside its secret one",
                  "run sdr-isac keys and set both")
        if self.curve_client_secret and not self.curve_server_public:
            _fail("curve_server_public", self.curve_server_public, "the host's public key file on a CURVE node",
                  "copy the host's NAME.key to the node and set curve_server_public")


@dataclass(frozen=True)
class FusionConfig:
    """Node-level fusion on the host: several nodes' time-aligned detections of one target.

    Parameters
    ----------
    enabled : bool
        Fuse every time-aligned set of two or more nodes of the scene and
        publish ``estimates`` (``sdr_isac.fusion.node.fuse_detections``).
    target_height_m : float
        Height at which targets are located, m (the nodes' ranges and array
        angles fix the horizontal position): ground traffic about 1 m, a UAV
        its reported altitude.  -1000 ... 100000 m.
    gate_m : float
        Association gate: detections of different nodes whose own position
        estimates lie within this distance are one target, m (> 0 ... 1000).
    macro_nodes : tuple of str
        Ids of macro base stations (a low band covering the others): a
        target that two or more of the other (micro) nodes detect is fused
        from those alone (mode ``micro``); the macro joins only where fewer
        do (mode ``macro_micro``, :func:`sdr_isac.fusion.macro_micro.fuse_live`).
        Empty: every node's detections are fused together.
    """

    enabled: bool = True
    target_height_m: float = _num(1.0, -1000.0, 100000.0, "m")
    gate_m: float = _num(5.0, 0.0, 1000.0, "m", low_open=True)
    macro_nodes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(frozen=True)
class HostConfig:
    """Where a fusion host senses the captures it receives (``sdr_isac.executors``).

    Parameters
    ----------
    executor : str
        ``thread`` (in the host's worker thread: tests, one node), ``process``
        (a local pool of ``workers`` processes) or ``dask`` (a Dask distributed
        cluster: ``scheduler``, or a local cluster of ``workers`` processes).
        Results are identical on every executor.
    workers : int
        Processes of a local pool or local Dask cluster, 1 ... 1024 (0: one per core).
    scheduler : str
        A Dask scheduler's address, ``tcp://HOST:PORT`` (``executor = "dask"`` only;
        empty: a local cluster).  Add machines by starting ``dask worker tcp://HOST:PORT`` on them.
    max_in_flight : int
        Captures being sensed at once before the host waits for the oldest, 1 ... 4096
        (0: twice the workers).
    """

    executor: str = "thread"
    workers: int = _num(0, 1, 1024, "processes", or_zero=True)
    scheduler: str = ""
    max_in_flight: int = _num(0, 1, 4096, "captures", or_zero=True)

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_choice("executor", self.executor, ("thread", "process", "dask"))
        if self.scheduler:
            if self.executor != "dask":
                _fail("scheduler", self.scheduler, "a scheduler only with executor = \"dask\"",
                      "set executor = \"dask\" or remove scheduler")
            _check_endpoint("scheduler", self.scheduler)


@dataclass(frozen=True)
class Config:
    """A whole sdr_isac configuration file.

    Parameters
    ----------
    name : str
        A short label for outputs and logs.
    description : str
        Free text.
    frame : FrameConfig
        The transmitted ISAC frame.
    radio : RadioConfig
        The node's radio.
    scene : SceneConfig or None
        The simulated world, for ``radio.kind = 'sim'``.
    sensing : SensingConfig
        Range-Doppler processing and detection.
    stream : StreamConfig
        Node-to-host streaming.
    fusion : FusionConfig
        Node-level fusion on the host.
    host : HostConfig
        Where the host senses captures (thread, process pool, Dask).
    """

    name: str = "default"
    description: str = ""
    frame: FrameConfig = field(default_factory=FrameConfig)
    radio: RadioConfig = field(default_factory=RadioConfig)
    scene: SceneConfig | None = None
    sensing: SensingConfig = field(default_factory=SensingConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    host: HostConfig = field(default_factory=HostConfig)

    def __post_init__(self) -> None:
        if self.radio.kind == "sim" and self.scene is not None:
            self.scene.node(self.radio.node_id)          # the radio's node must be in the scene
        ids = [n.id for n in self.scene.nodes] if self.scene is not None else []
        unknown = [n for n in self.fusion.macro_nodes if n not in ids]
        if unknown:
            known = ", ".join(ids) or "none: this file has no [scene]"
            _fail("fusion.macro_nodes", list(self.fusion.macro_nodes), f"ids of scene nodes ({known})",
                  f"remove {', '.join(unknown)} or add the node(s) to [[scene.nodes]]")


# ---- parsing ---------------------------------------------------------------
T = TypeVar("T")


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "nothing"
    if dataclasses.is_dataclass(tp):
        return "a table"
    origin = typing.get_origin(tp)
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


class _BadValue(ConfigError):
    """A value of the right type that no field takes (NaN, infinity, a NUL character)."""


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a TOML (or JSON) value to the annotated type ``tp`` or raise ConfigError.

    This is the one place where a value read from a file or a message meets
    the type of its field: a bool is never a number, 2.5 is not an int, a
    string is not a number, a list is not a table (and vice versa), NaN and
    infinities are refused, and None passes only where the type allows it.
    """
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except _BadValue:
                raise                                   # the type fits, the value does not (NaN, a NUL): say so
            except ConfigError as err:
                if dataclasses.is_dataclass(option) and isinstance(value, dict):
                    raise err
        names = " or ".join(_type_name(o) for o in options if o is not type(None))
        raise ConfigError(f"{key} = {_show(value)}: must be {names}; fix the value's type", key=key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} = {_show(value)}: must be a table [{key}]; write it as a TOML table", key=key)
        return from_dict(typing.cast(type, tp), value, prefix=key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} = {_show(value)}: must be {_type_name(tp)}; write it as [a, b, ...]",
                              key=key)
        inner = typing.get_args(tp)[0]
        if dataclasses.is_dataclass(inner):             # [[scene.nodes]]: name each table by its index
            return tuple(_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
        return tuple(_coerce(v, inner, key) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:                       # an int beyond 1.8e308, from a JSON peer
                number = math.inf
            if not math.isfinite(number):
                raise _BadValue(f"{key} = {_show(value)}: must be a finite number; fix the value", key=key)
            return number
    elif tp is str:
        if isinstance(value, str):
            if "\0" in value:
                raise _BadValue(f"{key} = {_show(value)}: must be a string without NUL characters; "
                                  "remove the \\u0000", key=key)
            return value
    raise ConfigError(f"{key} = {_show(value)}: must be {_type_name(tp)}; fix the value's type", key=key)


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build the config dataclass ``cls`` from a mapping, strictly.

    Unknown keys (with a suggestion for a near miss), wrong types and values
    out of range raise :class:`ConfigError` whose ``key`` is the dotted path
    (``scene.nodes[1].position_m``); so does ``data`` that is not a mapping.
    Nothing else escapes for any ``data`` (a ``TypeError`` only when ``cls``
    is not a config dataclass, a programming error).
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a config dataclass")
    dotted = (prefix + ".") if prefix else ""
    if not isinstance(data, Mapping):
        where = prefix or "the configuration"
        raise ConfigError(f"{where} = {_show(data)}: must be a table of key = value pairs; write it as a TOML "
                          "table", key=prefix or None)
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"{dotted}{_show(key)}: a key must be a string; known keys: {', '.join(names)}",
                              key=dotted + _show(key))
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(names)}"
            shown = key if key.isprintable() and len(key) <= 120 else _show(key)
            raise ConfigError(f"{dotted}{shown}: unknown key; {hint}", key=dotted + shown)
        kwargs[key] = _coerce(value, hints[key], dotted + key)
    try:
        return cls(**kwargs)
    except ConfigError as err:
        if not prefix or (err.key or "").startswith(dotted):
            raise
        raise ConfigError(dotted + err.detail, key=dotted + (err.key or "")) from err


def _show(value: Any, limit: int = 120) -> str:
    """``repr(value)`` for a message, shortened (a huge list, string or int must not flood or break it)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"<an integer of {value.bit_length()} bits>"          # repr of > 4300 digits raises ValueError
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 4] + " ..."


#: Largest configuration file read, bytes: the shipped ones are under 10 kB.
MAX_CONFIG_BYTES = 1 << 20
#: Deepest dotted key path (``a.b.c = 1``, ``[a.b.c]``): tomllib needs memory quadratic in it.
_MAX_KEY_DEPTH = 32
_SEGMENT = r"(?:[A-Za-z0-9_-]+|\"[^\"\n]*\"|'[^'\n]*')"
_DEEP_KEY = re.compile(rf"(?:{_SEGMENT}[ \t]*\.[ \t]*){{{_MAX_KEY_DEPTH},}}{_SEGMENT}")


def loads(text: str, source: str = "<string>") -> Config:
    """Parse a configuration from TOML text.

    Raises
    ------
    ConfigError
        The text is not TOML, is larger than ``MAX_CONFIG_BYTES`` or nested
        too deeply, or holds an unknown key, a wrong type or a value out of
        range; the message names ``source``.
    """
    if not isinstance(text, str):
        raise ConfigError(f"configuration text of type {type(text).__name__}: must be a string (TOML); "
                          "decode it first", source=source)
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{len(text)} characters: allowed at most {MAX_CONFIG_BYTES} in a configuration; "
                          "is this the right file?", source=source)
    deep = _DEEP_KEY.search(text)
    if deep is not None:
        raise ConfigError(f"a key nested more than {_MAX_KEY_DEPTH} levels deep ({_show(deep.group(0), 60)}): "
                          "not a sdr_isac configuration; fix the key", source=source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not valid TOML: {err}; fix the syntax", source=source) from err
    except RecursionError as err:
        raise ConfigError("arrays or inline tables nested too deeply to read; not a sdr_isac configuration, "
                          "fix the file", source=source) from err
    try:
        return from_dict(Config, data)
    except ConfigError as err:
        raise err.with_source(source) from err


def load(path: str | Path) -> Config:
    """Read and validate a TOML configuration file.

    Raises
    ------
    ConfigError
        The file is missing or unreadable, is not TOML, or holds an unknown
        key, a wrong type or a value out of range; the message names the file.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"cannot read the configuration file ({err.strerror or err}); check the path",
                          source=str(p)) from err
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"larger than {MAX_CONFIG_BYTES} bytes: not a sdr_isac configuration; check the path",
                          source=str(p))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"not UTF-8 text (byte {err.start}): a TOML file is UTF-8; check the path or "
                          "re-save the file as UTF-8", source=str(p)) from err
    return loads(text, source=str(p))


def default() -> Config:
    """The built-in default configuration (``sdr_isac/default.toml``): a frame and a link."""
    return builtin("default")


def builtin(name: str) -> Config:
    """A configuration shipped inside the package: ``default`` or ``demo`` (the demo's scene)."""
    if name not in ("default", "demo"):
        raise ConfigError(f"built-in configuration {name!r}: allowed 'default' or 'demo'", key="config")
    text = resources.files("sdr_isac").joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return loads(text, source=f"sdr_isac/{name}.toml")
