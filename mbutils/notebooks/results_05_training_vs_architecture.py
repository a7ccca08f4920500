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

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from mbutils import plots, stats

label = stats.dataset_label(dataset)
run = stats.load_run(results)
display(Markdown(stats.run_banner(run, label)))

# %%
ranges = stats.score_ranges(run)
ok = len(ranges) > 0
if not ok:
    display(Markdown("**Skipped:** this chapter needs at least 2 trained ImageNet architectures or 2 Taskonomy "
                     "encoders; this run has neither."))

# %%
if ok:
    display(ranges.round(4))
    fig = plots.plot_score_ranges(ranges)
    display(fig)
    plt.close(fig)
    missing = sorted({"imagenet", "taskonomy"} - set(ranges["family"]))
    if missing:
        display(Markdown(f"No range for {', '.join(missing)}: fewer than 2 trained models of that family, "
                         "so architecture and training cannot be compared in this run."))
