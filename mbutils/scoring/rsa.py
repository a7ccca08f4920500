"""Representational similarity analysis: RDMs and their comparison."""
from __future__ import annotations

import numpy as np
import scipy.stats

__all__ = ["rdm", "compare_rdms", "upper_triangle", "neural_rdms"]

_METHODS = ("pearson", "spearman")


def rdm(X) -> np.ndarray:
    """Representational dissimilarity matrix ``1 - Pearson r`` between stimuli (rows).

    Parameters
    ----------
    X : array of shape (n_stimuli, n_units)

    Returns
    -------
    ndarray of shape (n_stimuli, n_stimuli), float64
        Equal to ``1 - numpy.corrcoef(X)``; rows/columns of constant stimuli are NaN.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n_stimuli, n_units), got shape {X.shape}")
    Xr = X - X.mean(1, keepdims=True)
    norm = np.sqrt((Xr * Xr).sum(1))
    with np.errstate(divide="ignore", invalid="ignore"):
        Z = Xr / norm[:, None]
    c = np.clip(Z @ Z.T, -1.0, 1.0)
    c[norm == 0, :] = np.nan
    c[:, norm == 0] = np.nan
    np.fill_diagonal(c, np.where(norm > 0, 1.0, np.nan))
    return 1.0 - c


def upper_triangle(m) -> np.ndarray:
    """Entries above the diagonal of a square matrix, row by row.

    Parameters
    ----------
    m : array of shape (n, n)

    Returns
    -------
    ndarray of shape (n * (n - 1) / 2,)
    """
    m = np.asarray(m)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {m.shape}")
    return m[np.triu_indices(m.shape[0], k=1)]


def compare_rdms(a, b, method: str = "pearson") -> float:
    """Correlation between the upper triangles of two RDMs.

    Parameters
    ----------
    a, b : array of shape (n_stimuli, n_stimuli)
    method : {"pearson", "spearman"}

    Returns
    -------
    float
        NaN when either triangle is constant or holds NaN.
    """
    if method not in _METHODS:
        raise ValueError(f"method={method!r}; expected one of {list(_METHODS)}")
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"RDMs must have the same shape, got {a.shape} and {b.shape}")
    ta, tb = upper_triangle(a), upper_triangle(b)
    if not (np.all(np.isfinite(ta)) and np.all(np.isfinite(tb))):
        return float("nan")
    if method == "spearman":
        ta, tb = scipy.stats.rankdata(ta), scipy.stats.rankdata(tb)
    from .correlation import pearson_columns

    return float(pearson_columns(ta, tb))


def neural_rdms(responses, groups) -> dict:
    """One RDM per group of neurons (e.g. per area) from trial-averaged responses.

    Parameters
    ----------
    responses : array of shape (n_neurons, n_stimuli)
    groups : array of shape (n_neurons,)
        Group label of each neuron.

    Returns
    -------
    dict label -> ndarray of shape (n_stimuli, n_stimuli)
    """
    responses = np.asarray(responses, dtype=np.float64)
    groups = np.asarray(groups)
    if groups.shape != (responses.shape[0],):
        raise ValueError(f"groups must have shape ({responses.shape[0]},), got {groups.shape}")
    return {g: rdm(responses[groups == g].T) for g in np.unique(groups)}
