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
# Why sparse random projection and ridge regression? The paper's appendix A.5 compared
# neural-regression mappings on speed and accuracy: PCA against sparse random projections
# (SRP) against random subsets of features, at several sizes, followed by ridge regression
# (generalised or k-fold cross-validation) or partial least squares (PLS, 10 or 25
# components). It found PCA slow and no better, PLS slower than ridge for the same score,
# and 4096 projections as good as 8192. This page repeats the comparison on a few layers of
# one model, and checks that SRP-Ridge agrees with exact ridge on all features.

# %% tags=["parameters", "hide-input"]
dataset = "data/synthetic.nc"  # dataset file
validation_model = "alexnet"  # registry name of the model whose layers are compared
validation_weights = "random"  # "trained" or "random"
validation_neurons = 500  # at most this many reliable neurons
n_layers = 3  # layers compared, evenly spaced over depth
n_splits = 10  # random trial splits of the neuron selection
n_components = [1024, 2048, 4096, 8192]  # reduction sizes
regressions = ["ridge_gcv", "ridge_kfold", "pls10", "pls25"]  # regressions compared

# %% tags=["remove-input"]
from mbutils.pages import dataset_banner
from mbutils.plots import plot_mapping_tradeoff
from mbutils.scoring import compare_mappings, mapping_agreement, mapping_validation_data, summarize_mappings

dataset_banner(dataset)

# %% [markdown]
# ## Inputs
#
# The responses of the reliable neurons (trial-averaged, natural scenes only) and the
# features of a few layers of the validation model.

# %%
features, responses = mapping_validation_data(validation_model, validation_weights, dataset,
                                              n_layers=n_layers, n_neurons=validation_neurons, n_splits=n_splits)
{name: x.shape for name, x in features.items()}, responses.shape

# %% [markdown]
# ## Score against compute time (paper Figure 5)

# %%
comparison = compare_mappings(features, responses, n_components=n_components, regressions=regressions,
                              progress=False)
fig = plot_mapping_tradeoff(comparison[~comparison["penalty_dominated"]])

# %% [markdown]
# Means over the layers. Rows where ridge by GCV is penalty-dominated (the layer's features so
# small against alpha = 1 that every neuron's leave-one-out r is at most -0.87: a measure of the
# penalty, not of the mapping) are left out of the figure and of these means, and counted in
# `n_flagged`.

# %%
summarize_mappings(comparison).round(4)

# %% [markdown]
# ## SRP-Ridge against exact ridge
#
# The same leave-one-out ridge regression on all of a layer's features and on their 4096
# sparse random projections: mean scores, and the correlation of the per-neuron scores.

# %%
mapping_agreement(features, responses).round(4)
