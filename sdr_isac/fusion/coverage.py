"""Coverage radii of a node from its link budget (article §IV-B, §IV-C, Fig. 3).

A node's *sensing coverage* is the range out to which its monostatic echo of
a target is detected; its *communication coverage* the range out to which a
one-way link still supports the lowest modulation and coding scheme.  Both
come from :func:`sdr_isac.sensing.crb.snr_per_re_db` (the bistatic radar
equation, Willis in Skolnik's *Radar Handbook*, eq. 23.1):

- monostatic echo at range R: ``gamma(R) = gamma(1 m) - 40 log10(R / 1 m)``
  (dB per RE); detected while ``gamma(R) + 10 log10(N M) >= threshold``
  (the periodogram's processing gain over the frame's ``N M`` pilot REs), so
  ``R_s = 10 ** ((gamma(1 m) + 10 log10(N M) - threshold) / 40)`` m;
- one-way (Friis) link at range R: the radar equation with ``sigma = 4 pi``
  m² and ``R_rx = 1 m`` is exactly ``P_t G_t G_r (lambda / (4 pi R))**2``,
  so ``gamma(R) = gamma(1 m) - 20 log10(R / 1 m)`` and
  ``R_c = 10 ** ((gamma(1 m) - gamma_min) / 20)`` m.

Free-space propagation; ``loss_db`` holds every loss the equation leaves out
(implementation, body, penetration, a shadowing margin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sdr_isac.errors import InputError
from sdr_isac.sensing.crb import snr_per_re_db

__all__ = ["LinkBudget", "sensing_radius_m", "comm_radius_m", "one_way_snr_db", "echo_snr_db"]

_FRIIS_RCS_M2 = 4.0 * math.pi      # radar equation with this RCS and R_rx = 1 m is the one-way Friis link


@dataclass(frozen=True)
class LinkBudget:
    """What sets a link's per-RE SNR.

    Attributes
    ----------
    tx_power_dbm : float
        Mean transmit power, dBm.
    tx_gain_dbi, rx_gain_dbi : float
        Antenna gains, dBi.
    carrier_hz : float
        Carrier, Hz (> 0).
    subcarrier_spacing_hz : float
        Subcarrier spacing, Hz (> 0).
    num_subcarriers : int
        Used subcarriers K (1 ... fft_size).
    fft_size : int
        N_FFT; the noise bandwidth is ``fft_size * subcarrier_spacing_hz``.
    noise_figure_db : float
        Receiver noise figure, dB (>= 0).
    loss_db : float
        Losses the free-space equation leaves out, dB (>= 0).
    """

    tx_power_dbm: float
    tx_gain_dbi: float
    rx_gain_dbi: float
    carrier_hz: float
    subcarrier_spacing_hz: float
    num_subcarriers: int
    fft_size: int
    noise_figure_db: float = 7.0
    loss_db: float = 0.0

    def __post_init__(self) -> None:
        for key in ("tx_power_dbm", "tx_gain_dbi", "rx_gain_dbi"):
            if not math.isfinite(getattr(self, key)):
                raise InputError(f"LinkBudget.{key} = {getattr(self, key)!r}: allowed a finite number (dBm / dBi)")
        for key, unit in (("carrier_hz", "Hz"), ("subcarrier_spacing_hz", "Hz")):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"LinkBudget.{key} = {value!r} {unit}: allowed a finite number > 0")
        if not (isinstance(self.fft_size, int) and isinstance(self.num_subcarriers, int)
                and 1 <= self.num_subcarriers <= self.fft_size):
            raise InputError(f"LinkBudget.num_subcarriers = {self.num_subcarriers!r}, fft_size = {self.fft_size!r}: "
                             "allowed whole numbers with 1 <= num_subcarriers <= fft_size")
        for key in ("noise_figure_db", "loss_db"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"LinkBudget.{key} = {value!r} dB: allowed a finite number >= 0")

    def _snr(self, rcs_m2: float, range_tx_m: float, range_rx_m: float) -> float:
        return snr_per_re_db(self.tx_power_dbm, self.tx_gain_dbi, self.rx_gain_dbi, self.carrier_hz, rcs_m2,
                             range_tx_m, range_rx_m, self.noise_figure_db,
                             self.fft_size * self.subcarrier_spacing_hz, self.fft_size,
                             self.num_subcarriers) - self.loss_db


def echo_snr_db(budget: LinkBudget, rcs_m2: float, range_tx_m: float, range_rx_m: float) -> float:
    """Per-RE SNR (dB) of a target's echo: transmitter -> target (``range_tx_m``) -> receiver (``range_rx_m``)."""
    return budget._snr(rcs_m2, range_tx_m, range_rx_m)


def one_way_snr_db(budget: LinkBudget, range_m: float) -> float:
    """Per-RE SNR (dB) of a one-way (communication or direct-path) link of length ``range_m`` (Friis)."""
    return budget._snr(_FRIIS_RCS_M2, range_m, 1.0)


def sensing_radius_m(budget: LinkBudget, rcs_m2: float, num_symbols: int, detection_threshold_db: float = 13.0,
                     num_subcarriers: int | None = None) -> float:
    """Monostatic sensing radius, m: where the echo's SNR after the ``N M`` processing gain meets the threshold.

    Parameters
    ----------
    budget : LinkBudget
        The node's own transmitter and receiver.
    rcs_m2 : float
        Target RCS, m² (> 0).
    num_symbols : int
        Pilot symbols M per frame (>= 1).
    detection_threshold_db : float
        Post-processing SNR the detector needs, dB (13 dB: Pd ~ 0.9 at Pfa ~ 1e-6 on one cell).
    num_subcarriers : int, optional
        Pilot subcarriers N (default the budget's used subcarriers).
    """
    if not (isinstance(num_symbols, int) and num_symbols >= 1):
        raise InputError(f"num_symbols = {num_symbols!r}: allowed a whole number >= 1 of pilot symbols")
    n = budget.num_subcarriers if num_subcarriers is None else int(num_subcarriers)
    gain_db = 10.0 * math.log10(n * num_symbols)
    return float(10.0 ** ((echo_snr_db(budget, rcs_m2, 1.0, 1.0) + gain_db - detection_threshold_db) / 40.0))


def comm_radius_m(budget: LinkBudget, min_snr_db: float = -5.0) -> float:
    """Communication radius, m: where the one-way per-RE SNR falls to ``min_snr_db`` (the lowest MCS's need, dB)."""
    if not math.isfinite(min_snr_db):
        raise InputError(f"min_snr_db = {min_snr_db!r} dB: allowed a finite SNR (the lowest MCS needs about -5 dB)")
    return float(10.0 ** ((one_way_snr_db(budget, 1.0) - min_snr_db) / 20.0))
