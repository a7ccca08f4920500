"""Private: :class:`SharedPasses`, the work that the reducers of one extraction share.

Features are one layer's activations for all stimuli (or for one batch of stimuli), a
``torch.Tensor`` or numpy array of shape (n_stimuli, n_features). Shared per layer are its
Gram (:class:`~mbutils.reduction.LayerGram`, (n_stimuli, n_stimuli) matrices) and its sparse
random projections ((n_stimuli, n_components) arrays) computed ahead of the reducers.
"""
from __future__ import annotations

import weakref

from ._affine import _AffineGrams, _AffineProjections
from ._gram import GramReducer, LayerGram, RDMReducer, layer_gram
from ._pca import PCAReducer
from ._projection import SparseRandomProjection

# the reducers that take shared work through their ``_reduce(features, shared)``
_SHARING = (SparseRandomProjection, GramReducer, RDMReducer, PCAReducer)


class SharedPasses:
    """The work that the reducers of one extraction share, layer by layer.

    :func:`mbutils.models.extract` makes one per call, with its reducers and the model's
    layers. For every layer the forward pass produces (in network order; with row-wise
    batches, for every batch of stimuli of it) it calls :meth:`observe` once, then
    :meth:`reduce` for each reducer, always with the same features object.

    Shared are:

    - the layer's Gram: one pass over the layer for the Gram-based reducers
      (:class:`GramReducer`, :class:`RDMReducer`, :class:`PCAReducer`); the Gram last asked
      for is kept, so reducers that ask for it in the same precision one after the other share
      it;
    - the batch-norm shortcut, for layers whose :class:`~mbutils.models.LayerInfo` carries
      ``affine`` (an eval-mode batch normalisation of layer ``affine.source``): when all
      Gram-based reducers work in float32, the source's Gram is computed per channel and the
      batch-norm layer's float32 Gram follows from those statistics without a pass over its
      features; every :class:`SparseRandomProjection` projects the source and the batch-norm
      layer in one pass over the source's features. Used on CPU tensors, for layers wide
      enough that it saves time.

    ``reduce(reducer, features)`` equals ``reducer(features)`` bitwise, except where the
    batch-norm shortcut is used (on batch-norm layers, and for Grams on their sources too):
    there the two differ by float32 rounding (the Grams are summed per channel, and the affine
    map is applied inside the float32 projection sum).

    Everything kept belongs to this object: the Gram and projections of the layer last
    observed (dropped by the next :meth:`observe`) and the statistics of a source layer until
    its batch-norm layer comes. Nothing is kept at module level, so it all goes with the
    object at the end of the extraction.

    Parameters
    ----------
    reducers : iterable of reducers
        The extraction's reducers; those of other classes are called as they are.
    layers : sequence of LayerInfo, optional
        The layers the forward pass produces (``model.layers()``): their ``affine`` links name
        the batch-norm layers and their sources. Without them, only the Gram is shared.

    Examples
    --------
    >>> import numpy as np
    >>> from mbutils.models import LayerInfo
    >>> from mbutils.reduction import GramReducer, RDMReducer, SharedPasses
    >>> reducers = [GramReducer(), RDMReducer(precision="float64")]
    >>> shared = SharedPasses(reducers)
    >>> x = np.random.default_rng(0).normal(size=(5, 40)).astype(np.float32)
    >>> shared.observe(LayerInfo("fc", 1, 1.0, 40, "Linear"), x)
    >>> [shared.reduce(r, x).shape for r in reducers]  # one Gram computed for both
    [(5, 5), (5, 5)]
    """

    def __init__(self, reducers, layers=()):
        reducers = list(reducers)
        layers = list(layers)
        self._grams = _GramMemo()
        self._projections = _ProjectionMemo()
        self._affine_grams = _AffineGrams(reducers, layers)
        self._affine_projections = _AffineProjections(reducers, layers)

    def observe(self, layer, features) -> None:
        """Begin a layer: drop what was kept for the previous one, and do this one's shared work.

        Call it once per layer (or per batch of stimuli of a layer), in network order, before
        any :meth:`reduce` on its features.

        Parameters
        ----------
        layer : LayerInfo
        features : torch.Tensor or ndarray of shape (n_stimuli, n_features)
            The features the reducers will be given (the same object).
        """
        self._grams.clear()
        self._projections.clear()
        self._affine_grams(layer, features, self._grams)
        self._affine_projections(layer, features, self._projections)

    def reduce(self, reducer, features):
        """``reducer(features)``, taking the work shared on the layer last observed.

        Parameters
        ----------
        reducer : reducer
            The reducers of :mod:`mbutils.reduction` take the Gram or projection of the layer
            from this object; any other reducer is called as it is.
        features : torch.Tensor or ndarray of shape (n_stimuli, n_features)
            The features given to :meth:`observe`.

        Returns
        -------
        ndarray
            As ``reducer(features)`` returns it.
        """
        if isinstance(reducer, _SHARING):
            return reducer._reduce(features, self)
        return reducer(features)

    def _gram(self, features, precision) -> LayerGram:
        """The :class:`LayerGram` of ``features``: the one kept, or computed and kept."""
        return self._grams.get(features, precision)

    def _pop_projection(self, features, key):
        """The projection of ``features`` for ``key = (n_components, seed)`` computed ahead
        (handed out once), or None."""
        return self._projections.pop(features, key)

    def __repr__(self):
        return (f"SharedPasses(batch-norm Grams {'on' if self._affine_grams.active else 'off'}, "
                f"batch-norm projections {'on' if self._affine_projections.active else 'off'})")


class _GramMemo:
    """The Gram of one features object in one precision: the one last asked for or put.

    The features object is held by a weak reference (the layer may be freed), and the Gram
    is handed out only for that very object.
    """

    def __init__(self):
        self.clear()

    def clear(self) -> None:
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
        """Keep ``value`` as the Gram of ``features`` (computed elsewhere)."""
        self._ref = weakref.ref(features)
        self._key = (tuple(features.shape), precision)
        self._value = value


class _ProjectionMemo:
    """Projections of one features object computed ahead of its reducers, by key."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
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
