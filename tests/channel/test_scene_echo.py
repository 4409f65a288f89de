"""Scene and echo synthesis against the radar equation, geometry and the Doppler convention."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from sdr_isac import config, radio
from sdr_isac.channel.scene import Scene
from sdr_isac.config import BlockerConfig, FrameConfig, NodeConfig, SceneConfig, TargetConfig
from sdr_isac.waveform import IsacFrame

C = 299_792_458.0
K_T0 = 1.380649e-23 * 290.0

FRAME = """
[frame]
numerology = 1
num_rb = 24
fft_size = 512
carrier_hz = 3.5e9
num_slots = 1
"""


def sim(text: str):
    cfg = config.loads(FRAME + text)
    frame = IsacFrame(cfg.frame)
    return cfg, frame, radio.open_radio(cfg)


def channel_estimate(frame: IsacFrame, iq: np.ndarray) -> np.ndarray:
    """H = Y / X on every RE (a monostatic node knows all it sent), shape (C, S, K)."""
    return frame.ofdm.demodulate(iq) / frame.grid.values[0][None]


def delay_from_phase(h: np.ndarray, scs_hz: float) -> float:
    """Delay in s from the phase slope across subcarriers (single path, no noise)."""
    return -np.angle(np.sum(h[..., 1:] * np.conj(h[..., :-1]))) / (2 * math.pi * scs_hz)


def test_monostatic_power_follows_radar_equation():
    cfg, frame, r = sim("""
[scene]
noise = false
[[scene.nodes]]
id = "bs0"
tx_power_dbm = 30
antenna_gain_dbi = 10
noise_figure_db = 5
[[scene.targets]]
id = "car"
position_m = [120.0, 0.0, 0.0]
rcs_m2 = 10.0
""")
    with r:
        r.tx(frame.samples())
        h = channel_estimate(frame, r.rx(frame.num_samples).iq)
    lam = C / 3.5e9
    p_rx_over_p_tx = 10.0 ** 2 * lam**2 * 10.0 / ((4 * math.pi) ** 3 * 120.0**4)       # G_t G_r lambda^2 sigma
    e_re = 1.0 / np.mean(np.abs(frame.samples()) ** 2)     # 1 W mean sample power; every RE of the grid has |X| = 1
    noise = K_T0 * frame.sample_rate_hz * 10 ** 0.5
    expected_snr = e_re * p_rx_over_p_tx / noise
    assert np.mean(np.abs(h) ** 2) == pytest.approx(expected_snr, rel=1e-3)


def test_fractional_delay_is_exact_and_doppler_sign_follows_convention():
    cfg, frame, r = sim("""
[scene]
noise = false
[[scene.nodes]]
id = "bs0"
[[scene.targets]]
id = "away"
position_m = [137.777, 0.0, 0.0]
velocity_mps = [25.0, 0.0, 0.0]
snr_per_re_db = 10
""")
    with r:
        r.tx(frame.samples())
        h = channel_estimate(frame, r.rx(frame.num_samples).iq)[0]
    tau = delay_from_phase(h, frame.config.subcarrier_spacing_hz)
    assert tau * C / 2 == pytest.approx(137.777, abs=0.01)          # 137.777 m is 14.07 samples: off-grid
    k = np.arange(frame.config.num_subcarriers)
    aligned = h * np.exp(2j * math.pi * k * frame.config.subcarrier_spacing_hz * tau)
    t_sym = (frame.symbol_starts + frame.cp_lengths) / frame.sample_rate_hz
    f_d = np.polyfit(t_sym, np.unwrap(np.angle(aligned.mean(axis=1))), 1)[0] / (2 * math.pi)
    expected = -2 * 25.0 * 3.5e9 / C                                 # receding: negative Doppler
    assert f_d == pytest.approx(expected, rel=2e-3)
    assert np.mean(np.abs(h) ** 2) == pytest.approx(10.0, rel=1e-3)  # per-RE SNR override


def test_angle_of_arrival_on_a_ula():
    cfg, frame, r = sim("""
[scene]
noise = false
[[scene.nodes]]
id = "bs0"
yaw_deg = 10
rx_array = {num_elements = [4], spacing_wavelengths = 0.5}
[[scene.targets]]
position_m = [80.0, 60.0, 0.0]
snr_per_re_db = 0
""")
    with r:
        r.tx(frame.samples())
        h = channel_estimate(frame, r.rx(frame.num_samples).iq)
    assert h.shape[0] == 4
    azimuth = math.atan2(60.0, 80.0) - math.radians(10)            # local azimuth from boresight
    step = np.angle(np.sum(h[1:] * np.conj(h[:-1])))
    assert step == pytest.approx(math.pi * math.sin(azimuth), abs=1e-4)


def test_targets_move_between_frames():
    cfg, frame, r = sim("""
[scene]
noise = false
[[scene.nodes]]
id = "bs0"
[[scene.targets]]
position_m = [100.0, 0.0, 0.0]
velocity_mps = [-30.0, 0.0, 0.0]
snr_per_re_db = 10
""")
    with r:
        r.tx(frame.samples())
        ranges = [r.rx(frame.num_samples).metadata["truth"]["paths"][0]["range_m"] for _ in range(3)]
    np.testing.assert_allclose(np.diff(ranges), -30.0 * frame.duration_s, rtol=1e-9)


def test_noise_only_capture_has_unit_variance():
    cfg, frame, r = sim("""
[scene]
seed = 3
[[scene.nodes]]
id = "bs0"
rx_array = {num_elements = [2]}
""")
    with r:
        iq = r.rx(200_000).iq
    assert np.var(iq) == pytest.approx(1.0, rel=0.01)               # 400k samples: 0.16 % std


def test_bistatic_line_of_sight_and_clock_offset():
    cfg, frame, r = sim("""
[radio]
node_id = "rx"
[scene]
noise = false
[[scene.nodes]]
id = "tx"
position_m = [0.0, 0.0, 0.0]
tx_power_dbm = 20
clock_offset_s = 1e-7
[[scene.nodes]]
id = "rx"
role = "rx"
transmits = false
position_m = [300.0, 0.0, 0.0]
clock_offset_s = 4e-7
""")
    with r:
        h = channel_estimate(frame, r.rx(frame.num_samples).iq)[0]
    tau = delay_from_phase(h, frame.config.subcarrier_spacing_hz)
    assert tau == pytest.approx(300.0 / C + 3e-7, abs=1e-10)        # rx clock ahead by 0.3 us
    lam = C / 3.5e9
    friis = (lam / (4 * math.pi * 300.0)) ** 2
    e_re = 0.1 / np.mean(np.abs(frame.samples()) ** 2)     # 20 dBm mean power; unit-power REs
    noise = K_T0 * frame.sample_rate_hz * 10 ** 0.7                  # default noise figure 7 dB
    assert np.mean(np.abs(h) ** 2) == pytest.approx(e_re * friis / noise, rel=1e-3)


def test_blocker_cuts_the_path():
    frame_cfg = FrameConfig(num_rb=4)
    nodes = (NodeConfig(id="bs0"),)
    target = TargetConfig(position_m=(100.0, 0.0, 0.0))
    open_scene = Scene(SceneConfig(nodes=nodes, targets=(target,)), frame_cfg)
    blocked = Scene(SceneConfig(nodes=nodes, targets=(target,),
                                blockers=(BlockerConfig(min_m=(40, -5, -5), max_m=(50, 5, 5)),)), frame_cfg)
    rng = np.random.default_rng(0)
    assert [p.kind for p in open_scene.paths("bs0", "bs0", 0.0, rng)] == ["target"]
    assert blocked.paths("bs0", "bs0", 0.0, rng) == []


@pytest.mark.parametrize("attenuation_db", [0.0, 20.0])
def test_an_snr_override_is_still_attenuated_by_a_blocker(attenuation_db):
    """The override replaces the radar equation's free-space mean; a blocker in the way still takes its loss, on
    the way out and back (it made a hidden target visible at the set SNR before)."""
    blockers = "" if attenuation_db == 0 else f"""
[[scene.blockers]]
min_m = [40.0, -5.0, -5.0]
max_m = [50.0, 5.0, 5.0]
attenuation_db = {attenuation_db}
"""
    _, frame, r = sim("""
[scene]
noise = false
[[scene.nodes]]
id = "bs0"
[[scene.targets]]
position_m = [100.0, 0.0, 0.0]
snr_per_re_db = 10
""" + blockers)
    with r:
        r.tx(frame.samples())
        capture = r.rx(frame.num_samples)
    (path,) = [p for p in capture.metadata["truth"]["paths"] if p["kind"] == "target"]
    expected_db = 10.0 - 2.0 * attenuation_db                     # monostatic: both segments cross the box
    assert path["snr_per_re_db"] == pytest.approx(expected_db, abs=1e-9)
    h = channel_estimate(frame, capture.iq)                       # the samples carry it: |H|^2 is the SNR per RE
    assert np.mean(np.abs(h) ** 2) == pytest.approx(10.0 ** (expected_db / 10.0), rel=1e-3)


def test_a_swerling_one_target_fluctuates_about_its_snr_override():
    """Swerling 1 with an override: an exponential SNR whose mean is the override (it was fixed before)."""
    scene = Scene(SceneConfig(targets=(TargetConfig(swerling=1, snr_per_re_db=10.0),)), FrameConfig(num_rb=4))
    rng = np.random.default_rng(2)
    snr = np.array([10.0 ** (scene.paths("bs0", "bs0", 0.0, rng)[0].truth["snr_per_re_db_override"] / 10.0)
                    for _ in range(2000)]) / 10.0
    assert np.mean(snr) == pytest.approx(1.0, abs=4 / math.sqrt(2000))       # exponential: std = mean
    assert np.std(snr) == pytest.approx(1.0, abs=0.15)


def test_wall_echo_comes_from_the_mirror_distance():
    scene = Scene(config.from_dict(SceneConfig, {
        "nodes": [{"id": "bs0", "position_m": [0, 0, 0]}],
        "walls": [{"point_m": [0, 40, 0], "normal": [0, -1, 0], "reflection_db": -3}]}), FrameConfig(num_rb=4))
    (path,) = scene.paths("bs0", "bs0", 0.0, np.random.default_rng(0))
    assert path.kind == "wall" and path.length_m == pytest.approx(80.0)
    lam = C / 3.5e9
    assert abs(path.gain) ** 2 == pytest.approx(10 ** -0.3 * (lam / (4 * math.pi * 80.0)) ** 2, rel=1e-9)


def test_swerling_one_has_exponential_rcs():
    scene = Scene(SceneConfig(targets=(TargetConfig(rcs_m2=2.0, swerling=1),)), FrameConfig(num_rb=4))
    rng = np.random.default_rng(1)
    powers = np.array([abs(scene.paths("bs0", "bs0", 0.0, rng)[0].gain) ** 2 for _ in range(2000)])
    steady = abs(Scene(SceneConfig(targets=(TargetConfig(rcs_m2=2.0),)), FrameConfig(num_rb=4))
                 .paths("bs0", "bs0", 0.0, rng)[0].gain) ** 2
    ratio = powers / steady
    assert np.mean(ratio) == pytest.approx(1.0, abs=4 / math.sqrt(2000))       # exponential: std = mean
    assert np.std(ratio) == pytest.approx(1.0, abs=0.15)


def test_leakage_and_reproducibility():
    text = """
[scene]
seed = 9
[[scene.nodes]]
id = "bs0"
leakage_isolation_db = 60
"""
    cfg, frame, r1 = sim(text)
    _, _, r2 = sim(text)
    with r1, r2:
        r1.tx(frame.samples())
        r2.tx(frame.samples())
        a, b = r1.rx(frame.num_samples), r2.rx(frame.num_samples)
    np.testing.assert_array_equal(a.iq, b.iq)
    leak = [p for p in a.metadata["truth"]["paths"] if p["kind"] == "leakage"]
    assert len(leak) == 1 and leak[0]["delay_s"] == 0.0


def test_ris_scan_finds_a_blocked_target():
    """BS -> RIS -> target -> RIS -> BS behind a building: the echo peaks when the RIS steers at the target."""
    cfg = config.loads(FRAME + """
[scene]
noise = false
[[scene.nodes]]
id = "bs0"
position_m = [0.0, 0.0, 0.0]
tx_power_dbm = 30
[[scene.targets]]
id = "hidden"
position_m = [100.0, 0.0, 0.0]
rcs_m2 = 5
[[scene.blockers]]
min_m = [45.0, -5.0, -10.0]
max_m = [55.0, 5.0, 10.0]
[[scene.ris]]
id = "ris0"
position_m = [50.0, 40.0, 0.0]
yaw_deg = -90
num_elements = [16, 16]
""")
    scene = Scene(cfg.scene, cfg.frame)
    rng = np.random.default_rng(0)
    assert all(p.kind != "target" for p in scene.paths("bs0", "bs0", 0.0, rng))       # LoS blocked
    # in the RIS frame (normal -y): BS at local azimuth atan2(-50, 40)... computed from geometry
    def local_az(point):
        d = np.array(point, float) - np.array([50.0, 40.0, 0.0])
        yaw = math.radians(-90)
        x, y = math.cos(yaw) * d[0] + math.sin(yaw) * d[1], -math.sin(yaw) * d[0] + math.cos(yaw) * d[1]
        return math.degrees(math.atan2(y, x))
    bs_az, target_az = local_az([0, 0, 0]), local_az([100, 0, 0])
    powers = []
    scan = np.arange(-80, 81, 2.0)
    for out_deg in scan:
        scene.set_ris_steering("ris0", bs_az, out_deg)
        powers.append(sum(abs(p.gain) ** 2 for p in scene.paths("bs0", "bs0", 0.0, rng) if p.kind == "ris-target"))
    assert abs(scan[int(np.argmax(powers))] - target_az) <= 2.0


BISTATIC = """
[radio]
node_id = "rx"
[scene]
noise = false
[[scene.nodes]]
id = "tx"
[[scene.nodes]]
id = "rx"
role = "rx"
transmits = false
position_m = [150.0, 0.0, 0.0]
{rx_extra}
"""


def symbol_phases(frame: IsacFrame, h: np.ndarray, delay_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean phase of each symbol after removing a known delay, and the symbols' mid times."""
    k = np.arange(frame.config.num_subcarriers)
    aligned = h * np.exp(2j * math.pi * k * frame.config.subcarrier_spacing_hz * delay_s)
    t = (frame.symbol_starts + frame.cp_lengths + frame.config.fft_size / 2) / frame.sample_rate_hz
    return np.unwrap(np.angle(aligned.mean(axis=1))), t


def test_cfo_rotates_a_bistatic_link():
    cfg, frame, r = sim(BISTATIC.format(rx_extra="cfo_hz = 700.0"))
    with r:
        h = channel_estimate(frame, r.rx(frame.num_samples).iq)[0]
    phase, t = symbol_phases(frame, h, 150.0 / C)
    assert np.polyfit(t, phase, 1)[0] / (2 * math.pi) == pytest.approx(700.0, rel=1e-3)


def _delays_nine_frames_apart(text: str) -> tuple[float, float, IsacFrame]:
    """The bistatic link's delay in the first capture and in the tenth (9 frames later), s."""
    cfg, frame, r = sim(text)
    with r:
        first = channel_estimate(frame, r.rx(frame.num_samples).iq)[0]
        for _ in range(8):
            r.rx(frame.num_samples)
        later = channel_estimate(frame, r.rx(frame.num_samples).iq)[0]
    scs = frame.config.subcarrier_spacing_hz
    return delay_from_phase(first, scs), delay_from_phase(later, scs), frame


def test_timing_offset_and_sample_clock_drift_delay_the_paths():
    first, later, frame = _delays_nine_frames_apart(BISTATIC.format(rx_extra="timing_offset_s = 2e-7\nsfo_ppm = 50.0"))
    assert first == pytest.approx(150.0 / C + 2e-7, abs=1e-11)
    drift = 50e-6 * 9 * frame.duration_s                          # 50 ppm of the 9 frames in between
    assert later - first == pytest.approx(drift, rel=1e-3)


def test_sample_clocks_drift_by_their_difference_and_not_on_a_nodes_own_echo():
    """A link drifts by (receiver - transmitter) ppm of the time elapsed; a node's own echo shares its one sample
    clock, so its delay stays put however far its clock is off."""
    text = BISTATIC.format(rx_extra="sfo_ppm = 50.0").replace('id = "tx"', 'id = "tx"\nsfo_ppm = 20.0')
    first, later, frame = _delays_nine_frames_apart(text)
    assert later - first == pytest.approx((50e-6 - 20e-6) * 9 * frame.duration_s, rel=1e-3)
    scs = frame.config.subcarrier_spacing_hz
    own = """
[radio]
frame_interval_s = 1.0
[scene]
noise = false
[[scene.nodes]]
id = "bs0"
sfo_ppm = 20.0
leakage_isolation_db = 0
[[scene.targets]]
position_m = [100.0, 0.0, 0.0]
snr_per_re_db = 20
"""
    cfg, frame, r = sim(own)
    with r:
        r.tx(frame.samples())
        delays = [delay_from_phase(channel_estimate(frame, r.rx(frame.num_samples).iq)[0], scs) for _ in range(3)]
    assert delays == pytest.approx([2 * 100.0 / C] * 3, abs=1e-10)       # 20 ppm of 1 s would be 20 us (3 km)


@pytest.mark.parametrize("monostatic", [False, True], ids=["bistatic", "own-echo"])
def test_phase_noise_is_a_wiener_process_and_cancels_on_a_common_lo(monostatic):
    linewidth = 2000.0
    if monostatic:
        text = f"""
[scene]
noise = false
[[scene.nodes]]
id = "bs0"
phase_noise_linewidth_hz = {linewidth}
[[scene.targets]]
position_m = [150.0, 0.0, 0.0]
snr_per_re_db = 20
"""
    else:
        text = BISTATIC.format(rx_extra=f"phase_noise_linewidth_hz = {linewidth}")
    cfg, frame, r = sim(text)
    increments = []
    with r:
        if monostatic:
            r.tx(frame.samples())
        for _ in range(20):
            capture = r.rx(frame.num_samples)
            delay = capture.metadata["truth"]["paths"][0]["delay_s"]
            phase, t = symbol_phases(frame, channel_estimate(frame, capture.iq)[0], delay)
            increments.append(np.diff(phase))
    steps = np.concatenate(increments)
    symbol_s = float(np.mean(np.diff(t)))
    wiener_var = 2 * math.pi * linewidth * symbol_s                 # variance of a phase step over one symbol
    if monostatic:
        # phi(t) - phi(t - tau) with tau = 1 us: variance 2 pi beta tau per sample, far below the Wiener step
        assert np.var(steps) < 0.05 * wiener_var
    else:
        # 20 frames x 13 steps; averaging over a symbol lowers the variance of a step to 2/3 of the point value
        assert np.var(steps) == pytest.approx(2 / 3 * wiener_var, rel=0.35)


# ---- RIS: the far-field path loss of Tang et al. (IEEE TWC 2021, eq. 21), written out here --------------------
def _ris_scene(num: tuple[int, int], gain_dbi: float, target: tuple[float, float, float],
               bs: tuple[float, float, float]) -> Any:
    from sdr_isac.channel.scene import Scene
    from sdr_isac.config import NodeConfig, RisConfig, SceneConfig, TargetConfig

    cfg = SceneConfig(noise=False, nodes=(NodeConfig(id="bs0", position_m=bs, antenna_gain_dbi=0.0),),
                      targets=(TargetConfig(id="t0", position_m=target, rcs_m2=10.0),),
                      ris=(RisConfig(id="ris0", position_m=(0.0, 0.0, 5.0), yaw_deg=0.0, num_elements=num,
                                     element_gain_dbi=gain_dbi),))
    return Scene(cfg, config.FrameConfig(numerology=1, num_rb=24, fft_size=512, carrier_hz=3.5e9))


@pytest.mark.parametrize("gain_dbi", [5.0, 8.0])
def test_a_ris_pass_follows_the_far_field_path_loss_with_its_element_pattern(gain_dbi):
    """One RIS pass, steered from the BS (30 deg) to the target (-40 deg): P_r / P_t = G_t G_r G_e (M N)^2 d^2
    lambda^2 F(theta_in) F(theta_out) / (64 pi^3 d1^2 d2^2), F = cos^q with q = G_e / 2 - 1, then the target and
    the way back (radar equation)."""
    lam = C / 3.5e9
    bs = (60 * math.cos(math.radians(30)), 60 * math.sin(math.radians(30)), 5.0)
    target = (40 * math.cos(math.radians(-40)), 40 * math.sin(math.radians(-40)), 5.0)
    scene = _ris_scene((8, 8), gain_dbi, target, bs)
    scene.set_ris_steering("ris0", 30.0, -40.0)
    paths = {p.source: p for p in scene.paths("bs0", "bs0", 0.0, np.random.default_rng(0))}
    g_e = 10 ** (gain_dbi / 10)
    q = g_e / 2 - 1
    ris_rcs = g_e * 64**2 * (0.5 * lam) ** 2 * math.cos(math.radians(30)) ** q * math.cos(math.radians(40)) ** q
    d_bs, d_t = 60.0, 40.0
    d_direct = math.dist(bs, target)
    single = lam**2 * ris_rcs * 10.0 / ((4 * math.pi) ** 4 * d_bs**2 * d_t**2 * d_direct**2)
    double = lam**2 * ris_rcs**2 * 10.0 / ((4 * math.pi) ** 5 * d_bs**4 * d_t**4)
    # ratios: powers of 1e-15 would pass any pytest.approx with its default absolute tolerance of 1e-12
    assert abs(paths["ris0/t0/tx"].gain) ** 2 / single == pytest.approx(1.0, rel=2e-3, abs=0)
    assert abs(paths["ris0/t0/rx"].gain) ** 2 / single == pytest.approx(1.0, rel=2e-3, abs=0)
    assert abs(paths["ris0/t0"].gain) ** 2 / double == pytest.approx(1.0, rel=4e-3, abs=0)


def test_a_target_behind_the_surface_gets_no_ris_path():
    scene = _ris_scene((8, 8), 5.0, (-30.0, 10.0, 5.0), (50.0, 20.0, 5.0))
    sources = {p.source for p in scene.paths("bs0", "bs0", 0.0, np.random.default_rng(0))}
    assert "t0" in sources and not any(s.startswith("ris0/") for s in sources)


def test_a_large_surface_close_by_sums_spherical_waves():
    """64 x 64 elements at lambda / 2 (2.7 m across) seen from 20 to 30 m, inside its far-field distance 2 D^2 /
    lambda = 175 m: the elements' phases no longer line up under plane-wave steering, and the pass gains less
    than the far-field (M N)^2 (a far-field sum over-stated it)."""
    lam = C / 3.5e9
    bs, target = (30.0, 0.0, 5.0), (20.0, 0.0, 5.0)
    scene = _ris_scene((64, 64), 5.0, target, bs)
    scene.set_ris_steering("ris0", 0.0, 0.0)
    paths = {p.source: p for p in scene.paths("bs0", "bs0", 0.0, np.random.default_rng(0))}
    far = lam**2 * (10 ** 0.5 * 4096**2 * (0.5 * lam) ** 2) * 10.0 / ((4 * math.pi) ** 4 * 30.0**2 * 20.0**2 * 10.0**2)
    assert abs(paths["ris0/t0/tx"].gain) ** 2 < far * 10 ** (-1.0 / 10)
