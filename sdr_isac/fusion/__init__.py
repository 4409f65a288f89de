"""Cooperation: resource level (inside one node), node level (several base stations) and, later,
infrastructure level (tracking, handover, digital twin).

Modules: :mod:`~sdr_isac.fusion.completion` (compressed-sensing completion of
channel information matrices), :mod:`~sdr_isac.fusion.multiband` (bands on a
common grid), :mod:`~sdr_isac.fusion.resource`, :mod:`~sdr_isac.fusion.signals`,
:mod:`~sdr_isac.fusion.codes` (antennas, frames, reference signals, codes),
:mod:`~sdr_isac.fusion.records` (link measurements, target estimates, tracks),
:mod:`~sdr_isac.fusion.links` (captures and CIMs to link measurements),
:mod:`~sdr_isac.fusion.locate` (position and velocity from links),
:mod:`~sdr_isac.fusion.associate` (association across nodes),
:mod:`~sdr_isac.fusion.modes` (the node-level modes: multi-BS active and passive, macro-micro,
BS-UE, BS-RIS, and the registry the engine looks them up in),
:mod:`~sdr_isac.fusion.engine` (a time-aligned set to estimates),
:mod:`~sdr_isac.fusion.metrics` (evaluation against the ground truth).
"""
