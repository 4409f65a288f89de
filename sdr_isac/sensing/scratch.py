"""Reusable per-thread work arrays for the sensing hot path.

A fresh array of a megabyte or more is mapped anew by the allocator on most calls, and touching
it page-faults page by page (on some virtual machines that costs more than the arithmetic done
on it).  Intermediate arrays that never leave a function come from here instead: one array per
name and thread, reused while shape and dtype stay the same.  Never return one of them to a
caller: the next call overwrites it.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

__all__ = ["work_array"]

_LOCAL = threading.local()


def work_array(name: str, shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
    """An uninitialised array of ``shape`` and ``dtype``, the same one on every call with this name in this thread.

    Parameters
    ----------
    name : str
        Which buffer (one per use site; two live buffers need two names).
    shape : tuple of int
    dtype : numpy dtype

    Returns
    -------
    ndarray
        Contents left over from the previous use.
    """
    store: dict[str, NDArray[Any]] | None = getattr(_LOCAL, "store", None)
    if store is None:
        store = _LOCAL.store = {}
    buf = store.get(name)
    dt = np.dtype(dtype)
    if buf is None or buf.shape != shape or buf.dtype != dt:
        buf = store[name] = np.empty(shape, dtype=dt)
    return buf
