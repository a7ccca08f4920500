"""Tables and figures of the book's own chapters (model cards, neural data, model zoo).

Private: the notebooks call these; the lead may merge them into :mod:`mbutils.plots`.
Each figure function returns a ``matplotlib.figure.Figure``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

METRIC_LABELS = {"srp_ridge": "SRP-Ridge (Pearson r)", "rsa": "RSA (Pearson r of RDMs)"}
AREA_ORDER = ["VISp", "VISl", "VISal", "VISpm", "VISrl", "VISam"]


def _areas(values) -> list:
    present = list(dict.fromkeys(values))
    return [a for a in AREA_ORDER if a in present] + sorted(a for a in present if a not in AREA_ORDER)


def read_model_scores(folder) -> dict:
    """The tables of one model's score folder.

    Parameters
    ----------
    folder : str or pathlib.Path
        ``<results>/models/<model>__<weights>/`` as written by ``score_model``.

    Returns
    -------
    dict of pandas.DataFrame
        ``scores`` and ``summary`` (and ``scores_groups`` when present).
    """
    folder = Path(folder)
    out = {}
    for name in ("scores", "summary", "scores_groups"):
        path = folder / f"{name}.parquet"
        if path.exists():
            out[name] = pd.read_parquet(path)
    if "scores" not in out:
        raise FileNotFoundError(f"no scores.parquet in {str(folder)!r}; score the model first")
    return out


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
        ``unbiased_score``, ``ceiling``, ``best_layer``, ``best_layer_depth``.
    """
    cols = [c for c in ("max_score", "unbiased_score", "ceiling", "best_layer", "best_layer_depth") if c in summary]
    table = summary.set_index(["metric", "area"])[cols]
    order = [(m, a) for m in table.index.get_level_values(0).unique() for a in _areas(table.loc[m].index)]
    return table.loc[order]


def plot_layer_profile(scores: pd.DataFrame, title=None, value="score"):
    """Layer-by-layer score profile of one model, per area, one panel per metric.

    Parameters
    ----------
    scores : pandas.DataFrame
        ``scores.parquet`` rows (columns ``metric``, ``area``, ``layer_depth``, ``score``).
    title : str, optional
    value : str
        Column to plot (``score`` or ``score_normalized``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    metrics = [m for m in METRIC_LABELS if m in set(scores["metric"])] or sorted(set(scores["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    areas = _areas(scores["area"])
    colors = dict(zip(areas, plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(areas), 1)))))
    for ax, metric in zip(axes[0], metrics):
        sub = scores[scores["metric"] == metric]
        for area in areas:
            rows = sub[sub["area"] == area].sort_values("layer_depth")
            ax.plot(rows["layer_depth"], rows[value], marker="o", ms=3, lw=1.2, label=area, color=colors[area])
        ax.set(xlabel="relative layer depth", ylabel=METRIC_LABELS.get(metric, metric), xlim=(0, 1.02),
               title=METRIC_LABELS.get(metric, metric).split(" (")[0])
        ax.grid(alpha=0.3)
    axes[0][-1].legend(title="area", fontsize=8, frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def reliability_table(dataset, reliability: pd.Series, threshold=0.8) -> pd.DataFrame:
    """Per-neuron reliability with its area and Cre line.

    Parameters
    ----------
    dataset : NeuralDataset
        The full dataset (coordinates along ``neuron``).
    reliability : pandas.Series
        Split-half reliability indexed by ``cell_specimen_id`` (``SelectionReport.reliability``).
    threshold : float
        Reliability threshold (adds a boolean ``reliable`` column).

    Returns
    -------
    pandas.DataFrame
        Columns ``cell_specimen_id, area, cre_line, excitatory, reliability, reliable``.
    """
    ds = getattr(dataset, "ds", dataset)
    coords = pd.DataFrame({k: ds[k].values for k in ("cell_specimen_id", "area", "cre_line", "excitatory")
                           if k in ds.coords})
    table = coords.merge(reliability.rename("reliability"), left_on="cell_specimen_id", right_index=True,
                         how="inner")
    table["reliable"] = table["reliability"] >= threshold
    return table


def plot_reliability_distributions(table: pd.DataFrame, threshold=0.8):
    """Split-half reliability distributions per area and per Cre line (box plots).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`reliability_table`.
    threshold : float
        Drawn as a dashed line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1, 1.6]})
    for ax, by, order in ((axes[0], "area", _areas(table["area"])),
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
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.6 * len(steps) + 1))
    y = np.arange(len(steps))[::-1]
    ax.barh(y, steps["n_neurons"], color="steelblue")
    ax.set_yticks(y, steps["description"])
    for yi, n in zip(y, steps["n_neurons"]):
        ax.text(n, yi, f" {int(n):,}", va="center", fontsize=8)
    ax.set(xlabel="neurons")
    fig.tight_layout()
    return fig


def rdm_reliability_by_area(dataset, n_splits=10, seed=0) -> pd.DataFrame:
    """Split-half RDM reliability of each area's population, and the RSA ceiling (its square root).

    Parameters
    ----------
    dataset : NeuralDataset
        Usually the selected neurons (scenes only).
    n_splits, seed : int
        Random trial splits.

    Returns
    -------
    pandas.DataFrame
        Columns ``area, n_neurons, rdm_reliability, ceiling`` in hierarchy order.
    """
    from .reliability import noise_ceiling, splithalf_rdm_reliability

    responses = dataset.responses
    rows = []
    for area in _areas(responses["area"].values):
        sub = responses.sel(neuron=responses["area"] == area)
        if sub.sizes["neuron"] < 2:
            rows.append((area, int(sub.sizes["neuron"]), np.nan))
            continue
        rows.append((area, int(sub.sizes["neuron"]), splithalf_rdm_reliability(sub.values, n_splits=n_splits,
                                                                                  seed=seed)))
    table = pd.DataFrame(rows, columns=["area", "n_neurons", "rdm_reliability"])
    table["ceiling"] = noise_ceiling(table["rdm_reliability"].to_numpy())
    return table


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


# --------------------------------------------------------------------------- method validation
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
    from .data import load_dataset, select_neurons
    from .models import load_model

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
    from .scoring import pearson_columns, ridge_gcv_predictions
    from .scoring.mappings import reduce_features

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


def plot_mapping_tradeoff(comparison: pd.DataFrame):
    """Score against compute time for each mapping (paper Figure 5), averaged over layers.

    Parameters
    ----------
    comparison : pandas.DataFrame
        From :func:`mbutils.scoring.compare_mappings` (``reduction``, ``n_components``,
        ``regression``, ``score``, ``total_s``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    agg = comparison.groupby(["reduction", "n_components", "regression"], as_index=False)[["score", "total_s"]].mean()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = dict(zip(sorted(agg["reduction"].unique()), "osD^v"))
    colors = dict(zip(sorted(agg["regression"].unique()), plt.get_cmap("tab10").colors))
    for (red, reg), rows in agg.groupby(["reduction", "regression"]):
        ax.scatter(rows["total_s"], rows["score"], marker=markers[red], color=colors[reg], s=20 + rows["n_components"] / 100,
                   label=f"{red} + {reg}", alpha=0.8)
    ax.set_xscale("log")
    ax.set(xlabel="compute time per layer (s, log scale)", ylabel="mean Pearson r over neurons",
           title="Speed and accuracy of neural regression mappings")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig
