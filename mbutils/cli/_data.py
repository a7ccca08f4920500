"""``mbutils data synthetic``, ``allen``, ``sensorium`` and ``stringer``: build neural dataset files."""
from __future__ import annotations

import argparse
import sys

_RAW = argparse.RawDescriptionHelpFormatter


def _run_synthetic(args) -> int:
    from ..data.selection import select_neurons
    from ..data.synthetic import make_synthetic

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
        print(f"mbutils data allen: unavailable: {reason}", file=sys.stderr)
        return 1

    return run


def _add_published_readers(data_sub, parents) -> None:
    """Register ``mbutils data sensorium`` and ``mbutils data stringer`` (readers of published files)."""
    from ..data import _sensorium, _stringer

    sens = data_sub.add_parser(
        "sensorium", help="read Sensorium 2022 recordings (static natural images, mouse V1)", parents=parents,
        formatter_class=_RAW,
        description="Read Sensorium 2022 recording folders (unzipped from gin.g-node.org/cajal/Sensorium2022)\n"
                    "into a dataset file: one stimulus per image id, its presentations as trials, the neurons\n"
                    "of several animals side by side (NaN where an animal did not see an image).\n"
                    "Layout and conversions: docs/datasets_more.md.",
        epilog="examples:\n"
               "  mbutils data sensorium --path static26872-17-20-GrayImageNet-94c6ff995dac583098847cfecd43e7b6 "
               "--out data/sensorium.nc\n"
               "  mbutils data sensorium --path DIR1 --path DIR2 --tiers test --out data/sensorium_test.nc")
    _sensorium.add_sensorium_arguments(sens)
    sens.set_defaults(func=_sensorium.run_sensorium)

    strg = data_sub.add_parser(
        "stringer", help="read a Stringer et al. 2019 natimg2800 recording", parents=parents,
        formatter_class=_RAW,
        description="Read one recording of Stringer, Pachitariu et al. 2019 (2,800 natural images shown twice,\n"
                    "published on figshare) and its images file into a dataset file.\n"
                    "Layout and conversions: docs/datasets_more.md.",
        epilog="examples:\n"
               "  mbutils data stringer --path natimg2800_M170714_MP032_2017-09-14.mat "
               "--images images_natimg2800_all.mat --out data/stringer.nc")
    _stringer.add_stringer_arguments(strg)
    strg.set_defaults(func=_stringer.run_stringer)


def _add_neuropixels_parser(data_sub) -> None:
    """Register ``mbutils data neuropixels`` (Visual Coding Neuropixels, natural scenes)."""
    from ..data import neuropixels
    from . import _global_options_parser

    parser = data_sub.add_parser(
        "neuropixels", help="build the dataset from the Allen Visual Coding Neuropixels data",
        formatter_class=_RAW, parents=[_global_options_parser(exclude=["--no-progress"])],
        description="Build the dataset from the Allen Brain Observatory Visual Coding Neuropixels data\n"
                    "(brain_observatory_1.1 sessions, natural scenes) with allensdk: spike counts per unit in a\n"
                    "window after each onset. An interrupted build resumes; --offline makes no network call.",
        epilog="examples:\n"
               "  mbutils data neuropixels --cache ~/np_cache --out data/neuropixels.nc\n"
               "  mbutils data neuropixels --cache ~/np_cache --out data/lgd.nc --areas LGd LP --window 0.05 0.3")
    neuropixels.add_neuropixels_arguments(parser)
    parser.set_defaults(func=neuropixels.run_neuropixels)


def add_parser(subparsers, parents) -> None:
    """Register ``mbutils data`` and its subcommands.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level ``add_subparsers()`` object.
    parents : list of argparse.ArgumentParser
        Parsers holding the global options, given to every parser created here.
    """
    data = subparsers.add_parser(
        "data", help="build dataset files (synthetic, Allen, Sensorium, ...)", parents=parents, formatter_class=_RAW,
        description="Build a neural dataset file (NetCDF, schema in docs/dataset.md).",
        epilog="examples:\n"
               "  mbutils data synthetic --out data/synthetic.nc\n"
               "  mbutils data allen --cache ~/allen_cache --out data/allen.nc\n"
               "  mbutils data sensorium --path static26872-17-20-GrayImageNet-94c6ff995dac583098847cfecd43e7b6 "
               "--out data/sensorium.nc\n"
               "  mbutils data stringer --path natimg2800_M170714_MP032_2017-09-14.mat "
               "--images images_natimg2800_all.mat --out data/stringer.nc")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", title="subcommands")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])

    syn = data_sub.add_parser(
        "synthetic", help="generate the synthetic mouse (the default dataset)", parents=parents,
        formatter_class=_RAW,
        description="Generate the synthetic mouse: Allen-like responses to 118 natural scenes + blank,\n"
                    "with a planted ground truth (each area driven by one EfficientNet-Lite0 layer).",
        epilog="examples:\n"
               "  mbutils data synthetic --out data/synthetic.nc\n"
               "  mbutils data synthetic --out data/small.nc --neurons 500 --seed 1")
    syn.add_argument("--out", required=True, help="output NetCDF file, e.g. data/synthetic.nc")
    syn.add_argument("--neurons", type=int, default=5000, help="number of neurons (default 5000; Allen: 59610)")
    syn.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    syn.add_argument("--threshold", type=float, default=0.8, help="reliability threshold of the printed funnel")
    syn.set_defaults(func=_run_synthetic)

    _add_neuropixels_parser(data_sub)

    _add_published_readers(data_sub, parents)

    allen_help = "build the dataset from the Allen Brain Observatory"
    allen_description = ("Build the dataset from the Allen Brain Observatory (Visual Coding two-photon,\n"
                         "natural scenes) with allensdk. An interrupted build resumes where it stopped;\n"
                         "--offline makes no network call and uses only what the cache holds.")
    allen_epilog = ("examples:\n"
                    "  mbutils data allen --cache ~/allen_cache --out data/allen.nc\n"
                    "  mbutils data allen --cache ~/allen_cache --out data/visp.nc --offline --areas VISp")
    try:
        from ..data import allen
    except ImportError as err:
        allen_parser = data_sub.add_parser("allen", help=allen_help + " [unavailable]", parents=parents,
                                           formatter_class=_RAW, description=allen_description,
                                           epilog=allen_epilog)
        allen_parser.add_argument("args", nargs=argparse.REMAINDER)
        allen_parser.set_defaults(func=_allen_unavailable(f"mbutils.data.allen could not be imported ({err})"))
        return
    from . import _global_options_parser

    # the command has its own --no-progress (same meaning as the global one)
    allen_parser = data_sub.add_parser("allen", help=allen_help, formatter_class=_RAW,
                                       parents=[_global_options_parser(exclude=["--no-progress"])],
                                       description=allen_description, epilog=allen_epilog)
    allen.add_allen_arguments(allen_parser)
    allen_parser.set_defaults(func=allen.run_allen)
