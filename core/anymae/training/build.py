"""Building a masked autoencoder from its five parts, and the checks that name a part that does not fit.

:func:`build_parts` builds each part once with the :class:`~anymae.BuildContext` it may depend on -- the encoder,
then the target, then (knowing what the target predicts) the decoder and the masker -- and checks the contracts
between them: the target's needs against what the tokenizer provides, the decoder against the encoder's output, the
masker against the layout (in its build). :func:`dry_run` then runs all five parts on the tokenizer's
``example_batch``, which catches a part that emits another width than it declares; the same shape checks
(:func:`check_tokens`, :func:`check_prediction`) run on every batch, at the cost of a few integer comparisons. Each
failure is one :class:`~anymae.ConfigError` naming the part, which the CLI prints as one line.
"""

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn

from ..config import ConfigError
from ..masking.base import Masker
from ..model.decoders.base import Decoder
from ..model.encoder import Encoder
from ..model.specs import BuildContext, TokenizerSpec
from ..model.targets.base import Target
from ..model.tokenizer import Tokenizer
from ..model.types import MaskSpec, TokenBatch

__all__ = ["PARTS", "build_parts", "check_prediction", "check_tokens", "dry_run"]

#: the five parts of a model, by config name, with the interface each must implement
PARTS: dict[str, type] = {
    "tokenizer": Tokenizer,
    "masker": Masker,
    "encoder": Encoder,
    "decoder": Decoder,
    "target": Target,
}


def _name(part: object) -> str:
    return type(part).__name__


def build_parts(parts: dict[str, Any], progress: Callable[[], float]) -> tuple[BuildContext, frozenset[str]]:
    """Build every part once; return the context the parts were built with and the names the tokenizer computes at
    every step (what the target needs beyond the tokens)."""
    for name, base in PARTS.items():
        if not isinstance(parts[name], base):
            raise ConfigError(f"model.{name} must be a {base.__name__}, got {_name(parts[name])}")
    tokenizer, masker, encoder = parts["tokenizer"], parts["masker"], parts["encoder"]
    decoder, target = parts["decoder"], parts["target"]
    ctx = BuildContext(tokens=tokenizer.spec, encoder=encoder, progress=progress)
    encoder.build(ctx)
    needs = ctx.tokens.to_compute(target.needs, "model.target", _name(target))
    target.build(ctx)
    if target.predicted_by != "decoder":
        raise ConfigError(
            f"model.target: {_name(target)} is predicted by the encoder at the visible tokens; put it in a "
            "WeightedTarget beside a target the decoder predicts (MR-MAE: pixels + teacher features)"
        )
    ctx = BuildContext(ctx.tokens, encoder, target.dim_per_token, target.predicts, progress, target.modality_dims)
    reads = "all" if encoder.sees_all_tokens else "visible"
    if reads not in decoder.reads:
        what = "every token (hidden ones as mask tokens)" if reads == "all" else "the visible tokens only"
        raise ConfigError(
            f"model.decoder: {_name(decoder)} cannot decode from {_name(encoder)}'s latents, which cover {what}; it "
            f"reads {' or '.join(sorted(decoder.reads))} tokens' latents"
        )
    decoder.build(ctx)
    masker.build(ctx)
    return ctx, needs


def dry_run(model: nn.Module) -> None:
    """Run the model once on the tokenizer's example batch (eval mode, no gradients, no global random state touched),
    so a part that fails or emits another shape than it declares is named before training."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            try:
                batch = cast(Tokenizer, model.tokenizer).example_batch(2)  # build_parts checked its class
                loss = model(batch, generator=torch.Generator().manual_seed(0)).loss
            except ConfigError:
                raise
            except Exception as error:
                name, part = _blame(model, error)
                message = " ".join(str(error).split())
                raise ConfigError(
                    f"model.{name}: {_name(part)} failed on the tokenizer's example batch: "
                    f"{type(error).__name__}: {message}"
                ) from error
        if loss.dim() != 0:
            raise ConfigError(f"model.target: {_name(model.target)}.loss must return a scalar tensor")
    finally:
        model.train(was_training)


def _blame(model: nn.Module, error: BaseException) -> tuple[str, object]:
    """The part whose code raised ``error``: the innermost frame of its traceback that runs a method of one of the
    parts (or of one of their submodules)."""
    owners: dict[int, tuple[str, object]] = {}
    for name in PARTS:
        part = getattr(model, name)
        owners.update((id(module), (name, part)) for module in part.modules())
    found: tuple[str, object] = ("model", model)
    trace = error.__traceback__
    while trace is not None:
        found = owners.get(id(trace.tb_frame.f_locals.get("self")), found)
        trace = trace.tb_next
    return found


def check_tokens(spec: TokenizerSpec, tokens: TokenBatch, needs: frozenset[str]) -> None:
    """The tokens are ``[B, N, token_dim]`` and carry each needed name with its declared per-token shape."""
    width = tokens.tokens.shape[-1]
    if tokens.tokens.dim() != 3 or width != spec.token_dim:
        raise ConfigError(
            f"model.tokenizer: {spec.name} emits tokens of shape {tuple(tokens.tokens.shape)} but declares "
            f"token_dim={spec.token_dim}, which sizes the encoder's input (tokens must be [B, N, token_dim])"
        )
    if spec.modalities:  # each modality's own tokens and what it was asked for ("<modality>/<name>")
        for modality, part in spec.modalities.items():
            if modality in tokens.parts:
                own = frozenset(n.split("/", 1)[1] for n in needs if n.startswith(f"{modality}/"))
                check_tokens(part, tokens.parts[modality], own)
        return
    leading = tuple(tokens.tokens.shape[:2])
    for name in needs:
        value, shape = tokens.provided.get(name), spec.provides.get(name)
        if value is None:
            raise ConfigError(f"model.tokenizer: {spec.name} was asked for {name!r} and did not compute it")
        if shape is not None and (tuple(value.shape[:2]) != leading or tuple(value.shape[2:]) != tuple(shape)):
            raise ConfigError(
                f"model.tokenizer: {spec.name} computes {name!r} of shape {tuple(value.shape)} but declares "
                f"{list(shape)} per token (expected {[*leading, *shape]})"
            )


def check_prediction(target: Target, decoder: Decoder, pred: Tensor, values: Tensor, mask: MaskSpec) -> None:
    """Targets and predictions are ``[B, decoded tokens, dim_per_token]``."""
    expected = (*mask.ids_decode.shape, target.dim_per_token)
    if tuple(values.shape) != expected:
        width = values.shape[-1]
        what = (
            f"{width} value{'s' if width != 1 else ''} per token"
            if values.dim() == 3
            else f"shape {tuple(values.shape)}"
        )
        raise ConfigError(
            f"model.target: {_name(target)} computes {what} but declares dim_per_token={target.dim_per_token}, which "
            f"sizes the decoder's output (targets must be [B, decoded tokens, dim_per_token] = {list(expected)})"
        )
    if tuple(pred.shape) != expected:
        raise ConfigError(
            f"model.decoder: {_name(decoder)} predicts shape {tuple(pred.shape)}, but {_name(target)} needs "
            f"{list(expected)} (one prediction of dim_per_token values per decoded token)"
        )
