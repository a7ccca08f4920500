import os

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from sklearn.random_projection import johnson_lindenstrauss_min_dim

from mbutils.reduction import (
    GramReducer,
    PCAReducer,
    RDMReducer,
    SparseRandomProjection,
    layer_gram,
    sparse_random_matrix,
)


def test_matrix_density_and_values():
    n_features, n_components = 10000, 512
    indptr, indices, values = sparse_random_matrix(n_features, n_components, seed=3)
    density = 1 / np.sqrt(n_features)
    nnz = len(values)
    expected = n_features * n_components * density
    assert abs(nnz - expected) < 5 * np.sqrt(expected)
    v = np.sqrt(1 / density) / np.sqrt(n_components)
    np.testing.assert_allclose(np.unique(np.abs(values)), [v], rtol=1e-6)
    assert abs((values > 0).mean() - 0.5) < 5 * 0.5 / np.sqrt(nnz)
    # per row, component indices are sorted and unique; each feature's count ~ Binomial
    for r in range(0, n_features, 997):
        row = indices[indptr[r]:indptr[r + 1]]
        assert np.all(np.diff(row) > 0)
    counts = np.diff(indptr)
    assert abs(counts.mean() - n_components * density) < 0.05 * n_components * density
    # columns (components) are used uniformly
    col_counts = np.bincount(indices, minlength=n_components)
    assert abs(col_counts.mean() - n_features * density) < 1e-9 + 0.01 * n_features * density


def test_same_matrix_for_same_shape_and_seed():
    a = sparse_random_matrix(5000, 256, seed=1)
    b = sparse_random_matrix(5000, 256, seed=1)
    c = sparse_random_matrix(5000, 256, seed=2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1][:50], c[1][:50])


def test_projection_preserves_distances_jl():
    rng = np.random.default_rng(0)
    n, p, k = 40, 20000, 2048
    X = rng.normal(size=(n, p)).astype(np.float32)
    Z = SparseRandomProjection(n_components=k, seed=0)(torch.from_numpy(X))
    assert Z.shape == (n, k)
    # the eps for which sklearn's JL formula gives k components for n samples
    eps = next(e for e in np.arange(0.05, 1, 0.01) if johnson_lindenstrauss_min_dim(n, eps=e) <= k)
    ratio = pdist(Z.astype(np.float64)) ** 2 / pdist(X.astype(np.float64)) ** 2
    assert np.all(ratio > 1 - eps) and np.all(ratio < 1 + eps)


def test_projection_equals_scipy_matmul_and_small_layers_pass_through():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(7, 3000)).astype(np.float32)
    srp = SparseRandomProjection(n_components=100, seed=4)
    ref = X.astype(np.float64) @ srp.matrix(3000).toarray().astype(np.float64)
    np.testing.assert_allclose(srp(X), ref, rtol=1e-4, atol=1e-4)
    small = rng.normal(size=(7, 60)).astype(np.float32)
    np.testing.assert_array_equal(srp(small), small)
    assert srp.key == "srp-100-seed4-m2-k3-p64"


def test_bad_parameters():
    with pytest.raises(ValueError, match="n_components=0"):
        SparseRandomProjection(n_components=0)
    with pytest.raises(ValueError, match=r"shape \(n_stimuli, n_features\)"):
        SparseRandomProjection(n_components=4)(np.zeros(5, np.float32))


def test_gram_and_rdm_match_numpy():
    rng = np.random.default_rng(2)
    X = (rng.normal(size=(25, 70000)) * 2 + rng.normal(size=70000) * 5 + 3).astype(np.float32)
    X64 = X.astype(np.float64)
    Xc = X64 - X64.mean(0)
    g = layer_gram(torch.from_numpy(X))
    np.testing.assert_allclose(g.kc, Xc @ Xc.T, rtol=1e-5, atol=1e-5 * np.abs(Xc @ Xc.T).max())
    np.testing.assert_allclose(RDMReducer()(torch.from_numpy(X)), 1 - np.corrcoef(X64), atol=1e-6)
    np.testing.assert_allclose(GramReducer()(X), g.kc)


def test_pca_reducer_matches_sklearn():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 500)).astype(np.float32)
    Z = PCAReducer(n_components=5)(torch.from_numpy(X))
    ref = PCA(n_components=5, svd_solver="full").fit_transform(X.astype(np.float64))
    np.testing.assert_allclose(np.abs(Z), np.abs(ref), rtol=1e-4, atol=1e-4)


def test_float32_precision_mode_close_and_keyed():
    rng = np.random.default_rng(4)
    X = np.maximum(rng.normal(size=(15, 40000)) + 0.5, 0).astype(np.float32)
    fast = RDMReducer(precision="float32")
    assert fast.key != RDMReducer(precision="float64").key
    assert RDMReducer().key == fast.key  # float32 products (float64 centering and sums) by default
    np.testing.assert_allclose(fast(torch.from_numpy(X)), 1 - np.corrcoef(X.astype(np.float64)), atol=1e-4)
    with pytest.raises(ValueError, match="precision='float16'"):
        GramReducer(precision="float16")


def test_projection_rows_independent_and_matches_float64_reference():
    # row-wise: projecting a subset of rows gives bitwise the rows of the full projection
    rng = np.random.default_rng(7)
    X = np.maximum(rng.normal(size=(37, 70000)) + 0.3, 0).astype(np.float32)
    srp = SparseRandomProjection(n_components=512, seed=2)
    assert srp.rowwise is True and RDMReducer.rowwise is False and GramReducer.rowwise is False
    full = srp(X)
    np.testing.assert_array_equal(srp(X[5:21]), full[5:21])
    ref = X.astype(np.float64) @ srp.matrix(70000).toarray().astype(np.float64)
    np.testing.assert_allclose(full, ref, rtol=2e-6, atol=2e-6 * np.abs(ref).max())


def test_float32_gram_close_to_float64_on_offset_features():
    # features with a large common offset (as deep ReLU layers): centering in float64 keeps
    # float32 products accurate
    rng = np.random.default_rng(8)
    X = (rng.normal(size=(20, 50000)) * 0.01 + 10 + rng.normal(size=50000)).astype(np.float32)
    ref = 1 - np.corrcoef(X.astype(np.float64))
    np.testing.assert_allclose(RDMReducer(precision="float32")(X), ref, atol=1e-6)


def test_srp_kernel_matches_plain_loop_for_both_signs_and_threads():
    # the compiled kernel (numba is a pinned dependency) against a plain float64 loop over non-zeros
    from mbutils.reduction import _kernels as kernels
    rng = np.random.default_rng(11)
    n, p, k = 41, 70000, 64  # more than one task of features, one full chunk of stimuli and a partial one
    X = rng.normal(size=(n, p)).astype(np.float32)
    counts = rng.integers(0, 4, size=p)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = rng.integers(0, k, size=indptr[-1]).astype(np.int32)
    signs = rng.choice(np.array([-1, 1], dtype=np.int8), size=indptr[-1])
    ref = np.zeros((n, k))
    rows = np.repeat(np.arange(p), counts)
    np.add.at(ref.T, indices, (X[:, rows] * signs).T.astype(np.float64))
    packed = kernels.pack_csr(indptr, indices, signs, k)
    for n_threads in (1, 2, 3):
        out = kernels.project(X, packed, k, n_threads=n_threads)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    # the scale is applied before the final rounding; rows beyond one chunk are independent
    np.testing.assert_allclose(kernels.project(X, packed, k, scale=0.5), 0.5 * ref, rtol=1e-5,
                               atol=1e-5 * np.abs(ref).max())
    X2 = rng.normal(size=(70, 5000)).astype(np.float32)
    packed2 = kernels.pack_csr(indptr[:5001], indices, signs, k)
    full = kernels.project(X2, packed2, k)
    np.testing.assert_array_equal(kernels.project(X2[33:61], packed2, k), full[33:61])


def test_packed_buckets_sorted_by_component_and_sums_in_feature_order():
    # pack: every non-zero kept once, each (task, group) bucket ordered by component and then
    # feature; the projection is bitwise that of the same buckets in feature order (each output
    # element is summed over its features in the same order)
    from mbutils.reduction import _kernels as kernels
    rng = np.random.default_rng(21)
    n, p, k = 70, 3 * kernels._TASK + 77, 2 * kernels._GROUP + 5
    counts = rng.integers(0, 6, size=p)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.concatenate([np.sort(rng.choice(k, size=c, replace=False)) for c in counts]).astype(np.int32)
    signs = rng.choice(np.array([-1, 1], dtype=np.int8), size=indptr[-1])
    ptr, words = kernels.pack_csr(indptr, indices, signs, k)
    n_groups = -(-k // kernels._GROUP)
    comp, local, neg = words >> 13, (words >> 1) & (kernels._TASK - 1), words & 1
    bucket = np.repeat(np.arange(ptr.size - 1), np.diff(ptr))
    feature = (bucket // n_groups) * kernels._TASK + local
    assert np.array_equal(comp // kernels._GROUP, bucket % n_groups)
    got = sorted(zip(feature.tolist(), comp.tolist(), neg.tolist()))
    want = sorted(zip(np.repeat(np.arange(p), counts).tolist(), indices.tolist(), (signs < 0).astype(int).tolist()))
    assert got == want
    by_feature = words.copy()
    for b in range(ptr.size - 1):
        sl = slice(ptr[b], ptr[b + 1])
        assert np.all(np.diff(comp[sl].astype(np.int64) * kernels._TASK + local[sl]) > 0)
        by_feature[sl] = words[sl][np.lexsort((comp[sl], local[sl]))]
    assert not np.array_equal(by_feature, words)
    X = rng.normal(size=(n, p)).astype(np.float32)
    for n_threads in (1, 2):
        np.testing.assert_array_equal(kernels.project(X, (ptr, words), k, n_threads=n_threads),
                                      kernels.project(X, (ptr, by_feature), k, n_threads=n_threads))


def test_projection_matrices_cached_on_disk_and_redrawn_when_damaged(tmp_path, monkeypatch):
    import mbutils
    from mbutils.reduction import _kernels as kernels
    from mbutils.reduction import _projection as reduction

    monkeypatch.setattr(reduction, "_DISK_MIN_NNZ", 0)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(6, 9000)).astype(np.float32)
    with mbutils.config_context(cache_dir=tmp_path):
        reduction._SIGN_CACHE.clear()
        first = SparseRandomProjection(n_components=128, seed=5)(X)
        files = list((tmp_path / "projections").glob("*.npz"))
        assert len(files) == 1 and "9000x128-seed5" in files[0].name
        reduction._SIGN_CACHE.clear()
        np.testing.assert_array_equal(SparseRandomProjection(n_components=128, seed=5)(X), first)
        # a truncated file is not trusted: the matrix is drawn again and the file replaced
        files[0].write_bytes(files[0].read_bytes()[:100])
        reduction._SIGN_CACHE.clear()
        np.testing.assert_array_equal(SparseRandomProjection(n_components=128, seed=5)(X), first)
        key = (9000, 128, 5)
        assert reduction._read_packed(files[0], key, kernels) is not None
        # a changed value (same size) fails the checksum: never handed to the kernel
        with np.load(files[0]) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["words"][0] ^= 1 << 20
        with open(files[0], "wb") as fh:
            np.savez(fh, **arrays)
        assert reduction._read_packed(files[0], key, kernels) is None
        reduction._SIGN_CACHE.clear()
    # the cached matrix is the one sparse_random_matrix describes
    ref = X.astype(np.float64) @ SparseRandomProjection(n_components=128, seed=5).matrix(9000).toarray()
    np.testing.assert_allclose(first, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_block_grams_on_worker_threads_against_float64():
    # the float32 Grams of centered blocks, spread over 1-3 worker threads (one slot shared by
    # all workers, or whole slots per worker), against float64 sums of the same shifted blocks
    from mbutils.reduction import _workers as gw
    from mbutils.reduction import _kernels as kernels

    rng = np.random.default_rng(14)
    n = 13  # not a multiple of 8: zero rows are added for the products
    X = (rng.normal(size=(n, 9001)) + 20 * rng.random(9001)).astype(np.float32)
    X64 = X.astype(np.float64)
    one_slot = [(j, min(9001, j + 1000), 0) for j in range(0, 9001, 1000)]
    slots = [(0, 2500, 0), (2500, 3001, 1), (3001, 6000, 2), (6000, 9001, 1)]
    for jobs, n_slots in ((one_slot, 1), (slots, 3)):
        ref = gw.BlockSums(n_slots, n)
        for a, b, k in jobs:
            mu = X64[:, a:b].mean(0)
            c = mu.astype(np.float32).astype(np.float64)
            xs = (X[:, a:b] - c.astype(np.float32)).astype(np.float64)  # as the kernel rounds it
            ref.ks[k] += xs @ xs.T
            ref.rs[k] += xs.sum(1)
            ref.rd[k] += xs @ c
            ref.re[k] += xs @ (mu - c)
            ref.s1[k] += c.sum()
            ref.s2[k] += c @ c
            ref.dd[k] += (mu - c) @ (mu - c)
        first = None
        for workers in (1, 2, 3):
            got = gw.block_grams(kernels, X, jobs, n_slots, workers=workers)
            np.testing.assert_allclose(got.ks, ref.ks, rtol=0, atol=1e-6 * np.abs(ref.ks).max())
            for name in ("rs", "rd", "s1", "s2"):
                np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-9,
                                           atol=1e-9 * np.abs(getattr(ref, name)).max())
            # delta = mean - c is about 1e-7 of the mean: its own rounding is about 1e-9 of it
            np.testing.assert_allclose(got.re, ref.re, rtol=1e-6, atol=1e-6 * np.abs(ref.re).max())
            np.testing.assert_allclose(got.dd, ref.dd, rtol=1e-6, atol=0)
            if first is None:
                first = got.ks
            else:  # the workers only change the grouping of float64 sums
                np.testing.assert_allclose(got.ks, first, rtol=0, atol=1e-12 * np.abs(first).max())
    assert gw.block_grams(kernels, X, [], 2).ks.shape == (2, n, n)
    assert gw.n_workers() >= 1


def _block_grams_in_child(queue, x, jobs):
    from mbutils.reduction import _workers as gw
    from mbutils.reduction import _kernels as kernels

    queue.put(gw.block_grams(kernels, x, jobs, 1, workers=2).ks)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available on this platform (Windows)")
def test_block_grams_worker_threads_work_in_a_forked_child():
    # the worker threads are kept for the process; a forked child (multiprocessing, some
    # notebook runners) has none of them and must not wait on the parent's
    import multiprocessing as mp

    from mbutils.reduction import _workers as gw
    from mbutils.reduction import _kernels as kernels

    x = np.random.default_rng(15).random((13, 9000)).astype(np.float32)
    jobs = [(j, min(9000, j + 1000), 0) for j in range(0, 9000, 1000)]
    ref = gw.block_grams(kernels, x, jobs, 1, workers=2).ks  # the parent's threads exist now
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_block_grams_in_child, args=(queue, x, jobs))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        pytest.fail("block_grams hung in a forked child")
    np.testing.assert_array_equal(queue.get(timeout=5), ref)


def _kernel_outputs(x, packed):
    from mbutils.reduction import _kernels as kernels

    scale, shift = np.linspace(0.5, 2.0, 8), np.linspace(-1.0, 1.0, 8)
    return (kernels.project(x, packed, 300, 0.25),) + kernels.project_affine(x, packed, 300, scale, shift, 0.25) + \
        kernels.center_block(x, 100, 2900, np.float64)[:2] + kernels.center_block_f32(x, 100, 2900)[:2]


def _kernel_inputs():
    from mbutils.reduction import _kernels as kernels
    from mbutils.reduction._projection import _draw_matrix

    x = np.random.default_rng(16).random((70, 4096)).astype(np.float32)  # two chunks of stimuli
    indptr, cols, negative, _ = _draw_matrix(4096, 300, 5)
    return x, kernels.pack(indptr, cols, negative, 300)


def test_serial_twins_of_the_parallel_kernels_are_bitwise_equal(monkeypatch):
    from mbutils.reduction import _kernels as kernels

    x, packed = _kernel_inputs()
    parallel = _kernel_outputs(x, packed)
    monkeypatch.setattr(kernels, "_SERIAL_ONLY", True)
    serial = _kernel_outputs(x, packed)
    for a, b in zip(parallel, serial):
        np.testing.assert_array_equal(a, b)
    dense = x.astype(np.float64) @ _sign_dense(packed, 4096, 300) * 0.25
    np.testing.assert_allclose(serial[0], dense, rtol=1e-5, atol=1e-5 * np.abs(dense).max())


def _sign_dense(packed, n_features, n_components):
    """The dense sign matrix behind packed words (a plain loop over the buckets)."""
    from mbutils.reduction import _kernels as kernels

    ptr, words = packed
    n_groups = -(-n_components // kernels._GROUP)
    S = np.zeros((n_features, n_components))
    for bucket in range(ptr.size - 1):
        task = bucket // n_groups
        for w in words[ptr[bucket]:ptr[bucket + 1]]:
            S[task * kernels._TASK + ((w >> 1) & (kernels._TASK - 1)), w >> 13] = -1.0 if w & 1 else 1.0
    return S


def _kernels_in_child(queue, x, packed):
    from mbutils.reduction import _kernels as kernels

    queue.put((kernels._SERIAL_ONLY, _kernel_outputs(x, packed)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available on this platform (Windows)")
def test_kernels_work_in_a_child_forked_after_parallel_work(monkeypatch):
    # numba's OpenMP layer kills a child forked after the parent ran parallel kernels as soon as
    # the child runs one; such a child runs the serial twins (multiprocessing forks by default)
    import multiprocessing as mp

    import numba

    from mbutils.reduction import _kernels as kernels

    x, packed = _kernel_inputs()
    with monkeypatch.context() as m:  # the twins compiled here: the forked child inherits them compiled
        m.setattr(kernels, "_SERIAL_ONLY", True)
        _kernel_outputs(x, packed)
    ref = _kernel_outputs(x, packed)  # parallel work in this process
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_kernels_in_child, args=(queue, x, packed))
    child.start()
    try:
        serial_only, got = queue.get(timeout=600)  # before join: the results fill more than a pipe
    except Exception:  # noqa: BLE001 - nothing came back
        child.join(5)
        if child.is_alive():
            child.kill()
        pytest.fail(f"the forked child gave no result (exit code {child.exitcode})")
    child.join(60)
    assert serial_only == (numba.threading_layer() == "omp")
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a, b)


def test_float32_centering_kernel_against_numpy():
    from mbutils.reduction import _kernels as kernels
    rng = np.random.default_rng(12)
    X = (rng.normal(size=(23, 3000)) + 50 * rng.random(3000)).astype(np.float32)
    xc, c, delta, rs, rd, re = kernels.center_block_f32(X, 700, 2900)
    mu = X[:, 700:2900].astype(np.float64).mean(0)
    np.testing.assert_array_equal(c, mu.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(delta, mu - c, rtol=0, atol=1e-14 * np.abs(mu).max())  # mean to a few ulp
    np.testing.assert_array_equal(xc, X[:, 700:2900] - c.astype(np.float32))
    v = xc.astype(np.float64)
    np.testing.assert_allclose(rs, v.sum(1), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(rd, v @ c, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(re, v @ (mu - c), rtol=1e-6, atol=1e-12)
    # per work item: the sums over each item's columns
    *_, rs_items, _, _ = kernels.center_block_f32(X, 700, 2900, item=1000, per_item=True)
    assert rs_items.shape == (3, 23)
    np.testing.assert_allclose(rs_items[1], v[:, 1000:2000].sum(1), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("n_channels,hw", [(6, 700), (25, 700), (2, 9000)])  # batched GEMMs (one, three blocks) / a channel in two GEMMs
def test_channel_statistics_give_the_gram_of_any_per_channel_affine_map(n_channels, hw):
    from mbutils.reduction import _kernels as kernels
    from mbutils.reduction._gram import _ChannelStats

    rng = np.random.default_rng(13)
    n = 15
    X = (rng.normal(size=(n, n_channels * hw)) + rng.random(n_channels * hw) * 3).astype(np.float32)
    scale = rng.uniform(-2, 2, n_channels)
    shift = rng.uniform(-5, 5, n_channels)
    stats = _ChannelStats(X, n_channels, kernels)
    X64 = X.astype(np.float64)
    for a, b in ((None, None), (scale, shift)):
        Y = X64 if a is None else X64 * np.repeat(a, hw) + np.repeat(b, hw)
        g = stats.gram(a, b)
        yc = Y - Y.mean(0)
        kc = yc @ yc.T
        np.testing.assert_allclose(g.kc, kc, rtol=0, atol=1e-6 * np.abs(kc).max())
        np.testing.assert_allclose(g.corrcoef(), np.corrcoef(Y), rtol=0, atol=1e-6)
    # the layer itself: as the whole-layer float32 Gram
    whole = layer_gram(X, precision="float32")
    np.testing.assert_allclose(stats.gram().kr, whole.kr, rtol=0, atol=1e-6 * np.abs(whole.kr).max())


def test_joint_projection_of_a_layer_and_its_per_channel_affine_map():
    # project_affine: X's projection bitwise as project(X), and Y = a[k] X + b[k] (channel-major)
    # against a float64 product with the matrix
    from mbutils.reduction import _kernels as kernels
    from mbutils.reduction import _projection as reduction

    rng = np.random.default_rng(12)
    n, C, hw, k = 70, 6, 3000, 512  # two chunks of stimuli, several tasks and flushes
    X = np.maximum(rng.normal(size=(n, C * hw)) + 0.2, 0).astype(np.float32)
    a, b = rng.uniform(-2, 3, size=C), rng.normal(size=C) * 3
    Y = (X.astype(np.float64).reshape(n, C, hw) * a[:, None] + b[:, None]).reshape(n, C * hw)
    ptr, words, scale = reduction._sign_matrix(C * hw, k, 9, kernels, disk=False)
    S = SparseRandomProjection(n_components=k, seed=9).matrix(C * hw).toarray()
    px, py = kernels.project_affine(X, (ptr, words), k, a, b, scale)
    np.testing.assert_array_equal(px, kernels.project(X, (ptr, words), k, scale))
    ref = Y @ S
    np.testing.assert_allclose(py, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())
    # one summation order whatever the threads or the rows projected together
    for n_threads in (1, 3):
        np.testing.assert_array_equal(kernels.project_affine(X, (ptr, words), k, a, b, scale, n_threads)[1], py)
    np.testing.assert_array_equal(kernels.project_affine(X[7:40], (ptr, words), k, a, b, scale)[1], py[7:40])
    with pytest.raises(ValueError, match="a divisor of n_features=18000; got 7 and 7"):
        kernels.project_affine(X, (ptr, words), k, np.ones(7), np.zeros(7), scale)
    with pytest.raises(ValueError, match="got 6 and 5"):
        kernels.project_affine(X, (ptr, words), k, np.ones(6), np.zeros(5), scale)
