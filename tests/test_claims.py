"""mbutils.claims: a computed value for every claim the fake run supports, a reason otherwise, and
a status that never compares a sample smaller than the paper's rule allows."""
import pandas as pd
import pingouin as pg
import pytest
import scipy.stats

from mbutils import claims, stats
from mbutils.testing import fake_metadata, make_fake_dataset, make_fake_results

EXTERNAL = {"bs_alexnet_v4", "bs_alexnet_it", "bs_gain_v4_mean", "bs_gain_it_mean", "bs_gain_max",
            "ridge_vs_pls_time", "gcv_vs_kfold_time"}


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    folder = tmp_path_factory.mktemp("claims_full")
    make_fake_results(folder, n_neurons_per_area=4)
    make_fake_dataset(folder / "ds.nc", n_neurons_per_area=4)
    run = stats.load_run(folder, metadata=fake_metadata())
    return run, folder, claims.compute_claims(run, folder / "ds.nc").set_index("claim_id")


def test_packaged_claims_table():
    t = claims.paper_claims()
    assert len(t) == 44 and t["id"].is_unique
    assert set(t["id"]) == set(claims.CLAIMS)
    assert set(t["kind"]) == {"test", "named", "data", "parameter", "external"}
    # every claim that can be compared states what reproducing it means
    assert set(t.loc[t["kind"] != "external", "id"]) <= set(claims.CRITERIA)


def test_paper_models_match_the_registry():
    from mbutils.models import list_models

    pm = claims.paper_models()
    assert pm["model"].is_unique
    assert pm["family"].value_counts().to_dict() == {"imagenet": 109, "taskonomy": 25, "other": 8, "baseline": 3}
    registry = set(list_models()["name"])
    assert set(pm.loc[pm["family"] != "baseline", "model"]) <= registry
    assert (pm["model_class"] == "Transformer").sum() == 27


def test_every_claim_has_a_status_and_reason(full):
    _, _, t = full
    assert list(t.reset_index().columns) == claims.COLUMNS
    assert set(t["status"]) <= set(claims.STATUSES)
    assert (t["reason"] != "").all()
    # a value exactly where the claim was computed
    assert ((t["run_value"] == "") == (t["status"] == "not_computable")).all()
    # the fake zoo has one MLP-Mixer: no between-class test for it
    assert set(t.index[t["status"] == "not_computable"]) == EXTERNAL | {"training_gain_transformer_mixer"}
    assert t.index[0] == "model_coverage"


def test_claim_values_are_computed(full):
    run, _, t = full
    assert t.loc["random_ge_trained_count", "run_value"] == "2"
    assert t.loc["best_architecture", "run_value"] == "inception_resnet_v2"
    assert t.loc["taskonomy_best_overall", "run_value"] == "segment_unsup2d"
    assert t.loc["neurons_total", "run_value"] == "24"
    assert t.loc["srp_components", "run_value"] == "4096"
    assert t.loc["srp_components", "status"] == "reproduced"
    tvr = stats.trained_vs_random(run)["rsa"]["table"]
    d_av = pg.compute_effsize(tvr["trained"], tvr["random"], paired=True, eftype="cohen")
    assert float(t.loc["trained_vs_random_rsa_d", "run_value"]) == pytest.approx(d_av, rel=1e-2)
    ms = stats.model_summary(run, metric="rsa", family="imagenet")  # pooled: trained and random
    rho = scipy.stats.spearmanr(ms["n_parameters"], ms["score"]).correlation
    assert float(t.loc["params_rsa_spearman", "run_value"]) == pytest.approx(rho, abs=1e-3)
    assert t.loc["params_rsa_spearman", "n"] == "11 vs 11"  # trained vs random variants


def test_status_rules_on_the_small_fake_run(full):
    _, _, t = full
    # the fake dataset is synthetic: measurements of the data are not held against the Allen data
    for cid in ("neurons_total", "baseline_gabor", "range_imagenet_rsa", "visal_best_rsa", "best_layer_depth"):
        assert t.loc[cid, "status"] == "not_comparable"
        assert "Allen Brain Observatory" in t.loc[cid, "reason"]
    # 3 transformers: fewer than the 9 the paper's Welch df allows, with both n in the reason
    assert t.loc["transformer_rsa_t", "status"] == "not_comparable"
    assert "n = 3 vs 8" in t.loc["transformer_rsa_t", "reason"] and "9 vs 83" in t.loc["transformer_rsa_t", "reason"]
    # 6 Taskonomy encoders: the named best is not compared
    assert t.loc["taskonomy_best_overall", "status"] == "not_comparable"
    # 11 trained-random pairs: compared, and the planted trained > random holds
    assert t.loc["trained_vs_random_rsa_p", "status"] == "reproduced"
    assert t.loc["compute_reported", "status"] == "not_comparable"


def test_coverage_counts_variants(full):
    run, _, t = full
    cov = claims.coverage(run).set_index("family")
    # fake imagenet models of the paper's set: 10 architectures, trained and random (efficientnet_lite0 is not)
    assert cov.loc["imagenet", "scored_variants"] == 20 and cov.loc["imagenet", "paper_variants"] == 218
    assert cov.loc["baseline", "scored_variants"] == 3
    assert "efficientnet_lite0 (trained)" in cov.loc["all", "extra"]
    assert t.loc["model_coverage", "n"] == str(cov.loc["all", "scored_variants"])
    assert t.loc["model_coverage", "status"] == "not_comparable"


def test_reasons_when_models_are_absent(tmp_path):
    make_fake_results(tmp_path, models=["segment_unsup2d", "class_object", "autoencoding"], n_neurons_per_area=3)
    run = stats.load_run(tmp_path, metadata=fake_metadata())
    t = claims.compute_claims(run, tmp_path / "missing.nc").set_index("claim_id")
    assert "ImageNet" in t.loc["trained_vs_random_srp_p", "reason"]
    assert "this run has none" in t.loc["best_architecture", "reason"]
    assert "baselines" in t.loc["baseline_gabor", "reason"]
    assert "dataset file" in t.loc["neurons_total", "reason"]
    assert t.loc["taskonomy_best_overall", "run_value"] == "segment_unsup2d"
    assert t.loc["taskonomy_best_overall", "status"] == "not_comparable"
    assert (t["reason"] != "").all()


def test_write_claims_atomic_roundtrip(full, tmp_path):
    _, _, t = full
    path = claims.write_claims(t.reset_index(), tmp_path)
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert path.name == "claims.csv" and len(back) == 45
    assert list(back.columns) == claims.COLUMNS
    assert list(tmp_path.iterdir()) == [path]
    with pytest.raises(ValueError, match="lacks columns"):
        claims.write_claims(pd.DataFrame({"id": [1]}), tmp_path)


def test_data_claims_are_compared_on_allen_data(tmp_path):
    import numpy as np
    import xarray as xr

    from mbutils.reliability import splithalf_rdm_reliability

    make_fake_dataset(tmp_path / "synthetic.nc", n_neurons_per_area=4)
    with xr.open_dataset(tmp_path / "synthetic.nc") as ds:
        allen = ds.load()
    allen.attrs["source"] = "allen"
    allen.to_netcdf(tmp_path / "allen.nc", engine="h5netcdf")
    make_fake_results(tmp_path / "res", n_neurons_per_area=4)
    run = stats.load_run(tmp_path / "res", metadata=fake_metadata())
    t = claims.compute_claims(run, tmp_path / "allen.nc").set_index("claim_id")
    # measurements of the data are now held against the paper's values
    assert t.loc["neurons_total", "status"] == "not_reproduced"  # 24 neurons, not 59610
    assert t.loc["baseline_gist", "status"] in ("reproduced", "not_reproduced")
    # explainable variance: the squared split-half reliability of VISal's neural RDM
    resp = allen["responses"].sel(stimulus=allen["stimulus"] >= 0)
    visal = resp.sel(neuron=allen["area"] == "VISal").values
    rel = splithalf_rdm_reliability(visal)
    assert float(t.loc["visal_explainable_variance", "run_value"]) == pytest.approx(rel**2, rel=1e-2)
    score = run.summary.query("model == 'segment_unsup2d' and train_type == 'trained' and metric == 'rsa' "
                              "and area == 'VISal'")["max_score"].iloc[0]
    assert float(t.loc["visal_fraction_explained", "run_value"]) == pytest.approx(score**2 / rel**2, rel=1e-2)
    assert np.isfinite(rel)
    # sample rules still apply: 11 ImageNet models suffice (10), 6 Taskonomy encoders do not
    assert t.loc["range_imagenet_rsa", "status"] in ("reproduced", "not_reproduced")
    assert t.loc["range_taskonomy_rsa", "status"] == "not_comparable"  # 6 encoders
    assert "n = 6" in t.loc["range_taskonomy_rsa", "reason"]


def test_a_run_without_rsa_marks_the_rsa_claims_not_computable(tmp_path):
    """SRP-Ridge alone (the sensorium and stringer configs): every claim that needs RSA says so
    instead of failing, the SRP-Ridge claims are still evaluated, and the areas summary says the
    run has no RSA scores."""
    import pandas as pd

    from mbutils import findings

    make_fake_results(tmp_path, n_neurons_per_area=3)
    for f in tmp_path.rglob("*.parquet"):
        t = pd.read_parquet(f)
        if "metric" in t.columns:
            t[t["metric"] != "rsa"].to_parquet(f)
    run = stats.load_run(tmp_path, metadata=fake_metadata())
    assert "rsa" not in set(run.scores["metric"])
    table = claims.compute_claims(run)
    t = table.set_index("claim_id")
    needs_rsa = [cid for cid, metrics in claims.CLAIM_METRICS.items() if "rsa" in metrics]
    assert len(needs_rsa) >= 15 and (t.loc[needs_rsa, "status"] == "not_computable").all()
    assert all(t.loc[needs_rsa, "reason"].str.startswith("needs RSA scores; this run scored SRP-Ridge only")), \
        t.loc[needs_rsa, "reason"]
    srp_only = [cid for cid, metrics in claims.CLAIM_METRICS.items() if metrics == ("srp_ridge",)]
    assert not t.loc[srp_only, "reason"].str.contains("needs RSA").any()
    assert (t["reason"] != "").all()
    assert "no RSA scores" in findings.areas(run)
