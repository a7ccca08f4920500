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
# # Does training or architecture matter more? (section 3.6)
#
# **The paper's finding.** Across ImageNet-trained architectures the scores span 0.121 to
# 0.209 (0.088) on SRP-Ridge Max and -0.117 to 0.458 (0.575) on RSA Max, or 0.347 to 0.458
# (0.111) without the two normalizer-free outliers; across Taskonomy encoders they span 0.126
# to 0.190 (0.064) and 0.331 to 0.440 (0.109). Architecture seems to matter slightly more than
# the task, though the paper calls this ambiguous.
#
# The range between the best and the worst trained model, across ImageNet architectures (many
# architectures, one task) and across Taskonomy encoders (one architecture, many tasks).

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
ranges = stats.score_ranges(run)
pages.require(len(ranges) > 0,
              "this chapter needs at least 2 trained ImageNet architectures or 2 Taskonomy "
              "encoders; this run has neither.")

# %%
display(ranges.round(4))
fig = plots.plot_score_ranges(ranges)
display(fig)
plt.close(fig)
missing = sorted({"imagenet", "taskonomy"} - set(ranges["family"]))
if missing:
    display(Markdown(f"No range for {', '.join(missing)}: fewer than 2 trained models of that family, "
                     "so architecture and training cannot be compared in this run."))

# %% [markdown]
# ## What the paper found, and what this run shows

# %% tags=["remove-input"]
display(Markdown(findings.training_vs_architecture(run)))
