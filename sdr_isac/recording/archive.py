"""SigMF archives: one recording in a tar file (``.sigmf``), or a compressed one (``.sigmf.gz``, ``.sigmf.xz``).

Written by the ``sigmf`` package (:class:`sigmf.SigMFArchive`) into a hidden temporary file that one rename
makes the archive (:mod:`sdr_isac.recording._atomic`), so an archive is never seen half-written.  Read in
place by :meth:`Recording.open <sdr_isac.recording.Recording.open>` (which :func:`open_archive` calls):
nothing is extracted, every member name and type is checked first (see :mod:`sdr_isac.recording._tar`),
an uncompressed archive's samples are memory-mapped from the archive file and a compressed one's are
decompressed into memory.

Layout (as the SigMF specification and the ``sigmf`` package make it)::

    run.sigmf                  a tar file (POSIX pax format)
        run/                   a folder named after the archive
        run/run.sigmf-meta
        run/run.sigmf-data

>>> import numpy as np, tempfile, pathlib
>>> from sdr_isac import Capture
>>> from sdr_isac.recording import write_captures, write_archive, open_archive
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> meta = write_captures(folder / "run", [Capture(np.ones((1, 4), np.complex64), 1e6, 2.4e9)])
>>> write_archive(meta, folder / "run.sigmf.gz").name
'run.sigmf.gz'
>>> with open_archive(folder / "run.sigmf.gz") as rec:
...     rec.capture(0).iq.tolist()
[[(1+0j), (1+0j), (1+0j), (1+0j)]]
>>> import shutil; shutil.rmtree(folder)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sdr_isac.config import FrameConfig
from sdr_isac.errors import InputError, RecordingError
from sdr_isac.recording._atomic import commit_temp, open_temp, remove_stale_temps
from sdr_isac.recording._format import ARCHIVE_SUFFIXES, archive_suffix, sigmf
from sdr_isac.recording._metadata import validate_metadata
from sdr_isac.recording.reader import Recording

__all__ = ["open_archive", "write_archive"]


def open_archive(path: str | Path, frame: FrameConfig | None = None, *, member: str | None = None,
                 samples_per_capture: int | None = None, verify_checksum: bool = True) -> Recording:
    """Open the recording in a SigMF archive, without extracting it (see :meth:`Recording.open`).

    Parameters
    ----------
    path : str or Path
        ``.sigmf`` (tar), ``.sigmf.gz`` or ``.sigmf.xz`` (compressed tar).
    frame, samples_per_capture, verify_checksum
        As :meth:`Recording.open`; ``verify_checksum`` checks ``core:sha512`` against the data member.
    member : str or None
        Base name of the recording when the archive holds several.

    Returns
    -------
    Recording
        ``archive_path`` is ``path``; ``meta_path`` and ``data_path`` are ``<path>/<member>`` names.

    Raises
    ------
    RecordingError
        As :meth:`Recording.open`; also an archive member with an absolute name or ``..`` (a path
        traversal), a link, a device, or a declared size past the end of the archive; an archive that
        is not a tar file of its suffix's compression.
    """
    if archive_suffix(path) is None:
        raise InputError(f"path = {str(path)!r}: allowed a SigMF archive name ending in "
                         f"{', '.join(ARCHIVE_SUFFIXES)}; use Recording.open for a .sigmf-meta recording")
    return Recording.open(path, frame, samples_per_capture=samples_per_capture, verify_checksum=verify_checksum,
                          member=member)


def write_archive(recording: str | Path, path: str | Path, *, overwrite: bool = False,
                  allow_outside: bool = False) -> Path:
    """Pack a recording (``.sigmf-meta`` + data) into a SigMF archive, atomically.

    The recording is opened and validated first (every field, ``core:sha512`` against the data), then
    :class:`sigmf.SigMFArchive` writes the tar file into a hidden temporary file beside ``path``, which
    one rename makes ``path``.

    Parameters
    ----------
    recording : str or Path
        The recording: base name, ``.sigmf-meta`` or ``.sigmf-data`` path.
    path : str or Path
        The archive: ``<name>.sigmf`` (uncompressed, memory-mapped when read), ``<name>.sigmf.gz`` or
        ``<name>.sigmf.xz`` (compressed).  Its members are ``<name>/<name>.sigmf-meta`` and
        ``<name>/<name>.sigmf-data``.
    overwrite : bool
        Replace an existing archive (False: raise :class:`RecordingError` if it exists).
    allow_outside : bool
        As :meth:`Recording.open`: a data file outside the recording's folder.

    Returns
    -------
    Path
        The archive written.

    Raises
    ------
    InputError
        ``path`` has no archive suffix.
    RecordingError
        The recording does not open (see :meth:`Recording.open`); the archive exists and ``overwrite``
        is False; the folder is not writable or the disk is full (nothing is left at ``path``).
    """
    final = Path(path)
    suffix = archive_suffix(final)
    if suffix is None:
        raise InputError(f"path = {str(path)!r}: allowed a name ending in {', '.join(ARCHIVE_SUFFIXES)} "
                         "(.sigmf: uncompressed tar; .sigmf.gz, .sigmf.xz: compressed); add the suffix")
    if final.exists() and not overwrite:
        raise RecordingError(f"{final}: the archive already exists; pass overwrite=True or choose another name")
    with Recording.open(recording, verify_checksum=True, allow_outside=allow_outside) as rec:
        if rec.archive_path is not None:
            raise InputError(f"recording = {str(recording)!r}: an archive already; allowed a .sigmf-meta "
                             "recording; extract it or open it with open_archive")
        metadata: dict[str, Any] = rec.metadata
        data_path = rec.data_path
    sm = sigmf()
    try:
        signal = sm.SigMFFile(metadata=metadata, data_file=data_path, skip_checksum=True)
    except (sm.error.SigMFError, ValueError, OSError) as err:
        raise RecordingError(f"{recording}: the sigmf package cannot read the recording ({err}); it opens in "
                             "sdr_isac: report this with the file") from err
    validate_metadata(json.loads(signal.dumps()), final)          # what the reader of the archive will check
    name = final.name[:-len(suffix)]
    remove_stale_temps((final,))
    try:
        tmp, fh = open_temp(final)
    except OSError as err:
        raise RecordingError(f"{final.parent}: cannot write the archive there ({err.strerror}); create the "
                             "directory or choose a writable one") from err
    try:
        with open(tmp, "r+b") as out:                 # sigmf names members after the file object's name
            sm.SigMFArchive(signal, name=name, fileobj=out, compression=ARCHIVE_SUFFIXES[suffix] or None)
        if final.exists() and not overwrite:
            raise FileExistsError(17, "the archive appeared while writing")
        commit_temp(tmp, fh, final)
    except (OSError, sm.error.SigMFError) as err:
        fh.close()
        tmp.unlink(missing_ok=True)
        raise RecordingError(f"{final}: writing the archive failed ({err}); nothing was written; check the disk "
                             "and the directory's permissions") from err
    except BaseException:
        fh.close()
        tmp.unlink(missing_ok=True)
        raise
    return final
