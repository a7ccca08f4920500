"""Private: the sparse random projection reducer and its projection matrices.

- :class:`SparseRandomProjection` -- reducer: features (n_stimuli, n_features) -> projection
  (n_stimuli, n_components), float32 (float64 where float32 would be inexact).
- :func:`sparse_random_matrix` -- the matrix of one layer shape as CSR arrays over the
  (n_features, n_components) matrix; :func:`projection_seed` -- its seed sequence.
- The packed sign matrices (:func:`mbutils.reduction._kernels.pack`) kept in memory for the
  process (``_SIGN_CACHE``) and on disk under ``mbutils.get_config().cache_dir / "projections"``.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from ._support import _GRAM_BLOCK, _U32, _as_tensor, _kernels, _log

#: a float32 projection is redone in float64 when its estimated relative error on the
#: features centered over stimuli exceeds this (see SparseRandomProjection)
SRP_TOLERANCE = 1e-5

def projection_seed(seed: int, n_features: int, n_components: int) -> np.random.SeedSequence:
    """The seed sequence of the projection matrix for one layer shape.

    The matrix depends only on ``(seed, n_features, n_components)``: numpy's
    ``SeedSequence([seed, n_features, n_components])`` feeds a PCG64 ``Generator``, whose
    streams are identical on every platform and numpy version that has them.
    """
    if int(seed) < 0:
        raise ValueError(f"seed={seed!r}; expected a non-negative integer")
    return np.random.SeedSequence([int(seed), int(n_features), int(n_components)])


def sparse_random_matrix(n_features: int, n_components: int, seed: int = 0, density=None):
    """Sparse random projection matrix, in the style of Achlioptas (2003) and Li et al. (2006).

    Each entry is independently non-zero with probability ``density`` (default
    ``1/sqrt(n_features)``, as scikit-learn's ``"auto"``), and then ``+v`` or ``-v`` with equal
    probability, ``v = sqrt(1/density)/sqrt(n_components)``. Drawn row by row: the number of
    non-zeros of each feature is Binomial(n_components, density) and their components are a
    uniformly random subset of that size (uniform draws, redrawn without replacement for the
    few rows where two draws collide), which gives exactly independent Bernoulli entries.

    Parameters
    ----------
    n_features, n_components : int
    seed : int
    density : float, optional

    Returns
    -------
    indptr : ndarray of shape (n_features + 1,), int64
        CSR row pointer over features.
    indices : ndarray of shape (nnz,), int64
        Component index of each non-zero (sorted within each row).
    values : ndarray of shape (nnz,), float32
    """
    n_features, n_components = int(n_features), int(n_components)
    indptr, cols, negative, v = _draw_matrix(n_features, n_components, seed, density)
    values = np.where(negative, -v, v).astype(np.float32)
    return indptr, cols.astype(np.int64), values


def _draw_matrix(n_features: int, n_components: int, seed: int, density=None):
    """The random draws behind :func:`sparse_random_matrix`.

    Returns
    -------
    indptr : ndarray of shape (n_features + 1,), int64
    cols : ndarray of shape (nnz,), int32
        Components of the non-zeros, sorted within each feature's row.
    negative : ndarray of shape (nnz,), bool
        Sign of each non-zero.
    v : numpy.float32
        Magnitude of the non-zeros.
    """
    if n_features < 1 or n_components < 1:
        raise ValueError(
            f"n_features={n_features}, n_components={n_components}; expected positive integers"
        )
    if density is None:
        density = 1.0 / np.sqrt(n_features)
    if not 0 < density <= 1:
        raise ValueError(f"density={density!r}; expected a value in (0, 1]")
    rng = np.random.Generator(np.random.PCG64(projection_seed(seed, n_features, n_components)))
    counts = rng.binomial(n_components, density, size=n_features)
    indptr = np.zeros(n_features + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    cols = rng.integers(0, n_components, size=int(indptr[-1]), dtype=np.int32)
    # rows where two draws collide are redrawn (all of them at once, until distinct); that is
    # rejection sampling, so each row's components are a uniformly random subset
    bad = np.flatnonzero(_sort_rows(indptr, cols))
    while bad.size:
        k = counts[bad]
        big = k * k > 2 * n_components  # collisions likely: draw without replacement instead
        for f in bad[big]:
            cols[indptr[f]:indptr[f + 1]] = np.sort(rng.choice(n_components, size=int(counts[f]), replace=False))
        bad = bad[~big]
        sub = np.zeros(bad.size + 1, dtype=np.int64)
        np.cumsum(counts[bad], out=sub[1:])
        new = rng.integers(0, n_components, size=int(sub[-1]), dtype=np.int32)
        again = _sort_rows(sub, new)
        for i in np.flatnonzero(~again):
            cols[indptr[bad[i]]:indptr[bad[i] + 1]] = new[sub[i]:sub[i + 1]]
        bad = bad[again]
    v = np.float32(np.sqrt(1.0 / density) / np.sqrt(n_components))
    negative = rng.random(cols.size) < 0.5
    return indptr, cols, negative, v


def _sort_rows(indptr, cols) -> np.ndarray:
    """Sort ``cols`` within each CSR row in place; True for rows with a repeated value."""
    kernels = _kernels()
    if kernels is not None:
        return kernels.sort_rows(indptr, cols)
    bad = np.zeros(indptr.size - 1, dtype=bool)  # pragma: no cover - numba is a declared dependency
    for f in range(indptr.size - 1):  # pragma: no cover
        row = np.sort(cols[indptr[f]:indptr[f + 1]])
        cols[indptr[f]:indptr[f + 1]] = row
        bad[f] = row.size > 1 and bool(np.any(row[1:] == row[:-1]))
    return bad


def _scipy_matrix(indptr, indices, values, n_features, n_components):
    import scipy.sparse as sp

    return sp.csr_matrix((values, indices, indptr), shape=(n_features, n_components))


# packed sign matrices shared by every SparseRandomProjection of the process:
# (n_features, n_components, seed) -> (ptr int64, words int32, scale float)
_SIGN_CACHE: dict = {}
_SIGN_CACHE_BYTES = 96 * 2 ** 20


def _sign_matrix(n_features: int, n_components: int, seed: int, kernels, disk: bool = True):
    """The projection matrix of one layer shape, packed for :func:`mbutils.reduction._kernels.project`.

    Kept in memory for the process (``_SIGN_CACHE``) and, for matrices with at least
    ``_DISK_MIN_NNZ`` non-zeros, on disk under
    ``mbutils.get_config().cache_dir / "projections"`` (atomic writes, with a SHA-256 of the
    arrays; a file that does not read back as the matrix it was is drawn again and replaced).
    """
    key = (int(n_features), int(n_components), int(seed))
    hit = _SIGN_CACHE.pop(key, None)
    if hit is None:
        path = _disk_path(key, kernels) if disk else None
        hit = _read_packed(path, key, kernels) if path is not None else None
        if hit is None:
            indptr, cols, negative, v = _draw_matrix(int(n_features), int(n_components), seed)
            ptr, words = kernels.pack(indptr, cols, negative, n_components)
            hit = (ptr, words, float(v))
            del indptr, cols, negative
            if path is not None and words.size >= _DISK_MIN_NNZ:
                _write_packed(path, hit)
    _SIGN_CACHE[key] = hit  # most recently used last
    size = sum(a.nbytes for v in _SIGN_CACHE.values() for a in v[:2])
    while size > _SIGN_CACHE_BYTES and len(_SIGN_CACHE) > 1:
        old = _SIGN_CACHE.pop(next(iter(_SIGN_CACHE)))
        size -= sum(a.nbytes for a in old[:2])
    return hit


# non-zeros from which a matrix is kept on disk (4096 components: layers of 15,000+ features).
# Reading one back takes a quarter of drawing it, and a process that finds all its matrices on
# disk does not load the drawing kernels either (about 0.3 s for numba's cached code).
_DISK_MIN_NNZ = 500_000
# layout of the packed files ("m3": buckets sorted by component; the "m2" files of earlier
# versions, in feature order, are not read, and mbutils.caches marks them stale)
_DISK_LAYOUT = "m3"


def _disk_path(key, kernels):
    from ..config import get_config

    n_features, n_components, seed = key
    # the packed layout depends on the kernel's task and group sizes: part of the name
    name = f"srp-{_DISK_LAYOUT}-{n_features}x{n_components}-seed{seed}-t{kernels._TASK}g{kernels._GROUP}.npz"
    return Path(get_config().cache_dir) / "projections" / name


def _read_packed(path, key, kernels):
    if not path.exists():
        return None
    n_features, n_components, _ = key
    from .._io import array_sha256

    try:
        with np.load(path) as z:
            ptr, words, v, digest = z["ptr"], z["words"], float(z["v"]), str(z["sha256"])
    except Exception:  # noqa: BLE001 - unreadable or truncated: draw again
        return None
    # the kernel does not bounds-check its indices: only a matrix that hashes right is used
    n_buckets = -(-n_features // kernels._TASK) * -(-n_components // kernels._GROUP)
    if ptr.dtype != np.int64 or words.dtype != np.int32 or ptr.shape != (n_buckets + 1,) \
            or int(ptr[-1]) != words.size or not np.isfinite(v) \
            or digest != array_sha256(ptr) + array_sha256(words):
        return None
    with contextlib.suppress(OSError):  # last use, for mbutils.caches (a read-only cache is fine)
        os.utime(path)
    return ptr, words, v


def _write_packed(path, packed) -> None:
    from .._io import array_sha256, atomic_write

    ptr, words, v = packed
    try:
        with atomic_write(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, ptr=ptr, words=words, v=np.float64(v), sha256=array_sha256(ptr) + array_sha256(words))
    except OSError:  # a read-only cache folder only costs the drawing time
        pass


class SparseRandomProjection:
    """Reducer: sparse random projection of a layer to ``n_components`` dimensions.

    The matrix for a layer depends only on ``(n_features, n_components, seed)``
    (see :func:`sparse_random_matrix`), so scores are reproducible on any machine. Layers with
    ``n_features <= n_components`` are returned unprojected (float32).

    The projection is summed in float32 (float64 totals every 32,768 features). Where the
    estimated float32 error of the projected features, centered over stimuli, exceeds
    :data:`SRP_TOLERANCE` (:meth:`float32_error`: layers on which every stimulus gives nearly
    the same projection), the layer is projected again in float64 and returned as float64;
    ``n_float64`` counts such layers and the ``mbutils.reduction`` logger says so.

    Parameters
    ----------
    n_components : int, default 4096
    seed : int, default 0
    cache_size : int, default 4
        Projection matrices kept in memory (network layers often share shapes).

    Examples
    --------
    >>> import numpy as np
    >>> srp = SparseRandomProjection(n_components=16, seed=0)
    >>> srp(np.ones((3, 100), np.float32)).shape
    (3, 16)
    """

    def __init__(self, n_components: int = 4096, seed: int = 0, cache_size: int = 4):
        if int(n_components) < 1:
            raise ValueError(f"n_components={n_components!r}; expected a positive integer")
        self.n_components = int(n_components)
        self.seed = int(seed)
        self.cache_size = int(cache_size)
        # "m2": the matrices of the row-wise (binomial count) generator, see sparse_random_matrix;
        # "k3": the kernel's summation order of 2026-11 (one order for any number of threads),
        # batch-norm layers projected through their input layer (see SharedPasses)
        # "p64": layers whose float32 projection would carry an error above SRP_TOLERANCE are
        # projected in float64
        self.key = f"srp-{self.n_components}-seed{self.seed}-m2-k3-p64"
        self._cache: dict = {}
        #: layers this instance projected in float64 (see float32_error)
        self.n_float64 = 0

    #: the reduction of a set of stimuli is the stack of the reductions of its rows, so a
    #: layer can be reduced in stimulus batches with the same result (see ``extract``)
    rowwise = True

    def matrix(self, n_features: int):
        """The projection as a ``scipy.sparse.csr_matrix`` of shape (n_features, n_components)."""
        return _scipy_matrix(*sparse_random_matrix(n_features, self.n_components, self.seed),
                             n_features, self.n_components)

    def _torch_matrix(self, n_features: int, device):
        import torch

        key = (n_features, str(device))
        if key in self._cache:
            return self._cache[key]
        indptr, indices, values = sparse_random_matrix(n_features, self.n_components, self.seed)
        # transpose to CSR over components: R^T of shape (n_components, n_features)
        csr = _scipy_matrix(indptr, indices, values, n_features, self.n_components).T.tocsr()
        csr.sort_indices()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            mat = torch.sparse_csr_tensor(
                torch.from_numpy(csr.indptr.astype(np.int64)),
                torch.from_numpy(csr.indices.astype(np.int64)),
                torch.from_numpy(csr.data.astype(np.float32)),
                size=(self.n_components, n_features),
                device=device,
                check_invariants=False,
            )
        while len(self._cache) >= self.cache_size > 0:
            self._cache.pop(next(iter(self._cache)))
        if self.cache_size > 0:
            self._cache[key] = mat
        return mat

    def __call__(self, features) -> np.ndarray:
        """Project one layer.

        Parameters
        ----------
        features : torch.Tensor or ndarray of shape (n_stimuli, n_features)

        Returns
        -------
        ndarray of shape (n_stimuli, min(n_features, n_components)), float32
            float64 where the float32 projection would be inexact (see :meth:`float32_error`).
        """
        return self._reduce(features, None)

    def _reduce(self, features, shared) -> np.ndarray:
        """:meth:`__call__`, taking the projection that ``shared`` (a
        :class:`~mbutils.reduction.SharedPasses` or None) computed ahead for ``features``."""
        import warnings

        import torch

        hit = None if shared is None else shared._pop_projection(features, (self.n_components, self.seed))
        x = _as_tensor(features)
        n_features = x.shape[1]
        if hit is None and n_features <= self.n_components:
            return x.to("cpu").numpy().copy()
        if hit is not None:
            z = hit
        else:
            kernels = _kernels()
            if kernels is not None and x.device.type == "cpu" and self.n_components <= kernels.MAX_COMPONENTS:
                ptr, words, scale = _sign_matrix(n_features, self.n_components, self.seed, kernels)
                z = kernels.project(x.numpy(), (ptr, words), self.n_components, scale)
            else:
                mat = self._torch_matrix(n_features, x.device)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
                    z = torch.sparse.mm(mat, x.t()).t().to("cpu").numpy().copy()
        err = self.float32_error(z, n_features)
        if not err <= SRP_TOLERANCE:
            self.n_float64 += 1
            _log.info("projection of a layer of %d features redone in float64 (float32 error estimate %.2g "
                      "of the centered features, tolerance %.0e)", n_features, err, SRP_TOLERANCE)
            return self.project_float64(x)
        return z

    def float32_error(self, z, n_features: int) -> float:
        """Estimated relative error of a float32 projection on the features centered over stimuli.

        Each projected value sums about ``sqrt(n_features)`` products in float32 (the density is
        ``1/sqrt(n_features)``), an error of about ``u sqrt(sqrt(n_features))`` of the value's
        size (``u = 2^-24``); centering over stimuli divides by ``|Zc| / |Z|``, which is small
        when every stimulus gives nearly the same projection. Measured on random Inception-V3
        (all 94 projected layers), the estimate is 3 to 7 times the actual error. Infinite for
        non-finite projections or a single stimulus.
        """
        z = np.asarray(z)
        if z.shape[0] < 2:
            return float("inf")
        sq = float(np.linalg.norm(z)) ** 2  # BLAS nrm2 (scaled: no overflow)
        mean = z.mean(0, dtype=np.float64)
        sq_c = sq - z.shape[0] * float(mean @ mean)  # |Zc|^2: inexact only far beyond the tolerance
        if not np.isfinite(sq_c):
            return float("inf")
        if sq == 0.0:
            return 0.0
        return float("inf") if sq_c <= 0.0 else _U32 * n_features ** 0.25 * np.sqrt(sq / sq_c)

    def project_float64(self, features) -> np.ndarray:
        """The projection in float64 arithmetic (``scipy.sparse``, blocks of features), float64.

        Parameters
        ----------
        features : torch.Tensor or ndarray of shape (n_stimuli, n_features)

        Returns
        -------
        ndarray of shape (n_stimuli, n_components), float64
        """
        x = _as_tensor(features).to("cpu").numpy()
        n_features = x.shape[1]
        if n_features <= self.n_components:
            return x.astype(np.float64)
        mat = self.matrix(n_features).astype(np.float64)
        out = np.zeros((x.shape[0], self.n_components))
        for j in range(0, n_features, _GRAM_BLOCK):
            e = min(n_features, j + _GRAM_BLOCK)
            out += (mat[j:e].T @ x[:, j:e].astype(np.float64).T).T
        return out

    def __repr__(self):
        return f"SparseRandomProjection(n_components={self.n_components}, seed={self.seed})"

