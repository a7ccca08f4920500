"""The synthetic mouse: schema, determinism, and recovery of the planted ground truth."""
import json

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from mbutils.data import make_synthetic, select_neurons
from mbutils.data import _generator
from mbutils.data.synthetic import running_modulation_pvalues

N = 400


@pytest.fixture(scope="module")
def synthetic():
    # generator features are cached in-process (lru_cache), so later calls are cheap
    return make_synthetic(n_neurons=N, seed=7, return_truth=True, progress=False)


def test_file_has_exactly_the_schema(synthetic, tmp_path):
    data, _ = synthetic
    path = data.save(tmp_path / "syn.nc")
    with xr.open_dataset(path) as ds:
        assert set(ds.data_vars) == {"responses", "stimuli"}
        assert set(ds.coords) == {
            "stimulus", "trial", "cell_specimen_id", "area", "cre_line", "imaging_depth", "excitatory", "p_run_mod_ns",
            "specimen_id",
        }
        assert ds["responses"].dims == ("neuron", "stimulus", "trial") and ds["responses"].dtype == np.float32
        assert ds["responses"].shape == (N, 119, 50)
        assert ds["stimuli"].dtype == np.uint8 and ds["stimuli"].shape == (119, 240, 307)
        assert ds["stimulus"].values.tolist() == list(range(-1, 118))
        assert (ds["stimuli"].sel(stimulus=-1).values == 127).all()
        assert ds["excitatory"].dtype == bool and ds["cell_specimen_id"].dtype == np.int64
        assert ds["specimen_id"].dtype == np.int64
        assert isinstance(ds["area"].values[0], str) and isinstance(ds["cre_line"].values[0], str)
        assert ds["cell_specimen_id"].to_series().is_unique
        assert set(ds["area"].values) == {"VISp", "VISl", "VISal", "VISpm", "VISrl", "VISam"}
        assert set(ds["imaging_depth"].values) <= {175, 275, 375, 550}
        assert ds.attrs["source"] == "synthetic"
        gt = json.loads(ds.attrs["ground_truth"])
    assert gt["model"] == "efficientnet_lite0" and gt["weights"] == "trained"
    layer_names = {name for name, *_ in _generator.generator_layers()}
    assert all(info["layer"] in layer_names for info in gt["areas"].values())
    depths = {a: info["depth"] for a, info in gt["areas"].items()}
    assert depths["VISp"] < depths["VISl"] < depths["VISal"] < depths["VISpm"] < depths["VISam"]
    assert 0.1 <= depths["VISp"] <= 0.3 and 0.55 <= depths["VISam"] <= 0.8


def test_excitatory_follows_cre_line(synthetic):
    data, _ = synthetic
    meta = data.metadata()
    inhibitory = meta.cre_line.str.startswith(("Sst", "Vip", "Pvalb"))
    assert (meta.excitatory == ~inhibitory).all()
    assert 0.02 < inhibitory.mean() < 0.3


def test_deterministic_for_a_seed(synthetic):
    data, _ = synthetic
    again = make_synthetic(n_neurons=N, seed=7, progress=False)
    np.testing.assert_array_equal(again.responses.values, data.responses.values)
    np.testing.assert_array_equal(again.ds["p_run_mod_ns"].values, data.ds["p_run_mod_ns"].values)
    other = make_synthetic(n_neurons=50, seed=8, progress=False)
    assert not np.allclose(other.responses.values[:5], data.responses.values[:5])


def test_animals_split_experiments_and_leave_responses_unchanged(synthetic):
    data, truth = synthetic
    animals = data.ds["specimen_id"].values
    assert np.array_equal(animals, truth["specimen_id"].values) and np.unique(animals).size == 6
    # each experiment (imaging plane) is one mouse's; an area's experiments go to distinct mice
    # until every mouse has one
    per_experiment = truth.groupby("experiment")["specimen_id"].nunique()
    assert (per_experiment == 1).all()
    experiments = truth.groupby("area")["experiment"].nunique()
    mice = truth.groupby("area")["specimen_id"].nunique()
    assert (mice == np.minimum(experiments, 6)).all()
    # the planted layer is the area's, whichever mouse
    assert (truth.groupby("area")["layer"].nunique() == 1).all()
    fewer = make_synthetic(n_neurons=N, seed=7, n_animals=3, progress=False)
    np.testing.assert_array_equal(fewer.responses.values, data.responses.values)
    assert np.unique(fewer.ds["specimen_id"].values).size == 3
    assert json.loads(data.ds.attrs["ground_truth"])["n_animals"] == 6


def test_default_size_has_four_to_six_mice_per_area():
    # the plan alone decides the mice: the default dataset's plan, without generating responses
    from mbutils.data.synthetic import DEFAULT_N_ANIMALS, DEFAULT_N_NEURONS, _assign_animals, _plan_experiments

    plan_seed, _, _, animal_seed = np.random.SeedSequence(0).spawn(4)
    plan = _plan_experiments(DEFAULT_N_NEURONS, np.random.default_rng(plan_seed))
    rng = np.random.default_rng(animal_seed)
    rng.integers(1, 1000, size=DEFAULT_N_ANIMALS)  # the specimen ids come first
    areas = np.array([e["area"] for e in plan])
    mice = _assign_animals(areas, DEFAULT_N_ANIMALS, rng)
    counts = {a: np.unique(mice[areas == a]).size for a in set(areas)}
    assert len(counts) == 6 and all(4 <= c <= 6 for c in counts.values()), counts


def test_reliability_filter_recovers_planted_snr(synthetic):
    data, truth = synthetic
    _, report = select_neurons(data, threshold=0.8)
    rel = report.reliability.values
    assert stats.spearmanr(rel, truth["expected_reliability"])[0] > 0.85
    planted_reliable = truth["expected_reliability"].values >= 0.9
    planted_noisy = truth["expected_reliability"].values < 0.6
    assert planted_reliable.sum() > 10
    assert (rel[planted_reliable] >= 0.8).mean() > 0.9
    assert (rel[planted_noisy] >= 0.8).mean() < 0.05
    # realistic distribution: roughly 10-20% of neurons reach 0.8 (paper: 6,619 of 59,610 selected)
    assert 0.07 < (rel >= 0.8).mean() < 0.25


def test_running_filter_removes_planted_modulated_cells(synthetic):
    data, truth = synthetic
    p = data.ds["p_run_mod_ns"].values
    modulated = truth["running_modulated"].values
    assert 0.1 < modulated.mean() < 0.4
    assert (p[modulated] < 0.05).mean() > 0.8
    assert (p[~modulated] < 0.05).mean() < 0.12
    selected, report = select_neurons(data)
    kept = np.isin(truth["cell_specimen_id"], selected.ds["cell_specimen_id"].values)
    assert (kept & modulated).sum() <= 0.2 * (kept.sum() + 1)
    steps = report.steps.set_index("step")["n_neurons"]
    assert steps["all"] == N >= steps["excitatory"] >= steps["not_running"] >= steps["reliable"] == selected.n_neurons


def test_running_pvalues_equal_scipy_welch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 50))
    running = rng.random((20, 50)) < 0.3
    x[running] += 0.8
    p = running_modulation_pvalues(x, running)
    ref = [stats.ttest_ind(xi[ri], xi[~ri], equal_var=False).pvalue for xi, ri in zip(x, running)]
    np.testing.assert_allclose(p, ref, rtol=1e-8)
    running[0] = False
    assert np.isnan(running_modulation_pvalues(x, running)[0])


def test_neurons_are_best_predicted_by_their_planted_layer(synthetic):
    # Encoding check (independent of the planting code): leave-one-out ridge (scikit-learn) from
    # each planted layer's features (top principal components) to the trial-averaged responses
    # of reliable neurons; the planted layer of a neuron's area should predict it best.
    from sklearn.linear_model import RidgeCV
    from sklearn.decomposition import PCA

    data, truth = synthetic
    gt = data.ground_truth["areas"]
    names = [info["layer"] for info in gt.values()]
    feats = _generator.layer_features(data.stimuli.values, names)
    scenes = data.ds["stimulus"].values >= 0
    reliable = truth["expected_reliability"].values > 0.8
    y = data.trial_average().values[reliable][:, scenes].T  # (118, n_reliable)
    y = (y - y.mean(0)) / y.std(0)
    loo_mse = []
    for name in names:
        x = PCA(n_components=50, random_state=0).fit_transform(feats[name][scenes])
        x /= x[:, 0].std()
        ridge = RidgeCV(alphas=[1.0], store_cv_results=True).fit(x, y)
        loo_mse.append(ridge.cv_results_[:, :, 0].mean(axis=0))
    best = np.array(names)[np.argmin(np.stack(loo_mse), axis=0)]
    planted = truth["layer"].values[reliable]
    assert reliable.sum() >= 30
    # 6 candidate layers: chance is 1/6 (measured: about half of the neurons; layers share their
    # leading components, so the rest spread over the other layers)
    assert (best == planted).mean() > 0.35


def test_cli_writes_file_and_prints_funnel(tmp_path, capsys):
    from mbutils.cli import main

    out = tmp_path / "cli.nc"
    assert main(["--no-progress", "data", "synthetic", "--out", str(out), "--neurons", "60", "--seed", "3"]) == 0
    text = capsys.readouterr().out
    assert str(out) in text and "split-half reliability >= 0.8" in text and "By area" in text
    with xr.open_dataset(out) as ds:
        assert ds.sizes["neuron"] == 60


def test_invalid_arguments():
    with pytest.raises(ValueError, match="n_neurons must be >= 1, got 0"):
        make_synthetic(n_neurons=0)
    with pytest.raises(ValueError, match="n_animals must be >= 1, got 0"):
        make_synthetic(n_neurons=10, n_animals=0)
