"""The model zoo and streaming layer-wise extraction.

- :func:`get_model_info`, :func:`list_models`, :func:`load_model`: the registry of the paper's
  models (torchvision, timm, Taskonomy, EfficientNet-Lite, non-neural baselines).
- :class:`FeatureModel`, :class:`LayerInfo`, :class:`KeepReducer`: the feature-model interface.
- :func:`extract`, :class:`FeatureSet`, :func:`layer_table`: one forward pass, every layer
  handed to reducers and freed at once, reduced results cached on disk.
"""
from .base import AffineLink, FeatureModel, KeepReducer, LayerInfo, check_stimuli
from .extraction import FeatureSet, extract, layer_table
from .registry import (
    MODELS,
    SOURCES,
    ModelInfo,
    WeightsUnavailableError,
    get_model_info,
    list_models,
    load_model,
    resolve_name,
)

__all__ = [
    "FeatureModel",
    "FeatureSet",
    "KeepReducer",
    "LayerInfo",
    "AffineLink",
    "MODELS",
    "ModelInfo",
    "SOURCES",
    "WeightsUnavailableError",
    "check_stimuli",
    "extract",
    "get_model_info",
    "layer_table",
    "list_models",
    "load_model",
    "resolve_name",
]
