"""Leave-one-out ridge through the stimulus Gram matrix at larger shapes, against scikit-learn.

More stimuli than projected features (6,000 stimuli against 4,096 SRP components at full size)
and fewer, with layers whose Gram spectrum spans many orders above the penalty alpha = 1: the
SRP-Ridge score per neuron equals scikit-learn's ``RidgeCV(alphas=[1.0])`` leave-one-out
predictions correlated with ``scipy.stats.pearsonr``.
"""
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr
from sklearn.linear_model import RidgeCV

from mbutils.scoring.pipeline import Targets, score_reduced


def _targets(y, y_odd, y_even, areas):
    n = y.shape[1]
    neurons = pd.DataFrame({"cell_specimen_id": np.arange(n), "area": areas, "cre_line": "Cux2",
                            "imaging_depth": 175, "reliability": np.full(n, 0.9)})
    return Targets(y, y_odd, y_even, neurons)


def _layer(rng, n, p, scale):
    """Rectified features of a 20-dimensional latent plus noise, times ``scale``: a Gram spectrum
    from ``scale**2 * n`` down to the noise floor. Shape (n, p), float32 as the reductions give."""
    latent = rng.normal(size=(n, 20))
    x = latent @ rng.normal(size=(20, p)) + 0.3 * rng.normal(size=(n, p))
    return (scale * np.maximum(x, 0)).astype(np.float32)


@pytest.mark.parametrize("n, p", [(1500, 600), (900, 1800)])  # more stimuli than features, and fewer
def test_loo_scores_equal_ridgecv_at_larger_shapes(n, p):
    rng = np.random.default_rng(n + p)
    layers = [_layer(rng, n, p, scale) for scale in (0.05, 1.0, 30.0)]
    m = 120
    signal = layers[1][:, :40].astype(np.float64) @ rng.normal(size=(40, m)) / np.sqrt(40)
    halves = [signal + rng.normal(scale=2.0, size=(n, m)) for _ in range(2)]
    y = (halves[0] + halves[1]) / 2
    areas = np.repeat(["VISp", "VISl", "VISal"], m // 3)
    names = pd.DataFrame({"name": ["small", "unit", "large"], "index": [1, 2, 3], "depth": [1 / 3, 2 / 3, 1.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few-neuron and ceiling warnings of the tiny fake areas
        out = score_reduced(names, layers, None, _targets(y, halves[0], halves[1], areas), groupings=(),
                            progress=False)
    ns = out["neuron_scores"]
    for name, x in zip(names["name"], layers):
        ridge = RidgeCV(alphas=[1.0], store_cv_results=True, scoring="r2").fit(x.astype(np.float64), y)
        loo = ridge.cv_results_[..., 0]  # (n, m) leave-one-out predictions
        ref = np.array([pearsonr(loo[:, j], y[:, j]).statistic for j in range(m)])
        ours = ns[ns["layer"] == name].set_index("cell_specimen_id").loc[np.arange(m), "score"].to_numpy()
        assert np.isfinite(ref).all() and np.ptp(ref) > 0.05  # the scores differ between neurons
        np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0, err_msg=f"layer {name}, {n} x {p}")
