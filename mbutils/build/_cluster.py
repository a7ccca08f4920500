"""Where a sweep's models run: a Dask cluster on this machine, an existing scheduler, or a batch
cluster (SLURM, PBS, SGE) through ``dask-jobqueue``.

A sweep submits one task per model (score it, then render its card) to a
:class:`distributed.Client`. :func:`sweep_client` opens that client from a cluster spec:

- ``"local"`` (the default): a :class:`distributed.LocalCluster` sized to this machine by
  :func:`local_layout`: one task per worker process at a time, the cores shared out so that
  torch, BLAS and the numba kernels of the workers do not oversubscribe them;
- ``"tcp://HOST:PORT"`` (or any scheduler address): an existing scheduler;
- a mapping, the ``cluster:`` section of a sweep config, ``{type: slurm, queue: ..., cores: 8,
  memory: 32GB, walltime: "04:00:00", jobs: 10}`` (``type`` one of :data:`CLUSTER_TYPES`): a
  ``dask_jobqueue`` cluster scaled to ``jobs`` batch jobs. :func:`job_script` returns the script
  it submits, without submitting anything.
"""
from __future__ import annotations

import contextlib
import logging
import shlex

from ._config import default_jobs
from ._notebooks import _kernel_env

__all__ = ["CLUSTER_TYPES", "job_script", "jobqueue_cluster", "local_layout", "sweep_client"]

_log = logging.getLogger(__name__)

#: batch systems of a config's ``cluster:`` section -> the dask_jobqueue cluster class
CLUSTER_TYPES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster"}

#: keys of a ``cluster:`` section besides ``type`` and ``jobs`` (passed to the dask_jobqueue
#: cluster as they are)
CLUSTER_KEYS = {"queue", "account", "project", "cores", "memory", "processes", "walltime", "interface",
                "local_directory", "log_directory", "job_extra_directives", "job_script_prologue",
                "worker_extra_args", "python", "job_name"}

#: memory a worker needs for one model of the zoo (a ViT-B or ResNet-152 forward pass over the
#: 118 scenes with one layer's features reduced at a time stays below it)
WORKER_MEMORY = 4 * 2**30


def local_layout(n_tasks: int, n_workers=None, n_cpus=None, memory=None) -> dict:
    """Workers, threads and memory limit of a :class:`~distributed.LocalCluster` for a sweep.

    Each worker runs one model at a time (one Dask thread); the cores are shared out between
    the workers, whose torch, BLAS and numba thread pools get ``threads`` each; every worker
    gets an equal share of the memory, at least :data:`WORKER_MEMORY` when the machine has it.

    Parameters
    ----------
    n_tasks : int
        Models to run.
    n_workers : int, optional
        Workers asked for (default: as many as the cores and the memory allow).
    n_cpus : int, optional
        Default: the cores this process may use.
    memory : int, optional
        Bytes; default the machine's total memory.

    Returns
    -------
    dict
        ``n_workers``, ``threads`` (per worker, for its thread pools) and ``memory_limit``
        (bytes per worker).
    """
    import psutil

    n_cpus = max(1, int(n_cpus or default_jobs()))
    memory = int(memory or psutil.virtual_memory().total)
    if n_workers is None:
        n_workers = min(n_cpus, max(1, memory // WORKER_MEMORY))
    if int(n_workers) < 1:
        raise ValueError(f"n_workers={n_workers!r}; expected a positive integer")
    n_workers = max(1, min(int(n_workers), max(1, int(n_tasks))))
    return {"n_workers": n_workers, "threads": max(1, n_cpus // n_workers), "memory_limit": memory // n_workers}


def _check_section(section: dict) -> tuple:
    """``(cluster class name, jobs, keyword arguments)`` of a config's ``cluster:`` section."""
    if not isinstance(section, dict):
        raise ValueError(f"cluster={section!r}; expected 'local', a scheduler address (tcp://HOST:PORT) or a "
                         f"mapping with 'type' one of {sorted(CLUSTER_TYPES)}")
    kind = section.get("type")
    if kind not in CLUSTER_TYPES:
        raise ValueError(f"cluster type={kind!r}; expected one of {sorted(CLUSTER_TYPES)}")
    unknown = sorted(set(section) - CLUSTER_KEYS - {"type", "jobs"})
    if unknown:
        raise ValueError(f"unknown cluster key(s) {unknown}; expected some of {sorted(CLUSTER_KEYS | {'jobs'})}")
    for key in ("cores", "memory"):
        if key not in section:
            raise ValueError(f"the {kind} cluster section lacks {key!r} (e.g. cores: 8, memory: 32GB)")
    jobs = section.get("jobs", 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"cluster jobs={jobs!r}; expected a positive integer (batch jobs to start)")
    kwargs = {k: v for k, v in section.items() if k not in ("type", "jobs")}
    return CLUSTER_TYPES[kind], jobs, kwargs


def jobqueue_cluster(section: dict, threads=None):
    """The ``dask_jobqueue`` cluster of a config's ``cluster:`` section (not yet scaled).

    Each batch job runs one worker process (``processes: 1`` unless given) with one Dask
    thread, whose torch/BLAS threads use the job's ``cores``.

    Parameters
    ----------
    section : dict
        ``{type: slurm|pbs|sge, cores: int, memory: str, jobs: int, queue: ..., walltime: ...}``.

    Returns
    -------
    (cluster, jobs) : dask_jobqueue.JobQueueCluster, int
    """
    import dask_jobqueue

    name, jobs, kwargs = _check_section(section)
    cores = int(kwargs["cores"])
    kwargs.setdefault("processes", 1)
    threads = threads or max(1, cores // int(kwargs["processes"]))
    prologue = list(kwargs.pop("job_script_prologue", []) or [])
    prologue += [f"export {k}={shlex.quote(v)}" for k, v in _kernel_env(threads).items()]
    kwargs["job_script_prologue"] = prologue
    # one model at a time per worker process: its own thread pools use the job's cores
    extra = list(kwargs.pop("worker_extra_args", []) or [])
    kwargs["worker_extra_args"] = extra + ["--nthreads", "1"]
    return getattr(dask_jobqueue, name)(**kwargs), jobs


def job_script(section: dict) -> str:
    """The batch script a config's ``cluster:`` section submits per job (nothing is submitted).

    Parameters
    ----------
    section : dict
        See :func:`jobqueue_cluster`.

    Returns
    -------
    str
    """
    cluster, jobs = jobqueue_cluster(section)
    try:
        return f"# {jobs} job(s) of:\n" + cluster.job_script()
    finally:
        cluster.close()


@contextlib.contextmanager
def sweep_client(cluster="local", n_tasks=1, n_workers=None):
    """A :class:`distributed.Client` for a sweep's tasks, closed (with its cluster) on exit.

    Parameters
    ----------
    cluster : str or dict
        ``"local"``, a scheduler address (``tcp://HOST:PORT``), or a config's ``cluster:``
        section (see the module docstring).
    n_tasks : int
        Models to run (a local cluster starts no more workers than that).
    n_workers : int, optional
        Local workers (default: :func:`local_layout`).

    Yields
    ------
    distributed.Client
    """
    import dask
    from distributed import Client, LocalCluster

    if isinstance(cluster, str) and cluster != "local":
        if "://" not in cluster:
            raise ValueError(f"cluster={cluster!r}; expected 'local' or a scheduler address such as "
                             "tcp://HOST:8786")
        try:
            client = Client(cluster, timeout="30s")
        except OSError as err:
            raise OSError(f"no Dask scheduler answers at {cluster} ({err}); start one with `dask scheduler` or "
                          "use --cluster local") from None
        with client:
            yield client
        return
    if isinstance(cluster, dict):
        jq, jobs = jobqueue_cluster(cluster)
        with jq, Client(jq) as client:
            jq.scale(jobs=jobs)
            yield client
        return
    if cluster is not None and cluster != "local":
        raise ValueError(f"cluster={cluster!r}; expected 'local', a scheduler address or a cluster section")
    layout = local_layout(n_tasks, n_workers)
    env = _kernel_env(layout["threads"])  # thread caps, no progress bars in the workers
    # a task whose worker dies fails at once (KilledWorker) instead of moving to another worker's
    # queue: the sweep itself tries it again when a worker is free (see _sweep._dask_pass)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=layout["n_workers"], threads_per_worker=1, processes=True,
                         memory_limit=layout["memory_limit"], dashboard_address=":0", env=env,
                         silence_logs=logging.ERROR) as local, Client(local) as client:
        _log.info("Dask LocalCluster: %d workers x %d threads, %.1f GiB each; dashboard %s", layout["n_workers"],
                  layout["threads"], layout["memory_limit"] / 2**30, client.dashboard_link)
        yield client
