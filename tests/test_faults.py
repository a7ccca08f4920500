"""Bad input and faults that used to give believable wrong results (each test names its problem)."""
from pathlib import Path

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


def _hold_lock(folder, ready):
    import time

    from mbutils._io import folder_lock

    with folder_lock(folder, "test holder"):
        ready.set()
        time.sleep(60)  # killed by the test before it wakes


def test_a_folder_has_one_writer_and_a_dead_holder_frees_it(tmp_path):
    """Problem 3 (the lock): a second writer is refused with the holder named; a killed holder
    leaves no lock behind."""
    import multiprocessing as mp

    from mbutils._io import FolderLockedError, folder_lock

    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_hold_lock, args=(tmp_path, ready))
    child.start()
    try:
        assert ready.wait(60)
        with pytest.raises(FolderLockedError, match=rf"another process .*\"pid\": {child.pid}.*test holder"):
            with folder_lock(tmp_path):
                pass
        child.kill()  # dies holding the lock
        child.join(30)
        with folder_lock(tmp_path, "after the kill"):
            pass
    finally:
        if child.is_alive():
            child.kill()
            child.join(30)


def slow_scorer(model, dataset, out_dir, weights="random", progress=None, **kwargs):
    """Writes the dataset's hash as the model's 'scores', slowly (module level: importable)."""
    import pathlib
    import time

    from mbutils._io import file_sha256

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    time.sleep(0.5)
    for name in ("scores.parquet", "summary.parquet", "provenance.json"):
        (out / name).write_text(file_sha256(dataset))


CARD = '''# %% tags=["parameters"]
model = "x"
weights = "random"
dataset = "d.nc"
scores = "s"

# %%
print(open(scores + "/scores.parquet").read())
'''


def test_concurrent_sweeps_on_two_datasets_never_mix(tmp_path):
    """Problem 3: two sweeps on different datasets into one results folder ended with one
    dataset's marker over the other's tables."""
    import json
    import threading

    from mbutils._io import file_sha256
    from mbutils.build import ModelEntry, SweepConfig, run_sweep

    card = tmp_path / "card.py"
    card.write_text(CARD)
    data = {k: tmp_path / f"{k}.nc" for k in "ab"}
    for k, p in data.items():
        p.write_bytes(f"dataset {k}".encode())
    cfg = SweepConfig(name="t", models=[ModelEntry(m, "random") for m in ("alexnet", "gabor", "resnet18")])
    summaries = {}

    def sweep(k):
        summaries[k] = run_sweep(cfg, data[k], tmp_path / "res", book=tmp_path / f"book_{k}", notebook=card,
                                 jobs=1, progress=False, scorer=slow_scorer)

    threads = [threading.Thread(target=sweep, args=(k,)) for k in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for folder in (tmp_path / "res" / "models").iterdir():
        marker = json.loads((folder / "_scored.json").read_text())
        assert marker["dataset_sha256"] == (folder / "scores.parquet").read_text()  # tables and marker agree
    for k, summary in summaries.items():
        for r in summary.runs:
            if r.status == "done":  # a done model's card shows its own dataset's tables
                assert file_sha256(data[k]) in r.output.read_text()
            else:
                assert "another process" in r.error or "rescored on another dataset" in r.error, r.error


def test_outputs_are_checked_before_the_work(tmp_path):
    """Problem 6: --out pointing at a file or the dataset, or empty, was found only at the end."""
    from mbutils.scoring import score_model

    dataset = tmp_path / "d.nc"
    make_fake_dataset(dataset, n_neurons_per_area=3)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = {str(a_file): "is a file", str(dataset): "is the dataset file", "": "output folder is empty",
             " ": "output folder is empty"}
    for out, message in cases.items():
        with pytest.raises(ValueError, match=message):
            # an unknown model: had the output been checked after loading it, the error would be about the model
            score_model("no_such_model", dataset, out)


def test_unwritable_or_full_outputs_are_found_before_the_work(tmp_path, monkeypatch):
    """Problem 6: a read-only place or a full disk was found only at the end, as a traceback.

    Root writes through any permission bit, so the refusal of the file system is simulated where
    the check asks it (creating a probe file; the free space)."""
    import collections
    import shutil
    import tempfile

    from mbutils.scoring.pipeline import check_out_dir

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as m:
        m.setattr(tempfile, "NamedTemporaryFile", refuse)
        with pytest.raises(ValueError, match=r"cannot write to the output folder .*Permission denied"):
            check_out_dir(tmp_path / "ro")
    usage = collections.namedtuple("usage", "total used free")
    with monkeypatch.context() as m:
        m.setattr(shutil, "disk_usage", lambda p: usage(10 * 2**20, 10 * 2**20 - 1024, 1024))
        with pytest.raises(ValueError, match=r"only 0 MiB free"):
            check_out_dir(tmp_path / "full")
    assert check_out_dir(tmp_path / "fine") == (tmp_path / "fine").resolve()


def test_a_rewritten_folder_is_incomplete_not_a_mix(tmp_path, monkeypatch):
    """Problem 5: a failed write left one model's scores beside another's summary and provenance."""
    import pandas as pd

    from mbutils.results import load_model_results
    from mbutils.scoring.pipeline import _write_tables

    def tables(tag):
        return {name: pd.DataFrame({"model": [tag], "value": [1.0]}) for name in
                ("scores", "scores_groups", "neuron_scores", "summary")}

    _write_tables(tmp_path, tables("alexnet"), {"model": "alexnet"})
    assert load_model_results(tmp_path)["summary"]["model"].item() == "alexnet"
    calls = []
    real = pd.DataFrame.to_parquet

    def full_disk(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(self, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_disk)
    with pytest.raises(OSError, match="No space"):
        _write_tables(tmp_path, tables("gabor"), {"model": "gabor"})
    monkeypatch.setattr(pd.DataFrame, "to_parquet", real)
    assert pd.read_parquet(tmp_path / "scores.parquet")["model"].item() == "gabor"  # half rewritten
    with pytest.raises(FileNotFoundError, match="incomplete"):
        load_model_results(tmp_path)


def test_an_unwritable_cache_is_a_warning_and_the_features_are_delivered(tmp_path):
    """Problem 5: a read-only or full cache folder aborted after all the computation."""
    from mbutils.models import KeepReducer, extract, load_model

    not_a_folder = tmp_path / "cache_is_a_file"
    not_a_folder.write_text("x")
    stimuli = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    with pytest.warns(RuntimeWarning, match="could not write the feature cache"):
        fs = extract(load_model("gabor", weights="random"), stimuli, {"keep": KeepReducer()}, cache=not_a_folder,
                     progress=False)
    assert len(fs.layers) > 0 and fs["keep"][0].shape[0] == 3


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", "", "x y"])
def test_a_config_name_cannot_leave_the_results_folder(name):
    """Problem 8: a config name of '../../x' wrote outside results/."""
    from mbutils.build import validate_config

    with pytest.raises(ValueError, match="a config name is a folder name"):
        validate_config({"name": name, "models": []}, valid_models=set())


def test_cache_clear_removes_only_what_it_wrote(tmp_path):
    """Problem 7: `mbutils cache --clear` deleted a user's results.json in the cache folder, and
    files outside the cache through a symlinked folder."""
    from mbutils.caches import clear_cache

    cache = tmp_path / "cache"
    ours = cache / "features" / "resnet18"
    ours.mkdir(parents=True)
    key = "0123456789abcdef0123456789abcdef"
    (ours / f"{key}.npz").write_bytes(b"x")
    (ours / f"{key}.json").write_text("{}")
    users = ours / "results.json"
    users.write_text('{"mine": 1}')
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / f"{key}.json").write_text("{}")
    (outside / f"{key}.npz").write_bytes(b"y")
    (cache / "features" / "linked").symlink_to(outside, target_is_directory=True)
    removed = clear_cache(cache_dir=cache)
    assert sorted(Path(p).name for ps in removed["paths"] for p in ps) == [f"{key}.json", f"{key}.npz"]
    assert users.read_text() == '{"mine": 1}'
    assert (outside / f"{key}.json").exists() and (outside / f"{key}.npz").exists()
    assert not (ours / f"{key}.npz").exists()


def test_stimuli_too_small_for_the_model_are_an_error():
    """Problem 4: 2x2-pixel images scored about -0.99 instead of failing."""
    from mbutils.models import KeepReducer, extract, load_model

    model = load_model("alexnet", weights="random")
    tiny = np.random.default_rng(0).integers(0, 256, (3, 2, 2), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"2x2 pixels; this model takes 224x224 inputs"):
        extract(model, tiny, {"keep": KeepReducer()}, cache=False, progress=False)
    ok = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    assert len(extract(model, ok, {"keep": KeepReducer()}, cache=False, progress=False).layers) > 0


def test_infinite_responses_are_named_as_infinite(tmp_path):
    """Problem 9: infinite values were reported as "NaN"."""
    from mbutils.data import NeuralDataset, load_dataset

    make_fake_dataset(tmp_path / "a.nc", n_neurons_per_area=3)
    ds = load_dataset(tmp_path / "a.nc").ds.load()
    resp = ds["responses"].values.copy()
    resp[1, 2, 0] = np.inf
    with pytest.raises(ValueError, match=r"1 infinite values \(1 neurons"):
        NeuralDataset(ds.assign(responses=(ds["responses"].dims, resp)))


def test_a_fifo_or_folder_is_refused_as_a_dataset(tmp_path):
    """Problem 9: a FIFO given as the dataset blocked forever."""
    import os

    from mbutils.data import load_dataset

    fifo = tmp_path / "pipe.nc"
    os.mkfifo(fifo)
    for bad in (fifo, tmp_path):
        with pytest.raises(ValueError, match="not a regular file"):
            load_dataset(bad)


def test_float16_responses_are_read(tmp_path):
    """Problem 9: float16 responses crashed the reader."""
    from mbutils.data import load_dataset

    make_fake_dataset(tmp_path / "a.nc", n_neurons_per_area=3)
    ds = load_dataset(tmp_path / "a.nc").ds.load()
    ds["responses"] = ds["responses"].astype(np.float16)
    ds.to_netcdf(tmp_path / "half.nc", engine="h5netcdf")
    got = load_dataset(tmp_path / "half.nc")
    np.testing.assert_allclose(got.ds["responses"].values.astype(np.float32),
                               ds["responses"].values.astype(np.float32))


def test_malformed_yaml_is_one_clear_error(tmp_path):
    """Problem 9: a malformed sweep config gave a traceback."""
    from mbutils.build import load_config

    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\nmodels: [alexnet\n")
    with pytest.raises(ValueError, match=r"is not valid YAML"):
        load_config(bad)


def test_sigterm_removes_the_temporary_layers(tmp_path):
    """Problem 9: SIGTERM left the temporary layers of a batched forward pass on disk."""
    import os
    import signal
    import subprocess
    import sys
    import time

    dataset = make_fake_dataset(tmp_path / "d.nc", n_stimuli=119, image_size=(240, 307))
    cache = tmp_path / "cache"
    env = {**os.environ, "MBUTILS_CACHE": str(cache)}
    proc = subprocess.Popen([sys.executable, "-m", "mbutils", "score", "resnet18", "--weights", "random",
                             "--dataset", str(dataset), "--out", str(tmp_path / "out"), "--no-cache",
                             "--batch-size", "4"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not list((cache / "tmp").glob("layers-*")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert list((cache / "tmp").glob("layers-*")), "the batched pass wrote no temporary layers"
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err.decode()[-2000:]
    assert "Traceback" not in err.decode()
    assert not list((cache / "tmp").glob("layers-*"))


def test_a_failed_card_leaves_another_sweeps_card_alone(tmp_path):
    """Problem 8: one failed sweep deleted another sweep's finished notebook in a shared book folder."""
    from mbutils.build import run_notebook

    ok, bad = tmp_path / "ok.py", tmp_path / "bad.py"
    ok.write_text('# %% tags=["parameters"]\ndataset = "d"\n\n# %%\nprint("the other sweep")\n')
    bad.write_text('# %% tags=["parameters"]\ndataset = "d"\n\n# %%\nraise RuntimeError("planted")\n')
    out = tmp_path / "book" / "generated" / "models" / "alexnet__random.ipynb"
    assert run_notebook(ok, out).status == "done"
    run = run_notebook(bad, out)
    assert run.status == "failed" and "planted" in run.error
    assert "the other sweep" in out.read_text() and out.with_suffix(".failed.ipynb").exists()


def test_constant_and_nearly_constant_layers_score_nan_and_are_counted(tmp_path):
    """Problem 4: a near-constant layer scored about -1 (the leave-one-out mean) instead of NaN.

    A layer whose spread across stimuli is below float32's resolution of its values (here 1e-6
    of a magnitude of 3) carries no stimulus information: NaN in every metric, the row marked
    ``constant`` and a warning that counts it. A layer that varies (1e-1) is scored."""
    from mbutils.scoring import score_features

    n = 40
    path = make_fake_dataset(tmp_path / "d.nc", n_neurons_per_area=14, n_stimuli=n + 1)  # and a blank
    rng = np.random.default_rng(0)
    base = rng.normal(size=(1, 500)) + 3.0
    feats = {"varies": base + 1e-1 * rng.normal(size=(n, 500)),
             "nearly": (base + 1e-6 * rng.normal(size=(n, 500))).astype(np.float32),
             "flat": np.repeat(base, n, axis=0)}
    with pytest.warns(RuntimeWarning, match=r"constant across stimuli.*srp_ridge: 2 of 3 \(nearly, flat\)"):
        tables = score_features(feats, path, progress=False, n_components=256)
    s = tables["scores"].set_index(["layer", "metric", "area"])
    for layer in ("nearly", "flat"):
        rows = s.loc[layer]
        assert rows["score"].isna().all() and rows["constant"].all(), layer
    varies = s.loc["varies"]
    assert varies["score"].notna().all() and not varies["constant"].any()
    assert tables["neuron_scores"].query("layer == 'nearly'")["score"].isna().all()
