"""Private: compiled kernels of the sparse random projection and the Gram centering (numba).

The projection ``X @ S`` (``S``: the (n_features, n_components) sparse sign matrix of
:func:`mbutils.reduction.sparse_random_matrix`, magnitudes factored out) is done in a
cache-friendly order:

- the non-zeros are stored packed (:func:`pack`), one int32 word each
  (``component << 13 | feature_in_task << 1 | negative``), bucketed by task (``_TASK``
  consecutive features) and, within a task, by group of ``_GROUP`` components, sorted by
  component and then by feature inside each bucket (so the accumulator rows below are visited
  in increasing order, which the hardware prefetcher follows: 10-15% faster than feature
  order on layers of 100,000+ features, with every output element summed in the same order);
- the stimuli are processed in chunks of ``_CH`` rows, one chunk per work item (when there are
  fewer chunks than threads, the component groups are split between items as well); for each
  task the chunk's rows are transposed into a (``_TASK``, ``_CH``) block that stays in the L2
  cache, and every non-zero ``(c, f)`` adds row ``f`` of that block to row ``c`` of a
  (n_components, ``_CH``) float32 accumulator, one component group's window at a time;
- the float32 accumulators are flushed into float64 totals every ``_FLUSH`` tasks.

Each output element is summed over features in an order that depends neither on the stimuli
projected together, nor on the chunking, nor on the number of threads: the result is bitwise
reproducible. :func:`project_affine` projects a layer and an eval-mode batch normalisation of it
in the same pass.
"""
from __future__ import annotations

import os

import numba
import numpy as np
from numba import njit, prange

_TASK = 1024  # features per task (transposed block of _TASK x _CH float32 = 256 KiB)
_GROUP = 256  # components per group (accumulator window of _GROUP x _CH float32 = 64 KiB)
_FLUSH = 32  # tasks between float32 -> float64 flushes (32,768 features)
_CH = 64  # stimuli per chunk
#: largest number of components the packed words can address
MAX_COMPONENTS = 2 ** 18

# numba's OpenMP threading layer (the one it picks here) terminates a process forked from one
# that had already run parallel kernels as soon as the child runs one ("fork() called from a
# process already using GNU OpenMP, this is unsafe"), and multiprocessing forks by default on
# Linux. In such a child every kernel runs its serial twin on the calling thread (the same sums
# in the same order: bitwise the same results).
_SERIAL_ONLY = False


def _after_fork_in_child() -> None:
    global _SERIAL_ONLY
    try:
        layer = numba.threading_layer()
    except ValueError:  # the parent ran no parallel kernel: the child may
        return
    if layer == "omp":
        _SERIAL_ONLY = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
    # the words are non-negative (c < 2**18), so sorting them orders a bucket by component and
    # then by feature: each component's features keep their order (and its sums their rounding)
    for b in range(n_buckets):
        words[ptr[b]:ptr[b + 1]].sort()
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
        non-zeros are sorted by component, then by feature.
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


@njit(inline="always")
def _transpose(X, r0, m, a, w, xt, tile):
    """Rows ``r0:r0+m``, columns ``a:a+w`` of ``X`` into ``xt[:w, :m]`` (transposed)."""
    if w == _TASK:
        # 8 x 8 tiles: contiguous reads and writes of 8 values (LLVM turns the tile into
        # shuffles); a third faster than the element-wise loop, which takes the rows that
        # fill no tile
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


@njit(inline="always")
def _flush(acc, tot):
    for c in range(acc.shape[0]):
        for r in range(_CH):
            tot[c, r] += acc[c, r]
            acc[c, r] = 0.0


@njit(inline="always")
def _write(acc, tot, flushed, out, r0, m, c0, scale, offset):
    for c in range(acc.shape[0]):
        o = offset[c0 + c]
        if flushed:
            for r in range(m):
                out[r0 + r, c0 + c] = np.float32((tot[c, r] + np.float64(acc[c, r])) * scale + o)
        else:
            for r in range(m):
                out[r0 + r, c0 + c] = np.float32(np.float64(acc[c, r]) * scale + o)


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _project(X, ptr, words, n_components, n_parts, scale, out, fscale, out2, offset):
    n, p = X.shape
    dual = fscale.size > 0
    n_tasks = (p + _TASK - 1) // _TASK
    n_groups = (n_components + _GROUP - 1) // _GROUP
    n_chunks = (n + _CH - 1) // _CH
    per_part = (n_groups + n_parts - 1) // n_parts
    zero = np.zeros(n_components)
    for item in prange(n_chunks * n_parts):
        k = item // n_parts
        g0 = (item - k * n_parts) * per_part
        g1 = min(n_groups, g0 + per_part)
        if g0 >= g1:
            continue
        c0 = g0 * _GROUP
        nc = min(n_components, g1 * _GROUP) - c0
        r0 = k * _CH
        m = min(n, r0 + _CH) - r0
        many = n_tasks > _FLUSH
        acc = np.zeros((nc, _CH), dtype=np.float32)
        tot = np.zeros((nc if many else 1, _CH), dtype=np.float64)
        acc2 = np.zeros((nc if dual else 1, _CH), dtype=np.float32)
        tot2 = np.zeros((nc if dual and many else 1, _CH), dtype=np.float64)
        xt = np.zeros((_TASK, _CH), dtype=np.float32)
        tile = np.empty((8, 8), dtype=np.float32)
        done = 0
        flushed = False
        for task in range(n_tasks):
            a = task * _TASK
            _transpose(X, r0, m, a, min(p, a + _TASK) - a, xt, tile)
            lo = ptr[task * n_groups + g0]
            hi = ptr[task * n_groups + g1]
            if dual:
                for q in range(lo, hi):
                    word = words[q]
                    f = (word >> 1) & (_TASK - 1)
                    sv = np.float32(1 - 2 * (word & 1))
                    sv2 = sv * fscale[a + f]
                    row = acc[(word >> 13) - c0]
                    row2 = acc2[(word >> 13) - c0]
                    src = xt[f]
                    for r in range(_CH):
                        row[r] += sv * src[r]
                    for r in range(_CH):
                        row2[r] += sv2 * src[r]
            else:
                for q in range(lo, hi):
                    word = words[q]
                    sv = np.float32(1 - 2 * (word & 1))
                    row = acc[(word >> 13) - c0]
                    src = xt[(word >> 1) & (_TASK - 1)]
                    for r in range(_CH):
                        row[r] += sv * src[r]
            done += 1
            if done == _FLUSH and task + 1 < n_tasks:
                _flush(acc, tot)
                if dual:
                    _flush(acc2, tot2)
                done = 0
                flushed = True
        _write(acc, tot, flushed, out, r0, m, c0, scale, zero)
        if dual:
            _write(acc2, tot2, flushed, out2, r0, m, c0, scale, offset)


# the serial twin (see _SERIAL_ONLY): the same source compiled without threads, not cached on disk
# (numba's cache would not tell it from the parallel version); compiled on first use
_project_serial = njit(fastmath=True, nogil=True)(_project.py_func)


@njit(parallel=True, cache=True, nogil=True)
def _offsets(ptr, words, n_components, fshift, scale):
    p = fshift.size
    n_tasks = (p + _TASK - 1) // _TASK
    n_groups = (n_components + _GROUP - 1) // _GROUP
    off = np.zeros(n_components)
    for g in prange(n_groups):
        for task in range(n_tasks):
            a = task * _TASK
            for q in range(ptr[task * n_groups + g], ptr[task * n_groups + g + 1]):
                word = words[q]
                v = fshift[a + ((word >> 1) & (_TASK - 1))]
                if word & 1:
                    off[word >> 13] -= v
                else:
                    off[word >> 13] += v
    for c in range(n_components):
        off[c] *= scale
    return off


_offsets_serial = njit(nogil=True)(_offsets.py_func)  # the serial twin (see _project_serial)


def _n_parts(n: int, n_components: int, n_threads) -> int:
    if n_threads is None:
        n_threads = numba.get_num_threads()
    n_groups = (int(n_components) + _GROUP - 1) // _GROUP
    n_chunks = max(1, (int(n) + _CH - 1) // _CH)
    return min(n_groups, max(1, -(-max(1, int(n_threads)) // n_chunks)))


def project(X, packed, n_components: int, scale: float = 1.0, n_threads: int | None = None) -> np.ndarray:
    """``scale * (X @ S)`` as float32 of shape (n_stimuli, n_components).

    Each output element is summed in the same order whatever the number of threads and
    whichever rows are projected together: the result is bitwise reproducible.

    Parameters
    ----------
    X : array of shape (n_stimuli, n_features), float32 (C-contiguous; copied otherwise)
    packed : tuple
        ``(ptr, words)`` from :func:`pack`.
    n_components : int
    scale : float
        Magnitude of the non-zeros (applied in float64 before the final rounding).
    n_threads : int, optional
        Threads to plan the work for (default: numba's thread count); when the stimuli make
        fewer chunks than threads, the components are split between threads as well.
    """
    ptr, words = packed
    X = np.ascontiguousarray(X, dtype=np.float32)
    out = np.empty((X.shape[0], int(n_components)), dtype=np.float32)
    none32 = np.empty(0, dtype=np.float32)
    kernel = _project_serial if _SERIAL_ONLY else _project
    kernel(X, ptr, words, int(n_components), _n_parts(X.shape[0], n_components, n_threads), float(scale),
           out, none32, out, np.empty(0))
    return out


def project_affine(X, packed, n_components: int, channel_scale, channel_shift, scale: float = 1.0,
                   n_threads: int | None = None):
    """Projections of ``X`` and of ``Y = channel_scale[k] * X + channel_shift[k]`` in one pass.

    ``Y`` is a per-channel affine map of ``X`` (an eval-mode batch normalisation), with
    channel-major features: channel ``k`` is columns ``k*hw:(k+1)*hw``, ``hw = n_features /
    n_channels``. ``Y @ S`` is ``X @ (diag(a) S)`` plus the constant row ``b @ S``, so the pass
    over ``X`` serves both; ``Y`` itself is never read.

    Parameters
    ----------
    X : array of shape (n_stimuli, n_features), float32
    packed, n_components, scale, n_threads
        As in :func:`project`.
    channel_scale, channel_shift : arrays of shape (n_channels,)

    Returns
    -------
    px, py : ndarrays of shape (n_stimuli, n_components), float32
        ``project(X)`` (bitwise) and the projection of ``Y``.
    """
    ptr, words = packed
    X = np.ascontiguousarray(X, dtype=np.float32)
    a = np.asarray(channel_scale, dtype=np.float64).ravel()
    b = np.asarray(channel_shift, dtype=np.float64).ravel()
    n, p = X.shape
    if a.size == 0 or a.shape != b.shape or p % a.size:
        raise ValueError(f"channel_scale and channel_shift must have the same length, a divisor of "
                         f"n_features={p}; got {a.size} and {b.size}")
    hw = p // a.size
    offset = (_offsets_serial if _SERIAL_ONLY else _offsets)(ptr, words, int(n_components), np.repeat(b, hw),
                                                            float(scale))
    out = np.empty((n, int(n_components)), dtype=np.float32)
    out2 = np.empty((n, int(n_components)), dtype=np.float32)
    kernel = _project_serial if _SERIAL_ONLY else _project
    kernel(X, ptr, words, int(n_components), _n_parts(n, n_components, n_threads), float(scale),
           out, np.repeat(a.astype(np.float32), hw), out2, offset)
    return out, out2


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


_center_block_serial = njit(fastmath=True, nogil=True)(_center_block.py_func)  # (see _project_serial)


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
    mu, rowsum, rowdot = (_center_block_serial if _SERIAL_ONLY else _center_block)(X, int(a), int(b), out)
    return out, mu, rowsum, rowdot




_L2_BYTES = 1 << 19  # a work item of the float32 centering reads at most this much (stays in L2)


def _center_item(n: int) -> int:
    """Columns per work item of :func:`center_block_f32` for ``n`` rows: the largest power of
    two from 64 to 1024 whose ``n x item`` float32 block fits ``_L2_BYTES`` (1024 at 118 rows:
    a tenth faster than 512, as each row's segment is a longer contiguous read)."""
    item = 1024
    while item > 64 and 4 * int(n) * item > _L2_BYTES:
        item //= 2
    return item



@njit(inline="always")
def _center_f32_item(X, a, w, it, item, out, shift, delta, rowsum, rowdot, rowdelta):
    """Work item ``it`` (columns ``it*item`` onward) of :func:`center_block_f32`."""
    n = X.shape[0]
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


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _center_block_f32(X, a, b, out, shift, delta, rowsum, rowdot, rowdelta, item):
    w = b - a
    for it in prange((w + item - 1) // item):
        _center_f32_item(X, a, w, it, item, out, shift, delta, rowsum, rowdot, rowdelta)


@njit(fastmath=True, cache=True, nogil=True)
def _center_block_f32_serial(X, a, b, out, shift, delta, rowsum, rowdot, rowdelta, item):
    # the same on the calling thread only (for worker threads that each center their own block)
    w = b - a
    for it in range((w + item - 1) // item):
        _center_f32_item(X, a, w, it, item, out, shift, delta, rowsum, rowdot, rowdelta)


def center_block_f32(X, a: int, b: int, buffer=None, item: int | None = None, per_item: bool = False,
                    parallel: bool = True):
    """Columns ``a:b`` of ``X`` minus their float32-rounded column means, as float32.

    The float32 twin of :func:`center_block`, a single read of the block: each work item of
    ``item`` columns sums its columns (float64) and then writes ``v = X - c`` in float32, with
    ``c`` the column means rounded to float32 (so ``v`` is correctly rounded), while the
    values are still in cache.

    Parameters
    ----------
    X : array of shape (n, n_features), float32
    a, b : int
        The columns.
    buffer : ndarray of float32, optional
        Flat array of at least ``n * (b - a)`` elements to write the block into.
    item : int, optional
        Columns per work item (default: :func:`_center_item`).
    per_item : bool
        Return the row sums per work item.
    parallel : bool
        Spread the work items over numba's threads; ``False`` runs them on the calling thread
        (which then holds no lock: several threads may center blocks at once).

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
    item = _center_item(n) if item is None else max(1, int(item))
    n_items = (w + item - 1) // item
    shift = np.empty(w)
    delta = np.empty(w)
    rows = np.empty((3, n_items, n))
    kernel = _center_block_f32 if parallel and not _SERIAL_ONLY else _center_block_f32_serial
    kernel(X, int(a), int(b), out, shift, delta, rows[0], rows[1], rows[2], item)
    s = rows if per_item else rows.sum(axis=1)
    return out, shift, delta, s[0], s[1], s[2]
