"""Linear centered kernel alignment (CKA) between stimulus-by-stimulus Gram matrices.

Linear CKA (Kornblith et al., ICML 2019) compares two representations of the same ``n``
stimuli through their Gram matrices ``K = X X^T`` and ``L = Y Y^T``:

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)).

Two estimators of HSIC are offered:

- ``"biased"`` (Gretton et al. 2005): ``HSIC(K, L) = tr(K H L H) / (n - 1)^2`` with the
  centering matrix ``H = I - 1 1^T / n``. CKA is then the cosine between the doubly centered
  Grams ``Kc = H K H`` and ``Lc`` (Frobenius inner product): what this module computes, with each
  Gram scaled to unit norm first (no overflow or underflow whatever the scale of the features).
- ``"unbiased"`` (Song et al., JMLR 2012): with ``K~`` and ``L~`` the Grams with their diagonals
  set to zero,
  ``HSIC_1(K, L) = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2)) - 2 (1^T K~ L~ 1) / (n-2)]
  / (n (n-3))``. It is bilinear, and equals ``<U(K), U(L)> / (n (n-3))`` for the symmetric
  matrix ``U(K)`` with zero diagonal and ``U(K)_ij = K_ij - r_i - r_j`` off it, ``r = K~ 1 / (n-2) -
  (1^T K~ 1) / (2 (n-1) (n-2))`` (:func:`unbiased_center`): ``U(K) 1 = 0``, so ``<U(K), L~> =
  <U(K), U(L)>``. ``HSIC_1(K, K) = |U(K)|^2 / (n (n-3))`` is never negative; CKA is again a
  cosine, between ``U(K)`` and ``U(L)`` (it needs at least 4 stimuli).

Both are invariant to orthogonal transforms and isotropic scaling of either representation, and
to adding a constant to the features (the Grams enter centered). One layer against many neural
populations is one matrix product of the flattened, unit-norm Grams (:func:`cka_matrix`).
"""
from __future__ import annotations

import warnings

import numpy as np

__all__ = ["cka", "cka_matrix", "linear_gram", "unbiased_center", "splithalf_cka_reliability", "CKA_ESTIMATORS"]

#: the HSIC estimators of :func:`cka`
CKA_ESTIMATORS = ("biased", "unbiased")


def _check_estimator(estimator):
    if estimator not in CKA_ESTIMATORS:
        raise ValueError(f"estimator={estimator!r}; expected one of {list(CKA_ESTIMATORS)}")


def linear_gram(X) -> np.ndarray:
    """Doubly centered linear Gram matrix ``Xc Xc^T`` of features (float64).

    Parameters
    ----------
    X : array of shape (n_stimuli, n_features)
        One row per stimulus.

    Returns
    -------
    ndarray of shape (n_stimuli, n_stimuli), float64
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n_stimuli, n_features), got shape {X.shape}")
    Xc = X - X.mean(0)
    K = Xc @ Xc.T
    return (K + K.T) / 2


def unbiased_center(K) -> np.ndarray:
    """The matrix ``U(K)`` (n, n) of the unbiased HSIC estimator (see the module docstring).

    ``<U(K), U(L)> = n (n - 3) HSIC_1(K, L)`` (Song et al. 2012) for any Gram matrices ``K``, ``L``
    of the same ``n`` stimuli; ``U(K)`` is symmetric, has a zero diagonal and rows that sum to 0.

    Parameters
    ----------
    K : array of shape (n, n)
        A symmetric Gram matrix (centered or not: ``U`` is the same), ``n >= 4``.

    Returns
    -------
    ndarray of shape (n, n), float64
    """
    K = np.array(K, dtype=np.float64)
    n = K.shape[0]
    if K.ndim != 2 or K.shape[1] != n:
        raise ValueError(f"K must be a square (n_stimuli, n_stimuli) matrix, got shape {K.shape}")
    if n < 4:
        raise ValueError(f"K has {n} stimuli; the unbiased HSIC estimator needs at least 4")
    np.fill_diagonal(K, 0.0)
    rows = K.sum(1)
    r = rows / (n - 2) - rows.sum() / (2.0 * (n - 1) * (n - 2))
    K -= r[:, None]
    K -= r[None, :]
    np.fill_diagonal(K, 0.0)
    return (K + K.T) / 2


def _prepared(grams, estimator):
    """Flattened Grams (n*n, k) of unit Frobenius norm after the estimator's centering, and
    which are usable (finite and not zero)."""
    from .ridge import center_gram

    cols, ok = [], []
    for K in grams:
        K = np.asarray(K, dtype=np.float64)
        if not np.isfinite(K).all():
            cols.append(np.zeros(K.size))
            ok.append(False)
            continue
        M = unbiased_center(K) if estimator == "unbiased" else center_gram(K)
        scale = np.abs(M).max()
        if not scale > 0:
            cols.append(np.zeros(K.size))
            ok.append(False)
            continue
        M = M / scale  # then the norm: no overflow for Grams of 1e200, no underflow for 1e-200
        norm = np.sqrt(np.einsum("ij,ij->", M, M))
        cols.append((M / norm).ravel())
        ok.append(True)
    return np.stack(cols, axis=1), np.array(ok, dtype=bool)


def cka_matrix(grams_a, grams_b, estimator="biased") -> np.ndarray:
    """Linear CKA of every Gram of ``grams_a`` with every Gram of ``grams_b``.

    Parameters
    ----------
    grams_a : sequence of ndarray (n, n), or ndarray (k, n, n)
        Gram matrices (e.g. one per layer); centered or not (they are centered here).
    grams_b : sequence of ndarray (n, n), or ndarray (l, n, n)
        Gram matrices of the same ``n`` stimuli (e.g. one per neural population).
    estimator : {"biased", "unbiased"}
        HSIC estimator (module docstring).

    Returns
    -------
    ndarray of shape (k, l), float64
        NaN where either Gram is not finite or is zero after centering (a constant
        representation).
    """
    _check_estimator(estimator)
    grams_a, grams_b = list(grams_a), list(grams_b)
    if not grams_a or not grams_b:
        return np.full((len(grams_a), len(grams_b)), np.nan)
    shapes = {np.shape(g) for g in grams_a + grams_b}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2 or len(set(next(iter(shapes)))) != 1:
        raise ValueError(f"Gram matrices must all be square and of the same size (n_stimuli, n_stimuli); got shapes "
                         f"{sorted(shapes)}")
    A, ok_a = _prepared(grams_a, estimator)
    B, ok_b = _prepared(grams_b, estimator)
    out = np.clip(A.T @ B, -1.0, 1.0)
    out[~(ok_a[:, None] & ok_b[None, :])] = np.nan
    return out


def cka(X, Y, estimator="biased", grams=False) -> float:
    """Linear CKA of two representations of the same stimuli.

    Parameters
    ----------
    X : array of shape (n_stimuli, p) (or (n_stimuli, n_stimuli) with ``grams=True``)
    Y : array of shape (n_stimuli, q) (or (n_stimuli, n_stimuli) with ``grams=True``)
    estimator : {"biased", "unbiased"}
    grams : bool, default False
        ``X`` and ``Y`` are Gram matrices (``X X^T``) rather than features.

    Returns
    -------
    float
        In [0, 1] for the biased estimator; NaN for a constant representation.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 20))
    >>> round(cka(X, 3.0 * X @ np.linalg.qr(rng.normal(size=(20, 20)))[0]), 12)
    1.0
    """
    if grams:
        K, L = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    else:
        X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
        if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
            raise ValueError(f"X and Y must have shapes (n_stimuli, p) and (n_stimuli, q) with the same stimuli; got "
                             f"{X.shape} and {Y.shape}")
        K, L = linear_gram(X), linear_gram(Y)
    return float(cka_matrix([K], [L], estimator)[0, 0])


def splithalf_cka_reliability(trials, n_splits=10, seed=0, estimator="biased", return_splits=False):
    """Split-half reliability of a population's Gram matrix by CKA, Spearman-Brown corrected.

    For each random split of the trials (:func:`mbutils.reliability.trial_splits`, the splits
    of :func:`mbutils.reliability.splithalf_rdm_reliability`), the linear Gram of the
    population's mean responses over one half is compared by CKA with that of the other half;
    each value is Spearman-Brown corrected and the values are averaged over splits. Its square
    root (:func:`mbutils.reliability.noise_ceiling`) is the CKA noise ceiling, as the RDM's
    split-half reliability is RSA's.

    Parameters
    ----------
    trials : array of shape (n_neurons, n_stimuli, n_trials)
        Single-trial responses (NaN trials are left out of the means).
    n_splits : int, default 10
    seed : int, default 0
    estimator : {"biased", "unbiased"}
    return_splits : bool, default False
        Also return the corrected value of every split.

    Returns
    -------
    float (and ndarray of shape (n_splits,) with ``return_splits``)
    """
    from ..reliability import spearman_brown, trial_splits

    _check_estimator(estimator)
    trials = np.asarray(trials, dtype=np.float64)
    if trials.ndim != 3:
        raise ValueError(f"trials must have shape (n_neurons, n_stimuli, n_trials), got shape {trials.shape}")
    if trials.shape[2] < 2:
        raise ValueError(f"trials has {trials.shape[2]} trials; a split-half reliability needs at least 2")
    first, second = trial_splits(trials.shape[2], n_splits, seed)
    values = np.empty(len(first))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Mean of empty slice")
        for k in range(len(first)):
            a = np.nanmean(trials[:, :, first[k]], axis=2)
            b = np.nanmean(trials[:, :, second[k]], axis=2)
            keep = np.isfinite(a).all(1) & np.isfinite(b).all(1)
            r = cka_matrix([linear_gram(a[keep].T)], [linear_gram(b[keep].T)], estimator)[0, 0] if keep.any() \
                else np.nan
            values[k] = spearman_brown(r)
    rel = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return (rel, values) if return_splits else rel
