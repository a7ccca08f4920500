"""The paper's neuron selection and its report, against an independent pandas computation."""
import numpy as np
import pandas as pd
import pytest

from mbutils.data import EXCITATORY_CRE_LINES, NeuralDataset, is_excitatory, select_neurons
from mbutils.reliability import splithalf_reliability


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    n, n_stim, n_trials = 200, 30, 20
    signal = rng.normal(size=(n, n_stim, 1))
    noise = rng.uniform(0.2, 6, size=(n, 1, 1))
    cres = np.array(["Cux2-CreERT2", "Rorb-IRES2-Cre", "Sst-IRES-Cre", "Vip-IRES-Cre", "Ntsr1-Cre_GN220"])
    cre = cres[rng.integers(0, len(cres), n)]
    return NeuralDataset.from_arrays(
        signal + noise * rng.normal(size=(n, n_stim, n_trials)),
        rng.integers(0, 256, (n_stim, 5, 5), dtype=np.uint8),
        cell_specimen_id=rng.permutation(10_000)[:n],
        area=np.array(["VISp", "VISl", "VISal"])[rng.integers(0, 3, n)],
        cre_line=cre,
        imaging_depth=rng.choice([175, 275], n),
        excitatory=[is_excitatory(c) for c in cre],
        p_run_mod_ns=np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0, 0.3, n)),
        source="test",
    )


def test_counts_match_pandas(data):
    selected, report = select_neurons(data, threshold=0.7, n_splits=5, seed=3)
    meta = data.metadata()
    meta["rel"] = splithalf_reliability(data.responses.values, n_splits=5, seed=3, progress=False)
    exc = meta[meta.excitatory]
    still = exc[~(exc.p_run_mod_ns < 0.05)]  # NaN p-values are kept
    final = still[still.rel >= 0.7]
    assert report.steps["n_neurons"].tolist() == [len(meta), len(exc), len(still), len(final)]
    assert report.steps["step"].tolist() == ["all", "excitatory", "not_running", "reliable"]
    assert sorted(selected.ds["cell_specimen_id"].values) == sorted(final.cell_specimen_id)
    np.testing.assert_allclose(
        selected.ds["reliability"].values, final.set_index("cell_specimen_id").loc[selected.ds["cell_specimen_id"].values, "rel"]
    )
    by_area = final.groupby("area").size()
    pd.testing.assert_series_equal(
        report.by_area["reliable"][by_area.index], by_area, check_names=False, check_dtype=False
    )
    assert (report.by_cre_line.sum() == report.steps.set_index("step")["n_neurons"]).all()
    assert report.by_cre_line.loc["Sst-IRES-Cre", "excitatory"] == 0
    assert report.n_selected == len(final)
    text = str(report)
    assert f"{len(final):>7,d}" in text and "By area" in text and "VISal" in text
    assert report.to_dict()["steps"]["reliable"] == len(final)


def test_steps_can_be_skipped(data):
    _, report = select_neurons(data, threshold=None, running_alpha=None, excitatory_only=False)
    assert report.steps["step"].tolist() == ["all"]


def test_validation(data):
    with pytest.raises(ValueError, match="threshold=2; expected a reliability in"):
        select_neurons(data, threshold=2)
    with pytest.raises(ValueError, match="running_alpha=1.5; expected a significance level"):
        select_neurons(data, running_alpha=1.5)
    with pytest.raises(TypeError, match="expects a NeuralDataset, got Dataset"):
        select_neurons(data.ds)


def test_cre_lines():
    assert all(is_excitatory(c) for c in EXCITATORY_CRE_LINES)
    assert not is_excitatory("Pvalb-IRES-Cre") and is_excitatory("Cux2")
    with pytest.raises(ValueError, match="unknown Cre line 'Foo-Cre'"):
        is_excitatory("Foo-Cre")


def test_partly_unknown_excitatory_drops_the_unknown_neurons(data):
    exc = data.ds["excitatory"].values.astype(np.float64)
    exc[::4] = np.nan  # every fourth neuron of unknown type
    partial = NeuralDataset(data.ds.assign_coords(excitatory=("neuron", exc)))
    assert partial.ds["excitatory"].dtype == np.float64
    selected, report = select_neurons(partial, threshold=0.7, n_splits=5, seed=3)
    meta = partial.metadata()
    meta["rel"] = splithalf_reliability(data.responses.values, n_splits=5, seed=3, progress=False)
    exc_known = meta[meta.excitatory == 1.0]
    still = exc_known[~(exc_known.p_run_mod_ns < 0.05)]
    final = still[still.rel >= 0.7]
    assert report.steps["n_neurons"].tolist() == [len(meta), len(exc_known), len(still), len(final)]
    assert not report.steps["skipped"].any() and report.skipped == {}
    n_unknown = int(np.isnan(exc).sum())
    assert report.steps.set_index("step").loc["excitatory", "description"] == (
        f"excitatory Cre lines ({n_unknown} neurons of unknown type dropped)")
    assert sorted(selected.ds["cell_specimen_id"].values) == sorted(final.cell_specimen_id)


def test_steps_without_their_field_are_skipped_and_reported(data):
    ds = data.ds.drop_vars(["excitatory", "p_run_mod_ns"])
    bare = NeuralDataset(ds)
    selected, report = select_neurons(bare, threshold=0.7, n_splits=5, seed=3)
    rel = splithalf_reliability(data.responses.values, n_splits=5, seed=3, progress=False)
    steps = report.steps.set_index("step")
    assert steps["skipped"].tolist() == [False, True, True, False]
    assert steps["n_neurons"].tolist() == [200, 200, 200, int((rel >= 0.7).sum())]
    assert report.skipped == {"excitatory": "no `excitatory` in the file",
                              "not_running": "no `p_run_mod_ns` in the file"}
    # the area and Cre line tables carry the skipped steps with the counts of the step before
    assert (report.by_area["excitatory"] == report.by_area["all"]).all()
    assert selected.n_neurons == int((rel >= 0.7).sum())


def test_single_presentations_only_skip_the_reliability_step(data):
    one_trial = NeuralDataset(data.ds.isel(trial=[0]))
    selected, report = select_neurons(one_trial, threshold=0.8)
    assert report.skipped == {"reliable": "no stimulus shown twice in the file"}
    expected = ((data.ds["excitatory"].values) & ~(data.ds["p_run_mod_ns"].values < 0.05)).sum()
    assert report.steps["n_neurons"].tolist()[-1] == selected.n_neurons == expected
    assert report.reliability.isna().all()
