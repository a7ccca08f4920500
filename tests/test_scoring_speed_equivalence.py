"""The fast scoring path (blocked leave-one-out Pearson, precomputed RSA) against plain references."""
import numpy as np
import pandas as pd
import pytest

from mbutils.scoring import compare_rdms, pearson_columns
from mbutils.scoring._loo import _BLOCK, LooPearson, leave_one_out_operator
from mbutils.scoring.pipeline import Targets, score_reduced
from mbutils.scoring.ridge import center_gram, ridge_gcv_predictions_from_gram
from mbutils.scoring.rsa import rdm

N_STIM = 30
AREAS = ("VISp", "VISl", "VISal")


def _problem(n_neur, seed=0):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(N_STIM, 5))
    y = latent @ rng.normal(size=(5, n_neur)) + rng.normal(size=(N_STIM, n_neur))
    y_odd = y + rng.normal(size=y.shape)
    y_even = y + rng.normal(size=y.shape)
    y[:, 3] = 2.5  # constant targets
    y_odd[:, 7] = 0.0
    y_even[:, 11] = 1e6 + 1e-9 * rng.normal(size=N_STIM)  # constant up to rounding
    feats = [
        (rng.normal(size=(N_STIM, 200)) + latent @ rng.normal(size=(5, 200))).astype(np.float32),
        rng.normal(size=(N_STIM, 8)).astype(np.float32),  # fewer features than stimuli
        np.full((N_STIM, 40), 3.0, dtype=np.float32),  # constant layer
        (rng.normal(size=(N_STIM, 64)) + 20.0).astype(np.float32),  # features with a large offset
    ]
    rdms = [1 - np.corrcoef(rng.normal(size=(N_STIM, 20))) for _ in feats]
    rdms[1][0, 1] = rdms[1][1, 0] = np.nan  # a non-finite RDM
    neurons = pd.DataFrame({"cell_specimen_id": np.arange(n_neur),
                            "area": np.array(AREAS)[rng.integers(0, len(AREAS), n_neur)],
                            "cre_line": "Cux2", "imaging_depth": 175, "reliability": np.nan})
    layers = pd.DataFrame({"name": [f"l{i}" for i in range(len(feats))], "index": np.arange(1, len(feats) + 1),
                           "depth": np.arange(1, len(feats) + 1) / len(feats)})
    return Targets(y, y_odd, y_even, neurons, None), feats, rdms, layers


def _reference_r3(f, Y3, alpha):
    """Plain per-layer reference: LOO predictions for all targets, then Pearson per column."""
    z = np.asarray(f, dtype=np.float64)
    kc = center_gram(z @ z.T)
    if np.trace(kc) <= 1e-10 * np.square(z).sum():
        return np.full(Y3.shape[1], np.nan)
    pred = ridge_gcv_predictions_from_gram(kc, Y3, alpha=alpha, centered=True)
    return pearson_columns(pred, Y3)


@pytest.mark.parametrize("alpha,loo_precision,tol", [(1.0, "float64", 1e-10), (10.0, "float64", 1e-10),
                                                     (1.0, "float32", 1e-6), (10.0, "float32", 1e-6)])
def test_score_features_matches_plain_reference(alpha, loo_precision, tol):
    n_neur = _BLOCK // 2 + 37  # 3 * n_neur targets: several blocks, the last one partial
    targets, feats, rdms, layers = _problem(n_neur)
    tables = score_reduced(layers, feats, rdms, targets, alpha=alpha, groupings=(), progress=False,
                            loo_precision=loo_precision)
    Y3 = np.concatenate([targets.y, targets.y_odd, targets.y_even], axis=1)
    ns, sc = tables["neuron_scores"], tables["scores"]
    areas = targets.neurons["area"].to_numpy()
    for i, f in enumerate(feats):
        ref = _reference_r3(f, Y3, alpha)
        got = ns[ns.layer == f"l{i}"]["score"].to_numpy()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref[:n_neur]))
        np.testing.assert_allclose(got, ref[:n_neur], rtol=0, atol=tol)
        reg = sc[(sc.layer == f"l{i}") & (sc.metric == "srp_ridge")].set_index("area")
        rsa = sc[(sc.layer == f"l{i}") & (sc.metric == "rsa")].set_index("area")
        for area in AREAS:
            m = areas == area
            for col, part in (("score", ref[:n_neur]), ("score_odd", ref[n_neur:2 * n_neur]),
                              ("score_even", ref[2 * n_neur:])):
                v = part[m]
                expected = np.nanmean(v) if np.isfinite(v).any() else np.nan
                np.testing.assert_allclose(reg.loc[area, col], expected, rtol=0, atol=tol)
            assert reg.loc[area, "n_nan"] == np.isnan(ref[:n_neur][m]).sum()
            for col, y in (("score", targets.y), ("score_odd", targets.y_odd), ("score_even", targets.y_even)):
                expected = compare_rdms(rdms[i], rdm(y[:, m]))
                np.testing.assert_allclose(rsa.loc[area, col], expected, rtol=0, atol=1e-10)
    # the NaN cases: constant targets, the constant layer, the non-finite RDM
    assert np.isnan(ns[ns.cell_specimen_id == 3]["score"]).all()
    assert ns[ns.layer == "l2"]["score"].isna().all()
    assert sc[(sc.layer == "l1") & (sc.metric == "rsa")]["score"].isna().all()


def test_loo_pearson_blocks_threads_and_non_finite_targets():
    targets, feats, _, _ = _problem(_BLOCK + 5, seed=1)
    Y3 = np.concatenate([targets.y, targets.y_odd, targets.y_even], axis=1)
    Ybad = Y3.copy()
    Ybad[4, 10] = np.nan
    Ybad[0, 20] = np.inf
    scorer = LooPearson(Ybad[:, :1000], Ybad[:, 1000:])  # target blocks are concatenated
    assert scorer.n_targets == Y3.shape[1]
    z = feats[0].astype(np.float64)
    kc = center_gram(z @ z.T)
    ops = [leave_one_out_operator(kc, 1.0), None, leave_one_out_operator(kc, 3.0)]
    R1 = scorer.scores(ops, n_workers=1)
    R2 = scorer.scores(ops, n_workers=2)
    np.testing.assert_array_equal(R1, R2)  # blocks are independent: same bits on any number of threads
    assert np.isnan(R1[1]).all()
    for row, alpha in ((0, 1.0), (2, 3.0)):
        ref = pearson_columns(ridge_gcv_predictions_from_gram(kc, Y3, alpha=alpha, centered=True), Y3)
        ref[[10, 20]] = np.nan  # non-finite targets give NaN, and nothing else changes
        np.testing.assert_array_equal(np.isnan(R1[row]), np.isnan(ref))
        np.testing.assert_allclose(R1[row], ref, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(scorer(kc, 1.0), R1[0])
    # float32 products: within 1e-6 of float64, the same NaN, the same bits on any number of threads
    single = LooPearson(Ybad[:, :1000], Ybad[:, 1000:], precision="float32")
    S1 = single.scores(ops, n_workers=1)
    np.testing.assert_array_equal(S1, single.scores(ops, n_workers=2))
    np.testing.assert_array_equal(np.isnan(S1), np.isnan(R1))
    np.testing.assert_allclose(S1, R1, rtol=0, atol=1e-6)
    assert np.nanmax(np.abs(S1 - R1)) > 0  # the float32 path was taken


def test_loo_pearson_float32_nearly_constant_predictions_recomputed():
    # operators whose predictions are constant (identical rows) or nearly so (spread 1e-6 of
    # their magnitude): float32 products cannot resolve them, so they are redone in float64
    rng = np.random.default_rng(5)
    n = 40
    Y = rng.normal(size=(n, 300))
    v = rng.normal(size=n)
    flat = np.outer(np.ones(n), v)
    near = flat + 1e-6 * rng.normal(size=(n, n))
    # and large rows whose products cancel for target 0 (predictions 1e-6 of |P| |y|)
    y0 = Y[:, 0] - Y[:, 0].mean()
    cancel = 1e3 * rng.normal(size=(n, n)) @ (np.eye(n) - np.outer(y0, y0) / (y0 @ y0)) + 1e-3 * rng.normal(size=(n, n))
    ref = LooPearson(Y).scores([flat, near, cancel])
    got = LooPearson(Y, precision="float32").scores([flat, near, cancel])
    assert np.isnan(ref[0]).all() and np.isnan(got[0]).all()
    assert np.isfinite(ref[1:]).all()
    np.testing.assert_allclose(got[1:], ref[1:], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got[2, 0], pearson_columns(cancel @ y0, y0), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ref[1], pearson_columns(near @ (Y - Y.mean(0)), Y), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="precision='float16'; expected 'float64' or 'float32'"):
        LooPearson(Y, precision="float16")
    with pytest.raises(ValueError, match="loo_precision='double'"):
        score_reduced(pd.DataFrame({"name": []}), None, None, None, loo_precision="double")


def test_layer_gram_of_reduced_features_against_numpy():
    from mbutils.scoring.pipeline import _layer_gram

    rng = np.random.default_rng(21)
    z = (rng.normal(size=(13, 300)) + 40).astype(np.float32)
    kc, constant = _layer_gram(z, False)
    zc = z.astype(np.float64) - z.astype(np.float64).mean(0)
    np.testing.assert_allclose(kc, zc @ zc.T, rtol=1e-12, atol=1e-12 * np.abs(zc @ zc.T).max())
    assert np.array_equal(kc, kc.T) and not constant
    # a constant layer and one without features: flagged constant (their scores are NaN)
    assert _layer_gram(np.full((13, 5), 3.0, np.float32), False)[1]
    kc0, constant0 = _layer_gram(np.zeros((13, 0), np.float32), False)
    assert constant0 and kc0.shape == (13, 13) and not kc0.any()


def test_pearson_between_columns_against_scipy_with_unusable_columns():
    from scipy.stats import pearsonr

    from mbutils.scoring.pipeline import _pearson_between_columns

    rng = np.random.default_rng(22)
    A = rng.normal(size=(40, 4)) * [1, 10, 1e-3, 1] + [0, 5, 0, 0]
    B = rng.normal(size=(40, 3)) + A[:, :3] * 0.5
    A[7, 3] = np.nan  # a layer RDM with a non-finite entry
    B[:, 2] = 2.5  # a constant neural RDM
    r = _pearson_between_columns(A, B)
    assert r.shape == (4, 3)
    for i in range(3):
        for j in range(2):
            assert np.isclose(r[i, j], pearsonr(A[:, i], B[:, j])[0], rtol=0, atol=1e-12)
    assert np.isnan(r[3]).all() and np.isnan(r[:, 2]).all()


class _one_worker:
    """``blas_workers`` with one worker thread (so the layers are scored one at a time)."""

    def __enter__(self):
        return 1

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("alpha", [1.0, "auto"])
def test_layers_scored_a_few_at_a_time_give_the_same_tables(monkeypatch, alpha):
    """Thousands of stimuli score a few layers at a time (bounded memory for the leave-one-out
    operators); the tables, bootstrap draws included, equal those of every layer together."""
    import mbutils.scoring.pipeline as pipeline

    n_neur = 60
    targets, feats, rdms, layers = _problem(n_neur, seed=3)
    rng = np.random.default_rng(4)
    extra = Targets(rng.normal(size=(N_STIM, 9)), rng.normal(size=(N_STIM, 9)), rng.normal(size=(N_STIM, 9)),
                    targets.neurons.iloc[:9].assign(cell_specimen_id=np.arange(100, 109), reliability=0.6), None)
    targets.neurons["reliability"] = 0.9
    kwargs = dict(alpha=alpha, groupings=(), progress=False, n_boot=7, reliability_cutoffs=(0.5, 0.8),
                  extra_targets=extra, check=False)
    assert len(pipeline._layer_chunks(len(feats), N_STIM)) == 1
    together = score_reduced(layers, feats, rdms, targets, **kwargs)
    monkeypatch.setattr(pipeline, "OPERATOR_MEMORY", 1)
    monkeypatch.setattr(pipeline, "blas_workers", _one_worker)
    assert [len(c) for c in pipeline._layer_chunks(len(feats), N_STIM)] == [1] * len(feats)
    assert [len(c) for c in pipeline._layer_chunks(len(feats), N_STIM, at_least=3)] == [3, 1]
    apart = score_reduced(layers, feats, rdms, targets, **kwargs)
    assert set(together) == set(apart)
    if alpha != "auto":
        assert (together["bootstrap"]["metric"] == "srp_ridge").sum() == 7 * len(AREAS)
    for name in together:
        pd.testing.assert_frame_equal(together[name], apart[name], check_exact=False, rtol=1e-12, atol=1e-12)
