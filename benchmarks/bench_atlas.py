"""The whole offline zoo (config ``atlas``) swept on this machine: wall time, per-model time and
peak memory, failures, and the sweep's overhead.

Runs ``python -m mbutils sweep --config atlas --cluster local`` (scores and model cards of every
variant that runs without a download) with a fresh feature cache, timing the whole process; then
reads each model folder's ``_task.json`` (the model's time in its Dask task and the task's peak
resident memory, sampled every quarter second) and ``provenance.json`` (extraction and scoring
times inside the model), and the sweep's report of failures.

The overhead is the sweep's wall time against the models' own times: ``wall * workers / sum of
task times`` (1.0: the workers were busy with models all the time; the rest is the cluster's
start, the cards and idle workers at the end). The task times are measured inside the sweep,
with the other worker running beside them, not alone.

Scoring every variant alone as well would double the hours, so ``--alone N`` measures a sample:
``N`` variants spread over the ranks of the task times (those whose task took at most
``--alone-max-s`` seconds) are scored one after another with ``python -m mbutils score --no-cache``
in fresh processes, nothing else running. Their alone times against their task times in the sweep
give the ratio by which the sum of all task times is scaled to estimate the sum of the models'
times alone; the sweep's wall time against that estimate is the overhead against scoring them
by hand, one after another (as ``bench_sweep.py`` measures it for the smoke config's models).

The whole atlas takes hours on a small machine, so it can be swept in parts: ``--folder DIR``
keeps the results and the feature cache in ``DIR`` (the sweep skips the variants already scored
there), and ``--max-minutes M`` runs the sweep with ``--stop-after M``: no variant starts after
``M`` minutes and the ones in progress finish, so no work is lost between parts. Each part's
wall time is recorded in ``DIR/sweep.json``; the summary adds them up and says how many parts the
figures come from (the end of each part, where a worker waits for the other's last variant,
counts as overhead). A part is on record from its start: one whose process was stopped with the
machine counts to its last finished variant and is named in the summary.

Usage::

    python benchmarks/bench_atlas.py [--dataset data/synthetic.nc] [--jobs 2] [--reuse DIR] [--alone N]
    python benchmarks/bench_atlas.py --folder results/atlas-bench --max-minutes 60   # one part
    python benchmarks/bench_atlas.py --folder results/atlas-bench --jobs 1           # the largest variants
    python benchmarks/bench_atlas.py --reuse results/atlas-bench --alone 6           # the figures

A part records its number of workers; the overhead adds each part's wall time times its workers.

Writes ``benchmarks/results/atlas.json``, ``atlas.csv``, ``atlas.md`` and ``atlas.png``.
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
RESULTS = ROOT / "benchmarks" / "results"


def _sweep(dataset, folder: Path, jobs: int, config="atlas", max_minutes=None) -> dict:
    env = dict(os.environ, MBUTILS_PROGRESS="0", MBUTILS_CACHE=str(folder / "cache"))
    cmd = [sys.executable, "-m", "mbutils", "sweep", "--config", config, "--dataset", str(dataset), "--results",
           str(folder / "results"), "--book", str(folder / "book"), "--cluster", "local", "--jobs", str(jobs)]
    if max_minutes is not None:
        cmd += ["--stop-after", str(max_minutes)]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    with open(folder / "sweep.out", "a") as f:
        f.write(proc.stdout + "\n--- stderr ---\n" + proc.stderr + "\n")
    return {"wall_s": wall, "jobs": jobs, "returncode": proc.returncode, "stopped_after_max_minutes": proc.returncode == 75,
            "load_before": load, "load_after": os.getloadavg()[0], "report": proc.stdout}


def _failures(report: str, status="failed") -> list:
    """The variants of a sweep's report with ``status`` (``failed``: with their reasons)."""
    out, section = [], None
    for line in report.splitlines():
        if line and not line.startswith(" "):
            section = line.split(":")[0]
        elif section == status and line.strip():
            name, _, reason = line.strip().partition(": ")
            out.append({"model": name, "reason": reason} if status == "failed" else {"model": name})
    return out


def _memory_deaths(folder: Path) -> dict:
    """``{variant: (peak GiB, worker's limit GiB)}``: the last death for memory of each variant
    that the sweeps' logs in ``folder/sweep.out`` name (``the worker running X was ended for
    memory (a of its b GiB)``)."""
    import re

    path = folder / "sweep.out"
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(r"the worker running (\S+) was ended for memory \(([\d.]+) of its ([\d.]+) GiB\)")
    return {m.group(1): (float(m.group(2)), float(m.group(3))) for m in pattern.finditer(text)}


def _table(results: Path):
    import pandas as pd

    rows = []
    for folder in sorted((results / "models").iterdir()):
        task = folder / "_task.json"
        prov = folder / "provenance.json"
        if not task.exists():
            continue
        t = json.loads(task.read_text())
        timings = json.loads(prov.read_text()).get("timings", {}) if prov.exists() else {}
        rows.append({"model": folder.name, "task_s": t["seconds"], "peak_rss_gib": t["peak_rss_bytes"] / 2**30,
                     "extraction_s": timings.get("extract_s"), "scoring_s": timings.get("scoring_s")})
    return pd.DataFrame(rows).sort_values("task_s", ascending=False).reset_index(drop=True)


def _alone_sample(table, n: int, max_s: float) -> list:
    """``n`` model keys spread evenly over the ranks of ``table`` (sorted by task time) among those
    whose task took at most ``max_s`` seconds."""
    keys = list(table.loc[table["task_s"] <= max_s].sort_values("task_s")["model"])
    if n <= 0 or not keys:
        return []
    n = min(n, len(keys))
    return [keys[round((i + 0.5) * len(keys) / n - 0.5)] for i in range(n)]


def _score_alone(dataset, results: Path, keys: list) -> list:
    """Each model of ``keys`` scored alone, one after another, in a fresh process with
    ``python -m mbutils score --no-cache``; its wall time next to its task time in the sweep."""
    rows = []
    for key in keys:
        stamp = json.loads((results / "models" / key / "_scored.json").read_text())
        task = json.loads((results / "models" / key / "_task.json").read_text())["seconds"]
        with tempfile.TemporaryDirectory(prefix="mbutils-atlas-alone-") as tmp:
            cmd = [sys.executable, "-m", "mbutils", "score", stamp["model"], "--weights", stamp["weights"],
                   "--dataset", str(dataset), "--out", str(Path(tmp) / "scores"), "--no-cache"]
            env = dict(os.environ, MBUTILS_PROGRESS="0", MBUTILS_CACHE=str(Path(tmp) / "cache"))
            load = os.getloadavg()[0]
            start = time.perf_counter()
            proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
            seconds = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        rows.append({"model": key, "alone_s": seconds, "task_s": task, "load_before": load})
        print(f"  {key}: alone {seconds:.1f} s, in the sweep {task:.1f} s", flush=True)
    return rows


def _write_parts(folder: Path, parts: list) -> None:
    tmp = folder / "sweep.json.tmp"
    tmp.write_text(json.dumps({"parts": parts}, indent=1))
    os.replace(tmp, folder / "sweep.json")


def _close_part(part: dict, results: Path) -> dict:
    """A part without its wall time (interrupted with its process) gets the time from its start
    to the last model it finished (a lower bound), and is marked ``interrupted``."""
    if part.get("wall_s") is not None:
        return part
    ends = [t.stat().st_mtime for t in results.glob("models/*/_task.json") if t.stat().st_mtime >= part["started_at"]]
    return dict(part, wall_s=max(ends) - part["started_at"] if ends else 0.0, interrupted=True,
                load_before=part.get("load_before"), load_after=part.get("load_after"))


def _to_last_scored(part: dict, results: Path) -> float:
    """Seconds from a part's start to the end of the last variant it scored (its wall time less
    the deaths and retries of variants that were not scored after it)."""
    if part.get("started_at") is None:
        return float(part["wall_s"])
    start, end = part["started_at"], part["started_at"] + float(part["wall_s"])
    ends = [m for m in (t.stat().st_mtime for t in results.glob("models/*/_task.json")) if start <= m <= end]
    if not ends:
        return float(part["wall_s"])
    return min(float(part["wall_s"]), max(ends) - part["started_at"])


def _parts(folder: Path) -> list:
    """The parts swept into ``folder`` so far (``sweep.json``; a single run's record is one part)."""
    path = folder / "sweep.json"
    if not path.exists():
        return []
    record = json.loads(path.read_text())
    return record["parts"] if "parts" in record else [record]


def _figure(table, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, max(4, 0.14 * len(table))), sharey=True)
    y = range(len(table))
    ax[0].barh(y, table["task_s"], color="tab:blue")
    ax[0].set_xlabel("seconds in its task (extraction, scoring, writing)")
    ax[1].barh(y, table["peak_rss_gib"], color="tab:orange")
    ax[1].set_xlabel("peak resident memory of its worker (GiB)")
    ax[0].set_yticks(list(y))
    ax[0].set_yticklabels(table["model"], fontsize=6)
    ax[0].invert_yaxis()
    fig.suptitle("The offline zoo (config atlas) on this machine")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=str(ROOT / "data" / "synthetic.nc"))
    ap.add_argument("--jobs", type=int, default=2, help="Dask workers (default 2)")
    ap.add_argument("--reuse", default=None, help="a folder of an earlier run (its results/ and sweep.json)")
    ap.add_argument("--folder", default=None, help="keep results and cache here and sweep what is not scored yet")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop the sweep after this many minutes")
    ap.add_argument("--alone", type=int, default=0, metavar="N",
                    help="score a sample of N variants alone to estimate the overhead against scoring by hand")
    ap.add_argument("--alone-max-s", type=float, default=600.0,
                    help="sample only variants whose task took at most this many seconds (default 600)")
    ap.add_argument("--config", default="atlas", help=argparse.SUPPRESS)  # (the tests sweep a small config)
    ap.add_argument("--out", default=str(RESULTS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    out_dir = Path(args.out)

    if args.reuse:
        folder = Path(args.reuse)
        parts = _parts(folder)
    else:
        folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="mbutils-atlas-"))
        folder.mkdir(parents=True, exist_ok=True)
        parts = _parts(folder) if args.folder else []
        print(f"sweeping the {args.config} config into {folder} ...", flush=True)
        # a part that never ends (the machine stopped) stays on record with its start
        _write_parts(folder, parts + [{"started_at": time.time(), "wall_s": None, "jobs": args.jobs, "report": ""}])
        started = time.time()
        parts.append(dict(_sweep(Path(args.dataset).resolve(), folder, args.jobs, args.config, args.max_minutes),
                          started_at=started))
        _write_parts(folder, parts)
    parts = [_close_part(p, folder / "results") for p in parts]
    if parts and parts[-1].get("started_at") is None and (folder / "sweep.json").exists():
        # a record written before parts kept their start: sweep.json was written as the last part ended
        parts[-1] = dict(parts[-1], started_at=(folder / "sweep.json").stat().st_mtime - parts[-1]["wall_s"])
    sweep = parts[-1]
    table = _table(folder / "results")
    scored = set(table["model"]) if len(table) else set()
    # each part's failures that no later part scored (the last reason of each)
    failures = list({f["model"]: f for p in parts for f in _failures(p.get("report", ""))
                     if f["model"] not in scored}.values())
    unstarted = [r["model"] for r in _failures(sweep["report"], "not_started")]
    deaths = _memory_deaths(folder)
    total_task = float(table["task_s"].sum()) if len(table) else 0.0
    wall = float(sum(p["wall_s"] for p in parts))
    lasts = [_to_last_scored(p, folder / "results") for p in parts]  # each part's time to its last scored
    to_last = float(sum(lasts))
    finished = sweep.get("returncode") == 0 or (sweep.get("returncode") == 1 and bool(failures))
    killed = [i + 1 for i, p in enumerate(parts) if p.get("returncode") in (-15, 143) or p.get("interrupted")]
    killed_line = [f"- part(s) {', '.join(map(str, killed))} ended by a signal: the variants in progress then "
                   "were scored again in a later part (the wall time of a part that left no record is counted "
                   "to its last finished variant)"] if killed else []
    alone = []
    if args.alone:  # (a sample of the variants scored so far, when the record is not finished)
        keys = _alone_sample(table, args.alone, args.alone_max_s)
        print(f"scoring {len(keys)} variants alone ...", flush=True)
        alone = _score_alone(Path(args.dataset).resolve(), folder / "results", keys)
    alone_ratio = sum(r["alone_s"] for r in alone) / sum(r["task_s"] for r in alone) if alone else None
    # worker time: each part's wall time times its workers (parts before the record kept them: 2)
    worker_s = float(sum(p["wall_s"] * p.get("jobs", 2) for p in parts))
    workers = sorted({p.get("jobs", 2) for p in parts})
    summary = {
        "dataset": args.dataset, "jobs": workers, "cpus": os.cpu_count(), "wall_s": wall, "parts": len(parts),
        "parts_ended_by_signal": killed, "finished": finished, "models_scored": int(len(table)),
        "failures": failures, "not_started": unstarted, "sum_task_s": total_task,
        "memory_deaths": {k: {"peak_gib": v[0], "limit_gib": v[1]} for k, v in deaths.items()},
        "overhead": worker_s / total_task if total_task else None,
        "wall_to_last_scored_s": to_last,
        "overhead_to_last_scored": float(sum(t * p.get("jobs", 2) for t, p in zip(lasts, parts))) / total_task
        if total_task else None,
        "peak_rss_gib_max": float(table["peak_rss_gib"].max()) if len(table) else None,
        "alone_sample": alone, "alone_over_task": alone_ratio,
        "sum_alone_s_estimated": total_task * alone_ratio if alone_ratio else None,
        "overhead_vs_alone_estimated": wall / (total_task * alone_ratio) if alone_ratio else None,
        "overhead_to_last_scored_vs_alone_estimated": to_last / (total_task * alone_ratio) if alone_ratio else None,
        "load_before": sweep["load_before"], "load_after": sweep["load_after"], "folder": str(folder),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "atlas.json").write_text(json.dumps(summary, indent=1))
    if not len(table):
        print(f"no variant scored yet in {folder}")
        return 0
    table.to_csv(out_dir / "atlas.csv", index=False)
    _figure(table, out_dir / "atlas.png")
    if sweep.get("returncode") == 75 or sweep.get("stopped_after_max_minutes"):
        state = " (stopped at --max-minutes: not the whole config yet)"
    elif sweep.get("interrupted"):
        state = " (the last part was interrupted: not the whole config yet)"
    elif not finished:
        state = f" (the sweep's last part exited with status {sweep.get('returncode')}: see {folder / 'sweep.out'})"
    else:
        state = ""
    header = "| model | task s | peak GiB | extraction s | scoring s |"
    lines = [f"# The offline zoo on this machine ({' or '.join(map(str, workers))} Dask workers, "
             f"{os.cpu_count()} cores)", "",
             f"- wall time {wall / 60:.1f} min in {len(parts)} part(s) for {len(table)} variants scored "
             f"(scores and model cards){state}; {len(failures)} failed"
             + (f", {len(unstarted)} not started" if unstarted else ""),
             f"- sum of the models' task times {total_task / 60:.1f} min; overhead (wall x workers, part by part / sum) "
             f"{summary['overhead']:.2f}",
             f"- the last variant scored ended {to_last / 60:.1f} min into the sweep (overhead to then "
             f"{summary['overhead_to_last_scored']:.2f}); the rest of the wall time went to variants that were not "
             "scored (deaths for memory, their retries on one worker)",
             *([f"- {len(alone)} variants scored alone (`mbutils score`, one after another) took "
                f"{alone_ratio:.2f}x their task times in the sweep; by that ratio the models alone would take "
                f"{summary['sum_alone_s_estimated'] / 60:.1f} min, and the sweep's wall time is "
                f"{summary['overhead_vs_alone_estimated']:.2f}x that, its time to the last variant scored "
                f"{summary['overhead_to_last_scored_vs_alone_estimated']:.2f}x (an estimate from the sample: "
                + ", ".join(f"{r['model']} {r['alone_s']:.0f} s alone, {r['task_s']:.0f} s in the sweep"
                            for r in alone) + ")"] if alone else []),
             f"- largest peak memory of a task {summary['peak_rss_gib_max']:.2f} GiB", *killed_line, "",
             header, "|---|---|---|---|---|"]
    lines += [f"| {r.model} | {r.task_s:.1f} | {r.peak_rss_gib:.2f} | {r.extraction_s or float('nan'):.1f} | "
              f"{r.scoring_s or float('nan'):.1f} |" for r in table.itertuples()]
    if failures:
        lines += ["", "Failures:", ""] + [f"- {f['model']}: {f['reason']}" for f in failures]
    if unstarted:
        lines += ["", f"Not started before the last part's --max-minutes ({len(unstarted)}): "
                  + ", ".join(f"{k} (its worker was ended for memory at {deaths[k][0]:.1f} of its {deaths[k][1]:.1f} "
                              "GiB)" if k in deaths else k for k in unstarted)]
    (out_dir / "atlas.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:lines.index(header)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
