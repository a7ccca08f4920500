"""Private: the batch-norm shortcut of :class:`~mbutils.reduction.SharedPasses`.

A layer whose :class:`~mbutils.models.LayerInfo` carries ``affine`` (an
:class:`~mbutils.models.AffineLink`: ``source``, ``scale``, ``shift`` of length ``n_channels``)
is an eval-mode batch normalisation of layer ``source``: with features (n_stimuli,
n_features) in channel-major order, channel ``k`` is ``scale[k] * source + shift[k]``. Its
reductions follow from work done on the source's pass:

- ``_AffineGrams`` -- its float32 Gram (n_stimuli, n_stimuli) from the source's per-channel
  statistics (:class:`~mbutils.reduction._gram._ChannelStats`);
- ``_AffineProjections`` -- its sparse random projections (n_stimuli, n_components) from a
  joint projection of the source (:func:`mbutils.reduction._kernels.project_affine`).

Both are called for every layer, in network order, with the memos of the extraction's
:class:`~mbutils.reduction.SharedPasses`, into which they put what the reducers of the layer
then take.
"""
from __future__ import annotations

import numpy as np

from ._gram import GramReducer, RDMReducer, _ChannelStats
from ._projection import SparseRandomProjection, _sign_matrix
from ._support import _as_tensor, _kernels

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
    Gram then costs no pass over its features. Both Grams go to the reducers through the Gram
    memo of the extraction's :class:`~mbutils.reduction.SharedPasses`. Active only for float32
    Gram-based reducers on CPU tensors, and for sources whose statistics (``n_channels``
    float64 (n, n) matrices) take at most half the memory of their features
    (``n_stimuli <= hw / 4``, ``hw`` features per channel); with more stimuli both Grams are
    computed from the features.
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

    def __call__(self, layer, features, grams) -> None:
        """Put the Gram of ``layer`` into ``grams`` (a ``_GramMemo``) where it follows from its
        source's statistics, or where ``layer`` is a source (its statistics are kept)."""
        if not self.active:
            return
        link = getattr(layer, "affine", None)
        if link is not None and link.source in self._stats:
            st = self._stats.pop(link.source)
            if st.n_channels == len(link.scale) and st.p == tuple(features.shape)[1]:
                grams.put(features, "float32", st.gram(link.scale, link.shift))
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
        grams.put(features, "float32", st.gram())


# layers from this many features up are projected together with their batch norm; below it,
# where accumulating (not reading the layer) dominates, the joint pass saves nothing
_DUAL_MIN = 131_072


class _AffineProjections:
    """Projects each eval-mode batch-norm layer in the same pass as its input layer.

    A layer whose :class:`~mbutils.models.LayerInfo` carries ``affine`` is
    ``scale[k] * source + shift[k]`` per channel. When the source layer passes by, every
    :class:`SparseRandomProjection` among the reducers projects it with
    :func:`mbutils.reduction._kernels.project_affine`, which gives the batch-norm layer's projection
    from the same read of the source's features; it is kept until that layer comes and handed
    to the reducers then, through the projection memo of the extraction's
    :class:`~mbutils.reduction.SharedPasses`. The result equals projecting the batch-norm output up to float32
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

    def __call__(self, layer, features, projections) -> None:
        """Put the projections of ``layer`` into ``projections`` (a ``_ProjectionMemo``) where
        they came with its source's, or where ``layer`` is a source (both are computed then)."""
        if not self.active:
            return
        link = getattr(layer, "affine", None)
        if link is not None and link.source in self._stash:
            kept, shape, values = self._stash.pop(link.source)
            if shape == tuple(features.shape) and np.array_equal(kept.scale, link.scale) \
                    and np.array_equal(kept.shift, link.shift):
                for key, value in values.items():
                    projections.put(features, key, value)
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
            projections.put(features, key, px)
            values[key] = py
        self._stash[layer.name] = (link, (n, p), values)
