"""The one atomic writer's helpers for outputs other than recordings: text, JSON, modes, streamed files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sdr_isac.recording import _atomic
from sdr_isac.recording.append import append_capture


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_write_json_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_text("old")
    _atomic.write_json(target, {"a": [1, 2.5], "b": None})
    assert json.loads(target.read_text()) == {"a": [1, 2.5], "b": None}
    assert target.read_text() == json.dumps({"a": [1, 2.5], "b": None}, indent=2)
    assert leftovers(tmp_path) == []


def test_a_failed_json_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        _atomic.write_json(target, {"a": object()})
    assert target.read_text() == "old" and leftovers(tmp_path) == []


def test_a_mode_holds_from_the_first_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a secret must never be readable by others, not even as the temporary file: look while it is written
    seen = []
    real_replace = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        seen.append(stat.S_IMODE(os.stat(src).st_mode))
        real_replace(src, dst)

    monkeypatch.setattr(_atomic.os, "replace", replace)
    old = os.umask(0)                                  # the widest umask: the mode must not come from it
    try:
        _atomic.write_text(tmp_path / "host.key_secret", "secret", mode=0o600)
    finally:
        os.umask(old)
    assert seen == [0o600]
    assert stat.S_IMODE((tmp_path / "host.key_secret").stat().st_mode) == 0o600


def test_a_streamed_file_appears_only_when_committed(tmp_path: Path) -> None:
    target = tmp_path / "live.jsonl"
    tmp, fh = _atomic.open_temp(target)
    fh.write(b'{"a": 1}\n')
    assert not target.exists() and _atomic.is_temp_of(tmp, target)
    _atomic.commit_temp(tmp, fh, target)
    assert target.read_bytes() == b'{"a": 1}\n' and not tmp.exists()


def test_append_capture_splits_the_truth_off_the_metadata(tmp_path: Path) -> None:
    import numpy as np

    from sdr_isac.capture import Capture
    from sdr_isac.errors import RecordingError
    from sdr_isac.recording import Recording, RecordingWriter

    truth = {"targets": [{"id": "t0", "range_m": 50.0}]}
    capture = Capture(np.ones((1, 8), np.complex64), 1e6, 2.4e9, seq=3,
                      metadata={"truth": truth, "replay": {"from": "x"}, "gain_db": 10})
    with RecordingWriter(tmp_path / "rec", sample_rate_hz=1e6, center_freq_hz=2.4e9, num_channels=1) as writer:
        assert append_capture(writer, capture, drop=("replay",)) == 0
        with pytest.raises(RecordingError, match=r"metadata\['truth'\] is a list: allowed a dict"):
            append_capture(writer, Capture(np.ones((1, 8), np.complex64), 1e6, 2.4e9, metadata={"truth": [1]}))
    with Recording.open(tmp_path / "rec.sigmf-meta") as rec:
        assert rec.truth(0) == truth
        assert rec.capture(0).metadata.get("gain_db") == 10 and "truth" not in rec.capture(0).metadata
        assert "replay" not in rec.capture(0).metadata
