"""Live display of range-Doppler maps, detections and a top view (pyqtgraph with PyQt6).

The only package that imports Qt.  :mod:`~sdr_isac.display.sources` feeds
frames from background threads (no Qt there): a replayed recording sensed
here, or what a fusion host publishes (``rdmap`` and ``detections``
messages, through :mod:`sdr_isac.stream.subscribe`);
:mod:`~sdr_isac.display.record` writes what Record asks for;
:mod:`~sdr_isac.display.window` draws; :mod:`~sdr_isac.display.app` is the
command-line entry.  Run headless with ``QT_QPA_PLATFORM=offscreen``.
Install with ``pip install 'sdr_isac[display]'``.
"""
