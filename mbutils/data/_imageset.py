"""An auxiliary image set, disjoint from the stimuli, for fitting reductions (paper A.5).

Brain-Score style mappings fit their principal components on features of images other than
the stimuli (the paper used 9,216 ImageNet images, appendix A.5 and Figure 5), then project
the stimuli's features on them. Offline, :func:`make_image_set` builds such a set from the same
scikit-image photographs as :func:`mbutils.data.make_stimuli` (no download): grayscale crops,
resized and contrast stretched the same way, but at smaller scales (a crop's width is 10% to
35% of the largest crop of the stimuli's aspect ratio that fits the photograph; the stimuli use
40% to 100%) and from another random stream, so no image of the set is a stimulus.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["make_image_set", "IMAGE_SET_SCALES", "STIMULUS_SCALES"]

#: range of crop scales of the image set (fraction of the largest crop that fits)
IMAGE_SET_SCALES = (0.10, 0.35)
#: range of crop scales of :func:`mbutils.data.make_stimuli`
STIMULUS_SCALES = (0.4, 1.0)


def make_image_set(n_images: int = 2048, shape: tuple[int, int] | None = None, seed: int = 1):
    """Grayscale natural-image crops that are not stimuli, to fit reductions on.

    Parameters
    ----------
    n_images : int, default 2048
    shape : (height, width), optional
        Output size; default the stimuli's (:data:`mbutils.data.stimuli.DEFAULT_STIMULUS_SHAPE`).
        Pass the dataset's stimulus shape so that models see the same input geometry.
    seed : int, default 1
        Seed of the crop positions, scales and flips.

    Returns
    -------
    images : uint8 array of shape (n_images, height, width)
    crops : pandas.DataFrame
        One row per image: ``photograph``, ``y0``, ``x0``, ``crop_height``, ``crop_width``
        (pixels of the photograph), ``scale`` (in :data:`IMAGE_SET_SCALES`) and ``flipped``.
    """
    from skimage.transform import resize

    from .stimuli import DEFAULT_STIMULUS_SHAPE, PHOTOGRAPHS, _photograph

    if int(n_images) < 1:
        raise ValueError(f"n_images={n_images!r}; expected a positive integer")
    height, width = (int(s) for s in (shape if shape is not None else DEFAULT_STIMULUS_SHAPE))
    if height < 8 or width < 8:
        raise ValueError(f"shape={shape!r}; expected (height, width) of at least 8 x 8 pixels")
    aspect = height / width
    # a stream of its own: [seed, 918] never coincides with make_stimuli's default_rng(seed)
    rng = np.random.default_rng([int(seed), 918])
    photos = [_photograph(name) for name in PHOTOGRAPHS]
    images = np.empty((int(n_images), height, width), dtype=np.uint8)
    rows = []
    for i in range(int(n_images)):
        p = int(rng.integers(len(photos)))
        photo = photos[p]
        ph, pw = photo.shape
        full_w = min(pw, ph / aspect)
        scale = float(rng.uniform(*IMAGE_SET_SCALES))
        cw = max(8, int(round(full_w * scale)))
        ch = max(8, int(round(cw * aspect)))
        y0 = int(rng.integers(0, ph - ch + 1))
        x0 = int(rng.integers(0, pw - cw + 1))
        flipped = bool(rng.random() < 0.5)
        crop = photo[y0:y0 + ch, x0:x0 + cw]
        if flipped:
            crop = crop[:, ::-1]
        crop = resize(crop, (height, width), anti_aliasing=True, mode="reflect")
        lo, hi = np.percentile(crop, [1, 99])
        crop = np.clip((crop - lo) / max(hi - lo, 1e-6), 0, 1)
        images[i] = np.round(crop * 255).astype(np.uint8)
        rows.append((PHOTOGRAPHS[p], y0, x0, ch, cw, scale, flipped))
    crops = pd.DataFrame(rows, columns=["photograph", "y0", "x0", "crop_height", "crop_width", "scale", "flipped"])
    return images, crops
