"""anymae: masked-autoencoder pretraining for any modality.

The public API: everything a plugin or a user needs is importable from here (and contract tests from
``anymae.testing``). Importing anymae loads no plugin; :func:`load_plugins` (or the ``anymae`` CLI) does.
"""

from .callbacks import PeriodicFigure
from .config import ConfigError, validated
from .data import EpochShuffleSampler, SkippedSamples, collate_skipping, sample_rng, split_key
from .decoders import Decoder, MAEDecoder
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
from .module import MAEOutput, MaskedAutoencoder
from .optim import MAEAdamW, WarmupCosine
from .plugins import (
    PLUGIN_API_VERSION,
    DuplicateComponentError,
    IncompatiblePluginError,
    PluginError,
    Plugins,
    Registry,
    get_plugins,
    load_plugins,
)
from .position import LearnedPositionEmbedding, MLPPositionEmbedding, PositionEmbedding, SinCosPositionEmbedding
from .targets import PatchTarget, Target, masked_mean
from .tokenizers import Tokenizer
from .types import GridLayout, LayoutSpec, MaskSpec, PointLayout, TokenBatch, gather_tokens, grid_coords
from .utils import require

__version__ = "0.1.0"

__all__ = [
    "TubeMasker",
    "SpectrogramMasker",
    "NearestBlockMasker",
    "LargePatchMasker",
    "FilteredNoiseMasker",
    "DualMasker",
    "BlockMasker",
    "PLUGIN_API_VERSION",
    "ConfigError",
    "Decoder",
    "DuplicateComponentError",
    "Encoder",
    "EpochShuffleSampler",
    "Exporter",
    "GridLayout",
    "IncompatiblePluginError",
    "LayoutSpec",
    "LearnedPositionEmbedding",
    "MAEAdamW",
    "MAEDecoder",
    "MAEOutput",
    "MLPPositionEmbedding",
    "MaskSpec",
    "MaskedAutoencoder",
    "Masker",
    "PatchTarget",
    "PeriodicFigure",
    "PluginError",
    "Plugins",
    "PointLayout",
    "PretrainedEncoder",
    "PositionEmbedding",
    "RandomMasker",
    "Registry",
    "SinCosPositionEmbedding",
    "SkippedSamples",
    "Target",
    "TokenBatch",
    "Tokenizer",
    "ViTEncoder",
    "WarmupCosine",
    "__version__",
    "collate_skipping",
    "gather_tokens",
    "get_plugins",
    "grid_coords",
    "hookimpl",
    "load_encoder",
    "load_plugins",
    "masked_mean",
    "require",
    "sample_rng",
    "split_key",
    "validated",
]
