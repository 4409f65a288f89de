"""Recording from a radio, replaying it, and the committed offline recordings."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sdr_isac import config, radio
from sdr_isac.cli import main
from sdr_isac.config import RadioConfig
from sdr_isac.errors import InputError, RadioError
from sdr_isac.recording import Recording
from sdr_isac.waveform import IsacFrame

REPO = Path(__file__).resolve().parents[2]
OFFLINE = sorted((REPO / "offline_data").glob("*.sigmf-meta"))
C = 299_792_458.0


def test_offline_data_is_there_and_small():
    names = {p.name.split(".")[0] for p in OFFLINE}
    assert {"single_target", "two_targets", "low_snr", "array_two_angles", "bistatic_pair",
            "multiband_high", "multiband_low"} <= names
    sizes = [p.stat().st_size + p.with_suffix(".sigmf-data").stat().st_size for p in OFFLINE]
    assert max(sizes) <= 5e6 and sum(sizes) <= 30e6


@pytest.mark.parametrize("meta", OFFLINE, ids=lambda p: p.name)
def test_offline_recordings_replay_with_truth(meta):
    with radio.open_radio(RadioConfig(kind="replay", uri=str(meta))) as r:
        rec = r.recording
        assert rec.frame is not None
        frame = IsacFrame(rec.frame)
        capture = r.next_capture()
        assert capture.iq.shape == (rec.num_channels, frame.num_samples)
        truth = capture.metadata["truth"]
        assert truth["paths"] and truth["targets"]
        # the capture holds the frame: its grid correlates with what was sent on the known REs
        grid = frame.ofdm.demodulate(capture.iq, offset=capture.frame_offset)
        assert np.all(np.isfinite(grid))


def test_two_target_truth_matches_geometry():
    with Recording.open(REPO / "offline_data" / "two_targets.sigmf-meta") as rec:
        truth = rec.truth(0)
    car = next(p for p in truth["paths"] if p["source"] == "car")
    assert car["range_m"] == pytest.approx(math.dist((0, 0, 5), (45, 8, 1)), rel=1e-9)
    assert car["velocity_mps"] < 0                      # approaching


SMALL = """
[frame]
num_rb = 8
fft_size = 128
[radio]
node_id = "bs0"
[scene]
seed = 4
[[scene.nodes]]
id = "bs0"
[[scene.targets]]
position_m = [60.0, 0.0, 0.0]
snr_per_re_db = 5
"""


def test_record_then_replay_round_trip(tmp_path):
    cfg = config.loads(SMALL)
    (tmp_path / "cfg.toml").write_text(SMALL)
    with radio.open_radio(cfg) as r:
        frame = IsacFrame(cfg.frame)
        r.tx(frame.samples())
        direct = [r.rx(frame.num_samples) for _ in range(3)]
    assert main(["record", "--config", str(tmp_path / "cfg.toml"), "--frames", "3",
                 "--out", str(tmp_path / "rec")]) == 0
    replay_cfg = RadioConfig(kind="replay", uri=str(tmp_path / "rec.sigmf-meta"), loop=True)
    with radio.open_radio(replay_cfg) as r:
        replayed = [r.rx(frame.num_samples) for _ in range(4)]
        with pytest.raises(InputError, match=r"num_samples = 99999: recorded captures .* hold \d+ samples"):
            r.rx(99999)
        with pytest.raises(InputError, match="the recording was made with a"):
            r.tx(np.ones(10, np.complex64))
    for a, b in zip(direct, replayed):
        np.testing.assert_array_equal(a.iq, b.iq)
        assert a.metadata["truth"]["paths"][0]["range_m"] == b.metadata["truth"]["paths"][0]["range_m"]
    assert [c.seq for c in replayed] == [0, 1, 2, 3]
    assert replayed[3].t0_s == pytest.approx(3 * frame.duration_s)          # the loop continues time


def test_end_of_recording_without_loop():
    with radio.open_radio(RadioConfig(kind="replay", uri=str(REPO / "offline_data/bistatic_pair.sigmf-meta"))) as r:
        r.next_capture()
        r.next_capture()
        with pytest.raises(RadioError, match="end of recording after 2 captures; set radio.loop = true"):
            r.next_capture()


def test_pacing_follows_recorded_time(monkeypatch):
    """With pace = true, capture i is delivered t0_i - t0_0 after the first (a fake clock records the waits)."""
    import sdr_isac.radio.replay as replay_mod

    class Clock:
        now = 100.0
        waits: list[float] = []

        def monotonic(self) -> float:
            return self.now

        def sleep(self, seconds: float) -> None:
            self.waits.append(seconds)
            self.now += seconds

    clock = Clock()
    monkeypatch.setattr(replay_mod, "time", clock)
    cfg = RadioConfig(kind="replay", uri=str(REPO / "offline_data/single_target.sigmf-meta"), pace=True)
    with radio.open_radio(cfg) as r:
        t0 = [r.next_capture().t0_s for _ in range(4)]
    assert clock.now - 100.0 == pytest.approx(t0[-1] - t0[0])
    assert clock.waits == pytest.approx(list(np.diff(t0)))


def test_info_command_shows_frames_and_truth(tmp_path, capsys):
    assert main(["info", str(REPO / "offline_data/two_targets.sigmf-meta")]) == 0
    text = capsys.readouterr().out
    assert "captures    4" in text and "car" in text and "cyclist" in text
    (tmp_path / "bad.sigmf-meta").write_text("{not json")
    (tmp_path / "bad.sigmf-data").write_bytes(b"")
    assert main(["info", str(tmp_path / "bad.sigmf-meta")]) == 2



def test_a_recording_whose_rate_no_radio_allows_is_refused_as_a_recording_error(tmp_path: Path) -> None:
    """The recording, not the user's config, holds the bad value: the error says so (not 'set sample_rate_hz')."""
    import json
    import shutil

    from sdr_isac.errors import RecordingError

    for f in (REPO / "offline_data").glob("two_targets.sigmf-*"):
        shutil.copy(f, tmp_path)
    meta = tmp_path / "two_targets.sigmf-meta"
    doc = json.loads(meta.read_text())
    doc["global"]["core:sample_rate"] = 100.0
    doc["global"].pop("core:sha512", None)
    meta.write_text(json.dumps(doc))
    with pytest.raises(RecordingError, match=r"core:sample_rate = 100 Hz.*a radio allows sample rates of"):
        radio.open_radio(RadioConfig(kind="replay", uri=str(meta)))


def test_a_replay_uri_that_is_not_there_names_the_field_and_the_working_directory(tmp_path, monkeypatch):
    from sdr_isac.errors import ConfigError
    from sdr_isac.radio.replay import ReplayRadio

    monkeypatch.chdir(tmp_path)
    cfg = config.RadioConfig(kind="replay", node_id="bs0", uri="offline_data/none.sigmf-meta")
    with pytest.raises(ConfigError, match=rf"radio.uri = 'offline_data/none.sigmf-meta': no recording there .*"
                                          rf"working directory {tmp_path}"):
        ReplayRadio(cfg)
