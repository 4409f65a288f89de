"""``sdr-isac demo``: the demo's host tracks, writes tracks.json and a twin that ``sdr-isac twin`` lists, and the
display snapshot draws the tracks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_tracks_and_its_twin_lists_the_tracks(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "sdr_isac", "demo", "--frames", "3", "--out", str(out)],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads((out / "tracks.json").read_text())
    ids = sorted(t["id"] for t in doc["tracks"])
    assert doc["node_id"] == "host" and len(ids) == 2            # the car and the cyclist
    listed = subprocess.run([sys.executable, "-m", "sdr_isac", "twin", "--db", str(out / "twin.sqlite"), "tracks",
                             "--since", "0"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split()[0] for line in listed.stdout.splitlines()[1:] if line.split() and
            line.split()[0] in ids]
    assert sorted(rows) == ids, listed.stdout
    stats = json.loads((out / "stream_stats.json").read_text())
    assert stats["tracking"]["steps"] == 3 and stats["twin"]["failed"] == 0 and stats["twin"]["dropped"] == 0
    assert "2 tracks" in done.stdout and (out / "display.png").stat().st_size > 10_000
