"""The image plugin's components pass the core's contracts (anymae.testing)."""

import torch

from anymae.testing import DataModuleContract, TokenizerContract
from anymae_image import DigitsDataModule, ImagePatchTokenizer


class TestImagePatchTokenizer(TokenizerContract):
    component_class = ImagePatchTokenizer
    init_args = {"image_size": (16, 24), "patch_size": 4, "in_chans": 3}

    def make_batch(self, batch_size, device):
        return {"image": torch.randn(batch_size, 3, 16, 24, device=device)}


class TestDigitsDataModule(DataModuleContract):
    component_class = DigitsDataModule
    init_args = {"image_size": 16, "batch_size": 16}

    def make_tokenizer(self):
        return ImagePatchTokenizer(image_size=16, patch_size=4, in_chans=1)
