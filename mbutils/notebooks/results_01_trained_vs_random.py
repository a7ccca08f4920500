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
# # Trained vs randomly initialised models (paper section 3.2, Figure 1)
#
# For every ImageNet architecture scored both ImageNet-trained and randomly initialised, the
# layer-max score per area (SRP-Ridge Max, RSA Max) averaged over areas, with 95% bootstrap
# CIs across areas; the number of architectures whose random variant matches or beats the
# trained one; a paired Student's t-test and Cohen's d (paired, d_z) across architectures.

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
tvr = stats.trained_vs_random(run, family="imagenet")
pages.require(any(res["n_models"] > 0 for res in tvr.values()),
              "this chapter needs ImageNet architectures scored both trained and random; "
              f"this run has {len(run.family('imagenet', 'trained'))} trained and "
              f"{len(run.family('imagenet', 'random'))} random ImageNet models.")

# %%
rankings = stats.model_rankings(run, family="imagenet")
fig = plots.plot_rankings(rankings, max_models=20 if smoke else 40,
                          title="ImageNet-trained (red) vs randomly initialised (blue)")
display(fig)
plt.close(fig)

# %%
for metric, res in tvr.items():
    t = res["test"]
    test_text = (f"paired t = {t.statistic:.3g}, p = {t.pvalue:.3g}, Cohen's d (paired) = {t.effect_size:.3g}"
                 if t is not None else "too few pairs (< 3) for a paired t-test")
    display(Markdown(f"**{stats.METRIC_LABELS[metric]}**: {res['n_random_ge_trained']} of {res['n_models']} "
                     f"architectures have a random variant that matches or beats the trained one "
                     f"({', '.join(res['random_ge_trained']) or 'none'}); {test_text}."))
    display(res["table"].sort_values("difference").round(4))
