"""Statistics for the results chapters: tests, effect sizes, bootstrap CIs, smoothers.

Two layers:

- generic statistics on arrays (:func:`paired_ttest`, :func:`independent_ttest` with Student's
  or Welch's test, :func:`cohens_d_paired`, :func:`cohens_d_av`, :func:`cohens_d`,
  :func:`hedges_g`, :func:`welch_df`, :func:`spearman`, :func:`bootstrap_ci`, :func:`lowess`,
  :func:`pairwise_ttests`), thin wrappers around scipy and statsmodels;
- analyses of a sweep's score tables (a :class:`mbutils.results.Run`), one per paper
  section: :func:`trained_vs_random`, :func:`architecture_correlations`,
  :func:`class_contrast`, :func:`training_gain_by_class`, :func:`score_ranges`,
  :func:`depth_profiles`, :func:`depth_peak`, :func:`best_layer_depths`,
  :func:`taskonomy_ranking`, :func:`metric_agreement`, :func:`layerwise_agreement`,
  :func:`explainable_variance`, :func:`scores_by_reliability`, ...

Where the paper's text leaves a test's sample or definition open, the analyses compute every
reading and label it (``sample``, ``reading``, ``subset`` columns; ``TestResult.effect_sizes``);
docs/statistics.md says which reading reproduces the paper's own numbers and how that was
inferred.

Effect sizes are written from their formulas: for paired samples d_z (mean difference over
the standard deviation of the differences) and d_av (mean difference over the root mean square
of the two standard deviations, pingouin's paired Cohen's d); for independent samples Cohen's d
(pooled standard deviation) and Hedges' g (Cohen's d times ``1 - 3 / (4 (n1 + n2) - 9)``).
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
    "TestResult", "cohens_d_paired", "cohens_d_av", "cohens_d", "hedges_g", "welch_df", "paired_ttest",
    "independent_ttest", "spearman",
    "bootstrap_ci", "lowess", "pairwise_ttests", "depth_bins",
    "trained_vs_random", "model_rankings", "architecture_correlations", "class_contrast",
    "training_gain_by_class", "score_ranges", "depth_profiles", "best_layer_depths",
    "group_scores", "metric_agreement", "layerwise_agreement", "scores_by_reliability",
    "reliability_smooth", "reliability_peaks", "ground_truth_recovery", "best_layers_table", "layer_counts", "penalty_note",
    "depth_peak", "taskonomy_ranking", "explainable_variance", "explained_fraction", "is_normalizer_free",
    "CORRELATION_SAMPLES", "GAIN_READINGS", "RANGE_SUBSETS",
]


@dataclasses.dataclass
class TestResult:
    """Result of a two-sample t-test.

    Attributes
    ----------
    statistic : float
        t.
    pvalue : float
        Two-sided p-value.
    df : float
        Degrees of freedom (Welch-Satterthwaite for ``test="welch"``).
    effect_size : float
        The headline effect size named by ``effect_name``.
    effect_name : str
        ``"cohens_d_paired"`` (d_z) for paired tests, ``"hedges_g"`` for independent ones.
    n : int or tuple of int
        Number of pairs, or the two sample sizes.
    test : str
        ``"paired student"``, ``"student"`` (pooled variance) or ``"welch"``.
    effect_sizes : dict
        Every effect size computed: paired ``{"d_z", "d_av"}``; independent
        ``{"hedges_g", "cohens_d"}``.
    """

    statistic: float
    pvalue: float
    df: float
    effect_size: float
    effect_name: str
    n: object
    test: str = ""
    effect_sizes: dict = dataclasses.field(default_factory=dict)


def _vec(x, name):
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _paired(a, b, what):
    a, b = _vec(a, "a"), _vec(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same length, got {a.shape[0]} and {b.shape[0]}")
    if a.shape[0] < 2:
        raise ValueError(f"need at least 2 pairs for {what}, got {a.shape[0]}")
    return a, b


def cohens_d_paired(a, b) -> float:
    """Cohen's d for paired samples (d_z): ``mean(a - b) / std(a - b, ddof=1)``.

    For a paired t-test ``t = d_z * sqrt(n)``, so d_z and the p-value fix each other.

    Parameters
    ----------
    a, b : array of shape (n,)
        Paired values (e.g. trained and random scores of the same architectures).

    Returns
    -------
    float
    """
    a, b = _paired(a, b, "Cohen's d")
    diff = a - b
    return float(diff.mean() / diff.std(ddof=1))


def cohens_d_av(a, b) -> float:
    """Cohen's d_av for paired samples: the mean difference over the root mean square of the two
    standard deviations, ``mean(a - b) / sqrt((var(a) + var(b)) / 2)`` (``ddof=1``).

    This is the paired Cohen's d of pingouin 0.5.5 (``compute_effsize(paired=True)``, after
    Cumming 2012). Unlike d_z it does not depend on the correlation between the pairs, so it is
    not fixed by the paired t-test's p-value.

    Parameters
    ----------
    a, b : array of shape (n,)
        Paired values.

    Returns
    -------
    float
    """
    a, b = _paired(a, b, "Cohen's d_av")
    return float((a.mean() - b.mean()) / np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2.0))


def _two_samples(a, b, what):
    a, b = _vec(a, "a"), _vec(b, "b")
    n1, n2 = a.shape[0], b.shape[0]
    if n1 < 2 or n2 < 2:
        raise ValueError(f"need at least 2 values per sample for {what}, got {n1} and {n2}")
    return a, b


def cohens_d(a, b) -> float:
    """Cohen's d of two independent samples: mean difference over the pooled standard deviation
    ``sqrt(((n1-1) var(a) + (n2-1) var(b)) / (n1 + n2 - 2))`` (``ddof=1`` variances).

    Parameters
    ----------
    a : array of shape (n1,)
    b : array of shape (n2,)

    Returns
    -------
    float
    """
    a, b = _two_samples(a, b, "Cohen's d")
    n1, n2 = a.shape[0], b.shape[0]
    pooled = np.sqrt(((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / (n1 + n2 - 2))
    return float((a.mean() - b.mean()) / pooled)


def hedges_g(a, b) -> float:
    """Hedges' g of two independent samples.

    ``g = J * (mean(a) - mean(b)) / s_pooled`` with
    ``s_pooled = sqrt(((n1-1) var(a) + (n2-1) var(b)) / (n1 + n2 - 2))`` (``ddof=1`` variances)
    and ``J = 1 - 3 / (4 (n1 + n2) - 9)``.

    Parameters
    ----------
    a : array of shape (n1,)
    b : array of shape (n2,)

    Returns
    -------
    float
    """
    a, b = _two_samples(a, b, "Hedges' g")
    correction = 1.0 - 3.0 / (4.0 * (a.shape[0] + b.shape[0]) - 9.0)
    return float(correction * cohens_d(a, b))


def welch_df(a, b) -> float:
    """Welch-Satterthwaite degrees of freedom of two independent samples.

    ``df = (v1 + v2)^2 / (v1^2 / (n1 - 1) + v2^2 / (n2 - 1))`` with ``v = var(x, ddof=1) / n``.

    Parameters
    ----------
    a : array of shape (n1,)
    b : array of shape (n2,)

    Returns
    -------
    float  between ``min(n1, n2) - 1`` and ``n1 + n2 - 2``.
    """
    a, b = _two_samples(a, b, "Welch's degrees of freedom")
    n1, n2 = a.shape[0], b.shape[0]
    v1, v2 = a.var(ddof=1) / n1, b.var(ddof=1) / n2
    return float((v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1)))


def paired_ttest(a, b) -> TestResult:
    """Paired Student's t-test (``scipy.stats.ttest_rel``) with both paired Cohen's d.

    ``effect_size`` is d_z (:func:`cohens_d_paired`); ``effect_sizes`` holds d_z and d_av
    (:func:`cohens_d_av`).

    Parameters
    ----------
    a, b : array of shape (n,)
        Paired values.

    Returns
    -------
    TestResult  with ``test="paired student"`` and ``df = n - 1``.
    """
    a, b = _paired(a, b, "a paired t-test")
    res = scipy.stats.ttest_rel(a, b)
    d_z = cohens_d_paired(a, b)
    return TestResult(float(res.statistic), float(res.pvalue), float(a.shape[0] - 1), d_z, "cohens_d_paired",
                      int(a.shape[0]), test="paired student", effect_sizes={"d_z": d_z, "d_av": cohens_d_av(a, b)})


def independent_ttest(a, b, equal_var=True) -> TestResult:
    """Two-sample t-test: Student's (pooled variance, ``equal_var=True``) or Welch's.

    t and p come from ``scipy.stats.ttest_ind``; the degrees of freedom are ``n1 + n2 - 2`` for
    Student's test and the Welch-Satterthwaite value (:func:`welch_df`) for Welch's.

    Parameters
    ----------
    a : array of shape (n1,)
    b : array of shape (n2,)
    equal_var : bool
        True: Student's t-test; False: Welch's.

    Returns
    -------
    TestResult  with ``test`` ``"student"`` or ``"welch"``, ``effect_size`` Hedges' g and
    ``effect_sizes`` ``{"hedges_g", "cohens_d"}``.
    """
    a, b = _two_samples(a, b, "a two-sample t-test")
    res = scipy.stats.ttest_ind(a, b, equal_var=bool(equal_var))
    df = float(a.shape[0] + b.shape[0] - 2) if equal_var else welch_df(a, b)
    g = hedges_g(a, b)
    return TestResult(float(res.statistic), float(res.pvalue), df, g, "hedges_g", (int(a.shape[0]), int(b.shape[0])),
                      test="student" if equal_var else "welch",
                      effect_sizes={"hedges_g": g, "cohens_d": cohens_d(a, b)})


#: samples up to this size get the exact permutation p-value of Spearman's rho
EXACT_SPEARMAN_N = 8


def spearman(x, y):
    """Spearman rank correlation over pairs where both values are finite.

    The p-value is two-sided: ``scipy.stats.spearmanr``'s t approximation from
    ``EXACT_SPEARMAN_N + 1`` pairs on, and below that the exact permutation p-value (the
    fraction of the ``n!`` pairings whose ``|rho|`` reaches the observed one), where the t
    approximation is far off (it gives p = 0 for any perfect ordering of 3 values, whose exact
    p-value is 1/3).

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
    rho, p = float(res.correlation), float(res.pvalue)
    if n <= EXACT_SPEARMAN_N and np.isfinite(rho):
        p = _exact_spearman_p(x[ok], y[ok])
    return rho, p, n


def _exact_spearman_p(x, y):
    """Two-sided exact p-value of Spearman's rho over every pairing of ``x`` with ``y``
    (``scipy.stats.permutation_test``: twice the smaller one-sided p-value, at most 1)."""
    ry = scipy.stats.rankdata(y)
    ry = (ry - ry.mean()) / np.linalg.norm(ry - ry.mean())

    def rho(a, axis):
        ra = scipy.stats.rankdata(a, axis=axis)
        ra = ra - ra.mean(axis=axis, keepdims=True)
        return (ra @ ry) / np.linalg.norm(ra, axis=axis)

    res = scipy.stats.permutation_test((x,), rho, permutation_type="pairings", vectorized=True,
                                       n_resamples=np.inf, axis=-1)
    return float(res.pvalue)


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


def pairwise_ttests(values, groups, correction="bonferroni", alpha=0.05, equal_var=True) -> pd.DataFrame:
    """Two-sample t-tests between every pair of groups, corrected for multiple comparisons.

    Parameters
    ----------
    values : array of shape (n,)
    groups : array of shape (n,)  group label of each value
    correction : str  a ``statsmodels.stats.multitest.multipletests`` method (Bonferroni:
        ``p_adjusted = min(1, p * m)`` over the ``m`` pairs)
    alpha : float  family-wise error rate of ``reject``
    equal_var : bool  Student's t-tests (True) or Welch's (False), see :func:`independent_ttest`

    Returns
    -------
    pandas.DataFrame  columns ``group_a, group_b, n_a, n_b, t, df, p, hedges_g, test, p_adjusted,
    reject``; groups with fewer than 2 values are left out.
    """
    from statsmodels.stats.multitest import multipletests

    values = _vec(values, "values")
    groups = np.asarray(groups)
    if groups.shape != values.shape:
        raise ValueError(f"groups must have one label per value, got {groups.shape[0]} labels for "
                         f"{values.shape[0]} values")
    labels = [g for g in pd.unique(groups) if (groups == g).sum() >= 2]
    rows = []
    for ga, gb in itertools.combinations(sorted(labels, key=str), 2):
        a, b = values[groups == ga], values[groups == gb]
        res = independent_ttest(a, b, equal_var=equal_var)
        rows.append(dict(group_a=ga, group_b=gb, n_a=len(a), n_b=len(b), t=res.statistic, df=res.df,
                         p=res.pvalue, hedges_g=res.effect_size, test=res.test))
    out = pd.DataFrame(rows, columns=["group_a", "group_b", "n_a", "n_b", "t", "df", "p", "hedges_g", "test"])
    if len(out):
        reject, padj, _, _ = multipletests(out["p"].to_numpy(), alpha=alpha, method=correction)
        out["p_adjusted"], out["reject"] = padj, reject
    else:
        out["p_adjusted"], out["reject"] = np.array([], dtype=float), np.array([], dtype=bool)
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


#: the two readings of the section 3.3 correlations (see docs/statistics.md)
CORRELATION_SAMPLES = ("imagenet_trained", "pooled")


def architecture_correlations(run: Run, family="imagenet", train_type="trained",
                              sample=CORRELATION_SAMPLES) -> pd.DataFrame:
    """Spearman correlations of model depth (number of layers), parameter count and ImageNet
    top-1 with each metric's score (section 3.3), in one or both samples.

    Samples (the ``sample`` column):

    - ``"imagenet_trained"``: the models of ``family`` scored with ``train_type`` (one row
      per architecture);
    - ``"pooled"``: the models of ``family``, every train type together (trained and random
      variants of each architecture, two rows per architecture). The paper's (rho, p) pairs
      imply 196-223 models, i.e. this sample (the paper's table lists 2 x 111 ImageNet rows).
      ImageNet top-1 is the trained variant's accuracy, so it is left out of this sample.

    Parameters
    ----------
    run : Run
    family : str
    train_type : str  the train type of the ``"imagenet_trained"`` sample
    sample : str or sequence of str  among :data:`CORRELATION_SAMPLES`

    Returns
    -------
    pandas.DataFrame  columns ``predictor, metric, rho, p, n, sample``.
    """
    samples = (sample,) if isinstance(sample, str) else tuple(sample)
    bad = [s for s in samples if s not in CORRELATION_SAMPLES]
    if bad:
        raise ValueError(f"sample={bad[0]!r}; expected one of {list(CORRELATION_SAMPLES)}")
    depth = n_layers(run)
    rows = []
    for name in samples:
        tt = train_type if name == "imagenet_trained" else None
        for metric in METRICS:
            ms = model_summary(run, metric=metric, family=family, train_type=tt)
            predictors = {"n_layers": ms["model"].map(depth), "n_parameters": ms["n_parameters"]}
            if name == "imagenet_trained":
                predictors["imagenet_top1"] = ms["imagenet_top1"]
            for pred, x in predictors.items():
                rho, p, n = spearman(pd.to_numeric(x, errors="coerce").to_numpy(dtype=float),
                                     ms["score"].to_numpy(dtype=float))
                rows.append(dict(predictor=pred, metric=metric, rho=rho, p=p, n=n, sample=name))
    return pd.DataFrame(rows, columns=["predictor", "metric", "rho", "p", "n", "sample"])


def class_contrast(run: Run, model_class="Transformer", family="imagenet", train_type="trained",
                   equal_var=False) -> pd.DataFrame:
    """t-test and Hedges' g of one model class against all others, per metric (section 3.3).

    Welch's test by default: the paper's pairs (t = -3.96, p = 0.004) and (t = 2.45, p = 0.023)
    hold at about 8 and 21 degrees of freedom, not at the 90 of a pooled-variance test on 92
    architectures.

    Parameters
    ----------
    run : Run
    model_class : str
    family, train_type : str  the models compared
    equal_var : bool  Student's pooled-variance test (True) or Welch's (False)

    Returns
    -------
    pandas.DataFrame  columns ``metric, model_class, n_class, n_other, t, df, p, hedges_g, test``
    (NaN where either side has fewer than 2 models).
    """
    test = "student" if equal_var else "welch"
    rows = []
    for metric in METRICS:
        ms = model_summary(run, metric=metric, family=family, train_type=train_type)
        a = ms.loc[ms["model_class"] == model_class, "score"].to_numpy(dtype=float)
        b = ms.loc[ms["model_class"] != model_class, "score"].to_numpy(dtype=float)
        row = dict(metric=metric, model_class=model_class, n_class=len(a), n_other=len(b),
                   t=np.nan, df=np.nan, p=np.nan, hedges_g=np.nan, test=test)
        if len(a) >= 2 and len(b) >= 2:
            res = independent_ttest(a, b, equal_var=equal_var)
            row.update(t=res.statistic, df=res.df, p=res.pvalue, hedges_g=res.effect_size)
        rows.append(row)
    return pd.DataFrame(rows, columns=["metric", "model_class", "n_class", "n_other", "t", "df", "p", "hedges_g",
                                       "test"])


#: the two readings of section 3.3's Bonferroni-corrected pairwise tests of the training gain
GAIN_READINGS = ("between classes", "within class")


def training_gain_by_class(run: Run, family="imagenet", correction="bonferroni", equal_var=False,
                           reading=GAIN_READINGS, alpha=0.05):
    """Trained-minus-random score differences by model class, and corrected pairwise tests.

    Section 3.3: "transformers and MLP-Mixers boast the largest differences between
    ImageNet-trained and randomly initialized variants [...] with all pairwise t-tests
    significant at alpha = 0.05 after Bonferroni correction". Two readings (``reading`` column):

    - ``"between classes"``: the differences of every two classes compared with a two-sample
      t-test (Welch's by default, as in :func:`class_contrast`), Bonferroni over the class pairs;
    - ``"within class"``: trained against random within each class (paired t-test),
      Bonferroni over the classes; ``group_b`` is ``"random"``.

    Returns
    -------
    (differences, tests) : pandas.DataFrame, pandas.DataFrame
        ``differences``: model, model_class, metric, difference; ``tests``: per reading and
        metric, columns ``reading, metric, group_a, group_b, n_a, n_b, t, df, p, hedges_g,
        d_av, test, p_adjusted, reject`` (``hedges_g`` between classes, ``d_av`` within).
    """
    from statsmodels.stats.multitest import multipletests

    readings = (reading,) if isinstance(reading, str) else tuple(reading)
    bad = [r for r in readings if r not in GAIN_READINGS]
    if bad:
        raise ValueError(f"reading={bad[0]!r}; expected one of {list(GAIN_READINGS)}")
    cols = ["reading", "metric", "group_a", "group_b", "n_a", "n_b", "t", "df", "p", "hedges_g", "d_av", "test",
            "p_adjusted", "reject"]
    tvr = trained_vs_random(run, family=family)
    diffs, tests = [], []
    for metric, res in tvr.items():
        t = res["table"].merge(run.meta[["model_class"]], left_on="model", right_index=True, how="left")
        t["model_class"] = t["model_class"].fillna("unknown")
        t["metric"] = metric
        diffs.append(t[["model", "model_class", "metric", "difference"]])
        if not len(t):
            continue
        if "between classes" in readings:
            pw = pairwise_ttests(t["difference"].to_numpy(dtype=float), t["model_class"].to_numpy(),
                                 correction=correction, alpha=alpha, equal_var=equal_var)
            pw.insert(0, "metric", metric)
            pw.insert(0, "reading", "between classes")
            tests.append(pw)
        if "within class" in readings:
            rows = []
            for cls, g in t.groupby("model_class"):
                if len(g) < 2:
                    continue
                r = paired_ttest(g["trained"].to_numpy(dtype=float), g["random"].to_numpy(dtype=float))
                rows.append(dict(reading="within class", metric=metric, group_a=cls, group_b="random", n_a=len(g),
                                 n_b=len(g), t=r.statistic, df=r.df, p=r.pvalue, d_av=r.effect_sizes["d_av"],
                                 test=r.test))
            if rows:
                w = pd.DataFrame(rows)
                reject, padj, _, _ = multipletests(w["p"].to_numpy(), alpha=alpha, method=correction)
                w["p_adjusted"], w["reject"] = padj, reject
                tests.append(w)
    diffs = pd.concat(diffs, ignore_index=True) if diffs else pd.DataFrame(
        columns=["model", "model_class", "metric", "difference"])
    tests = [x for x in tests if len(x)]
    tests = pd.concat(tests, ignore_index=True).reindex(columns=cols) if tests else pd.DataFrame(columns=cols)
    return diffs, tests


def is_normalizer_free(name) -> bool:
    """Whether a model name is a normalization-free network (``nf_resnet50``, ``nfnet_l0``,
    ``eca_nfnet_l1``, ``dm_nfnet_f0``, ...).

    Parameters
    ----------
    name : str

    Returns
    -------
    bool
    """
    n = str(name).lower()
    return n.startswith("nf") or "_nf" in n


RANGE_SUBSETS = ("all", "without normalizer-free")


def score_ranges(run: Run, families=("imagenet", "taskonomy"), train_type="trained",
                 subsets=RANGE_SUBSETS) -> pd.DataFrame:
    """Best-minus-worst model score per family and metric (section 3.6), over all models and
    without the normalization-free networks (:func:`is_normalizer_free`), which the paper
    calls outliers of the ImageNet RSA range ("0.458 to 0.347 (0.111)" without them).

    Parameters
    ----------
    run : Run
    families : sequence of str
    train_type : str
    subsets : sequence of str  among :data:`RANGE_SUBSETS`

    Returns
    -------
    pandas.DataFrame  columns ``family, metric, best_model, best, worst_model, worst, range,
    n_models, subset``; a (family, metric, subset) with fewer than 2 models has no row, and a
    ``"without normalizer-free"`` row is written only where the family has normalization-free
    models (otherwise it would repeat the ``"all"`` row).
    """
    subsets = (subsets,) if isinstance(subsets, str) else tuple(subsets)
    bad = [s for s in subsets if s not in RANGE_SUBSETS]
    if bad:
        raise ValueError(f"subset {bad[0]!r}; expected among {list(RANGE_SUBSETS)}")
    cols = ["family", "metric", "best_model", "best", "worst_model", "worst", "range", "n_models", "subset"]
    rows = []
    for subset in subsets:
        for fam in families:
            for metric in METRICS:
                ms = model_summary(run, metric=metric, family=fam, train_type=train_type)
                if subset != "all":
                    nf = ms["model"].map(is_normalizer_free).astype(bool)
                    if not nf.any():  # nothing to leave out: the "all" row says it
                        continue
                    ms = ms[~nf]
                ms = ms[np.isfinite(ms["score"].to_numpy(dtype=float))]
                if len(ms) < 2:
                    continue
                hi, lo = ms.loc[ms["score"].idxmax()], ms.loc[ms["score"].idxmin()]
                rows.append(dict(family=fam, metric=metric, best_model=hi["model"], best=hi["score"],
                                 worst_model=lo["model"], worst=lo["score"], range=hi["score"] - lo["score"],
                                 n_models=len(ms), subset=subset))
    return pd.DataFrame(rows, columns=cols)


def depth_peak(run: Run, family="imagenet", train_type="trained", by=None, frac=2 / 3, n_bins=100) -> pd.DataFrame:
    """Relative depth at the peak of the lowess curve of layer scores against depth (section 3.7,
    Figure 4): where the most predictive layers lie, as the paper reads it.

    The curve is :func:`depth_profiles`'s (each layer's score averaged over areas, depths in
    ``n_bins`` bins, lowess of span ``frac`` through every layer); its peak is the bin where
    the smoothed score is highest.

    Parameters
    ----------
    run : Run
    family, train_type : str  the models pooled
    by : str, optional  a metadata column to split by (``"task_cluster"`` for the Taskonomy
        clusters, ``"model_class"``); None pools every model of the family (group ``"all"``)
    frac : float  lowess span
    n_bins : int

    Returns
    -------
    pandas.DataFrame  columns ``metric, group, peak_depth, n_models``.
    """
    cols = ["metric", "group", "peak_depth", "n_models"]
    key = "_all" if by is None else by
    if by is None:  # one group holding every model of the family
        run = dataclasses.replace(run, meta=run.meta.assign(_all="all"))
    prof = depth_profiles(run, by=key, family=family, train_type=train_type, n_bins=n_bins, frac=frac)
    if not len(prof):
        return pd.DataFrame(columns=cols)
    m = run.models
    m = m[(m["family"] == family) & (m["train_type"] == train_type)]
    counts = m.groupby(key)["model"].nunique()
    rows = []
    for (metric, group), g in prof.groupby(["metric", "group"]):
        g = g.dropna(subset=["smooth"])
        if not len(g):
            continue
        rows.append(dict(metric=metric, group=group,
                         peak_depth=float(g.loc[g["smooth"].idxmax(), "depth_bin"]),
                         n_models=int(counts.get(group, 0))))
    return pd.DataFrame(rows, columns=cols)


def taskonomy_ranking(run: Run, family="taskonomy", train_type="trained") -> pd.DataFrame:
    """The overall model ranking of section 2.5: the mean of the SRP-Ridge Max and RSA Max
    scores (each the mean over areas of the layer-max score), highest first.

    Parameters
    ----------
    run : Run
    family, train_type : str  the models ranked (the Taskonomy encoders by default)

    Returns
    -------
    pandas.DataFrame  columns ``model, srp_ridge, rsa, mean_score, rank, srp_ridge_rank,
    rsa_rank, task_cluster`` sorted by ``mean_score`` (rank 1 the best; per-metric ranks
    likewise); models lacking either metric are left out.
    """
    cols = ["model", "srp_ridge", "rsa", "mean_score", "rank", "srp_ridge_rank", "rsa_rank", "task_cluster"]
    ms = model_summary(run, family=family, train_type=train_type)
    if not len(ms):
        return pd.DataFrame(columns=cols)
    wide = ms.pivot_table(index="model", columns="metric", values="score")
    if not set(METRICS) <= set(wide.columns):
        return pd.DataFrame(columns=cols)
    wide = wide[list(METRICS)].dropna()
    wide["mean_score"] = wide[list(METRICS)].mean(axis=1)
    wide["rank"] = wide["mean_score"].rank(ascending=False, method="min")
    for metric in METRICS:
        wide[f"{metric}_rank"] = wide[metric].rank(ascending=False, method="min")
    wide = wide.reset_index().merge(run.meta[["task_cluster"]], left_on="model", right_index=True, how="left")
    return wide.sort_values(["mean_score", "model"], ascending=[False, True]).reset_index(drop=True)[cols]


def explainable_variance(rdm_reliability):
    """Explainable variance of RSA scores as section 4 defines it: the square of the neural
    RDM's split-half reliability (the paper: R^2 = 0.773 in VISal).

    This differs from the noise ceiling of :func:`mbutils.reliability.noise_ceiling`
    (``sqrt(reliability)``, the highest r a score can reach): the paper compares the squared
    score (R^2) with the squared reliability.

    Parameters
    ----------
    rdm_reliability : float or array of shape (n,)
        Split-half RDM reliability (:func:`mbutils.reliability.splithalf_rdm_reliability`).

    Returns
    -------
    float or numpy.ndarray of shape (n,)  NaN where the reliability is not positive.
    """
    rel = np.asarray(rdm_reliability, dtype=float)
    with np.errstate(invalid="ignore"):
        out = np.where(rel > 0, rel**2, np.nan)
    return out if out.ndim else float(out)


def explained_fraction(score, rdm_reliability) -> dict:
    """An RSA score against its area's explainable variance (section 4).

    Parameters
    ----------
    score : float  RSA Max (Pearson r)
    rdm_reliability : float  split-half reliability of the area's neural RDM

    Returns
    -------
    dict  ``r2`` (score squared), ``explainable`` (:func:`explainable_variance`), ``fraction``
    (``r2 / explainable``), ``ceiling`` (``sqrt(reliability)``) and ``normalized`` (score over
    the ceiling).
    """
    from .reliability import noise_ceiling

    r2 = float(score) ** 2
    ev = explainable_variance(rdm_reliability)
    ceiling = noise_ceiling(rdm_reliability)
    return dict(r2=r2, explainable=ev, fraction=r2 / ev if np.isfinite(ev) else np.nan, ceiling=ceiling,
                normalized=float(score) / ceiling if np.isfinite(ceiling) else np.nan)


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


def scores_by_reliability(table: pd.DataFrame, reliability=None, thresholds=None, include_flagged=False) -> pd.DataFrame:
    """Max scores (mean over areas of the best layer's score) at several reliability cutoffs.

    Two sources:

    - a ``scores_reliability`` table (``Run.scores_reliability``, written by
      :func:`mbutils.scoring.score_model`; it has a ``cutoff`` column): both metrics, every
      cutoff scored (down to 0.5 by default), RSA from the neural RDM of the neurons passing
      each cutoff. ``reliability`` is not used.
    - a ``neuron_scores`` table with ``reliability`` (SRP-Ridge only): per-neuron scores do not
      depend on which other neurons are kept (each neuron has its own ridge fit), so the area
      means at a stricter cutoff are the means over the neurons whose reliability passes it.
      Cutoffs below the scoring threshold need neurons that were not scored, and give no rows.

    Parameters
    ----------
    table : pandas.DataFrame
        A ``scores_reliability`` table (columns ``model, train_type, layer, metric, area,
        cutoff, score, n_neurons``) or a ``neuron_scores`` table (``model, train_type, layer,
        cell_specimen_id, area, score``).
    reliability : pandas.Series, optional
        Split-half reliability indexed by ``cell_specimen_id`` (``neuron_scores`` only).
    thresholds : sequence of float, optional
        Cutoffs to keep; default every cutoff of a ``scores_reliability`` table (required
        with ``neuron_scores``).
    include_flagged : bool, default False
        Let penalty-dominated layers (column ``penalty_dominated``) compete for the maximum.

    Returns
    -------
    pandas.DataFrame
        Columns ``model, train_type, metric, threshold, score, n_neurons, n_areas``: per
        model, metric and cutoff the mean over areas of the max over layers of the area score.
        From a ``scores_reliability`` table, the areas are those with a score at every kept
        cutoff of that model and metric (so that a curve does not change its areas along the
        way), ``n_neurons`` the neurons of those areas passing the cutoff.
    """
    cols = ["model", "train_type", "metric", "threshold", "score", "n_neurons", "n_areas"]
    if "cutoff" in table.columns:
        return _curves_from_cutoff_table(table, thresholds, include_flagged, cols)
    if not isinstance(reliability, pd.Series):
        raise TypeError(f"reliability must be a pandas Series indexed by cell_specimen_id, got {type(reliability).__name__}"
                        " (or pass a scores_reliability table, which has a cutoff column)")
    if thresholds is None:
        raise ValueError("thresholds=None; give the cutoffs to compute from neuron_scores, e.g. [0.8, 0.85, 0.9]")
    if not len(table):
        return pd.DataFrame(columns=cols)
    ns = table.assign(reliability=reliability.reindex(table["cell_specimen_id"]).to_numpy())
    if not include_flagged and "penalty_dominated" in ns.columns:
        ns = ns[~ns["penalty_dominated"].fillna(False).astype(bool)]
    rows = []
    for thr in thresholds:
        sel = ns[ns["reliability"] >= thr]
        if not len(sel):
            continue
        area = sel.groupby(["model", "train_type", "layer", "area"])["score"].mean()
        best = area.groupby(level=["model", "train_type", "area"]).max()
        per_model = best.groupby(level=["model", "train_type"])
        n = sel.groupby(["model", "train_type"])["cell_specimen_id"].nunique()
        for (model, tt), v in per_model.mean().items():
            rows.append(dict(model=model, train_type=tt, metric="srp_ridge", threshold=float(thr), score=float(v),
                             n_neurons=int(n.loc[(model, tt)]), n_areas=int(per_model.count().loc[(model, tt)])))
    return pd.DataFrame(rows, columns=cols)


def _curves_from_cutoff_table(table, thresholds, include_flagged, cols) -> pd.DataFrame:
    """:func:`scores_by_reliability` from a ``scores_reliability`` table."""
    t = table
    if thresholds is not None:
        t = t[np.isin(t["cutoff"].to_numpy(dtype=float), np.asarray(thresholds, dtype=float))]
    if not include_flagged and "penalty_dominated" in t.columns:
        t = t[~t["penalty_dominated"].fillna(False).astype(bool)]
    t = t[np.isfinite(t["score"].to_numpy(dtype=float))]
    if not len(t):
        return pd.DataFrame(columns=cols)
    keys = ["model", "train_type", "metric"]
    best = (t.groupby(keys + ["cutoff", "area"], sort=True)
            .agg(score=("score", "max"), n_neurons=("n_neurons", "max")).reset_index())
    n_cut = best.groupby(keys)["cutoff"].transform("nunique")
    n_cut_area = best.groupby(keys + ["area"])["cutoff"].transform("nunique")
    best = best[n_cut_area == n_cut]  # the areas scored at every cutoff of the model and metric
    out = (best.groupby(keys + ["cutoff"], sort=True)
           .agg(score=("score", "mean"), n_neurons=("n_neurons", "sum"), n_areas=("area", "nunique")).reset_index()
           .rename(columns={"cutoff": "threshold"}))
    out["n_neurons"] = out["n_neurons"].astype(np.int64)
    out["n_areas"] = out["n_areas"].astype(np.int64)
    return out[cols]


def reliability_smooth(curves: pd.DataFrame, frac=2 / 3, confidence_level=0.95, seed=0) -> pd.DataFrame:
    """Across-model mean, bootstrapped CI and lowess smoother of :func:`scores_by_reliability` curves.

    Per metric (one group when ``curves`` has no ``metric`` column): at each cutoff the mean
    over models and its percentile bootstrap CI (:func:`bootstrap_ci`); the lowess smoother
    (statsmodels, span ``frac``) is fitted to every model's points at once, as the paper's
    smoother across all models (appendix A.6, Figure 6). It is the plain local-linear fit,
    without the robustness iterations of :func:`lowess`, which would down-weight the models
    farthest from the others: like the paper's least-squares (GAM) smoother, it follows the
    across-model mean.

    Returns
    -------
    pandas.DataFrame
        Columns ``metric, threshold, mean, ci_low, ci_high, smooth, n_models``, one row per
        metric and cutoff.
    """
    cols = ["metric", "threshold", "mean", "ci_low", "ci_high", "smooth", "n_models"]
    if not len(curves):
        return pd.DataFrame(columns=cols)
    if "metric" not in curves.columns:
        curves = curves.assign(metric="srp_ridge")
    out = []
    for metric, cm in curves.groupby("metric", sort=False):
        rows = []
        for thr, g in cm.groupby("threshold"):
            lo, hi = bootstrap_ci(g["score"].to_numpy(), confidence_level=confidence_level, seed=seed)
            rows.append(dict(metric=metric, threshold=thr, mean=g["score"].mean(), ci_low=lo, ci_high=hi,
                             n_models=len(g)))
        part = pd.DataFrame(rows)
        xs, ys = _lowess_plain(cm["threshold"].to_numpy(dtype=float), cm["score"].to_numpy(dtype=float), frac)
        part["smooth"] = pd.Series(ys, index=xs).groupby(level=0).mean().reindex(part["threshold"]).to_numpy()
        out.append(part)
    return pd.concat(out, ignore_index=True)[cols]


def _lowess_plain(x, y, frac):
    """Local-linear lowess of the finite pairs without robustness iterations (statsmodels ``it=0``).

    Returns ``(x_sorted, y_smoothed)``, arrays of shape (n,); the pairs themselves when fewer
    than 3.
    """
    from statsmodels.nonparametric.smoothers_lowess import lowess as _lowess

    if not 0 < frac <= 1:
        raise ValueError(f"frac={frac!r}; expected a fraction in (0, 1]")
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return x[ok], y[ok]
    out = _lowess(y[ok], x[ok], frac=frac, it=0, return_sorted=True)
    return out[:, 0], out[:, 1]


def reliability_peaks(smooth: pd.DataFrame, threshold=0.8) -> pd.DataFrame:
    """Where the across-model mean of :func:`reliability_smooth` peaks, beside the threshold.

    Parameters
    ----------
    smooth : pandas.DataFrame
        From :func:`reliability_smooth`.
    threshold : float, default 0.8
        The selection threshold of the main analysis.

    Returns
    -------
    pandas.DataFrame
        One row per metric: ``peak_cutoff`` and ``peak_score`` (the largest across-model mean),
        ``smooth_peak_cutoff`` (the largest lowess value), ``score_at_threshold`` (the mean at
        the cutoff nearest ``threshold``), ``gain`` (``peak_score - score_at_threshold``),
        ``n_models`` (at the peak), ``cutoffs`` (number of cutoffs).
    """
    cols = ["metric", "peak_cutoff", "peak_score", "smooth_peak_cutoff", "score_at_threshold", "gain", "n_models",
            "cutoffs"]
    rows = []
    for metric, g in smooth.groupby("metric", sort=False):
        g = g[np.isfinite(g["mean"].to_numpy(dtype=float))]
        if not len(g):
            continue
        top = g.loc[g["mean"].idxmax()]
        sm = g["smooth"].to_numpy(dtype=float)
        at = g.iloc[int(np.argmin(np.abs(g["threshold"].to_numpy(dtype=float) - float(threshold))))]
        rows.append(dict(metric=metric, peak_cutoff=float(top["threshold"]), peak_score=float(top["mean"]),
                         smooth_peak_cutoff=float(g["threshold"].iloc[int(np.nanargmax(sm))])
                         if np.isfinite(sm).any() else np.nan,
                         score_at_threshold=float(at["mean"]), gain=float(top["mean"] - at["mean"]),
                         n_models=int(top["n_models"]), cutoffs=len(g)))
    return pd.DataFrame(rows, columns=cols)


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
