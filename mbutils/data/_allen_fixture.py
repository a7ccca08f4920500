"""A tiny fake Allen Brain Observatory cache with planted responses (no network needed).

It is laid out exactly as ``allensdk.core.brain_observatory_cache.BrainObservatoryCache``
(manifest version 1.3) stores its downloads, so the real allensdk code path reads it:

- ``manifest.json`` (written by allensdk's own manifest builder),
- ``ophys_experiments.json``, ``experiment_containers.json``, ``cell_specimens.json``
  (the API's JSON records, reduced to the fields allensdk and the builder use),
- ``ophys_experiment_data/<id>.nwb``: NWB-1 HDF5 files with the natural-scenes stimulus
  table (``stimulus/presentation/natural_scenes_stimulus/{data,frame_duration}``), the
  stimulus template (``stimulus/templates/natural_scenes_image_stack/data``) and the cell
  specimen ids (``processing/brain_observatory_pipeline/ImageSegmentation/cell_specimen_ids``),
- ``ophys_experiment_events/<id>_events.npz``: L0 events, key ``ev``, (n_cells, n_frames).

The template is tiny (118 x 6 x 8 instead of 918 x 1174): allensdk reads it as is.
Use it to try :func:`mbutils.data.allen.build_allen_dataset` offline::

    from mbutils.data._allen_fixture import make_fake_allen_cache
    fake = make_fake_allen_cache("/tmp/fake_allen")
    build_allen_dataset(fake.cache_dir, "/tmp/fake_allen.nc", offline=True)
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

__all__ = ["make_fake_allen_cache", "FakeAllenCache", "FAKE_EXPERIMENTS"]

N_SCENES = 118
N_TRIALS = 50
FRAMES_PER_PRESENTATION = 8  # presentations start every 8 acquisition frames
TEMPLATE_SHAPE = (6, 8)

#: (experiment id, container id, area, Cre line, depth, session, container failed, n_cells)
FAKE_EXPERIMENTS = [
    (101, 901, "VISp", "Cux2-CreERT2", 175, "three_session_B", False, 5),
    (102, 902, "VISl", "Sst-IRES-Cre", 275, "three_session_B", False, 3),
    (103, 903, "VISal", "Rbp4-Cre_KL100", 375, "three_session_B", False, 4),
    # filtered out: a session without natural scenes, and a failed container
    (104, 901, "VISp", "Cux2-CreERT2", 175, "three_session_A", False, 5),
    (105, 905, "VISpm", "Emx1-IRES-Cre", 175, "three_session_B", True, 2),
]


@dataclasses.dataclass
class FakeAllenCache:
    """What :func:`make_fake_allen_cache` wrote and the values it planted.

    Attributes
    ----------
    cache_dir : pathlib.Path
    manifest : pathlib.Path
    experiment_ids : list of int
        The natural-scenes experiments of non-failed containers (what the builder should use).
    responses : dict int -> ndarray of shape (119, 50)
        Per cell specimen id, the planted mean event rate per (stimulus, trial), stimuli in
        the order 0..117 then -1 (blank); NaN where the repeat was not shown.
    cells : pandas.DataFrame
        Expected per-neuron metadata (cell_specimen_id, area, cre_line, imaging_depth,
        excitatory, p_run_mod_ns, ophys_experiment_id).
    template : ndarray of shape (118, 6, 8), uint8
    window_frames : int
        The window the planted values are means over.
    """

    cache_dir: Path
    manifest: Path
    experiment_ids: list
    responses: dict
    cells: object
    template: np.ndarray
    window_frames: int

    def nwb_path(self, experiment_id) -> Path:
        return self.cache_dir / "ophys_experiment_data" / f"{experiment_id}.nwb"

    def events_path(self, experiment_id) -> Path:
        return self.cache_dir / "ophys_experiment_events" / f"{experiment_id}_events.npz"


def _specimen(eid, cre):
    return {
        "name": f"{cre.split('-')[0]};Camk2a-tTA;Ai93-{eid}",
        "donor": {
            "external_donor_name": str(eid * 10),
            "date_of_birth": "2016-01-01T00:00:00Z",
            "transgenic_lines": [
                {"name": cre, "transgenic_line_type_name": "driver"},
                {"name": "Ai93(TITL-GCaMP6f)", "transgenic_line_type_name": "reporter"},
            ],
            "conditions": [],
        },
    }


def _write_nwb(path, session_type, area, cre, depth, eid, cid, frames, starts, template, cell_ids):
    import h5py

    with h5py.File(path, "w") as f:
        f["general/session_type"] = np.bytes_(session_type)
        f["general/session_id"] = np.bytes_(str(eid))
        f["general/experiment_container_id"] = np.bytes_(str(cid))
        f["general/subject/genotype"] = np.bytes_(f"{cre}/wt;Ai93(TITL-GCaMP6f)/wt")
        f["general/subject/age"] = np.bytes_("90 days")
        f["general/subject/sex"] = np.bytes_("male")
        f["general/optophysiology/imaging_plane_1/imaging depth"] = np.bytes_(f"{depth} microns")
        f["general/optophysiology/imaging_plane_1/location"] = np.bytes_(f"area: {area}")
        f["general/generated_by"] = np.array([b"mbutils", b"fake", b"3.0"])
        f["general/devices/2-photon microscope"] = np.bytes_("Fake two-photon scope. fake_scope Please ignore")
        f["general/optophysiology/imaging_plane_1/excitation_lambda"] = np.bytes_("910 nanometers")
        f["general/optophysiology/imaging_plane_1/indicator"] = np.bytes_("GCaMP6f")
        f["general/fov"] = np.bytes_("400x400 microns (512 x 512 pixels)")
        f["session_start_time"] = np.bytes_("2016-04-01 10:00:00")
        f["general/specimen_name"] = np.bytes_(f"fake-{eid}")
        pres = f.create_group("stimulus/presentation/natural_scenes_stimulus")
        pres["data"] = frames.astype(np.float32)
        pres["frame_duration"] = np.stack([starts, starts + 7], axis=1).astype(np.float64)
        f["stimulus/templates/natural_scenes_image_stack/data"] = template
        seg = f.create_group("processing/brain_observatory_pipeline/ImageSegmentation")
        seg["cell_specimen_ids"] = np.asarray(cell_ids, dtype=np.int64)


def make_fake_allen_cache(cache_dir, seed: int = 0, window_frames: int = 7) -> FakeAllenCache:
    """Write a tiny fake Allen cache with planted per-trial responses.

    Every experiment shows the 118 scenes and the blank (frame -1) 50 times each in a shuffled
    order, one presentation every 8 frames; a few repeats are left out (their expected
    response is NaN). For each presentation of each cell, events are placed at the onset and at
    ``onset + window_frames - 1`` so that their mean over ``window_frames`` frames from the onset
    is the planted value, plus a distractor event at ``onset + window_frames`` (outside the
    window, before the next onset) that a correct builder ignores.

    Parameters
    ----------
    cache_dir : str or pathlib.Path
        Folder to create (the manifest is ``cache_dir/manifest.json``).
    seed : int
        Seed of the planted values and presentation order.
    window_frames : int, default 7
        Window (in frames, from onset) over which planted values are means; must be < 8.

    Returns
    -------
    FakeAllenCache
    """
    import pandas as pd
    from allensdk.core.brain_observatory_cache import BrainObservatoryCache

    if not 1 <= window_frames < FRAMES_PER_PRESENTATION:
        raise ValueError(f"window_frames={window_frames!r}; expected 1..{FRAMES_PER_PRESENTATION - 1}")
    cache_dir = Path(cache_dir)
    (cache_dir / "ophys_experiment_data").mkdir(parents=True, exist_ok=True)
    (cache_dir / "ophys_experiment_events").mkdir(parents=True, exist_ok=True)
    manifest = cache_dir / "manifest.json"
    BrainObservatoryCache(manifest_file=str(manifest))  # allensdk writes its v1.3 manifest

    rng = np.random.default_rng(seed)
    template = rng.integers(0, 256, size=(N_SCENES,) + TEMPLATE_SHAPE, dtype=np.uint8)
    stimulus_order = list(range(N_SCENES)) + [-1]

    experiments, containers, cell_records, cell_rows = [], {}, [], []
    expected, used_ids = {}, []
    next_cell = 5_000_000
    for eid, cid, area, cre, depth, session, failed, n_cells in FAKE_EXPERIMENTS:
        experiments.append(
            {
                "id": eid,
                "imaging_depth": depth,
                "targeted_structure": {"acronym": area},
                "specimen": _specimen(eid, cre),
                "experiment_container_id": cid,
                "experiment_container": {"id": cid, "failed": failed},
                "stimulus_name": session,
                "date_of_acquisition": "2016-04-01T00:00:00Z",
            }
        )
        containers[cid] = {
            "id": cid,
            "imaging_depth": depth,
            "targeted_structure": {"acronym": area},
            "specimen": _specimen(eid, cre),
            "failed": failed,
        }
        cell_ids = list(range(next_cell, next_cell + n_cells))
        next_cell += 1000
        excitatory = cre.split("-")[0] not in ("Sst", "Vip", "Pvalb")
        for i, csid in enumerate(cell_ids):
            p_run = None if eid == 103 and i == 0 else round(float(rng.uniform(0, 1)), 4)
            cell_records.append(
                {
                    "cell_specimen_id": csid,
                    "area": area,
                    "tld1_name": cre,
                    "imaging_depth": depth,
                    "p_run_mod_ns": p_run,
                    "experiment_container_id": cid,
                    "failed_experiment_container": failed,
                    "all_stim": True,
                }
            )
            if session == "three_session_B" and not failed:
                cell_rows.append(
                    {
                        "cell_specimen_id": csid,
                        "area": area,
                        "cre_line": cre,
                        "imaging_depth": depth,
                        "excitatory": excitatory,
                        "p_run_mod_ns": np.nan if p_run is None else p_run,
                        "ophys_experiment_id": eid,
                    }
                )
        if session != "three_session_B" or failed:
            continue
        used_ids.append(eid)

        # presentations: every stimulus 50 times, shuffled; drop a few repeats
        frames = np.repeat(np.array(stimulus_order), N_TRIALS)
        rng.shuffle(frames)
        drop = {(eid % 7) + 3: 2, -1: 1}  # stimulus -> number of repeats missing
        keep = np.ones(frames.size, dtype=bool)
        for stim, n_drop in drop.items():
            where = np.flatnonzero(frames == stim)
            keep[where[-n_drop:]] = False
        frames = frames[keep]
        first = 30  # some frames before the first presentation
        starts = first + FRAMES_PER_PRESENTATION * np.arange(frames.size)
        n_frames = int(starts[-1]) + 2 * FRAMES_PER_PRESENTATION

        # planted responses: multiples of 1/64 in [0, 2)
        planted = rng.integers(0, 128, size=(n_cells, frames.size)) / 64.0
        events = np.zeros((n_cells, n_frames), dtype=np.float64)
        first_part = planted * rng.uniform(0.2, 0.8, size=planted.shape) * window_frames
        events[:, starts] = first_part
        events[:, starts + window_frames - 1] += planted * window_frames - first_part
        events[:, starts + window_frames] += 5.0  # distractor just after the window
        np.savez_compressed(cache_dir / "ophys_experiment_events" / f"{eid}_events.npz", ev=events)
        _write_nwb(
            cache_dir / "ophys_experiment_data" / f"{eid}.nwb",
            session, area, cre, depth, eid, cid, frames, starts, template, cell_ids,
        )

        for c, csid in enumerate(cell_ids):
            resp = np.full((len(stimulus_order), N_TRIALS), np.nan)
            for s_idx, stim in enumerate(stimulus_order):
                shown = np.flatnonzero(frames == stim)  # in presentation (= time) order
                resp[s_idx, : shown.size] = planted[c, shown]
            expected[csid] = resp

    (cache_dir / "ophys_experiments.json").write_text(json.dumps(experiments))
    (cache_dir / "experiment_containers.json").write_text(json.dumps(list(containers.values())))
    (cache_dir / "cell_specimens.json").write_text(json.dumps(cell_records))
    return FakeAllenCache(
        cache_dir=cache_dir,
        manifest=manifest,
        experiment_ids=used_ids,
        responses=expected,
        cells=pd.DataFrame(cell_rows),
        template=template,
        window_frames=window_frames,
    )
