"""Score one model against one dataset: SRP-Ridge and RSA (and optionally CKA) per layer, area and group.

:func:`score_model` runs the whole pipeline (neuron selection, streamed extraction through
reducers, scoring, tidy Parquet tables); :func:`score_features` does the scoring on features
already reduced; :func:`summarize_scores` turns per-layer scores into the paper's layer maxima
(:mod:`mbutils.results` reads the tables back).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import platform
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.linalg import blas

from .._io import atomic_write, file_sha256
from ..constants import ALPHA, DEFAULT_METRICS, METRICS, N_COMPONENTS, RELIABILITY_THRESHOLD, TRAIN_TYPES
from ._bootstrap import (DEFAULT_N_BOOT, attach_intervals, bootstrap_scores, check_n_boot, empty_bootstrap_table,
                         prepare_srp_draws)
from ._loo import LooPearson, _operator_from_eig, blas_workers, loo_pearson_auto, parallel_map, penalty_dominated
from .cka import CKA_ESTIMATORS, cka_matrix, linear_gram, splithalf_cka_reliability
from .ridge import GRAM_TOLERANCE, centered_eigh, centered_svd, gram_error_ratio
from .rsa import rdm

__all__ = ["score_model", "score_features", "score_reduced", "Targets", "summarize_scores", "check_scores", "ScoreCheckError",
           "METRICS", "DEFAULT_METRICS", "PAPER_METRICS", "AUTO_ALPHAS", "SCALED_METRIC", "MAPPINGS_SCORE",
           "CEILING_MARGIN", "RELIABILITY_CUTOFFS"]

_log = logging.getLogger(__name__)
#: the paper's two metrics, whose layer maxima average to the ``overall_score``
PAPER_METRICS = ("srp_ridge", "rsa")
#: penalties of ``alpha="auto"``, relative to the layer: each is multiplied by the mean eigenvalue
#: of the layer's centered Gram matrix on the centered stimulus space (``trace / (n - 1)``)
AUTO_ALPHAS = np.logspace(-3, 5, 17)
#: SRP-Ridge with the penalty relative to the layer: alpha times the mean eigenvalue of the
#: layer's centered Gram matrix (scale invariant; beside the paper's fixed alpha)
SCALED_METRIC = "srp_ridge_scaled"
#: version of the score tables' contents: score folders of another version are scored again
SCORES_VERSION = 5
#: RSA is NaN for a layer whose RDM entries spread (standard deviation) by at most this
RDM_INDISTINCT = 1e-8
#: an area score above its noise ceiling by more than this is an error (see check_scores)
CEILING_MARGIN = 0.1
#: areas with fewer selected neurons than this are warned about by name and marked
#: (``few_neurons`` in the scores and the summary)
MIN_AREA_NEURONS = 10
#: mappings of the regression metric: name -> description
MAPPINGS_SCORE = {
    "srp": "sparse random projection to n_components, then ridge GCV (the paper)",
    "exact": "ridge GCV on all features via the layer's centered Gram matrix (no projection)",
    "pca": "principal components (n_components) of the layer over the stimuli, then ridge GCV",
}
GROUPINGS = ("cre_line", "imaging_depth")
TABLE_NAMES = ("scores", "scores_groups", "neuron_scores", "summary", "scores_reliability", "bootstrap")
#: split-half reliability cutoffs of the ``scores_reliability`` table (paper appendix A.6,
#: Figure 6): 0.5 to 0.95 in steps of 0.05
RELIABILITY_CUTOFFS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))
#: columns of the ``scores_reliability`` table
RELIABILITY_COLUMNS = ["model", "train_type", "layer", "layer_index", "layer_depth", "metric", "area", "cutoff",
                       "score", "n_neurons", "n_nan", "ceiling", "few_neurons", "penalty_dominated", "constant"]


# --------------------------------------------------------------------------- helpers
def _check_choice(value, valid, what):
    if value not in valid:
        import difflib

        close = difflib.get_close_matches(str(value), list(valid), n=2)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{what}={value!r}; expected one of {list(valid)}{hint}")


def _is_constant_gram(kc, scale) -> bool:
    tr = float(np.trace(kc))
    return not np.isfinite(tr) or tr <= 1e-10 * max(scale, np.finfo(float).tiny) or tr == 0.0


def _layer_gram(f, features_are_gram):
    """Doubly centered Gram (n_stimuli, n_stimuli) of one layer, and whether the layer is constant.

    ``f``: the reduced features (n_stimuli, n_components), whose Gram ``Zc Zc^T`` (``Zc``:
    features centered over stimuli, float64) is computed, or with ``features_are_gram`` the
    doubly centered Gram itself.
    """
    if features_are_gram:
        kc = np.asarray(f, dtype=np.float64)
        tr = float(np.trace(kc))
        return kc, not np.isfinite(tr) or tr <= 0.0
    z = np.array(f, dtype=np.float64)  # a copy: centered in place
    flat = z.reshape(-1)
    scale = float(np.dot(flat, flat))  # sum of squares of the features
    z -= z.mean(0)
    if z.shape[1] == 0:  # (BLAS rejects an empty inner dimension)
        return np.zeros((z.shape[0], z.shape[0])), True
    k = blas.dsyrk(1.0, z.T, trans=1)  # upper triangle of z @ z.T: half the products of a GEMM
    kc = np.triu(k) + np.triu(k, 1).T
    return kc, _is_constant_gram(kc, scale)


def _unit_columns(B):
    """Columns of ``B`` (n, k) centered and scaled to unit norm (as in ``pearson_columns``).

    Returns
    -------
    Bn : ndarray (n, k)
        Unit columns (0 where unusable).
    ok : ndarray (k,), bool
        False for columns with a non-finite value or constant (spread below 1e-12 of the
        magnitude): their correlations are NaN.
    """
    B = np.asarray(B, dtype=np.float64)
    ok = np.isfinite(B).all(0)
    Bc = B - B.mean(0)
    sb = np.abs(Bc).max(0)
    ok &= (sb > 0) & ~(sb <= 1e-12 * np.maximum(np.abs(B).max(0), np.finfo(float).tiny))
    with np.errstate(divide="ignore", invalid="ignore"):
        Bc /= sb
        Bc /= np.sqrt((Bc * Bc).sum(0))
    ok &= np.isfinite(Bc).all(0)
    Bc[:, ~ok] = 0.0
    return Bc, ok


def _pearson_between_columns(A, B):
    """Pearson r of every column of ``A`` (n, k) with every column of ``B`` (n, l).

    Entry ``(i, j)`` equals ``pearson_columns(A[:, [i]], B[:, [j]])`` (up to rounding): NaN
    where either column has a non-finite value or is constant.

    Returns
    -------
    ndarray (k, l)
    """
    An, ok_a = _unit_columns(A)
    Bn, ok_b = _unit_columns(B)
    r = np.clip(An.T @ Bn, -1.0, 1.0)
    r[~(ok_a[:, None] & ok_b[None, :]) | ~np.isfinite(r)] = np.nan
    return r


def _layer_operators(f, features_are_gram, alpha, scale_aware):
    """Leave-one-out operators of one layer for the paper's alpha and the scale-aware alpha.

    Returns ``(P, P_scaled, dominated, alpha_scaled)``: ``None, None, False, nan`` for a constant
    layer; ``P_scaled`` is None without ``scale_aware``. ``dominated``: see
    :func:`~mbutils.scoring._loo.penalty_deviation`. ``alpha_scaled``: ``alpha`` times the mean
    eigenvalue of the centered Gram on the centered stimulus space (``trace / (n - 1)``).
    """
    kc, constant = _layer_gram(f, features_are_gram)
    if constant:
        return None, None, False, np.nan
    s, V = centered_eigh(kc)
    alpha_scaled = alpha * float(s.sum()) / s.size
    smallest = min(alpha, alpha_scaled) if scale_aware and alpha_scaled > 0 else alpha
    if gram_error_ratio(s, smallest) > GRAM_TOLERANCE:
        if features_are_gram:
            _log.warning("a layer's Gram matrix carries rounding errors of %.2g of its smallest eigenvalue plus "
                         "alpha; its leave-one-out scores may be inexact (score from features to avoid this)",
                         gram_error_ratio(s, smallest))
        else:  # the spectrum from the features themselves (see mbutils.scoring.ridge)
            s, V = centered_svd(f)
    P = _operator_from_eig(s, V, alpha)
    P_scaled = _operator_from_eig(s, V, alpha_scaled) if scale_aware and alpha_scaled > 0 else None
    return P, P_scaled, penalty_dominated(P), alpha_scaled


def _layer_spectrum_auto(f, features_are_gram, alphas):
    """Spectrum and penalty grid of one layer for ``alpha="auto"``.

    Returns ``((s, V, grid), dominated, mean_eigenvalue)``, or ``(None, False, nan)`` for a
    constant layer. ``grid``: ``alphas`` times the mean eigenvalue of the centered Gram on the
    centered stimulus space; ``dominated``: whether even the smallest penalty of the grid is
    penalty-dominated (then every one is; see :func:`~mbutils.scoring._loo.penalty_deviation`).
    """
    kc, constant = _layer_gram(f, features_are_gram)
    if constant:
        return None, False, np.nan
    s, V = centered_eigh(kc)
    mean = float(s.sum()) / s.size
    if not mean > 0:
        return None, False, np.nan
    grid = np.asarray(alphas, dtype=np.float64) * mean
    if gram_error_ratio(s, float(grid.min())) > GRAM_TOLERANCE:
        if features_are_gram:
            _log.warning("a layer's Gram matrix carries rounding errors of %.2g of its smallest eigenvalue plus "
                         "alpha; its leave-one-out scores may be inexact (score from features to avoid this)",
                         gram_error_ratio(s, float(grid.min())))
        else:
            s, V = centered_svd(f)
    return (s, V, grid), penalty_dominated(_operator_from_eig(s, V, float(grid.min()))), mean


def _check_alphas_auto(alphas):
    """The relative penalty grid of ``alpha="auto"`` (default :data:`AUTO_ALPHAS`), or a ValueError."""
    if alphas is None:
        return np.asarray(AUTO_ALPHAS, dtype=np.float64)
    try:
        grid = np.asarray(alphas, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        grid = np.array([np.nan])
    if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
        raise ValueError(f"alphas={alphas!r}; expected positive numbers (penalties relative to the layer's mean "
                         "eigenvalue), e.g. numpy.logspace(-3, 5, 17)")
    return grid


def _auto_scores(ops, prep, n_workers):
    """Per layer, leave-one-out Pearson r and chosen penalties of the targets of ``prep`` (a
    float64 :class:`~mbutils.scoring._loo.LooPearson`).

    Returns ``(R, A)``, both (n_layers, m): NaN rows for constant layers."""
    m = prep.n_targets

    def one(op):
        if op[0] is None:
            return np.full(m, np.nan), np.full(m, np.nan)
        s, V, grid = op[0]
        return loo_pearson_auto(s, V, prep.Yt, prep.y_ok, prep.yss, grid)

    out = parallel_map(one, ops, n_workers)
    if not out:
        return np.full((0, m), np.nan), np.full((0, m), np.nan)
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def _regression_scores(regression_features, n_layers, targets, alpha, features_are_gram, n_workers,
                       precision="float32", scale_aware=True, extra_y=None, alphas=None, keep=None, draws=None):
    """Ridge-GCV leave-one-out Pearson r of every layer and target.

    Targets: all trials, odd trials, even trials (``3 * n_neurons``), prepared once for all
    layers; constant targets give NaN (as ``pearson_columns``: spread below 1e-12 of the
    magnitude), constant layers a row of NaN. Layers and blocks of targets are spread over
    ``n_workers`` threads.

    Returns
    -------
    R : ndarray (n_layers, 3 * n_neurons)
        With the paper's ``alpha``.
    R_scaled : ndarray (n_layers, 3 * n_neurons) or None
        With the scale-aware alpha (``scale_aware``), for all trials only (the odd- and
        even-trial columns are NaN: the scale-aware score has no unbiased maximum).
    dominated : ndarray (n_layers,), bool
    alpha_scaled : ndarray (n_layers,)
        Per layer (see :func:`_layer_operators`).
    R_extra : ndarray (n_layers, n_extra) or None
        With the paper's ``alpha``, all trials only, for the targets ``extra_y``
        (n_stimuli, n_extra) when given: scored in a call of their own, so that ``R`` is the
        same with or without them.
    chosen : ndarray (n_layers, 3 * n_neurons) or None
        With ``alpha="auto"``: the penalty chosen per layer and target (generalized
        cross-validation over ``alphas`` times the layer's mean eigenvalue; ``R`` holds the
        leave-one-out scores with it, ``R_scaled`` is None, ``alpha_scaled`` holds the mean
        eigenvalues). None otherwise.

    The layers are scored a few at a time (:func:`_layer_chunks`: every layer together for
    a few hundred stimuli), so that memory stays bounded for thousands of stimuli.

    With ``draws`` (a :class:`~mbutils.scoring._bootstrap.SrpDraws`), a dict ``keep`` and a
    fixed ``alpha``, ``keep["srp_draws"]`` receives the bootstrap draws of every layer with
    ``alpha``, taken from each layer's leave-one-out operator while it is held.
    """
    n_stim = targets.y.shape[0]
    chunks = _layer_chunks(n_layers, n_stim, at_least=n_workers)
    if isinstance(alpha, str):  # "auto"
        prep = LooPearson(targets.y, targets.y_odd, targets.y_even, precision="float64")
        prep_extra = LooPearson(extra_y, precision="float64") if extra_y is not None and extra_y.shape[1] else None
        parts = []
        for idx in chunks:  # the spectra of a few layers at a time (bounded memory)
            ops = parallel_map(lambda i: _layer_spectrum_auto(regression_features[i], features_are_gram, alphas),
                               idx, n_workers)
            R, chosen = _auto_scores(ops, prep, n_workers)
            R_extra = _auto_scores(ops, prep_extra, n_workers)[0] if prep_extra is not None else None
            parts.append((R, chosen, R_extra, [o[1] for o in ops], [o[2] for o in ops]))
            del ops
        R, chosen = _stack_rows([p[0] for p in parts], prep.n_targets), _stack_rows([p[1] for p in parts],
                                                                                    prep.n_targets)
        R_extra = _stack_rows([p[2] for p in parts], prep_extra.n_targets) if prep_extra is not None else None
        return (R, None, np.array([d for p in parts for d in p[3]], dtype=bool),
                np.array([a for p in parts for a in p[4]], dtype=np.float64), R_extra, chosen)
    scorer = LooPearson(targets.y, targets.y_odd, targets.y_even, precision=precision)
    n = targets.y.shape[1]
    scorer_scaled = LooPearson(targets.y, precision=precision) if scale_aware else None
    scorer_extra = LooPearson(extra_y, precision=precision) if extra_y is not None and extra_y.shape[1] else None
    R = np.full((n_layers, scorer.n_targets), np.nan)
    R_scaled = np.full((n_layers, 3 * n), np.nan) if scale_aware else None
    R_extra = np.full((n_layers, scorer_extra.n_targets), np.nan) if scorer_extra is not None else None
    dominated = np.zeros(n_layers, dtype=bool)
    alpha_scaled = np.full(n_layers, np.nan)
    srp_parts = []
    for idx in chunks:  # the operators of a few layers at a time (bounded memory)
        ops = parallel_map(lambda i: _layer_operators(regression_features[i], features_are_gram, alpha, scale_aware),
                           idx, n_workers)
        rows = np.asarray(idx, dtype=np.intp)
        R[rows] = scorer.scores([o[0] for o in ops], n_workers)
        if scale_aware:  # all trials only (a third of the products): odd and even halves are NaN
            R_scaled[rows, :n] = scorer_scaled.scores([o[1] for o in ops], n_workers)
        if scorer_extra is not None:
            R_extra[rows] = scorer_extra.scores([o[0] for o in ops], n_workers)
        dominated[rows] = [o[2] for o in ops]
        alpha_scaled[rows] = [o[3] for o in ops]
        if draws is not None:
            srp_parts.append(draws.draws([o[0] for o in ops], np.isfinite(R[rows]), n_workers))
        del ops
    if draws is not None:
        keep["srp_draws"] = np.concatenate(srp_parts) if srp_parts else draws.draws([], None)
    return R, R_scaled, dominated, alpha_scaled, R_extra, None


#: memory for the leave-one-out operators of the layers scored together (bytes): each layer
#: holds about four (n_stimuli, n_stimuli) float64 matrices while it is scored, so 118 stimuli
#: score every layer of a model together and 6,000 stimuli about 2 layers at a time
OPERATOR_MEMORY = 2 * 2**30


def _layer_chunks(n_layers, n_stimuli, budget=None, at_least=1) -> list:
    """The layers in consecutive groups whose leave-one-out operators fit :data:`OPERATOR_MEMORY`
    together, with at least ``at_least`` layers per group (one per worker thread): a list of
    ranges."""
    per_layer = 4 * 8 * max(int(n_stimuli), 1) ** 2
    size = max(1, int(at_least), int((OPERATOR_MEMORY if budget is None else budget) // per_layer))
    return [range(i, min(n_layers, i + size)) for i in range(0, n_layers, size)]


def _stack_rows(parts, width) -> np.ndarray:
    """Row blocks stacked (an empty (0, width) array for none)."""
    parts = [p for p in parts if p is not None and len(p)]
    return np.concatenate(parts) if parts else np.full((0, width), np.nan)


def _layer_triangles(layer_rdms, n_layers, n_stim):
    """Upper triangles (above the diagonal) of the layer RDMs as columns.

    Returns
    -------
    flat : ndarray (n_pairs,)
        Flat indices of the upper triangle in an (n_stim, n_stim) matrix.
    layer_tri : ndarray (n_pairs, n_layers), float64
    """
    iu = np.triu_indices(n_stim, k=1)
    flat = np.ravel_multi_index(iu, (n_stim, n_stim))
    layer_tri = np.empty((len(flat), n_layers))
    for i in range(n_layers):
        layer_tri[:, i] = np.asarray(layer_rdms[i], dtype=np.float64).ravel()[flat]
    return flat, layer_tri


def _cka_scores(targets, layer_grams, n_layers, label_sets, codes, estimator):
    """Linear CKA of every layer's Gram with the neural Gram of every group (all, odd, even trials).

    Parameters
    ----------
    targets : Targets
    layer_grams : sequence of ndarray (n_stimuli, n_stimuli)
        Per layer, the doubly centered Gram of its features (a layer whose trace is not positive
        or not finite is constant: NaN).
    n_layers : int
    label_sets, codes : dict
        As in :func:`score_reduced`.
    estimator : {"biased", "unbiased"}

    Returns
    -------
    columns : list of (grouping, group)
    values : ndarray (n_layers, 3 * len(columns))
        CKA of the layer's Gram with the neural Gram ``Yc Yc^T`` of the group's trial-averaged
        responses (all trials, odd trials, even trials).
    constant : ndarray (n_layers,), bool
    """
    grams, constant = [], np.zeros(n_layers, dtype=bool)
    for i in range(n_layers):
        kc, flat = _layer_gram(layer_grams[i], True)
        constant[i] = flat
        grams.append(kc)
    columns, neural = [], []
    for key, labels in label_sets.items():
        for g in codes[key][0]:
            m = labels == g
            for y in (targets.y, targets.y_odd, targets.y_even):
                neural.append(linear_gram(y[:, m]))
            columns.append((key, g))
    values = cka_matrix(grams, neural, estimator) if n_layers and neural else np.full((n_layers, len(neural)), np.nan)
    values[constant] = np.nan
    return columns, values, constant


def _rsa_scores(targets, layer_tri, flat, n_layers, label_sets, codes):
    """RDM correlations of every layer with the neural RDM of every group (all, odd, even trials).

    ``layer_tri``, ``flat``: from :func:`_layer_triangles`.

    Returns
    -------
    columns : list of (grouping, group)
    values : ndarray (n_layers, 3 * len(columns))
        Pearson r between the upper triangles (NaN where either has a non-finite value or is
        constant).
    constant : ndarray (n_layers,), bool
        Layers whose RDM is constant or indistinct (their rows of ``values`` are NaN).
    """
    # neural RDM triangles per grouping/group/half, stacked as columns (n_pairs, n_columns)
    columns, tri = [], []
    for key, labels in label_sets.items():
        for g in codes[key][0]:
            m = labels == g
            for y in (targets.y, targets.y_odd, targets.y_even):
                tri.append(rdm(y[:, m]).ravel()[flat] if m.sum() >= 2 else np.full(len(flat), np.nan))
            columns.append((key, g))
    values = _pearson_between_columns(layer_tri, np.stack(tri, axis=1))
    constant = ~_unit_columns(layer_tri)[1] if len(flat) else np.ones(n_layers, bool)
    # a layer whose stimulus correlations spread by at most RDM_INDISTINCT gives every stimulus the
    # same activations up to rounding: its RDM holds no stimulus information that float64 can
    # carry (1 - r of nearly identical rows cancels), so its RSA is NaN, as a constant layer's
    with np.errstate(invalid="ignore"):
        indistinct = np.nanstd(layer_tri, axis=0) <= RDM_INDISTINCT if len(flat) else np.zeros(n_layers, bool)
    values[indistinct] = np.nan
    return columns, values, constant | indistinct


def _neuron_table_columns(layers, neurons, model, train_type) -> dict:
    """Columns of the ``neuron_scores`` table but ``score``: one row per layer and neuron."""
    n_layers, n_neur = len(layers), len(neurons)
    per_layer = [layers.iloc[i] for i in range(n_layers)]
    return {
        "model": model, "train_type": train_type,
        "layer": np.repeat(np.array([str(r["name"]) for r in per_layer], dtype=object), n_neur),
        "layer_index": np.repeat(np.array([int(r["index"]) for r in per_layer], dtype=np.int64), n_neur),
        "layer_depth": np.repeat(np.array([float(r["depth"]) for r in per_layer]), n_neur),
        **{c: np.tile(neurons[c].to_numpy(), n_layers)
           for c in ("cell_specimen_id", "area", "cre_line", "imaging_depth")},
    }


def _group_means(values, labels, groups):
    """Per group: mean over finite values, number of members, number of NaN."""
    out = {}
    for g in groups:
        v = values[labels == g]
        n_nan = int(np.isnan(v).sum())
        mean = float(np.nanmean(v)) if n_nan < v.size else float("nan")
        out[g] = (mean, int(v.size), n_nan)
    return out


def _group_medians(values, code, n_groups):
    """Per group (integer codes): median of the finite values (NaN for a group without any)."""
    out = np.full(n_groups, np.nan)
    for j in range(n_groups):
        v = values[code == j]
        v = v[np.isfinite(v)]
        if v.size:
            out[j] = float(np.median(v))
    return out


def _group_means_coded(values, code, n_groups):
    """Per group (integer codes): mean over finite values, number of members, number of NaN."""
    finite = np.isfinite(values)
    size = np.bincount(code, minlength=n_groups)
    n_ok = np.bincount(code, weights=finite, minlength=n_groups)
    total = np.bincount(code, weights=np.where(finite, values, 0.0), minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_ok > 0, total / np.maximum(n_ok, 1), np.nan)
    return mean, size, size - n_ok.astype(np.int64)


@dataclasses.dataclass
class Targets:
    """Trial-averaged responses of the selected neurons, prepared for scoring.

    Attributes
    ----------
    y : ndarray of shape (n_stimuli, n_neurons)
        Mean over all trials.
    y_odd, y_even : ndarray of shape (n_stimuli, n_neurons)
        Means over the odd and the even trials (the unbiased layer choice).
    neurons : pandas.DataFrame
        One row per neuron: ``cell_specimen_id, area, cre_line, imaging_depth, reliability``.
    trials : ndarray of shape (n_neurons, n_stimuli, n_trials), optional
        Single trials, for the RSA noise ceilings.
    """

    y: np.ndarray
    y_odd: np.ndarray
    y_even: np.ndarray
    neurons: pd.DataFrame
    trials: np.ndarray | None = None

    @classmethod
    def from_dataset(cls, dataset, threshold=RELIABILITY_THRESHOLD, progress=False, **select_kwargs) -> "Targets":
        """The scenes of a dataset, its reliable neurons, trial-averaged.

        Parameters
        ----------
        dataset : str, pathlib.Path or NeuralDataset
        threshold : float
            Split-half reliability threshold of :func:`mbutils.data.select_neurons`.
        progress : bool
        **select_kwargs
            More arguments for :func:`mbutils.data.select_neurons`.

        Returns
        -------
        Targets
            Rows in the order of ``dataset.scenes()``'s stimuli.
        """
        return _select_targets(_as_dataset(dataset)[0], threshold, progress, select_kwargs)[0]


def _as_dataset(dataset):
    """``(NeuralDataset, path or None)`` of a path or a NeuralDataset."""
    from ..data import NeuralDataset, load_dataset

    if isinstance(dataset, (str, Path)):
        return load_dataset(Path(dataset)), Path(dataset)
    if not isinstance(dataset, NeuralDataset):
        raise TypeError(f"dataset must be a path or a NeuralDataset, got {type(dataset).__name__}")
    return dataset, getattr(dataset, "path", None)


def _select_targets(dataset, threshold, progress, select_kwargs):
    """``(targets, selected scenes dataset, n neurons dropped for NaN, selection report, scenes)``:
    ``scenes`` is ``dataset.scenes()``, all neurons (for :func:`_extra_targets`)."""
    from ..data import select_neurons

    scenes = dataset.scenes()
    selected, report = select_neurons(scenes, threshold=threshold, progress=progress, **(select_kwargs or {}))
    if selected.n_neurons == 0:
        raise ValueError(f"no neuron passed the selection (threshold={threshold}); lower the threshold")
    targets, n_bad = _targets_from_dataset(selected)
    return targets, selected, n_bad, report, scenes


def _targets_from_dataset(dataset) -> tuple[Targets, int]:
    """Trial averages of a selected NeuralDataset; neurons with NaN responses excluded (warned)."""
    y = dataset.trial_average().values.astype(np.float64)  # neuron x stimulus
    odd, even = dataset.trial_halves()
    odd, even = odd.values.astype(np.float64), even.values.astype(np.float64)
    ok = np.isfinite(y).all(1)
    n_bad = int((~ok).sum())
    if n_bad:
        warnings.warn(
            f"excluding {n_bad} of {len(ok)} neurons whose trial-averaged responses contain NaN "
            f"(a stimulus with no valid trial)", RuntimeWarning, stacklevel=3)
    if not ok.any():
        raise ValueError(f"every one of the {len(ok)} selected neurons misses a stimulus (no valid trial): nothing "
                         "to score; keep the stimuli every neuron saw (dataset.select or your own subset)")
    halves_bad = ~(np.isfinite(odd).all(1) & np.isfinite(even).all(1)) & ok
    if halves_bad.any():
        warnings.warn(
            f"{int(halves_bad.sum())} of {int(ok.sum())} neurons lack a trial in the odd or even half for some "
            "stimulus (single-presentation stimuli): their odd/even-trial scores, and so the unbiased "
            "scores, are NaN", RuntimeWarning, stacklevel=3)
    ds = dataset.ds
    meta = {c: ds[c].values[ok] for c in ("cell_specimen_id", "area", "cre_line", "imaging_depth")}
    meta["reliability"] = (ds["reliability"].values[ok].astype(np.float64) if "reliability" in ds.coords
                           else np.full(int(ok.sum()), np.nan))
    neurons = pd.DataFrame(meta)
    neurons["area"] = neurons["area"].astype(str)
    neurons["cre_line"] = neurons["cre_line"].astype(str)
    if ok.all():  # (no copies of large arrays)
        return Targets(y.T, odd.T, even.T, neurons, dataset.responses.values), n_bad
    trials = dataset.responses.values[ok]
    return Targets(y[ok].T, odd[ok].T, even[ok].T, neurons, trials), n_bad


def _ceilings(targets: Targets, label_column, n_splits=10, seed=0, cka_estimator=None, halves=None,
              complete=False, with_rsa=True) -> dict:
    """Noise ceilings per group: mean per-neuron sqrt(reliability) (regression), RDM split-half (RSA),
    and with ``cka_estimator`` the Gram's split-half CKA (:func:`_cka_ceiling`; NaN without), from
    ``halves`` (:func:`_split_half_means` of ``targets.trials``, with ``n_splits`` and ``seed``) when
    given. ``complete``: every trial of ``targets.trials`` is finite, so that the RSA ceiling
    (:func:`_rdm_ceiling`) can come from ``halves`` too (:func:`_rdm_ceiling_of`). ``with_rsa=False``
    leaves the RSA ceilings NaN (a run without RSA, where at thousands of stimuli its (n, n) RDMs
    would be most of this function's work)."""
    from ..reliability import noise_ceiling

    labels = targets.neurons[label_column].to_numpy()
    out = {}
    per_neuron = noise_ceiling(targets.neurons["reliability"].to_numpy())
    rows = halves[0][0].shape[0] if halves else 0  # (halves may hold more neurons after these)
    for g in pd.unique(labels):
        m = labels == g
        reg = float(np.nanmean(per_neuron[m])) if np.isfinite(per_neuron[m]).any() else float("nan")
        rsa = cka = float("nan")
        padded = np.concatenate([m, np.zeros(max(rows - len(m), 0), dtype=bool)])
        if with_rsa and targets.trials is not None and m.sum() >= 2:
            # every trial present: the shared half means give splithalf_rdm_reliability's RDMs
            rsa = _rdm_ceiling_of(halves, padded) if halves and complete else \
                _rdm_ceiling(targets.trials[m], n_splits, seed)
        if halves is not None and cka_estimator is not None:
            cka = _cka_ceiling_of(halves, padded, cka_estimator)
        elif targets.trials is not None and cka_estimator is not None:
            cka = _cka_ceiling(targets.trials[m], n_splits, seed, cka_estimator)
        out[g] = {"srp_ridge": reg, "rsa": rsa, "cka": cka}
    return out


def _cka_ceiling(trials, n_splits=10, seed=0, estimator="biased") -> float:
    """CKA noise ceiling of a population: sqrt of its Gram's split-half CKA reliability
    (:func:`mbutils.scoring.cka.splithalf_cka_reliability`, the splits and Spearman-Brown
    correction of the RSA ceiling :func:`_rdm_ceiling`).

    ``trials``: (n_neurons, n_stimuli, n_trials); NaN with fewer than 2 trials, or where the
    reliability cannot be computed.
    """
    from ..reliability import noise_ceiling

    if trials.shape[0] < 1 or trials.shape[2] < 2:
        return float("nan")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(noise_ceiling(splithalf_cka_reliability(trials, n_splits=n_splits, seed=seed,
                                                                 estimator=estimator)))
    except ValueError:
        return float("nan")


def _rdm_ceiling(trials, n_splits=10, seed=0) -> float:
    """RSA noise ceiling of a population: sqrt of its RDM's split-half reliability.

    ``trials``: (n_neurons, n_stimuli, n_trials); NaN with fewer than 2 neurons or trials, or
    where the reliability cannot be computed.
    """
    from ..reliability import noise_ceiling, splithalf_rdm_reliability

    if trials.shape[0] < 2 or trials.shape[2] < 2:
        return float("nan")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(noise_ceiling(splithalf_rdm_reliability(trials, n_splits=n_splits, seed=seed)))
    except ValueError:
        return float("nan")


def _cka_ceiling_of(halves, mask, estimator) -> float:
    """:func:`_cka_ceiling` of the neurons ``mask`` (bool, over the rows of ``halves``) from
    :func:`_split_half_means`: the same splits, Grams and Spearman-Brown correction as
    :func:`mbutils.scoring.cka.splithalf_cka_reliability`, without recomputing the half means
    (the CKA of every split's two Grams in one :func:`~mbutils.scoring.cka.cka_matrix`)."""
    from ..reliability import noise_ceiling, spearman_brown

    if mask.sum() < 1 or not halves:
        return float("nan")
    fast = _split_cka(halves, mask) if estimator == "biased" else None
    if fast is not None:  # every split at once
        values = spearman_brown(fast)
        return float(noise_ceiling(np.nanmean(values))) if np.isfinite(values).any() else float("nan")
    r = np.full(len(halves), np.nan)
    used, grams_a, grams_b = [], [], []
    for k, (first, second) in enumerate(halves):
        a, b = first[mask], second[mask]
        keep = np.isfinite(a).all(1) & np.isfinite(b).all(1)
        if keep.any():
            used.append(k)
            grams_a.append(linear_gram(a[keep].T))
            grams_b.append(linear_gram(b[keep].T))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if used:
            r[used] = np.diagonal(cka_matrix(grams_a, grams_b, estimator))
        values = spearman_brown(r)
        return float(noise_ceiling(np.nanmean(values))) if np.isfinite(values).any() else float("nan")


def _split_half_means(trials_list, n_splits=10, seed=0):
    """Per split of the trials (:func:`mbutils.reliability.trial_splits`), the mean responses of
    each half, for the neurons of several trial arrays stacked.

    ``trials_list``: arrays (n_neurons_k, n_stimuli, n_trials) with the same stimuli and trials.
    Returns a list of ``(first, second)`` arrays (n_neurons, n_stimuli), one pair per split:
    the means :func:`mbutils.reliability.splithalf_rdm_reliability` takes for any subset of
    these neurons (its splits depend only on the number of trials and ``seed``), NaN where a
    neuron has no finite trial of a stimulus in that half. All halves of all splits are one
    float64 product of the trials with a (n_trials, 2 * n_splits) 0/1 matrix (sums and counts
    of the finite trials), as ``numpy.nanmean`` up to the order of the sums.
    """
    from ..reliability import trial_splits

    n_trials = trials_list[0].shape[2]
    first, second = trial_splits(n_trials, n_splits, seed)
    W = np.zeros((n_trials, 2 * n_splits))
    for k in range(n_splits):
        W[first[k], k] = 1.0
        W[second[k], n_splits + k] = 1.0
    blocks = []
    for t in trials_list:
        n, s_, _ = t.shape
        valid = np.isfinite(t).reshape(n * s_, n_trials)
        sums = np.where(valid, t.reshape(n * s_, n_trials), 0.0).astype(np.float64, copy=False) @ W
        counts = valid.astype(np.float64) @ W
        with np.errstate(divide="ignore", invalid="ignore"):
            means = sums / counts
        means[counts == 0] = np.nan
        blocks.append(means.reshape(n, s_, 2 * n_splits))
    M = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return [(np.ascontiguousarray(M[:, :, k]), np.ascontiguousarray(M[:, :, n_splits + k])) for k in range(n_splits)]


def _rdm_ceiling_of(halves, mask) -> float:
    """:func:`_rdm_ceiling` of the neurons ``mask`` (bool, over the rows of ``halves``) from
    :func:`_split_half_means`: the same splits, RDMs and Spearman-Brown correction as
    :func:`mbutils.reliability.splithalf_rdm_reliability`, without recomputing the half means."""
    from ..reliability import _rdm_upper, noise_ceiling, spearman_brown

    if mask.sum() < 2:
        return float("nan")
    values = np.empty(len(halves))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = _split_rdm_correlations(halves, mask)
        if r is not None:  # every split at once
            values = spearman_brown(r)
            return float(noise_ceiling(np.nanmean(values))) if np.isfinite(values).any() else float("nan")
        for k, (first, second) in enumerate(halves):
            a, b = _rdm_upper(first[mask]), _rdm_upper(second[mask])
            ok = np.isfinite(a) & np.isfinite(b)
            if ok.sum() < 2:
                return float("nan")  # (as the reliability that cannot be computed)
            a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
            denom = np.sqrt(np.dot(a, a) * np.dot(b, b))
            r = float(np.clip(np.dot(a, b) / denom, -1.0, 1.0)) if denom > 0 else float("nan")
            values[k] = spearman_brown(r)
        return float(noise_ceiling(np.nanmean(values))) if np.isfinite(values).any() else float("nan")


def _stacked_halves(halves, mask):
    """The half means of the neurons ``mask``: two arrays (n_splits, n_neurons, n_stimuli)."""
    return (np.stack([first[mask] for first, _ in halves]), np.stack([second[mask] for _, second in halves]))


def _split_rdm_correlations(halves, mask):
    """Per split, the Pearson r of the two halves' RDM triangles (as :func:`_rdm_ceiling_of`'s
    loop), all splits in batched products: ndarray (n_splits,); None where a half mean, an RDM
    entry or a triangle's spread is not finite or zero (the loop then handles the split)."""
    A, B = _stacked_halves(halves, mask)
    if not (np.isfinite(A).all() and np.isfinite(B).all()):
        return None
    n = A.shape[2]
    iu = np.triu_indices(n, 1)
    covs = []
    for X in (A, B):  # numpy.corrcoef of the stimuli over the neurons, per split
        Xc = X - X.mean(axis=1, keepdims=True)
        C = np.matmul(Xc.transpose(0, 2, 1), Xc)
        if not (np.einsum("kii->ki", C) > 0).all():
            return None
        covs.append(C)
    return _triangles_r(covs, iu)


def _triangles_r(covs, iu):
    """Per split, the Pearson r of the two halves' RDM triangles (``1 -`` the correlations) from
    their stimulus covariances ``covs`` (two arrays (n_splits, n_stimuli, n_stimuli) with positive
    diagonals; overwritten); None where a triangle's spread is zero."""
    tri = []
    for C in covs:
        d = np.sqrt(np.einsum("kii->ki", C))
        C /= d[:, :, None]
        C /= d[:, None, :]
        np.clip(C, -1.0, 1.0, out=C)
        tri.append(1.0 - C[:, iu[0], iu[1]])
    a, b = (t - t.mean(axis=1, keepdims=True) for t in tri)
    denom = np.sqrt(np.einsum("kp,kp->k", a, a) * np.einsum("kp,kp->k", b, b))
    if a.shape[1] < 2 or not (denom > 0).all():
        return None
    return np.clip(np.einsum("kp,kp->k", a, b) / denom, -1.0, 1.0)


def _split_cka(halves, mask):
    """Per split, the biased linear CKA of the two halves' Grams (as :func:`_cka_ceiling_of`),
    all splits in batched products: ndarray (n_splits,); None where a half mean is not finite
    or a Gram is zero after centering (the loop then handles them)."""
    A, B = _stacked_halves(halves, mask)
    if not (np.isfinite(A).all() and np.isfinite(B).all()):
        return None
    grams = []
    for X in (A, B):  # center_gram(linear_gram(x.T)): the Gram of each neuron centered over stimuli
        Xc = X - X.mean(axis=2, keepdims=True)
        grams.append(np.matmul(Xc.transpose(0, 2, 1), Xc))
    return _cka_split_r(grams)


#: the nested ceilings' shifted sums are used where the squared offset of a subset's mean from
#: the reference, times its size, is at most this multiple of a stimulus' variance (so that at most
#: about 4 of float64's 16 digits cancel); other subsets take the direct path
NESTED_CANCELLATION = 1e4


def _nested_ceilings(halves, masks, rsa=True, cka=False):
    """RSA and biased-CKA split-half ceilings of nested neuron sets, from sums over their
    differences: the ceilings at every reliability cutoff of an area for about the cost of one.

    ``masks``: bool arrays over the rows of ``halves`` (:func:`_split_half_means`), each
    contained in the next (the neurons of an area at decreasing cutoffs). Returns two arrays
    (n_masks,): the ceilings of :func:`_rdm_ceiling_of` and of :func:`_cka_ceiling_of` with the
    biased estimator, NaN where not asked. A mask whose sums would not reproduce the direct
    computation (a half mean that is not finite, a subset mean far from the reference: see
    :data:`NESTED_CANCELLATION`, a zero spread) is computed directly by those functions.

    The RDM of a set is the correlation over its neurons of the stimuli's half means: from the
    sums ``S = sum (x - c)(x - c)^T`` and ``u = sum (x - c)`` over its neurons, shifted by
    ``c``, the mean of the largest set, the covariance is ``S - u u^T / N``. The CKA Gram is the
    sum over neurons of each neuron's centered outer product, additive as it is.
    """
    from ..reliability import noise_ceiling, spearman_brown

    masks = [np.asarray(m, dtype=bool) for m in masks]
    out_rsa, out_cka = np.full(len(masks), np.nan), np.full(len(masks), np.nan)
    direct_rsa, direct_cka = [], []
    if not masks:
        return out_rsa, out_cka
    for small, large in zip(masks[:-1], masks[1:]):
        if (small & ~large).any():
            raise ValueError("_nested_ceilings: each mask must be contained in the next")
    rows = np.flatnonzero(masks[-1])
    A = np.stack([first[rows] for first, _ in halves])  # (n_splits, n_rows, n_stimuli)
    B = np.stack([second[rows] for _, second in halves])
    if not (np.isfinite(A).all() and np.isfinite(B).all()):
        return (np.array([_rdm_ceiling_of(halves, m) for m in masks]) if rsa else out_rsa,
                np.array([_cka_ceiling_of(halves, m, "biased") for m in masks]) if cka else out_cka)
    local = [m[rows] for m in masks]
    steps = [local[0]] + [b & ~a for a, b in zip(local[:-1], local[1:])]
    n_stim = A.shape[2]
    iu = np.triu_indices(n_stim, 1)
    centred = {}
    if rsa:
        centred["rsa"] = [X - X.mean(axis=1, keepdims=True) for X in (A, B)]  # shifted by c
    if cka:
        centred["cka"] = [X - X.mean(axis=2, keepdims=True) for X in (A, B)]  # each neuron over stimuli
    sums = {key: [np.zeros((A.shape[0], n_stim, n_stim)) for _ in range(2)] for key in centred}
    firsts = [np.zeros((A.shape[0], n_stim)) for _ in range(2)]
    count = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, step in enumerate(steps):
            count += int(step.sum())
            for key, halves_x in centred.items():
                for h, X in enumerate(halves_x):
                    if step.any():
                        Xs = X[:, step, :]
                        sums[key][h] += np.matmul(Xs.transpose(0, 2, 1), Xs)
                        if key == "rsa":
                            firsts[h] += Xs.sum(axis=1)
            if rsa:
                r = _rdm_split_r(sums["rsa"], firsts, count, iu) if count >= 2 else None
                if r is None:
                    direct_rsa.append(i)
                else:
                    values = spearman_brown(r)
                    out_rsa[i] = float(noise_ceiling(np.nanmean(values))) if np.isfinite(values).any() else np.nan
            if cka:
                r = _cka_split_r(sums["cka"]) if count >= 1 else None
                if r is None:
                    direct_cka.append(i)
                else:
                    values = spearman_brown(r)
                    out_cka[i] = float(noise_ceiling(np.nanmean(values))) if np.isfinite(values).any() else np.nan
    for i in direct_rsa:
        out_rsa[i] = _rdm_ceiling_of(halves, masks[i])
    for i in direct_cka:
        out_cka[i] = _cka_ceiling_of(halves, masks[i], "biased")
    return out_rsa, out_cka


def _rdm_split_r(S, u, n, iu):
    """Per split, the Pearson r of the two halves' RDM triangles from shifted sums (see
    :func:`_nested_ceilings`); None where cancellation or a zero spread needs the direct path."""
    covs = []
    for S_h, u_h in zip(S, u):
        C = S_h - u_h[:, :, None] * u_h[:, None, :] / n
        d2 = np.einsum("kii->ki", C)  # per split and stimulus: n x the variance
        if not (d2 > 0).all() or ((u_h * u_h / n) > NESTED_CANCELLATION * d2).any():
            return None
        covs.append(C)
    return _triangles_r(covs, iu)


def _cka_split_r(K):
    """Per split, the biased linear CKA of the two halves' Grams ``K`` (two arrays (n_splits,
    n_stimuli, n_stimuli)), each scaled by its largest entry first; None where a Gram is zero."""
    grams = []
    for K_h in K:
        K_h = K_h.copy()
        scale = np.abs(K_h).max(axis=(1, 2))
        if not (scale > 0).all():
            return None
        K_h /= scale[:, None, None]
        grams.append(K_h / np.sqrt(np.einsum("kij,kij->k", K_h, K_h))[:, None, None])
    return np.clip(np.einsum("kij,kij->k", grams[0], grams[1]), -1.0, 1.0)


def _check_cutoffs(cutoffs) -> tuple:
    """The reliability cutoffs as a sorted tuple of distinct floats in [-1, 1] (empty for None)."""
    if cutoffs is None:
        return ()
    try:
        values = np.asarray(cutoffs if np.ndim(cutoffs) else [cutoffs], dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"reliability_cutoffs={cutoffs!r}; expected numbers such as (0.5, 0.55, ..., 0.95), or () "
                         "for none") from None
    bad = values[~np.isfinite(values) | (values < -1.0) | (values > 1.0)]
    if bad.size:
        raise ValueError(f"reliability_cutoffs={list(np.atleast_1d(cutoffs))!r}: {bad[0]!r} is not a reliability in "
                         "[-1, 1]; give cutoffs such as (0.5, 0.55, ..., 0.95), or () for none")
    return tuple(float(v) for v in np.unique(values))


def _extra_targets(scenes, report, threshold, floor, progress, select_kwargs):
    """Trial averages of the neurons that pass the selection at ``floor`` but not at ``threshold``.

    ``scenes``: the dataset's scenes (``dataset.scenes()``, as :func:`_select_targets` returns them).

    The reliabilities are those of the main selection's ``report`` (computed once), so that
    every other step of the selection (excitatory lines, running modulation) is the same.
    Neurons whose trial averages hold NaN are left out, as in the main selection.

    Returns
    -------
    Targets or None
        None when no neuron lies in ``[floor, threshold)``.
    """
    from ..data import NeuralDataset, select_neurons

    if threshold is None or floor >= threshold:  # (no threshold: every neuron is in the main selection)
        return None
    rel = report.reliability.to_numpy(dtype=np.float64)
    if rel.shape[0] != scenes.ds.sizes["neuron"]:
        raise ValueError(f"the selection report holds {rel.shape[0]} reliabilities for "
                         f"{scenes.ds.sizes['neuron']} neurons; select on the same dataset")
    with_rel = NeuralDataset(scenes.ds.assign_coords(reliability=("neuron", rel)), path=scenes.path, validate=False)
    selected, _ = select_neurons(with_rel, threshold=floor, progress=progress, **(select_kwargs or {}))
    with np.errstate(invalid="ignore"):
        below = np.flatnonzero(selected.ds["reliability"].values < threshold)
    if not below.size:
        return None
    extra = NeuralDataset(selected.ds.isel(neuron=below), path=scenes.path, validate=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN neurons below the threshold: left out silently
        targets, _n_bad = _targets_from_dataset(extra)
    return targets if targets.y.shape[1] else None


def _reliability_scores(layers, cutoffs, targets, extra, R_all, R_extra, srp_flags, layer_tri, flat, rsa_constant,
                        model, train_type, layer_grams=None, cka_constant=None, cka_estimator="biased",
                        halves=None) -> pd.DataFrame:
    """The ``scores_reliability`` table: scores per layer, metric, area and reliability cutoff.

    At each cutoff the neurons are those of ``targets`` and ``extra`` whose reliability is at
    least the cutoff. SRP-Ridge: the mean per-neuron r over them (finite values; per-neuron
    scores do not depend on the other neurons). RSA: the layer RDM's Pearson r with their neural
    RDM (all trials). Ceilings as in the main tables, for those neurons.

    Parameters
    ----------
    layers : pandas.DataFrame
        One row per layer (``name, index, depth``).
    cutoffs : tuple of float
    targets, extra : Targets (extra may be None)
    R_all : ndarray (n_layers, n_neurons) or None
        Per-neuron SRP-Ridge r of ``targets`` (all trials).
    R_extra : ndarray (n_layers, n_extra) or None
        The same for ``extra``.
    srp_flags : tuple of ndarray (n_layers,), bool
        ``(penalty_dominated, constant)`` of the SRP-Ridge layers.
    layer_tri : ndarray (n_pairs, n_layers) or None
        Layer RDM triangles (:func:`_layer_triangles`); None skips RSA.
    flat : ndarray (n_pairs,)
    rsa_constant : ndarray (n_layers,), bool
        Layers whose RSA is NaN (constant or indistinct RDM).
    model, train_type : str
    layer_grams : sequence of ndarray (n_stimuli, n_stimuli), optional
        Layer Grams for CKA (:func:`_cka_scores`): the layer's CKA with the neural Gram of the
        neurons passing the cutoff; None skips CKA.
    cka_constant : ndarray (n_layers,), bool
        Layers whose CKA is NaN.
    cka_estimator : {"biased", "unbiased"}
    halves : list, optional
        :func:`_split_half_means` of the trials of ``targets`` and ``extra`` stacked, if already
        computed.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RELIABILITY_COLUMNS`; an (area, cutoff) that no neuron passes has no row.
    """
    from ..reliability import noise_ceiling

    parts = [targets] + ([extra] if extra is not None else [])
    rel = np.concatenate([t.neurons["reliability"].to_numpy(dtype=np.float64) for t in parts])
    area = np.concatenate([t.neurons["area"].to_numpy().astype(str) for t in parts])
    areas = np.array(list(pd.unique(area)), dtype=str)
    n_cut, n_area, n_layers = len(cutoffs), len(areas), len(layers)
    if not (n_cut and n_area and n_layers):
        return pd.DataFrame(columns=RELIABILITY_COLUMNS)
    with np.errstate(invalid="ignore"):
        passes = rel[:, None] >= np.asarray(cutoffs)[None, :]  # (n_total, n_cut)
    # one column per (cutoff, area), cutoff-major: the neurons counted there
    W = (passes[:, :, None] & (area[:, None] == areas[None, :])[:, None, :]).reshape(len(rel), n_cut * n_area)
    col_cut = np.repeat(np.asarray(cutoffs, dtype=np.float64), n_area)
    col_area = np.tile(areas, n_cut)
    size = W.sum(0)
    keep = np.flatnonzero(size > 0)
    names = np.array([str(v) for v in layers["name"]], dtype=object)
    index = layers["index"].to_numpy(dtype=np.int64)
    depth = layers["depth"].to_numpy(dtype=np.float64)
    k = len(keep)
    frames = []

    def frame(metric, score, n_nan, ceiling, dominated, constant):
        return pd.DataFrame({
            "model": model, "train_type": train_type, "layer": np.repeat(names, k),
            "layer_index": np.repeat(index, k), "layer_depth": np.repeat(depth, k), "metric": metric,
            "area": np.tile(col_area[keep], n_layers), "cutoff": np.tile(col_cut[keep], n_layers),
            "score": score[:, keep].ravel(), "n_neurons": np.tile(size[keep].astype(np.int64), n_layers),
            "n_nan": n_nan[:, keep].ravel().astype(np.int64), "ceiling": np.tile(ceiling[keep], n_layers),
            "few_neurons": np.tile(size[keep] < MIN_AREA_NEURONS, n_layers),
            "penalty_dominated": np.repeat(np.asarray(dominated, dtype=bool), k),
            "constant": np.repeat(np.asarray(constant, dtype=bool), k)})

    if R_all is not None:
        Rp = R_all if R_extra is None else np.concatenate([R_all, R_extra], axis=1)  # (n_layers, n_total)
        finite = np.isfinite(Rp)
        Wf = W.astype(np.float64)
        total = np.where(finite, Rp, 0.0) @ Wf
        n_ok = finite.astype(np.float64) @ Wf
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(n_ok > 0, total / np.maximum(n_ok, 1.0), np.nan)
        per_neuron = noise_ceiling(rel)
        ceiling = np.full(W.shape[1], np.nan)
        for j in keep:
            v = per_neuron[W[:, j]]
            if np.isfinite(v).any():
                ceiling[j] = float(np.nanmean(v))
        frames.append(frame("srp_ridge", score, size[None, :] - np.rint(n_ok).astype(np.int64), ceiling,
                            *srp_flags))
    # the split-half ceilings of each area's nested neuron sets, from sums over the differences
    have_trials = all(t.trials is not None and t.trials.shape[2] >= 2 for t in parts)
    want_rsa = layer_tri is not None and have_trials
    want_cka = layer_grams is not None and have_trials and cka_estimator == "biased"
    ceiling_rsa, ceiling_cka = np.full(W.shape[1], np.nan), np.full(W.shape[1], np.nan)
    if (layer_tri is not None or layer_grams is not None) and have_trials and halves is None:
        halves = _split_half_means([t.trials for t in parts])
    if want_rsa or want_cka:
        for g in areas:
            cols = sorted((j for j in keep if col_area[j] == g), key=lambda j: -col_cut[j])  # smallest set first
            r_rsa, r_cka = _nested_ceilings(halves, [W[:, j] for j in cols], rsa=want_rsa, cka=want_cka)
            ceiling_rsa[cols], ceiling_cka[cols] = r_rsa, r_cka
    if layer_tri is not None:
        y = np.concatenate([t.y for t in parts], axis=1)
        tri = np.full((len(flat), W.shape[1]), np.nan)
        for j in keep:
            m = W[:, j]
            if m.sum() >= 2:
                tri[:, j] = rdm(y[:, m]).ravel()[flat]
        values = _pearson_between_columns(layer_tri, tri)
        values[np.asarray(rsa_constant, dtype=bool)] = np.nan
        frames.append(frame("rsa", values, np.isnan(values).astype(np.int64), ceiling_rsa,
                            np.zeros(n_layers, dtype=bool), rsa_constant))
    if layer_grams is not None:
        y = np.concatenate([t.y for t in parts], axis=1)
        ceiling = ceiling_cka
        neural = []
        for j in keep:
            neural.append(linear_gram(y[:, W[:, j]]))
            if have_trials and not want_cka:
                ceiling[j] = _cka_ceiling_of(halves, W[:, j], cka_estimator)
        values = np.full((n_layers, W.shape[1]), np.nan)
        values[:, keep] = cka_matrix(list(layer_grams), neural, cka_estimator)
        values[np.asarray(cka_constant, dtype=bool)] = np.nan
        frames.append(frame("cka", values, np.isnan(values).astype(np.int64), ceiling,
                            np.zeros(n_layers, dtype=bool), cka_constant))
    if not frames:
        return pd.DataFrame(columns=RELIABILITY_COLUMNS)
    return pd.concat(frames, ignore_index=True)[RELIABILITY_COLUMNS]


# --------------------------------------------------------------------------- scoring core
def score_reduced(layers, regression_features=None, layer_rdms=None, targets: Targets = None, *,
                   model="model", train_type="trained", alpha=1.0, features_are_gram=False,
                   groupings=GROUPINGS, progress=None, loo_precision="float32", scale_aware=True, check=True,
                   reliability_cutoffs=None, extra_targets: Targets | None = None, layer_grams=None,
                   cka_estimator="biased", alphas=None, n_boot=0):
    """Score reduced layer features (projections or Grams, and RDMs) against trial-averaged responses.

    The scoring step of :func:`score_model`; :func:`score_features` reduces a user's own
    features and calls it.

    Parameters
    ----------
    layers : pandas.DataFrame
        One row per layer: ``name, index, depth`` (as ``FeatureSet.layers``).
    regression_features : list of ndarray, optional
        Per layer, the reduced features (n_stimuli, n_components), or with
        ``features_are_gram=True`` the doubly centered Gram (n_stimuli, n_stimuli).
        ``None`` skips the SRP-Ridge metric.
    layer_rdms : list of ndarray (n_stimuli, n_stimuli), optional
        Per layer RDMs (``None`` skips RSA).
    targets : Targets
        From the dataset (:meth:`Targets.from_dataset`).
    model, train_type : str
    alpha : float or "auto"
        Ridge penalty of SRP-Ridge; ``"auto"``: per neuron (and per trial half), the penalty of
        the grid ``alphas`` with the smallest leave-one-out error (generalized cross-validation,
        as scikit-learn's ``RidgeCV(alphas=grid, alpha_per_target=True)``), and the score from
        the leave-one-out predictions with it. Then no scale-aware score is computed, the
        ``alpha`` column of the ``scores`` tables holds the median chosen penalty of the group's
        neurons (all trials) and ``neuron_scores`` gets a column ``alpha`` (the penalty of each
        neuron); ``penalty_dominated`` flags layers where even the smallest penalty is.
    features_are_gram : bool
    groupings : sequence of str
        Neuron coordinates to score by besides ``area``.
    loo_precision : {"float32", "float64"}
        Arithmetic of the leave-one-out prediction products ``P y``: ``"float32"`` (twice as
        fast) rounds operators and targets to float32 for the product only, sums everything in
        float64 with the exact targets and redoes in float64 the targets whose float32
        predictions are nearly constant or cancel (per-neuron r within about 1e-7 of float64);
        ``"float64"`` keeps every step in float64.
    scale_aware : bool, default True
        Also score every layer with the penalty relative to the layer (metric
        ``"srp_ridge_scaled"``: ``alpha`` times the mean eigenvalue of the layer's centered
        Gram matrix), which does not depend on the scale of the features. All trials only:
        its ``score_odd``/``score_even`` are NaN, and so its summary's ``unbiased_score``.
    check : bool, default True
        Run :func:`check_scores` on the result: a score of exactly 1 or above its area's noise
        ceiling by more than :data:`CEILING_MARGIN` raises :class:`ScoreCheckError`.
    reliability_cutoffs : sequence of float, optional
        Split-half reliability cutoffs of the ``scores_reliability`` table (paper appendix
        A.6): at each cutoff, the neurons of ``targets`` and ``extra_targets`` whose reliability
        is at least the cutoff. For cutoffs below the main selection's threshold, pass in
        ``extra_targets`` every selected neuron down to the lowest cutoff.
    extra_targets : Targets, optional
        Neurons below the threshold of ``targets`` (their ``neurons`` carry ``reliability``),
        scored for ``reliability_cutoffs`` only: their leave-one-out scores are computed in a
        call of their own and every other table is that of ``targets`` alone, unchanged.
    layer_grams : list of ndarray (n_stimuli, n_stimuli), optional
        Per layer, the doubly centered Gram of its features (``GramReducer``): metric ``"cka"``,
        linear CKA with the neural Gram of each group's trial-averaged responses, its ceiling the
        square root of the neural Gram's split-half CKA reliability (Spearman-Brown corrected,
        as the RSA ceiling). ``None`` skips CKA.
    cka_estimator : {"biased", "unbiased"}
        HSIC estimator of CKA (:mod:`mbutils.scoring.cka`).
    alphas : sequence of float, optional
        With ``alpha="auto"``: the penalty grid relative to each layer, multiplied by the mean
        eigenvalue of its centered Gram on the centered stimulus space (``trace / (n - 1)``);
        default :data:`AUTO_ALPHAS` (``numpy.logspace(-3, 5, 17)``).
    n_boot : int, default 0
        Bootstrap draws of the SRP-Ridge, RSA and CKA layer-max and unbiased scores per area:
        table ``bootstrap`` (columns ``model, train_type, metric, area, draw, max_score,
        unbiased_score``; see :mod:`mbutils.scoring._bootstrap`). Each draw resamples the
        stimuli (and, for SRP-Ridge, each area's neurons) with replacement and reuses the
        leave-one-out predictions, the RDMs and the Grams computed here; draw ``d`` is the same
        for every model scored on the same neurons. SRP-Ridge is left out with
        ``alpha="auto"``, CKA with ``cka_estimator="unbiased"``, and the scale-aware SRP-Ridge
        score always. 0: no table.

    Returns
    -------
    dict with DataFrames ``scores``, ``scores_groups``, ``neuron_scores`` (long format; the
    ``scores`` tables carry ``score_odd``/``score_even`` and ``ceiling`` for the summary, and
    ``penalty_dominated``: True for the SRP-Ridge rows of layers whose leave-one-out
    predictions are the leave-one-out mean up to at most half its size, so that every neuron's
    r is at most -0.87 whatever the layer; see :func:`~mbutils.scoring._loo.penalty_deviation`;
    and ``constant``: True for the rows of layers whose features (SRP-Ridge: centered sum of
    squares at most 1e-10 of the sum of squares) or RDM (RSA) are constant across stimuli, which
    score NaN; a warning counts and names them), and ``scores_reliability`` (columns
    :data:`RELIABILITY_COLUMNS`, one row per layer, metric, area and cutoff: SRP-Ridge the mean
    per-neuron r over the neurons passing the cutoff, RSA the correlation with the neural RDM of
    the neurons passing it; ``n_neurons`` those neurons, ``ceiling`` their noise ceiling; empty
    without ``reliability_cutoffs``; CKA the layer Gram's CKA with the neural Gram of the neurons
    passing it). CKA rows (metric ``"cka"``,
    with ``layer_grams``) have ``score_odd``/``score_even`` from the odd- and even-trial Grams.
    """
    _check_choice(loo_precision, ("float32", "float64"), "loo_precision")
    _check_choice(cka_estimator, CKA_ESTIMATORS, "cka_estimator")
    auto = isinstance(alpha, str)
    if auto:
        _check_choice(alpha, ("auto",), "alpha")
        alphas = _check_alphas_auto(alphas)
    else:
        alpha = float(alpha)
    cutoffs = _check_cutoffs(reliability_cutoffs)
    check_n_boot(n_boot)  # before any work
    if extra_targets is not None and not cutoffs:
        raise ValueError("extra_targets are scored for reliability_cutoffs only; give reliability_cutoffs too, or "
                         "leave extra_targets out")
    if extra_targets is not None and extra_targets.y.shape[0] != targets.y.shape[0]:
        raise ValueError(f"extra_targets have {extra_targets.y.shape[0]} stimuli, targets {targets.y.shape[0]}; "
                         "give targets of the same stimuli")
    extra_y = extra_targets.y if extra_targets is not None else None
    if progress is None:
        from ..config import get_config

        progress = get_config().progress
    neurons = targets.neurons
    n_neur = targets.y.shape[1]
    label_sets = {"area": neurons["area"].to_numpy()}
    for g in groupings:
        label_sets[g] = neurons[g].to_numpy()
    # codes of the groups per grouping (for vectorized group means)
    codes = {}
    for key, labels in label_sets.items():
        groups = pd.unique(labels)
        index = {g: i for i, g in enumerate(groups)}
        codes[key] = (groups, np.array([index[v] for v in labels], dtype=np.intp) if len(labels) else
                      np.zeros(0, np.intp))

    with contextlib.ExitStack() as stack:
        # the regression runs in the background (worker threads, each with a single-threaded
        # BLAS) while this thread does the rest
        regression = None
        kept = {}  # the bootstrap draws of SRP-Ridge, taken while each layer's operator is held
        if regression_features is not None:
            draws = prepare_srp_draws(targets, n_boot) if check_n_boot(n_boot) and not auto else None
            n_workers = stack.enter_context(blas_workers())
            background = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="mbutils-score"))
            regression = background.submit(_regression_scores, regression_features, len(layers), targets,
                                           alpha, features_are_gram, n_workers, loo_precision,
                                           bool(scale_aware), extra_y, alphas, keep=kept, draws=draws)
        halves = None  # split-half means of the targets' and extra neurons' trials, for every CKA ceiling
        parts = [targets] + ([extra_targets] if extra_targets is not None and cutoffs else [])
        if ((layer_grams is not None or layer_rdms is not None)
                and all(t.trials is not None and t.trials.shape[2] >= 2 for t in parts)
                and len({t.trials.shape[2] for t in parts}) == 1):
            halves = _split_half_means([t.trials for t in parts])
        complete = halves is not None and bool(np.isfinite(targets.trials).all())
        ceilings = {key: _ceilings(targets, key, cka_estimator=cka_estimator if layer_grams is not None else None,
                                   halves=halves, complete=complete, with_rsa=layer_rdms is not None)
                    for key in label_sets}
        if layer_grams is not None:
            cka_columns, cka_values, cka_constant = _cka_scores(targets, layer_grams, len(layers), label_sets, codes,
                                                                cka_estimator)
            cka_sizes = [int((label_sets[key] == g).sum()) for key, g in cka_columns]
        layer_tri = tri_index = rsa_constant = None
        if layer_rdms is not None:
            tri_index, layer_tri = _layer_triangles(layer_rdms, len(layers), targets.y.shape[0])
            rsa_columns, rsa_values, rsa_constant = _rsa_scores(targets, layer_tri, tri_index, len(layers), label_sets,
                                                                codes)
            rsa_sizes = [int((label_sets[key] == g).sum()) for key, g in rsa_columns]
        if regression is not None and len(layers):
            ns_columns = _neuron_table_columns(layers, neurons, model, train_type)
        R = R_scaled = R_extra = chosen = None
        if regression is not None:  # (n_layers, 3 * n_neur) each
            R, R_scaled, dominated, alpha_scaled, R_extra, chosen = regression.result()
            if layer_grams is not None and len(alpha_scaled) == len(cka_constant):
                # a layer constant against the scale of its features (which a Gram alone does not
                # show): NaN for CKA too
                cka_constant = cka_constant | np.isnan(alpha_scaled)
                cka_values[cka_constant] = np.nan

    rows = []  # (grouping, group, layer..., metric, score, score_odd, score_even, n, n_nan)
    neuron_scores = []
    it = range(len(layers))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"scoring {model}", unit="layer")
    for i in it:
        lay = layers.iloc[i]
        base = dict(layer=str(lay["name"]), layer_index=int(lay["index"]), layer_depth=float(lay["depth"]),
                    n_nonfinite=int(lay["n_nonfinite"]) if "n_nonfinite" in lay.index else 0)
        if regression_features is not None:
            neuron_scores.append(R[i][:n_neur])
            flag = bool(dominated[i])
            flat = bool(np.isnan(alpha_scaled[i]))
            for metric, RR, extra in (("srp_ridge", R, dict(penalty_dominated=flag, alpha=np.nan if auto else alpha,
                                                            constant=flat)),
                                      (SCALED_METRIC, R_scaled, dict(penalty_dominated=False,
                                                                     alpha=float(alpha_scaled[i]), constant=flat))):
                if RR is None:
                    continue
                r3 = RR[i]
                r_all, r_odd, r_even = r3[:n_neur], r3[n_neur:2 * n_neur], r3[2 * n_neur:]
                for key in label_sets:
                    groups, code = codes[key]
                    full = _group_means_coded(r_all, code, len(groups))
                    odd = _group_means_coded(r_odd, code, len(groups))
                    even = _group_means_coded(r_even, code, len(groups))
                    medians = _group_medians(chosen[i, :n_neur], code, len(groups)) if auto and metric == "srp_ridge" \
                        else None
                    for j, g in enumerate(groups):
                        if medians is not None:
                            extra = dict(extra, alpha=medians[j])
                        rows.append(dict(grouping=key, group=g, **base, metric=metric, score=full[0][j],
                                         score_odd=odd[0][j], score_even=even[0][j], n_neurons=int(full[1][j]),
                                         n_nan=int(full[2][j]), ceiling=ceilings[key][g]["srp_ridge"], **extra))
        if layer_rdms is not None:
            for j, (key, g) in enumerate(rsa_columns):
                v = rsa_values[i, 3 * j:3 * j + 3]
                rows.append(dict(grouping=key, group=g, **base, metric="rsa", score=float(v[0]),
                                 score_odd=float(v[1]), score_even=float(v[2]),
                                 n_neurons=rsa_sizes[j],
                                 n_nan=int(np.isnan(v[0])), ceiling=ceilings[key][g]["rsa"],
                                 penalty_dominated=False, alpha=np.nan, constant=bool(rsa_constant[i])))
        if layer_grams is not None:
            for j, (key, g) in enumerate(cka_columns):
                v = cka_values[i, 3 * j:3 * j + 3]
                rows.append(dict(grouping=key, group=g, **base, metric="cka", score=float(v[0]),
                                 score_odd=float(v[1]), score_even=float(v[2]), n_neurons=cka_sizes[j],
                                 n_nan=int(np.isnan(v[0])), ceiling=ceilings[key][g]["cka"],
                                 penalty_dominated=False, alpha=np.nan, constant=bool(cka_constant[i])))
    table = pd.DataFrame(rows)
    if table.empty:
        table = pd.DataFrame(columns=["grouping", "group", "layer", "layer_index", "layer_depth", "metric", "score",
                                      "score_odd", "score_even", "n_neurons", "n_nan", "ceiling",
                                      "penalty_dominated", "alpha", "n_nonfinite", "constant"])
    table.insert(0, "train_type", train_type)
    table.insert(0, "model", model)
    with np.errstate(invalid="ignore", divide="ignore"):
        table["score_normalized"] = table["score"] / table["ceiling"]
    cols = ["model", "train_type", "layer", "layer_index", "layer_depth", "metric"]
    table["penalty_dominated"] = table["penalty_dominated"].astype(bool)
    table["constant"] = table["constant"].astype(bool)
    _warn_constant_layers(table, len(layers))
    tail = ["score", "score_normalized", "n_neurons", "n_nan", "score_odd", "score_even", "ceiling",
            "penalty_dominated", "alpha", "n_nonfinite", "constant"]
    scores = table[table["grouping"] == "area"].rename(columns={"group": "area"})[cols + ["area"] + tail]
    groups = table[table["grouping"] != "area"].copy()
    groups["group"] = groups["group"].astype(str)
    groups = groups[cols + ["grouping", "group"] + tail]
    if neuron_scores:
        # fresh arrays: no copy, and no consolidation of the blocks (slow for millions of rows)
        ns = pd.DataFrame({**ns_columns, "score": np.concatenate(neuron_scores),
                           "penalty_dominated": np.repeat(dominated, n_neur),
                           **({"alpha": chosen[:, :n_neur].ravel()} if auto else {})}, copy=False)
    else:
        ns = pd.DataFrame(columns=["model", "train_type", "layer", "layer_index", "layer_depth", "cell_specimen_id",
                                   "area", "cre_line", "imaging_depth", "score", "penalty_dominated"])
    scores = scores.reset_index(drop=True)
    _mark_few_neurons(scores, neurons)
    out = {"scores": scores, "scores_groups": groups.reset_index(drop=True), "neuron_scores": ns}
    srp_flags = (dominated, np.isnan(alpha_scaled)) if R is not None else None
    out["scores_reliability"] = _reliability_scores(
        layers, cutoffs, targets, extra_targets, R[:, :n_neur] if R is not None else None, R_extra, srp_flags,
        layer_tri, tri_index, rsa_constant, model, train_type,
        layer_grams=layer_grams, cka_constant=cka_constant if layer_grams is not None else None,
        cka_estimator=cka_estimator, halves=halves)
    if check_n_boot(n_boot):
        with blas_workers() as n_boot_workers:
            out["bootstrap"] = bootstrap_scores(
                targets, n_boot, model=model, train_type=train_type, srp=kept.get("srp_draws"),
                valid=np.isfinite(R) if R is not None else None, flagged=dominated if R is not None else None,
                layer_tri=layer_tri, rsa_constant=rsa_constant, n_workers=n_boot_workers,
                # CKA draws with the biased estimator (the unbiased one has no resampled form here)
                layer_grams=layer_grams if layer_grams is not None and cka_estimator == "biased" else None,
                cka_constant=cka_constant if layer_grams is not None else None)
    if check:
        check_scores(out["scores"], ns)
    return out


def _warn_constant_layers(table: pd.DataFrame, n_layers: int) -> None:
    """A warning that counts and names the layers scored NaN because their features (or RDM) are
    constant across stimuli, or nearly so against their scale (column ``constant``)."""
    if not len(table) or not table["constant"].any():
        return
    parts = []
    for metric, g in table[table["constant"]].groupby("metric", sort=False):
        names = list(dict.fromkeys(g["layer"]))
        shown = ", ".join(names[:5]) + (f", ... ({len(names) - 5} more)" if len(names) > 5 else "")
        parts.append(f"{metric}: {len(names)} of {n_layers} ({shown})")
    warnings.warn("layers constant across stimuli (or nearly so against their scale) score NaN; "
                  + "; ".join(parts), RuntimeWarning, stacklevel=3)


def _mark_few_neurons(scores: pd.DataFrame, neurons: pd.DataFrame) -> None:
    """Column ``few_neurons`` (area rows of an area with fewer than :data:`MIN_AREA_NEURONS`
    selected neurons), and a warning that names those areas."""
    counts = neurons["area"].value_counts()
    few = sorted(a for a, c in counts.items() if c < MIN_AREA_NEURONS)
    scores["few_neurons"] = scores["area"].isin(few).to_numpy() if len(scores) else np.zeros(0, dtype=bool)
    if few:
        listed = ", ".join(f"{a} ({int(counts[a])})" for a in few)
        warnings.warn(f"areas with fewer than {MIN_AREA_NEURONS} neurons after the selection: {listed}; their scores "
                      "are marked few_neurons=True and rest on few neurons", RuntimeWarning, stacklevel=3)


def _check_metrics_alpha(metrics, alpha) -> tuple:
    """The metrics as a tuple of known names, and alpha finite and positive (or ``"auto"``), or a
    ValueError."""
    metrics = tuple([metrics] if isinstance(metrics, str) else metrics)
    for m in metrics:
        _check_choice(m, METRICS, "metric")
    if not metrics:
        raise ValueError(f"metrics is empty; expected at least one of {list(METRICS)}")
    if isinstance(alpha, str):
        if alpha != "auto":
            raise ValueError(f"alpha={alpha!r}; expected a finite positive penalty or 'auto'")
        return metrics
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"alpha={alpha!r}; expected a finite positive penalty or 'auto'")
    return metrics


def _feature_layers(features) -> tuple[list, list]:
    """``(names, arrays)`` of a user's features: a list of arrays, a dict by layer name, an
    xarray DataArray (one layer) or Dataset (one variable per layer)."""
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - xarray is a dependency
        xr = None
    if xr is not None and isinstance(features, xr.Dataset):
        features = {str(k): v for k, v in features.data_vars.items()}
    elif xr is not None and isinstance(features, xr.DataArray):
        features = {str(features.name or "features"): features}
    elif isinstance(features, np.ndarray):
        features = [features]
    if isinstance(features, dict):
        names, arrays = [str(k) for k in features], list(features.values())
    elif isinstance(features, (list, tuple)):
        names, arrays = [f"layer{i}" for i in range(len(features))], list(features)
    else:
        raise TypeError(f"features must be an array, a list of arrays (one per layer), a dict of arrays by layer "
                        f"name or an xarray DataArray/Dataset; got {type(features).__name__}")
    if not arrays:
        raise ValueError("features is empty; expected at least one layer")
    out = []
    for name, x in zip(names, arrays):
        x = np.asarray(getattr(x, "values", x))
        if x.ndim < 2:
            raise ValueError(f"features of layer {name!r} have shape {x.shape}; expected (n_stimuli, ...) with "
                             "one row per stimulus")
        if not np.issubdtype(x.dtype, np.number):
            raise TypeError(f"features of layer {name!r} have dtype {x.dtype}; expected numbers")
        out.append(x.reshape(x.shape[0], -1))
    return names, out


def score_features(features, dataset, *, metrics=DEFAULT_METRICS, n_components=N_COMPONENTS, alpha=ALPHA,
                   threshold=RELIABILITY_THRESHOLD, seed=0, model="features", train_type="user", groupings=GROUPINGS,
                   progress=None, check=True, select_kwargs=None, reliability_cutoffs=RELIABILITY_CUTOFFS,
                   alphas=None, cka_estimator="biased", n_boot=DEFAULT_N_BOOT) -> dict:
    """Score features you computed yourself, layer by layer, as :func:`score_model` scores a model.

    Each layer is reduced as the paper does (a sparse random projection to ``n_components``
    for SRP-Ridge when it has more features; its RDM for RSA) and scored against the reliable
    neurons of ``dataset``, with the same checks (:func:`check_scores`), flags
    (``penalty_dominated``) and scale-aware score as a model of the zoo.

    Parameters
    ----------
    features : array, list of arrays, dict of arrays, xarray.DataArray or xarray.Dataset
        Per layer, an array of shape (n_stimuli, ...) whose rows are the dataset's scenes in
        the order of ``dataset.scenes().stimuli`` (the 118 natural scenes of the Brain
        Observatory in their id order); trailing axes are flattened. A dict or a Dataset names
        the layers (their order is the depth order); a list is named ``layer0, layer1, ...``.
    dataset : str, pathlib.Path or NeuralDataset
    metrics : sequence of {"srp_ridge", "rsa", "cka"}, default ("srp_ridge", "rsa")
        ``"cka"``: linear CKA of the layer's Gram (all features, float64 arithmetic for
        layers of at most 16,384 features) with each area's.
    n_components : int, default 4096
    alpha : float or "auto", default 1.0
        As in :func:`score_reduced` (with ``alphas``).
    threshold : float, default 0.8
        Split-half reliability threshold of the neuron selection.
    seed : int
        Seed of the random projection.
    model, train_type : str
        Labels of the rows of the tables.
    groupings : sequence of str
        Neuron coordinates to score by besides ``area``.
    progress : bool, optional
    check : bool, default True
        As in :func:`score_reduced`.
    select_kwargs : dict, optional
        More arguments for :func:`mbutils.data.select_neurons`.
    reliability_cutoffs : sequence of float, default :data:`RELIABILITY_CUTOFFS`
        As in :func:`score_model`.
    alphas : sequence of float, optional
        The relative penalty grid of ``alpha="auto"`` (see :func:`score_reduced`).
    cka_estimator : {"biased", "unbiased"}
    n_boot : int, default :data:`~mbutils.scoring._bootstrap.DEFAULT_N_BOOT`
        As in :func:`score_model`.

    Returns
    -------
    dict of pandas.DataFrame
        ``scores``, ``scores_groups``, ``neuron_scores``, ``summary``,
        ``scores_reliability`` and ``bootstrap``, as :func:`score_model` returns them.

    Examples
    --------
    >>> import numpy as np
    >>> from mbutils.scoring import score_features
    >>> pixels = np.random.default_rng(0).normal(size=(118, 64, 64))           # doctest: +SKIP
    >>> tables = score_features({"pixels": pixels}, "data/synthetic.nc")     # doctest: +SKIP
    >>> tables["summary"][["metric", "area", "max_score"]]                    # doctest: +SKIP
    """
    from ..reduction import GramReducer, RDMReducer, SparseRandomProjection

    metrics = _check_metrics_alpha(metrics, alpha)
    cutoffs = _check_cutoffs(reliability_cutoffs)
    check_n_boot(n_boot)  # before any work
    names, arrays = _feature_layers(features)
    data, _path = _as_dataset(dataset)
    targets, selected, _n_bad, report, scenes = _select_targets(data, threshold, progress, select_kwargs)
    extra = _extra_targets(scenes, report, threshold, min(cutoffs), progress, select_kwargs) if cutoffs else None
    scenes = None
    n = selected.n_stimuli if hasattr(selected, "n_stimuli") else targets.y.shape[0]
    for name, x in zip(names, arrays):
        if x.shape[0] != n:
            raise ValueError(f"features of layer {name!r} have {x.shape[0]} rows; the dataset has {n} scenes "
                             "(one row per scene, in the order of dataset.scenes().stimuli)")
    srp = SparseRandomProjection(n_components=n_components, seed=seed)
    rdm_reducer = RDMReducer()
    gram_reducer = GramReducer(precision="auto")
    regression, rdms, grams = [], [], []
    for x in arrays:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        if "srp_ridge" in metrics:
            regression.append(srp(x32) if x32.shape[1] > n_components else x32)
        if "rsa" in metrics:
            rdms.append(rdm_reducer(x32))
        if "cka" in metrics:
            grams.append(gram_reducer(x32))
    k = len(arrays)
    layers = pd.DataFrame({"name": names, "index": np.arange(k), "depth": (np.arange(k) + 1) / k,
                           "n_features": [x.shape[1] for x in arrays], "module_type": "features"})
    tables = score_reduced(layers, regression if "srp_ridge" in metrics else None,
                           rdms if "rsa" in metrics else None, targets, model=model, train_type=train_type,
                           alpha=alpha, groupings=groupings, progress=progress, check=check,
                           reliability_cutoffs=cutoffs, extra_targets=extra,
                           layer_grams=grams if "cka" in metrics else None, cka_estimator=cka_estimator,
                           alphas=alphas, n_boot=n_boot)
    tables["summary"] = attach_intervals(summarize_scores(tables["scores"]), tables.get("bootstrap"))
    return tables


class ScoreCheckError(ValueError):
    """Scores outside what the data allow (exactly 1, or above the noise ceiling): not results."""


def check_scores(scores: pd.DataFrame, neuron_scores: pd.DataFrame | None = None, margin=CEILING_MARGIN) -> None:
    """Raise :class:`ScoreCheckError` for scores that no noisy recording allows.

    No neuron of a recording with trial-to-trial noise is predicted perfectly, and no area score
    can exceed what the area's own repeats agree on. Flagged are: an area score (any metric) of
    exactly 1; an area score above its noise ceiling by more than ``margin``; a neuron's score of
    exactly 1 (within 1e-9). Such a number comes from arithmetic that failed (or from a dataset without
    noise), never from a layer, so it is reported with its layers instead of being written.

    Parameters
    ----------
    scores : pandas.DataFrame
        A ``scores`` table (columns ``layer, metric, area, score, ceiling``).
    neuron_scores : pandas.DataFrame, optional
        A ``neuron_scores`` table.
    margin : float
    """
    problems = []
    if len(scores):
        sc = scores["score"].to_numpy(dtype=float)
        ceil = scores["ceiling"].to_numpy(dtype=float) if "ceiling" in scores.columns else np.full(len(sc), np.nan)
        with np.errstate(invalid="ignore"):
            one = sc >= 1.0 - 1e-9
            above = np.isfinite(ceil) & (sc > ceil + margin)
        for i in np.flatnonzero(one | above):
            row = scores.iloc[i]
            what = "exactly 1" if one[i] else f"above the noise ceiling {ceil[i]:.3f} by more than {margin}"
            problems.append(f"layer {row['layer']!r}, {row['metric']}, area {row['area']}: score {sc[i]:.6f} ({what})")
    if neuron_scores is not None and len(neuron_scores):
        r = neuron_scores["score"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(r >= 1.0 - 1e-9)
        for layer, n in pd.Series(neuron_scores["layer"].to_numpy()[bad]).value_counts(sort=False).items():
            problems.append(f"layer {layer!r}, srp_ridge: {n} neurons score exactly 1")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ScoreCheckError(
            f"{len(problems)} scores outside what the data allow: {shown}. These are errors, not results: "
            f"report them with the model and dataset (check=False returns them for inspection)")


def summarize_scores(scores: pd.DataFrame, by="area", include_flagged=False) -> pd.DataFrame:
    """Layer maxima per (model, train_type, metric, area): the paper's "SRP-Ridge Max" and "RSA Max".

    Parameters
    ----------
    scores : pandas.DataFrame
        ``scores.parquet`` (or ``scores_groups`` with ``by="group"``; then ``grouping`` is kept).
    by : str, default "area"
    include_flagged : bool, default False
        Let penalty-dominated layers (``penalty_dominated``) compete for the maximum. By
        default they are left out (their scores measure the penalty, not the layer) and counted
        in ``n_flagged``.

    Returns
    -------
    pandas.DataFrame
        Columns ``model, train_type, metric, <by>, max_score, best_layer, best_layer_index,
        best_layer_depth, unbiased_score, ceiling, max_score_normalized, overall_score, n_layers,
        n_flagged`` (``n_layers`` counts every layer, ``n_flagged`` the penalty-dominated ones).
        ``unbiased_score``: the best layer chosen on odd trials scored on even trials and vice
        versa, averaged (needs ``score_odd``/``score_even``). ``overall_score``: the mean of the
        SRP-Ridge Max and the RSA Max of the same model and area (the paper's ranking score),
        repeated on both metrics' rows.
    """
    keys = ["model", "train_type", "metric"] + (["grouping"] if "grouping" in scores.columns and by == "group" else [])
    keys.append(by)
    out = []
    for key, g in scores.groupby(keys, sort=True):
        g = g.sort_values("layer_index")
        rec = dict(zip(keys, key))
        rec["n_layers"] = len(g)
        if "few_neurons" in g.columns:
            rec["few_neurons"] = bool(g["few_neurons"].any())
        flagged = g["penalty_dominated"].to_numpy(dtype=bool) if "penalty_dominated" in g.columns \
            else np.zeros(len(g), dtype=bool)
        rec["n_flagged"] = int(flagged.sum())
        if not include_flagged:
            g = g[~flagged]
        sc = g["score"].to_numpy(dtype=float)
        if np.isfinite(sc).any():
            j = int(np.nanargmax(sc))
            best = g.iloc[j]
            rec.update(max_score=float(sc[j]), best_layer=str(best["layer"]), best_layer_index=int(best["layer_index"]),
                       best_layer_depth=float(best["layer_depth"]))
        else:
            rec.update(max_score=np.nan, best_layer=None, best_layer_index=-1, best_layer_depth=np.nan)
        un = np.nan
        if {"score_odd", "score_even"} <= set(g.columns):
            odd, even = g["score_odd"].to_numpy(float), g["score_even"].to_numpy(float)
            if np.isfinite(odd).any() and np.isfinite(even).any():
                un = 0.5 * (even[int(np.nanargmax(odd))] + odd[int(np.nanargmax(even))])
        rec["unbiased_score"] = float(un)
        ceil = float(g["ceiling"].iloc[0]) if "ceiling" in g.columns else np.nan
        rec["ceiling"] = ceil
        rec["max_score_normalized"] = rec["max_score"] / ceil if np.isfinite(ceil) and ceil > 0 else np.nan
        out.append(rec)
    summary = pd.DataFrame(out)
    if summary.empty:
        return summary
    pair = [k for k in keys if k != "metric"]
    overall = (summary[summary["metric"].isin(PAPER_METRICS)].groupby(pair, dropna=False)["max_score"]
               .agg(lambda s: s.mean() if s.notna().sum() == len(PAPER_METRICS) else np.nan)
               .rename("overall_score"))
    summary = summary.merge(overall.reset_index(), on=pair, how="left")
    return summary


# --------------------------------------------------------------------------- whole pipeline
def _versions() -> dict:
    """Versions of Python and of the packages behind the numbers, and the git commit of the
    source checkout when mbutils runs from one."""
    import importlib.metadata as md
    import subprocess

    out = {"python": platform.python_version()}
    for pkg in ("mbutils", "numpy", "scipy", "scikit-learn", "pandas", "xarray", "torch", "torchvision", "timm",
                "numba"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        try:
            proc = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                  timeout=10)
            if proc.returncode == 0:
                out["git_commit"] = proc.stdout.strip()
                dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                       capture_output=True, text=True, timeout=10)
                out["git_dirty"] = bool(dirty.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    return out


def _strict_json(value):
    """``value`` with every float that is not finite as None (strict JSON: no NaN, no Infinity),
    numpy scalars and arrays as Python values."""
    if isinstance(value, dict):
        return {str(k): _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return _strict_json(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def check_out_dir(out_dir, dataset_path=None) -> Path:
    """Check, before any work, that ``out_dir`` can receive a model's tables.

    Parameters
    ----------
    out_dir : str or pathlib.Path
    dataset_path : str or pathlib.Path, optional
        The dataset file (an output folder must not be it).

    Returns
    -------
    pathlib.Path
        ``out_dir`` resolved against the working directory, created if missing.

    Raises
    ------
    ValueError
        An empty path, a path that is a file (or the dataset), or a folder that cannot be written.
    """
    import shutil
    import tempfile

    if out_dir is None or str(out_dir).strip() == "":
        raise ValueError("the output folder is empty; give a folder for the tables, e.g. --out results/mymodel")
    out = Path(out_dir).expanduser().resolve()
    if dataset_path is not None and out == Path(dataset_path).expanduser().resolve():
        raise ValueError(f"the output folder {str(out)!r} is the dataset file; give another folder")
    if out.exists() and not out.is_dir():
        raise ValueError(f"the output folder {str(out)!r} is a file; give a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as err:
        raise ValueError(f"cannot write to the output folder {str(out)!r} ({err.strerror or err}); give a folder "
                         "you can write to") from None
    free = shutil.disk_usage(out).free
    if free < _MIN_FREE_BYTES:
        raise ValueError(f"only {free / 2**20:.0f} MiB free where the output folder {str(out)!r} lives; the tables "
                         f"of one model take up to about {_MIN_FREE_BYTES / 2**20:.0f} MiB")
    return out


#: free space an output folder needs before scoring starts (the tables of one model with
#: 100,000 neurons and 300 layers take about this much)
_MIN_FREE_BYTES = 256 * 2 ** 20


def _write_tables(out_dir: Path, tables: dict, provenance: dict) -> None:
    """Write the tables as a set: ``provenance.json`` goes first (so that a folder being
    rewritten is incomplete, not a mix of two runs) and is written again last, after every
    table, marking the set complete (:func:`mbutils.results.load_model_results` reads only
    complete folders)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "provenance.json").unlink(missing_ok=True)
    for name, df in tables.items():
        with atomic_write(out_dir / f"{name}.parquet") as tmp:
            df.to_parquet(tmp, index=False)
    with atomic_write(out_dir / "provenance.json") as tmp:
        tmp.write_text(json.dumps(_strict_json(provenance), indent=1, allow_nan=False))


def score_model(model, dataset, out_dir, weights="trained", metrics=DEFAULT_METRICS, n_components=4096, alpha=1.0,
                threshold=0.8, mapping="srp", seed=0, cache=True, progress=None, device=None,
                select_kwargs=None, batch_size=None, gram_precision=None, loo_precision="float32",
                reliability_cutoffs=RELIABILITY_CUTOFFS, alphas=None, cka_estimator="biased", n_boot=DEFAULT_N_BOOT):
    """Score one model on one dataset and write tidy Parquet tables into ``out_dir``.

    Steps: the dataset's scenes (stimulus >= 0); neuron selection
    (:func:`mbutils.data.select_neurons`); one streamed pass of the model over the stimuli with
    every layer reduced as it comes (sparse random projection for the regression, the layer's
    RDM for RSA; :func:`mbutils.models.extract`, cached on disk, so a rerun is cheap); ridge GCV
    + Pearson per neuron and RDM correlation per area, Cre line and imaging depth.

    Parameters
    ----------
    model : str or FeatureModel
        A registry name (loaded with ``weights``) or a loaded model.
    dataset : str, pathlib.Path or NeuralDataset
    out_dir : str or pathlib.Path
    weights : {"trained", "random"}
    metrics : sequence of {"srp_ridge", "rsa", "cka"}, default ("srp_ridge", "rsa")
        ``"cka"``: linear CKA of each layer's Gram (all of its features, not the projection)
        with each area's (see :func:`score_reduced`). Its Gram comes from the extraction's
        shared pass over the layer (``GramReducer(precision="auto")``: float64 arithmetic for
        layers of at most 16,384 features, float32 products summed in float64 for larger ones,
        as the RDMs), or is the regression's Gram with ``mapping="exact"``.
    n_components : int, default 4096
        Projection size (``mapping="srp"``) or PCA components (``mapping="pca"``).
    alpha : float or "auto", default 1.0
        Ridge penalty; ``"auto"``: chosen per neuron by generalized cross-validation over
        ``alphas`` times each layer's mean eigenvalue (see :func:`score_reduced`).
    threshold : float, default 0.8
        Split-half reliability threshold of the neuron selection.
    mapping : {"srp", "exact", "pca"}
    seed : int
        Seed of the random projection.
    cache : bool or path
        Feature cache of :func:`mbutils.models.extract`.
    progress : bool, optional
    device : str, optional
    select_kwargs : dict, optional
        More arguments for :func:`mbutils.data.select_neurons`.
    batch_size : int, optional
    gram_precision : {"float32", "float64"}, optional
        Arithmetic of the layer Gram matrices behind the RDMs and the exact mapping
        (see :func:`mbutils.reduction.layer_gram`). Default: float32 products (of
        float64-centered blocks, summed in float64) for the RDMs, which keeps RSA within about
        2e-7 of float64 at half the cost, and float64 for the exact mapping.
    loo_precision : {"float32", "float64"}
        Arithmetic of the leave-one-out prediction products (see :func:`score_reduced`).
    reliability_cutoffs : sequence of float, default :data:`RELIABILITY_CUTOFFS` (0.5 to 0.95)
        Split-half reliability cutoffs of the ``scores_reliability`` table (paper appendix
        A.6, Figure 6). The neurons that pass the selection at the lowest cutoff but not at
        ``threshold`` are scored too, from the same extraction, in a leave-one-out pass of their
        own; every other table (and ``neuron_scores``) holds the neurons of ``threshold`` only
        and is the same as without cutoffs. ``()`` scores no cutoffs.
    alphas : sequence of float, optional
        The relative penalty grid of ``alpha="auto"``; default :data:`AUTO_ALPHAS`
        (``numpy.logspace(-3, 5, 17)``).
    cka_estimator : {"biased", "unbiased"}
        HSIC estimator of the CKA metric (:mod:`mbutils.scoring.cka`).
    n_boot : int, default :data:`~mbutils.scoring._bootstrap.DEFAULT_N_BOOT`
        Bootstrap draws over stimuli (and neurons for SRP-Ridge) of each area's layer-max and
        unbiased SRP-Ridge and RSA scores, from the leave-one-out predictions and RDMs of the
        scoring (no second pass; see :func:`score_reduced`): the ``bootstrap`` table and the
        summary's percentile intervals (``max_score_ci_low``, ``max_score_ci_high``,
        ``unbiased_score_ci_low``, ``unbiased_score_ci_high``, 95%). 0 writes an empty table.

    Returns
    -------
    dict of pandas.DataFrame
        ``scores``, ``scores_groups``, ``neuron_scores``, ``summary``,
        ``scores_reliability`` and ``bootstrap`` (see :func:`score_reduced`; also written to
        ``out_dir`` with ``provenance.json``).
    """
    from ..models import FeatureModel, extract, load_model
    from ..reduction import GramReducer, PCAReducer, RDMReducer, SparseRandomProjection

    t_start = time.perf_counter()
    timings = {}
    if weights is not None:
        _check_choice(weights, TRAIN_TYPES, "weights")
    _check_choice(mapping, tuple(MAPPINGS_SCORE), "mapping")
    metrics = _check_metrics_alpha(metrics, alpha)
    cutoffs = _check_cutoffs(reliability_cutoffs)
    check_n_boot(n_boot)  # before any work
    if int(n_components) < 1:
        raise ValueError(f"n_components={n_components!r}; expected a positive integer")
    if out_dir is not None:
        out_dir = check_out_dir(out_dir, dataset if isinstance(dataset, (str, Path)) else None)

    dataset, dataset_path = _as_dataset(dataset)
    if isinstance(model, str):
        model = load_model(model, weights=weights, device=device)
    elif not isinstance(model, FeatureModel):
        raise TypeError(f"model must be a registry name or a FeatureModel, got {type(model).__name__}")
    train_type = getattr(model, "weights", weights)

    t = time.perf_counter()
    targets, selected, n_nan_neurons, report, scenes = _select_targets(dataset, threshold, progress, select_kwargs)
    extra = _extra_targets(scenes, report, threshold, min(cutoffs), progress, select_kwargs) if cutoffs else None
    # (the responses of the neurons left out are not needed again)
    source, dataset, scenes = dataset.source, None, None
    timings["selection_s"] = time.perf_counter() - t

    reducers = {}
    if "srp_ridge" in metrics:
        if mapping == "srp":
            reducers["regression"] = SparseRandomProjection(n_components=n_components, seed=seed)
        elif mapping == "exact":
            reducers["regression"] = GramReducer(precision=gram_precision or "float64")
        else:
            reducers["regression"] = PCAReducer(n_components=n_components)
    if "rsa" in metrics:
        reducers["rdm"] = RDMReducer(precision=gram_precision or "float32")
    if "cka" in metrics and not ("srp_ridge" in metrics and mapping == "exact"):
        reducers["gram"] = GramReducer(precision=gram_precision or "auto")
    t = time.perf_counter()
    stimuli = np.asarray(selected.stimuli.values)
    fs = extract(model, stimuli, reducers, cache=cache, progress=progress, batch_size=batch_size)
    timings["extract_s"] = time.perf_counter() - t
    timings["features_from_cache"] = bool(fs.from_cache)

    t = time.perf_counter()
    tables = score_reduced(
        fs.layers,
        regression_features=fs["regression"] if "regression" in reducers else None,
        layer_rdms=fs["rdm"] if "rdm" in reducers else None,
        layer_grams=(fs["gram"] if "gram" in reducers else fs["regression"]) if "cka" in metrics else None,
        cka_estimator=cka_estimator, alphas=alphas,
        targets=targets, model=model.name, train_type=train_type, alpha=alpha,
        features_are_gram=(mapping == "exact"), progress=progress, loo_precision=loo_precision,
        reliability_cutoffs=cutoffs, extra_targets=extra, n_boot=n_boot)
    tables.setdefault("bootstrap", empty_bootstrap_table())  # (replaces a stale table of the folder)
    tables["summary"] = attach_intervals(summarize_scores(tables["scores"]), tables.get("bootstrap"))
    timings["scoring_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t_start

    model_info = None
    try:
        from ..models import get_model_info

        model_info = dataclasses.asdict(get_model_info(model.name))
    except Exception:  # a user's own FeatureModel is not in the registry
        model_info = {"name": model.name}
    n_nan_scores = {m: int(tables["scores"].loc[tables["scores"]["metric"] == m, "n_nan"].sum()) for m in metrics}
    sc = tables["scores"]
    checks = {
        "penalty_dominated_layers": sorted(sc.loc[sc["penalty_dominated"], "layer"].unique().tolist()),
        # layers scored NaN: features (or RDM) constant across stimuli, or nearly so against their scale
        "constant_layers": {m: sorted(sc.loc[sc["constant"] & (sc["metric"] == m), "layer"].unique().tolist())
                            for m in sc["metric"].unique()},
        "nonfinite_activations": {str(r["name"]): int(r["n_nonfinite"]) for _, r in fs.layers.iterrows()
                                  if int(r.get("n_nonfinite", 0))},
        # layers whose float32 reduction was redone in float64 (None: features read from the cache)
        "float64_layers": None if fs.from_cache else {k: int(getattr(r, "n_float64", 0)) for k, r in reducers.items()},
    }
    provenance = {
        "model": model.name, "train_type": train_type, "identity": model.identity, "model_info": model_info,
        "parameters": {"metrics": list(metrics), "n_components": int(n_components),
                       "alpha": alpha if isinstance(alpha, str) else float(alpha),
                       **({"alphas_relative": list(_check_alphas_auto(alphas))} if isinstance(alpha, str) else {}),
                       **({"cka_estimator": cka_estimator} if "cka" in metrics else {}),
                       "threshold": threshold, "mapping": mapping, "seed": int(seed),
                       "gram_precision": gram_precision or {"rdm": "float32", "exact": "float64"},
                       "loo_precision": loo_precision, "reliability_cutoffs": list(cutoffs),
                       "n_boot": int(n_boot), "select_kwargs": select_kwargs or {}},
        "dataset": {"path": str(dataset_path) if dataset_path else None,
                    "sha256": file_sha256(dataset_path) if dataset_path and Path(dataset_path).exists() else None,
                    "source": source, "n_stimuli": int(targets.y.shape[0]),
                    "n_neurons_selected": int(targets.y.shape[1]),
                    "n_neurons_excluded_nan": n_nan_neurons,
                    # neurons below the threshold, scored for the reliability cutoffs only
                    "n_neurons_below_threshold": int(extra.y.shape[1]) if extra is not None else 0},
        "selection": report.to_dict() if hasattr(report, "to_dict") else str(report),
        "n_layers": len(fs.layers), "n_nan_scores": n_nan_scores, "checks": checks,
        "versions": _versions(), "timings": timings,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if out_dir is not None:
        _write_tables(Path(out_dir), tables, provenance)
    return tables
