"""The core's own components and commands, registered like a plugin's (owner ``anymae``): commands by import path
and components imported inside their hook, so reading the command table imports neither torch nor Lightning."""

from __future__ import annotations

from .hookspecs import hookimpl
from .registry import Registry

#: name, help line, and the function that runs it (imported only when the command runs)
COMMANDS = (
    ("fit", "pretrain a masked autoencoder from a YAML config (LightningCLI)", "anymae.commands.fit:fit"),
    ("validate", "validation loss of a model on a data module (LightningCLI)", "anymae.commands.fit:validate"),
    ("test", "test loop of a model on a data module (LightningCLI)", "anymae.commands.fit:test"),
    ("predict", "predict loop of a model on a data module (LightningCLI)", "anymae.commands.fit:predict"),
    ("plugins", "list installed plugins, their components and commands", "anymae.commands.plugins:run"),
    ("masks", "draw a masker's masks on a token grid to a PNG", "anymae.commands.masks:run"),
    ("knn", "k-NN accuracy of a pretrained encoder's frozen features", "anymae.commands.evaluate:knn"),
    ("probe", "linear probe on a pretrained encoder's frozen features", "anymae.commands.evaluate:probe"),
    ("finetune", "fine-tune a pretrained encoder end to end", "anymae.commands.evaluate:finetune"),
    ("export", "write a pretrained encoder as safetensors (and other formats)", "anymae.commands.export:run"),
    ("table", "pretrained vs random-init scores over a suite of data sets", "anymae.commands.table:run"),
    ("shard", "write a data module's samples as streaming shards (litdata)", "anymae.commands.shard:run"),
    ("report", "one self-contained HTML page of a run: losses, figures, masks, scores", "anymae.commands.report:run"),
)


@hookimpl
def anymae_commands(registry: Registry) -> None:
    for name, help_line, run in COMMANDS:
        registry.add_command(name, run, help=help_line)


@hookimpl
def anymae_register(registry: Registry) -> None:
    from .decoders import CrossMAEDecoder, LinearDecoder, MAEDecoder, WindowDecoder
    from .encoders import ViTEncoder
    from .masking import (
        AdaptiveMasker,
        AttentionMasker,
        BlockMasker,
        DualMasker,
        FilteredNoiseMasker,
        HardPatchesMasker,
        LargePatchMasker,
        NearestBlockMasker,
        RandomMasker,
        SpectrogramMasker,
        TubeMasker,
    )
    from .pooled import PooledDataModule
    from .position import (
        LearnedPositionEmbedding,
        MLPPositionEmbedding,
        SeparablePositionEmbedding,
        SinCosPositionEmbedding,
    )
    from .streaming import StreamingDataModule
    from .targets import PatchTarget, ProvidedTarget, WeightedTarget
    from .teacher import TeacherFeatureTarget

    registry.add(
        RandomMasker,
        BlockMasker,
        LargePatchMasker,
        TubeMasker,
        SpectrogramMasker,
        FilteredNoiseMasker,
        DualMasker,
        NearestBlockMasker,
        AdaptiveMasker,
        HardPatchesMasker,
        AttentionMasker,
        ViTEncoder,
        MAEDecoder,
        WindowDecoder,
        CrossMAEDecoder,
        LinearDecoder,
        PatchTarget,
        ProvidedTarget,
        WeightedTarget,
        TeacherFeatureTarget,
        SinCosPositionEmbedding,
        MLPPositionEmbedding,
        LearnedPositionEmbedding,
        SeparablePositionEmbedding,
        StreamingDataModule,
        PooledDataModule,
    )
