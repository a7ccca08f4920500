"""Uncertainty of a run's scores: bootstrap intervals of each model and P(A beats B).

Each model folder holds a ``bootstrap`` table (:func:`mbutils.scoring.score_model`,
``n_boot`` draws): per metric, area and draw, the layer-max and unbiased scores of one resample
of the stimuli (and, for SRP-Ridge, of each area's neurons). Draw ``d`` is the same resample for
every model scored on the same neurons, so two models are compared draw by draw: the share of
draws in which A's score exceeds B's is the bootstrap probability that A beats B on a new sample
of stimuli and neurons like this one.

A model's score in a draw is the mean over areas of its per-area score in that draw, as the
point score is the mean over areas of the per-area maxima (:func:`mbutils.results.model_summary`).

Examples
--------
>>> from mbutils.results import load_run
>>> from mbutils import uncertainty
>>> run = load_run("results/default")                                         # doctest: +SKIP
>>> uncertainty.ranking_intervals(run, "srp_ridge")                            # doctest: +SKIP
>>> uncertainty.pairwise_probability(run, "srp_ridge")                         # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["model_draws", "ranking_intervals", "pairwise_probability", "neighbour_probabilities", "VALUES"]

#: scores with bootstrap draws: the layer maximum and the unbiased score (layer chosen on odd
#: trials, scored on even ones, and the reverse, averaged)
VALUES = ("max_score", "unbiased_score")


def _check(run, metric, value):
    if value not in VALUES:
        raise ValueError(f"value={value!r}; expected one of {list(VALUES)}")
    boot = getattr(run, "bootstrap", None)
    if boot is None or not len(boot):
        raise ValueError("this run has no bootstrap table (model folders scored without it, or with n_boot=0); "
                         "score the models again (mbutils sweep) to get one")
    metrics = sorted(boot["metric"].unique())
    if metric not in metrics:
        raise ValueError(f"metric={metric!r} has no bootstrap draws in this run; expected one of {metrics}")
    return boot[boot["metric"] == metric]


def _labels(run, pairs: pd.DataFrame) -> list:
    """``display name (train type)`` of each (model, train_type) row of ``pairs``."""
    names = {}
    if len(run.meta) and "display_name" in run.meta.columns:
        names = {m: str(v) for m, v in run.meta["display_name"].items() if isinstance(v, str) and v}
    return [f"{names.get(m, m)} ({t})" for m, t in zip(pairs["model"], pairs["train_type"])]


def model_draws(run, metric, value="max_score", train_type=None) -> pd.DataFrame:
    """Each model's score in each bootstrap draw: the mean over areas of its per-area score.

    Only the areas that every model has and the draws that every model has enter, so that all
    rows are means over the same areas and columns are the same resamples.

    Parameters
    ----------
    run : mbutils.results.Run
    metric : str
        ``"srp_ridge"`` or ``"rsa"``.
    value : {"max_score", "unbiased_score"}
    train_type : str, optional
        Only the models scored with these weights.

    Returns
    -------
    pandas.DataFrame (n_models, n_draws)
        Index: ``label`` (display name and train type); columns: the draw numbers. NaN in a
        draw where an area's score is NaN. The models are in ``attrs["models"]`` (a DataFrame
        ``label, model, train_type``) and the areas in ``attrs["areas"]``.
    """
    boot = _check(run, metric, value)
    if train_type is not None:
        boot = boot[boot["train_type"] == train_type]
        if not len(boot):
            raise ValueError(f"train_type={train_type!r} has no bootstrap draws for {metric}")
    keys = ["model", "train_type"]
    areas = set.intersection(*[set(g["area"]) for _, g in boot.groupby(keys)])
    draws = set.intersection(*[set(g["draw"]) for _, g in boot.groupby(keys)])
    boot = boot[boot["area"].isin(areas) & boot["draw"].isin(draws)]
    g = boot.assign(ok=np.isfinite(boot[value].to_numpy(dtype=np.float64))).groupby(keys + ["draw"])
    wide = g[value].mean().unstack("draw")  # the (model, train_type) pairs of the table only
    wide = wide.where(g["ok"].sum().unstack("draw") == len(areas))  # a draw with a NaN area: NaN
    pairs = wide.index.to_frame(index=False)
    pairs.insert(0, "label", _labels(run, pairs))
    wide.index = pd.Index(pairs["label"], name="label")
    wide.columns = wide.columns.astype(np.int64)
    wide.attrs["models"] = pairs
    wide.attrs["areas"] = sorted(areas)
    return wide


def ranking_intervals(run, metric, value="max_score", level=0.95, train_type=None) -> pd.DataFrame:
    """Models ranked by their score (mean over areas), with percentile bootstrap intervals.

    Parameters
    ----------
    run : mbutils.results.Run
    metric : str
    value : {"max_score", "unbiased_score"}
    level : float
        Coverage of the intervals, in (0, 1).
    train_type : str, optional

    Returns
    -------
    pandas.DataFrame
        One row per model, best first: ``rank, label, model, train_type, score`` (the mean over
        the areas of ``value`` in the summary), ``ci_low, ci_high`` (the ``(1 - level) / 2``
        and ``(1 + level) / 2`` quantiles of the draws), ``draw_mean``, ``n_draws``.
    """
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level={level!r}; expected a coverage in (0, 1) such as 0.95")
    wide = model_draws(run, metric, value, train_type)
    pairs = wide.attrs["models"]
    s = run.summary
    s = s[(s["metric"] == metric) & s["area"].isin(wide.attrs["areas"])]
    point = s.groupby(["model", "train_type"])[value].mean()
    values = wide.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        lo = np.nanquantile(values, (1.0 - level) / 2.0, axis=1) if values.size else np.zeros(0)
        hi = np.nanquantile(values, (1.0 + level) / 2.0, axis=1) if values.size else np.zeros(0)
    out = pairs.copy()
    out["score"] = [float(point.get((m, t), np.nan)) for m, t in zip(pairs["model"], pairs["train_type"])]
    out["ci_low"], out["ci_high"] = lo, hi
    out["draw_mean"] = np.nanmean(values, axis=1) if values.size else np.zeros(0)
    out["n_draws"] = np.isfinite(values).sum(1)
    out = out.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def pairwise_probability(run, metric, value="max_score", train_type=None) -> pd.DataFrame:
    """P(A beats B): the share of bootstrap draws in which model A's score exceeds model B's.

    Draws are paired (the same resample of stimuli and neurons for both models); ties count one
    half; draws where either score is NaN are left out.

    Parameters
    ----------
    run : mbutils.results.Run
    metric : str
    value : {"max_score", "unbiased_score"}
    train_type : str, optional

    Returns
    -------
    pandas.DataFrame (n_models, n_models)
        Entry ``(A, B)``: P(A > B), so that ``P(A, B) + P(B, A) = 1`` off the diagonal (NaN on
        it, and where no draw has both). Rows and columns labelled as :func:`model_draws`.
    """
    wide = model_draws(run, metric, value, train_type)
    X = wide.to_numpy(dtype=np.float64)  # (n_models, n_draws)
    ok = np.isfinite(X).astype(np.float64)
    Xz = np.where(np.isfinite(X), X, 0.0)
    # per pair (a, b): draws with both finite, wins of a and ties
    both = ok @ ok.T
    wins = np.zeros_like(both)
    for a in range(X.shape[0]):
        both_ab = ok[a][None, :] * ok
        wins[a] = ((Xz[a][None, :] > Xz) * both_ab).sum(1) + 0.5 * ((Xz[a][None, :] == Xz) * both_ab).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(both > 0, wins / np.maximum(both, 1.0), np.nan)
    np.fill_diagonal(p, np.nan)
    out = pd.DataFrame(p, index=wide.index.copy(), columns=pd.Index(wide.index, name="beats"))
    out.attrs["n_draws"] = int(X.shape[1])
    return out


def neighbour_probabilities(run, metric, value="max_score", train_type=None) -> pd.DataFrame:
    """P(A > B) for each model A and the model B ranked just below it.

    Returns
    -------
    pandas.DataFrame
        One row per neighbouring pair in the order of :func:`ranking_intervals`: ``rank,
        model_a, model_b`` (labels), ``score_a, score_b``, ``difference`` (a - b) and
        ``p_a_beats_b``.
    """
    ranking = ranking_intervals(run, metric, value, train_type=train_type)
    p = pairwise_probability(run, metric, value, train_type)
    rows = []
    for k in range(len(ranking) - 1):
        a, b = ranking.iloc[k], ranking.iloc[k + 1]
        rows.append(dict(rank=int(a["rank"]), model_a=a["label"], model_b=b["label"], score_a=float(a["score"]),
                         score_b=float(b["score"]), difference=float(a["score"] - b["score"]),
                         p_a_beats_b=float(p.loc[a["label"], b["label"]])))
    return pd.DataFrame(rows, columns=["rank", "model_a", "model_b", "score_a", "score_b", "difference",
                                       "p_a_beats_b"])
