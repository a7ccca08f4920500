"""The model zoo: every model of the paper by name, with its facts and a loader; models of
your own by :func:`register_model` or by a name spec.

Names resolve in this order: a registry name (zoo, baseline or registered), an alias, then a
spec: ``"timm:<timm name>"`` (any timm model) or ``"package.module:callable"`` (a factory in
an importable module).

Examples
--------
>>> from mbutils.models import get_model_info, load_model
>>> get_model_info("xception").arch            # moved in current timm: an alias resolves it
'legacy_xception'
>>> get_model_info("timm:resnest50d").name     # a timm spec of a zoo model is the zoo model
'resnest50d'
>>> model = load_model("resnet18", weights="random")   # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import logging
import re
import socket
import urllib.parse
from collections.abc import Mapping
from importlib import resources

import pandas as pd

from ..constants import TRAIN_TYPES
from . import _sources
from ._sources import IMAGENET_MEAN, IMAGENET_STD, WeightsUnavailableError

__all__ = [
    "ModelInfo",
    "MODELS",
    "SOURCES",
    "WeightsUnavailableError",
    "available_weights",
    "default_weights",
    "get_model_info",
    "list_models",
    "load_model",
    "register_model",
    "resolve_name",
    "unregister_model",
]

_log = logging.getLogger(__name__)

#: model sources and how their models are built (``"user"``: :func:`register_model` and
#: ``"package.module:callable"`` specs)
SOURCES = ("torchvision", "timm", "taskonomy", "efficientnet_lite", "baseline", "user")

#: prefix of the timm spec, ``"timm:<timm name>"``
TIMM_PREFIX = "timm:"

#: preprocessing of a user model given none: ImageNet's
DEFAULT_PREPROCESS = {"input_size": 224, "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "interpolation": "bilinear"}

#: ModelInfo fields that :func:`register_model` takes as ``**facts``
USER_FACTS = ("task_cluster", "n_parameters", "imagenet_top1", "description", "train_data")


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Facts about one model (of the zoo, registered, or named by a spec).

    Attributes
    ----------
    name : str
        Registry name (unique), or the canonical spec (``"timm:convnext_tiny"``).
    source : str
        One of :data:`SOURCES`.
    display_name : str
        Name used in figures (from the paper's typology for the zoo).
    model_class : str
        ``"Convolutional"``, ``"Transformer"``, ``"MLP-Mixer"`` or ``"Baseline"``; ``""`` where
        unknown (``timm:`` specs).
    train_types : tuple of str
        Variants that exist: ``"trained"`` and/or ``"random"``.
    task : str
        Training task (``"imagenet"``, ``"detection"``, ``"segmentation"``, ``"video"``, a
        Taskonomy task name, or ``"baseline"``; ``""`` where unknown). torchvision models:
        the library's sub-package (detection, segmentation, video) or ``"imagenet"``.
    task_cluster : str
        Taskonomy cluster (``2D``, ``3D``, ``Geometric``, ``Semantic``, ``Other``, ``Random``).
    n_parameters : int
        Number of parameters of the trained network (torchvision: its weights' ``num_params``;
        others: counted on the built module); 0 for baselines and where unknown.
    imagenet_top1 : float
        ImageNet top-1 accuracy in % of the trained variant where known, else NaN.
    input_size : int
        Side of the square input in pixels.
    mean, std : tuple of float
        Per-channel normalisation on 0..1 pixels.
    interpolation : str
        Resize interpolation.
    arch : str
        Name of the architecture in its library (e.g. timm's ``legacy_xception``); for
        registered models the factory's qualified name, for callable specs the spec.
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


#: the registry: name -> ModelInfo (zoo table, baselines, then registered models)
MODELS: dict = {}

#: registered models: name -> (factory, preprocess spec dict)
_USER: dict = {}


def _all_models() -> dict:
    if not any(info.source != "user" for info in MODELS.values()):
        user = {n: i for n, i in MODELS.items() if i.source == "user"}
        MODELS.clear()
        MODELS.update(_table_models())
        MODELS.update(user)
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


# -- preprocessing specs ----------------------------------------------------------------------
def _preprocess_spec(preprocess, owner: str) -> dict:
    """Validate a preprocessing spec; return ``{"input_size", "mean", "std", "interpolation"}``.

    ``preprocess``: None (ImageNet's, :data:`DEFAULT_PREPROCESS`), a dict with some of those
    keys (the others from :data:`DEFAULT_PREPROCESS`), or an object with the attributes of
    :class:`~mbutils.models._torch.InputTransform` (``size``, ``mean``, ``std``,
    ``interpolation``). ``input_size``: an int, or a shape ending in two equal sides such as
    timm's ``(3, 224, 224)``.
    """
    if preprocess is None:
        return dict(DEFAULT_PREPROCESS)
    if not isinstance(preprocess, Mapping):
        if all(hasattr(preprocess, k) for k in ("size", "mean", "std", "interpolation")):
            preprocess = {"input_size": preprocess.size, "mean": preprocess.mean, "std": preprocess.std,
                          "interpolation": preprocess.interpolation}
        else:
            raise TypeError(
                f"preprocess of {owner!r} must be None, a dict with keys {sorted(DEFAULT_PREPROCESS)} or an "
                f"InputTransform, got {type(preprocess).__name__}")
    unknown = sorted(set(preprocess) - set(DEFAULT_PREPROCESS))
    if unknown:
        raise ValueError(f"preprocess of {owner!r} has unknown keys {unknown}; expected some of "
                         f"{sorted(DEFAULT_PREPROCESS)}")
    spec = dict(DEFAULT_PREPROCESS, **preprocess)
    size = spec["input_size"]
    if not isinstance(size, int):
        dims = tuple(size) if isinstance(size, (tuple, list)) else ()
        if len(dims) < 2 or dims[-1] != dims[-2]:
            raise ValueError(f"preprocess of {owner!r}: input_size must be an int or a shape ending in two "
                             f"equal sides (square input), got {size!r}")
        size = dims[-1]
    if int(size) != size or int(size) < 1:
        raise ValueError(f"preprocess of {owner!r}: input_size must be a positive int, got {size!r}")
    out = {"input_size": int(size)}
    for key in ("mean", "std"):
        vals = (spec[key],) * 3 if isinstance(spec[key], (int, float)) else tuple(spec[key])
        if len(vals) == 1:
            vals = vals * 3
        if len(vals) != 3:
            raise ValueError(f"preprocess of {owner!r}: {key} must be one or three numbers, got {spec[key]!r}")
        out[key] = tuple(float(v) for v in vals)
    if min(out["std"]) <= 0:
        raise ValueError(f"preprocess of {owner!r}: std must be positive, got {out['std']}")
    if spec["interpolation"] not in ("bilinear", "bicubic"):
        raise ValueError(f"preprocess of {owner!r}: interpolation must be 'bilinear' or 'bicubic', "
                         f"got {spec['interpolation']!r}")
    out["interpolation"] = spec["interpolation"]
    return out


def _train_types(value, owner: str) -> tuple:
    types = (value,) if isinstance(value, str) else tuple(value)
    if not types or len(set(types)) != len(types) or not set(types) <= set(TRAIN_TYPES):
        raise ValueError(f"train_types of {owner!r} must be distinct values of {list(TRAIN_TYPES)}, "
                         f"got {value!r}")
    return types


def _user_info(name, factory, preprocess, train_types, display_name, model_class, task, facts, arch) -> ModelInfo:
    unknown = sorted(set(facts) - set(USER_FACTS))
    if unknown:
        raise TypeError(f"unknown facts {unknown} for model {name!r}; expected some of {list(USER_FACTS)} "
                        "(preprocessing goes in preprocess=)")
    pre = _preprocess_spec(preprocess, name)
    return ModelInfo(
        name=name, source="user", display_name=display_name or name, model_class=model_class,
        train_types=_train_types(train_types, name), task=task, task_cluster=facts.get("task_cluster", ""),
        n_parameters=int(facts.get("n_parameters", 0)),
        imagenet_top1=float(facts.get("imagenet_top1", float("nan"))),
        input_size=pre["input_size"], mean=pre["mean"], std=pre["std"], interpolation=pre["interpolation"],
        arch=arch, aliases=(), description=facts.get("description", ""), train_data=facts.get("train_data", ""),
    )


def register_model(name: str, factory, preprocess=None, train_types=("trained",), display_name=None,
                   model_class="Convolutional", task="", **facts) -> ModelInfo:
    """Add a model of your own to the registry.

    It is then listed by :func:`list_models` (source ``"user"``) and built by
    :func:`load_model`, extracted and scored like any model of the zoo, for the rest of the
    Python session.

    Parameters
    ----------
    name : str
        Registry name: not a name or alias of the zoo (a ``ValueError``), no ``":"`` (reserved
        for specs). Registering a name again replaces the earlier model, with a logged warning.
    factory : callable
        ``factory(weights: str, **params) -> torch.nn.Module`` (or a ready
        :class:`~mbutils.models.FeatureModel`), called by :func:`load_model` with one of
        ``train_types``; before a ``"random"`` variant is built, the torch RNG is seeded with
        ``mbutils.get_config().seed``. The module takes float tensors of shape
        (n_stimuli, 3, input_size, input_size); every leaf module's output with the stimuli as
        first dimension is a layer.
    preprocess : dict, optional
        ``{"input_size": 224, "mean": (r, g, b), "std": (r, g, b), "interpolation":
        "bilinear"}`` (keys left out take these values; mean and std apply to 0..1 pixels;
        interpolation ``"bilinear"`` or ``"bicubic"``). None: ImageNet's, as above.
    train_types : sequence of {"trained", "random"}
        Variants that ``factory`` builds.
    display_name : str, optional
        Name for figures (default ``name``).
    model_class : str
    task : str
    **facts
        More :class:`ModelInfo` fields: ``task_cluster``, ``n_parameters`` (0 when not given:
        unknown), ``imagenet_top1``, ``description``, ``train_data``.

    Returns
    -------
    ModelInfo
        The registered facts (``source="user"``, ``arch``: the factory's qualified name).

    Examples
    --------
    >>> import torch
    >>> from mbutils.models import register_model, load_model
    >>> def tiny(weights):
    ...     return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU())
    >>> info = register_model("tiny", tiny, train_types=("random",))
    >>> load_model("tiny").weights
    'random'
    """
    if not isinstance(name, str) or not name or name != name.strip() or ":" in name:
        raise ValueError(f"model name must be a non-empty str without surrounding spaces or ':' "
                         f"(':' marks specs such as 'timm:<name>'), got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory of {name!r} must be callable (weights -> torch.nn.Module), "
                        f"got {type(factory).__name__}")
    models = _all_models()
    zoo = {n: i for n, i in models.items() if i.source != "user"}
    if name in zoo or name in _aliases(zoo) or name.replace("-", "_").lower() in _aliases(zoo):
        raise ValueError(f"{name!r} names a model of the zoo ({_aliases(zoo).get(name, name)!r}); "
                         "choose another name for your model")
    arch = f"{getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', type(factory).__name__)}"
    info = _user_info(name, factory, preprocess, train_types, display_name, model_class, task, facts,
                      arch.lstrip("."))
    if name in _USER:
        _log.warning("model %r was registered before; the new registration replaces it", name)
    _USER[name] = factory
    models[name] = info
    return info


def unregister_model(name: str) -> None:
    """Remove a model added by :func:`register_model` (a ``ValueError`` for other names)."""
    if name not in _USER:
        raise ValueError(f"{name!r} is not a registered model; registered: {sorted(_USER)}")
    del _USER[name]
    MODELS.pop(name, None)


# -- specs ------------------------------------------------------------------------------------
_MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@functools.lru_cache(maxsize=256)
def _timm_spec_info(arch: str) -> ModelInfo:
    """Facts of ``timm:<arch>`` from timm: its pretrained configuration and a build on ``meta``."""
    import timm
    import torch

    if not arch or not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=6, cutoff=0.6)
        hint = f"close matches: {', '.join(close)}" if close else "no close match"
        raise ValueError(f"unknown timm model {arch!r} in spec {TIMM_PREFIX + arch!r} ({hint}); "
                         "see timm.list_models()")
    try:
        cfg = _sources.timm_pretrained_cfg(arch)
    except RuntimeError as err:  # an unknown pretrained tag
        raise ValueError(f"spec {TIMM_PREFIX + arch!r}: {err}") from None
    size, mean, std, interp = _sources.default_transform("timm", arch)
    get = functools.partial(_sources._cfg_get, cfg)
    has_weights = bool(get("hf_hub_id") or get("url") or get("file"))
    try:
        with torch.device("meta"):
            n_params = int(sum(p.numel() for p in timm.create_model(arch, pretrained=False).parameters()))
    except Exception:  # noqa: BLE001 - a count is a nicety; building for real happens in load_model
        n_params = 0
    tag = get("tag") or ""
    return ModelInfo(
        name=TIMM_PREFIX + arch, source="timm", display_name=arch, model_class="",
        train_types=("trained", "random") if has_weights else ("random",), task="", task_cluster="",
        n_parameters=n_params, imagenet_top1=float("nan"), input_size=size, mean=mean, std=std,
        interpolation=interp, arch=arch, aliases=(),
        description=f"timm model {arch}" + (f" (pretrained tag {tag})" if tag else ""), train_data=tag,
    )


def _import_callable(spec: str):
    module_name, _, attr = spec.partition(":")
    module_name, attr = module_name.strip(), attr.strip()
    if not _MODULE_PATH.fullmatch(module_name) or not _MODULE_PATH.fullmatch(attr):
        raise ValueError(f"model spec {spec!r} is neither a model name nor 'timm:<timm name>' nor "
                         "'package.module:callable'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"model spec {spec!r}: cannot import module {module_name!r} ({err}); the module must "
                         "be importable (on PYTHONPATH or installed)") from err
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"model spec {spec!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"model spec {spec!r}: {module_name}.{attr} is a {type(obj).__name__}, not a callable "
                         "factory (weights -> torch.nn.Module)")
    return f"{module_name}:{attr}", obj


def _callable_spec_info(spec: str, factory) -> ModelInfo:
    return _user_info(
        spec, factory, getattr(factory, "preprocess", None), getattr(factory, "train_types", TRAIN_TYPES),
        getattr(factory, "display_name", None) or spec.partition(":")[2], getattr(factory, "model_class", "Convolutional"),
        getattr(factory, "task", ""), {}, spec,
    )


def _zoo_timm_model(arch: str, models) -> str | None:
    for info in models.values():
        if info.source == "timm" and arch in (info.arch, info.name):
            return info.name
    return None


def _resolve_spec(name: str):
    """``(registry or canonical spec name, ModelInfo, factory or None)`` for a name with ``":"``."""
    models = _all_models()
    if name.startswith(TIMM_PREFIX):
        arch = name[len(TIMM_PREFIX):].strip()
        zoo = _zoo_timm_model(arch, models)
        if zoo is not None:
            return zoo, models[zoo], None
        info = _timm_spec_info(arch)
        return info.name, info, None
    spec, factory = _import_callable(name)
    return spec, _callable_spec_info(spec, factory), factory


def resolve_name(name: str) -> str:
    """Return the registry name for ``name``, an alias of it, or a spec.

    Parameters
    ----------
    name : str
        A registry name or alias (``"resnet18"``, ``"ResNet18"``, ``"timm/inception_v3"``),
        ``"timm:<timm name>"`` or ``"package.module:callable"``.

    Returns
    -------
    str
        The registry name; for a spec, the canonical spec (``"timm:convnext_tiny"``), or the
        zoo name when the spec names a model of the zoo (``"timm:resnest50d"`` ->
        ``"resnest50d"``).

    Raises
    ------
    ValueError
        For an unknown name (the message lists close matches), an unknown timm model, or a
        module that cannot be imported or lacks the callable.
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
    if ":" in name:
        return _resolve_spec(name.strip())[0]
    choices = sorted(set(models) | set(aliases))
    close = difflib.get_close_matches(name.lower(), choices, n=6, cutoff=0.5)
    hint = f"close matches: {', '.join(close)}" if close else "no close match"
    raise ValueError(
        f"unknown model {name!r} ({hint}); see mbutils.models.list_models() or `mbutils models` "
        f"for the {len(models)} valid names, or use 'timm:<timm name>' or 'package.module:callable'"
    )


def _lookup(name: str):
    """``(ModelInfo, factory or None)``: the factory of registered models and callable specs."""
    key = resolve_name(name)
    models = _all_models()
    if key in models:
        return models[key], _USER.get(key)
    _key, info, factory = _resolve_spec(key)
    return info, factory


def get_model_info(name: str) -> ModelInfo:
    """Return the :class:`ModelInfo` of a model (name, alias or spec, see :func:`resolve_name`)."""
    return _lookup(name)[0]


def _available(info: ModelInfo, weights: str) -> bool:
    if weights not in info.train_types:
        return False
    if weights == "random" or info.source in ("baseline", "user"):
        return True
    return _sources.trained_available(info.source, info.arch)


def available_weights(name: str) -> tuple:
    """The variants of a model that can run on this machine now.

    Parameters
    ----------
    name : str
        Name, alias or spec.

    Returns
    -------
    tuple of str
        In the order of ``train_types``: ``"random"`` always (where it exists); ``"trained"``
        where the weights are in a local cache or a package (registered models: always).
    """
    info = get_model_info(name)
    return tuple(w for w in info.train_types if _available(info, w))


def _default_weights(info: ModelInfo) -> str:
    avail = [w for w in info.train_types if _available(info, w)]
    if "trained" in avail:
        return "trained"
    if avail:
        return avail[0]
    how = ""
    if "trained" in info.train_types and info.source not in ("baseline", "user"):
        how = f" To get them: {_sources.weights_location(info.source, info.arch)[2]}."
    raise WeightsUnavailableError(
        f"no variant of {info.name!r} can run on this machine: variants {list(info.train_types)}, "
        f"available here: none.{how}")


def default_weights(name: str) -> str:
    """The variant :func:`load_model` builds when ``weights`` is None.

    ``"trained"`` where the model has trained weights and they are on this machine, else the
    first variant of ``train_types`` that is (baselines: ``"random"``).

    Parameters
    ----------
    name : str
        Name, alias or spec.

    Returns
    -------
    str
        ``"trained"`` or ``"random"``.

    Raises
    ------
    WeightsUnavailableError
        When no variant can run here (a Taskonomy encoder without its weights).
    """
    return _default_weights(get_model_info(name))


def list_models(source: str | None = None, available: bool = False) -> pd.DataFrame:
    """Table of the registry (zoo, baselines, registered models), one row per model.

    Specs (``"timm:..."``, ``"package.module:callable"``) are resolved on demand, not listed.

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


def _variants_note(info: ModelInfo) -> str:
    avail = [w for w in info.train_types if _available(info, w)]
    note = f"Variants of {info.name!r}: {list(info.train_types)}; available here: {avail or 'none'}"
    return note + (f" (e.g. weights={avail[0]!r})." if avail else ".")


def load_model(name: str, weights: str | None = None, device=None, **params):
    """Build a model as a :class:`~mbutils.models.FeatureModel`.

    Parameters
    ----------
    name : str
        Registry name, alias or spec (``"timm:<timm name>"``, ``"package.module:callable"``;
        see :func:`resolve_name`).
    weights : {"trained", "random"}, optional
        ``"trained"``: the library's trained weights, from a local cache or package (offline:
        a :class:`WeightsUnavailableError` within seconds when they are missing, naming the
        variants available here). ``"random"``: the architecture's own initialiser after
        ``torch.manual_seed(mbutils.get_config().seed)``. None: :func:`default_weights`
        (trained where available here, else the first available variant).
    device : str, optional
        ``"cpu"``, ``"cuda"`` or ``"auto"``; default from ``mbutils.get_config()``.
    **params
        Baselines and registered factories: passed to them. Video models: ``clip_length``
        (default 1).

    Returns
    -------
    FeatureModel
        Its ``weights`` attribute is the variant built (never None).
    """
    import mbutils

    info, factory = _lookup(name)
    if weights is None:
        weights = _default_weights(info)
    if weights not in TRAIN_TYPES:
        raise ValueError(f"weights={weights!r}; expected one of {list(TRAIN_TYPES)} or None (the model's default)")
    if weights not in info.train_types:
        raise ValueError(f"model {info.name!r} has no {weights!r} variant; variants: {list(info.train_types)}, "
                         f"available here: {[w for w in info.train_types if _available(info, w)]}")
    cfg = mbutils.get_config()
    if info.source == "baseline":
        cls = _baselines()[0][info.name]
        return cls(weights=weights, device=device, **params)

    import torch

    from ._torch import InputTransform, TorchFeatureModel

    trained = weights == "trained"
    transform = InputTransform(info.input_size, info.mean, info.std, info.interpolation)
    if info.source == "user":
        return _build_user(info, factory, weights, transform, device, cfg.seed, params)
    offline = cfg.offline
    if trained and not offline:
        path, url, _how = _sources.weights_location(info.source, info.arch)
        if path is None and url and not _network_reachable(url):
            offline = True  # no network: fail fast with the same clear message
    torch.manual_seed(cfg.seed)
    try:
        module = _sources.build_module(info.source, info.arch, trained=trained, offline=offline)
    except WeightsUnavailableError as err:
        raise WeightsUnavailableError(f"{err} {_variants_note(info)}") from None
    except (OSError, ConnectionError) as err:
        if not trained:
            raise
        _p, _u, how = _sources.weights_location(info.source, info.arch)
        raise WeightsUnavailableError(
            f"could not fetch trained weights for {info.name!r} ({info.source}): {err}. To get them: {how}. "
            f"{_variants_note(info)}"
        ) from err
    kind = "image"
    if info.source == "torchvision":
        k = _sources.tv_kind(info.arch)
        kind = {"detection": "detection", "video": "video"}.get(k, "image")
    return TorchFeatureModel(
        module, name=info.name, weights=weights, transform=transform, device=device,
        input_kind=kind, seed=None if trained else cfg.seed, clip_length=params.pop("clip_length", 1),
    )


def _build_user(info, factory, weights, transform, device, seed, params):
    import torch

    from .base import FeatureModel
    from ._torch import TorchFeatureModel

    torch.manual_seed(seed)
    built = factory(weights, **params)
    if isinstance(built, FeatureModel):
        if not built.name:
            built.name = info.name
        return built
    if not isinstance(built, torch.nn.Module):
        raise TypeError(f"the factory of {info.name!r} returned a {type(built).__name__}; expected a "
                        "torch.nn.Module or a FeatureModel")
    return TorchFeatureModel(built, name=info.name, weights=weights, transform=transform, device=device,
                             seed=None if weights == "trained" else seed, fingerprint=True)
