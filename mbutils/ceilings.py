"""The mouse-to-mouse ceiling: how well the other animals predict one animal's neurons.

Two ceilings stand beside every score of this package:

- **The split-half ceiling** (:mod:`mbutils.reliability`; the ``ceiling`` column of the score
  tables, paper section 2.1 and section 4): the correlation a perfect model of the stimulus-driven
  signal would reach with responses of the measured trial-to-trial reliability. SRP-Ridge: the
  mean over an area's neurons of ``sqrt(reliability)``; RSA: the square root of the area RDM's
  split-half reliability.
- **The mouse-to-mouse ceiling** (Nayebi et al. 2023, "Mouse visual cortex as a limited resource
  system"): each animal in turn is held out and the pooled neurons of the other animals serve
  as the model, mapped onto it exactly as a network layer is. SRP-Ridge: the other animals'
  trial-averaged responses to the scenes are the features (n_stimuli, n_other_neurons), ridge
  regression with the paper's ``alpha = 1`` and leave-one-out predictions over stimuli
  (:func:`mbutils.scoring._loo.leave_one_out_operator`, the models' operator), Pearson r per
  held-out neuron, the mean over the animal's neurons. RSA: Pearson r between the upper
  triangles of the held-out animal's RDM and the pooled others' RDM
  (:func:`mbutils.scoring.rdm`). The ceiling is the mean over held-out animals.

The split-half ceiling bounds what any prediction of the trial-averaged responses can reach.
The mouse-to-mouse ceiling is what another brain reaches: it is lower where animals differ (in
their neurons' tuning, their own signals) and where one animal's population is small (an RDM
of a few neurons is noisy). It is a reference, not a bound on models: a model may predict an
animal better than the other animals do, and a score normalized by it may exceed 1.

Neurons are selected as for scoring (:func:`mbutils.data.select_neurons`, scenes only) and the
animal of a neuron is the dataset's ``specimen_id`` coordinate.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .constants import ALPHA, RELIABILITY_THRESHOLD, order_areas

__all__ = ["mouse_to_mouse_scores", "mouse_to_mouse_ceiling", "normalize_by_ceiling", "best_normalized",
           "plot_ceilings", "ceiling_summary", "CEILING_METRICS", "SPECIMEN"]

#: metrics with a mouse-to-mouse ceiling
CEILING_METRICS = ("srp_ridge", "rsa")
#: the coordinate along ``neuron`` naming the animal
SPECIMEN = "specimen_id"

#: display names of the metrics
_LABELS = {"srp_ridge": "SRP-Ridge", "rsa": "RSA"}
_SCORE_COLUMNS = ["area", "metric", SPECIMEN, "score", "n_neurons", "n_other_neurons", "n_other_animals",
                  "penalty_dominated"]
_CEILING_COLUMNS = ["area", "metric", "ceiling", "n_animals", "n_neurons", "split_half_ceiling"]


def _check_metrics(metrics) -> tuple:
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    bad = [m for m in metrics if m not in CEILING_METRICS]
    if bad or not metrics:
        raise ValueError(f"metrics={list(metrics)!r}; expected a non-empty subset of {list(CEILING_METRICS)}")
    return metrics


def _selected_targets(dataset, threshold, progress, select_kwargs):
    """Targets of the selected neurons (as for scoring) and each target's animal.

    Returns
    -------
    targets : mbutils.scoring.Targets
    animals : numpy.ndarray of shape (n_neurons,), int64
        ``specimen_id`` of each column of ``targets.y``.
    """
    from .scoring.pipeline import _as_dataset, _select_targets

    data, path = _as_dataset(dataset)
    if SPECIMEN not in data.ds.coords:
        where = f"dataset {str(path)!r}" if path is not None else "the dataset"
        raise ValueError(
            f"{where} has no {SPECIMEN!r} coordinate (the animal of each neuron); the mouse-to-mouse ceiling "
            f"needs it: build the dataset with NeuralDataset.from_arrays(..., specimen_id=...), or use "
            f"the split-half ceiling alone (mbutils.reliability)")
    targets, selected, _, _, _ = _select_targets(data, threshold, progress, select_kwargs)
    ds = selected.ds
    animal_of = dict(zip(ds["cell_specimen_id"].values.tolist(), ds[SPECIMEN].values.tolist()))
    animals = np.array([animal_of[c] for c in targets.neurons["cell_specimen_id"].tolist()], dtype=np.int64)
    return targets, animals


def _srp_score(features, held, alpha) -> tuple[float, bool]:
    """Mean leave-one-out Pearson r of the columns of ``held`` predicted from ``features``.

    ``features``: (n_stimuli, n_features), ``held``: (n_stimuli, n_targets). The layer path of
    the models (centered Gram, its eigendecomposition, the leave-one-out operator for ``alpha``).
    Returns the mean over finite r (NaN if none) and whether the operator is penalty-dominated.
    """
    from .scoring._loo import LooPearson
    from .scoring.pipeline import _layer_operators

    P, _, dominated, _ = _layer_operators(features, False, float(alpha), False)
    if P is None:  # constant features
        return float("nan"), False
    r = LooPearson(held, precision="float64").scores([P])[0]
    return (float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")), bool(dominated)


def _rsa_score(others, held) -> float:
    """Pearson r between the upper triangles of the RDMs of ``held`` and ``others`` (n_stimuli, n_neurons)."""
    from .scoring import compare_rdms, rdm

    return compare_rdms(rdm(held), rdm(others))


def mouse_to_mouse_scores(dataset, threshold=RELIABILITY_THRESHOLD, metrics=CEILING_METRICS, alpha=ALPHA,
                          progress=False, **select_kwargs) -> pd.DataFrame:
    """Each animal's neurons predicted by the pooled neurons of the other animals, per area.

    Parameters
    ----------
    dataset : str, pathlib.Path or NeuralDataset
        A dataset with a ``specimen_id`` coordinate (the animal of each neuron).
    threshold : float, default 0.8
        Split-half reliability threshold of the neuron selection (as for scoring).
    metrics : sequence of {"srp_ridge", "rsa"}
    alpha : float, default 1.0
        Ridge penalty of SRP-Ridge (the paper's).
    progress : bool, default False
        Progress bar of the neuron selection.
    **select_kwargs
        More arguments for :func:`mbutils.data.select_neurons`.

    Returns
    -------
    pandas.DataFrame
        One row per area, metric and held-out animal: ``area, metric, specimen_id, score,
        n_neurons`` (the animal's selected neurons in the area), ``n_other_neurons``,
        ``n_other_animals``, ``penalty_dominated`` (SRP-Ridge: the leave-one-out operator is
        that of the mean, see :func:`mbutils.scoring._loo.penalty_dominated`). SRP-Ridge needs
        one neuron on each side, RSA two (an RDM of one neuron is undefined); animals short of
        that get no row. Areas in hierarchy order, animals by ``specimen_id``.

    Raises
    ------
    ValueError
        If the dataset has no ``specimen_id``, no neuron passes the selection, or ``metrics``
        names an unknown metric.
    """
    metrics = _check_metrics(metrics)
    _check_alpha(alpha)
    targets, animals = _selected_targets(dataset, threshold, progress, select_kwargs)
    return _animal_scores(targets, animals, metrics, alpha)


def _check_alpha(alpha) -> None:
    if not (isinstance(alpha, (int, float, np.floating, np.integer)) and np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha={alpha!r}; expected a positive number (the paper's is 1.0)")


def _animal_scores(targets, animals, metrics, alpha) -> pd.DataFrame:
    """:func:`mouse_to_mouse_scores` of selected targets and their animals."""
    y = targets.y  # (n_stimuli, n_neurons)
    areas = targets.neurons["area"].to_numpy()
    rows = []
    for area in order_areas(areas):
        in_area = areas == area
        for animal in np.unique(animals[in_area]):
            held = in_area & (animals == animal)
            others = in_area & (animals != animal)
            n_held, n_others = int(held.sum()), int(others.sum())
            base = {"area": area, SPECIMEN: int(animal), "n_neurons": n_held, "n_other_neurons": n_others,
                    "n_other_animals": int(np.unique(animals[others]).size)}
            for metric in metrics:
                if metric == "srp_ridge" and n_others >= 1:
                    score, dominated = _srp_score(y[:, others], y[:, held], alpha)
                    rows.append(dict(base, metric=metric, score=score, penalty_dominated=dominated))
                elif metric == "rsa" and n_held >= 2 and n_others >= 2:
                    rows.append(dict(base, metric=metric, score=_rsa_score(y[:, others], y[:, held]),
                                     penalty_dominated=False))
    table = pd.DataFrame(rows, columns=_SCORE_COLUMNS)
    table["penalty_dominated"] = table["penalty_dominated"].astype(bool)
    order = {m: i for i, m in enumerate(metrics)}
    area_order = {a: i for i, a in enumerate(order_areas(areas))}
    return (table.sort_values(["area", "metric", SPECIMEN], key=lambda s: s.map(area_order) if s.name == "area"
                              else s.map(order) if s.name == "metric" else s, kind="stable")
            .reset_index(drop=True))


def mouse_to_mouse_ceiling(dataset, threshold=RELIABILITY_THRESHOLD, metrics=CEILING_METRICS, alpha=ALPHA,
                           n_splits=10, seed=0, progress=False, **select_kwargs) -> pd.DataFrame:
    """The mouse-to-mouse ceiling per area and metric, beside the split-half ceiling.

    The mean over held-out animals of :func:`mouse_to_mouse_scores` (module docstring).

    Parameters
    ----------
    dataset : str, pathlib.Path or NeuralDataset
        A dataset with a ``specimen_id`` coordinate.
    threshold : float, default 0.8
        Split-half reliability threshold of the neuron selection (as for scoring).
    metrics : sequence of {"srp_ridge", "rsa"}
    alpha : float, default 1.0
        Ridge penalty of SRP-Ridge.
    n_splits, seed : int
        Trial splits of the RSA split-half ceiling (as for scoring).
    progress : bool, default False
    **select_kwargs
        More arguments for :func:`mbutils.data.select_neurons`.

    Returns
    -------
    pandas.DataFrame
        One row per area (hierarchy order) and metric: ``area, metric, ceiling`` (mean over
        animals of their scores; NaN with fewer than 2 animals), ``n_animals`` (animals whose
        score entered the mean), ``n_neurons`` (the area's selected neurons),
        ``split_half_ceiling`` (the ``ceiling`` column that :func:`mbutils.scoring.score_model`
        writes for these neurons).

    Examples
    --------
    >>> ceilings = mouse_to_mouse_ceiling("data/synthetic.nc")       # doctest: +SKIP
    >>> ceilings.pivot(index="area", columns="metric", values="ceiling")  # doctest: +SKIP
    """
    from .scoring.pipeline import _ceilings

    metrics = _check_metrics(metrics)
    _check_alpha(alpha)
    targets, animals = _selected_targets(dataset, threshold, progress, select_kwargs)
    per_animal = _animal_scores(targets, animals, metrics, alpha)
    split_half = _ceilings(targets, "area", n_splits=n_splits, seed=seed)
    counts = targets.neurons["area"].value_counts()
    rows = []
    for area in order_areas(targets.neurons["area"].to_numpy()):
        for metric in metrics:
            scores = per_animal.loc[(per_animal["area"] == area) & (per_animal["metric"] == metric), "score"]
            finite = scores[np.isfinite(scores.to_numpy(dtype=float))]
            rows.append({"area": area, "metric": metric,
                         "ceiling": float(finite.mean()) if len(finite) else float("nan"),
                         "n_animals": int(len(finite)), "n_neurons": int(counts[area]),
                         "split_half_ceiling": float(split_half[area][metric])})
    return pd.DataFrame(rows, columns=_CEILING_COLUMNS)


def normalize_by_ceiling(summary, ceilings, score="max_score") -> pd.DataFrame:
    """Scores divided by the mouse-to-mouse ceiling of their area and metric.

    Parameters
    ----------
    summary : pandas.DataFrame
        Scores with ``area``, ``metric`` and the ``score`` column: the ``summary`` table
        (:func:`mbutils.scoring.summarize_scores`, ``max_score``) or a ``scores`` table
        (``score="score"``).
    ceilings : pandas.DataFrame
        :func:`mouse_to_mouse_ceiling`'s table (``area, metric, ceiling``).
    score : str, default "max_score"
        The column to normalize.

    Returns
    -------
    pandas.DataFrame
        ``summary`` (same rows and order) with ``mouse_ceiling`` (the ceiling of the row's area
        and metric, NaN where there is none, e.g. ``srp_ridge_scaled``) and
        ``<score>_mouse_normalized`` (``score / mouse_ceiling``, NaN where the ceiling is NaN or
        not positive). Values above 1 mean the model predicts an animal better than the other
        animals do.

    Raises
    ------
    ValueError
        If a needed column is missing, or ``ceilings`` holds an (area, metric) twice.
    """
    for name, table, cols in (("summary", summary, ("area", "metric", score)),
                              ("ceilings", ceilings, ("area", "metric", "ceiling"))):
        missing = [c for c in cols if c not in table.columns]
        if missing:
            raise ValueError(f"{name} lacks the columns {missing} (has {list(table.columns)}); "
                             f"pass a score summary and mouse_to_mouse_ceiling's table")
    dup = ceilings.duplicated(["area", "metric"])
    if dup.any():
        example = tuple(ceilings.loc[dup, ["area", "metric"]].iloc[0])
        raise ValueError(f"ceilings holds {int(dup.sum())} repeated (area, metric) rows, e.g. {example}; "
                         "pass one ceiling per area and metric")
    lookup = ceilings.set_index(["area", "metric"])["ceiling"].astype(float)
    keys = pd.MultiIndex.from_arrays([summary["area"].astype(str), summary["metric"].astype(str)])
    ceiling = lookup.reindex(keys).to_numpy(dtype=float)
    out = summary.copy()
    out["mouse_ceiling"] = ceiling
    values = out[score].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[f"{score}_mouse_normalized"] = np.where(ceiling > 0, values / ceiling, np.nan)
    return out


def best_normalized(normalized, score="max_score") -> pd.DataFrame:
    """The best model per area and metric, its score and both normalizations.

    Parameters
    ----------
    normalized : pandas.DataFrame
        :func:`normalize_by_ceiling`'s output for a summary table (``model, train_type, area,
        metric, <score>, ceiling, mouse_ceiling, <score>_mouse_normalized``).
    score : str, default "max_score"

    Returns
    -------
    pandas.DataFrame
        One row per area (hierarchy order) and metric with a ceiling: ``area, metric, model,
        train_type, score, split_half_ceiling, score_split_half_normalized, mouse_ceiling,
        score_mouse_normalized``.
    """
    cols = ["area", "metric", "model", "train_type", "score", "split_half_ceiling", "score_split_half_normalized",
            "mouse_ceiling", "score_mouse_normalized"]
    rows = []
    table = normalized[normalized["metric"].isin(CEILING_METRICS) & np.isfinite(normalized[score].astype(float))]
    for area in order_areas(table["area"].astype(str)):
        for metric in CEILING_METRICS:
            g = table[(table["area"] == area) & (table["metric"] == metric)]
            if not len(g):
                continue
            best = g.loc[g[score].astype(float).idxmax()]
            split = float(best["ceiling"]) if "ceiling" in g.columns else float("nan")
            with np.errstate(invalid="ignore", divide="ignore"):
                rows.append({"area": area, "metric": metric, "model": best["model"],
                             "train_type": best.get("train_type", ""), "score": float(best[score]),
                             "split_half_ceiling": split,
                             "score_split_half_normalized": float(best[score]) / split if split > 0 else np.nan,
                             "mouse_ceiling": float(best["mouse_ceiling"]),
                             "score_mouse_normalized": float(best[f"{score}_mouse_normalized"])})
    return pd.DataFrame(rows, columns=cols)


def plot_ceilings(ceilings):
    """The two ceilings per area, one panel per metric (grouped bars).

    Parameters
    ----------
    ceilings : pandas.DataFrame
        :func:`mouse_to_mouse_ceiling`'s table.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    metrics = [m for m in CEILING_METRICS if m in set(ceilings["metric"])]
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(5.5 * max(1, len(metrics)), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        g = ceilings[ceilings["metric"] == metric]
        x = np.arange(len(g))
        ax.bar(x - 0.2, g["split_half_ceiling"], 0.4, label="split-half", color="silver")
        ax.bar(x + 0.2, g["ceiling"], 0.4, label="mouse-to-mouse", color="steelblue")
        for xi, n, c in zip(x, g["n_animals"], g["ceiling"].to_numpy(float)):
            ax.text(xi + 0.2, max(c, 0.0) if np.isfinite(c) else 0.0, f"{int(n)}", ha="center", va="bottom",
                    fontsize=7)
        ax.set_xticks(x, g["area"], rotation=30, ha="right")
        ax.set_xlim(-0.6, len(g) - 0.4)
        low = float(np.nanmin(g[["ceiling", "split_half_ceiling"]].to_numpy(float), initial=0.0))
        ax.set(ylim=(min(0.0, low), 1.2), yticks=np.arange(0.0, 1.01, 0.2), ylabel="ceiling (Pearson r)", title=_LABELS[metric])
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].legend(fontsize=8, loc="upper left", ncol=2)
    fig.suptitle("Ceilings per area (numbers over the bars: animals held out in turn)", fontsize=10)
    fig.tight_layout()
    return fig


def ceiling_summary(ceilings, best=None) -> str:
    """A closing summary of the ceilings (and of the best normalized scores) in Markdown.

    Parameters
    ----------
    ceilings : pandas.DataFrame
        :func:`mouse_to_mouse_ceiling`'s table.
    best : pandas.DataFrame, optional
        :func:`best_normalized`'s table.

    Returns
    -------
    str
    """
    lines = []
    for metric in CEILING_METRICS:
        g = ceilings[(ceilings["metric"] == metric) & np.isfinite(ceilings["ceiling"].astype(float))]
        if not len(g):
            lines.append(f"- **{_LABELS[metric]}**: no area has neurons of two animals to "
                         "compare (the mouse-to-mouse ceiling needs at least 2).")
            continue
        ratio = (g["ceiling"] / g["split_half_ceiling"]).to_numpy(float)
        lo, hi = g.loc[g["ceiling"].idxmin()], g.loc[g["ceiling"].idxmax()]
        few, many = int(g["n_animals"].min()), int(g["n_animals"].max())
        animals = f"{few} animals" if few == many else f"{few} to {many} animals"
        lines.append(
            f"- **{_LABELS[metric]}**: the mouse-to-mouse ceiling ranges from "
            f"{lo['ceiling']:.3f} ({lo['area']}) to {hi['ceiling']:.3f} ({hi['area']}) over {len(g)} areas "
            f"with {animals} each; it is "
            f"{np.nanmin(ratio):.2f} to {np.nanmax(ratio):.2f} times the split-half ceiling "
            f"(mean split-half ceiling {g['split_half_ceiling'].mean():.3f}).")
    missing = ceilings.loc[~np.isfinite(ceilings["ceiling"].astype(float)), "area"].unique().tolist()
    if missing:
        lines.append(f"- No mouse-to-mouse ceiling for {', '.join(missing)} (fewer than two animals with "
                     "selected neurons, or fewer than two neurons per animal for RSA).")
    if best is not None and len(best):
        finite = best[np.isfinite(best["score_mouse_normalized"].astype(float))]
        above = finite[finite["score_mouse_normalized"] > 1]
        largest = ""
        if len(above):
            top = above.loc[above["score_mouse_normalized"].astype(float).idxmax()]
            largest = f"; largest {top['score_mouse_normalized']:.2f}, {top['model']} in {top['area']}"
        lines.append(
            f"- Best models: {len(above)} of {len(finite)} area-metric pairs score above the mouse-to-mouse "
            f"ceiling (normalized score > 1{largest}); against the split-half ceiling the best normalized "
            f"score is {best['score_split_half_normalized'].max():.2f}.")
    return "\n".join(lines)
