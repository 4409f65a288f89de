"""The single-node sensing pipeline: capture -> grid -> CSI -> range-Doppler map -> CFAR -> detections.

Stages: frame timing (given, or by correlation for cyclic transmissions), optional CFO removal, OFDM
demodulation, H = Y / X on the known REs, optional zero-Doppler notch, the windowed range-Doppler map,
CFAR up to the reportable range, then CLEAN passes of off-grid refinement with SNR and CRB variances.
See :func:`process`; the package docstring of :mod:`sdr_isac.sensing` has a complete example.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sdr_isac.capture import Capture
from sdr_isac.config import FrameConfig, SensingConfig
from sdr_isac.errors import SensingError
from sdr_isac.sensing.cfar import CfarDetector, cell_correlation, cfar_class, make_cfar
from sdr_isac.sensing.csi import ChannelEstimate, channel_matrix, known_reference
from sdr_isac.sensing.detection import (
    Cleaned,
    Detection,
    clean,
    find_peaks,
    refit_jointly,
    significance_threshold,
    subtract,
)
from sdr_isac.sensing.estimate import noise_variance
from sdr_isac.sensing.rdmap import (
    RangeDopplerMap,
    main_lobe_bins,
    map_weights,
    range_doppler_map,
    taper_response,
)
from sdr_isac.sensing.scratch import work_array
from sdr_isac.waveform import IsacFrame
from sdr_isac.waveform.sync import estimate_cfo, find_frame_start

_log = logging.getLogger(__name__)

__all__ = ["SensingResult", "process", "cfar_detector", "search_rows"]

_CLEAN_PASSES = 3


@dataclass(eq=False)
class SensingResult:
    """What one capture yields.

    Attributes
    ----------
    map : RangeDopplerMap or None
        None when there was nothing to process (an all-zero capture).
    detections : list of Detection
        Strongest first.
    csi : ChannelEstimate or None
    frame_offset : int
        Sample index of the frame start used.
    diagnostics : dict
        Noise variance, cells tested and detected, timings (s), warnings; ``passes``: the CLEAN passes that
        found echoes, ``residue_dropped``: echoes of later passes within a cell of a far stronger one, not
        reported (:func:`sdr_isac.sensing.detection.refit_jointly`).
    """

    map: RangeDopplerMap | None
    detections: list[Detection]
    csi: ChannelEstimate | None
    frame_offset: int
    diagnostics: dict[str, Any] = field(default_factory=dict)


def cfar_detector(config: SensingConfig, num_channels: int = 1, *, mask: NDArray[np.bool_] | None = None,
                  map_shape: tuple[int, int] | None = None) -> CfarDetector:
    """The CFAR detector a sensing configuration asks for, for a map summing ``num_channels`` channels.

    ``config.cfar`` names a kind registered with :func:`sdr_isac.sensing.cfar.register_cfar`
    (``ca``, ``go``, ``so``, ``os`` or a plugin's); see :func:`sdr_isac.sensing.cfar.make_cfar`.
    Given the map's resource elements ``mask`` (S, K) and its transform lengths ``map_shape`` (R, D),
    a correlation-aware kind (CA) sets its thresholds for the correlation between the map's cells that
    the windows and the oversampling cause (:func:`sdr_isac.sensing.cfar.cell_correlation`); without
    them, for independent cells.
    """
    guard = (int(config.guard_cells[0]), int(config.guard_cells[1]))
    train = (int(config.training_cells[0]), int(config.training_cells[1]))
    corr_key = None if mask is None or map_shape is None else _map_correlation(config, mask, map_shape)
    if mask is not None and map_shape is not None:
        _warn_main_lobe_in_ring(config.window_range, config.window_doppler, float(config.chebyshev_sidelobe_db),
                                (int(mask.shape[1]), int(mask.shape[0])), (int(map_shape[0]), int(map_shape[1])),
                                guard, train, float(config.pfa))
    design = (config.cfar, float(config.pfa), guard, train, num_channels, corr_key)
    detector = _shared_detector(*design)
    if type(detector) is not cfar_class(config.cfar):      # the kind was registered again since: rebuild
        _shared_detector.cache_clear()
        detector = _shared_detector(*design)
    return detector


#: a guard this small costs the echo itself at least this much (dB of threshold) before a warning says so
_MAIN_LOBE_LOSS_DB = 1.0


@functools.lru_cache(maxsize=32)
def _warn_main_lobe_in_ring(window_range: str, window_doppler: str, sidelobe_db: float, grid: tuple[int, int],
                            map_shape: tuple[int, int], guard: tuple[int, int], train: tuple[int, int],
                            pfa: float) -> float:
    """Warn (once per design) where the guard cells leave an echo's own main lobe in its CFAR training ring.

    The ring's mean then holds ``eps`` times the echo's peak power (``eps``: the taper's normalised response
    summed over the ring), so the echo's threshold rises by about ``eps (pfa**(-1 / N) - 1)`` of that peak (CA
    with N independent cells): a detection loss of ``-10 log10(1 - that)`` dB for every echo.  Returns the loss.
    """
    responses = [taper_response(name, length, sidelobe_db, bins) for name, length, bins in
                 ((window_range, grid[0], map_shape[0]), (window_doppler, grid[1], map_shape[1]))]
    (gr, gd), reach = guard, (guard[0] + train[0], guard[1] + train[1])
    dr, dd = np.arange(-reach[0], reach[0] + 1), np.arange(-reach[1], reach[1] + 1)
    cells = np.outer(responses[0][dr % responses[0].size], responses[1][dd % responses[1].size])
    ring = ~np.outer(np.abs(dr) <= gr, np.abs(dd) <= gd)
    eps = float(cells[ring].sum())
    lift = eps * (pfa ** (-1.0 / int(ring.sum())) - 1.0)
    loss_db = -10 * math.log10(max(1.0 - lift, 1e-12))
    if loss_db >= _MAIN_LOBE_LOSS_DB:
        wanted = [max(main_lobe_bins(name, length, sidelobe_db, bins) - 1, g) for name, length, bins, g in
                  ((window_range, grid[0], map_shape[0], gr), (window_doppler, grid[1], map_shape[1], gd))]
        _log.warning("sensing.guard_cells = [%d, %d]: an echo's own main lobe (%s x %s taper) lies in its CFAR "
                     "training ring and raises its threshold: a detection loss of about %.1f dB for every echo; "
                     "guard_cells = %s keeps the main lobe out", gr, gd, window_range, window_doppler, loss_db,
                     wanted)
    return loss_db


#: cell correlation of maps, by (mask shape, packed mask, windows, sidelobe level, map shape)
_CORRELATIONS: dict[tuple[Any, ...], NDArray[np.complex128]] = {}


def _map_correlation(config: SensingConfig, mask: NDArray[np.bool_], map_shape: tuple[int, int]) -> tuple[Any, ...]:
    """Key of the cell correlation of maps of ``mask`` (S, K) and ``map_shape`` (R, D), computed once."""
    shape = (int(map_shape[0]), int(map_shape[1]))
    key = (mask.shape, np.packbits(mask).tobytes(), config.window_range, config.window_doppler,
           float(config.chebyshev_sidelobe_db), shape)
    if key not in _CORRELATIONS:
        if len(_CORRELATIONS) >= 16:
            _CORRELATIONS.clear()
        _CORRELATIONS[key] = cell_correlation(map_weights(mask, config, shape[1])[0], shape)
    return key


@functools.lru_cache(maxsize=16)
def _shared_detector(name: str, pfa: float, guard: tuple[int, int], train: tuple[int, int],
                     num_channels: int, corr_key: tuple[Any, ...] | None = None) -> CfarDetector:
    """One detector per design, kept across calls: it caches its multipliers and block bounds per map shape."""
    rho = None if corr_key is None else _CORRELATIONS[corr_key]
    return make_cfar(name, pfa, guard, train, num_channels, cell_correlation=rho)


def _frame_of(capture: Capture, frame: FrameConfig | IsacFrame | None) -> IsacFrame:
    if isinstance(frame, IsacFrame):
        return frame
    cfg = frame or capture.frame
    if cfg is None:
        raise SensingError(f"capture {capture.node_id}/{capture.seq} carries no frame description and none was "
                           "given: pass the waveform (a FrameConfig or IsacFrame) to process()")
    return built_frame(cfg)


def built_frame(cfg: FrameConfig) -> IsacFrame:
    """The frame of a configuration, built once per configuration (a stream of captures carries the same one);
    a configuration that cannot be hashed is built every time."""
    try:
        return _built_frame(cfg)
    except TypeError:
        return IsacFrame(cfg)


@functools.lru_cache(maxsize=8)
def _built_frame(cfg: FrameConfig) -> IsacFrame:
    """The frame of a configuration, built once (a stream of captures carries the same one)."""
    return IsacFrame(cfg)


def _check(capture: Capture, frame: IsacFrame, offset: int) -> None:
    """Raise where capture and frame disagree (its samples are checked apart: :meth:`Capture.check_samples`)."""
    fs_frame, fs_cap = frame.sample_rate_hz, capture.sample_rate_hz
    if abs(fs_frame - fs_cap) > 1e-6 * fs_frame:
        raise SensingError(f"capture sample rate {fs_cap:g} Hz != frame sample rate {fs_frame:g} Hz "
                           f"(N_FFT {frame.config.fft_size} x {frame.config.subcarrier_spacing_hz:g} Hz): process the "
                           "capture with the frame it was recorded with")
    if offset + frame.num_samples > capture.num_samples:
        raise SensingError(f"capture has {capture.num_samples} samples, the frame needs {frame.num_samples} from "
                           f"offset {offset}: capture at least offset + frame length samples")


def process(capture: Capture, frame: FrameConfig | IsacFrame | None = None, config: SensingConfig | None = None,
            *, tx: Capture | None = None) -> SensingResult:
    """Sense one capture.

    Parameters
    ----------
    capture : Capture
        Received samples, shape (C, n); ``frame_offset`` marks the frame
        start unless ``config.sync = 'correlate'``.
    frame : FrameConfig or IsacFrame, optional
        The transmitted waveform (default: the capture's own description).
    config : SensingConfig, optional
        Processing settings (default: ``SensingConfig()``).
    tx : Capture, optional
        A recorded transmit capture to use as the reference instead of the
        frame's ideal symbols (its frame starts at its own ``frame_offset``).

    Returns
    -------
    SensingResult

    Raises
    ------
    SensingError
        Capture and frame disagree (sample rate, length), no frame, or no
        known RE; :class:`~sdr_isac.errors.NonFiniteSampleError` (a
        SensingError) for a NaN or infinite sample.
    """
    cfg = config or SensingConfig()
    built = _frame_of(capture, frame)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    offset = found_offset = capture.frame_offset
    # every sample checked once, before anything reads them: NaN or infinity raise NonFiniteSampleError (a host,
    # which leaves this check to its sensing, counts the capture rejected)
    nonzero = capture.check_samples()
    x, mask, inverse = known_reference(built, tuple(cfg.signals))
    if cfg.sync == "correlate":
        if capture.num_samples < built.num_samples:
            raise SensingError(f"capture has {capture.num_samples} samples, the frame {built.num_samples}: "
                               "correlation needs at least one whole frame")
        reference = built.ofdm.modulate(np.where(mask, x, 0)[None])[0]      # only what the receiver knows
        # a cyclic transmission: the frame repeats every frame length
        offset = found_offset = find_frame_start(capture.iq, reference, period=built.num_samples).offset
        if offset + built.num_samples > capture.num_samples:
            # the transmission is cyclic: the frame's tail that falls past the end of the capture repeats one
            # period earlier, so take it from there
            period = built.num_samples
            index = offset + np.arange(period)
            index[index >= capture.num_samples] -= period
            capture = dataclasses.replace(capture, iq=capture.iq[:, index], frame_offset=0)
            offset = 0
    _check(capture, built, offset)
    if not nonzero:
        return SensingResult(None, [], None, offset, {"warning": "all-zero capture: nothing received"})
    iq = capture.iq
    cfo_hz = 0.0
    if cfg.correct_cfo:
        cfo_hz = estimate_cfo(iq, built.cp_lengths, built.config.fft_size, built.sample_rate_hz, offset)
        n = np.arange(iq.shape[1]) - offset
        iq = (iq * np.exp(-2j * np.pi * cfo_hz * n / built.sample_rate_hz)).astype(np.complex64)
    rx_grid = built.ofdm.demodulate(iq, offset)
    timings["demodulate_s"] = time.perf_counter() - start
    if tx is not None:
        tx.check_samples()
        _check(tx, built, tx.frame_offset)
        x = built.ofdm.demodulate(tx.iq[:1], tx.frame_offset)[0]
        mask = mask & (np.abs(x) > 1e-6 * float(np.max(np.abs(x))))
        csi = channel_matrix(rx_grid, x, mask)
    else:                                   # H = Y / X = Y (1 / X), 0 off the mask, in the fresh grid
        csi = ChannelEstimate(np.multiply(rx_grid, inverse, out=rx_grid), mask)
    if cfg.remove_static:
        csi = _remove_static(csi)
    timings["csi_s"] = time.perf_counter() - start
    fcfg = built.config
    times = (built.symbol_starts + built.cp_lengths).astype(float) / built.sample_rate_hz
    symbol_s = built.num_samples / (built.num_symbols * built.sample_rate_hz)
    carrier = capture.center_freq_hz or fcfg.carrier_hz
    # default upper limit: half the unambiguous range; beyond it lie negative delays wrapped around
    # (sidelobes of a zero-range leakage peak) and echoes far past the cyclic prefix.  CFAR runs on the
    # range bins up to it plus one window of margin for the training cells, peaks are taken up to it
    # (plus a bin for the refinement: a peak in the margin would be refined, subtracted from H and then
    # dropped; with comb pilots it is the range replica of a reportable echo); the whole map stays (its
    # median gives the noise level, and displays show it).
    upper, reportable, rows = search_rows(cfg, fcfg)
    rd = range_doppler_map(csi.h, mask, fcfg.subcarrier_spacing_hz, symbol_s, carrier, cfg)
    timings["map_s"] = time.perf_counter() - start
    noise = noise_variance(rd.power, rd.noise_gain, csi.h.shape[0], rd.noise_gain_columns)
    num_channels = csi.h.shape[0]
    detector = cfar_detector(cfg, num_channels, mask=mask, map_shape=rd.power.shape)
    spacing = cfg.element_spacing_wavelengths if cfg.angle else None
    detections: list[Detection] = []
    # CLEAN reads H itself where every RE is used (it only lists the echoes; their products with later phasors
    # are known in closed form); it subtracts echoes from a complex128 copy, made where it has to (another
    # mask, another pass), reused from call to call (it never leaves this function)
    work: NDArray[np.complex128] | None = None if mask.all() else _work_copy(csi.h)
    current, cfar_cells = rd, 0
    passes: list[Cleaned] = []
    residue = 0
    # Another pass (subtract what was found, a new map, test again) behind a strong echo: Hann sidelobes reach
    # -31 dB, so an echo 30 dB above the detection threshold may hide weaker ones under them.  And wherever a
    # found echo raises other cells' CFAR thresholds while a cell there stands out of the noise untested: its main
    # lobe in the training ring of a cell near it lifts the ring's mean by up to P / N (map SNR P, N training
    # cells); from a lift of 1 dB (P > 0.26 N: 19 dB with the default 280 cells) an echo a few cells away and a
    # few dB weaker is masked (a 40 dB echo hid one at 34 dB three cells away in every capture).  Such an echo
    # is a local maximum of the map above the known-noise threshold that the CFAR did not pass
    # (:func:`_masked_peak`); without one, no pass is spent.
    significance = significance_threshold(cfg.pfa, num_channels)
    sidelobes_db = 10 * math.log10(significance) + 30.0
    masking_db = 10 * math.log10(0.26 * max(getattr(detector, "num_training_full", 1), 1))
    for _ in range(_CLEAN_PASSES):
        # a strong echo (the line of sight, leakage) can hide weaker ones behind its sidelobes and in
        # the CFAR training cells: detect, subtract, and look again at what is left
        hits = detector.detect_mask(current.power[:rows])
        cfar_cells += int(np.count_nonzero(hits))
        peaks = find_peaks(current.power, hits[:reportable], cfg.max_detections + 8, current.complete_range)
        cleaned = clean(csi.h if work is None else work, mask, current, peaks, fcfg.subcarrier_spacing_hz,
                        times, carrier, noise, cfg.pfa, cfg.refine, spacing, cfg.remove_static)
        found = cleaned.detections
        if found:
            passes.append(cleaned)
        detections += found
        if not found or len(detections) >= cfg.max_detections + 8:
            break
        strongest_db = max(d.map_snr_db for d in found)
        lobe = (2 * cfg.range_oversampling, 2 * cfg.doppler_oversampling)
        if strongest_db < sidelobes_db and not _masked_peak(
                current.power[:reportable], hits[:reportable],
                significance * noise * current.noise_gain * num_channels, _cells_of(current, found),
                lobe, _cells_of(current, [d for d in found if d.map_snr_db >= masking_db]),
                (cfg.guard_cells[0] + cfg.training_cells[0] + lobe[0],
                 cfg.guard_cells[1] + cfg.training_cells[1] + lobe[1])):
            break
        if work is None:
            work = _work_copy(csi.h)
        subtract(work, mask, cleaned.echoes)
        current = range_doppler_map(work.astype(np.complex64), mask, fcfg.subcarrier_spacing_hz, symbol_s, carrier,
                                    cfg)
    if cfg.refine and len(passes) > 1:
        # an echo of an early pass was refined with the masked echoes of later passes in its data: all of them
        # again, together (on a full mask from H itself; otherwise `work` holds H less every echo)
        data = csi.h if work is None or passes[0].full else work
        joint = refit_jointly(data, mask, rd, passes, fcfg.subcarrier_spacing_hz, times, carrier, noise, cfg.pfa,
                              spacing, cfg.remove_static)
        detections, residue = joint.detections, joint.residue
    timings["cfar_s"] = time.perf_counter() - start
    # within three standard deviations of the lower limit: a refined echo at the limit (the leakage at 0 m) lies
    # on either side of it, and half of its estimates must not be dropped for a millimetre below it
    detections = sorted((d for d in detections if cfg.min_range_m - 3.0 * math.sqrt(max(d.range_var_m2, 0.0))
                         <= d.range_m <= upper), key=lambda d: d.map_snr_db, reverse=True)[: cfg.max_detections]
    timings["detect_s"] = time.perf_counter() - start
    diagnostics = {"noise_var": noise, "cfo_hz": cfo_hz, "cells": int(rd.power.size), "cfar_cells": cfar_cells,
                   "passes": len(passes), "residue_dropped": residue,
                   "used_res": csi.num_used, "timings": timings,
                   "snr_map_peak_db": _peak_db(rd.power, noise * rd.noise_gain * csi.h.shape[0])}
    return SensingResult(rd, detections, csi, found_offset, diagnostics)


def search_rows(config: SensingConfig, frame: FrameConfig) -> tuple[float, int, int]:
    """Where the pipeline looks on the range axis of a map of ``frame``: ``config.search_rows(frame)``
    (:meth:`sdr_isac.config.SensingConfig.search_rows`)."""
    return config.search_rows(frame)


def _cells_of(rd: RangeDopplerMap, found: list[Detection]) -> list[tuple[float, float]]:
    """The (range bin, Doppler bin) of each detection on the map (fractional; Doppler bins from the first)."""
    dr = float(rd.range_m[1] - rd.range_m[0]) if rd.range_m.size > 1 else 1.0
    dd = float(rd.doppler_hz[1] - rd.doppler_hz[0]) if rd.doppler_hz.size > 1 else 1.0
    return [((d.range_m - float(rd.range_m[0])) / dr, (d.doppler_hz - float(rd.doppler_hz[0])) / dd) for d in found]


def _masked_peak(power: NDArray[np.floating], hits: NDArray[np.bool_], level: float,
                 echoes: list[tuple[float, float]], lobe: tuple[int, int],
                 masking: list[tuple[float, float]], reach: tuple[int, int]) -> bool:
    """Whether a cell the CFAR did not pass is a local maximum (8 neighbours, Doppler circular) above ``level``,
    outside the main lobes of the ``echoes`` found (closer than ``lobe`` bins in range and Doppler: the first
    nulls of the taper, two bins of the unpadded map; a lobe's ripple there is that echo's, and an echo split
    from another's peak by the model-order test has no grid peak of its own), within ``reach`` bins of one of the
    ``masking`` echoes (strong enough to lift a ring's mean by 1 dB).  Only there can a found echo have masked
    it: its main lobe must lie in the cell's training ring (guard + training + lobe bins away at most);
    elsewhere the residual map of another pass is this one, and its CFAR would pass nothing new."""
    n_r, n_d = power.shape
    found_r: list[NDArray[np.int64]] = []
    found_d: list[NDArray[np.int64]] = []
    for pr, pd in masking:
        first, last = max(math.floor(pr) - reach[0], 0), min(math.ceil(pr) + reach[0] + 1, n_r)
        if first >= last:
            continue
        cols = np.arange(math.floor(pd) - reach[1], math.ceil(pd) + reach[1] + 1) % n_d
        if cols.size >= n_d:
            cols = np.arange(n_d)
        block = np.ix_(np.arange(first, last), cols)
        r, d = np.nonzero((power[block] > level) & ~hits[block])
        found_r.append(r + first)
        found_d.append(cols[d])
    if not found_r:
        return False
    r, d = np.concatenate(found_r), np.concatenate(found_d)
    for pr, pd in echoes:
        far = (np.abs(r - pr) >= lobe[0]) | (np.abs((d - pd + n_d / 2) % n_d - n_d / 2) >= lobe[1])
        r, d = r[far], d[far]
    if r.size == 0:
        return False
    value = power[r, d]
    local = np.ones(r.size, dtype=bool)
    for dr in (-1, 0, 1):
        rows = r + dr
        inside = (rows >= 0) & (rows < n_r)
        for dd in (-1, 0, 1):
            if dr or dd:
                neighbour = power[np.clip(rows, 0, n_r - 1), (d + dd) % n_d]
                local &= ~inside | (value >= neighbour)
    return bool(local.any())


def _work_copy(h: NDArray[np.complex64]) -> NDArray[np.complex128]:
    """A complex128 copy of H to subtract echoes from (a per-thread work array)."""
    work = work_array("pipeline.work", h.shape, np.complex128)
    work[...] = h
    return work


def _remove_static(csi: ChannelEstimate) -> ChannelEstimate:
    """Subtract each subcarrier's mean over the symbols (a zero-Doppler notch).

    The refinement models the notch as the same projection on every subcarrier, so every used
    subcarrier must be used on every symbol (a monostatic node using all its REs, or block pilots).
    """
    used = csi.mask.any(axis=0)
    if not np.all(csi.mask[:, used]):
        raise SensingError("sensing.remove_static = true needs every used subcarrier on every symbol (the notch "
                           "removes each subcarrier's mean over time); with comb or sparse pilots set "
                           "remove_static = false")
    counts = np.maximum(csi.mask.sum(axis=0), 1)
    mean = csi.h.sum(axis=1) / counts                                   # (C, K)
    h = np.where(csi.mask[None], csi.h - mean[:, None, :], 0).astype(np.complex64)
    return ChannelEstimate(h, csi.mask)


def _peak_db(power: NDArray[np.float32], noise_cell: float) -> float:
    return 10 * math.log10(max(float(power.max()) / noise_cell, 1e-30)) if noise_cell > 0 else math.inf
