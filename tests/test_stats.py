"""mbutils.stats: statistics against hand computations and scipy/statsmodels; analyses on a fake
sweep with planted effects."""
import numpy as np
import pytest
import scipy.stats

from mbutils import stats
from mbutils.testing import AREAS, RANDOM_BEATS_TRAINED, fake_metadata, make_fake_dataset, make_fake_results


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fake_results")
    reliability = make_fake_results(folder, n_neurons_per_area=5)
    make_fake_dataset(folder / "ds.nc", n_neurons_per_area=5)
    run = stats.load_run(folder, metadata=fake_metadata())
    return run, reliability, folder


# ----------------------------------------------------------------------------- effect sizes

def test_cohens_d_paired_hand_computation():
    a, b = [1, 2, 3, 4], [0.5, 1, 2.5, 2]
    # differences 0.5, 1, 0.5, 2: mean 1, sample sd sqrt(1.5 / 3)
    assert stats.cohens_d_paired(a, b) == pytest.approx(1 / np.sqrt(0.5))


def test_hedges_g_hand_computation():
    a, b = [1, 2, 3], [2, 4, 6]
    # means 2, 4; variances 1, 4; pooled sd sqrt((2*1 + 2*4) / 4); J = 1 - 3 / (4*6 - 9)
    expected = (1 - 3 / 15) * (2 - 4) / np.sqrt(2.5)
    assert stats.hedges_g(a, b) == pytest.approx(expected)
    assert expected == pytest.approx(-1.0119289, rel=1e-6)


def test_effect_size_validation():
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        stats.cohens_d_paired([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2 values per sample for Hedges. g, got 1 and 3"):
        stats.hedges_g([1], [1, 2, 3])
    with pytest.raises(ValueError, match="must be 1-D"):
        stats.hedges_g(np.ones((2, 2)), [1, 2])


def test_paired_ttest_matches_scipy_and_dz_relation():
    rng = np.random.default_rng(0)
    a = rng.normal(1, 1, 12)
    b = a - rng.normal(0.5, 0.3, 12)
    res = stats.paired_ttest(a, b)
    ref = scipy.stats.ttest_rel(a, b)
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.pvalue == pytest.approx(ref.pvalue)
    assert res.df == 11
    # for paired samples t = d_z * sqrt(n)
    assert res.statistic == pytest.approx(res.effect_size * np.sqrt(12))


def test_independent_ttest_matches_scipy():
    a, b = np.array([0.2, 0.4, 0.3, 0.5]), np.array([0.1, 0.15, 0.05, 0.2, 0.12])
    res = stats.independent_ttest(a, b)
    ref = scipy.stats.ttest_ind(a, b)
    assert (res.statistic, res.pvalue) == pytest.approx((ref.statistic, ref.pvalue))
    assert res.effect_size == pytest.approx(stats.hedges_g(a, b))
    assert res.n == (4, 5)


def test_spearman_drops_nan_pairs():
    x = np.array([1, 2, np.nan, 4, 5, 6.0])
    y = np.array([2, 1, 3, 5, np.nan, 7.0])
    rho, p, n = stats.spearman(x, y)
    ref = scipy.stats.spearmanr([1, 2, 4, 6], [2, 1, 5, 7])
    assert n == 4
    assert rho == pytest.approx(ref.correlation)
    assert p == pytest.approx(_pairings_p([1, 2, 4, 6], [2, 1, 5, 7]))
    x, y = np.arange(12.0), np.r_[np.arange(11.0), -1.0]     # from 9 pairs on: scipy's p
    assert stats.spearman(x, y)[1] == pytest.approx(scipy.stats.spearmanr(x, y).pvalue)
    assert np.isnan(stats.spearman([1, 2], [1, 2])[0])


def test_bootstrap_ci_matches_scipy_and_degenerate_cases():
    v = np.array([0.1, 0.3, 0.2, 0.5, 0.4, 0.25])
    lo, hi = stats.bootstrap_ci(v, n_resamples=999, seed=3)
    ref = scipy.stats.bootstrap((v,), np.mean, n_resamples=999, method="percentile",
                                random_state=np.random.default_rng(3))
    assert (lo, hi) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert lo < v.mean() < hi
    assert np.isnan(stats.bootstrap_ci([0.3])[0])
    assert stats.bootstrap_ci([0.3, 0.3, np.nan]) == pytest.approx((0.3, 0.3))
    with pytest.raises(ValueError, match="confidence_level=1.5"):
        stats.bootstrap_ci(v, confidence_level=1.5)


def test_lowess_matches_statsmodels_and_fits_a_line():
    from statsmodels.nonparametric.smoothers_lowess import lowess as sm_lowess

    x = np.linspace(0, 1, 30)
    xs, ys = stats.lowess(x[::-1], 2 * x[::-1] + 1)
    assert np.allclose(xs, x) and np.allclose(ys, 2 * x + 1)
    rng = np.random.default_rng(1)
    y = np.sin(3 * x) + rng.normal(0, 0.1, 30)
    _, ys = stats.lowess(x, y, frac=2 / 3)
    assert np.allclose(ys, sm_lowess(y, x, frac=2 / 3)[:, 1])
    with pytest.raises(ValueError, match="frac=0"):
        stats.lowess(x, y, frac=0)


def test_pairwise_ttests_bonferroni():
    values = np.array([1, 1.2, 0.9, 2, 2.1, 2.2, 3, 3.3, 2.9, 7.0])
    groups = np.array(["a", "a", "a", "b", "b", "b", "c", "c", "c", "d"])  # d has one value: left out
    out = stats.pairwise_ttests(values, groups)
    assert list(zip(out["group_a"], out["group_b"])) == [("a", "b"), ("a", "c"), ("b", "c")]
    ref = scipy.stats.ttest_ind(values[:3], values[3:6])
    assert out.loc[0, "t"] == pytest.approx(ref.statistic)
    assert np.allclose(out["p_adjusted"], np.minimum(1, out["p"] * 3))


def test_depth_bins():
    centres = stats.depth_bins([0.004, 0.01, 0.011, 0.5, 1.0], n_bins=100)
    assert np.allclose(centres, [0.005, 0.005, 0.015, 0.495, 0.995])
    with pytest.raises(ValueError, match="n_bins=0"):
        stats.depth_bins([0.5], n_bins=0)


# ----------------------------------------------------------------------------- analyses on a fake sweep

def test_trained_vs_random_finds_planted_models(fake):
    run, _, _ = fake
    tvr = stats.trained_vs_random(run)
    assert sorted(tvr["srp_ridge"]["random_ge_trained"]) == sorted(RANDOM_BEATS_TRAINED)
    assert tvr["rsa"]["n_random_ge_trained"] == 0
    t = tvr["srp_ridge"]["table"]
    ref = scipy.stats.ttest_rel(t["trained"], t["random"])
    assert tvr["srp_ridge"]["test"].pvalue == pytest.approx(ref.pvalue)
    # trained score is the plain mean over areas of the summary's max_score
    s = run.summary
    plain = s[(s.model == "resnet18") & (s.train_type == "trained") & (s.metric == "srp_ridge")]["max_score"].mean()
    assert t.set_index("model").loc["resnet18", "trained"] == pytest.approx(plain)


def test_model_rankings_ci_contains_mean(fake):
    r = stats.model_rankings(fake[0], family="imagenet")
    assert set(r["train_type"]) == {"trained", "random"}
    assert ((r["ci_low"] <= r["score"]) & (r["score"] <= r["ci_high"])).all()
    assert r[r.metric == "rsa"].iloc[0]["model"] == "inception_resnet_v2"


def test_architecture_correlations_match_scipy(fake):
    run = fake[0]
    c = stats.architecture_correlations(run).set_index(["sample", "predictor", "metric"])
    ms = stats.model_summary(run, metric="rsa", family="imagenet", train_type="trained").set_index("model")
    depth = run.scores.groupby("model")["layer"].nunique().reindex(ms.index)
    ref = scipy.stats.spearmanr(depth, ms["score"])
    assert c.loc[("imagenet_trained", "n_layers", "rsa"), "rho"] == pytest.approx(ref.correlation)
    assert c.loc[("imagenet_trained", "n_layers", "rsa"), "n"] == 11
    # pooled: trained and random variants of every ImageNet architecture
    pooled = stats.model_summary(run, metric="rsa", family="imagenet")
    ref = scipy.stats.spearmanr(pooled["model"].map(run.scores.groupby("model")["layer"].nunique()), pooled["score"])
    assert c.loc[("pooled", "n_layers", "rsa"), "rho"] == pytest.approx(ref.correlation)
    assert c.loc[("pooled", "n_layers", "rsa"), "n"] == 22
    assert ("pooled", "imagenet_top1", "rsa") not in c.index  # a random variant has no ImageNet accuracy
    with pytest.raises(ValueError, match="sample='everything'"):
        stats.architecture_correlations(run, sample="everything")


def test_class_contrast_planted_transformer_effect(fake):
    c = stats.class_contrast(fake[0], "Transformer").set_index("metric")
    assert c.loc["srp_ridge", "t"] > 0 and c.loc["rsa", "t"] < 0
    assert c.loc["rsa", "n_class"] == 3 and c.loc["rsa", "n_other"] == 8
    assert (c["test"] == "welch").all() and (c["df"] < 9).all()  # Welch df below Student's n1 + n2 - 2 = 9
    s = stats.class_contrast(fake[0], "Transformer", equal_var=True).set_index("metric")
    assert (s["test"] == "student").all() and (s["df"] == 9).all()


def test_best_layer_depths_recover_area_gradient(fake):
    d = stats.best_layer_depths(fake[0])
    for metric, g in d.groupby("metric"):
        g = g.set_index("area")["mean_depth"]
        for area, planted in AREAS.items():
            assert g[area] == pytest.approx(planted, abs=0.05)


def test_depth_profiles_bins_and_smoother(fake):
    p = stats.depth_profiles(fake[0], by="model_class")
    assert set(p["group"]) == {"Convolutional", "Transformer", "MLP-Mixer"}
    assert ((p["depth_bin"] > 0) & (p["depth_bin"] < 1)).all()
    conv = p[(p.metric == "rsa") & (p.group == "Convolutional")]
    assert conv["smooth"].notna().all()
    # the planted peaks lie between 0.2 and 0.5
    assert 0.15 < conv.loc[conv["smooth"].idxmax(), "depth_bin"] < 0.55


def test_layerwise_agreement_matches_scipy(fake):
    run = fake[0]
    per, means = stats.layerwise_agreement(run)
    s = run.scores
    one = s[(s.model == "resnet18") & (s.train_type == "trained") & (s.area == "VISp")]
    w = one.pivot(index="layer", columns="metric", values="score")
    ref = scipy.stats.spearmanr(w["srp_ridge"], w["rsa"]).correlation
    got = per[(per.model == "resnet18") & (per.train_type == "trained") & (per.area == "VISp")]["rho"].iloc[0]
    assert got == pytest.approx(ref)
    assert means.set_index("models").loc["without random", "n"] == (per.train_type == "trained").sum()


def test_scores_by_reliability_matches_plain_loop(fake):
    run, reliability, _ = fake
    curves = stats.scores_by_reliability(run.neuron_scores, reliability, [0.8, 0.9, 2.0])
    assert set(curves["threshold"]) == {0.8, 0.9}  # nobody passes 2.0
    ns = run.neuron_scores
    ns = ns[(ns.model == "vgg16") & (ns.train_type == "trained")]
    keep = reliability[reliability >= 0.9].index
    per_area = []
    for area in AREAS:
        best = -np.inf
        for layer in ns["layer"].unique():
            sel = ns[(ns.area == area) & (ns.layer == layer) & ns.cell_specimen_id.isin(keep)]
            best = max(best, sel["score"].mean())
        per_area.append(best)
    got = curves[(curves.model == "vgg16") & (curves.train_type == "trained") & (curves.threshold == 0.9)]
    assert got["score"].iloc[0] == pytest.approx(np.mean(per_area))
    # planted: neuron scores rise with reliability, so a stricter cutoff scores higher
    wide = curves.pivot_table(index=["model", "train_type"], columns="threshold", values="score")
    assert (wide[0.9] > wide[0.8]).all()
    with pytest.raises(TypeError, match="pandas Series"):
        stats.scores_by_reliability(run.neuron_scores, reliability.to_numpy(), [0.8])


def test_reliability_smooth(fake):
    run, reliability, _ = fake
    curves = stats.scores_by_reliability(run.neuron_scores, reliability, [0.8, 0.85, 0.9, 0.95])
    sm = stats.reliability_smooth(curves)
    assert len(sm) == 4 and (sm["n_models"] == curves.groupby("threshold").size().to_numpy()).all()
    assert ((sm["ci_low"] <= sm["mean"]) & (sm["mean"] <= sm["ci_high"])).all()


def test_ground_truth_recovery_on_planted_generator(fake):
    run, _, folder = fake
    label = stats.dataset_label(folder / "ds.nc")
    assert label["source"] == "synthetic"
    rec = stats.ground_truth_recovery(run, label["ground_truth"])
    assert len(rec) == 2 * len(AREAS)
    assert rec["exact"].all() and np.allclose(rec["depth_error"], 0)
    # a generator that was not scored gives an empty table
    assert not len(stats.ground_truth_recovery(run, dict(label["ground_truth"], model="nope")))


def test_group_scores_and_ranges(fake):
    run = fake[0]
    gs = stats.group_scores(run, grouping="cre_line", family="taskonomy")
    assert {"2D", "3D", "Geometric", "Semantic", "Random"} == set(gs["label"])  # Other merged into 2D
    assert not len(stats.group_scores(run, grouping="nonexistent"))
    r = stats.score_ranges(run)
    assert set(r["subset"]) == {"all"}  # the fake zoo has no normalization-free model to leave out
    r = r.set_index(["family", "metric"])
    assert r.loc[("taskonomy", "rsa"), "best_model"] == "segment_unsup2d"
    assert r["range"].gt(0).all()


def test_neuron_reliability_from_dataset(fake):
    from mbutils.reliability import splithalf_reliability
    import xarray as xr

    run, _, folder = fake
    rel = stats.neuron_reliability(run, folder / "ds.nc", n_splits=4)
    with xr.open_dataset(folder / "ds.nc") as ds:
        resp = ds["responses"].sel(stimulus=ds["stimulus"] >= 0).values
        ref = splithalf_reliability(resp, n_splits=4, seed=0, progress=False)
    assert np.allclose(rel.to_numpy(), ref)


def test_load_run_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        stats.load_run(tmp_path / "nowhere")
    (tmp_path / "models").mkdir()
    run = stats.load_run(tmp_path, metadata=fake_metadata())
    assert run.models.empty and stats.model_rankings(run).empty


def _pairings_p(x, y):
    """Plain loop over every pairing: twice the smaller one-sided fraction, at most 1."""
    import itertools

    obs = scipy.stats.spearmanr(x, y).correlation
    null = np.array([scipy.stats.spearmanr(np.asarray(x)[list(q)], y).correlation
                     for q in itertools.permutations(range(len(x)))])
    tol = 1e-12
    return min(1.0, 2 * min(np.mean(null <= obs + tol), np.mean(null >= obs - tol)))


@pytest.mark.parametrize("x, y", [
    ([1, 2, 3], [3, 2, 1]),                                    # a perfect ordering of 3: p = 1/3
    ([0.1, 0.5, 0.2, 0.9, 0.4], [1.0, 2.0, 0.5, 3.0, 2.5]),
    ([1, 2, 2, 3, 5, 4, 7], [2, 1, 3, 3, 4, 6, 5]),            # ties
])
def test_spearman_small_samples_get_the_exact_permutation_p(x, y):
    """Below 9 pairs the t approximation is far off (p = 0 for rho = -1 from 3 models); the
    p-value is the exact one over every pairing (a plain loop)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    rho, p, n = stats.spearman(x, y)
    assert rho == pytest.approx(scipy.stats.spearmanr(x, y).correlation)
    assert p == pytest.approx(_pairings_p(x, y))
    if len(x) == 3:
        assert p == pytest.approx(1 / 3) and scipy.stats.spearmanr(x, y).pvalue < 1e-6
