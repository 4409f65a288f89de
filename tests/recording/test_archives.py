"""SigMF archives (``.sigmf``, ``.sigmf.gz``, ``.sigmf.xz``): written atomically, read in place, hostile ones refused.

Hostile and malformed archives are built here with :mod:`tarfile` directly (traversal names, links, devices,
false sizes); the checks are that they raise :class:`RecordingError` naming the member, and that nothing is
written anywhere while trying.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import sigmf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdr_isac.capture import Capture
from sdr_isac.cli import main
from sdr_isac.errors import InputError, RecordingError
from sdr_isac.recording import Recording, describe, open_archive, write_archive, write_captures

FS_HZ = 1e6
FC_HZ = 2.4e9
SUFFIXES = [".sigmf", ".sigmf.gz", ".sigmf.xz"]


@pytest.fixture
def rec(tmp_path) -> Path:
    """A two-capture, two-channel recording ``tmp/src/run`` with truth."""
    rng = np.random.default_rng(5)
    folder = tmp_path / "src"
    folder.mkdir()
    caps = [Capture((rng.standard_normal((2, 16 + k)) + 1j * rng.standard_normal((2, 16 + k))).astype(np.complex64),
                    FS_HZ, FC_HZ, t0_s=0.01 * k, seq=k, node_id="bs0") for k in range(2)]
    return write_captures(folder / "run", caps, truths=[{"targets": [{"id": "t0", "range_m": 7.5}]}, None],
                          node={"id": "bs0"})


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_through_each_archive_kind(tmp_path, rec, suffix):
    archive = write_archive(rec, tmp_path / f"out{suffix}")
    assert archive == tmp_path / f"out{suffix}" and archive.is_file()
    with tarfile.open(archive) as tar:                              # the SigMF layout, checked with tarfile itself
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
    assert names == ["out/out.sigmf-data", "out/out.sigmf-meta"]
    before = files_under(tmp_path)
    with Recording.open(rec) as source, open_archive(archive) as back:
        assert back.archive_path == archive and back.num_captures == 2 and back.node == {"id": "bs0"}
        for i in range(2):
            np.testing.assert_array_equal(back.capture(i).iq, source.capture(i).iq)
            assert back.truth(i) == source.truth(i) and back.capture(i).seq == i
    assert files_under(tmp_path) == before                          # nothing extracted
    assert sigmf.fromfile(archive).read_samples(0, 3).shape == (3, 2)   # the sigmf package reads it too


def test_an_uncompressed_archive_is_memory_mapped_from_the_archive_file(tmp_path, rec):
    archive = write_archive(rec, tmp_path / "out.sigmf")
    with Recording.open(archive) as back:
        mapped = back._mapped()
        assert isinstance(mapped, np.memmap) and Path(mapped.filename) == archive


def test_the_sigmf_package_archive_opens(tmp_path):
    samples = (np.arange(12) - 6j).astype(np.complex64)
    meta = sigmf.fromarray(samples)
    meta.sample_rate = FS_HZ
    meta.tofile(tmp_path / "pkg.sigmf.gz")
    with Recording.open(tmp_path / "pkg.sigmf.gz") as back:
        np.testing.assert_array_equal(back.capture(0).iq[0], samples)


def test_writing_refuses_an_existing_archive_and_replaces_it_with_overwrite(tmp_path, rec):
    archive = write_archive(rec, tmp_path / "out.sigmf")
    with pytest.raises(RecordingError, match=r"out\.sigmf: the archive already exists; pass overwrite=True"):
        write_archive(rec, archive)
    write_archive(rec, archive, overwrite=True)
    assert Recording.open(archive).num_captures == 2
    with pytest.raises(InputError, match=r"path = '.*out\.tar': allowed a name ending in \.sigmf, \.sigmf\.gz"):
        write_archive(rec, tmp_path / "out.tar")


def test_a_failed_write_leaves_nothing(tmp_path, rec, monkeypatch):
    def broken(*args, **kwargs):
        kwargs["fileobj"].write(b"partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(sigmf, "SigMFArchive", broken)
    before = files_under(tmp_path)
    with pytest.raises(RecordingError, match=r"writing the archive failed \(\[Errno 28\] No space left on device\); "
                                             r"nothing was written"):
        write_archive(rec, tmp_path / "out.sigmf")
    assert files_under(tmp_path) == before


def test_a_corrupt_recording_is_not_archived(tmp_path, rec):
    data = rec.with_suffix(".sigmf-data")
    raw = bytearray(data.read_bytes())
    raw[0] ^= 1
    data.write_bytes(bytes(raw))
    with pytest.raises(RecordingError, match=r"core:sha512 = .* but the data file hashes to"):
        write_archive(rec, tmp_path / "out.sigmf")
    assert not (tmp_path / "out.sigmf").exists()


def test_a_corrupt_archive_member_fails_its_checksum(tmp_path, rec):
    archive = write_archive(rec, tmp_path / "out.sigmf")
    with tarfile.open(archive) as tar:
        offset = tar.getmember("out/out.sigmf-data").offset_data
    raw = bytearray(archive.read_bytes())
    raw[offset + 3] ^= 0x40
    archive.write_bytes(bytes(raw))
    with pytest.raises(RecordingError, match=r"out\.sigmf/out/out\.sigmf-data: core:sha512 = "):
        Recording.open(archive)
    assert Recording.open(archive, verify_checksum=False).num_captures == 2


# ---- hostile and malformed archives --------------------------------------------------------------------
def build(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:                         # type: ignore[call-overload]
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def meta_bytes(num_samples: int = 4) -> bytes:
    return json.dumps({"global": {"core:datatype": "cf32_le", "core:sample_rate": FS_HZ, "core:version": "1.2.0"},
                       "captures": [{"core:sample_start": 0}], "annotations": []}).encode()


def data_bytes(num_samples: int = 4) -> bytes:
    return np.arange(num_samples, dtype=np.complex64).tobytes()


def good_members(name: str = "x") -> list[tuple[tarfile.TarInfo, bytes | None]]:
    return [file_member(f"{name}/{name}.sigmf-meta", meta_bytes()), file_member(f"{name}/{name}.sigmf-data",
                                                                                 data_bytes())]


def test_a_hand_built_archive_opens(tmp_path):
    with Recording.open(build(tmp_path / "x.sigmf", good_members())) as back:
        np.testing.assert_array_equal(back.capture(0).iq[0], np.arange(4))


@pytest.mark.parametrize("name", ["../evil.sigmf-meta", "x/../../evil.sigmf-data", "/etc/evil.sigmf-meta",
                                  "x/..", "C:/evil.sigmf-meta", "..\\evil.sigmf-meta"])
def test_traversal_member_names_are_refused(tmp_path, name):
    archive = build(tmp_path / "x.sigmf", good_members() + [file_member(name, b"owned")])
    before = files_under(tmp_path.parent)
    with pytest.raises(RecordingError, match=re.escape(f"x.sigmf: archive member {name!r} is an absolute path or "
                                                       "climbs out of the archive's folder with '..' (a path "
                                                       "traversal): allowed regular files")):
        Recording.open(archive)
    assert files_under(tmp_path.parent) == before


@pytest.mark.parametrize("kind, why", [(tarfile.SYMTYPE, "is a symbolic link to '/etc/passwd'"),
                                       (tarfile.LNKTYPE, "is a hard link to '/etc/passwd'"),
                                       (tarfile.CHRTYPE, "is a device, a pipe or another special file"),
                                       (tarfile.FIFOTYPE, "is a device, a pipe or another special file")])
def test_links_and_devices_are_refused(tmp_path, kind, why):
    info = tarfile.TarInfo("x/x.sigmf-data")
    info.type = kind
    info.linkname = "/etc/passwd"
    archive = build(tmp_path / "x.sigmf", [file_member("x/x.sigmf-meta", meta_bytes()), (info, None)])
    with pytest.raises(RecordingError, match=rf"archive member 'x/x\.sigmf-data' {why}: allowed regular files"):
        Recording.open(archive)


def test_a_size_past_the_end_of_the_archive_is_refused(tmp_path):
    """tarfile itself notices a member running past the end; the error is a RecordingError naming the file."""
    archive = build(tmp_path / "x.sigmf", good_members())
    with tarfile.open(archive) as tar:
        end = tar.getmember("x/x.sigmf-data").offset_data + 8
    archive.write_bytes(archive.read_bytes()[:end])                 # cut inside the data member: 32 bytes declared
    with pytest.raises(RecordingError, match=r"x\.sigmf: not a readable tar file \(uncompressed\) \(ReadError: "
                                             r"unexpected end of data\)"):
        Recording.open(archive)


def test_a_truncated_compressed_archive_is_refused(tmp_path):
    archive = build(tmp_path / "x.sigmf.gz", good_members(), "w:gz")
    archive.write_bytes(archive.read_bytes()[:-30])
    with pytest.raises(RecordingError, match=r"x\.sigmf\.gz: (not a readable gz-compressed tar file|archive member)"):
        Recording.open(archive)


@pytest.mark.parametrize("content, message", [
    (b"", r"not a readable tar file \(uncompressed\)"),
    (b"not a tar file at all" * 40, r"not a readable tar file \(uncompressed\)"),
])
def test_files_that_are_not_archives_are_refused(tmp_path, content, message):
    (tmp_path / "x.sigmf").write_bytes(content)
    with pytest.raises(RecordingError, match=message):
        Recording.open(tmp_path / "x.sigmf")


def test_a_gz_name_on_an_uncompressed_tar_is_refused(tmp_path):
    build(tmp_path / "x.sigmf", good_members())
    (tmp_path / "x.sigmf").rename(tmp_path / "x.sigmf.gz")
    with pytest.raises(RecordingError, match=r"x\.sigmf\.gz: not a readable gz-compressed tar file"):
        Recording.open(tmp_path / "x.sigmf.gz")


def test_missing_members_and_several_recordings(tmp_path):
    with pytest.raises(RecordingError, match=r"no \.sigmf-meta member: allowed a SigMF archive"):
        Recording.open(build(tmp_path / "a.sigmf", [file_member("x/x.sigmf-data", data_bytes())]))
    with pytest.raises(RecordingError, match=r"member 'x/x\.sigmf-data' \(the data of x/x\.sigmf-meta\) is missing"):
        Recording.open(build(tmp_path / "b.sigmf", [file_member("x/x.sigmf-meta", meta_bytes())]))
    two = build(tmp_path / "c.sigmf", good_members("x") + good_members("y"))
    with pytest.raises(RecordingError, match=r"holds 2 recordings \(x, y\): allowed one, or name one with "
                                             r"open_archive\(path, member=NAME\)"):
        Recording.open(two)
    assert open_archive(two, member="y").meta_path == two / "y/y.sigmf-meta"
    with pytest.raises(RecordingError, match=r"member = 'z': allowed the base name of one recording in the archive: "
                                             r"x, y"):
        open_archive(two, member="z")


def test_zero_length_data(tmp_path):
    empty = build(tmp_path / "e.sigmf", [file_member("e/e.sigmf-meta", meta_bytes()), file_member("e/e.sigmf-data",
                                                                                                  b"")])
    with Recording.open(empty) as back:
        assert back.num_captures == 0 and back.num_samples == 0
    isac = json.loads(meta_bytes())
    isac["global"]["isac:schema"] = 1
    isac["annotations"] = [{"core:sample_start": 0, "core:sample_count": 4, "isac:seq": 0}]
    claims = build(tmp_path / "f.sigmf", [file_member("f/f.sigmf-meta", json.dumps(isac).encode()),
                                          file_member("f/f.sigmf-data", b"")])
    with pytest.raises(RecordingError, match=r"f\.sigmf/f/f\.sigmf-data: holds 0 samples per channel but capture 0 "
                                             r"\(isac:seq 0\) claims samples 0 \.\.\. 3"):
        Recording.open(claims)


def test_invalid_metadata_in_an_archive_names_the_member_and_field(tmp_path):
    bad = json.loads(meta_bytes())
    bad["global"]["core:sample_rate"] = "fast"
    archive = build(tmp_path / "x.sigmf", [file_member("x/x.sigmf-meta", json.dumps(bad).encode()),
                                           file_member("x/x.sigmf-data", data_bytes())])
    with pytest.raises(RecordingError, match=r"x\.sigmf/x/x\.sigmf-meta: invalid SigMF metadata at "
                                             r"global/core:sample_rate"):
        Recording.open(archive)


def test_info_describes_an_archive(tmp_path, rec, capsys):
    archive = write_archive(rec, tmp_path / "out.sigmf.gz")
    text = describe(archive)
    assert "archive     out.sigmf.gz" in text and "members out/out.sigmf-meta + out/out.sigmf-data" in text
    assert "t0 r=7.50 m" in text
    assert main(["info", str(archive)]) == 0
    bad = build(tmp_path / "bad.sigmf", good_members() + [file_member("../up", b"")])
    assert main(["info", str(bad)]) == 2
    assert "path traversal" in capsys.readouterr().err


NAMES = st.sampled_from(["x/x.sigmf-meta", "x/x.sigmf-data", "x", "../x", "/x", "x/../../y", "x/./x.sigmf-data",
                         "", "x//x.sigmf-meta", "y/y.sigmf-meta", "\\x", "x\\..\\..\\y", "a:/x", "x/\u00e9.sigmf-data"])
TYPES = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=st.lists(st.tuples(NAMES, TYPES, st.sampled_from([b"", b"\x00" * 32, b"{}", meta_bytes()])),
                        max_size=5))
def test_any_archive_opens_or_is_refused_with_a_recording_error_and_writes_nothing(tmp_path, members):
    folder = tmp_path / "h"
    folder.mkdir(exist_ok=True)
    archive = folder / "h.sigmf"
    infos = []
    for name, kind, data in members:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = "../../outside" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        infos.append((info, data if kind == tarfile.REGTYPE else None))
    build(archive, infos)
    before = files_under(tmp_path)
    try:
        with Recording.open(archive) as back:
            for i in range(back.num_captures):
                back.capture(i)
    except RecordingError:
        pass
    assert files_under(tmp_path) == before


def test_a_zip_archive_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "x.sigmf.zip").write_bytes(b"PK")
    with pytest.raises(RecordingError, match=r"x\.sigmf\.zip: a zip SigMF archive: allowed tar archives .*; unzip "
                                             r"it and open the \.sigmf-meta inside"):
        Recording.open(tmp_path / "x.sigmf.zip")


def test_a_compressed_data_member_too_big_for_memory_is_refused(tmp_path, monkeypatch):
    from sdr_isac.recording import _tar
    monkeypatch.setattr(_tar, "MAX_DECOMPRESSED_BYTES", 16)          # the 32-byte member is then "huge"
    archive = build(tmp_path / "x.sigmf.gz", good_members(), "w:gz")
    with pytest.raises(RecordingError, match=r"archive member 'x/x\.sigmf-data' declares 32 bytes, more than the 16 "
                                             r"decompressed into memory; decompress the archive to an uncompressed "
                                             r"\.sigmf"):
        Recording.open(archive)
