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
# # RSA vs neural regression (section 3.9)
#
# **The paper's finding.** The two methods agree: the Spearman correlation between the
# SRP-Ridge Max and RSA Max model rankings is 0.56 with the random models and 0.59 without
# them, and layer by layer, per model and area, the mean Spearman is 0.468 [0.447, 0.489] with
# and 0.626 [0.613, 0.639] without them. The regression scores are lower than the RSA scores.
#
# Spearman correlation between the SRP-Ridge Max and RSA Max model rankings, with and without
# the random models; layer-wise Spearman between the two metrics per (model, area), averaged
# with a bootstrapped 95% CI.

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
ms = stats.model_summary(run)
ms = ms[ms["family"].isin(["imagenet", "taskonomy"])]
pages.require(ms["model"].nunique() > 0,
              "no neural network models in this run.")

# %%
agreement = stats.metric_agreement(run)
display(agreement.round(4))
per_pair, means = stats.layerwise_agreement(run)
display(means.round(4))
fig = plots.plot_metric_agreement(ms, per_pair)
display(fig)
plt.close(fig)

# %% [markdown]
# ## What the paper found, and what this run shows

# %% tags=["remove-input"]
display(Markdown(findings.rsa_vs_regression(run)))
