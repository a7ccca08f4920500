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
# # Model card
#
# One model of the sweep, scored on the neural data with both of the paper's metrics
# (section 2.4): **SRP-Ridge** (sparse random projection to 4096 dimensions, ridge regression
# with leave-one-out cross-validation, Pearson r per neuron, mean per area) and **RSA**
# (Pearson r between the upper triangles of the layer's and the area's image-by-image
# correlation matrices). `mbutils sweep` / `make book` scores each model and then renders
# this card from the stored tables; the card only reads them. To see another model, score it
# (`mbutils score MODEL --dataset FILE --out FOLDER`) and set `scores` below to its folder.

# %% tags=["parameters", "hide-input"]
model = "efficientnet_lite0"  # model name (`mbutils models`)
weights = "trained"  # "trained" or "random"
dataset = "data/synthetic.nc"  # dataset file the scores come from (schema in docs/dataset.md)
scores = "results/smoke/models/efficientnet_lite0__trained"  # folder written by `mbutils score`

# %% tags=["remove-input"]
from IPython.display import Markdown

from mbutils.pages import dataset_banner, model_info_table
from mbutils.plots import plot_layer_profile
from mbutils.results import load_model_results
from mbutils.stats import best_layers_table, penalty_note

dataset_banner(dataset)

# %% tags=["remove-input"]
model_info_table(model, weights)

# %% [markdown]
# ## Scores
#
# The tables the scoring wrote for this model (layer x area scores, per-neuron scores, the
# summary and the run's provenance).

# %%
tables = load_model_results(scores)
tables["provenance"]["created"] if "created" in tables.get("provenance", {}) else scores

# %% [markdown]
# ## Layer-by-layer profile
#
# Each line is one visual area; the x axis is the layer's relative depth in the network
# (0: input side, 1: output side). The paper's "Max" scores are the maximum over layers.
#
# Two SRP-Ridge profiles: the paper's, with the ridge penalty fixed at alpha = 1 for every
# layer, and a **scale-aware** one, with alpha times the mean eigenvalue of the layer's
# centered Gram matrix (the same for a layer and any rescaling of it). A fixed alpha is not
# scale invariant: on a layer whose activations are tiny (randomly initialized networks whose
# activations shrink with depth), the penalty dominates and every neuron scores near -1.
# Such **penalty-dominated** layers are drawn as grey crosses and left out of the maxima.

# %% tags=["remove-input"]
Markdown(penalty_note(tables["scores"]))

# %%
fig = plot_layer_profile(tables["scores"], title=f"{model} ({weights})")

# %% [markdown]
# ## Best layer per area
#
# `max_score` is the paper's SRP-Ridge Max / RSA Max (and the scale-aware SRP-Ridge's);
# `unbiased_score` chooses the best layer on odd trials and scores it on even trials (and vice
# versa), removing the optimistic bias of taking a maximum; `ceiling` is the area's noise
# ceiling; `n_flagged` counts the penalty-dominated layers left out.

# %%
best_layers_table(tables["summary"]).round(3)
