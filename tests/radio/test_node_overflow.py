"""A USRP node (fake UHD) whose radio drops a frame with an overflow: the frame is never sent, the host
hears of it in the heartbeat's ``frames_dropped_overflow``.  A capture the radio gives up on (several gapped
frames in a row) is counted in ``rx_failures`` and the node goes on, up to ``stream.rx_failures_in_a_row``.
Real ZeroMQ sockets on loopback."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from sdr_isac import config
from sdr_isac.errors import RadioOverflowError
from sdr_isac.radio import usrp as usrp_module
from tests.radio.fake_uhd import delayed_echo, make_fake_uhd

zmq = pytest.importorskip("zmq")
wire = pytest.importorskip("sdr_isac.stream.wire")
node_module = pytest.importorskip("sdr_isac.stream.node")

TEXT = """
[frame]
numerology = 0
num_rb = 6
fft_size = 128
carrier_hz = 2.45e9
[radio]
kind = "usrp"
node_id = "b210"
uri = "type=b200"
rx_gain_db = 40
tx_gain_db = 50
timeout_s = 1.0
[stream]
host_endpoint = "{endpoint}"
heartbeat_s = 0.05
frames = 4
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_node(cfg: config.Config, endpoint: str) -> tuple[list, dict, BaseException | None]:
    """Run a node agent on a thread against a PULL socket until its final heartbeat: messages, result, error."""
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.bind(endpoint)
    result: dict = {}
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.update(node_module.NodeAgent(cfg, context=context).run())
        except BaseException as err:                       # noqa: BLE001  handed to the test
            failure.append(err)

    try:
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        messages = []
        while True:
            assert pull.poll(10_000), "the node went silent"
            msg = wire.decode(pull.recv_multipart())
            messages.append(msg)
            if msg.kind == "heartbeat" and msg.header["stats"]["final"]:
                break
        thread.join(10)
        assert not thread.is_alive()
    finally:
        pull.close(linger=0)
        context.term()
    return messages, result, failure[0] if failure else None


def test_node_never_sends_the_dropped_frame_and_reports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    cfg = config.loads(TEXT.format(endpoint=endpoint))
    frame_samples = 1920                                    # 1 ms at 1.92 Msps (15 kHz, 128-point FFT)
    # an overflow part way through the second capture's stream (captures are one frame each)
    uhd = make_fake_uhd(delayed_echo(3), max_num_samps=500, overflow_at_samples=frame_samples + 700)
    monkeypatch.setattr(usrp_module, "_import_uhd", lambda: uhd)
    messages, result, failure = _run_node(cfg, endpoint)
    assert failure is None
    captures = [m for m in messages if m.kind == "capture"]
    final = messages[-1].header["stats"]
    assert len(captures) == 4 and final["frames_dropped_overflow"] == 1 == result["frames_dropped_overflow"]
    assert final["rx_failures"] == 0
    assert uhd.fake.overflows_fired and len(uhd.fake.device.bursts) == 5     # 4 sent + 1 dropped, each timed
    t0s = [m.header["t0_s"] for m in captures]
    assert all(np.diff(t0s) > 0)                                # t0 monotonic; the dropped frame left a gap


def test_a_capture_the_radio_gives_up_on_is_counted_and_the_node_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    cfg = config.loads(TEXT.format(endpoint=endpoint))
    # the second capture's stream overflows every 100 samples for a while: 4 gapped frames in a row, the radio
    # gives up on that capture (RadioOverflowError); the next one is clean
    uhd = make_fake_uhd(delayed_echo(3), max_num_samps=500, overflow_at_samples=range(2020, 4020, 100))
    monkeypatch.setattr(usrp_module, "_import_uhd", lambda: uhd)
    messages, result, failure = _run_node(cfg, endpoint)
    assert failure is None
    captures = [m for m in messages if m.kind == "capture"]
    final = messages[-1].header["stats"]
    assert len(captures) == 4 and [m.seq for m in captures] == [0, 1, 2, 3]
    assert final["rx_failures"] == 1 == result["rx_failures"]
    assert final["frames_dropped_overflow"] == 4 == len(uhd.fake.overflows_fired)
    assert all(np.diff([m.header["t0_s"] for m in captures]) > 0)


def test_the_node_stops_after_rx_failures_in_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    cfg = config.loads(TEXT.format(endpoint=endpoint).replace("frames = 4", "frames = 4\nrx_failures_in_a_row = 2"))
    uhd = make_fake_uhd(delayed_echo(3), max_num_samps=500, overflow_at_samples=range(2020, 10**6, 100))
    monkeypatch.setattr(usrp_module, "_import_uhd", lambda: uhd)
    messages, result, failure = _run_node(cfg, endpoint)
    assert isinstance(failure, RadioOverflowError) and "in a row" in str(failure) and not result
    captures = [m for m in messages if m.kind == "capture"]
    final = messages[-1].header["stats"]
    assert len(captures) == 1 and final["final"] and final["rx_failures"] == 2
    assert final["frames_dropped_overflow"] == 8                # 4 gapped frames per capture given up on
