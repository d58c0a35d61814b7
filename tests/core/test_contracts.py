"""The core's own components, and the toy ones, pass the contracts plugins use (anymae.testing)."""

import torch

import anymae
from anymae.testing import DataModuleContract, DecoderContract, MaskerContract, TargetContract, TokenizerContract

from .toys import PointTokenizer, SeriesData, SeriesTokenizer, sinusoids


class TestRandomMasker(MaskerContract):
    component_class = anymae.RandomMasker
    init_args = {"mask_ratio": 0.75}


class TestMAEDecoder(DecoderContract):
    component_class = anymae.MAEDecoder
    init_args = {"embed_dim": 16, "depth": 1, "num_heads": 2}


class TestPatchTargetOnSeries(TargetContract):
    component_class = anymae.PatchTarget
    init_args = {"normalize": "channel"}

    def make_tokenizer(self):
        return SeriesTokenizer()

    def make_batch(self, batch_size, device):
        return {"series": sinusoids(batch_size).to(device), "length": torch.tensor([32, 16, 24][:batch_size])}


class TestSeriesTokenizer(TokenizerContract):
    component_class = SeriesTokenizer
    init_args = {"patch": 4, "channels": 2, "length": 32}

    def make_batch(self, batch_size, device):
        return {"series": sinusoids(batch_size).to(device)}


class TestPointTokenizer(TokenizerContract):
    component_class = PointTokenizer
    init_args = {"dim": 8}

    def make_batch(self, batch_size, device):
        return {"points": torch.rand(batch_size, 16, 3, device=device)}

    def make_target(self):
        from .toys import CoordTarget

        return CoordTarget()


class TestSeriesData(DataModuleContract):
    component_class = SeriesData
    init_args = {"n": 64, "batch_size": 8}

    def make_tokenizer(self):
        return SeriesTokenizer()
