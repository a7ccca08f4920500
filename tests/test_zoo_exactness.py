"""Every model variant that runs offline, scored on a small synthetic mouse, layer by layer against
a plain float64 reference on the same projected features (slow: `make test-slow`).

The reference: scikit-learn's ``RidgeCV`` leave-one-out values on the projected features
(float64), scipy's ``pearsonr`` per neuron, mean per area; numpy's ``corrcoef`` of the layer's
activations in float64, compared with the area's RDM by scipy's ``pearsonr``. Models whose
activations explode or vanish with depth (random Inception-V3, EfficientNet-Lite, GoogLeNet,
MobileNet-V2) are the point: their Gram matrices lie far above or below alpha.
"""
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from sklearn.linear_model import RidgeCV

N_STIMULI = 24
N_PER_AREA = 10  # neurons per area (scipy's pearsonr runs once per neuron and layer)
#: largest difference allowed between our scores and the float64 reference
AREA_TOL = 1e-6
NEURON_TOL = 1e-6


def _variants():
    from mbutils.models import list_models

    table = list_models()
    out = [(n, "random") for n, t in zip(table.name, table.train_types) if "random" in t.split()]
    out += [(n, "trained") for n in table.name[table.trained_available]]
    return out


class _ReferenceRDM:
    """Test reducer: the layer's ``numpy.corrcoef`` in float64 (the reference RDM)."""

    key = "test-reference-corrcoef"
    rowwise = False

    def __call__(self, features):
        x = features.detach().cpu().numpy().astype(np.float64) if hasattr(features, "detach") else \
            np.asarray(features, dtype=np.float64)
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.corrcoef(x)


@pytest.fixture(scope="module")
def mouse():
    from mbutils.data import make_synthetic, select_neurons
    from mbutils.scoring.pipeline import _targets_from_dataset

    ds = make_synthetic(n_neurons=800, seed=3, progress=False).scenes()
    sel, _ = select_neurons(ds, threshold=0.8, progress=False)
    targets, _ = _targets_from_dataset(sel)
    cols = np.concatenate([np.flatnonzero(targets.neurons["area"].to_numpy() == a)[:N_PER_AREA]
                           for a in pd.unique(targets.neurons["area"])])
    targets.neurons = targets.neurons.iloc[cols].reset_index(drop=True)
    targets.y, targets.y_odd, targets.y_even = targets.y[:, cols], targets.y_odd[:, cols], targets.y_even[:, cols]
    targets.trials = targets.trials[cols]
    keep = slice(0, N_STIMULI)
    targets.y, targets.y_odd, targets.y_even = targets.y[keep], targets.y_odd[keep], targets.y_even[keep]
    targets.trials = targets.trials[:, keep]
    return np.asarray(sel.stimuli.values)[keep], targets


def _reference_regression(Z, Y):
    Z = np.asarray(Z, dtype=np.float64)
    zc = Z - Z.mean(0)
    if np.sum(zc * zc) <= 1e-10 * max(np.sum(Z * Z), np.finfo(float).tiny):
        return np.full(Y.shape[1], np.nan)  # constant layer (to float32 resolution): NaN, as mbutils
    ridge = RidgeCV(alphas=[1.0], store_cv_results=True, scoring="explained_variance").fit(Z, Y)
    pred = ridge.cv_results_[:, :, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([scipy.stats.pearsonr(pred[:, j], Y[:, j])[0] for j in range(Y.shape[1])])


@pytest.mark.slow
@pytest.mark.parametrize("name,weights", _variants())
def test_every_layer_equals_the_float64_reference(name, weights, mouse):
    from mbutils.models import extract, load_model
    from mbutils.reduction import RDMReducer, SparseRandomProjection
    from mbutils.scoring.pipeline import score_reduced

    stimuli, targets = mouse
    model = load_model(name, weights=weights, device="cpu")
    fs = extract(model, stimuli, {"regression": SparseRandomProjection(4096), "rdm": RDMReducer(),
                                  "reference": _ReferenceRDM()}, cache=False, progress=False)
    # ours (with the self-check on: a perfect or above-ceiling score raises)
    tables = score_reduced(fs.layers, fs["regression"], fs["rdm"], targets, model=name, train_type=weights,
                            groupings=(), progress=False)
    sc, ns = tables["scores"], tables["neuron_scores"]
    Y = targets.y
    areas = targets.neurons["area"].to_numpy()
    iu = np.triu_indices(Y.shape[0], 1)
    neural = {a: np.corrcoef(Y[:, areas == a])[iu] for a in np.unique(areas)}
    worst = {"area": 0.0, "neuron": 0.0, "rsa": 0.0}
    where = {}  # layer and area of each largest difference

    def note(kind, diff, layer, area=None):
        if diff > worst[kind]:
            worst[kind], where[kind] = diff, (layer, area)

    problems = []
    for i, layer in enumerate(fs.layers["name"]):
        r = _reference_regression(fs["regression"][i], Y)
        got = ns.loc[ns["layer"] == layer, "score"].to_numpy()
        if not np.array_equal(np.isnan(got), np.isnan(r)):
            problems.append(f"{layer}: NaN pattern differs ({int(np.isnan(got).sum())} vs {int(np.isnan(r).sum())})")
            continue
        ok = ~np.isnan(r)
        if ok.any():
            note("neuron", float(np.abs(got[ok] - r[ok]).max()), layer)
        rows = sc[(sc["layer"] == layer) & (sc["metric"] == "srp_ridge")].set_index("area")["score"]
        ref_rdm = fs["reference"][i]
        for a in neural:
            m = areas == a
            want = np.nanmean(r[m]) if np.isfinite(r[m]).any() else np.nan
            if np.isfinite(want) or np.isfinite(rows[a]):
                note("area", abs(float(rows[a]) - want), layer, a)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tri = ref_rdm[iu]
                # NaN for RDMs without stimulus information float64 can carry, as mbutils
                # (mbutils.scoring.pipeline.RDM_INDISTINCT)
                want_rsa = scipy.stats.pearsonr(tri, neural[a])[0] \
                    if np.isfinite(tri).all() and np.std(tri) > 1e-8 else np.nan
            got_rsa = float(sc[(sc["layer"] == layer) & (sc["metric"] == "rsa") & (sc["area"] == a)]["score"].iloc[0])
            if np.isnan(want_rsa) != np.isnan(got_rsa):
                problems.append(f"{layer} {a}: RSA NaN pattern differs ({got_rsa} vs {want_rsa})")
            elif np.isfinite(want_rsa):
                note("rsa", abs(got_rsa - want_rsa), layer, a)
    print(f"{name} ({weights}): {len(fs.layers)} layers, largest differences {worst}, "
          f"{int(sc['penalty_dominated'].groupby(sc['layer']).first().sum())} penalty-dominated, at {where}")
    assert not problems, problems[:10]
    assert worst["area"] <= AREA_TOL and worst["rsa"] <= AREA_TOL and worst["neuron"] <= NEURON_TOL, (worst, where)
