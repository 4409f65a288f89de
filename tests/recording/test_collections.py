"""SigMF collections: the recordings of several nodes of one run, written, opened and validated.

Hashes are checked against :func:`hashlib.sha512` of the member files here (not sdr_isac's or sigmf's own
hashing); malformed collections are written as plain JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sigmf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdr_isac.capture import Capture
from sdr_isac.cli import main
from sdr_isac.errors import InputError, RecordingError
from sdr_isac.recording import (
    Recording,
    describe,
    open_collection,
    resolve_member,
    write_captures,
    write_collection,
)

FS_HZ = 1e6


def record(base: Path, node_id: str, num: int = 2, channels: int = 1, **kw: Any) -> Path:
    base.parent.mkdir(parents=True, exist_ok=True)
    caps = [Capture(np.full((channels, 8), k + 1j, np.complex64), FS_HZ, 2.4e9, t0_s=0.1 * k, seq=k,
                    node_id=node_id) for k in range(num)]
    return write_captures(base, caps, **kw)


@pytest.fixture
def run(tmp_path) -> Path:
    """``tmp/run``: bs0 (node id in isac:node), ue1 (node id only in its captures), rx/ch1 in a sub-folder."""
    folder = tmp_path / "run"
    record(folder / "bs0", "bs0", node={"id": "bs0", "role": "bs"})
    record(folder / "ue1", "ue1", num=1, channels=2)
    record(folder / "rx" / "ch1", "bs2", num=3, node={"id": "bs2"})
    return folder


def write(folder: Path, doc: Any) -> Path:
    path = folder / "c.sigmf-collection"
    path.write_text(json.dumps(doc))
    return path


def test_round_trip_with_node_ids_and_hashes(run):
    coll_path = write_collection(run / "c", [run / "bs0", run / "ue1.sigmf-meta", run / "rx" / "ch1.sigmf-data"],
                                 description="walk test")
    assert coll_path == run / "c.sigmf-collection"
    doc = json.loads(coll_path.read_text())["collection"]
    assert doc["core:description"] == "walk test" and doc["core:version"] == sigmf.__specification__
    assert [s["name"] for s in doc["core:streams"]] == ["bs0", "ue1", "rx/ch1"]
    for stream in doc["core:streams"]:                              # SHA-512 of each member's metadata file
        assert stream["hash"] == hashlib.sha512((run / f"{stream['name']}.sigmf-meta").read_bytes()).hexdigest()
    with open_collection(coll_path) as coll:
        assert coll.node_ids == ["bs0", "ue1", "bs2"] and coll.description == "walk test"
        assert [m.recording.num_captures for m in coll] == [2, 1, 3]
        assert coll.member("ue1").recording.num_channels == 2
        assert coll.member("bs2").meta_path == run / "rx" / "ch1.sigmf-meta"
    assert all(m.recording._data is None for m in coll.members)     # closed with the collection
    assert sigmf.fromfile(coll_path).get_stream_names() == ["bs0", "ue1", "rx/ch1"]   # the sigmf package reads it


def test_a_foreign_member_is_named_by_its_stream(tmp_path):
    meta = sigmf.fromarray(np.zeros(10, np.complex64))
    meta.sample_rate = FS_HZ
    meta.tofile(tmp_path / "capture_7")
    with open_collection(write_collection(tmp_path / "c", [tmp_path / "capture_7"])) as coll:
        assert coll.node_ids == ["capture_7"]


def test_writing_refuses_bad_member_lists(run, tmp_path):
    with pytest.raises(InputError, match=r"recordings = \[\]: allowed at least one recording"):
        write_collection(run / "c", [])
    with pytest.raises(InputError, match=r"recordings\[1\] = 'bs0\.sigmf-meta' is also recordings\[0\]"):
        write_collection(run / "c", [run / "bs0", run / "bs0.sigmf-meta"])
    other = record(tmp_path / "elsewhere" / "x", "x")
    with pytest.raises(InputError, match=r"recordings\[0\] = '.*elsewhere/x\.sigmf-meta' lies outside the "
                                         r"collection's folder"):
        write_collection(run / "c", [other])
    with pytest.raises(InputError, match=r"recordings is a str: allowed a list of recording paths"):
        write_collection(run / "c", str(run / "bs0"))           # type: ignore[arg-type]
    with pytest.raises(RecordingError, match=r"nothere\.sigmf-meta: metadata file not found"):
        write_collection(run / "c", [run / "nothere"])
    assert not (run / "c.sigmf-collection").exists()
    write_collection(run / "c", [run / "bs0"])
    with pytest.raises(RecordingError, match=r"c\.sigmf-collection: the collection already exists; pass "
                                             r"overwrite=True"):
        write_collection(run / "c", [run / "ue1"])
    write_collection(run / "c", [run / "ue1"], overwrite=True)
    assert open_collection(run / "c").node_ids == ["ue1"]
    assert not [p for p in run.iterdir() if p.name.endswith(".part")]


def test_a_changed_member_fails_its_hash_and_a_missing_hash_is_not_checked(run):
    path = write_collection(run / "c", [run / "bs0", run / "ue1"])
    meta = run / "ue1.sigmf-meta"
    meta.write_text(meta.read_text().replace('"core:description": ""', '"core:description": "edited"'))
    with pytest.raises(RecordingError, match=r"collection\.core:streams\[1\]\.hash = [0-9a-f]{16}\.\.\. but "
                                             r"ue1\.sigmf-meta hashes to [0-9a-f]{16}\.\.\.: allowed the SHA-512 "
                                             r"of the member's metadata"):
        open_collection(path)
    doc = json.loads(path.read_text())
    del doc["collection"]["core:streams"][1]["hash"]
    path.write_text(json.dumps(doc))
    assert open_collection(path).node_ids == ["bs0", "ue1"]


def test_members_outside_the_folder_are_refused_unless_allowed(tmp_path):
    record(tmp_path / "outside", "far")
    inner = tmp_path / "inner"
    inner.mkdir()
    doc = {"collection": {"core:version": "1.2.0", "core:streams": [{"name": "../outside"}]}}
    path = write(inner, doc)
    with pytest.raises(RecordingError, match=r"collection\.core:streams\[0\]\.name = '\.\./outside' resolves to "
                                             r".*outside\.sigmf-meta, outside the collection's folder"):
        open_collection(path)
    assert open_collection(path, allow_outside=True).node_ids == ["far"]
    doc["collection"]["core:streams"] = [{"name": str(tmp_path / "outside")}]
    with pytest.raises(RecordingError, match=r"outside the collection's folder"):
        open_collection(write(inner, doc))
    (inner / "link.sigmf-meta").symlink_to(tmp_path / "outside.sigmf-meta")
    doc["collection"]["core:streams"] = [{"name": "link"}]
    with pytest.raises(RecordingError, match=r"'link' resolves to .*outside\.sigmf-meta, outside"):
        open_collection(write(inner, doc))


def test_a_member_that_does_not_open_is_named(run):
    path = write_collection(run / "c", [run / "bs0", run / "ue1"])
    doc = json.loads((run / "ue1.sigmf-meta").read_text())
    doc["global"]["core:sample_rate"] = -5.0
    (run / "ue1.sigmf-meta").write_text(json.dumps(doc))
    stream = json.loads(path.read_text())
    del stream["collection"]["core:streams"][1]["hash"]
    path.write_text(json.dumps(stream))
    with pytest.raises(RecordingError, match=r"c\.sigmf-collection: collection\.core:streams\[1\] = 'ue1': .*"
                                             r"ue1\.sigmf-meta: invalid SigMF metadata at global/core:sample_rate"):
        open_collection(path)
    (run / "bs0.sigmf-data").unlink()                                # the first member now fails first
    with pytest.raises(RecordingError, match=r"streams\[0\] = 'bs0': .*bs0\.sigmf-data: data file not found"):
        open_collection(path)


def test_info_describes_a_collection_and_recording_open_points_to_it(run, capsys):
    path = write_collection(run / "c", [run / "bs0", run / "ue1"], description="two nodes")
    text = describe(path)
    for part in ("collection  c.sigmf-collection", "2 recording(s)", "description two nodes",
                 "bs0        bs0", "ue1        ue1", "member bs0 (node bs0):", "member ue1 (node ue1):",
                 "  recording   ue1.sigmf-meta + ue1.sigmf-data"):
        assert part in text, part
    assert main(["info", str(path)]) == 0 and "member ue1 (node ue1)" in capsys.readouterr().out
    with pytest.raises(RecordingError, match=r"c\.sigmf-collection: a SigMF collection \(several recordings\): "
                                             r"allowed one recording here; open it with .*open_collection"):
        Recording.open(path)
    assert resolve_member(path, "ue1") == run / "ue1.sigmf-meta"
    assert resolve_member(run / "bs0.sigmf-meta") == run / "bs0.sigmf-meta"
    with pytest.raises(InputError, match=r"the only member: 2 members match; allowed the node id of one member: "
                                         r"bs0 \(bs0\), ue1 \(ue1\)"):
        resolve_member(path)
    with pytest.raises(InputError, match=r"node_id = 'bs9': 0 members match"):
        resolve_member(path, "bs9")


@pytest.mark.parametrize("doc, message", [
    ([], r"collection = \[\]: allowed a top-level object"),
    ({"collection": 3}, r"collection = 3: allowed a top-level object"),
    ({"collection": {"core:streams": [{"name": "bs0"}]}}, r"collection\.core:version is missing"),
    ({"collection": {"core:version": 1.2, "core:streams": []}}, r"collection\.core:version = 1\.2: allowed a string"),
    ({"collection": {"core:version": "1.2.0"}}, r"collection\.core:streams = None: allowed a non-empty list"),
    ({"collection": {"core:version": "1.2.0", "core:streams": []}}, r"core:streams = \[\]: allowed a non-empty"),
    ({"collection": {"core:version": "1.2.0", "core:streams": {"name": "bs0"}}}, r"core:streams = \{'name': 'bs0'\}"),
    ({"collection": {"core:version": "1.2.0", "core:streams": [["bs0", "ab"]]}},
     r"core:streams\[0\] = \['bs0', 'ab'\]: allowed an object"),
    ({"collection": {"core:version": "1.2.0", "core:streams": [{"name": 7}]}},
     r"core:streams\[0\]\.name = 7: allowed the base name of a recording"),
    ({"collection": {"core:version": "1.2.0", "core:streams": [{"hash": "00"}]}},
     r"core:streams\[0\]\.name = None: allowed the base name"),
    ({"collection": {"core:version": "1.2.0", "core:streams": [{"name": "bs0", "hash": "xyz"}]}},
     r"core:streams\[0\]\.hash = 'xyz': allowed 128 hexadecimal digits"),
    ({"collection": {"core:version": "1.2.0", "core:streams": [{"name": "bs0", "hash": 12}]}},
     r"core:streams\[0\]\.hash = 12: allowed 128 hexadecimal digits"),
    ({"collection": {"core:version": "1.2.0", "core:streams": [{"name": "bs0"}, {"name": "bs0"}]}},
     r"core:streams\[1\]\.name = 'bs0': allowed each recording once"),
    ({"collection": {"core:version": "1.2.0", "core:description": None, "core:streams": [{"name": "bs0"}]}},
     r"collection\.core:description = None: allowed a string"),
], ids=["list", "collection-int", "no-version", "version-float", "no-streams", "empty-streams", "streams-object",
        "stream-list", "name-int", "name-missing", "hash-short", "hash-int", "duplicate", "description-null"])
def test_malformed_collections_raise_naming_the_field(run, doc, message):
    with pytest.raises(RecordingError, match=message):
        open_collection(write(run, doc))


def test_unreadable_collection_files(run):
    with pytest.raises(RecordingError, match=r"nothere\.sigmf-collection: collection file not found"):
        open_collection(run / "nothere")
    (run / "c.sigmf-collection").write_text('{"collection": ')
    with pytest.raises(RecordingError, match=r"c\.sigmf-collection: invalid JSON at line 1"):
        open_collection(run / "c.sigmf-collection")
    (run / "c.sigmf-collection").write_bytes(b"\xff\xfe{}")
    with pytest.raises(RecordingError, match=r"collection is not UTF-8 text"):
        open_collection(run / "c.sigmf-collection")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=6)
    | st.sampled_from(["bs0", "ue1", "../bs0", "/bs0", "", "bs0\x00", "a" * 128, "f" * 128]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["name", "hash", "x"]), inner,
                                                                 max_size=3),
    max_leaves=8)
STREAM = st.fixed_dictionaries({}, optional={"name": JSON_VALUES, "hash": JSON_VALUES}) | JSON_VALUES


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(streams=st.lists(STREAM, max_size=4) | JSON_VALUES, version=st.sampled_from(["1.2.0", None, 1, [], {}]))
def test_any_member_list_opens_or_raises_a_recording_error(run, streams, version):
    doc: dict[str, Any] = {"collection": {"core:streams": streams}}
    if version is not None:
        doc["collection"]["core:version"] = version
    path = run / "h.sigmf-collection"
    path.write_text(json.dumps(doc, allow_nan=True))
    try:
        with open_collection(path) as coll:
            names = [s["name"] for s in streams]                    # it opened: every stream was a valid member
            assert [m.name for m in coll] == names and set(names) <= {"bs0", "ue1"}
            assert isinstance(version, str)
    except RecordingError as err:
        assert "collection" in str(err) and str(path) in str(err)


def test_floats_that_json_cannot_hold_are_refused_as_a_wrong_type(run):
    with pytest.raises(RecordingError, match=r"core:streams\[0\]\.name = nan: allowed the base name"):
        open_collection(write(run, {"collection": {"core:version": "1.2.0", "core:streams": [{"name": math.nan}]}}))


def test_a_member_with_zero_length_data_opens_with_no_capture(tmp_path):
    (tmp_path / "empty.sigmf-data").write_bytes(b"")
    (tmp_path / "empty.sigmf-meta").write_text(json.dumps({
        "global": {"core:datatype": "cu8", "core:sample_rate": FS_HZ, "core:version": "1.2.0"},
        "captures": [], "annotations": []}))
    with open_collection(write_collection(tmp_path / "c", [tmp_path / "empty"])) as coll:
        assert coll.node_ids == ["empty"] and len(coll.member().recording) == 0


def test_a_collection_file_of_huge_size_is_refused_before_reading(run, monkeypatch):
    from sdr_isac.recording import collection
    monkeypatch.setattr(collection, "MAX_COLLECTION_BYTES", 10)
    path = write_collection(run / "c", [run / "bs0"])
    with pytest.raises(RecordingError, match=r"c\.sigmf-collection: \d+ bytes: allowed a collection file of at most "
                                             r"10 bytes"):
        open_collection(path)
