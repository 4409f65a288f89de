"""Pluto buffers (fresh, none lost to the DMA status bit) and TDD synchronisation through the real driver stack.

pyadi-iio -> pylibiio -> libiio 0.24 -> TCP -> the test iiod (tests/radio/iiod_server.py), which
serves the Pluto context, optionally with the TDD engine of firmware >= 0.39 (``iio-axi-tdd-0``), and
an echo that knows where in the TX stream each RX read starts (``stream_echo``).  The truths the tests
check against come from the server's own stream timing (``rx_starts``, ``pipeline_delay_samples``),
never from the radio's output.

``pytest -m hardware --radio-uri ip:192.168.2.1`` runs the hardware test on a real Pluto.
"""

from __future__ import annotations

import dataclasses
import gc

import numpy as np
import pytest

from sdr_isac import config
from sdr_isac.errors import ConfigError, InputError, RadioError
from sdr_isac.radio.pluto import PlutoRadio
from sdr_isac.waveform import IsacFrame
from tests.radio.iiod_server import ADC_DMA_OVERFLOW, REG_DMA_STATUS, IiodServer

adi = pytest.importorskip("adi")

FS = 1.92e6
FRAME = config.FrameConfig(numerology=0, num_rb=6, fft_size=128, carrier_hz=2.45e9)
RX_LSB = 2.0**-11
LEAK = 0.3                 # leakage amplitude (full scale), zero delay
TARGET = 0.05              # target amplitude
TARGET_DELAY = 9           # samples
DOPPLER_HZ = 700.0         # the target's phase turns with stream time: a splice shows as a jump


def stream_echo(tx, start, n):
    """Leakage plus one moving target; RX sample k sees the cyclic TX stream at index start + k."""
    if tx is None:
        return np.zeros((1, n))
    period = tx.shape[1]
    idx = start + np.arange(n)
    doppler = np.exp(2j * np.pi * DOPPLER_HZ * idx / FS)
    return LEAK * tx[:, idx % period] + TARGET * tx[:, (idx - TARGET_DELAY) % period] * doppler


def radio_config(uri: str, **kw: object) -> config.RadioConfig:
    return config.RadioConfig(kind="pluto", node_id="pluto0", uri=uri, rx_gain_db=30.0, **kw)  # type: ignore[arg-type]


@pytest.fixture
def frame() -> IsacFrame:
    return IsacFrame(FRAME)


def expected_rx(server: IiodServer, read: int, n: int) -> np.ndarray:
    """What read ``read`` of the server holds, recomputed here from its stream timing (full scale)."""
    return stream_echo(server.tx_history[-1], server.rx_starts[read], n)


# ---- the server drops a buffer on request ----------------------------------------------------------
def test_server_overflow_splices_the_buffer_and_raises_the_dma_flag():
    def ramp(tx, start, n):                          # the stream index itself, so a gap is visible as a jump
        return (((start + np.arange(n)) % 1500) * RX_LSB)[np.newaxis]

    with IiodServer(stream_echo=ramp, start_samples=0) as server:
        sdr = adi.Pluto(server.uri)
        try:
            sdr.rx_buffer_size = 400
            server.inject_overflow(1, at_sample=100, lost_samples=50)
            first = sdr.rx().real
            assert sdr._rxadc.reg_read(REG_DMA_STATUS) & ADC_DMA_OVERFLOW == 0
            second = sdr.rx().real
            status = sdr._rxadc.reg_read(REG_DMA_STATUS)
            sdr._rxadc.reg_write(REG_DMA_STATUS, ADC_DMA_OVERFLOW)          # write 1 to clear
            cleared = sdr._rxadc.reg_read(REG_DMA_STATUS)
            third = sdr.rx().real
        finally:
            sdr.rx_destroy_buffer()
            del sdr
            gc.collect()
    assert status & ADC_DMA_OVERFLOW and cleared == 0
    np.testing.assert_array_equal(np.diff(first), 1)
    steps = np.diff(second)
    assert steps[99] == 51 and np.count_nonzero(steps != 1) == 1             # 50 samples lost after sample 100
    assert third[0] == second[-1] + 1                                         # the stream goes on after the gap
    assert server.rx_starts == [0, 400, 850]


# ---- the radio: fresh buffers, none dropped for the DMA status bit --------------------------------
def test_the_overflow_bit_of_the_waits_between_captures_loses_no_capture(frame):
    """The DMA raises its overflow bit on every sample it does not transfer, so with one kernel buffer and pauses
    between captures it is up at every read: every capture must still be returned, as read, at its frame start."""
    n = 2 * frame.num_samples
    with IiodServer(stream_echo=stream_echo, start_samples=3001, read_gap_samples=517) as server:
        with PlutoRadio(radio_config(server.uri, tdd="off"), frame.config) as radio:
            radio.tx(frame.samples())
            caps = [radio.rx(n) for _ in range(5)]
        reads = server.rx_reads
        assert server.buffers_count == {"iio:device3": 1}
    assert reads == 5 and radio.frames_dropped_overflow == 0
    for read, cap in enumerate(caps):
        np.testing.assert_allclose(cap.iq[0], expected_rx(server, read, n)[0], rtol=0, atol=RX_LSB)
        assert cap.frame_offset == (-server.rx_starts[read]) % frame.num_samples


def test_the_capture_after_a_new_waveform_holds_that_waveform(frame):
    """libiio's 4 kernel buffers, queued and filled before a new tx(), would be the next three captures; with one
    kernel buffer the first capture after tx() is sampled after it."""
    n = 2 * frame.num_samples
    other = np.roll(frame.samples(), 500, axis=1)           # the same frame, started elsewhere: another offset
    with IiodServer(stream_echo=stream_echo, start_samples=3001) as server:
        with PlutoRadio(radio_config(server.uri, tdd="off"), frame.config) as radio:
            radio.tx(frame.samples())
            radio.rx(n)
            radio.tx(other)
            cap = radio.rx(n)
        expected = stream_echo(server.tx_history[-1], server.rx_starts[-1], n)
    np.testing.assert_allclose(cap.iq[0], expected[0], rtol=0, atol=RX_LSB)


# ---- TDD -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pipeline_delay", [0, 37, 130])
def test_tdd_engine_aligns_every_capture_at_the_system_delay(frame, pipeline_delay):
    n = 2 * frame.num_samples
    with IiodServer(tdd=True, stream_echo=stream_echo, start_samples=3001, read_gap_samples=517,
                    pipeline_delay_samples=pipeline_delay) as server:
        with PlutoRadio(radio_config(server.uri), frame.config) as radio:
            radio.tx(frame.samples())
            assert radio.sync == "tdd" and server.tdd_aligned
            caps = [radio.rx(n) for _ in range(3)]
        tdd = {a: server.get_attr("iio-axi-tdd-0", a) for a in ("enable", "frame_length_raw", "burst_count")}
        gates = [server.get_attr("iio-axi-tdd-0", "enable", f"channel{k}", output=True) for k in (1, 2)]
        assert server.buffers_count == {"iio:device3": 1}                   # one kernel buffer
        assert server.tx_history[-1].shape[1] == n                          # the frame, tiled to a TDD frame
        latched = dict(server.tdd_latched)
    assert tdd == {"enable": "0", "frame_length_raw": str(n), "burst_count": "0"}   # disabled again on close
    assert gates == ["0", "0"] and latched[1] == 1           # the gates as found: the RX DMA's idles high again
    for cap in caps:
        align = cap.metadata["pluto"]["alignment"]
        assert align["source"] == "tdd" and cap.metadata["pluto"]["sync"] == "tdd"
        assert cap.frame_offset == pipeline_delay % frame.num_samples      # the converters' latency: the truth
        assert abs(align["fractional"]) < 0.1


def test_a_burst_after_a_cyclic_frame_stops_the_tdd_engine_and_a_cyclic_frame_starts_it_again(frame):
    """A cyclic frame starts the engine (both DMAs gated); a non-cyclic burst after it must not be gated by it: the
    engine goes off and its gates are given back as found, latched (the RX DMA waits for its gate before every
    transfer: left low, no capture would ever come); a cyclic frame after the burst starts the engine again."""
    n = 2 * frame.num_samples

    def engine(server):
        return (server.get_attr("iio-axi-tdd-0", "enable"),
                [server.get_attr("iio-axi-tdd-0", "enable", f"channel{k}", output=True) for k in (1, 2)],
                server.buffers_count.get("iio:device3"))

    with IiodServer(tdd=True, stream_echo=stream_echo, start_samples=3001, read_gap_samples=517) as server:
        with PlutoRadio(radio_config(server.uri), frame.config) as radio:
            radio.tx(frame.samples())
            assert radio.sync == "tdd" and engine(server) == ("1", ["1", "1"], 1)
            radio.tx(frame.samples(), cyclic=False)
            assert radio.sync == "correlation" and engine(server) == ("0", ["0", "0"], 1)
            assert server.tdd_latched[1] == 1
            assert radio.rx(n).metadata["pluto"]["sync"] == "correlation"
            radio.tx(frame.samples())
            assert radio.sync == "tdd" and engine(server) == ("1", ["1", "1"], 1) and server.tdd_aligned
            assert radio.rx(n).metadata["pluto"]["sync"] == "tdd"


def test_a_session_after_a_tdd_session_still_receives(frame):
    """Closing gives the gates back latched as found, so the next program's RX DMA is not left waiting."""
    n = 2 * frame.num_samples
    with IiodServer(tdd=True, stream_echo=stream_echo, start_samples=3001) as server:
        with PlutoRadio(radio_config(server.uri), frame.config) as radio:
            radio.tx(frame.samples())
            assert radio.rx(n).metadata["pluto"]["sync"] == "tdd"
        with PlutoRadio(radio_config(server.uri, tdd="off"), frame.config) as radio:
            radio.tx(frame.samples())
            cap = radio.rx(n)
        expected = stream_echo(server.tx_history[-1], server.rx_starts[-1], n)
    np.testing.assert_allclose(cap.iq[0], expected[0], rtol=0, atol=RX_LSB)


def test_without_tdd_the_offset_follows_the_free_running_stream(frame):
    """The contrast: same stream, no engine -- each buffer lands elsewhere and correlation must find it."""
    n = 2 * frame.num_samples
    with IiodServer(stream_echo=stream_echo, start_samples=3001, read_gap_samples=517,
                    pipeline_delay_samples=37) as server:
        with PlutoRadio(radio_config(server.uri), frame.config) as radio:
            radio.tx(frame.samples())
            caps = [radio.rx(n) for _ in range(3)]
        starts = server.rx_starts
    offsets = [c.frame_offset for c in caps]
    assert offsets == [(-s) % frame.num_samples for s in starts]
    assert len(set(offsets)) > 1
    assert all(c.metadata["pluto"]["sync"] == "correlation" and not c.metadata["pluto"]["tdd_engine"] for c in caps)


def test_tdd_delay_is_the_same_after_every_restart(frame):
    with IiodServer(tdd=True, stream_echo=stream_echo, start_samples=77, pipeline_delay_samples=41) as server:
        with PlutoRadio(radio_config(server.uri, tdd="on"), frame.config) as radio:
            offsets = []
            for _ in range(3):
                radio.tx(frame.samples())
                offsets.append(radio.rx(2 * frame.num_samples).frame_offset)
    assert offsets == [41, 41, 41]


def test_tdd_on_without_the_engine_names_the_firmware(frame):
    with IiodServer() as server:
        with pytest.raises(ConfigError, match=r"radio.tdd = 'on'.*no TDD engine.*firmware >= 0.39.*'auto'"):
            PlutoRadio(radio_config(server.uri, tdd="on"), frame.config)


def test_tdd_off_ignores_the_engine(frame):
    with IiodServer(tdd=True, stream_echo=stream_echo) as server:
        with PlutoRadio(radio_config(server.uri, tdd="off"), frame.config) as radio:
            radio.tx(frame.samples())
            cap = radio.rx(2 * frame.num_samples)
        assert not server.tdd_aligned
    assert cap.metadata["pluto"]["sync"] == "correlation"


def test_capture_longer_than_the_tdd_frame_is_refused(frame):
    with IiodServer(tdd=True, stream_echo=stream_echo) as server:
        with PlutoRadio(radio_config(server.uri), frame.config) as radio:
            radio.tx(frame.samples())
            n = 2 * frame.num_samples
            with pytest.raises(InputError, match=rf"num_samples = {n + 1}: with the TDD engine .* at most one TDD "
                                                 rf"frame, {n} samples"):
                radio.rx(n + 1)


@pytest.mark.parametrize("value", ["sometimes", "", "ON", None, 1])
def test_tdd_setting_is_checked(value):
    with pytest.raises(ConfigError, match=r"tdd"):
        radio_config("ip:127.0.0.1:1", tdd=value)


# ---- a real board ----------------------------------------------------------------------------------
@pytest.mark.hardware
def test_real_pluto_tdd_delay_is_stable_across_restarts(request):
    """On a real board (firmware >= 0.39, loopback cable or leakage): the TDD delay after each restart.

    Prints the delays; they must agree within half a sample (correlation alone gives a different
    offset per buffer, as the buffers start anywhere in the frame).
    """
    uri = request.config.getoption("--radio-uri")
    frame = IsacFrame(dataclasses.replace(FRAME, numerology=1, num_rb=24, fft_size=512))
    try:
        radio = PlutoRadio(radio_config(uri, tdd="on", tx_attenuation_db=30.0), frame.config)
    except ConfigError as err:
        pytest.skip(f"no TDD engine on this Pluto: {err}")
    delays = []
    with radio:
        for _ in range(8):
            radio.tx(frame.samples())
            align = radio.rx(2 * frame.num_samples).metadata["pluto"]["alignment"]
            assert align["source"] == "tdd" and align["peak_to_median"] > 10
            delays.append(align["offset"] + align["fractional"])
    print(f"TDD system delay over 8 restarts: {np.round(delays, 3)} samples")
    assert max(delays) - min(delays) < 0.5


# ---- what the board refuses or narrows -------------------------------------------------------------
def test_a_refused_lo_names_the_field_the_value_and_the_boards_range(frame):
    """A stock Pluto (AD9363) tunes 325 MHz ... 3.8 GHz: the driver's EINVAL comes back as the radio field."""
    with IiodServer() as server:
        with pytest.raises(RadioError, match=r"refused radio\.center_freq_hz = 5800000000 Hz \(pyadi-iio rx_lo: .*"
                                             r"325 MHz \.\.\. 3\.8 GHz.*AD9364 mode"):
            PlutoRadio(radio_config(server.uri, center_freq_hz=5.8e9), frame.config)


def test_a_bandwidth_the_driver_narrows_is_reported(frame, caplog):
    """The ad9361 driver clamps the analog filter without an error (the test board's TX filter stops at 40 MHz):
    the bandwidth set is read back, logged and carried by every capture."""
    with IiodServer() as server:
        with caplog.at_level("WARNING", logger="sdr_isac.radio.pluto"):
            with PlutoRadio(radio_config(server.uri, sample_rate_hz=61.44e6, center_freq_hz=2.45e9, tdd="off"),
                            None) as radio:
                radio.tx(frame.samples())
                cap = radio.rx(1000)
    assert cap.metadata["pluto"]["rf_bandwidth_hz"] == {"rx": 56e6, "tx": 40e6}
    assert any("TX RF bandwidth 5.6e+07 Hz asked" in r.getMessage() and "set 4e+07 Hz" in r.getMessage()
               for r in caplog.records)
