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
# # Ceilings: split-half and mouse-to-mouse
#
# A score means little without the score the data allow. This page sets two ceilings beside
# each area's scores.
#
# **The split-half ceiling** (the paper's, sections 2.1 and 4; the `ceiling` column of the score
# tables). Each neuron's trials are split in halves of 25, the two half-averages correlated and
# Spearman-Brown corrected: the reliability of the 50-trial average. No prediction of a neuron can
# correlate with its trial average better than the square root of that reliability, so the
# SRP-Ridge ceiling is the mean over the area's neurons of `sqrt(reliability)`; the RSA ceiling is
# the square root of the area RDM's split-half reliability (the paper's "explainable variance" of
# section 4 is its square). It bounds what *any* model can reach, trial-to-trial noise being the
# only loss it counts.
#
# **The mouse-to-mouse ceiling** (Nayebi et al. 2023). Each animal is held out in turn and the
# pooled neurons of the other animals are scored as a model of it, with the models' mapping:
# for SRP-Ridge the other animals' trial-averaged responses to the 118 scenes are the features,
# ridge regression with the paper's `alpha = 1`, leave-one-out predictions, Pearson r per
# held-out neuron, averaged over the animal's neurons; for RSA the Pearson r between the held-out
# animal's RDM and the other animals' pooled RDM. The ceiling is the mean over animals. It
# measures how well one brain predicts another: it also counts the differences between animals
# (their neurons are different samples, with tuning of their own) and the size of the populations
# (a few neurons span few dimensions; an RDM of a few neurons is noisy).
#
# **Normalized scores above 1.** No model can exceed the split-half ceiling except by chance. The
# mouse-to-mouse ceiling is a lower bound on what is predictable, set by how well other animals
# predict one, not a bound on models: a model fitted with the same mapping may predict an animal
# better than a few other animals' neurons do (it has thousands of features and no trial noise),
# and its score divided by the mouse-to-mouse ceiling then exceeds 1. Here the best model's area
# score is normalized both ways, against the split-half ceiling of the neurons it was scored on
# and the mouse-to-mouse ceiling of the same area and metric.

# %% tags=["parameters", "hide-input"]
dataset = "data/synthetic.nc"  # dataset file (needs a specimen_id coordinate)
results = "results/default"  # results folder of the run
threshold = 0.8  # split-half reliability threshold of the neuron selection
n_splits = 10  # random trial splits of the RSA split-half ceiling

# %% tags=["remove-input"]
# %matplotlib inline
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from mbutils import ceilings, pages
from mbutils.data import load_dataset

run, label = pages.header(dataset, results)
data = load_dataset(dataset)

# %%
pages.require(ceilings.SPECIMEN in data.ds.coords,
              f"the dataset has no `{ceilings.SPECIMEN}` coordinate (the animal of each neuron), so no "
              "animal can be held out; the split-half ceilings are in the score tables' `ceiling` column.")

# %% [markdown]
# ## The ceilings per area
#
# Neurons are selected as for scoring (excitatory, not running-modulated, split-half
# reliability at or above the threshold, scenes only). `n_animals`: animals held out in turn
# (SRP-Ridge needs one selected neuron on each side, RSA two).

# %%
table = ceilings.mouse_to_mouse_ceiling(data, threshold=threshold, n_splits=n_splits)
table.round(3)

# %%
fig = ceilings.plot_ceilings(table)
display(fig)
plt.close(fig)

# %% [markdown]
# ## Each held-out animal
#
# The scores whose mean is the mouse-to-mouse ceiling: one row per area, metric and held-out
# animal, with the animal's selected neurons and those of the other animals that predict them.

# %%
per_animal = ceilings.mouse_to_mouse_scores(data, threshold=threshold)
per_animal.pivot_table(index=["area", "specimen_id", "n_neurons", "n_other_neurons"], columns="metric",
                       values="score", sort=False).round(3)

# %% [markdown]
# ## The run's best scores against both ceilings
#
# Per area and metric, the model with the highest layer maximum (SRP-Ridge Max, RSA Max), that
# score divided by its split-half ceiling and by the mouse-to-mouse ceiling.

# %%
pages.require(len(run.summary) > 0, "this run has no score summary (no model was scored on this dataset).")
best = ceilings.best_normalized(ceilings.normalize_by_ceiling(run.summary, table))
best.round(3)

# %% [markdown]
# ## Summary

# %% tags=["remove-input"]
display(Markdown(ceilings.ceiling_summary(table, best)))
