"""SigMF read and write of captures.

A recording is a SigMF pair ``<base>.sigmf-meta`` (JSON) + ``<base>.sigmf-data``
(samples), written and read through the ``sigmf`` package.

On-disk layout
--------------
Data file
    Captures one after another, no gaps.  With ``core:num_channels = C > 1``
    the samples are interleaved per sample, as SigMF specifies: sample 0 of
    channels 0 ... C-1, then sample 1 of channels 0 ... C-1, ...  Datatypes:
    every complex SigMF type (``cf32_le`` default, ``cf64``, ``ci32``,
    ``ci16``, ``ci8``, ``cu32``, ``cu16``, ``cu8``, ``_le`` or ``_be``); signed
    integers hold full scale +-1.0 as +-2**(bits-1) and are scaled back by
    2**-(bits-1) on reading, unsigned ones are offset binary (cu8:
    ``(v - 127.5) / 127.5``, as RTL-SDR).  Real datatypes are refused.
``global``
    ``core:datatype``, ``core:sample_rate`` (Hz), ``core:version``,
    ``core:num_channels``, ``core:description``, ``core:recorder = "sdr_isac"``,
    ``core:hw`` (from the radio description), ``core:sha512`` of the data file,
    ``core:extensions`` declaring ``isac`` and ``truth`` (version 1.0.0,
    optional), and ``isac:schema = 1``, ``isac:frame`` (the
    :class:`~sdr_isac.config.FrameConfig` as a dict; ``None`` fields are its
    defaults), ``isac:node``, ``isac:radio`` (free dicts).
``captures``
    One segment per capture: ``core:sample_start``, ``core:frequency`` (Hz), and ``core:datetime`` (UTC of
    the first sample on the host clock, from the capture's ``metadata["host_utc"]``; left out where the
    capture has none in SigMF's format).
    Segments may differ in frequency (a retune, ``allow_retune=True``); each
    capture then has its segment's frequency and must not straddle a retune.
``annotations``
    One per capture: ``core:sample_start``, ``core:sample_count`` (samples per
    channel), ``core:label = "seq <n>"``, ``isac:seq``, ``isac:t0_s`` (s, node
    clock), ``isac:node_id``, ``isac:frame_offset`` (samples),
    ``isac:metadata`` (the capture's metadata dict) and ``truth:<key>`` for
    each entry of the capture's truth, e.g. ``truth:targets`` (list of dicts).

Foreign recordings (no ``isac:`` annotations) open as one capture per
capture segment (one spanning the file when it has one segment), or as
blocks of ``samples_per_capture`` samples.

Archives (``.sigmf``, ``.sigmf.gz``, ``.sigmf.xz``) open in place with the
same validation (:mod:`sdr_isac.recording.archive`); collections
(``.sigmf-collection``) tie the recordings of several nodes of one run
(:mod:`sdr_isac.recording.collection`).  See ``docs/recording.md``.

Reading
-------
:meth:`Recording.open` validates every metadata field once (types exactly as
the SigMF schema and the ``isac:`` schema of
:mod:`sdr_isac.recording._metadata` say: a bool, ``2.5`` or ``"12"`` is no
integer; NaN and infinities nowhere; rates and frequencies finite and in
range), verifies ``core:sha512`` when present (``verify_checksum=False``
skips it for big trusted files) and keeps the data file inside the folder of
the ``.sigmf-meta`` (``core:dataset`` with ``..``, absolute paths and links
to elsewhere need ``allow_outside=True``).  It raises
:class:`~sdr_isac.errors.RecordingError` naming the field, or every capture
reads.  ``sdr-isac info`` (:func:`describe`) also reads every capture.

Writing
-------
:class:`RecordingWriter` commits with one rename of a metadata file, so a
killed writer leaves the old recording or the new one, never a mix; see
:meth:`RecordingWriter.close`.  Hidden ``.part`` files of killed writers are
removed by the next write of the same target.
"""

from __future__ import annotations

from sdr_isac.recording._format import DATATYPES, SCHEMA_VERSION
from sdr_isac.recording.reader import Recording, open_recording
from sdr_isac.recording.summary import describe
from sdr_isac.recording.writer import RecordingWriter, write_captures

__all__ = ["DATATYPES", "SCHEMA_VERSION", "Recording", "RecordingWriter", "describe", "open_recording",
           "write_captures"]
