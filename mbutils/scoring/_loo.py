"""Private: leave-one-out ridge (GCV) Pearson scores of many targets and layers.

:class:`LooPearson` holds the targets, prepared once (centered, transposed so that each
target is a contiguous row, constant ones flagged). Leave-one-out predictions are linear in
the targets, ``pred = P y`` (:func:`leave_one_out_operator`, one per layer), so
:meth:`LooPearson.scores` needs, per layer, the product ``P Yc`` and three sums per target:
it takes the targets in blocks that stay in cache, multiplies each block by every layer's
``P`` (BLAS) and reduces the product at once with a compiled kernel to Pearson r: no
(n_stimuli, n_targets) temporary, and the targets are read from memory once.

:func:`blas_workers` and :func:`parallel_map` spread the work over threads, each with a
single-threaded BLAS (faster here than one multi-threaded BLAS on these thin products).
"""
from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from .ridge import centered_eigh

_BLOCK = 1024  # targets per block: the block and its product (2 x 0.9 MiB at 118 stimuli) stay in cache
_TINY = float(np.finfo(float).tiny)
# float32 products: targets whose centered leave-one-out predictions have a norm below this
# fraction of (largest row norm of P) x |y| are redone in float64 (see _block_scores32)
_CANCEL = 0.05


@njit(cache=True, nogil=True)
def _prepare_rows(Yt, y_ok, yss):  # pragma: no cover - compiled
    """Center each row of ``Yt`` (m, n) in place; flag constant or non-finite rows.

    A row is usable (``y_ok``) when finite and its spread after centering exceeds 1e-12 of
    its magnitude; unusable rows are set to 0. ``yss``: sum of squares after centering.
    """
    m, n = Yt.shape
    for j in range(m):
        row = Yt[j]
        s = 0.0
        amax = 0.0
        finite = True
        for i in range(n):
            v = row[i]
            if not np.isfinite(v):
                finite = False
            s += v
            a = abs(v)
            if a > amax:
                amax = a
        mu = s / n
        cmax = 0.0
        ss = 0.0
        for i in range(n):
            v = row[i] - mu
            row[i] = v
            a = abs(v)
            if a > cmax:
                cmax = a
            ss += v * v
        ok = finite and cmax > 1e-12 * max(amax, _TINY)
        y_ok[j] = ok
        yss[j] = ss
        if not ok:
            row[:] = 0.0


@njit(inline="always")
def _rows_to_r(Qt, Yb, j0, lk, floor, yss, y_ok, R, check):  # pragma: no cover - compiled
    """Pearson r of each row of ``Qt`` (predictions, float32 or float64) with the same row of
    ``Yb`` (centered targets), summed in float64, into ``R[lk, j0:]``; ``check`` flags
    predictions that are nearly constant (spread below 1e-4 of their magnitude: ``qss``, as
    ``s2 - n qm^2``, carries rounding of about 1e-16 ``s2``; constant ones, as
    :func:`~mbutils.scoring.pearson_columns` sees them, have ``qss <= n (1e-12 max|q|)^2 <=
    1e-24 n s2``) or with ``qss <= floor * |y|^2``, to be redone from centered predictions."""
    b, n = Yb.shape
    for j in range(b):
        c = 0.0
        s = 0.0
        s2 = 0.0
        for i in range(n):
            q = np.float64(Qt[j, i])
            c += q * Yb[j, i]
            s += q
            s2 += q * q
        qm = s / n
        qss = s2 - n * qm * qm
        rj = c / np.sqrt(qss * yss[j])
        if not y_ok[j] or not np.isfinite(rj):
            rj = np.nan
        else:
            rj = min(max(rj, -1.0), 1.0)
            check[lk, j0 + j] = not (qss > 1e-8 * s2 and qss > floor * yss[j])
        R[lk, j0 + j] = rj


# 'reassoc' only (no nnan/ninf): lets the sums over stimuli vectorize, keeps NaN/inf semantics;
# error_model="numpy": division by zero gives inf/NaN instead of raising
@njit(fastmath={"reassoc"}, error_model="numpy", cache=True, nogil=True)
def _block_scores(Yb, j0, PTs, layers, yss, y_ok, R, check):  # pragma: no cover - compiled
    """Scores of the targets ``j0 : j0 + b`` for every layer (no GIL held).

    Parameters
    ----------
    Yb : ndarray (b, n)
        Centered targets ``j0 : j0 + b``, one per row.
    j0 : int
    PTs : ndarray (k, n, n)
        Transposed leave-one-out operators ``P.T`` of ``k`` layers.
    layers : ndarray (k,), int
        Rows of ``R`` and ``check`` of these layers.
    yss, y_ok : ndarray (b,)
        Sums of squares of ``Yb``'s rows; False for unusable targets.
    R : ndarray (n_layers, m), out
        Pearson r of predictions ``P y`` and targets ``y``: clipped to [-1, 1], NaN where not
        finite or not ``y_ok``.
    check : ndarray (n_layers, m), bool, out
        Set where the predictions may be constant (redone and tested exactly afterwards).
    """
    b, n = Yb.shape
    Qt = np.empty((b, n))
    for k in range(PTs.shape[0]):
        np.dot(Yb, PTs[k], Qt)  # rows: (P @ Yc[:, block]).T (BLAS)
        _rows_to_r(Qt, Yb, j0, layers[k], 0.0, yss, y_ok, R, check)


@njit(fastmath={"reassoc"}, error_model="numpy", cache=True, nogil=True)
def _block_scores32(Yb32, Yb, j0, PTs32, rho2, layers, yss, y_ok, R, check):  # pragma: no cover - compiled
    """:func:`_block_scores` with float32 products ``P y`` (BLAS ``sgemm``), reduced in float64.

    ``Yb32``, ``PTs32``: the targets and operators rounded to float32; the sums of products with
    the targets use their float64 values ``Yb``. ``rho2``: per layer, the largest squared row
    norm of ``P``. The rounding error of each prediction is about 1e-7 of
    ``|P_i| |y| <= rho |y|``; targets whose centered predictions are small against that
    (norm below ``_CANCEL * rho * |y|``: sums that cancel) or nearly constant (spread below
    1e-4 of their magnitude) are flagged in ``check`` and recomputed in float64 afterwards.
    """
    b, n = Yb.shape
    Qt = np.empty((b, n), dtype=np.float32)
    for k in range(PTs32.shape[0]):
        np.dot(Yb32, PTs32[k], Qt)
        _rows_to_r(Qt, Yb, j0, layers[k], _CANCEL * _CANCEL * rho2[k], yss, y_ok, R, check)


def leave_one_out_operator(kc, alpha) -> np.ndarray:
    """Matrix ``P`` of ridge-GCV leave-one-out predictions: ``pred = P y``.

    ``P = I - diag(1 / diag(G)) G`` with ``G = V diag(1 / (s + alpha)) V^T`` from the
    eigendecomposition of ``kc`` on the centered stimulus space
    (:func:`mbutils.scoring.ridge.centered_eigh`; see :mod:`mbutils.scoring.ridge`): no
    difference of nearly equal numbers, whatever the scale of the Gram against ``alpha``. Its
    diagonal is exactly 0 (a stimulus never predicts itself) and its rows sum to 1.

    Parameters
    ----------
    kc : ndarray (n, n)
        Doubly centered Gram matrix.
    alpha : float or sequence of float
        One penalty, or several (one operator each, from the same eigendecomposition).

    Returns
    -------
    ndarray (n, n), float64, or a list of them for a sequence of alphas
    """
    s, V = centered_eigh(kc)
    several = np.ndim(alpha) > 0
    out = [_operator_from_eig(s, V, float(a)) for a in np.atleast_1d(alpha)]
    return out if several else out[0]


def _operator_from_eig(s, V, alpha) -> np.ndarray:
    w = 1.0 / (s + alpha)
    G = (V * w) @ V.T
    g = (V * V) @ w  # diag(G): a sum of positive terms
    P = G / (-g)[:, None]
    np.fill_diagonal(P, 0.0)
    return P


#: a layer is penalty-dominated when its leave-one-out operator differs from the
#: leave-one-out mean's by at most this fraction of the latter's norm (see penalty_deviation)
PENALTY_DOMINATED = 0.5


def penalty_deviation(P) -> float:
    """How far the leave-one-out predictions are from the leave-one-out mean, relatively.

    As ``alpha`` grows against the Gram's eigenvalues, ``P`` tends to ``P0`` (``1/(n-1)`` off
    the diagonal, 0 on it): every stimulus is predicted by the mean of the others, which
    correlates exactly -1 with the targets. Returns ``d = (n - 1) ||P - P0||_2`` (the spectral
    norm; for more than 2,000 stimuli the Frobenius norm, a larger bound of it). ``P0`` maps a
    centered target ``y`` to ``-y / (n - 1)``, so ``|(P - P0) y| <= d |P0 y|``: with ``d <= tau``
    every target's leave-one-out Pearson r is at most ``-sqrt(1 - tau^2)`` (-0.87 at the
    :data:`PENALTY_DOMINATED` threshold 0.5), whatever the target: the score measures the
    penalty, not the layer.

    Parameters
    ----------
    P : ndarray (n, n)

    Returns
    -------
    float
    """
    E = _deviation_matrix(P)
    n = P.shape[0]
    norm = np.linalg.norm(E, 2) if n <= 2000 else np.sqrt(np.einsum("ij,ij->", E, E))
    return float((n - 1) * norm)


def _deviation_matrix(P):
    n = P.shape[0]
    E = P - 1.0 / (n - 1)
    np.fill_diagonal(E, np.diag(P))
    return E


def penalty_dominated(P, tau=PENALTY_DOMINATED) -> bool:
    """Whether ``penalty_deviation(P) <= tau``, without the SVD where the Frobenius norm decides.

    ``||E||_F / sqrt(rank) <= ||E||_2 <= ||E||_F``: a Frobenius norm at most ``tau`` flags the
    layer, one above ``tau sqrt(n - 1)`` clears it, and only in between is the spectral norm
    computed.
    """
    n = P.shape[0]
    E = _deviation_matrix(P)
    fro = (n - 1) * float(np.sqrt(np.einsum("ij,ij->", E, E)))
    if not np.isfinite(fro):
        return False
    if fro <= tau:
        return True
    if fro > tau * np.sqrt(n - 1) or n > 2000:
        return False
    return (n - 1) * float(np.linalg.norm(E, 2)) <= tau


class LooPearson:
    """Pearson r of ridge leave-one-out predictions, for fixed targets and any layers.

    Parameters
    ----------
    *Ys : ndarray (n_stimuli, m_k)
        Target blocks (e.g. all trials, odd trials, even trials), concatenated along the
        targets: ``m = sum(m_k)`` targets.
    precision : {"float64", "float32"}
        Arithmetic of the products ``P y`` (the leave-one-out predictions). ``"float64"``
        matches the plain computation to about 1e-12. ``"float32"`` (single-precision BLAS, about
        twice as fast) rounds the operators and targets to float32 for the product only: the
        sums over stimuli stay in float64 and use the exact targets, and targets whose
        predictions are nearly constant (spread below 1e-4 of their magnitude) or small against
        the operator's rows times the target (float32 sums that cancel) are recomputed in
        float64. Pearson r then differs from the float64 value by about 1e-7 (at most
        8e-8 over 60 random-projection layers and 20,000 targets of 118 stimuli).

    Attributes
    ----------
    Yt : ndarray (m, n_stimuli)
        Centered targets, one per row (0 for unusable targets).
    y_ok : ndarray (m,), bool
        False for constant (spread below 1e-12 of the magnitude) or non-finite targets.
    yss : ndarray (m,)
        Sums of squares of the centered targets.
    """

    def __init__(self, *Ys, precision: str = "float64"):
        if precision not in ("float64", "float32"):
            raise ValueError(f"precision={precision!r}; expected 'float64' or 'float32'")
        self.precision = precision
        Ys = [np.asarray(y, dtype=np.float64) for y in Ys]
        n = Ys[0].shape[0]
        m = sum(y.shape[1] for y in Ys)
        self.Yt = np.empty((m, n))
        start = 0
        for y in Ys:
            self.Yt[start:start + y.shape[1]] = y.T
            start += y.shape[1]
        self.y_ok = np.empty(m, dtype=bool)
        self.yss = np.empty(m)
        _prepare_rows(self.Yt, self.y_ok, self.yss)
        self._Yt32 = self.Yt.astype(np.float32) if precision == "float32" else None

    @property
    def n_targets(self) -> int:
        return self.Yt.shape[0]

    def scores(self, operators, n_workers=1) -> np.ndarray:
        """Scores of all targets for several layers.

        Row ``l`` equals ``pearson_columns(P_l @ Y, Y)`` for the targets ``Y``, NaN for
        unusable targets and where the predictions are constant (as
        ``pearson_columns(ridge_gcv_predictions_from_gram(kc, Y, alpha, centered=True), Y)``).
        The targets are done in blocks of ``_BLOCK``, each block against every layer while
        it is in cache, blocks spread over ``n_workers`` threads.

        Parameters
        ----------
        operators : sequence of (ndarray (n_stimuli, n_stimuli) or None)
            Per layer, the leave-one-out operator (:func:`leave_one_out_operator`); None gives
            a row of NaN (constant layer).
        n_workers : int

        Returns
        -------
        ndarray (n_layers, m), float64
        """
        Yt, m = self.Yt, self.n_targets
        R = np.full((len(operators), m), np.nan)
        check = np.zeros((len(operators), m), dtype=bool)
        layers = np.array([l for l, P in enumerate(operators) if P is not None], dtype=np.intp)
        if len(layers) == 0 or m == 0:
            return R
        PTs = np.ascontiguousarray([np.asarray(operators[l], dtype=np.float64).T for l in layers])  # (k, n, n)
        single = self.precision == "float32"
        PTs32 = PTs.astype(np.float32) if single else None
        rho2 = np.einsum("kij,kij->kj", PTs, PTs).max(1) if single else None  # rows of P: columns of P.T

        def block(j):
            e = min(m, j + _BLOCK)
            if single:
                _block_scores32(self._Yt32[j:e], Yt[j:e], j, PTs32, rho2, layers, self.yss[j:e], self.y_ok[j:e], R,
                                check)
            else:
                _block_scores(Yt[j:e], j, PTs, layers, self.yss[j:e], self.y_ok[j:e], R, check)

        parallel_map(block, range(0, m, _BLOCK), n_workers)
        # flagged targets (nearly constant predictions, or float32 sums that cancel): recomputed
        # in float64 from centered
        # predictions, and NaN where constant as pearson_columns sees it (centered spread at
        # most 1e-12 of the largest magnitude)
        for l, PT in zip(layers, PTs):
            idx = np.flatnonzero(check[l])
            if idx.size:
                Q = Yt[idx] @ PT
                Qc = Q - Q.mean(1)[:, None]  # centered first: no cancellation in the spread
                with np.errstate(divide="ignore", invalid="ignore"):
                    r = np.einsum("ji,ji->j", Qc, Yt[idx]) / np.sqrt(np.einsum("ji,ji->j", Qc, Qc) * self.yss[idx])
                R[l, idx] = np.where(np.isfinite(r) & self.y_ok[idx], np.clip(r, -1.0, 1.0), np.nan)
                spread = np.abs(Qc).max(1)
                R[l, idx[spread <= 1e-12 * np.maximum(np.abs(Q).max(1), _TINY)]] = np.nan
        return R

    def __call__(self, kc, alpha) -> np.ndarray:
        """Scores of all targets for one layer.

        Parameters
        ----------
        kc : ndarray (n_stimuli, n_stimuli)
            Doubly centered Gram matrix of the layer.
        alpha : float

        Returns
        -------
        ndarray (m,), float64
        """
        return self.scores([leave_one_out_operator(kc, alpha)])[0]


def _blas_threads() -> int | None:
    """Threads of the BLAS libraries numpy uses (None when threadpoolctl is missing)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    n = [d.get("num_threads", 1) for d in threadpool_info() if d.get("user_api") == "blas"]
    return max(n) if n else 1


@contextlib.contextmanager
def blas_workers(max_workers=None):
    """Context giving the number of worker threads to use, BLAS single-threaded meanwhile.

    As many workers as the BLAS would use threads (which follows ``OMP_NUM_THREADS`` and the
    like) and the process may use CPUs, at most ``max_workers``; with one worker, BLAS is left
    as it is.

    Yields
    ------
    int
    """
    n = _blas_threads()
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    n = 1 if n is None else min(n, cpus)
    if max_workers is not None:
        n = min(n, max_workers)
    if n <= 1:
        yield 1
        return
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS of numba's np.dot: loaded, so limited too)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield n


def parallel_map(fn, items, n_workers) -> list:
    """``list(map(fn, items))`` on ``n_workers`` threads (in this thread when 1)."""
    items = list(items)
    if n_workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(min(n_workers, len(items)), thread_name_prefix="mbutils-score") as pool:
        return list(pool.map(fn, items))


def loo_pearson_auto(s, V, Yt, y_ok, yss, alphas, block=_BLOCK):
    """Per target, the penalty of ``alphas`` with the smallest leave-one-out error, and the
    Pearson r of the leave-one-out predictions with it.

    For each alpha the leave-one-out residuals are ``(G y)_i / G_ii`` with ``G = V diag(1 / (s +
    alpha)) V^T`` (see :mod:`mbutils.scoring.ridge`); each target takes the first alpha of the
    grid whose mean squared residual is smallest (as scikit-learn's ``RidgeCV(alphas=...,
    alpha_per_target=True)``, which keeps the first of equal errors), and its predictions
    ``y - residual``. Float64 throughout, targets in blocks of ``block``.

    Parameters
    ----------
    s : ndarray (n - 1,)
    V : ndarray (n, n - 1)
        From :func:`~mbutils.scoring.ridge.centered_eigh` (or ``centered_svd``).
    Yt : ndarray (m, n)
        Centered targets, one per row (as :attr:`LooPearson.Yt`).
    y_ok : ndarray (m,), bool
        False for unusable targets (their r is NaN).
    yss : ndarray (m,)
        Sums of squares of the rows of ``Yt``.
    alphas : ndarray (k,)
        Penalties, in the order in which ties are broken.
    block : int

    Returns
    -------
    r : ndarray (m,)
        NaN for unusable targets and where the predictions are constant (spread at most 1e-12
        of their magnitude, as :func:`~mbutils.scoring.pearson_columns`).
    chosen : ndarray (m,)
        The penalty chosen per target.
    """
    m = Yt.shape[0]
    alphas = np.asarray(alphas, dtype=np.float64)
    r = np.full(m, np.nan)
    chosen = np.full(m, np.nan)
    V2 = V * V
    weights = [1.0 / (s + a) for a in alphas]
    diags = [V2 @ w for w in weights]  # diag(G) per alpha: sums of positive terms
    for j in range(0, m, block):
        e = min(m, j + block)
        Y = Yt[j:e].T  # (n, b)
        Z = V.T @ Y
        best = best_err = None
        pick = np.zeros(e - j, dtype=np.intp)
        for k, (w, g) in enumerate(zip(weights, diags)):
            resid = (V @ (w[:, None] * Z)) / g[:, None]
            err = np.einsum("ij,ij->j", resid, resid)
            if best is None:
                best, best_err = resid, err
                continue
            better = err < best_err
            best[:, better] = resid[:, better]
            best_err[better] = err[better]
            pick[better] = k
        pred = Y - best
        q = pred - pred.mean(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rb = np.einsum("ij,ij->j", q, Y) / np.sqrt(np.einsum("ij,ij->j", q, q) * yss[j:e])
        flat = np.abs(q).max(0) <= 1e-12 * np.maximum(np.abs(pred).max(0), _TINY)
        ok = y_ok[j:e] & np.isfinite(rb) & ~flat
        r[j:e] = np.where(ok, np.clip(rb, -1.0, 1.0), np.nan)
        chosen[j:e] = alphas[pick]
    return r, chosen
