"""Neural datasets: the NetCDF dataset file, neuron selection, the synthetic mouse, stimuli.

The file schema is in docs/dataset.md. Main entry points:

- :class:`NeuralDataset` / :func:`load_dataset` -- load, validate, subset, save;
- :func:`select_neurons` -- the paper's neuron selection, with a :class:`SelectionReport`;
- :func:`make_synthetic` -- the synthetic mouse (the embedded default dataset);
- :func:`make_stimuli` -- 118 natural grayscale scenes + a blank, from scikit-image photographs;
- :func:`make_image_set` -- more crops of the same photographs, disjoint from the stimuli (to fit PCA on);
- :func:`read_sensorium`, :func:`read_stringer` -- published recordings (Sensorium 2022, Stringer et al.
  2019) as datasets (docs/datasets_more.md).
"""
from __future__ import annotations

from .dataset import BLANK_STIMULUS, NeuralDataset, load_dataset
from .selection import EXCITATORY_CRE_LINES, INHIBITORY_CRE_LINES, SelectionReport, is_excitatory, select_neurons
from ._sensorium import SensoriumDataError, read_sensorium
from ._stringer import StringerDataError, read_stringer

__all__ = [
    "BLANK_STIMULUS",
    "NeuralDataset",
    "load_dataset",
    "select_neurons",
    "SelectionReport",
    "EXCITATORY_CRE_LINES",
    "INHIBITORY_CRE_LINES",
    "is_excitatory",
    "make_synthetic",
    "make_stimuli",
    "make_image_set",
    "read_sensorium",
    "read_stringer",
    "SensoriumDataError",
    "StringerDataError",
]


def __getattr__(name):
    # torch / skimage are heavy: import the generators lazily
    if name == "make_synthetic":
        from .synthetic import make_synthetic

        return make_synthetic
    if name == "make_stimuli":
        from .stimuli import make_stimuli

        return make_stimuli
    if name == "make_image_set":
        from ._imageset import make_image_set

        return make_image_set
    raise AttributeError(f"module 'mbutils.data' has no attribute {name!r}")
