"""``mbutils claims --results DIR [--dataset FILE] [--out FILE]``: the paper's claims beside a run."""
from __future__ import annotations

import argparse


def _run(args) -> int:
    from pathlib import Path

    from ..claims import claim_counts, compute_claims, write_claims
    from ..results import load_run

    results = Path(args.results)
    if not (results / "models").is_dir():
        raise ValueError(f"--results {args.results}: no models/ folder there; give the results folder of a sweep "
                         f"(e.g. results/default)")
    if args.dataset is not None and not Path(args.dataset).is_file():
        raise ValueError(f"--dataset {args.dataset}: no such file; give the dataset file the sweep scored "
                         f"(e.g. data/synthetic.nc)")
    run = load_run(results, dataset=args.dataset)
    table = compute_claims(run, args.dataset)
    out = Path(args.out) if args.out else results / "claims.csv"
    path = write_claims(table, out.parent, name=out.name)
    counts = claim_counts(table)
    print(f"{path}: " + ", ".join(f"{k} {int(v)}" for k, v in counts.items()))
    return 0


def add_parser(subparsers, parents) -> None:
    """Register ``mbutils claims``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level ``add_subparsers()`` object.
    parents : list of argparse.ArgumentParser
        Parsers holding the global options.
    """
    p = subparsers.add_parser(
        "claims", help="the paper's claims beside a sweep's values", parents=parents,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compute every quantitative claim of the paper on a sweep's score tables, with the\n"
                    "paper's tests and samples, and write the table (claim_id, section, statement,\n"
                    "paper_value, run_value, n, paper_n, status, reason) as CSV. Prints one count per\n"
                    "status: reproduced, not_reproduced, not_comparable, not_computable.",
        epilog="examples:\n"
               "  mbutils claims --results results/default --dataset data/synthetic.nc\n"
               "  mbutils claims --results results/paper --out paper_claims_run.csv")
    p.add_argument("--results", required=True, metavar="DIR", help="the sweep's results folder")
    p.add_argument("--dataset", default=None, metavar="FILE",
                   help="the dataset file the sweep scored (only its models are read)")
    p.add_argument("--out", default=None, metavar="FILE", help="where to write the CSV (default DIR/claims.csv)")
    p.set_defaults(func=_run)
