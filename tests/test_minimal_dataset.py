"""A dataset file with only ``responses`` and ``stimuli``: it loads, is selected (with the
steps it cannot support reported as skipped) and is scored."""
import warnings

import matplotlib
import numpy as np
import pytest
import scipy.stats
import xarray as xr
from sklearn.linear_model import RidgeCV

matplotlib.use("Agg")

N_NEURONS, N_STIMULI, N_TRIALS = 40, 36, 8


@pytest.fixture(scope="module")
def minimal(tmp_path_factory):
    """(path, planted features (stimuli, 12), trial-free signal (neurons, stimuli))."""
    rng = np.random.default_rng(7)
    features = rng.normal(size=(N_STIMULI, 12))
    signal = (features @ rng.normal(size=(12, N_NEURONS))).T  # neurons x stimuli
    noise_sd = np.linspace(0.2, 6.0, N_NEURONS)[:, None, None]  # the noisy half fails the threshold
    responses = (signal[:, :, None] + noise_sd * rng.normal(size=(N_NEURONS, N_STIMULI, N_TRIALS))).astype(np.float32)
    images = rng.integers(0, 256, size=(N_STIMULI, 32, 32), dtype=np.uint8)
    path = tmp_path_factory.mktemp("minimal") / "minimal.nc"
    xr.Dataset({"responses": (("neuron", "stimulus", "trial"), responses),
                "stimuli": (("stimulus", "y", "x"), images)}).to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as raw:
        assert set(raw.coords) == set() and raw.attrs == {}
    return path, features, signal


def test_loads_with_unknown_metadata(minimal):
    from mbutils.data import load_dataset

    data = load_dataset(minimal[0])
    assert (data.n_neurons, data.n_stimuli, data.n_trials) == (N_NEURONS, N_STIMULI, N_TRIALS)
    assert data.ds["stimulus"].values.tolist() == list(range(N_STIMULI))
    assert data.ds["cell_specimen_id"].values.tolist() == list(range(N_NEURONS))
    assert data.areas == ["unknown"] and data.cre_lines == ["unknown"]
    assert (data.ds["imaging_depth"].values == -1).all()
    assert np.isnan(data.ds["excitatory"].values).all() and np.isnan(data.ds["p_run_mod_ns"].values).all()
    assert data.unknown_fields == ["area", "cre_line", "imaging_depth", "excitatory", "p_run_mod_ns", "specimen_id"]
    assert data.source == "unknown" and data.scenes().n_stimuli == N_STIMULI


def test_funnel_says_which_steps_were_skipped(minimal):
    from mbutils.data import load_dataset, select_neurons
    from mbutils.plots import plot_selection_funnel
    from mbutils.reliability import splithalf_reliability

    data = load_dataset(minimal[0])
    selected, report = select_neurons(data, threshold=0.8, n_splits=5)
    steps = report.steps.set_index("step")
    assert steps.index.tolist() == ["all", "excitatory", "not_running", "reliable"]
    assert steps["skipped"].tolist() == [False, True, True, False]
    assert steps.loc["excitatory", "description"] == "excitatory: skipped (no `excitatory` in the file)"
    assert steps.loc["not_running", "description"] == "not_running: skipped (no `p_run_mod_ns` in the file)"
    rel = splithalf_reliability(data.responses.values, n_splits=5, progress=False)
    assert steps["n_neurons"].tolist() == [N_NEURONS, N_NEURONS, N_NEURONS, int((rel >= 0.8).sum())]
    assert 0 < report.n_selected < N_NEURONS and selected.n_neurons == report.n_selected
    assert set(report.skipped) == {"excitatory", "not_running"}
    assert "excitatory: skipped" in str(report) and report.to_dict()["skipped"] == report.skipped
    fig = plot_selection_funnel(report.steps)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "not_running: skipped (no `p_run_mod_ns` in the file)" in labels


def test_scored_with_own_features_against_plain_ridge(minimal):
    from mbutils.data import load_dataset, select_neurons
    from mbutils.scoring import score_features

    path, features, _ = minimal
    rng = np.random.default_rng(0)
    feats = {"planted": features + 0.3 * rng.normal(size=features.shape), "noise": rng.normal(size=(N_STIMULI, 9))}
    tables = score_features(feats, path, model="mine", groupings=(), metrics=("srp_ridge",), progress=False)
    sc = tables["scores"]
    assert set(sc["area"]) == {"unknown"}
    selected, _ = select_neurons(load_dataset(path))
    y = selected.trial_average().values.T.astype(np.float64)  # stimuli x neurons
    for name, x in feats.items():
        x = x.astype(np.float32).astype(np.float64)
        pred = RidgeCV(alphas=[1.0], store_cv_results=True, scoring="explained_variance").fit(x, y).cv_results_[:, :, 0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = np.array([scipy.stats.pearsonr(pred[:, j], y[:, j])[0] for j in range(y.shape[1])])
        got = sc[(sc.layer == name) & (sc.metric == "srp_ridge")]["score"].iloc[0]
        assert got == pytest.approx(np.nanmean(r), abs=1e-6)
    best = sc[sc.metric == "srp_ridge"].set_index("layer")["score"]
    assert best["planted"] > 0.5 > best["noise"]


def test_scored_by_a_model_of_the_zoo(minimal, tmp_path):
    from mbutils.scoring import score_model

    tables = score_model("gabor", minimal[0], tmp_path / "out", weights="random", cache=False, progress=False,
                         reliability_cutoffs=())
    scores = tables["scores"]
    assert set(scores["area"]) == {"unknown"} and {"srp_ridge", "rsa"} <= set(scores["metric"])
    assert np.isfinite(scores["score"]).all() and (scores["score"].abs() <= 1).all()
    neurons = tables["neuron_scores"]
    assert set(neurons["cre_line"]) == {"unknown"} and set(neurons["imaging_depth"]) == {-1}
    assert (tmp_path / "out" / "provenance.json").exists()
