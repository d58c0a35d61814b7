"""Maskers: which tokens the encoder sees (and, with decoder masking, which the decoder predicts).

One module per masker family; every masker draws per-token noise on the tokens' device and keeps the lowest
(see :mod:`anymae.masking.base`).
"""

from .base import Masker
from .block import BlockMasker
from .dual import DualMasker
from .filtered_noise import FilteredNoiseMasker
from .large_patch import LargePatchMasker
from .learned.adaptive import AdaptiveMasker
from .learned.attention import AttentionMasker
from .learned.hard_patches import HardPatchesMasker
from .nearest_block import NearestBlockMasker
from .random import RandomMasker
from .spectrogram import SpectrogramMasker
from .tube import TubeMasker

__all__ = [
    "AdaptiveMasker",
    "AttentionMasker",
    "BlockMasker",
    "DualMasker",
    "FilteredNoiseMasker",
    "HardPatchesMasker",
    "LargePatchMasker",
    "Masker",
    "NearestBlockMasker",
    "RandomMasker",
    "SpectrogramMasker",
    "TubeMasker",
]
