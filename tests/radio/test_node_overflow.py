"""A USRP node (fake UHD) whose radio drops a frame with an overflow: the frame is never sent, the host
hears of it in the heartbeat's ``frames_dropped_overflow``.  Real ZeroMQ sockets on loopback."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from sdr_isac import config
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


def test_node_never_sends_the_dropped_frame_and_reports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    cfg = config.loads(TEXT.format(endpoint=endpoint))
    frame_samples = 1920                                    # 1 ms at 1.92 Msps (15 kHz, 128-point FFT)
    # an overflow part way through the second capture's stream (captures are one frame each)
    uhd = make_fake_uhd(delayed_echo(3), max_num_samps=500, overflow_at_samples=frame_samples + 700)
    monkeypatch.setattr(usrp_module, "_import_uhd", lambda: uhd)
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.bind(endpoint)
    try:
        agent = node_module.NodeAgent(cfg, context=context)
        result: dict = {}
        thread = threading.Thread(target=lambda: result.update(agent.run()), daemon=True)
        thread.start()
        messages = []
        while True:
            assert pull.poll(10_000), "the node went silent"
            msg = wire.decode(pull.recv_multipart())
            messages.append(msg)
            if msg.kind == "heartbeat" and msg.header["stats"]["final"]:
                break
        thread.join(10)
    finally:
        pull.close(linger=0)
        context.term()
    captures = [m for m in messages if m.kind == "capture"]
    final = messages[-1].header["stats"]
    assert len(captures) == 4 and final["frames_dropped_overflow"] == 1 == result["frames_dropped_overflow"]
    assert uhd.fake.overflows_fired and len(uhd.fake.device.bursts) == 5     # 4 sent + 1 dropped, each timed
    t0s = [m.header["t0_s"] for m in captures]
    assert all(np.diff(t0s) > 0)                                # t0 monotonic; the dropped frame left a gap
