"""Private: the PCA reducer.

:class:`PCAReducer` -- features (n_stimuli, n_features) -> principal component scores
(n_stimuli, n_components), float64, from the layer's doubly centered Gram
(:func:`mbutils.reduction.layer_gram`).
"""
from __future__ import annotations

import numpy as np

from ._gram import _gram_of


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
        """The principal component scores of ``features`` (n_stimuli, n_features)."""
        return self._reduce(features, None)

    def _reduce(self, features, shared) -> np.ndarray:
        kc = _gram_of(features, "float64", shared).kc
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
