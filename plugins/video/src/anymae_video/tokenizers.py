"""Space-time tubelets (VideoMAE, Tong et al. 2022, https://arxiv.org/abs/2203.12602; MAE-ST, Feichtenhofer et al.
2022, https://arxiv.org/abs/2205.09113): ``t x p x p`` cubes of a ``[B, C, T, H, W]`` clip, each flattened as
``(t, p, p, C)``, channel last, VideoMAE's ``b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2 c)``. A linear map of a
token is then VideoMAE's ``Conv3d(kernel=stride=(t, p, p))`` patch embedding, and :class:`anymae.PatchTarget` its
pixel target.

Positions lie on the ``(T/t, H/p, W/p)`` grid; the encoder and decoder choose their embedding of it:
``anymae.SinCosPositionEmbedding`` (a joint 3-D sin-cos table; ``axes: flat`` is VideoMAE's own 1-D table over the
token index) or ``anymae.SeparablePositionEmbedding`` (MAE-ST's learned time + space tables).
"""

from collections.abc import Mapping

import torch
from pydantic import PositiveInt
from torch import Tensor

from anymae import ConfigError, GridLayout, LayoutSpec, TokenBatch, Tokenizer, patchify, unpatchify, validated

__all__ = ["VideoTubeletTokenizer"]


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class VideoTubeletTokenizer(Tokenizer):
    """Non-overlapping tubelets of clips with any channel count, frame count and (divisible) size.

    Args:
        num_frames: nominal ``T`` (16 in VideoMAE and MAE-ST); sizes the position tables with ``image_size``.
            Clips of another length or size divisible by the tubelet are accepted at run time on their own grid.
        image_size: nominal ``H`` or ``(H, W)``.
        tubelet_size: frames per tubelet ``t`` (2 in VideoMAE and MAE-ST).
        patch_size: ``p`` or ``(p_h, p_w)`` (16).
        in_chans: channels.
        key: the batch entry holding the clips, ``[B, C, T, H, W]``.
    """

    @validated
    def __init__(
        self,
        num_frames: PositiveInt = 16,
        image_size: PositiveInt | tuple[PositiveInt, PositiveInt] = 224,
        tubelet_size: PositiveInt = 2,
        patch_size: PositiveInt | tuple[PositiveInt, PositiveInt] = 16,
        in_chans: PositiveInt = 3,
        key: str = "video",
    ) -> None:
        super().__init__()
        (h, w), (ph, pw) = _pair(image_size), _pair(patch_size)
        if num_frames % tubelet_size or h % ph or w % pw:
            raise ConfigError(
                f"VideoTubeletTokenizer: a {num_frames} x {h} x {w} clip is not divisible into {tubelet_size} x {ph} x "
                f"{pw} tubelets; allowed: num_frames a multiple of tubelet_size, image_size of patch_size"
            )
        self.num_frames, self.image_size, self.in_chans, self.key = num_frames, (h, w), in_chans, key
        self.tubelet_size, self.patch_size = tubelet_size, (ph, pw)
        self.patch = (tubelet_size, ph, pw)
        self.channels = in_chans
        self.token_dim = tubelet_size * ph * pw * in_chans
        self.layout = LayoutSpec(kind="grid", rank=3, shape=(num_frames // tubelet_size, h // ph, w // pw))

    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str] = frozenset()) -> TokenBatch:
        clips = batch[self.key]
        if clips.dim() != 5 or clips.shape[1] != self.in_chans:
            raise ConfigError(
                f"expected clips [B, {self.in_chans}, T, H, W] under {self.key!r}, got {tuple(clips.shape)}: "
                "model.tokenizer.in_chans and the data's channels (its in_chans) must agree"
            )
        grid = tuple(n // p for n, p in zip(clips.shape[2:], self.patch, strict=True))
        if any(n % p for n, p in zip(clips.shape[2:], self.patch, strict=True)):
            raise ConfigError(
                f"clip size {tuple(clips.shape[2:])} is not divisible by the tubelet {self.patch}: set the data's "
                "num_frames and image_size"
            )
        return TokenBatch(patchify(clips, self.patch), GridLayout(grid))

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        """Random clips of the nominal size."""
        shape = (batch_size, self.in_chans, self.num_frames, *self.image_size)
        return {self.key: torch.randn(shape, generator=torch.Generator().manual_seed(0))}

    def inverse(self, tokens: TokenBatch) -> Tensor:
        """Tokens on a ``(T', H', W')`` grid -> clips ``[B, C, T' t, H' p, W' p]``."""
        return unpatchify(tokens.tokens, tokens.layout.shape, self.patch, self.in_chans)
