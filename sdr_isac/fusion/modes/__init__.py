"""The node-level cooperation modes (article §IV), one module each, around a small registry.

- :mod:`~sdr_isac.fusion.modes.base` — :class:`NodePlace` and the registry
  of set-level modes (:func:`register_mode`, :func:`mode_fusion`): the
  engine fuses a time-aligned set by the mode's name, not by a switch.
- :mod:`~sdr_isac.fusion.modes.multi_bs` — multi-BS active and passive
  (``fuse_nodes``, registered as ``multi_bs``) and symbol-level refinement.
- :mod:`~sdr_isac.fusion.modes.macro_micro` — macro-micro BS cooperation
  (``fuse_macro_micro``, registered as ``macro_micro``).
- :mod:`~sdr_isac.fusion.modes.bs_ue` — BS-UE cooperation: coverage cases,
  their fusions and the live case label (``live_case``).
- :mod:`~sdr_isac.fusion.modes.ris` — BS-RIS: a target located by an RIS scan.

Importing the package registers the modes.
"""

from sdr_isac.fusion.modes import bs_ue, macro_micro, multi_bs, ris
from sdr_isac.fusion.modes.base import ModeFusion, NodePlace, mode_fusion, register_mode, registered_modes

__all__ = ["ModeFusion", "NodePlace", "mode_fusion", "register_mode", "registered_modes", "bs_ue", "macro_micro",
           "multi_bs", "ris"]
