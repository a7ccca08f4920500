"""alpha="auto": per-neuron ridge penalty by generalized cross-validation, against scikit-learn's RidgeCV."""
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr
from sklearn.linear_model import RidgeCV

from mbutils.scoring.pipeline import AUTO_ALPHAS, Targets, score_reduced

GRID = np.logspace(-3, 5, 17)


def _sklearn_auto(X, Y, grid):
    """RidgeCV's per-target alpha and its leave-one-out predictions with that alpha.

    Returns ``(alpha_ (m,), predictions (n, m))``. ``scoring=None`` stores squared leave-one-out
    errors in ``cv_results_``; a scorer stores the predictions (and chooses by the same error)."""
    X = np.asarray(X, dtype=np.float64)
    by_error = RidgeCV(alphas=grid, alpha_per_target=True, store_cv_results=True).fit(X, Y)
    by_scorer = RidgeCV(alphas=grid, alpha_per_target=True, store_cv_results=True,
                        scoring="neg_mean_squared_error").fit(X, Y)
    np.testing.assert_array_equal(by_error.alpha_, by_scorer.alpha_)
    pick = np.searchsorted(grid, by_error.alpha_)
    np.testing.assert_array_equal(grid[pick], by_error.alpha_)
    # the chosen alpha has the smallest stored squared error (RidgeCV's own bookkeeping)
    np.testing.assert_array_equal(np.argmin(by_error.cv_results_.mean(0), axis=1), pick)
    m = Y.shape[1]
    return by_error.alpha_, by_scorer.cv_results_[:, np.arange(m), pick]


def _targets(y, y_odd, y_even, areas):
    n = y.shape[1]
    neurons = pd.DataFrame({"cell_specimen_id": np.arange(n), "area": areas, "cre_line": "Cux2",
                            "imaging_depth": 175, "reliability": np.full(n, 0.9)})
    return Targets(y, y_odd, y_even, neurons)


def _layers(k):
    return pd.DataFrame({"name": [f"l{i}" for i in range(k)], "index": np.arange(1, k + 1),
                         "depth": np.arange(1, k + 1) / k})


def _mean_eigenvalue(X):
    Xc = np.asarray(X, dtype=np.float64) - np.mean(X, axis=0)
    return np.einsum("ij,ij->", Xc, Xc) / (X.shape[0] - 1)


@pytest.mark.parametrize("n, p", [(40, 300), (60, 12)])  # fewer stimuli than features, and more
def test_auto_alpha_equals_ridgecv_per_target_on_random_data(n, p):
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, p)) * np.logspace(0, -2, p)  # a decaying spectrum: choices spread over the grid
    W = rng.normal(size=(p, 30))
    noise = np.logspace(-2, 1.5, 30)  # from nearly noiseless to pure noise targets
    halves = [X @ W + noise * rng.normal(size=(n, 30)) for _ in range(2)]
    y = (halves[0] + halves[1]) / 2
    areas = np.repeat(["VISp", "VISl"], 15)
    targets = _targets(y, halves[0], halves[1], areas)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = score_reduced(_layers(1), [X], None, targets, alpha="auto", alphas=GRID, groupings=(), check=False,
                            progress=False)
    ns = out["neuron_scores"]
    grid = GRID * _mean_eigenvalue(X)
    chosen, pred = _sklearn_auto(X, y, grid)
    assert len(np.unique(chosen)) >= 4  # the choice differs between targets
    np.testing.assert_allclose(ns["alpha"].to_numpy(), chosen, rtol=1e-12)
    ref = np.array([pearsonr(pred[:, j], y[:, j])[0] for j in range(30)])
    np.testing.assert_allclose(ns["score"].to_numpy(), ref, atol=1e-9)
    # the area rows: mean r, median chosen alpha, and odd/even halves with their own choices
    sc = out["scores"].set_index("area")
    for half, column in ((halves[0], "score_odd"), (halves[1], "score_even")):
        _, pred_h = _sklearn_auto(X, half, grid)
        r_h = np.array([pearsonr(pred_h[:, j], half[:, j])[0] for j in range(30)])
        for area in ("VISp", "VISl"):
            assert sc.loc[area, column] == pytest.approx(r_h[areas == area].mean(), abs=1e-9)
    for area in ("VISp", "VISl"):
        assert sc.loc[area, "score"] == pytest.approx(ref[areas == area].mean(), abs=1e-9)
        assert sc.loc[area, "alpha"] == pytest.approx(np.median(chosen[areas == area]), rel=1e-12)
    assert set(out["scores"]["metric"]) == {"srp_ridge"}  # no scale-aware score with alpha="auto"


def test_default_grid_and_bad_grids():
    np.testing.assert_array_equal(AUTO_ALPHAS, np.logspace(-3, 5, 17))
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(20, 50)), rng.normal(size=(20, 4))
    targets = _targets(y, y, y, ["VISp"] * 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        default = score_reduced(_layers(1), [X], None, targets, alpha="auto", groupings=(), check=False,
                                progress=False)["neuron_scores"]["alpha"].to_numpy()
    assert np.isin(np.round(default / _mean_eigenvalue(X), 9), np.round(AUTO_ALPHAS, 9)).all()
    for bad in ([], [1.0, -1.0], [np.nan]):
        with pytest.raises(ValueError, match="alphas="):
            score_reduced(_layers(1), [X], None, targets, alpha="auto", alphas=bad, groupings=(), progress=False)
    with pytest.raises(ValueError, match="alpha='best'"):
        score_reduced(_layers(1), [X], None, targets, alpha="best", groupings=(), progress=False)


def test_auto_alpha_equals_ridgecv_on_a_layer_of_a_real_model(tmp_path):
    from mbutils.data import load_dataset, make_synthetic
    from mbutils.models import extract, load_model
    from mbutils.reduction import RDMReducer, SparseRandomProjection

    path = Path(__file__).resolve().parents[1] / "data" / "synthetic.nc"
    if not path.exists():  # a clean clone: a smaller synthetic mouse of the same kind
        path = tmp_path / "synthetic.nc"
        make_synthetic(600, progress=False).save(path)
    ds = load_dataset(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        targets = Targets.from_dataset(ds, progress=False)
    scenes = ds.scenes()
    model = load_model("resnet18", weights="random")
    # the reducers of `mbutils score resnet18` (the cached features of that run, when there are any)
    fs = extract(model, np.asarray(scenes.stimuli.values),
                 {"regression": SparseRandomProjection(n_components=4096, seed=0), "rdm": RDMReducer()},
                 progress=False)
    layers = fs.layers
    pick = [int(np.flatnonzero(layers["name"] == "layer3.0.conv1")[0]), len(layers) - 1]
    feats = [np.asarray(fs["regression"][i], dtype=np.float64) for i in pick]
    rng = np.random.default_rng(0)
    keep = np.sort(rng.choice(targets.y.shape[1], size=min(300, targets.y.shape[1]), replace=False))
    sub = Targets(targets.y[:, keep], targets.y_odd[:, keep], targets.y_even[:, keep],
                  targets.neurons.iloc[keep].reset_index(drop=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = score_reduced(layers.iloc[pick].reset_index(drop=True), [fs["regression"][i] for i in pick], None,
                            sub, alpha="auto", groupings=(), check=False, progress=False, model="resnet18")
    ns = out["neuron_scores"]
    for k, X in enumerate(feats):
        rows = ns[ns["layer"] == layers["name"].iloc[pick[k]]]
        grid = AUTO_ALPHAS * _mean_eigenvalue(X)
        chosen, pred = _sklearn_auto(X, sub.y, grid)
        mine = rows["alpha"].to_numpy()
        same = np.isclose(mine, chosen, rtol=1e-12, atol=0)
        # a different choice only at a tie of the leave-one-out errors (both computations round
        # differently); none was seen, and at most a few are allowed
        if not same.all():
            errors = RidgeCV(alphas=grid, alpha_per_target=True, store_cv_results=True).fit(X, sub.y).cv_results_
            errors = errors.mean(0)  # (n_targets, n_alphas)
            for j in np.flatnonzero(~same):
                nearest = [int(np.argmin(np.abs(np.log(grid / v)))) for v in (mine[j], chosen[j])]
                a, b = errors[j, nearest[0]], errors[j, nearest[1]]
                assert a == pytest.approx(b, rel=1e-9)
        assert (~same).sum() <= 3
        ref = np.array([pearsonr(pred[:, j], sub.y[:, j])[0] for j in range(sub.y.shape[1])])
        np.testing.assert_allclose(rows["score"].to_numpy()[same], ref[same], atol=1e-8)


def test_command_line_takes_alpha_auto_and_the_cka_metric():
    from mbutils.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["score", "resnet18", "--dataset", "d.nc", "--out", "o", "--alpha", "auto",
                              "--metrics", "srp_ridge", "rsa", "cka", "--cka-estimator", "unbiased"])
    assert args.alpha == "auto" and args.metrics == ["srp_ridge", "rsa", "cka"] and args.cka_estimator == "unbiased"
    assert parser.parse_args(["score", "m", "--dataset", "d", "--out", "o", "--alpha", "2.5"]).alpha == 2.5
    assert parser.parse_args(["score", "m", "--dataset", "d", "--out", "o"]).metrics == ["srp_ridge", "rsa"]
    for bad in ("best", "-1", "0", "inf"):
        with pytest.raises(SystemExit):
            parser.parse_args(["score", "m", "--dataset", "d", "--out", "o", "--alpha", bad])
