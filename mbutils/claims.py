"""The paper's quantitative claims beside this run's values, with a verdict that never overstates.

:func:`compute_claims` takes every row of the packaged ``paper_claims.csv`` (id, section, claim,
statistic, paper value and notes of the paper; the kind of claim and the paper's sample size,
``paper_n``, where the text states it or its numbers imply it) and computes the same statistic
from a sweep's score tables, with the paper's test and sample (docs/statistics.md). Nothing is
copied from the paper. Each row gets a ``status``:

- ``reproduced`` / ``not_reproduced``: the claim's criterion (:data:`CRITERIA`) holds or not;
- ``not_comparable``: a value was computed but cannot be held against the paper's: fewer models
  than ``min(10, paper's n)`` in a group of an inferential claim, a named model that was not
  scored, a measurement of the neural data on data other than the Allen Brain Observatory's,
  a timing of another machine;
- ``not_computable``: the run lacks what the statistic needs (the reason says what).

The first row, ``model_coverage``, states how much of the paper's model set
(:func:`paper_models`) the run scored. :func:`write_claims` writes the table as ``claims.csv``.
"""
from __future__ import annotations

import dataclasses
import json
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from ._io import atomic_write
from .results import METRICS, Run, dataset_label, model_summary

__all__ = ["paper_claims", "paper_models", "coverage", "compute_claims", "write_claims", "claim_counts",
           "CLAIMS", "CLAIM_METRICS", "CRITERIA", "COLUMNS", "STATUSES"]

COLUMNS = ["claim_id", "section", "statement", "paper_value", "run_value", "n", "paper_n", "status", "reason"]
STATUSES = ("reproduced", "not_reproduced", "not_comparable", "not_computable")
#: inferential claims need at least this many models per group (or the paper's n, if smaller)
MIN_GROUP = 10
_BOTH = ("srp_ridge", "rsa")
_METRIC_NAMES = {"srp_ridge": "SRP-Ridge", "rsa": "RSA", "cka": "CKA"}
#: the metrics whose scores a claim's computation reads (a claim not listed reads no score table)
CLAIM_METRICS = {
    **{cid: ("srp_ridge",) for cid in (
        "random_ge_trained_count", "trained_vs_random_srp_p", "trained_vs_random_srp_d", "depth_srp_spearman",
        "transformer_srp_t", "training_gain_transformer_mixer", "baseline_gabor", "baseline_gist", "baseline_rff",
        "range_imagenet_srp", "range_taskonomy_srp")},
    **{cid: ("rsa",) for cid in (
        "trained_vs_random_rsa_p", "trained_vs_random_rsa_d", "depth_rsa_spearman", "params_rsa_spearman",
        "transformer_rsa_t", "range_imagenet_rsa", "range_imagenet_rsa_without_nf", "range_taskonomy_rsa",
        "visal_best_rsa", "visal_fraction_explained")},
    **{cid: _BOTH for cid in (
        "best_architecture", "imagenet_top1_effect", "taskonomy_best_overall", "best_layer_depth",
        "taskonomy_depth_order", "rank_corr_with_random", "rank_corr_without_random", "layer_corr_with_random",
        "layer_corr_without_random")},
}
ALPHA = 0.05


class Unsupported(Exception):
    """Raised by a claim whose statistic this run cannot compute (the message is the reason)."""


class NotComparable(Exception):
    """Raised by a claim whose value exists but cannot be held against the paper's."""

    def __init__(self, reason, value="", n=""):
        super().__init__(reason)
        self.value, self.n = value, n


@dataclasses.dataclass
class Outcome:
    """What a claim's computation returns.

    Attributes
    ----------
    value : object  the run's value (formatted with :func:`_fmt`)
    ok : bool  the claim's criterion (:data:`CRITERIA`) holds on this run
    n : int or tuple of int  the run's sample (models, pairs, or models per group)
    detail : str  test statistics and the reading used
    """

    value: object
    ok: bool
    n: object = ""
    detail: str = ""


def _read_packaged(name) -> pd.DataFrame:
    with resources.files("mbutils").joinpath(name).open("r") as fh:
        return pd.read_csv(fh, dtype=str, keep_default_na=False)


def paper_claims() -> pd.DataFrame:
    """The paper's claims (package data ``paper_claims.csv``), every value a string.

    Returns
    -------
    pandas.DataFrame  columns ``id, section, claim, statistic, paper_value, notes, kind,
    paper_n``; ``kind`` is ``test``, ``named``, ``data``, ``parameter`` or ``external``.
    """
    return _read_packaged("paper_claims.csv")


def paper_models() -> pd.DataFrame:
    """The paper's model set (package data ``paper_models.csv``, from the paper's model table).

    One row per model under its ``mbutils`` registry name (timm's Inception-V3 is
    ``inception_v3_timm``): 109 ImageNet architectures, 24 Taskonomy encoders and Taskonomy's
    randomly initialised encoder (``random_weights``), 8 other torchvision models (detection,
    segmentation, video) and the 3 baselines of section 2.6.

    Returns
    -------
    pandas.DataFrame  columns ``model, display_name, family, source, train_data, model_class,
    task_cluster, train_types``; ``family`` is ``imagenet``, ``taskonomy``, ``other`` or
    ``baseline``; ``train_types`` lists the variants the paper scored (``"trained random"``,
    ``"trained"``, ``"random"``, or ``"any"`` for the baselines, whose features have no training).
    """
    return _read_packaged("paper_models.csv")


def coverage(run: Run) -> pd.DataFrame:
    """How much of the paper's model set (:func:`paper_models`) a run scored, per family.

    A model variant is a (model, train type) pair; a baseline counts whatever its train type.

    Returns
    -------
    pandas.DataFrame  columns ``family, paper_variants, scored_variants, fraction, missing,
    extra``: ``missing`` how many of the paper's variants were not scored, ``extra`` the
    scored variants outside the paper's set (names, comma-separated); one row per family and
    a last row ``"all"``.
    """
    pm = paper_models()
    scored = run.models[["model", "train_type"]].drop_duplicates() if len(run.models) else \
        pd.DataFrame(columns=["model", "train_type"])
    pairs = set(map(tuple, scored.to_numpy())) if len(scored) else set()
    names = {m for m, _ in pairs}
    rows, known = [], set()
    for fam in ("imagenet", "taskonomy", "other", "baseline"):
        sel = pm[pm["family"] == fam]
        want, got = 0, 0
        for r in sel.itertuples():
            known.add(r.model)
            if r.train_types == "any":
                want += 1
                got += r.model in names
            else:
                for tt in r.train_types.split():
                    want += 1
                    got += (r.model, tt) in pairs
        rows.append(dict(family=fam, paper_variants=want, scored_variants=got))
    out = pd.DataFrame(rows)
    out.loc[len(out)] = dict(family="all", paper_variants=int(out["paper_variants"].sum()),
                             scored_variants=int(out["scored_variants"].sum()))
    out["fraction"] = out["scored_variants"] / out["paper_variants"]
    out["missing"] = out["paper_variants"] - out["scored_variants"]
    extra = sorted(f"{m} ({tt})" for m, tt in pairs if m not in known)
    out["extra"] = ""
    out.loc[out["family"] == "all", "extra"] = ", ".join(extra)
    return out[["family", "paper_variants", "scored_variants", "fraction", "missing", "extra"]]


def _fmt(x):
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return "nan" if not np.isfinite(x) else f"{x:.3g}"
    if isinstance(x, tuple):
        return " vs ".join(_fmt(v) for v in x)
    return str(x)


def _groups(n) -> list:
    """Group sizes of a sample: ``92`` -> [92], ``(9, 83)`` -> [9, 83], ``"9 vs 83"`` -> [9, 83]."""
    if isinstance(n, (tuple, list)):
        return [int(v) for v in n]
    if isinstance(n, (int, np.integer)):
        return [int(n)]
    return [int(v) for v in re.findall(r"\d+", str(n))]


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

    @property
    def allen(self) -> bool:
        return self.label["source"] == "allen"

    def data_note(self) -> str:
        name = Path(str(self.dataset)).name if self.dataset is not None else "no dataset file given"
        return f"{self.label['source']} data ({name})"

    def family(self, fam, train_type="trained"):
        names = self.run.family(fam, train_type)
        if not names:
            what = {"imagenet": "ImageNet-trained models", "taskonomy": "Taskonomy encoders",
                    "baseline": "non-neural baselines"}.get(fam, fam)
            if fam == "imagenet" and train_type == "random":
                what = "randomly initialised ImageNet architectures"
            raise Unsupported(f"needs {what}; this run has none")
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

def _near(value, target, tol):
    return bool(np.isfinite(value) and abs(float(value) - target) <= tol)


def _neurons_total(c):
    if c.label["n_neurons"] is None:
        raise Unsupported("needs the dataset file (parameter `dataset`), which was not found")
    v = c.label["n_neurons"]
    return Outcome(v, v == 59610, detail="neurons in the dataset file")


def _neurons_selected(c):
    ns = c.run.neuron_scores
    if len(ns):
        v, how = ns["cell_specimen_id"].nunique(), "distinct neurons in the per-neuron score table"
    else:
        s = c.run.scores
        if not len(s):
            raise Unsupported("needs score tables; this run has none")
        one = s[(s["metric"] == "srp_ridge")].groupby(["model", "train_type", "layer"])["n_neurons"].sum()
        v, how = int(one.iloc[0]), "sum of n_neurons over areas in the scores table"
    return Outcome(v, abs(v - 6619) <= 0.01 * 6619, detail=how)


def _area_rdm_reliability(c):
    """Split-half RDM reliability of each area's selected neurons (dataset file + neuron table)."""
    def compute():
        if c.label["n_neurons"] is None:
            raise Unsupported("needs the dataset file (parameter `dataset`), which was not found")
        ns = c.run.neuron_scores
        if not len(ns):
            raise Unsupported("needs the per-neuron score table to know which neurons the sweep selected")
        import xarray as xr

        from .reliability import splithalf_rdm_reliability

        ids = ns["cell_specimen_id"].unique()
        out = {}
        with xr.open_dataset(c.dataset) as ds:
            resp = ds["responses"]
            resp = resp.sel(stimulus=resp["stimulus"] >= 0) if "stimulus" in resp.coords else resp
            keep = np.isin(ds["cell_specimen_id"].values, ids)
            areas = ds["area"].values
            for area in np.unique(areas[keep]):
                sel = np.flatnonzero(keep & (areas == area))
                if len(sel) >= 2:
                    out[str(area)] = float(splithalf_rdm_reliability(resp.isel(neuron=sel).values))
        return out
    return c.get("rdm_rel", compute)


def _rdm_reliability_max(c):
    rel = _area_rdm_reliability(c)
    if not rel:
        raise Unsupported("no area has 2 or more selected neurons")
    area = max(rel, key=rel.get)
    return Outcome(rel[area], _near(rel[area], 0.93, 0.02), detail=f"split-half RDM reliability of {area}")


def _parameter(names, label, paper):
    def fn(c):
        vals = sorted({v for rec in c.provenance() for v in _find_keys(rec, names)})
        if not vals:
            raise Unsupported(f"the sweep's provenance.json files do not record the {label}")
        if len(vals) > 1:
            return Outcome("/".join(_fmt(v) for v in vals), False, detail=f"several {label} values in provenance.json")
        return Outcome(vals[0], bool(np.isclose(vals[0], paper)), detail=f"{label} from provenance.json")
    return fn


def _brainscore(c):
    raise Unsupported("needs the BrainScore macaque V4/IT benchmark, which is not part of this mouse "
                      "benchmark (and Brain-Score's data is not reachable offline)")


def _random_ge_trained(c):
    c.family("imagenet", "random")
    r = c.tvr["srp_ridge"]
    if r["n_models"] == 0:
        raise Unsupported("needs ImageNet architectures scored both trained and random; this run has none")
    k, n = r["n_random_ge_trained"], r["n_models"]
    names = ", ".join(r["random_ge_trained"][:8]) + (" ..." if k > 8 else "")
    return Outcome(k, _near(k / n, 17 / 92, 0.05), n, f"{k} of {n} ({k / n:.2f}; the paper 17 of 92 = 0.18): "
                   f"{names or 'none'}")


def _tvr_test(metric):
    def get(c):
        c.family("imagenet", "random")
        r = c.tvr[metric]
        if r["test"] is None:
            raise Unsupported(f"needs at least 3 ImageNet architectures scored trained and random; "
                              f"this run has {r['n_models']}")
        t = r["test"]
        detail = (f"paired Student's t = {t.statistic:.3g}, df = {t.df:.0f}, p = {t.pvalue:.3g}; "
                  f"d_av = {t.effect_sizes['d_av']:.3g}, d_z = {t.effect_sizes['d_z']:.3g}")
        return t, detail
    return get


def _tvr_p(metric):
    get = _tvr_test(metric)

    def fn(c):
        t, detail = get(c)
        return Outcome(t.pvalue, bool(t.statistic > 0 and t.pvalue < ALPHA), t.n, detail)
    return fn


def _tvr_d(metric):
    get = _tvr_test(metric)

    def fn(c):
        t, detail = get(c)
        d = t.effect_sizes["d_av"]
        return Outcome(d, bool(d >= 0.8), t.n, detail)
    return fn


def _ranking(c, fam):
    r = c.get(f"rank_{fam}", lambda: stats.taskonomy_ranking(c.run, family=fam))
    if not len(r):
        raise Unsupported(f"needs {fam} models scored trained with both metrics; this run has none")
    return r


def _named(fam, paper_name, label):
    def fn(c):
        c.family(fam)
        r = _ranking(c, fam)
        best = r["model"].iloc[0]
        detail = (f"best of {len(r)} by the mean of SRP-Ridge Max and RSA Max (section 2.5): {best}, ranks "
                  f"{r['srp_ridge_rank'].iloc[0]:.0f} (SRP-Ridge) and {r['rsa_rank'].iloc[0]:.0f} (RSA)")
        if paper_name not in set(r["model"]):
            raise NotComparable(f"the paper's {label}, {paper_name}, was not scored (trained) in this run; {detail}",
                                value=best, n=len(r))
        row = r.set_index("model").loc[paper_name]
        detail += (f"; {paper_name}: rank {row['rank']:.0f} (SRP-Ridge {row['srp_ridge_rank']:.0f}, "
                   f"RSA {row['rsa_rank']:.0f})")
        return Outcome(best, best == paper_name, len(r), detail)
    return fn


def _correlations(c):
    return c.get("corr", lambda: stats.architecture_correlations(c.run))


def _by_train_type(frame) -> tuple:
    """(trained, random) counts of the model variants in a frame with a ``train_type`` column."""
    vc = frame["train_type"].value_counts()
    return int(vc.get("trained", 0)), int(vc.get("random", 0))


def _pooled_groups(c, predictor, metric) -> tuple:
    """(trained, random) variants in the pooled Spearman sample of a predictor and metric."""
    ms = model_summary(c.run, metric=metric, family="imagenet")
    x = ms["model"].map(stats.n_layers(c.run)) if predictor == "n_layers" else ms[predictor]
    ok = np.isfinite(pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)) & np.isfinite(
        ms["score"].to_numpy(dtype=float))
    return _by_train_type(ms[ok])


def _correlation(predictor, metric, sign):
    def fn(c):
        c.family("imagenet")
        t = _correlations(c)
        t = t[(t["predictor"] == predictor) & (t["metric"] == metric)].set_index("sample")
        row = t.loc["pooled"]
        if row["n"] < 3 or not np.isfinite(row["rho"]):
            raise Unsupported(f"needs at least 3 ImageNet models with a known {predictor}; this run has {row['n']}")
        detail = f"pooled trained and random: rho = {row['rho']:.3g}, p = {row['p']:.3g}, n = {row['n']}"
        if "imagenet_trained" in t.index:
            o = t.loc["imagenet_trained"]
            detail += f"; trained only: rho = {o['rho']:.3g}, p = {o['p']:.3g}, n = {o['n']}"
        return Outcome(row["rho"], bool(np.sign(row["rho"]) == sign and row["p"] < ALPHA),
                       _pooled_groups(c, predictor, metric), detail + " (n: trained vs random variants)")
    return fn


def _transformer(metric, sign):
    def fn(c):
        c.family("imagenet")
        t = c.get("tr", lambda: stats.class_contrast(c.run, "Transformer")).set_index("metric").loc[metric]
        if not np.isfinite(t["t"]):
            raise Unsupported(f"needs at least 2 ImageNet-trained transformers and 2 other architectures; "
                              f"this run has {t['n_class']} and {t['n_other']}")
        s = c.get("tr_student", lambda: stats.class_contrast(c.run, "Transformer", equal_var=True))
        s = s.set_index("metric").loc[metric]
        detail = (f"Welch's t = {t['t']:.3g}, df = {t['df']:.3g}, p = {t['p']:.3g}, Hedges' g = {t['hedges_g']:.3g}; "
                  f"Student's t = {s['t']:.3g}, df = {s['df']:.0f}, p = {s['p']:.3g}")
        return Outcome(t["t"], bool(np.sign(t["t"]) == sign and t["p"] < ALPHA),
                       (int(t["n_class"]), int(t["n_other"])), detail)
    return fn


def _training_gain(c):
    c.family("imagenet", "random")
    diffs, tests = c.get("gain", lambda: stats.training_gain_by_class(c.run))
    d = diffs[diffs["metric"] == "srp_ridge"]
    counts = d.groupby("model_class")["model"].nunique()
    classes = ["Convolutional", "Transformer", "MLP-Mixer"]
    if any(counts.get(k, 0) < 2 for k in classes):
        have = ", ".join(f"{k} {counts.get(k, 0)}" for k in classes)
        raise Unsupported("needs at least 2 architectures of each class (Convolutional, Transformer, MLP-Mixer) "
                          f"scored trained and random; this run has {have}")
    means = d.groupby("model_class")["difference"].mean().sort_values(ascending=False)
    pw = tests[(tests["reading"] == "between classes") & (tests["metric"] == "srp_ridge")]
    # the pairs that set transformers and MLP-Mixers apart: each against the convolutional nets
    pw = pw[pw["group_a"].isin(classes) & pw["group_b"].isin(classes)
            & ((pw["group_a"] == "Convolutional") | (pw["group_b"] == "Convolutional"))]
    top = set(means.index[:2]) == {"Transformer", "MLP-Mixer"}
    ok = bool(top and len(pw) and pw["reject"].astype(bool).all())
    detail = ("mean trained-minus-random SRP-Ridge Max: " + ", ".join(f"{k} {v:.3g}" for k, v in means.items()) +
              "; Welch tests between classes, Bonferroni: " +
              ", ".join(f"{r.group_a}-{r.group_b} p_adj = {r.p_adjusted:.3g}" for r in pw.itertuples()))
    return Outcome(ok, ok, tuple(int(counts.get(k, 0)) for k in classes), detail)


def _top1(c):
    c.family("imagenet")
    t = _correlations(c)
    t = t[(t["predictor"] == "imagenet_top1") & (t["sample"] == "imagenet_trained")]
    if (t["n"] < 3).any() or t["rho"].isna().any():
        raise Unsupported("needs at least 3 ImageNet-trained models with a known ImageNet top-1 accuracy")
    sig = bool((t["p"] < ALPHA).any())
    return Outcome(sig, not sig, int(t["n"].min()),
                   "; ".join(f"{r.metric}: rho = {r.rho:.3g}, p = {r.p:.3g}" for r in t.itertuples()))


def _baseline(keys, paper):
    def fn(c):
        names = c.family("baseline", None)
        match = [n for n in names if any(k in n.lower() for k in keys)]
        if not match:
            raise Unsupported(f"needs the baseline {'/'.join(keys)}; this run's baselines are {names}")
        ms = model_summary(c.run, metric="srp_ridge", family="baseline").set_index("model")
        v = ms.loc[match[0], "score"]
        v = float(v.iloc[0]) if isinstance(v, pd.Series) else float(v)
        return Outcome(v, _near(v, paper, 0.01), detail=f"{match[0]} (SRP-Ridge Max, mean over areas)")
    return fn


def _range(fam, metric, paper, subset="all"):
    def fn(c):
        c.family(fam)
        r = c.get("ranges", lambda: stats.score_ranges(c.run))
        r = r[(r["family"] == fam) & (r["metric"] == metric)]
        use, note = subset, subset
        if subset != "all" and not (r["subset"] == subset).any():
            use, note = "all", "no normalization-free model scored, so the same as all"
        r = r[r["subset"] == use]
        if not len(r):
            raise Unsupported(f"needs at least 2 trained {fam} models")
        r = r.iloc[0]
        return Outcome(r["range"], _near(r["range"], paper, 0.02), int(r["n_models"]),
                       f"{r['best']:.3g} ({r['best_model']}) to {r['worst']:.3g} ({r['worst_model']}), {note}")
    return fn


def _best_layer_depth(c):
    names = c.family("imagenet")
    p = c.get("peak", lambda: stats.depth_peak(c.run)).set_index("metric")
    if not set(METRICS) <= set(p.index):
        raise Unsupported("needs layer scores of both metrics for ImageNet-trained models")
    peaks = [float(p.loc[m, "peak_depth"]) for m in METRICS]
    s = c.run.summary
    s = s[s["model"].isin(names) & (s["train_type"] == "trained")]
    detail = (f"lowess peaks (Figure 4): SRP-Ridge {peaks[0]:.3g}, RSA {peaks[1]:.3g}; mean of the models' "
              f"best-layer depths {s['best_layer_depth'].mean():.3g}")
    return Outcome(float(np.mean(peaks)), all(_near(v, 0.33, 0.05) for v in peaks), len(names), detail)


def _taskonomy_depth_order(c):
    c.family("taskonomy")
    p = c.get("peak_tk", lambda: stats.depth_peak(c.run, family="taskonomy", by="task_cluster"))
    clusters = ["2D", "Geometric", "3D", "Semantic"]
    have = set(p["group"].astype(str))
    if not set(clusters) <= have:
        raise Unsupported(f"needs Taskonomy encoders of the clusters {clusters}; this run has {sorted(have)}")
    ok, parts = True, []
    for metric in METRICS:
        q = p[p["metric"] == metric].set_index("group")["peak_depth"]
        ok &= bool(max(q["2D"], q["Geometric"]) < min(q["3D"], q["Semantic"]))
        parts.append(f"{metric}: " + ", ".join(f"{k} {q[k]:.2f}" for k in clusters))
    n = p.drop_duplicates("group").set_index("group")["n_models"]
    return Outcome(ok, ok, tuple(int(n[k]) for k in clusters), "lowess peaks; " + "; ".join(parts))


def _rank_corr(which):
    def fn(c):
        t = c.get("agree", lambda: stats.metric_agreement(c.run)).set_index("models")
        if which not in t.index:
            raise Unsupported("needs models scored with both metrics; this run has none")
        t = t.loc[which]
        if not np.isfinite(t["rho"]):
            raise Unsupported(f"needs at least 3 models scored with both metrics ({which}); this run has {t['n']}")
        ms = model_summary(c.run)
        ms = ms[ms["family"].isin(("imagenet", "taskonomy"))]
        wide = ms.pivot_table(index=["model", "train_type"], columns="metric", values="score").dropna().reset_index()
        groups = _by_train_type(wide)
        n = groups if which == "with random" else groups[0]
        return Outcome(t["rho"], bool(t["rho"] > 0 and t["p"] < ALPHA), n,
                       f"Spearman rho = {t['rho']:.3g}, p = {t['p']:.3g}, n = {int(t['n'])}"
                       + (" (n: trained vs random variants)" if which == "with random" else ""))
    return fn


def _layer_corr(which):
    def fn(c):
        per, means = c.get("lagree", lambda: stats.layerwise_agreement(c.run))
        means = means.set_index("models")
        if which not in means.index:
            raise Unsupported("needs models scored with both metrics; this run has none")
        t = means.loc[which]
        if not np.isfinite(t["mean_rho"]):
            raise Unsupported(f"needs models with at least 3 layers scored with both metrics ({which})")
        per = per.dropna(subset=["rho"])
        if which == "without random":
            per = per[per["train_type"] != "random"]
        variants = per[["model", "train_type"]].drop_duplicates()
        n_models = len(variants)
        groups = _by_train_type(variants)
        return Outcome(t["mean_rho"], bool(t["mean_rho"] > 0 and t["ci_low"] > 0),
                       groups if which == "with random" else groups[0],
                       f"95% CI [{t['ci_low']:.3g} {t['ci_high']:.3g}] over {int(t['n'])} (model, area) pairs of "
                       f"{n_models} model variants")
    return fn


def _visal_score(c):
    s = c.run.summary
    if not len(s):
        raise Unsupported("needs score tables; this run has none")
    s = s[(s["model"] == "segment_unsup2d") & (s["train_type"] == "trained") & (s["metric"] == "rsa")]
    if not len(s):
        raise Unsupported("needs the Taskonomy 2D segmentation encoder (segment_unsup2d, trained); this run has none")
    s = s[s["area"] == "VISal"]
    if not len(s):
        raise Unsupported("needs neurons in VISal; this run has none")
    return float(s["max_score"].iloc[0]), s


def _visal(c):
    v, s = _visal_score(c)
    ceiling = s["ceiling"].iloc[0] if "ceiling" in s.columns else np.nan
    return Outcome(v, _near(v, 0.538, 0.02), detail=f"RSA Max of segment_unsup2d in VISal; noise ceiling {ceiling:.3g}")


def _visal_reliability(c):
    rel = _area_rdm_reliability(c)
    if "VISal" not in rel:
        raise Unsupported("needs 2 or more selected VISal neurons in the dataset file")
    return rel["VISal"]


def _visal_ev(c):
    rel = _visal_reliability(c)
    ev = stats.explainable_variance(rel)
    from .reliability import noise_ceiling

    return Outcome(ev, _near(ev, 0.773, 0.02),
                   detail=f"VISal RDM split-half reliability {rel:.3g} squared; our noise ceiling sqrt(reliability) = "
                          f"{noise_ceiling(rel):.3g}")


def _visal_fraction(c):
    v, _ = _visal_score(c)
    f = stats.explained_fraction(v, _visal_reliability(c))
    return Outcome(f["fraction"], _near(f["fraction"], 0.374, 0.05),
                   detail=f"R^2 = {f['r2']:.3g} of explainable {f['explainable']:.3g}; score over noise ceiling "
                          f"{f['normalized']:.3g}")


def _timing(c):
    raise Unsupported("a speed comparison measured by the benchmarks (benchmarks/), not by the sweep")


def _compute(c):
    totals = [v for rec in c.provenance() for v in _find_keys(rec.get("timings", {}), {"total_s", "total", "wall_s"})]
    if not totals:
        raise Unsupported("the sweep's provenance.json files record no timings")
    raise NotComparable(f"summed scoring time of {len(totals)} model variants on this machine, against the "
                        f"paper's whole study on 8 GPUs and 96 CPUs", value=f"{sum(totals):.0f} s")


CLAIMS = {
    "neurons_total": _neurons_total,
    "neurons_selected": _neurons_selected,
    "rdm_reliability_max": _rdm_reliability_max,
    "srp_components": _parameter({"n_components", "srp_components"}, "number of random projections", 4096),
    "ridge_alpha": _parameter({"alpha", "ridge_alpha"}, "ridge penalty", 1.0),
    "bs_alexnet_v4": _brainscore, "bs_alexnet_it": _brainscore, "bs_gain_v4_mean": _brainscore,
    "bs_gain_it_mean": _brainscore, "bs_gain_max": _brainscore,
    "random_ge_trained_count": _random_ge_trained,
    "trained_vs_random_srp_p": _tvr_p("srp_ridge"),
    "trained_vs_random_srp_d": _tvr_d("srp_ridge"),
    "trained_vs_random_rsa_p": _tvr_p("rsa"),
    "trained_vs_random_rsa_d": _tvr_d("rsa"),
    "best_architecture": _named("imagenet", "inception_resnet_v2", "best architecture"),
    "depth_rsa_spearman": _correlation("n_layers", "rsa", 1),
    "depth_srp_spearman": _correlation("n_layers", "srp_ridge", 1),
    "params_rsa_spearman": _correlation("n_parameters", "rsa", -1),
    "transformer_rsa_t": _transformer("rsa", -1),
    "transformer_srp_t": _transformer("srp_ridge", 1),
    "training_gain_transformer_mixer": _training_gain,
    "imagenet_top1_effect": _top1,
    "taskonomy_best_overall": _named("taskonomy", "segment_unsup2d", "best Taskonomy encoder"),
    "baseline_gabor": _baseline(("gabor",), 0.032),
    "baseline_gist": _baseline(("gist",), 0.026),
    "baseline_rff": _baseline(("fourier", "rff"), -0.014),
    "range_imagenet_srp": _range("imagenet", "srp_ridge", 0.088),
    "range_imagenet_rsa": _range("imagenet", "rsa", 0.575),
    "range_imagenet_rsa_without_nf": _range("imagenet", "rsa", 0.111, "without normalizer-free"),
    "range_taskonomy_srp": _range("taskonomy", "srp_ridge", 0.064),
    "range_taskonomy_rsa": _range("taskonomy", "rsa", 0.109),
    "best_layer_depth": _best_layer_depth,
    "taskonomy_depth_order": _taskonomy_depth_order,
    "rank_corr_with_random": _rank_corr("with random"),
    "rank_corr_without_random": _rank_corr("without random"),
    "layer_corr_with_random": _layer_corr("with random"),
    "layer_corr_without_random": _layer_corr("without random"),
    "visal_best_rsa": _visal,
    "visal_explainable_variance": _visal_ev,
    "visal_fraction_explained": _visal_fraction,
    "ridge_vs_pls_time": _timing,
    "gcv_vs_kfold_time": _timing,
    "compute_reported": _compute,
}

#: what "reproduced" means for each claim (docs/statistics.md)
CRITERIA = {
    "neurons_total": "the same count",
    "neurons_selected": "within 1% of the paper's count",
    "rdm_reliability_max": "within 0.02",
    "srp_components": "the same value",
    "ridge_alpha": "the same value",
    "random_ge_trained_count": "share of architectures within 0.05 of the paper's 17/92",
    "trained_vs_random_srp_p": "trained > random, p < 0.05 (paired Student's t-test)",
    "trained_vs_random_rsa_p": "trained > random, p < 0.05 (paired Student's t-test)",
    "trained_vs_random_srp_d": "d_av >= 0.8, a large effect as the paper's",
    "trained_vs_random_rsa_d": "d_av >= 0.8, a large effect as the paper's",
    "best_architecture": "the same model ranks first",
    "depth_rsa_spearman": "rho > 0, p < 0.05 (pooled trained and random)",
    "depth_srp_spearman": "rho > 0, p < 0.05 (pooled trained and random)",
    "params_rsa_spearman": "rho < 0, p < 0.05 (pooled trained and random)",
    "transformer_rsa_t": "t < 0, p < 0.05 (Welch's t-test)",
    "transformer_srp_t": "t > 0, p < 0.05 (Welch's t-test)",
    "training_gain_transformer_mixer": "Transformer and MLP-Mixer have the two largest mean gains and their "
                                       "Welch tests against the convolutional nets reject after Bonferroni "
                                       "(over the 3 class pairs) at 0.05",
    "imagenet_top1_effect": "p >= 0.05 for both metrics (Spearman, ImageNet-trained)",
    "taskonomy_best_overall": "the same model ranks first",
    "baseline_gabor": "within 0.01", "baseline_gist": "within 0.01", "baseline_rff": "within 0.01",
    "range_imagenet_srp": "within 0.02", "range_imagenet_rsa": "within 0.02",
    "range_imagenet_rsa_without_nf": "within 0.02", "range_taskonomy_srp": "within 0.02",
    "range_taskonomy_rsa": "within 0.02",
    "best_layer_depth": "both metrics' lowess peaks within 0.05 of 0.33",
    "taskonomy_depth_order": "for both metrics, the 2D and Geometric peaks lie before the 3D and Semantic ones",
    "rank_corr_with_random": "rho > 0, p < 0.05", "rank_corr_without_random": "rho > 0, p < 0.05",
    "layer_corr_with_random": "mean rho > 0 with its 95% CI above 0",
    "layer_corr_without_random": "mean rho > 0 with its 95% CI above 0",
    "visal_best_rsa": "within 0.02", "visal_explainable_variance": "within 0.02",
    "visal_fraction_explained": "within 0.05",
}


def _needed(n, paper_n):
    """(run groups, needed per group) of an inferential claim's sample."""
    got, want = _groups(n), _groups(paper_n)
    if len(want) == len(got):
        need = [min(MIN_GROUP, w) for w in want]
    else:
        need = [min(MIN_GROUP, min(want)) if want else MIN_GROUP] * len(got)
    return got, need


def _coverage_row(run):
    cov = coverage(run)
    total = cov.set_index("family").loc["all"]
    parts = "; ".join(f"{r.family} {r.scored_variants} of {r.paper_variants}" for r in cov.itertuples()
                      if r.family != "all")
    extra = total["extra"]
    reason = f"variants (model, train type) of the paper's model set scored: {parts}"
    if extra:
        reason += f"; scored outside the paper's set: {extra}"
    full = total["scored_variants"] == total["paper_variants"]
    if not full:
        reason += ("; every claim below rests on the scored subset (inferential claims need "
                   f"{MIN_GROUP} models per group)")
    return dict(claim_id="model_coverage", section="2.2",
                statement="the paper's model set (ImageNet architectures trained and random, Taskonomy encoders, "
                          "other torchvision models, baselines) scored by this run",
                paper_value=f"{total['paper_variants']} variants",
                run_value=f"{total['scored_variants']} ({total['fraction']:.0%})",
                n=str(total["scored_variants"]), paper_n=str(total["paper_variants"]),
                status="reproduced" if full else "not_comparable", reason=reason)


def compute_claims(run: Run, dataset=None) -> pd.DataFrame:
    """Every claim of the paper with this run's value, sample, verdict and reason.

    Parameters
    ----------
    run : mbutils.results.Run  (from ``load_run(results)``)
    dataset : str or pathlib.Path, optional  the dataset file the sweep scored

    Returns
    -------
    pandas.DataFrame  columns :data:`COLUMNS` (``claim_id, section, statement, paper_value,
    run_value, n, paper_n, status, reason``), all strings; ``status`` one of :data:`STATUSES`.
    The first row (``model_coverage``) states how much of the paper's model set was scored.
    """
    ctx = _Context(run, dataset)
    rows = [_coverage_row(run)]
    have = set(run.scores["metric"]) if len(run.scores) else set()
    missing_metrics = [m for m in METRICS if m not in have] if len(run.models) else []
    for claim in paper_claims().to_dict("records"):
        cid, kind = claim["id"], claim["kind"]
        paper_value = claim["paper_value"] + (f" ({claim['notes']})" if claim["notes"] else "")
        row = dict(claim_id=cid, section=claim["section"], statement=claim["claim"], paper_value=paper_value,
                   run_value="", n="", paper_n=claim["paper_n"], status="not_computable", reason="")
        fn = CLAIMS.get(cid)
        try:
            if fn is None:
                raise Unsupported("no computation is defined for this claim")
            if not len(run.models):
                raise Unsupported("the run has no scored models")
            lacking = [m for m in CLAIM_METRICS.get(cid, ()) if m in missing_metrics]
            if lacking:
                scored = [_METRIC_NAMES[m] for m in _METRIC_NAMES if m in have]
                raise Unsupported(f"needs {' and '.join(_METRIC_NAMES[m] for m in lacking)} scores; this run "
                                  f"scored {' and '.join(scored) or 'no metric of the paper'} only")
            try:
                out = fn(ctx)
            except (KeyError, IndexError, ValueError) as exc:
                if not missing_metrics:
                    raise
                # a run without one of the paper's metrics (SRP-Ridge alone at thousands of images)
                raise Unsupported(f"needs {' and '.join(missing_metrics)} scores, which this run does not have "
                                  f"({type(exc).__name__}: {exc})") from None
        except Unsupported as exc:
            row["reason"] = str(exc)
            rows.append(row)
            continue
        except NotComparable as exc:
            row.update(run_value=_fmt(exc.value), n=_fmt(exc.n), status="not_comparable", reason=str(exc))
            rows.append(row)
            continue
        row.update(run_value=_fmt(out.value), n=_fmt(out.n))
        criterion = CRITERIA.get(cid, "")
        reason = None
        if kind == "data" and not ctx.allen:
            reason = (f"the paper's value measures the Allen Brain Observatory data; this run scored "
                      f"{ctx.data_note()}; {out.detail}")
        elif kind in ("test", "named") or (kind == "data" and claim["paper_n"]):
            got, need = _needed(out.n, claim["paper_n"])
            if got and any(g < k for g, k in zip(got, need)):
                reason = (f"n = {_fmt(out.n)} here against the paper's n = {claim['paper_n'] or 'unstated'}: needs at "
                          f"least {' vs '.join(map(str, need))} models (10 per group, or the paper's n where "
                          f"smaller); {out.detail}")
        if reason is not None:
            row.update(status="not_comparable", reason=reason)
        else:
            note = f"; on {ctx.data_note()}" if kind in ("test", "named") and not ctx.allen else ""
            row.update(status="reproduced" if out.ok else "not_reproduced",
                       reason=f"criterion: {criterion}; {out.detail}{note}")
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def claim_counts(table: pd.DataFrame) -> pd.Series:
    """Number of claims per status (every status of :data:`STATUSES`, zeros included).

    Parameters
    ----------
    table : pandas.DataFrame  :func:`compute_claims` output

    Returns
    -------
    pandas.Series  indexed by status
    """
    return table["status"].value_counts().reindex(list(STATUSES), fill_value=0)


def write_claims(table: pd.DataFrame, results_dir, name="claims.csv") -> Path:
    """Write the claims table as ``claims.csv`` in the results folder (atomically).

    Parameters
    ----------
    table : pandas.DataFrame  :func:`compute_claims` output
    results_dir : str or pathlib.Path  the folder (created if missing)
    name : str  the file name

    Returns
    -------
    pathlib.Path  the file written
    """
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"claims table lacks columns {missing}; expected the output of compute_claims")
    folder = Path(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with atomic_write(path) as tmp:
        table[COLUMNS].to_csv(tmp, index=False)
    return path
