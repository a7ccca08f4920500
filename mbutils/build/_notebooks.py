"""Executing notebooks with papermill: parameters, kernel environment, atomic outputs.

The book's pages are jupytext percent notebooks packaged in ``mbutils/notebooks/``
(:data:`NOTEBOOKS`); :func:`run_notebook` executes one with the parameters its
``parameters`` cell declares and saves the executed ``.ipynb`` atomically.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import time
from importlib import resources
from pathlib import Path

__all__ = ["NOTEBOOKS", "NotebookRun", "SweepSummary", "notebook_parameters", "run_notebook", "section_notebooks"]

#: the packaged notebooks (the book's pages and the model card)
NOTEBOOKS = Path(str(resources.files("mbutils") / "notebooks"))


@dataclasses.dataclass
class NotebookRun:
    """Outcome of one notebook execution."""

    name: str
    output: Path
    status: str  # "done", "skipped", "failed", "not_started" (a sweep's stop_after had passed)
    seconds: float = 0.0
    error: str = ""


@dataclasses.dataclass
class SweepSummary:
    """Outcomes of a sweep (or a book build)."""

    runs: list = dataclasses.field(default_factory=list)

    @property
    def failed(self) -> list:
        return [r for r in self.runs if r.status == "failed"]

    @property
    def not_started(self) -> list:
        return [r for r in self.runs if r.status == "not_started"]

    @property
    def ok(self) -> list:
        return [r for r in self.runs if r.status in ("done", "skipped")]

    def __str__(self) -> str:
        lines = []
        for status in ("done", "skipped", "failed", "not_started"):
            runs = [r for r in self.runs if r.status == status]
            if runs:
                lines.append(f"{status}: {len(runs)}")
                lines += [f"  {r.name}" + (f" ({r.seconds:.1f} s)" if status == "done" else "")
                          + (f": {r.error}" if r.error and status != "not_started" else "") for r in runs]
        return "\n".join(lines) or "nothing to do"


def _text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def notebook_parameters(notebook) -> dict:
    """Names and default values (as source text) of a notebook's ``parameters`` cell.

    Parameters
    ----------
    notebook : str or pathlib.Path or nbformat.NotebookNode
        A jupytext ``.py`` / ``.ipynb`` file or a loaded notebook.

    Returns
    -------
    dict
        ``{name: default source}``.

    Raises
    ------
    ValueError
        If the notebook has no cell tagged ``parameters``.
    """
    import ast

    nb = _read_notebook(notebook)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ValueError(f"notebook {notebook!s} has no cell tagged 'parameters'; papermill needs one")
    params = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    params[t.id] = ast.get_source_segment(cells[0].source, node.value)
    return params


def _read_notebook(notebook):
    import jupytext
    import nbformat

    if isinstance(notebook, nbformat.NotebookNode):
        return notebook
    path = Path(notebook)
    if not path.exists():
        raise FileNotFoundError(f"notebook {str(path)!r} not found")
    return jupytext.read(path)


def _set_kernel_env(threads: int) -> dict:
    """Set the kernels' environment (thread caps, no progress bars); return the old values."""
    env = _kernel_env(threads)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    return old


def _restore_env(old: dict) -> None:
    """Undo :func:`_set_kernel_env`."""
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _kernel_env(threads: int) -> dict:
    env = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                     "NUMEXPR_NUM_THREADS", "MBUTILS_TORCH_THREADS")}
    env["MBUTILS_PROGRESS"] = "0"
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    from ..config import torch_env

    env.update(torch_env())
    return env


def _finish_notebook(path, title=None):
    """Show the parameters once and set the page title (first markdown heading).

    Papermill keeps the notebook's ``parameters`` cell (the defaults) and adds an
    ``injected-parameters`` cell (the values of this run) after it: the defaults are removed
    from the page when values were injected, and the cell of the values in effect is collapsed.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    injected = any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and injected and "remove-cell" not in tags:
            tags.append("remove-cell")
        elif ("parameters" in tags or "injected-parameters" in tags) and "hide-input" not in tags:
            tags.append("hide-input")
    if title:
        for cell in nb.cells:
            if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
                lines = cell.source.lstrip().split("\n")
                cell.source = "\n".join([f"# {title}"] + lines[1:])
                break
    nbformat.write(nb, path)


def _cut_at_skip(path) -> None:
    """An executed notebook stopped by :func:`mbutils.pages.require`: keep the cells up to the
    one that raised (without its error output) and drop papermill's error banner and the cells
    that never ran."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = []
    for cell in nb.cells:
        if "papermill-error-cell-tag" in cell.metadata.get("tags", []):
            continue
        outputs = cell.get("outputs", [])
        stopped = any(o.get("output_type") == "error" for o in outputs)
        if stopped:
            cell.outputs = [o for o in outputs if o.get("output_type") != "error"]
        cells.append(cell)
        if stopped:
            break
    nb.cells = cells
    nbformat.write(nb, path)


def run_notebook(notebook, output, parameters=None, cwd=None, timeout=None, title=None) -> NotebookRun:
    """Execute a notebook with papermill and save the executed ``.ipynb`` atomically.

    Only the parameters the notebook declares in its ``parameters`` cell are passed.

    Parameters
    ----------
    notebook : str or pathlib.Path
        Jupytext percent ``.py`` (or ``.ipynb``) notebook.
    output : str or pathlib.Path
        Executed notebook to write (``.ipynb``).
    parameters : dict, optional
        Candidate parameters.
    cwd : str or pathlib.Path, optional
        Kernel working directory (default: the folder of ``output``); paths among the
        parameters should be absolute.
    timeout : float, optional
        Per-cell timeout in seconds.
    title : str, optional
        Replaces the notebook's first markdown heading (the page title in the book).

    Returns
    -------
    NotebookRun
        ``status`` ``"done"`` or ``"failed"`` (with the error's name and message); on
        failure the partially executed notebook is kept next to ``output`` as ``*.failed.ipynb``
        and a notebook already at ``output`` is not touched.
        A page stopped by :func:`mbutils.pages.require` is ``"done"``, rendered up to the
        reason it gives (``error`` starts with ``"skipped: "``).
    """
    import papermill as pm

    notebook, output = Path(notebook), Path(output)
    nb = _read_notebook(notebook)
    declared = notebook_parameters(nb)
    params = {k: v for k, v in (parameters or {}).items() if k in declared}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    output.parent.mkdir(parents=True, exist_ok=True)
    failed_path = output.with_suffix(".failed.ipynb")
    tmp = output.with_name(f".{output.stem}.{os.getpid()}.{threading.get_ident()}.tmp.ipynb")
    start = time.perf_counter()
    try:
        # the kernel's own log stays quiet: jupyter_client interrupts every kernel as it shuts it
        # down, which ipykernel logs as an error although the notebook ran; a cell's error still
        # fails the run (PapermillExecutionError) and a dead kernel raises in this process
        pm.execute_notebook(nb, str(tmp), parameters=params, kernel_name="python3", progress_bar=False,
                            cwd=str(cwd or output.parent), execution_timeout=timeout,
                            extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    except pm.PapermillExecutionError as err:
        seconds = time.perf_counter() - start
        if err.ename == "ChapterSkipped" and tmp.exists():  # mbutils.pages.require: a page that says why
            _cut_at_skip(tmp)
            _finish_notebook(tmp, title)
            os.replace(tmp, output)
            failed_path.unlink(missing_ok=True)
            return NotebookRun(output.stem, output, "done", seconds, f"skipped: {err.evalue}")
        if tmp.exists():
            os.replace(tmp, failed_path)
        # an executed notebook already at ``output`` is left alone: it may be another run's
        # (several sweeps can share a book folder); the book lists only the pages that ran
        return NotebookRun(output.stem, output, "failed", seconds, f"{err.ename}: {err.evalue}")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _finish_notebook(tmp, title)
    os.replace(tmp, output)
    failed_path.unlink(missing_ok=True)
    run = NotebookRun(output.stem, output, "done", time.perf_counter() - start)
    return run




def section_notebooks(notebook_dir=None) -> list:
    """The book's section notebooks in order: intro, neural data, model zoo, method
    validation, ceilings, then every ``results_*.py`` (sorted by name).

    Parameters
    ----------
    notebook_dir : str or pathlib.Path, optional
        Default :data:`NOTEBOOKS`.

    Returns
    -------
    list of pathlib.Path
    """
    notebook_dir = Path(notebook_dir or NOTEBOOKS)
    fixed = [notebook_dir / f"{n}.py" for n in ("intro", "neural_data", "model_zoo", "method_validation", "ceilings")]
    return [p for p in fixed if p.exists()] + sorted(notebook_dir.glob("results_*.py"))
