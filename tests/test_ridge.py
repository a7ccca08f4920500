import numpy as np
import pytest
from sklearn.linear_model import RidgeCV

from mbutils.scoring import center_gram, ridge_gcv_predictions, ridge_gcv_predictions_from_gram


def _data(n, p, m, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) + rng.normal(size=p) * 3  # non-zero feature means
    Y = X[:, :5] @ rng.normal(size=(5, m)) + rng.normal(size=(n, m)) + 2.0
    return X, Y


def _sklearn_loo(X, Y, alpha):
    model = RidgeCV(alphas=[alpha], store_cv_results=True, scoring="neg_mean_squared_error")
    model.fit(X, Y)
    return model.cv_results_[..., 0]


@pytest.mark.parametrize("n,p", [(30, 200), (80, 12)])
@pytest.mark.parametrize("alpha", [1.0, 0.01, 37.0])
def test_matches_sklearn_loo(n, p, alpha):
    X, Y = _data(n, p, 7)
    ref = _sklearn_loo(X, Y, alpha)
    ours = ridge_gcv_predictions(X, Y, alpha=alpha)
    np.testing.assert_allclose(ours, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())


def test_from_gram_equals_from_features_and_sklearn():
    X, Y = _data(25, 300, 4, seed=1)
    ref = _sklearn_loo(X, Y, 1.0)
    np.testing.assert_allclose(ridge_gcv_predictions_from_gram(X @ X.T, Y), ref, rtol=1e-8)
    Xc = X - X.mean(0)
    np.testing.assert_allclose(ridge_gcv_predictions_from_gram(Xc @ Xc.T, Y, centered=True), ref, rtol=1e-8)


def test_loo_definition_plain_loop():
    # independent reference: refit sklearn Ridge without each stimulus
    from sklearn.linear_model import Ridge

    X, Y = _data(15, 40, 2, seed=3)
    ref = np.empty_like(Y)
    for i in range(len(X)):
        keep = np.arange(len(X)) != i
        ref[i] = Ridge(alpha=1.0).fit(X[keep], Y[keep]).predict(X[i:i + 1])[0]
    np.testing.assert_allclose(ridge_gcv_predictions(X, Y), ref, rtol=1e-8)


def test_center_gram_is_hat_matrix_part():
    X, _ = _data(10, 20, 1)
    Xc = X - X.mean(0)
    np.testing.assert_allclose(center_gram(X @ X.T), Xc @ Xc.T, atol=1e-9)


@pytest.mark.parametrize("n,p", [(30, 200), (80, 12)])
def test_alpha_grid_per_target_matches_ridgecv(n, p):
    X, Y = _data(n, p, 6, seed=5)
    Y[:, 3] = np.random.default_rng(9).normal(size=n)  # pure noise target wants large alpha
    grid = [0.1, 1.0, 10.0, 1000.0]
    model = RidgeCV(alphas=grid, alpha_per_target=True, store_cv_results=True).fit(X, Y)
    pred, chosen = ridge_gcv_predictions(X, Y, alpha=grid, return_alpha=True)
    np.testing.assert_array_equal(chosen, model.alpha_)
    idx = [grid.index(a) for a in model.alpha_]
    sq = model.cv_results_[:, np.arange(Y.shape[1]), idx]  # squared LOO errors
    np.testing.assert_allclose((Y - pred) ** 2, sq, rtol=1e-7, atol=1e-12)


def test_one_dimensional_target():
    X, Y = _data(20, 30, 1)
    ref = _sklearn_loo(X, Y[:, 0], 1.0)
    out = ridge_gcv_predictions(X, Y[:, 0])
    assert out.shape == (20,)
    np.testing.assert_allclose(out, ref, rtol=1e-8)


def test_bad_inputs():
    X, Y = _data(10, 5, 2)
    with pytest.raises(ValueError, match="alpha=-1"):
        ridge_gcv_predictions(X, Y, alpha=-1)
    with pytest.raises(ValueError, match=r"shape \(10, n_targets\)"):
        ridge_gcv_predictions(X, Y[:5])
    Y[0, 0] = np.nan
    with pytest.raises(ValueError, match="1 non-finite"):
        ridge_gcv_predictions(X, Y)
    with pytest.raises(ValueError, match="square"):
        ridge_gcv_predictions_from_gram(np.ones((3, 4)), np.ones((3, 1)))
