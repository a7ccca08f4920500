"""The neural dataset file: load, validate, subset and save (schema in docs/dataset.md).

A dataset is an :class:`xarray.Dataset` with two required variables

- ``responses(neuron, stimulus, trial)`` float32: per-trial responses, NaN where a trial is missing
  (trials may be ragged: a stimulus shown fewer times than others is NaN-padded, and a stimulus
  shown once has one non-NaN trial);
- ``stimuli(stimulus, y, x)`` uint8: grayscale images (the blank screen is a constant image);

and optional coordinates and attributes, filled with explicit "unknown" values when absent
(:data:`NEURON_DEFAULTS`):

- ``stimulus`` int: the stimulus id (the Allen frame index 0..117), -1 for the blank screen;
  absent: ``0..n_stimuli-1``;
- along ``neuron``: ``cell_specimen_id`` int64 (unique; absent: ``0..n_neurons-1``), ``area`` str
  and ``cre_line`` str (absent: ``"unknown"``), ``imaging_depth`` int (absent: -1),
  ``excitatory`` bool, or float 1.0/0.0 with NaN for neurons of unknown type (absent: all NaN),
  ``p_run_mod_ns`` float (absent: NaN), ``specimen_id`` int64 (the animal; left absent when
  unknown);
- attributes ``source`` (absent: ``"unknown"``) and ``description`` (absent: ``""``).

Anyone can bring their own recordings by writing such a file (see :meth:`NeuralDataset.save`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

__all__ = [
    "NeuralDataset",
    "load_dataset",
    "BLANK_STIMULUS",
    "NEURON_COORDS",
    "NEURON_DEFAULTS",
    "OPTIONAL_NEURON_COORDS",
    "REQUIRED_ATTRS",
    "UNKNOWN",
    "UNKNOWN_DEPTH",
    "known_mask",
]

#: ``stimulus`` coordinate value of the blank (mid-gray) screen
BLANK_STIMULUS = -1

#: label of an unknown ``area`` or ``cre_line``
UNKNOWN = "unknown"
#: ``imaging_depth`` of a neuron whose depth is unknown
UNKNOWN_DEPTH = -1

#: coordinates along ``neuron`` that every loaded dataset carries (filled with
#: :data:`NEURON_DEFAULTS` when the file lacks them) and the numpy dtype kind each must have
#: (``i`` signed int, ``U``/``O`` strings, ``b`` bool, ``f`` float); ``excitatory`` may also be
#: float (1.0, 0.0, NaN for unknown)
NEURON_COORDS = {
    "cell_specimen_id": "i",
    "area": "U",
    "cre_line": "U",
    "imaging_depth": "i",
    "excitatory": "b",
    "p_run_mod_ns": "f",
}
#: coordinates along ``neuron`` that are checked when present and otherwise left absent
OPTIONAL_NEURON_COORDS = {"specimen_id": "i"}
#: what a missing coordinate along ``neuron`` becomes ("index" numbers the neurons 0..n-1)
NEURON_DEFAULTS = {
    "cell_specimen_id": "index",
    "area": UNKNOWN,
    "cre_line": UNKNOWN,
    "imaging_depth": UNKNOWN_DEPTH,
    "excitatory": np.nan,
    "p_run_mod_ns": np.nan,
}
#: global attributes every loaded dataset carries, and their values when the file lacks them
REQUIRED_ATTRS = ("source", "description")
_ATTR_DEFAULTS = {"source": UNKNOWN, "description": ""}

_VARIABLES = {"responses": ("neuron", "stimulus", "trial"), "stimuli": ("stimulus", "y", "x")}


def _describe(path) -> str:
    return f"dataset file {str(path)!r}" if path is not None else "dataset"


def _as_str_array(values) -> np.ndarray:
    """Strings as a numpy unicode array (object arrays of str from NetCDF become ``<U``)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "O":
        arr = arr.astype(str)
    return arr


def known_mask(ds, name: str) -> np.ndarray:
    """Which neurons have a known value of a metadata field.

    Parameters
    ----------
    ds : xarray.Dataset or NeuralDataset
    name : str
        A coordinate along ``neuron``: ``area``, ``cre_line`` (known: not ``"unknown"``),
        ``imaging_depth`` (known: not -1), ``excitatory``, ``p_run_mod_ns`` (known: not NaN),
        ``specimen_id`` (known: present and not -1) or ``cell_specimen_id``.

    Returns
    -------
    numpy.ndarray of shape (n_neurons,), bool
        All False when the coordinate is absent.
    """
    ds = getattr(ds, "ds", ds)
    n = int(ds.sizes.get("neuron", 0))
    if name not in ds.coords:
        return np.zeros(n, dtype=bool)
    values = ds[name].values
    if values.dtype.kind in "UO":
        return _as_str_array(values) != UNKNOWN
    if values.dtype.kind == "b":
        return np.ones(n, dtype=bool)
    if values.dtype.kind == "f":
        return np.isfinite(values)
    if name in ("imaging_depth", "specimen_id"):
        return values != UNKNOWN_DEPTH
    return np.ones(n, dtype=bool)


def _integral(values) -> bool:
    """Whether a float array holds only whole numbers (NaN allowed)."""
    finite = values[np.isfinite(values)]
    return bool(np.all(finite == np.round(finite)))


class NeuralDataset:
    """Per-trial neural responses to images, with per-neuron metadata.

    Parameters
    ----------
    ds : xarray.Dataset
        A dataset in the schema described in the module docstring (and docs/dataset.md).
    path : str or pathlib.Path, optional
        The file the dataset was read from (used in error messages and provenance).
    validate : bool, default True
        Check the schema now (raises :class:`ValueError` naming what is wrong).

    Examples
    --------
    >>> data = NeuralDataset.load("data/synthetic.nc")          # doctest: +SKIP
    >>> visp = data.select(area="VISp", excitatory=True)         # doctest: +SKIP
    >>> visp.trial_average().shape                               # doctest: +SKIP
    (1234, 119)
    """

    def __init__(self, ds: xr.Dataset, path=None, validate: bool = True):
        if not isinstance(ds, xr.Dataset):
            raise TypeError(f"NeuralDataset expects an xarray.Dataset, got {type(ds).__name__}")
        self.path = Path(path) if path is not None else None
        self.ds = self._normalize(ds)
        if validate:
            self.validate()

    # ------------------------------------------------------------------ construction / IO
    @staticmethod
    def _normalize(ds: xr.Dataset) -> xr.Dataset:
        """Fill the optional coordinates and attributes with their "unknown" values
        (:data:`NEURON_DEFAULTS`), give string coordinates a numpy unicode dtype (NetCDF returns
        object arrays) and store a fully known float ``excitatory`` as bool."""
        updates = {}
        for name in ("area", "cre_line"):
            if name in ds.coords and ds[name].dtype.kind == "O":
                updates[name] = (ds[name].dims, _as_str_array(ds[name].values))
        responses = ds.data_vars.get("responses")
        if responses is not None and responses.dims == _VARIABLES["responses"]:
            n_neurons, n_stimuli = int(ds.sizes["neuron"]), int(ds.sizes["stimulus"])
            if "stimulus" not in ds.coords:
                updates["stimulus"] = ("stimulus", np.arange(n_stimuli, dtype=np.int64))
            elif ds["stimulus"].dtype.kind == "f" and np.isfinite(ds["stimulus"].values).all() \
                    and _integral(ds["stimulus"].values):
                updates["stimulus"] = ("stimulus", ds["stimulus"].values.astype(np.int64))
            for name, default in NEURON_DEFAULTS.items():
                if name in ds.coords:
                    continue
                if name == "cell_specimen_id":
                    updates[name] = ("neuron", np.arange(n_neurons, dtype=np.int64))
                elif isinstance(default, str):
                    updates[name] = ("neuron", np.full(n_neurons, default))
                elif isinstance(default, int):
                    updates[name] = ("neuron", np.full(n_neurons, default, dtype=np.int64))
                else:
                    updates[name] = ("neuron", np.full(n_neurons, default, dtype=np.float64))
        if "imaging_depth" in ds.coords and ds["imaging_depth"].dtype.kind == "f" \
                and ds["imaging_depth"].dims == ("neuron",) and _integral(ds["imaging_depth"].values):
            depth = ds["imaging_depth"].values
            updates["imaging_depth"] = ("neuron", np.where(np.isfinite(depth), depth, UNKNOWN_DEPTH).astype(np.int64))
        if "excitatory" in ds.coords and ds["excitatory"].dims == ("neuron",):
            exc = ds["excitatory"].values
            if exc.dtype.kind in "iuf" and np.isin(exc[~np.isnan(exc.astype(np.float64))], (0, 1)).all():
                as_float = exc.astype(np.float64)
                updates["excitatory"] = ("neuron", as_float.astype(bool) if np.isfinite(as_float).all() else as_float)
        if updates:
            ds = ds.assign_coords(updates)
        missing = {k: v for k, v in _ATTR_DEFAULTS.items() if k not in ds.attrs}
        if missing:
            ds = ds.assign_attrs(missing)
        return ds

    @classmethod
    def from_arrays(
        cls,
        responses,
        stimuli,
        *,
        cell_specimen_id=None,
        area=None,
        cre_line=None,
        imaging_depth=None,
        excitatory=None,
        p_run_mod_ns=None,
        specimen_id=None,
        stimulus=None,
        source="user",
        description="",
        attrs=None,
    ) -> "NeuralDataset":
        """Build a dataset from numpy arrays (the easy way to bring your own recordings).

        Every metadata keyword is optional; what is not given gets the "unknown" value of
        :data:`NEURON_DEFAULTS`, and the neuron selection skips the steps that need it.

        Parameters
        ----------
        responses : array of shape (n_neurons, n_stimuli, n_trials)
            Per-trial responses (NaN for missing trials; ragged repeats are NaN-padded, and a
            stimulus shown once has one non-NaN trial); stored as float32.
        stimuli : array of shape (n_stimuli, height, width), uint8
            Grayscale images, in the order of ``responses``' second axis.
        cell_specimen_id : int array of shape (n_neurons,), optional
            Unique neuron ids (default ``0..n_neurons-1``).
        area, cre_line : str arrays of shape (n_neurons,), optional
            Visual area and Cre line (default ``"unknown"``).
        imaging_depth : int array of shape (n_neurons,), optional
            Depth in micrometres (default -1, unknown).
        excitatory : array of shape (n_neurons,), optional
            Bool, or float 1.0/0.0 with NaN for neurons of unknown type (default all NaN).
        p_run_mod_ns : array of shape (n_neurons,), optional
            p-value of running modulation (NaN if unknown; default all NaN).
        specimen_id : int array of shape (n_neurons,), optional
            The animal each neuron was recorded in (not stored when not given).
        stimulus : int array of shape (n_stimuli,), optional
            Stimulus ids (Allen frame index, -1 for the blank); default ``0..n_stimuli-1``.
        source, description : str
            Dataset attributes.
        attrs : dict, optional
            Further attributes.

        Returns
        -------
        NeuralDataset
            Validated.
        """
        responses = np.asarray(responses, dtype=np.float32)
        if responses.ndim != 3:
            raise ValueError(
                f"responses must have shape (n_neurons, n_stimuli, n_trials), got shape {responses.shape}"
            )
        n_neurons, n_stimuli, n_trials = responses.shape
        coords = {
            "stimulus": np.asarray(np.arange(n_stimuli) if stimulus is None else stimulus, dtype=np.int64),
            "trial": np.arange(n_trials, dtype=np.int64),
        }
        given = {
            "cell_specimen_id": (cell_specimen_id, np.int64),
            "area": (area, str),
            "cre_line": (cre_line, str),
            "imaging_depth": (imaging_depth, np.int64),
            "excitatory": (excitatory, None),
            "p_run_mod_ns": (p_run_mod_ns, np.float64),
            "specimen_id": (specimen_id, np.int64),
        }
        for name, (values, dtype) in given.items():
            if values is None:
                continue
            if dtype is str:
                arr = _as_str_array(values).astype(str)
            elif dtype is None:  # excitatory: bool, or float with NaN for unknown
                arr = np.asarray(values)
                arr = arr.astype(bool) if arr.dtype.kind == "b" else arr.astype(np.float64)
            else:
                arr = np.asarray(values, dtype=dtype)
            if arr.shape != (n_neurons,):
                raise ValueError(f"{name} has shape {arr.shape}; expected ({n_neurons},), one value per neuron")
            coords[name] = ("neuron", arr)
        ds = xr.Dataset(
            {
                "responses": (("neuron", "stimulus", "trial"), responses),
                "stimuli": (("stimulus", "y", "x"), np.asarray(stimuli)),
            },
            coords=coords,
            attrs={"source": str(source), "description": str(description), **(attrs or {})},
        )
        return cls(ds)

    @classmethod
    def load(cls, path, validate: bool = True) -> "NeuralDataset":
        """Read a dataset file (NetCDF) into memory and validate it.

        Parameters
        ----------
        path : str or pathlib.Path
        validate : bool, default True

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file does not follow the schema (the message names the file and the problem).
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"dataset file {str(path)!r} not found; build the default one with "
                f"`mbutils data synthetic --out {path}` (or `mbutils data allen`)"
            )
        if not path.is_file():  # a folder, a FIFO or a device: reading it could block or mislead
            raise ValueError(f"dataset {str(path)!r} is not a regular file; give a NetCDF file")
        try:
            # h5netcdf first: it reads every float width (netCDF4 crashed on float16 variables)
            try:
                handle = xr.open_dataset(path, engine="h5netcdf")
            except (OSError, ValueError, ImportError):
                handle = xr.open_dataset(path)
            with handle:
                ds = _coerce_bools(handle.load())
        except (OSError, ValueError) as err:
            raise ValueError(f"dataset file {str(path)!r} could not be read as NetCDF: {err}") from err
        return cls(ds, path=path, validate=validate)

    def validate(self) -> "NeuralDataset":
        """Check the schema; raise :class:`ValueError` naming the file and what is wrong.

        Returns
        -------
        NeuralDataset
            ``self``, so that calls can be chained.
        """
        ds, where = self.ds, _describe(self.path)
        for name, dims in _VARIABLES.items():
            if name not in ds.data_vars:
                raise ValueError(f"{where}: missing variable {name!r} with dims {dims}")
            if ds[name].dims != dims:
                raise ValueError(f"{where}: variable {name!r} has dims {ds[name].dims}, expected {dims}")
        if ds["responses"].dtype.kind != "f":
            raise ValueError(f"{where}: 'responses' has dtype {ds['responses'].dtype}, expected float32")
        if ds["stimuli"].dtype != np.uint8:
            raise ValueError(f"{where}: 'stimuli' has dtype {ds['stimuli'].dtype}, expected uint8")
        if ds["stimulus"].dims != ("stimulus",) or ds["stimulus"].dtype.kind not in "iu":
            raise ValueError(
                f"{where}: coordinate 'stimulus' must be int along 'stimulus' (a stimulus id, e.g. the Allen frame "
                f"index, -1 for the blank screen), found {ds['stimulus'].dtype} with dims {ds['stimulus'].dims}; "
                "store whole numbers, or drop the coordinate to number the stimuli 0..n-1"
            )
        for name, kind in {**NEURON_COORDS, **OPTIONAL_NEURON_COORDS}.items():
            if name not in ds.coords:
                if name in OPTIONAL_NEURON_COORDS:
                    continue
                raise ValueError(f"{where}: missing coordinate {name!r} along 'neuron'")
            if ds[name].dims != ("neuron",):
                raise ValueError(f"{where}: coordinate {name!r} has dims {ds[name].dims}, expected ('neuron',)")
            found = ds[name].dtype.kind
            allowed = {"U": "UO", "i": "iu", "f": "f", "b": "bf"}[kind]
            if found not in allowed:
                raise ValueError(f"{where}: coordinate {name!r} has dtype {ds[name].dtype}, expected kind {kind!r}")
        exc = ds["excitatory"].values
        if exc.dtype.kind == "f" and not np.isin(exc[np.isfinite(exc)], (0.0, 1.0)).all():
            bad = np.unique(exc[np.isfinite(exc) & ~np.isin(exc, (0.0, 1.0))])
            raise ValueError(
                f"{where}: coordinate 'excitatory' holds {bad[:5].tolist()}; expected bool, or float 1.0 "
                "(excitatory), 0.0 (inhibitory) and NaN (unknown)"
            )
        for attr in REQUIRED_ATTRS:
            if attr not in ds.attrs:
                raise ValueError(f"{where}: missing attribute {attr!r}")
        ids = ds["cell_specimen_id"].values
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            dup = uniq[counts > 1]
            raise ValueError(
                f"{where}: duplicate cell_specimen_id values {dup[:10].tolist()}"
                f"{' ...' if dup.size > 10 else ''} ({dup.size} duplicated); ids must be unique"
            )
        sid = ds["stimulus"].values
        suniq, scounts = np.unique(sid, return_counts=True)
        if (scounts > 1).any():
            dup = suniq[scounts > 1]
            raise ValueError(
                f"{where}: duplicate stimulus ids {dup[:10].tolist()}{' ...' if dup.size > 10 else ''} "
                f"({dup.size} duplicated); each stimulus (Allen frame index, -1 for the blank screen) must "
                "appear once along 'stimulus'"
            )
        if ds.sizes["neuron"] == 0:
            return self
        resp = ds["responses"].values
        infinite = np.isinf(resp)
        if infinite.any():
            bad = ids[infinite.any(axis=(1, 2))]
            raise ValueError(
                f"{where}: 'responses' holds {int(infinite.sum())} infinite values ({bad.size} neurons, "
                f"cell_specimen_id {bad[:10].tolist()}{' ...' if bad.size > 10 else ''}); responses must be finite, "
                "with NaN for a missing trial"
            )
        finite = np.isfinite(resp).any(axis=(1, 2))
        if not finite.any():
            raise ValueError(f"{where}: 'responses' is all NaN")
        if not finite.all():
            bad = ids[~finite]
            raise ValueError(
                f"{where}: {bad.size} neurons have only NaN responses (cell_specimen_id "
                f"{bad[:10].tolist()}{' ...' if bad.size > 10 else ''}); drop them before saving"
            )
        return self

    def save(self, path, compression_level: int = 4) -> Path:
        """Write the dataset to a NetCDF file, atomically, with zlib compression.

        ``xarray.open_dataset(path)`` reads the file back with exactly the schema: strings as
        str, ``excitatory`` as bool (float with NaN where some neurons' type is unknown),
        ``responses`` float32, ``stimuli`` uint8. The "unknown" values of absent metadata
        (:data:`NEURON_DEFAULTS`) are written as they are and read back as unknown.

        Parameters
        ----------
        path : str or pathlib.Path
        compression_level : int, default 4
            zlib level 1..9.

        Returns
        -------
        pathlib.Path
        """
        from .._io import atomic_write

        self.validate()
        path = Path(path)
        ds = self.ds.copy()
        ds["responses"] = ds["responses"].astype(np.float32)
        # h5netcdf stores unicode as variable-length strings (read back as str).
        for name in ("area", "cre_line"):
            ds = ds.assign_coords({name: ("neuron", _as_str_array(ds[name].values).astype(object))})
        for name in ("cell_specimen_id", "imaging_depth", "specimen_id"):
            if name in ds.coords:
                ds = ds.assign_coords({name: ("neuron", ds[name].values.astype(np.int64))})
        encoding = {}
        for name in ("responses", "stimuli"):
            encoding[name] = {"zlib": True, "complevel": int(compression_level), "shuffle": True}
            n_neurons = ds[name].shape[0]
            if name == "responses" and n_neurons > 0:
                # chunk along neurons so that partial reads stay cheap
                encoding[name]["chunksizes"] = (min(256, n_neurons),) + ds[name].shape[1:]
        with atomic_write(path) as tmp:
            ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
        self.path = path
        return path

    # ------------------------------------------------------------------ accessors
    @property
    def responses(self) -> xr.DataArray:
        """Per-trial responses, DataArray (neuron, stimulus, trial), float32."""
        return self.ds["responses"]

    @property
    def stimuli(self) -> xr.DataArray:
        """Grayscale images, DataArray (stimulus, y, x), uint8."""
        return self.ds["stimuli"]

    @property
    def n_neurons(self) -> int:
        return int(self.ds.sizes["neuron"])

    @property
    def n_stimuli(self) -> int:
        return int(self.ds.sizes["stimulus"])

    @property
    def n_trials(self) -> int:
        return int(self.ds.sizes["trial"])

    @property
    def areas(self) -> list[str]:
        """Sorted unique area names."""
        return sorted(np.unique(self.ds["area"].values).tolist())

    @property
    def cre_lines(self) -> list[str]:
        """Sorted unique Cre lines."""
        return sorted(np.unique(self.ds["cre_line"].values).tolist())

    @property
    def source(self) -> str:
        return str(self.ds.attrs.get("source", ""))

    @property
    def ground_truth(self) -> dict | None:
        """The synthetic mouse's planted ground truth (parsed JSON), or None."""
        import json

        raw = self.ds.attrs.get("ground_truth")
        return json.loads(raw) if raw else None

    def known(self, name: str) -> np.ndarray:
        """Which neurons have a known ``name`` (see :func:`known_mask`): bool array (n_neurons,)."""
        return known_mask(self.ds, name)

    @property
    def unknown_fields(self) -> list[str]:
        """The metadata fields (of :data:`NEURON_COORDS` and :data:`OPTIONAL_NEURON_COORDS`)
        unknown for every neuron, i.e. absent from the file or holding only "unknown" values."""
        if self.n_neurons == 0:
            return []
        names = [n for n in {**NEURON_COORDS, **OPTIONAL_NEURON_COORDS} if n != "cell_specimen_id"]
        return [n for n in names if not self.known(n).any()]

    def metadata(self):
        """Per-neuron metadata as a :class:`pandas.DataFrame` (one row per neuron)."""
        coords = [c for c in self.ds.coords if self.ds[c].dims == ("neuron",)]
        return self.ds[coords].to_dataframe().reset_index(drop=True)[coords]

    def __len__(self) -> int:
        return self.n_neurons

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return (
            f"NeuralDataset(source={self.source!r}, neurons={self.n_neurons}, stimuli={self.n_stimuli}, "
            f"trials={self.n_trials}, areas={self.areas}{where})"
        )

    # ------------------------------------------------------------------ derived views
    def trial_average(self) -> xr.DataArray:
        """Mean over trials, ignoring NaN trials: DataArray (neuron, stimulus), float32.

        Every stimulus counts, a single-presentation stimulus with its one trial.
        """
        with np.errstate(invalid="ignore"), _quiet_nanmean():
            return self.responses.mean("trial", skipna=True).astype(np.float32)

    def trial_halves(self) -> tuple[xr.DataArray, xr.DataArray]:
        """Trial averages of the odd and the even trials (1-based: trials 1, 3, 5, ... and 2, 4, 6, ...).

        NaN trials are ignored; a half that holds no trial of a stimulus is NaN there (a
        single-presentation stimulus, whose one trial is trial 1, is NaN in the even half).

        Returns
        -------
        odd, even : DataArray (neuron, stimulus), float32
        """
        resp = self.responses
        with np.errstate(invalid="ignore"), _quiet_nanmean():
            odd = resp.isel(trial=slice(0, None, 2)).mean("trial", skipna=True).astype(np.float32)
            even = resp.isel(trial=slice(1, None, 2)).mean("trial", skipna=True).astype(np.float32)
        return odd, even

    def scenes(self) -> "NeuralDataset":
        """The dataset without the blank screen (stimulus ids >= 0: Allen's 118 scenes)."""
        keep = self.ds["stimulus"].values >= 0
        if keep.all():  # nothing to drop: no copy of the responses
            return self
        return NeuralDataset(self.ds.isel(stimulus=keep), path=self.path, validate=False)

    def reliability(self, n_splits: int = 10, seed: int = 0) -> np.ndarray:
        """Per-neuron split-half reliability (see :func:`mbutils.reliability.splithalf_reliability`).

        Uses the stored ``reliability`` coordinate when present and ``n_splits``/``seed`` match
        how it was computed; otherwise computes it over all stimuli.
        """
        from ..reliability import splithalf_reliability

        if "reliability" in self.ds.coords:
            return np.asarray(self.ds["reliability"].values, dtype=np.float64)
        return splithalf_reliability(self.responses.values, n_splits=n_splits, seed=seed)

    def with_reliability(self, n_splits: int = 10, seed: int = 0) -> "NeuralDataset":
        """A copy carrying a ``reliability`` coordinate along ``neuron`` (computed if missing)."""
        if "reliability" in self.ds.coords:
            return self
        rel = self.reliability(n_splits=n_splits, seed=seed)
        return NeuralDataset(
            self.ds.assign_coords(reliability=("neuron", rel)), path=self.path, validate=False
        )

    def select(
        self,
        area=None,
        cre_line=None,
        imaging_depth=None,
        excitatory: bool | None = None,
        min_reliability: float | None = None,
        running_alpha: float | None = None,
        cell_specimen_id=None,
        n_splits: int = 10,
        seed: int = 0,
    ) -> "NeuralDataset":
        """Subset neurons; every given criterion must hold.

        Parameters
        ----------
        area, cre_line, imaging_depth : scalar or list, optional
            Keep neurons whose value is (one of) these.
        excitatory : bool, optional
            Keep excitatory (True) or inhibitory (False) neurons; neurons of unknown type (NaN
            ``excitatory``) are dropped either way.
        min_reliability : float, optional
            Keep neurons with split-half reliability >= this. Uses the ``reliability``
            coordinate when present, otherwise computes it (``n_splits``, ``seed``) and attaches it.
        running_alpha : float, optional
            Drop neurons significantly modulated by running: ``p_run_mod_ns < running_alpha``
            (NaN p-values, i.e. untested neurons, are kept).
        cell_specimen_id : int or list, optional
            Keep these neurons.

        Returns
        -------
        NeuralDataset
        """
        ds = self.ds
        keep = np.ones(ds.sizes["neuron"], dtype=bool)
        for name, value in (
            ("area", area),
            ("cre_line", cre_line),
            ("imaging_depth", imaging_depth),
            ("cell_specimen_id", cell_specimen_id),
        ):
            if value is None:
                continue
            wanted = np.atleast_1d(np.asarray(value))
            present = ds[name].values
            unknown = [v for v in wanted.tolist() if v not in set(present.tolist())]
            if unknown and len(unknown) == len(wanted):
                valid = sorted(set(present.tolist()))
                raise ValueError(f"{name}={value!r} matches no neuron; values present: {valid[:30]}")
            keep &= np.isin(present, wanted)
        if excitatory is not None:
            keep &= ds["excitatory"].values.astype(np.float64) == float(bool(excitatory))
        if running_alpha is not None:
            p = ds["p_run_mod_ns"].values
            keep &= ~(p < running_alpha)
        result = self
        if min_reliability is not None:
            result = self.with_reliability(n_splits=n_splits, seed=seed)
            keep &= result.ds["reliability"].values >= min_reliability
        return NeuralDataset(result.ds.isel(neuron=np.flatnonzero(keep)), path=self.path, validate=False)


class _quiet_nanmean:
    """Silence numpy's 'Mean of empty slice' warnings (all-NaN cells give NaN, as intended)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.filterwarnings("ignore", message="Mean of empty slice")
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _coerce_bools(ds):
    """Boolean coordinates that a writer stored as 0/1 integers (NetCDF has no bool type) back
    to bool; other values are left for the schema check to report (float 0/1 with NaN for
    unknown is kept as float by :meth:`NeuralDataset._normalize`)."""
    for name, kind in NEURON_COORDS.items():
        if kind == "b" and name in ds.coords and ds[name].dtype.kind in "iu":
            values = ds[name].values
            if np.isin(values, (0, 1)).all():
                ds = ds.assign_coords({name: (ds[name].dims, values.astype(bool))})
    return ds


def load_dataset(path, validate: bool = True) -> NeuralDataset:
    """Read and validate a dataset file; same as :meth:`NeuralDataset.load`."""
    return NeuralDataset.load(path, validate=validate)
