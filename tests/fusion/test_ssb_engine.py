"""The fusion engine senses a receive-only node on a gNB's SS/PBCH blocks (issue #16 item 4).

``hw_configs/sim_ssb_passive.toml``: gnb0 transmits SS/PBCH bursts, PDSCH DMRS and data; rx1, 60 m away, receives
only, with a 20 ns clock offset and a 700 Hz CFO.  Through :class:`~sdr_isac.fusion.engine.FusionEngine` (the path
a host takes) rx1's capture must give the line of sight and the car's bistatic range sum and rate, each within
3 sqrt(CRB) of the truth the simulated scene puts in the capture's metadata; the CRB is computed here from the
truth's SNRs on the job's mask (:func:`sdr_isac.sensing.crb.delay_doppler_crb`), independently of the estimate.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdr_isac import config, radio
from sdr_isac.errors import InputError, NonFiniteSampleError, SensingError
from sdr_isac.fusion.engine import FusionEngine, SensingJob
from sdr_isac.fusion.links import passive_grid, passive_links, passive_paths
from sdr_isac.sensing.crb import delay_doppler_crb
from sdr_isac.units import SPEED_OF_LIGHT_MPS as C
from sdr_isac.waveform import IsacFrame

CONFIG = Path(__file__).resolve().parents[2] / "hw_configs" / "sim_ssb_passive.toml"


@pytest.fixture(scope="module")
def cfg():
    return config.load(CONFIG)


def _capture(cfg):
    frame = IsacFrame(cfg.frame)
    with radio.open_radio(cfg) as rx:                         # radio.node_id = "rx1": the receive-only node
        return rx.rx(rx.capture_length(frame.num_samples))


@pytest.fixture(scope="module")
def capture(cfg):
    return _capture(cfg)


@pytest.fixture(scope="module")
def sensed(cfg, capture):
    engine = FusionEngine(cfg)
    return engine, engine.sensing_jobs(capture), engine.sense(capture, 0)


def test_the_receive_only_node_is_sensed_on_the_ssb_not_by_the_map(cfg, capture, sensed):
    engine, jobs, _ = sensed
    (job,) = jobs
    assert job.source == "gnb0" and job.method == "passive_ssb" and job.config.geometry == "bistatic"
    assert {"ssb_pss", "ssb_sss", "pbch_dmrs", "dmrs"} == set(job.config.signals)
    own = dataclasses.replace(capture, node_id="gnb0")                # the transmitter senses its own echoes
    assert [j.method for j in engine.sensing_jobs(own)] == ["map"]


def test_line_of_sight_and_car_within_three_sqrt_crb_of_the_truth(cfg, capture, sensed):
    engine, (job,), result = sensed
    truth = {p["kind"]: p for p in capture.metadata["truth"]["paths"]}
    dets = result.by_source["gnb0"]
    grid = passive_grid(IsacFrame(job.frame), job.config.signals)

    def bound(*kinds: str) -> tuple[float, float]:
        b = sum(delay_doppler_crb(10 ** (truth[k]["snr_per_re_db"] / 10), grid.pilots, grid.subcarrier_spacing_hz,
                                  grid.symbol_times_s) for k in kinds)
        return C**2 * float(b[0, 0]), (C / grid.carrier_hz) ** 2 * float(b[1, 1])

    # the line of sight: at c times its delay (length plus the node's clock offset, from the capture's frame start)
    los = min(dets, key=lambda d: abs(d.range_m - 60.0))
    var_los, _ = bound("los")
    assert abs(los.range_m - C * truth["los"]["delay_s"]) < 3 * math.sqrt(var_los), (los, truth["los"])
    assert abs(los.range_m - 60.0 - C * 2e-8) < 0.01                 # 60 m and the 20 ns clock_offset_s
    # the CFO the node removed: the scene's cfo_hz (700 Hz); the direct path's Doppler bound, converted to Hz
    _, var_los_rate = bound("los")
    sigma_cfo_hz = math.sqrt(var_los_rate) * grid.carrier_hz / C
    assert abs(result_cfo(engine, capture, job) - 700.0) < max(3 * sigma_cfo_hz, 0.05)
    # the car: one bistatic link after referencing to the line of sight, as multi-BS fusion does
    nodes = np.array([n.position_m for n in cfg.scene.nodes], dtype=float)
    (link,) = passive_links(nodes, 0, 1, dets)
    var_s, var_rate = bound("los", "target")
    assert abs(link.range_m - truth["target"]["range_sum_m"]) < 3 * math.sqrt(var_s), (link, truth["target"])
    assert abs(link.rate_mps - truth["target"]["bistatic_velocity_mps"]) < 3 * math.sqrt(var_rate), \
        (link, truth["target"])
    # the variances the detections carry come from the estimated SNR: within a factor 2 of the truth's bound
    assert 0.5 < link.var_range_m2 / var_s < 2.0 and 0.5 < link.var_rate_mps2 / var_rate < 2.0


def result_cfo(engine, capture, job) -> float:
    from sdr_isac.fusion.engine import sense_passive_ssb
    result = sense_passive_ssb(capture, job)
    assert result.map is None and result.diagnostics["n_cell_id"] == 17
    return float(result.diagnostics["cfo_hz"])


def test_no_target_gives_the_line_of_sight_and_no_link(cfg):
    """Without the car the second fitted path is noise or the direct path's residual: dropped, no false echo."""
    empty = dataclasses.replace(cfg, scene=dataclasses.replace(cfg.scene, targets=()))
    capture = _capture(empty)
    result = FusionEngine(empty).sense(capture, 0)
    dets = result.by_source["gnb0"]
    assert len(dets) == 1 and abs(dets[0].range_m - 60.0 - C * 2e-8) < 0.01
    nodes = np.array([n.position_m for n in cfg.scene.nodes], dtype=float)
    assert passive_links(nodes, 0, 1, dets) == []


def test_another_cell_is_refused_with_both_ids(cfg, capture):
    other = dataclasses.replace(cfg.frame, ssb=dataclasses.replace(cfg.frame.ssb, n_cell_id=18))
    engine = FusionEngine(dataclasses.replace(cfg, frame=other))
    with pytest.raises(SensingError, match=r"N_ID\^cell = 17.*n_cell_id = 18"):
        engine.sense(capture, 0)


def test_a_nan_sample_is_refused_naming_it(cfg, capture):
    """The passive SSB path checks every sample first (a host leaves that check to its sensing)."""
    iq = capture.iq.copy()
    iq[0, 1234] = complex(np.nan, 0.0)
    with pytest.raises(NonFiniteSampleError, match=r"contains NaN or infinite samples: iq\[0, 1234\]"):
        FusionEngine(cfg).sense(dataclasses.replace(capture, iq=iq), 0)


def test_short_capture_is_refused(cfg, capture):
    short = dataclasses.replace(capture, iq=capture.iq[:, :1000])
    with pytest.raises(SensingError, match="at least one whole frame"):
        FusionEngine(cfg).sense(short, 0)


@pytest.mark.parametrize("value", [0, 1, -3, True, 2.0, "2", None])
def test_bad_path_counts_are_refused(cfg, value):
    with pytest.raises(InputError, match="passive_ssb_paths"):
        FusionEngine(cfg, passive_ssb_paths=value)
    with pytest.raises(InputError, match="num_paths"):
        SensingJob(None, cfg.frame, cfg.sensing, "passive_ssb", value)


@pytest.mark.parametrize("method", ["", "MAP", "ssb", None, 3])
def test_unknown_methods_are_refused(cfg, method):
    with pytest.raises(InputError, match="method"):
        SensingJob(None, cfg.frame, cfg.sensing, method)


@settings(max_examples=40, deadline=None)
@given(noise_var=st.one_of(st.just(0.0), st.just(-1.0), st.just(math.inf), st.just(-math.inf), st.just(math.nan),
                           st.floats(max_value=0.0)),
       bad=st.sampled_from([math.nan, math.inf, -math.inf, complex(math.nan, 0.0)]))
def test_passive_paths_refuses_bad_noise_and_samples(cfg, noise_var, bad):
    grid = passive_grid(IsacFrame(cfg.frame))
    good = np.where(grid.pilots, 1.0 + 0j, 0)
    with pytest.raises(InputError, match="noise_var"):
        passive_paths(grid, good, 2, noise_var)
    broken = good.copy()
    broken[np.nonzero(grid.pilots)[0][0], np.nonzero(grid.pilots)[1][0]] = bad
    with pytest.raises(InputError, match="NaN or infinite"):
        passive_paths(grid, broken, 2)


@pytest.mark.parametrize("shape", [(0, 0), (1,), (3, 3), (2, 1, 1), (1, 2, 3, 4)])
def test_passive_paths_refuses_other_shapes(cfg, shape):
    grid = passive_grid(IsacFrame(cfg.frame))
    with pytest.raises(InputError, match="h has shape"):
        passive_paths(grid, np.zeros(shape, dtype=complex), 2)
