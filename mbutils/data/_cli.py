"""CLI for mbutils.data: ``mbutils data synthetic`` and ``mbutils data allen``."""
from __future__ import annotations

import argparse


def _run_synthetic(args) -> int:
    from .selection import select_neurons
    from .synthetic import make_synthetic

    if args.neurons < 1:
        raise ValueError(f"--neurons must be >= 1, got {args.neurons}")
    dataset = make_synthetic(n_neurons=args.neurons, seed=args.seed)
    path = dataset.save(args.out)
    size_mb = path.stat().st_size / 1e6
    print(f"wrote {path} ({dataset.n_neurons} neurons, {dataset.n_stimuli} stimuli, "
          f"{dataset.n_trials} trials, {size_mb:.1f} MB)")
    gt = dataset.ground_truth
    print("planted ground truth: " + ", ".join(
        f"{area} <- {info['layer']} (depth {info['depth']:.2f})" for area, info in gt["areas"].items()
    ) + f" of {gt['model']} ({gt['weights']})")
    _, report = select_neurons(dataset, threshold=args.threshold)
    print()
    print(report)
    return 0


def _allen_unavailable(reason: str):
    def run(args) -> int:
        print(f"mbutils data allen is unavailable: {reason}")
        return 1

    return run


def add_parser(subparsers) -> None:
    """Register ``mbutils data`` and its subcommands."""
    data = subparsers.add_parser("data", help="build neural dataset files (synthetic mouse, Allen)")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])

    syn = data_sub.add_parser(
        "synthetic",
        help="generate the synthetic mouse (the embedded default dataset)",
        description="Generate the synthetic mouse: Allen-like responses to 118 natural scenes + blank, "
        "with a planted ground truth (each area driven by one EfficientNet-Lite0 layer).",
    )
    syn.add_argument("--out", required=True, help="output NetCDF file, e.g. data/synthetic.nc")
    syn.add_argument("--neurons", type=int, default=5000, help="number of neurons (default 5000; Allen: 59610)")
    syn.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    syn.add_argument("--threshold", type=float, default=0.8, help="reliability threshold of the printed funnel")
    syn.set_defaults(func=_run_synthetic)

    allen_help = "build the dataset from the Allen Brain Observatory (allensdk)"
    try:
        from . import allen
    except ImportError as err:
        allen_parser = data_sub.add_parser("allen", help=allen_help + " [unavailable]")
        allen_parser.add_argument("args", nargs=argparse.REMAINDER)
        allen_parser.set_defaults(func=_allen_unavailable(f"mbutils.data.allen could not be imported ({err})"))
        return
    allen_parser = data_sub.add_parser("allen", help=allen_help)
    allen.add_allen_arguments(allen_parser)
    allen_parser.set_defaults(func=allen.run_allen)
