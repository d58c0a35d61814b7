"""Maskers: which tokens the encoder sees. One module per masker family."""

from .base import Masker
from .random import RandomMasker

__all__ = ["Masker", "RandomMasker"]
