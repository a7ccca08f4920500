import warnings

import numpy as np
import pytest
import scipy.stats

from mbutils.scoring import pearson_columns


def test_matches_scipy_pearsonr():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(118, 40)) * rng.uniform(1e-3, 1e3, size=40) + 5
    B = A * rng.normal(size=40) + rng.normal(size=(118, 40))
    r = pearson_columns(A, B)
    ref = [scipy.stats.pearsonr(A[:, j], B[:, j])[0] for j in range(40)]
    np.testing.assert_allclose(r, ref, rtol=1e-10, atol=1e-12)


def test_constant_columns_nan_without_warnings():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(50, 5))
    B = rng.normal(size=(50, 5))
    A[:, 1] = 3.0
    B[:, 3] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = pearson_columns(A, B)
    assert np.isnan(r).sum() == 2 and np.isnan(r[[1, 3]]).all()
    np.testing.assert_allclose(r[0], scipy.stats.pearsonr(A[:, 0], B[:, 0])[0], rtol=1e-10)


def test_one_dimensional_and_errors():
    a = np.arange(10.0)
    assert np.isclose(pearson_columns(a, 2 * a + 1), 1.0)
    with pytest.raises(ValueError, match=r"same shape, got \(10,\) and \(9,\)"):
        pearson_columns(a, a[:9])
