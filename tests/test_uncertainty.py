"""mbutils.uncertainty on a fake run: P(A beats B) against a plain draw-by-draw count, ranking
intervals against numpy percentiles, runs without a bootstrap table, and the book page."""
import json

import numpy as np
import pytest

from mbutils import uncertainty
from mbutils.results import load_run
from mbutils.testing import fake_metadata, make_fake_results

MODELS = ["alexnet", "resnet18", "resnet50", "vgg16", "gabor"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("fake_unc")
    make_fake_results(root, models=MODELS, n_neurons_per_area=2, n_boot=60)
    return load_run(root, metadata=fake_metadata())


def _plain_model_draws(boot, metric, value):
    """{(model, train_type): {draw: mean over areas}} with plain Python loops."""
    out = {}
    for row in boot[boot["metric"] == metric].itertuples():
        out.setdefault((row.model, row.train_type), {}).setdefault(row.draw, []).append(getattr(row, value))
    return {k: {d: float(np.mean(v)) for d, v in per.items()} for k, per in out.items()}


@pytest.mark.parametrize("metric,value", [("srp_ridge", "max_score"), ("rsa", "unbiased_score")])
def test_p_a_beats_b_is_the_share_of_draws(run, metric, value):
    p = uncertainty.pairwise_probability(run, metric, value)
    plain = _plain_model_draws(run.bootstrap, metric, value)
    models = uncertainty.model_draws(run, metric, value).attrs["models"]
    label = {(m, t): lab for lab, m, t in models[["label", "model", "train_type"]].itertuples(index=False)}
    checked = 0
    for a in plain:
        for b in plain:
            if a == b:
                assert np.isnan(p.loc[label[a], label[b]])
                continue
            draws = sorted(plain[a])
            wins = [1.0 if plain[a][d] > plain[b][d] else 0.5 if plain[a][d] == plain[b][d] else 0.0 for d in draws]
            assert p.loc[label[a], label[b]] == pytest.approx(np.mean(wins), abs=1e-12)
            assert p.loc[label[a], label[b]] + p.loc[label[b], label[a]] == pytest.approx(1.0)
            checked += 1
    assert checked == len(plain) * (len(plain) - 1) > 0


def test_planted_gap_is_resolved(run):
    """The fake trained ResNet-50 is planted 0.15 above its random variant in RSA, with draw
    noise of 0.014: it wins every draw."""
    p = uncertainty.pairwise_probability(run, "rsa")
    assert p.loc["resnet50 (trained)", "resnet50 (random)"] == 1.0


def test_ranking_intervals_are_percentiles_of_the_area_means(run):
    r = uncertainty.ranking_intervals(run, "srp_ridge", level=0.9)
    plain = _plain_model_draws(run.bootstrap, "srp_ridge", "max_score")
    s = run.summary[run.summary["metric"] == "srp_ridge"].groupby(["model", "train_type"])["max_score"].mean()
    for row in r.itertuples():
        draws = np.array(list(plain[(row.model, row.train_type)].values()))
        assert row.ci_low == pytest.approx(np.percentile(draws, 5))
        assert row.ci_high == pytest.approx(np.percentile(draws, 95))
        assert row.score == pytest.approx(s[(row.model, row.train_type)])
        assert row.n_draws == 60
    assert list(r["rank"]) == list(range(1, len(r) + 1))
    assert r["score"].is_monotonic_decreasing


def test_neighbours_follow_the_ranking(run):
    nb = uncertainty.neighbour_probabilities(run, "rsa")
    r = uncertainty.ranking_intervals(run, "rsa")
    p = uncertainty.pairwise_probability(run, "rsa")
    assert list(nb["model_a"]) == list(r["label"][:-1]) and list(nb["model_b"]) == list(r["label"][1:])
    for row in nb.itertuples():
        assert row.p_a_beats_b == p.loc[row.model_a, row.model_b]


def test_summary_intervals_from_the_loader(run):
    s = run.summary
    row = s[(s["metric"] == "rsa") & (s["model"] == "vgg16") & (s["train_type"] == "trained")].iloc[0]
    b = run.bootstrap
    draws = b[(b["metric"] == "rsa") & (b["model"] == "vgg16") & (b["train_type"] == "trained")
              & (b["area"] == row["area"])]["max_score"]
    assert row["max_score_ci_low"] == pytest.approx(np.quantile(draws, 0.025))
    assert row["max_score_ci_high"] == pytest.approx(np.quantile(draws, 0.975))


def test_runs_without_the_table(tmp_path):
    make_fake_results(tmp_path, models=["alexnet"], n_neurons_per_area=2, n_boot=0)
    old = load_run(tmp_path, metadata=fake_metadata())
    assert not len(old.bootstrap) and "max_score_ci_low" not in old.summary.columns
    with pytest.raises(ValueError, match="no bootstrap table"):
        uncertainty.pairwise_probability(old, "srp_ridge")


def test_bad_arguments(run):
    with pytest.raises(ValueError, match="metric='cka'"):
        uncertainty.pairwise_probability(run, "cka")
    with pytest.raises(ValueError, match="value='mean'"):
        uncertainty.ranking_intervals(run, "rsa", value="mean")


def test_page_runs_with_papermill(tmp_path):
    pytest.importorskip("papermill")
    from mbutils.build import NOTEBOOKS, run_notebook
    from mbutils.testing import make_fake_dataset

    make_fake_dataset(tmp_path / "ds.nc", n_neurons_per_area=2)
    make_fake_results(tmp_path, models=MODELS, n_neurons_per_area=2, dataset=tmp_path / "ds.nc", n_boot=40)
    out = tmp_path / "page.ipynb"
    result = run_notebook(NOTEBOOKS / "results_12_uncertainty.py", out,
                          dict(dataset=str(tmp_path / "ds.nc"), results=str(tmp_path), smoke=True))
    assert result.status == "done", result.error
    cells = json.loads(out.read_text())["cells"]
    assert not [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    text = json.dumps(cells)
    assert "What this run shows" in text and "neighbouring pairs" in text
