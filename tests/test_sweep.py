"""Sweep machinery: config validation, resumability, failure handling, table of contents."""
import json
import time

import pytest
import yaml

from mbutils.sweep import (
    DONE_MARKER,
    SCORED_MARKER,
    ModelEntry,
    SweepConfig,
    load_config,
    notebook_parameters,
    run_sweep,
    validate_config,
)

VALID = {"alexnet", "resnet18", "gabor", "efficientnet_lite0"}

# A tiny stand-in for notebooks/model_card.py: "scores" a model by writing the score files
# (the number of runs per model is counted in runs.txt), and fails for the model "bad".
FAKE_CARD = '''# %% tags=["parameters"]
model = "x"
weights = "random"
dataset = "d.nc"
results = "r"

# %%
import json, pathlib
out = pathlib.Path(results) / "models" / f"{model}__{weights}"
out.mkdir(parents=True, exist_ok=True)
with open(pathlib.Path(results) / "runs.txt", "a") as fh:
    fh.write(f"{model}\\n")
if model == "bad":
    raise RuntimeError("planted failure")
for name in ["scores.parquet", "summary.parquet", "provenance.json"]:
    (out / name).write_text("x")
(out / "_scored.json").write_text("{}")
print("scored", model)
'''


@pytest.fixture()
def sweep_dir(tmp_path):
    nb = tmp_path / "card.py"
    nb.write_text(FAKE_CARD)
    data = tmp_path / "data.nc"
    data.write_bytes(b"dataset v1")
    return tmp_path, nb, data


def _runs(results):
    return (results / "runs.txt").read_text().split()


def test_sweep_resumes_and_reports_failures(sweep_dir):
    tmp, nb, data = sweep_dir
    results, out = tmp / "results", tmp / "out"
    cfg = SweepConfig(name="t", models=[ModelEntry("alexnet", "random"), ModelEntry("bad", "random"),
                                        ModelEntry("gabor", "random")])
    s1 = run_sweep(cfg, data, results, output_dir=out, notebook=nb, jobs=2, progress=False)
    status = {r.name: r.status for r in s1.runs}
    assert status == {"alexnet__random": "done", "bad__random": "failed", "gabor__random": "done"}
    assert [r.name for r in s1.runs] == ["alexnet__random", "bad__random", "gabor__random"]  # config order
    assert "planted failure" in s1.failed[0].error
    assert (out / "bad__random.failed.ipynb").exists() and not (out / "bad__random.ipynb").exists()
    executed = json.loads((out / "alexnet__random.ipynb").read_text())
    assert any("scored alexnet" in "".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert (results / "models" / "alexnet__random" / DONE_MARKER).exists()
    assert not (results / "models" / "bad__random" / DONE_MARKER).exists()
    assert sorted(_runs(results)) == ["alexnet", "bad", "gabor"]

    # second run: finished models are skipped, the failed one is retried (and fails again)
    s2 = run_sweep(cfg, data, results, output_dir=out, notebook=nb, jobs=2, progress=False)
    assert {r.name: r.status for r in s2.runs} == {"alexnet__random": "skipped", "bad__random": "failed",
                                                   "gabor__random": "skipped"}
    assert sorted(_runs(results)) == ["alexnet", "bad", "bad", "gabor"]

    # an executed notebook without its marker (interrupted after papermill) is redone
    (results / "models" / "gabor__random" / DONE_MARKER).unlink()
    # a deleted executed notebook is redone too
    (out / "alexnet__random.ipynb").unlink()
    s3 = run_sweep(cfg, data, results, output_dir=out, notebook=nb, models=[ModelEntry("alexnet", "random"),
                                                                            ModelEntry("gabor", "random")],
                   jobs=1, progress=False)
    assert [r.status for r in s3.runs] == ["done", "done"]

    # a changed dataset invalidates every model
    data.write_bytes(b"dataset v2")
    s4 = run_sweep(cfg, data, results, output_dir=out, notebook=nb, models=[ModelEntry("alexnet", "random")],
                   jobs=1, progress=False)
    assert [r.status for r in s4.runs] == ["done"]


def test_sweep_missing_dataset(sweep_dir, tmp_path):
    _, nb, _ = sweep_dir
    cfg = SweepConfig(name="t", models=[ModelEntry("alexnet", "random")])
    with pytest.raises(FileNotFoundError, match="nope.nc"):
        run_sweep(cfg, tmp_path / "nope.nc", tmp_path / "r", notebook=nb, progress=False)


def test_notebook_parameters(sweep_dir):
    _, nb, _ = sweep_dir
    assert notebook_parameters(nb) == {"model": '"x"', "weights": '"random"', "dataset": '"d.nc"', "results": '"r"'}
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
    assert [e.key for e in cfg.models] == ["gabor__trained", "alexnet__trained", "alexnet__random"]


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
    with pytest.raises(FileNotFoundError, match=r"nope.yml.*smoke.yml"):
        load_config(tmp_path / "nope.yml", valid_models=VALID)


def test_repository_configs_parse():
    from mbutils.sweep import REPO_ROOT

    for name in ("smoke", "default", "paper"):
        raw = yaml.safe_load((REPO_ROOT / "configs" / f"{name}.yml").read_text())
        names = {m["model"] if isinstance(m, dict) else m for m in raw["models"]}
        cfg = validate_config(raw, valid_models=names)
        assert cfg.name == name
    smoke = load_config(REPO_ROOT / "configs" / "smoke.yml", valid_models=VALID | {"squeezenet1_1"})
    assert len(smoke.models) <= 5 and smoke.neurons <= 1000


def test_repository_configs_use_registered_models():
    from mbutils.sweep import REPO_ROOT

    for name in ("smoke", "default"):
        load_config(REPO_ROOT / "configs" / f"{name}.yml")  # validates names against the registry


# ----------------------------------------------------------------------------- toc
def test_write_toc(tmp_path):
    from mbutils.book import write_toc

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
    assert parts["Using this book"] == [{"file": "book/running"}]
    assert (tmp_path / "gen" / "model_cards.md").read_text().startswith("# Model cards")


def test_kernel_env_enables_huge_pages_unless_the_user_set_it(monkeypatch):
    from mbutils.sweep import _kernel_env

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
