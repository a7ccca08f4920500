"""The paper's quantitative claims beside this run's values.

:func:`compute_claims` takes every row of the packaged ``paper_claims.csv`` (a copy of the
reference table: id, section, claim, statistic, paper_value, notes) and computes the same
statistic from a sweep's score tables (and the dataset file where a claim is about the data).
Nothing is copied from the paper: a claim the run cannot support (models absent, data that is
not part of this benchmark, timings that only the benchmarks measure) gets a stated reason and
an empty value. :func:`write_claims` writes the table as ``claims.csv`` in the results folder.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from ._io import atomic_write
from .results import METRICS, Run, dataset_label, model_summary

__all__ = ["paper_claims", "compute_claims", "write_claims", "CLAIMS"]

COLUMNS = ["id", "section", "claim", "statistic", "paper_value", "run_value", "run_detail", "dataset", "reason",
           "notes"]
METRIC_OF = {"srp": "srp_ridge", "rsa": "rsa"}


class Unsupported(Exception):
    """Raised by a claim whose statistic this run cannot compute (the message is the reason)."""


def paper_claims() -> pd.DataFrame:
    """The paper's claims (package copy of ``reference/paper_claims.csv``), values as strings."""
    with resources.files("mbutils").joinpath("paper_claims.csv").open("r") as fh:
        return pd.read_csv(fh, dtype=str, keep_default_na=False)


def _fmt(x):
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        if not np.isfinite(x):
            return "nan"
        return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.3g}"
    return str(x)


class _Context:
    """Lazily computed analyses shared by the claims."""

    def __init__(self, run: Run, dataset=None):
        self.run = run
        self.dataset = dataset
        self.label = dataset_label(dataset)
        self._cache = {}

    def get(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    @property
    def tvr(self):
        return self.get("tvr", lambda: stats.trained_vs_random(self.run))

    def family(self, fam, train_type="trained"):
        names = self.run.family(fam, train_type)
        if not names:
            what = {"imagenet": "ImageNet-trained models", "taskonomy": "Taskonomy encoders",
                    "baseline": "non-neural baselines"}.get(fam, fam)
            raise Unsupported(f"needs {what}" + (f" ({train_type})" if fam != "baseline" else "") +
                              "; this run has none")
        return names

    def provenance(self):
        def read():
            recs = []
            if self.run.results_dir is not None:
                for p in sorted((Path(self.run.results_dir) / "models").glob("*/provenance.json")):
                    try:
                        recs.append(json.loads(p.read_text()))
                    except (OSError, ValueError):
                        pass
            return recs
        return self.get("prov", read)


def _find_keys(obj, names):
    """Values of any key in ``names`` anywhere in a nested dict/list."""
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in names and isinstance(v, (int, float)) and not isinstance(v, bool):
                found.append(v)
            found.extend(_find_keys(v, names))
    elif isinstance(obj, list):
        for v in obj:
            found.extend(_find_keys(v, names))
    return found


# --------------------------------------------------------------------------- claims

def _neurons_total(c):
    if c.label["n_neurons"] is None:
        raise Unsupported("needs the dataset file (parameter `dataset`), which was not found")
    return c.label["n_neurons"], "neurons in the dataset file"


def _neurons_selected(c):
    ns = c.run.neuron_scores
    if len(ns):
        return ns["cell_specimen_id"].nunique(), "distinct neurons in the per-neuron score table"
    s = c.run.scores
    if not len(s):
        raise Unsupported("needs score tables; this run has none")
    one = s[(s["metric"] == "srp_ridge")].groupby(["model", "train_type", "layer"])["n_neurons"].sum()
    return int(one.iloc[0]), "sum of n_neurons over areas in the scores table"


def _rdm_reliability_max(c):
    if c.label["n_neurons"] is None:
        raise Unsupported("needs the dataset file (parameter `dataset`), which was not found")
    ns = c.run.neuron_scores
    if not len(ns):
        raise Unsupported("needs the per-neuron score table to know which neurons the sweep selected")
    import xarray as xr

    from .reliability import splithalf_rdm_reliability

    ids = ns["cell_specimen_id"].unique()
    best, where = -np.inf, None
    with xr.open_dataset(c.dataset) as ds:
        resp = ds["responses"]
        resp = resp.sel(stimulus=resp["stimulus"] >= 0) if "stimulus" in resp.coords else resp
        keep = np.isin(ds["cell_specimen_id"].values, ids)
        areas = ds["area"].values
        for area in np.unique(areas[keep]):
            sel = np.flatnonzero(keep & (areas == area))
            if len(sel) < 2:
                continue
            r = splithalf_rdm_reliability(resp.isel(neuron=sel).values)
            if r > best:
                best, where = r, area
    if where is None:
        raise Unsupported("no area has 2 or more selected neurons")
    return best, f"split-half RDM reliability of {where} (selected neurons)"


def _parameter(names, label):
    def fn(c):
        vals = sorted({v for rec in c.provenance() for v in _find_keys(rec, names)})
        if not vals:
            raise Unsupported(f"the sweep's provenance.json files do not record the {label}")
        return vals[0] if len(vals) == 1 else "/".join(_fmt(v) for v in vals), f"{label} from provenance.json"
    return fn


def _brainscore(c):
    raise Unsupported("needs the BrainScore macaque V4/IT benchmark, which is not part of this mouse "
                      "benchmark (and Brain-Score's data is not reachable offline)")


def _random_ge_trained(c):
    c.family("imagenet", "random")
    r = c.tvr["srp_ridge"]
    if r["n_models"] == 0:
        raise Unsupported("needs ImageNet architectures scored both trained and random; this run has none")
    return r["n_random_ge_trained"], f"of {r['n_models']}: {', '.join(r['random_ge_trained']) or 'none'}"


def _tvr_stat(metric, what):
    def fn(c):
        c.family("imagenet", "random")
        r = c.tvr[metric]
        if r["test"] is None:
            raise Unsupported(f"needs at least 3 ImageNet architectures scored trained and random; "
                              f"this run has {r['n_models']}")
        t = r["test"]
        return (t.pvalue if what == "p" else t.effect_size), f"t = {t.statistic:.3g}, n = {t.n}, d = {t.effect_size:.3g}, p = {t.pvalue:.3g}"
    return fn


def _overall(c, fam):
    ms = model_summary(c.run, family=fam, train_type="trained")
    wide = ms.pivot_table(index="model", columns="metric", values="score")
    if not set(METRICS) <= set(wide.columns):
        raise Unsupported("needs both metrics in the score tables")
    return wide[list(METRICS)].dropna()


def _best_architecture(c):
    c.family("imagenet")
    wide = _overall(c, "imagenet")
    overall = wide.mean(axis=1).sort_values(ascending=False)
    ranks = wide.rank(ascending=False)
    best = overall.index[0]
    return best, f"mean of both metrics {overall.iloc[0]:.3g}; ranks SRP {ranks.loc[best, 'srp_ridge']:.0f}, RSA {ranks.loc[best, 'rsa']:.0f} of {len(wide)}"


def _correlation(predictor, metric):
    def fn(c):
        c.family("imagenet")
        t = c.get("corr", lambda: stats.architecture_correlations(c.run))
        row = t[(t["predictor"] == predictor) & (t["metric"] == metric)].iloc[0]
        if row["n"] < 3 or not np.isfinite(row["rho"]):
            raise Unsupported(f"needs at least 3 ImageNet-trained models with a known {predictor}; this run has {row['n']}")
        return row["rho"], f"p = {row['p']:.3g}, n = {row['n']}"
    return fn


def _transformer(metric):
    def fn(c):
        c.family("imagenet")
        t = c.get("tr", lambda: stats.class_contrast(c.run, "Transformer")).set_index("metric").loc[metric]
        if not np.isfinite(t["t"]):
            raise Unsupported(f"needs at least 2 ImageNet-trained transformers and 2 other architectures; "
                              f"this run has {t['n_class']} and {t['n_other']}")
        return t["t"], f"p = {t['p']:.3g}, Hedges' g = {t['hedges_g']:.3g}, n = {t['n_class']} vs {t['n_other']}"
    return fn


def _top1(c):
    c.family("imagenet")
    t = c.get("corr", lambda: stats.architecture_correlations(c.run))
    t = t[t["predictor"] == "imagenet_top1"]
    if (t["n"] < 3).any() or t["rho"].isna().any():
        raise Unsupported("needs at least 3 ImageNet-trained models with a known ImageNet top-1 accuracy")
    sig = bool((t["p"] < 0.05).any())
    return sig, "; ".join(f"{r.metric}: rho = {r.rho:.3g}, p = {r.p:.3g}" for r in t.itertuples())


def _taskonomy_best(c):
    c.family("taskonomy")
    wide = _overall(c, "taskonomy")
    ranks = wide.rank(ascending=False)
    order = pd.DataFrame({"rank": ranks.mean(axis=1), "score": wide.mean(axis=1)}).sort_values(
        ["rank", "score"], ascending=[True, False])
    best = order.index[0]
    return best, f"ranks {ranks.loc[best, 'rsa']:.0f} (RSA) and {ranks.loc[best, 'srp_ridge']:.0f} (SRP-Ridge) of {len(wide)}"


def _baseline(keys):
    def fn(c):
        names = c.family("baseline", None)
        match = [n for n in names if any(k in n.lower() for k in keys)]
        if not match:
            raise Unsupported(f"needs the baseline {'/'.join(keys)}; this run's baselines are {names}")
        ms = model_summary(c.run, metric="srp_ridge", family="baseline").set_index("model")
        return ms.loc[match[0], "score"], f"{match[0]} (SRP-Ridge Max, mean over areas)"
    return fn


def _range(fam, metric):
    def fn(c):
        c.family(fam)
        r = c.get("ranges", lambda: stats.score_ranges(c.run))
        r = r[(r["family"] == fam) & (r["metric"] == metric)]
        if not len(r):
            raise Unsupported(f"needs at least 2 trained {fam} models")
        r = r.iloc[0]
        return r["range"], f"{r['best']:.3g} ({r['best_model']}) to {r['worst']:.3g} ({r['worst_model']}), n = {r['n_models']}"
    return fn


def _best_layer_depth(c):
    names = c.family("imagenet")
    s = c.run.summary
    s = s[s["model"].isin(names) & (s["train_type"] == "trained")]
    return s["best_layer_depth"].mean(), f"mean best-layer depth over {len(names)} models, both metrics, all areas"


def _rank_corr(which):
    def fn(c):
        t = c.get("agree", lambda: stats.metric_agreement(c.run)).set_index("models").loc[which]
        if not np.isfinite(t["rho"]):
            raise Unsupported(f"needs at least 3 models scored with both metrics ({which}); this run has {t['n']}")
        return t["rho"], f"p = {t['p']:.3g}, n = {int(t['n'])}"
    return fn


def _layer_corr(which):
    def fn(c):
        t = c.get("lagree", lambda: stats.layerwise_agreement(c.run)[1]).set_index("models").loc[which]
        if not np.isfinite(t["mean_rho"]):
            raise Unsupported(f"needs models with at least 3 layers scored with both metrics ({which})")
        return t["mean_rho"], f"95% CI [{t['ci_low']:.3g} {t['ci_high']:.3g}], n = {int(t['n'])} (model, area) pairs"
    return fn


def _visal(c):
    s = c.run.summary
    if not len(s):
        raise Unsupported("needs score tables; this run has none")
    s = s[(s["model"] == "segment_unsup2d") & (s["train_type"] == "trained") & (s["metric"] == "rsa")]
    if not len(s):
        raise Unsupported("needs the Taskonomy 2D segmentation encoder (segment_unsup2d, trained); this run has none")
    s = s[s["area"] == "VISal"]
    if not len(s):
        raise Unsupported("needs neurons in VISal; this run has none")
    return s["max_score"].iloc[0], f"RSA Max of segment_unsup2d in VISal; ceiling {s['ceiling'].iloc[0]:.3g}"


def _timing(c):
    raise Unsupported("a speed comparison measured by the benchmarks (benchmarks/), not by the sweep")


def _compute(c):
    totals = [v for rec in c.provenance() for v in _find_keys(rec.get("timings", {}), {"total_s", "total", "wall_s"})]
    if not totals:
        raise Unsupported("the sweep's provenance.json files record no timings")
    return f"{sum(totals):.0f} s", f"summed scoring time of {len(totals)} model variants on this machine"


CLAIMS = {
    "neurons_total": _neurons_total,
    "neurons_selected": _neurons_selected,
    "rdm_reliability_max": _rdm_reliability_max,
    "srp_components": _parameter({"n_components", "srp_components"}, "number of random projections"),
    "ridge_alpha": _parameter({"alpha", "ridge_alpha"}, "ridge penalty"),
    "bs_alexnet_v4": _brainscore, "bs_alexnet_it": _brainscore, "bs_gain_v4_mean": _brainscore,
    "bs_gain_it_mean": _brainscore, "bs_gain_max": _brainscore,
    "random_ge_trained_count": _random_ge_trained,
    "trained_vs_random_srp_p": _tvr_stat("srp_ridge", "p"),
    "trained_vs_random_srp_d": _tvr_stat("srp_ridge", "d"),
    "trained_vs_random_rsa_p": _tvr_stat("rsa", "p"),
    "trained_vs_random_rsa_d": _tvr_stat("rsa", "d"),
    "best_architecture": _best_architecture,
    "depth_rsa_spearman": _correlation("n_layers", "rsa"),
    "depth_srp_spearman": _correlation("n_layers", "srp_ridge"),
    "params_rsa_spearman": _correlation("n_parameters", "rsa"),
    "transformer_rsa_t": _transformer("rsa"),
    "transformer_srp_t": _transformer("srp_ridge"),
    "imagenet_top1_effect": _top1,
    "taskonomy_best_overall": _taskonomy_best,
    "baseline_gabor": _baseline(("gabor",)),
    "baseline_gist": _baseline(("gist",)),
    "baseline_rff": _baseline(("fourier", "rff")),
    "range_imagenet_srp": _range("imagenet", "srp_ridge"),
    "range_imagenet_rsa": _range("imagenet", "rsa"),
    "range_taskonomy_srp": _range("taskonomy", "srp_ridge"),
    "range_taskonomy_rsa": _range("taskonomy", "rsa"),
    "best_layer_depth": _best_layer_depth,
    "rank_corr_with_random": _rank_corr("with random"),
    "rank_corr_without_random": _rank_corr("without random"),
    "layer_corr_with_random": _layer_corr("with random"),
    "layer_corr_without_random": _layer_corr("without random"),
    "visal_best_rsa": _visal,
    "ridge_vs_pls_time": _timing,
    "gcv_vs_kfold_time": _timing,
    "compute_reported": _compute,
}


def compute_claims(run: Run, dataset=None) -> pd.DataFrame:
    """Every claim of the paper with this run's value (or the reason it has none).

    Parameters
    ----------
    run : mbutils.results.Run  (from ``load_run(results)``)
    dataset : str or pathlib.Path, optional  the dataset file the sweep scored

    Returns
    -------
    pandas.DataFrame  columns ``id, section, claim, statistic, paper_value, run_value,
    run_detail, dataset, reason, notes``; exactly one of ``run_value`` / ``reason`` is non-empty.
    """
    ctx = _Context(run, dataset)
    label = ctx.label
    ds_label = f"{label['source']} ({Path(str(dataset)).name})" if dataset is not None else "unknown"
    rows = []
    for claim in paper_claims().to_dict("records"):
        fn = CLAIMS.get(claim["id"])
        value = detail = reason = ""
        if fn is None:
            reason = "no computation is defined for this claim"
        else:
            try:
                v, detail = fn(ctx)
                value = _fmt(v)
            except Unsupported as exc:
                reason = str(exc)
        rows.append(dict(claim, run_value=value, run_detail=detail, dataset=ds_label, reason=reason))
    return pd.DataFrame(rows, columns=COLUMNS)


def write_claims(table: pd.DataFrame, results_dir) -> Path:
    """Write the claims table as ``claims.csv`` in the results folder (atomically)."""
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"claims table lacks columns {missing}; expected the output of compute_claims")
    path = Path(results_dir) / "claims.csv"
    with atomic_write(path) as tmp:
        table.to_csv(tmp, index=False)
    return path
