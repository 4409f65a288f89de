"""The ``[radio]`` section: one section type per radio backend, chosen by ``kind``.

:class:`RadioConfig` holds what every radio has (kind, node, address, rate, carrier, bandwidth,
channels, receive gain, buffer, timeout); each backend's section subclasses it with its own
fields (:class:`SimRadioConfig`, :class:`ReplayRadioConfig`, :class:`PlutoRadioConfig`,
:class:`UsrpRadioConfig`) and is registered under its kind (:func:`register_radio_section`).
``[radio]`` in a file, or ``RadioConfig(kind=..., ...)`` in code, builds the section registered
for its ``kind``, so a key of another backend is an unknown key ("did you mean ...?") and a
new backend adds its own section without widening this one.

The four built-in sections live here, beside the base, because a configuration file must be
readable without importing the radio layer above (``sdr_isac.radio``); a new backend defines
its section beside its radio class and registers both with
:func:`sdr_isac.radio.register_radio`, which calls :func:`register_radio_section`.

Example
-------
>>> from sdr_isac import config
>>> cfg = config.RadioConfig(kind="replay", uri="rec.sigmf-meta", loop=True)
>>> type(cfg).__name__, cfg.loop, cfg.sample_rate_hz
('ReplayRadioConfig', True, 0.0)
>>> config.radio_section("pluto").__name__
'PlutoRadioConfig'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from sdr_isac.config.base import _check_choice, _check_fields, _coerce, _fail, _num

__all__ = ["RadioConfig", "SimRadioConfig", "ReplayRadioConfig", "PlutoRadioConfig", "UsrpRadioConfig",
           "register_radio_section", "unregister_radio_section", "radio_section", "radio_kinds"]

#: Radio sections by kind, in registration order (the order messages list them in).
_SECTIONS: dict[str, type[RadioConfig]] = {}


@dataclass(frozen=True)
class _RadioFields:
    """The fields every radio section has (documented on :class:`RadioConfig`)."""

    kind: str = "sim"
    node_id: str = "bs0"
    uri: str = ""
    sample_rate_hz: float = _num(0.0, 1e3, 10e9, "Hz", or_zero=True)
    center_freq_hz: float = _num(0.0, 1e6, 300e9, "Hz", or_zero=True)
    rf_bandwidth_hz: float = _num(0.0, 1e3, 10e9, "Hz", or_zero=True)
    rx_channels: tuple[int, ...] = _num((0,), 0, 63)
    tx_channels: tuple[int, ...] = _num((0,), 0, 63)
    rx_gain_db: float = _num(30.0, -30.0, 100.0, "dB")
    buffer_size: int = _num(0, 1, 2**27, "samples", or_zero=True)
    timeout_s: float = _num(5.0, 1e-3, 3600.0, "s")

    def __post_init__(self) -> None:
        _check_fields(self)
        own = _section_kind(type(self))
        if self.kind != own:
            _fail("kind", self.kind, f"{own!r} in a {type(self).__name__}",
                  f"build RadioConfig(kind={self.kind!r}, ...) to get that kind's section")
        if not self.node_id:
            _fail("node_id", self.node_id, "a non-empty name", "name the node, e.g. node_id = 'bs0'")
        for key in ("rx_channels", "tx_channels"):
            chans = getattr(self, key)
            if not chans or len(set(chans)) != len(chans):
                _fail(key, chans, "a non-empty list of distinct channel indices >= 0", "e.g. [0] or [0, 1]")


class RadioConfig(_RadioFields):
    """Which radio a node uses and how it is set up: the fields every backend's section has.

    ``RadioConfig(kind=..., **fields)`` builds the section registered for ``kind``
    (:func:`radio_section`), e.g. a :class:`ReplayRadioConfig` for ``kind = "replay"``;
    ``[radio]`` in a file is read the same way.  Device limits (LO range, gain range, sample
    rates) are checked by each backend, which knows them; the sections only check what holds
    for every device.

    Parameters
    ----------
    kind : str
        A registered radio kind: ``sim`` (simulated scene), ``replay`` (SigMF recording),
        ``pluto`` (ADALM-Pluto through pyadi-iio), ``usrp`` (UHD), or one a plugin registered.
    node_id : str
        The node this radio belongs to (a scene node for ``sim``).
    uri : str
        Where the samples come from: ``pluto`` a libiio URI (``ip:192.168.2.1``,
        ``usb:1.2.5``); ``usrp`` UHD device arguments (``type=b200``); ``replay`` the path of
        the ``.sigmf-meta`` file; unused by ``sim``.
    sample_rate_hz : float
        0 takes the frame's sample rate; else 1 kHz ... 10 GHz.
    center_freq_hz : float
        0 takes the frame's carrier; else 1 MHz ... 300 GHz (as ``carrier_hz``).
    rf_bandwidth_hz : float
        Analog filter bandwidth; 0 takes the sample rate; else 1 kHz ... 10 GHz.
    rx_channels, tx_channels : tuple of int
        Channel indices, each 0 ... 63 (``[0, 1]`` for a 2R2T Pluto or a B210).
    rx_gain_db : float
        Receive gain in dB (manual gain), -30 ... 100 dB.
    buffer_size : int
        Samples per capture when recording or streaming; 0 takes one frame
        (two on a Pluto, which must find a whole frame in every buffer);
        else 1 ... 2**27 (1 GiB of complex64 per channel).
    timeout_s : float
        Longest wait for a device, 1 ms ... 3600 s.

    Raises
    ------
    ConfigError
        ``kind`` is not registered (the message lists the kinds), or a value is out of range.
    TypeError
        A keyword that the kind's section does not have.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        section: type[Any] = cls
        if cls is RadioConfig:
            kind = kwargs.get("kind", args[0] if args else "sim")
            section = radio_section(kind)
        return super().__new__(section)

    @classmethod
    def _section_type(cls, data: Mapping[str, Any]) -> type[RadioConfig]:
        """The section to build for the mapping ``data`` (``from_dict`` hook): the one of its ``kind``."""
        if cls is not RadioConfig:
            return cls
        return radio_section(_coerce(data.get("kind", "sim"), str, "kind"))

    @classmethod
    def _unknown_key_hint(cls, key: str) -> str | None:
        """For ``from_dict``: name the kinds whose section has ``key`` (a key of another backend)."""
        owners = [kind for kind, section in _SECTIONS.items() if key in section.__dataclass_fields__]
        if not owners:
            return None
        return (f"{key} belongs to kind = {' or '.join(map(repr, owners))}, and this [radio] has kind = "
                f"{_section_kind(cls)!r}; remove {key} or set kind")


def _section_kind(section: type[_RadioFields]) -> str:
    """The kind a section class stands for: the default of its ``kind`` field."""
    return str(section.__dataclass_fields__["kind"].default)


def radio_kinds() -> tuple[str, ...]:
    """The registered radio kinds, in registration order (``sim``, ``replay``, ``pluto``, ``usrp``, ...)."""
    return tuple(_SECTIONS)


def radio_section(kind: Any) -> type[RadioConfig]:
    """The section class registered for the radio ``kind``.

    Raises
    ------
    ConfigError
        ``kind`` is not a registered kind (the message lists them).
    """
    section = _SECTIONS.get(kind) if isinstance(kind, str) else None
    if section is None:
        kinds = radio_kinds()
        _fail("kind", kind, ", ".join(kinds[:-1]) + f" or {kinds[-1]}", "set kind to one of them")
    return section


def register_radio_section(kind: str, section: type[RadioConfig], *, replace: bool = False) -> None:
    """Register ``section`` as the ``[radio]`` section of the radio ``kind``.

    Backends normally call :func:`sdr_isac.radio.register_radio`, which registers their section
    here and their radio class with :func:`sdr_isac.radio.open_radio`.

    Parameters
    ----------
    kind : str
        The value of ``radio.kind`` that selects the section: a non-empty identifier
        (letters, digits, ``_``), e.g. ``"soapy"``.
    section : type
        A frozen dataclass subclassing :class:`RadioConfig` whose ``kind`` field defaults to
        ``kind``, e.g.::

            @dataclass(frozen=True)
            class SoapyRadioConfig(RadioConfig):
                kind: str = "soapy"
                driver: str = ""

        Its own numeric fields declare their ranges with
        :func:`~sdr_isac.config.bounded_field` and are documented in its docstring, like
        every config field.
    replace : bool
        Allow replacing another section already registered for ``kind``.

    Raises
    ------
    ConfigError
        ``kind`` is not an identifier, ``section`` is not such a subclass, its ``kind``
        default differs, or another section holds ``kind`` and ``replace`` is False.
    """
    if not isinstance(kind, str) or not kind.isidentifier():
        _fail("radio kind", kind, "a non-empty identifier (letters, digits, _)", "register e.g. 'soapy'")
    if not (isinstance(section, type) and issubclass(section, RadioConfig) and section is not RadioConfig
            and dataclasses.is_dataclass(section) and section.__dataclass_params__.frozen  # type: ignore[attr-defined]
            and "__init__" in section.__dict__):
        _fail("radio section", section, "a @dataclass(frozen=True) subclass of RadioConfig",
              f"define class {kind.capitalize()}RadioConfig(RadioConfig) with kind: str = {kind!r}")
    if _section_kind(section) != kind:
        _fail("radio section", section.__name__, f"a section whose kind field defaults to {kind!r}",
              f"declare kind: str = {kind!r} in {section.__name__}")
    held = _SECTIONS.get(kind)
    if held is not None and held is not section and not replace:
        _fail("radio kind", kind, f"a kind not registered yet ({kind!r} holds {held.__name__})",
              "pick another kind or pass replace=True")
    _SECTIONS[kind] = section


def unregister_radio_section(kind: str) -> None:
    """Remove the section of the radio ``kind`` (a test's or plugin's); unknown kinds are ignored."""
    _SECTIONS.pop(kind, None)


# ---- the built-in backends' sections -----------------------------------------------------------
@dataclass(frozen=True)
class SimRadioConfig(RadioConfig):
    """``kind = "sim"``: a node of the simulated ``[scene]`` (:class:`sdr_isac.radio.sim.SimRadio`).

    Parameters
    ----------
    kind, node_id, uri, sample_rate_hz, center_freq_hz, rf_bandwidth_hz, rx_channels, tx_channels,
    rx_gain_db, buffer_size, timeout_s
        As :class:`RadioConfig`; ``node_id`` must name a node of the scene.
    frame_interval_s : float
        Scene time from the start of one capture to the start of the next, s: 0 (the default) captures
        back to back (scene time advances by each capture's length); else 1e-6 ... 3600 s, rounded to a
        whole number (at least one) of capture lengths, so that the node's cyclic frame starts where each
        capture starts, as back to back.  The targets move between captures: a scene whose traffic
        crosses the coverage of its stations in seconds (the urban demo's) is sensed over seconds with a
        few frames.  Every node of a host should share it (their captures form time-aligned sets by t0).
    """

    kind: str = "sim"
    frame_interval_s: float = _num(0.0, 1e-6, 3600.0, "s", or_zero=True)


@dataclass(frozen=True)
class ReplayRadioConfig(RadioConfig):
    """``kind = "replay"``: a SigMF recording played back (:class:`sdr_isac.radio.replay.ReplayRadio`).

    Parameters
    ----------
    kind, node_id, sample_rate_hz, center_freq_hz, rf_bandwidth_hz, rx_channels, tx_channels,
    rx_gain_db, buffer_size, timeout_s
        As :class:`RadioConfig`.
    uri : str
        The path of the ``.sigmf-meta`` file (required).
    loop : bool
        Start again at the end of the recording.
    pace : bool
        Deliver captures at the recorded rate (their t0 spacing).
    """

    kind: str = "replay"
    loop: bool = False
    pace: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.uri:
            _fail("uri", self.uri, "the path of a .sigmf-meta file for kind = 'replay'", "set uri = 'path.sigmf-meta'")


@dataclass(frozen=True)
class PlutoRadioConfig(RadioConfig):
    """``kind = "pluto"``: an ADALM-Pluto (AD936x) through pyadi-iio (:class:`sdr_isac.radio.pluto.PlutoRadio`).

    Parameters
    ----------
    kind, node_id, uri, sample_rate_hz, center_freq_hz, rf_bandwidth_hz, rx_channels, tx_channels,
    rx_gain_db, buffer_size, timeout_s
        As :class:`RadioConfig`.
    gain_mode : str
        ``manual``, ``slow_attack``, ``fast_attack`` or ``hybrid`` (AD936x AGC).
    tx_attenuation_db : float
        Transmit attenuation in dB, 0 ... 100 here (the Pluto itself takes 0 ... 89.75 in
        0.25 dB steps; its backend checks that).
    remove_leakage : bool
        Measure the static TX->RX leakage/clutter once and subtract it.
    tdd : str
        TX/RX frame alignment by the Pluto's TDD engine (firmware >= 0.39,
        pyadi-iio's ``adi.tddn``): ``auto`` uses it where the device has it
        and otherwise finds the frame by correlation with the leakage; ``on``
        requires it (an error names the firmware to install); ``off`` always
        correlates.
    """

    kind: str = "pluto"
    gain_mode: str = "manual"
    tx_attenuation_db: float = _num(10.0, 0.0, 100.0, "dB")
    remove_leakage: bool = False
    tdd: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice("gain_mode", self.gain_mode, ("manual", "slow_attack", "fast_attack", "hybrid"))
        _check_choice("tdd", self.tdd, ("auto", "on", "off"))


@dataclass(frozen=True)
class UsrpRadioConfig(RadioConfig):
    """``kind = "usrp"``: an Ettus USRP through UHD (:class:`sdr_isac.radio.usrp.UsrpRadio`).

    Parameters
    ----------
    kind, node_id, uri, sample_rate_hz, center_freq_hz, rf_bandwidth_hz, rx_channels, tx_channels,
    rx_gain_db, buffer_size, timeout_s
        As :class:`RadioConfig`.
    tx_gain_db : float
        Transmit gain in dB, -30 ... 100 dB (the device's range is checked when it opens).
    clock_source, time_source : str
        References: ``internal``, ``external`` or ``gpsdo``.
    rx_antenna, tx_antenna : str
        Antenna port names (empty: the device default).
    """

    kind: str = "usrp"
    tx_gain_db: float = _num(0.0, -30.0, 100.0, "dB")
    clock_source: str = "internal"
    time_source: str = "internal"
    rx_antenna: str = ""
    tx_antenna: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice("clock_source", self.clock_source, ("internal", "external", "gpsdo"))
        _check_choice("time_source", self.time_source, ("internal", "external", "gpsdo"))


for _section in (SimRadioConfig, ReplayRadioConfig, PlutoRadioConfig, UsrpRadioConfig):
    register_radio_section(_section_kind(_section), _section)
