"""What the book's pages call: the dataset banner, fact tables, the area glossary.

The pages (``mbutils/notebooks/*.py``) only call functions; these are the ones that are about
presentation rather than analysis.

Examples
--------
>>> from mbutils.pages import area_glossary
>>> area_glossary().area.tolist()[:2]
['VISp', 'VISl']
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

from .constants import AREA_GLOSSARY, AREAS

__all__ = [
    "ChapterSkipped",
    "DatasetBanner",
    "header",
    "require",
    "area_glossary",
    "book_overview",
    "dataset_banner",
    "model_info_table",
    "taskonomy_tasks",
]


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
    from ._io import file_sha256
    from .results import _model_folders

    sha = file_sha256(dataset)
    folders, left_out = _model_folders(Path(results), sha) if Path(results).is_dir() else ([], [])
    scored = [f.name for f in folders]
    rows = [("sweep config", str(config)), ("dataset file", str(path)), ("dataset sha256", sha),
            ("dataset source", attrs.get("source", "unknown")), ("neurons (before selection)", f"{n_neurons:,}"),
            ("stimuli", str(n_stimuli)), ("trials per stimulus", str(n_trials)), ("areas", ", ".join(areas)),
            ("results folder", str(results)), ("models scored", f"{len(scored)}: " + ", ".join(scored)),
            ("model folders of other datasets (left out)", str(len(left_out)))]
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

    rows = [(a, *AREA_GLOSSARY[a]) for a in AREAS]
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


# --------------------------------------------------------------------------- page skeleton
class ChapterSkipped(Exception):
    """Raised by :func:`require`: the page's analysis cannot run on this run's models.

    The book's build renders the page up to the cell that raised it (with the reason) and
    counts it as done; in JupyterLab the reason is shown in one line instead of a traceback.
    """

    def _render_traceback_(self):  # IPython shows these lines instead of a traceback
        return [f"Skipped: {self}"]


def header(dataset, results):
    """The top of a results page: the run's banner (dataset, models, left-out layers).

    Parameters
    ----------
    dataset : str or pathlib.Path
        Dataset file the run was scored on.
    results : str or pathlib.Path
        Results folder of the run.

    Returns
    -------
    (run, label) : (mbutils.results.Run, dict)
        The tables of the run's models scored on ``dataset`` (:func:`mbutils.results.load_run`
        with ``dataset``; folders of other datasets are left out and counted in the banner)
        and the dataset's label (:func:`mbutils.results.dataset_label`).
    """
    from IPython.display import Markdown, display

    from .results import dataset_label, load_run
    from .stats import run_banner

    label = dataset_label(dataset)
    run = load_run(results, dataset=dataset if label["sha256"] else None)
    display(Markdown(run_banner(run, label)))
    return run, label


def require(condition, reason: str) -> None:
    """Stop the page, saying why, unless ``condition`` holds.

    Parameters
    ----------
    condition : bool
    reason : str
        Markdown: what the page needs and what this run has.

    Raises
    ------
    ChapterSkipped
        When ``condition`` is false (after displaying "**Skipped:** reason").
    """
    if condition:
        return
    from IPython.display import Markdown, display

    display(Markdown(f"**Skipped:** {reason}"))
    raise ChapterSkipped(reason)

