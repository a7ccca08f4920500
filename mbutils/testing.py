"""Test fixtures: a small fake sweep (score tables with planted effects) and a matching fake dataset.

Used by the tests of the results chapters and to smoke-run the results notebooks without a
real sweep; users can test their own analyses of a run on it the same way. Nothing here is a result: every table states ``fake`` in its provenance, and the
dataset's ``source`` attribute is ``"synthetic"`` with a description saying it is fake.

Planted effects (checked by the tests):

- trained beats random by about 0.05 (SRP-Ridge) / 0.15 (RSA), except ``vgg16`` and
  ``alexnet`` whose random variant beats the trained one on SRP-Ridge;
- the best layer per area lies at the area's planted depth (VISp 0.2 ... VISam 0.5);
  ``efficientnet_lite0`` trained reproduces ``ground_truth`` exactly (its layers sit on the
  planted depths);
- transformers score higher on SRP-Ridge and lower on RSA than convolutional models;
- neuron scores rise with reliability, so stricter cutoffs give higher area means.

:func:`make_paper_results` writes a paper-sized fake sweep (90 ImageNet architectures trained
and random, the 24 Taskonomy encoders, the baselines) with the effects of
:data:`PAPER_EFFECTS` planted, for tests of the paper's statistics and of the claims table.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ._io import atomic_write, file_sha256

#: the planted depth of each area's best layer
AREAS = {"VISp": 0.2, "VISl": 0.3, "VISal": 0.3, "VISrl": 0.35, "VISpm": 0.45, "VISam": 0.5}
CRE_LINES = ["Cux2", "Emx1", "Rorb", "Slc17a7"]

# name: (source, model_class, task, task_cluster, n_parameters, imagenet_top1, n_layers, srp, rsa)
FAKE_MODELS = {
    "alexnet": ("torchvision", "Convolutional", "imagenet", "Semantic", 61e6, 56.5, 12, 0.14, 0.30),
    "vgg16": ("torchvision", "Convolutional", "imagenet", "Semantic", 138e6, 71.6, 20, 0.15, 0.32),
    "resnet18": ("torchvision", "Convolutional", "imagenet", "Semantic", 11.7e6, 69.8, 30, 0.17, 0.38),
    "resnet50": ("torchvision", "Convolutional", "imagenet", "Semantic", 25.6e6, 76.1, 40, 0.18, 0.40),
    "densenet121": ("torchvision", "Convolutional", "imagenet", "Semantic", 8e6, 74.4, 40, 0.17, 0.39),
    "inception_resnet_v2": ("timm", "Convolutional", "imagenet", "Semantic", 55.8e6, 80.4, 50, 0.20, 0.45),
    "efficientnet_lite0": ("efficientnet_lite", "Convolutional", "imagenet", "Semantic", 4.7e6, 75.1, 20, 0.16, 0.36),
    "vit_small_patch16_224": ("timm", "Transformer", "imagenet", "Semantic", 22e6, 81.4, 25, 0.19, 0.30),
    "deit_small_patch16_224": ("timm", "Transformer", "imagenet", "Semantic", 22e6, 79.9, 25, 0.19, 0.29),
    "swin_tiny_patch4_window7_224": ("timm", "Transformer", "imagenet", "Semantic", 28e6, 81.2, 30, 0.20, 0.31),
    "mixer_b16_224": ("timm", "MLP-Mixer", "imagenet", "Semantic", 60e6, 76.6, 25, 0.18, 0.33),
    "segment_unsup2d": ("taskonomy", "Convolutional", "taskonomy", "2D", 23e6, np.nan, 16, 0.19, 0.43),
    "autoencoding": ("taskonomy", "Convolutional", "taskonomy", "2D", 23e6, np.nan, 16, 0.18, 0.34),
    "denoising": ("taskonomy", "Convolutional", "taskonomy", "Other", 23e6, np.nan, 16, 0.18, 0.33),
    "class_object": ("taskonomy", "Convolutional", "taskonomy", "Semantic", 23e6, np.nan, 16, 0.16, 0.42),
    "depth_euclidean": ("taskonomy", "Convolutional", "taskonomy", "3D", 23e6, np.nan, 16, 0.15, 0.37),
    "egomotion": ("taskonomy", "Convolutional", "taskonomy", "Geometric", 23e6, np.nan, 16, 0.16, 0.35),
    "gabor": ("baselines", "Baseline", "baseline", None, 0, np.nan, 1, 0.03, 0.05),
    "gist": ("baselines", "Baseline", "baseline", None, 0, np.nan, 1, 0.026, 0.04),
    "random_fourier": ("baselines", "Baseline", "baseline", None, 0, np.nan, 1, -0.01, 0.01),
}
RANDOM_BEATS_TRAINED = ("vgg16", "alexnet")


def fake_metadata(specs=None) -> pd.DataFrame:
    """Metadata of :data:`FAKE_MODELS` (or of ``specs``, same layout) indexed by name (pass to
    ``load_run(..., metadata=)``)."""
    cols = ["source", "model_class", "task", "task_cluster", "n_parameters", "imagenet_top1"]
    specs = FAKE_MODELS if specs is None else specs
    meta = pd.DataFrame({k: dict(zip(cols, v[:6])) for k, v in specs.items()}).T
    meta["display_name"] = meta.index
    meta.index.name = "model"
    return meta


def _layer_scores(n_layers, base, peak, amp, rng):
    depth = np.arange(1, n_layers + 1) / n_layers
    bump = amp * np.exp(-((depth - peak) ** 2) / (2 * 0.15**2))
    return depth, base - amp / 2 + bump + rng.normal(0, 0.002, n_layers)


def _fake_bootstrap(summary, n_boot, seed) -> pd.DataFrame:
    """A ``bootstrap`` table for a fake model's ``summary``: per metric and area, draws around
    its max and unbiased scores, made of a part shared by every model (seeded by ``seed``, the
    metric and the area: the same resamples of the same data) and a part of the model's own
    (spread 0.01 each)."""
    import zlib

    if not n_boot:
        return pd.DataFrame(columns=["model", "train_type", "metric", "area", "draw", "max_score", "unbiased_score"])
    rows = []
    for r in summary.itertuples():
        shared = np.random.default_rng([seed, 17, zlib.crc32(f"{r.metric}/{r.area}".encode())]).normal(0, 0.01, n_boot)
        own = np.random.default_rng([seed, 18, zlib.crc32(f"{r.model}/{r.train_type}/{r.metric}/{r.area}".encode())])
        noise = shared + own.normal(0, 0.01, n_boot)
        rows.append(pd.DataFrame(dict(model=r.model, train_type=r.train_type, metric=r.metric, area=r.area,
                                      draw=np.arange(n_boot, dtype=np.int64), max_score=r.max_score + noise,
                                      unbiased_score=r.unbiased_score + noise)))
    return pd.concat(rows, ignore_index=True)


def make_fake_results(folder, models=None, n_neurons_per_area=8, seed=0, dataset=None, specs=None, n_boot=50):
    """Write a fake sweep under ``folder/models/<model>__<train_type>/``.

    Parameters
    ----------
    folder : str or pathlib.Path
    models : list of str, optional  subset of :data:`FAKE_MODELS` (default all)
    n_neurons_per_area : int
    seed : int
    dataset : str or pathlib.Path, optional
        A dataset file (e.g. :func:`make_fake_dataset`'s) recorded as the tables' dataset in
        each ``provenance.json`` (path and SHA-256), as :func:`mbutils.scoring.score_model` does.
    specs : dict, optional
        Model specs in the layout of :data:`FAKE_MODELS` (default that table); a spec may add
        two values, the random variant's SRP-Ridge and RSA levels, in place of the fixed drops.
    n_boot : int, default 50
        Draws of each model's ``bootstrap`` table (0: no table): per metric and area, its max
        and unbiased scores plus noise shared by all models and noise of its own.

    Returns
    -------
    pandas.Series  the planted reliability of each neuron, indexed by ``cell_specimen_id``.
    """
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    specs = FAKE_MODELS if specs is None else specs
    models = list(specs) if models is None else list(models)
    unknown = sorted(set(models) - set(specs))
    if unknown:
        raise ValueError(f"unknown fake models {unknown}; valid: {sorted(specs)}")
    neurons = []
    cid = 1000
    for area in AREAS:
        for k in range(n_neurons_per_area):
            neurons.append(dict(cell_specimen_id=cid, area=area, cre_line=CRE_LINES[k % len(CRE_LINES)],
                                imaging_depth=175 + 100 * (k % 3), reliability=0.8 + 0.19 * k / max(1, n_neurons_per_area - 1)))
            cid += 1
    neurons = pd.DataFrame(neurons)
    for name in models:
        source, mclass, task, cluster, n_params, top1, n_layers, srp, rsa = specs[name][:9]
        random_levels = specs[name][9:11]
        train_types = ["trained"] if source == "baselines" else ["trained", "random"]
        for tt in train_types:
            scores, nscores, groups = [], [], []
            for metric, base in (("srp_ridge", srp), ("rsa", rsa)):
                if tt == "random" and len(random_levels) == 2:
                    base = random_levels[0] if metric == "srp_ridge" else random_levels[1]
                elif tt == "random":
                    drop = 0.15 if metric == "rsa" else (-0.01 if name in RANDOM_BEATS_TRAINED else 0.05)
                    base = base - drop
                for area, peak in AREAS.items():
                    if name == "efficientnet_lite0" and tt == "trained":
                        # exact planted layer: the layer whose depth equals the planted depth wins
                        depth = np.arange(1, n_layers + 1) / n_layers
                        vals = base - 0.3 * np.abs(depth - peak)
                    else:
                        depth, vals = _layer_scores(n_layers, base, peak, 0.06, rng)
                    layers = np.array([f"layer{i:03d}" for i in range(1, n_layers + 1)])
                    scores.append(pd.DataFrame(dict(
                        model=name, train_type=tt, layer=layers, layer_index=np.arange(1, n_layers + 1),
                        layer_depth=depth, metric=metric, area=area, score=vals, score_normalized=vals / 0.8,
                        n_neurons=n_neurons_per_area, n_nan=0)))
                    if metric == "srp_ridge":
                        nn = neurons[neurons["area"] == area]
                        rel = nn["reliability"].to_numpy()
                        # neuron score grows with reliability; the area mean equals the layer score
                        ns = vals[:, None] + 0.3 * (rel - rel.mean())[None, :] + rng.normal(0, 0.01, (n_layers, len(nn)))
                        ns = ns - ns.mean(axis=1, keepdims=True) + vals[:, None]
                        k = len(nn)
                        nscores.append(pd.DataFrame(dict(
                            model=name, train_type=tt, layer=np.repeat(layers, k),
                            layer_index=np.repeat(np.arange(1, n_layers + 1), k), layer_depth=np.repeat(depth, k),
                            cell_specimen_id=np.tile(nn["cell_specimen_id"].to_numpy(), n_layers), area=area,
                            cre_line=np.tile(nn["cre_line"].to_numpy(), n_layers),
                            imaging_depth=np.tile(nn["imaging_depth"].to_numpy(), n_layers), score=ns.ravel())))
            scores = pd.concat(scores, ignore_index=True)
            nscores = pd.concat(nscores, ignore_index=True)
            # groups: SRP from neuron scores by cre line; RSA as the area mean plus a cre offset
            for grouping in ("cre_line", "imaging_depth"):
                g = nscores.groupby(["model", "train_type", "layer", "layer_index", "layer_depth", grouping])["score"].mean()
                g = g.reset_index().rename(columns={grouping: "group"})
                g["group"] = g["group"].astype(str)
                g["metric"], g["grouping"] = "srp_ridge", grouping
                r = g.copy()
                r["metric"] = "rsa"
                r["score"] = r["score"] + (rsa - srp) + rng.normal(0, 0.005, len(r))
                groups.extend([g, r])
            groups = pd.concat(groups, ignore_index=True)
            groups["score_normalized"], groups["n_neurons"], groups["n_nan"] = groups["score"] / 0.8, 1, 0
            idx = scores.groupby(["metric", "area"])["score"].idxmax()
            best = scores.loc[idx]
            summary = pd.DataFrame(dict(model=name, train_type=tt, metric=best["metric"].to_numpy(),
                                        area=best["area"].to_numpy(), max_score=best["score"].to_numpy(),
                                        best_layer=best["layer"].to_numpy(),
                                        best_layer_depth=best["layer_depth"].to_numpy(),
                                        unbiased_score=best["score"].to_numpy() - 0.01,
                                        ceiling=np.where(best["metric"] == "rsa", 0.85, 0.7)))
            out = folder / "models" / f"{name}__{tt}"
            out.mkdir(parents=True, exist_ok=True)
            dataset_sha = file_sha256(dataset) if dataset else None
            for tname, table in (("scores", scores), ("scores_groups", groups), ("neuron_scores", nscores),
                                 ("summary", summary)) + ((("bootstrap", _fake_bootstrap(summary, n_boot, seed)),)
                                                         if n_boot else ()):
                with atomic_write(out / f"{tname}.parquet") as tmp:
                    table.to_parquet(tmp, index=False)
            prov = dict(fake=True, parameters=dict(n_components=4096, alpha=1.0), timings=dict(total_s=1.5),
                        dataset=dict(path=str(dataset) if dataset else None, sha256=dataset_sha),
                        model_info=dict(name=name, source=source, model_class=mclass, task=task,
                                        task_cluster=cluster, n_parameters=n_params,
                                        imagenet_top1=None if np.isnan(top1) else top1, display_name=name))
            with atomic_write(out / "provenance.json") as tmp:
                tmp.write_text(json.dumps(prov))
    return neurons.set_index("cell_specimen_id")["reliability"]


def make_fake_dataset(path, n_neurons_per_area=8, n_stimuli=12, n_trials=6, seed=0, image_size=(8, 8)):
    """Write a tiny NetCDF dataset (the schema of docs/dataset.md) matching :func:`make_fake_results`'s neurons,
    with ``source="synthetic"`` and a ``ground_truth`` attribute (efficientnet_lite0, trained,
    per area the planted layer and relative depth).

    ``image_size`` (height, width) of the random stimuli: the default 8 x 8 for the tables'
    tests; a model run needs at least 16 pixels a side (e.g. (240, 307), as the synthetic mouse)."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    n_layers = FAKE_MODELS["efficientnet_lite0"][6]
    rows = []
    cid = 1000
    for area in AREAS:
        for k in range(n_neurons_per_area):
            rows.append((cid, area, CRE_LINES[k % len(CRE_LINES)], 175 + 100 * (k % 3)))
            cid += 1
    n = len(rows)
    signal = rng.normal(size=(n, n_stimuli, 1))
    noise_sd = np.tile(np.linspace(0.2, 1.5, n_neurons_per_area)[::-1], len(AREAS))[:, None, None]
    responses = (signal + rng.normal(size=(n, n_stimuli, n_trials)) * noise_sd).astype("float32")
    gt = dict(model="efficientnet_lite0", weights="trained",
              areas={a: dict(layer=f"layer{int(round(d * n_layers)):03d}", depth=d) for a, d in AREAS.items()})
    ds = xr.Dataset(
        dict(responses=(("neuron", "stimulus", "trial"), responses),
             stimuli=(("stimulus", "y", "x"), rng.integers(0, 255, (n_stimuli, *image_size), dtype=np.uint8))),
        coords=dict(cell_specimen_id=("neuron", np.array([r[0] for r in rows], dtype=np.int64)),
                    area=("neuron", np.array([r[1] for r in rows])),
                    cre_line=("neuron", np.array([r[2] for r in rows])),
                    imaging_depth=("neuron", np.array([r[3] for r in rows], dtype=np.int64)),
                    excitatory=("neuron", np.ones(n, dtype=bool)),
                    p_run_mod_ns=("neuron", np.full(n, 0.5)),
                    stimulus=np.arange(n_stimuli) - 1),
        attrs=dict(source="synthetic", description="fake dataset for tests of the results chapters",
                   ground_truth=json.dumps(gt)),
    )
    with atomic_write(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return path


#: the planted effects of :func:`paper_sized_specs` (checked by the claims tests)
PAPER_EFFECTS = dict(
    gain_srp_conv=0.03,            # trained minus random, SRP-Ridge, convolutional nets
    gain_srp_attention=0.09,       # the same for transformers and MLP-Mixers
    gain_rsa=0.15,                 # trained minus random, RSA, every class
    transformer_srp=+0.04,         # transformers against the others (trained), mean shift
    transformer_rsa=-0.06,
    transformer_sd=0.04,           # transformers vary more than the others (sd 0.01): Welch df ~ 10
    other_sd=0.01,
    depth_slope=0.0015,            # score per layer (pooled trained and random)
    params_rsa=-0.02,              # RSA per decade of trainable parameters
)


def paper_sized_specs(n_imagenet=90, n_transformers=10, n_mixers=2, seed=0) -> dict:
    """Specs of a paper-sized fake zoo (layout of :data:`FAKE_MODELS` plus the random levels),
    named after the paper's models (:func:`mbutils.claims.paper_models`).

    ``n_imagenet`` ImageNet architectures (``n_transformers`` transformers, ``n_mixers``
    MLP-Mixers, the rest convolutional; ``inception_resnet_v2`` the best in both metrics), the
    24 Taskonomy encoders (``segment_unsup2d`` the best) and the 3 baselines, with the effects of
    :data:`PAPER_EFFECTS` planted: trained beats random, by more for transformers and
    MLP-Mixers (SRP-Ridge); transformers score higher on SRP-Ridge and lower on RSA, with a
    larger spread than the others; deeper models (more layers) score higher; models with more
    parameters score lower on RSA; ImageNet top-1 is unrelated to the scores.

    Returns
    -------
    dict  name -> (source, model_class, task, task_cluster, n_parameters, imagenet_top1,
    n_layers, srp, rsa, srp_random, rsa_random)
    """
    from .claims import paper_models

    e = PAPER_EFFECTS
    rng = np.random.default_rng(seed)
    pm = paper_models()
    im = pm[pm["family"] == "imagenet"]
    tr = im[im["model_class"] == "Transformer"]["model"].tolist()[:n_transformers]
    mx = im[im["model_class"] == "MLP-Mixer"]["model"].tolist()[:n_mixers]
    conv = [m for m in im[im["model_class"] == "Convolutional"]["model"] if m != "inception_resnet_v2"]
    conv = ["inception_resnet_v2"] + conv[: n_imagenet - len(tr) - len(mx) - 1]
    if len(tr) < n_transformers or len(mx) < n_mixers or len(conv) + len(tr) + len(mx) < n_imagenet:
        raise ValueError(f"the paper's model set has too few models for n_imagenet={n_imagenet}, "
                         f"n_transformers={n_transformers}, n_mixers={n_mixers}")
    specs = {}
    for name in conv + tr + mx:
        cls = "Transformer" if name in tr else "MLP-Mixer" if name in mx else "Convolutional"
        n_layers = int(rng.integers(8, 31))
        depth_term = e["depth_slope"] * (n_layers - 19)
        sd = e["transformer_sd"] if cls == "Transformer" else e["other_sd"]
        srp = 0.16 + depth_term + (e["transformer_srp"] if cls == "Transformer" else 0) + rng.normal(0, sd)
        n_params = float(10 ** rng.uniform(6.5, 8.3))
        rsa = (0.38 + depth_term + e["params_rsa"] * (np.log10(n_params) - 7.4)
               + (e["transformer_rsa"] if cls == "Transformer" else 0) + rng.normal(0, sd))
        gain = e["gain_srp_conv"] if cls == "Convolutional" else e["gain_srp_attention"]
        srp_r = srp - gain + rng.normal(0, 0.005)
        rsa_r = rsa - e["gain_rsa"] + rng.normal(0, 0.01)
        specs[name] = ("timm", cls, "imagenet", "Semantic", n_params,
                       float(rng.uniform(60, 85)), n_layers, srp, rsa, srp_r, rsa_r)
    best = max(v[7] for v in specs.values()), max(v[8] for v in specs.values())
    v = specs["inception_resnet_v2"]
    specs["inception_resnet_v2"] = v[:7] + (best[0] + 0.01, best[1] + 0.01) + v[9:]
    tk = pm[(pm["family"] == "taskonomy") & (pm["model"] != "random_weights")]
    for r in tk.itertuples():
        srp, rsa = 0.15 + rng.normal(0, 0.01), 0.35 + rng.normal(0, 0.02)
        if r.model == "segment_unsup2d":
            srp, rsa = 0.22, 0.46
        cluster = "2D" if r.task_cluster == "Other" else r.task_cluster
        specs[r.model] = ("taskonomy", "Convolutional", "taskonomy", cluster, 23e6, np.nan, 16, srp, rsa,
                          srp - 0.03, rsa - 0.15)
    for k in ("gabor", "gist", "random_fourier"):
        specs[k] = FAKE_MODELS[k]
    return specs


def make_paper_results(folder, n_imagenet=90, n_transformers=10, n_mixers=2, n_neurons_per_area=2, seed=0,
                       dataset=None):
    """Write a paper-sized fake sweep (:func:`paper_sized_specs`) under ``folder``.

    Every ImageNet architecture and Taskonomy encoder is scored trained and random, the
    baselines once; about 210 model folders.

    Returns
    -------
    dict  the specs written (pass ``fake_metadata(specs)`` to ``load_run``).
    """
    specs = paper_sized_specs(n_imagenet=n_imagenet, n_transformers=n_transformers, n_mixers=n_mixers, seed=seed)
    make_fake_results(folder, n_neurons_per_area=n_neurons_per_area, seed=seed, dataset=dataset, specs=specs)
    return specs
