#!/usr/bin/env python3
"""Fuzz and fault-injection suite of sdr_isac: counts by outcome, per category.

Runs every part (``fuzz_stream.py``, ``fuzz_recording.py``, ``fuzz_config.py`` beside this file)
and prints one table of outcomes (clean library error / accepted and valid / crash / silent wrong /
hang; see ``_fuzzkit.py``).  The target is 0 crashes, 0 silent wrong results and 0 hangs in every
category; the exit status is 1 when any category misses it.

Usage::

    .venv/bin/python scripts/fuzz.py --quick          # a few minutes
    .venv/bin/python scripts/fuzz.py                  # the full counts (see docs/reliability.md)
    .venv/bin/python scripts/fuzz.py --only config,recording --seed 3
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _fuzzkit  # noqa: E402

PARTS = ("stream", "recording", "config")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (a few minutes in all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts to run, of {', '.join(PARTS)} (default all)")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"--only: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    tallies: list[_fuzzkit.Tally] = []
    for part in parts:
        module = importlib.import_module(f"fuzz_{part}")
        start = time.perf_counter()
        got = module.run(quick=args.quick, seed=args.seed)
        print(f"[{part}: {sum(t.total for t in got)} inputs in {time.perf_counter() - start:.0f} s]", flush=True)
        tallies.extend(got)
    print(_fuzzkit.table(tallies))
    bad = sum(t.bad for t in tallies)
    if bad:
        print(_fuzzkit.examples(tallies))
        print(f"FAIL: {bad} bad outcome(s) (crash / silent wrong / hang)")
        return 1
    print("OK: 0 crashes, 0 silent wrong results, 0 hangs in every category")
    return 0


if __name__ == "__main__":
    sys.exit(main())
