"""Record a capture: its ground truth to the ``truth:`` namespace, the rest of its metadata to ``isac:metadata``.

The one place that splits a simulated capture's ``metadata["truth"]`` off before appending it to a
:class:`~sdr_isac.recording.RecordingWriter` (``sdr-isac record``, a host's ``--record``, the display's Record
button all record this way).
"""

from __future__ import annotations

from collections.abc import Iterable

from sdr_isac.capture import Capture
from sdr_isac.errors import RecordingError
from sdr_isac.recording.writer import RecordingWriter

__all__ = ["append_capture"]


def append_capture(writer: RecordingWriter, capture: Capture, drop: Iterable[str] = ()) -> int:
    """Append ``capture`` to ``writer`` with its ``truth`` metadata (a dict, or absent) as the truth.

    Parameters
    ----------
    writer : RecordingWriter
        An open writer of the capture's rate, frequency and channel count.
    capture : Capture
        ``iq`` shape (num_channels, n), complex64; ``metadata["truth"]`` (optional) is the ground truth of a
        simulated capture.
    drop : iterable of str
        Further metadata keys left out of the recording (``"replay"``: where a replayed capture came from).

    Returns
    -------
    int
        Index of the capture in the recording.

    Raises
    ------
    RecordingError, InputError
        The truth is not a dict; or as :meth:`RecordingWriter.append` (the capture does not fit the
        recording, its truth is not JSON, the disk fails).
    """
    meta = dict(capture.metadata)
    truth = meta.pop("truth", None)
    if truth is not None and not isinstance(truth, dict):
        raise RecordingError(f"capture seq {capture.seq} of {capture.node_id}: metadata['truth'] is a "
                             f"{type(truth).__name__}: allowed a dict (truth:<key> -> value) or none; fix the "
                             "source of the capture")
    for key in drop:
        meta.pop(key, None)
    # the same samples: a capture that checks once (a host's, already checked) is not read again by the writer
    return writer.append(capture.with_metadata(meta), truth=truth)
