"""mbutils: compare deep neural networks with mouse visual cortex.

An executable reproduction and extension of Conwell et al., NeurIPS 2021. Subpackages:

- :mod:`mbutils.data` -- neural datasets (Allen Brain Observatory, synthetic mouse, your own file)
- :mod:`mbutils.reliability` -- split-half reliability and noise ceilings
- :mod:`mbutils.models` -- the model zoo and streaming layer-wise extraction
- :mod:`mbutils.scoring` -- SRP-Ridge and RSA
- :mod:`mbutils.stats`, :mod:`mbutils.plots` -- statistics and figures

Heavy subpackages are imported lazily (``import mbutils`` stays fast).
"""
from __future__ import annotations

import importlib

from .config import Config, config_context, get_config, set_config

__version__ = "0.1.0"
__all__ = ["Config", "config_context", "get_config", "set_config", "__version__"]

_SUBMODULES = {"data", "reliability", "models", "reduction", "scoring", "stats", "plots", "sweep", "book", "claims", "cli", "caches"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'mbutils' has no attribute {name!r}")
