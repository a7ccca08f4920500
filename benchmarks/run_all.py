"""Run every benchmark in sequence: reliability, extraction, scoring (``make benchmark``).

Each benchmark runs in its own process with this interpreter; results go to
``benchmarks/results/``. Extra arguments are passed to ``bench_scoring.py`` (for example
``--skip-naive``, which spares the ~12 minutes of the straightforward pipeline, or
``--reuse-naive DIR``).

Usage::

    python benchmarks/run_all.py [--skip-naive | --reuse-naive DIR]
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS = (("reliability", ["bench_reliability.py"]),
         ("extraction", ["bench_extraction.py"]),
         ("scoring", ["bench_scoring.py"]))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    failed = []
    for name, cmd in STEPS:
        extra = argv if name == "scoring" else []
        print(f"== {name} (load average {os.getloadavg()[0]:.1f})", flush=True)
        t = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / cmd[0]), *cmd[1:], *extra])
        print(f"== {name}: exit {rc} after {time.perf_counter() - t:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
