"""score_features: a user's own arrays, dicts or xarray objects, scored like a model of the zoo."""
import warnings

import numpy as np
import pytest
import scipy.stats
import xarray as xr
from sklearn.linear_model import RidgeCV

from mbutils.scoring import Targets, score_features


@pytest.fixture(scope="module")
def mouse():
    from mbutils.data import make_synthetic

    return make_synthetic(n_neurons=300, seed=4, progress=False)


def test_user_features_equal_a_plain_float64_reference(mouse):
    targets = Targets.from_dataset(mouse)
    n = targets.y.shape[0]
    rng = np.random.default_rng(0)
    # a layer that carries the neurons' signal (a noisy linear map of their responses), and noise
    signal = targets.y @ rng.normal(size=(targets.y.shape[1], 40)) + 0.5 * rng.normal(size=(n, 40))
    feats = {"signal": signal, "noise": rng.normal(size=(n, 3, 5))}
    tables = score_features(feats, mouse, model="mine", groupings=(), progress=False)
    sc = tables["scores"]
    assert list(sc["layer"].unique()) == ["signal", "noise"] and set(sc["model"]) == {"mine"}
    areas = targets.neurons["area"].to_numpy()
    iu = np.triu_indices(n, 1)
    for name, x in feats.items():
        x = x.reshape(n, -1).astype(np.float32).astype(np.float64)  # the pipeline reads float32
        # with a scoring set, cv_results_ holds the leave-one-out predictions (else squared errors)
        pred = RidgeCV(alphas=[1.0], store_cv_results=True, scoring="explained_variance").fit(x, targets.y).cv_results_[:, :, 0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = np.array([scipy.stats.pearsonr(pred[:, j], targets.y[:, j])[0] for j in range(targets.y.shape[1])])
        layer_rdm = 1 - np.corrcoef(x)
        for a in np.unique(areas):
            got = sc[(sc.layer == name) & (sc.metric == "srp_ridge") & (sc.area == a)]["score"].iloc[0]
            assert got == pytest.approx(np.nanmean(r[areas == a]), abs=1e-6)
            neural = 1 - np.corrcoef(targets.y[:, areas == a])
            want = scipy.stats.pearsonr(layer_rdm[iu], neural[iu])[0]
            got = sc[(sc.layer == name) & (sc.metric == "rsa") & (sc.area == a)]["score"].iloc[0]
            assert got == pytest.approx(want, abs=1e-6)
    best = tables["summary"].query("metric == 'srp_ridge'").set_index("area")["best_layer"]
    assert (best == "signal").all()


def test_xarray_and_list_inputs_give_the_same_scores(mouse):
    n = Targets.from_dataset(mouse).y.shape[0]
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(n, 30)), rng.normal(size=(n, 20))
    ref = score_features({"layer0": a, "layer1": b}, mouse, groupings=(), progress=False)["scores"]
    as_list = score_features([a, b], mouse, groupings=(), progress=False)["scores"]
    ds = xr.Dataset({"layer0": (("stimulus", "f0"), a), "layer1": (("stimulus", "f1"), b)})
    as_xr = score_features(ds, mouse, groupings=(), progress=False)["scores"]
    cols = ["layer", "metric", "area", "score"]
    assert as_list[cols].equals(ref[cols]) and as_xr[cols].equals(ref[cols])


def test_bad_features_are_refused_with_the_reason(mouse):
    n = Targets.from_dataset(mouse).y.shape[0]
    with pytest.raises(ValueError, match=rf"5 rows; the dataset has {n} scenes"):
        score_features({"x": np.zeros((5, 3))}, mouse, progress=False)
    with pytest.raises(TypeError, match="features must be"):
        score_features("pixels", mouse, progress=False)
    with pytest.raises(ValueError, match="alpha=nan"):
        score_features([np.zeros((n, 3))], mouse, alpha=float("nan"), progress=False)


def test_single_presentation_stimuli_are_scored(tmp_path):
    """Stimuli shown once (Sensorium, Stringer) are scored on their trial averages; the odd/even
    halves miss them, so the unbiased scores are NaN and a warning says why."""
    import warnings

    from scipy import stats
    from sklearn.linear_model import RidgeCV

    from mbutils.data import NeuralDataset, load_dataset, select_neurons
    from mbutils.scoring import score_features
    from mbutils.testing import make_fake_dataset

    path = make_fake_dataset(tmp_path / "d.nc", n_neurons_per_area=20, n_stimuli=41, n_trials=8)
    ds = load_dataset(path).ds.load()
    r = ds["responses"].values.copy()
    r[:, 1::3, 1:] = np.nan  # every third stimulus shown once
    ds["responses"].values[:] = r
    NeuralDataset(ds).save(tmp_path / "single.nc")
    x = np.random.default_rng(0).normal(size=(40, 50))  # fewer features than components: not projected
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tables = score_features({"x": x}, tmp_path / "single.nc", metrics=("srp_ridge",), threshold=0.3,
                                n_boot=0, progress=False)
    assert any("single-presentation stimuli" in str(w.message) for w in caught)
    selected, _ = select_neurons(load_dataset(tmp_path / "single.nc"), threshold=0.3)
    y = selected.scenes().trial_average().values.T  # (stimuli, neurons), every stimulus
    loo = RidgeCV(alphas=[1.0], store_cv_results=True, scoring="neg_mean_squared_error").fit(x, y).cv_results_[..., 0]
    ref = np.array([stats.pearsonr(loo[:, j], y[:, j])[0] for j in range(y.shape[1])])
    got = tables["neuron_scores"].set_index("cell_specimen_id")["score"]
    ids = selected.ds["cell_specimen_id"].values
    np.testing.assert_allclose(got.loc[ids].to_numpy(), ref, atol=1e-6)  # float32 products (docs/exactness.md)
    summary = tables["summary"]
    assert summary["max_score"].notna().all() and summary["unbiased_score"].isna().all()
