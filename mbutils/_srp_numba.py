"""Private: compiled kernel of the sparse random projection (numba; imported lazily).

``project(X, indptr, indices, signs, n_components)`` computes ``X @ S`` where ``S`` is the
(n_features, n_components) sign matrix given in CSR over features (``indptr``, ``indices``,
``signs`` in {-1, +1}). The work is ``n_stimuli * nnz(S)`` additions, done in a cache-friendly
order: features in tasks of ``_TASK``, spread over threads; each task in sub-blocks of ``_SUB``
features whose transposed copy (features x stimuli) is small; every non-zero ``(i, c)`` adds
the contiguous row ``i`` of that copy to row ``c`` of a (n_components, n_stimuli) float32
accumulator. Each task's float32 sum is added into a float64 total per thread, and the
threads' totals are summed in float64 at the end: no layer-sized temporary.

Each output element is summed over features in an order that does not depend on the number of
stimuli, so projecting rows in batches gives bitwise the same result as projecting them all at
once (for a given number of threads).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

_TASK = 32768  # features per task (float32 partial sums over at most this many features)
_SUB = 128  # features per transposed sub-block


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _project(X, indptr, indices, signs, n_components, n_tasks_per_thread, n_threads):
    n, p = X.shape
    n_tasks = (p + _TASK - 1) // _TASK
    total = np.zeros((n_threads, n_components, n), dtype=np.float64)
    for t in prange(n_threads):
        acc = np.empty((n_components, n), dtype=np.float32)
        xt = np.empty((_SUB, n), dtype=np.float32)
        for j in range(n_tasks_per_thread):
            task = t + j * n_threads
            if task >= n_tasks:
                break
            a = task * _TASK
            b = min(p, a + _TASK)
            acc[:, :] = 0.0
            for s0 in range(a, b, _SUB):
                s1 = min(b, s0 + _SUB)
                for r in range(n):
                    for i in range(s0, s1):
                        xt[i - s0, r] = X[r, i]
                for i in range(s0, s1):
                    k = i - s0
                    for q in range(indptr[i], indptr[i + 1]):
                        c = indices[q]
                        if signs[q] > 0:
                            for r in range(n):
                                acc[c, r] += xt[k, r]
                        else:
                            for r in range(n):
                                acc[c, r] -= xt[k, r]
            for c in range(n_components):
                for r in range(n):
                    total[t, c, r] += acc[c, r]
    out = np.empty((n, n_components), dtype=np.float64)
    for c in prange(n_components):
        for r in range(n):
            s = 0.0
            for t in range(n_threads):
                s += total[t, c, r]
            out[r, c] = s
    return out


def project(X, indptr, indices, signs, n_components: int, n_threads: int | None = None) -> np.ndarray:
    """``X @ S`` in float64, shape (n_stimuli, n_components); ``X`` float32 C-contiguous."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    if n_threads is None:
        n_threads = numba.get_num_threads()
    n_tasks = -(-X.shape[1] // _TASK)
    n_threads = max(1, min(int(n_threads), n_tasks))
    per = -(-n_tasks // n_threads)
    return _project(X, indptr, indices, signs, int(n_components), per, n_threads)


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _center_block(X, a, b, out):
    n = X.shape[0]
    w = b - a
    mu = np.zeros(w, dtype=np.float64)
    n_chunks = (w + 1023) // 1024
    for ch in prange(n_chunks):
        j0 = ch * 1024
        j1 = min(w, j0 + 1024)
        for r in range(n):
            for j in range(j0, j1):
                mu[j] += X[r, a + j]
        for j in range(j0, j1):
            mu[j] /= n
    rowsum = np.zeros(n, dtype=np.float64)
    rowdot = np.zeros(n, dtype=np.float64)
    for r in prange(n):
        s = 0.0
        d = 0.0
        for j in range(w):
            v = X[r, a + j] - mu[j]
            out[r, j] = v
            s += v
            d += v * mu[j]
        rowsum[r] = s
        rowdot[r] = d
    return mu, rowsum, rowdot


def center_block(X, a: int, b: int, dtype):
    """Columns ``a:b`` of ``X`` centered over rows (in float64, stored as ``dtype``), C-contiguous.

    Returns ``(xc, mu, rowsum, rowdot)``: the block (n, b - a), its column means (float64), and
    per row ``sum_j xc[r, j]`` and ``sum_j xc[r, j] mu[j]`` in float64.
    """
    out = np.empty((X.shape[0], b - a), dtype=dtype)
    mu, rowsum, rowdot = _center_block(X, int(a), int(b), out)
    return out, mu, rowsum, rowdot
