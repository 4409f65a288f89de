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
