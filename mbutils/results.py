"""A run's results: the score tables of a results folder, with model metadata joined.

A results folder holds ``models/<model>__<weights>/`` with the Parquet tables and the
``provenance.json`` that :func:`mbutils.scoring.score_model` writes (columns in
``docs/interfaces.md``). :func:`load_model_results` reads one model's folder; :func:`load_run`
reads every model folder of a run (through the same reader) and joins, per model, the
registry's metadata (:func:`mbutils.models.list_models`), so that every chapter can ask "which
models of this run are ImageNet-trained, which are Taskonomy encoders, which are transformers".

Examples
--------
>>> from mbutils.results import load_run
>>> run = load_run("results/smoke")            # doctest: +SKIP
>>> run.summary.groupby("metric")["max_score"].max()   # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .constants import AREAS, order_areas

__all__ = ["Run", "load_run", "load_model_results", "dataset_label", "model_summary", "ordered_areas",
           "METRICS", "METRIC_LABELS", "TABLES"]

METRICS = ("srp_ridge", "rsa")
METRIC_LABELS = {"srp_ridge": "SRP-Ridge Max", "rsa": "RSA Max", "cka": "CKA Max"}
#: the areas in the paper's order, for tables and figures
AREA_ORDER = AREAS
#: the distinct areas of a sequence in the paper's order (others after, sorted)
ordered_areas = order_areas


TABLES = ("scores", "scores_groups", "neuron_scores", "summary", "scores_reliability", "bootstrap")
META_COLUMNS = (
    "display_name", "source", "model_class", "task", "task_cluster", "n_parameters", "imagenet_top1"
)
BASELINE_SOURCES = {"baseline", "baselines"}
IMAGENET_SOURCES = {"torchvision", "timm", "efficientnet_lite", "efficientnet-lite"}


@dataclasses.dataclass
class Run:
    """The score tables of one sweep, with model metadata joined.

    Attributes
    ----------
    scores, scores_groups, neuron_scores, summary : pandas.DataFrame
        The sweep's tables (empty DataFrames when a table is absent).
    meta : pandas.DataFrame
        One row per model name: ``display_name``, ``source``, ``model_class``, ``task``,
        ``task_cluster`` (Taskonomy's "Other" merged into "2D"), ``n_parameters``,
        ``imagenet_top1``, ``family`` ("imagenet", "taskonomy", "baseline" or "other").
    results_dir : pathlib.Path or None
    dataset_sha256 : str or None
        SHA-256 of the dataset the tables were scored on, when the run was loaded for a dataset.
    left_out : pandas.DataFrame
        Model folders of the results folder that were not read (``folder, reason``): scored on
        another dataset, or without a record of their dataset.
    scores_reliability : pandas.DataFrame
        Scores per layer, metric, area and split-half reliability cutoff (paper appendix A.6;
        see :func:`mbutils.scoring.score_reduced`); empty for folders written without it.
    bootstrap : pandas.DataFrame
        Per model, metric, area and bootstrap draw, the layer-max and unbiased scores of a
        resample of the stimuli (and neurons) (``model, train_type, metric, area, draw,
        max_score, unbiased_score``; see :func:`mbutils.scoring.score_reduced`); draw ``d`` is
        the same resample for every model, so models compare draw by draw
        (:func:`mbutils.uncertainty.pairwise_probability`). Empty for folders written without it;
        the summary's ``max_score_ci_low``, ``max_score_ci_high``, ``unbiased_score_ci_low``,
        ``unbiased_score_ci_high`` are the 95% percentile intervals of these draws.
    flagged : pandas.DataFrame
        The penalty-dominated layers (``model, train_type, layer, layer_depth``): SRP-Ridge rows
        whose leave-one-out predictions are the leave-one-out mean (every neuron's r at most
        -0.87, whatever the layer). Unless loaded with ``include_flagged=True``, their
        SRP-Ridge rows are left out of ``scores``, ``scores_groups`` and ``neuron_scores``, so
        that no mean, profile or layer-wise analysis includes them.
    """

    scores: pd.DataFrame
    scores_groups: pd.DataFrame
    neuron_scores: pd.DataFrame
    summary: pd.DataFrame
    meta: pd.DataFrame
    results_dir: Path | None = None
    flagged: pd.DataFrame = dataclasses.field(
        default_factory=lambda: pd.DataFrame(columns=["model", "train_type", "layer", "layer_depth"]))
    dataset_sha256: str | None = None
    left_out: pd.DataFrame = dataclasses.field(default_factory=lambda: pd.DataFrame(columns=["folder", "reason"]))
    scores_reliability: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    bootstrap: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)

    def flagged_counts(self) -> pd.DataFrame:
        """Penalty-dominated layers per model: ``model, train_type, n_flagged, n_layers``."""
        cols = ["model", "train_type", "n_flagged", "n_layers"]
        if not len(self.flagged):
            return pd.DataFrame(columns=cols)
        n = self.flagged.groupby(["model", "train_type"])["layer"].nunique().rename("n_flagged").reset_index()
        layers = (self.scores.groupby(["model", "train_type"])["layer"].nunique().rename("n_layers").reset_index()
                  if len(self.scores) else pd.DataFrame(columns=["model", "train_type", "n_layers"]))
        return n.merge(layers, on=["model", "train_type"], how="left")[cols]

    @property
    def models(self) -> pd.DataFrame:
        """Scored (model, train_type) pairs with metadata, one row each."""
        src = self.summary if len(self.summary) else self.scores
        if not len(src):
            return pd.DataFrame(columns=["model", "train_type", *META_COLUMNS, "family"])
        pairs = src[["model", "train_type"]].drop_duplicates().reset_index(drop=True)
        return pairs.merge(self.meta, left_on="model", right_index=True, how="left")

    def family(self, family, train_type=None) -> list:
        """Names of scored models of one family (optionally only those scored with ``train_type``)."""
        m = self.models
        m = m[m["family"] == family]
        if train_type is not None:
            m = m[m["train_type"] == train_type]
        return sorted(m["model"].unique())


def load_model_results(folder) -> dict:
    """The tables of one model's score folder.

    Parameters
    ----------
    folder : str or pathlib.Path
        ``<results>/models/<model>__<weights>/``, or any folder written by
        :func:`mbutils.scoring.score_model` (``mbutils score --out``).

    Returns
    -------
    dict
        ``scores``, ``scores_groups``, ``neuron_scores``, ``summary``, ``scores_reliability``,
        ``bootstrap`` (pandas.DataFrame; empty when a table is absent, as ``scores_reliability``
        or ``bootstrap`` in folders written before they existed) and ``provenance`` (dict; empty when absent).

    Raises
    ------
    FileNotFoundError
        When the folder holds no ``scores.parquet``.
    """
    folder = Path(folder).expanduser()
    if not (folder / "scores.parquet").is_file():
        raise FileNotFoundError(f"no scores.parquet in {str(folder)!r}; score the model first "
                                "(`mbutils score MODEL --dataset FILE --out FOLDER`)")
    if not (folder / "provenance.json").is_file():
        raise FileNotFoundError(f"the tables in {str(folder)!r} are incomplete (no provenance.json, which is "
                                "written last: the scoring was interrupted or failed while writing); score the "
                                "model again")
    out = {name: pd.read_parquet(folder / f"{name}.parquet") if (folder / f"{name}.parquet").is_file()
           else pd.DataFrame() for name in TABLES}
    try:
        out["provenance"] = json.loads((folder / "provenance.json").read_text())
    except (OSError, ValueError):
        out["provenance"] = {}
    return out


def _dataset_of(folder: Path):
    """SHA-256 of the dataset a model folder was scored on (its provenance), or None."""
    try:
        record = json.loads((folder / "provenance.json").read_text())
        return (record.get("dataset") or {}).get("sha256")
    except (OSError, ValueError, AttributeError):
        return None


def _model_folders(results_dir: Path, dataset_sha256=None):
    """``(folders to read, left-out table)``: the model folders with scores, those of one
    dataset when ``dataset_sha256`` is given."""
    found = sorted(p for p in (results_dir / "models").glob("*") if (p / "scores.parquet").is_file())
    folders = [p for p in found if (p / "provenance.json").is_file()]
    incomplete = [(p.name, "incomplete tables (no provenance.json)") for p in found if p not in folders]
    if dataset_sha256 is None:
        return folders, pd.DataFrame(incomplete, columns=["folder", "reason"])
    keep, left = [], []
    for f in folders:
        sha = _dataset_of(f)
        if sha == dataset_sha256:
            keep.append(f)
        elif sha is None:
            left.append((f.name, "no record of its dataset (provenance.json missing or unreadable)"))
        else:
            left.append((f.name, f"scored on another dataset (sha256 {sha[:12]})"))
    return keep, pd.DataFrame(incomplete + left, columns=["folder", "reason"])


def _read_tables(results_dir: Path, folders=None) -> dict:
    """Every model folder's tables under ``results_dir/models/`` (or ``folders``), concatenated."""
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {str(results_dir)!r} does not exist")
    if folders is None:
        folders = _model_folders(results_dir)[0]
    tables = [load_model_results(f) for f in folders]
    return {name: pd.concat([t[name] for t in tables if len(t[name])], ignore_index=True)
            if any(len(t[name]) for t in tables) else pd.DataFrame() for name in TABLES}


def _provenance_info(results_dir: Path) -> dict:
    """Model metadata recorded in each model folder's provenance.json (``model_info``), if any."""
    info = {}
    if results_dir is None:
        return info
    for prov in sorted((results_dir / "models").glob("*/provenance.json")):
        try:
            record = json.loads(prov.read_text())
        except (OSError, ValueError):
            continue
        mi = record.get("model_info") if isinstance(record, dict) else None
        if isinstance(mi, dict) and mi.get("name"):
            info[mi["name"]] = mi
    return info


def _registry_info() -> pd.DataFrame:
    try:
        from .models import list_models
    except ImportError:
        return pd.DataFrame()
    try:
        table = list_models()
    except Exception:  # a broken registry must not stop the results chapters
        return pd.DataFrame()
    if "name" in table.columns:
        table = table.set_index("name")
    return table


def _family(row) -> str:
    source = str(row.get("source") or "").lower()
    task = str(row.get("task") or "").lower()
    if source == "taskonomy":
        return "taskonomy"
    if source in BASELINE_SOURCES or str(row.get("model_class") or "").lower() == "baseline":
        return "baseline"
    if "imagenet" in task or (source in IMAGENET_SOURCES and task in ("", "nan", "classification")):
        return "imagenet"
    return "other"


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def build_meta(names, registry=None, provenance=None, metadata=None) -> pd.DataFrame:
    """Metadata for ``names``: explicit ``metadata`` > registry > provenance > unknown."""
    rows = {}
    registry = registry if registry is not None else pd.DataFrame()
    provenance = provenance or {}
    for name in names:
        row = {}
        if name in provenance:
            row.update({k: provenance[name].get(k) for k in META_COLUMNS})
        if len(registry) and name in registry.index:
            reg = registry.loc[name]
            row.update({k: reg[k] for k in META_COLUMNS if k in registry.columns and not _missing(reg[k])})
        if metadata is not None and name in metadata.index:
            row.update({k: metadata.loc[name, k] for k in META_COLUMNS if k in metadata.columns})
        rows[name] = row
    meta = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(META_COLUMNS))
    meta.index.name = "model"
    meta["display_name"] = meta["display_name"].fillna(pd.Series(meta.index, index=meta.index))
    cluster = meta["task_cluster"].astype(object)
    meta["task_cluster"] = cluster.where(cluster != "Other", "2D")  # the paper merges denoising into 2D
    for col in ("n_parameters", "imagenet_top1"):
        meta[col] = pd.to_numeric(meta[col], errors="coerce")
    meta["family"] = [_family(r) for _, r in meta.iterrows()] if len(meta) else []
    return meta


def _split_flagged(tables: dict, include_flagged: bool) -> pd.DataFrame:
    """The penalty-dominated layers of ``tables["scores"]``; their rows removed unless included."""
    cols = ["model", "train_type", "layer", "layer_depth"]
    s = tables["scores"]
    if not len(s) or "penalty_dominated" not in s.columns:
        return pd.DataFrame(columns=cols)
    mask = s["penalty_dominated"].fillna(False).astype(bool)
    flagged = s.loc[mask, cols].drop_duplicates().reset_index(drop=True)
    if not include_flagged:
        for name in ("scores", "scores_groups", "neuron_scores", "scores_reliability"):
            t = tables[name]
            if len(t) and "penalty_dominated" in t.columns:
                tables[name] = t[~t["penalty_dominated"].fillna(False).astype(bool)].reset_index(drop=True)
    return flagged


def load_run(results, metadata=None, include_flagged=False, metrics=METRICS, dataset=None) -> Run:
    """Load a sweep's results folder and join model metadata.

    Parameters
    ----------
    results : str or pathlib.Path
        The sweep's results folder (holding ``models/<model>__<train_type>/``).
    metadata : pandas.DataFrame, optional
        Metadata indexed by model name that overrides the registry (columns among
        ``display_name, source, model_class, task, task_cluster, n_parameters, imagenet_top1``).
    include_flagged : bool, default False
        Keep the SRP-Ridge rows of penalty-dominated layers in the layer tables (see
        :attr:`Run.flagged`); by default they are left out, and listed in ``Run.flagged``.
    metrics : sequence of str or None, default the paper's two (:data:`METRICS`)
        Metrics whose rows the tables keep; ``None`` keeps all (such as the scale-aware
        ``"srp_ridge_scaled"``, which the model cards show).
    dataset : str or pathlib.Path, optional
        Read only the model folders scored on this dataset file (by content hash, from each
        folder's ``provenance.json``); the others are listed in ``Run.left_out`` with the
        reason. Default: every model folder.

    Returns
    -------
    Run
    """
    results_dir = Path(results)
    if not results_dir.is_dir():
        raise ValueError(f"results folder {str(results_dir)!r} does not exist; expected a sweep's results folder")
    sha = None
    if dataset is not None:
        from ._io import file_sha256

        if not Path(dataset).is_file():
            raise FileNotFoundError(f"dataset {str(dataset)!r} not found; load_run(dataset=...) reads the tables "
                                    "scored on that file")
        sha = file_sha256(dataset)
    folders, left_out = _model_folders(results_dir, sha)
    tables = _read_tables(results_dir, folders)
    names = set()
    for t in tables.values():
        if "model" in t.columns:
            names.update(t["model"].unique())
    covered = metadata is not None and names <= set(metadata.index)
    registry = pd.DataFrame() if covered else _registry_info()  # the registry imports torch: skip if not needed
    meta = build_meta(sorted(names), registry, _provenance_info(results_dir), metadata)
    flagged = _split_flagged(tables, include_flagged)
    if metrics is not None:
        for name in ("scores", "scores_groups", "summary", "scores_reliability", "bootstrap"):
            t = tables[name]
            if len(t) and "metric" in t.columns:
                tables[name] = t[t["metric"].isin(list(metrics))].reset_index(drop=True)
    if len(tables["bootstrap"]):  # intervals of summaries written without them
        from .scoring._bootstrap import attach_intervals

        tables["summary"] = attach_intervals(tables["summary"], tables["bootstrap"])
    return Run(meta=meta, results_dir=results_dir, flagged=flagged, dataset_sha256=sha, left_out=left_out,
               **{k: tables[k] for k in TABLES})


def dataset_label(dataset) -> dict:
    """The dataset's ``source`` and ``description`` attributes and its ``ground_truth`` (parsed).

    Returns ``{"source": "unknown", ...}`` when the file is missing or unreadable.
    """
    out = {"path": str(dataset), "source": "unknown", "description": "", "ground_truth": None, "n_neurons": None,
           "sha256": None}
    if dataset is None or not Path(dataset).exists():
        return out
    from ._io import file_sha256

    out["sha256"] = file_sha256(dataset)
    import xarray as xr

    with xr.open_dataset(dataset) as ds:
        out["source"] = str(ds.attrs.get("source", "unknown"))
        out["description"] = str(ds.attrs.get("description", ""))
        gt = ds.attrs.get("ground_truth")
        out["ground_truth"] = json.loads(gt) if isinstance(gt, str) and gt else None
        out["n_neurons"] = int(ds.sizes.get("neuron", 0))
    return out


def model_summary(run: Run, metric=None, family=None, train_type=None, value="max_score") -> pd.DataFrame:
    """Per-(model, train_type, metric) mean over areas of the layer-max score.

    ``metric=None`` gives the paper's metrics (:data:`METRICS`); name another (such as
    ``"srp_ridge_scaled"``) to get it.

    Returns
    -------
    pandas.DataFrame
        Columns ``model, train_type, metric, score, n_areas`` and the metadata columns.
    """
    s = run.summary
    if not len(s):
        return pd.DataFrame(columns=["model", "train_type", "metric", "score", "n_areas", *META_COLUMNS, "family"])
    # the paper's metrics unless one is named (the scale-aware SRP-Ridge is shown on model cards)
    s = s[s["metric"] == metric] if metric is not None else s[s["metric"].isin(METRICS)]
    if train_type is not None:
        s = s[s["train_type"] == train_type]
    g = s.groupby(["model", "train_type", "metric"])[value]
    out = pd.DataFrame({"score": g.mean(), "n_areas": g.count()}).reset_index()
    out = out.merge(run.meta, left_on="model", right_index=True, how="left")
    if family is not None:
        out = out[out["family"] == family]
    return out.reset_index(drop=True)


def n_layers(run: Run) -> pd.Series:
    """Number of distinct layers per model (the paper's model depth), from the scores table."""
    if not len(run.scores):
        return pd.Series(dtype=float)
    return run.scores.groupby("model")["layer"].nunique()


def as_markdown(df: pd.DataFrame, floatfmt=".3g") -> str:
    """A small DataFrame as a markdown table (no tabulate dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = []
        for v in row:
            if isinstance(v, (float, np.floating)):
                cells.append("" if np.isnan(v) else format(v, floatfmt))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def neuron_reliability(run: Run, dataset=None, n_splits=10, seed=0):
    """Split-half reliability per neuron (pandas Series indexed by ``cell_specimen_id``).

    Taken from the neuron table's ``reliability`` column when present; otherwise computed from
    the dataset's responses (scenes only) with :func:`mbutils.reliability.splithalf_reliability`.
    Returns None when neither is available.
    """
    ns = run.neuron_scores
    if len(ns) and "reliability" in ns.columns:
        return ns.drop_duplicates("cell_specimen_id").set_index("cell_specimen_id")["reliability"]
    if dataset is None or not Path(dataset).exists():
        return None
    import xarray as xr

    from .reliability import splithalf_reliability

    with xr.open_dataset(dataset) as ds:
        if "reliability" in ds.coords:
            return pd.Series(ds["reliability"].values, index=ds["cell_specimen_id"].values)
        resp = ds["responses"]
        if "stimulus" in resp.coords:
            resp = resp.sel(stimulus=resp["stimulus"] >= 0)
        if len(ns):
            keep = np.isin(ds["cell_specimen_id"].values, ns["cell_specimen_id"].unique())
            resp = resp.isel(neuron=np.flatnonzero(keep))
        ids = resp["cell_specimen_id"].values
        rel = splithalf_reliability(resp.values, n_splits=n_splits, seed=seed, progress=False)
    return pd.Series(rel, index=ids, name="reliability")


def run_banner(run: Run, label: dict) -> str:
    """Markdown line saying which dataset and how many models the chapter's numbers come from.

    Everything that comes from the data (path, ``source`` attribute) is escaped: it reaches
    the page as text, never as markup.
    """
    import html

    m = run.models
    counts = m.groupby(["family", "train_type"]).size() if len(m) else pd.Series(dtype=int)
    parts = ", ".join(f"{n} {fam} ({tt})" for (fam, tt), n in counts.items()) or "no scored models"
    src = label.get("source", "unknown")
    warn = (" **These are results on a synthetic dataset (a simulated mouse), not on recordings.**"
            if src == "synthetic" else "")
    sha = run.dataset_sha256 or label.get("sha256")
    sha_text = f", sha256 {sha[:12]}" if sha else ""
    left = ""
    if len(run.left_out):
        reasons = run.left_out["reason"].str.split(" \\(").str[0].value_counts()
        left = " Left out: " + "; ".join(f"{n} model folder(s) {html.escape(r)}" for r, n in reasons.items()) + "."
    counts = run.flagged_counts()
    flag = ""
    if len(counts):
        flag = (f" {int(counts['n_flagged'].sum())} penalty-dominated layers of {len(counts)} models (SRP-Ridge "
                f"scores that measure the penalty, not the layer) are left out of every layer mean, profile and "
                f"maximum here; their model cards show them.")
    path = html.escape(str(label.get("path")))
    return (f"Dataset: <code>{path}</code> (source: <b>{html.escape(str(src))}</b>{sha_text}). "
            f"Scored models: {parts}.{warn}{flag}{left}")
