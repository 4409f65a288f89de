"""The base of every config section: declared ranges, field checks, strict parsing, endpoint grammar.

Every section module (``frame``, ``radio``, ``scene``, ``sensing``, ``stream``, ``fusion``)
builds its frozen dataclasses from these pieces: :class:`Bounds` and ``_num`` declare a numeric
field's documented range, ``_check_fields`` enforces them in ``__post_init__``, ``_fail`` /
``_check_choice`` / ``_check_range`` word the messages (field, value with its unit, what is
allowed, how to fix it), and :func:`from_dict` / ``_coerce`` build a section from a TOML or
JSON mapping, rejecting unknown keys ("did you mean ...?") and values of the wrong type.

A section class may define a classmethod ``_section_type(data)`` that returns the concrete
(sub)class to build for ``data``: :func:`from_dict` calls it first (the ``[radio]`` section picks
its backend's section by ``kind`` this way, see :mod:`sdr_isac.config.radio`).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import numbers
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sdr_isac.errors import ConfigError

__all__ = ["Bounds", "bounded_field", "field_bounds", "from_dict"]

#: Largest seed: a 64-bit signed integer, as numpy and JSON readers carry it.
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


def bounded_field(default: Any, low: float, high: float, unit: str = "", **flags: bool) -> Any:
    """A config dataclass field with ``default`` whose numbers must lie in ``Bounds(low, high, unit, **flags)``.

    For sections defined outside this package (a new radio backend's section): every numeric
    field declares its documented range this way, and ``__post_init__`` calls the base
    section's checks, which enforce it.
    """
    return _num(default, low, high, unit, **flags)


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
        # each element named by its index ([[scene.nodes]] tables, and the numbers of a list alike)
        return tuple(_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
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

    A section class with a classmethod ``_section_type(data)`` is asked first which
    (sub)class to build for ``data`` (``[radio]``: the section of its ``kind``), and one
    with ``_unknown_key_hint(key)`` may explain an unknown key (a key of another kind).
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a config dataclass")
    dotted = (prefix + ".") if prefix else ""
    if not isinstance(data, Mapping):
        where = prefix or "the configuration"
        raise ConfigError(f"{where} = {_show(data)}: must be a table of key = value pairs; write it as a TOML "
                          "table", key=prefix or None)
    section: Any = cls
    select = getattr(cls, "_section_type", None)
    if select is not None:
        try:
            section = select(data)
        except ConfigError as err:
            raise _prefixed(err, prefix) from err
    hints = _hints(section)
    names = [f.name for f in dataclasses.fields(section) if f.init]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"{dotted}{_show(key)}: a key must be a string; known keys: {', '.join(names)}",
                              key=dotted + _show(key))
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(names)}"
            explain = getattr(section, "_unknown_key_hint", None)
            other = explain(key) if explain is not None else None
            hint = other or hint
            shown = key if key.isprintable() and len(key) <= 120 else _show(key)
            raise ConfigError(f"{dotted}{shown}: unknown key; {hint}", key=dotted + shown)
        kwargs[key] = _coerce(value, hints[key], dotted + key)
    try:
        return typing.cast(T, section(**kwargs))
    except ConfigError as err:
        if not prefix or (err.key or "").startswith(dotted):
            raise
        raise _prefixed(err, prefix) from err


def _prefixed(err: ConfigError, prefix: str) -> ConfigError:
    """``err`` with its key and message under the section ``prefix`` (``kind = 3`` -> ``radio.kind = 3``)."""
    if not prefix or (err.key or "").startswith(prefix + "."):
        return err
    return ConfigError(f"{prefix}.{err.detail}", key=f"{prefix}.{err.key or ''}")


def _show(value: Any, limit: int = 120) -> str:
    """``repr(value)`` for a message, shortened (a huge list, string or int must not flood or break it)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"<an integer of {value.bit_length()} bits>"          # repr of > 4300 digits raises ValueError
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 4] + " ..."
