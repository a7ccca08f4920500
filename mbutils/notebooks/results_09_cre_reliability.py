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
# # Cre lines (appendix A.10, Figure 10) and reliability thresholds (A.6, Figure 6)
#
# Taskonomy scores per Cre line (facets ordered by their mean score), and SRP-Ridge Max as a
# function of the split-half reliability cutoff.
#
# Per-neuron SRP-Ridge scores do not depend on which other neurons are kept (each neuron has
# its own ridge fit on the same features), so the area means at a stricter cutoff are the
# means over the neurons whose reliability passes it: no rescoring is needed. The sweep only
# scored neurons above its own cutoff (0.8 by default), so lower cutoffs, and the RSA metric
# (whose RDMs depend on the neuron set), would need a rescoring.

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
taskonomy_ok = len(run.family("taskonomy")) > 0
if not taskonomy_ok:
    display(Markdown("**Cre-line chapter skipped:** no Taskonomy encoders in this run."))

# %%
if taskonomy_ok:
    gs = stats.group_scores(run, grouping="cre_line", family="taskonomy")
    if len(gs):
        fig = plots.plot_group_scores(gs, group_label="Cre line")
        display(fig)
        plt.close(fig)
    else:
        display(Markdown("The sweep's scores_groups table has no Cre-line grouping."))

# %% [markdown]
# ## Reliability thresholds

# %%
reliability = stats.neuron_reliability(run, dataset) if len(run.neuron_scores) else None
rel_ok = reliability is not None and len(run.neuron_scores) > 0
if not rel_ok:
    display(Markdown("**Reliability curves skipped:** the run has no per-neuron scores, or no reliability "
                     "could be found (neither in the neuron table nor from the dataset)."))

# %%
if rel_ok:
    scored = reliability.reindex(run.neuron_scores["cell_specimen_id"].unique())
    lowest = float(scored.min())
    thresholds = [round(lowest + k * (0.95 - lowest) / (4 if smoke else 12), 3) for k in range((4 if smoke else 12) + 1)]
    curves = stats.scores_by_reliability(run.neuron_scores, reliability, thresholds)
    smooth = stats.reliability_smooth(curves)
    fig = plots.plot_reliability_curves(curves, smooth)
    display(fig)
    plt.close(fig)
    display(smooth.round(4))
