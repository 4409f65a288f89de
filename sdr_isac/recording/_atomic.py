"""The one atomic file writer of sdr_isac: hidden temporary files, renames, stale-file cleanup.

SigMF recordings (:mod:`sdr_isac.recording.writer`) and every other output that must never be seen
half-written (JSON summaries, CSV tables, PNG figures and snapshots, key pairs, JSON lines) go through
:func:`write_file`, :func:`write_text`, :func:`write_json` or :func:`open_temp` + :func:`commit_temp`.

A temporary file of ``<dir>/<name>`` is ``<dir>/.<name>.<12 hex>.part``, created exclusively and, where the
platform has ``fcntl``, held under an exclusive ``flock`` for as long as its writer has it open, so that
:func:`remove_stale_temps` (which every new write runs) removes only the leftovers of writers that died (a
SIGKILL, a power cut) and never the file of a writer still at work.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import IO, Any

try:                                                    # POSIX only; elsewhere nothing is locked
    import fcntl
except ImportError:                                     # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

TEMP_SUFFIX = ".part"
_TOKEN_HEX = 12


def temp_name(final: Path) -> Path:
    """A fresh hidden temporary name beside ``final``: ``.<final name>.<12 hex>.part``."""
    return final.with_name(f".{final.name}.{secrets.token_hex(_TOKEN_HEX // 2)}{TEMP_SUFFIX}")


def is_temp_of(path: Path, final: Path) -> bool:
    """True if ``path`` is a name :func:`temp_name` makes for ``final``."""
    pattern = rf"\.{re.escape(final.name)}\.[0-9a-f]{{{_TOKEN_HEX}}}{re.escape(TEMP_SUFFIX)}"
    return path.parent == final.parent and re.fullmatch(pattern, path.name) is not None


def _lock(fh: IO[bytes]) -> bool:
    """Take an exclusive non-blocking ``flock`` on ``fh``; False if another open file holds one."""
    if fcntl is None:                                   # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def open_temp(final: Path, mode: int | None = None) -> tuple[Path, IO[bytes]]:
    """Create and lock a new temporary file for ``final``; returns its path and the open file (``wb``).

    ``mode`` (e.g. ``0o600`` for a secret) is the file's permission from its creation on, before any byte is
    written; None: ``0o666`` less the umask, as ``open`` does (unlike ``mkstemp``).

    Raises
    ------
    OSError
        The folder does not exist or is not writable, or ``final`` is a folder (IsADirectoryError); the
        error's ``filename`` is ``final``, the path the caller gave, not the temporary one.
    """
    if Path(final).is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(final))
    tmp = temp_name(final)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    except OSError as err:
        raise type(err)(err.errno, err.strerror, str(final)) from err
    if mode is not None:
        os.chmod(fd, mode)                              # exactly ``mode``, whatever the umask
    fh = os.fdopen(fd, "wb")
    _lock(fh)                                           # a new file: nobody else can hold it
    return tmp, fh


def fsync_dir(folder: Path) -> None:
    """Make the renames in ``folder`` durable (a power cut after this keeps them); best effort.

    Some file systems refuse ``fsync`` on a directory (EINVAL).  An error here is not raised: the rename
    before it has happened, and callers decide what happened from the renames alone.
    """
    if not hasattr(os, "O_DIRECTORY"):                  # pragma: no cover - Windows has no directory fsync
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def finish_temp(fh: IO[bytes]) -> None:
    """Flush ``fh`` to the disk (keep it open: its lock marks the file as in use)."""
    fh.flush()
    os.fsync(fh.fileno())


def write_file(final: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``final`` atomically: a temporary file, fsync, rename over ``final``, fsync the folder.

    At every instant ``final`` holds its old content (or is absent) or the whole of ``data``.  ``mode``: the
    file's permissions (see :func:`open_temp`).

    Raises
    ------
    OSError
        Writing or renaming failed; the temporary file is removed and ``final`` is as it was.
    """
    tmp, fh = open_temp(final, mode)
    try:
        fh.write(data)
    except BaseException:
        fh.close()
        tmp.unlink(missing_ok=True)
        raise
    commit_temp(tmp, fh, final)                         # the file stays open (locked) until renamed


def commit_temp(tmp: Path, fh: IO[bytes], final: Path) -> None:
    """Flush ``fh`` (from :func:`open_temp`), rename it over ``final``, fsync the folder.

    For writers that stream into the temporary file over time (JSON lines, say) instead of handing over one
    ``bytes``.

    Raises
    ------
    OSError
        Flushing or renaming failed; the temporary file is removed and ``final`` is as it was.
    """
    try:
        finish_temp(fh)
        os.replace(tmp, final)
    except BaseException:
        fh.close()
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):                  # renamed: nothing after it may count as a failure
        fh.close()
    fsync_dir(final.parent)


def write_text(final: Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` (UTF-8) to ``final`` atomically, with permissions ``mode`` (see :func:`open_temp`).

    Raises
    ------
    OSError
        As :func:`write_file`.
    """
    write_file(final, text.encode("utf-8"), mode)


def write_json(final: Path, data: Any, indent: int | None = 2) -> None:
    """Write ``data`` as JSON (``indent`` spaces) to ``final`` atomically: never a half-written file.

    Raises
    ------
    TypeError, ValueError
        ``data`` is not JSON-able (nothing is written).
    OSError
        As :func:`write_file`.
    """
    write_text(final, json.dumps(data, indent=indent))


def link_or_copy(src: Path, final: Path) -> None:
    """Make ``final`` an atomic replacement holding the bytes of ``src`` (which stays where it is).

    A hard link when the file system has them, else a copy; both go through a temporary name and one
    rename, so ``final`` is never partly written.
    """
    tmp = temp_name(final)
    try:
        try:
            os.link(src, tmp)
        except OSError:                                 # no hard links here (FAT, some network file systems)
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)


def remove_stale_temps(finals: tuple[Path, ...], keep: frozenset[str] = frozenset()) -> list[Path]:
    """Remove the temporary files that dead writers left for any of ``finals``; returns those removed.

    A temporary file whose ``flock`` is held (its writer is alive) and the file names in ``keep`` (a
    temporary data file that the current metadata names in ``core:dataset``) are left alone.  Files that cannot be
    removed (permissions) are left too: cleaning up is best effort and never fails a write.
    """
    removed = []
    for final in finals:
        with contextlib.suppress(OSError):
            candidates = [p for p in final.parent.iterdir() if is_temp_of(p, final) and p.name not in keep]
            for path in candidates:
                try:
                    with open(path, "rb") as fh:
                        if not _lock(fh):
                            continue
                        path.unlink()
                    removed.append(path)
                except OSError:
                    continue
    return removed
