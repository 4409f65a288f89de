"""The resource grid and its ownership map.

A :class:`ResourceGrid` holds the complex value of every resource element
(RE) of every port, and one ownership map shared by all ports: which signal
each RE belongs to.  An RE that a reference signal owns is reserved on every
port (other ports transmit zero there), so a receiver knows exactly which REs
carry which known symbols.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from sdr_isac.errors import ConfigError, InputError

__all__ = ["Signal", "ResourceGrid"]


class Signal(IntEnum):
    """Owner of a resource element."""

    EMPTY = 0
    DATA = 1
    PRS = 2
    DMRS = 3
    SRS = 4
    TRS = 5
    SSB_PSS = 6
    SSB_SSS = 7
    PBCH = 8
    PBCH_DMRS = 9
    SSB_GUARD = 10      # REs of an SS/PBCH block set to zero (TS 38.211 Table 7.4.3.1-1)

    @property
    def label(self) -> str:
        """Lower-case name, as used in configs and summaries."""
        return self.name.lower()


@dataclass(eq=False)
class ResourceGrid:
    """Values and owners of every RE of a frame.

    Attributes
    ----------
    values : ndarray, shape (num_ports, num_symbols, num_subcarriers), complex64
        RE values; subcarrier 0 is the lowest frequency.
    owner : ndarray, shape (num_symbols, num_subcarriers), uint8
        :class:`Signal` code of each RE, shared by all ports.
    """

    values: NDArray[np.complex64]
    owner: NDArray[np.uint8]

    @classmethod
    def empty(cls, num_ports: int, num_symbols: int, num_subcarriers: int) -> ResourceGrid:
        """An all-zero grid owned by nobody."""
        if min(num_ports, num_symbols, num_subcarriers) < 1:
            raise InputError(f"grid shape ({num_ports}, {num_symbols}, {num_subcarriers}): every "
                             "dimension must be >= 1")
        return cls(np.zeros((num_ports, num_symbols, num_subcarriers), dtype=np.complex64),
                   np.zeros((num_symbols, num_subcarriers), dtype=np.uint8))

    @property
    def num_ports(self) -> int:
        """Transmit ports."""
        return int(self.values.shape[0])

    @property
    def num_symbols(self) -> int:
        """OFDM symbols."""
        return int(self.values.shape[1])

    @property
    def num_subcarriers(self) -> int:
        """Occupied subcarriers."""
        return int(self.values.shape[2])

    def claim(self, signal: Signal, symbols: NDArray[np.int64], subcarriers: NDArray[np.int64]) -> None:
        """Mark REs ``(symbols[i], subcarriers[i])`` as owned by ``signal``.

        Raises
        ------
        ConfigError
            An RE is already owned by another signal; the message names both
            and the first clashing RE.
        """
        sym, sub = (a.reshape(-1) for a in np.broadcast_arrays(symbols, subcarriers))
        current = self.owner[sym, sub]
        taken = np.nonzero(current != Signal.EMPTY)[0]
        if taken.size:
            i = int(taken[0])
            other = Signal(int(current[i])).label
            raise ConfigError(
                f"frame.{signal.label} clashes with frame.{other} at symbol {int(sym[i])}, subcarrier {int(sub[i])}: "
                f"allowed only REs no other signal owns; move {signal.label} or {other} to other symbols or "
                "subcarriers", key=f"frame.{signal.label}")
        self.owner[sym, sub] = signal

    def mask(self, *signals: Signal) -> NDArray[np.bool_]:
        """REs owned by any of ``signals`` (all non-empty REs when none is given).

        Returns
        -------
        ndarray, shape (num_symbols, num_subcarriers), bool
        """
        if not signals:
            return self.owner != Signal.EMPTY
        return np.isin(self.owner, [int(s) for s in signals])

    def counts(self) -> dict[str, int]:
        """Number of REs owned by each signal (empty REs included), by label."""
        tally = np.bincount(self.owner.reshape(-1), minlength=len(Signal))
        return {s.label: int(tally[s]) for s in Signal}
