"""The model zoo and streaming layer-wise extraction.

- :func:`get_model_info`, :func:`list_models`, :func:`load_model`: the registry of the paper's
  models (torchvision, timm, Taskonomy, EfficientNet-Lite, non-neural baselines), any timm
  model as ``"timm:<name>"``, and models of your own (:func:`register_model`,
  ``"package.module:callable"``); :func:`default_weights`, :func:`available_weights`.
- :class:`FeatureModel`, :class:`LayerInfo`, :class:`KeepReducer`: the feature-model interface.
- :func:`extract`, :class:`FeatureSet`, :func:`layer_table`: one forward pass, every layer
  handed to reducers and freed at once, reduced results cached on disk;
  :func:`check_room` / :class:`NotEnoughMemoryError`: an extraction whose full layers cannot
  fit in free memory is refused before the forward pass.
"""
from .base import AffineLink, FeatureModel, KeepReducer, LayerInfo, check_stimuli
from .extraction import FeatureSet, NotEnoughMemoryError, check_room, extract, layer_table
from .registry import (
    MODELS,
    SOURCES,
    ModelInfo,
    WeightsUnavailableError,
    available_weights,
    default_weights,
    get_model_info,
    list_models,
    load_model,
    register_model,
    resolve_name,
    unregister_model,
)

__all__ = [
    "FeatureModel",
    "FeatureSet",
    "KeepReducer",
    "LayerInfo",
    "AffineLink",
    "MODELS",
    "ModelInfo",
    "NotEnoughMemoryError",
    "SOURCES",
    "WeightsUnavailableError",
    "available_weights",
    "check_room",
    "check_stimuli",
    "default_weights",
    "extract",
    "get_model_info",
    "layer_table",
    "list_models",
    "load_model",
    "register_model",
    "resolve_name",
    "unregister_model",
]
