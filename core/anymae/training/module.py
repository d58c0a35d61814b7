"""The LightningModule that composes a masked autoencoder from its five parts.

``tokenizer -> masker -> encoder (visible tokens only) -> decoder (hidden tokens) -> target + loss``: each arrow is
one call, and nothing here knows a modality. The module wires the calls, checks at build time that the parts fit,
owns the masking random state (so a resumed run masks exactly as an uninterrupted one), logs, and builds MAE's
optimiser and schedule.

Building a model checks the parts twice, so that a wrong configuration or a plugin's bug fails before training with
one :class:`~anymae.ConfigError` naming the part: the declared contracts (the masker against the tokenizer's layout,
the target's needs against what the tokenizer offers), then a *dry run* of all five parts on the tokenizer's
``example_batch``, which catches a part that emits another width than it declares. The same shape checks run on
every batch, at the cost of a few integer comparisons.
"""

import contextlib
import inspect
import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters, _given_hyperparameters_context
from pydantic import PositiveFloat, PositiveInt
from torch import Tensor

from ..config import ConfigError, component_config
from ..errors import TrainingDiverged
from ..masking import MaskContext, Masker, MaskFeedback
from ..model.decoders import Decoder
from ..model.encoder import Encoder
from ..model.targets import Target
from ..model.tokenizer import Tokenizer
from ..model.types import RAW_VALUES, MaskSpec, TokenBatch, TokenizerSpec, gather_tokens
from .optim import MAEAdamW, WarmupCosine

__all__ = ["MAEOutput", "MaskedAutoencoder", "TrainingDiverged", "mask_seed"]

_MODULE_HPARAM_WARNING = r".*is an instance of `nn.Module` and is already saved during checkpointing.*"
_INSTANTIATOR = "lightning.pytorch.cli.instantiate_module"  # on Lightning's allowlist for load_from_checkpoint


@dataclass(frozen=True)
class MAEOutput:
    """Everything one forward pass computed.

    Attributes:
        loss: scalar training loss: the target's (reconstruction) loss plus the masker's auxiliary losses.
        pred: ``[B, M', D_out]`` predictions for ``mask.ids_decode``.
        target: ``[B, M', D_out]`` targets for the same tokens.
        mask: the :class:`~anymae.model.types.MaskSpec` used.
        tokens: the tokenized input.
        latent: ``[B, P + K, D]`` encoder output on the visible tokens (``[B, P + N, D]`` for an encoder that sees
            every token).
        terms: the named parts of ``loss`` when there are several (each target of a
            :class:`~anymae.WeightedTarget`, unweighted; each auxiliary loss of the masker), logged separately.
    """

    loss: Tensor
    pred: Tensor
    target: Tensor
    mask: MaskSpec
    tokens: TokenBatch
    latent: Tensor
    terms: Mapping[str, Tensor] = field(default_factory=dict)


class MaskedAutoencoder(pl.LightningModule):
    """A masked autoencoder built from injected parts.

    Args:
        tokenizer: raw batch -> tokens with positions.
        masker: tokens -> visible / hidden / decoded indices.
        encoder: visible tokens -> latents.
        decoder: latents + mask tokens -> predictions for the decoded tokens.
        target: what is predicted for each decoded token, and the loss.
        optimizer: called with parameter groups (biases and norms exempt from weight decay).
        lr_schedule: per-step warm-up + cosine schedule.
        seed: seed of the masking random state (training masks differ across steps and ranks; validation always
            uses ``seed`` itself, so every validation epoch sees the same masks).
        compile: run encoder, decoder and loss through ``torch.compile`` (opt-in: the first steps compile, about
            a minute for ViT-S on 2 CPU cores; see the README's performance section for what it buys).
        blr: MAE's base learning rate: when set, the optimiser's learning rate is ``blr x effective batch / 256``,
            the effective batch being ranks x batch per rank x gradient accumulation (MAE pretrains with
            ``blr = 1.5e-4``), so a config keeps its meaning on any number of devices.
        on_nonfinite: what a step with a non-finite loss or gradient does (checked after the gradients are reduced
            across ranks, so every rank decides alike): ``"stop"`` ends training with :class:`TrainingDiverged`,
            naming the step and the last good checkpoint, before the weights are touched (no NaN checkpoint is ever
            written); ``"skip"`` drops the step (no update, no optimiser state change) and counts it. Under float16
            mixed precision the GradScaler, which skips overflowing steps itself, takes the guard's place.
        max_skipped_steps: with ``"skip"``, this many skipped steps in a row stop training as ``"stop"`` does.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        masker: Masker,
        encoder: Encoder,
        decoder: Decoder,
        target: Target,
        optimizer: OptimizerCallable = MAEAdamW,
        lr_schedule: WarmupCosine = WarmupCosine(),
        seed: int = 0,
        compile: bool = False,
        blr: PositiveFloat | None = None,
        on_nonfinite: Literal["stop", "skip"] = "stop",
        max_skipped_steps: PositiveInt = 10,
    ) -> None:
        super().__init__()
        self._save_config(locals())
        self.tokenizer = tokenizer
        self.masker = masker
        self.encoder = encoder
        self.decoder = decoder
        self.target = target
        self.optimizer_factory = optimizer
        self.lr_schedule = lr_schedule
        self.seed = seed
        self.compile = compile
        self.blr = blr
        self.on_nonfinite, self.max_skipped_steps = on_nonfinite, max_skipped_steps
        self.skipped_steps = 0  # steps skipped for non-finite gradients, this run
        self._skips_in_a_row = 0
        self._extras: frozenset[str] = frozenset()
        self._build()
        self._network = self._encode_decode_score
        self._dry_run()  # eager: compiling is for training steps
        if compile:
            self._network = torch.compile(self._encode_decode_score)
        self._train_generator: torch.Generator | None = None

    def _save_config(self, args: dict[str, Any]) -> None:
        """Record the configuration in the checkpoint's hyperparameters.

        Through LightningCLI the hyperparameters are the parsed config. Built in Python, each component describes its
        own config (see :func:`anymae.config.component_config`), so the checkpoint holds ``class_path``/``init_args``
        rather than pickled modules either way: it loads with ``weights_only=True`` and
        :meth:`load_from_checkpoint` rebuilds the parts with LightningCLI's instantiator.
        """
        if _given_hyperparameters.get() is not None:  # LightningCLI passed the parsed config
            self.save_hyperparameters()
            return
        config = {name: component_config(args[name]) for name in inspect.signature(type(self)).parameters}
        # A component without a recorded config stays an object (pickled); Lightning's advice to ignore nn.Module
        # arguments does not apply, they are the configuration.
        with _given_hyperparameters_context(hparams=config, instantiator=_INSTANTIATOR), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_MODULE_HPARAM_WARNING)
            self.save_hyperparameters()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "MaskedAutoencoder":
        """Build from a config dict (the ``model:`` section of a YAML file, ``class_path``/``init_args`` for each
        component), as the CLI does."""
        from lightning.pytorch.cli import instantiate_module

        return instantiate_module(cls, dict(config))

    # ----------------------------------------------------------------------------------------------- build-time checks
    def _build(self) -> None:
        for name, part, base in (
            ("tokenizer", self.tokenizer, Tokenizer),
            ("masker", self.masker, Masker),
            ("encoder", self.encoder, Encoder),
            ("decoder", self.decoder, Decoder),
            ("target", self.target, Target),
        ):
            if not isinstance(part, base):
                raise ConfigError(f"model.{name} must be a {base.__name__}, got {type(part).__name__}")
        spec = self._token_spec = self.tokenizer.spec
        self.masker.check_layout(spec.layout)
        self._extras = spec.require(self.target.needs, "model.target", type(self.target).__name__)
        self.target.bind(spec)
        if self.target.scores != "decoded":
            raise ConfigError(
                f"model.target: {type(self.target).__name__} scores the encoder's visible tokens only; put it in a "
                "WeightedTarget beside a target the decoder predicts (MR-MAE: pixels + teacher features)"
            )
        self.encoder.build(spec.token_dim, spec.layout)
        reads = "all" if self.encoder.sees_all_tokens else "visible"
        if reads not in self.decoder.reads:
            what = "every token (hidden ones as mask tokens)" if reads == "all" else "the visible tokens only"
            raise ConfigError(
                f"model.decoder: {type(self.decoder).__name__} cannot decode from {type(self.encoder).__name__}'s "
                f"latents, which cover {what}; it reads {' or '.join(sorted(self.decoder.reads))} tokens' latents"
            )
        if self.decoder.encoder_layers and self.encoder.sees_all_tokens:
            raise ConfigError("model.decoder: feature mixing reads the visible tokens' layers; the encoder sees all")
        self.decoder.build(self.encoder.embed_dim, self.target.dim_per_token, spec.layout)
        self.decoder.attach(self.encoder)
        self.target.build(self.encoder.embed_dim)
        self.masker.build(self.encoder, spec)
        self._masker_takes_context = "context" in inspect.signature(self.masker.forward).parameters

    def _dry_run(self) -> None:
        """Run the model once on the tokenizer's example batch (eval mode, no gradients, no global random state
        touched), so a part that fails or emits another shape than it declares is named before training."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                try:
                    batch = self.tokenizer.example_batch(2)
                    loss = self(batch, generator=torch.Generator().manual_seed(0)).loss
                except ConfigError:
                    raise
                except Exception as error:
                    name, part = self._blame(error)
                    message = " ".join(str(error).split())
                    raise ConfigError(
                        f"model.{name}: {type(part).__name__} failed on the tokenizer's example batch: "
                        f"{type(error).__name__}: {message}"
                    ) from error
            if loss.dim() != 0:
                raise ConfigError(f"model.target: {type(self.target).__name__}.loss must return a scalar tensor")
        finally:
            self.train(was_training)

    def _blame(self, error: BaseException) -> tuple[str, object]:
        """The part whose code raised ``error``: the innermost frame of its traceback that runs a method of one of
        the parts (or of one of their submodules)."""
        owners: dict[int, tuple[str, object]] = {}
        for name in ("tokenizer", "masker", "encoder", "decoder", "target"):
            part = getattr(self, name)
            owners.update((id(module), (name, part)) for module in part.modules())
        found: tuple[str, object] = ("model", self)
        trace = error.__traceback__
        while trace is not None:
            found = owners.get(id(trace.tb_frame.f_locals.get("self")), found)
            trace = trace.tb_next
        return found

    def _check_tokens(self, tokens: TokenBatch, extras: frozenset[str]) -> None:
        spec: TokenizerSpec = self._token_spec
        width = tokens.tokens.shape[-1]
        if tokens.tokens.dim() != 3 or width != spec.token_dim:
            raise ConfigError(
                f"model.tokenizer: {spec.name} emits tokens of shape {tuple(tokens.tokens.shape)} but declares "
                f"token_dim={spec.token_dim}, which sizes the encoder's input (tokens must be [B, N, token_dim])"
            )
        leading = tuple(tokens.tokens.shape[:2])
        for name in extras:
            value = tokens.extras.get(name)
            shape = spec.provides.get(name)
            if value is None:
                raise ConfigError(f"model.tokenizer: {spec.name} was asked for {name!r} and did not compute it")
            if shape is not None and (tuple(value.shape[:2]) != leading or tuple(value.shape[2:]) != tuple(shape)):
                raise ConfigError(
                    f"model.tokenizer: {spec.name} computes {name!r} of shape {tuple(value.shape)} but declares "
                    f"{list(shape)} per token (expected {[*leading, *shape]})"
                )

    def _check_prediction(self, pred: Tensor, target: Tensor, spec: MaskSpec) -> None:
        expected = (*spec.ids_decode.shape, self.target.dim_per_token)
        name = type(self.target).__name__
        if tuple(target.shape) != expected:
            values = target.shape[-1]
            what = (
                f"{values} value{'s' if values != 1 else ''} per token"
                if target.dim() == 3
                else f"shape {tuple(target.shape)}"
            )
            raise ConfigError(
                f"model.target: {name} computes {what} but declares dim_per_token={self.target.dim_per_token}, which "
                f"sizes the decoder's output (targets must be [B, decoded tokens, dim_per_token] = {list(expected)})"
            )
        if tuple(pred.shape) != expected:
            raise ConfigError(
                f"model.decoder: {type(self.decoder).__name__} predicts shape {tuple(pred.shape)}, but {name} needs "
                f"{list(expected)} (one prediction of dim_per_token values per decoded token)"
            )

    # ------------------------------------------------------------------------------------------------------- forward
    def forward(
        self,
        batch: Mapping[str, Tensor],
        *,
        noise: Tensor | None = None,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
        extras: frozenset[str] = frozenset(),
    ) -> MAEOutput:
        """Tokenize, mask, encode, decode and score one batch.

        Args:
            batch: the raw batch (a dict of tensors, as the data module yields it).
            noise: ``[B, N]`` masking noise in ``[0, 1)`` for noise-based maskers (the lowest values stay visible).
            mask: ``[B, N]`` explicit mask, True = hidden, the same count per sample (e.g. hide the future patches).
            generator: random source for the masker when neither ``noise`` nor ``mask`` is given.
            extras: more of what the tokenizer provides, computed besides what the target needs (a figure's needs).
        """
        wanted = self._extras | extras
        tokens = self.tokenizer(batch, wanted)
        self._check_tokens(tokens, wanted)
        progress = self.progress()
        if mask is not None:
            spec = MaskSpec.from_mask(mask.to(tokens.tokens.device), tokens.padding_mask)
        else:
            noise = None if noise is None else noise.to(tokens.tokens.device)
            if self._masker_takes_context:
                context = MaskContext(batch, self.encoder, progress, self.training and torch.is_grad_enabled())
                spec = self.masker(tokens, generator=generator, noise=noise, context=context)
            else:  # a masker written before contexts existed
                spec = self.masker(tokens, generator=generator, noise=noise)
        latent, pred, target, loss, terms = self._network(batch, tokens, spec)
        if self.masker.learns:
            num_prefix = self.encoder.num_prefix_tokens
            token_loss = self.target.token_loss(pred, target, spec).detach()
            feedback = MaskFeedback(spec, tokens, latent, num_prefix, token_loss, progress)
            auxiliary = self.masker.auxiliary_loss(feedback)
            if auxiliary:
                terms = {**terms, **auxiliary, "target": terms.get("target", loss)}
                loss = loss + sum(auxiliary.values())
        return MAEOutput(loss=loss, pred=pred, target=target, mask=spec, tokens=tokens, latent=latent, terms=terms)

    def progress(self) -> float:
        """Share of training done, in ``[0, 1]`` (1 outside a training run): what a masker's schedule follows."""
        trainer = self._trainer
        if trainer is None or not self.training:
            return 1.0
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total) or total <= 0:
            return 1.0
        return min(1.0, trainer.global_step / total)

    def _encode_decode_score(
        self, batch: Mapping[str, Tensor], tokens: TokenBatch, spec: MaskSpec
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """Everything after masking: the part ``compile=True`` hands to ``torch.compile`` (masking stays eager: it
        draws from a generator and syncs for counts)."""
        num_prefix = self.encoder.num_prefix_tokens
        layers = None
        if self.encoder.sees_all_tokens:
            latent = self.encoder.forward_masked(tokens, spec.mask)
        elif self.decoder.encoder_layers:
            latent, layers = self.encoder.forward_layers(tokens, spec.ids_keep)
        else:
            latent = self.encoder(tokens, spec.ids_keep)
        if layers is None:
            pred = self.decoder(latent, tokens, spec, num_prefix)
        else:
            pred = self.decoder(latent, tokens, spec, num_prefix, layers=layers)
        target = self.target(batch, tokens, spec)
        self._check_prediction(pred, target, spec)
        visible = latent[:, num_prefix:]
        if self.encoder.sees_all_tokens:
            visible = gather_tokens(visible, spec.ids_keep)
        loss, terms = self.target.score(batch, tokens, spec, pred, target, visible)
        return latent, pred, target, loss, dict(terms)

    @torch.no_grad()
    @contextlib.contextmanager
    def float32(self) -> Iterator[None]:
        """Run the model in float32 for a while, e.g. to draw a figure from a model trained with ``precision:
        bf16-true``: each bf16/fp16 parameter and buffer holds an fp32 copy (exact) and gets its own tensor back after,
        so nothing is rounded, no storage moves (DDP keeps its views) and the optimiser keeps its parameters."""
        low = (torch.bfloat16, torch.half)
        swapped = [(t, t.data) for t in (*self.parameters(), *self.buffers()) if t.dtype in low]
        for tensor, data in swapped:
            tensor.data = data.float()
        try:
            yield
        finally:
            for tensor, data in swapped:
                tensor.data = data

    def reconstruct(
        self,
        batch: Mapping[str, Tensor],
        *,
        noise: Tensor | None = None,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Input, masked input and reconstruction in the raw format (through the tokenizer's inverse).

        The reconstruction shows the visible tokens as they are and the model's predictions at the decoded ones
        (hidden tokens that are not decoded, and hidden tokens in the masked input, are zero); ``hidden`` is 1 where
        the raw input was hidden. Like ``forward``, it runs in the module's current mode: call ``eval()`` first to
        turn off dropout.
        """
        if self.target.predicts != RAW_VALUES:
            raise ConfigError(
                f"reconstruct: {type(self.target).__name__} predictions cannot be mapped back to token values "
                f"(it predicts {self.target.predicts or 'nothing a figure can draw'})"
            )
        if not self._token_spec.invertible:
            raise ConfigError(f"reconstruct: {self._token_spec.name} has no inverse back to the raw format")
        out = self(batch, noise=noise, mask=mask, generator=generator)
        tokens = out.tokens.tokens
        index = out.mask.ids_decode[..., None].expand(-1, -1, tokens.shape[-1])
        predicted = self.target.to_tokens(out.pred, out.tokens, out.mask).to(tokens.dtype)
        hidden = out.mask.mask[..., None]
        masked = tokens.masked_fill(hidden, 0.0)
        # Tokens the encoder saw stay as they are even where the decoder predicted them (decoder masking).
        predicted = torch.where(torch.gather(hidden, 1, index[..., :1]), predicted, torch.gather(tokens, 1, index))
        return {
            "input": self.tokenizer.inverse(out.tokens),
            "masked": self.tokenizer.inverse(out.tokens.with_tokens(masked)),
            "reconstruction": self.tokenizer.inverse(out.tokens.with_tokens(masked.scatter(1, index, predicted))),
            "hidden": self.tokenizer.inverse(out.tokens.with_tokens(hidden.expand_as(tokens).to(tokens.dtype))),
        }

    # ------------------------------------------------------------------------------------------- training/validation
    def _mask_generator(self, batch_idx: int) -> torch.Generator:
        """The training masks' random source, re-seeded from ``(seed, rank, epoch, batch)`` at every step.

        Masks thus differ across steps and ranks, and a resumed run draws exactly the masks an uninterrupted one
        would, on any device, with no random state to carry in the checkpoint.
        """
        if self._train_generator is None or self._train_generator.device != self.device:
            self._train_generator = torch.Generator(device=self.device)
        return self._train_generator.manual_seed(mask_seed(self.seed, self.global_rank, self.current_epoch, batch_idx))

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        if _batch_size(batch) == 0:  # every file of this batch was unreadable
            # A zero loss that touches every parameter keeps the ranks of a distributed run in step.
            return sum(
                (p.sum() * 0.0 for p in self.parameters() if p.requires_grad), torch.zeros((), device=self.device)
            )
        out = self(batch, generator=self._mask_generator(batch_idx))
        loss = out.loss
        self._last_loss = loss.detach()
        size = _batch_size(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        for name, term in out.terms.items():
            self.log(f"train/loss_{name}", term.detach(), batch_size=size)
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """The divergence guard: gradients are reduced across ranks by now, so every rank takes the same decision."""
        if getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            return  # float16's GradScaler skips overflowing steps itself, and lowers its scale: they are routine
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if not grads:
            return
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
        if bool(torch.isfinite(norm)):  # one scalar read per step
            self._skips_in_a_row = 0
            return
        step = self.trainer.global_step
        loss = float(getattr(self, "_last_loss", torch.tensor(float("nan"))))
        if self.on_nonfinite == "skip" and self._skips_in_a_row < self.max_skipped_steps:
            self.skipped_steps += 1
            self._skips_in_a_row += 1
            for param in self.parameters():  # AdamW leaves parameters without a gradient untouched
                param.grad = None
            self.log("train/skipped_steps", float(self.skipped_steps), batch_size=1)
            return
        callback = self.trainer.checkpoint_callback
        last = (getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")) or "none yet"
        in_a_row = f" after {self._skips_in_a_row} skipped steps in a row" if self._skips_in_a_row else ""
        raise TrainingDiverged(
            f"training diverged at step {step} (epoch {self.current_epoch}): non-finite gradients (loss {loss:g})"
            f"{in_a_row}; the weights were not updated, and the last good checkpoint is {last}"
        )

    def on_train_epoch_end(self) -> None:
        """Report the unreadable samples the data module skipped this epoch (summed over ranks); stop when no
        training sample of the epoch could be read."""
        report = getattr(self.trainer.datamodule, "epoch_report", None)
        if report is None:
            return
        counts = torch.tensor(report(), dtype=torch.float64, device=self.device)
        skipped, read = (int(v) for v in self.trainer.strategy.reduce(counts, reduce_op="sum"))
        if not skipped:
            return
        self.log("data/skipped", float(skipped), batch_size=1, rank_zero_only=True)
        if not read:
            raise ConfigError(
                f"data: every training sample of epoch {self.current_epoch} was unreadable ({skipped} skipped); "
                "the warnings above name the files"
            )
        if self.trainer.is_global_zero:
            print(f"epoch {self.current_epoch}: {skipped} unreadable samples skipped, {read} read")

    def on_fit_end(self) -> None:
        skipped = getattr(self.trainer.datamodule, "num_skipped", 0)
        total = int(self.trainer.strategy.reduce(torch.tensor(float(skipped), device=self.device), reduce_op="sum"))
        if total and self.trainer.is_global_zero:
            print(f"unreadable samples skipped so far: {total}")

    def on_validation_epoch_start(self) -> None:
        self._val_generator = torch.Generator(device=self.device).manual_seed(self.seed)

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor | None:
        if _batch_size(batch) == 0:
            return None
        out = self(batch, generator=self._val_generator)
        size = _batch_size(batch)
        self.log("val/loss", out.loss, prog_bar=True, batch_size=size, sync_dist=True)
        for name, term in out.terms.items():
            self.log(f"val/loss_{name}", term, batch_size=size, sync_dist=True)
        return out.loss

    # ------------------------------------------------------------------------------------------------ optimisation
    def param_groups(self) -> list[dict[str, Any]]:
        """MAE's rule (timm's add_weight_decay): no decay on 1-D parameters (norms) and biases. The other group takes
        the optimizer's own weight_decay, so the YAML value stays the one that counts (timm's
        ``param_groups_weight_decay`` would hard-code the value into the group)."""
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if param.requires_grad:
                (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
        return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay}]

    def effective_batch_size(self) -> int:
        """Samples per optimiser step over all ranks: ranks x batch per rank x gradient accumulation."""
        loader = self.trainer.train_dataloader
        batch = getattr(loader, "batch_size", None) or getattr(getattr(loader, "batch_sampler", None), "batch_size", 1)
        return self.trainer.world_size * int(batch) * self.trainer.accumulate_grad_batches

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory(self.param_groups())
        total = int(self.trainer.estimated_stepping_batches)
        if self.blr is not None:  # MAE's linear scaling rule; the data is set up by estimated_stepping_batches
            effective = self.effective_batch_size()
            for group in optimizer.param_groups:
                group["lr"] = self.blr * effective / 256
            if self.trainer.is_global_zero:
                print(f"lr = blr {self.blr:g} x effective batch {effective} / 256 = {self.blr * effective / 256:g}")
        batches = self.trainer.num_training_batches  # known once estimated_stepping_batches has set up the data
        steps_per_epoch = batches / self.trainer.accumulate_grad_batches if math.isfinite(batches) else None
        scheduler = self.lr_schedule.scheduler(optimizer, total, steps_per_epoch)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def mask_seed(seed: int, rank: int, epoch: int, batch_idx: int) -> int:
    """The seed of the training masks of one step on one rank (Python does not salt the hash of ints)."""
    return hash((seed, rank, epoch, batch_idx)) & 0x7FFF_FFFF_FFFF_FFFF


def _batch_size(batch: Mapping[str, Tensor]) -> int:
    for value in batch.values():
        if isinstance(value, Tensor) and value.dim() > 0:
            return value.shape[0]
    return 0
