"""mbutils.scoring: SRP-Ridge (ridge GCV + Pearson) and RSA, per layer, area and group.

- :func:`score_model`: a model of the zoo (or any :class:`~mbutils.models.FeatureModel`)
  against a dataset, tables written to a folder;
- :func:`score_features`: features you computed yourself (arrays per layer, a dict or an
  xarray object);
- :func:`score_reduced`: already reduced features (projections, Grams, RDMs) against
  :class:`Targets`;
- :func:`summarize_scores`, :func:`check_scores`; the building blocks (ridge leave-one-out,
  Pearson per column, RDMs) and alternative mappings (:func:`compare_mappings`).

Heavy pieces (the pipeline, alternative mappings) are imported on first use.
"""
from __future__ import annotations

import importlib

from .correlation import pearson_columns
from .ridge import center_gram, ridge_gcv_predictions, ridge_gcv_predictions_from_gram
from .rsa import compare_rdms, neural_rdms, rdm, upper_triangle

__all__ = [
    "pearson_columns",
    "center_gram",
    "ridge_gcv_predictions",
    "ridge_gcv_predictions_from_gram",
    "rdm",
    "compare_rdms",
    "neural_rdms",
    "upper_triangle",
    "score_model",
    "score_features",
    "score_reduced",
    "Targets",
    "summarize_scores",
    "SCORES_VERSION",
    "SCALED_METRIC",
    "RELIABILITY_CUTOFFS",
    "check_scores",
    "ScoreCheckError",
    "compare_mappings",
    "summarize_mappings",
    "MAPPINGS",
    "mapping_validation_data",
    "mapping_agreement",
]

_LAZY = {
    "score_model": "pipeline",
    "score_features": "pipeline",
    "score_reduced": "pipeline",
    "Targets": "pipeline",
    "summarize_scores": "pipeline",
    "SCORES_VERSION": "pipeline",
    "SCALED_METRIC": "pipeline",
    "RELIABILITY_CUTOFFS": "pipeline",
    "check_scores": "pipeline",
    "ScoreCheckError": "pipeline",
    "compare_mappings": "mappings",
    "summarize_mappings": "mappings",
    "MAPPINGS": "mappings",
    "mapping_validation_data": "mappings",
    "mapping_agreement": "mappings",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'mbutils.scoring' has no attribute {name!r}")
