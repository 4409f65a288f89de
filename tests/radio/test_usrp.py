"""UsrpRadio against a fake UHD module (tests/radio/fake_uhd.py): set-up, timed TX/RX, faults."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdr_isac.config import RadioConfig
from sdr_isac.errors import ConfigError, RadioError, RadioOverflowError, RadioUnavailableError
from sdr_isac.radio.base import Radio
from sdr_isac.radio.usrp import UsrpRadio
from tests.radio.fake_uhd import delayed_echo, make_fake_uhd

FS = 1e6
FC = 2.45e9


def _config(**kw: object) -> RadioConfig:
    base: dict[str, object] = dict(kind="usrp", node_id="bs0", uri="type=b200", sample_rate_hz=FS,
                                   center_freq_hz=FC, rx_gain_db=40.0, tx_gain_db=50.0, timeout_s=1.0)
    base.update(kw)
    return RadioConfig(**base)  # type: ignore[arg-type]


def _waveform(rng: np.random.Generator, n: int, channels: int = 1) -> np.ndarray:
    return (rng.standard_normal((channels, n)) + 1j * rng.standard_normal((channels, n))).astype(np.complex64)


def _on_air(x: np.ndarray) -> np.ndarray:
    """What the radio sends of ``x``: scaled so that its largest I or Q value is 0.5 (half the fc32 full scale)."""
    return x * (0.5 / max(np.abs(x.real).max(), np.abs(x.imag).max()))


# ---- set-up --------------------------------------------------------------------------------
def test_settings_reach_the_device() -> None:
    uhd = make_fake_uhd()
    cfg = _config(rx_channels=(0, 1), tx_channels=(0, 1), rf_bandwidth_hz=0.8e6, rx_antenna="RX2",
                  tx_antenna="TX/RX", clock_source="external", time_source="external")
    radio = UsrpRadio(cfg, uhd_module=uhd)
    dev = uhd.fake.device
    assert isinstance(radio, Radio) and radio.kind == "usrp"
    assert dev.args == "type=b200"
    assert (dev.clock_source, dev.time_source) == ("external", "external")
    assert dev.time_set == ("unknown_pps", 0.0)
    for ch in (0, 1):
        s = {key: dev.settings[(key, ch)] for key, c in dev.settings if c == ch}
        assert s["rx_rate"] == s["tx_rate"] == FS
        assert s["rx_freq"] == s["tx_freq"] == FC
        assert (s["rx_gain"], s["tx_gain"]) == (40.0, 50.0)
        assert s["rx_bandwidth"] == s["tx_bandwidth"] == 0.8e6
        assert (s["rx_antenna"], s["tx_antenna"]) == ("RX2", "TX/RX")
    assert radio.device_info["rx_freq_hz"] == [FC, FC]


def test_internal_time_source_sets_time_now_and_default_bandwidth_is_clipped_rate() -> None:
    uhd = make_fake_uhd()
    UsrpRadio(_config(sample_rate_hz=100e3), uhd_module=uhd)
    dev = uhd.fake.device
    assert dev.time_set == ("now", 0.0)
    assert dev.settings[("rx_bandwidth", 0)] == 200e3          # B210's analog filter goes down to 200 kHz
    assert ("rx_antenna", 0) not in dev.settings               # '' keeps the device default


@pytest.mark.parametrize("kw, match", [
    (dict(center_freq_hz=7e9), r"radio.center_freq_hz = 7000000000 Hz: allowed 70000000 Hz \.\.\. 6000000000 Hz"),
    (dict(sample_rate_hz=100e6), r"radio.sample_rate_hz = 100000000 Hz: this USRP set 61440000 Hz on RX channel 0 "
                                 r"\(with its master clock now, rates 62500 Hz \.\.\. 61440000 Hz"),
    (dict(rx_gain_db=90.0), r"radio.rx_gain_db = 90 dB: allowed 0 dB \.\.\. 76 dB"),
    (dict(tx_gain_db=-3.0), r"radio.tx_gain_db = -3 dB: allowed 0 dB \.\.\. 89\.75 dB"),
    (dict(rf_bandwidth_hz=100e6), r"radio.rf_bandwidth_hz = 100000000 Hz: allowed 200000 Hz"),
    (dict(rx_channels=(0, 2)), r"radio.rx_channels = \[0, 2\]: allowed channel indices 0 \.\.\. 1"),
    (dict(rx_antenna="RX9"), r"radio.rx_antenna = 'RX9': allowed 'TX/RX', 'RX2'"),
    (dict(tx_antenna="RX2"), r"radio.tx_antenna = 'RX2': allowed 'TX/RX'"),
    (dict(clock_source="gpsdo"), r"radio.clock_source = 'gpsdo': allowed 'internal', 'external'"),
])
def test_out_of_range_settings_raise_config_error(kw: dict[str, object], match: str) -> None:
    uhd = make_fake_uhd(clock_sources=("internal", "external"))
    with pytest.raises(ConfigError, match=match) as info:
        UsrpRadio(_config(**kw), uhd_module=uhd)
    assert info.value.key == "radio." + next(iter(kw)) and "set radio." in str(info.value)


def test_a_b2xx_moves_its_master_clock_for_a_rate_above_its_start_clock() -> None:
    """A B2xx starts at a 16 MHz master clock, so get_rx_rates stops at 16 MHz until set_rx_rate moves the clock
    (UHD's automatic master clock): 30.72 Msps must be set, not refused against the start clock's range."""
    uhd = make_fake_uhd(master_clock_hz=16e6)
    assert uhd.usrp.MultiUSRP("type=b200").get_rx_rates(0).stop() == 16e6
    radio = UsrpRadio(_config(sample_rate_hz=30.72e6), uhd_module=uhd)
    dev = uhd.fake.device
    assert dev.settings[("rx_rate", 0)] == dev.settings[("tx_rate", 0)] == 30.72e6
    assert uhd.fake.master_clock_hz == 61.44e6 and radio.device_info["rx_rate_hz"] == [30.72e6]


def test_an_nr_frame_goes_out_at_half_full_scale_unclipped(rng: np.random.Generator) -> None:
    """fc32 full scale is 1.0 (the sc16 converter clips beyond it); an OFDM frame's peaks lie some 10 dB above its
    RMS, so the burst is scaled to a largest I or Q value of 0.5 and nothing is clipped."""
    from sdr_isac.config import FrameConfig
    from sdr_isac.waveform import IsacFrame

    x = IsacFrame(FrameConfig(numerology=0, num_rb=4, fft_size=128, num_slots=1, carrier_hz=FC)).samples()
    assert max(np.abs(x.real).max(), np.abs(x.imag).max()) > 1.0          # as built: would clip
    uhd = make_fake_uhd(delayed_echo(3, gain=1.0), max_num_samps=256)
    with UsrpRadio(_config(sample_rate_hz=1.92e6), uhd_module=uhd) as radio:
        radio.tx(x, cyclic=False)
        radio.rx(x.shape[1] + 10)
    sent = uhd.fake.device.bursts[-1].samples
    assert uhd.fake.tx_clipped == 0
    assert max(np.abs(sent.real).max(), np.abs(sent.imag).max()) == pytest.approx(0.5, rel=1e-6)
    scale = 0.5 / max(np.abs(x.real).max(), np.abs(x.imag).max())
    np.testing.assert_allclose(sent, x * scale, atol=1e-7)                  # the frame's shape, unchanged


def test_rate_the_device_cannot_reach_exactly_raises_config_error() -> None:
    uhd = make_fake_uhd(device_ranges={"rate": (0.0, 61.44e6, 0.3e6)})
    with pytest.raises(ConfigError, match=r"sample_rate_hz = 1000000 Hz: this USRP set 900000 Hz"):
        UsrpRadio(_config(), uhd_module=uhd)


def test_device_not_found_raises_radio_error_naming_the_args() -> None:
    uhd = make_fake_uhd(fail_open=RuntimeError("LookupError: KeyError: No devices found for ----->"))
    with pytest.raises(RadioError, match=r"radio.uri = 'type=b200'.*No devices found.*uhd_find_devices") as info:
        UsrpRadio(_config(), uhd_module=uhd)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_unlocked_external_reference_raises_radio_error() -> None:
    uhd = make_fake_uhd(ref_locked=False)
    with pytest.raises(RadioError, match="external reference did not lock"):
        UsrpRadio(_config(clock_source="external", timeout_s=0.05), uhd_module=uhd)


# ---- timed TX and RX --------------------------------------------------------------------------------
@pytest.mark.parametrize("delay", [0, 37, 130])
def test_cyclic_waveform_comes_back_at_the_delay_counted_from_tx_start(rng: np.random.Generator,
                                                                       delay: int) -> None:
    period, n = 100, 450
    uhd = make_fake_uhd(delayed_echo(delay, gain=0.5), max_num_samps=64)
    x = _waveform(rng, period)
    with UsrpRadio(_config(), uhd_module=uhd) as radio:
        radio.tx(x, cyclic=True)
        cap = radio.rx(n)
    dev = uhd.fake.device
    burst = dev.bursts[-1]
    assert burst.samples.shape == (1, 5 * period)                       # ceil(450 / 100) periods
    assert burst.time_s == cap.t0_s == dev.stream_cmds[0].time_spec.get_real_secs()
    assert dev.stream_cmds[0].num_samps == n and not dev.stream_cmds[0].stream_now
    assert cap.iq.shape == (1, n) and cap.iq.dtype == np.complex64 and cap.frame_offset == 0
    expected = np.zeros(n, np.complex64)
    i = np.arange(delay, n)
    expected[delay:] = 0.5 * _on_air(x)[0, (i - delay) % period]
    np.testing.assert_allclose(cap.iq[0], expected, atol=1e-6)
    corr = np.abs(np.correlate(cap.iq[0], x[0], mode="valid"))        # first full peak at the delay
    assert int(np.argmax(corr)) == delay
    meta = cap.metadata["usrp"]
    assert meta["overflows"] == 0 and meta["frames_dropped_overflow"] == 0 and meta["dropped"] == []
    assert meta["tx"]["cyclic"] and meta["tx"]["acknowledged"] and meta["tx"]["complete"]
    assert cap.sample_rate_hz == FS and cap.center_freq_hz == FC and cap.metadata["radio"] == "usrp"


def test_delay_given_in_seconds_lands_on_the_sample(rng: np.random.Generator) -> None:
    delay_s = 25e-6                                       # 25 samples at 1 MHz
    uhd = make_fake_uhd(delayed_echo(round(delay_s * FS), gain=1.0))
    x = _waveform(rng, 64)
    with UsrpRadio(_config(), uhd_module=uhd) as radio:
        radio.tx(x)
        cap = radio.rx(256)
    peak = int(np.argmax(np.abs(np.correlate(cap.iq[0], x[0], mode="valid"))[:64]))
    assert peak / cap.sample_rate_hz == pytest.approx(delay_s)


def test_two_channels_b210_like(rng: np.random.Generator) -> None:
    uhd = make_fake_uhd(delayed_echo(10, gain=1.0, channel_gains=(1.0, 1j)), max_num_samps=100)
    x = _waveform(rng, 50, channels=2)
    with UsrpRadio(_config(rx_channels=(0, 1), tx_channels=(0, 1)), uhd_module=uhd) as radio:
        radio.tx(x)
        cap = radio.rx(300)
    assert cap.iq.shape == (2, 300) and cap.num_channels == 2
    assert uhd.fake.device.bursts[-1].samples.shape == (2, 300)
    np.testing.assert_allclose(cap.iq[1], 1j * cap.iq[0], atol=1e-6)
    expected = _on_air(x).sum(axis=0)[(np.arange(10, 300) - 10) % 50]
    np.testing.assert_allclose(cap.iq[0, 10:], expected, atol=1e-5)


def test_single_burst_goes_out_with_the_next_capture_only(rng: np.random.Generator) -> None:
    uhd = make_fake_uhd(delayed_echo(20, gain=1.0), max_num_samps=32)
    x = _waveform(rng, 80)
    with UsrpRadio(_config(), uhd_module=uhd) as radio:
        radio.tx(x, cyclic=False)
        first = radio.rx(200)
        second = radio.rx(200)
    assert len(uhd.fake.device.bursts) == 1 and uhd.fake.device.bursts[0].samples.shape == (1, 80)
    np.testing.assert_allclose(first.iq[0, 20:100], _on_air(x)[0], atol=1e-6)
    assert not first.iq[0, :20].any() and not first.iq[0, 100:].any()
    assert first.metadata["usrp"]["tx"]["cyclic"] is False
    assert second.metadata["usrp"]["tx"] is None and not second.iq.any()
    assert second.t0_s > first.t0_s + 200 / FS and (first.seq, second.seq) == (0, 1)


def test_receive_only_without_a_waveform() -> None:
    uhd = make_fake_uhd(delayed_echo(5))
    with UsrpRadio(_config(), uhd_module=uhd) as radio:
        cap = radio.rx(100)
    assert cap.metadata["usrp"]["dropped"] == [] and cap.metadata["usrp"]["tx"] is None
    assert uhd.fake.device.bursts == []


# ---- faults ------------------------------------------------------------------------------------------
F_DOPPLER = 1234.5     # Hz: the echo's carrier phase turns with device time, so a splice would show as a jump


def doppler_echo(delay: int, gain: complex = 0.5, doppler_hz: float = F_DOPPLER):
    """A moving reflector: the TX burst delayed by ``delay`` samples, turning at ``doppler_hz`` on device time."""
    def echo(tx, rx_start_time_s, tx_start_time_s, num_samples, sample_rate_hz):
        out = np.zeros(num_samples, np.complex64)
        if tx is not None:
            offset = round((rx_start_time_s - tx_start_time_s) * sample_rate_hz)
            idx = offset + np.arange(num_samples) - delay
            ok = (idx >= 0) & (idx < tx.shape[1])
            t = rx_start_time_s + np.arange(num_samples) / sample_rate_hz
            out[ok] = gain * tx.sum(axis=0)[idx[ok]] * np.exp(2j * np.pi * doppler_hz * t[ok])
        return out[np.newaxis]
    return echo


def expected_echo(x: np.ndarray, t0_s: float, n: int, delay: int, gain: complex = 0.5) -> np.ndarray:
    """What a clean capture starting with its burst at ``t0_s`` holds, computed here from the physics (``x`` as
    given to ``tx``)."""
    k = np.arange(n)
    out = gain * _on_air(x)[0, (k - delay) % x.shape[1]] * np.exp(2j * np.pi * F_DOPPLER * (t0_s + k / FS))
    out[k < delay] = 0
    return out


def _run_with_overflow(x: np.ndarray, n: int, delay: int, captures: int, **faults: Any):
    uhd = make_fake_uhd(doppler_echo(delay), max_num_samps=64, **faults)
    with UsrpRadio(_config(), uhd_module=uhd) as radio:
        radio.tx(x)
        caps = [radio.rx(n) for _ in range(captures)]
        stats, dropped = dict(radio.stats), radio.frames_dropped_overflow
    return uhd, caps, stats, dropped


@pytest.mark.parametrize("at_sample", [0, 1, 100, 150, 299])
def test_overflow_at_a_chosen_sample_drops_the_frame_and_restarts_from_one_timed_start(
        rng: np.random.Generator, at_sample: int) -> None:
    n, period, delay = 300, 100, 7
    x = _waveform(rng, period)
    # the second capture's stream runs over samples 300 ... 599 of the device's stream
    uhd, caps, stats, dropped = _run_with_overflow(x, n, delay, 3, overflow_at_samples=n + at_sample)
    dev = uhd.fake.device
    assert dropped == 1 and stats["overflows"] == 1 and len(caps) == 3
    assert [c.seq for c in caps] == [0, 1, 2]
    # every returned frame is the clean echo of its own timed start: delay and Doppler phase continuous
    for cap in caps:
        np.testing.assert_allclose(cap.iq[0], expected_echo(x, cap.t0_s, n, delay), atol=1e-5)
        ratio = cap.iq[0, delay:] / (0.5 * x[0, (np.arange(delay, n) - delay) % period])
        step = np.angle(ratio[1:] / ratio[:-1])                     # phase step per sample: 2 pi f_D / fs
        np.testing.assert_allclose(step, 2 * np.pi * F_DOPPLER / FS, atol=1e-4)
    # the restart: one stop, then one stream command and one burst at the same future time
    modes = [c.mode.name for c in dev.stream_cmds]
    assert modes == ["num_done", "num_done", "stop_cont", "num_done", "num_done"]
    timed = [c for c in dev.stream_cmds if c.mode.name == "num_done"]
    assert len(dev.bursts) == len(timed) == 4
    assert [b.time_s for b in dev.bursts] == [c.time_spec.get_real_secs() for c in timed]
    assert all(not c.stream_now for c in timed)
    (_, overflow_time_s), = uhd.fake.overflows_fired
    restart_s = timed[2].time_spec.get_real_secs()
    assert restart_s > overflow_time_s and caps[1].t0_s == restart_s           # in the future, after the fault
    meta = caps[1].metadata["usrp"]
    assert meta["frames_dropped_overflow"] == 1 and len(meta["dropped"]) == 1 and meta["attempts"] == 2
    assert meta["dropped"][0]["t0_s"] == timed[1].time_spec.get_real_secs() != caps[1].t0_s
    assert meta["dropped"][0]["gaps"][-1][1] == n                               # the rest was never spliced in
    assert caps[0].metadata["usrp"]["frames_dropped_overflow"] == 0


@given(at=st.integers(0, 3 * 240 - 1), drop=st.integers(1, 500))
@settings(max_examples=20, deadline=None)
def test_any_overflow_position_leaves_only_clean_frames(at: int, drop: int) -> None:
    rng = np.random.default_rng(at)
    n, delay = 240, 11
    x = _waveform(rng, 80)
    _, caps, stats, dropped = _run_with_overflow(x, n, delay, 3, overflow_at_samples=at,
                                                 overflow_drop_samples=drop)
    assert dropped == 1 and stats["overflows"] == 1
    for cap in caps:
        np.testing.assert_allclose(cap.iq[0], expected_echo(x, cap.t0_s, n, delay), atol=1e-5)


@pytest.mark.parametrize("inject, counter", [("inject_overflow_at", "overflows"),
                                             ("inject_out_of_sequence_at", "out_of_sequence")])
def test_overflow_or_lost_packet_at_a_recv_call_drops_the_frame(rng: np.random.Generator, inject: str,
                                                                counter: str) -> None:
    faults: dict[str, Any] = {inject: 1}
    x = _waveform(rng, 100)
    _, caps, stats, dropped = _run_with_overflow(x, 300, 0, 1, **faults)
    assert stats[counter] == 1 and dropped == 1
    meta = caps[0].metadata["usrp"]
    assert meta[counter] == 1 and meta["frames_dropped_overflow"] == len(meta["dropped"]) == 1
    assert meta["dropped"][0]["gaps"] == [[64, 300]]                # samples 64 ... lost, the frame thrown away
    np.testing.assert_allclose(caps[0].iq[0], expected_echo(x, caps[0].t0_s, 300, 0), atol=1e-5)


def test_overflows_on_every_frame_raise_after_max_restarts(rng: np.random.Generator) -> None:
    n = 200
    uhd = make_fake_uhd(delayed_echo(0), max_num_samps=64, overflow_at_samples=range(50, 50 * n, 150))
    radio = UsrpRadio(_config(), uhd_module=uhd)
    radio.tx(_waveform(rng, 50))
    with pytest.raises(RadioOverflowError, match=r"4 frames in a row had gaps.*dropped.*lower the rate"):
        radio.rx(n)
    assert radio.frames_dropped_overflow == radio.max_restarts + 1 == 4
    assert len(uhd.fake.device.bursts) == 4


def test_late_stream_command_is_counted_and_retried_with_more_lead(rng: np.random.Generator) -> None:
    uhd = make_fake_uhd(delayed_echo(3, gain=1.0), inject_late_at=0)
    with UsrpRadio(_config(), uhd_module=uhd) as radio:
        radio.tx(_waveform(rng, 50))
        cap = radio.rx(200)
        assert radio.stats["late"] == 1 and radio.lead_s == pytest.approx(0.2)
    meta = cap.metadata["usrp"]
    assert meta["late"] == 1 and meta["attempts"] == 2 and meta["dropped"] == []
    assert cap.t0_s == uhd.fake.device.bursts[-1].time_s


def test_stream_command_late_twice_raises() -> None:
    uhd = make_fake_uhd(inject_late_at=(0, 1))
    radio = UsrpRadio(_config(), uhd_module=uhd)
    with pytest.raises(RadioError, match="too late twice.*raise UsrpRadio.lead_s"):
        radio.rx(100)
    assert radio.stats["late"] == 2


def test_timeout_without_samples_raises_radio_error() -> None:
    uhd = make_fake_uhd(stall_after=0)
    radio = UsrpRadio(_config(), uhd_module=uhd)
    with pytest.raises(RadioError, match="no samples received within radio.timeout_s = 1.0 s"):
        radio.rx(100)
    assert radio.stats["timeouts"] == 1


def test_timeout_part_way_drops_the_frame_and_gives_up_after_max_restarts() -> None:
    uhd = make_fake_uhd(delayed_echo(0), stall_after=120, max_num_samps=50)
    radio = UsrpRadio(_config(), uhd_module=uhd)
    with pytest.raises(RadioOverflowError, match=r"4 frames in a row had gaps \(180 of 300 RX samples missing"):
        radio.rx(300)
    assert radio.stats["timeouts"] == 4 and radio.frames_dropped_overflow == 4
    assert uhd.fake.device.stream_cmds[-1].mode.name == "stop_cont"        # stream stopped, nothing left over


def test_tx_underflow_drops_the_frame(rng: np.random.Generator) -> None:
    uhd = make_fake_uhd(delayed_echo(0), inject_underflow=True)
    radio = UsrpRadio(_config(), uhd_module=uhd)
    radio.tx(_waveform(rng, 10))
    with pytest.raises(RadioError, match=r"TX underflow \(U\)"):
        radio.rx(100)
    assert radio.stats["underflows"] == 4 and radio.frames_dropped_overflow == 4


def test_receive_only_frames_are_not_dropped_without_faults() -> None:
    uhd = make_fake_uhd(delayed_echo(5))
    with UsrpRadio(_config(), uhd_module=uhd) as radio:
        caps = [radio.rx(100) for _ in range(3)]
        assert radio.frames_dropped_overflow == 0
    assert all(c.metadata["usrp"]["frames_dropped_overflow"] == 0 for c in caps)


def test_closed_radio_raises_radio_error(rng: np.random.Generator) -> None:
    radio = UsrpRadio(_config(), uhd_module=make_fake_uhd())
    radio.close()
    radio.close()
    with pytest.raises(RadioError, match="'usrp' of node 'bs0' is closed"):
        radio.rx(10)
    with pytest.raises(RadioError, match="closed"):
        radio.tx(_waveform(rng, 10))


# ---- UHD missing ---------------------------------------------------------------------------------------
def test_missing_uhd_raises_radio_unavailable_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uhd", None)            # makes `import uhd` raise ImportError
    with pytest.raises(RadioUnavailableError, match=r"apt install python3-uhd.*numpy < 2.*conda-forge uhd") as info:
        UsrpRadio(_config())
    assert isinstance(info.value.__cause__, ImportError)


def test_module_import_does_not_import_uhd() -> None:
    code = ("import sys; sys.modules['uhd'] = None; import sdr_isac.radio.usrp as m; "
            "assert m.UsrpRadio; print(sys.modules['uhd'] is None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_a_setter_uhd_refuses_is_named_with_its_field_value_and_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.radio import fake_uhd

    def refuse(self: object, value: float, chan: int = 0) -> None:
        raise RuntimeError("ValueError: gain out of range for this frontend")

    monkeypatch.setattr(fake_uhd.FakeMultiUSRP, "set_rx_gain", refuse, raising=False)
    with pytest.raises(RadioError, match=r"set_rx_gain for radio\.rx_gain_db = 40 dB failed \(UHD: ValueError: gain "
                                         r"out of range.*\); set radio\.rx_gain_db to a value this device takes"):
        UsrpRadio(_config(), uhd_module=make_fake_uhd())
    monkeypatch.undo()
    monkeypatch.setattr(fake_uhd.FakeMultiUSRP, "set_time_unknown_pps",
                        lambda self, t: (_ for _ in ()).throw(RuntimeError("no PPS detected")), raising=False)
    with pytest.raises(RadioError, match=r"radio\.time_source = 'external' failed \(UHD: no PPS detected\); check "
                                         r"the PPS input.*radio\.time_source = 'internal'"):
        UsrpRadio(_config(time_source="external"), uhd_module=make_fake_uhd())


def test_a_rate_other_than_the_frames_is_refused_for_pluto_and_usrp() -> None:
    """A radio that transmits the frame must run at its rate: 20 Msps for a 15.36 Msps frame sent the frame
    wrongly and recorded captures that sensing refused later, with advice about a key NR frames do not have."""
    from sdr_isac.config import FrameConfig
    from sdr_isac.radio.pluto import PlutoRadio

    frame = FrameConfig(numerology=1, num_rb=24, fft_size=512, carrier_hz=2.4e9)        # 15.36 Msps
    message = (r"radio.sample_rate_hz = 20000000 Hz: the frame runs at 15360000 Hz \(fft_size 512 x 30000 Hz\); "
               r"set radio.sample_rate_hz = 0")
    with pytest.raises(ConfigError, match=message):
        UsrpRadio(_config(sample_rate_hz=20e6), frame, uhd_module=make_fake_uhd())
    pluto_cfg = RadioConfig(kind="pluto", node_id="p", uri="ip:127.0.0.1:1", sample_rate_hz=20e6)
    with pytest.raises(ConfigError, match=message):
        PlutoRadio(pluto_cfg, frame, adi_module=object())                       # refused before the device
    UsrpRadio(_config(sample_rate_hz=0.0), frame, uhd_module=make_fake_uhd()).close()   # 0: the frame's rate
