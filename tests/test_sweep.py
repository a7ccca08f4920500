"""Sweep machinery: config validation, resumability, failure handling, table of contents."""
import json

import pytest
import yaml

from mbutils.build import (
    ModelEntry,
    SweepConfig,
    load_config,
    notebook_parameters,
    run_sweep,
    validate_config,
)
from mbutils.build._sweep import DONE_MARKER, SCORED_MARKER

VALID = {"alexnet", "resnet18", "gabor", "efficientnet_lite0"}

# A tiny stand-in for the model card: it reads the model's stored tables (it computes nothing)
# and fails for the model "badcard".
FAKE_CARD = '''# %% tags=["parameters"]
model = "x"
weights = "random"
dataset = "d.nc"
scores = "s"

# %%
import pathlib
if model == "badcard":
    raise RuntimeError("planted card failure")
print("card of", model, (pathlib.Path(scores) / "scores.parquet").read_text())
'''


def fake_scorer(model, dataset, out_dir, weights="random", progress=None, **kwargs):
    """Stand-in for score_model (module level: worker processes import it by name): writes the
    score files, counts its calls in <results>/runs.txt, fails for the model "bad"."""
    import pathlib

    out = pathlib.Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent.parent / "runs.txt", "a") as fh:
        fh.write(f"{model}\n")
    if model == "bad":
        raise RuntimeError("planted scoring failure")
    out.mkdir(exist_ok=True)
    for name in ["scores.parquet", "summary.parquet", "provenance.json"]:
        (out / name).write_text(f"{model} {weights}")


@pytest.fixture()
def sweep_dir(tmp_path):
    nb = tmp_path / "card.py"
    nb.write_text(FAKE_CARD)
    data = tmp_path / "data.nc"
    data.write_bytes(b"dataset v1")
    (tmp_path / "results").mkdir()
    return tmp_path, nb, data


def _runs(results):
    return (results / "runs.txt").read_text().split()


def test_sweep_scores_then_renders_cards_resumes_and_reports_failures(sweep_dir):
    tmp, nb, data = sweep_dir
    results, book = tmp / "results", tmp / "book"
    out = book / "generated" / "models"
    cfg = SweepConfig(name="t", models=[ModelEntry("alexnet", "random"), ModelEntry("bad", "random"),
                                        ModelEntry("badcard", "random"), ModelEntry("gabor", "random")])
    # jobs=2: scored in two worker processes
    s1 = run_sweep(cfg, data, results, book=book, notebook=nb, jobs=2, progress=False, scorer=fake_scorer)
    status = {r.name: r.status for r in s1.runs}
    assert status == {"alexnet__random": "done", "bad__random": "failed", "badcard__random": "failed",
                      "gabor__random": "done"}
    assert [r.name for r in s1.runs] == ["alexnet__random", "bad__random", "badcard__random", "gabor__random"]
    errors = {r.name: r.error for r in s1.failed}
    assert "planted scoring failure" in errors["bad__random"] and errors["bad__random"].startswith("scoring")
    assert "planted card failure" in errors["badcard__random"]
    assert (out / "badcard__random.failed.ipynb").exists() and not (out / "badcard__random.ipynb").exists()
    assert not (out / "bad__random.ipynb").exists()  # no card without scores
    executed = json.loads((out / "alexnet__random.ipynb").read_text())
    assert any("card of alexnet alexnet random" in "".join(o.get("text", ""))
               for c in executed["cells"] for o in c.get("outputs", []))
    assert (results / "models" / "alexnet__random" / DONE_MARKER).exists()
    assert (results / "models" / "alexnet__random" / SCORED_MARKER).exists()
    assert not (results / "models" / "bad__random" / DONE_MARKER).exists()
    assert sorted(_runs(results)) == ["alexnet", "bad", "badcard", "gabor"]

    # second run: finished models are skipped; the failed scoring is retried; the model whose
    # card failed keeps its scores (not rescored) and only its card is rendered again
    s2 = run_sweep(cfg, data, results, book=book, notebook=nb, jobs=1, progress=False, scorer=fake_scorer)
    assert {r.name: r.status for r in s2.runs} == {"alexnet__random": "skipped", "bad__random": "failed",
                                                   "badcard__random": "failed", "gabor__random": "skipped"}
    assert sorted(_runs(results)) == ["alexnet", "bad", "bad", "badcard", "gabor"]

    # a card without its marker (interrupted after papermill), or deleted, is rendered again
    # from the stored scores, which are not recomputed
    (results / "models" / "gabor__random" / DONE_MARKER).unlink()
    (out / "alexnet__random.ipynb").unlink()
    s3 = run_sweep(cfg, data, results, book=book, notebook=nb, models=[ModelEntry("alexnet", "random"),
                                                                       ModelEntry("gabor", "random")],
                   jobs=1, progress=False, scorer=fake_scorer)
    assert [r.status for r in s3.runs] == ["done", "done"]
    assert sorted(_runs(results)) == ["alexnet", "bad", "bad", "badcard", "gabor"]

    # a changed dataset invalidates the scores
    data.write_bytes(b"dataset v2")
    s4 = run_sweep(cfg, data, results, book=book, notebook=nb, models=[ModelEntry("alexnet", "random")],
                   jobs=1, progress=False, scorer=fake_scorer)
    assert [r.status for r in s4.runs] == ["done"]
    assert _runs(results).count("alexnet") == 2



def test_a_sweep_with_other_score_settings_rescores_finished_models(sweep_dir):
    """A finished model is finished only for the settings it was scored with: a config whose
    ``score:`` section changes (alpha, a model's parameters) rescores it and renders its card
    again; ``cache`` is no setting and changes nothing."""
    tmp, nb, data = sweep_dir
    results, book = tmp / "results", tmp / "book"
    models = [ModelEntry("alexnet", "random"), ModelEntry("gabor", "random")]
    first = run_sweep(SweepConfig(name="t", models=models), data, results, book=book, notebook=nb, jobs=1,
                      progress=False, scorer=fake_scorer)
    assert [r.status for r in first.runs] == ["done", "done"]

    cached = SweepConfig(name="t", models=models, score={"cache": False})
    again = run_sweep(cached, data, results, book=book, notebook=nb, jobs=1, progress=False, scorer=fake_scorer)
    assert [r.status for r in again.runs] == ["skipped", "skipped"]
    assert sorted(_runs(results)) == ["alexnet", "gabor"]

    alpha = SweepConfig(name="t", models=models, score={"alpha": 10.0})
    rescored = run_sweep(alpha, data, results, book=book, notebook=nb, jobs=1, progress=False, scorer=fake_scorer)
    assert [r.status for r in rescored.runs] == ["done", "done"]
    assert sorted(_runs(results)) == ["alexnet", "alexnet", "gabor", "gabor"]
    marker = json.loads((results / "models" / "gabor__random" / SCORED_MARKER).read_text())
    assert marker["score_kwargs"] == {"alpha": 10.0}

    params = SweepConfig(name="t", models=models, score={"alpha": 10.0, "model_params": {"gabor": {"n": 3}}})
    rebuilt = run_sweep(params, data, results, book=book, notebook=nb, jobs=1, progress=False, scorer=fake_scorer,
                        models=[ModelEntry("alexnet", "random")])
    assert [r.status for r in rebuilt.runs] == ["skipped"]  # alexnet's parameters did not change

def test_sweep_resolves_relative_paths_against_the_working_directory(sweep_dir, monkeypatch):
    """Issue 19, problem 1: a sweep started outside the repository with relative paths scored the
    repository's dataset and wrote into the repository's results; here everything stays in the
    caller's folder and the scores record the caller's file."""
    tmp, nb, data = sweep_dir
    work = tmp / "elsewhere"
    work.mkdir()
    (work / "mine.nc").write_bytes(b"the user's dataset")
    monkeypatch.chdir(work)
    cfg = SweepConfig(name="t", models=[ModelEntry("gabor", "random")])
    s = run_sweep(cfg, "mine.nc", "relres", book="relbook", notebook=nb, jobs=1, progress=False,
                  scorer=fake_scorer)
    assert [r.status for r in s.runs] == ["done"]
    assert (work / "relres" / "models" / "gabor__random" / "scores.parquet").exists()
    assert (work / "relbook" / "generated" / "models" / "gabor__random.ipynb").exists()
    stamp = json.loads((work / "relres" / "models" / "gabor__random" / SCORED_MARKER).read_text())
    import hashlib
    assert stamp["dataset_sha256"] == hashlib.sha256(b"the user's dataset").hexdigest()


def test_sweep_missing_dataset(sweep_dir, tmp_path):
    _, nb, _ = sweep_dir
    cfg = SweepConfig(name="t", models=[ModelEntry("alexnet", "random")])
    with pytest.raises(FileNotFoundError, match="nope.nc"):
        run_sweep(cfg, tmp_path / "nope.nc", tmp_path / "r", notebook=nb, progress=False)


def test_notebook_parameters(sweep_dir):
    _, nb, _ = sweep_dir
    assert notebook_parameters(nb) == {"model": '"x"', "weights": '"random"', "dataset": '"d.nc"', "scores": '"s"'}
    bad = nb.with_name("noparams.py")
    bad.write_text("# %%\nx = 1\n")
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        notebook_parameters(bad)


# ----------------------------------------------------------------------------- configs
def test_config_roundtrip(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump({"name": "c", "neurons": 50, "models": [
        "gabor", {"model": "alexnet", "weights": ["trained", "random"]}, {"model": "alexnet", "weights": "random"}],
        "parameters": {"n_bootstrap": 10}}))
    cfg = load_config(path, valid_models=VALID)
    assert cfg.name == "c" and cfg.neurons == 50 and cfg.parameters == {"n_bootstrap": 10}
    # gabor has no trained variant: an entry without weights takes its first (random)
    assert [e.key for e in cfg.models] == ["gabor__random", "alexnet__trained", "alexnet__random"]


@pytest.mark.parametrize("raw, match", [
    ({"name": "c", "models": [], "modles": []}, r"unknown config key 'modles'.*Did you mean \['models'"),
    ({"name": "c", "models": ["alexnett"]}, r"unknown model 'alexnett'.*Did you mean \['alexnet'\].*Valid models: \["),
    ({"name": "c", "models": [{"model": "alexnet", "weights": "imagenet"}]}, r"weights='imagenet'.*'trained', 'random'"),
    ({"name": "c", "models": [{"model": "alexnet", "weight": "random"}]}, r"unknown model entry key 'weight'"),
    ({"name": "c", "models": [{"weights": "random"}]}, r"has no 'model' key"),
    ({"models": []}, r"missing required key 'name'"),
    ({"name": "c", "models": [], "jobs": 0}, r"jobs=0"),
    ({"name": "c", "models": "alexnet"}, r"models='alexnet' has the wrong type"),
    ([1, 2], r"expected a mapping"),
])
def test_config_errors(raw, match):
    with pytest.raises(ValueError, match=match):
        validate_config(raw, valid_models=VALID)


def test_missing_config_lists_configs(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.yml.*'smoke'"):
        load_config(tmp_path / "nope.yml", valid_models=VALID)


def test_packaged_configs_parse_by_name_and_path():
    from mbutils.build import CONFIGS

    for name in ("smoke", "default", "paper"):
        raw = yaml.safe_load((CONFIGS / f"{name}.yml").read_text())
        names = {m["model"] if isinstance(m, dict) else m for m in raw["models"]}
        cfg = validate_config(raw, valid_models=names)
        assert cfg.name == name
    smoke = load_config("smoke", valid_models=VALID | {"squeezenet1_1"})
    assert len(smoke.models) <= 5 and smoke.neurons <= 1000
    assert smoke.path == (CONFIGS / "smoke.yml").resolve()
    assert load_config(CONFIGS / "smoke.yml", valid_models=VALID | {"squeezenet1_1"}).models == smoke.models


def test_packaged_configs_use_registered_models():
    for name in ("smoke", "default"):
        load_config(name)  # validates names against the registry


def test_config_names_user_models_by_spec():
    cfg = validate_config({"name": "u", "models": ["mypkg.nets:make_net", {"model": "timm:resnet10t",
                                                                          "weights": "random"}]}, valid_models=VALID)
    assert [e.key for e in cfg.models] == ["mypkg.nets-make_net__random", "timm-resnet10t__random"]
    with pytest.raises(ValueError, match="package.module:callable"):
        validate_config({"name": "u", "models": ["mypkg.nets:"]}, valid_models=VALID)


# ----------------------------------------------------------------------------- toc
def test_write_toc(tmp_path):
    from mbutils.build import write_toc

    toc = write_toc(tmp_path / "_toc.yml", ["results_b", "intro", "neural_data", "results_a", "model_zoo"],
                    ["alexnet__random", "gabor__random"], generated="gen")
    written = yaml.safe_load((tmp_path / "_toc.yml").read_text())
    assert written == toc
    g = "gen"
    assert toc["root"] == f"{g}/intro"
    parts = {p["caption"]: p["chapters"] for p in toc["parts"]}
    assert [c["file"] for c in parts["The data and the models"]] == [f"{g}/neural_data", f"{g}/model_zoo"]
    assert [c["file"] for c in parts["Results"]] == [f"{g}/results_a", f"{g}/results_b"]
    cards = parts["Model cards"][0]
    assert [s["file"] for s in cards["sections"]] == [f"{g}/models/alexnet__random", f"{g}/models/gabor__random"]
    assert parts["Using this book"] == [{"file": "running"}]
    assert (tmp_path / "gen" / "model_cards.md").read_text().startswith("# Model cards")


def test_kernel_env_enables_huge_pages_unless_the_user_set_it(monkeypatch):
    from mbutils.build._notebooks import _kernel_env

    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    env = _kernel_env(2)
    assert env["THP_MEM_ALLOC_ENABLE"] == "1" and env["OMP_NUM_THREADS"] == "2"
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")
    assert _kernel_env(2)["THP_MEM_ALLOC_ENABLE"] == "0"


def test_cli_sets_torch_env_before_subcommands(monkeypatch):
    import os

    from mbutils.cli import main

    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "x")  # so that the test's end restores the original state
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE")
    assert main([]) == 2  # no subcommand: help
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "1"


@pytest.mark.parametrize("name", ["neuropixels", "sensorium", "stringer"])
def test_dataset_configs_score_a_dataset_of_their_kind(name, tmp_path):
    """The per-dataset configs name registered models, and their score settings run on a dataset
    with only responses and stimuli (the minimal format of the Sensorium and Stringer readers):
    the two configs of thousands of images score SRP-Ridge alone."""
    import numpy as np

    from mbutils.data import NeuralDataset
    from mbutils.scoring import score_model

    cfg = load_config(name)  # validates every name against the registry
    assert cfg.name == name and {e.model for e in cfg.models} >= {"alexnet", "resnet18", "gabor"}
    rng = np.random.default_rng(1)
    latent = rng.normal(size=(40, 3))
    responses = (latent @ rng.normal(size=(3, 30))).T[:, :, None] + 0.3 * rng.normal(size=(30, 40, 4))
    data = NeuralDataset.from_arrays(responses.astype(np.float32),
                                     rng.integers(0, 256, (40, 32, 32), dtype=np.uint8))
    tables = score_model("gabor", data, tmp_path / "out", weights="random", progress=False, cache=False,
                         n_boot=5, **cfg.score)
    metrics = set(tables["scores"]["metric"])
    assert "srp_ridge" in metrics
    assert ("rsa" in metrics) == (name == "neuropixels")
