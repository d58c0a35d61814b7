"""Decoders of a multi-modal model: every modality's hidden tokens predicted at that modality's target width.

* ``joint=True`` -- CAV-MAE's decoder (Gong et al. 2023, https://arxiv.org/abs/2210.07839): one transformer over
  the whole sequence (visible latents and a mask token at every hidden position), each token with its modality's
  position embedding and a modality embedding; a linear head per modality.
* ``joint=False`` -- MultiMAE's decoders (Bachmann et al. 2022, https://arxiv.org/abs/2204.01678): one small
  transformer per modality over that modality's tokens only; with ``cross_attention``, each first lets its tokens
  cross-attend to every encoder token (all modalities), as MultiMAE's output adapters do.

As :class:`~anymae.MAEDecoder`, a decoder predicts the tokens at ``mask.ids_decode``; padding is never attended
(padded keys are masked in the joint decoder, and a modality's decoder sees only its own tokens).
"""

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import ConfigError, validated
from ..decoders.base import TransformerDecoder
from ..decoders.cross import CrossAttentionBlock
from ..layers import init_mae_weights, key_padding_mask, run_blocks, transformer_block
from ..position import PositionEmbedding
from ..specs import BuildContext
from ..types import EncoderOutput, MaskSpec, TokenBatch, gather_tokens
from .groups import modality_positions

__all__ = ["MultiModalDecoder"]


class _Branch(nn.Module):
    """A transformer decoder's layers: the projection from the encoder's width, a mask token, optional
    cross-attention to the encoder's tokens, the blocks and the final norm."""

    def __init__(
        self, enc_dim: int, dim: int, depth: int, heads: int, mlp_ratio: float, qkv_bias: bool, eps: float, cross: bool
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(enc_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cross = CrossAttentionBlock(dim, heads, mlp_ratio, qkv_bias, eps, False) if cross else None
        self.blocks = nn.ModuleList(transformer_block(dim, heads, mlp_ratio, qkv_bias, eps) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.apply(init_mae_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def sequence(self, body: Tensor, mask: MaskSpec, num_tokens: int) -> Tensor:
        """``[B, N, dim]``: each visible token's projected latent (``body``, in ``mask.ids_keep`` order) at its place,
        the mask token everywhere else."""
        b, _, d = body.shape
        full = self.mask_token.to(body.dtype).expand(b, num_tokens, d)
        return full.scatter(1, mask.ids_keep[..., None].expand(-1, -1, d), body)


class MultiModalDecoder(TransformerDecoder):
    """Predicts every modality's decoded tokens (see the module docstring).

    Args:
        joint: one decoder over all modalities (CAV-MAE) or one per modality (MultiMAE).
        cross_attention: with ``joint=False``, each modality's tokens first cross-attend to every encoder token
            (MultiMAE).
        pos_embed: a position embedding for some modalities by name; the others get their layout's default.
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias, norm_eps, grad_checkpointing: the blocks'
            (:class:`~anymae.model.decoders.base.TransformerDecoder`): width 512, 8 blocks, 16 heads by default
            (CAV-MAE's; MultiMAE: 256 wide, 2 blocks per modality, 8 heads). ``depth`` counts the joint decoder's
            blocks, or each modality's.
    """

    reads = frozenset({"visible"})

    @validated
    def __init__(
        self,
        *,
        joint: bool = True,
        cross_attention: bool = False,
        pos_embed: dict[str, PositionEmbedding] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if joint and cross_attention:
            raise ConfigError("MultiModalDecoder.cross_attention is MultiMAE's, for joint=False (one decoder each)")
        self.joint, self.cross_attention = joint, cross_attention
        self.given_positions = dict(pos_embed or {})

    def build(self, ctx: BuildContext) -> None:
        specs, dims = ctx.tokens.modality_specs("MultiModalDecoder", self.given_positions), ctx.modality_dims
        if set(dims) != set(specs):
            raise ConfigError(
                "MultiModalDecoder needs a multi-modal tokenizer and a MultiModalTarget (a target per modality); got "
                f"{ctx.tokens.name} and targets for {sorted(dims) or 'no modality'}"
            )
        self.out_dim = ctx.target_dim
        dim = self.embed_dim
        branch_args = (ctx.encoder.embed_dim, dim, self.depth, self.num_heads, self.mlp_ratio, self.qkv_bias)
        if self.joint:
            self.branches = nn.ModuleDict({"joint": _Branch(*branch_args, self.norm_eps, False)})
            self.modality_embed = nn.Parameter(torch.zeros(len(specs), dim))
            nn.init.trunc_normal_(self.modality_embed, std=0.02)
        else:
            self.branches = nn.ModuleDict(
                {m: _Branch(*branch_args, self.norm_eps, self.cross_attention) for m in specs}
            )
        self.pos_embed = modality_positions(self.given_positions, specs, dim)
        self.heads = nn.ModuleDict({m: nn.Linear(dim, dims[m]) for m in specs})
        self.heads.apply(init_mae_weights)
        self.names = tuple(specs)

    def _branch(self, name: str) -> _Branch:
        return cast(_Branch, self.branches[name])

    def _position(self, name: str, part: TokenBatch, dtype: torch.dtype) -> Tensor:
        return self.pos_embed[name](part, part.all_ids()).to(dtype)

    def forward(self, encoded: EncoderOutput, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        if encoded.every_token:
            raise ValueError("MultiModalDecoder decodes from the visible tokens' latents (a masked encoder's output)")
        bounds, p = tokens.segments(), encoded.num_prefix
        checkpoint = self.grad_checkpointing and self.training
        outputs: dict[str, Tensor] = {}
        if self.joint:
            branch = self._branch("joint")
            projected = branch.embed(encoded.latent)  # once: the prefix and the visible tokens
            x = branch.sequence(projected[:, p:], mask, tokens.num_tokens)
            extra = [
                self._position(m, part, x.dtype) + self.modality_embed[self.names.index(m)].to(x.dtype)
                for m, part in tokens.parts.items()
            ]
            x = x + torch.cat([e.expand(x.shape[0], -1, -1) for e in extra], dim=1)
            x = torch.cat([projected[:, :p], x], dim=1)
            x = run_blocks(branch.blocks, x, key_padding_mask(tokens.padding_mask, p), checkpoint)
            x = branch.norm(x)[:, p:]
            outputs = {m: x[:, start:stop] for m, (start, stop) in bounds.items()}
        else:
            for m, part in tokens.parts.items():
                branch = self._branch(m)
                start, stop = bounds[m]
                projected = branch.embed(encoded.latent)  # the visible tokens and the cross-attention context
                x = branch.sequence(projected[:, p:], mask, tokens.num_tokens)[:, start:stop]
                x = x + self._position(m, part, x.dtype)
                if branch.cross is not None:  # MultiMAE: the modality's tokens read every encoder token first
                    x = branch.cross(x, projected)
                x = run_blocks(branch.blocks, x, key_padding_mask(part.padding_mask, 0), checkpoint)
                outputs[m] = branch.norm(x)
        preds = [cast(nn.Linear, self.heads[m])(outputs[m]) for m in outputs]
        pred = torch.cat([F.pad(own, (0, self.out_dim - own.shape[-1])) for own in preds], dim=1)
        return gather_tokens(pred, mask.ids_decode)
