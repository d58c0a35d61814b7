"""HPM's hard-patches mining (Wang et al. CVPR 2023, https://arxiv.org/abs/2304.05919): a loss predictor learns which
tokens the model finds hard, and a growing share of the hidden tokens (easy to hard) is the predicted hardest. Keeps
the library's masking rules (:mod:`anymae.masking.base`); without a model it masks uniformly at random.
"""

from dataclasses import replace
from typing import Annotated, cast

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor

from ...config import ConfigError, validated
from ...model.decoders.mae import MAEDecoder
from ...model.encoder import Encoder
from ...model.specs import BuildContext
from ...model.types import MaskSpec, Step, TokenBatch
from ..base import real_token_count, uniform
from ..random import RandomMasker
from .ema import ema_update, frozen_copy

__all__ = ["HardPatchesMasker", "ranking_loss", "standardised_loss"]


def decode_everything(tokens: TokenBatch) -> MaskSpec:
    """A :class:`MaskSpec` that decodes every token, for a decoder run in its full mode on latents of every token
    (only ``ids_decode`` is read there). It hides everything, so it is not a mask the encoder could be run with."""
    ids = tokens.all_ids()
    hidden = torch.ones(ids.shape, dtype=torch.bool, device=ids.device)
    valid = None if tokens.padding_mask is None else ~tokens.padding_mask
    return MaskSpec(ids[:, :0], ids, ids, hidden, ids, valid)


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


class HardPatchesMasker(RandomMasker):
    """HPM's hard-patches mining: a loss predictor learns, from the visible tokens' latents, how badly the model will
    reconstruct each hidden token, and the mask hides the tokens it predicts hardest.

    The predictor (created in :meth:`build`) is an MAE decoder with one output per token. Each step it is trained on
    the visible latents against the step's true per-token losses (auxiliary loss ``"predictor"``, weight 1 as
    HPM; its gradient also reaches the encoder). To choose a mask, a running (EMA) copy of the encoder sees every token
    and the copy of the predictor, in its full mode, predicts every token's loss; the ``h`` predicted hardest are
    hidden, and the other hidden tokens are drawn at random, so ``h = int(M * hard_ratio * progress)`` of the ``M``
    hidden tokens rise from none to ``hard_ratio`` over training (HPM's easy-to-hard schedule, ``(epoch + 1) / E *
    0.5``). Padding is never counted as hard and never visible.

    Before :meth:`build` it masks uniformly at random.

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
        super().__init__(mask_ratio)
        if predictor_dim % predictor_heads:
            raise ConfigError(
                f"HardPatchesMasker.predictor_dim ({predictor_dim}) must be divisible by predictor_heads "
                f"({predictor_heads})"
            )
        self.mask_ratio, self.hard_ratio = mask_ratio, hard_ratio
        self.predictor_depth, self.predictor_dim, self.predictor_heads = predictor_depth, predictor_dim, predictor_heads
        self.ema, self.relative = ema, relative
        self.predictor: MAEDecoder | None = None  # once built (before, the masker is random)
        self.ema_encoder: Encoder | None = None  # with ema > 0, once built
        self.ema_predictor: MAEDecoder | None = None
        self.ctx: BuildContext | None = None  # the model's encoder and training progress, once built

    def build(self, ctx: BuildContext) -> None:
        super().build(ctx)
        encoder = cast(Encoder, ctx.encoder)  # the model's: this masker scores with it (not only reads its sizes)
        dim, depth, heads = self.predictor_dim, self.predictor_depth, self.predictor_heads
        self.predictor = MAEDecoder(embed_dim=dim, depth=depth, num_heads=heads)
        self.predictor.build(replace(ctx, target_dim=1))
        self.ctx = ctx
        if self.ema > 0:
            self.ema_encoder = frozen_copy(encoder)
            self.ema_predictor = frozen_copy(self.predictor)

    def train(self, mode: bool = True) -> "HardPatchesMasker":
        super().train(mode)
        for twin in (self.ema_encoder, self.ema_predictor):  # running copies always score in eval mode
            if twin is not None:
                twin.eval()
        return self

    @torch.no_grad()
    def predicted_loss(self, tokens: TokenBatch) -> Tensor:
        """``[B, N]`` float32: each token's loss as the scoring copies predict it with every token visible, ``-inf``
        at padding."""
        online = None if self.ctx is None else cast(Encoder, self.ctx.encoder)
        encoder = self.ema_encoder if self.ema > 0 else online
        predictor = self.ema_predictor if self.ema > 0 else self.predictor
        if encoder is None or predictor is None:
            raise RuntimeError("HardPatchesMasker.predicted_loss needs the loss predictor: build the masker first")
        pred = predictor(encoder(tokens), tokens, decode_everything(tokens))  # every token visible
        pred = pred.squeeze(-1).float()
        if tokens.padding_mask is not None:
            pred = pred.masked_fill(tokens.padding_mask, float("-inf"))
        return pred

    def forward(
        self, tokens: TokenBatch, generator: torch.Generator | None = None, noise: Tensor | None = None
    ) -> MaskSpec:
        if self.ctx is None or noise is not None:
            return super().forward(tokens, generator, noise)
        if self.training and torch.is_grad_enabled() and self.ema > 0:
            self._update_twins()
        keep = self.num_visible(tokens)
        hidden = real_token_count(tokens) - keep
        num_hard = int(hidden * self.hard_ratio * self.ctx.progress())
        scores = uniform(tokens.tokens.shape[:2], tokens, generator)
        if num_hard > 0:
            hardest = self.predicted_loss(tokens).topk(num_hard, dim=1).indices
            # the hardest score in [1, 2): after every other real token, so they are hidden
            scores = scores.scatter_add(1, hardest, torch.ones_like(hardest, dtype=scores.dtype))
        return super().forward(tokens, generator, scores)

    def _update_twins(self) -> None:
        """Move the running copies (ema > 0) toward the model's encoder and the loss predictor."""
        if self.ctx is None or self.predictor is None or self.ema_encoder is None or self.ema_predictor is None:
            return  # not built, or no running copies
        ema_update(self.ema_encoder, cast(Encoder, self.ctx.encoder), self.ema)
        ema_update(self.ema_predictor, self.predictor, self.ema)

    def feedback(self, step: Step) -> dict[str, Tensor]:
        if self.predictor is None:
            return {}
        pred = self.predictor(step.encoded, step.tokens, step.mask).squeeze(-1)
        loss_fn = ranking_loss if self.relative else standardised_loss
        return {"predictor": loss_fn(pred, step.token_loss, step.mask.counted)}
