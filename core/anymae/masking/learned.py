"""Learned and data-aware maskers: the mask depends on the tokens' content, through a network of the masker's own or
through the model's encoder.

* :class:`AdaptiveMasker` -- AdaMAE (Bandara et al. CVPR 2023, https://arxiv.org/abs/2211.09120): a small sampling
  network scores every token; the visible tokens are drawn from its softmax, and the network learns by REINFORCE to
  draw the tokens the model reconstructs worst (high-information regions) more often.
* :class:`HardPatchesMasker` -- HPM (Wang et al. CVPR 2023, https://arxiv.org/abs/2304.05919): a loss predictor
  learns which tokens the model finds hard; a growing share of the hidden tokens (easy to hard) is the predicted
  hardest.
* :class:`AttentionMasker` -- AttMask (Kakogeorgiou et al. ECCV 2022, https://arxiv.org/abs/2203.12719): hide the
  tokens a slow (EMA) copy of the encoder's class token attends to most, optionally revealing a few of them as hints.

All three keep the library's masking rules (:mod:`anymae.masking.base`): every sample keeps the same number of
tokens visible, padding is never visible, and a mask is reproducible from the generator and the model's weights.
Without a model (no :class:`~anymae.masking.base.MaskContext`, or before :meth:`~Masker.build`) they fall back to
uniform random masking, so ``anymae masks`` and the contract tests can draw them on their own.
"""

import copy
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor, nn

from ..config import ConfigError, validated
from ..decoders import MAEDecoder
from ..encoders import Encoder, all_ids, init_mae_weights, key_padding_mask
from ..layers import transformer_block
from ..position import default_position_embedding
from ..types import MaskSpec, TokenBatch, TokenizerSpec
from .base import MaskContext, Masker, MaskFeedback, real_token_count, uniform

__all__ = ["AdaptiveMasker", "AttentionMasker", "HardPatchesMasker", "ranking_loss", "standardised_loss"]


# ------------------------------------------------------------------------------------------------------ helpers
def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` that takes no gradients (a running average of it, updated by :func:`ema_update`)."""
    twin = copy.deepcopy(module)
    twin.requires_grad_(False)
    twin.eval()
    return twin


@torch.no_grad()
def ema_update(twin: nn.Module, online: nn.Module, momentum: float) -> None:
    """``twin = momentum * twin + (1 - momentum) * online`` for every parameter (one fused call over the parameter
    lists); buffers of the same shape are copied (position tables, not learned)."""
    ours, theirs = list(twin.parameters()), list(online.parameters())
    if len(ours) != len(theirs):
        raise RuntimeError(f"the running copy has {len(ours)} parameters, the online module {len(theirs)}")
    if ours:
        torch._foreach_lerp_(ours, [p.detach().to(q.dtype) for p, q in zip(theirs, ours, strict=True)], 1 - momentum)
    for mine, theirs_buffer in zip(twin.buffers(), online.buffers(), strict=False):
        if mine.shape == theirs_buffer.shape:
            mine.copy_(theirs_buffer)


def decode_everything(tokens: TokenBatch) -> MaskSpec:
    """A :class:`MaskSpec` that decodes every token, for a decoder run in its full mode on latents of every token
    (only ``ids_decode`` is read there). It hides everything, so it is not a mask the encoder could be run with."""
    ids = all_ids(tokens)
    hidden = torch.ones(ids.shape, dtype=torch.bool, device=ids.device)
    valid = None if tokens.padding_mask is None else ~tokens.padding_mask
    return MaskSpec(ids[:, :0], ids, ids, hidden, ids, valid)


def counted_tokens(mask: MaskSpec) -> Tensor:
    """``[B, M']`` bool: the decoded tokens that count in a loss (hidden and not padding)."""
    counted = torch.gather(mask.mask, 1, mask.ids_decode)
    if mask.decode_valid is not None:
        counted = counted & mask.decode_valid
    return counted


def ranking_loss(pred: Tensor, target: Tensor, counted: Tensor) -> Tensor:
    """HPM's relative loss-prediction loss: a pairwise binary cross-entropy on the order of every pair of counted
    tokens of a sample.

    For tokens ``i``, ``j`` of the same sample, ``sigmoid(pred[j] - pred[i])`` is the predicted probability that
    ``j`` is harder than ``i``; the label is ``target[j] > target[i]`` (pairs with equal targets do not count). As
    HPM's ``forward_learn_loss(relative=True)``, with ``log(sigmoid)`` computed stably.

    Args:
        pred: ``[B, M]`` predicted losses.
        target: ``[B, M]`` true losses (no gradient flows to them).
        counted: ``[B, M]`` bool, the tokens that take part.
    """
    target = target.detach().float()
    pred = pred.float()
    pairs = counted[:, :, None] & counted[:, None, :]
    positive = (target[:, None, :] > target[:, :, None]) & pairs  # [b, i, j]: j is harder than i
    negative = (target[:, None, :] < target[:, :, None]) & pairs
    margin = pred[:, None, :] - pred[:, :, None]  # pred[j] - pred[i]
    loss = -(positive.float() * F.logsigmoid(margin) + negative.float() * F.logsigmoid(-margin))
    return loss.sum() / (positive | negative).sum().clamp(min=1)


def standardised_loss(pred: Tensor, target: Tensor, counted: Tensor) -> Tensor:
    """HPM's absolute loss-prediction loss: the squared error to each sample's true losses standardised over its
    counted tokens (unbiased variance, ``+ 1e-6`` as HPM)."""
    target = target.detach().float()
    weight = counted.float()
    count = weight.sum(dim=1, keepdim=True)
    mean = (target * weight).sum(dim=1, keepdim=True) / count.clamp(min=1)
    var = ((target - mean).pow(2) * weight).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)
    standard = (target - mean) / (var + 1e-6).sqrt()
    return ((pred.float() - standard).pow(2) * weight).sum() / weight.sum().clamp(min=1)


# ------------------------------------------------------------------------------------------------------- AdaMAE
class AdaptiveMasker(Masker):
    """AdaMAE's adaptive masking: a sampling network turns the tokens into a categorical distribution over them, and
    the visible tokens are a draw of ``K`` tokens from it without replacement.

    The sampling network (created in :meth:`build`) is a linear embedding of the tokens, a position embedding, one
    pre-norm transformer block (no qkv bias, LayerNorm eps 1e-6, MLP ratio 4, as AdaMAE's) and a linear head to one
    logit per token; padding gets probability 0. It learns from each step's per-token loss by REINFORCE (AdaMAE's
    sampling loss): ``-mean(log p[i] * loss[i])`` over the hidden, decoded, non-padding tokens, times
    ``loss_weight``: the hidden tokens that were hard to reconstruct become likelier to be drawn visible next time, and,
    since the probabilities sum to one, the easy ones less likely (AdaMAE's visible tokens gather in high-information
    regions). It is returned as the auxiliary loss ``"sampling"``.

    Differences from AdaMAE: the sampling network has its own token embedding (AdaMAE shares the encoder's patch
    embedding) and takes the layout's default position embedding (fixed sin-cos on grids; AdaMAE learns a
    zero-initialised table), so it serves any layout. Once built, the mask comes from the network with or without a
    :class:`~anymae.masking.base.MaskContext` (it needs only the tokens); before :meth:`build` it is uniform random.
    With ``noise`` given, the noise chooses the visible tokens (the network's log-probabilities still feed the
    sampling loss).

    Args:
        mask_ratio: fraction of tokens hidden, in (0, 1); ``int(N * (1 - mask_ratio))`` stay visible, as MAE. AdaMAE:
            0.95 (video, its default here).
        dim: width of the sampling network (``None``: the encoder's ``embed_dim``, as AdaMAE).
        num_heads: attention heads of its block (8 in AdaMAE); must divide ``dim``.
        loss_weight: weight of the sampling loss (AdaMAE's lambda: 1e-4).
    """

    learns = True

    @validated
    def __init__(
        self,
        mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.95,
        dim: PositiveInt | None = None,
        num_heads: PositiveInt = 8,
        loss_weight: Annotated[float, Field(ge=0)] = 1e-4,
    ) -> None:
        super().__init__()
        if dim is not None and dim % num_heads:
            raise ConfigError(f"AdaptiveMasker.dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.mask_ratio = mask_ratio
        self.dim, self.num_heads = dim, num_heads
        self.loss_weight = loss_weight
        self.embed: nn.Linear | None = None
        self.pos_embed: nn.Module | None = None
        self.block: nn.Module | None = None
        self.head: nn.Linear | None = None
        self._log_probs: Tensor | None = None  # this step's log-probabilities, for auxiliary_loss

    def build(self, encoder: Encoder, tokens: TokenizerSpec) -> None:
        dim = self.dim or encoder.embed_dim
        if dim % self.num_heads:
            raise ConfigError(
                f"AdaptiveMasker: the sampling network's width {dim} (the encoder's embed_dim unless dim is set) must "
                f"be divisible by num_heads ({self.num_heads})"
            )
        self.embed = nn.Linear(tokens.token_dim, dim)
        self.pos_embed = default_position_embedding(tokens.layout)
        self.pos_embed.build(dim, tokens.layout)
        self.block = transformer_block(dim, self.num_heads, 4.0, qkv_bias=False, norm_eps=1e-6)
        self.head = nn.Linear(dim, 1)
        for part in (self.embed, self.block, self.head):
            part.apply(init_mae_weights)

    def num_visible(self, tokens: TokenBatch) -> int:
        return int(real_token_count(tokens) * (1 - self.mask_ratio))

    def scores(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        """Uniform scores: the unbuilt masker's random masking."""
        return uniform(tokens.tokens.shape[:2], tokens, generator)

    def log_probs(self, tokens: TokenBatch) -> Tensor:
        """``[B, N]`` float32 log-probabilities of the sampling network (``-inf`` at padding)."""
        x = self.embed(tokens.tokens)
        x = x + self.pos_embed(tokens, all_ids(tokens)).to(x.dtype)
        x = self.block(x, attn_mask=key_padding_mask(tokens.padding_mask, 0))
        logits = torch.nan_to_num(self.head(x).squeeze(-1).float())  # AdaMAE's nan_to_num
        if tokens.padding_mask is not None:
            logits = logits.masked_fill(tokens.padding_mask, float("-inf"))
        return logits.log_softmax(dim=-1)

    def forward(
        self,
        tokens: TokenBatch,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        context: MaskContext | None = None,
    ) -> MaskSpec:
        self._log_probs = None
        if self.head is None:  # not built: no network yet
            return super().forward(tokens, generator, noise)
        log_probs = self._log_probs = self.log_probs(tokens)
        if noise is not None:
            return super().forward(tokens, generator, noise)
        b, n = log_probs.shape
        keep = self.num_visible(tokens)
        if not 0 < keep < n:
            raise ValueError(f"AdaptiveMasker keeps {keep} of {n} tokens visible; it must keep between 1 and {n - 1}")
        drawn = torch.multinomial(log_probs.detach().exp(), keep, replacement=False, generator=generator)
        hidden = torch.ones(b, n, dtype=torch.int8, device=log_probs.device).scatter(1, drawn, 0)
        if tokens.padding_mask is not None:  # padding after every real hidden token (it has probability 0 anyway)
            hidden = hidden + tokens.padding_mask.to(torch.int8)
        # visible first, then hidden, each in grid order (a stable sort, as MaskSpec.from_mask)
        order = torch.argsort(hidden, dim=1, stable=True)
        return MaskSpec.from_order(order, keep, tokens.padding_mask)

    def auxiliary_loss(self, feedback: MaskFeedback) -> dict[str, Tensor]:
        log_probs, self._log_probs = self._log_probs, None
        if log_probs is None:
            return {}
        mask = feedback.mask
        counted = counted_tokens(mask).float()
        chosen = torch.gather(log_probs, 1, mask.ids_decode).masked_fill(counted == 0, 0.0)
        reward = feedback.token_loss.detach().float()
        loss = -(chosen * reward * counted).sum() / counted.sum().clamp(min=1)
        return {"sampling": loss * self.loss_weight}


# ---------------------------------------------------------------------------------------------------------- HPM
class HardPatchesMasker(Masker):
    """HPM's hard-patches mining: a loss predictor learns, from the visible tokens' latents, how badly the model will
    reconstruct each hidden token, and the mask hides the tokens it predicts hardest.

    The predictor (created in :meth:`build`) is an MAE decoder with one output per token. Each step it is trained on
    the visible latents against the step's true per-token losses (auxiliary loss ``"predictor"``, weight 1 as
    HPM; its gradient also reaches the encoder). To choose a mask, a running (EMA) copy of the encoder sees every token
    and the copy of the predictor, in its full mode, predicts every token's loss; the ``h`` predicted hardest are
    hidden, and the other hidden tokens are drawn at random, so ``h = int(M * hard_ratio * progress)`` of the ``M``
    hidden tokens rise from none to ``hard_ratio`` over training (HPM's easy-to-hard schedule, ``(epoch + 1) / E *
    0.5``). Padding is never counted as hard and never visible.

    Without a :class:`~anymae.masking.base.MaskContext`, or before :meth:`build`, it masks uniformly at random.

    Args:
        mask_ratio: fraction of tokens hidden (MAE's 0.75, as HPM).
        hard_ratio: share of the hidden tokens chosen as the predicted hardest at the end of training (HPM: 0.5).
        predictor_depth: the predictor's blocks (HPM's is as deep as the decoder, 8; 2 here, for cost).
        predictor_dim: its width (512, HPM's decoder width).
        predictor_heads: its attention heads (16, as HPM's decoder).
        ema: momentum of the running copies that choose the mask (HPM: 0.999 rising to 0.9999; 0.999 here, fixed);
            0 uses the online encoder and predictor directly, with no copy.
        relative: train the predictor on the order of the losses within each sample (pairwise BCE, HPM's default);
            else on the losses standardised per sample (squared error).
    """

    learns = True

    @validated
    def __init__(
        self,
        mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.75,
        hard_ratio: Annotated[float, Field(ge=0, le=1)] = 0.5,
        predictor_depth: PositiveInt = 2,
        predictor_dim: PositiveInt = 512,
        predictor_heads: PositiveInt = 16,
        ema: Annotated[float, Field(ge=0, lt=1)] = 0.999,
        relative: bool = True,
    ) -> None:
        super().__init__()
        if predictor_dim % predictor_heads:
            raise ConfigError(
                f"HardPatchesMasker.predictor_dim ({predictor_dim}) must be divisible by predictor_heads "
                f"({predictor_heads})"
            )
        self.mask_ratio, self.hard_ratio = mask_ratio, hard_ratio
        self.predictor_depth, self.predictor_dim, self.predictor_heads = predictor_depth, predictor_dim, predictor_heads
        self.ema, self.relative = ema, relative
        self.predictor: nn.Module | None = None
        self.ema_encoder: nn.Module | None = None
        self.ema_predictor: nn.Module | None = None

    def build(self, encoder: Encoder, tokens: TokenizerSpec) -> None:
        self.predictor = MAEDecoder(self.predictor_dim, self.predictor_depth, self.predictor_heads)
        self.predictor.build(encoder.embed_dim, 1, tokens.layout)
        if self.ema > 0:
            self.ema_encoder = frozen_copy(encoder)
            self.ema_predictor = frozen_copy(self.predictor)

    def train(self, mode: bool = True) -> "HardPatchesMasker":
        super().train(mode)
        for twin in (self.ema_encoder, self.ema_predictor):  # running copies always score in eval mode
            if twin is not None:
                twin.eval()
        return self

    def num_visible(self, tokens: TokenBatch) -> int:
        return int(real_token_count(tokens) * (1 - self.mask_ratio))

    def scores(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        """Uniform scores: random masking (no context, or not built)."""
        return uniform(tokens.tokens.shape[:2], tokens, generator)

    @torch.no_grad()
    def predicted_loss(self, tokens: TokenBatch, context: MaskContext) -> Tensor:
        """``[B, N]`` float32: each token's loss as the scoring copies predict it with every token visible, ``-inf``
        at padding."""
        encoder = self.ema_encoder if self.ema > 0 else context.encoder
        predictor = self.ema_predictor if self.ema > 0 else self.predictor
        latent = encoder(tokens)  # every token visible
        pred = predictor(latent, tokens, decode_everything(tokens), encoder.num_prefix_tokens)
        pred = pred.squeeze(-1).float()
        if tokens.padding_mask is not None:
            pred = pred.masked_fill(tokens.padding_mask, float("-inf"))
        return pred

    def forward(
        self,
        tokens: TokenBatch,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        context: MaskContext | None = None,
    ) -> MaskSpec:
        if context is None or self.predictor is None or noise is not None:
            return super().forward(tokens, generator, noise)
        if context.training and self.ema > 0:
            ema_update(self.ema_encoder, context.encoder, self.ema)
            ema_update(self.ema_predictor, self.predictor, self.ema)
        keep = self.num_visible(tokens)
        hidden = real_token_count(tokens) - keep
        num_hard = int(hidden * self.hard_ratio * context.progress)
        scores = uniform(tokens.tokens.shape[:2], tokens, generator)
        if num_hard > 0:
            hardest = self.predicted_loss(tokens, context).topk(num_hard, dim=1).indices
            # the hardest score in [1, 2): after every other real token, so they are hidden
            scores = scores.scatter_add(1, hardest, torch.ones_like(hardest, dtype=scores.dtype))
        return super().forward(tokens, generator, scores)

    def auxiliary_loss(self, feedback: MaskFeedback) -> dict[str, Tensor]:
        if self.predictor is None:
            return {}
        mask = feedback.mask
        pred = self.predictor(feedback.latent, feedback.tokens, mask, feedback.num_prefix_tokens).squeeze(-1)
        counted = counted_tokens(mask)
        loss_fn = ranking_loss if self.relative else standardised_loss
        return {"predictor": loss_fn(pred, feedback.token_loss, counted)}


# ------------------------------------------------------------------------------------------------------ AttMask
class AttentionMasker(Masker):
    """AttMask: hide the tokens that the class token of a running (EMA) copy of the encoder attends to most, in its
    last block, with every token visible (AttMask-High); or reveal some of the most attended as hints (AttMask-Hint).

    ``"hints"``: of the ``int(N * show_max)`` most attended tokens, ``int(N * show_max * r)`` chosen at random are
    visible, with ``r`` drawn per batch from U(0.1, 0.5) (AttMask's hint share); the rest of the visible tokens are
    the least attended, so the count stays ``K``. The attention of padding is ``-inf`` and padding is never visible.

    Differences from AttMask: AttMask (on iBOT) draws the mask ratio per batch from U(0.1, 0.5) and masks only half of
    the images; here every sample hides ``mask_ratio`` of its tokens, the same count in every sample, as every masker
    of the library. The encoder needs a class token (refused at build otherwise). Without a
    :class:`~anymae.masking.base.MaskContext`, or before :meth:`build`, it masks uniformly at random. Nothing is
    learned from feedback.

    Args:
        mask_ratio: fraction of tokens hidden (0.75, MAE's).
        mode: ``"high"`` (AttMask-High, the default) or ``"hints"`` (AttMask-Hint).
        show_max: share of the tokens, the most attended, from which hints are revealed (0.1 in AttMask).
        ema: momentum of the encoder's running copy that gives the attention (0.996, iBOT's teacher); 0 uses the
            online encoder.
    """

    #: AttMask-Hint's share of the ``show_max`` most attended tokens revealed, drawn per batch.
    hint_range: tuple[float, float] = (0.1, 0.5)

    @validated
    def __init__(
        self,
        mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.75,
        mode: Literal["high", "hints"] = "high",
        show_max: Annotated[float, Field(gt=0, le=1)] = 0.1,
        ema: Annotated[float, Field(ge=0, lt=1)] = 0.996,
    ) -> None:
        super().__init__()
        self.mask_ratio, self.mode, self.show_max, self.ema = mask_ratio, mode, show_max, ema
        self.ema_encoder: nn.Module | None = None
        self.built = False

    def build(self, encoder: Encoder, tokens: TokenizerSpec) -> None:
        if encoder.num_prefix_tokens == 0:
            raise ConfigError(
                f"AttentionMasker reads the class token's attention, but {type(encoder).__name__} has no class token "
                "(set class_token: true)"
            )
        if self.ema > 0:
            self.ema_encoder = frozen_copy(encoder)
        self.built = True

    def train(self, mode: bool = True) -> "AttentionMasker":
        super().train(mode)
        if self.ema_encoder is not None:
            self.ema_encoder.eval()
        return self

    def num_visible(self, tokens: TokenBatch) -> int:
        return int(real_token_count(tokens) * (1 - self.mask_ratio))

    def scores(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        """Uniform scores: random masking (no context, or not built)."""
        return uniform(tokens.tokens.shape[:2], tokens, generator)

    @torch.no_grad()
    def attention(self, tokens: TokenBatch, context: MaskContext) -> Tensor:
        """``[B, N]`` float32 class-token attention of the scoring encoder, ``-inf`` at padding."""
        encoder = self.ema_encoder if self.ema > 0 else context.encoder
        attention = encoder.class_attention(tokens).float()
        if tokens.padding_mask is not None:
            attention = attention.masked_fill(tokens.padding_mask, float("-inf"))
        return attention

    def forward(
        self,
        tokens: TokenBatch,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        context: MaskContext | None = None,
    ) -> MaskSpec:
        if context is None or not self.built or noise is not None:
            return super().forward(tokens, generator, noise)
        if context.training and self.ema > 0:
            ema_update(self.ema_encoder, context.encoder, self.ema)
        attention = self.attention(tokens, context)
        b, n = attention.shape
        # rank 0 for the most attended: the lowest scores (the least attended) stay visible
        order = attention.argsort(dim=1, descending=True)
        rank = torch.empty_like(order).scatter_(1, order, all_ids(tokens).contiguous())
        scores = 1 - (rank.float() + 1) / n  # in [0, 1): the most attended highest
        if self.mode == "hints":
            real = real_token_count(tokens)
            top = int(real * self.show_max)
            lo, hi = self.hint_range
            share = lo + (hi - lo) * uniform((1,), tokens, generator)  # per batch; a tensor, so no device sync
            num_hints = (real * self.show_max * share).floor()
            # a random num_hints of each sample's `top` most attended are revealed: those whose random rank is lowest
            rank_among_top = uniform((b, top), tokens, generator).argsort(dim=1).argsort(dim=1)
            ids_top = order[:, :top]
            top_scores = torch.where(rank_among_top < num_hints, -1.0, torch.gather(scores, 1, ids_top))
            scores = scores.scatter(1, ids_top, top_scores)
        return super().forward(tokens, generator, scores)
