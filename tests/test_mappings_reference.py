"""The method-validation comparison (paper A.5): PCA fitted on an image set, layer screening,
agreement of ridge GCV with the pipeline's SRP-Ridge, the figure and the closing summary."""
import numpy as np
import pandas as pd
import pytest
import scipy.stats
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV

from mbutils.scoring import compare_mappings, summarize_mappings
from mbutils.scoring.mappings import (MIN_EFFECTIVE_DF, _choose_layers, describe_mappings, fitted_pca_scores,
                                      layer_signal, mapping_scores)


def _latent_problem(seed=0, n=40, n_ref=400, p=600, m=12):
    """Stimulus features, image-set features of the same layer, and responses (planted latents)."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(30, p))
    ref = rng.normal(size=(n_ref, 30)) @ mixing + 0.3 * rng.normal(size=(n_ref, p))
    latent = rng.normal(size=(n, 30))
    x = latent @ mixing + 0.3 * rng.normal(size=(n, p))
    y = latent[:, :5] @ rng.normal(size=(5, m)) + 0.5 * rng.normal(size=(n, m))
    return x, ref, y


def _sklearn_loo(x, y, alpha=1.0):
    """scikit-learn's leave-one-out ridge predictions (stored with a prediction-based scoring)."""
    ridge = RidgeCV(alphas=[alpha], store_cv_results=True, scoring="explained_variance")
    return ridge.fit(np.asarray(x, dtype=np.float64), y).cv_results_[:, :, 0]


def _align_signs(a, b):
    """Columns of ``a`` flipped to the sign of the matching columns of ``b``."""
    return a * np.sign(np.sum(a * b, axis=0))


# --------------------------------------------------------------------------- the image set
def test_image_set_is_disjoint_from_the_stimuli():
    from mbutils.data import make_image_set, make_stimuli
    from mbutils.data._imageset import IMAGE_SET_SCALES, STIMULUS_SCALES
    from mbutils.data.stimuli import PHOTOGRAPHS, _photograph

    shape = (48, 61)
    images, crops = make_image_set(400, shape=shape)
    stimuli, _ = make_stimuli(shape=shape, blank=False)
    assert images.shape == (400, *shape) and images.dtype == np.uint8 and len(crops) == 400
    # other scales than the stimuli's, inside the photographs, from all of them
    assert crops["scale"].between(*IMAGE_SET_SCALES).all() and crops["scale"].max() < STIMULUS_SCALES[0]
    sizes = {name: _photograph(name).shape for name in PHOTOGRAPHS}
    assert all(r.y0 + r.crop_height <= sizes[r.photograph][0] and r.x0 + r.crop_width <= sizes[r.photograph][1]
               for r in crops.itertuples())
    assert set(crops["photograph"]) == set(PHOTOGRAPHS)
    # no image of the set is a stimulus, nor nearly one: Pearson r of the pixels below 0.95
    a = images.reshape(len(images), -1).astype(np.float64)
    b = stimuli.reshape(len(stimuli), -1).astype(np.float64)
    a = (a - a.mean(1, keepdims=True)) / np.linalg.norm(a - a.mean(1, keepdims=True), axis=1, keepdims=True)
    b = (b - b.mean(1, keepdims=True)) / np.linalg.norm(b - b.mean(1, keepdims=True), axis=1, keepdims=True)
    r = a @ b.T
    assert r.max() < 0.95
    np.testing.assert_allclose(r[0, 0], scipy.stats.pearsonr(a[0], b[0])[0], atol=1e-12)
    assert not (images[:, None] == stimuli[None]).all(axis=(2, 3)).any()
    # distinct images, and the same set every time
    assert len({im.tobytes() for im in images}) == len(images)
    again, _ = make_image_set(5, shape=shape)
    np.testing.assert_array_equal(again, images[:5])
    with pytest.raises(ValueError, match="n_images=0"):
        make_image_set(0)


# --------------------------------------------------------------------------- PCA on the image set
def test_fitted_pca_scores_match_sklearn_across_column_blocks():
    """Components fitted on the image set (read in column blocks of 8,192 features), applied to
    the stimuli: sklearn's PCA fitted on the reference and transforming the features."""
    rng = np.random.default_rng(3)
    p = 9000
    ref = (rng.normal(size=(150, 20)) @ rng.normal(size=(20, p)) + rng.normal(size=(150, p))).astype(np.float32)
    x = (rng.normal(size=(30, 20)) @ rng.normal(size=(20, p))).astype(np.float32)
    ours = fitted_pca_scores(ref, x, [5, 100, 400])
    pca = PCA(n_components=149, svd_solver="full").fit(ref.astype(np.float64))
    want = pca.transform(x.astype(np.float64))
    assert ours[5].shape == (30, 5) and ours[100].shape == (30, 100)
    assert ours[400].shape == (30, 149)  # capped at the reference's rank
    np.testing.assert_allclose(_align_signs(ours[100], want[:, :100]), want[:, :100], rtol=1e-6,
                               atol=1e-6 * np.abs(want).max())
    np.testing.assert_allclose(ours[5], ours[400][:, :5])
    with pytest.raises(ValueError, match="same layer"):
        fitted_pca_scores(ref, x[:, :10], 5)


def test_pca_rows_differ_across_sizes_above_the_stimulus_count():
    x, ref, y = _latent_problem()
    sizes = (100, 300)  # both above n_stimuli - 1 = 39
    fitted = compare_mappings({"l": x}, y, reductions=("pca",), n_components=sizes, regressions=("ridge_gcv",),
                              reference={"l": ref}, progress=False).set_index("n_components")
    assert fitted["n_features_used"].to_dict() == {100: 100, 300: 300}
    assert (fitted["fitted_on"] == "reference").all() and (fitted["fit_s"] > 0).all()
    assert fitted.loc[100, "score"] != fitted.loc[300, "score"]
    # the rows' scores are those of sklearn's PCA fitted on the reference + leave-one-out ridge
    for k in sizes:
        z = PCA(n_components=k, svd_solver="full").fit(ref).transform(x)
        loo = _sklearn_loo(z, y)
        r = np.mean([scipy.stats.pearsonr(loo[:, j], y[:, j])[0] for j in range(y.shape[1])])
        assert fitted.loc[k, "score"] == pytest.approx(r, abs=1e-8)
    # fitted on the stimuli, PCA has at most 39 components: both sizes give the same row
    own = compare_mappings({"l": x}, y, reductions=("pca",), n_components=sizes, regressions=("ridge_gcv",),
                           progress=False).set_index("n_components")
    assert own["n_features_used"].tolist() == [39, 39] and (own["fitted_on"] == "stimuli").all()
    assert own.loc[100, "score"] == pytest.approx(own.loc[300, "score"], abs=1e-12)


def test_pca_sizes_above_the_image_sets_rank_give_one_capped_row():
    """With 400 reference images PCA has at most 399 components: 500 gives one row at 399 and
    1000 (the same components) no row, so every PCA row shown is a distinct size."""
    x, ref, y = _latent_problem()
    out = compare_mappings({"l": x}, y, reductions=("pca", "srp"), n_components=(100, 500, 1000),
                           regressions=("ridge_gcv",), reference={"l": ref}, progress=False)
    pca = out[out["reduction"] == "pca"].set_index("n_components")
    assert pca["n_features_used"].to_dict() == {100: 100, 500: 399}
    assert pca["n_features_used"].is_unique
    assert sorted(out.loc[out["reduction"] == "srp", "n_components"]) == [100, 500, 1000]  # SRP untouched


def test_all_features_reference_equals_regressions_on_the_raw_features():
    """"none": one row per regression, scored as sklearn scores the raw features (the rotation onto
    the stimuli's span loses nothing)."""
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold, cross_val_predict

    x, _, y = _latent_problem(p=500)
    out = compare_mappings({"l": x}, y, reductions=("none", "srp"), n_components=(64, 128),
                           regressions=("ridge_gcv", "ridge_kfold", "pls10"), progress=False)
    none = out[out.reduction == "none"].set_index("regression")
    assert len(none) == 3 and (none["n_features_used"] == 500).all() and (none["n_components"] == 500).all()
    folds = KFold(5, shuffle=True, random_state=0)
    preds = {"ridge_gcv": _sklearn_loo(x, y),
             "ridge_kfold": cross_val_predict(Ridge(alpha=1.0), x, y, cv=folds),
             "pls10": cross_val_predict(PLSRegression(n_components=10, scale=False), x, y, cv=folds)}
    for reg, pred in preds.items():
        r = np.mean([scipy.stats.pearsonr(pred[:, j], y[:, j])[0] for j in range(y.shape[1])])
        assert none.loc[reg, "score"] == pytest.approx(r, abs=1e-7), reg
    summ = summarize_mappings(out)
    assert ("none", 0, "pls10") in summ.index


# --------------------------------------------------------------------------- agreement with the pipeline
@pytest.mark.filterwarnings("ignore:areas with fewer than 10 neurons")
def test_ridge_gcv_on_srp_4096_equals_the_pipelines_srp_ridge(tmp_path):
    """compare_mappings' srp-4096 + ridge_gcv scores what score_features scores as SRP-Ridge, neuron by
    neuron, and both equal scikit-learn's leave-one-out ridge on the same projection."""
    from mbutils.reduction import SparseRandomProjection
    from mbutils.scoring import Targets, score_features
    from mbutils.testing import make_fake_dataset

    path = make_fake_dataset(tmp_path / "d.nc", n_neurons_per_area=6, n_stimuli=40, n_trials=6)
    targets = Targets.from_dataset(path, threshold=0.5)
    rng = np.random.default_rng(5)
    y = targets.y
    x = (y @ rng.normal(size=(y.shape[1], 6000)) + 2.0 * rng.normal(size=(y.shape[0], 6000))).astype(np.float32)
    tables = score_features({"layer": x}, path, metrics=("srp_ridge",), threshold=0.5, check=False, progress=False)
    ns = tables["neuron_scores"]
    ns = ns[ns["metric"] == "srp_ridge"] if "metric" in ns else ns
    assert ns["cell_specimen_id"].tolist() == targets.neurons["cell_specimen_id"].tolist()
    pipeline = ns["score"].to_numpy()
    ours = mapping_scores(x, y, "srp", 4096, "ridge_gcv", alpha=1.0, seed=0)
    z = SparseRandomProjection(4096, seed=0)(x).astype(np.float64)
    loo = _sklearn_loo(z, y)
    ref = np.array([scipy.stats.pearsonr(loo[:, j], y[:, j])[0] for j in range(y.shape[1])])
    assert np.nanmean(ref) > 0.2  # a layer with signal
    np.testing.assert_allclose(ours, ref, atol=1e-8)
    np.testing.assert_allclose(pipeline, ref, atol=1e-6)
    table = compare_mappings({"layer": x}, y, reductions=("srp",), n_components=(4096,), regressions=("ridge_gcv",),
                             progress=False)
    assert table["score"].iloc[0] == pytest.approx(np.mean(ref), abs=1e-8)


# --------------------------------------------------------------------------- layer screening
def test_layer_signal_flags_constant_and_nearly_constant_layers():
    x, _, _ = _latent_problem(p=300)
    n, alpha = x.shape[0], 1.0
    ok = layer_signal(x, alpha)
    # effective degrees of freedom: the trace of the ridge hat matrix, with a fitted intercept
    xc = x - x.mean(0)
    hat = xc @ np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T)
    assert ok["effective_df"] == pytest.approx(np.trace(hat), rel=1e-9)
    assert ok["carries_signal"] and ok["reason"] == "" and ok["relative_spread"] == pytest.approx(
        (xc ** 2).sum() / (x ** 2).sum())
    # a large offset with a tiny spread: nearly constant against alpha
    tiny = 100.0 + 1e-3 * x
    flag = layer_signal(tiny, alpha)
    xc = tiny - tiny.mean(0)
    df = np.trace(xc @ np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T))
    assert df < MIN_EFFECTIVE_DF and flag["effective_df"] == pytest.approx(df, rel=1e-6)
    assert not flag["carries_signal"] and "nearly constant" in flag["reason"]
    # smaller still: the penalty dominates (every leave-one-out r at most -0.87)
    dom = layer_signal(1e-6 * x, alpha)
    assert dom["penalty_dominated"] and "penalty-dominated" in dom["reason"]
    assert layer_signal(tiny, alpha, min_effective_df=0.0)["carries_signal"]
    const = layer_signal(np.ones((n, 20)), alpha)
    assert const["constant"] and "constant across stimuli" in const["reason"]
    screen = pd.DataFrame([dict(layer=f"l{i}", **s) for i, s in enumerate([ok, const, ok, ok, flag, ok, dom])])
    assert _choose_layers(screen, 3) == ["l0", "l3", "l5"]
    assert _choose_layers(screen.assign(carries_signal=False), 3) == []


# --------------------------------------------------------------------------- page helpers
def test_describe_mappings_reads_the_table():
    rows = []
    for layer, shift in (("a", 0.0), ("b", 0.1)):
        for red, k, reg, score, t in [("srp", 4096, "ridge_gcv", 0.30, 0.2), ("srp", 4096, "pls10", 0.28, 1.0),
                                      ("pca", 4096, "ridge_gcv", 0.20, 20.0), ("srp", 1024, "ridge_gcv", 0.25, 0.1),
                                      ("pca", 1024, "ridge_gcv", 0.26, 10.0), ("subset", 1024, "pls10", 0.10, 0.3)]:
            rows.append(dict(layer=layer, reduction=red, n_components=k, regression=reg, score=score + shift,
                             total_s=t, penalty_dominated=False, fitted_on="reference" if red == "pca" else "",
                             n_features_used=2047 if (red, k) == ("pca", 4096) else k))
    comp = pd.DataFrame(rows)
    text = describe_mappings(comp)
    summ = comp.groupby(["reduction", "n_components", "regression"])[["score", "total_s"]].mean()
    best = summ["score"].idxmax()
    assert best == ("srp", 4096, "ridge_gcv")
    assert f"SRP-4096 + ridge_gcv (mean r = {summ.loc[best, 'score']:.3f}" in text
    assert f"{1.0 / 0.2:.1f} times faster than pls10" in text
    assert f"1024: r = 0.310 against 0.300, {10.0 / 0.1:.0f} times the time" in text
    assert "4096 (at most 2047 components): r = 0.250 against 0.350" in text
    assert "fitted on the image set" in text and text.count(".") >= 2
    assert describe_mappings(comp.assign(score=np.nan)) == "No mapping produced a finite score."


def test_plot_mapping_tradeoff_panels_per_layer():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mbutils.plots import plot_mapping_tradeoff

    comp = pd.DataFrame({"layer": ["a", "a", "b", "b", "a", "b", "b"],
                         "reduction": ["srp", "pca", "srp", "pca", "none", "none", "srp"],
                         "n_components": [1024, 1024, 1024, 1024, 500, 700, 2048],
                         "regression": ["ridge_gcv"] * 7,
                         "score": [0.2, 0.1, 0.4, 0.3, 0.5, 0.7, 0.9],
                         "total_s": [1.0, 4.0, 3.0, 8.0, 2.0, 6.0, 1.0],
                         "penalty_dominated": [False] * 6 + [True]})
    fig = plot_mapping_tradeoff(comp)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3  # the mean over layers, then one per layer
    offsets = np.concatenate([c.get_offsets() for c in visible[0].collections])
    # the flagged row is left out; the all-features rows are lines, not points
    assert sorted(map(tuple, np.round(offsets, 12).tolist())) == [(2.0, 0.3), (6.0, 0.2)]
    ys = sorted(line.get_ydata()[0] for line in visible[0].get_lines() if line.get_linestyle() == "--")
    assert 0.6 in np.round(ys, 12)  # the mean of the all-features scores, 0.5 and 0.7
    b = np.concatenate([c.get_offsets() for c in visible[2].collections])
    assert sorted(map(tuple, b.tolist())) == [(3.0, 0.4), (8.0, 0.3)]
    plt.close("all")


def test_image_set_features_are_written_batch_by_batch_in_image_order():
    """The image set's features, extracted in batches into temporary files, equal one forward pass."""
    from mbutils.data import make_image_set
    from mbutils.models import load_model
    from mbutils.scoring.mappings import _reference_features

    net = load_model("alexnet", weights="random", device="cpu")
    images, _ = make_image_set(21, shape=(64, 80))
    layers = ["features.2", "classifier.5"]
    got = _reference_features(net, images, layers, batch_size=8)
    want = {}
    net.run(images, lambda layer, f: want.__setitem__(layer.name, f.numpy().copy()) if layer.name in layers else None,
            progress=False)
    assert list(got) == layers
    for name in layers:
        n_features = {layer.name: layer.n_features for layer in net.layers()}[name]
        assert got[name].shape == want[name].shape == (21, n_features)
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5 * np.abs(want[name]).max())


def test_compare_mappings_leaks_no_library_warning():
    """What the page prints: no warning from sklearn, numpy or scipy for any mapping (PLS that stops at
    its iteration limit is counted in n_unconverged instead)."""
    import warnings

    x, ref, y = _latent_problem(n=30, n_ref=80, p=300)
    y[:, 0] = 1.0  # a constant neuron: NaN score, counted, not a warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = compare_mappings({"l": x, "zero": np.zeros_like(x)}, y, reductions=("pca", "srp", "subset", "none"),
                               n_components=(16, 200), regressions=("ridge_gcv", "ridge_kfold", "pls10", "pls25"),
                               reference={"l": ref}, progress=False)
    assert [str(w.message) for w in caught] == []
    assert (out.loc[out.layer == "l", "n_nan"] == 1).all() and out.loc[out.layer == "zero", "score"].isna().all()
