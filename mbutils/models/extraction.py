"""Streaming layer-wise extraction with reducers, and the on-disk cache of its results.

Examples
--------
>>> import numpy as np
>>> from mbutils.models import KeepReducer, extract, load_model
>>> model = load_model("alexnet", weights="random")                       # doctest: +SKIP
>>> stimuli = np.random.default_rng(0).integers(0, 256, (4, 64, 64), dtype=np.uint8)
>>> fs = extract(model, stimuli, {"keep": KeepReducer()}, cache=False)  # doctest: +SKIP
>>> fs.layers.head()                                                      # doctest: +SKIP
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import array_sha256
from ..reduction import SharedPasses
from .base import FeatureModel, LayerInfo, check_stimuli
from .cache import FeatureCache, cache_key

__all__ = ["FeatureSet", "NotEnoughMemoryError", "check_room", "extract", "layer_table"]

_LAYER_COLUMNS = ["name", "index", "depth", "n_features", "module_type", "n_nonfinite"]
#: stimuli per forward pass when every reducer is row-wise (see :func:`extract`)
ROWWISE_BATCH = 32
#: a batched extraction whose reduced layers for all stimuli would take more than this (bytes,
#: counted at 8 bytes a value) keeps them on disk and reads them back one layer at a time
#: (:class:`~mbutils.models._spill.SpilledLayers`): ResNet-18's 60 projected layers of 4,096
#: components stay in memory up to about 2,000 stimuli
REDUCED_MEMORY = 4 * 2**30


class FeatureSet:
    """Reduced features of every layer of one model for one stimulus set.

    Attributes
    ----------
    layers : pandas.DataFrame
        One row per layer: ``name, index, depth, n_features, module_type, n_nonfinite`` (the
        number of NaN or infinite activations of the layer, counted when a reduction of it is
        not finite).
    identity : str
        The model's identity string.
    from_cache : bool
        Whether the results were read from the disk cache.
    seconds : float
        Time the extraction took (0 when read from the cache).

    ``fs[reducer_name]`` is a list of numpy arrays, one per layer (row of ``layers``), each of
    shape (n_stimuli, ...) as the reducer returned it; for a batched extraction whose reduced
    layers exceed :data:`REDUCED_MEMORY`, a sequence of the same arrays that reads each layer
    from a temporary file when indexed (:class:`~mbutils.models._spill.SpilledLayers`).
    """

    def __init__(self, layers: pd.DataFrame, results: dict, identity: str = "", from_cache: bool = False,
                 seconds: float = 0.0):
        self.layers = layers.reset_index(drop=True)
        self._results = results
        self.identity = identity
        self.from_cache = from_cache
        self.seconds = seconds

    @property
    def reducers(self) -> list:
        """Names of the reducers."""
        return list(self._results)

    def layer_infos(self) -> list:
        """The layers as :class:`LayerInfo` objects."""
        return [LayerInfo(r.name, int(r.index), float(r.depth), int(r.n_features), r.module_type)
                for r in self.layers[_LAYER_COLUMNS[:5]].itertuples(index=False)]

    def __getitem__(self, reducer_name: str) -> list:
        if reducer_name not in self._results:
            raise KeyError(f"no reducer {reducer_name!r} in this FeatureSet; it has {self.reducers}")
        return self._results[reducer_name]

    def __contains__(self, reducer_name) -> bool:
        return reducer_name in self._results

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        return (f"FeatureSet({self.identity!r}, {len(self.layers)} layers, reducers={self.reducers}, "
                f"from_cache={self.from_cache})")


def _check_reducers(reducers) -> dict:
    if not isinstance(reducers, dict) or not reducers:
        raise TypeError(f"reducers must be a non-empty dict name -> reducer, got {reducers!r}")
    for name, red in reducers.items():
        if not callable(red):
            raise TypeError(f"reducer {name!r} is not callable: {red!r}")
        if not isinstance(getattr(red, "key", None), str):
            raise TypeError(f"reducer {name!r} needs a str `.key` attribute (part of the cache key), got {red!r}")
    return reducers


def extract(model: FeatureModel, stimuli, reducers: dict, cache=True, progress=None,
            batch_size=None) -> FeatureSet:
    """Run a model over stimuli once, reduce every layer as it comes, and cache the results.

    Each layer's features (n_stimuli, n_features) go to every reducer as soon as the forward
    pass produces them, and are freed right after: all layers are never in memory together.

    Parameters
    ----------
    model : FeatureModel
    stimuli : array of shape (n_stimuli, height, width), uint8
    reducers : dict of str -> reducer
        ``reducer(features: torch.Tensor) -> numpy.ndarray`` with a ``.key`` str attribute.
    cache : bool or path
        ``True``: cache under ``mbutils.get_config().cache_dir / "features"``; a path: cache
        there; ``False``: no cache.
    progress : bool, optional
        Progress bar (default ``mbutils.get_config().progress``).
    batch_size : int, optional
        See :meth:`TorchFeatureModel.run` (default: one forward pass over all stimuli, or, when
        every reducer is row-wise, see below).

    Notes
    -----
    A reducer with a true ``rowwise`` attribute (such as
    :class:`mbutils.reduction.SparseRandomProjection`) reduces each stimulus's row on its own.
    When all reducers are row-wise, the model is a torch network and ``batch_size`` is not
    given, the forward pass runs over ``ROWWISE_BATCH`` stimuli at a time and the reduced rows
    are stacked: the same results (up to the float rounding of the forward pass itself) with
    peak memory bounded by one batch's activations instead of all stimuli's.

    The reducers share work through one :class:`mbutils.reduction.SharedPasses` made for the
    call: each layer goes to its ``observe`` and then, reducer by reducer, to its ``reduce``.

    Returns
    -------
    FeatureSet
    """
    import mbutils

    if not isinstance(model, FeatureModel):
        raise TypeError(f"model must be a FeatureModel (see mbutils.models.load_model), got {type(model).__name__}")
    stimuli = check_stimuli(stimuli)
    reducers = _check_reducers(reducers)
    store = None
    key = None
    if cache is not False and cache is not None:
        store = FeatureCache(None if cache is True else Path(cache))
        key = cache_key(model.identity, array_sha256(stimuli), {k: r.key for k, r in reducers.items()},
                        mbutils.get_config().seed)
        hit = store.load(model.name, key)
        if hit is not None:
            meta, results = hit
            layers = pd.DataFrame([list(r) + [0] * (len(_LAYER_COLUMNS) - len(r)) for r in meta["layers"]],
                                  columns=_LAYER_COLUMNS)
            return FeatureSet(layers, results, identity=model.identity, from_cache=True)

    results = {name: [] for name in reducers}
    rows = []
    # the work the reducers share in this extraction: one Gram per layer, and batch-norm
    # layers reduced from their input layers' pass (see SharedPasses and LayerInfo.affine)
    infos = model.layers() if hasattr(model, "layers") else []
    shared = SharedPasses(reducers.values(), infos)

    def on_layer(layer: LayerInfo, features):
        shared.observe(layer, features)
        outputs = [shared.reduce(red, features) for red in reducers.values()]
        for name, out in zip(reducers, outputs):
            results[name].append(out)
        rows.append([layer.name, layer.index, layer.depth, layer.n_features, layer.module_type,
                     _count_nonfinite(layer.name, features, outputs)])

    t0 = time.perf_counter()
    if batch_size is None and _rowwise_batches(model, reducers, stimuli.shape[0]):
        _run_rowwise(model, stimuli, reducers, results, rows, progress, shared)
    else:
        check_room(model, infos, stimuli.shape[0], reducers, batch_size)
        model.run(stimuli, on_layer, batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - t0
    layers = pd.DataFrame(rows, columns=_LAYER_COLUMNS)
    if store is not None:
        try:
            store.save(model.name, key, {"identity": model.identity, "layers": rows, "seconds": seconds}, results)
        except OSError as err:  # a read-only or full cache: the features are still delivered
            import warnings

            warnings.warn(f"could not write the feature cache in {str(store.root)!r} ({err.strerror or err}); "
                          "the results are complete, only not cached", RuntimeWarning, stacklevel=2)
    return FeatureSet(layers, results, identity=model.identity, seconds=seconds)


class NotEnoughMemoryError(MemoryError):
    """An extraction that would need more memory (or disk) than the machine has free; raised
    before the forward pass, with the sizes and the ways around it in the message."""


def check_room(model, infos, n_stimuli, reducers, batch_size=None, available=None, disk_free=None) -> None:
    """Refuse, before the forward pass, an extraction whose layers cannot fit in memory.

    Reducers that are not row-wise (RDM, Gram, PCA) take each layer's activations for all
    stimuli at once. One forward pass over every stimulus holds about two adjacent layers of
    all stimuli (the input and output of a module); with ``batch_size`` one layer is held and
    every layer is spilled to disk first (see :meth:`TorchFeatureModel.run`). The estimate is
    ``4 bytes x n_stimuli x`` twice the largest layer (one pass) or the largest layer (batched);
    it is a lower bound of the real peak (ResNet-18, 600 stimuli: estimated 3.9 GB, measured
    4.9 GB).

    Parameters
    ----------
    model : FeatureModel
    infos : list of LayerInfo
        The model's layers (with ``n_features``); an empty list skips the check.
    n_stimuli : int
    reducers : dict of str -> reducer
    batch_size : int, optional
    available, disk_free : int, optional
        Bytes of free memory and free disk under the cache folder (default: measured with
        ``psutil`` and ``shutil.disk_usage``).

    Raises
    ------
    NotEnoughMemoryError
    """
    sizes = [int(i.n_features) for i in infos if getattr(i, "n_features", 0)]
    if not sizes or all(getattr(r, "rowwise", False) is True for r in reducers.values()):
        return
    import shutil

    import psutil

    import mbutils

    batched = batch_size is not None and batch_size < n_stimuli
    largest = max(range(len(sizes)), key=sizes.__getitem__)
    need = 4 * n_stimuli * sizes[largest] * (1 if batched else 2)
    available = psutil.virtual_memory().available if available is None else int(available)
    gb = 1e9
    spill = 4 * n_stimuli * sum(sizes)
    if batched:
        root = Path(mbutils.get_config().cache_dir)
        while not root.exists() and root != root.parent:
            root = root.parent
        disk_free = shutil.disk_usage(root).free if disk_free is None else int(disk_free)
    names = ", ".join(f"{k} ({type(r).__name__})" for k, r in reducers.items()
                      if getattr(r, "rowwise", False) is not True)
    ways = (f"score with metrics=('srp_ridge',) (the projections are computed {ROWWISE_BATCH} stimuli at a "
            "time), use fewer stimuli, or run on a machine with more memory")
    if need > available:
        how = (f"one layer of all stimuli ({infos[largest].name!r}, {sizes[largest]:,} features) while the "
               "others are read back from disk" if batched else
               f"about two adjacent layers of all stimuli in one forward pass (largest: {infos[largest].name!r}, "
               f"{sizes[largest]:,} features)")
        extra = "" if batched else (f"; batch_size holds one layer instead ({need / 2 / gb:.1f} GB) and spills every "
                                    f"layer to disk ({spill / gb:.1f} GB)")
        raise NotEnoughMemoryError(
            f"{model.name} on {n_stimuli:,} stimuli: the reductions {names} need every layer's full activations, "
            f"{how}: about {need / gb:.1f} GB, and {available / gb:.1f} GB of memory is free. To go on, {ways}"
            f"{extra}.")
    if batched and spill > disk_free:
        raise NotEnoughMemoryError(
            f"{model.name} on {n_stimuli:,} stimuli with batch_size={batch_size}: every layer is spilled to disk "
            f"under {str(mbutils.get_config().cache_dir)!r} first, about {spill / gb:.1f} GB, and {disk_free / gb:.1f}"
            f" GB is free there. To go on, {ways}, or set a cache folder on a larger disk "
            "(mbutils.set_config(cache_dir=...)).")


def _count_nonfinite(name, features, outputs) -> int:
    """Non-finite activations of a layer, counted only when one of its reductions is not finite."""
    if all(np.isfinite(np.asarray(o)).all() for o in outputs if np.asarray(o).dtype.kind == "f"):
        return 0
    import torch

    t = features if isinstance(features, torch.Tensor) else torch.from_numpy(np.asarray(features))
    n = int((~torch.isfinite(t)).sum())
    if n:
        import logging

        logging.getLogger(__name__).warning("layer %r has %d non-finite activations (of %d)", name, n, t.numel())
    return n


def _rowwise_batches(model, reducers, n_stimuli) -> bool:
    from ._torch import TorchFeatureModel

    return (isinstance(model, TorchFeatureModel) and n_stimuli > ROWWISE_BATCH
            and all(getattr(r, "rowwise", False) is True for r in reducers.values()))


def _run_rowwise(model, stimuli, reducers, results, rows, progress, shared=None):
    """Forward ``ROWWISE_BATCH`` stimuli at a time; stack each layer's reduced rows.

    ``shared`` (a :class:`~mbutils.reduction.SharedPasses`, default: a new one without layers)
    observes every batch of every layer before its reducers. When the reduced layers of all
    stimuli would exceed :data:`REDUCED_MEMORY` (estimated after the first batch), the rows go
    to temporary files (:class:`~mbutils.models._spill.SpilledLayers`) instead of memory, and
    ``results`` gets those sequences in place of lists."""
    import mbutils

    if progress is None:
        progress = mbutils.get_config().progress
    if shared is None:
        shared = SharedPasses(reducers.values())
    n = stimuli.shape[0]
    parts = {name: [] for name in reducers}  # name -> layer position -> list of row blocks
    spilled = None  # name -> SpilledLayers, once the first batch shows the layers are too large
    layers = []
    nonfinite = []
    starts = range(0, n, ROWWISE_BATCH)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=f"{model.name} batches", leave=False)
    for b, start in enumerate(starts):
        pos = [0]

        def on_layer(layer, features, b=b):
            if b == 0:
                layers.append(layer)
                nonfinite.append(0)
                for name in reducers:
                    parts[name].append([])
            elif pos[0] >= len(layers) or layers[pos[0]].name != layer.name:
                raise RuntimeError(f"{model.name}: layer {layer.name!r} came out of order in a batched pass")
            shared.observe(layer, features)
            outputs = [shared.reduce(red, features) for red in reducers.values()]
            for name, out in zip(reducers, outputs):
                if spilled is not None:
                    spilled[name].append(pos[0], out)
                else:
                    parts[name][pos[0]].append(out)
            nonfinite[pos[0] if b else len(layers) - 1] += _count_nonfinite(layer.name, features, outputs)
            pos[0] += 1

        model.run(stimuli[start:start + ROWWISE_BATCH], on_layer, progress=False)
        if b == 0 and n > ROWWISE_BATCH:
            spilled = _spill_if_large(parts, n)
    if spilled is not None:
        for name in reducers:
            results[name] = spilled[name]
    else:
        for name in reducers:
            results[name].extend(np.concatenate(blocks, axis=0) for blocks in parts[name])
            parts[name] = None
    rows.extend([layer.name, layer.index, layer.depth, layer.n_features, layer.module_type, n]
                for layer, n in zip(layers, nonfinite))


def _spill_if_large(parts, n_stimuli):
    """After the first batch: ``{name: SpilledLayers}`` holding the batch's rows when all
    stimuli's reduced layers would exceed :data:`REDUCED_MEMORY` (and the disk has room), else
    None (the rows stay in ``parts``)."""
    import logging
    import shutil

    from ._spill import SpilledLayers, spill_folder

    if any(np.ndim(blocks[0]) != 2 for layers in parts.values() for blocks in layers if blocks):
        return None  # (reductions of other shapes stay in memory)
    width = sum(int(np.shape(blocks[0])[1]) for layers in parts.values() for blocks in layers if blocks)
    need = 8 * n_stimuli * width
    if need <= REDUCED_MEMORY:
        return None
    folder = spill_folder()
    free = shutil.disk_usage(folder).free
    log = logging.getLogger(__name__)
    if need > 0.9 * free:
        log.warning("reduced layers of %d stimuli (up to %.1f GB) stay in memory: %.1f GB free under %s",
                    n_stimuli, need / 1e9, free / 1e9, folder)
        return None
    log.info("reduced layers of %d stimuli (up to %.1f GB) kept in temporary files under %s", n_stimuli, need / 1e9,
             folder)
    spilled = {}
    for name, layers in parts.items():
        store = spilled[name] = SpilledLayers(folder)
        for i, blocks in enumerate(layers):
            store.add_layer()
            for block in blocks:
                store.append(i, block)
            layers[i] = None
    return spilled


def layer_table(model: FeatureModel) -> pd.DataFrame:
    """The layers of a model: ``name, index, depth, n_features, module_type``, one row each.

    Torch models answer from a probe pass over two tiny images; other feature models are run
    on two small noise images.
    """
    if hasattr(model, "layers") and callable(model.layers):
        infos = model.layers()
    else:
        infos = []
        stim = np.random.default_rng(0).integers(0, 256, size=(2, 64, 64), dtype=np.uint8)
        model.run(stim, lambda layer, _f: infos.append(layer), progress=False)
    return pd.DataFrame([[i.name, i.index, i.depth, i.n_features, i.module_type] for i in infos],
                        columns=_LAYER_COLUMNS[:5])
