"""Neuron selection as the paper does it (section 2.1), with a report of the funnel.

Steps, in order: all neurons -> excitatory Cre lines only -> not significantly modulated by
running (Allen's ``p_run_mod_ns >= 0.05``; NaN p-values are kept) -> split-half reliability
>= ``threshold`` (0.8 in the paper).

A step whose field the dataset lacks is skipped, and the report says so: the excitatory step
when ``excitatory`` is unknown for every neuron, the running step when ``p_run_mod_ns`` is NaN
for every neuron, the reliability step when no stimulus was shown at least twice.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .dataset import NeuralDataset, known_mask

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
        steps turned off by the caller are absent), ``description``, ``n_neurons``, ``fraction``
        (of all neurons), ``skipped`` (bool: the dataset lacks the step's field, so the step
        keeps every neuron and its description says ``"<step>: skipped (...)"``).
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
    skipped : dict
        ``{step: reason}`` of the steps skipped for a field the dataset lacks.
    """

    steps: pd.DataFrame
    by_area: pd.DataFrame
    by_cre_line: pd.DataFrame
    threshold: float
    running_alpha: float
    reliability: pd.Series
    skipped: dict = dataclasses.field(default_factory=dict)

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
            "skipped": dict(self.skipped),
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
        Keep excitatory neurons only (``excitatory`` true; neurons of unknown type are dropped).
        Skipped, and reported so, when ``excitatory`` is unknown for every neuron.
    running_alpha : float or None, default 0.05
        Drop neurons with ``p_run_mod_ns < running_alpha`` (``None`` turns the step off; NaN
        p-values are kept). Skipped, and reported so, when ``p_run_mod_ns`` is NaN for every neuron.
    n_splits, seed : int
        Split-half reliability settings (:func:`mbutils.reliability.splithalf_reliability`),
        computed over the repeated stimuli of the dataset (single presentations do not count).
        The step is skipped, and reported so, when no stimulus was shown twice.
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
    n_neurons = int(ds.sizes["neuron"])
    responses = ds["responses"].values
    repeated = n_neurons > 0 and bool((np.isfinite(responses).sum(axis=2) >= 2).any())
    if "reliability" in ds.coords:
        rel = np.asarray(ds["reliability"].values, dtype=np.float64)
    elif repeated:
        rel = splithalf_reliability(responses, n_splits=n_splits, seed=seed, progress=progress)
    else:
        rel = np.full(n_neurons, np.nan)
    keep = np.ones(n_neurons, dtype=bool)
    masks = [("all", keep.copy())]
    labels = {"all": "all neurons"}
    skipped = {}

    def skip(step, reason):
        skipped[step] = reason
        labels[step] = f"{step}: skipped ({reason})"
        masks.append((step, keep.copy()))

    if excitatory_only:
        known = known_mask(ds, "excitatory")
        if n_neurons and not known.any():
            skip("excitatory", "no `excitatory` in the file")
        else:
            exc = ds["excitatory"].values.astype(np.float64) == 1.0
            keep &= exc
            masks.append(("excitatory", keep.copy()))
            n_unknown = int((~known).sum())
            labels["excitatory"] = "excitatory Cre lines" + (
                f" ({n_unknown} neurons of unknown type dropped)" if n_unknown else "")
    if running_alpha is not None:
        if n_neurons and not known_mask(ds, "p_run_mod_ns").any():
            skip("not_running", "no `p_run_mod_ns` in the file")
        else:
            keep &= ~(ds["p_run_mod_ns"].values < running_alpha)
            masks.append(("not_running", keep.copy()))
            labels["not_running"] = f"not running-modulated (p_run_mod_ns >= {running_alpha:g})"
    if threshold is not None:
        if n_neurons and not repeated and "reliability" not in ds.coords:
            skip("reliable", "no stimulus shown twice in the file")
        else:
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
            "skipped": [name in skipped for name, _ in masks],
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
        skipped=skipped,
    )
    selected = ds.assign_coords(reliability=("neuron", rel)).isel(neuron=np.flatnonzero(keep))
    return NeuralDataset(selected, path=dataset.path, validate=False), report
