"""Private: compiled kernels of the sparse random projection and the Gram centering (numba).

The projection ``X @ S`` (``S``: the (n_features, n_components) sparse sign matrix of
:func:`mbutils.reduction.sparse_random_matrix`, magnitudes factored out) is done in a
cache-friendly order:

- the non-zeros are stored packed (:func:`pack`), one int32 word each
  (``component << 13 | feature_in_task << 1 | negative``), bucketed by task (``_TASK``
  consecutive features) and, within a task, by group of ``_GROUP`` components, in feature order
  inside each bucket;
- the stimuli are processed in chunks of ``_CH`` rows; for each task the chunk's rows are
  transposed into a (``_TASK``, ``_CH``) block that stays in the L2 cache, and every non-zero
  ``(c, f)`` adds row ``f`` of that block to row ``c`` of a (n_components, ``_CH``) float32
  accumulator, whose touched window (one component group) stays in the L1 cache;
- the float32 accumulators are flushed into float64 totals every ``_FLUSH`` tasks, and the
  totals of the thread slots are summed in float64 at the end.

Each output element is summed over features in an order that depends neither on the number of
stimuli nor on the chunking, so projecting rows in batches gives bitwise the same result as
projecting them all at once (for a given number of threads).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

_TASK = 4096  # features per task (transposed block of _TASK x _CH float32 = 512 KiB)
_GROUP = 256  # components per group (accumulator window of _GROUP x _CH float32 = 32 KiB)
_FLUSH = 8  # tasks of a thread slot between float32 -> float64 flushes
_CH = 32  # stimuli per chunk
#: largest number of components the packed words can address
MAX_COMPONENTS = 2 ** 18


@njit(cache=True, nogil=True)
def _pack(indptr, cols, negative, n_components):
    n_features = indptr.size - 1
    n_tasks = (n_features + _TASK - 1) // _TASK
    n_groups = (n_components + _GROUP - 1) // _GROUP
    n_buckets = n_tasks * n_groups
    ptr = np.zeros(n_buckets + 1, dtype=np.int64)
    for f in range(n_features):
        base = (f // _TASK) * n_groups + 1
        for q in range(indptr[f], indptr[f + 1]):
            ptr[base + cols[q] // _GROUP] += 1
    for b in range(n_buckets):
        ptr[b + 1] += ptr[b]
    fill = ptr[:n_buckets].copy()
    words = np.empty(indptr[n_features] - indptr[0], dtype=np.int32)
    for f in range(n_features):
        t = f // _TASK
        low = (f - t * _TASK) << 1
        for q in range(indptr[f], indptr[f + 1]):
            c = cols[q]
            b = t * n_groups + c // _GROUP
            words[fill[b]] = (c << 13) | low | (1 if negative[q] else 0)
            fill[b] += 1
    return ptr, words


def pack(indptr, cols, negative, n_components: int):
    """Packed non-zeros of a sign matrix, for :func:`project`.

    Parameters
    ----------
    indptr : ndarray of shape (n_features + 1,), int64
        CSR row pointer over features.
    cols : ndarray of shape (nnz,), integer
        Component of each non-zero.
    negative : ndarray of shape (nnz,), bool
    n_components : int

    Returns
    -------
    ptr : ndarray of shape (n_tasks * n_groups + 1,), int64
        Start of each (task, component group) bucket in ``words``; within a bucket the
        non-zeros keep their CSR order.
    words : ndarray of shape (nnz,), int32
    """
    if int(n_components) > MAX_COMPONENTS:
        raise ValueError(f"n_components={n_components}; the packed kernel supports at most {MAX_COMPONENTS}")
    return _pack(np.asarray(indptr, dtype=np.int64), np.asarray(cols, dtype=np.int32),
                 np.asarray(negative, dtype=np.bool_), int(n_components))


def pack_csr(indptr, indices, signs, n_components: int):
    """:func:`pack` from a CSR sign matrix over features (``signs`` in {-1, +1})."""
    indptr = np.asarray(indptr, dtype=np.int64)
    lo, hi = int(indptr[0]), int(indptr[-1])
    return pack(indptr - lo, indices[lo:hi], np.asarray(signs[lo:hi]) < 0, n_components)


@njit(cache=True, nogil=True)
def _sort_rows(indptr, cols, bad):
    for f in range(indptr.size - 1):
        a = indptr[f]
        b = indptr[f + 1]
        for i in range(a + 1, b):  # insertion sort: rows are short
            v = cols[i]
            j = i - 1
            while j >= a and cols[j] > v:
                cols[j + 1] = cols[j]
                j -= 1
            cols[j + 1] = v
        for i in range(a + 1, b):
            if cols[i] == cols[i - 1]:
                bad[f] = True
                break


def sort_rows(indptr, cols) -> np.ndarray:
    """Sort ``cols`` (int32) within each CSR row in place; returns True for rows with a repeat."""
    bad = np.zeros(indptr.size - 1, dtype=np.bool_)
    _sort_rows(indptr, cols, bad)
    return bad


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _sum_slots(total, n, scale):
    """``scale *`` the float64 sum of the thread slots' totals, as (n, n_components) float32."""
    n_threads, n_chunks, n_components, _ = total.shape
    out = np.empty((n, n_components), dtype=np.float32)
    for k in prange(n_chunks):
        r0 = k * _CH
        m = min(n, r0 + _CH) - r0
        v = np.zeros(_CH, dtype=np.float64)
        for c in range(n_components):
            for r in range(_CH):
                v[r] = total[0, k, c, r]
            for t in range(1, n_threads):
                for r in range(_CH):
                    v[r] += total[t, k, c, r]
            for r in range(m):
                out[r0 + r, c] = v[r] * scale
    return out


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _project(X, ptr, words, n_components, n_groups, n_threads):
    n, p = X.shape
    n_tasks = (p + _TASK - 1) // _TASK
    n_chunks = (n + _CH - 1) // _CH
    total = np.zeros((n_threads, n_chunks, n_components, _CH), dtype=np.float64)
    for item in prange(n_chunks * n_threads):
        k = item // n_threads
        s = item - k * n_threads
        r0 = k * _CH
        m = min(n, r0 + _CH) - r0
        acc = np.zeros((n_components, _CH), dtype=np.float32)
        xt = np.zeros((_TASK, _CH), dtype=np.float32)
        tile = np.empty((8, 8), dtype=np.float32)
        tot = total[s, k]
        done = 0
        for task in range(s, n_tasks, n_threads):
            a = task * _TASK
            w = min(p, a + _TASK) - a
            if w == _TASK:
                # 8 x 8 tiles: contiguous reads and writes of 8 values (LLVM turns the
                # tile into shuffles); a third faster than the element-wise loop below,
                # which takes the rows of a last, partial chunk that fill no tile
                m8 = m - m % 8
                for rb in range(0, m8, 8):
                    for ib in range(0, _TASK, 8):
                        for r in range(8):
                            for i in range(8):
                                tile[i, r] = X[r0 + rb + r, a + ib + i]
                        for i in range(8):
                            for r in range(8):
                                xt[ib + i, rb + r] = tile[i, r]
                for r in range(m8, m):
                    for i in range(_TASK):
                        xt[i, r] = X[r0 + r, a + i]
            else:
                for r in range(m):
                    for i in range(w):
                        xt[i, r] = X[r0 + r, a + i]
            for q in range(ptr[task * n_groups], ptr[(task + 1) * n_groups]):
                word = words[q]
                sv = np.float32(1 - 2 * (word & 1))
                row = acc[word >> 13]
                src = xt[(word >> 1) & (_TASK - 1)]
                for r in range(_CH):
                    row[r] += sv * src[r]
            done += 1
            if done == _FLUSH:
                for c in range(n_components):
                    for r in range(_CH):
                        tot[c, r] += acc[c, r]
                        acc[c, r] = 0.0
                done = 0
        if done:
            for c in range(n_components):
                for r in range(_CH):
                    tot[c, r] += acc[c, r]
    return total


def project(X, packed, n_components: int, scale: float = 1.0, n_threads: int | None = None) -> np.ndarray:
    """``scale * (X @ S)`` as float32 of shape (n_stimuli, n_components).

    Parameters
    ----------
    X : array of shape (n_stimuli, n_features), float32 (C-contiguous; copied otherwise)
    packed : tuple
        ``(ptr, words)`` from :func:`pack`.
    n_components : int
    scale : float
        Magnitude of the non-zeros (applied in float64 before the final rounding).
    n_threads : int, optional
        Thread slots (default: numba's thread count).
    """
    ptr, words = packed
    X = np.ascontiguousarray(X, dtype=np.float32)
    if n_threads is None:
        n_threads = numba.get_num_threads()
    n_groups = (int(n_components) + _GROUP - 1) // _GROUP
    total = _project(X, ptr, words, int(n_components), n_groups, max(1, int(n_threads)))
    return _sum_slots(total, X.shape[0], float(scale))


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
        xr = X[r, a:b]
        o = out[r]
        # the stores and the sums in separate loops, so that both vectorize
        for j in range(w):
            o[j] = xr[j] - mu[j]
        s = 0.0
        d = 0.0
        for j in range(w):
            v = xr[j] - mu[j]
            s += v
            d += v * mu[j]
        rowsum[r] = s
        rowdot[r] = d
    return mu, rowsum, rowdot


def center_block(X, a: int, b: int, dtype, buffer=None):
    """Columns ``a:b`` of ``X`` centered over rows (in float64, stored as ``dtype``), C-contiguous.

    ``buffer``: optional flat array of ``dtype`` with at least ``n * (b - a)`` elements to write
    the block into (avoids a fresh allocation per block).

    Returns ``(xc, mu, rowsum, rowdot)``: the block (n, b - a), its column means (float64), and
    per row ``sum_j xc[r, j]`` and ``sum_j xc[r, j] mu[j]`` in float64.
    """
    size = X.shape[0] * (b - a)
    if buffer is not None and buffer.dtype == np.dtype(dtype) and buffer.size >= size:
        out = buffer[:size].reshape(X.shape[0], b - a)
    else:
        out = np.empty((X.shape[0], b - a), dtype=dtype)
    mu, rowsum, rowdot = _center_block(X, int(a), int(b), out)
    return out, mu, rowsum, rowdot




_CB = 512  # columns per work item of the float32 centering (n_stimuli x 512 floats stay in L2)


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _center_block_f32(X, a, b, out, shift, delta, rowsum, rowdot, rowdelta, item):
    n = X.shape[0]
    w = b - a
    n_items = (w + item - 1) // item
    for it in prange(n_items):
        j0 = it * item
        j1 = min(w, j0 + item)
        cw = j1 - j0
        mu = np.zeros(cw, dtype=np.float64)
        for r in range(n):
            xr = X[r, a + j0:a + j1]
            for j in range(cw):
                mu[j] += xr[j]
        c = np.empty(cw, dtype=np.float32)
        c64 = np.empty(cw, dtype=np.float64)
        d64 = np.empty(cw, dtype=np.float64)
        for j in range(cw):
            m = mu[j] / n
            cj = np.float32(m)
            c[j] = cj
            c64[j] = np.float64(cj)
            d64[j] = m - c64[j]
            shift[j0 + j] = c64[j]
            delta[j0 + j] = d64[j]
        for r in range(n):
            xr = X[r, a + j0:a + j1]
            o = out[r, j0:j1]
            # two loops: the subtraction (with stores) and the sums (loads only) each
            # vectorize; fused, LLVM kept the whole loop scalar (twice the time)
            for j in range(cw):
                o[j] = xr[j] - c[j]  # float32, correctly rounded
            s = 0.0
            d = 0.0
            e = 0.0
            for j in range(cw):
                v64 = np.float64(o[j])
                s += v64
                d += v64 * c64[j]  # exact product of two float32
                e += v64 * d64[j]
            rowsum[it, r] = s
            rowdot[it, r] = d
            rowdelta[it, r] = e


def center_block_f32(X, a: int, b: int, buffer=None, item: int = _CB, per_item: bool = False):
    """Columns ``a:b`` of ``X`` minus their float32-rounded column means, as float32.

    The float32 twin of :func:`center_block`, a single read of the block: each work item of
    ``item`` columns sums its columns (float64) and then writes ``v = X - c`` in float32, with
    ``c`` the column means rounded to float32 (so ``v`` is correctly rounded), while the
    values are still in cache.

    Returns
    -------
    xc : ndarray of shape (n, b - a), float32
    shift : ndarray of shape (b - a,), float64
        ``c``, the float32-rounded column means.
    delta : ndarray of shape (b - a,), float64
        ``mean - c``.
    rowsum, rowdot, rowdelta : ndarrays of shape (n,), float64
        Per row, ``sum_j xc[r, j]``, ``sum_j xc[r, j] c[j]`` and ``sum_j xc[r, j] delta[j]``;
        with ``per_item``, of shape (n_items, n): the sums over each item's columns.
    """
    n = X.shape[0]
    w = b - a
    size = n * w
    if buffer is not None and buffer.dtype == np.float32 and buffer.size >= size:
        out = buffer[:size].reshape(n, w)
    else:
        out = np.empty((n, w), dtype=np.float32)
    item = max(1, int(item))
    n_items = (w + item - 1) // item
    shift = np.empty(w)
    delta = np.empty(w)
    rows = np.empty((3, n_items, n))
    _center_block_f32(X, int(a), int(b), out, shift, delta, rows[0], rows[1], rows[2], item)
    s = rows if per_item else rows.sum(axis=1)
    return out, shift, delta, s[0], s[1], s[2]
