"""The named Monte Carlo scenarios of ``sdr-isac experiment``."""

from __future__ import annotations

from collections.abc import Callable

from sdr_isac.errors import ConfigError
from sdr_isac.experiments import continuity, fig5, fig6, nodes, resource, roc
from sdr_isac.experiments.runner import Scenario

__all__ = ["scenario", "scenario_names"]

_FACTORIES: dict[str, Callable[[], Scenario]] = {
    "fig5": fig5.fig5_scenario,
    "fig6": fig6.fig6_scenario,
    "resource": resource.resource_scenario,
    "nodes": nodes.nodes_scenario,
    "continuity": continuity.continuity_scenario,
    "roc": roc.roc_scenario,
}


def scenario_names() -> list[str]:
    """Names of the scenarios, sorted."""
    return sorted(_FACTORIES)


def scenario(name: str) -> Scenario:
    """The scenario ``name``; an unknown name raises :class:`ConfigError` listing the known ones."""
    if name not in _FACTORIES:
        raise ConfigError(f"experiment {name!r} is not known: allowed {', '.join(scenario_names())}; "
                          "`sdr-isac experiment --list` shows them", key="experiment")
    return _FACTORIES[name]()
