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
# # Mouse visual cortex vs deep neural networks
#
# This book is an executable reproduction and extension of Conwell, Mayo, Buice, Katz,
# Alvarez & Barbu, *Neural Regression, Representational Similarity, Model Zoology & Neural
# Taskonomy at Scale in Rodent Visual Cortex* (NeurIPS 2021).

# %% tags=["parameters", "hide-input"]
dataset = "data/synthetic.nc"  # dataset file this build used
results = "results/default"  # sweep results folder
config = "default"  # sweep config name

# %% tags=["remove-input"]
from mbutils.pages import book_overview, dataset_banner

dataset_banner(dataset)

# %% [markdown]
# ## What the paper asked
#
# How well do deep neural networks, of many architectures and trained on many tasks, predict
# the responses of mouse visual cortex to natural images? The paper compared some 90
# ImageNet-trained and randomly initialised networks, the 24 Taskonomy encoders and
# non-neural baselines with the two-photon calcium imaging recordings of the Allen Brain
# Observatory (about 6,600 reliable excitatory neurons in six visual areas, 118 natural
# scenes), using two metrics: a neural regression (**SRP-Ridge**: sparse random projection,
# ridge regression with generalised cross-validation) and representational similarity
# analysis (**RSA**). Among its findings: training on ImageNet helps, but less than in
# primates; random networks remain strong; a mouse-sized hierarchy is shallow; and no
# Taskonomy task dominates.
#
# ## What this book computes
#
# Every page is a notebook executed by papermill on the dataset named in the banner above:
#
# - **Neural data**: the neuron selection funnel, reliabilities by area and Cre line, and
#   the RDM reliability that caps RSA scores;
# - **Model zoo**: the models scored, their layers, and the Taskonomy tasks;
# - **Method validation**: how the paper's SRP-Ridge compares with other mappings (A.5);
# - **Results**: the paper's claims, recomputed from the sweep;
# - **Model cards**: one page per model with its layer-by-layer profile in each area.
#
# This build:

# %% tags=["remove-input"]
book_overview(dataset, results, config)

# %% [markdown]
# ## Running it yourself
#
# ```bash
# make env      # the pinned environment in .venv
# make book     # the default sweep on the synthetic mouse; HTML in book/_build/html/
# make book CONFIG=smoke                     # a few models: minutes
# make book DATASET=path/to/allen.nc         # the real Allen Brain Observatory data
# ```
#
# To build the Allen dataset file (on a machine with internet access):
# `mbutils data allen --cache ~/allen_cache --out data/allen.nc`. Any recordings in the
# same NetCDF schema (see *Using your own data*) work too. A synthetic mouse is named as
# such at the top of every page that shows its results.
