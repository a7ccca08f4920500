"""Private: what every reducer module uses: input tensors, the compiled kernels, constants.

``features`` handed to a reducer is one layer's activations for all stimuli, a
``torch.Tensor`` or numpy array of shape (n_stimuli, n_features); :func:`_as_tensor` gives it as
a float32 ``torch.Tensor`` of that shape (a view when it already is one).
"""
from __future__ import annotations

import logging

import numpy as np

# columns per block when accumulating Gram matrices (BLAS product per block, float64 sum); the
# float32 CPU path uses the blocks of its worker threads (mbutils.reduction._workers.BLOCK)
_GRAM_BLOCK = 8192
_PRECISIONS = ("float64", "float32")
#: the logger of every reducer: layers redone in float64 are reported to it
_log = logging.getLogger("mbutils.reduction")
#: unit roundoff of float32
_U32 = 2.0 ** -24


def _as_tensor(features):
    """``features`` as a float32 ``torch.Tensor`` of shape (n_stimuli, n_features)."""
    import torch

    if isinstance(features, torch.Tensor):
        t = features.detach()
    else:
        t = torch.from_numpy(np.ascontiguousarray(features))
    if t.ndim != 2:
        raise ValueError(f"features must have shape (n_stimuli, n_features), got shape {tuple(t.shape)}")
    if t.dtype != torch.float32:
        t = t.to(torch.float32)
    return t


def _check_precision(precision):
    if precision not in _PRECISIONS:
        raise ValueError(f"precision={precision!r}; expected one of {list(_PRECISIONS)}")
    return precision


_KERNELS = None


def _kernels():
    """The compiled kernels (:mod:`mbutils.reduction._kernels`), or None when numba is not installed.

    Imported on first use, so that importing :mod:`mbutils.reduction` does not import numba.
    """
    global _KERNELS
    if _KERNELS is None:
        try:
            from . import _kernels as kernels
        except ImportError:  # pragma: no cover - numba is a declared dependency
            _KERNELS = False
        else:
            _KERNELS = kernels
    return _KERNELS or None
