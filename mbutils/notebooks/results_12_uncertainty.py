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
# # How certain is each score? Bootstrap intervals and P(A beats B)
#
# Every score of this book comes from one sample of stimuli (the scenes) and one sample of
# neurons. Scoring draws new samples like them from the data at hand: each bootstrap draw
# resamples the stimuli with replacement (and, for SRP-Ridge, each area's neurons), reuses the
# leave-one-out predictions and the RDMs the scoring computed (no model is run again, no ridge
# refitted), and takes the layer maximum and the unbiased score again, the best layer chosen
# anew in each draw. RSA drops the pairs of a stimulus drawn twice (they have no
# dissimilarity).
#
# Draw *d* is the same resample for every model (it depends only on the dataset's stimuli and
# neurons and on *d*), so two models are compared draw by draw: **P(A > B)** is the share of
# draws in which model A's score (the mean over areas, as in the rankings of the other pages)
# exceeds model B's. Intervals are percentile intervals of the draws. The layer maximum of a
# resample is again a maximum over noisy layer scores, chosen and scored on the same trials, so
# its draws carry the upward bias of the Max score itself; the unbiased score (layer chosen on
# odd trials and scored on even ones, and the reverse) is the one without it (set `value`).

# %% tags=["parameters", "hide-input"]
dataset = "data/synthetic.nc"
results = "results/default"
smoke = False
level = 0.95  # coverage of the intervals
value = "max_score"  # or "unbiased_score"
max_models = 40  # models drawn per panel (the best ones)

# %% tags=["remove-input"]
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from mbutils import pages, plots_uncertainty, uncertainty
from mbutils.results import METRIC_LABELS

run, label = pages.header(dataset, results)

# %%
pages.require(len(run.bootstrap) > 0,
              "the run's model folders have no bootstrap table (scored without it, or with n_boot=0); score "
              "the models again (`mbutils sweep`) to get one.")

# %% [markdown]
# ## Models ranked, with their intervals

# %%
metrics = [m for m in METRIC_LABELS if m in set(run.bootstrap["metric"])]
rankings = {m: uncertainty.ranking_intervals(run, m, value=value, level=level) for m in metrics}
fig = plots_uncertainty.plot_ranking_intervals(rankings, max_models=max_models)
display(fig)
plt.close(fig)

# %% [markdown]
# ## P(A > B) for neighbours in the ranking
#
# Each row: a model and the model ranked just below it, their scores and the share of draws in
# which the higher-ranked model scores higher.

# %%
neighbours = {m: uncertainty.neighbour_probabilities(run, m, value=value) for m in metrics}
for m in metrics:
    display(Markdown(f"**{METRIC_LABELS[m]}**"))
    display(neighbours[m].round(3).head(max_models))

# %% [markdown]
# ## Interval widths
#
# Median and largest width of the models' intervals of the mean score over areas, and the
# number of draws.

# %%
widths = {m: (rankings[m]["ci_high"] - rankings[m]["ci_low"]).dropna() for m in metrics}
display(pd.DataFrame({METRIC_LABELS[m]: {"median width": float(w.median()) if len(w) else float("nan"),
                                          "largest width": float(w.max()) if len(w) else float("nan"),
                                          "draws": float(rankings[m]["n_draws"].max()) if len(rankings[m]) else 0.0}
                      for m, w in widths.items()}).T.round(4))

# %% [markdown]
# ## Summary

# %%
lines = []
for m in metrics:
    r, nb = rankings[m].dropna(subset=["score"]), neighbours[m].dropna(subset=["p_a_beats_b"])
    if len(r) < 2 or not len(nb):
        lines.append(f"- **{METRIC_LABELS[m]}**: fewer than two models with draws; nothing to compare.")
        continue
    clear = int((nb["p_a_beats_b"] >= level).sum())
    top = nb.iloc[0]
    lines.append(
        f"- **{METRIC_LABELS[m]}** ({len(r)} models, {int(r['n_draws'].max())} draws): the median {level:.0%} "
        f"interval of a model's score is {float(widths[m].median()):.3f} wide. The first-ranked model, "
        f"{top['model_a']}, scores higher than the second, {top['model_b']}, in {top['p_a_beats_b']:.0%} of the "
        f"draws (difference {top['difference']:+.3f}). Of the {len(nb)} neighbouring pairs of the ranking, "
        f"{clear} are ordered in at least {level:.0%} of the draws; the other {len(nb) - clear} could swap places "
        f"on another sample of stimuli and neurons.")
display(Markdown(f"**What this run shows** ({value.replace('_', ' ')}):\n\n" + "\n".join(lines)))
