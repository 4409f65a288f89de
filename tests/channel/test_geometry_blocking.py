"""The slab test of blockers against an independent oracle: points sampled along the segment inside the box."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sdr_isac.channel.geometry import segment_blocked, segments_blocked
from sdr_isac.config import BlockerConfig

COORD = st.floats(-100.0, 100.0, allow_nan=False, allow_infinity=False)


def _sampled(a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, margin: float) -> bool | None:
    """True if a sampled point of a-b is inside the box by ``margin``, False if none is within ``margin`` of it,
    None (undecided: grazing) otherwise."""
    t = np.linspace(0.0, 1.0, 4001)[:, None]
    pts = a + t * (b - a)
    inside = np.all((pts > lo + margin) & (pts < hi - margin), axis=1)
    near = np.all((pts > lo - margin) & (pts < hi + margin), axis=1)
    if inside.any():
        return True
    return None if near.any() else False


@settings(max_examples=300, deadline=None)
@given(a=st.tuples(COORD, COORD, COORD), b=st.tuples(COORD, COORD, COORD), c=st.tuples(COORD, COORD, COORD),
       size=st.tuples(st.floats(0.5, 60.0), st.floats(0.5, 60.0), st.floats(0.5, 60.0)))
def test_slab_test_matches_sampled_points(a, b, c, size) -> None:
    lo, hi = np.array(c), np.array(c) + np.array(size)
    box = BlockerConfig(min_m=tuple(lo), max_m=tuple(hi))
    want = _sampled(np.array(a), np.array(b), lo, hi, 0.1)
    if want is None:
        return
    assert segment_blocked(a, b, box) == want
    assert segments_blocked(a, np.array([b, b]), [box]).tolist() == [want, want]


def test_edges_zero_segments_and_many_boxes() -> None:
    box = BlockerConfig(min_m=(0.0, 0.0, 0.0), max_m=(1.0, 1.0, 1.0))
    far = BlockerConfig(min_m=(50.0, 50.0, 50.0), max_m=(51.0, 51.0, 51.0))
    assert segments_blocked((5.0, 5.0, 5.0), np.zeros((0, 3)), [box]).shape == (0,)
    assert segments_blocked((5.0, 5.0, 5.0), [[6.0, 6.0, 6.0]], []).tolist() == [False]     # no box
    assert segment_blocked((0.5, 0.5, 5.0), (0.5, 0.5, -5.0), box)             # axis-parallel through it
    assert not segment_blocked((2.0, 0.5, 5.0), (2.0, 0.5, -5.0), box)         # axis-parallel beside it
    assert segment_blocked((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), box)              # a point inside
    ends = np.array([[0.5, 0.5, -5.0], [2.0, 2.0, 2.0], [50.5, 50.5, 60.0]])
    assert segments_blocked((0.5, 0.5, 5.0), ends, [box, far]).tolist() == [True, False, False]
