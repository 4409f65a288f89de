"""Radios: one protocol, several backends (``sim``, ``replay``, ``pluto``, ``usrp``).

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
"""

from __future__ import annotations

from sdr_isac.config import Config, FrameConfig, RadioConfig, SceneConfig
from sdr_isac.errors import ConfigError
from sdr_isac.radio.base import Radio, RadioBase

__all__ = ["Radio", "RadioBase", "open_radio"]


def open_radio(config: Config | RadioConfig, frame: FrameConfig | None = None,
               scene: SceneConfig | None = None) -> RadioBase:
    """Open the radio a configuration names.

    Parameters
    ----------
    config : Config or RadioConfig
        A whole configuration (its ``radio``, ``frame`` and ``scene`` are
        used) or just the radio section.
    frame : FrameConfig, optional
        Overrides the configuration's frame.
    scene : SceneConfig, optional
        Overrides the configuration's scene (``sim`` only).

    Raises
    ------
    RadioUnavailableError
        The backend's optional dependency is missing (the message says what to install).
    ConfigError
        ``sim`` without a scene, or values outside the device's ranges.
    """
    if isinstance(config, Config):
        radio_cfg, frame, scene = config.radio, frame or config.frame, scene or config.scene
    else:
        radio_cfg = config
    if radio_cfg.kind == "sim":
        from sdr_isac.channel.scene import Scene
        from sdr_isac.radio.sim import SimRadio
        if scene is None:
            raise ConfigError("radio.kind = 'sim' needs a [scene] section; add one with at least one "
                              "[[scene.nodes]] entry", key="scene")
        if frame is None:
            raise ConfigError("radio.kind = 'sim' needs a [frame] section", key="frame")
        return SimRadio(radio_cfg, frame, Scene(scene, frame))
    if radio_cfg.kind == "replay":
        from sdr_isac.radio.replay import ReplayRadio
        return ReplayRadio(radio_cfg, frame)
    if radio_cfg.kind == "pluto":
        from sdr_isac.radio.pluto import PlutoRadio
        return PlutoRadio(radio_cfg, frame)
    from sdr_isac.radio.usrp import UsrpRadio
    return UsrpRadio(radio_cfg, frame)
