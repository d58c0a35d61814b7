"""``anymae fit | validate | test | predict``: LightningCLI over :class:`~anymae.MaskedAutoencoder`.

``anymae fit --config examples/image/mae_tiny_digits.yaml`` parses the YAML and any ``--key value`` override,
checks every constrained field (pydantic types on the components' constructors) and the build-time contracts (and
the model's dry run), and only then trains.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningCLI

from ..module import MaskedAutoencoder

__all__ = ["SUBCOMMANDS", "AnymaeCLI", "fit", "predict", "test", "validate"]

SUBCOMMANDS = ("fit", "validate", "test", "predict")


class AnymaeCLI(LightningCLI):
    """LightningCLI for masked autoencoders; data modules and components are chosen by name or class path."""

    def __init__(self, args: Sequence[str] | None = None, run: bool = True) -> None:
        # Each subcommand has its own parser; all of them must raise instead of exiting so main() can report.
        parser_kwargs = {"exit_on_error": False, **{name: {"exit_on_error": False} for name in SUBCOMMANDS}}
        super().__init__(
            MaskedAutoencoder,
            pl.LightningDataModule,
            subclass_mode_data=True,
            args=args,
            run=run,
            parser_kwargs=parser_kwargs if run else {"exit_on_error": False},
            save_config_kwargs={"overwrite": True},
        )

    def after_fit(self) -> None:
        callback = self.trainer.checkpoint_callback
        path = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
        if path and self.trainer.is_global_zero:
            print(f"checkpoint: {path}")


def _run(subcommand: str, argv: Sequence[str]) -> int:
    AnymaeCLI(args=[subcommand, *argv])
    return 0


def fit(argv: Sequence[str]) -> int:
    return _run("fit", argv)


def validate(argv: Sequence[str]) -> int:
    return _run("validate", argv)


def test(argv: Sequence[str]) -> int:
    return _run("test", argv)


def predict(argv: Sequence[str]) -> int:
    return _run("predict", argv)
