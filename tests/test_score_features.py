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
