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
# # The paper's claims beside this run
#
# Every quantitative claim of the paper with the paper's value and sample size, this run's value
# and sample size (computed from the sweep's tables with the paper's tests, never copied), and a
# status: `reproduced` or `not_reproduced` by the claim's stated criterion; `not_comparable`
# where the run's value cannot be held against the paper's (fewer than 10 models per group of an
# inferential claim, a named model that was not scored, a measurement of data other than the
# Allen Brain Observatory's); `not_computable` where the run lacks what the statistic needs. The
# criteria and the way each test's sample and definition were inferred from the paper are in
# docs/statistics.md. The table is also written as claims.csv in the results folder.

# %% tags=["parameters", "hide-input"]
dataset = "data/synthetic.nc"
results = "results/default"
smoke = False

# %% tags=["remove-input"]
import pandas as pd
from IPython.display import Markdown, display

from mbutils import claims, pages

run, label = pages.header(dataset, results)

# %% [markdown]
# ## How much of the paper's model set this run scored

# %%
cov = claims.coverage(run)
display(cov)

# %% [markdown]
# ## The claims

# %%
table = claims.compute_claims(run, dataset)
path = claims.write_claims(table, results)
pd.set_option("display.max_colwidth", 160)
display(table)

# %% [markdown]
# ## Summary

# %%
counts = claims.claim_counts(table[table["claim_id"] != "model_coverage"])
total = cov.set_index("family").loc["all"]
compared = table[table["status"].isin(["reproduced", "not_reproduced"]) & (table["claim_id"] != "model_coverage")]
display(Markdown(
    f"This run scored {total['scored_variants']} of the {total['paper_variants']} model variants of the paper's set "
    f"({total['fraction']:.0%}). Of {len(table) - 1} claims, {counts['reproduced']} are reproduced and "
    f"{counts['not_reproduced']} are not, by their stated criteria; {counts['not_comparable']} have a value that "
    f"cannot be held against the paper's and {counts['not_computable']} cannot be computed on this run. "
    + (f"Compared: {', '.join(compared['claim_id'])}. " if len(compared) else "No claim could be compared. ")
    + f"The table is in `{path}`."))
