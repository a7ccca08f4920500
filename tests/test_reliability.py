"""Split-half reliability, RDM reliability and noise ceilings against plain references."""
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import pdist

from mbutils.reliability import (
    noise_ceiling,
    spearman_brown,
    splithalf_rdm_reliability,
    splithalf_reliability,
    trial_splits,
)


def _planted(n_neurons=40, n_stimuli=30, n_trials=50, seed=0, nan_fraction=0.0):
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n_neurons, n_stimuli, 1))
    noise_sd = rng.uniform(0.5, 8.0, size=(n_neurons, 1, 1))
    x = (signal + noise_sd * rng.normal(size=(n_neurons, n_stimuli, n_trials))).astype(np.float32)
    if nan_fraction:
        x[rng.random(x.shape) < nan_fraction] = np.nan
    return x, signal[..., 0], noise_sd[:, 0, 0]


def _loop_reference(x, n_splits, seed):
    first, second = trial_splits(x.shape[2], n_splits, seed)
    out = []
    for neuron in x.astype(np.float64):
        values = []
        for a_idx, b_idx in zip(first, second):
            a = np.nanmean(neuron[:, a_idx], axis=1)
            b = np.nanmean(neuron[:, b_idx], axis=1)
            ok = np.isfinite(a) & np.isfinite(b)
            r = stats.pearsonr(a[ok], b[ok])[0]
            values.append(2 * r / (1 + r))
        out.append(np.mean(values))
    return np.array(out)


def test_trial_splits_are_disjoint_halves():
    first, second = trial_splits(50, n_splits=7, seed=3)
    assert first.shape == second.shape == (7, 25)
    for a, b in zip(first, second):
        assert len(set(a) | set(b)) == 50
    f2, _ = trial_splits(50, n_splits=7, seed=3)
    np.testing.assert_array_equal(first, f2)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("nan_fraction", [0.0, 0.1])
def test_splithalf_equals_plain_scipy_loop(nan_fraction):
    x, _, _ = _planted(nan_fraction=nan_fraction)
    fast = splithalf_reliability(x, n_splits=6, seed=1, chunk_size=7, progress=False)
    slow = _loop_reference(x, n_splits=6, seed=1)
    assert fast.shape == (40,)
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)


def test_splithalf_matches_reliability_of_independent_repeats():
    # The Spearman-Brown corrected split-half value estimates the correlation between two
    # independent 50-trial averages: check against simulated repeats.
    x, signal, noise_sd = _planted(n_neurons=200, n_stimuli=118, seed=2)
    rel = splithalf_reliability(x, n_splits=20, seed=0, progress=False)
    expected = signal.var(axis=1) / (signal.var(axis=1) + noise_sd**2 / 50)
    assert np.corrcoef(rel, expected)[0, 1] > 0.95
    assert abs(np.mean(rel - expected)) < 0.03


def test_splithalf_validates_input():
    with pytest.raises(ValueError, match=r"shape \(n_neurons, n_stimuli, n_trials\), got shape \(3, 4\)"):
        splithalf_reliability(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="at least 2 trials, got n_trials=1"):
        splithalf_reliability(np.zeros((3, 4, 1)))
    with pytest.raises(ValueError, match="n_splits must be >= 1, got 0"):
        splithalf_reliability(np.zeros((3, 4, 10)), n_splits=0)


def test_constant_neuron_gives_nan():
    x, _, _ = _planted(n_neurons=3)
    x[1] = 1.0
    rel = splithalf_reliability(x, n_splits=3, progress=False)
    assert np.isnan(rel[1]) and np.isfinite(rel[[0, 2]]).all()


def test_rdm_reliability_equals_plain_loop():
    x, _, _ = _planted(n_neurons=60, n_stimuli=25, seed=4)
    value, per_split = splithalf_rdm_reliability(x, n_splits=4, seed=2, return_splits=True)
    first, second = trial_splits(50, 4, 2)
    ref = []
    for a, b in zip(first, second):
        ra = pdist(x[:, :, a].mean(axis=2).T.astype(np.float64), metric="correlation")
        rb = pdist(x[:, :, b].mean(axis=2).T.astype(np.float64), metric="correlation")
        r = stats.pearsonr(ra, rb)[0]
        ref.append(2 * r / (1 + r))
    np.testing.assert_allclose(per_split, ref, rtol=1e-6)
    assert value == pytest.approx(np.mean(ref))
    rho = splithalf_rdm_reliability(x, n_splits=2, method="spearman")
    assert 0 < rho <= 1
    with pytest.raises(ValueError, match="method='kendall'; expected 'pearson' or 'spearman'"):
        splithalf_rdm_reliability(x, method="kendall")


def test_noise_ceiling_bounds_correlation_with_truth():
    # corr(true signal, trial average) should match sqrt(reliability)
    x, signal, _ = _planted(n_neurons=300, n_stimuli=118, seed=5)
    rel = splithalf_reliability(x, n_splits=20, progress=False)
    ceiling = noise_ceiling(rel)
    avg = x.mean(axis=2)
    truth_r = np.array([np.corrcoef(s, a)[0, 1] for s, a in zip(signal, avg)])
    ok = rel > 0.2
    assert np.median(np.abs(truth_r[ok] - ceiling[ok])) < 0.03
    assert np.isnan(noise_ceiling(-0.1)) and noise_ceiling(0.81) == pytest.approx(0.9)


def test_spearman_brown_doubles_test_length():
    # two independent halves with correlation r -> full-length reliability from simulation
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    np.testing.assert_allclose(spearman_brown(np.array([0.0, 1.0])), [0.0, 1.0])


def _ragged(n_neurons=30, seed=6, noise_scale=1.0):
    """Planted responses with ragged repeats, NaN-padded: per stimulus 1, 2, 4 or 10 trials."""
    rng = np.random.default_rng(seed)
    repeats = np.repeat([1, 2, 4, 10], [14, 6, 8, 12])
    x, signal, _ = _planted(n_neurons=n_neurons, n_stimuli=repeats.size, n_trials=10, seed=seed)
    x = (signal[:, :, None] + noise_scale * (x - signal[:, :, None])).astype(np.float32)
    x[:, np.arange(10)[None, :] >= repeats[:, None]] = np.nan
    return x, repeats, rng


def _repeated_loop_reference(x, n_splits, seed):
    """Per neuron: the stimuli with at least 2 trials, position splits, scipy Pearson, Spearman-Brown."""
    first, second = trial_splits(x.shape[2], n_splits, seed)
    out = []
    for neuron in x.astype(np.float64):
        repeated = neuron[np.isfinite(neuron).sum(axis=1) >= 2]
        values = []
        for a_idx, b_idx in zip(first, second):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                a = np.nanmean(repeated[:, a_idx], axis=1)
                b = np.nanmean(repeated[:, b_idx], axis=1)
            ok = np.isfinite(a) & np.isfinite(b)
            r = stats.pearsonr(a[ok], b[ok])[0]
            values.append(2 * r / (1 + r))
        out.append(np.mean(values))
    return np.array(out)


def test_ragged_splithalf_uses_repeated_stimuli_as_a_plain_loop():
    x, repeats, rng = _ragged()
    fast = splithalf_reliability(x, n_splits=7, seed=2, chunk_size=8, progress=False)
    np.testing.assert_allclose(fast, _repeated_loop_reference(x, n_splits=7, seed=2), rtol=1e-5, atol=1e-6)
    # single presentations do not count: changing them leaves the reliability as it is
    y = x.copy()
    y[:, repeats == 1, 0] = rng.normal(scale=50.0, size=(x.shape[0], int((repeats == 1).sum())))
    np.testing.assert_array_equal(splithalf_reliability(y, n_splits=7, seed=2, chunk_size=8, progress=False), fast)
    # ... nor does dropping them
    np.testing.assert_allclose(splithalf_reliability(x[:, repeats > 1], n_splits=7, seed=2, progress=False), fast,
                               rtol=1e-6)


def test_ragged_rdm_reliability_uses_repeated_stimuli():
    x, repeats, _ = _ragged(n_neurons=50, seed=8, noise_scale=0.2)
    value, per_split = splithalf_rdm_reliability(x, n_splits=3, seed=1, return_splits=True)
    first, second = trial_splits(10, 3, 1)
    rep = x[:, repeats > 1].astype(np.float64)
    ref = []
    for a, b in zip(first, second):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ma, mb = np.nanmean(rep[:, :, a], axis=2), np.nanmean(rep[:, :, b], axis=2)
        # a stimulus with all its trials in one half leaves that half undefined: RDM without it
        ok = np.isfinite(ma).all(axis=0) & np.isfinite(mb).all(axis=0)
        ra = pdist(ma[:, ok].T, metric="correlation")
        rb = pdist(mb[:, ok].T, metric="correlation")
        r = stats.pearsonr(ra, rb)[0]
        ref.append(2 * r / (1 + r))
    np.testing.assert_allclose(per_split, ref, rtol=1e-6, atol=1e-7)
    assert value == pytest.approx(np.mean(ref)) and 0.5 < value < 1
    with pytest.raises(ValueError, match="at least 3 stimuli shown at least twice, got 0 of 14"):
        splithalf_rdm_reliability(x[:, repeats == 1])
