"""Calibration files: one per device setting, saved by ``sdr-isac calibrate``, found and checked when a radio opens.

A calibration (system delay, receive-chain gains, static leakage: :mod:`sdr_isac.sensing.calibration`) holds
only for the setting it was measured at.  Its file is keyed by the **device serial**, the **sample rate**,
the **LO**, the **gains** and the **channel set** (:class:`CalibrationKey`); :func:`find_calibration` returns
the file whose key equals the radio's, refuses a stale one (the same device at another setting) with a
:class:`StaleCalibrationError` that names every difference and the command to run, and returns None for a
device never calibrated in that folder.

File format (JSON, written atomically by :func:`save_calibration`; ``schema`` and ``version`` first)::

    {"schema": "sdr_isac.calibration", "version": 1, "id": "sim-bs0-20261206T233000Z",
     "created_utc": "2026-12-06T23:30:00Z", "method": "loopback", "distance_m": null,
     "command": "sdr-isac calibrate --config sim.toml --method loopback",
     "key": {"device_serial": "sim:bs0", "radio_kind": "sim", "sample_rate_hz": 15360000.0,
             "center_freq_hz": 3.5e9, "gains_db": {"rx_gain_db": 30.0}, "rx_channels": [0, 1, 2, 3],
             "tx_channels": [0]},
     "delay_samples": 37.29996, "delay_std_samples": 1.9e-05,
     "channel_gains": [[1.0, 0.0], [0.0, 0.89], ...],  "phase_std_rad": [0.0, 5.6e-05, ...],
     "leakage": {"delays_samples": [0.0], "amplitudes": [[[re, im]], ...]},
     "quality": {"snr_re_db": [...], "frames": 4}}

Complex numbers are ``[re, im]`` pairs.  A calibration is named by its ``id`` and the SHA-256 of its file
(:attr:`Calibration.reference`), which calibrated captures carry in ``metadata["calibration"]`` and
recordings in ``isac:calibration``.

The device serial: a backend that knows its device's serial exposes it as a ``serial`` attribute (str):
a Pluto ``pluto:<hw_serial>`` (the IIO context attribute its firmware reports), a USRP ``usrp:<mboard_serial>``
(UHD's ``get_usrp_rx_info``).  Otherwise :func:`device_serial` uses ``<kind>:<uri>`` (``sim:<node id>`` for
the simulated radio): every Pluto answers at ``ip:192.168.2.1`` out of the box, so the address alone cannot
tell two boards apart.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdr_isac.errors import RadioError
from sdr_isac.radio.base import RadioBase
from sdr_isac.recording._atomic import write_text
from sdr_isac.sensing.calibration import RxCorrection, apply_calibration

__all__ = ["CalibrationKey", "Calibration", "CalibrationError", "StaleCalibrationError", "SCHEMA", "VERSION",
           "device_serial", "key_of", "save_calibration", "load_calibration", "find_calibration",
           "attach_calibration", "ENV_FOLDER", "DEFAULT_FOLDER"]

_log = logging.getLogger(__name__)

#: The ``schema`` field of a calibration file.
SCHEMA = "sdr_isac.calibration"
#: The file format version this code writes and reads.
VERSION = 1
#: Environment variable naming the calibration folder :func:`sdr_isac.radio.open_radio` looks in.
ENV_FOLDER = "SDR_ISAC_CALIBRATION_DIR"
#: The folder ``sdr-isac calibrate`` writes to by default (``open_radio(..., calibration_dir=True)``).
DEFAULT_FOLDER = "calibration"
#: Configuration fields that are gains (or attenuations) and key a calibration.
_GAIN_FIELDS = ("rx_gain_db", "tx_gain_db", "tx_attenuation_db")
#: Tolerances of a key match: sample rate and LO in Hz, gains in dB.
_HZ_TOL = 1.0
_DB_TOL = 0.01


class CalibrationError(RadioError):
    """A calibration file is unreadable, malformed, or does not fit the radio."""


class StaleCalibrationError(CalibrationError):
    """The device has calibrations in the folder, but none for its present setting."""


@dataclass(frozen=True)
class CalibrationKey:
    """The setting a calibration holds for.

    Parameters
    ----------
    device_serial : str
        The device (``serial`` of the backend, else ``<kind>:<uri>``).
    radio_kind : str
        ``sim``, ``pluto``, ``usrp``, ...
    sample_rate_hz, center_freq_hz : float
        Sample rate and LO, Hz.
    gains_db : tuple of (str, float)
        The gain settings by configuration field (``rx_gain_db``, ``tx_gain_db``, ``tx_attenuation_db``), dB,
        sorted by name.
    rx_channels, tx_channels : tuple of int
        The channel set (receive: one index per channel of a capture).
    settings : tuple of (str, str)
        The backend's other settings that move the delay, phase or gain (:meth:`RadioBase.calibration_settings
        <sdr_isac.radio.base.RadioBase.calibration_settings>`: a Pluto's AGC mode, frame alignment and RF
        bandwidths; a USRP's antenna ports, master clock rate and RF bandwidth), as text, sorted by name.  A
        file written before they were recorded has none, and matches no radio that has some.
    """

    device_serial: str
    radio_kind: str
    sample_rate_hz: float
    center_freq_hz: float
    gains_db: tuple[tuple[str, float], ...]
    rx_channels: tuple[int, ...]
    tx_channels: tuple[int, ...]
    settings: tuple[tuple[str, str], ...] = ()

    def differences(self, other: CalibrationKey) -> list[str]:
        """What differs from ``other`` (the file's key), one readable phrase each: ``"sample rate ..."``."""
        out = []
        if self.device_serial != other.device_serial:
            out.append(f"device {other.device_serial!r} in the file, {self.device_serial!r} here")
        if abs(self.sample_rate_hz - other.sample_rate_hz) > _HZ_TOL:
            out.append(f"sample rate {other.sample_rate_hz:g} Hz in the file, {self.sample_rate_hz:g} Hz here")
        if abs(self.center_freq_hz - other.center_freq_hz) > _HZ_TOL:
            out.append(f"LO {other.center_freq_hz:g} Hz in the file, {self.center_freq_hz:g} Hz here")
        mine, theirs = dict(self.gains_db), dict(other.gains_db)
        for name in sorted(set(mine) | set(theirs)):
            a, b = mine.get(name), theirs.get(name)
            if a is None or b is None or abs(a - b) > _DB_TOL:
                out.append(f"{name} {b if b is not None else 'unset'} dB in the file, "
                           f"{a if a is not None else 'unset'} dB here")
        if self.rx_channels != other.rx_channels:
            out.append(f"rx channels {list(other.rx_channels)} in the file, {list(self.rx_channels)} here")
        if self.tx_channels != other.tx_channels:
            out.append(f"tx channels {list(other.tx_channels)} in the file, {list(self.tx_channels)} here")
        mine_s, theirs_s = dict(self.settings), dict(other.settings)
        for name in sorted(set(mine_s) | set(theirs_s)):
            if mine_s.get(name) != theirs_s.get(name):
                out.append(f"{name} {theirs_s.get(name, 'not recorded')!r} in the file, "
                           f"{mine_s.get(name, 'unset')!r} here")
        return out

    def to_json(self) -> dict[str, Any]:
        """The key as the file stores it."""
        return {"device_serial": self.device_serial, "radio_kind": self.radio_kind,
                "sample_rate_hz": self.sample_rate_hz, "center_freq_hz": self.center_freq_hz,
                "gains_db": dict(self.gains_db), "rx_channels": list(self.rx_channels),
                "tx_channels": list(self.tx_channels), "settings": dict(self.settings)}

    @classmethod
    def from_json(cls, data: Any, where: str) -> CalibrationKey:
        """Read a key from its file form; a :class:`CalibrationError` naming ``where`` and the field if malformed."""
        if not isinstance(data, dict):
            raise CalibrationError(f"{where}: key is {type(data).__name__}: allowed an object; calibrate again")
        try:
            gains = data["gains_db"]
            settings = data.get("settings", {})
            if not isinstance(settings, dict) or not all(isinstance(v, str) for v in settings.values()):
                raise ValueError(f"settings = {settings!r}: allowed an object of texts")
            return cls(str(data["device_serial"]), str(data["radio_kind"]), _number(data["sample_rate_hz"]),
                       _number(data["center_freq_hz"]),
                       tuple(sorted((str(k), _number(v)) for k, v in gains.items())),
                       tuple(int(c) for c in data["rx_channels"]), tuple(int(c) for c in data["tx_channels"]),
                       tuple(sorted((str(k), v) for k, v in settings.items())))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise CalibrationError(f"{where}: key is malformed ({err!r}): allowed the fields device_serial, "
                                   "radio_kind, sample_rate_hz, center_freq_hz, gains_db, rx_channels, tx_channels; "
                                   "calibrate again") from err


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{value!r} is not finite")
    return out


@dataclass(frozen=True, eq=False)
class Calibration:
    """A calibration file's content.

    Attributes
    ----------
    key : CalibrationKey
    correction : RxCorrection
        What :func:`~sdr_isac.sensing.calibration.apply_calibration` removes; its ``label`` is :attr:`reference`.
    method : str
        ``loopback`` or ``reflector``.
    distance_m : float or None
        The reflector's distance, m.
    delay_std_samples : float
        CRB standard deviation of the delay, samples.
    phase_std_rad : tuple of float
        CRB standard deviation of each channel's relative phase, rad.
    created_utc : str
        ISO 8601 time of the measurement.
    command : str
        The command that made it (for the message of a stale file).
    quality : dict
        Free facts (per-channel SNR, frames averaged).
    id : str
        ``<device>-<time>``.
    sha256 : str
        SHA-256 of the file's bytes ("" before it is saved).
    path : Path or None
        Where it was read from or written to.
    """

    key: CalibrationKey
    correction: RxCorrection
    method: str
    distance_m: float | None = None
    delay_std_samples: float = 0.0
    phase_std_rad: tuple[float, ...] = ()
    created_utc: str = ""
    command: str = ""
    quality: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    sha256: str = ""
    path: Path | None = None

    @property
    def reference(self) -> dict[str, str]:
        """``{"id": ..., "sha256": ...}``: how captures and recordings name this calibration (``isac:calibration``)."""
        return {"id": self.id, "sha256": self.sha256}

    def to_json(self) -> dict[str, Any]:
        """The file's content."""
        corr = self.correction
        return {"schema": SCHEMA, "version": VERSION, "id": self.id, "created_utc": self.created_utc,
                "method": self.method, "distance_m": self.distance_m, "command": self.command,
                "key": self.key.to_json(), "delay_samples": corr.delay_samples,
                "delay_std_samples": self.delay_std_samples,
                "channel_gains": [[g.real, g.imag] for g in corr.channel_gains.tolist()],
                "phase_std_rad": list(self.phase_std_rad),
                "leakage": {"delays_samples": corr.leakage_delays_samples.tolist(),
                            "amplitudes": [[[a.real, a.imag] for a in row]
                                           for row in corr.leakage_amplitudes.tolist()]},
                "quality": self.quality}


def device_serial(radio: RadioBase) -> str:
    """The device a radio drives: its backend's ``serial`` attribute if it has one, else ``<kind>:<uri>``.

    The simulated radio is ``sim:<node id>``; a replayed one ``replay:<path>``.
    """
    serial = getattr(radio, "serial", None)
    if isinstance(serial, str) and serial:
        return serial
    if radio.kind == "sim":
        return f"sim:{radio.node_id}"
    return f"{radio.kind}:{radio.config.uri or 'default'}"


def key_of(radio: RadioBase) -> CalibrationKey:
    """The :class:`CalibrationKey` of an open radio's present setting."""
    cfg = radio.config
    gains = tuple(sorted((name, float(getattr(cfg, name))) for name in _GAIN_FIELDS if hasattr(cfg, name)))
    rx = tuple(cfg.rx_channels)
    if len(rx) != radio.num_rx_channels:                 # the simulated radio: one channel per array element
        rx = tuple(range(radio.num_rx_channels))
    settings = tuple(sorted((str(k), str(v)) for k, v in radio.calibration_settings().items()))
    return CalibrationKey(device_serial(radio), radio.kind, float(radio.sample_rate_hz), float(radio.center_freq_hz),
                          gains, rx, tuple(cfg.tx_channels), settings)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "device"


def save_calibration(cal: Calibration, folder: str | Path) -> Calibration:
    """Write ``cal`` atomically into ``folder`` (created if missing) as ``<device>_<setting hash>_<time>.json``.

    Returns
    -------
    Calibration
        ``cal`` with its ``id`` (if it had none), ``sha256`` and ``path``.

    Raises
    ------
    CalibrationError
        The folder cannot be written.
    """
    folder = Path(folder)
    now = _dt.datetime.now(_dt.UTC)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    created = cal.created_utc or now.isoformat(timespec="seconds").replace("+00:00", "Z")
    cal_id = cal.id or f"{_safe(cal.key.device_serial)}-{stamp}"
    setting = hashlib.sha256(json.dumps(cal.key.to_json(), sort_keys=True).encode()).hexdigest()[:10]
    path = folder / f"{_safe(cal.key.device_serial)}_{setting}_{stamp}.json"
    out = dataclasses.replace(cal, id=cal_id, created_utc=created)
    text = json.dumps(out.to_json(), indent=2)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_text(path, text)
    except OSError as err:
        raise CalibrationError(f"{folder}: cannot write the calibration there ({err.strerror}); choose a writable "
                               "folder with --out") from err
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return _labelled(dataclasses.replace(out, sha256=digest, path=path))


def _labelled(cal: Calibration) -> Calibration:
    """``cal`` with its correction labelled by its reference."""
    corr = dataclasses.replace(cal.correction, label=cal.reference)
    return dataclasses.replace(cal, correction=corr)


def _pairs(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[-1] != 2:
        raise ValueError(f"{name} has shape {arr.shape}: allowed [re, im] pairs")
    return np.asarray(arr[..., 0] + 1j * arr[..., 1], dtype=np.complex128)


def load_calibration(path: str | Path) -> Calibration:
    """Read and check one calibration file.

    Raises
    ------
    CalibrationError
        Unreadable, not a calibration file, a newer version, or a malformed field (the message names it).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CalibrationError(f"{path}: cannot read the calibration ({err}); calibrate again") from err
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise CalibrationError(f"{path}: schema = {data.get('schema') if isinstance(data, dict) else None!r}: "
                               f"allowed {SCHEMA!r}; this is not a calibration file")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise CalibrationError(f"{path}: version = {version!r}: allowed 1 ... {VERSION}; the file comes from a newer "
                               "sdr_isac (upgrade) or is damaged (calibrate again)")
    key = CalibrationKey.from_json(data.get("key"), str(path))
    try:
        gains = _pairs(data["channel_gains"], "channel_gains").reshape(-1)
        if gains.size != len(key.rx_channels):
            raise CalibrationError(f"{path}: {gains.size} channel gain(s) for rx channels {list(key.rx_channels)}: "
                                   "allowed one per channel; calibrate again")
        leak = data.get("leakage") or {}
        delays = np.asarray(leak.get("delays_samples", []), dtype=np.float64).reshape(-1)
        amps = (_pairs(leak["amplitudes"], "leakage.amplitudes").reshape(gains.size, delays.size) if delays.size
                else np.zeros((gains.size, 0), complex))
        corr = RxCorrection(_number(data["delay_samples"]), gains, delays, amps, key.sample_rate_hz)
        distance = data.get("distance_m")
        cal = Calibration(key, corr, str(data["method"]), None if distance is None else _number(distance),
                          _number(data.get("delay_std_samples", 0.0)),
                          tuple(_number(v) for v in data.get("phase_std_rad", [])), str(data.get("created_utc", "")),
                          str(data.get("command", "")), dict(data.get("quality") or {}), str(data["id"]),
                          hashlib.sha256(raw).hexdigest(), path)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CalibrationError(f"{path}: a field is malformed ({err!r}); calibrate again") from err
    return _labelled(cal)


def _not_this_devices(path: Path, serial: str) -> bool:
    """Whether ``path`` is not a calibration file at all, or another device's (by the key it names)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False                              # unreadable: it may be this device's; the error stands
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return True
    key = data.get("key")
    return isinstance(key, dict) and isinstance(key.get("device_serial"), str) and key["device_serial"] != serial


def find_calibration(folder: str | Path, key: CalibrationKey | RadioBase) -> Calibration | None:
    """The newest calibration in ``folder`` whose key equals ``key`` (a key, or an open radio's).

    Returns
    -------
    Calibration or None
        None when the folder does not exist or holds nothing for this device.

    Raises
    ------
    StaleCalibrationError
        The folder holds calibrations of this device, none for this setting: the message names the
        differences from the closest one and the command to run.
    CalibrationError
        A file of the folder is malformed.
    """
    if isinstance(key, RadioBase):
        key = key_of(key)
    folder = Path(folder)
    if not folder.is_dir():
        return None
    mine = []
    for path in sorted(folder.glob("*.json")):
        try:
            cal = load_calibration(path)
        except CalibrationError:
            if _not_this_devices(path, key.device_serial):
                # a notes file, or another device's file this code cannot read: not this radio's business
                _log.warning("calibration folder %s: %s is not a calibration of %r that this version reads; "
                             "passed over", folder, path.name, key.device_serial)
                continue
            raise
        if cal.key.device_serial == key.device_serial:
            mine.append(cal)
    if not mine:
        return None
    matching = [c for c in mine if not key.differences(c.key)]
    if matching:
        return max(matching, key=lambda c: (c.created_utc, str(c.path)))
    closest = max(mine, key=lambda c: (-len(key.differences(c.key)), c.created_utc))   # fewest differences, newest
    diffs = "; ".join(key.differences(closest.key))
    extra = f" --distance-m {closest.distance_m:g}" if closest.distance_m is not None else ""
    raise StaleCalibrationError(
        f"{closest.path}: stale calibration of {key.device_serial!r}: {diffs}. Calibrate this setting: run "
        f"`sdr-isac calibrate --config FILE --method {closest.method}{extra} --out {folder}` with this radio's "
        f"configuration (the file was made by `{closest.command or 'sdr-isac calibrate'}`), or open the radio "
        "without a calibration folder")


def attach_calibration(radio: RadioBase, cal: Calibration) -> RadioBase:
    """Make ``radio`` deliver calibrated captures (:func:`apply_calibration` on each) and name ``cal``.

    Sets ``radio.calibration`` (the :class:`Calibration`) and the correction :meth:`RadioBase.rx` applies to
    every capture.

    Raises
    ------
    CalibrationError
        The calibration's key differs from the radio's setting (the message names the differences), the
        radio already applies a calibration, or it holds a leakage profile that ``radio.remove_leakage``
        would subtract a second time.
    """
    if radio.calibration is not None:
        raise CalibrationError(f"{cal.path}: the radio already applies {radio.calibration.path}; open the radio "
                               "again (calibration_dir) to change its calibration")
    diffs = key_of(radio).differences(cal.key)
    if diffs:
        raise CalibrationError(f"{cal.path}: does not fit this radio: {'; '.join(diffs)}; calibrate this setting "
                               "with sdr-isac calibrate")
    if getattr(radio.config, "remove_leakage", False) and cal.correction.leakage_delays_samples.size:
        raise CalibrationError(f"{cal.path}: holds a leakage profile and radio.remove_leakage = true subtracts the "
                               "leakage too (twice in all): set remove_leakage = false, or calibrate with "
                               "--leakage skip")
    radio.calibration = cal
    radio._correct = lambda capture: apply_calibration(capture, cal)       # noqa: SLF001  (the base's hook)
    return radio
