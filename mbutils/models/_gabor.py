"""Gabor filter bank energy pooled over a spatial grid (private helpers of the Gabor baseline)."""
from __future__ import annotations

import numpy as np
import scipy.fft

__all__ = ["gabor_bank", "pool_grid", "gabor_energy"]


def gabor_bank(frequencies, n_orientations: int, bandwidth: float = 1.0) -> list[tuple[float, float, np.ndarray]]:
    """Build zero-mean complex Gabor kernels with :func:`skimage.filters.gabor_kernel`.

    Parameters
    ----------
    frequencies : sequence of float
        Spatial frequencies of the harmonic, in cycles per pixel (of the working image).
    n_orientations : int
        Orientations ``theta = k * pi / n_orientations``, ``k = 0 .. n_orientations - 1``
        (``theta = 0``: the harmonic varies along x, i.e. vertical stripes).
    bandwidth : float
        Spatial-frequency bandwidth in octaves (skimage's ``bandwidth``).

    Returns
    -------
    list of (frequency, theta, kernel)
        ``kernel`` is complex128 of shape (kh, kw), odd sizes; ordered by frequency, then
        orientation. The real part's DC is removed (the Gaussian envelope times the mean is
        subtracted), so that the filters do not respond to uniform luminance.
    """
    from skimage.filters import gabor_kernel

    bank = []
    for frequency in frequencies:
        for k in range(n_orientations):
            theta = k * np.pi / n_orientations
            kernel = np.asarray(gabor_kernel(frequency, theta=theta, bandwidth=bandwidth), dtype=np.complex128)
            envelope = np.abs(kernel)
            kernel = kernel - envelope * (kernel.sum() / envelope.sum())
            bank.append((float(frequency), float(theta), kernel))
    return bank


def _edges(length: int, n_cells: int) -> np.ndarray:
    """Start indices of ``n_cells`` nearly equal cells covering ``range(length)``."""
    return np.floor(np.arange(n_cells) * length / n_cells).astype(np.intp)


def pool_grid(maps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Average maps over the cells of a regular grid.

    Parameters
    ----------
    maps : array of shape (..., height, width)
    grid : (n_rows, n_cols)
        Number of cells along y and x; cells are as equal as the size allows (row ``i``
        covers ``floor(i * height / n_rows)`` up to, not including, ``floor((i + 1) * height / n_rows)``).

    Returns
    -------
    numpy.ndarray of shape (..., n_rows, n_cols)
        The mean of each cell.
    """
    height, width = maps.shape[-2:]
    gy, gx = grid
    ey, ex = _edges(height, gy), _edges(width, gx)
    sums = np.add.reduceat(np.add.reduceat(maps, ey, axis=-2), ex, axis=-1)
    counts = np.diff(np.append(ey, height))[:, None] * np.diff(np.append(ex, width))[None, :]
    return sums / counts


def _circular_kernel_spectrum(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """FFT of ``kernel`` placed with its centre at index (0, 0) of an array of ``shape``."""
    kh, kw = kernel.shape
    full = np.zeros(shape, dtype=np.complex64)
    full[:kh, :kw] = kernel
    full = np.roll(full, (-(kh // 2), -(kw // 2)), axis=(0, 1))
    return scipy.fft.fft2(full)


def gabor_energy(images: np.ndarray, bank, grid: tuple[int, int]) -> np.ndarray:
    """Gabor energy (response magnitude) averaged over each cell of a grid.

    Parameters
    ----------
    images : array of shape (n_images, height, width), float
        Working images (intensities in 0..1).
    bank : list of (frequency, theta, kernel)
        As returned by :func:`gabor_bank`.
    grid : (n_rows, n_cols)

    Returns
    -------
    numpy.ndarray of shape (n_images, n_filters, n_rows, n_cols), float32
        ``|image * kernel|`` (convolution, "same" size, the image mirrored at its borders as
        ``numpy.pad(mode="reflect")`` / ``scipy.ndimage`` ``mode="mirror"``) pooled over the grid.

    Notes
    -----
    Computed in the Fourier domain: for each frequency, the images are reflect-padded by
    the largest kernel half-size (and up to a fast FFT length), so that the circular convolution
    equals the linear one on the image itself.
    """
    images = np.asarray(images, dtype=np.float32)
    n, height, width = images.shape
    out = np.empty((n, len(bank)) + tuple(grid), dtype=np.float32)
    groups: dict[float, list[int]] = {}  # one image FFT per frequency
    for j, (frequency, _, _) in enumerate(bank):
        groups.setdefault(frequency, []).append(j)
    for members in groups.values():
        py = max(bank[j][2].shape[0] for j in members) // 2
        px = max(bank[j][2].shape[1] for j in members) // 2
        shape = (scipy.fft.next_fast_len(height + 2 * py), scipy.fft.next_fast_len(width + 2 * px))
        padded = np.pad(images, ((0, 0), (py, shape[0] - height - py), (px, shape[1] - width - px)), mode="reflect")
        spectrum = scipy.fft.fft2(padded, axes=(-2, -1))
        for j in members:
            response = scipy.fft.ifft2(spectrum * _circular_kernel_spectrum(bank[j][2], shape), axes=(-2, -1))
            out[:, j] = pool_grid(np.abs(response[:, py:py + height, px:px + width]), grid)
    return out
