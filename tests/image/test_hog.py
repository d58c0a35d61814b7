"""HOG (MaskFeat's target): our batched per-cell histograms equal scikit-image's ``hog``, the Sobel gradients equal
SciPy's, and the target serves image patches and video tubelets on any grid."""

import numpy as np
import pytest
import torch

import anymae
from anymae.testing import build_context
from anymae_image import HOGTarget, ImagePatchTokenizer, hog_cells
from anymae_image.hog import image_gradients

skimage_feature = pytest.importorskip("skimage.feature")


@pytest.mark.parametrize(("height", "width", "cell", "bins"), [(32, 48, 8, 9), (24, 16, 4, 6), (40, 40, 8, 12)])
def test_per_cell_histograms_equal_scikit_image(height, width, cell, bins):
    rng = np.random.default_rng(height + width)
    image = rng.random((height, width))
    image[:, : width // 2] = np.linspace(0, 1, width // 2)[None]  # a ramp: orientation exactly 0, and a flat border
    ours = hog_cells(torch.tensor(image)[None, None], bins=bins, cell=cell, gradient="central")[0, 0]
    theirs = skimage_feature.hog(
        image,
        orientations=bins,
        pixels_per_cell=(cell, cell),
        cells_per_block=(1, 1),
        block_norm="L2",
        feature_vector=False,
    )[:, :, 0, 0]  # [cells_y, cells_x, bins]
    torch.testing.assert_close(ours.permute(1, 2, 0), torch.tensor(theirs), atol=1e-6, rtol=0)


def test_each_channel_gets_its_own_histograms():
    """scikit-image keeps the strongest channel per pixel; MaskFeat (and we) keep every channel."""
    rng = np.random.default_rng(0)
    image = rng.random((3, 16, 16))
    ours = hog_cells(torch.tensor(image)[None], gradient="central")[0]
    for c in range(3):
        theirs = skimage_feature.hog(image[c], 9, (8, 8), (1, 1), block_norm="L2", feature_vector=False)[:, :, 0, 0]
        torch.testing.assert_close(ours[c].permute(1, 2, 0), torch.tensor(theirs), atol=1e-6, rtol=0)


def test_sobel_gradients_are_scipys_and_feed_the_same_histograms():
    ndimage = pytest.importorskip("scipy.ndimage")
    image = np.random.default_rng(1).random((2, 16, 24))
    gx, gy = image_gradients(torch.tensor(image)[None], "sobel")
    # SciPy's "mirror" border is torch's "reflect" padding; one channel at a time (SciPy would smooth across them)
    sx = np.stack([ndimage.sobel(channel, axis=1, mode="mirror") for channel in image])
    sy = np.stack([ndimage.sobel(channel, axis=0, mode="mirror") for channel in image])
    torch.testing.assert_close(gx[0], torch.tensor(sx))
    torch.testing.assert_close(gy[0], torch.tensor(sy))
    # the histograms of those gradients, written out with NumPy: magnitude votes into 20-degree bins, per 8x8 cell
    bins = np.minimum((np.rad2deg(np.arctan2(sy, sx)) % 180 / 20).astype(int), 8)
    votes = np.zeros((2, 9, 16, 24))
    np.put_along_axis(votes, bins[:, None], np.hypot(sx, sy)[:, None], axis=1)
    cells = votes.reshape(2, 9, 2, 8, 3, 8).sum(axis=(3, 5))
    cells /= np.linalg.norm(cells, axis=1, keepdims=True)
    torch.testing.assert_close(hog_cells(torch.tensor(image)[None])[0], torch.tensor(cells))


def test_target_on_image_patches_is_maskfeats_108_values():
    tokenizer = ImagePatchTokenizer(image_size=(32, 48), patch_size=16, in_chans=3)
    target = HOGTarget()
    target.build(build_context(tokenizer.spec))
    assert target.dim_per_token == 108
    images = torch.randn(2, 3, 32, 48)
    tokens = tokenizer({"image": images})
    mask = anymae.MaskSpec.from_noise(torch.rand(2, 6, generator=torch.Generator().manual_seed(0)), 2)
    out = target({"image": images}, tokens, mask)
    cells = hog_cells(images)  # [B, C, 9, 4, 6]
    # token (row 1, col 2): cells rows 2-3, cols 4-5; its values ordered (cell_y, cell_x, channel, bin)
    expected = cells[:, :, :, 2:4, 4:6].permute(0, 3, 4, 1, 2).reshape(2, 108)
    index = (mask.ids_decode == 1 * 3 + 2).nonzero()
    for b, m in index.tolist():
        torch.testing.assert_close(out[b, m], expected[b])


def test_target_on_video_tubelets_takes_each_tubelets_first_frame():
    from anymae_video import VideoTubeletTokenizer

    tokenizer = VideoTubeletTokenizer(num_frames=4, image_size=16, tubelet_size=2, patch_size=16, in_chans=3)
    clips = torch.randn(2, 3, 4, 16, 16)
    tokens = tokenizer({"video": clips})
    mask = anymae.MaskSpec.from_mask(torch.tensor([[True, False], [True, False]]))
    for frames, per in (("first", 1), ("all", 2)):
        target = HOGTarget(frames=frames)
        target.build(build_context(tokenizer.spec))
        assert target.dim_per_token == per * 108
        out = target({"video": clips}, tokens, mask)  # token 0: frames 0-1
        chosen = clips[:, :, :per].transpose(1, 2).flatten(0, 1)
        expected = hog_cells(chosen).permute(0, 3, 4, 1, 2).reshape(2, per * 108)
        torch.testing.assert_close(out[:, 0], expected)


def test_hog_target_refuses_what_it_cannot_serve():
    target = HOGTarget(cell=5)
    with pytest.raises(anymae.ConfigError, match="must divide"):
        target.build(build_context(ImagePatchTokenizer(image_size=32, patch_size=16).spec))
    from anymae_timeseries import SeriesPatchTokenizer

    with pytest.raises(anymae.ConfigError, match="image patches or video tubelets"):
        HOGTarget().build(build_context(SeriesPatchTokenizer(channels=1, length=32, patch_len=8).spec))
