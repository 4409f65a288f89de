"""Measuring and applying a receiver calibration (sdr_isac.sensing.calibration) on the simulated radio.

Truth: the simulated radio's injected system delay (``timing_offset_s``), chain phases and gains
(``rx_channel_phases_deg``, ``rx_channel_gains_db``) and the truth of every path; accuracy is checked
against the Cramér-Rao bound computed here from the truth SNR (sensing.crb.delay_doppler_fim), not from
the estimator's own output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdr_isac import config, radio, sensing
from sdr_isac.capture import Capture
from sdr_isac.errors import InputError, SensingError
from sdr_isac.sensing.calibration import (
    RxCorrection,
    advance,
    apply_calibration,
    average_frames,
    measure_loopback,
    measure_reflector,
)
from sdr_isac.sensing.crb import delay_doppler_fim
from sdr_isac.sensing.csi import known_reference
from sdr_isac.units import SPEED_OF_LIGHT_MPS
from sdr_isac.waveform import IsacFrame

FS_HZ = 15.36e6                     # numerology 1, N_FFT 512
DELAY_SAMPLES = 37.3                # the injected system delay
PHASES_DEG = (0.0, 90.0, -135.0, 37.0)
GAINS_DB = (0.0, -1.0, 2.0, 0.5)


def scene_toml(*, delay: float = DELAY_SAMPLES, isolation_db: float = 60.0, targets: bool = True,
               clutter_m: float | None = None, carrier_hz: float = 3.5e9, numerology: int = 1,
               phases: tuple[float, ...] = PHASES_DEG, gains: tuple[float, ...] = GAINS_DB) -> str:
    """A small simulated monostatic node with an injected system delay and chain phases/gains."""
    text = f"""
[frame]
numerology = {numerology}
num_rb = 24
num_slots = 2
carrier_hz = {carrier_hz}
[radio]
kind = "sim"
node_id = "bs0"
[scene]
seed = 7
[[scene.nodes]]
id = "bs0"
tx_power_dbm = 20.0
antenna_gain_dbi = 10.0
rx_array = {{ num_elements = [4], spacing_wavelengths = 0.5 }}
leakage_isolation_db = {isolation_db}
timing_offset_s = {delay / (FS_HZ * 2 ** (numerology - 1))!r}
rx_channel_phases_deg = {list(phases)}
rx_channel_gains_db = {list(gains)}
"""
    if targets:
        text += """
[[scene.targets]]
id = "car"
position_m = [150.0, 20.0, 0.0]
velocity_mps = [-10.0, 0.0, 0.0]
rcs_m2 = 100.0
"""
    if clutter_m is not None:
        text += f"""
[[scene.clutter]]
position_m = [{clutter_m}, 0.0, 0.0]
rcs_m2 = 1000.0
"""
    return text


def captures(cfg: config.Config, n: int) -> list[Capture]:
    frame = IsacFrame(cfg.frame)
    with radio.open_radio(cfg, calibration_dir=False) as r:
        r.tx(frame.samples(), cyclic=True)
        return [r.rx(frame.num_samples) for _ in range(n)]


def truth_path(capture: Capture, kind: str) -> dict:
    return next(p for p in capture.metadata["truth"]["paths"] if p["kind"] == kind)


def wrapped_deg(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


# ------------------------------------------------------------------------------------ measurement on the CRB
def test_loopback_delay_and_phases_within_the_crb() -> None:
    """Leakage only, at a moderate SNR: delay and relative phases within 3 sqrt(CRB) of the injected truth."""
    cfg = config.loads(scene_toml(isolation_db=92.0, targets=False))
    caps = captures(cfg, 2)
    leak = truth_path(caps[0], "leakage")
    assert leak["delay_samples"] == pytest.approx(DELAY_SAMPLES, abs=1e-9)
    measured = measure_loopback(average_frames(caps))
    # the CRB from the truth: per-RE SNR times 2 frames averaged, 4 channels with an amplitude each
    frame = IsacFrame(cfg.frame)
    _, mask, _ = known_reference(frame, ())
    snr = 10 ** (leak["snr_per_re_db"] / 10) * len(caps)
    assert 10 < 10 * math.log10(snr) < 30                       # a moderate SNR: the bound is not vanishing
    times = (frame.symbol_starts + frame.cp_lengths) / frame.sample_rate_hz
    fim = 4 * delay_doppler_fim(snr, mask, frame.config.subcarrier_spacing_hz, times)
    sigma_delay = math.sqrt(np.linalg.inv(fim)[0, 0]) * frame.sample_rate_hz
    assert abs(measured.delay_samples - DELAY_SAMPLES) <= 3 * sigma_delay
    assert sigma_delay < 0.01                                    # a small fraction of a sample
    assert math.sqrt(measured.delay_crb_samples2) == pytest.approx(sigma_delay, rel=0.3)
    n_re = int(np.count_nonzero(mask))
    sigma_phase_deg = math.degrees(math.sqrt(1.0 / (n_re * snr)))   # a ratio of two amplitudes
    for c, phase in enumerate(PHASES_DEG):
        got = math.degrees(np.angle(measured.channel_gains[c]))
        assert abs(wrapped_deg(got - phase)) <= 3 * sigma_phase_deg + 1e-9
        assert 20 * math.log10(abs(measured.channel_gains[c])) == pytest.approx(GAINS_DB[c], abs=0.05)
    assert sigma_phase_deg < 0.1


def test_loopback_in_a_scene_with_echoes() -> None:
    """Targets and strong leakage: the delay within 0.01 sample, the phases within 0.05 degree."""
    cfg = config.loads(scene_toml())
    measured = measure_loopback(average_frames(captures(cfg, 2)))
    assert measured.delay_samples == pytest.approx(DELAY_SAMPLES, abs=0.01)
    for c, phase in enumerate(PHASES_DEG):
        assert abs(wrapped_deg(math.degrees(np.angle(measured.channel_gains[c])) - phase)) < 0.05
    assert measured.leakage_amplitudes.shape == (4, 1)
    assert abs(measured.leakage_delays_samples[0]) < 1e-9          # the loopback path is range zero


def test_target_range_after_calibration_is_on_its_crb() -> None:
    """Before: biased by the system delay (c d / (2 fs) = 364 m); after: within 3 sqrt(CRB) of the truth."""
    cfg = config.loads(scene_toml())
    caps = captures(cfg, 3)
    corr = measure_loopback(average_frames(caps[:2])).correction({"id": "test"})
    capture = caps[2]
    truth_m = truth_path(capture, "target")["range_m"]
    bias_m = DELAY_SAMPLES / FS_HZ * SPEED_OF_LIGHT_MPS / 2
    raw = sensing.process(capture, cfg.frame, cfg.sensing).detections
    near = min(raw, key=lambda d: abs(d.range_m - truth_m - bias_m))
    assert abs(near.range_m - truth_m - bias_m) < 2.0               # uncalibrated: the whole delay is range
    assert near.map_snr_db > 15
    assert not any(abs(d.range_m - truth_m) <= 3 * math.sqrt(d.range_var_m2) and d.map_snr_db > 15 for d in raw)
    calibrated = apply_calibration(capture, corr)
    found = sensing.process(calibrated, cfg.frame, cfg.sensing).detections
    best = min(found, key=lambda d: abs(d.range_m - truth_m))
    assert abs(best.range_m - truth_m) <= 3 * math.sqrt(best.range_var_m2)
    # the angle of a target at (150, 20) from a ULA along +y: asin(20 / 151.3) from broadside
    assert best.angle_rad == pytest.approx(math.asin(20.0 / math.hypot(150.0, 20.0)), abs=0.01)
    assert calibrated.metadata["calibration"]["id"] == "test"
    assert not any(abs(d.range_m) < 1.0 and d.snr_db > 20 for d in found)   # the leakage is subtracted


def test_reflector_at_a_known_distance() -> None:
    cfg = config.loads(scene_toml(isolation_db=0.0, clutter_m=60.0))
    measured = measure_reflector(average_frames(captures(cfg, 2)), 60.0)
    assert measured.delay_samples == pytest.approx(DELAY_SAMPLES, abs=0.02)
    for c, phase in enumerate(PHASES_DEG):
        assert abs(wrapped_deg(math.degrees(np.angle(measured.channel_gains[c])) - phase)) < 0.1


def test_reflector_refusals() -> None:
    cfg = config.loads(scene_toml(isolation_db=0.0, clutter_m=60.0))
    capture = average_frames(captures(cfg, 1))
    for bad in (0.0, -5.0, math.nan, math.inf, None, "60", True):
        with pytest.raises(InputError, match="distance_m"):
            measure_reflector(capture, bad)  # type: ignore[arg-type]
    with pytest.raises(SensingError, match="no static echo"):
        measure_reflector(capture, 2000.0)


def test_loopback_without_a_loopback_path_is_refused() -> None:
    """No leakage, a moving target the strongest path: not a loopback."""
    cfg = config.loads(scene_toml(isolation_db=0.0))
    with pytest.raises(SensingError, match="Doppler|SNR"):
        measure_loopback(average_frames(captures(cfg, 1)))


# ------------------------------------------------------------------------------------ applying
@settings(max_examples=25, deadline=None)
@given(delay=st.integers(-300, 300), phases=st.lists(st.floats(-math.pi, math.pi), min_size=2, max_size=2),
       gains_db=st.lists(st.floats(-40, 40), min_size=2, max_size=2))
def test_apply_undoes_an_integer_delay_and_gains(delay: int, phases: list[float], gains_db: list[float]) -> None:
    """A cyclic frame delayed by np.roll and scaled per channel comes back exactly."""
    frame = IsacFrame(config.loads(scene_toml()).frame)
    x = frame.samples()[0]
    g = 10 ** (np.array(gains_db) / 20) * np.exp(1j * np.array(phases))
    y = g[:, None] * np.roll(x, delay)[None]
    capture = Capture(y, frame.sample_rate_hz, frame=frame.config)
    corr = RxCorrection(float(delay), g, sample_rate_hz=frame.sample_rate_hz)
    out = apply_calibration(capture, corr)
    assert np.allclose(out.iq, x[None], atol=1e-4 * np.abs(x).max())
    assert out.iq.dtype == np.complex64 and out.iq.shape == y.shape


def test_fractional_advance_matches_a_tone() -> None:
    """A periodic tone advanced by a fraction of a sample: exp(j w (n + d))."""
    n = np.arange(256)
    w = 2 * math.pi * 5 / 256
    out = advance(np.exp(1j * w * n), 0.37)
    assert np.allclose(out[0], np.exp(1j * w * (n + 0.37)), atol=1e-5)


def test_apply_uses_the_frame_offset_when_the_frame_fits() -> None:
    """A capture longer than the frame: the integer part moves frame_offset, no sample wraps."""
    frame = IsacFrame(config.loads(scene_toml()).frame)
    x = frame.samples()[0]
    y = np.concatenate((x, x))[None]
    capture = Capture(y, frame.sample_rate_hz, frame=frame.config, frame_offset=5)
    out = apply_calibration(capture, RxCorrection(40.0, np.ones(1), sample_rate_hz=frame.sample_rate_hz))
    assert out.frame_offset == 45
    assert np.array_equal(out.iq, capture.iq)


@settings(max_examples=30, deadline=None)
@given(st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.just(math.nan), st.just(math.inf),
                 st.just(-math.inf), st.just(2.0**24), st.just(-1e30)))
def test_correction_refuses_bad_delays(bad: object) -> None:
    with pytest.raises(InputError, match="delay_samples"):
        RxCorrection(bad, np.ones(2), sample_rate_hz=1e6)  # type: ignore[arg-type]


@pytest.mark.parametrize("gains", [np.zeros(2), np.array([1.0, math.nan]), np.array([]), np.array([1, math.inf])])
def test_correction_refuses_bad_gains(gains: np.ndarray) -> None:
    with pytest.raises(InputError, match="channel_gains"):
        RxCorrection(0.0, gains, sample_rate_hz=1e6)


def test_correction_refuses_bad_leakage_and_rate() -> None:
    with pytest.raises(InputError, match="leakage_amplitudes"):
        RxCorrection(0.0, np.ones(2), np.zeros(1), np.zeros((3, 1), complex), 1e6)
    for rate in (0.0, -1.0, math.nan):
        with pytest.raises(InputError, match="sample_rate_hz"):
            RxCorrection(0.0, np.ones(2), sample_rate_hz=rate)


def test_apply_refuses_what_does_not_fit() -> None:
    frame = IsacFrame(config.loads(scene_toml()).frame)
    capture = Capture(np.tile(frame.samples()[0], (2, 1)), frame.sample_rate_hz)
    with pytest.raises(InputError, match="sample rate"):
        apply_calibration(capture, RxCorrection(0.0, np.ones(2), sample_rate_hz=2 * frame.sample_rate_hz))
    with pytest.raises(InputError, match="channel"):
        apply_calibration(capture, RxCorrection(0.0, np.ones(3), sample_rate_hz=frame.sample_rate_hz))
    with pytest.raises(InputError, match="RxCorrection"):
        apply_calibration(capture, {"delay_samples": 1.0})  # type: ignore[arg-type]
    with pytest.raises(InputError, match="Capture"):
        apply_calibration(capture.iq, RxCorrection(0.0, np.ones(2), sample_rate_hz=1.0))  # type: ignore[arg-type]
    leaky = RxCorrection(0.0, np.ones(2), np.zeros(1), np.ones((2, 1), complex), frame.sample_rate_hz)
    with pytest.raises(SensingError, match="frame"):
        apply_calibration(capture, leaky)                      # leakage needs the transmitted frame
    assert np.allclose(apply_calibration(capture, leaky, frame.config).iq, 0, atol=1e-4)   # x - 1 * x


def test_empty_and_frameless_inputs() -> None:
    with pytest.raises(InputError, match="captures is empty"):
        average_frames([])
    with pytest.raises(SensingError, match="no frame"):
        measure_loopback(Capture(np.ones((1, 100), np.complex64), 1e6))
    frame = IsacFrame(config.loads(scene_toml()).frame)
    short = Capture(np.ones((1, 100), np.complex64), frame.sample_rate_hz, frame=frame.config)
    with pytest.raises(SensingError, match="whole frame"):
        measure_loopback(short)
    bad = Capture(np.full((1, frame.num_samples), np.nan, np.complex64), frame.sample_rate_hz, frame=frame.config)
    with pytest.raises(SensingError, match="NaN"):
        measure_loopback(bad)


def test_advance_edges() -> None:
    assert advance(np.zeros((2, 0), np.complex64), 0.5).shape == (2, 0)
    assert np.array_equal(advance(np.array([[1 + 1j]]), 0.4), np.array([[1 + 1j]], np.complex64))
    n = np.arange(64)
    tone = np.exp(2j * math.pi * 3 * n / 64)
    assert np.allclose(advance(tone, 64 * 10**6 + 0.25)[0], np.exp(2j * math.pi * 3 * (n + 0.25) / 64), atol=1e-5)
    for bad in (math.nan, math.inf, None, "1"):
        with pytest.raises(InputError, match="delay_samples"):
            advance(tone, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("key", "value", "match"), [
    ("rx_channel_phases_deg", [0.0, 1.0, 2.0], "one value per receive element"),
    ("rx_channel_gains_db", [0.0] * 5, "one value per receive element"),
    ("rx_channel_phases_deg", [0.0, 400.0, 0.0, 0.0], "rx_channel_phases_deg"),
    ("rx_channel_gains_db", [0.0, math.nan, 0.0, 0.0], "rx_channel_gains_db"),
])
def test_sim_chain_settings_are_checked(key: str, value: list[float], match: str) -> None:
    text = scene_toml().replace(f"{key} = ", f"{key}_old = ")
    text = text.replace("[[scene.nodes]]\nid = \"bs0\"\n", f"[[scene.nodes]]\nid = \"bs0\"\n{key} = {value!r}\n")
    text = "\n".join(line for line in text.splitlines() if "_old = " not in line)
    with pytest.raises(config.ConfigError, match=match):
        config.loads(text)
