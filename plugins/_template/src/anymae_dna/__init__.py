"""anymae-dna: DNA sequences for anymae."""

from .data import SyntheticDNADataModule
from .targets import BaseClassTarget
from .tokenizers import DNAKmerTokenizer

__all__ = ["BaseClassTarget", "DNAKmerTokenizer", "SyntheticDNADataModule"]
