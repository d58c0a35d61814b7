"""The image plugin's components pass the core's contracts (anymae.testing)."""

from anymae.testing import DataModuleContract, TargetContract, TokenizerContract
from anymae_image import DigitsDataModule, HOGTarget, ImagePatchTokenizer


class TestImagePatchTokenizer(TokenizerContract):
    component_class = ImagePatchTokenizer
    init_args = {"image_size": (16, 24), "patch_size": 4, "in_chans": 3}


class TestDigitsDataModule(DataModuleContract):
    component_class = DigitsDataModule
    init_args = {"image_size": 16, "batch_size": 16}

    def make_tokenizer(self):
        return ImagePatchTokenizer(image_size=16, patch_size=4, in_chans=1)


class TestHOGTarget(TargetContract):
    component_class = HOGTarget
    init_args = {"cell": 4}

    def make_tokenizer(self):
        return ImagePatchTokenizer(image_size=16, patch_size=8, in_chans=3)
