"""Every command of docs/lab-guide.md runs: on the simulated radio, the test IIO daemon or the fake UHD.

Each ``bash``/``console`` block of the guide is either marked runnable (``<!-- runnable: KIND -->`` on the line
before its fence) or begins with ``# hardware only`` (visible to readers) and is not run; a block with neither
fails here, so no command of the guide goes untested by accident.  Kinds:

- ``sim``: run as written;
- ``pluto-test-server``: against ``tests/radio/iiod_server.IiodServer`` (a Pluto context behind a TCP iiod,
  driven by the real pyadi-iio -> libiio stack), which stands in for the board at ``ip:192.168.2.1``
  (the URI in the commands and in ``hw_configs/pluto.toml`` is replaced by the server's);
- ``usrp-fake-uhd``: with ``tests/radio/fake_uhd.py`` importable as ``uhd``.

Commands run in a scratch folder that sees the repository's ``hw_configs/``: ``sdr-isac ...`` through its entry
point :func:`sdr_isac.cli.main` in this process (what the ``sdr-isac`` script calls; a process start per command
would double the time), anything else in a shell with the virtual environment's ``bin`` first on ``PATH``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sdr_isac.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "lab-guide.md"
KINDS = ("sim", "pluto-test-server", "usrp-fake-uhd")
_BLOCK = re.compile(r"(?P<before>[^\n]*)\n```(?P<lang>bash|console)\n(?P<body>.*?)```", re.S)
_MARK = re.compile(r"<!--\s*runnable:\s*(?P<kind>[\w-]+)\s*-->")


def guide_blocks() -> list[tuple[int, str | None, list[str]]]:
    """``(line, kind, commands)`` of every bash/console block; kind None for a hardware-only block."""
    text = GUIDE.read_text(encoding="utf-8")
    blocks = []
    for match in _BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("body"))
        body = match.group("body").splitlines()
        mark = _MARK.search(match.group("before"))
        if body and body[0].startswith("# hardware only"):
            kind = None
        elif mark is None or mark.group("kind") not in KINDS:
            raise AssertionError(f"{GUIDE.name}:{line}: a command block without '<!-- runnable: KIND -->' "
                                 f"(KIND one of {', '.join(KINDS)}) or a first line '# hardware only'")
        else:
            kind = mark.group("kind")
        commands = []
        for raw in body:
            command = raw.removeprefix("$ ").split("  #")[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
        blocks.append((line, kind, commands))
    return blocks


BLOCKS = guide_blocks()


def test_the_guide_covers_the_lab_and_marks_every_block():
    text = GUIDE.read_text(encoding="utf-8")
    for topic in ("Firmware", "URIs", "USB 2.0", "First capture", "Calibration", "PPS latch", "Troubleshooting",
                  "licens", "No phase coherence between Plutos", "sdr-isac calibrate --config FILE --method "
                  "loopback|reflector [--distance-m D]"):
        assert topic in text, topic
    kinds = {kind for _, kind, _ in BLOCKS}
    assert set(KINDS) <= kinds and None in kinds            # runs on each stand-in, and has hardware-only blocks
    assert all(commands for _, _, commands in BLOCKS)


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "hw_configs").symlink_to(REPO / "hw_configs")
    return tmp_path


def _env(extra_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    paths = [str(p) for p in (extra_path, REPO) if p is not None]
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def _run(command: str, cwd: Path, env: dict[str, str], line: int, capsys: pytest.CaptureFixture[str]) -> None:
    words = shlex.split(command)
    if words[0] == "sdr-isac":
        code = main(words[1:])
        out, err = capsys.readouterr()
        assert code == 0, f"{GUIDE.name}:{line}: {command}\n{out[-2000:]}\n{err[-3000:]}"
        return
    done = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{GUIDE.name}:{line}: {command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


def _needs(commands: list[str]) -> None:
    subcommands = build_parser()._subparsers._group_actions[0].choices        # type: ignore[union-attr]
    for command in commands:
        words = command.split()
        if words[0] == "sdr-isac" and words[1] not in subcommands:
            pytest.skip(f"sdr-isac {words[1]} is not in this tree yet (the guide describes it)")


@pytest.mark.parametrize("line, kind, commands", [b for b in BLOCKS if b[1] is not None],
                         ids=[f"line{b[0]}-{b[1]}" for b in BLOCKS if b[1] is not None])
def test_guide_block_runs(line: int, kind: str, commands: list[str], workdir: Path,
                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _needs(commands)
    monkeypatch.chdir(workdir)
    if kind == "sim":
        for command in commands:
            _run(command, workdir, _env(), line, capsys)
    elif kind == "pluto-test-server":
        from tests.radio.iiod_server import IiodServer

        with IiodServer() as server:                    # loopback echo: the TX frame at -20 dB
            text = (REPO / "hw_configs/pluto.toml").read_text().replace("ip:192.168.2.1", server.uri)
            (workdir / "pluto.toml").write_text(text)
            for command in commands:
                command = command.replace("hw_configs/pluto.toml", "pluto.toml").replace("ip:192.168.2.1",
                                                                                          server.uri)
                _run(command, workdir, _env(), line, capsys)
    else:
        from tests.radio.fake_uhd import delayed_echo, make_fake_uhd

        monkeypatch.setitem(sys.modules, "uhd", make_fake_uhd(delayed_echo(60, gain=0.1)))
        fake = workdir / "fake_uhd" / "uhd"               # the same, for a command in a shell
        fake.mkdir(parents=True)
        (fake / "__init__.py").write_text("import sys\nfrom tests.radio.fake_uhd import delayed_echo, make_fake_uhd\n"
                                          "sys.modules[__name__] = make_fake_uhd(delayed_echo(60, gain=0.1))\n")
        for command in commands:
            _run(command, workdir, _env(workdir / "fake_uhd"), line, capsys)
