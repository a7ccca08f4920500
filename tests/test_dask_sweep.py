"""The sweep on Dask: a LocalCluster gives the serial sweep's scores, survives a killed worker,
shares a results folder with a second sweep, and a batch cluster section becomes a job script."""
import json
import os
import pathlib
import threading
import time

import pandas as pd
import pytest

from mbutils.build import ModelEntry, SweepConfig, load_config, run_sweep
from mbutils.testing import make_fake_dataset

# a card that only reads the stored tables (the packaged model card takes seconds per model)
CARD = '''# %% tags=["parameters"]
model = "x"
weights = "random"
dataset = "d.nc"
scores = "s"

# %%
import pathlib
print("card of", model, sorted(p.name for p in pathlib.Path(scores).iterdir()))
'''


def counting_scorer(model, dataset, out_dir, weights="random", progress=None, **kwargs):
    """score_model, counting its calls in <results>/calls/<model>.<pid>.<time> (module level:
    Dask workers import it by name)."""
    from mbutils.scoring import score_model

    calls = pathlib.Path(out_dir).parent.parent / "calls"
    calls.mkdir(exist_ok=True)
    (calls / f"{model}.{os.getpid()}.{time.monotonic_ns()}").write_text("")
    if model == "alexnet":  # long enough for the test to kill its worker while it runs
        time.sleep(float(os.environ.get("MBUTILS_TEST_SLEEP", "0")))
    return score_model(model, dataset, out_dir, weights=weights, progress=False, n_components=256, **kwargs)


def memory_hog_scorer(model, dataset, out_dir, weights="random", progress=None, **kwargs):
    """counting_scorer, but ``gabor`` ends its worker process at once (as Dask's nanny ends a worker
    over its memory limit) unless the worker's memory limit is at least MBUTILS_TEST_HOG_FRACTION
    of the machine's memory; before it does, it plants the memory record its task's sampler would
    have written at 97% of the worker's limit (with MBUTILS_TEST_HOG_RECORD=1)."""
    import psutil
    from distributed import get_worker

    worker = get_worker()
    queued = pathlib.Path(out_dir).parent.parent / "queued"  # the tasks this worker holds, this one included
    queued.mkdir(exist_ok=True)
    held = sum(ts.state in ("ready", "constrained", "executing") for ts in worker.state.tasks.values())
    (queued / f"{model}.{os.getpid()}.{time.monotonic_ns()}").write_text(str(held))
    if model == "gabor":
        limit = worker.memory_manager.memory_limit
        if limit < float(os.environ["MBUTILS_TEST_HOG_FRACTION"]) * psutil.virtual_memory().total:
            if os.environ.get("MBUTILS_TEST_HOG_RECORD") == "1":
                from mbutils.build._sweep import _memory_record

                _memory_record(pathlib.Path(out_dir).parent.parent, "gabor__random").write_text(
                    json.dumps({"peak_rss_bytes": int(0.97 * limit), "limit_bytes": limit, "pid": os.getpid()}))
            os._exit(1)
    return counting_scorer(model, dataset, out_dir, weights=weights, progress=progress, **kwargs)


MODELS = [ModelEntry("gabor", "random"), ModelEntry("alexnet", "random"), ModelEntry("squeezenet1_1", "random")]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dask")
    path = make_fake_dataset(tmp / "d.nc", n_neurons_per_area=12, n_stimuli=24, image_size=(32, 32))
    card = tmp / "card.py"
    card.write_text(CARD)
    return tmp, path, card


def _tables(results):
    out = {}
    for folder in sorted((results / "models").iterdir()):
        for name in ("scores.parquet", "summary.parquet"):
            out[(folder.name, name)] = pd.read_parquet(folder / name)
    return out


def _calls(results):
    return sorted(p.name.split(".")[0] for p in (results / "calls").iterdir())


def test_local_cluster_sweep_equals_serial_sweep(data, monkeypatch):
    tmp, path, card = data
    monkeypatch.setenv("MBUTILS_CACHE", str(tmp / "cache_a"))
    cfg = SweepConfig(name="t", models=MODELS)
    serial = run_sweep(cfg, path, tmp / "serial", book=tmp / "book_s", notebook=card, jobs=1, progress=False,
                       scorer=counting_scorer)
    assert [r.status for r in serial.runs] == ["done"] * 3, [r.error for r in serial.runs]
    monkeypatch.setenv("MBUTILS_CACHE", str(tmp / "cache_b"))  # no features shared with the serial run
    dask = run_sweep(cfg, path, tmp / "dask", book=tmp / "book_d", notebook=card, jobs=2, cluster="local",
                     progress=False, scorer=counting_scorer)
    assert [r.status for r in dask.runs] == ["done"] * 3, [r.error for r in dask.runs]
    a, b = _tables(tmp / "serial"), _tables(tmp / "dask")
    assert a.keys() == b.keys() and len(a) == 6
    for key in a:  # BLAS sums in another order with another thread count: equal to rounding
        pd.testing.assert_frame_equal(a[key], b[key], check_exact=False, rtol=1e-12, atol=1e-14)
    assert _calls(tmp / "dask") == sorted(m.model for m in MODELS)
    for entry in MODELS:
        assert (tmp / "book_d" / "generated" / "models" / f"{entry.key}.ipynb").exists()


def test_a_killed_worker_is_replaced_and_every_model_scored(data, monkeypatch):
    import psutil

    tmp, path, card = data
    monkeypatch.setenv("MBUTILS_CACHE", str(tmp / "cache_k"))
    monkeypatch.setenv("MBUTILS_TEST_SLEEP", "20")  # alexnet's task sleeps before scoring
    results = tmp / "killed"
    killed = []

    def kill_alexnet_worker():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for p in (results / "calls").glob("alexnet.*") if (results / "calls").exists() else []:
                pid = int(p.name.split(".")[1])
                if psutil.pid_exists(pid):
                    psutil.Process(pid).kill()
                    killed.append(pid)
                    return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_alexnet_worker)
    killer.start()
    cfg = SweepConfig(name="t", models=MODELS)
    summary = run_sweep(cfg, path, results, book=tmp / "book_k", notebook=card, jobs=2, cluster="local",
                        progress=False, scorer=counting_scorer)
    killer.join()
    assert killed, "the test never saw alexnet's worker"
    assert [r.status for r in summary.runs] == ["done"] * 3, [r.error for r in summary.runs]
    assert _calls(results).count("alexnet") == 2  # tried, killed, retried on a new worker
    ref = _tables(tmp / "serial") if (tmp / "serial").exists() else None
    got = _tables(results)
    assert len(got) == 6
    if ref is not None:
        for key in ref:
            pd.testing.assert_frame_equal(ref[key], got[key], check_exact=False, rtol=1e-12, atol=1e-14)
    for folder in (results / "models").iterdir():  # nothing half-written left behind
        assert not [p for p in folder.iterdir() if p.name.startswith((".tmp", "tmp"))]


def test_two_sweeps_at_once_score_each_model_once(data, monkeypatch):
    tmp, path, card = data
    monkeypatch.setenv("MBUTILS_CACHE", str(tmp / "cache_t"))
    results = tmp / "twice"
    cfg = SweepConfig(name="t", models=MODELS)
    summaries = {}

    def sweep(k):
        summaries[k] = run_sweep(cfg, path, results, book=tmp / f"book_{k}", notebook=card, jobs=1,
                                 progress=False, scorer=counting_scorer)

    threads = [threading.Thread(target=sweep, args=(k,)) for k in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert _calls(results) == sorted(m.model for m in MODELS)  # each model scored once in all
    for k, s in summaries.items():
        assert [r.status for r in s.runs] == ["done"] * 3, (k, [r.error for r in s.runs])



def test_stop_after_lets_the_model_in_progress_finish_and_starts_no_other(data, monkeypatch):
    """Serially: alexnet (first, sleeping 8 s) starts before a 4 s stop_after and finishes; the two
    models after it are ``not_started``; the same sweep run again scores them, not alexnet."""
    tmp, path, card = data
    monkeypatch.setenv("MBUTILS_CACHE", str(tmp / "cache_stop"))
    monkeypatch.setenv("MBUTILS_TEST_SLEEP", "8")
    results = tmp / "stopped"
    order = [MODELS[1], MODELS[0], MODELS[2]]
    cfg = SweepConfig(name="t", models=order)
    first = run_sweep(cfg, path, results, book=tmp / "book_stop", notebook=card, jobs=1, progress=False,
                      scorer=counting_scorer, stop_after=4.0)
    assert [r.status for r in first.runs] == ["done", "not_started", "not_started"], [r.error for r in first.runs]
    assert [r.name for r in first.not_started] == ["gabor__random", "squeezenet1_1__random"]
    assert "not_started: 2" in str(first) and "stop_after" in first.not_started[0].error
    assert _calls(results) == ["alexnet"]
    assert sorted(p.name for p in (results / "models").iterdir()) == ["alexnet__random"]
    monkeypatch.setenv("MBUTILS_TEST_SLEEP", "0")
    second = run_sweep(cfg, path, results, book=tmp / "book_stop", notebook=card, jobs=1, progress=False,
                       scorer=counting_scorer)
    assert [r.status for r in second.runs] == ["skipped", "done", "done"], [r.error for r in second.runs]
    assert _calls(results) == ["alexnet", "gabor", "squeezenet1_1"]  # alexnet once in all


def test_stop_after_on_a_local_cluster_and_its_cli_exit_status(data, monkeypatch, capsys):
    """On Dask, a stop_after that has passed when the workers start leaves every model
    ``not_started`` and scores nothing; ``mbutils sweep --stop-after`` exits 75 then, and refuses a
    negative value."""
    import yaml

    from mbutils.cli import main

    tmp, path, card = data
    monkeypatch.setenv("MBUTILS_CACHE", str(tmp / "cache_stop_dask"))
    cfg = SweepConfig(name="t", models=MODELS)
    summary = run_sweep(cfg, path, tmp / "stopped_dask", book=tmp / "book_sd", notebook=card, jobs=2,
                        cluster="local", progress=False, scorer=counting_scorer, stop_after=0)
    assert [r.status for r in summary.runs] == ["not_started"] * 3
    assert not (tmp / "stopped_dask" / "calls").exists()
    with pytest.raises(ValueError, match=r"stop_after=-1; expected seconds"):
        run_sweep(cfg, path, tmp / "x", book=tmp / "book_x", notebook=card, stop_after=-1)

    config = tmp / "stop.yml"
    config.write_text(yaml.safe_dump({"name": "stop", "models": ["gabor"]}))
    args = ["sweep", "--config", str(config), "--dataset", str(path), "--results", str(tmp / "stopped_cli"),
            "--book", str(tmp / "book_cli"), "--jobs", "1"]
    assert main(args + ["--stop-after", "0"]) == 75
    assert "1 model(s) not started after --stop-after 0 min" in capsys.readouterr().err
    assert not (tmp / "stopped_cli" / "models").exists()
    assert main(args + ["--stop-after", "-5"]) == 2  # a usage error
    assert "'-5': expected minutes" in capsys.readouterr().err


@pytest.mark.parametrize("fraction, record, tries", [(0.75, False, 5), (0.75, True, 2), (1.5, True, 2)])
def test_a_model_that_kills_its_worker_fails_alone_and_gets_the_whole_memory(fraction, record, tries, data,
                                                                            monkeypatch, caplog):
    """A model whose worker dies on every try (memory) does not take the models queued behind it
    down with it; on a local cluster of 2 workers it is run again on one worker with all the
    memory (fraction 0.75: it fits there), and if it dies there too (1.5) it fails alone, and
    its reason names the workers' memory limit and ``--jobs 1``. A death whose task's memory
    record stands near the worker's limit (``record``) is not tried again with as much memory:
    one try at the 2 workers' share, one on the single worker (``tries`` in all, against
    WORKER_TRIES at the share and one on the single worker without a record)."""
    tmp, path, card = data
    name = f"hog{fraction}{'r' if record else ''}"
    monkeypatch.setenv("MBUTILS_CACHE", str(tmp / f"cache_{name}"))
    monkeypatch.setenv("MBUTILS_TEST_HOG_FRACTION", str(fraction))
    monkeypatch.setenv("MBUTILS_TEST_HOG_RECORD", "1" if record else "0")
    monkeypatch.setenv("MBUTILS_TEST_SLEEP", "2")
    results = tmp / name
    models = MODELS + [ModelEntry("resnet18", "random"), ModelEntry("gist", "random")]
    with caplog.at_level("WARNING", logger="mbutils.build._sweep"):
        summary = run_sweep(SweepConfig(name="t", models=models), path, results, book=tmp / f"book_{name}",
                            notebook=card, jobs=2, cluster="local", progress=False, scorer=memory_hog_scorer)
    assert len([p for p in (results / "queued").iterdir() if p.name.startswith("gabor.")]) == tries
    assert ("was ended for memory" in caplog.text) == record
    assert not (results / "logs" / "gabor__random.memory.json").exists()
    status = {r.name: r.status for r in summary.runs}
    assert {k: v for k, v in status.items() if k != "gabor__random"} == {e.key: "done" for e in models[1:]}, \
        [r.error for r in summary.runs]
    assert "running them again on one worker with all the memory" in caplog.text
    assert _calls(results) == sorted(["alexnet", "squeezenet1_1", "resnet18", "gist"]
                                     + (["gabor"] if fraction < 1 else []))
    # each worker held one task at a time: a worker's death counted against no model queued behind it
    assert {p.read_text() for p in (results / "queued").iterdir()} == {"1"}
    if fraction < 1:
        assert status["gabor__random"] == "done"
    else:
        (hog,) = summary.failed
        assert hog.name == "gabor__random" and "memory limit" in hog.error and "--jobs 1" in hog.error
        if record:
            assert "ended for memory" in hog.error and "more memory than this machine has" in hog.error
        assert not (results / "models" / "gabor__random" / "_scored.json").exists()


@pytest.mark.parametrize("record", [True, False])
def test_a_death_for_memory_on_a_scheduler_elsewhere_advises_larger_workers(record, data, monkeypatch):
    """On a scheduler given by its address the workers are not this machine's to resize: a model
    ended for memory there (its worker holds all of this machine's memory, which on a remote
    cluster says nothing) is told to get workers with more memory, not ``--jobs 1`` or a larger
    machine; the other models are scored. The scheduler's own retries are all it gets, with or
    without a memory record (the sweep adds none to them)."""
    import dask
    import psutil
    from distributed import LocalCluster

    tmp, path, card = data
    name = f"remote{'r' if record else ''}"
    monkeypatch.setenv("MBUTILS_CACHE", str(tmp / f"cache_{name}"))
    monkeypatch.setenv("MBUTILS_TEST_HOG_FRACTION", "1.5")
    monkeypatch.setenv("MBUTILS_TEST_HOG_RECORD", "1" if record else "0")
    monkeypatch.setenv("MBUTILS_TEST_SLEEP", "0")
    results = tmp / name
    with LocalCluster(n_workers=1, threads_per_worker=1, memory_limit=psutil.virtual_memory().total,
                      dashboard_address=None) as cluster:
        summary = run_sweep(SweepConfig(name="t", models=MODELS), path, results, book=tmp / f"book_{name}",
                            notebook=card, cluster=cluster.scheduler_address, progress=False,
                            scorer=memory_hog_scorer)
    status = {r.name: r.status for r in summary.runs}
    assert status == {"gabor__random": "failed", "alexnet__random": "done", "squeezenet1_1__random": "done"}
    (hog,) = summary.failed
    # a scheduler elsewhere keeps its own retries (Dask's allowed-failures), the sweep adds none
    tries = dask.config.get("distributed.scheduler.allowed-failures") + 1
    assert len([p for p in (results / "queued").iterdir() if p.name.startswith("gabor.")]) == tries
    assert ("ended for memory" in hog.error) == record and "start workers with more memory" in hog.error
    assert "this machine" not in hog.error and "--jobs 1" not in hog.error


@pytest.mark.parametrize("local, memory, says, not_says", [
    (True, None, ["--jobs 1"], ["this machine has", "start workers"]),
    (True, "all", ["ended for memory", "more memory than this machine has"], ["start workers"]),
    (False, None, ["if the model needs more memory than a worker has, start workers"], ["this machine", "--jobs 1"]),
    (False, "all", ["ended for memory", "the model needs more memory than a worker has: start workers"],
     ["this machine", "--jobs 1"]),
])
def test_a_killed_workers_reason_fits_where_the_workers_run(local, memory, says, not_says):
    """A worker killed on every try: on this machine's cluster the advice is --jobs 1 or, when
    the worker already had all the memory, a larger machine; on a cluster elsewhere, workers with
    more memory. Only a death known to be for memory is stated as one."""
    import psutil
    from types import SimpleNamespace

    from distributed import KilledWorker

    from mbutils.build._sweep import _task_error

    total = psutil.virtual_memory().total
    limit = total if memory else total // 4
    err = KilledWorker("m-1", SimpleNamespace(address="tcp://10.0.0.2:4000"), 0)
    reason = _task_error(err, {limit}, (int(0.97 * limit), limit) if memory else None, local=local)
    assert reason.startswith("KilledWorker: ") and "m-1" in reason
    for text in says:
        assert text in reason, reason
    for text in not_says:
        assert text not in reason, reason


@pytest.mark.parametrize("statuses, code", [
    (["done", "failed", "not_started"], 75),  # a part: the next part retries the failed model
    (["done", "failed", "skipped"], 1),
    (["done", "not_started"], 75),
    (["skipped", "done"], 0),
])
def test_sweep_exit_status_keeps_a_run_in_parts_going_past_a_failure(statuses, code, tmp_path, monkeypatch, capsys):
    """``until mbutils sweep --stop-after M; [ $? -ne 75 ]`` must not stop while models are left
    unstarted because one failed: 75 whenever some are not started, else 1 for a failure."""
    import mbutils.build as build
    from mbutils.build._notebooks import NotebookRun, SweepSummary
    from mbutils.cli import main

    runs = [NotebookRun(f"m{i}", tmp_path / f"m{i}.ipynb", s, error="boom" if s == "failed" else "")
            for i, s in enumerate(statuses)]
    monkeypatch.setattr(build, "ensure_dataset", lambda *a, **k: tmp_path / "d.nc")
    monkeypatch.setattr(build, "run_sweep", lambda *a, **k: SweepSummary(runs))
    config = tmp_path / "c.yml"
    config.write_text("name: c\nmodels: [gabor]\n")
    assert main(["sweep", "--config", str(config), "--stop-after", "1", "--book", str(tmp_path / "b")]) == code
    err = capsys.readouterr().err
    assert ("1 model(s) failed" in err) == ("failed" in statuses)
    assert ("not started after --stop-after 1 min" in err) == ("not_started" in statuses)


def test_a_cluster_that_fails_to_close_does_not_undo_the_sweep(data, monkeypatch):
    """Every outcome in, then the cluster's shutdown times out: the sweep reports its models with a
    warning. A cluster that fails before the outcomes are in still raises."""
    import contextlib

    from distributed import Client

    import mbutils.build._cluster as cluster_module

    tmp, path, card = data
    monkeypatch.setenv("MBUTILS_CACHE", str(tmp / "cache_close"))

    @contextlib.contextmanager
    def closing_badly(cluster="local", n_tasks=1, n_workers=None):
        with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
            yield client
        raise TimeoutError("close timed out")

    @contextlib.contextmanager
    def never_starts(cluster="local", n_tasks=1, n_workers=None):
        raise OSError("no scheduler")
        yield

    cfg = SweepConfig(name="t", models=[MODELS[0], MODELS[2]])
    monkeypatch.setattr(cluster_module, "sweep_client", closing_badly)
    with pytest.warns(RuntimeWarning, match=r"did not close cleanly \(TimeoutError: close timed out\)"):
        summary = run_sweep(cfg, path, tmp / "close", book=tmp / "book_close", notebook=card, jobs=2,
                            cluster="local", progress=False, scorer=counting_scorer)
    assert [r.status for r in summary.runs] == ["done", "done"], [r.error for r in summary.runs]
    monkeypatch.setattr(cluster_module, "sweep_client", never_starts)
    with pytest.raises(OSError, match="no scheduler"):
        run_sweep(cfg, path, tmp / "close2", book=tmp / "book_close2", notebook=card, jobs=2, cluster="local",
                  progress=False, scorer=counting_scorer)

SLURM = {"name": "s", "models": ["gabor"], "cluster": {"type": "slurm", "queue": "gpu", "cores": 8,
                                                        "memory": "32GB", "walltime": "04:00:00", "jobs": 10,
                                                        "account": "lab42"}}


def test_slurm_section_becomes_a_job_script_with_its_resources(tmp_path):
    import yaml

    from mbutils.build import job_script

    path = tmp_path / "slurm.yml"
    path.write_text(yaml.safe_dump(SLURM))
    cfg = load_config(path, valid_models={"gabor"})
    script = job_script(cfg.cluster)
    assert "# 10 job(s)" in script
    for line in ("#SBATCH -p gpu", "#SBATCH -A lab42", "#SBATCH --cpus-per-task=8", "#SBATCH -t 04:00:00",
                 "export OMP_NUM_THREADS=8", "--nthreads 1"):
        assert line in script, (line, script)
    assert "#SBATCH --mem=30G" in script  # 32 GB as dask-jobqueue states it


def test_cli_dry_run_prints_the_job_script(tmp_path, capsys):
    import yaml

    from mbutils.cli import main

    path = tmp_path / "slurm.yml"
    path.write_text(yaml.safe_dump(dict(SLURM, models=["gabor", {"model": "alexnet", "weights": "random"}])))
    assert main(["sweep", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 model(s)" in out and "gabor__random" in out and "#SBATCH -p gpu" in out


@pytest.mark.parametrize("section, match", [
    ({"type": "lsf", "cores": 1, "memory": "1GB"}, r"cluster type='lsf'; expected one of \['pbs', 'sge', 'slurm'\]"),
    ({"type": "slurm", "memory": "1GB"}, r"lacks 'cores'"),
    ({"type": "slurm", "cores": 1, "memory": "1GB", "jobs": 0}, r"jobs=0"),
    ({"type": "slurm", "cores": 1, "memory": "1GB", "queeu": "x"}, r"unknown cluster key\(s\) \['queeu'\]"),
])
def test_bad_cluster_sections_are_refused_when_the_config_loads(tmp_path, section, match):
    import yaml

    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump({"name": "c", "models": ["gabor"], "cluster": section}))
    with pytest.raises(ValueError, match=match):
        load_config(path, valid_models={"gabor"})


def test_local_layout_shares_cores_and_memory():
    from mbutils.build import local_layout

    assert local_layout(20, n_cpus=16, memory=64 * 2**30) == {"n_workers": 16, "threads": 1,
                                                              "memory_limit": 4 * 2**30}
    assert local_layout(3, n_cpus=16, memory=64 * 2**30)["n_workers"] == 3  # no idle workers
    assert local_layout(3, n_cpus=16, memory=64 * 2**30)["threads"] == 5
    assert local_layout(10, n_cpus=16, memory=8 * 2**30)["n_workers"] == 2  # 4 GiB each at least
    with pytest.raises(ValueError, match="n_workers=0"):
        local_layout(3, n_workers=0)


def test_atlas_config_is_every_variant_that_runs_offline():
    from mbutils.build import resolve_models
    from mbutils.models import list_models

    table = list_models()
    expected = {(n, "random") for n, ok in zip(table.name, table.random_available) if ok}
    expected |= {(n, "trained") for n, ok in zip(table.name, table.trained_available) if ok}
    got = {(e.model, e.weights) for e in resolve_models(load_config("atlas"))}
    assert got == expected
    assert {("efficientnet_lite0", "trained"), ("random_weights", "random"), ("gabor", "random")} <= got
    assert ("segment_unsup2d", "trained") not in got  # Taskonomy weights need a download


def test_a_scored_task_records_its_time_and_peak_memory(tmp_path):
    import json

    import psutil

    from mbutils.build._sweep import _score_job

    held = {}

    def scorer(model, dataset, out_dir, weights="random", progress=None, **kwargs):
        import numpy as np

        rss = psutil.Process().memory_info().rss
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, every page written, held for a second
        held["grew"] = psutil.Process().memory_info().rss - rss
        held["during"] = psutil.Process().memory_info().rss
        time.sleep(1.0)
        running = tmp_path / "res" / "logs" / "gabor__random.memory.json"
        held["running"] = json.loads(running.read_text())  # the peak so far, for a worker that dies now
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("scores.parquet", "summary.parquet", "provenance.json"):
            (out_dir / name).write_text(str(block.sum()))

    data = tmp_path / "d.nc"
    data.write_bytes(b"x")
    seconds, error = _score_job("gabor", "random", data, tmp_path / "res", {}, scorer)
    assert error == ""
    record = json.loads((tmp_path / "res" / "models" / "gabor__random" / "_task.json").read_text())
    assert 1.0 <= record["seconds"] <= seconds
    # The process's resident size while the block was held is what the record must reach; it is
    # read inside the task, so memory the rest of the test session frees cannot move it.
    assert held["grew"] >= 60 * 2**20
    assert held["during"] - 4 * 2**20 <= record["peak_rss_bytes"] < psutil.virtual_memory().total
    assert record["pid"] == os.getpid()
    running = held["running"]  # written while the task ran, within a 64th of its peak then
    assert running["pid"] == os.getpid() and running["limit_bytes"] is None  # (not in a Dask worker)
    assert held["during"] / (1 + 1 / 64) - 4 * 2**20 <= running["peak_rss_bytes"] <= record["peak_rss_bytes"]
    assert not (tmp_path / "res" / "logs" / "gabor__random.memory.json").exists()  # the task ended
