"""The Allen Brain Observatory builder, run through the real allensdk code on a tiny fake cache.

The fake cache (mbutils/data/_allen_fixture.py) has the manifest, metadata JSON, NWB and
events files laid out as allensdk stores them, with planted per-trial responses. Every test
blocks the network (any socket connection raises) and checks that none was attempted.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import allensdk  # noqa: F401,E402  (installed by `make env`; the builder needs it)

from mbutils.data import allen  # noqa: E402
from mbutils.data._allen_fixture import make_fake_allen_cache  # noqa: E402
from mbutils.data.allen import (  # noqa: E402
    AllenCorruptFileError,
    AllenNetworkError,
    AllenOfflineError,
    build_allen_dataset,
    trial_responses,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.fixture
def no_network(monkeypatch):
    """Make every socket connection raise; return the list of attempted addresses."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


@pytest.fixture
def fake(tmp_path):
    return make_fake_allen_cache(tmp_path / "cache")


def _check_planted(path, fake, experiment_ids=None):
    ds = xr.open_dataset(path)
    ids = [int(i) for i in ds["cell_specimen_id"].values]
    want = fake.cells if experiment_ids is None else fake.cells[fake.cells.ophys_experiment_id.isin(experiment_ids)]
    assert ids == want.cell_specimen_id.tolist()  # neurons in experiment-id order
    resp = ds["responses"].values
    assert resp.dtype == np.float32 and resp.shape == (len(ids), 119, 50)
    for i, csid in enumerate(ids):
        expected = fake.responses[csid]
        np.testing.assert_array_equal(np.isnan(resp[i]), np.isnan(expected))
        np.testing.assert_allclose(resp[i], expected, rtol=1e-6, atol=1e-6, equal_nan=True)
    # some repeats are missing in the fixture: they must be NaN, never 0
    assert np.isnan(resp).any()
    return ds


def test_builds_planted_values_offline(fake, tmp_path, no_network):
    out = tmp_path / "allen.nc"
    assert build_allen_dataset(fake.cache_dir, out, offline=True, progress=False) == out
    ds = _check_planted(out, fake)
    assert ds["stimulus"].values.tolist() == list(range(118)) + [-1]
    np.testing.assert_array_equal(ds["stimuli"].values[:118], fake.template)
    assert ds["stimuli"].dtype == np.uint8 and (ds["stimuli"].values[118] == 127).all()
    got = ds[["cell_specimen_id", "area", "cre_line", "imaging_depth", "excitatory", "p_run_mod_ns",
              "ophys_experiment_id"]].to_dataframe().reset_index(drop=True)
    pd.testing.assert_frame_equal(
        got[fake.cells.columns].astype({"area": str, "cre_line": str}), fake.cells, check_dtype=False
    )
    assert got.loc[got.cre_line == "Sst-IRES-Cre", "excitatory"].eq(False).all()
    assert got.p_run_mod_ns.isna().sum() == 1  # the fixture's one cell without a p-value
    assert ds.attrs["source"] == "allen" and "session B natural scenes" in ds.attrs["description"]
    assert no_network == []
    from mbutils.data.dataset import NeuralDataset

    assert NeuralDataset.load(out).n_neurons == 12  # validates the schema


def test_warm_cache_needs_no_network_even_online(fake, tmp_path, no_network):
    # without --offline, a complete cache is read without any request (no eye-tracking query)
    out = build_allen_dataset(fake.cache_dir, tmp_path / "a.nc", progress=False)
    _check_planted(out, fake)
    assert no_network == []


def test_injected_api_is_used(fake, tmp_path, no_network):
    from allensdk.api.queries.brain_observatory_api import BrainObservatoryApi

    class RecordingApi(BrainObservatoryApi):
        calls = []

        def template_query(self, template_name, entry_name, **kwargs):
            self.calls.append(entry_name)
            return []

    api = RecordingApi()
    _check_planted(build_allen_dataset(fake.cache_dir, tmp_path / "a.nc", api=api, progress=False), fake)
    assert api.calls == ["all_eye_mapping_files"]  # allensdk's one query even with a warm cache
    assert no_network == []


def test_window_frames_changes_the_window(fake, tmp_path, no_network):
    # 8 frames from onset also take in the fixture's distractor event (5.0 at onset + 7)
    out = build_allen_dataset(fake.cache_dir, tmp_path / "w8.nc", offline=True, window_frames=8, progress=False)
    ds = xr.open_dataset(out)
    for i, csid in enumerate(ds["cell_specimen_id"].values):
        expected = (fake.responses[int(csid)] * 7 + 5.0) / 8
        np.testing.assert_allclose(ds["responses"].values[i], expected, rtol=1e-6, equal_nan=True)
    assert ds.attrs["window_frames"] == 8


def test_trial_responses_match_a_plain_loop():
    rng = np.random.default_rng(3)
    n_cells, n_frames = 4, 400
    events = rng.exponential(size=(n_cells, n_frames)) * (rng.random((n_cells, n_frames)) < 0.3)
    stimulus_ids = np.array([0, 1, 2, -1])
    frames = rng.choice(stimulus_ids, size=60).astype(float)
    starts = np.sort(rng.choice(np.arange(-3, n_frames + 2), size=60, replace=False))
    perm = rng.permutation(60)  # table rows in any order
    window, offset, n_trials = 5, 2, 18
    got, n_shown = trial_responses(events, frames[perm], starts[perm], window, offset, n_trials, stimulus_ids)
    expected = np.full((n_cells, 4, n_trials), np.nan)
    counts = {s: 0 for s in stimulus_ids}
    for frame, start in zip(frames, starts):  # in time order
        s = int(frame)
        k = counts[s]
        counts[s] += 1
        if k >= n_trials:
            continue
        lo, hi = max(start + offset, 0), min(start + offset + window, n_frames)
        if hi > lo:
            expected[:, list(stimulus_ids).index(s), k] = events[:, lo:hi].mean(axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-6, equal_nan=True)
    assert n_shown.tolist() == [counts[s] for s in stimulus_ids]
    with pytest.raises(ValueError, match=r"\[7\]"):
        trial_responses(events, [7.0], [0], stimulus_ids=stimulus_ids)
    with pytest.raises(ValueError, match="window_frames=0"):
        trial_responses(events, [0.0], [0], window_frames=0)


def test_interrupted_build_resumes(fake, tmp_path, no_network, monkeypatch):
    from allensdk.core.brain_observatory_cache import BrainObservatoryCache

    real = BrainObservatoryCache.get_ophys_experiment_events
    calls, interrupt = [], {"at": 102}

    def spy(self, experiment_id, file_name=None):
        calls.append(experiment_id)
        if experiment_id == interrupt["at"]:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C during experiment 102
        return real(self, experiment_id, file_name)

    monkeypatch.setattr(BrainObservatoryCache, "get_ophys_experiment_events", spy)
    out = tmp_path / "allen.nc"
    parts = tmp_path / "allen.nc.parts"
    with pytest.raises(KeyboardInterrupt):
        build_allen_dataset(fake.cache_dir, out, offline=True, progress=False)
    assert calls == [101, 102]
    assert not out.exists()
    assert sorted(p.name for p in parts.iterdir()) == ["101.npz", "stimuli.npy"]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]  # nothing half-written
    first_mtime = (parts / "101.npz").stat().st_mtime_ns

    calls.clear()
    interrupt["at"] = None
    build_allen_dataset(fake.cache_dir, out, offline=True, progress=False)
    assert calls == [102, 103]  # experiment 101 was not read again
    assert (parts / "101.npz").stat().st_mtime_ns == first_mtime
    ds = _check_planted(out, fake)
    assert ds.attrs["resumed_experiments"] == 1

    # a different window invalidates the stored parts
    calls.clear()
    build_allen_dataset(fake.cache_dir, out, offline=True, window_frames=6, progress=False, keep_parts=False)
    assert calls == [101, 102, 103]
    assert not parts.exists()


def test_truncated_nwb_names_the_file(fake, tmp_path, no_network):
    nwb = fake.nwb_path(102)
    nwb.write_bytes(nwb.read_bytes()[: nwb.stat().st_size // 2])
    with pytest.raises(AllenCorruptFileError, match=r"(?s)102\.nwb.*truncated or corrupt.*Delete it"):
        build_allen_dataset(fake.cache_dir, tmp_path / "a.nc", offline=True, progress=False)
    assert not (tmp_path / "a.nc").exists()
    # following the advice: once deleted, offline says it is missing
    nwb.unlink()
    with pytest.raises(AllenOfflineError, match=r"experiment 102: NWB file .*102\.nwb"):
        build_allen_dataset(fake.cache_dir, tmp_path / "a.nc", offline=True, progress=False)


def test_truncated_events_names_the_file(fake, tmp_path, no_network):
    ev = fake.events_path(103)
    ev.write_bytes(ev.read_bytes()[:1000])
    with pytest.raises(AllenCorruptFileError, match=r"(?s)103_events\.npz.*Delete it"):
        build_allen_dataset(fake.cache_dir, tmp_path / "a.nc", offline=True, progress=False)


def test_offline_missing_experiment_fails_fast(fake, tmp_path, no_network):
    fake.events_path(103).unlink()
    start = time.perf_counter()
    with pytest.raises(AllenOfflineError, match=r"(?s)1 of the 3 selected.*experiment 103: events file .*103_events\.npz.*without --offline"):
        build_allen_dataset(fake.cache_dir, tmp_path / "a.nc", offline=True, progress=False)
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "a.nc.parts" / "101.npz").exists()  # checked before any work
    assert no_network == []
    # what is cached still builds
    _check_planted(
        build_allen_dataset(fake.cache_dir, tmp_path / "b.nc", offline=True, max_experiments=2, progress=False),
        fake, experiment_ids=[101, 102],
    )


def test_offline_without_cache(tmp_path, no_network):
    with pytest.raises(AllenOfflineError, match=r"no Allen cache .*manifest\.json is missing"):
        build_allen_dataset(tmp_path / "nothing", tmp_path / "a.nc", offline=True)
    assert not (tmp_path / "nothing").exists()


def test_online_download_failure_is_clear_and_leaves_nothing(fake, tmp_path, no_network):
    fake.events_path(103).unlink()
    start = time.perf_counter()
    with pytest.raises(AllenNetworkError, match=r"(?s)events file of experiment 103.*--offline"):
        build_allen_dataset(fake.cache_dir, tmp_path / "a.nc", progress=False, timeout=2)
    assert time.perf_counter() - start < 10
    assert len(no_network) >= 1  # it did try, and gave up at once
    assert not fake.events_path(103).exists()
    assert not [p for p in fake.events_path(103).parent.iterdir() if p.name.startswith(".")]
    assert socket.getdefaulttimeout() is None  # the temporary timeout was restored


def _mirror_api(mirror, interrupt=None):
    """An allensdk BrainObservatoryApi whose 'server' is a folder: the real query and download
    code of allensdk runs; only the HTTP layer is replaced by reading files of ``mirror``."""
    import json
    import shutil

    from allensdk.api.queries.brain_observatory_api import BrainObservatoryApi

    class MirrorApi(BrainObservatoryApi):
        downloads = []

        def template_query(self, template_name, entry_name, **kwargs):
            if entry_name == "ophys_experiment_by_ids":
                return json.loads((mirror / "ophys_experiments.json").read_text())
            if entry_name == "cell_metric":
                rows = json.loads((mirror / "cell_specimens.json").read_text())
                return rows[kwargs["start_row"] : kwargs["start_row"] + kwargs["num_rows"]]
            if entry_name == "all_eye_mapping_files":
                return []
            eid = kwargs["ophys_experiment_id"]
            link = {"ophys_experiment_data": f"ophys_experiment_data/{eid}.nwb",
                    "ophys_events_file": f"ophys_experiment_events/{eid}_events.npz"}[entry_name]
            return [{"download_link": "/" + link}]

        def retrieve_file_over_http(self, url, file_path, zipped=False):
            relative = url.split("/", 3)[-1]
            self.downloads.append(relative)
            if interrupt is not None and interrupt in relative:
                with open(file_path, "wb") as fh:  # half a file, then Ctrl-C
                    fh.write((mirror / relative).read_bytes()[:1000])
                raise KeyboardInterrupt
            shutil.copyfile(mirror / relative, file_path)

    return MirrorApi()


def test_downloads_through_allensdk_atomically_and_resumes(fake, tmp_path, no_network):
    mirror, cache = fake.cache_dir, tmp_path / "fresh_cache"
    out = tmp_path / "allen.nc"
    with pytest.raises(KeyboardInterrupt):
        build_allen_dataset(cache, out, api=_mirror_api(mirror, interrupt="102.nwb"), progress=False)
    assert (cache / "manifest.json").exists() and (cache / "cell_specimens.json").exists()
    assert (cache / "ophys_experiment_data" / "101.nwb").exists()
    assert not (cache / "ophys_experiment_data" / "102.nwb").exists()  # no half-downloaded file
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    api = _mirror_api(mirror)
    _check_planted(build_allen_dataset(cache, out, api=api, progress=False), fake)
    # only what was missing: 102's events file had been downloaded completely before the interruption
    assert sorted(api.downloads) == [
        "ophys_experiment_data/102.nwb", "ophys_experiment_data/103.nwb", "ophys_experiment_events/103_events.npz",
    ]
    assert no_network == []


def test_filters(fake, tmp_path, no_network):
    out = build_allen_dataset(fake.cache_dir, tmp_path / "l.nc", offline=True, areas=["VISl"], progress=False)
    _check_planted(out, fake, experiment_ids=[102])
    out = build_allen_dataset(fake.cache_dir, tmp_path / "c.nc", offline=True, cre_lines=["cux2", "Rbp4-Cre_KL100"], progress=False)
    _check_planted(out, fake, experiment_ids=[101, 103])
    with pytest.raises(ValueError, match=r"area 'VISx'.*valid areas: \['VISal', 'VISl', 'VISp'\]"):
        build_allen_dataset(fake.cache_dir, tmp_path / "x.nc", offline=True, areas=["VISx"])
    with pytest.raises(ValueError, match=r"Cre line 'Vip'.*valid Cre lines"):
        build_allen_dataset(fake.cache_dir, tmp_path / "x.nc", offline=True, cre_lines=["Vip"])
    with pytest.raises(ValueError, match="max_experiments=0"):
        build_allen_dataset(fake.cache_dir, tmp_path / "x.nc", offline=True, max_experiments=0)


def test_command_line(fake, tmp_path, no_network, capsys):
    parser = argparse.ArgumentParser()
    allen.add_allen_arguments(parser)
    out = tmp_path / "cli.nc"
    args = parser.parse_args(
        ["--cache", str(fake.cache_dir), "--out", str(out), "--offline", "--areas", "VISp", "VISal",
         "--window-frames", "7", "--no-progress"]
    )
    assert allen.run_allen(args) == 0
    _check_planted(out, fake, experiment_ids=[101, 103])
    args = parser.parse_args(["--cache", str(tmp_path / "none"), "--out", str(out), "--offline"])
    assert allen.run_allen(args) == 1
    assert "manifest.json is missing" in capsys.readouterr().err


def test_unknown_cre_line_warns_and_uses_the_inhibitory_list():
    assert allen._excitatory("Cux2-CreERT2") and not allen._excitatory("Vip-IRES-Cre")
    with pytest.warns(UserWarning, match="Foo1-Cre"):
        assert allen._excitatory("Foo1-Cre")


def test_module_does_not_import_allensdk():
    code = "import sys, mbutils.data.allen; assert 'allensdk' not in sys.modules, 'allensdk imported'"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
