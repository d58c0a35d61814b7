"""anymae-image: images for anymae (patch tokenizer, data modules, reconstruction grids).

The names below are public API: saved configs record them by their shortest import path (``anymae_image.X``).
"""

from .data import DigitsDataModule, ImageFiles, ImageFolderDataModule
from .tokenizers import ImagePatchTokenizer
from .viz import ReconstructionGrid, save_reconstruction_grid

__version__ = "0.1.0"

__all__ = [
    "DigitsDataModule",
    "ImageFiles",
    "ImageFolderDataModule",
    "ImagePatchTokenizer",
    "ReconstructionGrid",
    "__version__",
    "save_reconstruction_grid",
]
