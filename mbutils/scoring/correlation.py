"""Vectorized Pearson correlation per column."""
from __future__ import annotations

import numpy as np

__all__ = ["pearson_columns"]


def pearson_columns(A, B) -> np.ndarray:
    """Pearson correlation between matching columns of two matrices.

    Parameters
    ----------
    A, B : array of shape (n_samples, n_columns) or (n_samples,)

    Returns
    -------
    ndarray of shape (n_columns,) (a 0-d array for 1-D inputs), float64
        ``r[j] = pearsonr(A[:, j], B[:, j])``. Columns where either side is constant (or has a
        non-finite value) are NaN, silently: count them with ``np.isnan(r).sum()``.

    Examples
    --------
    >>> import numpy as np
    >>> pearson_columns(np.array([[1., 2.], [2., 2.], [3., 2.]]), np.array([[2., 1.], [4., 2.], [7., 3.]]))
    array([0.99339927,        nan])
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    if A.shape != B.shape:
        raise ValueError(f"A and B must have the same shape, got {A.shape} and {B.shape}")
    if A.ndim not in (1, 2) or A.shape[0] < 2:
        raise ValueError(f"expected arrays of shape (n_samples >= 2, n_columns), got shape {A.shape}")
    squeeze = A.ndim == 1
    if squeeze:
        A, B = A[:, None], B[:, None]
    Ac = A - A.mean(0)
    Bc = B - B.mean(0)
    # rescale before products so that tiny or huge columns neither underflow nor overflow
    sa = np.abs(Ac).max(0)
    sb = np.abs(Bc).max(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        Ac = Ac / sa
        Bc = Bc / sb
        num = (Ac * Bc).sum(0)
        den = np.sqrt((Ac * Ac).sum(0) * (Bc * Bc).sum(0))
        r = num / den
    bad = ~(np.isfinite(r)) | (sa == 0) | (sb == 0)
    # constant columns after centering can leave rounding noise: treat relative spread
    # below 1e-12 of the column's magnitude as constant
    tiny_a = sa <= 1e-12 * np.maximum(np.abs(A).max(0), np.finfo(float).tiny)
    tiny_b = sb <= 1e-12 * np.maximum(np.abs(B).max(0), np.finfo(float).tiny)
    r = np.clip(r, -1.0, 1.0)
    r[bad | tiny_a | tiny_b] = np.nan
    return r[0] if squeeze else r
