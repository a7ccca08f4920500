"""Benchmark: scoring a random ResNet-18 at large shapes (up to 6,000 stimuli x 10,000 neurons).

For each shape ``<stimuli>x<neurons>`` a synthetic dataset is written with
:meth:`mbutils.data.NeuralDataset.from_arrays` (random 224 x 224 grayscale images; responses from
a 10-dimensional latent of the stimuli plus trial noise, 4 trials, reliable enough that every
neuron passes the 0.8 selection), then two parts run, each in its own process:

- ``forward``: the bare forward pass of the model over the same images (torch, no grad, the
  model's own input transform), in batches of ``--batch-size`` (default: all images at once, as
  :func:`mbutils.scoring.score_model` runs when RSA is among the metrics);
- ``score``: :func:`mbutils.scoring.score_model` with the paper's settings (SRP-Ridge with 4,096
  components and RSA, every layer and area; feature cache off), same batch size.

The parent samples each part's resident memory (psutil, every 0.2 s, the part and its children)
and stops it when it passes ``--max-rss-gb`` or ``--timeout``: a stopped part is reported with
the reason, and the larger shapes are not tried. The part's own peak (``ru_maxrss``) is recorded
when it finishes. The machine's load average is recorded before and after each part.

Before the shapes, ``check`` scores a small shape (``--check-shape``, default 600 x 1000) and
compares the SRP-Ridge score of three layers (first, middle, last) per neuron with scikit-learn's
``RidgeCV(alphas=[1.0])`` leave-one-out predictions on the same projected features, correlated
with ``scipy.stats.pearsonr``.

Usage::

    python benchmarks/bench_large.py                    # check, then 600x1000 ... 6000x10000
    python benchmarks/bench_large.py --check-only
    python benchmarks/bench_large.py --shapes 1500x2500,6000x10000 --max-rss-gb 12 --timeout 1800

Writes ``benchmarks/results/large.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
AREAS = ("VISp", "VISl", "VISal", "VISrl", "VISpm", "VISam")
SHAPES = "600x1000,1500x2500,3000x5000,6000x10000"
N_TRIALS, N_LATENT, NOISE_SD = 4, 10, 0.5


def parse_shapes(text):
    """``"600x1000,6000x10000"`` -> ``[(600, 1000), (6000, 10000)]`` (stimuli, neurons)."""
    out = []
    for item in str(text).split(","):
        try:
            s, n = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise SystemExit(f"shape {item!r}: expected <stimuli>x<neurons>, e.g. 6000x10000") from None
        if s < 10 or n < 6:
            raise SystemExit(f"shape {item!r}: expected at least 10 stimuli and 6 neurons")
        out.append((s, n))
    return out


def write_dataset(path, n_stimuli, n_neurons, seed=0):
    """A synthetic dataset of the given shape (see the module docstring); returns its path.

    Responses have shape (n_neurons, n_stimuli, N_TRIALS): a latent of the stimuli (n_stimuli,
    N_LATENT) times random loadings, plus Gaussian trial noise of sd NOISE_SD.
    """
    from mbutils.data import NeuralDataset

    rng = np.random.default_rng(seed)
    stimuli = rng.integers(0, 256, (n_stimuli, 224, 224), dtype=np.uint8)
    latent = rng.normal(size=(n_stimuli, N_LATENT)).astype(np.float32)
    loadings = (rng.normal(size=(N_LATENT, n_neurons)) / np.sqrt(N_LATENT)).astype(np.float32)
    signal = (latent @ loadings).T  # (n_neurons, n_stimuli)
    responses = np.empty((n_neurons, n_stimuli, N_TRIALS), dtype=np.float32)
    for t in range(N_TRIALS):
        responses[:, :, t] = signal + rng.normal(scale=NOISE_SD, size=signal.shape).astype(np.float32)
    del signal
    ds = NeuralDataset.from_arrays(
        responses, stimuli, cell_specimen_id=np.arange(n_neurons) + 1, area=np.array(AREAS)[np.arange(n_neurons) % 6],
        cre_line=np.array(["Cux2", "Emx1", "Rorb", "Slc17a7"])[np.arange(n_neurons) % 4],
        imaging_depth=175 + 100 * (np.arange(n_neurons) % 3), excitatory=np.ones(n_neurons, dtype=bool),
        p_run_mod_ns=np.ones(n_neurons), source="synthetic",
        description=f"benchmark data: random images, responses from a {N_LATENT}-dimensional latent plus noise")
    ds.save(path)
    return path


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model():
    import torch

    torch.manual_seed(0)
    from mbutils.models import load_model

    return load_model("resnet18", weights="random", device="cpu")


def _forward_batch(batch_size, metrics):
    """The forward pass's batch as :func:`mbutils.scoring.score_model` runs it: ``batch_size``
    when given, else ``ROWWISE_BATCH`` stimuli when every metric's reduction is row-wise
    (SRP-Ridge alone), else all stimuli at once (None)."""
    from mbutils.models.extraction import ROWWISE_BATCH

    if batch_size is not None:
        return batch_size
    return ROWWISE_BATCH if set(metrics) == {"srp_ridge"} else None


def part_forward(data, batch_size, metrics=("srp_ridge", "rsa")):
    """The bare forward pass over the dataset's scenes: seconds and peak RSS."""
    import torch

    from mbutils.data import NeuralDataset

    stimuli = np.asarray(NeuralDataset.load(data).scenes().stimuli.values)
    model = _model()
    n = stimuli.shape[0]
    batch_size = _forward_batch(batch_size, metrics)
    step = n if batch_size is None else batch_size
    t = time.perf_counter()
    with torch.no_grad():
        for start in range(0, n, step):
            model.module(model.transform(stimuli[start:start + step]).to(model.device))
    return {"seconds": time.perf_counter() - t, "peak_rss_mb": _peak_rss_mb(), "n_stimuli": n, "batch_size": step}


def part_score(data, batch_size, out_dir, metrics=("srp_ridge", "rsa"), n_boot=None):
    """:func:`mbutils.scoring.score_model` on the dataset: seconds, timings and peak RSS."""
    from mbutils.scoring import score_model

    model = _model()
    t = time.perf_counter()
    boot = {} if n_boot is None else {"n_boot": n_boot}
    tables = score_model(model, data, out_dir, cache=False, progress=False, batch_size=batch_size,
                         metrics=tuple(metrics), **boot)
    seconds = time.perf_counter() - t
    prov = json.loads((Path(out_dir) / "provenance.json").read_text())
    return {"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "timings": prov["timings"],
            "n_stimuli": prov["dataset"]["n_stimuli"], "n_neurons_selected": prov["dataset"]["n_neurons_selected"],
            "n_layers": prov["n_layers"], "n_scores": int(len(tables["scores"]))}


def part_check(data, out_dir, n_layers_checked=3):
    """SRP-Ridge per neuron against scikit-learn's RidgeCV leave-one-out and scipy's pearsonr."""
    import scipy.stats
    from sklearn.linear_model import RidgeCV

    from mbutils.models import extract
    from mbutils.reduction import SparseRandomProjection
    from mbutils.results import load_model_results
    from mbutils.scoring.pipeline import Targets

    from mbutils.scoring import score_model

    model = _model()
    tables = score_model(model, data, out_dir, cache=False, progress=False)
    targets = Targets.from_dataset(data)
    from mbutils.data import NeuralDataset

    stimuli = np.asarray(NeuralDataset.load(data).scenes().stimuli.values)
    fs = extract(model, stimuli, {"regression": SparseRandomProjection(4096, seed=0)}, cache=False, progress=False)
    layers = fs.layers.reset_index(drop=True)
    picks = sorted({0, len(layers) // 2, len(layers) - 1})[:n_layers_checked]
    ns = load_model_results(out_dir)["neuron_scores"]
    y = targets.y
    ids = targets.neurons["cell_specimen_id"].to_numpy()
    worst, n_compared = 0.0, 0
    per_layer = {}
    for i in picks:
        name = layers.loc[i, "name"]
        x = np.asarray(fs["regression"][i], dtype=np.float64)
        ridge = RidgeCV(alphas=[1.0], fit_intercept=True, store_cv_results=True, scoring="r2").fit(x, y)
        loo = np.asarray(ridge.cv_results_)[..., 0]  # (n_stimuli, n_neurons): leave-one-out predictions
        ref = np.array([scipy.stats.pearsonr(loo[:, j], y[:, j]).statistic for j in range(y.shape[1])])
        ours = ns[ns["layer"] == name].set_index("cell_specimen_id").loc[ids, "score"].to_numpy()
        diff = float(np.nanmax(np.abs(ours - ref)))
        per_layer[name] = {"max_abs_diff": diff, "mean_r": float(np.nanmean(ref))}
        worst = max(worst, diff)
        n_compared += int(np.isfinite(ref).sum())
    return {"max_abs_diff": worst, "n_compared": n_compared, "layers": per_layer, "n_stimuli": int(y.shape[0]),
            "n_neurons": int(y.shape[1]), "n_scores": int(len(tables["scores"]))}


def run_part(name, args_list, max_rss_gb, timeout):
    """Run ``bench_large.py --part ...`` in a child process, sampling its memory."""
    import psutil

    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        result_path = f.name
    cmd = [sys.executable, __file__, "--part", name, "--result", result_path, *args_list]
    load_before = os.getloadavg()
    t = time.perf_counter()
    proc = subprocess.Popen(cmd)
    ps = psutil.Process(proc.pid)
    peak, reason = 0, None
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
        except psutil.Error:
            rss = 0
        peak = max(peak, rss)
        if rss > max_rss_gb * 2**30:
            reason = f"stopped: resident memory passed {max_rss_gb} GB"
        elif time.perf_counter() - t > timeout:
            reason = f"stopped: ran past {timeout} s"
        if reason:
            proc.kill()
            proc.wait()
            break
        time.sleep(0.2)
    out = {"status": "done" if proc.returncode == 0 else (reason or f"failed (exit {proc.returncode})"),
           "wall_seconds": time.perf_counter() - t, "sampled_peak_rss_mb": peak / 2**20,
           "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    if proc.returncode == 0:
        out.update(json.loads(Path(result_path).read_text()))
    Path(result_path).unlink(missing_ok=True)
    return out


def child(args):
    import mbutils

    mbutils.set_config(progress=False)
    batch = args.batch_size
    metrics = args.metrics.split(",")
    if args.part == "forward":
        res = part_forward(args.data, batch, metrics)
    elif args.part == "score":
        with tempfile.TemporaryDirectory() as tmp:
            res = part_score(args.data, batch, Path(tmp) / "scores", metrics, args.n_boot)
    elif args.part == "check":
        with tempfile.TemporaryDirectory() as tmp:
            res = part_check(args.data, Path(tmp) / "scores")
    elif args.part == "write":
        s, n = parse_shapes(args.shape)[0]
        write_dataset(args.data, s, n)
        res = {"peak_rss_mb": _peak_rss_mb()}
    else:
        raise SystemExit(f"unknown part {args.part!r}")
    Path(args.result).write_text(json.dumps(res))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default=SHAPES, help=f"comma-separated <stimuli>x<neurons> (default {SHAPES})")
    ap.add_argument("--check-shape", default="600x1000", help="shape of the scikit-learn check")
    ap.add_argument("--check-only", action="store_true", help="run the check only")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="forward pass batch (default: as score_model runs, see _forward_batch)")
    ap.add_argument("--metrics", default="srp_ridge,rsa", help="metrics of the score part (default srp_ridge,rsa)")
    ap.add_argument("--n-boot", type=int, default=None, help="bootstrap draws of the score part (default: "
                    "score_model's)")
    ap.add_argument("--max-rss-gb", type=float, default=12.0, help="stop a part past this resident memory")
    ap.add_argument("--timeout", type=float, default=1800.0, help="stop a part past this many seconds")
    ap.add_argument("--out", default=str(HERE / "results" / "large.json"))
    ap.add_argument("--part", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--shape", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part:
        return child(args)

    batch = [] if args.batch_size is None else ["--batch-size", str(args.batch_size)]
    batch += ["--metrics", args.metrics] + ([] if args.n_boot is None else ["--n-boot", str(args.n_boot)])
    report = {"machine": {"cpus": os.cpu_count(), "threads": os.environ.get("OMP_NUM_THREADS")},
              "metrics": args.metrics.split(","), "n_boot": args.n_boot, "batch_size": args.batch_size, "max_rss_gb": args.max_rss_gb, "timeout_s": args.timeout,
              "shapes": []}
    with tempfile.TemporaryDirectory(prefix="bench-large-") as tmp:
        s, n = parse_shapes(args.check_shape)[0]
        data = str(Path(tmp) / f"check_{s}x{n}.nc")
        write = run_part("write", ["--data", data, "--shape", args.check_shape], args.max_rss_gb, args.timeout)
        check = run_part("check", ["--data", data], args.max_rss_gb, args.timeout) if write["status"] == "done" \
            else write
        report["check"] = check
        print(f"check {s}x{n}: {check['status']}; SRP-Ridge against RidgeCV leave-one-out + pearsonr: "
              f"max |difference| {check.get('max_abs_diff', float('nan')):.2e} over {check.get('n_compared', 0)} "
              "neuron scores", flush=True)
        if not args.check_only:
            for s, n in parse_shapes(args.shapes):
                shape = f"{s}x{n}"
                data = str(Path(tmp) / f"data_{shape}.nc")
                row = {"n_stimuli": s, "n_neurons": n,
                       "write": run_part("write", ["--data", data, "--shape", shape], args.max_rss_gb, args.timeout)}
                if row["write"]["status"] == "done":
                    row["forward"] = run_part("forward", ["--data", data, *batch], args.max_rss_gb, args.timeout)
                    row["score"] = run_part("score", ["--data", data, *batch], args.max_rss_gb, args.timeout)
                Path(data).unlink(missing_ok=True)
                report["shapes"].append(row)
                parts = {k: row.get(k, {}) for k in ("forward", "score")}
                print(f"{shape}: " + "; ".join(
                    f"{k} {p.get('status', 'not run')} {p.get('seconds', float('nan')):.1f} s "
                    f"{p.get('peak_rss_mb', p.get('sampled_peak_rss_mb', float('nan'))):.0f} MB"
                    for k, p in parts.items()) + f"; load {row['write']['loadavg_before']}", flush=True)
                if any(p.get("status") != "done" for p in (row["write"], *parts.values())):
                    break
    done = [r for r in report["shapes"] if r.get("score", {}).get("status") == "done"]
    report["largest_done"] = f"{done[-1]['n_stimuli']}x{done[-1]['n_neurons']}" if done else None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"largest shape scored: {report['largest_done']}; written {args.out}")


if __name__ == "__main__":
    main()
