"""Physical constants and unit helpers (SI units throughout).

Names carry their unit: ``_hz``, ``_s``, ``_m``, ``_mps``, ``_db``, ``_dbm``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "SPEED_OF_LIGHT_MPS",
    "BOLTZMANN_J_PER_K",
    "REFERENCE_TEMPERATURE_K",
    "db_to_linear",
    "linear_to_db",
    "db_to_amplitude",
    "amplitude_to_db",
    "dbm_to_watt",
    "watt_to_dbm",
    "thermal_noise_dbm",
    "wavelength_m",
]

#: Speed of light in vacuum, m/s (exact, SI definition).
SPEED_OF_LIGHT_MPS = 299_792_458.0
#: Boltzmann constant, J/K (exact, SI definition).
BOLTZMANN_J_PER_K = 1.380649e-23
#: Reference temperature for noise figures, K (IEEE standard 290 K).
REFERENCE_TEMPERATURE_K = 290.0


def db_to_linear(value_db: ArrayLike) -> NDArray[np.float64] | float:
    """Power ratio from decibels: ``10 ** (value_db / 10)``.

    >>> db_to_linear(20.0)
    100.0
    """
    out = np.power(10.0, np.asarray(value_db, dtype=float) / 10.0)
    return float(out) if out.ndim == 0 else out


def linear_to_db(value: ArrayLike) -> NDArray[np.float64] | float:
    """Decibels from a power ratio: ``10 log10(value)``; 0 gives ``-inf``.

    >>> linear_to_db(1000.0)
    30.0
    """
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(np.asarray(value, dtype=float))
    return float(out) if out.ndim == 0 else out


def db_to_amplitude(value_db: ArrayLike) -> NDArray[np.float64] | float:
    """Amplitude ratio from decibels: ``10 ** (value_db / 20)``.

    >>> db_to_amplitude(20.0)
    10.0
    """
    out = np.power(10.0, np.asarray(value_db, dtype=float) / 20.0)
    return float(out) if out.ndim == 0 else out


def amplitude_to_db(value: ArrayLike) -> NDArray[np.float64] | float:
    """Decibels from an amplitude ratio: ``20 log10(|value|)``.

    >>> amplitude_to_db(10.0)
    20.0
    """
    with np.errstate(divide="ignore"):
        out = 20.0 * np.log10(np.abs(np.asarray(value)))
    return float(out) if out.ndim == 0 else out


def dbm_to_watt(power_dbm: ArrayLike) -> NDArray[np.float64] | float:
    """Power in W from dBm.

    >>> dbm_to_watt(30.0)
    1.0
    """
    out = np.power(10.0, (np.asarray(power_dbm, dtype=float) - 30.0) / 10.0)
    return float(out) if out.ndim == 0 else out


def watt_to_dbm(power_w: ArrayLike) -> NDArray[np.float64] | float:
    """Power in dBm from W; 0 W gives ``-inf``.

    >>> watt_to_dbm(1.0)
    30.0
    """
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(np.asarray(power_w, dtype=float)) + 30.0
    return float(out) if out.ndim == 0 else out


def thermal_noise_dbm(bandwidth_hz: float, noise_figure_db: float = 0.0) -> float:
    """Thermal noise power ``k T0 B F`` in dBm at T0 = 290 K.

    >>> round(thermal_noise_dbm(1.0), 2)
    -173.98
    """
    power_w = BOLTZMANN_J_PER_K * REFERENCE_TEMPERATURE_K * bandwidth_hz
    return float(watt_to_dbm(power_w)) + noise_figure_db


def wavelength_m(carrier_hz: float) -> float:
    """Free-space wavelength ``c / f`` in m.

    >>> round(wavelength_m(24e9) * 1e3, 3)
    12.491
    """
    return SPEED_OF_LIGHT_MPS / carrier_hz
