"""MAE's decoder (He et al. 2021, https://arxiv.org/abs/2111.06377, section 3): project the encoder's latents to the
decoder's width, add a learned mask token at every decoded position, add the decoder's own (fixed sin-cos) position
embedding, run a few transformer blocks, and map each decoded token to the target's size with a linear head.
Defaults are the paper's: 8 blocks of width 512 with 16 heads.

Unlike MAE's code, the decoder does not un-shuffle the sequence back into grid order: the blocks are permutation
equivariant once every token carries its position embedding, so ``[class | visible | decoded]`` gives the same
outputs, costs no gather, and lets decoder masking (VideoMAE V2) decode only a subset of the hidden tokens.
"""

from typing import Any

import torch
from torch import Tensor

from ...config import validated
from ..layers import key_padding_mask, run_blocks
from ..specs import BuildContext
from ..types import EncoderOutput, MaskSpec, TokenBatch, gather_tokens
from .base import StemDecoder

__all__ = ["MAEDecoder"]


class MAEDecoder(StemDecoder):
    """MAE's lightweight transformer decoder with a learned mask token.

    Under an encoder that sees every token (SimMIM's), the decoder adds no mask token: it runs on every token's latent
    and reads out the decoded ones.

    Args:
        pos_every_block: add the position embedding to every block's input instead of once (Point-MAE's decoder:
            ``x = block(x + pos)``).
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias, out_dim, pos_embed, norm_eps, grad_checkpointing,
            embed_bias: the transformer decoder's (:class:`~anymae.model.decoders.base.StemDecoder`); MAE's defaults.
    """

    @validated
    def __init__(self, pos_every_block: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pos_every_block = pos_every_block

    def build(self, ctx: BuildContext) -> None:
        self.out_dim = self.stem.build(ctx, self, mask_token=not ctx.encoder.sees_all_tokens)

    def forward(self, encoded: EncoderOutput, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        stem, p = self.stem, encoded.num_prefix
        if self.pos_every_block:
            x, pos, padding = self._every_block(encoded, tokens, mask)
        elif encoded.every_token:  # the hidden tokens have latents of their own: no mask tokens
            x, pos, padding = stem.context(encoded.latent, tokens, encoded.ids, p), None, tokens.padding_mask
        else:
            x = stem.context(encoded.latent, tokens, encoded.ids, p)
            x, pos = torch.cat([x, stem.queries(tokens, mask.ids_decode, x.dtype)], dim=1), None
            padding = None  # padded positions must not leak into real ones through attention
            if tokens.padding_mask is not None:
                padding = torch.gather(tokens.padding_mask, 1, torch.cat([encoded.ids, mask.ids_decode], dim=1))
        x = run_blocks(self.blocks, x, key_padding_mask(padding, p), self.grad_checkpointing and self.training, pos)
        if encoded.every_token:
            return stem.predict(gather_tokens(x[:, p:], mask.ids_decode))
        return stem.predict(x[:, p + encoded.ids.shape[1] :])

    def _every_block(
        self, encoded: EncoderOutput, tokens: TokenBatch, mask: MaskSpec
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """The blocks' input without positions, the positions every block adds (zero for the prefix tokens), and the
        padding of the sequence (Point-MAE's decoder)."""
        stem, p = self.stem, encoded.num_prefix
        x = stem.embed(encoded.latent)
        b, ids = x.shape[0], encoded.ids
        if not encoded.every_token:
            x = torch.cat([x, stem.mask_token.to(x.dtype).expand(b, mask.ids_decode.shape[1], -1)], dim=1)
            ids = torch.cat([ids, mask.ids_decode], dim=1)
        padding = None if tokens.padding_mask is None else torch.gather(tokens.padding_mask, 1, ids)
        pos = stem.pos_embed(tokens, ids).to(x.dtype).expand(b, -1, -1)
        return x, torch.cat([pos.new_zeros(b, p, pos.shape[2]), pos], dim=1), padding
