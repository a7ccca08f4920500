"""The synthetic mouse: an Allen-like dataset with a planted, documented ground truth.

Every offline run (tests, the default book) uses it. It looks like the Allen Brain Observatory
natural-scenes data to every downstream step:

- **Stimuli**: 118 natural grayscale scenes plus the blank screen (stimulus -1), see
  :mod:`mbutils.data.stimuli` (240 x 307 pixels, Allen's aspect ratio).
- **Recording structure**: neurons come in "experiments" (one imaging plane: one area, one Cre
  line, one imaging depth, one mouse's running behaviour), as in Allen. 6 areas (VISp, VISl,
  VISal, VISpm, VISrl, VISam); 10 excitatory and 3 inhibitory Cre lines (the ``excitatory``
  coordinate follows from the Cre line), about 10% inhibitory neurons; imaging depths 175, 275,
  375 and 550 um, by Cre line (e.g. Cux2 in layer 2/3-4, Ntsr1 at 550 um).
- **Planted ground truth**: the neurons of each area are driven by one layer of a frozen,
  ImageNet-trained EfficientNet-Lite0 (``efficientnet_lite0``, ``trained``), at a depth that rises
  along the hierarchy (:data:`AREA_DEPTHS`: VISp ~0.2 ... VISam ~0.7). A neuron's tuning is a
  sparse random readout of the layer's top ``n_components`` principal components (scaled by
  their singular values, so the population inherits the layer's representational geometry),
  z-scored, passed through a rectifier with a random threshold, scaled to a random amplitude.
  The layer name and relative depth per area are in ``ds.attrs["ground_truth"]`` (JSON).
- **Animals**: each experiment belongs to one of ``n_animals`` mice (default 6; the
  ``specimen_id`` coordinate). An area's experiments are dealt to the mice in turn, in a random
  order of the mice per area, so an area with ``e`` experiments spans ``min(e, n_animals)`` mice
  (4 to 6 per area at the default 5,000 neurons). Every mouse's neurons of an area read out the
  same planted layer; their readout weights, thresholds and trial noise are drawn independently,
  so the animals share the stimulus representation and nothing else. The assignment uses a
  random stream of its own: the responses do not depend on ``n_animals``.
- **Trials**: 50 per stimulus, each = tuning + baseline + Gaussian noise (noise SD log-normal
  around 0.25, like dF/F). Per-neuron signal-to-noise ratios (std of the tuning over stimuli /
  noise std per trial) are log-normal (``log10 snr ~ N(-1.05, 0.5)``): the expected split-half reliability of the 50-trial average is
  ``1 / (1 + 1 / (50 snr^2))`` and about 15% of neurons reach 0.8 (paper: 6,619 of 59,610 after
  all filters).
- **Running**: each experiment has a per-trial running speed (the mouse runs on a random 15-60%
  of trials at ~12 cm/s, otherwise ~0 cm/s). 25% of neurons are running-modulated: their
  response shifts by ``d`` noise standard deviations on running trials (``|d|`` uniform in
  1.2..2.5, 70% positive). ``p_run_mod_ns`` follows Allen's definition: Welch's t-test on the
  responses to the neuron's preferred scene, running (>= 1 cm/s) vs stationary trials.

Generation is deterministic for a seed and proceeds one experiment at a time (only the output
array is held in memory: 4 bytes x 119 x 50 per neuron, 1.4 GB for Allen's 60,000 neurons).
The default size, 5,000 neurons, keeps the default book to minutes; the file is about 140 MB (28 MB per 1,000 neurons: noisy float32 compresses little).
"""
from __future__ import annotations

import json

import numpy as np

from .dataset import NeuralDataset
from .selection import is_excitatory

__all__ = [
    "make_synthetic",
    "AREA_DEPTHS",
    "CRE_LINES",
    "DEFAULT_N_NEURONS",
    "DEFAULT_N_ANIMALS",
    "RUNNING_THRESHOLD",
    "running_modulation_pvalues",
]

#: default number of neurons of the embedded dataset
DEFAULT_N_NEURONS = 5000
#: default number of mice (``specimen_id`` values) the experiments are spread over
DEFAULT_N_ANIMALS = 6
#: ``specimen_id`` of the first mouse (Allen-like 9-digit ids)
_FIRST_SPECIMEN_ID = 400_000_000
#: target relative depth (in the generator's layer enumeration) of each area's driving layer
AREA_DEPTHS = {"VISp": 0.2, "VISrl": 0.3, "VISl": 0.35, "VISal": 0.45, "VISpm": 0.6, "VISam": 0.7}
#: share of experiments per area
AREA_SHARES = {"VISp": 0.28, "VISl": 0.2, "VISal": 0.16, "VISpm": 0.13, "VISrl": 0.1, "VISam": 0.13}
#: Cre line -> (share of neurons, imaging depths in um)
CRE_LINES = {
    "Cux2-CreERT2": (0.20, (175, 275)),
    "Emx1-IRES-Cre": (0.10, (175, 275, 375)),
    "Slc17a7-IRES2-Cre": (0.12, (175, 275, 375, 550)),
    "Rorb-IRES2-Cre": (0.09, (275,)),
    "Scnn1a-Tg3-Cre": (0.04, (275,)),
    "Nr5a1-Cre": (0.05, (275,)),
    "Rbp4-Cre_KL100": (0.08, (375,)),
    "Fezf2-CreER": (0.04, (375,)),
    "Tlx3-Cre_PL56": (0.07, (375,)),
    "Ntsr1-Cre_GN220": (0.08, (550,)),
    "Sst-IRES-Cre": (0.09, (275, 375)),
    "Vip-IRES-Cre": (0.08, (175, 275)),
    "Pvalb-IRES-Cre": (0.06, (275, 375)),
}
#: running speed (cm/s) at or above which a trial counts as running (Allen's definition)
RUNNING_THRESHOLD = 1.0

_SNR_LOG10_MEAN, _SNR_LOG10_SD = -1.05, 0.5
_RUNNING_FRACTION = 0.25
_N_COMPONENTS = 50


def running_modulation_pvalues(preferred_responses, running) -> np.ndarray:
    """Welch's t-test p-values, running vs stationary trials, one per neuron (Allen's ``p_run_mod_ns``).

    Parameters
    ----------
    preferred_responses : array of shape (n_neurons, n_trials)
        Each neuron's per-trial responses to its preferred image (NaN = missing trial).
    running : bool array of shape (n_neurons, n_trials)
        Whether the mouse ran (>= 1 cm/s) during each of those trials.

    Returns
    -------
    numpy.ndarray of shape (n_neurons,)
        Two-sided p-values; NaN where either group has fewer than 2 trials.
    """
    from scipy import stats

    x = np.asarray(preferred_responses, dtype=np.float64)
    run = np.asarray(running, dtype=bool)
    valid = np.isfinite(x)
    groups = []
    for mask in (run & valid, ~run & valid):
        n = mask.sum(axis=1)
        xs = np.where(mask, x, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = xs.sum(axis=1) / n
            var = (np.where(mask, x - mean[:, None], 0.0) ** 2).sum(axis=1) / (n - 1)
        groups.append((n, mean, var))
    (n1, m1, v1), (n2, m2, v2) = groups
    with np.errstate(invalid="ignore", divide="ignore"):
        se1, se2 = v1 / n1, v2 / n2
        t = (m1 - m2) / np.sqrt(se1 + se2)
        df = (se1 + se2) ** 2 / (se1**2 / (n1 - 1) + se2**2 / (n2 - 1))
        p = 2 * stats.t.sf(np.abs(t), df)
    p[(n1 < 2) | (n2 < 2)] = np.nan
    return p


def _plan_experiments(n_neurons: int, rng: np.random.Generator) -> list[dict]:
    """Split ``n_neurons`` into experiments (area, Cre line, depth, size, running propensity)."""
    areas = list(AREA_SHARES)
    area_p = np.array([AREA_SHARES[a] for a in areas])
    cres = list(CRE_LINES)
    cre_p = np.array([CRE_LINES[c][0] for c in cres])
    cre_p = cre_p / cre_p.sum()
    mean_size = 120.0
    n_exp = max(len(areas) * 4, int(round(n_neurons / mean_size)))
    plan = []
    for i in range(n_exp):
        area = areas[i] if i < len(areas) else str(rng.choice(areas, p=area_p))
        cre = str(rng.choice(cres, p=cre_p))
        if cre == "Scnn1a-Tg3-Cre" and area != "VISp":  # Scnn1a labels VISp layer 4 only
            cre = "Rorb-IRES2-Cre"
        depths = CRE_LINES[cre][1]
        plan.append({"area": area, "cre_line": cre, "imaging_depth": int(rng.choice(depths))})
    # sizes: neurons are split in proportion to the Cre line's share (inhibitory planes are small)
    weights = rng.gamma(4.0, 0.25, size=n_exp)
    # inhibitory lines label few cells per plane
    weights *= np.array([1.0 if is_excitatory(e["cre_line"]) else 0.5 for e in plan])
    sizes = np.floor(weights / weights.sum() * n_neurons).astype(int)
    sizes[np.argsort(-weights)[: n_neurons - sizes.sum()]] += 1
    for e, size in zip(plan, sizes):
        e["n_neurons"] = int(size)
        e["running_probability"] = float(rng.uniform(0.15, 0.6))
    return [e for e in plan if e["n_neurons"] > 0]


def _assign_animals(areas, n_animals: int, rng: np.random.Generator) -> np.ndarray:
    """The mouse (0..n_animals-1) of each experiment: per area, experiments dealt in turn.

    Parameters
    ----------
    areas : sequence of str, length n_experiments
        The area of each experiment, in plan order.
    n_animals : int
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray of shape (n_experiments,), int
        An area with ``e`` experiments spans ``min(e, n_animals)`` mice (a random order of the
        mice per area, in the order areas first appear).
    """
    areas = np.asarray(areas)
    out = np.empty(areas.size, dtype=np.int64)
    for area in dict.fromkeys(areas.tolist()):
        idx = np.flatnonzero(areas == area)
        order = rng.permutation(n_animals)
        out[idx] = order[np.arange(idx.size) % n_animals]
    return out


def make_synthetic(
    n_neurons: int = DEFAULT_N_NEURONS,
    seed: int = 0,
    n_trials: int = 50,
    n_components: int = _N_COMPONENTS,
    return_truth: bool = False,
    progress: bool | None = None,
    n_animals: int = DEFAULT_N_ANIMALS,
):
    """Generate the synthetic mouse (see the module docstring for the model and its ground truth).

    Parameters
    ----------
    n_neurons : int, default 5000
        Number of neurons (Allen has 59,610; generation is chunked by experiment).
    seed : int, default 0
        Everything except the stimuli (which are fixed, as in Allen) depends on it.
    n_trials : int, default 50
        Trials per stimulus.
    n_components : int, default 50
        Principal components of each driving layer that readouts draw from.
    return_truth : bool, default False
        Also return the per-neuron planted truth.
    progress : bool, optional
        Progress bar over experiments (default ``mbutils.get_config().progress``).
    n_animals : int, default 6
        Mice the experiments are spread over (``specimen_id``); the responses are the same for
        every value.

    Returns
    -------
    dataset : NeuralDataset
        ``source="synthetic"``; ``attrs["ground_truth"]`` is a JSON string with ``model``,
        ``weights``, ``n_layers``, ``n_animals`` and ``areas`` (area -> ``layer``, ``depth``,
        ``layer_index``); ``specimen_id`` (int64, along ``neuron``) is the mouse.
    truth : pandas.DataFrame, only with ``return_truth=True``
        One row per neuron (same order): ``cell_specimen_id``, ``area``, ``specimen_id``,
        ``experiment``, ``layer``,
        ``snr``, ``expected_reliability``, ``running_modulated``, ``running_effect`` (in noise SDs),
        ``threshold``, ``amplitude``, ``running_trials`` (on the preferred image).
    """
    import pandas as pd

    from . import _generator
    from .stimuli import make_stimuli

    n_neurons, n_trials, n_animals = int(n_neurons), int(n_trials), int(n_animals)
    if n_neurons < 1:
        raise ValueError(f"n_neurons must be >= 1, got {n_neurons}")
    if n_animals < 1:
        raise ValueError(f"n_animals must be >= 1, got {n_animals}")
    if n_trials < 4:
        raise ValueError(f"n_trials must be >= 4 (split halves and running tests), got {n_trials}")
    if progress is None:
        from ..config import get_config

        progress = get_config().progress

    stimuli, stimulus_ids = make_stimuli()
    n_stim = stimuli.shape[0]
    scenes = stimulus_ids >= 0
    chosen = _generator.choose_layers(AREA_DEPTHS)
    feats = _generator.layer_features(stimuli, [layer for layer, _ in chosen.values()])
    k = min(int(n_components), n_stim - 1)
    components = {area: _generator.principal_components(feats[layer], k) for area, (layer, _) in chosen.items()}
    del feats

    root = np.random.SeedSequence(seed)
    # the fourth stream (animals) leaves the first three, and so the responses, as they were
    plan_seed, id_seed, exp_seed, animal_seed = root.spawn(4)
    plan = _plan_experiments(n_neurons, np.random.default_rng(plan_seed))
    animal_rng = np.random.default_rng(animal_seed)
    specimen_ids = _FIRST_SPECIMEN_ID + np.cumsum(animal_rng.integers(1, 1000, size=n_animals)).astype(np.int64)
    animal_of = _assign_animals([e["area"] for e in plan], n_animals, animal_rng)
    exp_seeds = exp_seed.spawn(len(plan))
    ids = 500_000_000 + np.cumsum(np.random.default_rng(id_seed).integers(1, 40, size=n_neurons)).astype(np.int64)

    responses = np.empty((n_neurons, n_stim, n_trials), dtype=np.float32)
    meta = {key: [] for key in ("area", "cre_line", "imaging_depth", "specimen_id")}
    p_run = np.empty(n_neurons)
    truth_parts = []
    iterator = enumerate(zip(plan, exp_seeds))
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(plan), desc="synthetic mouse", unit="experiment")
    start = 0
    for e_index, (exp, sseq) in iterator:
        rng = np.random.default_rng(sseq)
        n = exp["n_neurons"]
        stop = start + n
        comps = components[exp["area"]]
        # running behaviour of this mouse during this session: (stimulus, trial)
        running = rng.random((n_stim, n_trials)) < exp["running_probability"]
        speed = np.where(running, rng.lognormal(np.log(12.0), 0.5, running.shape), np.abs(rng.normal(0, 0.2, running.shape)))
        running = speed >= RUNNING_THRESHOLD
        # tuning: sparse random readout of the layer's principal components, rectified
        weights = rng.standard_normal((k, n)) * (rng.random((k, n)) < 0.2)
        weights[rng.integers(0, k, n), np.arange(n)] += rng.standard_normal(n)
        drive = comps @ weights
        drive = (drive - drive.mean(0)) / drive.std(0)
        threshold = rng.uniform(-0.5, 1.2, n)
        tuning = np.maximum(drive - threshold, 0.0)
        noise_sd = rng.lognormal(np.log(0.25), 0.3, n)
        snr = 10 ** rng.normal(_SNR_LOG10_MEAN, _SNR_LOG10_SD, n)
        amplitude = snr * noise_sd
        tuning *= amplitude / np.maximum(tuning.std(0), 1e-12)
        modulated = rng.random(n) < _RUNNING_FRACTION
        effect = np.where(modulated, rng.uniform(1.2, 2.5, n) * np.where(rng.random(n) < 0.7, 1.0, -1.0), 0.0)
        baseline = rng.normal(0.0, 0.01, n)
        block = rng.standard_normal((n, n_stim, n_trials), dtype=np.float32)
        block *= noise_sd[:, None, None].astype(np.float32)
        block += (tuning.T + baseline[:, None])[:, :, None].astype(np.float32)
        block += (effect * noise_sd)[:, None, None].astype(np.float32) * running[None].astype(np.float32)
        responses[start:stop] = block
        # Allen's p_run_mod_ns: Welch t-test on the preferred scene, running vs stationary
        mean_resp = block.mean(axis=2)
        scene_idx = np.flatnonzero(scenes)
        preferred = scene_idx[np.argmax(mean_resp[:, scenes], axis=1)]
        pref = block[np.arange(n), preferred]
        p_run[start:stop] = running_modulation_pvalues(pref, running[preferred])
        meta["area"] += [exp["area"]] * n
        meta["cre_line"] += [exp["cre_line"]] * n
        meta["imaging_depth"] += [exp["imaging_depth"]] * n
        meta["specimen_id"] += [int(specimen_ids[animal_of[e_index]])] * n
        truth_parts.append(
            pd.DataFrame(
                {
                    "experiment": e_index,
                    "layer": chosen[exp["area"]][0],
                    "snr": snr,
                    "expected_reliability": 1.0 / (1.0 + 1.0 / (n_trials * snr**2)),
                    "running_modulated": modulated,
                    "running_effect": effect,
                    "threshold": threshold,
                    "amplitude": amplitude,
                    "running_trials": running[preferred].sum(axis=1),
                }
            )
        )
        start = stop

    excitatory = np.array([is_excitatory(c) for c in meta["cre_line"]])
    ground_truth = {
        "model": _generator.GENERATOR_MODEL,
        "weights": _generator.GENERATOR_WEIGHTS,
        "n_layers": len(_generator.generator_layers()),
        "layer_enumeration": "leaf modules with a tensor output, in call order, identity/in-place duplicates dropped",
        "areas": {
            area: {
                "layer": layer,
                "depth": round(float(depth), 6),
                "layer_index": next(i for name, i, _, _ in _generator.generator_layers() if name == layer),
                "target_depth": AREA_DEPTHS[area],
            }
            for area, (layer, depth) in chosen.items()
        },
        "n_components": k,
        "snr_log10": [_SNR_LOG10_MEAN, _SNR_LOG10_SD],
        "running_modulated_fraction": _RUNNING_FRACTION,
        "n_animals": n_animals,
        "seed": int(seed),
    }
    description = (
        f"Synthetic mouse (mbutils.data.make_synthetic, seed={seed}): {n_neurons} neurons in "
        f"{len(plan)} experiments of {len(set(animal_of.tolist()))} mice, 6 areas, responses to 118 natural scenes + blank, {n_trials} trials; "
        "each area's neurons are driven by one layer of an ImageNet-trained EfficientNet-Lite0 "
        "(see attrs ground_truth)."
    )
    dataset = NeuralDataset.from_arrays(
        responses,
        stimuli,
        cell_specimen_id=ids,
        area=np.array(meta["area"]),
        cre_line=np.array(meta["cre_line"]),
        imaging_depth=np.array(meta["imaging_depth"]),
        excitatory=excitatory,
        p_run_mod_ns=p_run,
        specimen_id=np.array(meta["specimen_id"], dtype=np.int64),
        stimulus=stimulus_ids,
        source="synthetic",
        description=description,
        attrs={"ground_truth": json.dumps(ground_truth)},
    )
    if not return_truth:
        return dataset
    truth = pd.concat(truth_parts, ignore_index=True)
    truth.insert(0, "cell_specimen_id", ids)
    truth.insert(1, "area", meta["area"])
    truth.insert(2, "specimen_id", np.array(meta["specimen_id"], dtype=np.int64))
    return dataset, truth
