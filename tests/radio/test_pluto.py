"""PlutoRadio through the real driver stack: pyadi-iio -> pylibiio -> libiio 0.24 -> TCP -> a test iiod.

The test daemon (tests/radio/iiod_server.py) serves a Pluto context on 127.0.0.1 and answers RX
buffer reads with the simulated scene's echo of the cyclic TX buffer, so the whole path runs in CI.
Tests marked ``hardware`` run the same checks on a real Pluto:
``pytest -m hardware --radio-uri ip:192.168.2.1``.
"""

from __future__ import annotations

import math
import socket
import sys

import numpy as np
import pytest

from sdr_isac import config
from sdr_isac.channel.echo import EchoSynthesizer, Transmission
from sdr_isac.channel.scene import Scene
from sdr_isac.errors import ConfigError, RadioError, RadioUnavailableError
from sdr_isac.radio.pluto import PlutoRadio
from sdr_isac.waveform import IsacFrame
from tests.radio.iiod_server import IiodServer

C = 299_792_458.0
TEXT = """
[frame]
numerology = 1
num_rb = 24
fft_size = 512
carrier_hz = 2.45e9
[radio]
kind = "pluto"
node_id = "pluto0"
rx_gain_db = 30
tx_attenuation_db = 10
[scene]
noise = true
seed = 7
[[scene.nodes]]
id = "pluto0"
tx_power_dbm = 0
leakage_isolation_db = 60
[[scene.targets]]
id = "car"
position_m = [180.0, 0.0, 0.0]
velocity_mps = [20.0, 0.0, 0.0]
snr_per_re_db = 0
"""
START_SAMPLES = 3001          # the RX stream starts this far into the cyclic TX: alignment must find it
NOISE_DBFS = -55.0            # thermal noise level in the ADC; the leakage (-60 dBm) lands near -14 dBFS


class SceneChannel:
    """The daemon's echo: the scene's answer to the cyclic TX buffer, in ADC full-scale units."""

    def __init__(self, cfg: config.Config, node_id: str = "pluto0"):
        self.scene = Scene(cfg.scene, cfg.frame)
        self.synth = EchoSynthesizer(self.scene, node_id, np.random.default_rng(1))
        self.node_id = node_id
        self.fs = cfg.frame.sample_rate_hz
        self.time_s = START_SAMPLES / self.fs
        self.scale = 10 ** (NOISE_DBFS / 20)
        self.power_w = 10 ** ((self.scene.node(node_id).tx_power_dbm - 30) / 10)
        self.re_factor = cfg.frame.fft_size / cfg.frame.num_subcarriers     # unitary OFDM: RE power ~ P N / K
        self.starts: list[float] = []

    def __call__(self, tx, num_samples):
        self.starts.append(self.time_s)
        txs = []
        if tx is not None and np.any(tx):
            scale = math.sqrt(self.power_w / np.mean(np.sum(np.abs(tx) ** 2, axis=0)))   # full scale -> node power
            txs.append(Transmission(self.node_id, (tx * scale).astype(np.complex64), True, 0.0,
                                    self.power_w * self.re_factor))
        window = self.synth.receive(self.time_s, num_samples, txs)
        self.time_s += num_samples / self.fs
        return window.iq * self.scale


@pytest.fixture
def cfg():
    return config.loads(TEXT)


@pytest.fixture
def fake_pluto(cfg):
    channel = SceneChannel(cfg)
    with IiodServer(echo=channel) as server:
        server.channel = channel
        yield server


def radio_config(cfg, uri, **kw):
    import dataclasses
    return dataclasses.replace(cfg.radio, uri=uri, **kw)


def range_profile(frame: IsacFrame, capture) -> np.ndarray:
    """|IFFT over subcarriers of Y/X|**2, averaged over symbols: power per range bin c/(2 K df)."""
    grid = frame.ofdm.demodulate(capture.iq, offset=capture.frame_offset)[0]
    h = grid / frame.grid.values[0]
    return np.mean(np.abs(np.fft.ifft(h, axis=1)) ** 2, axis=0)


def test_settings_reach_the_device(cfg, fake_pluto):
    with PlutoRadio(radio_config(cfg, fake_pluto.uri), cfg.frame) as radio:
        got = radio.settings()
    assert got["sample_rate_hz"] == 15.36e6 and got["rx_lo_hz"] == got["tx_lo_hz"] == 2.45e9
    assert got["gain_control_mode_chan0"] == "manual"
    assert got["rx_hardwaregain_chan0_db"] == 30.0 and got["tx_hardwaregain_chan0_db"] == -10.0
    assert fake_pluto.get_attr("ad9361-phy", "frequency", "altvoltage0", output=True) == "2450000000"


def test_cyclic_frame_is_aligned_and_the_target_is_at_its_range(cfg, fake_pluto):
    frame = IsacFrame(cfg.frame)
    with PlutoRadio(radio_config(cfg, fake_pluto.uri), cfg.frame) as radio:
        radio.tx(frame.samples())
        capture = radio.rx(2 * frame.num_samples)
    period = frame.num_samples
    t0 = fake_pluto.channel.starts[-1]
    expected_offset = int(round(-t0 * frame.sample_rate_hz)) % period      # next period start in the buffer
    assert capture.frame_offset == expected_offset
    alignment = capture.metadata["pluto"]["alignment"]
    assert alignment["peak_to_median"] > 10 and abs(alignment["fractional"]) < 0.2
    profile = range_profile(frame, capture)
    bin_m = C / (2 * cfg.frame.num_subcarriers * cfg.frame.subcarrier_spacing_hz)
    assert np.argmax(profile) == 0                                          # the leakage: zero range
    target_bin = 2 + int(np.argmax(profile[2: profile.size // 2]))
    assert abs(target_bin * bin_m - 180.0) <= bin_m                         # within one range cell


def test_leakage_removal_leaves_the_target(cfg, fake_pluto):
    frame = IsacFrame(cfg.frame)
    with PlutoRadio(radio_config(cfg, fake_pluto.uri), cfg.frame) as plain:
        plain.tx(frame.samples())
        before = range_profile(frame, plain.rx(2 * frame.num_samples))
    with PlutoRadio(radio_config(cfg, fake_pluto.uri, remove_leakage=True), cfg.frame) as radio:
        radio.tx(frame.samples())
        capture = radio.rx(2 * frame.num_samples)
    after = range_profile(frame, capture)
    assert capture.metadata["pluto"]["leakage_removed"]
    assert after[0] < before[0] * 1e-2                                     # leakage down by > 20 dB
    target = int(round(2 * 180.0 / (C / (cfg.frame.num_subcarriers * cfg.frame.subcarrier_spacing_hz))))
    # the moving target's echo turns by 2 pi f_D over the 8 averaged buffers (f_D = 327 Hz, 8 ms) and stays
    assert after[target] == pytest.approx(before[target], rel=0.5)


def test_two_channel_board(cfg):
    frame = IsacFrame(config.FrameConfig(num_rb=24, fft_size=512, carrier_hz=2.45e9,
                                         dmrs=config.DmrsConfig(ports=(0, 2))))
    with IiodServer(channels=2) as server:                 # default echo: 0.1 x TX, per channel
        rc = radio_config(cfg, server.uri, rx_channels=(0, 1), tx_channels=(0, 1))
        with PlutoRadio(rc, frame.config) as radio:
            radio.tx(frame.samples())
            capture = radio.rx(2 * frame.num_samples)
    assert capture.iq.shape == (2, 2 * frame.num_samples)
    assert capture.metadata["pluto"]["alignment"]["peak_to_median"] > 10


def test_out_of_range_values_are_refused_before_touching_the_device(cfg):
    with pytest.raises(ConfigError, match=r"radio.center_freq_hz = 7e\+09: allowed 7e\+07 \.\.\. 6e\+09 Hz"):
        PlutoRadio(radio_config(cfg, "ip:127.0.0.1:1", center_freq_hz=7e9), cfg.frame)
    with pytest.raises(ConfigError, match=r"radio.tx_attenuation_db = 90: allowed 0 \.\.\. 89.75 dB"):
        PlutoRadio(radio_config(cfg, "ip:127.0.0.1:1", tx_attenuation_db=90.0), cfg.frame)
    with pytest.raises(ConfigError, match=r"multiples of 0.25 dB"):
        PlutoRadio(radio_config(cfg, "ip:127.0.0.1:1", tx_attenuation_db=10.1), cfg.frame)
    with pytest.raises(ConfigError, match=r"radio.rx_channels = \[2\]"):
        PlutoRadio(radio_config(cfg, "ip:127.0.0.1:1", rx_channels=(2,)), cfg.frame)


def test_unreachable_uri_names_it(cfg):
    with socket.socket() as s:                              # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"ip:127.0.0.1:{port}"
    with pytest.raises(RadioError, match=rf"radio.uri = '{uri}': cannot open the Pluto"):
        PlutoRadio(radio_config(cfg, uri), cfg.frame)


def test_missing_pyadi_iio_says_what_to_install(cfg, monkeypatch):
    monkeypatch.setitem(sys.modules, "adi", None)
    with pytest.raises(RadioUnavailableError, match=r"pip install 'sdr_isac\[pluto\]'.*pylibiio==0.25"):
        PlutoRadio(radio_config(cfg, "ip:127.0.0.1:1"), cfg.frame)


@pytest.mark.hardware
def test_real_pluto_finds_its_own_frame(cfg, request):
    """On a real board: the frame is found in the RX buffer through leakage or a loopback cable."""
    uri = request.config.getoption("--radio-uri")
    frame = IsacFrame(cfg.frame)
    with PlutoRadio(radio_config(cfg, uri), cfg.frame) as radio:
        assert math.isclose(radio.settings()["rx_lo_hz"], 2.45e9)
        radio.tx(frame.samples())
        capture = radio.rx(2 * frame.num_samples)
    assert capture.metadata["pluto"]["alignment"]["peak_to_median"] > 10
