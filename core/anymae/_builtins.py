"""The core's own components, registered like a plugin's (owner ``anymae``)."""

from __future__ import annotations

from .decoders import MAEDecoder
from .encoders import ViTEncoder
from .hookspecs import hookimpl
from .masking import (
    BlockMasker,
    DualMasker,
    FilteredNoiseMasker,
    LargePatchMasker,
    NearestBlockMasker,
    RandomMasker,
    SpectrogramMasker,
    TubeMasker,
)
from .position import LearnedPositionEmbedding, MLPPositionEmbedding, SinCosPositionEmbedding
from .registry import Registry
from .targets import PatchTarget


@hookimpl
def anymae_register(registry: Registry) -> None:
    registry.add(
        RandomMasker,
        BlockMasker,
        LargePatchMasker,
        TubeMasker,
        SpectrogramMasker,
        FilteredNoiseMasker,
        DualMasker,
        NearestBlockMasker,
        ViTEncoder,
        MAEDecoder,
        PatchTarget,
        SinCosPositionEmbedding,
        MLPPositionEmbedding,
        LearnedPositionEmbedding,
    )
