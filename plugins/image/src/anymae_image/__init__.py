"""anymae-image: images for anymae (patch tokenizer, data modules, reconstruction grids).

The names below are public API: saved configs record them by their shortest import path (``anymae_image.X``).
"""

from .data import DigitsDataModule, ImageFolderDataModule, read_image
from .export import TimmViTExporter, create_timm_vit, timm_vit_config, timm_vit_state_dict
from .hog import HOGTarget, hog_cells
from .tokenizers import ImagePatchTokenizer
from .viz import ReconstructionGrid, save_reconstruction_grid

__version__ = "0.2.0"

__all__ = [
    "DigitsDataModule",
    "HOGTarget",
    "ImageFolderDataModule",
    "ImagePatchTokenizer",
    "ReconstructionGrid",
    "TimmViTExporter",
    "__version__",
    "create_timm_vit",
    "hog_cells",
    "read_image",
    "save_reconstruction_grid",
    "timm_vit_config",
    "timm_vit_state_dict",
]
