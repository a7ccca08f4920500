"""The ``mbutils`` command (also ``python -m mbutils``).

Each subcommand's arguments are declared next to its code, in a private ``_cli`` module
with an ``add_parser(subparsers)`` function that sets ``func`` (called with the parsed
namespace, returning an exit code). Heavy imports happen inside ``func`` only.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# (subcommand-providing module) in the order they appear in --help
_CLI_MODULES = [
    "mbutils.data._cli",
    "mbutils.models._cli",
    "mbutils.scoring._cli",
    "mbutils._sweep_cli",
    "mbutils._cache_cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mbutils",
        description="Compare deep neural networks with mouse visual cortex (Conwell et al. 2021).",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="torch device")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _CLI_MODULES:
        importlib.import_module(mod).add_parser(sub)
    return parser


def main(argv=None) -> int:
    from .config import torch_env

    os.environ.update(torch_env())  # before a subcommand imports torch
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    from .config import set_config

    if args.no_progress:
        set_config(progress=False)
    if args.device:
        set_config(device=args.device)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as err:
        # Errors we raise on purpose carry a message for the user; no traceback needed.
        print(f"mbutils: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
