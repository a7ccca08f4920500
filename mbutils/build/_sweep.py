"""The sweep: score every model of a config, then render each model's card from its scores.

Data flows one way. :func:`score_entry` scores one model with
:func:`mbutils.scoring.score_model` into ``<results>/models/<model>__<weights>/`` (several
models at once in worker processes), unless the folder already holds scores whose stamp
(``_scored.json``: dataset hash, scoring settings, scores version) matches. The model card
notebook (``mbutils/notebooks/model_card.py``) is then executed with papermill on the stored
tables: it reads and draws, it computes nothing. Once a card is saved, the sweep writes the
marker ``_sweep_done.json`` in the model's folder, last and atomically; a model whose marker
matches (dataset and notebook hashes, card present) is skipped by the next run, so an
interrupted sweep resumes where it stopped. A failing model is reported and the others go on.

Examples
--------
>>> from mbutils.build import load_config, run_sweep
>>> summary = run_sweep(load_config("smoke"), "data/synthetic.nc", "results/smoke")  # doctest: +SKIP
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import time
from pathlib import Path

from .._io import atomic_write, file_sha256, folder_lock
from ._config import ModelEntry, SweepConfig, default_jobs, load_config, resolve_models
from ._notebooks import (
    NOTEBOOKS,
    NotebookRun,
    SweepSummary,
    _restore_env,
    _set_kernel_env,
    _text_sha256,
    run_notebook,
    section_notebooks,
)

__all__ = ["is_finished", "run_sections", "run_sweep", "score_entry"]

DONE_MARKER = "_sweep_done.json"
SCORED_MARKER = "_scored.json"
SCORE_FILES = ("scores.parquet", "summary.parquet", "provenance.json")


def _absolute(path) -> Path:
    """``path`` resolved against the caller's working directory (``~`` expanded)."""
    return Path(path).expanduser().resolve()


# --------------------------------------------------------------------------- scores
def score_entry(model, weights, dataset, results, score_kwargs=None, progress=None, scorer=None) -> Path:
    """Score one model into ``<results>/models/<model>__<weights>/`` unless already done.

    Cached scores are reused when the folder holds the score files and a ``_scored.json``
    marker whose dataset hash and scoring arguments match; otherwise the model is (re)scored
    with :func:`mbutils.scoring.score_model` and the marker written last, atomically. One
    writer at a time: the folder is locked while it is checked and scored
    (:func:`mbutils._io.folder_lock`); a second sweep that reaches it meanwhile fails for
    this model with a message naming the holder, and never mixes its tables with the first's.

    Parameters
    ----------
    model : str
        Registry name, ``timm:<name>`` or ``package.module:callable``.
    weights : {"trained", "random"}
    dataset : str or pathlib.Path
        Dataset file (schema in docs/dataset.md).
    results : str or pathlib.Path
        Sweep results folder.
    score_kwargs : dict, optional
        Extra keyword arguments for ``score_model``, but for ``model_params``: a mapping of model
        names to the keyword arguments their model is built with (``{"random_fourier":
        {"n_draws": 600}}``; :func:`mbutils.models.load_model`'s ``**params``). A model named
        there is built here and handed to the scorer built, and its parameters enter the
        ``_scored.json`` marker (other models' markers do not record them).
    progress : bool, optional
        Progress bars of the scoring.
    scorer : callable, optional
        Called as ``scorer(model, dataset, out_dir, weights=..., progress=..., **score_kwargs)``
        to write the tables; default :func:`mbutils.scoring.score_model`.

    Returns
    -------
    pathlib.Path
        The model's score folder.
    """
    from ..scoring import SCORES_VERSION, score_model

    scorer = score_model if scorer is None else scorer
    dataset, results = _absolute(dataset), _absolute(results)
    out_dir = results / "models" / ModelEntry(model, weights).key
    score_kwargs = dict(score_kwargs or {})
    model_params = dict((score_kwargs.pop("model_params", None) or {}).get(model) or {})
    stamp = {"model": model, "weights": weights, "dataset_sha256": file_sha256(dataset), "scores": SCORES_VERSION,
             "score_kwargs": json.loads(json.dumps(score_kwargs, sort_keys=True, default=str))}
    if model_params:
        stamp["model_params"] = json.loads(json.dumps(model_params, sort_keys=True, default=str))
    marker = out_dir / SCORED_MARKER
    with folder_lock(out_dir, f"scoring {model} ({weights}) on {dataset.name}"):
        if _stamp_matches(out_dir, stamp):
            return out_dir
        marker.unlink(missing_ok=True)
        (out_dir / DONE_MARKER).unlink(missing_ok=True)
        if model_params:
            from ..models import load_model

            built = load_model(model, weights=weights, device=score_kwargs.get("device"), **model_params)
            scorer(built, dataset, out_dir, weights=weights, progress=progress, **score_kwargs)
        else:
            scorer(model, dataset, out_dir, weights=weights, progress=progress, **score_kwargs)
        with atomic_write(marker) as tmp:
            tmp.write_text(json.dumps(stamp, indent=1))
    return out_dir


def _stamp_matches(out_dir: Path, stamp: dict) -> bool:
    """Whether a model folder holds complete scores whose ``_scored.json`` equals ``stamp``."""
    marker = out_dir / SCORED_MARKER
    if not (marker.exists() and all((out_dir / f).exists() for f in SCORE_FILES)):
        return False
    try:
        return json.loads(marker.read_text()) == stamp
    except (ValueError, OSError):
        return False


def _score_job(model, weights, dataset, results, score_kwargs, scorer=None):
    """One model scored (in a worker process): ``(seconds, error or "")``."""
    start = time.perf_counter()
    try:
        score_entry(model, weights, dataset, results, score_kwargs, progress=False, scorer=scorer)
    except Exception as err:  # reported per model; the sweep goes on
        return time.perf_counter() - start, f"{type(err).__name__}: {err}"
    return time.perf_counter() - start, ""


# --------------------------------------------------------------------------- sweep
def _done_stamp(entry: ModelEntry, dataset_sha: str, notebook_sha: str, output: Path) -> dict:
    from ..scoring import SCORES_VERSION

    return {"model": entry.model, "weights": entry.weights, "dataset_sha256": dataset_sha,
            "notebook_sha256": notebook_sha, "output": str(output), "scores": SCORES_VERSION}


def _scored_dataset(folder: Path):
    """The dataset hash of a model folder's ``_scored.json``, or None."""
    try:
        return json.loads((folder / SCORED_MARKER).read_text()).get("dataset_sha256")
    except (OSError, ValueError, AttributeError):
        return None


def _model_title(entry: ModelEntry) -> str:
    try:
        from ..models import get_model_info

        name = get_model_info(entry.model).display_name or entry.model
    except Exception:  # an unknown or unimportable name: the raw name will do
        name = entry.model
    return f"{name} ({entry.weights})"


def is_finished(entry: ModelEntry, results, output, dataset_sha: str, notebook_sha: str) -> bool:
    """Whether a model's scores and its rendered card are complete and current.

    True when ``<results>/models/<key>/_sweep_done.json`` exists (it is written last, after
    the card), records the same dataset and notebook hashes and output path, the card
    exists and the scored marker is present.
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

    from ..config import get_config

    enabled = get_config().progress if progress is None else progress
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled)


def _score_all(todo, dataset, results, score_kwargs, jobs, progress, scorer=None) -> dict:
    """Score the entries of ``todo`` (``jobs`` worker processes; in this process when 1).

    Returns ``{key: (seconds, error)}``.
    """
    out = {}
    with _progress_bar(len(todo), "scoring", progress) as bar:
        if jobs == 1 or len(todo) <= 1:
            for entry in todo:
                out[entry.key] = _score_job(entry.model, entry.weights, dataset, results, score_kwargs, scorer)
                bar.update(1)
            return out
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with thread pools
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {pool.submit(_score_job, e.model, e.weights, str(dataset), str(results), score_kwargs, scorer): e
                       for e in todo}
            for fut in cf.as_completed(futures):
                entry = futures[fut]
                try:
                    out[entry.key] = fut.result()
                except Exception as err:  # the worker died (out of memory, a crash in native code)
                    out[entry.key] = (0.0, f"{type(err).__name__}: {err}")
                bar.set_postfix_str(f"{entry.key}: {'failed' if out[entry.key][1] else 'scored'}")
                bar.update(1)
    return out


def run_sweep(config, dataset, results, book="book", notebook=None, jobs=None, models=None, progress=None,
              timeout=None, scorer=None) -> SweepSummary:
    """Score every model of a config, then render one model card per model.

    Parameters
    ----------
    config : SweepConfig or str or pathlib.Path
        Config, its YAML file or a packaged config's name (see :func:`load_config`).
    dataset : str or pathlib.Path
        Dataset file (must exist).
    results : str or pathlib.Path
        Results folder; model folders land in ``<results>/models/<model>__<weights>/``.
    book : str or pathlib.Path
        Book folder; cards are written to ``<book>/generated/models/<model>__<weights>.ipynb``.
    notebook : str or pathlib.Path, optional
        Model card notebook (default the packaged ``model_card.py``).
    jobs : int, optional
        Models scored at once, each in a worker process, and cards rendered at once (default:
        config ``jobs``, else the CPU count); each gets ``max(1, n_cpus // jobs)`` threads.
        With 1, models are scored in this process (models registered with
        :func:`mbutils.models.register_model` are known only here; a parallel sweep names
        a user model ``package.module:callable``).
    models : list of ModelEntry, optional
        Override the config's model list.
    progress : bool, optional
        Progress bars (default ``mbutils.get_config().progress``).
    timeout : float, optional
        Per-cell timeout of the cards, seconds.
    scorer : callable, optional
        Writes one model's tables (see :func:`score_entry`); default
        :func:`mbutils.scoring.score_model`. With ``jobs > 1`` it must be a module-level
        function (worker processes import it by name).

    Returns
    -------
    SweepSummary
        One :class:`NotebookRun` per model: ``done``, ``skipped`` (finished earlier) or
        ``failed`` (scoring or card, with the error).

    Notes
    -----
    Relative paths are resolved against the working directory of the caller, once, here.
    """
    if not isinstance(config, SweepConfig):
        config = load_config(config)
    dataset, results, book = _absolute(dataset), _absolute(results), _absolute(book)
    if not dataset.is_file():
        raise FileNotFoundError(f"dataset {str(dataset)!r} not found; create it with "
                                "`mbutils data synthetic --out FILE` or `mbutils data allen ...`")
    output_dir = book / "generated" / "models"
    notebook = _absolute(notebook) if notebook else NOTEBOOKS / "model_card.py"
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
            todo.append(entry)
    threads = max(1, default_jobs() // jobs)
    old_env = _set_kernel_env(threads)
    try:
        scored = _score_all(todo, dataset, results, dict(config.score), min(jobs, max(1, len(todo))), progress,
                            scorer)
        cards = []
        for entry in todo:
            seconds, error = scored[entry.key]
            if error:
                summary.runs.append(NotebookRun(entry.key, output_dir / f"{entry.key}.ipynb", "failed", seconds,
                                                f"scoring: {error}"))
            else:
                cards.append(entry)

        def card(entry):
            output = output_dir / f"{entry.key}.ipynb"
            params = dict(config.parameters, model=entry.model, weights=entry.weights, dataset=str(dataset),
                          scores=str(results / "models" / entry.key), config=config.name)
            run = run_notebook(notebook, output, params, timeout=timeout, title=_model_title(entry))
            run.name = entry.key
            run.seconds += scored[entry.key][0]
            if run.status == "done" and _scored_dataset(results / "models" / entry.key) != dataset_sha:
                output.unlink(missing_ok=True)  # the tables changed under the card: it shows another dataset
                run.status, run.error = "failed", ("the model's folder was rescored on another dataset while its "
                                                   "card was drawn (another sweep into the same results folder)")
            if run.status == "done":
                with atomic_write(results / "models" / entry.key / DONE_MARKER) as tmp:
                    tmp.write_text(json.dumps(_done_stamp(entry, dataset_sha, notebook_sha, output), indent=1))
            return run

        with _progress_bar(len(cards), "model cards", progress) as bar:
            with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = {pool.submit(card, e): e for e in cards}
                for fut in cf.as_completed(futures):
                    entry = futures[fut]
                    try:
                        run = fut.result()
                    except Exception as err:  # infrastructure errors (kernel died, ...)
                        run = NotebookRun(entry.key, output_dir / f"{entry.key}.ipynb", "failed",
                                          error=f"{type(err).__name__}: {err}")
                    summary.runs.append(run)
                    bar.update(1)
    finally:
        _restore_env(old_env)
    order = {e.key: i for i, e in enumerate(entries)}
    summary.runs.sort(key=lambda r: order.get(r.name, len(order)))
    return summary


def _source_tree_sha() -> str:
    """Hash of the package's sources (a section is re-executed when they change)."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def run_sections(config, dataset, results, book="book", notebooks=None, jobs=None, model_runs=None, progress=None,
                 timeout=None) -> SweepSummary:
    """Execute the section notebooks, skipping those whose inputs did not change.

    A section is re-executed when its source, its parameters, the dataset, the set of
    finished models or the ``mbutils`` sources changed (recorded in ``<output>.done.json``).

    Parameters
    ----------
    config : SweepConfig
    dataset, results : str or pathlib.Path
    book : str or pathlib.Path
        Book folder; executed notebooks land in ``<book>/generated/<name>.ipynb``.
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
    output_dir = _absolute(book) / "generated"
    results, dataset = _absolute(results), _absolute(dataset)
    notebooks = section_notebooks() if notebooks is None else [_absolute(n) for n in notebooks]
    jobs = jobs or config.jobs or default_jobs()
    models = sorted(r.name for r in (model_runs or []) if r.status in ("done", "skipped"))
    base = {"dataset_sha256": file_sha256(dataset), "models": models, "mbutils": _source_tree_sha()}
    params = dict(config.parameters, dataset=str(dataset), results=str(results), config=config.name,
                  models=list(models))
    summary, todo = SweepSummary(), []
    for nb in notebooks:
        output = output_dir / f"{nb.stem}.ipynb"
        stamp = dict(base, notebook_sha256=_text_sha256(nb.read_text()),
                     parameters=json.loads(json.dumps(params, sort_keys=True, default=str)))
        marker = output.with_suffix(".done.json")
        try:
            current = output.exists() and marker.exists() and json.loads(marker.read_text()) == stamp
        except (ValueError, OSError):
            current = False
        if current:
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
