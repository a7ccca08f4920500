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
# # Neural data
#
# The paper uses the Allen Brain Observatory's two-photon calcium imaging of mouse visual
# cortex responding to 118 natural scenes, 50 trials each (section 2.1). Neurons are kept when
# they belong to an excitatory Cre line, are not significantly modulated by running, and have
# a split-half reliability of at least 0.8 (25 vs 25 trials, Spearman-Brown corrected).

# %% tags=["parameters", "hide-input"]
dataset = "data/synthetic.nc"  # dataset file
threshold = 0.8  # split-half reliability threshold
n_splits = 10  # random trial splits for the reliabilities

# %% tags=["remove-input"]
from mbutils.pages import area_glossary, dataset_banner
from mbutils.data import load_dataset, select_neurons
from mbutils.plots import plot_reliability_distributions, plot_selection_funnel
from mbutils.reliability import rdm_reliability_by_area, reliability_table

dataset_banner(dataset)

# %% [markdown]
# ## The selection funnel

# %%
data = load_dataset(dataset)
selected, report = select_neurons(data, threshold=threshold, n_splits=n_splits)
report

# %%
fig = plot_selection_funnel(report.steps)

# %% [markdown]
# ## Reliability by area and Cre line
#
# Split-half reliability of every excitatory neuron; the dashed line is the threshold.

# %%
reliability = reliability_table(data, report.reliability, threshold)
fig = plot_reliability_distributions(reliability, threshold)

# %%
reliability.groupby("area")["reliable"].agg(["size", "sum", "mean"]).rename(
    columns={"size": "neurons", "sum": "reliable", "mean": "fraction"}).round(3)

# %% [markdown]
# ## RDM reliability per area (the RSA ceiling)
#
# The split-half reliability of each area's representational dissimilarity matrix (selected
# neurons, scenes only) bounds the RSA score any model can reach: the explainable-variance
# ceiling is its square root.

# %%
rdm_reliability_by_area(selected.scenes(), n_splits=n_splits).round(3)

# %% [markdown]
# ## Areas of mouse visual cortex (paper Figure 11)

# %%
area_glossary()
