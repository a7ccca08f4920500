"""Layer reducers: sparse random projection, centered Gram matrices, RDMs and PCA.

A reducer is a callable ``reducer(features) -> numpy.ndarray`` with a ``.key`` string (part of
the feature cache key, see :func:`mbutils.models.extract`) and a ``rowwise`` bool. ``features``
is one layer's activations for all stimuli, a ``torch.Tensor`` (or numpy array) of shape
(n_stimuli, n_features).

Reducers:

- :class:`SparseRandomProjection` -- the paper's dimensionality reduction (4096 components,
  density ``1/sqrt(n_features)``), reproducible across runs and machines: (n_stimuli,
  n_components), float32 (float64 where float32 would be inexact, :data:`SRP_TOLERANCE`).
- :class:`GramReducer` -- the doubly centered Gram matrix ``Xc Xc^T`` of the full layer,
  (n_stimuli, n_stimuli) float64: ridge regression on it
  (:func:`mbutils.scoring.ridge_gcv_predictions_from_gram`) is exactly ridge on all of the
  layer's features (the "exact" mapping).
- :class:`RDMReducer` -- the layer's representational dissimilarity matrix
  ``1 - corrcoef(X)`` over stimuli, (n_stimuli, n_stimuli) float64 (:data:`RDM_TOLERANCE`,
  :data:`RDM_FLOAT64_FEATURES`).
- :class:`PCAReducer` -- principal component scores, (n_stimuli, n_components) float64.

Work shared between the reducers of one extraction:

- :class:`SharedPasses` -- made by :func:`mbutils.models.extract` for each call:
  ``observe(layer, features)`` once per layer, then ``reduce(reducer, features)`` per reducer.
  Gram-based reducers share one pass over the layer, and eval-mode batch-norm layers are
  reduced from their input layer's pass.

Building blocks:

- :class:`LayerGram` / :func:`layer_gram` -- the doubly centered and row-centered Grams of a
  layer, (n_stimuli, n_stimuli) float64, in one pass.
- :func:`sparse_random_matrix` -- the projection matrix of one layer shape (CSR arrays of the
  (n_features, n_components) matrix); :func:`projection_seed` -- its seed sequence.
"""
from ._gram import RDM_FLOAT64_FEATURES, RDM_TOLERANCE, GramReducer, LayerGram, RDMReducer, layer_gram
from ._pca import PCAReducer
from ._projection import SRP_TOLERANCE, SparseRandomProjection, projection_seed, sparse_random_matrix
from ._shared import SharedPasses

__all__ = [
    "SparseRandomProjection",
    "GramReducer",
    "RDMReducer",
    "PCAReducer",
    "SharedPasses",
    "LayerGram",
    "layer_gram",
    "sparse_random_matrix",
    "projection_seed",
    "SRP_TOLERANCE",
    "RDM_TOLERANCE",
    "RDM_FLOAT64_FEATURES",
]
