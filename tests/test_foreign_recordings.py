"""`sdr-isac process` on recordings made by another tool: every trap a new user meets (issue 16, item 5).

The recordings are written here with the `sigmf` package, as another tool would: an OFDM radar transmits frames
of random QPSK (a new payload every frame, as GNU Radio's OFDM radar example does), the echo of one target comes
back delayed by a fractional number of samples and Doppler-shifted (positive velocity = moving away,
f_D = -2 v f_c / c), plus white noise.  Answers are checked against that truth within 3 sqrt(CRB) (the CRB
variances the detections carry), and errors against the field names and values a user has to change.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import sigmf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sigmf import SigMFFile

from sdr_isac import config
from sdr_isac.cli import _cp_fit, _length_problem, main
from sdr_isac.errors import RecordingError
from sdr_isac.recording import Recording
from sdr_isac.recording.reader import waveform_description
from sdr_isac.waveform import IsacFrame, OfdmModulator

C = 299_792_458.0
REPO = Path(__file__).resolve().parents[1]
K, N_FFT, CP, M, SPACING = 100, 128, 16, 40, 250e3          # the frame of hw_configs/foreign_ofdm.toml
FS = N_FFT * SPACING
FC = 5.8e9
DELAY = 7.3                                                  # samples: 7.3 / 32 Msps * c / 2 = 34.2 m
VELOCITY = 60.0                                              # m/s, moving away


def frames_of(rng: np.random.Generator, num_frames: int, cp: int = CP, num_symbols: int = M,
              fft_size: int = N_FFT) -> np.ndarray:
    """Transmitted samples of ``num_frames`` frames, each a fresh random QPSK payload; shape (n,) complex64."""
    ofdm = OfdmModulator(K, fft_size, [cp] * num_symbols)
    grids = np.exp(2j * np.pi * rng.integers(0, 4, (num_frames, num_symbols, K)) / 4)
    return np.concatenate([ofdm.modulate(g)[0] for g in grids]).astype(np.complex64)


def echo_of(tx: np.ndarray, rng: np.random.Generator, delay: float = DELAY, velocity_mps: float = VELOCITY,
            carrier_hz: float = FC) -> np.ndarray:
    """The target's echo: fractional delay (by the FFT), Doppler f_D = -2 v f_c / c, amplitude 0.05, noise 0.01."""
    f = np.fft.fftfreq(tx.size, 1 / tx.size)
    delayed = np.fft.ifft(np.fft.fft(tx) * np.exp(-2j * np.pi * f * delay / tx.size))
    doppler_hz = -2.0 * velocity_mps * carrier_hz / C
    rx = 0.05 * delayed * np.exp(2j * np.pi * doppler_hz * np.arange(tx.size) / FS)
    rx += 0.01 * (rng.standard_normal(tx.size) + 1j * rng.standard_normal(tx.size))
    return rx.astype(np.complex64)


def write(path: Path, iq: np.ndarray, *, freq: float | None = FC, segments: int = 1,
          extra: dict | None = None, annotations: list[tuple[int, int]] = ()) -> Path:
    """A foreign SigMF recording (no isac: namespace); ``segments`` equal capture segments; ``annotations``
    ``(start, count)`` labelled "frame"."""
    iq.astype(np.complex64).tofile(path.with_suffix(".sigmf-data"))
    info = {sigmf.DATATYPE_KEY: "cf32_le", sigmf.SAMPLE_RATE_KEY: FS, sigmf.VERSION_KEY: sigmf.__specification__}
    meta = SigMFFile(data_file=str(path.with_suffix(".sigmf-data")), global_info={**info, **(extra or {})})
    for s in range(segments):
        meta.add_capture(s * iq.size // segments, metadata={sigmf.FREQUENCY_KEY: freq} if freq else {})
    for start, count in annotations:
        meta.add_annotation(start, count, metadata={sigmf.LABEL_KEY: "frame"})
    meta.tofile(path.with_suffix(".sigmf-meta"))
    return path.with_suffix(".sigmf-meta")


def toml(path: Path, **changes: object) -> Path:
    """hw_configs/foreign_ofdm.toml with some [frame] keys changed (None removes a key)."""
    keys = {"subcarriers": K, "spacing_hz": SPACING, "fft_size": N_FFT, "cp_samples": CP, "num_symbols": M,
            "carrier_hz": FC, **changes}
    body = "\n".join(f"{k} = {v!r}" for k, v in keys.items() if v is not None)
    path.write_text(f"[frame]\n{body}\n[sensing]\nmax_range_m = 250.0\n")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["process", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_on_truth(detections: list[dict], delay: float = DELAY, velocity_mps: float = VELOCITY) -> None:
    """The strongest detection is the target: range and velocity within 3 sqrt(CRB) (+ 1 cm, 0.05 m/s)."""
    assert detections, "no detection"
    d = detections[0]
    range_m = delay / FS * C / 2
    assert abs(d["range_m"] - range_m) < 3 * math.sqrt(d["range_var_m2"]) + 0.01, (d["range_m"], range_m)
    assert abs(d["velocity_mps"] - velocity_mps) < 3 * math.sqrt(d["velocity_var_mps2"]) + 0.05, \
        (d["velocity_mps"], velocity_mps)


@pytest.fixture()
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """One frame: TX and RX recordings."""
    rng = np.random.default_rng(4)
    tx = frames_of(rng, 1)
    return write(tmp_path / "tx", tx), write(tmp_path / "rx", echo_of(tx, rng))


# ---- no frame ------------------------------------------------------------------------------------------------
def test_no_frame_names_config_and_shows_a_frame_section(pair, tmp_path, capsys):
    tx, rx = pair
    code, _, err = run(capsys, "--rx", rx, "--tx", tx)
    assert code == 2
    assert "--config FILE with a [frame] section" in err and "no isac:frame, no ofdm: keys" in err
    assert "process()" not in err                                # the Python advice of before
    example = err.split("for example\n", 1)[1].split("\n(", 1)[0]
    shown = config.loads(example)                                # the example is a valid [frame], as printed
    assert (shown.frame.subcarriers, shown.frame.fft_size, shown.frame.cp_samples) == (K, N_FFT, CP)
    # a --config with [sensing] only: the same, naming the file
    only_sensing = tmp_path / "sensing.toml"
    only_sensing.write_text("[sensing]\nmax_range_m = 100.0\n")
    code, _, err = run(capsys, "--rx", rx, "--tx", tx, "--config", only_sensing)
    assert code == 2 and f"{only_sensing} has no [frame] section" in err


# ---- no reference ----------------------------------------------------------------------------------------------
def test_config_without_tx_is_refused_and_the_opt_in_works(tmp_path, capsys):
    rng = np.random.default_rng(5)
    cfg = toml(tmp_path / "f.toml")
    built = IsacFrame(config.load(cfg).frame)
    # 1. another tool's payload: before, the frame's own seeded payload was the reference (a false target, rc 0)
    tx = frames_of(rng, 1)
    rx = write(tmp_path / "rx", echo_of(tx, rng))
    code, out, err = run(capsys, "--rx", rx, "--config", cfg)
    assert code == 2 and out == ""
    assert "pass --tx TX.sigmf-meta" in err and "--reference frame" in err and "data.seed = 0" in err
    # 2. the transmitter sent exactly sdr_isac's frame of that [frame] (seed 0): --reference frame is right
    ours = built.samples()[0]
    rx_ours = write(tmp_path / "rx_ours", echo_of(ours, rng))
    code, out, err = run(capsys, "--rx", rx_ours, "--config", cfg, "--reference", "frame", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["reference"].startswith("the frame's own symbols")
    assert_on_truth(data["captures"][0]["detections"])
    # --reference frame with --tx, --reference tx without --tx: contradictions
    code, _, err = run(capsys, "--rx", rx, "--config", cfg, "--reference", "tx")
    assert code == 2 and "without --tx" in err
    code, _, err = run(capsys, "--rx", rx, "--tx", rx, "--config", cfg, "--reference", "frame")
    assert code == 2 and "allowed one reference" in err


# ---- lengths: which of CP, symbols, FFT is off ------------------------------------------------------------------
@pytest.mark.parametrize("true, told, named", [
    ({"cp": 20}, {}, "the CP is off: set cp_samples = 20"),                      # the frame is shorter than TX
    ({"cp": 12}, {}, "the CP is off: set cp_samples = 12"),                      # the frame is longer than TX
    ({"num_symbols": 44}, {}, "the symbol count is off: set num_symbols = 44"),
    ({"fft_size": 128}, {"fft_size": 120, "spacing_hz": FS / 120}, "the FFT size is off: set fft_size = 128"),
])
def test_a_frame_that_does_not_fit_the_tx_recording_names_what_is_off(tmp_path, capsys, true, told, named):
    rng = np.random.default_rng(6)
    tx = frames_of(rng, 1, **true)
    tx_path, rx_path = write(tmp_path / "tx", tx), write(tmp_path / "rx", echo_of(tx, rng))
    code, out, err = run(capsys, "--rx", rx_path, "--tx", tx_path, "--config", toml(tmp_path / "f.toml", **told))
    assert code == 2 and out == ""
    assert f"TX {tx_path} holds {tx.size} samples, not a whole number of frames" in err
    assert named in err
    assert "cyclic-prefix correlation 1.00" in err             # the samples themselves confirm the fix


def test_a_capture_shorter_than_the_frame_and_a_partial_tail(tmp_path, capsys):
    rng = np.random.default_rng(7)
    cfg = toml(tmp_path / "f.toml")
    tx = frames_of(rng, 2)
    tx_path = write(tmp_path / "tx", tx[: tx.size // 2])
    rx_path = write(tmp_path / "rx", echo_of(tx, rng)[: tx.size // 2 - 100])       # less than one frame
    code, _, err = run(capsys, "--rx", rx_path, "--tx", tx_path, "--config", cfg)
    assert code == 2 and f"holds {tx.size // 2 - 100} samples, not a whole number of frames of 5760" in err
    # a capture that ends in a partial frame: refused with the way out, which senses the whole frame(s)
    rx_tail = write(tmp_path / "rx_tail", echo_of(tx, rng)[: tx.size // 2 + 300])
    code, _, err = run(capsys, "--rx", rx_tail, "--tx", tx_path, "--config", cfg)
    assert code == 2 and "--drop-tail" in err
    code, out, err = run(capsys, "--rx", rx_tail, "--tx", tx_path, "--config", cfg, "--drop-tail", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["frames_sensed"] == 1
    assert_on_truth(data["captures"][0]["detections"])


def test_sample_rate_that_disagrees_names_spacing(tmp_path, capsys):
    rng = np.random.default_rng(8)
    tx = frames_of(rng, 1)
    tx_path, rx_path = write(tmp_path / "tx", tx), write(tmp_path / "rx", echo_of(tx, rng))
    code, _, err = run(capsys, "--rx", rx_path, "--tx", tx_path, "--config", toml(tmp_path / "f.toml",
                                                                                   spacing_hz=200e3))
    assert code == 2 and "core:sample_rate = 3.2e+07 Hz" in err and "set spacing_hz = 250000 Hz" in err


# ---- carrier ---------------------------------------------------------------------------------------------------
def test_carrier_in_config_and_recording_that_differ(tmp_path, capsys):
    """The echo's Doppler belongs to 5.8 GHz; the recording says 2.4 GHz (an IF, a wrong label)."""
    rng = np.random.default_rng(9)
    tx = frames_of(rng, 1)
    tx_path = write(tmp_path / "tx", tx, freq=2.4e9)
    rx_path = write(tmp_path / "rx", echo_of(tx, rng, carrier_hz=FC), freq=2.4e9)
    cfg = toml(tmp_path / "f.toml")
    code, out, err = run(capsys, "--rx", rx_path, "--tx", tx_path, "--config", cfg)
    assert code == 2 and out == ""
    assert "carrier_hz = 5.8e+09 Hz" in err and "core:frequency = 2.4e+09 Hz" in err and "--carrier-from" in err
    code, out, err = run(capsys, "--rx", rx_path, "--tx", tx_path, "--config", cfg, "--carrier-from", "config",
                         "--json")
    assert code == 0, err
    assert_on_truth(json.loads(out)["captures"][0]["detections"])
    # the recording's carrier on purpose: velocity scaled by 5.8 / 2.4, as Doppler -> velocity says
    code, out, err = run(capsys, "--rx", rx_path, "--tx", tx_path, "--config", cfg, "--carrier-from", "recording",
                         "--json")
    assert code == 0, err
    assert_on_truth(json.loads(out)["captures"][0]["detections"], velocity_mps=VELOCITY * FC / 2.4e9)
    # no carrier anywhere: refused, not the default 3.5 GHz
    bare_tx, bare_rx = write(tmp_path / "btx", tx, freq=None), write(tmp_path / "brx", echo_of(tx, rng), freq=None)
    code, _, err = run(capsys, "--rx", bare_rx, "--tx", bare_tx, "--config", toml(tmp_path / "g.toml",
                                                                                   carrier_hz=None))
    assert code == 2 and "no core:frequency" in err and "add carrier_hz" in err


# ---- several frames --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("segments", [1, 4])
def test_every_frame_is_sensed_against_its_own_tx_frame(tmp_path, capsys, segments):
    """4 frames, a new payload each: frame i of RX only shows the target against frame i of TX."""
    rng = np.random.default_rng(10)
    tx = frames_of(rng, 4)
    tx_path = write(tmp_path / "tx", tx, segments=segments)
    rx_path = write(tmp_path / "rx", echo_of(tx, rng), segments=segments)
    cfg = toml(tmp_path / "f.toml")
    code, out, err = run(capsys, "--rx", rx_path, "--tx", tx_path, "--config", cfg, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["frames_sensed"] == 4 and [c["frame"] for c in data["captures"]] == [0, 1, 2, 3]
    for captured in data["captures"]:
        assert_on_truth(captured["detections"])
        # the Doppler phase runs on across frames: frame i starts i frame lengths later
        assert captured["t0_s"] == pytest.approx(captured["frame"] * M * (N_FFT + CP) / FS)
    code, out, _ = run(capsys, "--rx", rx_path, "--tx", tx_path, "--config", cfg)
    assert code == 0 and f"sensed 4 frame(s) of {rx_path}" in out and "frame i for RX frame i" in out
    # one capture of several: its frames keep their place in the recording, and their TX frames
    code, out, err = run(capsys, "--rx", rx_path, "--tx", tx_path, "--config", cfg, "--capture", "0", "--json")
    assert code == 0, err
    assert [c["frame"] for c in json.loads(out)["captures"]] == ([0, 1, 2, 3] if segments == 1 else [0])
    if segments == 4:
        code, out, err = run(capsys, "--rx", rx_path, "--tx", tx_path, "--config", cfg, "--capture", "2", "--json")
        only = json.loads(out)["captures"]
        assert code == 0 and [c["frame"] for c in only] == [2]
        assert_on_truth(only[0]["detections"])
        assert run(capsys, "--rx", rx_path, "--tx", tx_path, "--config", cfg, "--capture", "4")[0] == 2
    # fewer TX frames than RX frames (and more than one): refused, never paired by guess
    short_tx = write(tmp_path / "tx3", tx[: 3 * M * (N_FFT + CP)])
    code, _, err = run(capsys, "--rx", rx_path, "--tx", short_tx, "--config", cfg)
    assert code == 2 and f"TX {short_tx} holds 3 frames, RX {rx_path} 4" in err


def test_frames_with_gaps_marked_by_annotations(tmp_path, capsys):
    """Bursts: 3 frames with 700 samples of noise between them, each marked by an annotation one frame long."""
    rng = np.random.default_rng(14)
    length, gap = M * (N_FFT + CP), 700
    tx_frames = frames_of(rng, 3)
    burst = np.zeros(3 * (length + gap), np.complex64)
    for i in range(3):
        burst[i * (length + gap): i * (length + gap) + length] = tx_frames[i * length:(i + 1) * length]
    rx = echo_of(burst, rng)
    for name, data in (("tx", burst), ("rx", rx)):
        write(tmp_path / name, data, annotations=[(i * (length + gap), length) for i in range(3)])
    cfg = toml(tmp_path / "f.toml")
    code, out, err = run(capsys, "--rx", tmp_path / "rx.sigmf-meta", "--tx", tmp_path / "tx.sigmf-meta", "--config",
                         cfg, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["frames_sensed"] == 3
    for captured in data["captures"]:
        assert captured["t0_s"] == pytest.approx(captured["frame"] * (length + gap) / FS)
        assert_on_truth(captured["detections"])
    # an annotation that runs past the data: refused by name
    write(tmp_path / "bad", rx, annotations=[(rx.size - length + 1, length)])
    code, _, err = run(capsys, "--rx", tmp_path / "bad.sigmf-meta", "--tx", tmp_path / "tx.sigmf-meta", "--config",
                       cfg)
    assert code == 2 and f"core:sample_start = {rx.size - length + 1}" in err


def test_one_tx_frame_of_a_cyclic_transmission_is_said_so(tmp_path, capsys):
    rng = np.random.default_rng(11)
    one = frames_of(rng, 1)
    tx_path = write(tmp_path / "tx", one)
    rx_path = write(tmp_path / "rx", echo_of(np.tile(one, 3), rng))
    code, out, err = run(capsys, "--rx", rx_path, "--tx", tx_path, "--config", toml(tmp_path / "f.toml"), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["frames_sensed"] == 3 and "cyclic transmission" in data["reference"]
    for captured in data["captures"]:
        assert_on_truth(captured["detections"])


# ---- the recording's own OFDM description --------------------------------------------------------------------------
OFDM_KEYS = {"core:extensions": [{"name": "ofdm", "version": "1.0.0", "optional": True}],    # declared, as SigMF asks
             "ofdm:subcarriers": K, "ofdm:fft_size": N_FFT, "ofdm:cp_samples": CP, "ofdm:num_symbols": M}


def test_waveform_read_from_the_recordings_ofdm_keys(tmp_path, capsys):
    rng = np.random.default_rng(12)
    tx = frames_of(rng, 2)
    tx_path = write(tmp_path / "tx", tx, extra=OFDM_KEYS)
    rx_path = write(tmp_path / "rx", echo_of(tx, rng), extra=OFDM_KEYS)
    with Recording.open(rx_path) as rec:
        frame, source = waveform_description(rec)
    expected = config.load(REPO / "hw_configs/foreign_ofdm.toml").frame       # the documented example
    assert source == "ofdm:" and frame == expected
    code, out, err = run(capsys, "--rx", rx_path, "--tx", tx_path, "--json")              # no --config
    assert code == 0, err
    data = json.loads(out)
    assert data["waveform"] == "RX's ofdm: description" and data["frames_sensed"] == 2
    for captured in data["captures"]:
        assert_on_truth(captured["detections"])
    # a description is a layout, not a payload: without --tx it is refused like a [frame]
    code, _, err = run(capsys, "--rx", rx_path)
    assert code == 2 and "pass --tx" in err


@pytest.mark.parametrize("keys, pattern", [
    ({**OFDM_KEYS, "ofdm:cp_len": 16}, r"ofdm:cp_len: allowed the keys ofdm:subcarriers"),
    ({k: v for k, v in OFDM_KEYS.items() if k != "ofdm:num_symbols"}, r"lacks ofdm:num_symbols"),
    ({**OFDM_KEYS, "ofdm:cp_samples": 128}, r"cp_samples = 128"),
    ({**OFDM_KEYS, "ofdm:subcarriers": 101}, r"subcarriers = 101"),
    ({**OFDM_KEYS, "ofdm:fft_size": True}, r"fft_size"),
])
def test_a_bad_ofdm_description_is_refused_by_name(tmp_path, keys, pattern):
    path = write(tmp_path / "rx", np.zeros(M * (N_FFT + CP), np.complex64), extra=keys)
    with Recording.open(path) as rec, pytest.raises(RecordingError, match=pattern):
        waveform_description(rec)


def test_no_carrier_in_an_ofdm_description_is_refused(tmp_path):
    path = write(tmp_path / "rx", np.zeros(M * (N_FFT + CP), np.complex64), freq=None, extra=OFDM_KEYS)
    with Recording.open(path) as rec, pytest.raises(RecordingError, match="no ofdm:carrier_hz and core:frequency"):
        waveform_description(rec)


def test_hw_config_example_senses_its_documented_recording(tmp_path, capsys):
    """The command in the header of hw_configs/foreign_ofdm.toml, on a recording made to its [frame]."""
    rng = np.random.default_rng(13)
    tx = frames_of(rng, 2)
    tx_path, rx_path = write(tmp_path / "tx", tx), write(tmp_path / "rx", echo_of(tx, rng))
    code, out, err = run(capsys, "--rx", rx_path, "--tx", tx_path, "--config", REPO / "hw_configs/foreign_ofdm.toml")
    assert code == 0, err
    assert "sensed 2 frame(s)" in out


# ---- the length diagnosis, over layouts ------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fft_size=st.sampled_from([16, 64, 128, 1000]), cp=st.integers(0, 15), num_symbols=st.integers(1, 300),
       field=st.sampled_from(["cp", "num_symbols"]), step=st.sampled_from([-3, -1, 1, 7]), seed=st.integers(0, 2**32))
def test_length_diagnosis_names_the_field_the_samples_confirm(fft_size, cp, num_symbols, field, step, seed):
    """The TX has (fft, cp', M') with one field moved; the [frame] says (fft, cp, M).  Where the samples' cyclic
    prefixes are long enough to tell (>= 64 CP samples in all), the diagnosis names exactly the moved field; at the
    edges (no CP, one symbol, a frame longer than the samples) it still answers with the lengths, never raises."""
    true_cp = cp + step if field == "cp" else cp
    true_m = num_symbols + step if field == "num_symbols" else num_symbols
    if not (0 <= true_cp < fft_size and true_m >= 1):
        return
    rng = np.random.default_rng(seed)
    k = fft_size - 2 if fft_size > 16 else 16
    ofdm = OfdmModulator(k, fft_size, [true_cp] * true_m)
    tx = ofdm.modulate(np.exp(2j * np.pi * rng.integers(0, 4, (true_m, k)) / 4))[0]
    frame = IsacFrame(config.FrameConfig(subcarriers=k, spacing_hz=1e4, fft_size=fft_size, cp_samples=cp,
                                         num_symbols=num_symbols))
    message = _length_problem(frame, tx.size, "TX", tx)
    assert message.startswith(f"TX holds {tx.size} samples, not a whole number of frames of {frame.num_samples}")
    assert _cp_fit(tx, fft_size, np.full(true_m, true_cp)) == pytest.approx(1.0, abs=1e-5) or true_cp == 0
    fix = f"cp_samples = {true_cp}" if field == "cp" else f"num_symbols = {true_m}"
    if true_cp * true_m >= 64 and round(tx.size / frame.num_samples) == 1:
        assert f"is off: set {fix}" in message, message


def test_cp_fit_edges():
    assert math.isnan(_cp_fit(np.zeros(0, np.complex64), 16, np.array([4])))            # nothing to read
    assert math.isnan(_cp_fit(np.ones(40, np.complex64), 16, np.array([0, 0])))          # no CP
    assert math.isnan(_cp_fit(np.zeros(40, np.complex64), 16, np.array([4, 4])))         # all zero: no power
    assert _cp_fit(np.ones(40, np.complex64), 16, np.array([4, 4])) == pytest.approx(1.0)
    noise = np.random.default_rng(0).standard_normal(1 << 16).astype(np.complex64)
    assert _cp_fit(noise, 1024, np.full(60, 64)) < 0.05                                  # 3840 CP samples: ~1/62


def test_an_sdr_isac_recording_keeps_its_own_frame_and_says_so(capsys):
    """--config with another [frame] on a recording that carries isac:frame: the recorded frame is used, with a note."""
    code, out, err = run(capsys, "--rx", REPO / "offline_data/single_target.sigmf-meta", "--config",
                         REPO / "hw_configs/foreign_ofdm.toml", "--capture", "0", "--json")
    assert code == 0, err
    assert "the [frame] of" in err and "differs and is not used" in err
    data = json.loads(out)
    assert data["waveform"] == "RX's isac:frame description" and data["frames_sensed"] == 1
    with Recording.open(REPO / "offline_data/single_target.sigmf-meta") as rec:
        truth = rec.truth(0)["paths"][0]
    d = data["captures"][0]["detections"][0]
    assert abs(d["range_m"] - truth["range_m"]) < 3 * math.sqrt(d["range_var_m2"]) + 0.05
