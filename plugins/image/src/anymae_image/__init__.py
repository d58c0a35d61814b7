"""anymae-image: images for anymae (patch tokenizer, data modules, reconstruction grids).

The names below are public API: saved configs record them by their shortest import path (``anymae_image.X``).
"""

from anymae.lazy import lazy_exports

__version__ = "0.3.0"  # released with anymae 0.3.0 (pyproject.toml reads it)

# imported on first use: loading the plugin (as `anymae --help` does) imports none of them
EXPORTS = {
    ".data": ["DigitsDataModule", "ImageFolderDataModule", "MultiBandFolderDataModule", "read_bands", "read_image"],
    ".export": [
        "HFViTMAEExporter",
        "TimmViTExporter",
        "create_timm_vit",
        "hf_vitmae_config",
        "hf_vitmae_state_dict",
        "timm_vit_config",
        "timm_vit_state_dict",
    ],
    ".hog": ["HOGTarget", "hog_cells"],
    ".published": ["HFViTMAEReader", "MAECheckpointReader", "TimmViTReader", "vit_num_heads"],
    ".tokenizers": ["ImagePatchTokenizer"],
    ".viz": ["ReconstructionGrid", "save_reconstruction_grid"],
}
__all__ = sorted({name for names in EXPORTS.values() for name in names} | {"__version__"})
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
