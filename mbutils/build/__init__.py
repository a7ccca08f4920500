"""The build wing: sweeps over models, the book, its table of contents and browser check.

Data flows one way: :func:`run_sweep` scores every model of a config (each in a worker
process) into a results folder, then renders one model card per model from the stored
scores; :func:`run_sections` executes the book's pages on those results; :func:`build_book`
does both, assembles the book folder and renders the HTML with jupyter-book. Nothing here is
called back by the notebooks it runs.

Every path is resolved against the caller's working directory; the notebooks
(:data:`NOTEBOOKS`), sweep configs (:data:`CONFIGS`) and the book's static files
(:data:`SITE`) ship with the package, so a build works outside a source checkout.

- :func:`load_config`, :func:`validate_config`, :class:`SweepConfig`, :class:`ModelEntry`
- :func:`run_sweep`, :func:`score_entry`, :func:`run_sections`, :func:`is_finished`
- :func:`run_notebook`, :func:`notebook_parameters`, :class:`NotebookRun`, :class:`SweepSummary`
- :func:`build_book`, :class:`BookResult`, :func:`ensure_dataset`, :func:`write_toc`,
  :func:`jupyter_book_build`, :func:`check_book`, :func:`find_chromium`

Examples
--------
>>> from mbutils.build import build_book
>>> result = build_book("smoke", "data/synthetic.nc", "results/smoke", book="book")  # doctest: +SKIP
>>> result.html                                                                       # doctest: +SKIP
"""
from ._book import DEFAULT_DATASET, SITE, BookResult, build_book, ensure_dataset, jupyter_book_build, write_toc
from ._browser import BrowserReport, check_book, find_chromium
from ._cluster import CLUSTER_TYPES, job_script, local_layout, sweep_client
from ._config import CONFIGS, ModelEntry, SweepConfig, default_jobs, load_config, resolve_models, validate_config
from ._notebooks import NOTEBOOKS, NotebookRun, SweepSummary, notebook_parameters, run_notebook, section_notebooks
from ._sweep import is_finished, run_sections, run_sweep, score_entry

__all__ = [
    "BookResult",
    "BrowserReport",
    "CLUSTER_TYPES",
    "CONFIGS",
    "DEFAULT_DATASET",
    "ModelEntry",
    "NOTEBOOKS",
    "NotebookRun",
    "SITE",
    "SweepConfig",
    "SweepSummary",
    "build_book",
    "check_book",
    "default_jobs",
    "ensure_dataset",
    "find_chromium",
    "is_finished",
    "job_script",
    "jupyter_book_build",
    "load_config",
    "local_layout",
    "notebook_parameters",
    "resolve_models",
    "run_notebook",
    "run_sections",
    "run_sweep",
    "score_entry",
    "section_notebooks",
    "sweep_client",
    "validate_config",
    "write_toc",
]
