"""The ``[twin]`` section: declared ranges refused with the key, the value and the fix."""

from __future__ import annotations

import pytest

from sdr_isac import config
from sdr_isac.config.base import field_bounds
from sdr_isac.config.twin import TwinConfig
from sdr_isac.errors import ConfigError


def test_the_section_parses_from_toml():
    cfg = config.loads("[twin]\nenabled = true\ndb = 'postgresql://twin@db/twin'\nqueue_size = 64\n"
                       "retention_s = 3600.0\nbusy_timeout_s = 0.5\n")
    assert cfg.twin == TwinConfig(True, "postgresql://twin@db/twin", 64, 3600.0, 60.0, 0.5)


@pytest.mark.parametrize("key, value, words", [
    ("queue_size", 0, "queue_size = 0: allowed 1 ... 1000000 batches"),
    ("queue_size", 10**7, "allowed 1 ... 1000000"),
    ("queue_size", 2.5, "whole number"),
    ("retention_s", 0.5, "retention_s = 0.5: allowed 0 or 1 ... 1e\\+10 s"),
    ("retention_s", float("inf"), "retention_s"),
    ("prune_interval_s", 0.0, "prune_interval_s"),
    ("busy_timeout_s", -1.0, "busy_timeout_s"),
    ("busy_timeout_s", float("nan"), "busy_timeout_s"),
    ("db", "  ", "twin.db = .*a SQLite file path or a PostgreSQL DSN"),
    ("db", 5, "db"),
])
def test_out_of_range_values_are_refused(key, value, words):
    with pytest.raises(ConfigError, match=words):
        TwinConfig(**{key: value})


def test_every_numeric_field_declares_its_range():
    assert set(field_bounds(TwinConfig)) == {"queue_size", "retention_s", "prune_interval_s", "busy_timeout_s"}


def test_an_unknown_key_is_refused():
    with pytest.raises(ConfigError, match="queue_sise"):
        config.loads("[twin]\nqueue_sise = 3\n")
