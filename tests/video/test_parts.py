"""The video parts on their own: tubelets and their inverse, MAE-ST's frame subset, motion trajectories, the
separable position tables, frame strips."""

import pytest
import torch

import anymae
from anymae.testing import build_context
from anymae_video import FrameStrips, MotionTarget, VideoPixelTarget, VideoTubeletTokenizer, block_matching_flow
from anymae_video.targets import frame_offsets


def decode_all(tokens: anymae.TokenBatch) -> anymae.MaskSpec:
    """A mask that hides the first 3/4 of the tokens and decodes them."""
    n = tokens.num_tokens
    mask = torch.zeros(tokens.batch_size, n, dtype=torch.bool)
    mask[:, : 3 * n // 4] = True
    return anymae.MaskSpec.from_mask(mask)


def test_tubelets_are_videomaes_and_invert():
    tokenizer = VideoTubeletTokenizer(num_frames=4, image_size=(16, 24), tubelet_size=2, patch_size=8, in_chans=3)
    clips = torch.randn(2, 3, 4, 16, 24)
    tokens = tokenizer({"video": clips})
    assert tokens.tokens.shape == (2, 2 * 2 * 3, 2 * 8 * 8 * 3) and tokens.layout.shape == (2, 2, 3)
    # token (t=1, h=0, w=2), frame 1 of the tubelet, pixel (3, 5), channel 2: (p0 p1 p2 c) order, channel last
    token = tokens.tokens[0, 1 * 6 + 0 * 3 + 2].view(2, 8, 8, 3)
    assert token[1, 3, 5, 2] == clips[0, 2, 3, 3, 2 * 8 + 5]
    torch.testing.assert_close(tokenizer.inverse(tokens), clips)
    spec = tokenizer.spec
    assert spec.patch == (2, 8, 8) and spec.channels == 3 and spec.invertible
    with pytest.raises(anymae.ConfigError, match="not divisible into"):
        VideoTubeletTokenizer(num_frames=5, tubelet_size=2)


def test_pred_t_dim_predicts_mae_st_frames():
    """MAE-ST: 16 frames, tubelets of 2, pred_t_dim 8: frames linspace(0, 15, 8) = 0, 2, 4, 6, 8, 10, 12, 15, one per
    tubelet, the target MAE-ST's patchify of exactly those frames."""
    assert frame_offsets(8, 2, 8)[:, 0].tolist() == [0, 0, 0, 0, 0, 0, 0, 1]
    tokenizer = VideoTubeletTokenizer(num_frames=16, image_size=16, tubelet_size=2, patch_size=8, in_chans=3)
    target = VideoPixelTarget(normalize="none", pred_t_dim=8)
    target.build(build_context(tokenizer.spec))
    assert target.dim_per_token == 8 * 8 * 3
    clips = torch.randn(2, 3, 16, 16, 16)
    tokens = tokenizer({"video": clips})
    mask = decode_all(tokens)
    frames = torch.index_select(clips, 2, torch.linspace(0, 15, 8).long())
    expected = anymae.gather_tokens(anymae.patchify(frames, (1, 8, 8)), mask.ids_decode)
    torch.testing.assert_close(target({"video": clips}, tokens, mask), expected)
    # predictions map back to whole tubelets, each frame showing the predicted frame nearest to it
    back = target.to_tokens(expected, tokens, mask).unflatten(-1, (2, -1))
    torch.testing.assert_close(back[:, :, 0], back[:, :, 1])
    with pytest.raises(anymae.ConfigError, match="pred_t_dim"):
        VideoPixelTarget(pred_t_dim=5).build(build_context(tokenizer.spec))


def test_pixel_target_undoes_the_input_normalisation_videomae_style():
    tokenizer = VideoTubeletTokenizer(num_frames=2, image_size=8, tubelet_size=2, patch_size=4, in_chans=3)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    target = anymae.PatchTarget(normalize="none", input_mean=mean, input_std=std)
    target.build(build_context(tokenizer.spec))
    pixels = torch.rand(2, 3, 2, 8, 8)
    normalised = (pixels - torch.tensor(mean).view(3, 1, 1, 1)) / torch.tensor(std).view(3, 1, 1, 1)
    tokens = tokenizer({"video": normalised})
    mask = decode_all(tokens)
    out = target({"video": normalised}, tokens, mask)
    torch.testing.assert_close(out, anymae.gather_tokens(anymae.patchify(pixels, (2, 4, 4)), mask.ids_decode))
    torch.testing.assert_close(
        target.to_tokens(out, tokens, mask), anymae.gather_tokens(tokens.tokens, mask.ids_decode)
    )
    with pytest.raises(anymae.ConfigError, match="2 values"):
        anymae.PatchTarget(input_mean=(0.5, 0.5), input_std=(0.2, 0.2)).build(build_context(tokenizer.spec))


def moving_square(shift: tuple[int, int], frames: int = 6, size: int = 32) -> torch.Tensor:
    """A textured 10 x 10 square moving ``shift`` pixels per frame on a black background: ``[1, 1, T, H, W]``."""
    texture = torch.rand(10, 10, generator=torch.Generator().manual_seed(0)) + 0.5
    clip = torch.zeros(1, 1, frames, size, size)
    for t in range(frames):  # building the test input, not the target
        y, x = 8 + shift[0] * t, 8 + shift[1] * t
        clip[0, 0, t, y : y + 10, x : x + 10] = texture
    return clip


def test_block_matching_finds_the_motion():
    clip = moving_square((1, 2))[0, 0]
    flow = block_matching_flow(clip[:-1], clip[1:], radius=3, block=5)
    inside = [flow[t, 13 + t, 13 + 2 * t].tolist() for t in range(5)]  # the square's centre, frame by frame
    assert inside == [[1.0, 2.0]] * 5
    assert flow[:, 30, 2].abs().sum() == 0  # flat background: ties go to no motion


def test_motion_target_tracks_each_tubelet_points():
    tokenizer = VideoTubeletTokenizer(num_frames=6, image_size=32, tubelet_size=2, patch_size=8, in_chans=1)
    target = MotionTarget(steps=2, cell=4, radius=3, scale=1, block=5)
    target.build(build_context(tokenizer.spec))
    assert target.dim_per_token == 2 * 4 * 2
    clip = moving_square((1, -1))
    tokens = tokenizer({"video": clip})
    n = tokens.num_tokens
    mask = anymae.MaskSpec.from_mask(torch.arange(n)[None] < n - 1)  # decode all but the last token
    out = target({"video": clip}, tokens, mask).view(1, n - 1, 2, 4, 2) * 3  # [B, M, steps, points, (dy, dx)]
    first = 0 * 16 + 1 * 4 + 1  # time step 0, patch (1, 1): pixels 8-15, wholly inside the square
    assert out[0, first].tolist() == [[[1.0, -1.0]] * 4] * 2
    assert out[0, 3 * 4].abs().sum() == 0  # patch (3, 0): background, far from the square
    last = 2 * 16 + 1 * 4 + 1  # the last tubelet: its second step is past the clip's last frame
    assert out[0, last, 1].abs().sum() == 0
    with pytest.raises(anymae.ConfigError, match="must divide"):
        MotionTarget(cell=3).build(build_context(tokenizer.spec))


def test_separable_position_tables_are_time_plus_space_and_resample():
    layout = anymae.LayoutSpec("grid", 3, (4, 2, 3))
    embed = anymae.SeparablePositionEmbedding()
    embed.build(8, layout)
    tokens = anymae.TokenBatch(torch.zeros(1, 24, 1), anymae.GridLayout((4, 2, 3)))
    out = embed(tokens, torch.arange(24)[None])[0].view(4, 6, 8)
    torch.testing.assert_close(out, embed.first[:, None] + embed.rest[None])
    other = anymae.TokenBatch(torch.zeros(1, 8 * 6, 1), anymae.GridLayout((8, 2, 3)))
    assert embed(other, torch.arange(48)[None]).shape == (1, 48, 8)  # twice the frames: the time table interpolated
    bigger = anymae.SeparablePositionEmbedding()
    bigger.build(8, anymae.LayoutSpec("grid", 3, (8, 2, 3)))
    bigger.load_state_dict(embed.state_dict())
    assert bigger.first.shape == (8, 8)
    with pytest.raises(anymae.ConfigError, match="rank 2 or more"):
        anymae.SeparablePositionEmbedding().build(8, anymae.LayoutSpec("grid", 1, (4,)))


def test_frame_strips_png_and_gif(tmp_path):
    from anymae_video import save_frame_strips

    clips = {k: torch.rand(2, 3, 6, 16, 16) for k in ("input", "masked", "reconstruction")}
    clips["hidden"] = (torch.rand(2, 3, 6, 16, 16) > 0.5).float()
    path = save_frame_strips(clips, tmp_path / "strips.png", max_frames=4, gif=True)
    from PIL import Image

    with Image.open(path) as png:
        assert png.size == (4 * 18 + 2, 6 * 18 + 2)  # 4 frames across, 2 clips x 3 rows down, 2 px padding
    with Image.open(path.with_suffix(".gif")) as gif:
        assert gif.n_frames == 4
    assert FrameStrips(gif=True).drawings == {anymae.RAW_VALUES: frozenset({anymae.INVERSE})}


def test_a_zero_std_is_refused_naming_the_field(tmp_path):
    from anymae_video import VideoFolderDataModule

    with pytest.raises(anymae.ConfigError, match=r"VideoFolderDataModule\.std\.0: Input should be greater than 0"):
        VideoFolderDataModule(str(tmp_path), std=(0.0, 0.2, 0.2))
