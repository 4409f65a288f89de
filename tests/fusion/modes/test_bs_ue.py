"""BS-UE cooperation: coverage radii and the case classifier against the link-budget equations, resources, fusion."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as sp_opt

from sdr_isac.errors import InputError
from sdr_isac.fusion.coverage import LinkBudget, comm_radius_m, sensing_radius_m
from sdr_isac.fusion.modes import bs_ue
from sdr_isac.fusion.records import LinkMeasurement
from sdr_isac.sensing.crb import measurement_matrix, snr_per_re_db
from sdr_isac.units import BOLTZMANN_J_PER_K, REFERENCE_TEMPERATURE_K
from sdr_isac.units import SPEED_OF_LIGHT_MPS as C

BS_SENSE = LinkBudget(43.0, 17.0, 17.0, 3.5e9, 30e3, 256, 256, 5.0, loss_db=20.0)
UPLINK = LinkBudget(23.0, 0.0, 17.0, 3.5e9, 30e3, 256, 256, 5.0, loss_db=44.0)
DOWNLINK = LinkBudget(43.0, 17.0, 0.0, 3.5e9, 30e3, 256, 256, 7.0, loss_db=50.0)
BS = np.array([0.0, 0.0, 25.0])


def _friis_snr_db(b: LinkBudget, r: float) -> float:
    """One-way per-RE SNR written out: P_t G_t G_r (lambda / (4 pi R))**2 / (k T0 F K df) less the losses."""
    lam = C / b.carrier_hz
    p_r = b.tx_power_dbm - 30 + b.tx_gain_dbi + b.rx_gain_dbi + 20 * np.log10(lam / (4 * np.pi * r))
    noise = 10 * np.log10(BOLTZMANN_J_PER_K * REFERENCE_TEMPERATURE_K * b.num_subcarriers
                          * b.subcarrier_spacing_hz) + b.noise_figure_db
    return float(p_r - noise - b.loss_db)


def _radii() -> tuple[float, float, float]:
    def sense(r: float) -> float:
        return snr_per_re_db(43.0, 17.0, 17.0, 3.5e9, 0.01, r, r, 5.0, 256 * 30e3, 256, 256) - 20.0 \
            + 10 * np.log10(14 * 256) - 13.0
    r_ds = sp_opt.brentq(sense, 1.0, 1e6)
    r_ul = sp_opt.brentq(lambda r: _friis_snr_db(UPLINK, r) + 5.0, 1.0, 1e8)
    r_dl = sp_opt.brentq(lambda r: _friis_snr_db(DOWNLINK, r) + 5.0, 1.0, 1e8)
    return float(r_ds), float(r_ul), float(r_dl)


def test_radii_follow_the_link_budget() -> None:
    r_ds, r_ul, r_dl = _radii()
    radii = bs_ue.coverage_radii(BS_SENSE, UPLINK, DOWNLINK, 0.01, 14)
    assert radii.downlink_sensing_m == pytest.approx(r_ds, rel=1e-6)
    assert radii.uplink_comm_m == pytest.approx(r_ul, rel=1e-6)
    assert radii.downlink_comm_m == pytest.approx(r_dl, rel=1e-6)
    assert r_ds < r_ul < r_dl            # the ordering of the article's Fig. 3
    assert sensing_radius_m(BS_SENSE, 0.01, 14, 16.0) == pytest.approx(r_ds * 10 ** (-3 / 40), rel=1e-9)
    assert comm_radius_m(UPLINK, -2.0) == pytest.approx(r_ul * 10 ** (-3 / 20), rel=1e-9)


@pytest.mark.parametrize(("where", "case"), [(0.5, "A"), (0.97, "A"), (1.03, "B"), (1.5, "B"), (2.3, "C"),
                                             (2.9, "C"), (3.1, "none")])
def test_classifier_against_the_radii(where: float, case: str) -> None:
    """``where`` walks out along the radii: 0-1 below R_ds, 1-2 between R_ds and R_ul, 2-3 up to R_dl."""
    r_ds, r_ul, r_dl = _radii()
    edges = [0.0, r_ds, r_ul, r_dl, 2 * r_dl]
    i = int(where)
    r = edges[i] + (where - i) * (edges[i + 1] - edges[i])
    azimuth = 0.7
    target = BS + np.array([r * np.cos(azimuth), r * np.sin(azimuth), 0.0])
    assert bs_ue.classify(target, BS, bs_ue.CoverageRadii(r_ds, r_ul, r_dl)) == case


def test_allocation_is_orthogonal_and_complete() -> None:
    masks = bs_ue.allocate_symbols(3, 28, 64)
    total = np.sum(masks, axis=0)
    assert np.all(total == 1)
    with pytest.raises(InputError, match="num_ues"):
        bs_ue.allocate_symbols(0, 28, 64)


def test_case_b_fusion_follows_the_crb(rng: np.random.Generator) -> None:
    """Uploaded UE reports with Gaussian errors of their stated variances: the BS's WLS reaches (H^T W H)^-1."""
    ues = np.array([[-15.0, -12.0, 1.5], [12.0, -14.0, 1.5], [2.0, -18.0, 1.5]])
    target, v = np.array([0.0, 0.0, 15.0]), np.array([9.0, 6.0, 0.0])
    var_r, var_v = np.array([0.04, 0.09, 0.06]), np.array([0.3, 0.5, 0.4])
    h = measurement_matrix(ues, target)
    errs = []
    for _ in range(100):
        r = np.linalg.norm(target - ues, axis=1) + rng.normal(0, np.sqrt(var_r))
        rate = h @ v + rng.normal(0, np.sqrt(var_v))
        reports = [LinkMeasurement(i, i, r[i], rate[i], var_r[i], var_v[i], 10.0) for i in range(3)]
        est = bs_ue.fuse_case_b(ues, reports, 15.0, [0.5, 0.5, 0.0, 0.0])
        errs.append(est.xy_m - target[:2])
    hh = h[:, :2]
    bound = np.sqrt(np.trace(np.linalg.inv(hh.T @ (hh / var_r[:, None]))))
    rmse = np.sqrt(np.mean(np.sum(np.array(errs) ** 2, axis=1)))
    assert 0.75 * bound <= rmse <= 1.3 * bound


def test_case_b_rejects_bistatic_reports() -> None:
    ues = np.zeros((2, 3))
    with pytest.raises(InputError, match="monostatic UE reports"):
        bs_ue.fuse_case_b(ues, [LinkMeasurement(0, 1, 1.0, 0.0, 1.0, 1.0, 1.0)] * 4, 1.0, [0, 0, 0, 0])


def test_live_case_follows_who_detected() -> None:
    roles = {"bs0": "bs", "bs1": "bs", "ue1": "ue", "ue2": "ue", "bs0_ul": "rx", "rx9": "rx"}
    uplink = {"bs0_ul": "ue1", "rx9": "bs0"}
    assert bs_ue.live_case(["bs0", "ue1", "bs0_ul"], roles, uplink) == "A"
    assert bs_ue.live_case(["ue1", "ue2"], roles, uplink) == "B"
    assert bs_ue.live_case(["ue2", "bs0_ul"], roles, uplink) == "B"        # an uplink reflection, no BS echo
    assert bs_ue.live_case(["bs0", "bs0_ul"], roles, uplink) == "A"        # the BS and a UE's uplink
    assert bs_ue.live_case(["bs0", "bs1", "rx9"], roles, uplink) == ""     # multi-BS: not a BS-UE set
