"""Tests of the non-neural-network baselines (Gabor, GIST, random Fourier features)."""
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import torch

from mbutils.models import baselines
from mbutils.models._fourier import median_gamma
from mbutils.models._gabor import gabor_bank, gabor_energy, pool_grid
from mbutils.models._gist import gist_features, prefilter, transfer_functions
from mbutils.models.base import FeatureModel, LayerInfo
from mbutils.models.baselines import (
    BASELINE_INFO,
    BASELINE_MODELS,
    GaborModel,
    GistModel,
    RandomFourierModel,
    resize_stimuli,
)

# small, fast settings for each baseline
SMALL = {
    "gabor": dict(frequencies=(0.25, 0.125), n_orientations=4, grid=4, size=(32, 40)),
    "gist": dict(n_scales=2, n_orientations=4, grid=2, size=(32, 40)),
    "random_fourier": dict(n_components=256, n_draws=3, size=(8, 10)),
}


def _stimuli(n=5, shape=(30, 38), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n,) + shape, dtype=np.uint8)


def _collect(model, stimuli, **kwargs):
    calls = []
    model.run(stimuli, lambda layer, feats: calls.append((layer, feats.clone())), progress=False, **kwargs)
    return calls


def _grating(shape, frequency, theta, phase=0.0):
    y, x = np.mgrid[: shape[0], : shape[1]]
    return np.cos(2 * np.pi * frequency * (x * np.cos(theta) + y * np.sin(theta)) + phase)


def _to_uint8(img, lo=0.0, hi=1.0):
    return np.clip(np.round(255 * (img - lo) / (hi - lo)), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- interface


@pytest.mark.parametrize("name", sorted(BASELINE_MODELS))
def test_interface_conformance(name):
    model = BASELINE_MODELS[name](weights="random", device="cpu", **SMALL[name])
    assert isinstance(model, FeatureModel)
    assert model.name == name and model.weights == "random" and model.device == "cpu"
    stim = _stimuli()
    calls = _collect(model, stim)
    layers = [layer for layer, _ in calls]
    assert layers == model.layers()
    n = len(layers)
    assert [layer.index for layer in layers] == list(range(1, n + 1))
    assert [layer.depth for layer in layers] == pytest.approx([i / n for i in range(1, n + 1)])
    assert len({layer.name for layer in layers}) == n
    for layer, feats in calls:
        assert isinstance(layer, LayerInfo)
        assert isinstance(feats, torch.Tensor) and feats.dtype == torch.float32
        assert feats.device.type == "cpu"
        assert tuple(feats.shape) == (len(stim), layer.n_features)
        assert torch.isfinite(feats).all()
    assert name in model.identity and "random" in model.identity
    assert name in repr(model) or type(model).__name__ in repr(model)


def test_expected_layer_counts_and_sizes():
    assert [layer.n_features for layer in GaborModel(device="cpu").layers()] == [4 * 8 * 64]
    assert [layer.n_features for layer in GistModel(device="cpu").layers()] == [512]
    rff = RandomFourierModel(device="cpu", n_draws=7)
    assert [layer.n_features for layer in rff.layers()] == [4096] * 7
    assert [layer.name for layer in rff.layers()][:2] == ["draw_000", "draw_001"]


@pytest.mark.parametrize("name", sorted(BASELINE_MODELS))
def test_trained_weights_rejected(name):
    with pytest.raises(ValueError, match="no trained weights.*weights='trained'"):
        BASELINE_MODELS[name](weights="trained")
    with pytest.raises(ValueError, match="weights must be 'random'.*'imagenet'"):
        BASELINE_MODELS[name](weights="imagenet")


@pytest.mark.parametrize("name", sorted(BASELINE_MODELS))
def test_identity_keys_on_parameters(name):
    cls = BASELINE_MODELS[name]
    assert cls(device="cpu", **SMALL[name]).identity == cls(device="cpu", **SMALL[name]).identity
    other = dict(SMALL[name], size=(16, 20))
    assert cls(device="cpu", **SMALL[name]).identity != cls(device="cpu", **other).identity


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (GaborModel, dict(frequencies=(0.7,)), r"frequencies must be in \(0, 0.5\].*0.7"),
        (GaborModel, dict(n_orientations=0), "n_orientations must be a positive int, got 0"),
        (GaborModel, dict(grid=(8, 0)), r"grid must be positive ints, got \(8, 0\)"),
        (GaborModel, dict(grid=8, size=(4, 40)), r"size \(4, 40\) must be at least the grid \(8, 8\)"),
        (GistModel, dict(size=(32,)), r"size must be \(height, width\).*\(32,\)"),
        (GistModel, dict(cutoff=-1), "cutoff must be > 0.*-1"),
        (RandomFourierModel, dict(n_draws=0), "n_draws must be a positive int, got 0"),
        (RandomFourierModel, dict(gamma="auto"), "gamma must be a positive float or 'median', got 'auto'"),
        (RandomFourierModel, dict(gamma=-2.0), "gamma must be a positive float or 'median', got -2.0"),
        (RandomFourierModel, dict(seed=-1), "seed must be a non-negative int, got -1"),
    ],
)
def test_parameter_validation(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(device="cpu", **kwargs)


def test_stimuli_validation():
    model = GistModel(device="cpu", **SMALL["gist"])
    with pytest.raises(TypeError, match="uint8.*float64"):
        model.run(np.zeros((2, 10, 10)), lambda *a: None, progress=False)
    with pytest.raises(ValueError, match=r"grayscale.*\(10, 10\)"):
        model.run(np.zeros((10, 10), np.uint8), lambda *a: None, progress=False)


def test_baseline_info_table():
    assert set(BASELINE_INFO) == set(BASELINE_MODELS)
    for name, info in BASELINE_INFO.items():
        assert info["model_class"] == "Baseline"
        assert info["display_name"] and info["description"]
        assert tuple(info["train_types"]) == ("random",)
        assert info["n_layers"] == len(BASELINE_MODELS[name](device="cpu").layers())


def test_progress_bar_path_runs():
    model = RandomFourierModel(device="cpu", **SMALL["random_fourier"])
    seen = []
    model.run(_stimuli(3), lambda layer, f: seen.append(layer.index), progress=True)
    assert seen == [1, 2, 3]


def test_resize_matches_per_image_skimage():
    from skimage.transform import resize

    stim = _stimuli(3, (45, 57))
    got = resize_stimuli(stim, (16, 20))
    for i in range(3):
        ref = resize(stim[i].astype(np.float64) / 255, (16, 20), order=1, mode="reflect", anti_aliasing=True)
        np.testing.assert_allclose(got[i], ref, atol=1e-5)


# ----------------------------------------------------------------------------- Gabor


def test_pool_grid_matches_plain_loop():
    maps = np.random.default_rng(1).random((2, 3, 13, 17))
    got = pool_grid(maps, (4, 5))
    ey = [int(np.floor(i * 13 / 4)) for i in range(5)]
    ex = [int(np.floor(j * 17 / 5)) for j in range(6)]
    for i in range(4):
        for j in range(5):
            ref = maps[..., ey[i]:ey[i + 1], ex[j]:ex[j + 1]].mean(axis=(-2, -1))
            np.testing.assert_allclose(got[..., i, j], ref)


@pytest.mark.parametrize("k", range(8))
def test_gabor_grating_excites_filter_tuned_to_its_orientation(k):
    n_orient, freq = 8, 0.125
    theta = k * np.pi / n_orient
    img = _to_uint8(_grating((64, 64), freq, theta), -1, 1)[None]
    model = GaborModel(device="cpu", frequencies=(0.25, freq, 0.0625), n_orientations=n_orient, grid=1, size=(64, 64))
    energy = model.features(img, progress=False)[0, :, 0, 0].reshape(3, n_orient)
    assert np.unravel_index(np.argmax(energy), energy.shape) == (1, k)


def test_gabor_grid_localises_a_patch():
    shape, grid = (64, 80), (8, 8)
    img = np.full(shape, 0.5)
    r, c = 5, 2  # cell (5, 2) spans rows 40..47, cols 20..29
    img[40:48, 20:30] = 0.5 + 0.5 * _grating((8, 10), 0.25, 0.0)
    model = GaborModel(device="cpu", frequencies=(0.25,), n_orientations=4, grid=grid, size=shape)
    feats = model.features(_to_uint8(img)[None], progress=False)[0]  # (4 filters, 8, 8)
    total = feats.sum(axis=0)
    assert np.unravel_index(np.argmax(total), total.shape) == (r, c)
    far = np.ones(grid, bool)
    far[r - 1:r + 2, c - 1:c + 2] = False
    assert total[far].max() < 1e-3 * total[r, c]  # uniform regions: zero-mean filters give ~0


def test_gabor_energy_matches_direct_convolution():
    rng = np.random.default_rng(2)
    images = rng.random((2, 24, 30)).astype(np.float32)
    bank = gabor_bank((0.2, 0.1), 3)
    got = gabor_energy(images, bank, (3, 2))
    for j in (0, 4):
        kernel = bank[j][2]
        for i in range(2):
            re = scipy.ndimage.convolve(images[i].astype(np.float64), kernel.real, mode="mirror")
            im = scipy.ndimage.convolve(images[i].astype(np.float64), kernel.imag, mode="mirror")
            energy = np.hypot(re, im)
            np.testing.assert_allclose(got[i, j, 1, 0], energy[8:16, 0:15].mean(), rtol=1e-4)
            np.testing.assert_allclose(got[i, j, 2, 1], energy[16:24, 15:30].mean(), rtol=1e-4)


def test_gabor_kernels_are_zero_mean():
    for _, _, kernel in gabor_bank((0.25, 0.05), 4):
        assert abs(kernel.sum()) < 1e-10 * np.abs(kernel).sum()


def test_gabor_per_scale_layers_split_the_bank():
    stim = _stimuli(3)
    kwargs = dict(SMALL["gabor"])
    whole = _collect(GaborModel(device="cpu", **kwargs), stim)
    split = _collect(GaborModel(device="cpu", per_scale=True, **kwargs), stim)
    assert [layer.name for layer, _ in split] == ["gabor_f0", "gabor_f1"]
    torch.testing.assert_close(torch.cat([f for _, f in split], dim=1), whole[0][1])


# ----------------------------------------------------------------------------- GIST


def test_gist_default_has_512_features():
    calls = _collect(GistModel(device="cpu"), _stimuli(2))
    assert len(calls) == 1 and tuple(calls[0][1].shape) == (2, 512)


def test_gist_invariant_to_brightness_offset_without_log():
    stim = _stimuli(3, (32, 40)) // 2  # values 0..127: room for the offset without clipping
    model = GistModel(device="cpu", log=False, **{k: v for k, v in SMALL["gist"].items()})
    base = model.features(stim, progress=False)
    shifted = model.features(stim + np.uint8(100), progress=False)
    np.testing.assert_allclose(shifted, base, rtol=1e-4, atol=1e-5)
    assert np.abs(base).max() > 0.01


def test_gist_invariant_to_gain_with_log():
    images = np.random.default_rng(3).random((2, 32, 40)) * 255
    base = gist_features(images, 2, 4, (2, 2))
    gained = gist_features(3.0 * (1.0 + images) - 1.0, 2, 4, (2, 2))  # log(1 + I') = log 3 + log(1 + I)
    np.testing.assert_allclose(gained, base, rtol=1e-4, atol=1e-5)


def test_gist_energy_matches_direct_circular_convolution():
    images = np.random.default_rng(4).random((1, 24, 32)) * 255
    n_scales, n_orient, grid, pad = 2, 4, (2, 2), 16
    got = gist_features(images, n_scales, n_orient, grid, pad=pad)
    x = np.pad(prefilter(images)[0], pad, mode="symmetric")
    N, M = x.shape
    for f in (0, 5):
        h = np.fft.ifft2(transfer_functions(x.shape, n_scales, n_orient)[f])  # spatial (circular) kernel
        wrapped = np.pad(x, ((N - 1, 0), (M - 1, 0)), mode="wrap")
        response = scipy.signal.fftconvolve(wrapped, h, mode="valid")  # == circular convolution
        amplitude = np.abs(response[pad:pad + 24, pad:pad + 32])
        for i, j in [(0, 1), (1, 0)]:
            ref = amplitude[12 * i:12 * (i + 1), 16 * j:16 * (j + 1)].mean()
            np.testing.assert_allclose(got[0, (f * 2 + i) * 2 + j], ref, rtol=1e-4)


@pytest.mark.parametrize("k", [0, 2, 5])
def test_gist_grating_excites_matching_orientation(k):
    theta = k * np.pi / 8
    img = 128 + 100 * _grating((64, 64), 0.125, theta)
    feats = gist_features(img[None], n_scales=3, n_orientations=8, grid=(1, 1)).reshape(3, 8)
    assert np.unravel_index(np.argmax(feats), feats.shape) == (1, k)


def test_gist_transfer_functions_zero_at_dc():
    tf = transfer_functions((20, 24))
    assert tf.shape == (32, 20, 24) and np.all(tf[:, 0, 0] == 0) and np.all(tf >= 0)


# ----------------------------------------------------------------------------- random Fourier


def test_rff_deterministic_and_draws_differ():
    stim = _stimuli(4)
    kwargs = SMALL["random_fourier"]
    a = _collect(RandomFourierModel(device="cpu", **kwargs), stim)
    b = _collect(RandomFourierModel(device="cpu", **kwargs), stim)
    for (_, fa), (_, fb) in zip(a, b):
        torch.testing.assert_close(fa, fb, rtol=0, atol=0)
    assert not torch.allclose(a[0][1], a[1][1])
    c = _collect(RandomFourierModel(device="cpu", seed=1, **kwargs), stim)
    assert not torch.allclose(a[0][1], c[0][1])
    # draw d does not depend on how many draws are requested
    more = _collect(RandomFourierModel(device="cpu", **dict(kwargs, n_draws=5)), stim)
    torch.testing.assert_close(more[2][1], a[2][1], rtol=0, atol=0)


def test_rff_inner_products_approximate_rbf_kernel():
    from sklearn.metrics.pairwise import rbf_kernel

    stim = _stimuli(8, (20, 25))
    model = RandomFourierModel(device="cpu", n_components=4096, n_draws=4, size=(10, 12))
    x, gamma = model.inputs(stim)
    exact = rbf_kernel(x, gamma=gamma)
    calls = _collect(model, stim)
    approx = [(f.double() @ f.double().T).numpy() for _, f in calls]
    for k in approx:
        assert np.abs(k - exact).max() < 0.08
    assert np.abs(np.mean(approx, axis=0) - exact).max() < 0.04
    assert exact[np.triu_indices(8, 1)].std() > 0.01 or exact.min() < 0.9  # a non-trivial kernel


def test_median_gamma_matches_plain_loop():
    x = np.random.default_rng(5).random((7, 6))
    d2 = [np.sum((x[i] - x[j]) ** 2) for i in range(7) for j in range(i + 1, 7)]
    assert median_gamma(x) == pytest.approx(1.0 / np.median(d2))


def test_rff_fixed_gamma_is_used():
    model = RandomFourierModel(device="cpu", gamma=0.5, **{k: v for k, v in SMALL["random_fourier"].items()})
    assert model.inputs(_stimuli(3))[1] == 0.5


def test_module_exports():
    assert set(baselines.__all__) >= {"BASELINE_MODELS", "BASELINE_INFO", "GaborModel", "GistModel",
                                      "RandomFourierModel"}


def test_device_auto_and_default_resolve():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert GistModel(device="auto").device == expected
    import mbutils

    with mbutils.config_context(device="cpu"):
        assert GistModel().device == "cpu"
