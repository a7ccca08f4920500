"""Private: layer Gram matrices, and the Gram and RDM reducers built on them.

- :class:`LayerGram` / :func:`layer_gram` -- the doubly centered Gram ``Xc Xc^T`` and the
  row-centered Gram ``Xr Xr^T`` of features ``X`` (n_stimuli, n_features), both
  (n_stimuli, n_stimuli) float64, in one pass over feature blocks.
- :class:`GramReducer` -- reducer: features -> ``Xc Xc^T`` (n_stimuli, n_stimuli), float64.
- :class:`RDMReducer` -- reducer: features -> ``1 - corrcoef(X)`` (n_stimuli, n_stimuli),
  float64.
- ``_ChannelStats`` -- per-channel Gram statistics of a channel-major layer, from which the
  Gram of any per-channel affine map of it follows (the batch-norm shortcut of
  :class:`~mbutils.reduction.SharedPasses`).

Reducers used alone compute their layer's Gram themselves; within an extraction they take it
from the extraction's :class:`~mbutils.reduction.SharedPasses` (:func:`_gram_of`), which
computes it once for the reducers that ask for it in the same precision.
"""
from __future__ import annotations

import numpy as np

from . import _workers as _gw
from ._support import _GRAM_BLOCK, _PRECISIONS, _U32, _as_tensor, _check_precision, _kernels, _log

#: a float32 RDM is redone in float64 when its estimated error exceeds this fraction of the
#: spread of the stimulus correlations, times the square root of the number of stimulus pairs
#: (see RDMReducer.float32_error). Measured: RSA errors are about 0.3 / sqrt(n_pairs) of the
#: largest correlation error over the spread (2.6e-6 at 8.4e-4 with 118 stimuli on random
#: Inception-V3's avgpool, 2.1e-6 at 6.2e-5 with 24 stimuli on random EfficientNetV2-S), aiming
#: at RSA errors below about 3e-7 (8.3e-5 of the spread at 118 stimuli); an estimate, not a bound
RDM_TOLERANCE = 1e-6
#: layers of at most this many features get float64 RDMs directly: they cost little, and the
#: float32 error estimate is tight for them (1 to 1.2 times the error)
RDM_FLOAT64_FEATURES = 16384


class LayerGram:
    """Second-order statistics of one layer, computed in one pass over feature blocks.

    Attributes
    ----------
    kc : ndarray (n_stimuli, n_stimuli), float64
        Doubly centered Gram ``Xc Xc^T`` (``Xc``: each feature centered over stimuli).
    kr : ndarray (n_stimuli, n_stimuli), float64
        Row-centered Gram ``Xr Xr^T`` (``Xr``: each stimulus centered over features), whose
        normalisation is ``numpy.corrcoef(X)``.
    n_features : int
    """

    def __init__(self, kc, kr, n_features):
        self.kc, self.kr, self.n_features = kc, kr, n_features

    def corrcoef(self) -> np.ndarray:
        """``numpy.corrcoef(X)`` (stimuli x stimuli); rows of constant stimuli are NaN."""
        d = np.sqrt(np.clip(np.diag(self.kr), 0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            c = self.kr / np.outer(d, d)
        c[d == 0, :] = np.nan
        c[:, d == 0] = np.nan
        np.fill_diagonal(c, np.where(d > 0, 1.0, np.nan))
        return np.clip(c, -1.0, 1.0, out=c, where=~np.isnan(c))


def layer_gram(features, block: int | None = None, precision: str = "float64") -> LayerGram:
    """Doubly centered and row-centered Gram matrices of a layer, with one GEMM per block.

    The feature-centered Gram is accumulated block by block (float32 products of centered
    blocks, summed in float64); the row-centered Gram follows from it in closed form
    (``Xr = Xc + 1 mu^T - m 1^T`` with column means ``mu`` and row means ``m``), so both cost
    one pass.

    Parameters
    ----------
    features : torch.Tensor or ndarray of shape (n_stimuli, n_features)
    block : int, optional
        Features per block (bounds the temporary memory); default 8192, and 4096 for float32
        on the CPU (where the blocks are spread over worker threads).
    precision : {"float64", "float32"}
        Arithmetic of the block products (one BLAS product per block; each block is centered
        over stimuli first, and the products are summed in float64):
        ``"float64"`` matches ``numpy.corrcoef`` to about 1e-12; ``"float32"`` is about twice
        as fast, with RDM errors of about 1e-7 (RSA scores of a random ResNet-18 within 2e-7
        of float64).

    Returns
    -------
    LayerGram
    """
    import torch

    if precision not in _PRECISIONS:
        raise ValueError(f"precision={precision!r}; expected one of {list(_PRECISIONS)}")
    work = getattr(torch, precision)
    x = _as_tensor(features)
    n, p = x.shape
    kernels = _kernels()
    if kernels is not None and x.device.type == "cpu":
        return _layer_gram_cpu(kernels, x.numpy(), block, precision)
    block = _GRAM_BLOCK if block is None else max(1, int(block))
    f64 = dict(dtype=torch.float64, device=x.device)
    s = _common_value(x)  # the sums below are of X - s (the same row-centered Gram)
    # each block is shifted by its column means rounded to the working precision (c), and the
    # doubly centered Gram corrected for delta = mean - c in float64 (see _gram_from_shifted)
    ks, rs, rd, re = torch.zeros((n, n), **f64), torch.zeros(n, **f64), torch.zeros(n, **f64), torch.zeros(n, **f64)
    s1 = s2 = dd = 0.0
    for j in range(0, p, block):
        xb = x[:, j:j + block]
        mu = xb.mean(0, dtype=torch.float64)
        c = mu.to(work)
        delta = mu - c.to(torch.float64)
        xs = xb.to(work) - c
        ks += (xs @ xs.t()).to(torch.float64)
        xs64 = xs.to(torch.float64)
        cs = c.to(torch.float64) - s
        rs += xs64.sum(1)
        rd += xs64 @ cs
        re += xs64 @ delta
        s1 += float(cs.sum())
        s2 += float(cs @ cs)
        dd += float(delta @ delta)
    return _gram_from_shifted(ks.cpu().numpy(), rs.cpu().numpy(), rd.cpu().numpy(), re.cpu().numpy(), s2, s1, dd, p)


def _common_value(x) -> float:
    """A value near the layer's mean (the mean of its first stimulus's features, float64; 0 if
    not finite): the block sums over column means are taken relative to it, so that the
    row-centered Gram of features that vary little around a large common value (a sigmoid gate
    at 0.5 +- 1e-6) does not come from differences of large sums."""
    import torch

    if isinstance(x, torch.Tensor):
        v = float(x[0].mean(dtype=torch.float64)) if x.shape[0] else 0.0
    else:
        v = float(np.mean(x[0], dtype=np.float64)) if x.shape[0] else 0.0
    return v if np.isfinite(v) else 0.0


def _padded_block(buffer, n: int, w: int):
    """The (n_pad, w) float32 view of ``buffer`` whose first ``n`` rows the centering kernel
    wrote as an (n, w) block; the rows below are set to zero (BLAS multiplies rows in
    multiples of 8 faster: 118 -> 120 is 10% faster; see :mod:`mbutils.reduction._workers`)."""
    n_pad = _gw.padded_rows(n)
    buffer[n * w:n_pad * w] = 0.0
    return buffer[:n_pad * w].reshape(n_pad, w)


def _layer_gram_cpu(kernels, x, block, precision) -> LayerGram:
    """:func:`layer_gram` on the CPU: fused centering kernel and one BLAS product per block.

    float32: blocks of 4096 features spread over worker threads, each centering its blocks and
    multiplying them with single-threaded BLAS (:func:`mbutils.reduction._workers.block_grams`);
    float64: blocks centered into one reused buffer, products by scipy's ``dsyrk``.

    ``"float64"``: each block is centered on its exact (float64) column means. ``"float32"``:
    on the means rounded to float32 (``c``), so that the centering is one float32 subtraction,
    correctly rounded; the row-centered Gram follows exactly from any such shift, and the
    doubly centered one is corrected for ``mean - c`` in float64.
    """
    from scipy.linalg import blas

    n, p = x.shape
    x = np.ascontiguousarray(x, dtype=np.float32)
    if precision == "float32":
        block = max(1, min(_gw.BLOCK if block is None else int(block), p))
        st = _gw.block_grams(kernels, x, [(j, min(p, j + block), 0) for j in range(0, p, block)], 1,
                             shift=_common_value(x))
        return _gram_from_shifted(st.ks[0], st.rs[0], st.rd[0], st.re[0], float(st.s2[0]), float(st.s1[0]),
                                  float(st.dd[0]), p)
    block = max(1, min(_GRAM_BLOCK if block is None else int(block), p))
    kc = np.zeros((n, n))
    a = np.zeros(n)
    b = np.zeros(n)
    mu_sq = 0.0
    mu_sum = 0.0
    s = _common_value(x)  # the sums below are of X - s (the same row-centered Gram)
    buffer = np.empty(n * block, dtype=np.float64)
    for j in range(0, p, block):
        xc, mu, rowsum, rowdot = kernels.center_block(x, j, min(p, j + block), np.float64, buffer)
        k = blas.dsyrk(1.0, xc.T, trans=1)  # upper triangle of xc @ xc.T
        kc += np.triu(k) + np.triu(k, 1).T
        mu = mu - s
        a += rowdot - s * rowsum
        b += rowsum
        mu_sq += float(mu @ mu)
        mu_sum += float(mu.sum())
    kc = (kc + kc.T) / 2
    return _finish_gram(kc, a, b, mu_sq, mu_sum, p)


class _ChannelStats:
    """Per-channel second-order statistics of a layer whose features are channel-major.

    The features of channel ``k`` are columns ``k*hw:(k+1)*hw``. Each channel is centered
    on its float32-rounded column means ``c`` (as in the float32 :func:`layer_gram`), and
    kept are, per channel, the Gram of the shifted block ``Ks`` (n, n), the row sums
    ``rs``, ``rd`` (against ``c - s``) and ``re`` (against ``delta = mean - c``), and the sums
    ``s1 = sum (c - s)``, ``s2 = sum (c - s)^2``, ``dd = sum delta^2``, with ``s`` a value near
    the layer's mean (:func:`_common_value`).

    The Gram of any per-channel affine map of the layer, ``y = scale[k] * x + shift[k]``
    (an eval-mode batch normalisation), follows in closed form: shifted block
    ``scale[k] * Xs_k``, shift ``scale[k] * c + shift[k]``, ``delta`` times ``scale[k]``.
    """

    def __init__(self, x, n_channels, kernels):
        import torch

        n, p = x.shape
        C = int(n_channels)
        hw = p // C
        self.n_channels, self.hw, self.p = C, hw, p
        self.shift = s = _common_value(x)
        wide = hw >= _CHANNEL_ALONE
        if wide:
            # wide channels: each cut into equal blocks of at most _gw.BLOCK features, whole
            # channels per worker thread (:func:`mbutils.reduction._workers.block_grams`)
            parts = -(-hw // _gw.BLOCK)
            cuts = [round(i * hw / parts) for i in range(parts + 1)]
            jobs = [(k * hw + cuts[i], k * hw + cuts[i + 1], k) for k in range(C) for i in range(parts)]
            st = _gw.block_grams(kernels, np.ascontiguousarray(x, dtype=np.float32), jobs, C, shift=s)
        else:
            st = _gw.BlockSums(C, n)  # filled below
        self.ks, self.rs, self.rd, self.re = st.ks, st.rs, st.rd, st.re
        self.s1, self.s2, self.dd = st.s1, st.s2, st.dd
        if wide:
            return
        # narrow channels: several per block, one centering item and one batched GEMM each
        per = max(1, _GRAM_BLOCK // hw)
        n_pad = _gw.padded_rows(n)
        buffer = np.empty(n_pad * per * hw, dtype=np.float32)
        for k0 in range(0, C, per):
            k1 = min(C, k0 + per)
            xc, c, delta, rs, rd, re = kernels.center_block_f32(x, k0 * hw, k1 * hw, buffer, item=hw, per_item=True)
            xp = _padded_block(buffer, n, xc.shape[1])
            t = torch.from_numpy(xp).view(n_pad, k1 - k0, hw).transpose(0, 1)  # (channels, n_pad, hw)
            self.ks[k0:k1] += torch.bmm(t, t.transpose(1, 2)).numpy()[:, :n, :n]
            self._add(slice(k0, k1), rs, rd, re, c, delta, k1 - k0)

    def _add(self, ks, rs, rd, re, c, delta, m):
        c = c - self.shift
        self.rs[ks] += rs
        self.rd[ks] += rd - self.shift * rs
        self.re[ks] += re
        self.s1[ks] += c.reshape(m, -1).sum(1)
        self.s2[ks] += (c * c).reshape(m, -1).sum(1)
        self.dd[ks] += (delta * delta).reshape(m, -1).sum(1)

    def gram(self, scale=None, shift=None) -> LayerGram:
        """The :class:`LayerGram` of the layer itself, or of ``scale[k] * x + shift[k]``."""
        C, hw = self.n_channels, self.hw
        a = np.ones(C) if scale is None else np.asarray(scale, dtype=np.float64)
        b = np.zeros(C) if shift is None else np.asarray(shift, dtype=np.float64)
        a2 = a * a
        # channel k of the map: c_y - s_y = a (c - s) + t with t = a s + b - s_y, and s_y the
        # mean of the map's channel means (so that the sums over t do not cancel either)
        t = a * self.shift + b
        t = t - np.mean(a * self.s1 / hw + t)
        return _gram_from_shifted(
            np.einsum("k,kij->ij", a2, self.ks), a @ self.rs, a2 @ self.rd + (a * t) @ self.rs, a2 @ self.re,
            float(a2 @ self.s2 + 2 * (a * t) @ self.s1 + hw * (t @ t)), float(a @ self.s1 + hw * t.sum()),
            float(a2 @ self.dd), self.p)


# channels at least this wide get blocks (and GEMMs) of their own, on worker threads; narrower
# ones are multiplied with batched GEMMs (faster below about 2,000 features per channel)
_CHANNEL_ALONE = 2048


def _gram_from_shifted(ks, rowsum, rowdot, rowdelta, c_sq, c_sum, delta_sq, p) -> LayerGram:
    """:class:`LayerGram` from the Gram of the features shifted by ``c`` (float32-rounded means).

    ``ks = Xs Xs^T`` with ``Xs = X - 1 c^T``; per row ``rowsum = Xs 1``, ``rowdot = Xs (c - s)``
    and ``rowdelta = Xs delta`` (``delta = mean - c``); ``c_sq = (c - s).(c - s)``, ``c_sum =
    sum (c - s)``, ``delta_sq = delta.delta``, for any constant ``s`` (the statistics of ``X -
    s``, whose row-centered Gram is ``X``'s). The row-centered Gram is exact for any shift; the
    doubly centered one is ``(Xs - 1 delta^T)(Xs - 1 delta^T)^T``.
    """
    ks = (ks + ks.T) / 2
    gram = _finish_gram(ks, rowdot, rowsum, c_sq, c_sum, p)
    gram.kc = ks - rowdelta[:, None] - rowdelta[None, :] + delta_sq
    return gram


def _finish_gram(kc, a, b, mu_sq, mu_sum, p) -> LayerGram:
    """Row-centered Gram from the doubly centered one (closed form, float64).

    ``a = Xc mu``, ``b = Xc 1``, ``mu_sq = mu.mu``, ``mu_sum = sum mu`` for the column means
    ``mu`` of the layer, or of the layer minus a constant near its mean (the same row-centered
    Gram, without the cancellation of large sums).
    """
    n = kc.shape[0]
    m = (b + mu_sum) / p
    one = np.ones(n)
    kr = (
        kc
        + np.outer(a, one) + np.outer(one, a)
        - np.outer(b, m) - np.outer(m, b)
        + mu_sq
        - mu_sum * (np.outer(one, m) + np.outer(m, one))
        + p * np.outer(m, m)
    )
    return LayerGram(kc, (kr + kr.T) / 2, p)


def _gram_of(features, precision, shared) -> LayerGram:
    """The :class:`LayerGram` of ``features`` in ``precision``: from ``shared`` (a
    :class:`~mbutils.reduction.SharedPasses`, which computes it once for all its reducers) or,
    when ``shared`` is None, computed here."""
    if shared is None:
        return layer_gram(features, precision=precision)
    return shared._gram(features, precision)


class GramReducer:
    """Reducer: the doubly centered Gram matrix ``Xc Xc^T`` of the full layer (float64).

    Kernel ridge on it is exactly ridge on the layer's full features
    (:func:`mbutils.scoring.ridge_gcv_predictions_from_gram`), with no projection.

    Parameters
    ----------
    precision : {"float64", "float32", "auto"}
        Arithmetic of the block products (see :func:`layer_gram`). ``"auto"``: float64 for
        layers of at most :data:`RDM_FLOAT64_FEATURES` features and float32 for larger ones,
        the choice of :class:`RDMReducer` (float32), so that within an extraction both take one
        shared pass over each layer (the layer Grams of the CKA metric).

    Returns
    -------
    ndarray of shape (n_stimuli, n_stimuli), float64
    """

    def __init__(self, precision: str = "float64"):
        if precision != "auto":
            _check_precision(precision)
        self.precision = precision
        self.key = "gram-centered-" + {"float64": "f64", "float32": "f32-c2", "auto": "auto-c1"}[precision]

    rowwise = False

    def __call__(self, features) -> np.ndarray:
        """The doubly centered Gram of ``features`` (n_stimuli, n_features): (n_stimuli, n_stimuli)."""
        return self._reduce(features, None)

    def _reduce(self, features, shared) -> np.ndarray:
        precision = self.precision
        if precision == "auto":
            precision = "float64" if tuple(features.shape)[1] <= RDM_FLOAT64_FEATURES else "float32"
        return _gram_of(features, precision, shared).kc.copy()

    def __repr__(self):
        return f"GramReducer(precision={self.precision!r})"


class RDMReducer:
    """Reducer: the layer's RDM ``1 - numpy.corrcoef(X)`` over stimuli (float64).

    Within an extraction (:class:`~mbutils.reduction.SharedPasses`), shares its one pass over
    the layer with the other Gram-based reducers (:class:`GramReducer`,
    :class:`~mbutils.reduction.PCAReducer`) that ask for the Gram in the same precision.

    Parameters
    ----------
    precision : {"float32", "float64"}
        Arithmetic of the block products (see :func:`layer_gram`); the default float32
        products (blocks centered in float64, sums in float64) keep RSA scores within about
        2e-7 of float64 arithmetic at half the cost. A float32 RDM whose estimated error
        (:meth:`float32_error`) exceeds :data:`RDM_TOLERANCE` of the spread of the layer's
        stimulus correlations (times the square root of the number of stimulus pairs) is
        computed again in float64, and layers of at most :data:`RDM_FLOAT64_FEATURES` features
        are computed in float64 directly; ``n_float64`` counts the float64 layers.

    Returns
    -------
    ndarray of shape (n_stimuli, n_stimuli), float64
    """

    def __init__(self, precision: str = "float32"):
        self.precision = _check_precision(precision)
        # "c6": float32 RDMs whose error estimate is too large, and small layers, are float64; the
        # row-centered Gram from sums relative to a value near the layer mean (_common_value)
        self.key = "rdm-pearson-" + ("f64" if precision == "float64" else "f32-c6")
        #: layers whose float32 RDM was redone in float64 (see float32_error)
        self.n_float64 = 0

    rowwise = False

    def __call__(self, features) -> np.ndarray:
        """The RDM of ``features`` (n_stimuli, n_features): (n_stimuli, n_stimuli)."""
        return self._reduce(features, None)

    def _reduce(self, features, shared) -> np.ndarray:
        small = self.precision == "float32" and tuple(features.shape)[1] <= RDM_FLOAT64_FEATURES
        if small:
            self.n_float64 += 1
            return 1.0 - _gram_of(features, "float64", shared).corrcoef()
        gram = _gram_of(features, self.precision, shared)
        corr = gram.corrcoef()
        if self.precision == "float32":
            err, spread = self.float32_error(gram, corr)
            n = corr.shape[0]
            if not err <= RDM_TOLERANCE * np.sqrt(n * (n - 1) / 2) * spread:
                self.n_float64 += 1
                _log.info("RDM of a layer of %d features redone in float64 (float32 error estimate %.2g against a "
                          "spread of the correlations of %.2g)", gram.n_features, err, spread)
                corr = layer_gram(features, precision="float64").corrcoef()
        return 1.0 - corr

    @staticmethod
    def float32_error(gram, corr=None):
        """Estimated largest error of a float32 Gram's correlations, and the spread of the correlations.

        The float32 Gram sums products of stimulus-centered features in blocks of up to ``b =
        4096`` (then in float64): an error in ``kc[i, j]`` of about ``u (sqrt(b) |kc[i, j]| +
        sqrt(kc[i, i] kc[j, j]))`` (``u = 2^-24``; the coherent part of the sum and its rounding
        noise), which reaches the correlations (``kr`` normalized; the rest of ``kr`` is float64)
        divided by ``sqrt(kr[i, i] kr[j, j])``. The RSA score depends on the correlations
        through their spread (standard deviation of the off-diagonal entries), which is small when
        every stimulus gives nearly the same activations. Measured on random Inception-V3 and
        ResNet-18, the estimate is 1 to 7 times the largest actual error.

        Parameters
        ----------
        gram : LayerGram
        corr : ndarray (n, n), optional
            ``gram.corrcoef()``, if already computed.

        Returns
        -------
        err, spread : float
            ``spread`` is NaN (and the RDM redone) when the correlations are not all finite.
        """
        corr = gram.corrcoef() if corr is None else corr
        n = corr.shape[0]
        if n < 3:
            return 0.0, 1.0
        iu = np.triu_indices(n, 1)
        off = corr[iu]
        spread = float(np.std(off)) if np.isfinite(off).all() else float("nan")
        dc, dr = np.sqrt(np.clip(np.diag(gram.kc), 0, None)), np.sqrt(np.diag(gram.kr))
        root_b = np.sqrt(min(int(gram.n_features), _gw.BLOCK))
        with np.errstate(divide="ignore", invalid="ignore"):
            err = _U32 * (root_b * np.abs(gram.kc[iu]) + (dc[:, None] * dc[None, :])[iu]) / \
                (dr[:, None] * dr[None, :])[iu]
        return (float(err.max()) if np.isfinite(err).all() else float("inf")), spread

    def __repr__(self):
        return f"RDMReducer(precision={self.precision!r})"
