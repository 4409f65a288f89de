"""Radios: one protocol, several backends (``sim``, ``replay``, ``pluto``, ``usrp``), registered by kind.

Each backend registers its kind where it is defined (:func:`register_radio`), and
:func:`open_radio` opens the one a configuration's ``radio.kind`` names; a new backend (e.g.
SoapySDR) is one module with a :class:`RadioBase` subclass and its ``[radio]`` section, registered
the same way (see :mod:`sdr_isac.radio.registry`).  Hardware libraries are imported only when a
radio of their kind opens.

>>> from sdr_isac import config, radio
>>> cfg = config.loads('''
... [frame]
... num_rb = 4
... [scene]
... [[scene.nodes]]
... id = "bs0"
... ''')
>>> with radio.open_radio(cfg) as r:
...     capture = r.rx(1000)
>>> capture.iq.shape
(1, 1000)
>>> sorted(radio.registered_radios())
['pluto', 'replay', 'sim', 'usrp']
"""

from __future__ import annotations

import os
from pathlib import Path

from sdr_isac.config import Config, FrameConfig, RadioConfig, SceneConfig
from sdr_isac.radio import pluto, replay, sim, usrp  # noqa: F401  (each registers its kind)
from sdr_isac.radio.base import Radio, RadioBase
from sdr_isac.radio.calibration import DEFAULT_FOLDER, ENV_FOLDER, attach_calibration, find_calibration
from sdr_isac.radio.registry import radio_backend, register_radio, registered_radios, unregister_radio

__all__ = ["Radio", "RadioBase", "open_radio", "register_radio", "unregister_radio", "radio_backend",
           "registered_radios"]


def open_radio(config: Config | RadioConfig, frame: FrameConfig | None = None,
               scene: SceneConfig | None = None, *, calibration_dir: str | Path | bool | None = None) -> RadioBase:
    """Open the radio a configuration names: the backend registered for its ``kind``.

    With a calibration folder (``calibration_dir``, else the environment variable
    ``SDR_ISAC_CALIBRATION_DIR``) the radio loads the calibration of its device and setting from it
    (:func:`sdr_isac.radio.calibration.find_calibration`) and delivers calibrated captures (system
    delay removed, leakage subtracted, channels equalised; ``radio.calibration`` names the file and
    every capture's ``metadata["calibration"]`` its id and hash).  A device never calibrated there
    opens uncalibrated; one calibrated at another rate, LO, gain or channel set is refused.

    Parameters
    ----------
    config : Config or RadioConfig
        A whole configuration (its ``radio``, ``frame`` and ``scene`` are
        used) or just the radio section.
    frame : FrameConfig, optional
        Overrides the configuration's frame.
    scene : SceneConfig, optional
        Overrides the configuration's scene (``sim`` only).
    calibration_dir : str or Path or bool, optional
        The folder of calibration files (``sdr-isac calibrate --out``); True: ``calibration`` in the
        working directory (the command's default); None: ``$SDR_ISAC_CALIBRATION_DIR`` if set, else no
        calibration; False: no calibration (the raw radio, as ``sdr-isac calibrate`` opens it).

    Raises
    ------
    StaleCalibrationError
        The folder holds calibrations of this device, none for its setting (the message names the
        differences and the command to run).
    RadioUnavailableError
        The backend's optional dependency is missing (the message says what to install).
    ConfigError
        ``sim`` without a scene, values outside the device's ranges, or a kind without a
        registered backend.
    """
    if isinstance(config, Config):
        radio_cfg, frame, scene = config.radio, frame or config.frame, scene or config.scene
    else:
        radio_cfg = config
    radio = radio_backend(radio_cfg.kind).open(radio_cfg, frame, scene)
    if calibration_dir is None:
        calibration_dir = os.environ.get(ENV_FOLDER) or False
    if calibration_dir is False:
        return radio
    if calibration_dir is True:
        calibration_dir = DEFAULT_FOLDER
    try:
        cal = find_calibration(calibration_dir, radio)
        return attach_calibration(radio, cal) if cal is not None else radio
    except BaseException:
        radio.close()
        raise
