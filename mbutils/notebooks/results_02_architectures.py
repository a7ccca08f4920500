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
# # What kinds of architectures best predict mouse visual cortex? (section 3.3, Figure 8)
#
# **The paper's finding.** The best architecture on both metrics is Inception-ResNet-V2.
# Model depth correlates weakly and positively with both metrics (Spearman r = 0.22 RSA Max,
# 0.192 SRP-Ridge Max) and the parameter count weakly negatively with RSA Max (r = -0.18,
# driven by parameter-dense architectures such as the VGGs); unlike in macaques, ImageNet top-1
# accuracy does not predict the scores significantly. Transformers do slightly worse than other
# architectures on RSA Max (t = -3.96, p = 0.004, Hedges' g = -0.913) and moderately better on
# SRP-Ridge Max (t = 2.45, p = 0.023, g = 0.633), and with the MLP-Mixers they show the largest
# gains from training on SRP-Ridge Max.
#
# Rankings of all scored models (trained and random variants); Spearman correlations of model
# depth (number of layers), parameter count and ImageNet top-1 with each metric; transformers
# against all other architectures (Welch's t, Hedges' g); trained-minus-random differences
# by architecture class with Bonferroni-corrected pairwise t-tests.

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
imagenet = run.family("imagenet", "trained")
pages.require(len(imagenet) > 0,
              "this chapter needs ImageNet-trained models; this run has none.")

# %%
rankings = stats.model_rankings(run, family="imagenet")
fig = plots.plot_rankings(rankings, max_models=20 if smoke else None, title="All ImageNet architectures")
display(fig)
plt.close(fig)

# %% [markdown]
# ## Depth, size and ImageNet accuracy

# %%
corr = stats.architecture_correlations(run)
display(corr.round(4))
fig = plots.plot_architecture_correlations(stats.model_summary(run, family="imagenet", train_type="trained"),
                                           stats.n_layers(run))
display(fig)
plt.close(fig)

# %% [markdown]
# ## Transformers vs other architectures

# %%
contrast = stats.class_contrast(run, "Transformer", equal_var=False)
display(contrast.round(4))
if contrast["t"].isna().all():
    display(Markdown("Too few transformers or other architectures (need 2 of each) for a t-test."))

# %% [markdown]
# ## Training gain by architecture class

# %%
diffs, tests = stats.training_gain_by_class(run)
if len(diffs):
    fig = plots.plot_training_gain_by_class(diffs)
    display(fig)
    plt.close(fig)
    display(tests.round(4) if len(tests) else Markdown("Fewer than two classes with 2 or more models: no pairwise tests."))
else:
    display(Markdown("No architecture was scored both trained and random."))

# %% [markdown]
# ## What the paper found, and what this run shows

# %% tags=["remove-input"]
display(Markdown(findings.architectures(run)))
