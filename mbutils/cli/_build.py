"""``mbutils sweep`` and ``mbutils book``: score every model of a config, build the book.

The work is done by :mod:`mbutils.build`, imported inside the command functions.
"""
from __future__ import annotations

import argparse
import sys

_RAW = argparse.RawDescriptionHelpFormatter


def _common_options(p) -> None:
    p.add_argument("--dataset", default="data/synthetic.nc",
                   help="dataset file (default: %(default)s, generated if missing); e.g. an Allen file "
                        "from `mbutils data allen`")
    p.add_argument("--results", default=None, help="results folder (default: results/<config name>)")
    p.add_argument("--book", default="book",
                   help="book folder: executed notebooks under <book>/generated (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=None,
                   help="models and notebooks run at once (default: as the cores and memory allow)")
    p.add_argument("--cluster", default=None, metavar="local|tcp://HOST:PORT",
                   help="where the models run, one Dask task each: 'local' (a Dask LocalCluster; the default "
                        "unless --jobs 1) or the address of a running Dask scheduler; a batch cluster is a "
                        "'cluster:' section of the config")


def add_parser(subparsers, parents) -> None:
    """Register the ``sweep`` and ``book`` commands.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level ``add_subparsers()`` object.
    parents : list of argparse.ArgumentParser
        Parsers holding the global options.
    """
    p = subparsers.add_parser(
        "sweep", help="score every model of a sweep config (resumable)", parents=parents, formatter_class=_RAW,
        description="Score every model of a config and execute its model card notebook, in parallel;\n"
                    "finished models are skipped.",
        epilog="examples:\n"
               "  mbutils sweep --config smoke\n"
               "  mbutils sweep --config configs/my_models.yml --dataset data/allen.nc --jobs 4\n"
               "  mbutils sweep --config smoke --cluster tcp://10.0.0.5:8786\n"
               "  mbutils sweep --config configs/slurm.yml --dry-run   # print the batch job script\n"
               "  mbutils sweep --config atlas --stop-after 230   # in parts: rerun until the exit status is 0\n\n"
               "exit status: 0 all models scored, 1 a model failed, 75 some models not started (--stop-after;\n"
               "the failed ones are retried by the next run)")
    p.add_argument("--config", required=True,
                   help="sweep config: a YAML file or the name of a packaged config (smoke, default, paper)")
    _common_options(p)
    p.add_argument("--dry-run", action="store_true",
                   help="print the models to run and, for a config with a 'cluster:' section, the batch job "
                        "script it would submit; run nothing")
    p.add_argument("--stop-after", type=_minutes, default=None, metavar="MINUTES",
                   help="start no model after this many minutes (the models in progress finish); the next "
                        "run of the same command scores the rest")
    p.set_defaults(func=_sweep)

    b = subparsers.add_parser(
        "book", help="run the sweep and notebooks, build the HTML book", parents=parents, formatter_class=_RAW,
        description="Build the jupyter-book: sweep, section notebooks, table of contents,\n"
                    "jupyter-book build, headless-browser check.",
        epilog="examples:\n"
               "  mbutils book --config smoke\n"
               "  mbutils book --config default --dataset data/allen.nc --book book_allen --no-browser-check")
    b.add_argument("--config", required=True,
                   help="sweep config: a YAML file or the name of a packaged config (smoke, default, paper)")
    _common_options(b)
    b.add_argument("--no-browser-check", action="store_true", help="skip the headless Chromium check")
    b.set_defaults(func=_book)


def _sweep(args) -> int:
    from ..build import ensure_dataset, load_config, run_sweep

    cfg = load_config(args.config)
    if args.dry_run:
        return _dry_run(cfg, args)
    dataset = ensure_dataset(args.dataset, cfg.neurons, cfg.seed)
    summary = run_sweep(cfg, dataset, args.results or f"results/{cfg.name}", book=args.book, jobs=args.jobs,
                        cluster=args.cluster, stop_after=None if args.stop_after is None else 60.0 * args.stop_after)
    print(summary)
    if summary.failed:
        print(f"mbutils sweep: {len(summary.failed)} model(s) failed; executed notebooks with the error "
              f"are kept as {args.book}/generated/models/*.failed.ipynb", file=sys.stderr)
    if summary.not_started:
        # a part of a sweep in parts: the next part also retries the failed models, and the last part
        # exits 1 if any still fail
        print(f"mbutils sweep: {len(summary.not_started)} model(s) not started after --stop-after "
              f"{args.stop_after:g} min; run the same command again to score them", file=sys.stderr)
        return EXIT_NOT_STARTED
    return 1 if summary.failed else 0


#: exit status of a sweep that stopped starting models at ``--stop-after`` (EX_TEMPFAIL: try again)
EXIT_NOT_STARTED = 75


def _minutes(text: str) -> float:
    """``--stop-after`` value: minutes, a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected minutes, a number >= 0 (e.g. 230)")
    return value


def _dry_run(cfg, args) -> int:
    from ..build import resolve_models
    from ..build._cluster import job_script

    entries = resolve_models(cfg)
    print(f"{len(entries)} model(s) of config {cfg.name!r}: " + ", ".join(e.key for e in entries))
    where = args.cluster or ("a batch cluster" if cfg.cluster else "local")
    print(f"they would run on: {where}")
    if cfg.cluster and not args.cluster:
        print(job_script(cfg.cluster))
    return 0


def _book(args) -> int:
    from ..build import build_book, load_config

    cfg = load_config(args.config)
    result = build_book(cfg, args.dataset, args.results, book=args.book, jobs=args.jobs,
                        browser_check=not args.no_browser_check, cluster=args.cluster)
    print("models:\n" + str(result.models))
    print("sections:\n" + str(result.sections))
    if result.browser is not None:
        print(result.browser)
    if result.browser_skipped:
        print(f"mbutils book: {result.browser_skipped}", file=sys.stderr)
    where = result.html / "index.html" if result.html is not None else "no HTML"
    print(f"book built in {result.seconds:.0f} s: {where}")
    if result.failed:
        names = ", ".join(r.name for r in result.failed)
        print(f"mbutils book: {len(result.failed)} notebook(s) failed: {names}", file=sys.stderr)
        return 1
    if result.browser is not None and not result.browser.ok:
        print("mbutils book: the browser check found problems (see above)", file=sys.stderr)
        return 1
    return 0
