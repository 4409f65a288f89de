#!/usr/bin/env python3
"""Fuzz the SigMF recordings: mutated metadata through the reader and ``sdr-isac info``; SIGKILLed records.

Categories (full / ``--quick`` counts):

- ``sigmf reader`` (12,000 / 1,500): the recordings of ``offline_data/`` with mutated metadata (every key,
  edge values: null, +-Infinity, NaN, 0, -1, 2**62, 2**63-1, 2.5, true, "12", [], {}, [1, 2], ...; deleted
  keys, unknown keys, whole sections replaced, ``core:dataset`` pointing elsewhere, a data file linked from
  outside, truncated or padded data) opened with :meth:`Recording.open` and every capture read.  Accepted
  means every capture read and each value equals what the metadata says, checked here independently of the
  library: the samples decoded from the data file's bytes with the declared datatype, channels and header,
  the sample counts, ``isac:seq`` / ``t0_s`` / ``node_id`` / ``frame_offset`` (integers exactly: a bool,
  2.5 or "12" read as a number is silent_wrong), finite rate and frequency, the SHA-512, the data file
  inside the folder.  A recording that opens but whose captures cannot be read is silent_wrong.
- ``sdr-isac info`` (300 / 40): the same mutations through the command (a subprocess); exit 0 must mean
  the reader opens it, reads every capture with the values above, and the frame builds (as the replay
  radio builds it); a traceback is a crash.
- ``record SIGKILL`` (40 / 8): ``sdr-isac record`` (``hw_configs/sim_single_bs.toml``, 2 frames) over an
  existing recording (3 runs in 4) or a new name, SIGKILLed at a random moment (half of them near the
  end, where the files are committed): the target must be the complete old recording, or the complete
  new one, or absent (new names only), and after the next write no ``.part`` file may be left.

Usage::

    .venv/bin/python scripts/fuzz_recording.py --quick [--seed N]
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _fuzzkit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = ROOT / "offline_data"
SDR_ISAC = ROOT / ".venv" / "bin" / "sdr-isac"
RECORD_CONFIG = ROOT / "hw_configs" / "sim_single_bs.toml"
COUNTS = {"sigmf reader": (12_000, 1_500), "sdr-isac info": (300, 40), "record SIGKILL": (40, 8)}

#: Values every mutated key may get: the edges of each JSON type, and the wrong types.
EDGE_VALUES: list[Any] = [None, math.inf, -math.inf, math.nan, 0, -1, 1, 2**62, 2**63 - 1, 2**63, -(2**63), 2.5,
                          -0.0, 1e300, True, False, "12", "", "x", [], {}, [1, 2], {"a": 1}]
#: Values of particular keys that are of the right type but wrong or hostile.
KEY_VALUES: dict[str, list[Any]] = {
    "core:datatype": ["cf32_le", "cf64_le", "ci16_le", "ci8", "ci8_le", "ri16_le", "cu8", "CF32_LE", "cf32_be"],
    "core:dataset": ["../../../etc/hostname", "/etc/hostname", "rec.sigmf-meta", "rec.sigmf-data", "other",
                     "sub/../rec.sigmf-data", "../outside.sigmf-data"],
    "core:sha512": ["0" * 128, "f" * 128, "0" * 129, "g" * 128, "0" * 127],
    "core:num_channels": [2, 3, 4, 8, 65536, 65537],
    "core:sample_rate": [1e12, 1.0000001e12, 1e-300, 5e-324],
    "core:frequency": [1e12, 1.0000001e12, -1.0, -1e12],
    "core:header_bytes": [4, 8, 16, 2**40],
    "core:trailing_bytes": [4, 8, 16, 2**40],
    "core:metadata_only": [True, False],
    "isac:schema": [1, 2, 0],
    "isac:t0_s": [1e12, 1.0000001e12, -1e12, 1e-320],
}
UNKNOWN_KEYS = ["isac:sequ", "isac:bogus", "core:bogus", "xyz:abc", "truth:extra", "isac:t0"]


# ---- mutations --------------------------------------------------------------------------
def key_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (tuple of keys and indices) of a JSON value, depth first."""
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append(prefix + (k,))
            out.extend(key_paths(v, prefix + (k,)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.append(prefix + (i,))
            out.extend(key_paths(v, prefix + (i,)))
    return out


def is_central(path: tuple[Any, ...]) -> bool:
    """A path the reader interprets (not deep inside truth or free metadata)."""
    if len(path) >= 3 and path[0] == "annotations" and isinstance(path[2], str) and path[2].startswith("truth:"):
        return len(path) == 3
    if len(path) >= 3 and path[0] == "annotations" and path[2] == "isac:metadata":
        return len(path) == 3
    return True


def get_parent(doc: Any, path: tuple[Any, ...]) -> tuple[Any, Any]:
    node = doc
    for key in path[:-1]:
        node = node[key]
    return node, path[-1]


def perturb(key: Any, value: Any, rng: random.Random) -> Any:
    """A value of ``key``: an edge value, a key-specific one, or ``value`` changed a little."""
    choice = rng.random()
    if isinstance(key, str) and key in KEY_VALUES and choice < 0.4:
        return rng.choice(KEY_VALUES[key])
    if choice < 0.8:
        return copy.deepcopy(rng.choice(EDGE_VALUES))
    if isinstance(value, bool):
        return not value
    if isinstance(value, int) and abs(value) < 2**1000:
        return rng.choice([value + 1, value - 1, 2 * value, -value, value + 0.5, float(value)])
    if isinstance(value, float) and math.isfinite(value):
        return rng.choice([2 * value, -value, value + 1e-3, value / 3, int(value)])
    if isinstance(value, str):
        if key == "core:sha512" and value:
            i = rng.randrange(len(value))
            return value[:i] + ("0" if value[i] != "0" else "1") + value[i + 1:]
        return rng.choice(["", value + "x", value[:-1], value.upper(), "../" + value])
    return copy.deepcopy(rng.choice(EDGE_VALUES))


def mutate(doc: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """1 to 3 mutations of a metadata document; returns it, their descriptions and file actions.

    File actions: ``{"data": "truncate" | "pad" | "outside-link", "bytes": n}`` for changes of the data file.
    """
    doc = copy.deepcopy(doc)
    notes: list[str] = []
    actions: dict[str, Any] = {}
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        paths = key_paths(doc)
        central = [p for p in paths if is_central(p)]
        op = rng.random()
        if op < 0.06:
            kind = rng.choice(["truncate", "pad", "outside-link"])
            actions = {"data": kind, "bytes": rng.choice([1, 3, 4, 8, 16, 4096])}
            notes.append(f"data file: {kind} {actions['bytes']}")
            continue
        if op < 0.1:
            section = rng.choice(["global", "captures", "annotations"])
            doc[section] = copy.deepcopy(rng.choice(EDGE_VALUES))
            notes.append(f"{section} = {doc[section]!r}")
            continue
        if not paths:
            continue
        path = rng.choice(central if central and rng.random() < 0.8 else paths)
        try:
            parent, key = get_parent(doc, path)
        except (KeyError, IndexError, TypeError):
            continue
        if op < 0.22:
            if isinstance(parent, dict):
                del parent[key]
            else:
                parent.pop(key)
            notes.append(f"delete {path}")
        elif op < 0.3:
            target = parent if isinstance(parent, dict) else None
            if target is None:
                continue
            name = rng.choice(UNKNOWN_KEYS)
            target[name] = copy.deepcopy(rng.choice(EDGE_VALUES))
            notes.append(f"add {path[:-1] + (name,)} = {target[name]!r}")
        else:
            parent[key] = perturb(key, parent[key], rng)
            notes.append(f"set {path} = {parent[key]!r}")
    return doc, notes, actions


# ---- recordings on disk ------------------------------------------------------------------
class Sources:
    """The offline recordings, copied once into ``work``; their metadata and the SHA-512 of their data."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.items: list[tuple[str, dict[str, Any], Path, str]] = []
        (work / "src").mkdir(parents=True, exist_ok=True)
        for meta in sorted(OFFLINE.glob("*.sigmf-meta")):
            name = meta.name.removesuffix(".sigmf-meta")
            data = work / "src" / f"{name}.sigmf-data"
            shutil.copyfile(meta.with_name(f"{name}.sigmf-data"), data)
            doc = json.loads(meta.read_text())
            digest = hashlib.sha512(data.read_bytes()).hexdigest()
            self.items.append((name, doc, data, digest))
        (work / "outside.sigmf-data").write_bytes(bytes(range(256)) * 64)   # a file outside every case folder

    def case(self, index: int, rng: random.Random) -> tuple[Path, dict[str, Any], list[str]]:
        """A fresh folder ``work/case<i>`` with ``rec.sigmf-meta`` (mutated) and ``rec.sigmf-data``."""
        name, doc, data, _ = rng.choice(self.items)
        folder = self.work / f"case{index}"
        folder.mkdir()
        mutated, notes, actions = mutate(doc, rng)
        target = folder / "rec.sigmf-data"
        kind = actions.get("data")
        if kind == "outside-link":
            target.symlink_to(self.work / "outside.sigmf-data")
        elif kind in ("truncate", "pad"):
            raw = data.read_bytes()
            n = actions["bytes"]
            target.write_bytes(raw[:-n] if kind == "truncate" else raw + bytes(n))
        else:
            os.link(data, target)
        (folder / "rec.sigmf-meta").write_text(json.dumps(mutated, allow_nan=True))
        return folder / "rec.sigmf-meta", json.loads((folder / "rec.sigmf-meta").read_text()), [name] + notes


# ---- the oracle: what an accepted recording must read as ----------------------------------
def is_int(v: Any) -> bool:
    """A JSON integer (as JSON Schema says: 2.0 counts; a bool, 2.5 or "2" does not)."""
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())


def is_number(v: Any) -> bool:
    """A finite JSON number (never a bool or a string)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:                                # an integer beyond the float range
        return False


def _decode(raw: bytes, datatype: str, channels: int) -> np.ndarray:
    """Independent decoding of SigMF interleaved samples to complex64 ``(C, n)``."""
    name = datatype.lower()
    kind, bits = name[1], int(name[2:].split("_")[0])
    order = ">" if name.endswith("_be") else "<" if bits > 8 else "|"
    if kind == "f":
        arr = np.frombuffer(raw, dtype=f"{order}c{bits // 4}").reshape(-1, channels)
        return arr.T.astype(np.complex64)
    ints = np.frombuffer(raw, dtype=f"{order}{kind}{bits // 8}").reshape(-1, channels, 2).astype(np.float64)
    if kind == "u":                                      # offset binary: (v - (2**bits - 1) / 2) / ((2**bits - 1) / 2)
        half = (2.0**bits - 1) / 2
        values = (ints - half) / half
    else:
        values = ints * 2.0 ** -(bits - 1)
    return (values[..., 0] + 1j * values[..., 1]).T.astype(np.complex64)


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _holds_non_finite(data_path: Path, doc: dict[str, Any]) -> bool:
    """Whether the data file, decoded independently with the declared datatype and channels, holds NaN or inf."""
    glob = doc["global"]
    datatype, channels = glob.get("core:datatype"), glob.get("core:num_channels", 1)
    if not isinstance(datatype, str) or not is_int(channels) or channels < 1:
        return False
    try:
        raw = Path(data_path).read_bytes()
        width = int(datatype.lower()[2:].split("_")[0]) // 8 * 2 * channels
        return not bool(np.all(np.isfinite(_decode(raw[:len(raw) - len(raw) % width], datatype, channels))))
    except (ValueError, OSError):
        return False


def check_recording(rec: Any, meta_path: Path, doc: dict[str, Any], *, build_frame: bool = False) -> str:
    """"" if the open recording ``rec`` reads exactly as the metadata ``doc`` says, else what differs.

    Reads every capture (an error of the library family while reading is a difference: the recording
    opened but cannot be read).
    """
    from sdr_isac.config import FrameConfig, from_dict
    from sdr_isac.errors import SdrIsacError

    try:                                                 # read first: other exceptions are crashes
        read = [(rec.capture(i), rec.truth(i)) for i in range(rec.num_captures)]
    except SdrIsacError as err:
        if "allowed finite I/Q values" in str(err) and _holds_non_finite(rec.data_path, doc):
            return ""        # the bytes, decoded as declared (a float type relabelled, say), hold NaN or inf: the
            #                  reader refuses that capture when it is read, naming the sample, as documented
        return f"opened, but a capture cannot be read: {err}"
    glob = doc["global"]
    folder = meta_path.parent.resolve()
    rate = glob.get("core:sample_rate")
    if not (is_number(rate) and rate > 0 and rec.sample_rate_hz == float(rate)):
        return f"sample rate {rec.sample_rate_hz!r} for core:sample_rate {rate!r}"
    channels = glob.get("core:num_channels", 1)
    if not (is_int(channels) and channels >= 1 and rec.num_channels == int(channels)):
        return f"num_channels {rec.num_channels!r} for core:num_channels {channels!r}"
    datatype = glob.get("core:datatype")
    if not isinstance(datatype, str) or rec.datatype != re.sub(r"^(c[iu]8)_(le|be)$", r"\1", datatype.lower()):
        return f"datatype {rec.datatype!r} for core:datatype {datatype!r}"
    segs = doc["captures"]
    freqs = [c["core:frequency"] for c in segs if "core:frequency" in c]
    if not all(is_number(f) and f >= 0 for f in freqs):
        return f"core:frequency values {freqs[:4]!r} accepted"
    first_hz = float(freqs[0]) if freqs else 0.0
    if rec.center_freq_hz != first_hz:
        return f"centre frequency {rec.center_freq_hz!r} for core:frequency values {freqs[:4]!r}"
    seg_starts = [int(c["core:sample_start"]) for c in segs]
    seg_hz = [float(c.get("core:frequency", first_hz)) for c in segs]      # a segment without one: the first
    dataset = glob.get("core:dataset")
    default_data = meta_path.name.removesuffix(".sigmf-meta") + ".sigmf-data"
    expected_data = meta_path.parent / (dataset if isinstance(dataset, str) else default_data)
    resolved = expected_data.resolve()
    if not resolved.is_relative_to(folder) or resolved == meta_path.resolve():
        return f"data file {resolved} is outside {folder} (or the metadata itself), yet accepted"
    if rec.data_path.resolve() != resolved:
        return f"read {rec.data_path} but the metadata names {expected_data}"
    raw = resolved.read_bytes()
    sha = glob.get("core:sha512")
    if sha is not None and (not isinstance(sha, str) or sha.lower() != hashlib.sha512(raw).hexdigest()):
        return f"core:sha512 {str(sha)[:20]}... does not match the data file, yet accepted"
    header = doc["captures"][0].get("core:header_bytes", 0) if doc["captures"] else 0
    trailing = glob.get("core:trailing_bytes", 0)
    if not (is_int(header) and is_int(trailing) and header >= 0 and trailing >= 0):
        return f"header {header!r} / trailing {trailing!r} bytes accepted"
    payload = raw[int(header):len(raw) - int(trailing)]
    frame_bytes = int(rec.datatype[2:].split("_")[0]) // 4 * rec.num_channels
    if len(raw) < header + trailing or len(payload) % frame_bytes:
        return f"{len(payload)} bytes of samples are not a whole number of {frame_bytes}-byte samples"
    samples = _decode(payload, rec.datatype, rec.num_channels)
    num_samples = samples.shape[1]
    if rec.num_samples != num_samples:
        return f"num_samples {rec.num_samples} for {num_samples} in the file"
    node = glob.get("isac:node") or {}
    radio = glob.get("isac:radio") or {}
    if not isinstance(node, dict) or rec.node != node or not isinstance(radio, dict) or rec.radio != radio:
        return f"node {rec.node!r:.60} / radio {rec.radio!r:.60} for isac:node / isac:radio of other types"
    stored_frame = glob.get("isac:frame")
    try:
        want_frame = from_dict(FrameConfig, _drop_none(stored_frame)) if stored_frame is not None else None
    except SdrIsacError:
        return "isac:frame is invalid, yet accepted"
    if rec.frame != want_frame:
        return f"frame {rec.frame} for isac:frame {stored_frame!r:.80}"
    default_node = node.get("id", "node0")
    anns = [a for a in doc["annotations"] if any(str(k).startswith(("isac:", "truth:")) for k in a)]
    expected = []
    for a in anns:
        start, count, seq = a.get("core:sample_start"), a.get("core:sample_count"), a.get("isac:seq")
        t0 = a.get("isac:t0_s", start / float(rate) if is_int(start) else None)
        node_id = a.get("isac:node_id", default_node)
        offset = a.get("isac:frame_offset", 0)
        if not (is_int(start) and is_int(count) and is_int(seq) and is_number(t0) and isinstance(node_id, str)
                and is_int(offset) and start >= 0 and count >= 0 and seq >= 0 and offset >= 0
                and isinstance(a.get("isac:metadata", {}), dict)):
            return f"capture annotation {a!r:.200} has values of the wrong type or range, yet accepted"
        truth = {k.removeprefix("truth:"): v for k, v in a.items() if k.startswith("truth:")}
        expected.append((int(start), int(count), int(seq), float(t0), node_id, int(offset),
                         a.get("isac:metadata", {}), truth))
    if not expected:
        if "isac:schema" in glob and num_samples:
            return "an isac: recording with samples but no capture annotation, yet accepted"
        if len(segs) > 1:                                # a foreign file: one capture per capture segment
            if seg_starts[-1] > num_samples:
                return "a capture segment starts beyond the data file, yet accepted"
            ends = seg_starts[1:] + [num_samples]
            spans = ([(0, seg_starts[0])] if seg_starts[0] > 0 else []) + \
                [(a, b - a) for a, b in zip(seg_starts, ends) if b > a]
            expected = [(a, n, i, a / float(rate), default_node, 0, {}, {}) for i, (a, n) in enumerate(spans)]
        else:
            expected = [(0, num_samples, 0, 0.0, default_node, 0, {}, {})] if num_samples else []
    elif "isac:schema" in glob and max(s + c for s, c, *_ in expected) != num_samples:
        return "the captures do not end at the end of the data file, yet accepted"
    if rec.num_captures != len(expected):
        return f"{rec.num_captures} captures for {len(expected)} capture annotations"
    for i, (start, count, seq, t0, node_id, offset, metadata, truth) in enumerate(expected):
        if start + count > num_samples:
            return f"capture {i} claims samples beyond the data file, yet accepted"
        capture, got_truth = read[i]
        k = max([j for j, s in enumerate(seg_starts) if s <= start], default=0)
        want_hz = seg_hz[k] if segs else first_hz
        if any(seg_hz[j] != want_hz for j, s in enumerate(seg_starts) if start < s < start + count):
            return f"capture {i} straddles a change of core:frequency, yet accepted"
        if capture.center_freq_hz != want_hz:
            return f"capture {i}: centre frequency {capture.center_freq_hz!r} Hz for its segment's {want_hz!r} Hz"
        want = samples[:, start:start + count]
        if capture.iq.dtype != np.complex64 or capture.iq.shape != want.shape:
            return f"capture {i}: iq {capture.iq.dtype} {capture.iq.shape} for {want.shape}"
        if not np.array_equal(capture.iq, want):
            return f"capture {i}: samples differ from the data file"
        if not (capture.seq == seq and type(capture.seq) is int and capture.t0_s == t0 and capture.node_id == node_id
                and capture.frame_offset == offset and type(capture.frame_offset) is int
                and capture.metadata == metadata and got_truth == truth):
            return (f"capture {i}: seq {capture.seq!r} t0 {capture.t0_s!r} node {capture.node_id!r} offset "
                    f"{capture.frame_offset!r} for {seq!r} {t0!r} {node_id!r} {offset!r} (or metadata / truth)")
        if not (math.isfinite(capture.sample_rate_hz) and capture.sample_rate_hz > 0
                and math.isfinite(capture.center_freq_hz) and capture.center_freq_hz >= 0):
            return f"capture {i}: rate {capture.sample_rate_hz} Hz, frequency {capture.center_freq_hz} Hz"
    if build_frame and rec.frame is not None:           # what the replay radio does with it
        from sdr_isac.waveform import IsacFrame
        try:
            IsacFrame(rec.frame)
        except SdrIsacError as err:
            return f"the recorded frame does not build: {err}"
    return ""


# ---- categories -----------------------------------------------------------------------------
def fuzz_reader(count: int, seed: int, work: Path, sources: Sources) -> _fuzzkit.Tally:
    """Mutated recordings through :meth:`Recording.open` and every capture."""
    from sdr_isac.recording import Recording

    tally = _fuzzkit.Tally("sigmf reader")
    rng = random.Random(seed)
    for i in range(count):
        meta, doc, notes = sources.case(i, rng)
        label = f"case {i}: {'; '.join(notes)}"
        problem: list[str] = []

        def valid(rec: Any, meta: Path = meta, doc: dict[str, Any] = doc, problem: list[str] = problem) -> bool:
            with rec:
                problem.append(check_recording(rec, meta, doc))
            return not problem[-1]

        outcome = tally.call(lambda meta=meta: Recording.open(meta), valid=valid, label=label)
        if outcome == "silent_wrong" and tally.examples.get("silent_wrong") == label:
            tally.examples["silent_wrong"] = f"{label}\n{problem[-1]}"
        shutil.rmtree(meta.parent)
    return tally


def fuzz_info(count: int, seed: int, work: Path, sources: Sources) -> _fuzzkit.Tally:
    """Mutated recordings through ``sdr-isac info``; exit 0 must mean readable as the metadata says."""
    from sdr_isac.errors import SdrIsacError
    from sdr_isac.recording import Recording

    tally = _fuzzkit.Tally("sdr-isac info")
    rng = random.Random(seed + 7_919)
    for i in range(count):
        meta, doc, notes = sources.case(100_000 + i, rng)
        label = f"case {i}: {'; '.join(notes)}"

        def valid(proc: subprocess.CompletedProcess[str], meta: Path = meta, doc: dict[str, Any] = doc) -> bool:
            try:
                with Recording.open(meta) as rec:
                    problem = check_recording(rec, meta, doc, build_frame=True)
                    shown = f"captures    {rec.num_captures} " in proc.stdout
            except SdrIsacError as err:
                problem, shown = f"info exit 0 but the reader refuses it: {err}", True
            if problem or not shown:
                print(f"  info accepted {meta}: {problem or 'capture count not shown'}", file=sys.stderr)
            return not problem and shown

        tally.run([str(SDR_ISAC), "info", str(meta)], timeout_s=60, valid=valid, label=label)
        shutil.rmtree(meta.parent)
    return tally


KILL_STATES: Counter[str] = Counter()


def _snapshot(base: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in base.parent.iterdir() if p.name.startswith(base.name + ".sigmf")}


def _kill_state(target: Path, old: dict[str, bytes] | None, frames: int) -> str:
    """``old`` / ``new`` / ``absent`` if the target is one of them, else what is wrong (starts with "bad")."""
    from sdr_isac.errors import SdrIsacError
    from sdr_isac.recording import Recording

    meta = target.with_name(target.name + ".sigmf-meta")
    data = target.with_name(target.name + ".sigmf-data")
    if not meta.exists():
        if old is not None:
            return "bad: the old recording is gone and no new one is there"
        return "absent" if not data.exists() else "bad: a data file without metadata blocks the next write"
    if old is not None and _snapshot(target) == old:
        with Recording.open(meta) as rec:
            rec.capture(rec.num_captures - 1)
        return "old"
    try:
        with Recording.open(meta) as rec:
            if rec.num_captures != frames or rec.datatype != "cf32_le":
                return f"bad: {rec.num_captures} {rec.datatype} captures: neither the old nor the new recording"
            for i in range(rec.num_captures):
                rec.capture(i)
            via = " (read through core:dataset)" if rec.data_path != data else ""
    except SdrIsacError as err:
        return f"bad: the target does not open: {err}"
    return "new" + via


def fuzz_record_kill(count: int, seed: int, work: Path) -> _fuzzkit.Tally:
    """``sdr-isac record`` SIGKILLed at random moments; each target old, new or absent; no .part after a write."""
    from sdr_isac import Capture
    from sdr_isac.recording import RecordingWriter

    tally = _fuzzkit.Tally("record SIGKILL")
    rng = random.Random(seed + 104_729)
    folder = work / "kill"
    folder.mkdir()
    frames = 2
    argv = [str(SDR_ISAC), "record", "--config", str(RECORD_CONFIG), "--overwrite", "--frames", str(frames)]
    old_base = folder / "old"
    ref = subprocess.run(argv[:-2] + ["--frames", "1", "--datatype", "cf64_le", "--out", str(old_base)],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if ref.returncode != 0:
        tally.add("crash", f"the reference recording failed: {ref.stderr[-1500:]}")
        return tally
    old_files = _snapshot(old_base)
    start = time.monotonic()
    full = subprocess.run(argv + ["--out", str(folder / "timing")], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    run_s = time.monotonic() - start
    if full.returncode != 0:
        tally.add("crash", f"an unkilled record failed: {full.stderr[-1500:]}")
        return tally
    for i in range(count):
        target = folder / f"t{i}"
        overwrite = rng.random() < 0.75
        if overwrite:
            for name, raw in old_files.items():
                (folder / name.replace("old", f"t{i}", 1)).write_bytes(raw)
        old = _snapshot(target) if overwrite else None
        delay = rng.uniform(0.2, 1.0) * run_s if rng.random() < 0.5 else run_s + rng.uniform(-0.25, 0.05)
        label = f"run {i}: {'over an old recording' if overwrite else 'new name'}, SIGKILL after {delay:.3f} s"
        proc = subprocess.Popen(argv + ["--out", str(target)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True)
        try:
            out, err = proc.communicate(timeout=max(delay, 0.0))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            try:
                out, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                tally.add("hang", f"{label}: still running 30 s after SIGKILL")
                continue
        if proc.returncode not in (0, -signal.SIGKILL) or "Traceback" in (out or "") + (err or ""):
            tally.add("crash", f"{label}: rc {proc.returncode}\n{(err or '')[-1500:]}")
            continue
        try:
            state = _kill_state(target, old, frames)
            parts = [p.name for p in folder.iterdir() if p.name.startswith(f".t{i}.")]
            with RecordingWriter(target, sample_rate_hz=1e6, center_freq_hz=1e9, num_channels=1,
                                 overwrite=True) as w:                  # the next write
                w.append(Capture(np.zeros((1, 8), np.complex64), 1e6, 1e9))
            left = [p.name for p in folder.iterdir() if p.name.startswith(f".t{i}.")]
        except Exception:                                   # noqa: BLE001  counting crashes is the point
            import traceback
            tally.add("crash", f"{label}\n{traceback.format_exc()}")
            continue
        KILL_STATES[state.split(" (")[0] if not state.startswith("bad") else "bad"] += 1
        if state.startswith("bad") or left:
            tally.add("silent_wrong", f"{label}: {state}; temporary files before / after the next write: "
                                      f"{parts} / {left}")
        else:
            tally.add("accepted_valid")
        for p in folder.glob(f"t{i}.*"):
            p.unlink()
    return tally


def run(quick: bool, seed: int = 0) -> list[_fuzzkit.Tally]:
    """Every category of this part, with the full or the ``quick`` counts."""
    n = {name: counts[1 if quick else 0] for name, counts in COUNTS.items()}
    work = Path(tempfile.mkdtemp(prefix="fuzz_recording_"))
    try:
        sources = Sources(work)
        KILL_STATES.clear()
        tallies = [fuzz_reader(n["sigmf reader"], seed, work, sources),
                   fuzz_info(n["sdr-isac info"], seed, work, sources),
                   fuzz_record_kill(n["record SIGKILL"], seed, work)]
        print(f"record SIGKILL: the target after the kill: {dict(sorted(KILL_STATES.items()))}")
        return tallies
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":           # the same table and exit status as scripts/fuzz.py --only recording
    import fuzz

    sys.exit(fuzz.main(["--only", "recording", *sys.argv[1:]]))
