"""Qt runs offscreen, bound to PyQt6; the display tests are skipped where pyqtgraph or PyQt6 is missing."""

from __future__ import annotations

import importlib.util
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTEST_QT_API", "pyqt6")

collect_ignore_glob = [] if all(importlib.util.find_spec(m) for m in ("pyqtgraph", "PyQt6", "pytestqt")) \
    else ["test_*.py"]
