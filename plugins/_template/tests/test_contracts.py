"""anymae's contract tests, run on this plugin's components (sample data: the tokenizer's example_batch)."""

from anymae.testing import DataModuleContract, TargetContract, TokenizerContract
from anymae_dna import BaseClassTarget, DNAKmerTokenizer, SyntheticDNADataModule


class TestDNAKmerTokenizer(TokenizerContract):
    component_class = DNAKmerTokenizer
    init_args = {"length": 64, "k": 4}

    def make_target(self):
        return BaseClassTarget()


class TestBaseClassTarget(TargetContract):
    component_class = BaseClassTarget

    def make_tokenizer(self):
        return DNAKmerTokenizer(length=64, k=4)

    def perfect_prediction(self, target):
        return target * 100.0  # confident logits on the right base: the cross-entropy is ~0


class TestSyntheticDNADataModule(DataModuleContract):
    component_class = SyntheticDNADataModule
    init_args = {"num_sequences": 64, "length": 64, "batch_size": 8}

    def make_tokenizer(self):
        return DNAKmerTokenizer(length=64, k=4)

    def make_target(self):
        return BaseClassTarget()
