"""The Visual Coding Neuropixels builder, run through allensdk's cache and session code on a fake cache.

The fake cache (mbutils/data/_neuropixels_fixture.py) has allensdk's manifest, project tables and
scene templates, and session files with planted spike counts. Session files are read by the
fixture's ``FakeSessionApi`` (allensdk's NWB-2 reader needs a pynwb that works with the installed
hdmf); ``test_real_nwb_reader`` runs allensdk's own reader on real NWB-2 files where that works.
Every test blocks the network (any socket connection raises) and checks that none was attempted.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import allensdk  # noqa: F401  (installed by `make env`; the builder needs it)

from mbutils.data import neuropixels
from mbutils.data._neuropixels_fixture import FakeSessionApi, make_fake_neuropixels_cache
from mbutils.data.neuropixels import (
    AllenCorruptFileError,
    AllenDataError,
    AllenNetworkError,
    AllenOfflineError,
    arrange_trials,
    build_neuropixels_dataset,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning")


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


@pytest.fixture(scope="module")
def fake_master(tmp_path_factory):
    return make_fake_neuropixels_cache(tmp_path_factory.mktemp("np") / "cache")


@pytest.fixture
def fake(fake_master, tmp_path):
    """A fresh copy of the fake cache (tests damage their copy)."""
    import dataclasses
    import shutil

    shutil.copytree(fake_master.cache_dir, tmp_path / "cache")
    return dataclasses.replace(fake_master, cache_dir=tmp_path / "cache", manifest=tmp_path / "cache" / "manifest.json")


def build(fake, out, **kwargs):
    kwargs.setdefault("offline", True)
    kwargs.setdefault("progress", False)
    return build_neuropixels_dataset(fake.cache_dir, out, session_api=FakeSessionApi, **kwargs)


def _check_planted(path, fake, expected=None, planted=None):
    ds = xr.open_dataset(path)
    want = fake.expected_units() if expected is None else expected
    ids = [int(i) for i in ds["cell_specimen_id"].values]
    assert ids == want.unit_id.tolist()
    resp = ds["responses"].values
    assert resp.dtype == np.float32 and resp.shape == (len(ids), 119, 50)
    for i, uid in enumerate(ids):
        grid = fake.counts[uid] if planted is None else planted(uid)
        np.testing.assert_array_equal(resp[i], grid)  # NaN at the same places, equal counts elsewhere
    assert ds["area"].values.astype(str).tolist() == want.area.tolist()
    assert ds["specimen_id"].values.tolist() == want.specimen_id.tolist()
    assert ds["ecephys_session_id"].values.tolist() == want.ecephys_session_id.tolist()
    return ds


def test_builds_planted_counts_offline(fake, tmp_path, no_network):
    out = tmp_path / "np.nc"
    assert build(fake, out) == out
    ds = _check_planted(out, fake)
    assert ds.sizes["neuron"] == 7
    assert ds["stimulus"].values.tolist() == list(range(118)) + [-1]
    np.testing.assert_array_equal(ds["stimuli"].values[:118], fake.template)
    assert ds["stimuli"].dtype == np.uint8 and (ds["stimuli"].values[118] == 127).all()
    # session 7002 misses repeats of scene 5 (2), scene 117 (3) and the blank (1): NaN, never 0
    rows = ds["ecephys_session_id"].values == 7002
    resp = ds["responses"].values[rows]
    assert np.isnan(resp[:, 5, 48:]).all() and np.isfinite(resp[:, 5, :48]).all()
    assert np.isnan(resp[:, 117, 47:]).all() and np.isnan(resp[:, 118, 49]).all()
    assert np.isfinite(ds["responses"].values[~rows]).all()
    # metadata the recordings do not have: the dataset's unknown values
    assert set(ds["cre_line"].values.astype(str)) == {"unknown"}
    assert (ds["imaging_depth"].values == -1).all()
    assert np.isnan(ds["p_run_mod_ns"].values).all() and np.isnan(ds["excitatory"].values.astype(float)).all()
    assert ds.attrs["source"] == "allen_neuropixels" and "spike count in [0, 0.25] s" in ds.attrs["description"]
    assert no_network == []
    from mbutils.data import load_dataset

    assert load_dataset(out).n_neurons == 7  # validates the schema


def test_counts_match_spike_times_loop(fake, tmp_path, no_network):
    """Independent reference: count each unit's spike times per natural-scenes onset in a plain loop."""
    import h5py

    out = build(fake, tmp_path / "np.nc", window=(0.1, 0.35))
    ds = xr.open_dataset(out)
    compared = 0
    for sid in fake.session_ids:
        with h5py.File(fake.session_path(sid), "r") as f:
            unit_ids = f["units/table/id"][()]
            spikes = np.split(f["units/spike_times"][()], f["units/spike_times_index"][()][:-1])
            ns = f["intervals/natural_scenes_presentations"]
            starts, frames = ns["start_time"][()], ns["frame"][()].astype(int)
        for uid, times in zip(unit_ids, spikes):
            rows = np.flatnonzero(ds["cell_specimen_id"].values == uid)
            if rows.size == 0:
                continue
            expected = np.full((119, 50), np.nan)
            seen = {}
            for start, frame in sorted(zip(starts, frames)):
                s = 118 if frame == -1 else frame
                k = seen.get(s, 0)
                seen[s] = k + 1
                expected[s, k] = np.count_nonzero((times >= start + 0.1) & (times <= start + 0.35))
            np.testing.assert_array_equal(ds["responses"].values[rows[0]], expected)
            compared += 1
    assert compared == ds.sizes["neuron"] == 7


def test_quality_filters_leave_units_out(fake, tmp_path, no_network):
    ds = xr.open_dataset(build(fake, tmp_path / "np.nc"))
    kept = set(ds["cell_specimen_id"].values.tolist())
    u = fake.units.set_index("unit_id")
    for why in ("isi_violations", "amplitude_cutoff", "presence_ratio", "quality", "outside the brain"):
        assert not kept & set(u.index[u.excluded == why]), why
    # the unit at isi_violations 0.49, amplitude_cutoff 0.09, presence_ratio 0.96 passes
    assert set(u.index[(u.isi_violations == 0.49)]) <= kept
    # looser thresholds take in the units at exactly 0.5 ISI violations and 0.95 presence (and only them)
    ds = xr.open_dataset(build(fake, tmp_path / "loose.nc", isi_violations_max=0.6, presence_ratio_min=0.9))
    added = set(ds["cell_specimen_id"].values.tolist()) - kept
    assert added == set(u.index[u.excluded.isin(["isi_violations", "presence_ratio"])])
    assert len(added) == 2


def test_window_changes_the_counts(fake, tmp_path, no_network):
    out = build(fake, tmp_path / "w.nc", window=(0, 0.5))
    _check_planted(out, fake, planted=lambda uid: fake.counts[uid] + fake.distractors[uid])
    out = build(fake, tmp_path / "late.nc", window=(0.25, 0.5))
    _check_planted(out, fake, planted=lambda uid: fake.distractors[uid])
    with pytest.raises(ValueError, match=r"window=\(0\.25, 0\.1\)"):
        build(fake, tmp_path / "x.nc", window=(0.25, 0.1))


def test_areas(fake, tmp_path, no_network):
    out = build(fake, tmp_path / "lgd.nc", areas=["LGd", "VISl"])
    _check_planted(out, fake, expected=fake.expected_units(areas=["LGd", "VISl"]))
    assert set(xr.open_dataset(out)["area"].values.astype(str)) == {"LGd", "VISl"}
    valid = r"valid areas: \['CA1', 'LGd', 'VISam', 'VISl', 'VISp', 'VISrl'\]"
    with pytest.raises(ValueError, match=r"area 'VISx'.*" + valid):
        build(fake, tmp_path / "x.nc", areas=["VISx"])
    out = build(fake, tmp_path / "one.nc", max_sessions=1)
    _check_planted(out, fake, expected=fake.expected_units().query("ecephys_session_id == 7001"))


def test_interrupted_build_resumes(fake, tmp_path, no_network, monkeypatch):
    calls, interrupt = [], {"at": 7002}
    real = neuropixels._open_session

    def spy(cache, session_id, path, session_api):
        calls.append(session_id)
        if session_id == interrupt["at"]:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C while session 7002 is read
        return real(cache, session_id, path, session_api)

    monkeypatch.setattr(neuropixels, "_open_session", spy)
    out, parts = tmp_path / "np.nc", tmp_path / "np.nc.parts"
    with pytest.raises(KeyboardInterrupt):
        build(fake, out)
    assert calls == [7001, 7002] and not out.exists()
    assert sorted(p.name for p in parts.iterdir()) == ["7001.npz"]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    mtime = (parts / "7001.npz").stat().st_mtime_ns

    calls.clear()
    interrupt["at"] = None
    build(fake, out)
    assert calls == [7002]  # session 7001 was not read again
    assert (parts / "7001.npz").stat().st_mtime_ns == mtime
    assert xr.open_dataset(out).attrs["resumed_sessions"] == 1
    _check_planted(out, fake)

    calls.clear()  # another window invalidates the stored parts
    build(fake, out, window=(0, 0.5), keep_parts=False)
    assert calls == [7001, 7002] and not parts.exists()


def test_truncated_session_file_names_the_file(fake, tmp_path, no_network):
    path = fake.session_path(7002)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AllenCorruptFileError, match=r"(?s)session_7002\.nwb.*truncated or corrupt.*Delete it"):
        build(fake, tmp_path / "a.nc")
    assert not (tmp_path / "a.nc").exists()
    path.unlink()  # following the advice: offline now says it is missing
    with pytest.raises(AllenOfflineError, match=r"session 7002: NWB file .*session_7002\.nwb"):
        build(fake, tmp_path / "a.nc")


def test_truncated_scene_template_names_the_file(fake, tmp_path, no_network):
    scene = fake.scene_path(17)
    scene.write_bytes(scene.read_bytes()[:40])
    with pytest.raises(AllenCorruptFileError, match=r"natural_scene_17\.tiff"):
        build(fake, tmp_path / "a.nc")


def test_offline_missing_files_fail_fast(fake, tmp_path, no_network):
    fake.session_path(7002).unlink()
    fake.scene_path(3).unlink()
    message = r"(?s)2 files \(1 of the 2 selected sessions\).*session 7002.*natural_scene_3\.tiff.*without --offline"
    with pytest.raises(AllenOfflineError, match=message):
        build(fake, tmp_path / "a.nc")
    assert not (tmp_path / "a.nc.parts" / "7001.npz").exists()  # checked before any work
    (fake.cache_dir / "units.csv").unlink()
    with pytest.raises(AllenOfflineError, match=r"project tables .*units\.csv"):
        build(fake, tmp_path / "a.nc")
    assert no_network == []


def test_offline_without_cache(tmp_path, no_network):
    with pytest.raises(AllenOfflineError, match=r"no Neuropixels cache .*manifest\.json is missing"):
        build_neuropixels_dataset(tmp_path / "nothing", tmp_path / "a.nc", offline=True)
    assert not (tmp_path / "nothing").exists()


def test_online_download_failure_is_clear_and_leaves_nothing(fake, tmp_path, no_network):
    fake.session_path(7002).unlink()
    with pytest.raises(AllenNetworkError, match=r"(?s)NWB file of session 7002.*--offline"):
        build(fake, tmp_path / "a.nc", offline=False, timeout=2)
    assert len(no_network) >= 1  # it tried, and gave up
    assert not fake.session_path(7002).exists()
    assert not [p for p in fake.session_path(7002).parent.iterdir()]
    assert socket.getdefaulttimeout() is None


def _mirror_api(mirror, interrupt=None):
    """An EcephysProjectApi whose 'server' is a folder: allensdk's cache code asks it for files."""
    from allensdk.brain_observatory.ecephys.ecephys_project_api import EcephysProjectApi

    class MirrorApi(EcephysProjectApi):
        downloads = []

        def _stream(self, relative):
            self.downloads.append(relative)
            data = (mirror / relative).read_bytes()
            yield data[:1000]
            if interrupt is not None and interrupt in relative:
                raise KeyboardInterrupt  # half a file, then Ctrl-C
            yield data[1000:]

        def get_session_data(self, session_id, **kwargs):
            return self._stream(f"session_{session_id}/session_{session_id}.nwb")

        def get_natural_scene_template(self, number):
            return self._stream(f"natural_scene_templates/natural_scene_{number}.tiff")

        def _table(name):
            def get(self, *args, **kwargs):
                import pandas as pd

                self.downloads.append(name)
                return pd.read_csv(mirror / name, index_col="id")
            return get

        get_sessions = _table("sessions.csv")
        get_probes = _table("probes.csv")
        get_channels = _table("channels.csv")
        get_units = _table("units.csv")

    return MirrorApi()


def test_downloads_through_allensdk_atomically_and_resumes(fake, tmp_path, no_network):
    cache, out = tmp_path / "fresh", tmp_path / "np.nc"
    with pytest.raises(KeyboardInterrupt):
        build_neuropixels_dataset(cache, out, fetch_api=_mirror_api(fake.cache_dir, interrupt="session_7002"),
                                  session_api=FakeSessionApi, progress=False)
    assert (cache / "manifest.json").exists() and (cache / "units.csv").exists()
    assert (cache / "session_7001" / "session_7001.nwb").exists()
    assert not (cache / "session_7002" / "session_7002.nwb").exists()  # no half-downloaded file
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    api = _mirror_api(fake.cache_dir)
    out = build_neuropixels_dataset(cache, out, fetch_api=api, session_api=FakeSessionApi, progress=False)
    _check_planted(out, fake)
    assert [d for d in api.downloads if d.startswith("session")] == ["session_7002/session_7002.nwb"]
    assert sum(d.startswith("natural_scene_templates") for d in api.downloads) == 118
    assert no_network == []


def test_command_line(fake, tmp_path, no_network, capsys):
    parser = argparse.ArgumentParser()
    neuropixels.add_neuropixels_arguments(parser)
    out = tmp_path / "cli.nc"
    args = parser.parse_args(["--cache", str(fake.cache_dir), "--out", str(out), "--offline", "--areas", "VISp",
                              "LGd", "--window", "0", "0.25", "--no-progress"])
    args.session_api = FakeSessionApi
    assert neuropixels.run_neuropixels(args) == 0
    _check_planted(out, fake, expected=fake.expected_units(areas=["VISp", "LGd"]))
    args = parser.parse_args(["--cache", str(tmp_path / "none"), "--out", str(out), "--offline"])
    assert neuropixels.run_neuropixels(args) == 1
    assert "manifest.json is missing" in capsys.readouterr().err
    from mbutils.cli import build_parser

    parsed = build_parser().parse_args(["data", "neuropixels", "--cache", "c", "--out", "o", "--window", "0.05", "0.3"])
    assert parsed.func is neuropixels.run_neuropixels and parsed.window == [0.05, 0.3]


def test_arrange_trials_matches_a_plain_loop():
    rng = np.random.default_rng(4)
    ids = np.array([0, 1, 2, -1])
    frames = rng.choice(ids, size=40).astype(float)
    starts = rng.permutation(40) * 0.5
    values = rng.integers(0, 9, size=(3, 40)).astype(float)
    got, n_shown = arrange_trials(values, frames, starts, n_trials=12, stimulus_ids=ids)
    expected = np.full((3, 4, 12), np.nan)
    seen = {}
    for j in np.argsort(starts):
        s = list(ids).index(int(frames[j]))
        k = seen.get(s, 0)
        seen[s] = k + 1
        if k < 12:
            expected[:, s, k] = values[:, j]
    np.testing.assert_array_equal(got, expected)
    assert n_shown.tolist() == [seen.get(s, 0) for s in range(4)]
    with pytest.raises(ValueError, match=r"\[7\]"):
        arrange_trials(values[:, :1], [7.0], [0.0], stimulus_ids=ids)


def _nwb_reader_works() -> str | None:
    try:
        neuropixels._check_nwb_reader()
    except AllenDataError as err:
        return str(err)
    return None


def test_allensdk_reader_problem_is_reported(fake, tmp_path, no_network):
    """Without the fixture's reader, allensdk's NWB reader opens the file; where pynwb cannot work with
    the installed hdmf the build says so, and otherwise the fixture's non-NWB file is named."""
    problem = _nwb_reader_works()
    expected = r"pynwb .* hdmf" if problem else r"session_7001\.nwb"
    with pytest.raises(AllenDataError, match=expected):
        build_neuropixels_dataset(fake.cache_dir, tmp_path / "a.nc", offline=True, progress=False)


def test_real_nwb_reader(tmp_path, no_network):
    """allensdk's own NWB-2 reader on real NWB-2 files written with allensdk's objects."""
    problem = _nwb_reader_works()
    assert problem is None, problem  # the pinned pynwb/hdmf pair reads NWB-2 (requirements.lock)
    fake = make_fake_neuropixels_cache(tmp_path / "cache", session_format="nwb")
    out = build_neuropixels_dataset(fake.cache_dir, tmp_path / "np.nc", offline=True, progress=False)
    _check_planted(out, fake)
    assert no_network == []


def test_module_does_not_import_allensdk():
    code = ("import sys, mbutils.data.neuropixels, mbutils.data._neuropixels_fixture; "
            "assert 'allensdk' not in sys.modules, 'allensdk imported'")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
