"""Build the dataset file from the Allen Brain Observatory Visual Coding Neuropixels data (natural scenes).

The builder takes, through allensdk's ``EcephysProjectCache``, every session of the
``brain_observatory_1.1`` set (the sessions that show the 118 natural scenes and the blank 50
times each), counts each unit's spikes in a window after every natural-scenes onset (default
0 to 0.25 s), keeps the units that pass Allen's quality metrics in the requested areas, and
writes a dataset file in the schema of :mod:`mbutils.data.dataset` (responses unit x 119
stimuli x 50 trials, the 118 scenes plus the blank screen; spike counts as float32).

Like :mod:`mbutils.data.allen`: per-session results are written atomically to ``OUT.parts/``
(an interrupted build resumes), session files are downloaded atomically, a truncated cache file
is reported by name, and ``offline=True`` makes no network call.

allensdk is imported only inside the functions that need it.

Examples
--------
>>> from mbutils.data.neuropixels import build_neuropixels_dataset
>>> build_neuropixels_dataset("np_cache", "data/neuropixels.nc", areas=["VISp"])   # doctest: +SKIP
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
    network_errors,
    reading,
)

__all__ = [
    "build_neuropixels_dataset",
    "arrange_trials",
    "add_neuropixels_arguments",
    "run_neuropixels",
    "DEFAULT_AREAS",
    "DEFAULT_WINDOW",
    "QUALITY_DEFAULTS",
    "STIMULUS_IDS",
    "AllenDataError",
    "AllenOfflineError",
    "AllenCorruptFileError",
    "AllenNetworkError",
]

N_SCENES = 118
N_TRIALS = 50
#: stimulus coordinate: Allen frames 0..117, then -1 (the blank screen)
STIMULUS_IDS = np.r_[np.arange(N_SCENES), -1].astype(np.int64)
#: value of the constant blank image (mean-luminance gray), as in the two-photon builder
BLANK_GRAY = 127
#: the six visual cortical areas (ecephys_structure_acronym)
DEFAULT_AREAS = ("VISp", "VISl", "VISal", "VISpm", "VISrl", "VISam")
#: spike-count window after each onset, seconds (the 250 ms presentation)
DEFAULT_WINDOW = (0.0, 0.25)
#: unit quality thresholds, applied strictly: isi_violations < 0.5, amplitude_cutoff < 0.1,
#: presence_ratio > 0.95 (Siegle et al. 2021, Nature, Extended Data Fig. 1; allensdk's
#: UNIT_FILTER_DEFAULTS has the same values with <= and >=)
QUALITY_DEFAULTS = {"isi_violations_max": 0.5, "amplitude_cutoff_max": 0.1, "presence_ratio_min": 0.95}
SESSION_TYPE = "brain_observatory_1.1"
NETWORK_TIMEOUT_S = 30.0
_PART_VERSION = 1


# ---------------------------------------------------------------------------------- computation
def arrange_trials(values, frames, start_times, n_trials: int = N_TRIALS, stimulus_ids=STIMULUS_IDS):
    """Arrange per-presentation values into (unit, stimulus, trial), trials in time order.

    Parameters
    ----------
    values : array of shape (n_units, n_presentations)
        One value per unit and presentation (e.g. a spike count).
    frames : array of shape (n_presentations,)
        The stimulus of each presentation (Allen frame index, -1 for the blank).
    start_times : array of shape (n_presentations,)
        Onset of each presentation (s); trials are numbered in this order per stimulus.
    n_trials : int
        Trials kept per stimulus; missing repeats are NaN, extra ones dropped.
    stimulus_ids : array of shape (n_stimuli,)
        Stimulus order of the output.

    Returns
    -------
    responses : ndarray of shape (n_units, n_stimuli, n_trials), float32
    n_shown : ndarray of shape (n_stimuli,), int
        Presentations found per stimulus (before capping at ``n_trials``).
    """
    values = np.asarray(values, dtype=np.float64)
    frames = np.asarray(frames, dtype=np.float64)
    start_times = np.asarray(start_times, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != frames.size or frames.shape != start_times.shape:
        raise ValueError(
            f"values {values.shape}, frames {frames.shape} and start_times {start_times.shape}: expected "
            f"(n_units, n_presentations), (n_presentations,) and (n_presentations,)"
        )
    if not np.isfinite(frames).all() or (frames != np.rint(frames)).any():
        bad = frames[~(frames == np.rint(frames))][:10].tolist()
        raise ValueError(f"stimulus frames must be whole numbers, got {bad}")
    frames = frames.astype(np.int64)
    stimulus_ids = np.asarray(stimulus_ids, dtype=np.int64)
    unknown = np.setdiff1d(frames, stimulus_ids)
    if unknown.size:
        raise ValueError(
            f"stimulus frames {unknown[:10].tolist()} are not among the expected ids "
            f"{stimulus_ids.min()}..{stimulus_ids.max()}"
        )
    order = np.argsort(start_times, kind="stable")
    frames, values = frames[order], values[:, order]
    position = np.searchsorted(np.sort(stimulus_ids), frames)
    position = np.argsort(stimulus_ids)[position]
    trial = np.zeros(frames.size, dtype=np.int64)
    n_shown = np.zeros(stimulus_ids.size, dtype=np.int64)
    for s in range(stimulus_ids.size):
        where = np.flatnonzero(position == s)
        trial[where] = np.arange(where.size)
        n_shown[s] = where.size
    keep = trial < n_trials
    out = np.full((values.shape[0], stimulus_ids.size, int(n_trials)), np.nan, dtype=np.float32)
    out[:, position[keep], trial[keep]] = values[:, keep]
    return out, n_shown


# ---------------------------------------------------------------------------------- allensdk objects
def _import_allensdk():
    with warnings.catch_warnings():  # allensdk 2.16 imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        import allensdk
        from allensdk.brain_observatory.ecephys.ecephys_project_cache import EcephysProjectCache
        from allensdk.brain_observatory.ecephys.ecephys_session import EcephysSession
    return allensdk, EcephysProjectCache, EcephysSession


def _offline_api():
    from allensdk.brain_observatory.ecephys.ecephys_project_api import EcephysProjectFixedApi

    class _OfflineApi(EcephysProjectFixedApi):
        """Refuses every fetch with :class:`AllenOfflineError`."""

        def __getattribute__(self, name):
            if name.startswith("get_"):
                def refuse(*args, **kwargs):
                    raise AllenOfflineError(
                        f"offline: the Neuropixels cache lacks data that needs the API call {name}"
                        f"{args or ''}; run without --offline on a machine with network access"
                    )
                return refuse
            return object.__getattribute__(self, name)

    return _OfflineApi()


def _refuse_write(path, data):
    raise AllenOfflineError(f"offline: refusing to download {path}")


def _make_cache(manifest: Path, offline: bool, fetch_api, timeout: float):
    _, EcephysProjectCache, _ = _import_allensdk()
    if fetch_api is not None:
        from allensdk.brain_observatory.ecephys.ecephys_project_api.http_engine import write_from_stream

        # an api without an http engine returns an iterable of bytes per file
        has_engine = hasattr(fetch_api, "rma_engine") or hasattr(fetch_api, "app_engine")
        writer = _refuse_write if offline else None if has_engine else write_from_stream
        return EcephysProjectCache(fetch_api=fetch_api, stream_writer=writer, manifest=str(manifest))
    if offline:
        return EcephysProjectCache(fetch_api=_offline_api(), stream_writer=_refuse_write, manifest=str(manifest))
    return EcephysProjectCache.from_warehouse(manifest=str(manifest), asynchronous=False, timeout=int(timeout))


# ---------------------------------------------------------------------------------- parts on disk
def _parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def _signature(session_id, window, n_trials, quality, areas) -> str:
    return json.dumps(
        {"version": _PART_VERSION, "session_id": int(session_id), "window": [float(w) for w in window],
         "n_trials": int(n_trials), "quality": {k: float(v) for k, v in quality.items()},
         "areas": sorted(areas)},
        sort_keys=True,
    )


_PART_KEYS = ("responses", "unit_id", "area", "n_shown")


def _load_part(path: Path, signature: str):
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["signature"]) != signature:
                return None
            return {k: npz[k] for k in _PART_KEYS}
    except Exception:  # a part is only ever written atomically; anything odd: recompute it
        return None


def _save_npz(path: Path, **arrays) -> None:
    from .._io import atomic_write

    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def _download(fetch, cache, path: Path, what: str, offline: bool, timeout: float) -> Path:
    """Download one file through the cache's fetch api and stream writer, atomically."""
    from .._io import atomic_write

    if path.exists():
        return path
    if offline:
        raise AllenOfflineError(f"offline: the {what} is not in the cache ({path})")
    path.parent.mkdir(parents=True, exist_ok=True)
    with network_errors(f"downloading the {what}", timeout):
        with atomic_write(path) as tmp:
            cache.stream_writer(str(tmp), fetch())
    return path


# ---------------------------------------------------------------------------------- per session
def _session_path(cache, session_id) -> Path:
    return Path(cache.get_cache_path(None, cache.SESSION_NWB_KEY, int(session_id), int(session_id)))


def _scene_path(cache, number) -> Path:
    return Path(cache.get_cache_path(None, cache.NATURAL_SCENE_KEY, int(number)))


def _check_nwb_reader() -> None:
    """Raise a clear error when pynwb cannot build NWB file objects with the installed hdmf.

    allensdk reads session files with pynwb; pynwb 2.x next to hdmf 4 or later fails on every
    file with "Can't instantiate abstract class NWBFile".
    """
    import hdmf
    import pynwb

    try:
        pynwb.NWBFile(session_description="check", identifier="check",
                      session_start_time=datetime.datetime(2019, 1, 1, tzinfo=datetime.timezone.utc))
    except TypeError as err:
        raise AllenDataError(
            f"allensdk cannot read Neuropixels session files here: pynwb {pynwb.__version__} cannot create NWB "
            f"file objects with hdmf {hdmf.__version__} ({err}). Install an hdmf that this pynwb supports "
            f"(for pynwb 2.8: pip install 'hdmf<4') and run again; finished sessions are kept."
        ) from err


def _open_session(cache, session_id, path: Path, session_api):
    from functools import partial

    _, _, EcephysSession = _import_allensdk()
    if session_api is None:
        _check_nwb_reader()
    unfiltered = {"amplitude_cutoff_maximum": None, "presence_ratio_minimum": None, "isi_violations_maximum": None}
    with reading(path, "session NWB file"):
        if session_api is None:
            api = cache._build_nwb_api_for_session(str(path), int(session_id), True, **unfiltered)
            try:
                return EcephysSession(api=api, test=True)
            except TypeError as err:  # pynwb's error for a file without an NWB version
                raise OSError(f"not a readable NWB-2 file: {err}") from err
        else:
            api = session_api(
                path=str(path),
                external_channel_columns=partial(cache._get_substitute_channel_columns, int(session_id)),
                filter_by_validity=True, **unfiltered,
            )
        return EcephysSession(api=api, test=True)


def _session_counts(session, path, window, n_trials, quality, areas):
    """(responses (n_units, 119, n_trials), unit ids, areas, n_shown) of one session."""
    import pandas as pd

    with reading(path, "session NWB file"):
        units = session.units
        table = session.get_stimulus_table(["natural_scenes"])
    keep = (
        (units["isi_violations"] < quality["isi_violations_max"])
        & (units["amplitude_cutoff"] < quality["amplitude_cutoff_max"])
        & (units["presence_ratio"] > quality["presence_ratio_min"])
        & units["ecephys_structure_acronym"].isin(list(areas))
    )
    units = units[keep].sort_index()
    frames = pd.to_numeric(table["frame"], errors="coerce").to_numpy()
    if table.shape[0] == 0:
        raise AllenCorruptFileError(
            f"the session file {str(path)!r} has no valid natural_scenes presentation although the session "
            f"table lists it as {SESSION_TYPE}; the file is probably stale or corrupt: delete it and run again"
        )
    with reading(path, "session NWB file"):
        counts = session.presentationwise_spike_counts(
            bin_edges=np.array([float(window[0]), float(window[1])]),
            stimulus_presentation_ids=table.index.values,
            unit_ids=units.index.values,
        )
    values = counts.values[:, 0, :].T  # (n_units, n_presentations)
    try:
        responses, n_shown = arrange_trials(values, frames, table["start_time"].to_numpy(), n_trials)
    except ValueError as err:
        raise AllenCorruptFileError(f"natural_scenes table of {str(path)!r}: {err}") from err
    return responses, units.index.to_numpy(np.int64), units["ecephys_structure_acronym"].astype(str).to_numpy(), n_shown


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


def _select_sessions(sessions, areas, max_sessions, strict=True):
    import difflib

    sessions = sessions[sessions["session_type"] == SESSION_TYPE].sort_index()
    if sessions.empty:
        raise AllenDataError(f"the cache's session table has no {SESSION_TYPE} session (natural scenes)")
    acronyms = [set(a for a in (s if isinstance(s, (list, tuple, np.ndarray)) else []) if isinstance(a, str))
                for s in sessions["ecephys_structure_acronyms"]]
    valid = sorted(set().union(*acronyms))
    for a in areas if strict else ():
        if a not in valid:
            close = difflib.get_close_matches(a, valid)
            hint = f" (did you mean {close}?)" if close else ""
            raise ValueError(f"area {a!r} is recorded in no {SESSION_TYPE} session{hint}; valid areas: {valid}")
    keep = [bool(acr & set(areas)) for acr in acronyms]
    sessions = sessions[keep]
    if max_sessions is not None:
        sessions = sessions.iloc[: int(max_sessions)]
    return sessions


# ---------------------------------------------------------------------------------- the builder
def build_neuropixels_dataset(
    cache_dir,
    out,
    offline: bool = False,
    window=DEFAULT_WINDOW,
    areas=None,
    max_sessions: int | None = None,
    n_trials: int = N_TRIALS,
    isi_violations_max: float = QUALITY_DEFAULTS["isi_violations_max"],
    amplitude_cutoff_max: float = QUALITY_DEFAULTS["amplitude_cutoff_max"],
    presence_ratio_min: float = QUALITY_DEFAULTS["presence_ratio_min"],
    fetch_api=None,
    session_api=None,
    timeout: float = NETWORK_TIMEOUT_S,
    keep_parts: bool = True,
    progress: bool | None = None,
) -> Path:
    """Build the dataset file from an allensdk Visual Coding Neuropixels cache.

    Parameters
    ----------
    cache_dir : str or pathlib.Path
        The allensdk cache folder (``EcephysProjectCache(manifest=cache_dir/"manifest.json")``);
        created and filled by downloads unless ``offline``.
    out : str or pathlib.Path
        The dataset file to write (NetCDF). Per-session results go to ``out + ".parts/"``; a rerun
        skips the sessions found there (computed with the same window, filters and areas).
    offline : bool
        Make no network call: read only what the cache holds; anything missing raises
        :class:`AllenOfflineError` before any work, listing what is missing.
    window : (float, float), default (0, 0.25)
        Spike-count window after each onset, in seconds; allensdk counts spikes at times
        ``t`` with ``onset + window[0] <= t <= onset + window[1]``.
    areas : list of str, optional
        ``ecephys_structure_acronym`` values to keep, e.g. ``["VISp", "LGd", "LP"]``; an area
        recorded in no session raises :class:`ValueError`. Default: the six visual areas
        (VISp, VISl, VISal, VISpm, VISrl, VISam), those recorded.
    max_sessions : int, optional
        Use only the first N sessions (by id) that record in ``areas``.
    n_trials : int, default 50
        Trials per stimulus; missing repeats are NaN.
    isi_violations_max, amplitude_cutoff_max, presence_ratio_min : float
        Unit quality thresholds, applied strictly (``isi_violations < 0.5``,
        ``amplitude_cutoff < 0.1``, ``presence_ratio > 0.95`` by default). allensdk's own
        filters still apply: ``quality == "good"`` and a peak channel inside the brain.
    fetch_api : object, optional
        The ``EcephysProjectApi`` to download with (default allensdk's warehouse api).
    session_api : callable, optional
        Factory of the session reader, called with allensdk's ``EcephysNwbSessionApi`` keyword
        arguments; default allensdk's NWB reader. The test fixture passes
        :class:`mbutils.data._neuropixels_fixture.FakeSessionApi`.
    timeout : float, default 30
        Seconds before a network operation gives up.
    keep_parts : bool, default True
        Keep ``out.parts/`` after success.
    progress : bool, optional
        Show a progress bar per session (default ``mbutils.get_config().progress``).

    Returns
    -------
    pathlib.Path
        ``out``: ``responses(neuron, stimulus, trial)`` float32 spike counts (stimuli 0..117,
        -1), ``stimuli(stimulus, y, x)`` uint8 (the natural-scenes template and a constant gray
        blank), per-unit ``cell_specimen_id`` (the ecephys unit id), ``area``,
        ``ecephys_session_id`` and ``specimen_id`` (the mouse), the unknown values
        ``cre_line='unknown'``, ``imaging_depth=-1``, ``excitatory=NaN`` and ``p_run_mod_ns=NaN``
        (not measured), attribute ``source='allen_neuropixels'``.

    Raises
    ------
    AllenOfflineError
        Offline and the cache lacks tables or files of the selected sessions.
    AllenCorruptFileError
        A cached file cannot be read; the message names it and says to delete it.
    AllenNetworkError
        The API could not be reached.
    ValueError
        Bad arguments (unknown area, empty window, ...).
    """
    from tqdm import tqdm

    from .. import get_config

    if progress is None:
        progress = get_config().progress
    try:
        window = (float(window[0]), float(window[1]))
    except (TypeError, IndexError, ValueError):
        raise ValueError(f"window={window!r}; expected (start, stop) in seconds, e.g. (0, 0.25)") from None
    if not window[1] > window[0]:
        raise ValueError(f"window={window!r}; the stop must be after the start (seconds after onset)")
    if max_sessions is not None and (int(max_sessions) != max_sessions or max_sessions < 1):
        raise ValueError(f"max_sessions={max_sessions!r}; expected a positive int or None")
    if int(n_trials) != n_trials or n_trials < 1:
        raise ValueError(f"n_trials={n_trials!r}; expected an int >= 1")
    strict_areas = areas is not None
    areas = list(DEFAULT_AREAS) if areas is None else _as_list(areas, "areas")
    if not areas:
        raise ValueError(f"areas={areas!r}; give at least one ecephys_structure_acronym, e.g. VISp")
    quality = {"isi_violations_max": float(isi_violations_max), "amplitude_cutoff_max": float(amplitude_cutoff_max),
               "presence_ratio_min": float(presence_ratio_min)}
    cache_dir, out = Path(cache_dir), Path(out)
    manifest = cache_dir / "manifest.json"
    if offline and not manifest.exists():
        raise AllenOfflineError(
            f"offline: no Neuropixels cache at {str(cache_dir)!r} ({manifest.name} is missing); build one on a "
            f"machine with network access: mbutils data neuropixels --cache {cache_dir} --out {out}"
        )
    allensdk, _, _ = _import_allensdk()
    with reading(manifest, "allensdk manifest"):
        cache = _make_cache(manifest, offline, fetch_api, timeout)

    tables = {key: Path(cache.get_cache_path(None, key)) for key in
              (cache.SESSIONS_KEY, cache.PROBES_KEY, cache.CHANNELS_KEY, cache.UNITS_KEY)}
    if offline:
        missing = [str(p) for p in tables.values() if not p.exists()]
        if missing:
            raise AllenOfflineError(
                f"offline: the Neuropixels cache lacks the project tables {missing}; run once without "
                f"--offline to download them"
            )
    with network_errors("downloading the project tables", timeout):
        with reading(tables[cache.SESSIONS_KEY], "session table"):
            sessions = cache.get_session_table()
    sessions = _select_sessions(sessions, areas, max_sessions, strict_areas)
    if sessions.empty:
        raise AllenDataError(f"no {SESSION_TYPE} session in {str(cache_dir)!r} records in {areas}")

    parts = _parts_dir(out)
    parts.mkdir(parents=True, exist_ok=True)
    stimuli_path = parts / "stimuli.npy"
    signatures = {int(sid): _signature(sid, window, n_trials, quality, areas) for sid in sessions.index}
    done = {sid for sid in signatures if _load_part(parts / f"{sid}.npz", signatures[sid]) is not None}
    if offline:
        _check_offline(cache, signatures, done, stimuli_path)

    bar = tqdm(list(signatures), desc="Neuropixels sessions", unit="session", disable=not progress)
    for sid in bar:
        bar.set_postfix_str(str(sid))
        if sid in done:
            continue
        path = _download(lambda: cache.fetch_api.get_session_data(sid), cache, _session_path(cache, sid),
                         f"NWB file of session {sid}", offline, timeout)
        session = _open_session(cache, sid, path, session_api)
        responses, unit_ids, unit_areas, n_shown = _session_counts(session, path, window, n_trials, quality, areas)
        del session
        _save_npz(parts / f"{sid}.npz", responses=responses, unit_id=unit_ids, area=unit_areas.astype("U16"),
                  n_shown=n_shown, signature=np.array(signatures[sid]))
    bar.close()
    if not stimuli_path.exists():
        _save_template(cache, stimuli_path, offline, timeout)

    dataset = _assemble(sessions, signatures, parts, stimuli_path)
    ds = dataset.ds
    ds.attrs.update({
        "description": (
            f"Allen Brain Observatory Visual Coding Neuropixels, {SESSION_TYPE} natural scenes: "
            f"{ds.sizes['neuron']} units from {len(signatures)} sessions in "
            f"{', '.join(sorted(set(ds['area'].values.tolist())))}. Per-trial response = spike count in "
            f"[{window[0]:g}, {window[1]:g}] s after each presentation onset. Units with isi_violations < "
            f"{quality['isi_violations_max']:g}, amplitude_cutoff < {quality['amplitude_cutoff_max']:g}, "
            f"presence_ratio > {quality['presence_ratio_min']:g}, quality 'good', inside the brain. Stimuli: "
            f"the 118 scenes (frames 0..117) and the blank (-1, constant gray {BLANK_GRAY}); trials in "
            f"presentation order, NaN where a repeat is missing. cre_line, imaging_depth, excitatory and "
            f"p_run_mod_ns are not measured (unknown values). Built by mbutils from the allensdk "
            f"{allensdk.__version__} cache {str(cache_dir.resolve())!r} on {datetime.date.today().isoformat()}."
        ),
        "ecephys_session_ids": json.dumps(sorted(signatures)),
        "window_s": json.dumps(list(window)),
        "quality_filters": json.dumps(quality),
        "response_units": "spike count",
        "allensdk_version": str(allensdk.__version__),
        "resumed_sessions": int(len(done)),
    })
    dataset.save(out)
    if not keep_parts:
        shutil.rmtree(parts, ignore_errors=True)
    return out


def _save_template(cache, stimuli_path, offline, timeout):
    """The 118 scene images, (118, height, width) uint8, read with allensdk's reader."""
    from allensdk.brain_observatory.ecephys.ecephys_project_cache import read_scene

    from .._io import atomic_write

    images = []
    for i in range(N_SCENES):
        path = _download(lambda: cache.fetch_api.get_natural_scene_template(number=i), cache,
                         _scene_path(cache, i), f"natural scene template {i}", offline, timeout)
        with reading(path, "natural scene template"):
            try:
                img = np.asarray(read_scene(str(path)))
            except RuntimeError as err:  # SimpleITK's error for an unreadable image
                raise OSError(str(err).strip().splitlines()[-1]) from err
        if img.ndim != 2 or (images and img.shape != images[0].shape):
            raise AllenCorruptFileError(
                f"the natural scene template {str(path)!r} has shape {img.shape}, expected a 2-d grayscale image "
                f"like the others{f' {images[0].shape}' if images else ''}; delete it and run again"
            )
        images.append(img.astype(np.uint8, copy=False))
    with atomic_write(stimuli_path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.stack(images))


def _check_offline(cache, signatures, done, stimuli_path):
    """Offline: list everything the build would need that the cache lacks, before any work."""
    missing = [f"session {sid}: NWB file {_session_path(cache, sid)}" for sid in signatures
               if sid not in done and not _session_path(cache, sid).exists()]
    if not stimuli_path.exists():
        missing += [f"natural scene template {i}: {_scene_path(cache, i)}" for i in range(N_SCENES)
                    if not _scene_path(cache, i).exists()]
    if missing:
        n_sessions = sum(m.startswith("session") for m in missing)
        shown = "\n  ".join(missing[:20]) + (f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise AllenOfflineError(
            f"offline: the cache lacks {len(missing)} files ({n_sessions} of the {len(signatures)} selected "
            f"sessions):\n  {shown}\nDownload them by running without --offline on a machine with network "
            f"access, or select what is cached with --max-sessions/--areas."
        )


def _assemble(sessions, signatures, parts, stimuli_path):
    """Concatenate the per-session parts into a NeuralDataset (units in session, unit-id order)."""
    from .dataset import NeuralDataset

    blocks, ids, areas, session_ids, specimen_ids = [], [], [], [], []
    n_dropped_nan = 0
    for sid in signatures:
        part = _load_part(parts / f"{sid}.npz", signatures[sid])
        if part is None:
            raise AllenDataError(f"session {sid}: its result {parts / f'{sid}.npz'} vanished during the build")
        keep = np.isfinite(part["responses"]).any(axis=(1, 2))
        n_dropped_nan += int((~keep).sum())
        blocks.append(part["responses"][keep])
        ids.append(part["unit_id"][keep])
        areas.append(part["area"][keep].astype(str))
        session_ids.append(np.full(int(keep.sum()), sid, dtype=np.int64))
        specimen_ids.append(np.full(int(keep.sum()), int(sessions.loc[sid, "specimen_id"]), dtype=np.int64))
    ids = np.concatenate(ids)
    if ids.size == 0:
        raise AllenDataError(f"the {len(signatures)} selected sessions hold no unit that passes the filters")
    template = np.load(stimuli_path, allow_pickle=False)
    blank = np.full((1,) + template.shape[1:], BLANK_GRAY, dtype=np.uint8)
    # cre_line, imaging_depth, excitatory and p_run_mod_ns are not given: the dataset fills
    # them with its unknown values ("unknown", -1, NaN, NaN)
    dataset = NeuralDataset.from_arrays(
        np.concatenate(blocks), np.concatenate([template, blank], axis=0), stimulus=STIMULUS_IDS,
        cell_specimen_id=ids, area=np.concatenate(areas), specimen_id=np.concatenate(specimen_ids),
        source="allen_neuropixels", attrs={"n_neurons_dropped_all_nan": n_dropped_nan},
    )
    ds = dataset.ds.assign_coords(ecephys_session_id=("neuron", np.concatenate(session_ids)))
    return NeuralDataset(ds)


# ---------------------------------------------------------------------------------- command line
def add_neuropixels_arguments(parser) -> None:
    """Add the options of ``mbutils data neuropixels`` to an :class:`argparse.ArgumentParser`."""
    parser.add_argument("--cache", required=True, help="allensdk cache folder (holds manifest.json)")
    parser.add_argument("--out", required=True, help="dataset file to write (NetCDF)")
    parser.add_argument("--offline", action="store_true", help="no network call at all: use only what the cache holds")
    parser.add_argument("--window", nargs=2, type=float, default=list(DEFAULT_WINDOW), metavar=("START", "STOP"),
                        help="spike-count window after each onset, seconds (default 0 0.25)")
    parser.add_argument("--areas", nargs="+", default=None, metavar="AREA",
                        help="ecephys_structure_acronym values to keep (default the six visual areas; e.g. LGd LP)")
    parser.add_argument("--max-sessions", type=int, default=None, metavar="N", help="use only the first N sessions")
    parser.add_argument("--isi-violations-max", type=float, default=QUALITY_DEFAULTS["isi_violations_max"], metavar="X",
                        help="keep units with isi_violations < X (default 0.5)")
    parser.add_argument("--amplitude-cutoff-max", type=float, default=QUALITY_DEFAULTS["amplitude_cutoff_max"],
                        metavar="X", help="keep units with amplitude_cutoff < X (default 0.1)")
    parser.add_argument("--presence-ratio-min", type=float, default=QUALITY_DEFAULTS["presence_ratio_min"],
                        metavar="X", help="keep units with presence_ratio > X (default 0.95)")
    parser.add_argument("--timeout", type=float, default=NETWORK_TIMEOUT_S, metavar="S",
                        help="network timeout in seconds")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_neuropixels(args) -> int:
    """Run ``mbutils data neuropixels`` with parsed ``args``; return the exit status (0 on success)."""
    import sys

    try:
        path = build_neuropixels_dataset(
            args.cache, args.out, offline=args.offline, window=tuple(args.window), areas=args.areas,
            max_sessions=args.max_sessions, timeout=getattr(args, "timeout", NETWORK_TIMEOUT_S),
            isi_violations_max=args.isi_violations_max, amplitude_cutoff_max=args.amplitude_cutoff_max,
            presence_ratio_min=args.presence_ratio_min,
            session_api=getattr(args, "session_api", None),
            progress=False if getattr(args, "no_progress", False) else None,
        )
    except (AllenDataError, ValueError, TypeError) as err:
        print(f"mbutils data neuropixels: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0
