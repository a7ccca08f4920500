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
from pathlib import Path

from IPython.display import Markdown, display

from mbutils import findings
from mbutils.pages import book_overview, dataset_banner
from mbutils.results import load_run

dataset_banner(dataset)

# %% [markdown]
# ## What the paper asked
#
# How well do deep neural networks, of many architectures and trained on many tasks, predict
# the responses of mouse visual cortex to natural images? The paper compared over 110 networks
# (section 2.2: 26 torchvision and 66 timm ImageNet architectures, among them vision
# transformers, MLP-Mixers and normalizer-free networks, each ImageNet-trained and randomly
# initialised; section 2.3: the 24 Taskonomy encoders; section 2.6: Gabor, GIST and random
# Fourier feature baselines) with the two-photon calcium imaging recordings of the Allen Brain
# Observatory (6,619 reliable excitatory neurons in six visual areas, 118 natural scenes), using
# two metrics: a neural regression (**SRP-Ridge**: sparse random projection, ridge regression
# with generalised cross-validation) and representational similarity analysis (**RSA**).
#
# ## What the paper found
#
# The paper summarises its survey in four results (section 1):
#
# 1. **Training matters.** Randomly initialised variants of some convolutional architectures
#    (the VGGs, AlexNet, the DenseNets) predict individual neurons about as well as their
#    trained counterparts, but across all architectures trained models beat their random
#    counterparts on both metrics, and on representational geometry (RSA) categorically
#    (section 3.2). Segmentation seems the best task: 2D segmentation is the best Taskonomy
#    encoder overall (section 3.4).
# 2. **Features of intermediate complexity dominate** the prediction of all cortical areas: the
#    most predictive layers lie about a third of the way into ImageNet-trained models (section
#    3.7), with perhaps a slight rise in depth from the primary visual area onwards (section 3.8).
# 3. **Taskonomy does not separate the areas:** the same kinds of tasks dominate in every area,
#    unlike the functional organisation found in primates (section 3.8).
# 4. **RSA and neural regression agree** on the kinds of features that best predict the
#    biology when aggregated in similar ways (section 3.9).
#
# Beyond these: the best architecture on both metrics is Inception-ResNet-V2 (section 3.3);
# the non-neural baselines fail to predict cortical activity (section 3.5); and the range of
# scores across architectures is about as large as, or slightly larger than, the range across
# tasks (section 3.6). Each results page of this book states the paper's finding for its
# section and ends with what the run behind the book shows beside it.
#
# ## What this book computes
#
# Every page is a notebook executed by papermill on the dataset named in the banner above:
#
# - **Neural data**: the neuron selection funnel, reliabilities by area and Cre line, and
#   the RDM reliability that caps RSA scores;
# - **Model zoo**: the models scored, their layers, and the Taskonomy tasks;
# - **Method validation**: how the paper's SRP-Ridge compares with other mappings (A.5);
# - **Results**: the paper's analyses, recomputed from the sweep, each page closing with the
#   paper's finding beside this run's numbers;
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

# %% [markdown]
# ## What this run can test

# %% tags=["remove-input"]
have_run = Path(results, "models").is_dir()
display(Markdown(findings.run_scope(load_run(results, dataset=dataset)) if have_run
                 else f"No sweep results in {results!r} yet: run the sweep first."))
