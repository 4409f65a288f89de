"""Cooperation: resource level (inside one node), node level (several base stations) and, later,
infrastructure level (tracking, handover, digital twin).

Modules: :mod:`~sdr_isac.fusion.completion` (compressed-sensing completion of
channel information matrices), :mod:`~sdr_isac.fusion.multiband` (bands on a
common grid), :mod:`~sdr_isac.fusion.resource`, :mod:`~sdr_isac.fusion.signals`,
:mod:`~sdr_isac.fusion.codes` (antennas, frames, reference signals, codes),
:mod:`~sdr_isac.fusion.node` (multi-BS active, passive, symbol-level).
"""
