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
