"""Tables and figures of the book's own chapters (model card, neural data, model zoo, method
validation), against independent computations (pandas, scipy, scikit-learn)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import scipy.stats  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.linear_model import RidgeCV  # noqa: E402

from mbutils.data import NeuralDataset  # noqa: E402
from mbutils.plots import (plot_layer_profile, plot_mapping_tradeoff, plot_reliability_distributions,  # noqa: E402
                           plot_selection_funnel)
from mbutils.reliability import (noise_ceiling, rdm_reliability_by_area, reliability_table,  # noqa: E402
                                 splithalf_rdm_reliability)
from mbutils.results import load_model_results  # noqa: E402
from mbutils.scoring import mapping_agreement  # noqa: E402
from mbutils.scoring.mappings import reduce_features  # noqa: E402
from mbutils.stats import best_layers_table, layer_counts  # noqa: E402


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    n, n_stim, n_trials = 60, 12, 8
    signal = rng.normal(size=(n, n_stim, 1))
    areas = np.array(["VISam", "VISp", "VISl", "VISx"])[np.r_[rng.integers(0, 3, n - 1), 3]]  # VISx: 1 neuron
    return NeuralDataset.from_arrays(
        signal + rng.uniform(0.5, 3, (n, 1, 1)) * rng.normal(size=(n, n_stim, n_trials)),
        rng.integers(0, 256, (n_stim, 4, 4), dtype=np.uint8),
        cell_specimen_id=np.arange(100, 100 + n), area=areas,
        cre_line=np.array(["Cux2-CreERT2", "Rorb-IRES2-Cre"])[rng.integers(0, 2, n)],
        imaging_depth=np.full(n, 175), excitatory=np.ones(n, bool), source="test")


def _scores(rng):
    rows = []
    for metric in ("srp_ridge", "rsa"):
        for area in ("VISam", "VISp", "VISl"):
            for i in range(5):
                rows.append(dict(model="m", train_type="trained", metric=metric, area=area, layer=f"l{i}",
                                 layer_index=i + 1, layer_depth=i / 4, score=rng.normal(), score_normalized=rng.normal()))
    return pd.DataFrame(rows)


def test_reliability_table_merges_areas_and_thresholds(data):
    ids = data.ds["cell_specimen_id"].values
    rel = pd.Series(np.linspace(0.0, 1.0, 40), index=ids[::-1][:40], name="whatever")
    table = reliability_table(data, rel, threshold=0.5)
    assert len(table) == 40 and set(table["cell_specimen_id"]) == set(rel.index)
    by_id = table.set_index("cell_specimen_id")
    area = pd.Series(data.ds["area"].values, index=ids)
    for cid, r in rel.items():
        assert by_id.loc[cid, "reliability"] == r
        assert by_id.loc[cid, "area"] == area[cid]
        assert bool(by_id.loc[cid, "reliable"]) == (r >= 0.5)
    with pytest.raises(TypeError, match="reliability must be a pandas Series.*got ndarray"):
        reliability_table(data, rel.to_numpy())


def test_rdm_reliability_by_area_equals_per_area_computation(data):
    table = rdm_reliability_by_area(data, n_splits=4, seed=2)
    # hierarchy order first, unknown areas after
    assert list(table["area"]) == ["VISp", "VISl", "VISam", "VISx"]
    resp = data.responses
    for _, row in table.iterrows():
        m = resp["area"].values == row["area"]
        assert row["n_neurons"] == m.sum()
        if m.sum() < 2:
            assert np.isnan(row["rdm_reliability"]) and np.isnan(row["ceiling"])
            continue
        expected = splithalf_rdm_reliability(resp.values[m], n_splits=4, seed=2)
        assert row["rdm_reliability"] == pytest.approx(expected, rel=1e-12)
        assert row["ceiling"] == pytest.approx(noise_ceiling(expected), rel=1e-12)


def test_best_layers_table_orders_by_hierarchy():
    summary = pd.DataFrame({"metric": ["rsa", "rsa", "srp_ridge", "srp_ridge"], "area": ["VISl", "VISp", "VISam", "VISp"],
                            "max_score": [0.1, 0.2, 0.3, 0.4], "best_layer": ["a", "b", "c", "d"], "other": 1})
    table = best_layers_table(summary)
    assert list(table.index) == [("rsa", "VISp"), ("rsa", "VISl"), ("srp_ridge", "VISp"), ("srp_ridge", "VISam")]
    assert list(table.columns) == ["max_score", "best_layer"]
    assert table.loc[("srp_ridge", "VISam"), "max_score"] == 0.3
    with pytest.raises(ValueError, match=r"summary lacks the columns \['area'\]"):
        best_layers_table(summary.drop(columns="area"))


def test_layer_counts_and_model_results(tmp_path):
    rng = np.random.default_rng(0)
    for name, n_layers in (("a__trained", 5), ("b__random", 3)):
        folder = tmp_path / "models" / name
        folder.mkdir(parents=True)
        s = _scores(rng)
        s = s[s["layer_index"] <= n_layers].assign(model=name.split("__")[0], train_type=name.split("__")[1])
        s.to_parquet(folder / "scores.parquet")
        (folder / "provenance.json").write_text("{}")  # written last: the folder is complete
    (tmp_path / "models" / "empty__trained").mkdir()
    counts = layer_counts(tmp_path)
    assert counts.to_dict("records") == [dict(model="a", train_type="trained", n_layers=5),
                                         dict(model="b", train_type="random", n_layers=3)]
    assert layer_counts(tmp_path / "nothing").empty
    tables = load_model_results(tmp_path / "models" / "a__trained")
    pd.testing.assert_frame_equal(tables["scores"], pd.read_parquet(tmp_path / "models" / "a__trained" / "scores.parquet"))
    with pytest.raises(FileNotFoundError, match="no scores.parquet in .*empty__trained.*score the model first"):
        load_model_results(tmp_path / "models" / "empty__trained")


def test_mapping_agreement_against_sklearn_leave_one_out():
    rng = np.random.default_rng(3)
    n = 25
    features = {"small": rng.normal(size=(n, 40)), "wide": rng.normal(size=(n, 300))}
    y = features["wide"][:, :5] @ rng.normal(size=(5, 7)) + rng.normal(size=(n, 7))
    table = mapping_agreement(features, y, n_components=64, alpha=1.0, seed=0).set_index("layer")

    def loo_scores(x):
        # with a scoring given, cv_results_ holds the leave-one-out predictions
        cv = RidgeCV(alphas=[1.0], store_cv_results=True, scoring="neg_mean_squared_error").fit(x, y).cv_results_[..., 0]
        return np.array([scipy.stats.pearsonr(cv[:, j], y[:, j])[0] for j in range(y.shape[1])])

    for name, x in features.items():
        exact = loo_scores(x)
        srp = loo_scores(reduce_features(x, "srp", 64, 0))
        row = table.loc[name]
        assert row["n_features"] == x.shape[1]
        assert row["score_exact"] == pytest.approx(exact.mean(), abs=1e-8)
        assert row["score_srp"] == pytest.approx(srp.mean(), abs=1e-6)
        assert row["max_abs_diff"] == pytest.approx(np.abs(srp - exact).max(), abs=1e-6)
        assert row["neuron_r"] == pytest.approx(np.corrcoef(srp, exact)[0, 1], abs=1e-6)


def test_chapter_figures_draw_their_data(data):
    rng = np.random.default_rng(1)
    scores = _scores(rng)
    fig = plot_layer_profile(scores, title="m")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["VISp", "VISl", "VISam"]
    sub = scores[(scores.metric == "srp_ridge") & (scores.area == "VISp")].sort_values("layer_depth")
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), sub["score"].to_numpy())
    with pytest.raises(ValueError, match=r"value='ceiling' is not a column of scores; expected one of \['score', "):
        plot_layer_profile(scores, value="ceiling")
    fig = plot_layer_profile(scores.iloc[:0])
    assert [t.get_text() for t in fig.axes[0].texts] == ["no scores"]
    rel = pd.Series(np.linspace(0, 1, data.n_neurons), index=data.ds["cell_specimen_id"].values)
    fig = plot_reliability_distributions(reliability_table(data, rel), threshold=0.7)
    assert len(fig.axes) == 2 and [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["VISp", "VISl", "VISam", "VISx"]
    steps = pd.DataFrame({"description": ["all", "reliable"], "n_neurons": [100, 40]})
    fig = plot_selection_funnel(steps)
    assert sorted(p.get_width() for p in fig.axes[0].patches) == [40, 100]
    comparison = pd.DataFrame({"reduction": ["srp", "srp", "pca"], "n_components": [1024, 1024, 1024],
                               "regression": ["ridge_gcv"] * 3, "score": [0.2, 0.4, 0.5], "total_s": [1.0, 3.0, 2.0]})
    fig = plot_mapping_tradeoff(comparison)
    offsets = np.concatenate([c.get_offsets() for c in fig.axes[0].collections])
    # one point per (reduction, regression, size): the means over layers
    assert sorted(map(tuple, np.round(offsets, 12).tolist())) == [(2.0, 0.3), (2.0, 0.5)]
    import matplotlib.pyplot as plt

    plt.close("all")
