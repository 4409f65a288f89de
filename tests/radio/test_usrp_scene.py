"""UsrpRadio -> fake UHD -> simulated scene: the whole TX/RX path with a target at a known range."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdr_isac import config
from sdr_isac.channel.echo import EchoSynthesizer, Transmission
from sdr_isac.channel.scene import Scene
from sdr_isac.radio.usrp import UsrpRadio
from sdr_isac.waveform import IsacFrame
from tests.radio.fake_uhd import make_fake_uhd

C = 299_792_458.0
CFG = config.loads("""
[frame]
numerology = 1
num_rb = 24
fft_size = 512
carrier_hz = 2.45e9
[radio]
kind = "usrp"
node_id = "b210"
uri = "type=b200"
rx_gain_db = 30
tx_gain_db = 50
[scene]
noise = false
[[scene.nodes]]
id = "b210"
tx_power_dbm = 10
[[scene.targets]]
id = "wall_corner"
position_m = [123.4, 0.0, 0.0]
snr_per_re_db = 15
""")


def scene_echo(scene: Scene, node_id: str):
    """The fake device's channel: what the scene returns for the burst the radio sent."""
    synth = EchoSynthesizer(scene, node_id, np.random.default_rng(0))
    power_w = 10 ** ((scene.node(node_id).tx_power_dbm - 30) / 10)

    def echo(tx, rx_start_s, tx_start_s, num_samples, sample_rate_hz):
        if tx is None:
            return synth.receive(rx_start_s, num_samples, []).iq
        scale = math.sqrt(power_w / np.mean(np.sum(np.abs(tx) ** 2, axis=0)))
        # unitary OFDM: an occupied RE carries about P * N_FFT / K (512 / 288 here; the CP makes it approximate)
        burst = Transmission(node_id, (tx * scale).astype(np.complex64), False, tx_start_s, power_w * 512 / 288)
        return synth.receive(rx_start_s, num_samples, [burst]).iq

    return echo


def test_target_range_through_uhd_boundary():
    scene = Scene(CFG.scene, CFG.frame)
    uhd = make_fake_uhd(scene_echo(scene, "b210"), num_channels=1)
    frame = IsacFrame(CFG.frame)
    with UsrpRadio(CFG.radio, CFG.frame, uhd_module=uhd) as radio:
        radio.tx(frame.samples())
        capture = radio.rx(frame.num_samples)
    assert capture.frame_offset == 0 and capture.metadata["usrp"]["dropped"] == []
    h = frame.ofdm.demodulate(capture.iq)[0] / frame.grid.values[0]
    tau = -np.angle(np.sum(h[:, 1:] * np.conj(h[:, :-1]))) / (2 * math.pi * CFG.frame.subcarrier_spacing_hz)
    assert tau * C / 2 == pytest.approx(123.4, abs=0.05)          # echo delay counted from the TX time spec
    assert 10 * np.log10(np.mean(np.abs(h) ** 2)) == pytest.approx(15.0, abs=0.5)
