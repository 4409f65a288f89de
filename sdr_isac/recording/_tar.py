"""Find and vet one recording inside a SigMF archive (a tar file), without extracting anything.

Private to :mod:`sdr_isac.recording`; :meth:`Recording.open <sdr_isac.recording.Recording.open>` opens archives
through it and :mod:`sdr_isac.recording.archive` writes them.

Every member of the archive is checked before any is read: a name that is absolute or climbs out with
``..``, a symbolic or hard link, a device or a pipe is refused (an archive is never extracted here, but the
same archive extracted by ``tar`` would write there), and so is a member whose declared size runs past the
end of the archive.  The samples of an uncompressed archive (``.sigmf``) are memory-mapped from the archive
file itself; those of a compressed one (``.sigmf.gz``, ``.sigmf.xz``) are decompressed into memory.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import lzma
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from sdr_isac.errors import RecordingError
from sdr_isac.recording._format import ARCHIVE_SUFFIXES, DATA_SUFFIX, META_SUFFIX, archive_suffix, sigmf

#: Largest metadata member read, bytes.
MAX_META_BYTES = 64 * 2**20
#: Largest data member of a compressed archive decompressed into memory, bytes.
MAX_DECOMPRESSED_BYTES = 4 * 2**30

_MODES: dict[str, Literal["r:", "r:gz", "r:xz"]] = {"": "r:", "gz": "r:gz", "xz": "r:xz"}
_TAR_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError)


@dataclass(frozen=True)
class ArchivedRecording:
    """One recording found in an archive.

    Attributes
    ----------
    archive_path : Path
        The archive file.
    meta_name, data_name : str
        Member names of the metadata and the samples.
    meta_bytes : bytes
        The metadata text.
    data_size_bytes : int
        Size of the data member, bytes.
    sha512 : Callable[[], str]
        SHA-512 of the data member (lower-case hex), computed when called.
    map_data : Callable[[numpy.dtype, int, tuple], ndarray]
        ``map_data(dtype, offset_bytes, shape)``: the samples, ``offset_bytes`` into the member, read only.
    """

    archive_path: Path
    meta_name: str
    data_name: str
    meta_bytes: bytes
    data_size_bytes: int
    sha512: Callable[[], str]
    map_data: Callable[[np.dtype[Any], int, tuple[int, ...]], NDArray[Any]]

    @property
    def meta_path(self) -> Path:
        """``<archive>/<member>``: how messages name the metadata."""
        return self.archive_path / self.meta_name

    @property
    def data_path(self) -> Path:
        """``<archive>/<member>``: how messages name the samples."""
        return self.archive_path / self.data_name


def _refuse(path: Path, member: tarfile.TarInfo, why: str) -> RecordingError:
    return RecordingError(f"{path}: archive member {member.name!r} {why}: allowed regular files and folders "
                          "inside the archive's own folder (<name>/<name>.sigmf-meta, <name>/<name>.sigmf-data); "
                          "the archive is malformed or hostile: do not extract it, ask its author for a clean one")


def _vet(path: Path, members: list[tarfile.TarInfo], archive_bytes: int | None) -> None:
    """Refuse traversal names, links, devices and members that run past the end of the archive."""
    for member in members:
        name = member.name
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if not name or name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise _refuse(path, member, "is an absolute path or climbs out of the archive's folder with '..' "
                                        "(a path traversal)")
        if "\x00" in name:
            raise _refuse(path, member, "has a NUL character in its name")
        if member.issym() or member.islnk():
            raise _refuse(path, member, f"is a {'symbolic' if member.issym() else 'hard'} link to "
                                        f"{member.linkname!r}")
        if not (member.isfile() or member.isdir()):
            raise _refuse(path, member, "is a device, a pipe or another special file")
        if archive_bytes is not None and member.isfile() and member.offset_data + member.size > archive_bytes:
            raise _refuse(path, member, f"declares {member.size} bytes from byte {member.offset_data}, past the "
                                        f"end of the {archive_bytes}-byte archive (truncated, or a false size)")


def _pick(path: Path, files: dict[str, tarfile.TarInfo], member: str | None) -> str:
    """The one ``.sigmf-meta`` member (``member``: the base name of the recording to take)."""
    metas = sorted(n for n in files if n.endswith(META_SUFFIX))
    bases = [PurePosixPath(n).name[:-len(META_SUFFIX)] for n in metas]
    if member is not None:
        chosen = [n for n, b in zip(metas, bases) if member in (b, n, n[:-len(META_SUFFIX)])]
        if len(chosen) != 1:
            raise RecordingError(f"{path}: member = {member!r}: allowed the base name of one recording in the "
                                 f"archive: {', '.join(bases) or 'none'}; pick one of these")
        return chosen[0]
    if not metas:
        raise RecordingError(f"{path}: no {META_SUFFIX} member: allowed a SigMF archive (a tar file holding "
                             f"<name>/<name>{META_SUFFIX} and its data); check that this is a SigMF archive")
    if len(metas) > 1:
        raise RecordingError(f"{path}: holds {len(metas)} recordings ({', '.join(bases)}): allowed one, or name "
                             "one with open_archive(path, member=NAME); pick the recording to open")
    return metas[0]


def _dataset_name(meta_bytes: bytes) -> str | None:
    """``core:dataset`` of the metadata, if it is a string (the full validation comes later)."""
    try:
        value = json.loads(meta_bytes).get("global", {}).get("core:dataset")
    except (ValueError, AttributeError, RecursionError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) else None


def find_recording(path: Path, member: str | None = None) -> ArchivedRecording:
    """Open ``path`` (``.sigmf``, ``.sigmf.gz``, ``.sigmf.xz``), vet every member and find one recording.

    Parameters
    ----------
    path : Path
        The archive.
    member : str or None
        Base name of the recording to take when the archive holds several.

    Returns
    -------
    ArchivedRecording

    Raises
    ------
    RecordingError
        The archive is missing, not a tar file of its suffix's compression, has a member with a traversal
        name, a link, a device or a size past its end, holds no recording or several (without ``member``),
        or lacks the data member.
    """
    suffix = archive_suffix(path)
    if suffix is None:
        raise RecordingError(f"{path}: not a SigMF archive name: allowed {', '.join(ARCHIVE_SUFFIXES)}; "
                             "rename the file after its content")
    compression = ARCHIVE_SUFFIXES[suffix]
    if not path.is_file():
        raise RecordingError(f"{path}: archive not found; allowed the path of a SigMF archive; check the path")
    kind = f"{compression}-compressed tar file" if compression else "tar file (uncompressed)"
    try:
        archive_bytes = path.stat().st_size
        with tarfile.open(path, mode=_MODES[compression]) as tar:
            members = tar.getmembers()
            _vet(path, members, None if compression else archive_bytes)
            files = {m.name: m for m in members if m.isfile()}
            meta_name = _pick(path, files, member)
            meta_member = files[meta_name]
            if meta_member.size > MAX_META_BYTES:
                raise _refuse(path, meta_member, f"declares {meta_member.size} bytes of metadata (at most "
                                                 f"{MAX_META_BYTES} read)")
            handle = tar.extractfile(meta_member)
            meta_bytes = handle.read() if handle is not None else b""
            folder = PurePosixPath(meta_name).parent
            dataset = _dataset_name(meta_bytes)
            data_name = str(folder / (dataset if dataset else PurePosixPath(meta_name).name[:-len(META_SUFFIX)]
                                      + DATA_SUFFIX))
            if data_name not in files:
                raise RecordingError(f"{path}: member {data_name!r} (the data of {meta_name}) is missing: allowed "
                                     "an archive holding each recording's metadata and data; re-create the archive")
            data_member = files[data_name]
            if compression:
                if data_member.size > MAX_DECOMPRESSED_BYTES:
                    raise _refuse(path, data_member, f"declares {data_member.size} bytes, more than the "
                                                     f"{MAX_DECOMPRESSED_BYTES} decompressed into memory; "
                                                     "decompress the archive to an uncompressed .sigmf, which is "
                                                     "memory-mapped, and")
                handle = tar.extractfile(data_member)
                data = handle.read() if handle is not None else b""
                if len(data) != data_member.size:
                    raise _refuse(path, data_member, f"declares {data_member.size} bytes but holds {len(data)}")
    except RecordingError:
        raise
    except _TAR_ERRORS as err:
        raise RecordingError(f"{path}: not a readable {kind} ({type(err).__name__}: {err}): allowed a SigMF "
                             f"archive, a {kind}; re-create it with sdr_isac.recording.write_archive or tar") from err
    if compression:
        return ArchivedRecording(path, meta_name, data_name, meta_bytes, len(data),
                                 lambda: hashlib.sha512(data).hexdigest(),
                                 lambda dtype, offset, shape: np.frombuffer(data, dtype=dtype, offset=offset,
                                                                            count=int(np.prod(shape))).reshape(shape))
    start, size = data_member.offset_data, data_member.size

    def sha512() -> str:
        sigmf()                                  # the package, with a clear error if it is missing
        hashing = importlib.import_module("sigmf.hashing")
        return str(hashing.calculate_sha512(filename=path, offset=start, size=size))

    def map_data(dtype: np.dtype[Any], offset: int, shape: tuple[int, ...]) -> NDArray[Any]:
        return np.memmap(path, dtype=dtype, mode="r", offset=start + offset, shape=shape)

    return ArchivedRecording(path, meta_name, data_name, meta_bytes, size, sha512, map_data)
