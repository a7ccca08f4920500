"""Bad input and faults that used to give believable wrong results (each test names its problem)."""
import numpy as np
import pytest

from mbutils.results import load_run, run_banner
from mbutils.testing import make_fake_dataset, make_fake_results


def test_results_of_another_dataset_do_not_reach_the_book(tmp_path):
    """Problem 2: the run loader read every model folder, whatever dataset it came from."""
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    make_fake_dataset(a, n_neurons_per_area=3, seed=0)
    make_fake_dataset(b, n_neurons_per_area=3, seed=1)
    make_fake_results(tmp_path / "res", models=["alexnet", "resnet18"], n_neurons_per_area=3, dataset=a)
    make_fake_results(tmp_path / "res", models=["vgg16"], n_neurons_per_area=3, dataset=b)
    run_a = load_run(tmp_path / "res", dataset=a)
    assert set(run_a.scores["model"]) == {"alexnet", "resnet18"}
    assert list(run_a.left_out["folder"]) == sorted(f.name for f in (tmp_path / "res" / "models").glob("vgg16__*"))
    assert run_a.left_out["reason"].str.startswith("scored on another dataset").all()
    run_b = load_run(tmp_path / "res", dataset=b)
    assert set(run_b.scores["model"]) == {"vgg16"}
    from mbutils._io import file_sha256
    from mbutils.results import dataset_label

    banner = run_banner(run_a, dataset_label(a))
    assert file_sha256(a)[:12] in banner and "Left out:" in banner and "another dataset" in banner


def test_dataset_attributes_reach_the_page_as_text(tmp_path):
    """Problem 8: the dataset's source attribute went unescaped into every results page."""
    make_fake_dataset(tmp_path / "a.nc", n_neurons_per_area=3)
    make_fake_results(tmp_path / "res", models=["alexnet"], n_neurons_per_area=3, dataset=tmp_path / "a.nc")
    run = load_run(tmp_path / "res", dataset=tmp_path / "a.nc")
    label = {"path": "x<b>.nc", "source": "<script>alert(1)</script>", "sha256": None}
    banner = run_banner(run, label)
    assert "<script>" not in banner and "&lt;script&gt;" in banner and "x&lt;b&gt;.nc" in banner


def test_alpha_must_be_finite_and_positive(tmp_path):
    """Problem 4: --alpha nan gave all-NaN tables and --alpha inf -1.000 in every area, exit 0."""
    from mbutils.scoring import score_model

    for alpha in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(ValueError, match="finite positive penalty"):
            score_model("gabor", tmp_path / "missing.nc", tmp_path / "out", alpha=alpha)


def test_duplicate_stimulus_ids_are_an_error(tmp_path):
    """Problem 4: a duplicate stimulus id silently dropped a scene."""
    from mbutils.data import NeuralDataset, load_dataset

    make_fake_dataset(tmp_path / "a.nc", n_neurons_per_area=3)
    ds = load_dataset(tmp_path / "a.nc").ds.load()
    ids = ds["stimulus"].values.copy()
    ids[2] = ids[1]
    with pytest.raises(ValueError, match=rf"duplicate stimulus ids \[{ids[1]}\]"):
        NeuralDataset(ds.assign_coords(stimulus=ids))  # the check every loaded file goes through
    assert np.unique(load_dataset(tmp_path / "a.nc").ds["stimulus"].values).size == ds.sizes["stimulus"]
