"""The registry of node-level modes: registration rules, lookup errors, and the engine dispatching through it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sdr_isac import config
from sdr_isac.errors import InputError
from sdr_isac.fusion.engine import FusionEngine, NodeResult
from sdr_isac.fusion.modes import NodePlace, base, mode_fusion, register_mode, registered_modes
from sdr_isac.fusion.modes.macro_micro import fuse_macro_micro_set
from sdr_isac.fusion.modes.multi_bs import fuse_multi_bs
from sdr_isac.fusion.records import TargetEstimate
from sdr_isac.sensing import Detection

REPO = Path(__file__).resolve().parents[3]


def test_importing_the_package_registers_the_set_level_modes() -> None:
    assert {"multi_bs", "macro_micro"} <= set(registered_modes())
    assert mode_fusion("multi_bs") is fuse_multi_bs and mode_fusion("macro_micro") is fuse_macro_micro_set


@pytest.mark.parametrize("name", ["", None, 3])
def test_a_mode_name_must_be_a_non_empty_string(name: Any) -> None:
    with pytest.raises(InputError, match="mode name = .*allowed a non-empty string"):
        register_mode(name, fuse_multi_bs)


def test_a_taken_name_is_refused_unless_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "_MODES", dict(base._MODES))
    with pytest.raises(InputError, match="'multi_bs' is already registered: pass replace=True"):
        register_mode("multi_bs", fuse_macro_micro_set)
    assert register_mode("multi_bs", fuse_macro_micro_set, replace=True) is fuse_macro_micro_set
    assert mode_fusion("multi_bs") is fuse_macro_micro_set


def test_an_unknown_mode_names_the_registered_ones_and_the_nearest() -> None:
    with pytest.raises(InputError, match="fusion mode = 'multi-bs'.*'multi_bs'.*did you mean 'multi_bs'"):
        mode_fusion("multi-bs")


def _detection(range_m: float) -> Detection:
    return Detection(range_m=range_m, velocity_mps=0.0, doppler_hz=0.0, delay_s=2.0 * range_m / 3e8, snr_db=20.0,
                     geometry="monostatic", angle_rad=0.0, range_var_m2=0.01, velocity_var_mps2=0.01,
                     angle_var_rad2=1e-4, map_snr_db=30.0)


@pytest.mark.parametrize("macro_nodes, expected", [((), "multi_bs"), (("bs0",), "macro_micro")])
def test_the_engine_fuses_through_the_registered_mode(monkeypatch: pytest.MonkeyPatch, macro_nodes: tuple[str, ...],
                                                      expected: str) -> None:
    cfg = config.load(REPO / "hw_configs" / "sim_multi_bs.toml")
    cfg = dataclasses.replace(cfg, fusion=dataclasses.replace(cfg.fusion, macro_nodes=macro_nodes))
    calls: list[tuple[Any, ...]] = []
    marker = TargetEstimate.planar(np.zeros(2), np.eye(2), 1.0, t_s=2.5, nodes=("bs0", "bs1"))

    def fake(places: Mapping[str, NodePlace], dets: Mapping[str, Sequence[Detection]], fusion_cfg: Any,
             passive: Mapping[str, str], t_s: float) -> list[TargetEstimate]:
        calls.append((dict(places), dict(dets), fusion_cfg, dict(passive), t_s))
        return [marker]

    monkeypatch.setattr(base, "_MODES", dict(base._MODES))
    register_mode(expected, fake, replace=True)
    engine = FusionEngine(cfg)
    assert engine.mode == expected
    members = {n: NodeResult(n, 0, 2.5, (_detection(40.0 + i),)) for i, n in enumerate(("bs0", "bs1"))}
    assert engine.fuse(members, t_s=2.5) == [marker]
    (places, dets, fusion_cfg, passive, t_s), = calls
    assert set(places) == {"bs0", "bs1"} and places["bs1"] == engine.place("bs1")
    assert dets == {n: r.detections for n, r in members.items()}
    assert fusion_cfg is cfg.fusion and passive == {} and t_s == 2.5
