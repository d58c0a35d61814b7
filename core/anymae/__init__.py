"""anymae: masked-autoencoder pretraining for any modality.

The public API: everything a plugin or a user needs is importable from here (and contract tests from
``anymae.testing``). Importing anymae loads no plugin; :func:`load_plugins` (or the ``anymae`` CLI) does.

Each name is imported from its module when first used (:mod:`anymae.lazy`), so ``import anymae`` costs no torch or
Lightning import: ``anymae --help`` and a plugin's entry module stay fast.
"""

from .lazy import lazy_exports

# module -> the names it exports here (space-separated; each module's own __all__ lists them too, and a test checks
# that the two agree)
_EXPORTS: dict[str, str] = {
    ".config": "ConfigError PathStr ScaleRange validated",
    ".errors": "CheckpointNotSaved RunStopped TrainingDiverged",
    ".lazy": "lazy_exports require",
    # the model's parts, and what flows between them
    ".model.types": "EncoderOutput GridLayout MAEOutput MaskSpec PointLayout Step TokenBatch gather_tokens grid_coords "
    "patchify unpatchify",
    ".model.specs": "INVERSE RAW_VALUES BuildContext LayoutSpec TokenizerSpec",
    ".model.tokenizer": "Tokenizer",
    ".model.position": "LearnedPositionEmbedding MLPPositionEmbedding PositionEmbedding SeparablePositionEmbedding "
    "SinCosPositionEmbedding sincos_embedding",
    ".model.encoder": "Encoder ViTEncoder",
    ".model.pretrained": "PretrainedEncoder load_encoder",
    ".model.published": "ImportedWeights WeightsFile WeightsReader read_weights",
    ".model.decoders.base": "Decoder",
    ".model.decoders.mae": "MAEDecoder",
    ".model.decoders.window": "WindowDecoder",
    ".model.decoders.cross": "CrossMAEDecoder",
    ".model.decoders.linear": "LinearDecoder",
    ".model.targets.base": "Target masked_mean",
    ".model.targets.patch": "PatchTarget",
    ".model.targets.provided": "ProvidedTarget",
    ".model.targets.weighted": "WeightedTarget",
    ".model.targets.teacher": "Teacher TeacherFeatureTarget",
    # several modalities in one model
    ".model.multimodal.tokenizer": "MultiModalTokenizer modality_batch",
    ".model.multimodal.encoder": "MultiModalEncoder",
    ".model.multimodal.decoder": "MultiModalDecoder",
    ".model.multimodal.target": "MultiModalTarget info_nce",
    ".masking.multi_modal": "MultiModalMasker",
    # maskers, one module each
    ".masking.base": "Masker",
    ".masking.random": "RandomMasker",
    ".masking.block": "BlockMasker",
    ".masking.tube": "TubeMasker",
    ".masking.large_patch": "LargePatchMasker",
    ".masking.nearest_block": "NearestBlockMasker",
    ".masking.filtered_noise": "FilteredNoiseMasker",
    ".masking.spectrogram": "SpectrogramMasker",
    ".masking.dual": "DualMasker",
    ".masking.learned.adaptive": "AdaptiveMasker",
    ".masking.learned.attention": "AttentionMasker",
    ".masking.learned.hard_patches": "HardPatchesMasker",
    # the data kit
    ".data.modules": "DataModule FolderDataModule",
    ".data.cache": "DecodedCache decoded_cache",
    ".data.samples": "FileList FileSamples SkippedSamples TensorSamples Unreadable collate_skipping scan_folder "
    "split_indices",
    ".data.sampling": "EpochShuffleSampler sample_rng split_key",
    ".data.loaders": "EpochLoader ResumableLoader make_loader",
    ".data.pooled": "PooledDataModule PooledSamples WeightedPoolSampler",
    ".data.streaming": "StreamingDataModule",
    # training, evaluation, plugins
    ".training.module": "MaskedAutoencoder",
    ".training.imported": "load_model",
    ".training.weights": "init_weights",
    ".training.optim": "MAEAdamW WarmupCosine",
    ".training.callbacks": "PeriodicFigure save_matplotlib",
    ".training.modality_figures": "ModalityFigures",
    ".evaluation.export": "Exporter grid_table load_timm_export timm_vit_export write_timm_export",
    ".plugins.hookspecs": "hookimpl",
    ".plugins.loader": "API_CHANGES PLUGIN_API_VERSION IncompatiblePluginError Plugins get_plugins load_plugins",
    ".plugins.registry": "DuplicateComponentError PluginError Registry",
}

__version__ = "0.3.0"  # the core distribution's one version source (pyproject.toml reads it)

__all__ = sorted({name for names in _EXPORTS.values() for name in names.split()} | {"__version__"})

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
