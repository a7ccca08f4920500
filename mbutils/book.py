"""Build the jupyter-book: sweep, section notebooks, table of contents, HTML, browser check.

:func:`build_book` is what ``make book`` (``mbutils book``) runs:

1. make sure the dataset exists (the default synthetic mouse is generated if missing);
2. :func:`mbutils.sweep.run_sweep`: one executed model card per model (resumable);
3. :func:`mbutils.sweep.run_sections`: intro, neural data, model zoo, method validation and
   every ``notebooks/results_*.py`` (cached while their inputs are unchanged);
4. :func:`write_toc`: ``_toc.yml`` listing the pages that executed;
5. ``jupyter-book build`` (v1, notebook execution off: it renders the executed notebooks);
6. :func:`mbutils._browser.check_book`: every page opened in headless Chromium.

Notebook helpers (:func:`dataset_banner`, :func:`area_glossary`, :func:`taskonomy_tasks`)
are used by the notebooks themselves.
"""
from __future__ import annotations

import dataclasses
import html
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ._io import atomic_write
from .sweep import REPO_ROOT, SweepSummary, load_config, run_sections, run_sweep

__all__ = [
    "DatasetBanner",
    "dataset_banner",
    "area_glossary",
    "model_info_table",
    "book_overview",
    "taskonomy_tasks",
    "write_toc",
    "jupyter_book_build",
    "build_book",
    "BookResult",
    "DEFAULT_DATASET",
]

DEFAULT_DATASET = Path("data/synthetic.nc")
GENERATED = Path("book/generated")


# --------------------------------------------------------------------------- notebook helpers
class DatasetBanner:
    """An admonition naming the dataset a page's results come from.

    Renders as HTML (an admonition in the book's theme) and as MyST markdown.
    """

    def __init__(self, kind: str, title: str, body: str):
        self.kind, self.title, self.body = kind, title, body

    def _repr_html_(self) -> str:
        return (f'<div class="admonition {self.kind}"><p class="admonition-title">{html.escape(self.title)}</p>'
                f"<p>{self.body}</p></div>")

    def _repr_markdown_(self) -> str:
        return f":::{{{self.kind}}} {self.title}\n{self.body}\n:::\n"

    def __str__(self) -> str:
        return f"{self.title}: {self.body}"


def _dataset_attrs(dataset):
    """(attrs, n_neurons, n_stimuli, path) of a dataset file, NeuralDataset or xarray.Dataset."""
    import xarray as xr

    path = None
    if isinstance(dataset, (str, os.PathLike)):
        path = Path(dataset)
        if not path.exists():
            raise FileNotFoundError(f"dataset {str(path)!r} not found")
        with xr.open_dataset(path) as ds:
            return dict(ds.attrs), ds.sizes.get("neuron", 0), ds.sizes.get("stimulus", 0), path
    ds = getattr(dataset, "ds", dataset)
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"dataset must be a file path, NeuralDataset or xarray.Dataset, got {type(dataset).__name__}")
    return dict(ds.attrs), ds.sizes.get("neuron", 0), ds.sizes.get("stimulus", 0), getattr(dataset, "path", None)


def dataset_banner(dataset) -> DatasetBanner:
    """The standard banner at the top of each page: which data the page's results come from.

    A synthetic mouse is named as such (a warning); the Allen data or a user's own file get a note.

    Parameters
    ----------
    dataset : str, pathlib.Path, NeuralDataset or xarray.Dataset
        Dataset in the schema of docs/dataset.md (only its attributes and sizes are read).

    Returns
    -------
    DatasetBanner
        Displayable object (HTML and markdown representations).
    """
    attrs, n_neurons, n_stimuli, path = _dataset_attrs(dataset)
    source = str(attrs.get("source", "unknown"))
    where = f" (<code>{html.escape(str(path))}</code>)" if path else ""
    size = f"{n_neurons:,} neurons, {n_stimuli} stimuli"
    desc = html.escape(str(attrs.get("description", "")))
    if source == "synthetic":
        truth = ""
        try:
            gt = json.loads(attrs.get("ground_truth", "{}"))
            if gt.get("model"):
                truth = (f" Its responses were generated from the layers of <code>{html.escape(str(gt['model']))}</code>"
                         f" ({html.escape(str(gt.get('weights', '')))}) plus noise, so these results test the "
                         "pipeline's ability to recover a planted ground truth.")
        except (TypeError, ValueError):
            pass
        return DatasetBanner(
            "warning", "Synthetic mouse: these are not real recordings",
            f"This page was computed on a <b>synthetic mouse</b>{where}: {size}. {desc}{truth} "
            "Rebuild on the Allen Brain Observatory data with "
            "<code>make book DATASET=path/to/allen.nc</code>.")
    if source == "allen":
        return DatasetBanner("note", "Allen Brain Observatory data",
                             f"This page was computed on the Allen Brain Observatory visual coding data{where}: "
                             f"{size}. {desc}")
    return DatasetBanner("note", f"Dataset: {source}",
                         f"This page was computed on a user-provided dataset (source <code>{html.escape(source)}"
                         f"</code>){where}: {size}. {desc}")


def model_info_table(model, weights):
    """One model's registry facts (name, source, class, task, parameters, weights) as a table.

    Parameters
    ----------
    model : str
        Registry name.
    weights : {"trained", "random"}

    Returns
    -------
    pandas.DataFrame
        Two columns, ``property`` and ``value``.
    """
    import pandas as pd

    from .models import get_model_info

    info = get_model_info(model)
    fields = ["name", "display_name", "source", "model_class", "task", "task_cluster", "n_parameters",
              "imagenet_top1", "input_size"]
    rows = [(f, getattr(info, f, None)) for f in fields if getattr(info, f, None) not in (None, "")]
    rows.append(("weights", weights))
    return pd.DataFrame(rows, columns=["property", "value"]).astype({"value": str})


def book_overview(dataset, results, config):
    """Facts about one build: config, dataset (source, neurons, areas), models scored.

    Parameters
    ----------
    dataset : str or pathlib.Path
        Dataset file.
    results : str or pathlib.Path
        Sweep results folder.
    config : str
        Sweep config name.

    Returns
    -------
    pandas.DataFrame
        Two columns, ``item`` and ``value``.
    """
    import pandas as pd
    import xarray as xr

    attrs, n_neurons, n_stimuli, path = _dataset_attrs(dataset)
    with xr.open_dataset(dataset) as ds:
        areas = sorted(set(ds["area"].values.tolist())) if "area" in ds.coords else []
        n_trials = ds.sizes.get("trial", 0)
    scored = sorted(p.parent.name for p in Path(results).glob("models/*/scores.parquet"))
    rows = [("sweep config", f"configs/{config}.yml"), ("dataset file", str(path)),
            ("dataset source", attrs.get("source", "unknown")), ("neurons (before selection)", f"{n_neurons:,}"),
            ("stimuli", str(n_stimuli)), ("trials per stimulus", str(n_trials)), ("areas", ", ".join(areas)),
            ("results folder", str(results)), ("models scored", f"{len(scored)}: " + ", ".join(scored))]
    return pd.DataFrame(rows, columns=["item", "value"])


def area_glossary():
    """The mouse visual areas (paper Figure 11).

    Returns
    -------
    pandas.DataFrame
        Columns ``area`` (Allen abbreviation), ``short``, ``structure``; six rows in
        hierarchy order.
    """
    import pandas as pd

    rows = [("VISp", "V1", "Primary Visual Area"), ("VISl", "LM", "Lateral Visual Area"),
            ("VISal", "AL", "Anterolateral Visual Area"), ("VISpm", "PM", "Posteromedial Visual Area"),
            ("VISrl", "RL", "Rostrolateral Visual Area"), ("VISam", "AM", "Anteromedial Visual Area")]
    return pd.DataFrame(rows, columns=["area", "short", "structure"])


def taskonomy_tasks():
    """Taskonomy tasks, their clusters and definitions (paper Figure 12).

    Returns
    -------
    pandas.DataFrame
        Columns ``task``, ``cluster``, ``definition``; 24 rows.
    """
    import pandas as pd

    rows = [
        ("Autoencoder", "2D", "Image compression and decompression"),
        ("Object Classification", "Semantic", "1000-way object classification (knowledge distillation from ImageNet)."),
        ("Scene Classification", "Semantic", "Scene Classification (knowledge distillation from MIT Places)."),
        ("Curvatures", "3D", "Magnitude of 3D principal curvatures"),
        ("Denoising", "Other", "Uncorrupted version of corrupted image."),
        ("Euclidean Depth", "3D", "Depth estimation"),
        ("Z-Buffer Depth", "3D", "Depth estimation."),
        ("Occlusion Edges", "3D", "Edges which include parts of the scene."),
        ("Texture Edges", "2D", "Edges computed from RGB only (texture edges)."),
        ("Egomotion", "Geometric", "Odometry (camera poses) given three input images."),
        ("Camera Pose (Fixated)", "Geometric", "Relative camera pose with matching optical centers."),
        ("Inpainting", "2D", "Filling in masked center of image."),
        ("Jigsaw", "Geometric", "Putting scrambled image pieces back together."),
        ("2D Keypoints", "2D", "Keypoint estimation from RGB-only (texture features)."),
        ("3D Keypoints", "3D", "3D Keypoint estimation from underlying scene 3D."),
        ("Camera Pose (Nonfixated)", "Geometric", "Relative camera pose with distinct optical centers."),
        ("Surface Normals", "Other", "Pixel-wise surface normals."),
        ("Point Matching", "Geometric", "Classifying if centers of two images match or not."),
        ("Reshading", "3D", "Reshading with new lighting placed at camera location."),
        ("Room Layout", "Geometric", "Orientation and aspect ratio of cubic room layout."),
        ("Semantic Segmentation", "Semantic", "Pixel-wise semantic labeling (via knowledge distillation from MS COCO)."),
        ("Unsupervised 2.5D Segmentation", "3D", "Segmentation (graph cut) on RGB-D-Normals-Curvature image."),
        ("Unsupervised 2D Segmentation", "2D", "Segmentation (graph cut) on RGB."),
        ("Vanishing Point", "Geometric", "Three Manhattan-world vanishing points."),
    ]
    return pd.DataFrame(rows, columns=["task", "cluster", "definition"])


# --------------------------------------------------------------------------- table of contents
_FIXED_PARTS = [("The data and the models", ["neural_data", "model_zoo", "method_validation"])]


def write_toc(path, pages, model_pages, extra_pages=("book/running",), generated=GENERATED):
    """Write a jupyter-book v1 ``_toc.yml`` for the executed pages.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``_toc.yml`` to write (atomically).
    pages : list of str
        Names of executed section notebooks (``intro``, ``neural_data``, ``results_*`` ...);
        ``intro`` becomes the root, ``results_*`` (sorted) the "Results" part.
    model_pages : list of str
        Keys ``<model>__<weights>`` of executed model cards (in order), sections of the
        "Model cards" chapter (``<generated>/model_cards.md``, written here too).
    extra_pages : sequence of str
        Static pages (paths without suffix, relative to the repository root) of a
        "Using this book" part.
    generated : str or pathlib.Path
        Folder of the executed notebooks, relative to the book root (the folder of ``path``).

    Returns
    -------
    dict
        The table of contents written.
    """
    import yaml

    generated = Path(generated).as_posix()
    pages = list(pages)
    toc = {"format": "jb-book",
           "root": f"{generated}/intro" if "intro" in pages else (extra_pages[0] if extra_pages else None),
           "parts": []}
    if toc["root"] is None:
        raise ValueError("no root page: expected an executed 'intro' notebook or a static page")
    for caption, names in _FIXED_PARTS:
        chapters = [{"file": f"{generated}/{n}"} for n in names if n in pages]
        if chapters:
            toc["parts"].append({"caption": caption, "chapters": chapters})
    results = sorted(p for p in pages if p.startswith("results_"))
    if results:
        toc["parts"].append({"caption": "Results", "chapters": [{"file": f"{generated}/{n}"} for n in results]})
    if model_pages:
        index = Path(path).parent / generated / "model_cards.md"
        lines = ["# Model cards", "",
                 "One page per scored model: its layer-by-layer SRP-Ridge and RSA profile in each area, "
                 "computed by `notebooks/model_card.py`.", ""]
        with atomic_write(index) as tmp:
            tmp.write_text("\n".join(lines) + "\n")
        toc["parts"].append({"caption": "Model cards", "chapters": [{
            "file": f"{generated}/model_cards",
            "sections": [{"file": f"{generated}/models/{k}"} for k in model_pages]}]})
    rest = [p for p in extra_pages if p != toc["root"]]
    if rest:
        toc["parts"].append({"caption": "Using this book", "chapters": [{"file": p} for p in rest]})
    with atomic_write(path) as tmp:
        tmp.write_text("# Generated by `mbutils book` (mbutils/book.py): do not edit.\n"
                       + yaml.safe_dump(toc, sort_keys=False))
    return toc


# --------------------------------------------------------------------------- building
def jupyter_book_build(toc, root=REPO_ROOT, output="book", config="_config.yml", all_pages=False):
    """Run ``jupyter-book build`` (v1) and return the HTML folder.

    Parameters
    ----------
    toc : str or pathlib.Path
        The ``_toc.yml`` to use.
    root : str or pathlib.Path
        Book source folder (the repository root).
    output : str or pathlib.Path
        ``--path-output``; the HTML lands in ``<output>/_build/html``.

    Raises
    ------
    RuntimeError
        If jupyter-book exits non-zero (its output tail is in the message).
    """
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(root), "--toc", str(toc),
           "--config", str(Path(root) / config), "--path-output", str(output)]
    if all_pages:
        cmd.append("--all")
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return Path(root) / output / "_build" / "html"


def ensure_dataset(dataset, neurons=None, seed=0) -> Path:
    """Return the dataset path; generate the synthetic mouse if the default path is missing.

    Raises
    ------
    FileNotFoundError
        A non-default dataset path that does not exist.
    """
    dataset = Path(dataset)
    if dataset.exists():
        return dataset
    if dataset != DEFAULT_DATASET and dataset.resolve() != (REPO_ROOT / DEFAULT_DATASET).resolve():
        raise FileNotFoundError(f"dataset {str(dataset)!r} not found; expected a NetCDF file in the mbutils "
                                f"schema (see README), or the default {str(DEFAULT_DATASET)!r} which is generated")
    cmd = [sys.executable, "-m", "mbutils", "data", "synthetic", "--out", str(dataset), "--seed", str(seed)]
    if neurons:
        cmd += ["--neurons", str(neurons)]
    print("generating the synthetic mouse:", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)
    return dataset


@dataclasses.dataclass
class BookResult:
    """What :func:`build_book` did."""

    html: Path | None
    models: SweepSummary
    sections: SweepSummary
    seconds: float
    browser: object = None
    #: why the browser check did not run, when it was asked for and could not
    browser_skipped: str | None = None

    @property
    def failed(self) -> list:
        return self.models.failed + self.sections.failed


def build_book(config, dataset=DEFAULT_DATASET, results=None, jobs=None, output="book", toc="_toc.yml",
               browser_check=True, progress=None) -> BookResult:
    """Run the sweep and the section notebooks, then build and check the HTML book.

    Parameters
    ----------
    config : SweepConfig or str or pathlib.Path
    dataset : str or pathlib.Path
        Dataset file; the default ``data/synthetic.nc`` is generated (with the config's
        ``neurons``) when missing.
    results : str or pathlib.Path, optional
        Results folder (default ``results/<config name>``).
    jobs : int, optional
        Parallel notebooks.
    output : str or pathlib.Path
        jupyter-book ``--path-output`` (HTML in ``<output>/_build/html``).
    toc : str or pathlib.Path
        The table of contents written and used.
    browser_check : bool
        Open every built page in headless Chromium (see :mod:`mbutils._browser`); skipped,
        and said so in ``browser_skipped``, on a machine without Chromium.

    Returns
    -------
    BookResult
        Failures are reported in ``.failed``; the book is still built from the pages that executed.
    """
    start = time.perf_counter()
    if not hasattr(config, "models"):
        config = load_config(config)
    results = Path(results or f"results/{config.name}")
    dataset = ensure_dataset(dataset, config.neurons, config.seed)
    models = run_sweep(config, dataset, results, output_dir=GENERATED / "models", jobs=jobs, progress=progress)
    sections = run_sections(config, dataset, results, output_dir=GENERATED, jobs=jobs, model_runs=models.runs,
                            progress=progress)
    write_toc(REPO_ROOT / toc, [r.name for r in sections.ok], [r.name for r in models.ok])
    html_dir = jupyter_book_build(REPO_ROOT / toc, output=output)
    result = BookResult(html_dir, models, sections, 0.0)
    if browser_check:
        from ._browser import check_book, find_chromium

        if find_chromium() is None:  # the book is built; only its check needs a browser
            result.browser_skipped = ("browser check skipped: no Chromium found (install it with "
                                      "`make browser-deps` or `apt-get install -y chromium chromium-driver`, "
                                      "or set MBUTILS_CHROMIUM)")
        else:
            result.browser = check_book(html_dir)
    result.seconds = time.perf_counter() - start
    return result
