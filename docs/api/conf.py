"""Sphinx configuration of the sdr_isac API reference (``make docs``; built with warnings as errors).

Each package page uses the ``autopackage`` directive defined here: the package's own docstring and
members, then every public module of it (found with :mod:`pkgutil`, so a new module is documented
without editing a page), each by ``automodule`` with its members. Docstrings are numpydoc.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import sys
from pathlib import Path

from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

project = "sdr_isac"
author = "sdr_isac contributors"
copyright = "sdr_isac contributors, BSD-3-Clause"   # noqa: A001 (Sphinx's name)
release = importlib.import_module("sdr_isac").__version__

extensions = ["sphinx.ext.autodoc", "numpydoc"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []

# -- autodoc and numpydoc --------------------------------------------------------------------------------------
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"               # the numpydoc "Parameters" sections give types (with units and shapes)
numpydoc_show_class_members = False      # members are documented by autodoc, once
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()
# Cross-references are not checked: many docstrings name types of numpy, scipy, sigmf or Stone Soup
# (``ndarray``, ``Generator``) whose inventories are not downloaded (the build runs offline).
nitpicky = False


# -- docstrings written as plain text ----------------------------------------------------------------------------
# The docstrings write absolute values and norms as |x| (plain text, as numpy's own docstrings do in prose);
# reST reads |x| as a substitution. Escape a bar outside inline literals and roles (`...`), never in a line
# block or a grid-table row (a line that starts with a bar and a space).
_LITERAL = re.compile(r"(``.*?``|`[^`]*`)")


def _escape_bars(line: str) -> str:
    if "|" not in line or re.match(r"\s*\|(\s|$)", line):         # a line block or a grid-table row
        return line
    parts = _LITERAL.split(line)
    return "".join(part if i % 2 else part.replace("|", r"\|") for i, part in enumerate(parts))


def _plain_bars(app, what, name, obj, options, lines: list[str]) -> None:  # noqa: ANN001 (Sphinx's hook)
    lines[:] = [_escape_bars(line) for line in lines]


# -- known docstring problems in modules this build does not own -------------------------------------------------
# (file suffix, start of the message): each is a real problem of that docstring, listed so that it is fixed
# there; the build reports it as a note instead of failing. Keep this list short and name the fix.
KNOWN_DOCSTRING_PROBLEMS: list[tuple[str, str]] = [
    # (file suffix, start of the message): a known problem becomes a note instead of failing the build
]


class _KnownProblems(logging.Filter):
    """Turn a known problem into a note: INFO for the handlers of notes, dropped by the handler of warnings."""

    def __init__(self, drop: bool) -> None:
        super().__init__()
        self.drop = drop

    def filter(self, record: logging.LogRecord) -> bool:
        location = str(getattr(record, "location", "") or "")
        known = record.levelno >= logging.WARNING and any(
            suffix in location and record.getMessage().startswith(start) for suffix, start in KNOWN_DOCSTRING_PROBLEMS)
        if known:
            note = f"{location}: known docstring problem (docs/api/conf.py): {record.getMessage()}"
            record.msg, record.args = note, ()
            record.levelno, record.levelname = logging.INFO, "INFO"
        return not (self.drop and (known or record.levelname == "INFO" and "known docstring problem" in record.msg))


class AutoPackage(Directive):
    """``.. autopackage:: sdr_isac.sensing``: the package and every public module in it, one section each."""

    required_arguments = 1

    def run(self) -> list:
        name = self.arguments[0]
        package = importlib.import_module(name)
        modules = [name]
        if hasattr(package, "__path__"):
            found = pkgutil.walk_packages(package.__path__, prefix=name + ".")
            modules += sorted(m.name for m in found
                              if not any(part.startswith("_") for part in m.name.split(".")))
        lines: list[str] = []
        for module in modules:
            title = f"``{module}``"
            lines += [title, "-" * len(title), "", f".. automodule:: {module}", ""]
        source = self.state_machine.get_source_and_line(self.lineno)[0]
        self.state_machine.insert_input(StringList(lines, source=source), source)
        return []


def setup(app):  # noqa: ANN001, ANN201 (Sphinx's hook)
    app.add_directive("autopackage", AutoPackage)
    app.connect("autodoc-process-docstring", _plain_bars)
    for handler in logging.getLogger("sphinx").handlers:        # first, before Sphinx's own filters
        handler.filters.insert(0, _KnownProblems(drop=handler.level >= logging.WARNING))
    return {"parallel_read_safe": True}
