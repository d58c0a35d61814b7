"""anymae: masked-autoencoder pretraining for any modality.

The public API: everything a plugin or a user needs is importable from here (and contract tests from
``anymae.testing``). Importing anymae loads no plugin; :func:`load_plugins` (or the ``anymae`` CLI) does.
"""

from .callbacks import PeriodicFigure, save_matplotlib
from .config import ConfigError, validated
from .data import (
    DataModule,
    EpochShuffleSampler,
    FileList,
    FileSamples,
    FolderDataModule,
    SkippedSamples,
    TensorSamples,
    Unreadable,
    collate_skipping,
    make_loader,
    sample_rng,
    scan_folder,
    split_indices,
    split_key,
)
from .decoders import Decoder, MAEDecoder, WindowDecoder
from .encoders import Encoder, ViTEncoder
from .evaluation import PretrainedEncoder, load_encoder
from .export import Exporter
from .hookspecs import hookimpl
from .masking import (
    BlockMasker,
    DualMasker,
    FilteredNoiseMasker,
    LargePatchMasker,
    Masker,
    NearestBlockMasker,
    RandomMasker,
    SpectrogramMasker,
    TubeMasker,
)
from .module import MAEOutput, MaskedAutoencoder, TrainingDiverged
from .optim import MAEAdamW, WarmupCosine
from .plugins import PLUGIN_API_VERSION, IncompatiblePluginError, Plugins, get_plugins, load_plugins
from .position import (
    LearnedPositionEmbedding,
    MLPPositionEmbedding,
    PositionEmbedding,
    SeparablePositionEmbedding,
    SinCosPositionEmbedding,
)
from .registry import DuplicateComponentError, PluginError, Registry
from .streaming import StreamingDataModule
from .targets import PatchTarget, ProvidedTarget, Target, masked_mean
from .tokenizers import Tokenizer, patchify, unpatchify
from .types import (
    INVERSE,
    RAW_VALUES,
    GridLayout,
    LayoutSpec,
    MaskSpec,
    PointLayout,
    TokenBatch,
    TokenizerSpec,
    gather_tokens,
    grid_coords,
)
from .utils import require

__version__ = "0.2.0"

__all__ = [
    "INVERSE",
    "PLUGIN_API_VERSION",
    "RAW_VALUES",
    "BlockMasker",
    "ConfigError",
    "DataModule",
    "Decoder",
    "DualMasker",
    "DuplicateComponentError",
    "Encoder",
    "EpochShuffleSampler",
    "Exporter",
    "FileList",
    "FileSamples",
    "FilteredNoiseMasker",
    "FolderDataModule",
    "GridLayout",
    "IncompatiblePluginError",
    "LargePatchMasker",
    "LayoutSpec",
    "LearnedPositionEmbedding",
    "MAEAdamW",
    "MAEDecoder",
    "MAEOutput",
    "MLPPositionEmbedding",
    "MaskSpec",
    "MaskedAutoencoder",
    "Masker",
    "NearestBlockMasker",
    "PatchTarget",
    "PeriodicFigure",
    "PluginError",
    "Plugins",
    "PointLayout",
    "PretrainedEncoder",
    "ProvidedTarget",
    "PositionEmbedding",
    "RandomMasker",
    "Registry",
    "SeparablePositionEmbedding",
    "SinCosPositionEmbedding",
    "SkippedSamples",
    "SpectrogramMasker",
    "StreamingDataModule",
    "Target",
    "TensorSamples",
    "TokenBatch",
    "Tokenizer",
    "TokenizerSpec",
    "TrainingDiverged",
    "TubeMasker",
    "Unreadable",
    "ViTEncoder",
    "WarmupCosine",
    "WindowDecoder",
    "__version__",
    "collate_skipping",
    "gather_tokens",
    "get_plugins",
    "grid_coords",
    "hookimpl",
    "load_encoder",
    "load_plugins",
    "make_loader",
    "masked_mean",
    "patchify",
    "require",
    "sample_rng",
    "save_matplotlib",
    "scan_folder",
    "split_indices",
    "split_key",
    "unpatchify",
    "validated",
]
