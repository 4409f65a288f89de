"""Matching detections to simulated ground truth: moved to :mod:`sdr_isac.fusion.metrics`.

A thin re-export for ``tests/stream/wire_oracle.py`` during issue 14; import ``sdr_isac.fusion.metrics``.
"""

from sdr_isac.fusion.metrics import match_targets

__all__ = ["match_targets"]
