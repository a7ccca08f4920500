"""GIST (spatial envelope) descriptors, after Oliva & Torralba (2001) (private helpers).

Written from the method's description: a prefilter (log intensity, whitening by removing low
spatial frequencies, local contrast normalisation), then a bank of oriented band-pass filters
designed in the Fourier domain (log-Gaussian in radius, Gaussian in angle: Gabor-like), and
the response amplitude averaged over a coarse grid.
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from ._gabor import pool_grid

__all__ = ["frequency_grid", "prefilter", "transfer_functions", "gist_features"]


def frequency_grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Spatial frequencies of a 2-D FFT, in cycles per pixel.

    Returns
    -------
    fy, fx : arrays of shape (height, width)
    """
    fy = scipy.fft.fftfreq(shape[0])[:, None]
    fx = scipy.fft.fftfreq(shape[1])[None, :]
    return np.broadcast_to(fy, shape), np.broadcast_to(fx, shape)


def _lowpass(x: np.ndarray, gauss: np.ndarray) -> np.ndarray:
    return scipy.fft.ifft2(scipy.fft.fft2(x, axes=(-2, -1)) * gauss, axes=(-2, -1)).real


def prefilter(images: np.ndarray, cutoff: float = 4.0, log: bool = True, pad: int = 8,
              contrast_eps: float = 0.2) -> np.ndarray:
    """Whiten and contrast-normalise images (the GIST prefilter).

    Parameters
    ----------
    images : array of shape (n_images, height, width), float
        Intensities, 0..255.
    cutoff : float
        Cut-off of the Gaussian low-pass, in cycles per image (of the larger side); the
        whitening subtracts this low-pass, the normalisation divides by the low-passed local
        standard deviation.
    log : bool
        Take ``log(1 + intensity)`` first (then a global gain ``k * (1 + I)`` becomes an offset).
    pad : int
        Reflect padding against wrap-around, removed at the end.
    contrast_eps : float
        ``output = highpass / (contrast_eps + local_std)``.

    Returns
    -------
    numpy.ndarray of shape (n_images, height, width), float64
    """
    x = np.asarray(images, dtype=np.float64)
    if log:
        x = np.log1p(x)
    height, width = x.shape[-2:]
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="symmetric")
    fy, fx = frequency_grid(x.shape[-2:])
    sigma = cutoff / np.sqrt(np.log(2.0)) / max(height, width)
    gauss = np.exp(-(fx ** 2 + fy ** 2) / sigma ** 2)
    high = x - _lowpass(x, gauss)
    local_std = np.sqrt(np.abs(_lowpass(high ** 2, gauss)))
    out = high / (contrast_eps + local_std)
    return out[:, pad:pad + height, pad:pad + width]


def transfer_functions(shape: tuple[int, int], n_scales: int = 4, n_orientations: int = 8,
                       max_frequency: float = 0.25, radial_sigma: float = 0.4,
                       angular_sigma: float | None = None) -> np.ndarray:
    """Oriented band-pass transfer functions, defined on the FFT grid.

    Scale ``s`` is centred on ``max_frequency / 2**s`` cycles per pixel (a log-Gaussian of
    standard deviation ``radial_sigma`` in natural-log units); orientation ``k`` on the angle
    ``k * pi / n_orientations`` of the frequency vector ``(fx, fy)`` (a Gaussian of standard
    deviation ``angular_sigma``, default 0.6 orientation spacings). The filters are one-sided
    (they pass angle ``theta`` but not ``theta + pi``), so the filtered image is complex and
    its modulus is the local amplitude (energy) of the band. A grating
    ``cos(2 pi f (x cos theta + y sin theta))`` excites the filter of orientation ``theta``.

    Returns
    -------
    numpy.ndarray of shape (n_scales * n_orientations, height, width), float64
        Ordered by scale (fine to coarse), then orientation; zero at DC.
    """
    fy, fx = frequency_grid(shape)
    radius = np.hypot(fx, fy)
    angle = np.arctan2(fy, fx)
    if angular_sigma is None:
        angular_sigma = 0.6 * np.pi / n_orientations
    out = np.zeros((n_scales * n_orientations,) + tuple(shape))
    with np.errstate(divide="ignore"):
        log_r = np.log(radius)
    for s in range(n_scales):
        f0 = max_frequency / 2 ** s
        radial = np.where(radius > 0, np.exp(-((log_r - np.log(f0)) ** 2) / (2 * radial_sigma ** 2)), 0.0)
        for k in range(n_orientations):
            theta = k * np.pi / n_orientations
            delta = np.angle(np.exp(1j * (angle - theta)))  # wrapped to (-pi, pi]
            out[s * n_orientations + k] = radial * np.exp(-(delta ** 2) / (2 * angular_sigma ** 2))
    return out


def gist_features(images: np.ndarray, n_scales: int = 4, n_orientations: int = 8,
                  grid: tuple[int, int] = (4, 4), pad: int = 16, cutoff: float = 4.0,
                  log: bool = True) -> np.ndarray:
    """GIST descriptors of images.

    Parameters
    ----------
    images : array of shape (n_images, height, width), float
        Intensities, 0..255.
    n_scales, n_orientations : int
        Filter bank size (Oliva & Torralba: 4 scales x 8 orientations).
    grid : (n_rows, n_cols)
        Grid over which the amplitude is averaged (4 x 4).
    pad : int
        Reflect padding of the prefiltered image before the (circular) Fourier filtering.
    cutoff, log :
        Passed to :func:`prefilter`.

    Returns
    -------
    numpy.ndarray of shape (n_images, n_scales * n_orientations * n_rows * n_cols), float32
        Ordered filter-major: feature ``(f * n_rows + i) * n_cols + j`` is filter ``f`` (scale
        ``f // n_orientations``, orientation ``f % n_orientations``) in cell ``(i, j)``.
    """
    x = prefilter(images, cutoff=cutoff, log=log)
    n, height, width = x.shape
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="symmetric")
    filters = transfer_functions(x.shape[-2:], n_scales, n_orientations)
    spectrum = scipy.fft.fft2(x.astype(np.float32), axes=(-2, -1))
    out = np.empty((n, len(filters)) + tuple(grid), dtype=np.float32)
    for j, transfer in enumerate(filters):
        response = scipy.fft.ifft2(spectrum * transfer.astype(np.float32), axes=(-2, -1))
        amplitude = np.abs(response[:, pad:pad + height, pad:pad + width])
        out[:, j] = pool_grid(amplitude, grid)
    return out.reshape(n, -1)
