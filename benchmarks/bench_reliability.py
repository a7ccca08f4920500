"""Benchmark: split-half reliability of Allen-sized data (60,000 neurons x 119 stimuli x 50 trials).

Run: ``.venv/bin/python benchmarks/bench_reliability.py [--neurons N] [--splits K]``.
Prints the wall time and throughput. The data are random (float32, 1.4 GB for 60,000 neurons),
generated in place; reliability itself works in chunks of 2,048 neurons.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from mbutils.reliability import splithalf_reliability


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=60_000)
    parser.add_argument("--stimuli", type=int, default=119)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--splits", type=int, default=10)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    shape = (args.neurons, args.stimuli, args.trials)
    responses = np.empty(shape, dtype=np.float32)
    for start in range(0, args.neurons, 5000):
        block = responses[start : start + 5000]
        rng.standard_normal(block.shape, dtype=np.float32, out=block)
        block += rng.standard_normal((block.shape[0], args.stimuli, 1), dtype=np.float32)
    t0 = time.perf_counter()
    rel = splithalf_reliability(responses, n_splits=args.splits, seed=0, progress=False)
    elapsed = time.perf_counter() - t0
    print(
        f"splithalf_reliability: {args.neurons:,} neurons x {args.stimuli} stimuli x {args.trials} trials, "
        f"{args.splits} splits: {elapsed:.2f} s ({args.neurons / elapsed:,.0f} neurons/s); "
        f"median reliability {np.median(rel):.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
