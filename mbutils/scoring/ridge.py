"""Ridge regression with leave-one-out predictions by generalized cross-validation (GCV).

With an unpenalized intercept, ridge regression acts on the centered stimulus space (the
complement of the constant vector). Let ``Q`` (n, n-1) be an orthonormal basis of that space and
``Q^T Kc Q = U diag(s) U^T`` the eigendecomposition of the doubly centered Gram matrix
``Kc = Xc Xc^T`` there (``Xc``: features centered over stimuli); ``V = Q U``. With

    G = V diag(1 / (s + alpha)) V^T

(``I - H = alpha G`` for the hat matrix ``H``), the leave-one-out residual of stimulus ``i`` is
``(G y)_i / G_ii`` and the prediction ``y_i - (G y)_i / G_ii``; alpha cancels. Every term of
``G_ii`` is positive, so nothing cancels, whatever the scale of the features: with eigenvalues
of 1e20 (``s / (s + alpha)`` is 1 in float64) the residuals are those of the minimum-norm
interpolant, as they should be, where the form ``(y - H y)_i / (1 - H_ii)`` divides two rounding
errors. This is scikit-learn's ``_RidgeGCV`` formulation (eigenvectors of the Gram, the
intercept direction given weight 0); here the intercept direction is removed exactly by ``Q``.
One eigendecomposition per layer serves all targets (neurons) and all alphas.

Precision. The eigenvalues of a Gram matrix computed in float64 carry absolute errors of about
``n u s_max`` (``u = 2^-53``), which matter where ``G`` weighs them most: against
``s_min + alpha``. When ``n u s_max > GRAM_TOLERANCE (s_min + alpha)`` (features far above
alpha with nearly collinear stimuli, such as near-duplicate images), the spectrum is taken
from a singular value decomposition of the centered features instead, whose eigenvalues are
accurate relative to ``sqrt(s_max)`` rather than ``s_max`` (:func:`centered_spectrum`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["ridge_gcv_predictions", "ridge_gcv_predictions_from_gram", "center_gram", "centered_eigh",
           "centered_svd", "centered_spectrum", "GRAM_TOLERANCE"]

#: the Gram's eigenvalues are used while their rounding error (``n u s_max``) stays below this
#: fraction of ``s_min + alpha``; beyond, the spectrum comes from an SVD of the features
GRAM_TOLERANCE = 1e-8
_U64 = 2.0 ** -53


def _check_alphas(alpha):
    alphas = np.atleast_1d(np.asarray(alpha, dtype=np.float64))
    if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
        raise ValueError(f"alpha={alpha!r}; expected a positive number or a 1-D sequence of positive numbers")
    return alphas


def _check_targets(Y, n):
    Y = np.asarray(Y, dtype=np.float64)
    squeeze = Y.ndim == 1
    if squeeze:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape[0] != n:
        raise ValueError(f"Y must have shape ({n}, n_targets) (stimuli first), got shape {Y.shape}")
    if not np.all(np.isfinite(Y)):
        raise ValueError(
            f"Y has {int((~np.isfinite(Y)).sum())} non-finite values; drop or impute NaN responses first"
        )
    return Y, squeeze


def center_gram(K) -> np.ndarray:
    """Doubly center a Gram matrix: ``C K C`` with ``C = I - 1 1^T/n``.

    Parameters
    ----------
    K : array of shape (n, n)

    Returns
    -------
    ndarray of shape (n, n), float64
    """
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be a square (n_stimuli, n_stimuli) matrix, got shape {K.shape}")
    Kc = K - K.mean(0, keepdims=True)
    Kc = Kc - Kc.mean(1, keepdims=True)
    return (Kc + Kc.T) / 2


def _householder(n: int):
    """The reflection ``R = I - beta v v^T`` that maps ``1 / sqrt(n)`` to the first unit vector."""
    v = np.full(n, 1.0 / np.sqrt(n))
    v[0] -= 1.0
    return v, 2.0 / (v @ v)


def centered_basis(n: int) -> np.ndarray:
    """Orthonormal basis (n, n - 1) of the vectors that sum to zero (the centered stimulus space).

    The columns 2..n of the Householder reflection that maps ``1 / sqrt(n)`` to the first unit
    vector: exactly orthonormal up to rounding, and orthogonal to the constant vector.
    """
    n = int(n)
    if n < 2:
        raise ValueError(f"n={n}; the centered space needs at least 2 stimuli")
    v, beta = _householder(n)
    return (np.eye(n) - beta * np.outer(v, v))[:, 1:]


def _to_centered(A):
    """``Q^T A Q`` for symmetric ``A`` (n, n), with ``Q = centered_basis(n)``, in O(n^2)."""
    n = A.shape[0]
    v, beta = _householder(n)
    av = A @ v
    RAR = A - beta * (np.outer(v, av) + np.outer(av, v)) + beta * beta * (v @ av) * np.outer(v, v)
    return RAR[1:, 1:]


def _from_centered(U):
    """``Q U`` for ``U`` (n - 1, k), with ``Q = centered_basis(n)``, in O(n k)."""
    n = U.shape[0] + 1
    v, beta = _householder(n)
    out = np.empty((n, U.shape[1]))
    out[0] = 0.0
    out[1:] = U
    out -= beta * np.outer(v, v[1:] @ U)
    return out


def centered_eigh(Kc):
    """Eigendecomposition of a doubly centered Gram matrix on the centered stimulus space.

    Parameters
    ----------
    Kc : ndarray (n, n)
        Doubly centered Gram matrix (an uncentered Gram gives the same result).

    Returns
    -------
    s : ndarray (n - 1,)
        Eigenvalues, clipped at 0 (rounding can make null ones slightly negative).
    V : ndarray (n, n - 1)
        Orthonormal eigenvectors, each orthogonal to the constant vector.
    """
    Kc = np.asarray(Kc, dtype=np.float64)
    if Kc.shape[0] < 2:
        raise ValueError(f"K has {Kc.shape[0]} stimuli; the centered space needs at least 2")
    Kq = _to_centered((Kc + Kc.T) / 2)
    s, U = np.linalg.eigh((Kq + Kq.T) / 2)
    return np.clip(s, 0.0, None), _from_centered(U)


def centered_svd(X):
    """:func:`centered_eigh` of ``Xc Xc^T`` from a singular value decomposition of the features.

    Parameters
    ----------
    X : ndarray (n, p)
        Features (centered over stimuli here, in float64).

    Returns
    -------
    s : ndarray (n - 1,)
        Squared singular values of the centered features (zeros where ``p < n - 1``).
    V : ndarray (n, n - 1)
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    Xc = X - X.mean(0)
    v, beta = _householder(n)
    Xq = (Xc - beta * np.outer(v, v @ Xc))[1:]  # Q^T Xc
    U, sv, _ = np.linalg.svd(Xq, full_matrices=True)
    s = np.zeros(n - 1)
    s[:sv.size] = sv ** 2
    return s, _from_centered(U)


def gram_error_ratio(s, alpha) -> float:
    """Rounding error of a float64 Gram's eigenvalues ``s`` (``n u s_max``) over ``s_min + alpha``."""
    s = np.asarray(s)
    if s.size == 0:
        return 0.0
    return float((s.size + 1) * _U64 * s.max() / (s.min() + alpha))


def centered_spectrum(X, alpha):
    """Spectrum ``(s, V)`` of the centered features, accurate enough for ridge with ``alpha``.

    From the eigendecomposition of the float64 Gram matrix where its rounding allows
    (:func:`gram_error_ratio` at most :data:`GRAM_TOLERANCE`), from an SVD of the features
    otherwise (and always when there are fewer features than stimuli).

    Parameters
    ----------
    X : ndarray (n, p)
    alpha : float
        The smallest penalty that will be used.

    Returns
    -------
    s : ndarray (n - 1,)
    V : ndarray (n, n - 1)
    svd : bool
        Whether the SVD was used.
    """
    X = np.asarray(X, dtype=np.float64)
    n, p = X.shape
    if p >= n - 1:
        Xc = X - X.mean(0)
        s, V = centered_eigh(Xc @ Xc.T)
        if gram_error_ratio(s, alpha) <= GRAM_TOLERANCE:
            return s, V, False
    s, V = centered_svd(X)
    return s, V, True


def _loo_from_eig(s, V, Y, alphas, return_alpha):
    """Leave-one-out predictions from ``centered_eigh``'s ``(s, V)`` (non-cancelling form)."""
    Yc = Y - Y.mean(0)
    VtY = V.T @ Yc  # (n - 1, m)
    V2 = V * V  # (n, n - 1)
    best = None
    best_err = None
    best_alpha = None
    for a in alphas:
        w = 1.0 / (s + a)
        g = V2 @ w  # diag of G, every term positive
        resid = (V @ (w[:, None] * VtY)) / g[:, None]  # leave-one-out residuals
        loo = Y - resid
        if best is None:
            best = loo
            if len(alphas) > 1:
                best_err = (resid ** 2).mean(0)
                best_alpha = np.full(Y.shape[1], a)
        else:
            err = (resid ** 2).mean(0)
            better = err < best_err
            best[:, better] = loo[:, better]
            best_err[better] = err[better]
            best_alpha[better] = a
    if best_alpha is None:
        best_alpha = np.full(Y.shape[1], alphas[0])
    return best, best_alpha


def ridge_gcv_predictions_from_gram(K, Y, alpha=1.0, centered=False, return_alpha=False):
    """Leave-one-out ridge predictions from a Gram matrix (kernel form).

    Parameters
    ----------
    K : array of shape (n_stimuli, n_stimuli)
        Gram matrix ``X X^T`` (or already doubly centered ``Xc Xc^T`` with ``centered=True``).
    Y : array of shape (n_stimuli, n_targets) or (n_stimuli,)
        Targets (e.g. trial-averaged responses, one column per neuron).
    alpha : float or sequence of float, default 1.0
        Ridge penalty. With several values, the one with the smallest leave-one-out mean
        squared error is chosen per target (as ``RidgeCV(alpha_per_target=True)``).
    centered : bool, default False
    return_alpha : bool, default False
        Also return the chosen alpha per target.

    Returns
    -------
    predictions : ndarray of shape (n_stimuli, n_targets) (or (n_stimuli,) for 1-D ``Y``)
    alphas : ndarray of shape (n_targets,), only with ``return_alpha=True``
    """
    alphas = _check_alphas(alpha)
    Kc = np.asarray(K, dtype=np.float64) if centered else center_gram(K)
    if Kc.ndim != 2 or Kc.shape[0] != Kc.shape[1]:
        raise ValueError(f"K must be a square (n_stimuli, n_stimuli) matrix, got shape {Kc.shape}")
    if not np.all(np.isfinite(Kc)):
        raise ValueError("K has non-finite values; expected a finite Gram matrix")
    Y, squeeze = _check_targets(Y, Kc.shape[0])
    if Kc.shape[0] < 3:
        raise ValueError(f"K has {Kc.shape[0]} stimuli; leave-one-out needs at least 3")
    s, V = centered_eigh(Kc)
    pred, chosen = _loo_from_eig(s, V, Y, alphas, return_alpha)
    if squeeze:
        pred = pred[:, 0]
    return (pred, chosen) if return_alpha else pred


def ridge_gcv_predictions(X, Y, alpha=1.0, return_alpha=False):
    """Leave-one-out predictions of ridge regression (intercept fitted, not penalized).

    Equal to scikit-learn's ``RidgeCV(alphas=[alpha], store_cv_results=True, scoring=...)``
    ``cv_results_`` (its leave-one-out predictions), for all targets at once: one
    eigendecomposition of the stimulus-by-stimulus Gram matrix (or a thin SVD of ``X`` when
    there are more stimuli than features).

    Parameters
    ----------
    X : array of shape (n_stimuli, n_features)
    Y : array of shape (n_stimuli, n_targets) or (n_stimuli,)
    alpha : float or sequence of float, default 1.0
        Penalty; with several values the best per target (smallest LOO squared error).
    return_alpha : bool, default False

    Returns
    -------
    predictions : ndarray of shape (n_stimuli, n_targets) (or (n_stimuli,) for 1-D ``Y``)
    alphas : ndarray of shape (n_targets,), only with ``return_alpha=True``

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.normal(size=(20, 50)), rng.normal(size=(20, 3))
    >>> ridge_gcv_predictions(X, Y).shape
    (20, 3)
    """
    alphas = _check_alphas(alpha)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n_stimuli, n_features), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"X has {int((~np.isfinite(X)).sum())} non-finite values; expected finite features")
    n, p = X.shape
    Y, squeeze = _check_targets(Y, n)
    if n < 3:
        raise ValueError(f"X has {n} stimuli; leave-one-out needs at least 3")
    s, V, _ = centered_spectrum(X, float(alphas.min()))
    pred, chosen = _loo_from_eig(s, V, Y, alphas, return_alpha)
    if squeeze:
        pred = pred[:, 0]
    return (pred, chosen) if return_alpha else pred
