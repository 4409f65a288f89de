"""OFDM modulation and demodulation with per-symbol cyclic prefixes, TS 38.211 §5.3.1.

Subcarrier k = 0 ... K - 1 of the grid sits at baseband frequency
(k - K/2) Delta f, so subcarrier K/2 is at DC (NR has no DC null; §5.3.1 with
k_0 = 0).  Transforms are unitary (``norm="ortho"``): a symbol's energy is the
same on the grid and in time, so the mean power of a time sample is
(occupied / N_FFT) times the mean RE power.

The upconversion of §5.4, which gives each symbol its own phase reference
(``exp(j 2 pi f0 (t - t_start,l - N_CP,l T_c))``), is not applied: a node's
own echoes (monostatic) and links between this toolkit's radios, whose LOs run
on, need none.  A capture of a standard gNB carries it as a phase per symbol:
code that reads such captures across symbols (:func:`sdr_isac.waveform.ssb.cell_search`
does) must not assume one phase for all of them.  Reference-signal sequences
are indexed from grid subcarrier 0, i.e. point A at the grid's edge
(N_grid^start = 0).
"""

from __future__ import annotations

import os
import threading

import numpy as np
import scipy.fft as sp_fft
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError

__all__ = ["FFT_WORKERS", "THREADED_FFT_ELEMENTS", "OfdmModulator", "fft_threads"]

#: Threads that scipy.fft may use in the hot paths.
FFT_WORKERS = max(1, os.cpu_count() or 1)

#: Transforms of fewer elements (all axes) than this run on one thread: scipy.fft starts its threads on every
#: call, which costs more than the threads save on small transforms (measured on 2 cores: a 576 x 56 map's
#: transforms 1.5 to 2x faster on one thread, a 2048 x 224 one about 1.5x slower)
THREADED_FFT_ELEMENTS = 2**17


def fft_threads(size: int, workers: int | None = None) -> int:
    """The ``workers`` argument of ``scipy.fft`` for a transform of ``size`` elements in all.

    ``workers``: the threads allowed (default :data:`FFT_WORKERS`; -1 every core); one below
    :data:`THREADED_FFT_ELEMENTS`.
    """
    allowed = FFT_WORKERS if workers is None else workers
    return 1 if size < THREADED_FFT_ELEMENTS else allowed


class OfdmModulator:
    """Grid <-> time samples for one frame layout.

    Parameters
    ----------
    num_subcarriers : int
        K occupied subcarriers (even).
    fft_size : int
        N_FFT >= K.
    cp_lengths : array_like of int, shape (S,)
        Cyclic prefix of each symbol in samples, each 0 ... N_FFT - 1.
    """

    def __init__(self, num_subcarriers: int, fft_size: int, cp_lengths: ArrayLike):
        cp = np.asarray(cp_lengths, dtype=np.int64).reshape(-1)
        if num_subcarriers < 2 or num_subcarriers % 2 or fft_size < num_subcarriers:
            raise InputError(f"(num_subcarriers, fft_size) = ({num_subcarriers}, {fft_size}): allowed an even "
                             "number of subcarriers <= fft_size")
        if cp.size == 0 or cp.min() < 0 or cp.max() >= fft_size:
            raise InputError(f"cp_lengths span {cp.min() if cp.size else '-'} ... {cp.max() if cp.size else '-'} "
                             f"samples: allowed 0 ... {fft_size - 1} (shorter than the useful symbol), at least one")
        self.num_subcarriers = num_subcarriers
        self.fft_size = fft_size
        self.cp_lengths = cp
        self.num_symbols = int(cp.size)
        lengths = cp + fft_size
        self.symbol_starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
        self.num_samples = int(lengths.sum())
        # runs of equal CP: each run is a regular (symbols, cp + N) block in time
        edges = np.nonzero(np.diff(cp))[0] + 1
        firsts = np.concatenate(([0], edges)).astype(int)
        lasts = np.concatenate((edges, [cp.size])).astype(int)
        self._runs = [(a, b, int(cp[a]), int(self.symbol_starts[a])) for a, b in zip(firsts, lasts)]
        self._half = num_subcarriers // 2
        self._local = threading.local()     # per-thread work buffer, reused across calls

    def _work(self, rows: int) -> NDArray[np.complex64]:
        """A (rows, S, N_FFT) complex64 scratch array, reused (fresh allocations page-fault on every call)."""
        buf = getattr(self._local, "buf", None)
        if buf is None or buf.shape[0] != rows:
            buf = np.empty((rows, self.num_symbols, self.fft_size), dtype=np.complex64)
            self._local.buf = buf
        return buf

    # ---- grid -> time ----------------------------------------------------------
    def modulate(self, grid: NDArray[np.complexfloating]) -> NDArray[np.complex64]:
        """Time samples of a grid.

        Parameters
        ----------
        grid : ndarray, shape (P, S, K) or (S, K), complex
            RE values per port.

        Returns
        -------
        ndarray, shape (P, num_samples), complex64
        """
        g = np.asarray(grid)
        if g.ndim == 2:
            g = g[np.newaxis]
        expected = (self.num_symbols, self.num_subcarriers)
        if g.ndim != 3 or g.shape[1:] != expected:
            raise InputError(f"grid has shape {g.shape}: allowed (ports, {expected[0]}, {expected[1]}) "
                             "(ports, symbols, subcarriers)")
        ports, n, half = g.shape[0], self.fft_size, self._half
        buf = self._work(ports)
        buf[..., :half] = g[..., half:]
        buf[..., half: n - half] = 0
        buf[..., n - half:] = g[..., :half]
        td = sp_fft.ifft(buf, axis=-1, norm="ortho", workers=fft_threads(buf.size), overwrite_x=True)
        out = np.empty((ports, self.num_samples), dtype=np.complex64)
        for first, last, cp, start in self._runs:
            block = out[:, start: start + (last - first) * (cp + n)].reshape(ports, last - first, cp + n)
            block[..., cp:] = td[:, first:last]
            block[..., :cp] = td[:, first:last, n - cp:]
        return out

    # ---- time -> grid ----------------------------------------------------------
    def demodulate(self, samples: ArrayLike, offset: int = 0) -> NDArray[np.complex64]:
        """Grid from time samples: CP removal, FFT, subcarrier extraction.

        Parameters
        ----------
        samples : array_like, shape (C, L) or (L,), complex
            Received samples per channel.
        offset : int
            Index of the frame's first sample (>= 0); the frame must fit:
            offset + num_samples <= L.

        Returns
        -------
        ndarray, shape (C, S, K), complex64
        """
        x = np.asarray(samples)
        if x.ndim == 1:
            x = x[np.newaxis]
        if x.ndim != 2 or x.dtype.kind not in "cf":
            raise InputError(f"samples has shape {x.shape} and dtype {x.dtype}: allowed (channels, samples) "
                             "complex")
        if offset < 0 or offset + self.num_samples > x.shape[1]:
            raise InputError(f"offset = {offset} samples with {x.shape[1]} samples: the frame needs "
                             f"{self.num_samples} samples from the offset; allowed offset 0 ... "
                             f"{x.shape[1] - self.num_samples}")
        n, half = self.fft_size, self._half
        useful = self._work(x.shape[0])
        for first, last, cp, start in self._runs:
            begin = offset + start
            block = x[:, begin: begin + (last - first) * (cp + n)].reshape(x.shape[0], last - first, cp + n)
            useful[:, first:last] = block[..., cp:]
        fd = sp_fft.fft(useful, axis=-1, norm="ortho", workers=fft_threads(useful.size), overwrite_x=True)
        return np.concatenate((fd[..., n - half:], fd[..., :half]), axis=-1)
