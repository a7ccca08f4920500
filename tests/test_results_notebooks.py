"""The results notebooks: structure (fast) and execution with papermill on a fake sweep (slow)."""
import ast
import json

import pytest

from mbutils.build import NOTEBOOKS as NOTEBOOK_DIR

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("results_*.py"))


def test_notebooks_exist():
    assert [p.stem.split("_")[1] for p in NOTEBOOKS] == [f"{k:02d}" for k in range(1, 13)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(path):
    text = path.read_text()
    assert '# %% tags=["parameters"' in text
    for name in ("dataset", "results", "smoke"):
        assert f"\n{name} = " in text
    tree = ast.parse(text)
    assert not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
                   for n in ast.walk(tree))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_with_papermill(path, tmp_path_factory):
    pytest.importorskip("papermill")
    from mbutils.build import run_notebook
    from mbutils.testing import make_fake_dataset, make_fake_results

    root = tmp_path_factory.getbasetemp() / "nb_fake"
    if not (root / "ds.nc").exists():
        make_fake_dataset(root / "ds.nc", n_neurons_per_area=3)
        make_fake_results(root, n_neurons_per_area=3, dataset=root / "ds.nc")
    out = tmp_path_factory.mktemp("nb") / f"{path.stem}.ipynb"
    run = run_notebook(path, out, dict(dataset=str(root / "ds.nc"), results=str(root), smoke=True))
    assert run.status == "done", run.error
    cells = json.loads(out.read_text())["cells"]
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    if path.stem == "results_10_claims":
        assert (root / "claims.csv").exists()


SKIPPING = '''# %% [markdown]
# # A page

# %% tags=["parameters"]
dataset = "d.nc"
have = 0

# %% tags=["remove-input"]
from mbutils import pages

print("header")

# %%
pages.require(have > 0, f"this page needs models; this run has {have}.")

# %%
print("never runs")
'''


def test_a_page_that_cannot_run_says_why_and_stops(tmp_path):
    """pages.require: the page renders up to the reason, without a traceback, and counts as done."""
    pytest.importorskip("papermill")
    from mbutils.build import run_notebook

    src = tmp_path / "page.py"
    src.write_text(SKIPPING)
    out = tmp_path / "page.ipynb"
    run = run_notebook(src, out, {"have": 0})
    assert run.status == "done" and run.error == "skipped: this page needs models; this run has 0."
    cells = json.loads(out.read_text())["cells"]
    outputs = [o for c in cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = json.dumps(outputs)
    assert "**Skipped:** this page needs models; this run has 0." in text and "never runs" not in text
    assert "Traceback" not in out.read_text() and not any("papermill-error-cell-tag" in c["metadata"].get("tags", [])
                                                          for c in cells)
    run = run_notebook(src, out, {"have": 2})  # the same page with what it needs runs to the end
    assert run.status == "done" and run.error == "" and "never runs" in out.read_text()
