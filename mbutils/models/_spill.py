"""Private: reduced layers kept on disk while a batched extraction runs, read back one at a time.

A batched extraction (:func:`mbutils.models.extract` with row-wise reducers) produces every
layer's reduced rows batch by batch, so all layers' rows are held until the last batch. For
thousands of stimuli that is the largest memory of a scoring run (60 layers x 6,000 stimuli x
4,096 projections in float64: 11.8 GB), while the scoring needs one layer at a time.
:class:`SpilledLayers` appends each batch's rows to one anonymous temporary file per layer (no
name on disk: the system frees it when the object goes, even after a crash) and returns a layer
as a fresh array when indexed.
"""
from __future__ import annotations

import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["SpilledLayers", "spill_folder"]


def spill_folder() -> Path:
    """``<cache_dir>/tmp``, created if needed: where spilled layers are written."""
    import mbutils

    root = Path(mbutils.get_config().cache_dir) / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return root


class SpilledLayers(Sequence):
    """Layers of row blocks stored in anonymous temporary files.

    ``append(i, block)`` adds the rows ``block`` (an (n_rows, width) array) to layer ``i``;
    ``layers[i]`` reads layer ``i`` back as one (n_total_rows, width) array, of the widest
    dtype of its blocks (as ``numpy.concatenate`` of the blocks gives). Indexing reads from disk
    (or the page cache) each time: keep the array while it is needed, not the sequence's items.

    Parameters
    ----------
    folder : path, optional
        Where the temporary files go (default :func:`spill_folder`).
    """

    def __init__(self, folder=None):
        self.folder = Path(folder) if folder is not None else spill_folder()
        self._files = []
        self._blocks = []  # per layer: list of (offset, n_rows, width, dtype)
        self._lock = threading.Lock()  # (worker threads read layers side by side)

    def add_layer(self) -> int:
        """A new empty layer; returns its position."""
        self._files.append(tempfile.TemporaryFile(dir=self.folder))
        self._blocks.append([])
        return len(self._files) - 1

    def append(self, i: int, block) -> None:
        """Append the rows ``block`` (n_rows, width) to layer ``i``."""
        block = np.ascontiguousarray(block)
        if block.ndim != 2:
            raise ValueError(f"a spilled block must be 2-d (rows, width), got shape {block.shape}")
        blocks = self._blocks[i]
        if blocks and blocks[0][2] != block.shape[1]:
            raise ValueError(f"layer {i}: block of width {block.shape[1]} after blocks of width {blocks[0][2]}")
        fh = self._files[i]
        fh.seek(0, 2)
        offset = fh.tell()
        fh.write(block.tobytes())
        blocks.append((offset, block.shape[0], block.shape[1], block.dtype))

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"layer {i} out of range: {len(self)} layers")
        blocks = self._blocks[i]
        if not blocks:
            return np.zeros((0, 0), dtype=np.float32)
        dtype = np.result_type(*[b[3] for b in blocks])
        out = np.empty((sum(b[1] for b in blocks), blocks[0][2]), dtype=dtype)
        fh = self._files[i]
        row = 0
        with self._lock:
            for offset, n_rows, width, dt in blocks:
                fh.seek(offset)
                part = np.fromfile(fh, dtype=dt, count=n_rows * width).reshape(n_rows, width)
                out[row:row + n_rows] = part
                row += n_rows
        return out

    def nbytes(self) -> int:
        """Bytes the layers take on disk."""
        return sum(b[1] * b[2] * np.dtype(b[3]).itemsize for blocks in self._blocks for b in blocks)

    def close(self) -> None:
        """Free the files now (they are freed anyway when the object goes)."""
        for fh in self._files:
            fh.close()

    def __repr__(self):
        return f"SpilledLayers({len(self)} layers, {self.nbytes() / 1e9:.2f} GB on disk in {str(self.folder)!r})"
