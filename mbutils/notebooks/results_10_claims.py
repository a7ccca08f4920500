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
# Every quantitative claim of the paper with the paper's value, this run's value (computed
# from the sweep's tables, never copied) and the dataset it came from; claims this run cannot
# support say why. The table is also written as claims.csv in the results folder.

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
from mbutils import claims

table = claims.compute_claims(run, dataset)
path = claims.write_claims(table, results)
n_ok = int((table["run_value"] != "").sum())
display(Markdown(f"{n_ok} of {len(table)} claims computed on this run; written to `{path}`."))
pd.set_option("display.max_colwidth", 120)
display(table[["id", "section", "statistic", "paper_value", "run_value", "run_detail", "dataset", "reason"]])
