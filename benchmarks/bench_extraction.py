"""Benchmark of streaming layer-wise extraction (run once; not part of the test suite).

1. Peak RSS while extracting every layer of a random VGG16 over 118 images (224 x 224) with a
   sparse random projection to 4096 per layer (target: < 4 GB). Measured in a child process
   (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``), so the parent's memory does not count.
2. Time of extracting every layer of a random ResNet-18 over 118 images (hooks, hand-over,
   duplicate-free layer plan including its probe pass) against the bare forward pass of the
   same module on the same input (target ratio <= 1.3). The reducer here is a no-op, so the
   ratio measures the extraction machinery; the time with the SRP reducer is reported too.

Usage: ``python benchmarks/bench_extraction.py [--threads 2]``; writes
``benchmarks/results/extraction.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

N_IMAGES = 118
SIZE = 224


def _stimuli():
    return np.random.default_rng(0).integers(0, 256, size=(N_IMAGES, SIZE, SIZE), dtype=np.uint8)


def _srp():
    try:
        from mbutils.reduction import SparseRandomProjection

        return SparseRandomProjection(n_components=4096, seed=0), "mbutils.reduction.SparseRandomProjection"
    except ImportError:  # fallback: dense Gaussian projection, chunked over features
        import torch

        class Dense:
            key = "bench-gauss-4096"

            def __call__(self, f):
                n_feat = f.shape[1]
                if n_feat <= 4096:
                    return f.numpy().copy()
                g = torch.Generator().manual_seed(n_feat)
                out = torch.zeros(f.shape[0], 4096)
                for s in range(0, n_feat, 65536):
                    blk = f[:, s:s + 65536]
                    out += blk @ torch.randn(blk.shape[1], 4096, generator=g) / 64.0
                return out.numpy()

        return Dense(), "local dense gaussian projection"


def child_vgg16(threads: int) -> dict:
    import torch

    import mbutils
    from mbutils.models import extract, load_model

    torch.set_num_threads(threads)
    mbutils.set_config(progress=False, device="cpu")
    stim = _stimuli()
    model = load_model("vgg16", weights="random", device="cpu")
    red, red_name = _srp()
    t = time.perf_counter()
    fs = extract(model, stim, {"srp": red}, cache=False)
    seconds = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"model": "vgg16", "weights": "random", "n_layers": len(fs), "seconds": seconds,
            "largest_layer_features": int(fs.layers.n_features.max()), "reducer": red_name,
            "peak_rss_gb_self": peak_kb / 1024 ** 2}


def child_resnet18(threads: int) -> dict:
    import torch

    import mbutils
    from mbutils.models import extract, load_model

    torch.set_num_threads(threads)
    mbutils.set_config(progress=False, device="cpu")
    stim = _stimuli()
    model = load_model("resnet18", weights="random", device="cpu")
    x = model._inputs(stim)
    with torch.inference_mode():
        model.module(x[:8])  # warm-up
    class Noop:
        key = "noop"

        def __call__(self, f):
            return np.zeros((f.shape[0], 0), np.float32)

    # this shared machine's speed drifts within minutes: the bare forward pass and the
    # extraction (each time a fresh model, so that the probe pass is included) alternate,
    # three runs each, and the fastest of each is kept
    bare, exts = [], []
    for _ in range(3):
        t = time.perf_counter()
        with torch.inference_mode():
            model.module(model._inputs(stim))
        bare.append(time.perf_counter() - t)
        fresh = load_model("resnet18", weights="random", device="cpu")  # layer plan not yet probed
        t = time.perf_counter()
        fs = extract(fresh, stim, {"noop": Noop()}, cache=False)
        exts.append(time.perf_counter() - t)
    ext = min(exts)
    red, red_name = _srp()
    t = time.perf_counter()
    extract(fresh, stim, {"srp": red}, cache=False)
    ext_srp = time.perf_counter() - t
    return {"model": "resnet18", "weights": "random", "n_layers": len(fs), "bare_forward_s": min(bare),
            "extract_noop_s": ext, "ratio": ext / min(bare), "all_bare_s": bare, "all_extract_noop_s": exts, "extract_srp_s": ext_srp, "reducer": red_name,
            "peak_rss_gb_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2}


def _run_child(which: str, threads: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    from mbutils.config import torch_env

    # the environment that the mbutils command and the notebook sweep give torch
    env = {**os.environ, **torch_env()}
    out = subprocess.run([sys.executable, __file__, "--child", which, "--threads", str(threads)],
                         check=True, capture_output=True, text=True, env=env)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["peak_rss_gb_children"] = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024 ** 2
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", choices=["vgg16", "resnet18"])
    args = ap.parse_args(argv)
    if args.child:
        fn = child_vgg16 if args.child == "vgg16" else child_resnet18
        print(json.dumps(fn(args.threads)))
        return 0
    load_before = os.getloadavg()
    r18 = _run_child("resnet18", args.threads)
    vgg = _run_child("vgg16", args.threads)
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": args.threads,
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                    "note": "shared 2-core machine; other engineers' jobs ran at the same time"},
        "vgg16_peak_memory": {**vgg, "target_gb": 4.0, "met": vgg["peak_rss_gb_self"] < 4.0},
        "resnet18_overhead": {**r18, "target_ratio": 1.3, "met": r18["ratio"] <= 1.3},
    }
    out = Path(__file__).parent / "results" / "extraction.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"{'measure':44s} {'value':>10s} {'target':>10s}")
    print(f"{'VGG16 random, 118 imgs, SRP: peak RSS (GB)':44s} {vgg['peak_rss_gb_self']:10.2f} {'< 4':>10s}")
    print(f"{'VGG16 extraction time (s)':44s} {vgg['seconds']:10.1f} {'':>10s}")
    print(f"{'VGG16 layers':44s} {vgg['n_layers']:10d} {'':>10s}")
    print(f"{'ResNet-18 bare forward (s)':44s} {r18['bare_forward_s']:10.2f} {'':>10s}")
    print(f"{'ResNet-18 extraction, no-op reducer (s)':44s} {r18['extract_noop_s']:10.2f} {'':>10s}")
    print(f"{'ResNet-18 extraction / bare forward':44s} {r18['ratio']:10.2f} {'<= 1.3':>10s}")
    print(f"{'ResNet-18 extraction with SRP (s)':44s} {r18['extract_srp_s']:10.2f} {'':>10s}")
    print(f"load average before/after: {load_before} / {os.getloadavg()}; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
