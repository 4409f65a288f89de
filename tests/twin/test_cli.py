"""``sdr-isac twin``: every query from the command line, errors as one line with status 2, and the commands of
docs/twin.md run as written."""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from sdr_isac.twin import open_twin
from sdr_isac.twin.cli import add_parser, main, run
from tests.twin.factories import detection, estimate
from tests.twin.test_queries import straight

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def twin_db(db):
    with open_twin(db) as store:
        store.write([straight("car-a", (0.0, 0.0), (10.0, 0.0), 20), straight("car-b", (0.0, 4.0), (20.0, 0.0), 10,
                                                                              t0_s=5.0),
                     detection(np.random.default_rng(0), "bs0", 0.5), estimate(np.random.default_rng(1), 1.0)])
    return db


def test_add_parser_and_run_as_sdr_isac_wires_them(twin_db, capsys):
    parser = argparse.ArgumentParser(prog="sdr-isac")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["twin", "--db", twin_db, "tracks", "--since", "0"])
    assert args.func is run and args.func(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"car-a\s+confirmed\s+20\s+0\.000\s+1\.900", out) and "2 tracks" in out


def test_tracks_window_and_json(twin_db, capsys):
    assert main(["twin", "--db", twin_db, "tracks", "--since", "5.0", "--until", "5.5", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["track_id"], r["num_states"]) for r in rows] == [("car-b", 6)]


def test_history(twin_db, capsys):
    assert main(["twin", "--db", twin_db, "history", "car-b"]) == 0
    out = capsys.readouterr().out
    assert "track car-b: confirmed, 10 states" in out and "20.00" in out


def test_heatmap_traffic_export_prune(twin_db, tmp_path, capsys):
    png, lanes, csv_f, gj = tmp_path / "h.png", tmp_path / "lanes.toml", tmp_path / "t.csv", tmp_path / "t.geojson"
    lanes.write_text("[[lane]]\nname = 'east-2'\nrect_m = [-1.0, 3.0, 500.0, 5.0]\n")
    assert main(["twin", "--db", twin_db, "heatmap", "--out", str(png), "--cell-m", "2"]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["twin", "--db", twin_db, "heatmap", "--out", str(png), "--source", "estimates",
                 "--area=-500,-500,500,500", "--cell-m", "50"]) == 0
    assert main(["twin", "--db", twin_db, "traffic", "--lanes", str(lanes)]) == 0
    assert re.search(r"east-2\s+1\s+10\s+20\.000", capsys.readouterr().out)
    # car-b's states carry no measured flags: counted, but not among the measured ones
    assert main(["twin", "--db", twin_db, "traffic", "--lanes", str(lanes), "--measured-only"]) == 0
    assert re.search(r"east-2\s+0\s+0\s+-", capsys.readouterr().out)
    assert main(["twin", "--db", twin_db, "heatmap", "--out", str(png), "--measured-only",
                 "--area=-10,-10,500,10"]) == 0
    assert capsys.readouterr().out.startswith("0 track positions")
    assert main(["twin", "--db", twin_db, "export", "--csv", str(csv_f)]) == 0
    assert len(csv_f.read_text().splitlines()) == 31
    assert main(["twin", "--db", twin_db, "export", "--geojson", str(gj)]) == 0
    assert len(json.loads(gj.read_text())["features"]) == 2
    assert main(["twin", "--db", twin_db, "export", "--geojson", str(gj), "--since", "5"]) == 0
    assert [f["properties"]["track_id"] for f in json.loads(gj.read_text())["features"]] == ["car-b"]
    assert main(["twin", "--db", twin_db, "prune", "--older-than", "5"]) == 0
    assert "deleted" in capsys.readouterr().out
    typo = tmp_path / "tiwn.db"                          # prune opens for writing: it made an empty twin there
    assert main(["twin", "--db", str(typo), "prune", "--older-than", "5"]) == 2
    assert "no such twin file" in capsys.readouterr().err and not typo.exists()
    newest = 5.0 + 0.1 * 9                               # car-b's last state
    with open_twin(twin_db) as store:
        t = store.track_points().t_s
        assert t.min() >= newest - 5.0 - 1e-9 and t.max() == pytest.approx(newest)
        assert store.detections() == [] and [e.t_s for e in store.estimates()] == [1.0]   # 0.5 s went, 1 s stays


def test_errors_are_one_line_with_status_2(tmp_path, twin_db, capsys):
    assert main(["twin", "--db", str(tmp_path / "none.sqlite"), "tracks", "--since", "0"]) == 2
    assert "error: " in capsys.readouterr().err and not (tmp_path / "none.sqlite").exists()
    assert main(["twin", "--db", twin_db, "history", "nope"]) == 2
    assert "no such track" in capsys.readouterr().err
    assert main(["twin", "--db", twin_db, "prune", "--older-than", "-3"]) == 2
    assert "--older-than -3.0 s" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["twin", "--db", twin_db, "export"])           # one of --csv, --geojson is required
    # an output path whose folder does not exist, or a folder: one line naming the path given, nothing written
    assert main(["twin", "--db", twin_db, "export", "--csv", str(tmp_path / "none" / "t.csv")]) == 2
    assert f"error: {tmp_path / 'none' / 't.csv'}: No such file or directory" in capsys.readouterr().err
    assert main(["twin", "--db", twin_db, "heatmap", "--out", str(tmp_path)]) == 2
    assert f"error: {tmp_path}: is a folder, not a file" in capsys.readouterr().err
    assert not any(p.name.endswith(".part") for p in tmp_path.iterdir())          # no temporary file left
    # a negative first corner without '=': taken as the option's value, not as an option of its own
    assert main(["twin", "--db", twin_db, "heatmap", "--out", str(tmp_path / "h.png"), "--area", "-50,-50,50,50"]) == 0


def _doc_blocks() -> tuple[str, list[str]]:
    text = (REPO / "docs" / "twin.md").read_text()
    python = "\n".join(re.findall(r"```python\n(.*?)```", text, re.S))
    shell = [line.strip() for block in re.findall(r"```sh\n(.*?)```", text, re.S) for line in block.splitlines()
             if line.strip().startswith("sdr-isac twin")]
    return python, shell


def test_the_examples_of_docs_twin_md_run(tmp_path, monkeypatch, capsys):
    python, shell = _doc_blocks()
    assert python and len(shell) >= 6
    monkeypatch.chdir(tmp_path)
    exec(compile(python, "docs/twin.md", "exec"), {})
    for line in shell:
        assert main(shlex.split(line)[1:]) == 0, (line, capsys.readouterr().err)
    assert (tmp_path / "heat.png").exists() and (tmp_path / "tracks.geojson").exists()
    assert "eastbound-1" in capsys.readouterr().out
