"""Linear CKA (mbutils.scoring.cka) against the published formulas, and the pipeline's CKA metric."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from mbutils.data import NeuralDataset
from mbutils.models import FeatureModel, LayerInfo
from mbutils.reliability import trial_splits
from mbutils.scoring import score_model, summarize_scores
from mbutils.scoring.cka import cka, cka_matrix, linear_gram, splithalf_cka_reliability, unbiased_center
from mbutils.scoring.pipeline import Targets


# ----------------------------------------------------------------------- references (float64)
def hsic_biased(K, L):
    """Gretton et al. 2005: tr(K H L H) / (n - 1)^2."""
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return np.trace(K @ H @ L @ H) / (n - 1) ** 2


def hsic_unbiased(K, L):
    """Song et al. 2012, eq. (5): on the Grams with their diagonals set to 0."""
    n = K.shape[0]
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0.0)
    np.fill_diagonal(Lt, 0.0)
    one = np.ones(n)
    return (np.trace(Kt @ Lt) + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ Kt @ Lt @ one)) / (n * (n - 3))


def cka_reference(X, Y, estimator="biased"):
    """Kornblith et al. 2019: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), linear kernels of the raw
    (uncentered) features."""
    hsic = hsic_biased if estimator == "biased" else hsic_unbiased
    K, L = X @ X.T, Y @ Y.T
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def _pair(rng, n, p, q):
    X = rng.normal(size=(n, p)) + 2.0  # an offset: the formulas center (or are unbiased) themselves
    Y = X[:, :4] @ rng.normal(size=(4, q)) + rng.normal(size=(n, q)) - 1.0
    return X, Y


# ----------------------------------------------------------------------- the building blocks
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
@pytest.mark.parametrize("n, p, q", [(30, 200, 12), (150, 20, 8)])  # fewer stimuli than features, and more
def test_cka_equals_the_published_formula(estimator, n, p, q):
    rng = np.random.default_rng(n + p)
    X, Y = _pair(rng, n, p, q)
    ref = cka_reference(X, Y, estimator)
    assert 0.05 < ref < 0.99  # a value in between, not a degenerate one
    assert cka(X, Y, estimator) == pytest.approx(ref, rel=1e-9, abs=1e-12)
    # from Gram matrices, centered or not
    assert cka(X @ X.T, Y @ Y.T, estimator, grams=True) == pytest.approx(ref, rel=1e-9)
    assert cka(linear_gram(X), linear_gram(Y), estimator, grams=True) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_cka_of_identical_inputs_is_one(estimator):
    X = np.random.default_rng(3).normal(size=(40, 15))
    assert cka(X, X, estimator) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling(estimator):
    rng = np.random.default_rng(4)
    X, Y = _pair(rng, 50, 30, 10)
    Q = np.linalg.qr(rng.normal(size=(30, 30)))[0]
    base = cka(X, Y, estimator)
    assert cka(X @ Q, Y, estimator) == pytest.approx(base, rel=1e-10)
    assert cka(X * 1e-7, Y * 3e8, estimator) == pytest.approx(base, rel=1e-10)
    assert cka(1e150 * X @ Q, Y, estimator) == pytest.approx(base, rel=1e-10)  # no overflow
    # not invariant to an arbitrary invertible map (a check that the test can fail)
    A = rng.normal(size=(30, 30)) @ np.diag(np.logspace(0, 2, 30))
    assert abs(cka(X @ A, Y, estimator) - base) > 1e-3


def test_unbiased_center_is_the_bilinear_form_of_the_unbiased_hsic():
    rng = np.random.default_rng(5)
    X, Y = _pair(rng, 25, 40, 6)
    K, L = X @ X.T, Y @ Y.T
    U, V = unbiased_center(K), unbiased_center(L)
    n = K.shape[0]
    assert np.sum(U * V) / (n * (n - 3)) == pytest.approx(hsic_unbiased(K, L), rel=1e-10)
    np.testing.assert_allclose(U.sum(1), 0.0, atol=1e-9 * np.abs(K).max())


def test_cka_matrix_pairs_and_constant_representations():
    rng = np.random.default_rng(6)
    Xs = [rng.normal(size=(20, p)) for p in (5, 50)] + [np.ones((20, 7))]
    Ys = [rng.normal(size=(20, q)) for q in (3, 9)]
    M = cka_matrix([x @ x.T for x in Xs], [y @ y.T for y in Ys])
    assert M.shape == (3, 2)
    for i in range(2):
        for j in range(2):
            assert M[i, j] == pytest.approx(cka_reference(Xs[i], Ys[j]), rel=1e-10)
    assert np.isnan(M[2]).all()  # a constant layer has no CKA


def test_splithalf_cka_reliability_matches_a_direct_computation():
    rng = np.random.default_rng(7)
    trials = rng.normal(size=(1, 30, 1)) * rng.normal(size=(8, 1, 1)) + rng.normal(size=(8, 30, 12))
    first, second = trial_splits(12, 10, 0)
    values = []
    for a, b in zip(first, second):
        r = cka_reference(trials[:, :, a].mean(2).T, trials[:, :, b].mean(2).T)
        values.append(2 * r / (1 + r))
    assert splithalf_cka_reliability(trials) == pytest.approx(np.mean(values), rel=1e-10)


# ----------------------------------------------------------------------- the pipeline
class TwoLayers(FeatureModel):
    """A small layer (float64 Gram) and a layer of more than 16,384 features (float32 Gram)."""

    name = "two_layers"
    weights = "random"

    def __init__(self, layers):
        self.arrays = layers

    def run(self, stimuli, on_layer, batch_size=None, progress=None):
        for i, f in enumerate(self.arrays, 1):
            on_layer(LayerInfo(f"l{i}", i, i / len(self.arrays), f.shape[1], "Fake"),
                     torch.tensor(f, dtype=torch.float32))


@pytest.fixture(scope="module")
def mouse():
    rng = np.random.default_rng(0)
    n_stim, n_trials, n_neur = 24, 10, 16
    latent = rng.normal(size=(n_stim, 3))
    small = latent @ rng.normal(size=(3, 300)) + 0.5 * rng.normal(size=(n_stim, 300))
    large = (np.tanh(latent @ rng.normal(size=(3, 20000))) + 0.2 * rng.normal(size=(n_stim, 20000))) * 50
    signal = latent @ rng.normal(size=(3, n_neur))
    resp = signal.T[:, :, None] + 0.8 * rng.normal(size=(n_neur, n_stim, n_trials))
    stim = np.concatenate([rng.integers(0, 255, (n_stim, 8, 8)), np.full((1, 8, 8), 128)]).astype(np.uint8)
    resp = np.concatenate([resp, np.full((n_neur, 1, n_trials), 0.5)], axis=1)
    ds = NeuralDataset.from_arrays(
        resp, stim, cell_specimen_id=np.arange(n_neur), area=["VISp"] * 8 + ["VISl"] * 8,
        cre_line=["Cux2"] * 8 + ["Rorb"] * 8, imaging_depth=[175] * 16, excitatory=[True] * 16,
        stimulus=np.r_[np.arange(n_stim), -1], source="test")
    return ds, [small, large]


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_pipeline_cka_equals_the_formula_on_the_layer_features(mouse, tmp_path, estimator):
    ds, layers = mouse
    # rounded as the extraction hands them over (float32), then the reference in float64
    feats = [np.asarray(torch.tensor(f, dtype=torch.float32), dtype=np.float64) for f in layers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # areas of few neurons
        tables = score_model(TwoLayers(layers), ds, tmp_path / "out", metrics=("srp_ridge", "rsa", "cka"),
                             threshold=0.3, n_components=64, cache=False, progress=False, reliability_cutoffs=(),
                             cka_estimator=estimator)
        targets = Targets.from_dataset(ds, threshold=0.3)
    sc = tables["scores"]
    c = sc[sc["metric"] == "cka"].set_index(["layer", "area"])
    areas = targets.neurons["area"].to_numpy()
    assert set(c.index.get_level_values("area")) == set(areas) and len(c) == 4
    for i, f in enumerate(feats, 1):
        for area in np.unique(areas):
            m = areas == area
            row = c.loc[(f"l{i}", area)]
            tol = 1e-9 if i == 1 else 1e-6  # float64 Gram; float32 products (20,000 features)
            assert row["score"] == pytest.approx(cka_reference(f, targets.y[:, m], estimator), abs=tol)
            assert row["score_odd"] == pytest.approx(cka_reference(f, targets.y_odd[:, m], estimator), abs=tol)
            assert row["score_even"] == pytest.approx(cka_reference(f, targets.y_even[:, m], estimator), abs=tol)
            trials = targets.trials[m].astype(np.float64)
            first, second = trial_splits(trials.shape[2], 10, 0)
            halves = [(trials[:, :, a].mean(2).T, trials[:, :, b].mean(2).T) for a, b in zip(first, second)]
            rel = np.mean([2 * r / (1 + r) for r in (cka_reference(x, y, estimator) for x, y in halves)])
            assert row["ceiling"] == pytest.approx(np.sqrt(rel), rel=1e-9)
    # the layer that carries the latent structure wins in both areas, and the summary has CKA maxima
    assert (c.xs("l2", level="layer")["score"] > 0.3).all()
    summary = tables["summary"]
    assert set(summary["metric"]) == {"srp_ridge", "rsa", "cka", "srp_ridge_scaled"}
    again = summarize_scores(sc)
    pd.testing.assert_frame_equal(summary[list(again.columns)], again)
    # the overall score stays the mean of the paper's two maxima
    s = summary.set_index(["metric", "area"])
    for area in np.unique(areas):
        assert s.loc[("cka", area), "overall_score"] == pytest.approx(
            (s.loc[("srp_ridge", area), "max_score"] + s.loc[("rsa", area), "max_score"]) / 2)
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["parameters"]["metrics"] == ["srp_ridge", "rsa", "cka"]
    assert prov["parameters"]["cka_estimator"] == estimator


def test_cka_alone_and_the_default_metrics(mouse, tmp_path):
    ds, layers = mouse
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        only = score_model(TwoLayers(layers), ds, tmp_path / "a", metrics=("cka",), threshold=0.3, cache=False,
                           progress=False, reliability_cutoffs=())
        default = score_model(TwoLayers(layers), ds, tmp_path / "b", threshold=0.3, n_components=64, cache=False,
                              progress=False, reliability_cutoffs=())
    assert set(only["scores"]["metric"]) == {"cka"}
    assert "cka" not in set(default["scores"]["metric"])
    with pytest.raises(ValueError, match="cka_estimator"):
        score_model(TwoLayers(layers), ds, tmp_path / "c", metrics=("cka",), threshold=0.3, cache=False,
                    progress=False, cka_estimator="debiased")


def test_a_constant_layer_has_no_cka(mouse):
    from mbutils.scoring import score_features

    ds, layers = mouse
    feats = {"zero": np.full((24, 30), 3.0), "small": layers[0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for metrics in (("cka",), ("srp_ridge", "cka")):
            sc = score_features(feats, ds, metrics=metrics, threshold=0.3, progress=False,
                                reliability_cutoffs=())["scores"]
            c = sc[sc["metric"] == "cka"]
            assert c.loc[c["layer"] == "zero", "score"].isna().all() and c.loc[c["layer"] == "zero", "constant"].all()
            assert c.loc[c["layer"] == "small", "score"].notna().all()


def test_cka_at_reliability_cutoffs(mouse, tmp_path):
    ds, layers = mouse
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        tables = score_model(TwoLayers(layers), ds, tmp_path / "out", metrics=("rsa", "cka"), threshold=0.3,
                             cache=False, progress=False, reliability_cutoffs=(0.3, 0.6))
        targets = Targets.from_dataset(ds, threshold=0.3)
    rel = tables["scores_reliability"]
    c = rel[rel["metric"] == "cka"].set_index(["layer", "area", "cutoff"])
    main = tables["scores"].query("metric == 'cka'").set_index(["layer", "area"])
    reliability, areas = targets.neurons["reliability"].to_numpy(), targets.neurons["area"].to_numpy()
    feats = [np.asarray(torch.tensor(f, dtype=torch.float32), dtype=np.float64) for f in layers]
    n_checked = 0
    for (layer, area, cutoff), row in c.iterrows():
        m = (areas == area) & (reliability >= cutoff)
        assert row["n_neurons"] == m.sum()
        f = feats[int(layer[1:]) - 1]
        assert row["score"] == pytest.approx(cka_reference(f, targets.y[:, m]), abs=1e-6)
        if cutoff == 0.3:  # every selected neuron: the main table's score and ceiling
            assert row["score"] == pytest.approx(main.loc[(layer, area), "score"], abs=1e-12)
            assert row["ceiling"] == pytest.approx(main.loc[(layer, area), "ceiling"], rel=1e-12)
        n_checked += 1
    assert n_checked == len(c) >= 6 and set(c.index.get_level_values("cutoff")) == {0.3, 0.6}
