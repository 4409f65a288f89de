"""The array backend of the sensing batch path: numpy / scipy on the CPU, or CuPy on a CUDA GPU.

One seam: :func:`array_backend` returns the namespace a configuration asks for (``sensing.backend``),
once, and the batch functions of :mod:`sdr_isac.sensing.batch` take every array function from it --
``xp`` (``numpy`` or ``cupy``), ``fft`` (``scipy.fft`` or ``cupyx.scipy.fft``) and ``ndimage``
(``scipy.ndimage`` or ``cupyx.scipy.ndimage``) -- so the same code runs on either.  CuPy is imported
only when asked for; without it (or without a GPU) :class:`~sdr_isac.errors.SensingError` names the
extra to install.

Example
-------
>>> from sdr_isac.sensing.backend import array_backend
>>> be = array_backend("cpu")
>>> be.name, be.xp.__name__, be.on_gpu
('cpu', 'numpy', False)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft as sp_fft
from numpy.typing import NDArray
from scipy import ndimage

from sdr_isac.errors import SensingError
from sdr_isac.waveform import ofdm

__all__ = ["BACKENDS", "ArrayBackend", "array_backend", "fft_workers"]

#: Backends ``sensing.backend`` may name.
BACKENDS = ("cpu", "cupy")


@dataclass(frozen=True, eq=False)
class ArrayBackend:
    """The array namespace of one backend.

    Attributes
    ----------
    name : str
        ``cpu`` or ``cupy``.
    xp : module
        ``numpy`` or ``cupy``.
    fft : module
        ``scipy.fft`` or ``cupyx.scipy.fft`` (same signatures: ``fft(x, n, axis, norm)``).
    ndimage : module
        ``scipy.ndimage`` or ``cupyx.scipy.ndimage`` (``correlate1d``).
    fft_workers : int
        Threads per CPU transform (-1: every core; :func:`array_backend` resolves ``sensing.fft_workers``
        with :func:`fft_workers`); unused on the GPU.
    vectorised : bool
        The batch functions run their whole-batch array code (always on a GPU).  The CPU backend of
        :func:`array_backend` sets False: there a batch goes frame by frame through the single-frame
        functions (in place, CFAR decided by block bounds), which are faster on a CPU and give the same
        results; ``dataclasses.replace(backend, vectorised=True)`` runs the GPU's code on numpy (the tests do).
    """

    name: str
    xp: Any
    fft: Any
    ndimage: Any
    fft_workers: int = -1
    vectorised: bool = True

    @property
    def on_gpu(self) -> bool:
        """Whether arrays live on a GPU (a transfer is needed to reach them from the host)."""
        return self.name != "cpu"

    def fft_options(self) -> dict[str, Any]:
        """Keyword arguments for this backend's transforms (the CPU's thread count)."""
        return {"workers": self.fft_workers} if self.name == "cpu" else {}

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """``a`` as an array of this backend (a host -> device copy on the GPU; no copy on the CPU if it fits)."""
        return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a: Any) -> NDArray[Any]:
        """A numpy array of ``a`` (a device -> host copy on the GPU)."""
        return np.asarray(a) if self.name == "cpu" else self.xp.asnumpy(a)


def fft_workers(configured: int, size: int | None = None) -> int:
    """The ``workers`` argument of ``scipy.fft`` for ``sensing.fft_workers``: 0 -> the process's default
    (:data:`sdr_isac.waveform.ofdm.FFT_WORKERS`: every core, 1 in a host's worker processes), else itself.

    Given the transform's ``size`` (elements, all axes), 0 means one thread below
    :data:`sdr_isac.waveform.ofdm.THREADED_FFT_ELEMENTS` (starting threads costs more than they save there).
    """
    if isinstance(configured, bool) or not isinstance(configured, int | np.integer) or configured < 0:
        raise SensingError(f"sensing.fft_workers = {configured!r}: allowed an integer >= 0 (0: the process's "
                           "default, every core); set 1 inside process-pool workers")
    if configured == 0:
        return ofdm.FFT_WORKERS if size is None else ofdm.fft_threads(size)
    return int(configured)


def array_backend(name: str = "cpu", *, workers: int = 0) -> ArrayBackend:
    """The backend named ``name`` (``sensing.backend``), built once per (name, workers).

    Parameters
    ----------
    name : {"cpu", "cupy"}
    workers : int
        ``sensing.fft_workers`` (0: the process's default, :func:`fft_workers`), for the CPU's transforms.

    Raises
    ------
    SensingError
        An unknown name, or ``cupy`` without CuPy or without a usable GPU.
    """
    if name not in BACKENDS:
        raise SensingError(f"sensing.backend = {name!r}: allowed {' or '.join(BACKENDS)}; set backend = \"cpu\" "
                           "where there is no GPU")
    return _backend(name, fft_workers(workers))


@functools.lru_cache(maxsize=8)
def _backend(name: str, workers: int) -> ArrayBackend:
    if name == "cpu":
        return ArrayBackend("cpu", np, sp_fft, ndimage, workers, vectorised=False)
    try:
        import cupy
        import cupyx.scipy.fft as cp_fft
        import cupyx.scipy.ndimage as cp_ndimage
    except ImportError as err:
        raise SensingError("sensing.backend = 'cupy' needs CuPy: install the gpu extra (pip install "
                           "'sdr-isac[gpu]', i.e. cupy-cuda12x) or set backend = \"cpu\"") from err
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as err:  # noqa: BLE001 -- CUDA reports a missing driver with its own error types
        raise SensingError(f"sensing.backend = 'cupy': CuPy finds no CUDA device ({type(err).__name__}: {err}); "
                           "set backend = \"cpu\" on a machine without a GPU") from err
    if count < 1:
        raise SensingError("sensing.backend = 'cupy': no CUDA device; set backend = \"cpu\"")
    return ArrayBackend("cupy", cupy, cp_fft, cp_ndimage, workers, vectorised=True)
