"""Sweep configs: which models a sweep scores, with which settings.

A config is a YAML file (the packaged ones: ``smoke``, ``default``, ``paper`` in
``mbutils/configs/``); :func:`load_config` takes a path or a packaged config's name.

Examples
--------
>>> from mbutils.build import load_config
>>> cfg = load_config("smoke")
>>> cfg.name, cfg.models[0].key
('smoke', 'efficientnet_lite0__trained')
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import re
from importlib import resources
from pathlib import Path

from ..constants import TRAIN_TYPES

__all__ = ["ModelEntry", "SweepConfig", "CONFIGS", "default_jobs", "load_config", "resolve_models",
           "validate_config"]

#: the packaged sweep configs (``mbutils/configs/<name>.yml``)
CONFIGS = Path(str(resources.files("mbutils") / "configs"))

_CONFIG_KEYS = {
    "name": str,
    "description": str,
    "neurons": (int, type(None)),
    "seed": int,
    "models": list,
    "include_cached_trained": bool,
    "all_models": bool,
    "available_only": bool,
    "jobs": (int, type(None)),
    "parameters": dict,
    "score": dict,
    "cluster": (dict, type(None)),
}
_ENTRY_KEYS = {"model", "weights"}
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One scored model of a sweep: a model name (registry name, ``timm:<name>`` or
    ``package.module:callable``) and its weights."""

    model: str
    weights: str = "trained"

    @property
    def key(self) -> str:
        """Folder / page name ``<model>__<weights>`` (characters other than letters, digits,
        ``-``, ``_`` and ``.`` of a spec such as ``pkg.mod:make`` become ``-``)."""
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in self.model)
        return f"{safe}__{self.weights}"


@dataclasses.dataclass
class SweepConfig:
    """A validated sweep config (see ``configs/*.yml``).

    Attributes
    ----------
    name : str
        Config name (``smoke``, ``default``, ``paper``).
    description : str
        One line shown in the book.
    neurons : int or None
        Neuron count of the synthetic mouse generated when the default dataset is missing.
    seed : int
        Seed of the synthetic mouse.
    models : list of ModelEntry
        Models to score, in order.
    include_cached_trained : bool
        Also score every model whose trained weights are already in the local caches.
    all_models : bool
        Also score every registered model with each of its train types.
    jobs : int or None
        Parallel notebooks (default: the CPU count).
    parameters : dict
        Notebook parameters (sizes, e.g. ``n_bootstrap``); each notebook gets those it declares.
    score : dict
        Keyword arguments for :func:`mbutils.scoring.score_model`, but for ``model_params``:
        model name -> keyword arguments its model is built with (the ``paper`` config's
        ``{"random_fourier": {"n_draws": 600}}``; see :func:`mbutils.build.score_entry`).
    cluster : dict or None
        A batch cluster to run the models on (``type: slurm|pbs|sge``, ``cores``, ``memory``,
        ``jobs``, ``queue``, ``walltime``, ...; see :func:`mbutils.build.sweep_client`); None runs
        them on this machine.
    path : pathlib.Path or None
        File the config was read from.
    """

    name: str
    models: list
    description: str = ""
    neurons: int | None = None
    seed: int = 0
    include_cached_trained: bool = False
    all_models: bool = False
    available_only: bool = False
    jobs: int | None = None
    parameters: dict = dataclasses.field(default_factory=dict)
    score: dict = dataclasses.field(default_factory=dict)
    cluster: dict | None = None
    path: Path | None = None


def _valid_model_names():
    from ..models import list_models

    return list(list_models()["name"])


def _is_spec(name) -> bool:
    """``timm:<name>`` or ``package.module:callable``: a model outside the registry's table."""
    return isinstance(name, str) and ":" in name


def _default_weights(name) -> str:
    """A config entry without weights: the model's trained variant where it has one."""
    from ..models import get_model_info

    types = get_model_info(name).train_types
    return "trained" if "trained" in types else types[0]


def _train_types(value) -> tuple:
    return tuple(value.split()) if isinstance(value, str) else tuple(value)


def _cached_trained_names():
    """Registry names whose trained weights are on this machine (cache or package)."""
    from ..models import list_models

    table = list_models()
    if "trained_available" in table.columns:
        return list(table.loc[table["trained_available"].astype(bool), "name"])
    return []


def _unknown(kind, value, valid):
    close = difflib.get_close_matches(str(value), [str(v) for v in valid], n=3)
    hint = f" Did you mean {close}?" if close else ""
    return ValueError(f"unknown {kind} {value!r}.{hint} Valid {kind}s: {sorted(map(str, valid))}")


def validate_config(raw, valid_models=None, source="config") -> SweepConfig:
    """Check a config mapping and return a :class:`SweepConfig`.

    Parameters
    ----------
    raw : dict
        Parsed YAML.
    valid_models : collection of str, optional
        Registry names accepted in ``models`` (default: ``mbutils.models.list_models()``).
    source : str
        Name of the config in error messages.

    Raises
    ------
    ValueError
        Unknown keys, unknown model names (listing the valid ones), bad weights or types.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: expected a mapping of settings, got {type(raw).__name__}: {raw!r}")
    for key, value in raw.items():
        if key not in _CONFIG_KEYS:
            raise _unknown("config key", key, _CONFIG_KEYS)
        if not isinstance(value, _CONFIG_KEYS[key]) or (isinstance(value, bool) and key in ("neurons", "seed", "jobs")):
            raise ValueError(f"{source}: {key}={value!r} has the wrong type; expected {_CONFIG_KEYS[key]}")
    for key in ("name", "models"):
        if key not in raw:
            raise ValueError(f"{source}: missing required key {key!r}")
    if not _SAFE_NAME.fullmatch(raw["name"]):
        raise ValueError(f"{source}: name={raw['name']!r}; a config name is a folder name (letters, digits, '-', '_', "
                         "'.'; not starting with '.'), since results/<name> holds its results")
    if raw.get("jobs") is not None and raw["jobs"] < 1:
        raise ValueError(f"{source}: jobs={raw['jobs']!r}; expected a positive integer")
    if raw.get("neurons") is not None and raw["neurons"] < 1:
        raise ValueError(f"{source}: neurons={raw['neurons']!r}; expected a positive integer")
    if valid_models is None:
        valid_models = _valid_model_names()
    valid_models = set(valid_models)
    entries = []
    for item in raw["models"]:
        if isinstance(item, str):
            item = {"model": item}
        if not isinstance(item, dict):
            raise ValueError(f"{source}: model entry {item!r}; expected a name or a mapping with 'model' and 'weights'")
        for key in item:
            if key not in _ENTRY_KEYS:
                raise _unknown("model entry key", key, _ENTRY_KEYS)
        if "model" not in item:
            raise ValueError(f"{source}: model entry {item!r} has no 'model' key")
        name = item["model"]
        if _is_spec(name):  # imported when the model is built; checked here for its form
            if name.count(":") != 1 or not all(name.split(":")):
                raise ValueError(f"{source}: model {name!r}; a model outside the registry is named "
                                 "'timm:<timm name>' or 'package.module:callable'")
        elif name not in valid_models:
            raise _unknown("model", name, valid_models)
        weights = item.get("weights")
        if weights is None:
            weights = "random" if _is_spec(name) and not name.startswith("timm:") else _default_weights(name)
        for w in [weights] if isinstance(weights, str) else list(weights):
            if w not in TRAIN_TYPES:
                raise ValueError(f"{source}: weights={w!r} for model {name!r}; expected one of {list(TRAIN_TYPES)}")
            entry = ModelEntry(name, w)
            if entry not in entries:
                entries.append(entry)
    if raw.get("cluster") is not None:
        from ._cluster import _check_section

        try:
            _check_section(raw["cluster"])
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None
    model_params = (raw.get("score") or {}).get("model_params")
    if model_params is not None:
        if not isinstance(model_params, dict):
            raise ValueError(f"{source}: score.model_params={model_params!r}; expected a mapping of model names to "
                             "the keyword arguments their model is built with")
        for name, params in model_params.items():
            if not _is_spec(name) and name not in valid_models:
                raise _unknown("model", name, valid_models)
            if not isinstance(params, dict):
                raise ValueError(f"{source}: score.model_params.{name}={params!r}; expected a mapping of keyword "
                                 "arguments, such as {n_draws: 600}")
    kwargs = {k: v for k, v in raw.items() if k != "models"}
    return SweepConfig(models=entries, **kwargs)


def load_config(path, valid_models=None) -> SweepConfig:
    """Read and validate a sweep config YAML file.

    Parameters
    ----------
    path : str or pathlib.Path
        A YAML file (relative to the working directory), or the name of a packaged config
        (``smoke``, ``default``, ``paper``; see :data:`CONFIGS`).
    valid_models : collection of str, optional
        Accepted model names (default: the registry).

    Returns
    -------
    SweepConfig
    """
    import yaml

    path = Path(os.fspath(path)).expanduser()
    packaged = CONFIGS / f"{path.name}.yml"
    if not path.exists() and path.suffix == "" and len(path.parts) == 1 and packaged.exists():
        path = packaged
    if not path.is_file():
        have = sorted(p.stem for p in CONFIGS.glob("*.yml"))
        raise FileNotFoundError(f"sweep config {str(path)!r} not found; give a YAML file or a packaged config "
                                f"name: {have}")
    path = path.resolve()
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"sweep config {str(path)!r} is not valid YAML: {err}") from None
    cfg = validate_config(raw, valid_models=valid_models, source=str(path))
    cfg.path = path
    return cfg


def resolve_models(config: SweepConfig) -> list:
    """The config's models, plus the locally cached trained ones if ``include_cached_trained``."""
    entries = list(config.models)
    if config.all_models:
        from ..models import list_models

        table = list_models()
        names = list(table["name"]) if "name" in table.columns else list(table.index)
        types = list(table["train_types"]) if "train_types" in table.columns else [TRAIN_TYPES] * len(names)
        for i, (name, train_types) in enumerate(zip(names, types)):
            for w in _train_types(train_types):
                column = f"{w}_available"
                if config.available_only and column in table.columns and not bool(table[column].iloc[i]):
                    continue
                if ModelEntry(name, w) not in entries:
                    entries.append(ModelEntry(name, w))
    if config.include_cached_trained:
        for name in _cached_trained_names():
            entry = ModelEntry(name, "trained")
            if entry not in entries:
                entries.append(entry)
    return entries


def default_jobs() -> int:
    """Parallel notebooks by default: the usable CPU count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)
