"""Natural grayscale scenes for the synthetic mouse, made from scikit-image's bundled photographs.

The Allen Brain Observatory shows 118 grayscale natural scenes (918 x 1174 pixels) and a blank
(mean-luminance gray) screen. Offline we cannot fetch them, so :func:`make_stimuli` builds a
stand-in set: 118 crops, at several positions and scales, of the natural photographs that ship
inside scikit-image (``skimage.data``: no download), each converted to grayscale, resized to
``shape`` (default 240 x 307, Allen's 918:1174 aspect ratio at about a quarter of its size, to
keep the dataset file small; models resize to their own input size anyway) and contrast
stretched to 0..255. Stimulus ids follow Allen: frames 0..117, and -1 for the blank, a constant
mid-gray (127) image.

The set is fixed (it does not depend on the dataset's seed), like Allen's.
"""
from __future__ import annotations

import numpy as np

__all__ = ["make_stimuli", "ALLEN_STIMULUS_SHAPE", "DEFAULT_STIMULUS_SHAPE", "N_SCENES", "PHOTOGRAPHS"]

#: (height, width) of Allen's natural-scene template
ALLEN_STIMULUS_SHAPE = (918, 1174)
#: (height, width) stored in the synthetic dataset (same aspect ratio, 918/1174 = 0.782 = 240/307)
DEFAULT_STIMULUS_SHAPE = (240, 307)
#: number of natural scenes (Allen frames 0..117)
N_SCENES = 118
#: skimage.data photographs used (all bundled with scikit-image, no download)
PHOTOGRAPHS = (
    "astronaut",
    "camera",
    "cat",
    "coffee",
    "coins",
    "rocket",
    "stereo_motorcycle",
    "moon",
    "grass",
    "gravel",
    "brick",
    "clock",
    "hubble_deep_field",
    "immunohistochemistry",
)
#: blank screen gray level
BLANK_LEVEL = 127


def _photograph(name: str) -> np.ndarray:
    """A bundled skimage photograph as float grayscale in [0, 1], shape (h, w)."""
    from skimage import color, data, util

    image = getattr(data, name)()
    if name == "stereo_motorcycle":
        image = image[0]
    image = util.img_as_float(image)
    if image.ndim == 3:
        image = color.rgb2gray(image[..., :3])
    return image


def make_stimuli(
    n_scenes: int = N_SCENES,
    shape: tuple[int, int] = DEFAULT_STIMULUS_SHAPE,
    blank: bool = True,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Natural grayscale scenes (crops of skimage photographs) plus a blank screen.

    Parameters
    ----------
    n_scenes : int, default 118
    shape : (height, width), default (240, 307)
        Output size (Allen's aspect ratio by default).
    blank : bool, default True
        Prepend the blank screen (stimulus id -1, constant gray 127).
    seed : int, default 0
        Seed of crop positions and scales (fixed by default, so every synthetic dataset shows
        the same images).

    Returns
    -------
    images : uint8 array of shape (n_scenes + blank, height, width)
    stimulus_ids : int64 array of shape (n_scenes + blank,)
        -1 for the blank, then 0..n_scenes-1.
    """
    from skimage.transform import resize

    if n_scenes < 1:
        raise ValueError(f"n_scenes must be >= 1, got {n_scenes}")
    height, width = (int(s) for s in shape)
    if height < 8 or width < 8:
        raise ValueError(f"shape={shape!r}; expected (height, width) of at least 8 x 8 pixels")
    aspect = height / width
    rng = np.random.default_rng(seed)
    photos = [_photograph(name) for name in PHOTOGRAPHS]
    scenes = np.empty((n_scenes, height, width), dtype=np.uint8)
    for i in range(n_scenes):
        photo = photos[i % len(photos)]
        ph, pw = photo.shape
        # largest crop of the target aspect that fits, times a scale in [0.4, 1]
        full_w = min(pw, ph / aspect)
        scale = rng.uniform(0.4, 1.0)
        cw = max(8, int(round(full_w * scale)))
        ch = max(8, int(round(cw * aspect)))
        y0 = int(rng.integers(0, ph - ch + 1))
        x0 = int(rng.integers(0, pw - cw + 1))
        crop = photo[y0 : y0 + ch, x0 : x0 + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = resize(crop, (height, width), anti_aliasing=True, mode="reflect")
        lo, hi = np.percentile(crop, [1, 99])
        crop = np.clip((crop - lo) / max(hi - lo, 1e-6), 0, 1)
        scenes[i] = np.round(crop * 255).astype(np.uint8)
    ids = np.arange(n_scenes, dtype=np.int64)
    if blank:
        gray = np.full((1, height, width), BLANK_LEVEL, dtype=np.uint8)
        return np.concatenate([gray, scenes]), np.concatenate([[-1], ids]).astype(np.int64)
    return scenes, ids
