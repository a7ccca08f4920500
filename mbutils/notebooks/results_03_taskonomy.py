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
# # What kinds of tasks best predict mouse visual cortex? (section 3.4, Figure 2)
#
# **The paper's finding.** 2D segmentation is the best Taskonomy encoder overall, first on
# SRP-Ridge Max and second on RSA Max. On SRP-Ridge Max the 2D tasks (keypoints, autoencoding,
# inpainting) dominate; on RSA Max the other 2D tasks fall to the bottom and the semantic tasks
# (object classification, semantic segmentation) rise to second and third place.
#
# Taskonomy encoders (one architecture, many tasks) ranked by each metric and coloured by
# their Taskonomic cluster (the denoising autoencoder, the only "Other" task, is merged into
# "2D" as in the paper; random variants in gray).

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
encoders = run.family("taskonomy")
pages.require(len(encoders) > 0,
              "this chapter needs Taskonomy encoders (visualpriors weights); this run has none.")

# %%
rankings = stats.model_rankings(run, family="taskonomy")
fig = plots.plot_taskonomy_rankings(rankings)
display(fig)
plt.close(fig)
display(rankings[["model", "train_type", "task_cluster", "metric", "score", "ci_low", "ci_high"]].round(4))

# %% [markdown]
# Overall ranking of the trained encoders (mean of the two metrics, section 2.5):

# %%
display(stats.taskonomy_ranking(run).round(4))

# %% [markdown]
# ## What the paper found, and what this run shows

# %% tags=["remove-input"]
display(Markdown(findings.taskonomy(run)))
