"""``mbutils models [--available] [--source S] [--csv]``: list the model zoo."""
from __future__ import annotations

import argparse


def add_parser(subparsers, parents) -> None:
    """Register ``mbutils models``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level ``add_subparsers()`` object.
    parents : list of argparse.ArgumentParser
        Parsers holding the global options.
    """
    p = subparsers.add_parser(
        "models", help="list the model zoo and what can run here", parents=parents,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="List every model of the zoo (torchvision, timm, Taskonomy, EfficientNet-Lite,\n"
                    "baselines) and whether its trained/random variant can run on this machine\n"
                    "(trained weights in a local cache or a package).",
        epilog="examples:\n"
               "  mbutils models --available\n"
               "  mbutils models --source timm --csv > timm_models.csv",
    )
    p.add_argument("--available", action="store_true", help="only models with a variant that can run here")
    p.add_argument("--source", default=None,
                   help="one source: torchvision, timm, taskonomy, efficientnet_lite, baseline")
    p.add_argument("--csv", action="store_true", help="print CSV instead of a text table")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import pandas as pd

    from ..models.registry import list_models

    df = list_models(source=args.source, available=args.available)
    if df.empty:
        print("no models match")
        return 0
    out = df[["name", "source", "display_name", "model_class", "task", "task_cluster", "n_parameters",
              "imagenet_top1", "input_size"]].copy()
    out["trained"] = df.trained_available.map({True: "yes", False: "-"})
    out.loc[~df.train_types.str.contains("trained"), "trained"] = "n/a"
    out["random"] = df.random_available.map({True: "yes", False: "-"})
    out.loc[~df.train_types.str.contains("random"), "random"] = "n/a"
    if args.csv:
        print(out.to_csv(index=False), end="")
        return 0
    out["n_parameters"] = (out.n_parameters / 1e6).map(lambda v: f"{v:.1f}M")
    out["imagenet_top1"] = out.imagenet_top1.map(lambda v: "" if pd.isna(v) else f"{v:.1f}")
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 28):
        print(out.to_string(index=False))
    n_tr = int((out.trained == "yes").sum())
    print(f"\n{len(out)} models; trained weights available here for {n_tr}; "
          f"random variants need no download.")
    return 0
