"""Several capture segments (a retune): separate captures, each with its own centre frequency and sample range.

Foreign files are built here as plain JSON and numpy bytes; the expected captures follow from the SigMF
definition of a capture segment (its ``core:sample_start`` up to the next one's, its own ``core:frequency``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sdr_isac.capture import Capture
from sdr_isac.cli import main
from sdr_isac.errors import RecordingError
from sdr_isac.recording import Recording, RecordingWriter, describe

FS_HZ = 2e6


def foreign(folder: Path, samples: np.ndarray, captures: list[dict], annotations: list[dict] | None = None) -> Path:
    (folder / "f.sigmf-data").write_bytes(samples.astype("<c8").tobytes())
    meta = {"global": {"core:datatype": "cf32_le", "core:sample_rate": FS_HZ, "core:version": "1.2.0"},
            "captures": captures, "annotations": annotations or []}
    (folder / "f.sigmf-meta").write_text(json.dumps(meta))
    return folder / "f"


@pytest.fixture
def samples() -> np.ndarray:
    return (np.arange(30) + 1j * np.arange(30, 0, -1)).astype(np.complex64)


def test_a_retune_in_a_foreign_file_gives_one_capture_per_segment(tmp_path, samples):
    base = foreign(tmp_path, samples, [{"core:sample_start": 0, "core:frequency": 1e9},
                                       {"core:sample_start": 10, "core:frequency": 2e9},
                                       {"core:sample_start": 25, "core:frequency": 2.5e9}])
    with Recording.open(base) as rec:
        assert rec.num_captures == 3
        spans = [rec.capture_span(i) for i in range(3)]
        assert spans == [(0, 10), (10, 15), (25, 5)]
        for i, (start, count) in enumerate(spans):
            cap = rec.capture(i)
            assert cap.center_freq_hz == [1e9, 2e9, 2.5e9][i]
            assert cap.t0_s == pytest.approx(start / FS_HZ)
            np.testing.assert_array_equal(cap.iq[0], samples[start:start + count])
        assert rec.frequencies_hz == [1e9, 2e9, 2.5e9] and rec.center_freq_hz == 1e9
        assert [s["sample_count"] for s in rec.capture_segments] == [10, 15, 5]


def test_a_segment_without_frequency_takes_the_first_declared_one(tmp_path, samples):
    base = foreign(tmp_path, samples, [{"core:sample_start": 0}, {"core:sample_start": 12, "core:frequency": 3e9}])
    with Recording.open(base) as rec:
        assert rec.frequencies_hz == [3e9, 3e9] and rec.capture_span(1) == (12, 18)


def test_a_segment_start_beyond_the_data_is_refused(tmp_path, samples):
    base = foreign(tmp_path, samples, [{"core:sample_start": 0, "core:frequency": 1e9},
                                       {"core:sample_start": 2**62, "core:frequency": 2e9}])
    with pytest.raises(RecordingError, match=r"captures\[1\]\.core:sample_start = 4611686018427387904: allowed at "
                                             r"most 30, the samples per channel"):
        Recording.open(base)


def test_blocks_across_a_retune_are_refused_and_blocks_inside_read(tmp_path, samples):
    base = foreign(tmp_path, samples, [{"core:sample_start": 0, "core:frequency": 1e9},
                                       {"core:sample_start": 10, "core:frequency": 2e9}])
    with Recording.open(base, samples_per_capture=5) as rec:
        assert [rec.capture(i).center_freq_hz for i in range(6)] == [1e9] * 2 + [2e9] * 4
    with pytest.raises(RecordingError, match=r"block \(samples_per_capture = 4\) 2 covers samples 8 \.\.\. 11, "
                                             r"across a retune at sample 10"):
        Recording.open(base, samples_per_capture=4)


def test_the_writer_records_a_retune_as_segments_that_read_back(tmp_path):
    freqs = [2.4e9, 2.45e9, 2.45e9, 5.8e9]
    with RecordingWriter(tmp_path / "r", sample_rate_hz=FS_HZ, center_freq_hz=freqs[0], num_channels=1,
                         allow_retune=True) as w:
        for k, f in enumerate(freqs):
            w.append(Capture(np.full((1, 6 + k), k, np.complex64), FS_HZ, f, t0_s=0.1 * k, seq=k))
    meta = json.loads((tmp_path / "r.sigmf-meta").read_text())
    assert [c["core:frequency"] for c in meta["captures"]] == freqs
    with Recording.open(tmp_path / "r") as rec:
        assert [rec.capture(k).center_freq_hz for k in range(4)] == freqs
        assert [rec.capture_info(k)["center_freq_hz"] for k in range(4)] == freqs
        assert rec.capture(3).iq.shape == (1, 9) and rec.capture(3).seq == 3
    with pytest.raises(RecordingError, match=r"center_freq_hz = 5\.8e\+09 Hz but the recording has center_freq_hz = "
                                             r"2\.4e\+09 Hz.*allow_retune=True"):
        with RecordingWriter(tmp_path / "s", sample_rate_hz=FS_HZ, center_freq_hz=2.4e9, num_channels=1) as w:
            w.append(Capture(np.ones((1, 4), np.complex64), FS_HZ, 5.8e9))


def test_an_isac_capture_across_a_retune_is_refused_but_across_a_time_gap_reads(tmp_path):
    with RecordingWriter(tmp_path / "r", sample_rate_hz=FS_HZ, center_freq_hz=1e9, num_channels=1) as w:
        w.append(Capture(np.ones((1, 8), np.complex64), FS_HZ, 1e9, seq=4))
    path = tmp_path / "r.sigmf-meta"
    meta = json.loads(path.read_text())
    meta["captures"].append({"core:sample_start": 5, "core:frequency": 1e9})      # same frequency: a time gap
    meta["global"].pop("core:sha512")
    path.write_text(json.dumps(meta))
    assert Recording.open(tmp_path / "r").capture(0).center_freq_hz == 1e9
    meta["captures"][1]["core:frequency"] = 1.5e9
    path.write_text(json.dumps(meta))
    with pytest.raises(RecordingError, match=r"annotations\[0\] \(isac:seq 4\) covers samples 0 \.\.\. 7, across a "
                                             r"retune at sample 5 \(captures\[0\]\.core:frequency = 1e\+09 Hz, "
                                             r"captures\[1\]\.core:frequency = 1\.5e\+09 Hz\)"):
        Recording.open(tmp_path / "r")


def test_a_huge_declared_count_across_segments_is_refused_naming_the_annotation(tmp_path, samples):
    base = foreign(tmp_path, samples, [{"core:sample_start": 0, "core:frequency": 1e9},
                                       {"core:sample_start": 10, "core:frequency": 2e9}],
                   [{"core:sample_start": 0, "core:sample_count": 2**63 - 1, "isac:seq": 0}])
    meta = json.loads((tmp_path / "f.sigmf-meta").read_text())
    meta["global"]["isac:schema"] = 1
    (tmp_path / "f.sigmf-meta").write_text(json.dumps(meta))
    with pytest.raises(RecordingError, match=r"annotations\[0\] \(isac:seq 0\) covers samples 0 \.\.\. "
                                             r"9223372036854775806, across a retune at sample 10"):
        Recording.open(base)


def test_info_shows_the_segments_and_the_annotations(tmp_path, samples, capsys):
    base = foreign(tmp_path, samples, [{"core:sample_start": 0, "core:frequency": 1e9},
                                       {"core:sample_start": 10, "core:frequency": 2e9}],
                   [{"core:sample_start": 3, "core:sample_count": 4, "core:label": "burst",
                     "core:freq_lower_edge": 0.99e9, "core:freq_upper_edge": 1.01e9},
                    {"core:sample_start": 12, "core:sample_count": 2, "core:comment": "after the retune"}])
    text = describe(base)
    for part in ("centre 2 frequencies 1 GHz, 2 GHz", "segments    2 capture segments",
                 "segment 0: samples 0 ... 9 (10), centre 1 GHz", "segment 1: samples 10 ... 29 (20), centre 2 GHz",
                 "annotations 2 (not captures)", "annotation 0: samples 3 ... 6, label 'burst', 990 MHz ... 1.01 GHz",
                 "annotation 1: samples 12 ... 13, comment 'after the retune'"):
        assert part in text, part
    capture_lines = [line for line in text.splitlines() if line.strip()[:1].isdigit()]
    assert len(capture_lines) == 2 and "1 GHz" in capture_lines[0] and "2 GHz" in capture_lines[1]
    assert main(["info", str(base)]) == 0
    assert "segment 1: samples 10 ... 29" in capsys.readouterr().out


def test_a_pause_between_foreign_segments_stays_in_their_times(tmp_path, samples):
    """A recorder that paused starts a new segment with its own core:datetime (SigMF: ISO 8601 UTC, 'Z'): the
    capture times follow it (1.5 s later, to the nanosecond digits), not the sample count (5 us at 2 Msps)."""
    base = foreign(tmp_path, samples, [
        {"core:sample_start": 0, "core:datetime": "2026-12-07T16:30:59.999999990Z"},
        {"core:sample_start": 10, "core:datetime": "2026-12-07T16:31:01.500000000Z"},
        {"core:sample_start": 20}])                                   # no time: goes on from the one before
    with Recording.open(base) as rec:
        t0 = [rec.capture_info(i)["t0_s"] for i in range(3)]
    assert t0[0] == 0.0
    assert t0[1] == pytest.approx(1.50000001, abs=1e-12)
    assert t0[2] == pytest.approx(t0[1] + 10 / FS_HZ, abs=1e-12)


def test_global_index_gives_the_times_where_there_is_no_datetime(tmp_path, samples):
    base = foreign(tmp_path, samples, [{"core:sample_start": 5, "core:global_index": 1000},
                                       {"core:sample_start": 15, "core:global_index": 4000}])
    with Recording.open(base) as rec:
        t0 = [rec.capture_info(i)["t0_s"] for i in range(rec.num_captures)]
    assert t0 == pytest.approx([0.0, 5 / FS_HZ, (3000 + 5) / FS_HZ], abs=1e-15)   # samples 0-4 come first


@pytest.mark.parametrize("bad", ["2026-12-07T16:31:01", "2026-12-07T16:31:01+02:00", "2026-13-45T99:99:99Z", 5, None])
def test_a_datetime_that_is_not_utc_iso_8601_is_refused_by_name(tmp_path, samples, bad):
    base = foreign(tmp_path, samples, [{"core:sample_start": 0, "core:datetime": bad}])
    named = (r"captures\[0\]\.core:datetime = .*: allowed an ISO 8601 time in UTC ending in Z" if isinstance(bad, str)
             else r"captures/0/core:datetime: .* is not of type 'string'")     # the SigMF schema check, first
    with pytest.raises(RecordingError, match=named):
        Recording.open(base)
