"""The mouse-to-mouse ceiling: planted values, independent references, normalization."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mbutils.ceilings import mouse_to_mouse_ceiling, mouse_to_mouse_scores, normalize_by_ceiling
from mbutils.data import NeuralDataset


def planted_mouse(n_animals=4, n_per=400, k_shared=4, k_private=1, private_scale=0.0, noise_sd=2.0, n_stim=118,
                  n_trials=20, seed=0, area="VISl"):
    """Animals whose neurons read out one shared latent (and one private latent per animal).

    Neuron i of animal a: trial response ``z w_i + u_a v_i + noise`` with ``z`` (n_stim, k_shared)
    shared by all animals, ``u_a`` (n_stim, k_private) the animal's own, ``v_i`` scaled by
    ``private_scale``, Gaussian trial noise of SD ``noise_sd``.

    Returns the dataset and the planted ceilings:
    - SRP-Ridge: the best prediction of a held-out neuron from other animals is its shared signal,
      whose correlation with the trial average is ``sqrt(v_shared / (v_shared + v_private + v_noise))``
      (sample variances over the stimuli, ``v_noise = noise_sd^2 / n_trials``), averaged over the
      animal's neurons, then over animals;
    - RSA: Pearson r between the population-limit RDMs (infinitely many neurons with weights
      N(0, I)) of the held-out animal (``z z' + s^2 u_a u_a' + v_noise I``) and of the other
      animals pooled (their private parts averaged), as correlation distances, averaged over animals.
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_stim, k_shared))
    private = [rng.standard_normal((n_stim, k_private)) for _ in range(n_animals)]
    v_noise = noise_sd ** 2 / n_trials
    responses, animals, srp = [], [], []
    for a in range(n_animals):
        w = rng.standard_normal((n_per, k_shared))
        v = rng.standard_normal((n_per, k_private)) * private_scale
        shared, own = z @ w.T, private[a] @ v.T  # (n_stim, n_per)
        trials = (shared + own).T[:, :, None] + noise_sd * rng.standard_normal((n_per, n_stim, n_trials))
        responses.append(trials)
        animals += [300 + a] * n_per
        vs, vp = shared.var(axis=0), own.var(axis=0)
        srp.append(np.sqrt(vs / (vs + vp + v_noise)).mean())
    iu = np.triu_indices(n_stim, k=1)

    def corr(gram):
        d = np.sqrt(np.diag(gram))
        return gram / np.outer(d, d)

    rsa = [np.nan]
    for a in range(n_animals if n_animals > 1 else 0):
        held = z @ z.T + private_scale ** 2 * private[a] @ private[a].T + v_noise * np.eye(n_stim)
        others = z @ z.T + private_scale ** 2 * np.mean(
            [private[b] @ private[b].T for b in range(n_animals) if b != a], axis=0) + v_noise * np.eye(n_stim)
        rsa.append(stats.pearsonr(1 - corr(held)[iu], 1 - corr(others)[iu])[0])
    n = n_animals * n_per
    dataset = NeuralDataset.from_arrays(np.concatenate(responses), np.zeros((n_stim, 2, 2), np.uint8),
                                        area=np.full(n, area), specimen_id=np.array(animals))
    return dataset, {"srp_ridge": float(np.mean(srp)), "rsa": float(np.mean(rsa[1:])) if n_animals > 1 else np.nan}


def _by_metric(table):
    return table.set_index("metric")


@pytest.mark.parametrize("seed", [0, 1])
def test_shared_latent_ceiling_reaches_the_planted_value(seed):
    # every animal reads out the same latent: the other animals predict a neuron as well as its
    # own signal does, and the mouse-to-mouse ceiling meets the split-half ceiling
    data, planted = planted_mouse(seed=seed)
    table = _by_metric(mouse_to_mouse_ceiling(data, threshold=None))
    srp, rsa = table.loc["srp_ridge"], table.loc["rsa"]
    assert srp["n_animals"] == rsa["n_animals"] == 4 and srp["n_neurons"] == 1600
    # measured: 0.952 against 0.959 (seed 0), 0.940 against 0.949 (seed 1): a finite population of
    # noisy neurons as features fits a little of the held-out neuron's noise
    assert planted["srp_ridge"] - 0.02 < srp["ceiling"] < planted["srp_ridge"] + 0.005
    assert abs(srp["split_half_ceiling"] - planted["srp_ridge"]) < 0.01
    assert planted["rsa"] > 0.999 and rsa["ceiling"] > 0.98


@pytest.mark.parametrize("seed", [0, 1])
def test_private_signals_lower_the_ceiling_to_the_planted_value(seed):
    # each animal adds a signal of its own: reliable (the split-half ceiling stays high) but not
    # predictable from other animals
    data, planted = planted_mouse(private_scale=1.0, seed=seed)
    table = _by_metric(mouse_to_mouse_ceiling(data, threshold=None))
    srp, rsa = table.loc["srp_ridge"], table.loc["rsa"]
    assert planted["srp_ridge"] < 0.9 and srp["split_half_ceiling"] > 0.95
    # measured: 0.839 against 0.868 (seed 0), 0.805 against 0.833 (seed 1): the other animals'
    # private signals are features that fit noise too
    assert planted["srp_ridge"] - 0.045 < srp["ceiling"] < planted["srp_ridge"] + 0.01
    assert srp["split_half_ceiling"] - srp["ceiling"] > 0.08
    assert abs(rsa["ceiling"] - planted["rsa"]) < 0.03
    assert rsa["split_half_ceiling"] - rsa["ceiling"] > 0.1


def test_srp_part_equals_scikit_learn_and_scipy():
    from sklearn.linear_model import RidgeCV

    data, _ = planted_mouse(n_animals=3, n_per=7, noise_sd=3.0, n_stim=40, n_trials=6, private_scale=0.5, seed=3)
    scores = mouse_to_mouse_scores(data, threshold=None, alpha=1.0)
    y = data.trial_average().values.astype(np.float64)  # (neurons, stimuli)
    animals = data.ds["specimen_id"].values
    expected = []
    for animal in np.unique(animals):
        held, others = animals == animal, animals != animal
        ridge = RidgeCV(alphas=[1.0], store_cv_results=True, scoring="neg_mean_squared_error")
        loo = ridge.fit(y[others].T, y[held].T).cv_results_[..., 0]  # leave-one-out predictions
        r = [stats.pearsonr(loo[:, j], y[held][j])[0] for j in range(int(held.sum()))]
        ref_rsa = stats.pearsonr(1 - np.corrcoef(y[held].T)[np.triu_indices(40, 1)],
                                 1 - np.corrcoef(y[others].T)[np.triu_indices(40, 1)])[0]
        expected.append((int(animal), np.mean(r), ref_rsa))
    srp = scores[scores.metric == "srp_ridge"].set_index("specimen_id")["score"]
    rsa = scores[scores.metric == "rsa"].set_index("specimen_id")["score"]
    for animal, ref_srp, ref_rsa in expected:
        assert srp[animal] == pytest.approx(ref_srp, abs=1e-9)
        assert rsa[animal] == pytest.approx(ref_rsa, abs=1e-9)
    ceiling = _by_metric(mouse_to_mouse_ceiling(data, threshold=None))
    assert ceiling.loc["srp_ridge", "ceiling"] == pytest.approx(np.mean([e[1] for e in expected]), abs=1e-9)
    assert ceiling.loc["rsa", "ceiling"] == pytest.approx(np.mean([e[2] for e in expected]), abs=1e-9)


def test_split_half_ceiling_is_the_score_tables_ceiling():
    from mbutils.reliability import noise_ceiling, splithalf_rdm_reliability, splithalf_reliability
    from mbutils.scoring import score_features

    data, _ = planted_mouse(n_animals=3, n_per=10, n_stim=30, n_trials=8, noise_sd=3.0, seed=4)
    table = _by_metric(mouse_to_mouse_ceiling(data, threshold=0.5))
    features = {"layer0": np.random.default_rng(0).normal(size=(30, 20))}
    scores = score_features(features, data, threshold=0.5, groupings=(), reliability_cutoffs=(), check=False,
                            progress=False)["scores"].set_index("metric")
    for metric in ("srp_ridge", "rsa"):
        assert table.loc[metric, "split_half_ceiling"] == pytest.approx(scores.loc[metric, "ceiling"], abs=1e-12)
        assert table.loc[metric, "n_neurons"] == scores.loc[metric, "n_neurons"] < 30
    table = _by_metric(mouse_to_mouse_ceiling(data, threshold=None))
    rel = splithalf_reliability(data.responses.values)
    assert table.loc["srp_ridge", "split_half_ceiling"] == pytest.approx(np.nanmean(noise_ceiling(rel)), abs=1e-12)
    assert table.loc["rsa", "split_half_ceiling"] == pytest.approx(
        noise_ceiling(splithalf_rdm_reliability(data.responses.values)), abs=1e-12)


def test_areas_animals_and_selection():
    a, _ = planted_mouse(n_animals=3, n_per=12, n_stim=30, noise_sd=1.0, seed=5, area="VISp")
    b, _ = planted_mouse(n_animals=1, n_per=12, n_stim=30, noise_sd=1.0, seed=5, area="VISam")
    merged = NeuralDataset.from_arrays(
        np.concatenate([a.responses.values, b.responses.values]), a.stimuli.values,
        area=np.concatenate([a.ds["area"].values, b.ds["area"].values]),
        specimen_id=np.concatenate([a.ds["specimen_id"].values, b.ds["specimen_id"].values + 10]))
    table = mouse_to_mouse_ceiling(merged, threshold=None)
    assert table["area"].tolist() == ["VISp", "VISp", "VISam", "VISam"]
    visam = table[table.area == "VISam"]
    assert visam["n_animals"].tolist() == [0, 0] and visam["ceiling"].isna().all()
    assert (table[table.area == "VISp"]["n_animals"] == 3).all()
    per_animal = mouse_to_mouse_scores(merged, threshold=None, metrics=["rsa"])
    assert set(per_animal["metric"]) == {"rsa"} and (per_animal["n_other_animals"] == 2).all()
    assert (per_animal["n_other_neurons"] == 24).all()
    # a threshold above every neuron's reliability selects none: the error says so
    with pytest.raises(ValueError, match="no neuron passed the selection"):
        mouse_to_mouse_ceiling(merged, threshold=1.0)


def test_errors_name_the_problem():
    data, _ = planted_mouse(n_animals=2, n_per=3, n_stim=20, seed=6)
    no_animals = NeuralDataset(data.ds.drop_vars("specimen_id"))
    with pytest.raises(ValueError, match="no 'specimen_id' coordinate"):
        mouse_to_mouse_ceiling(no_animals, threshold=None)
    with pytest.raises(ValueError, match=r"metrics=\['cka'\]"):
        mouse_to_mouse_ceiling(data, metrics=["cka"], threshold=None)
    with pytest.raises(ValueError, match="alpha=0"):
        mouse_to_mouse_scores(data, alpha=0, threshold=None)


def test_normalize_by_ceiling():
    summary = pd.DataFrame({"model": ["m", "m", "m", "m"], "area": ["VISp", "VISp", "VISl", "VISam"],
                            "metric": ["srp_ridge", "rsa", "srp_ridge", "srp_ridge_scaled"],
                            "max_score": [0.3, 0.5, 0.2, 0.25], "ceiling": [0.9, 0.95, 0.8, 0.9]})
    ceilings = pd.DataFrame({"area": ["VISp", "VISp", "VISl"], "metric": ["srp_ridge", "rsa", "srp_ridge"],
                             "ceiling": [0.6, 0.4, 0.0]})
    out = normalize_by_ceiling(summary, ceilings)
    assert out[["model", "area", "metric", "max_score", "ceiling"]].equals(summary)
    np.testing.assert_allclose(out["mouse_ceiling"], [0.6, 0.4, 0.0, np.nan])
    np.testing.assert_allclose(out["max_score_mouse_normalized"], [0.5, 1.25, np.nan, np.nan])
    with pytest.raises(ValueError, match="lacks the columns"):
        normalize_by_ceiling(summary.drop(columns="max_score"), ceilings)
    with pytest.raises(ValueError, match="repeated"):
        normalize_by_ceiling(summary, pd.concat([ceilings, ceilings]))


def test_ceiling_page_is_in_the_book_and_explains_both_ceilings(tmp_path):
    import jupytext

    from mbutils.build import NOTEBOOKS, section_notebooks, write_toc

    assert NOTEBOOKS / "ceilings.py" in section_notebooks()
    toc = write_toc(tmp_path / "_toc.yml", ["intro", "neural_data", "ceilings", "results_01_x"], [])
    data_part = next(p for p in toc["parts"] if p["caption"] == "The data and the models")
    assert {"file": "generated/ceilings"} in data_part["chapters"]
    text = " ".join(c.source for c in jupytext.read(NOTEBOOKS / "ceilings.py").cells if c.cell_type == "markdown")
    text = " ".join(text.split())
    for phrase in ("**The split-half ceiling**", "**The mouse-to-mouse ceiling**", "Spearman-Brown",
                   "`alpha = 1`", "leave-one-out", "**Normalized scores above 1.**",
                   "is a lower bound on what is predictable, set by how well other animals predict one, "
                   "not a bound on models"):
        assert phrase in text, phrase


@pytest.mark.slow
def test_ceiling_page_runs_with_papermill(tmp_path):
    import json

    from mbutils.build import NOTEBOOKS, run_notebook
    from mbutils.testing import make_fake_results

    parts = [planted_mouse(n_animals=3, n_per=8, n_stim=30, n_trials=10, noise_sd=1.0, seed=s, area=a)[0]
             for s, a in ((1, "VISp"), (2, "VISl"))]
    data = NeuralDataset.from_arrays(
        np.concatenate([p.responses.values for p in parts]), parts[0].stimuli.values,
        area=np.concatenate([p.ds["area"].values for p in parts]),
        specimen_id=np.concatenate([p.ds["specimen_id"].values for p in parts]), source="synthetic")
    path = data.save(tmp_path / "ds.nc")
    make_fake_results(tmp_path / "run", n_neurons_per_area=3, dataset=path)
    out = tmp_path / "ceilings.ipynb"
    run = run_notebook(NOTEBOOKS / "ceilings.py", out, dict(dataset=str(path), results=str(tmp_path / "run")))
    assert run.status == "done" and not run.error, run.error
    outputs = [o for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error" or o.get("name") == "stderr"]
    summary = "".join(outputs[-1]["data"]["text/markdown"])
    expected = mouse_to_mouse_ceiling(path)
    srp = expected[expected.metric == "srp_ridge"]
    assert f"{srp['ceiling'].min():.3f}" in summary and "score above the mouse-to-mouse ceiling" in summary
