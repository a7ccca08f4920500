"""The paper's constants and vocabulary, in one place (Conwell et al., NeurIPS 2021).

Every module that needs one of these imports it from here; a value written elsewhere is a
defect.

Examples
--------
>>> from mbutils.constants import AREAS, N_COMPONENTS, RELIABILITY_THRESHOLD
>>> AREAS[0], N_COMPONENTS, RELIABILITY_THRESHOLD
('VISp', 4096, 0.8)
"""
from __future__ import annotations

__all__ = [
    "ALPHA",
    "AREAS",
    "AREA_GLOSSARY",
    "DEFAULT_METRICS",
    "METRICS",
    "N_COMPONENTS",
    "N_SCENES",
    "RELIABILITY_THRESHOLD",
    "TRAIN_TYPES",
    "order_areas",
]

#: the six visual areas of the Allen Brain Observatory, in the order of the paper's glossary
#: (its Figure 11): primary visual cortex first, then the higher visual areas
AREAS = ("VISp", "VISl", "VISal", "VISpm", "VISrl", "VISam")

#: Allen abbreviation -> (short name, structure), paper Figure 11
AREA_GLOSSARY = {
    "VISp": ("V1", "Primary Visual Area"),
    "VISl": ("LM", "Lateral Visual Area"),
    "VISal": ("AL", "Anterolateral Visual Area"),
    "VISpm": ("PM", "Posteromedial Visual Area"),
    "VISrl": ("RL", "Rostrolateral Visual Area"),
    "VISam": ("AM", "Anteromedial Visual Area"),
}

#: components of the sparse random projection before ridge regression (SRP-Ridge)
N_COMPONENTS = 4096

#: ridge penalty of SRP-Ridge (the paper's fixed alpha)
ALPHA = 1.0

#: neurons are kept whose split-half reliability (Spearman-Brown corrected) is at least this
RELIABILITY_THRESHOLD = 0.8

#: natural scenes of the Brain Observatory's stimulus set
N_SCENES = 118

#: the metrics a model can be scored with: the paper's SRP-Ridge and RSA, and linear CKA
#: (Kornblith et al. 2019) of the layer's and the area's stimulus Gram matrices
METRICS = ("srp_ridge", "rsa", "cka")

#: the metrics scored when none are named: the paper's two
DEFAULT_METRICS = ("srp_ridge", "rsa")

#: the variants of a model: trained weights, or the architecture randomly initialized
TRAIN_TYPES = ("trained", "random")


def order_areas(values) -> list:
    """The distinct areas of ``values`` in the order of :data:`AREAS`, others after, sorted.

    Parameters
    ----------
    values : iterable of str

    Returns
    -------
    list of str
    """
    present = set(values)
    return [a for a in AREAS if a in present] + sorted(a for a in present if a not in AREAS)
