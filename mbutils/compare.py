"""Model rankings across datasets: do the models that score best on one mouse score best on another?

Each results folder is a sweep over one dataset (:func:`mbutils.results.load_run`). Per metric,
a model's score is the mean over areas of its layer-max score (:func:`mbutils.results.model_summary`);
a model is one ``(model, train_type)`` pair. Two datasets are compared on the models scored on
both: the Spearman rank correlation of their scores, with a bootstrap confidence interval over
models (the models are resampled in pairs, the same models on both datasets), and the models
whose rank moves most.

Examples
--------
>>> from mbutils import compare
>>> runs = compare.load_runs(["results/mouse_a", "results/mouse_b"])      # doctest: +SKIP
>>> table = compare.scores_by_dataset(runs)                               # doctest: +SKIP
>>> compare.rank_correlations(table)                                      # doctest: +SKIP
"""
from __future__ import annotations

import html
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from .results import METRIC_LABELS, METRICS, Run, load_run, model_summary

__all__ = ["load_runs", "scores_by_dataset", "spearman_rows", "bootstrap_spearman", "rank_correlations",
           "rank_changes", "cross_dataset_banner", "cross_dataset_summary", "plot_rank_agreement"]

KEYS = ["model", "train_type"]
#: below this many models the summary calls the p-value and the interval rough
FEW_MODELS = 10


def _as_list(value):
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        return [value]
    return list(value)


def load_runs(results, datasets=None, labels=None) -> dict:
    """Load several results folders, one per dataset.

    Parameters
    ----------
    results : sequence of str or pathlib.Path, length k >= 2
        Results folders, each a sweep over one dataset.
    datasets : sequence of (str, pathlib.Path or None), length k, optional
        The dataset file each folder was scored on: only the model folders scored on that file
        are read (``load_run(..., dataset=)``); ``None`` (or no list) reads every model folder.
    labels : sequence of str, length k, optional
        Names of the datasets (default: the folders' names, made unique with their position).

    Returns
    -------
    dict
        ``{label: mbutils.results.Run}`` in the order given.

    Raises
    ------
    ValueError
        Fewer than two folders, lists of different lengths, or repeated labels.
    """
    results = _as_list(results)
    if results is None or len(results) < 2:
        raise ValueError(f"results={results!r}; give two or more results folders, one per dataset")
    datasets = _as_list(datasets) or [None] * len(results)
    if len(datasets) != len(results):
        raise ValueError(f"{len(datasets)} datasets for {len(results)} results folders; give one dataset file "
                         "(or None) per results folder")
    if labels is None:
        labels = [Path(r).name or str(r) for r in results]
        if len(set(labels)) < len(labels):
            labels = [f"{i + 1}:{name}" for i, name in enumerate(labels)]
    labels = [str(x) for x in labels]
    if len(labels) != len(results) or len(set(labels)) != len(labels):
        raise ValueError(f"labels={labels!r}; give one distinct label per results folder ({len(results)})")
    return {label: load_run(r, dataset=d) for label, r, d in zip(labels, results, datasets)}


def scores_by_dataset(runs: dict, metrics=METRICS) -> pd.DataFrame:
    """Each model's score per metric and dataset (mean over areas of the layer-max).

    Parameters
    ----------
    runs : dict of {str: mbutils.results.Run}
        As :func:`load_runs` returns.
    metrics : sequence of str
        Metrics to keep (default the paper's two).

    Returns
    -------
    pandas.DataFrame
        One row per ``(model, train_type, metric)`` scored on at least one dataset: columns
        ``model, train_type, metric``, one score column per dataset label (NaN where the model
        was not scored on that dataset), ``n_datasets`` (how many have a score) and
        ``display_name``, ``family`` (from the first run that knows the model).
    """
    if len(runs) < 2:
        raise ValueError(f"{len(runs)} run(s) given; compare two or more datasets")
    labels = list(runs)
    frames, meta = [], []
    for label, run in runs.items():
        if not isinstance(run, Run):
            raise TypeError(f"runs[{label!r}] is a {type(run).__name__}; expected mbutils.results.Run (load_runs)")
        s = model_summary(run)
        s = s[s["metric"].isin(list(metrics))]
        frames.append(s.set_index([*KEYS, "metric"])["score"].rename(label))
        meta.append(s[[*KEYS, "display_name", "family"]])
    table = pd.concat(frames, axis=1).reset_index() if frames else pd.DataFrame(columns=[*KEYS, "metric", *labels])
    for label in labels:
        if label not in table.columns:
            table[label] = np.nan
    table["n_datasets"] = table[labels].notna().sum(axis=1)
    info = pd.concat(meta, ignore_index=True).drop_duplicates(KEYS) if meta else pd.DataFrame(
        columns=[*KEYS, "display_name", "family"])
    table = table.merge(info, on=KEYS, how="left")
    return table.sort_values(["metric", *KEYS]).reset_index(drop=True)


def _rank_rows(x):
    """Average ranks along the last axis (ties share their mean rank), as float64."""
    return scipy.stats.rankdata(x, axis=-1).astype(np.float64)


def spearman_rows(x, y) -> np.ndarray:
    """Spearman's rank correlation of paired rows.

    Parameters
    ----------
    x, y : arrays of shape (..., n)
        Paired values; the correlation is taken along the last axis.

    Returns
    -------
    ndarray of shape (...)
        Pearson correlation of the average ranks (``scipy.stats.spearmanr``'s value); NaN
        where either row is constant.
    """
    rx, ry = _rank_rows(np.asarray(x, dtype=np.float64)), _rank_rows(np.asarray(y, dtype=np.float64))
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=-1) * (ry * ry).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (rx * ry).sum(axis=-1) / den
    return np.where(den > 0, r, np.nan)


def bootstrap_spearman(x, y, n_resamples=2000, confidence_level=0.95, seed=0) -> dict:
    """Spearman's rho of paired values with a percentile bootstrap interval over the pairs.

    Pairs (models) are drawn with replacement, ``n`` per resample. A resample in which either
    side is constant has no rank correlation; it is left out and counted (with few models it
    happens: all draws the same model).

    Parameters
    ----------
    x, y : arrays of shape (n,)
        Scores of the same ``n`` models on two datasets (finite).
    n_resamples : int
    confidence_level : float in (0, 1)
    seed : int

    Returns
    -------
    dict
        ``rho``, ``p_value`` (``scipy.stats.spearmanr``), ``ci_low``, ``ci_high``, ``n`` and
        ``n_degenerate`` (resamples left out). The interval is NaN with fewer than 3 pairs.
    """
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x has {x.size} values and y {y.size}; give the same models' scores on both datasets")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite; keep only the models scored on both datasets")
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level={confidence_level!r}; expected a number between 0 and 1")
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples={n_resamples!r}; expected a positive integer")
    n = x.size
    out = dict(rho=np.nan, p_value=np.nan, ci_low=np.nan, ci_high=np.nan, n=int(n), n_degenerate=0)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    res = scipy.stats.spearmanr(x, y)
    out["rho"], out["p_value"] = float(res.statistic), float(res.pvalue)
    rng = np.random.default_rng(seed)
    rhos = np.empty(int(n_resamples))
    chunk = max(1, 2_000_000 // n)
    for start in range(0, rhos.size, chunk):
        idx = rng.integers(0, n, size=(min(chunk, rhos.size - start), n))
        rhos[start:start + idx.shape[0]] = spearman_rows(x[idx], y[idx])
    ok = np.isfinite(rhos)
    out["n_degenerate"] = int((~ok).sum())
    if ok.sum() >= 2:
        tail = (1 - confidence_level) / 2 * 100
        out["ci_low"], out["ci_high"] = (float(v) for v in np.percentile(rhos[ok], [tail, 100 - tail]))
    return out


def _pairs(table):
    labels = [c for c in table.columns if c not in (*KEYS, "metric", "n_datasets", "display_name", "family")]
    return labels, list(itertools.combinations(labels, 2))


def rank_correlations(table: pd.DataFrame, n_resamples=2000, confidence_level=0.95, seed=0) -> pd.DataFrame:
    """Spearman rank correlation between every pair of datasets, per metric.

    Only the models scored on both datasets of a pair count.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`scores_by_dataset`'s table.
    n_resamples, confidence_level, seed
        Of the bootstrap (:func:`bootstrap_spearman`).

    Returns
    -------
    pandas.DataFrame
        One row per metric and pair: ``metric, dataset_a, dataset_b, n_models`` (scored on
        both), ``n_only_a, n_only_b`` (scored on one of the two), ``rho, p_value, ci_low,
        ci_high, n_degenerate``.
    """
    labels, pairs = _pairs(table)
    rows = []
    for metric, t in table.groupby("metric", sort=False):
        for a, b in pairs:
            both = t[a].notna() & t[b].notna()
            r = bootstrap_spearman(t.loc[both, a], t.loc[both, b], n_resamples=n_resamples,
                                   confidence_level=confidence_level, seed=seed)
            rows.append(dict(metric=metric, dataset_a=a, dataset_b=b, n_models=int(both.sum()),
                             n_only_a=int((t[a].notna() & ~both).sum()), n_only_b=int((t[b].notna() & ~both).sum()),
                             rho=r["rho"], p_value=r["p_value"], ci_low=r["ci_low"], ci_high=r["ci_high"],
                             n_degenerate=r["n_degenerate"]))
    cols = ["metric", "dataset_a", "dataset_b", "n_models", "n_only_a", "n_only_b", "rho", "p_value", "ci_low",
            "ci_high", "n_degenerate"]
    return pd.DataFrame(rows, columns=cols)


def rank_changes(table: pd.DataFrame, a=None, b=None, n=None) -> pd.DataFrame:
    """Each model's rank on two datasets and how far it moves, per metric.

    Ranks are 1 for the best score, among the models scored on both datasets (ties share their
    mean rank).

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`scores_by_dataset`'s table.
    a, b : str, optional
        Dataset labels (default the first two).
    n : int, optional
        Keep the ``n`` models that move most per metric (default all).

    Returns
    -------
    pandas.DataFrame
        ``metric, model, train_type, display_name, score_a, score_b, rank_a, rank_b, change``
        (``rank_b - rank_a``: positive when the model falls on ``b``) and ``abs_change``,
        sorted per metric by ``abs_change`` (largest first), then by ``rank_a``.
    """
    labels, _ = _pairs(table)
    a = labels[0] if a is None else a
    b = labels[1] if b is None else b
    for x in (a, b):
        if x not in labels:
            raise ValueError(f"dataset {x!r} is not in the table; choose among {labels}")
    out = []
    for metric, t in table.groupby("metric", sort=False):
        t = t[t[a].notna() & t[b].notna()]
        r = pd.DataFrame({"metric": metric, "model": t["model"], "train_type": t["train_type"],
                          "display_name": t["display_name"], "score_a": t[a], "score_b": t[b],
                          "rank_a": scipy.stats.rankdata(-t[a].to_numpy()) if len(t) else [],
                          "rank_b": scipy.stats.rankdata(-t[b].to_numpy()) if len(t) else []})
        r["change"] = r["rank_b"] - r["rank_a"]
        r["abs_change"] = r["change"].abs()
        r = r.sort_values(["abs_change", "rank_a"], ascending=[False, True])
        out.append(r.head(n) if n is not None else r)
    cols = ["metric", "model", "train_type", "display_name", "score_a", "score_b", "rank_a", "rank_b", "change",
            "abs_change"]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def cross_dataset_banner(runs: dict) -> str:
    """Markdown naming each dataset's results folder, dataset hash and number of scored models.

    Everything read from the folders reaches the page as escaped text.
    """
    lines = ["| dataset | results folder | dataset sha256 | models scored | left out |", "|---|---|---|---|---|"]
    synthetic = False
    for label, run in runs.items():
        m = run.models
        shas = set()
        for f in sorted((Path(run.results_dir) / "models").glob("*/provenance.json")) if run.results_dir else []:
            try:
                rec = json.loads(f.read_text())
                shas.add(((rec.get("dataset") or {}).get("sha256") or "")[:12])
                synthetic |= (rec.get("dataset") or {}).get("source") == "synthetic"
            except (OSError, ValueError, AttributeError):
                continue
        sha = run.dataset_sha256[:12] if run.dataset_sha256 else ", ".join(sorted(s for s in shas if s)) or "unknown"
        lines.append(f"| {html.escape(label)} | <code>{html.escape(str(run.results_dir))}</code> | {html.escape(sha)} "
                     f"| {len(m)} | {len(run.left_out)} |")
    note = ("\n\n**Some of these results come from synthetic datasets (simulated mice), not from recordings.**"
            if synthetic else "")
    return "\n".join(lines) + note


def _fmt(v, spec=".2f"):
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def cross_dataset_summary(table: pd.DataFrame, correlations: pd.DataFrame, changes: pd.DataFrame,
                          confidence_level=0.95) -> str:
    """The page's closing summary, computed from the tables of the run.

    Parameters
    ----------
    table : :func:`scores_by_dataset`'s table
    correlations : :func:`rank_correlations`'s table
    changes : :func:`rank_changes`'s table (of one pair of datasets)
    confidence_level : float
        The level of the intervals in ``correlations`` (for the text).

    Returns
    -------
    str  Markdown.
    """
    labels, _ = _pairs(table)
    n_all = int(table.loc[table["n_datasets"] == len(labels), KEYS].drop_duplicates().shape[0])
    n_any = int(table[KEYS].drop_duplicates().shape[0])
    lines = [f"- {n_all} of the {n_any} models (model and weights) were scored on all {len(labels)} datasets "
             f"({', '.join(html.escape(x) for x in labels)}); each correlation below uses the models scored on "
             "both of its datasets."]
    pct = f"{confidence_level:.0%}"
    for r in correlations.itertuples():
        name = METRIC_LABELS.get(r.metric, r.metric)
        if not np.isfinite(r.rho):
            lines.append(f"- {name}, {html.escape(r.dataset_a)} vs {html.escape(r.dataset_b)}: no rank correlation "
                         f"({r.n_models} models on both; at least 3 with distinct scores are needed).")
            continue
        agree = ("the rankings agree" if r.ci_low > 0 else
                 "the rankings are reversed" if r.ci_high < 0 else
                 "the interval includes 0: the data do not show that the rankings agree")
        few = (f" With {r.n_models} models the p-value (t approximation) and the interval are rough: "
               f"{r.n_degenerate} resamples drew a single model's score on a side and were left out."
               if r.n_models < FEW_MODELS else "")
        lines.append(f"- {name}, {html.escape(r.dataset_a)} vs {html.escape(r.dataset_b)}: Spearman rho "
                     f"{_fmt(r.rho)} over {r.n_models} models ({pct} bootstrap interval {_fmt(r.ci_low)} to "
                     f"{_fmt(r.ci_high)}, p = {_fmt(r.p_value, '.2g')}); {agree}.{few}")
    for metric, c in changes.groupby("metric", sort=False):
        if not len(c):
            continue
        top = c.iloc[0]
        name = METRIC_LABELS.get(metric, metric)
        if top["abs_change"] == 0:
            lines.append(f"- {name}: no model changes rank between the two datasets.")
        else:
            lines.append(f"- {name}: the largest move is {html.escape(str(top['display_name']))} "
                         f"({top['train_type']}), rank {_fmt(top['rank_a'], 'g')} to {_fmt(top['rank_b'], 'g')} of "
                         f"{len(c)}.")
    return "\n".join(lines)


def plot_rank_agreement(table: pd.DataFrame, a=None, b=None, metrics=METRICS):
    """Scores on dataset ``a`` against dataset ``b``, one panel per metric (models on both).

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`scores_by_dataset`'s table.
    a, b : str, optional
        Dataset labels (default the first two).
    metrics : sequence of str

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    labels, _ = _pairs(table)
    a = labels[0] if a is None else a
    b = labels[1] if b is None else b
    metrics = [m for m in metrics if m in set(table["metric"])]
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(4.5 * max(1, len(metrics)), 4.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        t = table[(table["metric"] == metric) & table[a].notna() & table[b].notna()]
        for tt, marker in (("trained", "o"), ("random", "x")):
            s = t[t["train_type"] == tt]
            if len(s):
                ax.scatter(s[a], s[b], marker=marker, label=tt)
        for name, x, y in zip(t["display_name"], t[a], t[b]):
            ax.annotate(str(name), (x, y), fontsize=7, alpha=0.7)
        if len(t):
            lo = float(np.nanmin(t[[a, b]].to_numpy()))
            hi = float(np.nanmax(t[[a, b]].to_numpy()))
            ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
        ax.set_xlabel(f"{METRIC_LABELS.get(metric, metric)} on {a}")
        ax.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} on {b}")
        ax.set_title(f"{METRIC_LABELS.get(metric, metric)} ({len(t)} models)")
        if len(t):
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
