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
# Taskonomy scores per Cre line (facets ordered by their mean score), and the RSA Max and
# SRP-Ridge Max of every model as a function of the split-half reliability cutoff, from 0.5 to
# 0.95.
#
# Every model is scored once on the neurons down to the lowest cutoff (the `scores_reliability`
# table; the other tables hold the neurons of the selection threshold only). Per-neuron
# SRP-Ridge scores do not depend on the other neurons (each neuron has its own ridge fit on the
# same features), so the SRP-Ridge score at a cutoff is the mean over the neurons passing it;
# RSA depends on the neuron set, so each cutoff has its own neural RDM, built from the neurons
# passing it. Per model and cutoff, the score is the mean over areas of the best layer's score.

# %% tags=["parameters", "hide-input"]
dataset = "data/synthetic.nc"
results = "results/default"
smoke = False
threshold = 0.8  # the sweep's selection threshold (score_model's threshold)

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
#
# Thin lines: one model each (trained and randomly initialised variants alike); points and
# bars: the across-model mean and its bootstrapped 95% confidence interval; thick line: a lowess
# smoother fitted to all models' points; dotted: the selection threshold of the other pages.

# %%
has_table = len(run.scores_reliability) > 0
if has_table:
    curves = stats.scores_by_reliability(run.scores_reliability)
else:  # model folders scored without the table: SRP-Ridge from the stored neurons only
    reliability = stats.neuron_reliability(run, dataset) if len(run.neuron_scores) else None
    curves = (stats.scores_by_reliability(run.neuron_scores, reliability,
                                          [round(threshold + 0.05 * k, 2) for k in range(4)])
              if reliability is not None else pd.DataFrame())
    display(Markdown("**The run's model folders have no `scores_reliability` table** (scored before it existed): "
                     "only SRP-Ridge at cutoffs at or above the selection threshold can be shown. Score the models "
                     "again (`mbutils sweep`) for cutoffs from 0.5 and the RSA panel."))
rel_ok = len(curves) > 0
if not rel_ok:
    display(Markdown("**Reliability curves skipped:** the run has no scores at reliability cutoffs."))

# %%
if rel_ok:
    smooth = stats.reliability_smooth(curves)
    fig = plots.plot_reliability_curves(curves, smooth, threshold=threshold)
    display(fig)
    plt.close(fig)
    display(smooth.round(4))

# %% [markdown]
# Neurons per cutoff (summed over the areas of each curve), for the first model of the run:

# %%
if rel_ok:
    first = curves[["model", "train_type"]].iloc[0]
    display(curves[(curves["model"] == first["model"]) & (curves["train_type"] == first["train_type"])]
            .pivot_table(index="threshold", columns="metric", values=["n_neurons", "n_areas"]))

# %% [markdown]
# ## Summary

# %%
paper_text = ("**What the paper found.** With its models scored at several reliability cutoffs (RSA Max and "
              "SRP-Ridge Max, threshold 0.8 in the main analysis), \"one might argue a more performative threshold "
              "would have been closer to 0.7 or 0.75\" (appendix A.6, Figure 6).")
if rel_ok:
    peaks = stats.reliability_peaks(smooth, threshold=threshold)
    run_text = " ".join(
        f"For {stats.METRIC_LABELS.get(p.metric, p.metric)}, the mean over {p.n_models} models peaks at the cutoff "
        f"{p.peak_cutoff:.2f} ({p.peak_score:.3f}, against {p.score_at_threshold:.3f} at the threshold "
        f"{threshold:g}: {p.gain:+.3f}), {'within' if 0.7 <= p.peak_cutoff <= 0.75 else 'outside'} the paper's "
        f"0.7 to 0.75; the lowess smoother peaks at {p.smooth_peak_cutoff:.2f}."
        for p in peaks.itertuples())
    lowest = float(curves["threshold"].min())
    scope = ("" if lowest < threshold else
             f" The lowest cutoff scored is {lowest:g}, so cutoffs below the threshold cannot be judged here.")
    display(Markdown(f"{paper_text}\n\n**What this run shows.** {run_text}{scope}"))
else:
    display(Markdown(f"{paper_text}\n\n**What this run shows.** No scores at reliability cutoffs."))
