"""The packaged ``paper`` config: exactly the paper's sample (its model table and the three
baselines of section 2.6), with the paper's 600 random Fourier draws passed to that model only."""
import json

import pytest

from mbutils.build import load_config, resolve_models, validate_config
from mbutils.build._sweep import SCORED_MARKER, score_entry

# The paper's model table (Conwell et al. 2021, model typology), by library: every torchvision
# and timm model was scored ImageNet-trained (or trained on its own task: COCO, Kinetics) and
# randomly initialised; the Taskonomy encoders trained, and the Taskonomy architecture
# (random_weights) randomly initialised.
PAPER_TORCHVISION = """
    alexnet vgg11 vgg13 vgg16 vgg19 vgg11_bn vgg13_bn vgg16_bn vgg19_bn resnet18 resnet34
    resnet50 resnet101 resnet152 squeezenet1_0 squeezenet1_1 densenet121 densenet161 densenet169
    densenet201 googlenet shufflenet_v2_x0_5 shufflenet_v2_x1_0 mobilenet_v2 resnext50_32x4d
    resnext101_32x8d wide_resnet50_2 wide_resnet101_2 mnasnet0_5 mnasnet1_0 inception_v3
    fasterrcnn_resnet50_fpn maskrcnn_resnet50_fpn keypointrcnn_resnet50_fpn deeplabv3_resnet101
    fcn_resnet101 r3d_18 r2plus1d_18 mc3_18""".split()
PAPER_TIMM = """
    cait_s24_224 coat_lite_mini coat_mini convit_base convit_small cspdarknet53 cspresnet50
    dla34 dla169 eca_nfnet_l0 eca_nfnet_l1 ecaresnet50d ecaresnet101d efficientnetv2_rw_s
    fbnetc_100 gernet_l gernet_s ghostnet_100 hardcorenas_a hardcorenas_f levit_128 levit_256
    inception_resnet_v2 inception_v3 inception_v4 mixer_b16_224 mixer_l16_224 mixnet_l mixnet_s
    mnasnet_100 mobilenetv3_rw nasnetalarge nf_resnet50 nfnet_l0 pit_b_224 pit_s_224 pit_ti_224
    pnasnet5large regnetx_064 regnety_064 repvgg_b3 repvgg_b3g4 res2net50_26w_4s resnest50d
    resnetrs50 rexnet_100 selecsls60 semnasnet_100 seresnet152d seresnext50_32x4d skresnet18
    skresnext50_32x4d spnasnet_100 swin_base_patch4_window7_224 swin_large_patch4_window7_224
    swin_small_patch4_window7_224 swin_tiny_patch4_window7_224 tf_efficientnet_b1
    tf_efficientnet_b3 tf_efficientnet_b5 tf_efficientnet_b7 tnt_s_patch16_224 tresnet_l
    twins_pcpvt_base twins_svt_base visformer_small deit_base_patch16_224 deit_small_patch16_224
    deit_tiny_patch16_224 vit_large_patch16_224 vit_small_patch16_224 vit_tiny_patch16_224
    vit_tiny_r_s16_p8_224 vit_base_patch16_224 vit_base_patch32_224 vit_small_patch32_224
    xception xception65""".split()
PAPER_TASKONOMY = """
    autoencoding class_object class_scene curvature denoising depth_euclidean depth_zbuffer
    edge_occlusion edge_texture egomotion fixated_pose inpainting jigsaw keypoints2d keypoints3d
    nonfixated_pose normal point_matching reshading room_layout segment_semantic
    segment_unsup25d segment_unsup2d vanishing_point""".split()
PAPER_BASELINES = ["gabor", "gist", "random_fourier"]  # section 2.6
#: the documented exception: the registry's name of the timm Inception-V3 (the table's inception_v3 twice)
REGISTRY_NAMES = {("timm", "inception_v3"): "inception_v3_timm"}


def paper_sample() -> set:
    pairs = set()
    for source, names in (("torchvision", PAPER_TORCHVISION), ("timm", PAPER_TIMM)):
        for name in names:
            pairs |= {(REGISTRY_NAMES.get((source, name), name), w) for w in ("trained", "random")}
    pairs |= {(name, "trained") for name in PAPER_TASKONOMY}
    pairs |= {("random_weights", "random")} | {(name, "random") for name in PAPER_BASELINES}
    return pairs


def test_paper_config_is_the_papers_sample():
    cfg = load_config("paper")  # validates every name against the registry
    got = [(e.model, e.weights) for e in resolve_models(cfg)]
    assert len(got) == len(set(got)) == 262  # 39 + 78 architectures x 2, 24 encoders, 1 + 3 random
    assert set(got) == paper_sample()
    assert not cfg.all_models and not cfg.include_cached_trained  # nothing beyond the list
    assert not {m for m, _ in got} & {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}


def test_only_the_paper_config_asks_for_600_fourier_draws():
    assert load_config("paper").score["model_params"] == {"random_fourier": {"n_draws": 600}}
    for name in ("default", "smoke"):
        assert "model_params" not in load_config(name).score


def recording_scorer(model, dataset, out_dir, weights="random", progress=None, **kwargs):
    """Stand-in for score_model: records what it was handed in ``<out_dir>/handed.json``."""
    import pathlib

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    handed = {"type": type(model).__name__, "kwargs": sorted(kwargs)}
    if not isinstance(model, str):
        handed["n_draws"] = model.n_draws
    (out / "handed.json").write_text(json.dumps(handed))
    for name in ("scores.parquet", "summary.parquet", "provenance.json"):
        (out / name).write_text("x")


def test_model_params_reach_the_model_and_its_marker(tmp_path):
    from mbutils.models.baselines import RandomFourierModel

    data = tmp_path / "d.nc"
    data.write_bytes(b"data")
    score = dict(load_config("paper").score, alpha=1.0)
    out = score_entry("random_fourier", "random", data, tmp_path / "r", score, scorer=recording_scorer)
    handed = json.loads((out / "handed.json").read_text())
    assert handed == {"type": RandomFourierModel.__name__, "kwargs": ["alpha"], "n_draws": 600}
    marker = json.loads((out / SCORED_MARKER).read_text())
    assert marker["model_params"] == {"n_draws": 600} and marker["score_kwargs"] == {"alpha": 1.0}
    # another model of the same sweep is handed its name and records no model parameters
    out = score_entry("gabor", "random", data, tmp_path / "r", score, scorer=recording_scorer)
    assert json.loads((out / "handed.json").read_text()) == {"type": "str", "kwargs": ["alpha"]}
    assert "model_params" not in json.loads((out / SCORED_MARKER).read_text())
    # other draws: the marker differs, so the folder is scored again
    (tmp_path / "r" / "models" / "random_fourier__random" / "handed.json").unlink()
    out = score_entry("random_fourier", "random", data, tmp_path / "r",
                      {"model_params": {"random_fourier": {"n_draws": 3}}}, scorer=recording_scorer)
    assert json.loads((out / "handed.json").read_text())["n_draws"] == 3
    assert RandomFourierModel().n_draws == 10  # the default of every other config


@pytest.mark.parametrize("params, match", [
    ("600", r"score.model_params='600'; expected a mapping"),
    ({"random_fouriers": {"n_draws": 600}}, r"unknown model 'random_fouriers'.*Did you mean \['random_fourier'\]"),
    ({"random_fourier": 600}, r"score.model_params.random_fourier=600; expected a mapping"),
])
def test_bad_model_params_are_refused(params, match):
    with pytest.raises(ValueError, match=match):
        validate_config({"name": "c", "models": [], "score": {"model_params": params}},
                        valid_models={"random_fourier", "gabor"})
