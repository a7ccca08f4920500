"""Build the dataset file from the Allen Brain Observatory (Visual Coding two-photon, natural scenes).

The builder takes, through allensdk's ``BrainObservatoryCache``, every natural-scenes
experiment (session B) of the non-failed experiment containers, reads each experiment's L0
events and natural-scenes stimulus table, and writes a dataset file in the schema of
:mod:`mbutils.data.dataset` (responses neuron x 119 stimuli x 50 trials, the 118 scenes plus
the blank screen).

It is built for the real scale (about 500 experiments, hundreds of GB of NWB files, ~60,000
neurons): a progress bar per experiment, options to limit the work, per-experiment results
written atomically to ``OUT.parts/`` so that an interrupted build resumes where it stopped,
downloads written atomically, clear errors for truncated cache files, and an offline mode that
makes no network call at all.

allensdk is imported only inside the functions that need it.

Examples
--------
>>> from mbutils.data.allen import build_allen_dataset
>>> build_allen_dataset("allen_cache", "data/allen.nc", areas=["VISp"])   # doctest: +SKIP
"""
from __future__ import annotations

import datetime
import json
import shutil
import warnings
from pathlib import Path

import numpy as np

from ._allen_api import (
    AllenCorruptFileError,
    AllenDataError,
    AllenNetworkError,
    AllenOfflineError,
    download_file,
    ensure_json,
    make_api,
    network_errors,
    reading,
)

__all__ = [
    "build_allen_dataset",
    "trial_responses",
    "add_allen_arguments",
    "run_allen",
    "AllenDataError",
    "AllenOfflineError",
    "AllenCorruptFileError",
    "AllenNetworkError",
    "STIMULUS_IDS",
]

N_SCENES = 118
N_TRIALS = 50
#: stimulus coordinate of the dataset: Allen frames 0..117, then -1 (the blank screen)
STIMULUS_IDS = np.r_[np.arange(N_SCENES), -1].astype(np.int64)
#: value of the constant blank image (Allen's mean-luminance gray)
BLANK_GRAY = 127
#: default response window: the 250 ms presentation, ~7 frames at Allen's 30 Hz
DEFAULT_WINDOW_FRAMES = 7
FRAME_RATE_HZ = 30.0
NETWORK_TIMEOUT_S = 30.0
_PART_VERSION = 1


# ---------------------------------------------------------------------------------- computation
def _excitatory(cre_line: str) -> bool:
    """:func:`mbutils.data.is_excitatory`, but an unknown Cre line warns instead of stopping a long build.

    An unknown line counts as excitatory unless it is one of the inhibitory genes (Sst, Vip, Pvalb).
    """
    from .selection import INHIBITORY_CRE_LINES, is_excitatory

    try:
        return is_excitatory(cre_line)
    except ValueError as err:
        warnings.warn(f"{err}; counted as excitatory (not an Sst, Vip or Pvalb line)", stacklevel=2)
        inhibitory = {name.split("-")[0] for name in INHIBITORY_CRE_LINES}
        return str(cre_line).split("-")[0] not in inhibitory


def trial_responses(
    events,
    frames,
    starts,
    window_frames: int = DEFAULT_WINDOW_FRAMES,
    window_offset_frames: int = 0,
    n_trials: int = N_TRIALS,
    stimulus_ids=STIMULUS_IDS,
    chunk: int = 64,
):
    """Per-trial responses: mean event magnitude in a window after each presentation onset.

    Parameters
    ----------
    events : array of shape (n_cells, n_frames)
        L0 events per acquisition frame (allensdk ``get_ophys_experiment_events``).
    frames : array of shape (n_presentations,)
        The stimulus shown at each presentation (Allen frame index, -1 for the blank).
    starts : array of shape (n_presentations,)
        Onset of each presentation, as an acquisition frame index (the stimulus table's ``start``).
    window_frames : int
        Window length in frames; the response is the mean over frames
        ``[start + window_offset_frames, start + window_offset_frames + window_frames)``
        (frames past the end of the recording are left out; an empty window gives NaN).
    window_offset_frames : int
        Delay of the window after the onset, in frames.
    n_trials : int
        Trials kept per stimulus, in presentation order; missing repeats are NaN, extra ones dropped.
    stimulus_ids : array of shape (n_stimuli,)
        Stimulus order of the output.
    chunk : int
        Cells processed at once (bounds the memory of the window gather).

    Returns
    -------
    responses : ndarray of shape (n_cells, n_stimuli, n_trials), float32
    n_shown : ndarray of shape (n_stimuli,), int
        Presentations found per stimulus (before capping at ``n_trials``).
    """
    events = np.asarray(events)
    if events.ndim != 2:
        raise ValueError(f"events must have shape (n_cells, n_frames), got shape {events.shape}")
    if int(window_frames) < 1:
        raise ValueError(f"window_frames={window_frames!r}; expected an int >= 1")
    frames = np.asarray(frames)
    starts = np.asarray(starts).astype(np.int64)
    if frames.shape != starts.shape or frames.ndim != 1:
        raise ValueError(f"frames {frames.shape} and starts {starts.shape} must be 1-d of equal length")
    frames = np.rint(frames).astype(np.int64)
    stimulus_ids = np.asarray(stimulus_ids, dtype=np.int64)
    unknown = np.setdiff1d(frames, stimulus_ids)
    if unknown.size:
        raise ValueError(f"stimulus frames {unknown[:10].tolist()} are not among the expected ids {stimulus_ids.min()}..{stimulus_ids.max()}")
    order = np.argsort(starts, kind="stable")
    frames, starts = frames[order], starts[order]
    sorter = np.argsort(stimulus_ids)
    position = sorter[np.searchsorted(stimulus_ids, frames, sorter=sorter)]  # index into stimulus_ids
    trial = np.zeros(frames.size, dtype=np.int64)
    n_shown = np.zeros(stimulus_ids.size, dtype=np.int64)
    for s in range(stimulus_ids.size):
        where = np.flatnonzero(position == s)
        trial[where] = np.arange(where.size)
        n_shown[s] = where.size
    keep = trial < n_trials

    n_cells, n_frames = events.shape
    idx = (starts + int(window_offset_frames))[:, None] + np.arange(int(window_frames))
    valid = (idx >= 0) & (idx < n_frames)
    count = valid.sum(axis=1)
    idx = np.clip(idx, 0, max(n_frames - 1, 0))
    out = np.full((n_cells, stimulus_ids.size, int(n_trials)), np.nan, dtype=np.float32)
    for lo in range(0, n_cells, chunk):
        block = events[lo : lo + chunk][:, idx]  # (chunk, n_presentations, window)
        sums = np.where(valid, block, 0.0).sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(count > 0, sums / np.maximum(count, 1), np.nan)
        out[lo : lo + chunk, position[keep], trial[keep]] = rate[:, keep]
    return out, n_shown


# ---------------------------------------------------------------------------------- parts on disk
def _parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def _signature(experiment_id, window_frames, window_offset_frames, n_trials) -> str:
    return json.dumps(
        {
            "version": _PART_VERSION,
            "experiment_id": int(experiment_id),
            "window_frames": int(window_frames),
            "window_offset_frames": int(window_offset_frames),
            "n_trials": int(n_trials),
        },
        sort_keys=True,
    )


def _load_part(path: Path, signature: str):
    """The arrays of a finished experiment, or None if absent, unreadable or made differently."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["signature"]) != signature:
                return None
            return {k: npz[k] for k in ("responses", "cell_specimen_id", "n_shown")}
    except Exception:  # a part is only ever written atomically; anything odd: recompute it
        return None


def _save_npz(path: Path, **arrays) -> None:
    from .._io import atomic_write

    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def _save_npy(path: Path, array) -> None:
    from .._io import atomic_write

    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


# ---------------------------------------------------------------------------------- per experiment
def _experiment_paths(cache, experiment_id):
    nwb = Path(cache.get_cache_path(None, cache.EXPERIMENT_DATA_KEY, int(experiment_id)))
    events = Path(cache.get_cache_path(None, cache.EVENTS_DATA_KEY, int(experiment_id)))
    return nwb, events


def _fetch_experiment(cache, experiment_id, offline, timeout):
    nwb, events = _experiment_paths(cache, experiment_id)
    download_file(cache.api.save_ophys_experiment_event_data, experiment_id, events, "events file", offline, timeout)
    download_file(cache.api.save_ophys_experiment_data, experiment_id, nwb, "NWB file", offline, timeout)
    return nwb, events


def _read_experiment(cache, experiment_id, nwb, events_path):
    """(events (n_cells, n_frames), cell ids (n_cells,), stimulus table, data set)."""
    with reading(events_path, "events file"):
        events = cache.get_ophys_experiment_events(int(experiment_id))
        if events.ndim != 2:
            raise ValueError(f"events array has shape {events.shape}, expected (n_cells, n_frames)")
    with reading(nwb, "NWB file"):
        data_set = cache.get_ophys_experiment_data(int(experiment_id))
        table = data_set.get_stimulus_table("natural_scenes")
        cell_ids = np.asarray(data_set.get_cell_specimen_ids(), dtype=np.int64)
    if cell_ids.size != events.shape[0]:
        raise AllenCorruptFileError(
            f"experiment {experiment_id}: the NWB file {str(nwb)!r} lists {cell_ids.size} cells but the "
            f"events file {str(events_path)!r} has {events.shape[0]}; one of them is stale or corrupt: "
            f"delete both and run again"
        )
    return events, cell_ids, table, data_set


def _read_template(data_set, nwb) -> np.ndarray:
    with reading(nwb, "NWB file"):
        template = np.asarray(data_set.get_stimulus_template("natural_scenes"))
    if template.ndim != 3 or template.shape[0] != N_SCENES:
        raise AllenCorruptFileError(
            f"the natural-scenes template in {str(nwb)!r} has shape {template.shape}, expected "
            f"({N_SCENES}, height, width); delete the file and run again"
        )
    return template.astype(np.uint8, copy=False)


# ---------------------------------------------------------------------------------- selection
def _as_list(value, name):
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    try:
        return [str(v) for v in value]
    except TypeError:
        raise TypeError(f"{name}={value!r}; expected a list of str") from None


def _select_experiments(experiments, areas, cre_lines, max_experiments):
    import difflib

    exps = sorted(experiments, key=lambda e: int(e["id"]))
    if areas is not None:
        valid = sorted({e["targeted_structure"] for e in exps})
        for a in areas:
            if a not in valid:
                close = difflib.get_close_matches(a, valid)
                hint = f" (did you mean {close}?)" if close else ""
                raise ValueError(f"area {a!r} has no natural-scenes experiment{hint}; valid areas: {valid}")
        exps = [e for e in exps if e["targeted_structure"] in areas]
    if cre_lines is not None:
        valid = sorted({str(e["cre_line"]) for e in exps})
        wanted = {c.lower() for c in cre_lines}

        def match(line):
            line = str(line).lower()
            return line in wanted or line.split("-")[0] in wanted

        for c in cre_lines:
            if not any(c.lower() in (v.lower(), v.lower().split("-")[0]) for v in valid):
                raise ValueError(
                    f"Cre line {c!r} has no natural-scenes experiment (with the other filters); "
                    f"valid Cre lines: {valid} (a prefix such as 'Cux2' also works)"
                )
        exps = [e for e in exps if match(e["cre_line"])]
    if max_experiments is not None:
        exps = exps[: int(max_experiments)]
    return exps


# ---------------------------------------------------------------------------------- the builder
def build_allen_dataset(
    cache_dir,
    out,
    offline: bool = False,
    api=None,
    max_experiments: int | None = None,
    areas=None,
    cre_lines=None,
    window_frames: int = DEFAULT_WINDOW_FRAMES,
    window_offset_frames: int = 0,
    n_trials: int = N_TRIALS,
    timeout: float = NETWORK_TIMEOUT_S,
    keep_parts: bool = True,
    progress: bool | None = None,
) -> Path:
    """Build the dataset file from an allensdk Brain Observatory cache.

    Parameters
    ----------
    cache_dir : str or pathlib.Path
        The allensdk cache folder (``BrainObservatoryCache(manifest_file=cache_dir/"manifest.json")``);
        created and filled by downloads unless ``offline``.
    out : str or pathlib.Path
        The dataset file to write (NetCDF). Per-experiment results go to ``out + ".parts/"``;
        a rerun skips the experiments found there (computed with the same window).
    offline : bool
        Make no network call at all: read only what the cache holds; anything missing raises
        :class:`AllenOfflineError` before any work, listing what is missing.
    api : object, optional
        The api object for ``BrainObservatoryCache(api=...)`` (e.g. one that reads a mirror).
        Default: allensdk's ``BrainObservatoryApi``, minus the eye-tracking query the builder
        does not need (so a warm cache needs no network), and with every query refused offline.
    max_experiments : int, optional
        Use only the first N experiments (by id) after the filters.
    areas : list of str, optional
        Targeted areas to keep (``VISp``, ``VISl``, ``VISal``, ``VISpm``, ``VISam``, ``VISrl``).
    cre_lines : list of str, optional
        Cre lines to keep, full (``Cux2-CreERT2``) or by prefix (``Cux2``).
    window_frames : int, default 7
        Response window after each onset, in acquisition frames (30 Hz: 7 frames ~ the 250 ms
        presentation).
    window_offset_frames : int, default 0
        Delay of the window after the onset, in frames.
    n_trials : int, default 50
        Trials per stimulus (Allen shows each scene 50 times); missing repeats are NaN.
    timeout : float, default 30
        Seconds before a network operation gives up.
    keep_parts : bool, default True
        Keep ``out.parts/`` after success (lets a later, larger build reuse it).
    progress : bool, optional
        Show a progress bar per experiment (default ``mbutils.get_config().progress``).

    Returns
    -------
    pathlib.Path
        ``out``, a dataset with ``responses(neuron, stimulus, trial)`` float32 (stimuli 0..117,
        -1), ``stimuli(stimulus, y, x)`` uint8 (the Allen template, 918 x 1174, and a constant
        gray blank), per-neuron ``cell_specimen_id``, ``area``, ``cre_line``, ``imaging_depth``,
        ``excitatory``, ``p_run_mod_ns`` and ``ophys_experiment_id``, attributes ``source='allen'``
        and ``description``.

    Raises
    ------
    AllenOfflineError
        Offline and the cache lacks metadata or files of the selected experiments.
    AllenCorruptFileError
        A cached file cannot be read; the message names it and says to delete it.
    AllenNetworkError
        The API could not be reached (fails after ``timeout`` seconds, never hangs).
    ValueError
        Bad arguments (unknown area or Cre line, window < 1, ...).
    """
    from tqdm import tqdm

    from .. import get_config

    if progress is None:
        progress = get_config().progress
    if max_experiments is not None and (int(max_experiments) != max_experiments or max_experiments < 1):
        raise ValueError(f"max_experiments={max_experiments!r}; expected a positive int or None")
    if int(window_frames) != window_frames or window_frames < 1:
        raise ValueError(f"window_frames={window_frames!r}; expected an int >= 1")
    if int(n_trials) != n_trials or n_trials < 1:
        raise ValueError(f"n_trials={n_trials!r}; expected an int >= 1")
    areas = _as_list(areas, "areas")
    cre_lines = _as_list(cre_lines, "cre_lines")
    cache_dir, out = Path(cache_dir), Path(out)
    manifest = cache_dir / "manifest.json"
    if offline and not manifest.exists():
        raise AllenOfflineError(
            f"offline: no Allen cache at {str(cache_dir)!r} ({manifest.name} is missing); build one on a "
            f"machine with network access: mbutils data allen --cache {cache_dir} --out {out}"
        )

    with warnings.catch_warnings():  # allensdk 2.16 imports the deprecated pkg_resources
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import allensdk
        from allensdk.core.brain_observatory_cache import BrainObservatoryCache

    if api is None:
        api = make_api(offline)
    with reading(manifest, "allensdk manifest"):
        cache = BrainObservatoryCache(manifest_file=str(manifest), api=api)

    # metadata: the JSON files the manifest points to (downloaded atomically when missing)
    exp_json = ensure_json(
        api.get_ophys_experiments, cache.get_cache_path(None, cache.EXPERIMENTS_KEY),
        "list of experiments", offline, timeout,
    )
    cell_json = ensure_json(
        api.get_cell_metrics, cache.get_cache_path(None, cache.CELL_SPECIMENS_KEY),
        "cell specimen table", offline, timeout,
    )
    with network_errors("listing experiments", timeout), reading(exp_json, "list of experiments"):
        experiments = cache.get_ophys_experiments(stimuli=["natural_scenes"], simple=True)
    experiments = _select_experiments(experiments, areas, cre_lines, max_experiments)
    if not experiments:
        raise AllenDataError(f"no natural-scenes experiment in {str(cache_dir)!r} matches the filters")
    with reading(cell_json, "cell specimen table"):
        cell_table = {int(c["cell_specimen_id"]): c for c in cache.get_cell_specimens(simple=False)}

    parts = _parts_dir(out)
    parts.mkdir(parents=True, exist_ok=True)
    stimuli_path = parts / "stimuli.npy"
    signatures = {
        int(e["id"]): _signature(e["id"], window_frames, window_offset_frames, n_trials) for e in experiments
    }
    done = {eid for eid in signatures if _load_part(parts / f"{eid}.npz", signatures[eid]) is not None}
    if offline:
        _check_offline(cache, experiments, done, stimuli_path)

    n_resumed = len(done)
    bar = tqdm(experiments, desc="Allen experiments", unit="exp", disable=not progress)
    for exp in bar:
        eid = int(exp["id"])
        bar.set_postfix_str(f"{eid} {exp['targeted_structure']} {exp['cre_line']}")
        if eid in done:
            continue
        nwb, events_path = _fetch_experiment(cache, eid, offline, timeout)
        events, cell_ids, table, data_set = _read_experiment(cache, eid, nwb, events_path)
        if not stimuli_path.exists():
            _save_npy(stimuli_path, _read_template(data_set, nwb))
        try:
            responses, n_shown = trial_responses(
                events, table["frame"].values, table["start"].values,
                window_frames, window_offset_frames, n_trials,
            )
        except ValueError as err:
            raise AllenCorruptFileError(f"experiment {eid}: {err} (stimulus table of {str(nwb)!r})") from err
        del events
        _save_npz(
            parts / f"{eid}.npz",
            responses=responses,
            cell_specimen_id=cell_ids,
            n_shown=n_shown,
            signature=np.array(signatures[eid]),
        )
    bar.close()
    if not stimuli_path.exists():  # every experiment was resumed but the template file is gone
        _save_template_from_any(cache, experiments, stimuli_path, offline, timeout)

    dataset = _assemble(experiments, signatures, parts, stimuli_path, cell_table)
    ds = dataset.ds
    n_neurons = ds.sizes["neuron"]
    ds.attrs.update(
        {
            "description": (
                f"Allen Brain Observatory Visual Coding two-photon data, session B natural scenes: "
                f"{n_neurons} neurons from {len(experiments)} experiments in "
                f"{', '.join(sorted(set(np.unique(ds['area'].values).tolist())))}. Per-trial response = "
                f"mean L0 event magnitude per imaging frame over {int(window_frames)} frames "
                f"(~{1000 * window_frames / FRAME_RATE_HZ:.0f} ms at 30 Hz) starting "
                f"{int(window_offset_frames)} frames after each presentation onset. Stimuli: the 118 "
                f"scenes (frames 0..117) and the blank screen (-1, constant gray {BLANK_GRAY}); trials in "
                f"presentation order, NaN where a repeat is missing. Built by mbutils from the allensdk "
                f"{allensdk.__version__} cache {str(cache_dir.resolve())!r} on "
                f"{datetime.date.today().isoformat()}."
            ),
            "allen_experiment_ids": json.dumps(sorted(signatures)),
            "window_frames": int(window_frames),
            "window_offset_frames": int(window_offset_frames),
            "response_units": "mean L0 event magnitude per imaging frame",
            "allensdk_version": str(allensdk.__version__),
            "resumed_experiments": int(n_resumed),
        }
    )
    dataset.save(out)
    if not keep_parts:
        shutil.rmtree(parts, ignore_errors=True)
    return out


def _save_template_from_any(cache, experiments, stimuli_path, offline, timeout):
    from allensdk.core.brain_observatory_nwb_data_set import BrainObservatoryNwbDataSet

    paths = [_experiment_paths(cache, e["id"])[0] for e in experiments]
    cached = [p for p in paths if p.exists()]
    if cached:
        nwb = cached[0]
    else:
        eid = int(experiments[0]["id"])
        nwb = download_file(cache.api.save_ophys_experiment_data, eid, paths[0], "NWB file", offline, timeout)
    with reading(nwb, "NWB file"):
        data_set = BrainObservatoryNwbDataSet(str(nwb))
    _save_npy(stimuli_path, _read_template(data_set, nwb))


def _check_offline(cache, experiments, done, stimuli_path):
    """Offline: list everything the build would need that the cache lacks, before any work."""
    missing = []
    have_nwb = False
    for exp in experiments:
        eid = int(exp["id"])
        nwb, events = _experiment_paths(cache, eid)
        have_nwb |= nwb.exists()
        if eid in done:
            continue
        for what, path in (("NWB file", nwb), ("events file", events)):
            if not path.exists():
                missing.append(f"experiment {eid}: {what} {path}")
    if not stimuli_path.exists() and not have_nwb and not missing:
        missing.append("the stimulus template (needs one NWB file of the selected experiments)")
    if missing:
        n_exp = len({m.split(":")[0] for m in missing})
        shown = "\n  ".join(missing[:20]) + (f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise AllenOfflineError(
            f"offline: the cache lacks files of {n_exp} of the {len(experiments)} selected experiments:\n  "
            f"{shown}\nDownload them by running without --offline on a machine with network access, or "
            f"select what is cached with --max-experiments/--areas/--cre-lines."
        )


def _assemble(experiments, signatures, parts, stimuli_path, cell_table):
    """Concatenate the per-experiment parts into a NeuralDataset (neurons in experiment-id order)."""
    from .dataset import NeuralDataset

    blocks, meta = [], {k: [] for k in ("cell_specimen_id", "area", "cre_line", "imaging_depth", "excitatory", "p_run_mod_ns", "ophys_experiment_id")}
    seen = set()
    n_dropped_nan = n_dropped_dup = n_no_meta = 0
    for exp in experiments:
        eid = int(exp["id"])
        part = _load_part(parts / f"{eid}.npz", signatures[eid])
        if part is None:
            raise AllenDataError(f"experiment {eid}: its result {parts / f'{eid}.npz'} vanished during the build")
        resp, ids = part["responses"], part["cell_specimen_id"]
        keep = np.isfinite(resp).any(axis=(1, 2))
        n_dropped_nan += int((~keep).sum())
        for i in np.flatnonzero(keep):
            csid = int(ids[i])
            if csid in seen:
                n_dropped_dup += 1
                keep[i] = False
                continue
            seen.add(csid)
            rec = cell_table.get(csid)
            if rec is None:
                n_no_meta += 1
                rec = {}
            cre = rec.get("tld1_name") or exp["cre_line"]
            p_run = rec.get("p_run_mod_ns")
            meta["cell_specimen_id"].append(csid)
            meta["area"].append(rec.get("area") or exp["targeted_structure"])
            meta["cre_line"].append(str(cre))
            meta["imaging_depth"].append(int(rec.get("imaging_depth") or exp["imaging_depth"]))
            meta["excitatory"].append(_excitatory(cre))
            meta["p_run_mod_ns"].append(np.nan if p_run is None else float(p_run))
            meta["ophys_experiment_id"].append(eid)
        blocks.append(resp[keep])
    if not meta["cell_specimen_id"]:
        raise AllenDataError(
            f"the {len(experiments)} selected experiments hold no neuron with a finite response"
        )
    responses = np.concatenate(blocks, axis=0)
    template = np.load(stimuli_path, allow_pickle=False)
    blank = np.full((1,) + template.shape[1:], BLANK_GRAY, dtype=np.uint8)
    stimuli = np.concatenate([template, blank], axis=0)
    experiment_ids = meta.pop("ophys_experiment_id")
    dataset = NeuralDataset.from_arrays(
        responses,
        stimuli,
        stimulus=STIMULUS_IDS,
        source="allen",
        attrs={
            "n_neurons_dropped_all_nan": n_dropped_nan,
            "n_neurons_dropped_duplicate": n_dropped_dup,
            "n_neurons_without_metadata": n_no_meta,
        },
        **meta,
    )
    ds = dataset.ds.assign_coords(ophys_experiment_id=("neuron", np.asarray(experiment_ids, dtype=np.int64)))
    return NeuralDataset(ds)


# ---------------------------------------------------------------------------------- command line
def add_allen_arguments(parser) -> None:
    """Add the options of ``mbutils data allen`` to an :class:`argparse.ArgumentParser`."""
    parser.add_argument("--cache", required=True, help="allensdk cache folder (holds manifest.json)")
    parser.add_argument("--out", required=True, help="dataset file to write (NetCDF)")
    parser.add_argument("--offline", action="store_true", help="no network call at all: use only what the cache holds")
    parser.add_argument("--max-experiments", type=int, default=None, metavar="N", help="use only the first N experiments")
    parser.add_argument("--areas", nargs="+", default=None, metavar="AREA", help="areas to keep, e.g. VISp VISl")
    parser.add_argument("--cre-lines", nargs="+", default=None, metavar="LINE", help="Cre lines to keep, e.g. Cux2 Rorb")
    parser.add_argument(
        "--window-frames", type=int, default=DEFAULT_WINDOW_FRAMES, metavar="N",
        help=f"response window after each onset, in 30 Hz frames (default {DEFAULT_WINDOW_FRAMES} ~ 250 ms)",
    )
    parser.add_argument("--window-offset-frames", type=int, default=0, metavar="N", help="delay of the window after onset (frames)")
    parser.add_argument("--timeout", type=float, default=NETWORK_TIMEOUT_S, metavar="S", help="network timeout in seconds")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_allen(args) -> int:
    """Run ``mbutils data allen`` with parsed ``args``; return the exit status (0 on success)."""
    import sys

    try:
        path = build_allen_dataset(
            args.cache,
            args.out,
            offline=args.offline,
            max_experiments=args.max_experiments,
            areas=args.areas,
            cre_lines=args.cre_lines,
            window_frames=args.window_frames,
            window_offset_frames=getattr(args, "window_offset_frames", 0),
            timeout=getattr(args, "timeout", NETWORK_TIMEOUT_S),
            progress=False if getattr(args, "no_progress", False) else None,
        )
    except (AllenDataError, ValueError, TypeError) as err:
        print(f"mbutils data allen: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0
