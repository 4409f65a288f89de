"""The range-Doppler window: built, fed from a replay, drawn where the truth says, and its controls."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sdr_isac import config, radio
from sdr_isac.display.sources import DisplayFrame, LatestValue, ReplaySource, frame_of
from sdr_isac.display.window import RangeDopplerWindow, snapshot

RECORDING = Path(__file__).resolve().parents[2] / "offline_data" / "two_targets.sigmf-meta"


@pytest.fixture(scope="module")
def first_frame() -> DisplayFrame:
    with radio.open_radio(config.RadioConfig(kind="replay", uri=str(RECORDING))) as r:
        return frame_of(r.next_capture())


def test_latest_value_keeps_only_the_newest() -> None:
    holder: LatestValue[int] = LatestValue()
    assert holder.take() is None
    for i in range(5):
        holder.put(i)
    assert holder.take() == 4
    assert holder.dropped == 4
    assert holder.take() is None


def test_window_builds(qtbot) -> None:
    window = RangeDopplerWindow()
    qtbot.addWidget(window)
    window.show()
    assert window.pause_button.isCheckable()
    assert window.pfa_spin.value() == pytest.approx(-6.0)


def test_replay_source_updates_image_and_markers(qtbot) -> None:
    with ReplaySource(RECORDING) as source:
        window = RangeDopplerWindow(source=source, refresh_ms=10)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: window.current is not None and window.current.seq >= 1, timeout=20000)
        frame = window.current
    assert window.image.image is not None
    assert window.image.image.shape == frame.result.map.power.shape
    assert len(frame.result.detections) >= 2
    assert len(window.detection_markers.points()) == len(frame.result.detections)
    assert len(window.truth_markers.points()) == 2
    assert window.node_combo.findText("bs0") >= 0
    assert "node bs0" in window.status_bar.currentMessage()


def test_replay_source_keeps_only_the_newest() -> None:
    with ReplaySource(RECORDING) as source:
        first = source.wait(timeout_s=20.0)
        second = source.wait(timeout_s=20.0)
    assert first is not None and second is not None
    assert second.seq > first.seq


def test_snapshot_shows_targets_where_the_truth_says(tmp_path: Path, first_frame: DisplayFrame, qapp) -> None:
    from PyQt6 import QtGui

    out = tmp_path / "rd.png"
    pixels = snapshot(first_frame.result, first_frame.truth_paths, out, size=(1000, 700))
    assert len(pixels) == 2
    image = QtGui.QImage(str(out)).convertToFormat(QtGui.QImage.Format.Format_RGB888)
    assert (image.width(), image.height()) == (1000, 700)
    ptr = image.constBits()
    ptr.setsize(image.sizeInBytes())
    rgb = np.frombuffer(ptr, np.uint8).reshape(image.height(), image.bytesPerLine())[:, : 3 * image.width()]
    brightness = rgb.reshape(image.height(), image.width(), 3).astype(float).sum(axis=2)
    # the plot area: the box spanned by the truth points, widened
    xs, ys = [x for x, _ in pixels], [y for _, y in pixels]
    background = np.median(brightness[max(min(ys) - 200, 0): max(ys) + 200, max(min(xs) - 200, 0): max(xs) + 200])
    for x, y in pixels:
        assert 0 <= x < image.width() and 0 <= y < image.height()
        # the centre of each truth circle is image, not marker: the detection square (16 px) and circle (24 px)
        # leave a few pixels clear around it
        centre = brightness[y - 2: y + 3, x - 2: x + 3]
        assert np.median(centre) > 1.5 * background, (x, y, np.median(centre), background)
    # and a point with no target is not bright
    x0, y0 = pixels[0]
    assert brightness[y0 + 80, x0] < 1.5 * background


def test_tiny_pfa_reduces_detections(qtbot, first_frame: DisplayFrame) -> None:
    window = RangeDopplerWindow()
    qtbot.addWidget(window)
    window.show_frame(first_frame)
    window.pfa_spin.setValue(-3.0)               # false alarms besides the two targets
    before = len(window.current.result.detections)
    assert len(window.detection_markers.points()) == before
    window.pfa_spin.setValue(-30.0)
    after = len(window.current.result.detections)
    assert window.sensing_config.pfa == pytest.approx(1e-30)
    assert after < before
    assert after == 2                           # the two targets stand far above a 1e-30 threshold
    assert len(window.detection_markers.points()) == after


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
        seq = window.current.seq
        qtbot.wait(300)
        assert window.current.seq == seq
        window.pause_button.setChecked(False)
        qtbot.waitUntil(lambda: window.current.seq > seq, timeout=20000)


def test_display_subprocess_exits_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "app.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-m", "sdr_isac.display.app", "--replay", str(RECORDING),
                           "--snapshot", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 10000
    assert not list(tmp_path.glob(".*"))          # no temporary file left behind


def test_bad_size_is_rejected(tmp_path: Path, capsys) -> None:
    from sdr_isac.display.app import main

    assert main(["--replay", str(RECORDING), "--snapshot", str(tmp_path / "x.png"), "--size", "big"]) == 2
    assert "--size 'big'" in capsys.readouterr().err


def test_importing_the_app_does_not_import_qt() -> None:
    code = "import sys, sdr_isac.display.app; sys.exit(int(any(m.startswith(('PyQt6', 'pyqtgraph')) for m in sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
