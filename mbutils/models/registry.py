"""The model zoo: every model of the paper by name, with its facts and a loader.

Examples
--------
>>> from mbutils.models import get_model_info, load_model
>>> get_model_info("xception").arch            # moved in current timm: an alias resolves it
'legacy_xception'
>>> model = load_model("resnet18", weights="random")   # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import socket
import urllib.parse
from importlib import resources

import pandas as pd

from . import _sources
from ._sources import WeightsUnavailableError

__all__ = [
    "ModelInfo",
    "MODELS",
    "SOURCES",
    "WeightsUnavailableError",
    "get_model_info",
    "list_models",
    "load_model",
    "resolve_name",
]

#: model sources and how their models are built
SOURCES = ("torchvision", "timm", "taskonomy", "efficientnet_lite", "baseline")
TRAIN_TYPES = ("trained", "random")


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Facts about one model of the zoo.

    Attributes
    ----------
    name : str
        Registry name (unique).
    source : str
        One of :data:`SOURCES`.
    display_name : str
        Name used in figures (from the paper's typology).
    model_class : str
        ``"Convolutional"``, ``"Transformer"``, ``"MLP-Mixer"`` or ``"Baseline"``.
    train_types : tuple of str
        Variants that exist: ``"trained"`` and/or ``"random"``.
    task : str
        Training task (``"imagenet"``, ``"detection"``, ``"segmentation"``, ``"video"``, a
        Taskonomy task name, or ``"baseline"``); the paper's labels are kept as they are.
    task_cluster : str
        Taskonomy cluster (``2D``, ``3D``, ``Geometric``, ``Semantic``, ``Other``, ``Random``).
    n_parameters : int
        Number of parameters (0 for baselines).
    imagenet_top1 : float
        ImageNet top-1 accuracy in % of the trained variant where known, else NaN.
    input_size : int
        Side of the square input in pixels.
    mean, std : tuple of float
        Per-channel normalisation on 0..1 pixels.
    interpolation : str
        Resize interpolation.
    arch : str
        Name of the architecture in its library (e.g. timm's ``legacy_xception``).
    aliases : tuple of str
        Other names that resolve to this model.
    description, train_data : str
    """

    name: str
    source: str
    display_name: str
    model_class: str
    train_types: tuple
    task: str
    task_cluster: str
    n_parameters: int
    imagenet_top1: float
    input_size: int
    mean: tuple
    std: tuple
    interpolation: str
    arch: str
    aliases: tuple = ()
    description: str = ""
    train_data: str = ""

    @property
    def task_cluster4(self) -> str:
        """The paper's 4 clusters: the lone 'Other' task (denoising) joins '2D'."""
        return "2D" if self.task_cluster == "Other" else self.task_cluster


def _floats(text) -> tuple:
    return tuple(float(v) for v in str(text).split())


@functools.lru_cache(maxsize=1)
def _table_models() -> dict:
    with resources.files(__package__).joinpath("model_table.csv").open("r") as fh:
        table = pd.read_csv(fh, keep_default_na=False, na_values={"imagenet_top1": [""]})
    out = {}
    for r in table.itertuples(index=False):
        out[r.name] = ModelInfo(
            name=r.name,
            source=r.source,
            display_name=r.display_name,
            model_class=r.model_class,
            train_types=tuple(str(r.train_types).split()),
            task=r.task,
            task_cluster=r.task_cluster,
            n_parameters=int(r.n_parameters),
            imagenet_top1=float(r.imagenet_top1),
            input_size=int(r.input_size),
            mean=_floats(r.mean),
            std=_floats(r.std),
            interpolation=r.interpolation,
            arch=r.arch,
            aliases=tuple(str(r.aliases).split()),
            description=r.description,
            train_data=r.train_data,
        )
    return out


def _baselines():
    """(BASELINE_MODELS, BASELINE_INFO) from mbutils.models.baselines, or empty when absent."""
    try:
        mod = importlib.import_module(f"{__package__}.baselines")
    except ImportError:
        return {}, {}
    return getattr(mod, "BASELINE_MODELS", {}), getattr(mod, "BASELINE_INFO", {})


#: the registry: name -> ModelInfo (baselines join when mbutils.models.baselines exists)
MODELS: dict = {}


def _all_models() -> dict:
    if not MODELS:
        MODELS.update(_table_models())
    classes, infos = _baselines()
    for name in classes:
        if name in MODELS:
            continue
        meta = infos.get(name, {})
        MODELS[name] = ModelInfo(
            name=name, source="baseline", display_name=meta.get("display_name", name),
            model_class="Baseline", train_types=("random",), task="baseline", task_cluster="Baseline",
            n_parameters=0, imagenet_top1=float("nan"), input_size=0, mean=(), std=(),
            interpolation="", arch=name, aliases=(), description=meta.get("description", ""),
        )
    return MODELS


def _aliases(models) -> dict:
    out = {}
    for info in models.values():
        for a in info.aliases:
            out.setdefault(a, info.name)
        out.setdefault(info.name.replace("-", "_").lower(), info.name)
    return out


def resolve_name(name: str) -> str:
    """Return the registry name for ``name`` or an alias of it.

    Raises
    ------
    ValueError
        For an unknown name; the message lists close matches.
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__} {name!r}")
    models = _all_models()
    if name in models:
        return name
    aliases = _aliases(models)
    for cand in (name, name.strip().lower(), name.strip().lower().replace("-", "_")):
        if cand in models:
            return cand
        if cand in aliases:
            return aliases[cand]
    choices = sorted(set(models) | set(aliases))
    close = difflib.get_close_matches(name.lower(), choices, n=6, cutoff=0.5)
    hint = f"close matches: {', '.join(close)}" if close else "no close match"
    raise ValueError(
        f"unknown model {name!r} ({hint}); see mbutils.models.list_models() or `mbutils models` "
        f"for the {len(models)} valid names"
    )


def get_model_info(name: str) -> ModelInfo:
    """Return the :class:`ModelInfo` of a model (name or alias)."""
    return _all_models()[resolve_name(name)]


def _available(info: ModelInfo, weights: str) -> bool:
    if weights not in info.train_types:
        return False
    if weights == "random" or info.source == "baseline":
        return True
    return _sources.trained_available(info.source, info.arch)


def list_models(source: str | None = None, available: bool = False) -> pd.DataFrame:
    """Table of the zoo, one row per model.

    Parameters
    ----------
    source : str, optional
        Keep one source (see :data:`SOURCES`).
    available : bool
        Keep only models with at least one variant that can run on this machine now (trained
        weights in a local cache or a package, or a random variant).

    Returns
    -------
    pandas.DataFrame
        Columns ``name, source, display_name, model_class, task, task_cluster, train_types,
        n_parameters, imagenet_top1, input_size, arch, trained_available, random_available``.
    """
    if source is not None and source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {list(SOURCES)}")
    rows = []
    for info in _all_models().values():
        if source is not None and info.source != source:
            continue
        rows.append(dict(
            name=info.name, source=info.source, display_name=info.display_name,
            model_class=info.model_class, task=info.task, task_cluster=info.task_cluster,
            train_types=" ".join(info.train_types), n_parameters=info.n_parameters,
            imagenet_top1=info.imagenet_top1, input_size=info.input_size, arch=info.arch,
            trained_available=_available(info, "trained"), random_available=_available(info, "random"),
        ))
    df = pd.DataFrame(rows)
    if available and len(df):
        df = df[df.trained_available | df.random_available]
    return df.reset_index(drop=True)


def _network_reachable(url: str, timeout: float = 3.0) -> bool:
    host = urllib.parse.urlparse(url if "://" in url else f"https://huggingface.co/{url}").hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def load_model(name: str, weights: str = "trained", device=None, **params):
    """Build a model of the zoo as a :class:`~mbutils.models.FeatureModel`.

    Parameters
    ----------
    name : str
        Registry name or alias.
    weights : {"trained", "random"}
        ``"trained"``: the library's trained weights, from a local cache or package (offline:
        a :class:`WeightsUnavailableError` within seconds when they are missing).
        ``"random"``: the architecture's own initialiser after
        ``torch.manual_seed(mbutils.get_config().seed)``.
    device : str, optional
        ``"cpu"``, ``"cuda"`` or ``"auto"``; default from ``mbutils.get_config()``.
    **params
        Baselines: passed to their constructor. Video models: ``clip_length`` (default 1).

    Returns
    -------
    FeatureModel
    """
    import mbutils

    info = get_model_info(name)
    if weights not in TRAIN_TYPES:
        raise ValueError(f"weights={weights!r}; expected 'trained' or 'random'")
    if weights not in info.train_types:
        raise ValueError(
            f"model {info.name!r} has no {weights!r} variant; available: {list(info.train_types)}")
    cfg = mbutils.get_config()
    if info.source == "baseline":
        cls = _baselines()[0][info.name]
        return cls(weights=weights, device=device, **params)

    import torch

    from ._torch import InputTransform, TorchFeatureModel

    trained = weights == "trained"
    offline = cfg.offline
    if trained and not offline:
        path, url, _how = _sources.weights_location(info.source, info.arch)
        if path is None and url and not _network_reachable(url):
            offline = True  # no network: fail fast with the same clear message
    torch.manual_seed(cfg.seed)
    try:
        module = _sources.build_module(info.source, info.arch, trained=trained, offline=offline)
    except WeightsUnavailableError:
        raise
    except (OSError, ConnectionError) as err:
        if not trained:
            raise
        _p, _u, how = _sources.weights_location(info.source, info.arch)
        raise WeightsUnavailableError(
            f"could not fetch trained weights for {info.name!r} ({info.source}): {err}. To get them: {how}"
        ) from err
    transform = InputTransform(info.input_size, info.mean, info.std, info.interpolation)
    kind = "image"
    if info.source == "torchvision":
        k = _sources.tv_kind(info.arch)
        kind = {"detection": "detection", "video": "video"}.get(k, "image")
    return TorchFeatureModel(
        module, name=info.name, weights=weights, transform=transform, device=device,
        input_kind=kind, seed=None if trained else cfg.seed, clip_length=params.pop("clip_length", 1),
    )
