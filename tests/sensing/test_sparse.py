"""Tests of sdr_isac.sensing.sparse: OMP and FISTA on complex data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse.linalg as sp_linalg

from sdr_isac.errors import InputError
from sdr_isac.sensing import sparse


def _complex_normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / math.sqrt(2)


# ------------------------------------------------------------------------- OMP

def test_omp_recovers_k_sparse_vector_exactly(rng: np.random.Generator) -> None:
    # Tropp & Gilbert 2007: m ~ 4 k ln n Gaussian measurements recover any k-sparse x with high probability
    k, n = 5, 256
    m = math.ceil(4 * k * math.log(n))
    for _ in range(20):
        a = _complex_normal(rng, m, n)
        x = np.zeros(n, complex)
        idx = rng.choice(n, k, replace=False)
        x[idx] = _complex_normal(rng, k) + 0.5 * np.exp(2j * np.pi * rng.uniform(size=k))
        x_hat, support = sparse.omp(a, a @ x, num_atoms=k)
        assert set(support.tolist()) == set(idx.tolist())
        np.testing.assert_allclose(x_hat, x, atol=1e-10)


def test_omp_stops_at_residual_tolerance(rng: np.random.Generator) -> None:
    k, n, m, sigma = 4, 128, 80, 0.01
    a = _complex_normal(rng, m, n) / math.sqrt(m)          # unit-norm columns on average
    x = np.zeros(n, complex)
    idx = rng.choice(n, k, replace=False)
    x[idx] = np.exp(2j * np.pi * rng.uniform(size=k))
    y = a @ x + sigma * _complex_normal(rng, m)
    # ||noise|| ~ sigma sqrt(m); a tolerance 1.5x that stops once the k atoms are in
    x_hat, support = sparse.omp(a, y, tol=1.5 * sigma * math.sqrt(m))
    assert set(support.tolist()) == set(idx.tolist())
    assert np.linalg.norm(y - a @ x_hat) <= 1.5 * sigma * math.sqrt(m)


def test_omp_real_dictionary_and_zero_measurement() -> None:
    a = np.eye(4)
    x_hat, support = sparse.omp(a, [0.0, 3.0, 0.0, -1.0], num_atoms=2)
    assert support.tolist() == [1, 3]
    np.testing.assert_allclose(x_hat, [0, 3, 0, -1])
    x0, s0 = sparse.omp(a, np.zeros(4), num_atoms=2)
    assert s0.size == 0 and not np.any(x0)


# ----------------------------------------------------------------------- FISTA

N_SC = 256
BINS = [20, 47, 130]


def _partial_dft_problem(rng: np.random.Generator, sigma: float = 0.01):
    """A range profile with 3 targets observed on a random half of the subcarriers (comb / missing REs)."""
    rows = np.sort(rng.choice(N_SC, N_SC // 2, replace=False))
    f = np.exp(-2j * np.pi * np.outer(np.arange(N_SC), np.arange(N_SC)) / N_SC) / math.sqrt(N_SC)  # unitary DFT
    a = f[rows]
    x = np.zeros(N_SC, complex)
    x[BINS] = np.array([1.0, 0.7, 0.5]) * np.exp(2j * np.pi * rng.uniform(size=3))
    y = a @ x + sigma * _complex_normal(rng, rows.size)
    return rows, a, x, y


def test_fista_recovers_range_profile_from_half_the_subcarriers(rng: np.random.Generator) -> None:
    sigma, lam = 0.01, 0.01
    rows, a, x, y = _partial_dft_problem(rng, sigma)
    x_hat = sparse.fista(a, y, lam, num_iter=500, tol=1e-8)
    gain = rows.size / N_SC                       # A_S^H A_S ~ (|S| / N) I on the support
    assert sorted(np.argsort(-np.abs(x_hat))[:3].tolist()) == BINS
    # l1 bias lam / gain per amplitude, plus noise sigma / sqrt(gain) after the matched filter (4 std)
    assert np.max(np.abs(x_hat[BINS] - x[BINS])) <= 1.5 * lam / gain + 4 * sigma / math.sqrt(gain)
    assert np.max(np.abs(np.delete(x_hat, BINS))) < 0.1 * 0.5   # far below the weakest target
    zero_filled = a.conj().T @ y / gain            # missing REs set to 0, amplitude-compensated
    assert np.linalg.norm(x_hat - x) < 0.1 * np.linalg.norm(zero_filled - x)


def test_fista_with_fft_operator_pair_matches_dense_matrix(rng: np.random.Generator) -> None:
    rows, a, x, y = _partial_dft_problem(rng)

    def forward(v: np.ndarray) -> np.ndarray:
        return np.fft.fft(v, norm="ortho")[rows]

    def adjoint(r: np.ndarray) -> np.ndarray:
        z = np.zeros(N_SC, complex)
        z[rows] = r
        return np.fft.ifft(z, norm="ortho")

    # rows of a unitary matrix: ||A||_2 = 1
    x_pair = sparse.fista((forward, adjoint), y, 0.01, num_iter=300, lipschitz=1.0)
    x_dense = sparse.fista(a, y, 0.01, num_iter=300)
    np.testing.assert_allclose(x_pair, x_dense, atol=1e-9)
    op = sparse.as_operator((forward, adjoint), (rows.size, N_SC))
    assert isinstance(op, sp_linalg.LinearOperator)
    assert sparse.lipschitz_constant(op) == pytest.approx(1.0, rel=1e-9)


def test_lipschitz_constant_is_largest_singular_value_squared(rng: np.random.Generator) -> None:
    a = _complex_normal(rng, 30, 50)
    assert sparse.lipschitz_constant(sparse.as_operator(a)) == pytest.approx(np.linalg.norm(a, 2) ** 2, rel=1e-9)
    assert sparse.lipschitz_constant(sparse.as_operator(np.array([[3.0, 4.0]]))) == pytest.approx(25.0)


def test_fista_zero_above_lambda_max_and_least_squares_at_zero(rng: np.random.Generator) -> None:
    a = _complex_normal(rng, 40, 10)
    y = _complex_normal(rng, 40)
    # optimality: x = 0 iff ||A^H y||_inf <= lam
    lam_max = np.max(np.abs(a.conj().T @ y))
    assert not np.any(sparse.fista(a, y, 1.001 * lam_max))
    # lam = 0 on a full-column-rank A is least squares
    x_ls = np.linalg.lstsq(a, y, rcond=None)[0]
    np.testing.assert_allclose(sparse.fista(a, y, 0.0, num_iter=2000, tol=1e-12), x_ls, atol=1e-8)


def test_soft_threshold_keeps_phase_and_shrinks_modulus() -> None:
    x = np.array([2 * np.exp(0.7j), 0.3 * np.exp(-2j), 0.0])
    out = sparse.soft_threshold(x, 0.5)
    np.testing.assert_allclose(out, [1.5 * np.exp(0.7j), 0.0, 0.0], atol=1e-15)


# ------------------------------------------------------------------ bad inputs

@pytest.mark.parametrize(("call", "match"), [
    (lambda: sparse.omp(np.eye(3), np.ones(3)), "allowed at least one stopping rule"),
    (lambda: sparse.omp(np.eye(3), np.ones(4), num_atoms=1), "y has shape \\(4,\\): allowed .* \\(3,\\)"),
    (lambda: sparse.omp(np.ones(3), np.ones(3), num_atoms=1), "A has shape \\(3,\\)"),
    (lambda: sparse.omp(np.eye(3), np.ones(3), num_atoms=4), "num_atoms = 4: allowed an integer 1 ... n = 3"),
    (lambda: sparse.omp(np.eye(3), np.ones(3), tol=-1.0), "tol = -1.0"),
    (lambda: sparse.fista(np.eye(3), np.ones(3), -0.1), "lam = -0.1: allowed a finite weight >= 0"),
    (lambda: sparse.fista(np.eye(3), np.ones(4), 0.1), "y has 4 entries: allowed 3"),
    (lambda: sparse.fista(np.eye(3), np.ones(3), 0.1, num_iter=0), "num_iter = 0"),
    (lambda: sparse.fista(np.eye(3), np.ones(3), 0.1, x0=np.ones(2)), "x0 has shape \\(2,\\)"),
    (lambda: sparse.fista((np.fft.fft, np.fft.ifft), np.ones(3), 0.1), "lipschitz = None with a"),
    (lambda: sparse.fista((np.fft.fft,), np.ones(3), 0.1, lipschitz=1.0), "allowed a \\(forward, adjoint\\) pair"),
    (lambda: sparse.fista(np.eye(3), np.ones(3), 0.1, lipschitz=0.0), "lipschitz = 0.0"),
    (lambda: sparse.as_operator((np.fft.fft, np.fft.ifft)), "shape = None"),
])
def test_bad_inputs_raise_input_error(call, match) -> None:
    with pytest.raises(InputError, match=match):
        call()
