"""SigMF recordings of captures: write, open, describe.

>>> from sdr_isac.recording import RecordingWriter, Recording, write_captures, describe

See :mod:`sdr_isac.recording.sigmf_io` for the on-disk layout.
"""

from sdr_isac.recording.sigmf_io import (
    DATATYPES,
    SCHEMA_VERSION,
    Recording,
    RecordingWriter,
    describe,
    open_recording,
    write_captures,
)

__all__ = ["DATATYPES", "SCHEMA_VERSION", "Recording", "RecordingWriter", "describe", "open_recording",
           "write_captures"]
