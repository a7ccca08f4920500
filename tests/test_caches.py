"""mbutils.caches and `mbutils cache`: listing, stale detection and pruning of the disk caches."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

import mbutils
from mbutils.reduction import _projection as reduction
from mbutils.caches import TMP_STALE_HOURS, cache_usage, clear_cache
from mbutils.cli import main
from mbutils.models.cache import FeatureCache, _FORMAT, cache_key

# planted stale entries (named as the cache names its entries)
INCOMPLETE, OLDFMT, BROKEN = "a" * 32, "b" * 32, "c" * 32


def _age(path, days):
    t = time.time() - days * 86400
    os.utime(path, (t, t))


@pytest.fixture()
def cache(tmp_path):
    """A cache folder with valid, incomplete, old-format and temporary entries (entries are named
    as mbutils names them: 32 hex digits)."""
    root = tmp_path / "cache"
    feats = FeatureCache(root / "features")
    keys = {}
    for model, tag in (("m1", "a"), ("m1", "b"), ("m2", "a")):
        key = cache_key(model, tag, {"r": "k"}, 0)
        feats.save(model, key, {"layers": [["l0", 1, 0.0, 3, "Conv2d"]]}, {"r": [np.arange(6.0).reshape(2, 3)]})
        keys[(model, tag)] = key
    m1 = root / "features" / "m1"
    (m1 / f"{INCOMPLETE}.npz").write_bytes(b"x" * 10)  # its JSON was never written
    (m1 / f"{OLDFMT}.npz").write_bytes(b"y" * 20)
    (m1 / f"{OLDFMT}.json").write_text(json.dumps({"format": _FORMAT - 1}))
    (m1 / f"{BROKEN}.npz").write_bytes(b"z")
    (m1 / f"{BROKEN}.json").write_text("{not json")
    old_tmp = m1 / ".abc.npz.x1.npz.tmp"
    old_tmp.write_bytes(b"t" * 7)
    _age(old_tmp, TMP_STALE_HOURS / 24 + 0.1)
    (m1 / ".abc.npz.x2.npz.tmp").write_bytes(b"t")  # a write going on now
    proj = root / "projections"
    proj.mkdir()
    kernels = reduction._kernels()
    with mbutils.config_context(cache_dir=root):
        current = reduction._disk_path((20000, 64, 0), kernels)
    current.write_bytes(b"p" * 30)
    (proj / "srp-m2-20000x64-seed0-t1024g256.npz").write_bytes(b"q" * 40)
    (proj / f"srp-{reduction._DISK_LAYOUT}-20000x64-seed0-t{kernels._TASK * 2}g{kernels._GROUP}.npz").write_bytes(b"r")
    (proj / "notes.txt").write_text("not ours")
    layers = root / "tmp" / "layers-dead"
    layers.mkdir(parents=True)
    (layers / "3.npy").write_bytes(b"m" * 50)
    _age(layers / "3.npy", 1)
    _age(layers, 1)
    return root, keys, current


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_usage_lists_every_entry_with_sizes_and_stale_reasons(cache):
    root, keys, current = cache
    df = cache_usage(root)
    assert df.attrs["cache_dir"] == str(root)
    assert sorted(df["kind"].value_counts().items()) == [("features", 6), ("projections", 3), ("tmp", 3)]
    # sizes are the files' own sizes (os.stat), whatever the entry groups
    for paths, size in zip(df["paths"], df["bytes"]):
        files = [f for p in paths for f in ([p] if os.path.isfile(p) else
                                            [os.path.join(d, n) for d, _, ns in os.walk(p) for n in ns])]
        assert size == sum(os.stat(f).st_size for f in files) > 0
    by_name = df.set_index("name")
    stale = set(by_name.index[by_name["stale"]])
    assert stale == {INCOMPLETE, OLDFMT, BROKEN, ".abc.npz.x1.npz.tmp",
                     "srp-m2-20000x64-seed0-t1024g256.npz", "layers-dead",
                     f"srp-{reduction._DISK_LAYOUT}-20000x64-seed0-t{reduction._kernels()._TASK * 2}g"
                     f"{reduction._kernels()._GROUP}.npz"}
    assert by_name.loc[INCOMPLETE, "reason"].startswith("no JSON")
    assert by_name.loc[OLDFMT, "reason"] == f"format {_FORMAT - 1}, current {_FORMAT}"
    assert by_name.loc[BROKEN, "reason"] == "JSON does not parse"
    assert by_name.loc["srp-m2-20000x64-seed0-t1024g256.npz", "reason"].startswith("layout m2")
    assert not by_name.loc[current.name, "stale"]
    assert "notes.txt" not in by_name.index  # files the cache does not know are not listed
    assert by_name.loc[keys[("m1", "a")][:32], "n_files"] == 2


def test_clear_stale_removes_exactly_the_stale_entries(cache):
    root, keys, current = cache
    before = _files(root)
    preview = clear_cache(stale=True, dry_run=True, cache_dir=root)
    assert _files(root) == before  # a dry run removes nothing
    removed = clear_cache(stale=True, cache_dir=root)
    assert sorted(removed["name"]) == sorted(preview["name"])
    assert len(removed) == 7
    left = _files(root)
    assert f"features/m1/{INCOMPLETE}.npz" not in left and f"features/m1/{OLDFMT}.json" not in left
    assert "tmp/layers-dead/3.npy" not in left and not (root / "tmp" / "layers-dead").exists()
    assert "projections/notes.txt" in left and f"projections/{current.name}" in left
    assert "features/m1/.abc.npz.x2.npz.tmp" in left  # a fresh temporary file is kept
    # the valid entries still load
    for (model, _tag), key in keys.items():
        assert FeatureCache(root / "features").load(model, key) is not None
    assert cache_usage(root)["stale"].sum() == 0


def test_clear_by_age_and_model(cache):
    root, keys, current = cache
    feats = FeatureCache(root / "features")
    npz, side = feats.paths("m1", keys[("m1", "a")])
    for p in (npz, side):
        _age(p, 10)
    removed = clear_cache(kinds=["features"], unused_days=5, cache_dir=root)
    assert list(removed["name"]) == [keys[("m1", "a")][:32]]
    assert not npz.exists() and not side.exists()
    # reading an entry marks it used: aged, then loaded, it is no longer old
    npz_b, side_b = feats.paths("m1", keys[("m1", "b")])
    _age(side_b, 10)
    _age(npz_b, 10)
    assert feats.load("m1", keys[("m1", "b")]) is not None
    assert time.time() - side_b.stat().st_mtime < 60
    assert clear_cache(kinds=["features"], unused_days=5, cache_dir=root).empty
    # one model's entries only; projections are shared and left alone
    removed = clear_cache(model="m2", cache_dir=root)
    assert list(removed["model"].unique()) == ["m2"]
    assert not (root / "features" / "m2").exists()  # the empty folder goes too
    assert (root / "projections" / current.name).exists()
    assert clear_cache(model="nothing-like-it", cache_dir=root).empty
    # a running job's temporary files are never removed, whatever the filters
    removed = clear_cache(cache_dir=root)
    assert set(removed["name"]) >= {".abc.npz.x1.npz.tmp", "layers-dead"}
    assert _files(root) == ["features/m1/.abc.npz.x2.npz.tmp", "projections/notes.txt"]


def test_projection_reads_mark_the_file_used(tmp_path):
    with mbutils.config_context(cache_dir=tmp_path):
        kernels = reduction._kernels()
        key = (20000, 64, 3)
        path = reduction._disk_path(key, kernels)
        indptr, cols, negative, v = reduction._draw_matrix(*key)
        ptr, words = kernels.pack(indptr, cols, negative, 64)
        reduction._write_packed(path, (ptr, words, float(v)))
        _age(path, 10)
        got = reduction._read_packed(path, key, kernels)
        assert got is not None and np.array_equal(got[1], words)
        assert time.time() - path.stat().st_mtime < 60


def test_bad_arguments_are_named(cache):
    root = cache[0]
    with pytest.raises(ValueError, match=r"unknown cache kind\(s\) \['bogus'\]; expected some of \['features'"):
        clear_cache(kinds=["bogus"], cache_dir=root)
    with pytest.raises(ValueError, match="unused_days=-1.0; expected a number of days >= 0"):
        clear_cache(unused_days=-1, cache_dir=root)
    with pytest.raises(TypeError, match="unused_days='soon'"):
        clear_cache(unused_days="soon", cache_dir=root)


def test_empty_or_missing_cache_folder(tmp_path):
    df = cache_usage(tmp_path / "nowhere")
    assert df.empty and list(df.columns)[:3] == ["kind", "model", "name"]
    assert clear_cache(cache_dir=tmp_path / "nowhere").empty


def test_cli_shows_and_clears(cache, capsys, monkeypatch):
    root = cache[0]
    monkeypatch.setenv("MBUTILS_CACHE", str(root))
    with mbutils.config_context(cache_dir=root):
        assert main(["cache"]) == 0
        out = capsys.readouterr().out
        assert f"cache folder: {root}" in out and "12 entries" in out and "7 stale" in out
        assert main(["cache", "--clear", "--stale", "--dry-run"]) == 0
        assert "would remove 7 entries" in capsys.readouterr().out
        assert len(cache_usage(root)) == 12
        assert main(["cache", "--clear", "--kind", "tmp", "--stale", "--list"]) == 0
        out = capsys.readouterr().out
        assert "removed 2 entries" in out and "layers-dead" in out
        assert len(cache_usage(root)) == 10
