"""Tracks as the top view draws them: from a ``tracks`` message or a host's ``tracks.json``, through the wire.

Nothing here imports Qt and nothing parses tracks by itself: a live ``tracks/<host>`` message is decoded by
:func:`sdr_isac.stream.wire.decode_tracks`, and a ``tracks.json`` (written by ``sdr-isac host --out``, the demo
or ``sdr-isac core --out``: ``node_id``, ``seq``, ``t0_s`` and the wire's track objects) is put back into a
``tracks`` message and decoded by the same strict decoder, so a file is held to the rules of the wire
(``docs/wire-format.md``, ``tracks``).

>>> import numpy as np
>>> from sdr_isac.fusion.records import Handover, Track
>>> t = Track("a-1", [0.0, 1.0], np.zeros((2, 6)) + [[0, 0, 1, 0, 0, 0], [5, 0, 1, 0, 0, 0]],
...           np.stack([np.eye(6)] * 2), ("bs0", "bs1"), (Handover(1.0, "bs0", "bs1", "coverage"),), "confirmed")
>>> ts = wire.decode_tracks(wire.decode(wire.encode_tracks("host", 0, 1.0, [t], tail=8)))
>>> (view,) = track_views(ts)
>>> view.positions_m[:, 0].tolist(), view.owner, view.handovers[0][1].tolist()
([0.0, 5.0], 'bs1', [5.0, 0.0, 1.0])
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from sdr_isac.errors import InputError, WireFormatError
from sdr_isac.fusion.records import Handover, Track
from sdr_isac.stream import wire

__all__ = ["TrackView", "load_tracks", "track_views"]

_MAX_FILE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class TrackView:
    """One track for the top view.

    Attributes
    ----------
    track_id : str
    status : str
        ``tentative``, ``confirmed`` or ``deleted``.
    positions_m : ndarray, shape (M + 1, 3), float64
        The tail's positions (oldest first) and the latest one (the last row), m.
    t_s : ndarray, shape (M + 1,), float64
        Their times, s.
    owner : str
        The station that owns the track now ('' when none is named).
    handovers : tuple of (Handover, ndarray shape (3,) float64)
        Each handover with the position drawn for it: the track's position (tail or latest) nearest in
        time to the handover.
    coasting : bool
        The latest state was predicted, not measured (the scan missed the target); False where the track
        does not say (``Track.measured`` None).
    """

    track_id: str
    status: str
    positions_m: NDArray[np.float64]
    t_s: NDArray[np.float64]
    owner: str
    handovers: tuple[tuple[Handover, NDArray[np.float64]], ...]
    coasting: bool = False


def _view(track: Track, tail: tuple[NDArray[np.float64], NDArray[np.float64]] | None) -> TrackView:
    tail_t, tail_m = tail if tail is not None else (np.zeros(0), np.zeros((0, 3)))
    t = np.concatenate([tail_t, track.t_s[-1:]])
    xyz = np.concatenate([tail_m.reshape(-1, 3), track.states[-1:, :3]])
    handovers = tuple((h, xyz[int(np.argmin(np.abs(t - h.t_s)))].copy()) for h in track.handovers)
    coasting = track.measured is not None and not bool(track.measured[-1])
    return TrackView(track.track_id, track.status, xyz, t, track.stations[-1] if track.stations else "", handovers,
                     coasting)


def track_views(tracks: wire.TrackSet | Sequence[Track]) -> list[TrackView]:
    """The top view's tracks of a decoded ``tracks`` message (with its tails), or of Track records (their
    whole state history is drawn).

    Raises
    ------
    InputError
        ``tracks`` is neither a TrackSet nor a sequence of Track records.
    """
    if isinstance(tracks, wire.TrackSet):
        return [_view(t, tracks.tails.get(t.track_id)) for t in tracks.tracks]
    if isinstance(tracks, str | bytes) or not isinstance(tracks, Sequence) \
            or not all(isinstance(t, Track) for t in tracks):
        raise InputError(f"tracks = {type(tracks).__name__}: allowed a wire.TrackSet or a sequence of "
                         "records.Track")
    out = []
    for t in tracks:
        if t.num_states == 0:
            continue
        out.append(_view(t.latest(), (t.t_s[:-1], t.states[:-1, :3])))
    return out


def load_tracks(path: str | Path) -> wire.TrackSet:
    """A ``tracks.json`` (a MECS host's or the core's), checked and decoded as a ``tracks`` message would be.

    Raises
    ------
    WireFormatError
        The file cannot be read, is not JSON, or breaks a rule of the ``tracks`` message (naming the field).
    """
    p = Path(path)
    try:
        raw = p.read_bytes()[:_MAX_FILE_BYTES + 1]
    except OSError as err:
        raise WireFormatError(f"{p}: cannot read the tracks file ({err.strerror or err}); give the tracks.json "
                              "that sdr-isac host --out, sdr-isac demo or sdr-isac core --out writes") from err
    if len(raw) > _MAX_FILE_BYTES:
        raise WireFormatError(f"{p}: larger than {_MAX_FILE_BYTES} bytes: not a tracks.json")
    try:
        doc = json.loads(raw)
    except ValueError as err:
        raise WireFormatError(f"{p}: not JSON ({err}); give a host's tracks.json") from err
    if not isinstance(doc, dict) or not {"node_id", "seq", "t0_s", "tracks"} <= set(doc):
        raise WireFormatError(f"{p}: allowed an object with node_id, seq, t0_s and tracks (a host's tracks.json)")
    seq, t0_s = doc["seq"], doc["t0_s"]
    if t0_s is None:                                  # a host that never tracked: no tracks
        seq, t0_s = 0, 0.0
    try:
        frames = wire.encode("tracks", doc["node_id"], max(seq, 0) if isinstance(seq, int) else seq,
                             t0_s=t0_s, tracks=doc["tracks"])
        return wire.decode_tracks(wire.decode(frames))
    except WireFormatError as err:
        raise WireFormatError(f"{p}: {err}") from err
