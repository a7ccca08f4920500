"""What mbutils keeps on disk, and pruning it.

Under ``mbutils.get_config().cache_dir``:

- ``features/<model>/<key>.npz`` + ``<key>.json``: reduced layer features
  (:class:`mbutils.models.FeatureCache`); the JSON's modification time is refreshed each time
  the entry is read, so it tells when the entry was last used;
- ``projections/srp-*.npz``: packed projection matrices (:mod:`mbutils.reduction`), also
  refreshed on each read;
- temporary files: ``tmp/layers-*`` folders of batched forward passes, and ``.<name>.*.tmp``
  files of atomic writes, both removed by the run that made them unless it was killed.

Entries that no run will read again are marked stale, with the reason:

- features: an ``.npz`` without its JSON (a write that did not finish), a JSON without its
  ``.npz`` or that does not parse, or a format other than the current one;
- projections: a layout other than the current kernel's (the ``srp-m2`` files of earlier
  versions, or other task/group sizes);
- temporary files: untouched for :data:`TMP_STALE_HOURS` hours (no live run leaves its
  temporary files that long without writing to them).

Feature entries of reducer versions that are no longer used are not recognisable as such
(their keys are hashes); ``unused_days`` in :func:`clear_cache` removes them by age.

Examples
--------
>>> from mbutils.caches import cache_usage, clear_cache
>>> usage = cache_usage()                                   # doctest: +SKIP
>>> clear_cache(stale=True)                                 # doctest: +SKIP
>>> clear_cache(kinds=["features"], unused_days=30)         # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from pathlib import Path

import pandas as pd

__all__ = ["KINDS", "TMP_STALE_HOURS", "cache_usage", "clear_cache"]

#: kinds of cached things
KINDS = ("features", "projections", "tmp")
#: hours after which an untouched temporary file or folder is stale
TMP_STALE_HOURS = 6.0

_COLUMNS = ["kind", "model", "name", "n_files", "bytes", "last_used", "stale", "reason", "paths"]
_PROJECTION = re.compile(r"^srp-(?P<layout>m\d+)-(?P<p>\d+)x(?P<k>\d+)-seed(?P<seed>-?\d+)-t(?P<t>\d+)g(?P<g>\d+)\.npz$")
_TMP_FILE = re.compile(r"^\..+\.tmp$")
#: a feature entry's files: the first 32 hex digits of its key, .npz and .json
_FEATURE_FILE = re.compile(r"^[0-9a-f]{32}\.(npz|json)$")


def _root(cache_dir) -> Path:
    if cache_dir is None:
        from .config import get_config

        cache_dir = get_config().cache_dir
    return Path(cache_dir)


def _stat(paths):
    """(total bytes, newest modification time) of files and folders (recursively)."""
    size, newest = 0, 0.0
    for path in paths:
        files = [path] if not path.is_dir() else [f for f in path.rglob("*") if f.is_file()] + [path]
        for f in files:
            with contextlib.suppress(FileNotFoundError):
                st = f.lstat()
                if not f.is_dir():
                    size += st.st_size
                newest = max(newest, st.st_mtime)
    return size, newest


def _entry(kind, model, name, paths, stale=False, reason=""):
    size, newest = _stat(paths)
    return {"kind": kind, "model": model, "name": name, "n_files": len(paths), "bytes": size,
            "last_used": newest, "stale": bool(stale), "reason": reason, "paths": [str(p) for p in paths]}


def _tmp_entry(model, path, now):
    entry = _entry("tmp", model, path.name, [path])
    age_h = (now - entry["last_used"]) / 3600.0
    if age_h >= TMP_STALE_HOURS:
        entry.update(stale=True, reason=f"temporary, untouched for {age_h:.0f} h")
    return entry


def _feature_entries(folder: Path, now):
    from .models.cache import _FORMAT

    out = []
    stems: dict = {}
    for f in sorted(folder.iterdir()):
        if f.is_file() and _TMP_FILE.match(f.name):
            out.append(_tmp_entry(folder.name, f, now))
        elif f.is_file() and not f.is_symlink() and _FEATURE_FILE.match(f.name):
            stems.setdefault(f.stem, []).append(f)  # only files named as mbutils names them
    for stem, files in sorted(stems.items()):
        suffixes = {f.suffix for f in files}
        stale, reason = False, ""
        if ".json" not in suffixes:
            stale, reason = True, "no JSON: a write that did not finish"
        elif ".npz" not in suffixes:
            stale, reason = True, "no .npz"
        else:
            try:
                meta = json.loads((folder / f"{stem}.json").read_text())
                fmt = meta.get("format")
            except (OSError, ValueError, AttributeError):
                stale, reason = True, "JSON does not parse"
            else:
                if fmt != _FORMAT:
                    stale, reason = True, f"format {fmt}, current {_FORMAT}"
        # the JSON first: removing in this order never leaves an entry that looks complete
        files = sorted(files, key=lambda f: f.suffix != ".json")
        out.append(_entry("features", folder.name, stem, files, stale, reason))
    return out


def _projection_entries(folder: Path, now):
    from .reduction import _kernels as kernels
    from .reduction._projection import _DISK_LAYOUT

    out = []
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.is_symlink():
            continue
        if _TMP_FILE.match(f.name):
            out.append(_tmp_entry(None, f, now))
            continue
        m = _PROJECTION.match(f.name)
        if m is None:
            continue  # not ours: left alone
        current = (_DISK_LAYOUT, kernels._TASK, kernels._GROUP)
        found = (m["layout"], int(m["t"]), int(m["g"]))
        stale = found != current
        reason = (f"layout {found[0]} t{found[1]} g{found[2]}, current {current[0]} t{current[1]} g{current[2]}"
                  if stale else "")
        out.append(_entry("projections", None, f.name, [f], stale, reason))
    return out


def cache_usage(cache_dir=None) -> pd.DataFrame:
    """Everything mbutils keeps under the cache folder, one row per entry.

    Parameters
    ----------
    cache_dir : path, optional
        Default ``mbutils.get_config().cache_dir``.

    Returns
    -------
    pandas.DataFrame
        Columns ``kind`` (one of :data:`KINDS`), ``model`` (features and their temporary files;
        None otherwise), ``name``, ``n_files``, ``bytes``, ``last_used`` (UTC timestamp: the
        newest modification time, refreshed when an entry is read), ``stale`` (bool),
        ``reason`` (why stale) and ``paths`` (its files). Files the cache does not know are
        not listed (and never removed). ``attrs["cache_dir"]`` holds the folder.
    """
    root = _root(cache_dir)
    now = time.time()
    rows = []
    features = root / "features"
    if features.is_dir() and not features.is_symlink():
        # a symlinked folder is not followed: what it points to is not the cache's
        for folder in sorted(p for p in features.iterdir() if p.is_dir() and not p.is_symlink()):
            rows.extend(_feature_entries(folder, now))
    projections = root / "projections"
    if projections.is_dir() and not projections.is_symlink():
        rows.extend(_projection_entries(projections, now))
    tmp = root / "tmp"
    if tmp.is_dir() and not tmp.is_symlink():
        rows.extend(_tmp_entry(None, p, now) for p in sorted(tmp.iterdir())
                    if p.name.startswith("layers-") and not p.is_symlink())
    df = pd.DataFrame(rows, columns=_COLUMNS)
    df["last_used"] = pd.to_datetime(df["last_used"].astype(float), unit="s", utc=True)
    df["bytes"] = df["bytes"].astype("int64")
    df["n_files"] = df["n_files"].astype("int64")
    df["stale"] = df["stale"].astype(bool)
    df.attrs["cache_dir"] = str(root)
    return df


def clear_cache(kinds=None, model=None, unused_days=None, stale=False, dry_run=False, cache_dir=None) -> pd.DataFrame:
    """Remove cached entries that match every filter given.

    Parameters
    ----------
    kinds : sequence of str, optional
        Among :data:`KINDS` (default all).
    model : str, optional
        Only the feature entries (and their temporary files) of this model; projection
        matrices, shared by all models, are then left alone.
    unused_days : float, optional
        Only entries not used (read or written) for at least this many days.
    stale : bool
        Only the entries no run will read again (see the module's notes).
    dry_run : bool
        List what would be removed, remove nothing.

    Temporary files that are not stale (those of a run still going) are never removed.
    cache_dir : path, optional
        Default ``mbutils.get_config().cache_dir``.

    Returns
    -------
    pandas.DataFrame
        The entries removed (or, with ``dry_run``, that would be), as in :func:`cache_usage`.
    """
    if kinds is None:
        kinds = KINDS
    if isinstance(kinds, str):
        kinds = [kinds]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown cache kind(s) {bad}; expected some of {list(KINDS)}")
    if unused_days is not None:
        try:
            unused_days = float(unused_days)
        except (TypeError, ValueError):
            raise TypeError(f"unused_days={unused_days!r}; expected a number of days") from None
        if not unused_days >= 0:
            raise ValueError(f"unused_days={unused_days!r}; expected a number of days >= 0")
    df = cache_usage(cache_dir)
    keep = df["kind"].isin(list(kinds))
    if model is not None:
        keep &= df["model"] == str(model)
    if unused_days is not None:
        cutoff = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=unused_days)
        keep &= df["last_used"] <= cutoff
    if stale:
        keep &= df["stale"]
    keep &= (df["kind"] != "tmp") | df["stale"]  # a running job's temporary files are never removed
    chosen = df[keep].reset_index(drop=True)
    chosen.attrs["cache_dir"] = df.attrs["cache_dir"]
    if dry_run:
        return chosen
    for paths in chosen["paths"]:
        for p in map(Path, paths):
            with contextlib.suppress(FileNotFoundError):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
    features = _root(cache_dir) / "features"
    if features.is_dir():  # model folders left empty
        for folder in features.iterdir():
            with contextlib.suppress(OSError):
                if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
                    folder.rmdir()
    return chosen
