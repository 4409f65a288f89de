"""The communication receiver: DMRS channel estimation, equalisation, demapping.

This is what makes the frame ISAC and not only radar: the same frame that a
sensing receiver correlates against carries data that a UE decodes.

Chain (per layer, all receive channels together):

1. OFDM demodulation of the received samples (:class:`OfdmModulator`).
2. Least-squares channel estimate on every DMRS CDM block (the 2 adjacent
   REs k' = 0, 1, times 2 symbols l' for double-symbol DMRS): despread with
   the port's cover code w_f(k') w_t(l') (TS 38.211 Tables 7.4.1.1.2-1/-2),
   assuming the channel is flat across the block.
3. Noise variance from the block residual after removing every port of the
   CDM group: E|residual|**2 = (D - P) / D * sigma**2 for D REs and P ports.
4. Linear interpolation of the estimates over subcarriers, then over symbols
   (held constant beyond the first and last pilot).
5. Zero-forcing or MMSE equalisation per RE; the output is scaled to be
   unbiased, with its post-equaliser noise variance.
6. Max-log (or exact) LLRs and hard bits (TS 38.211 §5.1 mapping).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError
from sdr_isac.waveform.dmrs import DmrsLayout
from sdr_isac.waveform.frame import IsacFrame
from sdr_isac.waveform.grid import Signal
from sdr_isac.waveform.modulation import demodulate_llr

__all__ = ["CommReceiver", "CommResult", "interpolation_matrix"]

_log = logging.getLogger(__name__)


def interpolation_matrix(known: ArrayLike, wanted: ArrayLike) -> NDArray[np.float64]:
    """Weights of linear interpolation from points ``known`` to ``wanted``, held at the ends.

    Returns
    -------
    ndarray, shape (len(wanted), len(known)), float64
        ``values_at_wanted = W @ values_at_known``.
    """
    xk = np.asarray(known, dtype=float)
    xw = np.asarray(wanted, dtype=float)
    out = np.zeros((xw.size, xk.size))
    if xk.size == 1:
        out[:, 0] = 1.0
        return out
    pos = np.clip(xw, xk[0], xk[-1])
    right = np.clip(np.searchsorted(xk, pos, side="right"), 1, xk.size - 1)
    left = right - 1
    frac = (pos - xk[left]) / (xk[right] - xk[left])
    rows = np.arange(xw.size)
    out[rows, left] = 1.0 - frac
    out[rows, right] += frac
    return out


@dataclass(eq=False)
class CommResult:
    """What the receiver found in one frame.

    Attributes
    ----------
    grid : ndarray, shape (C, S, K), complex64
        Received resource grid per channel.
    channel : ndarray, shape (C, L, S, K), complex64
        Channel estimate from each layer to each receive channel.
    noise_var : float
        Noise variance per RE on the received grid (estimated or given).
    symbols : ndarray, shape (L, num_data_re), complex128
        Equalised, unbiased data symbols.
    post_noise_var : ndarray, shape (L, num_data_re), float64
        Noise variance of each equalised symbol.
    llr : ndarray, shape (L, num_data_re * Q), float64
        ln P(b=0)/P(b=1).
    bits : ndarray, shape (L, num_data_re * Q), uint8
        Hard decisions.
    """

    grid: NDArray[np.complex64]
    channel: NDArray[np.complex64]
    noise_var: float
    symbols: NDArray[np.complex128]
    post_noise_var: NDArray[np.float64]
    llr: NDArray[np.float64]
    bits: NDArray[np.uint8]

    def ber(self, tx_bits: ArrayLike) -> float:
        """Bit error ratio against the transmitted bits (same shape as :attr:`bits`)."""
        ref = np.asarray(tx_bits).reshape(self.bits.shape)
        return float(np.mean(ref != self.bits)) if ref.size else 0.0

    def evm(self, tx_symbols: ArrayLike) -> float:
        """RMS error vector magnitude, sqrt(mean|x̂ - x|**2 / mean|x|**2), as a ratio."""
        ref = np.asarray(tx_symbols).reshape(self.symbols.shape)
        if ref.size == 0:
            return 0.0
        return float(np.sqrt(np.mean(np.abs(self.symbols - ref) ** 2) / np.mean(np.abs(ref) ** 2)))


class CommReceiver:
    """DMRS-based receiver for one :class:`IsacFrame` layout.

    Parameters
    ----------
    frame : IsacFrame
        The transmitted frame's layout (its DMRS and data REs).  The payload
        bits are not used for decoding.
    equalizer : str
        ``mmse`` (default) or ``zf``.
    llr_method : str
        ``maxlog`` (default) or ``exact``.
    """

    def __init__(self, frame: IsacFrame, equalizer: str = "mmse", llr_method: str = "maxlog"):
        if frame.dmrs is None:
            raise InputError("frame has no DMRS: the communication receiver needs [frame.dmrs]")
        if not frame.config.data.enabled:
            raise InputError("frame carries no data (frame.data.enabled = false): nothing to receive")
        if equalizer not in ("mmse", "zf"):
            raise InputError(f"equalizer = {equalizer!r}: allowed 'mmse' or 'zf'")
        if llr_method not in ("maxlog", "exact"):
            raise InputError(f"llr_method = {llr_method!r}: allowed 'maxlog' or 'exact'")
        self.frame = frame
        self.dmrs: DmrsLayout = frame.dmrs
        self.equalizer = equalizer
        self.llr_method = llr_method
        self._data_sym, self._data_sub = np.nonzero(frame.grid.owner == Signal.DATA)
        self._blocks = self._block_geometry()

    def _block_geometry(self) -> list[dict[str, Any]]:
        """Per CDM group: DMRS rows and REs of complete occasions, pilot positions, and the CDM units (occasion,
        subcarrier pair) whose every RE still carries DMRS.

        Another signal written over DMRS REs (an SS/PBCH block: NR maps neither PDSCH nor its DMRS onto the
        SSB's REs) leaves those units out: the channel there is interpolated from the units around them, and
        an occasion left without a unit is left out of the interpolation in time.  Where every occasion is cut
        over a band (the blocks of ``hw_configs/sim_ssb_passive.toml`` on DMRS symbols 2 and 11), the data there
        get a channel interpolated across the band (20 RB): fine on a flat channel, not on a selective one
        (16QAM at 25 dB over four taps up to 15 samples: BER 0.09 against 0.005 without blocks, a reviewer's
        measurement); a warning names the subcarriers.  The block's own known REs are not used as pilots.
        """
        lay = self.dmrs
        length = lay.config.length
        occ, counts = np.unique(lay.occasion, return_counts=True)
        complete = occ[counts == length]
        rows = np.nonzero(np.isin(lay.occasion, complete))[0]       # rows of lay.symbols, by occasion
        if rows.size == 0:
            raise InputError("frame holds no complete DMRS occasion: lengthen the frame")
        blocks = []
        k_sc = self.frame.config.num_subcarriers
        owner = self.frame.grid.owner
        times = lay.symbols[rows].reshape(-1, length).mean(axis=1)
        for group in lay.groups:
            sub = np.nonzero(lay.group_of_subcarrier == group)[0]   # sorted; pairs k' = 0, 1 adjacent
            layers = [j for j in range(len(lay.ports)) if np.any(lay.cover[j][:, sub] != 0)]
            n_occ, n_pair = rows.size // length, sub.size // 2
            kept = (owner[np.ix_(lay.symbols[rows], sub)] == Signal.DMRS).reshape(n_occ, length, n_pair, 2)
            units = kept.all(axis=(1, 3))                             # (occasion, pair)
            occasions = np.nonzero(units.any(axis=1))[0]
            if occasions.size == 0:
                raise InputError(f"every DMRS RE of CDM group {group} is overwritten by another signal (an SS/PBCH "
                                 "block?): move the DMRS symbols or the block, or lengthen the frame")
            centres = sub.reshape(-1, 2).mean(axis=1)
            never = sub.reshape(-1, 2)[~units.any(axis=0)].reshape(-1)
            data_there = np.isin(self._data_sub, never)
            if data_there.any():
                _log.warning("DMRS CDM group %d: another signal (an SS/PBCH block?) overwrites DMRS in every "
                             "occasion in the CDM pairs of subcarriers %d ... %d; the channel of the %d data REs "
                             "there is interpolated across them, and a frequency-selective channel will cost bit "
                             "errors: "
                             "move the DMRS symbols (dmrs.additional_positions, dmrs.type_a_position) or the block",
                             group, int(never.min()), int(never.max()), int(np.count_nonzero(data_there)))
            blocks.append({
                "rows": rows, "sub": sub, "layers": np.asarray(layers), "units": units, "occasions": occasions,
                "freq_w": [interpolation_matrix(centres[units[o]], np.arange(k_sc)) for o in occasions],
                "time_w": interpolation_matrix(times[occasions], np.arange(self.frame.num_symbols)),
            })
        return blocks

    def estimate_channel(self, rx_grid: NDArray[np.complex64]) -> tuple[NDArray[np.complex64], float | None]:
        """Channel per (channel, layer, symbol, subcarrier) and the noise variance (None if not estimable).

        Parameters
        ----------
        rx_grid : ndarray, shape (C, S, K), complex
        """
        lay = self.dmrs
        length = lay.config.length
        c = rx_grid.shape[0]
        s_all, k_sc = self.frame.num_symbols, self.frame.config.num_subcarriers
        channel = np.zeros((c, len(lay.ports), s_all, k_sc), dtype=np.complex64)
        res_energy, dof = 0.0, 0
        for blk in self._blocks:
            rows, sub, layers, units = blk["rows"], blk["sub"], blk["layers"], blk["units"]
            n_occ, n_pair = rows.size // length, sub.size // 2
            seq = lay.sequence[np.ix_(rows, sub)]
            z = rx_grid[:, lay.symbols[rows]][:, :, sub] * np.conj(seq)[None] / np.abs(seq)[None] ** 2
            z = z.reshape(c, n_occ, length, n_pair, 2)
            cover = lay.cover[np.ix_(layers, rows, sub)].reshape(layers.size, n_occ, length, n_pair, 2)
            est = np.einsum("lotpk,cotpk->clop", cover, z) / (2 * length)          # (C, Lg, occ, pair)
            residual = (z - np.einsum("clop,lotpk->cotpk", est, cover)) * units[None, :, None, :, None]
            res_energy += float(np.sum(np.abs(residual) ** 2))
            dof += c * int(units.sum()) * (2 * length - layers.size)
            freq = np.stack([est[:, :, o, units[o]] @ w.T for o, w in zip(blk["occasions"], blk["freq_w"],
                                                                          strict=True)], axis=2)   # (C, Lg, occ, K)
            channel[:, layers] = np.einsum("so,clok->clsk", blk["time_w"], freq)
        noise_var = res_energy / dof if dof > 0 else None
        return channel, noise_var

    def receive(self, samples: ArrayLike, offset: int = 0, noise_var: float | None = None) -> CommResult:
        """Decode one frame from time samples.

        Parameters
        ----------
        samples : array_like, shape (C, L) or (L,), complex
            Received samples, the frame starting at ``offset``.
        offset : int
            First sample of the frame (>= 0).
        noise_var : float, optional
            Noise variance per RE (per time sample, the transforms being
            unitary).  Estimated from the DMRS when omitted.

        Returns
        -------
        CommResult
        """
        rx_grid = self.frame.ofdm.demodulate(samples, offset)
        return self.receive_grid(rx_grid, noise_var)

    def receive_grid(self, rx_grid: NDArray[np.complex64], noise_var: float | None = None) -> CommResult:
        """Decode one frame from its received resource grid, shape (C, S, K)."""
        expected = (self.frame.num_symbols, self.frame.config.num_subcarriers)
        if rx_grid.ndim != 3 or rx_grid.shape[1:] != expected:
            raise InputError(f"rx_grid has shape {rx_grid.shape}: allowed (channels, {expected[0]}, {expected[1]})")
        channel, estimated = self.estimate_channel(rx_grid)
        if noise_var is None:
            if estimated is None:
                raise InputError("noise_var cannot be estimated: every DMRS CDM block is fully used by ports; "
                                 "pass noise_var (noise variance per RE) explicitly")
            noise_var = max(estimated, 1e-12)
        elif not noise_var > 0:
            raise InputError(f"noise_var = {noise_var}: must be > 0 (noise variance per RE)")
        y = rx_grid[:, self._data_sym, self._data_sub].astype(np.complex128)        # (C, n)
        h = channel[:, :, self._data_sym, self._data_sub].astype(np.complex128)     # (C, L, n)
        symbols, post_var = self._equalise(y, h, float(noise_var))
        scheme = self.frame.config.data.modulation
        llr = np.stack([demodulate_llr(symbols[j], scheme, post_var[j], self.llr_method)
                        for j in range(symbols.shape[0])])
        return CommResult(rx_grid, channel, float(noise_var), symbols, post_var, llr, (llr < 0).astype(np.uint8))

    def _equalise(self, y: NDArray[np.complex128], h: NDArray[np.complex128],
                  noise_var: float) -> tuple[NDArray[np.complex128], NDArray[np.float64]]:
        """Unbiased ZF or MMSE estimates (L, n) and their noise variances (L, n)."""
        floor = 1e-30
        if h.shape[1] == 1:                       # one layer: ZF and unbiased MMSE coincide (MRC)
            gain = np.maximum(np.sum(np.abs(h[:, 0]) ** 2, axis=0), floor)
            x = np.sum(np.conj(h[:, 0]) * y, axis=0) / gain
            return x[None], (noise_var / gain)[None]
        hn = np.moveaxis(h, 2, 0)                                   # (n, C, L)
        gram = np.conj(np.swapaxes(hn, 1, 2)) @ hn                  # (n, L, L)
        matched = np.einsum("ncl,cn->nl", np.conj(hn), y)           # (n, L)
        eye = np.eye(h.shape[1])
        if self.equalizer == "zf":
            x = np.linalg.solve(gram, matched[..., None])[..., 0]
            var = noise_var * np.real(np.diagonal(np.linalg.inv(gram), axis1=1, axis2=2))
        else:
            a = gram + noise_var * eye
            x_biased = np.linalg.solve(a, matched[..., None])[..., 0]
            d = np.real(np.diagonal(np.linalg.solve(a, gram), axis1=1, axis2=2))
            d = np.clip(d, floor, 1.0 - 1e-12)
            x = x_biased / d
            var = (1.0 - d) / d
        return x.T, np.maximum(var.T, floor)
