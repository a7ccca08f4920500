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
# # Differences across cortical areas (section 3.8, Figures 3 and 9)
#
# **The paper's finding.** The depth of the best layer loosely follows the anatomical hierarchy:
# earlier layers best predict the primary visual area (VISp), later ones the anteromedial and
# posteromedial areas (VISam, VISpm). Taskonomy does not separate the areas: the clusters'
# scores are about the same across areas, with the semantic tasks on top in all but VISrl
# (where the randomly initialised Taskonomy architecture leads, in the area with the lowest
# scores), which suggests a functionally more homogeneous mouse visual cortex than the primate's
# (RSA Max, Figure 3).
#
# Left: the mean relative depth of the best layer per area over ImageNet-trained models (a
# hierarchy would put VISp earliest). Right: Taskonomy cluster scores per area.

# %% tags=["parameters", "hide-input"]
dataset = "data/synthetic.nc"
results = "results/default"
smoke = False

# %% tags=["remove-input"]
# %matplotlib inline
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from mbutils import findings, pages, plots, stats

run, label = pages.header(dataset, results)

# %%
area_order = ["VISp", "VISl", "VISal", "VISrl", "VISpm", "VISam"]
imagenet_ok = len(run.family("imagenet")) > 0
taskonomy_ok = len(run.family("taskonomy")) > 0
if not imagenet_ok:
    display(Markdown("**Best-layer depth per area skipped:** no ImageNet-trained models in this run."))
if not taskonomy_ok:
    display(Markdown("**Taskonomy clusters per area skipped:** no Taskonomy encoders in this run."))

# %%
if imagenet_ok:
    depths = stats.best_layer_depths(run, family="imagenet")
    fig = plots.plot_best_layer_depths(depths, area_order=area_order)
    display(fig)
    plt.close(fig)
    display(depths.round(3))

# %%
if taskonomy_ok:
    gs = stats.group_scores(run, grouping="area", family="taskonomy")
    fig = plots.plot_group_scores(gs, group_label="area")
    display(fig)
    plt.close(fig)
    display(gs.groupby(["metric", "group", "label"])["score"].mean().unstack("label").round(3))

# %% [markdown]
# ## What the paper found, and what this run shows

# %% tags=["remove-input"]
display(Markdown(findings.areas(run)))
