"""Shared pieces of the SigMF recording format: datatypes, names, JSON values.

Private to :mod:`sdr_isac.recording`; the public API is in
:mod:`sdr_isac.recording.sigmf_io`.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sdr_isac.errors import InputError, RecordingError

#: Version of the ``isac:`` and ``truth:`` extension namespaces this code writes.
SCHEMA_VERSION = 1
#: Version strings declared for the two namespaces in ``core:extensions``.
EXTENSION_VERSION = "1.0.0"
ISAC = "isac:"
TRUTH = "truth:"
META_SUFFIX = ".sigmf-meta"
DATA_SUFFIX = ".sigmf-data"
COLLECTION_SUFFIX = ".sigmf-collection"
#: Archive suffixes and the ``tarfile`` compression each means (SigMF archives are tar files).
ARCHIVE_SUFFIXES = {".sigmf": "", ".sigmf.gz": "gz", ".sigmf.xz": "xz"}


def archive_suffix(path: str | Path) -> str | None:
    """The archive suffix ``path`` ends with (``.sigmf``, ``.sigmf.gz``, ``.sigmf.xz``), or None."""
    name = Path(path).name.lower()
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    return None


def is_collection(path: str | Path) -> bool:
    """True if ``path`` names a SigMF collection file (``.sigmf-collection``)."""
    return Path(path).name.lower().endswith(COLLECTION_SUFFIX)


@dataclass(frozen=True)
class Datatype:
    """How one SigMF complex datatype lies on disk.

    Attributes
    ----------
    name : str
        SigMF ``core:datatype`` string.
    disk : numpy.dtype
        dtype of one stored element, with its byte order: a complex sample for
        float types, one component (I or Q) for integer types.
    is_int : bool
        True for fixed point: each sample is two ``disk`` integers (I, Q).
    scale : float
        Factor from stored integers (less ``offset``) to full scale [-1, 1]:
        ``2**-(bits - 1)`` for signed types (1/32768 for ci16, 1/128 for ci8),
        ``2 / (2**bits - 1)`` for unsigned ones (1/127.5 for cu8); 1.0 for
        floating point.
    offset : float
        The stored value of 0.0 for unsigned (offset binary) types,
        ``(2**bits - 1) / 2`` (127.5 for cu8, as RTL-SDR samples are read);
        0.0 otherwise.
    """

    name: str
    disk: np.dtype[Any]
    is_int: bool
    scale: float
    offset: float = 0.0

    @property
    def sample_size(self) -> int:
        """Bytes per complex sample of one channel."""
        return self.disk.itemsize * (2 if self.is_int else 1)


def _datatypes() -> dict[str, Datatype]:
    """Every complex SigMF datatype: ``c`` + ``f32 f64 i32 i16 i8 u32 u16 u8``, ``_le``/``_be`` above 8 bits."""
    table: dict[str, Datatype] = {}
    for kind, bits in (("f", 32), ("f", 64), ("i", 32), ("i", 16), ("i", 8), ("u", 32), ("u", 16), ("u", 8)):
        orders = (("", "|"),) if bits == 8 else (("_le", "<"), ("_be", ">"))
        for suffix, order in orders:
            name = f"c{kind}{bits}{suffix}"
            if kind == "f":
                table[name] = Datatype(name, np.dtype(f"{order}c{bits // 4}"), False, 1.0)
            elif kind == "i":
                table[name] = Datatype(name, np.dtype(f"{order}i{bits // 8}"), True, 2.0 ** -(bits - 1))
            else:
                half = (2.0**bits - 1.0) / 2.0
                table[name] = Datatype(name, np.dtype(f"{order}u{bits // 8}"), True, 1.0 / half, half)
    return table


#: The complex datatypes sdr_isac reads and writes (every complex type of SigMF 1.2).
DATATYPES: dict[str, Datatype] = _datatypes()
_ALIASES = {"ci8_le": "ci8", "ci8_be": "ci8", "cu8_le": "cu8", "cu8_be": "cu8"}
_REAL = re.compile(r"r(f32|f64|i32|i16|u32|u16|i8|u8)(_le|_be)?")


def allowed_datatypes() -> str:
    """The supported datatypes as a readable list."""
    names = list(DATATYPES)
    return ", ".join(names[:-1]) + f" or {names[-1]}"


def datatype_info(name: Any, *, where: str, error: type[Exception] = RecordingError) -> Datatype:
    """Look up a datatype or raise ``error`` naming ``where`` and what is allowed.

    The message never suggests changing ``core:datatype`` to make a file open: the datatype describes the
    bytes as they are, and another label would misread them.
    """
    key = name.lower() if isinstance(name, str) else name
    key = _ALIASES.get(key, key)
    if key in DATATYPES:
        return DATATYPES[key]
    if isinstance(key, str) and _REAL.fullmatch(key):
        raise error(f"{where}core:datatype = {name!r}: real-valued samples; allowed complex (I/Q) samples: "
                    f"{allowed_datatypes()}; sdr_isac senses complex baseband, so convert the real signal to I/Q "
                    "(a Hilbert transform or a digital down-conversion) and write it as a new recording")
    raise error(f"{where}core:datatype = {name!r}: not a SigMF complex datatype; allowed "
                f"{allowed_datatypes()}; if the file was written by a program that calls its format otherwise, "
                "convert the samples (e.g. with numpy) into one of these and write a new recording")


def encode(iq: NDArray[np.complex64], dt: Datatype) -> NDArray[Any]:
    """Samples ``(C, n)`` to the on-disk array, interleaved per sample (SigMF multichannel).

    Parameters
    ----------
    iq : ndarray, shape (num_channels, n), complex64
        Samples, full scale +-1.0 for integer datatypes.
    dt : Datatype
        Target datatype.

    Returns
    -------
    ndarray
        shape (n, num_channels) of ``dt.disk`` for float types, or
        (n, num_channels, 2) integers (I, Q) for fixed point; C-contiguous, so
        ``tobytes()`` is the SigMF byte order.
    """
    if not dt.is_int:
        return np.ascontiguousarray(iq.T, dtype=dt.disk)
    parts = np.stack([iq.real.T, iq.imag.T], axis=-1).astype(np.float64) * (1.0 / dt.scale) + dt.offset
    info = np.iinfo(dt.disk)
    return np.clip(np.rint(parts), info.min, info.max).astype(dt.disk)


def decode(raw: NDArray[Any], dt: Datatype) -> NDArray[np.complex64]:
    """On-disk samples to complex64 ``(C, n)``, scaling integers by ``dt.scale``.

    Parameters
    ----------
    raw : ndarray
        shape (n, C) (float types) or (n, C, 2) (integer types), as stored.
    dt : Datatype
        The stored datatype.

    Returns
    -------
    ndarray, shape (C, n), complex64
        C-contiguous: a new array, or where the stored layout already is this one (``cf32`` in the machine's
        byte order, one channel) a view of ``raw`` (read-only where ``raw`` is: the reader's file map).
    """
    if not dt.is_int:
        return np.ascontiguousarray(raw.T, dtype=np.complex64)
    if dt.disk.itemsize == 4:                     # 32-bit integers: float32 would round them before scaling
        wide = (raw.astype(np.float64) - dt.offset) * dt.scale
        return np.ascontiguousarray((wide[..., 0] + 1j * wide[..., 1]).T, dtype=np.complex64)
    out = np.empty(raw.shape[1::-1], dtype=np.complex64)
    out.real = raw[..., 0].T                      # numpy converts the byte order and the integer type
    out.imag = raw[..., 1].T
    if dt.offset:
        out -= np.complex64(dt.offset * (1 + 1j))
    out *= np.float32(dt.scale)
    return out


def file_names(path: str | Path) -> tuple[Path, Path]:
    """``(meta_path, data_path)`` for ``path`` given with or without a SigMF suffix."""
    p = Path(path)
    if p.name.endswith(META_SUFFIX) or p.name.endswith(DATA_SUFFIX):
        p = p.with_suffix("")
    return p.with_name(p.name + META_SUFFIX), p.with_name(p.name + DATA_SUFFIX)


def sigmf() -> ModuleType:
    """The ``sigmf`` package, imported on first use (it takes ~0.2 s to import)."""
    try:
        return importlib.import_module("sigmf")
    except ImportError as err:
        raise RecordingError("the 'sigmf' package is needed to read and write recordings and is not "
                             "installed; install it with 'pip install sigmf'") from err


def drop_none(value: Any) -> Any:
    """``value`` without the None entries of its objects, at every depth (None means the field's default)."""
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_none(v) for v in value]
    return value


def to_json(value: Any, field: str) -> Any:
    """A JSON-ready copy of ``value``: numpy scalars and arrays, tuples and dataclasses converted.

    Raises
    ------
    RecordingError
        ``value`` holds something JSON cannot carry (complex numbers,
        arbitrary objects, NaN or infinite floats, non-string keys); the
        message names ``field`` and the offending part.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise RecordingError(f"{field} = {value}: allowed finite numbers (JSON has no NaN or infinity); "
                                 "replace it with None or a finite value")
        return float(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(dataclasses.asdict(value), field)
    if isinstance(value, np.ndarray):
        return to_json(value.tolist(), field)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise RecordingError(f"{field} has key {k!r} of type {type(k).__name__}: allowed string keys; "
                                     "convert the key with str()")
            out[k] = to_json(v, f"{field}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [to_json(v, f"{field}[{i}]") for i, v in enumerate(value)]
    raise RecordingError(f"{field} = {value!r} of type {type(value).__name__}: allowed JSON values (None, bool, "
                         "int, float, str, lists, dicts with string keys, numpy scalars and real arrays, "
                         "dataclasses); convert it or leave it out")


def check_int(name: str, value: Any, low: int) -> int:
    """``value`` as an int >= ``low``, else :class:`InputError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InputError(f"{name} = {value!r}: allowed an integer >= {low}; fix the argument")
    return int(value)
