"""The registry of radio kinds: which backend class, and which ``[radio]`` section, a ``kind`` names.

Each backend module registers itself where it is defined (the last lines of
``radio/sim.py``, ``replay.py``, ``pluto.py``, ``usrp.py``)::

    register_radio("pluto", PlutoRadio)

and :func:`sdr_isac.radio.open_radio` opens the backend registered for ``config.radio.kind``.
Registering a backend also registers its section (``backend.section``, a subclass of
:class:`~sdr_isac.config.RadioConfig`) with the configuration reader, so ``[radio] kind = "soapy"``
then reads that backend's own keys.  Importing a backend module stays light: hardware
libraries (``adi``/``iio``, ``uhd``) are imported when a radio opens.

Example: a new backend in its own module (a plugin; nothing in ``sdr_isac`` changes)::

    from dataclasses import dataclass
    from sdr_isac.config import RadioConfig
    from sdr_isac.radio import RadioBase, register_radio

    @dataclass(frozen=True)
    class SoapyRadioConfig(RadioConfig):      # docstring: each field with its unit and range
        kind: str = "soapy"
        driver: str = ""

    @register_radio("soapy")
    class SoapyRadio(RadioBase):
        kind = "soapy"
        section = SoapyRadioConfig
        def _tx(self, samples, cyclic): ...
        def _rx(self, num_samples): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, overload

from sdr_isac.config import register_radio_section, unregister_radio_section
from sdr_isac.errors import ConfigError
from sdr_isac.radio.base import RadioBase

__all__ = ["register_radio", "unregister_radio", "radio_backend", "registered_radios"]

B = TypeVar("B", bound=type[RadioBase])

#: Backend classes by radio kind, in registration order.
_BACKENDS: dict[str, type[RadioBase]] = {}


@overload
def register_radio(kind: str, backend: None = None, *, replace: bool = False) -> Callable[[B], B]: ...


@overload
def register_radio(kind: str, backend: B, *, replace: bool = False) -> B: ...


def register_radio(kind: str, backend: B | None = None, *, replace: bool = False) -> B | Callable[[B], B]:
    """Register the radio backend class ``backend`` under ``kind`` (also usable as a class decorator).

    Parameters
    ----------
    kind : str
        The ``radio.kind`` that selects the backend, an identifier (``"soapy"``); it must
        equal ``backend.kind`` (the radio name stamped on every capture's metadata).
    backend : type
        A :class:`~sdr_isac.radio.base.RadioBase` subclass.  Its ``section`` class attribute is
        its ``[radio]`` section (a frozen dataclass subclassing
        :class:`~sdr_isac.config.RadioConfig`, ``kind`` defaulting to ``kind``), registered with
        :func:`sdr_isac.config.register_radio_section`; its classmethod
        :meth:`~sdr_isac.radio.base.RadioBase.open` builds it from ``(config, frame, scene)``
        (default: ``backend(config, frame)``).  Omitted: returns a decorator.
    replace : bool
        Allow replacing a backend already registered for ``kind``.

    Returns
    -------
    type or callable
        ``backend`` itself (or the decorator that registers and returns it).

    Raises
    ------
    ConfigError
        ``backend`` is not a RadioBase subclass, its ``kind`` differs, its section does not
        fit, or ``kind`` is taken and ``replace`` is False.
    """
    if backend is None:
        def decorate(cls: B) -> B:
            return register_radio(kind, cls, replace=replace)
        return decorate
    if not (isinstance(backend, type) and issubclass(backend, RadioBase)):
        raise ConfigError(f"radio backend {backend!r} for kind {kind!r}: allowed a subclass of RadioBase; derive "
                          "the backend from sdr_isac.radio.RadioBase", key="radio.kind")
    if backend.kind != kind:
        raise ConfigError(f"radio backend {backend.__name__}.kind = {backend.kind!r}: allowed {kind!r}, the kind it "
                          f"is registered under; set kind = {kind!r} in the class", key="radio.kind")
    held = _BACKENDS.get(kind)
    if held is not None and held is not backend and not replace:
        raise ConfigError(f"radio kind {kind!r}: already registered to {held.__name__}; pick another kind or pass "
                          "replace=True", key="radio.kind")
    register_radio_section(kind, backend.section, replace=replace)
    _BACKENDS[kind] = backend
    return backend


def unregister_radio(kind: str) -> None:
    """Remove the backend and the ``[radio]`` section of ``kind`` (a test's or plugin's); unknown kinds are ignored."""
    _BACKENDS.pop(kind, None)
    unregister_radio_section(kind)


def registered_radios() -> tuple[str, ...]:
    """The radio kinds that have a backend, in registration order."""
    return tuple(_BACKENDS)


def radio_backend(kind: str) -> type[RadioBase]:
    """The backend class registered for ``kind``.

    Raises
    ------
    ConfigError
        No backend is registered for ``kind`` (the message lists those that are).
    """
    backend = _BACKENDS.get(kind)
    if backend is None:
        raise ConfigError(f"radio.kind = {kind!r}: allowed a kind with a registered backend "
                          f"({', '.join(_BACKENDS)}); import the module that registers it (register_radio)",
                          key="radio.kind")
    return backend
