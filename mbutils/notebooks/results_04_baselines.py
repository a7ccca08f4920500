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
# # Non-neural baselines (section 3.5)
#
# **The paper's finding.** The non-neural baselines fail to predict cortical activity: on
# SRP-Ridge Max the Gabor filter bank scores 0.032, the GIST descriptors 0.026 and the random
# Fourier features (the max over 600 draws of 4096 features) -0.014.
#
# The Gabor filter bank, GIST descriptors and random Fourier features, scored like the models,
# beside the scores of the neural networks.

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
baselines = run.family("baseline")
pages.require(len(baselines) > 0,
              "this chapter needs the non-neural baselines; this run scored none.")

# %%
ms = stats.model_summary(run)
fig = plots.plot_baselines(ms)
display(fig)
plt.close(fig)
display(ms[ms["family"] == "baseline"][["model", "metric", "score", "n_areas"]].round(4))

# %% [markdown]
# ## What the paper found, and what this run shows

# %% tags=["remove-input"]
display(Markdown(findings.baselines(run)))
