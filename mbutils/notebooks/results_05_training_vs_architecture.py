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
# The range between the best and the worst trained model, across ImageNet architectures (many
# architectures, one task) and across Taskonomy encoders (one architecture, many tasks).

# %% tags=["parameters", "hide-input"]
dataset = "data/synthetic.nc"
results = "results/default"
smoke = False

# %% tags=["remove-input"]
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from mbutils import pages, plots, stats

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
