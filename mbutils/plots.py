"""Figures of the results chapters: one function per figure, each returning its Figure.

Every function takes the tidy tables computed by :mod:`mbutils.stats` and draws one axis per
metric (SRP-Ridge Max, RSA Max) unless said otherwise. Missing groups or metrics leave an
axis with a "no data" note instead of failing.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .results import METRIC_LABELS, METRICS, ordered_areas

__all__ = [
    "plot_rankings", "plot_all_rankings", "ranking_sample", "plot_taskonomy_rankings", "plot_architecture_correlations",
    "plot_training_gain_by_class", "plot_baselines", "plot_score_ranges", "plot_depth_profiles",
    "plot_best_layer_depths", "plot_group_scores", "plot_metric_agreement",
    "plot_reliability_curves", "plot_ground_truth", "plot_layer_profile", "plot_reliability_distributions",
    "plot_selection_funnel", "plot_mapping_tradeoff",
]

TRAIN_COLORS = {"trained": "tab:red", "random": "tab:blue"}
CLUSTER_COLORS = {"2D": "tab:blue", "3D": "tab:orange", "Geometric": "tab:green",
                  "Semantic": "tab:red", "Random": "tab:gray"}

#: axis labels of per-layer scores
LAYER_METRIC_LABELS = {"srp_ridge": "SRP-Ridge (Pearson r; alpha = 1, the paper's)",
                       "srp_ridge_scaled": "SRP-Ridge scale-aware (Pearson r; alpha = mean Gram eigenvalue)",
                       "rsa": "RSA (Pearson r of RDMs)"}


def _no_data(ax, what="no data"):
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def _color_cycle(labels, fixed=None):
    fixed = dict(fixed or {})
    cmap = plt.get_cmap("tab10")
    extra = [lab for lab in labels if lab not in fixed]
    for i, lab in enumerate(extra):
        fixed[lab] = cmap((i + 5) % 10)
    return fixed


def _metric_axes(n_rows=1, height=4.0, width=5.5, sharey=False):
    fig, axes = plt.subplots(n_rows, len(METRICS), figsize=(width * len(METRICS), height * n_rows),
                             squeeze=False, sharey=sharey)
    return fig, axes


def _ranking_order(rankings: pd.DataFrame, order_by="trained") -> list:
    """Models best first by the paper's overall ranking (section 2.5): the mean over metrics of
    the ``order_by`` variant's score (every row's when that train type is absent); models without
    an ``order_by`` row follow in their order of appearance."""
    if not len(rankings):
        return []
    has_key = order_by is not None and (rankings["train_type"] == order_by).any()
    key = rankings[rankings["train_type"] == order_by] if has_key else rankings
    per_metric = key.groupby(["model", "metric"])["score"].max().unstack("metric")
    order = per_metric.mean(axis=1).sort_values(ascending=False, kind="mergesort").index.tolist()
    return order + [m for m in rankings["model"].unique() if m not in order]


def ranking_sample(rankings: pd.DataFrame, n_models: int, order_by="trained") -> list:
    """An evenly spaced sample of ``n_models`` models along the overall ranking (Figure 1's 40).

    The models are ranked by the mean over metrics of their ``order_by`` variant's score (the
    paper's overall ranking, section 2.5); the sample takes ranks ``floor(i (N - 1) / (n - 1) +
    1/2)`` for ``i = 0 .. n - 1`` (0-based), so the best and the worst model are always in it.

    Parameters
    ----------
    rankings : pandas.DataFrame
        :func:`mbutils.stats.model_rankings` output.
    n_models : int
        Sample size; all models when the run has no more.
    order_by : str or None

    Returns
    -------
    list of str  model names, best first.
    """
    if isinstance(n_models, bool) or not isinstance(n_models, (int, np.integer)) or n_models < 1:
        raise ValueError(f"n_models={n_models!r}; expected a positive integer")
    order = _ranking_order(rankings, order_by)
    if len(order) <= n_models:
        return order
    if n_models == 1:
        return order[:1]
    idx = np.floor(np.arange(n_models) * (len(order) - 1) / (n_models - 1) + 0.5).astype(int)
    return [order[i] for i in idx]


def plot_rankings(rankings: pd.DataFrame, hue="train_type", order_by="trained", palette=None, title=None,
                  max_models=None, sample="even"):
    """Model rankings with bootstrapped 95% CIs across areas (Figures 1, 2 and 8).

    Parameters
    ----------
    rankings : pandas.DataFrame
        :func:`mbutils.stats.model_rankings` output (model, display_name, train_type, metric,
        score, ci_low, ci_high, and the ``hue`` column).
    hue : str
        Column that colours the points (``train_type``: trained red, random blue).
    order_by : str or None
        Sort models by the score of this train type (``None``: by each row's score).
    max_models : int, optional
        Show at most ``max_models`` models (the same ones on every axis).
    sample : {"even", "top"}
        Which models when there are more than ``max_models``: ``"even"`` an evenly spaced
        sample along the overall ranking (:func:`ranking_sample`; the paper's Figure 1 shows 40
        of its 92 architectures, sampled to show their variety), ``"top"`` the best ones.

    Returns
    -------
    matplotlib.figure.Figure  one axis per metric; on each, the models sorted by that metric.
    """
    if sample not in ("even", "top"):
        raise ValueError(f"sample={sample!r}; expected 'even' or 'top'")
    shown = None
    if max_models and len(rankings):
        shown = (ranking_sample(rankings, int(max_models), order_by) if sample == "even"
                 else _ranking_order(rankings, order_by)[:int(max_models)])
    n = rankings["model"].nunique() if len(rankings) else 1
    n_show = len(shown) if shown is not None else n
    fig, axes = _metric_axes(height=max(3.0, 0.22 * n_show + 1.2))
    palette = _color_cycle(sorted(rankings[hue].dropna().astype(str).unique()) if len(rankings) else [],
                           palette or (TRAIN_COLORS if hue == "train_type" else CLUSTER_COLORS))
    for ax, metric in zip(axes[0], METRICS):
        r = rankings[rankings["metric"] == metric] if len(rankings) else rankings
        if shown is not None and len(r):
            r = r[r["model"].isin(shown)]
        if not len(r):
            _no_data(ax)
            ax.set_title(METRIC_LABELS[metric])
            continue
        key = r[r["train_type"] == order_by] if order_by is not None and (r["train_type"] == order_by).any() else r
        order = key.groupby("model")["score"].max().sort_values(ascending=False).index.tolist()
        order += [m for m in r["model"].unique() if m not in order]
        ypos = {m: i for i, m in enumerate(order)}
        labels = r.drop_duplicates("model").set_index("model")["display_name"].reindex(order).fillna(pd.Series(order, index=order))
        for lab, g in r.groupby(hue):
            y = g["model"].map(ypos).to_numpy()
            err = np.vstack([g["score"] - g["ci_low"], g["ci_high"] - g["score"]]).clip(min=0)
            err = np.nan_to_num(err)
            ax.errorbar(g["score"], y, xerr=err, fmt="o", ms=4, color=palette.get(str(lab), "k"),
                        label=str(lab), alpha=0.8, capsize=2)
        ax.set_yticks(range(len(order)))
        ax.set_yticklabels(labels.tolist(), fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("score (mean over areas, 95% bootstrap CI)")
        ax.set_title(METRIC_LABELS[metric])
        ax.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_all_rankings(rankings: pd.DataFrame, hue="train_type", order_by="trained", palette=None, title=None):
    """Every model's ranking (the appendix's full set behind Figure 1's sample).

    :func:`plot_rankings` without a sample: one row per model on each metric's axis, sorted
    by that metric, trained red and random blue. The title says how many models it shows.

    Parameters
    ----------
    rankings : pandas.DataFrame
        :func:`mbutils.stats.model_rankings` output.
    hue, order_by, palette : see :func:`plot_rankings`
    title : str, optional
        Prefix of the title (followed by "all N models").

    Returns
    -------
    matplotlib.figure.Figure  one axis per metric with ``N`` tick labels each.
    """
    n = rankings["model"].nunique() if len(rankings) else 0
    head = f"{title}: all {n} models" if title else f"All {n} models"
    return plot_rankings(rankings, hue=hue, order_by=order_by, palette=palette, title=head, max_models=None)


def plot_taskonomy_rankings(rankings: pd.DataFrame, title="Taskonomy encoders"):
    """Taskonomy encoder rankings coloured by task cluster (Figure 2).

    Random variants are coloured as cluster ``"Random"``.
    """
    r = rankings.copy()
    if len(r):
        r["cluster"] = np.where(r["train_type"] == "random", "Random", r["task_cluster"].astype(object))
        r["model"] = r["model"] + np.where(r["train_type"] == "random", " (random)", "")
        r["display_name"] = r["display_name"].astype(str) + np.where(r["train_type"] == "random", " (random)", "")
    else:
        r["cluster"] = []
    return plot_rankings(r, hue="cluster", order_by=None, palette=CLUSTER_COLORS, title=title)


def plot_architecture_correlations(model_scores: pd.DataFrame, depth: pd.Series):
    """Score vs model depth, parameter count and ImageNet top-1 (section 3.3): 2 x 3 scatter grid.

    Parameters
    ----------
    model_scores : pandas.DataFrame  :func:`mbutils.results.model_summary` output (trained models)
    depth : pandas.Series  number of layers per model
    """
    preds = [("n_layers", "number of layers"), ("n_parameters", "parameters"), ("imagenet_top1", "ImageNet top-1 (%)")]
    fig, axes = plt.subplots(len(METRICS), len(preds), figsize=(13, 7), squeeze=False)
    ms = model_scores.copy()
    ms["n_layers"] = ms["model"].map(depth) if len(ms) else []
    for i, metric in enumerate(METRICS):
        m = ms[ms["metric"] == metric] if len(ms) else ms
        for j, (col, label) in enumerate(preds):
            ax = axes[i, j]
            x = pd.to_numeric(m[col], errors="coerce") if len(m) else pd.Series(dtype=float)
            ok = x.notna()
            if ok.sum() == 0:
                _no_data(ax, f"no {label}")
            else:
                classes = m.loc[ok, "model_class"].fillna("unknown").astype(str)
                pal = _color_cycle(sorted(classes.unique()))
                for c in sorted(classes.unique()):
                    sel = ok & (m["model_class"].fillna("unknown").astype(str) == c)
                    ax.scatter(x[sel], m.loc[sel, "score"], s=18, color=pal[c], label=c)
                if col == "n_parameters":
                    ax.set_xscale("log")
                ax.legend(fontsize=6)
            ax.set_xlabel(label)
            ax.set_ylabel(METRIC_LABELS[metric])
    fig.tight_layout()
    return fig


def plot_training_gain_by_class(differences: pd.DataFrame):
    """Trained-minus-random score differences by architecture class (section 3.3)."""
    fig, axes = _metric_axes()
    for ax, metric in zip(axes[0], METRICS):
        d = differences[differences["metric"] == metric] if len(differences) else differences
        if not len(d):
            _no_data(ax)
        else:
            classes = sorted(d["model_class"].fillna("unknown").astype(str).unique())
            data = [d.loc[d["model_class"].fillna("unknown").astype(str) == c, "difference"].to_numpy() for c in classes]
            ax.boxplot(data, showfliers=False)
            ax.set_xticks(range(1, len(classes) + 1))
            ax.set_xticklabels(classes)
            for k, v in enumerate(data, start=1):
                ax.scatter(np.full(len(v), k) + np.linspace(-0.1, 0.1, len(v)), v, s=12, alpha=0.7)
            ax.axhline(0, color="gray", lw=0.8, ls="--")
            ax.set_ylabel("trained - random")
        ax.set_title(METRIC_LABELS[metric])
    fig.tight_layout()
    return fig


def plot_baselines(model_scores: pd.DataFrame):
    """Non-neural baselines beside the models' score distribution (section 3.5).

    Parameters
    ----------
    model_scores : pandas.DataFrame  :func:`mbutils.results.model_summary` output (all families)
    """
    fig, axes = _metric_axes()
    for ax, metric in zip(axes[0], METRICS):
        m = model_scores[model_scores["metric"] == metric] if len(model_scores) else model_scores
        if not len(m):
            _no_data(ax)
            ax.set_title(METRIC_LABELS[metric])
            continue
        groups = []
        for fam in ("imagenet", "taskonomy"):
            for tt in ("trained", "random"):
                v = m.loc[(m["family"] == fam) & (m["train_type"] == tt), "score"].to_numpy()
                if len(v):
                    groups.append((f"{fam}\n{tt}", v))
        for k, (lab, v) in enumerate(groups):
            ax.scatter(np.full(len(v), k) + np.linspace(-0.15, 0.15, len(v)), v, s=12, alpha=0.6, color="tab:gray")
        b = m[m["family"] == "baseline"]
        for k, (_, row) in enumerate(b.iterrows(), start=len(groups)):
            ax.bar(k, row["score"], color="tab:purple", alpha=0.8)
        ax.set_xticks(range(len(groups) + len(b)))
        ax.set_xticklabels([g[0] for g in groups] + b["display_name"].astype(str).tolist(), fontsize=7)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_ylabel("score")
        ax.set_title(METRIC_LABELS[metric])
    fig.tight_layout()
    return fig


def plot_score_ranges(ranges: pd.DataFrame):
    """Best-to-worst score ranges across architectures and across tasks (section 3.6).

    Parameters
    ----------
    ranges : pandas.DataFrame
        :func:`mbutils.stats.score_ranges` (``family, metric, best, worst, range`` and, where
        present, ``subset``: rows other than ``"all"`` are labelled with their subset).
    """
    fig, ax = plt.subplots(figsize=(7 if "subset" not in ranges or len(ranges) <= 4 else 9, 3.5))
    if not len(ranges):
        _no_data(ax)
        return fig
    subsets = ranges["subset"] if "subset" in ranges else pd.Series("all", index=ranges.index)
    labels = [f"{r.family}\n{METRIC_LABELS.get(r.metric, r.metric)}" + ("" if sub == "all" else f"\n({sub})")
              for r, sub in zip(ranges.itertuples(), subsets)]
    for k, r in enumerate(ranges.itertuples()):
        ax.plot([k, k], [r.worst, r.best], color="k", lw=2)
        ax.scatter([k, k], [r.worst, r.best], color=["tab:blue", "tab:red"], zorder=3)
        ax.text(k + 0.08, (r.best + r.worst) / 2, f"{r.range:.3f}", fontsize=8)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("score (best red, worst blue)")
    fig.tight_layout()
    return fig


def plot_depth_profiles(profiles: pd.DataFrame, title=None):
    """Scores vs relative depth: binned means (jagged) and lowess curves (smooth) per group (Figure 4)."""
    fig, axes = _metric_axes()
    groups = sorted(profiles["group"].dropna().astype(str).unique()) if len(profiles) else []
    pal = _color_cycle(groups, CLUSTER_COLORS)
    for ax, metric in zip(axes[0], METRICS):
        p = profiles[profiles["metric"] == metric] if len(profiles) else profiles
        if not len(p):
            _no_data(ax)
        for g, d in p.groupby("group"):
            d = d.sort_values("depth_bin")
            ax.plot(d["depth_bin"], d["mean_score"], color=pal[str(g)], alpha=0.3, lw=0.8)
            ax.plot(d["depth_bin"], d["smooth"], color=pal[str(g)], lw=2.2, label=str(g))
        ax.set_xlim(0, 1)
        ax.set_xlabel("relative layer depth")
        ax.set_ylabel("score")
        ax.set_title(METRIC_LABELS[metric])
        if len(p):
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_best_layer_depths(depths: pd.DataFrame, area_order=None):
    """Mean relative depth of the best layer per cortical area (Figures 3 and 9, left)."""
    fig, axes = _metric_axes(sharey=True)
    for ax, metric in zip(axes[0], METRICS):
        d = depths[depths["metric"] == metric] if len(depths) else depths
        if not len(d):
            _no_data(ax)
        else:
            order = [a for a in (area_order or []) if a in set(d["area"])] or d.sort_values("mean_depth")["area"].tolist()
            d = d.set_index("area").loc[order]
            err = np.nan_to_num(np.vstack([d["mean_depth"] - d["ci_low"], d["ci_high"] - d["mean_depth"]]).clip(min=0))
            ax.bar(range(len(d)), d["mean_depth"], yerr=err, color="tab:purple", alpha=0.75, capsize=3)
            ax.set_xticks(range(len(d)))
            ax.set_xticklabels(order, fontsize=8)
            ax.set_ylim(0, 1)
        ax.set_ylabel("relative depth of best layer")
        ax.set_title(METRIC_LABELS[metric])
    fig.tight_layout()
    return fig


def plot_group_scores(group_scores: pd.DataFrame, group_label="area"):
    """Layer-max scores per neuron group coloured by label, e.g. Taskonomy cluster per area
    (Figures 3 and 9, right) or per Cre line (Figure 10). Groups are ordered by mean score."""
    fig, axes = _metric_axes(width=6.5)
    labels = sorted(group_scores["label"].dropna().astype(str).unique()) if len(group_scores) else []
    pal = _color_cycle(labels, CLUSTER_COLORS)
    width = 0.8 / max(1, len(labels))
    for ax, metric in zip(axes[0], METRICS):
        g = group_scores[group_scores["metric"] == metric] if len(group_scores) else group_scores
        if not len(g):
            _no_data(ax)
            ax.set_title(METRIC_LABELS[metric])
            continue
        order = g.groupby("group")["score"].mean().sort_values(ascending=False).index.tolist()
        for k, lab in enumerate(labels):
            s = g[g["label"].astype(str) == lab].groupby("group")["score"].agg(["mean", "sem"]).reindex(order)
            x = np.arange(len(order)) + (k - (len(labels) - 1) / 2) * width
            ax.bar(x, s["mean"], width=width, yerr=s["sem"].fillna(0), color=pal[lab], label=lab, capsize=2)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels([str(o) for o in order], fontsize=7, rotation=30)
        ax.set_xlabel(group_label)
        ax.set_ylabel("score (mean over models, SEM)")
        ax.set_title(METRIC_LABELS[metric])
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_metric_agreement(model_scores: pd.DataFrame, per_pair: pd.DataFrame):
    """SRP-Ridge Max vs RSA Max per model (left) and layer-wise Spearman between the metrics
    per (model, area) (right) (section 3.9)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    if len(model_scores):
        wide = model_scores.pivot_table(index=["model", "train_type"], columns="metric", values="score").reset_index()
    else:
        wide = pd.DataFrame()
    if not len(wide) or not set(METRICS) <= set(wide.columns):
        _no_data(ax)
    else:
        for tt, g in wide.groupby("train_type"):
            ax.scatter(g["srp_ridge"], g["rsa"], s=18, color=TRAIN_COLORS.get(tt, "k"), label=tt)
        ax.set_xlabel(METRIC_LABELS["srp_ridge"])
        ax.set_ylabel(METRIC_LABELS["rsa"])
        ax.legend(fontsize=7)
    ax = axes[1]
    if not len(per_pair) or per_pair["rho"].notna().sum() == 0:
        _no_data(ax)
    else:
        for tt, g in per_pair.groupby("train_type"):
            ax.hist(g["rho"].dropna(), bins=np.linspace(-1, 1, 21), alpha=0.5, color=TRAIN_COLORS.get(tt, "k"), label=tt)
        ax.set_xlabel("layer-wise Spearman (SRP-Ridge vs RSA)")
        ax.set_ylabel("(model, area) pairs")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_reliability_curves(curves: pd.DataFrame, smooth: pd.DataFrame | None = None, threshold=0.8):
    """Max scores vs split-half reliability cutoff (paper appendix A.6, Figure 6).

    One panel per metric (RSA Max left, SRP-Ridge Max right, as the paper): one thin line per
    model, the across-model mean (points) with its bootstrapped CI (vertical bars), the lowess
    smoother across all models (thick line) and the main analysis' threshold (dotted).

    Parameters
    ----------
    curves : pandas.DataFrame
        :func:`mbutils.stats.scores_by_reliability` (``model, train_type, threshold, score``;
        ``metric``, SRP-Ridge when absent).
    smooth : pandas.DataFrame, optional
        :func:`mbutils.stats.reliability_smooth` (``threshold, mean, ci_low, ci_high, smooth``;
        ``metric``).
    threshold : float, default 0.8
        The selection threshold, marked dotted.
    """
    if len(curves) and "metric" not in curves.columns:
        curves = curves.assign(metric="srp_ridge")
    if smooth is not None and len(smooth) and "metric" not in smooth.columns:
        smooth = smooth.assign(metric="srp_ridge")
    present = list(curves["metric"].unique()) if len(curves) else []
    order = [m for m in ("rsa", "srp_ridge") if m in present] + sorted(m for m in present if m not in METRICS)
    fig, axes = plt.subplots(1, max(1, len(order)), figsize=(5.5 * max(1, len(order)), 4), squeeze=False)
    axes = axes[0]
    if not order:
        _no_data(axes[0])
        return fig
    for ax, metric in zip(axes, order):
        cm = curves[curves["metric"] == metric]
        for _, g in cm.groupby(["model", "train_type"]):
            g = g.sort_values("threshold")
            ax.plot(g["threshold"], g["score"], color="gray", alpha=0.3, lw=0.8)
        sm = smooth[smooth["metric"] == metric].sort_values("threshold") if smooth is not None and len(smooth) \
            else None
        if sm is not None and len(sm):
            ax.vlines(sm["threshold"], sm["ci_low"], sm["ci_high"], color="tab:red", lw=1.5,
                      label="95% CI across models")
            ax.scatter(sm["threshold"], sm["mean"], color="tab:red", s=18, zorder=3, label="mean across models")
            ax.plot(sm["threshold"], sm["smooth"], color="tab:red", lw=2.2, label="lowess (all models)")
            ax.legend(fontsize=7)
        ax.axvline(threshold, color="k", ls=":", lw=1)
        ax.set_xlabel("split-half reliability cutoff")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_title(METRIC_LABELS.get(metric, metric))
    fig.tight_layout()
    return fig


def plot_ground_truth(table: pd.DataFrame):
    """Planted vs recovered best-layer depth per area on the synthetic mouse (one axis).

    Parameters
    ----------
    table : pandas.DataFrame  columns ``area, planted_depth, metric, recovered_depth``
    """
    fig, ax = plt.subplots(figsize=(5, 5))
    if not len(table):
        _no_data(ax)
        return fig
    markers = {"srp_ridge": "o", "rsa": "s"}
    for metric, g in table.groupby("metric"):
        ax.scatter(g["planted_depth"], g["recovered_depth"], marker=markers.get(metric, "^"), s=40,
                   label=METRIC_LABELS.get(metric, metric), alpha=0.8)
        for r in g.itertuples():
            ax.annotate(r.area, (r.planted_depth, r.recovered_depth), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("planted depth (generator layer)")
    ax.set_ylabel("recovered depth (best layer)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_layer_profile(scores: pd.DataFrame, title=None, value="score"):
    """Layer-by-layer score profile of one model, per area, one panel per metric.

    Penalty-dominated layers (``penalty_dominated``, see :func:`mbutils.scoring.score_features`)
    are drawn as grey crosses off the lines, and the panel's title counts them: their scores
    measure the penalty, not the layer.

    Parameters
    ----------
    scores : pandas.DataFrame
        ``scores.parquet`` rows (columns ``metric``, ``area``, ``layer_depth``, ``score``; and
        ``penalty_dominated`` when present).
    title : str, optional
    value : str
        Column to plot (``score`` or ``score_normalized``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if value not in scores.columns:
        raise ValueError(f"value={value!r} is not a column of scores; expected one of "
                         f"{[c for c in ('score', 'score_normalized', 'score_odd', 'score_even') if c in scores]}")
    metrics = [m for m in LAYER_METRIC_LABELS if m in set(scores["metric"])] or sorted(set(scores["metric"]))
    if not metrics:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        _no_data(ax, "no scores")
        return fig
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    areas = ordered_areas(scores["area"])
    colors = dict(zip(areas, plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(areas), 1)))))
    for ax, metric in zip(axes[0], metrics):
        sub = scores[scores["metric"] == metric]
        flagged = sub["penalty_dominated"].to_numpy(dtype=bool) if "penalty_dominated" in sub.columns \
            else np.zeros(len(sub), dtype=bool)
        for area in areas:
            rows = sub[(sub["area"] == area).to_numpy() & ~flagged].sort_values("layer_depth")
            ax.plot(rows["layer_depth"], rows[value], marker="o", ms=3, lw=1.2, label=area, color=colors[area])
        panel = LAYER_METRIC_LABELS.get(metric, metric).split(" (")[0]
        if flagged.any():
            bad = sub[flagged]
            ax.scatter(bad["layer_depth"], bad[value], marker="x", s=14, color="0.55", lw=0.8,
                       label="penalty-dominated")
            panel += f"\n{bad['layer'].nunique()} penalty-dominated layers (x), left out of the maximum"
        ax.set(xlabel="relative layer depth", ylabel=LAYER_METRIC_LABELS.get(metric, metric).split(";")[0] +
               (")" if ";" in LAYER_METRIC_LABELS.get(metric, "") else ""), xlim=(0, 1.02), title=panel)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(title="area", fontsize=8, frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_reliability_distributions(table: pd.DataFrame, threshold=0.8):
    """Split-half reliability distributions per area and per Cre line (box plots).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`mbutils.reliability.reliability_table`.
    threshold : float
        Drawn as a dashed line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1, 1.6]})
    for ax, by, order in ((axes[0], "area", ordered_areas(table["area"])),
                          (axes[1], "cre_line", sorted(table["cre_line"].unique()))):
        data = [table.loc[table[by] == g, "reliability"].dropna().to_numpy() for g in order]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(order) + 1), order, rotation=45, ha="right", fontsize=8)
        ax.axhline(threshold, ls="--", color="crimson", lw=1)
        ax.set(ylabel="split-half reliability", title=f"by {by.replace('_', ' ')}")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def plot_selection_funnel(steps: pd.DataFrame):
    """Neurons left after each selection step (``SelectionReport.steps``), a horizontal bar chart.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(steps) + 1))
    y = np.arange(len(steps))[::-1]
    ax.barh(y, steps["n_neurons"], color="steelblue")
    ax.set_yticks(y, steps["description"])
    for yi, n in zip(y, steps["n_neurons"]):
        ax.text(n, yi, f" {int(n):,}", va="center", fontsize=8)
    ax.set(xlabel="neurons")
    fig.tight_layout()
    return fig


def _mapping_panel(ax, rows, markers, colors, title):
    """One panel of :func:`plot_mapping_tradeoff`: points per (reduction, size, regression),
    dashed lines at the all-features reference of each regression."""
    keys = ["reduction", "n_components", "regression"]
    agg = rows.groupby(keys, as_index=False)[["score", "total_s"]].mean()
    points = agg[agg["reduction"] != "none"]
    for (red, reg), r in points.groupby(["reduction", "regression"]):
        size = 14 + 10 * np.log2(r["n_components"].clip(lower=1) / 256).clip(0)  # area grows with the size
        ax.scatter(r["total_s"], r["score"], marker=markers[red], color=colors[reg], s=size, label=f"{red} + {reg}",
                   alpha=0.8)
    for _, r in agg[agg["reduction"] == "none"].iterrows():
        ax.axhline(r["score"], color=colors[r["regression"]], ls="--", lw=0.8, alpha=0.7)
        ax.axvline(r["total_s"], color=colors[r["regression"]], ls="--", lw=0.8, alpha=0.7)
    if len(agg):
        ax.set_xscale("log")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)


def plot_mapping_tradeoff(comparison: pd.DataFrame):
    """Score against compute time for each mapping (paper Figure 5): over layers and per layer.

    The first panel shows the means over layers (the model), then one panel per layer. Each
    point is a reduction at one size (marker: reduction; area grows with the size) followed by
    a regression (color). As in the paper's figure, dashed horizontal and vertical lines mark
    the reference of each regression on all of a layer's features (rows of the reduction
    ``"none"``). Rows flagged ``penalty_dominated`` are left out.

    Parameters
    ----------
    comparison : pandas.DataFrame
        From :func:`mbutils.scoring.compare_mappings` (``reduction``, ``n_components``,
        ``regression``, ``score``, ``total_s``; ``layer`` for the per-layer panels).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if "penalty_dominated" in comparison:
        comparison = comparison[~comparison["penalty_dominated"].astype(bool)]
    comparison = comparison.copy()
    comparison.loc[comparison["reduction"] == "none", "n_components"] = 0
    layers = list(dict.fromkeys(comparison["layer"])) if "layer" in comparison else []
    n_panels = 1 + (len(layers) if len(layers) > 1 else 0)
    ncols = min(n_panels, 2)
    nrows = int(np.ceil(n_panels / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols + 2.2, 3.8 * nrows), squeeze=False)
    axes = axes.ravel()
    markers = dict(zip(sorted(comparison["reduction"].unique()), "osD^v"))
    colors = dict(zip(sorted(comparison["regression"].unique()), plt.get_cmap("tab10").colors))
    title = f"mean over {len(layers)} layers" if len(layers) > 1 else (layers[0] if layers else "all rows")
    _mapping_panel(axes[0], comparison, markers, colors, title)
    for ax, name in zip(axes[1:n_panels], layers if len(layers) > 1 else []):
        _mapping_panel(ax, comparison[comparison["layer"] == name], markers, colors, f"layer {name}")
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    for ax in axes[:n_panels]:
        ax.set_xlabel("compute time per layer (s, log scale)", fontsize=8)
        ax.set_ylabel("mean Pearson r over neurons", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    if (comparison["reduction"] == "none").any():
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="gray", ls="--", lw=0.8))
        labels.append("all features (per regression color)")
    fig.legend(handles, labels, fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(0.99, 0.97))
    fig.suptitle("Speed and accuracy of neural regression mappings (paper Figure 5)", fontsize=10)
    fig.tight_layout()
    return fig
