"""Tracking on Stone Soup: the tracker with handover, and its motion and measurement models.

Importing this package imports Stone Soup (slow); nothing else in ``sdr_isac.fusion`` does.

- :class:`~sdr_isac.fusion.tracking.tracker.Tracker`: link measurements and target estimates in,
  :class:`~sdr_isac.fusion.records.Track` records out (GNN or JPDA, M-of-N confirmation, deletion,
  handover between stations and operators);
- :mod:`~sdr_isac.fusion.tracking.models`: nearly-constant-velocity motion, monostatic and bistatic
  link measurement models with analytic Jacobians, estimates as linear measurements;
- :mod:`~sdr_isac.fusion.tracking.manoeuvre`: the manoeuvre component of the motion model (a
  Gaussian-sum process noise sized from the target class's acceleration) and its predictor and updaters;
- :func:`~sdr_isac.fusion.tracking.metrics.position_distances`: OSPA and GOSPA of tracks against the truth.
"""

from sdr_isac.fusion.tracking.metrics import position_distances
from sdr_isac.fusion.tracking.models import BistaticLinkModel, MonostaticLinkModel, link_model, ncv_transition
from sdr_isac.fusion.tracking.tracker import Tracker

__all__ = ["Tracker", "MonostaticLinkModel", "BistaticLinkModel", "link_model", "ncv_transition",
           "position_distances"]
