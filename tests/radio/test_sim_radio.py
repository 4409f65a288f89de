"""SimRadio and open_radio: the protocol, capture stamping, bursts, alignment and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sdr_isac import config, radio
from sdr_isac.capture import Capture
from sdr_isac.config import RadioConfig
from sdr_isac.errors import ConfigError, InputError, RadioError
from sdr_isac.waveform import IsacFrame

TEXT = """
[frame]
numerology = 1
num_rb = 24
fft_size = 512
carrier_hz = 3.5e9
[radio]
node_id = "bs0"
[scene]
noise = false
[[scene.nodes]]
id = "bs0"
rx_array = {num_elements = [2]}
[[scene.nodes]]
id = "ue0"
role = "rx"
transmits = false
position_m = [50.0, 0.0, 0.0]
[[scene.targets]]
position_m = [30.0, 0.0, 0.0]
snr_per_re_db = 10
"""


@pytest.fixture
def cfg():
    return config.loads(TEXT)


def test_sim_radio_follows_the_protocol(cfg):
    frame = IsacFrame(cfg.frame)
    with radio.open_radio(cfg) as r:
        assert isinstance(r, radio.Radio)
        assert r.num_rx_channels == 2 and r.sample_rate_hz == cfg.frame.sample_rate_hz
        r.tx(frame.samples())
        first, second = r.rx(frame.num_samples), r.rx(frame.num_samples)
    assert isinstance(first, Capture) and first.iq.shape == (2, frame.num_samples)
    assert (first.seq, second.seq) == (0, 1)
    assert second.t0_s == pytest.approx(frame.duration_s)
    assert first.node_id == "bs0" and first.frame == cfg.frame and first.center_freq_hz == 3.5e9
    assert first.metadata["truth"]["targets"][0]["position_m"] == [30.0, 0.0, 0.0]


def test_frame_offset_tracks_the_cyclic_transmission(cfg):
    frame = IsacFrame(cfg.frame)
    with radio.open_radio(cfg) as r:
        r.tx(frame.samples())
        r.rx(1000)                                         # the next window starts 1000 samples into a period
        capture = r.rx(2 * frame.num_samples)
    assert capture.frame_offset == frame.num_samples - 1000
    # the frame found at that offset demodulates to the transmitted grid times the echo channel
    grid = frame.ofdm.demodulate(capture.iq, offset=capture.frame_offset)
    h = grid[0] / frame.grid.values[0]
    assert np.mean(np.abs(h) ** 2) == pytest.approx(10.0, rel=1e-3)


def test_burst_is_heard_once(cfg):
    frame = IsacFrame(cfg.frame)
    with radio.open_radio(cfg) as r:
        r.tx(frame.samples(), cyclic=False)
        echo = r.rx(frame.num_samples + 200)
        after = r.rx(frame.num_samples)
    assert np.max(np.abs(echo.iq)) > 1.0 and np.max(np.abs(after.iq)) == 0.0


def test_passive_node_hears_the_base_station(cfg):
    scene_cfg = cfg.scene
    with radio.open_radio(RadioConfig(node_id="ue0"), frame=cfg.frame, scene=scene_cfg) as ue:
        capture = ue.rx(2 * IsacFrame(cfg.frame).num_samples)
        kinds = sorted(p["kind"] for p in capture.metadata["truth"]["paths"])
        with pytest.raises(InputError, match="node 'ue0' has transmits = false"):
            ue.tx(np.ones(10, np.complex64))
    assert kinds == ["los", "target"]


def test_bad_use_is_reported(cfg):
    r = radio.open_radio(cfg)
    with pytest.raises(InputError, match=r"tx samples have 2 channel\(s\): this radio transmits on 1"):
        r.tx(np.ones((2, 16), np.complex64))
    with pytest.raises(InputError, match="NaN"):
        r.tx(np.full(16, np.nan, np.complex64))
    with pytest.raises(InputError, match="num_samples = 0"):
        r.rx(0)
    r.close()
    r.close()                                               # twice is harmless
    with pytest.raises(RadioError, match="radio 'sim' of node 'bs0' is closed"):
        r.rx(10)


def test_open_radio_errors(cfg):
    with pytest.raises(ConfigError, match=r"node_id = 'bs9': allowed one of the scene's nodes \(bs0, ue0\)"):
        config.loads(TEXT.replace('node_id = "bs0"', 'node_id = "bs9"'))
    with pytest.raises(ConfigError, match=r"radio.kind = 'sim' needs a \[scene\] section"):
        radio.open_radio(RadioConfig(), frame=cfg.frame)
    with pytest.raises(ConfigError, match=r"kind = 'sdr': allowed sim, replay, pluto or usrp"):
        RadioConfig(kind="sdr")
    with pytest.raises(ConfigError, match=r"uri = '': allowed the path of a .sigmf-meta file"):
        RadioConfig(kind="replay")


# ---- radio.frame_interval_s: frames spaced in scene time ------------------------------------------------------
MOVING = TEXT.replace('position_m = [30.0, 0.0, 0.0]\nsnr_per_re_db = 10',
                      'position_m = [30.0, 0.0, 0.0]\nvelocity_mps = [10.0, 0.0, 0.0]\nsnr_per_re_db = 10')


@pytest.mark.parametrize("interval_s, frames_per_step", [(0.25, None), (0.0, 1), (1e-6, 1)])
def test_frame_interval_spaces_captures_in_scene_time_by_whole_frames(interval_s, frames_per_step):
    """t0 steps by the interval rounded to whole capture lengths (at least one); the target moves with scene time
    (truth: position = p0 + v t); the capture says its step where it is not the capture's length."""
    cfg = config.loads(MOVING.replace('node_id = "bs0"', f'node_id = "bs0"\nframe_interval_s = {interval_s}'))
    assert cfg.radio.frame_interval_s == interval_s
    with radio.open_radio(cfg.radio, frame=cfg.frame, scene=cfg.scene) as r:
        frame = IsacFrame(r.frame)
        r.tx(frame.samples(), cyclic=True)
        length_s = frame.num_samples / r.sample_rate_hz
        caps = [r.rx(frame.num_samples) for _ in range(3)]
    step_s = round(interval_s / length_s) * length_s if frames_per_step is None else length_s
    assert step_s > length_s or frames_per_step == 1
    np.testing.assert_allclose([c.t0_s for c in caps], [0.0, step_s, 2 * step_s], rtol=0, atol=1e-12)
    for k, c in enumerate(caps):
        (target,) = c.metadata["truth"]["targets"]
        np.testing.assert_allclose(target["position_m"], [30.0 + 10.0 * k * step_s, 0.0, 0.0], atol=1e-9)
        assert c.frame_offset == 0                       # the cyclic frame still starts where the capture starts
        assert c.metadata.get("frame_interval_s") == (pytest.approx(step_s) if frames_per_step is None else None)


@pytest.mark.parametrize("bad", [-1.0, 1e-7, 3601.0, "1", float("nan")])
def test_frame_interval_out_of_range_is_refused_naming_the_key(bad):
    text = TEXT.replace('node_id = "bs0"', f'node_id = "bs0"\nframe_interval_s = {bad!r}')    # nan, '1': TOML too
    with pytest.raises(ConfigError, match="frame_interval_s"):
        config.loads(text)
