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
# # How deep are the most predictive layers? (section 3.7, Figure 4)
#
# **The paper's finding.** Across ImageNet-trained architectures, on both metrics, the most
# predictive layers lie about a third of the way into the model (the peaks of the lowess
# curves): intermediate features, beyond edge detection but far from the last layers.
# Convolutional networks and transformers predict about equally well at similar depths. Among
# Taskonomy encoders, 2D and geometric tasks give their best features in earlier layers, 3D and
# semantic tasks in intermediate and later ones.
#
# Layer scores (averaged over areas) against relative depth, discretised into 100 bins: the
# jagged lines are bin means, the smooth ones lowess fits (span 2/3), per model class
# (ImageNet-trained models) and per Taskonomy cluster.

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
n_bins = 100
imagenet_ok = len(run.family("imagenet")) > 0
taskonomy_ok = len(run.family("taskonomy")) > 0
if not imagenet_ok:
    display(Markdown("**ImageNet part skipped:** no ImageNet-trained models in this run."))
if not taskonomy_ok:
    display(Markdown("**Taskonomy part skipped:** no Taskonomy encoders in this run."))

# %%
if imagenet_ok:
    prof = stats.depth_profiles(run, by="model_class", family="imagenet", n_bins=n_bins)
    fig = plots.plot_depth_profiles(prof, title="ImageNet-trained models, by model class")
    display(fig)
    plt.close(fig)
    depths = stats.best_layer_depths(run, family="imagenet")
    display(Markdown("Mean relative depth of the best layer (ImageNet-trained, all areas): "
                     + ", ".join(f"{stats.METRIC_LABELS[m]} {g['mean_depth'].mean():.2f}"
                                 for m, g in depths.groupby("metric"))))

# %%
if taskonomy_ok:
    prof = stats.depth_profiles(run, by="task_cluster", family="taskonomy", n_bins=n_bins)
    fig = plots.plot_depth_profiles(prof, title="Taskonomy encoders, by task cluster")
    display(fig)
    plt.close(fig)

# %% [markdown]
# ## What the paper found, and what this run shows

# %% tags=["remove-input"]
display(Markdown(findings.layer_depth(run)))
