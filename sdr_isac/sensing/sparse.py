"""Sparse recovery of complex vectors: OMP and FISTA.

Both solve ``y = A x + n`` for a sparse ``x`` (a range profile or Doppler
spectrum with few targets) from fewer measurements than unknowns, e.g. the
REs a comb pilot or a second band leaves on a common grid:

- :func:`omp` — orthogonal matching pursuit (Pati, Rezaiifar & Krishnaprasad,
  1993; Tropp & Gilbert, "Signal recovery from random measurements via
  orthogonal matching pursuit", IEEE Trans. IT 53(12), 2007): greedy, exact
  for a k-sparse x from about ``m = 4 k ln n`` Gaussian measurements with high
  probability;
- :func:`fista` — the fast iterative shrinkage-thresholding algorithm (Beck &
  Teboulle, SIAM J. Imaging Sci. 2(1), 2009) for the l1-regularised least
  squares ``min 1/2 ||A x - y||**2 + lam ||x||_1``; ``A`` may be an FFT-based
  operator given as a ``(forward, adjoint)`` pair.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import numpy as np
import scipy.sparse.linalg as sp_linalg
from numpy.typing import ArrayLike, NDArray

from sdr_isac.errors import InputError

__all__ = ["omp", "fista", "soft_threshold", "as_operator", "lipschitz_constant"]

Operator: TypeAlias = NDArray[np.complexfloating] | NDArray[np.floating] | sp_linalg.LinearOperator
_Map: TypeAlias = Callable[[NDArray[np.complex128]], ArrayLike]
OperatorPair: TypeAlias = tuple[_Map, _Map]


def _vector(name: str, y: ArrayLike, length: int | None = None) -> NDArray[np.complex128]:
    v = np.asarray(y)
    if v.ndim != 1 or (length is not None and v.size != length) or not np.all(np.isfinite(v)):
        want = f"({length},)" if length is not None else "(m,)"
        raise InputError(f"{name} has shape {v.shape}: allowed a finite 1-D array of shape {want}; pass one "
                         "measurement vector")
    return v.astype(np.complex128)


def omp(A: ArrayLike, y: ArrayLike, num_atoms: int | None = None,
        tol: float | None = None) -> tuple[NDArray[np.complex128], NDArray[np.int64]]:
    """Orthogonal matching pursuit (Tropp & Gilbert 2007, Algorithm 3).

    Each step picks the column with the largest normalised correlation
    ``|a_j^H r| / ||a_j||`` with the residual r, then re-fits y by least
    squares on all picked columns (``numpy.linalg.lstsq``).  It stops after
    ``num_atoms`` columns, when ``||r|| <= tol``, when no column correlates
    with the residual, or after ``min(m, n)`` columns.

    Parameters
    ----------
    A : array_like, shape (m, n), complex or float
        Dictionary (measurement matrix); columns need not be normalised.
    y : array_like, shape (m,), complex or float
        Measurements.
    num_atoms : int, optional
        Sparsity k to stop at (1 ... n).
    tol : float, optional
        Residual 2-norm to stop at (>= 0), in the units of ``y``; for noise of
        variance sigma**2 per entry, about ``sigma sqrt(m)``.

    Returns
    -------
    x : ndarray, shape (n,), complex128
        Estimate, zero off the support.
    support : ndarray, shape (s,), int64
        Indices of the picked columns, in the order picked.

    Raises
    ------
    InputError
        If neither ``num_atoms`` nor ``tol`` is given, or shapes disagree.
    """
    a = np.asarray(A)
    if a.ndim != 2 or a.size == 0 or not np.all(np.isfinite(a)):
        raise InputError(f"A has shape {a.shape}: allowed a finite, non-empty 2-D (m, n) matrix")
    a = a.astype(np.complex128)
    m, n = a.shape
    yv = _vector("y", y, m)
    if num_atoms is None and tol is None:
        raise InputError("num_atoms = None and tol = None: allowed at least one stopping rule; pass num_atoms "
                         "(the sparsity) or tol (the residual norm, about sigma * sqrt(m))")
    if num_atoms is not None and (isinstance(num_atoms, bool) or not isinstance(num_atoms, int | np.integer)
                                  or not 1 <= num_atoms <= n):
        raise InputError(f"num_atoms = {num_atoms!r}: allowed an integer 1 ... n = {n}; pass the expected sparsity")
    if tol is not None and not (np.isfinite(tol) and tol >= 0):
        raise InputError(f"tol = {tol!r}: allowed a finite residual norm >= 0; pass e.g. sigma * sqrt(m)")
    limit = min(m, n) if num_atoms is None else min(int(num_atoms), m, n)
    stop = -1.0 if tol is None else float(tol)
    norms = np.linalg.norm(a, axis=0)
    inv_norm = np.divide(1.0, norms, out=np.zeros(n), where=norms > 0)
    support: list[int] = []
    coef: NDArray[np.complex128] = np.zeros(0, dtype=np.complex128)
    r = yv.copy()
    while len(support) < limit and np.linalg.norm(r) > stop:
        score = np.abs(a.conj().T @ r) * inv_norm
        score[support] = 0.0
        j = int(np.argmax(score))
        if score[j] <= 1e-12 * np.linalg.norm(yv):
            break
        support.append(j)
        coef = np.asarray(np.linalg.lstsq(a[:, support], yv, rcond=None)[0], dtype=np.complex128)
        r = yv - a[:, support] @ coef
    x = np.zeros(n, dtype=np.complex128)
    x[support] = coef
    return x, np.array(support, dtype=np.int64)


def soft_threshold(x: ArrayLike, threshold: float) -> NDArray[np.complex128]:
    """Complex soft threshold ``x max(0, 1 - threshold / |x|)``: the prox of ``threshold ||x||_1``.

    It shrinks the modulus by ``threshold`` and keeps the phase (Beck &
    Teboulle 2009, eq. 1.5, for complex entries).

    >>> soft_threshold([3j, 0.5, 0.0], 1.0).tolist()
    [2j, 0j, 0j]
    """
    v = np.asarray(x, dtype=np.complex128)
    mag = np.abs(v)
    scale = np.maximum(0.0, 1.0 - threshold / np.where(mag > 0, mag, 1.0))
    return np.where(mag > 0, v * scale, 0.0)


def as_operator(A: Operator | OperatorPair, shape: tuple[int, int] | None = None) -> sp_linalg.LinearOperator:
    """Wrap a matrix, a ``LinearOperator`` or a ``(forward, adjoint)`` pair as a complex ``LinearOperator``.

    Parameters
    ----------
    A : ndarray, shape (m, n), or LinearOperator, or (callable, callable)
        The operator; a pair maps x of shape (n,) to y of shape (m,) and back
        (the adjoint must be the exact conjugate transpose).
    shape : (int, int), optional
        ``(m, n)``; needed for a pair.

    Returns
    -------
    scipy.sparse.linalg.LinearOperator
        With ``matvec`` and ``rmatvec``, dtype complex128.
    """
    if isinstance(A, sp_linalg.LinearOperator):
        return A
    if isinstance(A, tuple):
        if len(A) != 2 or not all(callable(f) for f in A):
            raise InputError(f"A is a tuple of {len(A)} items: allowed a (forward, adjoint) pair of callables")
        if shape is None or len(shape) != 2 or min(shape) < 1:
            raise InputError(f"shape = {shape!r}: allowed (m, n) with m, n >= 1 for a (forward, adjoint) pair; "
                             "pass the number of measurements and unknowns")
        fwd, adj = A
        return sp_linalg.LinearOperator(
            (int(shape[0]), int(shape[1])), dtype=np.complex128,
            matvec=lambda v: np.asarray(fwd(np.ravel(v).astype(np.complex128)), dtype=np.complex128),
            rmatvec=lambda v: np.asarray(adj(np.ravel(v).astype(np.complex128)), dtype=np.complex128))
    a = np.asarray(A)
    if a.ndim != 2 or a.size == 0 or not np.all(np.isfinite(a)):
        raise InputError(f"A has shape {a.shape}: allowed a finite, non-empty 2-D matrix, a LinearOperator or a "
                         "(forward, adjoint) pair")
    return sp_linalg.aslinearoperator(a.astype(np.complex128))


def lipschitz_constant(op: sp_linalg.LinearOperator) -> float:
    """``L = ||A||_2**2``, the Lipschitz constant of the gradient ``A^H (A x - y)``.

    The largest singular value from ``scipy.sparse.linalg.svds`` (ARPACK,
    seeded start vector); a column or row vector uses its norm.

    Parameters
    ----------
    op : LinearOperator, shape (m, n)

    Returns
    -------
    float
        ``sigma_max(A)**2``.
    """
    m, n = op.shape
    if min(m, n) == 1:
        probe = np.ones(1, dtype=np.complex128)
        return float(np.linalg.norm(op.rmatvec(probe) if m == 1 else op.matvec(probe)) ** 2)
    rng = np.random.default_rng(0)
    v0 = rng.standard_normal(min(m, n)) + 1j * rng.standard_normal(min(m, n))
    s = sp_linalg.svds(op, k=1, v0=v0, return_singular_vectors=False)
    return float(s[0] ** 2)


def fista(A: Operator | OperatorPair, y: ArrayLike, lam: float, num_iter: int = 200, tol: float = 1e-6,
          x0: ArrayLike | None = None, lipschitz: float | None = None) -> NDArray[np.complex128]:
    """FISTA for ``min_x 1/2 ||A x - y||**2 + lam ||x||_1`` over complex x (Beck & Teboulle 2009).

    Iteration (their eq. 4.1–4.3, step ``1 / L``)::

        x_k     = soft(z_k - A^H (A z_k - y) / L, lam / L)
        t_{k+1} = (1 + sqrt(1 + 4 t_k**2)) / 2
        z_{k+1} = x_k + ((t_k - 1) / t_{k+1}) (x_k - x_{k-1})

    with the complex soft threshold of :func:`soft_threshold`.  It stops
    after ``num_iter`` iterations or when ``||x_k - x_{k-1}|| <= tol
    max(||x_k||, tiny)``.  The l1 penalty shrinks every kept amplitude by
    about ``lam`` divided by the gain of A on it; refit by least squares on
    the support when unbiased amplitudes are needed.

    Parameters
    ----------
    A : ndarray (m, n), LinearOperator, or (forward, adjoint) pair of callables
        Measurement operator.  A pair (e.g. FFT-based: ``forward(x)`` of
        shape (m,), ``adjoint(r)`` of shape (n,)) needs ``lipschitz``; its
        shape is taken from ``y`` and ``adjoint(y)``.
    y : array_like, shape (m,), complex
        Measurements.
    lam : float
        Regularisation weight (>= 0), in the units of ``A^H y``; a common
        start is a fraction of ``max |A^H y|`` (at or above it, x = 0).
    num_iter : int, optional
        Maximum number of iterations (>= 1).
    tol : float, optional
        Relative change that stops the iteration (>= 0).
    x0 : array_like, shape (n,), complex, optional
        Start; default zeros.
    lipschitz : float, optional
        ``||A||_2**2`` (> 0); computed by :func:`lipschitz_constant` when
        omitted (not possible for a pair).  Too small a value can diverge.

    Returns
    -------
    ndarray, shape (n,), complex128
        The estimate.
    """
    yv = _vector("y", y)
    if isinstance(A, tuple):
        if len(A) != 2 or not all(callable(f) for f in A):
            raise InputError(f"A is a tuple of {len(A)} items: allowed a (forward, adjoint) pair of callables")
        if lipschitz is None:
            raise InputError("lipschitz = None with a (forward, adjoint) pair: allowed a number > 0; pass "
                             "||A||_2**2 (1.0 for rows of a unitary FFT)")
        n = int(np.asarray(A[1](yv)).size)
        op = as_operator(A, (yv.size, n))
    else:
        op = as_operator(A)
    m, n = op.shape
    if yv.size != m:
        raise InputError(f"y has {yv.size} entries: allowed {m}, one per row of A; pass matching measurements")
    if not (np.isfinite(lam) and lam >= 0):
        raise InputError(f"lam = {lam!r}: allowed a finite weight >= 0; pass e.g. 0.05 * max(abs(A^H y))")
    if isinstance(num_iter, bool) or not isinstance(num_iter, int | np.integer) or num_iter < 1:
        raise InputError(f"num_iter = {num_iter!r}: allowed an integer >= 1; pass e.g. 200")
    if not (np.isfinite(tol) and tol >= 0):
        raise InputError(f"tol = {tol!r}: allowed a finite relative change >= 0; pass e.g. 1e-6")
    lip = lipschitz_constant(op) if lipschitz is None else float(lipschitz)
    if not (np.isfinite(lip) and lip > 0):
        raise InputError(f"lipschitz = {lipschitz!r}: allowed a finite number > 0 (||A||_2**2); omit it to "
                         "compute it, or check that A is not zero")
    x = np.zeros(n, dtype=np.complex128) if x0 is None else _vector("x0", x0, n)
    z, t = x.copy(), 1.0
    for _ in range(int(num_iter)):
        x_new = soft_threshold(z - op.rmatvec(op.matvec(z) - yv) / lip, lam / lip)
        t_new = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        z = x_new + ((t - 1.0) / t_new) * (x_new - x)
        change = np.linalg.norm(x_new - x)
        x, t = x_new, t_new
        if change <= tol * max(float(np.linalg.norm(x)), np.finfo(float).tiny):
            break
    return x
