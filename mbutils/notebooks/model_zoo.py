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
# # Model zoo
#
# The registry holds the paper's models (torchvision and timm ImageNet classifiers, the 24
# Taskonomy encoders, EfficientNet-Lite) and the three non-neural baselines (Gabor filter
# bank, GIST, random Fourier features). Each can be loaded trained or randomly initialised;
# offline, trained weights come only from local caches or packages that ship them.

# %% tags=["parameters", "hide-input"]
dataset = "data/synthetic.nc"  # dataset file (for the banner)
results = "results/default"  # sweep results folder (for the layer counts)

# %% tags=["remove-input"]
from mbutils.pages import dataset_banner, taskonomy_tasks
from mbutils.models import list_models
from mbutils.stats import layer_counts

dataset_banner(dataset)

# %% [markdown]
# ## The registry

# %%
zoo = list_models()
zoo.groupby(["source", "model_class"]).size().rename("models").to_frame()

# %%
zoo[["name", "display_name", "source", "model_class", "task", "train_types", "trained_available"]]

# %% [markdown]
# ## Models scored in this build and their layers
#
# Every layer of each network (as enumerated by the zoo) is scored; depth is the layer's
# index divided by the number of layers.

# %%
layer_counts(results)

# %% [markdown]
# ## Taskonomy tasks and clusters (paper Figure 12)

# %%
taskonomy_tasks()
