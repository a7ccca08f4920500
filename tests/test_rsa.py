import numpy as np
import pytest
import scipy.stats

from mbutils.scoring import compare_rdms, neural_rdms, rdm


def test_rdm_equals_numpy_corrcoef():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 200)) + rng.normal(size=(30, 1)) * 4
    np.testing.assert_allclose(rdm(X), 1 - np.corrcoef(X), atol=1e-12)


def test_constant_stimulus_gives_nan():
    X = np.random.default_rng(0).normal(size=(5, 10))
    X[2] = 1.0
    d = rdm(X)
    assert np.isnan(d[2]).all() and np.isnan(d[:, 2]).all() and not np.isnan(d[0, 1])


@pytest.mark.parametrize("method,ref", [("pearson", scipy.stats.pearsonr), ("spearman", scipy.stats.spearmanr)])
def test_compare_rdms_matches_scipy(method, ref):
    rng = np.random.default_rng(1)
    a = rdm(rng.normal(size=(20, 50)))
    b = rdm(rng.normal(size=(20, 50)) + 0.1 * a[:, :1])
    iu = np.triu_indices(20, k=1)
    assert np.isclose(compare_rdms(a, b, method=method), ref(a[iu], b[iu])[0], rtol=1e-10)


def test_compare_rdms_bad_method():
    with pytest.raises(ValueError, match="method='kendall'"):
        compare_rdms(np.zeros((3, 3)), np.zeros((3, 3)), method="kendall")


def test_neural_rdms_per_group():
    rng = np.random.default_rng(2)
    resp = rng.normal(size=(12, 8))  # neurons x stimuli
    areas = np.array(["VISp"] * 5 + ["VISl"] * 7)
    out = neural_rdms(resp, areas)
    assert set(out) == {"VISp", "VISl"}
    np.testing.assert_allclose(out["VISl"], 1 - np.corrcoef(resp[5:].T), atol=1e-12)
