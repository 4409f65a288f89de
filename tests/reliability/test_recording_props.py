"""Properties of SigMF recordings under mutated metadata and killed writers (issue 13, items 3-7).

The property: a recording either does not open (:class:`RecordingError`), or every capture reads and each
value is what the metadata says.  "What the metadata says" is checked by ``check_recording`` of
``scripts/fuzz_recording.py`` (the same oracle as the fuzz suite), independently of the library: samples
decoded from the data file's bytes, integers exactly (a bool, 2.5 or "12" read as a number fails), finite
rate and frequency, the SHA-512, the data file inside the folder.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sdr_isac.errors import RecordingError
from sdr_isac.recording import Recording

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import fuzz_recording as fz  # noqa: E402

SOURCES = {p.name.removesuffix(".sigmf-meta"): json.loads(p.read_text())
           for p in sorted((REPO / "offline_data").glob("*.sigmf-meta"))}
SMALL = "multiband_high"                     # 0.6 MB of samples: quick to hash and read

#: The edges of every JSON type and the wrong types, for every key (the issue's list and more).
EDGES: list[Any] = [None, math.inf, -math.inf, math.nan, 0, -1, 2**62, 2**63 - 1, 2**63, 2.5, -0.0, 1e300, True,
                    False, "12", "", [], {}, [1, 2], {"a": 1}]


def central_paths(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [p for p in fz.key_paths(doc) if fz.is_central(p)]


def materialise(tmp: Path, name: str, doc: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """``tmp/r.sigmf-meta`` (``doc``, NaN and Infinity as Python writes them) + the samples (linked or copied)."""
    tmp.mkdir(parents=True, exist_ok=True)
    data = tmp / "r.sigmf-data"
    source = REPO / "offline_data" / f"{name}.sigmf-data"
    if not data.exists():
        try:
            os.link(source, data)
        except OSError:                                   # another file system: copy
            shutil.copyfile(source, data)
    meta = tmp / "r.sigmf-meta"
    meta.write_text(json.dumps(doc, allow_nan=True))
    return meta, json.loads(meta.read_text())


def outcome(meta: Path, doc: dict[str, Any]) -> str:
    """"refused" (RecordingError), "read" (every capture reads as ``doc`` says), else the difference."""
    try:
        rec = Recording.open(meta)
    except RecordingError:
        return "refused"
    with rec:
        return fz.check_recording(rec, meta, doc) or "read"


def path_index(name: str, path: tuple[Any, ...]) -> int:
    """The index of ``path`` among the central paths of recording ``name`` (for @example)."""
    return central_paths(SOURCES[name]).index(path)


def apply(doc: dict[str, Any], ops: list[tuple[str, int, Any]]) -> dict[str, Any]:
    """Set, delete or add keys at central paths (an index modulo the paths there are now)."""
    doc = copy.deepcopy(doc)
    for op, index, value in ops:
        paths = central_paths(doc)
        if not paths:
            break
        parent, key = fz.get_parent(doc, paths[index % len(paths)])
        if op == "set":
            parent[key] = copy.deepcopy(value)
        elif op == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[f"isac:{key}x" if isinstance(key, str) and key.startswith("isac:") else "xyz:unknown"] = value
    return doc


def _key_values() -> list[Any]:
    return [v for values in fz.KEY_VALUES.values() for v in values]


OPS = st.lists(st.tuples(st.sampled_from(["set", "set", "set", "delete", "add"]), st.integers(0, 10_000),
                         st.sampled_from(EDGES) | st.sampled_from(_key_values())), min_size=1, max_size=3)


# ---- every key, every edge value (a sweep: no example left to chance) -----------------------------
def test_every_top_key_with_every_edge_value_opens_right_or_is_refused(tmp_path):
    """Every key of global, of a capture segment and of a capture annotation, set to each edge value."""
    doc = SOURCES[SMALL]
    paths = [("global", k) for k in doc["global"]] + [("captures", 0, k) for k in doc["captures"][0]] \
        + [("annotations", 0, k) for k in doc["annotations"][0]]
    failures, refused = [], 0
    for path in paths:
        for value in EDGES:
            mutated = copy.deepcopy(doc)
            parent, key = fz.get_parent(mutated, path)
            parent[key] = copy.deepcopy(value)
            meta, written = materialise(tmp_path, SMALL, mutated)
            result = outcome(meta, written)
            refused += result == "refused"
            if result not in ("refused", "read"):
                failures.append(f"{path} = {value!r}: {result}")
    assert not failures, "\n".join(failures[:10])
    assert refused >= len(paths) * 10       # the edges are refused, not read somehow: most values for each key


def test_every_top_key_deleted_opens_right_or_is_refused(tmp_path):
    doc = SOURCES[SMALL]
    for section in ("global", "captures", "annotations"):
        keys = list(doc[section]) if section == "global" else list(doc[section][0])
        for key in keys:
            mutated = copy.deepcopy(doc)
            target = mutated[section] if section == "global" else mutated[section][0]
            del target[key]
            meta, written = materialise(tmp_path, SMALL, mutated)
            assert outcome(meta, written) in ("refused", "read"), f"{section} without {key}"


# ---- random combinations on every recording -------------------------------------------------------
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SOURCES)), ops=OPS)
@example(name=SMALL, ops=[("set", path_index(SMALL, ("annotations", 0, "isac:seq")), math.inf)])
@example(name=SMALL, ops=[("set", path_index(SMALL, ("global", "isac:radio")), "12")])
@example(name="two_targets", ops=[("set", path_index("two_targets", ("annotations", 1, "isac:seq")), 2.5),
                                  ("set", path_index("two_targets", ("global", "core:sample_rate")), math.nan)])
@example(name="array_two_angles", ops=[("set", path_index("array_two_angles", ("global", "core:datatype")),
                                        "cf32_be")])           # a float file relabelled big-endian: NaN samples
def test_mutated_metadata_opens_right_or_is_refused(tmp_path_factory, name, ops):
    meta, written = materialise(tmp_path_factory.mktemp("m"), name, apply(SOURCES[name], ops))
    assert outcome(meta, written) in ("refused", "read")


# the reproducers, each a class: refused with the field named
@pytest.mark.parametrize("path, value, message", [
    (("annotations", 0, "isac:seq"), math.inf, r"annotations\[0\]\.isac:seq = inf: allowed finite numbers"),
    (("annotations", 0, "isac:seq"), -math.inf, r"annotations\[0\]\.isac:seq = -inf: allowed finite numbers"),
    (("annotations", 0, "isac:frame_offset"), math.inf, r"isac:frame_offset = inf: allowed finite numbers"),
    (("global", "core:num_channels"), None, r"global/core:num_channels: None is not of type 'integer'"),
    (("global", "isac:node"), 5, r"isac:node = 5: allowed a JSON object or null"),
    (("global", "isac:radio"), [1, 2], r"isac:radio = \[1, 2\]: allowed a JSON object or null"),
    (("annotations", 0, "isac:seq"), 2.5, r"annotations\[0\]\.isac:seq = 2\.5: allowed an integer 0 \.\.\. "),
    (("annotations", 0, "isac:seq"), True, r"annotations\[0\]\.isac:seq = True: allowed an integer"),
    (("annotations", 0, "isac:seq"), "12", r"annotations\[0\]\.isac:seq = '12': allowed an integer"),
    (("global", "core:sample_rate"), math.nan, r"core:sample_rate = nan: allowed finite numbers"),
    (("captures", 0, "core:frequency"), -1.0, r"captures\[0\]\.core:frequency = -1\.0 Hz: allowed a number >= 0 Hz"),
    (("captures", 0, "core:frequency"), math.nan, r"captures\[0\]\.core:frequency = nan: allowed finite numbers"),
    (("global", "core:sha512"), "0" * 128, r"core:sha512 = 0000000000000000\.\.\. but the data file hashes to"),
    (("global", "core:dataset"), "../../../etc/hostname", r"core:dataset = '\.\./\.\./\.\./etc/hostname' resolves "
                                                          r"to /\S*etc/hostname, outside the recording's folder"),
])
def test_reproducers_are_refused_by_open_and_info(tmp_path, capsys, path, value, message):
    from sdr_isac.cli import main

    mutated = copy.deepcopy(SOURCES[SMALL])
    parent, key = fz.get_parent(mutated, path)
    parent[key] = value
    meta, _ = materialise(tmp_path, SMALL, mutated)
    with pytest.raises(RecordingError, match=message):
        Recording.open(meta)
    assert main(["info", str(meta)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# ---- SIGKILLed writers -------------------------------------------------------------------------------
def test_sigkilled_record_leaves_old_or_new_and_no_part_after_the_next_write(tmp_path):
    """Three ``sdr-isac record`` runs over an old recording, SIGKILLed at random moments (the fuzz suite runs 40)."""
    tally = fz.fuzz_record_kill(3, 2026, tmp_path)
    assert tally.bad == 0, fz._fuzzkit.examples([tally])
    assert tally.counts["accepted_valid"] == 3
