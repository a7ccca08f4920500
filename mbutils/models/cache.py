"""On-disk cache of reduced layer features.

One entry per (model identity, stimuli, reducers, seed): ``<root>/<model>/<key>.npz`` holds
the arrays (``r<i>_l<j>``: reducer ``i``, layer ``j``) and ``<key>.json`` the layer table,
the reducer names and keys, and the SHA-256 of the ``.npz``. Both are written atomically, the
JSON last, so an entry without its JSON is incomplete. On read, a missing/unparsable JSON, a
checksum mismatch or an unreadable archive is reported with a warning, the entry is deleted
and ``None`` is returned: the caller recomputes. Nothing corrupt is ever trusted.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._io import atomic_write, file_sha256

__all__ = ["FeatureCache", "cache_key"]

_FORMAT = 1
#: entries larger than this (bytes) are read one layer at a time, when the layer is used
#: (:class:`_NpzLayers`), instead of all at once
LAZY_BYTES = 4 * 2**30


class _NpzLayers(Sequence):
    """The layers of one reducer in an open ``.npz`` entry, each read when indexed (a fresh array).

    The archive stays open (on POSIX its data outlives a removal of the file by a cache prune).
    """

    def __init__(self, arrays, names):
        self._arrays, self._names = arrays, list(names)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        with self._lock:
            return np.array(self._arrays[self._names[i]])

    def __repr__(self):
        return f"_NpzLayers({len(self)} layers read on use)"


def _library_versions() -> dict:
    """Versions of the libraries that build the models (their layers and initialisers)."""
    import importlib.metadata as md

    out = {}
    for pkg in ("torch", "torchvision", "timm"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def cache_key(identity: str, stimuli_hash: str, reducer_keys: dict, seed: int) -> str:
    """Hex key (SHA-256) of the things that determine reduced features: the model's identity,
    the stimuli, the reducers, the seed and the versions of torch, torchvision and timm."""
    payload = json.dumps(
        {"format": _FORMAT, "identity": identity, "stimuli": stimuli_hash,
         "reducers": {k: reducer_keys[k] for k in sorted(reducer_keys)}, "seed": int(seed),
         "libraries": _library_versions()},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80] or "model"


class FeatureCache:
    """Reduced features on disk.

    Parameters
    ----------
    root : path, optional
        Folder of the cache (default ``mbutils.get_config().cache_dir / "features"``).
    """

    def __init__(self, root=None):
        if root is None:
            import mbutils

            root = Path(mbutils.get_config().cache_dir) / "features"
        self.root = Path(root)

    def paths(self, model_name: str, key: str):
        """``(npz path, json path)`` of an entry."""
        folder = self.root / _safe(model_name)
        return folder / f"{key[:32]}.npz", folder / f"{key[:32]}.json"

    def load(self, model_name: str, key: str):
        """Return ``(meta dict, {reducer name: [arrays per layer]})`` or None (miss or corrupt)."""
        npz, side = self.paths(model_name, key)
        if not side.exists():
            return None
        try:
            meta = json.loads(side.read_text())
            if meta.get("key") != key:
                raise ValueError("key mismatch")
            if file_sha256(npz) != meta["sha256"]:
                raise ValueError("checksum mismatch")
            out = {}
            if npz.stat().st_size > LAZY_BYTES:  # read each layer when it is used
                arrays = np.load(npz, allow_pickle=False)
                for i, rname in enumerate(meta["reducers"]):
                    out[rname] = _NpzLayers(arrays, [f"r{i}_l{j}" for j in range(len(meta["layers"]))])
            else:
                with np.load(npz, allow_pickle=False) as arrays:
                    for i, rname in enumerate(meta["reducers"]):
                        out[rname] = [np.array(arrays[f"r{i}_l{j}"]) for j in range(len(meta["layers"]))]
            with contextlib.suppress(OSError):  # last use, for mbutils.caches (read-only is fine)
                os.utime(side)
            return meta, out
        except Exception as err:  # noqa: BLE001 - any failure means: do not trust this entry
            warnings.warn(
                f"corrupt feature cache entry {npz} ({type(err).__name__}: {err}); it is removed "
                f"and the features are recomputed", RuntimeWarning, stacklevel=3)
            self.remove(model_name, key)
            return None

    def save(self, model_name: str, key: str, meta: dict, results: dict) -> Path:
        """Write an entry atomically (arrays first, then the JSON with their checksum)."""
        npz, side = self.paths(model_name, key)
        names = list(results)
        with atomic_write(npz) as tmp:
            # the layout of numpy.savez, one array at a time (layers read from disk stay one at a time)
            with open(tmp, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED,
                                                       allowZip64=True) as zf:
                for i, n in enumerate(names):
                    for j, a in enumerate(results[n]):
                        with zf.open(f"r{i}_l{j}.npy", "w", force_zip64=True) as entry:
                            np.lib.format.write_array(entry, np.asarray(a), allow_pickle=False)
        meta = dict(meta, key=key, reducers=names, sha256=file_sha256(npz), format=_FORMAT)
        with atomic_write(side) as tmp:
            Path(tmp).write_text(json.dumps(meta, indent=1))
        return npz

    def remove(self, model_name: str, key: str) -> None:
        for p in self.paths(model_name, key):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
