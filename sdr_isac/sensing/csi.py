"""Channel information matrix H = Y / X on the resource elements whose transmitted value is known.

A monostatic node knows every RE it sent (data included); a bistatic or
passive receiver knows only the reference signals.  Dividing by X scales the
noise by 1/|X|**2: with QAM data (16/64/256-QAM: 2.8/4.3/5.4 dB mean loss
against constant-modulus symbols) the noise of H is no longer white, while
the CRB variances assume the mean SNR per RE of H.  A detection's ``snr_db``
is that SNR of H, the echo's SNR per RE less that loss, and its variances are
the bounds at it (they match the estimates' errors; the bound at the echo's
own SNR per RE would claim some 1.9x too small a variance with 16-QAM).  With several transmit
ports the receiver sees their sum, so X is the sum over ports (co-located
ports, one echo channel), and an RE is used where that sum is not zero.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sdr_isac.errors import SensingError
from sdr_isac.waveform import IsacFrame, Signal

__all__ = ["ChannelEstimate", "channel_matrix", "known_symbols", "known_reference"]


@dataclass(frozen=True, eq=False)
class ChannelEstimate:
    """Channel information matrix.

    Attributes
    ----------
    h : ndarray, shape (C, S, K), complex64
        Y / X on the used REs, 0 elsewhere.
    mask : ndarray, shape (S, K), bool
        The used REs.
    """

    h: NDArray[np.complex64]
    mask: NDArray[np.bool_]

    @property
    def num_used(self) -> int:
        """REs used."""
        return int(np.count_nonzero(self.mask))


def known_symbols(frame: IsacFrame, signals: tuple[str, ...] = ()) -> tuple[NDArray[np.complex64], NDArray[np.bool_]]:
    """Transmitted values (summed over ports) and the mask of REs a receiver knows.

    Parameters
    ----------
    frame : IsacFrame
    signals : tuple of str
        Signals to use; empty: every non-empty RE.

    Returns
    -------
    x : ndarray, shape (S, K), complex64
    mask : ndarray, shape (S, K), bool
    """
    x, mask, _ = known_reference(frame, tuple(signals))
    return x.copy(), mask.copy()


#: per frame and choice of signals: (x, mask, 1 / x on the mask), computed once (a frame is never changed)
_KNOWN: weakref.WeakKeyDictionary[IsacFrame, dict[tuple[str, ...], tuple[NDArray[np.complex64], NDArray[np.bool_],
                                                                          NDArray[np.complex64]]]] = \
    weakref.WeakKeyDictionary()


def known_reference(frame: IsacFrame, signals: tuple[str, ...] = ()) -> tuple[NDArray[np.complex64], NDArray[np.bool_],
                                                                              NDArray[np.complex64]]:
    """:func:`known_symbols` and the reciprocal ``1 / x`` on the mask (0 elsewhere), cached per frame.

    The arrays are shared between calls and read-only.

    Returns
    -------
    x : ndarray, shape (S, K), complex64
    mask : ndarray, shape (S, K), bool
    inverse : ndarray, shape (S, K), complex64
    """
    per_frame = _KNOWN.setdefault(frame, {})
    known = per_frame.get(signals)
    if known is None:
        chosen = tuple(Signal[s.upper()] for s in signals)
        x = np.asarray(frame.grid.values.sum(axis=0), dtype=np.complex64)
        mask = frame.grid.mask(*chosen) & (np.abs(x) > 0)
        inverse = np.zeros(x.shape, dtype=np.complex64)
        np.divide(1, x, out=inverse, where=mask)
        for a in (x, mask, inverse):
            a.flags.writeable = False
        known = per_frame[signals] = (x, mask, inverse)
    return known


def channel_matrix(rx_grid: NDArray[np.complexfloating], x: NDArray[np.complexfloating],
                   mask: NDArray[np.bool_]) -> ChannelEstimate:
    """H = Y / X on ``mask``.

    Parameters
    ----------
    rx_grid : ndarray, shape (C, S, K)
        Received grid.
    x : ndarray, shape (S, K)
        Transmitted values.
    mask : ndarray, shape (S, K), bool
        REs to use (x must be non-zero there).
    """
    if rx_grid.ndim != 3 or rx_grid.shape[1:] != x.shape or x.shape != mask.shape:
        raise SensingError(f"received grid {rx_grid.shape} and transmitted grid {x.shape} / mask {mask.shape} "
                           "disagree: allowed (C, S, K) with (S, K); demodulate with the frame that was sent")
    if not mask.any():
        raise SensingError("no known RE to estimate the channel on: choose signals the frame carries")
    safe = np.where(mask, x, 1.0)
    h = np.where(mask[None], rx_grid / safe[None], 0).astype(np.complex64)
    return ChannelEstimate(h, mask)
