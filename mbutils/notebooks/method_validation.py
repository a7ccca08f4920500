# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Method validation
#
# Why sparse random projection and ridge regression? Appendix A.5 of the paper compared
# neural-regression mappings on speed and accuracy, starting from Brain-Score's: principal
# components computed on the features of an auxiliary set of held-out ImageNet images (9,216
# of them), the stimuli's features projected on those components, then partial least squares
# (PLS) regression with 25 components. Its Figure 5 plots score against compute time for PLS-25
# after PCA, sparse random projections (SRP) and random subsets of features at 1,024 to 8,192
# dimensions, with a reference regression on all of a layer's features. The paper found that:
#
# - "approaches involving PCA were doubly suboptimal, taking orders of magnitude longer to
#   compute, and actually costing a nontrivial portion of score";
# - PLS with "10 components yielded scores comparable (if not equivalent) with those of twice or
#   thrice as many components";
# - "using 4096 sparse random projections was roughly comparable to using 8192 sparse random
#   projections", at about 0.75 of the compute time;
# - ridge regression ran in about 0.29 s what PLS with 10 components ran in about 1.31 s, with a
#   0.004 difference in average R², and generalized cross-validation cut the time of k-fold
#   cross-validation from about 1.05 s to 0.25 s.
#
# This page repeats the comparison on a few layers of one model: PCA fitted on an auxiliary
# image set, SRP and random subsets at several sizes, and all features, each followed by ridge
# by generalized (leave-one-out) cross-validation, ridge by k-fold cross-validation, or PLS with
# 10 or 25 components by k-fold cross-validation. Every mapping is scored the same way: the
# Pearson r between cross-validated predictions and responses, per neuron, averaged.

# %% tags=["parameters", "hide-input"]
dataset = "data/synthetic.nc"  # dataset file
validation_model = "alexnet"  # registry name of the model whose layers are compared
validation_weights = "random"  # "trained" or "random"
validation_neurons = 500  # at most this many reliable neurons
n_layers = 3  # layers compared, evenly spaced over the layers that carry signal
n_splits = 10  # random trial splits of the neuron selection
n_components = [1024, 2048, 4096, 8192]  # reduction sizes
regressions = ["ridge_gcv", "ridge_kfold", "pls10", "pls25"]  # regressions compared
reductions = ["pca", "srp", "subset", "none"]  # "none": all features, the figure's reference lines
n_reference = 2048  # images of the auxiliary set PCA is fitted on
smoke = False  # smoke-sized run: a smaller image set

# %% tags=["remove-input"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from mbutils.pages import dataset_banner
from mbutils.plots import plot_mapping_tradeoff
from mbutils.scoring import compare_mappings, mapping_agreement, summarize_mappings
from mbutils.scoring.mappings import describe_mappings, mapping_validation_data

n_images = min(n_reference, 600) if smoke else n_reference
dataset_banner(dataset)

# %% [markdown]
# ## Inputs
#
# The responses of the reliable neurons (trial-averaged, natural scenes only) and the features
# of a few layers of the validation model. Every layer is first screened on the stimuli: a layer
# whose features are constant across stimuli, whose ridge predictions at the paper's alpha = 1
# are penalty-dominated (every neuron's leave-one-out r at most -0.87), or which is nearly
# constant against that penalty (fewer than one effective degree of freedom of the ridge fit:
# its predictions are mostly the leave-one-out mean) does not carry signal for this
# comparison. The layers compared are spread evenly over the others.
#
# PCA is fitted, as in the paper, on the layer's features for an auxiliary image set: crops of
# the same scikit-image photographs as the stimuli but at other scales and positions (no image of
# the set is a stimulus), grayscale and at the stimuli's size. The paper used 9,216 ImageNet
# images; here the set holds `n_images` crops (2,048 in the full book, 600 in smoke runs), which
# keeps the page within a few minutes on 2 CPU cores. PCA then has up to `n_images - 1`
# components, where PCA fitted on the 118 stimuli alone has at most 117: the first size above
# that rank is shown capped (column `n_features_used`), and larger PCA sizes, which would repeat
# it, are not shown (`n_reference` sets the image set's size). Sparse random projections and random subsets fit nothing (a
# projection matrix depends only on the layer's number of features), so they are drawn once per
# layer and applied to the stimuli directly.

# %%
data = mapping_validation_data(validation_model, validation_weights, dataset, n_layers=n_layers,
                               n_neurons=validation_neurons, n_splits=n_splits, n_reference=n_images,
                               progress=False)
display(Markdown(f"{data.responses.shape[1]} neurons, {data.responses.shape[0]} stimuli; "
                 f"{len(data.layers)} layers screened, {int(data.layers['carries_signal'].sum())} carry signal, "
                 f"compared: {', '.join(data.features)}; image set: {data.n_reference} images "
                 f"({data.reference_s:.0f} s of forward passes, not counted in the times below)."))
data.layers.loc[data.layers["chosen"], ["layer", "index", "n_features", "relative_spread", "effective_df"]].round(3)

# %% [markdown]
# Layers that do not carry signal, and why (not compared, not averaged in):

# %%
Markdown("\n".join(f"- `{row.layer}` (layer {row.index}, {row.n_features:,} features): {row.reason}"
                   for row in data.skipped.itertuples()) or "Every layer carries signal.")

# %% [markdown]
# ## Score against compute time (paper Figure 5)
#
# First panel: the means over the layers compared (the model); then one panel per layer. Times
# are per layer: reducing the stimuli's features (for PCA, fitting it on the image set
# included: one eigendecomposition serves every size) plus the cross-validated regression of
# all neurons. Dashed lines: each regression on all features, the paper's reference point.

# %%
comparison = compare_mappings(data.features, data.responses, reductions=reductions, n_components=n_components,
                              regressions=regressions, reference=data.reference, progress=False)
fig = plot_mapping_tradeoff(comparison)
display(fig)
plt.close(fig)

# %% [markdown]
# Means over the layers compared. Rows where ridge by GCV is penalty-dominated on the reduced
# features would be left out and counted in `n_flagged`; `n_components` 0 is the all-features
# reference.

# %%
summarize_mappings(comparison).round(4)

# %% [markdown]
# Layer by layer, the regressions on the sparse random projection of the paper's size (4,096, or
# the largest size compared): mean Pearson r over neurons.

# %%
srp_size = 4096 if 4096 in n_components else max(n_components)
comparison[(comparison["reduction"] == "srp") & (comparison["n_components"] == srp_size)].pivot(
    index="layer", columns="regression", values="score").reindex(list(data.features)).round(4)

# %% [markdown]
# Every row, per layer (`n_unconverged`: PLS fits stopped at their iteration limit; `fit_s`:
# fitting PCA on the image set).

# %%
comparison.drop(columns=["mapping"]).round(4)

# %% [markdown]
# ## SRP-Ridge against exact ridge
#
# The same leave-one-out ridge regression (alpha = 1) on all of a layer's features and on their
# 4,096 sparse random projections, the model cards' SRP-Ridge: mean scores, and the correlation
# of the per-neuron scores. Its `score_srp` column is the `srp` + `ridge_gcv` row at 4,096 of the
# comparison above.

# %%
agreement = mapping_agreement(data.features, data.responses)
agreement.round(4)

# %% [markdown]
# ## Summary

# %%
Markdown(describe_mappings(comparison))
