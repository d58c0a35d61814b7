"""The data kit: what every modality's data modules share, so that a plugin's data module is its format and nothing
else (``modules.py``), its samples and what an unreadable one becomes (``samples.py``), the epoch orders
(``sampling.py``) and the loaders (``loaders.py``); pooled sources (``pooled.py``) and streaming shards
(``streaming.py``)."""

from .loaders import EpochLoader, make_loader
from .modules import DataModule, FolderDataModule
from .samples import (
    SKIPPED_KEY,
    UNREADABLE_KEY,
    FileList,
    FileSamples,
    SkippedSamples,
    TensorSamples,
    Unreadable,
    collate_skipping,
    scan_folder,
    split_indices,
)
from .sampling import EpochShuffleSampler, sample_rng, split_key

__all__ = [
    "SKIPPED_KEY",
    "UNREADABLE_KEY",
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
]
