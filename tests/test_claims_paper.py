"""mbutils.claims on a paper-sized planted run (90 architectures trained and random, 24 Taskonomy
encoders, the baselines): the paper's tests recover the planted effects; a 3-model run compares
no inferential claim; the ``mbutils claims`` command writes the table."""
import pandas as pd
import pytest
from statsmodels.stats.weightstats import ttest_ind as sm_ttest_ind

from mbutils import claims, stats
from mbutils.cli import main
from mbutils.testing import fake_metadata, make_fake_dataset, make_fake_results, make_paper_results

INFERENTIAL = ["trained_vs_random_srp_p", "trained_vs_random_srp_d", "trained_vs_random_rsa_p",
               "trained_vs_random_rsa_d", "depth_rsa_spearman", "depth_srp_spearman", "params_rsa_spearman",
               "transformer_rsa_t", "transformer_srp_t", "imagenet_top1_effect", "best_architecture",
               "taskonomy_best_overall", "rank_corr_with_random", "rank_corr_without_random"]


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paper_sized")
    specs = make_paper_results(folder)
    run = stats.load_run(folder, metadata=fake_metadata(specs))
    return run, specs, claims.compute_claims(run).set_index("claim_id")


def test_paper_sized_run_has_the_paper_sizes(paper):
    run, specs, t = paper
    assert len(run.family("imagenet", "trained")) == 90 and len(run.family("imagenet", "random")) == 90
    assert len(run.family("taskonomy", "trained")) == 24
    cov = claims.coverage(run).set_index("family")
    assert cov.loc["imagenet", "scored_variants"] == 180 and cov.loc["taskonomy", "scored_variants"] == 24
    assert t.loc["model_coverage", "run_value"].startswith(str(cov.loc["all", "scored_variants"]))


def test_planted_effects_are_reproduced(paper):
    _, _, t = paper
    for cid in ["trained_vs_random_srp_p", "trained_vs_random_rsa_p", "trained_vs_random_srp_d",
                "trained_vs_random_rsa_d", "depth_rsa_spearman", "depth_srp_spearman", "params_rsa_spearman",
                "transformer_rsa_t", "transformer_srp_t", "imagenet_top1_effect", "best_architecture",
                "taskonomy_best_overall", "training_gain_transformer_mixer"]:
        assert t.loc[cid, "status"] == "reproduced", (cid, t.loc[cid, "reason"])
    assert t.loc["trained_vs_random_srp_p", "n"] == "90"
    assert t.loc["depth_rsa_spearman", "n"] == "90 vs 90"  # the pooled sample: trained vs random
    assert t.loc["transformer_rsa_t", "n"] == "10 vs 80"


def test_transformer_contrast_uses_welch_df(paper):
    run, _, t = paper
    ms = stats.model_summary(run, metric="rsa", family="imagenet", train_type="trained")
    a = ms.loc[ms["model_class"] == "Transformer", "score"].to_numpy()
    b = ms.loc[ms["model_class"] != "Transformer", "score"].to_numpy()
    tw, pw, dfw = sm_ttest_ind(a, b, usevar="unequal")
    ts, ps, dfs = sm_ttest_ind(a, b, usevar="pooled")
    assert float(t.loc["transformer_rsa_t", "run_value"]) == pytest.approx(tw, rel=1e-2)
    assert f"df = {dfw:.3g}" in t.loc["transformer_rsa_t", "reason"]
    # planted: transformers spread 4 times wider, so Welch's df is near the 9 of the smaller group
    assert dfw < 20 and dfs == 88
    assert pw > ps


def test_planted_absences_are_not_reproduced(paper):
    _, specs, t = paper
    # no architecture's random variant was planted above its trained one
    assert t.loc["random_ge_trained_count", "run_value"] == "0"
    # every Taskonomy cluster shares the planted area depths: no 2D/Geometric-before-3D/Semantic order
    assert t.loc["taskonomy_depth_order", "status"] == "not_reproduced"


def test_three_model_run_compares_no_inferential_claim(tmp_path):
    make_fake_results(tmp_path, models=["resnet18", "vgg16", "alexnet"], n_neurons_per_area=2)
    run = stats.load_run(tmp_path, metadata=fake_metadata())
    t = claims.compute_claims(run).set_index("claim_id")
    kinds = claims.paper_claims().set_index("id")["kind"]
    for cid in kinds.index[kinds.isin(["test", "named"])]:
        assert t.loc[cid, "status"] in ("not_comparable", "not_computable"), (cid, t.loc[cid, "status"])
    p = t.loc["trained_vs_random_srp_p"]
    assert p["status"] == "not_comparable" and p["n"] == "3" and p["paper_n"] == "92"
    assert "n = 3" in p["reason"] and "92" in p["reason"]
    assert t.loc["best_architecture", "status"] == "not_comparable"  # inception_resnet_v2 not scored
    assert "inception_resnet_v2" in t.loc["best_architecture", "reason"]


def test_claims_cli_writes_the_csv(tmp_path, capsys):
    ds = make_fake_dataset(tmp_path / "ds.nc", n_neurons_per_area=2)
    make_fake_results(tmp_path / "res", models=["resnet18", "alexnet", "gabor"], n_neurons_per_area=2, dataset=ds)
    out = tmp_path / "out" / "table.csv"
    assert main(["claims", "--results", str(tmp_path / "res"), "--dataset", str(ds), "--out", str(out)]) == 0
    table = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(table.columns) == claims.COLUMNS and len(table) == len(claims.paper_claims()) + 1
    line = capsys.readouterr().out.strip()
    counts = table["status"].value_counts()
    assert line == f"{out}: " + ", ".join(f"{s} {int(counts.get(s, 0))}" for s in claims.STATUSES)
    # default output: claims.csv in the results folder
    assert main(["claims", "--results", str(tmp_path / "res")]) == 0
    assert (tmp_path / "res" / "claims.csv").exists()
    # one-line error for a folder that is not a sweep's
    assert main(["claims", "--results", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0] and "results folder" in err[0]


def test_claims_help_lists_examples(capsys):
    import re

    assert main(["--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (i,) = [i for i, line in enumerate(lines) if re.match(r"^    claims +\S", line)]
    assert not lines[i + 1].startswith(" " * 6)
    assert main(["claims", "--help"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^examples:\n  mbutils claims --results", out, re.M)
    assert "global options:" in out
