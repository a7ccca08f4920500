"""Alternative neural-regression mappings, for the speed/accuracy comparison (paper A.5, Fig. 5).

Each mapping is a reduction (PCA, sparse random projection, a random subset of features, or
none: all features) at several sizes, crossed with a regression (ridge by GCV, ridge by k-fold,
PLS with 10 or 25 components by k-fold). :func:`compare_mappings` times each pair and scores it
the same way: Pearson r per neuron between cross-validated predictions and responses, averaged.

As in the paper, PCA can be fitted on features of an auxiliary image set rather than on the
stimuli (:func:`fitted_pca_scores`; the image set of :func:`mbutils.data.make_image_set`), so
that it has more components than stimuli. :func:`mapping_validation_data` picks the layers
that carry signal (:func:`screen_layers`) and extracts their features for the stimuli and the
image set.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .correlation import pearson_columns
from .ridge import ridge_gcv_predictions

__all__ = ["REDUCTIONS", "REGRESSIONS", "MAPPINGS", "reduce_features", "cv_predictions", "mapping_scores",
           "fitted_pca_scores", "compare_mappings", "summarize_mappings", "describe_mappings", "layer_signal",
           "screen_layers",
           "MappingData", "mapping_validation_data", "mapping_agreement", "MIN_EFFECTIVE_DF"]


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


def _reduce_none(x, k, seed):
    """All features, in coordinates of the stimuli's span: ``X V`` for the SVD ``X = U S V^T``.

    A rotation of the feature space that loses nothing (every row of ``X`` lies in the span of
    ``V``): ridge regression and PLS without scaling depend on the features only through inner
    products, so their predictions on ``X V`` (n, rank) equal those on ``X`` (n, p), at the cost
    of one Gram matrix instead of regressions over ``p`` features.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.shape[1] <= x.shape[0]:
        return x
    s, u = np.linalg.eigh(x @ x.T)
    keep = s > max(s.max(), 0.0) * 1e-13 if s.max() > 0 else np.zeros(s.shape, bool)
    return u[:, keep] * np.sqrt(s[keep])


#: reduction name -> function(features, n_components, seed); "none" keeps all features (the
#: reference point of the paper's Figure 5), rotated losslessly onto the stimuli's span
REDUCTIONS = {"pca": _reduce_pca, "srp": _reduce_srp, "subset": _reduce_subset, "none": _reduce_none}


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
    reduction : {"pca", "srp", "subset", "none"}
        ``"pca"`` here is fitted on the features themselves (at most ``n_stimuli - 1``
        components); :func:`fitted_pca_scores` fits it on other images.
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
    """Cross-validated predictions of ``y`` (n_stimuli, n_targets) from ``x`` (n_stimuli, k).

    Returns
    -------
    ndarray of shape (n_stimuli, n_targets), float64
        Leave-one-out predictions for ``"ridge_gcv"``, ``n_splits``-fold ones otherwise.
    """
    if regression not in REGRESSIONS:
        raise ValueError(f"regression={regression!r}; expected one of {list(REGRESSIONS)}")
    y = np.asarray(y, dtype=np.float64)
    return REGRESSIONS[regression](np.asarray(x, dtype=np.float64), y, alpha, n_splits, seed)


def mapping_scores(features, responses, reduction="srp", n_components=4096, regression="ridge_gcv", alpha=1.0,
                   n_splits=5, seed=0) -> np.ndarray:
    """Per-neuron Pearson r of one mapping (the values :func:`compare_mappings` averages).

    Parameters
    ----------
    features : array of shape (n_stimuli, n_features)
    responses : array of shape (n_stimuli, n_neurons)
    reduction, n_components, regression, alpha, n_splits, seed
        As in :func:`compare_mappings`.

    Returns
    -------
    ndarray of shape (n_neurons,), float64
        NaN for constant neurons or constant predictions.
    """
    z = reduce_features(features, reduction, n_components, seed)
    y = np.asarray(responses, dtype=np.float64)
    return pearson_columns(cv_predictions(z, y, regression, alpha=alpha, n_splits=n_splits, seed=seed), y)


def _reference_pca(reference, features, chunk=8192):
    """PCA fitted on ``reference`` (N, p), applied to ``features`` (n, p).

    The covariance's eigenvectors are ``Ac^T U / sqrt(s)`` for the eigendecomposition
    ``Ac Ac^T = U diag(s) U^T`` of the reference's centered Gram (``Ac``: reference centered
    over images), so the scores of the features are ``(X - mean) Ac^T U / sqrt(s)``: both
    products are sums over features, accumulated over column blocks of ``chunk`` features
    (the reference may be a memory map; at most ``(N + n) * chunk`` values in memory).

    Returns ``(C, U, root)``: ``C = (X - mean) Ac^T`` (n, N), eigenvectors ``U`` (N, r) and
    ``root = sqrt(s)`` (r,) in decreasing order, for the ``r`` eigenvalues above 1e-12 of
    the largest (at most ``N - 1``).
    """
    N, p = reference.shape
    if np.shape(features)[1] != p:
        raise ValueError(f"the reference has {p} features per image but the features have {np.shape(features)[1]}; "
                         "pass the same layer's features for both")
    G = np.zeros((N, N))
    C = np.zeros((np.shape(features)[0], N))
    for c0 in range(0, p, chunk):
        A = np.array(reference[:, c0:c0 + chunk], dtype=np.float64)
        mu = A.mean(0)
        A -= mu
        X = np.asarray(features[:, c0:c0 + chunk], dtype=np.float64) - mu
        G += A @ A.T
        C += X @ A.T
    s, U = np.linalg.eigh((G + G.T) / 2)
    order = np.argsort(s)[::-1]
    s, U = s[order], U[:, order]
    keep = s > max(s[0], 0.0) * 1e-12 if s[0] > 0 else np.zeros(s.shape, bool)
    s, U = s[keep], U[:, keep]
    # deterministic signs: the largest-magnitude entry of each eigenvector positive
    sign = np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(U.shape[1])])
    sign[sign == 0] = 1
    return C, U * sign, np.sqrt(s)


def fitted_pca_scores(reference, features, n_components) -> dict:
    """Principal component scores of ``features`` on components fitted on ``reference``.

    As Brain-Score (and the paper's Figure 5) do: the principal components of a layer's
    features for an auxiliary image set, then the stimuli's features projected on them. Equal
    (up to each component's sign) to ``sklearn.decomposition.PCA(k).fit(reference).transform(features)``.

    Parameters
    ----------
    reference : array of shape (n_images, n_features)
        The layer's features for the auxiliary images (a memory map is read in column blocks).
    features : array of shape (n_stimuli, n_features)
        The same layer's features for the stimuli.
    n_components : int or sequence of int
        Components kept; at most the reference's rank (``n_images - 1`` at most).

    Returns
    -------
    dict int -> ndarray of shape (n_stimuli, min(k, rank)), float64
        One entry per requested size.
    """
    sizes = [int(k) for k in np.atleast_1d(n_components)]
    if any(k < 1 for k in sizes):
        raise ValueError(f"n_components={n_components!r}; expected positive integers")
    C, U, root = _reference_pca(reference, features)
    return {k: (C @ U[:, :k]) / root[:k] for k in sizes}


def compare_mappings(features_per_layer, responses, reductions=("pca", "srp", "subset"),
                     n_components=(1024, 2048, 4096, 8192), regressions=("ridge_gcv", "ridge_kfold", "pls10", "pls25"),
                     alpha=1.0, n_splits=5, seed=0, reference=None, progress=None) -> pd.DataFrame:
    """Score and time every (reduction, size, regression) mapping on every layer.

    Parameters
    ----------
    features_per_layer : dict name -> array (n_stimuli, n_features), or list of arrays
    responses : array of shape (n_stimuli, n_neurons)
    reductions, n_components, regressions : sequences
        ``"none"`` (all features) is done once per layer and regression, whatever the sizes,
        through a lossless rotation onto the stimuli's span (the same predictions as on the
        raw features for ridge and PLS, which depend on inner products only).
    alpha : float
        Ridge penalty.
    n_splits : int
        Folds of the k-fold regressions.
    seed : int
    reference : dict name -> array (n_images, n_features), optional
        Per layer, its features for an auxiliary image set: PCA is fitted on them
        (:func:`fitted_pca_scores`) instead of on the stimuli. Layers missing from it are
        fitted on the stimuli. A PCA size above the reference's rank (``n_images - 1``) gets
        one row, at that rank (``n_features_used``), for the first such size only: larger
        sizes would repeat it.
    progress : bool, optional

    Returns
    -------
    pandas.DataFrame
        One row per (layer, reduction, n_components, regression): ``score`` (mean Pearson r over
        neurons), ``n_nan``, ``n_unconverged`` (fits of an iterative regression, PLS, that
        stopped at their iteration limit), ``fit_s`` (fitting the reduction on the reference
        images: one eigendecomposition per layer serves every PCA size, and each PCA row
        carries its full time), ``reduce_s`` (``fit_s`` plus reducing the stimuli),
        ``regress_s``, ``total_s``, ``n_features_used``, ``fitted_on`` (``"reference"``,
        ``"stimuli"`` or ``""`` for reductions that fit nothing), ``penalty_dominated``
        (ridge by GCV on features so small against ``alpha`` that every neuron's leave-one-out
        r is at most -0.87; see :func:`mbutils.scoring._loo.penalty_deviation`; False for the
        other regressions). Means over layers should leave such rows out
        (:func:`summarize_mappings`).
    """
    if not isinstance(features_per_layer, dict):
        features_per_layer = {f"layer{i + 1}": f for i, f in enumerate(features_per_layer)}
    for r in reductions:
        if r not in REDUCTIONS:
            raise ValueError(f"reduction={r!r}; expected one of {list(REDUCTIONS)}")
    for g in regressions:
        if g not in REGRESSIONS:
            raise ValueError(f"regression={g!r}; expected one of {list(REGRESSIONS)}")
    reference = reference or {}
    y = np.asarray(responses, dtype=np.float64)
    if progress is None:
        from ..config import get_config

        progress = get_config().progress
    jobs = [(name, r, k) for name in features_per_layer for r in reductions
            for k in ((None,) if r == "none" else n_components)]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="mappings")
    rows = []
    pca_fits, pca_used = {}, {}
    for name, r, k in jobs:
        x = np.asarray(features_per_layer[name])
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"layer {name!r} has {x.shape[0]} stimuli but responses have {y.shape[0]}")
        constant = not np.any(np.ptp(x, axis=0) > 0)
        fitted_on = ""
        fit_s = 0.0
        t0 = time.perf_counter()
        if constant:
            z = x[:, :0]
        elif r == "pca" and name in reference:
            if name not in pca_fits:
                t_fit = time.perf_counter()
                fit = _reference_pca(reference[name], x)
                pca_fits[name] = (fit, time.perf_counter() - t_fit)
            (C, U, root), fit_s = pca_fits[name]
            used = min(k, U.shape[1])
            if used in pca_used.setdefault(name, set()):
                continue  # capped at the reference's rank: the same components as a smaller size
            pca_used[name].add(used)
            t0 = time.perf_counter()
            z = (C @ U[:, :k]) / root[:k]
            fitted_on = "reference"
        else:
            z = reduce_features(x, r, x.shape[1] if k is None else k, seed)
            fitted_on = "stimuli" if r == "pca" else ""
        t_red = fit_s + time.perf_counter() - t0
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
            rows.append(dict(layer=name, reduction=r, n_components=int(x.shape[1] if k is None else k), regression=g,
                             mapping=f"{r}+{g}", n_features_used=int(x.shape[1] if r == "none" else z.shape[1]),
                             fitted_on=fitted_on,
                             score=float(np.nanmean(rr)) if np.isfinite(rr).any() else np.nan,
                             n_nan=int(np.isnan(rr).sum()), n_unconverged=int(n_unconverged),
                             fit_s=fit_s, reduce_s=t_red, regress_s=t_reg, total_s=t_red + t_reg,
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
        the layers kept), ``n_layers`` (kept), ``n_flagged`` (left out). Rows of the reduction
        ``"none"`` (whose size is each layer's feature count) have ``n_components`` 0.
    """
    keys = ["reduction", "n_components", "regression"]
    comparison = comparison.copy()
    if "reduction" in comparison:
        comparison.loc[comparison["reduction"] == "none", "n_components"] = 0
    flagged = comparison["penalty_dominated"].astype(bool) if "penalty_dominated" in comparison else \
        pd.Series(False, index=comparison.index)
    kept = comparison[~flagged]
    out = kept.groupby(keys)[["score", "total_s"]].mean()
    out["n_layers"] = kept.groupby(keys).size()
    out["n_flagged"] = comparison[flagged].groupby(keys).size().reindex(out.index).fillna(0).astype(int)
    return out


def _label(reduction, k):
    return "all features" if reduction == "none" else f"{reduction.upper()}-{int(k)}"


def _seconds(t) -> str:
    return f"{t:.2g} s" if t < 10 else f"{t:.0f} s"


def _times(ratio) -> str:
    return f"{ratio:.1f}" if ratio < 10 else f"{ratio:,.0f}"


def describe_mappings(comparison: pd.DataFrame, paper_choice=("srp", 4096, "ridge_gcv")) -> str:
    """Closing summary of a comparison, in words: the best mapping, PCA against SRP, time ratios.

    Parameters
    ----------
    comparison : pandas.DataFrame
        From :func:`compare_mappings`.
    paper_choice : (reduction, n_components, regression)
        The mapping the others are timed against (the paper's SRP-4096 + ridge GCV).

    Returns
    -------
    str
        Two sentences computed from ``comparison`` (means over the layers kept by
        :func:`summarize_mappings`).
    """
    summ = summarize_mappings(comparison).dropna(subset=["score"])
    if summ.empty:
        return "No mapping produced a finite score."
    (r, k, g), best = summ["score"].idxmax(), summ.loc[summ["score"].idxmax()]
    n_layers = int(summ["n_layers"].max())
    text = (f"Over {n_layers} layer{'s' if n_layers != 1 else ''}, the best mapping was {_label(r, k)} + {g} "
            f"(mean r = {best['score']:.3f}, {_seconds(best['total_s'])} per layer)")
    if tuple(paper_choice) in summ.index:
        ref = summ.loc[tuple(paper_choice)]
        text += (f"; the paper's {_label(*paper_choice[:2])} + {paper_choice[2]} scored {ref['score']:.3f} in "
                 f"{_seconds(ref['total_s'])}")
        others = [(gg, summ.loc[(paper_choice[0], paper_choice[1], gg)]) for gg in ("ridge_kfold", "pls10", "pls25")
                  if gg != paper_choice[2] and (paper_choice[0], paper_choice[1], gg) in summ.index]
        if others:
            text += ", " + ", ".join(f"{_times(o['total_s'] / ref['total_s'])} times faster than {gg} "
                                     f"(r = {o['score']:.3f})" for gg, o in others)
    text += "."
    regs = summ.index.get_level_values("regression")
    reg = paper_choice[2] if paper_choice[2] in set(regs) else regs[0]
    pairs = []
    pca_rows = comparison[comparison["reduction"] == "pca"]
    for kk in sorted(set(summ.index.get_level_values("n_components"))):
        if ("pca", kk, reg) in summ.index and ("srp", kk, reg) in summ.index:
            p, q = summ.loc[("pca", kk, reg)], summ.loc[("srp", kk, reg)]
            used = pca_rows.loc[pca_rows["n_components"] == kk, "n_features_used"] \
                if "n_features_used" in pca_rows else pd.Series(dtype=float)
            capped = f" (at most {int(used.max())} components)" if len(used) and used.max() < kk else ""
            pairs.append(f"{kk}{capped}: r = {p['score']:.3f} against {q['score']:.3f}, "
                         f"{_times(p['total_s'] / q['total_s'])} times the time")
    if pairs:
        fitted = set(pca_rows["fitted_on"]) if "fitted_on" in pca_rows else set()
        where = " (fitted on the image set)" if fitted == {"reference"} else ""
        text += f" With {reg}, PCA{where} against SRP of the same size: " + "; ".join(pairs) + "."
    return text


#: a layer whose ridge fit at the paper's alpha has fewer effective degrees of freedom than this
#: (``sum s / (s + alpha)`` over the eigenvalues ``s`` of its centered Gram) is nearly constant
#: against the penalty: its predictions are mostly the leave-one-out mean
MIN_EFFECTIVE_DF = 1.0


def layer_signal(features, alpha=1.0, min_effective_df=MIN_EFFECTIVE_DF) -> dict:
    """Whether one layer's features carry signal for ridge regression with ``alpha``.

    Parameters
    ----------
    features : array of shape (n_stimuli, n_features)
    alpha : float
    min_effective_df : float, default :data:`MIN_EFFECTIVE_DF`
        Fewer effective degrees of freedom than this: nearly constant against ``alpha``.

    Returns
    -------
    dict
        ``relative_spread`` (centered sum of squares over the sum of squares), ``effective_df``
        (``sum s / (s + alpha)`` over the centered Gram's eigenvalues ``s``),
        ``penalty_deviation`` (:func:`mbutils.scoring._loo.penalty_deviation`), ``constant`` (the
        pipeline's rule: centered sum of squares at most 1e-10 of the sum of squares),
        ``penalty_dominated``, ``carries_signal`` and ``reason`` (empty when it carries signal).
    """
    from ._loo import PENALTY_DOMINATED, _operator_from_eig, penalty_deviation
    from .ridge import centered_eigh

    xc = np.array(features, dtype=np.float64)  # a copy, centered in place
    ss = float(np.einsum("ij,ij->", xc, xc))
    xc -= xc.mean(0)
    kc = xc @ xc.T
    del xc
    spread = float(np.trace(kc))
    rel = spread / ss if ss > 0 else 0.0
    out = dict(relative_spread=rel, effective_df=0.0, penalty_deviation=np.nan, constant=False,
               penalty_dominated=False, carries_signal=False, reason="")
    if not np.isfinite(spread) or spread <= 1e-10 * max(ss, np.finfo(float).tiny):
        out.update(constant=True, reason=f"constant across stimuli (centered sum of squares {rel:.2g} of the sum "
                                         "of squares)")
        return out
    s, V = centered_eigh(kc)
    df = float(np.sum(s / (s + alpha)))
    dev = penalty_deviation(_operator_from_eig(s, V, alpha))
    out.update(effective_df=df, penalty_deviation=dev, penalty_dominated=dev <= PENALTY_DOMINATED)
    if out["penalty_dominated"]:
        out["reason"] = (f"penalty-dominated at alpha = {alpha:g}: leave-one-out predictions within {dev:.2g} of "
                         "the leave-one-out mean (every r at most -0.87)")
    elif df < min_effective_df:
        out["reason"] = (f"nearly constant against alpha = {alpha:g}: ridge has {df:.2g} effective degrees of "
                         f"freedom (below {min_effective_df:g}; centered sum of squares {rel:.2g} of the sum of "
                         "squares)")
    out["carries_signal"] = not out["reason"]
    return out


def screen_layers(net, stimuli, alpha=1.0, min_effective_df=MIN_EFFECTIVE_DF) -> pd.DataFrame:
    """:func:`layer_signal` of every layer of a model for the stimuli (one forward pass).

    Parameters
    ----------
    net : mbutils.models.FeatureModel
        A loaded model (:func:`mbutils.models.load_model`).
    stimuli : uint8 array of shape (n_stimuli, height, width)
    alpha, min_effective_df : float
        As in :func:`layer_signal`.

    Returns
    -------
    pandas.DataFrame
        One row per layer in network order: ``layer, index, depth, n_features`` and the
        columns of :func:`layer_signal`.
    """
    rows = []

    def look(layer, feats):
        rows.append(dict(layer=layer.name, index=layer.index, depth=layer.depth, n_features=layer.n_features,
                         **layer_signal(feats.detach().cpu().numpy(), alpha, min_effective_df)))

    net.run(stimuli, look, progress=False)
    return pd.DataFrame(rows)


@dataclasses.dataclass
class MappingData:
    """Input of the speed/accuracy comparison of mappings (:func:`mapping_validation_data`).

    Attributes
    ----------
    features : dict of str -> ndarray of shape (n_stimuli, n_features), float32
        The chosen layers' features for the stimuli.
    responses : ndarray of shape (n_stimuli, n_neurons), float64
        Trial-averaged responses of the selected neurons.
    layers : pandas.DataFrame
        :func:`screen_layers` of every layer, with ``chosen``.
    reference : dict of str -> array of shape (n_images, n_features), float32, or None
        The chosen layers' features for the auxiliary image set (memory maps of unlinked
        temporary files: their disk space is freed with them).
    n_reference : int
        Images of the auxiliary set (0: none).
    reference_s : float
        Seconds of the forward passes over the auxiliary set.
    """

    features: dict
    responses: np.ndarray
    layers: pd.DataFrame
    reference: dict | None = None
    n_reference: int = 0
    reference_s: float = 0.0

    @property
    def skipped(self) -> pd.DataFrame:
        """The layers that do not carry signal, with the reason."""
        cols = ["layer", "index", "n_features", "relative_spread", "effective_df", "reason"]
        return self.layers.loc[~self.layers["carries_signal"], cols].reset_index(drop=True)


def _choose_layers(screen: pd.DataFrame, n_layers: int) -> list:
    ok = screen.index[screen["carries_signal"]].to_numpy()
    if len(ok) == 0:
        return []
    picks = np.unique(np.linspace(0, len(ok) - 1, max(1, int(n_layers))).round().astype(int))
    return screen.loc[ok[picks], "layer"].tolist()


def _reference_features(net, images, layers, batch_size=64, progress=False) -> dict:
    """The named layers' features (float32) for ``images``, in batches, into unlinked temporary files."""
    import mbutils

    n = images.shape[0]
    root = Path(mbutils.get_config().cache_dir) / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    wanted = set(layers)
    out = {}
    starts = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="image set", unit="batch")
    for start in starts:
        def keep(layer, feats, start=start):
            if layer.name not in wanted:
                return
            if layer.name not in out:
                fh = tempfile.TemporaryFile(dir=root, prefix=".imageset-")  # unlinked on POSIX
                out[layer.name] = np.memmap(fh, dtype=np.float32, mode="w+", shape=(n, layer.n_features))
                fh.close()  # the map keeps its own descriptor
            block = feats.detach().cpu().numpy()
            out[layer.name][start:start + block.shape[0]] = block

        net.run(images[start:start + batch_size], keep, progress=False)
    return {name: out[name] for name in layers if name in out}


def mapping_validation_data(model, weights, dataset, n_layers=3, n_neurons=500, threshold=0.8, n_splits=10,
                            seed=0, n_reference=2048, alpha=1.0, min_effective_df=MIN_EFFECTIVE_DF, batch_size=64,
                            progress=None) -> MappingData:
    """Features of layers that carry signal, for the stimuli and an image set, and neuron responses.

    Input of the speed/accuracy comparison of mappings (paper A.5). Every layer is screened
    on the stimuli (:func:`screen_layers`); ``n_layers`` are chosen evenly spaced among those
    that carry signal, and only they are kept. Their features for ``n_reference`` images of
    :func:`mbutils.data.make_image_set` (crops disjoint from the stimuli, at the stimuli's
    size) are extracted batch by batch into temporary files, to fit PCA on.

    Parameters
    ----------
    model : str
        Registry name.
    weights : {"trained", "random"}
    dataset : str or pathlib.Path
        Dataset file.
    n_layers : int
        Layers kept, evenly spaced over the layers that carry signal.
    n_neurons : int
        At most this many selected neurons (a random subset, seeded).
    threshold, n_splits : float, int
        Neuron selection (reliability threshold, random splits).
    seed : int
    n_reference : int, default 2048
        Images of the auxiliary set (0: none; PCA is then fitted on the stimuli).
    alpha, min_effective_df : float
        Ridge penalty and effective degrees of freedom of the screen (:func:`layer_signal`).
    batch_size : int
        Images per forward pass over the auxiliary set.
    progress : bool, optional

    Returns
    -------
    MappingData
    """
    from ..data import load_dataset, make_image_set, select_neurons
    from ..models import load_model

    if progress is None:
        from ..config import get_config

        progress = get_config().progress
    data = load_dataset(dataset).scenes()
    selected, _ = select_neurons(data, threshold=threshold, n_splits=n_splits, seed=seed, progress=False)
    if selected.n_neurons == 0:
        raise ValueError(f"no neuron passes the reliability threshold {threshold} in {str(dataset)!r}; "
                         "lower the threshold or use a dataset with reliable neurons")
    avg = selected.trial_average().transpose("stimulus", "neuron").values.astype(np.float64)
    if avg.shape[1] > n_neurons:
        rng = np.random.default_rng(seed)
        avg = avg[:, np.sort(rng.choice(avg.shape[1], size=n_neurons, replace=False))]
    net = load_model(model, weights=weights, device="cpu")
    stimuli = data.stimuli.values
    screen = screen_layers(net, stimuli, alpha=alpha, min_effective_df=min_effective_df)
    chosen = _choose_layers(screen, n_layers)
    if not chosen:
        raise ValueError(f"no layer of {model!r} ({weights}) carries signal for ridge with alpha={alpha}; "
                         "see screen_layers for the reasons")
    screen["chosen"] = screen["layer"].isin(chosen)
    kept = {}

    def keep(layer, feats):
        if layer.name in chosen:
            kept[layer.name] = feats.detach().cpu().numpy().astype(np.float32, copy=True)

    net.run(stimuli, keep, progress=False)
    reference, t_ref = None, 0.0
    if n_reference:
        images, _crops = make_image_set(int(n_reference), shape=stimuli.shape[1:])
        t0 = time.perf_counter()
        reference = _reference_features(net, images, chosen, batch_size=batch_size, progress=progress)
        t_ref = time.perf_counter() - t0
    return MappingData(features={name: kept[name] for name in chosen}, responses=avg, layers=screen,
                       reference=reference, n_reference=int(n_reference), reference_s=t_ref)


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
