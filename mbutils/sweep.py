"""Run many models: sweep configs, resumable per-model notebooks, section notebooks.

A *sweep* executes the per-model notebook (``notebooks/model_card.py``) once per
(model, weights) entry of a config with papermill, in parallel, each kernel limited to a
share of the CPU threads. The notebook scores its model (or reads cached scores) into
``<results>/models/<model>__<weights>/``; once the executed notebook is saved, the sweep
writes an atomic marker ``_sweep_done.json`` in that folder, *last*. A model whose marker
exists and matches (dataset hash, notebook source hash, executed notebook present) is
finished and skipped by the next run, so an interrupted sweep resumes where it stopped.
A failing model is reported and the others go on.

Examples
--------
>>> from mbutils.sweep import load_config
>>> cfg = load_config("configs/smoke.yml")          # doctest: +SKIP
>>> summary = run_sweep(cfg, "data/synthetic.nc", "results/smoke")  # doctest: +SKIP
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import difflib
import hashlib
import json
import os
import threading
import time
from pathlib import Path

from ._io import atomic_write, file_sha256

__all__ = [
    "SweepConfig",
    "ModelEntry",
    "NotebookRun",
    "SweepSummary",
    "load_config",
    "validate_config",
    "run_notebook",
    "run_sweep",
    "run_sections",
    "is_finished",
    "ensure_scores",
    "notebook_parameters",
    "default_jobs",
    "REPO_ROOT",
]

#: repository root (the folder holding ``notebooks/`` and ``configs/``)
REPO_ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ("trained", "random")
DONE_MARKER = "_sweep_done.json"
SCORED_MARKER = "_scored.json"
SCORE_FILES = ("scores.parquet", "summary.parquet", "provenance.json")

_CONFIG_KEYS = {
    "name": str,
    "description": str,
    "neurons": (int, type(None)),
    "seed": int,
    "models": list,
    "include_cached_trained": bool,
    "all_models": bool,
    "jobs": (int, type(None)),
    "parameters": dict,
    "score": dict,
}
_ENTRY_KEYS = {"model", "weights"}


# --------------------------------------------------------------------------- configs
@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One scored model of a sweep: a registry name and its weights."""

    model: str
    weights: str = "trained"

    @property
    def key(self) -> str:
        """Folder / page name ``<model>__<weights>``."""
        return f"{self.model}__{self.weights}"


@dataclasses.dataclass
class SweepConfig:
    """A validated sweep config (see ``configs/*.yml``).

    Attributes
    ----------
    name : str
        Config name (``smoke``, ``default``, ``paper``).
    description : str
        One line shown in the book.
    neurons : int or None
        Neuron count of the synthetic mouse generated when the default dataset is missing.
    seed : int
        Seed of the synthetic mouse.
    models : list of ModelEntry
        Models to score, in order.
    include_cached_trained : bool
        Also score every model whose trained weights are already in the local caches.
    all_models : bool
        Also score every registered model with each of its train types (the paper's zoo).
    jobs : int or None
        Parallel notebooks (default: the CPU count).
    parameters : dict
        Notebook parameters (sizes, e.g. ``n_bootstrap``); each notebook gets those it declares.
    score : dict
        Keyword arguments for :func:`mbutils.scoring.score_model`.
    path : pathlib.Path or None
        File the config was read from.
    """

    name: str
    models: list
    description: str = ""
    neurons: int | None = None
    seed: int = 0
    include_cached_trained: bool = False
    all_models: bool = False
    jobs: int | None = None
    parameters: dict = dataclasses.field(default_factory=dict)
    score: dict = dataclasses.field(default_factory=dict)
    path: Path | None = None


def _valid_model_names():
    from .models import list_models

    table = list_models()
    if "name" in getattr(table, "columns", []):
        return list(table["name"])
    return list(table.index)


def _train_types(value) -> tuple:
    return tuple(value.split()) if isinstance(value, str) else tuple(value)


def _cached_trained_names():
    """Registry names whose trained weights are on this machine (cache or package)."""
    from .models import list_models

    table = list_models()
    if "trained_available" in table.columns:
        return list(table.loc[table["trained_available"].astype(bool), "name"])
    return []


def _unknown(kind, value, valid):
    close = difflib.get_close_matches(str(value), [str(v) for v in valid], n=3)
    hint = f" Did you mean {close}?" if close else ""
    return ValueError(f"unknown {kind} {value!r}.{hint} Valid {kind}s: {sorted(map(str, valid))}")


def validate_config(raw, valid_models=None, source="config") -> SweepConfig:
    """Check a config mapping and return a :class:`SweepConfig`.

    Parameters
    ----------
    raw : dict
        Parsed YAML.
    valid_models : collection of str, optional
        Registry names accepted in ``models`` (default: ``mbutils.models.list_models()``).
    source : str
        Name of the config in error messages.

    Raises
    ------
    ValueError
        Unknown keys, unknown model names (listing the valid ones), bad weights or types.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: expected a mapping of settings, got {type(raw).__name__}: {raw!r}")
    for key, value in raw.items():
        if key not in _CONFIG_KEYS:
            raise _unknown("config key", key, _CONFIG_KEYS)
        if not isinstance(value, _CONFIG_KEYS[key]) or (isinstance(value, bool) and key in ("neurons", "seed", "jobs")):
            raise ValueError(f"{source}: {key}={value!r} has the wrong type; expected {_CONFIG_KEYS[key]}")
    for key in ("name", "models"):
        if key not in raw:
            raise ValueError(f"{source}: missing required key {key!r}")
    if raw.get("jobs") is not None and raw["jobs"] < 1:
        raise ValueError(f"{source}: jobs={raw['jobs']!r}; expected a positive integer")
    if raw.get("neurons") is not None and raw["neurons"] < 1:
        raise ValueError(f"{source}: neurons={raw['neurons']!r}; expected a positive integer")
    if valid_models is None:
        valid_models = _valid_model_names()
    valid_models = set(valid_models)
    entries = []
    for item in raw["models"]:
        if isinstance(item, str):
            item = {"model": item}
        if not isinstance(item, dict):
            raise ValueError(f"{source}: model entry {item!r}; expected a name or a mapping with 'model' and 'weights'")
        for key in item:
            if key not in _ENTRY_KEYS:
                raise _unknown("model entry key", key, _ENTRY_KEYS)
        if "model" not in item:
            raise ValueError(f"{source}: model entry {item!r} has no 'model' key")
        name = item["model"]
        if name not in valid_models:
            raise _unknown("model", name, valid_models)
        weights = item.get("weights", "trained")
        for w in [weights] if isinstance(weights, str) else list(weights):
            if w not in WEIGHTS:
                raise ValueError(f"{source}: weights={w!r} for model {name!r}; expected one of {list(WEIGHTS)}")
            entry = ModelEntry(name, w)
            if entry not in entries:
                entries.append(entry)
    kwargs = {k: v for k, v in raw.items() if k != "models"}
    return SweepConfig(models=entries, **kwargs)


def load_config(path, valid_models=None) -> SweepConfig:
    """Read and validate a sweep config YAML file.

    Parameters
    ----------
    path : str or pathlib.Path
        e.g. ``configs/smoke.yml``.
    valid_models : collection of str, optional
        Accepted model names (default: the registry).

    Returns
    -------
    SweepConfig
    """
    import yaml

    path = Path(path)
    if not path.exists():
        have = sorted(p.name for p in (REPO_ROOT / "configs").glob("*.yml"))
        raise FileNotFoundError(f"sweep config {str(path)!r} not found; configs in the repository: {have}")
    raw = yaml.safe_load(path.read_text())
    cfg = validate_config(raw, valid_models=valid_models, source=str(path))
    cfg.path = path
    return cfg


def resolve_models(config: SweepConfig) -> list:
    """The config's models, plus the locally cached trained ones if ``include_cached_trained``."""
    entries = list(config.models)
    if config.all_models:
        from .models import list_models

        table = list_models()
        names = list(table["name"]) if "name" in table.columns else list(table.index)
        types = list(table["train_types"]) if "train_types" in table.columns else [WEIGHTS] * len(names)
        for name, train_types in zip(names, types):
            for w in _train_types(train_types):
                if ModelEntry(name, w) not in entries:
                    entries.append(ModelEntry(name, w))
    if config.include_cached_trained:
        for name in _cached_trained_names():
            entry = ModelEntry(name, "trained")
            if entry not in entries:
                entries.append(entry)
    return entries


def default_jobs() -> int:
    """Parallel notebooks by default: the usable CPU count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- notebooks
@dataclasses.dataclass
class NotebookRun:
    """Outcome of one notebook execution."""

    name: str
    output: Path
    status: str  # "done", "skipped", "failed"
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
    def ok(self) -> list:
        return [r for r in self.runs if r.status in ("done", "skipped")]

    def __str__(self) -> str:
        lines = []
        for status in ("done", "skipped", "failed"):
            runs = [r for r in self.runs if r.status == status]
            if runs:
                lines.append(f"{status}: {len(runs)}")
                lines += [f"  {r.name}" + (f" ({r.seconds:.1f} s)" if status == "done" else "")
                          + (f": {r.error}" if r.error else "") for r in runs]
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
    from .config import torch_env

    env.update(torch_env())
    return env


def _finish_notebook(path, title=None):
    """Hide the input of parameter cells and set the page title (first markdown heading)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "hide-input" not in tags:
            tags.append("hide-input")
    if title:
        for cell in nb.cells:
            if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
                lines = cell.source.lstrip().split("\n")
                cell.source = "\n".join([f"# {title}"] + lines[1:])
                break
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
        Kernel working directory (default: the repository root).
    timeout : float, optional
        Per-cell timeout in seconds.
    title : str, optional
        Replaces the notebook's first markdown heading (the page title in the book).

    Returns
    -------
    NotebookRun
        ``status`` ``"done"`` or ``"failed"`` (with the error's name and message); on
        failure the partially executed notebook is kept next to ``output`` as ``*.failed.ipynb``.
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
        pm.execute_notebook(nb, str(tmp), parameters=params, kernel_name="python3", progress_bar=False,
                            cwd=str(cwd or REPO_ROOT), execution_timeout=timeout,
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except pm.PapermillExecutionError as err:
        seconds = time.perf_counter() - start
        if tmp.exists():
            os.replace(tmp, failed_path)
        output.unlink(missing_ok=True)
        return NotebookRun(output.stem, output, "failed", seconds, f"{err.ename}: {err.evalue}")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _finish_notebook(tmp, title)
    os.replace(tmp, output)
    failed_path.unlink(missing_ok=True)
    run = NotebookRun(output.stem, output, "done", time.perf_counter() - start)
    return run


# --------------------------------------------------------------------------- scores
def ensure_scores(model, weights, dataset, results, score_kwargs=None, progress=None):
    """Score one model into ``<results>/models/<model>__<weights>/`` unless already done.

    Cached scores are reused when the folder holds the score files and a ``_scored.json``
    marker whose dataset hash and scoring arguments match; otherwise the model is (re)scored
    with :func:`mbutils.scoring.score_model` and the marker written last, atomically.

    Parameters
    ----------
    model : str
        Registry name.
    weights : {"trained", "random"}
    dataset : str or pathlib.Path
        Dataset file (schema in docs/dataset.md).
    results : str or pathlib.Path
        Sweep results folder.
    score_kwargs : dict, optional
        Extra keyword arguments for ``score_model``.

    Returns
    -------
    pathlib.Path
        The model's score folder.
    """
    out_dir = Path(results) / "models" / f"{model}__{weights}"
    score_kwargs = dict(score_kwargs or {})
    from .scoring import SCORES_VERSION

    stamp = {"model": model, "weights": weights, "dataset_sha256": file_sha256(dataset), "scores": SCORES_VERSION,
             "score_kwargs": json.loads(json.dumps(score_kwargs, sort_keys=True, default=str))}
    marker = out_dir / SCORED_MARKER
    if marker.exists() and all((out_dir / f).exists() for f in SCORE_FILES):
        try:
            if json.loads(marker.read_text()) == stamp:
                return out_dir
        except (ValueError, OSError):
            pass
    marker.unlink(missing_ok=True)
    (out_dir / DONE_MARKER).unlink(missing_ok=True)
    from .scoring import score_model

    score_model(model, dataset, out_dir, weights=weights, progress=progress, **score_kwargs)
    with atomic_write(marker) as tmp:
        tmp.write_text(json.dumps(stamp, indent=1))
    return out_dir


# --------------------------------------------------------------------------- sweep
def _done_stamp(entry: ModelEntry, dataset_sha: str, notebook_sha: str, output: Path) -> dict:
    from .scoring import SCORES_VERSION

    return {"model": entry.model, "weights": entry.weights, "dataset_sha256": dataset_sha,
            "notebook_sha256": notebook_sha, "output": str(output), "scores": SCORES_VERSION}


def _model_title(entry: ModelEntry) -> str:
    try:
        from .models import get_model_info

        name = get_model_info(entry.model).display_name or entry.model
    except Exception:  # registry unavailable or unknown name: the raw name will do
        name = entry.model
    return f"{name} ({entry.weights})"


def is_finished(entry: ModelEntry, results, output, dataset_sha: str, notebook_sha: str) -> bool:
    """Whether a model's scores and executed notebook are complete and current.

    True when ``<results>/models/<key>/_sweep_done.json`` exists (it is written last, after
    the executed notebook), records the same dataset and notebook hashes and output path,
    the executed notebook exists and the scored marker is present.
    """
    folder = Path(results) / "models" / entry.key
    marker = folder / DONE_MARKER
    if not (marker.exists() and Path(output).exists() and (folder / SCORED_MARKER).exists()):
        return False
    try:
        return json.loads(marker.read_text()) == _done_stamp(entry, dataset_sha, notebook_sha, Path(output))
    except (ValueError, OSError):
        return False


def _progress_bar(total, desc, progress, unit="model"):
    from tqdm.auto import tqdm

    from .config import get_config

    enabled = get_config().progress if progress is None else progress
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled)


def run_sweep(config, dataset, results, output_dir="book/generated/models", notebook=None, jobs=None,
              models=None, progress=None, timeout=None) -> SweepSummary:
    """Score every model of a config by executing the per-model notebook for each, in parallel.

    Parameters
    ----------
    config : SweepConfig or str or pathlib.Path
        Config or its YAML file.
    dataset : str or pathlib.Path
        Dataset file (must exist).
    results : str or pathlib.Path
        Results folder; model folders land in ``<results>/models/<model>__<weights>/``.
    output_dir : str or pathlib.Path
        Where executed notebooks ``<model>__<weights>.ipynb`` are written.
    notebook : str or pathlib.Path, optional
        Per-model notebook (default ``notebooks/model_card.py``).
    jobs : int, optional
        Notebooks run at once (default: config ``jobs``, else the CPU count); each kernel
        gets ``max(1, n_cpus // jobs)`` threads.
    models : list of ModelEntry, optional
        Override the config's model list.
    progress : bool, optional
        Progress bar over models (default ``mbutils.get_config().progress``).
    timeout : float, optional
        Per-cell timeout, seconds.

    Returns
    -------
    SweepSummary
        One :class:`NotebookRun` per model: ``done``, ``skipped`` (finished earlier) or ``failed``.
    """
    if not isinstance(config, SweepConfig):
        config = load_config(config)
    dataset, results, output_dir = Path(dataset), Path(results), Path(output_dir)
    if not dataset.exists():
        raise FileNotFoundError(f"dataset {str(dataset)!r} not found; create it with "
                                "`mbutils data synthetic --out FILE` or `mbutils data allen ...`")
    notebook = Path(notebook or REPO_ROOT / "notebooks" / "model_card.py")
    entries = list(models) if models is not None else resolve_models(config)
    jobs = jobs or config.jobs or default_jobs()
    if jobs < 1:
        raise ValueError(f"jobs={jobs!r}; expected a positive integer")
    dataset_sha = file_sha256(dataset)
    notebook_sha = _text_sha256(notebook.read_text())
    summary = SweepSummary()
    todo = []
    for entry in entries:
        output = output_dir / f"{entry.key}.ipynb"
        if is_finished(entry, results, output, dataset_sha, notebook_sha):
            summary.runs.append(NotebookRun(entry.key, output, "skipped"))
        else:
            todo.append((entry, output))
    threads = max(1, default_jobs() // jobs)
    old_env = _set_kernel_env(threads)

    def one(entry, output):
        params = dict(config.parameters, model=entry.model, weights=entry.weights, dataset=str(dataset),
                      results=str(results), score_kwargs=dict(config.score), config=config.name)
        run = run_notebook(notebook, output, params, timeout=timeout, title=_model_title(entry))
        run.name = entry.key
        if run.status == "done":
            with atomic_write(results / "models" / entry.key / DONE_MARKER) as tmp:
                tmp.write_text(json.dumps(_done_stamp(entry, dataset_sha, notebook_sha, output), indent=1))
        return run

    try:
        with _progress_bar(len(entries), f"sweep {config.name}", progress) as bar:
            bar.update(len(entries) - len(todo))
            with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = {pool.submit(one, e, o): e for e, o in todo}
                for fut in cf.as_completed(futures):
                    entry = futures[fut]
                    try:
                        run = fut.result()
                    except Exception as err:  # infrastructure errors (kernel died, ...)
                        run = NotebookRun(entry.key, output_dir / f"{entry.key}.ipynb", "failed",
                                          error=f"{type(err).__name__}: {err}")
                    summary.runs.append(run)
                    bar.set_postfix_str(f"{run.name}: {run.status}")
                    bar.update(1)
    finally:
        _restore_env(old_env)
    order = {e.key: i for i, e in enumerate(entries)}
    summary.runs.sort(key=lambda r: order.get(r.name, len(order)))
    return summary


def section_notebooks(notebook_dir=None) -> list:
    """The book's section notebooks in order: intro, neural data, model zoo, method
    validation, then every ``results_*.py`` (sorted by name)."""
    notebook_dir = Path(notebook_dir or REPO_ROOT / "notebooks")
    fixed = [notebook_dir / f"{n}.py" for n in ("intro", "neural_data", "model_zoo", "method_validation")]
    return [p for p in fixed if p.exists()] + sorted(notebook_dir.glob("results_*.py"))


def _source_tree_sha() -> str:
    h = hashlib.sha256()
    for p in sorted((REPO_ROOT / "mbutils").rglob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def run_sections(config, dataset, results, output_dir="book/generated", notebooks=None, jobs=None,
                 model_runs=None, progress=None, timeout=None) -> SweepSummary:
    """Execute the section notebooks, skipping those whose inputs did not change.

    A section is re-executed when its source, its parameters, the dataset, the set of
    finished models or the ``mbutils`` sources changed (recorded in ``<output>.done.json``).

    Parameters
    ----------
    config : SweepConfig
    dataset, results : str or pathlib.Path
    output_dir : str or pathlib.Path
        Executed notebooks land in ``<output_dir>/<name>.ipynb``.
    notebooks : list of pathlib.Path, optional
        Default :func:`section_notebooks`.
    jobs : int, optional
        Parallel notebooks (default as in :func:`run_sweep`).
    model_runs : list of NotebookRun, optional
        The sweep's finished models (part of each section's cache key).

    Returns
    -------
    SweepSummary
    """
    output_dir, results, dataset = Path(output_dir), Path(results), Path(dataset)
    notebooks = section_notebooks() if notebooks is None else [Path(n) for n in notebooks]
    jobs = jobs or config.jobs or default_jobs()
    models = sorted(r.name for r in (model_runs or []) if r.status in ("done", "skipped"))
    base = {"dataset_sha256": file_sha256(dataset), "models": models, "mbutils": _source_tree_sha()}
    params = dict(config.parameters, dataset=str(dataset), results=str(results), config=config.name,
                  models=[m for m in models])
    summary, todo = SweepSummary(), []
    for nb in notebooks:
        output = output_dir / f"{nb.stem}.ipynb"
        stamp = dict(base, notebook_sha256=_text_sha256(nb.read_text()),
                     parameters=json.loads(json.dumps(params, sort_keys=True, default=str)))
        marker = output.with_suffix(".done.json")
        if output.exists() and marker.exists() and json.loads(marker.read_text()) == stamp:
            summary.runs.append(NotebookRun(nb.stem, output, "skipped"))
        else:
            marker.unlink(missing_ok=True)
            todo.append((nb, output, marker, stamp))
    threads = max(1, default_jobs() // jobs)
    old_env = _set_kernel_env(threads)

    def one(nb, output, marker, stamp):
        run = run_notebook(nb, output, params, timeout=timeout)
        if run.status == "done":
            with atomic_write(marker) as tmp:
                tmp.write_text(json.dumps(stamp, indent=1))
        return run

    try:
        with _progress_bar(len(notebooks), "sections", progress, unit="notebook") as bar:
            bar.update(len(notebooks) - len(todo))
            with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = {pool.submit(one, *t): t for t in todo}
                for fut in cf.as_completed(futures):
                    nb, output = futures[fut][:2]
                    try:
                        run = fut.result()
                    except Exception as err:
                        run = NotebookRun(nb.stem, output, "failed", error=f"{type(err).__name__}: {err}")
                    summary.runs.append(run)
                    bar.update(1)
    finally:
        _restore_env(old_env)
    order = {nb.stem: i for i, nb in enumerate(notebooks)}
    summary.runs.sort(key=lambda r: order.get(r.name, len(order)))
    return summary
