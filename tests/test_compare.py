"""Model rankings across datasets (mbutils.compare) against scipy and a planted ranking."""
import numpy as np
import pandas as pd
import pytest
import scipy.stats

from mbutils import compare
from mbutils.results import load_run, model_summary
from mbutils.testing import fake_metadata, make_fake_results

N_MODELS = 12
# a planted permutation of the trained models' levels on the second dataset
PERMUTATION = np.array([2, 0, 1, 5, 3, 4, 11, 6, 7, 8, 10, 9])


def _specs(levels_srp, levels_rsa):
    """Fake zoo with one level per model (trained) and random levels below all trained ones,
    spaced 0.01 apart (well above the fake tables' layer noise of 0.002)."""
    specs = {}
    for k in range(N_MODELS):
        specs[f"net{k:02d}"] = ("timm", "Convolutional", "imagenet", "Semantic", 1e7, 70.0, 10,
                                levels_srp[k], levels_rsa[k], -0.12 + 0.01 * k, 0.01 * k)
    return specs


def _planted_levels(specs, metric):
    """{(model, train_type): planted level} of ``metric``."""
    i = {"srp_ridge": (7, 9), "rsa": (8, 10)}[metric]
    return {**{(m, "trained"): v[i[0]] for m, v in specs.items()}, **{(m, "random"): v[i[1]] for m, v in specs.items()}}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    base = 0.10 + 0.01 * np.arange(N_MODELS)
    srp_a, rsa_a = base, base + 0.2
    srp_b, rsa_b = base[PERMUTATION], base[::-1] + 0.2  # SRP permuted, RSA reversed
    specs_a, specs_b = _specs(srp_a, rsa_a), _specs(srp_b, rsa_b)
    make_fake_results(root / "a", specs=specs_a, n_neurons_per_area=2, seed=1)
    # the second dataset lacks two models (one trained and random, and one random variant)
    make_fake_results(root / "b", specs=specs_b, models=[m for m in specs_b if m != "net03"],
                      n_neurons_per_area=2, seed=2)
    import shutil

    shutil.rmtree(root / "b" / "models" / "net05__random")
    meta = fake_metadata(specs_a)
    runs = {"a": load_run(root / "a", metadata=meta), "b": load_run(root / "b", metadata=meta)}
    return dict(root=root, runs=runs, specs=(specs_a, specs_b))


def test_scores_are_model_summary(planted):
    table = compare.scores_by_dataset(planted["runs"])
    for label, run in planted["runs"].items():
        s = model_summary(run).set_index(["model", "train_type", "metric"])["score"]
        got = table.set_index(["model", "train_type", "metric"])[label].dropna()
        pd.testing.assert_series_equal(got.sort_index(), s.sort_index(), check_names=False)
    # 24 pairs on a, 21 on b; net03 (both) and net05 random are missing on b
    assert table[["model", "train_type"]].drop_duplicates().shape[0] == 2 * N_MODELS
    both = table[table["n_datasets"] == 2][["model", "train_type"]].drop_duplicates()
    assert len(both) == 2 * N_MODELS - 3


def test_rank_correlation_matches_scipy_and_planted(planted):
    table = compare.scores_by_dataset(planted["runs"])
    corr = compare.rank_correlations(table, n_resamples=4000, seed=3).set_index("metric")
    for metric in ("srp_ridge", "rsa"):
        t = table[(table["metric"] == metric) & table["a"].notna() & table["b"].notna()]
        ref = scipy.stats.spearmanr(t["a"], t["b"])
        row = corr.loc[metric]
        assert row["n_models"] == 2 * N_MODELS - 3 and row["n_only_a"] == 3 and row["n_only_b"] == 0
        assert row["rho"] == pytest.approx(ref.statistic, abs=1e-12)
        assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
        # the planted ranking is recovered exactly
        pa, pb = (_planted_levels(s, metric) for s in planted["specs"])
        keys = list(zip(t["model"], t["train_type"]))
        truth = scipy.stats.spearmanr([pa[k] for k in keys], [pb[k] for k in keys]).statistic
        assert row["rho"] == pytest.approx(truth, abs=1e-12)
        assert row["ci_low"] <= truth <= row["ci_high"]
        assert row["ci_low"] < row["ci_high"]


def test_bootstrap_matches_scipy_bootstrap():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = 0.6 * x + rng.normal(scale=0.8, size=40)
    ours = compare.bootstrap_spearman(x, y, n_resamples=20000, seed=1)

    def rho(a, b, axis=-1):
        return compare.spearman_rows(a, b)

    ref = scipy.stats.bootstrap((x, y), rho, paired=True, vectorized=True, n_resamples=20000,
                                method="percentile", random_state=np.random.default_rng(2))
    assert ours["n_degenerate"] == 0
    assert ours["ci_low"] == pytest.approx(ref.confidence_interval.low, abs=0.02)
    assert ours["ci_high"] == pytest.approx(ref.confidence_interval.high, abs=0.02)


def test_spearman_rows_matches_scipy_with_ties():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 5, size=(6, 15)).astype(float)
    y = rng.integers(0, 5, size=(6, 15)).astype(float)
    got = compare.spearman_rows(x, y)
    want = [scipy.stats.spearmanr(a, b).statistic for a, b in zip(x, y)]
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert np.isnan(compare.spearman_rows(np.ones(5), np.arange(5.0)))


def test_rank_changes_name_the_planted_movers(planted):
    table = compare.scores_by_dataset(planted["runs"])
    ch = compare.rank_changes(table, "a", "b")
    srp = ch[ch["metric"] == "srp_ridge"]
    assert len(srp) == 2 * N_MODELS - 3
    t = table[(table["metric"] == "srp_ridge") & table["a"].notna() & table["b"].notna()]
    ra = scipy.stats.rankdata(-t["a"].to_numpy())
    rb = scipy.stats.rankdata(-t["b"].to_numpy())
    move = dict(zip(zip(t["model"], t["train_type"]), rb - ra))
    assert {(r.model, r.train_type): r.change for r in srp.itertuples()} == move
    # the planted movers: ranks of the planted levels among the models on both datasets
    pa, pb = (_planted_levels(s, "srp_ridge") for s in planted["specs"])
    keys = list(move)
    planted_move = dict(zip(keys, scipy.stats.rankdata([-pb[k] for k in keys])
                            - scipy.stats.rankdata([-pa[k] for k in keys])))
    assert move == planted_move
    biggest = max(abs(v) for v in planted_move.values())
    assert srp.iloc[0]["abs_change"] == biggest > 0
    movers = {k for k, v in planted_move.items() if abs(v) == biggest}
    assert (srp.iloc[0]["model"], srp.iloc[0]["train_type"]) in movers
    # RSA is reversed among the trained models: the best trained model on a is the worst trained on b
    rsa = ch[ch["metric"] == "rsa"].set_index(["model", "train_type"])
    n_trained = N_MODELS - 1
    assert rsa.loc[("net11", "trained"), "change"] == n_trained - 1


def test_summary_and_errors(planted):
    table = compare.scores_by_dataset(planted["runs"])
    corr = compare.rank_correlations(table, n_resamples=500)
    ch = compare.rank_changes(table, n=3)
    text = compare.cross_dataset_summary(table, corr, ch)
    assert f"{2 * N_MODELS - 3} of the {2 * N_MODELS} models" in text
    rsa = corr.set_index("metric").loc["rsa"]
    assert f"Spearman rho {rsa['rho']:.2f}" in text
    with pytest.raises(ValueError, match="two or more"):
        compare.load_runs([planted["root"] / "a"])
    with pytest.raises(ValueError, match="one dataset file"):
        compare.load_runs([planted["root"] / "a", planted["root"] / "b"], datasets=[None])
    with pytest.raises(ValueError, match="not in the table"):
        compare.rank_changes(table, "a", "c")


def test_few_models_give_no_interval():
    r = compare.bootstrap_spearman([0.1, 0.2], [0.3, 0.1])
    assert np.isnan(r["rho"]) and np.isnan(r["ci_low"]) and r["n"] == 2


def test_page_runs_on_two_results_folders(tmp_path):
    """The cross-dataset page executes on two fake sweeps, with no error or warning in its outputs."""
    import nbformat

    from mbutils.build import NOTEBOOKS, run_notebook

    models = ["alexnet", "vgg16", "resnet18", "resnet50", "densenet121", "gabor"]
    make_fake_results(tmp_path / "a", models=models, n_neurons_per_area=2, seed=1)
    make_fake_results(tmp_path / "b", models=models[:-1], n_neurons_per_area=2, seed=2)
    out = tmp_path / "page" / "cross_dataset.ipynb"
    run = run_notebook(NOTEBOOKS / "cross_dataset.py", out,
                       {"results": [str(tmp_path / "a"), str(tmp_path / "b")], "smoke": True}, cwd=tmp_path)
    assert run.status == "done" and not run.error, run.error
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error" or o.get("name") == "stderr"]
    text = "\n".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "10 of the 11 models" in text and "Spearman rho" in text
