"""Typed, validated configuration.

Configuration lives in TOML files (``hw_configs/``) and is parsed once, at the
edge, into frozen dataclasses.  :func:`from_dict` rejects unknown keys and
checks every value against its field's annotation (a bool is not a number,
2.5 is not an int, NaN and infinities are refused); every numeric field
declares its documented range (:class:`Bounds`, :func:`field_bounds`), which
``__post_init__`` enforces, so a config built in code is checked like one
read from a file.  Every problem raises :class:`~sdr_isac.errors.ConfigError`
naming the file, the dotted key (``scene.nodes[1].position_m[0]``), the value
(with its unit), what is allowed and how to fix it.

One module per owner of a section: :mod:`~sdr_isac.config.base` (:class:`Bounds`, field
checks, :func:`from_dict`, the endpoint grammar), :mod:`~sdr_isac.config.frame` (``[frame]``
and its reference signals), :mod:`~sdr_isac.config.radio` (``[radio]``: one section type per
backend, chosen by ``kind``), :mod:`~sdr_isac.config.scene`, :mod:`~sdr_isac.config.sensing`,
:mod:`~sdr_isac.config.stream` (``[stream]`` and ``[host]``) and
:mod:`~sdr_isac.config.fusion`; this package holds the whole file (:class:`Config`,
:func:`load`, :func:`loads`, :func:`builtin`, :func:`default`) and re-exports every section.

Example
-------
>>> from sdr_isac import config
>>> cfg = config.default()
>>> cfg.frame.subcarrier_spacing_hz
30000.0
>>> config.PrsConfig(comb_size=5)
Traceback (most recent call last):
...
sdr_isac.errors.ConfigError: comb_size = 5: allowed 2, 4, 6 or 12 (TS 38.211 §7.4.1.7.3); set comb_size to one of them
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sdr_isac.config.base import Bounds, _fail, _show, bounded_field, field_bounds, from_dict
from sdr_isac.config.core import CoreConfig
from sdr_isac.config.frame import (
    MODULATIONS,
    SRS_MAX_CYCLIC_SHIFTS,
    SSB_CASES,
    DataConfig,
    DmrsConfig,
    FrameConfig,
    PrsConfig,
    SrsConfig,
    SsbConfig,
    TrsConfig,
    symbols_per_slot,
)
from sdr_isac.config.fusion import FusionConfig
from sdr_isac.config.radio import (
    PlutoRadioConfig,
    RadioConfig,
    ReplayRadioConfig,
    SimRadioConfig,
    UsrpRadioConfig,
    radio_kinds,
    radio_section,
    register_radio_section,
    unregister_radio_section,
)
from sdr_isac.config.scene import (
    ANTENNA_PATTERNS,
    ArrayConfig,
    BlockerConfig,
    ClutterConfig,
    NodeConfig,
    RisConfig,
    SceneConfig,
    TargetConfig,
    WallConfig,
)
from sdr_isac.config.sensing import SensingConfig, cfar_kinds, register_cfar_kind, unregister_cfar_kind
from sdr_isac.config.stream import HostConfig, StreamConfig
from sdr_isac.config.tracking import TrackingConfig
from sdr_isac.config.twin import TwinConfig
from sdr_isac.errors import ConfigError

__all__ = [
    "ANTENNA_PATTERNS",
    "SsbConfig",
    "SSB_CASES",
    "TrackingConfig",
    "TwinConfig",
    "CoreConfig",
    "MODULATIONS",
    "SRS_MAX_CYCLIC_SHIFTS",
    "PrsConfig",
    "DmrsConfig",
    "SrsConfig",
    "TrsConfig",
    "DataConfig",
    "FrameConfig",
    "Config",
    "ConfigError",
    "FusionConfig",
    "HostConfig",
    "RadioConfig",
    "SimRadioConfig",
    "ReplayRadioConfig",
    "PlutoRadioConfig",
    "UsrpRadioConfig",
    "radio_kinds",
    "radio_section",
    "register_radio_section",
    "unregister_radio_section",
    "ArrayConfig",
    "NodeConfig",
    "TargetConfig",
    "WallConfig",
    "ClutterConfig",
    "BlockerConfig",
    "RisConfig",
    "SceneConfig",
    "SensingConfig",
    "cfar_kinds",
    "register_cfar_kind",
    "unregister_cfar_kind",
    "StreamConfig",
    "Bounds",
    "bounded_field",
    "field_bounds",
    "from_dict",
    "MAX_CONFIG_BYTES",
    "load",
    "load_with_table",
    "loads",
    "default",
    "builtin",
    "symbols_per_slot",
]


@dataclass(frozen=True)
class Config:
    """A whole sdr_isac configuration file.

    Parameters
    ----------
    name : str
        A short label for outputs and logs.
    description : str
        Free text.
    frame : FrameConfig
        The transmitted ISAC frame.
    radio : RadioConfig
        The node's radio: the section registered for its ``kind`` (a subclass of RadioConfig).
    scene : SceneConfig or None
        The simulated world, for ``radio.kind = 'sim'``.
    sensing : SensingConfig
        Range-Doppler processing and detection.
    stream : StreamConfig
        Node-to-host streaming.
    fusion : FusionConfig
        Node-level fusion on the host.
    host : HostConfig
        Where the host senses captures (thread, process pool, Dask).
    tracking : TrackingConfig
        The host's tracker.
    twin : TwinConfig
        The digital twin the host writes.
    core : CoreConfig
        A core host over several MECS hosts.
    """

    name: str = "default"
    description: str = ""
    frame: FrameConfig = field(default_factory=FrameConfig)
    radio: RadioConfig = field(default_factory=RadioConfig)
    scene: SceneConfig | None = None
    sensing: SensingConfig = field(default_factory=SensingConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    host: HostConfig = field(default_factory=HostConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    twin: TwinConfig = field(default_factory=TwinConfig)
    core: CoreConfig = field(default_factory=CoreConfig)

    def __post_init__(self) -> None:
        frames = [("frame", self.frame)] + [(f"scene.nodes[{i}].frame ({n.id})", n.frame) for i, n in
                                            enumerate(self.scene.nodes if self.scene is not None else ())
                                            if n.frame is not None]
        for where, frame in frames:
            self._check_cfar_window(where, frame)
        if self.radio.kind == "sim" and self.scene is not None:
            self.scene.node(self.radio.node_id)          # the radio's node must be in the scene
        ids = [n.id for n in self.scene.nodes] if self.scene is not None else []
        unknown = [n for n in self.fusion.macro_nodes if n not in ids]
        if unknown:
            known = ", ".join(ids) or "none: this file has no [scene]"
            _fail("fusion.macro_nodes", list(self.fusion.macro_nodes), f"ids of scene nodes ({known})",
                  f"remove {', '.join(unknown)} or add the node(s) to [[scene.nodes]]")

    def _check_cfar_window(self, where: str, frame: FrameConfig) -> None:
        """The CFAR window must fit the range-Doppler map of ``frame`` (sensed with ``[sensing]``)."""
        n_range, n_doppler = self.sensing.map_shape(frame.num_subcarriers, frame.total_symbols)
        for axis, (name, bins) in enumerate((("range", n_range), ("Doppler", n_doppler))):
            guard, train = self.sensing.guard_cells[axis], self.sensing.training_cells[axis]
            if 2 * (guard + train) + 1 > bins:
                most = (bins - 1) // 2 - guard
                fix = (f"at most {most} {name} training cells with this guard" if most >= 1 else
                       f"a {name} guard of at most {max((bins - 3) // 2, 0)} cells with 1 training cell")
                _fail("sensing.training_cells", list(self.sensing.training_cells),
                      f"a CFAR window (2 x (guard + training) + 1 cells, guard_cells = "
                      f"{list(self.sensing.guard_cells)}) no longer than the {bins} {name} bins of the map of {where} "
                      f"({frame.num_subcarriers if axis == 0 else frame.total_symbols} "
                      f"{'subcarriers' if axis == 0 else 'symbols'} x {name.lower()}_oversampling)",
                      f"{fix}, or a longer frame")


#: The configurations shipped inside the package (:func:`builtin`).
BUILTIN_CONFIGS = ("default", "demo", "urban")

#: Largest configuration file read, bytes: the shipped ones are under 10 kB.
MAX_CONFIG_BYTES = 1 << 20
#: Deepest dotted key path (``a.b.c = 1``, ``[a.b.c]``): tomllib needs memory quadratic in it.
_MAX_KEY_DEPTH = 32
_SEGMENT = r"(?:[A-Za-z0-9_-]+|\"[^\"\n]*\"|'[^'\n]*')"
_DEEP_KEY = re.compile(rf"(?:{_SEGMENT}[ \t]*\.[ \t]*){{{_MAX_KEY_DEPTH},}}{_SEGMENT}")


def loads(text: str, source: str = "<string>") -> Config:
    """Parse a configuration from TOML text.

    Raises
    ------
    ConfigError
        The text is not TOML, is larger than ``MAX_CONFIG_BYTES`` or nested
        too deeply, or holds an unknown key, a wrong type or a value out of
        range; the message names ``source``.
    """
    return _parse(text, source)[0]


def _parse(text: str, source: str) -> tuple[Config, dict[str, Any]]:
    """:func:`loads`, and the TOML table the configuration was built from."""
    if not isinstance(text, str):
        raise ConfigError(f"configuration text of type {type(text).__name__}: must be a string (TOML); "
                          "decode it first", source=source)
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{len(text)} characters: allowed at most {MAX_CONFIG_BYTES} in a configuration; "
                          "is this the right file?", source=source)
    deep = _DEEP_KEY.search(text)
    if deep is not None:
        raise ConfigError(f"a key nested more than {_MAX_KEY_DEPTH} levels deep ({_show(deep.group(0), 60)}): "
                          "not a sdr_isac configuration; fix the key", source=source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not valid TOML: {err}; fix the syntax", source=source) from err
    except RecursionError as err:
        raise ConfigError("arrays or inline tables nested too deeply to read; not a sdr_isac configuration, "
                          "fix the file", source=source) from err
    try:
        return from_dict(Config, data), data
    except ConfigError as err:
        raise err.with_source(source) from err


def load(path: str | Path) -> Config:
    """Read and validate a TOML configuration file.

    Raises
    ------
    ConfigError
        The file is missing or unreadable, is not TOML, or holds an unknown
        key, a wrong type or a value out of range; the message names the file.
    """
    return load_with_table(path)[0]


def load_with_table(path: str | Path) -> tuple[Config, dict[str, Any]]:
    """:func:`load`, and the TOML table the configuration was built from, from the one read of the file.

    The table holds what the file writes (``table["frame"]``: the keys its ``[frame]`` sets), where the
    :class:`Config` fills in defaults: for a caller that must tell a value written from a default.

    Returns
    -------
    config : Config
    table : dict
        The parsed TOML; the configuration keeps no reference to it.

    Raises
    ------
    ConfigError
        As :func:`load`.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"cannot read the configuration file ({err.strerror or err}); check the path",
                          source=str(p)) from err
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"larger than {MAX_CONFIG_BYTES} bytes: not a sdr_isac configuration; check the path",
                          source=str(p))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"not UTF-8 text (byte {err.start}): a TOML file is UTF-8; check the path or "
                          "re-save the file as UTF-8", source=str(p)) from err
    return _parse(text, str(p))


def default() -> Config:
    """The built-in default configuration (``sdr_isac/default.toml``): a frame and a link."""
    return builtin("default")


def builtin(name: str) -> Config:
    """A configuration shipped inside the package: ``default``, ``demo`` (the demo's scene) or ``urban``
    (the street grid of ``sdr-isac experiment continuity``; ``hw_configs/sim_urban.toml`` links to it)."""
    if name not in BUILTIN_CONFIGS:
        raise ConfigError(f"built-in configuration {name!r}: allowed {', '.join(map(repr, BUILTIN_CONFIGS))}",
                          key="config")
    text = resources.files("sdr_isac").joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return loads(text, source=f"sdr_isac/{name}.toml")
