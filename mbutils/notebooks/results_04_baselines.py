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
# The Gabor filter bank, GIST descriptors and random Fourier features, scored like the models,
# beside the scores of the neural networks.

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
baselines = run.family("baseline")
ok = len(baselines) > 0
if not ok:
    display(Markdown("**Skipped:** this chapter needs the non-neural baselines; this run scored none."))

# %%
if ok:
    ms = stats.model_summary(run)
    fig = plots.plot_baselines(ms)
    display(fig)
    plt.close(fig)
    display(ms[ms["family"] == "baseline"][["model", "metric", "score", "n_areas"]].round(4))
