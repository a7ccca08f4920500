"""Benchmark: what CKA and the bootstrap add to scoring a random ResNet-18.

Two settings of :func:`mbutils.scoring.score_model` on the same data, run alternately in one
process (after one warm-up run of each), ``--repeat`` times:

- ``two``: the paper's two metrics (SRP-Ridge and RSA), no bootstrap (``n_boot=0``);
- ``all``: SRP-Ridge, RSA and CKA with the default 200 bootstrap draws.

Each run extracts the features afresh (``cache=False``: the forward pass, the projections, the
RDMs and, for ``all``, the Gram matrices of CKA from the same pass over each layer), so
``total_s`` is the whole cost of scoring a model; ``scoring_s`` is the part after the
extraction (the leave-one-out ridge, RSA, CKA, the ceilings, the reliability cutoffs and the
bootstrap). Both settings score every neuron down to the reliability cutoffs of Figure 6
(``score_model``'s default). Reported: the median of each and the ratio of the medians
``all / two``.

With ``--base TREE`` (another checkout, e.g. a git worktree of an older commit) the comparison is
paired across checkouts instead: each repetition runs ``two`` in the base checkout and ``all`` in
this one, each in a fresh process (a warm-up run, then the timed one), in alternating order, and
reports the median of the paired ratios ``all (this) / two (base)``. The base runs with the
keyword arguments its ``score_model`` accepts (a checkout without ``n_boot`` has no bootstrap).

Usage::

    python benchmarks/bench_metrics.py [--dataset data/synthetic.nc] [--repeat 5]
    git worktree add /tmp/base <commit>
    python benchmarks/bench_metrics.py --base /tmp/base --repeat 5 --out benchmarks/results/metrics_cost_ab.json

Writes ``benchmarks/results/metrics_cost.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETTINGS = {"two": {"metrics": ("srp_ridge", "rsa"), "n_boot": 0},
            "all": {"metrics": ("srp_ridge", "rsa", "cka"), "n_boot": 200}}


def run_once(model, dataset, setting) -> dict:
    """One :func:`score_model` run: its wall time and the timings of its provenance."""
    import inspect

    from mbutils.scoring import score_model

    accepted = inspect.signature(score_model).parameters
    kwargs = {k: v for k, v in SETTINGS[setting].items() if k in accepted}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        score_model(model, dataset, Path(tmp) / "scores", cache=False, progress=False, **kwargs)
        wall = time.perf_counter() - t
        timings = json.loads((Path(tmp) / "scores" / "provenance.json").read_text())["timings"]
    return {"wall_s": wall, **{k: v for k, v in timings.items() if isinstance(v, float)}}


def _child(tree, setting, dataset, model) -> dict:
    """A warm-up and a timed run of one setting in a fresh process of the checkout ``tree``."""
    from mbutils.config import torch_env

    env = {**os.environ, **torch_env(), "PYTHONPATH": str(tree), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", setting, "--dataset", dataset,
                           "--model", model], env=env, capture_output=True, text=True, cwd=tree)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{tree}: {setting} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def paired(args) -> int:
    """``two`` in the base checkout against ``all`` in this one, alternating fresh processes."""
    trees = {"two": Path(args.base).resolve(), "all": HERE.parent}
    runs = {"two": [], "all": []}
    for rep in range(args.repeat):
        for name in (("two", "all") if rep % 2 == 0 else ("all", "two")):
            runs[name].append(_child(trees[name], name, args.dataset, args.model))
        print(rep, {k: {m: round(v[-1][m], 2) for m in ("total_s", "scoring_s")} for k, v in runs.items()}, flush=True)
    keys = ("total_s", "scoring_s", "extract_s")
    ratio = {k: statistics.median(a[k] / b[k] for a, b in zip(runs["all"], runs["two"])) for k in keys}
    median = {name: {k: statistics.median(r[k] for r in rs) for k in keys} for name, rs in runs.items()}
    commit = {name: subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True,
                                   text=True).stdout.strip() for name, tree in trees.items()}
    report = {"model": f"{args.model} (random)", "dataset": args.dataset, "repeat": args.repeat,
              "two": {"commit": commit["two"], **SETTINGS["two"]}, "all": {"commit": commit["all"], **SETTINGS["all"]},
              "machine": {"cpus": os.cpu_count(), "loadavg_1min": os.getloadavg()[0]}, "runs": runs,
              "median": median, "paired_ratio_all_over_two": ratio}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1, default=list))
    print(f"paired median all ({commit['all'][:7]}) / two ({commit['two'][:7]}): total x{ratio['total_s']:.2f}, "
          f"scoring step x{ratio['scoring_s']:.2f}; medians total {median['all']['total_s']:.2f} s against "
          f"{median['two']['total_s']:.2f} s; written {args.out}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default=str(HERE.parent / "data" / "synthetic.nc"))
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results" / "metrics_cost.json"))
    ap.add_argument("--base", help="another checkout: run 'two' there and 'all' here, paired (see above)")
    ap.add_argument("--child", choices=list(SETTINGS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.base:
        return paired(args)

    import mbutils
    from mbutils.models import load_model

    mbutils.set_config(progress=False)
    model = load_model(args.model, weights="random", device="cpu")
    if args.child:
        run_once(model, args.dataset, args.child)
        print(json.dumps(run_once(model, args.dataset, args.child)))
        return 0
    runs = {name: [] for name in SETTINGS}
    load = [os.getloadavg()[0]]
    for name in SETTINGS:  # warm-up (imports, compiled kernels, page cache)
        run_once(model, args.dataset, name)
    for rep in range(args.repeat):
        order = list(SETTINGS) if rep % 2 == 0 else list(SETTINGS)[::-1]
        for name in order:
            runs[name].append(run_once(model, args.dataset, name))
            print(name, rep, {k: round(v, 2) for k, v in runs[name][-1].items()}, flush=True)
        load.append(os.getloadavg()[0])
    median = {name: {k: statistics.median(r[k] for r in rs) for k in ("total_s", "scoring_s", "extract_s")}
              for name, rs in runs.items()}
    ratio = {k: median["all"][k] / median["two"][k] for k in ("total_s", "scoring_s", "extract_s")}
    report = {"model": f"{args.model} (random)", "dataset": args.dataset, "repeat": args.repeat,
              "settings": {k: {"metrics": list(v["metrics"]), "n_boot": v["n_boot"]} for k, v in SETTINGS.items()},
              "machine": {"cpus": os.cpu_count(), "loadavg_1min": load}, "runs": runs, "median": median,
              "ratio_all_over_two": ratio}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"median total: two {median['two']['total_s']:.2f} s, all {median['all']['total_s']:.2f} s "
          f"(x{ratio['total_s']:.2f}); scoring step: two {median['two']['scoring_s']:.2f} s, all "
          f"{median['all']['scoring_s']:.2f} s (x{ratio['scoring_s']:.2f}); written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
