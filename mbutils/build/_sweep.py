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
import logging
import os
import time
import warnings
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

_log = logging.getLogger(__name__)

__all__ = ["is_finished", "run_sections", "run_sweep", "score_entry"]

DONE_MARKER = "_sweep_done.json"
SCORED_MARKER = "_scored.json"
SCORE_FILES = ("scores.parquet", "summary.parquet", "provenance.json")
#: keyword arguments of the scorer that do not change the scores (left out of a folder's stamp)
NOT_SETTINGS = frozenset({"cache"})


def _absolute(path) -> Path:
    """``path`` resolved against the caller's working directory (``~`` expanded)."""
    return Path(path).expanduser().resolve()


# --------------------------------------------------------------------------- scores
def score_entry(model, weights, dataset, results, score_kwargs=None, progress=None, scorer=None,
                wait=0.0) -> Path:
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
    wait : float
        Seconds to wait for another writer of the folder (another sweep scoring the same
        model) before failing; once it is done, its scores are reused when they match.

    Returns
    -------
    pathlib.Path
        The model's score folder.
    """
    from ..scoring import score_model

    scorer = score_model if scorer is None else scorer
    dataset, results = _absolute(dataset), _absolute(results)
    out_dir = results / "models" / ModelEntry(model, weights).key
    score_kwargs, model_params = _split_model_params(model, score_kwargs)
    stamp = _score_stamp(model, weights, file_sha256(dataset), score_kwargs, model_params)
    marker = out_dir / SCORED_MARKER
    with folder_lock(out_dir, f"scoring {model} ({weights}) on {dataset.name}", wait=wait):
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


def _split_model_params(model: str, score_kwargs) -> tuple[dict, dict]:
    """``score_kwargs`` without its ``model_params`` section, and that section's entry for ``model``."""
    score_kwargs = dict(score_kwargs or {})
    return score_kwargs, dict((score_kwargs.pop("model_params", None) or {}).get(model) or {})


def _score_stamp(model, weights, dataset_sha: str, score_kwargs: dict, model_params: dict) -> dict:
    """The ``_scored.json`` marker of a model folder scored with these settings (``score_kwargs``
    without ``model_params``; the keys of :data:`NOT_SETTINGS` left out)."""
    from ..scoring import SCORES_VERSION

    settings = {k: v for k, v in score_kwargs.items() if k not in NOT_SETTINGS}
    stamp = {"model": model, "weights": weights, "dataset_sha256": dataset_sha, "scores": SCORES_VERSION,
             "score_kwargs": json.loads(json.dumps(settings, sort_keys=True, default=str))}
    if model_params:
        stamp["model_params"] = json.loads(json.dumps(model_params, sort_keys=True, default=str))
    return stamp


def _stamp_matches(out_dir: Path, stamp: dict) -> bool:
    """Whether a model folder holds complete scores whose ``_scored.json`` equals ``stamp``."""
    marker = out_dir / SCORED_MARKER
    if not (marker.exists() and all((out_dir / f).exists() for f in SCORE_FILES)):
        return False
    try:
        return json.loads(marker.read_text()) == stamp
    except (ValueError, OSError):
        return False


def _score_job(model, weights, dataset, results, score_kwargs, scorer=None, wait=0.0):
    """One model scored (here or in a worker): ``(seconds, error or "")``.

    A failure's traceback is written to ``<results>/logs/<model>__<weights>.log``, whose path
    the error names."""
    import traceback

    start, began = time.perf_counter(), time.time()
    key = ModelEntry(model, weights).key
    memory = _memory_record(results, key)
    try:
        with _PeakMemory(record=memory, limit=_worker_memory_limit()) as peak:
            folder = score_entry(model, weights, dataset, results, score_kwargs, progress=False, scorer=scorer,
                                 wait=wait)
        _write_task_record(folder, time.perf_counter() - start, peak.bytes, began)
    except Exception as err:  # reported per model; the sweep goes on
        log = _absolute(results) / "logs" / f"{key}.log"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(log) as tmp:
                tmp.write_text(traceback.format_exc())
            where = f" (log: {log})"
        except OSError:
            where = ""
        return time.perf_counter() - start, f"{type(err).__name__}: {err}{where}"
    return time.perf_counter() - start, ""


def _memory_record(results, key) -> Path:
    """``<results>/logs/<key>.memory.json``: the running task's peak memory while it scores the
    model (see :class:`_PeakMemory`); gone once the task ends, so one that is left names a task
    whose process died."""
    return _absolute(results) / "logs" / f"{key}.memory.json"


def _worker_memory_limit():
    """The memory limit (bytes) of the Dask worker running this code, else None."""
    try:
        from distributed import get_worker

        return get_worker().memory_manager.memory_limit or None
    except (ImportError, ValueError, AttributeError):  # not in a worker
        return None


class _PeakMemory:
    """Largest resident set size of this process (and its children) while the block runs,
    sampled every quarter second (``bytes``).

    With ``record`` (a path), the peak is also written there while the block runs (JSON:
    ``peak_rss_bytes``, ``limit_bytes`` (``limit``, the worker's memory limit, or null),
    ``pid``), whenever it has grown by a 64th since the last write; the file is removed when the
    block ends. A record that outlives its task tells the sweep how close to its limit a worker
    was when it was ended (see :func:`_memory_death`)."""

    def __init__(self, interval=0.25, record=None, limit=None):
        import threading

        self.interval, self.bytes = interval, 0
        self.record, self.limit, self._written = (Path(record) if record else None), limit, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _rss(self) -> int:
        import psutil

        proc = psutil.Process()
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _write(self):
        if self.record is None or self.bytes <= self._written * (1 + 1 / 64):
            return
        try:
            with atomic_write(self.record) as tmp:
                tmp.write_text(json.dumps({"peak_rss_bytes": int(self.bytes), "limit_bytes": self.limit,
                                           "pid": os.getpid()}))
            self._written = self.bytes
        except OSError:  # a record, not a result
            pass

    def _sample(self):
        while not self._stop.is_set():
            self.bytes = max(self.bytes, self._rss())
            self._write()
            self._stop.wait(self.interval)

    def __enter__(self):
        if self.record is not None:
            self.record.unlink(missing_ok=True)  # an earlier try's
        self.bytes = self._rss()
        self._write()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.bytes = max(self.bytes, self._rss())
        if self.record is not None:
            self.record.unlink(missing_ok=True)


def _write_task_record(folder, seconds, peak_bytes, began) -> None:
    """``<folder>/_task.json``: the model's time in its task and the task's peak memory, and
    where it ran (the figures of benchmarks/bench_atlas.py); only when the task scored the model
    (its ``_scored.json`` is newer than ``began``, a ``time.time()``), not when it reused it."""
    import socket

    try:
        if (Path(folder) / SCORED_MARKER).stat().st_mtime < began - 1:
            return
    except OSError:  # another sweep is rescoring the folder: no record of this task
        return
    record = {"seconds": seconds, "peak_rss_bytes": int(peak_bytes), "host": socket.gethostname(),
              "pid": os.getpid()}
    try:
        with atomic_write(Path(folder) / "_task.json") as tmp:
            tmp.write_text(json.dumps(record, indent=1))
    except OSError:  # a record, not a result: the sweep goes on without it
        pass


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


def is_finished(entry: ModelEntry, results, output, dataset_sha: str, notebook_sha: str, score_kwargs=None) -> bool:
    """Whether a model's scores and its rendered card are complete and current.

    True when ``<results>/models/<key>/_sweep_done.json`` exists (it is written last, after
    the card), records the same dataset and notebook hashes and output path, the card
    exists, and the scored marker ``_scored.json`` records the same dataset and the scoring
    settings ``score_kwargs`` (a config's ``score:`` section; default ``{}``, the defaults of
    :func:`mbutils.scoring.score_model`): scores of other settings are not finished.
    """
    folder = Path(results) / "models" / entry.key
    marker = folder / DONE_MARKER
    if not (marker.exists() and Path(output).exists() and (folder / SCORED_MARKER).exists()):
        return False
    score_kwargs, model_params = _split_model_params(entry.model, score_kwargs)
    try:
        return (json.loads(marker.read_text()) == _done_stamp(entry, dataset_sha, notebook_sha, Path(output))
                and json.loads((folder / SCORED_MARKER).read_text())
                == _score_stamp(entry.model, entry.weights, dataset_sha, score_kwargs, model_params))
    except (ValueError, OSError):
        return False


def _progress_bar(total, desc, progress, unit="model"):
    from tqdm.auto import tqdm

    from ..config import get_config

    enabled = get_config().progress if progress is None else progress
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled)


def _render_card(entry, notebook, output_dir, results, dataset, parameters, config_name, timeout, dataset_sha,
                 notebook_sha, seconds=0.0) -> NotebookRun:
    """Render one model's card from its stored scores, and mark the model finished."""
    output = Path(output_dir) / f"{entry.key}.ipynb"
    folder = Path(results) / "models" / entry.key
    params = dict(parameters, model=entry.model, weights=entry.weights, dataset=str(dataset), scores=str(folder),
                  config=config_name)
    run = run_notebook(notebook, output, params, timeout=timeout, title=_model_title(entry))
    run.name = entry.key
    run.seconds += seconds
    if run.status == "done" and _scored_dataset(folder) != dataset_sha:
        output.unlink(missing_ok=True)  # the tables changed under the card: it shows another dataset
        run.status, run.error = "failed", ("the model's folder was rescored on another dataset while its "
                                           "card was drawn (another sweep into the same results folder)")
    if run.status == "done":
        with atomic_write(folder / DONE_MARKER) as tmp:
            tmp.write_text(json.dumps(_done_stamp(entry, dataset_sha, notebook_sha, output), indent=1))
    return run


#: status of a model that a sweep with ``stop_after`` did not start
NOT_STARTED = "not_started"


def _not_started(entry, card, deadline) -> NotebookRun | None:
    """The outcome of a model whose sweep passed its ``deadline`` (epoch seconds) before the
    model began, else None."""
    if deadline is None or time.time() < deadline:
        return None
    return NotebookRun(entry.key, Path(card["output_dir"]) / f"{entry.key}.ipynb", NOT_STARTED,
                       error="the sweep's stop_after had passed; run the sweep again to score it")


def _model_task(entry, dataset, results, score_kwargs, scorer, card, wait, deadline=None) -> NotebookRun:
    """One model of a sweep, as one task: score it, then render its card (``card``: the
    keyword arguments of :func:`_render_card` but the entry and the seconds). Past ``deadline``
    (epoch seconds, the sweep's ``stop_after``) the model is not started."""
    late = _not_started(entry, card, deadline)
    if late is not None:
        return late
    seconds, error = _score_job(entry.model, entry.weights, dataset, results, score_kwargs, scorer, wait)
    if error:
        return NotebookRun(entry.key, Path(card["output_dir"]) / f"{entry.key}.ipynb", "failed", seconds,
                           f"scoring: {error}")
    try:
        return _render_card(entry, seconds=seconds, **card)
    except Exception as err:  # infrastructure errors (kernel died, ...)
        return NotebookRun(entry.key, Path(card["output_dir"]) / f"{entry.key}.ipynb", "failed", seconds,
                           f"card: {type(err).__name__}: {err}")


#: seconds a sweep waits for another sweep that scores the same model folder
LOCK_WAIT = 6 * 3600.0


def _run_serial(todo, dataset, results, score_kwargs, scorer, card, progress, wait, deadline=None) -> list:
    """Score the entries in this process, one after another, then render their cards."""
    runs = []
    with _progress_bar(len(todo), "scoring", progress) as bar:
        for entry in todo:
            late = _not_started(entry, card, deadline)
            if late is not None:
                runs.append(late)
                bar.update(1)
                continue
            seconds, error = _score_job(entry.model, entry.weights, dataset, results, score_kwargs, scorer, wait)
            if error:
                runs.append(NotebookRun(entry.key, Path(card["output_dir"]) / f"{entry.key}.ipynb", "failed",
                                        seconds, f"scoring: {error}"))
            else:
                runs.append((entry, seconds))
            bar.set_postfix_str(f"{entry.key}: {'failed' if error else 'scored'}")
            bar.update(1)
    out = [r for r in runs if isinstance(r, NotebookRun)]
    pending = [r for r in runs if not isinstance(r, NotebookRun)]
    with _progress_bar(len(pending), "model cards", progress) as bar:
        for entry, seconds in pending:
            try:
                out.append(_render_card(entry, seconds=seconds, **card))
            except Exception as err:  # infrastructure errors (kernel died, ...)
                out.append(NotebookRun(entry.key, Path(card["output_dir"]) / f"{entry.key}.ipynb", "failed",
                                       seconds, f"card: {type(err).__name__}: {err}"))
            bar.update(1)
    return out


def _run_dask(todo, dataset, results, score_kwargs, scorer, card, progress, wait, cluster, jobs,
              deadline=None) -> list:
    """One Dask task per entry (score, then card) on ``cluster`` (see :func:`sweep_client`);
    a task whose worker dies is retried on another worker.

    Tasks are handed to the scheduler only as workers' threads free up: Dask counts a worker's
    death against every task assigned to it, so a model that kills its worker (memory) would
    otherwise fail the models queued behind it. On the local cluster a task whose worker died
    is submitted again, up to :data:`WORKER_TRIES` times in all (any other scheduler retries it
    by its own allowed-failures). On a local cluster of several workers, the models
    whose workers died on every try are run again on one worker with all the memory."""
    runs = _dask_pass(todo, dataset, results, score_kwargs, scorer, card, progress, wait, cluster, jobs, deadline)
    local = cluster in (None, "local")
    died = [r for r in runs if r.status == "failed" and r.error.startswith("KilledWorker")]
    if local and died:
        from ._cluster import local_layout

        if local_layout(len(todo), jobs)["n_workers"] > 1:
            _log.warning("%d model(s) killed their worker on every try (%s); running them again on one worker "
                         "with all the memory", len(died), ", ".join(r.name for r in died))
            again = {r.name for r in died}
            retry = _dask_pass([e for e in todo if e.key in again], dataset, results, score_kwargs, scorer, card,
                               progress, wait, cluster, 1, deadline)
            by_name = {r.name: r for r in retry}
            runs = [by_name.get(r.name, r) for r in runs]
    return runs


#: tries of a model whose worker dies while it runs (Dask's own default: 3 deaths allowed)
WORKER_TRIES = 4


def _dask_slots(client) -> int:
    """Tasks to have on the cluster at once: its worker threads (at least one)."""
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # a scheduler that does not answer now: one task at a time until it does
        return 1


def _dask_pass(todo, dataset, results, score_kwargs, scorer, card, progress, wait, cluster, jobs,
               deadline=None) -> list:
    import uuid

    from distributed import KilledWorker
    from distributed import wait as wait_futures

    from ._cluster import sweep_client

    runs = []
    # the local cluster's scheduler fails a dead worker's task at once and the sweep tries it again
    # (see sweep_client); any other scheduler has already tried it as often as its own
    # allowed-failures let it when it reports a KilledWorker
    own_retries = cluster in (None, "local")
    try:
        with sweep_client(cluster, n_tasks=len(todo), n_workers=jobs) as client:
            queue, in_flight, deaths = list(todo), {}, {}
            desc = "models" if not client.dashboard_link else f"models (dashboard {client.dashboard_link})"
            with _progress_bar(len(todo), desc, progress) as bar:
                limits = set()  # workers' memory limits seen (a worker that died is gone from the scheduler)
                while queue or in_flight:
                    slots = _dask_slots(client)
                    limits |= _memory_limits(client)
                    while queue and len(in_flight) < slots:
                        entry = queue.pop(0)
                        fut = client.submit(_model_task, entry, str(dataset), str(results), score_kwargs, scorer,
                                            card, wait, deadline, key=f"{entry.key}-{uuid.uuid4().hex[:8]}",
                                            pure=False, retries=2)
                        in_flight[fut] = entry
                    try:  # wake up now and then: a cluster that scales up gets more tasks
                        done = wait_futures(list(in_flight), timeout=10, return_when="FIRST_COMPLETED").done
                    except TimeoutError:
                        continue
                    for fut in done:
                        entry = in_flight.pop(fut)
                        try:
                            run = fut.result()
                        except Exception as err:  # the task failed on every try (worker killed each time, ...)
                            memory = None
                            if isinstance(err, KilledWorker):
                                deaths[entry.key] = deaths.get(entry.key, 0) + 1
                                memory = _memory_death(results, entry.key)
                                if memory is None and own_retries and deaths[entry.key] < WORKER_TRIES:
                                    _log.warning("the worker running %s died (%d of %d tries); trying it again",
                                                 entry.key, deaths[entry.key], WORKER_TRIES)
                                    queue.append(entry)
                                    continue
                                if memory is not None:
                                    _log.warning("the worker running %s was ended for memory (%.1f of its %.1f GiB);"
                                                 " not trying it again with as much", entry.key,
                                                 memory[0] / 2**30, memory[1] / 2**30)
                            run = NotebookRun(entry.key, Path(card["output_dir"]) / f"{entry.key}.ipynb", "failed",
                                              error=_task_error(err, limits, memory, local=own_retries))
                        runs.append(run)
                        bar.set_postfix_str(f"{entry.key}: {run.status}")
                        bar.update(1)
    except Exception as err:
        if len(runs) < len(todo):
            raise
        # every model's outcome is in: a cluster that fails to shut down (a timeout on a machine
        # short of CPU) does not undo the sweep
        why = type(err).__name__ + (f": {err}" if str(err) else "")
        warnings.warn(f"the Dask cluster did not close cleanly ({why}); every model's outcome had arrived "
                      "before", RuntimeWarning, stacklevel=2)
    return runs


def _memory_limits(client) -> set:
    """The memory limits (bytes) of the cluster's workers now."""
    try:
        return {w["memory_limit"] for w in client.scheduler_info()["workers"].values() if w.get("memory_limit")}
    except Exception:  # a scheduler that does not answer now
        return set()


#: a worker that dies while its task's last sampled peak memory is at least this fraction of the
#: worker's limit was ended for memory (Dask's nanny ends a worker past 95% of it; between two
#: samples a network's memory can grow by whole layers of all stimuli, gigabytes at once)
MEMORY_DEATH_FRACTION = 0.5


def _memory_death(results, key):
    """``(peak_bytes, limit_bytes)`` when the model's task left a memory record (its worker died
    while it ran, see :class:`_PeakMemory`) at or above :data:`MEMORY_DEATH_FRACTION` of its
    worker's limit, else None. The record is removed."""
    path = _memory_record(results, key)
    try:
        record = json.loads(path.read_text())
        path.unlink(missing_ok=True)
        peak, limit = int(record["peak_rss_bytes"]), record.get("limit_bytes")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not limit or peak < MEMORY_DEATH_FRACTION * int(limit):
        return None
    return peak, int(limit)


def _task_error(err, limits, memory=None, local=True) -> str:
    """One line for a task that failed on every try; a killed worker names the workers' memory
    limit (``limits``: bytes seen) and, when it was ended for memory, the task's last sampled
    peak (``memory``: see :func:`_memory_death`). Its advice depends on where the workers run:
    on a ``local`` cluster fewer workers have more memory each, up to all of this machine's; on a
    scheduler or batch cluster elsewhere, the workers' memory is set where they are started."""
    line = f"{type(err).__name__}: {err}"
    from distributed import KilledWorker

    if isinstance(err, KilledWorker):
        import psutil

        gib = 2**30
        if memory is not None:
            peak, limit = memory
            why = (f"its worker was ended for memory (the task's last sampled peak {peak / gib:.1f} GiB of the "
                   f"worker's memory limit {limit / gib:.1f} GiB)")
        else:
            limit = max(limits) if limits else None
            why = "the worker running it died on every try" + (
                f" (workers' memory limit {limit / gib:.1f} GiB)" if limit else "")
        if not local:
            how = ("start workers with more memory (a cluster section's memory with fewer processes, or the "
                   "scheduler's workers) or score it on fewer stimuli")
            what = (f"the model needs more memory than a worker has: {how}" if memory is not None else
                    f"if the model needs more memory than a worker has, {how}")
        elif limit and limit >= 0.9 * psutil.virtual_memory().total:
            what = ("the model needs more memory than this machine has: score it on fewer stimuli or on a larger "
                    "machine (a worker of --jobs 1 has all of it)")
        else:
            what = "a model that needs more memory than a worker has runs with fewer workers (--jobs 1)"
        line = f"KilledWorker: {why}: {what} -- {err}"
    return line


def run_sweep(config, dataset, results, book="book", notebook=None, jobs=None, models=None, progress=None,
              timeout=None, scorer=None, cluster=None, stop_after=None) -> SweepSummary:
    """Score every model of a config, and render one model card per model from its scores.

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
        Models run at once (default: config ``jobs``, else as many as the cores and memory
        allow, see :func:`~mbutils.build._cluster.local_layout`). With 1 and no ``cluster``,
        models are scored in this process (models registered with
        :func:`mbutils.models.register_model` are known only here; a parallel sweep names a
        user model ``package.module:callable``).
    models : list of ModelEntry, optional
        Override the config's model list.
    progress : bool, optional
        Progress bars (default ``mbutils.get_config().progress``).
    timeout : float, optional
        Per-cell timeout of the cards, seconds.
    scorer : callable, optional
        Writes one model's tables (see :func:`score_entry`); default
        :func:`mbutils.scoring.score_model`. On a cluster it must be importable by the workers
        (a module-level function).
    cluster : str or dict, optional
        Where the models run, each as one Dask task (score, then card): ``"local"`` (a
        LocalCluster of ``jobs`` workers; the default when ``jobs`` is not 1), a scheduler
        address ``"tcp://HOST:PORT"``, or a cluster section (default: the config's ``cluster``;
        see :func:`mbutils.build.sweep_client`).
    stop_after : float, optional
        Seconds after the start of the sweep past which no model starts (a batch job's wall
        time, a sweep in parts): the models in progress finish, the others are reported
        ``not_started`` and the next run of the same sweep scores them.

    Returns
    -------
    SweepSummary
        One :class:`NotebookRun` per model: ``done``, ``skipped`` (finished earlier),
        ``failed`` (scoring or card, with the error and, for scoring, the path of its log) or
        ``not_started`` (``stop_after`` had passed).

    Notes
    -----
    Relative paths are resolved against the working directory of the caller, once, here.
    Another sweep scoring the same model folder is waited for (up to :data:`LOCK_WAIT`), and
    its scores reused when they are of the same dataset and settings.
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
    jobs = jobs or config.jobs
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs={jobs!r}; expected a positive integer")
    if stop_after is not None and (isinstance(stop_after, bool) or not isinstance(stop_after, (int, float))
                                   or not stop_after >= 0):
        raise ValueError(f"stop_after={stop_after!r}; expected seconds, a number >= 0 (or None: no limit)")
    deadline = None if stop_after is None else time.time() + float(stop_after)
    cluster = cluster if cluster is not None else getattr(config, "cluster", None)
    dataset_sha = file_sha256(dataset)
    notebook_sha = _text_sha256(notebook.read_text())
    summary = SweepSummary()
    todo = []
    for entry in entries:
        output = output_dir / f"{entry.key}.ipynb"
        if is_finished(entry, results, output, dataset_sha, notebook_sha, config.score):
            summary.runs.append(NotebookRun(entry.key, output, "skipped"))
        else:
            todo.append(entry)
    card = dict(notebook=notebook, output_dir=output_dir, results=results, dataset=dataset,
                parameters=dict(config.parameters), config_name=config.name, timeout=timeout,
                dataset_sha=dataset_sha, notebook_sha=notebook_sha)
    score_kwargs = dict(config.score)
    serial = cluster is None and (jobs == 1 or len(todo) <= 1)
    old_env = _set_kernel_env(default_jobs() if serial else max(1, default_jobs() // (jobs or default_jobs())))
    try:
        if not todo:
            runs = []
        elif serial:
            runs = _run_serial(todo, dataset, results, score_kwargs, scorer, card, progress, LOCK_WAIT, deadline)
        else:
            runs = _run_dask(todo, dataset, results, score_kwargs, scorer, card, progress, LOCK_WAIT,
                             cluster or "local", jobs, deadline)
    finally:
        _restore_env(old_env)
    summary.runs += runs
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
