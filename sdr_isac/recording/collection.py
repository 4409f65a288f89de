"""SigMF collections: the recordings of several nodes (or channels) of one run, tied together.

A collection is one JSON file ``<name>.sigmf-collection`` beside its recordings::

    {"collection": {"core:version": "1.2.6", "core:description": "...",
                    "core:streams": [{"name": "bs0", "hash": "<SHA-512 of bs0.sigmf-meta>"},
                                     {"name": "ue1", "hash": "..."}]}}

Each stream ``name`` is the base name of a recording relative to the collection's folder (``bs0`` for
``bs0.sigmf-meta``, ``node2/rx`` for ``node2/rx.sigmf-meta``); ``hash`` is the SHA-512 of the member's
metadata file, as the SigMF specification says.  :func:`write_collection` builds it with
:class:`sigmf.SigMFCollection` (which names the streams and hashes them) and writes it atomically;
:func:`open_collection` validates it as :meth:`Recording.open <sdr_isac.recording.Recording.open>`
validates a recording: every field typed, each member confined to the collection's folder (unless
``allow_outside``), each member's ``hash`` checked when present, and each member opened (every metadata
field validated, its ``core:sha512`` verified).

The node id of a member is its ``isac:node`` ``id``, else the ``isac:node_id`` of its first capture (an
sdr_isac recording), else the stream's base name.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any

from sdr_isac.errors import InputError, RecordingError
from sdr_isac.recording._atomic import write_text
from sdr_isac.recording._format import COLLECTION_SUFFIX, META_SUFFIX, file_names, sigmf
from sdr_isac.recording._metadata import _SHA512, load_json_bytes
from sdr_isac.recording.reader import Recording

__all__ = ["Collection", "CollectionMember", "collection_path", "open_collection", "resolve_member",
           "write_collection"]

#: Largest collection file read, bytes.
MAX_COLLECTION_BYTES = 16 * 2**20


def collection_path(path: str | Path) -> Path:
    """``path`` with the ``.sigmf-collection`` suffix (added if missing)."""
    p = Path(path)
    return p if p.name.endswith(COLLECTION_SUFFIX) else p.with_name(p.name + COLLECTION_SUFFIX)


@dataclass(frozen=True)
class CollectionMember:
    """One recording of a collection.

    Attributes
    ----------
    name : str
        The stream's ``name``: base name relative to the collection's folder.
    node_id : str
        The node that recorded it (see the module docstring).
    recording : Recording
        The member, open (closed with the collection).
    """

    name: str
    node_id: str
    recording: Recording

    @property
    def meta_path(self) -> Path:
        """The member's ``.sigmf-meta`` file."""
        return self.recording.meta_path


def _member_node_id(rec: Recording, name: str) -> str:
    node_id = rec.node.get("id")
    if isinstance(node_id, str) and node_id:
        return node_id
    if rec.is_isac and rec.num_captures:
        return str(rec.capture_info(0)["node_id"])
    return PurePosixPath(name).name


class Collection:
    """An open SigMF collection: its members, each an open :class:`Recording`.

    Use :func:`open_collection` to open one; close it (or use ``with``) to close every member.

    Attributes
    ----------
    path : Path
        The ``.sigmf-collection`` file.
    description : str
        ``core:description`` ("" if absent).
    members : tuple of CollectionMember
        In the order of ``core:streams``.
    info : dict
        The ``collection`` object as in the file (a copy).
    """

    def __init__(self, path: Path, info: dict[str, Any], members: tuple[CollectionMember, ...]) -> None:
        self.path = path
        self.info = info
        self.description = str(info.get("core:description", ""))
        self.members = members

    @property
    def node_ids(self) -> list[str]:
        """The members' node ids, in stream order (a node with two recordings appears twice)."""
        return [m.node_id for m in self.members]

    def member(self, node_id: str | None = None) -> CollectionMember:
        """The one member of ``node_id`` (None: the only member).

        Raises
        ------
        InputError
            No member, or several, has that node id (the message lists them).
        """
        found = [m for m in self.members if node_id is None or m.node_id == node_id]
        if len(found) != 1:
            listed = ", ".join(f"{m.node_id} ({m.name})" for m in self.members)
            wanted = "the only member" if node_id is None else f"node_id = {node_id!r}"
            raise InputError(f"{self.path}: {wanted}: {len(found)} members match; allowed the node id of one "
                             f"member: {listed}; name one of these (its recording path opens on its own too)")
        return found[0]

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[CollectionMember]:
        return iter(self.members)

    def close(self) -> None:
        """Close every member."""
        for m in self.members:
            m.recording.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Collection({str(self.path)!r}, {len(self.members)} members: {', '.join(self.node_ids)})"


# ---- writing ------------------------------------------------------------------------------------------
def _relative_meta(folder: Path, recording: str | Path, i: int) -> str:
    """The member's ``.sigmf-meta`` relative to ``folder`` (POSIX), or InputError if it lies outside."""
    if not isinstance(recording, (str, Path)):
        raise InputError(f"recordings[{i}] is a {type(recording).__name__}: allowed a path (str or Path) of a "
                         "recording; pass its .sigmf-meta path")
    meta, _ = file_names(recording)
    try:
        relative = meta.resolve().relative_to(folder.resolve())
    except ValueError as err:
        raise InputError(f"recordings[{i}] = {str(recording)!r} lies outside the collection's folder "
                         f"{folder.resolve()}: allowed recordings in that folder or below (SigMF names members "
                         "relative to it); write the collection beside the recordings") from err
    return relative.as_posix()


def write_collection(path: str | Path, recordings: Sequence[str | Path], *, description: str = "",
                     overwrite: bool = False, verify_checksum: bool = True) -> Path:
    """Write a ``.sigmf-collection`` that ties ``recordings`` together (the recordings of one run).

    Every member is opened and validated first (as :func:`open_collection` will), then
    :class:`sigmf.SigMFCollection` names and hashes the streams, and the file is written atomically.

    Parameters
    ----------
    path : str or Path
        The collection, with or without ``.sigmf-collection``.
    recordings : sequence of str or Path
        The members (base name, ``.sigmf-meta`` or ``.sigmf-data`` path), in the collection's folder or
        below it; at least one, each once.
    description : str
        ``core:description``.
    overwrite : bool
        Replace an existing collection (False: :class:`RecordingError` if it exists).
    verify_checksum : bool
        Verify each member's ``core:sha512`` against its data while validating (reads every data file;
        False for recordings just written by this process).

    Returns
    -------
    Path
        The ``.sigmf-collection`` file written.

    Raises
    ------
    InputError
        No recordings, a recording twice, one outside the collection's folder, a path of the wrong type.
    RecordingError
        A member does not open (the message names it and why); the collection exists and ``overwrite``
        is False; the folder is not writable.
    """
    final = collection_path(path)
    folder = final.parent
    if isinstance(recordings, (str, Path)) or not isinstance(recordings, Sequence):
        raise InputError(f"recordings is a {type(recordings).__name__}: allowed a list of recording paths; wrap "
                         "a single path in a list")
    if not recordings:
        raise InputError("recordings = []: allowed at least one recording; record before writing a collection")
    names = [_relative_meta(folder, r, i) for i, r in enumerate(recordings)]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise InputError(f"recordings[{i}] = {name!r} is also recordings[{names.index(name)}]: allowed each "
                             "recording once; remove the duplicate")
    if final.exists() and not overwrite:
        raise RecordingError(f"{final}: the collection already exists; pass overwrite=True or choose another name")
    for name in names:
        with Recording.open(folder / name, verify_checksum=verify_checksum):
            pass
    sm = sigmf()
    try:
        coll = sm.SigMFCollection(metafiles=names, base_path=folder, skip_checksums=True)
    except sm.error.SigMFError as err:
        raise RecordingError(f"{final}: the sigmf package refused the members ({err}); check them") from err
    if description:
        coll.set_collection_field("core:description", str(description))
    text = coll.dumps(pretty=True) + "\n"
    _validate(final, json.loads(text))                # what open_collection will check
    try:
        write_text(final, text)
    except OSError as err:
        raise RecordingError(f"{final}: cannot write the collection ({err.strerror}); create the directory or "
                             "choose a writable one") from err
    return final


# ---- reading ------------------------------------------------------------------------------------------
def _error(path: Path, field: str, value: Any, allowed: str, fix: str) -> RecordingError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return RecordingError(f"{path}: {field} = {shown}: allowed {allowed}; {fix}")


def _validate(path: Path, doc: Any) -> list[dict[str, Any]]:
    """Check the collection's structure and types; returns its streams."""
    if not isinstance(doc, dict) or not isinstance(doc.get("collection"), dict):
        raise _error(path, "collection", doc.get("collection") if isinstance(doc, dict) else doc,
                     "a top-level object {\"collection\": {...}} (SigMF collection)",
                     "check that this is a .sigmf-collection file")
    info = doc["collection"]
    for key in ("core:version", "core:description", "core:author", "core:license", "core:collection_doi"):
        if key in info and not isinstance(info[key], str):
            raise _error(path, f"collection.{key}", info[key], "a string", "fix the value")
    if "core:version" not in info:
        raise RecordingError(f"{path}: collection.core:version is missing: allowed the SigMF version string "
                             "(\"1.2.0\"); add it")
    streams = info.get("core:streams")
    if not isinstance(streams, list) or not streams:
        raise _error(path, "collection.core:streams", streams, "a non-empty list of recording objects "
                     "{\"name\": ..., \"hash\": ...}", "list the collection's recordings")
    for i, stream in enumerate(streams):
        where = f"collection.core:streams[{i}]"
        if not isinstance(stream, dict):
            raise _error(path, where, stream, "an object {\"name\": base name, \"hash\": SHA-512 of its "
                         ".sigmf-meta}", "write each stream as such an object")
        name = stream.get("name")
        if not isinstance(name, str) or not name.strip() or "\x00" in name:
            raise _error(path, f"{where}.name", name, "the base name of a recording (a non-empty string)",
                         "fix the name")
        digest = stream.get("hash")
        if digest is not None and (not isinstance(digest, str) or not _SHA512.fullmatch(digest)):
            raise _error(path, f"{where}.hash", digest, "128 hexadecimal digits (SHA-512 of the member's "
                         ".sigmf-meta)", "fix it or remove the key")
        if [s.get("name") for s in streams[:i] if isinstance(s, dict)].count(name):
            raise _error(path, f"{where}.name", name, "each recording once", "remove the duplicate stream")
    return streams


def _member_path(path: Path, i: int, name: str, allow_outside: bool) -> Path:
    """The member's ``.sigmf-meta``, refused outside the collection's folder unless ``allow_outside``."""
    folder = path.parent
    meta = folder / (name + META_SUFFIX)
    try:
        inside = meta.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError) as err:              # RuntimeError: a loop of symbolic links
        raise RecordingError(f"{path}: collection.core:streams[{i}].name = {name!r} cannot be resolved ({err}); "
                             "allowed a recording in the collection's folder; fix the links") from err
    if not allow_outside and (Path(name).is_absolute() or ".." in PurePosixPath(name).parts or not inside):
        raise RecordingError(f"{path}: collection.core:streams[{i}].name = {name!r} resolves to {meta.resolve()}, "
                             f"outside the collection's folder {folder.resolve()}: allowed recordings in that folder "
                             "or below; move the recording there, or pass allow_outside=True (sdr-isac info "
                             "--allow-outside) if you trust this collection")
    return meta


def _check_hash(path: Path, i: int, meta: Path, expected: str) -> None:
    if not meta.is_file():
        return                                            # Recording.open names the missing file
    hashing = importlib.import_module("sigmf.hashing")
    try:
        actual = hashing.calculate_sha512(filename=meta)
    except OSError as err:
        raise RecordingError(f"{meta}: cannot read the metadata ({err.strerror}); check permissions") from err
    if actual != expected.lower():
        raise RecordingError(f"{path}: collection.core:streams[{i}].hash = {expected[:16]}... but {meta.name} "
                             f"hashes to {actual[:16]}...: allowed the SHA-512 of the member's metadata; the "
                             "member changed after the collection was written (re-write the collection with "
                             "write_collection) or is not the recording the collection names")


def open_collection(path: str | Path, *, allow_outside: bool = False, verify_checksum: bool = True) -> Collection:
    """Open a ``.sigmf-collection`` and every member recording, validating all of them.

    Parameters
    ----------
    path : str or Path
        The collection, with or without ``.sigmf-collection``.
    allow_outside : bool
        Allow members (and their data files) outside the collection's folder: a stream name with
        ``..``, an absolute one, a link that resolves elsewhere.  False (default) refuses them.
    verify_checksum : bool
        Verify each member's ``core:sha512`` against its data (reads every data file once).

    Returns
    -------
    Collection
        Members in stream order, each with its node id and its open :class:`Recording`.

    Raises
    ------
    RecordingError
        The file is missing, not JSON or not a SigMF collection; a field has the wrong type
        (``core:streams`` not a list, a stream not an object, a name not a string, a malformed hash);
        a member lies outside the folder; a member's metadata does not match its ``hash``; a member does
        not open (the message names the stream and the member's own error).
    """
    final = collection_path(path)
    if not final.is_file():
        raise RecordingError(f"{final}: collection file not found; allowed the path of a .sigmf-collection; "
                             "check the path")
    try:
        if final.stat().st_size > MAX_COLLECTION_BYTES:
            raise RecordingError(f"{final}: {final.stat().st_size} bytes: allowed a collection file of at most "
                                 f"{MAX_COLLECTION_BYTES} bytes; check that this is a .sigmf-collection file")
        raw = final.read_bytes()
    except OSError as err:
        raise RecordingError(f"{final}: cannot read the collection ({err.strerror}); check permissions") from err
    doc = load_json_bytes(raw, final, "collection")
    streams = _validate(final, doc)
    members: list[CollectionMember] = []
    try:
        for i, stream in enumerate(streams):
            name = stream["name"]
            meta = _member_path(final, i, name, allow_outside)
            if stream.get("hash") is not None:
                _check_hash(final, i, meta, stream["hash"])
            try:
                rec = Recording.open(meta, verify_checksum=verify_checksum, allow_outside=allow_outside)
            except RecordingError as err:
                raise RecordingError(f"{final}: collection.core:streams[{i}] = {name!r}: {err}") from err
            members.append(CollectionMember(name, _member_node_id(rec, name), rec))
    except BaseException:
        for m in members:
            with contextlib.suppress(Exception):
                m.recording.close()
        raise
    return Collection(final, doc["collection"], tuple(members))


def resolve_member(path: str | Path, node_id: str | None = None, *, allow_outside: bool = False) -> Path:
    """The ``.sigmf-meta`` of one recording: ``path`` itself, or a collection's member of ``node_id``.

    For commands that take one recording (``display --replay``, ``process``) and are handed a collection.

    Parameters
    ----------
    path : str or Path
        A recording, an archive (returned as they are) or a ``.sigmf-collection``.
    node_id : str or None
        The member's node id (None: the collection must have one member).

    Returns
    -------
    Path

    Raises
    ------
    RecordingError
        The collection does not open (see :func:`open_collection`).
    InputError
        No member, or several, has ``node_id`` (the message lists the node ids).
    """
    if not Path(path).name.endswith(COLLECTION_SUFFIX):
        return Path(path)
    with open_collection(path, allow_outside=allow_outside, verify_checksum=False) as coll:
        return coll.member(node_id).meta_path
