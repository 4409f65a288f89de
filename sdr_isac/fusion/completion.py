"""Recovery of the empty entries of a channel information matrix by compressed sensing.

A CIM ``H`` (symbols x subcarriers) measured on a subset of its REs (a comb
pilot, a few reference signals, a second band placed on a common grid) is
completed by assuming that few scatterers make it, i.e. that its
delay-Doppler transform ``X = F(H)`` is sparse.  ``F`` is the unitary
periodogram transform (inverse DFT over subcarriers, DFT over symbols), so
the measurement operator ``A(X) = mask * F^-1(X)`` is a row selection of a
unitary matrix and ``||A||_2 = 1``.  The l1-regularised least squares

    min_X 1/2 ||mask * (F^-1(X) - H)||_F**2 + lam ||X||_1

is solved by FISTA (Beck & Teboulle, SIAM J. Imaging Sci. 2(1), 2009; the
same iteration as :func:`sdr_isac.sensing.sparse.fista`, written here on 2-D
arrays with FFTs so that a 512 x 64 grid costs two FFTs per iteration).
``lam`` defaults to the universal threshold of Donoho & Johnstone
(Biometrika 81(3), 1994) for the noise that the observed REs leave in each
delay-Doppler cell, so that pure noise recovers to zero and the completion
falls back to zero-filling when the signal is below the noise.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.fft as sp_fft
from numpy.typing import NDArray

from sdr_isac.errors import InputError
from sdr_isac.sensing.estimate import noise_variance as noise_variance_of_map

__all__ = ["to_delay_doppler", "from_delay_doppler", "noise_variance", "pilot_noise", "complete_cim",
           "universal_threshold"]


def to_delay_doppler(h: NDArray[np.complexfloating]) -> NDArray[np.complex128]:
    """Unitary periodogram transform of a CIM of shape (M symbols, K subcarriers).

    Inverse DFT over subcarriers (a delay ``tau`` peaks at bin ``tau K df``)
    and DFT over symbols (a Doppler ``f_D`` peaks at bin ``f_D M T``), both
    scaled by ``1 / sqrt(n)``; the Doppler axis is not shifted.
    """
    return sp_fft.fft(sp_fft.ifft(h, axis=-1, norm="ortho"), axis=-2, norm="ortho")


def from_delay_doppler(x: NDArray[np.complexfloating]) -> NDArray[np.complex128]:
    """Inverse of :func:`to_delay_doppler`."""
    return sp_fft.fft(sp_fft.ifft(x, axis=-2, norm="ortho"), axis=-1, norm="ortho")


def noise_variance(h: NDArray[np.complexfloating], mask: NDArray[np.bool_]) -> float:
    """Noise variance per RE of a CIM, estimated robustly from its delay-Doppler map.

    The map of the observed REs (zero elsewhere) spreads white noise evenly,
    ``E|X|**2 = sigma**2 n_obs / (M K)`` in every cell, while a few targets
    occupy few cells; the median of an exponential variable is ``ln 2``
    times its mean, so ``sigma**2 = median |X|**2 M K / (n_obs ln 2)``.
    Accurate while targets and their sidelobes cover well under half the
    cells: true for pilots on regular combs and blocks, whose leakage stays on
    a few rows and columns, not for random RE subsets, which spread it over
    the whole map like noise (pass the noise variance there).
    :func:`sdr_isac.sensing.estimate.noise_variance` on that map (:func:`pilot_noise` without a block).
    """
    return pilot_noise(h, mask)[0]


def pilot_noise(h: NDArray[np.complexfloating], mask: NDArray[np.bool_],
                block: tuple[NDArray[np.intp], NDArray[np.intp]] | None = None
                ) -> tuple[float, NDArray[np.float64]]:
    """Noise variance per RE of a CIM's pilots, and the periodogram whose median gives it.

    Without ``block``, :func:`noise_variance`: the map of the whole (M, K) grid, zero off ``mask``, whose
    noise cells have mean ``sigma**2 n_obs / (M K)``.  With ``block``, the (rows, cols) of
    :func:`sdr_isac.fusion.multiband.periodic_block` of ``mask`` (REs on every g-th row and h-th column
    of the whole grid, all on the mask), the (R, C) map of the block alone, noise mean ``sigma**2``: the
    grid's map is that map repeated g times along Doppler and h times along delay and scaled by
    ``R C / (M K)``, so its median gives the same level (to about 1e-15) at a fraction of the cost.

    Parameters
    ----------
    h : ndarray, shape (M, K), complex
        The CIM; entries off ``mask`` are ignored.
    mask : ndarray, shape (M, K), bool
        The observed REs (at least one).
    block : (rows, cols) of int arrays, optional
        ``periodic_block(mask)`` where it is not None.

    Returns
    -------
    noise_var : float
        Noise variance per RE (:func:`sdr_isac.sensing.estimate.noise_variance` of the map).
    power : ndarray, shape (M, K) or (R, C), float64
        ``|X|**2`` of the map it was taken from (the unitary transform :func:`to_delay_doppler`, Doppler
        not shifted).

    Raises
    ------
    InputError
        ``mask`` selects no RE (without a block).
    """
    if block is not None:
        power = np.abs(to_delay_doppler(h[np.ix_(*block)])) ** 2
        return noise_variance_of_map(power, 1.0), power
    m = np.asarray(mask, dtype=bool)
    n_obs = int(np.count_nonzero(m))
    if n_obs == 0:
        raise InputError("mask selects no RE: allowed at least one observed RE; check the pilot pattern")
    power = np.abs(to_delay_doppler(np.where(m, h, 0))) ** 2
    return noise_variance_of_map(power, n_obs / m.size), power


def universal_threshold(noise_var: float, mask: NDArray[np.bool_]) -> float:
    """``lam = s sqrt(ln n)``: the level that n cells of complex noise with ``E|z|**2 = s**2`` rarely exceed.

    ``s**2 = sigma**2 n_obs / n`` is the noise a cell of the map of the
    observed REs carries (:func:`noise_variance`).
    """
    m = np.asarray(mask, dtype=bool)
    s2 = noise_var * np.count_nonzero(m) / m.size
    return float(np.sqrt(s2 * np.log(m.size)))


def complete_cim(h: NDArray[np.complexfloating], mask: NDArray[np.bool_], lam: float | None = None,
                 noise_var: float | None = None, num_iter: int = 100, tol: float = 1e-4,
                 support: NDArray[np.bool_] | None = None) -> NDArray[np.complex128]:
    """Fill the unobserved REs of ``h`` by l1-regularised recovery of its sparse delay-Doppler transform.

    Parameters
    ----------
    h : ndarray, shape (M, K), complex
        CIM; entries outside ``mask`` are ignored.
    mask : ndarray, shape (M, K), bool
        Observed REs.
    lam : float, optional
        l1 weight in the units of the unitary map; default
        :func:`universal_threshold` of ``noise_var``.
    noise_var : float, optional
        Noise variance per RE; default :func:`noise_variance` of ``h``.
    num_iter : int
        Most FISTA iterations (>= 1).
    tol : float
        Stop when the relative change of X falls below it.
    support : ndarray, shape (M, K), bool, optional
        The delay-Doppler cells (layout of :func:`to_delay_doppler`: Doppler not shifted) where targets may
        be: a prior such as a largest speed.  X is kept zero elsewhere (the proximal step of the l1 weight
        plus the support's indicator).  Pilots on every g-th symbol alias every ``M / g`` Doppler bins and
        cannot be completed without one (every alias fits them equally: the solution spreads over them and
        the completion is zero-filling); a support narrower than the alias spacing makes it well posed.
        Default: every cell.

    Returns
    -------
    ndarray, shape (M, K), complex128
        ``h`` on the observed REs (data kept as measured) and the recovered
        ``F^-1(X)`` on the others.
    """
    y = np.asarray(h)
    m = np.asarray(mask, dtype=bool)
    if y.ndim != 2 or m.shape != y.shape:
        raise InputError(f"h has shape {y.shape} and mask {m.shape}: allowed one 2-D (symbols, subcarriers) shape "
                         "for both")
    if not np.all(np.isfinite(y[m])):
        raise InputError("h has NaN or infinite entries on observed REs: allowed finite complex values")
    if isinstance(num_iter, bool) or int(num_iter) < 1:
        raise InputError(f"num_iter = {num_iter!r}: allowed an integer >= 1")
    y0 = np.where(m, y, 0).astype(np.complex128)
    if lam is None:
        sigma2 = noise_variance(y0, m) if noise_var is None else float(noise_var)
        lam = universal_threshold(sigma2, m)
    if not (np.isfinite(lam) and lam >= 0):
        raise InputError(f"lam = {lam!r}: allowed a finite weight >= 0")
    supp = None
    if support is not None:
        supp = np.asarray(support)
        if supp.shape != m.shape or supp.dtype != np.bool_:
            raise InputError(f"support has shape {supp.shape} and dtype {supp.dtype}: allowed a bool array of the "
                             f"CIM's shape {m.shape} (delay-Doppler cells, Doppler not shifted)")
        if not supp.any():
            raise InputError("support selects no delay-Doppler cell: allowed at least one; widen the prior")
    rows, cols = np.asarray(m.any(axis=1)), np.asarray(m.any(axis=0))
    if np.array_equal(m, np.outer(rows, cols)) and (rows.all() or cols.all()):
        return _complete_decoupled(y0, m, rows, cols, float(lam), int(num_iter), tol, supp)

    def forward(x: NDArray[np.complex128]) -> NDArray[np.complex128]:
        return np.where(m, from_delay_doppler(x), 0)

    x = _fista(forward, to_delay_doppler, y0, float(lam), int(num_iter), tol, supp)
    return np.where(m, y0, from_delay_doppler(x))


def _complete_decoupled(y0: NDArray[np.complex128], m: NDArray[np.bool_], rows: NDArray[np.bool_],
                        cols: NDArray[np.bool_], lam: float, num_iter: int, tol: float,
                        support: NDArray[np.bool_] | None = None) -> NDArray[np.complex128]:
    """Completion for a product mask with one axis fully observed (a comb on every symbol, a block pilot on
    every subcarrier of some symbols).

    The unitary transform along the complete axis commutes with the mask, so
    the problem splits into independent 1-D problems, one per bin of that
    axis, and a bin whose adjoint never exceeds ``lam`` has the exact
    solution zero (the l1 optimality condition): only the others are solved.
    """
    if rows.all():           # comb: every symbol observed; transform over symbols, recover over subcarriers
        g = sp_fft.fft(y0, axis=0, norm="ortho")
        keep, along_fwd, along_adj = cols, sp_fft.fft, sp_fft.ifft
        supp = support                             # (Doppler bin, delay): a 1-D problem over delay per row
    else:                    # block: every subcarrier observed; transform over subcarriers, recover over symbols
        g = np.zeros(y0.shape[::-1], dtype=np.complex128)          # the unobserved symbols transform to zero
        g[:, rows] = sp_fft.ifft(y0[rows], axis=1, norm="ortho").T
        keep, along_fwd, along_adj = rows, sp_fft.ifft, sp_fft.fft
        supp = None if support is None else support.T   # (delay bin, Doppler): a problem over Doppler per row

    def forward(x: NDArray[np.complex128]) -> NDArray[np.complex128]:
        return np.where(keep, along_fwd(x, axis=-1, norm="ortho"), 0)

    def adjoint(r: NDArray[np.complex128]) -> NDArray[np.complex128]:
        return along_adj(r, axis=-1, norm="ortho")

    start = np.abs(adjoint(g))
    active = np.max(start if supp is None else start * supp, axis=1) > lam
    filled = g.copy()
    if active.any():
        x = _fista(forward, adjoint, g[active], lam, num_iter, tol, None if supp is None else supp[active])
        filled[active] = np.where(keep, g[active], along_fwd(x, axis=-1, norm="ortho"))
    if rows.all():
        return np.where(m, y0, sp_fft.ifft(filled, axis=0, norm="ortho"))
    return np.where(m, y0, sp_fft.fft(filled.T, axis=1, norm="ortho"))


def _fista(forward: Callable[[NDArray[np.complex128]], NDArray[np.complex128]],
           adjoint: Callable[[NDArray[np.complex128]], NDArray[np.complex128]], y: NDArray[np.complex128],
           lam: float, num_iter: int, tol: float, support: NDArray[np.bool_] | None = None) -> NDArray[np.complex128]:
    """FISTA with step 1 (``||A|| = 1``) on arrays of any shape (batched 1-D or 2-D problems); ``support``
    (the shape of the unknowns, or None) keeps the unknowns zero outside it."""
    x = np.zeros_like(y)
    z, t = x, 1.0
    tiny = np.finfo(float).tiny
    for _ in range(num_iter):
        # the same operations as g = z + A^H (y - A z); x_new = g max(0, 1 - lam / max(|g|, tiny)), in place
        r = forward(z)
        np.subtract(y, r, out=r)
        g = adjoint(r)
        g += z
        shrink = np.abs(g)
        np.maximum(shrink, tiny, out=shrink)
        np.divide(lam, shrink, out=shrink)
        np.subtract(1.0, shrink, out=shrink)
        np.maximum(0.0, shrink, out=shrink)
        if support is not None:
            shrink *= support
        x_new = np.multiply(g, shrink, out=g)
        t_new = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        step = x_new - x
        change = float(np.linalg.norm(step))
        step *= (t - 1.0) / t_new
        z = np.add(x_new, step, out=step)
        x, t = x_new, t_new
        if not np.any(x) or change <= tol * float(np.linalg.norm(x)):
            break
    return x
