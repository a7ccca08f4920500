"""Non-neural-network baselines: Gabor filter bank, GIST, random Fourier features.

They implement the same :class:`~mbutils.models.base.FeatureModel` interface as the networks
(``run(stimuli, on_layer)`` hands each "layer" to a callback), so that the scoring treats them
like any model (paper sections 2.6 and 3.5). They have no trained variant: the only accepted
``weights`` is ``"random"`` (the train type under which their scores are stored).

- ``gabor``: a bank of Gabor filters (``skimage.filters.gabor_kernel``; 4 frequencies x 8
  orientations by default), response magnitude averaged over each cell of an 8 x 8 grid:
  one layer of ``n_filters * 64`` features (or one layer per frequency with ``per_scale=True``).
- ``gist``: GIST / spatial-envelope descriptors (Oliva & Torralba, 2001): prefilter (log,
  whitening, local contrast normalisation), 4 scales x 8 orientations of Fourier-domain
  Gabor-like filters, amplitude averaged over a 4 x 4 grid: one layer of 512 features.
- ``random_fourier``: 4096 random Fourier features (Rahimi & Recht, 2007) of the downsampled,
  flattened pixels, ``n_draws`` independent draws, each one "layer" so that the scoring's max
  over layers is the paper's max over draws (the paper used 600 draws: ``n_draws=600``, which
  the ``paper`` sweep config passes through its ``score.model_params``; other configs keep 10).

Images are first resized (anti-aliased, ``skimage.transform.resize``) to a fixed working size so
that the cost does not depend on the stimulus resolution.
"""
from __future__ import annotations

import json
from typing import Callable

import numpy as np

from .base import FeatureModel, LayerInfo, check_stimuli

__all__ = ["GaborModel", "GistModel", "RandomFourierModel", "BASELINE_MODELS", "BASELINE_INFO", "resize_stimuli"]

#: bump when a change alters the features, so that caches keyed on ``identity`` are invalidated
_FEATURE_VERSION = 1


def resize_stimuli(stimuli: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize grayscale uint8 images to a working size, as floats in 0..1.

    Parameters
    ----------
    stimuli : array of shape (n_stimuli, height, width), uint8
    size : (height, width)

    Returns
    -------
    numpy.ndarray of shape (n_stimuli, size[0], size[1]), float32
        Anti-aliased bilinear resize (``skimage.transform.resize``), all images at once.
    """
    from skimage.transform import resize

    arr = check_stimuli(stimuli).astype(np.float32) / 255.0
    if arr.shape[1:] == tuple(size):
        return arr
    # images as channels: skimage resizes the two spatial axes of all images in one call
    out = resize(np.moveaxis(arr, 0, -1), tuple(size), order=1, mode="reflect", anti_aliasing=True,
                 preserve_range=True)
    return np.ascontiguousarray(np.moveaxis(out, -1, 0), dtype=np.float32)


def _check_size(size, minimum: int = 1) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width), two positive ints, got {size!r}") from None
    if h < minimum or w < minimum or (h, w) != tuple(size):
        raise ValueError(f"size must be (height, width), two ints >= {minimum}, got {size!r}")
    return h, w


def _check_grid(grid) -> tuple[int, int]:
    if isinstance(grid, (int, np.integer)):
        grid = (int(grid), int(grid))
    try:
        gy, gx = (int(v) for v in grid)
    except (TypeError, ValueError):
        raise ValueError(f"grid must be an int or (n_rows, n_cols), got {grid!r}") from None
    if gy < 1 or gx < 1 or (gy, gx) != tuple(grid):
        raise ValueError(f"grid must be positive ints, got {grid!r}")
    return gy, gx


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class _Baseline(FeatureModel):
    """Shared plumbing: weights check, device, identity from parameters, handing over layers."""

    name = ""
    module_type = "Baseline"

    def __init__(self, weights: str = "random", device: str | None = None):
        if weights == "trained":
            raise ValueError(
                f"baseline {self.name!r} has no trained weights (got weights='trained'); "
                "it is a fixed, hand-designed feature model: use weights='random'"
            )
        if weights != "random":
            raise ValueError(f"weights must be 'random' for baseline {self.name!r}, got {weights!r}")
        self.weights = weights
        if device is None or device == "auto":
            from ..config import Config, get_config

            device = (get_config() if device is None else Config(device="auto")).resolved_device()
        self.device = str(device)

    def params(self) -> dict:
        """The parameters that determine the features (part of :attr:`identity`)."""
        raise NotImplementedError

    @property
    def identity(self) -> str:
        params = json.dumps(self.params(), sort_keys=True, separators=(",", ":"))
        return f"{self.name}|{self.weights}|v{_FEATURE_VERSION}|{params}"

    def _emit(self, on_layer, layer: LayerInfo, features: np.ndarray) -> None:
        import torch

        if features.shape[1] != layer.n_features:  # pragma: no cover - internal consistency
            raise RuntimeError(f"layer {layer.name}: {features.shape[1]} features, expected {layer.n_features}")
        tensor = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        on_layer(layer, tensor.to(self.device))

    @staticmethod
    def _progress(progress) -> bool:
        if progress is None:
            from ..config import get_config

            return bool(get_config().progress)
        return bool(progress)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args}, device={self.device!r})"


class GaborModel(_Baseline):
    """Gabor filter bank energy over an 8 x 8 grid of each image.

    Each image is resized to ``size``, filtered (linear convolution, reflect padding) with
    complex Gabor kernels from :func:`skimage.filters.gabor_kernel` (DC removed) at each
    frequency and orientation ``k * pi / n_orientations``; the response magnitude (energy) is
    averaged over each cell of a ``grid``.

    Parameters
    ----------
    weights : {"random"}
        Accepted for interface symmetry; ``"trained"`` raises ``ValueError``.
    device : str, optional
        Device of the tensors handed to ``on_layer`` (``"cpu"``, ``"cuda"``, ``"auto"``; default:
        the configured device). The features are computed with numpy/scipy on the CPU.
    frequencies : sequence of float
        Cycles per pixel of the working image (default 0.25, 0.125, 0.0625, 0.03125: periods of
        4 to 32 working pixels).
    n_orientations : int
        Default 8.
    grid : int or (int, int)
        Default 8 (8 x 8 cells).
    size : (int, int)
        Working (height, width), default (128, 160) (about the 918 x 1174 aspect of the Allen scenes).
    bandwidth : float
        Frequency bandwidth in octaves (default 1).
    per_scale : bool
        False (default): one layer ``"gabor"`` with all filters. True: one layer per frequency
        (``"gabor_f0"``, ... fine to coarse), so the max over layers picks a scale.

    Notes
    -----
    Features are ordered filter-major: ``(filter, cell_row, cell_col)`` flattened, filters by
    frequency then orientation. Default: 32 filters x 64 cells = 2048 features.
    """

    name = "gabor"

    def __init__(self, weights: str = "random", device: str | None = None, *,
                 frequencies=(0.25, 0.125, 0.0625, 0.03125), n_orientations: int = 8, grid=8,
                 size=(128, 160), bandwidth: float = 1.0, per_scale: bool = False):
        super().__init__(weights, device)
        freqs = tuple(float(f) for f in np.atleast_1d(np.asarray(frequencies, dtype=float)))
        if not freqs or not all(0 < f <= 0.5 for f in freqs):
            raise ValueError(f"frequencies must be in (0, 0.5] cycles per pixel, got {frequencies!r}")
        self.frequencies = freqs
        self.n_orientations = _check_positive_int("n_orientations", n_orientations)
        self.grid = _check_grid(grid)
        self.size = _check_size(size)
        if self.size[0] < self.grid[0] or self.size[1] < self.grid[1]:
            raise ValueError(f"size {self.size} must be at least the grid {self.grid} in each dimension")
        if not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0 octaves, got {bandwidth!r}")
        self.bandwidth = float(bandwidth)
        self.per_scale = bool(per_scale)

    def params(self) -> dict:
        return {"frequencies": list(self.frequencies), "n_orientations": self.n_orientations,
                "grid": list(self.grid), "size": list(self.size), "bandwidth": self.bandwidth,
                "per_scale": self.per_scale}

    def layers(self) -> list[LayerInfo]:
        """The layers :meth:`run` hands over, in order."""
        cells = self.grid[0] * self.grid[1]
        if not self.per_scale:
            n = len(self.frequencies) * self.n_orientations * cells
            return [LayerInfo("gabor", 1, 1.0, n, "GaborBank")]
        k = len(self.frequencies)
        return [LayerInfo(f"gabor_f{i}", i + 1, (i + 1) / k, self.n_orientations * cells, "GaborBank")
                for i in range(k)]

    def features(self, stimuli: np.ndarray, batch_size: int | None = None, progress: bool | None = None) -> np.ndarray:
        """All Gabor features.

        Returns
        -------
        numpy.ndarray of shape (n_stimuli, n_filters, grid_rows, grid_cols), float32
        """
        from ._gabor import gabor_bank, gabor_energy

        images = resize_stimuli(stimuli, self.size)
        bank = gabor_bank(self.frequencies, self.n_orientations, self.bandwidth)
        batch = _check_positive_int("batch_size", batch_size) if batch_size is not None else 32
        starts = range(0, images.shape[0], batch)
        if self._progress(progress) and len(starts) > 1:
            from tqdm import tqdm

            starts = tqdm(starts, desc="gabor", unit="batch")
        return np.concatenate([gabor_energy(images[s:s + batch], bank, self.grid) for s in starts])

    def run(self, stimuli: np.ndarray, on_layer: Callable[[LayerInfo, object], None],
            batch_size: int | None = None, progress: bool | None = None) -> None:
        feats = self.features(stimuli, batch_size=batch_size, progress=progress)
        n = feats.shape[0]
        layers = self.layers()
        if not self.per_scale:
            self._emit(on_layer, layers[0], feats.reshape(n, -1))
            return
        per = self.n_orientations
        for i, layer in enumerate(layers):
            self._emit(on_layer, layer, feats[:, i * per:(i + 1) * per].reshape(n, -1))


class GistModel(_Baseline):
    """GIST (spatial envelope) descriptors, after Oliva & Torralba (2001).

    Prefilter: ``log(1 + I)``, whitening (subtract a Gaussian low-pass of ``cutoff`` cycles per
    image), local contrast normalisation (divide by ``0.2 +`` the low-passed local standard
    deviation). Then ``n_scales x n_orientations`` oriented band-pass filters applied in the
    Fourier domain (log-Gaussian radial profile centred on 0.25, 0.125, ... cycles per pixel,
    Gaussian angular profile), and the response amplitude averaged over a ``grid``: one layer
    ``"gist"`` of ``n_scales * n_orientations * cells`` features (default 4 x 8 x 16 = 512).

    Parameters
    ----------
    weights : {"random"}
        Accepted for interface symmetry; ``"trained"`` raises ``ValueError``.
    device : str, optional
    n_scales, n_orientations : int
        Default 4 and 8.
    grid : int or (int, int)
        Default 4.
    size : (int, int)
        Working (height, width), default (128, 160).
    cutoff : float
        Prefilter cut-off in cycles per image (default 4).
    log : bool
        Log-transform intensities in the prefilter (default True).

    Notes
    -----
    Features ordered filter-major ``(scale, orientation, cell_row, cell_col)``. The paper
    describes its GIST baseline as "the PCs of the resultant feature matrices"; keeping all
    principal components (unwhitened) is centering plus an orthogonal rotation of these
    descriptors, to which ridge regression with an intercept is exactly invariant (RSA is not
    exactly), so we hand over the descriptors themselves.
    """

    name = "gist"

    def __init__(self, weights: str = "random", device: str | None = None, *, n_scales: int = 4,
                 n_orientations: int = 8, grid=4, size=(128, 160), cutoff: float = 4.0, log: bool = True):
        super().__init__(weights, device)
        self.n_scales = _check_positive_int("n_scales", n_scales)
        self.n_orientations = _check_positive_int("n_orientations", n_orientations)
        self.grid = _check_grid(grid)
        self.size = _check_size(size)
        if self.size[0] < self.grid[0] or self.size[1] < self.grid[1]:
            raise ValueError(f"size {self.size} must be at least the grid {self.grid} in each dimension")
        if not cutoff > 0:
            raise ValueError(f"cutoff must be > 0 cycles per image, got {cutoff!r}")
        self.cutoff = float(cutoff)
        self.log = bool(log)

    def params(self) -> dict:
        return {"n_scales": self.n_scales, "n_orientations": self.n_orientations, "grid": list(self.grid),
                "size": list(self.size), "cutoff": self.cutoff, "log": self.log}

    def layers(self) -> list[LayerInfo]:
        """The layers :meth:`run` hands over, in order."""
        n = self.n_scales * self.n_orientations * self.grid[0] * self.grid[1]
        return [LayerInfo("gist", 1, 1.0, n, "GIST")]

    def features(self, stimuli: np.ndarray, batch_size: int | None = None, progress: bool | None = None) -> np.ndarray:
        """GIST descriptors.

        Returns
        -------
        numpy.ndarray of shape (n_stimuli, n_scales * n_orientations * grid_rows * grid_cols), float32
        """
        from ._gist import gist_features

        images = resize_stimuli(stimuli, self.size) * 255.0
        batch = _check_positive_int("batch_size", batch_size) if batch_size is not None else 32
        starts = range(0, images.shape[0], batch)
        if self._progress(progress) and len(starts) > 1:
            from tqdm import tqdm

            starts = tqdm(starts, desc="gist", unit="batch")
        return np.concatenate([
            gist_features(images[s:s + batch], self.n_scales, self.n_orientations, self.grid,
                          cutoff=self.cutoff, log=self.log)
            for s in starts
        ])

    def run(self, stimuli: np.ndarray, on_layer: Callable[[LayerInfo, object], None],
            batch_size: int | None = None, progress: bool | None = None) -> None:
        self._emit(on_layer, self.layers()[0], self.features(stimuli, batch_size, progress))


class RandomFourierModel(_Baseline):
    """Random Fourier features of the downsampled, flattened pixels, one layer per draw.

    Each image is resized to ``size`` (intensities 0..1) and flattened to ``x``; draw ``d``
    gives ``z(x) = sqrt(2 / D) cos(x W_d + b_d)`` with ``W_d ~ N(0, 2 gamma)``,
    ``b_d ~ U(0, 2 pi)`` (:class:`sklearn.kernel_approximation.RBFSampler`, random state derived
    from ``(seed, d)``), so ``z(x) . z(y)`` approximates ``exp(-gamma ||x - y||^2)``.

    Parameters
    ----------
    weights : {"random"}
        The features are random; ``"trained"`` raises ``ValueError``.
    device : str, optional
    n_components : int
        ``D``, default 4096 (the dimensionality of the SRPs).
    n_draws : int
        Independent draws, each handed over as one layer ``"draw_000"``, ... (default 10 for
        speed; the paper's setting is 600: the score is the max over draws, i.e. over layers).
    gamma : float or "median"
        RBF ``gamma``; ``"median"`` (default) uses ``1 / median ||x_i - x_j||^2`` over the
        stimuli (the median heuristic), so it depends on the stimulus set (part of the cache key).
    size : (int, int)
        Working (height, width), default (32, 40): 1280 pixels.
    seed : int
        Default 0.
    """

    name = "random_fourier"

    def __init__(self, weights: str = "random", device: str | None = None, *, n_components: int = 4096,
                 n_draws: int = 10, gamma="median", size=(32, 40), seed: int = 0):
        super().__init__(weights, device)
        self.n_components = _check_positive_int("n_components", n_components)
        self.n_draws = _check_positive_int("n_draws", n_draws)
        if isinstance(gamma, str):
            if gamma != "median":
                raise ValueError(f"gamma must be a positive float or 'median', got {gamma!r}")
        elif isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.number)) or not gamma > 0:
            raise ValueError(f"gamma must be a positive float or 'median', got {gamma!r}")
        else:
            gamma = float(gamma)
        self.gamma = gamma
        self.size = _check_size(size)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.seed = int(seed)

    def params(self) -> dict:
        return {"n_components": self.n_components, "n_draws": self.n_draws, "gamma": self.gamma,
                "size": list(self.size), "seed": self.seed}

    def layers(self) -> list[LayerInfo]:
        """The layers :meth:`run` hands over, in order (one per draw)."""
        width = max(3, len(str(self.n_draws - 1)))
        return [LayerInfo(f"draw_{d:0{width}d}", d + 1, (d + 1) / self.n_draws, self.n_components,
                          "RandomFourierFeatures") for d in range(self.n_draws)]

    def inputs(self, stimuli: np.ndarray) -> tuple[np.ndarray, float]:
        """The flattened working images and the ``gamma`` used.

        Returns
        -------
        x : numpy.ndarray of shape (n_stimuli, height * width), float64
        gamma : float
        """
        from ._fourier import median_gamma

        x = resize_stimuli(stimuli, self.size).reshape(len(stimuli), -1).astype(np.float64)
        gamma = median_gamma(x) if self.gamma == "median" else float(self.gamma)
        return x, gamma

    def run(self, stimuli: np.ndarray, on_layer: Callable[[LayerInfo, object], None],
            batch_size: int | None = None, progress: bool | None = None) -> None:
        from ._fourier import draw_state, random_fourier_features

        x, gamma = self.inputs(stimuli)
        layers = self.layers()
        if self._progress(progress) and self.n_draws > 1:
            from tqdm import tqdm

            layers = tqdm(layers, desc="random Fourier draws", unit="draw")
        for d, layer in enumerate(layers):
            z = random_fourier_features(x, gamma, self.n_components, draw_state(self.seed, d))
            self._emit(on_layer, layer, z)


#: registry of the baselines: name -> FeatureModel class, ``cls(weights="random", device=None, **params)``
BASELINE_MODELS = {"gabor": GaborModel, "gist": GistModel, "random_fourier": RandomFourierModel}

_COMMON = {
    "source": "baseline",
    "model_class": "Baseline",
    "train_types": ("random",),
    "task": None,
    "task_cluster": "Baseline",
    "n_parameters": 0,
    "imagenet_top1": None,
}

#: metadata for the registry table (one entry per baseline)
BASELINE_INFO = {
    "gabor": dict(_COMMON, display_name="Gabor filter bank",
                  description="Gabor filter energy (4 frequencies x 8 orientations) averaged over an 8x8 grid "
                              "of each image; 2048 features, one layer.",
                  input_size=(128, 160), n_layers=1),
    "gist": dict(_COMMON, display_name="GIST",
                 description="GIST spatial-envelope descriptors (Oliva & Torralba 2001): prefiltered image, "
                             "4 scales x 8 orientations, amplitude averaged over a 4x4 grid; 512 features.",
                 input_size=(128, 160), n_layers=1),
    "random_fourier": dict(_COMMON, display_name="Random Fourier features",
                           description="4096 random Fourier features (Rahimi & Recht 2007) of the 32x40 "
                                       "downsampled pixels, RBF gamma by the median heuristic; one layer per "
                                       "random draw (10 by default, 600 in the paper): the max over layers is "
                                       "the max over draws.",
                           input_size=(32, 40), n_layers=10),
}
