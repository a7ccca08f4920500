"""Read Stringer, Pachitariu et al. (2019), 2,800 natural images shown twice, into the dataset format.

The recordings are published on figshare ("Recordings of ten thousand neurons in visual cortex in
response to 2,800 natural images"), one MATLAB file per recording, e.g.
``natimg2800_M170714_MP032_2017-09-14.mat``, read as MouseLand/stringer-pachitariu-et-al-2018b reads them:

- ``stim.resp``: (n_presentations, n_neurons) responses, one row per image presentation;
- ``stim.istim``: (n_presentations,) the image shown, 1-based; the largest value (2801) is the blank;
- ``stim.spont``: (n_timepoints, n_neurons) spontaneous activity (checked for its neuron count, not stored);
- ``med``: (n_neurons, 3) cell centres (X, Y, Z);

and the images in ``images_natimg2800_all.mat``: ``imgs`` of shape (height, width, n_images)
(68 x 270 x 2800). Files in MATLAB's v5/v7 format are read with :func:`scipy.io.loadmat`; v7.3
(HDF5) files with h5py, transposed back to MATLAB's axis order.

Examples
--------
>>> from mbutils.data import read_stringer
>>> ds = read_stringer("natimg2800_M170714_MP032_2017-09-14.mat", "images_natimg2800_all.mat")  # doctest: +SKIP
>>> ds.save("data/stringer.nc")                                                                  # doctest: +SKIP
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ._sensorium import build_dataset, images_to_uint8
from .dataset import UNKNOWN

__all__ = ["read_stringer", "StringerDataError", "add_stringer_arguments", "run_stringer"]

_MOUSE_RE = re.compile(r"MP(\d+)")
#: natimg2800 variants whose images are transformations of imgs (not in images_natimg2800_all.mat)
_TRANSFORMED_SETS = re.compile(r"^natimg2800_(white|8D|4D|small)", re.IGNORECASE)


class StringerDataError(ValueError):
    """A Stringer et al. file that is missing, has wrong shapes or cannot be read."""


def _loadmat(path: Path, what: str) -> dict:
    """Variables of a .mat file as numpy arrays (structs as dicts), v5/v7 or v7.3."""
    path = Path(path)
    if not path.is_file():
        raise StringerDataError(
            f"Stringer file {str(path)!r} ({what}) not found; download it from figshare (Stringer, Pachitariu et al., "
            "'Recordings of ten thousand neurons in visual cortex in response to 2,800 natural images')"
        )
    import scipy.io

    try:
        raw = scipy.io.loadmat(path, squeeze_me=False, struct_as_record=True)
    except NotImplementedError:  # MATLAB v7.3: an HDF5 file
        return _load_hdf5_mat(path, what)
    except (ValueError, OSError, TypeError, EOFError, IndexError) as err:
        raise StringerDataError(
            f"Stringer file {str(path)!r} ({what}) could not be read as a MATLAB file ({err}); download it again"
        ) from err
    out = {}
    for key, value in raw.items():
        if key.startswith("__"):
            continue
        if isinstance(value, np.ndarray) and value.dtype.names:
            record = value.reshape(-1)[0]
            out[key] = {name: np.asarray(record[name]) for name in value.dtype.names}
        else:
            out[key] = np.asarray(value)
    return out


def _load_hdf5_mat(path: Path, what: str) -> dict:
    import h5py

    def read(node):
        if isinstance(node, h5py.Group):
            return {k: read(node[k]) for k in node.keys() if not k.startswith("#")}
        return np.asarray(node[()]).T  # MATLAB stores column-major: reverse the axes

    try:
        with h5py.File(path, "r") as fh:
            return {k: read(fh[k]) for k in fh.keys() if not k.startswith("#")}
    except OSError as err:
        raise StringerDataError(
            f"Stringer file {str(path)!r} ({what}) could not be read as a MATLAB v7.3 file ({err}); download it again"
        ) from err


def _field(container: dict, key: str, path: Path, hint: str) -> np.ndarray:
    if key not in container:
        raise StringerDataError(f"Stringer file {str(path)!r} has no {hint}; give the published natimg2800 .mat "
                                f"file (it has stim.resp, stim.istim, stim.spont and med)")
    return np.asarray(container[key])


def read_stringer(path, images, *, area: str = UNKNOWN):
    """Read one natimg2800 recording and its images into a dataset.

    Parameters
    ----------
    path : str or pathlib.Path
        A recording, e.g. ``natimg2800_M170714_MP032_2017-09-14.mat``.
    images : str or pathlib.Path
        ``images_natimg2800_all.mat`` (variable ``imgs``, height x width x 2800).
    area : str, default "unknown"
        The area label of every neuron (the file does not name one).

    Returns
    -------
    NeuralDataset
        ``responses`` (neuron, stimulus, trial): ``stim.resp`` as stored, one stimulus per image shown
        at least once (``stimulus`` = image index, 0-based), trials in presentation order, NaN-padded
        to the most repeats (2); the blank screen (``istim`` = number of images + 1) is left out.
        ``stimuli`` (stimulus, height, width) uint8 at the stored size. Coordinates along ``neuron``:
        ``cell_specimen_id`` 0..n-1 (the column of ``stim.resp``), ``specimen_id`` (the digits of
        ``MPxxx`` in the file name, -1 (unknown) without them), ``position_x/y/z`` (``med``);
        ``cre_line`` ``"unknown"``, ``imaging_depth`` -1, ``excitatory`` and ``p_run_mod_ns`` NaN
        (unknown). Neurons without a finite response are dropped (counted in
        ``attrs["n_neurons_without_responses"]``).

    Raises
    ------
    StringerDataError
        A missing or unreadable file, a missing variable, or shapes that do not agree.
    """
    path, images = Path(path), Path(images)
    variant = _TRANSFORMED_SETS.match(path.name)
    if variant:
        raise StringerDataError(
            f"Stringer file {str(path)!r} is a natimg2800_{variant.group(1)} recording: its images are transformed "
            "versions of images_natimg2800_all.mat, which are not published; give a natimg2800_M*.mat recording"
        )
    mat = _loadmat(path, "recording")
    stim = mat.get("stim")
    if not isinstance(stim, dict):
        raise StringerDataError(f"Stringer file {str(path)!r} has no struct 'stim'; give the published natimg2800 "
                                ".mat file (it has stim.resp, stim.istim, stim.spont and med)")
    resp = _field(stim, "resp", path, "stim.resp")
    istim = _field(stim, "istim", path, "stim.istim")
    if resp.ndim != 2 or resp.dtype.kind not in "fiu":
        raise StringerDataError(f"Stringer file {str(path)!r}: stim.resp has shape {resp.shape} and dtype "
                                f"{resp.dtype}; expected numbers of shape (n_presentations, n_neurons)")
    istim = istim.reshape(-1)
    if istim.size != resp.shape[0]:
        raise StringerDataError(f"Stringer file {str(path)!r}: stim.istim has {istim.size} entries but stim.resp "
                                f"{resp.shape[0]} rows; both count the image presentations")
    if istim.dtype.kind not in "fiu" or not np.array_equal(istim, np.rint(istim)) or (istim < 1).any():
        raise StringerDataError(f"Stringer file {str(path)!r}: stim.istim must hold 1-based image indices")
    istim = istim.astype(np.int64)
    n_neurons = resp.shape[1]
    if "spont" in stim:
        spont = np.asarray(stim["spont"])
        if spont.size and (spont.ndim != 2 or spont.shape[1] != n_neurons):
            raise StringerDataError(f"Stringer file {str(path)!r}: stim.spont has shape {spont.shape}; expected "
                                    f"(n_timepoints, {n_neurons})")
    med = mat.get("med")
    if med is not None:
        med = np.asarray(med, dtype=np.float64)
        if med.ndim != 2 or med.shape[0] != n_neurons or med.shape[1] not in (2, 3):
            raise StringerDataError(f"Stringer file {str(path)!r}: med has shape {med.shape}; expected "
                                    f"({n_neurons}, 3) cell centres")

    imgs = _field(_loadmat(images, "images"), "imgs", images, "variable 'imgs'")
    if imgs.ndim != 3:
        raise StringerDataError(f"Stringer file {str(images)!r}: imgs has shape {imgs.shape}; expected "
                                "(height, width, n_images)")
    n_images = imgs.shape[2]
    blank = n_images + 1
    if istim.max() > blank:
        raise StringerDataError(f"Stringer file {str(path)!r} shows image {istim.max()} but {str(images)!r} holds "
                                f"{n_images} images (and {blank} is the blank); give the matching images file")

    shown = istim < blank
    order = np.flatnonzero(shown)
    ids = istim[order] - 1  # 0-based image index
    sort = np.lexsort((order, ids))  # by image, then presentation order
    ids, rows = ids[sort], order[sort]
    stimulus = np.unique(ids)
    s = np.searchsorted(stimulus, ids)
    rep = np.arange(ids.size) - np.searchsorted(ids, ids, side="left")
    n_rep = int(rep.max()) + 1 if rep.size else 1
    out = np.full((n_neurons, stimulus.size, n_rep), np.nan, dtype=np.float32)
    out[:, s, rep] = resp[rows].T.astype(np.float32)
    out[~np.isfinite(out)] = np.nan

    seen = np.isfinite(out).any(axis=(1, 2))
    if not seen.any():
        raise StringerDataError(f"Stringer file {str(path)!r}: stim.resp holds no finite response to an image")
    keep = np.flatnonzero(seen)
    stack, scale = images_to_uint8(np.moveaxis(imgs, 2, 0)[stimulus], str(images), StringerDataError)
    m = _MOUSE_RE.search(path.name)
    mouse = int(m.group(1)) if m else -1
    xyz = med if med is not None else np.full((n_neurons, 3), np.nan)
    extra = {name: (xyz[keep, i] if i < xyz.shape[1] else np.full(keep.size, np.nan))
             for i, name in enumerate(("position_x", "position_y", "position_z"))}
    return build_dataset(
        out[keep], stack, stimulus=stimulus, cell_specimen_id=keep.astype(np.int64),
        specimen_id=np.full(keep.size, mouse, dtype=np.int64), area=np.full(keep.size, str(area)),
        extra_coords=extra, source="stringer2019",
        description=(f"Stringer, Pachitariu et al. 2019, natimg2800 recording {path.stem}: {keep.size} neurons, "
                     f"{stimulus.size} images, up to {n_rep} trials (blank left out)"),
        attrs={"recording": path.name, "images_file": images.name, "image_scale": scale,
               "n_blank_presentations": int((~shown).sum()),
               "n_neurons_without_responses": int(n_neurons - keep.size)},
    )


def add_stringer_arguments(parser) -> None:
    """Options of ``mbutils data stringer``."""
    parser.add_argument("--path", required=True, metavar="FILE",
                        help="a recording, e.g. natimg2800_M170714_MP032_2017-09-14.mat")
    parser.add_argument("--images", required=True, metavar="FILE", help="images_natimg2800_all.mat")
    parser.add_argument("--out", required=True, help="output NetCDF file, e.g. data/stringer.nc")
    parser.add_argument("--area", default=UNKNOWN, help="area label of every neuron (default: unknown)")


def run_stringer(args) -> int:
    """Run ``mbutils data stringer``."""
    dataset = read_stringer(args.path, args.images, area=args.area)
    path = dataset.save(args.out)
    print(f"wrote {path} ({dataset.n_neurons} neurons, {dataset.n_stimuli} images, up to {dataset.n_trials} "
          f"trials, {path.stat().st_size / 1e6:.1f} MB)")
    return 0
