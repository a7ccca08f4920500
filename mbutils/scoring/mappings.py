"""Alternative neural-regression mappings, for the speed/accuracy comparison (paper A.5, Fig. 5).

Each mapping is a reduction (PCA, sparse random projection or a random subset of features,
at several sizes) crossed with a regression (ridge by GCV, ridge by k-fold, PLS with 10 or 25
components by k-fold). :func:`compare_mappings` times each pair and scores it the same way:
Pearson r per neuron between cross-validated predictions and responses, averaged.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from .correlation import pearson_columns
from .ridge import ridge_gcv_predictions

__all__ = ["REDUCTIONS", "REGRESSIONS", "MAPPINGS", "reduce_features", "cv_predictions", "compare_mappings",
           "summarize_mappings", "mapping_validation_data", "mapping_agreement"]


def _reduce_pca(x, k, seed):
    from sklearn.decomposition import PCA

    k = min(k, x.shape[0] - 1, x.shape[1])
    return PCA(n_components=k, svd_solver="full" if min(x.shape) < 500 else "randomized",
               random_state=seed).fit_transform(x)


def _reduce_srp(x, k, seed):
    from ..reduction import SparseRandomProjection

    return SparseRandomProjection(n_components=k, seed=seed, cache_size=0)(x.astype(np.float32)).astype(np.float64)


def _reduce_subset(x, k, seed):
    if x.shape[1] <= k:
        return x
    rng = np.random.default_rng([seed, x.shape[1], k])
    return x[:, np.sort(rng.choice(x.shape[1], size=k, replace=False))]


#: reduction name -> function(features, n_components, seed)
REDUCTIONS = {"pca": _reduce_pca, "srp": _reduce_srp, "subset": _reduce_subset}


def _kfold_predictions(x, y, make, n_splits, seed):
    from sklearn.model_selection import KFold

    pred = np.empty_like(y)
    for train, test in KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(x):
        pred[test] = make().fit(x[train], y[train]).predict(x[test]).reshape(len(test), -1)
    return pred


def _ridge_gcv(x, y, alpha, n_splits, seed):
    return ridge_gcv_predictions(x, y, alpha=alpha)


def _ridge_kfold(x, y, alpha, n_splits, seed):
    from sklearn.linear_model import Ridge

    return _kfold_predictions(x, y, lambda: Ridge(alpha=alpha), n_splits, seed)


def _pls(n_components):
    def fit(x, y, alpha, n_splits, seed):
        from sklearn.cross_decomposition import PLSRegression

        k = min(n_components, x.shape[1], int(x.shape[0] * (n_splits - 1) / n_splits) - 1)
        return _kfold_predictions(x, y, lambda: PLSRegression(n_components=k, scale=False), n_splits, seed)

    return fit


#: regression name -> function(features, responses, alpha, n_splits, seed) -> predictions
REGRESSIONS = {"ridge_gcv": _ridge_gcv, "ridge_kfold": _ridge_kfold, "pls10": _pls(10), "pls25": _pls(25)}
#: every (reduction, regression) pair
MAPPINGS = {f"{r}+{g}": (r, g) for r in REDUCTIONS for g in REGRESSIONS}


def reduce_features(features, reduction="srp", n_components=4096, seed=0) -> np.ndarray:
    """Reduce one layer's features.

    Parameters
    ----------
    features : array of shape (n_stimuli, n_features)
    reduction : {"pca", "srp", "subset"}
    n_components : int
    seed : int

    Returns
    -------
    ndarray of shape (n_stimuli, k), float64
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r}; expected one of {list(REDUCTIONS)}")
    return np.asarray(REDUCTIONS[reduction](np.asarray(features), int(n_components), seed), dtype=np.float64)


def cv_predictions(x, y, regression="ridge_gcv", alpha=1.0, n_splits=5, seed=0) -> np.ndarray:
    """Cross-validated predictions of ``y`` (n_stimuli, n_targets) from ``x`` (n_stimuli, k)."""
    if regression not in REGRESSIONS:
        raise ValueError(f"regression={regression!r}; expected one of {list(REGRESSIONS)}")
    y = np.asarray(y, dtype=np.float64)
    return REGRESSIONS[regression](np.asarray(x, dtype=np.float64), y, alpha, n_splits, seed)


def compare_mappings(features_per_layer, responses, reductions=("pca", "srp", "subset"),
                     n_components=(1024, 2048, 4096, 8192), regressions=("ridge_gcv", "ridge_kfold", "pls10", "pls25"),
                     alpha=1.0, n_splits=5, seed=0, progress=None) -> pd.DataFrame:
    """Score and time every (reduction, size, regression) mapping on every layer.

    Parameters
    ----------
    features_per_layer : dict name -> array (n_stimuli, n_features), or list of arrays
    responses : array of shape (n_stimuli, n_neurons)
    reductions, n_components, regressions : sequences
    alpha : float
        Ridge penalty.
    n_splits : int
        Folds of the k-fold regressions.
    seed : int

    Returns
    -------
    pandas.DataFrame
        One row per (layer, reduction, n_components, regression): ``score`` (mean Pearson r over
        neurons), ``n_nan``, ``n_unconverged`` (fits of an iterative regression, PLS, that
        stopped at their iteration limit), ``reduce_s``, ``regress_s``, ``total_s``, ``n_features_used``,
        ``penalty_dominated`` (ridge by GCV on features so small against ``alpha`` that every
        neuron's leave-one-out r is at most -0.87; see
        :func:`mbutils.scoring._loo.penalty_deviation`; False for the other regressions).
        Means over layers should leave such rows out (:func:`summarize_mappings`).
    """
    if not isinstance(features_per_layer, dict):
        features_per_layer = {f"layer{i + 1}": f for i, f in enumerate(features_per_layer)}
    for r in reductions:
        if r not in REDUCTIONS:
            raise ValueError(f"reduction={r!r}; expected one of {list(REDUCTIONS)}")
    for g in regressions:
        if g not in REGRESSIONS:
            raise ValueError(f"regression={g!r}; expected one of {list(REGRESSIONS)}")
    y = np.asarray(responses, dtype=np.float64)
    if progress is None:
        from ..config import get_config

        progress = get_config().progress
    jobs = [(name, r, k) for name in features_per_layer for r in reductions for k in n_components]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="mappings")
    rows = []
    for name, r, k in jobs:
        x = np.asarray(features_per_layer[name])
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"layer {name!r} has {x.shape[0]} stimuli but responses have {y.shape[0]}")
        constant = not np.any(np.ptp(x, axis=0) > 0)
        t0 = time.perf_counter()
        z = x[:, :0] if constant else reduce_features(x, r, k, seed)
        t_red = time.perf_counter() - t0
        for g in regressions:
            t1 = time.perf_counter()
            n_unconverged = 0
            if constant:  # no information: NaN scores (counted), not a fit on nothing
                rr = np.full(y.shape[1], np.nan)
            else:
                from sklearn.exceptions import ConvergenceWarning

                # PLS's iterative fits may stop at their iteration limit: counted per mapping
                # (column n_unconverged), not printed
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    pred = cv_predictions(z, y, g, alpha=alpha, n_splits=n_splits, seed=seed)
                n_unconverged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
                for w in caught:
                    if not issubclass(w.category, ConvergenceWarning):
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                rr = pearson_columns(pred, y)
            t_reg = time.perf_counter() - t1
            rows.append(dict(layer=name, reduction=r, n_components=int(k), regression=g,
                             mapping=f"{r}+{g}", n_features_used=int(z.shape[1]),
                             score=float(np.nanmean(rr)) if np.isfinite(rr).any() else np.nan,
                             n_nan=int(np.isnan(rr).sum()), n_unconverged=int(n_unconverged),
                             reduce_s=t_red, regress_s=t_reg,
                             total_s=t_red + t_reg,
                             penalty_dominated=bool(g == "ridge_gcv" and not constant and _dominated(z, alpha))))
    return pd.DataFrame(rows)


def _dominated(z, alpha) -> bool:
    """Whether ridge GCV with ``alpha`` on features ``z`` (n, k) is penalty-dominated."""
    from ._loo import leave_one_out_operator, penalty_dominated
    from .ridge import center_gram

    z = np.asarray(z, dtype=np.float64)
    return penalty_dominated(leave_one_out_operator(center_gram(z @ z.T), alpha))


def summarize_mappings(comparison: pd.DataFrame) -> pd.DataFrame:
    """Mean score and time of each mapping over layers, penalty-dominated rows left out.

    Parameters
    ----------
    comparison : pandas.DataFrame
        From :func:`compare_mappings`.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``reduction, n_components, regression``: ``score``, ``total_s`` (means over
        the layers kept), ``n_layers`` (kept), ``n_flagged`` (left out).
    """
    keys = ["reduction", "n_components", "regression"]
    flagged = comparison["penalty_dominated"].astype(bool) if "penalty_dominated" in comparison else \
        pd.Series(False, index=comparison.index)
    kept = comparison[~flagged]
    out = kept.groupby(keys)[["score", "total_s"]].mean()
    out["n_layers"] = kept.groupby(keys).size()
    out["n_flagged"] = comparison[flagged].groupby(keys).size().reindex(out.index).fillna(0).astype(int)
    return out


def mapping_validation_data(model, weights, dataset, n_layers=3, n_neurons=500, threshold=0.8, n_splits=10,
                            seed=0):
    """Features of a few evenly spaced layers and the responses of reliable neurons.

    Input of the speed/accuracy comparison of mappings (paper A.5). Only the chosen layers
    are kept in memory (the model streams its layers through a callback).

    Parameters
    ----------
    model : str
        Registry name.
    weights : {"trained", "random"}
    dataset : str or pathlib.Path
        Dataset file.
    n_layers : int
        Layers kept, evenly spaced over the network's depth.
    n_neurons : int
        At most this many selected neurons (a random subset, seeded).
    threshold, n_splits : float, int
        Neuron selection (reliability threshold, random splits).
    seed : int

    Returns
    -------
    features : dict of str -> ndarray of shape (n_scenes, n_features), float32
    responses : ndarray of shape (n_scenes, n_neurons), float64
        Trial-averaged responses of the selected neurons.
    """
    from ..data import load_dataset, select_neurons
    from ..models import load_model

    data = load_dataset(dataset).scenes()
    selected, _ = select_neurons(data, threshold=threshold, n_splits=n_splits, seed=seed, progress=False)
    if selected.n_neurons == 0:
        raise ValueError(f"no neuron passes the reliability threshold {threshold} in {str(dataset)!r}")
    avg = selected.trial_average().transpose("stimulus", "neuron").values.astype(np.float64)
    if avg.shape[1] > n_neurons:
        rng = np.random.default_rng(seed)
        avg = avg[:, np.sort(rng.choice(avg.shape[1], size=n_neurons, replace=False))]
    net = load_model(model, weights=weights, device="cpu")
    kept = {}

    def keep(layer, feats):
        n_total = max(1, int(round(layer.index / layer.depth))) if layer.depth else layer.index
        picks = set(np.unique(np.linspace(1, n_total, n_layers).round().astype(int)).tolist())
        if layer.index in picks:
            kept[layer.name] = feats.detach().cpu().numpy().astype(np.float32, copy=True)

    net.run(data.stimuli.values, keep, progress=False)
    return kept, avg


def mapping_agreement(features, responses, n_components=4096, alpha=1.0, seed=0) -> pd.DataFrame:
    """SRP-Ridge against exact ridge (all features), layer by layer.

    Parameters
    ----------
    features : dict of str -> ndarray of shape (n_stimuli, n_features)
    responses : ndarray of shape (n_stimuli, n_neurons)
    n_components : int
        Sparse random projection size.
    alpha : float
        Ridge penalty (leave-one-out predictions for both).
    seed : int

    Returns
    -------
    pandas.DataFrame
        One row per layer: ``n_features``, ``score_srp`` and ``score_exact`` (mean Pearson r
        over neurons), ``neuron_r`` (Pearson r between the per-neuron scores of the two) and
        ``max_abs_diff`` (largest per-neuron difference).
    """
    y = np.asarray(responses, dtype=np.float64)
    rows = []
    for name, x in features.items():
        exact = pearson_columns(ridge_gcv_predictions(np.asarray(x, dtype=np.float64), y, alpha=alpha), y)
        z = reduce_features(x, "srp", n_components, seed)
        srp = pearson_columns(ridge_gcv_predictions(z, y, alpha=alpha), y)
        ok = np.isfinite(exact) & np.isfinite(srp)
        rows.append(dict(layer=name, n_features=int(np.shape(x)[1]), score_srp=float(np.nanmean(srp)),
                         score_exact=float(np.nanmean(exact)),
                         neuron_r=float(np.corrcoef(srp[ok], exact[ok])[0, 1]) if ok.sum() > 2 else np.nan,
                         max_abs_diff=float(np.max(np.abs(srp[ok] - exact[ok]))) if ok.any() else np.nan))
    return pd.DataFrame(rows)
