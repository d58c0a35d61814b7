"""Image patches (ViT, Dosovitskiy et al. 2020, https://arxiv.org/abs/2010.11929; MAE's ``patchify``).

A ``[B, C, H, W]`` image becomes ``(H / p_h) * (W / p_w)`` tokens, each the patch's pixels flattened as
``(p_h, p_w, C)`` (channel last, as MAE's ``patchify`` and HF's ViTMAE), so :class:`anymae.PatchTarget` predicts
exactly MAE's pixel target, and a linear map of a token equals MAE's strided-conv patch embedding.
"""

from collections.abc import Mapping

import torch
from pydantic import PositiveInt
from torch import Tensor

from anymae import ConfigError, GridLayout, LayoutSpec, TokenBatch, Tokenizer, patchify, unpatchify, validated

__all__ = ["ImagePatchTokenizer"]


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class ImagePatchTokenizer(Tokenizer):
    """Non-overlapping patches of images with any number of channels and any (divisible) size.

    Args:
        image_size: nominal ``H`` or ``(H, W)``; sizes the position tables. Other sizes divisible by the patch are
            accepted at run time and get their own grid.
        patch_size: ``p`` or ``(p_h, p_w)`` (16 in MAE's ViT-B/16).
        in_chans: channels (1 grayscale, 3 RGB, more for multispectral).
        key: the batch entry holding the images.
    """

    @validated
    def __init__(
        self,
        image_size: PositiveInt | tuple[PositiveInt, PositiveInt] = 224,
        patch_size: PositiveInt | tuple[PositiveInt, PositiveInt] = 16,
        in_chans: PositiveInt = 3,
        key: str = "image",
    ) -> None:
        super().__init__()
        self.image_size = _pair(image_size)
        self.patch_size = _pair(patch_size)
        (h, w), (ph, pw) = self.image_size, self.patch_size
        if h % ph or w % pw:
            raise ConfigError(
                f"ImagePatchTokenizer.image_size {h}x{w} is not divisible by patch_size {ph}x{pw}; "
                f"allowed: multiples of the patch size, e.g. {max(h // ph, 1) * ph}x{max(w // pw, 1) * pw}"
            )
        self.in_chans = in_chans
        self.key = key
        self.channels = in_chans
        self.patch = self.patch_size
        self.token_dim = ph * pw * in_chans
        self.layout = LayoutSpec(kind="grid", rank=2, shape=(h // ph, w // pw))

    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str] = frozenset()) -> TokenBatch:
        images = batch[self.key]
        if images.dim() != 4 or images.shape[1] != self.in_chans:
            raise ConfigError(
                f"expected images [B, {self.in_chans}, H, W], got {tuple(images.shape)}: model.tokenizer.in_chans "
                "and the data's channels (its in_chans) must agree"
            )
        (ph, pw), (h, w) = self.patch_size, images.shape[-2:]
        if h % ph or w % pw:
            raise ConfigError(
                f"image size {h}x{w} is not divisible by the patch size {ph}x{pw}: set the data's image_size"
            )
        return TokenBatch(patchify(images, self.patch_size), GridLayout((h // ph, w // pw)))

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        """Random images of the nominal size."""
        shape = (batch_size, self.in_chans, *self.image_size)
        return {self.key: torch.randn(shape, generator=torch.Generator().manual_seed(0))}

    def inverse(self, tokens: TokenBatch) -> Tensor:
        """Tokens ``[B, N, p_h * p_w * C]`` on a ``(gh, gw)`` grid -> images ``[B, C, gh * p_h, gw * p_w]``."""
        return unpatchify(tokens.tokens, tokens.layout.shape, self.patch_size, self.in_chans)
