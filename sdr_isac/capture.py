"""The ``Capture`` record: what a radio returns, a file stores and the wire carries."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sdr_isac.config import FrameConfig
from sdr_isac.errors import InputError, NonFiniteSampleError

__all__ = ["Capture", "first_nonfinite", "HOST_UTC", "utc_stamp"]

#: metadata key of a capture's first sample on the host's UTC clock (ISO 8601, microseconds, ``Z``); radios set
#: it, a recording writes it as the capture segment's SigMF ``core:datetime``
HOST_UTC = "host_utc"


def utc_stamp(seconds_ago: float = 0.0) -> str:
    """The host's UTC time ``seconds_ago`` before now as SigMF writes it (``2026-12-07T16:30:00.123456Z``).

    As precise as the host clock (NTP: milliseconds): a date for a recording, not a time base for sensing.
    """
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=float(seconds_ago))
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, eq=False)
class Capture:
    """A block of received samples with the facts needed to process it.

    Parameters
    ----------
    iq : ndarray, shape (num_channels, num_samples), complex64
        Baseband samples, one row per receive channel.  A 1-D array is taken
        as one channel.  Other complex or real float dtypes are converted.
    sample_rate_hz : float
        Sample rate in Hz (> 0).
    center_freq_hz : float
        RF centre frequency in Hz (>= 0).
    t0_s : float
        Time of the first sample in s, on the node's clock.
    node_id : str
        Which node captured it.
    seq : int
        Sequence number of the capture at that node (>= 0).
    frame : FrameConfig or None
        The waveform that was transmitted, when known.
    frame_offset : int
        Sample index at which the frame starts within ``iq`` (>= 0).
    metadata : dict
        Free-form extra facts (radio settings, gains, truth for simulated data).  Radios set
        ``metadata["host_utc"]`` (:data:`HOST_UTC`): the host clock's UTC time of the first sample, to the
        host clock's precision; ``t0_s`` is the node's own clock, which sensing uses.
    """

    iq: NDArray[np.complex64]
    sample_rate_hz: float
    center_freq_hz: float = 0.0
    t0_s: float = 0.0
    node_id: str = "node0"
    seq: int = 0
    frame: FrameConfig | None = None
    frame_offset: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        iq = np.asarray(self.iq)
        if iq.dtype.kind not in "cf":
            raise InputError(f"Capture.iq has dtype {iq.dtype}: allowed complex or real floating point "
                             "samples; convert with .astype(np.complex64)")
        if iq.ndim == 1:
            iq = iq[np.newaxis, :]
        if iq.ndim != 2 or iq.shape[0] < 1:
            raise InputError(f"Capture.iq has shape {iq.shape}: allowed (num_channels, num_samples); "
                             "stack channels as rows")
        object.__setattr__(self, "iq", np.ascontiguousarray(iq, dtype=np.complex64))
        for name in ("sample_rate_hz", "center_freq_hz", "t0_s"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise InputError(f"Capture.{name} = {value}: must be finite")
            object.__setattr__(self, name, value)
        if self.sample_rate_hz <= 0:
            raise InputError(f"Capture.sample_rate_hz = {self.sample_rate_hz} Hz: must be > 0 Hz")
        if self.center_freq_hz < 0:
            raise InputError(f"Capture.center_freq_hz = {self.center_freq_hz} Hz: must be >= 0 Hz")
        if self.seq < 0 or self.frame_offset < 0:
            raise InputError(f"Capture.seq = {self.seq}, frame_offset = {self.frame_offset}: both must be >= 0")

    def check_samples(self) -> bool:
        """Raise where a sample is NaN or infinite (naming the first); return whether some sample is nonzero.

        The one check of a capture's values where its samples are read: the sensing pipeline runs it on every
        capture, so a receiver (:func:`sdr_isac.stream.wire.decode` as a host calls it) need not read them a
        second time.  One pass over the samples in the common case (:func:`first_nonfinite`).  A capture
        from :meth:`checked_once` reads them only at its first call and returns the remembered result after.

        Raises
        ------
        NonFiniteSampleError
            Naming the channel, the sample and its value.
        """
        known = self.__dict__.get("_nonzero")
        if known is not None:
            return bool(known)
        parts = self.iq.reshape(-1).view(np.float32)               # C-contiguous complex64: no copy
        total = _plain_sum(parts)
        if not math.isfinite(total):
            bad = first_nonfinite(self.iq)
            if bad is not None:
                raise NonFiniteSampleError(
                    f"capture {self.node_id}/{self.seq} contains NaN or infinite samples: iq[{bad[0]}, {bad[1]}] = "
                    f"{self.iq[bad]}; allowed finite samples (a radio or file fault): drop the capture or re-record it")
        nonzero = total != 0.0 or bool(parts.any())
        if self.__dict__.get("_check_once"):
            object.__setattr__(self, "_nonzero", nonzero)    # a failed check is not remembered: it raises again
        return nonzero

    def checked_once(self) -> Capture:
        """This capture (the same samples, not copied) whose :meth:`check_samples` reads them once.

        Its first check reads the samples; a later one returns the remembered result without reading them (a
        failed check is not remembered: it raises again, with the same message).  The caller promises that
        nothing writes the samples while the returned capture is in use.

        Why a capture the caller asks for, and not a memo on every capture: the check's result stays true only
        while the samples do not change, and whether they can is known to whoever holds them, not to the
        capture (a read-only ``iq`` may view memory that someone else writes: a wire-decoded capture's ``iq``
        views a received ZeroMQ frame, whose buffer is writeable).  So the holder that knows (a host, of the
        message it received, which nothing writes; :func:`sdr_isac.fusion.engine.sense_capture`, of the
        capture its jobs only read) asks for this capture and passes it down: the recorder and every sensing
        job take the first check's result.  The memo is not a field: :func:`dataclasses.replace` (which may
        bring other samples) makes a capture that checks again; a pickled copy (a worker process) keeps it,
        with the same samples; :meth:`with_metadata` keeps it.

        Returns
        -------
        Capture
            ``self`` where it already checks once; else a new capture whose ``iq`` is the same array (shape
            (num_channels, num_samples), complex64), every field the same.

        Examples
        --------
        >>> import numpy as np
        >>> once = Capture(np.ones((1, 4), np.complex64), sample_rate_hz=1e6).checked_once()
        >>> once.check_samples(), once.check_samples()        # the second reads nothing
        (True, True)
        """
        if self.__dict__.get("_check_once"):
            return self
        once = copy.copy(self)                                  # shallow: no field re-validated, no sample copied
        object.__setattr__(once, "_check_once", True)
        return once

    def with_metadata(self, metadata: dict[str, Any]) -> Capture:
        """This capture with ``metadata`` instead of its own: the same samples (not copied), every other field
        the same, and where it comes from :meth:`checked_once`, its check too (remembered or still to come),
        which :func:`dataclasses.replace` would drop (the recorder takes a host's capture this way)."""
        out = copy.copy(self)
        object.__setattr__(out, "metadata", metadata)
        return out

    def with_fields(self, **changes: Any) -> Capture:
        """This capture with some fields other than ``iq`` changed (each checked as the constructor checks it):
        the same samples (not copied), and where it comes from :meth:`checked_once`, its check too (remembered
        or still to come), which :func:`dataclasses.replace` would drop.  A replayed capture, re-stamped with
        the replay's time and sequence, keeps the reader's check this way.

        Raises
        ------
        InputError
            ``iq`` or a name that is not a field among ``changes`` (``iq``: use :func:`dataclasses.replace`,
            which makes a capture that checks its new samples), or a changed field the constructor refuses.
        """
        names = {f.name for f in dataclasses.fields(self)} - {"iq"}
        wrong = sorted(set(changes) - names)
        if wrong:
            raise InputError(f"Capture.with_fields({', '.join(wrong)}=...): allowed the fields "
                             f"{', '.join(sorted(names))}; to change iq use dataclasses.replace (its samples are "
                             "checked again)")
        out = dataclasses.replace(self, **changes)             # validates every field; iq passes uncopied
        if out.iq is self.iq:
            for memo in ("_check_once", "_nonzero"):
                if memo in self.__dict__:
                    object.__setattr__(out, memo, self.__dict__[memo])
        return out

    @property
    def num_channels(self) -> int:
        """Receive channels (rows of ``iq``)."""
        return int(self.iq.shape[0])

    @property
    def num_samples(self) -> int:
        """Samples per channel."""
        return int(self.iq.shape[1])

    @property
    def duration_s(self) -> float:
        """Length of the capture in s."""
        return self.num_samples / self.sample_rate_hz


def _plain_sum(parts: NDArray[np.floating]) -> float:
    """The sum of a flat float array by plain additions (``einsum``: no pairwise blocks, no threads, no
    temporaries), overflow and NaN warnings silenced: finite only if every value is (a NaN propagates through
    additions; an infinity stays infinite or meets the opposite one and becomes NaN)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.einsum("i->", parts))


def first_nonfinite(values: NDArray[np.generic]) -> tuple[int, ...] | None:
    """The index of the first NaN or infinite value of an array, None when every value is finite.

    The finiteness test of every sample check in the package (the wire's receiver, the sensing pipeline, the
    recorder).  One pass and no temporaries in the common case: the plain sum of the values (the real and
    imaginary parts of a complex array read as one float array) is finite only if every value is.  A sum that
    is not finite (a bad value, or finite values whose sum overflows) is settled by the exact test, two
    reductions (NaN propagates through min and max, and an infinity is an extreme); only an array that fails
    it is searched for its first bad value.  Integer and boolean arrays are always finite.

    Parameters
    ----------
    values : ndarray
        Any shape; a C-contiguous array is read in place, another is copied.
    """
    arr = np.asarray(values)
    if arr.dtype.kind not in "fc" or arr.size == 0:
        return None
    parts = np.ascontiguousarray(arr).reshape(-1)
    if parts.dtype.kind == "c":
        parts = parts.view(arr.real.dtype)
    if math.isfinite(_plain_sum(parts)) or (math.isfinite(parts.min()) and math.isfinite(parts.max())):
        return None
    return tuple(int(i) for i in np.unravel_index(int(np.argmin(np.isfinite(arr))), arr.shape))
