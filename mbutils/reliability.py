"""Split-half reliability (Spearman-Brown corrected) and noise ceilings.

Definitions (paper section 2.1 and section 4):

- **Per-neuron split-half reliability.** Split the trials at random into two halves of
  ``n_trials // 2`` trials each (25 vs 25 of 50). Average each half over trials (ignoring NaN
  trials), correlate the two stimulus-response profiles (Pearson r over stimuli where both halves
  are defined), apply the Spearman-Brown correction ``2 r / (1 + r)`` (the reliability of the
  average of *all* trials), and average the corrected values over ``n_splits`` random splits.
- **Ragged trials and single presentations.** Trials are NaN-padded where a stimulus was shown
  fewer times. The splits are of trial positions, the same for every stimulus, so a stimulus
  enters a split's correlation only when both halves hold one of its trials: the reliability uses
  the repeated stimuli only (a stimulus shown once never counts; one shown a few times counts in
  the splits that put its trials on both sides). Trial averages (and so the scores) use every
  stimulus.
- **RDM split-half reliability.** The same for a population: the representational
  (dis)similarity matrix (1 - Pearson r between the stimuli's trial-averaged population vectors)
  from one half of the trials vs the other, compared over the upper triangle, Spearman-Brown
  corrected, averaged over splits.
- **Noise ceiling.** With trial-averaged response ``y = s + e`` (signal plus noise) and reliability
  ``rho = var(s) / var(y)`` (the Spearman-Brown corrected split-half value), no prediction can
  correlate with ``y`` better than ``corr(s, y) = sqrt(rho)``. So the ceiling of a Pearson-r score
  is ``sqrt(rho)`` (NaN where ``rho <= 0``); ``score / ceiling`` is the normalised score. The same
  formula applies to RSA scores with the RDM reliability.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "spearman_brown",
    "trial_splits",
    "splithalf_reliability",
    "splithalf_rdm_reliability",
    "noise_ceiling",
    "reliability_table",
    "rdm_reliability_by_area",
]


def spearman_brown(r, factor: float = 2.0):
    """Spearman-Brown prophecy: reliability of a test ``factor`` times longer.

    ``factor * r / (1 + (factor - 1) * r)``; with ``factor=2`` it turns a split-half correlation
    into the reliability of the full set of trials.

    Parameters
    ----------
    r : float or array
    factor : float, default 2

    Returns
    -------
    float or array, like ``r``
    """
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = factor * r / (1.0 + (factor - 1.0) * r)
    return out if out.ndim else float(out)


def trial_splits(n_trials: int, n_splits: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random split-halves of the trial indices.

    Parameters
    ----------
    n_trials : int
        Number of trials (at least 2).
    n_splits : int, default 10
    seed : int, default 0

    Returns
    -------
    first, second : int arrays of shape (n_splits, n_trials // 2)
        Disjoint trial indices of each half, per split (an odd leftover trial is unused).
    """
    n_trials, n_splits = int(n_trials), int(n_splits)
    if n_trials < 2:
        raise ValueError(f"split-half reliability needs at least 2 trials, got n_trials={n_trials}")
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    rng = np.random.default_rng(seed)
    half = n_trials // 2
    perms = np.stack([rng.permutation(n_trials) for _ in range(n_splits)])
    return np.sort(perms[:, :half], axis=1), np.sort(perms[:, half : 2 * half], axis=1)


def _check_responses(responses) -> np.ndarray:
    if hasattr(responses, "dims") and hasattr(responses, "values"):  # xarray.DataArray
        responses = responses.values
    arr = np.asarray(responses)
    if arr.ndim != 3:
        raise ValueError(f"responses must have shape (n_neurons, n_stimuli, n_trials), got shape {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"responses must be numeric, got dtype {arr.dtype}")
    return arr


def _masked_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r along axis 1 over entries where both ``a`` and ``b`` are finite.

    ``a``, ``b``: (n, m, k) -> r: (n, k).
    """
    mask = np.isfinite(a) & np.isfinite(b)
    a = np.where(mask, a, 0.0)
    b = np.where(mask, b, 0.0)
    n = mask.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ma = a.sum(axis=1) / n
        mb = b.sum(axis=1) / n
        ac = (a - ma[:, None, :]) * mask
        bc = (b - mb[:, None, :]) * mask
        r = (ac * bc).sum(axis=1) / np.sqrt((ac * ac).sum(axis=1) * (bc * bc).sum(axis=1))
    r[n < 3] = np.nan
    return np.clip(r, -1.0, 1.0)


def _half_means(block: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """NaN-aware means of trial subsets: block (n, s, t) @ weights (t, k) -> (n, s, k) float64."""
    n, s, t = block.shape
    valid = np.isfinite(block)
    flat = np.where(valid, block, 0).astype(np.float32, copy=False).reshape(n * s, t)
    sums = flat @ weights
    counts = valid.reshape(n * s, t).astype(np.float32) @ weights
    with np.errstate(divide="ignore", invalid="ignore"):
        means = sums.astype(np.float64) / counts
    means[counts == 0] = np.nan
    return means.reshape(n, s, -1)


def _repeated_stimuli(block: np.ndarray) -> np.ndarray:
    """Stimuli with at least 2 non-NaN trials in some neuron: block (n, s, t) -> bool (s,)."""
    if block.shape[2] >= 2 and np.isfinite(block.sum()):  # no NaN: one cheap pass
        return np.ones(block.shape[1], dtype=bool)
    return (np.isfinite(block).sum(axis=2) >= 2).any(axis=0)


#: values (neurons x stimuli x max(trials, 2 splits)) per chunk of :func:`splithalf_reliability`
CHUNK_VALUES = 2048 * 119 * 50


def splithalf_reliability(
    responses,
    n_splits: int = 10,
    seed: int = 0,
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Per-neuron split-half reliability, Spearman-Brown corrected, averaged over random splits.

    Vectorised over neurons (processed in chunks of ``chunk_size``): the half-averages of all
    splits come from one matrix product per chunk. NaN trials are ignored in the averages
    (``nanmean``); stimuli missing in either half are left out of that split's correlation.
    So only repeated stimuli count: with ragged (NaN-padded) trials, a single-presentation
    stimulus never enters the correlation (the module docstring gives the rule); a neuron with
    fewer than 3 stimuli defined in both halves of every split gets NaN.

    Parameters
    ----------
    responses : array or DataArray of shape (n_neurons, n_stimuli, n_trials)
    n_splits : int, default 10
        Number of random splits into ``n_trials // 2`` vs ``n_trials // 2`` trials.
    seed : int, default 0
        Seed of the splits (see :func:`trial_splits`); the same for every neuron.
    chunk_size : int, optional
        Neurons per chunk. Memory grows with ``chunk_size * n_stimuli * max(n_trials,
        2 * n_splits)`` (about 30 bytes each); the default keeps that product at
        :data:`CHUNK_VALUES` (2,048 neurons of 119 stimuli and 50 trials; 101 neurons of
        6,000 stimuli and 4 trials, about 0.4 GB).
    progress : bool, optional
        Progress bar over chunks (default ``mbutils.get_config().progress``).

    Returns
    -------
    numpy.ndarray of shape (n_neurons,), float64
        Mean over splits of ``2 r / (1 + r)``; NaN for neurons without variance.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> signal = rng.normal(size=(5, 100, 1))
    >>> rel = splithalf_reliability(signal + rng.normal(size=(5, 100, 50)))
    >>> bool(((rel > 0.9) & (rel < 1)).all())
    True
    """
    arr = _check_responses(responses)
    n_neurons, n_stimuli, n_trials = arr.shape
    first, second = trial_splits(n_trials, n_splits, seed)
    weights = np.zeros((n_trials, 2 * n_splits), dtype=np.float32)
    for k in range(n_splits):
        weights[first[k], k] = 1.0
        weights[second[k], n_splits + k] = 1.0
    out = np.empty(n_neurons, dtype=np.float64)
    if chunk_size is None:
        chunk_size = max(1, min(n_neurons, CHUNK_VALUES // max(1, n_stimuli * max(n_trials, 2 * n_splits))))
    chunk_size = max(1, int(chunk_size))
    starts = range(0, n_neurons, chunk_size)
    if progress is None:
        from .config import get_config

        progress = get_config().progress
    if progress and n_neurons > chunk_size:
        from tqdm import tqdm

        starts = tqdm(starts, desc="split-half reliability", unit="chunk")
    for start in starts:
        stop = min(start + chunk_size, n_neurons)
        block = arr[start:stop]
        repeated = _repeated_stimuli(block)
        if not repeated.all():  # single presentations never enter a correlation: skip their work
            block = block[:, repeated]
        means = _half_means(block, weights)
        r = _masked_pearson(means[:, :, :n_splits], means[:, :, n_splits:])
        sb = spearman_brown(r)
        with np.errstate(invalid="ignore"):
            count = np.isfinite(sb).sum(axis=1)
            total = np.where(np.isfinite(sb), sb, 0.0).sum(axis=1)
            out[start:stop] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


def _rdm_upper(x: np.ndarray) -> np.ndarray:
    """Upper triangle (k=1) of 1 - Pearson r between the columns (stimuli) of x (neurons, stimuli)."""
    x = x[np.isfinite(x).all(axis=1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(x, rowvar=False)
    iu = np.triu_indices(corr.shape[0], k=1)
    return 1.0 - corr[iu]


def splithalf_rdm_reliability(
    responses,
    n_splits: int = 10,
    seed: int = 0,
    method: str = "pearson",
    return_splits: bool = False,
):
    """Split-half reliability of a population's RDM, Spearman-Brown corrected.

    For each random split of the trials, the RDM (1 - Pearson r between the stimuli's
    trial-averaged population vectors) of one half is compared with that of the other half over
    the upper triangle; the comparison is Spearman-Brown corrected and averaged over splits.
    This is the explainable-variance ceiling of RSA scores (paper section 4).

    Only repeated stimuli count: stimuli with fewer than 2 non-NaN trials in every neuron
    (single presentations) are left out of the RDMs, and so is, in one split, a stimulus whose
    trials all fell into one half; a neuron with no trial of a remaining stimulus in one half
    is left out of that half's RDM.

    Parameters
    ----------
    responses : array or DataArray of shape (n_neurons, n_stimuli, n_trials)
        A population (e.g. the selected neurons of one area).
    n_splits : int, default 10
    seed : int, default 0
    method : {"pearson", "spearman"}
        How the two RDMs are compared.
    return_splits : bool, default False
        Also return the corrected value of each split.

    Returns
    -------
    float, or (float, numpy.ndarray of shape (n_splits,))
    """
    from scipy import stats

    if method not in ("pearson", "spearman"):
        raise ValueError(f"method={method!r}; expected 'pearson' or 'spearman'")
    arr = _check_responses(responses)
    if arr.shape[0] < 2:
        raise ValueError(f"an RDM needs at least 2 neurons, got {arr.shape[0]}")
    repeated = _repeated_stimuli(arr)
    if repeated.sum() < 3:
        raise ValueError(
            f"an RDM reliability needs at least 3 stimuli shown at least twice, got {int(repeated.sum())} "
            f"of {arr.shape[1]}; single-presentation stimuli cannot be split into halves"
        )
    if not repeated.all():
        arr = arr[:, repeated]
    first, second = trial_splits(arr.shape[2], n_splits, seed)
    values = np.empty(n_splits)
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Mean of empty slice")
        for k in range(n_splits):
            mean_a = np.nanmean(arr[:, :, first[k]], axis=2, dtype=np.float64)
            mean_b = np.nanmean(arr[:, :, second[k]], axis=2, dtype=np.float64)
            # a stimulus whose trials all fell into one half (ragged repeats) leaves this split
            both = ~(np.isnan(mean_a).all(axis=0) | np.isnan(mean_b).all(axis=0))
            a, b = _rdm_upper(mean_a[:, both]), _rdm_upper(mean_b[:, both])
            ok = np.isfinite(a) & np.isfinite(b)
            compare = stats.pearsonr if method == "pearson" else stats.spearmanr
            values[k] = spearman_brown(compare(a[ok], b[ok])[0])
    mean = float(np.nanmean(values))
    return (mean, values) if return_splits else mean


def noise_ceiling(reliability) -> np.ndarray:
    """Noise ceiling of Pearson-r scores from (Spearman-Brown corrected) reliabilities.

    ``ceiling = sqrt(reliability)``, NaN where ``reliability <= 0``: the highest correlation any
    prediction can reach with trial-averaged responses of that reliability (module docstring).
    Divide a score by it to normalise. Works for per-neuron reliabilities
    (:func:`splithalf_reliability`) and for RDM reliabilities (:func:`splithalf_rdm_reliability`).

    Parameters
    ----------
    reliability : float or array of shape (n,)

    Returns
    -------
    float or numpy.ndarray of shape (n,)
    """
    rel = np.asarray(reliability, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = np.where(rel > 0, np.sqrt(np.clip(rel, 0, 1)), np.nan)
    return out if out.ndim else float(out)


def reliability_table(dataset, reliability, threshold=0.8):
    """Per-neuron reliability with its area and Cre line.

    Parameters
    ----------
    dataset : NeuralDataset
        The full dataset (coordinates along ``neuron``).
    reliability : pandas.Series
        Split-half reliability indexed by ``cell_specimen_id`` (``SelectionReport.reliability``).
    threshold : float
        Reliability threshold (adds a boolean ``reliable`` column).

    Returns
    -------
    pandas.DataFrame
        Columns ``cell_specimen_id, area, cre_line, excitatory, reliability, reliable``.
    """
    import pandas as pd

    if not isinstance(reliability, pd.Series):
        raise TypeError(f"reliability must be a pandas Series indexed by cell_specimen_id "
                        f"(SelectionReport.reliability), got {type(reliability).__name__}")
    ds = getattr(dataset, "ds", dataset)
    coords = pd.DataFrame({k: ds[k].values for k in ("cell_specimen_id", "area", "cre_line", "excitatory")
                           if k in ds.coords})
    table = coords.merge(reliability.rename("reliability"), left_on="cell_specimen_id", right_index=True,
                         how="inner")
    table["reliable"] = table["reliability"] >= threshold
    return table


def rdm_reliability_by_area(dataset, n_splits=10, seed=0):
    """Split-half RDM reliability of each area's population, and the RSA ceiling (its square root).

    Parameters
    ----------
    dataset : NeuralDataset
        Usually the selected neurons (scenes only).
    n_splits, seed : int
        Random trial splits.

    Returns
    -------
    pandas.DataFrame
        Columns ``area, n_neurons, rdm_reliability, ceiling`` in hierarchy order.
    """
    import pandas as pd

    from .constants import order_areas as ordered_areas

    responses = dataset.responses
    rows = []
    for area in ordered_areas(responses["area"].values):
        sub = responses.sel(neuron=responses["area"] == area)
        if sub.sizes["neuron"] < 2:
            rows.append((area, int(sub.sizes["neuron"]), np.nan))
            continue
        rows.append((area, int(sub.sizes["neuron"]), splithalf_rdm_reliability(sub.values, n_splits=n_splits,
                                                                                  seed=seed)))
    table = pd.DataFrame(rows, columns=["area", "n_neurons", "rdm_reliability"])
    table["ceiling"] = noise_ceiling(table["rdm_reliability"].to_numpy())
    return table
