"""Bootstrap of the layer-max scores: stored draws against a plain recomputation, coverage of a
planted correlation, draws shared across models, intervals and the pipeline's table."""
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import binomtest, pearsonr

from mbutils.scoring import Targets, center_gram
from mbutils.scoring._bootstrap import (BOOTSTRAP_COLUMNS, bootstrap_intervals, bootstrap_scores, draw_key,
                                        resample_indices)
from mbutils.scoring._loo import leave_one_out_operator


def _targets(y, y_odd, y_even, areas):
    m = y.shape[1]
    neurons = pd.DataFrame({"cell_specimen_id": np.arange(100, 100 + m), "area": areas, "cre_line": "c",
                            "imaging_depth": 175, "reliability": 0.9})
    return Targets(y, y_odd, y_even, neurons)


def _small_case(seed=0, n=16, layers=3, areas=("VISa", "VISa", "VISa", "VISb", "VISb", "VISb", "VISb")):
    rng = np.random.default_rng(seed)
    m = len(areas)
    X = [rng.normal(size=(n, 6 + 2 * k)) for k in range(layers)]
    y_odd = X[0][:, :3] @ rng.normal(size=(3, m)) + rng.normal(size=(n, m))
    y_even = X[1][:, :3] @ rng.normal(size=(3, m)) + rng.normal(size=(n, m))
    y = 0.5 * (y_odd + y_even)
    return X, _targets(y, y_odd, y_even, np.array(areas))


def _plain_draw(X, targets, alpha, stim, neurons):
    """One draw, recomputed with plain numpy/scipy: per layer, area and half, the mean Pearson r
    of the resampled (prediction, response) pairs of the drawn neurons (SRP-Ridge), and the
    Pearson r of the resampled RDM triangles without pairs of one stimulus (RSA)."""
    halves = (targets.y, targets.y_odd, targets.y_even)
    areas = sorted(neurons)
    srp = np.empty((len(X), len(areas), 3))
    rsa = np.empty((len(X), len(areas), 3))
    i, j = np.triu_indices(len(stim), 1)
    distinct = stim[i] != stim[j]
    for l, x in enumerate(X):
        P = leave_one_out_operator(center_gram(x @ x.T), alpha)
        layer_tri = pdist(x[stim], "correlation")[distinct]
        for k, y in enumerate(halves):
            pred = P @ y  # leave-one-out predictions of the full sample
            for a, area in enumerate(areas):
                srp[l, a, k] = np.mean([pearsonr(pred[stim, nn], y[stim, nn])[0] for nn in neurons[area]])
                cols = np.flatnonzero(targets.neurons["area"].to_numpy() == area)
                neural_tri = pdist(y[stim][:, cols], "correlation")[distinct]
                rsa[l, a, k] = pearsonr(layer_tri, neural_tri)[0]
    out = {}
    for name, S in (("srp_ridge", srp), ("rsa", rsa)):
        mx = S[:, :, 0].max(0)
        cols = np.arange(len(areas))
        un = 0.5 * (S[S[:, :, 1].argmax(0), cols, 2] + S[S[:, :, 2].argmax(0), cols, 1])
        out[name] = (mx, un)
    return areas, out


@pytest.mark.parametrize("precision,tol", [("float64", 1e-10), ("float32", 2e-5)])
def test_stored_draws_equal_a_plain_recomputation(precision, tol):
    X, targets = _small_case()
    alpha = 1.0
    ops = [leave_one_out_operator(center_gram(x @ x.T), alpha) for x in X]
    n = targets.y.shape[0]
    iu = np.triu_indices(n, 1)
    layer_tri = np.stack([pdist(x, "correlation") for x in X], axis=1)  # rows in triu order
    boot = bootstrap_scores(targets, 12, model="m", train_type="trained", operators=ops, layer_tri=layer_tri,
                            precision=precision)
    assert list(boot.columns) == BOOTSTRAP_COLUMNS and len(boot) == 2 * 2 * 12
    assert len(iu[0]) == layer_tri.shape[0]
    key = draw_key(n, targets.neurons["cell_specimen_id"], targets.neurons["area"])
    for d in range(12):
        stim, neurons = resample_indices(n, targets.neurons["area"], d, key)
        areas, ref = _plain_draw(X, targets, alpha, stim, neurons)
        for metric, (mx, un) in ref.items():
            got = boot[(boot["metric"] == metric) & (boot["draw"] == d)].set_index("area").loc[areas]
            np.testing.assert_allclose(got["max_score"], mx, atol=tol, rtol=0)
            np.testing.assert_allclose(got["unbiased_score"], un, atol=tol, rtol=0)


def test_identity_counts_give_the_scores():
    """A draw that keeps every stimulus and neuron once reproduces the full-sample layer maxima."""
    from mbutils.scoring._bootstrap import layer_choice, srp_draws

    X, targets = _small_case(seed=1)
    ops = [leave_one_out_operator(center_gram(x @ x.T), 1.0) for x in X]
    Y = np.concatenate([targets.y, targets.y_odd, targets.y_even], axis=1)
    codes = np.searchsorted(["VISa", "VISb"], targets.neurons["area"].to_numpy())
    n, m = targets.y.shape
    S = srp_draws(ops, Y, codes, 2, np.ones((1, n)), np.ones((1, m)), precision="float64")
    mx, _ = layer_choice(S)
    for a, area in enumerate(["VISa", "VISb"]):
        cols = np.flatnonzero(codes == a)
        full = [np.mean([pearsonr(P @ targets.y[:, c], targets.y[:, c])[0] for c in cols]) for P in ops]
        assert mx[0, a] == pytest.approx(max(full), abs=1e-12)


def test_draws_depend_on_the_neurons_not_the_model():
    X, targets = _small_case(seed=2)
    ops = [leave_one_out_operator(center_gram(x @ x.T), 1.0) for x in X]
    a = bootstrap_scores(targets, 10, model="a", train_type="trained", operators=ops)
    b = bootstrap_scores(targets, 10, model="b", train_type="random", operators=ops)
    np.testing.assert_array_equal(a["max_score"], b["max_score"])
    # draw d is the same whatever n_boot (float64: no rounding that depends on the block sizes)
    short = bootstrap_scores(targets, 10, model="a", train_type="trained", operators=ops, precision="float64")
    longer = bootstrap_scores(targets, 20, model="a", train_type="trained", operators=ops, precision="float64")
    first = longer[longer["draw"] < 10].reset_index(drop=True)
    np.testing.assert_allclose(first["max_score"], short["max_score"], rtol=0, atol=1e-12)
    key = draw_key(16, targets.neurons["cell_specimen_id"], targets.neurons["area"])
    other = draw_key(16, targets.neurons["cell_specimen_id"] + 1, targets.neurons["area"])
    assert not np.array_equal(resample_indices(16, targets.neurons["area"], 0, key)[0],
                              resample_indices(16, targets.neurons["area"], 0, other)[0])


def _coverage(n_datasets, n, rho, n_neurons, neuron_spread, n_boot, seed):
    """How often the 95% interval of the max score covers the planted population score.

    Each dataset: ``n`` stimuli with one feature ``x``; neuron ``j`` responds
    ``y_j = rho_j x + sqrt(1 - rho_j^2) e_j`` (population r ``rho_j``, drawn around ``rho`` with
    ``neuron_spread``), so the area's population score is the mean of ``rho_j``'s population,
    ``rho``. One layer (``x`` itself), alpha tiny: the leave-one-out predictions are those of
    least squares."""
    rng = np.random.default_rng(seed)
    hits = 0
    for k in range(n_datasets):
        x = rng.normal(size=(n, 1))
        r = rho + neuron_spread * rng.uniform(-1, 1, n_neurons)
        y = x * r + np.sqrt(1 - r ** 2) * rng.normal(size=(n, n_neurons))
        t = _targets(y, y, y, np.array(["VISp"] * n_neurons))
        P = leave_one_out_operator(center_gram(x @ x.T), 1e-6)
        boot = bootstrap_scores(t, n_boot, model="m", train_type="trained", operators=[P], seed=k)
        iv = bootstrap_intervals(boot, 0.95).iloc[0]
        hits += iv["max_score_ci_low"] <= rho <= iv["max_score_ci_high"]
    return hits


@pytest.mark.parametrize("n_neurons,spread,n", [(1, 0.0, 120), (20, 0.2, 400)])
def test_intervals_cover_the_planted_score_at_their_nominal_rate(n_neurons, spread, n):
    # (the leave-one-out r of a weak neuron lies below its population r by O(1/n): with 20
    # neurons, whose mean has a smaller spread, 400 stimuli keep that bias at a fifth of it)
    hits = _coverage(200, n, 0.5, n_neurons, spread, 200, seed=n_neurons)
    # within a two-sided binomial test of the nominal 0.95 at the 0.001 level
    assert binomtest(hits, 200, 0.95).pvalue > 1e-3, hits / 200


def test_intervals_are_the_percentiles_of_the_draws():
    rng = np.random.default_rng(3)
    boot = pd.DataFrame({"model": "m", "train_type": "trained", "metric": "rsa", "area": "VISp",
                         "draw": np.arange(400), "max_score": rng.normal(size=400),
                         "unbiased_score": rng.normal(size=400)})
    iv = bootstrap_intervals(boot, 0.9).iloc[0]
    assert iv["max_score_ci_low"] == pytest.approx(np.percentile(boot["max_score"], 5))
    assert iv["unbiased_score_ci_high"] == pytest.approx(np.percentile(boot["unbiased_score"], 95))
    assert iv["n_boot"] == 400
    with pytest.raises(ValueError, match="level=1.5"):
        bootstrap_intervals(boot, 1.5)


def test_bad_n_boot_is_refused():
    X, targets = _small_case()
    with pytest.raises(ValueError, match="n_boot=-3"):
        bootstrap_scores(targets, -3, model="m", train_type="t", operators=None)
    from mbutils.scoring import score_features

    with pytest.raises(ValueError, match="n_boot=2.5"):  # before the dataset is read
        score_features([np.zeros((4, 3))], "no-such-file.nc", n_boot=2.5)


def test_score_features_writes_the_table_and_intervals(tmp_path):
    from mbutils.scoring import score_features
    from mbutils.testing import make_fake_dataset

    make_fake_dataset(tmp_path / "ds.nc", n_neurons_per_area=6, n_stimuli=20, n_trials=6)
    rng = np.random.default_rng(0)
    feats = {f"l{i}": rng.normal(size=(19, 30)) for i in range(3)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (few neurons per area)
        tables = score_features(feats, tmp_path / "ds.nc", threshold=None, check=False, n_boot=25,
                                metrics=("srp_ridge", "rsa"), progress=False)
    boot, summary = tables["bootstrap"], tables["summary"]
    assert set(boot["metric"]) == {"srp_ridge", "rsa"} and boot["draw"].nunique() == 25
    row = summary[(summary["metric"] == "rsa")].iloc[0]
    draws = boot[(boot["metric"] == "rsa") & (boot["area"] == row["area"])]["max_score"]
    assert row["max_score_ci_low"] == pytest.approx(np.quantile(draws, 0.025))
    assert row["max_score_ci_high"] == pytest.approx(np.quantile(draws, 0.975))
    assert summary.loc[summary["metric"] == "srp_ridge_scaled", "max_score_ci_low"].isna().all()


def test_cka_draws_equal_the_cka_of_explicitly_resampled_grams():
    """Each CKA draw equals the biased linear CKA (mbutils.scoring.cka, checked against the
    published formula elsewhere) of the layer and area Grams of the resampled stimuli, repeats
    included; unit counts give the scores themselves. The table gets a 'cka' block."""
    from mbutils.scoring._bootstrap import cka_draws, neural_grams, resample_counts
    from mbutils.scoring.cka import cka, linear_gram

    X, targets = _small_case(seed=4, n=14)
    X[1] = X[1] + 50.0  # a large common offset: the weighted centering must remove it
    areas_of = targets.neurons["area"].to_numpy()
    areas = sorted(set(areas_of))
    codes = np.searchsorted(areas, areas_of)
    halves = (targets.y, targets.y_odd, targets.y_even)
    grams = [x @ x.T for x in X]  # uncentered layer Grams
    C, _ = resample_counts(14, areas_of, 6, draw_key(14, np.arange(7), areas_of))
    C = np.vstack([np.ones(14), C])
    S = cka_draws(grams, neural_grams(halves, codes, len(areas)), C)
    assert S.shape == (len(X), 7, len(areas), 3)
    for b in range(7):
        idx = np.repeat(np.arange(14), C[b].astype(int))
        for l, x in enumerate(X):
            for a, area in enumerate(areas):
                for k, y in enumerate(halves):
                    ref = cka(x[idx], y[idx][:, areas_of == area])
                    assert S[l, b, a, k] == pytest.approx(ref, abs=1e-10)
                    if b == 0:  # unit counts: the score itself
                        assert S[l, b, a, k] == pytest.approx(cka(linear_gram(x), linear_gram(y[:, areas_of == area]),
                                                                  grams=True), abs=1e-12)
    constant = np.array([False, True, False])
    assert np.isnan(cka_draws(grams, neural_grams(halves, codes, len(areas)), C, constant=constant)[1]).all()
    boot = bootstrap_scores(targets, 5, model="m", train_type="random", layer_grams=grams)
    assert set(boot["metric"]) == {"cka"} and len(boot) == 5 * len(areas)
    assert boot[["max_score", "unbiased_score"]].notna().all().all()


def test_rsa_draws_with_a_non_finite_layer_or_column_warn_nothing_and_keep_the_others():
    """A NaN layer (a constant layer's RDM) and an infinite neural column are NaN in the draws,
    with no numpy warning; every other (layer, column) equals numpy's weighted Pearson r over the
    pairs, each pair weighted by the product of its two stimuli's counts."""
    from mbutils.scoring._bootstrap import rsa_draws

    rng = np.random.default_rng(3)
    n, n_boot = 12, 5
    i0, i1 = np.triu_indices(n, 1)
    A = rng.normal(size=(len(i0), 3))
    A[:, 1] = np.nan
    B = rng.normal(size=(len(i0), 4)) + 0.5 * A[:, [0]]
    B[7, 2] = np.inf
    counts = rng.multinomial(n, np.full(n, 1 / n), size=n_boot)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = rsa_draws(A, B, n, counts, precision="float64", h=1)
    assert out.shape == (3, n_boot, 4, 1)  # (layers, draws, areas, halves)
    out = out[..., 0]
    assert np.isnan(out[1]).all() and np.isnan(out[:, :, 2]).all()
    for j in (0, 2):
        for b in range(n_boot):
            w = counts[b, i0] * counts[b, i1]
            for c in (0, 1, 3):
                cov = np.cov(A[:, j], B[:, c], aweights=w)
                assert out[j, b, c] == pytest.approx(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]), abs=1e-12)
