"""Atomic overwrite of recordings: a writer killed at any step leaves the old recording or the new one.

The kill is simulated exactly: a forked child writes the recording with ``os.replace``, ``os.link`` and
``os.unlink`` wrapped so that the process ends (``os._exit``, no clean-up runs, as with SIGKILL) just before
or just after the k-th of those calls, for every k.  The SIGKILL of the real ``sdr-isac record`` at random
moments is in ``tests/reliability/test_recording_props.py`` and ``scripts/fuzz_recording.py``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from sdr_isac.capture import Capture
from sdr_isac.recording import Recording, RecordingWriter, _atomic

FS_HZ = 1e6
FC_HZ = 2.4e9
KILLED = 137
CALLS = ("replace", "link", "unlink")


def captures(num: int, value: float) -> list[Capture]:
    return [Capture(np.full((2, 16 + k), value + k, np.complex64), FS_HZ, FC_HZ, seq=k) for k in range(num)]


def write(base: Path, caps: list[Capture], **kw) -> None:
    with RecordingWriter(base, sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=2, **kw) as w:
        for c in caps:
            w.append(c)


def snapshot(base: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(base.parent.iterdir()) if p.is_file()}


def parts(base: Path) -> list[str]:
    return sorted(p.name for p in base.parent.iterdir() if p.name.endswith(".part"))


def _wrap_os(die_at: int, when: str, counter: list[int]) -> None:
    """Wrap os.replace/link/unlink: count the calls, and end the process at call ``die_at``."""
    for name in CALLS:
        real = getattr(os, name)

        def call(*args, _real=real, **kwargs):
            counter[0] += 1
            if counter[0] == die_at and when == "before":
                os._exit(KILLED)
            result = _real(*args, **kwargs)
            if counter[0] == die_at and when == "after":
                os._exit(KILLED)
            return result
        setattr(os, name, call)


def _child(base: str, die_at: int, when: str) -> None:
    _wrap_os(die_at, when, [0])
    write(Path(base), captures(3, 5.0), overwrite=True)
    os._exit(0)


def count_calls(base: Path, monkeypatch) -> int:
    counter = [0]
    with monkeypatch.context() as m:
        for name in CALLS:
            m.setattr(os, name, getattr(os, name))        # restored after the count
        _wrap_os(-1, "never", counter)
        write(base, captures(3, 5.0), overwrite=True)
    return counter[0]


def state(base: Path, old: dict[str, bytes] | None) -> str:
    """old / new / new-via-dataset / absent, or what is wrong."""
    meta = base.with_name(base.name + ".sigmf-meta")
    if not meta.exists():
        if old:
            return "bad: the old recording is gone"
        return "absent" if not base.with_name(base.name + ".sigmf-data").exists() else "bad: data without meta"
    finals = {k: v for k, v in snapshot(base).items() if not k.endswith(".part")}
    if old is not None and finals == old:
        return "old"
    with Recording.open(base) as rec:                    # checksum verified
        got = [rec.capture(i) for i in range(rec.num_captures)]
        via = "-via-dataset" if rec.data_path.name.endswith(".part") else ""
    want = captures(3, 5.0)
    same = len(got) == 3 and all(np.array_equal(g.iq, w.iq) and g.seq == w.seq for g, w in zip(got, want))
    return f"new{via}" if same else "bad: neither old nor new"


@pytest.mark.parametrize("with_old", [True, False], ids=["over-old", "new-name"])
def test_a_kill_at_any_step_leaves_old_or_new_and_the_next_write_cleans_up(tmp_path, monkeypatch, with_old):
    base = tmp_path / "rec"
    probe = tmp_path / "probe"
    probe.mkdir()
    n = count_calls(probe / "rec", monkeypatch)
    assert n >= 4                                       # commit, data link, final meta, temp removal
    if with_old:
        write(base, captures(1, -1.0))
    old = snapshot(base) if with_old else None
    ctx = multiprocessing.get_context("fork")
    seen = set()
    for die_at in range(1, n + 1):
        for when in ("before", "after"):
            proc = ctx.Process(target=_child, args=(str(base), die_at, when))
            proc.start()
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=10)
                pytest.fail(f"the writer killed {when} call {die_at} did not end")
            assert proc.exitcode == KILLED, f"call {die_at} ({when}): exit {proc.exitcode}"
            got = state(base, old)
            assert not got.startswith("bad"), f"killed {when} call {die_at} of {n}: {got}; files {sorted(snapshot(base))}"
            seen.add(got)
            readable = got != "absent"
            with RecordingWriter(base, sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=2,
                                 overwrite=True) as w:          # the next write
                if readable:                                   # its clean-up keeps what the metadata reads
                    Recording.open(base).close()
                w.append(captures(1, 9.0)[0])
            assert parts(base) == [], f"after the kill {when} call {die_at} and the next write"
            for p in base.parent.glob("*rec.sigmf*"):           # back to the start
                p.unlink()
            for name, raw in (old or {}).items():
                (base.parent / name).write_bytes(raw)
    assert {"new", "new-via-dataset"} <= seen and ("old" in seen if with_old else "absent" in seen), seen


def test_without_hard_links_the_data_is_copied(tmp_path, monkeypatch):
    def no_link(*_args, **_kwargs):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(os, "link", no_link)
    write(tmp_path / "r", captures(1, -1.0))
    write(tmp_path / "r", captures(3, 5.0), overwrite=True)
    assert parts(tmp_path / "r") == []
    with Recording.open(tmp_path / "r") as rec:
        assert rec.num_captures == 3 and rec.data_path.name == "r.sigmf-data"
        assert "core:dataset" not in rec.global_info


def test_final_recording_is_conforming_sigmf(tmp_path):
    write(tmp_path / "r", captures(2, 1.0))
    meta = json.loads((tmp_path / "r.sigmf-meta").read_text())
    assert "core:dataset" not in meta["global"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.sigmf-data", "r.sigmf-meta"]


def test_stale_temporary_files_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    stale = [tmp_path / ".r.sigmf-data.0123456789ab.part", tmp_path / ".r.sigmf-meta.ba9876543210.part"]
    others = [tmp_path / ".r.sigmf-data.notrandomhex.part", tmp_path / ".q.sigmf-data.0123456789ab.part",
              tmp_path / "r.sigmf-data.0123456789ab.part"]
    for p in stale + others:
        p.write_bytes(b"left by a killed writer")
    write(tmp_path / "r", captures(1, 1.0))                 # a new recording: the stale files of "r" go
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in others)                  # names of other targets or not ours: untouched


def test_a_live_writers_temporary_file_is_not_removed_by_another_writer(tmp_path):
    base = tmp_path / "r"
    first = RecordingWriter(base, sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=2, overwrite=True)
    first.append(captures(1, 1.0)[0])
    tmp = first._tmp_data
    write(base, captures(2, 2.0), overwrite=True)           # starts and ends while the first one writes
    assert tmp.exists()                                     # locked: its writer is alive
    first.close()
    assert parts(base) == []
    with Recording.open(base) as rec:
        assert rec.num_captures == 1


def test_is_temp_of_matches_only_the_names_it_makes(tmp_path):
    final = tmp_path / "r.sigmf-data"
    assert _atomic.is_temp_of(_atomic.temp_name(final), final)
    assert not _atomic.is_temp_of(_atomic.temp_name(tmp_path / "r.sigmf-meta"), final)
    assert not _atomic.is_temp_of(tmp_path / ".r.sigmf-data.part", final)


def test_exception_after_the_commit_names_the_complete_recording(tmp_path, monkeypatch):
    from sdr_isac.errors import RecordingError

    write(tmp_path / "r", captures(1, -1.0))

    def broken(src, dst):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr("sdr_isac.recording.writer.link_or_copy", broken)
    with pytest.raises(RecordingError, match=r"the recording is complete but still reads its samples from "
                                             r"\.r\.sigmf-data\.[0-9a-f]{12}\.part \(core:dataset\)"):
        write(tmp_path / "r", captures(3, 5.0), overwrite=True)
    with Recording.open(tmp_path / "r") as rec:             # committed: the new recording reads
        assert rec.num_captures == 3


def test_an_interrupt_right_after_the_commit_rename_keeps_the_data_it_names(tmp_path, monkeypatch):
    write(tmp_path / "r", captures(1, -1.0))
    real = _atomic.write_file

    def write_then_interrupt(final, data):
        real(final, data)
        raise KeyboardInterrupt                           # between the rename and the next statement
    monkeypatch.setattr("sdr_isac.recording.writer.write_file", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path / "r", captures(3, 5.0), overwrite=True)
    with Recording.open(tmp_path / "r") as rec:              # the committed recording, read through core:dataset
        assert rec.num_captures == 3 and rec.data_path.name.endswith(".part")
    monkeypatch.undo()
    write(tmp_path / "r", captures(2, 1.0), overwrite=True)
    assert parts(tmp_path / "r") == []
