"""Shared bookkeeping of the fuzz scripts (``scripts/fuzz.py`` and its ``fuzz_*.py`` parts).

Every fuzzed input ends in exactly one outcome:

- ``clean_error``: refused with an error of the library's family (``SdrIsacError``), or a
  command that exits non-zero with a one-line message and no traceback;
- ``accepted_valid``: accepted, and what came out checks against the input (the caller's
  ``valid`` predicate);
- ``crash``: any other exception, or a command that prints a traceback / dies of a signal;
- ``silent_wrong``: accepted, but what came out is wrong (``valid`` returned False);
- ``hang``: did not finish within its time limit.

The target of every category is 0 crashes, 0 silent wrong results and 0 hangs.
"""

from __future__ import annotations

import subprocess
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

OUTCOMES = ("clean_error", "accepted_valid", "crash", "silent_wrong", "hang")
BAD = ("crash", "silent_wrong", "hang")


@dataclass
class Tally:
    """Counts of outcomes of one fuzz category, with the first example of each bad outcome."""

    name: str
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, outcome: str, example: str = "") -> str:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not one of {OUTCOMES}")
        self.counts[outcome] += 1
        if outcome in BAD and outcome not in self.examples:
            self.examples[outcome] = example[:2000]
        return outcome

    def call(self, fn: Callable[[], Any], *, valid: Callable[[Any], bool] = lambda _: True,
             expected: tuple[type[BaseException], ...] | None = None, label: str = "") -> str:
        """Run ``fn()`` and count its outcome (``expected``: the clean error types, default SdrIsacError)."""
        if expected is None:
            from sdr_isac.errors import SdrIsacError
            expected = (SdrIsacError,)
        try:
            result = fn()
        except expected:
            return self.add("clean_error")
        except Exception:                                   # noqa: BLE001  counting crashes is the point
            return self.add("crash", f"{label}\n{traceback.format_exc()}")
        try:
            ok = bool(valid(result))
        except Exception:                                   # noqa: BLE001
            return self.add("crash", f"{label} (in the validity check)\n{traceback.format_exc()}")
        return self.add("accepted_valid" if ok else "silent_wrong", label)

    def run(self, argv: Sequence[str], *, timeout_s: float, valid: Callable[[subprocess.CompletedProcess[str]], bool]
            = lambda _: True, label: str = "", **kwargs: Any) -> str:
        """Run a command and count its outcome (non-zero exit without a traceback is a clean error)."""
        try:
            proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s,
                                  stdin=subprocess.DEVNULL, **kwargs)
        except subprocess.TimeoutExpired:
            return self.add("hang", f"{label}: {' '.join(argv)} ran past {timeout_s} s")
        text = proc.stdout + proc.stderr
        if proc.returncode < 0 or "Traceback (most recent call last)" in text:
            return self.add("crash", f"{label}: rc {proc.returncode}\n{text[-1500:]}")
        if proc.returncode != 0:
            return self.add("clean_error")
        try:
            ok = bool(valid(proc))
        except Exception:                                   # noqa: BLE001
            return self.add("crash", f"{label} (in the validity check)\n{traceback.format_exc()}")
        return self.add("accepted_valid" if ok else "silent_wrong", f"{label}\n{text[-1500:]}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def bad(self) -> int:
        return sum(self.counts[o] for o in BAD)


def table(tallies: Sequence[Tally]) -> str:
    """The counts as a fixed-width table, one row per category."""
    width = max([len("category")] + [len(t.name) for t in tallies])
    head = f"{'category':<{width}}  " + "  ".join(f"{o:>14}" for o in OUTCOMES) + f"  {'total':>8}"
    rows = [head, "-" * len(head)]
    for t in tallies:
        rows.append(f"{t.name:<{width}}  " + "  ".join(f"{t.counts[o]:>14}" for o in OUTCOMES) + f"  {t.total:>8}")
    return "\n".join(rows)


def examples(tallies: Sequence[Tally]) -> str:
    """The first example of every bad outcome, for the report."""
    out = []
    for t in tallies:
        for outcome, text in t.examples.items():
            out.append(f"--- {t.name}: first {outcome} ---\n{text}")
    return "\n".join(out)
