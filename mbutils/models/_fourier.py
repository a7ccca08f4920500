"""Random Fourier features (Rahimi & Recht, 2007) of flattened pixels (private helpers)."""
from __future__ import annotations

import numpy as np

__all__ = ["median_gamma", "draw_state", "random_fourier_features"]


def median_gamma(x: np.ndarray) -> float:
    """RBF ``gamma`` by the median heuristic: ``1 / median(||x_i - x_j||^2)`` over pairs ``i < j``.

    Parameters
    ----------
    x : array of shape (n_samples, n_features)

    Returns
    -------
    float
        Falls back to ``1 / n_features`` when fewer than two distinct samples exist.
    """
    from scipy.spatial.distance import pdist

    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] < 2:
        return 1.0 / x.shape[1]
    d2 = pdist(x, metric="sqeuclidean")
    med = float(np.median(d2))
    if not np.isfinite(med) or med <= 0:
        positive = d2[d2 > 0]
        med = float(np.median(positive)) if positive.size else float(x.shape[1])
    return 1.0 / med


def draw_state(seed: int, draw: int) -> int:
    """Integer random state of draw ``draw`` under ``seed`` (independent streams, stable across machines)."""
    return int(np.random.SeedSequence([int(seed), int(draw)]).generate_state(1)[0])


def random_fourier_features(x: np.ndarray, gamma: float, n_components: int, random_state: int) -> np.ndarray:
    """One draw of random Fourier features ``z(x) = sqrt(2 / D) cos(x W + b)``.

    ``W ~ N(0, 2 gamma)`` elementwise (so ``z(x) . z(y)`` approximates the RBF kernel
    ``exp(-gamma ||x - y||^2)``) and ``b ~ U(0, 2 pi)``, drawn by
    :class:`sklearn.kernel_approximation.RBFSampler` with ``random_state``.

    Parameters
    ----------
    x : array of shape (n_samples, n_features)
    gamma : float
    n_components : int
        ``D``.
    random_state : int

    Returns
    -------
    numpy.ndarray of shape (n_samples, n_components), float32
    """
    from sklearn.kernel_approximation import RBFSampler

    sampler = RBFSampler(gamma=gamma, n_components=n_components, random_state=random_state)
    return sampler.fit_transform(np.asarray(x, dtype=np.float64)).astype(np.float32)
