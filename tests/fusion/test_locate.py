"""Fault exclusion consistent with the CRB covariances: cooperation never far worse than its best member."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sdr_isac.errors import InputError, SensingError
from sdr_isac.fusion import locate as nl
from sdr_isac.fusion.records import LinkMeasurement

NODES = np.array([[0.0, 0.0, 25.0], [200.0, 0.0, 25.0], [200.0, 200.0, 25.0], [0.0, 200.0, 25.0]])
TARGET = np.array([90.0, 110.0, 60.0])
AXIS0 = np.array([np.sqrt(0.5), -np.sqrt(0.5)])     # node 0's array axis (broadside towards the square's centre)
SIGMA_R = 0.05                                      # m
SIGMA_A = 0.01                                      # rad


def _cone(node: int, axis: np.ndarray, target: np.ndarray) -> float:
    u = (target - NODES[node]) / np.linalg.norm(target - NODES[node])
    return float(np.arcsin(u[:2] @ axis))


def _links(rng: np.random.Generator, outliers: dict[int, float]) -> list[LinkMeasurement]:
    truth_r = np.linalg.norm(TARGET[None] - NODES, axis=1)
    return [LinkMeasurement(i, i, float(truth_r[i] + SIGMA_R * rng.standard_normal() + outliers.get(i, 0.0)), 0.0,
                            SIGMA_R**2, 1.0, 100.0 - i) for i in range(4)]


def _anchor(links: list[LinkMeasurement], rng: np.random.Generator, angle_error_rad: float = 0.0) -> nl.SingleFix:
    alpha = _cone(0, AXIS0, TARGET) + SIGMA_A * rng.standard_normal() + angle_error_rad
    return nl.single_fix(NODES, 0, AXIS0, links[0].range_m, links[0].var_range_m2, alpha, SIGMA_A**2, TARGET[2])


def test_single_fix_inverts_the_geometry_and_its_covariance_follows_the_jacobian() -> None:
    r = float(np.linalg.norm(TARGET - NODES[0]))
    fix = nl.single_fix(NODES, 0, AXIS0, r, SIGMA_R**2, _cone(0, AXIS0, TARGET), SIGMA_A**2, TARGET[2])
    assert fix.xy_m == pytest.approx(TARGET[:2], abs=1e-9)
    # the covariance: range along the horizontal line of sight (scaled by r / horizontal), cross-range r sigma_a
    u = (TARGET[:2] - NODES[0, :2]) / np.linalg.norm(TARGET[:2] - NODES[0, :2])
    assert np.sqrt(u @ fix.cov_m2 @ u) > SIGMA_R
    across = np.array([-u[1], u[0]])
    assert np.sqrt(across @ fix.cov_m2 @ across) == pytest.approx(r * SIGMA_A, rel=0.2)
    alpha, _ = fix.angle_at(TARGET[:2])
    assert alpha == pytest.approx(_cone(0, AXIS0, TARGET), abs=1e-12)


def test_two_outliers_of_four_do_not_outvote_the_consensus(rng: np.random.Generator) -> None:
    """Fault exclusion one link at a time (RAIM) stops at three links; two noise peaks drag it off."""
    errors = []
    for _ in range(20):
        links = _links(rng, {2: 180.0, 3: -95.0})
        xy, cov, kept = nl.locate_robust(NODES, links, TARGET[2], anchor=_anchor(links, rng))
        assert sorted(m.tx for m in kept) == [0, 1]
        errors.append(float(np.linalg.norm(xy - TARGET[:2])))
        assert np.all(np.linalg.eigvalsh(cov) > 0)
    # two ranges and one angle: within 5 sqrt(trace CRB) of the truth every time
    assert max(errors) < 5 * np.sqrt(np.trace(cov))


def test_no_two_links_agree_the_best_single_fix_stands(rng: np.random.Generator) -> None:
    links = _links(rng, {1: 140.0, 2: -60.0, 3: 75.0})
    anchor = _anchor(links, rng)
    xy, cov, kept = nl.locate_robust(NODES, links, TARGET[2], anchor=anchor)
    assert xy == pytest.approx(anchor.xy_m, abs=1e-9)
    np.testing.assert_allclose(cov, anchor.cov_m2)
    assert [m.tx for m in kept] == [0]                 # fewer than two links: the caller labels it "single"


def test_the_best_node_itself_an_outlier_is_outvoted_by_three_agreeing_links(rng: np.random.Generator) -> None:
    links = _links(rng, {0: 120.0})
    anchor = _anchor(links, rng)
    xy, cov, kept = nl.locate_robust(NODES, links, TARGET[2], anchor=anchor)
    assert sorted(m.tx for m in kept) == [1, 2, 3]
    assert np.linalg.norm(xy - TARGET[:2]) < 5 * np.sqrt(np.trace(cov))


def test_consistent_links_give_the_plain_wls_fix_with_the_angle(rng: np.random.Generator) -> None:
    links = _links(rng, {})
    anchor = _anchor(links, rng)
    xy, cov, kept = nl.locate_robust(NODES, links, TARGET[2], anchor=anchor)
    assert len(kept) == 4
    plain, plain_cov = nl.locate(NODES, links, TARGET[2], anchor.xy_m, angle=anchor)
    np.testing.assert_allclose(xy, plain, atol=1e-6)
    np.testing.assert_allclose(cov, plain_cov, rtol=1e-6)
    # the angle adds information: the covariance is no larger than that of the ranges alone
    assert np.trace(cov) <= np.trace(nl.locate(NODES, links, TARGET[2])[1]) + 1e-15


def test_cooperation_is_never_far_worse_than_the_single_node(rng: np.random.Generator) -> None:
    """Random faults on every link, the best node's too: over 60 draws the fused RMSE stays at or below the
    single node's (the consensus overrules the single fix only with a redundant measurement)."""
    err_single, err_fused = [], []
    for _ in range(60):
        faults = {i: float(rng.uniform(-100, 150)) for i in range(4) if rng.random() < 0.4}
        links = _links(rng, faults)
        anchor = _anchor(links, rng)
        xy, _, _ = nl.locate_robust(NODES, links, TARGET[2], anchor=anchor)
        err_single.append(float(np.linalg.norm(anchor.xy_m - TARGET[:2])))
        err_fused.append(float(np.linalg.norm(xy - TARGET[:2])))
    assert np.sqrt(np.mean(np.square(err_fused))) <= np.sqrt(np.mean(np.square(err_single)))


def test_bad_arguments_are_refused() -> None:
    links = _links(np.random.default_rng(0), {})
    with pytest.raises(InputError, match="gate_sigma"):
        nl.locate_robust(NODES, links, TARGET[2], gate_sigma=float("nan"))
    with pytest.raises(SensingError, match="need at least 2"):
        nl.locate_robust(NODES, links[:1], TARGET[2])
    with pytest.raises(SensingError, match="need at least 2"):
        nl.velocity_vector(NODES, links[:1], TARGET)
    with pytest.raises(SensingError, match="height difference"):
        nl.single_fix(NODES, 0, AXIS0, 10.0, 1.0, 0.0, 1e-4, TARGET[2])
    assert dataclasses.is_dataclass(nl.SingleFix)
