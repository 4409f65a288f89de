"""SigMF recordings of captures: write, open, describe; archives and collections.

>>> from sdr_isac.recording import RecordingWriter, Recording, write_captures, describe

See :mod:`sdr_isac.recording.sigmf_io` for the on-disk layout, :mod:`sdr_isac.recording.archive` for
archives (``.sigmf``, ``.sigmf.gz``) and :mod:`sdr_isac.recording.collection` for collections
(``.sigmf-collection``).
"""

from sdr_isac.recording.archive import open_archive, write_archive
from sdr_isac.recording.collection import (
    Collection,
    CollectionMember,
    open_collection,
    resolve_member,
    write_collection,
)
from sdr_isac.recording.sigmf_io import (
    DATATYPES,
    SCHEMA_VERSION,
    Recording,
    RecordingWriter,
    describe,
    open_recording,
    write_captures,
)
from sdr_isac.recording.summary import describe_collection

__all__ = ["DATATYPES", "SCHEMA_VERSION", "Collection", "CollectionMember", "Recording", "RecordingWriter",
           "describe", "describe_collection", "open_archive", "open_collection", "open_recording",
           "resolve_member", "write_archive", "write_captures", "write_collection"]
