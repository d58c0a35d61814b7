"""The multi-modal encoder: one ViT over every modality's visible tokens (MultiMAE, CAV-MAE).

Each modality has its own token embedding (a linear map of its tokenizer's tokens), its own position embedding
(chosen by its layout, as :class:`~anymae.ViTEncoder` chooses) and a learned modality embedding; optionally its own
first blocks, which see only that modality's tokens (CAV-MAE: 11 modality-specific blocks, then 1 joint); then the
joint blocks over all visible tokens. Only the visible tokens are embedded, as in MAE.
"""

from typing import Annotated, cast

import torch
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor, nn

from ...config import ConfigError, validated
from ..encoder import Encoder
from ..layers import init_mae_weights, key_padding_mask, run_blocks, transformer_block
from ..position import PositionEmbedding
from ..specs import BuildContext
from ..types import EncoderOutput, MaskSpec, TokenBatch, gather_tokens
from .groups import Group, modality_positions

__all__ = ["MultiModalEncoder"]


class MultiModalEncoder(Encoder):
    """A ViT over the tokens of several modalities (a :class:`~anymae.MultiModalTokenizer`'s).

    Args:
        embed_dim: token width (ViT-B: 768).
        depth: blocks in all, the modality-specific ones included (12 in CAV-MAE and MultiMAE).
        modality_depth: the first blocks of each modality, its own weights, seeing only its tokens (CAV-MAE: 11;
            MultiMAE: 0, every block joint).
        num_heads: attention heads.
        mlp_ratio: hidden width of each block's MLP relative to ``embed_dim``.
        qkv_bias: bias on the query/key/value projections.
        drop_path_rate: stochastic depth, rising linearly over the ``depth`` blocks.
        class_token: a learned class token in front of the joint blocks (MultiMAE's global token; CAV-MAE has none).
        pos_embed: a position embedding for some modalities by name (VideoMAE's ``SinCosPositionEmbedding(axes=
            "flat")`` for video); the others get their layout's default (sin-cos for grids, an MLP for points).
        pool_separately: each modality's pooled feature (``EncoderOutput.pooled``, which a contrastive term compares)
            comes from the joint blocks run on that modality's tokens alone (CAV-MAE), instead of from the joint
            pass, where each modality has already seen the others.
        norm_eps: LayerNorm epsilon.
        grad_checkpointing: recompute the blocks' activations in the backward pass.
    """

    token_embed: nn.ModuleDict
    pos_embed: nn.ModuleDict

    @validated
    def __init__(
        self,
        embed_dim: PositiveInt = 768,
        depth: PositiveInt = 12,
        modality_depth: NonNegativeInt = 0,
        num_heads: PositiveInt = 12,
        mlp_ratio: PositiveFloat = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: Annotated[float, Field(ge=0, lt=1)] = 0.0,
        class_token: bool = False,
        pos_embed: dict[str, PositionEmbedding] | None = None,
        pool_separately: bool = False,
        norm_eps: PositiveFloat = 1e-6,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ConfigError(f"MultiModalEncoder.embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        if modality_depth > depth:
            raise ConfigError(f"MultiModalEncoder.modality_depth ({modality_depth}) exceeds depth ({depth})")
        self.embed_dim, self.num_layers, self.modality_depth = embed_dim, depth, modality_depth
        self.num_prefix_tokens = int(class_token)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.block_args = (embed_dim, num_heads, mlp_ratio, qkv_bias, norm_eps)
        self.blocks = nn.ModuleList(
            transformer_block(*self.block_args, drop_path=rate) for rate in self.rates[modality_depth:]
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.fc_norm = None
        self.pool_separately, self.grad_checkpointing = pool_separately, grad_checkpointing
        self.names: tuple[str, ...] = ()
        self.given_positions = dict(pos_embed or {})

    def build(self, ctx: BuildContext) -> None:
        specs = ctx.tokens.modality_specs("MultiModalEncoder", self.given_positions)
        self.names = tuple(specs)
        width = self.embed_dim
        self.token_embed = nn.ModuleDict({m: nn.Linear(spec.token_dim, width) for m, spec in specs.items()})
        self.pos_embed = modality_positions(self.given_positions, specs, width)
        self.modality_embed = nn.Parameter(torch.zeros(len(specs), width))
        first = self.rates[: self.modality_depth]
        self.modality_blocks = nn.ModuleDict(
            {m: nn.ModuleList(transformer_block(*self.block_args, drop_path=r) for r in first) for m in specs}
        )
        self.apply(init_mae_weights)
        nn.init.trunc_normal_(self.modality_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)

    def layer_id(self, name: str) -> int:
        """0 for the embeddings; modality block ``i`` and the joint block after ``i`` earlier ones: ``i + 1``."""
        if name.startswith(("token_embed", "pos_embed", "cls_token", "modality_embed")):
            return 0
        if name.startswith("modality_blocks."):
            return int(name.split(".")[2]) + 1
        if name.startswith("blocks."):
            return self.modality_depth + int(name.split(".")[1]) + 1
        return self.num_layers + 1

    def groups(self, tokens: TokenBatch, ids: Tensor) -> dict[str, Group]:
        """Each present modality's entries among ``ids``."""
        return {name: Group.of(ids, start, stop) for name, (start, stop) in tokens.segments().items()}

    def forward(self, tokens: TokenBatch, mask: MaskSpec | None = None, layers: bool = False) -> EncoderOutput:
        ids = tokens.all_ids() if mask is None else mask.ids_keep
        groups = self.groups(tokens, ids)
        checkpoint = self.grad_checkpointing and self.training
        x = tokens.tokens.new_zeros(*ids.shape, self.embed_dim)
        for name, group in groups.items():
            x = group.scatter(x, self._modality(name, tokens.parts[name], group, checkpoint))
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        # visible tokens are never padding; with every token in, padded keys are left out of attention
        padding = tokens.padding_mask if mask is None else None
        attn_mask = key_padding_mask(padding, self.num_prefix_tokens)
        outputs = [x]
        for block in self.blocks:
            outputs.append(run_blocks(nn.ModuleList([block]), outputs[-1], attn_mask, checkpoint))
        latent = self.norm(outputs[-1])
        p = self.num_prefix_tokens
        pooled = {}
        for name, group in groups.items():
            padding = self._padding(tokens, name, group)
            if self.pool_separately:  # the joint blocks on this modality's tokens alone
                alone = run_blocks(self.blocks, group.gather(outputs[0][:, p:]), group.attend(padding), checkpoint)
                pooled[name] = group.mean(self.norm(alone), padding)
            else:
                pooled[name] = group.mean(group.gather(latent[:, p:]), padding)
        return EncoderOutput(latent, ids, p, mask is None, tuple(outputs) if layers else None, pooled)

    @staticmethod
    def _padding(tokens: TokenBatch, name: str, group: Group) -> Tensor | None:
        """Which of the modality's entries are padding (only when every token is in)."""
        padding = tokens.parts[name].padding_mask
        return None if padding is None else torch.gather(padding, 1, group.local)

    def _modality(self, name: str, part: TokenBatch, group: Group, checkpoint: bool) -> Tensor:
        """The modality's entries ``[B, K_m, D]``: token, position and modality embeddings, then its own blocks."""
        x = self.token_embed[name](gather_tokens(part.tokens, group.local))
        x = x + self.pos_embed[name](part, group.local).to(x.dtype)
        x = x + self.modality_embed[self.names.index(name)].to(x.dtype)
        blocks = cast(nn.ModuleList, self.modality_blocks[name])
        if len(blocks):
            padding = None if part.padding_mask is None else torch.gather(part.padding_mask, 1, group.local)
            x = run_blocks(blocks, x, group.attend(padding), checkpoint)
        return x
