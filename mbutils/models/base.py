"""The interface every feature model implements (neural networks and baselines alike)."""
from __future__ import annotations

import abc
import dataclasses
from typing import Callable

import numpy as np

__all__ = ["LayerInfo", "AffineLink", "FeatureModel", "KeepReducer", "check_stimuli"]


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """One layer of a feature model.

    Attributes
    ----------
    name : str
        Unique layer name (for torch models: the module's qualified name from
        ``named_modules()``, e.g. ``"layer1.0.conv1"``).
    index : int
        1-based position in network order.
    depth : float
        Relative depth ``index / n_layers`` in (0, 1].
    n_features : int
        Number of features of the flattened layer output (per stimulus).
    module_type : str
        Class name of the module (``"Conv2d"``), or a descriptive tag for baselines.
    affine : AffineLink or None
        Set when the layer is a per-channel affine map of an earlier layer (an eval-mode
        batch normalisation applied to that layer's very output): reducers may then derive
        its second-order statistics from the earlier layer's instead of reading it again.
    """

    name: str
    index: int
    depth: float
    n_features: int
    module_type: str = ""
    affine: "AffineLink | None" = dataclasses.field(default=None, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class AffineLink:
    """``layer = scale[k] * source + shift[k]`` on the features of channel ``k``.

    Features are channel-major: channel ``k`` is the ``n_features / len(scale)`` consecutive
    features starting at ``k * n_features / len(scale)`` (NCHW flattening).

    Attributes
    ----------
    source : str
        Name of the earlier layer.
    scale, shift : ndarray of shape (n_channels,), float64
    """

    source: str
    scale: np.ndarray = dataclasses.field(compare=False)
    shift: np.ndarray = dataclasses.field(compare=False)


def check_stimuli(stimuli) -> np.ndarray:
    """Validate grayscale stimuli.

    Parameters
    ----------
    stimuli : array of shape (n_stimuli, height, width), uint8

    Returns
    -------
    numpy.ndarray of shape (n_stimuli, height, width), uint8
    """
    arr = np.asarray(stimuli)
    if arr.ndim != 3:
        raise ValueError(
            f"stimuli must have shape (n_stimuli, height, width) (grayscale), got shape {arr.shape}"
        )
    if arr.dtype != np.uint8:
        raise TypeError(f"stimuli must be uint8 grayscale images (0..255), got dtype {arr.dtype}")
    if arr.shape[0] < 1:
        raise ValueError("stimuli is empty: expected at least one image")
    return arr


class FeatureModel(abc.ABC):
    """A model that turns grayscale images into layer-wise features.

    Subclasses implement :meth:`run`, which hands each layer's features for all stimuli to a
    callback, one layer at a time, so that no more than one layer is ever held in memory.
    """

    #: registry name, e.g. ``"resnet18"``
    name: str = ""
    #: ``"trained"`` or ``"random"``
    weights: str = "random"
    #: torch device string the features are produced on
    device: str = "cpu"

    @property
    def identity(self) -> str:
        """A string that identifies the model, its weights and its input transform (cache key part)."""
        return f"{self.name}|{self.weights}"

    @abc.abstractmethod
    def run(
        self,
        stimuli: np.ndarray,
        on_layer: Callable[[LayerInfo, "object"], None],
        batch_size: int | None = None,
        progress: bool | None = None,
    ) -> None:
        """Compute features and call ``on_layer(layer, features)`` for each layer.

        Parameters
        ----------
        stimuli : array of shape (n_stimuli, height, width), uint8
            Grayscale images.
        on_layer : callable
            Called once per layer, in network order, with a :class:`LayerInfo` and a
            ``torch.Tensor`` of shape (n_stimuli, n_features), float32, on ``self.device``.
            The tensor may be freed after the call returns.
        batch_size : int, optional
            Images per forward pass; features are still handed over for all stimuli at once.
        progress : bool, optional
            Show a progress bar (default: ``mbutils.get_config().progress``).
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, weights={self.weights!r}, device={self.device!r})"


class KeepReducer:
    """Reducer that keeps a layer's features as they are (float32 numpy), for small layers.

    Parameters
    ----------
    max_features : int, optional
        Refuse layers larger than this (a guard against holding huge layers in memory).
    """

    def __init__(self, max_features: int | None = None):
        self.max_features = max_features
        self.key = "keep" if max_features is None else f"keep-max{max_features}"

    def __call__(self, features):
        n = features.shape[1]
        if self.max_features is not None and n > self.max_features:
            raise ValueError(
                f"layer has {n} features, more than KeepReducer(max_features={self.max_features}) allows"
            )
        import torch

        return features.detach().to("cpu", dtype=torch.float32).numpy().copy()
