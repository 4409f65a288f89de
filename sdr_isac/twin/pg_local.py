"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` into a temporary folder, Unix socket only.

``local_server()`` finds the server programs (``/usr/lib/postgresql/*/bin``, else ``PATH``), makes a
cluster in a fresh temporary folder, starts it listening on a Unix socket in that folder and on no TCP
port (``listen_addresses = ''``), yields a DSN, and at the end stops it (``pg_ctl stop``) and removes
the folder.  PostgreSQL refuses to run as root: run as root, the programs run as the user ``postgres``
(or ``nobody`` where there is none) through ``runuser``, and the folder is handed to that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sdr_isac.twin.errors import TwinUnavailableError

__all__ = ["find_bin", "local_server"]


def find_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl`` (the newest of ``/usr/lib/postgresql/*/bin``, else PATH), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
                   if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path and shutil.which("initdb") else None


def _runner() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs a program as an unprivileged user when we are root, and that user."""
    if os.geteuid() != 0:
        return [], None
    if shutil.which("runuser") is None:
        raise TwinUnavailableError("running as root without runuser (util-linux): PostgreSQL refuses to run as root; "
                                   "install util-linux or run as an unprivileged user")
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            user = pwd.getpwnam(name)
            return ["runuser", "-u", name, "--"], user
    raise TwinUnavailableError("running as root, and neither user postgres nor nobody exists to run PostgreSQL")


def _run(cmd: list[str], log: Path | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        tail = (log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else "")
        raise TwinUnavailableError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-2000:]} "
                                   f"{tail}".strip())


@contextlib.contextmanager
def local_server(fsync: bool = True) -> Iterator[str]:
    """Start a throwaway PostgreSQL server; yields its DSN (``host=SOCKET_DIR dbname=postgres user=...``).

    Parameters
    ----------
    fsync : bool
        False: ``fsync = off`` (tests: faster, not crash-safe).

    Raises
    ------
    TwinUnavailableError
        The server programs are not installed, or the server did not start (the message holds its log).
    """
    bindir = find_bin()
    if bindir is None:
        raise TwinUnavailableError("PostgreSQL server programs (initdb, pg_ctl) not found in /usr/lib/postgresql/*/"
                                   "bin or on PATH: install the postgresql package")
    prefix, user = _runner()
    root = Path(tempfile.mkdtemp(prefix="sdr_isac_pg_"))
    data, sock, log = root / "data", root / "sock", root / "server.log"
    sock.mkdir()
    if user is not None:
        for p in (root, sock):
            os.chown(p, user.pw_uid, user.pw_gid)
    db_user = user.pw_name if user is not None else pwd.getpwuid(os.geteuid()).pw_name
    started = False
    try:
        _run([*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", db_user, "--no-sync",
              "-E", "UTF8", "--locale=C"])
        opts = f"-c listen_addresses='' -k {sock} -c fsync={'on' if fsync else 'off'}"
        _run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60",
              "start"], log)
        started = True
        yield f"host={sock} dbname=postgres user={db_user}"
    finally:
        if started:
            with contextlib.suppress(Exception):
                _run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)
