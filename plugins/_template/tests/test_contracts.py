"""anymae's contract tests, run on this plugin's components."""

import torch

from anymae.testing import DataModuleContract, TargetContract, TokenizerContract
from anymae_dna import BaseClassTarget, DNAKmerTokenizer, SyntheticDNADataModule


def random_sequences(batch_size, device):
    return {"sequence": torch.randint(0, 4, (batch_size, 64), device=device)}


class TestDNAKmerTokenizer(TokenizerContract):
    component_class = DNAKmerTokenizer
    init_args = {"length": 64, "k": 4}

    def make_batch(self, batch_size, device):
        return random_sequences(batch_size, device)

    def make_target(self):
        return BaseClassTarget()


class TestBaseClassTarget(TargetContract):
    component_class = BaseClassTarget

    def make_tokenizer(self):
        return DNAKmerTokenizer(length=64, k=4)

    def make_batch(self, batch_size, device):
        return random_sequences(batch_size, device)

    def perfect_prediction(self, target):
        return target * 100.0  # confident logits on the right base: the cross-entropy is ~0


class TestSyntheticDNADataModule(DataModuleContract):
    component_class = SyntheticDNADataModule
    init_args = {"num_sequences": 64, "length": 64, "batch_size": 8}

    def make_tokenizer(self):
        return DNAKmerTokenizer(length=64, k=4)

    def make_target(self):
        return BaseClassTarget()
