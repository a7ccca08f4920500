"""mbutils.findings: each page's closing summary prints the statistics of the run, computed here
independently (scipy, statsmodels, pingouin, numpy from the stored tables), and says that a run
too small for a statistic cannot test the claim instead of printing it."""
import dataclasses

import numpy as np
import pandas as pd
import pingouin
import pytest
import scipy.stats
from statsmodels.nonparametric.smoothers_lowess import lowess as sm_lowess

from mbutils import findings, stats
from mbutils.testing import AREAS, fake_metadata, make_fake_dataset, make_fake_results

METRICS = ("srp_ridge", "rsa")


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    folder = tmp_path_factory.mktemp("findings_full")
    make_fake_results(folder, n_neurons_per_area=3)
    make_fake_dataset(folder / "ds.nc", n_neurons_per_area=3)
    return stats.load_run(folder, metadata=fake_metadata()), folder


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("findings_small")
    make_fake_results(folder, models=["alexnet", "vit_small_patch16_224", "segment_unsup2d",
                                      "class_object", "gabor"], n_neurons_per_area=3)
    return stats.load_run(folder, metadata=fake_metadata())


def grow(run, family, n_new, model_class=None, seed=1, names=None):
    """The run with ``n_new`` more models of ``family`` (copies of its models, each shifted by its own
    random offset in every score table), named ``<model>_copy<i>`` or ``names``."""
    rng = np.random.default_rng(seed)
    sources = [m for m in run.meta.index if run.meta.loc[m, "family"] == family
               and (model_class is None or run.meta.loc[m, "model_class"] == model_class)]
    tables = {name: [getattr(run, name)] for name in ("scores", "scores_groups", "summary")}
    meta = [run.meta]
    for i in range(n_new):
        src, shift = sources[i % len(sources)], rng.normal(0, 0.02)
        new = names[i] if names else f"{src}_copy{i}"
        for name, parts in tables.items():
            t = getattr(run, name)
            t = t[t["model"] == src].copy()
            t["model"] = new
            col = "max_score" if name == "summary" else "score"
            t[col] = t[col] + shift + rng.normal(0, 0.002, len(t))
            parts.append(t)
        row = run.meta.loc[[src]].copy()
        row.index = [new]
        row["display_name"] = new
        meta.append(row)
    meta = pd.concat(meta)
    meta.index.name = "model"
    return dataclasses.replace(run, meta=meta, **{k: pd.concat(v, ignore_index=True) for k, v in tables.items()})


def means(run, family, train_type="trained"):
    """Per model and metric, the mean over areas of the layer-max score, from the summary table."""
    s = run.summary.merge(run.meta[["family"]], left_on="model", right_index=True)
    s = s[(s["family"] == family) & (s["train_type"] == train_type)]
    return s.groupby(["model", "metric"])["max_score"].mean().unstack("metric")


def run_part(text):
    assert text.startswith("**What the paper found.**")
    return text.split("**What this run shows.**")[1]


# --------------------------------------------------------------------------- 3.2
def test_trained_vs_random_numbers(full):
    run, _ = full
    text = run_part(findings.trained_vs_random(run))
    tr, ra = means(run, "imagenet", "trained"), means(run, "imagenet", "random")
    for metric in METRICS:
        a, b = tr[metric], ra[metric].reindex(tr.index)
        res = pingouin.ttest(a.to_numpy(), b.to_numpy(), paired=True)
        t, p = float(res["T"].iloc[0]), float(res["p-val"].iloc[0])
        assert np.isclose(t, scipy.stats.ttest_rel(a, b).statistic)
        d = a - b
        dz = d.mean() / d.std(ddof=1)
        dav = pingouin.compute_effsize(a.to_numpy(), b.to_numpy(), paired=True, eftype="cohen")
        k = int((b >= a).sum())
        assert f"beats the random one in {len(a) - k} of {len(a)} architectures" in text
        assert f"paired t({len(a) - 1}) = {t:.2f}, p = {p:.3g}, d_z = {dz:.2f}, d_av = {dav:.2f}" in text
    # planted: the random alexnet and vgg16 beat their trained variants on SRP-Ridge only
    assert "random matches or beats trained in 2: alexnet, vgg16" in text
    assert "random matches or beats trained in 0: none" in text


def test_trained_vs_random_too_small(small):
    text = run_part(findings.trained_vs_random(small))
    assert text.count("cannot test the claim") == 2 and "n = 2 architectures scored both" in text
    assert "paired t" not in text and "p =" not in text


# --------------------------------------------------------------------------- 3.3
def test_architectures_numbers(full):
    run, _ = full
    text = run_part(findings.architectures(run))
    m = means(run, "imagenet")
    overall = m[list(METRICS)].mean(axis=1)
    assert f"Of {len(m)} ImageNet-trained architectures, {overall.idxmax()} ranks first" in text
    assert overall.idxmax() == "inception_resnet_v2"  # planted best
    # depth against score over the trained and random variants pooled
    pooled = pd.concat([m, means(run, "imagenet", "random")])
    depth = run.scores.groupby("model")["layer"].nunique().reindex(pooled.index)
    for metric in METRICS:
        rho, p = scipy.stats.spearmanr(depth, pooled[metric])
        assert f"r = {rho:.3f} (p = {p:.3g}, n = {len(pooled)})" in text
    top1 = run.meta["imagenet_top1"].reindex(m.index).astype(float)
    for metric in METRICS:
        rho, p = scipy.stats.spearmanr(top1, m[metric])
        assert f"r = {rho:.3f} (p = {p:.3g}, n = {len(m)})" in text.split("top-1")[1]
    # 3 transformers: the contrast is not printed
    assert "n = 3 transformers and 8 others" in text and "g =" not in text


def test_architectures_transformer_contrast(full):
    run = grow(grow(full[0], "imagenet", 7, model_class="Transformer"), "imagenet", 2,
               model_class="Convolutional", seed=2)
    text = run_part(findings.architectures(run))
    m = means(run, "imagenet").join(run.meta["model_class"])
    is_t = m["model_class"] == "Transformer"
    assert is_t.sum() == 10 and (~is_t).sum() == 10
    for metric in METRICS:
        a, b = m.loc[is_t, metric].to_numpy(), m.loc[~is_t, metric].to_numpy()
        res = pingouin.ttest(a, b, correction=True)  # Welch's
        t, df, p = float(res["T"].iloc[0]), float(res["dof"].iloc[0]), float(res["p-val"].iloc[0])
        assert np.isclose(t, scipy.stats.ttest_ind(a, b, equal_var=False).statistic)
        g = pingouin.compute_effsize(a, b, eftype="hedges")
        assert f"t({df:.1f}) = {t:.2f}, p = {p:.3g}, g = {g:.2f}" in text
    assert "(n = 10 and 10)" in text


def test_architectures_too_small(small):
    text = run_part(findings.architectures(small))
    assert "cannot test" in text and "n = 2 ImageNet-trained architectures" in text and "r =" not in text


# --------------------------------------------------------------------------- 3.4
def test_taskonomy_numbers(full):
    run = grow(full[0], "taskonomy", 5)
    text = run_part(findings.taskonomy(run))
    m = means(run, "taskonomy")
    overall = m[list(METRICS)].mean(axis=1)
    best = overall.idxmax()
    ranks = {metric: int((m[metric] > m.loc[best, metric]).sum()) + 1 for metric in METRICS}
    assert f"Of {len(m)} trained encoders, {best} ({run.meta.loc[best, 'task_cluster']}) ranks first overall" in text
    assert f"{overall.max():.3f}" in text
    assert f"ranking {ranks['srp_ridge']} on SRP-Ridge Max and {ranks['rsa']} on RSA Max" in text
    for metric, label in (("srp_ridge", "SRP-Ridge Max"), ("rsa", "RSA Max")):
        top = m[metric].sort_values(ascending=False).index[0]
        assert f"{label}: {top} ({run.meta.loc[top, 'task_cluster']})" in text


def test_taskonomy_too_small(full):
    text = run_part(findings.taskonomy(full[0]))
    assert "cannot test" in text and "n = 6 trained Taskonomy encoders" in text and "ranks first" not in text


# --------------------------------------------------------------------------- 3.5
def test_baselines_numbers(full):
    run, _ = full
    text = run_part(findings.baselines(run))
    s = run.summary[run.summary["metric"] == "srp_ridge"]
    per = s.groupby(["model", "train_type"])["max_score"].mean()
    fam = run.meta["family"]
    base = {m: v for (m, _), v in per.items() if fam[m] == "baseline"}
    nets = np.array([v for (m, tt), v in per.items() if fam[m] in ("imagenet", "taskonomy") and tt == "trained"])
    for name, value in base.items():
        assert f"{name} {value:.3f}" in text
    assert f"{int((nets > max(base.values())).sum())} of {len(nets)} trained networks (median {np.median(nets):.3f})" in text


def test_baselines_too_few_networks(small):
    text = run_part(findings.baselines(small))
    assert "gabor" in text and "n = 4 trained networks" in text and "cannot test" in text


# --------------------------------------------------------------------------- 3.6
def test_training_vs_architecture_numbers(full):
    run = grow(full[0], "taskonomy", 4)
    text = run_part(findings.training_vs_architecture(run))
    for metric, label in (("srp_ridge", "SRP-Ridge Max"), ("rsa", "RSA Max")):
        r_arch = means(run, "imagenet")[metric].agg(lambda v: v.max() - v.min())
        r_task = means(run, "taskonomy")[metric].agg(lambda v: v.max() - v.min())
        wider = "architecture" if r_arch > r_task else "task"
        assert f"{label}: {r_arch:.3f} across architectures, {r_task:.3f} across tasks ({wider} wider)" in text
    assert "(n = 11 architectures, 10 encoders)" in text and "normalizer-free" not in text
    assert "n = 11 ImageNet-trained architectures and 6 trained Taskonomy encoders" in run_part(
        findings.training_vs_architecture(full[0]))


def test_training_vs_architecture_without_normalizer_free(full):
    run = grow(grow(full[0], "taskonomy", 4), "imagenet", 2, names=["nf_resnet50", "nfnet_l0"], seed=3)
    text = run_part(findings.training_vs_architecture(run))
    m = means(run, "imagenet")
    keep = m.drop(index=["nf_resnet50", "nfnet_l0"])
    for metric, label in (("srp_ridge", "SRP-Ridge Max"), ("rsa", "RSA Max")):
        full_range, kept = m[metric].max() - m[metric].min(), keep[metric].max() - keep[metric].min()
        assert f"{label}: {full_range:.3f} across architectures ({kept:.3f} without the 2 normalizer-free)" in text


# --------------------------------------------------------------------------- 3.7
def _lowess_peak(scores):
    layer = scores.groupby(["model", "layer", "layer_depth"])["score"].mean().reset_index()
    x = (np.clip(np.ceil(layer["layer_depth"].to_numpy() * 100) - 1, 0, 99) + 0.5) / 100
    out = sm_lowess(layer["score"].to_numpy(), x, frac=2 / 3, return_sorted=True)
    return out[np.argmax(out[:, 1]), 0]


def test_layer_depth_numbers(full):
    run = grow(full[0], "taskonomy", 6)
    text = run_part(findings.layer_depth(run))
    s = run.scores.merge(run.meta[["family", "task_cluster"]], left_on="model", right_index=True)
    s = s[s["train_type"] == "trained"]
    for metric, label in (("srp_ridge", "SRP-Ridge Max"), ("rsa", "RSA Max")):
        peak = _lowess_peak(s[(s["family"] == "imagenet") & (s["metric"] == metric)])
        assert f"{peak:.3f} ({label})" in text
        assert 0.2 <= peak <= 0.5  # the planted best depths lie between VISp's 0.2 and VISam's 0.5
        for cluster in ("2D", "Semantic", "3D", "Geometric"):
            g = s[(s["family"] == "taskonomy") & (s["metric"] == metric) & (s["task_cluster"] == cluster)]
            assert f"{cluster} {_lowess_peak(g):.3f}" in text
    assert "(12 encoders)" in text


def test_layer_depth_too_small(small):
    text = run_part(findings.layer_depth(small))
    assert text.count("cannot test") == 2 and "n = 2 ImageNet-trained" in text and "peaks at" not in text


# --------------------------------------------------------------------------- 3.8
def test_areas_numbers(full):
    run = grow(full[0], "taskonomy", 4)
    text = run_part(findings.areas(run))
    s = run.summary.merge(run.meta[["family"]], left_on="model", right_index=True)
    d = s[(s["family"] == "imagenet") & (s["train_type"] == "trained") & (s["metric"] == "rsa")]
    d = d.groupby("area")["best_layer_depth"].mean()
    assert f"earliest in {d.idxmin()} ({d.min():.2f}) and latest in {d.idxmax()} ({d.max():.2f})" in text
    assert (d.idxmin(), d.idxmax()) == ("VISp", "VISam")  # planted hierarchy
    # top cluster per area over the Taskonomy models' area maxima (random variants as "Random")
    t = run.scores.merge(run.meta[["family", "task_cluster"]], left_on="model", right_index=True)
    t = t[(t["family"] == "taskonomy") & (t["metric"] == "rsa")]
    mx = t.groupby(["model", "train_type", "area", "task_cluster"])["score"].max().reset_index()
    mx["label"] = np.where(mx["train_type"] == "random", "Random", mx["task_cluster"])
    top = mx.groupby(["area", "label"])["score"].mean().unstack("label").idxmax(axis=1)
    assert f"is {top.value_counts().index[0]} in {top.value_counts().iloc[0]} of {len(AREAS)} areas" in text
    for area, label in top.items():
        assert f"{area} {label}" in text


# --------------------------------------------------------------------------- 3.9
def test_rsa_vs_regression_numbers(full):
    run, _ = full
    text = run_part(findings.rsa_vs_regression(run))
    s = run.summary.merge(run.meta[["family"]], left_on="model", right_index=True)
    s = s[s["family"].isin(["imagenet", "taskonomy"])]
    wide = s.groupby(["model", "train_type", "metric"])["max_score"].mean().unstack("metric")
    layers = run.scores.merge(run.meta[["family"]], left_on="model", right_index=True)
    layers = layers[layers["family"].isin(["imagenet", "taskonomy"])]
    lw = layers.pivot_table(index=["model", "train_type", "area", "layer"], columns="metric", values="score")
    rhos = lw.groupby(level=[0, 1, 2]).apply(lambda g: scipy.stats.spearmanr(g["srp_ridge"], g["rsa"])[0])
    for label, keep in (("with random", slice(None)), ("without random", "trained")):
        w = wide if label == "with random" else wide.xs("trained", level="train_type", drop_level=False)
        rho, p = scipy.stats.spearmanr(w["srp_ridge"], w["rsa"])
        r = rhos if label == "with random" else rhos.xs("trained", level=1, drop_level=False)
        assert f"{label} models, rankings r = {rho:.3f} (p = {p:.3g}, n = {len(w)})" in text
        assert f"layer-wise mean r = {r.mean():.3f} [" in text and f"over {len(r)} (model, area) pairs" in text


def test_rsa_vs_regression_too_small(small):
    text = run_part(findings.rsa_vs_regression(small))
    assert "with random models, this run cannot test" in text and "n = 8 models" in text
    assert "without random models, this run cannot test" in text and "n = 4 models" in text


# --------------------------------------------------------------------------- ground truth, scope
def test_ground_truth_counts(full):
    run, folder = full
    gt = stats.dataset_label(folder / "ds.nc")["ground_truth"]
    text = run_part(findings.ground_truth(run, gt))
    s = run.summary[(run.summary["model"] == "efficientnet_lite0") & (run.summary["train_type"] == "trained")]
    for metric, label in (("srp_ridge", "SRP-Ridge Max"), ("rsa", "RSA Max")):
        g = s[s["metric"] == metric].set_index("area")
        exact = sum(g.loc[a, "best_layer"] == gt["areas"][a]["layer"] for a in AREAS)
        err = np.mean([abs(g.loc[a, "best_layer_depth"] - gt["areas"][a]["depth"]) for a in AREAS])
        assert f"{label} finds the planted layer in {exact} of {len(AREAS)} areas (mean |depth error| {err:.3f})" in text
    assert "was not scored" in run_part(findings.ground_truth(run, dict(gt, model="resnet50_absent")))


def test_run_scope_counts(full, small):
    text = run_part(findings.run_scope(full[0]))
    assert "11 ImageNet-trained and 11 randomly initialised ImageNet architectures (11 with both" in text
    assert "6 trained Taskonomy encoders" in text and "3 baseline(s)" in text
    assert "2 ImageNet-trained and 2 randomly" in run_part(findings.run_scope(small))
