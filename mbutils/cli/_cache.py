"""``mbutils cache [--list] [--clear] [--stale] [--unused-days N] [--model M] [--kind K ...] [--dry-run]``."""
from __future__ import annotations

import argparse


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def _summary(df):
    import pandas as pd

    if df.empty:
        return "(nothing)"
    g = df.assign(model=df["model"].fillna("-")).groupby(["kind", "model"], sort=True)
    out = pd.DataFrame({
        "entries": g.size(), "size": g["bytes"].sum().map(_size), "stale": g["stale"].sum(),
        "last used": g["last_used"].max().dt.strftime("%Y-%m-%d %H:%M"),
    })
    return out.reset_index().to_string(index=False)


def _run(args) -> int:
    from ..caches import cache_usage, clear_cache

    filtering = args.clear or args.stale or args.unused_days is not None or args.model or args.kind
    if not args.clear:
        df = cache_usage()
        if filtering:
            df = clear_cache(kinds=args.kind, model=args.model, unused_days=args.unused_days, stale=args.stale,
                             dry_run=True)
        print(f"cache folder: {df.attrs['cache_dir']}")
        print(_summary(df) if not args.list else df.drop(columns="paths").to_string(index=False))
        print(f"{len(df)} entries, {_size(df['bytes'].sum())}, {int(df['stale'].sum())} stale"
              + ("" if filtering else "; `mbutils cache --clear --stale` removes the stale ones"))
        return 0
    removed = clear_cache(kinds=args.kind, model=args.model, unused_days=args.unused_days, stale=args.stale,
                          dry_run=args.dry_run)
    print(f"cache folder: {removed.attrs['cache_dir']}")
    print(_summary(removed) if not args.list else removed.drop(columns="paths").to_string(index=False))
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(removed)} entries, {_size(removed['bytes'].sum())}")
    return 0


def add_parser(subparsers, parents) -> None:
    """Register ``mbutils cache``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level ``add_subparsers()`` object.
    parents : list of argparse.ArgumentParser
        Parsers holding the global options.
    """
    p = subparsers.add_parser(
        "cache", help="show or prune the on-disk caches", parents=parents,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Show what mbutils keeps under its cache folder (MBUTILS_CACHE, default\n"
                    "~/.cache/mbutils: features, projection matrices, temporary files), per kind and\n"
                    "model, or remove entries with --clear. The filters combine: --clear --stale removes\n"
                    "what no run will read again; --clear --unused-days 30 what no run used for 30 days;\n"
                    "--clear alone removes everything of the kinds given.",
        epilog="examples:\n"
               "  mbutils cache\n"
               "  mbutils cache --clear --stale\n"
               "  mbutils cache --clear --unused-days 30 --dry-run\n"
               "  mbutils cache --clear --kind features --model resnet18")
    p.add_argument("--list", action="store_true", help="one line per entry instead of a summary")
    p.add_argument("--clear", action="store_true", help="remove the entries that match the filters")
    p.add_argument("--stale", action="store_true", help="only entries no run will read again")
    p.add_argument("--unused-days", type=float, default=None, metavar="N",
                   help="only entries not used for N days or more")
    p.add_argument("--model", default=None, help="only this model's feature entries")
    p.add_argument("--kind", nargs="+", default=None, choices=["features", "projections", "tmp"],
                   help="only these kinds (default all)")
    p.add_argument("--dry-run", action="store_true", help="with --clear: list, remove nothing")
    p.set_defaults(func=_run)
