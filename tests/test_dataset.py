"""NeuralDataset: schema round-trip, validation errors, subsetting, derived views."""
import numpy as np
import pytest
import xarray as xr

from mbutils.data import NeuralDataset, load_dataset


def _dataset(n=12, n_stim=6, n_trials=8, seed=0):
    rng = np.random.default_rng(seed)
    return NeuralDataset.from_arrays(
        rng.normal(size=(n, n_stim, n_trials)),
        rng.integers(0, 256, size=(n_stim, 9, 11), dtype=np.uint8),
        cell_specimen_id=np.arange(n) + 1000,
        area=np.array(["VISp", "VISl", "VISam"])[np.arange(n) % 3],
        cre_line=np.where(np.arange(n) < 9, "Cux2-CreERT2", "Sst-IRES-Cre"),
        imaging_depth=np.where(np.arange(n) % 2 == 0, 175, 375),
        excitatory=np.arange(n) < 9,
        p_run_mod_ns=np.linspace(0.0, 0.5, n),
        stimulus=np.arange(-1, n_stim - 1),
        source="test",
        description="a test dataset",
    )


def test_save_roundtrip_exact_schema(tmp_path):
    data = _dataset()
    path = data.save(tmp_path / "d.nc")
    with xr.open_dataset(path) as ds:
        assert ds["responses"].dims == ("neuron", "stimulus", "trial")
        assert ds["responses"].dtype == np.float32
        assert ds["stimuli"].dims == ("stimulus", "y", "x") and ds["stimuli"].dtype == np.uint8
        assert ds["cell_specimen_id"].dtype == np.int64
        assert ds["imaging_depth"].dtype.kind == "i"
        assert ds["excitatory"].dtype == bool
        assert ds["p_run_mod_ns"].dtype.kind == "f"
        assert all(isinstance(v, str) for v in ds["area"].values)
        assert all(isinstance(v, str) for v in ds["cre_line"].values)
        assert ds["stimulus"].values.tolist() == [-1, 0, 1, 2, 3, 4]
        assert ds.attrs["source"] == "test" and ds.attrs["description"] == "a test dataset"
        np.testing.assert_array_equal(ds["responses"].values, data.responses.values)
    loaded = load_dataset(path)
    assert loaded.areas == ["VISam", "VISl", "VISp"]
    assert loaded.ds["area"].values.tolist() == data.ds["area"].values.tolist()
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def _broken(tmp_path, mutate, name="bad.nc"):
    ds = _dataset().ds
    ds = mutate(ds)
    path = tmp_path / name
    ds.to_netcdf(path, engine="h5netcdf")
    return path


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda ds: ds.drop_vars("stimuli"), "missing variable 'stimuli'"),
        (lambda ds: ds.assign_coords(excitatory=("neuron", np.full(12, 2.0))),
         r"coordinate 'excitatory' holds \[2.0\]; expected bool, or float 1.0"),
        (lambda ds: ds.assign_coords(stimulus=("stimulus", np.array(list("abcdef")))),
         "coordinate 'stimulus' must be int"),
        (lambda ds: ds.assign(responses=ds["responses"].transpose("stimulus", "neuron", "trial")),
         r"'responses' has dims \('stimulus', 'neuron', 'trial'\), expected \('neuron', 'stimulus', 'trial'\)"),
        (lambda ds: ds.assign(responses=ds["responses"] * np.nan), "'responses' is all NaN"),
        (lambda ds: ds.assign_coords(cell_specimen_id=("neuron", np.r_[[7, 7], np.arange(10)])),
         r"duplicate cell_specimen_id values \[7\]"),
    ],
)
def test_load_rejects_broken_files_naming_the_file(tmp_path, mutate, message):
    path = _broken(tmp_path, mutate)
    with pytest.raises(ValueError, match=message) as info:
        NeuralDataset.load(path)
    assert "bad.nc" in str(info.value)


def test_one_all_nan_neuron_is_named(tmp_path):
    def mutate(ds):
        r = ds["responses"].values.copy()
        r[3] = np.nan
        return ds.assign(responses=(ds["responses"].dims, r))

    with pytest.raises(ValueError, match=r"1 neurons have only NaN responses \(cell_specimen_id \[1003\]"):
        NeuralDataset.load(_broken(tmp_path, mutate))


def test_missing_file_and_wrong_type(tmp_path):
    with pytest.raises(FileNotFoundError, match="mbutils data synthetic --out"):
        load_dataset(tmp_path / "nope.nc")
    with pytest.raises(TypeError, match="expects an xarray.Dataset, got dict"):
        NeuralDataset({})


def test_failed_save_leaves_nothing(tmp_path):
    data = _dataset()
    data.ds["responses"].values[:] = np.nan
    with pytest.raises(ValueError, match="all NaN"):
        data.save(tmp_path / "x.nc")
    assert list(tmp_path.iterdir()) == []


def test_select_by_metadata():
    data = _dataset()
    meta = data.metadata()
    sub = data.select(area=["VISp", "VISl"], imaging_depth=175, excitatory=True)
    expected = meta[meta.area.isin(["VISp", "VISl"]) & (meta.imaging_depth == 175) & meta.excitatory]
    assert sub.ds["cell_specimen_id"].values.tolist() == expected.cell_specimen_id.tolist()
    assert data.select(cre_line="Sst-IRES-Cre").n_neurons == 3
    kept = data.select(running_alpha=0.05).ds["p_run_mod_ns"].values
    assert (kept >= 0.05).all() and len(kept) == (meta.p_run_mod_ns >= 0.05).sum()
    with pytest.raises(ValueError, match=r"area='VISx' matches no neuron; values present: \['VISam', 'VISl', 'VISp'\]"):
        data.select(area="VISx")


def test_select_by_reliability_attaches_coordinate():
    from mbutils.reliability import splithalf_reliability

    data = _dataset(n=30, n_stim=20, n_trials=20)
    rel = splithalf_reliability(data.responses.values, n_splits=5, seed=0, progress=False)
    sub = data.select(min_reliability=0.0, n_splits=5, seed=0)
    assert sub.n_neurons == int((rel >= 0).sum())
    np.testing.assert_allclose(sub.ds["reliability"].values, rel[rel >= 0])


def test_trial_views():
    data = _dataset()
    r = data.responses.values.copy()
    r[0, 0, :3] = np.nan
    data = NeuralDataset(data.ds.assign(responses=(data.responses.dims, r)))
    np.testing.assert_allclose(data.trial_average().values, np.nanmean(r, axis=2), rtol=1e-6)
    odd, even = data.trial_halves()
    np.testing.assert_allclose(odd.values, np.nanmean(r[:, :, 0::2], axis=2), rtol=1e-6)
    np.testing.assert_allclose(even.values, np.nanmean(r[:, :, 1::2], axis=2), rtol=1e-6)
    scenes = data.scenes()
    assert scenes.n_stimuli == 5 and (scenes.ds["stimulus"].values >= 0).all()
    assert scenes.stimuli.shape == (5, 9, 11)
    assert "neurons=12" in repr(data)


def test_optional_metadata_round_trip_as_unknown(tmp_path):
    rng = np.random.default_rng(3)
    data = NeuralDataset.from_arrays(rng.normal(size=(5, 4, 3)), rng.integers(0, 256, (4, 6, 6), dtype=np.uint8))
    assert data.ds["stimulus"].values.tolist() == [0, 1, 2, 3]
    assert data.ds["cell_specimen_id"].values.tolist() == [0, 1, 2, 3, 4]
    assert "specimen_id" not in data.ds.coords
    loaded = load_dataset(data.save(tmp_path / "bare.nc"))
    with xr.open_dataset(tmp_path / "bare.nc") as raw:
        assert raw["excitatory"].dtype == np.float64 and np.isnan(raw["excitatory"].values).all()
        assert raw["imaging_depth"].values.tolist() == [-1] * 5
        assert raw["area"].values.tolist() == ["unknown"] * 5 and raw.attrs["source"] == "user"
    assert loaded.unknown_fields == ["area", "cre_line", "imaging_depth", "excitatory", "p_run_mod_ns", "specimen_id"]
    assert data.select(excitatory=True).n_neurons == 0 and data.select(excitatory=False).n_neurons == 0


def test_partly_known_excitatory_and_specimen_id_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    exc = np.array([1.0, 0.0, np.nan, 1.0, np.nan, 0.0])
    data = NeuralDataset.from_arrays(rng.normal(size=(6, 4, 2)), rng.integers(0, 256, (4, 5, 5), dtype=np.uint8),
                                     excitatory=exc, specimen_id=[7, 7, 7, 9, 9, 9], area=["VISp"] * 6)
    loaded = load_dataset(data.save(tmp_path / "p.nc"))
    np.testing.assert_array_equal(loaded.ds["excitatory"].values, exc)
    assert loaded.ds["specimen_id"].dtype == np.int64 and loaded.ds["specimen_id"].values.tolist() == [7, 7, 7, 9, 9, 9]
    assert loaded.known("excitatory").tolist() == [True, True, False, True, False, True]
    assert loaded.select(excitatory=True).ds["cell_specimen_id"].values.tolist() == [0, 3]
    assert loaded.select(excitatory=False).ds["cell_specimen_id"].values.tolist() == [1, 5]
    assert "specimen_id" not in loaded.unknown_fields and "area" not in loaded.unknown_fields
    # fully known after all: stored as bool
    full = NeuralDataset.from_arrays(rng.normal(size=(2, 4, 2)), rng.integers(0, 256, (4, 5, 5), dtype=np.uint8),
                                     excitatory=np.array([1.0, 0.0]))
    assert full.ds["excitatory"].dtype == bool
    with pytest.raises(ValueError, match=r"specimen_id has shape \(2,\); expected \(6,\)"):
        NeuralDataset.from_arrays(rng.normal(size=(6, 4, 2)), rng.integers(0, 256, (4, 5, 5), dtype=np.uint8),
                                  specimen_id=[1, 2])


def test_other_writers_numbers_are_read_as_the_schema(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "other.nc"
    xr.Dataset(
        {"responses": (("neuron", "stimulus", "trial"), rng.normal(size=(3, 4, 2)).astype(np.float32)),
         "stimuli": (("stimulus", "y", "x"), rng.integers(0, 256, (4, 5, 5), dtype=np.uint8))},
        coords={"stimulus": [-1.0, 0.0, 1.0, 2.0], "imaging_depth": ("neuron", [175.0, np.nan, 375.0]),
                "excitatory": ("neuron", np.array([1, 0, 1], dtype=np.int8))},
    ).to_netcdf(path, engine="h5netcdf")
    data = load_dataset(path)
    assert data.ds["stimulus"].dtype == np.int64 and data.ds["stimulus"].values.tolist() == [-1, 0, 1, 2]
    assert data.ds["imaging_depth"].values.tolist() == [175, -1, 375]
    assert data.ds["excitatory"].values.tolist() == [True, False, True]
    assert data.scenes().n_stimuli == 3


@pytest.mark.parametrize("which", ["synthetic", "fake"])
def test_existing_files_load_unchanged(tmp_path, which):
    from pathlib import Path

    from mbutils.testing import make_fake_dataset

    if which == "synthetic":
        path = Path(__file__).resolve().parents[1] / "data" / "synthetic.nc"
        if not path.exists():  # a clean clone: a smaller synthetic mouse of the same kind
            from mbutils.data import make_synthetic

            path = tmp_path / "synthetic.nc"
            make_synthetic(400, progress=False).save(path)
    else:
        path = tmp_path / "fake.nc"
        make_fake_dataset(path)
    data = load_dataset(path)
    with xr.open_dataset(path, engine="h5netcdf") as raw:
        assert set(data.ds.coords) == set(raw.coords) and data.ds.attrs == raw.attrs
        for name in raw.coords:
            assert data.ds[name].dtype.kind == raw[name].dtype.kind or raw[name].dtype.kind == "O"
            assert data.ds[name].values.tolist() == raw[name].values.tolist()
        np.testing.assert_array_equal(data.responses.values, raw["responses"].values)
    assert set(data.unknown_fields) <= {"specimen_id"}  # every field of the Allen schema is known


def test_ragged_trials_average_every_stimulus():
    data = _dataset(n=4, n_stim=5, n_trials=6)
    r = data.responses.values.copy()
    r[:, 1, 1:] = np.nan  # stimulus 1 shown once
    r[:, 2, 3:] = np.nan  # stimulus 2 shown three times
    data = NeuralDataset(data.ds.assign(responses=(data.responses.dims, r)))
    np.testing.assert_allclose(data.trial_average().values, np.nanmean(r, axis=2), rtol=1e-6)
    np.testing.assert_allclose(data.trial_average().values[:, 1], r[:, 1, 0])
    odd, even = data.trial_halves()
    assert np.isnan(even.values[:, 1]).all() and np.isfinite(odd.values).all()
    np.testing.assert_allclose(even.values[:, 2], r[:, 2, 1], rtol=1e-6)
