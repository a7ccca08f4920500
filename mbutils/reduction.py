"""Layer reducers: sparse random projection, centered Gram matrices, RDMs and PCA.

A reducer is a callable ``reducer(features) -> numpy.ndarray`` with a ``.key`` string (part of
the feature cache key, see :func:`mbutils.models.extract`). ``features`` is one layer's
activations for all stimuli, a ``torch.Tensor`` (or numpy array) of shape
(n_stimuli, n_features).

- :class:`SparseRandomProjection` -- the paper's dimensionality reduction (4096 components,
  density ``1/sqrt(n_features)``), reproducible across runs and machines.
- :class:`GramReducer` -- the doubly centered Gram matrix ``Xc Xc^T`` of the full layer: ridge
  regression on it (:func:`mbutils.scoring.ridge_gcv_predictions_from_gram`) is exactly ridge on
  all of the layer's features (the "exact" mapping).
- :class:`RDMReducer` -- the layer's representational dissimilarity matrix
  ``1 - corrcoef(X)`` over stimuli, derived from the same Gram (computed once per layer
  when both reducers run on the same tensor).
- :class:`PCAReducer` -- principal component scores.
"""
from __future__ import annotations

import contextlib
import logging
import os
import weakref
from pathlib import Path

import numpy as np

from . import _gram_workers as _gw

__all__ = [
    "SparseRandomProjection",
    "GramReducer",
    "RDMReducer",
    "PCAReducer",
    "sparse_random_matrix",
    "projection_seed",
    "layer_gram",
]

# columns per block when accumulating Gram matrices (BLAS product per block, float64 sum); the
# float32 CPU path uses the blocks of its worker threads (mbutils._gram_workers.BLOCK)
_GRAM_BLOCK = 8192
_PRECISIONS = ("float64", "float32")
_log = logging.getLogger(__name__)
#: unit roundoff of float32
_U32 = 2.0 ** -24
#: a float32 projection is redone in float64 when its estimated relative error on the
#: features centered over stimuli exceeds this (see SparseRandomProjection)
SRP_TOLERANCE = 1e-5
#: a float32 RDM is redone in float64 when its estimated error exceeds this fraction of the
#: spread of the stimulus correlations, times the square root of the number of stimulus pairs
#: (see RDMReducer.float32_error). Measured: RSA errors are about 0.3 / sqrt(n_pairs) of the
#: largest correlation error over the spread (2.6e-6 at 8.4e-4 with 118 stimuli on random
#: Inception-V3's avgpool, 2.1e-6 at 6.2e-5 with 24 stimuli on random EfficientNetV2-S), aiming
#: at RSA errors below about 3e-7 (8.3e-5 of the spread at 118 stimuli); an estimate, not a bound
RDM_TOLERANCE = 1e-6
#: layers of at most this many features get float64 RDMs directly: they cost little, and the
#: float32 error estimate is tight for them (1 to 1.2 times the error)
RDM_FLOAT64_FEATURES = 16384


def _as_tensor(features):
    import torch

    if isinstance(features, torch.Tensor):
        t = features.detach()
    else:
        t = torch.from_numpy(np.ascontiguousarray(features))
    if t.ndim != 2:
        raise ValueError(f"features must have shape (n_stimuli, n_features), got shape {tuple(t.shape)}")
    if t.dtype != torch.float32:
        t = t.to(torch.float32)
    return t


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


def _kernels():
    """The compiled kernels (:mod:`mbutils._srp_numba`), or None when numba is not installed."""
    global _KERNELS
    if _KERNELS is None:
        try:
            from . import _srp_numba
        except ImportError:  # pragma: no cover - numba is a declared dependency
            _KERNELS = False
        else:
            _KERNELS = _srp_numba
    return _KERNELS or None


_KERNELS = None
# packed sign matrices shared by every SparseRandomProjection of the process:
# (n_features, n_components, seed) -> (ptr int64, words int32, scale float)
_SIGN_CACHE: dict = {}
_SIGN_CACHE_BYTES = 96 * 2 ** 20


def _sign_matrix(n_features: int, n_components: int, seed: int, kernels, disk: bool = True):
    """The projection matrix of one layer shape, packed for :func:`mbutils._srp_numba.project`.

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
    from .config import get_config

    n_features, n_components, seed = key
    # the packed layout depends on the kernel's task and group sizes: part of the name
    name = f"srp-{_DISK_LAYOUT}-{n_features}x{n_components}-seed{seed}-t{kernels._TASK}g{kernels._GROUP}.npz"
    return Path(get_config().cache_dir) / "projections" / name


def _read_packed(path, key, kernels):
    if not path.exists():
        return None
    n_features, n_components, _ = key
    from ._io import array_sha256

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
    from ._io import array_sha256, atomic_write

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
        # batch-norm layers projected through their input layer (_AffineProjections)
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
        """
        import warnings

        import torch

        hit = _PROJECTIONS.pop(features, (self.n_components, self.seed))
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


class LayerGram:
    """Second-order statistics of one layer, computed in one pass over feature blocks.

    Attributes
    ----------
    kc : ndarray (n_stimuli, n_stimuli), float64
        Doubly centered Gram ``Xc Xc^T`` (``Xc``: each feature centered over stimuli).
    kr : ndarray (n_stimuli, n_stimuli), float64
        Row-centered Gram ``Xr Xr^T`` (``Xr``: each stimulus centered over features), whose
        normalisation is ``numpy.corrcoef(X)``.
    n_features : int
    """

    def __init__(self, kc, kr, n_features):
        self.kc, self.kr, self.n_features = kc, kr, n_features

    def corrcoef(self) -> np.ndarray:
        """``numpy.corrcoef(X)`` (stimuli x stimuli); rows of constant stimuli are NaN."""
        d = np.sqrt(np.clip(np.diag(self.kr), 0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            c = self.kr / np.outer(d, d)
        c[d == 0, :] = np.nan
        c[:, d == 0] = np.nan
        np.fill_diagonal(c, np.where(d > 0, 1.0, np.nan))
        return np.clip(c, -1.0, 1.0, out=c, where=~np.isnan(c))


def layer_gram(features, block: int | None = None, precision: str = "float64") -> LayerGram:
    """Doubly centered and row-centered Gram matrices of a layer, with one GEMM per block.

    The feature-centered Gram is accumulated block by block (float32 products of centered
    blocks, summed in float64); the row-centered Gram follows from it in closed form
    (``Xr = Xc + 1 mu^T - m 1^T`` with column means ``mu`` and row means ``m``), so both cost
    one pass.

    Parameters
    ----------
    features : torch.Tensor or ndarray of shape (n_stimuli, n_features)
    block : int, optional
        Features per block (bounds the temporary memory); default 8192, and 4096 for float32
        on the CPU (where the blocks are spread over worker threads).
    precision : {"float64", "float32"}
        Arithmetic of the block products (one BLAS product per block; each block is centered
        over stimuli first, and the products are summed in float64):
        ``"float64"`` matches ``numpy.corrcoef`` to about 1e-12; ``"float32"`` is about twice
        as fast, with RDM errors of about 1e-7 (RSA scores of a random ResNet-18 within 2e-7
        of float64).

    Returns
    -------
    LayerGram
    """
    import torch

    if precision not in _PRECISIONS:
        raise ValueError(f"precision={precision!r}; expected one of {list(_PRECISIONS)}")
    work = getattr(torch, precision)
    x = _as_tensor(features)
    n, p = x.shape
    kernels = _kernels()
    if kernels is not None and x.device.type == "cpu":
        return _layer_gram_cpu(kernels, x.numpy(), block, precision)
    block = _GRAM_BLOCK if block is None else max(1, int(block))
    f64 = dict(dtype=torch.float64, device=x.device)
    s = _common_value(x)  # the sums below are of X - s (the same row-centered Gram)
    # each block is shifted by its column means rounded to the working precision (c), and the
    # doubly centered Gram corrected for delta = mean - c in float64 (see _gram_from_shifted)
    ks, rs, rd, re = torch.zeros((n, n), **f64), torch.zeros(n, **f64), torch.zeros(n, **f64), torch.zeros(n, **f64)
    s1 = s2 = dd = 0.0
    for j in range(0, p, block):
        xb = x[:, j:j + block]
        mu = xb.mean(0, dtype=torch.float64)
        c = mu.to(work)
        delta = mu - c.to(torch.float64)
        xs = xb.to(work) - c
        ks += (xs @ xs.t()).to(torch.float64)
        xs64 = xs.to(torch.float64)
        cs = c.to(torch.float64) - s
        rs += xs64.sum(1)
        rd += xs64 @ cs
        re += xs64 @ delta
        s1 += float(cs.sum())
        s2 += float(cs @ cs)
        dd += float(delta @ delta)
    return _gram_from_shifted(ks.cpu().numpy(), rs.cpu().numpy(), rd.cpu().numpy(), re.cpu().numpy(), s2, s1, dd, p)


def _common_value(x) -> float:
    """A value near the layer's mean (the mean of its first stimulus's features, float64; 0 if
    not finite): the block sums over column means are taken relative to it, so that the
    row-centered Gram of features that vary little around a large common value (a sigmoid gate
    at 0.5 +- 1e-6) does not come from differences of large sums."""
    import torch

    if isinstance(x, torch.Tensor):
        v = float(x[0].mean(dtype=torch.float64)) if x.shape[0] else 0.0
    else:
        v = float(np.mean(x[0], dtype=np.float64)) if x.shape[0] else 0.0
    return v if np.isfinite(v) else 0.0


def _padded_block(buffer, n: int, w: int):
    """The (n_pad, w) float32 view of ``buffer`` whose first ``n`` rows the centering kernel
    wrote as an (n, w) block; the rows below are set to zero (BLAS multiplies rows in
    multiples of 8 faster: 118 -> 120 is 10% faster; see :mod:`mbutils._gram_workers`)."""
    n_pad = _gw.padded_rows(n)
    buffer[n * w:n_pad * w] = 0.0
    return buffer[:n_pad * w].reshape(n_pad, w)


def _layer_gram_cpu(kernels, x, block, precision) -> LayerGram:
    """:func:`layer_gram` on the CPU: fused centering kernel and one BLAS product per block.

    float32: blocks of 4096 features spread over worker threads, each centering its blocks and
    multiplying them with single-threaded BLAS (:func:`mbutils._gram_workers.block_grams`);
    float64: blocks centered into one reused buffer, products by scipy's ``dsyrk``.

    ``"float64"``: each block is centered on its exact (float64) column means. ``"float32"``:
    on the means rounded to float32 (``c``), so that the centering is one float32 subtraction,
    correctly rounded; the row-centered Gram follows exactly from any such shift, and the
    doubly centered one is corrected for ``mean - c`` in float64.
    """
    from scipy.linalg import blas

    n, p = x.shape
    x = np.ascontiguousarray(x, dtype=np.float32)
    if precision == "float32":
        block = max(1, min(_gw.BLOCK if block is None else int(block), p))
        st = _gw.block_grams(kernels, x, [(j, min(p, j + block), 0) for j in range(0, p, block)], 1,
                             shift=_common_value(x))
        return _gram_from_shifted(st.ks[0], st.rs[0], st.rd[0], st.re[0], float(st.s2[0]), float(st.s1[0]),
                                  float(st.dd[0]), p)
    block = max(1, min(_GRAM_BLOCK if block is None else int(block), p))
    kc = np.zeros((n, n))
    a = np.zeros(n)
    b = np.zeros(n)
    mu_sq = 0.0
    mu_sum = 0.0
    s = _common_value(x)  # the sums below are of X - s (the same row-centered Gram)
    buffer = np.empty(n * block, dtype=np.float64)
    for j in range(0, p, block):
        xc, mu, rowsum, rowdot = kernels.center_block(x, j, min(p, j + block), np.float64, buffer)
        k = blas.dsyrk(1.0, xc.T, trans=1)  # upper triangle of xc @ xc.T
        kc += np.triu(k) + np.triu(k, 1).T
        mu = mu - s
        a += rowdot - s * rowsum
        b += rowsum
        mu_sq += float(mu @ mu)
        mu_sum += float(mu.sum())
    kc = (kc + kc.T) / 2
    return _finish_gram(kc, a, b, mu_sq, mu_sum, p)


class _ChannelStats:
    """Per-channel second-order statistics of a layer whose features are channel-major.

    The features of channel ``k`` are columns ``k*hw:(k+1)*hw``. Each channel is centered
    on its float32-rounded column means ``c`` (as in the float32 :func:`layer_gram`), and
    kept are, per channel, the Gram of the shifted block ``Ks`` (n, n), the row sums
    ``rs``, ``rd`` (against ``c - s``) and ``re`` (against ``delta = mean - c``), and the sums
    ``s1 = sum (c - s)``, ``s2 = sum (c - s)^2``, ``dd = sum delta^2``, with ``s`` a value near
    the layer's mean (:func:`_common_value`).

    The Gram of any per-channel affine map of the layer, ``y = scale[k] * x + shift[k]``
    (an eval-mode batch normalisation), follows in closed form: shifted block
    ``scale[k] * Xs_k``, shift ``scale[k] * c + shift[k]``, ``delta`` times ``scale[k]``.
    """

    def __init__(self, x, n_channels, kernels):
        import torch

        n, p = x.shape
        C = int(n_channels)
        hw = p // C
        self.n_channels, self.hw, self.p = C, hw, p
        self.shift = s = _common_value(x)
        wide = hw >= _CHANNEL_ALONE
        if wide:
            # wide channels: each cut into equal blocks of at most _gw.BLOCK features, whole
            # channels per worker thread (:func:`mbutils._gram_workers.block_grams`)
            parts = -(-hw // _gw.BLOCK)
            cuts = [round(i * hw / parts) for i in range(parts + 1)]
            jobs = [(k * hw + cuts[i], k * hw + cuts[i + 1], k) for k in range(C) for i in range(parts)]
            st = _gw.block_grams(kernels, np.ascontiguousarray(x, dtype=np.float32), jobs, C, shift=s)
        else:
            st = _gw.BlockSums(C, n)  # filled below
        self.ks, self.rs, self.rd, self.re = st.ks, st.rs, st.rd, st.re
        self.s1, self.s2, self.dd = st.s1, st.s2, st.dd
        if wide:
            return
        # narrow channels: several per block, one centering item and one batched GEMM each
        per = max(1, _GRAM_BLOCK // hw)
        n_pad = _gw.padded_rows(n)
        buffer = np.empty(n_pad * per * hw, dtype=np.float32)
        for k0 in range(0, C, per):
            k1 = min(C, k0 + per)
            xc, c, delta, rs, rd, re = kernels.center_block_f32(x, k0 * hw, k1 * hw, buffer, item=hw, per_item=True)
            xp = _padded_block(buffer, n, xc.shape[1])
            t = torch.from_numpy(xp).view(n_pad, k1 - k0, hw).transpose(0, 1)  # (channels, n_pad, hw)
            self.ks[k0:k1] += torch.bmm(t, t.transpose(1, 2)).numpy()[:, :n, :n]
            self._add(slice(k0, k1), rs, rd, re, c, delta, k1 - k0)

    def _add(self, ks, rs, rd, re, c, delta, m):
        c = c - self.shift
        self.rs[ks] += rs
        self.rd[ks] += rd - self.shift * rs
        self.re[ks] += re
        self.s1[ks] += c.reshape(m, -1).sum(1)
        self.s2[ks] += (c * c).reshape(m, -1).sum(1)
        self.dd[ks] += (delta * delta).reshape(m, -1).sum(1)

    def gram(self, scale=None, shift=None) -> LayerGram:
        """The :class:`LayerGram` of the layer itself, or of ``scale[k] * x + shift[k]``."""
        C, hw = self.n_channels, self.hw
        a = np.ones(C) if scale is None else np.asarray(scale, dtype=np.float64)
        b = np.zeros(C) if shift is None else np.asarray(shift, dtype=np.float64)
        a2 = a * a
        # channel k of the map: c_y - s_y = a (c - s) + t with t = a s + b - s_y, and s_y the
        # mean of the map's channel means (so that the sums over t do not cancel either)
        t = a * self.shift + b
        t = t - np.mean(a * self.s1 / hw + t)
        return _gram_from_shifted(
            np.einsum("k,kij->ij", a2, self.ks), a @ self.rs, a2 @ self.rd + (a * t) @ self.rs, a2 @ self.re,
            float(a2 @ self.s2 + 2 * (a * t) @ self.s1 + hw * (t @ t)), float(a @ self.s1 + hw * t.sum()),
            float(a2 @ self.dd), self.p)


# channels at least this wide get blocks (and GEMMs) of their own, on worker threads; narrower
# ones are multiplied with batched GEMMs (faster below about 2,000 features per channel)
_CHANNEL_ALONE = 2048
# narrower channels make per-channel Grams (batched GEMMs with a short inner dimension)
# slower than a second whole-layer Gram: such layers are not derived
_CHANNEL_MIN = 512
# the per-channel statistics hold n_channels float64 (n, n) Grams: with many stimuli they can
# outgrow the layer itself (8 C n^2 bytes against 4 n p: n > hw / 2). A source is only
# derived while its statistics take at most this fraction of its features' memory (n <= hw / 4
# at 0.5), so that they never change the order of the peak memory (two adjacent layers).
_CHANNEL_STATS_SHARE = 0.5


def _channel_stats_fit(n: int, p: int, n_channels: int) -> bool:
    """Whether the per-channel statistics of an (n, p) float32 layer fit the memory rule."""
    return 8.0 * n_channels * n * n <= _CHANNEL_STATS_SHARE * 4.0 * n * p


class _AffineGrams:
    """Derives the float32 Gram of each eval-mode batch-norm layer from its input layer's.

    A layer whose :class:`~mbutils.models.LayerInfo` carries ``affine`` (``source``,
    ``scale``, ``shift``) is a per-channel affine map of layer ``source``. When that source
    passes by, its Gram is computed per channel (:class:`_ChannelStats`, the same work as the
    whole-layer Gram) and its statistics are kept until the affine layer comes; that layer's
    Gram then costs no pass over its features. Both Grams go to the reducers through the
    shared memo. Active only for float32 Gram-based reducers on CPU tensors, and for sources
    whose statistics (``n_channels`` float64 (n, n) matrices) take at most half the memory of
    their features (``n_stimuli <= hw / 4``, ``hw`` features per channel); with more stimuli
    both Grams are computed from the features.
    """

    def __init__(self, reducers, layers):
        grams = [r for r in reducers if isinstance(r, (GramReducer, RDMReducer))]
        self.active = bool(grams) and all(r.precision == "float32" for r in grams) and _kernels() is not None
        self.sources = {}
        for layer in layers:
            link = getattr(layer, "affine", None)
            if link is not None and layer.n_features >= _CHANNEL_MIN * len(link.scale):
                self.sources[link.source] = len(link.scale)
        self.active = self.active and bool(self.sources)
        self._stats: dict = {}

    def __call__(self, layer, features) -> None:
        if not self.active:
            return
        link = getattr(layer, "affine", None)
        if link is not None and link.source in self._stats:
            st = self._stats.pop(link.source)
            if st.n_channels == len(link.scale) and st.p == tuple(features.shape)[1]:
                _MEMO.put(features, "float32", st.gram(link.scale, link.shift))
                return
        C = self.sources.get(layer.name)
        if C is None:
            return
        x = _as_tensor(features)
        self._stats.clear()  # a source whose affine layer did not come is not kept
        if x.device.type != "cpu" or x.shape[1] % C or not _channel_stats_fit(x.shape[0], x.shape[1], C):
            return  # its Gram and its affine layer's are computed from their features
        st = _ChannelStats(x.numpy(), C, _kernels())
        self._stats[layer.name] = st
        _MEMO.put(features, "float32", st.gram())


# layers from this many features up are projected together with their batch norm; below it,
# where accumulating (not reading the layer) dominates, the joint pass saves nothing
_DUAL_MIN = 131_072


class _ProjectionMemo:
    """Projections of one tensor computed ahead of its reducers (by :class:`_AffineProjections`)."""

    def __init__(self):
        self._ref = None
        self._values: dict = {}

    def put(self, features, key, value) -> None:
        if self._ref is None or self._ref() is not features:
            self._values = {}
        self._ref = weakref.ref(features)
        self._values[key] = value

    def pop(self, features, key):
        try:
            same = self._ref is not None and self._ref() is features
        except TypeError:
            same = False
        return self._values.pop(key, None) if same else None


_PROJECTIONS = _ProjectionMemo()


class _AffineProjections:
    """Projects each eval-mode batch-norm layer in the same pass as its input layer.

    A layer whose :class:`~mbutils.models.LayerInfo` carries ``affine`` is
    ``scale[k] * source + shift[k]`` per channel. When the source layer passes by, every
    :class:`SparseRandomProjection` among the reducers projects it with
    :func:`mbutils._srp_numba.project_affine`, which gives the batch-norm layer's projection
    from the same read of the source's features; it is kept until that layer comes and handed
    to the reducers then. The result equals projecting the batch-norm output up to float32
    rounding (the affine map is applied in float32 inside the sum). Active on CPU tensors of
    layers with at least ``_DUAL_MIN`` features, when the compiled kernels are available.
    """

    def __init__(self, reducers, layers):
        kernels = _kernels()
        self.srps = {}
        for r in reducers:
            if isinstance(r, SparseRandomProjection) and kernels is not None \
                    and r.n_components <= kernels.MAX_COMPONENTS:
                self.srps[(r.n_components, r.seed)] = r
        self.sources = {}
        for layer in layers:
            link = getattr(layer, "affine", None)
            if link is not None and layer.n_features >= _DUAL_MIN and len(link.scale) \
                    and any(layer.n_features > k for k, _ in self.srps):
                self.sources[link.source] = link
        self.active = bool(self.srps) and bool(self.sources)
        self._stash: dict = {}

    def __call__(self, layer, features) -> None:
        if not self.active:
            return
        link = getattr(layer, "affine", None)
        if link is not None and link.source in self._stash:
            kept, shape, values = self._stash.pop(link.source)
            if shape == tuple(features.shape) and np.array_equal(kept.scale, link.scale) \
                    and np.array_equal(kept.shift, link.shift):
                for key, value in values.items():
                    _PROJECTIONS.put(features, key, value)
                return
        link = self.sources.get(layer.name)
        if link is None:
            return
        x = _as_tensor(features)
        n, p = x.shape
        if x.device.type != "cpu" or p % len(link.scale):
            return
        self._stash.clear()  # a source whose batch norm did not come is not kept
        kernels = _kernels()
        values = {}
        for key, srp in self.srps.items():
            if p <= srp.n_components:
                continue
            ptr, words, scale = _sign_matrix(p, srp.n_components, srp.seed, kernels)
            px, py = kernels.project_affine(x.numpy(), (ptr, words), srp.n_components, link.scale, link.shift,
                                            scale)
            _PROJECTIONS.put(features, key, px)
            values[key] = py
        self._stash[layer.name] = (link, (n, p), values)


def _gram_from_shifted(ks, rowsum, rowdot, rowdelta, c_sq, c_sum, delta_sq, p) -> LayerGram:
    """:class:`LayerGram` from the Gram of the features shifted by ``c`` (float32-rounded means).

    ``ks = Xs Xs^T`` with ``Xs = X - 1 c^T``; per row ``rowsum = Xs 1``, ``rowdot = Xs (c - s)``
    and ``rowdelta = Xs delta`` (``delta = mean - c``); ``c_sq = (c - s).(c - s)``, ``c_sum =
    sum (c - s)``, ``delta_sq = delta.delta``, for any constant ``s`` (the statistics of ``X -
    s``, whose row-centered Gram is ``X``'s). The row-centered Gram is exact for any shift; the
    doubly centered one is ``(Xs - 1 delta^T)(Xs - 1 delta^T)^T``.
    """
    ks = (ks + ks.T) / 2
    gram = _finish_gram(ks, rowdot, rowsum, c_sq, c_sum, p)
    gram.kc = ks - rowdelta[:, None] - rowdelta[None, :] + delta_sq
    return gram


def _finish_gram(kc, a, b, mu_sq, mu_sum, p) -> LayerGram:
    """Row-centered Gram from the doubly centered one (closed form, float64).

    ``a = Xc mu``, ``b = Xc 1``, ``mu_sq = mu.mu``, ``mu_sum = sum mu`` for the column means
    ``mu`` of the layer, or of the layer minus a constant near its mean (the same row-centered
    Gram, without the cancellation of large sums).
    """
    n = kc.shape[0]
    m = (b + mu_sum) / p
    one = np.ones(n)
    kr = (
        kc
        + np.outer(a, one) + np.outer(one, a)
        - np.outer(b, m) - np.outer(m, b)
        + mu_sq
        - mu_sum * (np.outer(one, m) + np.outer(m, one))
        + p * np.outer(m, m)
    )
    return LayerGram(kc, (kr + kr.T) / 2, p)


class _GramMemo:
    """Remembers the Gram of the last tensor seen, so that several reducers share one pass."""

    def __init__(self):
        self._ref = None
        self._key = None
        self._value = None

    def get(self, features, precision="float64") -> LayerGram:
        try:
            ref = weakref.ref(features)
        except TypeError:
            ref = None
        key = (tuple(features.shape), precision)
        if ref is not None and self._ref is not None and self._ref() is features and self._key == key:
            return self._value
        value = layer_gram(features, precision=precision)
        self._ref, self._key, self._value = ref, key, value
        return value

    def put(self, features, precision, value) -> None:
        """Remember ``value`` as the Gram of ``features`` (computed elsewhere)."""
        self._ref = weakref.ref(features)
        self._key = (tuple(features.shape), precision)
        self._value = value


_MEMO = _GramMemo()


def _check_precision(precision):
    if precision not in _PRECISIONS:
        raise ValueError(f"precision={precision!r}; expected one of {list(_PRECISIONS)}")
    return precision


class GramReducer:
    """Reducer: the doubly centered Gram matrix ``Xc Xc^T`` of the full layer (float64).

    Kernel ridge on it is exactly ridge on the layer's full features
    (:func:`mbutils.scoring.ridge_gcv_predictions_from_gram`), with no projection.

    Parameters
    ----------
    precision : {"float64", "float32"}
        Arithmetic of the block products (see :func:`layer_gram`).

    Returns
    -------
    ndarray of shape (n_stimuli, n_stimuli), float64
    """

    def __init__(self, precision: str = "float64"):
        self.precision = _check_precision(precision)
        self.key = "gram-centered-" + ("f64" if precision == "float64" else "f32-c2")

    rowwise = False

    def __call__(self, features) -> np.ndarray:
        return _MEMO.get(features, self.precision).kc.copy()

    def __repr__(self):
        return f"GramReducer(precision={self.precision!r})"


class RDMReducer:
    """Reducer: the layer's RDM ``1 - numpy.corrcoef(X)`` over stimuli (float64).

    Shares its one pass over the layer with :class:`GramReducer` when both see the same tensor.

    Parameters
    ----------
    precision : {"float32", "float64"}
        Arithmetic of the block products (see :func:`layer_gram`); the default float32
        products (blocks centered in float64, sums in float64) keep RSA scores within about
        2e-7 of float64 arithmetic at half the cost. A float32 RDM whose estimated error
        (:meth:`float32_error`) exceeds :data:`RDM_TOLERANCE` of the spread of the layer's
        stimulus correlations (times the square root of the number of stimulus pairs) is
        computed again in float64, and layers of at most :data:`RDM_FLOAT64_FEATURES` features
        are computed in float64 directly; ``n_float64`` counts the float64 layers.

    Returns
    -------
    ndarray of shape (n_stimuli, n_stimuli), float64
    """

    def __init__(self, precision: str = "float32"):
        self.precision = _check_precision(precision)
        # "c6": float32 RDMs whose error estimate is too large, and small layers, are float64; the
        # row-centered Gram from sums relative to a value near the layer mean (_common_value)
        self.key = "rdm-pearson-" + ("f64" if precision == "float64" else "f32-c6")
        #: layers whose float32 RDM was redone in float64 (see float32_error)
        self.n_float64 = 0

    rowwise = False

    def __call__(self, features) -> np.ndarray:
        small = self.precision == "float32" and tuple(features.shape)[1] <= RDM_FLOAT64_FEATURES
        if small:
            self.n_float64 += 1
            return 1.0 - _MEMO.get(features, "float64").corrcoef()
        gram = _MEMO.get(features, self.precision)
        corr = gram.corrcoef()
        if self.precision == "float32":
            err, spread = self.float32_error(gram, corr)
            n = corr.shape[0]
            if not err <= RDM_TOLERANCE * np.sqrt(n * (n - 1) / 2) * spread:
                self.n_float64 += 1
                _log.info("RDM of a layer of %d features redone in float64 (float32 error estimate %.2g against a "
                          "spread of the correlations of %.2g)", gram.n_features, err, spread)
                corr = layer_gram(features, precision="float64").corrcoef()
        return 1.0 - corr

    @staticmethod
    def float32_error(gram, corr=None):
        """Estimated largest error of a float32 Gram's correlations, and the spread of the correlations.

        The float32 Gram sums products of stimulus-centered features in blocks of up to ``b =
        4096`` (then in float64): an error in ``kc[i, j]`` of about ``u (sqrt(b) |kc[i, j]| +
        sqrt(kc[i, i] kc[j, j]))`` (``u = 2^-24``; the coherent part of the sum and its rounding
        noise), which reaches the correlations (``kr`` normalized; the rest of ``kr`` is float64)
        divided by ``sqrt(kr[i, i] kr[j, j])``. The RSA score depends on the correlations
        through their spread (standard deviation of the off-diagonal entries), which is small when
        every stimulus gives nearly the same activations. Measured on random Inception-V3 and
        ResNet-18, the estimate is 1 to 7 times the largest actual error.

        Parameters
        ----------
        gram : LayerGram
        corr : ndarray (n, n), optional
            ``gram.corrcoef()``, if already computed.

        Returns
        -------
        err, spread : float
            ``spread`` is NaN (and the RDM redone) when the correlations are not all finite.
        """
        corr = gram.corrcoef() if corr is None else corr
        n = corr.shape[0]
        if n < 3:
            return 0.0, 1.0
        iu = np.triu_indices(n, 1)
        off = corr[iu]
        spread = float(np.std(off)) if np.isfinite(off).all() else float("nan")
        dc, dr = np.sqrt(np.clip(np.diag(gram.kc), 0, None)), np.sqrt(np.diag(gram.kr))
        root_b = np.sqrt(min(int(gram.n_features), _gw.BLOCK))
        with np.errstate(divide="ignore", invalid="ignore"):
            err = _U32 * (root_b * np.abs(gram.kc[iu]) + (dc[:, None] * dc[None, :])[iu]) / \
                (dr[:, None] * dr[None, :])[iu]
        return (float(err.max()) if np.isfinite(err).all() else float("inf")), spread

    def __repr__(self):
        return f"RDMReducer(precision={self.precision!r})"


class PCAReducer:
    """Reducer: principal component scores of the layer (over the stimuli themselves).

    Computed from the centered Gram (``Xc Xc^T = U S^2 U^T``; scores ``U S``), so the cost is
    one pass over the layer whatever its width.

    Parameters
    ----------
    n_components : int, optional
        Components kept (at most ``n_stimuli - 1``; default: all non-zero ones).

    Returns
    -------
    ndarray of shape (n_stimuli, n_components), float64
    """

    def __init__(self, n_components: int | None = None):
        if n_components is not None and int(n_components) < 1:
            raise ValueError(f"n_components={n_components!r}; expected a positive integer or None")
        self.n_components = None if n_components is None else int(n_components)
        self.key = f"pca-{self.n_components or 'all'}"

    rowwise = False

    def __call__(self, features) -> np.ndarray:
        kc = _MEMO.get(features).kc
        s, u = np.linalg.eigh(kc)
        order = np.argsort(s)[::-1]
        s, u = np.clip(s[order], 0, None), u[:, order]
        keep = s > s[0] * 1e-12 if s[0] > 0 else np.zeros_like(s, bool)
        k = int(keep.sum())
        if self.n_components is not None:
            k = min(k, self.n_components)
        u, s = u[:, :k], s[:k]
        # deterministic signs: largest-magnitude entry of each component positive
        sign = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(k)])
        sign[sign == 0] = 1
        return u * sign * np.sqrt(s)

    def __repr__(self):
        return f"PCAReducer(n_components={self.n_components})"
