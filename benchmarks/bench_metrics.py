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

Usage::

    python benchmarks/bench_metrics.py [--dataset data/synthetic.nc] [--repeat 5]

Writes ``benchmarks/results/metrics_cost.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETTINGS = {"two": {"metrics": ("srp_ridge", "rsa"), "n_boot": 0},
            "all": {"metrics": ("srp_ridge", "rsa", "cka"), "n_boot": 200}}


def run_once(model, dataset, setting) -> dict:
    """One :func:`score_model` run: its wall time and the timings of its provenance."""
    from mbutils.scoring import score_model

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        score_model(model, dataset, Path(tmp) / "scores", cache=False, progress=False, **SETTINGS[setting])
        wall = time.perf_counter() - t
        timings = json.loads((Path(tmp) / "scores" / "provenance.json").read_text())["timings"]
    return {"wall_s": wall, **{k: v for k, v in timings.items() if isinstance(v, float)}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default=str(HERE.parent / "data" / "synthetic.nc"))
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results" / "metrics_cost.json"))
    args = ap.parse_args(argv)

    import mbutils
    from mbutils.models import load_model

    mbutils.set_config(progress=False)
    model = load_model(args.model, weights="random", device="cpu")
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
