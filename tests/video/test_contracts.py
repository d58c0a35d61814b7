"""The video components (and the HOG target, on tubelets) pass the core's contracts (anymae.testing)."""

from anymae.testing import DataModuleContract, TargetContract, TokenizerContract
from anymae_image import HOGTarget
from anymae_video import MotionTarget, MovingDigitsDataModule, VideoPixelTarget, VideoTubeletTokenizer


def small_tokenizer():
    return VideoTubeletTokenizer(num_frames=4, image_size=16, tubelet_size=2, patch_size=8, in_chans=3)


class TestVideoTubeletTokenizer(TokenizerContract):
    component_class = VideoTubeletTokenizer
    init_args = {"num_frames": 4, "image_size": (16, 24), "tubelet_size": 2, "patch_size": 8, "in_chans": 2}


class TestVideoPixelTarget(TargetContract):
    component_class = VideoPixelTarget
    init_args = {"normalize": "channel", "pred_t_dim": 2}

    def make_tokenizer(self):
        return small_tokenizer()


class TestMotionTarget(TargetContract):
    component_class = MotionTarget
    init_args = {"steps": 2, "cell": 4, "radius": 2, "scale": 1, "block": 3}

    def make_tokenizer(self):
        return small_tokenizer()


class TestHOGTargetOnTubelets(TargetContract):
    component_class = HOGTarget
    init_args = {"frames": "all"}

    def make_tokenizer(self):
        return small_tokenizer()


class TestMovingDigitsDataModule(DataModuleContract):
    component_class = MovingDigitsDataModule
    init_args = {"num_frames": 4, "image_size": 16, "digit_size": 8, "batch_size": 16}

    def make_tokenizer(self):
        return VideoTubeletTokenizer(num_frames=4, image_size=16, tubelet_size=2, patch_size=4, in_chans=1)
