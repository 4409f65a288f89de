"""The display: window with top view, replay and live host sources, controls off the GUI thread, Record."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sdr_isac import config, radio, sensing
from sdr_isac.display import sources
from sdr_isac.display.sources import (
    DisplayFrame,
    GridDetection,
    HostSource,
    LatestByKey,
    LatestValue,
    NodePlace,
    ReplaySource,
    frame_of,
)
from sdr_isac.display.window import RangeDopplerWindow, detection_geometry, snapshot
from sdr_isac.sensing.detection import Detection
from sdr_isac.stream import FusionHost, NodeAgent, wire
from sdr_isac.stream.demo import free_ports

RECORDING = Path(__file__).resolve().parents[2] / "offline_data" / "two_targets.sigmf-meta"
NODE_XY = (5.0, -3.0)
TARGET_XY = (50.0, 5.0)
LIVE = """
name = "display-test"
[frame]
numerology = 3
num_rb = 10
fft_size = 128
carrier_hz = 24e9
num_slots = 1
data = {{ modulation = "qpsk" }}
[radio]
node_id = "a"
[scene]
seed = 1
[[scene.nodes]]
id = "a"
position_m = [5.0, -3.0, 0.0]
yaw_deg = 10.0
[[scene.targets]]
id = "t"
position_m = [50.0, 5.0, 0.0]
velocity_mps = [-10.0, 0.0, 0.0]
snr_per_re_db = 5
[stream]
host_endpoint = "tcp://127.0.0.1:{port}"
publish_endpoint = "tcp://127.0.0.1:{publish}"
heartbeat_s = 0.2
frame_rate_hz = 20
"""


# ---- helpers ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def first_frame() -> DisplayFrame:
    with radio.open_radio(config.RadioConfig(kind="replay", uri=str(RECORDING))) as r:
        capture = r.next_capture()
        node = NodePlace.from_dict(r.recording.node)
    return frame_of(capture, node=node)


def rgb(window: Any) -> np.ndarray:
    """The window's pixels, shape (H, W, 3) uint8."""
    from PyQt6 import QtGui

    image = window.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    ptr = image.constBits()
    ptr.setsize(image.sizeInBytes())
    rows = np.frombuffer(ptr, np.uint8).reshape(image.height(), image.bytesPerLine())[:, : 3 * image.width()]
    return rows.reshape(image.height(), image.width(), 3).copy()


def png_rgb(path: Path) -> np.ndarray:
    from PyQt6 import QtGui

    image = QtGui.QImage(str(path)).convertToFormat(QtGui.QImage.Format.Format_RGB888)
    ptr = image.constBits()
    ptr.setsize(image.sizeInBytes())
    rows = np.frombuffer(ptr, np.uint8).reshape(image.height(), image.bytesPerLine())[:, : 3 * image.width()]
    return rows.reshape(image.height(), image.width(), 3).astype(int)


class Live:
    """A real FusionHost and a real NodeAgent (simulated radio, 20 frames/s) on loopback."""

    def __init__(self, tmp_path: Path, extra: str = ""):
        port, publish = free_ports(2)
        path = tmp_path / "live.toml"
        path.write_text(LIVE.format(port=port, publish=publish) + extra)
        self.cfg = config.load(path)
        self.endpoint = self.cfg.stream.publish_endpoint
        self.host = FusionHost(self.cfg).start()
        self.stop = threading.Event()
        self.node = threading.Thread(target=NodeAgent(self.cfg, "a").run, args=(self.stop,), daemon=True)
        self.node.start()

    def close(self) -> None:
        self.stop.set()
        self.node.join(10)
        self.host.stop()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    env = Live(tmp_path)
    try:
        yield env
    finally:
        env.close()


def rdmap_frames(node_id: str = "n1", seq: int = 0, **over: Any) -> list[Any]:
    power = np.full((40, 16), -3.0, np.float32)
    power[20, 8] = 30.0                                        # one strong cell: 20 m, 0 m/s
    kwargs: dict[str, Any] = dict(geometry="monostatic", num_channels=1, max_range_m=35.0,
                                  sensing={"pfa": 1e-6, "guard_cells": [4, 2], "training_cells": [8, 4]},
                                  node={"position_m": [1.0, 2.0, 0.0], "yaw_deg": 0.0},
                                  stats={"received": seq + 1, "lost": 2, "latency_mean_s": 0.004, "rate_hz": 10.0})
    kwargs.update(over)
    det = Detection(range_m=20.0, velocity_mps=0.0, doppler_hz=0.0, delay_s=1.3e-7, snr_db=20.0,
                    geometry="monostatic", angle_rad=None, range_var_m2=0.01, velocity_var_mps2=0.01,
                    angle_var_rad2=None, map_snr_db=30.0)
    return wire.encode_rdmap(node_id, seq, 0.1 * seq, power, np.arange(40.0), np.linspace(-8.0, 7.0, 16), [det],
                             **kwargs)


class FakeHost:
    """A bare PUB socket standing in for a host, to send exactly what a test wants."""

    def __init__(self) -> None:
        import zmq

        self.zmq = zmq
        (port,) = free_ports(1)
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.sock = zmq.Context.instance().socket(zmq.PUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(self.endpoint)

    def send(self, frames: list[Any]) -> None:
        self.sock.send_multipart(frames)

    def close(self) -> None:
        self.sock.close()


# ---- holders, geometry ---------------------------------------------------------------------------
def test_latest_holders_keep_only_the_newest() -> None:
    holder: LatestValue[int] = LatestValue()
    assert holder.take() is None
    for i in range(5):
        holder.put(i)
    assert holder.take() == 4 and holder.dropped == 4 and holder.take() is None
    by_key: LatestByKey[int] = LatestByKey(max_keys=2)
    for i in range(4):
        by_key.put("a", i)
        by_key.put("b", 10 + i)
    by_key.put("c", 99)                                        # a third key is ignored: bounded memory
    assert by_key.take_all() == [3, 13] and by_key.dropped == 6 and by_key.ignored == 1
    assert by_key.take_all() == []


def test_detection_geometry_follows_boresight_and_angle() -> None:
    det = GridDetection(range_m=10.0, velocity_mps=0.0, map_snr_db=20.0)
    frame = DisplayFrame("n", 0, 0.0, None, None, None, [det, GridDetection(8.0, 0.0, 20.0, "bistatic")],
                         node=NodePlace((1.0, 2.0, 0.0), 90.0))
    points, arcs = detection_geometry(frame)
    assert points.shape == (0, 2)                              # no angle: an arc; bistatic: not drawn
    finite = arcs[np.isfinite(arcs[:, 0])]
    assert np.allclose(np.hypot(finite[:, 0] - 1.0, finite[:, 1] - 2.0), 10.0)
    assert finite[:, 1].min() >= 2.0 - 1e-9                    # the half-plane in front of a node facing +y
    angled = Detection(range_m=10.0, velocity_mps=0.0, doppler_hz=0.0, delay_s=0.0, snr_db=0.0,
                       geometry="monostatic", angle_rad=math.radians(30.0), range_var_m2=0.0,
                       velocity_var_mps2=0.0, angle_var_rad2=0.0, map_snr_db=0.0)
    frame.detections = [angled]
    points, _ = detection_geometry(frame)
    # yaw 90 deg + 30 deg towards +y: bearing 120 deg from +x
    assert np.allclose(points, [[1.0 + 10 * math.cos(math.radians(120)), 2.0 + 10 * math.sin(math.radians(120))]])


# ---- window and replay ---------------------------------------------------------------------------
def test_window_builds_with_a_top_view(qtbot) -> None:
    window = RangeDopplerWindow()
    qtbot.addWidget(window)
    window.resize(1400, 700)
    window.show()
    assert window.pause_button.isCheckable() and window.record_button.isCheckable()
    assert not window.record_button.isEnabled()              # nothing to record without a source
    assert window.pfa_spin.value() == pytest.approx(-6.0)
    assert window.top.vb.state["aspectLocked"]                 # metres are metres both ways
    # the top view sits right of the map
    assert window.top_widget.geometry().left() > window.plot_widget.geometry().right()


def test_replay_source_updates_image_markers_and_status(qtbot) -> None:
    with ReplaySource(RECORDING) as source:
        window = RangeDopplerWindow(source=source, refresh_ms=10)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: window.current is not None and window.current.seq >= 1, timeout=20000)
        qtbot.wait(50)
        frame = window.current
    assert frame.power_db is not None and window.image.image is not None
    assert np.array_equal(window.image.image, frame.power_db)
    # cropped to the reportable range (half the unambiguous one, plus the CFAR window), velocity ascending
    assert frame.max_range_m == pytest.approx(0.5 * frame.result.map.range_m[-1], rel=1e-2)
    assert frame.range_m[-1] < 0.52 * frame.result.map.range_m[-1] and np.all(np.diff(frame.velocity_mps) > 0)
    assert len(frame.detections) >= 2
    assert len(window.detection_markers.points()) == len(frame.detections)
    assert len(window.truth_markers.points()) == 2
    assert window.node_combo.findText("bs0") >= 0
    text = window.status_bar.currentMessage()
    assert "node bs0" in text and "loss 0" in text and "latency n/a (sensing" in text and " fps" in text


def test_a_bistatic_map_is_labelled_range_sum_and_range_rate(qtbot) -> None:
    """A receive-only node's map has range sums c tau and bistatic range rates on its axes (it was labelled
    range and radial velocity, so a user read the 75 m line of sight as a target 75 m away); a monostatic
    frame after it is labelled range and radial velocity again."""
    with radio.open_radio(config.RadioConfig(kind="replay", uri=str(RECORDING.with_name("bistatic_pair.sigmf-meta")))
                          ) as r:
        capture = r.next_capture()
        node = NodePlace.from_dict(r.recording.node)
    window = RangeDopplerWindow()
    qtbot.addWidget(window)
    bistatic = sources.frame_of(capture, config.SensingConfig(geometry="bistatic"), node)
    window.show_frame(bistatic)
    assert window.plot.getAxis("left").labelText.startswith("range sum")
    assert window.plot.getAxis("bottom").labelText.startswith("bistatic range rate")
    with radio.open_radio(config.RadioConfig(kind="replay", uri=str(RECORDING))) as r:
        mono = sources.frame_of(r.next_capture(), config.SensingConfig(), None)
    window.show_frame(dataclasses.replace(mono, node_id=bistatic.node_id))      # the node the map shows
    assert window.plot.getAxis("left").labelText == "range (m)"
    assert window.plot.getAxis("bottom").labelText.startswith("radial velocity")


def test_a_capture_that_cannot_be_read_is_skipped_not_fatal(tmp_path: Path) -> None:
    """A NaN sample in one capture stopped the looping replay for good (and the frames sensed before it were
    never handed over): now that capture is skipped and counted, with a warning, and the replay goes on."""
    import shutil

    from sdr_isac.recording import open_recording

    for suffix in (".sigmf-meta", ".sigmf-data"):
        shutil.copy(RECORDING.with_suffix(suffix), tmp_path / f"r{suffix}")
    with open_recording(tmp_path / "r") as rec:
        assert rec.datatype.startswith("cf32") and rec.num_captures >= 3
        start = rec.capture_info(1)["sample_start"] * rec.num_channels
    data = np.memmap(tmp_path / "r.sigmf-data", dtype=np.complex64, mode="r+")
    data[start] = np.nan
    data.flush()
    del data
    import hashlib

    meta = json.loads((tmp_path / "r.sigmf-meta").read_text())        # a file written so (a NaN from the ADC path)
    meta["global"]["core:sha512"] = hashlib.sha512((tmp_path / "r.sigmf-data").read_bytes()).hexdigest()
    (tmp_path / "r.sigmf-meta").write_text(json.dumps(meta))
    with ReplaySource(tmp_path / "r.sigmf-meta") as source:
        seen: list[int] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (len(seen) < 4 or source.skipped < 1):
            frame = source.wait(2.0)
            if frame is not None:
                seen.append(frame.seq)
        assert source.skipped >= 1 and len(seen) >= 4 and source.error is None


def test_replay_source_keeps_only_the_newest() -> None:
    with ReplaySource(RECORDING) as source:
        first = source.wait(timeout_s=20.0)
        second = source.wait(timeout_s=20.0)
    assert first is not None and second is not None
    assert second.seq > first.seq


def test_snapshot_shows_targets_where_the_truth_says(tmp_path: Path, first_frame: DisplayFrame, qapp) -> None:
    out = tmp_path / "rd.png"
    pixels = snapshot(first_frame, out, size=(1400, 700))["map"]
    assert len(pixels) == 2
    rgb_ = png_rgb(out)
    assert rgb_.shape[:2] == (700, 1400)
    brightness = rgb_.sum(axis=2).astype(float)
    xs, ys = [x for x, _ in pixels], [y for _, y in pixels]
    background = np.median(brightness[max(min(ys) - 150, 0): max(ys) + 150, max(min(xs) - 150, 0): max(xs) + 150])
    for x, y in pixels:
        assert 0 <= x < rgb_.shape[1] and 0 <= y < rgb_.shape[0]
        # the centre of each truth circle is image, not marker: the detection square (16 px) and circle (24 px)
        # leave a few pixels clear around it
        centre = brightness[y - 2: y + 3, x - 2: x + 3]
        assert np.median(centre) > 1.5 * background, (x, y, np.median(centre), background)
    x0, y0 = pixels[0]
    assert brightness[y0 + 80, x0] < 1.5 * background         # a point with no target is not bright


def test_top_view_places_node_targets_and_range_arcs(tmp_path: Path, first_frame: DisplayFrame, qapp) -> None:
    # the recording's isac:node puts bs0 at (0, 0, 5) facing +x; truth:targets a car at (45, 8), a cyclist at
    # (70, -15)
    assert first_frame.node == NodePlace((0.0, 0.0, 5.0), 0.0)
    out = tmp_path / "top.png"
    pixels = snapshot(first_frame, out, size=(1400, 700))
    image = png_rgb(out)
    (nx, ny), = pixels["nodes"]
    r, g, b = image[ny - 1: ny + 2, nx - 1: nx + 2].reshape(-1, 3).mean(axis=0)
    assert r > 180 and g > 160 and b < 90, (r, g, b)              # the yellow node triangle
    assert len(pixels["top"]) == 2
    for x, y in pixels["top"]:
        around = image[y - 14: y + 15, x - 14: x + 15].reshape(-1, 3)
        cyan = (around[:, 1] > 160) & (around[:, 2] > 160) & (around[:, 0] < 90)
        assert cyan.sum() > 40, (x, y, cyan.sum())                   # a cyan truth ring about the target
    # the targets lie where the geometry says: the car is 45 m right of and 8 m above the node
    (cx, cy), (kx, ky) = pixels["top"]
    assert cx > nx and cy < ny and kx > cx and ky > ny             # pixel y grows downwards
    assert (kx - nx) / (cx - nx) == pytest.approx(70 / 45, rel=0.03)
    assert (ny - cy) / (cx - nx) == pytest.approx(8 / 45, rel=0.05)   # aspect locked: same scale on x and y
    # each detection is a range arc about the node (one channel: no angle), passing by its target
    _, arcs = detection_geometry(first_frame)
    finite = arcs[np.isfinite(arcs[:, 0])]
    ranges = sorted({round(float(d.range_m), 3) for d in first_frame.detections[:2]})
    for target in ((45.0, 8.0), (70.0, -15.0)):
        gap = np.min(np.hypot(finite[:, 0] - target[0], finite[:, 1] - target[1]))
        assert gap < 1.5, (target, gap, ranges)                # slant range vs horizontal distance: < 1.5 m
    # a point between node and car, off every arc, stays dark
    mx, my = (nx + cx) // 2, (ny + cy) // 2
    assert image[my, mx].sum() < 200


def test_tracks_and_fused_estimates_are_drawn(qtbot) -> None:
    window = RangeDopplerWindow()
    qtbot.addWidget(window)
    window.set_tracks({"7": [[0.0, 0.0], [10.0, 5.0], [20.0, 15.0]], "bad": [1.0, 2.0]})
    assert list(window.tracks) == ["7"] and len(window.track_curves) == 1
    x, y = window.track_curves[0].getData()
    assert x.tolist() == [0.0, 10.0, 20.0] and y.tolist() == [0.0, 5.0, 15.0]
    window.set_tracks({})
    assert window.track_curves == []
    window.set_estimates([[3.0, 4.0, 1.0]])
    assert [(p.pos().x(), p.pos().y()) for p in window.fused_markers.points()] == [(3.0, 4.0)]


def test_controls_rerun_detection_on_the_worker_not_the_gui_thread(qtbot, monkeypatch) -> None:
    threads: list[str] = []
    process = sensing.process

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return process(*args, **kwargs)

    monkeypatch.setattr(sensing, "process", spy)
    with ReplaySource(RECORDING, interval_s=600.0) as source:   # one capture, then only re-runs
        window = RangeDopplerWindow(source=source, refresh_ms=10)
        qtbot.addWidget(window)
        qtbot.waitUntil(lambda: window.current is not None, timeout=20000)
        seq = window.current.seq
        window.pfa_spin.setValue(-3.0)                           # false alarms besides the two targets
        assert not window.current.reprocessed                    # the setter returned without sensing
        qtbot.waitUntil(lambda: window.current.reprocessed and window.current.sensing_config.pfa == 1e-3,
                        timeout=20000)
        before = len(window.current.detections)
        assert len(window.detection_markers.points()) == before
        window.pfa_spin.setValue(-15.0)
        qtbot.waitUntil(lambda: window.current.sensing_config.pfa == pytest.approx(1e-15), timeout=20000)
        after = len(window.current.detections)
        assert window.current.seq == seq                         # the same capture, detected again
    # the two targets stand far above 1e-15 (the weaker, -19.6 dB per RE, falls below the threshold of 1e-30 on
    # the windowed, oversampled map once the CFAR counts its correlated training cells)
    assert after < before and after == 2
    assert len(window.detection_markers.points()) == after
    assert len(threads) >= 3 and threading.main_thread().name not in threads, threads


def test_guard_and_training_controls_change_the_config(qtbot, first_frame: DisplayFrame) -> None:
    window = RangeDopplerWindow()
    qtbot.addWidget(window)
    window.show_frame(first_frame)
    window.guard_spins[0].setValue(3)
    window.training_spins[1].setValue(6)
    assert window.sensing_config.guard_cells == (3, 2)
    assert window.sensing_config.training_cells == (8, 6)


def test_pause_stops_updates(qtbot) -> None:
    with ReplaySource(RECORDING) as source:
        window = RangeDopplerWindow(source=source, refresh_ms=10)
        qtbot.addWidget(window)
        qtbot.waitUntil(lambda: window.current is not None, timeout=20000)
        window.pause_button.setChecked(True)
        qtbot.wait(100)
        seq = window.current.seq
        qtbot.wait(300)
        assert window.current.seq == seq
        window.pause_button.setChecked(False)
        qtbot.waitUntil(lambda: window.current.seq > seq, timeout=20000)


def test_record_writes_the_replayed_captures_to_sigmf(qtbot, tmp_path: Path, monkeypatch) -> None:
    """Record, then stop: the files are closed (synced, renamed) off the GUI thread, which a large recording
    froze for as long as that took; the window reports them when they are there."""
    from sdr_isac.recording import Recording, RecordingWriter

    closed_on: list[str] = []
    close = RecordingWriter.close

    def spying_close(self):  # type: ignore[no-untyped-def]
        closed_on.append(threading.current_thread().name)
        return close(self)

    monkeypatch.setattr(RecordingWriter, "close", spying_close)
    with ReplaySource(RECORDING, interval_s=0.05) as source:
        window = RangeDopplerWindow(source=source, refresh_ms=10, record_dir=tmp_path / "rec")
        qtbot.addWidget(window)
        qtbot.waitUntil(lambda: window.current is not None, timeout=20000)
        window.record_button.setChecked(True)
        start = window.current.seq
        qtbot.waitUntil(lambda: window.current.seq >= start + 3, timeout=20000)
        window.record_button.setChecked(False)
        qtbot.waitUntil(lambda: bool(window.recorded), timeout=20000)
    assert closed_on and threading.main_thread().name not in closed_on
    (meta,) = window.recorded
    assert meta.parent == tmp_path / "rec" and meta.name.startswith("bs0_") and meta.suffix == ".sigmf-meta"
    assert not list((tmp_path / "rec").glob(".*"))              # no temporary file left
    with Recording.open(meta) as rec:
        assert rec.num_captures >= 2
        assert rec.node["position_m"] == [0.0, 0.0, 5.0]
        assert {p["target"] for p in rec.truth(0)["paths"]} == {"car", "cyclist"}
        again = frame_of(rec.capture(0))
    assert sorted(round(d.range_m) for d in again.detections[:2]) == [46, 72]


# ---- live: a real host and node --------------------------------------------------------------------
def test_live_host_updates_map_markers_top_view_and_status(qtbot, live: Live, monkeypatch) -> None:
    threads: list[str] = []
    rethreshold = sources.rethreshold

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return rethreshold(*args, **kwargs)

    monkeypatch.setattr(sources, "rethreshold", spy)
    with HostSource(live.endpoint) as source:
        window = RangeDopplerWindow(source=source, refresh_ms=20)
        qtbot.addWidget(window)
        window.resize(1400, 700)
        window.show()
        qtbot.waitUntil(lambda: window.current is not None and window.current.power_db is not None
                        and window.current.seq >= 2, timeout=20000)
        frame = window.current
        assert np.array_equal(window.image.image, frame.power_db)
        assert frame.node == NodePlace((5.0, -3.0, 0.0), 10.0)     # from the host's [scene]
        truth_range = math.hypot(TARGET_XY[0] - NODE_XY[0], TARGET_XY[1] - NODE_XY[1])
        assert any(abs(d.range_m - truth_range) < 0.5 for d in frame.detections), frame.detections
        assert len(window.detection_markers.points()) == len(frame.detections)
        assert [(p.pos().x(), p.pos().y()) for p in window.node_markers.points()] == [NODE_XY]
        (truth_dot,) = window.top_truth_markers.points()              # the target moves at -10 m/s along x
        assert truth_dot.pos().x() == pytest.approx(TARGET_XY[0], abs=0.1) and truth_dot.pos().y() == TARGET_XY[1]
        qtbot.waitUntil(lambda: "a 2" in window.status_bar.currentMessage()
                        or "a 1" in window.status_bar.currentMessage(), timeout=10000)
        text = window.status_bar.currentMessage()
        link = source.link_stats()["a"]
        assert link.received >= 2 and link.lost == 0 and link.latency_s is not None and link.frame_rate_hz
        assert "loss 0 (0.0 %)" in text and "ms to display" in text and "latency " in text
        assert window.pfa_spin.isEnabled()                        # the host publishes maps: CFAR runs here
        # a looser CFAR: the worker thresholds the received map again (grid detections), never the GUI thread
        window.pfa_spin.setValue(-2.0)
        qtbot.waitUntil(lambda: window.current.sensing_config is not None
                        and window.current.sensing_config.pfa == pytest.approx(1e-2), timeout=10000)
        loose = window.current
        assert all(isinstance(d, GridDetection) for d in loose.detections)
        assert len(loose.detections) > len(frame.detections)
        step_m = float(loose.range_m[1] - loose.range_m[0])              # grid detections: within half a bin
        assert any(abs(d.range_m - truth_range) <= 0.5 * step_m + 0.1 for d in loose.detections), step_m
        assert source.rejected == 0 and source.error is None
    assert threads and threading.main_thread().name not in threads, threads


def test_malformed_messages_on_the_display_side_are_counted(qtbot) -> None:
    fake = FakeHost()
    try:
        with HostSource(fake.endpoint) as source:
            window = RangeDopplerWindow(source=source, refresh_ms=10)
            qtbot.addWidget(window)
            bad_axes = [bytes(f) for f in rdmap_frames("n1", 0)]
            bad_axes[4] = np.linspace(7.0, -8.0, 16).tobytes()             # velocity descending
            garbage = [[b"rdmap/n1", b"{not json"], [b"rdmap/n1"], [b"detections/x", b"\x80\x81", b"pickle"],
                       bad_axes]
            seq = 0
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and (source.rejected < 4 or window.current is None):
                for frames in garbage:                                     # PUB drops until SUB joins: repeat
                    fake.send(frames)
                fake.send(rdmap_frames("n1", seq))
                seq += 1
                qtbot.wait(50)
            assert window.current is not None and window.current.node_id == "n1"
            assert source.rejected >= 4 and source.error is None
            assert all(t.is_alive() for t in source._threads)
            qtbot.waitUntil(lambda: "malformed messages rejected" in window.status_bar.currentMessage(),
                            timeout=5000)
            link = source.link_stats()["n1"]
            assert link.lost == 2 and link.latency_s == pytest.approx(0.004)
            assert "loss 2" in window.status_bar.currentMessage() and "latency 4.0 ms" in \
                window.status_bar.currentMessage()
            # a CFAR window larger than the map: said in the status bar, the source keeps running
            window.training_spins[0].setValue(200)
            qtbot.waitUntil(lambda: "allowed a window no larger than the map" in window.status_bar.currentMessage(),
                            timeout=5000)
            window.training_spins[0].setValue(8)
            window.pfa_spin.setValue(-3.0)
            qtbot.waitUntil(lambda: window.current.sensing_config.pfa == pytest.approx(1e-3), timeout=5000)
            assert [(d.range_m, d.velocity_mps) for d in window.current.detections] == [(20.0, 0.0)]
            assert source.error is None and source.warning == ""
    finally:
        fake.close()


def test_a_host_without_maps_disables_the_cfar_controls(qtbot) -> None:
    fake = FakeHost()
    det = Detection(range_m=12.0, velocity_mps=1.0, doppler_hz=0.0, delay_s=0.0, snr_db=10.0, geometry="monostatic",
                    angle_rad=None, range_var_m2=0.01, velocity_var_mps2=0.01, angle_var_rad2=None, map_snr_db=20.0)
    try:
        with HostSource(fake.endpoint) as source:
            window = RangeDopplerWindow(source=source, refresh_ms=10)
            qtbot.addWidget(window)
            deadline = time.monotonic() + 15
            seq = 0
            while time.monotonic() < deadline and window.current is None:
                fake.send(wire.encode_detections("d1", seq, 0.0, [det], stats={"received": seq + 1, "lost": 0},
                                                 node={"position_m": [0.0, 0.0], "yaw_deg": 0.0}))
                seq += 1
                qtbot.wait(50)
            qtbot.waitUntil(lambda: not window.pfa_spin.isEnabled(), timeout=5000)
            assert "publishes no range-Doppler maps" in window.pfa_spin.toolTip()
            assert window.current.power_db is None and window.image.image is None
            assert len(window.detection_markers.points()) == 1
    finally:
        fake.close()


def test_a_live_display_shows_the_hosts_detections_until_a_control_moves() -> None:
    """Without --pfa the live display re-thresholded every map with its own defaults and showed other detections
    than the host fused; it now shows the host's, with the host's settings, until the user picks others."""
    fake = FakeHost()
    host_cfar = {"pfa": 1e-2, "guard_cells": [1, 1], "training_cells": [2, 2]}
    try:
        with HostSource(fake.endpoint, config.SensingConfig()) as source:
            source.follow_host = True

            def next_frame(seq: int) -> DisplayFrame:
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    fake.send(rdmap_frames("n1", seq, sensing=host_cfar))
                    frame = source.wait(0.1)
                    if frame is not None:
                        return frame
                raise AssertionError("no frame")

            frame = next_frame(0)
            assert [type(d) for d in frame.detections] == [Detection] and frame.detections[0].range_m == 20.0
            assert frame.sensing_config.pfa == 1e-2 and frame.sensing_config.guard_cells == (1, 1)
            source.set_sensing_config(config.SensingConfig(pfa=1e-3))
            frame = next_frame(1)
            while frame.reprocessed:
                frame = next_frame(2)
            assert frame.detections and all(isinstance(d, GridDetection) for d in frame.detections)
            assert frame.sensing_config.pfa == 1e-3
    finally:
        fake.close()


def test_record_writes_received_messages_as_json_lines(qtbot, tmp_path: Path) -> None:
    fake = FakeHost()
    try:
        with HostSource(fake.endpoint) as source:
            window = RangeDopplerWindow(source=source, refresh_ms=10, record_dir=tmp_path / "live")
            qtbot.addWidget(window)
            seq = 0
            while window.current is None and seq < 300:
                fake.send(rdmap_frames("n1", seq))
                seq += 1
                qtbot.wait(50)
            window.record_button.setChecked(True)
            for _ in range(3):
                seq += 1
                fake.send(rdmap_frames("n1", seq))
                qtbot.wait(50)
            qtbot.waitUntil(lambda: source.recorder is not None and source.recorder.num_written >= 3, timeout=5000)
            window.record_button.setChecked(False)
            qtbot.waitUntil(lambda: bool(window.recorded), timeout=5000)
    finally:
        fake.close()
    (path,) = window.recorded
    assert path.suffix == ".jsonl" and not list(path.parent.glob(".*"))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) >= 3 and all(line["kind"] == "rdmap" and line["node_id"] == "n1" for line in lines)
    first = lines[0]
    power = np.array(first["map"]["power_db"])
    assert power.shape == (40, 16) and power[20, 8] == 30.0 and len(first["map"]["range_m"]) == 40
    assert first["detections"][0]["range_m"] == 20.0 and first["stats"]["lost"] == 2


# ---- the program --------------------------------------------------------------------------------
def test_display_subprocess_exits_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "app.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-m", "sdr_isac.display.app", "--replay", str(RECORDING),
                           "--snapshot", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 10000
    assert not list(tmp_path.glob(".*"))          # no temporary file left behind


def test_host_snapshot_subprocess(tmp_path: Path, live: Live) -> None:
    out = tmp_path / "live.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-m", "sdr_isac.display.app", "--host", live.endpoint, "--snapshot",
                           str(out), "--timeout", "60"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "node a" in proc.stdout and out.stat().st_size > 10000


def test_host_snapshot_times_out_with_a_clear_message(tmp_path: Path, capsys) -> None:
    from sdr_isac.display.app import main

    (port,) = free_ports(1)
    assert main(["--host", f"tcp://127.0.0.1:{port}", "--snapshot", str(tmp_path / "x.png"), "--timeout", "0.5"]) == 2
    err = capsys.readouterr().err
    assert f"no frame from the host at tcp://127.0.0.1:{port} within --timeout 0.5 s" in err
    assert main(["--host", "127.0.0.1:5556", "--snapshot", str(tmp_path / "x.png")]) == 2
    assert "--host '127.0.0.1:5556': allowed a ZeroMQ endpoint" in capsys.readouterr().err


def test_replay_and_host_are_one_required_choice(capsys) -> None:
    from sdr_isac.display.app import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args([])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--replay", str(RECORDING), "--host", "tcp://127.0.0.1:1"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_bad_size_is_rejected(tmp_path: Path, capsys) -> None:
    from sdr_isac.display.app import main

    assert main(["--replay", str(RECORDING), "--snapshot", str(tmp_path / "x.png"), "--size", "big"]) == 2
    assert "--size 'big'" in capsys.readouterr().err


def test_importing_the_app_does_not_import_qt_or_zmq() -> None:
    code = ("import sys, sdr_isac.display.app; "
            "sys.exit(int(any(m.startswith(('PyQt6', 'pyqtgraph', 'zmq')) for m in sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


# ---- replay with the host's settings (issue 14, item 5) -----------------------------------------------------
DEMO_CONFIG = Path(sources.__file__).resolve().parents[1] / "demo.toml"


@pytest.fixture(scope="module")
def demo_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two frames of the demo's bs0 (a lamp post at 33 m, standing still, beside two moving targets)."""
    out = tmp_path_factory.mktemp("demo_rec") / "bs0"
    done = subprocess.run([sys.executable, "-m", "sdr_isac", "record", "--config", str(DEMO_CONFIG), "--frames", "2",
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out.with_suffix(".sigmf-meta")


def _process_json(recording: Path, *extra: str) -> list[list[tuple[float, float]]]:
    done = subprocess.run([sys.executable, "-m", "sdr_isac", "process", "--rx", str(recording), "--json", *extra],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [[(d["range_m"], d["velocity_mps"]) for d in c["detections"]] for c in json.loads(done.stdout)["captures"]]


def _replayed(recording: Path, *extra: str) -> tuple[DisplayFrame, ReplaySource]:
    from sdr_isac.display.app import build_parser, sensing_settings

    args = build_parser().parse_args(["--replay", str(recording), *extra])
    places = sources.scene_places(config.load(args.config)) if args.config is not None else None
    with ReplaySource(recording, sensing_settings(args), places=places) as source:
        frame = source.wait(timeout_s=60.0)
    assert frame is not None and frame.seq == 0, source.error
    return frame, source


def test_replay_senses_as_process_with_the_same_config(demo_recording: Path) -> None:
    # --config gives the [sensing] of the file, exactly as sdr-isac process --config: same detections, to the bit
    frame, source = _replayed(demo_recording, "--config", str(DEMO_CONFIG))
    expected = _process_json(demo_recording, "--config", str(DEMO_CONFIG))[0]
    assert [(d.range_m, d.velocity_mps) for d in frame.detections] == expected
    assert source.sensing_config == config.load(DEMO_CONFIG).sensing
    # the demo's zero-Doppler notch removes the lamp post: only the two moving targets are left
    assert len(expected) == 2 and all(abs(v) > 1.0 for _, v in expected), expected
    assert frame.node == sources.scene_places(config.load(DEMO_CONFIG))["bs0"]


def test_replay_without_config_senses_as_process_without_config(demo_recording: Path) -> None:
    # no --config: the defaults on both sides; the defaults keep the static lamp post, so the settings matter
    frame, _ = _replayed(demo_recording)
    expected = _process_json(demo_recording)[0]
    assert [(d.range_m, d.velocity_mps) for d in frame.detections] == expected
    assert any(abs(v) < 0.5 and 30.0 < r < 36.0 for r, v in expected), expected   # the lamp post at 33 m, 0 m/s


def test_pfa_option_overrides_the_config(demo_recording: Path) -> None:
    from sdr_isac.display.app import build_parser, sensing_settings

    args = build_parser().parse_args(["--replay", str(demo_recording), "--config", str(DEMO_CONFIG), "--pfa", "1e-3"])
    cfg = sensing_settings(args)
    assert cfg.pfa == 1e-3 and cfg.remove_static == config.load(DEMO_CONFIG).sensing.remove_static


def test_top_view_fits_scene_nodes_detections_and_estimates(tmp_path: Path, demo_recording: Path, qapp) -> None:
    frame, _ = _replayed(demo_recording, "--config", str(DEMO_CONFIG))
    places = sources.scene_places(config.load(DEMO_CONFIG))
    truth = {t["id"]: t["position_m"][:2] for t in frame.truth_targets}
    estimates = [[x + 0.5, y - 0.5] for x, y in truth.values()]
    out = tmp_path / "top.png"
    pixels = snapshot(frame, out, size=(1400, 700), nodes=places, estimates_m=estimates)
    image = png_rgb(out)
    width = image.shape[1]
    assert len(pixels["nodes"]) == len(places) == 2
    assert len(pixels["estimates"]) == 2 and len(pixels["top"]) == 2
    # everything lies inside the top view (the right part of the window, left of the controls)
    for x, y in pixels["nodes"] + pixels["estimates"] + pixels["top"] + pixels["detections"]:
        assert width * 0.5 < x < width * 0.85 and 0 < y < image.shape[0] - 30, (x, y)
    for x, y in pixels["nodes"]:
        r, g, b = image[y - 1: y + 2, x - 1: x + 2].reshape(-1, 3).mean(axis=0)
        assert r > 180 and g > 160 and b < 90, (r, g, b)              # yellow node triangles
    for x, y in pixels["estimates"]:
        r, g, b = image[y - 1: y + 2, x - 1: x + 2].reshape(-1, 3).mean(axis=0)
        assert r > 180 and b > 180 and g < 90, (r, g, b)              # magenta fused diamonds, on top


def test_fused_estimates_of_the_frame_set(tmp_path: Path) -> None:
    from sdr_isac.display.app import fused_estimates

    path = tmp_path / "fused.json"
    path.write_text(json.dumps({"per_set": [
        {"nodes": {"bs0": 0, "bs1": 0}, "targets": [], "estimates": [[1.0, 2.0, 1.0]]},
        {"nodes": {"bs0": 1, "bs1": 1}, "targets": [{"fused": True, "position_m": [3.0, 4.0, 1.0]}]}]}))
    assert fused_estimates(path, "bs0", 0) == [[1.0, 2.0, 1.0]]
    assert fused_estimates(path, "bs0", 1) == [[3.0, 4.0, 1.0]]       # an older file: the matched rows
    assert fused_estimates(path, "bs0", 7) == [[3.0, 4.0, 1.0]]       # no set holds it: the newest
    path.write_text("[]")
    with pytest.raises(config.ConfigError, match="--estimates .*fused.json: not a host's fused.json"):
        fused_estimates(path, "bs0", 0)


def test_an_interactive_replay_shows_the_estimates_of_each_frames_set(tmp_path: Path) -> None:
    """The interactive display drew the newest set's estimates with every replayed frame; the source now hands
    over, with each frame, those of the set that holds it (as --snapshot draws them)."""
    from sdr_isac.display.app import fused_estimates_of

    path = tmp_path / "fused.json"
    path.write_text(json.dumps({"per_set": [{"nodes": {"bs0": k}, "targets": [], "estimates": [[float(k), 2.0, 1.0]]}
                                            for k in range(3)]}))
    with ReplaySource(RECORDING, interval_s=0.2) as source:      # frames far apart: a frame and its estimates
        source.estimates_for = fused_estimates_of(path)
        pairs = []
        deadline = time.monotonic() + 30
        while len(pairs) < 3 and time.monotonic() < deadline:
            frame = source.wait(2.0)
            estimates = source.take_estimates()
            if frame is not None and estimates is not None and frame.seq < 3:
                pairs.append((frame.seq, estimates[0, 0]))
    assert pairs and all(seq == x for seq, x in pairs)


def test_estimates_file_is_for_replay_only(tmp_path: Path, capsys) -> None:
    from sdr_isac.display.app import main

    status = main(["--host", "tcp://127.0.0.1:1", "--estimates", str(tmp_path / "fused.json"), "--snapshot",
                   str(tmp_path / "x.png")])
    assert status == 2
    assert "allowed only with --replay" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_top_view_follows_new_estimates_until_moved_by_hand(qtbot, first_frame: DisplayFrame) -> None:
    window = RangeDopplerWindow()
    qtbot.addWidget(window)
    window.resize(1400, 700)
    window.show()
    window.show_frame(first_frame)
    (x0, x1), (y0, y1) = window.top.vb.viewRange()
    assert x0 <= 0.0 <= x1 and y0 <= 0.0 <= y1                      # the node at the origin is in view
    window.set_estimates([[400.0, -300.0, 1.0]])                     # far outside: the view grows to hold it
    (x0, x1), (y0, y1) = window.top.vb.viewRange()
    assert x0 <= 0.0 and x1 >= 400.0 and y0 <= -300.0 and y1 >= 0.0
    window.top.vb.sigRangeChangedManually.emit([True, True])         # the user zooms: the view stays put
    window.top.setXRange(-5.0, 5.0, padding=0)
    window.set_estimates([[-900.0, 900.0]])
    assert window.top.vb.viewRange()[0][1] < 400.0
    window.fit_top_view()                                            # "fit view" follows again
    assert window.top.vb.viewRange()[0][0] <= -900.0
