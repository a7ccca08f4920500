"""Neuron selection as the paper does it (section 2.1), with a report of the funnel.

Steps, in order: all neurons -> excitatory Cre lines only -> not significantly modulated by
running (Allen's ``p_run_mod_ns >= 0.05``; NaN p-values are kept) -> split-half reliability
>= ``threshold`` (0.8 in the paper).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .dataset import NeuralDataset

__all__ = [
    "EXCITATORY_CRE_LINES",
    "INHIBITORY_CRE_LINES",
    "is_excitatory",
    "SelectionReport",
    "select_neurons",
]

#: Cre lines of the Allen Brain Observatory that label excitatory neurons
EXCITATORY_CRE_LINES = (
    "Emx1-IRES-Cre",
    "Slc17a7-IRES2-Cre",
    "Cux2-CreERT2",
    "Rorb-IRES2-Cre",
    "Scnn1a-Tg3-Cre",
    "Nr5a1-Cre",
    "Rbp4-Cre_KL100",
    "Fezf2-CreER",
    "Tlx3-Cre_PL56",
    "Ntsr1-Cre_GN220",
)
#: Cre lines that label inhibitory interneurons
INHIBITORY_CRE_LINES = ("Sst-IRES-Cre", "Vip-IRES-Cre", "Pvalb-IRES-Cre")

_EXC_PREFIXES = tuple(name.split("-")[0] for name in EXCITATORY_CRE_LINES)
_INH_PREFIXES = tuple(name.split("-")[0] for name in INHIBITORY_CRE_LINES)


def is_excitatory(cre_line: str) -> bool:
    """Whether an Allen Cre line labels excitatory neurons (matched by gene name, e.g. ``"Cux2"``).

    Raises
    ------
    ValueError
        For a Cre line that is neither in :data:`EXCITATORY_CRE_LINES` nor in
        :data:`INHIBITORY_CRE_LINES`.
    """
    gene = str(cre_line).split("-")[0]
    if gene in _EXC_PREFIXES:
        return True
    if gene in _INH_PREFIXES:
        return False
    raise ValueError(
        f"unknown Cre line {cre_line!r}; expected one of {list(EXCITATORY_CRE_LINES + INHIBITORY_CRE_LINES)}"
    )


@dataclasses.dataclass
class SelectionReport:
    """Neuron counts after each selection step.

    Attributes
    ----------
    steps : pandas.DataFrame
        One row per step: ``step`` (``"all"``, ``"excitatory"``, ``"not_running"``, ``"reliable"``;
        skipped steps are absent), ``description``, ``n_neurons``, ``fraction`` (of all neurons).
    by_area : pandas.DataFrame
        Counts, index = area, one column per step.
    by_cre_line : pandas.DataFrame
        Counts, index = Cre line, one column per step.
    threshold : float
        Reliability threshold.
    running_alpha : float
        Significance level of the running filter.
    reliability : pandas.Series
        Split-half reliability of every neuron (index: cell_specimen_id).
    """

    steps: pd.DataFrame
    by_area: pd.DataFrame
    by_cre_line: pd.DataFrame
    threshold: float
    running_alpha: float
    reliability: pd.Series

    @property
    def n_selected(self) -> int:
        return int(self.steps["n_neurons"].iloc[-1])

    def to_dict(self) -> dict:
        """Plain-python summary (JSON-serialisable)."""
        return {
            "threshold": self.threshold,
            "running_alpha": self.running_alpha,
            "steps": dict(zip(self.steps["step"], self.steps["n_neurons"].astype(int).tolist())),
            "by_area": {a: {k: int(v) for k, v in row.items()} for a, row in self.by_area.iterrows()},
            "by_cre_line": {c: {k: int(v) for k, v in row.items()} for c, row in self.by_cre_line.iterrows()},
        }

    def __str__(self) -> str:
        lines = ["Neuron selection (paper section 2.1)"]
        width = max(len(s) for s in self.steps["description"])
        for _, row in self.steps.iterrows():
            lines.append(
                f"  {row['description']:<{width}}  {int(row['n_neurons']):>7,d}  ({100 * row['fraction']:5.1f}%)"
            )
        lines.append("")
        lines.append("By area:")
        lines.append(_indent(self.by_area.to_string()))
        lines.append("")
        lines.append("By Cre line:")
        lines.append(_indent(self.by_cre_line.to_string()))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return (
            "<b>Neuron selection</b>"
            + self.steps.to_html(index=False)
            + "<b>By area</b>"
            + self.by_area.to_html()
            + "<b>By Cre line</b>"
            + self.by_cre_line.to_html()
        )


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def select_neurons(
    dataset: NeuralDataset,
    threshold: float = 0.8,
    excitatory_only: bool = True,
    running_alpha: float | None = 0.05,
    n_splits: int = 10,
    seed: int = 0,
    progress: bool | None = None,
) -> tuple[NeuralDataset, SelectionReport]:
    """Select neurons as the paper does: excitatory, not running-modulated, reliable.

    Parameters
    ----------
    dataset : NeuralDataset
    threshold : float, default 0.8
        Keep neurons with split-half reliability >= ``threshold`` (``None`` skips the step).
    excitatory_only : bool, default True
        Keep excitatory Cre lines only (the ``excitatory`` coordinate).
    running_alpha : float or None, default 0.05
        Drop neurons with ``p_run_mod_ns < running_alpha`` (``None`` skips the step).
    n_splits, seed : int
        Split-half reliability settings (:func:`mbutils.reliability.splithalf_reliability`),
        computed over all stimuli of the dataset.
    progress : bool, optional

    Returns
    -------
    selected : NeuralDataset
        The selected neurons, with a ``reliability`` coordinate along ``neuron``.
    report : SelectionReport
    """
    from ..reliability import splithalf_reliability

    if not isinstance(dataset, NeuralDataset):
        raise TypeError(f"select_neurons expects a NeuralDataset, got {type(dataset).__name__}")
    if threshold is not None and not (-1.0 <= float(threshold) <= 1.0):
        raise ValueError(f"threshold={threshold!r}; expected a reliability in [-1, 1]")
    if running_alpha is not None and not (0.0 < float(running_alpha) < 1.0):
        raise ValueError(f"running_alpha={running_alpha!r}; expected a significance level in (0, 1)")
    ds = dataset.ds
    if "reliability" in ds.coords:
        rel = np.asarray(ds["reliability"].values, dtype=np.float64)
    else:
        rel = splithalf_reliability(ds["responses"].values, n_splits=n_splits, seed=seed, progress=progress)
    keep = np.ones(ds.sizes["neuron"], dtype=bool)
    masks = [("all", keep.copy())]
    labels = {"all": "all neurons"}
    if excitatory_only:
        keep &= ds["excitatory"].values.astype(bool)
        masks.append(("excitatory", keep.copy()))
        labels["excitatory"] = "excitatory Cre lines"
    if running_alpha is not None:
        keep &= ~(ds["p_run_mod_ns"].values < running_alpha)
        masks.append(("not_running", keep.copy()))
        labels["not_running"] = f"not running-modulated (p_run_mod_ns >= {running_alpha:g})"
    if threshold is not None:
        with np.errstate(invalid="ignore"):
            keep &= rel >= threshold
        masks.append(("reliable", keep.copy()))
        labels["reliable"] = f"split-half reliability >= {threshold:g}"

    n_total = max(1, ds.sizes["neuron"])
    steps = pd.DataFrame(
        {
            "step": [name for name, _ in masks],
            "description": [labels[name] for name, _ in masks],
            "n_neurons": [int(m.sum()) for _, m in masks],
            "fraction": [m.sum() / n_total for _, m in masks],
        }
    )

    def counts(by: str) -> pd.DataFrame:
        labels = ds[by].values.astype(str)
        table = pd.DataFrame({name: pd.Series(m).groupby(labels).sum() for name, m in masks})
        table.index.name = by
        return table.astype(int)

    report = SelectionReport(
        steps=steps,
        by_area=counts("area"),
        by_cre_line=counts("cre_line"),
        threshold=float(threshold) if threshold is not None else float("nan"),
        running_alpha=float(running_alpha) if running_alpha is not None else float("nan"),
        reliability=pd.Series(rel, index=pd.Index(ds["cell_specimen_id"].values, name="cell_specimen_id")),
    )
    selected = ds.assign_coords(reliability=("neuron", rel)).isel(neuron=np.flatnonzero(keep))
    return NeuralDataset(selected, path=dataset.path, validate=False), report
