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
# **The paper's finding: training matters.** Across its 92 architectures, ImageNet-trained
# models beat their randomly initialised counterparts on both metrics (paired t-tests:
# SRP-Ridge Max p = 1.29e-40, Cohen's d = 2.40; RSA Max p = 2.29e-29, d = 3.45). On SRP-Ridge
# Max, 17 random variants match or beat their trained counterparts (the four VGGs, AlexNet, the
# DenseNets and most normalizer-free networks, replicating the earlier report of a random VGG16
# as good as a trained one); on RSA Max trained models win categorically.
#
# For every ImageNet architecture scored both ImageNet-trained and randomly initialised: the
# layer-max score per area (SRP-Ridge Max, RSA Max) averaged over areas, with 95% bootstrap
# CIs across areas; the number of architectures whose random variant matches or beats the
# trained one; a paired Student's t-test with Cohen's d for paired samples (d_z, and d_av)
# across architectures. Figure 1 shows an evenly spaced sample of 40 architectures along the
# overall ranking (the paper's shows 40 of its 92, sampled to show their variety); the
# appendix at the end of the page shows them all.

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
tvr = stats.trained_vs_random(run, family="imagenet")
pages.require(any(res["n_models"] > 0 for res in tvr.values()),
              "this chapter needs ImageNet architectures scored both trained and random; "
              f"this run has {len(run.family('imagenet', 'trained'))} trained and "
              f"{len(run.family('imagenet', 'random'))} random ImageNet models.")

# %%
rankings = stats.model_rankings(run, family="imagenet")
fig = plots.plot_rankings(rankings, max_models=20 if smoke else 40, sample="even",
                          title="ImageNet-trained (red) vs randomly initialised (blue)")
display(fig)
plt.close(fig)

# %%
for metric, res in tvr.items():
    t = res["test"]
    test_text = (f"paired t = {t.statistic:.3g}, p = {t.pvalue:.3g}, Cohen's d_z = {t.effect_sizes['d_z']:.3g}, "
                 f"d_av = {t.effect_sizes['d_av']:.3g}"
                 if t is not None else "too few pairs (< 3) for a paired t-test")
    display(Markdown(f"**{stats.METRIC_LABELS[metric]}**: {res['n_random_ge_trained']} of {res['n_models']} "
                     f"architectures have a random variant that matches or beats the trained one "
                     f"({', '.join(res['random_ge_trained']) or 'none'}); {test_text}."))
    display(res["table"].sort_values("difference").round(4))

# %% [markdown]
# ## Appendix: all models

# %%
fig = plots.plot_all_rankings(rankings, title="ImageNet-trained (red) vs randomly initialised (blue)")
display(fig)
plt.close(fig)

# %% [markdown]
# ## What the paper found, and what this run shows

# %% tags=["remove-input"]
display(Markdown(findings.trained_vs_random(run)))
