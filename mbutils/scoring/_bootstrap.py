"""Private: bootstrap of the layer-max scores over stimuli (and neurons), from what scoring holds.

A draw resamples the stimuli with replacement (and, for SRP-Ridge, the neurons of each area
with replacement); the model is not run again and no ridge is refitted: the draw reuses the
leave-one-out predictions ``P y`` of every layer (SRP-Ridge), the layer and neural RDMs (RSA)
and Grams (CKA) of the scoring, so it measures how much the scores depend on the sample of stimuli and neurons
the dataset happens to hold.

Draws are counts. A resample of the stimuli with counts ``c`` (``c_k``: how often stimulus
``k`` was drawn) gives:

- SRP-Ridge: per neuron, the Pearson r of the resampled (prediction, response) pairs, i.e. the
  r weighted by ``c``; the area score is the mean of those r over the area's neurons, each
  weighted by how often the neuron was drawn in that area's resample (NaN r left out, as in the
  scores).
- RSA: the resampled RDMs' upper triangles over the pairs of positions ``i < j`` whose drawn
  stimuli differ (pairs of one stimulus drawn twice carry no dissimilarity and are dropped):
  each original pair ``k < l`` then appears ``c_k c_l`` times, so the score is the Pearson r of
  the original triangles weighted by ``c_k c_l``.
- CKA (biased estimator): the CKA of the resampled Grams ``K[idx][:, idx]`` (repeats
  included), from weighted sums over the original Grams (:func:`cka_draws`).

Per draw, the layer maximum and the unbiased score are taken as
:func:`~mbutils.scoring.summarize_scores` takes them (penalty-dominated layers left out), so the
layer choice is redone in every draw.

The resample of draw ``d`` depends only on the number of stimuli, the neurons (their ids and
areas), a seed and ``d``: every model scored on the same selection sees the same resamples, and
two models can be compared draw by draw (:func:`mbutils.uncertainty.pairwise_probability`).
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from numba import njit

from .rsa import rdm

#: default number of bootstrap draws per model (``score_model(n_boot=...)``): a random
#: ResNet-18 on data/synthetic.nc (60 layers, 525 neurons, 118 stimuli; one thread) scores in
#: about 4.5 s without draws, 6.0 to 6.3 s with 200 and 10.4 to 10.6 s with 1,000
DEFAULT_N_BOOT = 200
#: columns of the ``bootstrap`` table
BOOTSTRAP_COLUMNS = ["model", "train_type", "metric", "area", "draw", "max_score", "unbiased_score"]
#: columns the intervals add to a summary table
INTERVAL_COLUMNS = ["max_score_ci_low", "max_score_ci_high", "unbiased_score_ci_low", "unbiased_score_ci_high",
                    "n_boot"]
_BLOCK = 512  # targets per block of the SRP-Ridge draws: (n_boot, _BLOCK) temporaries


def check_n_boot(n_boot) -> int:
    """``n_boot`` as a non-negative int, or a ValueError that says what to give."""
    try:
        value = int(n_boot)
    except (TypeError, ValueError):
        value = -1
    if value < 0 or value != n_boot:
        raise ValueError(f"n_boot={n_boot!r}; expected a number of bootstrap draws >= 0 (0: no bootstrap table)")
    return value


def draw_key(n_stimuli, neuron_ids, areas, seed=0) -> list:
    """The key of a dataset's resamples: words of SHA-256 of the stimulus count, the neurons'
    ids and areas and ``seed``.

    Parameters
    ----------
    n_stimuli : int
    neuron_ids : array-like (n_neurons,)
    areas : array-like (n_neurons,) of str
    seed : int

    Returns
    -------
    list of int
        Eight 32-bit words; draw ``d``'s generator is ``numpy.random.default_rng(key + [d])``.
    """
    h = hashlib.sha256()
    h.update(f"mbutils-bootstrap:{int(n_stimuli)}:{int(seed)}:".encode())
    h.update(np.asarray(neuron_ids).astype(np.int64).tobytes())
    h.update("\x00".join(map(str, areas)).encode())
    return [int(w) for w in np.frombuffer(h.digest(), dtype="<u4")]


def resample_indices(n_stimuli, areas, draw, key):
    """The resample of one draw: stimulus indices and, per area, neuron indices.

    Parameters
    ----------
    n_stimuli : int
    areas : array-like (n_neurons,) of str
        Area of each neuron; neurons are resampled within their area.
    draw : int
    key : list of int
        From :func:`draw_key`.

    Returns
    -------
    stimuli : ndarray (n_stimuli,), int
        Drawn with replacement from ``0 .. n_stimuli - 1``.
    neurons : dict str -> ndarray, int
        Per area (sorted by name), neuron indices (into ``areas``) drawn with replacement from
        that area's neurons, as many as it has.
    """
    rng = np.random.default_rng(list(key) + [int(draw)])
    stimuli = rng.integers(0, n_stimuli, n_stimuli)
    areas = np.asarray(areas).astype(str)
    neurons = {}
    for a in sorted(set(areas.tolist())):
        members = np.flatnonzero(areas == a)
        neurons[a] = members[rng.integers(0, members.size, members.size)]
    return stimuli, neurons


def resample_counts(n_stimuli, areas, n_boot, key, start=0):
    """Counts of the resamples of draws ``start .. start + n_boot - 1``.

    Returns
    -------
    stim_counts : ndarray (n_boot, n_stimuli), float64
        How often each stimulus was drawn (rows sum to ``n_stimuli``).
    neuron_counts : ndarray (n_boot, n_neurons), float64
        How often each neuron was drawn in its area's resample.
    """
    areas = np.asarray(areas).astype(str)
    C = np.zeros((n_boot, n_stimuli))
    N = np.zeros((n_boot, areas.size))
    for b in range(n_boot):
        s, per_area = resample_indices(n_stimuli, areas, start + b, key)
        C[b] = np.bincount(s, minlength=n_stimuli)
        for idx in per_area.values():
            N[b] += np.bincount(idx, minlength=areas.size)
    return C, N


def _finite_mean(X):
    """Column means of ``X`` (n, k), equal to ``X.mean(0)`` where a column is finite; a column
    with a non-finite entry gets a finite stand-in (its caller discards it) and no warning."""
    if not X.size:
        return np.zeros(X.shape[1:])
    return np.where(np.isfinite(X), X, 0.0).mean(0)


def _weighted_r(sx, sxx, sy, syy, sxy, total):
    """Pearson r from weighted sums (centered data): NaN where a variance is not positive."""
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sy / total
        vx = sxx - sx * sx / total
        vy = syy - sy * sy / total
        r = cov / np.sqrt(vx * vy)
        r[~((vx > 0) & (vy > 0) & np.isfinite(r))] = np.nan
    return np.clip(r, -1.0, 1.0)


@njit(cache=True, nogil=True)
def _area_sums(G, j0, Cy, Cyy, total, Nc, codes, valid, m, num, den):  # pragma: no cover - compiled
    """Add the draws' Pearson r of the targets ``j0 : j0 + w`` to their areas' sums.

    ``G`` (n_boot, 3 w): the weighted sums ``[C q | C q^2 | C q y]`` of the block's centered
    predictions ``q`` and targets ``y``; ``Cy``, ``Cyy`` (n_boot, n_targets): ``C y``, ``C y^2``.
    Target ``j`` is neuron ``j % m`` of half ``j // m``; its r (NaN where a variance is not
    positive, or not ``valid``) enters ``num[b, area, half]`` weighted by the neuron's count in
    draw ``b`` (``Nc``), the count itself ``den``.
    """
    n_boot = G.shape[0]
    w = G.shape[1] // 3
    for b in range(n_boot):
        for t in range(w):
            j = j0 + t
            if not valid[j]:
                continue
            neuron = j % m
            c = Nc[b, neuron]
            if c == 0.0:
                continue
            sq = np.float64(G[b, t])
            sqq = np.float64(G[b, w + t])
            sqy = np.float64(G[b, 2 * w + t])
            sy = Cy[b, j]
            vq = sqq - sq * sq / total
            vy = Cyy[b, j] - sy * sy / total
            if not (vq > 0.0 and vy > 0.0):
                continue
            r = (sqy - sq * sy / total) / np.sqrt(vq * vy)
            if not np.isfinite(r):
                continue
            r = min(max(r, -1.0), 1.0)
            num[b, codes[neuron], j // m] += c * r
            den[b, codes[neuron], j // m] += c


def srp_draws(operators, Y, area_codes, n_areas, stim_counts, neuron_counts, valid=None, precision="float64",
              n_workers=1):
    """Area scores of every layer in every draw, from the leave-one-out operators.

    Parameters
    ----------
    operators : sequence of (ndarray (n_stimuli, n_stimuli) or None)
        Per layer, the leave-one-out operator ``P`` (predictions ``P y``); None: a layer of NaN.
    Y : ndarray (n_stimuli, h * n_neurons)
        Targets, ``h`` halves side by side (e.g. all trials, odd, even).
    area_codes : ndarray (n_neurons,), int
        Area of each neuron, ``0 .. n_areas - 1``.
    n_areas : int
    stim_counts, neuron_counts : ndarray (n_boot, n_stimuli), (n_boot, n_neurons)
        From :func:`resample_counts`.
    valid : ndarray (n_layers, h * n_neurons), bool, optional
        False where the score itself is NaN (unusable target or constant predictions): left out
        of every draw too.
    precision : {"float32", "float64"}
        Arithmetic of the weighted sums (products of the counts with the centered predictions
        and targets; r is formed in float64). float32 changes a draw's r by about 1e-7 to 1e-6
        and is no faster on a CPU (60 layers, 525 neurons, 200 draws: 0.94 s against 0.85 s), so
        float64, the plain computation, is the default.
    n_workers : int
        Threads over the layers.

    Returns
    -------
    ndarray (n_layers, n_boot, n_areas, h)
        Per draw and area, the mean r of the drawn neurons (each as often as drawn; NaN r left
        out; NaN where none is left).
    """
    return SrpDraws(Y, area_codes, n_areas, stim_counts, neuron_counts, precision=precision).draws(
        operators, valid, n_workers)


class SrpDraws:
    """The SRP-Ridge draws of :func:`srp_draws`, prepared once and taken a few layers at a time.

    The sums over the targets that every layer shares (the counts times the centered targets
    and their squares) are computed here once; :meth:`draws` then takes any subset of the
    layers, so that a caller holding one layer's operator at a time (large stimulus sets) gets
    the same draws as :func:`srp_draws` of all layers at once.

    Parameters
    ----------
    Y, area_codes, n_areas, stim_counts, neuron_counts, precision
        As :func:`srp_draws`.
    """

    def __init__(self, Y, area_codes, n_areas, stim_counts, neuron_counts, precision="float64"):
        if precision not in ("float32", "float64"):
            raise ValueError(f"precision={precision!r}; expected 'float32' or 'float64'")
        self.dt = np.float32 if precision == "float32" else np.float64
        Y = np.asarray(Y, dtype=np.float64)
        self.n, self.width = Y.shape
        self.m = neuron_counts.shape[1]
        self.h = self.width // self.m
        self.n_areas = int(n_areas)
        self.Yc = Y - Y.mean(0)
        self.C = np.asarray(stim_counts, dtype=self.dt)
        self.n_boot = self.C.shape[0]
        self.Cy = (self.C @ self.Yc.astype(self.dt)).astype(np.float64)
        self.Cyy = (self.C @ (self.Yc * self.Yc).astype(self.dt)).astype(np.float64)
        self.Nc = np.ascontiguousarray(neuron_counts, dtype=np.float64)
        self.codes = np.ascontiguousarray(area_codes, dtype=np.int64)

    def layer(self, P, valid=None) -> np.ndarray:
        """Draws of one layer: ndarray (n_boot, n_areas, h), from its operator ``P`` (n_stimuli,
        n_stimuli; None: NaN) and ``valid`` (h * n_neurons,) bool (default: all)."""
        if P is None:
            return np.full((self.n_boot, self.n_areas, self.h), np.nan)
        ok = np.ones(self.width, dtype=bool) if valid is None else np.ascontiguousarray(valid, dtype=bool)
        Yc, dt = self.Yc, self.dt
        Q = P @ Yc
        Q -= Q.mean(0)
        num = np.zeros((self.n_boot, self.n_areas, self.h))
        den = np.zeros((self.n_boot, self.n_areas, self.h))
        for j in range(0, self.width, _BLOCK):
            e = min(self.width, j + _BLOCK)
            q = Q[:, j:e]
            G = self.C @ np.concatenate([q, q * q, q * Yc[:, j:e]], axis=1).astype(dt)
            _area_sums(G, j, self.Cy, self.Cyy, float(self.n), self.Nc, self.codes, ok, self.m, num, den)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.maximum(den, 1.0), np.nan)

    def draws(self, operators, valid=None, n_workers=1) -> np.ndarray:
        """Draws of several layers: ndarray (n_layers, n_boot, n_areas, h) (see :func:`srp_draws`)."""
        from ._loo import parallel_map

        if not len(operators):
            return np.full((0, self.n_boot, self.n_areas, self.h), np.nan)
        return np.stack(parallel_map(lambda i: self.layer(operators[i], None if valid is None else valid[i]),
                                     range(len(operators)), n_workers))


def neural_triangles(ys, area_codes, n_areas, flat):
    """Upper triangles of the neural RDMs of each area and half.

    Parameters
    ----------
    ys : sequence of ndarray (n_stimuli, n_neurons)
        The halves (e.g. all trials, odd, even).
    area_codes : ndarray (n_neurons,), int
    n_areas : int
    flat : ndarray (n_pairs,)
        Flat indices of the upper triangle (above the diagonal) in an (n_stimuli, n_stimuli) matrix.

    Returns
    -------
    ndarray (n_pairs, n_areas * len(ys))
        Column ``a * len(ys) + k``: area ``a``, half ``k`` (NaN for an area with fewer than two
        neurons).
    """
    cols = []
    for a in range(n_areas):
        mask = area_codes == a
        for y in ys:
            cols.append(rdm(y[:, mask]).ravel()[flat] if mask.sum() >= 2 else np.full(len(flat), np.nan))
    return np.stack(cols, axis=1)


def rsa_draws(layer_tri, neural_tri, n_stimuli, stim_counts, constant=None, precision="float64", h=3):
    """RDM correlations of every layer with every area's RDM in every draw.

    Parameters
    ----------
    layer_tri : ndarray (n_pairs, n_layers)
        Upper triangles of the layer RDMs (row order of ``numpy.triu_indices(n_stimuli, 1)``).
    neural_tri : ndarray (n_pairs, n_areas * h)
        From :func:`neural_triangles`.
    n_stimuli : int
    stim_counts : ndarray (n_boot, n_stimuli)
    constant : ndarray (n_layers,), bool, optional
        Layers whose RSA is NaN (constant or indistinct RDM).
    precision : {"float32", "float64"}
    h : int
        Halves per area in ``neural_tri``.

    Returns
    -------
    ndarray (n_layers, n_boot, n_areas, h)
        Pearson r over the pairs of distinct drawn stimuli (pair ``k < l`` weighted by
        ``c_k c_l``); NaN for a column or layer with a non-finite entry.
    """
    dt = np.float32 if precision == "float32" else np.float64
    i0, i1 = np.triu_indices(n_stimuli, 1)
    C = np.asarray(stim_counts, dtype=np.float64)
    W = (C[:, i0] * C[:, i1]).astype(dt)  # (n_boot, n_pairs)
    total = W.astype(np.float64).sum(1)[:, None]
    A = np.asarray(layer_tri, dtype=np.float64)
    B = np.asarray(neural_tri, dtype=np.float64)
    ok_a, ok_b = np.isfinite(A).all(0), np.isfinite(B).all(0)
    A = np.where(ok_a, A - _finite_mean(A), 0.0)
    B = np.where(ok_b, B - _finite_mean(B), 0.0)
    sa, saa = W @ A.astype(dt), W @ (A * A).astype(dt)  # (n_boot, n_layers)
    sb, sbb = W @ B.astype(dt), W @ (B * B).astype(dt)  # (n_boot, n_cols)
    n_layers, n_cols = A.shape[1], B.shape[1]
    out = np.full((n_layers, W.shape[0], n_cols), np.nan)
    Ad = A.astype(dt)
    for c in range(n_cols):
        if not ok_b[c]:
            continue
        sab = (W * B[:, c].astype(dt)) @ Ad  # (n_boot, n_layers)
        out[:, :, c] = _weighted_r(sa, saa, sb[:, [c]], sbb[:, [c]], sab, total).T
    out[~ok_a] = np.nan
    if constant is not None:
        out[np.asarray(constant, dtype=bool)] = np.nan
    return out.reshape(n_layers, W.shape[0], n_cols // h, h)


def neural_grams(ys, area_codes, n_areas):
    """Doubly centered linear Grams of each area and half (as the CKA scores take them).

    Returns
    -------
    list of ndarray (n_stimuli, n_stimuli) or None
        Entry ``a * len(ys) + k``: area ``a``, half ``k`` (None for an area without neurons).
    """
    from .cka import linear_gram

    out = []
    for a in range(n_areas):
        mask = area_codes == a
        for y in ys:
            out.append(linear_gram(y[:, mask]) if mask.any() else None)
    return out


def cka_draws(layer_grams, neural, stim_counts, constant=None, h=3, block=32):
    """Biased linear CKA of every layer with every area's Gram in every draw.

    A draw with counts ``c`` (stimulus ``i`` drawn ``c_i`` times, ``N = sum c``) is the CKA of
    the resampled Grams ``K[idx][:, idx]``, computed without forming them: with the weighted
    centering of the resample, ``HSIC(K, L) = sum_ij c_i c_j K_ij L_ij - (2 / N) sum_i c_i (K c)_i
    (L c)_i + (c^T K c)(c^T L c) / N^2`` (times ``1 / N^2``, which cancels in CKA). Centering
    the Grams over the full sample first changes nothing (the weighted centering absorbs it) and
    keeps the sums small.

    Parameters
    ----------
    layer_grams : sequence of ndarray (n_stimuli, n_stimuli)
        Per layer, its Gram (doubly centered or not).
    neural : sequence of (ndarray (n_stimuli, n_stimuli) or None)
        From :func:`neural_grams` (None: NaN column).
    stim_counts : ndarray (n_boot, n_stimuli)
    constant : ndarray (n_layers,), bool, optional
        Layers whose CKA is NaN.
    h : int
        Halves per area in ``neural``.
    block : int
        Stimulus rows per block of the ``sum c_i c_j K_ij L_ij`` products (bounds memory:
        ``n_boot * block * n_stimuli`` values).

    Returns
    -------
    ndarray (n_layers, n_boot, n_areas, h)
        NaN for a constant layer, an empty area, or a draw in which a Gram has no variance.
    """
    from .ridge import center_gram

    C = np.asarray(stim_counts, dtype=np.float64)
    n_boot, n = C.shape
    N = C.sum(1)
    n_layers, n_cols = len(layer_grams), len(neural)
    out = np.full((n_layers, n_boot, n_cols), np.nan)
    if not n_layers or not n_cols:
        return out.reshape(n_layers, n_boot, n_cols // h, h)
    Ks = np.stack([center_gram(K) for K in layer_grams])  # (n_layers, n, n)
    ok_k = np.isfinite(Ks).all(axis=(1, 2))
    Ks[~ok_k] = 0.0
    cols = [c for c in range(n_cols) if neural[c] is not None and np.isfinite(neural[c]).all()]
    Ls = np.stack([center_gram(neural[c]) for c in cols]) if cols else np.zeros((0, n, n))
    # sum_ij c_i c_j A_ij B_ij for the pairs (layer, layer), (area, area) and (layer, area), by
    # blocks of stimulus rows: weights (n_boot, rows, n) times the flattened Grams
    t_kl = np.zeros((n_boot, n_layers, len(cols)))
    t_kk = np.zeros((n_boot, n_layers))
    t_ll = np.zeros((n_boot, len(cols)))
    for i in range(0, n, block):
        e = min(n, i + block)
        Q = (C[:, i:e, None] * C[:, None, :]).reshape(n_boot, -1)  # c_i c_j for the block's rows
        Kb = Ks[:, i:e, :].reshape(n_layers, -1)
        Lb = Ls[:, i:e, :].reshape(len(cols), -1)
        t_kk += Q @ (Kb * Kb).T
        t_ll += Q @ (Lb * Lb).T
        for a in range(len(cols)):
            t_kl[:, :, a] += (Q * Lb[a]) @ Kb.T
    CK = np.matmul(C[None], Ks).transpose(1, 0, 2)  # (n_boot, n_layers, n): (c^T K) per layer
    CL = np.matmul(C[None], Ls).transpose(1, 0, 2) if len(cols) else np.zeros((n_boot, 0, n))
    kck = np.einsum("bli,bi->bl", CK, C)
    lcl = np.einsum("bai,bi->ba", CL, C)
    WK = CK * C[:, None, :]  # c_i (K c)_i
    Nb = N[:, None]
    h_kk = t_kk - 2.0 / Nb * np.einsum("bli,bli->bl", WK, CK) + kck * kck / Nb ** 2
    h_ll = t_ll - 2.0 / Nb * np.einsum("bai,bai->ba", CL * C[:, None, :], CL) + lcl * lcl / Nb ** 2
    h_kl = (t_kl - 2.0 / N[:, None, None] * np.matmul(WK, CL.transpose(0, 2, 1))
            + kck[:, :, None] * lcl[:, None, :] / N[:, None, None] ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.sqrt(h_kk[:, :, None] * h_ll[:, None, :])
        r = np.where((h_kk[:, :, None] > 0) & (h_ll[:, None, :] > 0), h_kl / denom, np.nan)
    r = np.clip(r, -1.0, 1.0)
    for j, c in enumerate(cols):
        out[:, :, c] = r[:, :, j].T
    out[~ok_k] = np.nan
    if constant is not None:
        out[np.asarray(constant, dtype=bool)] = np.nan
    return out.reshape(n_layers, n_boot, n_cols // h, h)


def layer_choice(S, flagged=None):
    """Per draw and area, the layer maximum and the unbiased score (as ``summarize_scores``).

    Parameters
    ----------
    S : ndarray (n_layers, n_boot, n_areas, 3)
        Scores on all trials, odd trials, even trials.
    flagged : ndarray (n_layers,), bool, optional
        Layers left out of the choice (penalty-dominated).

    Returns
    -------
    max_score, unbiased_score : ndarray (n_boot, n_areas)
        NaN where no layer has a finite score.
    """
    S = np.array(S, dtype=np.float64)
    if flagged is not None:
        S[np.asarray(flagged, dtype=bool)] = np.nan
    finite = np.isfinite(S)
    any_ok = finite.any(0)  # (n_boot, n_areas, 3)
    low = np.where(finite, S, -np.inf)
    best = low.max(0)
    mx = np.where(any_ok[..., 0], best[..., 0], np.nan)
    j_odd = low[..., 1].argmax(0)
    j_even = low[..., 2].argmax(0)
    even_at_odd = np.take_along_axis(S[..., 2], j_odd[None], 0)[0]
    odd_at_even = np.take_along_axis(S[..., 1], j_even[None], 0)[0]
    un = np.where(any_ok[..., 1] & any_ok[..., 2], 0.5 * (even_at_odd + odd_at_even), np.nan)
    return mx, un


def draws_table(metric, areas, mx, un, model, train_type, start=0) -> pd.DataFrame:
    """Rows of the ``bootstrap`` table for one metric (``mx``, ``un``: (n_boot, n_areas))."""
    n_boot, n_areas = mx.shape
    return pd.DataFrame({
        "model": model, "train_type": train_type, "metric": metric,
        "area": np.tile(np.asarray(areas, dtype=object), n_boot),
        "draw": np.repeat(np.arange(start, start + n_boot, dtype=np.int64), n_areas),
        "max_score": mx.ravel(), "unbiased_score": un.ravel()})[BOOTSTRAP_COLUMNS]


def _resamples(targets, n_boot, seed):
    """``(areas, codes, C, N)`` of the draws of ``targets``: the sorted areas, each neuron's area
    code, and the stimulus and neuron counts of :func:`resample_counts`."""
    areas_of = targets.neurons["area"].to_numpy().astype(str)
    areas = sorted(set(areas_of.tolist()))
    codes = np.searchsorted(np.asarray(areas), areas_of)
    n = targets.y.shape[0]
    key = draw_key(n, targets.neurons["cell_specimen_id"].to_numpy(), areas_of, seed)
    C, N = resample_counts(n, areas_of, n_boot, key)
    return areas, codes, C, N


def prepare_srp_draws(targets, n_boot, seed=0, precision="float64"):
    """An :class:`SrpDraws` for the neurons of ``targets`` (all, odd and even trials), whose
    draws of every layer, stacked in layer order, :func:`bootstrap_scores` takes as ``srp``;
    None when there is nothing to draw (``n_boot`` 0 or no neurons)."""
    n_boot = check_n_boot(n_boot)
    if n_boot == 0 or not len(targets.neurons):
        return None
    areas, codes, C, N = _resamples(targets, n_boot, seed)
    Y = np.concatenate([targets.y, targets.y_odd, targets.y_even], axis=1)
    return SrpDraws(Y, codes, len(areas), C, N, precision=precision)


def bootstrap_scores(targets, n_boot, *, model, train_type, operators=None, valid=None, flagged=None,
                     layer_tri=None, rsa_constant=None, seed=0, precision="float64", n_workers=1,
                     srp=None, layer_grams=None, cka_constant=None) -> pd.DataFrame:
    """The ``bootstrap`` table of one model: layer-max and unbiased scores in every draw.

    Parameters
    ----------
    targets : mbutils.scoring.Targets
        The scored neurons (``y``, ``y_odd``, ``y_even`` of shape (n_stimuli, n_neurons) and
        ``neurons`` with ``cell_specimen_id`` and ``area``).
    n_boot : int
        Number of draws (0: an empty table).
    model, train_type : str
    operators : sequence of ndarray (n_stimuli, n_stimuli) or None, optional
        SRP-Ridge leave-one-out operator per layer (None entries: constant layers); None skips
        SRP-Ridge.
    valid : ndarray (n_layers, 3 * n_neurons), bool, optional
        Where the SRP-Ridge scores (all, odd, even) are finite.
    flagged : ndarray (n_layers,), bool, optional
        Penalty-dominated layers (left out of the SRP-Ridge choice).
    layer_tri : ndarray (n_pairs, n_layers), optional
        Upper triangles of the layer RDMs; None skips RSA.
    rsa_constant : ndarray (n_layers,), bool, optional
    seed : int
        Enters the draws' key with the dataset's neurons (:func:`draw_key`).
    precision : {"float32", "float64"}
    n_workers : int
    srp : ndarray (n_layers, n_boot, n_areas, 3), optional
        The SRP-Ridge draws of every layer, already taken (:func:`prepare_srp_draws`, a few
        layers at a time); instead of ``operators``.
    layer_grams : sequence of ndarray (n_stimuli, n_stimuli), optional
        Layer Grams of the CKA metric (biased estimator, :func:`cka_draws`); None skips CKA.
    cka_constant : ndarray (n_layers,), bool, optional

    Returns
    -------
    pandas.DataFrame
        Columns :data:`BOOTSTRAP_COLUMNS`, one row per metric, area and draw.
    """
    n_boot = check_n_boot(n_boot)
    if precision not in ("float32", "float64"):
        raise ValueError(f"precision={precision!r}; expected 'float32' or 'float64'")
    if operators is not None and srp is not None:
        raise ValueError("give the SRP-Ridge operators or their draws (srp), not both")
    if n_boot == 0 or not len(targets.neurons) or (operators is None and srp is None and layer_tri is None
                                                   and layer_grams is None):
        return empty_bootstrap_table()
    areas, codes, C, N = _resamples(targets, n_boot, seed)
    n = targets.y.shape[0]
    frames = []
    if operators is not None:
        Y = np.concatenate([targets.y, targets.y_odd, targets.y_even], axis=1)
        srp = srp_draws(operators, Y, codes, len(areas), C, N, valid=valid, precision=precision,
                        n_workers=n_workers)
    if srp is not None:
        if srp.shape[1:3] != (n_boot, len(areas)):
            raise ValueError(f"srp draws of shape {srp.shape}; expected (n_layers, {n_boot}, {len(areas)}, 3) for "
                             f"n_boot={n_boot} and the {len(areas)} areas of the targets")
        frames.append(draws_table("srp_ridge", areas, *layer_choice(srp, flagged), model, train_type))
    if layer_tri is not None:
        iu = np.triu_indices(n, 1)
        flat = np.ravel_multi_index(iu, (n, n))
        B = neural_triangles((targets.y, targets.y_odd, targets.y_even), codes, len(areas), flat)
        S = rsa_draws(layer_tri, B, n, C, constant=rsa_constant, precision=precision)
        frames.append(draws_table("rsa", areas, *layer_choice(S), model, train_type))
    if layer_grams is not None:
        G = neural_grams((targets.y, targets.y_odd, targets.y_even), codes, len(areas))
        S = cka_draws(layer_grams, G, C, constant=cka_constant)
        frames.append(draws_table("cka", areas, *layer_choice(S), model, train_type))
    return pd.concat(frames, ignore_index=True)


def bootstrap_intervals(boot: pd.DataFrame, level=0.95) -> pd.DataFrame:
    """Percentile intervals of the layer-max and unbiased scores.

    Parameters
    ----------
    boot : pandas.DataFrame
        A ``bootstrap`` table (columns :data:`BOOTSTRAP_COLUMNS`), one or several models.
    level : float
        Coverage of the interval, in (0, 1): the ``(1 - level) / 2`` and ``(1 + level) / 2``
        quantiles of the draws (finite draws only).

    Returns
    -------
    pandas.DataFrame
        One row per ``model, train_type, metric, area`` with :data:`INTERVAL_COLUMNS`
        (``n_boot``: the number of draws).
    """
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level={level!r}; expected a coverage in (0, 1) such as 0.95")
    keys = ["model", "train_type", "metric", "area"]
    if boot is None or not len(boot):
        return pd.DataFrame(columns=keys + INTERVAL_COLUMNS)
    lo, hi = (1.0 - level) / 2.0, (1.0 + level) / 2.0
    g = boot.groupby(keys, sort=True)
    out = pd.DataFrame({
        "max_score_ci_low": g["max_score"].quantile(lo), "max_score_ci_high": g["max_score"].quantile(hi),
        "unbiased_score_ci_low": g["unbiased_score"].quantile(lo),
        "unbiased_score_ci_high": g["unbiased_score"].quantile(hi), "n_boot": g["draw"].nunique()})
    return out.reset_index()


def attach_intervals(summary: pd.DataFrame, boot: pd.DataFrame, level=0.95) -> pd.DataFrame:
    """``summary`` with the percentile intervals of ``boot`` (:func:`bootstrap_intervals`) joined
    on ``model, train_type, metric, area``; NaN where a row has no draws. A summary that holds
    the columns already is returned unchanged."""
    if summary is None or not len(summary) or "area" not in summary.columns or \
            set(INTERVAL_COLUMNS) <= set(summary.columns):
        return summary
    iv = bootstrap_intervals(boot, level)
    keys = ["model", "train_type", "metric", "area"]
    left = summary.copy()
    for k in keys:  # same dtypes on both sides of the join
        left[k] = left[k].astype(str)
        iv[k] = iv[k].astype(str)
    out = left.merge(iv, on=keys, how="left")
    for k in keys:
        out[k] = summary[k].to_numpy()
    return out


def empty_bootstrap_table() -> pd.DataFrame:
    """A ``bootstrap`` table without rows (columns :data:`BOOTSTRAP_COLUMNS`)."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
        BOOTSTRAP_COLUMNS, (object, object, object, object, np.int64, np.float64, np.float64))})
