"""One object for the package's global settings.

Examples
--------
>>> import mbutils
>>> mbutils.get_config().progress
True
>>> with mbutils.config_context(progress=False):
...     mbutils.get_config().progress
False
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

__all__ = ["Config", "get_config", "set_config", "config_context", "TORCH_ENV", "torch_env"]

#: environment for processes that run torch models on the CPU, set by the ``mbutils`` command
#: and by the notebook sweep before torch starts (a value already in the environment wins):
#: ``THP_MEM_ALLOC_ENABLE=1`` makes torch back large CPU tensors with transparent huge pages,
#: which removes most page faults of a forward pass over many stimuli (measured here: 1.1
#: million minor faults and ~4 s of system time per random ResNet-18 pass over 118 images,
#: down to ~40 thousand). Export it yourself in scripts that import torch before mbutils.
TORCH_ENV = {"THP_MEM_ALLOC_ENABLE": "1"}


def torch_env() -> dict:
    """:data:`TORCH_ENV`, with the values already in ``os.environ`` taking precedence."""
    return {k: os.environ.get(k, v) for k, v in TORCH_ENV.items()}


def _default_cache_dir() -> Path:
    env = os.environ.get("MBUTILS_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "mbutils"


@dataclasses.dataclass
class Config:
    """Global settings.

    Attributes
    ----------
    progress : bool
        Show tqdm progress bars on long work (env ``MBUTILS_PROGRESS=0`` turns them off).
    cache_dir : pathlib.Path
        Where reduced features and other derived results are cached (env ``MBUTILS_CACHE``).
    device : str
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"`` or ``"cuda"``.
    seed : int
        Default seed for random projections, splits and random model initialisation.
    offline : bool
        Never touch the network (env ``MBUTILS_OFFLINE=1``); missing weights or data fail fast.
    """

    progress: bool = dataclasses.field(
        default_factory=lambda: os.environ.get("MBUTILS_PROGRESS", "1") not in ("0", "false", "False")
    )
    cache_dir: Path = dataclasses.field(default_factory=_default_cache_dir)
    device: str = "auto"
    seed: int = 0
    offline: bool = dataclasses.field(
        default_factory=lambda: os.environ.get("MBUTILS_OFFLINE", "0") in ("1", "true", "True")
    )

    def resolved_device(self) -> str:
        """Return ``"cuda"`` or ``"cpu"`` for the ``device`` setting."""
        if self.device == "auto":
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device


_CONFIG = Config()
_VALID = {f.name for f in dataclasses.fields(Config)}


def get_config() -> Config:
    """Return the live global :class:`Config`."""
    return _CONFIG


def set_config(**kwargs) -> None:
    """Set global settings by name, e.g. ``set_config(progress=False)``."""
    for key, value in kwargs.items():
        if key not in _VALID:
            raise ValueError(f"unknown setting {key!r}; valid settings are {sorted(_VALID)}")
        if key == "device" and value not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device={value!r}; expected 'auto', 'cpu' or 'cuda'")
        if key == "cache_dir":
            value = Path(value)
        setattr(_CONFIG, key, value)


@contextlib.contextmanager
def config_context(**kwargs):
    """Temporarily change global settings inside a ``with`` block."""
    old = {k: getattr(_CONFIG, k) for k in kwargs if k in _VALID}
    set_config(**kwargs)
    try:
        yield _CONFIG
    finally:
        for k, v in old.items():
            setattr(_CONFIG, k, v)
