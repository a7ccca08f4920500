"""mbutils.claims: a computed value for every claim the fake run supports, a reason otherwise."""
import pandas as pd
import pytest
import scipy.stats

from mbutils import claims, stats
from mbutils.testing import fake_metadata, make_fake_dataset, make_fake_results


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    folder = tmp_path_factory.mktemp("claims_full")
    make_fake_results(folder, n_neurons_per_area=4)
    make_fake_dataset(folder / "ds.nc", n_neurons_per_area=4)
    run = stats.load_run(folder, metadata=fake_metadata())
    return run, folder, claims.compute_claims(run, folder / "ds.nc").set_index("id")


def test_packaged_claims_table():
    t = claims.paper_claims()
    assert len(t) == 39 and t["id"].is_unique
    assert set(t["id"]) == set(claims.CLAIMS)


def test_every_claim_has_value_or_reason(full):
    _, _, t = full
    has_value, has_reason = t["run_value"] != "", t["reason"] != ""
    assert (has_value ^ has_reason).all()
    not_supported = set(t.index[has_reason])
    assert not_supported == {"bs_alexnet_v4", "bs_alexnet_it", "bs_gain_v4_mean", "bs_gain_it_mean", "bs_gain_max",
                             "ridge_vs_pls_time", "gcv_vs_kfold_time"}
    assert t["dataset"].str.startswith("synthetic").all()


def test_claim_values_are_computed(full):
    run, _, t = full
    assert t.loc["random_ge_trained_count", "run_value"] == "2"
    assert t.loc["best_architecture", "run_value"] == "inception_resnet_v2"
    assert t.loc["taskonomy_best_overall", "run_value"] == "segment_unsup2d"
    assert t.loc["neurons_total", "run_value"] == "24"
    assert t.loc["srp_components", "run_value"] == "4096"
    tvr = stats.trained_vs_random(run)["rsa"]["table"]
    d = (tvr["trained"] - tvr["random"]).mean() / (tvr["trained"] - tvr["random"]).std(ddof=1)
    assert float(t.loc["trained_vs_random_rsa_d", "run_value"]) == pytest.approx(d, rel=1e-2)
    ms = stats.model_summary(run, metric="rsa", family="imagenet", train_type="trained")
    rho = scipy.stats.spearmanr(ms["n_parameters"], ms["score"]).correlation
    assert float(t.loc["params_rsa_spearman", "run_value"]) == pytest.approx(rho, abs=1e-3)


def test_reasons_when_models_are_absent(tmp_path):
    make_fake_results(tmp_path, models=["segment_unsup2d", "class_object", "autoencoding"], n_neurons_per_area=3)
    run = stats.load_run(tmp_path, metadata=fake_metadata())
    t = claims.compute_claims(run, tmp_path / "missing.nc").set_index("id")
    assert "ImageNet" in t.loc["trained_vs_random_srp_p", "reason"]
    assert "this run has none" in t.loc["best_architecture", "reason"]
    assert "baselines" in t.loc["baseline_gabor", "reason"]
    assert "dataset file" in t.loc["neurons_total", "reason"]
    assert t.loc["taskonomy_best_overall", "run_value"] == "segment_unsup2d"
    assert ((t["run_value"] != "") ^ (t["reason"] != "")).all()


def test_write_claims_atomic_roundtrip(full, tmp_path):
    _, _, t = full
    path = claims.write_claims(t.reset_index(), tmp_path)
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert path.name == "claims.csv" and len(back) == 39
    assert list(tmp_path.iterdir()) == [path]
    with pytest.raises(ValueError, match="lacks columns"):
        claims.write_claims(pd.DataFrame({"id": [1]}), tmp_path)
