"""The batch path: range-Doppler maps, CA-CFAR and the peak search of many frames at once, on the CPU or a GPU.

The functions take their arrays from one :class:`~sdr_isac.sensing.backend.ArrayBackend` (``sensing.backend``:
numpy / scipy, or CuPy), chosen once, and compute what the single-frame pipeline computes:

- :func:`batch_maps`: the power of :func:`sdr_isac.sensing.rdmap.range_doppler_map` for each frame (the same
  taper, zero padding and axes; equal to float32 rounding);
- :func:`batch_cfar`: the mask of :meth:`sdr_isac.sensing.cfar.CaCfarDetector.detect` for each frame (the same
  ring sums by ``ndimage.correlate1d`` in float64, the same exact multipliers per training count);
- :func:`batch_peaks`: :func:`sdr_isac.sensing.detection.find_peaks` for each frame (3 x 3 local maxima on the
  device; the few peaks are ordered on the host);
- :func:`sense_batch`: the three over the rows :func:`sdr_isac.sensing.pipeline.process` searches.

The refinement, SNR and CRB of each peak stay with :func:`sdr_isac.sensing.process` (a few per frame, CPU work).

Example
-------
>>> import numpy as np
>>> from sdr_isac.config import FrameConfig, SensingConfig
>>> from sdr_isac.sensing.batch import sense_batch
>>> cfg, frame = SensingConfig(), FrameConfig(numerology=1, num_rb=4, fft_size=128, num_slots=1)
>>> s, k = 14, frame.num_subcarriers
>>> l, n = np.arange(s)[:, None], np.arange(k)[None, :]
>>> h = np.exp(2j * np.pi * (0.25 * l - 0.125 * n)).astype(np.complex64)[None, None]  # (F=1, C=1, S, K)
>>> out = sense_batch(h, np.ones((s, k), bool), frame, cfg)
>>> out.power.shape, len(out.peaks[0])
((1, 96, 28), 1)
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sdr_isac.config import FrameConfig, SensingConfig
from sdr_isac.errors import SensingError
from sdr_isac.sensing.backend import ArrayBackend, array_backend
from sdr_isac.sensing.cfar import CaCfarDetector, _kernel
from sdr_isac.sensing.pipeline import cfar_detector, search_rows
from sdr_isac.sensing.rdmap import map_weights, range_doppler_map
from sdr_isac.waveform import ofdm

__all__ = ["BatchResult", "batch_maps", "batch_cfar", "batch_peaks", "sense_batch"]


@dataclass(frozen=True, eq=False)
class BatchResult:
    """What :func:`sense_batch` yields for F frames.

    Attributes
    ----------
    power : array, shape (F, R, D), float32
        The maps, on the backend's device.
    hits : array, shape (F, rows, D), bool
        CFAR detections over the first ``rows`` range bins, on the device.
    peaks : list of list of (int, int)
        Per frame: (range bin, Doppler bin) of the local maxima among the hits within the reportable range,
        strongest first (host lists).
    backend : ArrayBackend
    """

    power: Any
    hits: Any
    peaks: list[list[tuple[int, int]]]
    backend: ArrayBackend


def _backend_of(config: SensingConfig, backend: ArrayBackend | None) -> ArrayBackend:
    return backend if backend is not None else array_backend(config.backend, workers=config.fft_workers)


_DEVICE_LOCK = threading.Lock()
#: (backend name, id of the host array) -> (host array, device copy): constants sent to a device once
_DEVICE_CONSTANTS: dict[tuple[str, int], tuple[NDArray[Any], Any]] = {}


def _on_device(be: ArrayBackend, host: NDArray[Any]) -> Any:
    """``host`` on the backend's device; a read-only host array (a cached constant) is sent once."""
    if not be.on_gpu:
        return host
    if host.flags.writeable:
        return be.asarray(host)
    key = (be.name, id(host))
    with _DEVICE_LOCK:
        hit = _DEVICE_CONSTANTS.get(key)
        if hit is not None and hit[0] is host:
            return hit[1]
        device = be.asarray(host)
        _DEVICE_CONSTANTS[key] = (host, device)            # holds the host array: its id stays unique
        while len(_DEVICE_CONSTANTS) > 16:
            _DEVICE_CONSTANTS.pop(next(iter(_DEVICE_CONSTANTS)))
    return device


def batch_maps(h: Any, mask: NDArray[np.bool_], config: SensingConfig,
               backend: ArrayBackend | None = None) -> Any:
    """Range-Doppler power maps of F frames: :func:`~sdr_isac.sensing.rdmap.range_doppler_map`'s ``power`` each.

    Parameters
    ----------
    h : array, shape (F, C, S, K), complex64
        Each frame's channel information matrix, zero off ``mask`` (host or device array).
    mask : ndarray, shape (S, K), bool
        The REs used (the same for every frame).
    config : SensingConfig
        Windows, oversampling, ``backend`` and ``fft_workers``.
    backend : ArrayBackend, optional
        Default ``array_backend(config.backend)``.

    Returns
    -------
    array, shape (F, R, D), float32
        Power summed over the C channels, on the backend's device; R and D are the zero-padded lengths.
    """
    be = _backend_of(config, backend)
    xp = be.xp
    x = be.asarray(h)
    if x.ndim != 4 or x.shape[2:] != tuple(mask.shape):
        raise SensingError(f"h has shape {tuple(x.shape)}: allowed (frames, channels, symbols, subcarriers) with "
                           f"(symbols, subcarriers) = mask shape {tuple(mask.shape)}")
    if x.dtype != xp.complex64:
        x = x.astype(xp.complex64)
    if not be.vectorised:                   # the CPU: the single-frame map, in place, frame by frame
        workers = _workers_setting(be)
        cfg = config if config.fft_workers == workers else replace(config, fft_workers=workers)
        out = np.empty((x.shape[0], *_map_shape(mask, config)), dtype=np.float32)
        for f in range(x.shape[0]):
            out[f] = range_doppler_map(x[f], mask, 1.0, 1.0, 1.0, cfg).power     # axes unused here
        return out
    s, k = mask.shape
    n_range, n_doppler = config.map_shape(k, s)
    weights = _on_device(be, map_weights(mask, config, n_doppler)[0])      # (K, S)
    slow = x.transpose(0, 1, 3, 2) * weights                                # (F, C, K, S)
    opts = be.fft_options()
    # Doppler over symbols (zero padded to D), then range over subcarriers (zero padded to R), unnormalised
    cells = be.fft.fft(slow, n=n_doppler, axis=-1, overwrite_x=True, **opts)
    cells = be.fft.ifft(cells, n=n_range, axis=-2, norm="forward", overwrite_x=True, **opts)   # (F, C, R, D)
    power = cells.real ** 2
    power += cells.imag ** 2
    return power.sum(axis=1, dtype=xp.float32) if power.shape[1] > 1 else power[:, 0]


def _workers_setting(be: ArrayBackend) -> int:
    """``sensing.fft_workers`` of a backend's thread count: the process's default (-1 or
    :data:`sdr_isac.waveform.ofdm.FFT_WORKERS`, what ``fft_workers = 0`` gives) is 0, so that small transforms
    still run on one thread; another count is kept."""
    return 0 if be.fft_workers in (-1, ofdm.FFT_WORKERS) else be.fft_workers


def _map_shape(mask: NDArray[np.bool_], config: SensingConfig) -> tuple[int, int]:
    s, k = mask.shape
    return config.map_shape(k, s)


def batch_cfar(power: Any, detector: CaCfarDetector, backend: ArrayBackend | None = None) -> Any:
    """CA-CFAR masks of F maps: ``detector.detect(power[f]).mask`` for each f.

    Parameters
    ----------
    power : array, shape (F, R, D), float
        Maps (finite, >= 0) on the backend's device; the window must fit in (R, D).
    detector : CaCfarDetector
        Its pfa, guard, training, Doppler wrap, minimum training count and channel count.
    backend : ArrayBackend, optional
        Default the CPU.

    Returns
    -------
    array, shape (F, R, D), bool
    """
    if not isinstance(detector, CaCfarDetector):
        raise SensingError(f"detector is a {type(detector).__name__}: the batch path runs CA-CFAR only; set "
                           "sensing.cfar = 'ca' or use sensing.process per frame")
    be = backend if backend is not None else array_backend("cpu")
    xp = be.xp
    p = be.asarray(power)
    win_r, win_d = detector.window_shape
    if p.ndim != 3 or p.shape[1] < win_r or p.shape[2] < win_d:
        raise SensingError(f"power has shape {tuple(p.shape)}: allowed (frames, range, Doppler) with at least "
                           f"{win_r} x {win_d} cells per map (the CFAR window)")
    if p.size:
        low, high = float(p.min()), float(p.max())
        if not (math.isfinite(low) and math.isfinite(high)) or low < 0:
            raise SensingError(f"power spans {low!r} ... {high!r}: allowed finite values >= 0 (|X|**2 of a map)")
    if not be.vectorised:                   # the CPU: detect_mask decides only the cells that can pass
        mask = np.empty(p.shape, dtype=bool)
        for f in range(p.shape[0]):
            mask[f] = detector.detect_mask(p[f])
        return mask
    p = p.astype(xp.float64)
    gr, gd = detector.guard
    hr, hd = gr + detector.train[0], gd + detector.train[1]
    mode = "wrap" if detector.wrap_doppler else "constant"
    corr = be.ndimage.correlate1d

    def doppler(x: Any, offsets: list[int]) -> Any:
        return corr(x, xp.asarray(_kernel(hd, offsets)), axis=-1, mode=mode, cval=0.0)

    def range_(x: Any, offsets: list[int]) -> Any:
        return corr(x, xp.asarray(_kernel(hr, offsets)), axis=-2, mode="constant", cval=0.0)

    # the ring sum of CfarDetector._ring_sum: whole Doppler extent on the rows clear of the guard, the
    # Doppler wings on the rows inside it
    full = doppler(p, list(range(-hd, hd + 1)))
    wings = doppler(p, [*range(-hd, -gd), *range(gd + 1, hd + 1)])
    outer, inner = detector._ring_offsets(0)
    total = range_(full, outer) if outer else xp.zeros_like(full)
    if inner:
        total += range_(wings, inner)
    count, alpha = _count_and_alpha(detector, (int(p.shape[1]), int(p.shape[2])))
    # detect(): threshold = alpha * (total / count), in that order of operations
    with np.errstate(invalid="ignore", divide="ignore"):
        threshold = total / _on_device(be, count)
        threshold *= _on_device(be, alpha)
    return p > threshold


_COUNTS: dict[tuple[int, tuple[int, int]], tuple[CaCfarDetector, NDArray[np.float64], NDArray[np.float64]]] = {}


def _count_and_alpha(detector: CaCfarDetector,
                     shape: tuple[int, int]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Training cells per CUT (as float64) and their multiplier (NaN below ``min_training``), shape (R, D),
    read-only and kept per detector and shape (so a device keeps its copies)."""
    key = (id(detector), shape)
    with _DEVICE_LOCK:
        hit = _COUNTS.get(key)
    if hit is not None and hit[0] is detector:
        return hit[1], hit[2]
    count = detector._ring_count(shape, 0)
    alpha = detector._alpha_by_count()[count]
    count_f = count.astype(np.float64)
    count_f.flags.writeable = False
    alpha.flags.writeable = False
    with _DEVICE_LOCK:
        _COUNTS[key] = (detector, count_f, alpha)
        while len(_COUNTS) > 8:
            _COUNTS.pop(next(iter(_COUNTS)))
    return count_f, alpha


def batch_peaks(power: Any, hits: Any, max_peaks: int, wrap_range: bool = True,
                backend: ArrayBackend | None = None) -> list[list[tuple[int, int]]]:
    """:func:`~sdr_isac.sensing.detection.find_peaks` for each of F maps.

    Parameters
    ----------
    power : array, shape (F, R, D), float
    hits : array, shape (F, rows, D), bool
        CFAR detections over the first ``rows <= R`` range bins.
    max_peaks : int
        Most peaks per frame (>= 0).
    wrap_range : bool
        The range axis is circular (a whole map).
    backend : ArrayBackend, optional
        Default the CPU.

    Returns
    -------
    list of list of (int, int)
        Per frame, strongest first.
    """
    be = backend if backend is not None else array_backend("cpu")
    xp = be.xp
    p, m = be.asarray(power), be.asarray(hits)
    if p.ndim != 3 or m.ndim != 3 or m.shape[0] != p.shape[0] or m.shape[2] != p.shape[2] or m.shape[1] > p.shape[1]:
        raise SensingError(f"power {tuple(p.shape)} and hits {tuple(m.shape)}: allowed (F, R, D) and (F, rows, D) "
                           "with rows <= R")
    if isinstance(max_peaks, bool) or not isinstance(max_peaks, int | np.integer) or max_peaks < 0:
        raise SensingError(f"max_peaks = {max_peaks!r}: allowed an integer >= 0")
    n_f, n_r, n_d = p.shape
    # find_peaks over the batch: the hits' 8 neighbours gathered (range circular or clipped, Doppler circular)
    f, r, d = xp.nonzero(m)
    value = p[f, r, d]
    is_max = xp.ones(value.shape, dtype=bool)
    for dr in (-1, 0, 1):
        r_n = (r + dr) % n_r if wrap_range else xp.clip(r + dr, 0, n_r - 1)
        for dd in (-1, 0, 1):
            if dr or dd:
                is_max &= value >= p[f, r_n, (d + dd) % n_d]
    keep = xp.nonzero(is_max)[0]
    f, r, d, v = (be.to_host(a[keep]) for a in (f, r, d, value))
    out: list[list[tuple[int, int]]] = []
    bounds = np.searchsorted(f, np.arange(n_f + 1))                         # nonzero is in frame order
    for i in range(n_f):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        order = np.argsort(v[lo:hi])[::-1][:max_peaks] + lo                 # find_peaks' ordering, on its values
        out.append([(int(r[j]), int(d[j])) for j in order])
    return out


def sense_batch(h: Any, mask: NDArray[np.bool_], frame: FrameConfig, config: SensingConfig,
                backend: ArrayBackend | None = None) -> BatchResult:
    """Maps, CFAR and peaks of F frames of one waveform, over the rows :func:`~sdr_isac.sensing.process` searches.

    Parameters
    ----------
    h : array, shape (F, C, S, K), complex64
        Channel information matrices (host or device).
    mask : ndarray, shape (S, K), bool
    frame : FrameConfig
        The waveform (its subcarrier spacing sets the reportable range).
    config : SensingConfig
        ``cfar`` must be ``ca``.
    backend : ArrayBackend, optional
        Default ``array_backend(config.backend)``, chosen once here for all three steps.

    Returns
    -------
    BatchResult
    """
    be = _backend_of(config, backend)
    power = batch_maps(h, mask, config, be)
    _, reportable, rows = search_rows(config, frame)
    detector = cfar_detector(config, int(h.shape[1]), mask=np.asarray(mask, dtype=bool),
                             map_shape=(int(power.shape[1]), int(power.shape[2])))
    if not isinstance(detector, CaCfarDetector):
        raise SensingError(f"sensing.cfar = {config.cfar!r}: the batch path runs CA-CFAR only; set cfar = 'ca'")
    hits = batch_cfar(power[:, :rows], detector, be)
    peaks = batch_peaks(power, hits[:, :reportable], config.max_detections + 8, True, be)
    return BatchResult(power, hits, peaks, be)
