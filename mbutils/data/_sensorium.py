"""Read the Sensorium 2022 static-image recordings (mouse V1) into the dataset format.

The competition publishes one folder per recording (``static<animal>-<session>-<scan>-GrayImageNet-<hash>``,
unzipped from the ``.zip`` on gin.g-node.org/cajal/Sensorium2022) laid out as neuralpredictors'
``FileTreeDataset`` reads it:

- ``data/images/<i>.npy``: the image of trial ``i``, shape (1, height, width) (144 x 256), grayscale;
- ``data/responses/<i>.npy``: the responses of trial ``i``, shape (n_neurons,);
- ``data/behavior/<i>.npy``, ``data/pupil_center/<i>.npy``: behaviour of trial ``i`` (not read here);
- ``meta/trials/frame_image_id.npy``: the image id of each trial, shape (n_trials,) (a repeated image
  keeps its id);
- ``meta/trials/tiers.npy``: ``train``, ``validation``, ``test`` or ``final_test`` per trial;
- ``meta/trials/trial_idx.npy`` (optional): the presentation order (hashed strings in the two
  competition recordings);
- ``meta/neurons/unit_ids.npy``: the unit id of each neuron, shape (n_neurons,);
- ``meta/neurons/cell_motor_coordinates.npy`` (optional): (n_neurons, 3) positions in micrometres;
- ``meta/neurons/animal_ids.npy``, ``sessions.npy``, ``scan_idx.npy``, ``area.npy``, ``layer.npy``
  (each optional, shape (n_neurons,)).

Trial ``i`` of ``meta/trials/*`` is file ``i.npy`` of ``data/*``. Each image id becomes one stimulus
and its presentations become its trials (in ``trial_idx`` order when that is numeric); a trial whose
responses are all exactly zero is a withheld one (the competition recordings zero their test tiers)
and is stored as NaN.

Examples
--------
>>> from mbutils.data import read_sensorium
>>> ds = read_sensorium(["static26872-17-20-GrayImageNet-94c6ff995dac583098847cfecd43e7b6"])  # doctest: +SKIP
>>> ds.save("data/sensorium.nc")                                                              # doctest: +SKIP
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .dataset import UNKNOWN

__all__ = ["read_sensorium", "SensoriumDataError", "add_sensorium_arguments", "run_sensorium"]

#: Sensorium's area labels -> the dataset's (Allen) area names
_AREA_NAMES = {"V1": "VISp"}
_FOLDER_RE = re.compile(r"static(\d+)-(\d+)-(\d+)")


class SensoriumDataError(ValueError):
    """A Sensorium folder that is missing parts, has inconsistent shapes or unreadable files."""


# ------------------------------------------------------------------------------------ shared helpers
def images_to_uint8(images: np.ndarray, where: str, error=ValueError) -> tuple[np.ndarray, str]:
    """Grayscale images as uint8, from uint8 or from floats on the 0..255 or the 0..1 scale.

    Parameters
    ----------
    images : array of shape (n_images, height, width)
        uint8 values are kept; other integers are read on the 0..255 scale. Floating-point
        values are read on the 0..255 scale, unless all of them lie within 0..1, which is read as
        the 0..1 scale (multiplied by 255); then rounded to the nearest integer.
    where : str
        The file or folder, named in errors.
    error : type, default ValueError
        The exception class raised (a subclass of ValueError).

    Returns
    -------
    images : uint8 array of shape (n_images, height, width)
    scale : str
        ``"uint8"``, ``"0-255"`` or ``"0-1"``: the scale the values were read on.

    Raises
    ------
    ValueError
        For non-finite values or values outside 0..255 (e.g. standardized images).
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images, "uint8"
    if images.dtype.kind not in "fiu":
        raise error(f"{where}: images have dtype {images.dtype}; expected uint8 or float grayscale values")
    if not np.isfinite(images).all():
        raise error(f"{where}: images hold non-finite values; give the images as published (0..255)")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-6 or hi > 255 + 1e-6:
        raise error(
            f"{where}: image values span {lo:.4g}..{hi:.4g}, outside 0..255 (standardized images?); "
            "give the images as published, on the 0..255 (or 0..1) scale"
        )
    scale = "0-1" if images.dtype.kind == "f" and hi <= 1.0 else "0-255"
    factor = 255.0 if scale == "0-1" else 1.0
    out = np.empty(images.shape, dtype=np.uint8)
    for start in range(0, images.shape[0], 256):  # in chunks: no float64 copy of all images
        chunk = images[start:start + 256].astype(np.float64) * factor
        out[start:start + 256] = np.clip(np.rint(chunk), 0, 255)
    return out, scale


def build_dataset(responses, stimuli, *, stimulus, cell_specimen_id, specimen_id, area, extra_coords,
                  source, description, attrs):
    """Assemble a :class:`~mbutils.data.NeuralDataset`; what the sources do not record stays unknown.

    Parameters
    ----------
    responses : float32 array of shape (n_neurons, n_stimuli, n_trials)
    stimuli : uint8 array of shape (n_stimuli, height, width)
    stimulus : int array of shape (n_stimuli,)
    cell_specimen_id, specimen_id : int arrays of shape (n_neurons,)
    area : str array of shape (n_neurons,)
    extra_coords : dict of name -> array of shape (n_neurons,)
        Further coordinates along ``neuron``.
    source, description : str
    attrs : dict
        Further global attributes (str or numbers).

    Notes
    -----
    Cre line, imaging depth, cell type and running modulation are not in these sources: they
    get the schema's unknown values (``cre_line`` ``"unknown"``, ``imaging_depth`` -1,
    ``excitatory`` NaN, ``p_run_mod_ns`` NaN), so the neuron selection skips those steps.
    """
    from .dataset import NeuralDataset

    ds = NeuralDataset.from_arrays(
        responses, stimuli, stimulus=stimulus, cell_specimen_id=cell_specimen_id, specimen_id=specimen_id,
        area=area, source=source, description=description, attrs=attrs,
    ).ds
    coords = {name: ("neuron", np.asarray(values)) for name, values in extra_coords.items()}
    return NeuralDataset(ds.assign_coords(coords))


def _load_npy(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise SensoriumDataError(
            f"Sensorium file {str(path)!r} ({what}) not found; give the folder unzipped from the published "
            "static*-GrayImageNet-*.zip (it holds data/ and meta/)"
        )
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise SensoriumDataError(
            f"Sensorium file {str(path)!r} ({what}) could not be read as .npy ({err}); unzip the recording again"
        ) from err


def _neuron_meta(meta: Path, name: str, n_neurons: int, folder: Path):
    path = meta / "neurons" / f"{name}.npy"
    if not path.exists():
        return None
    values = _load_npy(path, f"neuron {name}")
    if values.shape[0] != n_neurons:
        raise SensoriumDataError(
            f"Sensorium file {str(path)!r} has {values.shape[0]} rows but {folder} has {n_neurons} neurons "
            "(meta/neurons/unit_ids.npy); unzip the recording again"
        )
    return values


# ------------------------------------------------------------------------------------ one recording
def _read_recording(folder: Path, tiers_kept):
    """Read one recording folder: trials, responses, images and neuron metadata."""
    folder = Path(folder)
    if not folder.is_dir():
        hint = f" (unzip {folder.name} first)" if folder.suffix == ".zip" else ""
        raise SensoriumDataError(
            f"Sensorium folder {str(folder)!r} not found or not a folder{hint}; give a folder unzipped from "
            "gin.g-node.org/cajal/Sensorium2022 (it holds data/ and meta/)"
        )
    meta, data = folder / "meta", folder / "data"
    for sub in (data / "images", data / "responses", meta / "trials", meta / "neurons"):
        if not sub.is_dir():
            raise SensoriumDataError(
                f"Sensorium folder {str(folder)!r} lacks {sub.relative_to(folder)}/; give the folder unzipped from "
                "the published static*-GrayImageNet-*.zip"
            )
    image_ids = _load_npy(meta / "trials" / "frame_image_id.npy", "image id per trial")
    tiers = _load_npy(meta / "trials" / "tiers.npy", "tier per trial").astype(str)
    unit_ids = _load_npy(meta / "neurons" / "unit_ids.npy", "unit id per neuron")
    if image_ids.ndim != 1 or tiers.shape != image_ids.shape:
        raise SensoriumDataError(
            f"Sensorium folder {str(folder)!r}: meta/trials/frame_image_id.npy has shape {image_ids.shape} and "
            f"tiers.npy {tiers.shape}; both must be (n_trials,)"
        )
    if image_ids.dtype.kind not in "iuf" or (image_ids.dtype.kind == "f" and
                                            not np.array_equal(image_ids, np.rint(image_ids))):
        raise SensoriumDataError(
            f"Sensorium file {str(meta / 'trials' / 'frame_image_id.npy')!r} holds {image_ids.dtype} values; "
            "expected integer image ids"
        )
    image_ids = image_ids.astype(np.int64)
    if unit_ids.ndim != 1 or unit_ids.dtype.kind not in "iu":
        raise SensoriumDataError(
            f"Sensorium file {str(meta / 'neurons' / 'unit_ids.npy')!r} holds {unit_ids.dtype} values of shape "
            f"{unit_ids.shape}; expected integer unit ids of shape (n_neurons,)"
        )
    n_files = len(list((data / "responses").glob("*.npy")))
    if n_files != image_ids.size:
        raise SensoriumDataError(
            f"Sensorium folder {str(folder)!r}: data/responses holds {n_files} .npy files but meta/trials lists "
            f"{image_ids.size} trials; unzip the recording again"
        )
    n_neurons = unit_ids.shape[0]
    order_key = None
    trial_idx_path = meta / "trials" / "trial_idx.npy"
    if trial_idx_path.exists():
        trial_idx = _load_npy(trial_idx_path, "trial order")
        if trial_idx.shape == image_ids.shape and trial_idx.dtype.kind in "iuf":
            order_key = trial_idx.astype(np.float64)

    keep = np.ones(image_ids.size, dtype=bool) if tiers_kept is None else np.isin(tiers, list(tiers_kept))
    trials = np.flatnonzero(keep)
    responses = np.empty((trials.size, n_neurons), dtype=np.float32)
    for row, i in enumerate(trials):
        path = data / "responses" / f"{i}.npy"
        r = np.asarray(_load_npy(path, f"responses of trial {i}"), dtype=np.float32).reshape(-1)
        if r.size != n_neurons:
            raise SensoriumDataError(
                f"Sensorium file {str(path)!r} holds {r.size} responses but meta/neurons/unit_ids.npy lists "
                f"{n_neurons} neurons; unzip the recording again"
            )
        responses[row] = r
    withheld = ~(responses != 0).any(axis=1)  # zeroed (withheld) test responses
    responses[withheld] = np.nan

    first = {}
    for i in trials:
        first.setdefault(int(image_ids[i]), int(i))
    images, shape = {}, None
    for image_id, i in first.items():
        path = data / "images" / f"{i}.npy"
        img = _load_npy(path, f"image of trial {i}")
        img = img[0] if img.ndim == 3 and img.shape[0] == 1 else img
        if img.ndim != 2:
            raise SensoriumDataError(
                f"Sensorium file {str(path)!r} has shape {img.shape}; expected a grayscale image (1, height, width)"
            )
        if shape is None:
            shape = img.shape
        elif img.shape != shape:
            raise SensoriumDataError(
                f"Sensorium file {str(path)!r} has shape {img.shape}, other images of {folder} {shape}; "
                "unzip the recording again"
            )
        images[image_id] = img

    m = _FOLDER_RE.search(folder.name)
    folder_key = tuple(int(g) for g in m.groups()) if m else None
    animal = _neuron_meta(meta, "animal_ids", n_neurons, folder)
    sessions = _neuron_meta(meta, "sessions", n_neurons, folder)
    scans = _neuron_meta(meta, "scan_idx", n_neurons, folder)

    def per_neuron(values, index):
        if values is not None and values.dtype.kind in "iuf":
            return values.astype(np.int64)
        return np.full(n_neurons, folder_key[index] if folder_key else 0, dtype=np.int64)

    neurons = {
        "unit_id": np.asarray(unit_ids).astype(np.int64),
        "specimen_id": per_neuron(animal, 0),
        "session": per_neuron(sessions, 1),
        "scan_idx": per_neuron(scans, 2),
    }
    area = _neuron_meta(meta, "area", n_neurons, folder)
    neurons["area"] = (np.array([_AREA_NAMES.get(a, a) for a in area.astype(str)]) if area is not None
                       else np.full(n_neurons, UNKNOWN))
    layer = _neuron_meta(meta, "layer", n_neurons, folder)
    neurons["layer"] = layer.astype(str) if layer is not None else np.full(n_neurons, UNKNOWN)
    xyz = _neuron_meta(meta, "cell_motor_coordinates", n_neurons, folder)
    if xyz is not None and (xyz.ndim != 2 or xyz.shape[1] != 3):
        raise SensoriumDataError(
            f"Sensorium file {str(meta / 'neurons' / 'cell_motor_coordinates.npy')!r} has shape {xyz.shape}; "
            "expected (n_neurons, 3)"
        )
    for axis, name in enumerate(("position_x", "position_y", "position_z")):
        neurons[name] = xyz[:, axis].astype(np.float64) if xyz is not None else np.full(n_neurons, np.nan)

    trial_ids = image_ids[trials]
    if order_key is not None:
        sort = np.lexsort((order_key[trials], trial_ids))
    else:
        sort = np.lexsort((trials, trial_ids))
    return {
        "folder": folder,
        "image_ids": trial_ids[sort],
        "responses": responses[sort],
        "images": images,
        "n_withheld": int(withheld.sum()),
        "neurons": neurons,
    }


# ------------------------------------------------------------------------------------ public reader
def read_sensorium(paths, *, tiers=None, max_gib: float = 16.0):
    """Read one or more Sensorium 2022 recording folders into one dataset.

    Parameters
    ----------
    paths : str, pathlib.Path or list of them
        Recording folders (unzipped ``static*-GrayImageNet-*``), one per animal and scan.
    tiers : list of str, optional
        Keep the trials of these tiers only (``train``, ``validation``, ``test``, ``final_test``);
        default all. ``["test"]`` keeps the 100 images shown 10 times each, the same in every
        recording.
    max_gib : float, default 16
        Refuse to build a ``responses`` array larger than this many GiB (NaN-padded neurons x
        stimuli x trials); ``tiers`` makes it smaller.

    Returns
    -------
    NeuralDataset
        ``responses`` (neuron, stimulus, trial): all recordings' neurons concatenated, one stimulus
        per image id (the union over recordings, sorted), trials NaN-padded to the most repeats;
        NaN where a recording did not show an image. ``stimuli`` (stimulus, 144, 256) uint8.
        Coordinates along ``neuron``: ``cell_specimen_id`` (``(((animal * 100 + session) * 100 + scan)
        * 100000 + unit_id``), ``specimen_id`` (the animal), ``unit_id``, ``session``, ``scan_idx``,
        ``area`` (``V1`` read as ``VISp``), ``layer``, ``position_x/y/z`` (cell_motor_coordinates, um);
        ``cre_line`` ``"unknown"``, ``imaging_depth`` -1, ``excitatory`` and ``p_run_mod_ns`` NaN
        (unknown).

    Raises
    ------
    SensoriumDataError
        A missing folder or file, inconsistent shapes, an unreadable file, two recordings whose
        images of one id differ, duplicate neurons, or an output over ``max_gib``.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise SensoriumDataError("no Sensorium folder given; pass at least one recording folder")
    if tiers is not None:
        tiers = [str(t) for t in tiers]
    recordings = [_read_recording(Path(p), tiers) for p in paths]

    all_ids = np.unique(np.concatenate([r["image_ids"] for r in recordings]))
    if all_ids.size == 0:
        raise SensoriumDataError(f"no trials left in {[str(p) for p in paths]} for tiers {tiers}; "
                                 "choose tiers among train, validation, test, final_test")
    images, image_scale = {}, set()
    for rec in recordings:
        ids = list(rec["images"])
        if not ids:  # no trial of the kept tiers in this recording
            continue
        shapes = {rec["images"][i].shape for i in ids}
        if len(shapes) > 1:
            raise SensoriumDataError(f"Sensorium folder {str(rec['folder'])!r} holds images of shapes "
                                     f"{sorted(shapes)}; unzip the recording again")
        # the scale is decided once per recording, never per image
        stack8, scale = images_to_uint8(np.stack([rec["images"][i] for i in ids]),
                                        str(rec["folder"] / "data" / "images"), SensoriumDataError)
        image_scale.add(scale)
        for image_id, img8 in zip(ids, stack8):
            if image_id in images:
                if images[image_id].shape != img8.shape or not np.array_equal(images[image_id], img8):
                    raise SensoriumDataError(
                        f"image id {image_id} differs between recordings (in {rec['folder']}); give recordings "
                        "of the same image set"
                    )
            else:
                images[image_id] = img8
    shapes = {img.shape for img in images.values()}
    if len(shapes) > 1:
        raise SensoriumDataError(f"recordings {[str(p) for p in paths]} have images of shapes {sorted(shapes)}; "
                                 "give recordings with one image size")
    if len(image_scale) > 1:
        raise SensoriumDataError(f"recordings {[str(p) for p in paths]} store images on different scales "
                                 f"({sorted(image_scale)}); give the recordings as published")

    n_rep = 1
    for rec in recordings:
        _, counts = np.unique(rec["image_ids"], return_counts=True)
        n_rep = max(n_rep, int(counts.max()) if counts.size else 1)
    n_neurons = sum(r["responses"].shape[1] for r in recordings)
    gib = n_neurons * all_ids.size * n_rep * 4 / 2**30
    if gib > max_gib:
        raise SensoriumDataError(
            f"the responses array would take {gib:.1f} GiB ({n_neurons} neurons x {all_ids.size} images x {n_rep} "
            f"trials) > max_gib={max_gib}; keep fewer tiers (e.g. tiers=['test'], --tiers test) or fewer recordings"
        )
    out = np.full((n_neurons, all_ids.size, n_rep), np.nan, dtype=np.float32)
    start = 0
    for rec in recordings:
        ids, resp = rec["image_ids"], rec["responses"]
        n = resp.shape[1]
        stim = np.searchsorted(all_ids, ids)
        # repeat index: position of each trial within its (sorted) image id
        first_of_id = np.searchsorted(ids, ids, side="left")
        rep = np.arange(ids.size) - first_of_id
        out[start:start + n][:, stim, rep] = resp.T
        start += n

    neurons = {key: np.concatenate([r["neurons"][key] for r in recordings]) for key in recordings[0]["neurons"]}
    csid = (((neurons["specimen_id"] * 100 + neurons["session"]) * 100 + neurons["scan_idx"]) * 100_000
            + neurons["unit_id"])
    uniq, counts = np.unique(csid, return_counts=True)
    if (counts > 1).any():
        raise SensoriumDataError(
            f"recordings {[str(p) for p in paths]} repeat neurons (animal, session, scan, unit) "
            f"{uniq[counts > 1][:5].tolist()}; give each recording once"
        )
    seen = np.isfinite(out).any(axis=(1, 2))
    n_dropped = int((~seen).sum())
    if not seen.any():
        raise SensoriumDataError(f"recordings {[str(p) for p in paths]} hold no responses for tiers {tiers} "
                                 "(all withheld); choose other tiers")
    keep = np.flatnonzero(seen)
    stimuli = np.stack([images[i] for i in all_ids.tolist()])
    extra = {k: neurons[k][keep] for k in ("unit_id", "session", "scan_idx", "layer",
                                            "position_x", "position_y", "position_z")}
    folders = [str(r["folder"]) for r in recordings]
    return build_dataset(
        out[keep], stimuli, stimulus=all_ids, cell_specimen_id=csid[keep], specimen_id=neurons["specimen_id"][keep],
        area=neurons["area"][keep], extra_coords=extra, source="sensorium2022",
        description=(f"Sensorium 2022 static natural images, {len(recordings)} recording(s), "
                     f"{keep.size} neurons, {all_ids.size} images, up to {n_rep} trials"),
        attrs={
            "recordings": json.dumps([Path(f).name for f in folders]),
            "tiers": json.dumps(tiers if tiers is not None else "all"),
            "image_scale": image_scale.pop(),
            "n_withheld_trials": int(sum(r["n_withheld"] for r in recordings)),
            "n_neurons_without_responses": n_dropped,
        },
    )


# ------------------------------------------------------------------------------------ command line
def add_sensorium_arguments(parser) -> None:
    """Options of ``mbutils data sensorium``."""
    parser.add_argument("--path", action="append", required=True, metavar="DIR",
                        help="a recording folder unzipped from Sensorium2022 (repeat for several animals)")
    parser.add_argument("--out", required=True, help="output NetCDF file, e.g. data/sensorium.nc")
    parser.add_argument("--tiers", nargs="+", default=None, metavar="TIER",
                        help="keep these tiers only (train validation test final_test; default all)")
    parser.add_argument("--max-gib", type=float, default=16.0,
                        help="refuse a responses array larger than this (GiB, default 16)")


def run_sensorium(args) -> int:
    """Run ``mbutils data sensorium``."""
    dataset = read_sensorium(args.path, tiers=args.tiers, max_gib=args.max_gib)
    path = dataset.save(args.out)
    animals = np.unique(dataset.ds["specimen_id"].values).tolist()
    print(f"wrote {path} ({dataset.n_neurons} neurons of animals {animals}, {dataset.n_stimuli} images, "
          f"up to {dataset.n_trials} trials, {path.stat().st_size / 1e6:.1f} MB)")
    return 0
