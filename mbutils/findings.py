"""Closing summaries of the book's pages: what the paper found beside what a run shows.

One function per page; each takes a :class:`mbutils.results.Run` and returns a markdown string
of two paragraphs: **What the paper found** (the finding as the paper states it, with its
section and figure) and **What this run shows** (one or two sentences whose numbers are computed
from the run by :mod:`mbutils.stats`). A statistic is printed only when each group it compares
holds at least :data:`MIN_MODELS` models; otherwise the sentence says that the run cannot test
the claim and gives the group sizes.

==============================  ===================================  ==========================
function                        page                                 paper
==============================  ===================================  ==========================
:func:`run_scope`               introduction                         sections 2.2, 2.3, 2.6
:func:`trained_vs_random`       results_01 (trained vs random)       section 3.2, Figure 1
:func:`architectures`           results_02 (architectures)           section 3.3
:func:`taskonomy`               results_03 (Taskonomy)               section 3.4, Figure 2
:func:`baselines`               results_04 (baselines)               section 3.5
:func:`training_vs_architecture` results_05                          section 3.6
:func:`layer_depth`             results_06 (layer depth)             section 3.7, Figure 4
:func:`areas`                   results_07 (cortical areas)          section 3.8, Figure 3
:func:`rsa_vs_regression`       results_08 (RSA vs regression)       section 3.9
:func:`ground_truth`            results_11 (synthetic ground truth)  (no counterpart)
==============================  ===================================  ==========================
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats
from .results import METRIC_LABELS, METRICS, Run, model_summary

__all__ = [
    "MIN_MODELS", "ALPHA", "run_scope", "trained_vs_random", "architectures", "taskonomy", "baselines",
    "training_vs_architecture", "layer_depth", "areas", "rsa_vs_regression", "ground_truth",
]

#: fewest models per group for which a summary prints a test, correlation, range or peak
MIN_MODELS = 10
#: significance level of the summaries' verdicts
ALPHA = 0.05


# --------------------------------------------------------------------------- formatting
def _summary(paper: str, run_text: str) -> str:
    return f"**What the paper found.** {paper}\n\n**What this run shows.** {run_text}"


def _cannot(what: str, counts: str, first=False) -> str:
    text = (f"this run cannot test the claim on {what}: it has {counts} "
            f"(a summary needs at least {MIN_MODELS} per group).")
    return text[0].upper() + text[1:] if first else text


def _f(x, digits=3) -> str:
    """A score or a correlation: fixed decimals."""
    return "nan" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _p(p) -> str:
    """A p-value: three significant digits."""
    return "nan" if p is None or not np.isfinite(p) else f"{p:.3g}"


def _names(run: Run, models) -> list:
    """Display names of ``models`` (the name itself where the run has none)."""
    dn = run.meta["display_name"] if "display_name" in run.meta.columns else pd.Series(dtype=object)
    return [str(dn.get(m, m)) if pd.notna(dn.get(m, m)) else str(m) for m in models]


def _listing(names, limit=6) -> str:
    names = list(names)
    if not names:
        return "none"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


# --------------------------------------------------------------------------- introduction
def run_scope(run: Run) -> str:
    """What the run scored, beside the paper's sample (introduction).

    Parameters
    ----------
    run : mbutils.results.Run

    Returns
    -------
    str  markdown.
    """
    paper = ("The paper scored ImageNet-trained architectures from torchvision and timm with their "
             "randomly initialised counterparts, the 24 Taskonomy encoders with the randomly initialised "
             "Taskonomy architecture, and three non-neural baselines (sections 2.2, 2.3, 2.6); its "
             "trained-versus-random comparison pairs 92 architectures (section 3.2).")
    m = run.models
    count = (lambda fam, tt: int(((m["family"] == fam) & (m["train_type"] == tt)).sum())) if len(m) else (lambda *_: 0)
    pairs = len(set(run.family("imagenet", "trained")) & set(run.family("imagenet", "random")))
    text = (f"this run scored {count('imagenet', 'trained')} ImageNet-trained and {count('imagenet', 'random')} "
            f"randomly initialised ImageNet architectures ({pairs} with both variants), "
            f"{count('taskonomy', 'trained')} trained Taskonomy encoders, {count('taskonomy', 'random')} randomly "
            f"initialised Taskonomy architecture(s) and {len(run.family('baseline'))} baseline(s). "
            f"Pages whose groups hold fewer than {MIN_MODELS} models say that the run cannot test the paper's "
            "claim there.")
    return _summary(paper, text[0].upper() + text[1:])


# --------------------------------------------------------------------------- section 3.2
def trained_vs_random(run: Run) -> str:
    """Trained against randomly initialised ImageNet architectures (section 3.2, Figure 1).

    Per metric: the number of architectures whose trained variant beats the random one, and a
    paired Student's t-test with the two paired Cohen's d (d_z: over the standard deviation of the
    differences; d_av: over the root mean square of the two standard deviations) across architectures
    (:func:`mbutils.stats.trained_vs_random`), when at least :data:`MIN_MODELS` architectures
    have both variants.

    Parameters
    ----------
    run : mbutils.results.Run

    Returns
    -------
    str  markdown.
    """
    paper = ("Training matters (section 3.2): a paired t-test across architectures shows ImageNet-trained "
             "models beating their randomly initialised counterparts on SRP-Ridge Max (p = 1.29e-40, "
             "Cohen's d = 2.40), although 17 of 92 random variants (the VGGs, AlexNet, the DenseNets, most "
             "normalizer-free networks) match or beat their trained counterparts there; on RSA Max trained "
             "models win categorically (p = 2.29e-29, d = 3.45).")
    tvr = stats.trained_vs_random(run, family="imagenet")
    parts = []
    for metric in METRICS:
        res = tvr[metric]
        n = res["n_models"]
        label = METRIC_LABELS[metric]
        if n < MIN_MODELS or res["test"] is None:
            parts.append(f"on {label} " + _cannot("trained vs random architectures",
                                                  f"n = {n} architectures scored both trained and random"))
            continue
        t = res["test"]
        k = res["n_random_ge_trained"]
        verdict = ("trained beats random, as in the paper" if t.statistic > 0 and t.pvalue < ALPHA
                   else "the paper's advantage of training is not found")
        parts.append(f"on {label} the trained variant beats the random one in {n - k} of {n} architectures "
                     f"(random matches or beats trained in {k}: {_listing(_names(run, res['random_ge_trained']))}); "
                     f"paired t({n - 1}) = {_f(t.statistic, 2)}, p = {_p(t.pvalue)}, d_z = {_f(t.effect_sizes['d_z'], 2)}, "
                     f"d_av = {_f(t.effect_sizes['d_av'], 2)}: "
                     f"{verdict}.")
    return _summary(paper, "In this run, " + " And ".join(parts))


# --------------------------------------------------------------------------- section 3.3
def architectures(run: Run) -> str:
    """Which architectures predict best (section 3.3).

    The best ImageNet-trained architecture by the paper's overall ranking (mean of the two
    metrics), the Spearman correlation of model depth (number of layers) with each metric over
    the trained and random variants pooled (:func:`mbutils.stats.architecture_correlations`,
    ``sample="pooled"``), that of ImageNet top-1 accuracy over the trained architectures, and
    transformers against all other trained architectures
    (:func:`mbutils.stats.class_contrast`, Welch's t, Hedges' g).

    Parameters
    ----------
    run : mbutils.results.Run

    Returns
    -------
    str  markdown.
    """
    paper = ("Inception-ResNet-V2 is the best architecture on both metrics; model depth correlates "
             "weakly and positively with both (Spearman r = 0.22 RSA Max, 0.192 SRP-Ridge Max), the "
             "parameter count weakly negatively with RSA Max (r = -0.18), and ImageNet top-1 accuracy not "
             "significantly; transformers do slightly worse than other architectures on RSA Max "
             "(t = -3.96, g = -0.913) and moderately better on SRP-Ridge Max (t = 2.45, g = 0.633) "
             "(section 3.3).")
    overall = stats.taskonomy_ranking(run, family="imagenet")
    n = len(overall)
    if n < MIN_MODELS:
        return _summary(paper, _cannot("ImageNet architectures", f"n = {n} ImageNet-trained architectures", first=True))
    best = _names(run, [overall["model"].iloc[0]])[0]
    corr = stats.architecture_correlations(run, sample="pooled").set_index(["predictor", "metric"])
    depth = "; ".join(f"{METRIC_LABELS[m]} r = {_f(corr.loc[('n_layers', m), 'rho'])} "
                      f"(p = {_p(corr.loc[('n_layers', m), 'p'])}, n = {int(corr.loc[('n_layers', m), 'n'])})"
                      for m in METRICS)
    top1 = stats.architecture_correlations(run, sample="imagenet_trained").set_index(["predictor", "metric"])
    top1 = top1.loc["imagenet_top1"]
    if int(top1["n"].min()) < MIN_MODELS:
        acc = _cannot("ImageNet top-1 accuracy", f"n = {int(top1['n'].min())} architectures with a known top-1")
    else:
        acc = "; ".join(f"{METRIC_LABELS[m]} r = {_f(top1.loc[m, 'rho'])} (p = {_p(top1.loc[m, 'p'])}, "
                        f"n = {int(top1.loc[m, 'n'])})" for m in METRICS)
    text = (f"Of {n} ImageNet-trained architectures, {best} ranks first overall (mean of the two metrics, "
            f"{_f(overall['mean_score'].iloc[0])}). Depth (number of layers) against score, trained and random "
            f"variants pooled: {depth}. ImageNet top-1 accuracy against the trained score: {acc}.")
    contrast = stats.class_contrast(run, "Transformer", equal_var=False).set_index("metric")
    n_t, n_o = int(contrast["n_class"].iloc[0]), int(contrast["n_other"].iloc[0])
    if min(n_t, n_o) < MIN_MODELS:
        text += " Transformers against the others: " + _cannot(
            "transformers against other architectures", f"n = {n_t} transformers and {n_o} others")
    else:
        text += " Transformers against the others (Welch's t): " + "; ".join(
            f"{METRIC_LABELS[m]} t({_f(contrast.loc[m, 'df'], 1)}) = {_f(contrast.loc[m, 't'], 2)}, "
            f"p = {_p(contrast.loc[m, 'p'])}, g = {_f(contrast.loc[m, 'hedges_g'], 2)}" for m in METRICS
        ) + f" (n = {n_t} and {n_o})."
    return _summary(paper, text)


# --------------------------------------------------------------------------- section 3.4
def taskonomy(run: Run) -> str:
    """Which Taskonomy tasks predict best (section 3.4, Figure 2).

    The trained encoders ranked by each metric and by their mean (the overall ranking of
    section 2.5, :func:`mbutils.stats.taskonomy_ranking`): the best encoder, its rank per
    metric, and the top three per metric with their clusters.

    Parameters
    ----------
    run : mbutils.results.Run

    Returns
    -------
    str  markdown.
    """
    paper = ("2D segmentation is the best Taskonomy encoder overall, ranking first on SRP-Ridge Max and "
             "second on RSA Max; 2D tasks (keypoints, autoencoding, inpainting) dominate SRP-Ridge Max, while "
             "on RSA Max the other 2D tasks fall to the bottom and the semantic tasks (object classification, "
             "semantic segmentation) rise to second and third (section 3.4, Figure 2).")
    ranking = stats.taskonomy_ranking(run)
    n = len(ranking)
    if n < MIN_MODELS:
        return _summary(paper, _cannot("Taskonomy encoders", f"n = {n} trained Taskonomy encoders", first=True))
    best = ranking.iloc[0]
    tops = []
    for m in METRICS:
        top3 = ranking.sort_values([f"{m}_rank", "model"]).head(3)
        tops.append(f"{METRIC_LABELS[m]}: " + ", ".join(f"{nm} ({cl})" for nm, cl in
                                                         zip(_names(run, top3["model"]), top3["task_cluster"])))
    text = (f"Of {n} trained encoders, {_names(run, [best['model']])[0]} ({best['task_cluster']}) ranks first "
            f"overall (mean of the two metrics, {_f(best['mean_score'])}), ranking "
            + " and ".join(f"{int(best[f'{m}_rank'])} on {METRIC_LABELS[m]}" for m in METRICS)
            + ". Top three: " + "; ".join(tops) + ".")
    return _summary(paper, text)


# --------------------------------------------------------------------------- section 3.5
def baselines(run: Run) -> str:
    """Non-neural baselines beside the trained networks (section 3.5).

    Parameters
    ----------
    run : mbutils.results.Run

    Returns
    -------
    str  markdown.
    """
    paper = ("Non-neural baselines fail to predict cortical activity: on SRP-Ridge Max the Gabor filter bank "
             "scores 0.032, GIST 0.026 and the random Fourier features (max over 600 draws of 4096 features) "
             "-0.014 (section 3.5).")
    ms = model_summary(run, metric="srp_ridge")
    base = ms[ms["family"] == "baseline"].set_index("model")["score"]
    nets = ms[ms["family"].isin(["imagenet", "taskonomy"]) & (ms["train_type"] == "trained")]["score"]
    if not len(base):
        return _summary(paper, "This run scored no baseline.")
    values = ", ".join(f"{nm} {_f(v)}" for nm, v in zip(_names(run, base.index), base))
    if len(nets) < MIN_MODELS:
        return _summary(paper, f"On SRP-Ridge Max: {values}; against the networks "
                        + _cannot("baselines against trained networks", f"n = {len(nets)} trained networks"))
    below = int((nets > base.max()).sum())
    return _summary(paper, f"On SRP-Ridge Max: {values}. {below} of {len(nets)} trained networks "
                    f"(median {_f(float(nets.median()))}) score above the best baseline.")


# --------------------------------------------------------------------------- section 3.6
def training_vs_architecture(run: Run) -> str:
    """Range of scores across architectures against the range across tasks (section 3.6).

    Uses :func:`mbutils.stats.score_ranges`: every trained model (``subset == "all"``), and for
    the ImageNet architectures also the range without the normalizer-free networks where the run
    has some.

    Parameters
    ----------
    run : mbutils.results.Run

    Returns
    -------
    str  markdown.
    """
    paper = ("The range between the best and worst ImageNet-trained architecture (SRP-Ridge Max 0.088; RSA Max "
             "0.575, or 0.111 without the two normalizer-free outliers) is about as large as or slightly larger "
             "than the range across Taskonomy encoders (0.064 and 0.109): architecture seems to matter slightly "
             "more than the task, ambiguously (section 3.6).")
    every = stats.score_ranges(run)
    ranges = every[every["subset"] == "all"]
    no_nf = every[(every["subset"] == "without normalizer-free") & (every["family"] == "imagenet")]
    no_nf = no_nf.set_index("metric")
    counts = {fam: int(ranges.loc[ranges["family"] == fam, "n_models"].max()) if (ranges["family"] == fam).any() else 0
              for fam in ("imagenet", "taskonomy")}
    if min(counts.values()) < MIN_MODELS:
        return _summary(paper, _cannot("architecture against task", f"n = {counts['imagenet']} ImageNet-trained "
                                             f"architectures and {counts['taskonomy']} trained Taskonomy encoders", first=True))
    r = ranges.set_index(["family", "metric"])["range"]
    parts = []
    for m in METRICS:
        nf = ""
        if m in no_nf.index and int(no_nf.loc[m, "n_models"]) < counts["imagenet"]:
            nf = (f" ({_f(no_nf.loc[m, 'range'])} without the {counts['imagenet'] - int(no_nf.loc[m, 'n_models'])} "
                  "normalizer-free)")
        parts.append(f"{METRIC_LABELS[m]}: {_f(r[('imagenet', m)])} across architectures{nf}, "
                     f"{_f(r[('taskonomy', m)])} across tasks "
                     f"({'architecture' if r[('imagenet', m)] > r[('taskonomy', m)] else 'task'} wider)")
    return _summary(paper, "Ranges (best minus worst): " + "; ".join(parts)
                    + f" (n = {counts['imagenet']} architectures, {counts['taskonomy']} encoders).")


# --------------------------------------------------------------------------- section 3.7
def layer_depth(run: Run) -> str:
    """Relative depth of the most predictive layers (section 3.7, Figure 4).

    The peak of the lowess curve through all ImageNet-trained models' layer scores (averaged
    over areas, 100 depth bins, span 2/3; :func:`mbutils.stats.depth_peak`), per metric; and per
    Taskonomy cluster.

    Parameters
    ----------
    run : mbutils.results.Run

    Returns
    -------
    str  markdown.
    """
    paper = ("Across ImageNet-trained architectures, on both metrics, the most predictive features lie about a "
             "third of the way into the model (the peaks of the lowess curves); among Taskonomy encoders, 2D and "
             "geometric tasks give their best features in earlier layers, 3D and semantic tasks in intermediate "
             "and later ones (section 3.7, Figure 4).")
    n = len(run.family("imagenet", "trained"))
    if n < MIN_MODELS:
        text = _cannot("layer depth", f"n = {n} ImageNet-trained architectures", first=True)
    else:
        pk = stats.depth_peak(run, "imagenet").set_index("metric")["peak_depth"]
        text = (f"Over {n} ImageNet-trained architectures the lowess curve peaks at relative depth "
                + " and ".join(f"{_f(pk[m], 3)} ({METRIC_LABELS[m]})" for m in METRICS if m in pk.index) + ".")
    n_tax = len(run.family("taskonomy", "trained"))
    if n_tax >= MIN_MODELS:
        pk = stats.depth_peak(run, "taskonomy", by="task_cluster")
        per = []
        for m in METRICS:
            g = pk[pk["metric"] == m].sort_values("peak_depth")
            per.append(f"{METRIC_LABELS[m]}: " + ", ".join(f"{r.group} {_f(r.peak_depth, 3)}" for r in g.itertuples()))
        text += f" Taskonomy clusters' peaks, earliest first ({n_tax} encoders): " + "; ".join(per) + "."
    else:
        text += " Taskonomy clusters: " + _cannot("Taskonomy clusters", f"n = {n_tax} trained Taskonomy encoders")
    return _summary(paper, text)


# --------------------------------------------------------------------------- section 3.8
def areas(run: Run) -> str:
    """Differences across cortical areas (section 3.8, Figure 3).

    Left: the mean relative depth of the best layer per area over ImageNet-trained models
    (:func:`mbutils.stats.best_layer_depths`), on RSA Max as in Figure 3; right: the Taskonomy
    cluster with the highest mean score in each area (:func:`mbutils.stats.group_scores`; random
    variants as the cluster "Random").

    Parameters
    ----------
    run : mbutils.results.Run

    Returns
    -------
    str  markdown.
    """
    paper = ("The depth of the best layer rises loosely along the anatomical hierarchy, from the primary visual "
             "area (VISp, earliest) to the anteromedial and posteromedial areas (VISam, VISpm, latest), while "
             "Taskonomic clusters score consistently across areas, semantic tasks on top everywhere but VISrl "
             "(RSA Max; section 3.8, Figure 3).")
    n = len(run.family("imagenet", "trained"))
    has_rsa = "rsa" in set(run.scores["metric"])
    if not has_rsa:
        text = ("This run has no RSA scores (its metrics: "
                + ", ".join(sorted(set(run.scores["metric"]))) + "), so the RSA Max claims of this section "
                "cannot be tested.")
    elif n < MIN_MODELS:
        text = _cannot("best-layer depth per area", f"n = {n} ImageNet-trained architectures", first=True)
    else:
        d = stats.best_layer_depths(run, family="imagenet")
        d = d[d["metric"] == "rsa"].set_index("area")["mean_depth"]
        order = d.sort_values()
        vp = f"VISp {_f(d['VISp'], 2)}; " if "VISp" in d.index else ""
        text = (f"On RSA Max, over {n} ImageNet-trained architectures, the best layer's mean relative depth is "
                f"{vp}earliest in {order.index[0]} ({_f(order.iloc[0], 2)}) and latest in {order.index[-1]} "
                f"({_f(order.iloc[-1], 2)}).")
    n_tax = len(run.family("taskonomy", "trained"))
    if not has_rsa:
        pass
    elif n_tax < MIN_MODELS:
        text += " Taskonomy clusters by area: " + _cannot("Taskonomy clusters by area",
                                                          f"n = {n_tax} trained Taskonomy encoders")
    else:
        gs = stats.group_scores(run, grouping="area", family="taskonomy")
        gs = gs[gs["metric"] == "rsa"]
        top = gs.groupby(["group", "label"])["score"].mean().reset_index()
        top = top.loc[top.groupby("group")["score"].idxmax()].set_index("group")["label"]
        counts = top.value_counts()
        text += (f" The top Taskonomy cluster on RSA Max ({n_tax} encoders) is {counts.index[0]} in "
                 f"{int(counts.iloc[0])} of {len(top)} areas ("
                 + ", ".join(f"{a} {lab}" for a, lab in top.items()) + ").")
    return _summary(paper, text)


# --------------------------------------------------------------------------- section 3.9
def rsa_vs_regression(run: Run) -> str:
    """Agreement between RSA and neural regression (section 3.9).

    The Spearman correlation of the two metrics' model rankings
    (:func:`mbutils.stats.metric_agreement`) and the mean layer-wise Spearman per (model, area)
    with its bootstrapped 95% CI (:func:`mbutils.stats.layerwise_agreement`), with and without
    the random models.

    Parameters
    ----------
    run : mbutils.results.Run

    Returns
    -------
    str  markdown.
    """
    paper = ("RSA and neural regression agree: their model rankings correlate at Spearman r = 0.56 with the "
             "random models and 0.59 without, and layer by layer, per model and area, at a mean r of 0.468 "
             "[0.447, 0.489] with and 0.626 [0.613, 0.639] without them; the regression scores are lower than the "
             "RSA scores (section 3.9).")
    agree = stats.metric_agreement(run).set_index("models")
    _, means = stats.layerwise_agreement(run)
    means = means.set_index("models")
    parts = []
    for label in ("with random", "without random"):
        n = int(agree.loc[label, "n"])
        if n < MIN_MODELS:
            parts.append(f"{label} models, " + _cannot("the ranking agreement", f"n = {n} models"))
            continue
        m = means.loc[label]
        parts.append(f"{label} models, rankings r = {_f(agree.loc[label, 'rho'])} (p = {_p(agree.loc[label, 'p'])}, "
                     f"n = {n}) and layer-wise mean r = {_f(m['mean_rho'])} [{_f(m['ci_low'])}, {_f(m['ci_high'])}] "
                     f"over {int(m['n'])} (model, area) pairs")
    return _summary(paper, "In this run, " + "; ".join(parts) + ".")


# --------------------------------------------------------------------------- ground truth
def ground_truth(run: Run, ground_truth: dict) -> str:
    """Recovery of the synthetic mouse's planted layers (no counterpart in the paper).

    Parameters
    ----------
    run : mbutils.results.Run
    ground_truth : dict
        The dataset's ``ground_truth`` attribute (generator model, weights, per area the
        planted layer and relative depth).

    Returns
    -------
    str  markdown.
    """
    paper = ("The paper's recordings have no known ground truth: it validates its regression on the macaque "
             "BrainScore benchmark instead (section 3.1). This page checks the benchmark on a mouse whose "
             "best layers are planted.")
    rec = stats.ground_truth_recovery(run, ground_truth)
    if not len(rec):
        return _summary(paper, f"The generator model {ground_truth.get('model')!r} was not scored in this run.")
    parts = [f"{METRIC_LABELS.get(m, m)} finds the planted layer in {int(g['exact'].sum())} of {len(g)} areas "
             f"(mean |depth error| {_f(float(g['depth_error'].abs().mean()))})" for m, g in rec.groupby("metric")]
    return _summary(paper, "In this run, " + "; ".join(parts) + ".")
