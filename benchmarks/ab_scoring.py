"""A/B benchmark: the scoring benchmark's ``ours`` part for two checkouts, alternating in fresh processes.

Each repetition runs ``bench_scoring.py --child ours`` (ResNet-18, 118 stimuli, 6,619 neurons; a
first and a warm run in one process) for the base checkout and for this one, in alternating order,
and the bare forward pass after them; the ratios are paired within each repetition, so a slow phase
of the machine moves both sides. Both checkouts run with this checkout's environment.

Usage::

    git worktree add /tmp/base <commit>
    python benchmarks/ab_scoring.py --base /tmp/base --repeat 5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _run(tree: Path, part: str, out: Path) -> dict:
    from mbutils.config import torch_env

    env = {**os.environ, **torch_env(), "PYTHONPATH": str(tree), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(tree / "benchmarks" / "bench_scoring.py"), "--child", part,
                           "--out", str(out)], env=env, capture_output=True, text=True, cwd=tree)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{tree}: part {part} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the other checkout (e.g. a git worktree of the base commit)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results" / "ab_scoring.json"))
    args = ap.parse_args(argv)
    trees = {"base": Path(args.base).resolve(), "this": HERE.parent}
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "mbutils-ab.npz"
    for name, tree in trees.items():  # warm-up: numba compiles into each checkout's cache
        _run(tree, "ours", tmp)
    res = {"base": [], "this": [], "forward": []}
    for rep in range(args.repeat):
        for name in (("base", "this") if rep % 2 == 0 else ("this", "base")):
            res[name].append(_run(trees[name], "ours", tmp))
        res["forward"].append(_run(trees["this"], "forward", tmp))
        print(rep, {k: round(v[-1]["seconds"], 2) for k, v in res.items()}, flush=True)
    med = statistics.median
    summary = {
        "base_commit": subprocess.run(["git", "-C", str(trees["base"]), "rev-parse", "HEAD"], capture_output=True,
                                      text=True).stdout.strip(),
        "this_commit": subprocess.run(["git", "-C", str(trees["this"]), "rev-parse", "HEAD"], capture_output=True,
                                      text=True).stdout.strip(),
        "this_over_base_first_paired_median": med(t["seconds"] / b["seconds"] for b, t in zip(res["base"], res["this"])),
        "this_over_base_warm_paired_median": med(t["warm_seconds"] / b["warm_seconds"]
                                                 for b, t in zip(res["base"], res["this"])),
        "this_over_forward_paired_median": med(t["seconds"] / f["seconds"] for t, f in zip(res["this"], res["forward"])),
        "base_over_forward_paired_median": med(b["seconds"] / f["seconds"] for b, f in zip(res["base"], res["forward"])),
        "runs": res,
    }
    Path(args.out).write_text(json.dumps(summary, indent=1))
    for k, v in summary.items():
        if k != "runs":
            print(k, v if isinstance(v, str) else round(v, 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
