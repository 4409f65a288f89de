"""Calibration files (sdr_isac.radio.calibration), `sdr-isac calibrate` (calibrate_cli.run) and open_radio loading them.

Truth: the simulated radio's injected system delay and chain phases, and each path's truth; the file
hash is checked against hashlib on the file's bytes.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from sdr_isac import config, radio, sensing
from sdr_isac.errors import InputError, RadioError, RecordingError
from sdr_isac.radio import calibrate_cli
from sdr_isac.radio.calibration import (
    ENV_FOLDER,
    CalibrationError,
    CalibrationKey,
    StaleCalibrationError,
    attach_calibration,
    find_calibration,
    key_of,
    load_calibration,
)
from sdr_isac.recording import Recording, RecordingWriter
from sdr_isac.waveform import IsacFrame
from tests.sensing.test_calibration_apply import DELAY_SAMPLES, PHASES_DEG, scene_toml, truth_path, wrapped_deg


def calibrate(tmp_path: Path, toml: str, *extra: str, name: str = "node.toml") -> tuple[Path, int]:
    """Write ``toml`` and run ``sdr-isac calibrate`` on it through calibrate_cli.run; returns (out folder, rc)."""
    cfg_path = tmp_path / name
    cfg_path.write_text(toml)
    out = tmp_path / "cal"
    parser = argparse.ArgumentParser(prog="sdr-isac")
    calibrate_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["calibrate", "--config", str(cfg_path), "--out", str(out), "--frames", "2", *extra])
    return out, args.func(args)


def sense_target(cfg: config.Config, folder: Path | None) -> tuple[float, float, float, dict]:
    """(estimated range, its CRB variance, truth range, capture metadata) of the target through a radio."""
    frame = IsacFrame(cfg.frame)
    with radio.open_radio(cfg, calibration_dir=folder if folder is not None else False) as r:
        r.tx(frame.samples(), cyclic=True)
        capture = r.rx(frame.num_samples)
    truth = truth_path(capture, "target")["range_m"]
    found = sensing.process(capture, cfg.frame, cfg.sensing).detections
    best = min(found, key=lambda d: abs(d.range_m - truth))
    return best.range_m, best.range_var_m2, truth, capture.metadata


def test_calibrate_then_open_radio_uses_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, rc = calibrate(tmp_path, scene_toml(), "--method", "loopback")
    assert rc == 0
    files = list(out.glob("*.json"))
    assert len(files) == 1
    printed = capsys.readouterr().out
    assert "system delay" in printed and str(files[0]) in printed
    cal = load_calibration(files[0])
    assert cal.sha256 == hashlib.sha256(files[0].read_bytes()).hexdigest()
    assert cal.correction.delay_samples == pytest.approx(DELAY_SAMPLES, abs=0.01)
    assert cal.correction.integer_delay_samples == 37
    assert cal.correction.fractional_delay_samples == pytest.approx(0.3, abs=0.01)
    for c, phase in enumerate(PHASES_DEG):
        assert abs(wrapped_deg(math.degrees(np.angle(cal.correction.channel_gains[c])) - phase)) < 0.05
    assert cal.key.rx_channels == (0, 1, 2, 3) and cal.key.device_serial == "sim:bs0"
    assert "--method loopback" in cal.command
    # the radio opened with the same configuration and the folder delivers calibrated captures
    cfg = config.loads(scene_toml())
    range_m, var_m2, truth_m, meta = sense_target(cfg, out)
    assert abs(range_m - truth_m) <= 3 * math.sqrt(var_m2)
    assert meta["calibration"]["id"] == cal.id and meta["calibration"]["sha256"] == cal.sha256
    raw_m, raw_var_m2, _, raw_meta = sense_target(cfg, None)
    assert "calibration" not in raw_meta
    assert abs(raw_m - truth_m) > 3 * math.sqrt(raw_var_m2)       # uncalibrated: the echo is 37.3 samples late


def test_environment_variable_names_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = calibrate(tmp_path, scene_toml(), "--method", "loopback")
    cfg = config.loads(scene_toml())
    monkeypatch.setenv(ENV_FOLDER, str(out))
    with radio.open_radio(cfg) as r:
        assert r.calibration.path.parent == out  # type: ignore[attr-defined]
    monkeypatch.delenv(ENV_FOLDER)
    with radio.open_radio(cfg) as r:
        assert r.calibration is None
    monkeypatch.chdir(out.parent)                  # True: the command's default folder, ./calibration
    (out.parent / "calibration").mkdir()
    with radio.open_radio(cfg, calibration_dir=True) as r:
        assert r.calibration is None
    out.rename(out.parent / "calibration" / "x")
    with radio.open_radio(cfg, calibration_dir=True) as r:
        assert r.calibration is None       # files are looked up in the folder itself, not below it
    for path in (out.parent / "calibration" / "x").iterdir():
        path.rename(out.parent / "calibration" / path.name)
    with radio.open_radio(cfg, calibration_dir=True) as r:
        assert r.calibration is not None


@pytest.mark.parametrize(("change", "named"), [({"numerology": 0}, "sample rate"), ({"carrier_hz": 3.6e9}, "LO")])
def test_stale_calibration_is_refused(tmp_path: Path, change: dict, named: str) -> None:
    out, _ = calibrate(tmp_path, scene_toml(), "--method", "loopback")
    cfg = config.loads(scene_toml(**change))
    with pytest.raises(StaleCalibrationError, match=rf"{named} .* in the file, .* here.*sdr-isac calibrate --config "
                                                    r"FILE --method loopback"):
        radio.open_radio(cfg, calibration_dir=out)


def test_other_device_and_missing_folder_open_uncalibrated(tmp_path: Path) -> None:
    out, _ = calibrate(tmp_path, scene_toml(), "--method", "loopback")
    other = config.loads(scene_toml().replace('"bs0"', '"bs1"'))
    with radio.open_radio(other, calibration_dir=out) as r:
        assert r.calibration is None
    with radio.open_radio(config.loads(scene_toml()), calibration_dir=tmp_path / "none") as r:
        assert r.calibration is None
    assert find_calibration(tmp_path / "none", key_of(radio.open_radio(other, calibration_dir=False))) is None


def test_attach_refuses_another_setting(tmp_path: Path) -> None:
    out, _ = calibrate(tmp_path, scene_toml(), "--method", "loopback")
    cal = load_calibration(next(out.glob("*.json")))
    with radio.open_radio(config.loads(scene_toml(carrier_hz=3.6e9)), calibration_dir=False) as r:
        with pytest.raises(CalibrationError, match="LO"):
            attach_calibration(r, cal)


@pytest.mark.parametrize("isolation_db", [0.0, 60.0])          # without and with the TX->RX leakage
def test_reflector_method(tmp_path: Path, isolation_db: float) -> None:
    out, rc = calibrate(tmp_path, scene_toml(isolation_db=isolation_db, clutter_m=60.0, targets=False), "--method",
                        "reflector", "--distance-m", "60")
    cal = load_calibration(next(out.glob("*.json")))
    assert rc == 0 and cal.method == "reflector" and cal.distance_m == 60.0
    assert cal.correction.delay_samples == pytest.approx(DELAY_SAMPLES, abs=0.02)


@pytest.mark.parametrize(("extra", "match"), [
    (("--method", "reflector"), "--distance-m"),
    (("--method", "loopback", "--distance-m", "5"), "loopback has no distance"),
    (("--method", "loopback", "--frames", "0"), "--frames"),
])
def test_cli_argument_errors(tmp_path: Path, extra: tuple[str, ...], match: str) -> None:
    with pytest.raises(InputError, match=match):
        calibrate(tmp_path, scene_toml(), *extra)


def test_receive_only_node_cannot_calibrate(tmp_path: Path) -> None:
    toml = scene_toml().replace('[[scene.nodes]]\nid = "bs0"\n', '[[scene.nodes]]\nid = "bs0"\ntransmits = false\n', 1)
    with pytest.raises(RadioError, match="cannot transmit"):
        calibrate(tmp_path, toml, "--method", "loopback")


def test_the_issue_command_on_sim_single_bs(tmp_path: Path, repo: Path) -> None:
    """`sdr-isac calibrate --config hw_configs/sim_single_bs.toml --method loopback`, then the radio uses it."""
    parser = argparse.ArgumentParser(prog="sdr-isac")
    calibrate_cli.add_parser(parser.add_subparsers())
    cfg_path = repo / "hw_configs" / "sim_single_bs.toml"
    args = parser.parse_args(["calibrate", "--config", str(cfg_path), "--method", "loopback", "--out",
                              str(tmp_path), "--frames", "1"])
    assert args.func(args) == 0
    cal = load_calibration(next(tmp_path.glob("*.json")))
    assert abs(cal.correction.delay_samples) < 0.01               # nothing injected there: range zero is zero
    with radio.open_radio(config.load(cfg_path), calibration_dir=tmp_path) as r:
        assert r.rx(1000).metadata["calibration"]["sha256"] == cal.sha256


# ------------------------------------------------------------------------------------ the file
@pytest.fixture(scope="module")
def good_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The text of one good calibration file (calibrated once for the module)."""
    out, _ = calibrate(tmp_path_factory.mktemp("good"), scene_toml(), "--method", "loopback")
    return next(out.glob("*.json")).read_text()


@pytest.mark.parametrize(("edit", "match"), [
    (lambda d: d.update(schema="other"), "not a calibration file"),
    (lambda d: d.update(version=99), "version = 99"),
    (lambda d: d.update(version=True), "version = True"),
    (lambda d: d.pop("delay_samples"), "malformed"),
    (lambda d: d.update(delay_samples=None), "malformed"),
    (lambda d: d.update(channel_gains=[[0.0, 0.0]] * 4), "channel_gains"),
    (lambda d: d.update(channel_gains=[[1.0, 0.0]]), "channel"),
    (lambda d: d["key"].pop("sample_rate_hz"), "key is malformed"),
    (lambda d: d.update(key=[]), "key is list"),
])
def test_malformed_files_are_refused(tmp_path: Path, good_text: str, edit, match: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cal.json"
    path.write_text(good_text)
    assert load_calibration(path).sha256 == hashlib.sha256(good_text.encode()).hexdigest()
    data = json.loads(good_text)
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match=match):
        load_calibration(path)


def test_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_bytes(b"\xff{")
    with pytest.raises(CalibrationError, match="cannot read"):
        load_calibration(bad)
    with pytest.raises(CalibrationError, match="cannot read"):
        load_calibration(tmp_path / "missing.json")


def test_recordings_accept_isac_calibration(tmp_path: Path) -> None:
    base = tmp_path / "rec"
    with RecordingWriter(base, sample_rate_hz=1e6, center_freq_hz=1e9, num_channels=1) as w:
        from sdr_isac.capture import Capture
        w.append(Capture(np.ones((1, 8), np.complex64), 1e6, 1e9))
    meta = base.with_suffix(".sigmf-meta")
    data = json.loads(meta.read_text())
    data["global"]["isac:calibration"] = {"id": "sim-bs0-x", "sha256": "ab" * 32}
    meta.write_text(json.dumps(data))
    with Recording.open(meta) as rec:
        assert rec.num_captures == 1
    for bad, match in (({"id": 3, "sha256": "ab" * 32}, "isac:calibration.id"), ({"id": "x", "sha256": "zz"},
                                                                               "isac:calibration.sha256"),
                       ("x", "isac:calibration")):
        data["global"]["isac:calibration"] = bad
        meta.write_text(json.dumps(data))
        with pytest.raises(RecordingError, match=match):
            Recording.open(meta)
    # the writer refuses a bad reference when it is made, before any capture is written
    fresh = tmp_path / "fresh"
    with pytest.raises(RecordingError, match="isac:calibration.sha256"):
        RecordingWriter(fresh, sample_rate_hz=1e6, center_freq_hz=1e9, num_channels=1,
                        calibration={"id": "x", "sha256": "zz"})
    assert not list(tmp_path.glob("fresh*")) and not list(tmp_path.glob(".fresh*"))


def test_calibrate_record_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`calibrate`, then `record` with the folder in $SDR_ISAC_CALIBRATION_DIR, then `process`: the target on its CRB."""
    from sdr_isac.cli import main

    out, _ = calibrate(tmp_path, scene_toml(), "--method", "loopback")
    cal = load_calibration(next(out.glob("*.json")))
    monkeypatch.setenv(ENV_FOLDER, str(out))
    rec = tmp_path / "rec"
    assert main(["record", "--config", str(tmp_path / "node.toml"), "--frames", "1", "--out", str(rec)]) == 0
    with Recording.open(rec.with_suffix(".sigmf-meta")) as recording:
        capture = recording.capture(0)
        truth_m = next(p["range_m"] for p in recording.truth(0)["paths"] if p["kind"] == "target")
    assert capture.metadata["calibration"]["sha256"] == cal.sha256
    meta = json.loads(rec.with_suffix(".sigmf-meta").read_text())
    assert meta["global"]["isac:calibration"] == {"id": cal.reference["id"], "sha256": cal.sha256}
    capsys.readouterr()
    assert main(["process", "--rx", str(rec.with_suffix(".sigmf-meta")), "--json"]) == 0
    detections = json.loads(capsys.readouterr().out)["captures"][0]["detections"]
    best = min(detections, key=lambda d: abs(d["range_m"] - truth_m))
    assert abs(best["range_m"] - truth_m) <= 3 * math.sqrt(best["range_var_m2"])


def test_pluto_test_server_loopback(tmp_path: Path) -> None:
    """Through the real driver stack (pyadi-iio -> libiio -> the test iiod) with a 37.3-sample system delay.

    A Pluto aligns every buffer on its strongest copy (the leakage), i.e. on the whole samples of the system
    delay; the calibration holds the rest (0.3 samples = 2.9 m), and the target's range after it is on its CRB.
    """
    from tests.radio.iiod_server import IiodServer, pluto_xml
    from tests.radio.test_pluto import TEXT, SceneChannel

    pytest.importorskip("adi")
    fs = 15.36e6
    text = TEXT.replace("leakage_isolation_db = 60", f"leakage_isolation_db = 60\ntiming_offset_s = {37.3 / fs!r}")
    channel = SceneChannel(config.loads(text))
    with IiodServer(echo=channel) as server:
        text = text.replace('node_id = "pluto0"', f'node_id = "pluto0"\nuri = "{server.uri}"')
        out, rc = calibrate(tmp_path, text, "--method", "loopback", name="pluto.toml")
        cal = load_calibration(next(out.glob("*.json")))
        board = re.search(r'name="hw_serial" value="([^"]+)"', pluto_xml()).group(1)       # what the board reports
        assert rc == 0 and cal.key.device_serial == f"pluto:{board}"
        assert cal.correction.delay_samples == pytest.approx(0.3, abs=0.02)
        cfg = config.loads(text)
        frame = IsacFrame(cfg.frame)
        ranges = []
        for folder in (out, False):
            with radio.open_radio(cfg, calibration_dir=folder) as r:
                r.tx(frame.samples(), cyclic=True)
                capture = r.rx(2 * frame.num_samples)
            # the target at [180, 0, 0] recedes at 20 m/s: its range at the middle of the frame sensed
            t_s = channel.starts[-1] + (capture.frame_offset + frame.num_samples / 2) / fs
            truth_m = math.hypot(180.0 + 20.0 * t_s, 0.0)
            found = sensing.process(capture, cfg.frame, cfg.sensing).detections
            best = min(found, key=lambda d: abs(d.range_m - truth_m))
            ranges.append((best.range_m - truth_m, math.sqrt(best.range_var_m2)))
        # under the AGC the gains the file holds do not hold: the calibration is not applied silently
        agc = config.loads(text.replace('node_id = "pluto0"', 'node_id = "pluto0"\ngain_mode = "slow_attack"'))
        with pytest.raises(StaleCalibrationError, match="gain_mode 'manual' in the file, 'slow_attack' here"):
            radio.open_radio(agc, calibration_dir=out)
    (calibrated, sigma), (raw, raw_sigma) = ranges
    assert abs(calibrated) <= 3 * sigma
    assert raw == pytest.approx(0.3 / fs * 299_792_458.0 / 2, abs=3 * raw_sigma + 0.1)      # 2.9 m long before


def test_a_radio_applies_one_calibration_at_a_time(tmp_path: Path) -> None:
    out, _ = calibrate(tmp_path, scene_toml(), "--method", "loopback")
    cal = load_calibration(next(out.glob("*.json")))
    with radio.open_radio(config.loads(scene_toml()), calibration_dir=out) as r:
        assert r.calibration is not None
        with pytest.raises(RadioError, match="already applies"):
            attach_calibration(r, cal)


class _RemovesLeakage:
    """A radio configuration as given, with ``remove_leakage = true`` (the Pluto's own leakage subtraction)."""

    remove_leakage = True

    def __init__(self, config):  # type: ignore[no-untyped-def]
        self._config = config

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._config, name)


def test_leakage_is_never_subtracted_twice(tmp_path: Path) -> None:
    """A calibration's leakage profile on a radio that removes the leakage itself would take it out twice, and
    calibrating with remove_leakage on would measure after the path is gone: both refused, naming the fix."""
    out, rc = calibrate(tmp_path, scene_toml(isolation_db=60.0), "--method", "loopback", "--leakage", "store")
    cal = load_calibration(next(out.glob("*.json")))
    assert rc == 0 and cal.correction.leakage_delays_samples.size
    with radio.open_radio(config.loads(scene_toml(isolation_db=60.0)), calibration_dir=False) as r:
        r.config = _RemovesLeakage(r.config)
        with pytest.raises(CalibrationError, match="remove_leakage = false"):
            attach_calibration(r, cal)
    pluto = '[radio]\nkind = "pluto"\nnode_id = "bs0"\nremove_leakage = true\n[frame]\nnumerology = 1\nnum_rb = 4\n'
    with pytest.raises(InputError, match="remove_leakage = true"):
        calibrate(tmp_path, pluto, "--method", "loopback")


def test_a_usrp_setting_that_moves_the_delay_keys_the_calibration() -> None:
    """A file made at one master clock rate (or antenna port) was applied at another without a word: the TX-to-RX
    delay of a B2xx follows the master clock.  The key now holds those settings; a file from before holds none
    and matches no radio that has some."""
    base = CalibrationKey("usrp:3141", "usrp", 30.72e6, 3.5e9, (("rx_gain_db", 30.0),), (0,), (0,),
                          (("master_clock_rate", "3.072e+07 Hz"), ("rx_antenna", "RX2")))
    other = dataclasses.replace(base, settings=(("master_clock_rate", "6.144e+07 Hz"), ("rx_antenna", "RX2")))
    assert base.differences(other) == ["master_clock_rate '6.144e+07 Hz' in the file, '3.072e+07 Hz' here"]
    old = CalibrationKey.from_json({k: v for k, v in base.to_json().items() if k != "settings"}, "old.json")
    assert old.settings == () and len(base.differences(old)) == 2
    assert CalibrationKey.from_json(base.to_json(), "new.json") == base


def test_a_file_that_is_not_this_devices_calibration_does_not_block_it(tmp_path: Path) -> None:
    """A notes.json (or another device's file this version cannot read) in the calibration folder made every
    radio fail to open; it is passed over now.  A damaged file that claims this device still stops it."""
    out, _ = calibrate(tmp_path, scene_toml(), "--method", "loopback")
    (out / "notes.json").write_text('{"what": "bench notes"}')
    other = json.loads(next(p for p in out.glob("*.json") if p.name != "notes.json").read_text())
    other["version"] = 99
    other["key"]["device_serial"] = "pluto:someone-else"
    (out / "other.json").write_text(json.dumps(other))
    cfg = config.loads(scene_toml())
    assert "calibration" in sense_target(cfg, out)[3]                # opened, with its own file applied
    mine = dict(other, key=dict(other["key"], device_serial="sim:bs0"))
    (out / "mine.json").write_text(json.dumps(mine))
    with pytest.raises(CalibrationError, match="version = 99"):
        radio.open_radio(cfg, calibration_dir=out)
