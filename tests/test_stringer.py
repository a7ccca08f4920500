"""Stringer et al. 2019 reader: fixtures written as the published .mat files (scipy.io.savemat), planted responses."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from mbutils.cli import main
from mbutils.data import StringerDataError, load_dataset, read_stringer

N_IMAGES, H, W = 6, 5, 12
BLANK = N_IMAGES + 1
# 1-based image per presentation; image 3 is never shown, image 6 once, the blank (7) three times
ISTIM = np.array([2, 1, 7, 4, 5, 2, 6, 7, 1, 4, 5, 7])
N_NEURONS = 4


def _resp(p: int, j: int) -> float:
    return float(j * 10_000 + p)


def _images(dtype=np.uint8):
    yy, xx = np.mgrid[:H, :W]
    imgs = np.stack([(k * 41 + yy * 13 + xx * 3) % 256 for k in range(N_IMAGES)], axis=2)  # H x W x N
    return imgs.astype(dtype)


def write_files(tmp_path, name="natimg2800_M170714_MP032_2017-09-14.mat", nan_neuron=None, images=None):
    resp = np.array([[_resp(p, j) for j in range(N_NEURONS)] for p in range(ISTIM.size)])
    if nan_neuron is not None:
        resp[:, nan_neuron] = np.nan
    med = np.column_stack([np.arange(N_NEURONS) * 10.0, np.arange(N_NEURONS) * 20.0, np.full(N_NEURONS, 35.0)])
    rec = tmp_path / name
    scipy.io.savemat(rec, {"stim": {"resp": resp, "istim": ISTIM[:, None].astype(float),
                                    "spont": np.ones((9, N_NEURONS))},
                           "med": med, "stat": {"npix": np.ones((N_NEURONS, 1))}})
    img = tmp_path / "images_natimg2800_all.mat"
    scipy.io.savemat(img, {"imgs": _images() if images is None else images})
    return rec, img


def _expected(stimulus, n_trials, neurons):
    """Neurons x stimuli x trials from the planted presentations, by a plain loop."""
    out = np.full((len(neurons), stimulus.size, n_trials), np.nan)
    for a, j in enumerate(neurons):
        for s, image_index in enumerate(stimulus.tolist()):
            shown = [p for p in range(ISTIM.size) if ISTIM[p] - 1 == image_index]
            for r, p in enumerate(shown):
                out[a, s, r] = _resp(p, j)
    return out


def test_planted_responses_images_and_metadata(tmp_path):
    rec, img = write_files(tmp_path)
    ds = read_stringer(rec, img)
    stimulus = ds.ds["stimulus"].values
    assert stimulus.tolist() == [0, 1, 3, 4, 5]  # image 3 (index 2) never shown, the blank left out
    assert ds.n_neurons == N_NEURONS and ds.n_trials == 2
    np.testing.assert_array_equal(ds.responses.values, _expected(stimulus, 2, range(N_NEURONS)).astype(np.float32))
    assert np.isnan(ds.responses.values[:, 4, 1]).all()  # image 6 shown once
    assert ds.stimuli.dtype == np.uint8 and ds.stimuli.shape == (5, H, W)
    np.testing.assert_array_equal(ds.stimuli.values, np.moveaxis(_images(), 2, 0)[stimulus])
    meta = ds.ds
    assert meta["cell_specimen_id"].values.tolist() == [0, 1, 2, 3]
    assert (meta["specimen_id"].values == 32).all()
    np.testing.assert_array_equal(meta["position_y"].values, np.arange(N_NEURONS) * 20.0)
    assert set(meta["area"].values.tolist()) == {"unknown"} and set(meta["cre_line"].values.tolist()) == {"unknown"}
    assert (meta["imaging_depth"].values == -1).all() and np.isnan(meta["p_run_mod_ns"].values).all()
    assert ds.unknown_fields == ["area", "cre_line", "imaging_depth", "excitatory", "p_run_mod_ns"]
    assert meta.attrs["source"] == "stringer2019" and meta.attrs["n_blank_presentations"] == 3


def test_float_images_nan_neuron_and_saved_file(tmp_path):
    rec, img = write_files(tmp_path, nan_neuron=2, images=_images(np.float64) / 255.0)
    ds = read_stringer(rec, img, area="VISp")
    assert ds.ds["cell_specimen_id"].values.tolist() == [0, 1, 3]
    assert ds.ds.attrs["n_neurons_without_responses"] == 1 and ds.ds.attrs["image_scale"] == "0-1"
    out = tmp_path / "s.nc"
    ds.save(out)
    back = load_dataset(out)
    np.testing.assert_array_equal(back.responses.values,
                                  _expected(back.ds["stimulus"].values, 2, [0, 1, 3]).astype(np.float32))
    np.testing.assert_array_equal(back.stimuli.values, np.moveaxis(_images(), 2, 0)[back.ds["stimulus"].values])
    assert set(back.ds["area"].values.tolist()) == {"VISp"} and np.isnan(back.ds["excitatory"].values).all()


def test_file_name_without_mouse_leaves_specimen_unknown(tmp_path):
    rec, img = write_files(tmp_path, name="recording.mat")
    ds = read_stringer(rec, img)
    assert (ds.ds["specimen_id"].values == -1).all() and "specimen_id" in ds.unknown_fields


def _write_v73(path, variables):
    """A MATLAB v7.3 file: HDF5 with a 512-byte user block holding MATLAB's header, arrays column-major."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as fh:
        for key, value in variables.items():
            if isinstance(value, dict):
                group = fh.create_group(key)
                for k, v in value.items():
                    group[k] = np.asarray(v).T
            else:
                fh[key] = np.asarray(value).T
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(header.ljust(116) + b"\x00" * 8 + b"\x00\x02" + b"IM")


def test_v73_files_are_read_with_h5py(tmp_path):
    resp = np.array([[_resp(p, j) for j in range(N_NEURONS)] for p in range(ISTIM.size)])
    rec, img = tmp_path / "natimg2800_M1_MP7_x.mat", tmp_path / "imgs.mat"
    _write_v73(rec, {"stim": {"resp": resp, "istim": ISTIM[:, None].astype(float)}, "med": np.zeros((N_NEURONS, 3))})
    _write_v73(img, {"imgs": _images()})
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(rec)  # scipy sees a v7.3 file
    ds = read_stringer(rec, img)
    np.testing.assert_array_equal(ds.responses.values,
                                  _expected(ds.ds["stimulus"].values, 2, range(N_NEURONS)).astype(np.float32))
    np.testing.assert_array_equal(ds.stimuli.values, np.moveaxis(_images(), 2, 0)[ds.ds["stimulus"].values])
    assert (ds.ds["specimen_id"].values == 7).all()


def test_errors_name_the_file(tmp_path):
    rec, img = write_files(tmp_path)
    cases = [
        (lambda: read_stringer(tmp_path / "absent.mat", img), r"absent\.mat.*not found.*figshare"),
        (lambda: read_stringer(rec, tmp_path / "noimg.mat"), r"noimg\.mat.*not found"),
    ]
    bad = tmp_path / "corrupt.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 20)
    cases.append((lambda: read_stringer(bad, img), r"corrupt\.mat.*could not be read"))
    truncated = tmp_path / "truncated.mat"
    truncated.write_bytes(rec.read_bytes()[: rec.stat().st_size // 2])
    cases.append((lambda: read_stringer(truncated, img), r"truncated\.mat.*could not be read.*download it again"))
    nostim = tmp_path / "nostim.mat"
    scipy.io.savemat(nostim, {"resp": np.zeros((3, 2))})
    cases.append((lambda: read_stringer(nostim, img), r"nostim\.mat.*no struct 'stim'"))
    short = tmp_path / "short.mat"
    scipy.io.savemat(short, {"stim": {"resp": np.zeros((5, 2)), "istim": np.ones((4, 1))}})
    cases.append((lambda: read_stringer(short, img), r"short\.mat.*4 entries but stim\.resp 5 rows"))
    badmed = tmp_path / "badmed.mat"
    scipy.io.savemat(badmed, {"stim": {"resp": np.ones((2, 2)), "istim": np.ones((2, 1))}, "med": np.zeros((3, 3))})
    cases.append((lambda: read_stringer(badmed, img), r"badmed\.mat.*med has shape \(3, 3\)"))
    few = tmp_path / "few.mat"
    scipy.io.savemat(few, {"imgs": _images()[:, :, :3]})
    cases.append((lambda: read_stringer(rec, few), r"shows image 7 but .*few\.mat.* holds 3 images"))
    flat = tmp_path / "flat.mat"
    scipy.io.savemat(flat, {"imgs": np.zeros((4, 5))})
    cases.append((lambda: read_stringer(rec, flat), r"flat\.mat.*imgs has shape \(4, 5\)"))
    white = tmp_path / "natimg2800_white_M170717_MP033_2017-08-20.mat"
    white.write_bytes(rec.read_bytes())
    cases.append((lambda: read_stringer(white, img), r"natimg2800_white recording.*give a natimg2800_M"))
    for call, match in cases:
        with pytest.raises(StringerDataError, match=match) as err:
            call()
        assert "\n" not in str(err.value)


def test_cli(tmp_path, capsys):
    rec, img = write_files(tmp_path)
    out = tmp_path / "out.nc"
    assert main(["--no-progress", "data", "stringer", "--path", str(rec), "--images", str(img), "--out", str(out)]) == 0
    assert "4 neurons, 5 images, up to 2 trials" in capsys.readouterr().out
    assert load_dataset(out).n_neurons == N_NEURONS
    assert main(["data", "stringer", "--path", str(tmp_path / "x.mat"), "--images", str(img), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "x.mat" in err and err.startswith("mbutils data stringer:")


def test_help_has_examples(capsys):
    assert main(["data", "stringer", "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:\n  mbutils data stringer --path" in out and "--images" in out and "global options:" in out
