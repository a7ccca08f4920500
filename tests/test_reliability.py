"""Split-half reliability, RDM reliability and noise ceilings against plain references."""
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
