"""Figure 6 (paper appendix A.6) from a scores_reliability table: curves, smoother, peaks, plot."""
import numpy as np
import pandas as pd
import pytest
import scipy.stats
from statsmodels.nonparametric.smoothers_lowess import lowess as sm_lowess

from mbutils import plots, stats

CUTOFFS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))
AREAS = ("VISp", "VISl", "VISal")
PEAK = {"srp_ridge": 0.7, "rsa": 0.75}


@pytest.fixture(scope="module")
def table():
    """A planted scores_reliability table: scores peak at PEAK[metric], plus noise per model,
    layer and area; model m2 has no VISal neuron at 0.95, and one penalty-dominated layer."""
    rng = np.random.default_rng(0)
    rows = []
    for k, model in enumerate(["m0", "m1", "m2", "m3", "m4"]):
        for metric in ("srp_ridge", "rsa"):
            for cutoff in CUTOFFS:
                for li, layer in enumerate(["a", "b", "c"]):
                    for area in AREAS:
                        if model == "m2" and area == "VISal" and cutoff == 0.95:
                            continue
                        score = 0.3 + 0.05 * k - 2.0 * (cutoff - PEAK[metric]) ** 2 + 0.02 * li \
                            + 0.002 * rng.normal()
                        rows.append(dict(model=model, train_type="trained", layer=layer, layer_index=li + 1,
                                         layer_depth=(li + 1) / 3, metric=metric, area=area, cutoff=cutoff,
                                         score=score, n_neurons=int(100 * (1.0 - cutoff)) + 3, n_nan=0,
                                         ceiling=0.9, few_neurons=False, penalty_dominated=False, constant=False))
                rows.append(dict(rows[-1], layer="flagged", layer_index=4, score=0.99, penalty_dominated=True))
    return pd.DataFrame(rows)


def test_curves_equal_a_plain_loop(table):
    curves = stats.scores_by_reliability(table)
    assert set(curves["threshold"]) == set(CUTOFFS) and set(curves["metric"]) == {"srp_ridge", "rsa"}
    for (model, metric), g in table.groupby(["model", "metric"]):
        g = g[~g["penalty_dominated"]]
        # the areas scored at every cutoff
        areas = [a for a in AREAS if g[g.area == a]["cutoff"].nunique() == len(CUTOFFS)]
        assert areas == (["VISp", "VISl"] if model == "m2" else list(AREAS))
        for cutoff in CUTOFFS:
            best = [g[(g.area == a) & (g.cutoff == cutoff)]["score"].max() for a in areas]
            row = curves[(curves.model == model) & (curves.metric == metric) & (curves.threshold == cutoff)].iloc[0]
            assert row["score"] == pytest.approx(np.mean(best), abs=1e-12)
            assert row["n_areas"] == len(areas)
            assert row["n_neurons"] == len(areas) * (int(100 * (1.0 - cutoff)) + 3)
    # penalty-dominated layers compete only when asked
    flagged = stats.scores_by_reliability(table, include_flagged=True)
    assert (flagged["score"] > curves["score"]).any()
    # a subset of cutoffs
    few = stats.scores_by_reliability(table, thresholds=[0.6, 0.9])
    assert set(few["threshold"]) == {0.6, 0.9} and few["n_areas"].eq(3).all()  # m2's VISal has both


def test_smoother_is_the_mean_bootstrap_and_lowess_per_metric(table):
    curves = stats.scores_by_reliability(table)
    smooth = stats.reliability_smooth(curves)
    assert len(smooth) == 2 * len(CUTOFFS)
    for metric, g in curves.groupby("metric"):
        s = smooth[smooth.metric == metric].set_index("threshold")
        # statsmodels' local-linear lowess without robustness iterations
        xs, ys = sm_lowess(g["score"].to_numpy(), g["threshold"].to_numpy(), frac=2 / 3, it=0, return_sorted=True).T
        want = pd.Series(ys, index=xs).groupby(level=0).mean()
        np.testing.assert_allclose(s["smooth"].to_numpy(), want.reindex(s.index).to_numpy(), atol=1e-12)
        for cutoff, gc in g.groupby("threshold"):
            v = gc["score"].to_numpy()
            assert s.loc[cutoff, "mean"] == pytest.approx(v.mean()) and s.loc[cutoff, "n_models"] == len(v)
            ci = scipy.stats.bootstrap((v,), np.mean, confidence_level=0.95, n_resamples=2000, method="percentile",
                                       random_state=np.random.default_rng(0)).confidence_interval
            assert (s.loc[cutoff, "ci_low"], s.loc[cutoff, "ci_high"]) == pytest.approx((ci.low, ci.high))


def test_peaks_find_the_planted_cutoffs(table):
    smooth = stats.reliability_smooth(stats.scores_by_reliability(table))
    peaks = stats.reliability_peaks(smooth, threshold=0.8).set_index("metric")
    for metric, peak in PEAK.items():
        s = smooth[smooth.metric == metric].set_index("threshold")
        assert peaks.loc[metric, "peak_cutoff"] == peak
        assert peaks.loc[metric, "peak_score"] == s["mean"].max()
        assert peaks.loc[metric, "score_at_threshold"] == s.loc[0.8, "mean"]
        assert peaks.loc[metric, "gain"] == pytest.approx(s["mean"].max() - s.loc[0.8, "mean"])
        assert abs(peaks.loc[metric, "smooth_peak_cutoff"] - peak) <= 0.1
        assert peaks.loc[metric, "n_models"] == 5


def test_figure_has_an_rsa_and_an_srp_panel(table):
    curves = stats.scores_by_reliability(table)
    fig = plots.plot_reliability_curves(curves, stats.reliability_smooth(curves), threshold=0.8)
    assert [ax.get_title() for ax in fig.axes] == ["RSA Max", "SRP-Ridge Max"]
    for ax in fig.axes:
        assert len(ax.lines) == 5 + 2  # one per model, the smoother, the threshold
        assert list(ax.lines[-1].get_xdata()) == [0.8, 0.8] and ax.lines[-1].get_linestyle() == ":"
        assert len(ax.collections) == 2  # CI bars and the means
    single = curves[curves.metric == "srp_ridge"].drop(columns="metric")
    assert len(plots.plot_reliability_curves(single).axes) == 1
    assert len(plots.plot_reliability_curves(curves.iloc[:0]).axes) == 1
