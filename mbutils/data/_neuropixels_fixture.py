"""A tiny fake Allen Visual Coding Neuropixels cache with planted spike counts (no network needed).

It is laid out as ``allensdk.brain_observatory.ecephys.ecephys_project_cache.EcephysProjectCache``
(manifest version 0.3.0) stores its downloads, and the real allensdk code reads all of it except
the session NWB files:

- ``manifest.json`` (written by allensdk's own manifest builder);
- ``sessions.csv``, ``probes.csv``, ``channels.csv``, ``units.csv``: the project tables, with the
  columns allensdk's ``get_session_table``/``get_units``/``get_channels`` use;
- ``natural_scene_templates/natural_scene_<i>.tiff``: the 118 scenes (tiny, 6 x 8 pixels,
  grayscale uint8), read by allensdk's ``get_natural_scene_template``;
- ``session_<id>/session_<id>.nwb``: one file per session, at the path allensdk downloads it to.

The session files are **not** NWB-2 files. allensdk 2.16.2 reads session files with pynwb, and
pynwb 2.8.3 cannot create NWB file objects next to hdmf 6.2.0 (the versions of this project's
lock file: ``pynwb.NWBFile(...)`` raises "Can't instantiate abstract class NWBFile with abstract
method external_resources", and so does reading any NWB-2 file). The fixture therefore writes an
HDF5 file that holds the same tables under NWB-like paths (``units``, ``electrodes``,
``electrode_groups``, ``intervals/<stimulus>_presentations``), and substitutes only allensdk's NWB
reader layer: :class:`FakeSessionApi` is an ``EcephysSessionApi`` that turns those tables into
allensdk's own ``Channel``/``Unit``/``Probe`` objects. Everything above that layer is allensdk's
code: ``EcephysSession`` (its stimulus table, units table, unit filtering by
``Probes.get_units_table``, ``presentationwise_spike_counts``) and ``EcephysProjectCache``. Pass
``session_api=FakeSessionApi`` to :func:`mbutils.data.neuropixels.build_neuropixels_dataset`.

Example::

    from mbutils.data._neuropixels_fixture import make_fake_neuropixels_cache, FakeSessionApi
    fake = make_fake_neuropixels_cache("/tmp/fake_np")
    build_neuropixels_dataset(fake.cache_dir, "/tmp/np.nc", offline=True, session_api=FakeSessionApi)
"""
from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import numpy as np

__all__ = ["make_fake_neuropixels_cache", "FakeNeuropixelsCache", "FakeSessionApi", "FAKE_SESSIONS"]

N_SCENES = 118
N_TRIALS = 50
TEMPLATE_SHAPE = (6, 8)
#: presentations start every PERIOD_S seconds; each natural scene is shown for 0.25 s
PERIOD_S = 0.5
#: spikes planted for the default window (0, 0.25) lie in [IN_LO, IN_HI] after the onset
IN_LO, IN_HI = 0.01, 0.24
#: distractor spikes lie in [OUT_LO, OUT_HI] after the onset: outside the default window,
#: inside (0, 0.5)
OUT_LO, OUT_HI = 0.27, 0.48

#: (session id, specimen id, session type, [(probe id, probe name, [channel areas])])
FAKE_SESSIONS = [
    (7001, 501, "brain_observatory_1.1", [(70011, "probeA", ["VISp", "VISp", "LGd", "CA1"]),
                                          (70012, "probeB", ["VISl", "VISl"])]),
    (7002, 502, "brain_observatory_1.1", [(70021, "probeC", ["VISam", "VISrl", None])]),
    (7003, 503, "functional_connectivity", [(70031, "probeD", ["VISp", "VISp"])]),
]

#: per session, the units: (channel index in the session, quality, isi_violations,
#: amplitude_cutoff, presence_ratio, why it must be left out or None)
_UNIT_SPECS = {
    7001: [
        (0, "good", 0.10, 0.01, 0.99, None),
        (0, "good", 0.49, 0.09, 0.96, None),  # just inside every threshold
        (1, "good", 0.50, 0.01, 0.99, "isi_violations"),  # Allen's thresholds are strict
        (1, "good", 0.10, 0.20, 0.99, "amplitude_cutoff"),
        (0, "good", 0.10, 0.01, 0.95, "presence_ratio"),  # strict: 0.95 is out
        (1, "noise", 0.10, 0.01, 0.99, "quality"),
        (2, "good", 0.05, 0.02, 0.97, "area LGd (not a default area)"),
        (3, "good", 0.05, 0.02, 0.97, "area CA1"),
        (4, "good", 0.20, 0.05, 0.98, None),
        (5, "good", 0.00, 0.00, 1.00, None),
    ],
    7002: [
        (0, "good", 0.10, 0.03, 0.96, None),
        (1, "good", 0.10, 0.03, 0.96, None),
        (1, "good", 0.10, 0.03, 0.97, None),
        (2, "good", 0.10, 0.03, 0.96, "outside the brain"),
    ],
    7003: [
        (0, "good", 0.10, 0.03, 0.96, "functional_connectivity session"),
    ],
}


@dataclasses.dataclass
class FakeNeuropixelsCache:
    """What :func:`make_fake_neuropixels_cache` wrote and the values it planted.

    Attributes
    ----------
    cache_dir : pathlib.Path
    manifest : pathlib.Path
    session_ids : list of int
        The brain_observatory_1.1 sessions (those with natural scenes).
    counts : dict int -> ndarray of shape (119, 50)
        Per unit id, the planted spike count in (0 s, 0.25 s] after each onset, per
        (stimulus, trial), stimuli 0..117 then -1 (blank); NaN where the repeat was not shown.
    distractors : dict int -> ndarray of shape (119, 50)
        Per unit id, the spikes planted in (0.25 s, 0.5 s) after each onset (same layout).
    units : pandas.DataFrame
        Every planted unit: unit_id, ecephys_session_id, specimen_id, area (None: outside the
        brain), quality, isi_violations, amplitude_cutoff, presence_ratio and ``excluded`` (why
        the default build leaves it out, or None).
    template : ndarray of shape (118, 6, 8), uint8
    """

    cache_dir: Path
    manifest: Path
    session_ids: list
    counts: dict
    distractors: dict
    units: object
    template: np.ndarray

    def session_path(self, session_id) -> Path:
        return self.cache_dir / f"session_{session_id}" / f"session_{session_id}.nwb"

    def scene_path(self, number) -> Path:
        return self.cache_dir / "natural_scene_templates" / f"natural_scene_{number}.tiff"

    def expected_units(self, areas=("VISp", "VISl", "VISal", "VISpm", "VISrl", "VISam")):
        """Unit ids the default filters keep in ``areas``, in the builder's order (session, unit id)."""
        u = self.units
        keep = u.excluded.isna() | u.excluded.str.startswith("area ")
        keep &= u.area.isin(list(areas)) & u.ecephys_session_id.isin(self.session_ids)
        return u[keep].sort_values(["ecephys_session_id", "unit_id"])


# ---------------------------------------------------------------------------------- reader layer
def _read_session_file(path):
    """The tables of a fake session file (raises OSError/KeyError on a truncated file)."""
    import h5py
    import pandas as pd

    def table(group):
        return pd.DataFrame({k: (group[k][()].astype(str) if group[k].dtype.kind in "SO" else group[k][()])
                             for k in group.keys()})

    with h5py.File(path, "r") as f:
        identifier = f["identifier"][()].decode()
        electrodes = table(f["general/extracellular_ephys/electrodes"])
        groups = table(f["general/extracellular_ephys/electrode_groups"])
        units = table(f["units/table"])
        data, index = f["units/spike_times"][()], f["units/spike_times_index"][()]
        spikes = np.split(data, index[:-1])
        presentations = [table(f["intervals"][name]) for name in sorted(f["intervals"].keys())]
    return identifier, electrodes, groups, units, spikes, presentations


def _make_session_api_class():
    from allensdk.brain_observatory.ecephys import get_unit_filter_value
    from allensdk.brain_observatory.ecephys.ecephys_session_api import EcephysSessionApi

    class FakeSessionApi(EcephysSessionApi):
        """An allensdk ``EcephysSessionApi`` that reads a fake session file instead of NWB-2.

        It takes the arguments of allensdk's ``EcephysNwbSessionApi`` (``path``,
        ``external_channel_columns``, ``filter_by_validity``, the unit filter values, ...) and
        builds allensdk's ``Channel``, ``Unit`` and ``Probe`` objects, so that units are filtered
        by allensdk's ``Probes.get_units_table`` and channels by ``Channels.to_dataframe``.
        """

        def __init__(self, path, probe_lfp_paths=None, additional_unit_metrics=None,
                     external_channel_columns=None, **kwargs):
            import pandas as pd
            from allensdk.brain_observatory.ecephys._channel import Channel
            from allensdk.brain_observatory.ecephys._channels import Channels
            from allensdk.brain_observatory.ecephys._probe import Probe
            from allensdk.brain_observatory.ecephys._unit import Unit
            from allensdk.brain_observatory.ecephys._units import Units
            from allensdk.brain_observatory.ecephys.probes import Probes

            self.path = str(path)
            self.filter_out_of_brain_units = kwargs.pop("filter_out_of_brain_units", True)
            self.filter_by_validity = kwargs.pop("filter_by_validity", True)
            self.amplitude_cutoff_maximum = get_unit_filter_value("amplitude_cutoff_maximum", **kwargs)
            self.presence_ratio_minimum = get_unit_filter_value("presence_ratio_minimum", **kwargs)
            self.isi_violations_maximum = get_unit_filter_value("isi_violations_maximum", **kwargs)
            self.external_channel_columns = external_channel_columns
            identifier, electrodes, groups, units, spikes, presentations = _read_session_file(path)
            self._identifier = identifier
            self._groups = groups
            self._presentations = pd.concat(presentations, ignore_index=True)
            probes = []
            for _, g in groups.iterrows():
                chans = electrodes[electrodes.probe_id == g.id]
                channels = Channels([
                    Channel(id=int(c.id), probe_id=int(c.probe_id), valid_data=bool(c.valid_data),
                            probe_channel_number=int(c.probe_channel_number),
                            probe_vertical_position=int(c.probe_vertical_position),
                            probe_horizontal_position=int(c.probe_horizontal_position),
                            structure_acronym=None if c.location in ("None", "") else c.location)
                    for c in chans.itertuples()
                ])
                mine = units[units.peak_channel_id.isin(chans.id)]
                unit_objects = Units([
                    Unit(id=int(u.id), peak_channel_id=int(u.peak_channel_id), local_index=int(u.local_index),
                         cluster_id=int(u.cluster_id), quality=str(u.quality), firing_rate=float(u.firing_rate),
                         isi_violations=float(u.isi_violations), presence_ratio=float(u.presence_ratio),
                         amplitude_cutoff=float(u.amplitude_cutoff), mean_waveforms=np.zeros((2, 4)),
                         spike_amplitudes=np.ones(spikes[i].size), spike_times=spikes[i])
                    for i, u in zip(np.flatnonzero(units.peak_channel_id.isin(chans.id)), mine.itertuples())
                ])
                probes.append(Probe(id=int(g.id), name=str(g.name), channels=channels, units=unit_objects))
            self._probes = Probes(probes)

        def test(self):
            self.get_ecephys_session_id()

        def get_ecephys_session_id(self) -> int:
            return int(self._identifier)

        def get_session_start_time(self):
            return datetime.datetime(2019, 1, 1, tzinfo=datetime.timezone.utc)

        def get_stimulus_presentations(self):
            table = self._presentations.sort_values("start_time").reset_index(drop=True)
            table.index = table.index.astype("int64")
            return table

        def get_invalid_times(self):
            import pandas as pd

            return pd.DataFrame()

        def get_probes(self):
            import pandas as pd

            return pd.DataFrame({
                "id": self._groups.id.astype(int).values, "description": self._groups.name.values,
                "location": "See electrode locations", "sampling_rate": 30000.0,
                "lfp_sampling_rate": np.nan, "has_lfp_data": False,
            }).set_index("id")

        def get_channels(self):
            from allensdk.brain_observatory.ecephys._channels import Channels

            channels = Channels([c for p in self._probes for c in p.channels.value])
            return channels.to_dataframe(external_channel_columns=self.external_channel_columns,
                                         filter_by_validity=self.filter_by_validity)

        def get_spike_times(self):
            return self._probes.spike_times

        def get_units(self):
            return self._probes.get_units_table(
                filter_by_validity=self.filter_by_validity,
                filter_out_of_brain_units=self.filter_out_of_brain_units,
                amplitude_cutoff_maximum=self.amplitude_cutoff_maximum,
                presence_ratio_minimum=self.presence_ratio_minimum,
                isi_violations_maximum=self.isi_violations_maximum,
            )

    return FakeSessionApi


def __getattr__(name):
    # allensdk is imported only when the fake reader is asked for
    if name == "FakeSessionApi":
        cls = _make_session_api_class()
        globals()["FakeSessionApi"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------- writer
def _write_session_file(path, session_id, electrodes, groups, units, spikes, presentations):
    import h5py

    from .._io import atomic_write

    def put(group, df):
        for col in df.columns:
            values = df[col].to_numpy()
            if values.dtype.kind in "OU":
                values = np.array([("None" if v is None else str(v)).encode() for v in values])
            group[col] = values

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:
        f["identifier"] = np.bytes_(str(session_id))
        put(f.create_group("general/extracellular_ephys/electrodes"), electrodes)
        put(f.create_group("general/extracellular_ephys/electrode_groups"), groups)
        put(f.create_group("units/table"), units)
        f["units/spike_times"] = np.concatenate(spikes) if spikes else np.zeros(0)
        f["units/spike_times_index"] = np.cumsum([s.size for s in spikes]).astype(np.int64)
        for name, df in presentations.items():
            put(f.create_group(f"intervals/{name}_presentations"), df)


def _write_session_nwb(path, session_id, electrodes, groups, units, spikes, presentations):
    """The same session as a real NWB-2 file, written with allensdk's own objects and pynwb."""
    import pandas as pd
    import pynwb
    from allensdk.brain_observatory.behavior.data_objects.stimuli.presentations import Presentations
    from allensdk.brain_observatory.ecephys._channel import Channel
    from allensdk.brain_observatory.ecephys._channels import Channels
    from allensdk.brain_observatory.ecephys._probe import Probe
    from allensdk.brain_observatory.ecephys._unit import Unit
    from allensdk.brain_observatory.ecephys._units import Units
    from allensdk.brain_observatory.ecephys.probes import Probes
    from allensdk.brain_observatory.nwb import add_stimulus_timestamps

    from .._io import atomic_write

    nwbfile = pynwb.NWBFile(
        session_description="fake Visual Coding Neuropixels session", identifier=str(session_id),
        session_id=str(session_id), institution="mbutils test fixture",
        session_start_time=datetime.datetime(2019, 1, 1, tzinfo=datetime.timezone.utc),
    )
    table = pd.concat(list(presentations.values()), ignore_index=True).sort_values("start_time")
    add_stimulus_timestamps(nwbfile, table["start_time"].to_numpy())
    Presentations(table, sort_columns=False).to_nwb(nwbfile)
    probes = []
    for g in groups.itertuples():
        chans = electrodes[electrodes.probe_id == g.id]
        channels = Channels([
            Channel(id=int(c.id), probe_id=int(c.probe_id), valid_data=bool(c.valid_data),
                    probe_channel_number=int(c.probe_channel_number),
                    probe_vertical_position=int(c.probe_vertical_position),
                    probe_horizontal_position=int(c.probe_horizontal_position),
                    structure_acronym=str(c.location))  # "None": outside the brain
            for c in chans.itertuples()
        ])
        rows = np.flatnonzero(units.peak_channel_id.isin(chans.id).to_numpy())
        probe_units = Units([
            Unit(id=int(u.id), peak_channel_id=int(u.peak_channel_id), local_index=int(u.local_index),
                 cluster_id=int(u.cluster_id), quality=str(u.quality), firing_rate=float(u.firing_rate),
                 isi_violations=float(u.isi_violations), presence_ratio=float(u.presence_ratio),
                 amplitude_cutoff=float(u.amplitude_cutoff), mean_waveforms=np.zeros((2, 4)),
                 spike_amplitudes=np.ones(spikes[i].size), spike_times=spikes[i])
            for i, u in zip(rows, units.iloc[rows].itertuples())
        ])
        probes.append(Probe(id=int(g.id), name=str(g.name), channels=channels, units=probe_units))
    Probes(probes).to_nwb(nwbfile)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp, pynwb.NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwbfile)


def make_fake_neuropixels_cache(cache_dir, seed: int = 0, session_format: str = "hdf5") -> FakeNeuropixelsCache:
    """Write a tiny fake Neuropixels cache with planted spike counts.

    Each brain_observatory_1.1 session shows the 118 scenes and the blank (frame -1) 50 times
    each in a shuffled order, one onset every 0.5 s, after a block of another stimulus
    (``gabors``) whose spikes a correct builder ignores; session 7002 misses a few repeats
    (expected NaN). For each presentation and unit, ``k`` spikes (0..4) are planted in
    [0.01, 0.24] s after the onset (the default 0-0.25 s window) and 0..2 distractor spikes
    in [0.27, 0.48] s.

    Parameters
    ----------
    cache_dir : str or pathlib.Path
        Folder to create (the manifest is ``cache_dir/manifest.json``).
    seed : int
        Seed of the planted counts and presentation order.
    session_format : {"hdf5", "nwb"}
        ``"hdf5"``: the session files :class:`FakeSessionApi` reads (works with any pynwb/hdmf);
        ``"nwb"``: real NWB-2 files, written with allensdk's ``Probes``/``Presentations`` objects
        and pynwb, that allensdk's own reader opens (needs a pynwb that works with the installed
        hdmf; pynwb 2.8 needs hdmf < 4).

    Returns
    -------
    FakeNeuropixelsCache
    """
    import warnings

    import pandas as pd
    import SimpleITK as sitk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from allensdk.brain_observatory.ecephys.ecephys_project_api import EcephysProjectFixedApi
        from allensdk.brain_observatory.ecephys.ecephys_project_cache import EcephysProjectCache

    if session_format not in ("hdf5", "nwb"):
        raise ValueError(f"session_format={session_format!r}; expected 'hdf5' or 'nwb'")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    manifest = cache_dir / "manifest.json"
    # allensdk writes its manifest (version 0.3.0) on construction
    EcephysProjectCache(fetch_api=EcephysProjectFixedApi(), stream_writer=lambda *a: None, manifest=str(manifest))

    rng = np.random.default_rng(seed)
    template = rng.integers(0, 256, size=(N_SCENES,) + TEMPLATE_SHAPE, dtype=np.uint8)
    (cache_dir / "natural_scene_templates").mkdir(exist_ok=True)
    for i in range(N_SCENES):
        scene = cache_dir / "natural_scene_templates" / f"natural_scene_{i}.tiff"
        sitk.WriteImage(sitk.GetImageFromArray(template[i]), str(scene))

    stimulus_order = list(range(N_SCENES)) + [-1]
    sessions, probes, channels, units_csv, unit_rows = [], [], [], [], []
    counts, distractors, used = {}, {}, []
    next_channel, next_unit = 850_000_000, 950_000_000
    for sid, specimen, session_type, probe_specs in FAKE_SESSIONS:
        sessions.append({"id": sid, "specimen_id": specimen, "session_type": session_type, "age_in_days": 110.0,
                         "sex": "M", "genotype": "wt/wt", "published_at": "2019-10-03T00:00:00Z",
                         "has_nwb": True, "isi_experiment_id": 0, "date_of_acquisition": "2019-01-01"})
        elec_rows, group_rows, chan_ids, chan_area = [], [], [], []
        for pid, pname, areas in probe_specs:
            probes.append({"id": pid, "ecephys_session_id": sid, "name": pname, "sampling_rate": 30000.0,
                           "lfp_sampling_rate": 2500.0, "phase": "3a", "has_lfp_data": True,
                           "air_channel_index": 0, "surface_channel_index": 0, "use_lfp_data": True,
                           "temporal_subsampling_factor": 2.0})
            group_rows.append({"id": pid, "name": pname})
            for k, area in enumerate(areas):
                cid = next_channel
                next_channel += 1
                chan_ids.append(cid)
                chan_area.append(area)
                elec_rows.append({"id": cid, "probe_id": pid, "valid_data": True, "probe_channel_number": k,
                                  "probe_vertical_position": 20 * (k + 1),
                                  "probe_horizontal_position": 11 + 16 * (k % 2),
                                  "location": "None" if area is None else area})
                channels.append({"id": cid, "ecephys_probe_id": pid, "local_index": k,
                                 "probe_horizontal_position": 11 + 16 * (k % 2),
                                 "probe_vertical_position": 20 * (k + 1),
                                 "ecephys_structure_id": np.nan if area is None else 385.0 + k,
                                 "ecephys_structure_acronym": area,
                                 "anterior_posterior_ccf_coordinate": 8000.0, "dorsal_ventral_ccf_coordinate": 1000.0,
                                 "left_right_ccf_coordinate": 7000.0})
        electrodes = pd.DataFrame(elec_rows)

        # presentations: gabors block, then natural scenes in a shuffled order
        frames = np.repeat(np.array(stimulus_order), N_TRIALS)
        rng.shuffle(frames)
        if sid == 7002:
            keep = np.ones(frames.size, dtype=bool)
            for stim, n_drop in ((5, 2), (-1, 1), (117, 3)):
                keep[np.flatnonzero(frames == stim)[-n_drop:]] = False
            frames = frames[keep]
        n_gabor = 20
        gabor_starts = 1.0 + 0.25 * np.arange(n_gabor)
        starts = gabor_starts[-1] + 2.0 + PERIOD_S * np.arange(frames.size)
        if session_type != "brain_observatory_1.1":
            pres = {"gabors": pd.DataFrame({
                "stimulus_name": "gabors", "start_time": gabor_starts, "stop_time": gabor_starts + 0.25,
                "stimulus_block": 0.0, "stimulus_index": 0.0, "orientation": 45.0, "frame": np.nan})}
        else:
            pres = {
                "gabors": pd.DataFrame({
                    "stimulus_name": "gabors", "start_time": gabor_starts, "stop_time": gabor_starts + 0.25,
                    "stimulus_block": 0.0, "stimulus_index": 0.0, "orientation": 45.0, "frame": np.nan}),
                "natural_scenes": pd.DataFrame({
                    "stimulus_name": "natural_scenes", "start_time": starts, "stop_time": starts + 0.25,
                    "stimulus_block": 1.0, "stimulus_index": 1.0, "orientation": np.nan,
                    "frame": frames.astype(float)}),
            }

        spec_rows, spikes = [], []
        for local, (ch, quality, isi, amp, pres_ratio, why) in enumerate(_UNIT_SPECS[sid]):
            uid = next_unit
            next_unit += 1
            cid, area = chan_ids[ch], chan_area[ch]
            planted = rng.integers(0, 5, size=frames.size)
            extra = rng.integers(0, 3, size=frames.size)
            times = [starts[j] + rng.uniform(IN_LO, IN_HI, planted[j]) for j in range(frames.size)]
            times += [starts[j] + rng.uniform(OUT_LO, OUT_HI, extra[j]) for j in range(frames.size)]
            times.append(gabor_starts + 0.1)  # spikes during another stimulus
            times.append(np.array([0.5]))  # and before any
            spikes.append(np.sort(np.concatenate(times)))
            spec_rows.append({"id": uid, "peak_channel_id": cid, "local_index": local, "cluster_id": local,
                              "quality": quality, "firing_rate": 3.0, "isi_violations": isi,
                              "amplitude_cutoff": amp, "presence_ratio": pres_ratio})
            units_csv.append({"id": uid, "ecephys_channel_id": cid, "quality": quality, "firing_rate": 3.0,
                              "isi_violations": isi, "amplitude_cutoff": amp, "presence_ratio": pres_ratio,
                              "snr": 3.0})
            unit_rows.append({"unit_id": uid, "ecephys_session_id": sid, "specimen_id": specimen, "area": area,
                              "quality": quality, "isi_violations": isi, "amplitude_cutoff": amp,
                              "presence_ratio": pres_ratio, "excluded": why})
            grid = np.full((len(stimulus_order), N_TRIALS), np.nan)
            grid_out = np.full((len(stimulus_order), N_TRIALS), np.nan)
            for s_idx, stim in enumerate(stimulus_order):
                shown = np.flatnonzero(frames == stim)  # in time order
                grid[s_idx, : shown.size] = planted[shown]
                grid_out[s_idx, : shown.size] = extra[shown]
            counts[uid], distractors[uid] = grid, grid_out
        if session_type == "brain_observatory_1.1":
            used.append(sid)
        writer = _write_session_file if session_format == "hdf5" else _write_session_nwb
        writer(cache_dir / f"session_{sid}" / f"session_{sid}.nwb", sid, electrodes,
               pd.DataFrame(group_rows), pd.DataFrame(spec_rows), spikes, pres)

    pd.DataFrame(sessions).set_index("id").to_csv(cache_dir / "sessions.csv")
    pd.DataFrame(probes).set_index("id").to_csv(cache_dir / "probes.csv")
    pd.DataFrame(channels).set_index("id").to_csv(cache_dir / "channels.csv")
    pd.DataFrame(units_csv).set_index("id").to_csv(cache_dir / "units.csv")
    return FakeNeuropixelsCache(
        cache_dir=cache_dir, manifest=manifest, session_ids=used, counts=counts, distractors=distractors,
        units=pd.DataFrame(unit_rows), template=template,
    )
