"""The ``[fusion]`` section: node-level fusion on the host."""

from __future__ import annotations

from dataclasses import dataclass

from sdr_isac.config.base import _check_fields, _num

__all__ = ["FusionConfig"]


@dataclass(frozen=True)
class FusionConfig:
    """Node-level fusion on the host: several nodes' time-aligned detections of one target.

    Parameters
    ----------
    enabled : bool
        Fuse every time-aligned set of two or more nodes of the scene and
        publish ``estimates`` (:meth:`sdr_isac.fusion.engine.FusionEngine.fuse`,
        which runs :func:`sdr_isac.fusion.modes.multi_bs.fuse_nodes`).
    target_height_m : float
        Height at which targets are located, m (the nodes' ranges and array
        angles fix the horizontal position): ground traffic about 1 m, a UAV
        its reported altitude.  -1000 ... 100000 m.
    target_height_std_m : float
        Spread of the targets' heights about ``target_height_m``, m (0 ...
        100000): an estimate that rests on one node's fix (mode ``single``,
        ``min_nodes = 1``) carries it in its covariance (a UAV 60 m up among
        cars at 1 m: tens of metres, or its fixes land some 35 m off, far
        outside a covariance that takes the height as known).  0 (the
        default): the height is known.  Fits of two or more nodes take it
        as known either way.
    gate_m : float
        Association gate: detections of different nodes whose own position
        estimates lie within this distance are one target, m (> 0 ... 1000).
    macro_nodes : tuple of str
        Ids of macro base stations (a low band covering the others): a
        target that two or more of the other (micro) nodes detect is fused
        from those alone (mode ``micro``); the macro joins only where fewer
        do (mode ``macro_micro``,
        :func:`sdr_isac.fusion.modes.macro_micro.fuse_macro_micro`).
        Empty: every node's detections are fused together.
    min_nodes : int
        Fewest nodes a set (and, in mode ``multi_bs``, the default, each
        target) must have to give an estimate, 1 ... 64; the macro-micro
        mode (``macro_nodes``) always needs two.  2 (the default):
        node-level fusion only, a target that one node alone sees gives no
        estimate.  1 also keeps such a target's single-node fix (its range
        and array angle, with their Cramér-Rao covariance; mode ``single``),
        so that a host of one node (a Wi-Fi access point's) estimates and
        tracks, and a track goes on where only one node sees its target.
    """

    enabled: bool = True
    target_height_m: float = _num(1.0, -1000.0, 100000.0, "m")
    target_height_std_m: float = _num(0.0, 0.0, 100000.0, "m")
    gate_m: float = _num(5.0, 0.0, 1000.0, "m", low_open=True)
    macro_nodes: tuple[str, ...] = ()
    min_nodes: int = _num(2, 1, 64, "nodes")

    def __post_init__(self) -> None:
        _check_fields(self)
