"""Frozen teachers and the targets that learn from their features.

A :class:`Teacher` is a frozen network whose per-token features become a target: an anymae encoder (an ``anymae
fit`` checkpoint or an ``anymae export`` folder, with its own tokenizer), or a timm model created from a local weights
file. Nothing is downloaded. :class:`TeacherFeatureTarget` makes its features a target, either predicted by the
decoder at the hidden tokens or mimicked by the encoder at the visible ones (MR-MAE, Gao et al. 2023,
https://arxiv.org/abs/2303.05475; MaskAlign, Xue et al. 2023, https://arxiv.org/abs/2211.08887, aligns the visible
tokens the same way).

The teacher's weights are not part of the model's state: a checkpoint keeps the student small and the teacher is
loaded again from its path when the model is rebuilt, so the path must stay readable.
"""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
import torch.nn.functional as F
from pydantic import NonNegativeInt
from torch import Tensor, nn

from ...config import ConfigError, validated
from ..specs import BuildContext
from ..types import MaskSpec, Step, TokenBatch, gather_tokens
from .base import Target

if TYPE_CHECKING:
    from ..pretrained import PretrainedEncoder

__all__ = ["Teacher", "TeacherFeatureTarget"]


class Teacher(nn.Module):
    """A frozen network whose per-token features a target learns from.

    Give exactly one of ``checkpoint`` and ``timm_model``.

    Args:
        checkpoint: an ``anymae fit`` checkpoint, an ``anymae export`` folder or a published file
            (``mae_pretrain_vit_base.pth``, a HuggingFace folder: see ``anymae.read_weights``); the teacher runs its
            own tokenizer and encoder on the raw batch.
        timm_model: a timm model name (e.g. ``vit_small_patch16_224``), created without downloading anything.
        weights: the timm model's weights file (``.safetensors``, ``.pth`` or ``.bin``); required with
            ``timm_model``.
        timm_kwargs: more arguments for ``timm.create_model`` (``img_size``, ``patch_size``...).
        input_key: the raw batch's entry the timm model reads (``"image"``, ``[B, C, H, W]``).
        layer: which block's output the features are: ``None``, the encoder's output (after its final norm);
            ``i``, block ``i``'s output (0 is the first block's input).
    """

    net: nn.Module  # a PretrainedEncoder (kind "anymae") or a timm model; held outside the module tree

    @validated
    def __init__(
        self,
        checkpoint: str | None = None,
        timm_model: str | None = None,
        weights: str | None = None,
        timm_kwargs: dict[str, Any] | None = None,
        input_key: str = "image",
        layer: NonNegativeInt | None = None,
    ) -> None:
        super().__init__()
        if (checkpoint is None) == (timm_model is None):
            raise ConfigError("Teacher: give exactly one of checkpoint (anymae) and timm_model (timm)")
        if timm_model is not None and weights is None:
            raise ConfigError(f"Teacher.weights: timm_model {timm_model!r} needs a local weights file (no downloads)")
        self.input_key, self.layer = input_key, layer
        # Held outside the module tree (not in state_dict, not in the optimiser); _apply moves it with the model.
        net: nn.Module
        if checkpoint is not None:
            from ..pretrained import load_encoder

            net = pretrained = load_encoder(checkpoint)
            self.dim = pretrained.encoder.embed_dim
            self.num_prefix_tokens = pretrained.encoder.num_prefix_tokens
            self.depth = pretrained.encoder.num_layers
        elif timm_model is not None and weights is not None:  # the checks above leave no other case
            timm_net: Any = _timm_model(timm_model, Path(weights), dict(timm_kwargs or {}))  # any architecture
            net = timm_net
            self.dim = timm_net.num_features
            self.num_prefix_tokens = int(getattr(net, "num_prefix_tokens", 1))
            self.depth = len(getattr(net, "blocks", ()))
        if layer is not None and layer > self.depth:
            raise ConfigError(f"Teacher.layer {layer} is past the teacher's {self.depth} blocks")
        self.kind = "anymae" if checkpoint is not None else "timm"
        for param in net.parameters():
            param.requires_grad_(False)
        self.__dict__["net"] = net.eval()

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> "Teacher":
        self.net._apply(fn)
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> "Teacher":
        super().train(mode)
        self.net.eval()  # always: no dropout, no running statistics
        return self

    def _dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    @torch.no_grad()
    def features(self, batch: Mapping[str, Tensor]) -> Tensor:
        """``[B, N, dim]`` float32 features of every token of the full (unmasked) input, prefix tokens left out."""
        dtype = self._dtype()
        if self.kind == "anymae":
            pretrained = cast("PretrainedEncoder", self.net)
            tokens = pretrained.tokenizer(batch)
            tokens = tokens.with_tokens(tokens.tokens.to(dtype))
            if self.layer is None:
                x = pretrained.encoder(tokens).latent
            else:
                x = pretrained.encoder(tokens, layers=True).layers[self.layer]
        else:
            images = batch[self.input_key].to(dtype)
            timm_net: Any = self.net  # any timm architecture: its methods are read by name
            if self.layer is None:
                x = timm_net.forward_features(images)
            else:
                x = timm_net.forward_intermediates(images, indices=[self.layer - 1], intermediates_only=True)[0]
                x = x.flatten(2).transpose(1, 2) if x.dim() == 4 else x
                return x.float()
        return x[:, self.num_prefix_tokens :].float()

    @torch.no_grad()
    def class_attention(self, batch: Mapping[str, Tensor]) -> Tensor:
        """``[B, N]``: the class token's attention to each token in the teacher's last block (AttMask's score)."""
        if self.kind != "anymae":
            raise ConfigError("Teacher.class_attention reads an anymae teacher's encoder")
        pretrained = cast("PretrainedEncoder", self.net)
        tokens = pretrained.tokenizer(batch)
        return pretrained.encoder.class_attention(tokens.with_tokens(tokens.tokens.to(self._dtype()))).float()


def _timm_model(name: str, weights: Path, kwargs: dict[str, Any]) -> nn.Module:
    import timm

    if not weights.is_file():
        raise ConfigError(f"Teacher.weights: {weights} is not a file")
    model = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(weights)
    else:
        from ..published import load_checkpoint

        checkpoint = load_checkpoint(weights)
        state = checkpoint.get("state_dict", checkpoint.get("model", checkpoint))
    state = {k: v for k, v in state.items() if not k.startswith("head.")}  # the classifier is not a feature
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(
            f"Teacher.weights: {weights} does not fit timm's {name} (missing {missing[:5]}, unexpected "
            f"{unexpected[:5]})"
        )
    return model


class TeacherFeatureTarget(Target):
    """A frozen teacher's features of the full input as the target.

    ``at="visible"`` is MR-MAE's mimicking (and MaskAlign's alignment): the encoder's latents of the visible tokens,
    through a linear head of this target's own, regress the teacher's features at the same tokens; the decoder is left
    to reconstruct pixels, so it goes in a :class:`~anymae.WeightedTarget` beside a pixel target. ``at="hidden"``
    makes the decoder predict the teacher's features of the hidden tokens (feature-target MIM, as MaskFeat does with
    HOG).

    The teacher's token grid must match the student's (the same number of tokens per sample); the model's dry run
    checks it before training.

    Args:
        teacher: the frozen teacher.
        at: ``"visible"`` (encoder output, MR-MAE) or ``"hidden"`` (decoder output).
        normalize: whiten each teacher token's features (a LayerNorm without parameters), as MaskAlign and MR-MAE do.
        loss: ``"mse"`` (MR-MAE's L2), ``"smooth_l1"`` (MaskAlign's, beta 1) or ``"cosine"`` (1 - cosine similarity).
    """

    @validated
    def __init__(
        self,
        teacher: Teacher,
        at: Literal["visible", "hidden"] = "visible",
        normalize: bool = True,
        loss: Literal["mse", "smooth_l1", "cosine"] = "mse",
    ) -> None:
        super().__init__()
        self.teacher = teacher
        self.at, self.normalize, self.loss_kind = at, normalize, loss
        self.predicted_by = "encoder" if at == "visible" else "decoder"
        self.head: nn.Linear | None = None

    def build(self, ctx: BuildContext) -> None:
        self.dim_per_token = self.teacher.dim if self.at == "hidden" else 0
        if self.at == "visible":
            self.head = nn.Linear(ctx.encoder.embed_dim, self.teacher.dim)
            nn.init.xavier_uniform_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def teacher_features(self, batch: Mapping[str, Tensor], tokens: TokenBatch, ids: Tensor) -> Tensor:
        """The teacher's (whitened) features of the tokens at ``ids`` ``[B, M]``."""
        features = self.teacher.features(batch)
        if features.shape[1] != tokens.num_tokens:
            raise ConfigError(
                f"TeacherFeatureTarget: the teacher gives {features.shape[1]} tokens per sample and the tokenizer "
                f"{tokens.num_tokens}; they must match token for token (the same grid)"
            )
        features = gather_tokens(features.to(ids.device), ids)
        return F.layer_norm(features, features.shape[-1:], eps=1e-6) if self.normalize else features

    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        return self.teacher_features(batch, tokens, mask.ids_decode if self.at == "hidden" else mask.ids_keep)

    def token_loss(self, pred: Tensor, target: Tensor, mask: MaskSpec, tokens: TokenBatch | None = None) -> Tensor:
        pred, target = pred.float(), target.float()
        if self.loss_kind == "mse":
            return (pred - target).pow(2).mean(dim=-1)
        if self.loss_kind == "smooth_l1":
            return F.smooth_l1_loss(pred, target, reduction="none", beta=1.0).mean(dim=-1)
        return 1 - F.cosine_similarity(pred, target, dim=-1, eps=1e-6)

    def loss(self, step: Step) -> tuple[Tensor, dict[str, Tensor]]:
        if self.at == "hidden":
            return super().loss(step)
        if self.head is None:
            raise RuntimeError("TeacherFeatureTarget(at='visible') is not built (the model builds its parts)")
        mimic = self.head(step.encoded.visible(step.mask))
        wanted = self.forward(step.batch, step.tokens, step.mask).to(mimic.dtype)
        return self.token_loss(mimic, wanted, step.mask, step.tokens).mean(), {}
