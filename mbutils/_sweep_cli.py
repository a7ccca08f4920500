"""CLI: ``mbutils sweep`` and ``mbutils book``."""
from __future__ import annotations

import sys


def add_parser(subparsers):
    """Register the ``sweep`` and ``book`` subcommands."""
    p = subparsers.add_parser("sweep", help="score every model of a sweep config (resumable)",
                              description="Execute the per-model notebook for every model of a config with "
                                          "papermill, in parallel; finished models are skipped.")
    p.add_argument("--config", required=True, help="sweep config YAML, e.g. configs/smoke.yml")
    p.add_argument("--dataset", default="data/synthetic.nc", help="dataset file (default: %(default)s, "
                   "generated if missing)")
    p.add_argument("--results", default=None, help="results folder (default: results/<config name>)")
    p.add_argument("--jobs", type=int, default=None, help="notebooks run at once (default: CPU count)")
    p.set_defaults(func=_sweep)

    b = subparsers.add_parser("book", help="run the sweep and the notebooks, build and check the HTML book",
                              description="Build the jupyter-book: sweep, section notebooks, _toc.yml, "
                                          "jupyter-book build, headless-browser check.")
    b.add_argument("--config", required=True, help="sweep config YAML, e.g. configs/default.yml")
    b.add_argument("--dataset", default="data/synthetic.nc", help="dataset file (default: %(default)s, "
                   "generated if missing); e.g. an Allen file from `mbutils data allen`")
    b.add_argument("--results", default=None, help="results folder (default: results/<config name>)")
    b.add_argument("--jobs", type=int, default=None, help="notebooks run at once (default: CPU count)")
    b.add_argument("--no-browser-check", action="store_true", help="skip the headless Chromium check")
    b.set_defaults(func=_book)


def _sweep(args) -> int:
    from .book import ensure_dataset
    from .sweep import load_config, run_sweep

    cfg = load_config(args.config)
    dataset = ensure_dataset(args.dataset, cfg.neurons, cfg.seed)
    summary = run_sweep(cfg, dataset, args.results or f"results/{cfg.name}", jobs=args.jobs)
    print(summary)
    if summary.failed:
        print(f"mbutils sweep: {len(summary.failed)} model(s) failed; executed notebooks with the error "
              "are kept as book/generated/models/*.failed.ipynb", file=sys.stderr)
        return 1
    return 0


def _book(args) -> int:
    from .book import build_book

    result = build_book(args.config, args.dataset, args.results, jobs=args.jobs,
                        browser_check=not args.no_browser_check)
    print("models:\n" + str(result.models))
    print("sections:\n" + str(result.sections))
    if result.browser is not None:
        print(result.browser)
    if result.browser_skipped:
        print(f"mbutils book: {result.browser_skipped}", file=sys.stderr)
    print(f"book built in {result.seconds:.0f} s: {result.html / 'index.html'}")
    if result.failed:
        names = ", ".join(r.name for r in result.failed)
        print(f"mbutils book: {len(result.failed)} notebook(s) failed: {names}", file=sys.stderr)
        return 1
    if result.browser is not None and not result.browser.ok:
        print("mbutils book: the browser check found problems (see above)", file=sys.stderr)
        return 1
    return 0
