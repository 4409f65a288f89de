"""The extension point of the node-level modes: a registry of mode name -> the function that fuses a set.

A set-level mode takes the places (:class:`NodePlace`) and detections of one time-aligned set
(receive-only nodes already split per transmitter, ``passive`` naming the
transmitter each hears), the ``[fusion]`` section and the set's time, and
returns :class:`~sdr_isac.fusion.records.TargetEstimate` records:

    fuse(places, detections, fusion_cfg, passive, t_s) -> list[TargetEstimate]

Each mode registers itself where it is defined (``register_mode("multi_bs",
...)`` at the end of :mod:`~sdr_isac.fusion.modes.multi_bs`);
:meth:`sdr_isac.fusion.engine.FusionEngine.fuse` looks the mode up by name
(:func:`mode_fusion`) instead of a switch.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sdr_isac.config import FusionConfig
from sdr_isac.errors import InputError
from sdr_isac.fusion.records import TargetEstimate
from sdr_isac.sensing import Detection

__all__ = ["NodePlace", "ModeFusion", "register_mode", "registered_modes", "mode_fusion"]


@dataclass(frozen=True)
class NodePlace:
    """Where a node is: its id, position (3,) m, receive-array boresight ``yaw_deg`` (degrees from +x towards +y).

    A detection's ``angle_rad`` is measured from the boresight towards the array's +y end, turned with the node.
    ``role`` (``bs``, ``ue``, ...) and ``transmits`` come from the scene.
    """

    id: str
    position_m: tuple[float, ...]
    yaw_deg: float = 0.0
    role: str = "bs"
    transmits: bool = True


#: ``fuse(places, detections, fusion_cfg, passive, t_s) -> list[TargetEstimate]``
ModeFusion = Callable[[Mapping[str, NodePlace], Mapping[str, Sequence[Detection]], FusionConfig, Mapping[str, str],
                       float], list[TargetEstimate]]

_MODES: dict[str, ModeFusion] = {}


def register_mode(name: str, fuse: ModeFusion, *, replace: bool = False) -> ModeFusion:
    """Register ``fuse`` as the set-level fusion of mode ``name`` (returns it, so it can decorate).

    Raises :class:`InputError` when ``name`` is not a non-empty string or is taken (unless ``replace``).
    """
    if not (isinstance(name, str) and name):
        raise InputError(f"mode name = {name!r}: allowed a non-empty string, e.g. 'multi_bs'")
    if name in _MODES and not replace:
        raise InputError(f"mode {name!r} is already registered: pass replace=True to replace it, or pick "
                         "another name")
    _MODES[name] = fuse
    return fuse


def registered_modes() -> tuple[str, ...]:
    """The names of the registered set-level modes, in registration order."""
    return tuple(_MODES)


def mode_fusion(name: str) -> ModeFusion:
    """The fusion function of mode ``name``; :class:`InputError` naming the registered ones if there is none."""
    if name not in _MODES:
        near = difflib.get_close_matches(str(name), _MODES, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise InputError(f"fusion mode = {name!r}: allowed one of {', '.join(map(repr, _MODES))}{hint} "
                         "(register a new one with sdr_isac.fusion.modes.register_mode)")
    return _MODES[name]
