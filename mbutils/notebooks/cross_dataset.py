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
# # Do the model rankings hold across datasets?
#
# The paper ranks its models on one dataset, the Allen Brain Observatory visual coding
# recordings (section 2). This page asks whether a ranking carries over to another dataset
# (another mouse, another session, another synthetic mouse): per metric, each model's score
# (the mean over areas of its best layer's score, as on every results page) on each dataset,
# the Spearman rank correlation between datasets with a bootstrap interval over models, and
# the models whose rank moves most. A model is one architecture with one set of weights
# (trained or random); only the models scored on both datasets of a pair count.
#
# The page is not part of the single-dataset book; build it from two or more results folders
# as `docs/cross_dataset.md` describes.

# %% tags=["parameters", "hide-input"]
results = ["results/mouse_a", "results/mouse_b"]  # two or more results folders, one sweep per dataset
dataset = None  # the dataset file of each results folder (a list), or None: every model folder
labels = None  # a name per dataset (default: the folders' names)
n_resamples = 2000  # bootstrap resamples of the models
confidence_level = 0.95
n_movers = 10  # models listed per metric in the table of rank changes
smoke = False

# %% tags=["remove-input"]
# %matplotlib inline
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from mbutils import compare

runs = compare.load_runs(results, datasets=dataset, labels=labels)
display(Markdown(compare.cross_dataset_banner(runs)))

# %% [markdown]
# ## Scores per dataset
#
# Mean over areas of the layer-max score, one column per dataset (empty where a model was not
# scored on that dataset).

# %%
table = compare.scores_by_dataset(runs)
display(table.round(4))

# %% [markdown]
# ## Rank agreement
#
# Spearman's rho between each pair of datasets over the models scored on both, with a
# percentile bootstrap interval (models resampled with replacement; resamples in which every
# draw has the same score cannot be ranked and are counted in `n_degenerate`).

# %%
corr = compare.rank_correlations(table, n_resamples=200 if smoke else n_resamples,
                                 confidence_level=confidence_level)
display(corr.round(4))
labels_in_order = list(runs)
fig = compare.plot_rank_agreement(table, labels_in_order[0], labels_in_order[1])
display(fig)
plt.close(fig)

# %% [markdown]
# ## Models that move most
#
# Ranks on the first two datasets (1 is the best score); `change` is the rank on the second
# minus the rank on the first, so a positive change is a fall.

# %%
changes = compare.rank_changes(table, labels_in_order[0], labels_in_order[1])
display(changes.groupby("metric", sort=False).head(n_movers).round(4))

# %% [markdown]
# ## What this comparison shows

# %% tags=["remove-input"]
display(Markdown(compare.cross_dataset_summary(table, corr, changes, confidence_level=confidence_level)))
