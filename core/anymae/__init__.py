"""anymae: masked-autoencoder pretraining for any modality.

The public API: everything a plugin or a user needs is importable from here (and contract tests from
``anymae.testing``). Importing anymae loads no plugin; :func:`load_plugins` (or the ``anymae`` CLI) does.

Each name is imported from its module when first used (:mod:`anymae.lazy`), so ``import anymae`` costs no torch or
Lightning import: ``anymae --help`` and a plugin's entry module stay fast.
"""

from .lazy import lazy_exports

_EXPORTS: dict[str, list[str]] = {
    ".training.callbacks": ["PeriodicFigure", "save_matplotlib"],
    ".config": ["ConfigError", "validated"],
    ".data": [
        "DataModule",
        "EpochLoader",
        "EpochShuffleSampler",
        "FileList",
        "FileSamples",
        "FolderDataModule",
        "SkippedSamples",
        "TensorSamples",
        "Unreadable",
        "collate_skipping",
        "make_loader",
        "sample_rng",
        "scan_folder",
        "split_indices",
        "split_key",
    ],
    ".model.decoders": ["CrossMAEDecoder", "Decoder", "LinearDecoder", "MAEDecoder", "WindowDecoder"],
    ".model.encoder": ["Encoder", "ViTEncoder"],
    ".model.pretrained": ["PretrainedEncoder", "load_encoder"],
    ".evaluation.export": ["Exporter"],
    ".plugins.hookspecs": ["hookimpl"],
    ".masking": [
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
    ],
    ".training.module": ["MaskedAutoencoder"],
    ".errors": ["TrainingDiverged"],
    ".training.optim": ["MAEAdamW", "WarmupCosine"],
    ".plugins.loader": ["PLUGIN_API_VERSION", "IncompatiblePluginError", "Plugins", "get_plugins", "load_plugins"],
    ".data.pooled": ["PooledDataModule", "PooledSamples", "WeightedPoolSampler"],
    ".model.position": [
        "LearnedPositionEmbedding",
        "MLPPositionEmbedding",
        "PositionEmbedding",
        "SeparablePositionEmbedding",
        "SinCosPositionEmbedding",
    ],
    ".plugins.registry": ["DuplicateComponentError", "PluginError", "Registry"],
    ".data.streaming": ["StreamingDataModule"],
    ".model.specs": ["INVERSE", "RAW_VALUES", "BuildContext", "LayoutSpec", "TokenizerSpec"],
    ".model.targets": [
        "PatchTarget",
        "ProvidedTarget",
        "Target",
        "Teacher",
        "TeacherFeatureTarget",
        "WeightedTarget",
        "masked_mean",
    ],
    ".model.tokenizer": ["Tokenizer"],
    ".model.types": [
        "EncoderOutput",
        "GridLayout",
        "MAEOutput",
        "MaskSpec",
        "PointLayout",
        "Step",
        "TokenBatch",
        "gather_tokens",
        "grid_coords",
        "patchify",
        "unpatchify",
    ],
    ".lazy": ["lazy_exports", "require"],
}

__version__ = "0.3.0"  # the core distribution's one version source (pyproject.toml reads it)

__all__ = sorted({name for names in _EXPORTS.values() for name in names} | {"__version__"})

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
