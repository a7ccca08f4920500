"""The results notebooks: structure (fast) and execution with papermill on a fake sweep (slow)."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mbutils.build import NOTEBOOKS as NOTEBOOK_DIR

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("results_*.py"))


def test_notebooks_exist():
    assert len(NOTEBOOKS) == 11


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
    papermill = pytest.importorskip("papermill")
    jupytext = pytest.importorskip("jupytext")
    from mbutils.testing import make_fake_dataset, make_fake_results

    root = tmp_path_factory.getbasetemp() / "nb_fake"
    if not (root / "ds.nc").exists():
        make_fake_results(root, n_neurons_per_area=3)
        make_fake_dataset(root / "ds.nc", n_neurons_per_area=3)
    nb = jupytext.read(path)
    src = tmp_path_factory.mktemp("nb") / f"{path.stem}.ipynb"
    jupytext.write(nb, src)
    out = src.with_suffix(".out.ipynb")
    papermill.execute_notebook(str(src), str(out), parameters=dict(dataset=str(root / "ds.nc"), results=str(root),
                                                                  smoke=True), progress_bar=False)
    cells = json.loads(out.read_text())["cells"]
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    if path.stem == "results_10_claims":
        assert (root / "claims.csv").exists()
