"""Figures of the scores' uncertainty (bootstrap intervals; :mod:`mbutils.uncertainty`)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .results import METRIC_LABELS

__all__ = ["plot_ranking_intervals"]

TRAIN_COLORS = {"trained": "tab:red", "random": "tab:blue"}


def plot_ranking_intervals(rankings: dict, max_models=40, value_label="score (mean over areas)"):
    """Models ranked by score with their bootstrap intervals, one panel per metric.

    Parameters
    ----------
    rankings : dict str -> pandas.DataFrame
        Per metric, a table of :func:`mbutils.uncertainty.ranking_intervals` (columns
        ``label, train_type, score, ci_low, ci_high``), best first.
    max_models : int
        At most this many models per panel (the best ones); the title says how many are left
        out.
    value_label : str
        Label of the score axis.

    Returns
    -------
    matplotlib.figure.Figure
        Horizontal intervals (the percentile bootstrap interval) around each model's score
        (point), coloured by train type, the best model at the top.
    """
    metrics = [m for m, r in rankings.items() if r is not None]
    n_rows = max([min(len(rankings[m]), max_models) for m in metrics] + [1])
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(5.5 * max(1, len(metrics)), 1.2 + 0.28 * n_rows),
                             squeeze=False)
    for ax, metric in zip(axes[0], metrics or [None]):
        r = rankings.get(metric) if metric is not None else None
        title = METRIC_LABELS.get(metric, str(metric))
        if r is None or not len(r):
            ax.text(0.5, 0.5, "no bootstrap draws", ha="center", va="center", transform=ax.transAxes, color="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title)
            continue
        shown = r.head(max_models)
        y = np.arange(len(shown))[::-1]
        colors = [TRAIN_COLORS.get(str(t), "tab:gray") for t in shown["train_type"]]
        lo = (shown["score"] - shown["ci_low"]).clip(lower=0).to_numpy(dtype=float)
        hi = (shown["ci_high"] - shown["score"]).clip(lower=0).to_numpy(dtype=float)
        for yy, x, l, h, c in zip(y, shown["score"].to_numpy(dtype=float), lo, hi, colors):
            ax.errorbar(x, yy, xerr=[[l], [h]], fmt="o", color=c, ms=4, capsize=2, lw=1)
        ax.set_yticks(y)
        ax.set_yticklabels(shown["label"].astype(str).tolist(), fontsize=7)
        ax.set_xlabel(value_label)
        left = len(r) - len(shown)
        ax.set_title(title + (f" (best {len(shown)}; {left} more not shown)" if left else ""))
        ax.grid(axis="x", alpha=0.3)
        for tt in pd.unique(shown["train_type"]):
            ax.plot([], [], "o", color=TRAIN_COLORS.get(str(tt), "tab:gray"), label=str(tt))
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
