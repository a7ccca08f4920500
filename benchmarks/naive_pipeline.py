"""The straightforward pipeline, written plainly from the paper's description (the baseline).

Extract all layers into memory; per layer, sklearn SparseRandomProjection to 4096 components,
sklearn RidgeCV(alpha=1) with stored leave-one-out predictions, scipy pearsonr per neuron,
mean per area; numpy corrcoef RDMs compared with scipy pearsonr. No attempt at speed.

``projection="ours"`` swaps sklearn's random matrix for mbutils' matrix of the same shape
(sklearn's ``components_`` replaced after ``fit``), so that the scores of the two pipelines
can be compared number for number.
"""
from __future__ import annotations

import numpy as np
import scipy.stats
from sklearn.linear_model import RidgeCV
from sklearn.random_projection import SparseRandomProjection


def run_naive(model, stimuli, responses, areas, n_components=4096, seed=0, projection="sklearn"):
    """Score all layers of ``model`` the plain way.

    Parameters
    ----------
    model : mbutils.models.FeatureModel
    stimuli : uint8 array (n_stimuli, height, width)
    responses : array (n_stimuli, n_neurons), trial-averaged
    areas : array (n_neurons,)
    projection : {"sklearn", "ours"}

    Returns
    -------
    dict with ``layers`` (names), ``srp_ridge`` (n_layers, n_areas), ``rsa`` (n_layers, n_areas),
    ``neuron`` (n_layers, n_neurons), ``areas`` (names)
    """
    feats = []  # every layer, in memory at once
    model.run(stimuli, lambda layer, f: feats.append((layer.name, f.cpu().numpy().copy())), progress=False)
    area_names = sorted(set(areas))
    neural_rdms = {a: np.corrcoef(responses[:, areas == a]) for a in area_names}
    iu = np.triu_indices(responses.shape[0], k=1)
    out = {"layers": [], "srp_ridge": [], "rsa": [], "neuron": [], "areas": area_names}
    for name, X in feats:
        if X.shape[1] > n_components:
            srp = SparseRandomProjection(n_components=n_components, density="auto", random_state=seed)
            srp.fit(X)
            if projection == "ours":
                from mbutils.reduction import SparseRandomProjection as Ours

                srp.components_ = Ours(n_components, seed=seed).matrix(X.shape[1]).T.tocsr().astype(np.float64)
            Z = srp.transform(X)
        else:
            Z = X
        ridge = RidgeCV(alphas=[1.0], store_cv_results=True, scoring="explained_variance")
        ridge.fit(Z, responses)
        pred = ridge.cv_results_[:, :, 0]
        r = np.array([scipy.stats.pearsonr(pred[:, j], responses[:, j])[0] for j in range(responses.shape[1])])
        layer_rdm = np.corrcoef(X)
        out["layers"].append(name)
        out["neuron"].append(r)
        out["srp_ridge"].append([np.nanmean(r[areas == a]) for a in area_names])
        out["rsa"].append([scipy.stats.pearsonr(layer_rdm[iu], neural_rdms[a][iu])[0] for a in area_names])
    for k in ("srp_ridge", "rsa", "neuron"):
        out[k] = np.asarray(out[k])
    return out


def run_reference(model, stimuli, responses, areas, n_components=4096, seed=0, alpha=1.0, layers=None):
    """The paper's pipeline in float64 throughout, one layer at a time (the exactness reference).

    Per layer: the activations in float64; the projection by mbutils' matrix (the same
    random matrix as ``score_model``, as a float64 ``scipy.sparse`` product, layers of at most
    ``n_components`` features kept as they are); sklearn ``RidgeCV(alphas=[alpha])`` with stored
    leave-one-out predictions; scipy ``pearsonr`` per neuron; numpy ``corrcoef`` RDMs compared
    with scipy ``pearsonr``. Streams the layers (nothing but the current one in memory), so it
    runs on networks whose layers would not fit in memory together.

    Parameters
    ----------
    model : mbutils.models.FeatureModel
    stimuli : uint8 array (n_stimuli, height, width)
    responses : array (n_stimuli, n_neurons), trial-averaged
    areas : array (n_neurons,)
    layers : collection of str, optional
        Only these layers (default: all).

    Returns
    -------
    dict as :func:`run_naive`, plus ``features_abs_max`` (per layer, the largest absolute
    activation).
    """
    import warnings

    from mbutils.reduction import SparseRandomProjection as Ours

    responses = np.asarray(responses, dtype=np.float64)
    area_names = sorted(set(areas))
    neural_rdms = {a: np.corrcoef(responses[:, areas == a]) for a in area_names}
    iu = np.triu_indices(responses.shape[0], k=1)
    out = {"layers": [], "srp_ridge": [], "rsa": [], "neuron": [], "areas": area_names, "features_abs_max": []}
    srp = Ours(n_components, seed=seed)

    def one(layer, f):
        if layers is not None and layer.name not in layers:
            return
        X = f.cpu().numpy().astype(np.float64)
        Z = (srp.matrix(X.shape[1]).T.astype(np.float64) @ X.T).T if X.shape[1] > n_components else X
        ridge = RidgeCV(alphas=[alpha], store_cv_results=True, scoring="explained_variance")
        ridge.fit(np.asarray(Z), responses)
        pred = ridge.cv_results_[:, :, 0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant inputs: NaN, as mbutils
            r = np.array([scipy.stats.pearsonr(pred[:, j], responses[:, j])[0]
                          for j in range(responses.shape[1])])
            layer_rdm = np.corrcoef(X)
            rsa = [scipy.stats.pearsonr(layer_rdm[iu], neural_rdms[a][iu])[0] for a in area_names]
        out["layers"].append(layer.name)
        out["neuron"].append(r)
        out["srp_ridge"].append([np.nanmean(r[areas == a]) for a in area_names])
        out["rsa"].append(rsa)
        out["features_abs_max"].append(float(np.abs(X).max()))

    model.run(stimuli, one, progress=False)
    for k in ("srp_ridge", "rsa", "neuron"):
        out[k] = np.asarray(out[k])
    return out
