"""Statistics for the results chapters: tests, effect sizes, bootstrap CIs, smoothers.

Two layers:

- generic statistics on arrays (:func:`paired_ttest`, :func:`independent_ttest`,
  :func:`cohens_d_paired`, :func:`hedges_g`, :func:`spearman`, :func:`bootstrap_ci`,
  :func:`lowess`, :func:`pairwise_ttests`), thin wrappers around scipy and statsmodels;
- analyses of a sweep's score tables (a :class:`mbutils.results.Run`), one per paper
  section: :func:`trained_vs_random`, :func:`architecture_correlations`,
  :func:`depth_profiles`, :func:`best_layer_depths`, :func:`metric_agreement`,
  :func:`layerwise_agreement`, :func:`scores_by_reliability`, ...

Effect sizes are written from their formulas (Cohen's d for paired samples is d_z, the mean
difference over the standard deviation of the differences; Hedges' g is Cohen's d with the
pooled standard deviation, times the small-sample correction ``1 - 3 / (4 (n1 + n2) - 9)``).
"""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from .results import (METRIC_LABELS, METRICS, Run, as_markdown, dataset_label, load_run, model_summary,
                       n_layers, neuron_reliability, ordered_areas, run_banner)

__all__ = [
    "Run", "load_run", "dataset_label", "run_banner", "model_summary", "n_layers", "neuron_reliability",
    "as_markdown", "METRICS", "METRIC_LABELS",
    "TestResult", "cohens_d_paired", "hedges_g", "paired_ttest", "independent_ttest", "spearman",
    "bootstrap_ci", "lowess", "pairwise_ttests", "depth_bins",
    "trained_vs_random", "model_rankings", "architecture_correlations", "class_contrast",
    "training_gain_by_class", "score_ranges", "depth_profiles", "best_layer_depths",
    "group_scores", "metric_agreement", "layerwise_agreement", "scores_by_reliability",
    "reliability_smooth", "ground_truth_recovery", "best_layers_table", "layer_counts", "penalty_note",
]


@dataclasses.dataclass
class TestResult:
    """Result of a two-sample test.

    Attributes
    ----------
    statistic : float  (t)
    pvalue : float
    df : float  degrees of freedom
    effect_size : float
    effect_name : str  ("cohens_d_paired" or "hedges_g")
    n : int or tuple  sample size(s)
    """

    statistic: float
    pvalue: float
    df: float
    effect_size: float
    effect_name: str
    n: object


def _vec(x, name):
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def cohens_d_paired(a, b) -> float:
    """Cohen's d for paired samples (d_z): ``mean(a - b) / std(a - b, ddof=1)``.

    Parameters
    ----------
    a, b : array of shape (n,)
        Paired values (e.g. trained and random scores of the same architectures).
    """
    a, b = _vec(a, "a"), _vec(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same length, got {a.shape[0]} and {b.shape[0]}")
    if a.shape[0] < 2:
        raise ValueError(f"need at least 2 pairs for Cohen's d, got {a.shape[0]}")
    diff = a - b
    return float(diff.mean() / diff.std(ddof=1))


def hedges_g(a, b) -> float:
    """Hedges' g of two independent samples.

    ``g = J * (mean(a) - mean(b)) / s_pooled`` with
    ``s_pooled = sqrt(((n1-1) var(a) + (n2-1) var(b)) / (n1 + n2 - 2))`` (``ddof=1`` variances)
    and ``J = 1 - 3 / (4 (n1 + n2) - 9)``.

    Parameters
    ----------
    a : array of shape (n1,)
    b : array of shape (n2,)
    """
    a, b = _vec(a, "a"), _vec(b, "b")
    n1, n2 = a.shape[0], b.shape[0]
    if n1 < 2 or n2 < 2:
        raise ValueError(f"need at least 2 values per sample for Hedges' g, got {n1} and {n2}")
    pooled = np.sqrt(((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / (n1 + n2 - 2))
    correction = 1.0 - 3.0 / (4.0 * (n1 + n2) - 9.0)
    return float(correction * (a.mean() - b.mean()) / pooled)


def paired_ttest(a, b) -> TestResult:
    """Paired Student's t-test (``scipy.stats.ttest_rel``) with Cohen's d for paired samples."""
    a, b = _vec(a, "a"), _vec(b, "b")
    res = scipy.stats.ttest_rel(a, b)
    return TestResult(float(res.statistic), float(res.pvalue), float(a.shape[0] - 1),
                      cohens_d_paired(a, b), "cohens_d_paired", int(a.shape[0]))


def independent_ttest(a, b, equal_var=True) -> TestResult:
    """Two-sample t-test (``scipy.stats.ttest_ind``; Student's by default) with Hedges' g."""
    a, b = _vec(a, "a"), _vec(b, "b")
    res = scipy.stats.ttest_ind(a, b, equal_var=equal_var)
    df = float(getattr(res, "df", a.shape[0] + b.shape[0] - 2))
    return TestResult(float(res.statistic), float(res.pvalue), df, hedges_g(a, b), "hedges_g",
                      (int(a.shape[0]), int(b.shape[0])))


def spearman(x, y):
    """Spearman rank correlation over pairs where both values are finite.

    Returns
    -------
    (rho, pvalue, n) : (float, float, int)  NaNs when fewer than 3 pairs remain.
    """
    x, y = _vec(x, "x"), _vec(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}")
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3:
        return float("nan"), float("nan"), n
    res = scipy.stats.spearmanr(x[ok], y[ok])
    return float(res.correlation), float(res.pvalue), n


def bootstrap_ci(values, statistic=np.mean, confidence_level=0.95, n_resamples=2000, seed=0,
                 method="percentile"):
    """Bootstrapped confidence interval of ``statistic`` (``scipy.stats.bootstrap``).

    Parameters
    ----------
    values : array of shape (n,)
        NaNs are dropped.
    statistic : callable taking an array and ``axis``
    confidence_level : float in (0, 1)

    Returns
    -------
    (low, high) : (float, float)  NaNs when fewer than 2 values remain; the value itself
        when all values are equal.
    """
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level={confidence_level!r}; expected a number between 0 and 1")
    v = _vec(values, "values")
    v = v[np.isfinite(v)]
    if v.shape[0] < 2:
        return float("nan"), float("nan")
    if np.unique(v).shape[0] < 2:  # every resample gives the same value
        value = float(statistic(v, axis=-1))
        return value, value
    res = scipy.stats.bootstrap((v,), statistic, confidence_level=confidence_level,
                                n_resamples=n_resamples, method=method, vectorized=True,
                                random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def lowess(x, y, frac=2 / 3):
    """Locally weighted linear regression (``statsmodels`` lowess), span ``frac`` of the x range.

    Returns
    -------
    (x_sorted, y_smoothed) : arrays of shape (n,)  over the finite pairs, sorted by x.
    """
    from statsmodels.nonparametric.smoothers_lowess import lowess as _lowess

    x, y = _vec(x, "x"), _vec(y, "y")
    if not 0 < frac <= 1:
        raise ValueError(f"frac={frac!r}; expected a fraction in (0, 1]")
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return x[ok], y[ok]
    out = _lowess(y[ok], x[ok], frac=frac, return_sorted=True)
    return out[:, 0], out[:, 1]


def pairwise_ttests(values, groups, correction="bonferroni", alpha=0.05) -> pd.DataFrame:
    """Student's t-tests between every pair of groups, corrected for multiple comparisons.

    Parameters
    ----------
    values : array of shape (n,)
    groups : array of shape (n,)  group label of each value
    correction : str  a ``statsmodels.stats.multitest.multipletests`` method

    Returns
    -------
    pandas.DataFrame  columns ``group_a, group_b, n_a, n_b, t, p, p_adjusted, reject, hedges_g``;
    groups with fewer than 2 values are left out.
    """
    from statsmodels.stats.multitest import multipletests

    values = _vec(values, "values")
    groups = np.asarray(groups)
    labels = [g for g in pd.unique(groups) if (groups == g).sum() >= 2]
    rows = []
    for ga, gb in itertools.combinations(sorted(labels, key=str), 2):
        a, b = values[groups == ga], values[groups == gb]
        res = independent_ttest(a, b)
        rows.append(dict(group_a=ga, group_b=gb, n_a=len(a), n_b=len(b), t=res.statistic,
                         p=res.pvalue, hedges_g=res.effect_size))
    out = pd.DataFrame(rows, columns=["group_a", "group_b", "n_a", "n_b", "t", "p", "hedges_g"])
    if len(out):
        reject, padj, _, _ = multipletests(out["p"].to_numpy(), alpha=alpha, method=correction)
        out["p_adjusted"], out["reject"] = padj, reject
    else:
        out["p_adjusted"], out["reject"] = [], []
    return out


def depth_bins(depth, n_bins=100):
    """Centre of the bin of width ``1 / n_bins`` that each relative depth (0..1) falls in.

    Parameters
    ----------
    depth : array of shape (n,)
    n_bins : int

    Returns
    -------
    numpy.ndarray of shape (n,)
    """
    if int(n_bins) < 1:
        raise ValueError(f"n_bins={n_bins!r}; expected a positive integer")
    d = _vec(depth, "depth")
    idx = np.clip(np.ceil(d * n_bins) - 1, 0, n_bins - 1)  # depth in (k/n, (k+1)/n] -> bin k
    return (idx + 0.5) / n_bins


# --------------------------------------------------------------------------- score-table analyses

def model_rankings(run: Run, family=None, train_types=("trained", "random"), confidence_level=0.95,
                   seed=0) -> pd.DataFrame:
    """Per (model, train_type, metric): mean over areas of the layer-max score, with a bootstrapped CI.

    Returns
    -------
    pandas.DataFrame  columns ``model, display_name, train_type, metric, score, ci_low, ci_high,
    n_areas, family, model_class, task_cluster, ...``, sorted by score (descending) per metric.
    """
    s = run.summary
    if not len(s):
        return pd.DataFrame(columns=["model", "train_type", "metric", "score", "ci_low", "ci_high"])
    s = s[s["train_type"].isin(train_types)]
    rows = []
    for (model, tt, metric), g in s.groupby(["model", "train_type", "metric"]):
        lo, hi = bootstrap_ci(g["max_score"].to_numpy(), confidence_level=confidence_level, seed=seed)
        rows.append(dict(model=model, train_type=tt, metric=metric, score=g["max_score"].mean(),
                         ci_low=lo, ci_high=hi, n_areas=len(g)))
    out = pd.DataFrame(rows).merge(run.meta, left_on="model", right_index=True, how="left")
    if family is not None:
        out = out[out["family"] == family]
    return out.sort_values(["metric", "score"], ascending=[True, False]).reset_index(drop=True)


def trained_vs_random(run: Run, family="imagenet", tolerance=0.0) -> dict:
    """Paired comparison of trained and random variants, per metric.

    A random variant "matches or beats" the trained one when ``random >= trained - tolerance``.

    Returns
    -------
    dict metric -> dict with ``table`` (model, trained, random, difference), ``n_models``,
    ``n_random_ge_trained``, ``random_ge_trained`` (names), ``test`` (:class:`TestResult` or None
    when fewer than 3 pairs).
    """
    out = {}
    for metric in METRICS:
        ms = model_summary(run, metric=metric, family=family)
        wide = ms.pivot_table(index="model", columns="train_type", values="score")
        if not {"trained", "random"} <= set(wide.columns):
            out[metric] = dict(table=pd.DataFrame(columns=["model", "trained", "random", "difference"]),
                               n_models=0, n_random_ge_trained=0, random_ge_trained=[], test=None)
            continue
        wide = wide[["trained", "random"]].dropna()
        wide["difference"] = wide["trained"] - wide["random"]
        ge = wide.index[wide["random"] >= wide["trained"] - tolerance].tolist()
        test = paired_ttest(wide["trained"], wide["random"]) if len(wide) >= 3 else None
        out[metric] = dict(table=wide.reset_index(), n_models=len(wide), n_random_ge_trained=len(ge),
                           random_ge_trained=ge, test=test)
    return out


def architecture_correlations(run: Run, family="imagenet", train_type="trained") -> pd.DataFrame:
    """Spearman correlations of model depth (number of layers), parameter count and ImageNet
    top-1 with each metric's score, over the models of one family.

    Returns
    -------
    pandas.DataFrame  columns ``predictor, metric, rho, p, n``.
    """
    depth = n_layers(run)
    rows = []
    for metric in METRICS:
        ms = model_summary(run, metric=metric, family=family, train_type=train_type).set_index("model")
        predictors = {"n_layers": depth.reindex(ms.index), "n_parameters": ms["n_parameters"],
                      "imagenet_top1": ms["imagenet_top1"]}
        for name, x in predictors.items():
            rho, p, n = spearman(x.to_numpy(dtype=float), ms["score"].to_numpy(dtype=float))
            rows.append(dict(predictor=name, metric=metric, rho=rho, p=p, n=n))
    return pd.DataFrame(rows, columns=["predictor", "metric", "rho", "p", "n"])


def class_contrast(run: Run, model_class="Transformer", family="imagenet", train_type="trained") -> pd.DataFrame:
    """Student's t-test and Hedges' g of one model class against all others, per metric.

    Returns
    -------
    pandas.DataFrame  columns ``metric, model_class, n_class, n_other, t, p, hedges_g``
    (NaN where either side has fewer than 2 models).
    """
    rows = []
    for metric in METRICS:
        ms = model_summary(run, metric=metric, family=family, train_type=train_type)
        a = ms.loc[ms["model_class"] == model_class, "score"].to_numpy(dtype=float)
        b = ms.loc[ms["model_class"] != model_class, "score"].to_numpy(dtype=float)
        row = dict(metric=metric, model_class=model_class, n_class=len(a), n_other=len(b),
                   t=np.nan, p=np.nan, hedges_g=np.nan)
        if len(a) >= 2 and len(b) >= 2:
            res = independent_ttest(a, b)
            row.update(t=res.statistic, p=res.pvalue, hedges_g=res.effect_size)
        rows.append(row)
    return pd.DataFrame(rows)


def training_gain_by_class(run: Run, family="imagenet", correction="bonferroni"):
    """Trained-minus-random score differences by model class, and corrected pairwise tests.

    Returns
    -------
    (differences, tests) : pandas.DataFrame, pandas.DataFrame
        ``differences``: model, model_class, metric, difference; ``tests``: per metric the
        :func:`pairwise_ttests` table between classes.
    """
    tvr = trained_vs_random(run, family=family)
    diffs, tests = [], []
    for metric, res in tvr.items():
        t = res["table"].merge(run.meta[["model_class"]], left_on="model", right_index=True, how="left")
        t["metric"] = metric
        diffs.append(t[["model", "model_class", "metric", "difference"]])
        if len(t):
            pw = pairwise_ttests(t["difference"].to_numpy(), t["model_class"].fillna("unknown").to_numpy(),
                                 correction=correction)
            pw.insert(0, "metric", metric)
            tests.append(pw)
    diffs = pd.concat(diffs, ignore_index=True) if diffs else pd.DataFrame()
    tests = pd.concat(tests, ignore_index=True) if tests else pd.DataFrame()
    return diffs, tests


def score_ranges(run: Run, families=("imagenet", "taskonomy"), train_type="trained") -> pd.DataFrame:
    """Best-minus-worst model score per family and metric (section 3.6).

    Returns
    -------
    pandas.DataFrame  columns ``family, metric, best_model, best, worst_model, worst, range, n_models``.
    """
    rows = []
    for fam in families:
        for metric in METRICS:
            ms = model_summary(run, metric=metric, family=fam, train_type=train_type)
            if len(ms) < 2:
                continue
            hi, lo = ms.loc[ms["score"].idxmax()], ms.loc[ms["score"].idxmin()]
            rows.append(dict(family=fam, metric=metric, best_model=hi["model"], best=hi["score"],
                             worst_model=lo["model"], worst=lo["score"], range=hi["score"] - lo["score"],
                             n_models=len(ms)))
    return pd.DataFrame(rows, columns=["family", "metric", "best_model", "best", "worst_model", "worst",
                                       "range", "n_models"])


def depth_profiles(run: Run, by="model_class", family="imagenet", train_type="trained", n_bins=100,
                   frac=2 / 3) -> pd.DataFrame:
    """Layer scores vs relative depth, binned, averaged over areas and models, with a lowess curve.

    Per (metric, group): each layer's score is averaged over areas, its depth assigned to one
    of ``n_bins`` bins; bin means form the jagged line, and a lowess (span ``frac``) through
    all layer scores forms the smooth one.

    Returns
    -------
    pandas.DataFrame  columns ``metric, group, depth_bin, mean_score, smooth``.
    """
    s = run.scores
    cols = ["metric", "group", "depth_bin", "mean_score", "smooth"]
    if not len(s):
        return pd.DataFrame(columns=cols)
    s = s[s["train_type"] == train_type].merge(run.meta[[by, "family"]], left_on="model", right_index=True)
    s = s[s["family"] == family]
    layer = s.groupby(["metric", by, "model", "layer", "layer_depth"], dropna=False)["score"].mean().reset_index()
    layer["depth_bin"] = depth_bins(layer["layer_depth"].to_numpy(), n_bins)
    out = []
    for (metric, group), g in layer.groupby(["metric", by]):
        binned = g.groupby("depth_bin")["score"].mean().reset_index(name="mean_score")
        xs, ys = lowess(g["depth_bin"].to_numpy(), g["score"].to_numpy(), frac=frac)
        # one smoothed value per bin (lowess returns one per point; points share bins)
        sm = pd.Series(ys, index=xs).groupby(level=0).mean()
        binned["smooth"] = sm.reindex(binned["depth_bin"]).to_numpy()
        binned["metric"], binned["group"] = metric, group
        out.append(binned)
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def best_layer_depths(run: Run, family="imagenet", train_type="trained", confidence_level=0.95,
                      seed=0) -> pd.DataFrame:
    """Mean relative depth of the best layer per area and metric, over the models of a family,
    with a bootstrapped CI across models (Figures 3 and 9, left).

    Returns
    -------
    pandas.DataFrame  columns ``metric, area, mean_depth, ci_low, ci_high, n_models``.
    """
    s = run.summary
    cols = ["metric", "area", "mean_depth", "ci_low", "ci_high", "n_models"]
    if not len(s):
        return pd.DataFrame(columns=cols)
    s = s[s["train_type"] == train_type].merge(run.meta[["family"]], left_on="model", right_index=True)
    s = s[s["family"] == family]
    rows = []
    for (metric, area), g in s.groupby(["metric", "area"]):
        lo, hi = bootstrap_ci(g["best_layer_depth"].to_numpy(), confidence_level=confidence_level, seed=seed)
        rows.append(dict(metric=metric, area=area, mean_depth=g["best_layer_depth"].mean(), ci_low=lo,
                         ci_high=hi, n_models=g["model"].nunique()))
    return pd.DataFrame(rows, columns=cols)


def group_scores(run: Run, grouping="area", family="taskonomy", by="task_cluster") -> pd.DataFrame:
    """Layer-max scores per neuron group (area, or a ``scores_groups`` grouping such as
    ``cre_line``), with each model's ``by`` label (Figures 3 and 9 right, Figure 10).

    Random variants are labelled ``"Random"`` in the ``by`` column.

    Returns
    -------
    pandas.DataFrame  columns ``model, train_type, metric, group, score, label``.
    """
    cols = ["model", "train_type", "metric", "group", "score", "label"]
    if grouping == "area":
        t = run.scores.rename(columns={"area": "group"})
    else:
        t = run.scores_groups
        if not len(t) or "grouping" not in t.columns:
            return pd.DataFrame(columns=cols)
        t = t[t["grouping"] == grouping]
    if not len(t):
        return pd.DataFrame(columns=cols)
    mx = t.groupby(["model", "train_type", "metric", "group"])["score"].max().reset_index()
    mx = mx.merge(run.meta[[by, "family"]], left_on="model", right_index=True)
    mx = mx[mx["family"] == family]
    mx["label"] = np.where(mx["train_type"] == "random", "Random", mx[by].astype(object))
    return mx[cols].reset_index(drop=True)


def metric_agreement(run: Run, families=("imagenet", "taskonomy")) -> pd.DataFrame:
    """Spearman between the SRP-Ridge Max and RSA Max model rankings, with and without random models.

    Returns
    -------
    pandas.DataFrame  columns ``models, rho, p, n``.
    """
    ms = model_summary(run)
    ms = ms[ms["family"].isin(families)]
    wide = ms.pivot_table(index=["model", "train_type"], columns="metric", values="score").reset_index()
    rows = []
    for label, sel in (("with random", wide), ("without random", wide[wide["train_type"] != "random"])):
        if set(METRICS) <= set(sel.columns):
            rho, p, n = spearman(sel["srp_ridge"].to_numpy(dtype=float), sel["rsa"].to_numpy(dtype=float))
        else:
            rho, p, n = np.nan, np.nan, 0
        rows.append(dict(models=label, rho=rho, p=p, n=n))
    return pd.DataFrame(rows)


def layerwise_agreement(run: Run, families=("imagenet", "taskonomy"), confidence_level=0.95, seed=0):
    """Layer-wise Spearman between the two metrics per (model, train_type, area), and the mean
    with a bootstrapped CI, with and without random models.

    Returns
    -------
    (per_pair, means) : pandas.DataFrame, pandas.DataFrame
        ``per_pair``: model, train_type, area, rho, n_layers; ``means``: models, mean_rho,
        ci_low, ci_high, n.
    """
    s = run.scores
    if not len(s):
        empty = pd.DataFrame(columns=["models", "mean_rho", "ci_low", "ci_high", "n"])
        return pd.DataFrame(columns=["model", "train_type", "area", "rho", "n_layers"]), empty
    s = s.merge(run.meta[["family"]], left_on="model", right_index=True)
    s = s[s["family"].isin(families)]
    wide = s.pivot_table(index=["model", "train_type", "area", "layer"], columns="metric", values="score")
    rows = []
    if set(METRICS) <= set(wide.columns):
        for (model, tt, area), g in wide.groupby(level=[0, 1, 2]):
            rho, _, n = spearman(g["srp_ridge"].to_numpy(), g["rsa"].to_numpy())
            rows.append(dict(model=model, train_type=tt, area=area, rho=rho, n_layers=n))
    per = pd.DataFrame(rows, columns=["model", "train_type", "area", "rho", "n_layers"])
    means = []
    for label, sel in (("with random", per), ("without random", per[per["train_type"] != "random"])):
        r = sel["rho"].dropna().to_numpy()
        lo, hi = bootstrap_ci(r, confidence_level=confidence_level, seed=seed)
        means.append(dict(models=label, mean_rho=r.mean() if len(r) else np.nan, ci_low=lo, ci_high=hi, n=len(r)))
    return per, pd.DataFrame(means)


def scores_by_reliability(neuron_scores: pd.DataFrame, reliability, thresholds) -> pd.DataFrame:
    """SRP-Ridge Max recomputed at several reliability cutoffs from per-neuron scores.

    Per-neuron scores do not depend on which other neurons are kept (each neuron has its own
    ridge fit), so the area means at a stricter cutoff are the means over the neurons whose
    reliability passes it -- no rescoring needed. Cutoffs below the sweep's own threshold need
    neurons the sweep did not score, and give no rows.

    Parameters
    ----------
    neuron_scores : pandas.DataFrame
        The ``neuron_scores`` table (model, train_type, layer, cell_specimen_id, area, score).
    reliability : pandas.Series
        Split-half reliability indexed by ``cell_specimen_id``.
    thresholds : sequence of float

    Returns
    -------
    pandas.DataFrame  columns ``model, train_type, threshold, score, n_neurons``: the mean over
    areas of the max over layers of the area-mean score.
    """
    if not isinstance(reliability, pd.Series):
        raise TypeError(f"reliability must be a pandas Series indexed by cell_specimen_id, got {type(reliability).__name__}")
    cols = ["model", "train_type", "threshold", "score", "n_neurons"]
    if not len(neuron_scores):
        return pd.DataFrame(columns=cols)
    ns = neuron_scores.assign(reliability=reliability.reindex(neuron_scores["cell_specimen_id"]).to_numpy())
    rows = []
    for thr in thresholds:
        sel = ns[ns["reliability"] >= thr]
        if not len(sel):
            continue
        area = sel.groupby(["model", "train_type", "layer", "area"])["score"].mean()
        best = area.groupby(level=["model", "train_type", "area"]).max()
        per_model = best.groupby(level=["model", "train_type"]).mean()
        n = sel.groupby(["model", "train_type"])["cell_specimen_id"].nunique()
        for (model, tt), v in per_model.items():
            rows.append(dict(model=model, train_type=tt, threshold=float(thr), score=float(v),
                             n_neurons=int(n.loc[(model, tt)])))
    return pd.DataFrame(rows, columns=cols)


def reliability_smooth(curves: pd.DataFrame, frac=2 / 3, confidence_level=0.95, seed=0) -> pd.DataFrame:
    """Across-model mean, bootstrapped CI and lowess smoother of :func:`scores_by_reliability` curves.

    Returns
    -------
    pandas.DataFrame  columns ``threshold, mean, ci_low, ci_high, smooth, n_models``.
    """
    cols = ["threshold", "mean", "ci_low", "ci_high", "smooth", "n_models"]
    if not len(curves):
        return pd.DataFrame(columns=cols)
    rows = []
    for thr, g in curves.groupby("threshold"):
        lo, hi = bootstrap_ci(g["score"].to_numpy(), confidence_level=confidence_level, seed=seed)
        rows.append(dict(threshold=thr, mean=g["score"].mean(), ci_low=lo, ci_high=hi, n_models=len(g)))
    out = pd.DataFrame(rows)
    xs, ys = lowess(curves["threshold"].to_numpy(), curves["score"].to_numpy(), frac=frac)
    out["smooth"] = pd.Series(ys, index=xs).groupby(level=0).mean().reindex(out["threshold"]).to_numpy()
    return out[cols]


def _ground_truth_areas(ground_truth: dict) -> dict:
    """Per-area ``{"layer": str, "depth": float}`` from the synthetic mouse's ground truth,
    tolerating a few spellings (``areas``/``layers`` mapping, ``layer_name``/``relative_depth``)."""
    block = None
    for key in ("areas", "layers", "per_area", "area_layers"):
        if isinstance(ground_truth.get(key), dict):
            block = ground_truth[key]
            break
    if block is None:
        block = {k: v for k, v in ground_truth.items() if isinstance(v, dict)}
    out = {}
    for area, v in block.items():
        layer = v.get("layer", v.get("layer_name", v.get("name")))
        depth = v.get("depth", v.get("relative_depth", v.get("layer_depth")))
        if depth is not None:
            out[area] = dict(layer=layer, depth=float(depth))
    return out


def ground_truth_recovery(run: Run, ground_truth: dict) -> pd.DataFrame:
    """Planted generator layer per area against the best layer the benchmark finds for the
    generator model (same weights), per metric.

    Parameters
    ----------
    run : Run
    ground_truth : dict  the dataset's parsed ``ground_truth`` attribute (``model``,
        ``weights``, per area ``layer`` and ``depth``).

    Returns
    -------
    pandas.DataFrame  columns ``area, planted_layer, planted_depth, metric, recovered_layer,
    recovered_depth, depth_error, exact`` (empty when the generator model was not scored).
    """
    cols = ["area", "planted_layer", "planted_depth", "metric", "recovered_layer", "recovered_depth",
            "depth_error", "exact"]
    model = ground_truth.get("model") or ground_truth.get("generator")
    weights = ground_truth.get("weights", "trained")
    s = run.summary
    if not len(s):
        return pd.DataFrame(columns=cols)
    s = s[(s["model"] == model) & (s["train_type"] == weights)]
    rows = []
    for area, gt in _ground_truth_areas(ground_truth).items():
        for r in s[s["area"] == area].itertuples():
            rows.append(dict(area=area, planted_layer=gt["layer"], planted_depth=gt["depth"], metric=r.metric,
                             recovered_layer=r.best_layer, recovered_depth=r.best_layer_depth,
                             depth_error=r.best_layer_depth - gt["depth"], exact=r.best_layer == gt["layer"]))
    return pd.DataFrame(rows, columns=cols)


def best_layers_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per area and metric: max score, best layer and its relative depth, and the unbiased score.

    Parameters
    ----------
    summary : pandas.DataFrame
        ``summary.parquet`` of one model.

    Returns
    -------
    pandas.DataFrame
        Index (metric, area) in hierarchy order; the available columns of ``max_score``,
        ``unbiased_score``, ``ceiling``, ``best_layer``, ``best_layer_depth``, ``n_flagged``
        (penalty-dominated layers, left out of the maximum).
    """
    missing = [c for c in ("metric", "area") if c not in summary]
    if missing:
        raise ValueError(f"summary lacks the columns {missing}; expected a summary.parquet table "
                         f"(see mbutils.scoring.summarize_scores)")
    cols = [c for c in ("max_score", "unbiased_score", "ceiling", "best_layer", "best_layer_depth", "n_flagged")
            if c in summary]
    table = summary.set_index(["metric", "area"])[cols]
    order = [(m, a) for m in table.index.get_level_values(0).unique() for a in ordered_areas(table.loc[m].index)]
    return table.loc[order]


def layer_counts(results) -> pd.DataFrame:
    """Layers scored per model of a sweep (from each model folder's ``scores.parquet``).

    Parameters
    ----------
    results : str or pathlib.Path
        Sweep results folder (``<results>/models/*/scores.parquet``).

    Returns
    -------
    pandas.DataFrame
        Columns ``model, train_type, n_layers`` (empty when nothing is scored yet).
    """
    rows = []
    for path in sorted(Path(results).glob("models/*/scores.parquet")):
        s = pd.read_parquet(path, columns=["model", "train_type", "layer"])
        if len(s):
            rows.append((s["model"].iloc[0], s["train_type"].iloc[0], int(s["layer"].nunique())))
    return pd.DataFrame(rows, columns=["model", "train_type", "n_layers"])


def penalty_note(scores: pd.DataFrame) -> str:
    """One model's penalty-dominated layers, in words (markdown), for its model card.

    Parameters
    ----------
    scores : pandas.DataFrame
        ``scores.parquet`` of one model (columns ``layer``, ``layer_depth``, ``metric``, and
        ``penalty_dominated``).

    Returns
    -------
    str
    """
    if not len(scores) or "srp_ridge" not in set(scores["metric"]):
        return "No SRP-Ridge scores."
    s = scores[scores["metric"] == "srp_ridge"]
    n_layers = s["layer"].nunique()
    if "penalty_dominated" not in s.columns:
        return (f"These scores predate the penalty-dominance check ({n_layers} layers): score the model again "
                f"to have it.")
    bad = s[s["penalty_dominated"].astype(bool)].drop_duplicates("layer").sort_values("layer_depth")
    if not len(bad):
        return (f"No layer of the {n_layers} is penalty-dominated: under the paper's fixed alpha = 1, every "
                f"layer's leave-one-out predictions depend on its features.")
    mean = float(s[s["penalty_dominated"].astype(bool)]["score"].mean())
    return (f"**{len(bad)} of {n_layers} layers are penalty-dominated** under the paper's fixed alpha = 1 "
            f"(relative depth {bad['layer_depth'].min():.2f} to {bad['layer_depth'].max():.2f}; from "
            f"`{bad['layer'].iloc[0]}` to `{bad['layer'].iloc[-1]}`). Their features are so small against the "
            f"penalty that the ridge predicts each image by the mean of the others, which correlates -1 with "
            f"it: their SRP-Ridge scores (mean {mean:.3f}) measure the penalty, not the layer. They are drawn "
            f"as grey crosses, left out of the maxima and of every mean over layers in the book. The "
            f"scale-aware profile scores every layer with a penalty relative to its own Gram matrix.")
