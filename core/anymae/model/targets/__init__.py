"""Targets, one file each around the interface (``base.py``): raw patch values (``patch.py``), what the tokenizer
provides per token (``provided.py``), a weighted sum of targets (``weighted.py``) and a frozen teacher's features
(``teacher.py``)."""

from .base import Target, masked_mean
from .patch import PatchTarget
from .provided import ProvidedTarget
from .teacher import Teacher, TeacherFeatureTarget
from .weighted import WeightedTarget

__all__ = [
    "PatchTarget",
    "ProvidedTarget",
    "Target",
    "Teacher",
    "TeacherFeatureTarget",
    "WeightedTarget",
    "masked_mean",
]
