import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression
from sklearn.model_selection import KFold, cross_val_predict

from mbutils.scoring import compare_mappings
from mbutils.scoring.mappings import cv_predictions, reduce_features


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(40, 3))
    x = latent @ rng.normal(size=(3, 300)) + 0.5 * rng.normal(size=(40, 300))
    y = latent @ rng.normal(size=(3, 5)) + 0.5 * rng.normal(size=(40, 5))
    return x, y


def test_compare_mappings_table(data):
    x, y = data
    df = compare_mappings({"a": x, "b": x[:, ::-1] * 0}, y, n_components=(16, 32), progress=False,
                          regressions=("ridge_gcv", "pls10"))
    assert len(df) == 2 * 3 * 2 * 2
    assert {"score", "total_s", "reduce_s", "regress_s", "mapping"} <= set(df.columns)
    assert (df.loc[df.layer == "a", "score"] > 0).all()
    # an all-zero layer gives NaN scores, counted
    zero = df[(df.layer == "b") & (df.regression == "ridge_gcv")]
    assert zero["score"].isna().all() and (zero["n_nan"] == 5).all()


def test_pls_kfold_matches_sklearn(data):
    x, y = data
    z = reduce_features(x, "subset", 50, seed=1)
    ref = cross_val_predict(PLSRegression(n_components=10, scale=False), z, y,
                            cv=KFold(5, shuffle=True, random_state=0))
    np.testing.assert_allclose(cv_predictions(z, y, "pls10", n_splits=5, seed=0), ref, rtol=1e-8, atol=1e-10)


def test_pca_reduction_matches_sklearn(data):
    from sklearn.decomposition import PCA

    x, _ = data
    z = reduce_features(x, "pca", 8)
    np.testing.assert_allclose(np.abs(z), np.abs(PCA(8, svd_solver="full").fit_transform(x)), rtol=1e-6, atol=1e-8)


def test_bad_names(data):
    x, y = data
    with pytest.raises(ValueError, match="reduction='ica'"):
        compare_mappings([x], y, reductions=("ica",))
    with pytest.raises(ValueError, match="regression='lasso'"):
        cv_predictions(x, y, "lasso")


def test_unconverged_pls_fits_are_counted_not_printed(recwarn):
    """PLS stopping at its iteration limit is a fact of the row (n_unconverged), not a warning
    on the page."""
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.exceptions import ConvergenceWarning

    import mbutils.scoring.mappings as mp
    from mbutils.scoring import compare_mappings

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 30)), rng.normal(size=(40, 5))
    real = mp._pls

    def stubborn(n_components):  # PLS allowed 1 iteration: it cannot converge
        def fit(x, y, alpha, n_splits, seed):
            return mp._kfold_predictions(x, y, lambda: PLSRegression(n_components=3, scale=False, max_iter=1),
                                         n_splits, seed)
        return fit

    mp.REGRESSIONS["pls_stubborn"] = stubborn(3)
    try:
        out = compare_mappings({"l": x}, y, reductions=("subset",), n_components=(20,),
                               regressions=("pls_stubborn", "ridge_kfold"), progress=False)
    finally:
        del mp.REGRESSIONS["pls_stubborn"]
    assert real is mp._pls
    n = out.set_index("regression")["n_unconverged"]
    assert n["pls_stubborn"] > 0 and n["ridge_kfold"] == 0
    assert not [w for w in recwarn if issubclass(w.category, ConvergenceWarning)]
