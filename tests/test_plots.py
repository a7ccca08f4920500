"""mbutils.plots: each figure function returns a Figure with the expected axes and artists,
and survives missing groups."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mbutils import plots, stats  # noqa: E402
from mbutils.testing import fake_metadata, make_fake_dataset, make_fake_results  # noqa: E402


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fake_results_plots")
    models = ["alexnet", "resnet18", "vit_small_patch16_224", "deit_small_patch16_224", "efficientnet_lite0",
              "segment_unsup2d", "class_object", "gabor"]
    rel = make_fake_results(folder, models=models, n_neurons_per_area=4)
    make_fake_dataset(folder / "ds.nc", n_neurons_per_area=4)
    return stats.load_run(folder, metadata=fake_metadata()), rel, folder


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_rankings_two_axes_one_errorbar_per_train_type(fake):
    r = stats.model_rankings(fake[0], family="imagenet")
    fig = plots.plot_rankings(r)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 2
    ax = fig.axes[0]
    assert len(ax.containers) == 2  # trained and random errorbars
    assert len(ax.get_yticklabels()) == r["model"].nunique()
    fig = plots.plot_rankings(r, max_models=2)
    assert len(fig.axes[0].get_yticks()) == 2


def test_rankings_even_sample_along_the_overall_ranking(tmp_path):
    """Figure 1's sample: evenly spaced ranks (best and worst included) of the overall ranking, the
    mean of the two metrics' trained scores; the same models on both axes; the appendix shows all."""
    make_fake_results(tmp_path, n_neurons_per_area=2)
    run = stats.load_run(tmp_path, metadata=fake_metadata())
    r = stats.model_rankings(run, family="imagenet")
    s = run.summary[run.summary["train_type"] == "trained"]
    s = s[s["model"].isin(r["model"].unique())]
    overall = s.groupby(["model", "metric"])["max_score"].mean().unstack().mean(axis=1).sort_values(ascending=False)
    ranked = overall.index.tolist()  # 11 architectures
    expected = [ranked[i] for i in (0, 3, 5, 8, 10)]  # round(i * 10 / 4) for i = 0..4, halves up: 0, 2.5, 5, 7.5, 10
    assert plots.ranking_sample(r, 5) == expected
    fig = plots.plot_rankings(r, max_models=5)
    for ax, metric in zip(fig.axes, ("srp_ridge", "rsa")):
        shown = [t.get_text() for t in ax.get_yticklabels()]
        by_metric = s[s["model"].isin(expected) & (s["metric"] == metric)].groupby("model")["max_score"].mean()
        assert shown == by_metric.sort_values(ascending=False).index.tolist()  # sorted by that metric
    top = plots.plot_rankings(r, max_models=5, sample="top")
    assert {t.get_text() for t in top.axes[0].get_yticklabels()} == set(ranked[:5])
    everything = plots.plot_all_rankings(r, title="ImageNet")
    assert len(everything.axes[0].get_yticklabels()) == 11 and everything._suptitle.get_text() == "ImageNet: all 11 models"
    assert plots.ranking_sample(r, 40) == ranked
    with pytest.raises(ValueError, match="n_models=0"):
        plots.ranking_sample(r, 0)
    with pytest.raises(ValueError, match="sample='random'"):
        plots.plot_rankings(r, max_models=3, sample="random")


def test_taskonomy_rankings_coloured_by_cluster(fake):
    r = stats.model_rankings(fake[0], family="taskonomy")
    fig = plots.plot_taskonomy_rankings(r)
    labels = {t.get_text() for t in fig.axes[0].get_legend().get_texts()}
    assert labels == {"2D", "Semantic", "Random"}


def test_other_figures_axes_counts(fake):
    run, rel, folder = fake
    ms = stats.model_summary(run)
    assert len(plots.plot_architecture_correlations(stats.model_summary(run, family="imagenet", train_type="trained"),
                                                    stats.n_layers(run)).axes) == 6
    diffs, _ = stats.training_gain_by_class(run)
    assert len(plots.plot_training_gain_by_class(diffs).axes) == 2
    fig = plots.plot_baselines(ms)
    assert len(fig.axes[0].patches) == 1  # one baseline bar
    fig = plots.plot_score_ranges(stats.score_ranges(run))
    assert len(fig.axes[0].lines) == 4  # imagenet and taskonomy x 2 metrics
    prof = stats.depth_profiles(run, by="model_class")
    fig = plots.plot_depth_profiles(prof)
    assert len(fig.axes[0].lines) == 2 * prof["group"].nunique()  # jagged + smooth per group
    fig = plots.plot_best_layer_depths(stats.best_layer_depths(run), area_order=["VISp", "VISam"])
    assert len(fig.axes[0].patches) == 2
    gs = stats.group_scores(run, grouping="area", family="taskonomy")
    fig = plots.plot_group_scores(gs)
    assert len(fig.axes[0].patches) == 6 * gs["label"].nunique()
    per, _ = stats.layerwise_agreement(run)
    assert len(plots.plot_metric_agreement(ms, per).axes) == 2
    curves = stats.scores_by_reliability(run.neuron_scores, rel, [0.8, 0.9])
    fig = plots.plot_reliability_curves(curves, stats.reliability_smooth(curves))
    assert len(fig.axes[0].lines) == curves.groupby(["model", "train_type"]).ngroups + 2  # + smoother + cutoff
    rec = stats.ground_truth_recovery(run, stats.dataset_label(folder / "ds.nc")["ground_truth"])
    fig = plots.plot_ground_truth(rec)
    assert len(fig.axes[0].collections) == 2


@pytest.mark.parametrize("fn", [plots.plot_rankings, plots.plot_taskonomy_rankings, plots.plot_training_gain_by_class,
                                plots.plot_baselines, plots.plot_score_ranges, plots.plot_depth_profiles,
                                plots.plot_best_layer_depths, plots.plot_group_scores, plots.plot_reliability_curves,
                                plots.plot_ground_truth])
def test_empty_tables_do_not_crash(fake, fn):
    cols = {"model", "train_type", "metric", "score", "ci_low", "ci_high", "display_name", "task_cluster", "group",
            "label", "depth_bin", "mean_score", "smooth", "area", "mean_depth", "model_class", "difference",
            "family", "threshold", "planted_depth", "recovered_depth"}
    fig = fn(pd.DataFrame(columns=sorted(cols)))
    assert isinstance(fig, matplotlib.figure.Figure)


def test_missing_metric_leaves_no_data_axis(fake):
    r = stats.model_rankings(fake[0], family="imagenet")
    fig = plots.plot_rankings(r[r.metric == "rsa"])
    assert fig.axes[0].texts[0].get_text() == "no data"


def test_score_ranges_label_their_subset():
    import pandas as pd

    from mbutils import plots

    ranges = pd.DataFrame({"family": ["imagenet", "imagenet"], "metric": ["rsa", "rsa"],
                           "subset": ["all", "without normalizer-free"], "best": [0.46, 0.46],
                           "worst": [-0.12, 0.35], "range": [0.58, 0.11]})
    fig = plots.plot_score_ranges(ranges)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(labels) == 2 and "(without normalizer-free)" in labels[1] and "(" not in labels[0]
