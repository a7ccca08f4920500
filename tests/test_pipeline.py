import json

import numpy as np
import pandas as pd
import pytest
import torch

from mbutils.data import NeuralDataset
from mbutils.models import FeatureModel, LayerInfo
from mbutils.results import load_model_results, load_run
from mbutils.scoring import compare_rdms, pearson_columns, ridge_gcv_predictions, score_model, summarize_scores


class FakeModel(FeatureModel):
    """Three layers: random features, a layer that planted the responses, and a constant layer."""

    name = "fake"
    weights = "random"

    def __init__(self, planted):
        self.planted = planted

    def run(self, stimuli, on_layer, batch_size=None, progress=None):
        n = len(stimuli)
        rng = np.random.default_rng(1)
        layers = [rng.normal(size=(n, 300)), self.planted, np.zeros((n, 50))]
        for i, f in enumerate(layers, 1):
            on_layer(LayerInfo(f"l{i}", i, i / 3, f.shape[1], "Fake"), torch.tensor(f, dtype=torch.float32))


@pytest.fixture
def tiny():
    rng = np.random.default_rng(0)
    n_stim, n_trials = 20, 10
    # stimuli on a 3-dimensional latent manifold: responses linear in the planted layer are then
    # predictable from 19 training stimuli, and the planted layer clearly wins
    planted = rng.normal(size=(n_stim, 3)) @ rng.normal(size=(3, 400)) + 0.1 * rng.normal(size=(n_stim, 400))
    w = rng.normal(size=(400, 12)) / 20
    signal = planted @ w  # stimuli x neurons
    resp = signal.T[:, :, None] + 0.3 * rng.normal(size=(12, n_stim, n_trials))
    resp[3] = 1.0  # a constant neuron (reliability NaN -> not selected)
    stim = np.concatenate([rng.integers(0, 255, (n_stim, 8, 8)), np.full((1, 8, 8), 128)]).astype(np.uint8)
    resp = np.concatenate([resp, np.full((12, 1, n_trials), 0.5)], axis=1)  # blank stimulus
    resp[5, 2, :] = np.nan  # a neuron with a stimulus lacking any trial
    ds = NeuralDataset.from_arrays(
        resp, stim, cell_specimen_id=np.arange(12) + 100, area=["VISp"] * 6 + ["VISl"] * 6,
        cre_line=["Cux2"] * 4 + ["Rorb"] * 8, imaging_depth=[175] * 7 + [275] * 5, excitatory=[True] * 12,
        stimulus=np.r_[np.arange(n_stim), -1], source="test")
    return ds, planted


def test_score_model_end_to_end(tiny, tmp_path):
    ds, planted = tiny
    model = FakeModel(planted)
    with pytest.warns(RuntimeWarning, match="excluding 1 of"):
        tables = score_model(model, ds, tmp_path / "out", threshold=0.5, n_components=64, cache=False,
                             progress=False)
    for name in ("scores", "scores_groups", "neuron_scores", "summary"):
        assert (tmp_path / "out" / f"{name}.parquet").exists()
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["dataset"]["n_stimuli"] == 20 and prov["dataset"]["n_neurons_excluded_nan"] == 1

    # independent reference for layer 2 (200 < 400 features -> projected by the 64-component SRP)
    from mbutils.reduction import SparseRandomProjection

    scenes = ds.scenes()
    keep = ~np.isin(scenes.ds["cell_specimen_id"].values, [103, 105])
    y = np.nanmean(scenes.responses.values[keep], axis=2).T
    z = SparseRandomProjection(64, seed=0)(torch.tensor(planted, dtype=torch.float32))
    r = pearson_columns(ridge_gcv_predictions(z.astype(np.float64), y), y)
    ns = tables["neuron_scores"]
    got = ns[ns.layer == "l2"].sort_values("cell_specimen_id")["score"].to_numpy()
    np.testing.assert_allclose(got, r, rtol=1e-6)
    sc = tables["scores"]
    visp = sc[(sc.layer == "l2") & (sc.metric == "srp_ridge") & (sc.area == "VISp")]
    areas = scenes.ds["area"].values[keep]
    assert np.isclose(visp["score"].item(), r[areas == "VISp"].mean())
    # RSA against numpy
    rsa = sc[(sc.layer == "l1") & (sc.metric == "rsa") & (sc.area == "VISl")]["score"].item()
    l1 = np.random.default_rng(1).normal(size=(20, 300))
    ref = compare_rdms(1 - np.corrcoef(l1), 1 - np.corrcoef(y[:, areas == "VISl"]))
    assert np.isclose(rsa, ref, atol=1e-6)
    # constant layer: NaN scores, counted
    l3 = sc[(sc.layer == "l3") & (sc.metric == "srp_ridge")]
    assert l3["score"].isna().all() and (l3["n_nan"] == l3["n_neurons"]).all()
    # planted layer wins both metrics
    summ = tables["summary"]
    assert set(summ["best_layer"]) == {"l2"}
    paper = summ[summ["metric"].isin(["srp_ridge", "rsa"])]
    assert paper["unbiased_score"].notna().all() and summ["overall_score"].notna().all()
    # the scale-aware score: all trials only, no unbiased maximum
    assert summ.loc[summ["metric"] == "srp_ridge_scaled", "unbiased_score"].isna().all()
    assert set(tables["scores_groups"]["grouping"]) == {"cre_line", "imaging_depth"}

    # the results reader gives back what was written (one model folder, and a run of it)
    (tmp_path / "res" / "models").mkdir(parents=True)
    (tmp_path / "out").rename(tmp_path / "res" / "models" / "fake__random")
    loaded = load_model_results(tmp_path / "res" / "models" / "fake__random")
    for name in ("scores", "scores_groups", "neuron_scores", "summary"):
        pd.testing.assert_frame_equal(loaded[name], tables[name])
    assert loaded["provenance"]["model"] == tables["summary"]["model"].iloc[0]
    run = load_run(tmp_path / "res", include_flagged=True, metrics=("srp_ridge", "rsa", "srp_ridge_scaled"))
    assert len(run.scores) == len(tables["scores"])


def test_summarize_unbiased_choice():
    scores = pd.DataFrame({
        "model": "m", "train_type": "trained", "metric": "rsa", "area": "VISp",
        "layer": ["a", "b", "c"], "layer_index": [1, 2, 3], "layer_depth": [1 / 3, 2 / 3, 1.0],
        "score": [0.1, 0.5, 0.3], "score_odd": [0.2, 0.4, 0.45], "score_even": [0.1, 0.6, 0.2],
        "ceiling": 0.5,
    })
    s = summarize_scores(scores).iloc[0]
    assert s["max_score"] == 0.5 and s["best_layer"] == "b"
    # odd picks c -> even 0.2; even picks b -> odd 0.4
    assert np.isclose(s["unbiased_score"], 0.3)
    assert np.isclose(s["max_score_normalized"], 1.0)


def test_bad_arguments(tiny, tmp_path):
    ds, planted = tiny
    with pytest.raises(ValueError, match=r"mapping='sprr'; expected one of \['srp'"):
        score_model(FakeModel(planted), ds, tmp_path, mapping="sprr")
    with pytest.raises(ValueError, match="metric='rdm'"):
        score_model(FakeModel(planted), ds, tmp_path, metrics=("rdm",))


def test_exact_mapping_is_ridge_on_full_features_and_rerun_uses_cache(tiny, tmp_path):
    ds, planted = tiny
    kw = dict(threshold=0.5, mapping="exact", metrics=("srp_ridge",), cache=tmp_path / "cache", progress=False)
    with pytest.warns(RuntimeWarning):
        tables = score_model(FakeModel(planted), ds, tmp_path / "a", **kw)
    scenes = ds.scenes()
    keep = ~np.isin(scenes.ds["cell_specimen_id"].values, [103, 105])
    y = np.nanmean(scenes.responses.values[keep], axis=2).T
    ref = pearson_columns(ridge_gcv_predictions(planted.astype(np.float32).astype(np.float64), y), y)
    ns = tables["neuron_scores"]
    np.testing.assert_allclose(ns[ns.layer == "l2"].sort_values("cell_specimen_id")["score"], ref, rtol=1e-7)
    with pytest.warns(RuntimeWarning):
        again = score_model(FakeModel(planted), ds, tmp_path / "b", **kw)
    prov = json.loads((tmp_path / "b" / "provenance.json").read_text())
    assert prov["timings"]["features_from_cache"] is True
    pd.testing.assert_frame_equal(again["scores"], tables["scores"])


def test_areas_with_few_neurons_are_warned_about_and_marked():
    from mbutils.scoring import Targets, score_reduced

    rng = np.random.default_rng(0)
    n = 30
    areas = np.array(["VISp"] * 12 + ["VISl"] * 4)
    y = rng.normal(size=(n, len(areas)))
    neurons = pd.DataFrame({"cell_specimen_id": np.arange(len(areas)), "area": areas, "cre_line": "c",
                            "imaging_depth": 175, "reliability": 0.9})
    layers = pd.DataFrame({"name": ["a"], "index": [0], "depth": [1.0]})
    with pytest.warns(RuntimeWarning, match=r"fewer than 10 neurons.*VISl \(4\)"):
        out = score_reduced(layers, [rng.normal(size=(n, 8))], None, Targets(y, y, y, neurons), groupings=(),
                            progress=False)
    marked = out["scores"].groupby("area")["few_neurons"].all()
    assert marked["VISl"] and not marked["VISp"]


def test_provenance_is_strict_json_with_versions():
    import json

    from mbutils.scoring.pipeline import _strict_json, _versions

    value = {"a": float("nan"), "b": [np.float32(1.5), np.inf], "c": np.arange(2), "d": {"e": -np.inf}}
    text = json.dumps(_strict_json(value), allow_nan=False)
    assert json.loads(text) == {"a": None, "b": [1.5, None], "c": [0, 1], "d": {"e": None}}
    v = _versions()
    assert {"python", "numpy", "torch", "timm", "torchvision"} <= set(v)
