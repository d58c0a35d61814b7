"""anymae-dna: DNA sequences for anymae."""

from anymae.lazy import lazy_exports

__all__ = ["BaseClassTarget", "DNAKmerTokenizer", "SyntheticDNADataModule"]

# imported on first use: loading the plugin (as `anymae --help` does) imports none of them
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".data": ["SyntheticDNADataModule"],
        ".targets": ["BaseClassTarget"],
        ".tokenizers": ["DNAKmerTokenizer"],
    },
)
