"""Exactness whatever the scale of the features: leave-one-out ridge, RDMs and projections against
plain float64 references (scikit-learn, scipy, numpy), on features scaled by 1e-6 to 1e12, with
near-duplicate stimuli and with a large common component; penalty-dominated layers; the score
self-check."""
import numpy as np
import pandas as pd
import pytest
import scipy.stats
from sklearn.linear_model import RidgeCV

from mbutils.reduction import RDMReducer, SparseRandomProjection, layer_gram
from mbutils.scoring import ScoreCheckError, check_scores, pearson_columns, ridge_gcv_predictions, summarize_scores
from mbutils.scoring._loo import (PENALTY_DOMINATED, LooPearson, leave_one_out_operator, penalty_deviation,
                                  penalty_dominated)
from mbutils.scoring.pipeline import Targets, score_reduced
from mbutils.scoring.ridge import center_gram, centered_eigh

N = 40


def _sklearn_loo(X, Y, alpha=1.0):
    """scikit-learn's leave-one-out predictions (RidgeCV with stored values), float64."""
    ridge = RidgeCV(alphas=[alpha], store_cv_results=True, scoring="explained_variance")
    ridge.fit(np.asarray(X, dtype=np.float64), Y)
    return ridge.cv_results_[:, :, 0]


def _pearsonr(pred, Y):
    return np.array([scipy.stats.pearsonr(pred[:, j], Y[:, j])[0] for j in range(Y.shape[1])])


def _problem(seed=0, p=300, m=25):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(N, 6))
    X = latent @ rng.normal(size=(6, p)) + 0.5 * rng.normal(size=(N, p))
    Y = latent @ rng.normal(size=(6, m)) + rng.normal(size=(N, m))
    return X, Y


@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0, 1e4, 1e8, 1e12])
def test_leave_one_out_equals_sklearn_at_any_scale(scale):
    X, Y = _problem()
    X = X * scale
    ref = _pearsonr(_sklearn_loo(X, Y), Y)
    # the public functions, from features and from the Gram
    np.testing.assert_allclose(pearson_columns(ridge_gcv_predictions(X, Y), Y), ref, atol=1e-9)
    # the operator of the scoring path, in both precisions of its products
    P = leave_one_out_operator(center_gram(X @ X.T), 1.0)
    np.testing.assert_allclose(LooPearson(Y).scores([P])[0], ref, atol=1e-9)
    np.testing.assert_allclose(LooPearson(Y, precision="float32").scores([P])[0], ref, atol=1e-6)
    assert np.all(np.diag(P) == 0) and np.allclose(P.sum(1), 1.0)


def test_fewer_features_than_stimuli_at_any_scale():
    X, Y = _problem(p=8)
    for scale in (1e-6, 1.0, 1e9):
        ref = _sklearn_loo(X * scale, Y)
        np.testing.assert_allclose(ridge_gcv_predictions(X * scale, Y), ref, rtol=1e-7, atol=1e-7 * np.abs(Y).max())


def _brute_force_loo(X, Y, alpha=1.0):
    """Leave-one-out by refitting: sklearn Ridge (SVD solver, intercept) on every n - 1 stimuli."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import LeaveOneOut, cross_val_predict

    return cross_val_predict(Ridge(alpha=alpha, solver="svd"), np.asarray(X, dtype=np.float64), Y, cv=LeaveOneOut())


@pytest.mark.parametrize("scale", [1.0, 1e6])
def test_near_duplicate_stimuli(scale):
    X, Y = _problem(seed=3)
    X[1] = X[0] * (1 + 1e-7)  # stimulus 1 is stimulus 0 up to rounding-sized differences
    X[5] = X[4] + 1e-6
    X = X * scale  # at 1e6, far above alpha: the Gram's rounding reaches its smallest eigenvalues
    ref = _pearsonr(_brute_force_loo(X, Y), Y)
    from mbutils.scoring.ridge import centered_spectrum

    assert centered_spectrum(X, 1.0)[2] == (scale > 1)  # the Gram's rounding is too large at 1e6: SVD
    np.testing.assert_allclose(pearson_columns(ridge_gcv_predictions(X, Y), Y), ref, atol=1e-6)
    layers = pd.DataFrame({"name": ["dup"], "index": [1], "depth": [1.0]})
    out = score_reduced(layers, [X], None, _targets(Y, np.array(["VISp"] * Y.shape[1])), groupings=(),
                         progress=False, loo_precision="float64")
    np.testing.assert_allclose(out["neuron_scores"]["score"].to_numpy(), ref, atol=1e-6)


def test_operator_of_several_alphas_and_centered_eigh():
    X, Y = _problem(seed=4)
    kc = center_gram(X @ X.T)
    s, V = centered_eigh(kc)
    assert V.shape == (N, N - 1) and np.abs(V.sum(0)).max() < 1e-10  # orthogonal to the constant vector
    np.testing.assert_allclose(V.T @ V, np.eye(N - 1), atol=1e-12)
    np.testing.assert_allclose((V * s) @ V.T, kc, atol=1e-9 * np.abs(kc).max())
    # the O(n^2) reflections equal the explicit basis
    from mbutils.scoring.ridge import _from_centered, _to_centered, centered_basis

    Q = centered_basis(N)
    np.testing.assert_allclose(_to_centered(kc), Q.T @ kc @ Q, atol=1e-12 * np.abs(kc).max())
    np.testing.assert_allclose(_from_centered(np.eye(N - 1)), Q, atol=1e-14)
    ops = leave_one_out_operator(kc, [1.0, 100.0])
    for P, a in zip(ops, (1.0, 100.0)):
        np.testing.assert_allclose(P @ Y, _sklearn_loo(X, Y, a), atol=1e-8)


def test_penalty_dominated_layers_are_flagged_and_bounded():
    X, Y = _problem(seed=5)
    tiny = leave_one_out_operator(center_gram((X * 1e-6) @ (X * 1e-6).T), 1.0)
    normal = leave_one_out_operator(center_gram(X @ X.T), 1.0)
    assert penalty_deviation(tiny) < 1e-4
    assert penalty_deviation(normal) > 1.0
    # the bound: a flagged operator gives r <= -sqrt(1 - tau^2) for any target
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(N, 500))
    seen = set()
    for scale in (1e-6, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 3e-2):
        Xs = X * scale
        P = leave_one_out_operator(center_gram(Xs @ Xs.T), 1.0)
        r = LooPearson(targets).scores([P])[0]
        d = penalty_deviation(P)
        assert penalty_dominated(P) == (d <= PENALTY_DOMINATED)  # the shortcut agrees with the SVD
        seen.add(bool(d <= PENALTY_DOMINATED))
        if d <= PENALTY_DOMINATED:
            assert r.max() <= -np.sqrt(1 - PENALTY_DOMINATED ** 2) + 1e-12
    assert seen == {True, False}  # both sides of the threshold were tried
    # the leave-one-out mean itself is -1 with every target
    np.testing.assert_allclose(LooPearson(targets).scores([tiny])[0], -1.0, atol=1e-9)


def _targets(Y, areas):
    neurons = pd.DataFrame({"cell_specimen_id": np.arange(Y.shape[1]), "area": areas, "cre_line": "Cux2",
                            "imaging_depth": 175, "reliability": 0.9})
    rng = np.random.default_rng(1)
    return Targets(Y, Y + 0.3 * rng.normal(size=Y.shape), Y + 0.3 * rng.normal(size=Y.shape), neurons, None)


def test_score_features_flags_scales_and_matches_sklearn():
    X, Y = _problem(seed=6, m=30)
    areas = np.array(["VISp", "VISl"] * 15)
    layers_feats = [X * 1e-7, X, X * 1e9]
    layers = pd.DataFrame({"name": ["tiny", "plain", "huge"], "index": [1, 2, 3], "depth": [1 / 3, 2 / 3, 1.0]})
    out = score_reduced(layers, [f.astype(np.float32) for f in layers_feats], None, _targets(Y, areas),
                         groupings=(), progress=False)
    sc = out["scores"]
    paper = sc[sc.metric == "srp_ridge"].set_index(["layer", "area"])
    for name, f in zip(layers.name, layers_feats):
        f32 = f.astype(np.float32)
        r = _pearsonr(_sklearn_loo(f32, Y), Y)
        for a in ("VISp", "VISl"):
            assert abs(paper.loc[(name, a), "score"] - r[areas == a].mean()) < 1e-6
    flags = paper["penalty_dominated"].groupby(level=0).first()
    assert flags.to_dict() == {"tiny": True, "plain": False, "huge": False}
    # scale-aware: alpha times the mean eigenvalue, the same for every scale of the same features
    scaled = sc[sc.metric == "srp_ridge_scaled"].set_index(["layer", "area"])["score"]
    for a in ("VISp", "VISl"):
        assert abs(scaled[("tiny", a)] - scaled[("plain", a)]) < 1e-5
        assert abs(scaled[("huge", a)] - scaled[("plain", a)]) < 1e-5
    f = layers_feats[1].astype(np.float64)
    kc = center_gram(f @ f.T)
    a_rel = np.trace(kc) / (N - 1)
    r = _pearsonr(_sklearn_loo(layers_feats[1].astype(np.float32), Y, a_rel), Y)
    assert abs(scaled[("plain", "VISp")] - r[areas == "VISp"].mean()) < 1e-6
    # the summary leaves the flagged layer out and counts it
    summ = summarize_scores(sc)
    row = summ[(summ.metric == "srp_ridge") & (summ.area == "VISp")].iloc[0]
    assert row["n_flagged"] == 1 and row["n_layers"] == 3 and row["best_layer"] != "tiny"
    with_flagged = summarize_scores(sc.assign(score=np.where(sc.layer == "tiny", 0.99, sc.score)),
                                    include_flagged=True)
    assert with_flagged[(with_flagged.metric == "srp_ridge")]["best_layer"].eq("tiny").all()


def test_check_scores_refuses_perfect_and_above_ceiling():
    base = dict(layer="l1", metric="srp_ridge", area="VISp", ceiling=0.6)
    check_scores(pd.DataFrame([dict(base, score=0.65)]))  # within the margin: a result
    with pytest.raises(ScoreCheckError, match=r"'l1'.*exactly 1"):
        check_scores(pd.DataFrame([dict(base, score=1.0)]))
    with pytest.raises(ScoreCheckError, match="above the noise ceiling"):
        check_scores(pd.DataFrame([dict(base, score=0.75)]))
    ns = pd.DataFrame({"layer": ["l2", "l2"], "score": [0.3, 1.0]})
    with pytest.raises(ScoreCheckError, match="'l2'.*1 neurons score exactly 1"):
        check_scores(pd.DataFrame([dict(base, score=0.2)]), ns)


def test_score_features_raises_on_a_perfect_score():
    X, Y = _problem(seed=7, m=4)
    layers = pd.DataFrame({"name": ["copy"], "index": [1], "depth": [1.0]})
    # features that contain the targets exactly, far above alpha: every neuron is interpolated
    feats = [np.hstack([Y, Y]).astype(np.float64) * 1e6]
    tg = _targets(Y, np.array(["VISp"] * 4))
    tg.y_odd, tg.y_even = Y.copy(), Y.copy()
    with pytest.raises(ScoreCheckError, match="'copy'"):
        score_reduced(layers, feats, None, tg, groupings=(), progress=False)
    out = score_reduced(layers, feats, None, tg, groupings=(), progress=False, check=False)
    assert out["scores"]["score"].max() > 0.999


def test_rdm_float32_falls_back_where_the_correlations_barely_vary():
    rng = np.random.default_rng(2)
    iu = np.triu_indices(N, 1)
    p = 20000  # above RDM_FLOAT64_FEATURES: the float32 path and its estimate
    common = rng.normal(size=p) * 30
    cases = {
        # one pattern scaled differently per stimulus (as in deep layers of random networks): the
        # stimulus-centered features are large and coherent, the correlations barely vary
        "coherent": (1 + 0.3 * rng.normal(size=(N, 1))) * common + 1e-2 * rng.normal(size=(N, p)),
        # nearly the same, independent differences
        "independent": common + rng.normal(size=(N, p)),
        "tame": rng.normal(size=(N, p)),
    }
    for name, X in cases.items():
        X = X.astype(np.float32)
        ref = np.corrcoef(X.astype(np.float64))
        g32 = layer_gram(X, precision="float32")
        err, spread = RDMReducer.float32_error(g32)
        # the estimate bounds the float32 error
        assert np.abs(g32.corrcoef()[iu] - ref[iu]).max() <= err, name
        red = RDMReducer()
        got = 1.0 - red(X)
        if name == "coherent":  # float32 is far off there (4.7 times the spread): must fall back
            assert red.n_float64 == 1
        if red.n_float64:  # redone in float64: numpy's corrcoef to rounding
            assert np.abs(got[iu] - ref[iu]).max() < 1e-6 * spread
        else:  # the float32 error is negligible against the spread
            assert np.abs(got[iu] - ref[iu]).max() < 1e-6 * np.sqrt(len(iu[0])) * spread
    # small layers: float64 directly
    red = RDMReducer()
    small = rng.normal(size=(N, 68)).astype(np.float32)
    np.testing.assert_allclose(1.0 - red(small), np.corrcoef(small.astype(np.float64)), atol=1e-12)
    assert red.n_float64 == 1


@pytest.mark.parametrize("level", [0.5, 1e3])
def test_gram_of_features_near_a_large_common_value(monkeypatch, level):
    """A sigmoid gate at 0.5 +- 1e-6 (random EfficientNets' squeeze-excitation gates): the
    row-centered Gram must not come from differences of sums of squared means (which gave
    correlation errors of 9e-6 in float64, and RSA errors of 1e-6)."""
    import torch

    import mbutils.reduction._gram as red

    rng = np.random.default_rng(5)
    n, C, hw = N, 64, 32
    X = (level + level * 6e-6 * (rng.normal(size=(n, C * hw)) + rng.normal(size=C * hw))).astype(np.float32)
    ref = np.corrcoef(X.astype(np.float64))
    assert np.std(ref[np.triu_indices(n, 1)]) > 0.01  # the correlations carry information
    got = {p: red.layer_gram(X, precision=p).corrcoef() for p in ("float64", "float32")}
    stats = red._ChannelStats(X, C, red._kernels())
    got["channel statistics"] = stats.gram().corrcoef()
    a, b = rng.uniform(0.5, 2, C), np.full(C, 3.0)
    Y = (X.astype(np.float64).reshape(n, C, hw) * a[:, None] + b[:, None]).reshape(n, -1)
    affine = np.abs(stats.gram(a, b).corrcoef() - np.corrcoef(Y)).max()
    monkeypatch.setattr(red, "_kernels", lambda: None)  # the torch path (CUDA's)
    got.update({f"torch {p}": red.layer_gram(torch.from_numpy(X), precision=p).corrcoef()
                for p in ("float64", "float32")})
    err = {k: float(np.abs(v - ref).max()) for k, v in got.items()}
    for k, e in err.items():
        assert e < (1e-6 if "float32" in k else 1e-10), err
    assert affine < 1e-10


def test_projection_falls_back_to_float64_for_a_large_common_component():
    rng = np.random.default_rng(3)
    p = 20000
    common = (rng.normal(size=p) * 1e4).astype(np.float32)
    X = common + rng.normal(size=(N, p)).astype(np.float32)
    srp = SparseRandomProjection(n_components=256, seed=1)
    ref = X.astype(np.float64) @ srp.matrix(p).toarray().astype(np.float64)
    z = srp(X)
    assert srp.n_float64 == 1 and z.dtype == np.float64
    refc, zc = ref - ref.mean(0), z - z.mean(0)
    assert np.linalg.norm(zc - refc) / np.linalg.norm(refc) < 1e-10
    # tame features: float32, within the estimate
    T = rng.normal(size=(N, p)).astype(np.float32)
    z2 = srp(T)
    assert z2.dtype == np.float32 and srp.n_float64 == 1
    ref2 = T.astype(np.float64) @ srp.matrix(p).toarray().astype(np.float64)
    rel = np.linalg.norm((z2 - z2.mean(0)) - (ref2 - ref2.mean(0))) / np.linalg.norm(ref2 - ref2.mean(0))
    assert rel < srp.float32_error(z2, p)


def test_nonfinite_activations_are_counted_per_layer():
    import torch

    from mbutils.models import extract
    from mbutils.models.base import FeatureModel, LayerInfo

    class Broken(FeatureModel):
        name = "broken"
        weights = "random"
        device = "cpu"

        def run(self, stimuli, on_layer, batch_size=None, progress=None):
            n = stimuli.shape[0]
            a = torch.from_numpy(stimuli.reshape(n, -1).astype(np.float32))
            b = a.clone()
            b[0, :3] = float("nan")
            b[1, 5] = float("inf")
            on_layer(LayerInfo("ok", 1, 0.5, a.shape[1], "Identity"), a)
            on_layer(LayerInfo("bad", 2, 1.0, b.shape[1], "Identity"), b)

    stim = np.random.default_rng(0).integers(0, 256, size=(6, 8, 8), dtype=np.uint8)
    fs = extract(Broken(), stim, {"rdm": RDMReducer()}, cache=False)
    assert fs.layers.set_index("name")["n_nonfinite"].to_dict() == {"ok": 0, "bad": 4}


def test_flagged_layers_leave_the_book_tables_and_are_marked(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from mbutils import stats
    from mbutils.testing import fake_metadata, make_fake_results
    from mbutils.plots import plot_layer_profile

    make_fake_results(tmp_path, n_neurons_per_area=3)
    folder = next(p for p in sorted((tmp_path / "models").glob("*__random")))
    model = folder.name.split("__")[0]
    for name in ("scores", "scores_groups", "neuron_scores"):
        t = pd.read_parquet(folder / f"{name}.parquet")
        t["penalty_dominated"] = (t["layer_index"] <= 3) & (t["metric"] == "srp_ridge" if "metric" in t else True)
        t.to_parquet(folder / f"{name}.parquet")
    full = stats.load_run(tmp_path, metadata=fake_metadata(), include_flagged=True)
    run = stats.load_run(tmp_path, metadata=fake_metadata())
    flagged_layers = {f"layer{i:03d}" for i in (1, 2, 3)}
    assert set(run.flagged["layer"]) == flagged_layers and set(run.flagged["model"]) == {model}
    s = run.scores[(run.scores.model == model) & (run.scores.train_type == "random")]
    assert not (set(s[s.metric == "srp_ridge"]["layer"]) & flagged_layers)
    assert set(s[s.metric == "rsa"]["layer"]) >= flagged_layers  # RSA rows stay
    ns = run.neuron_scores[(run.neuron_scores.model == model) & (run.neuron_scores.train_type == "random")]
    assert not (set(ns["layer"]) & flagged_layers)
    assert len(full.scores) - len(run.scores) == int(full.scores["penalty_dominated"].fillna(False).sum())
    # the paper's metrics only, unless asked
    t = pd.read_parquet(folder / "scores.parquet")
    t = pd.concat([t, t[t.metric == "srp_ridge"].assign(metric="srp_ridge_scaled", penalty_dominated=False)])
    t.to_parquet(folder / "scores.parquet")
    assert set(stats.load_run(tmp_path, metadata=fake_metadata()).scores["metric"]) == {"srp_ridge", "rsa"}
    assert "srp_ridge_scaled" in set(stats.load_run(tmp_path, metadata=fake_metadata(), metrics=None).scores["metric"])
    counts = run.flagged_counts()
    assert counts[["model", "n_flagged"]].values.tolist() == [[model, 3]]
    assert "3 penalty-dominated layers of 1 models" in stats.run_banner(run, {"path": "x", "source": "synthetic"})
    # depth profiles come from the filtered table
    prof = stats.depth_profiles(full, family="imagenet", train_type="random") if len(full.scores) else None
    assert prof is not None
    # the model card's words and figure
    one = full.scores[(full.scores.model == model) & (full.scores.train_type == "random")]
    note = stats.penalty_note(one)
    assert "**3 of" in note and "layer001" in note and "layer003" in note
    fig = plot_layer_profile(one, title="card")
    assert fig._suptitle.get_text() == "card"
    title = fig.axes[0].get_title()
    assert "3 penalty-dominated layers" in title
    assert "penalty-dominated" not in fig.axes[1].get_title()
    assert "No layer" in stats.penalty_note(one.assign(penalty_dominated=False))


def test_compare_mappings_flags_ridge_gcv_on_tiny_features():
    from mbutils.scoring import compare_mappings, summarize_mappings

    X, Y = _problem(seed=8, p=600)
    out = compare_mappings({"tiny": X * 1e-7, "plain": X}, Y, reductions=("srp",), n_components=(256,),
                           regressions=("ridge_gcv", "ridge_kfold"), progress=False)
    flags = out.set_index(["layer", "regression"])["penalty_dominated"].to_dict()
    assert flags == {("tiny", "ridge_gcv"): True, ("tiny", "ridge_kfold"): False,
                     ("plain", "ridge_gcv"): False, ("plain", "ridge_kfold"): False}
    summ = summarize_mappings(out)
    row = summ.loc[("srp", 256, "ridge_gcv")]
    assert row["n_flagged"] == 1 and row["n_layers"] == 1
    assert row["score"] == pytest.approx(out[(out.layer == "plain") & (out.regression == "ridge_gcv")]["score"].iloc[0])


def test_book_build_skips_the_browser_check_without_chromium(monkeypatch, tmp_path):
    """`make book` on a machine without Chromium builds the book and says the check was skipped."""
    import mbutils.build._book as book
    import mbutils.build._browser as browser
    from mbutils.build import SweepSummary

    class Config:
        name, models, neurons, seed = "t", [], None, 0

    monkeypatch.setattr(book, "ensure_dataset", lambda dataset, neurons, seed: dataset)
    monkeypatch.setattr(book, "run_sweep", lambda *a, **k: SweepSummary())
    monkeypatch.setattr(book, "run_sections", lambda *a, **k: SweepSummary())
    monkeypatch.setattr(book, "write_toc", lambda *a, **k: None)
    monkeypatch.setattr(book, "_copy_site", lambda *a, **k: None)
    monkeypatch.setattr(book, "jupyter_book_build", lambda *a, **k: tmp_path)
    monkeypatch.setattr(browser, "find_chromium", lambda: None)
    called = []
    monkeypatch.setattr(browser, "check_book", lambda html: called.append(html))
    result = book.build_book(Config(), dataset=tmp_path / "d.nc", results=tmp_path / "r", book=tmp_path / "b")
    assert result.browser is None and not called and "no Chromium" in result.browser_skipped
    monkeypatch.setattr(browser, "find_chromium", lambda: "/usr/bin/chromium")
    result = book.build_book(Config(), dataset=tmp_path / "d.nc", results=tmp_path / "r", book=tmp_path / "b")
    assert called == [tmp_path] and result.browser_skipped is None
