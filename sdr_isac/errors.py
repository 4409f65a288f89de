"""The error family of sdr_isac.

Every error the toolkit raises on purpose is a :class:`SdrIsacError`, so a
caller can catch the whole family at once, or one member of it.  Errors about
values a user gave (a config key, an argument, an array) also derive from
:class:`ValueError`, so code that already catches ``ValueError`` keeps working.

A message names the field, the value with its unit, what is allowed and how
to fix it, for example::

    frame.numerology = 5: allowed 0 ... 4 (subcarrier spacing 15 kHz * 2**mu);
    set numerology to 0, 1, 2, 3 or 4
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

__all__ = [
    "SdrIsacError",
    "ConfigError",
    "InputError",
    "RadioError",
    "RadioUnavailableError",
    "RadioOverflowError",
    "RecordingError",
    "WireFormatError",
    "SensingError",
    "NonFiniteSampleError",
    "exit_status",
    "joined_list_values",
    "number_argument",
]


class SdrIsacError(Exception):
    """Base of every error raised on purpose by sdr_isac."""


class ConfigError(SdrIsacError, ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range.

    Parameters
    ----------
    message : str
        What is wrong, what is allowed and how to fix it.
    key : str, optional
        Dotted name of the offending key (``"frame.prs.comb_size"``).
    source : str, optional
        The file the value came from, when it came from one.
    """

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None):
        self.key = key
        self.source = source
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return prefix + self.detail

    def with_source(self, source: str) -> ConfigError:
        """Return a copy of this error that names the file ``source``."""
        return ConfigError(self.detail, key=self.key, source=source)


class InputError(SdrIsacError, ValueError):
    """An argument or array passed to a function has the wrong value, shape or dtype."""


class RadioError(SdrIsacError):
    """A radio could not be reached, configured or read."""


class RadioUnavailableError(RadioError):
    """A radio backend needs an optional dependency that is not installed."""


class RadioOverflowError(RadioError):
    """Several receive frames in a row had gaps (overflows, lost packets) and were dropped: the host did not keep
    up for a while.  The radio restarted its stream; a node agent counts it and tries again."""


class RecordingError(SdrIsacError):
    """A recording could not be written or read."""


class WireFormatError(SdrIsacError, ValueError):
    """A network message does not follow the wire format."""


class SensingError(SdrIsacError, ValueError):
    """A capture cannot be processed with the given frame description."""


class NonFiniteSampleError(SensingError, InputError):
    """Samples hold a NaN or an infinity (a host counts the capture's message as rejected)."""


def exit_status(command: Callable[[], int]) -> int:
    """Run a command-line command and return its exit status: an :class:`SdrIsacError`, or an ``OSError`` about a
    path the user gave (a missing folder, a folder where a file belongs, no permission), is one line on stderr
    and status 2; any other exception (a bug) keeps its traceback."""
    try:
        return int(command())
    except SdrIsacError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.filename is None:
            raise
        what = "is a folder, not a file" if isinstance(err, IsADirectoryError) else err.strerror
        print(f"error: {err.filename}: {what}; give a file path whose folder exists and is writable", file=sys.stderr)
        return 2


#: command-line options whose value is a comma-separated list that may start with a minus sign
_LIST_OPTIONS = ("--snr-db", "--area")


def joined_list_values(argv: list[str] | tuple[str, ...]) -> list[str]:
    """``argv`` with ``--snr-db -20,0`` written as ``--snr-db=-20,0`` (and ``--area`` likewise): argparse takes
    "-20,0" for an option of its own and says only "expected one argument"."""
    out: list[str] = []
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tokens[i] in _LIST_OPTIONS and len(nxt) > 1 and nxt[0] == "-" and (nxt[1].isdigit() or nxt[1] == "."):
            out.append(f"{tokens[i]}={nxt}")
            i += 2
            continue
        out.append(tokens[i])
        i += 1
    return out


def number_argument(unit: str, *, low: float = -math.inf, low_open: bool = False, high: float = math.inf,
                    hint: str = "") -> Callable[[str], float]:
    """An argparse type: a finite number of ``unit`` in ``[low, high]`` (``(low, high]`` when ``low_open``).

    Refused at parse time (argparse names the flag) with the value, its unit, what is allowed and ``hint`` (how to
    fix it), before a command starts processes or runs for minutes on a value it would refuse at the end.
    """
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value > low if low_open else value >= low) and value <= high):
            bounds = ([f"{'>' if low_open else '>='} {low:g} {unit}"] if math.isfinite(low) else []) + (
                [f"<= {high:g} {unit}"] if math.isfinite(high) else [])
            allowed = "a finite number " + (" and ".join(bounds) if bounds else f"of {unit}")
            raise argparse.ArgumentTypeError(f"{text!r} {unit}: allowed {allowed}" + (f"; {hint}" if hint else ""))
        return value
    return parse
