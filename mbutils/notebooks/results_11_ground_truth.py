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
# # Ground truth: does the benchmark recover the synthetic mouse's planted layers?
#
# The synthetic mouse's neurons are generated from chosen layers of a generator model
# (efficientnet_lite0, ImageNet-trained). Here the planted layer depth per area (the dataset's
# ground_truth attribute) is set against the best layer the benchmark finds for the generator
# model, for each metric.

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
gt = label["ground_truth"]
pages.require(label["source"] == "synthetic" and gt is not None,
              f"the dataset's source is '{label['source']}', which has no planted ground "
              "truth (only the synthetic mouse has one).")

# %%
recovery = stats.ground_truth_recovery(run, gt)
pages.require(len(recovery) > 0,
              f"the generator model '{gt.get('model')}' ({gt.get('weights', 'trained')}) was not scored in this run.")

# %%
display(recovery.round(3))
fig = plots.plot_ground_truth(recovery)
display(fig)
plt.close(fig)
display(Markdown("Exact layer recovered in "
                 + ", ".join(f"{stats.METRIC_LABELS.get(m, m)}: {int(g['exact'].sum())} of {len(g)} areas "
                             f"(mean |depth error| {g['depth_error'].abs().mean():.3f})"
                             for m, g in recovery.groupby("metric"))))

# %% [markdown]
# ## What the paper found, and what this run shows

# %% tags=["remove-input"]
display(Markdown(findings.ground_truth(run, gt)))
