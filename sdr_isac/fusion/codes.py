"""Sensing on code-multiplexed resources, and multi-domain fusion (code x space x frequency).

Several antenna ports share the same resource elements and are told apart
by codes (article §III-A, "code resources"):

- PDSCH DMRS: the ports of one CDM group use orthogonal cover codes
  ``w_f(k') w_t(l')`` over pairs of REs (TS 38.211 §7.4.1.1.2,
  Tables 7.4.1.1.2-1/-2); different CDM groups use different subcarriers.
- SRS: the ports use cyclic shifts ``exp(j alpha_p n)`` of one Zadoff–Chu
  base sequence, ``alpha_p = 2 pi n_cs,p / n_cs,max`` with the shifts
  ``n_cs,max / N_ap`` apart (TS 38.211 §6.4.1.4.2); over ``N_ap`` consecutive
  comb REs the shifts are the columns of a DFT, orthogonal.

The receiver sees ``Y = sum_p H_p X_p + W`` on those REs.  Code extraction
(:func:`extract_code_csi`) solves, for each block of REs over which the
codes are orthogonal (a DMRS CDM pair, ``N_ap`` consecutive SRS REs), the
least-squares problem ``y_b = X_b h_b`` (despreading: ``X_b^H X_b`` is
diagonal), and assigns the block's estimate to its centroid RE.  The result
is exact when each port's channel is constant over a block; a target at
delay ``tau`` turns it across a block of span ``D`` subcarriers, which
scales the port's own CSI by ``cos(pi D df tau)`` and leaks the other
ports' CSI in by ``sin(pi D df tau)`` -- both with the same delay and
Doppler, so the range and velocity are not biased.  Each port's CSI then
enters :func:`sdr_isac.fusion.resource.estimate_delay_doppler` as a channel
of its own; the bound is the sum of the ports' Fisher informations on their
REs (:func:`code_fim`).

Multi-domain: ports on different antennas (MIMO), with different codes on
overlapping REs, give after extraction one CSI per (transmit port, receive
antenna) pair: a virtual array at positions ``p_tx + p_rx``
(:func:`virtual_positions`; Li & Stoica, IEEE SPM 24(5), 2007).  Several
echoes (a target and its multipath) are separated in delay-Doppler on all
virtual channels together by successive cancellation
(:func:`estimate_paths`) and each gets its angle from its amplitudes across
the virtual array (:func:`sdr_isac.fusion.resource.ml_angle`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError
from sdr_isac.fusion.completion import noise_variance
from sdr_isac.fusion.resource import (
    DelayDopplerEstimate,
    as_channels,
    channels_fim,
    delay_doppler_power,
    estimate_delay_doppler,
)
from sdr_isac.sensing import estimate as core
from sdr_isac.sensing.crb import delay_doppler_fim
from sdr_isac.waveform import IsacFrame, Signal

__all__ = ["CodeLayout", "CodeCsi", "code_layout", "extract_code_csi", "code_fim", "virtual_positions",
           "estimate_paths"]


@dataclass(frozen=True, eq=False)
class CodeLayout:
    """Which port sends what on the code-multiplexed REs of a frame.

    Attributes
    ----------
    ports : tuple of int
        0-based antenna ports (0 is port 1000), in the order of ``tx``.
    tx : ndarray, shape (P, S, K), complex128
        Each port's transmitted value on the signal's REs (cover code or
        cyclic shift and sequence), 0 elsewhere.
    blocks : ndarray, shape (S, K), int64
        Block label of each RE (-1: not part of the signal); the codes are
        orthogonal over each block.
    """

    ports: tuple[int, ...]
    tx: NDArray[np.complex128]
    blocks: NDArray[np.int64]

    @property
    def num_ports(self) -> int:
        return len(self.ports)

    def port_masks(self) -> NDArray[np.bool_]:
        """REs each port transmits on, shape (P, S, K)."""
        return np.asarray(self.tx != 0)


def _dmrs_layout(frame: IsacFrame) -> CodeLayout:
    lay = frame.dmrs
    if lay is None:
        raise InputError("frame has no DMRS: add a [frame.dmrs] section with the ports to separate")
    s, k = frame.num_symbols, frame.config.num_subcarriers
    tx = np.zeros((lay.cover.shape[0], s, k), dtype=np.complex128)
    tx[:, lay.symbols, :] = lay.cover * lay.sequence[None]
    period = 4 if lay.config.config_type == 1 else 6                   # REs of one CDM group pair
    n = np.arange(k) // period
    blocks = np.full((s, k), -1, dtype=np.int64)
    used = np.isin(lay.group_of_subcarrier, lay.groups)
    # one label per (occasion, pair n, CDM group); at most 3 groups
    label = (lay.occasion[:, None] * (k // period + 1) + n[None, :]) * 3 + lay.group_of_subcarrier[None, :]
    blocks[lay.symbols[:, None], np.nonzero(used)[0][None, :]] = label[:, used]
    return CodeLayout(tuple(lay.ports), tx, blocks)


def _srs_layout(frame: IsacFrame) -> CodeLayout:
    cfg = frame.config.srs
    if cfg is None:
        raise InputError("frame has no SRS: add a [frame.srs] section with num_ports > 1")
    owner = frame.grid.owner == Signal.SRS
    ports = tuple(range(cfg.num_ports))
    tx = np.where(owner[None], frame.grid.values[: cfg.num_ports], 0).astype(np.complex128)
    s, k = owner.shape
    blocks = np.full((s, k), -1, dtype=np.int64)
    symbols = np.flatnonzero(owner.any(axis=1))
    next_label = 0
    for offset in np.unique(np.nonzero(owner)[1] % cfg.comb_size):
        on_comb = [p for p in ports if np.any(tx[p][:, offset::cfg.comb_size])]
        size = len(on_comb)                                           # N_ap sharing the comb: DFT codes of that length
        subs = np.flatnonzero(owner[symbols[0]] & (np.arange(k) % cfg.comb_size == offset))
        whole = subs[: subs.size // size * size]
        per_symbol = np.arange(whole.size) // size
        for sym in symbols:
            blocks[sym, whole] = next_label + per_symbol
            next_label += int(per_symbol.max()) + 1
    return CodeLayout(ports, tx, blocks)


def code_layout(frame: IsacFrame, signal: str = "dmrs") -> CodeLayout:
    """The code layout of the frame's DMRS (cover codes, CDM groups) or SRS (cyclic shifts).

    Parameters
    ----------
    frame : IsacFrame
    signal : {"dmrs", "srs"}
    """
    if signal == "dmrs":
        return _dmrs_layout(frame)
    if signal == "srs":
        return _srs_layout(frame)
    raise InputError(f"signal = {signal!r}: allowed 'dmrs' (orthogonal cover codes) or 'srs' (cyclic shifts)")


@dataclass(frozen=True, eq=False)
class CodeCsi:
    """Each port's channel information after code extraction, on its blocks' centroid REs.

    Attributes
    ----------
    h : ndarray, shape (P, R, S, K), complex128
        CSI of port p at receive channel r, 0 off the port's centroids.
    mask : ndarray, shape (P, S, K), bool
        Centroid REs of each port's blocks.
    gain : ndarray, shape (P,), float64
        ``||X_p||**2`` over a block: the per-RE SNR of ``h`` is ``gain`` times
        that of ``Y`` (``|a|**2 / sigma**2``).
    """

    h: NDArray[np.complex128]
    mask: NDArray[np.bool_]
    gain: NDArray[np.float64]

    def channels(self) -> tuple[NDArray[np.complex128], NDArray[np.bool_]]:
        """All (port, receive channel) CSIs as channels: shapes (P R, S, K) and (P R, S, K), port-major."""
        p, r = self.h.shape[:2]
        return (self.h.reshape(p * r, *self.h.shape[2:]),
                np.repeat(self.mask, r, axis=0))


def extract_code_csi(rx_grid: ArrayLike, layout: CodeLayout) -> CodeCsi:
    """Separate the ports sharing REs: least squares over each block where their codes are orthogonal.

    For block b with REs ``i`` and the ports' values ``X[i, p]``:
    ``h_b = pinv(X_b) y_b`` (despreading for orthogonal codes; a port absent
    from the block gets nothing), placed at the block's centroid RE.

    Parameters
    ----------
    rx_grid : array_like, shape (S, K) or (R, S, K), complex
        Received grid (receive channels first).
    layout : CodeLayout
        From :func:`code_layout`.

    Returns
    -------
    CodeCsi

    Raises
    ------
    InputError
        If the grid's shape differs from the layout's, or a block's centroid
        is not on the grid (double-symbol blocks: extract per symbol).
    """
    y = np.asarray(rx_grid, dtype=np.complex128)
    if y.ndim == 2:
        y = y[None]
    if y.ndim != 3 or y.shape[1:] != layout.blocks.shape:
        raise InputError(f"rx_grid has shape {np.shape(rx_grid)}: allowed {layout.blocks.shape} or (R, "
                         f"*{layout.blocks.shape}), the frame's (symbols, subcarriers)")
    sym, sub = np.nonzero(layout.blocks >= 0)
    labels = layout.blocks[sym, sub]
    order = np.lexsort((sub, sym, labels))
    sym, sub, labels = sym[order], sub[order], labels[order]
    uniq, start, counts = np.unique(labels, return_index=True, return_counts=True)
    g = int(counts.max())
    b = uniq.size
    slot = np.arange(labels.size) - np.repeat(start, counts)
    bi = np.repeat(np.arange(b), counts)
    xb = np.zeros((b, g, layout.num_ports), dtype=np.complex128)
    xb[bi, slot] = layout.tx[:, sym, sub].T
    yb = np.zeros((y.shape[0], b, g), dtype=np.complex128)
    yb[:, bi, slot] = y[:, sym, sub]
    hb = np.einsum("bpg,rbg->pbr", np.linalg.pinv(xb), yb)              # (P, B, R)
    cen_s = np.bincount(bi, weights=sym) / counts
    cen_k = np.bincount(bi, weights=sub) / counts
    # a block's estimate is the channel at its centroid; it is placed on the RE at or before it.  Where the
    # centroid falls between REs (DMRS type 2's pairs of subcarriers, double-symbol DMRS) the offset is the same
    # for every block of a port: one constant phase of that port's channel, which its unknown amplitude takes
    rs, rk = np.floor(cen_s + 1e-9).astype(np.int64), np.floor(cen_k + 1e-9).astype(np.int64)
    off_s, off_k = cen_s - rs, cen_k - rk
    active = np.abs(xb).sum(axis=1).T > 0                                  # (P, B)
    for p in range(layout.num_ports):
        on = active[p]
        if on.any() and (np.ptp(off_s[on]) > 1e-9 or np.ptp(off_k[on]) > 1e-9):
            raise InputError(f"port {layout.ports[p]}: its code blocks' centroids lie at different offsets from "
                             "their REs: allowed blocks of one shape per port (the pattern of TS 38.211's DMRS, "
                             "SRS); check the code layout")
    h = np.zeros((layout.num_ports, y.shape[0]) + layout.blocks.shape, dtype=np.complex128)
    mask = np.zeros((layout.num_ports,) + layout.blocks.shape, dtype=bool)
    gain = np.zeros(layout.num_ports)
    for p in range(layout.num_ports):
        on = active[p]
        h[p][:, rs[on], rk[on]] = hb[p, on].T
        mask[p, rs[on], rk[on]] = True
        gain[p] = float(np.mean(np.sum(np.abs(xb[on, :, p]) ** 2, axis=1))) if on.any() else 0.0
    if np.any(gain == 0):
        raise InputError(f"ports {[layout.ports[p] for p in np.flatnonzero(gain == 0)]} send on no block: allowed "
                         "ports that the frame carries")
    return CodeCsi(h, mask, gain)


def code_fim(layout: CodeLayout, snr_re: float, subcarrier_spacing_hz: float, symbol_times_s: ArrayLike,
             num_rx: int = 1, ports: ArrayLike | None = None) -> NDArray[np.float64]:
    """Fisher information of ``(tau in s, f_D in Hz)`` from the ports' REs, one unknown amplitude per port and receiver.

    Each port ``p`` contributes :func:`sdr_isac.sensing.crb.delay_doppler_fim`
    on the REs it sends on with per-RE SNR ``snr_re |X_p|**2`` (the raw
    measurements: the bound of any extraction), once per receive channel;
    the contributions add (REFERENCE.md §3).

    Parameters
    ----------
    layout : CodeLayout
    snr_re : float
        ``|a|**2 / sigma**2`` per RE for a unit-modulus transmitted value, linear.
    subcarrier_spacing_hz : float
    symbol_times_s : array_like, shape (S,)
    num_rx : int
        Receive channels (>= 1).
    ports : array_like of int, optional
        Indices into ``layout.ports`` to include (default all).
    """
    if isinstance(num_rx, bool) or int(num_rx) != num_rx or num_rx < 1:
        raise InputError(f"num_rx = {num_rx!r}: allowed a whole number >= 1")
    chosen = np.arange(layout.num_ports) if ports is None else np.atleast_1d(np.asarray(ports, dtype=np.int64))
    if chosen.size == 0 or chosen.min() < 0 or chosen.max() >= layout.num_ports:
        raise InputError(f"ports = {ports!r}: allowed indices 0 ... {layout.num_ports - 1} into layout.ports")
    masks = layout.port_masks()[chosen]
    power = np.array([float(np.mean(np.abs(layout.tx[p][masks[i]]) ** 2)) for i, p in enumerate(chosen)])
    return int(num_rx) * channels_fim(snr_re * power, masks, subcarrier_spacing_hz, symbol_times_s)


def virtual_positions(tx_positions_wl: ArrayLike, rx_positions_wl: ArrayLike) -> NDArray[np.float64]:
    """Positions of the MIMO virtual array, ``p_tx + p_rx`` in wavelengths, port-major: shape (P R,).

    A transmit port at ``p_tx`` and a receive antenna at ``p_rx`` see a far
    target through the phase ``2 pi (p_tx + p_rx) sin theta`` (Li & Stoica 2007).
    """
    tx = np.atleast_1d(np.asarray(tx_positions_wl, dtype=np.float64))
    rx = np.atleast_1d(np.asarray(rx_positions_wl, dtype=np.float64))
    if tx.ndim != 1 or rx.ndim != 1 or not (np.all(np.isfinite(tx)) and np.all(np.isfinite(rx))):
        raise InputError("tx_positions_wl and rx_positions_wl: allowed 1-D finite positions in wavelengths")
    return (tx[:, None] + rx[None, :]).reshape(-1)


def estimate_paths(h: ArrayLike, symbol_times_s: ArrayLike, subcarrier_spacing_hz: float, num_paths: int,
                   mask: ArrayLike | None = None, max_delay_s: float | None = None,
                   max_doppler_hz: float | None = None,
                   num_rounds: int = 3) -> list[tuple[DelayDopplerEstimate, NDArray[np.complex128]]]:
    """Several echoes from all channels together: :func:`sdr_isac.sensing.estimate.estimate_paths` (CLEAN from
    the peaks of :func:`sdr_isac.fusion.resource.estimate_delay_doppler`'s map, Newton refinement jointly over
    the channels, then at most ``num_rounds`` RELAX rounds; amplitudes fitted jointly at the end).

    Parameters
    ----------
    h : array_like, shape (C, M, K), complex
    symbol_times_s : array_like, shape (M,)
    subcarrier_spacing_hz : float
    num_paths : int
        >= 1.
    mask : array_like, shape (M, K) or (C, M, K), bool, optional
    max_delay_s, max_doppler_hz : float, optional
        Search limits (priors), s and Hz.
    num_rounds : int
        RELAX rounds (>= 0).

    Returns
    -------
    list of (DelayDopplerEstimate, ndarray of shape (C,))
        Each echo, in the order found (strongest first), with its complex
        amplitude on every channel.
    """
    x, m = as_channels(h, mask)
    t = np.asarray(symbol_times_s, dtype=np.float64)
    df = float(subcarrier_spacing_hz)
    # the channels share one noise level (equal weights): the mean of their robust estimates
    s2 = float(np.mean([noise_variance(x[c], m[c]) for c in range(x.shape[0])]))
    power = delay_doppler_power(x, t, m)
    symbol_step_s = float(np.min(np.diff(t))) if t.size > 1 else 1.0
    steps = (1.0 / (power.shape[0] * df), 1.0 / (power.shape[1] * symbol_step_s))    # the map's bins

    def peak(residual: NDArray[np.complex128]) -> tuple[float, float]:
        est = estimate_delay_doppler(residual, t, df, m, max_delay_s=max_delay_s, max_doppler_hz=max_doppler_hz,
                                     refine=False)
        return est.delay_s, est.doppler_hz

    fims = [delay_doppler_fim(1.0, m[c], df, t) for c in range(x.shape[0])]
    paths = core.estimate_paths(x, m, np.arange(x.shape[2]) * df, t, np.full(x.shape[0], s2), fims, num_paths, peak,
                                steps, 4.0, num_rounds)
    return [(DelayDopplerEstimate(p.delay_s, p.doppler), p.amplitudes) for p in paths]
