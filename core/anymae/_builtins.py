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
from .plugins import Registry
from .position import LearnedPositionEmbedding, MLPPositionEmbedding, SinCosPositionEmbedding
from .targets import PatchTarget


@hookimpl
def anymae_register(registry: Registry) -> None:
    for masker in (
        RandomMasker,
        BlockMasker,
        LargePatchMasker,
        TubeMasker,
        SpectrogramMasker,
        FilteredNoiseMasker,
        DualMasker,
        NearestBlockMasker,
    ):
        registry.add_masker(masker)
    registry.add_encoder(ViTEncoder)
    registry.add_decoder(MAEDecoder)
    registry.add_target(PatchTarget)
    registry.add_position_embedding(SinCosPositionEmbedding)
    registry.add_position_embedding(MLPPositionEmbedding)
    registry.add_position_embedding(LearnedPositionEmbedding)
