"""The one record the twin adds: a :class:`~sdr_isac.sensing.Detection` with the node and time it came from.

A :class:`~sdr_isac.sensing.Detection` knows its echo (range, velocity, angle, SNR, CRB variances) but
not which node saw it or when; the host knows both.  :class:`NodeDetection` carries the three together
into the twin, and refuses what a database cannot hold faithfully (a NaN or an infinity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sdr_isac.errors import InputError
from sdr_isac.sensing import Detection

__all__ = ["NodeDetection"]

_FINITE = {"range_m": "m", "velocity_mps": "m/s", "doppler_hz": "Hz", "delay_s": "s", "snr_db": "dB",
           "map_snr_db": "dB"}
_VARIANCES = {"range_var_m2": "m²", "velocity_var_mps2": "(m/s)²"}
_GEOMETRIES = ("monostatic", "bistatic")


def _finite(name: str, value: object, unit: str) -> None:
    if isinstance(value, bool) or not (isinstance(value, int | float | np.number) and math.isfinite(value)):
        raise InputError(f"{name} = {value!r} {unit}: allowed a finite number")


@dataclass(frozen=True)
class NodeDetection:
    """One detection with the id of the node that made it and the capture time.

    Parameters
    ----------
    node_id : str
        The node (radio) whose capture held the echo; non-empty.
    t_s : float
        Capture time, s (finite).
    detection : Detection
        The echo: every number finite, variances >= 0, the angle and its variance both given or both None.

    Raises
    ------
    InputError
        A field is of the wrong type or not finite.
    """

    node_id: str
    t_s: float
    detection: Detection

    def __post_init__(self) -> None:
        if not isinstance(self.node_id, str) or not self.node_id:
            raise InputError(f"node_id = {self.node_id!r}: allowed a non-empty string (the node's id)")
        _finite("t_s", self.t_s, "s")
        object.__setattr__(self, "t_s", float(self.t_s))
        det = self.detection
        if not isinstance(det, Detection):
            raise InputError(f"detection = {det!r}: allowed a sdr_isac.sensing.Detection")
        for name, unit in (_FINITE | _VARIANCES).items():
            _finite(f"detection.{name}", getattr(det, name), unit)
        for name, unit in _VARIANCES.items():
            if getattr(det, name) < 0:
                raise InputError(f"detection.{name} = {getattr(det, name)!r} {unit}: allowed a variance >= 0")
        if det.geometry not in _GEOMETRIES:
            raise InputError(f"detection.geometry = {det.geometry!r}: allowed 'monostatic' or 'bistatic'")
        if (det.angle_rad is None) != (det.angle_var_rad2 is None):
            raise InputError("detection.angle_rad and detection.angle_var_rad2: give both or neither")
        if det.angle_rad is not None:
            _finite("detection.angle_rad", det.angle_rad, "rad")
            _finite("detection.angle_var_rad2", det.angle_var_rad2, "rad²")
