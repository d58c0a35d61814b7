"""The LightningModule that composes a masked autoencoder from its five parts.

``tokenize -> mask -> encode -> decode -> score``: each arrow is one line of :meth:`MaskedAutoencoder.forward`, as in
MAE's ``models_mae.py``, and nothing here knows a modality. Building the parts and checking that they fit is
:mod:`anymae.training.build`; what a run does when the loss diverges or data cannot be read is
:mod:`anymae.training.guards`; MAE's optimiser and schedule are :mod:`anymae.training.optim`. The module owns the
masking random state, so a resumed run masks exactly as an uninterrupted one.
"""

import contextlib
import inspect
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.cli import OptimizerCallable, instantiate_module
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from pydantic import PositiveFloat, PositiveInt
from torch import Tensor

from ..config import component_config, upgrade_class_paths
from ..masking.base import Masker
from ..model.decoders.base import Decoder
from ..model.encoder import Encoder
from ..model.multimodal.views import drawn_parts, modality_view
from ..model.published import load_checkpoint
from ..model.targets.base import Target
from ..model.tokenizer import Tokenizer
from ..model.types import MAEOutput, MaskSpec, Step, TokenBatch
from ..plugins.resolution import checked_config
from .build import PARTS, build_parts, check_prediction, check_tokens, dry_run
from .guards import DivergenceGuard, SkippedSamplesReport
from .optim import MAEAdamW, WarmupCosine, configure_mae_optimizer, decay_groups
from .weights import init_weights

__all__ = ["MaskedAutoencoder", "mask_seed"]


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
        compile: run encoder, decoder and loss through ``torch.compile`` (opt-in: the first steps compile; see the
            README's performance section for what it buys).
        blr: MAE's base learning rate (1.5e-4): when set, the learning rate is ``blr x effective batch / 256``
            (ranks x batch per rank x gradient accumulation), so a config keeps its meaning on any device count.
        on_nonfinite: a step with a non-finite loss or gradient: ``"stop"`` ends training with
            :class:`~anymae.TrainingDiverged` before the weights are touched; ``"skip"`` drops the step and counts
            it in :attr:`skipped_steps` (:class:`~anymae.training.guards.DivergenceGuard`).
        max_skipped_steps: with ``"skip"``, this many skipped steps in a row stop training as ``"stop"`` does.
        init_from: start from the weights of any file :func:`~anymae.training.weights.init_weights` reads (ours, or
            published: MAE, HuggingFace, VideoMAE...): each part it holds, shapes checked, no optimiser state.
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
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        # The configuration, never pickled modules: a checkpoint loads with weights_only=True and load_from_checkpoint
        # rebuilds the parts (the anymae commands record the parsed config instead, where the optimizer is a factory).
        arguments = locals()
        self.save_hyperparameters({name: component_config(arguments[name]) for name in _ARGUMENTS})
        self.tokenizer, self.masker, self.encoder = tokenizer, masker, encoder
        self.decoder, self.target = decoder, target
        self.optimizer_factory, self.lr_schedule, self.blr = optimizer, lr_schedule, blr
        self.seed, self.on_nonfinite, self.max_skipped_steps = seed, on_nonfinite, max_skipped_steps
        self.skipped_steps = 0  # steps skipped for non-finite gradients, this run
        self.ctx, self.needs = build_parts({name: getattr(self, name) for name in PARTS}, self.progress)
        if init_from is not None:
            init_weights(self, init_from)
        self._network = self._score
        dry_run(self)  # eager: compiling is for training steps
        if compile:
            self._network = torch.compile(self._score)
        self._train_generator: torch.Generator | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str = "model config") -> "MaskedAutoencoder":
        """Build from a config dict (a YAML file's ``model:`` section) as the CLI does, class paths resolved as in the
        commands (a refusal names ``source``); the model records that config as its hyperparameters."""
        with checked_config(source):
            model = instantiate_module(cls, upgrade_class_paths(dict(config)))
        model.save_hyperparameters(dict(config))
        return model

    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: str | Path | IO[bytes],
        map_location: Any = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        **kwargs: Any,
    ) -> "MaskedAutoencoder":
        """Lightning's arguments: rebuild the model from the checkpoint's recorded configuration (or ``hparams_file``'s)
        with ``kwargs`` replacing its entries, and load its weights; by default onto the CPU, strict, weights only."""
        mmap = isinstance(checkpoint_path, (str, Path))  # the optimiser state is in the file: not read into memory
        checkpoint = load_checkpoint(checkpoint_path, map_location or "cpu", mmap, trusted=weights_only is False)
        config = yaml.safe_load(Path(hparams_file).read_text()) if hparams_file else checkpoint["hyper_parameters"]
        config = {**config, "init_from": None, **kwargs}  # init_from's weights are in the checkpoint: not read again
        model = cls.from_config(config, source=str(hparams_file or checkpoint_path))
        model.load_state_dict(checkpoint["state_dict"], strict=True if strict is None else strict)
        return model

    # --------------------------------------------------------------------------------------------------- the step
    def forward(
        self,
        batch: Mapping[str, Tensor],
        *,
        noise: Tensor | None = None,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
        needs: frozenset[str] = frozenset(),
    ) -> MAEOutput:
        """Tokenize, mask, encode, decode and score one batch.

        Args:
            batch: the raw batch (a dict of tensors, as the data module yields it).
            noise: ``[B, N]`` masking noise in ``[0, 1)`` for noise-based maskers (the lowest values stay visible).
            mask: ``[B, N]`` explicit mask, True = hidden, the same count per sample (e.g. hide the future patches).
            generator: random source for the masker when neither ``noise`` nor ``mask`` is given.
            needs: more of what the tokenizer provides, computed besides what the target needs (a figure's needs).
        """
        tokens = self.tokenizer(batch, self.needs | needs)
        check_tokens(self.ctx.tokens, tokens, self.needs | needs)
        if mask is None:
            spec = self.masker(tokens, generator, None if noise is None else noise.to(tokens.tokens.device))
        else:
            spec = MaskSpec.from_mask(mask.to(tokens.tokens.device), tokens.padding_mask)
        step, loss, terms = self._network(batch, tokens, spec)
        return step.scored(loss, terms, self.masker.feedback(step))

    def _score(
        self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec
    ) -> tuple[Step, Tensor, dict[str, Tensor]]:
        """Everything after masking: the part ``compile=True`` hands to ``torch.compile`` (masking stays eager: it
        draws from a generator and syncs for counts)."""
        encoded = self.encoder(tokens, mask, layers=self.decoder.reads_layers)
        pred = self.decoder(encoded, tokens, mask)
        target = self.target(batch, tokens, mask)
        check_prediction(self.target, self.decoder, pred, target, mask)
        step = Step(batch, tokens, mask, encoded, pred, target, self.target.token_loss(pred, target, mask, tokens))
        loss, terms = self.target.loss(step)
        return step, loss, terms

    def progress(self) -> float:
        """Share of training done, in ``[0, 1]`` (1 outside a training run): what a masker's schedule follows."""
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached to a trainer
            return 1.0
        if not self.training:
            return 1.0
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total) or total <= 0:
            return 1.0
        return min(1.0, trainer.global_step / total)

    # ---------------------------------------------------------------------------------------------------- figures
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
        modality: str | None = None,
    ) -> dict[str, Tensor]:
        """Input, masked input and reconstruction in the raw format (through the tokenizer's inverse), and
        ``hidden`` (1 where the raw input was hidden); of one ``modality`` of a multi-modal model.

        The reconstruction shows the visible tokens as they are and the predictions at the decoded ones (hidden
        tokens that are not decoded are zero, as hidden tokens in the masked input). It runs in the module's current
        mode: call ``eval()`` first to turn off dropout.
        """
        tokenizer, target = drawn_parts(self.tokenizer, self.target, modality)
        out = self(batch, noise=noise, mask=mask, generator=generator)
        view, spec, pred = (out.tokens, out.mask, out.pred) if modality is None else modality_view(out, modality)
        tokens, inverse = view.tokens, tokenizer.inverse
        index = spec.ids_decode[..., None].expand(-1, -1, tokens.shape[-1])
        predicted = target.to_tokens(pred[..., : target.dim_per_token], view, spec).to(tokens.dtype)
        hidden = spec.mask[..., None]
        masked = tokens.masked_fill(hidden, 0.0)
        # Tokens the encoder saw stay as they are even where the decoder predicted them (decoder masking).
        predicted = torch.where(torch.gather(hidden, 1, index[..., :1]), predicted, torch.gather(tokens, 1, index))
        return {
            "input": inverse(view),
            "masked": inverse(view.with_tokens(masked)),
            "reconstruction": inverse(view.with_tokens(masked.scatter(1, index, predicted))),
            "hidden": inverse(view.with_tokens(hidden.expand_as(tokens).to(tokens.dtype))),
        }

    # ------------------------------------------------------------------------------------------ training/validation
    def _mask_generator(self, batch_idx: int) -> torch.Generator:
        """The training masks' random source, re-seeded from ``(seed, rank, epoch, batch)`` at every step: masks
        differ across steps and ranks, and a resumed run draws exactly the masks an uninterrupted one would, on any
        device, with no random state to carry in the checkpoint."""
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
        self.last_loss = out.loss.detach()
        self._log("train", out, _batch_size(batch))
        return out.loss

    def on_validation_epoch_start(self) -> None:
        self._val_generator = torch.Generator(device=self.device).manual_seed(self.seed)

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor | None:
        if _batch_size(batch) == 0:
            return None
        out = self(batch, generator=self._val_generator)
        self._log("val", out, _batch_size(batch))
        return out.loss

    def _log(self, stage: str, out: MAEOutput, size: int) -> None:
        sync = stage == "val"
        self.log(f"{stage}/loss", out.loss.detach(), prog_bar=True, batch_size=size, sync_dist=sync)
        for name, term in out.terms.items():
            self.log(f"{stage}/loss_{name}", term.detach(), batch_size=size, sync_dist=sync)

    def configure_callbacks(self) -> list[pl.Callback]:
        return [DivergenceGuard(self.on_nonfinite, self.max_skipped_steps), SkippedSamplesReport()]

    # ------------------------------------------------------------------------------------------------ optimisation
    def param_groups(self) -> list[dict[str, Any]]:
        """MAE's rule: no weight decay on biases and 1-D parameters (norms)."""
        return decay_groups(self.named_parameters())

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        return configure_mae_optimizer(self, self.optimizer_factory(self.param_groups()), self.lr_schedule, self.blr)


_ARGUMENTS = tuple(inspect.signature(MaskedAutoencoder).parameters)


def mask_seed(seed: int, rank: int, epoch: int, batch_idx: int) -> int:
    """The seed of the training masks of one step on one rank (Python does not salt the hash of ints)."""
    return hash((seed, rank, epoch, batch_idx)) & 0x7FFF_FFFF_FFFF_FFFF


def _batch_size(batch: Mapping[str, Tensor]) -> int:
    for value in batch.values():
        if isinstance(value, Tensor) and value.dim() > 0:
            return value.shape[0]
    return 0
