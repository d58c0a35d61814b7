"""MotionTubeMasker: tubes that move with the clip's content, so a part hidden at the first time step stays hidden as
it moves; the masker contract; and the shifts it follows."""

import pytest
import torch

from anymae import ConfigError, GridLayout, LayoutSpec, TokenBatch, TubeMasker
from anymae.testing import MaskerContract
from anymae_video import MotionTubeMasker, token_shifts

T, H, W = 4, 8, 8


def moving_blob(velocities: list[tuple[int, int]], dim: int = 6) -> TokenBatch:
    """One clip per velocity (tokens per time step): a bright 2x2-token blob on a dark grid, moving by that many
    tokens each time step."""
    maps = torch.zeros(len(velocities), T, H, W)
    for b, (vy, vx) in enumerate(velocities):
        for t in range(T):
            y, x = (2 if vy >= 0 else 5) + vy * t, (2 if vx >= 0 else 5) + vx * t  # on the grid at every step
            maps[b, t, y : y + 2, x : x + 2] = 1.0
    tokens = maps.flatten(1)[..., None] * torch.linspace(0.5, 1.5, dim)  # each token's values follow its brightness
    return TokenBatch(tokens, GridLayout((T, H, W)))


def hidden(masker, tokens: TokenBatch, seed: int = 0) -> torch.Tensor:
    return masker(tokens, generator=torch.Generator().manual_seed(seed)).mask.view(-1, T, H, W)


def test_the_shifts_follow_each_clips_motion() -> None:
    tokens = moving_blob([(0, 1), (1, 0), (0, -1), (0, 0)])
    shifts = token_shifts(tokens.tokens.mean(-1).view(4, T, H, W), radius=2)
    steps = torch.arange(T)[:, None]
    assert torch.equal(shifts[0], steps * torch.tensor([0, 1]))
    assert torch.equal(shifts[1], steps * torch.tensor([1, 0]))
    assert torch.equal(shifts[2], steps * torch.tensor([0, -1]))
    assert torch.equal(shifts[3], torch.zeros(T, 2, dtype=torch.long))  # nothing moves: no shift (the smallest tie)


def test_a_hidden_part_stays_hidden_as_it_moves() -> None:
    tokens = moving_blob([(0, 1), (1, 1)])
    mask = hidden(MotionTubeMasker(mask_ratio=0.75), tokens)
    for b, (vy, vx) in enumerate([(0, 1), (1, 1)]):
        for t in range(T):
            # the mask at step t is the first step's, moved with the blob
            assert torch.equal(mask[b, t], torch.roll(mask[b, 0], (vy * t, vx * t), dims=(0, 1)))
    counts = (~mask).flatten(2).sum(-1)
    assert (counts == H * W - int(0.75 * H * W)).all()  # every time step keeps the same number visible
    plain = hidden(TubeMasker(mask_ratio=0.75), tokens)
    assert all(torch.equal(plain[b, t], plain[b, 0]) for b in range(2) for t in range(T))  # VideoMAE's stay put


def test_a_still_clip_gets_tube_masks() -> None:
    mask = hidden(MotionTubeMasker(), moving_blob([(0, 0)]))
    assert all(torch.equal(mask[0, t], mask[0, 0]) for t in range(T))


def test_it_needs_a_video_grid_wider_than_its_radius() -> None:
    with pytest.raises(ConfigError, match="rank 3"):
        MotionTubeMasker().check_layout(LayoutSpec("grid", 2, (8, 8)))
    with pytest.raises(ConfigError, match="radius 4 must be below"):
        MotionTubeMasker(radius=4).check_layout(LayoutSpec("grid", 3, (4, 4, 4)))


class TestMotionTubeMasker(MaskerContract):
    component_class = MotionTubeMasker
    init_args = {"mask_ratio": 0.9}

    def make_tokens(self, kind, batch_size, device, padded=False):
        tokens = super().make_tokens(kind, batch_size, device, padded)
        values = torch.randn(tokens.tokens.shape, generator=torch.Generator().manual_seed(1)).to(device)
        return TokenBatch(values, tokens.layout, tokens.padding_mask)  # content to follow, not zeros

    def test_padding_is_never_visible(self):
        pytest.skip("refuses variable-length grids at build time, as TubeMasker")
