"""Shared fixtures: seeded generators and the repository root."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test."""
    return np.random.default_rng(20261127)


@pytest.fixture
def repo() -> Path:
    """The repository root."""
    return REPO


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--radio-uri", default=None,
                     help="URI of a real radio for tests marked 'hardware' (e.g. ip:192.168.2.1)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--radio-uri"):
        return
    skip = pytest.mark.skip(reason="needs a real radio: run with -m hardware --radio-uri URI")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)
