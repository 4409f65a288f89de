"""The ``[sensing]`` section: how a node turns a capture into a range-Doppler map and detections."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import scipy.fft as sp_fft

from sdr_isac.config.base import _check_choice, _check_fields, _fail, _num
from sdr_isac.units import SPEED_OF_LIGHT_MPS

if TYPE_CHECKING:
    from sdr_isac.config.frame import FrameConfig

__all__ = ["SensingConfig", "cfar_kinds", "register_cfar_kind", "unregister_cfar_kind"]

#: CFAR kinds ``sensing.cfar`` accepts, in the order messages list them: the built-in detectors of
#: :mod:`sdr_isac.sensing.cfar`, and those registered there later with ``register_cfar``.
_CFAR_KINDS: list[str] = ["ca", "go", "so", "os"]


def cfar_kinds() -> tuple[str, ...]:
    """The CFAR kinds ``sensing.cfar`` accepts (``ca``, ``go``, ``so``, ``os`` and registered ones)."""
    return tuple(_CFAR_KINDS)


def register_cfar_kind(name: str) -> None:
    """Let ``sensing.cfar`` name the CFAR kind ``name`` (idempotent).

    Called by :func:`sdr_isac.sensing.cfar.register_cfar`, which also registers the detector
    class; a configuration names the kind, the sensing layer builds its detector.

    Raises
    ------
    ConfigError
        ``name`` is not a non-empty identifier.
    """
    if not isinstance(name, str) or not name.isidentifier():
        _fail("cfar kind", name, "a non-empty identifier (letters, digits, _)", "register e.g. 'toy'")
    if name not in _CFAR_KINDS:
        _CFAR_KINDS.append(name)


def unregister_cfar_kind(name: str) -> None:
    """Stop accepting the CFAR kind ``name`` (a test's or plugin's); unknown names are ignored."""
    if name in _CFAR_KINDS:
        _CFAR_KINDS.remove(name)

_WINDOWS = ("none", "hann", "hamming", "blackman", "chebyshev")


@dataclass(frozen=True)
class SensingConfig:
    """How a node turns a capture into a range-Doppler map and detections.

    Parameters
    ----------
    signals : tuple of str
        Reference signals whose REs are used (``prs``, ``dmrs``, ``srs``, ``trs``, ``data``, the SS/PBCH
        block's ``ssb_pss``, ``ssb_sss``, ``pbch_dmrs``); empty uses every RE the node sent (monostatic).
    geometry : str
        ``monostatic`` (range = c tau / 2) or ``bistatic`` (range sum = c tau).
    window_range, window_doppler : str
        ``none``, ``hann``, ``hamming``, ``blackman`` or ``chebyshev``.
    chebyshev_sidelobe_db : float
        Sidelobe level of the Chebyshev window, dB (20 ... 200).
    range_oversampling, doppler_oversampling : int
        Zero-padding factors of the range and Doppler transforms, 1 ... 16.
    cfar : str
        ``ca``, ``go``, ``so`` or ``os`` (:mod:`sdr_isac.sensing.cfar`), or a kind registered
        with :func:`sdr_isac.sensing.cfar.register_cfar`.  Only ``ca`` holds ``pfa`` on the
        default maps, whose taper and zero padding correlate neighbouring cells; the GO, SO
        and OS thresholds assume independent cells and miss ``pfa`` there (more false alarms
        on the default maps; a warning says so; :func:`sdr_isac.sensing.cfar.make_cfar`).
    pfa : float
        Design false-alarm probability per CFAR cell, 1e-40 <= pfa < 0.5.  It is not the rate of
        reported detections: one noise peak crosses the threshold in several correlated
        neighbouring cells and is reported once (at pfa = 1e-3 on the default frame, about
        1.25e-4 reported false detections per reportable cell, 4.3 per capture).
    guard_cells, training_cells : tuple of int
        CFAR guard and training cells each side, (range, Doppler), each
        0 ... 1000 (training at least 1).  On a tapered or oversampled map
        (the default) the CA-CFAR's exact thresholds take one
        eigendecomposition per ring shape, once per design and process, with
        a time that grows as the cube of the ring's cells: 0.1 s for the
        default [8, 4], about 12 s for [24, 6] on the Pluto-class frame,
        minutes beyond (a warning says how long before it starts).
    max_detections : int
        Most detections reported per capture (strongest first), 1 ... 10000.
    refine : bool
        Off-grid refinement (local maximisation of the periodogram).  Off,
        a detection is the grid peak moved by a 3-point parabola, reported
        with its own variance (``kappa x CRB + bias**2``,
        :func:`sdr_isac.sensing.rdmap.grid_error`), and echoes 25 dB or more
        above the detection threshold are still refined (subtracted at the
        grid position, their residual's sidelobes would pass as echoes) and
        tested for a second echo in their resolution cell, as with refine on.
    angle : bool
        Estimate the azimuth of each detection when the capture has several
        channels (a ULA along +y with ``element_spacing_wavelengths``).
    element_spacing_wavelengths : float
        Spacing of the receive ULA, wavelengths, 0.01 ... 100.
    min_range_m : float
        Detections nearer than this, by more than three standard deviations
        of their range, are dropped (e.g. the TX->RX leakage at 0 m with
        min_range_m = 1), 0 ... 1e8 m (range sums between Earth-scale
        positions).  An echo at 0 m is estimated on both sides of 0: with
        the default 0 it is kept.
    max_range_m : float
        Detections farther than this are dropped (0: no limit), 0 ... 1e8 m
        and above ``min_range_m``.  The top of the
        range axis holds negative delays wrapped around (sidelobes of a
        leakage peak), and echoes beyond c CP / 2 suffer inter-symbol
        interference.
    remove_static : bool
        Subtract each subcarrier's mean over the symbols from H before the
        map: removes zero-Doppler echoes (leakage, walls, clutter) and keeps
        moving targets.  An echo within a Doppler bin or two of zero loses
        much of its energy and its estimate much of its precision: the
        refinement fits the notched model and reports the notched model's
        Cramér-Rao variances (several times the unnotched ones there).
    sync : str
        ``capture`` (trust ``capture.frame_offset``) or ``correlate`` (find
        the frame by correlation with the known part of the transmitted frame:
        the chosen ``signals``, e.g. the PRS for a passive receiver).
    correct_cfo : bool
        Estimate the carrier frequency offset from the cyclic prefix and
        remove it before demodulation (bistatic / passive receivers).
    backend : str
        Array backend of the batch path (:mod:`sdr_isac.sensing.batch`: map, CFAR and peak search of
        a batch of frames): ``cpu`` (numpy / scipy) or ``cupy`` (a CUDA GPU; needs the ``gpu`` extra).
        Chosen once per configuration; :func:`sdr_isac.sensing.process` runs on the CPU either way.
    fft_workers : int
        Threads of each CPU FFT, 0 ... 256; 0 uses the process's default
        (``sdr_isac.waveform.ofdm.FFT_WORKERS``: every core; a host's worker processes set it to 1).
        Set 1 where several processes share the cores (process-pool or Dask workers), so that they do
        not over-subscribe them.
    """

    signals: tuple[str, ...] = ()
    geometry: str = "monostatic"
    window_range: str = "hann"
    window_doppler: str = "hann"
    chebyshev_sidelobe_db: float = _num(60.0, 20.0, 200.0, "dB")
    range_oversampling: int = _num(2, 1, 16)
    doppler_oversampling: int = _num(2, 1, 16)
    cfar: str = "ca"
    pfa: float = _num(1e-6, 1e-40, 0.5, high_open=True)
    guard_cells: tuple[int, ...] = _num((4, 2), 0, 1000, "cells")
    training_cells: tuple[int, ...] = _num((8, 4), 0, 1000, "cells")
    max_detections: int = _num(32, 1, 10000)
    refine: bool = True
    angle: bool = True
    element_spacing_wavelengths: float = _num(0.5, 0.01, 100.0, "wavelengths")
    min_range_m: float = _num(0.0, 0.0, 1e8, "m")
    max_range_m: float = _num(0.0, 0.0, 1e8, "m")
    remove_static: bool = False
    sync: str = "capture"
    correct_cfo: bool = False
    backend: str = "cpu"
    fft_workers: int = _num(0, 0, 256, "threads")

    def __post_init__(self) -> None:
        _check_fields(self)
        for s in self.signals:
            _check_choice("signals", s, ("prs", "dmrs", "srs", "trs", "data", "ssb_pss", "ssb_sss", "pbch_dmrs"))
        _check_choice("geometry", self.geometry, ("monostatic", "bistatic"))
        _check_choice("window_range", self.window_range, _WINDOWS)
        _check_choice("window_doppler", self.window_doppler, _WINDOWS)
        _check_choice("cfar", self.cfar, cfar_kinds())
        for key in ("guard_cells", "training_cells"):
            value = getattr(self, key)
            if len(value) != 2:
                _fail(key, value, "[range, doppler] cells >= 0", "e.g. [4, 2]")
        if min(self.training_cells) < 1:
            _fail("training_cells", self.training_cells, "at least 1 cell each side on both axes", "e.g. [8, 4]")
        if self.max_range_m and self.max_range_m <= self.min_range_m:
            _fail("max_range_m", self.max_range_m, f"0 (no limit) or > min_range_m = {self.min_range_m} m",
                  "raise max_range_m or set it to 0")
        _check_choice("sync", self.sync, ("capture", "correlate"))
        _check_choice("backend", self.backend, ("cpu", "cupy"))

    def map_shape(self, num_subcarriers: int, num_symbols: int) -> tuple[int, int]:
        """(range bins, Doppler bins) of the range-Doppler map of a K x S grid: the zero-padded transform lengths
        (``next_fast_len`` of K x ``range_oversampling`` and S x ``doppler_oversampling``)."""
        return (sp_fft.next_fast_len(int(num_subcarriers) * self.range_oversampling),
                sp_fft.next_fast_len(int(num_symbols) * self.doppler_oversampling))

    def search_rows(self, frame: FrameConfig) -> tuple[float, int, int]:
        """Where the pipeline looks on the range axis of a map of ``frame``.

        Returns
        -------
        upper_m : float
            Farthest reportable range (or range sum), m: ``max_range_m``, or half the unambiguous range.
        reportable : int
            Range bins in which peaks are taken (up to ``upper_m``, plus two for the refinement).
        rows : int
            Range bins the CFAR runs on: ``reportable`` plus one window of training and guard cells, and at least
            one whole window (the map's own bins where it is smaller).
        """
        half = 0.5 if self.geometry == "monostatic" else 1.0
        unambiguous = half * SPEED_OF_LIGHT_MPS / frame.subcarrier_spacing_hz
        upper = self.max_range_m or unambiguous / 2
        n_range = self.map_shape(frame.num_subcarriers, 1)[0]
        reportable = min(math.ceil(upper / unambiguous * n_range) + 2, n_range)
        reach = self.guard_cells[0] + self.training_cells[0]
        rows = min(max(reportable + reach, 2 * reach + 1), n_range)
        return upper, reportable, rows
