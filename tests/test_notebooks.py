"""The notebooks: jupytext percent files with a `parameters` cell, no definitions, a smoke set."""
import ast

import jupytext
import pytest
import yaml

from mbutils.build import CONFIGS
from mbutils.build import NOTEBOOKS as NOTEBOOK_DIR
from mbutils.build import notebook_parameters, section_notebooks

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.py"))
SMOKE = yaml.safe_load((CONFIGS / "smoke.yml").read_text())["parameters"]


def test_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"intro", "neural_data", "model_zoo", "method_validation", "model_card"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(path):
    nb = jupytext.read(path)
    assert nb.cells and nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), \
        f"{path.name}: the first cell must be a markdown cell with the page title"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected exactly one cell tagged 'parameters', found {len(tagged)}"
    params = notebook_parameters(path)
    assert "dataset" in params, f"{path.name}: every notebook takes the dataset file as a parameter"
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        # IPython magics and shell escapes are not Python: blank them before parsing
        source = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in cell.source.splitlines())
        tree = ast.parse(source)
        defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                                            ast.Lambda))]
        assert not defs, f"{path.name}: definitions belong in mbutils, found {[type(d).__name__ for d in defs]}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("eval", "exec"):
                raise AssertionError(f"{path.name}: no eval/exec in notebooks")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_smoke_set(path):
    """Every size parameter (n_*) has a smoke value in configs/smoke.yml, or the notebook has a smoke switch."""
    params = notebook_parameters(path)
    sizes = [k for k in params if k.startswith("n_")]
    if "smoke" in params:
        assert SMOKE.get("smoke") is True
    else:
        missing = [k for k in sizes if k not in SMOKE]
        assert not missing, f"{path.name}: size parameters {missing} have no smoke value in configs/smoke.yml"


def test_smoke_parameters_are_used():
    declared = set()
    for path in NOTEBOOKS:
        declared |= set(notebook_parameters(path))
    assert set(SMOKE) <= declared, f"unused smoke parameters: {set(SMOKE) - declared}"


def test_section_order():
    names = [p.stem for p in section_notebooks()]
    assert names[:5] == ["intro", "neural_data", "model_zoo", "method_validation", "ceilings"]
    results = [n for n in names if n.startswith("results_")]
    assert results == sorted(results) and names[5:] == results
    assert "model_card" not in names
