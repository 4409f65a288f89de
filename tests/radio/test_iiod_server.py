"""The fake iiod against the real stack: pyadi-iio -> pylibiio -> libiio 0.24 -> TCP.

Run with ``-p no:libiio`` (pytest-libiio's plugin scans for hardware at
collection time).
"""

from __future__ import annotations

import errno
import gc
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

iio = pytest.importorskip("iio")
adi = pytest.importorskip("adi")
pytest.importorskip("pytest_libiio")

from tests.radio.iiod_server import AttrKey, IiodServer, default_echo  # noqa: E402

PLUTO_DEVICES = {"ad9361-phy", "xadc", "cf-ad9361-lpc", "cf-ad9361-dds-core-lpc"}
RX_LSB = 2.0**-11  # one RX code in full-scale units (le:S12/16)
TX_LSB = 2.0**-15  # one TX code in full-scale units (le:S16/16)


class RecordingEcho:
    """Wraps an echo and keeps what it saw and returned."""

    def __init__(self, echo: Any = default_echo):
        self.echo = echo
        self.calls: list[tuple[NDArray[np.complex128] | None, int, NDArray[np.complex128]]] = []

    def __call__(self, tx: NDArray[np.complex128] | None, n: int) -> NDArray[np.complex128]:
        rx = np.asarray(self.echo(tx, n), dtype=np.complex128)
        self.calls.append((tx, n, rx))
        return rx


@pytest.fixture
def echo() -> RecordingEcho:
    return RecordingEcho()


@pytest.fixture
def server(echo: RecordingEcho) -> Iterator[IiodServer]:
    with IiodServer(echo) as srv:
        yield srv
    assert not [t for t in threading.enumerate() if t.name.startswith("iiod-")]


@contextmanager
def radio(cls: Any, uri: str) -> Iterator[Any]:
    """A pyadi-iio object whose buffers are destroyed before its context (libiio 0.x needs that order)."""
    sdr = cls(uri)
    try:
        yield sdr
    finally:
        sdr.tx_destroy_buffer()
        sdr.rx_destroy_buffer()
        del sdr
        gc.collect()


def tone(n: int, cycles: float, amplitude: float = 2**14, phase: float = 0.0) -> NDArray[np.complex128]:
    """A complex tone in pyadi-iio's TX units (int16 codes, customary Pluto scale 2**14)."""
    return amplitude * np.exp(1j * (2 * np.pi * cycles * np.arange(n) / n + phase))


def as_sent(x: NDArray[np.complex128]) -> NDArray[np.complex128]:
    """What pyadi-iio's tx() puts on the wire (astype(int16) truncates), in full-scale units."""
    codes = np.real(x).astype(np.int16) + 1j * np.imag(x).astype(np.int16)
    return np.asarray(codes * TX_LSB, dtype=np.complex128)


def assert_rx_matches(rx: NDArray[np.complex128], expected: NDArray[np.complex128]) -> None:
    """rx (raw codes from pyadi-iio) equals the echo output (full scale) up to RX quantisation."""
    np.testing.assert_allclose(rx.real * RX_LSB, expected.real, rtol=0, atol=RX_LSB / 2 + 1e-12)
    np.testing.assert_allclose(rx.imag * RX_LSB, expected.imag, rtol=0, atol=RX_LSB / 2 + 1e-12)


# ------------------------------------------------------------------ context


def test_uri_names_the_ephemeral_port(server: IiodServer) -> None:
    assert server.port > 0
    assert re.fullmatch(r"ip:127\.0\.0\.1:\d+", server.uri)
    assert server.uri.endswith(f":{server.port}")


def test_pylibiio_context_lists_pluto_devices(server: IiodServer) -> None:
    ctx = iio.Context(server.uri)
    try:
        assert {d.name for d in ctx.devices} == PLUTO_DEVICES
        assert "PlutoSDR" in ctx.attrs["hw_model"]
        assert ctx.version[:2] == (0, 24)
        phy = ctx.find_device("ad9361-phy")
        assert phy.find_channel("altvoltage0", True).attrs["frequency"].value == "2400000000"
        assert phy.find_channel("voltage0", False).attrs["hardwaregain"].value == "71.000000 dB"
        assert phy.debug_attrs["loopback"].value == "0"
        rxadc = ctx.find_device("cf-ad9361-lpc")
        assert rxadc.buffer_attrs["watermark"].value == "2048"
        assert {c.id for c in rxadc.channels if c.scan_element} == {"voltage0", "voltage1"}
    finally:
        del ctx
        gc.collect()
    assert server.commands[0] == "PRINT"
    assert "VERSION" in server.commands


# --------------------------------------------------------------- attributes


@pytest.mark.parametrize(
    ("prop", "value", "key", "stored"),
    [
        ("rx_lo", 2_000_000_000, AttrKey("ad9361-phy", "output", "altvoltage0", "frequency"), "2000000000"),
        ("tx_lo", 2_100_000_000, AttrKey("ad9361-phy", "output", "altvoltage1", "frequency"), "2100000000"),
        ("sample_rate", 10_000_000, AttrKey("ad9361-phy", "input", "voltage0", "sampling_frequency"), "10000000"),
        ("sample_rate", 1_000_000, AttrKey("ad9361-phy", "input", "voltage0", "sampling_frequency"), "1000000"),
        ("rx_rf_bandwidth", 5_000_000, AttrKey("ad9361-phy", "input", "voltage0", "rf_bandwidth"), "5000000"),
        ("tx_rf_bandwidth", 4_000_000, AttrKey("ad9361-phy", "output", "voltage0", "rf_bandwidth"), "4000000"),
        (
            "gain_control_mode_chan0",
            "manual",
            AttrKey("ad9361-phy", "input", "voltage0", "gain_control_mode"),
            "manual",
        ),
        ("tx_hardwaregain_chan0", -20, AttrKey("ad9361-phy", "output", "voltage0", "hardwaregain"), "-20.000000 dB"),
    ],
)
def test_pluto_attribute_round_trip(server: IiodServer, prop: str, value: Any, key: AttrKey, stored: str) -> None:
    with radio(adi.Pluto, server.uri) as sdr:
        setattr(sdr, prop, value)
        assert getattr(sdr, prop) == value
    assert server.attributes[key] == stored


def test_rx_gain_round_trip_in_manual_mode(server: IiodServer) -> None:
    with radio(adi.Pluto, server.uri) as sdr:
        sdr.gain_control_mode_chan0 = "manual"
        sdr.rx_hardwaregain_chan0 = 30
        assert sdr.rx_hardwaregain_chan0 == 30
        assert sdr.gain_control_mode_chan0 == "manual"
    assert server.get_attr("ad9361-phy", "hardwaregain", channel="voltage0") == "30.000000 dB"
    assert server.get_attr("ad9361-phy", "gain_control_mode", channel="voltage0") == "manual"


def test_sample_rate_reaches_data_devices(server: IiodServer) -> None:
    with radio(adi.Pluto, server.uri) as sdr:
        sdr.sample_rate = 2_500_000
        assert not sdr.rx_dec8_filter_en
    for dev in ("cf-ad9361-lpc", "cf-ad9361-dds-core-lpc"):
        output = dev == "cf-ad9361-dds-core-lpc"
        assert server.get_attr(dev, "sampling_frequency", channel="voltage0", output=output) == "2500000"
    assert server.get_attr("ad9361-phy", "sampling_frequency", channel="voltage0", output=True) == "2500000"
    assert server.get_attr("ad9361-phy", "filter_fir_config") == "FIR Rx: 128,4 Tx: 128,4"


def test_values_the_driver_refuses_are_refused(server: IiodServer) -> None:
    with radio(adi.Pluto, server.uri) as sdr:
        with pytest.raises(OSError) as info:
            sdr.rx_lo = 100  # below 325 MHz
        assert info.value.errno == errno.EINVAL
        with pytest.raises(OSError):
            sdr.gain_control_mode_chan0 = "turbo"
        with pytest.raises(OSError):
            sdr._set_iio_attr("voltage0", "rf_bandwidth", False, 2.5e6)  # kstrtoll refuses "2500000.0"
        assert sdr.rx_lo == 2_400_000_000
    assert server.get_attr("ad9361-phy", "gain_control_mode", channel="voltage0") == "slow_attack"


# ------------------------------------------------------------------ buffers


def test_cyclic_tx_echoes_into_rx_one_channel(server: IiodServer, echo: RecordingEcho) -> None:
    n_tx, n_rx = 400, 1000  # RX longer than TX: the loopback repeats the cyclic buffer
    x = tone(n_tx, 7)
    with radio(adi.Pluto, server.uri) as sdr:
        sdr.tx_cyclic_buffer = True
        sdr.rx_buffer_size = n_rx
        sdr.tx(x)
        rx = sdr.rx()
        assert isinstance(rx, np.ndarray) and rx.shape == (n_rx,)
        tx_seen, n, expected = echo.calls[-1]
        assert n == n_rx and tx_seen is not None and tx_seen.shape == (1, n_tx)
        np.testing.assert_allclose(tx_seen[0], as_sent(x), atol=1e-15)
        np.testing.assert_allclose(expected[0], 0.1 * as_sent(x)[np.arange(n_rx) % n_tx], atol=1e-15)
        assert_rx_matches(rx, expected[0])
        assert np.max(np.abs(rx)) > 100  # 0.05 FS of 2**11: not all zeros

        rx2 = sdr.rx()  # the cyclic buffer persists until it is closed
        np.testing.assert_array_equal(rx2, rx)
        sdr.tx_destroy_buffer()
        assert np.all(sdr.rx() == 0)
    assert server.rx_reads == 3
    assert len(server.tx_history) == 1
    assert server.tx_current is None
    assert any(re.fullmatch(r"OPEN iio:device2 400 00000003 CYCLIC", c) for c in server.commands)


def test_non_cyclic_tx_is_in_place_before_the_next_rx(server: IiodServer, echo: RecordingEcho) -> None:
    x = tone(512, 3, amplitude=2**15 - 1)
    with radio(adi.Pluto, server.uri) as sdr:
        sdr.tx_cyclic_buffer = False
        sdr.rx_buffer_size = 512
        sdr.tx(x)
        rx = sdr.rx()
        tx_seen, _, expected = echo.calls[-1]
        assert tx_seen is not None
        np.testing.assert_allclose(tx_seen[0], as_sent(x), atol=1e-15)
        assert_rx_matches(rx, expected[0])


def test_two_channels(echo: RecordingEcho) -> None:
    def cross(tx: NDArray[np.complex128] | None, n: int) -> NDArray[np.complex128]:
        assert tx is not None and tx.shape[0] == 2
        idx = np.arange(n) % tx.shape[1]
        return np.stack([0.2 * tx[1, idx], 0.3j * tx[0, idx]])

    echo.echo = cross
    x0, x1 = tone(256, 5), tone(256, 9, amplitude=2**13, phase=1.0)
    with IiodServer(echo, channels=2) as srv:
        assert (srv.num_rx_channels, srv.num_tx_channels) == (2, 2)
        # adi.Pluto knows one channel pair only; adi.ad9361 drives the same devices with two
        with radio(adi.ad9361, srv.uri) as sdr:
            sdr.rx_enabled_channels = [0, 1]
            sdr.tx_enabled_channels = [0, 1]
            sdr.tx_cyclic_buffer = True
            sdr.rx_buffer_size = 300
            sdr.tx([x0, x1])
            rx0, rx1 = sdr.rx()
            sdr.tx_hardwaregain_chan1 = -5
            assert sdr.tx_hardwaregain_chan1 == -5
        tx_seen, _, expected = echo.calls[-1]
        assert tx_seen is not None
        np.testing.assert_allclose(tx_seen, np.stack([as_sent(x0), as_sent(x1)]), atol=1e-15)
        assert_rx_matches(rx0, expected[0])
        assert_rx_matches(rx1, expected[1])
        assert any(c.startswith("OPEN iio:device2 256 0000000f CYCLIC") for c in srv.commands)
        assert any(c.startswith("OPEN iio:device3 300 0000000f") for c in srv.commands)
        assert srv.get_attr("ad9361-phy", "hardwaregain", channel="voltage1", output=True) == "-5.000000 dB"


def test_second_rx_channel_alone(echo: RecordingEcho) -> None:
    echo.echo = lambda tx, n: np.stack([np.full(n, 0.25), np.full(n, -0.5 + 0.125j)])
    with IiodServer(echo, channels=2) as srv, radio(adi.ad9361, srv.uri) as sdr:
        sdr.rx_enabled_channels = [1]
        sdr.rx_buffer_size = 64
        rx = sdr.rx()
        np.testing.assert_array_equal(rx, np.full(64, -1024 + 256j))
        assert any(c.startswith("OPEN iio:device3 64 0000000c") for c in srv.commands)


def test_failing_echo_fails_the_read_not_the_server(echo: RecordingEcho, server: IiodServer) -> None:
    def broken(tx: Any, n: int) -> Any:
        raise RuntimeError("echo bug")

    echo.echo = broken
    with radio(adi.Pluto, server.uri) as sdr:
        sdr.rx_buffer_size = 32
        with pytest.raises(OSError):
            sdr.rx()
    assert isinstance(server.errors[-1], RuntimeError)
    echo.echo = default_echo
    with radio(adi.Pluto, server.uri) as sdr:
        sdr.rx_buffer_size = 32
        assert np.all(sdr.rx() == 0)


# ----------------------------------------------------------------- protocol


def _exchange(sock: socket.socket, line: bytes, reply_lines: int = 1) -> list[bytes]:
    sock.sendall(line)
    buf = b""
    while buf.count(b"\n") < reply_lines:
        chunk = sock.recv(4096)
        assert chunk, "server closed the connection"
        buf += chunk
    return buf.split(b"\n")[:reply_lines]


def test_malformed_commands_get_error_codes(server: IiodServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        assert _exchange(sock, b"FROBNICATE now\r\n") == [b"-22"]
        assert _exchange(sock, b"\xff\xfe\x00garbage\r\n") == [b"-22"]
        assert _exchange(sock, b"READ\r\n") == [b"-22"]
        assert _exchange(sock, b"READ iio:device9 frequency\r\n") == [b"-19"]
        assert _exchange(sock, b"READ ad9361-phy INPUT voltage7 rssi\r\n") == [b"-6"]
        assert _exchange(sock, b"READ ad9361-phy no_such_attr\r\n") == [b"-2"]
        assert _exchange(sock, b"READ ad9361-phy dcxo_tune_coarse\r\n") == [b"-22"]
        assert _exchange(sock, b"OPEN iio:device3 16 zzzzzzzz\r\n") == [b"-22"]
        assert _exchange(sock, b"OPEN iio:device3 16 00000003 SOMETIMES\r\n") == [b"-22"]
        assert _exchange(sock, b"READBUF iio:device3 64\r\n") == [b"-9"]
        assert _exchange(sock, b"WRITEBUF iio:device2 -4\r\n") == [b"-22"]
        assert _exchange(sock, b"TIMEOUT soon\r\n") == [b"-22"]
        assert _exchange(sock, b"ZPRINT\r\n") == [b"-22"]
        # the connection still works: a valid WRITE, READ and buffer read
        assert _exchange(sock, b"WRITE iio:device0 DEBUG loopback 2\r\n1\x00") == [b"2"]
        assert _exchange(sock, b"READ iio:device0 DEBUG loopback\r\n", 2) == [b"1", b"1"]
        assert _exchange(sock, b"VERSION\r\n") == [b"0.24.fakeiio"]
        assert _exchange(sock, b"OPEN iio:device3 4 00000001\r\n") == [b"0"]
        sock.sendall(b"READBUF iio:device3 8\r\n")
        reply = b""
        while len(reply) < len(b"8\n00000001\n") + 8:
            reply += sock.recv(4096)
        assert reply == b"8\n00000001\n" + bytes(8)
        assert _exchange(sock, b"CLOSE iio:device3\r\n") == [b"0"]
        sock.sendall(b"\r\nEXIT\r\n")
        assert sock.recv(16) == b""  # EXIT closes the connection
    assert server.get_attr("ad9361-phy", "loopback", kind="debug") == "1"
    ctx = iio.Context(server.uri)  # the server still serves new clients
    assert {d.name for d in ctx.devices} == PLUTO_DEVICES
    del ctx
    gc.collect()


def test_read_all_buffer_attributes(server: IiodServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"READ cf-ad9361-lpc BUFFER\r\n")
        data = b""
        while b"\n" not in data:
            data += sock.recv(4096)
        length, _, rest = data.partition(b"\n")
        while len(rest) < int(length) + 1:
            rest += sock.recv(4096)
    values, blob = [], rest[: int(length)]
    while blob:
        size = int.from_bytes(blob[:4], "big", signed=True)
        values.append(blob[4 : 4 + size].decode())
        blob = blob[4 + size + (-size % 4) :]
    assert values == ["0", "8", "2048"]


def test_stop_closes_everything(echo: RecordingEcho) -> None:
    srv = IiodServer(echo).start()
    port = srv.port
    idle = socket.create_connection(("127.0.0.1", port), timeout=5)
    assert _exchange(idle, b"TIMEOUT 100\r\n") == [b"0"]  # accepted; now it stays silent
    srv.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("iiod-")]
    assert idle.recv(16) == b""
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
