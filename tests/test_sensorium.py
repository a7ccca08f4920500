"""Sensorium 2022 reader: fixtures written in the published folder layout (np.save), planted responses."""
from __future__ import annotations

import numpy as np
import pytest

from mbutils.cli import main
from mbutils.data import SensoriumDataError, load_dataset, read_sensorium

H, W = 9, 16
SHARED_TEST_IDS = (5000, 5001, 5002)  # shown in every recording, N_REPEATS times each
N_REPEATS = 4


def _image(image_id: int) -> np.ndarray:
    """The (float, 0..255) image of an id: a pattern that differs between ids."""
    yy, xx = np.mgrid[:H, :W]
    return ((image_id * 37 + yy * 11 + xx * 5) % 256).astype(np.float32)


def _response(unit: int, trial_idx: int) -> float:
    return float(unit * 10_000 + trial_idx)


def write_recording(root, animal, session, scan, n_neurons, train_ids, *, seed, withhold_test=False,
                    area="V1", motor=True):
    """Write one recording in Sensorium's layout; return (folder, truth).

    ``truth[(image_id)]`` lists the trial_idx of its presentations, in presentation order.
    """
    rng = np.random.default_rng(seed)
    folder = root / f"static{animal}-{session}-{scan}-GrayImageNet-94c6ff995dac583098847cfecd43e7b6"
    trials = [(i, "train") for i in train_ids] + [(i, "test") for i in SHARED_TEST_IDS for _ in range(N_REPEATS)]
    order = rng.permutation(len(trials))  # files are in random order, trial_idx gives the true order
    trial_idx = rng.permutation(np.arange(100, 100 + len(trials)))
    units = np.arange(1, n_neurons + 1) * 3  # unit ids are not 0..n-1
    for sub in ("data/images", "data/responses", "data/behavior", "data/pupil_center", "meta/trials",
                "meta/neurons"):
        (folder / sub).mkdir(parents=True)
    image_ids, tiers, tidx, truth = [], [], [], {}
    for file_i, k in enumerate(order):
        image_id, tier = trials[k]
        t = int(trial_idx[file_i])
        image_ids.append(image_id)
        tiers.append(tier)
        tidx.append(t)
        np.save(folder / "data/images" / f"{file_i}.npy", _image(image_id)[None])
        resp = np.array([_response(u, t) for u in units], dtype=np.float32)
        if withhold_test and tier == "test":
            resp[:] = 0.0
        np.save(folder / "data/responses" / f"{file_i}.npy", resp)
        np.save(folder / "data/behavior" / f"{file_i}.npy", np.zeros(3, dtype=np.float32))
        np.save(folder / "data/pupil_center" / f"{file_i}.npy", np.zeros(2, dtype=np.float32))
        truth.setdefault(image_id, []).append(t)
    for image_id in truth:
        truth[image_id].sort()
    np.save(folder / "meta/trials/frame_image_id.npy", np.array(image_ids, dtype=np.int64))
    np.save(folder / "meta/trials/tiers.npy", np.array(tiers))
    np.save(folder / "meta/trials/trial_idx.npy", np.array(tidx, dtype=np.int64))
    np.save(folder / "meta/neurons/unit_ids.npy", units.astype(np.uint16))
    np.save(folder / "meta/neurons/animal_ids.npy", np.full(n_neurons, animal, dtype=np.uint16))
    np.save(folder / "meta/neurons/sessions.npy", np.full(n_neurons, session, dtype=np.uint8))
    np.save(folder / "meta/neurons/scan_idx.npy", np.full(n_neurons, scan, dtype=np.uint8))
    np.save(folder / "meta/neurons/area.npy", np.full(n_neurons, area))
    np.save(folder / "meta/neurons/layer.npy", np.full(n_neurons, "L2/3"))
    if motor:
        np.save(folder / "meta/neurons/cell_motor_coordinates.npy",
                np.column_stack([units * 1.0, units * 2.0, 100.0 + units]).astype(np.float32))
    return folder, {"units": units, "truth": truth, "animal": animal, "withhold": withhold_test}


@pytest.fixture
def two_mice(tmp_path):
    a = write_recording(tmp_path, 21067, 10, 18, 5, [1, 2, 3, 4], seed=0)
    b = write_recording(tmp_path, 22846, 10, 16, 3, [7, 8], seed=1)
    return tmp_path, [a, b]


def _expected(recs, stimulus, n_trials):
    """Neurons x stimuli x trials from the planted truth, by a plain loop."""
    rows = []
    for _, info in recs:
        for u in info["units"]:
            row = np.full((stimulus.size, n_trials), np.nan)
            for s, image_id in enumerate(stimulus.tolist()):
                if info["withhold"] and image_id in SHARED_TEST_IDS:
                    continue
                for r, t in enumerate(info["truth"].get(image_id, [])):
                    row[s, r] = _response(int(u), t)
            rows.append(row)
    return np.stack(rows)


def test_two_animals_planted_responses_metadata_and_sizes(two_mice):
    _, recs = two_mice
    ds = read_sensorium([r[0] for r in recs])
    assert ds.n_neurons == 8 and ds.n_trials == N_REPEATS
    stimulus = ds.ds["stimulus"].values
    assert stimulus.tolist() == [1, 2, 3, 4, 7, 8, *SHARED_TEST_IDS]
    np.testing.assert_array_equal(ds.responses.values, _expected(recs, stimulus, N_REPEATS).astype(np.float32))
    # a single-presentation image has one trial, the rest NaN; an image of the other animal is all NaN
    r = ds.responses.values
    assert np.isfinite(r[0, 0, 0]) and np.isnan(r[0, 0, 1:]).all() and np.isnan(r[0, 4]).all()
    assert np.isnan(r[5, 0]).all() and np.isfinite(r[5, 4, 0])
    # images at their stored size, uint8, the planted pattern of each id
    assert ds.stimuli.dtype == np.uint8 and ds.stimuli.shape == (9, H, W)
    for s, image_id in enumerate(stimulus.tolist()):
        np.testing.assert_array_equal(ds.stimuli.values[s], _image(image_id).astype(np.uint8))
    meta = ds.ds
    assert meta["specimen_id"].values.tolist() == [21067] * 5 + [22846] * 3
    assert meta["unit_id"].values.tolist() == [3, 6, 9, 12, 15, 3, 6, 9]
    assert len(set(meta["cell_specimen_id"].values.tolist())) == 8
    assert meta["cell_specimen_id"].values[0] == ((21067 * 100 + 10) * 100 + 18) * 100_000 + 3
    assert set(meta["area"].values.tolist()) == {"VISp"}
    assert set(meta["cre_line"].values.tolist()) == {"unknown"}
    assert (meta["imaging_depth"].values == -1).all() and np.isnan(meta["p_run_mod_ns"].values).all()
    assert np.isnan(meta["excitatory"].values).all()
    assert ds.unknown_fields == ["cre_line", "imaging_depth", "excitatory", "p_run_mod_ns"]
    np.testing.assert_array_equal(meta["position_z"].values, 100.0 + meta["unit_id"].values)
    assert meta.attrs["source"] == "sensorium2022" and meta.attrs["image_scale"] == "0-255"


def test_one_animal_saved_file_loads(two_mice, tmp_path):
    _, recs = two_mice
    out = tmp_path / "one.nc"
    read_sensorium(recs[1][0]).save(out)
    ds = load_dataset(out)
    assert ds.n_neurons == 3 and ds.ds["stimulus"].values.tolist() == [7, 8, *SHARED_TEST_IDS]
    np.testing.assert_array_equal(ds.responses.values,
                                  _expected([recs[1]], ds.ds["stimulus"].values, N_REPEATS).astype(np.float32))
    assert ds.ds["specimen_id"].values.tolist() == [22846] * 3
    assert ds.ds["layer"].values.tolist() == ["L2/3"] * 3 and np.isnan(ds.ds["excitatory"].values).all()


def test_withheld_test_tier_is_nan_and_tiers_filter(tmp_path):
    rec = write_recording(tmp_path, 26872, 17, 20, 4, [1, 2], seed=3, withhold_test=True)
    ds = read_sensorium(rec[0])
    np.testing.assert_array_equal(ds.responses.values, _expected([rec], ds.ds["stimulus"].values, N_REPEATS))
    assert ds.ds.attrs["n_withheld_trials"] == len(SHARED_TEST_IDS) * N_REPEATS
    train = read_sensorium(rec[0], tiers=["train"])
    assert train.ds["stimulus"].values.tolist() == [1, 2] and train.n_trials == 1
    with pytest.raises(SensoriumDataError, match="all withheld"):
        read_sensorium(rec[0], tiers=["test"])


def test_competition_mouse_with_pretraining_mouse_on_the_test_tier(tmp_path):
    comp = write_recording(tmp_path, 26872, 17, 20, 3, [1], seed=9, withhold_test=True)
    pre = write_recording(tmp_path, 21067, 10, 18, 2, [], seed=10)
    ds = read_sensorium([comp[0], pre[0]], tiers=["test"])
    # the competition mouse's test responses are withheld: its neurons have none and are left out
    assert ds.ds["specimen_id"].values.tolist() == [21067, 21067]
    assert ds.ds.attrs["n_neurons_without_responses"] == 3
    np.testing.assert_array_equal(ds.responses.values, _expected([pre], ds.ds["stimulus"].values, N_REPEATS))
    train = read_sensorium([comp[0], pre[0]], tiers=["train"])  # the second recording has no train trial
    assert train.ds["stimulus"].values.tolist() == [1] and train.ds["specimen_id"].values.tolist() == [26872] * 3


def test_images_on_the_unit_scale_are_scaled(tmp_path):
    folder, _ = write_recording(tmp_path, 1, 1, 1, 2, [1], seed=4)
    for f in (folder / "data/images").glob("*.npy"):
        np.save(f, np.load(f) / 255.0)
    ds = read_sensorium(folder)
    assert ds.ds.attrs["image_scale"] == "0-1"
    for s, image_id in enumerate(ds.ds["stimulus"].values.tolist()):
        np.testing.assert_array_equal(ds.stimuli.values[s], _image(image_id).astype(np.uint8))


@pytest.mark.parametrize("damage, match", [
    (lambda f: __import__("shutil").rmtree(f / "meta" / "trials"), r"lacks meta/trials/"),
    (lambda f: (f / "meta/trials/tiers.npy").unlink(), r"tiers\.npy.*not found"),
    (lambda f: np.save(f / "data/responses/0.npy", np.zeros(7, np.float32)), r"0\.npy.* holds 7 responses"),
    (lambda f: (f / "data/responses/2.npy").write_bytes(b"not a numpy file"), r"2\.npy.*could not be read"),
    (lambda f: np.save(f / "data/images/1.npy", np.zeros((2, 3, H, W))), r"1\.npy.*has shape"),
    (lambda f: (f / "data/responses/3.npy").unlink(), r"holds \d+ \.npy files"),
    (lambda f: np.save(f / "meta/neurons/cell_motor_coordinates.npy", np.zeros((5, 2))), r"expected \(n_neurons, 3\)"),
])
def test_damaged_folders_give_one_line_errors(tmp_path, damage, match):
    folder, _ = write_recording(tmp_path, 1, 1, 1, 5, [1, 2, 3], seed=5)
    damage(folder)
    with pytest.raises(SensoriumDataError, match=match) as err:
        read_sensorium(folder)
    assert "\n" not in str(err.value) and str(folder) in str(err.value)


def test_missing_folder_and_conflicting_images(tmp_path):
    with pytest.raises(SensoriumDataError, match=r"nope.*not found"):
        read_sensorium(tmp_path / "nope")
    a, _ = write_recording(tmp_path, 1, 1, 1, 2, [1], seed=6)
    b, _ = write_recording(tmp_path, 2, 1, 1, 2, [1], seed=7)
    for f in (b / "data/images").glob("*.npy"):
        np.save(f, np.zeros((1, H, W), np.float32))
    with pytest.raises(SensoriumDataError, match="differs between recordings"):
        read_sensorium([a, b])
    with pytest.raises(SensoriumDataError, match="give each recording once"):
        read_sensorium([a, a])
    with pytest.raises(SensoriumDataError, match="max_gib"):
        read_sensorium(a, max_gib=1e-9)


def test_standardized_images_are_refused(tmp_path):
    folder, _ = write_recording(tmp_path, 1, 1, 1, 2, [1], seed=8)
    for f in (folder / "data/images").glob("*.npy"):
        np.save(f, np.load(f) / 64.0 - 2.0)
    with pytest.raises(SensoriumDataError, match="outside 0..255"):
        read_sensorium(folder)


def test_cli(two_mice, tmp_path, capsys):
    _, recs = two_mice
    out = tmp_path / "s.nc"
    argv = ["--no-progress", "data", "sensorium", "--out", str(out)]
    for folder, _ in recs:
        argv += ["--path", str(folder)]
    assert main(argv) == 0
    assert "8 neurons of animals [21067, 22846]" in capsys.readouterr().out
    assert load_dataset(out).n_stimuli == 9
    assert main(["data", "sensorium", "--path", str(tmp_path / "missing"), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "missing" in err and err.startswith("mbutils data sensorium:")


def test_help_has_examples(capsys):
    assert main(["data", "sensorium", "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:\n  mbutils data sensorium --path" in out and "--tiers" in out and "global options:" in out
