"""ImageFolderDataModule's evaluation geometry: an image no larger than the training size is resized whole (its edges
kept), a larger one is resized to size / 0.875 and centre-cropped as MAE evaluates; the reader still pickles."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from anymae_image import ImageFolderDataModule
from anymae_image.data import EvalResize

SIZE = 16


def border_image(height: int, width: int) -> np.ndarray:
    """Gray, with a one-pixel white frame: what a crop cuts first."""
    pixels = np.full((height, width, 3), 100, dtype=np.uint8)
    pixels[[0, -1], :] = 255
    pixels[:, [0, -1]] = 255
    return pixels


def evaluation_sample(tmp_path, name: str, pixels: np.ndarray, **kwargs) -> torch.Tensor:
    folder = tmp_path / name
    folder.mkdir()
    Image.fromarray(pixels).save(folder / "only.png")
    data = ImageFolderDataModule(root=str(folder), image_size=SIZE, num_workers=0, mean=(0, 0, 0), std=(1, 1, 1))
    data.setup("fit")
    samples = data.export_samples("train")
    assert samples is not None and len(samples) == 1
    sample = samples[0]
    image = sample["image"]
    assert image.shape == (3, SIZE, SIZE)
    return image


def test_an_image_of_the_training_size_is_read_as_it_is(tmp_path):
    pixels = border_image(SIZE, SIZE)
    image = evaluation_sample(tmp_path, "same", pixels)
    expected = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(image, expected)  # no upsampling to 18 and crop back to 16: the frame is all there


@pytest.mark.parametrize("shape", [(8, 8), (12, 20), (16, 30)], ids=["smaller", "short side smaller", "short side at"])
def test_a_small_image_is_resized_whole_to_the_training_size(tmp_path, shape):
    image = evaluation_sample(tmp_path, "small", border_image(*shape))
    # the frame survives on all four sides: the output's edges are bright, its centre gray
    for edge in (image[:, 0, :], image[:, -1, :], image[:, :, 0], image[:, :, -1]):
        assert edge.mean() > 0.6
    assert image[:, SIZE // 2, SIZE // 2].sub(100 / 255).abs().max() < 0.02


def test_a_large_image_is_resized_and_centre_cropped(tmp_path):
    pixels = border_image(40, 40)
    image = evaluation_sample(tmp_path, "large", pixels)
    # resized to int(16 / 0.875) = 18, then the central 16: the one-pixel frame (under half a pixel at 18) is cut
    for edge in (image[:, 0, :], image[:, -1, :], image[:, :, 0], image[:, :, -1]):
        assert edge.mean() < 0.45  # gray (0.39) and bicubic's ringing, not the white frame
    from torchvision.transforms import InterpolationMode, v2

    reference = v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(18, interpolation=InterpolationMode.BICUBIC),
            v2.CenterCrop(SIZE),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )(Image.fromarray(pixels))
    torch.testing.assert_close(image, reference)


def test_the_evaluation_reader_pickles_and_the_training_one_still_crops_at_random(tmp_path):
    for i in range(2):
        Image.fromarray(border_image(SIZE, SIZE)).save(tmp_path / f"{i}.png")
    data = ImageFolderDataModule(root=str(tmp_path), image_size=SIZE, num_workers=0, crop_scale=(0.2, 0.3))
    again = pickle.loads(pickle.dumps(data.reader(train=False)))  # what a loader worker receives
    assert torch.equal(
        again(str(tmp_path / "0.png"))["image"], data.reader(train=False)(str(tmp_path / "0.png"))["image"]
    )
    assert pickle.loads(pickle.dumps(EvalResize(SIZE))).size == SIZE
    torch.manual_seed(0)
    cropped = data.reader(train=True)(str(tmp_path / "0.png"))["image"]
    whole = data.reader(train=False)(str(tmp_path / "0.png"))["image"]
    assert cropped.shape == whole.shape and not torch.equal(cropped, whole)  # a 20-30 % crop, not the whole image
