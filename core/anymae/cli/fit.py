"""``anymae fit | validate | test | predict``: LightningCLI over :class:`~anymae.MaskedAutoencoder`.

``anymae fit --config examples/image/mae_tiny_digits.yaml`` parses the YAML and any ``--key value`` override,
checks every constrained field (pydantic types on the components' constructors) and the build-time contracts (and
the model's dry run), and only then trains.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import yaml
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from ..config import ConfigError
from ..model.published import load_checkpoint
from ..training.checkpointing import Checkpoints, find_last_checkpoint
from ..training.module import MaskedAutoencoder
from ..training.schedule import derive_max_steps
from ..training.threads import warn_if_oversubscribed
from .parser import nested_nulls

__all__ = ["SUBCOMMANDS", "AnymaeCLI", "fit", "predict", "test", "validate"]

SUBCOMMANDS = ("fit", "validate", "test", "predict")


class AnymaeCLI(LightningCLI):
    """LightningCLI for masked autoencoders; data modules and components are chosen by name or class path."""

    def __init__(self, args: Sequence[str] | None = None, run: bool = True) -> None:
        # Each subcommand has its own parser; all of them must raise instead of exiting so main() can report, and
        # take an option only by its whole name (argparse's prefixes let --trainer.max_epoch set max_epochs)
        strict = {"exit_on_error": False, "allow_abbrev": False}
        parser_kwargs = {**strict, **{name: dict(strict) for name in SUBCOMMANDS}}
        super().__init__(
            MaskedAutoencoder,
            pl.LightningDataModule,
            subclass_mode_data=True,
            args=None if args is None else nested_nulls(args),
            run=run,
            parser_kwargs=parser_kwargs if run else strict,
            save_config_kwargs={"overwrite": True},
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """As LightningCLI's; then checkpoints are read as tensors and plain data only: ``--weights_only false`` is
        refused and Lightning is told ``weights_only=True`` (a URL included), and a ``--ckpt_path`` file is read
        without its tensors' bytes, so one that holds pickled objects is refused in one line naming it before
        Lightning reads it. A resumed run does not read ``--model.init_from`` again (the checkpoint holds its
        weights)."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        section = self.config[subcommand]
        if section.get("weights_only") is False:
            raise ConfigError(
                "weights_only: anymae reads checkpoints as tensors and plain data only (a pickled object could run "
                "code); leave weights_only out"
            )
        if "weights_only" in section:
            section["weights_only"] = True
        path = section.get("ckpt_path")
        if path and path != "last" and "://" not in str(path) and Path(path).is_file():
            load_checkpoint(path, mmap=True)
        if path and section.get("model", {}).get("init_from"):
            section["model"]["init_from"] = None

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """``--checkpoint.*``: the run's checkpoints (``last.ckpt`` always; ``--checkpoint.every_n_train_steps N``
        for mid-epoch ones)."""
        parser.add_class_arguments(Checkpoints, "checkpoint", fail_untyped=False, sub_configs=True)
        parser.set_defaults({"checkpoint.save_last": True})

    def instantiate_classes(self) -> None:
        """As LightningCLI's, and the model records the parsed ``model:`` section as its hyperparameters (the config a
        checkpoint rebuilds it from; the parts built from it, the optimizer factory among them, are not data)."""
        super().instantiate_classes()
        config = yaml.safe_load(self.parser.dump(self.config, skip_link_targets=False, skip_none=False))
        self.model.save_hyperparameters(config[self.subcommand]["model"] if self.subcommand else config["model"])

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """The trainer, given the ``--checkpoint`` callback unless ``trainer.enable_checkpointing`` is false (Lightning
        refuses a ``ModelCheckpoint`` then): the callback is added here, not as a Lightning callback argument,
        which LightningCLI would always pass."""
        config = self.config_init.get(str(self.subcommand), self.config_init)
        trainer = {**config.get("trainer", {}), **kwargs}
        # no schedule given: fit derives one from the data's size (anymae.training.schedule), not Lightning's 1000
        self.derive_schedule = (
            trainer.get("max_epochs") is None
            and trainer.get("max_steps", -1) in (-1, None)
            and not trainer.get("max_time")  # a time budget is a schedule too
        )
        if self.derive_schedule:
            kwargs["max_epochs"] = -1
        if trainer.get("enable_checkpointing") is not False:
            callbacks = trainer.get("callbacks") or []
            kwargs["callbacks"] = [*(callbacks if isinstance(callbacks, list) else [callbacks]), config["checkpoint"]]
        return super().instantiate_trainer(**kwargs)

    def fit(
        self, model: pl.LightningModule, datamodule: Any = None, ckpt_path: str | None = None, **kwargs: Any
    ) -> None:
        warn_if_oversubscribed()
        if getattr(self, "derive_schedule", False) and datamodule is not None:
            steps, samples = derive_max_steps(self.trainer, datamodule)
            if self.trainer.is_global_zero:
                print(f"schedule: {steps} steps ({samples} training samples; no trainer.max_epochs or max_steps given)")
        if ckpt_path == "last":  # Lightning would look in the new run's own, empty folder, warn and start afresh
            found = find_last_checkpoint(self.trainer)
            if found is None:
                raise ConfigError(
                    f"ckpt_path: 'last' found no last.ckpt under {self.trainer.default_root_dir}; run anymae fit first "
                    "(every run writes one) or give a checkpoint's path"
                )
            ckpt_path = str(found)
            load_checkpoint(found, mmap=True)  # refused in one line if it holds pickled objects
        self.trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, **kwargs)

    def after_fit(self) -> None:
        callback = self.trainer.checkpoint_callback
        path = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
        if path and self.trainer.is_global_zero:
            print(f"checkpoint: {path}")


def _run(subcommand: str, argv: Sequence[str]) -> int:
    AnymaeCLI(args=[subcommand, *argv])
    return 0


fit, validate, test, predict = (functools.partial(_run, subcommand) for subcommand in SUBCOMMANDS)
