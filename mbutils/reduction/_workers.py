"""Private: float32 Gram matrices of centered feature blocks, on worker threads.

Each worker centers its own blocks (the serial twin of the numba centering kernel, which
releases the GIL) and multiplies each block by its transpose with numpy's BLAS, single-threaded
meanwhile; ``x @ x.T`` goes to the BLAS's symmetric rank-k update, half the products of a GEMM.
On the 2-core AMD machine of the benchmarks this is 20-35% faster than one two-threaded GEMM of
torch's MKL per block (benchmarks in the README).

The work is split so that every Gram is summed by one thread, in a fixed order: the result does
not depend on timing (it does on the number of workers, at the last bits of float64 sums).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# features per block: a (n, block) float32 block of 118 stimuli is 1.9 MiB
BLOCK = 4096
# MKL and OpenBLAS multiply faster when the rows are a multiple of 8 (zero rows added)
ROW_MULTIPLE = 8

_CONTROLLER = None
# worker threads kept for the process (their buffers, numba and BLAS thread states are reused);
# a forked child starts without them
_POOL: tuple | None = None  # (executor, number of threads)
_LOCAL = threading.local()
# one call at a time: the BLAS thread limit is process-wide, and the pool is shared
_LOCK = threading.Lock()


def _forget_pool() -> None:
    global _POOL, _LOCK
    _POOL = None
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None or _POOL[1] != workers:
        if _POOL is not None:
            _POOL[0].shutdown(wait=False)
        _POOL = (ThreadPoolExecutor(workers, thread_name_prefix="mbutils-gram"), workers)
    return _POOL[0]


def _buffer(size: int) -> np.ndarray:
    """This thread's float32 work buffer of at least ``size`` elements (kept between calls)."""
    buf = getattr(_LOCAL, "buffer", None)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype=np.float32)
        if size <= _KEEP_ELEMENTS:
            _LOCAL.buffer = buf
    return buf


# largest buffer kept by a thread between calls (64 MiB: 4096 features of 4096 stimuli)
_KEEP_ELEMENTS = 1 << 24


def padded_rows(n: int) -> int:
    return -(-int(n) // ROW_MULTIPLE) * ROW_MULTIPLE


def _controller():
    """threadpoolctl's view of the loaded BLAS libraries (scanned once: the scan takes ms)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def n_workers() -> int:
    """As many workers as numpy's BLAS would use threads and the process may use CPUs."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    blas = [lib.num_threads for lib in _controller().select(user_api="blas").lib_controllers]
    return max(1, min(max(blas, default=1), cpus))


class BlockSums:
    """Per-slot sums over centered blocks (see :func:`block_grams`).

    Attributes
    ----------
    ks : ndarray of shape (n_slots, n, n), float64
        Gram of the shifted features ``Xs = X - 1 c^T`` (``c``: float32-rounded column means).
    rs, rd, re : ndarrays of shape (n_slots, n), float64
        Per row, ``Xs 1``, ``Xs (c - s)`` and ``Xs delta`` (``delta = mean - c``; ``s`` the
        ``shift`` of :func:`block_grams`).
    s1, s2, dd : ndarrays of shape (n_slots,), float64
        ``sum (c - s)``, ``(c - s) . (c - s)`` and ``delta . delta``.
    """

    def __init__(self, n_slots: int, n: int):
        self.ks = np.zeros((n_slots, n, n))
        self.rs = np.zeros((n_slots, n))
        self.rd = np.zeros((n_slots, n))
        self.re = np.zeros((n_slots, n))
        self.s1 = np.zeros(n_slots)
        self.s2 = np.zeros(n_slots)
        self.dd = np.zeros(n_slots)

    def add(self, other: "BlockSums") -> None:
        for name in ("ks", "rs", "rd", "re", "s1", "s2", "dd"):
            getattr(self, name)[...] += getattr(other, name)


def block_grams(kernels, x, jobs, n_slots: int, workers: int | None = None, shift: float = 0.0) -> BlockSums:
    """Sums of centered float32 blocks of ``x`` and their Grams, by slot.

    Parameters
    ----------
    kernels : module
        :mod:`mbutils.reduction._kernels`.
    x : ndarray of shape (n, n_features), float32, C-contiguous
    jobs : list of (a, b, slot)
        Columns ``a:b`` (centered over rows on their float32-rounded means) go to ``slot``.
    n_slots : int
    workers : int, optional
        Default :func:`n_workers`.
    shift : float
        A value near the layer's mean (``s``): the sums over column means are taken of the
        means minus ``s``, so that they do not cancel when the features vary little around a
        large common value.

    Returns
    -------
    BlockSums
        With one slot, the workers take every ``workers``-th block and their sums are added in
        worker order; with several, each worker takes whole slots (no slot is shared).
    """
    n = x.shape[0]
    workers = n_workers() if workers is None else max(1, int(workers))
    out = BlockSums(n_slots, n)
    if n_slots == 1:
        shares = [jobs[w::workers] for w in range(workers)]
    else:
        shares = [[job for job in jobs if job[2] % workers == w] for w in range(workers)]
    shares = [s for s in shares if s]
    if not shares:
        return out
    width = max(b - a for a, b, _ in jobs)
    item = kernels._center_item(n)

    def run(share):
        sums = BlockSums(1, n) if n_slots == 1 else out
        n_pad = padded_rows(n)
        buffer = _buffer(n_pad * width)
        for a, b, slot in share:
            k = 0 if n_slots == 1 else slot
            w = b - a
            _, c, delta, rs, rd, re = kernels.center_block_f32(x, a, b, buffer, item=item, parallel=False)
            buffer[n * w:n_pad * w] = 0.0
            t = buffer[:n_pad * w].reshape(n_pad, w)
            sums.ks[k] += np.dot(t, t.T)[:n, :n]  # numpy: ssyrk, then the triangle mirrored
            sums.rs[k] += rs
            sums.rd[k] += rd - shift * rs
            sums.re[k] += re
            cs = c - shift
            sums.s1[k] += cs.sum()
            sums.s2[k] += cs @ cs
            sums.dd[k] += delta @ delta
        return sums

    with _LOCK, _controller().limit(limits=1, user_api="blas"):
        if len(shares) == 1:
            results = [run(shares[0])]
        else:
            results = list(_pool(workers).map(run, shares))
    if n_slots == 1:
        for r in results:
            out.add(r)
    return out
