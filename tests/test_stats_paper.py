"""mbutils.stats: the paper's test choices against independent references (pingouin 0.5.5,
statsmodels, scipy, plain float64 loops) and planted effects."""
import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import scipy.stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttest_ind as sm_ttest_ind

from mbutils import stats
from mbutils.testing import fake_metadata, make_fake_results


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(7)
    a = rng.normal(0.3, 0.02, 40)
    b = a - rng.normal(0.05, 0.01, 40)          # paired with a, closely: d_z well above d_av
    c = rng.normal(0.25, 0.08, 9)               # small, wide sample: Welch df far below Student's
    return a, b, c


def test_paired_effect_sizes_match_pingouin(samples):
    a, b, _ = samples
    assert stats.cohens_d_av(a, b) == pytest.approx(pg.compute_effsize(a, b, paired=True, eftype="cohen"), rel=1e-12)
    # d_z: pingouin's one-sample d of the differences
    assert stats.cohens_d_paired(a, b) == pytest.approx(pg.compute_effsize(a - b, 0.0, eftype="cohen"), rel=1e-12)
    res = stats.paired_ttest(a, b)
    ref = pg.ttest(a, b, paired=True)
    assert res.statistic == pytest.approx(ref["T"].iloc[0]) and res.pvalue == pytest.approx(ref["p-val"].iloc[0])
    assert res.df == ref["dof"].iloc[0] == 39
    assert res.test == "paired student"
    assert res.effect_sizes == pytest.approx({"d_z": stats.cohens_d_paired(a, b), "d_av": stats.cohens_d_av(a, b)})
    assert res.effect_sizes["d_av"] == pytest.approx(ref["cohen-d"].iloc[0])
    # d_z is fixed by t; d_av is not
    assert res.statistic == pytest.approx(res.effect_sizes["d_z"] * np.sqrt(40))
    assert res.effect_sizes["d_z"] > 1.5 * res.effect_sizes["d_av"]


def test_independent_effect_sizes_match_pingouin(samples):
    a, _, c = samples
    assert stats.hedges_g(a, c) == pytest.approx(pg.compute_effsize(a, c, eftype="hedges"), rel=1e-3)
    assert stats.cohens_d(a, c) == pytest.approx(pg.compute_effsize(a, c, eftype="cohen"), rel=1e-12)


def test_welch_matches_statsmodels_and_pingouin(samples):
    a, _, c = samples
    res = stats.independent_ttest(c, a, equal_var=False)
    t, p, df = sm_ttest_ind(c, a, usevar="unequal")
    assert (res.statistic, res.pvalue, res.df) == pytest.approx((t, p, df), rel=1e-10)
    ref = pg.ttest(c, a, correction=True)
    assert res.df == pytest.approx(ref["dof"].iloc[0], rel=1e-10)
    assert res.pvalue == pytest.approx(ref["p-val"].iloc[0], rel=1e-10)
    assert res.test == "welch" and res.n == (9, 40)
    assert set(res.effect_sizes) == {"hedges_g", "cohens_d"}
    assert 8 <= res.df < 47  # between min(n) - 1 and n1 + n2 - 2
    assert stats.welch_df(c, a) == pytest.approx(df, rel=1e-10)


def test_student_matches_statsmodels(samples):
    a, _, c = samples
    res = stats.independent_ttest(c, a)
    t, p, df = sm_ttest_ind(c, a, usevar="pooled")
    assert (res.statistic, res.pvalue, res.df) == pytest.approx((t, p, df))
    assert res.test == "student" and res.df == 47


def test_old_constructor_still_works():
    r = stats.TestResult(1.0, 0.5, 3.0, 0.2, "hedges_g", (2, 3))
    assert r.test == "" and r.effect_sizes == {}


def test_spearman_matches_pingouin():
    rng = np.random.default_rng(3)
    x = rng.normal(size=50)
    y = x + rng.normal(size=50)
    rho, p, n = stats.spearman(x, y)
    ref = pg.corr(x, y, method="spearman")
    assert (rho, p) == pytest.approx((ref["r"].iloc[0], ref["p-val"].iloc[0]))
    assert n == 50


def test_pairwise_welch_bonferroni_matches_statsmodels():
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.normal(0, 1, 12), rng.normal(1, 3, 6), rng.normal(2, 0.5, 20)])
    groups = np.array(["a"] * 12 + ["b"] * 6 + ["c"] * 20)
    out = stats.pairwise_ttests(values, groups, equal_var=False)
    assert (out["test"] == "welch").all()
    for r in out.itertuples():
        t, p, df = sm_ttest_ind(values[groups == r.group_a], values[groups == r.group_b], usevar="unequal")
        assert (r.t, r.p, r.df) == pytest.approx((t, p, df))
    assert np.allclose(out["p_adjusted"], multipletests(out["p"], method="bonferroni")[1])
    assert np.allclose(out["p_adjusted"], np.minimum(1, 3 * out["p"]))
    ref = pg.pairwise_tests(data=pd.DataFrame(dict(v=values, g=groups)), dv="v", between="g", correction=True,
                            padjust="bonf")
    assert np.allclose(out["p_adjusted"], ref["p-corr"])


def test_explainable_variance_is_the_squared_reliability():
    # the paper's VISal numbers: RSA Max 0.538 -> R^2 0.289 of explainable 0.773 (reliability sqrt(0.773))
    rel = np.sqrt(0.773)
    assert stats.explainable_variance(rel) == pytest.approx(0.773)
    f = stats.explained_fraction(0.538, rel)
    assert f["r2"] == pytest.approx(0.289, abs=5e-4)
    assert f["fraction"] == pytest.approx(0.289 / 0.773, abs=1e-3)
    assert f["ceiling"] == pytest.approx(np.sqrt(rel))  # our ceiling: sqrt(reliability), another quantity
    assert np.isnan(stats.explainable_variance(-0.1))
    assert np.allclose(stats.explainable_variance([0.5, 0.9]), [0.25, 0.81])


# ----------------------------------------------------------------------------- analyses

@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fake_paper_stats")
    make_fake_results(folder, n_neurons_per_area=2)
    return stats.load_run(folder, metadata=fake_metadata())


def test_depth_peak_is_the_lowess_maximum(fake):
    from statsmodels.nonparametric.smoothers_lowess import lowess

    peaks = stats.depth_peak(fake).set_index("metric")
    assert set(peaks["group"]) == {"all"} and (peaks["n_models"] == 11).all()
    # independent computation: layer scores averaged over areas, binned depths, statsmodels lowess
    s = fake.scores.merge(fake.meta[["family"]], left_on="model", right_index=True)
    s = s[(s["family"] == "imagenet") & (s["train_type"] == "trained") & (s["metric"] == "rsa")]
    layer = s.groupby(["model", "layer", "layer_depth"])["score"].mean().reset_index()
    x = (np.clip(np.ceil(layer["layer_depth"] * 100) - 1, 0, 99) + 0.5) / 100
    fit = lowess(layer["score"], x, frac=2 / 3)
    assert peaks.loc["rsa", "peak_depth"] == pytest.approx(fit[np.argmax(fit[:, 1]), 0])
    # planted: best layers between VISp's 0.2 and VISam's 0.5
    assert 0.2 <= peaks.loc["rsa", "peak_depth"] <= 0.5
    by = stats.depth_peak(fake, family="taskonomy", by="task_cluster")
    assert set(by["group"]) == {"2D", "3D", "Semantic", "Geometric"}
    assert by.set_index(["metric", "group"]).loc[("rsa", "2D"), "n_models"] == 3  # denoising merged into 2D


def test_taskonomy_ranking_by_mean_score(fake):
    r = stats.taskonomy_ranking(fake)
    ms = stats.model_summary(fake, family="taskonomy", train_type="trained")
    mean = ms.groupby("model")["score"].mean().sort_values(ascending=False)
    assert r["model"].tolist() == mean.index.tolist()
    assert np.allclose(r["mean_score"], mean.to_numpy())
    assert r["rank"].tolist() == list(range(1, len(r) + 1))
    rsa = ms[ms.metric == "rsa"].set_index("model")["score"].rank(ascending=False)
    assert np.allclose(r.set_index("model")["rsa_rank"], rsa.reindex(r["model"]))


def test_score_ranges_without_normalizer_free(tmp_path):
    from mbutils.testing import FAKE_MODELS

    specs = {k: v for k, v in FAKE_MODELS.items() if k in ("resnet18", "resnet50", "alexnet")}
    specs["nf_resnet50"] = ("timm", "Convolutional", "imagenet", "Semantic", 25e6, 80.0, 30, 0.15, -0.10)
    specs["eca_nfnet_l0"] = ("timm", "Convolutional", "imagenet", "Semantic", 24e6, 82.0, 30, 0.15, -0.05)
    make_fake_results(tmp_path, n_neurons_per_area=2, specs=specs)
    run = stats.load_run(tmp_path, metadata=fake_metadata(specs))
    r = stats.score_ranges(run, families=("imagenet",)).set_index(["metric", "subset"])
    assert r.loc[("rsa", "all"), "worst_model"] == "nf_resnet50"
    assert r.loc[("rsa", "without normalizer-free"), "n_models"] == 3
    assert r.loc[("rsa", "without normalizer-free"), "worst_model"] == "alexnet"
    ms = stats.model_summary(run, metric="rsa", family="imagenet", train_type="trained").set_index("model")["score"]
    keep = ms.drop(["nf_resnet50", "eca_nfnet_l0"])
    assert r.loc[("rsa", "without normalizer-free"), "range"] == pytest.approx(keep.max() - keep.min())
    assert [stats.is_normalizer_free(n) for n in ("nfnet_l0", "dm_nfnet_f0", "resnet50", "inception_v3")] == \
        [True, True, False, False]


def test_training_gain_readings(fake):
    diffs, tests = stats.training_gain_by_class(fake)
    assert set(tests["reading"]) == {"between classes", "within class"}
    w = tests[(tests["reading"] == "within class") & (tests["metric"] == "rsa")].set_index("group_a")
    d = diffs[(diffs["metric"] == "rsa") & (diffs["model_class"] == "Convolutional")]
    tvr = stats.trained_vs_random(fake)["rsa"]["table"].set_index("model").loc[d["model"]]
    ref = scipy.stats.ttest_rel(tvr["trained"], tvr["random"])
    assert w.loc["Convolutional", "p"] == pytest.approx(ref.pvalue)
    assert np.allclose(w["p_adjusted"], np.minimum(1, w["p"] * len(w)))
    b = tests[(tests["reading"] == "between classes")]
    assert (b["test"] == "welch").all()
