"""A sweep on Dask against its models scored one after another with `mbutils score`.

For every model of a sweep config (default: smoke), ``python -m mbutils score`` runs alone in a
fresh process, one after another; then ``python -m mbutils sweep --cluster local`` runs the same
models (scores and model cards) on a Dask LocalCluster. Each part gets a fresh, empty feature
cache, so that neither reuses the other's features. Wall times by ``time.perf_counter`` around
each process; the ratio sweep / sum of the scores is the sweep's cost against doing the models by
hand (below 1 where the workers overlap; above it by the cards and the cluster's start).

Usage::

    python benchmarks/bench_sweep.py [--config smoke] [--dataset data/synthetic.nc] [--repeat 1]

Writes ``benchmarks/results/sweep.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, env) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="smoke")
    ap.add_argument("--dataset", default="data/synthetic.nc")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sweep.json"))
    args = ap.parse_args(argv)

    from mbutils.build import load_config, resolve_models

    cfg = load_config(args.config)
    entries = resolve_models(cfg)
    py = sys.executable
    runs = []
    for rep in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="mbutils-bench-sweep-") as tmp:
            tmp = Path(tmp)
            env = dict(os.environ, MBUTILS_PROGRESS="0", MBUTILS_CACHE=str(tmp / "cache_score"))
            load = os.getloadavg()[0]
            scores = {}
            for e in entries:
                scores[e.key] = _run([py, "-m", "mbutils", "score", e.model, "--weights", e.weights, "--dataset",
                                      args.dataset, "--out", str(tmp / "score" / e.key)], env)
            env["MBUTILS_CACHE"] = str(tmp / "cache_sweep")
            sweep = _run([py, "-m", "mbutils", "sweep", "--config", args.config, "--dataset", args.dataset,
                          "--results", str(tmp / "sweep"), "--book", str(tmp / "book"), "--cluster", "local"], env)
            total = sum(scores.values())
            runs.append({"repeat": rep, "score_s": scores, "sum_score_s": total, "sweep_s": sweep,
                         "ratio": sweep / total, "load_before": load, "load_after": os.getloadavg()[0]})
            print(f"repeat {rep}: sum of {len(scores)} `mbutils score` {total:.1f} s; Dask sweep (scores and "
                  f"cards) {sweep:.1f} s; ratio {sweep / total:.3f}")
    out = {"config": args.config, "dataset": args.dataset, "models": [e.key for e in entries],
           "cpus": os.cpu_count(), "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
