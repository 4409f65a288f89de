"""The sdr-isac command and the README's commands, run as a user runs them."""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sdr_isac
from sdr_isac import config
from sdr_isac.cli import build_parser, main
from sdr_isac.errors import number_argument

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "sdr_isac"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def subcommands() -> list[str]:
    action = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(action.choices)


@pytest.mark.parametrize("command", subcommands())
def test_every_subcommand_has_help(command):
    out = run(command, "--help")
    assert out.returncode == 0 and f"usage: sdr-isac {command}" in out.stdout


def test_top_level_help_and_version():
    out = run("--help")
    assert out.returncode == 0 and "waveform" in out.stdout and "demo" in out.stdout
    assert run("--version").stdout.startswith("sdr-isac ")


def test_waveform_summary(capsys):
    assert main(["waveform", "--config", str(REPO / "hw_configs/nr_fr2_120khz.toml")]) == 0
    text = capsys.readouterr().out
    assert "subcarrier spacing 120 kHz" in text and "sample rate 122.8800 Msps" in text
    # normal CP at N_FFT 1024, mu = 3: 72 samples, 72 + 64 on symbols 0 and 56 of the subframe
    assert re.search(r"symbols\s+0:\s+136 samples", text) and re.search(r"symbols\s+1-55:\s+72 samples", text)
    assert "prs" in text and "dmrs" in text


def test_bad_config_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[frame]\nnumerology = 7\n")
    out = run("waveform", "--config", str(bad))
    assert out.returncode == 2
    assert out.stderr.strip() == (f"error: {bad}: frame.numerology = 7: allowed 0 ... 4; "
                                  "set numerology within that range")


def test_demo_streams_senses_and_decodes(tmp_path):
    out = run("demo", "--snr-db", "30", "--frames", "3", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    stats = json.loads((tmp_path / "stream_stats.json").read_text())
    for node in ("bs0", "bs1"):
        node_stats = stats["nodes"][node]
        # every frame a node sent reached the host and was sensed (loopback, no loss)
        assert node_stats["node_sent"] == 3 and node_stats["received"] == 3 and node_stats["processed"] == 3
        assert node_stats["lost"] == 0 and node_stats["latency_mean_s"] is not None
        summary = json.loads((tmp_path / node / "summary.json").read_text())
        assert (tmp_path / node / "range_doppler.png").stat().st_size > 10_000
        # the seeded demo scene: both moving targets found in every frame, errors within 3 sqrt(CRB)
        assert summary["all_targets_detected"], summary
        assert summary["max_range_error_over_crb"] < 3 and summary["max_velocity_error_over_crb"] < 3
        for frame in summary["per_frame"]:
            assert {t["target"] for t in frame["targets"]} == {"car", "cyclist"}
    row = re.search(r"^mmse\s+([\d.]+)\s+(-?[\d.]+)\s+([\d.e+-]+)", out.stdout, re.M)
    assert row, out.stdout
    evm_percent, ber = float(row.group(1)), float(row.group(3))
    # 30 dB per RE with 2-branch combining: EVM well under 10 % and no bit errors at QPSK
    assert evm_percent < 10 and ber < 1e-4
    # the host fused the two BSs' time-aligned detections (frame k of bs0 with frame k of bs1): both targets
    # located, each within 5 sqrt(trace CRB) of the truth (a 2-D Gaussian error exceeds that with p < 1e-5)
    fused = json.loads((tmp_path / "fused.json").read_text())
    assert fused["sets"] == 3                         # each frame of bs0 pairs with the same frame of bs1
    last = fused["per_set"][-1]["targets"]
    assert {r["target"] for r in last if r["fused"]} == {"car", "cyclist"}, last
    assert all(r["position_error_m"] < 5 * r["crb_position_m"] for r in last), last
    assert "multi-BS fusion on the host" in out.stdout
    # the host recorded what it received, and the display rendered it offscreen as the host sensed it: the
    # detections of the replayed frame are the host's own, to the bit (no lamp post the host's notch removed),
    # with the host's fused estimates of that set
    recording = tmp_path / "recordings" / "bs0.sigmf-meta"
    assert recording.exists()
    assert (tmp_path / "display.png").stat().st_size > 10_000, out.stdout
    host_bs0 = json.loads((tmp_path / "bs0" / "summary.json").read_text())["per_frame"][0]
    shown = re.search(r"display of bs0 .*node bs0 seq 0, (\d+) detections, (\d+) fused estimates", out.stdout)
    assert shown, out.stdout
    assert int(shown.group(1)) == len(host_bs0["detections"]) == 2
    assert int(shown.group(2)) == len(fused["per_set"][0]["estimates"]) == 2
    from sdr_isac.display.sources import ReplaySource, scene_places

    demo_cfg = config.load(Path(sdr_isac.__file__).parent / "demo.toml")
    with ReplaySource(recording, demo_cfg.sensing, places=scene_places(demo_cfg)) as source:
        frame = source.wait(timeout_s=60.0)
    assert frame is not None and frame.seq == 0 and frame.node is not None
    assert [(d.range_m, d.velocity_mps) for d in frame.detections] == \
        [(d["range_m"], d["velocity_mps"]) for d in host_bs0["detections"]]


def test_readme_quick_start_is_two_make_commands():
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", text, re.S)
    assert block and block.group(1).split("\n")[:-1] == ["make demo", "make test"]


def test_readme_commands_run():
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Using it.*?```sh\n(.*?)```", text, re.S).group(1)
    venv_bin = Path(sys.executable).parent
    for line in block.strip().splitlines():
        command = line.split("  #")[0].strip().replace(".venv/bin/", f"{venv_bin}/")
        out = subprocess.run(command, shell=True, capture_output=True, text=True, cwd=REPO, timeout=120)
        assert out.returncode == 0, f"{line}\n{out.stderr}"
    check = subprocess.run(block.strip().splitlines()[-1].replace(".venv/bin/", f"{venv_bin}/"), shell=True,
                           capture_output=True, text=True, cwd=REPO)
    assert check.stdout.strip() == "0000110001010100010001100110100010010110101001110001101010000111"


def test_readme_python_examples_run():
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    # each block as written, and the radio example with the recording its comment offers too
    variants = [code.replace('"hw_configs/sim_single_bs.toml"', '"hw_configs/replay.toml"')
                for code in blocks if "replay.toml" in code and "open_radio" in code]
    assert variants
    for code in blocks + variants:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert out.returncode == 0, f"{code}\n{out.stderr}"
        if "CommReceiver" in code:
            ber, evm = map(float, out.stdout.split())
            assert ber == 0.0 and evm < 0.05


def test_record_overwrite_is_atomic_and_info_accepts_the_result(tmp_path):
    out = tmp_path / "run"
    stale = tmp_path / ".run.sigmf-data.0123456789ab.part"           # left by a killed earlier record
    stale.write_bytes(b"partial")
    for datatype in ("cf64_le", "cf32_le"):
        done = run("record", "--config", "hw_configs/sim_single_bs.toml", "--frames", "1", "--datatype", datatype,
                   "--out", str(out), "--overwrite")
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.sigmf-data", "run.sigmf-meta"]
    meta = json.loads((tmp_path / "run.sigmf-meta").read_text())
    assert meta["global"]["core:datatype"] == "cf32_le" and "core:dataset" not in meta["global"]
    info = run("info", str(out))
    assert info.returncode == 0 and "cf32_le" in info.stdout and "captures    1 (isac: annotations)" in info.stdout


def test_experiment_snr_db_keeps_every_variant_and_refuses_a_scenario_without_snr(tmp_path, monkeypatch):
    from sdr_isac import cli
    from sdr_isac.errors import ConfigError

    seen = {}

    def fake_run(scn, trials, out, seed, workers, scheduler, progress, points):
        seen["points"] = points
        raise SystemExit(0)

    monkeypatch.setattr("sdr_isac.experiments.runner.run_experiment", fake_run)
    with pytest.raises(SystemExit):
        cli.main(["experiment", "roc", "--snr-db=3,9", "--out", str(tmp_path / "r")])
    assert seen["points"] == [{"maps": m, "snr_db": s} for m in ("independent", "default") for s in (3.0, 9.0)]
    with pytest.raises(ConfigError, match="snr_offset_db, not snr_db"):
        cli._cmd_experiment(cli.build_parser().parse_args(["experiment", "continuity", "--snr-db=0"]))


def test_urban_demo_refuses_options_it_would_ignore():
    from sdr_isac import cli
    from sdr_isac.errors import ConfigError

    with pytest.raises(ConfigError, match="--seed with --scene urban"):
        cli._cmd_demo(cli.build_parser().parse_args(["demo", "--scene", "urban", "--seed", "3"]))
    # a negative --frame-interval is refused by argparse now, before any process starts (test below); the
    # library function refuses it too, before it starts one
    from sdr_isac.errors import SdrIsacError
    from sdr_isac.stream.demo import run_urban_demo

    with pytest.raises(SdrIsacError, match="frame_interval_s = -1.0 s"):
        run_urban_demo("unused", 1, frame_interval_s=-1.0)


def test_process_reads_its_config_once(tmp_path, monkeypatch):
    """``sdr-isac process --config FILE`` opens FILE once (it read it twice: config.load, then tomllib for the
    [frame] table as written) and gets the validated configuration and that table, {} without a [frame]."""
    import builtins
    import io

    from sdr_isac.cli import _process_config
    path = tmp_path / "frame.toml"
    path.write_text("[frame]\nsubcarriers = 100\nspacing_hz = 250e3\nfft_size = 128\ncp_samples = 16\n"
                    "num_symbols = 40\ncarrier_hz = 5.8e9\n\n[sensing]\nguard_cells = [2, 2]\n", encoding="utf-8")
    only_sensing = tmp_path / "sensing.toml"
    only_sensing.write_text("[sensing]\nguard_cells = [2, 2]\n", encoding="utf-8")
    opened: list[str] = []
    real_open = io.open

    def counting_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", counting_open)
    monkeypatch.setattr(builtins, "open", counting_open)
    cfg, raw = _process_config(str(path))
    assert opened.count(str(path)) == 1
    monkeypatch.undo()
    assert cfg == config.load(path)
    assert raw == {"subcarriers": 100, "spacing_hz": 250e3, "fft_size": 128, "cp_samples": 16, "num_symbols": 40,
                   "carrier_hz": 5.8e9}
    assert _process_config(str(only_sensing))[1] == {} and _process_config(None) == (None, {})


def test_a_list_starting_with_a_minus_sign_needs_no_equals_sign(tmp_path):
    from sdr_isac.errors import joined_list_values

    assert joined_list_values(["experiment", "fig5", "--snr-db", "-30,-20", "--trials", "1"]) == \
        ["experiment", "fig5", "--snr-db=-30,-20", "--trials", "1"]
    assert joined_list_values(["twin", "heatmap", "--area", "-.5,0,1,1", "--snr-db"]) == \
        ["twin", "heatmap", "--area=-.5,0,1,1", "--snr-db"]
    assert joined_list_values(["--snr-db", "--quiet", "--area", "-x"]) == ["--snr-db", "--quiet", "--area", "-x"]
    assert main(["experiment", "fig5", "--snr-db", "-30,-20", "--trials", "1", "--workers", "1", "--quiet",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / "summary.csv").read_text().count("\n") == 3          # header and the two SNRs


def test_cli_values_a_user_gets_wrong_are_named_in_cli_terms(tmp_path, capsys):
    """A negative capture index or timeout is refused (they ran the last capture, or stopped at once); a second
    record onto the same name says --overwrite, not the Python argument."""
    with pytest.raises(SystemExit):
        main(["process", str(tmp_path / "x.sigmf-meta"), "--capture", "-1"])
    assert "--capture: '-1': allowed an integer >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["host", "--config", str(REPO / "hw_configs" / "sim_single_bs.toml"), "--timeout", "-1"])
    assert "--timeout: '-1' s: allowed a finite number > 0 s; leave --timeout out" in capsys.readouterr().err
    cfg = str(REPO / "hw_configs" / "sim_single_bs.toml")
    assert main(["record", "--config", cfg, "--frames", "1", "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    assert main(["record", "--config", cfg, "--frames", "1", "--out", str(tmp_path / "r")]) == 2
    assert "the recording already exists; add --overwrite" in capsys.readouterr().err
    assert main(["record", "--config", cfg, "--frames", "1", "--out", str(tmp_path / "r"), "--overwrite"]) == 0
    for command in (["record", "--config", cfg, "--out", str(tmp_path / "z")], ["demo"]):
        with pytest.raises(SystemExit):
            main([*command, "--frames", "0"])
        assert "--frames: '0': allowed an integer >= 1 (frames)" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "expected"), [
    (["demo", "--snr-db", "nan"], "--snr-db: 'nan' dB: allowed a finite number of dB"),
    (["demo", "--snr-db", "inf"], "--snr-db: 'inf' dB: allowed a finite number of dB"),
    (["demo", "--scene", "urban", "--timeout", "-1"], "--timeout: '-1' s: allowed a finite number > 0 s"),
    (["demo", "--scene", "urban", "--frame-interval", "-1"],
     "--frame-interval: '-1' s: allowed a finite number >= 0 s and <= 3600 s"),
    (["core", "--config", "x.toml", "--timeout", "0"], "--timeout: '0' s: allowed a finite number > 0 s; leave"),
    (["core", "--config", "x.toml", "--timeout", "1e999"], "--timeout: '1e999' s: allowed a finite number > 0 s"),
])
def test_numbers_a_command_would_refuse_late_are_refused_before_it_starts(argv, expected, tmp_path, capsys):
    """``demo --snr-db nan`` ran the whole demo and failed at its link check; ``demo --scene urban --timeout -1``
    started the MECS hosts, which refused it; ``core --timeout`` took any float.  Now argparse refuses them,
    naming the flag, before anything starts (no output folder is made)."""
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=12),
                      st.integers(min_value=-10**400, max_value=10**400).map(str)),
       low=st.sampled_from([-math.inf, 0.0, 1e-300, -5.0]), low_open=st.booleans(),
       high=st.sampled_from([math.inf, 0.0, 3600.0, 1e308]))
def test_number_argument_returns_a_number_inside_its_bounds_or_refuses(text, low, low_open, high):
    parse = number_argument("s", low=low, low_open=low_open, high=high, hint="fix it")
    try:
        value = parse(text)
    except argparse.ArgumentTypeError as err:
        assert str(err).startswith(f"{text!r} s: allowed a finite number") and str(err).endswith("; fix it")
        return
    assert math.isfinite(value) and value <= high and (value > low if low_open else value >= low)
    assert value == float(text)


def test_display_errors_read_like_every_other_command(tmp_path, capsys):
    """``sdr-isac display`` printed 'sdr-isac display: ...' where every other command prints 'error: ...'."""
    assert main(["display", "--replay", str(tmp_path / "none"), "--snapshot", str(tmp_path / "x.png"),
                 "--pfa", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pfa = 2.0" in err
