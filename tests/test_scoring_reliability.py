"""Scores at reliability cutoffs (paper appendix A.6, Figure 6): the scores_reliability table of
score_model and score_features against independent runs and plain numpy/scipy/scikit-learn."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from sklearn.linear_model import RidgeCV

from mbutils.data import select_neurons
from mbutils.models import FeatureModel, LayerInfo
from mbutils.reliability import noise_ceiling, splithalf_rdm_reliability
from mbutils.results import load_model_results, load_run
from mbutils.scoring import RELIABILITY_CUTOFFS, Targets, score_features, score_model

CUTOFFS = (0.5, 0.6, 0.7, 0.8, 0.9)
MAIN_TABLES = ("scores", "scores_groups", "neuron_scores", "summary")


@pytest.fixture(scope="module")
def mouse():
    from mbutils.data import make_synthetic

    return make_synthetic(n_neurons=300, seed=4, progress=False)


@pytest.fixture(scope="module")
def layers(mouse):
    """A layer carrying the signal of every neuron down to reliability 0.5, and a noise layer."""
    y = Targets.from_dataset(mouse, threshold=0.5).y
    rng = np.random.default_rng(0)
    n = y.shape[0]
    return {"signal": y @ rng.normal(size=(y.shape[1], 40)) + 0.5 * rng.normal(size=(n, 40)),
            "noise": rng.normal(size=(n, 30))}


class LayersModel(FeatureModel):
    """A model whose layers are given arrays (one row per stimulus), and a constant layer."""

    name = "planted"
    weights = "random"

    def __init__(self, arrays):
        self.arrays = arrays

    def run(self, stimuli, on_layer, batch_size=None, progress=None):
        arrays = list(self.arrays.values()) + [np.zeros((len(stimuli), 20))]
        names = list(self.arrays) + ["constant"]
        for i, (name, f) in enumerate(zip(names, arrays), 1):
            on_layer(LayerInfo(name, i, i / len(arrays), f.shape[1], "Fake"), torch.tensor(f, dtype=torch.float32))


def _score_model(mouse, layers, out, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the constant layer, areas with few neurons
        return score_model(LayersModel(layers), mouse, out, n_components=64, cache=False, progress=False, **kw)


def _passing(mouse, cutoff):
    """Independent selection: excitatory, not running-modulated, reliability >= cutoff; trial means."""
    scenes = mouse.scenes()
    rel = select_neurons(scenes, threshold=None, progress=False)[1].reliability.to_numpy()
    ds = scenes.ds
    keep = ds["excitatory"].values.astype(bool) & ~(ds["p_run_mod_ns"].values < 0.05) & (rel >= cutoff)
    trials = ds["responses"].values[keep]
    return trials.astype(np.float64).mean(axis=2).T, ds["area"].values[keep].astype(str), rel[keep], trials


def test_main_tables_are_bitwise_those_of_a_run_without_cutoffs(mouse, layers, tmp_path):
    plain = _score_model(mouse, layers, tmp_path / "plain", reliability_cutoffs=())
    full = _score_model(mouse, layers, tmp_path / "full")
    prov_plain = json.loads((tmp_path / "plain" / "provenance.json").read_text())
    prov_full = json.loads((tmp_path / "full" / "provenance.json").read_text())
    assert prov_full["dataset"]["n_neurons_below_threshold"] > 0  # the cutoffs did score more neurons
    assert prov_full["parameters"]["reliability_cutoffs"] == list(RELIABILITY_CUTOFFS)
    assert prov_full["selection"] == prov_plain["selection"]
    assert prov_full["dataset"]["n_neurons_selected"] == prov_plain["dataset"]["n_neurons_selected"]
    for name in MAIN_TABLES:
        pd.testing.assert_frame_equal(full[name], plain[name], check_exact=True)
        # and as written
        pd.testing.assert_frame_equal(load_model_results(tmp_path / "full")[name],
                                      load_model_results(tmp_path / "plain")[name], check_exact=True)
    # neuron_scores: the neurons of the threshold only
    rel = full["scores_reliability"]
    assert len(rel) and not len(plain["scores_reliability"])
    assert (tmp_path / "plain" / "scores_reliability.parquet").exists()  # written empty: no stale table
    assert set(rel["cutoff"]) == set(RELIABILITY_CUTOFFS) and set(rel["metric"]) == {"srp_ridge", "rsa"}
    # the cutoff at the threshold gives the main table's scores, neurons and ceilings
    sc = full["scores"][full["scores"]["metric"].isin(["srp_ridge", "rsa"])]
    at = rel[rel["cutoff"] == 0.8].merge(sc, on=["layer", "metric", "area"], suffixes=("", "_main"))
    assert len(at) == len(sc)
    np.testing.assert_allclose(at["score"], at["score_main"], rtol=0, atol=1e-12)
    assert (at["n_neurons"] == at["n_neurons_main"]).all()
    np.testing.assert_allclose(at["ceiling"], at["ceiling_main"], rtol=0, atol=1e-12)
    assert (at["constant"] == at["constant_main"]).all() and (at["penalty_dominated"] == at["penalty_dominated_main"]).all()
    assert rel.loc[rel["layer"] == "constant", "score"].isna().all()


def test_srp_and_rsa_at_a_cutoff_equal_a_run_at_that_threshold(mouse, layers, tmp_path):
    full = _score_model(mouse, layers, tmp_path / "full", reliability_cutoffs=CUTOFFS)["scores_reliability"]
    for cutoff in CUTOFFS:
        alone = _score_model(mouse, layers, tmp_path / f"at{cutoff}", threshold=cutoff, reliability_cutoffs=())
        sc = alone["scores"][alone["scores"]["metric"].isin(["srp_ridge", "rsa"])]
        got = full[full["cutoff"] == cutoff].merge(sc, on=["layer", "metric", "area"], suffixes=("", "_alone"))
        assert len(got) == len(sc) > 0
        assert (got["n_neurons"] == got["n_neurons_alone"]).all()
        # float32 leave-one-out products: per-neuron r within about 1e-7 of float64
        np.testing.assert_allclose(got["score"], got["score_alone"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(got["ceiling"], got["ceiling_alone"], rtol=0, atol=1e-12)


def test_scores_at_a_cutoff_equal_scikit_learn_and_scipy(mouse, layers):
    tables = score_features(layers, mouse, model="mine", groupings=(), progress=False, reliability_cutoffs=CUTOFFS)
    rel = tables["scores_reliability"]
    assert set(rel["cutoff"]) == set(CUTOFFS)
    n = next(iter(layers.values())).shape[0]
    iu = np.triu_indices(n, 1)
    for cutoff in (0.6, 0.9):
        y, areas, reliab, trials = _passing(mouse, cutoff)
        for name, x in layers.items():
            x = x.astype(np.float32).astype(np.float64)  # the pipeline reads float32
            pred = RidgeCV(alphas=[1.0], store_cv_results=True, scoring="explained_variance").fit(x, y).cv_results_[:, :, 0]
            r = np.array([scipy.stats.pearsonr(pred[:, j], y[:, j])[0] for j in range(y.shape[1])])
            layer_rdm = 1 - np.corrcoef(x)
            for a in np.unique(areas):
                row = rel[(rel.layer == name) & (rel.cutoff == cutoff) & (rel.area == a)].set_index("metric")
                m = areas == a
                assert row.loc["srp_ridge", "n_neurons"] == row.loc["rsa", "n_neurons"] == m.sum()
                assert row.loc["srp_ridge", "score"] == pytest.approx(r[m].mean(), abs=1e-6)
                assert row.loc["srp_ridge", "ceiling"] == pytest.approx(np.sqrt(reliab[m]).mean(), abs=1e-12)
                if m.sum() < 2:
                    assert np.isnan(row.loc["rsa", "score"])
                    continue
                neural = 1 - np.corrcoef(y[:, m])
                want = scipy.stats.pearsonr(layer_rdm[iu], neural[iu])[0]
                assert row.loc["rsa", "score"] == pytest.approx(want, abs=1e-6)
                ceiling = noise_ceiling(splithalf_rdm_reliability(trials[m], n_splits=10, seed=0))
                assert row.loc["rsa", "ceiling"] == pytest.approx(float(ceiling), abs=1e-10)


def test_run_reads_the_table_and_tolerates_folders_without_it(mouse, layers, tmp_path):
    full = _score_model(mouse, layers, tmp_path / "res" / "models" / "planted__random", reliability_cutoffs=CUTOFFS)
    run = load_run(tmp_path / "res", include_flagged=True)
    pd.testing.assert_frame_equal(run.scores_reliability, full["scores_reliability"])
    (tmp_path / "res" / "models" / "planted__random" / "scores_reliability.parquet").unlink()
    older = load_run(tmp_path / "res")
    assert not len(older.scores_reliability) and len(older.scores) == len(run.scores)


def test_bad_cutoffs_are_refused_with_the_value(mouse, layers, tmp_path):
    with pytest.raises(ValueError, match=r"1\.5 is not a reliability in \[-1, 1\]"):
        _score_model(mouse, layers, tmp_path / "bad", reliability_cutoffs=(0.5, 1.5))
    with pytest.raises(ValueError, match="reliability_cutoffs='low'"):
        score_features(layers, mouse, reliability_cutoffs="low")


@pytest.mark.parametrize("case", ["tame", "offset", "far_subset", "missing", "tiny_sets", "scale_1e-150",
                                  "scale_1e150"])
def test_nested_ceilings_equal_the_direct_ones(case):
    """The ceilings of an area's nested neuron sets (one per reliability cutoff) from sums over
    the sets' differences equal the per-set computation, also with a large common offset, a
    most-reliable subset far from the others' mean (the direct path takes over there), half
    means that are missing, and sets of 0 or 1 neurons."""
    from mbutils.scoring.pipeline import _cka_ceiling_of, _nested_ceilings, _rdm_ceiling_of, _split_half_means

    rng = np.random.default_rng(7)
    n, s, t = 60, 25, 8
    signal = rng.normal(size=(n, s, 1))
    trials = signal + 0.8 * rng.normal(size=(n, s, t))
    rel = np.sort(rng.uniform(0.3, 1.0, size=n))[::-1]        # most reliable first
    if case == "offset":
        trials = trials + 1e6
    if case.startswith("scale_"):
        trials = trials * float(case[len("scale_"):])
    if case == "far_subset":  # the 5 most reliable neurons, alone in the first set: shifted sums would
        trials[:5] += 1e3     # lose 6 digits there, so the direct path computes it
    if case == "missing":
        trials[40, 3, :] = np.nan                               # a less reliable neuron misses a stimulus
    cutoffs = [0.95, 0.9, 0.8, 0.6, 0.4] if case != "tiny_sets" else [1.5, 0.999, 0.5]
    if case == "far_subset":
        cutoffs = [rel[4], 0.9, 0.8, 0.6, 0.4]
    masks = [rel >= c for c in cutoffs]
    halves = _split_half_means([trials], n_splits=10, seed=0)
    got_rsa, got_cka = _nested_ceilings(halves, masks, rsa=True, cka=True)
    want_rsa = np.array([_rdm_ceiling_of(halves, m) for m in masks])
    want_cka = np.array([_cka_ceiling_of(halves, m, "biased") for m in masks])
    # (with the far subset inside them, the larger sets' RDMs hold about 10 digits in either path)
    tol = [1e-12] + [1e-9 if case == "far_subset" else 1e-12] * (len(masks) - 1)
    for i, tol_i in enumerate(tol):
        assert got_rsa[i] == pytest.approx(want_rsa[i], abs=tol_i, nan_ok=True), (i, got_rsa, want_rsa)
        assert got_cka[i] == pytest.approx(want_cka[i], abs=tol_i, nan_ok=True), (i, got_cka, want_cka)
    assert np.isfinite(got_rsa).sum() >= (1 if case == "tiny_sets" else len(cutoffs) - 1)
    with pytest.raises(ValueError, match="contained in the next"):
        _nested_ceilings(halves, masks[::-1])


def test_a_run_without_rsa_computes_no_rsa_ceiling(mouse, layers, tmp_path, monkeypatch):
    """SRP-Ridge alone (the configs of thousands of stimuli) computes no RDM ceiling, whose (n, n)
    RDMs would be most of the ceilings' work there; its tables equal the two-metric run's
    SRP-Ridge rows."""
    from mbutils.scoring import pipeline

    both = _score_model(mouse, layers, tmp_path / "both", metrics=("srp_ridge", "rsa"), n_boot=0)

    def refuse(*args, **kwargs):
        raise AssertionError("an RSA ceiling was computed in a run without RSA")

    monkeypatch.setattr(pipeline, "_rdm_ceiling", refuse)
    monkeypatch.setattr(pipeline, "_rdm_ceiling_of", refuse)
    alone = _score_model(mouse, layers, tmp_path / "alone", metrics=("srp_ridge",), n_boot=0)
    for name in ("scores", "summary", "scores_reliability"):
        a = alone[name].reset_index(drop=True)
        b = both[name][both[name]["metric"].isin(a["metric"].unique())].reset_index(drop=True)
        own = [c for c in a.columns if not c.startswith("overall")]  # (overall_*: the mean over both metrics)
        pd.testing.assert_frame_equal(a[own], b[own], check_dtype=False)
