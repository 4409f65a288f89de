"""Live display of range-Doppler maps and detections (pyqtgraph with PyQt6).

The only package that imports Qt.  :mod:`~sdr_isac.display.sources` feeds
sensing results from a background thread (no Qt there);
:mod:`~sdr_isac.display.window` draws them; :mod:`~sdr_isac.display.app` is
the command-line entry.  Run headless with ``QT_QPA_PLATFORM=offscreen``.
Install with ``pip install 'sdr_isac[display]'``.
"""
