"""The finiteness check of wire arrays, done once per end by two reductions, rejects exactly what
``numpy.isfinite`` rejects (the independent oracle), names the first bad element, and lets every finite
value through (extremes, subnormals, signed zeros), for every float and complex wire dtype and for
strided input to ``encode``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sdr_isac.errors import WireFormatError
from sdr_isac.stream import wire

FLOAT_DTYPES = ["float32", "float64", "complex64", "complex128"]


def _frames(arr: np.ndarray) -> list[bytes]:
    """A message carrying ``arr``'s bytes without going through encode's own check (the receiver's view)."""
    clean = np.zeros(arr.shape, arr.dtype)
    frames = [bytes(f) for f in wire.encode("tracks", "n", 0, tracks=[], arrays=[clean])]
    frames[2] = np.ascontiguousarray(arr).tobytes()
    return frames


def _first_bad(arr: np.ndarray) -> list[int]:
    flat = np.flatnonzero(~np.isfinite(arr))
    return [int(i) for i in np.unravel_index(int(flat[0]), arr.shape)]


special = st.sampled_from([np.nan, np.inf, -np.inf, -np.nan])
values = st.floats(allow_nan=True, allow_infinity=True, width=32) | special \
    | st.sampled_from([0.0, -0.0, 1e-45, -1e-45, 3.4028235e38, -3.4028235e38])


@settings(max_examples=200, deadline=None)
@given(dtype=st.sampled_from(FLOAT_DTYPES),
       arr_shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
       data=st.data())
def test_check_matches_isfinite(dtype: str, arr_shape: tuple[int, ...], data: st.DataObject) -> None:
    real = np.dtype(dtype).kind == "f"
    parts = data.draw(hnp.arrays(np.float64, arr_shape if real else (*arr_shape, 2), elements=values))
    if real:
        arr = parts.astype(dtype)
    else:                                     # set the parts one by one (nan * 1j would mix them)
        arr = np.empty(arr_shape, dtype)
        arr.real, arr.imag = parts[..., 0], parts[..., 1]
    finite = bool(np.isfinite(arr).all())
    frames = _frames(arr)
    if finite:
        msg = wire.decode(frames)
        np.testing.assert_array_equal(msg.arrays[0], arr)
        wire.encode("tracks", "n", 0, tracks=[], arrays=[arr])
        wire.encode("tracks", "n", 0, tracks=[], arrays=[arr.T])        # strided input
    else:
        where = _first_bad(arr)
        with pytest.raises(WireFormatError, match=rf"^arrays\[0\]\{where}".replace(" ", r"\s")):
            wire.decode(frames)
        with pytest.raises(WireFormatError, match=r"allowed finite values; replace NaN"):
            wire.encode("tracks", "n", 0, tracks=[], arrays=[arr])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 1, 2**18 - 1])
def test_one_bad_value_in_a_4_mib_capture(dtype: str, bad: float, where: int) -> None:
    n = 2**22 // np.dtype(dtype).itemsize
    arr = np.random.default_rng(where).standard_normal(n).astype(dtype)
    if np.dtype(dtype).kind == "c":
        arr.imag[where] = bad                 # only the imaginary part: the real view must see it
    else:
        arr[where] = bad
    with pytest.raises(WireFormatError, match=rf"^arrays\[0\]\[{where}\] = .*allowed finite values"):
        wire.decode(_frames(arr))
    strided = np.repeat(arr, 2)[::2]          # a non-contiguous array reaches encode's check too
    with pytest.raises(WireFormatError, match=rf"^arrays\[0\]\[{where}\] = "):
        wire.encode("tracks", "n", 0, tracks=[], arrays=[strided])


def test_integer_and_empty_arrays_pass() -> None:
    for arr in (np.array([np.iinfo(np.int32).max, np.iinfo(np.int32).min], np.int32), np.zeros((0, 3), np.float32),
                np.zeros(0, np.complex64)):
        msg = wire.decode(_frames(arr))
        np.testing.assert_array_equal(msg.arrays[0], arr)
